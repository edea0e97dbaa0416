/* test_hdr.c -- which headers cross the gateway: hop-by-hop (RFC 9110 7.6.1), Connection-listed
 * names, headers the gateway sets or strips (SPEC sections 1-2), value and X-Request-Id checks,
 * Retry-After parsing (delta-seconds and HTTP-date) for panel cool-downs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/hdr.h"

#define S(lit) lit, (sizeof lit - 1)

static bool is_hop(const char *s)
{
    return pg_hdr_is_hop(s, strlen(s));
}

static bool req_drop(const char *s)
{
    return pg_hdr_req_drop(s, strlen(s));
}

static bool resp_drop(const char *s)
{
    return pg_hdr_resp_drop(s, strlen(s));
}

static bool lists(const char *v, const char *name)
{
    return pg_hdr_conn_lists(v, strlen(v), name, strlen(name));
}

static bool rid_ok(const char *s)
{
    return pg_hdr_request_id_ok(s, strlen(s));
}

static const char *const hop_names[] = {
    "Connection", "Keep-Alive",          "Proxy-Connection",   "TE", "Trailer", "Transfer-Encoding",
    "Upgrade",    "Proxy-Authorization", "Proxy-Authenticate", NULL,
};

/* ---- pg_hdr_is_hop ---- */

static void test_hop_list(void **state)
{
    (void)state;
    for (size_t i = 0; hop_names[i]; i++)
        if (!is_hop(hop_names[i]))
            fail_msg("%s should be hop-by-hop", hop_names[i]);
}

static void test_hop_case_insensitive(void **state)
{
    (void)state;
    assert_true(is_hop("connection"));
    assert_true(is_hop("CONNECTION"));
    assert_true(is_hop("keep-alive"));
    assert_true(is_hop("KEEP-ALIVE"));
    assert_true(is_hop("te"));
    assert_true(is_hop("Te"));
    assert_true(is_hop("transfer-encoding"));
    assert_true(is_hop("TRANSFER-ENCODING"));
    assert_true(is_hop("uPgRaDe"));
    assert_true(is_hop("proxy-authorization"));
}

static void test_hop_not_hop(void **state)
{
    (void)state;
    assert_false(is_hop("Content-Type"));
    assert_false(is_hop("Content-Length"));
    assert_false(is_hop("Authorization"));
    assert_false(is_hop("Host"));
    assert_false(is_hop("Accept"));
    assert_false(is_hop("Trailers"));       /* not "Trailer" */
    assert_false(is_hop("T"));              /* prefix of "TE" */
    assert_false(is_hop("TE2"));            /* "TE" is a prefix of it */
    assert_false(is_hop("Connectio"));      /* prefix of Connection */
    assert_false(is_hop("Connection-Foo")); /* Connection is a prefix of it */
    assert_false(is_hop("Keep-Alive "));
    assert_false(is_hop(""));
}

static void test_hop_uses_length(void **state)
{
    (void)state;
    assert_true(pg_hdr_is_hop("Connection: close", 10));
    assert_true(pg_hdr_is_hop("TEx", 2));
    assert_false(pg_hdr_is_hop("TE", 1));
}

/* ---- pg_hdr_conn_lists ---- */

static void test_conn_lists_tokens(void **state)
{
    (void)state;
    assert_true(lists("keep-alive, X-Foo", "Keep-Alive"));
    assert_true(lists("keep-alive, X-Foo", "X-Foo"));
    assert_true(lists("keep-alive, X-Foo", "x-foo"));
    assert_true(lists("keep-alive, X-Foo", "X-FOO"));
    assert_false(lists("keep-alive, X-Foo", "X-Bar"));
    assert_false(lists("keep-alive, X-Foo", "Content-Type"));
    assert_true(lists("close", "close"));
    assert_false(lists("close", "Connection"));
}

static void test_conn_lists_spacing(void **state)
{
    (void)state;
    assert_true(lists("keep-alive,X-Foo", "X-Foo"));
    assert_true(lists("keep-alive ,X-Foo", "keep-alive"));
    assert_true(lists("keep-alive  ,   X-Foo   ", "X-Foo"));
    assert_true(lists("  keep-alive,X-Foo", "keep-alive"));
    assert_true(lists("keep-alive,\tX-Foo\t", "X-Foo"));
    assert_true(lists("X-Foo", "X-Foo"));
    assert_true(lists(" X-Foo ", "X-Foo"));
    assert_true(lists(",,X-Foo,,", "X-Foo"));
    assert_true(lists("a, b, c, X-Foo", "X-Foo"));
}

static void test_conn_lists_prefix_no_match(void **state)
{
    (void)state;
    /* a name that is a prefix of a listed token, or has a listed token as its prefix */
    assert_false(lists("keep-alive, X-Foo", "X-Fo"));
    assert_false(lists("keep-alive, X-Foo", "X"));
    assert_false(lists("keep-alive, X-Foo", "keep"));
    assert_false(lists("keep-alive, X-Foo", "X-Foobar"));
    assert_false(lists("keep-alive, X-Foo", "keep-alive, X-Foo"));
    assert_false(lists("X-Foobar", "X-Foo"));
    assert_false(lists("X-Foo-Bar, keep-alive", "X-Foo"));
    assert_false(lists("X-Fo o", "X-Fo"));
}

static void test_conn_lists_empty(void **state)
{
    (void)state;
    assert_false(lists("", "X-Foo"));
    assert_false(lists("   ", "X-Foo"));
    assert_false(lists(",", "X-Foo"));
}

static void test_conn_lists_uses_length(void **state)
{
    (void)state;
    const char v[] = "keep-alive, X-Foo, X-Bar";
    assert_false(pg_hdr_conn_lists(v, strlen("keep-alive, X-Foo"), S("X-Bar")));
    assert_true(pg_hdr_conn_lists(v, strlen("keep-alive, X-Foo"), S("X-Foo")));
    /* the value cut inside a token: "keep-alive, X-F" does not list X-Foo */
    assert_false(pg_hdr_conn_lists(v, strlen("keep-alive, X-F"), S("X-Foo")));
    assert_true(pg_hdr_conn_lists(v, strlen(v), "X-Barbaz", 5));
}

/* ---- pg_hdr_req_drop ---- */

static void test_req_drop(void **state)
{
    (void)state;
    static const char *const drop[] = {
        "Authorization",
        "authorization",
        "Host",
        "HOST",
        "X-API-Key",
        "x-api-key",
        "X-Signature",
        "X-Timestamp",
        "X-Forwarded-For",
        "x-forwarded-for",
        "X-Forwarded-Proto",
        "X-Request-Id",
        "X-REQUEST-ID",
        "Content-Length",
        "content-length",
        "Expect",
        NULL,
    };
    for (size_t i = 0; drop[i]; i++)
        if (!req_drop(drop[i]))
            fail_msg("request header %s must be dropped", drop[i]);
    for (size_t i = 0; hop_names[i]; i++)
        if (!req_drop(hop_names[i]))
            fail_msg("hop-by-hop request header %s must be dropped", hop_names[i]);
}

static void test_req_keep(void **state)
{
    (void)state;
    static const char *const keep[] = {
        "Accept",          "Content-Type", "X-Custom",        "User-Agent",
        "Accept-Encoding", "Cookie",       "If-None-Match",   "Range",
        "X-Api",           "X-API-Keys",   "X-Forwarded",     "X-Request",
        "Authorizatio",    "Hostname",     "Content-Lengths", NULL,
    };
    for (size_t i = 0; keep[i]; i++)
        if (req_drop(keep[i]))
            fail_msg("request header %s must be kept", keep[i]);
}

static void test_req_drop_uses_length(void **state)
{
    (void)state;
    assert_true(pg_hdr_req_drop("Hostile", 4));
    assert_false(pg_hdr_req_drop("Host", 3));
}

/* ---- pg_hdr_resp_drop ---- */

static void test_resp_drop(void **state)
{
    (void)state;
    for (size_t i = 0; hop_names[i]; i++)
        if (!resp_drop(hop_names[i]))
            fail_msg("hop-by-hop response header %s must be dropped", hop_names[i]);
    assert_true(resp_drop("Content-Length"));
    assert_true(resp_drop("CONTENT-LENGTH"));
    assert_true(resp_drop("X-Request-Id"));
    assert_true(resp_drop("x-request-id"));
    /* SPEC 1: a panel's cookies are the gateway's session, never a caller's */
    assert_true(resp_drop("Set-Cookie"));
    assert_true(resp_drop("set-cookie"));
    assert_true(resp_drop("Set-Cookie2"));
}

static void test_resp_keep(void **state)
{
    (void)state;
    static const char *const keep[] = {
        "Content-Type",
        "Link",
        "Retry-After",
        "ETag",
        "Set-Cookies",
        "Cache-Control",
        "Content-Encoding",
        "WWW-Authenticate",
        "X-Custom",
        "Location",
        "Date",
        NULL,
    };
    for (size_t i = 0; keep[i]; i++)
        if (resp_drop(keep[i]))
            fail_msg("response header %s must be kept", keep[i]);
}

/* ---- pg_hdr_value_ok ---- */

static void test_value_ok(void **state)
{
    (void)state;
    assert_true(pg_hdr_value_ok(S("application/json; version=2.0")));
    assert_true(pg_hdr_value_ok(S("a\tb c")));
    assert_true(pg_hdr_value_ok(S("")));
    assert_true(pg_hdr_value_ok(S("caf\xc3\xa9")));
    assert_false(pg_hdr_value_ok(S("abc\rdef")));
    assert_false(pg_hdr_value_ok(S("abc\ndef")));
    assert_false(pg_hdr_value_ok(S("abc\r\nX-Evil: 1")));
    assert_false(pg_hdr_value_ok(S("abc\0def")));
    assert_false(pg_hdr_value_ok(S("\0")));
    assert_false(pg_hdr_value_ok(S("\r")));
    assert_false(pg_hdr_value_ok(S("abc\n")));
}

static void test_value_ok_uses_length(void **state)
{
    (void)state;
    const char v[] = "clean\r\nX-Evil: 1";
    assert_true(pg_hdr_value_ok(v, 5));
    assert_false(pg_hdr_value_ok(v, 6));
    assert_false(pg_hdr_value_ok(v, sizeof v - 1));
    const char z[] = "ab\0cd";
    assert_true(pg_hdr_value_ok(z, 2));
    assert_false(pg_hdr_value_ok(z, 5));
}

/* ---- pg_hdr_request_id_ok ---- */

static void test_request_id_lengths(void **state)
{
    (void)state;
    char buf[200];
    memset(buf, 'a', sizeof buf);
    assert_false(pg_hdr_request_id_ok(buf, 0));
    assert_true(pg_hdr_request_id_ok(buf, 1));
    assert_true(pg_hdr_request_id_ok(buf, 127));
    assert_true(pg_hdr_request_id_ok(buf, 128));
    assert_false(pg_hdr_request_id_ok(buf, 129));
    assert_false(pg_hdr_request_id_ok(buf, 200));
}

static void test_request_id_chars(void **state)
{
    (void)state;
    assert_true(rid_ok("01JD3Z8Q4WJ8V6M2B5N7K9T1XC"));
    assert_true(rid_ok("abc-DEF_012.xyz:9"));
    assert_true(rid_ok("550e8400-e29b-41d4-a716-446655440000"));
    assert_true(rid_ok("-"));
    assert_true(rid_ok(":"));
    assert_false(rid_ok("a b"));
    assert_false(rid_ok(" ab"));
    assert_false(rid_ok("ab "));
    assert_false(rid_ok("a/b"));
    assert_false(rid_ok("a\"b"));
    assert_false(rid_ok("a\\b"));
    assert_false(rid_ok("a,b"));
    assert_false(rid_ok("a;b"));
    assert_false(rid_ok("a=b"));
    assert_false(rid_ok("a+b"));
    assert_false(rid_ok("a\tb"));
    assert_false(rid_ok("a\rb"));
    assert_false(rid_ok("a\nb"));
    assert_false(rid_ok("caf\xc3\xa9"));
    assert_false(rid_ok("a\x7f"));
    assert_false(pg_hdr_request_id_ok(S("ab\0cd")));
}

static void test_request_id_bad_char_at_each_end(void **state)
{
    (void)state;
    char buf[128];
    memset(buf, 'Z', sizeof buf);
    buf[0] = '/';
    assert_false(pg_hdr_request_id_ok(buf, 128));
    buf[0] = 'Z';
    buf[127] = '"';
    assert_false(pg_hdr_request_id_ok(buf, 128));
    buf[127] = 'Z';
    assert_true(pg_hdr_request_id_ok(buf, 128));
}

/* ---- pg_parse_retry_after (panel cool-downs) ---- */

/* 2026-11-25T12:00:00Z */
#define RA_NOW 1795608000LL

static int retry_after(const char *v, uint64_t *out)
{
    return pg_parse_retry_after(v, strlen(v), RA_NOW, out);
}

static void test_retry_after_delta_seconds(void **state)
{
    uint64_t s = 99;
    (void)state;
    assert_int_equal(retry_after("2", &s), 0);
    assert_int_equal(s, 2);
    assert_int_equal(retry_after("  120 ", &s), 0);
    assert_int_equal(s, 120);
    assert_int_equal(retry_after("0", &s), 0);
    assert_int_equal(s, 0);
}

static void test_retry_after_http_dates(void **state)
{
    uint64_t s = 99;
    (void)state;
    assert_int_equal(retry_after("Wed, 25 Nov 2026 12:00:30 GMT", &s), 0);
    assert_int_equal(s, 30);
    assert_int_equal(retry_after("Wed, 25 Nov 2026 13:00:00 GMT", &s), 0);
    assert_int_equal(s, 3600);
    /* a date in the past: no wait */
    assert_int_equal(retry_after("Tue, 24 Nov 2026 12:00:00 GMT", &s), 0);
    assert_int_equal(s, 0);
}

static void test_retry_after_garbage(void **state)
{
    uint64_t s = 7;
    (void)state;
    const char *bad[] = { "",
                          "   ",
                          "-1",
                          "1.5",
                          "2s",
                          "soon",
                          "99999999999999999999999",
                          "Wed, 25 Nov 2026 12:00:30",
                          "Wed, 25 Nov 2026 12:00:30 GMT trailing",
                          "Wed, 32 Nov 2026 12:00:30 GMT",
                          "Wed, 25 Foo 2026 12:00:30 GMT",
                          "2026-11-25T12:00:30Z" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(retry_after(bad[i], &s), -1);
        assert_int_equal(s, 7); /* untouched */
    }
    char big[200];
    memset(big, '1', sizeof big);
    assert_int_equal(pg_parse_retry_after(big, sizeof big, RA_NOW, &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hop_list),
        cmocka_unit_test(test_hop_case_insensitive),
        cmocka_unit_test(test_hop_not_hop),
        cmocka_unit_test(test_hop_uses_length),
        cmocka_unit_test(test_conn_lists_tokens),
        cmocka_unit_test(test_conn_lists_spacing),
        cmocka_unit_test(test_conn_lists_prefix_no_match),
        cmocka_unit_test(test_conn_lists_empty),
        cmocka_unit_test(test_conn_lists_uses_length),
        cmocka_unit_test(test_req_drop),
        cmocka_unit_test(test_req_keep),
        cmocka_unit_test(test_req_drop_uses_length),
        cmocka_unit_test(test_resp_drop),
        cmocka_unit_test(test_resp_keep),
        cmocka_unit_test(test_value_ok),
        cmocka_unit_test(test_value_ok_uses_length),
        cmocka_unit_test(test_request_id_lengths),
        cmocka_unit_test(test_request_id_chars),
        cmocka_unit_test(test_request_id_bad_char_at_each_end),
        cmocka_unit_test(test_retry_after_delta_seconds),
        cmocka_unit_test(test_retry_after_http_dates),
        cmocka_unit_test(test_retry_after_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
