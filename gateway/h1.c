/* h1.c -- HTTP/1.1 upstream client on the worker's loop: non-blocking sockets, Debian's
 * http_parser for the answer, a keep-alive pool per upstream address.
 *
 * Per proxied request on a pooled connection this costs one sendmsg and one recv (plus the
 * loop's epoll_wait): a pooled connection keeps its read event armed, so it costs no epoll_ctl
 * per request, and the same armed event tells us when the upstream closes an idle connection. */
#include "h1.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "h1int.h"
#include "util.h"

#define H1_HEAD_MAX (64 * 1024) /* an answer head larger than this is refused */
#define H1_MAX_HDRS 128
#define H1_IDLE_MAX 512  /* pooled connections per address */
#define H1_IDLE_MS 50000 /* a pooled connection idle longer is closed instead of reused */

struct host {
    struct host *next;
    struct sockaddr_storage sa;
    socklen_t salen;
    SSL_CTX *tls;         /* https: part of the key (plain and TLS pools never mix) */
    char name[256];       /* https: SNI and the name the certificate must carry */
    SSL_SESSION *session; /* https: the last session the upstream gave, resumed next */
    struct pg_dlist idle; /* pooled connections, most recently used first */
    size_t nidle;
};

struct pg_h1_conn {
    struct pg_h1 *h;
    struct host *host;
    struct pg_dlink link; /* in host->idle while pooled */
    struct pg_h1_xfer *x; /* NULL while pooled */
    int fd;
    bool connecting, reading, pooled;
    SSL *ssl;          /* https */
    bool handshake;    /* the TLS handshake is under way: reads and writes drive it */
    CURLcode err_code; /* a failure found inside pg_h1_start, reported on the next loop turn */
    int err;
    struct event rev, wev;
    http_parser p;
    bool complete; /* the answer (not a 1xx) is complete */
    bool in_field;
    bool in_body; /* the head went out: header callbacks now bring trailers, which are dropped */
    CURLcode cb_fail;    /* set when a callback aborted the parse */
    uint64_t idle_since; /* when it was pooled */
    /* the answer head being parsed: name and value as offsets into hb */
    char *hb;
    size_t hlen, hcap;
    uint32_t hv[H1_MAX_HDRS][4];
    size_t nh;
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

struct pg_h1 *pg_h1_new(struct event_base *base, struct evdns_base *dns)
{
    struct pg_h1 *h = calloc(1, sizeof *h);
    if (h) {
        h->base = base;
        h->dns = dns;
    }
    return h;
}

static struct pg_h1_conn *idle_at(struct pg_dlink *n)
{
    return PG_CONTAINER_OF(n, struct pg_h1_conn, link);
}

static void idle_unlink(struct pg_h1_conn *c)
{
    if (!c->pooled)
        return;
    pg_dlist_remove(&c->host->idle, &c->link);
    c->pooled = false;
    c->host->nidle--;
}

static void conn_close(struct pg_h1_conn *c)
{
    idle_unlink(c);
    if (c->ssl)
        SSL_free(c->ssl); /* no close_notify: the socket goes at once either way */
    event_del(&c->rev);
    event_del(&c->wev);
    close(c->fd);
    free(c->hb);
    free(c);
}

void pg_h1_free(struct pg_h1 *h)
{
    if (!h)
        return;
    while (h->names) { /* no transfer is left, so none waits */
        struct pg_h1_name *nm = h->names;
        h->names = nm->next;
        if (nm->req)
            evdns_cancel_request(h->dns, nm->req); /* its callback sees the cancel only */
        free(nm);
    }
    while (h->hosts) {
        struct host *o = h->hosts;
        h->hosts = o->next;
        while (o->idle.head)
            conn_close(idle_at(o->idle.head));
        if (o->session)
            SSL_SESSION_free(o->session);
        SSL_CTX_free(o->tls);
        free(o);
    }
    free(h);
}

static struct host *host_get(struct pg_h1 *h, const struct pg_h1_xfer *x)
{
    struct host *o;
    const struct sockaddr *sa = x->addr;
    socklen_t len = x->addrlen;
    const char *name = x->tls ? x->tls_name : "";
    for (o = h->hosts; o; o = o->next)
        if (o->salen == len && memcmp(&o->sa, sa, len) == 0 && o->tls == x->tls &&
            strcmp(o->name, name) == 0)
            return o;
    if (len > sizeof o->sa || strlen(name) >= sizeof o->name || !(o = calloc(1, sizeof *o)))
        return NULL;
    memcpy(&o->sa, sa, len);
    o->salen = len;
    memcpy(o->name, name, strlen(name) + 1);
    /* held while the host is known: a context of a retired snapshot is never mistaken for a
     * new one allocated at the same address */
    if (x->tls && SSL_CTX_up_ref(x->tls) == 1)
        o->tls = x->tls;
    else if (x->tls) {
        free(o);
        return NULL;
    }
    o->next = h->hosts;
    h->hosts = o;
    return o;
}

/* Has the upstream closed (or written to) this idle connection without the loop noticing yet?
 * One extra syscall, spent only where a resend is not allowed. */
static bool conn_dead(const struct pg_h1_conn *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* A pooled connection, most recently used first; stale ones are closed on the way. For a
 * request that must not be sent twice, each is checked alive first. */
static struct pg_h1_conn *pool_take(struct host *o, bool check)
{
    uint64_t now = pg_now_ms();
    while (o->idle.head) {
        struct pg_h1_conn *c = idle_at(o->idle.head);
        idle_unlink(c);
        if (now - c->idle_since < H1_IDLE_MS && !(check && conn_dead(c)))
            return c;
        conn_close(c);
    }
    return NULL;
}

/* The answer is complete and the connection clean: keep it for the next request. */
static void pool_put(struct pg_h1_conn *c)
{
    struct host *o = c->host;
    if (o->nidle >= H1_IDLE_MAX || !c->reading) {
        conn_close(c);
        return;
    }
    uint64_t now = pg_now_ms();
    c->idle_since = now;
    c->pooled = true;
    pg_dlist_push_head(&o->idle, &c->link);
    o->nidle++;
    /* after a burst, steady traffic reuses the newest few: the rest age out from the tail */
    while (o->idle.tail && now - idle_at(o->idle.tail)->idle_since >= H1_IDLE_MS)
        conn_close(idle_at(o->idle.tail));
}

/* ---- the answer ---- */

static struct pg_h1_conn *conn_of(http_parser *p)
{
    return p->data;
}

static int on_message_begin(http_parser *p)
{
    struct pg_h1_conn *c = conn_of(p);
    c->hlen = 0;
    c->nh = 0;
    c->in_field = false;
    c->in_body = false;
    return 0;
}

static int head_add(struct pg_h1_conn *c, const char *at, size_t len)
{
    if (c->hlen + len > H1_HEAD_MAX)
        return -1;
    if (c->hlen + len > c->hcap) {
        size_t cap = c->hcap ? c->hcap * 2 : 2048;
        while (cap < c->hlen + len)
            cap *= 2;
        char *nb = realloc(c->hb, cap);
        if (!nb)
            return -1;
        c->hb = nb;
        c->hcap = cap;
    }
    memcpy(c->hb + c->hlen, at, len);
    c->hlen += len;
    return 0;
}

/* http_parser may hand a name or value over in pieces (split reads); they are joined in hb. */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct pg_h1_conn *c = conn_of(p);
    if (c->in_body)
        return 0;
    if (!c->in_field) {
        if (c->nh == H1_MAX_HDRS)
            return -1;
        uint32_t *e = c->hv[c->nh++];
        e[0] = e[2] = (uint32_t)c->hlen;
        e[1] = e[3] = 0;
        c->in_field = true;
    }
    c->hv[c->nh - 1][1] += (uint32_t)len;
    return head_add(c, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct pg_h1_conn *c = conn_of(p);
    if (c->in_body)
        return 0;
    if (c->nh == 0)
        return -1;
    uint32_t *e = c->hv[c->nh - 1];
    if (c->in_field) {
        e[2] = (uint32_t)c->hlen;
        c->in_field = false;
    }
    e[3] += (uint32_t)len;
    return head_add(c, at, len);
}

static int on_headers_complete(http_parser *p)
{
    struct pg_h1_conn *c = conn_of(p);
    struct pg_h1_xfer *x = c->x;
    int st = p->status_code;
    /* interim answers are skipped (nobody asked to upgrade); 1xx, 204 and 304 have no body
     * even when they carry a length, and neither has the answer to a HEAD */
    bool nobody = x->head_method || st < 200 || st == 204 || st == 304;
    if (st < 200)
        return st == 101 ? -1 : 1;
    const struct pg_h1_ops *ops = x->ops;
    if (ops->status(x->arg, st))
        goto abort;
    for (size_t i = 0; i < c->nh; i++) {
        const uint32_t *e = c->hv[i];
        if (ops->header(x->arg, c->hb + e[0], e[1], c->hb + e[2], e[3]))
            goto abort;
    }
    if (ops->head_end(x->arg))
        goto abort;
    c->in_body = true;
    return nobody ? 1 : 0; /* 1: no body follows, whatever the head says */
abort:
    c->cb_fail = CURLE_WRITE_ERROR;
    return -1;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct pg_h1_conn *c = conn_of(p);
    struct pg_h1_xfer *x = c->x;
    switch (x->ops->body(x->arg, at, len)) {
    case PG_H1_GO:
        return 0;
    case PG_H1_PAUSE:
        x->paused = true; /* the rest of this read is still delivered; reading stops after it */
        return 0;
    default:
        c->cb_fail = CURLE_WRITE_ERROR;
        return -1;
    }
}

static int on_message_complete(http_parser *p)
{
    struct pg_h1_conn *c = conn_of(p);
    if (p->status_code < 200)
        return 0;
    c->complete = true;
    http_parser_pause(p, 1); /* bytes after the answer are not ours to parse */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ---- */

static struct pg_h1_conn *conn_open(struct pg_h1 *h, struct host *o)
{
    struct pg_h1_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->h = h;
    c->host = o;
    c->fd = socket(o->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (event_assign(&c->rev, h->base, c->fd, EV_READ | EV_PERSIST, on_read, c) ||
        event_assign(&c->wev, h->base, c->fd, EV_WRITE, on_write, c)) {
        close(c->fd);
        free(c);
        return NULL;
    }
    int rc = connect(c->fd, (const struct sockaddr *)&o->sa, o->salen);
    if (rc == 0 && !o->tls) {
        if (event_add(&c->rev, NULL))
            goto fail;
        c->reading = true;
        return c;
    }
    c->connecting = true;
    /* TLS: even a connection up at once starts its handshake from the loop, never here */
    if (rc == 0 || errno == EINPROGRESS) {
        if (event_add(&c->wev, NULL))
            goto fail;
        return c;
    }
    /* refused at once (loopback): reported from the loop, never inside pg_h1_start */
    c->err = errno;
    c->err_code = CURLE_COULDNT_CONNECT;
    event_active(&c->wev, EV_WRITE, 1);
    return c;
fail:
    conn_close(c);
    return NULL;
}

/* TLS: the same, a piece at a time through SSL_write (partial writes on). */
static int send_more_tls(struct pg_h1_conn *c)
{
    struct pg_h1_xfer *x = c->x;
    size_t total = x->head_len + x->body_len;
    while (x->sent < total) {
        const char *p =
            x->sent < x->head_len ? x->head + x->sent : x->body + (x->sent - x->head_len);
        size_t n = x->sent < x->head_len ? x->head_len - x->sent : total - x->sent;
        ERR_clear_error();
        int k = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
        if (k > 0) {
            x->sent += (size_t)k;
            x->sent_ms = pg_now_ms();
            continue;
        }
        int e = SSL_get_error(c->ssl, k);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            return event_add(&c->wev, NULL) ? -1 : 0;
        errno = e == SSL_ERROR_SYSCALL && errno ? errno : ECONNRESET;
        return -1;
    }
    return 0;
}

/* Write what is left of the request. 0: all sent or waiting for room; -1: errno says why. */
static int send_more(struct pg_h1_conn *c)
{
    if (c->ssl)
        return send_more_tls(c);
    struct pg_h1_xfer *x = c->x;
    size_t total = x->head_len + x->body_len;
    while (x->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (x->sent < x->head_len)
            iov[n++] = (struct iovec){ (char *)x->head + x->sent, x->head_len - x->sent };
        if (x->body_len) {
            size_t off = x->sent > x->head_len ? x->sent - x->head_len : 0;
            iov[n++] = (struct iovec){ (char *)x->body + off, x->body_len - off };
        }
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t k = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return event_add(&c->wev, NULL) ? -1 : 0;
            return -1;
        }
        x->sent += (size_t)k;
        x->sent_ms = pg_now_ms();
    }
    return 0;
}

static void finish(struct pg_h1_conn *c, CURLcode res, const char *why, int err);

/* Sending failed with err. A reset or a closed pipe may come from an upstream that answered
 * early (a 413 to a large upload) and closed: its answer may be waiting to be read, so sending
 * stops and the read side ends the transfer (an answer, or no answer and maybe a retry).
 * false: nothing to wait for, the caller ends it. */
static bool send_failed(struct pg_h1_conn *c, int err)
{
    if ((err != ECONNRESET && err != EPIPE) || !c->reading)
        return false;
    event_del(&c->wev);
    return true;
}

/* A send failure inside pg_h1_start: never a callback there, so the end waits a loop turn. */
static void send_failed_sync(struct pg_h1_conn *c, int err)
{
    if (send_failed(c, err))
        return;
    c->err = err;
    c->err_code = CURLE_SEND_ERROR;
    event_active(&c->wev, EV_WRITE, 1);
}

/* Put x on c and send what the socket takes now (a connection still connecting sends once
 * on_write hears it is up). Never calls back: a failure is reported on the next loop turn. */
static void begin(struct pg_h1_conn *c, struct pg_h1_xfer *x)
{
    c->x = x;
    x->c = c;
    x->sent = 0;
    x->sent_ms = 0;
    x->got_any = false;
    x->paused = false;
    c->complete = false;
    c->cb_fail = CURLE_OK;
    http_parser_init(&c->p, HTTP_RESPONSE);
    c->p.data = c;
    if (!c->connecting && !c->handshake && send_more(c))
        send_failed_sync(c, errno);
}

/* A pooled connection the upstream had already closed: an idempotent request goes again on a
 * new one. Only when nothing of an answer came back, and only once. A POST is never resent: the
 * upstream may have acted on it (RFC 9110 9.2.2); pool_take checked its connection instead. */
static bool retry_fresh(struct pg_h1_conn *c)
{
    struct pg_h1_xfer *x = c->x;
    if (!x->reused || x->got_any || !x->idempotent)
        return false;
    struct pg_h1 *h = c->h;
    struct host *o = c->host;
    c->x = NULL;
    conn_close(c);
    x->c = NULL;
    x->reused = false;
    struct pg_h1_conn *n = conn_open(h, o);
    if (!n) {
        snprintf(x->errbuf, CURL_ERROR_SIZE, "cannot open a socket: %s", strerror(errno));
        x->ops->done(x->arg, CURLE_COULDNT_CONNECT);
        return true;
    }
    begin(n, x);
    return true;
}

/* A name's address refused the connection: the request goes to the next one of the answer
 * (a dead address is skipped, nothing was sent). */
static bool retry_next(struct pg_h1_conn *c)
{
    struct pg_h1_xfer *x = c->x;
    struct pg_h1 *h = c->h;
    if (!pg_h1_name_next(h, x))
        return false;
    c->x = NULL;
    x->c = NULL;
    conn_close(c);
    if (pg_h1_start_at(h, x) == 0)
        return true;
    if (x->errbuf)
        snprintf(x->errbuf, CURL_ERROR_SIZE, "cannot open a socket: %s", strerror(errno));
    x->ops->done(x->arg, CURLE_COULDNT_CONNECT);
    return true;
}

/* The transfer ends: the connection is kept if the answer ended cleanly, else closed; then
 * the owner hears of it (it may start another transfer from done). */
static void finish(struct pg_h1_conn *c, CURLcode res, const char *why, int err)
{
    struct pg_h1_xfer *x = c->x;
    if ((res == CURLE_SEND_ERROR || res == CURLE_GOT_NOTHING) && retry_fresh(c))
        return;
    if (res == CURLE_COULDNT_CONNECT && x->name && retry_next(c))
        return;
    c->x = NULL;
    x->c = NULL;
    bool keep = res == CURLE_OK && c->complete && x->sent == x->head_len + x->body_len &&
                http_should_keep_alive(&c->p);
    if (keep)
        pool_put(c);
    else
        conn_close(c);
    if (res != CURLE_OK && x->errbuf) {
        if (err)
            snprintf(x->errbuf, CURL_ERROR_SIZE, "%s: %s", why, strerror(err));
        else
            snprintf(x->errbuf, CURL_ERROR_SIZE, "%s", why);
    }
    x->ops->done(x->arg, res);
}

/* The upstream closed its side. A close-delimited body ends here; anything else is cut short. */
static void on_eof(struct pg_h1_conn *c)
{
    struct pg_h1_xfer *x = c->x;
    if (!x->got_any) {
        finish(c, CURLE_GOT_NOTHING, "the upstream closed the connection without an answer", 0);
        return;
    }
    http_parser_execute(&c->p, &parser_settings, NULL, 0);
    if (c->complete) {
        finish(c, CURLE_OK, NULL, 0); /* not kept: http_should_keep_alive is false at EOF */
        return;
    }
    finish(c, CURLE_PARTIAL_FILE, "the upstream closed the connection mid-answer", 0);
}

static void parsed(struct pg_h1_conn *c, size_t used, size_t n)
{
    enum http_errno e = HTTP_PARSER_ERRNO(&c->p);
    if (c->complete) {
        /* anything after the answer is a broken upstream: the connection is not reused */
        if (used != n)
            c->p.flags |= F_CONNECTION_CLOSE;
        finish(c, CURLE_OK, NULL, 0);
        return;
    }
    if (e != HPE_OK) {
        if (c->cb_fail)
            finish(c, c->cb_fail, "the answer was refused", 0);
        else
            finish(c, CURLE_WEIRD_SERVER_REPLY, http_errno_description(e), 0);
        return;
    }
    if (c->x->paused && c->reading) {
        event_del(&c->rev);
        c->reading = false;
    }
}

/* ---- TLS (https upstreams) ---- */

static int ex_conn = -1; /* SSL ex-data slot: the connection, for the new-session callback */

/* A session the upstream handed out (TLS 1.3: after the handshake): kept for the next
 * connection to this address to resume. Returns 1: the reference is ours. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct pg_h1_conn *c = SSL_get_ex_data(ssl, ex_conn);
    if (!c)
        return 0;
    if (c->host->session)
        SSL_SESSION_free(c->host->session);
    c->host->session = sess;
    return 1;
}

SSL_CTX *pg_h1_tls_ctx(bool verify, const char *ca_file, char *err, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ex_conn < 0) /* once, before any worker runs (snapshots are activated on main) */
        ex_conn = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (!ctx || ex_conn < 0) {
        snprintf(err, cap, "out of memory");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, cap, "tls.ca_file %s: not a usable PEM bundle", ca_file ? ca_file : "-");
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

static void finish(struct pg_h1_conn *c, CURLcode res, const char *why, int err);
static int send_more(struct pg_h1_conn *c);

/* Watch the socket for what the handshake waits on. 0, or -1 (libevent refused). */
static int tls_wait(struct pg_h1_conn *c, int e)
{
    if (e == SSL_ERROR_WANT_WRITE)
        return event_add(&c->wev, NULL);
    if (!c->reading) {
        if (event_add(&c->rev, NULL))
            return -1;
        c->reading = true;
    }
    return 0;
}

/* One step of the handshake; once it is done the request goes out. */
static void tls_step(struct pg_h1_conn *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        c->handshake = false;
        if ((!c->reading && tls_wait(c, SSL_ERROR_WANT_READ)) || send_more(c)) {
            if (!send_failed(c, errno))
                finish(c, CURLE_SEND_ERROR, "sending the request", errno);
        }
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (tls_wait(c, e))
            finish(c, CURLE_SSL_CONNECT_ERROR, "watching the TLS handshake", 0);
        return;
    }
    char why[CURL_ERROR_SIZE];
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        snprintf(why, sizeof why, "TLS: the certificate of %.64s: %s", c->host->name,
                 X509_verify_cert_error_string(v));
        finish(c, CURLE_PEER_FAILED_VERIFICATION, why, 0);
        return;
    }
    const char *r = ERR_reason_error_string(ERR_peek_last_error());
    snprintf(why, sizeof why, "TLS handshake with %.64s: %s", c->host->name,
             r ? r : "the connection closed");
    ERR_clear_error();
    finish(c, CURLE_SSL_CONNECT_ERROR, why, 0);
}

/* The TCP connection is up: start the handshake (SNI, the name checked, a session resumed). */
static void tls_start(struct pg_h1_conn *c)
{
    struct host *o = c->host;
    c->ssl = SSL_new(o->tls);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_set_ex_data(c->ssl, ex_conn, c) != 1 ||
        SSL_set_tlsext_host_name(c->ssl, o->name) != 1 ||
        (SSL_CTX_get_verify_mode(o->tls) != SSL_VERIFY_NONE &&
         SSL_set1_host(c->ssl, o->name) != 1) ||
        (o->session && SSL_set_session(c->ssl, o->session) != 1)) {
        finish(c, CURLE_SSL_CONNECT_ERROR, "TLS setup", 0);
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->handshake = true;
    tls_step(c);
}

/* TLS reads into buf: >0 bytes, 0 wait, -1 EOF (close_notify or a closed socket), -2 error. */
static ssize_t tls_read(struct pg_h1_conn *c, char *buf, size_t cap)
{
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE)
        return event_add(&c->wev, NULL) ? -2 : 0;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        return -1;
    return -2;
}

/* TLS answer bytes: record by record while OpenSSL holds some (the socket will not signal
 * them again), parsed as they come. */
static void on_read_tls(struct pg_h1_conn *c)
{
    char *buf = c->h->rbuf;
    for (;;) {
        ssize_t n = tls_read(c, buf, H1_RBUF);
        if (n == 0)
            return;
        if (n == -1) {
            on_eof(c);
            return;
        }
        if (n < 0) {
            finish(c, c->x->got_any ? CURLE_RECV_ERROR : CURLE_GOT_NOTHING,
                   "reading the upstream's answer (TLS)", 0);
            return;
        }
        c->x->got_any = true;
        size_t used = http_parser_execute(&c->p, &parser_settings, buf, (size_t)n);
        /* the answer's end or a parse error ends the transfer: c may be gone after parsed */
        bool ends = c->complete || HTTP_PARSER_ERRNO(&c->p) != HPE_OK;
        parsed(c, used, (size_t)n);
        if (ends || !c->reading || !SSL_has_pending(c->ssl))
            return;
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct pg_h1_conn *c = arg;
    (void)what;
    if (!c->x) {
        conn_close(c); /* pooled: the upstream closed it (or sent what nobody asked for) */
        return;
    }
    if (c->handshake) {
        tls_step(c);
        return;
    }
    if (c->ssl) {
        on_read_tls(c);
        return;
    }
    char *buf = c->h->rbuf;
    ssize_t n = recv(fd, buf, H1_RBUF, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        finish(c, c->x->got_any ? CURLE_RECV_ERROR : CURLE_GOT_NOTHING,
               "reading the upstream's answer", errno);
        return;
    }
    if (n == 0) {
        on_eof(c);
        return;
    }
    c->x->got_any = true;
    size_t used = http_parser_execute(&c->p, &parser_settings, buf, (size_t)n);
    parsed(c, used, (size_t)n);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct pg_h1_conn *c = arg;
    (void)what;
    if (!c->x)
        return;
    if (c->err_code) {
        CURLcode code = c->err_code;
        c->err_code = CURLE_OK;
        finish(c, code, code == CURLE_COULDNT_CONNECT ? "connect" : "sending the request", c->err);
        return;
    }
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
            finish(c, CURLE_COULDNT_CONNECT, "connect", err ? err : errno);
            return;
        }
        c->connecting = false;
        if (event_add(&c->rev, NULL)) {
            finish(c, CURLE_COULDNT_CONNECT, "watching the connection", 0);
            return;
        }
        c->reading = true;
        if (c->host->tls) {
            tls_start(c);
            return;
        }
    }
    if (c->handshake) {
        tls_step(c);
        return;
    }
    if (send_more(c)) {
        int err = errno;
        if (!send_failed(c, err))
            finish(c, CURLE_SEND_ERROR, "sending the request", err);
    }
}

/* ---- transfers ---- */

/* x's connection: a pooled one or a new one. 0, -1 out of memory, -2 no socket. */
int pg_h1_start_at(struct pg_h1 *h, struct pg_h1_xfer *x)
{
    struct host *o = host_get(h, x);
    if (!o)
        return -1;
    struct pg_h1_conn *c = pool_take(o, !x->idempotent);
    x->reused = c != NULL;
    if (!c && !(c = conn_open(h, o)))
        return errno == ENOMEM ? -1 : -2;
    begin(c, x);
    return 0;
}

void pg_h1_cancel(struct pg_h1_xfer *x)
{
    if (x->waiting) {
        pg_dlist_remove(&x->waiting->waiters, &x->wait);
        x->waiting = NULL;
        return;
    }
    struct pg_h1_conn *c = x->c;
    if (!c)
        return;
    c->x = NULL;
    x->c = NULL;
    conn_close(c); /* mid-answer: the connection's state is unknown */
}

int pg_h1_fd(const struct pg_h1_xfer *x)
{
    return x->c ? x->c->fd : -1;
}

void pg_h1_resume(struct pg_h1_xfer *x)
{
    struct pg_h1_conn *c = x->c;
    x->paused = false;
    if (c && !c->reading && !c->connecting && event_add(&c->rev, NULL) == 0) {
        c->reading = true;
        /* bytes OpenSSL decrypted already: the socket will not say so again */
        if (c->ssl && SSL_has_pending(c->ssl))
            event_active(&c->rev, EV_READ, 1);
    }
}
