/* fwdans.c -- the upstream answer as either client delivers it: status, header fields (framing,
 * Connection-listed and dropped ones, Location and plugin rewrites), the head to the caller or
 * an error answer held and redacted for the verdict, body bytes with back-pressure. */
#include "fwdans.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hdr.h"
#include "limit.h"
#include "redact.h"
#include "rewrite.h"
#include "util.h"

static int parse_status(const char *p, size_t n)
{
    /* "HTTP/1.1 200 OK" or "HTTP/2 200" */
    const char *sp = memchr(p, ' ', n);
    if (!sp || (size_t)(p + n - sp) < 4)
        return -1;
    int s = 0;
    for (int i = 1; i <= 3; i++) {
        char c = sp[i];
        if (c < '0' || c > '9')
            return -1;
        s = s * 10 + (c - '0');
    }
    return s;
}

static int64_t parse_clen(const char *v, size_t n)
{
    int64_t x = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* Drop the head lines whose names the upstream's Connection header lists (hop-by-hop,
 * RFC 9110 7.6.1); the list may come before or after them, so this runs on the whole head. */
static void drop_conn_listed(struct pg_fwd *f)
{
    size_t i = 0, o = 0;
    while (i < f->head_len) {
        const char *line = f->head + i;
        const char *end = memchr(line, '\n', f->head_len - i);
        size_t ll = end ? (size_t)(end - line) + 1 : f->head_len - i;
        const char *colon = memchr(line, ':', ll);
        size_t nl = colon ? (size_t)(colon - line) : 0;
        if (!colon || !pg_hdr_conn_lists(f->conn, f->conn_len, line, nl)) {
            memmove(f->head + o, line, ll);
            o += ll;
        }
        i += ll;
    }
    f->head_len = o;
}

static int send_head(struct pg_fwd *f)
{
    struct pg_req *r = f->req;
    if (f->conn_len)
        drop_conn_listed(f);
    int64_t clen = f->chunked_up ? -1 : f->clen;
    int rc = pg_resp_head(r, f->status, f->head, f->head_len, clen);
    f->head_len = 0;
    f->head_done = true;
    return rc;
}

/* The answer's status line (again after each 1xx curl reports): the head starts over. */
static void head_status(struct pg_fwd *f, int status)
{
    f->last_ms = pg_now_ms();
    f->status = status;
    f->req->upstream_status = status;
    f->clen = -1;
    f->chunked_up = false;
    f->head_len = 0;
    f->conn_len = 0;
}

/* The head is complete: it goes to the caller, or an error answer is held for the verdict. */
static int head_done(struct pg_fwd *f)
{
    /* both framings: the mark of response splitting (RFC 9112 6.1); refused, not guessed */
    if (f->clen >= 0 && f->chunked_up)
        return -1;
    if (f->status >= 400) {
        f->hold = true; /* an error answer becomes an envelope (SPEC section 5) */
        return 0;
    }
    return send_head(f);
}

/* The gateway's public base for f's upstream: public_url + "/" + name. 0, or -1 if too long. */
static int public_base(const struct pg_fwd *f, char *base, size_t cap)
{
    const struct pg_conf *c = f->req->conf;
    int k = snprintf(base, cap, "%s/%s", c->public_url ? c->public_url : "", f->up->name);
    return k > 0 && (size_t)k < cap ? 0 : -1;
}

/* One answer header: noted for framing and the verdict, filtered, maybe rewritten by the
 * plugin, and kept for the caller's head. 0 ok, -1 the head is too big (or no memory). */
static int head_field(struct pg_fwd *f, const char *p, size_t nl, const char *v, size_t vn)
{
    pg_trim(&v, &vn);
    if (pg_ieq(p, nl, "content-length")) {
        int64_t cl = parse_clen(v, vn);
        if (f->clen >= 0 && cl != f->clen)
            return -1; /* two lengths: which body is the caller's? (RFC 9112 6.3: 502) */
        f->clen = cl;
    } else if (pg_ieq(p, nl, "transfer-encoding"))
        f->chunked_up = true;
    else if (pg_ieq(p, nl, "retry-after")) {
        uint64_t ra;
        if (pg_parse_retry_after(v, vn, (int64_t)time(NULL), &ra) == 0)
            f->retry_after_s = (int64_t)(ra > 86400 ? 86400 : ra);
    } else if (pg_ieq(p, nl, "content-type") && vn < sizeof f->ctype) {
        memcpy(f->ctype, v, vn);
        f->ctype[vn] = '\0';
    }
    if (pg_ieq(p, nl, "connection") && f->conn_len + vn + 1 < sizeof f->conn) {
        if (f->conn_len)
            f->conn[f->conn_len++] = ',';
        memcpy(f->conn + f->conn_len, v, vn);
        f->conn_len += vn;
    }
    if (!pg_hdr_name_ok(p, nl) || pg_hdr_resp_drop(p, nl) || !pg_hdr_value_ok(v, vn))
        return 0;
    char rw[4096], base[1024];
    const struct pg_auth_ops *ops = f->up->auth;
    if (pg_rewrite_is_location(p, nl)) {
        /* every adapter: a redirect to the panel goes through the gateway, without the hash */
        size_t rn = 0;
        int rc = public_base(f, base, sizeof base)
                     ? -1
                     : pg_rewrite_location(v, vn, f->up->url, base, ops ? ops->cred_param : NULL,
                                           rw, sizeof rw, &rn);
        if (rc < 0)
            return 0;
        if (rc > 0 && pg_hdr_value_ok(rw, rn)) {
            v = rw;
            vn = rn;
        }
    } else if (ops && ops->rewrite_header) {
        size_t rn = 0;
        int rc = public_base(f, base, sizeof base)
                     ? 0
                     : ops->rewrite_header(f->up->auth_state, p, nl, v, vn, f->up->url, base, rw,
                                           sizeof rw, &rn);
        if (rc < 0)
            return 0;
        if (rc > 0 && rn <= sizeof rw && pg_hdr_value_ok(rw, rn)) {
            v = rw;
            vn = rn;
        }
    }
    /* the whole answer head is bounded like a request's */
    size_t need = f->head_len + nl + vn + 4;
    if (need > PG_FWD_HEAD_MAX || pg_fwd_grow(&f->head, &f->head_cap, need))
        return -1;
    char *d = f->head + f->head_len;
    memcpy(d, p, nl);
    memcpy(d + nl, ": ", 2);
    memcpy(d + nl + 2, v, vn);
    memcpy(d + nl + 2 + vn, "\r\n", 2);
    f->head_len = need;
    return 0;
}

/* Keep a piece of the held error answer. -1 once it outgrows PG_FWD_HOLD_MAX: it is judged on
 * what was kept, the rest is not worth reading. */
static int hold_body(struct pg_fwd *f, const char *p, size_t len)
{
    if (!f->ebuf && !(f->ebuf = malloc(PG_FWD_HOLD_MAX)))
        return -1;
    size_t room = PG_FWD_HOLD_MAX - f->elen, k = len < room ? len : room;
    memcpy(f->ebuf + f->elen, p, k);
    f->elen += k;
    if (k == len)
        return 0;
    f->truncated = true;
    return -1;
}

/* curl's header callback: one raw line at a time. */
size_t pg_fwdans_curl_header(char *p, size_t size, size_t n, void *arg)
{
    struct pg_fwd *f = arg;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        int st = parse_status(p, len);
        head_status(f, st);
        return st < 100 ? 0 : len;
    }
    f->last_ms = pg_now_ms();
    size_t ln = len;
    while (ln && (p[ln - 1] == '\r' || p[ln - 1] == '\n'))
        ln--;
    if (ln == 0) {
        if (f->status < 200) /* the end of a 1xx block: the real answer follows */
            return len;
        return head_done(f) ? 0 : len;
    }
    const char *colon = memchr(p, ':', ln);
    if (!colon || p[0] == ' ' || p[0] == '\t')
        return len; /* obs-fold or garbage: dropped rather than passed on */
    size_t nl = (size_t)(colon - p);
    return head_field(f, p, nl, colon + 1, ln - nl - 1) ? 0 : len;
}

size_t pg_fwdans_curl_body(char *p, size_t size, size_t n, void *arg)
{
    struct pg_fwd *f = arg;
    size_t len = size * n;
    f->last_ms = pg_now_ms();
    if (f->hold)
        return hold_body(f, p, len) ? 0 : len;
    if (!f->head_done)
        return 0;
    if (pg_resp_pending(f->req) >= PG_FWD_HIGH) {
        f->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    return pg_resp_body(f->req, p, len) ? 0 : len;
}

/* ---- the own client's callbacks (h1.c): the same steps as curl's ---- */

int pg_fwdans_h1_status(void *arg, int status)
{
    head_status(arg, status);
    return 0;
}

int pg_fwdans_h1_header(void *arg, const char *name, size_t nl, const char *value, size_t vn)
{
    return head_field(arg, name, nl, value, vn);
}

int pg_fwdans_h1_head_end(void *arg)
{
    return head_done(arg);
}

/* Unlike curl's, these bytes are taken in any case: the client stops reading after them, so a
 * slow caller holds at most PG_FWD_HIGH plus one read. */
enum pg_h1_more pg_fwdans_h1_body(void *arg, const char *p, size_t n)
{
    struct pg_fwd *f = arg;
    f->last_ms = pg_now_ms();
    if (f->hold)
        return hold_body(f, p, n) ? PG_H1_ABORT : PG_H1_GO;
    if (!f->head_done || pg_resp_body(f->req, p, n))
        return PG_H1_ABORT;
    if (pg_resp_pending(f->req) < PG_FWD_HIGH)
        return PG_H1_GO;
    f->paused = true;
    return PG_H1_PAUSE;
}

/* Replace the gateway's secrets in the held error answer before anything is copied from it
 * (the plugin's verdict, the envelope's upstream_message, upstream_code and details), so a
 * message cut at 512 bytes cannot end in a secret's first half. A body that grows past
 * PG_FWD_HOLD_MAX is cut after redaction, like a long answer. 0 ok, -1 out of memory. */
int pg_fwdans_redact_held(struct pg_fwd *f)
{
    struct pg_span sec[PG_REDACT_MAX];
    size_t nsec = pg_auth_secrets(f->req->conf, f->req->upstream, f->has_sess ? &f->sess : NULL,
                                  sec, PG_REDACT_MAX - 1);
    if (f->made_len)
        sec[nsec++] = (struct pg_span){ f->made, f->made_len };
    if (nsec == 0 || f->elen == 0)
        return 0;
    char *red;
    size_t rn;
    if (pg_redact_alloc(sec, nsec, f->ebuf, f->elen, &red, &rn))
        return -1;
    if (!red)
        return 0;
    if (rn > PG_FWD_HOLD_MAX) {
        rn = PG_FWD_HOLD_MAX;
        f->truncated = true;
    }
    memcpy(f->ebuf, red, rn);
    f->elen = rn;
    free(red);
    return 0;
}
