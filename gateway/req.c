/* req.c -- the response writer: status line, framing (Content-Length, chunked or close), body. */
#include "req.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "util.h"

const char *pg_req_header(const struct pg_req *r, const char *name, size_t *vn)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (pg_ieq(pg_req_hname(r, i), r->hdrs[i].name_len, name)) {
            *vn = r->hdrs[i].value_len;
            return pg_req_hvalue(r, i);
        }
    }
    return NULL;
}

static bool status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

int pg_resp_head(struct pg_req *r, int status, const char *extra, size_t extra_len,
                 int64_t content_length)
{
    struct evbuffer *out = r->out;
    bool body = status_has_body(status);
    r->status = status;
    r->head_sent = true;
    r->chunked = false;
    r->close_delimited = false;
    if (body && content_length < 0 && !r->head) {
        if (r->http_minor >= 1)
            r->chunked = true;
        else
            r->close_delimited = true;
    }
    if (r->close_delimited)
        r->keep_alive = false;
    /* formatted by hand into two stack buffers (pg_sb): this runs for every answer; every
     * piece is bounded, so neither can overflow */
    char line[64], tail[PG_RID_MAX + 128];
    struct pg_sb l = pg_sb_of(line, sizeof line), t = pg_sb_of(tail, sizeof tail);
    const char *reason = pg_http_reason(status);
    pg_sb_put(&l, "HTTP/1.1 ", 9);
    pg_sb_u64(&l, (uint64_t)(status % 1000), 0);
    pg_sb_put(&l, " ", 1);
    pg_sb_put(&l, reason, strlen(reason) > 40 ? 40 : strlen(reason));
    pg_sb_put(&l, "\r\n", 2);
    pg_sb_put(&t, "X-Request-Id: ", 14);
    pg_sb_str(&t, r->rid);
    pg_sb_put(&t, "\r\n", 2);
    if (body && content_length >= 0) {
        pg_sb_put(&t, "Content-Length: ", 16);
        pg_sb_u64(&t, (uint64_t)content_length, 0);
        pg_sb_put(&t, "\r\n", 2);
    }
    if (r->chunked)
        pg_sb_put(&t, "Transfer-Encoding: chunked\r\n", 28);
    if (!r->keep_alive)
        pg_sb_put(&t, "Connection: close\r\n", 19);
    else if (r->http_minor == 0)
        pg_sb_put(&t, "Connection: keep-alive\r\n", 24);
    pg_sb_put(&t, "\r\n", 2);
    if (l.over || t.over)
        return -1;
    size_t ln = l.len, tn = t.len;
    if (evbuffer_add(out, line, ln) || (extra_len && evbuffer_add(out, extra, extra_len)) ||
        (r->rl_hdrs_len && evbuffer_add(out, r->rl_hdrs, r->rl_hdrs_len)) ||
        evbuffer_add(out, tail, tn))
        return -1;
    return 0;
}

int pg_resp_body(struct pg_req *r, const void *p, size_t n)
{
    struct evbuffer *out = r->out;
    if (n == 0 || r->head || !status_has_body(r->status))
        return 0;
    r->resp_bytes += n;
    r->kick(r);
    if (!r->chunked)
        return evbuffer_add(out, p, n);
    if (evbuffer_add_printf(out, "%zx\r\n", n) < 0 || evbuffer_add(out, p, n) ||
        evbuffer_add(out, "\r\n", 2))
        return -1;
    return 0;
}

size_t pg_resp_pending(const struct pg_req *r)
{
    return evbuffer_get_length(r->out);
}

void pg_resp_end(struct pg_req *r)
{
    bool ok = true;
    if (r->chunked && evbuffer_add(r->out, "0\r\n\r\n", 5))
        ok = false;
    r->ended = true;
    r->kick(r);
    r->done(r, ok);
}

void pg_resp_abort(struct pg_req *r)
{
    r->keep_alive = false;
    r->ended = true;
    r->done(r, false);
}

void pg_resp_error(struct pg_req *r, const struct pg_envelope *e)
{
    struct evbuffer *body = evbuffer_new();
    char extra[160];
    r->err = (int)e->code;
    if (e->upstream_status)
        r->upstream_status = e->upstream_status;
    size_t xn = 0;
    if (!body)
        goto fail;
    if (pg_envelope_body(body, e, r->rid))
        goto fail;
    int n = snprintf(extra, sizeof extra, "Content-Type: application/json\r\n%s",
                     e->code == PG_E_UNAUTHORIZED ? "WWW-Authenticate: Bearer\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof extra)
        goto fail;
    xn = (size_t)n;
    if (e->has_retry_after) {
        int m = snprintf(extra + xn, sizeof extra - xn, "Retry-After: %llu\r\n",
                         (unsigned long long)e->retry_after_s);
        if (m < 0 || (size_t)m >= sizeof extra - xn)
            goto fail;
        xn += (size_t)m;
    }
    size_t len = evbuffer_get_length(body);
    if (pg_resp_head(r, pg_envelope_status(e), extra, xn, (int64_t)len))
        goto fail;
    if (!r->head) {
        r->resp_bytes += len;
        if (evbuffer_add_buffer(r->out, body))
            goto fail;
    }
    evbuffer_free(body);
    pg_resp_end(r);
    return;
fail:
    if (body)
        evbuffer_free(body);
    pg_resp_abort(r);
}

void pg_resp_fail(struct pg_req *r, enum pg_err_code code, const char *message)
{
    struct pg_envelope e = { .code = code, .message = message };
    if (code == PG_E_OVERLOADED || code == PG_E_DRAINING) {
        e.has_retry_after = true;
        e.retry_after_s = 1;
    }
    pg_resp_error(r, &e);
}

void pg_resp_simple(struct pg_req *r, int status, const char *ctype, const char *body, size_t n)
{
    char extra[128];
    int k = snprintf(extra, sizeof extra, "Content-Type: %s\r\n", ctype);
    if (k < 0 || (size_t)k >= sizeof extra ||
        pg_resp_head(r, status, extra, (size_t)k, (int64_t)n) || pg_resp_body(r, body, n)) {
        pg_resp_abort(r);
        return;
    }
    pg_resp_end(r);
}
