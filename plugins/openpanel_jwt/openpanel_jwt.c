/* openpanel_jwt.c -- `openpanel_jwt` auth (SPEC 1): POST {"username","password"} to auth_path,
 * keep "Bearer <access_token>", refresh before the JWT's exp minus refresh_skew, log in again on
 * 401 (or a JWT-layer 422). No I/O and no allocation after init. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "../plugin.h"

/* err->code values: gateway/envelope.h's enum pg_err_code, which plugins do not include */
#define E_UPSTREAM_AUTH_FAILED 9

#define DEFAULT_AUTH_PATH "/api/"
#define DEFAULT_SKEW_MS 60000u
#define AUTH_PATH_MAX 256
#define BEARER "Bearer "
#define BEARER_LEN (sizeof BEARER - 1)

struct openpanel {
    /* from config */
    struct pg_secret username;
    struct pg_secret password;
    char *auth_path;          /* NULL: DEFAULT_AUTH_PATH */
    uint64_t refresh_skew_ms; /* 0: DEFAULT_SKEW_MS (conf cannot tell "0s" from absent) */
    /* set by init */
    const char *path; /* auth_path or the default; sent as the login path */
    size_t base_len;  /* length of path without its trailing '/', for reserved() */
    uint64_t skew_ms; /* effective refresh_skew */
};

static const struct pg_conf_key openpanel_keys[] = {
    { "username", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct openpanel, username), NULL, NULL },
    { "password", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct openpanel, password), NULL, NULL },
    { "auth_path", PG_CONF_STRING, 0, offsetof(struct openpanel, auth_path), NULL, NULL },
    { "refresh_skew", PG_CONF_DURATION, 0, offsetof(struct openpanel, refresh_skew_ms), NULL,
      NULL },
    { 0 },
};

static int fail(struct pg_err *err, const char *msg)
{
    size_t n = strlen(msg);
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    memcpy(err->msg, msg, n);
    err->msg[n] = '\0';
    return -1;
}

/* ---- a small JSON reader: one top-level object, spans into the input, no allocation (classify
 * runs per request). Strict grammar, nesting bounded by J_MAX_DEPTH. ---- */

#define J_MAX_DEPTH 32

enum jtype { J_NONE, J_STRING, J_NUMBER, J_OTHER };

struct jval {
    enum jtype type;
    const char *p; /* J_STRING: the raw bytes between the quotes; else the whole token */
    size_t n;
};

static const char *j_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* p just after an opening quote: the closing quote, or NULL when the string is malformed. */
static const char *j_string_end(const char *p, const char *e)
{
    for (; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c < 0x20)
            return NULL;
        if (c != '\\')
            continue;
        if (++p >= e)
            return NULL;
        if (*p == 'u') {
            if (e - p < 5)
                return NULL;
            for (int i = 1; i <= 4; i++)
                if (hexval(p[i]) < 0)
                    return NULL;
            p += 4;
        } else if (!strchr("\"\\/bfnrt", *p)) {
            return NULL;
        }
    }
    return NULL;
}

static const char *j_digits(const char *p, const char *e)
{
    const char *s = p;
    while (p < e && is_digit(*p))
        p++;
    return p == s ? NULL : p;
}

static const char *j_number_end(const char *p, const char *e)
{
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0')
        p++;
    else if (!(p = j_digits(p, e)))
        return NULL;
    if (p < e && *p == '.' && !(p = j_digits(p + 1, e)))
        return NULL;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (!(p = j_digits(p, e)))
            return NULL;
    }
    return p;
}

/* One value at p (after whitespace). When `want` is set and this is an object, its members named
 * in want[0..nwant) are reported in found[] (first occurrence wins). Returns the end of the value
 * or NULL when malformed. */
static const char *j_value(const char *p, const char *e, int depth, const char *const *want,
                           struct jval *found, size_t nwant, struct jval *v);

static bool j_key_is(const struct jval *k, const char *name)
{
    size_t n = strlen(name);
    /* the names looked up here are plain ASCII: an escaped key never matches */
    return k->n == n && !memchr(k->p, '\\', k->n) && !memcmp(k->p, name, n);
}

static const char *j_container(const char *p, const char *e, int depth, const char *const *want,
                               struct jval *found, size_t nwant)
{
    char close = *p == '{' ? '}' : ']';
    if (depth >= J_MAX_DEPTH)
        return NULL;
    p = j_ws(p + 1, e);
    if (p < e && *p == close)
        return p + 1;
    for (;;) {
        struct jval k = { J_NONE, NULL, 0 }, v;
        if (close == '}') {
            if (p >= e || *p != '"' || !(p = j_value(p, e, depth + 1, NULL, NULL, 0, &k)))
                return NULL;
            p = j_ws(p, e);
            if (p >= e || *p != ':')
                return NULL;
            p = j_ws(p + 1, e);
        }
        if (!(p = j_value(p, e, depth + 1, NULL, NULL, 0, &v)))
            return NULL;
        for (size_t i = 0; close == '}' && i < nwant; i++)
            if (found[i].type == J_NONE && j_key_is(&k, want[i]))
                found[i] = v;
        p = j_ws(p, e);
        if (p >= e)
            return NULL;
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return NULL;
        p = j_ws(p + 1, e);
    }
}

static const char *j_literal(const char *p, const char *e)
{
    static const char *const lits[] = { "true", "false", "null" };
    for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(e - p) >= n && !memcmp(p, lits[i], n))
            return p + n;
    }
    return NULL;
}

static const char *j_value(const char *p, const char *e, int depth, const char *const *want,
                           struct jval *found, size_t nwant, struct jval *v)
{
    const char *s = p;
    if (p >= e)
        return NULL;
    v->type = J_OTHER;
    if (*p == '"') {
        if (!(p = j_string_end(p + 1, e)))
            return NULL;
        v->type = J_STRING;
        v->p = s + 1;
        v->n = (size_t)(p - s - 1);
        return p + 1;
    }
    if (*p == '{' || *p == '[') {
        p = j_container(p, e, depth, want, found, nwant);
    } else if (*p == '-' || is_digit(*p)) {
        v->type = J_NUMBER;
        p = j_number_end(p, e);
    } else {
        p = j_literal(p, e);
    }
    if (!p)
        return NULL;
    v->p = s;
    v->n = (size_t)(p - s);
    return p;
}

/* Look up top-level members of the JSON object (p, n). 0: a well-formed object (found[i].type is
 * J_NONE for an absent name); -1: not a JSON object. */
static int json_members(const char *p, size_t n, const char *const *want, struct jval *found,
                        size_t nwant)
{
    struct jval v;
    for (size_t i = 0; i < nwant; i++)
        found[i].type = J_NONE;
    if (!p)
        return -1;
    const char *e = p + n;
    p = j_ws(p, e);
    if (p >= e || *p != '{' || !(p = j_value(p, e, 0, want, found, nwant, &v)))
        goto bad;
    if (j_ws(p, e) == e)
        return 0;
bad:
    for (size_t i = 0; i < nwant; i++)
        found[i].type = J_NONE;
    return -1;
}

/* Length of the complete UTF-8 prefix of (p, n): a sequence cut short at the end is dropped. */
static size_t utf8_complete(const unsigned char *p, size_t n)
{
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && (p[i - 1] & 0xc0) == 0x80)
        i--, back++;
    if (i == 0)
        return n;
    unsigned char c = p[i - 1];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
    return (c >= 0x80 && back + 1 < len) ? i - 1 : n;
}

/* Decode a J_STRING's raw bytes (already validated) into out (cap includes the NUL). Returns 0,
 * or -1 when it does not fit; with `truncate` it is cut at a character boundary instead. */
static int j_unescape(const char *p, size_t n, char *out, size_t cap, bool truncate, size_t *outlen)
{
    const char *e = p + n;
    size_t o = 0;
    int rc = 0;
    while (p < e) {
        unsigned char u[4];
        size_t un = 1;
        if (*p != '\\') {
            u[0] = (unsigned char)*p++;
        } else {
            char c = p[1];
            p += 2;
            if (c != 'u') {
                static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
                u[0] = (unsigned char)to[strchr(from, c) - from];
            } else {
                unsigned long cp = 0;
                for (int i = 0; i < 4; i++)
                    cp = cp << 4 | (unsigned long)hexval(p[i]);
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    unsigned long lo = 0;
                    for (int i = 2; i < 6; i++)
                        lo = lo << 4 | (unsigned long)hexval(p[i]);
                    if (lo >= 0xdc00 && lo <= 0xdfff) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                        p += 6;
                    }
                }
                if (cp >= 0xd800 && cp <= 0xdfff)
                    cp = 0xfffd; /* a lone surrogate */
                if (cp < 0x80) {
                    u[0] = (unsigned char)cp;
                } else if (cp < 0x800) {
                    u[0] = (unsigned char)(0xc0 | cp >> 6);
                    u[1] = (unsigned char)(0x80 | (cp & 0x3f));
                    un = 2;
                } else if (cp < 0x10000) {
                    u[0] = (unsigned char)(0xe0 | cp >> 12);
                    u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                    u[2] = (unsigned char)(0x80 | (cp & 0x3f));
                    un = 3;
                } else {
                    u[0] = (unsigned char)(0xf0 | cp >> 18);
                    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
                    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                    u[3] = (unsigned char)(0x80 | (cp & 0x3f));
                    un = 4;
                }
            }
        }
        if (cap - 1 - o < un) {
            rc = -1;
            break;
        }
        memcpy(out + o, u, un);
        o += un;
    }
    if (rc && truncate) {
        o = utf8_complete((const unsigned char *)out, o);
        rc = 0;
    }
    out[o] = '\0';
    *outlen = o;
    return rc;
}

/* ---- login ---- */

/* Bytes of s as the inside of a JSON string; -1 when they are not valid UTF-8 (JSON cannot carry
 * them). Control characters become \b \f \n \r \t or \u00XX. */
static long json_escaped_len(const struct pg_secret *s)
{
    const unsigned char *p = (const unsigned char *)s->p;
    size_t i = 0, len = 0;
    while (i < s->n) {
        unsigned char c = p[i];
        size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        if (c >= 0x80) {
            unsigned long cp = c & (0x3f >> (k - 1));
            if (c < 0xc2 || c > 0xf4 || s->n - i < k)
                return -1;
            for (size_t j = 1; j < k; j++) {
                if ((p[i + j] & 0xc0) != 0x80)
                    return -1;
                cp = cp << 6 | (p[i + j] & 0x3fu);
            }
            /* overlong, surrogate or beyond U+10FFFF */
            if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                (cp >= 0xd800 && cp <= 0xdfff))
                return -1;
            len += k;
        } else if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
                   c == '\t') {
            len += 2;
        } else {
            len += c < 0x20 ? 6 : 1;
        }
        i += k;
    }
    return (long)len;
}

static int put(char *buf, size_t cap, size_t *o, const char *p, size_t n)
{
    if (cap - *o < n)
        return -1;
    memcpy(buf + *o, p, n);
    *o += n;
    return 0;
}

static int put_json(char *buf, size_t cap, size_t *o, const struct pg_secret *s)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < s->n; i++) {
        unsigned char c = (unsigned char)s->p[i];
        char esc[6] = { '\\', 0, '0', '0', hex[c >> 4], hex[c & 15] };
        const char *short_from = "\"\\\b\f\n\r\t", *short_to = "\"\\bfnrt";
        const char *hit = c ? strchr(short_from, c) : NULL;
        int rc;
        if (hit) {
            esc[1] = short_to[hit - short_from];
            rc = put(buf, cap, o, esc, 2);
        } else if (c < 0x20) {
            esc[1] = 'u';
            rc = put(buf, cap, o, esc, 6);
        } else {
            rc = put(buf, cap, o, (const char *)&c, 1);
        }
        if (rc)
            return -1;
    }
    return 0;
}

#define LOGIN_HEAD "{\"username\":\""
#define LOGIN_MID "\",\"password\":\""
#define LOGIN_TAIL "\"}"

static int op_build_login(const void *vst, struct pg_login_req *req)
{
    const struct openpanel *st = vst;
    size_t o = 0, cap = sizeof req->body;
    req->method = "POST";
    req->path = st->path;
    req->content_type = "application/json";
    if (put(req->body, cap, &o, LOGIN_HEAD, sizeof LOGIN_HEAD - 1) ||
        put_json(req->body, cap, &o, &st->username) ||
        put(req->body, cap, &o, LOGIN_MID, sizeof LOGIN_MID - 1) ||
        put_json(req->body, cap, &o, &st->password) ||
        put(req->body, cap, &o, LOGIN_TAIL, sizeof LOGIN_TAIL - 1)) {
        OPENSSL_cleanse(req->body, sizeof req->body);
        req->body_len = 0;
        return -1;
    }
    req->body_len = o;
    return 0;
}

/* ---- the JWT's exp claim ---- */

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Strict base64url without padding (RFC 7515 2): no '=', no whitespace, no leftover bits. */
static int b64url_decode(const char *p, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)p[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        return -1;
    *outlen = o;
    return 0;
}

/* A JSON number as whole seconds (a fraction is dropped). -1: negative, an exponent, overflow. */
static int json_seconds(const struct jval *v, uint64_t *out)
{
    uint64_t x = 0;
    size_t i = 0;
    if (v->n == 0 || v->p[0] == '-' || memchr(v->p, 'e', v->n) || memchr(v->p, 'E', v->n))
        return -1;
    for (; i < v->n && is_digit(v->p[i]); i++) {
        unsigned d = (unsigned)(v->p[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* When to log in again for a token expiring at exp_s (wall clock): skew before exp, or half the
 * remaining life when that is already inside the skew (a short-lived token must not turn into a
 * login loop). 0 (rely on 401) when exp is already past or absurdly far. */
static uint64_t refresh_at(uint64_t exp_s, uint64_t skew_ms, uint64_t now_ms, uint64_t now_s)
{
    if (exp_s <= now_s || exp_s - now_s > (UINT64_MAX - now_ms) / 1000)
        return 0;
    uint64_t life_ms = (exp_s - now_s) * 1000;
    return now_ms + (life_ms > skew_ms ? life_ms - skew_ms : life_ms / 2);
}

/* refresh_at_ms for the JWT (t, n); 0 when it carries no usable exp claim. */
static uint64_t jwt_refresh_at(const struct openpanel *st, const char *t, size_t n, uint64_t now_ms,
                               uint64_t now_s)
{
    static const char *const want[] = { "exp" };
    unsigned char payload[PG_TOKEN_MAX / 4 * 3 + 3];
    const char *e = t + n, *d1 = memchr(t, '.', n), *d2;
    struct jval exp;
    size_t pn;
    uint64_t exp_s;
    if (!d1 || !(d2 = memchr(d1 + 1, '.', (size_t)(e - d1 - 1))) ||
        memchr(d2 + 1, '.', (size_t)(e - d2 - 1)))
        return 0;
    if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload, sizeof payload, &pn) ||
        json_members((const char *)payload, pn, want, &exp, 1) || exp.type != J_NUMBER ||
        json_seconds(&exp, &exp_s))
        return 0;
    return refresh_at(exp_s, st->skew_ms, now_ms, now_s);
}

/* The panel's error text: `msg` (JWT layer), else `message` or `error` (the app). Returns the
 * index of the member found, -1 if none. */
static int panel_message(const struct pg_in_resp *resp, struct pg_err *err)
{
    static const char *const want[] = { "msg", "message", "error" };
    struct jval v[3];
    size_t len;
    if (json_members(resp->body, resp->body_len, want, v, 3))
        return -1;
    for (int i = 0; i < 3; i++) {
        if (v[i].type == J_STRING) {
            j_unescape(v[i].p, v[i].n, err->upstream_message, sizeof err->upstream_message, true,
                       &len);
            return i;
        }
    }
    return -1;
}

static int login_failed(const struct pg_in_resp *resp, struct pg_err *err, const char *msg)
{
    err->code = E_UPSTREAM_AUTH_FAILED;
    panel_message(resp, err);
    return fail(err, msg);
}

static int op_parse_login(const void *vst, const struct pg_in_resp *resp, struct pg_session *s,
                          uint64_t now_ms, uint64_t now_s, struct pg_err *err)
{
    static const char *const want[] = { "access_token" };
    const struct openpanel *st = vst;
    char tok[PG_TOKEN_MAX]; /* "Bearer <jwt>": s is not touched unless the login succeeded */
    struct jval v;
    size_t n = 0;
    if (resp->status != 200)
        return login_failed(resp, err, "openpanel refused the gateway's login");
    if (json_members(resp->body, resp->body_len, want, &v, 1) || v.type != J_STRING)
        return login_failed(resp, err, "openpanel's login answer has no access_token");
    memcpy(tok, BEARER, BEARER_LEN);
    bool too_long = j_unescape(v.p, v.n, tok + BEARER_LEN, sizeof tok - BEARER_LEN, false, &n);
    bool bad = n == 0;
    for (size_t i = 0; !too_long && i < n; i++)
        if (tok[BEARER_LEN + i] <= 0x20 || tok[BEARER_LEN + i] >= 0x7f)
            bad = true; /* it goes into a header value as is */
    if (too_long || bad) {
        OPENSSL_cleanse(tok, sizeof tok);
        err->code = E_UPSTREAM_AUTH_FAILED;
        return fail(err, too_long ? "openpanel's access_token is too long"
                                  : "openpanel's access_token is not a usable token");
    }
    s->refresh_at_ms = jwt_refresh_at(st, tok + BEARER_LEN, n, now_ms, now_s);
    memcpy(s->token, tok, BEARER_LEN + n + 1);
    s->token_len = BEARER_LEN + n;
    OPENSSL_cleanse(tok, sizeof tok);
    return 0;
}

/* ---- per request ---- */

static int op_sign(const void *vst, const struct pg_session *s, struct pg_out_req *req,
                   uint64_t now_s)
{
    (void)vst;
    (void)now_s;
    if (!s || s->token_len == 0 || req->nhdr >= PG_OUT_MAX_HEADERS)
        return -1;
    req->hdr[req->nhdr].name = "Authorization";
    req->hdr[req->nhdr++].value = s->token;
    return 0;
}

/* 401 always means the session is gone. 422 is what flask-jwt-extended answers for a malformed
 * or undecodable token ({"msg": ...}); a 422 in the app's own shape is a caller error and must
 * not trigger a login (a caller could otherwise make the gateway log in at will). */
static enum pg_verdict op_classify(const void *vst, const struct pg_in_resp *resp,
                                   struct pg_err *err)
{
    (void)vst;
    int which = panel_message(resp, err);
    if (resp->status == 401 || (resp->status == 422 && which == 0))
        return PG_VERDICT_RELOGIN;
    return PG_VERDICT_OK;
}

/* POST to the login path hands out a session: refused with or without its trailing '/'. The
 * path is the normalised one; OpenPanel (Flask) routes are case-sensitive. */
static bool op_reserved(const void *vst, const char *method, const char *path, size_t n)
{
    const struct openpanel *st = vst;
    if (!method || strcmp(method, "POST") || !st->path)
        return false;
    if (n < st->base_len || memcmp(path, st->path, st->base_len))
        return false;
    return n == st->base_len || (n == st->base_len + 1 && path[st->base_len] == '/');
}

/* ---- lifecycle ---- */

/* auth_path must already be in normalised form, or reserved() could be bypassed. */
static bool auth_path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > AUTH_PATH_MAX || p[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                  (c && strchr("-._~!$&'()*+,;=:@/", c));
        if (!ok)
            return false;
        if (c == '/' && i + 1 < n) {
            const char *seg = p + i + 1;
            size_t sn = strcspn(seg, "/");
            if (sn == 0 || (sn == 1 && seg[0] == '.') || (sn == 2 && !memcmp(seg, "..", 2)))
                return false;
        }
    }
    return true;
}

static int op_init(void *vst, struct pg_err *err)
{
    struct openpanel *st = vst;
    if (!st->username.p || !st->password.p)
        return fail(err, "auth: openpanel_jwt needs username and password");
    long un = json_escaped_len(&st->username), pn = json_escaped_len(&st->password);
    if (un < 0 || pn < 0)
        return fail(err, "auth: openpanel_jwt username and password must be UTF-8");
    if ((size_t)un + (size_t)pn + sizeof LOGIN_HEAD + sizeof LOGIN_MID + sizeof LOGIN_TAIL - 3 >
        sizeof((struct pg_login_req *)0)->body)
        return fail(err, "auth: openpanel_jwt username and password are too long");
    st->path = st->auth_path ? st->auth_path : DEFAULT_AUTH_PATH;
    if (!auth_path_ok(st->path))
        return fail(err, "auth: openpanel_jwt auth_path must be a normalised absolute path "
                         "(like /api/: no '//', '.', '..', '%', '?')");
    st->base_len = strlen(st->path);
    if (st->path[st->base_len - 1] == '/')
        st->base_len--;
    st->skew_ms = st->refresh_skew_ms ? st->refresh_skew_ms : DEFAULT_SKEW_MS;
    return 0;
}

static void op_deinit(void *vst)
{
    struct openpanel *st = vst;
    pg_secret_free(&st->username);
    pg_secret_free(&st->password);
    free(st->auth_path);
    st->auth_path = NULL;
    st->path = NULL;
}

const struct pg_auth_ops pg_auth_openpanel_jwt = {
    .type = "openpanel_jwt",
    .state_size = sizeof(struct openpanel),
    .keys = openpanel_keys,
    .init = op_init,
    .deinit = op_deinit,
    .build_login = op_build_login,
    .parse_login = op_parse_login,
    .sign = op_sign,
    .classify = op_classify,
    .reserved = op_reserved,
};
