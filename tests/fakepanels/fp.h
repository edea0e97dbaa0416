/* fp.h -- private to tests/fakepanels: per-service state shared by every fake panel, deferred
 * replies (streams, delays), and the request/reply/JSON/session helpers the panel fakes use. */

#ifndef FAKEPANELS_FP_H
#define FAKEPANELS_FP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <sys/queue.h> /* before keyvalq_struct.h: TAILQ_FOREACH */

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#define FP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define FP_MAX_BODY (16 << 20)      /* bytes; every service accepts bodies up to 16 MiB */
#define FP_MAX_HEADERS (64 << 10)   /* bytes of request line plus headers */
#define FP_DELAY_MAX_MS 600000      /* 10 min, longer than any test timeout */
#define FP_STREAM_MAX 1000000       /* lines per stream */
#define FP_MAX_SESSIONS 1024        /* live sessions per service; a new login drops the oldest */
#define FP_SESSION_ID_MAX 48        /* bytes with the NUL: a 32-hex hash or a 36-char uuid */
#define FP_TIMES 1000               /* arrival times kept for /_fake/stats */
#define FP_LAST_BODY_MAX (64 << 10) /* bytes of a request body kept in last_request */
#define FP_KNOB_STR_MAX 256         /* bytes of a string knob */

/* Index into the service table, and the bit a knob uses to name the services it applies to. */
enum fp_kind { FP_ECHO, FP_NAVIXY, FP_NAVIXY_PANEL, FP_OPENPANEL, FP_PANELICA, FP_NAVIREC };
#define FP_NKINDS 6
#define FP_K(kind) (1u << (kind))
#define FP_K_SESSIONS (FP_K(FP_NAVIXY) | FP_K(FP_NAVIXY_PANEL) | FP_K(FP_OPENPANEL))
#define FP_K_PANELS                                                                                \
    (FP_K(FP_NAVIXY) | FP_K(FP_NAVIXY_PANEL) | FP_K(FP_OPENPANEL) | FP_K(FP_PANELICA) |            \
     FP_K(FP_NAVIREC))

/* Test-settable behaviour of one service (/_fake/config). reset restores the defaults. */
struct fp_knobs {
    uint64_t expire_every;    /* end all sessions after this many authenticated requests; 0 off */
    uint64_t ratelimit;       /* the next this many requests get the rate-limit answer */
    uint64_t retry_after;     /* s; Retry-After on those (Navixy: header only when > 0) */
    uint64_t login_delay_ms;  /* login answers wait this long (timer) */
    uint64_t jwt_ttl;         /* s; OpenPanel exp = iat + jwt_ttl */
    uint64_t fail_code;       /* Navixy: answer this status code ... */
    uint64_t fail_count;      /* ... to the next this many authenticated requests */
    uint64_t ts_window;       /* s; Panelica accepts |now - X-Timestamp| <= ts_window */
    uint64_t reject_next;     /* Panelica: reject the next this many well-signed requests */
    uint64_t vehicles;        /* Navirec: size of the /vehicles/ list */
    uint64_t stream_n;        /* Navirec: vehicle_state events per stream (query n overrides) */
    uint64_t stream_delay_ms; /* Navirec: between stream lines (query delay_ms overrides) */
    char *password;           /* owned; the secret the service accepts (see fakepanels.c) */
    char *string_to_sign;     /* owned; Panelica template */
    char *reject_code;        /* owned; Panelica code used by reject_next */
    char *versions;           /* owned; Navirec accepted API versions, comma-separated */
};

struct fp_ctx;
struct fp_service;

/* One request outside /_fake/, as a handler sees it. Strings are borrowed from the request but
 * path, which is owned. */
struct fp_call {
    struct evhttp_request *req;
    enum evhttp_cmd_type cmd;
    const char *method;   /* "GET", "POST", ... */
    char *path;           /* percent-decoded path, cut at a decoded NUL */
    const char *raw_path; /* path as received */
    const char *raw_uri;  /* request-target as received: path and query */
    const char *query;    /* raw query, "" when none */
    const char *body;     /* raw body, not NUL-terminated; "" when none */
    size_t body_len;
    bool resumed; /* second run, after login_delay_ms */
};

/* Answers call. Returns 0 once a reply is sent or scheduled, -1 if nothing was sent (the caller
 * then answers 500). */
typedef int fp_call_fn(struct fp_service *svc, struct fp_call *call);

/* One kind of fake panel, started by --<name> PORT; fp_services[kind] in fakepanels.c. */
struct fp_service_def {
    const char *name;
    enum fp_kind kind;
    fp_call_fn *handle;          /* every counted request that is not rate limited */
    fp_call_fn *ratelimited;     /* the panel's own rate-limit answer */
    const char *password;        /* default secret: password, api_secret or token */
    uint64_t retry_after;        /* default of the knob */
    const char *const *counters; /* the service's own stats counters, NULL-terminated */
    const char *const *reasons;  /* auth failure reasons it reports, NULL-terminated */
};

/* Live and recently ended session ids (Navixy hashes, OpenPanel jti claims). */
struct fp_sessions {
    char (*live)[FP_SESSION_ID_MAX]; /* FP_MAX_SESSIONS slots, oldest first */
    size_t nlive;
    char (*ended)[FP_SESSION_ID_MAX]; /* ring of FP_MAX_SESSIONS: tells "expired" from "unknown" */
    size_t nended, ended_next;
};

enum fp_session_state { FP_SESSION_UNKNOWN, FP_SESSION_LIVE, FP_SESSION_ENDED };

struct fp_service {
    const struct fp_service_def *def;
    struct fp_ctx *ctx;
    struct evhttp *http; /* NULL when the service was not requested */
    uint16_t port;
    char base_url[80]; /* http://HOST:PORT, the panel's own absolute URL (Navirec Link) */
    struct fp_knobs knobs;
    /* counters since start or the last reset */
    uint64_t hits;            /* requests outside /_fake/ */
    uint64_t logins;          /* successful logins */
    uint64_t login_failures;  /* logins refused (wrong or missing credentials) */
    uint64_t auth_failures;   /* other requests refused for their credentials */
    uint64_t expiries;        /* times all sessions were ended: /_fake/expire or expire_every */
    uint64_t ratelimited;     /* requests answered with the rate-limit error */
    uint64_t authed;          /* authenticated requests since the last expire_every expiry */
    json_t *counters;         /* def->counters -> count */
    json_t *reasons;          /* auth failure reason -> count */
    char *last_path;          /* owned; path of the last counted request, NULL before the first */
    json_t *last_request;     /* owned; that request (fp_request_json), NULL before the first */
    uint64_t times[FP_TIMES]; /* ring of arrival times, CLOCK_MONOTONIC ms */
    size_t ntimes, times_next;
    uint64_t inflight; /* deferred replies not yet finished (a gauge: survives reset) */
    struct fp_sessions sessions;
    unsigned char jwt_key[32]; /* OpenPanel HS256 key, random per process */
};

/* ---- deferred replies (fakepanels.c) ----------------------------------------------------------
 */

struct fp_op;
/* Appends stream line op->done (0-based) to op->buf; -1 when out of memory. */
typedef int fp_line_fn(struct fp_op *op);

/* A reply that outlives its request callback. Freed exactly once: when it completes, when evhttp
 * drops the connection under it (close callback), or at shutdown. */
struct fp_op {
    struct fp_op *prev, *next; /* ctx->ops, so shutdown can find it */
    struct fp_service *svc;
    struct evhttp_request *req; /* owned by evhttp while attached to its connection */
    struct evhttp_connection *evcon;
    struct event *timer;  /* NULL when the op has no timer */
    struct evbuffer *buf; /* next piece handed to evhttp; evhttp moves it out */
    uint64_t done, total; /* stream: lines; large: bytes */
    struct timeval delay; /* stream: between lines; slow/login: before the reply */
    fp_line_fn *line;     /* stream only */
    int variant;          /* free for the stream's owner */
};

/* on_timer may be NULL (no timer). Counts as inflight until fp_op_free. */
struct fp_op *fp_op_new(struct fp_service *svc, struct evhttp_request *req,
                        event_callback_fn on_timer);
/* Releases op; never its request, which evhttp or the caller still holds. */
void fp_op_free(struct fp_op *op);
/* Ends a reply begun with evhttp_send_reply_start. */
void fp_op_finish(struct fp_op *op);
/* A started reply cannot go on: drops the connection (and the request with it). */
void fp_op_abort(struct fp_op *op);
/* Notices a client that leaves while op waits on its timer before answering. */
void fp_watch_close(struct fp_op *op);
/* Starts a chunked reply of total lines made by line, delay_ms apart, the first at once. */
int fp_stream_start(struct fp_service *svc, struct evhttp_request *req, uint64_t total,
                    uint64_t delay_ms, const char *content_type, fp_line_fn *line, int variant);
/* 1: the login answer was deferred by login_delay_ms (the handler runs again, resumed, later);
 * 0: answer now; -1: out of memory. */
int fp_login_delay(struct fp_service *svc, struct fp_call *call);

/* ---- helpers (fp_util.c) -----------------------------------------------------------------------
 */

/* Decimal without sign or spaces, at most max. */
int fp_parse_u64(const char *s, uint64_t max, uint64_t *out);
struct timeval fp_ms_to_tv(uint64_t ms);
uint64_t fp_now_ms(void); /* CLOCK_MONOTONIC */
bool fp_ends_with(const char *s, const char *suffix);
/* path ends with suffix, or with suffix and one '/' */
bool fp_path_is(const char *path, const char *suffix);
const char *fp_method_name(enum evhttp_cmd_type cmd);
/* Equal lengths and bytes, in time independent of the bytes. */
bool fp_secret_eq(const char *a, size_t an, const char *b, size_t bn);

/* JSON string of p[0..n); bytes that are not UTF-8 are taken as Latin-1. */
json_t *fp_jstr(const char *p, size_t n);
json_t *fp_jstr0(const char *s); /* NULL becomes "" */
/* All request headers in received order as [name, value] pairs. */
json_t *fp_headers_json(struct evhttp_request *req);
/* method, uri, path, query, headers, body (first max_body bytes), body_len, body_truncated. */
json_t *fp_request_json(struct evhttp_request *req, size_t max_body);

/* Always answers: {"error": msg}, or a bare status. Drops headers set for the failed reply. */
void fp_reply_error(struct evhttp_request *req, int code, const char *msg);
int fp_reply_bytes(struct evhttp_request *req, int code, const char *p, size_t n);
int fp_reply_text(struct evhttp_request *req, int code, const char *s);
int fp_reply_json(struct evhttp_request *req, int code, const json_t *root); /* root borrowed */
int fp_reply_new(struct evhttp_request *req, int code, json_t *root); /* takes root; NULL: -1 */
int fp_add_header(struct evhttp_request *req, const char *name, const char *value);
int fp_add_header_u64(struct evhttp_request *req, const char *name, uint64_t v);

/* First request header name (case-insensitive), NULL when absent; how many there are. */
const char *fp_header(struct evhttp_request *req, const char *name);
size_t fp_header_count(struct evhttp_request *req, const char *name);
/* Media type of a Content-Type-like value is type (case-insensitive, parameters ignored). */
bool fp_media_is(const char *value, const char *type);

/* Percent-decodes p[0..n), '+' as a space: malloc'd, NUL-terminated, length in *outn. */
char *fp_urldecode(const char *p, size_t n, size_t *outn);
/* Calls fn on each raw key=value pair of a query or x-www-form-urlencoded body; a pair without
 * '=' has value NULL. Stops at and returns fn's first non-zero. */
typedef int fp_pair_fn(const char *k, size_t kn, const char *v, size_t vn, void *arg);
int fp_form_each(const char *p, size_t n, fp_pair_fn *fn, void *arg);
/* How often key occurs (decoded) in p[0..n), and a decoded copy of its first value (NULL when
 * absent; the caller frees it). */
int fp_form_get(const char *p, size_t n, const char *key, char **val, size_t *vlen, size_t *count);
/* Appends p[0..n) percent-encoded like Python's quote_plus (what Django's urlencode does). */
int fp_quote_plus(struct evbuffer *out, const char *p, size_t n);

/* Base64 (url: the URL-safe alphabet without padding; else standard, padded). encode writes a
 * NUL-terminated string and returns its length, 0 if cap is too small; decode is strict. */
size_t fp_b64_encode(const unsigned char *in, size_t n, bool url, char *out, size_t cap);
int fp_b64_decode(const char *in, size_t n, bool url, unsigned char *out, size_t cap, size_t *outn);
void fp_hex(const unsigned char *in, size_t n, char *out); /* lowercase, 2n+1 bytes */
int fp_random_hex(char *out, size_t nbytes);               /* 2 * nbytes hex + NUL */
int fp_uuid4(char out[37]);

/* Sessions of svc. add drops the oldest live one when full. */
int fp_session_add(struct fp_service *svc, const char *id);
enum fp_session_state fp_session_state(const struct fp_service *svc, const char *id);
bool fp_session_end(struct fp_service *svc, const char *id); /* logout */
size_t fp_sessions_end_all(struct fp_service *svc);          /* returns how many were live */

/* Counts an authenticated request; ends every session each expire_every of them. */
void fp_authed(struct fp_service *svc);
/* Counters: name must be one of def->counters; reason one of def->reasons. */
void fp_count(struct fp_service *svc, const char *name);
void fp_auth_failed(struct fp_service *svc, const char *reason);

/* ---- raw service (fp_raw.c) ------------------------------------------------------------------
 */

struct sockaddr;
struct fp_raw;
/* Listens on sa (a numeric address) and answers by script; NULL on failure (errno set). */
struct fp_raw *fp_raw_new(struct event_base *base, const struct sockaddr *sa, int salen);
/* Closes every connection and the listener; accepts NULL. */
void fp_raw_free(struct fp_raw *raw);

/* ---- panels (fp_<panel>.c) ---------------------------------------------------------------------
 */

fp_call_fn fp_echo_handle, fp_echo_ratelimited;
fp_call_fn fp_leak_handle; /* every service: .../_leak/... (fp_leak.c) */
fp_call_fn fp_navixy_handle, fp_navixy_ratelimited;
fp_call_fn fp_openpanel_handle, fp_openpanel_ratelimited;
fp_call_fn fp_panelica_handle, fp_panelica_ratelimited;
fp_call_fn fp_navirec_handle, fp_navirec_ratelimited;
extern const char *const fp_navixy_counters[], *const fp_navixy_reasons[];
extern const char *const fp_openpanel_counters[], *const fp_openpanel_reasons[];
extern const char *const fp_panelica_counters[], *const fp_panelica_reasons[];
extern const char *const fp_navirec_counters[], *const fp_navirec_reasons[];

/* Checks of string knobs: 0 when the value is acceptable. */
int fp_panelica_check_code(const char *s);
int fp_navirec_check_versions(const char *s);

#endif
