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

#include "../common.h"
#include "../plugin.h"

#define NVX_HASH_LEN 32
#define NVX_DEFAULT_AUTH_PATH "/user/auth"
#define NVX_DEFAULT_MAX_AGE_MS (24ull * 3600 * 1000)

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

static int navixy_init(void *vst, struct pg_err *err)
{
    struct navixy *st = vst;
    if (!st->login.p || !st->password.p)
        return pg_plug_fail(err, "auth: navixy_session needs login and password");
    if (!pg_plug_utf8_ok(st->login.p, st->login.n) ||
        !pg_plug_utf8_ok(st->password.p, st->password.n))
        return pg_plug_fail(err, "auth: navixy_session login and password must be UTF-8 text");
    if (st->hash_in != NVX_HASH_IN_HEADER && st->hash_in != NVX_HASH_IN_QUERY)
        return pg_plug_fail(err, "auth: navixy_session hash_in must be header or query");
    if (st->auth_path && (!strcmp(st->auth_path, "/") || !pg_plug_path_ok(st->auth_path)))
        return pg_plug_fail(err,
                            "auth: navixy_session auth_path must be a plain path starting with '/' "
                            "(no '//', '.', '..', '%' or query)");
    st->path = st->auth_path ? st->auth_path : NVX_DEFAULT_AUTH_PATH;
    if (!st->max_session_age_ms)
        st->max_session_age_ms = NVX_DEFAULT_MAX_AGE_MS;
    /* fail now rather than at the first login */
    struct pg_login_req probe;
    int rc = pg_plug_login_json(&probe, st->path, "login", &st->login, "password", &st->password);
    OPENSSL_cleanse(&probe, sizeof probe);
    if (rc)
        return pg_plug_fail(err, "auth: navixy_session login and password are too long");
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
    return pg_plug_login_json(req, st->path, "login", &st->login, "password", &st->password);
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
    if (json_is_integer(c))
        *code = json_integer_value(c);
    pg_plug_json_code(err->upstream_code, sizeof err->upstream_code, c);
    pg_plug_json_text(err->upstream_message, sizeof err->upstream_message, d);
    return true;
}

static int navixy_parse_login(const void *vst, const struct pg_in_resp *resp, struct pg_session *s,
                              uint64_t now_ms, uint64_t now_s, struct pg_err *err)
{
    const struct navixy *st = vst;
    (void)now_s;
    json_t *root = pg_plug_json_object(resp->body, resp->body_len);
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
    err->code = PG_PLUG_E_UPSTREAM_AUTH_FAILED;
    err->upstream_code[0] = '\0';
    err->upstream_message[0] = '\0';
    if (root && navixy_error(root, &code, err)) {
        pg_plug_fail(err, "Navixy rejected the gateway's credentials");
    } else if (resp->status != 200) {
        /* not Navixy's answer (a proxy's error page?): its text is not passed on, as a login
         * answer might echo what was sent */
        snprintf(err->msg, sizeof err->msg, "Navixy login failed with HTTP status %d",
                 resp->status);
    } else {
        pg_plug_fail(err, "Navixy answered the login with no valid session hash");
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

/* The password and the session hash; the login is a user name, not a secret to hide. */
static size_t navixy_secrets(const void *vst, const struct pg_session *s, struct pg_span *out,
                             size_t cap)
{
    const struct navixy *st = vst;
    size_t i = 0;
    pg_plug_span(out, cap, &i, st->password.p, st->password.n);
    if (s)
        pg_plug_span(out, cap, &i, s->token, s->token_len);
    return i;
}

static enum pg_verdict navixy_classify(const void *vst, const struct pg_in_resp *resp,
                                       struct pg_err *err)
{
    (void)vst;
    json_t *root = pg_plug_json_object(resp->body, resp->body_len);
    json_int_t code;
    enum pg_verdict v = PG_VERDICT_OK;
    if (root && navixy_error(root, &code, err) && (code == 3 || code == 4)) {
        /* wrong user hash, or session ended: whatever the HTTP status */
        err->code = PG_PLUG_E_UPSTREAM_AUTH_FAILED;
        pg_plug_fail(err, "Navixy no longer accepts the gateway's session");
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
    .secrets = navixy_secrets,
    .cred_param = "hash",
};
