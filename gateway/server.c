/* server.c -- HTTP/1.1 front end on raw sockets + http_parser: one request at a time per
 * connection (pipelined requests wait in the input buffer and are answered in order), strict
 * framing, limits answered with the envelope, dispatch, access log, drain. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "req.h"
#include "tlsfront.h"
#include "conn.h"
#include "reqparse.h"
#include "util.h"

/* Input kept while a request is being answered (pipelined bytes); reading pauses above it. */
#define PG_IN_HIGH (256 * 1024)
/* The forwarder resumes a paused upstream when the caller's output falls below this. */
#define PG_OUT_LOW (128 * 1024)
#define PG_LINGER_MS 2000
/* At the open-file limit accepting pauses this long (nginx: accept_mutex_delay, 500 ms): open
 * connections go on, and accept() is not retried in a busy loop. */
#define PG_ACCEPT_PAUSE_MS 500
#define PG_CREQ_CACHE 64

struct pg_server {
    struct pg_worker w;
    const struct pg_conn_up *up; /* what the requests are handed to (dispatch.c) */
    struct evconnlistener *lis;
    struct pg_dlist conns; /* pg_conn.link, newest first */
    struct event drain_timer;
    bool drain_timer_set;
    struct event accept_timer; /* re-enables the listener after the fd limit was hit */
    bool accept_paused;        /* logged once per episode, cleared by the next accept */
    bool accept_timer_set;
    bool closing;     /* pg_server_free: request states are freed, not cached */
    char listen[128]; /* the address:port bound at start */
    SSL_CTX *tls;     /* listen.tls; NULL: plain HTTP. New connections take the current one. */
    /* request states of connections gone idle, for the next busy ones (at most PG_CREQ_CACHE):
     * a keep-alive request costs no allocation, an idle connection holds none */
    struct pg_creq *creq_free;
    size_t ncreq_free;
    /* what the main thread asks of this worker, through its inbox (hub.mu guards next_conf) */
    struct pg_post reload_post, drain_post;
    struct pg_conf *next_conf;
};

static void conn_free(struct pg_conn *c);
static void conn_process(struct pg_conn *c);
static void req_done(struct pg_req *r, bool ok);

/* The connection whose link is n; NULL for NULL (past the last). */
static struct pg_conn *conn_at(struct pg_dlink *n)
{
    return n ? PG_CONTAINER_OF(n, struct pg_conn, link) : NULL;
}

/* ---- request lifecycle ---- */

static void req_reset(struct pg_conn *c)
{
    struct pg_req *r = &c->cr->req;
    r->method = NULL;
    r->method_bit = 0;
    r->head = false;
    r->http_minor = 1;
    r->keep_alive = false;
    c->cr->ps.max_header_bytes = r->w->conf->max_header_bytes;
    c->cr->ps.max_body_bytes = r->w->conf->max_body_bytes;
    pg_reqparse_shrink(&c->cr->ps);
    pg_reqparse_reset(&c->cr->ps, r);
    r->rid[0] = '\0';
    r->start_ms = 0;
    r->consumer = NULL;
    r->upstream = -1;
    r->status = 0;
    r->head_sent = r->chunked = r->close_delimited = r->ended = false;
    r->resp_bytes = 0;
    r->err = r->limited = -1;
    r->upstream_status = 0;
    r->login = r->replayed = false;
    r->fwd = NULL;
    r->on_abort = r->on_writable = NULL;
    r->rest = r->query = NULL;
    r->rest_len = r->query_len = 0;
    r->rl_hdrs_len = 0;
    c->refused = false;
    c->ep = NULL;
}

static struct pg_conn *conn_of(struct pg_req *r)
{
    return PG_CONTAINER_OF(r, struct pg_creq, req)->c;
}

/* New bytes in c->out: write them before the loop sleeps, once however many were added. */
static void conn_kick(struct pg_conn *c)
{
    if (!c->kicked) {
        c->kicked = true;
        event_active(&c->wev, EV_WRITE, 1);
    }
}

static void kick(struct pg_req *r)
{
    conn_kick(conn_of(r));
}

static void req_done(struct pg_req *r, bool ok);

/* Bytes read and not yet parsed; the input buffer exists only while some may arrive soon. */
static size_t in_len(const struct pg_conn *c)
{
    return c->in ? evbuffer_get_length(c->in) : 0;
}

static void creq_free(struct pg_creq *cr)
{
    evbuffer_free(cr->req.body);
    free(cr->req.hbuf);
    free(cr);
}

/* The request state, made (or taken from the cache) at a request's first byte. 0, or -1 out of
 * memory. */
static int creq_get(struct pg_conn *c)
{
    struct pg_server *s = c->srv;
    if (c->cr)
        return 0;
    struct pg_creq *cr = s->creq_free;
    if (cr) {
        s->creq_free = cr->next_free;
        s->ncreq_free--;
    } else if (!(cr = calloc(1, sizeof *cr)) || !(cr->req.body = evbuffer_new())) {
        free(cr);
        return -1;
    }
    cr->c = c;
    cr->req.w = &c->srv->w;
    cr->req.out = c->out;
    cr->req.peer = c->peer;
    cr->req.done = req_done;
    cr->req.kick = kick;
    cr->ps.on_head = c->srv->up->head;
    cr->ps.arg = c;
    c->cr = cr;
    req_reset(c);
    return 0;
}

/* Idle again: the request state goes (no request may be running on it). */
static void creq_put(struct pg_conn *c)
{
    struct pg_creq *cr = c->cr;
    struct pg_server *s = c->srv;
    if (!cr)
        return;
    c->cr = NULL;
    if (cr->req.conf) {
        pg_conf_unref(cr->req.conf);
        cr->req.conf = NULL;
    }
    evbuffer_drain(cr->req.body, evbuffer_get_length(cr->req.body));
    if (s->ncreq_free < PG_CREQ_CACHE && !s->closing) {
        pg_reqparse_shrink(&cr->ps); /* a large header arena is not kept */
        cr->next_free = s->creq_free;
        s->creq_free = cr;
        s->ncreq_free++;
        return;
    }
    creq_free(cr);
}

/* Read the socket or not. -1 when the event could not be added. */
static int want_read(struct pg_conn *c, bool on)
{
    if (on && !c->reading) {
        if (event_add(&c->rev, NULL))
            return -1;
    } else if (!on && c->reading) {
        event_del(&c->rev);
    }
    c->reading = on;
    return 0;
}

/* Parse what is already buffered, on the next loop turn (pipelined requests). */
static void reprocess(struct pg_conn *c)
{
    c->reprocess = true;
    event_active(&c->rev, EV_READ, 1);
}

static void start_close(struct pg_conn *c)
{
    c->state = CS_CLOSING;
    event_del(&c->timer);
    conn_kick(c); /* the write callback moves on to lingering once out is empty */
}

/* Wait for the next request: its bytes may already be buffered (pipelined); none: idle. */
static void await_request(struct pg_conn *c)
{
    if (pg_event_add_ms(&c->timer, c->srv->w.conf->client_timeout_ms) || want_read(c, true)) {
        start_close(c);
        return;
    }
    if (in_len(c)) {
        reprocess(c);
    } else if (c->cr && !c->cr->ps.got_bytes) {
        /* idle: what the next request needs comes back with its first byte (on_rev) */
        creq_put(c);
        if (c->in && !c->in_rev) { /* on_rev still reads it: it lets it go itself */
            evbuffer_free(c->in);
            c->in = NULL;
        }
    }
}

static void req_done(struct pg_req *r, bool ok)
{
    struct pg_conn *c = conn_of(r);
    pg_worker_record(&c->srv->w, r, r->status);
    if (r->conf) {
        pg_conf_unref(r->conf);
        r->conf = NULL;
    }
    if (!ok || !r->keep_alive || c->srv->w.draining) {
        start_close(c);
        return;
    }
    req_reset(c);
    c->state = CS_READ;
    if (evbuffer_get_length(c->out) >= PG_OUT_LOW) {
        /* the caller is not reading its answers: parse nothing more until it does (on_wev
         * unparks); the write timeout closes it if it never does */
        c->parked = true;
        want_read(c, false);
        return;
    }
    await_request(c);
}

/* Answer a request the server refuses before dispatch; the connection closes after it. */
static void conn_fail(struct pg_conn *c, enum pg_err_code code, const char *msg)
{
    if (creq_get(c)) {
        conn_free(c);
        return;
    }
    struct pg_req *r = &c->cr->req;
    event_del(&c->timer);
    c->state = CS_BUSY;
    r->keep_alive = false;
    if (!r->start_ms)
        r->start_ms = pg_now_ms();
    if (!r->rid[0])
        pg_worker_rid(&c->srv->w, r->rid);
    pg_resp_fail(r, code, msg);
}

/* Parse what input holds; dispatch a complete request. Runs only in CS_READ. */
static void conn_process(struct pg_conn *c)
{
    struct evbuffer *in = c->in;
    if (!in)
        return;
    if (evbuffer_get_length(in) > 0 && creq_get(c)) {
        conn_free(c);
        return;
    }
    while (c->state == CS_READ && !c->parked && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used;
        enum pg_reqparse_rc rc = pg_reqparse_feed(&c->cr->ps, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        if (rc == PG_RP_COMPLETE) {
            event_del(&c->timer);
            c->state = CS_BUSY;
            c->srv->up->request(c);
            return;
        }
        if (rc == PG_RP_ERROR) {
            const char *msg;
            enum pg_err_code code = pg_reqparse_error(&c->cr->ps, &msg);
            conn_fail(c, code, msg);
            return;
        }
    }
}

/* ---- connection I/O: plain non-blocking reads and writes; a write is tried at once and only
 * a full kernel buffer arms EPOLLOUT, so a typical answer costs one writev and no epoll_ctl ---- */

/* TLS reads: up to 64 KiB per call (records are at most 16 KiB); what OpenSSL still holds
 * decrypted is read on the next loop turn, since the socket may never become readable again
 * for it. Same returns as read_some. */
static int read_tls(struct pg_conn *c)
{
    int got = 0;
    for (int round = 0; round < 4; round++) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(c->in, 16384, &v, 1) != 1)
            return -1;
        ERR_clear_error();
        int n = SSL_read(c->ssl, v.iov_base, v.iov_len > INT_MAX ? INT_MAX : (int)v.iov_len);
        if (n > 0) {
            v.iov_len = (size_t)n;
            evbuffer_commit_space(c->in, &v, 1);
            got = 1;
            continue;
        }
        switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            break;
        case SSL_ERROR_WANT_WRITE: {
            c->tls_read_wants_write = true;
            if (pg_event_add_ms(&c->wev, c->srv->w.conf->client_timeout_ms))
                return -1;
            break;
        }
        default: /* close_notify, EOF, a failed handshake or a broken record */
            return got ? 1 : -1;
        }
        goto out;
    }
    if (SSL_pending(c->ssl) > 0)
        event_active(&c->rev, EV_READ, 1);
out:
    /* an answer written before the handshake was done (e.g. a 503) can go now */
    if (evbuffer_get_length(c->out) && SSL_is_init_finished(c->ssl))
        conn_kick(c);
    return got;
}

/* One read into c->in: >0 bytes read, 0 would block, -1 EOF or error. */
static int read_some(struct pg_conn *c)
{
    if (c->ssl)
        return read_tls(c);
    struct evbuffer_iovec v[2];
    struct iovec iov[2];
    int nv = evbuffer_reserve_space(c->in, 16384, v, 2);
    if (nv <= 0)
        return -1;
    for (int i = 0; i < nv; i++) {
        iov[i].iov_base = v[i].iov_base;
        iov[i].iov_len = v[i].iov_len;
    }
    ssize_t n = readv(c->fd, iov, nv);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    if (n == 0)
        return -1;
    size_t left = (size_t)n;
    for (int i = 0; i < nv; i++) {
        v[i].iov_len = left < v[i].iov_len ? left : v[i].iov_len;
        left -= v[i].iov_len;
    }
    evbuffer_commit_space(c->in, v, nv);
    return 1;
}

static void on_rev(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    (void)fd;
    (void)what;
    if (!c->in && !(c->in = evbuffer_new())) {
        conn_free(c);
        return;
    }
    c->in_rev = true;
    if (!c->reprocess && read_some(c) < 0) {
        conn_free(c); /* EOF or error: the caller is gone; an answer in progress is dropped */
        return;
    }
    c->reprocess = false;
    switch (c->state) {
    case CS_READ:
        conn_process(c);
        break;
    case CS_BUSY:
        break;
    case CS_CLOSING:
    case CS_LINGER:
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        break;
    }
    /* pipelined bytes wait unparsed while a request is answered or answers wait unread, up
     * to a bound; reading resumes when the connection awaits its next request */
    if ((c->state == CS_BUSY || c->parked) && evbuffer_get_length(c->in) > PG_IN_HIGH)
        want_read(c, false);
    c->in_rev = false;
    if (c->state == CS_READ && !c->cr && evbuffer_get_length(c->in) == 0) {
        evbuffer_free(c->in); /* idle: see await_request */
        c->in = NULL;
    }
}

/* Write what c->out holds, as far as the socket takes it. 0 written or waiting for room; 1
 * waiting for the caller's bytes (a TLS handshake not done: on_rev drives it and kicks the
 * write when it is); -1 the caller is gone. */
static int write_some(struct pg_conn *c)
{
    if (!c->ssl) {
        if (evbuffer_write(c->out, c->fd) < 0 &&
            !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return -1;
        return 0;
    }
    if (!SSL_is_init_finished(c->ssl))
        return 1; /* an answer before the handshake (a 503): a write would only spin */
    while (evbuffer_get_length(c->out)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1)
            return -1;
        /* a retry after WANT_WRITE must not be shorter: the first chunk only grows, and the
         * cap is constant */
        size_t len = v.iov_len > 16384 ? 16384 : v.iov_len;
        ERR_clear_error();
        int n = SSL_write(c->ssl, v.iov_base, (int)len);
        if (n > 0) {
            evbuffer_drain(c->out, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        return e == SSL_ERROR_WANT_WRITE ? 0 : e == SSL_ERROR_WANT_READ ? 1 : -1;
    }
    return 0;
}

static void linger(struct pg_conn *c)
{
    /* half-close and read until the peer closes: a reset could destroy the answer */
    c->state = CS_LINGER;
    if (c->ssl && SSL_is_init_finished(c->ssl))
        SSL_shutdown(c->ssl); /* close_notify; the peer's is not waited for */
    shutdown(c->fd, SHUT_WR);
    if (c->in)
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
    if (want_read(c, true) || pg_event_add_ms(&c->timer, PG_LINGER_MS))
        conn_free(c);
}

/* Writes, and the write timeout: a caller whose unwritten answer makes no progress for
 * client_timeout is closed. Progress is bytes written, not attempts, so new answers queued
 * behind a caller that never reads do not keep it alive. */
static void on_wev(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    (void)fd;
    (void)what;
    c->kicked = false;
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        event_active(&c->rev, EV_READ, 1);
    }
    size_t before = evbuffer_get_length(c->out);
    int w = before ? write_some(c) : 0;
    if (w < 0) {
        conn_free(c);
        return;
    }
    size_t left = evbuffer_get_length(c->out);
    uint64_t ms = c->srv->w.conf->client_timeout_ms;
    if (!left)
        c->stall_ms = 0; /* the usual case: all written, no clock read */
    else if (left < before || !c->stall_ms)
        c->stall_ms = pg_now_ms();
    if (left && w == 0) {
        uint64_t waited = pg_now_ms() - c->stall_ms;
        if (waited >= ms || pg_event_add_ms(&c->wev, ms - waited)) {
            conn_free(c);
            return;
        }
    } else if (event_pending(&c->wev, EV_WRITE | EV_TIMEOUT, NULL)) {
        event_del(&c->wev);
    }
    if (w == 1) {
        /* the caller has client_timeout to go on with the handshake */
        if (want_read(c, true) || (c->state != CS_BUSY && pg_event_add_ms(&c->timer, ms))) {
            conn_free(c);
            return;
        }
    }
    if (c->state == CS_BUSY && c->cr->req.on_writable && left < PG_OUT_LOW) {
        c->cr->req.on_writable(&c->cr->req);
    } else if (c->state == CS_CLOSING && left == 0) {
        linger(c);
    } else if (c->parked && left < PG_OUT_LOW) {
        c->parked = false;
        await_request(c);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pg_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CS_READ && c->cr && c->cr->ps.got_bytes) {
        conn_fail(c, PG_E_REQUEST_TIMEOUT, NULL);
        return;
    }
    conn_free(c); /* idle keep-alive, or the linger period is over */
}

static void conn_free(struct pg_conn *c)
{
    struct pg_server *s = c->srv;
    if (c->state == CS_BUSY && c->cr) {
        struct pg_req *r = &c->cr->req;
        if (r->on_abort)
            r->on_abort(r);
        pg_worker_record(&c->srv->w, r, 499); /* nginx's code for "the caller closed first" */
    }
    creq_put(c);
    if (c->events) {
        event_del(&c->timer);
        event_del(&c->rev);
        event_del(&c->wev);
    }
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        evutil_closesocket(c->fd);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    OPENSSL_cleanse(c->akey, sizeof c->akey);
    pg_dlist_remove(&s->conns, &c->link);
    pg_worker_nconns_add(&s->w, -1);
    free(c);
    if (s->w.draining && s->w.nconns == 0)
        event_base_loopbreak(s->w.base);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct pg_server *s = arg;
    const struct pg_conf *conf = s->w.conf;
    (void)l;
    (void)salen;
    if (s->accept_paused) {
        s->accept_paused = false;
        pg_log(PG_LOG_INFO, "accepting connections again (%llu open)",
               (unsigned long long)s->w.nconns + 1);
    }
    struct pg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    pg_dlist_push_head(&s->conns, &c->link);
    pg_worker_nconns_add(&s->w, 1);

    c->out = evbuffer_new(); /* the input buffer comes with the first readable event */
    if (!c->out) {
        conn_free(c);
        return;
    }
    if (event_assign(&c->rev, s->w.base, fd, EV_READ | EV_PERSIST, on_rev, c) ||
        event_assign(&c->wev, s->w.base, fd, EV_WRITE, on_wev, c) ||
        event_assign(&c->timer, s->w.base, -1, 0, on_timer, c)) {
        conn_free(c);
        return;
    }
    c->events = true;
    if (s->tls) {
        if (!(c->ssl = SSL_new(s->tls)) || SSL_set_fd(c->ssl, fd) != 1) {
            conn_free(c);
            return;
        }
        SSL_set_accept_state(c->ssl);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof c->peer);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof c->peer);
    else
        memcpy(c->peer, "unknown", 8);
    c->state = CS_READ; /* idle: the request state comes with the first byte */
    if (want_read(c, true)) {
        conn_free(c);
        return;
    }
    if (pg_worker_nconns_all(&s->w) > conf->max_connections) { /* the process's, every worker's */
        conn_fail(c, PG_E_OVERLOADED, NULL);
        return;
    }
    if (pg_event_add_ms(&c->timer, conf->client_timeout_ms))
        conn_free(c);
}

/* accept() failed with something other than a retriable error: at the fd limit (EMFILE,
 * ENFILE) or out of kernel memory the socket stays readable, so retrying at once would spin. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct pg_server *s = arg;
    int e = EVUTIL_SOCKET_ERROR();
    if (!s->accept_paused)
        pg_log(PG_LOG_ERR, "accept: %s (%llu connections open); pausing accepts for %d ms",
               evutil_socket_error_to_string(e), (unsigned long long)s->w.nconns,
               PG_ACCEPT_PAUSE_MS);
    s->accept_paused = true;
    if (evconnlistener_disable(l) || pg_event_add_ms(&s->accept_timer, PG_ACCEPT_PAUSE_MS))
        pg_log(PG_LOG_ERR, "accept: cannot pause the listener");
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct pg_server *s = arg;
    (void)fd;
    (void)what;
    if (!s->w.draining && evconnlistener_enable(s->lis) &&
        pg_event_add_ms(&s->accept_timer, PG_ACCEPT_PAUSE_MS))
        pg_log(PG_LOG_ERR, "accept: cannot resume the listener");
}

/* ---- server ---- */

/* "address:port" of listen, bracketed for IPv6. 0 ok, -1 too long. */
static int listen_hostport(const struct pg_conf *conf, char *out, size_t cap)
{
    int k = snprintf(out, cap, strchr(conf->listen_address, ':') ? "[%s]:%u" : "%s:%u",
                     conf->listen_address, (unsigned)conf->listen_port);
    return k < 0 || (size_t)k >= cap ? -1 : 0;
}

/* workers > 1 share the port through SO_REUSEPORT, which would also let a second panelgate
 * (same user) bind it and silently take half the connections: a plain bind first proves the
 * port free. 0 ok, -1 with errno set. */
static int port_free(const struct sockaddr *sa, int sl)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) || bind(fd, sa, (socklen_t)sl))
        rc = -1;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

static void on_reload_post(struct pg_post *p);
static void on_drain_post(struct pg_post *p);

struct pg_server *pg_server_new(struct pg_hub *hub, unsigned id, struct event_base *base,
                                struct pg_conf *conf, const struct pg_conn_up *up, char *err,
                                size_t cap)
{
    struct pg_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    if (pg_worker_init(&s->w, hub, id, base, conf, err, cap)) {
        free(s);
        return NULL;
    }
    s->reload_post.run = on_reload_post;
    s->drain_post.run = on_drain_post;
    s->up = up;
    if (s->w.tls && !(s->tls = pg_tls_front_ctx(conf, err, cap)))
        goto fail;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    char *hostport = s->listen;
    if (listen_hostport(conf, s->listen, sizeof s->listen) ||
        evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss, &sl)) {
        snprintf(err, cap, "listen: bad address %s", conf->listen_address);
        goto fail;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
    if (conf->workers > 1) {
        flags |= LEV_OPT_REUSEABLE_PORT;
        if (id == 0 && port_free((struct sockaddr *)&ss, sl)) {
            snprintf(err, cap, "listen %s: %s", hostport, strerror(errno));
            goto fail;
        }
    }
    s->lis = evconnlistener_new_bind(base, on_accept, s, flags, 4096, (struct sockaddr *)&ss, sl);
    if (!s->lis) {
        snprintf(err, cap, "listen %s: %s", hostport, strerror(errno));
        goto fail;
    }
    evconnlistener_set_error_cb(s->lis, on_accept_error);
    if (event_assign(&s->accept_timer, base, -1, 0, on_accept_resume, s))
        goto fail_msg;
    s->accept_timer_set = true;
    return s;
fail_msg:
    snprintf(err, cap, "out of memory");
fail:
    pg_server_free(s);
    return NULL;
}

/* Keys a reload cannot apply (SPEC 7): each is named in a warning, and the rest applies. */
void pg_server_restart_warnings(const struct pg_conf *started, const struct pg_conf *conf)
{
    char hp[128], was[128];
    if (listen_hostport(conf, hp, sizeof hp) || listen_hostport(started, was, sizeof was) ||
        strcmp(hp, was) != 0)
        pg_log(PG_LOG_WARN,
               "reload: listen changed to %s; it takes a restart (still serving on %s)", hp, was);
    if (conf->workers != started->workers)
        pg_log(PG_LOG_WARN, "reload: workers changed to %u; it takes a restart (still %u)",
               conf->workers, started->workers);
    if ((conf->tls_cert != NULL) != (started->tls_cert != NULL))
        pg_log(PG_LOG_WARN, "reload: turning listen.tls on or off takes a restart");
    if (conf->store != started->store ||
        (conf->store == PG_STORE_REDIS && strcmp(conf->redis_url, started->redis_url) != 0))
        pg_log(PG_LOG_WARN, "reload: rate_limit_store type or url changed; it takes a restart "
                            "(the running store stays)");
}

void pg_server_reload(struct pg_server *s, struct pg_conf *conf)
{
    bool say = s->w.id == 0; /* every worker reloads; one says what went wrong */
    pg_conf_ref(conf);
    pg_conf_unref(s->w.conf);
    s->w.conf = conf;
    s->w.conf_gen++; /* cached key checks were against the old consumers */
    if ((conf->tls_cert != NULL) != s->w.tls)
        return; /* pg_server_restart_warnings said so */
    if (!s->w.tls)
        return;
    /* a renewed certificate: new connections get it, open ones keep theirs */
    char err[256];
    SSL_CTX *ctx = pg_tls_front_ctx(conf, err, sizeof err);
    if (!ctx) {
        if (say)
            pg_log(PG_LOG_ERR, "reload: %s; keeping the certificate in use", err);
        return;
    }
    SSL_CTX_free(s->tls);
    s->tls = ctx;
}

static void on_reload_post(struct pg_post *p)
{
    struct pg_server *s = PG_CONTAINER_OF(p, struct pg_server, reload_post);
    pg_hub_lock(s->w.hub);
    struct pg_conf *c = s->next_conf;
    s->next_conf = NULL;
    pg_hub_unlock(s->w.hub);
    if (c) {
        pg_server_reload(s, c);
        pg_conf_unref(c);
    }
}

void pg_server_post_reload(struct pg_server *s, struct pg_conf *conf)
{
    pg_conf_ref(conf);
    pg_hub_lock(s->w.hub);
    struct pg_conf *old = s->next_conf; /* two SIGHUPs before the worker looked: the newer wins */
    s->next_conf = conf;
    if (!s->reload_post.in)
        pg_inbox_put_locked(&s->w.inbox, &s->reload_post);
    pg_hub_unlock(s->w.hub);
    pg_conf_unref(old);
}

static void on_drain_post(struct pg_post *p)
{
    pg_server_drain(PG_CONTAINER_OF(p, struct pg_server, drain_post));
}

void pg_server_post_drain(struct pg_server *s)
{
    pg_hub_lock(s->w.hub);
    if (!s->drain_post.in)
        pg_inbox_put_locked(&s->w.inbox, &s->drain_post);
    pg_hub_unlock(s->w.hub);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pg_server *s = arg;
    (void)fd;
    (void)what;
    pg_log(PG_LOG_WARN, "drain timeout: %llu connections still open",
           (unsigned long long)s->w.nconns);
    event_base_loopbreak(s->w.base);
}

void pg_server_drain(struct pg_server *s)
{
    if (s->w.draining)
        return;
    s->w.draining = true;
    if (s->lis)
        evconnlistener_disable(s->lis);
    if (s->accept_timer_set)
        event_del(&s->accept_timer);
    struct pg_conn *c = conn_at(s->conns.head);
    while (c) {
        struct pg_conn *next = conn_at(c->link.next);
        if (c->state == CS_READ && (!c->cr || !c->cr->ps.got_bytes) && in_len(c) == 0)
            conn_free(c); /* idle keep-alive: nothing in flight */
        c = next;
    }
    if (s->w.nconns == 0) {
        event_base_loopbreak(s->w.base);
        return;
    }
    if (event_assign(&s->drain_timer, s->w.base, -1, 0, on_drain_timeout, s) ||
        pg_event_add_ms(&s->drain_timer, s->w.conf->drain_timeout_ms)) {
        pg_log(PG_LOG_ERR, "drain: no timer; stopping now");
        event_base_loopbreak(s->w.base);
        return;
    }
    s->drain_timer_set = true;
}

void pg_server_free(struct pg_server *s)
{
    if (!s)
        return;
    s->closing = true;
    while (s->conns.head)
        conn_free(conn_at(s->conns.head));
    while (s->creq_free) {
        struct pg_creq *cr = s->creq_free;
        s->creq_free = cr->next_free;
        creq_free(cr);
    }
    if (s->drain_timer_set)
        event_del(&s->drain_timer);
    if (s->accept_timer_set)
        event_del(&s->accept_timer);
    if (s->lis)
        evconnlistener_free(s->lis);
    SSL_CTX_free(s->tls);
    if (s->w.hub) {
        pg_hub_lock(s->w.hub);
        pg_inbox_take_locked(&s->reload_post);
        pg_inbox_take_locked(&s->drain_post);
        struct pg_conf *c = s->next_conf;
        s->next_conf = NULL;
        pg_hub_unlock(s->w.hub);
        pg_conf_unref(c);
    }
    pg_worker_deinit(&s->w);
    free(s);
}
