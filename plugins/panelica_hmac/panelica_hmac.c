/* panelica_hmac.c -- `panelica_hmac` auth (SPEC 1): every request carries X-API-Key, X-Timestamp
 * and X-Signature, the lowercase hex HMAC-SHA256 (keyed with api_secret) of a string-to-sign
 * built from a template parsed once at init. No login; a refused signature is re-signed. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "../plugin.h"

#define DEFAULT_TEMPLATE "{timestamp}{method}{path}{body}"

enum part_kind { P_LITERAL, P_TIMESTAMP, P_METHOD, P_PATH, P_QUERY, P_BODY, P_BODY_SHA256 };

/* One piece of the string-to-sign; a literal points into the template. */
struct part {
    enum part_kind kind;
    const char *p;
    size_t n;
};

struct panelica {
    /* from config */
    struct pg_secret api_key;
    struct pg_secret api_secret;
    char *string_to_sign; /* NULL: DEFAULT_TEMPLATE */
    /* built by init */
    struct part *parts;
    size_t nparts;
    bool wants_sha256; /* the template has {body_sha256} */
    EVP_MAC_CTX *hmac; /* keyed with api_secret; sign() works on a copy (threads share it) */
    EVP_MD *sha256;
};

static const struct pg_conf_key panelica_keys[] = {
    { "api_key", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct panelica, api_key), NULL, NULL },
    { "api_secret", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct panelica, api_secret), NULL,
      NULL },
    { "string_to_sign", PG_CONF_STRING, 0, offsetof(struct panelica, string_to_sign), NULL, NULL },
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

/* ---- the string-to-sign template ---- */

static const struct {
    const char *name;
    enum part_kind kind;
} placeholders[] = {
    { "timestamp", P_TIMESTAMP }, { "method", P_METHOD }, { "path", P_PATH },
    { "query", P_QUERY },         { "body", P_BODY },     { "body_sha256", P_BODY_SHA256 },
};

/* Split t into literal and placeholder parts (st->parts, allocated). 0, or -1 with err->msg. */
static int parse_template(struct panelica *st, const char *t, struct pg_err *err)
{
    size_t max = 1, n = 0;
    for (const char *c = t; *c; c++)
        max += *c == '{' || *c == '}'; /* each brace can end at most one part */
    if (!*t)
        return fail(err, "auth: panelica_hmac string_to_sign is empty");
    if (!(st->parts = calloc(max, sizeof *st->parts)))
        return fail(err, "auth: out of memory");
    while (*t) {
        size_t lit = strcspn(t, "{}");
        if (lit) {
            st->parts[n++] = (struct part){ P_LITERAL, t, lit };
            t += lit;
            continue;
        }
        if (*t == '}')
            return fail(err, "auth: panelica_hmac string_to_sign has a '}' without '{'");
        const char *close = strchr(t, '}');
        const char *open = strchr(t + 1, '{');
        if (!close || (open && open < close)) {
            snprintf(err->msg, sizeof err->msg,
                     "auth: panelica_hmac string_to_sign has an unclosed '{' at '%.32s'", t);
            return -1;
        }
        size_t nn = (size_t)(close - t - 1), i = 0;
        while (i < sizeof placeholders / sizeof placeholders[0] &&
               (strlen(placeholders[i].name) != nn || memcmp(placeholders[i].name, t + 1, nn)))
            i++;
        if (i == sizeof placeholders / sizeof placeholders[0]) {
            snprintf(err->msg, sizeof err->msg,
                     "auth: panelica_hmac string_to_sign has an unknown placeholder '{%.*s}' "
                     "(known: timestamp, method, path, query, body, body_sha256)",
                     nn > 32 ? 32 : (int)nn, t + 1);
            return -1;
        }
        st->parts[n++] = (struct part){ placeholders[i].kind, NULL, 0 };
        st->wants_sha256 |= placeholders[i].kind == P_BODY_SHA256;
        t = close + 1;
    }
    st->nparts = n;
    return 0;
}

/* ---- per request ---- */

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The body is fed to the MAC in place: it may be megabytes and is never copied. */
static int pc_sign(const void *vst, const struct pg_session *s, struct pg_out_req *req,
                   uint64_t now_s)
{
    const struct panelica *st = vst;
    const char *body = req->body ? req->body : "";
    char sha_hex[2 * 32 + 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    size_t maclen = 0;
    (void)s;
    if (!st->hmac || !req->method || !req->target || req->scratch_used > sizeof req->scratch ||
        req->nhdr > PG_OUT_MAX_HEADERS || PG_OUT_MAX_HEADERS - req->nhdr < 3)
        return -1;
    char *ts = req->scratch + req->scratch_used;
    size_t room = sizeof req->scratch - req->scratch_used;
    const char *q = memchr(req->target, '?', req->target_len);
    const char *end = req->target + req->target_len;
    int tn = snprintf(ts, room, "%llu", (unsigned long long)now_s);
    if (tn < 0 || (size_t)tn >= room || room - (size_t)tn - 1 < sizeof sha_hex)
        return -1;
    char *sig = ts + tn + 1;
    if (st->wants_sha256) {
        if (!EVP_Digest(body, req->body_len, md, &mdlen, st->sha256, NULL) || mdlen != 32)
            return -1;
        hex(md, mdlen, sha_hex);
    }
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(st->hmac);
    if (!c)
        return -1;
    int ok = 1;
    for (size_t i = 0; ok && i < st->nparts; i++) {
        const struct part *pt = &st->parts[i];
        const char *p = pt->p;
        size_t n = pt->n;
        switch (pt->kind) {
        case P_LITERAL:
            break;
        case P_TIMESTAMP:
            p = ts;
            n = (size_t)tn;
            break;
        case P_METHOD:
            p = req->method;
            n = strlen(req->method);
            break;
        case P_PATH:
            p = req->target;
            n = req->target_len;
            break;
        case P_QUERY:
            p = q ? q + 1 : "";
            n = q ? (size_t)(end - q - 1) : 0;
            break;
        case P_BODY:
            p = body;
            n = req->body_len;
            break;
        case P_BODY_SHA256:
            p = sha_hex;
            n = 2 * 32;
            break;
        }
        if (n)
            ok = EVP_MAC_update(c, (const unsigned char *)p, n);
    }
    ok = ok && EVP_MAC_final(c, md, &maclen, sizeof md) && maclen == 32;
    EVP_MAC_CTX_free(c);
    if (!ok)
        return -1;
    hex(md, maclen, sig);
    req->scratch_used += (size_t)tn + 1 + sizeof sha_hex;
    req->hdr[req->nhdr].name = "X-API-Key";
    req->hdr[req->nhdr++].value = st->api_key.p;
    req->hdr[req->nhdr].name = "X-Timestamp";
    req->hdr[req->nhdr++].value = ts;
    req->hdr[req->nhdr].name = "X-Signature";
    req->hdr[req->nhdr++].value = sig;
    return 0;
}

/* ASCII case-insensitive: does (p, n) contain the upper-case word w? */
static bool mentions(const char *p, size_t n, const char *w)
{
    size_t wn = strlen(w);
    for (size_t i = 0; i + wn <= n; i++) {
        size_t j = 0;
        while (j < wn && (p[i + j] == w[j] || (p[i + j] >= 'a' && p[i + j] - 32 == w[j])))
            j++;
        if (j == wn)
            return true;
    }
    return false;
}

/* Panelica errors are {"error", "code", "details"}. A signature or timestamp refusal is cured by
 * signing afresh; a refused key, or any other 401, is the gateway's credential failing. Other
 * 403s (scopes, IP allow-lists) are the caller's business. */
static enum pg_verdict pc_classify(const void *vst, const struct pg_in_resp *resp,
                                   struct pg_err *err)
{
    static const char *const want[] = { "code", "error" };
    struct jval v[2];
    size_t len;
    (void)vst;
    json_members(resp->body, resp->body_len, want, v, 2);
    const struct jval *code = &v[0];
    if (code->type == J_STRING)
        j_unescape(code->p, code->n, err->upstream_code, sizeof err->upstream_code, true, &len);
    else if (code->type == J_NUMBER && code->n < sizeof err->upstream_code)
        snprintf(err->upstream_code, sizeof err->upstream_code, "%.*s", (int)code->n, code->p);
    if (v[1].type == J_STRING)
        j_unescape(v[1].p, v[1].n, err->upstream_message, sizeof err->upstream_message, true, &len);
    if (resp->status != 401 && resp->status != 403)
        return PG_VERDICT_OK;
    bool has_code = code->type == J_STRING;
    if (has_code &&
        (mentions(code->p, code->n, "SIGNATURE") || mentions(code->p, code->n, "TIMESTAMP")))
        return PG_VERDICT_RESIGN;
    if ((has_code && mentions(code->p, code->n, "KEY")) || resp->status == 401)
        return PG_VERDICT_FAIL;
    return PG_VERDICT_OK;
}

/* The API-key self-management routes (/v1/api-keys...) create keys, regenerate the gateway's own
 * secret or revoke it: anything but reading them is refused, like a login or logout path. */
static bool pc_reserved(const void *vst, const char *method, const char *path, size_t n)
{
    const char *e = path + n;
    (void)vst;
    if (!method || !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "OPTIONS"))
        return false;
    while (path < e) {
        const char *seg = path + (*path == '/');
        const char *slash = memchr(seg, '/', (size_t)(e - seg));
        size_t sn = (size_t)((slash ? slash : e) - seg);
        if (sn == 8 && mentions(seg, sn, "API-KEYS"))
            return true;
        path = seg + sn;
    }
    return false;
}

/* ---- lifecycle ---- */

static int pc_init(void *vst, struct pg_err *err)
{
    struct panelica *st = vst;
    if (!st->api_key.p || !st->api_secret.p)
        return fail(err, "auth: panelica_hmac needs api_key and api_secret");
    for (size_t i = 0; i < st->api_key.n; i++)
        if ((unsigned char)st->api_key.p[i] <= 0x20 || st->api_key.p[i] == 0x7f)
            return fail(err, "auth: panelica_hmac api_key contains spaces or control characters");
    if (parse_template(st, st->string_to_sign ? st->string_to_sign : DEFAULT_TEMPLATE, err))
        return -1;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    st->hmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (!st->hmac ||
        !EVP_MAC_init(st->hmac, (const unsigned char *)st->api_secret.p, st->api_secret.n,
                      params) ||
        !(st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)))
        return fail(err, "auth: panelica_hmac cannot set up HMAC-SHA256 (OpenSSL)");
    return 0;
}

static void pc_deinit(void *vst)
{
    struct panelica *st = vst;
    pg_secret_free(&st->api_key);
    pg_secret_free(&st->api_secret);
    free(st->string_to_sign);
    st->string_to_sign = NULL;
    free(st->parts);
    st->parts = NULL;
    st->nparts = 0;
    EVP_MAC_CTX_free(st->hmac); /* wipes the keyed state */
    st->hmac = NULL;
    EVP_MD_free(st->sha256);
    st->sha256 = NULL;
}

const struct pg_auth_ops pg_auth_panelica_hmac = {
    .type = "panelica_hmac",
    .state_size = sizeof(struct panelica),
    .keys = panelica_keys,
    .init = pc_init,
    .deinit = pc_deinit,
    .sign = pc_sign,
    .classify = pc_classify,
    .reserved = pc_reserved,
};
