/* test_rstore.c -- the take script's replies as redis sends them, and ones it never sends
 * (another server, a corrupted script, a hostile proxy in between): a wrong type, a short or
 * long array, negative or impossible numbers are refused, never read past. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/rstore.h"

static redisReply ints[16], *elems[16];

/* An array reply of n integers v[0..n). */
static redisReply array(const long long *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&ints[i], 0, sizeof ints[i]);
        ints[i].type = REDIS_REPLY_INTEGER;
        ints[i].integer = v[i];
        elems[i] = &ints[i];
    }
    redisReply r = { .type = REDIS_REPLY_ARRAY, .elements = n, .element = elems };
    return r;
}

static void good_replies(void **state)
{
    (void)state;
    struct pg_rtake t;
    /* taken 3, one bucket: level 40000, cap 300000, rate 1, period 60000 */
    redisReply r = array((const long long[]){ 3, 0, 40000, 300000, 1, 60000 }, 6);
    assert_int_equal(pg_rstore_parse_take(&r, 1, 3, 777, &t), 0);
    assert_int_equal(t.taken, 3);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.b[0].level, 40000);
    assert_int_equal(t.b[0].last_ms, 777);
    /* a cool-down: two numbers only */
    r = array((const long long[]){ 0, 2500 }, 2);
    assert_int_equal(pg_rstore_parse_take(&r, 2, 1, 1, &t), 0);
    assert_int_equal(t.cooldown_ms, 2500);
    assert_int_equal(t.taken, 0);
}

static void bad_replies(void **state)
{
    (void)state;
    struct pg_rtake t;
    redisReply r;
    assert_int_equal(pg_rstore_parse_take(NULL, 1, 1, 0, &t), -1);
    r = (redisReply){ .type = REDIS_REPLY_STRING, .str = "OK", .len = 2 };
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    /* more taken than asked for: a lease without a limit */
    r = array((const long long[]){ 4, 0, 40000, 300000, 1, 60000 }, 6);
    assert_int_equal(pg_rstore_parse_take(&r, 1, 3, 777, &t), -1);
    r = array((const long long[]){ 1 }, 1); /* short */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 1, 0, 5, 10, 1 }, 5); /* a bucket cut short */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 1, 0, 5, 10, 1, 1, 7 }, 7); /* one number too many */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 1, 0, -5, 10, 1, 1 }, 6); /* negative level */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 1, 0, 11, 10, 1, 1 }, 6); /* level above the cap */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 1, 0, 5, 10, 0, 1 }, 6); /* rate 0 */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 1, 0, 5, 10, 1, 0 }, 6); /* period 0 */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 1, 500 }, 2); /* a cool-down cannot come with a take */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    r = array((const long long[]){ 0, 500, 1, 1, 1, 1 }, 6); /* nor with buckets */
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
    /* an element of the wrong type */
    r = array((const long long[]){ 1, 0, 5, 10, 1, 1 }, 6);
    ints[3].type = REDIS_REPLY_STRING;
    assert_int_equal(pg_rstore_parse_take(&r, 1, 1, 0, &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_replies),
        cmocka_unit_test(bad_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
