/* reqparse.c -- a caller's request from bytes: a line scanner that refuses what Debian's lenient
 * http_parser would accept (bare LF/CR, obs-fold, chunk data without CRLF), then http_parser for
 * the rest, and our header checks. Trailers are checked and dropped. */
#include "reqparse.h"

#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <event2/buffer.h>

#include "hdr.h"
#include "util.h"

static int refuse(struct pg_reqparse *ps, enum pg_err_code code)
{
    if (!ps->has_err) {
        ps->has_err = true;
        ps->err = code;
    }
    return -1; /* any non-zero is an error, but 1 and 2 from on_headers_complete are not */
}

void pg_reqparse_refuse(struct pg_reqparse *ps, enum pg_err_code code, const char *msg)
{
    refuse(ps, code);
    ps->err_msg = msg;
}

enum pg_err_code pg_reqparse_error(const struct pg_reqparse *ps, const char **msg)
{
    *msg = ps->has_err ? ps->err_msg : NULL;
    if (ps->has_err)
        return ps->err;
    switch (HTTP_PARSER_ERRNO(&ps->hp)) {
    case HPE_HEADER_OVERFLOW:
        return PG_E_HEADERS_TOO_LARGE;
    case HPE_INVALID_TRANSFER_ENCODING:
        return PG_E_NOT_IMPLEMENTED;
    default:
        return PG_E_BAD_REQUEST;
    }
}

/* ---- the line scanner: runs ahead of http_parser over the head, the chunk lines and the
 * trailers, and hands it only bytes whose line framing is sound ---- */

/* How many bytes from p on may sit inside a line without a second look: not a CTL (CR, LF
 * and HT included) and not DEL. 16 at a time with SSE2 (x86-64 always has it): the scanner
 * touches every head byte, and this keeps it cheap next to http_parser. */
static size_t plain_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i us = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(x, us), us); /* x <= 0x1f, unsigned */
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(x, del)));
        if (m)
            return i + (size_t)__builtin_ctz(m);
    }
#endif
    while (i < n && p[i] >= 0x20 && p[i] != 0x7f)
        i++;
    return i;
}

/* A character that may not appear in a head line: CTLs but HT, and DEL. */
static bool is_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* The LF of a line just came: an empty line ends the block (head or trailers) once a field or
 * the request line was seen; empty lines before a request line are skipped (RFC 9112 2.2). */
static bool line_end(struct pg_reqparse *ps, bool empty)
{
    if (!empty) {
        ps->fr_started = true;
        ps->fr = PG_FR_LINE_START;
        return false;
    }
    if (!ps->fr_started && !ps->fr_trailers) {
        ps->fr = PG_FR_LINE_START;
        return false;
    }
    ps->fr = ps->fr_trailers ? PG_FR_DONE : PG_FR_HEAD_END;
    return true;
}

/* *n in: bytes at p; out: how many of them may go to http_parser now (stopping at the head's
 * end and the message's end). -1: the framing is malformed. */
static int frame_scan(struct pg_reqparse *ps, const char *p, size_t *n)
{
    size_t i = 0, len = *n;
    while (i < len) {
        unsigned char ch = (unsigned char)p[i];
        int h;
        switch (ps->fr) {
        case PG_FR_PASS:
            return 0;
        case PG_FR_HEAD_END:
        case PG_FR_DONE:
            *n = i;
            return 0;
        case PG_FR_LINE_START:
            if (ch != '\r' && (ch == ' ' || ch == '\t' || is_ctl(ch)))
                return -1; /* obs-fold, a bare LF, or a control character */
            ps->fr = ch == '\r' ? PG_FR_LINE_CR : PG_FR_LINE;
            ps->fr_empty = ch == '\r';
            break;
        case PG_FR_LINE:
            i += plain_run((const unsigned char *)p + i, len - i);
            if (i == len)
                continue;
            ch = (unsigned char)p[i];
            if (ch == '\r')
                ps->fr = PG_FR_LINE_CR;
            else if (is_ctl(ch))
                return -1;
            break;
        case PG_FR_LINE_CR:
            if (ch != '\n')
                return -1;
            if (line_end(ps, ps->fr_empty)) {
                *n = i + 1;
                return 0;
            }
            break;
        case PG_FR_CSIZE:
            if ((h = pg_hexval(ch)) >= 0) {
                if (ps->fr_digits++ == 16)
                    return -1; /* past 64 bits */
                ps->fr_left = ps->fr_left << 4 | (uint64_t)h;
                break;
            }
            if (ps->fr_digits == 0)
                return -1;
            if (ch == '\r')
                ps->fr = PG_FR_CSIZE_CR;
            else if (ch == ';' || ch == ' ' || ch == '\t')
                ps->fr = PG_FR_CEXT;
            else
                return -1;
            break;
        case PG_FR_CEXT:
            if (ch == '\r')
                ps->fr = PG_FR_CSIZE_CR;
            else if (is_ctl(ch))
                return -1;
            break;
        case PG_FR_CSIZE_CR:
            if (ch != '\n')
                return -1;
            if (ps->fr_left == 0) { /* the last chunk: trailer lines follow */
                ps->fr = PG_FR_LINE_START;
                ps->fr_trailers = true;
                ps->fr_started = false;
            } else {
                ps->fr = PG_FR_CDATA;
            }
            break;
        case PG_FR_CDATA: {
            size_t k = len - i;
            if (k > ps->fr_left)
                k = (size_t)ps->fr_left;
            ps->fr_left -= k;
            i += k;
            if (ps->fr_left == 0)
                ps->fr = PG_FR_CDATA_CR;
            continue;
        }
        case PG_FR_CDATA_CR:
            if (ch != '\r')
                return -1;
            ps->fr = PG_FR_CDATA_LF;
            break;
        case PG_FR_CDATA_LF:
            if (ch != '\n')
                return -1;
            ps->fr = PG_FR_CSIZE;
            ps->fr_digits = 0;
            ps->fr_left = 0;
            break;
        }
        i++;
    }
    return 0;
}

/* ---- http_parser callbacks ---- */

static struct pg_reqparse *pst(http_parser *p)
{
    return p->data;
}

int pg_reqparse_reserve(struct pg_reqparse *ps, size_t extra, size_t limit)
{
    struct pg_req *r = ps->r;
    size_t need = r->hlen + extra;
    if (need <= ps->hcap)
        return 0;
    if (need > limit)
        return -1;
    size_t cap = ps->hcap ? ps->hcap * 2 : 256; /* most request heads are a few hundred bytes */
    while (cap < need)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    char *nb = realloc(r->hbuf, cap);
    if (!nb)
        return -1;
    r->hbuf = nb;
    ps->hcap = cap;
    return 0;
}

static int append(struct pg_reqparse *ps, const char *at, size_t len)
{
    struct pg_req *r = ps->r;
    if (pg_reqparse_reserve(ps, len, ps->max_header_bytes))
        return refuse(ps, PG_E_HEADERS_TOO_LARGE);
    memcpy(r->hbuf + r->hlen, at, len);
    r->hlen += len;
    return 0;
}

static int on_begin(http_parser *p)
{
    pst(p)->got_bytes = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct pg_reqparse *ps = pst(p);
    struct pg_req *r = ps->r;
    if (r->url_len + len > PG_URL_MAX)
        return refuse(ps, PG_E_URI_TOO_LONG);
    if (r->url_len == 0)
        r->url = (uint32_t)r->hlen;
    r->url_len += (uint32_t)len;
    return append(ps, at, len);
}

/* A trailer piece: checked like a header, counted against the same limits, never kept. */
static int trailer_piece(struct pg_reqparse *ps, const char *at, size_t len, bool value)
{
    if (len == 0) /* http_parser reports an empty piece when a read starts at the colon */
        return 0;
    ps->trailer_bytes += len;
    if (ps->trailer_bytes > ps->max_header_bytes)
        return refuse(ps, PG_E_HEADERS_TOO_LARGE);
    if (value ? !pg_hdr_value_ok(at, len) : !pg_hdr_name_ok(at, len))
        return refuse(ps, PG_E_BAD_REQUEST);
    return 0;
}

static int on_hfield(http_parser *p, const char *at, size_t len)
{
    struct pg_reqparse *ps = pst(p);
    struct pg_req *r = ps->r;
    if (ps->in_trailers) {
        if (ps->trailer_value || ps->ntrailers == 0) {
            if (++ps->ntrailers > PG_MAX_HDRS)
                return refuse(ps, PG_E_HEADERS_TOO_LARGE);
            ps->trailer_value = false;
        }
        return trailer_piece(ps, at, len, false);
    }
    if (ps->in_value || r->nhdrs == 0) {
        if (r->nhdrs == PG_MAX_HDRS)
            return refuse(ps, PG_E_HEADERS_TOO_LARGE);
        r->hdrs[r->nhdrs].name = (uint32_t)r->hlen;
        r->hdrs[r->nhdrs].name_len = 0;
        r->hdrs[r->nhdrs].value = (uint32_t)r->hlen;
        r->hdrs[r->nhdrs].value_len = 0;
        r->nhdrs++;
        ps->in_value = false;
    }
    r->hdrs[r->nhdrs - 1].name_len += (uint32_t)len;
    return append(ps, at, len);
}

static int on_hvalue(http_parser *p, const char *at, size_t len)
{
    struct pg_reqparse *ps = pst(p);
    struct pg_req *r = ps->r;
    if (ps->in_trailers) {
        ps->trailer_value = true;
        return trailer_piece(ps, at, len, true);
    }
    if (!ps->in_value) {
        r->hdrs[r->nhdrs - 1].value = (uint32_t)r->hlen;
        ps->in_value = true;
    }
    r->hdrs[r->nhdrs - 1].value_len += (uint32_t)len;
    return append(ps, at, len);
}

/* Token header names (no space before the colon), values without CR/LF/NUL, one
 * Transfer-Encoding that is exactly "chunked". */
static int check_headers(struct pg_reqparse *ps)
{
    struct pg_req *r = ps->r;
    int te = 0;
    for (size_t i = 0; i < r->nhdrs; i++) {
        const char *n = pg_req_hname(r, i), *v = pg_req_hvalue(r, i);
        size_t nl = r->hdrs[i].name_len, vl = r->hdrs[i].value_len;
        if (!pg_hdr_name_ok(n, nl) || !pg_hdr_value_ok(v, vl))
            return refuse(ps, PG_E_BAD_REQUEST);
        if (pg_ieq(n, nl, "transfer-encoding")) {
            pg_trim(&v, &vl);
            if (++te > 1 || !pg_ieq(v, vl, "chunked"))
                return refuse(ps, te > 1 ? PG_E_BAD_REQUEST : PG_E_NOT_IMPLEMENTED);
        }
    }
    return 0;
}

static const struct {
    enum http_method m;
    unsigned bit;
} methods[] = {
    { HTTP_GET, PG_M_GET },         { HTTP_HEAD, PG_M_HEAD },   { HTTP_POST, PG_M_POST },
    { HTTP_PUT, PG_M_PUT },         { HTTP_PATCH, PG_M_PATCH }, { HTTP_DELETE, PG_M_DELETE },
    { HTTP_OPTIONS, PG_M_OPTIONS },
};

static int on_headers_done(http_parser *p)
{
    struct pg_reqparse *ps = pst(p);
    struct pg_req *r = ps->r;
    if (check_headers(ps))
        return -1;
    r->method = http_method_str((enum http_method)p->method);
    r->method_bit = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].m == p->method)
            r->method_bit = methods[i].bit;
    r->head = p->method == HTTP_HEAD;
    r->http_minor = p->http_major == 1 ? p->http_minor : 0;
    if (p->http_major != 1)
        return refuse(ps, PG_E_BAD_REQUEST);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > ps->max_body_bytes)
        return refuse(ps, PG_E_PAYLOAD_TOO_LARGE);
    ps->in_trailers = true; /* any field from here on is a trailer */
    bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if (ps->on_head && ps->on_head(ps, body, ps->arg))
        return refuse(ps, PG_E_BAD_REQUEST);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct pg_reqparse *ps = pst(p);
    struct pg_req *r = ps->r;
    if (evbuffer_get_length(r->body) + len > ps->max_body_bytes)
        return refuse(ps, PG_E_PAYLOAD_TOO_LARGE);
    if (evbuffer_add(r->body, at, len))
        return refuse(ps, PG_E_INTERNAL);
    return 0;
}

static int on_complete(http_parser *p)
{
    struct pg_reqparse *ps = pst(p);
    ps->complete = true;
    ps->r->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings psettings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_headers_done,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

void pg_reqparse_reset(struct pg_reqparse *ps, struct pg_req *r)
{
    ps->r = r;
    r->hlen = 0;
    r->url = r->url_len = 0;
    r->nhdrs = 0;
    evbuffer_drain(r->body, evbuffer_get_length(r->body));
    http_parser_init(&ps->hp, HTTP_REQUEST);
    ps->hp.data = ps;
    ps->fr = PG_FR_LINE_START;
    ps->fr_trailers = ps->fr_started = false;
    ps->fr_digits = 0;
    ps->fr_left = 0;
    ps->got_bytes = ps->in_value = ps->in_trailers = ps->trailer_value = false;
    ps->trailer_bytes = ps->ntrailers = 0;
    ps->complete = ps->has_err = false;
    ps->err_msg = NULL;
}

void pg_reqparse_shrink(struct pg_reqparse *ps)
{
    if (ps->hcap > 4096) { /* one big request does not pin a big buffer to the connection */
        free(ps->r->hbuf);
        ps->r->hbuf = NULL;
        ps->hcap = 0;
    }
}

enum pg_reqparse_rc pg_reqparse_feed(struct pg_reqparse *ps, const char *p, size_t n, size_t *used)
{
    size_t off = 0;
    *used = 0;
    while (off < n) {
        size_t k = n - off;
        if (frame_scan(ps, p + off, &k) || k == 0) {
            /* k == 0: the scanner saw the message end and http_parser did not: never trust
             * either then */
            pg_reqparse_refuse(ps, PG_E_BAD_REQUEST, "Malformed request framing.");
            return PG_RP_ERROR;
        }
        size_t m = http_parser_execute(&ps->hp, &psettings, p + off, k);
        off += m;
        *used = off;
        enum http_errno e = HTTP_PARSER_ERRNO(&ps->hp);
        if (e == HPE_PAUSED && ps->complete)
            return PG_RP_COMPLETE;
        if (e != HPE_OK || m < k) { /* m < k without an error: e.g. an upgrade */
            if (e == HPE_OK)
                refuse(ps, PG_E_BAD_REQUEST); /* else pg_reqparse_error maps the HPE code */
            return PG_RP_ERROR;
        }
        if (ps->fr == PG_FR_HEAD_END)
            ps->fr = (ps->hp.flags & F_CHUNKED) ? PG_FR_CSIZE : PG_FR_PASS;
    }
    return PG_RP_MORE;
}
