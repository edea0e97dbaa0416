/* envelope.c -- error kinds -> status/code table and the JSON envelope writer (SPEC section 5). */
#include "envelope.h"

#include <string.h>

#include <event2/buffer.h>

static const struct {
    int status;
    const char *code;
    const char *message; /* default sentence when the caller gives none */
} err_table[PG_E__COUNT] = {
    [PG_E_BAD_REQUEST] = { 400, "bad_request", "The request is malformed." },
    [PG_E_UNAUTHORIZED] = { 401, "unauthorized", "A valid panelgate API key is required." },
    [PG_E_FORBIDDEN] = { 403, "forbidden", "This key may not do that." },
    [PG_E_NOT_FOUND] = { 404, "not_found", "No such upstream or path." },
    [PG_E_METHOD_NOT_ALLOWED] = { 405, "method_not_allowed", "Method not allowed." },
    [PG_E_CONFLICT] = { 409, "conflict", "Conflict." },
    [PG_E_PAYLOAD_TOO_LARGE] = { 413, "payload_too_large", "The request body is too large." },
    [PG_E_UNPROCESSABLE] = { 422, "unprocessable", "The request cannot be processed." },
    [PG_E_RATE_LIMITED] = { 429, "rate_limited", "Rate limit exceeded." },
    [PG_E_UPSTREAM_AUTH_FAILED] = { 502, "upstream_auth_failed",
                                    "The upstream rejected the gateway's credentials." },
    [PG_E_UPSTREAM_ERROR] = { 502, "upstream_error", "The upstream answered with an error." },
    [PG_E_UPSTREAM_UNAVAILABLE] = { 502, "upstream_unavailable", "The upstream is unreachable." },
    [PG_E_UPSTREAM_TIMEOUT] = { 504, "upstream_timeout", "The upstream did not answer in time." },
    [PG_E_INTERNAL] = { 500, "internal_error", "Internal error." },
    [PG_E_REQUEST_TIMEOUT] = { 408, "bad_request", "The request was not received in time." },
    [PG_E_URI_TOO_LONG] = { 414, "bad_request", "The request line is too long." },
    [PG_E_HEADERS_TOO_LARGE] = { 431, "bad_request", "The request headers are too large." },
    [PG_E_NOT_IMPLEMENTED] = { 501, "bad_request",
                               "Only the chunked transfer coding is supported." },
    [PG_E_OVERLOADED] = { 503, "rate_limited", "Too many connections; retry later." },
    [PG_E_DRAINING] = { 503, "rate_limited", "The gateway is shutting down." },
};

int pg_err_status(enum pg_err_code c)
{
    return (unsigned)c < PG_E__COUNT ? err_table[c].status : 500;
}

int pg_envelope_status(const struct pg_envelope *e)
{
    return e->status >= 100 && e->status <= 599 ? e->status : pg_err_status(e->code);
}

const char *pg_err_name(enum pg_err_code c)
{
    return (unsigned)c < PG_E__COUNT ? err_table[c].code : "internal_error";
}

const char *pg_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* Length of the valid UTF-8 sequence at p (1-4), 0 if invalid or truncated. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0xffu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Where escaped bytes go: 0 taken, -1 not (out of memory, no room). */
typedef int esc_sink_fn(void *arg, const void *p, size_t n);

/* The one escaping loop (SPEC 5 bodies, the JSON access log): runs of bytes that need no
 * escaping go to the sink whole, each byte that does goes as its replacement. */
static int escape(const char *p, size_t n, esc_sink_fn *sink, void *arg)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        char esc[8];
        const char *rep = NULL;
        size_t replen = 0;
        size_t adv = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rep = esc;
            replen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            static const char hexd[] = "0123456789abcdef";
            memcpy(esc, "\\u00", 4);
            esc[4] = hexd[c >> 4];
            esc[5] = hexd[c & 15];
            rep = esc;
            replen = 6;
        } else if (c >= 0x80) {
            adv = utf8_len(s + i, n - i);
            if (adv == 0) {
                rep = "\xef\xbf\xbd"; /* U+FFFD for a byte that is not valid UTF-8 */
                replen = 3;
                adv = 1;
            }
        }
        if (rep) {
            if (i > run && sink(arg, s + run, i - run))
                return -1;
            if (sink(arg, rep, replen))
                return -1;
            run = i + adv;
        }
        i += adv;
    }
    if (n > run && sink(arg, s + run, n - run))
        return -1;
    return 0;
}

static int sink_evbuffer(void *arg, const void *p, size_t n)
{
    return evbuffer_add(arg, p, n);
}

int pg_json_escape(struct evbuffer *out, const char *p, size_t n)
{
    return escape(p, n, sink_evbuffer, out);
}

struct mem_sink {
    char *p;
    size_t len, cap;
};

static int sink_mem(void *arg, const void *p, size_t n)
{
    struct mem_sink *m = arg;
    if (n > m->cap - m->len)
        return -1;
    memcpy(m->p + m->len, p, n);
    m->len += n;
    return 0;
}

int pg_json_escape_mem(char *out, size_t cap, size_t *len, const char *p, size_t n)
{
    struct mem_sink m = { out, 0, cap };
    if (escape(p, n, sink_mem, &m))
        return -1;
    *len = m.len;
    return 0;
}

static int add_str_field(struct evbuffer *out, const char *name, const char *p, size_t n)
{
    if (evbuffer_add_printf(out, ",\"%s\":\"", name) < 0 || pg_json_escape(out, p, n) ||
        evbuffer_add(out, "\"", 1))
        return -1;
    return 0;
}

int pg_envelope_body(struct evbuffer *out, const struct pg_envelope *e, const char *request_id)
{
    enum pg_err_code c = (unsigned)e->code < PG_E__COUNT ? e->code : PG_E_INTERNAL;
    const char *msg = e->message ? e->message : err_table[c].message;
    if (evbuffer_add_printf(out, "{\"error\":{\"status\":%d,\"code\":\"%s\"", pg_envelope_status(e),
                            err_table[c].code) < 0)
        return -1;
    if (add_str_field(out, "message", msg, strlen(msg)))
        return -1;
    if (e->upstream) {
        if (add_str_field(out, "upstream", e->upstream, strlen(e->upstream)) ||
            evbuffer_add_printf(out, ",\"upstream_status\":%d", e->upstream_status) < 0)
            return -1;
        if (e->upstream_code &&
            add_str_field(out, "upstream_code", e->upstream_code, strlen(e->upstream_code)))
            return -1;
        if (e->upstream_message) {
            size_t n = e->upstream_message_len > 512 ? 512 : e->upstream_message_len;
            if (add_str_field(out, "upstream_message", e->upstream_message, n))
                return -1;
        }
    }
    if (evbuffer_add_printf(out, ",\"details\":%s", e->details_json ? e->details_json : "null") < 0)
        return -1;
    if (e->has_retry_after &&
        evbuffer_add_printf(out, ",\"retry_after\":%llu", (unsigned long long)e->retry_after_s) < 0)
        return -1;
    const char *rid = request_id ? request_id : "";
    if (add_str_field(out, "request_id", rid, strlen(rid)) || evbuffer_add(out, "}}", 2))
        return -1;
    return 0;
}
