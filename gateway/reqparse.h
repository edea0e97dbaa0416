/* reqparse.h -- the caller's request framing (SPEC section 2): http_parser plus the checks it
 * leaves to us, from bytes into a pg_req. No sockets and no clock, so a fuzzer or a unit test
 * feeds it from a buffer exactly as the server does.
 *
 * What it refuses, and why http_parser alone is not enough (Debian builds it lenient): a bare LF
 * or bare CR in the request line, a header, a chunk line or a trailer; obs-fold lines; control
 * characters in the head; chunk data not followed by CRLF; header names that are not tokens
 * (so no space before the colon); values with CR/LF/NUL; a Transfer-Encoding other than one
 * "chunked"; HTTP/2+ request lines. Trailer fields pass the same checks and are then dropped:
 * they never reach pg_req's headers. Limits: max_header_bytes for the head and again for the
 * trailers, PG_MAX_HDRS fields, 8 KiB of URL, max_body_bytes of body. */
#ifndef PG_REQPARSE_H
#define PG_REQPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "envelope.h"
#include "req.h"

#define PG_URL_MAX 8192

struct pg_reqparse;
/* The head is complete and passed the framing checks; the body has not been read. body_follows:
 * Content-Length > 0 or chunked. Return 0 to read on, -1 to stop (pg_reqparse_refuse first). */
typedef int pg_reqparse_head_fn(struct pg_reqparse *ps, bool body_follows, void *arg);

/* The line scanner's states (see reqparse.c). */
enum pg_frame_state {
    PG_FR_LINE_START,
    PG_FR_LINE,
    PG_FR_LINE_CR,
    PG_FR_HEAD_END, /* head scanned; the parser tells whether chunk lines follow */
    PG_FR_PASS,     /* no chunked body: http_parser frames it by Content-Length */
    PG_FR_CSIZE,
    PG_FR_CEXT,
    PG_FR_CSIZE_CR,
    PG_FR_CDATA,
    PG_FR_CDATA_CR,
    PG_FR_CDATA_LF,
    PG_FR_DONE, /* the last trailer line ended: the message is over */
};

struct pg_reqparse {
    http_parser hp;
    struct pg_req *r; /* borrowed: the request being filled */
    size_t hcap;      /* r->hbuf's size; it grows on demand up to max_header_bytes */
    size_t max_header_bytes;
    uint64_t max_body_bytes;
    pg_reqparse_head_fn *on_head;
    void *arg;
    /* line scanner */
    enum pg_frame_state fr;
    bool fr_trailers; /* the lines being scanned are trailers, not the head */
    bool fr_started;  /* a line of this head or trailer block was seen */
    bool fr_empty;    /* the line being scanned has no byte before its CR */
    unsigned fr_digits;
    uint64_t fr_left; /* chunk size, then the chunk bytes still to come */
    /* header callbacks */
    bool got_bytes; /* some byte of the current request arrived (for 408 vs idle close) */
    bool in_value;
    bool in_trailers;
    bool trailer_value; /* the last trailer callback was a value */
    size_t trailer_bytes;
    size_t ntrailers;
    bool complete;
    bool has_err;
    enum pg_err_code err;
    const char *err_msg; /* static text or NULL */
};

enum pg_reqparse_rc {
    PG_RP_MORE,     /* all bytes taken; the request is not complete yet */
    PG_RP_COMPLETE, /* a whole request is in r; *used bytes were taken (the rest is the next) */
    PG_RP_ERROR,    /* refuse the request: pg_reqparse_error() says how; close afterwards */
};

/* Start a new request in r (hbuf is kept for reuse, headers and body are emptied). */
void pg_reqparse_reset(struct pg_reqparse *ps, struct pg_req *r);
/* Feed bytes; *used says how many were taken. */
enum pg_reqparse_rc pg_reqparse_feed(struct pg_reqparse *ps, const char *p, size_t n, size_t *used);
/* After PG_RP_ERROR: the error kind and an optional static message. */
enum pg_err_code pg_reqparse_error(const struct pg_reqparse *ps, const char **msg);
/* Called from on_head: refuse the request with code and message (static text or NULL). */
void pg_reqparse_refuse(struct pg_reqparse *ps, enum pg_err_code code, const char *msg);
/* Room for extra bytes in r->hbuf within limit (e.g. the normalised path after the head). 0 ok,
 * -1 past the limit or out of memory. Headers are offsets, so a moved buffer is harmless. */
int pg_reqparse_reserve(struct pg_reqparse *ps, size_t extra, size_t limit);
/* The connection is done with its request buffers: a big hbuf is not kept between requests. */
void pg_reqparse_shrink(struct pg_reqparse *ps);

#endif
