/* test_query.c -- query-string parameters: the Navixy hash injected into a query that already
 * has parameters, caller-supplied credentials stripped, form bodies searched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/query.h"

static void strip_case(const char *in, const char *want)
{
    char out[256];
    size_t n = pg_query_strip(in, strlen(in), "hash", out);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

static void strip(void **state)
{
    (void)state;
    strip_case("hash=0123456789abcdef0123456789abcdef", "");
    strip_case("hash=x&a=1", "a=1");
    strip_case("a=1&hash=x&b=2", "a=1&b=2");
    strip_case("a=1&hash=x", "a=1");
    strip_case("h%61sh=x&a=1", "a=1");      /* encoded names are the same parameter */
    strip_case("HASH=x&a=1", "HASH=x&a=1"); /* names are case-sensitive */
    strip_case("hashx=1&xhash=2", "hashx=1&xhash=2");
    strip_case("hash&a=1", "a=1"); /* no '=' */
    strip_case("a=1&&b=2&", "a=1&b=2");
    strip_case("hash=1&hash=2&hash=3", "");
    strip_case("a=hash", "a=hash"); /* a value, not a name */
    strip_case("", "");
}

static void add_case(const char *url, bool has_query, const char *value, const char *want)
{
    char buf[512];
    size_t n = strlen(url);
    memcpy(buf, url, n + 1);
    assert_true(n + pg_query_add_room("hash", value) <= sizeof buf);
    size_t w = pg_query_add(buf + n, has_query, "hash", value);
    assert_int_equal(w, strlen(want) - n);
    assert_string_equal(buf, want);
}

static void add(void **state)
{
    (void)state;
    add_case("http://h/panel/dealer/list", false, "0123456789abcdef0123456789abcdef",
             "http://h/panel/dealer/list?hash=0123456789abcdef0123456789abcdef");
    /* a query that already has parameters keeps them, in order */
    add_case("http://h/panel/dealer/list?limit=10&offset=5", true, "abc",
             "http://h/panel/dealer/list?limit=10&offset=5&hash=abc");
    /* values are percent-encoded but for unreserved characters */
    add_case("http://h/p?x=1", true, "a b&c=d/é~._-",
             "http://h/p?x=1&hash=a%20b%26c%3Dd%2F%C3%A9~._-");
    assert_int_equal(pg_query_add_room("hash", "ab"), 4 + 6 + 3);
}

static void has(void **state)
{
    (void)state;
    const char *form = "login=u&h%61sh=x&password=p";
    assert_true(pg_query_has(form, strlen(form), "hash"));
    assert_true(pg_query_has("hash", 4, "hash"));
    assert_false(pg_query_has("hashes=1&a=hash", 15, "hash"));
    assert_false(pg_query_has("", 0, "hash"));
    assert_true(pg_query_name_is("h%61%73h", 8, "hash"));
    assert_false(pg_query_name_is("h%6", 3, "hash"));
    assert_false(pg_query_name_is("has", 3, "hash"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strip),
        cmocka_unit_test(add),
        cmocka_unit_test(has),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
