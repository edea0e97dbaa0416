/* fakepanels.c -- fake upstream panels for integration tests and demos: one evhttp server per
 * --<service> PORT answering from that service's route table, plus a bound-but-not-listening
 * port that refuses connections deterministically. */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/queue.h> /* before keyvalq_struct.h: TAILQ_FOREACH */
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

#define FP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define FP_MAX_BODY (16 << 20)            /* bytes; echo accepts bodies up to 16 MiB */
#define FP_MAX_HEADERS (64 << 10)         /* bytes of request line plus headers */
#define FP_CHUNK ((size_t)64 << 10)       /* bytes queued per /large step */
#define FP_LARGE_MAX ((uint64_t)16 << 30) /* bytes; /large refuses more than 16 GiB */
#define FP_STREAM_MAX 1000000             /* lines per /stream */
#define FP_DELAY_MAX_MS 600000            /* 10 min, longer than any test timeout */
#define FP_PATTERN "0123456789abcdef\n"   /* /large body, repeated and truncated */
#define FP_PATTERN_LEN (sizeof(FP_PATTERN) - 1)
#define FP_METHODS                                                                                 \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH)

struct fp_service;

/* Answers req. Returns 0 once a reply is sent or scheduled, -1 if nothing was sent (the caller
 * then answers 500). query holds the decoded query parameters (borrowed; empty for fallbacks). */
typedef int fp_handler_fn(struct fp_service *svc, struct evhttp_request *req,
                          const struct evkeyvalq *query);

struct fp_route {
    const char *suffix; /* starts with '/': matches "/stream" and "/any/prefix/stream" */
    fp_handler_fn *fn;
};

/* One kind of fake panel, started by --<name> PORT. Adding a panel is adding a row to
 * fp_services with its route table; /_fake/stats and /_fake/reset come with every service. */
struct fp_service_def {
    const char *name;
    const struct fp_route *routes; /* ends with { NULL, NULL } */
    fp_handler_fn *fallback;       /* paths no route matches */
};

static fp_handler_fn h_stats, h_reset, h_fake_unknown;
static fp_handler_fn h_stream, h_large, h_slow, h_status, h_static, h_echo;

static const struct fp_route fake_routes[] = {
    { "/_fake/stats", h_stats },
    { "/_fake/reset", h_reset },
    { NULL, NULL },
};

static const struct fp_route echo_routes[] = {
    { "/stream", h_stream }, { "/large", h_large },   { "/slow", h_slow },
    { "/status", h_status }, { "/static", h_static }, { NULL, NULL },
};

static const struct fp_service_def fp_services[] = {
    { "echo", echo_routes, h_echo },
};

#define FP_NSERVICES FP_ARRAY_LEN(fp_services)

struct fp_ctx;

struct fp_service {
    const struct fp_service_def *def;
    struct fp_ctx *ctx;
    struct evhttp *http; /* NULL when the service was not requested */
    uint16_t port;
    uint64_t hits;     /* requests outside /_fake/ since start or the last reset */
    char *last_path;   /* owned; path of the last counted request, NULL before the first */
    uint64_t inflight; /* deferred replies (stream, large, slow) not yet finished */
};

/* A reply that outlives its request callback. Freed exactly once: when it completes, when evhttp
 * drops the connection under it (close callback), or at shutdown. */
struct fp_op {
    struct fp_op *prev, *next; /* ctx->ops, so shutdown can find it */
    struct fp_service *svc;
    struct evhttp_request *req; /* owned by evhttp while attached to its connection */
    struct evhttp_connection *evcon;
    struct event *timer;  /* stream and slow only */
    struct evbuffer *buf; /* next piece handed to evhttp; evhttp moves it out */
    uint64_t done, total; /* stream: lines; large: bytes */
    struct timeval delay; /* stream: between lines; slow: before the reply */
};

struct fp_ctx {
    struct event_base *base;
    struct event *sigterm, *sigint;
    struct fp_service services[FP_NSERVICES];
    evutil_socket_t refuse_fd; /* -1 when --refuse was not given */
    char *pattern; /* FP_CHUNK + FP_PATTERN_LEN bytes of FP_PATTERN: a chunk at any phase fits */
    struct fp_op *ops;
};

struct fp_opts {
    const char *host;
    uint16_t ports[FP_NSERVICES]; /* 0: service not requested */
    uint16_t refuse_port;         /* 0: no refusing port */
};

/* ---- small helpers --------------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9') /* strtoull would accept spaces and a sign */
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Reads decimal parameter key: def when absent, -1 when malformed or outside [min, max]. */
static int query_u64(const struct evkeyvalq *q, const char *key, uint64_t def, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    const char *s = evhttp_find_header(q, key);

    if (s == NULL) {
        *out = def;
        return 0;
    }
    if (parse_u64(s, max, out) < 0 || *out < min)
        return -1;
    return 0;
}

static struct timeval ms_to_tv(uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static fp_handler_fn *find_route(const struct fp_route *routes, const char *path)
{
    for (const struct fp_route *r = routes; r->suffix != NULL; r++) {
        if (ends_with(path, r->suffix))
            return r->fn;
    }
    return NULL;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    static const struct {
        enum evhttp_cmd_type cmd;
        const char *name;
    } names[] = {
        { EVHTTP_REQ_GET, "GET" },       { EVHTTP_REQ_POST, "POST" },
        { EVHTTP_REQ_HEAD, "HEAD" },     { EVHTTP_REQ_PUT, "PUT" },
        { EVHTTP_REQ_DELETE, "DELETE" }, { EVHTTP_REQ_OPTIONS, "OPTIONS" },
        { EVHTTP_REQ_TRACE, "TRACE" },   { EVHTTP_REQ_CONNECT, "CONNECT" },
        { EVHTTP_REQ_PATCH, "PATCH" },
    };

    for (size_t i = 0; i < FP_ARRAY_LEN(names); i++) {
        if (names[i].cmd == cmd)
            return names[i].name;
    }
    return "UNKNOWN";
}

static const char *request_path(const struct evhttp_request *req)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    return path != NULL ? path : "";
}

/* ---- JSON ------------------------------------------------------------------------------------ */

/* JSON string of p[0..n). Input that is not UTF-8 is taken as Latin-1 so any body or header can
 * be echoed (lossy; body_len still reports the raw size). */
static json_t *jstr(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    char *u;
    size_t k = 0;

    if (s != NULL || n > SIZE_MAX / 2)
        return s;
    if ((u = malloc(2 * n + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x80) {
            u[k++] = (char)c;
        } else {
            u[k++] = (char)(0xC0 | (c >> 6));
            u[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    s = json_stringn(u, k);
    free(u);
    return s;
}

static json_t *jstr0(const char *s)
{
    return jstr(s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* ["Name", "value"]; NULL when out of memory. */
static json_t *header_pair(const struct evkeyval *h)
{
    json_t *pair = json_array();

    if (pair == NULL || json_array_append_new(pair, jstr0(h->key)) < 0 ||
        json_array_append_new(pair, jstr0(h->value)) < 0) {
        json_decref(pair);
        return NULL;
    }
    return pair;
}

/* All request headers in received order, names in their original case. */
static json_t *headers_json(struct evhttp_request *req)
{
    json_t *arr = json_array();
    const struct evkeyval *h;

    if (arr == NULL)
        return NULL;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        if (json_array_append_new(arr, header_pair(h)) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static int dump_to_evbuffer(const char *p, size_t n, void *arg)
{
    return evbuffer_add(arg, p, n);
}

/* ---- replies --------------------------------------------------------------------------------- */

/* Always answers: a JSON {"error": msg}, or a bare status when even that cannot be built.
 * Drops headers a handler may have set for the reply it could not send. */
static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    json_t *root = json_pack("{s:s}", "error", msg);
    struct evbuffer *buf = evbuffer_new();

    evhttp_clear_headers(out);
    if (root != NULL && buf != NULL &&
        json_dump_callback(root, dump_to_evbuffer, buf, JSON_COMPACT) == 0 &&
        evhttp_add_header(out, "Content-Type", "application/json") == 0) {
        evhttp_send_reply(req, code, NULL, buf);
    } else {
        evhttp_send_reply(req, code, NULL, NULL);
    }
    json_decref(root);
    if (buf != NULL)
        evbuffer_free(buf);
}

/* Sends buf (emptied, still the caller's) as application/json. */
static int reply_buf(struct evhttp_request *req, int code, struct evbuffer *buf)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    if (evhttp_add_header(out, "Content-Type", "application/json") < 0)
        return -1;
    evhttp_send_reply(req, code, NULL, buf);
    return 0;
}

static int reply_bytes(struct evhttp_request *req, int code, const char *p, size_t n)
{
    struct evbuffer *buf = evbuffer_new();
    int rc = -1;

    if (buf == NULL)
        return -1;
    if (evbuffer_add(buf, p, n) == 0)
        rc = reply_buf(req, code, buf);
    evbuffer_free(buf);
    return rc;
}

static int reply_text(struct evhttp_request *req, int code, const char *s)
{
    return reply_bytes(req, code, s, strlen(s));
}

/* root is borrowed. */
static int reply_json(struct evhttp_request *req, int code, const json_t *root)
{
    struct evbuffer *buf = evbuffer_new();
    int rc = -1;

    if (buf == NULL)
        return -1;
    if (json_dump_callback(root, dump_to_evbuffer, buf, JSON_COMPACT) == 0)
        rc = reply_buf(req, code, buf);
    evbuffer_free(buf);
    return rc;
}

/* ---- deferred replies ------------------------------------------------------------------------ */

/* Releases op; never its request, which evhttp or the caller still holds. */
static void op_free(struct fp_op *op)
{
    struct fp_ctx *ctx = op->svc->ctx;

    evhttp_connection_set_closecb(op->evcon, NULL, NULL);
    if (op->timer != NULL)
        event_free(op->timer);
    if (op->buf != NULL)
        evbuffer_free(op->buf);
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        ctx->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->svc->inflight--;
    free(op);
}

/* evhttp is freeing the connection under a deferred reply: the client left, a write failed, a
 * timeout hit, or shutdown. On EOF or timeout evhttp first detaches the unfinished request from
 * the connection and then nobody but us will free it. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct fp_op *op = arg;
    struct evhttp_request *req = op->req;

    (void)evcon;
    op_free(op);
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

/* on_timer may be NULL (no timer). Counts as inflight until op_free. */
static struct fp_op *op_new(struct fp_service *svc, struct evhttp_request *req,
                            event_callback_fn on_timer)
{
    struct fp_op *op = calloc(1, sizeof(*op));

    if (op == NULL)
        return NULL;
    op->svc = svc;
    op->req = req;
    op->evcon = evhttp_request_get_connection(req);
    op->next = svc->ctx->ops;
    if (op->next != NULL)
        op->next->prev = op;
    svc->ctx->ops = op;
    svc->inflight++;
    evhttp_connection_set_closecb(op->evcon, on_conn_close, op);

    op->buf = evbuffer_new();
    if (on_timer != NULL)
        op->timer = evtimer_new(svc->ctx->base, on_timer, op);
    if (op->buf == NULL || (on_timer != NULL && op->timer == NULL)) {
        op_free(op);
        return NULL;
    }
    return op;
}

/* Ends a reply begun with evhttp_send_reply_start. op goes first: ending the reply can free the
 * connection, which would call on_conn_close. */
static void op_finish(struct fp_op *op)
{
    struct evhttp_request *req = op->req;

    op_free(op);
    evhttp_send_reply_end(req);
}

/* A started reply cannot go on (out of memory): drop the connection so the client sees a
 * truncated reply rather than a wrong one. Frees the request with the connection. */
static void op_abort(struct fp_op *op)
{
    struct evhttp_connection *evcon = op->evcon;

    op_free(op);
    evhttp_connection_free(evcon);
}

/* evhttp stops reading once a request is in, so a client leaving before a delayed reply would go
 * unnoticed (and stay inflight) until the write. Read without a read callback, as evhttp itself
 * does while writing: EOF then reaches evhttp's event callback, which frees the connection. */
static void watch_close(struct fp_op *op)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(op->evcon);
    bufferevent_data_cb readcb, writecb;
    bufferevent_event_cb eventcb;
    void *cbarg;

    bufferevent_getcb(bev, &readcb, &writecb, &eventcb, &cbarg);
    bufferevent_setcb(bev, NULL, writecb, eventcb, cbarg);
    bufferevent_enable(bev, EV_READ);
}

/* ---- /_fake/ endpoints ----------------------------------------------------------------------- */

static int h_stats(struct fp_service *svc, struct evhttp_request *req,
                   const struct evkeyvalq *query)
{
    json_t *root = json_object();
    int rc = -1;

    (void)query;
    if (root != NULL &&
        json_object_set_new(root, "hits", json_integer((json_int_t)svc->hits)) == 0 &&
        json_object_set_new(root, "last_path", jstr0(svc->last_path)) == 0 &&
        json_object_set_new(root, "inflight", json_integer((json_int_t)svc->inflight)) == 0)
        rc = reply_json(req, HTTP_OK, root);
    json_decref(root);
    return rc;
}

/* inflight is a gauge of live replies, not a counter, so it survives the reset. */
static int h_reset(struct fp_service *svc, struct evhttp_request *req,
                   const struct evkeyvalq *query)
{
    (void)query;
    svc->hits = 0;
    free(svc->last_path);
    svc->last_path = NULL;
    return reply_text(req, HTTP_OK, "{\"ok\":true}");
}

static int h_fake_unknown(struct fp_service *svc, struct evhttp_request *req,
                          const struct evkeyvalq *query)
{
    (void)svc;
    (void)query;
    reply_error(req, HTTP_NOTFOUND, "unknown /_fake/ endpoint");
    return 0;
}

/* ---- echo service ---------------------------------------------------------------------------- */

static void stream_next(struct fp_op *op)
{
    if (op->done < op->total) {
        if (evbuffer_add_printf(op->buf, "{\"i\":%" PRIu64 "}\n", op->done) < 0) {
            op_abort(op);
            return;
        }
        evhttp_send_reply_chunk(op->req, op->buf);
        /* evhttp leaves the chunk in place for HEAD, which has no body */
        evbuffer_drain(op->buf, evbuffer_get_length(op->buf));
        op->done++;
    }
    if (op->done == op->total)
        op_finish(op);
    else if (evtimer_add(op->timer, &op->delay) < 0)
        op_abort(op);
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stream_next(arg);
}

/* n lines {"i":K}\n, chunked, delay_ms apart; the first goes out with the headers. */
static int h_stream(struct fp_service *svc, struct evhttp_request *req,
                    const struct evkeyvalq *query)
{
    uint64_t n, delay_ms;
    struct fp_op *op;

    if (query_u64(query, "n", 5, 0, FP_STREAM_MAX, &n) < 0 ||
        query_u64(query, "delay_ms", 100, 0, FP_DELAY_MAX_MS, &delay_ms) < 0) {
        reply_error(req, HTTP_BADREQUEST, "bad n or delay_ms");
        return 0;
    }
    if (evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/x-ndjson") < 0)
        return -1;
    if ((op = op_new(svc, req, on_stream_timer)) == NULL)
        return -1;
    op->total = n;
    op->delay = ms_to_tv(delay_ms);
    evhttp_send_reply_start(req, HTTP_OK, NULL);
    stream_next(op);
    return 0;
}

/* Drain callback: evhttp calls it once everything queued has left for the socket, so at most one
 * FP_CHUNK is queued per reply whatever its size. The chunk references ctx->pattern, no copy. */
static void large_next(struct evhttp_connection *evcon, void *arg)
{
    struct fp_op *op = arg;
    const char *p = op->svc->ctx->pattern + op->done % FP_PATTERN_LEN;
    uint64_t left = op->total - op->done;
    size_t n = left < FP_CHUNK ? (size_t)left : FP_CHUNK;

    (void)evcon;
    if (n == 0) {
        op_finish(op);
        return;
    }
    if (evbuffer_add_reference(op->buf, p, n, NULL, NULL) < 0) {
        op_abort(op);
        return;
    }
    op->done += n;
    evhttp_send_reply_chunk_with_cb(op->req, op->buf, large_next, op);
}

/* An explicit Content-Length makes evhttp_send_reply_start skip chunked encoding. */
static int h_large(struct fp_service *svc, struct evhttp_request *req,
                   const struct evkeyvalq *query)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char len[24];
    uint64_t n;
    struct fp_op *op;
    int k;

    if (query_u64(query, "bytes", 1048576, 0, FP_LARGE_MAX, &n) < 0) {
        reply_error(req, HTTP_BADREQUEST, "bad bytes");
        return 0;
    }
    k = snprintf(len, sizeof(len), "%" PRIu64, n);
    if (k < 0 || (size_t)k >= sizeof(len))
        return -1;
    if (evhttp_add_header(out, "Content-Type", "text/plain") < 0 ||
        evhttp_add_header(out, "Content-Length", len) < 0)
        return -1;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        /* no body is sent for HEAD, so the drain callback would never run */
        evhttp_send_reply(req, HTTP_OK, NULL, NULL);
        return 0;
    }
    if ((op = op_new(svc, req, NULL)) == NULL)
        return -1;
    op->total = n;
    evhttp_send_reply_start(req, HTTP_OK, NULL);
    large_next(op->evcon, op);
    return 0;
}

static void on_slow_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fp_op *op = arg;
    struct evhttp_request *req = op->req;

    (void)fd;
    (void)what;
    op_free(op);
    if (reply_text(req, HTTP_OK, "{\"slow\":true}") < 0)
        reply_error(req, HTTP_INTERNAL, "internal_error");
}

static int h_slow(struct fp_service *svc, struct evhttp_request *req, const struct evkeyvalq *query)
{
    uint64_t delay_ms;
    struct fp_op *op;

    if (query_u64(query, "delay_ms", 2000, 0, FP_DELAY_MAX_MS, &delay_ms) < 0) {
        reply_error(req, HTTP_BADREQUEST, "bad delay_ms");
        return 0;
    }
    if ((op = op_new(svc, req, on_slow_timer)) == NULL)
        return -1;
    op->delay = ms_to_tv(delay_ms);
    if (evtimer_add(op->timer, &op->delay) < 0) {
        op_free(op);
        return -1;
    }
    watch_close(op);
    return 0;
}

/* 1xx is excluded: as a final answer it would leave the client waiting for another. */
static int h_status(struct fp_service *svc, struct evhttp_request *req,
                    const struct evkeyvalq *query)
{
    const char *body = evhttp_find_header(query, "body");
    char dflt[32];
    uint64_t code;
    int n;

    (void)svc;
    if (query_u64(query, "code", 200, 200, 599, &code) < 0) {
        reply_error(req, HTTP_BADREQUEST, "bad code (200-599)");
        return 0;
    }
    if (body != NULL)
        return reply_text(req, (int)code, body);
    n = snprintf(dflt, sizeof(dflt), "{\"status\":%" PRIu64 "}", code);
    if (n < 0 || (size_t)n >= sizeof(dflt))
        return -1;
    return reply_bytes(req, (int)code, dflt, (size_t)n);
}

static int h_static(struct fp_service *svc, struct evhttp_request *req,
                    const struct evkeyvalq *query)
{
    (void)svc;
    (void)query;
    return reply_text(
        req, HTTP_OK,
        "{\"success\":true,\"list\":[{\"id\":560,\"label\":\"GV55\",\"group_id\":12}]}");
}

/* Everything the gateway sent, for tests to assert on. */
static json_t *echo_json(struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t body_len = evbuffer_get_length(in);
    const char *body = body_len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    json_t *root = json_object();

    if (root == NULL || body == NULL ||
        json_object_set_new(root, "method",
                            json_string(method_name(evhttp_request_get_command(req)))) < 0 ||
        json_object_set_new(root, "uri", jstr0(evhttp_request_get_uri(req))) < 0 ||
        json_object_set_new(root, "path", jstr0(request_path(req))) < 0 ||
        json_object_set_new(root, "query", jstr0(evhttp_uri_get_query(uri))) < 0 ||
        json_object_set_new(root, "headers", headers_json(req)) < 0 ||
        json_object_set_new(root, "body", jstr(body, body_len)) < 0 ||
        json_object_set_new(root, "body_len", json_integer((json_int_t)body_len)) < 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

static int h_echo(struct fp_service *svc, struct evhttp_request *req, const struct evkeyvalq *query)
{
    json_t *root = echo_json(req);
    int rc = -1;

    (void)svc;
    (void)query;
    if (root == NULL)
        return -1;
    if (evhttp_add_header(evhttp_request_get_output_headers(req), "X-Fake-Echo", "1") == 0)
        rc = reply_json(req, HTTP_OK, root);
    json_decref(root);
    return rc;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static void count_hit(struct fp_service *svc, const char *path)
{
    svc->hits++;
    free(svc->last_path);
    svc->last_path = strdup(path); /* NULL on OOM: stats then shows "" */
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct fp_service *svc = arg;
    const char *path = request_path(req);
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq query;
    fp_handler_fn *fn;

    if (strstr(path, "/_fake/") != NULL) {
        fn = find_route(fake_routes, path);
        if (fn == NULL)
            fn = h_fake_unknown;
    } else {
        count_hit(svc, path);
        fn = find_route(svc->def->routes, path);
    }
    TAILQ_INIT(&query);
    if (fn == NULL) {
        /* the fallback takes any query, even one evhttp cannot split into parameters */
        fn = svc->def->fallback;
    } else if (q != NULL && evhttp_parse_query_str(q, &query) < 0) {
        reply_error(req, HTTP_BADREQUEST, "malformed query");
        return;
    }
    if (fn(svc, req, &query) < 0)
        reply_error(req, HTTP_INTERNAL, "internal_error");
    evhttp_clear_headers(&query);
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Numeric addresses only: a name would need a blocking DNS lookup. */
static int host_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                         socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (evutil_inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
        return 0;
    }
    if (evutil_inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

/* Bound but never listening: the kernel answers every SYN with RST, so connect() fails with
 * ECONNREFUSED, and holding the port keeps anything else from taking it. No SO_REUSEADDR: on
 * Linux two non-listening sockets that both set it may share a port. */
static evutil_socket_t bind_refuse(const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    evutil_socket_t fd;

    if (host_sockaddr(host, port, &ss, &len) < 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        evutil_closesocket(fd);
        return -1;
    }
    return fd;
}

static int service_start(struct fp_service *svc, const char *host)
{
    svc->http = evhttp_new(svc->ctx->base);
    if (svc->http == NULL)
        return -1;
    evhttp_set_allowed_methods(svc->http, FP_METHODS);
    evhttp_set_max_body_size(svc->http, FP_MAX_BODY);
    evhttp_set_max_headers_size(svc->http, FP_MAX_HEADERS);
    evhttp_set_gencb(svc->http, on_request, svc);
    if (evhttp_bind_socket_with_handle(svc->http, host, svc->port) == NULL) {
        fprintf(stderr, "fakepanels: --%s: cannot listen on %s:%u: %s\n", svc->def->name, host,
                (unsigned)svc->port, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct fp_ctx *ctx = arg;

    (void)sig;
    (void)what;
    event_base_loopbreak(ctx->base);
}

static char *pattern_new(void)
{
    size_t n = FP_CHUNK + FP_PATTERN_LEN;
    char *p = malloc(n);

    for (size_t i = 0; p != NULL && i < n; i++)
        p[i] = FP_PATTERN[i % FP_PATTERN_LEN];
    return p;
}

static int signals_start(struct fp_ctx *ctx)
{
    ctx->sigterm = evsignal_new(ctx->base, SIGTERM, on_signal, ctx);
    ctx->sigint = evsignal_new(ctx->base, SIGINT, on_signal, ctx);
    if (ctx->sigterm == NULL || ctx->sigint == NULL || evsignal_add(ctx->sigterm, NULL) < 0 ||
        evsignal_add(ctx->sigint, NULL) < 0)
        return -1;
    return 0;
}

/* On failure the caller still runs ctx_deinit. */
static int ctx_init(struct fp_ctx *ctx, const struct fp_opts *o)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->refuse_fd = -1;
    ctx->base = event_base_new();
    ctx->pattern = pattern_new();
    if (ctx->base == NULL || ctx->pattern == NULL || signals_start(ctx) < 0) {
        fprintf(stderr, "fakepanels: out of memory\n");
        return -1;
    }
    if (o->refuse_port != 0 && (ctx->refuse_fd = bind_refuse(o->host, o->refuse_port)) < 0) {
        fprintf(stderr, "fakepanels: --refuse: cannot bind %s:%u: %s\n", o->host,
                (unsigned)o->refuse_port, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < FP_NSERVICES; i++) {
        struct fp_service *svc = &ctx->services[i];
        svc->def = &fp_services[i];
        svc->ctx = ctx;
        svc->port = o->ports[i];
        if (svc->port != 0 && service_start(svc, o->host) < 0)
            return -1;
    }
    return 0;
}

/* Ops go first (they point into connections), connections before the pattern they reference,
 * events before the base. */
static void ctx_deinit(struct fp_ctx *ctx)
{
    while (ctx->ops != NULL)
        op_free(ctx->ops); /* evhttp_free below frees their requests with the connections */
    for (size_t i = 0; i < FP_NSERVICES; i++) {
        if (ctx->services[i].http != NULL)
            evhttp_free(ctx->services[i].http);
        free(ctx->services[i].last_path);
    }
    if (ctx->refuse_fd >= 0)
        evutil_closesocket(ctx->refuse_fd);
    free(ctx->pattern);
    if (ctx->sigterm != NULL)
        event_free(ctx->sigterm);
    if (ctx->sigint != NULL)
        event_free(ctx->sigint);
    if (ctx->base != NULL)
        event_base_free(ctx->base);
}

/* ---- command line ---------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: fakepanels [--host ADDR] [--refuse PORT]");
    for (size_t i = 0; i < FP_NSERVICES; i++)
        fprintf(f, " [--%s PORT]", fp_services[i].name);
    fprintf(f, "\n  ADDR is a numeric IPv4/IPv6 address (default 127.0.0.1); at least one PORT.\n"
               "  Prints \"ready\" once every port is bound; exits 0 on SIGTERM/SIGINT.\n");
}

/* Where the value of option name goes, NULL if unknown. */
static uint16_t *port_slot(struct fp_opts *o, const char *name)
{
    if (strncmp(name, "--", 2) != 0)
        return NULL;
    if (strcmp(name + 2, "refuse") == 0)
        return &o->refuse_port;
    for (size_t i = 0; i < FP_NSERVICES; i++) {
        if (strcmp(name + 2, fp_services[i].name) == 0)
            return &o->ports[i];
    }
    return NULL;
}

static int parse_port(const char *s, uint16_t *out)
{
    uint64_t v;

    if (parse_u64(s, 65535, &v) < 0 || v == 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int parse_opt(struct fp_opts *o, const char *name, const char *val)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t *slot;

    if (strcmp(name, "--host") == 0) {
        if (host_sockaddr(val, 0, &ss, &len) < 0) {
            fprintf(stderr, "fakepanels: --host: '%s' is not a numeric IP address\n", val);
            return -1;
        }
        o->host = val;
        return 0;
    }
    if ((slot = port_slot(o, name)) == NULL) {
        fprintf(stderr, "fakepanels: unknown option '%s'\n", name);
        return -1;
    }
    if (*slot != 0) {
        fprintf(stderr, "fakepanels: %s given twice\n", name);
        return -1;
    }
    if (parse_port(val, slot) < 0) {
        fprintf(stderr, "fakepanels: %s: bad port '%s' (1-65535)\n", name, val);
        return -1;
    }
    return 0;
}

static bool any_port(const struct fp_opts *o)
{
    for (size_t i = 0; i < FP_NSERVICES; i++) {
        if (o->ports[i] != 0)
            return true;
    }
    return o->refuse_port != 0;
}

/* 0: run; 1: help was printed; -1: bad arguments, already reported. */
static int parse_args(int argc, char **argv, struct fp_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fakepanels: %s needs a value\n", argv[i]);
            return -1;
        }
        if (parse_opt(o, argv[i], argv[i + 1]) < 0)
            return -1;
    }
    if (!any_port(o)) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct fp_opts opts;
    struct fp_ctx ctx;
    int rc = parse_args(argc, argv, &opts);

    if (rc != 0)
        return rc > 0 ? 0 : 2;
    /* a client that leaves mid-reply must turn into EPIPE on write, not kill the process */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return 1;
    rc = 1;
    if (ctx_init(&ctx, &opts) == 0 && puts("ready") != EOF && fflush(stdout) == 0 &&
        event_base_dispatch(ctx.base) == 0)
        rc = 0;
    ctx_deinit(&ctx);
    libevent_global_shutdown();
    return rc;
}
