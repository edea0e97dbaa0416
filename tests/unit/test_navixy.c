/* test_navixy.c -- the navixy_session adapter through its ops table (SPEC section 1): config keys
 * and init checks, the login body, login answers, signing, expiry detection, reserved paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "plugins/plugin.h"

#define S(lit) lit, (sizeof lit - 1)
#define HASH "1dc2b813769d846c2c15030884948117"
#define E_UPSTREAM_AUTH_FAILED 9 /* PG_E_UPSTREAM_AUTH_FAILED in gateway/envelope.h */
#define DAY_MS (24ull * 3600 * 1000)

static const struct pg_auth_ops *const ops = &pg_auth_navixy_session;

/* ---- filling a state through the key table, as conf.c does ---- */

#define PT_OPS ops
#include "plugin_test.h"

static void set_enum(void *st, const char *name, const char *v)
{
    const struct pg_conf_key *k = pt_key(name, PG_CONF_ENUM);
    int idx = 0;
    size_t vn = strlen(v);
    for (const char *p = k->enum_vals;; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vn && memcmp(p, v, n) == 0) {
            *(int *)((char *)st + k->offset) = idx;
            return;
        }
        if (!bar)
            fail_msg("'%s' is not a value of %s", v, name);
        p = bar + 1;
    }
}

/* A state with login/password and optional keys (NULL: not given), init'ed successfully. */
static void *make(const char *login, const char *password, const char *auth_path,
                  const char *hash_in, uint64_t age_ms)
{
    void *st = pt_new();
    pt_set_secret(st, "login", login);
    pt_set_secret(st, "password", password);
    if (auth_path)
        pt_set_string(st, "auth_path", auth_path);
    if (hash_in)
        set_enum(st, "hash_in", hash_in);
    if (age_ms)
        pt_set_ms(st, "max_session_age", age_ms);
    pt_init_ok(st);
    return st;
}

static void *make_default(void)
{
    return make("demo", "secret", NULL, NULL, 0);
}

/* init on a state with these keys must fail, name no secret, and deinit must clean up. */
static void init_fails(void *st, const char *secret)
{
    struct pg_err err = { 0 };
    assert_int_equal(ops->init(st, &err), -1);
    assert_true(err.msg[0] != '\0');
    if (secret)
        assert_null(strstr(err.msg, secret));
    pt_drop(st);
}

/* ---- ops table and config ---- */

static void test_ops_table(void **state)
{
    (void)state;
    assert_string_equal(ops->type, "navixy_session");
    assert_string_equal(ops->cred_param, "hash");
    assert_non_null(ops->init);
    assert_non_null(ops->deinit);
    assert_non_null(ops->build_login);
    assert_non_null(ops->parse_login);
    assert_non_null(ops->sign);
    assert_non_null(ops->classify);
    assert_non_null(ops->reserved);
    assert_null(ops->rewrite_header);
    assert_true(pt_key("login", PG_CONF_SECRET)->flags & PG_REQUIRED);
    assert_true(pt_key("password", PG_CONF_SECRET)->flags & PG_REQUIRED);
    assert_false(pt_key("auth_path", PG_CONF_STRING)->flags & PG_REQUIRED);
    assert_string_equal(pt_key("hash_in", PG_CONF_ENUM)->enum_vals, "header|query");
    assert_false(pt_key("max_session_age", PG_CONF_DURATION)->flags & PG_REQUIRED);
    size_t n = 0;
    for (const struct pg_conf_key *k = ops->keys; k->name; k++)
        n++;
    assert_int_equal(n, 5);
}

static void test_init_rejects(void **state)
{
    (void)state;
    void *st = pt_new();
    pt_set_secret(st, "login", "demo");
    init_fails(st, NULL); /* no password */

    static const char *const bad_paths[] = { "user/auth",
                                             "",
                                             "/",
                                             "/user//auth",
                                             "/user/./auth",
                                             "/user/../auth",
                                             "/user/%61uth",
                                             "/user/auth?x=1",
                                             "/user auth" };
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        st = pt_new();
        pt_set_secret(st, "login", "demo");
        pt_set_secret(st, "password", "pw-Zq9");
        pt_set_string(st, "auth_path", bad_paths[i]);
        init_fails(st, "pw-Zq9");
    }

    st = pt_new();
    pt_set_secret(st, "login", "demo");
    pt_set_secret(st, "password", "pw-\xff\xfe"); /* not UTF-8: the JSON body would be invalid */
    init_fails(st, "pw-\xff");

    st = pt_new();
    pt_set_secret(st, "login", "demo");
    pt_set_secret(st, "password", "pw-\xed\xa0\x80"); /* an encoded surrogate */
    init_fails(st, NULL);

    /* too long once escaped: 1100 quotes are 2200 bytes in JSON, the body holds 2048 */
    char big[1101];
    memset(big, '"', 1100);
    big[1100] = '\0';
    st = pt_new();
    pt_set_secret(st, "login", "demo");
    pt_set_secret(st, "password", big);
    init_fails(st, NULL);
}

static void test_init_accepts(void **state)
{
    (void)state;
    pt_drop(make("demo", "x", "/account/auth/", "query", 0));
    pt_drop(make("demo", "x", "/panel/account/auth", "header", 0));
    pt_drop(make("d\xc3\xa9mo", "\xf0\x9f\x94\x91", NULL, NULL, 0)); /* UTF-8 is fine */
    char big[1001];
    memset(big, 'a', 1000);
    big[1000] = '\0';
    pt_drop(make(big, big, NULL, NULL, 0)); /* 2000 + 27 bytes fit in 2048 */
}

/* deinit copes with what conf.c may leave when a later key or init failed. */
static void test_deinit_partial(void **state)
{
    (void)state;
    size_t before = pt_heap_in_use();
    pt_drop_checked(pt_new(), before); /* nothing stored */
    void *st = pt_new();
    pt_set_secret(st, "login", "demo");
    pt_drop_checked(st, before); /* init never ran */
    st = pt_new();
    pt_set_secret(st, "login", "demo");
    pt_set_secret(st, "password", "secret");
    pt_set_string(st, "auth_path", "/user/auth");
    pt_drop_checked(st, before); /* every key, init never ran */
    st = pt_new();
    pt_set_secret(st, "login", "demo");
    pt_set_secret(st, "password", "secret");
    pt_set_string(st, "auth_path", "/user/auth");
    pt_init_ok(st);
    pt_drop_checked(st, before); /* and after init */
}

/* ---- build_login ---- */

static void test_login_body_exact(void **state)
{
    (void)state;
    /* quote, backslash, newline, a control byte, and UTF-8 (e-acute, euro sign) */
    void *st = make("d\"emo", "p\"a\\ss\n\x01\xc3\xa9\xe2\x82\xac", NULL, NULL, 0);
    struct pg_login_req req;
    memset(&req, 0x5a, sizeof req);
    assert_int_equal(ops->build_login(st, &req), 0);
    static const char want[] =
        "{\"login\":\"d\\\"emo\",\"password\":\"p\\\"a\\\\ss\\n\\u0001\xc3\xa9\xe2\x82\xac\"}";
    assert_int_equal(req.body_len, sizeof want - 1);
    assert_memory_equal(req.body, want, sizeof want - 1);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.path, "/user/auth");
    assert_string_equal(req.content_type, "application/json");

    /* and it is JSON that gives the secrets back */
    json_t *j = json_loadb(req.body, req.body_len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "login")), "d\"emo");
    assert_string_equal(json_string_value(json_object_get(j, "password")),
                        "p\"a\\ss\n\x01\xc3\xa9\xe2\x82\xac");
    json_decref(j);
    pt_drop(st);
}

/* A state whose init did not run (or failed) never builds a login. */
static void test_login_needs_init(void **state)
{
    (void)state;
    void *st = pt_new();
    pt_set_secret(st, "login", "demo");
    pt_set_secret(st, "password", "pw");
    struct pg_login_req req = { 0 };
    assert_int_equal(ops->build_login(st, &req), -1);
    assert_int_equal(req.body_len, 0);
    pt_drop(st);
}

static void test_login_path_configured(void **state)
{
    (void)state;
    void *st = make("admin", "admin", "/account/auth", "query", 0);
    struct pg_login_req req = { 0 };
    assert_int_equal(ops->build_login(st, &req), 0);
    assert_string_equal(req.path, "/account/auth");
    static const char want[] = "{\"login\":\"admin\",\"password\":\"admin\"}";
    assert_int_equal(req.body_len, sizeof want - 1);
    assert_memory_equal(req.body, want, sizeof want - 1);
    pt_drop(st);
}

/* ---- parse_login ---- */

static int parse(void *st, int status, const char *body, struct pg_session *s, uint64_t now_ms,
                 struct pg_err *err)
{
    struct pg_in_resp r = { status, body, body ? strlen(body) : 0, "application/json", 16 };
    memset(s, 0, sizeof *s);
    memset(err, 0, sizeof *err);
    memcpy(err->upstream_code, "stale", 6); /* left from an earlier answer: must not survive */
    memcpy(err->upstream_message, "stale", 6);
    return ops->parse_login(st, &r, s, now_ms, 1700000000, err);
}

static void test_parse_login_ok(void **state)
{
    (void)state;
    void *st = make_default();
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 200, "{\"success\":true,\"hash\":\"" HASH "\"}", &s, 5000, &err), 0);
    assert_string_equal(s.token, HASH);
    assert_int_equal(s.token_len, 32);
    assert_int_equal(s.refresh_at_ms, 5000 + DAY_MS); /* default max_session_age: 24h */

    /* the Panel API answer has more fields, in any order; upper-case hex is still hex */
    assert_int_equal(parse(st, 200,
                           "{\"hash\": \"1DC2B813769D846C2C15030884948117\", \"success\": true, "
                           "\"permissions\": {\"users\": [\"read\"]}}",
                           &s, 0, &err),
                     0);
    assert_string_equal(s.token, "1DC2B813769D846C2C15030884948117");
    assert_int_equal(s.refresh_at_ms, DAY_MS);
    pt_drop(st);
}

static void test_refresh_at(void **state)
{
    (void)state;
    void *st = make("demo", "x", NULL, NULL, 90 * 60 * 1000);
    struct pg_session s;
    struct pg_err err;
    const char *ok = "{\"success\":true,\"hash\":\"" HASH "\"}";
    assert_int_equal(parse(st, 200, ok, &s, 123456, &err), 0);
    assert_int_equal(s.refresh_at_ms, 123456 + 90 * 60 * 1000);
    /* no wrap-around (a wrapped time would mean "refresh at once", or 0 "never") */
    assert_int_equal(parse(st, 200, ok, &s, UINT64_MAX - 10, &err), 0);
    assert_true(s.refresh_at_ms == UINT64_MAX);
    pt_drop(st);
}

static void test_parse_login_wrong_password(void **state)
{
    (void)state;
    void *st = make("demo", "hunter2", NULL, NULL, 0);
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 400,
                           "{\"success\":false,\"status\":{\"code\":102,"
                           "\"description\":\"Wrong login or password\"}}",
                           &s, 1000, &err),
                     -1);
    assert_int_equal(err.code, E_UPSTREAM_AUTH_FAILED);
    assert_string_equal(err.upstream_code, "102");
    assert_string_equal(err.upstream_message, "Wrong login or password");
    assert_true(err.msg[0] != '\0');
    assert_null(strstr(err.msg, "hunter2"));
    assert_int_equal(s.token_len, 0);
    assert_int_equal(s.token[0], '\0');
    /* same with HTTP 200 (success false is what counts) and a Panel API error */
    assert_int_equal(
        parse(st, 200,
              "{\"success\":false,\"status\":{\"code\":12,\"description\":\"Dealer not found\"}}",
              &s, 1000, &err),
        -1);
    assert_string_equal(err.upstream_code, "12");
    assert_string_equal(err.upstream_message, "Dealer not found");
    pt_drop(st);
}

static void test_parse_login_garbage(void **state)
{
    (void)state;
    void *st = make_default();
    static const struct {
        int status;
        const char *body;
    } bad[] = {
        { 200, NULL },
        { 200, "" },
        { 200, "not json" },
        { 200, "{\"success\":true,\"hash\":\"" HASH "\"" }, /* truncated */
        { 200, "{\"success\":true}" },
        { 200, "{\"success\":true,\"hash\":\"1dc2b813769d846c2c1503088494811\"}" },   /* 31 */
        { 200, "{\"success\":true,\"hash\":\"1dc2b813769d846c2c150308849481170\"}" }, /* 33 */
        { 200, "{\"success\":true,\"hash\":\"1dc2b813769d846c2c15030884948g17\"}" },  /* 'g' */
        { 200, "{\"success\":true,\"hash\":\"1dc2b813769d846c2c15030884948\\n17\"}" },
        { 200, "{\"success\":true,\"hash\":12345678901234567890123456789012}" },
        { 200, "{\"success\":\"true\",\"hash\":\"" HASH "\"}" },
        { 200, "{\"success\":false,\"hash\":\"" HASH "\"}" },
        { 200, "{\"hash\":\"" HASH "\"}" },
        { 200, "{\"success\":true,\"hash\":\"" HASH "\",\"hash\":\"" HASH "\"}" },
        { 200, "[\"" HASH "\"]" },
        { 201, "{\"success\":true,\"hash\":\"" HASH "\"}" },
        { 500, "{\"success\":true,\"hash\":\"" HASH "\"}" },
        { 502, "<html><body>Bad Gateway</body></html>" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pg_session s;
        struct pg_err err;
        if (parse(st, bad[i].status, bad[i].body, &s, 1000, &err) != -1)
            fail_msg("case %zu accepted", i);
        assert_int_equal(err.code, E_UPSTREAM_AUTH_FAILED);
        assert_true(err.msg[0] != '\0');
        assert_string_equal(err.upstream_code, "");
        assert_string_equal(err.upstream_message, ""); /* a login answer never reaches a caller */
        assert_int_equal(s.token_len, 0);
        assert_int_equal(s.refresh_at_ms, 0);
    }
    pt_drop(st);
}

/* The body is (p, n): bytes after n are not read. */
static void test_parse_login_uses_length(void **state)
{
    (void)state;
    void *st = make_default();
    static const char buf[] = "{\"success\":true,\"hash\":\"" HASH "\"}garbage";
    struct pg_in_resp r = { 200, buf, sizeof buf - 1 - 7, NULL, 0 };
    struct pg_session s = { 0 };
    struct pg_err err = { 0 };
    assert_int_equal(ops->parse_login(st, &r, &s, 0, 0, &err), 0);
    r.body_len -= 1; /* cuts the closing brace */
    memset(&s, 0, sizeof s);
    assert_int_equal(ops->parse_login(st, &r, &s, 0, 0, &err), -1);
    pt_drop(st);
}

/* A long description is cut inside 256 bytes, at a UTF-8 character boundary. */
static void test_upstream_message_truncated(void **state)
{
    (void)state;
    void *st = make_default();
    char body[1024];
    size_t o = 0;
    static const char head[] = "{\"success\":false,\"status\":{\"code\":7,\"description\":\"";
    memcpy(body, head, sizeof head - 1);
    o += sizeof head - 1;
    for (int i = 0; i < 300; i++) {
        body[o++] = '\xc3';
        body[o++] = '\xa9';
    }
    memcpy(body + o, "\"}}", 4);
    struct pg_session s;
    struct pg_err err;
    assert_int_equal(parse(st, 400, body, &s, 0, &err), -1);
    size_t n = strlen(err.upstream_message);
    assert_true(n < sizeof err.upstream_message);
    /* 255 bytes would end in half a character: 254 do not */
    assert_int_equal(n, sizeof err.upstream_message - 2);
    assert_int_equal((unsigned char)err.upstream_message[n - 1], 0xa9);
    pt_drop(st);
}

/* ---- sign ---- */

static struct pg_session session(void)
{
    struct pg_session s = { 0 };
    memcpy(s.token, HASH, 33);
    s.token_len = 32;
    s.refresh_at_ms = 1;
    return s;
}

static void test_sign_header(void **state)
{
    (void)state;
    void *st = make_default();
    struct pg_session s = session();
    struct pg_out_req req = { 0 };
    req.method = "POST";
    assert_int_equal(ops->sign(st, &s, &req, 0), 0);
    assert_int_equal(req.nhdr, 1);
    assert_string_equal(req.hdr[0].name, "Authorization");
    assert_string_equal(req.hdr[0].value, "NVX " HASH);
    assert_null(req.add_query_name);
    assert_null(req.add_query_value);
    /* the value lives in scratch, after what was used before */
    assert_true(req.hdr[0].value >= req.scratch && req.hdr[0].value < req.scratch + 512);
    assert_int_equal(req.scratch_used, 37);

    struct pg_out_req r2 = { 0 };
    r2.scratch_used = 100;
    r2.nhdr = 2;
    assert_int_equal(ops->sign(st, &s, &r2, 0), 0);
    assert_int_equal(r2.nhdr, 3);
    assert_ptr_equal(r2.hdr[2].value, r2.scratch + 100);
    assert_string_equal(r2.hdr[2].value, "NVX " HASH);
    assert_int_equal(r2.scratch_used, 137);
    pt_drop(st);
}

static void test_sign_header_bounds(void **state)
{
    (void)state;
    void *st = make_default();
    struct pg_session s = session();
    struct pg_out_req req = { 0 };
    req.scratch_used = sizeof req.scratch - 36; /* one byte short */
    assert_int_equal(ops->sign(st, &s, &req, 0), -1);
    assert_int_equal(req.nhdr, 0);
    req.scratch_used = sizeof req.scratch - 37; /* exactly enough */
    assert_int_equal(ops->sign(st, &s, &req, 0), 0);
    assert_int_equal(req.scratch_used, sizeof req.scratch);

    struct pg_out_req full = { 0 };
    full.nhdr = PG_OUT_MAX_HEADERS;
    assert_int_equal(ops->sign(st, &s, &full, 0), -1);
    assert_int_equal(full.nhdr, PG_OUT_MAX_HEADERS);

    struct pg_out_req r = { 0 };
    assert_int_equal(ops->sign(st, NULL, &r, 0), -1);
    struct pg_session empty = { 0 };
    assert_int_equal(ops->sign(st, &empty, &r, 0), -1);
    /* never a header made of something that is not a hash */
    struct pg_session evil = session();
    memcpy(evil.token, "1dc2b813769d846c2c15030884948\r\nX", 32);
    assert_int_equal(ops->sign(st, &evil, &r, 0), -1);
    assert_int_equal(r.nhdr, 0);
    pt_drop(st);
}

static void test_sign_query(void **state)
{
    (void)state;
    void *st = make("admin", "admin", "/account/auth", "query", 0);
    struct pg_session s = session();
    struct pg_out_req req = { 0 };
    assert_int_equal(ops->sign(st, &s, &req, 0), 0);
    assert_int_equal(req.nhdr, 0);
    assert_string_equal(req.add_query_name, "hash");
    assert_string_equal(req.add_query_value, HASH);
    assert_int_equal(req.scratch_used, 0);
    pt_drop(st);
}

/* ---- classify ---- */

static void test_classify_expired(void **state)
{
    (void)state;
    void *st = make_default();
    struct pg_err err;
    static const char c3[] =
        "{\"success\":false,\"status\":{\"code\":3,\"description\":\"Wrong user hash\"}}";
    static const char c4[] = "{\"success\": false, \"status\": {\"code\": 4, \"description\": "
                             "\"User not found or session ended\"}}";
    static const int statuses[] = { 200, 400, 403, 500 };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        assert_int_equal(pt_classify(st, statuses[i], c3, &err), PG_VERDICT_RELOGIN);
        assert_string_equal(err.upstream_code, "3");
        assert_int_equal(pt_classify(st, statuses[i], c4, &err), PG_VERDICT_RELOGIN);
        assert_string_equal(err.upstream_code, "4");
        assert_string_equal(err.upstream_message, "User not found or session ended");
    }
    pt_drop(st);
}

static void test_classify_other_errors(void **state)
{
    (void)state;
    void *st = make_default();
    struct pg_err err;
    assert_int_equal(
        pt_classify(
            st, 400,
            "{\"success\":false,\"status\":{\"code\":7,\"description\":\"Invalid parameters\"},"
            "\"errors\":[{\"parameter\":\"tracker_id\",\"error\":\"wrong\"}]}",
            &err),
        PG_VERDICT_OK);
    assert_string_equal(err.upstream_code, "7");
    assert_string_equal(err.upstream_message, "Invalid parameters");
    assert_int_equal(pt_classify(st, 429,
                                 "{\"success\":false,\"status\":{\"code\":15,\"description\":"
                                 "\"Too many requests (rate limit exceeded)\"}}",
                                 &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_code, "15");
    assert_int_equal(pt_classify(st, 400, "{\"success\":false,\"status\":{\"code\":102}}", &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_code, "102");
    assert_string_equal(err.upstream_message, "");
    pt_drop(st);
}

static void test_classify_garbage(void **state)
{
    (void)state;
    void *st = make_default();
    static const char *const bodies[] = {
        NULL,
        "",
        "   ",
        "{",
        "[]",
        "[{\"success\":false,\"status\":{\"code\":4}}]",
        "null",
        "<html>502</html>",
        "{\"success\":false}",
        "{\"success\":false,\"status\":4}",
        "{\"success\":false,\"status\":\"4\"}",
        "{\"success\":\"false\",\"status\":{\"code\":4}}",
        "{\"success\":0,\"status\":{\"code\":4}}",
        "{\"success\":true,\"status\":{\"code\":4}}",
        "{\"status\":{\"code\":4}}",
        "{\"success\":false,\"status\":{\"code\":\"4\"}}",
        "{\"success\":false,\"status\":{\"code\":4.0}}",
        "{\"success\":false,\"status\":{\"code\":44}}",
        "{\"success\":false,\"status\":{\"code\":4}",
        "{\"success\":false,\"status\":{\"code\":4}}}",
        "{\"success\":true,\"list\":[]}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct pg_err err;
        if (pt_classify(st, 400, bodies[i], &err) != PG_VERDICT_OK)
            fail_msg("body %zu: %s", i, bodies[i] ? bodies[i] : "(null)");
    }
    /* arbitrary bytes: never a crash, never anything but OK/RELOGIN */
    unsigned seed = 12345;
    char buf[64];
    for (int round = 0; round < 2000; round++) {
        size_t n = (seed = seed * 1103515245u + 12345u) % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)((seed = seed * 1103515245u + 12345u) >> 16);
        if (n)
            buf[0] = '{';
        struct pg_err err;
        enum pg_verdict v = pt_classify_n(st, 400, buf, n, &err);
        assert_true(v == PG_VERDICT_OK || v == PG_VERDICT_RELOGIN);
        assert_true(memchr(err.upstream_code, '\0', sizeof err.upstream_code) != NULL);
        assert_true(memchr(err.upstream_message, '\0', sizeof err.upstream_message) != NULL);
    }
    pt_drop(st);
}

/* Only body_len bytes count: the same bytes pass or fail by the length given. */
static void test_classify_uses_length(void **state)
{
    (void)state;
    void *st = make_default();
    static const char buf[] = "{\"success\":false,\"status\":{\"code\":4}}, trailing junk";
    size_t json_len = strlen("{\"success\":false,\"status\":{\"code\":4}}");
    struct pg_err err;
    assert_int_equal(pt_classify_n(st, 400, buf, json_len, &err), PG_VERDICT_RELOGIN);
    assert_int_equal(pt_classify_n(st, 400, buf, json_len - 1, &err), PG_VERDICT_OK);
    assert_int_equal(pt_classify_n(st, 400, buf, sizeof buf - 1, &err), PG_VERDICT_OK);
    pt_drop(st);
}

/* ---- reserved ---- */

static void test_reserved(void **state)
{
    (void)state;
    void *st = make_default();
    static const struct {
        const char *method, *path;
        bool want;
    } cases[] = {
        { "POST", "/user/auth", true },
        { "GET", "/user/auth", true },
        { "DELETE", "/user/auth/", true },
        { "POST", "/user/logout", true },
        { "GET", "/user/logout/", true },
        { "POST", "/account/auth", true },
        { "PUT", "/account/auth/", true },
        { "GET", "/account/logout", true },
        { "OPTIONS", "/account/logout/", true },
        { "POST", "/USER/Auth", true },              /* a case-insensitive server */
        { "POST", "/user/auth;jsessionid=1", true }, /* servlet path parameters */
        { "POST", "/user;x/logout", true },
        { "POST", "/panel/account/auth/", true }, /* upstream url one level up */
        { "POST", "/v2/user/logout", true },
        { "POST", "/user/authx", false },
        { "POST", "/user/auth2/", false },
        { "POST", "/user/aut", false },
        { "POST", "/xuser/auth", false },
        { "POST", "/user/auth/x", false },
        { "POST", "/user/logouts", false },
        { "POST", "/account/authenticate", false },
        { "POST", "/user", false },
        { "POST", "/auth", false },
        { "POST", "/user/", false },
        { "GET", "/tracker/list", false },
        { "GET", "/", false },
        { "GET", "", false },
        { "POST", "user/auth", true }, /* not normalised: still refused */
        { "POST", "auth", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = ops->reserved(st, cases[i].method, cases[i].path, strlen(cases[i].path));
        if (got != cases[i].want)
            fail_msg("%s %s: got %d", cases[i].method, cases[i].path, got);
    }
    /* (path, len): bytes after len are not part of the path */
    assert_true(ops->reserved(st, "GET", S("/user/authX") - 1));
    assert_false(ops->reserved(st, "GET", S("/user/auth") - 1));
    pt_drop(st);
}

static void test_reserved_configured_path(void **state)
{
    (void)state;
    void *st = make("demo", "x", "/custom/login", NULL, 0);
    assert_true(ops->reserved(st, "POST", S("/custom/login")));
    assert_true(ops->reserved(st, "GET", S("/custom/login/")));
    assert_false(ops->reserved(st, "POST", S("/custom/loginx")));
    assert_false(ops->reserved(st, "POST", S("/custom")));
    assert_true(ops->reserved(st, "POST", S("/user/auth"))); /* the panels' own stay reserved */
    assert_true(ops->reserved(st, "POST", S("/account/logout")));
    pt_drop(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_table),
        cmocka_unit_test(test_init_rejects),
        cmocka_unit_test(test_init_accepts),
        cmocka_unit_test(test_deinit_partial),
        cmocka_unit_test(test_login_body_exact),
        cmocka_unit_test(test_login_needs_init),
        cmocka_unit_test(test_login_path_configured),
        cmocka_unit_test(test_parse_login_ok),
        cmocka_unit_test(test_refresh_at),
        cmocka_unit_test(test_parse_login_wrong_password),
        cmocka_unit_test(test_parse_login_garbage),
        cmocka_unit_test(test_parse_login_uses_length),
        cmocka_unit_test(test_upstream_message_truncated),
        cmocka_unit_test(test_sign_header),
        cmocka_unit_test(test_sign_header_bounds),
        cmocka_unit_test(test_sign_query),
        cmocka_unit_test(test_classify_expired),
        cmocka_unit_test(test_classify_other_errors),
        cmocka_unit_test(test_classify_garbage),
        cmocka_unit_test(test_classify_uses_length),
        cmocka_unit_test(test_reserved),
        cmocka_unit_test(test_reserved_configured_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
