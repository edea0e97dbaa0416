/* test_openpanel.c -- the openpanel_jwt adapter through its ops table (SPEC 1): the login body,
 * "Bearer <jwt>" sessions refreshed from the JWT's exp claim minus refresh_skew, login failures,
 * signing, 401/422 classification and the reserved login path. JWTs are built here (base64url of
 * a header and payload chosen by each test); one was built with base64(1) as a cross-check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugins/plugin.h"

#define OPS (&pg_auth_openpanel_jwt)
#define USER "stefan"
#define PASS "megamind728"
#define NOW_S 1700000000ull /* wall clock of every login below */
#define NOW_MS 5000000ull   /* monotonic clock at the same moment */
#define E_UPSTREAM_AUTH_FAILED 9

/* printf %s '{"alg":"HS256","typ":"JWT"}' | base64 -w0 | tr '+/' '-_' | tr -d = */
#define JWT_HEADER "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
/* JWT_HEADER . b64url('{"fresh":false,"sub":"stefan","exp":1700003600}') . "c2ln", by shell */
#define SHELL_JWT JWT_HEADER ".eyJmcmVzaCI6ZmFsc2UsInN1YiI6InN0ZWZhbiIsImV4cCI6MTcwMDAwMzYwMH0.c2ln"

/* ---- helpers: the state is opaque; config keys are stored through the key table ---- */

#define PT_OPS OPS
#include "plugin_test.h"

static void *state(void)
{
    void *st = pt_new();
    pt_set_secret(st, "username", USER);
    pt_set_secret(st, "password", PASS);
    return st;
}

static void *ready(void)
{
    void *st = state();
    pt_init_ok(st);
    return st;
}

/* init must refuse st with a message containing needle (and no credential); frees st. */
static void init_refused(void *st, const char *needle)
{
    struct pg_err err = { 0 };
    assert_int_equal(OPS->init(st, &err), -1);
    if (!strstr(err.msg, needle))
        fail_msg("init error '%s' does not mention '%s'", err.msg, needle);
    assert_null(strstr(err.msg, PASS));
    pt_drop(st);
}

static void b64url(const char *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *u = (const unsigned char *)p;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)u[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)u[i + 1] << 8;
        if (i + 2 < n)
            v |= u[i + 2];
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

/* header.payload.signature for a payload chosen by the test */
static const char *jwt(const char *payload)
{
    static char buf[1024];
    char enc[700];
    b64url(payload, strlen(payload), enc);
    int n = snprintf(buf, sizeof buf, "%s.%s.c2ln", JWT_HEADER, enc);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    return buf;
}

static const char *login_body(const char *token)
{
    static char buf[8192];
    int n = snprintf(buf, sizeof buf, "{\"access_token\": \"%s\"}", token);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    return buf;
}

/* A session pre-filled with a marker, to see that failures leave it alone. */
static void marked(struct pg_session *s)
{
    memset(s, 0, sizeof *s);
    memcpy(s->token, "Bearer old", 11);
    s->token_len = 10;
    s->refresh_at_ms = 777;
}

static int parse(void *st, int status, const char *body, struct pg_session *s, struct pg_err *e)
{
    struct pg_in_resp resp = { status, body, body ? strlen(body) : 0, "application/json", 16 };
    marked(s);
    memset(e, 0, sizeof *e);
    return OPS->parse_login(st, &resp, s, NOW_MS, NOW_S, e);
}

/* Log in with a token whose payload is `payload`; returns refresh_at_ms. */
static uint64_t refresh_for(void *st, const char *payload)
{
    struct pg_session s;
    struct pg_err err;
    const char *t = jwt(payload);
    assert_int_equal(parse(st, 200, login_body(t), &s, &err), 0);
    assert_int_equal(s.token_len, 7 + strlen(t));
    assert_memory_equal(s.token, "Bearer ", 7);
    assert_string_equal(s.token + 7, t);
    return s.refresh_at_ms;
}

/* Log in with the raw token `t` (no usable exp expected); the session must take it. */
static void no_exp(void *st, const char *t)
{
    struct pg_session s;
    struct pg_err err;
    if (parse(st, 200, login_body(t), &s, &err))
        fail_msg("login refused for %s: %s", t, err.msg);
    assert_string_equal(s.token + 7, t);
    if (s.refresh_at_ms != 0)
        fail_msg("token %s: refresh_at_ms %llu, want 0", t, (unsigned long long)s.refresh_at_ms);
}

/* ---- config and init ---- */

static void test_keys_table(void **unused)
{
    (void)unused;
    assert_string_equal(OPS->type, "openpanel_jwt");
    assert_true(pt_key("username", PG_CONF_SECRET)->flags & PG_REQUIRED);
    assert_true(pt_key("password", PG_CONF_SECRET)->flags & PG_REQUIRED);
    assert_false(pt_key("auth_path", PG_CONF_STRING)->flags & PG_REQUIRED);
    assert_false(pt_key("refresh_skew", PG_CONF_DURATION)->flags & PG_REQUIRED);
    assert_null(OPS->cred_param);
}

static void test_init_missing_password(void **unused)
{
    (void)unused;
    void *st = pt_new();
    pt_set_secret(st, "username", USER);
    init_refused(st, "password");
}

static void test_init_bad_auth_path(void **unused)
{
    (void)unused;
    static const char *const bad[] = { "",      "api/",     "/api//x", "/a/./b", "/a/../b",
                                       "/a/..", "/api?x=1", "/api%2F", "/a b",   "/api#x",
                                       "/./",   "/api\\x",  "//api",   "/api/\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *st = state();
        pt_set_string(st, "auth_path", bad[i]);
        init_refused(st, "auth_path");
    }
}

static void test_init_credentials_not_utf8(void **unused)
{
    (void)unused;
    static const char *const bad[] = { "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80",
                                       "\xf4\x90\x80\x80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *st = state();
        pt_set_secret(st, "password", bad[i]);
        init_refused(st, "UTF-8");
    }
    void *st = state();
    pt_set_secret(st, "username", "\x80");
    init_refused(st, "UTF-8");
}

/* The escaped body must fit pg_login_req.body: refused at init, not at the first login. */
static void test_init_login_body_too_long(void **unused)
{
    (void)unused;
    char pw[2100];
    /* {"username":"u","password":"<pw>"} is 30 + len(pw) bytes: 2018 fits exactly */
    memset(pw, 'x', sizeof pw);
    void *st = pt_new();
    pt_set_secret(st, "username", "u");
    pt_set_secret_n(st, "password", pw, 2018);
    pt_init_ok(st);
    struct pg_login_req req;
    memset(&req, 0, sizeof req);
    assert_int_equal(OPS->build_login(st, &req), 0);
    assert_int_equal(req.body_len, sizeof req.body);
    assert_memory_equal(req.body + sizeof req.body - 2, "\"}", 2);
    pt_drop(st);

    st = pt_new();
    pt_set_secret(st, "username", "u");
    pt_set_secret_n(st, "password", pw, 2019);
    init_refused(st, "too long");

    /* escaping counts: 1100 quotes need 2200 bytes */
    memset(pw, '"', 1100);
    st = state();
    pt_set_secret_n(st, "password", pw, 1100);
    init_refused(st, "too long");
}

/* deinit copes with a state that never reached init, and with an empty one. */
static void test_deinit_uninitialised(void **unused)
{
    (void)unused;
    void *st = state();
    pt_set_string(st, "auth_path", "/x/");
    pt_drop(st);
    st = pt_new();
    pt_drop(st);
}

/* ---- build_login ---- */

static void test_build_login_default(void **unused)
{
    (void)unused;
    void *st = ready();
    struct pg_login_req req;
    memset(&req, 0, sizeof req);
    assert_int_equal(OPS->build_login(st, &req), 0);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.path, "/api/");
    assert_string_equal(req.content_type, "application/json");
    static const char want[] = "{\"username\":\"stefan\",\"password\":\"megamind728\"}";
    assert_int_equal(req.body_len, sizeof want - 1);
    assert_memory_equal(req.body, want, sizeof want - 1);
    pt_drop(st);
}

static void test_build_login_escaping(void **unused)
{
    (void)unused;
    void *st = state();
    pt_set_secret(st, "username", "ad\"min");
    pt_set_secret(st, "password", "a\"b\\c\n\t\x01\x1f\x7f\xc3\xa9/\r\b\f");
    pt_set_string(st, "auth_path", "/v2/login");
    pt_init_ok(st);
    struct pg_login_req req;
    memset(&req, 0, sizeof req);
    assert_int_equal(OPS->build_login(st, &req), 0);
    assert_string_equal(req.path, "/v2/login");
    static const char want[] = "{\"username\":\"ad\\\"min\",\"password\":"
                               "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\x7f\xc3\xa9/\\r\\b\\f\"}";
    assert_int_equal(req.body_len, sizeof want - 1);
    assert_memory_equal(req.body, want, sizeof want - 1);
    pt_drop(st);
}

/* ---- parse_login: refresh_at_ms from exp ---- */

static void test_test_jwt_matches_shell(void **unused)
{
    (void)unused;
    assert_string_equal(jwt("{\"fresh\":false,\"sub\":\"stefan\",\"exp\":1700003600}"), SHELL_JWT);
}

static void test_refresh_far_exp(void **unused)
{
    (void)unused;
    void *st = ready();
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 200, "{\"access_token\":\"" SHELL_JWT "\"}", &s, &err), 0);
    assert_string_equal(s.token, "Bearer " SHELL_JWT);
    assert_int_equal(s.token_len, strlen("Bearer " SHELL_JWT));
    /* exp 1 h away, default skew 60 s: refresh in 3540 s */
    assert_int_equal(s.refresh_at_ms, NOW_MS + 3540000);
    /* one day */
    assert_int_equal(refresh_for(st, "{\"exp\":1700086400}"), NOW_MS + 86340000);
    /* a base64url payload using '_' (standard base64 would use '/') */
    struct pg_session s2;
    assert_int_equal(parse(st, 200,
                           login_body(JWT_HEADER ".eyJleHAiOjE3MDAwMDM2MDAsIngiOiI_Pj8ifQ.c2ln"),
                           &s2, &err),
                     0);
    assert_int_equal(s2.refresh_at_ms, NOW_MS + 3540000);
    pt_drop(st);
}

static void test_refresh_custom_skew(void **unused)
{
    (void)unused;
    void *st = state();
    pt_set_ms(st, "refresh_skew", 300000);
    pt_init_ok(st);
    assert_int_equal(refresh_for(st, "{\"exp\":1700003600}"), NOW_MS + 3300000);
    /* 200 s left is inside the 300 s skew: half of it */
    assert_int_equal(refresh_for(st, "{\"exp\":1700000200}"), NOW_MS + 100000);
    pt_drop(st);

    st = state();
    pt_set_ms(st, "refresh_skew", 1500); /* milliseconds count */
    pt_init_ok(st);
    assert_int_equal(refresh_for(st, "{\"exp\":1700000010}"), NOW_MS + 8500);
    pt_drop(st);
}

static void test_refresh_within_skew(void **unused)
{
    (void)unused;
    void *st = ready();
    assert_int_equal(refresh_for(st, "{\"exp\":1700000061}"), NOW_MS + 1000);
    /* exactly the skew left, or less: half the remaining life, never now */
    assert_int_equal(refresh_for(st, "{\"exp\":1700000060}"), NOW_MS + 30000);
    assert_int_equal(refresh_for(st, "{\"exp\":1700000040}"), NOW_MS + 20000);
    assert_int_equal(refresh_for(st, "{\"exp\":1700000001}"), NOW_MS + 500);
    pt_drop(st);
}

static void test_refresh_already_expired(void **unused)
{
    (void)unused;
    void *st = ready();
    /* our clock says it is dead already: rely on the panel's 401 rather than loop */
    assert_int_equal(refresh_for(st, "{\"exp\":1700000000}"), 0);
    assert_int_equal(refresh_for(st, "{\"exp\":1699999995}"), 0);
    assert_int_equal(refresh_for(st, "{\"exp\":0}"), 0);
    pt_drop(st);
}

static void test_refresh_exp_number_forms(void **unused)
{
    (void)unused;
    void *st = ready();
    /* a fraction is dropped; other members and nesting are skipped */
    assert_int_equal(refresh_for(st, "{\"exp\":1700003600.75}"), NOW_MS + 3540000);
    assert_int_equal(refresh_for(st, " {\"a\":[1,{\"exp\":5}],\"exp\" : 1700003600 } "),
                     NOW_MS + 3540000);
    /* an exponent is a JSON number like any other */
    assert_int_equal(refresh_for(st, "{\"exp\":1.7000036e9}"), NOW_MS + 3540000);
    /* a payload naming exp twice is ambiguous: not trusted */
    assert_int_equal(refresh_for(st, "{\"exp\":1700003600,\"exp\":1}"), 0);
    assert_int_equal(refresh_for(st, "{\"exp\":-1700003600}"), 0);
    assert_int_equal(refresh_for(st, "{\"exp\":99999999999999999999999}"), 0);
    assert_int_equal(refresh_for(st, "{\"exp\":18446744073709551615}"), 0);
    pt_drop(st);
}

/* No usable exp: the login still succeeds, refresh_at_ms is 0 (the 401 path takes over). */
static void test_refresh_unusable_exp(void **unused)
{
    (void)unused;
    void *st = ready();
    no_exp(st, jwt("{\"sub\":\"stefan\"}"));                /* exp missing */
    no_exp(st, jwt("{\"exp\":\"1700003600\"}"));            /* exp a string */
    no_exp(st, jwt("{\"exp\":null}"));                      /* exp null */
    no_exp(st, jwt("{\"exp\":[1700003600]}"));              /* exp an array */
    no_exp(st, jwt("[{\"exp\":1700003600}]"));              /* payload not an object */
    no_exp(st, jwt("{\"exp\":1700003600"));                 /* payload not JSON */
    no_exp(st, jwt("{\"exp\":1700003600} x"));              /* trailing garbage */
    no_exp(st, jwt("{\"exp\":01700003600}"));               /* not a JSON number */
    no_exp(st, jwt("{\"exp\":1700003600,}"));               /* trailing comma */
    no_exp(st, jwt("{\"a\":\"\x01\",\"exp\":1700003600}")); /* raw control in a string */
    no_exp(st, jwt(""));                                    /* empty payload */
    /* two parts, four parts, one part */
    no_exp(st, JWT_HEADER ".eyJleHAiOjE3MDAwMDM2MDB9");
    no_exp(st, JWT_HEADER ".eyJleHAiOjE3MDAwMDM2MDB9.c2ln.c2ln");
    no_exp(st, "eyJleHAiOjE3MDAwMDM2MDB9");
    /* eyJleHAiOjE3MDAwMDM2MDB9 is {"exp":1700003600}: as the payload it works ... */
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 200, login_body("a.eyJleHAiOjE3MDAwMDM2MDB9.b"), &s, &err), 0);
    assert_int_equal(s.refresh_at_ms, NOW_MS + 3540000);
    /* ... but not with padding, standard-alphabet bytes, a bad length or leftover bits */
    no_exp(st, "a.eyJleHAiOjE3MDAwMDM2MDB9=.b");
    no_exp(st, "a.eyJleHAiOjE3MDAwMDM2MDB9+.b");
    no_exp(st, "a.eyJleHAiOjE3MDAwMDM2MDB9A.b");
    no_exp(st, "a.eyJleHAiOjE3MDAwMDM2MDB8.b"); /* '8': the last byte is '|', not '}' */
    /* {"exp":1700003600 } is 26 characters ending in "fQ" with 4 zero bits left over ... */
    assert_int_equal(parse(st, 200, login_body("a.eyJleHAiOjE3MDAwMDM2MDAgfQ.b"), &s, &err), 0);
    assert_int_equal(s.refresh_at_ms, NOW_MS + 3540000);
    /* ... "fR" decodes to the same bytes with a 1 left over: not canonical, refused */
    no_exp(st, "a.eyJleHAiOjE3MDAwMDM2MDAgfR.b");
    pt_drop(st);
}

/* ---- parse_login: failures ---- */

static void login_refused(void *st, int status, const char *body, const char *upstream_message)
{
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, status, body, &s, &err), -1);
    assert_int_equal(err.code, E_UPSTREAM_AUTH_FAILED);
    assert_true(err.msg[0] != '\0');
    assert_null(strstr(err.msg, PASS));
    assert_null(strstr(err.msg, "eyJ"));
    assert_string_equal(err.upstream_message, upstream_message);
    /* the session is left alone */
    assert_string_equal(s.token, "Bearer old");
    assert_int_equal(s.token_len, 10);
    assert_int_equal(s.refresh_at_ms, 777);
}

static void test_login_non_200(void **unused)
{
    (void)unused;
    void *st = ready();
    login_refused(st, 401, "{\"msg\":\"Bad username or password\"}", "Bad username or password");
    login_refused(st, 500, "{\"success\":false,\"error\":\"boom\"}", "boom");
    login_refused(st, 400, "{\"success\":false,\"message\":\"Missing JSON\"}", "Missing JSON");
    login_refused(st, 403, "<html>Forbidden</html>", "");
    login_refused(st, 502, NULL, "");
    /* a token on anything but 200 is not taken */
    login_refused(st, 201, login_body(SHELL_JWT), "");
    pt_drop(st);
}

static void test_login_no_usable_token(void **unused)
{
    (void)unused;
    void *st = ready();
    login_refused(st, 200, "{\"message\":\"API is disabled\"}", "API is disabled");
    login_refused(st, 200, "{\"access_token\":12}", "");
    login_refused(st, 200, "{\"access_token\":null}", "");
    login_refused(st, 200, "{\"access_token\":\"\"}", "");
    login_refused(st, 200, "{\"access_token\":\"a.b c.d\"}", "");
    login_refused(st, 200, "{\"access_token\":\"a.b\\r\\nX-Evil: 1.d\"}", "");
    login_refused(st, 200, "{\"access_token\":\"a.b\\u00e9.d\"}", "");
    login_refused(st, 200, "{\"access_token\":\"" SHELL_JWT "\"", "");
    login_refused(st, 200, "[{\"access_token\":\"" SHELL_JWT "\"}]", "");
    login_refused(st, 200, "", "");
    pt_drop(st);
}

static void test_login_token_escapes_decoded(void **unused)
{
    (void)unused;
    void *st = ready();
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 200, "{\"access_token\":\"a\\/b.c\\u002ed\"}", &s, &err), 0);
    assert_string_equal(s.token, "Bearer a/b.c.d");
    assert_int_equal(s.token_len, 14);
    pt_drop(st);
}

/* "Bearer " + token + NUL must fit PG_TOKEN_MAX. */
static void test_login_token_size_limit(void **unused)
{
    (void)unused;
    void *st = ready();
    static char tok[PG_TOKEN_MAX + 100];
    size_t fit = PG_TOKEN_MAX - 8;
    memset(tok, 'x', sizeof tok);
    tok[fit] = '\0';
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 200, login_body(tok), &s, &err), 0);
    assert_int_equal(s.token_len, PG_TOKEN_MAX - 1);
    assert_int_equal(s.token[PG_TOKEN_MAX - 1], '\0');
    assert_int_equal(s.refresh_at_ms, 0);

    tok[fit] = 'x';
    tok[fit + 1] = '\0';
    login_refused(st, 200, login_body(tok), "");
    tok[fit + 1] = 'x';
    tok[PG_TOKEN_MAX + 50] = '\0';
    login_refused(st, 200, login_body(tok), "");
    pt_drop(st);
}

/* ---- sign ---- */

static void test_sign_header(void **unused)
{
    (void)unused;
    void *st = ready();
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 200, login_body(SHELL_JWT), &s, &err), 0);
    struct pg_out_req r;
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.target = "/api/users";
    r.target_len = 10;
    r.hdr[0].name = "X-Other";
    r.hdr[0].value = "1";
    r.nhdr = 1;
    assert_int_equal(OPS->sign(st, &s, &r, NOW_S), 0);
    assert_int_equal(r.nhdr, 2);
    assert_string_equal(r.hdr[0].name, "X-Other");
    assert_string_equal(r.hdr[1].name, "Authorization");
    assert_string_equal(r.hdr[1].value, "Bearer " SHELL_JWT);
    assert_null(r.add_query_name);
    assert_int_equal(r.scratch_used, 0);
    pt_drop(st);
}

/* What panel text is redacted for: the password and the bare JWT, not the username. */
static void test_secrets(void **unused)
{
    (void)unused;
    void *st = ready();
    struct pg_session s;
    struct pg_err err;
    struct pg_span out[4];
    assert_int_equal(parse(st, 200, login_body(SHELL_JWT), &s, &err), 0);
    assert_int_equal(OPS->secrets(st, NULL, out, 4), 1);
    assert_int_equal(out[0].n, strlen(PASS));
    assert_memory_equal(out[0].p, PASS, out[0].n);
    assert_int_equal(OPS->secrets(st, &s, out, 4), 2);
    assert_int_equal(out[1].n, strlen(SHELL_JWT));
    assert_memory_equal(out[1].p, SHELL_JWT, out[1].n);
    assert_int_equal(OPS->secrets(st, &s, out, 1), 1); /* cap bounds the list */
    pt_drop(st);
}

static void test_sign_refused(void **unused)
{
    (void)unused;
    void *st = ready();
    struct pg_session s;
    memset(&s, 0, sizeof s);
    struct pg_out_req r;
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.target = "/api/users";
    r.target_len = 10;
    assert_int_equal(OPS->sign(st, NULL, &r, NOW_S), -1);
    assert_int_equal(OPS->sign(st, &s, &r, NOW_S), -1); /* no token yet */
    memcpy(s.token, "Bearer x", 9);
    s.token_len = 8;
    r.nhdr = PG_OUT_MAX_HEADERS;
    assert_int_equal(OPS->sign(st, &s, &r, NOW_S), -1);
    r.nhdr = PG_OUT_MAX_HEADERS - 1;
    assert_int_equal(OPS->sign(st, &s, &r, NOW_S), 0);
    assert_int_equal(r.nhdr, PG_OUT_MAX_HEADERS);
    pt_drop(st);
}

/* ---- classify ---- */

static enum pg_verdict classify(int status, const char *body, struct pg_err *err)
{
    void *st = ready();
    enum pg_verdict v = pt_classify(st, status, body, err);
    pt_drop(st);
    return v;
}

static void test_classify(void **unused)
{
    (void)unused;
    struct pg_err err;
    assert_int_equal(classify(401, "{\"msg\":\"Token has expired\"}", &err), PG_VERDICT_RELOGIN);
    assert_string_equal(err.upstream_message, "Token has expired");
    assert_int_equal(classify(401, "Unauthorized", &err), PG_VERDICT_RELOGIN);
    assert_string_equal(err.upstream_message, "");
    assert_int_equal(classify(401, NULL, &err), PG_VERDICT_RELOGIN);
    /* flask-jwt-extended answers 422 {"msg"} for a malformed or undecodable token */
    assert_int_equal(classify(422, "{\"msg\":\"Not enough segments\"}", &err), PG_VERDICT_RELOGIN);
    assert_string_equal(err.upstream_message, "Not enough segments");
    assert_int_equal(classify(422, "{\"msg\":\"Signature verification failed\"}", &err),
                     PG_VERDICT_RELOGIN);
    /* a 422 in the app's own shape is the caller's error: no login for it */
    assert_int_equal(classify(422, "{\"success\":false,\"message\":\"Invalid plan\"}", &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "Invalid plan");
    assert_int_equal(classify(422, "unprocessable", &err), PG_VERDICT_OK);
    assert_int_equal(classify(200, "{\"logged_in_as\":\"stefan\"}", &err), PG_VERDICT_OK);
    assert_int_equal(classify(500, "{\"success\":false,\"error\":\"docker failed\"}", &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "docker failed");
    assert_int_equal(classify(403, "{\"msg\":\"Admins only\"}", &err), PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "Admins only");
    assert_int_equal(classify(404, "<html>", &err), PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "");
    /* JSON escapes are decoded: a surrogate pair is one character; a lone one is not JSON text */
    assert_int_equal(classify(500, "{\"msg\":\"caf\\u00e9 \\ud83d\\ude00\\n\"}", &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "caf\xc3\xa9 \xf0\x9f\x98\x80\n");
    assert_int_equal(classify(500, "{\"msg\":\"x \\udc00\"}", &err), PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "");
}

/* ---- reserved ---- */

struct rcase {
    const char *method, *path;
    bool want;
};

static void check_reserved(const char *auth_path, const struct rcase *c, size_t n)
{
    void *st = state();
    if (auth_path)
        pt_set_string(st, "auth_path", auth_path);
    pt_init_ok(st);
    for (size_t i = 0; i < n; i++) {
        bool got = OPS->reserved(st, c[i].method, c[i].path, strlen(c[i].path));
        if (got != c[i].want)
            fail_msg("auth_path %s: %s '%s' reserved %d", auth_path ? auth_path : "(default)",
                     c[i].method, c[i].path, got);
    }
    pt_drop(st);
}

static void test_reserved_default(void **unused)
{
    (void)unused;
    static const struct rcase c[] = {
        { "POST", "/api/", true },  { "POST", "/api", true },     { "GET", "/api/", false },
        { "PUT", "/api", false },   { "DELETE", "/api/", false }, { "POST", "/api/users", false },
        { "POST", "/apix", false }, { "POST", "/ap", false },     { "POST", "/", false },
        { "POST", "", false },      { "POST", "/api/x/", false }, { "POST", "/x/api/", false },
        { "POST", "/API/", false }, { "post", "/api/", false },
    };
    check_reserved(NULL, c, sizeof c / sizeof c[0]);
    check_reserved("/api/", c, sizeof c / sizeof c[0]);
    check_reserved("/api", c, sizeof c / sizeof c[0]);
}

static void test_reserved_custom_and_root(void **unused)
{
    (void)unused;
    static const struct rcase c[] = {
        { "POST", "/v2/login", true }, { "POST", "/v2/login/", true },  { "POST", "/v2", false },
        { "POST", "/api/", false },    { "POST", "/v2/loginx", false },
    };
    check_reserved("/v2/login", c, sizeof c / sizeof c[0]);
    static const struct rcase root[] = {
        { "POST", "/", true },
        { "POST", "", true },
        { "POST", "/x", false },
        { "GET", "/", false },
    };
    check_reserved("/", root, sizeof root / sizeof root[0]);
}

/* Only path_len bytes count: the path need not be NUL-terminated. */
static void test_reserved_uses_length(void **unused)
{
    (void)unused;
    void *st = ready();
    assert_true(OPS->reserved(st, "POST", "/api/users", 5));
    assert_true(OPS->reserved(st, "POST", "/api/users", 4));
    assert_false(OPS->reserved(st, "POST", "/api/", 3));
    pt_drop(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_table),
        cmocka_unit_test(test_init_missing_password),
        cmocka_unit_test(test_init_bad_auth_path),
        cmocka_unit_test(test_init_credentials_not_utf8),
        cmocka_unit_test(test_init_login_body_too_long),
        cmocka_unit_test(test_deinit_uninitialised),
        cmocka_unit_test(test_build_login_default),
        cmocka_unit_test(test_build_login_escaping),
        cmocka_unit_test(test_test_jwt_matches_shell),
        cmocka_unit_test(test_refresh_far_exp),
        cmocka_unit_test(test_refresh_custom_skew),
        cmocka_unit_test(test_refresh_within_skew),
        cmocka_unit_test(test_refresh_already_expired),
        cmocka_unit_test(test_refresh_exp_number_forms),
        cmocka_unit_test(test_refresh_unusable_exp),
        cmocka_unit_test(test_login_non_200),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_login_no_usable_token),
        cmocka_unit_test(test_login_token_escapes_decoded),
        cmocka_unit_test(test_login_token_size_limit),
        cmocka_unit_test(test_sign_header),
        cmocka_unit_test(test_sign_refused),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_reserved_default),
        cmocka_unit_test(test_reserved_custom_and_root),
        cmocka_unit_test(test_reserved_uses_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
