/* panelica_hmac.c -- `panelica_hmac` auth (SPEC 1): every request carries X-API-Key, X-Timestamp
 * and X-Signature, the lowercase hex HMAC-SHA256 (keyed with api_secret) of a string-to-sign
 * built from a template parsed once at init. No login; a refused signature is re-signed. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "../common.h"
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
        return pg_plug_fail(err, "auth: panelica_hmac string_to_sign is empty");
    if (!(st->parts = calloc(max, sizeof *st->parts)))
        return pg_plug_fail(err, "auth: out of memory");
    while (*t) {
        size_t lit = strcspn(t, "{}");
        if (lit) {
            st->parts[n++] = (struct part){ P_LITERAL, t, lit };
            t += lit;
            continue;
        }
        if (*t == '}')
            return pg_plug_fail(err, "auth: panelica_hmac string_to_sign has a '}' without '{'");
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
    req->made_secret = sig;
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
    (void)vst;
    json_t *root = pg_plug_json_object(resp->body, resp->body_len);
    const json_t *code = json_object_get(root, "code");
    pg_plug_json_code(err->upstream_code, sizeof err->upstream_code, code);
    pg_plug_json_text(err->upstream_message, sizeof err->upstream_message,
                      json_object_get(root, "error"));
    const char *c = json_is_string(code) ? json_string_value(code) : "";
    size_t cn = json_is_string(code) ? json_string_length(code) : 0;
    enum pg_verdict v = PG_VERDICT_OK;
    if (resp->status == 401 || resp->status == 403) {
        if (mentions(c, cn, "SIGNATURE") || mentions(c, cn, "TIMESTAMP"))
            v = PG_VERDICT_RESIGN;
        else if (mentions(c, cn, "KEY") || resp->status == 401)
            v = PG_VERDICT_FAIL;
    }
    json_decref(root);
    return v;
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
        return pg_plug_fail(err, "auth: panelica_hmac needs api_key and api_secret");
    if (!pg_plug_visible_ascii(st->api_key.p, st->api_key.n))
        return pg_plug_fail(err,
                            "auth: panelica_hmac api_key must be printable ASCII without spaces");
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
        return pg_plug_fail(err, "auth: panelica_hmac cannot set up HMAC-SHA256 (OpenSSL)");
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

/* The key pair; each request's signature is named by sign (made_secret). */
static size_t pc_secrets(const void *vst, const struct pg_session *s, struct pg_span *out,
                         size_t cap)
{
    const struct panelica *st = vst;
    size_t i = 0;
    (void)s;
    pg_plug_span(out, cap, &i, st->api_key.p, st->api_key.n);
    pg_plug_span(out, cap, &i, st->api_secret.p, st->api_secret.n);
    return i;
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
    .secrets = pc_secrets,
};
