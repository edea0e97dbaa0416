/* curlev.c -- wiring of curl's multi_socket API to libevent: sockets, one timer, completions. */
#include "curlev.h"

#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "conf.h"
#include "util.h"

struct pg_curlev {
    struct event_base *base;
    CURLM *multi;
    CURLSH *share; /* TLS sessions and DNS answers of every transfer on this loop */
    struct event timer;
};

/* One per socket curl watches; re-armed in place when curl's interest changes, so a keep-alive
 * connection costs no allocation per request. */
struct sock {
    struct event ev;
    struct pg_curlev *c;
    int what;
};

static void reap_done(struct pg_curlev *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode res = m->data.result;
        struct pg_xfer *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        x->done(e, res, x);
    }
}

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
    struct pg_curlev *c = arg;
    int running;
    int ev = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(c->multi, fd, ev, &running);
    reap_done(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pg_curlev *c = arg;
    int running;
    (void)fd;
    (void)what;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    reap_done(c);
}

static struct pg_xfer *xfer_of(CURL *e)
{
    struct pg_xfer *x = NULL;
    if (!e || curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x) != CURLE_OK)
        return NULL;
    return x;
}

/* Remember which socket carries e's transfer (x->sock). curl names a socket here whenever its
 * interest in it changes: a new connection, a reused one (curl 7.88 stops watching a pooled
 * idle socket, and watches it again for the next transfer), the request starting after the
 * connect. A removed socket is forgotten. */
static void note_sock(CURL *e, curl_socket_t s, int what)
{
    struct pg_xfer *x = xfer_of(e); /* NULL for curl's own handle that closes pooled sockets */
    if (!x)
        return;
    if (what != CURL_POLL_REMOVE)
        x->sock = s;
    else if (x->sock == s)
        x->sock = CURL_SOCKET_BAD;
}

static int want_fd(CURL *e, curl_socket_t s, int what, void *arg, void *sockp)
{
    struct pg_curlev *c = arg;
    struct sock *sk = sockp;
    note_sock(e, s, what);
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            event_del(&sk->ev);
            free(sk);
        }
        return curl_multi_assign(c->multi, s, NULL) == CURLM_OK ? 0 : -1;
    }
    if (sk && sk->what == what)
        return 0;
    if (!sk) {
        sk = calloc(1, sizeof *sk);
        if (!sk)
            return -1;
        sk->c = c;
        if (curl_multi_assign(c->multi, s, sk) != CURLM_OK) {
            free(sk);
            return -1;
        }
    } else {
        event_del(&sk->ev);
    }
    sk->what = what;
    short f = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
              ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (event_assign(&sk->ev, c->base, s, f, on_fd, c) || event_add(&sk->ev, NULL))
        return -1;
    return 0;
}

static int want_timer(CURLM *m, long ms, void *arg)
{
    struct pg_curlev *c = arg;
    (void)m;
    if (ms < 0)
        return evtimer_del(&c->timer);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    return evtimer_add(&c->timer, &tv);
}

struct pg_curlev *pg_curlev_new(struct event_base *base)
{
    struct pg_curlev *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = base;
    c->multi = curl_multi_init();
    c->share = curl_share_init();
    /* one loop, one thread: the share needs no lock callbacks. A new connection to a panel
     * resumes the TLS session another transfer (a login, another request) made. */
    if (!c->multi || !c->share ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        evtimer_assign(&c->timer, base, on_timeout, c)) {
        pg_curlev_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, want_fd);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, want_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* the keep-alive pool: idle upstream connections kept for reuse */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 1024L);
    return c;
}

void pg_curlev_free(struct pg_curlev *c)
{
    if (!c)
        return;
    if (c->multi)
        curl_multi_cleanup(c->multi); /* closes pooled connections via want_fd(REMOVE) */
    if (c->share) /* every easy handle that used it is gone or detached (CURLOPT_SHARE NULL) */
        curl_share_cleanup(c->share);
    if (c->base)
        evtimer_del(&c->timer);
    free(c);
}

CURLSH *pg_curlev_share(struct pg_curlev *c)
{
    return c->share;
}

int pg_curlev_add(struct pg_curlev *c, CURL *e)
{
    struct pg_xfer *x = xfer_of(e);
    if (x)
        x->sock = CURL_SOCKET_BAD; /* not the previous transfer's */
    return curl_multi_add_handle(c->multi, e) == CURLM_OK ? 0 : -1;
}

void pg_curlev_remove(struct pg_curlev *c, CURL *e)
{
    curl_multi_remove_handle(c->multi, e);
    struct pg_xfer *x = xfer_of(e);
    if (x)
        x->sock = CURL_SOCKET_BAD; /* the pool may close it, and its number be reused */
}

void pg_curl_defaults(CURL *e)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
}

void pg_curl_upstream(CURL *e, const struct pg_upstream *up)
{
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)up->timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, up->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, up->tls_verify ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_CAINFO, up->tls_ca_file);
}
