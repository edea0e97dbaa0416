/* envelope.h -- the one error envelope (SPEC section 5): the table of error kinds -> HTTP
 * status and "code", and the JSON body writer. Nobody else formats an error body. */
#ifndef PG_ENVELOPE_H
#define PG_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Error kinds the gateway produces. Several kinds share a SPEC "code" (e.g. 408, 414, 431 are all
 * bad_request): the SPEC's code list is closed, the HTTP status carries the finer reason. */
enum pg_err_code {
    PG_E_BAD_REQUEST,
    PG_E_UNAUTHORIZED,
    PG_E_FORBIDDEN,
    PG_E_NOT_FOUND,
    PG_E_METHOD_NOT_ALLOWED,
    PG_E_CONFLICT,
    PG_E_PAYLOAD_TOO_LARGE,
    PG_E_UNPROCESSABLE,
    PG_E_RATE_LIMITED,
    PG_E_UPSTREAM_AUTH_FAILED,
    PG_E_UPSTREAM_ERROR,
    PG_E_UPSTREAM_UNAVAILABLE,
    PG_E_UPSTREAM_TIMEOUT,
    PG_E_INTERNAL,
    PG_E_REQUEST_TIMEOUT,   /* 408 bad_request: request not read within client_timeout */
    PG_E_URI_TOO_LONG,      /* 414 bad_request */
    PG_E_HEADERS_TOO_LARGE, /* 431 bad_request */
    PG_E_NOT_IMPLEMENTED,   /* 501 bad_request: a Transfer-Encoding other than chunked */
    PG_E_OVERLOADED,        /* 503 rate_limited: max_connections reached */
    PG_E_DRAINING,          /* 503 rate_limited: shutting down */
    PG_E__COUNT
};

/* Everything an error answer says. Only code and message are required; upstream fields are
 * set only when a panel answered. Strings are borrowed (p, n) pairs or NUL-terminated. */
struct pg_envelope {
    enum pg_err_code code;
    int status; /* HTTP status; 0: the kind's own (a panel's error may keep the panel's) */
    const char *message;
    const char *upstream; /* NULL for the gateway's own errors */
    int upstream_status;
    const char *upstream_code;    /* NULL: absent */
    const char *upstream_message; /* not NUL-terminated; at most 512 bytes are used */
    size_t upstream_message_len;
    const char *details_json; /* raw JSON value or NULL for null */
    bool has_retry_after;
    uint64_t retry_after_s;
};

int pg_err_status(enum pg_err_code c);
/* The status an envelope is answered with: its override, else its kind's. */
int pg_envelope_status(const struct pg_envelope *e);
const char *pg_err_name(enum pg_err_code c);
/* Standard reason phrase for an HTTP status, "Unknown" if none. */
const char *pg_http_reason(int status);

/* Append the JSON body for e to out. request_id is borrowed. 0 ok, -1 out of memory. */
int pg_envelope_body(struct evbuffer *out, const struct pg_envelope *e, const char *request_id);

/* Append (p, n) to out as a JSON string body (without quotes): escapes quotes, backslashes and
 * control bytes; invalid UTF-8 bytes become U+FFFD. 0 ok, -1 out of memory. */
int pg_json_escape(struct evbuffer *out, const char *p, size_t n);
/* The same escaping into out (cap bytes, no NUL added): 0 with *len the bytes written, or -1
 * when they do not fit (out holds a part). For writers that must add a whole line or nothing. */
int pg_json_escape_mem(char *out, size_t cap, size_t *len, const char *p, size_t n);

#endif
