/* req.h -- one caller request and its response writer. server.c parses into a pg_req and owns it
 * (embedded in the connection, reused across keep-alive requests); fwd.c and the gateway's own
 * endpoints answer through pg_resp_*; the answer's end hands the request back to the server. */
#ifndef PG_REQ_H
#define PG_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "envelope.h"
#include "hub.h"
#include "metrics.h"
#include "worker.h"

struct event;
struct event_base;
struct evbuffer;
struct pg_curlev;
struct pg_h1;
struct pg_fwd_pool;

#define PG_MAX_HDRS 100
#define PG_RID_MAX 128

/* A header as offsets into pg_req.hbuf. */
struct pg_hdr {
    uint32_t name, name_len, value, value_len;
};

struct pg_req;
/* The server's continuation when an answer is complete (ok) or the connection must close. */
typedef void pg_req_done_fn(struct pg_req *r, bool ok);
/* Fwd hooks: the caller went away (free everything, the request is gone after this), and the
 * caller's output buffer drained below the low mark (resume a paused upstream). */
typedef void pg_req_hook_fn(struct pg_req *r);

/* Continue with a request the rate limiter admitted (limit.h). */
typedef void pg_limit_go_fn(struct pg_req *r);

struct pg_limit_queue;
struct pg_limit_port;
struct pg_rop;

/* What a queue decided for a request that waited in it. */
enum pg_limit_verdict { PG_LV_GO, PG_LV_LATE, PG_LV_FAIL, PG_LV_UNAVAILABLE };

/* A request waiting in one of limit.c's FIFO queues, embedded in pg_req; limit.c owns the
 * fields while q is set or post is in an inbox (the hub's lock guards both links). */
struct pg_limit_wait {
    struct pg_dlink link;       /* in q's waits */
    struct pg_limit_queue *q;   /* non-NULL while queued */
    struct pg_limit_port *port; /* the request's own worker */
    pg_limit_go_fn *go;         /* runs once the request's tokens are taken */
    uint64_t deadline_ms;       /* arrival + max_wait (the limiter's clock): then a 429 */
    struct pg_post post;        /* the verdict on its way to the request's worker */
    struct pg_rop *rop;         /* a redis store's answer being awaited (limit.c) */
    enum pg_limit_verdict verdict;
    uint64_t wait_ms;           /* PG_LV_LATE: Retry-After */
    enum pg_metric_scope scope; /* PG_LV_LATE: which limit it was */
};

struct pg_req {
    struct pg_worker *w;
    struct pg_conf *conf; /* reference held while the request runs */
    struct evbuffer *out; /* bytes for the caller, owned by the connection */
    const char *peer;     /* caller IP, borrowed */

    const char *method;  /* "GET"..., static string */
    unsigned method_bit; /* PG_M_*, 0 if not proxyable */
    bool head;           /* HEAD: the answer has no body */
    unsigned http_minor; /* HTTP/1.x */
    bool keep_alive;

    char *hbuf; /* url and header bytes, owned by the connection */
    size_t hlen;
    uint32_t url, url_len;
    struct pg_hdr hdrs[PG_MAX_HDRS];
    size_t nhdrs;
    struct evbuffer *body; /* request body (chunked already decoded) */

    char rid[PG_RID_MAX + 1]; /* X-Request-Id, NUL-terminated */
    uint64_t start_ms;
    const struct pg_consumer *consumer;
    int upstream; /* -1 until routed */

    /* response state */
    int status;
    bool head_sent, chunked, close_delimited, ended;
    uint64_t resp_bytes;
    /* what the answer's record (access log, status) says, noted along the way */
    int err;             /* enum pg_err_code of an error envelope answer; -1: none */
    int upstream_status; /* the panel's answer's status; 0: no panel answered */
    int limited;         /* enum pg_metric_scope of the limit that refused it; -1: none */
    bool login;          /* it waited for a login to the panel */
    bool replayed;       /* it was sent to the panel a second time (session expired) */

    /* the target after routing: the normalised path after /{upstream} and the raw query,
     * borrowed from hbuf */
    const char *rest, *query;
    size_t rest_len, query_len;
    /* rate limiting (limit.c): the RateLimit header lines of the answer, and the queue link */
    char rl_hdrs[384];
    size_t rl_hdrs_len;
    struct pg_limit_wait lwait;

    void *fwd; /* forwarding state, owned by fwd.c */
    pg_req_hook_fn *on_abort;
    pg_req_hook_fn *on_writable;
    pg_req_done_fn *done; /* set by the server */
    pg_req_hook_fn *kick; /* set by the server: out has new bytes to write */
};

/* Find header (name) in the request; returns its value or NULL, *vn its length. */
const char *pg_req_header(const struct pg_req *r, const char *name, size_t *vn);
static inline const char *pg_req_hname(const struct pg_req *r, size_t i)
{
    return r->hbuf + r->hdrs[i].name;
}
static inline const char *pg_req_hvalue(const struct pg_req *r, size_t i)
{
    return r->hbuf + r->hdrs[i].value;
}

/* Write the status line and headers. `extra` holds complete "Name: value\r\n" lines (may be
 * NULL); content_length < 0 means unknown (chunked to HTTP/1.1 callers, else close-delimited).
 * X-Request-Id, framing and Connection are added here. 0 ok, -1 out of memory. */
int pg_resp_head(struct pg_req *r, int status, const char *extra, size_t extra_len,
                 int64_t content_length);
/* Append body bytes, framed as the head decided. 0 ok, -1 out of memory. */
int pg_resp_body(struct pg_req *r, const void *p, size_t n);
/* Bytes queued to the caller and not yet written: the back-pressure signal. */
size_t pg_resp_pending(const struct pg_req *r);
/* The answer is complete; hands the request back to the server. */
void pg_resp_end(struct pg_req *r);
/* The answer cannot be completed (upstream failed mid-body): the connection closes. */
void pg_resp_abort(struct pg_req *r);
/* A complete error answer (SPEC section 5) with Retry-After / WWW-Authenticate as needed. */
void pg_resp_error(struct pg_req *r, const struct pg_envelope *e);
/* Shorthand: a gateway error of kind code with an optional message. */
void pg_resp_fail(struct pg_req *r, enum pg_err_code code, const char *message);
/* A complete small answer with a constant body (borrowed until written). */
void pg_resp_simple(struct pg_req *r, int status, const char *ctype, const char *body, size_t n);

#endif
