/* fp_echo.c -- the generic upstream (--echo): echoes requests, and streams, large bodies, slow
 * answers and arbitrary statuses for the gateway's forwarding tests. No authentication. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fp.h"

#define FP_CHUNK ((size_t)64 << 10)       /* bytes queued per /large step */
#define FP_LARGE_MAX ((uint64_t)16 << 30) /* bytes; /large refuses more than 16 GiB */
#define FP_PATTERN "0123456789abcdef\n"   /* /large body, repeated and truncated */
#define FP_PATTERN_LEN (sizeof(FP_PATTERN) - 1)

/* Answers req. query holds the decoded query parameters (borrowed; empty for the fallback). */
typedef int echo_fn(struct fp_service *svc, struct evhttp_request *req,
                    const struct evkeyvalq *query);

static echo_fn h_stream, h_large, h_slow, h_status, h_static;

static const struct {
    const char *suffix; /* matches "/stream" and "/any/prefix/stream" */
    echo_fn *fn;
} echo_routes[] = {
    { "/stream", h_stream }, { "/large", h_large },   { "/slow", h_slow },
    { "/status", h_status }, { "/static", h_static },
};

/* FP_CHUNK + FP_PATTERN_LEN bytes of FP_PATTERN: a chunk at any phase fits. Static, so it
 * outlives every connection that references it. */
static char pattern[FP_CHUNK + FP_PATTERN_LEN];

/* Reads decimal parameter key: def when absent, -1 when malformed or outside [min, max]. */
static int query_u64(const struct evkeyvalq *q, const char *key, uint64_t def, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    const char *s = evhttp_find_header(q, key);

    if (s == NULL) {
        *out = def;
        return 0;
    }
    if (fp_parse_u64(s, max, out) < 0 || *out < min)
        return -1;
    return 0;
}

static int stream_line(struct fp_op *op)
{
    return evbuffer_add_printf(op->buf, "{\"i\":%" PRIu64 "}\n", op->done) < 0 ? -1 : 0;
}

/* n lines {"i":K}\n, chunked, delay_ms apart; the first goes out with the headers. */
static int h_stream(struct fp_service *svc, struct evhttp_request *req,
                    const struct evkeyvalq *query)
{
    uint64_t n, delay_ms;

    if (query_u64(query, "n", 5, 0, FP_STREAM_MAX, &n) < 0 ||
        query_u64(query, "delay_ms", 100, 0, FP_DELAY_MAX_MS, &delay_ms) < 0) {
        fp_reply_error(req, HTTP_BADREQUEST, "bad n or delay_ms");
        return 0;
    }
    return fp_stream_start(svc, req, n, delay_ms, "application/x-ndjson", stream_line, 0);
}

/* Drain callback: evhttp calls it once everything queued has left for the socket, so at most one
 * FP_CHUNK is queued per reply whatever its size. The chunk references pattern, no copy. */
static void large_next(struct evhttp_connection *evcon, void *arg)
{
    struct fp_op *op = arg;
    const char *p = pattern + op->done % FP_PATTERN_LEN;
    uint64_t left = op->total - op->done;
    size_t n = left < FP_CHUNK ? (size_t)left : FP_CHUNK;

    (void)evcon;
    if (n == 0) {
        fp_op_finish(op);
        return;
    }
    if (evbuffer_add_reference(op->buf, p, n, NULL, NULL) < 0) {
        fp_op_abort(op);
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
        fp_reply_error(req, HTTP_BADREQUEST, "bad bytes");
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
    if (pattern[0] == '\0') {
        for (size_t i = 0; i < sizeof(pattern); i++)
            pattern[i] = FP_PATTERN[i % FP_PATTERN_LEN];
    }
    if ((op = fp_op_new(svc, req, NULL)) == NULL)
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
    fp_op_free(op);
    if (fp_reply_text(req, HTTP_OK, "{\"slow\":true}") < 0)
        fp_reply_error(req, HTTP_INTERNAL, "internal_error");
}

static int h_slow(struct fp_service *svc, struct evhttp_request *req, const struct evkeyvalq *query)
{
    uint64_t delay_ms;
    struct fp_op *op;

    if (query_u64(query, "delay_ms", 2000, 0, FP_DELAY_MAX_MS, &delay_ms) < 0) {
        fp_reply_error(req, HTTP_BADREQUEST, "bad delay_ms");
        return 0;
    }
    if ((op = fp_op_new(svc, req, on_slow_timer)) == NULL)
        return -1;
    op->delay = fp_ms_to_tv(delay_ms);
    if (evtimer_add(op->timer, &op->delay) < 0) {
        fp_op_free(op);
        return -1;
    }
    fp_watch_close(op);
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
        fp_reply_error(req, HTTP_BADREQUEST, "bad code (200-599)");
        return 0;
    }
    /* header=Name:value (repeatable): extra answer headers, to test what the gateway drops */
    const struct evkeyval *kv;
    TAILQ_FOREACH(kv, query, next)
    {
        const char *colon = strcmp(kv->key, "header") == 0 ? strchr(kv->value, ':') : NULL;
        char name[64];
        size_t nl = colon ? (size_t)(colon - kv->value) : 0;
        if (!colon || nl == 0 || nl >= sizeof name)
            continue;
        memcpy(name, kv->value, nl);
        name[nl] = '\0';
        evhttp_add_header(evhttp_request_get_output_headers(req), name, colon + 1);
    }
    if (body != NULL)
        return fp_reply_text(req, (int)code, body);
    n = snprintf(dflt, sizeof(dflt), "{\"status\":%" PRIu64 "}", code);
    if (n < 0 || (size_t)n >= sizeof(dflt))
        return -1;
    return fp_reply_bytes(req, (int)code, dflt, (size_t)n);
}

static int h_static(struct fp_service *svc, struct evhttp_request *req,
                    const struct evkeyvalq *query)
{
    (void)svc;
    (void)query;
    return fp_reply_text(
        req, HTTP_OK,
        "{\"success\":true,\"list\":[{\"id\":560,\"label\":\"GV55\",\"group_id\":12}]}");
}

/* Everything the gateway sent, for tests to assert on. */
static int h_echo(struct evhttp_request *req)
{
    json_t *root = fp_request_json(req, FP_MAX_BODY);

    if (root == NULL)
        return -1;
    if (fp_add_header(req, "X-Fake-Echo", "1") < 0) {
        json_decref(root);
        return -1;
    }
    return fp_reply_new(req, HTTP_OK, root);
}

int fp_echo_handle(struct fp_service *svc, struct fp_call *call)
{
    struct evkeyvalq query;
    echo_fn *fn = NULL;
    int rc;

    for (size_t i = 0; fn == NULL && i < FP_ARRAY_LEN(echo_routes); i++) {
        if (fp_ends_with(call->raw_path, echo_routes[i].suffix))
            fn = echo_routes[i].fn;
    }
    /* the fallback takes any query, even one evhttp cannot split into parameters */
    if (fn == NULL)
        return h_echo(call->req);
    TAILQ_INIT(&query);
    if (*call->query != '\0' && evhttp_parse_query_str(call->query, &query) < 0) {
        fp_reply_error(call->req, HTTP_BADREQUEST, "malformed query");
        return 0;
    }
    rc = fn(svc, call->req, &query);
    evhttp_clear_headers(&query);
    return rc;
}

int fp_echo_ratelimited(struct fp_service *svc, struct fp_call *call)
{
    if (fp_add_header_u64(call->req, "Retry-After", svc->knobs.retry_after) < 0)
        return -1;
    return fp_reply_text(call->req, 429, "{\"error\":\"rate limited\"}");
}
