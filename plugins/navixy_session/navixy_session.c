/* navixy_session.c -- `navixy_session` auth (SPEC 1): log in with login+password, keep the 32-hex
 * session hash, send it as `Authorization: NVX <hash>` or as the `hash` query parameter, and log
 * in again when Navixy answers status code 3 or 4 (wrong hash, session ended). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "../plugin.h"

/* PG_E_UPSTREAM_AUTH_FAILED in gateway/envelope.h (enum pg_err_code), which plugins may not
 * include: BAD_REQUEST=0 ... RATE_LIMITED=8, UPSTREAM_AUTH_FAILED=9. */
#define NVX_E_UPSTREAM_AUTH_FAILED 9

#define NVX_HASH_LEN 32
#define NVX_DEFAULT_AUTH_PATH "/user/auth"
#define NVX_DEFAULT_MAX_AGE_MS (24ull * 3600 * 1000)
/* Navixy error bodies are a few hundred bytes; a larger answer is not one, and is not parsed
 * (classify runs on the hot path; this bounds what jansson allocates for it). */
#define NVX_CLASSIFY_MAX_BODY (64u * 1024)

enum nvx_hash_in { NVX_HASH_IN_HEADER = 0, NVX_HASH_IN_QUERY = 1 };

struct navixy {
    /* from config */
    struct pg_secret login;
    struct pg_secret password;
    char *auth_path; /* NULL: default */
    int hash_in;     /* enum nvx_hash_in */
    uint64_t max_session_age_ms;
    /* set by init */
    const char *path; /* auth_path or the default; borrowed */
};

static const struct pg_conf_key navixy_keys[] = {
    { "login", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct navixy, login), NULL, NULL },
    { "password", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct navixy, password), NULL, NULL },
    { "auth_path", PG_CONF_STRING, 0, offsetof(struct navixy, auth_path), NULL, NULL },
    { "hash_in", PG_CONF_ENUM, 0, offsetof(struct navixy, hash_in), "header|query", NULL },
    { "max_session_age", PG_CONF_DURATION, 0, offsetof(struct navixy, max_session_age_ms), NULL,
      NULL },
    { 0 },
};

/* Login and logout paths, as segments: refused as the end of any request path (see reserved). */
static const char *const reserved_paths[] = {
    "/user/auth",
    "/user/logout",
    "/account/auth",
    "/account/logout",
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

/* Copy (p, n) into dst[cap] NUL-terminated, cut at a UTF-8 character boundary if too long. */
static void copy_text(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_hash(const char *p, size_t n)
{
    if (n != NVX_HASH_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_hex(p[i]))
            return false;
    return true;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF): a JSON string may
 * carry nothing else, and the login body passes bytes >= 0x80 through unescaped. */
static bool utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* Append (p, n) at buf + *o if it fits in cap. */
static bool put(char *buf, size_t cap, size_t *o, const char *p, size_t n)
{
    if (cap - *o < n)
        return false;
    memcpy(buf + *o, p, n);
    *o += n;
    return true;
}

/* Append (p, n) as the inside of a JSON string: '"', '\' and controls escaped, UTF-8 kept. */
static bool put_json_str(char *buf, size_t cap, size_t *o, const char *p, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char e[6];
        size_t en = 2;
        e[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            e[1] = (char)c;
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            if (c >= 0x20) {
                e[0] = (char)c;
                en = 1;
            } else {
                memcpy(e + 1, "u00", 3);
                e[4] = hexd[c >> 4];
                e[5] = hexd[c & 15];
                en = 6;
            }
            break;
        }
        if (!put(buf, cap, o, e, en))
            return false;
    }
    return true;
}

/* The login body into buf[cap]; its length, or 0 when it does not fit. */
static size_t login_body(const struct navixy *st, char *buf, size_t cap)
{
    static const char a[] = "{\"login\":\"", b[] = "\",\"password\":\"", c[] = "\"}";
    size_t o = 0;
    if (!put(buf, cap, &o, a, sizeof a - 1) ||
        !put_json_str(buf, cap, &o, st->login.p, st->login.n) ||
        !put(buf, cap, &o, b, sizeof b - 1) ||
        !put_json_str(buf, cap, &o, st->password.p, st->password.n) ||
        !put(buf, cap, &o, c, sizeof c - 1)) {
        OPENSSL_cleanse(buf, o);
        return 0;
    }
    return o;
}

/* A path to compare with normalised request paths: '/' then segments of unreserved characters,
 * sub-delims, ':' or '@', no empty, "." or ".." segment, no percent-escape. */
static bool plain_path(const char *p)
{
    if (p[0] != '/' || !p[1])
        return false;
    const char *seg = p + 1;
    for (const char *q = p + 1;; q++) {
        if (*q == '/' || !*q) {
            size_t n = (size_t)(q - seg);
            if ((n == 0 && *q) || (n == 1 && seg[0] == '.') ||
                (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (!*q)
                return true;
            seg = q + 1;
            continue;
        }
        unsigned char c = (unsigned char)*q;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-._~!$&'()*+,;=:@", c)))
            return false;
    }
}

static int navixy_init(void *vst, struct pg_err *err)
{
    struct navixy *st = vst;
    if (!st->login.p || !st->password.p)
        return fail(err, "auth: navixy_session needs login and password");
    if (!utf8_ok((const unsigned char *)st->login.p, st->login.n) ||
        !utf8_ok((const unsigned char *)st->password.p, st->password.n))
        return fail(err, "auth: navixy_session login and password must be UTF-8 text");
    if (st->hash_in != NVX_HASH_IN_HEADER && st->hash_in != NVX_HASH_IN_QUERY)
        return fail(err, "auth: navixy_session hash_in must be header or query");
    if (st->auth_path && !plain_path(st->auth_path))
        return fail(err, "auth: navixy_session auth_path must be a plain path starting with '/' "
                         "(no '//', '.', '..', '%' or query)");
    st->path = st->auth_path ? st->auth_path : NVX_DEFAULT_AUTH_PATH;
    if (!st->max_session_age_ms)
        st->max_session_age_ms = NVX_DEFAULT_MAX_AGE_MS;
    /* fail now rather than at the first login */
    char body[sizeof((struct pg_login_req *)0)->body];
    size_t n = login_body(st, body, sizeof body);
    OPENSSL_cleanse(body, sizeof body);
    if (!n)
        return fail(err, "auth: navixy_session login and password are too long");
    return 0;
}

static void navixy_deinit(void *vst)
{
    struct navixy *st = vst;
    pg_secret_free(&st->login);
    pg_secret_free(&st->password);
    free(st->auth_path);
    st->auth_path = NULL;
    st->path = NULL;
}

static int navixy_build_login(const void *vst, struct pg_login_req *req)
{
    const struct navixy *st = vst;
    if (!st->path)
        return -1; /* init did not succeed */
    req->method = "POST";
    req->path = st->path;
    req->content_type = "application/json";
    req->body_len = login_body(st, req->body, sizeof req->body);
    return req->body_len ? 0 : -1;
}

/* If root is a Navixy error {"success": false, "status": {"code", "description"}}, fill
 * err->upstream_* from it, set *code to the integer code (-1 if not one) and return true. */
static bool navixy_error(const json_t *root, json_int_t *code, struct pg_err *err)
{
    const json_t *status = json_object_get(root, "status");
    if (!json_is_false(json_object_get(root, "success")) || !json_is_object(status))
        return false;
    const json_t *c = json_object_get(status, "code");
    const json_t *d = json_object_get(status, "description");
    *code = -1;
    err->upstream_code[0] = '\0';
    err->upstream_message[0] = '\0';
    if (json_is_integer(c)) {
        *code = json_integer_value(c);
        snprintf(err->upstream_code, sizeof err->upstream_code, "%" JSON_INTEGER_FORMAT, *code);
    } else if (json_is_string(c)) {
        copy_text(err->upstream_code, sizeof err->upstream_code, json_string_value(c),
                  strnlen(json_string_value(c), json_string_length(c)));
    }
    if (json_is_string(d))
        copy_text(err->upstream_message, sizeof err->upstream_message, json_string_value(d),
                  strnlen(json_string_value(d), json_string_length(d)));
    return true;
}

static int navixy_parse_login(const void *vst, const struct pg_in_resp *resp, struct pg_session *s,
                              uint64_t now_ms, uint64_t now_s, struct pg_err *err)
{
    const struct navixy *st = vst;
    (void)now_s;
    json_t *root =
        resp->body ? json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const json_t *h = json_object_get(root, "hash");
    if (resp->status == 200 && json_is_true(json_object_get(root, "success")) &&
        json_is_string(h) && is_hash(json_string_value(h), json_string_length(h))) {
        memcpy(s->token, json_string_value(h), NVX_HASH_LEN);
        s->token[NVX_HASH_LEN] = '\0';
        s->token_len = NVX_HASH_LEN;
        uint64_t age = st->max_session_age_ms ? st->max_session_age_ms : NVX_DEFAULT_MAX_AGE_MS;
        s->refresh_at_ms = now_ms > UINT64_MAX - age ? UINT64_MAX : now_ms + age;
        json_decref(root);
        return 0;
    }
    json_int_t code;
    err->code = NVX_E_UPSTREAM_AUTH_FAILED;
    err->upstream_code[0] = '\0';
    err->upstream_message[0] = '\0';
    if (json_is_object(root) && navixy_error(root, &code, err)) {
        fail(err, "Navixy rejected the gateway's credentials");
    } else if (resp->status != 200) {
        /* not Navixy's answer (a proxy's error page?): its text is not passed on, as a login
         * answer might echo what was sent */
        snprintf(err->msg, sizeof err->msg, "Navixy login failed with HTTP status %d",
                 resp->status);
    } else {
        fail(err, "Navixy answered the login with no valid session hash");
    }
    json_decref(root);
    return -1;
}

static int navixy_sign(const void *vst, const struct pg_session *s, struct pg_out_req *req,
                       uint64_t now_s)
{
    const struct navixy *st = vst;
    (void)now_s;
    /* the hash is checked again: it becomes a header value or a query parameter */
    if (!s || s->token_len != NVX_HASH_LEN || !is_hash(s->token, s->token_len) ||
        s->token[NVX_HASH_LEN] != '\0')
        return -1;
    if (st->hash_in == NVX_HASH_IN_QUERY) {
        req->add_query_name = "hash";
        req->add_query_value = s->token;
        return 0;
    }
    static const char prefix[] = "NVX ";
    size_t need = sizeof prefix - 1 + NVX_HASH_LEN + 1;
    if (req->nhdr >= PG_OUT_MAX_HEADERS || req->scratch_used > sizeof req->scratch ||
        sizeof req->scratch - req->scratch_used < need)
        return -1;
    char *v = req->scratch + req->scratch_used;
    memcpy(v, prefix, sizeof prefix - 1);
    memcpy(v + sizeof prefix - 1, s->token, NVX_HASH_LEN);
    v[need - 1] = '\0';
    req->scratch_used += need;
    req->hdr[req->nhdr].name = "Authorization";
    req->hdr[req->nhdr++].value = v;
    return 0;
}

static enum pg_verdict navixy_classify(const void *vst, const struct pg_in_resp *resp,
                                       struct pg_err *err)
{
    (void)vst;
    if (!resp->body || resp->body_len == 0 || resp->body_len > NVX_CLASSIFY_MAX_BODY)
        return PG_VERDICT_OK;
    /* cheap pre-check before building a tree: an error body is a JSON object */
    size_t i = 0;
    while (i < resp->body_len && resp->body[i] && strchr(" \t\r\n", resp->body[i]))
        i++;
    if (i == resp->body_len || resp->body[i] != '{')
        return PG_VERDICT_OK;
    json_t *root = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_int_t code;
    enum pg_verdict v = PG_VERDICT_OK;
    if (json_is_object(root) && navixy_error(root, &code, err) && (code == 3 || code == 4)) {
        /* wrong user hash, or session ended: whatever the HTTP status */
        err->code = NVX_E_UPSTREAM_AUTH_FAILED;
        fail(err, "Navixy no longer accepts the gateway's session");
        v = PG_VERDICT_RELOGIN;
    }
    json_decref(root);
    return v;
}

/* Does the segment (p, n) name `want` (n2 bytes)? Case-insensitive, and a ";param" suffix is
 * ignored, as some servlet containers do (/user/auth;x is /user/auth there). */
static bool seg_is(const char *p, size_t n, const char *want, size_t n2)
{
    const char *semi = memchr(p, ';', n);
    if (semi)
        n = (size_t)(semi - p);
    return n == n2 && strncasecmp(p, want, n) == 0;
}

/* Does the path end with the segments of `r` ("/a/b"), trailing '/'s aside? */
static bool ends_with_segments(const char *path, size_t n, const char *r)
{
    while (n > 0 && path[n - 1] == '/')
        n--;
    size_t rn = strlen(r);
    while (rn > 0 && r[rn - 1] == '/')
        rn--;
    while (rn > 0) {
        /* last segment of r: (r + rs, rn - rs) after its '/' */
        size_t rs = rn;
        while (rs > 0 && r[rs - 1] != '/')
            rs--;
        size_t ps = n;
        while (ps > 0 && path[ps - 1] != '/')
            ps--;
        if (rs == 0 || !seg_is(path + ps, n - ps, r + rs, rn - rs))
            return false;
        rn = rs - 1;
        if (ps == 0) /* the path has no more segments */
            return rn == 0;
        n = ps - 1;
    }
    return true;
}

/* The login and logout paths, any method. They are matched as the end of the path, so an
 * upstream url one level up (".../v2" with auth_path "/panel/account/auth") is covered too; no
 * documented Navixy call ends in these segments otherwise. */
static bool navixy_reserved(const void *vst, const char *method, const char *path, size_t path_len)
{
    const struct navixy *st = vst;
    (void)method;
    if (!path)
        return false;
    for (size_t i = 0; i < sizeof reserved_paths / sizeof reserved_paths[0]; i++)
        if (ends_with_segments(path, path_len, reserved_paths[i]))
            return true;
    return st->path && ends_with_segments(path, path_len, st->path);
}

const struct pg_auth_ops pg_auth_navixy_session = {
    .type = "navixy_session",
    .state_size = sizeof(struct navixy),
    .keys = navixy_keys,
    .init = navixy_init,
    .deinit = navixy_deinit,
    .build_login = navixy_build_login,
    .parse_login = navixy_parse_login,
    .sign = navixy_sign,
    .classify = navixy_classify,
    .reserved = navixy_reserved,
    .rewrite_header = NULL,
    .cred_param = "hash",
};
