/* fuzz_adapters.c -- libFuzzer target for what the auth adapters (plugins/) read from a panel or
 * a caller, through their ops tables, with states built by the config loader as the gateway
 * builds them. The first byte picks the parser:
 *   0  navixy_session parse_login   bytes 1-2 status (big-endian, mod 1000), byte 3 bit 0 the
 *                                   hash_in: query upstream; the rest the body
 *   1  openpanel_jwt parse_login    bytes 1-2 status; the rest the body
 *   2  the JWT exp claim            the rest is the payload JSON, sent as the access_token
 *                                   "<header>.<base64url(payload)>.<sig>" in a 200 answer
 *   3  navirec_token rewrite_header byte 1 the upstream url and public base, byte 2 the output
 *                                   capacity and header name; the rest the value
 *   4  classify                     byte 1 the adapter, bytes 2-3 status; the rest the body
 *   5  reserved                     byte 1 the adapter and method; the rest the path
 *
 * Checked: parse_login either fills a session (a non-empty NUL-terminated token a header can
 * carry as is, which sign() then accepts) or fails with an auth-failed code and a message and
 * leaves the session untouched; a JWT's refresh time is 0 or after now and before its exp; a
 * rewritten Link fits the capacity, is NUL-terminated, carries the public base and has no CR,
 * LF or NUL when the value had none; classify's verdict is one of the four and the panel's code
 * and text are NUL-terminated UTF-8. Built with replay.c it is a plain program over the files
 * named on its command line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway/conf.h"
#include "plugins/common.h"
#include "plugins/plugin.h"
#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_MS 123456789ull
#define NOW_S 1700000000ull

static const char yaml[] =
    "public_url: http://gw.test:8080\n"
    "upstreams:\n"
    "  - {name: navixy, url: \"https://api.navixy.test/v2\",\n"
    "     auth: {type: navixy_session, login: demo, password: pw}}\n"
    "  - {name: navixyq, url: \"http://127.0.0.1:9/v2\",\n"
    "     auth: {type: navixy_session, login: demo, password: pw, hash_in: query,\n"
    "            max_session_age: 1h, auth_path: /user/auth}}\n"
    "  - {name: openpanel, url: \"https://op.test:2087\",\n"
    "     auth: {type: openpanel_jwt, username: admin, password: pw, refresh_skew: 60s}}\n"
    "  - {name: panelica, url: \"https://pc.test\",\n"
    "     auth: {type: panelica_hmac, api_key: k, api_secret: s}}\n"
    "  - {name: navirec, url: \"https://api.navirec.test/\",\n"
    "     auth: {type: navirec_token, token: t0k, api_version: \"1.45.0\"}}\n"
    "  - {name: static, url: \"http://127.0.0.1:9\", auth: {type: static, bearer: b}}\n";

enum { U_NAVIXY, U_NAVIXYQ, U_OPENPANEL, U_PANELICA, U_NAVIREC, U_STATIC, U_N };

static struct pg_conf *conf;

static const struct pg_upstream *up(int i)
{
    if (!conf) {
        char err[512];
        conf = pg_conf_load_string("fuzz_adapters.yaml", yaml, sizeof yaml - 1, err, sizeof err);
        if (!conf)
            fprintf(stderr, "%s\n", err);
        CHECK(conf && conf->nupstreams == U_N);
    }
    return &conf->upstreams[i];
}

static bool no_ctl(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return false;
    return true;
}

static void check_err_strings(const struct pg_err *err)
{
    CHECK(memchr(err->msg, '\0', sizeof err->msg));
    CHECK(memchr(err->upstream_code, '\0', sizeof err->upstream_code));
    CHECK(memchr(err->upstream_message, '\0', sizeof err->upstream_message));
    CHECK(pg_plug_utf8_ok(err->upstream_code, strlen(err->upstream_code)));
    CHECK(pg_plug_utf8_ok(err->upstream_message, strlen(err->upstream_message)));
}

/* parse_login of upstream u on (status, body); returns the session's refresh_at_ms, or
 * UINT64_MAX when the login failed. */
static uint64_t login(int u, int status, const char *body, size_t n)
{
    const struct pg_upstream *p = up(u);
    struct pg_in_resp resp = { status, body, n, "application/json", 16 };
    struct pg_session *s = malloc(sizeof *s), *before = malloc(sizeof *s);
    CHECK(s && before);
    memset(s, 0xa5, sizeof *s);
    memcpy(before, s, sizeof *s);
    struct pg_err err;
    memset(&err, 0, sizeof err);
    int rc = p->auth->parse_login(p->auth_state, &resp, s, NOW_MS, NOW_S, &err);
    uint64_t at = UINT64_MAX;
    CHECK(rc == 0 || rc == -1);
    if (rc) {
        CHECK(memcmp(s, before, sizeof *s) == 0); /* a failed login leaves no session */
        CHECK(err.code == PG_PLUG_E_UPSTREAM_AUTH_FAILED && err.msg[0]);
        check_err_strings(&err);
    } else {
        CHECK(s->token_len > 0 && s->token_len < PG_TOKEN_MAX);
        CHECK(s->token[s->token_len] == '\0' && strlen(s->token) == s->token_len);
        CHECK(no_ctl(s->token, s->token_len));
        at = s->refresh_at_ms;
        struct pg_out_req req;
        memset(&req, 0, sizeof req);
        req.method = "GET";
        req.target = "/x";
        req.target_len = 2;
        CHECK(p->auth->sign(p->auth_state, s, &req, NOW_S) == 0);
        for (size_t i = 0; i < req.nhdr; i++)
            CHECK(no_ctl(req.hdr[i].value, strlen(req.hdr[i].value)));
        if (req.add_query_value)
            CHECK(strcmp(req.add_query_value, s->token) == 0);
        CHECK(req.nhdr > 0 || req.add_query_value);
    }
    free(s);
    free(before);
    return at;
}

static int status_of(const uint8_t *d)
{
    return ((d[0] << 8) | d[1]) % 1000;
}

static void fuzz_jwt(const uint8_t *data, size_t size)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    static const char head[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.";
    char *tok = malloc(sizeof head + size / 3 * 4 + 8);
    CHECK(tok);
    size_t o = sizeof head - 1;
    memcpy(tok, head, o);
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < size)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < size)
            v |= data[i + 2];
        size_t k = size - i >= 3 ? 4 : size - i + 1;
        for (size_t j = 0; j < k; j++)
            tok[o++] = b64[(v >> (18 - 6 * j)) & 63];
    }
    memcpy(tok + o, ".c2ln", 5);
    o += 5;
    json_t *body = json_pack("{s:s%}", "access_token", tok, o);
    free(tok);
    CHECK(body);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    CHECK(text);
    uint64_t at = login(U_OPENPANEL, 200, text, strlen(text));
    free(text);
    /* the token is visible ASCII: only one too long for a session is refused */
    CHECK(at != UINT64_MAX || size / 3 * 4 > PG_TOKEN_MAX - 64);
    if (at == UINT64_MAX || at == 0)
        return;
    CHECK(at > NOW_MS);
    json_t *payload = json_loadb((const char *)data, size, 0, NULL);
    json_t *exp = json_object_get(payload, "exp");
    if (json_is_integer(exp)) {
        json_int_t e = json_integer_value(exp);
        CHECK(e > (json_int_t)NOW_S && at <= NOW_MS + ((uint64_t)e - NOW_S) * 1000);
    }
    json_decref(payload);
}

static void fuzz_link(const uint8_t *data, size_t size)
{
    static const char *const urls[] = { "https://api.navirec.test", "https://api.navirec.test/",
                                        "http://127.0.0.1:8081/api/v1", "HTTP://H.test/a/b/",
                                        "https://h" };
    static const char *const bases[] = { "http://gw.test:8080/navirec", "https://gw/x/",
                                         "http://gw.test:8080/a-much-longer-public-prefix/nr" };
    static const char *const names[] = { "Link", "link", "LINK", "Location" };
    static const size_t caps[] = { 1, 16, 64, 256, 1024, 8192 };
    if (size < 2)
        return;
    const char *url = urls[data[0] % 5];
    const char *base = bases[(data[0] / 5) % 3];
    const char *name = names[data[1] & 3];
    size_t cap = caps[(data[1] >> 2) % 6];
    const char *value = (const char *)data + 2;
    size_t vn = size - 2;
    const struct pg_upstream *p = up(U_NAVIREC);
    char *out = malloc(cap); /* exactly cap: ASan sees a write past it */
    CHECK(out);
    size_t outlen = (size_t)-1;
    int r = p->auth->rewrite_header(p->auth_state, name, strlen(name), value, vn, url, base, out,
                                    cap, &outlen);
    CHECK(r == 0 || r == 1);
    if (r == 1) {
        CHECK(strcmp(name, "Location") != 0);
        CHECK(outlen < cap && out[outlen] == '\0');
        CHECK(memmem(out, outlen, base, strlen(base) - (base[strlen(base) - 1] == '/')));
        if (no_ctl(value, vn))
            CHECK(no_ctl(out, outlen));
    }
    free(out);
}

static void fuzz_classify(const uint8_t *data, size_t size)
{
    if (size < 3)
        return;
    const struct pg_upstream *p = up(data[0] % U_N);
    if (!p->auth->classify)
        return;
    struct pg_in_resp resp = { status_of(data + 1), (const char *)data + 3, size - 3,
                               "application/json", 16 };
    struct pg_err err;
    memset(&err, 0, sizeof err);
    enum pg_verdict v = p->auth->classify(p->auth_state, &resp, &err);
    CHECK(v == PG_VERDICT_OK || v == PG_VERDICT_RELOGIN || v == PG_VERDICT_RESIGN ||
          v == PG_VERDICT_FAIL);
    if (v == PG_VERDICT_FAIL || v == PG_VERDICT_RELOGIN)
        CHECK(err.code == PG_PLUG_E_UPSTREAM_AUTH_FAILED || err.code == 0);
    check_err_strings(&err);
}

static void fuzz_reserved(const uint8_t *data, size_t size)
{
    static const char *const methods[] = { "GET", "POST", "PUT", "DELETE" };
    if (size < 1)
        return;
    const struct pg_upstream *p = up(data[0] % U_N);
    if (!p->auth->reserved)
        return;
    /* the path as the core hands it: NUL-terminated, and (p, n) bounded */
    char *path = malloc(size);
    CHECK(path);
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    bool r = p->auth->reserved(p->auth_state, methods[(data[0] / U_N) % 4], path, size - 1);
    (void)r;
    free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 70000)
        return 0;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (data[0] % 6) {
    case 0:
        if (n >= 3)
            login((d[2] & 1) ? U_NAVIXYQ : U_NAVIXY, status_of(d), (const char *)d + 3, n - 3);
        break;
    case 1:
        if (n >= 2)
            login(U_OPENPANEL, status_of(d), (const char *)d + 2, n - 2);
        break;
    case 2:
        fuzz_jwt(d, n);
        break;
    case 3:
        fuzz_link(d, n);
        break;
    case 4:
        fuzz_classify(d, n);
        break;
    default:
        fuzz_reserved(d, n);
        break;
    }
    return 0;
}
