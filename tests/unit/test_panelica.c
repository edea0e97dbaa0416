/* test_panelica.c -- the panelica_hmac adapter through its ops table (SPEC 1): X-API-Key,
 * X-Timestamp and X-Signature over the string-to-sign template, template errors at init, and
 * the classification of Panelica's {"error","code","details"} answers. Expected signatures were
 * computed with `printf %s "$STRING" | openssl dgst -sha256 -hmac "$SECRET"`, not with the code
 * under test. */
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

#define OPS (&pg_auth_panelica_hmac)
#define API_KEY "pk_live_a1b2c3d4"
#define SECRET "sk_live_x9y8z7w6v5"
/* a template with every placeholder and literal separators, including a newline */
#define CUSTOM "v1|{timestamp}|{method}\n{path}\n{query}\n{body_sha256}"

/* ---- helpers: the state is opaque; config keys are stored through the key table, as conf.c
 * does ---- */

#define PT_OPS OPS
#include "plugin_test.h"

/* A state with key and secret stored (and the template when non-NULL), not yet initialised. */
static void *state(const char *tmpl)
{
    void *st = pt_new();
    pt_set_secret(st, "api_key", API_KEY);
    pt_set_secret(st, "api_secret", SECRET);
    if (tmpl)
        pt_set_string(st, "string_to_sign", tmpl);
    return st;
}

static void *ready(const char *tmpl)
{
    void *st = state(tmpl);
    pt_init_ok(st);
    return st;
}

static struct pg_out_req out_req(const char *method, const char *target, const char *body)
{
    struct pg_out_req r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.target = target;
    r.target_len = strlen(target);
    r.body = body;
    r.body_len = body ? strlen(body) : 0;
    return r;
}

/* Sign and compare all three headers; the computed values must live in scratch. */
static void check_sign(void *st, struct pg_out_req *r, uint64_t now_s, const char *ts,
                       const char *sig)
{
    assert_int_equal(OPS->sign(st, NULL, r, now_s), 0);
    assert_int_equal(r->nhdr, 3);
    assert_string_equal(pt_header(r, "X-API-Key"), API_KEY);
    assert_string_equal(pt_header(r, "X-Timestamp"), ts);
    assert_string_equal(pt_header(r, "X-Signature"), sig);
    const char *t = pt_header(r, "X-Timestamp"), *s = pt_header(r, "X-Signature");
    assert_true(t >= r->scratch && t + strlen(t) < r->scratch + r->scratch_used);
    assert_true(s >= r->scratch && s + strlen(s) < r->scratch + r->scratch_used);
    assert_true(r->scratch_used <= sizeof r->scratch);
}

/* ---- config keys ---- */

static void test_keys_table(void **unused)
{
    (void)unused;
    assert_string_equal(OPS->type, "panelica_hmac");
    assert_true(pt_key("api_key", PG_CONF_SECRET)->flags & PG_REQUIRED);
    assert_true(pt_key("api_secret", PG_CONF_SECRET)->flags & PG_REQUIRED);
    assert_false(pt_key("string_to_sign", PG_CONF_STRING)->flags & PG_REQUIRED);
    /* no login, no session */
    assert_null(OPS->build_login);
    assert_null(OPS->parse_login);
}

/* ---- known-answer signatures ---- */

static void test_sign_get_with_query_no_body(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    struct pg_out_req r = out_req("GET", "/api/external/v1/domains?page=1&limit=25", NULL);
    /* "1709827200GET/api/external/v1/domains?page=1&limit=25" */
    check_sign(st, &r, 1709827200, "1709827200",
               "fae8a58fcd9bc90b1e66c76674073201b260801f38f3245f5e572e4391f79a6d");
    pt_drop(st);
}

static void test_sign_post_json_body(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    struct pg_out_req r = out_req("POST", "/api/external/v1/domains",
                                  "{\"domain\":\"example.com\",\"php_version\":\"8.4\"}");
    check_sign(st, &r, 1709827201, "1709827201",
               "05d4ab6b982bcddf0905373fed8b79ad0c3302dab887da4cfee7ea68f6ac8a97");
    pt_drop(st);
}

/* The default template spelled out in config signs the same as no template. */
static void test_sign_explicit_default_template(void **unused)
{
    (void)unused;
    void *st = ready("{timestamp}{method}{path}{body}");
    struct pg_out_req r = out_req("POST", "/api/external/v1/domains",
                                  "{\"domain\":\"example.com\",\"php_version\":\"8.4\"}");
    check_sign(st, &r, 1709827201, "1709827201",
               "05d4ab6b982bcddf0905373fed8b79ad0c3302dab887da4cfee7ea68f6ac8a97");
    pt_drop(st);
}

/* Only body_len bytes are signed: the body need not be NUL-terminated. */
static void test_sign_body_uses_length(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    struct pg_out_req r = out_req("POST", "/api/external/v1/domains",
                                  "{\"domain\":\"example.com\",\"php_version\":\"8.4\"}TRAILING");
    r.body_len -= strlen("TRAILING");
    check_sign(st, &r, 1709827201, "1709827201",
               "05d4ab6b982bcddf0905373fed8b79ad0c3302dab887da4cfee7ea68f6ac8a97");
    pt_drop(st);
}

static void test_sign_custom_template(void **unused)
{
    (void)unused;
    void *st = ready(CUSTOM);
    struct pg_out_req r = out_req("PUT", "/api/external/v1/files/content?path=/home/u1&x=%2F",
                                  "{\"path\":\"/home/u1/t.txt\",\"content\":\"Hello, World!\"}");
    /* body sha256 9c72f229094316673fa18bd5bb3a3f44acc8bc64db47bf62bb3fb271f2901564 */
    check_sign(st, &r, 1709827202, "1709827202",
               "0ff36642d6e0810db3178a7b650466341c5672fc8dbdeace9799bf2522639cdc");
    pt_drop(st);
}

static void test_sign_empty_body(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    struct pg_out_req r = out_req("POST", "/api/external/v1/domains/42/suspend", NULL);
    check_sign(st, &r, 1709827203, "1709827203",
               "d8dff595ae8f031340d56ddd1e2b53bee5858d954c1c622e4e285739e64e7283");
    /* a zero-length, non-NULL body is the same thing */
    struct pg_out_req r2 = out_req("POST", "/api/external/v1/domains/42/suspend", "");
    check_sign(st, &r2, 1709827203, "1709827203",
               "d8dff595ae8f031340d56ddd1e2b53bee5858d954c1c622e4e285739e64e7283");
    pt_drop(st);
}

/* Empty body under {body_sha256} (SHA-256 of ""), and {query} empty when there is no '?'. */
static void test_sign_empty_body_sha_no_query(void **unused)
{
    (void)unused;
    void *st = ready(CUSTOM);
    struct pg_out_req r = out_req("DELETE", "/v1/domains/42", NULL);
    check_sign(st, &r, 1709827204, "1709827204",
               "bd15cfe8b4e4ea140a600f9be9392508dc96fde9a94767d5303c8027b244b65f");
    pt_drop(st);
}

/* A megabyte body is signed in place. */
static void test_sign_large_body(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    size_t n = 1u << 20;
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'x', n);
    struct pg_out_req r = out_req("PUT", "/v1/upload", NULL);
    r.body = body;
    r.body_len = n;
    check_sign(st, &r, 1709827205, "1709827205",
               "947ce65c0afc523933870d7af6d0db63adc44e65bbf1a6e89296e80dfa38bea9");
    free(body);
    pt_drop(st);
}

/* A secret longer than the SHA-256 block is hashed first (RFC 2104); openssl agrees. */
static void test_sign_long_secret(void **unused)
{
    (void)unused;
    char secret[101];
    memset(secret, 'k', 100);
    secret[100] = '\0';
    void *st = state(NULL);
    pt_set_secret(st, "api_secret", secret);
    pt_init_ok(st);
    struct pg_out_req r = out_req("GET", "/v1/me", NULL);
    check_sign(st, &r, 1709827206, "1709827206",
               "7dbcb31310264e5e17ddcb1586455d6f1995f853862fe88c31516554c787d7ee");
    pt_drop(st);
}

/* Signing twice (a re-sign with a fresh timestamp) gives a fresh signature each time, and the
 * shared keyed context is not consumed by the first request. */
static void test_sign_repeatable(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    for (int i = 0; i < 3; i++) {
        struct pg_out_req r = out_req("GET", "/api/external/v1/domains?page=1&limit=25", NULL);
        check_sign(st, &r, 1709827200, "1709827200",
                   "fae8a58fcd9bc90b1e66c76674073201b260801f38f3245f5e572e4391f79a6d");
    }
    struct pg_out_req r = out_req("GET", "/api/external/v1/domains?page=1&limit=25", NULL);
    assert_int_equal(OPS->sign(st, NULL, &r, 1709827260), 0);
    assert_string_equal(pt_header(&r, "X-Timestamp"), "1709827260");
    assert_string_not_equal(pt_header(&r, "X-Signature"),
                            "fae8a58fcd9bc90b1e66c76674073201b260801f38f3245f5e572e4391f79a6d");
    pt_drop(st);
}

/* Headers already added by someone else stay; scratch already used is not overwritten. */
static void test_sign_appends(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    struct pg_out_req r = out_req("GET", "/api/external/v1/domains?page=1&limit=25", NULL);
    r.hdr[0].name = "X-Other";
    r.hdr[0].value = "1";
    r.nhdr = 1;
    memcpy(r.scratch, "keep", 5);
    r.scratch_used = 5;
    assert_int_equal(OPS->sign(st, NULL, &r, 1709827200), 0);
    assert_int_equal(r.nhdr, 4);
    assert_string_equal(r.hdr[0].name, "X-Other");
    assert_string_equal(r.scratch, "keep");
    assert_string_equal(pt_header(&r, "X-Signature"),
                        "fae8a58fcd9bc90b1e66c76674073201b260801f38f3245f5e572e4391f79a6d");
    assert_true(pt_header(&r, "X-Timestamp") >= r.scratch + 5);
    pt_drop(st);
}

static void test_sign_no_room(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    struct pg_out_req r = out_req("GET", "/v1/me", NULL);
    r.nhdr = PG_OUT_MAX_HEADERS - 2; /* three are needed */
    assert_int_equal(OPS->sign(st, NULL, &r, 1709827200), -1);
    struct pg_out_req r2 = out_req("GET", "/v1/me", NULL);
    r2.scratch_used = sizeof r2.scratch - 70; /* 11 + 65 bytes are needed */
    assert_int_equal(OPS->sign(st, NULL, &r2, 1709827200), -1);
    assert_int_equal(r2.nhdr, 0);
    struct pg_out_req r3 = out_req("GET", "/v1/me", NULL);
    r3.scratch_used = sizeof r3.scratch - 76; /* exactly enough */
    assert_int_equal(OPS->sign(st, NULL, &r3, 1709827200), 0);
    assert_int_equal(r3.scratch_used, sizeof r3.scratch);
    pt_drop(st);
}

/* ---- init ---- */

static void expect_init_error(const char *tmpl, const char *needle)
{
    struct pg_err err = { 0 };
    void *st = state(tmpl);
    assert_int_equal(OPS->init(st, &err), -1);
    if (!strstr(err.msg, needle))
        fail_msg("init error '%s' does not mention '%s'", err.msg, needle);
    assert_null(strstr(err.msg, SECRET));
    pt_drop(st); /* a partly initialised state is freed cleanly (ASan, valgrind) */
}

static void test_init_bad_templates(void **unused)
{
    (void)unused;
    expect_init_error("{timestamp}{foo}{body}", "{foo}");
    expect_init_error("{Timestamp}{method}", "{Timestamp}");
    expect_init_error("{timestamp}{}", "{}");
    expect_init_error("{timestamp}{body_sha}", "{body_sha}");
    expect_init_error("{timestamp}{method", "unclosed '{' at '{method'");
    expect_init_error("{timestamp{method}", "unclosed '{' at '{timestamp{method}'");
    expect_init_error("{timestamp}}", "'}'");
    expect_init_error("", "empty");
}

static void test_init_missing_or_bad_key(void **unused)
{
    (void)unused;
    struct pg_err err = { 0 };
    void *st = pt_new();
    pt_set_secret(st, "api_key", API_KEY);
    assert_int_equal(OPS->init(st, &err), -1);
    assert_non_null(strstr(err.msg, "api_secret"));
    pt_drop(st);

    memset(&err, 0, sizeof err);
    st = state(NULL);
    pt_set_secret(st, "api_key", "pk_live\r\nX-Evil: 1");
    assert_int_equal(OPS->init(st, &err), -1);
    assert_non_null(strstr(err.msg, "api_key"));
    assert_null(strstr(err.msg, "pk_live"));
    pt_drop(st);
}

/* deinit copes with a state that never reached init, and with an empty one. */
static void test_deinit_uninitialised(void **unused)
{
    (void)unused;
    pt_drop(state(CUSTOM));
    void *st = pt_new();
    pt_drop(st);
}

/* ---- classify ---- */

static enum pg_verdict classify(int status, const char *body, struct pg_err *err)
{
    void *st = ready(NULL);
    enum pg_verdict v = pt_classify(st, status, body, err);
    pt_drop(st);
    return v;
}

static void test_classify_signature_and_timestamp_resign(void **unused)
{
    (void)unused;
    struct pg_err err;
    assert_int_equal(classify(401,
                              "{\"error\":\"Invalid signature\",\"code\":\"INVALID_SIGNATURE\","
                              "\"details\":\"HMAC mismatch\"}",
                              &err),
                     PG_VERDICT_RESIGN);
    assert_string_equal(err.upstream_code, "INVALID_SIGNATURE");
    assert_string_equal(err.upstream_message, "Invalid signature");
    assert_int_equal(classify(401, "{\"error\":\"Too old\",\"code\":\"TIMESTAMP_EXPIRED\"}", &err),
                     PG_VERDICT_RESIGN);
    assert_string_equal(err.upstream_code, "TIMESTAMP_EXPIRED");
    assert_int_equal(classify(403, "{\"code\":\"INVALID_TIMESTAMP\",\"error\":\"skew\"}", &err),
                     PG_VERDICT_RESIGN);
    /* case does not matter */
    assert_int_equal(classify(401, "{\"code\":\"invalid_signature\"}", &err), PG_VERDICT_RESIGN);
    /* the signature wins over a key mentioned in the same code */
    assert_int_equal(classify(401, "{\"code\":\"KEY_SIGNATURE_MISMATCH\"}", &err),
                     PG_VERDICT_RESIGN);
}

static void test_classify_key_and_other_401_fail(void **unused)
{
    (void)unused;
    struct pg_err err;
    assert_int_equal(
        classify(401, "{\"error\":\"Invalid API key\",\"code\":\"INVALID_API_KEY\"}", &err),
        PG_VERDICT_FAIL);
    assert_string_equal(err.upstream_code, "INVALID_API_KEY");
    assert_string_equal(err.upstream_message, "Invalid API key");
    assert_int_equal(classify(403, "{\"error\":\"revoked\",\"code\":\"API_KEY_REVOKED\"}", &err),
                     PG_VERDICT_FAIL);
    assert_int_equal(classify(401, "{\"error\":\"nope\",\"code\":\"UNAUTHORIZED\"}", &err),
                     PG_VERDICT_FAIL);
    assert_int_equal(classify(401, "<html>401</html>", &err), PG_VERDICT_FAIL);
    assert_string_equal(err.upstream_code, "");
    assert_int_equal(classify(401, NULL, &err), PG_VERDICT_FAIL);
    /* a signature word only in the message, not the code, is not a signature refusal */
    assert_int_equal(classify(401, "{\"error\":\"bad signature\",\"code\":\"DENIED\"}", &err),
                     PG_VERDICT_FAIL);
}

static void test_classify_other_answers_ok(void **unused)
{
    (void)unused;
    struct pg_err err;
    /* a scope refusal is the caller's problem, not the gateway's credentials */
    assert_int_equal(
        classify(403,
                 "{\"error\":\"Missing scope domains:write\",\"code\":"
                 "\"INSUFFICIENT_SCOPE\",\"details\":{\"required\":\"domains:write\"}}",
                 &err),
        PG_VERDICT_OK);
    assert_string_equal(err.upstream_code, "INSUFFICIENT_SCOPE");
    assert_string_equal(err.upstream_message, "Missing scope domains:write");
    assert_int_equal(classify(403, "forbidden", &err), PG_VERDICT_OK);
    assert_int_equal(classify(404, "{\"error\":\"Domain not found\",\"code\":\"NOT_FOUND\"}", &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_code, "NOT_FOUND");
    /* only 401 and 403 are auth answers */
    assert_int_equal(classify(400, "{\"code\":\"INVALID_SIGNATURE_FORMAT\"}", &err), PG_VERDICT_OK);
    assert_int_equal(classify(500, "{garbage", &err), PG_VERDICT_OK);
    assert_string_equal(err.upstream_code, "");
    assert_string_equal(err.upstream_message, "");
    /* a numeric code is kept as text */
    assert_int_equal(classify(409, "{\"code\":409,\"error\":\"exists\"}", &err), PG_VERDICT_OK);
    assert_string_equal(err.upstream_code, "409");
}

/* JSON escapes are decoded; long text is cut to the field at a UTF-8 character boundary. */
static void test_classify_text_decoding(void **unused)
{
    (void)unused;
    struct pg_err err;
    assert_int_equal(classify(422, "{\"error\":\"caf\\u00e9 \\\"x\\\" \\ud83d\\ude00\"}", &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "caf\xc3\xa9 \"x\" \xf0\x9f\x98\x80");

    char body[1200];
    size_t o = 0;
    memcpy(body, "{\"error\":\"", 10); /* 2-byte characters: byte 255 is mid-character */
    o = 10;
    for (int i = 0; i < 400; i++) {
        memcpy(body + o, "\xc3\xa9", 2);
        o += 2;
    }
    memcpy(body + o, "\",\"code\":\"", 10);
    o += 10;
    memset(body + o, 'C', 100);
    o += 100;
    memcpy(body + o, "\"}", 3);
    assert_int_equal(classify(400, body, &err), PG_VERDICT_OK);
    assert_int_equal(strlen(err.upstream_message), 254);
    assert_int_equal((unsigned char)err.upstream_message[253], 0xa9);
    assert_int_equal(strlen(err.upstream_code), 63);

    /* nesting is bounded: 31 levels inside the object are read, 32 make it unreadable */
    char deep[200];
    for (int levels = 31; levels <= 32; levels++) {
        int n = snprintf(deep, sizeof deep, "{\"details\":%.*s1%.*s,\"code\":\"C\"}", levels,
                         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", levels,
                         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
        assert_true(n > 0 && (size_t)n < sizeof deep);
        assert_int_equal(classify(400, deep, &err), PG_VERDICT_OK);
        assert_string_equal(err.upstream_code, levels == 31 ? "C" : "");
    }
}

/* ---- reserved ---- */

static void test_reserved_api_keys(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    static const struct {
        const char *method, *path;
        bool want;
    } cases[] = {
        { "POST", "/v1/api-keys", true },
        { "POST", "/v1/api-keys/", true },
        { "POST", "/v1/api-keys/42/regenerate", true },
        { "DELETE", "/v1/api-keys/42", true },
        { "PATCH", "/api-keys/42", true },
        { "POST", "/v1/API-Keys/42/regenerate", true },
        { "GET", "/v1/api-keys", false },
        { "HEAD", "/v1/api-keys", false },
        { "POST", "/v1/api-keys-x", false },
        { "POST", "/v1/my-api-keys", false },
        { "POST", "/v1/domains", false },
        { "DELETE", "/v1/domains/api-key", false },
        { "POST", "", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = OPS->reserved(st, cases[i].method, cases[i].path, strlen(cases[i].path));
        if (got != cases[i].want)
            fail_msg("%s %s: reserved %d", cases[i].method, cases[i].path, got);
    }
    /* only path_len bytes count */
    assert_false(OPS->reserved(st, "POST", "/v1/api-keys", 8));
    pt_drop(st);
}

/* The key pair is listed for redaction, and sign names the signature it made (in scratch). */
static void test_secrets(void **unused)
{
    (void)unused;
    void *st = ready(NULL);
    struct pg_span out[4];
    assert_int_equal(OPS->secrets(st, NULL, out, 4), 2);
    assert_memory_equal(out[0].p, API_KEY, strlen(API_KEY));
    assert_memory_equal(out[1].p, SECRET, strlen(SECRET));
    struct pg_out_req r = out_req("GET", "/api/external/v1/users", NULL);
    assert_int_equal(OPS->sign(st, NULL, &r, 1709827200), 0);
    assert_non_null(r.made_secret);
    assert_ptr_equal(r.made_secret, pt_header(&r, "X-Signature"));
    assert_int_equal(strlen(r.made_secret), 64);
    pt_drop(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_keys_table),
        cmocka_unit_test(test_sign_get_with_query_no_body),
        cmocka_unit_test(test_sign_post_json_body),
        cmocka_unit_test(test_sign_explicit_default_template),
        cmocka_unit_test(test_sign_body_uses_length),
        cmocka_unit_test(test_sign_custom_template),
        cmocka_unit_test(test_sign_empty_body),
        cmocka_unit_test(test_sign_empty_body_sha_no_query),
        cmocka_unit_test(test_sign_large_body),
        cmocka_unit_test(test_sign_long_secret),
        cmocka_unit_test(test_sign_repeatable),
        cmocka_unit_test(test_sign_appends),
        cmocka_unit_test(test_sign_no_room),
        cmocka_unit_test(test_init_bad_templates),
        cmocka_unit_test(test_init_missing_or_bad_key),
        cmocka_unit_test(test_deinit_uninitialised),
        cmocka_unit_test(test_classify_signature_and_timestamp_resign),
        cmocka_unit_test(test_classify_key_and_other_401_fail),
        cmocka_unit_test(test_classify_other_answers_ok),
        cmocka_unit_test(test_classify_text_decoding),
        cmocka_unit_test(test_reserved_api_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
