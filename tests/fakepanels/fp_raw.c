/* fp_raw.c -- the raw upstream (--raw): HTTP/1.1 written byte by byte on plain bufferevents, so
 * tests can script answers evhttp would never send (bad framing, early closes, 1xx, split
 * writes). One request head (plus its Content-Length body) is read at a time; its path picks
 * the answer. No authentication.
 *
 *   /ok?n=N        200, Content-Length N (default 2, at most 16 MiB), N bytes 'x'; keep-alive
 *   /chunked       200 chunked: chunks of 5, 2 (with extension ;a=b), 6 and 4000 bytes, then a
 *                  trailer; body "hello, world\n" + 4000 'c'; keep-alive
 *   /close-mid     200 with Content-Length 1000, then "0123456789" and a close
 *   /close-now     close without writing anything
 *   /garbage       "HELLO WORLD\r\n\r\n", then a close
 *   /http10        "HTTP/1.0 200 OK" without Content-Length: the body is delimited by the close
 *   /http10-cl     "HTTP/1.0 200 OK" with Content-Length 5 ("hello") and no keep-alive, yet the
 *                  socket stays open: a client that reuses it anyway is seen answered here
 *   /hints         103 Early Hints (Link), and 20 ms later a 200 with body "hints"; keep-alive
 *   /bighead       200 whose head is about 100 KiB (1000 X-Big-NNNN headers), body "ok"
 *   /dupcl         Content-Length: 5 and Content-Length: 6, body "hello!"
 *   /cl-te         Content-Length: 3 and Transfer-Encoding: chunked, chunked body "hello"
 *   /badchunk      200 chunked: chunk "hello", then the chunk size "zz"; the connection stays
 *   /ka-then-close 200 keep-alive (body "bye"), then the socket closes 50 ms later unless
 *                  another request arrives first (a server dropping an idle connection)
 *   /ka-drop-next  200 keep-alive (body "once"); the next request on that connection is met by
 *                  a close, unanswered (the server timed the idle connection out as it arrived)
 *   /nocontent     204; /notmod: 304 with ETag "v1"; ?cl adds a Content-Length to either
 *   /head-len      200 with Content-Length 1000: no body for HEAD, 1000 bytes 'h' otherwise
 *   /split         200 (Content-Length 26, body a-z; ?te=chunked: chunked "hello, world\n" with
 *                  an extension and a trailer) written 3 bytes per 5 ms write (~160 ms)
 *   /trailers      chunked "hello" after 100 header fields, then 40 trailer fields
 *   /early         413 (JSON) from the head alone, then a close with the body unread (a reset)
 *   /slowread      reads the body at 1 MiB/s, then answers 200 "read N"
 *   /silent        reads the request (head and body) and never answers, nor reads again; the
 *                  connection stays open until the client closes it (a hung panel)
 *   anything else  404, keep-alive
 * Other answers that close do it once their bytes have left (a FIN, never a reset).
 *
 * /_fake/stats answers {"service":"raw","connections","requests","open"}: connections accepted
 * and requests read (outside /_fake/) since the last /_fake/reset, and connections open now. A
 * connection whose first request is for /_fake/ (a test's own probe) is not counted.
 * POST /_fake/reset zeroes the counters; POST /_fake/drop closes every other connection (an
 * empty pool on the gateway's side, however earlier tests left it) and says how many. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "fp.h"

#define RAW_HEAD_MAX (64 << 10)  /* bytes of a request head */
#define RAW_BODY_MAX (1 << 20)   /* bytes of a request body */
#define RAW_OK_MAX (16u << 20)   /* bytes of an /ok body */
#define RAW_SLOW_MAX (16u << 20) /* bytes of a /slowread body */
#define RAW_SLOW_RATE (1u << 20) /* /slowread reads this many bytes per second */
#define RAW_SPLIT_PIECE 3        /* bytes per /split write ... */
#define RAW_SPLIT_MS 5           /* ... and the pause between them */
#define RAW_HINTS_MS 20          /* between the 103 and the 200 */
#define RAW_IDLE_CLOSE_MS 50     /* /ka-then-close */
#define RAW_BIGHEAD_LINES 1000   /* of 104 bytes each: a head of about 100 KiB */

struct raw_conn {
    struct raw_conn *prev, *next; /* raw->conns */
    struct fp_raw *raw;
    struct bufferevent *bev;
    struct event *timer; /* timed writes and the idle close */
    const char *pending; /* static bytes still to write, piece bytes per tick; NULL when none */
    size_t pending_len, piece;
    struct timeval delay;             /* between pieces */
    bool closing;                     /* close once the output has drained */
    bool idle_close;                  /* the timer closes (/ka-then-close) */
    bool drop_next;                   /* /ka-drop-next: the next request gets a close */
    bool silent;                      /* /silent: nothing more is read or written */
    uint64_t slow_left, slow_total;   /* /slowread: body bytes still to read, and in all */
    struct ev_token_bucket_cfg *rate; /* /slowread's read rate */
    uint64_t nreq;                    /* requests read, /_fake/ ones included */
};

struct fp_raw {
    struct evconnlistener *lis;
    struct raw_conn *conns;
    uint64_t connections, requests; /* since the last reset */
    uint64_t open;                  /* a gauge: survives reset */
};

/* One parsed request; strings are NUL-terminated copies. */
struct raw_req {
    char method[16];
    char path[512];
    char query[512];
};

static const char chunked_answer[] = "HTTP/1.1 200 OK\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Transfer-Encoding: chunked\r\n"
                                     "Trailer: X-Trailer\r\n"
                                     "\r\n"
                                     "5\r\nhello\r\n"
                                     "2;a=b\r\n, \r\n"
                                     "6\r\nworld\n\r\n"
                                     "FA0\r\n";

static const char split_cl[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "X-Split: yes\r\n"
                               "Content-Length: 26\r\n"
                               "\r\n"
                               "abcdefghijklmnopqrstuvwxyz";

static const char split_te[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "X-Split: yes\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "\r\n"
                               "5;a=b\r\nhello\r\n"
                               "2\r\n, \r\n"
                               "6\r\nworld\n\r\n"
                               "0\r\nX-Trailer: t\r\n\r\n";

static const char hints_final[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 5\r\n"
                                  "\r\n"
                                  "hints";

/* ---- connections ----------------------------------------------------------------------------- */

static void conn_free(struct raw_conn *c)
{
    struct fp_raw *raw = c->raw;

    if (c->timer != NULL)
        event_free(c->timer);
    bufferevent_free(c->bev); /* closes the socket */
    if (c->rate != NULL)
        ev_token_bucket_cfg_free(c->rate);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        raw->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    raw->open--;
    free(c);
}

static int put(struct raw_conn *c, const char *p, size_t n)
{
    return bufferevent_write(c->bev, p, n);
}

static int put_s(struct raw_conn *c, const char *s)
{
    return put(c, s, strlen(s));
}

static int put_u64(struct raw_conn *c, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof(s), "%" PRIu64, v);

    if (n < 0 || (size_t)n >= sizeof(s))
        return -1;
    return put(c, s, (size_t)n);
}

/* n copies of byte b. */
static int put_fill(struct raw_conn *c, char b, size_t n)
{
    char blk[4096];

    memset(blk, b, sizeof(blk));
    while (n > 0) {
        size_t k = n < sizeof(blk) ? n : sizeof(blk);
        if (put(c, blk, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

/* Writes p[0..n) piece bytes at a time, each piece delay_ms after the one before (the first
 * too). Reading waits until the last piece is out, so a pipelined request is answered after. */
static int put_timed(struct raw_conn *c, const char *p, size_t n, size_t piece, uint64_t delay_ms)
{
    c->pending = p;
    c->pending_len = n;
    c->piece = piece;
    c->delay = fp_ms_to_tv(delay_ms);
    return evtimer_add(c->timer, &c->delay);
}

/* ---- answers --------------------------------------------------------------------------------- */

/* Answers rq; -1 when out of memory (the connection is then closed). */
typedef int raw_fn(struct raw_conn *c, const struct raw_req *rq);

static int a_ok(struct raw_conn *c, const struct raw_req *rq)
{
    char *v = NULL;
    size_t vn = 0, count = 0;
    uint64_t n = 2;
    int rc = fp_form_get(rq->query, strlen(rq->query), "n", &v, &vn, &count);

    if (rc == 0 && v != NULL && (vn != strlen(v) || fp_parse_u64(v, RAW_OK_MAX, &n) < 0)) {
        free(v);
        return put_s(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    }
    free(v);
    if (rc < 0 || put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ") < 0 ||
        put_u64(c, n) < 0 || put_s(c, "\r\n\r\n") < 0)
        return -1;
    return put_fill(c, 'x', (size_t)n);
}

static int a_chunked(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    if (put_s(c, chunked_answer) < 0 || put_fill(c, 'c', 4000) < 0)
        return -1;
    return put_s(c, "\r\n0\r\nX-Trailer: done\r\n\r\n");
}

/* 100 header fields and, after the body, 40 trailer fields: together past what one head may
 * hold, each within it */
static int a_trailers(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    if (put_s(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n") < 0)
        return -1;
    for (int i = 0; i < 100; i++) {
        char line[32];
        snprintf(line, sizeof line, "X-H%d: %d\r\n", i, i);
        if (put_s(c, line) < 0)
            return -1;
    }
    if (put_s(c, "\r\n5\r\nhello\r\n0\r\n") < 0)
        return -1;
    for (int i = 0; i < 40; i++) {
        char line[32];
        snprintf(line, sizeof line, "X-T%d: %d\r\n", i, i);
        if (put_s(c, line) < 0)
            return -1;
    }
    return put_s(c, "\r\n");
}

static int a_close_mid(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    c->closing = true;
    return put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
                    "0123456789");
}

static int a_close_now(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    c->closing = true;
    return 0;
}

static int a_garbage(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    c->closing = true;
    return put_s(c, "HELLO WORLD\r\n\r\n");
}

static int a_http10(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    c->closing = true;
    return put_s(
        c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhttp/1.0 body, ends at close\n");
}

static int a_http10_cl(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    return put_s(c,
                 "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
}

static int a_hints(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    if (put_s(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n") <
        0)
        return -1;
    return put_timed(c, hints_final, sizeof(hints_final) - 1, sizeof(hints_final) - 1,
                     RAW_HINTS_MS);
}

static int a_bighead(struct raw_conn *c, const struct raw_req *rq)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    (void)rq;
    if (put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n") < 0)
        return -1;
    for (unsigned i = 0; i < RAW_BIGHEAD_LINES; i++) {
        if (evbuffer_add_printf(out, "X-Big-%04u: %0*u\r\n", i, 90, i) < 0)
            return -1;
    }
    return put_s(c, "Content-Length: 2\r\n\r\nok");
}

static int a_dupcl(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    return put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
}

static int a_cl_te(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    return put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n");
}

static int a_badchunk(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    return put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n");
}

static int a_ka_then_close(struct raw_conn *c, const struct raw_req *rq)
{
    struct timeval tv = fp_ms_to_tv(RAW_IDLE_CLOSE_MS);

    (void)rq;
    c->idle_close = true;
    if (put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nbye") < 0)
        return -1;
    return evtimer_add(c->timer, &tv);
}

static int a_ka_drop_next(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    c->drop_next = true;
    return put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nonce");
}

static int a_nocontent(struct raw_conn *c, const struct raw_req *rq)
{
    /* ?cl: a Content-Length on an answer that never has a body (servers do send it) */
    if (strcmp(rq->query, "cl") == 0)
        return put_s(c, "HTTP/1.1 204 No Content\r\nX-Raw: 204\r\nContent-Length: 10\r\n\r\n");
    return put_s(c, "HTTP/1.1 204 No Content\r\nX-Raw: 204\r\n\r\n");
}

static int a_notmod(struct raw_conn *c, const struct raw_req *rq)
{
    /* ?cl: the length of the representation it stands for (RFC 9110 8.6) */
    if (strcmp(rq->query, "cl") == 0)
        return put_s(c,
                     "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n");
    return put_s(c, "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
}

static int a_head_len(struct raw_conn *c, const struct raw_req *rq)
{
    if (put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n") < 0)
        return -1;
    return strcmp(rq->method, "HEAD") == 0 ? 0 : put_fill(c, 'h', 1000);
}

static int a_split(struct raw_conn *c, const struct raw_req *rq)
{
    bool te = strcmp(rq->query, "te=chunked") == 0;

    return put_timed(c, te ? split_te : split_cl, te ? sizeof(split_te) - 1 : sizeof(split_cl) - 1,
                     RAW_SPLIT_PIECE, RAW_SPLIT_MS);
}

static int a_silent(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    c->silent = true;
    return 0;
}

static int a_not_found(struct raw_conn *c, const struct raw_req *rq)
{
    (void)rq;
    return put_s(c, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 9\r\n\r\nnot found");
}

static const struct {
    const char *path;
    raw_fn *fn;
} raw_routes[] = {
    { "/ok", a_ok },
    { "/chunked", a_chunked },
    { "/trailers", a_trailers },
    { "/close-mid", a_close_mid },
    { "/close-now", a_close_now },
    { "/garbage", a_garbage },
    { "/http10", a_http10 },
    { "/http10-cl", a_http10_cl },
    { "/hints", a_hints },
    { "/bighead", a_bighead },
    { "/dupcl", a_dupcl },
    { "/cl-te", a_cl_te },
    { "/badchunk", a_badchunk },
    { "/ka-then-close", a_ka_then_close },
    { "/ka-drop-next", a_ka_drop_next },
    { "/nocontent", a_nocontent },
    { "/notmod", a_notmod },
    { "/head-len", a_head_len },
    { "/split", a_split },
    { "/silent", a_silent },
};

/* ---- /_fake/ --------------------------------------------------------------------------------- */

/* A JSON answer, then a close (the probes send Connection: close anyway). */
static int put_json(struct raw_conn *c, int status, const char *json)
{
    c->closing = true;
    if (put_s(c, status == 200 ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n") < 0 ||
        put_s(c, "Content-Type: application/json\r\nConnection: close\r\nContent-Length: ") < 0 ||
        put_u64(c, strlen(json)) < 0 || put_s(c, "\r\n\r\n") < 0)
        return -1;
    return put_s(c, json);
}

static int fake(struct raw_conn *c, const struct raw_req *rq)
{
    struct fp_raw *raw = c->raw;
    char s[160];
    int n;

    if (fp_ends_with(rq->path, "/_fake/stats")) {
        n = snprintf(s, sizeof(s),
                     "{\"service\":\"raw\",\"connections\":%" PRIu64 ",\"requests\":%" PRIu64
                     ",\"open\":%" PRIu64 "}",
                     raw->connections, raw->requests, raw->open);
    } else if (fp_ends_with(rq->path, "/_fake/reset")) {
        raw->connections = raw->requests = 0;
        n = snprintf(s, sizeof(s), "{\"ok\":true}");
    } else if (fp_ends_with(rq->path, "/_fake/drop")) {
        uint64_t k = 0;
        struct raw_conn *o = raw->conns, *next;
        for (; o != NULL; o = next) {
            next = o->next;
            if (o != c) {
                conn_free(o);
                k++;
            }
        }
        n = snprintf(s, sizeof(s), "{\"dropped\":%" PRIu64 "}", k);
    } else {
        return put_json(c, 404, "{\"error\":\"unknown /_fake/ endpoint\"}");
    }
    if (n < 0 || (size_t)n >= sizeof(s))
        return -1;
    return put_json(c, 200, s);
}

/* ---- reading requests ------------------------------------------------------------------------ */

/* Copies p[0..n) into dst (cap bytes with the NUL); -1 when it does not fit. */
static int copy_str(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        return -1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

/* "METHOD target HTTP/1.x" from the first line of head[0..n). */
static int parse_line(const char *head, size_t n, struct raw_req *rq)
{
    const char *eol = memchr(head, '\r', n);
    const char *sp1 = eol != NULL ? memchr(head, ' ', (size_t)(eol - head)) : NULL;
    const char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    const char *q, *path_end;

    if (sp2 == NULL)
        return -1;
    q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
    path_end = q != NULL ? q : sp2;
    if (copy_str(rq->method, sizeof(rq->method), head, (size_t)(sp1 - head)) < 0 ||
        copy_str(rq->path, sizeof(rq->path), sp1 + 1, (size_t)(path_end - sp1 - 1)) < 0)
        return -1;
    if (q == NULL)
        return copy_str(rq->query, sizeof(rq->query), "", 0);
    return copy_str(rq->query, sizeof(rq->query), q + 1, (size_t)(sp2 - q - 1));
}

/* The request's body length from head[0..n): Content-Length, 0 when absent; -1 for a chunked
 * body or a bad length (this fake never needs either). */
static int64_t body_length(const char *head, size_t n, uint64_t max)
{
    static const char cl[] = "\r\ncontent-length:", te[] = "\r\ntransfer-encoding:";
    uint64_t v = 0;

    for (size_t i = 0; i + 2 < n; i++) {
        const char *p = head + i;
        size_t left = n - i;
        if (left > sizeof(te) - 1 && evutil_ascii_strncasecmp(p, te, sizeof(te) - 1) == 0)
            return -1;
        if (left > sizeof(cl) - 1 && evutil_ascii_strncasecmp(p, cl, sizeof(cl) - 1) == 0) {
            const char *s = p + sizeof(cl) - 1, *e = memchr(s, '\r', (size_t)(head + n - s));
            char num[24];
            while (s < e && *s == ' ')
                s++;
            if (e == NULL || copy_str(num, sizeof(num), s, (size_t)(e - s)) < 0 ||
                fp_parse_u64(num, max, &v) < 0)
                return -1;
        }
    }
    return (int64_t)v;
}

/* Output drained: an answer that ends in a close has fully left. */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct raw_conn *c = arg;

    (void)bev;
    if (c->closing)
        conn_free(c);
}

/* /slowread: a body of up to RAW_SLOW_MAX bytes read at RAW_SLOW_RATE, so the sender's upload
 * crawls once the socket buffers are full; the answer says how many bytes arrived. */
static int slowread_start(struct raw_conn *c, const char *head, size_t head_len)
{
    int64_t n = body_length(head, head_len, RAW_SLOW_MAX);
    struct timeval tick = { 0, 100000 };

    if (n <= 0)
        return -1;
    c->nreq++;
    c->raw->requests++;
    evbuffer_drain(bufferevent_get_input(c->bev), head_len);
    c->slow_left = c->slow_total = (uint64_t)n;
    if (c->rate == NULL &&
        (c->rate = ev_token_bucket_cfg_new(RAW_SLOW_RATE / 10, RAW_SLOW_RATE / 10,
                                           EV_RATE_LIMIT_MAX, EV_RATE_LIMIT_MAX, &tick)) == NULL)
        return -1;
    return bufferevent_set_rate_limit(c->bev, c->rate);
}

/* 1: the body is complete and answered; 0: more to read; -1: failed. */
static int slowread_more(struct raw_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t k = evbuffer_get_length(in);
    char answer[128];

    if (k > c->slow_left)
        k = (size_t)c->slow_left;
    evbuffer_drain(in, k);
    c->slow_left -= k;
    if (c->slow_left > 0)
        return 0;
    if (bufferevent_set_rate_limit(c->bev, NULL) < 0)
        return -1;
    snprintf(answer, sizeof(answer), "read %" PRIu64, c->slow_total);
    if (put_s(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ") < 0 ||
        put_u64(c, strlen(answer)) < 0 || put_s(c, "\r\n\r\n") < 0 || put_s(c, answer) < 0)
        return -1;
    return 1;
}

/* 1: one request was answered (the connection lives on); 0: wait for more bytes, or for a timed
 * answer to finish; -1: the connection was freed. */
static int next_request(struct raw_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_ptr end;
    struct raw_req rq;
    raw_fn *fn = a_not_found;
    const char *head;
    size_t head_len;
    int64_t body_len;

    if (c->pending != NULL || c->closing || c->silent)
        return 0;
    if (c->slow_left > 0) {
        int rc = slowread_more(c);
        if (rc < 0)
            conn_free(c);
        return rc;
    }
    end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > RAW_HEAD_MAX)
            goto drop;
        return 0;
    }
    head_len = (size_t)end.pos + 4;
    if (head_len > RAW_HEAD_MAX ||
        (head = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len)) == NULL ||
        parse_line(head, head_len, &rq) < 0)
        goto drop;
    if (strcmp(rq.path, "/slowread") == 0)
        return slowread_start(c, head, head_len) < 0 ? (conn_free(c), -1) : 1;
    if (strcmp(rq.path, "/early") == 0) {
        /* answers from the head alone and closes with the body unread: the kernel turns the
         * close into a reset, which hits the sender mid-body (Go's net/http does this) */
        c->nreq++;
        c->raw->requests++;
        c->closing = true;
        bufferevent_disable(c->bev, EV_READ);
        evbuffer_drain(in, evbuffer_get_length(in));
        return put_s(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                        "Connection: close\r\nContent-Length: 20\r\n\r\n"
                        "{\"detail\":\"too big\"}") < 0
                   ? (conn_free(c), -1)
                   : 0;
    }
    if ((body_len = body_length(head, head_len, RAW_BODY_MAX)) < 0)
        goto drop;
    if (evbuffer_get_length(in) < head_len + (size_t)body_len)
        return 0;
    evbuffer_drain(in, head_len + (size_t)body_len);

    if (c->idle_close) {
        c->idle_close = false;
        event_del(c->timer);
    }
    if (strstr(rq.path, "/_fake/") != NULL) {
        if (c->nreq++ == 0 && c->raw->connections > 0)
            c->raw->connections--; /* a probe, not the gateway */
        if (fake(c, &rq) < 0)
            goto drop;
    } else {
        c->nreq++;
        c->raw->requests++;
        if (c->drop_next)
            goto drop;
        for (size_t i = 0; i < FP_ARRAY_LEN(raw_routes); i++) {
            if (strcmp(rq.path, raw_routes[i].path) == 0)
                fn = raw_routes[i].fn;
        }
        if (fn(c, &rq) < 0)
            goto drop;
    }
    if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        goto drop;
    return 1;
drop:
    conn_free(c);
    return -1;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    while (next_request(arg) > 0)
        ;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(arg);
}

/* The next piece of a timed answer, or the idle close. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct raw_conn *c = arg;
    size_t k;

    (void)fd;
    (void)what;
    if (c->pending == NULL) {
        if (c->idle_close)
            conn_free(c);
        return;
    }
    k = c->pending_len < c->piece ? c->pending_len : c->piece;
    if (put(c, c->pending, k) < 0) {
        conn_free(c);
        return;
    }
    c->pending += k;
    c->pending_len -= k;
    if (c->pending_len > 0) {
        if (evtimer_add(c->timer, &c->delay) < 0)
            conn_free(c);
        return;
    }
    c->pending = NULL;
    on_read(c->bev, c); /* a request pipelined meanwhile */
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct fp_raw *raw = arg;
    struct event_base *base = evconnlistener_get_base(lis);
    struct raw_conn *c = calloc(1, sizeof(*c));
    int one = 1;

    (void)sa;
    (void)salen;
    /* every write its own segment: /split must reach the gateway in pieces */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c == NULL || (c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL ||
        (c->timer = evtimer_new(base, on_timer, c)) == NULL) {
        if (c != NULL && c->bev != NULL)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        free(c);
        return;
    }
    c->raw = raw;
    c->next = raw->conns;
    if (c->next != NULL)
        c->next->prev = c;
    raw->conns = c;
    raw->open++;
    raw->connections++;
    bufferevent_setwatermark(c->bev, EV_READ, 0, RAW_HEAD_MAX + RAW_BODY_MAX + 1);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
        conn_free(c);
}

struct fp_raw *fp_raw_new(struct event_base *base, const struct sockaddr *sa, int salen)
{
    struct fp_raw *raw = calloc(1, sizeof(*raw));

    if (raw == NULL)
        return NULL;
    raw->lis = evconnlistener_new_bind(
        base, on_accept, raw, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, -1,
        sa, salen);
    if (raw->lis == NULL) {
        free(raw);
        return NULL;
    }
    return raw;
}

void fp_raw_free(struct fp_raw *raw)
{
    if (raw == NULL)
        return;
    while (raw->conns != NULL)
        conn_free(raw->conns);
    evconnlistener_free(raw->lis);
    free(raw);
}
