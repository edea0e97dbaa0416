/* fwd.c -- one request to its upstream and the answer back, streamed with back-pressure.
 * Memory per request: one pooled struct pg_fwd (easy handle, header and URL buffers); the answer's
 * body never accumulates beyond PG_FWD_HIGH bytes queued to the caller. */
#include "fwd.h"

#include <errno.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "curlev.h"
#include "h1.h"
#include "hdr.h"
#include "limit.h"
#include "metrics.h"
#include "perr.h"
#include "query.h"
#include "redact.h"
#include "rewrite.h"
#include "util.h"

/* Pause the upstream when this many bytes wait for the caller; resume below the server's low
 * mark (PG_FWD_HIGH / 2). Bounds memory per streaming request. */
#define PG_FWD_HIGH (256 * 1024)
#define PG_FWD_POOL_MAX 256
/* an upstream answer head larger than this fails the request (upstream_error) */
#define PG_FWD_HEAD_MAX (64 * 1024)
/* header lines the gateway adds besides the caller's: forwarding, id, plugin, curl suppressions */
#define PG_FWD_EXTRA_HDRS (8 + PG_OUT_MAX_HEADERS)
/* an error answer a plugin must judge is held back up to this size; larger ones stream on */
#define PG_FWD_HOLD_MAX (64 * 1024)
/* ms; while request bytes are unsent or unacknowledged the idle timer looks this often whether
 * they move (the kernel's buffers may take a whole upload at once while the upstream reads it
 * slowly): a stalled upload is caught this close to its timeout */
#define PG_FWD_UPLOAD_POLL_MS 50

struct pg_fwd {
    struct pg_xfer x;     /* first: CURLOPT_PRIVATE */
    struct pg_h1_xfer hx; /* the own client's transfer, when via_h1(f) */
    struct pg_fwd *next_free;
    struct pg_fwd_pool *pool;
    struct pg_req *req;
    const struct pg_upstream *up;
    CURL *easy;
    struct curl_slist nodes[PG_MAX_HDRS + PG_FWD_EXTRA_HDRS];
    char *hb; /* upstream request header lines, NUL-separated */
    size_t hcap, hused;
    char *url;
    size_t ucap;
    size_t path_off, path_end; /* in url: where the path starts, and its end ('?' or NUL) */
    char *head;                /* answer header lines for the caller, until the head is complete */
    size_t head_len, head_cap;
    const char *rest, *query; /* the request's target, borrowed from the connection */
    size_t rest_len, query_len;
    CURLU *cu;
    char *cu_up; /* the upstream url whose scheme, host and port cu holds (a copy) */
    char *qbuf;  /* the caller's query without the panel credential parameter */
    size_t qcap;
    struct pg_auth_wait wait;
    uint64_t gen;  /* session generation the request was signed with */
    bool replayed; /* a request is replayed at most once */
    bool hold;     /* an error answer is being held for the plugin's verdict */
    char *ebuf;    /* the held answer body, at most PG_FWD_HOLD_MAX */
    size_t elen;
    char ctype[128]; /* the answer's Content-Type, for the verdict */
    char conn[256];  /* the answer's Connection header values, comma-joined */
    size_t conn_len;
    bool truncated;        /* the held answer was bigger than PG_FWD_HOLD_MAX */
    int64_t retry_after_s; /* the answer's Retry-After in seconds, -1 if none */
    char made[128];        /* the secret the plugin computed for this request (a signature) */
    size_t made_len;       /* 0: none; wiped when the exchange ends */
    int status;
    int64_t clen; /* upstream Content-Length, -1 unknown */
    bool chunked_up;
    bool head_done, paused, running;
    /* the last progress (answer byte, upload progress, resume after a pause), for the idle
     * timeout; the h1 client's own send progress is its hx.sent_ms */
    uint64_t last_ms;
    uint64_t sent_seen; /* curl: request body bytes sent at the last progress callback */
    /* the upload as the last idle check saw it: bytes written, bytes still in the socket's send
     * queue (unsent or unacknowledged), and when */
    uint64_t up_written, up_queued, up_check_ms;
    size_t body_len;
    struct event idle;
    char errbuf[CURL_ERROR_SIZE];
};

struct pg_fwd_pool {
    struct pg_fwd *free;
    size_t nfree;
};

static size_t on_header(char *p, size_t size, size_t n, void *arg);
static size_t on_body(char *p, size_t size, size_t n, void *arg);
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow);
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

/* Options that never change between requests are set once per easy handle. */
static struct pg_fwd *fwd_create(struct pg_fwd_pool *pool)
{
    struct pg_fwd *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->pool = pool;
    f->easy = curl_easy_init();
    if (!f->easy) {
        fwd_destroy(f);
        return NULL;
    }
    CURL *e = f->easy;
    f->x.done = pg_fwd_curl_done;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &f->x);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    /* upload progress for the idle timeout; switched on per request, only when there is a body */
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, f);
    /* the path is normalised already; curl must not squash dot segments again */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
    /* no proxy: also spares curl reading the *_proxy environment on every transfer */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
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

/* Does this exchange go through h1.c (http:// at an IP address) rather than curl? */
static bool via_h1(const struct pg_fwd *f)
{
    return f->up->h1_addrlen != 0;
}

/* End the upstream exchange (finished or not); the request stays. */
static void stop_transfer(struct pg_fwd *f)
{
    if (!f->running)
        return;
    if (via_h1(f))
        pg_h1_cancel(&f->hx);
    else
        pg_curlev_remove(f->req->w->curl, f->easy);
    f->running = false;
}

/* Detach f from its request and curl, and return it to the pool. */
static void fwd_put(struct pg_fwd *f)
{
    struct pg_req *r = f->req;
    stop_transfer(f);
    pg_auth_cancel(&f->wait);
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

/* ---- upstream request ---- */

/* Append raw bytes to f->hb; build_headers reserved the room. */
static void put_raw(struct pg_fwd *f, const char *p, size_t n)
{
    memcpy(f->hb + f->hused, p, n);
    f->hused += n;
}

/* Append one header line. For h1 it is the wire form "name: value\r\n" and a NULL value (a
 * curl default to suppress) adds nothing. For curl it is "name: value" NUL-terminated and linked
 * into the list; an empty value is written "name;", curl's syntax for sending it empty. */
static int add_hdr(struct pg_fwd *f, size_t *nn, const char *name, size_t nl, const char *value,
                   size_t vl)
{
    size_t need = nl + vl + 4;
    if (f->hused + need > f->hcap)
        return -1;
    if (via_h1(f)) {
        if (value) {
            put_raw(f, name, nl);
            put_raw(f, ": ", 2);
            put_raw(f, value, vl);
            put_raw(f, "\r\n", 2);
        }
        return 0;
    }
    if (*nn >= sizeof f->nodes / sizeof f->nodes[0])
        return -1;
    char *s = f->hb + f->hused;
    size_t len = nl + 1;
    memcpy(s, name, nl);
    if (!value) {
        s[nl] = ':'; /* "name:" with nothing after: curl must not send its default */
    } else if (vl == 0) {
        s[nl] = ';'; /* curl's syntax for a header sent with an empty value */
    } else {
        s[nl] = ':';
        s[nl + 1] = ' ';
        memcpy(s + nl + 2, value, vl);
        len = nl + 2 + vl;
    }
    s[len] = '\0';
    f->hused += len + 1;
    f->nodes[*nn].data = s;
    f->nodes[*nn].next = NULL;
    if (*nn)
        f->nodes[*nn - 1].next = &f->nodes[*nn];
    (*nn)++;
    return 0;
}

static int ensure_cap(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = need < 4096 ? 4096 : need + need / 2;
    char *nb = realloc(*buf, c);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = c;
    return 0;
}

static bool plugin_sets(const struct pg_out_req *o, const char *name, size_t nl)
{
    for (size_t i = 0; i < o->nhdr; i++)
        if (pg_ieq(name, nl, o->hdr[i].name))
            return true;
    return false;
}

static int build_headers(struct pg_fwd *f, const struct pg_out_req *o)
{
    struct pg_req *r = f->req;
    const char *target = f->url + f->path_off;
    size_t tn = strlen(target);
    size_t need = r->hlen + 4 * r->nhdrs + 1024 + 2 * PG_RID_MAX + tn + f->up->url_len;
    for (size_t i = 0; i < o->nhdr; i++)
        need += strlen(o->hdr[i].name) + strlen(o->hdr[i].value) + 4;
    if (ensure_cap(&f->hb, &f->hcap, need))
        return -1;
    f->hused = 0;
    size_t nn = 0;
    if (via_h1(f)) {
        put_raw(f, r->method, strlen(r->method));
        put_raw(f, " ", 1);
        put_raw(f, target, tn);
        put_raw(f, " HTTP/1.1\r\nHost: ", 17);
        put_raw(f, f->up->url + f->up->authority_off, f->up->authority_len);
        put_raw(f, "\r\n", 2);
    }
    size_t cvn = 0, xffn = 0;
    const char *conn = pg_req_header(r, "connection", &cvn);
    const char *xff = pg_req_header(r, "x-forwarded-for", &xffn);
    bool accept = false, ctype = false;
    for (size_t i = 0; i < r->nhdrs; i++) {
        const char *nm = pg_req_hname(r, i);
        size_t nl = r->hdrs[i].name_len;
        if (pg_hdr_req_drop(nm, nl) || (conn && pg_hdr_conn_lists(conn, cvn, nm, nl)) ||
            plugin_sets(o, nm, nl))
            continue;
        accept = accept || pg_ieq(nm, nl, "accept");
        ctype = ctype || pg_ieq(nm, nl, "content-type");
        if (add_hdr(f, &nn, nm, nl, pg_req_hvalue(r, i), r->hdrs[i].value_len))
            return -1;
    }
    char xv[512];
    int k = xff ? snprintf(xv, sizeof xv, "%.*s, %s", (int)xffn, xff, r->peer)
                : snprintf(xv, sizeof xv, "%s", r->peer);
    if (k < 0 || (size_t)k >= sizeof xv)
        k = snprintf(xv, sizeof xv, "%s", r->peer); /* an absurd caller chain is replaced */
    if (k < 0 || (size_t)k >= sizeof xv)
        return -1;
    const char *proto = r->w->tls ? "https" : "http";
    if (add_hdr(f, &nn, "X-Forwarded-For", 15, xv, (size_t)k) ||
        add_hdr(f, &nn, "X-Forwarded-Proto", 17, proto, strlen(proto)) ||
        add_hdr(f, &nn, "X-Request-Id", 12, r->rid, strlen(r->rid)))
        return -1;
    for (size_t i = 0; i < o->nhdr; i++) {
        /* adapters check what they keep; this is the last place before the wire, where a
         * CR or LF from a panel's token would become a header of its own */
        size_t hn = strlen(o->hdr[i].name), hv = strlen(o->hdr[i].value);
        if (!pg_hdr_name_ok(o->hdr[i].name, hn) || !pg_hdr_value_ok(o->hdr[i].value, hv) ||
            add_hdr(f, &nn, o->hdr[i].name, hn, o->hdr[i].value, hv))
            return -1;
    }
    size_t bn = evbuffer_get_length(r->body);
    if (via_h1(f)) {
        /* RFC 9112 6.3: a body has a length; POST, PUT and PATCH say 0 rather than nothing */
        if (bn || (r->method_bit & (PG_M_POST | PG_M_PUT | PG_M_PATCH))) {
            char cl[48];
            int cn = snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", bn);
            put_raw(f, cl, (size_t)cn);
        }
        put_raw(f, "\r\n", 2);
        return 0;
    }
    /* curl adds these unless told not to; the upstream should see only what the caller sent */
    /* curl adds Expect and a form Content-Type only to requests with a body; every header in
     * the list costs curl a scan per transfer, so suppress them only there */
    bool body = bn > 0 || strcmp(r->method, "POST") == 0;
    if ((body && add_hdr(f, &nn, "Expect", 6, NULL, 0)) ||
        (!accept && add_hdr(f, &nn, "Accept", 6, NULL, 0)) ||
        (body && !ctype && add_hdr(f, &nn, "Content-Type", 12, NULL, 0)))
        return -1;
    return 0;
}

/* f->url = upstream url + rest [+ '?' query]; room is left for the plugin's parameter.
 * *target points at the path part (what the panel sees as the request target). */
static int build_url(struct pg_fwd *f, const char **target, size_t *target_len)
{
    size_t rn = f->rest_len, qn = f->query_len;
    size_t need = f->up->url_len + rn + qn + 3 * PG_TOKEN_MAX + 80;
    if (ensure_cap(&f->url, &f->ucap, need))
        return -1;
    char *u = f->url;
    size_t n = 0;
    memcpy(u, f->up->url, f->up->url_len);
    n += f->up->url_len;
    if (rn == 0) {
        u[n++] = '/';
    } else {
        memcpy(u + n, f->rest, rn);
        n += rn;
    }
    f->path_end = n;
    if (qn) {
        u[n++] = '?';
        memcpy(u + n, f->query, qn);
        n += qn;
    }
    u[n] = '\0';
    const char *p = strstr(u, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    f->path_off = p ? (size_t)(p - u) : n;
    *target = u + f->path_off;
    *target_len = n - f->path_off;
    return 0;
}

/* Append the plugin's query parameter to f->url; build_url left the room. */
static void add_query_param(struct pg_fwd *f, const struct pg_out_req *o)
{
    if (!o->add_query_name || !o->add_query_value || strlen(o->add_query_name) > 64 ||
        strlen(o->add_query_value) > PG_TOKEN_MAX)
        return;
    size_t n = strlen(f->url);
    pg_query_add(f->url + n, f->query_len > 0, o->add_query_name, o->add_query_value);
}

/* Hand curl the URL as a CURLU that keeps the upstream's scheme, host and port between
 * requests, so only the path and query are parsed per request. */
static int set_url(struct pg_fwd *f)
{
    if (!f->cu && !(f->cu = curl_url()))
        return -1;
    /* by content, not pointer: a reloaded config may reuse the address for another url */
    if (!f->cu_up || strcmp(f->cu_up, f->up->url) != 0) {
        free(f->cu_up);
        f->cu_up = NULL;
        if (curl_url_set(f->cu, CURLUPART_URL, f->url, CURLU_PATH_AS_IS) != CURLUE_OK)
            return -1;
        f->cu_up = strdup(f->up->url);
        return 0;
    }
    /* build_url found the path; the plugin's parameter may have added the '?' since */
    const char *p = f->url + f->path_off;
    char *q = f->url[f->path_end] == '?' ? f->url + f->path_end : NULL;
    if (q)
        *q = '\0';
    int rc = curl_url_set(f->cu, CURLUPART_PATH, p, CURLU_PATH_AS_IS) != CURLUE_OK ||
             curl_url_set(f->cu, CURLUPART_QUERY, q ? q + 1 : NULL, 0) != CURLUE_OK;
    if (q)
        *q = '?';
    return rc ? -1 : 0;
}

static void set_method(CURL *e, struct pg_req *r, const char *body, size_t bn)
{
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (r->head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    bool post = strcmp(r->method, "POST") == 0;
    if (bn || post) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bn);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, bn ? body : "");
    }
    /* a body makes curl send POST: any other method, GET included, is named explicitly */
    if (!post && (bn || strcmp(r->method, "GET") != 0))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
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
        if (via_h1(f))
            pg_h1_resume(&f->hx);
        else /* may call on_body before it returns; on_body is re-entrant */
            curl_easy_pause(f->easy, CURLPAUSE_CONT);
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

/* The caller's query without any `param` parameter, in f->qbuf (a caller-supplied panel
 * credential never reaches the panel). */
static int strip_param(struct pg_fwd *f, const char *param)
{
    if (ensure_cap(&f->qbuf, &f->qcap, f->query_len + 1))
        return -1;
    f->query_len = pg_query_strip(f->query, f->query_len, param, f->qbuf);
    f->query = f->qbuf;
    return 0;
}

/* Does the body carry `param` at its top level (a JSON object key or a form field)? */
static bool body_has_param(const struct pg_req *r, const char *body, size_t bn, const char *param)
{
    size_t cn;
    const char *ct = pg_req_header(r, "content-type", &cn);
    if (!bn || !ct)
        return false;
    if (pg_iprefix(ct, cn, "application/json")) {
        /* a body the gateway cannot read might still be read by a lenient panel: refused */
        json_t *j = json_loadb(body, bn, JSON_DECODE_ANY, NULL);
        bool has = !j || (json_is_object(j) && json_object_get(j, param));
        json_decref(j);
        return has;
    }
    if (pg_iprefix(ct, cn, "application/x-www-form-urlencoded"))
        return pg_query_has(body, bn, param);
    return false;
}

static void go(struct pg_fwd *f, const struct pg_session *sess);
static int start_h1(struct pg_fwd *f, const char *body, size_t bn);
static int start_curl(struct pg_fwd *f, const char *body, size_t bn);
static const struct pg_h1_ops h1_ops;
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
    const struct pg_session *sess;
    struct pg_err err;
    f->wait.cb = on_auth_ready;
    switch (pg_auth_acquire(r->w, r->conf, r->upstream, &f->wait, &sess, &f->gen, &err)) {
    case PG_AUTH_READY:
        go(f, sess);
        break;
    case PG_AUTH_WAIT:
        break;
    case PG_AUTH_FAILED:
        fail_auth(f, &err, 0);
        break;
    }
}

static void on_auth_ready(struct pg_auth_wait *wt, bool ok, const struct pg_err *err)
{
    struct pg_fwd *f = (struct pg_fwd *)((char *)wt - offsetof(struct pg_fwd, wait));
    if (!ok) {
        fail_auth(f, err, 0);
        return;
    }
    acquire_and_go(f);
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
        if (body_has_param(r, body, bn, param)) {
            fwd_put(f);
            pg_resp_fail(r, PG_E_BAD_REQUEST,
                         "The body is not readable JSON or carries a panel credential.");
            return;
        }
        if (f->query_len && strip_param(f, param)) {
            fwd_put(f);
            pg_resp_fail(r, PG_E_INTERNAL, NULL);
            return;
        }
    }
    acquire_and_go(f);
}

/* Sign and send the request (again, after a re-login or re-sign). */
static void go(struct pg_fwd *f, const struct pg_session *sess)
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
    if ((bn && !body) || build_url(f, &target, &tn)) {
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
    if (up->auth && up->auth->sign(up->auth_state, sess, &o, (uint64_t)time(NULL))) {
        fwd_put(f);
        pg_resp_fail(r, PG_E_INTERNAL, "The gateway could not sign the upstream request.");
        return;
    }
    add_query_param(f, &o);
    f->made_len = 0;
    if (o.made_secret) {
        size_t mn = strlen(o.made_secret);
        if (mn < sizeof f->made) {
            memcpy(f->made, o.made_secret, mn);
            f->made_len = mn;
        }
    }
    if (build_headers(f, &o)) {
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
    int rc = via_h1(f) ? start_h1(f, body, bn) : start_curl(f, body, bn);
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

static int start_h1(struct pg_fwd *f, const char *body, size_t bn)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    f->hx.ops = &h1_ops;
    f->hx.arg = f;
    f->hx.errbuf = f->errbuf;
    f->hx.addr = (const struct sockaddr *)&up->h1_addr;
    f->hx.addrlen = up->h1_addrlen;
    f->hx.head = f->hb;
    f->hx.head_len = f->hused;
    f->hx.body = body;
    f->hx.body_len = bn;
    f->hx.head_method = r->head;
    f->hx.idempotent = !(r->method_bit & (PG_M_POST | PG_M_PATCH));
    return pg_h1_start(r->w->h1, &f->hx);
}

static int start_curl(struct pg_fwd *f, const char *body, size_t bn)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    CURL *e = f->easy;
    if (set_url(f))
        return -1;
    curl_easy_setopt(e, CURLOPT_CURLU, f->cu);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hused ? &f->nodes[0] : NULL);
    set_method(e, r, body, bn);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, bn ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)up->timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, up->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, up->tls_verify ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_CAINFO, up->tls_ca_file);
    return pg_curlev_add(r->w->curl, e);
}

/* ---- upstream answer ---- */

static int parse_status(const char *p, size_t n)
{
    /* "HTTP/1.1 200 OK" or "HTTP/2 200" */
    const char *sp = memchr(p, ' ', n);
    if (!sp || (size_t)(p + n - sp) < 4)
        return -1;
    int s = 0;
    for (int i = 1; i <= 3; i++) {
        char c = sp[i];
        if (c < '0' || c > '9')
            return -1;
        s = s * 10 + (c - '0');
    }
    return s;
}

static int64_t parse_clen(const char *v, size_t n)
{
    int64_t x = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* Drop the head lines whose names the upstream's Connection header lists (hop-by-hop,
 * RFC 9110 7.6.1); the list may come before or after them, so this runs on the whole head. */
static void drop_conn_listed(struct pg_fwd *f)
{
    size_t i = 0, o = 0;
    while (i < f->head_len) {
        const char *line = f->head + i;
        const char *end = memchr(line, '\n', f->head_len - i);
        size_t ll = end ? (size_t)(end - line) + 1 : f->head_len - i;
        const char *colon = memchr(line, ':', ll);
        size_t nl = colon ? (size_t)(colon - line) : 0;
        if (!colon || !pg_hdr_conn_lists(f->conn, f->conn_len, line, nl)) {
            memmove(f->head + o, line, ll);
            o += ll;
        }
        i += ll;
    }
    f->head_len = o;
}

static int send_head(struct pg_fwd *f)
{
    struct pg_req *r = f->req;
    if (f->conn_len)
        drop_conn_listed(f);
    int64_t clen = f->chunked_up ? -1 : f->clen;
    int rc = pg_resp_head(r, f->status, f->head, f->head_len, clen);
    f->head_len = 0;
    f->head_done = true;
    return rc;
}

/* The answer's status line (again after each 1xx curl reports): the head starts over. */
static void head_status(struct pg_fwd *f, int status)
{
    f->last_ms = pg_now_ms();
    f->status = status;
    f->clen = -1;
    f->chunked_up = false;
    f->head_len = 0;
    f->conn_len = 0;
}

/* The head is complete: it goes to the caller, or an error answer is held for the verdict. */
static int head_done(struct pg_fwd *f)
{
    /* both framings: the mark of response splitting (RFC 9112 6.1); refused, not guessed */
    if (f->clen >= 0 && f->chunked_up)
        return -1;
    if (f->status >= 400) {
        f->hold = true; /* an error answer becomes an envelope (SPEC section 5) */
        return 0;
    }
    return send_head(f);
}

/* The gateway's public base for f's upstream: public_url + "/" + name. 0, or -1 if too long. */
static int public_base(const struct pg_fwd *f, char *base, size_t cap)
{
    const struct pg_conf *c = f->req->conf;
    int k = snprintf(base, cap, "%s/%s", c->public_url ? c->public_url : "", f->up->name);
    return k > 0 && (size_t)k < cap ? 0 : -1;
}

/* One answer header: noted for framing and the verdict, filtered, maybe rewritten by the
 * plugin, and kept for the caller's head. 0 ok, -1 the head is too big (or no memory). */
static int head_field(struct pg_fwd *f, const char *p, size_t nl, const char *v, size_t vn)
{
    pg_trim(&v, &vn);
    if (pg_ieq(p, nl, "content-length")) {
        int64_t cl = parse_clen(v, vn);
        if (f->clen >= 0 && cl != f->clen)
            return -1; /* two lengths: which body is the caller's? (RFC 9112 6.3: 502) */
        f->clen = cl;
    } else if (pg_ieq(p, nl, "transfer-encoding"))
        f->chunked_up = true;
    else if (pg_ieq(p, nl, "retry-after")) {
        uint64_t ra;
        if (pg_parse_retry_after(v, vn, (int64_t)time(NULL), &ra) == 0)
            f->retry_after_s = (int64_t)(ra > 86400 ? 86400 : ra);
    } else if (pg_ieq(p, nl, "content-type") && vn < sizeof f->ctype) {
        memcpy(f->ctype, v, vn);
        f->ctype[vn] = '\0';
    }
    if (pg_ieq(p, nl, "connection") && f->conn_len + vn + 1 < sizeof f->conn) {
        if (f->conn_len)
            f->conn[f->conn_len++] = ',';
        memcpy(f->conn + f->conn_len, v, vn);
        f->conn_len += vn;
    }
    if (!pg_hdr_name_ok(p, nl) || pg_hdr_resp_drop(p, nl) || !pg_hdr_value_ok(v, vn))
        return 0;
    char rw[4096], base[1024];
    const struct pg_auth_ops *ops = f->up->auth;
    if (pg_rewrite_is_location(p, nl)) {
        /* every adapter: a redirect to the panel goes through the gateway, without the hash */
        size_t rn = 0;
        int rc = public_base(f, base, sizeof base)
                     ? -1
                     : pg_rewrite_location(v, vn, f->up->url, base, ops ? ops->cred_param : NULL,
                                           rw, sizeof rw, &rn);
        if (rc < 0)
            return 0;
        if (rc > 0 && pg_hdr_value_ok(rw, rn)) {
            v = rw;
            vn = rn;
        }
    } else if (ops && ops->rewrite_header) {
        size_t rn = 0;
        int rc = public_base(f, base, sizeof base)
                     ? 0
                     : ops->rewrite_header(f->up->auth_state, p, nl, v, vn, f->up->url, base, rw,
                                           sizeof rw, &rn);
        if (rc < 0)
            return 0;
        if (rc > 0 && rn <= sizeof rw && pg_hdr_value_ok(rw, rn)) {
            v = rw;
            vn = rn;
        }
    }
    /* the whole answer head is bounded like a request's */
    size_t need = f->head_len + nl + vn + 4;
    if (need > PG_FWD_HEAD_MAX || ensure_cap(&f->head, &f->head_cap, need))
        return -1;
    char *d = f->head + f->head_len;
    memcpy(d, p, nl);
    memcpy(d + nl, ": ", 2);
    memcpy(d + nl + 2, v, vn);
    memcpy(d + nl + 2 + vn, "\r\n", 2);
    f->head_len = need;
    return 0;
}

/* Keep a piece of the held error answer. -1 once it outgrows PG_FWD_HOLD_MAX: it is judged on
 * what was kept, the rest is not worth reading. */
static int hold_body(struct pg_fwd *f, const char *p, size_t len)
{
    if (!f->ebuf && !(f->ebuf = malloc(PG_FWD_HOLD_MAX)))
        return -1;
    size_t room = PG_FWD_HOLD_MAX - f->elen, k = len < room ? len : room;
    memcpy(f->ebuf + f->elen, p, k);
    f->elen += k;
    if (k == len)
        return 0;
    f->truncated = true;
    return -1;
}

/* curl's header callback: one raw line at a time. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct pg_fwd *f = arg;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        int st = parse_status(p, len);
        head_status(f, st);
        return st < 100 ? 0 : len;
    }
    f->last_ms = pg_now_ms();
    size_t ln = len;
    while (ln && (p[ln - 1] == '\r' || p[ln - 1] == '\n'))
        ln--;
    if (ln == 0) {
        if (f->status < 200) /* the end of a 1xx block: the real answer follows */
            return len;
        return head_done(f) ? 0 : len;
    }
    const char *colon = memchr(p, ':', ln);
    if (!colon || p[0] == ' ' || p[0] == '\t')
        return len; /* obs-fold or garbage: dropped rather than passed on */
    size_t nl = (size_t)(colon - p);
    return head_field(f, p, nl, colon + 1, ln - nl - 1) ? 0 : len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct pg_fwd *f = arg;
    size_t len = size * n;
    f->last_ms = pg_now_ms();
    if (f->hold)
        return hold_body(f, p, len) ? 0 : len;
    if (!f->head_done)
        return 0;
    if (pg_resp_pending(f->req) >= PG_FWD_HIGH) {
        f->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    return pg_resp_body(f->req, p, len) ? 0 : len;
}

/* ---- the own client's callbacks (h1.c): the same steps as curl's ---- */

static int h1_status(void *arg, int status)
{
    head_status(arg, status);
    return 0;
}

static int h1_header(void *arg, const char *name, size_t nl, const char *value, size_t vn)
{
    return head_field(arg, name, nl, value, vn);
}

static int h1_head_end(void *arg)
{
    return head_done(arg);
}

/* Unlike curl's, these bytes are taken in any case: the client stops reading after them, so a
 * slow caller holds at most PG_FWD_HIGH plus one read. */
static enum pg_h1_more h1_body(void *arg, const char *p, size_t n)
{
    struct pg_fwd *f = arg;
    f->last_ms = pg_now_ms();
    if (f->hold)
        return hold_body(f, p, n) ? PG_H1_ABORT : PG_H1_GO;
    if (!f->head_done || pg_resp_body(f->req, p, n))
        return PG_H1_ABORT;
    if (pg_resp_pending(f->req) < PG_FWD_HIGH)
        return PG_H1_GO;
    f->paused = true;
    return PG_H1_PAUSE;
}

static void fwd_done(struct pg_fwd *f, CURLcode res);

static void h1_done(void *arg, CURLcode res)
{
    struct pg_fwd *f = arg;
    f->running = false; /* the client let go of the transfer already */
    fwd_done(f, res);
}

static const struct pg_h1_ops h1_ops = {
    .status = h1_status,
    .header = h1_header,
    .head_end = h1_head_end,
    .body = h1_body,
    .done = h1_done,
};

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
    /* the panel said slow down (429, Navixy code 15): nothing reaches it until it has passed */
    if (pe.code == PG_E_RATE_LIMITED)
        pg_limit_cooldown(r->w->limit, up,
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
        if (f->replayed || pg_auth_expired(f->req->conf, f->req->upstream, f->gen, pg_now_ms()) ==
                               PG_EXPIRY_REFUSED)
            return false;
        f->replayed = true;
        acquire_and_go(f);
        return true;
    }
    if (v == PG_VERDICT_RESIGN && !f->replayed) {
        f->replayed = true;
        acquire_and_go(f);
        return true;
    }
    fail_auth(f, &err, f->status);
    return true;
}

/* Replace the gateway's secrets in the held error answer before anything is copied from it
 * (the plugin's verdict, the envelope's upstream_message, upstream_code and details), so a
 * message cut at 512 bytes cannot end in a secret's first half. A body that grows past
 * PG_FWD_HOLD_MAX is cut after redaction, like a long answer. 0 ok, -1 out of memory. */
static int redact_held(struct pg_fwd *f)
{
    struct pg_span sec[PG_REDACT_MAX];
    size_t nsec = pg_auth_secrets(f->req->conf, f->req->upstream, sec, PG_REDACT_MAX - 1);
    if (f->made_len)
        sec[nsec++] = (struct pg_span){ f->made, f->made_len };
    if (nsec == 0 || f->elen == 0)
        return 0;
    char *red;
    size_t rn;
    if (pg_redact_alloc(sec, nsec, f->ebuf, f->elen, &red, &rn))
        return -1;
    if (!red)
        return 0;
    if (rn > PG_FWD_HOLD_MAX) {
        rn = PG_FWD_HOLD_MAX;
        f->truncated = true;
    }
    memcpy(f->ebuf, red, rn);
    f->elen = rn;
    free(red);
    return 0;
}

void pg_fwd_curl_done(CURL *e, CURLcode res, void *priv)
{
    (void)e;
    fwd_done(priv, res);
}

/* The exchange is over, whichever client ran it and however it ended. */
static void fwd_done(struct pg_fwd *f, CURLcode res)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    if (res != CURLE_OK && res != CURLE_WRITE_ERROR)
        pg_log(PG_LOG_WARN, "request %s: upstream %s: %s", r->rid, up->name,
               f->errbuf[0] ? f->errbuf : curl_easy_strerror(res));
    stop_transfer(f);
    event_del(&f->idle);
    if (f->hold && (res == CURLE_OK || f->truncated)) {
        if (redact_held(f)) {
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

/* curl's progress callback (requests with a body only): upload progress is progress. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct pg_fwd *f = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    if (ulnow > 0 && (uint64_t)ulnow != f->sent_seen) {
        f->sent_seen = (uint64_t)ulnow;
        f->last_ms = pg_now_ms();
    }
    return 0;
}

/* Upload progress since the last idle check: bytes written, or bytes leaving the socket's send
 * queue (the upstream acknowledged them). Progress moves last_ms to when it was seen at the
 * earliest: the last write, or else the previous check. True while request bytes are unsent or
 * queued (the check keeps looking every PG_FWD_UPLOAD_POLL_MS). */
static bool upload_check(struct pg_fwd *f, uint64_t now)
{
    uint64_t written, wrote_ms;
    int fd = -1;
    if (via_h1(f)) {
        written = f->hx.sent;
        wrote_ms = f->hx.sent_ms;
        fd = pg_h1_fd(&f->hx);
    } else {
        written = f->sent_seen;
        wrote_ms = f->last_ms; /* on_progress moved it at the write */
        curl_socket_t s;
        if (curl_easy_getinfo(f->easy, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK &&
            s != CURL_SOCKET_BAD)
            fd = (int)s;
    }
    int q = 0;
    if (fd < 0 || ioctl(fd, TIOCOUTQ, &q) < 0 || q < 0)
        q = 0;
    if (written != f->up_written || (uint64_t)q != f->up_queued) {
        uint64_t at = wrote_ms > f->up_check_ms ? wrote_ms : f->up_check_ms;
        if (at > f->last_ms)
            f->last_ms = at;
    }
    f->up_written = written;
    f->up_queued = (uint64_t)q;
    f->up_check_ms = now;
    uint64_t total = via_h1(f) ? f->hx.head_len + f->hx.body_len : f->body_len;
    return q > 0 || written < total;
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
    bool uploading = upload_check(f, now);
    uint64_t last = f->last_ms;
    if (via_h1(f) && f->hx.sent_ms > last)
        last = f->hx.sent_ms;
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
    fwd_done(f, CURLE_OPERATION_TIMEDOUT);
}
