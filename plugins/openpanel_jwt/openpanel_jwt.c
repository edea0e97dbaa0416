/* openpanel_jwt.c -- `openpanel_jwt` auth (SPEC 1): POST {"username","password"} to auth_path,
 * keep "Bearer <access_token>", refresh before the JWT's exp minus refresh_skew, log in again on
 * 401 (or a JWT-layer 422). No I/O; sign() does not allocate. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "../common.h"
#include "../plugin.h"

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

static int op_build_login(const void *vst, struct pg_login_req *req)
{
    const struct openpanel *st = vst;
    return pg_plug_login_json(req, st->path, "username", &st->username, "password", &st->password);
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

/* A JSON number as whole seconds (a fraction is dropped). -1: not a number, negative, huge. */
static int json_seconds(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        *out = (uint64_t)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1e18)
        *out = (uint64_t)json_real_value(v);
    else
        return -1;
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
    unsigned char payload[PG_TOKEN_MAX / 4 * 3 + 3];
    const char *e = t + n, *d1 = memchr(t, '.', n), *d2;
    size_t pn;
    uint64_t exp_s;
    if (!d1 || !(d2 = memchr(d1 + 1, '.', (size_t)(e - d1 - 1))) ||
        memchr(d2 + 1, '.', (size_t)(e - d2 - 1)) ||
        b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload, sizeof payload, &pn))
        return 0;
    json_t *root = pg_plug_json_object((const char *)payload, pn);
    int rc = json_seconds(json_object_get(root, "exp"), &exp_s);
    json_decref(root);
    return rc ? 0 : refresh_at(exp_s, st->skew_ms, now_ms, now_s);
}

/* The panel's error text in root: `msg` (JWT layer), else `message` or `error` (the app).
 * Returns the index of the member found, -1 if none. */
static int panel_message(const json_t *root, struct pg_err *err)
{
    static const char *const names[] = { "msg", "message", "error" };
    for (int i = 0; i < 3; i++)
        if (pg_plug_json_text(err->upstream_message, sizeof err->upstream_message,
                              json_object_get(root, names[i])))
            return i;
    return -1;
}

static int login_failed(json_t *root, struct pg_err *err, const char *msg)
{
    err->code = PG_PLUG_E_UPSTREAM_AUTH_FAILED;
    panel_message(root, err);
    json_decref(root);
    return pg_plug_fail(err, msg);
}

static int op_parse_login(const void *vst, const struct pg_in_resp *resp, struct pg_session *s,
                          uint64_t now_ms, uint64_t now_s, struct pg_err *err)
{
    const struct openpanel *st = vst;
    json_t *root = pg_plug_json_object(resp->body, resp->body_len);
    const json_t *v = json_object_get(root, "access_token");
    if (resp->status != 200)
        return login_failed(root, err, "openpanel refused the gateway's login");
    if (!json_is_string(v))
        return login_failed(root, err, "openpanel's login answer has no access_token");
    const char *t = json_string_value(v);
    size_t n = json_string_length(v);
    /* "Bearer <jwt>" goes into a header value as is; s is not touched unless this succeeds */
    if (n >= sizeof s->token - BEARER_LEN)
        return login_failed(root, err, "openpanel's access_token is too long");
    if (n == 0 || !pg_plug_visible_ascii(t, n))
        return login_failed(root, err, "openpanel's access_token is not a usable token");
    s->refresh_at_ms = jwt_refresh_at(st, t, n, now_ms, now_s);
    memcpy(s->token, BEARER, BEARER_LEN);
    memcpy(s->token + BEARER_LEN, t, n + 1);
    s->token_len = BEARER_LEN + n;
    json_decref(root);
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
    json_t *root = pg_plug_json_object(resp->body, resp->body_len);
    int which = panel_message(root, err);
    json_decref(root);
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

static int op_init(void *vst, struct pg_err *err)
{
    struct openpanel *st = vst;
    struct pg_login_req probe;
    if (!st->username.p || !st->password.p)
        return pg_plug_fail(err, "auth: openpanel_jwt needs username and password");
    if (!pg_plug_utf8_ok(st->username.p, st->username.n) ||
        !pg_plug_utf8_ok(st->password.p, st->password.n))
        return pg_plug_fail(err, "auth: openpanel_jwt username and password must be UTF-8");
    st->path = st->auth_path ? st->auth_path : DEFAULT_AUTH_PATH;
    int rc = op_build_login(st, &probe); /* fail now rather than at the first login */
    OPENSSL_cleanse(&probe, sizeof probe);
    if (rc)
        return pg_plug_fail(err, "auth: openpanel_jwt username and password are too long");
    /* auth_path must already be in normalised form, or reserved() could be bypassed */
    if (strlen(st->path) > AUTH_PATH_MAX || !pg_plug_path_ok(st->path))
        return pg_plug_fail(err, "auth: openpanel_jwt auth_path must be a normalised absolute "
                                 "path (like /api/: no '//', '.', '..', '%', '?')");
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

/* The password and the JWT (the session holds "Bearer <jwt>"); the username is not a secret. */
static size_t op_secrets(const void *vst, const struct pg_session *s, struct pg_span *out,
                         size_t cap)
{
    const struct openpanel *st = vst;
    size_t i = 0;
    pg_plug_span(out, cap, &i, st->password.p, st->password.n);
    if (s && s->token_len > BEARER_LEN && memcmp(s->token, BEARER, BEARER_LEN) == 0)
        pg_plug_span(out, cap, &i, s->token + BEARER_LEN, s->token_len - BEARER_LEN);
    return i;
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
    .secrets = op_secrets,
};
