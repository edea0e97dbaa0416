/* test_navirec.c -- the navirec_token adapter through its ops table (SPEC section 1): config
 * checks, Authorization/User-Agent/Accept on each request, 401 handling, Link rewriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugins/plugin.h"

#define S(lit) lit, (sizeof lit - 1)
#define E_UPSTREAM_AUTH_FAILED 9 /* PG_E_UPSTREAM_AUTH_FAILED in gateway/envelope.h */
#define TOKEN "eyJhbGc.example.ssw5c"
#define VER "1.33.0"

static const struct pg_auth_ops *const ops = &pg_auth_navirec_token;

/* ---- state through the key table, as conf.c fills it ---- */

#define PT_OPS ops
#include "plugin_test.h"

static void *new_state(const char *token, const char *version)
{
    void *st = pt_new();
    if (token)
        pt_set_secret(st, "token", token);
    if (version)
        pt_set_string(st, "api_version", version);
    return st;
}

static void *make(void)
{
    void *st = new_state(TOKEN, VER);
    pt_init_ok(st);
    return st;
}

/* ---- ops table and config ---- */

static void test_ops_table(void **state)
{
    (void)state;
    assert_string_equal(ops->type, "navirec_token");
    assert_null(ops->build_login);
    assert_null(ops->parse_login);
    assert_null(ops->reserved);
    assert_null(ops->cred_param);
    assert_non_null(ops->sign);
    assert_non_null(ops->classify);
    assert_non_null(ops->rewrite_header);
    assert_true(pt_key("token", PG_CONF_SECRET)->flags & PG_REQUIRED);
    assert_true(pt_key("api_version", PG_CONF_STRING)->flags & PG_REQUIRED);
    size_t n = 0;
    for (const struct pg_conf_key *k = ops->keys; k->name; k++)
        n++;
    assert_int_equal(n, 2);
}

static void test_init_versions(void **state)
{
    (void)state;
    static const char *const good[] = { "1.33.0", "2", "10.0.12", "1.2.3.4" };
    static const char *const bad[] = { "",    "1..2",        ".1",   "1.",         "v1.33.0",
                                       "1,2", "1.33.0-beta", "1 .2", "1.2\r\nX: y" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        void *st = new_state(TOKEN, good[i]);
        struct pg_err err = { 0 };
        if (ops->init(st, &err))
            fail_msg("'%s' refused: %s", good[i], err.msg);
        pt_drop(st);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *st = new_state(TOKEN, bad[i]);
        struct pg_err err = { 0 };
        if (ops->init(st, &err) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(err.msg[0] != '\0');
        assert_null(strstr(err.msg, TOKEN));
        pt_drop(st);
    }
}

static void test_init_token(void **state)
{
    (void)state;
    static const char *const bad[] = { "abc def-Q7", "abc\r\nX-Evil: 1-Q7", "abc\tdef-Q7",
                                       "abc\x7f-Q7", "\xc3\xa9t-Q7" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *st = new_state(bad[i], VER);
        struct pg_err err = { 0 };
        if (ops->init(st, &err) != -1)
            fail_msg("token %zu accepted", i);
        assert_true(err.msg[0] != '\0');
        assert_null(strstr(err.msg, "-Q7"));
        pt_drop(st);
    }
    void *st = new_state(NULL, VER);
    struct pg_err err = { 0 };
    assert_int_equal(ops->init(st, &err), -1);
    pt_drop(st);
}

static void test_deinit_partial(void **state)
{
    (void)state;
    size_t before = pt_heap_in_use();
    pt_drop_checked(new_state(NULL, NULL), before);
    pt_drop_checked(new_state(TOKEN, NULL), before); /* init never ran */
    pt_drop_checked(new_state(NULL, VER), before);
    pt_drop_checked(new_state(TOKEN, VER), before);
    pt_drop_checked(make(), before); /* init ran: the Authorization and Accept it built */
}

/* ---- sign ---- */

static struct pg_out_req req_with_accept(const char *accept)
{
    struct pg_out_req r = { 0 };
    r.method = "GET";
    r.target = "/vehicles/";
    r.target_len = 10;
    r.accept = accept;
    r.accept_len = accept ? strlen(accept) : 0;
    return r;
}

/* The Accept sign() adds for this caller Accept; NULL when it adds none. */
static const char *signed_accept(void *st, struct pg_out_req *r)
{
    assert_int_equal(ops->sign(st, NULL, r, 1700000000), 0);
    assert_string_equal(pt_header(r, "Authorization"), "Token " TOKEN);
    assert_string_equal(pt_header(r, "User-Agent"), "panelgate");
    const char *a = pt_header(r, "Accept");
    assert_int_equal(r->nhdr, a ? 3 : 2);
    return a;
}

static void test_sign_no_accept(void **state)
{
    (void)state;
    void *st = make();
    struct pg_out_req r = req_with_accept(NULL);
    assert_string_equal(signed_accept(st, &r), "application/json; version=" VER);
    assert_null(r.add_query_name);
    pt_drop(st);
}

static void test_sign_accept_type_kept(void **state)
{
    (void)state;
    void *st = make();
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "application/x-ndjson", "application/x-ndjson; version=" VER },
        { "application/x-ndjson; q=0.9", "application/x-ndjson; version=" VER },
        { " text/csv , application/json", "text/csv; version=" VER },
        { "application/json", "application/json; version=" VER },
        { "*/*", "application/json; version=" VER },
        { "application/*", "application/json; version=" VER },
        { "*/json", "application/json; version=" VER },
        { "", "application/json; version=" VER },
        { "application", "application/json; version=" VER },
        { "application/", "application/json; version=" VER },
        { "/json", "application/json; version=" VER },
        { "text/html junk", "application/json; version=" VER },
        { "application/x-ndjson; versions=2", "application/x-ndjson; version=" VER },
        { "application/json; xversion=2", "application/json; version=" VER },
        { "application/json; foo=\"; version=2\"", "application/json; version=" VER },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pg_out_req r = req_with_accept(cases[i].in);
        const char *a = signed_accept(st, &r);
        if (!a || strcmp(a, cases[i].want) != 0)
            fail_msg("Accept '%s': got '%s', want '%s'", cases[i].in, a ? a : "(none)",
                     cases[i].want);
        assert_true(r.scratch_used <= sizeof r.scratch);
    }
    pt_drop(st);
}

static void test_sign_accept_caller_version(void **state)
{
    (void)state;
    void *st = make();
    static const char *const cases[] = {
        "application/json; version=1.2.0",
        "application/json;version=1.2.0",
        "application/x-ndjson; Version=1.0",
        "application/json ; version = 1",
        "text/html, application/json; q=0.9; version=\"1.33.0\"",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pg_out_req r = req_with_accept(cases[i]);
        const char *a = signed_accept(st, &r);
        if (a)
            fail_msg("Accept '%s' got '%s' added", cases[i], a);
    }
    pt_drop(st);
}

/* The caller's Accept is (p, n); the type composed in scratch stops at n. */
static void test_sign_accept_uses_length(void **state)
{
    (void)state;
    void *st = make();
    struct pg_out_req r = req_with_accept("application/x-ndjson; version=9");
    r.accept_len = strlen("application/x-ndjson");
    assert_string_equal(signed_accept(st, &r), "application/x-ndjson; version=" VER);
    pt_drop(st);
}

static void test_sign_bounds(void **state)
{
    (void)state;
    void *st = make();
    struct pg_out_req r = req_with_accept(NULL);
    r.nhdr = PG_OUT_MAX_HEADERS - 2; /* three are needed */
    assert_int_equal(ops->sign(st, NULL, &r, 0), -1);
    assert_int_equal(r.nhdr, PG_OUT_MAX_HEADERS - 2);
    r.nhdr = PG_OUT_MAX_HEADERS - 3;
    assert_int_equal(ops->sign(st, NULL, &r, 0), 0);
    assert_int_equal(r.nhdr, PG_OUT_MAX_HEADERS);

    static const char want[] = "application/x-ndjson; version=" VER;
    /* scratch nearly full: still versioned, falling back to JSON */
    r = req_with_accept("application/x-ndjson");
    r.scratch_used = sizeof r.scratch - 10;
    assert_string_equal(signed_accept(st, &r), "application/json; version=" VER);
    assert_int_equal(r.scratch_used, sizeof r.scratch - 10);
    /* one byte short, then exactly enough room */
    r = req_with_accept("application/x-ndjson");
    r.scratch_used = sizeof r.scratch - sizeof want + 1;
    assert_string_equal(signed_accept(st, &r), "application/json; version=" VER);
    assert_int_equal(r.scratch_used, sizeof r.scratch - sizeof want + 1);
    r = req_with_accept("application/x-ndjson");
    r.scratch_used = sizeof r.scratch - sizeof want;
    assert_string_equal(signed_accept(st, &r), want);
    assert_int_equal(r.scratch_used, sizeof r.scratch);

    /* a type longer than scratch */
    char longtype[700];
    memset(longtype, 'a', sizeof longtype - 1);
    longtype[sizeof longtype - 1] = '\0';
    longtype[5] = '/';
    r = req_with_accept(longtype);
    assert_string_equal(signed_accept(st, &r), "application/json; version=" VER);
    pt_drop(st);
}

/* ---- classify ---- */

static void test_classify_401(void **state)
{
    (void)state;
    void *st = make();
    struct pg_err err;
    assert_int_equal(pt_classify(st, 401, "{\"detail\": \"Invalid token.\"}", &err),
                     PG_VERDICT_FAIL);
    assert_int_equal(err.code, E_UPSTREAM_AUTH_FAILED);
    assert_string_equal(err.upstream_message, "Invalid token.");
    assert_string_equal(err.upstream_code, "");
    assert_true(err.msg[0] != '\0');
    assert_null(strstr(err.msg, TOKEN));

    assert_int_equal(pt_classify(st, 401,
                                 "{\"detail\": \"Authentication credentials were not provided.\", "
                                 "\"code\": \"not_authenticated\"}",
                                 &err),
                     PG_VERDICT_FAIL);
    assert_string_equal(err.upstream_code, "not_authenticated");
    assert_string_equal(err.upstream_message, "Authentication credentials were not provided.");

    assert_int_equal(pt_classify(st, 401, "<html>nope</html>", &err), PG_VERDICT_FAIL);
    assert_int_equal(err.code, E_UPSTREAM_AUTH_FAILED);
    assert_string_equal(err.upstream_message, "");
    assert_int_equal(pt_classify(st, 401, NULL, &err), PG_VERDICT_FAIL);
    assert_int_equal(pt_classify(st, 401, "{\"detail\": 3}", &err), PG_VERDICT_FAIL);
    assert_string_equal(err.upstream_message, "");
    pt_drop(st);
}

static void test_classify_not_auth(void **state)
{
    (void)state;
    void *st = make();
    struct pg_err err;
    static const int statuses[] = { 400, 402, 403, 404, 429, 500, 502 };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        assert_int_equal(pt_classify(st, statuses[i], "{\"detail\": \"x\"}", &err), PG_VERDICT_OK);
    assert_int_equal(pt_classify(st, 429,
                                 "{\"detail\": \"Request was throttled. Expected available in 3 "
                                 "seconds.\"}",
                                 &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_message,
                        "Request was throttled. Expected available in 3 seconds.");
    assert_int_equal(pt_classify(st, 400, "{\"name\": [\"This field is required.\"]}", &err),
                     PG_VERDICT_OK);
    assert_string_equal(err.upstream_message, "");
    assert_int_equal(pt_classify(st, 400, "{", &err), PG_VERDICT_OK);
    pt_drop(st);
}

/* ---- Link rewriting ---- */

#define NR "https://api.navirec.com"
#define PUB "http://127.0.0.1:8080/navirec"

/* Rewrite `in` for upstream/public; returns the rc, the output in out. */
static int rewrite(const char *name, const char *in, const char *up, const char *pub, char *out,
                   size_t cap)
{
    size_t n = (size_t)-1;
    memset(out, 0x5a, cap);
    int rc = ops->rewrite_header(NULL, name, strlen(name), in, strlen(in), up, pub, out, cap, &n);
    if (rc == 1) {
        assert_true(n < cap);
        assert_int_equal(out[n], '\0');
        assert_int_equal(strlen(out), n);
    }
    return rc;
}

static void expect(const char *in, const char *up, const char *pub, const char *want)
{
    char out[2048];
    int rc = rewrite("Link", in, up, pub, out, sizeof out);
    if (!want) {
        if (rc != 0)
            fail_msg("'%s' under %s was rewritten to '%s'", in, up, out);
        return;
    }
    if (rc != 1)
        fail_msg("'%s' under %s not rewritten (rc %d)", in, up, rc);
    if (strcmp(out, want) != 0)
        fail_msg("'%s' under %s:\n got '%s'\nwant '%s'", in, up, out, want);
}

static void test_link_single(void **state)
{
    (void)state;
    expect("<http://127.0.0.1:9105/vehicles/?cursor=cD0wMDQ3%3D&ordering=id>; rel=\"next\"",
           "http://127.0.0.1:9105", PUB,
           "<" PUB "/vehicles/?cursor=cD0wMDQ3%3D&ordering=id>; rel=\"next\"");
    expect("<" NR "/vehicles/?cursor=abc>; rel=\"next\"", NR, PUB,
           "<" PUB "/vehicles/?cursor=abc>; rel=\"next\"");
}

static void test_link_next_prev(void **state)
{
    (void)state;
    expect(" <" NR "/vehicles/?cursor=n1&ordering=id>; rel=\"next\", \t<" NR
           "/vehicles/?cursor=p1&ordering=id>; rel=\"prev\"",
           NR, PUB,
           " <" PUB "/vehicles/?cursor=n1&ordering=id>; rel=\"next\", \t<" PUB
           "/vehicles/?cursor=p1&ordering=id>; rel=\"prev\"");
    /* empty list elements are allowed (RFC 9110 #rule) and kept */
    expect(", <" NR "/a/>;rel=next,,<" NR "/b/>;rel=prev,", NR, PUB,
           ", <" PUB "/a/>;rel=next,,<" PUB "/b/>;rel=prev,");
}

static void test_link_quoted_params(void **state)
{
    (void)state;
    /* a comma, a semicolon, an escaped quote and a URI-looking text inside quoted strings */
    expect("<" NR "/a/>; title=\"x, <" NR "/b/>; y\"; rel=\"next\", <" NR
           "/c/>; title=\"q\\\", <" NR "/d/>\"; rel=prev",
           NR, PUB,
           "<" PUB "/a/>; title=\"x, <" NR "/b/>; y\"; rel=\"next\", <" PUB
           "/c/>; title=\"q\\\", <" NR "/d/>\"; rel=prev");
    /* commas and semicolons inside the URI itself */
    expect("<" NR "/t/?a=1,2;b=3>; rel=next", NR, PUB, "<" PUB "/t/?a=1,2;b=3>; rel=next");
}

static void test_link_foreign_left_alone(void **state)
{
    (void)state;
    expect("<https://evil.example/vehicles/>; rel=\"next\"", NR, PUB, NULL);
    expect("<https://docs.navirec.com/>; rel=\"help\", <" NR "/v/>; rel=\"next\"", NR, PUB,
           "<https://docs.navirec.com/>; rel=\"help\", <" PUB "/v/>; rel=\"next\"");
    /* host boundaries */
    expect("<https://api.navirec.com.evil.example/v/>; rel=next", NR, PUB, NULL);
    expect("<https://api.navirec.com:8443/v/>; rel=next", NR, PUB, NULL);
    expect("<https://api.navirec.com@evil.example/v/>; rel=next", NR, PUB, NULL);
    /* scheme mismatch */
    expect("<http://api.navirec.com/v/>; rel=next", NR, PUB, NULL);
    expect("<https://127.0.0.1:9105/v/>; rel=next", "http://127.0.0.1:9105", PUB, NULL);
    /* relative references the caller resolves correctly already */
    expect("<?cursor=2>; rel=next", NR, PUB, NULL);
    expect("<page2>; rel=next", NR, PUB, NULL);
    expect("<//evil.example/v/>; rel=next", NR, PUB, NULL);
}

static void test_link_case(void **state)
{
    (void)state;
    /* scheme and host compare without case; the path does not */
    expect("<HTTPS://API.Navirec.COM/v/>; rel=next", NR, PUB, "<" PUB "/v/>; rel=next");
    expect("<https://h/API/v/>; rel=next", "https://h/api", PUB, NULL);
}

static void test_link_upstream_path(void **state)
{
    (void)state;
    const char *up = "https://h/api";
    expect("<https://h/api/vehicles/>; rel=next", up, PUB, "<" PUB "/vehicles/>; rel=next");
    expect("<https://h/api>; rel=up", up, PUB, "<" PUB ">; rel=up");
    expect("<https://h/api?page=2>; rel=next", up, PUB, "<" PUB "?page=2>; rel=next");
    expect("<https://h/api#frag>; rel=next", up, PUB, "<" PUB "#frag>; rel=next");
    expect("<https://h/apix/vehicles/>; rel=next", up, PUB, NULL);
    expect("<https://h/ap>; rel=next", up, PUB, NULL);
    expect("<https://h/other/api/vehicles/>; rel=next", up, PUB, NULL);
    /* trailing '/' on either base changes nothing */
    expect("<https://h/api/vehicles/>; rel=next", "https://h/api/", PUB "/",
           "<" PUB "/vehicles/>; rel=next");
    /* absolute-path references would resolve against the gateway's root */
    expect("</api/vehicles/?cursor=x>; rel=next", up, PUB,
           "<" PUB "/vehicles/?cursor=x>; rel=next");
    expect("</apix/vehicles/>; rel=next", up, PUB, NULL);
    expect("</vehicles/?cursor=x>; rel=next", NR, PUB, "<" PUB "/vehicles/?cursor=x>; rel=next");
}

static void test_link_header_name(void **state)
{
    (void)state;
    static const char in[] = "<" NR "/v/>; rel=next";
    static const char want[] = "<" PUB "/v/>; rel=next";
    char out[256];
    assert_int_equal(rewrite("link", in, NR, PUB, out, sizeof out), 1);
    assert_string_equal(out, want);
    assert_int_equal(rewrite("LINK", in, NR, PUB, out, sizeof out), 1);
    assert_string_equal(out, want);
    assert_int_equal(rewrite("Location", in, NR, PUB, out, sizeof out), 0);
    assert_int_equal(rewrite("Links", in, NR, PUB, out, sizeof out), 0);
    assert_int_equal(rewrite("Lin", in, NR, PUB, out, sizeof out), 0);
    /* name is (p, n) */
    size_t n = 0;
    assert_int_equal(ops->rewrite_header(NULL, S("Linkx") - 1, S(in), NR, PUB, out, sizeof out, &n),
                     1);
    assert_int_equal(n, sizeof want - 1);
}

static void test_link_malformed(void **state)
{
    (void)state;
    expect("", NR, PUB, NULL);
    expect("   ", NR, PUB, NULL);
    expect(NR "/v/; rel=next", NR, PUB, NULL);                            /* no <> */
    expect("<" NR "/v/; rel=next", NR, PUB, NULL);                        /* no '>' */
    expect("<" NR "/v/>; rel=\"next, <" NR "/w/>; rel=x", NR, PUB, NULL); /* open quote */
    expect("<" NR "/v/>; rel=\"next\\\"", NR, PUB, NULL);                 /* escaped close */
    expect("<" NR "/v/>; rel=next, junk", NR, PUB, NULL);
}

static void test_link_bounds(void **state)
{
    (void)state;
    static const char in[] = "<" NR "/v/>; rel=next";
    static const char want[] = "<" PUB "/v/>; rel=next";
    char out[256];
    assert_int_equal(rewrite("Link", in, NR, PUB, out, 1), 0);
    assert_int_equal((unsigned char)out[0], 0x5a); /* nothing written that counts */
    assert_int_equal(rewrite("Link", in, NR, PUB, out, sizeof want - 1), 0); /* no room for NUL */
    assert_int_equal(rewrite("Link", in, NR, PUB, out, sizeof want), 1);
    assert_string_equal(out, want);

    /* value is (p, n): only the first link counts */
    static const char two[] = "<" NR "/v/>; rel=next, <" NR "/w/>; rel=prev";
    size_t n = 0;
    assert_int_equal(
        ops->rewrite_header(NULL, S("Link"), two, sizeof in - 1, NR, PUB, out, sizeof out, &n), 1);
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_table),
        cmocka_unit_test(test_init_versions),
        cmocka_unit_test(test_init_token),
        cmocka_unit_test(test_deinit_partial),
        cmocka_unit_test(test_sign_no_accept),
        cmocka_unit_test(test_sign_accept_type_kept),
        cmocka_unit_test(test_sign_accept_caller_version),
        cmocka_unit_test(test_sign_accept_uses_length),
        cmocka_unit_test(test_sign_bounds),
        cmocka_unit_test(test_classify_401),
        cmocka_unit_test(test_classify_not_auth),
        cmocka_unit_test(test_link_single),
        cmocka_unit_test(test_link_next_prev),
        cmocka_unit_test(test_link_quoted_params),
        cmocka_unit_test(test_link_foreign_left_alone),
        cmocka_unit_test(test_link_case),
        cmocka_unit_test(test_link_upstream_path),
        cmocka_unit_test(test_link_header_name),
        cmocka_unit_test(test_link_malformed),
        cmocka_unit_test(test_link_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
