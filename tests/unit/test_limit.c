/* test_limit.c -- Retry-After parsing (delta-seconds and HTTP-date) for panel cool-downs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/limit.h"

/* 2026-11-25T12:00:00Z */
#define NOW 1795608000LL

static int parse(const char *v, uint64_t *out)
{
    return pg_parse_retry_after(v, strlen(v), NOW, out);
}

static void delta_seconds(void **state)
{
    uint64_t s = 99;
    (void)state;
    assert_int_equal(parse("2", &s), 0);
    assert_int_equal(s, 2);
    assert_int_equal(parse("  120 ", &s), 0);
    assert_int_equal(s, 120);
    assert_int_equal(parse("0", &s), 0);
    assert_int_equal(s, 0);
}

static void http_dates(void **state)
{
    uint64_t s = 99;
    (void)state;
    assert_int_equal(parse("Wed, 25 Nov 2026 12:00:30 GMT", &s), 0);
    assert_int_equal(s, 30);
    assert_int_equal(parse("Wed, 25 Nov 2026 13:00:00 GMT", &s), 0);
    assert_int_equal(s, 3600);
    /* a date in the past: no wait */
    assert_int_equal(parse("Tue, 24 Nov 2026 12:00:00 GMT", &s), 0);
    assert_int_equal(s, 0);
}

static void garbage(void **state)
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
        assert_int_equal(parse(bad[i], &s), -1);
        assert_int_equal(s, 7); /* untouched */
    }
    char big[200];
    memset(big, '1', sizeof big);
    assert_int_equal(pg_parse_retry_after(big, sizeof big, NOW, &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(delta_seconds),
        cmocka_unit_test(http_dates),
        cmocka_unit_test(garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
