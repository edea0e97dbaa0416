/* fwd.c -- running one upstream exchange: the pooled state, the session (and re-login), signing
 * and sending through the upstream's client (struct pg_fwd_client: fwd_h1.c, fwd_curl.c), the
 * timers, and the end: the answer finished, replayed once, or turned into an envelope. The
 * request is built by fwdreq.c, the answer read by fwdans.c. */
#include "fwd.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "curlev.h"
#include "fwdans.h"
#include "fwdreq.h"
#include "fwdstate.h"
#include "h1.h"
#include "limit.h"
#include "metrics.h"
#include "perr.h"
#include "util.h"

/* idle pg_fwd kept per worker */
#define PG_FWD_POOL_MAX 256
/* ms; while request bytes are unsent or unacknowledged the idle timer looks this often whether
 * they move (the kernel's buffers may take a whole upload at once while the upstream reads it
 * slowly): a stalled upload is caught this close to its timeout */
#define PG_FWD_UPLOAD_POLL_MS 50

struct pg_fwd_pool {
    struct pg_fwd *free;
    size_t nfree;
};

static void on_idle(evutil_socket_t fd, short what, void *arg);

struct pg_fwd_pool *pg_fwd_pool_new(void)
{
    return calloc(1, sizeof(struct pg_fwd_pool));
}

static void fwd_destroy(struct pg_fwd *f)
{
    if (!f)
        return;
    if (f->easy)
        curl_easy_cleanup(f->easy);
    free(f->head);
    free(f->hb);
    free(f->url);
    curl_url_cleanup(f->cu);
    free(f->cu_up);
    free(f->qbuf);
    free(f->ebuf);
    free(f);
}

void pg_fwd_pool_free(struct pg_fwd_pool *p)
{
    if (!p)
        return;
    while (p->free) {
        struct pg_fwd *f = p->free;
        p->free = f->next_free;
        fwd_destroy(f);
    }
    free(p);
}

static struct pg_fwd *fwd_create(struct pg_fwd_pool *pool)
{
    struct pg_fwd *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->pool = pool;
    if (pg_fwd_curl_init(f)) {
        fwd_destroy(f);
        return NULL;
    }
    return f;
}

static struct pg_fwd *fwd_get(struct pg_fwd_pool *pool)
{
    struct pg_fwd *f = pool->free;
    if (!f)
        return fwd_create(pool);
    pool->free = f->next_free;
    pool->nfree--;
    return f;
}

/* End the upstream exchange (finished or not); the request stays. */
static void stop_transfer(struct pg_fwd *f)
{
    if (!f->running)
        return;
    f->client->stop(f);
    f->running = false;
}

/* Detach f from its request and curl, and return it to the pool. */
static void fwd_put(struct pg_fwd *f)
{
    struct pg_req *r = f->req;
    stop_transfer(f);
    pg_auth_cancel(&f->wait);
    if (f->has_sess) {
        OPENSSL_cleanse(f->sess.token, f->sess.token_len);
        f->sess.token_len = 0;
        f->has_sess = false;
    }
    if (event_initialized(&f->idle))
        event_del(&f->idle);
    pg_metrics_inflight(r->w->metrics, f->up->name, -1);
    r->fwd = NULL;
    r->on_abort = NULL;
    r->on_writable = NULL;
    f->req = NULL;
    f->up = NULL;
    f->head_len = 0;
    if (f->made_len) {
        OPENSSL_cleanse(f->made, sizeof f->made);
        f->made_len = 0;
    }
    struct pg_fwd_pool *pool = f->pool;
    if (pool->nfree >= PG_FWD_POOL_MAX) {
        fwd_destroy(f);
        return;
    }
    f->next_free = pool->free;
    pool->free = f;
    pool->nfree++;
}

static void on_abort(struct pg_req *r)
{
    fwd_put(r->fwd);
}

static void on_writable(struct pg_req *r)
{
    struct pg_fwd *f = r->fwd;
    if (f && f->paused) {
        f->paused = false;
        f->last_ms = pg_now_ms(); /* the idle time starts again from here, not from the pause */
        f->client->resume(f);
    }
}

/* (Re)arm the idle timer to fire in ms. 0 ok, -1 libevent refused (the caller fails the
 * request: a transfer without its timer could hang forever). */
static int arm_idle(struct pg_fwd *f, uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    if (event_add(&f->idle, &tv) == 0)
        return 0;
    pg_log(PG_LOG_ERR, "request %s: upstream %s: the idle timer could not be armed", f->req->rid,
           f->up->name);
    return -1;
}

static void go(struct pg_fwd *f);
static void fail_transport(struct pg_req *r, const struct pg_upstream *up, CURLcode res);
static void on_auth_ready(struct pg_auth_wait *wt, bool ok, const struct pg_err *err);

static void fail_auth(struct pg_fwd *f, const struct pg_err *err, int upstream_status)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    char msg[160];
    snprintf(msg, sizeof msg, "%s rejected the gateway's credentials", up->name);
    struct pg_envelope e = { .code = PG_E_UPSTREAM_AUTH_FAILED, .message = msg };
    pg_metrics_upstream_error(r->w->metrics, up->name, PG_ME_AUTH);
    if (err && !upstream_status)
        upstream_status = err->upstream_status;
    if (err && (upstream_status || err->upstream_code[0] || err->upstream_message[0])) {
        e.upstream = up->name;
        e.upstream_status = upstream_status;
        e.upstream_code = err->upstream_code[0] ? err->upstream_code : NULL;
        e.upstream_message = err->upstream_message[0] ? err->upstream_message : NULL;
        e.upstream_message_len = strlen(err->upstream_message);
    }
    fwd_put(f);
    pg_resp_error(r, &e);
}

/* Get a session (maybe waiting for a login), then send. */
static void acquire_and_go(struct pg_fwd *f)
{
    struct pg_req *r = f->req;
    struct pg_err err;
    f->wait.ready = on_auth_ready;
    switch (pg_auth_acquire(r->w, r->conf, r->upstream, &f->wait, &f->sess, &f->has_sess, &f->gen,
                            &err)) {
    case PG_AUTH_READY:
        go(f);
        break;
    case PG_AUTH_WAIT:
        r->login = true;
        break;
    case PG_AUTH_FAILED:
        fail_auth(f, &err, 0);
        break;
    }
}

static void on_auth_ready(struct pg_auth_wait *wt, bool ok, const struct pg_err *err)
{
    struct pg_fwd *f = PG_CONTAINER_OF(wt, struct pg_fwd, wait);
    if (!ok) {
        fail_auth(f, err, 0);
        return;
    }
    acquire_and_go(f);
}

/* https://name[:port][/path] for the own client: the name is resolved by each worker on its
 * loop (h1.c), a TLS context is made now for the upstream's tls settings. Anything else (an IP
 * literal, user info) stays with libcurl. */
static void prepare_https(struct pg_upstream *u)
{
    const char *a = u->url + 8, *end = a + strcspn(a, "/");
    const char *colon = memchr(a, ':', (size_t)(end - a));
    char host[256], port[8] = "443", err[256];
    struct in6_addr ip;
    size_t hn = (size_t)((colon ? colon : end) - a);
    if (memchr(a, '@', (size_t)(end - a)) || *a == '[' || hn == 0 || hn >= sizeof host ||
        (colon && (end - colon - 1 < 1 || end - colon - 1 > 5)))
        return;
    memcpy(host, a, hn);
    host[hn] = '\0';
    if (colon) {
        memcpy(port, colon + 1, (size_t)(end - colon - 1));
        port[end - colon - 1] = '\0';
    }
    if (inet_pton(AF_INET, host, &ip) == 1)
        return; /* no name to send as SNI or to check: libcurl's */
    unsigned long pn = strtoul(port, NULL, 10);
    if (pn == 0 || pn > 65535)
        return;
    if (!(u->h1_tls = pg_h1_tls_ctx(u->tls_verify, u->tls_ca_file, err, sizeof err))) {
        pg_log(PG_LOG_WARN, "upstream %s: %s; libcurl serves it", u->name, err);
        return;
    }
    if (!(u->h1_name = strdup(host))) {
        SSL_CTX_free(u->h1_tls);
        u->h1_tls = NULL;
        return;
    }
    u->h1_port = (uint16_t)pn;
    u->authority_off = 8;
    u->authority_len = (size_t)(end - a);
}

void pg_fwd_prepare(struct pg_conf *c)
{
    for (size_t i = 0; i < c->nupstreams; i++) {
        struct pg_upstream *u = &c->upstreams[i];
        if (pg_h1_url_addr(u->url, &u->h1_addr, &u->h1_addrlen, &u->authority_off,
                           &u->authority_len))
            u->h1_addrlen = 0;
        if (!u->h1_addrlen && strncmp(u->url, "https://", 8) == 0)
            prepare_https(u);
    }
}

void pg_fwd_start(struct pg_req *r, const char *rest, size_t rest_len, const char *query,
                  size_t query_len)
{
    const struct pg_upstream *up = &r->conf->upstreams[r->upstream];
    struct pg_fwd *f = fwd_get(r->w->fwds);
    if (!f) {
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    f->req = r;
    f->up = up;
    /* the one place the client is chosen: the own one for http:// at an IP address and
     * https:// at a name */
    f->client = pg_fwd_own_client(up) ? &pg_fwd_h1 : &pg_fwd_curl;
    pg_metrics_inflight(r->w->metrics, up->name, 1);
    f->rest = rest;
    f->rest_len = rest_len;
    f->query = query;
    f->query_len = query_len;
    f->replayed = false;
    r->fwd = f;
    r->on_abort = on_abort;
    r->on_writable = on_writable;
    const char *param = up->auth ? up->auth->cred_param : NULL;
    if (param) {
        size_t bn = evbuffer_get_length(r->body);
        const char *body = bn ? (const char *)evbuffer_pullup(r->body, -1) : NULL;
        if (pg_fwdreq_body_has_param(r, body, bn, param)) {
            fwd_put(f);
            pg_resp_fail(r, PG_E_BAD_REQUEST,
                         "The body is not readable JSON or carries a panel credential.");
            return;
        }
        if (f->query_len && pg_fwdreq_strip_param(f, param)) {
            fwd_put(f);
            pg_resp_fail(r, PG_E_INTERNAL, NULL);
            return;
        }
    }
    acquire_and_go(f);
}

/* Sign and send the request (again, after a re-login or re-sign). */
static void go(struct pg_fwd *f)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    f->sent_seen = 0;
    f->status = 0;
    f->clen = -1;
    f->chunked_up = false;
    f->head_done = f->paused = f->running = f->hold = false;
    f->head_len = 0;
    f->elen = 0;
    f->ctype[0] = '\0';
    f->conn_len = 0;
    f->truncated = false;
    f->retry_after_s = -1;
    f->errbuf[0] = '\0';
    size_t bn = evbuffer_get_length(r->body);
    const char *body = bn ? (const char *)evbuffer_pullup(r->body, -1) : NULL;
    const char *target;
    size_t tn;
    if ((bn && !body) || pg_fwdreq_url(f, &target, &tn)) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    size_t an = 0;
    const char *accept = pg_req_header(r, "accept", &an);
    struct pg_out_req o = { .method = r->method,
                            .target = target,
                            .target_len = tn,
                            .body = body,
                            .body_len = bn,
                            .accept = accept,
                            .accept_len = an };
    if (up->auth &&
        up->auth->sign(up->auth_state, f->has_sess ? &f->sess : NULL, &o, (uint64_t)time(NULL))) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, "The gateway could not sign the upstream request.");
        return;
    }
    pg_fwdreq_add_param(f, &o);
    f->made_len = 0;
    if (o.made_secret) {
        size_t mn = strlen(o.made_secret);
        if (mn < sizeof f->made) {
            memcpy(f->made, o.made_secret, mn);
            f->made_len = mn;
        }
    }
    if (pg_fwdreq_headers(f, &o)) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    OPENSSL_cleanse(o.scratch, sizeof o.scratch);
    if (event_assign(&f->idle, r->w->base, -1, 0, on_idle, f)) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    int rc = f->client->start(f, body, bn);
    if (rc == -2) { /* out of sockets: the upstream cannot be reached from here */
        pg_log(PG_LOG_WARN, "request %s: upstream %s: no socket: %s", r->rid, up->name,
               strerror(errno));
        fwd_put(f);
        fail_transport(r, up, CURLE_COULDNT_CONNECT);
        return;
    }
    if (rc) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    f->running = true;
    f->last_ms = f->up_check_ms = pg_now_ms();
    f->up_written = f->up_queued = 0;
    f->body_len = bn;
    /* an upload is watched from the start (see PG_FWD_UPLOAD_POLL_MS) */
    if (arm_idle(f, bn && up->timeout_ms > PG_FWD_UPLOAD_POLL_MS ? PG_FWD_UPLOAD_POLL_MS
                                                                 : up->timeout_ms)) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
    }
}

/* ---- upstream answer ---- */

static void fail_transport(struct pg_req *r, const struct pg_upstream *up, CURLcode res)
{
    char msg[160];
    enum pg_err_code code = PG_E_UPSTREAM_UNAVAILABLE;
    const char *what = "could not be reached";
    if (res == CURLE_OPERATION_TIMEDOUT) {
        code = PG_E_UPSTREAM_TIMEOUT;
        what = "did not answer in time";
    } else if (res == CURLE_GOT_NOTHING || res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR ||
               res == CURLE_PARTIAL_FILE) {
        what = "closed the connection";
    } else if (res == CURLE_SSL_CONNECT_ERROR || res == CURLE_PEER_FAILED_VERIFICATION ||
               res == CURLE_SSL_CACERT_BADFILE) {
        what = "failed the TLS handshake";
    } else if (res == CURLE_COULDNT_RESOLVE_HOST) {
        what = "could not be resolved";
    } else if (res == CURLE_WEIRD_SERVER_REPLY || res == CURLE_WRITE_ERROR ||
               res == CURLE_UNSUPPORTED_PROTOCOL) { /* curl's word for an HTTP/0.9 answer */
        code = PG_E_UPSTREAM_ERROR;
        what = "sent a malformed answer";
    }
    pg_metrics_upstream_error(r->w->metrics, up->name,
                              code == PG_E_UPSTREAM_TIMEOUT ? PG_ME_TIMEOUT
                              : code == PG_E_UPSTREAM_ERROR ? PG_ME_MALFORMED
                                                            : PG_ME_UNAVAILABLE);
    int k = snprintf(msg, sizeof msg, "Upstream %s %s.", up->name, what);
    pg_resp_fail(r, code, k > 0 && (size_t)k < sizeof msg ? msg : NULL);
}

static const char *kind_sentence(enum pg_err_code c)
{
    switch (c) {
    case PG_E_BAD_REQUEST:
        return "refused the request as invalid.";
    case PG_E_NOT_FOUND:
        return "has no such resource.";
    case PG_E_FORBIDDEN:
        return "does not allow this.";
    case PG_E_CONFLICT:
        return "reports a conflict.";
    case PG_E_RATE_LIMITED:
        return "is rate limiting the gateway.";
    case PG_E_UPSTREAM_AUTH_FAILED:
        return "rejected the gateway's credentials.";
    case PG_E_PAYLOAD_TOO_LARGE:
        return "found the request too large.";
    case PG_E_UNPROCESSABLE:
        return "could not process the request.";
    case PG_E_METHOD_NOT_ALLOWED:
        return "does not allow this method.";
    case PG_E_UPSTREAM_ERROR:
        return "failed to handle the request.";
    default:
        return "answered with an error.";
    }
}

/* The held error answer, whatever panel sent it, as the one envelope (SPEC section 5). */
static void panel_error(struct pg_fwd *f)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    struct pg_perr pe;
    memset(&pe, 0, sizeof pe);
    if (pg_perr_recognise(f->status, f->ebuf, f->elen, !f->truncated, &pe)) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s", up->name, kind_sentence(pe.code));
    struct pg_envelope e = { .code = pe.code,
                             .status = pe.status,
                             .message = msg,
                             .upstream = up->name,
                             .upstream_status = f->status,
                             .upstream_code = pe.upstream_code[0] ? pe.upstream_code : NULL,
                             .upstream_message =
                                 pe.upstream_message_len ? pe.upstream_message : NULL,
                             .upstream_message_len = pe.upstream_message_len,
                             .details_json = pe.details };
    if (pg_envelope_status(&e) == 429 || pg_envelope_status(&e) == 503) {
        e.has_retry_after = true;
        e.retry_after_s = f->retry_after_s > 0 ? (uint64_t)f->retry_after_s : 1;
    }
    /* the panel said slow down: nothing reaches it until it has passed */
    if (pe.slow_down)
        pg_limit_cooldown(r->w->lport, r->conf, up,
                          f->retry_after_s >= 0 ? (uint64_t)f->retry_after_s * 1000 : 1000);
    fwd_put(f);
    pg_resp_error(r, &e);
    pg_perr_free(&pe);
}

/* The held error answer is complete: let the plugin judge it. Returns true when the request
 * was taken over (replayed or answered), false when the answer goes to the caller as it is. */
static bool judge(struct pg_fwd *f)
{
    const struct pg_upstream *up = f->up;
    if (!up->auth || !up->auth->classify)
        return false;
    struct pg_in_resp resp = { .status = f->status,
                               .body = f->ebuf,
                               .body_len = f->elen,
                               .content_type = f->ctype[0] ? f->ctype : NULL,
                               .content_type_len = strlen(f->ctype) };
    struct pg_err err;
    memset(&err, 0, sizeof err);
    enum pg_verdict v = up->auth->classify(up->auth_state, &resp, &err);
    if (v == PG_VERDICT_OK)
        return false;
    if (v == PG_VERDICT_RELOGIN) {
        /* SPEC section 1: at most one new login per upstream every 10 s, and a replay refused
         * again gets the panel's own answer, never a second login */
        if (f->replayed || pg_auth_expired(f->req->w, f->req->conf, f->req->upstream, f->gen,
                                           pg_now_ms()) == PG_EXPIRY_REFUSED)
            return false;
        f->replayed = f->req->replayed = true;
        acquire_and_go(f);
        return true;
    }
    if (v == PG_VERDICT_RESIGN && !f->replayed) {
        f->replayed = f->req->replayed = true;
        acquire_and_go(f);
        return true;
    }
    fail_auth(f, &err, f->status);
    return true;
}

void pg_fwd_done(struct pg_fwd *f, CURLcode res)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    if (res != CURLE_OK && res != CURLE_WRITE_ERROR)
        pg_log(PG_LOG_WARN, "request %s: upstream %s: %s", r->rid, up->name,
               f->errbuf[0] ? f->errbuf : curl_easy_strerror(res));
    stop_transfer(f);
    event_del(&f->idle);
    if (f->hold && (res == CURLE_OK || f->truncated)) {
        if (pg_fwdans_redact_held(f)) {
            fwd_put(f);
            pg_resp_fail(r, PG_E_INTERNAL, NULL);
            return;
        }
        if (!judge(f))
            panel_error(f);
        return;
    }
    bool head_done = f->head_done;
    fwd_put(f);
    if (res == CURLE_OK && head_done)
        pg_resp_end(r);
    else if (head_done)
        pg_resp_abort(r);
    else
        fail_transport(r, up, res == CURLE_OK ? CURLE_WEIRD_SERVER_REPLY : res);
}

/* Upload progress since the last idle check: bytes written, or bytes leaving the socket's send
 * queue (the upstream acknowledged them). Progress moves last_ms to when it was seen at the
 * earliest: the last write, or else the previous check. True while request bytes are unsent or
 * queued (the check keeps looking every PG_FWD_UPLOAD_POLL_MS). */
static bool upload_check(struct pg_fwd *f, uint64_t now, struct pg_fwd_upload *u)
{
    f->client->upload(f, u);
    uint64_t written = u->written, wrote_ms = u->wrote_ms;
    int q = 0;
    if (u->fd < 0 || ioctl(u->fd, TIOCOUTQ, &q) < 0 || q < 0)
        q = 0;
    if (written != f->up_written || (uint64_t)q != f->up_queued) {
        uint64_t at = wrote_ms > f->up_check_ms ? wrote_ms : f->up_check_ms;
        if (at > f->last_ms)
            f->last_ms = at;
    }
    f->up_written = written;
    f->up_queued = (uint64_t)q;
    f->up_check_ms = now;
    return q > 0 || written < u->total;
}

/* The idle timer fired: the upstream times out `timeout` after its last progress. The timer
 * was armed for the time left to that deadline, so it fires at it unless progress moved it; then
 * it is armed again for what is left (not a whole period: the timeout stays exact). */
static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    struct pg_fwd *f = arg;
    (void)fd;
    (void)what;
    uint64_t now = pg_now_ms(), to = f->up->timeout_ms;
    /* a transfer paused for a slow caller is not idle on the upstream's side */
    if (f->paused)
        f->last_ms = now;
    struct pg_fwd_upload u;
    bool uploading = upload_check(f, now, &u);
    uint64_t last = f->last_ms > u.wrote_ms ? f->last_ms : u.wrote_ms;
    if (now - last < to) {
        uint64_t left = to - (now - last);
        if (uploading && left > PG_FWD_UPLOAD_POLL_MS)
            left = PG_FWD_UPLOAD_POLL_MS;
        if (arm_idle(f, left) == 0)
            return;
        struct pg_req *r = f->req;
        bool head_done = f->head_done;
        fwd_put(f);
        if (head_done)
            pg_resp_abort(r);
        else
            pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    pg_fwd_done(f, CURLE_OPERATION_TIMEDOUT);
}
