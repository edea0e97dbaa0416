/* test_bucket.c -- token buckets (SPEC section 4) on an injected clock: exact refill, burst cap,
 * fractional tokens, overflow and backwards clocks, all-or-nothing takes, header arithmetic
 * (Retry-After, RateLimit-Reset, w=), the tightest bucket, and the local bucket store. Expected
 * numbers are worked out by hand in the comments, not with the code under test. */
#include <setjmp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/bucket.h"

#define SEC 1000ull
#define MIN 60000ull
#define HOUR 3600000ull
#define YEAR_MS (365ull * 24 * HOUR)

static struct pg_rate_limit rl(uint64_t n, uint64_t period_ms, uint64_t burst)
{
    return (struct pg_rate_limit){
        .set = true, .rate_n = n, .rate_period_ms = period_ms, .burst = burst
    };
}

static struct pg_bucket mk(uint64_t n, uint64_t period_ms, uint64_t burst, uint64_t now)
{
    struct pg_bucket b;
    struct pg_rate_limit r = rl(n, period_ms, burst);
    assert_int_equal(pg_bucket_init(&b, &r, now), 0);
    return b;
}

static int take1(struct pg_bucket *b, uint64_t now, uint64_t *wait)
{
    return pg_bucket_take_all(&b, 1, now, wait);
}

static void take_ok(struct pg_bucket *b, uint64_t now)
{
    uint64_t w = 12345;
    assert_int_equal(take1(b, now, &w), 0);
    assert_int_equal(w, 0);
}

/* k tokens out at now */
static void take_n(struct pg_bucket *b, uint64_t now, uint64_t k)
{
    for (uint64_t i = 0; i < k; i++)
        take_ok(b, now);
}

/* ---- init ---- */

static void test_init_full(void **state)
{
    (void)state;
    struct pg_bucket b = mk(120, MIN, 20, 5000);
    assert_int_equal(b.level, 20 * MIN); /* 20 tokens of 60000 units */
    assert_int_equal(b.cap, 20 * MIN);
    assert_int_equal(b.last_ms, 5000);
    assert_int_equal(pg_bucket_remaining(&b, 5000), 20);
    assert_int_equal(pg_bucket_burst(&b), 20);
    assert_int_equal(pg_bucket_wait_ms(&b, 5000), 0);
    assert_int_equal(pg_bucket_retry_s(&b, 5000), 0);
    assert_int_equal(pg_bucket_reset_s(&b, 5000), 0);
}

static void test_init_rejects_bad_rates(void **state)
{
    (void)state;
    struct pg_rate_limit bad[] = {
        { .set = false, .rate_n = 1, .rate_period_ms = SEC, .burst = 1 },
        rl(0, SEC, 1),
        rl(1, 0, 1),
        rl(1, SEC, 0),
        rl(PG_BUCKET_MAX_RATE + 1, SEC, 1),
        rl(1, PG_BUCKET_MAX_PERIOD_MS + 1, 1),
        rl(1, SEC, PG_BUCKET_MAX_BURST + 1),
    };
    struct pg_bucket b, before;
    memset(&b, 0xab, sizeof b);
    before = b;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pg_bucket_init(&b, &bad[i], 0), -1);
        assert_memory_equal(&b, &before, sizeof b);
    }
    assert_int_equal(pg_bucket_init(&b, NULL, 0), -1);
    /* the limits themselves are fine */
    struct pg_rate_limit edge =
        rl(PG_BUCKET_MAX_RATE, PG_BUCKET_MAX_PERIOD_MS, PG_BUCKET_MAX_BURST);
    assert_int_equal(pg_bucket_init(&b, &edge, 0), 0);
    assert_int_equal(b.cap, 3600000000000000ull); /* 1e9 x 3.6e6 */
}

/* ---- refill ---- */

static void test_refill_1_per_s(void **state)
{
    (void)state;
    struct pg_bucket b = mk(1, SEC, 1, 0);
    take_n(&b, 0, 1);
    assert_int_equal(pg_bucket_remaining(&b, 999), 0);
    assert_int_equal(pg_bucket_wait_ms(&b, 999), 1);
    assert_int_equal(pg_bucket_remaining(&b, 1000), 1);
    assert_int_equal(pg_bucket_wait_ms(&b, 1000), 0);
    pg_bucket_refill(&b, 400);
    assert_int_equal(b.level, 400); /* 1 unit a ms, 1000 units a token */
    assert_int_equal(b.last_ms, 400);
    take_ok(&b, 1000);
    assert_int_equal(pg_bucket_remaining(&b, 1999), 0);
    assert_int_equal(pg_bucket_wait_ms(&b, 1500), 500);
    assert_int_equal(pg_bucket_remaining(&b, 2000), 1);
}

static void test_refill_120_per_min(void **state)
{
    (void)state;
    struct pg_bucket b = mk(120, MIN, 20, 0);
    take_n(&b, 0, 20);
    assert_int_equal(pg_bucket_wait_ms(&b, 0), 500); /* 60000 / 120 */
    assert_int_equal(pg_bucket_remaining(&b, 499), 0);
    assert_int_equal(pg_bucket_remaining(&b, 500), 1);
    assert_int_equal(pg_bucket_remaining(&b, 9999), 19);
    assert_int_equal(pg_bucket_remaining(&b, 10000), 20);
    assert_int_equal(pg_bucket_remaining(&b, 20000), 20);
}

static void test_refill_10_per_hour(void **state)
{
    (void)state;
    struct pg_bucket b = mk(10, HOUR, 10, 0);
    take_n(&b, 0, 10);
    assert_int_equal(pg_bucket_wait_ms(&b, 0), 360000);
    for (uint64_t k = 1; k <= 10; k++) {
        assert_int_equal(pg_bucket_remaining(&b, k * 360000 - 1), k - 1);
        assert_int_equal(pg_bucket_remaining(&b, k * 360000), k);
    }
    /* taking at the very ms it appears: the next is exactly 360000 ms later */
    struct pg_bucket c = mk(10, HOUR, 1, 0);
    take_n(&c, 0, 1);
    for (uint64_t k = 1; k <= 20; k++) {
        uint64_t w;
        assert_int_equal(take1(&c, k * 360000 - 1, &w), -1);
        assert_int_equal(w, 1);
        take_ok(&c, k * 360000);
        assert_int_equal(c.level, 0);
    }
}

static void test_burst_cap(void **state)
{
    (void)state;
    struct pg_bucket b = mk(5, SEC, 3, 0);
    assert_int_equal(pg_bucket_remaining(&b, 10000), 3);
    take_ok(&b, 10000);
    assert_int_equal(pg_bucket_remaining(&b, 10000), 2);
    assert_int_equal(pg_bucket_remaining(&b, 10199), 2); /* 199 x 5 = 995 units */
    assert_int_equal(pg_bucket_remaining(&b, 10200), 3);
    pg_bucket_refill(&b, 10000 + HOUR);
    assert_int_equal(b.level, 3000); /* capped, not 2000 + 3.6e6 x 5 */
    assert_int_equal(pg_bucket_remaining(&b, 10000 + 2 * HOUR), 3);
}

static void test_fractional_3_per_s(void **state)
{
    (void)state;
    struct pg_bucket b = mk(3, SEC, 3, 0);
    take_n(&b, 0, 3);
    assert_int_equal(pg_bucket_wait_ms(&b, 0), 334);   /* ceil(1000 / 3) */
    assert_int_equal(pg_bucket_remaining(&b, 333), 0); /* 999 units */
    assert_int_equal(pg_bucket_wait_ms(&b, 333), 1);
    assert_int_equal(pg_bucket_remaining(&b, 334), 1); /* 1002 units */
    take_ok(&b, 334);
    assert_int_equal(b.level, 2);                      /* the 2/1000 of a token is kept */
    assert_int_equal(pg_bucket_wait_ms(&b, 334), 333); /* ceil(998 / 3) */
    assert_int_equal(pg_bucket_remaining(&b, 666), 0); /* 2 + 996 */
    take_ok(&b, 667);                                  /* 2 + 999 */
    assert_int_equal(b.level, 1);
    take_ok(&b, 1000); /* 1 + 999: three tokens in the first second, exactly */
    assert_int_equal(b.level, 0);
}

static void test_no_drift_over_a_minute(void **state)
{
    (void)state;
    /* Take every token the moment it exists, 1 ms steps: 3 (burst) + 3/s x 60 s, nothing lost
     * or gained to rounding. The burst of 3 is never reached, so no refill is capped. */
    struct pg_bucket b = mk(3, SEC, 3, 0);
    uint64_t taken = 0;
    for (uint64_t t = 0; t <= 60000; t++)
        while (take1(&b, t, NULL) == 0)
            taken++;
    assert_int_equal(taken, 3 + 180);
    assert_int_equal(b.level, 0);
    assert_int_equal(b.last_ms, 60000);
}

/* ---- overflow ---- */

/* An empty bucket at the largest rate: rate 1e9 units a ms. Emptied through a 1/hour bucket
 * re-rated (whole tokens 0, fraction 0), since taking 1e9 tokens one by one is too slow. */
static struct pg_bucket empty_fast(uint64_t now)
{
    struct pg_bucket b = mk(1, HOUR, 1, now);
    take_n(&b, now, 1);
    struct pg_rate_limit fast = rl(PG_BUCKET_MAX_RATE, SEC, PG_BUCKET_MAX_BURST);
    assert_int_equal(pg_bucket_reconfigure(&b, &fast, now), 0);
    assert_int_equal(b.level, 0);
    assert_int_equal(b.cap, 1000000000000ull);
    return b;
}

static void test_no_overflow_idle(void **state)
{
    (void)state;
    struct pg_bucket b = empty_fast(0);
    /* 18446744074 ms x 1e9 units = 2^64 + 290448384: a product that wraps would read 290448
     * tokens */
    assert_int_equal(pg_bucket_remaining(&b, 18446744074ull), PG_BUCKET_MAX_BURST);
    assert_int_equal(pg_bucket_remaining(&b, YEAR_MS), PG_BUCKET_MAX_BURST);
    assert_int_equal(pg_bucket_remaining(&b, UINT64_MAX), PG_BUCKET_MAX_BURST);
    assert_int_equal(pg_bucket_remaining(&b, 1), 1000000); /* 1e9 units a ms, 1000 a token */
    pg_bucket_refill(&b, 18446744074ull);
    assert_int_equal(b.level, b.cap);

    /* the largest bucket (3.6e15 units) at 1 unit a ms, idle a year: still exact */
    struct pg_bucket big = mk(1, HOUR, PG_BUCKET_MAX_BURST, 0);
    take_ok(&big, 0);
    assert_int_equal(pg_bucket_remaining(&big, HOUR - 1), PG_BUCKET_MAX_BURST - 1);
    assert_int_equal(pg_bucket_remaining(&big, HOUR), PG_BUCKET_MAX_BURST);
    assert_int_equal(pg_bucket_reset_s(&big, 0), 3600);
    assert_int_equal(pg_bucket_remaining(&big, YEAR_MS), PG_BUCKET_MAX_BURST);
}

static void test_no_overflow_near_uint64_max(void **state)
{
    (void)state;
    const uint64_t end = UINT64_MAX;
    struct pg_bucket b = mk(1, HOUR, 1, end - HOUR - 5);
    take_n(&b, end - HOUR - 5, 1);
    assert_int_equal(pg_bucket_wait_ms(&b, end - HOUR - 5), HOUR);
    assert_int_equal(pg_bucket_remaining(&b, end - 6), 0);
    assert_int_equal(pg_bucket_wait_ms(&b, end - 6), 1);
    assert_int_equal(pg_bucket_remaining(&b, end - 5), 1);
    assert_int_equal(pg_bucket_remaining(&b, end), 1);
    take_ok(&b, end);
    assert_int_equal(pg_bucket_wait_ms(&b, end), HOUR);
    assert_int_equal(pg_bucket_retry_s(&b, end), 3600);
    assert_int_equal(pg_bucket_reset_s(&b, end), 3600);
    /* and the fast one, empty at UINT64_MAX - 1 */
    struct pg_bucket f = empty_fast(end - 1);
    assert_int_equal(pg_bucket_remaining(&f, end), 1000000);
    assert_int_equal(pg_bucket_wait_ms(&f, end - 1), 1);
}

/* ---- the clock going backwards ---- */

static void test_clock_backwards(void **state)
{
    (void)state;
    struct pg_bucket b = mk(1, SEC, 2, 10000);
    take_n(&b, 10000, 2);
    struct pg_bucket before = b;
    pg_bucket_refill(&b, 5000);
    assert_memory_equal(&b, &before, sizeof b);
    uint64_t w = 0;
    assert_int_equal(take1(&b, 5000, &w), -1);
    assert_int_equal(w, 1000);
    assert_memory_equal(&b, &before, sizeof b);
    assert_int_equal(pg_bucket_remaining(&b, 5000), 0);
    assert_int_equal(pg_bucket_remaining(&b, 0), 0);
    /* time resumes from 10000, not from 5000 */
    assert_int_equal(pg_bucket_remaining(&b, 10999), 0);
    assert_int_equal(pg_bucket_remaining(&b, 11000), 1);
    /* a refilled level never shrinks when an older now comes in */
    pg_bucket_refill(&b, 11500);
    assert_int_equal(b.level, 1500);
    pg_bucket_refill(&b, 11000);
    assert_int_equal(b.level, 1500);
    assert_int_equal(b.last_ms, 11500);
    assert_int_equal(pg_bucket_remaining(&b, 0), 1);
    assert_int_equal(pg_bucket_wait_ms(&b, 0), 0);
    /* exactly full: an older now reads the same full bucket */
    pg_bucket_refill(&b, 12000);
    assert_int_equal(b.level, 2000);
    assert_int_equal(pg_bucket_remaining(&b, 11999), 2);
    assert_int_equal(pg_bucket_reset_s(&b, 11999), 0);
    take_ok(&b, 12000);
    assert_int_equal(pg_bucket_remaining(&b, 100), 1);
    assert_int_equal(pg_bucket_reset_s(&b, 100), 1);
}

/* ---- take_all ---- */

static void test_take_all_or_nothing(void **state)
{
    (void)state;
    struct pg_bucket a = mk(1, SEC, 2, 0); /* full: 2000 units */
    struct pg_bucket b = mk(1, MIN, 1, 0); /* 1 unit a ms, 60000 a token */
    take_n(&b, 0, 1);
    struct pg_bucket *v[] = { &a, &b };
    uint64_t w = 0;
    assert_int_equal(pg_bucket_take_all(v, 2, 500, &w), -1);
    assert_int_equal(w, 59500);
    assert_int_equal(a.level, 2000); /* a lost nothing */
    assert_int_equal(b.level, 500);
    assert_int_equal(pg_bucket_take_all(v, 2, 59999, &w), -1);
    assert_int_equal(w, 1);
    assert_int_equal(a.level, 2000);
    assert_int_equal(pg_bucket_take_all(v, 2, 60000, &w), 0);
    assert_int_equal(w, 0);
    assert_int_equal(a.level, 1000); /* one token each */
    assert_int_equal(b.level, 0);
}

static void test_take_all_longest_wait(void **state)
{
    (void)state;
    struct pg_bucket a = mk(1, SEC, 1, 0);
    struct pg_bucket b = mk(1, MIN, 1, 0);
    struct pg_bucket c = mk(10, SEC, 5, 0);
    take_n(&a, 9700, 1); /* at 10000: 700 ms to go */
    take_n(&b, 0, 1);    /* at 10000: 50000 ms to go */
    struct pg_bucket *acb[] = { &a, &c, &b };
    uint64_t w = 0;
    assert_int_equal(pg_bucket_take_all(acb, 3, 10000, &w), -1);
    assert_int_equal(w, 50000);
    struct pg_bucket *bca[] = { &b, &c, &a }; /* the order does not matter */
    assert_int_equal(pg_bucket_take_all(bca, 3, 10000, &w), -1);
    assert_int_equal(w, 50000);
    struct pg_bucket *ac[] = { &a, &c };
    assert_int_equal(pg_bucket_take_all(ac, 2, 10000, &w), -1);
    assert_int_equal(w, 700);
    assert_int_equal(c.level, 5000); /* never lost a token */
    assert_int_equal(pg_bucket_take_all(ac, 2, 10700, &w), 0);
    assert_int_equal(c.level, 4000);
}

static void test_take_all_edge_cases(void **state)
{
    (void)state;
    uint64_t w = 7;
    assert_int_equal(pg_bucket_take_all(NULL, 0, 0, &w), 0);
    assert_int_equal(w, 0);
    /* a bucket listed twice gives one token, and its level never wraps */
    struct pg_bucket a = mk(1, SEC, 1, 0);
    struct pg_bucket *aa[] = { &a, &a };
    assert_int_equal(pg_bucket_take_all(aa, 2, 0, &w), 0);
    assert_int_equal(a.level, 0);
    assert_int_equal(pg_bucket_take_all(aa, 2, 0, &w), -1);
    assert_int_equal(w, 1000);
    assert_int_equal(a.level, 0);
}

/* ---- header arithmetic ---- */

static void test_retry_after_rounding(void **state)
{
    (void)state;
    struct pg_bucket s1 = mk(1, SEC, 1, 0);
    take_n(&s1, 0, 1);
    assert_int_equal(pg_bucket_wait_ms(&s1, 999), 1);
    assert_int_equal(pg_bucket_retry_s(&s1, 999), 1); /* 1 ms missing -> 1 s */
    assert_int_equal(pg_bucket_retry_s(&s1, 0), 1);   /* exactly 1000 ms */
    assert_int_equal(pg_bucket_retry_s(&s1, 1000), 0);

    struct pg_bucket s2 = mk(30, MIN, 1, 0); /* one token per 2000 ms */
    take_n(&s2, 0, 1);
    assert_int_equal(pg_bucket_wait_ms(&s2, 0), 2000);
    assert_int_equal(pg_bucket_retry_s(&s2, 0), 2); /* exactly 2000 ms */
    assert_int_equal(pg_bucket_retry_s(&s2, 1), 2); /* 1999 */
    assert_int_equal(pg_bucket_retry_s(&s2, 999), 2);
    assert_int_equal(pg_bucket_retry_s(&s2, 1000), 1);

    struct pg_bucket m = mk(1, MIN, 1, 0);
    take_n(&m, 0, 1);
    assert_int_equal(pg_bucket_wait_ms(&m, 57999), 2001);
    assert_int_equal(pg_bucket_retry_s(&m, 57999), 3); /* 2001 ms -> 3 s */
    assert_int_equal(pg_bucket_retry_s(&m, 0), 60);
}

static void test_ratelimit_reset(void **state)
{
    (void)state;
    struct pg_bucket b = mk(120, MIN, 20, 0); /* 500 ms a token */
    assert_int_equal(pg_bucket_reset_s(&b, 0), 0);
    take_n(&b, 0, 3);
    assert_int_equal(pg_bucket_reset_s(&b, 0), 2);    /* 1500 ms */
    assert_int_equal(pg_bucket_reset_s(&b, 499), 2);  /* 1001 ms */
    assert_int_equal(pg_bucket_reset_s(&b, 500), 1);  /* 1000 ms */
    assert_int_equal(pg_bucket_reset_s(&b, 1499), 1); /* 1 ms */
    assert_int_equal(pg_bucket_reset_s(&b, 1500), 0);

    struct pg_bucket h = mk(10, HOUR, 10, 0);
    take_n(&h, 0, 10);
    assert_int_equal(pg_bucket_reset_s(&h, 0), 3600);
    assert_int_equal(pg_bucket_reset_s(&h, 360000), 3240);

    struct pg_bucket f = mk(3, SEC, 1, 0);
    take_n(&f, 0, 1);
    assert_int_equal(pg_bucket_reset_s(&f, 0), 1); /* 334 ms */
}

static void test_policy_window(void **state)
{
    (void)state;
    static const struct {
        uint64_t n, period, burst, w;
    } cases[] = {
        { 120, MIN, 20, 10 },                   /* 20 x 500 ms */
        { 10, HOUR, 1, 360 },                   /* one token, 360 s */
        { 10, HOUR, 10, 3600 },                 /* the whole hour */
        { 3, SEC, 1, 1 },                       /* 333.3 ms, rounded up */
        { 7, MIN, 10, 86 },                     /* 85714.3 ms */
        { 2, MIN, 5, 150 },                     /* 5 x 30 s */
        { 50, SEC, 100, 2 },                    /* 2000 ms */
        { 1, SEC, 1000000000, 1000000000 },     /* 1e9 s */
        { 1, HOUR, 1000000000, 3600000000000 }, /* 3.6e15 ms */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pg_bucket b = mk(cases[i].n, cases[i].period, cases[i].burst, 0);
        assert_int_equal(pg_bucket_window_s(&b), cases[i].w);
        take_n(&b, 0, cases[i].burst < 5 ? cases[i].burst : 5);
        assert_int_equal(pg_bucket_window_s(&b), cases[i].w); /* not the bucket's state */
    }
}

static void test_describe(void **state)
{
    (void)state;
    struct pg_bucket b = mk(120, MIN, 20, 0);
    take_n(&b, 0, 20);
    struct pg_bucket_info in;
    memset(&in, 0xff, sizeof in);
    pg_bucket_describe(&b, 1250, &in); /* 2.5 tokens */
    assert_int_equal(in.remaining, 2);
    assert_int_equal(in.limit, 20);
    assert_int_equal(in.reset_s, 9); /* 17.5 tokens x 500 ms = 8750 ms */
    assert_int_equal(in.wait_ms, 0);
    assert_int_equal(in.retry_s, 0);
    assert_int_equal(in.window_s, 10);
    pg_bucket_describe(&b, 1, &in);
    assert_int_equal(in.remaining, 0);
    assert_int_equal(in.wait_ms, 499);
    assert_int_equal(in.retry_s, 1);
    assert_int_equal(in.reset_s, 10); /* 9999 ms */
}

static void test_tightest(void **state)
{
    (void)state;
    struct pg_bucket_info v[3] = {
        { .remaining = 5, .limit = 10 },
        { .remaining = 2, .limit = 20 },
        { .remaining = 2, .limit = 5 },
    };
    assert_int_equal(pg_bucket_tightest(v, 3), 2); /* tie on 2: the smaller burst */
    assert_int_equal(pg_bucket_tightest(v, 2), 1);
    assert_int_equal(pg_bucket_tightest(v, 1), 0);
    assert_int_equal(pg_bucket_tightest(v, 0), 0); /* none: n */
    v[1].limit = 5;
    assert_int_equal(pg_bucket_tightest(v, 3), 1); /* a full tie: the first */
    v[0].remaining = 0;
    v[0].limit = 100;
    assert_int_equal(pg_bucket_tightest(v, 3), 0); /* fewest remaining beats a small burst */
    struct pg_bucket_info w[2] = { { .remaining = 3, .limit = 3 }, { .remaining = 3, .limit = 1 } };
    assert_int_equal(pg_bucket_tightest(w, 2), 1);
}

/* ---- reconfigure ---- */

static void test_reconfigure(void **state)
{
    (void)state;
    struct pg_bucket b = mk(10, SEC, 10, 0);
    take_n(&b, 0, 3); /* 7 tokens: 7000 units */
    struct pg_rate_limit smaller = rl(10, SEC, 5), bigger = rl(10, SEC, 20);
    assert_false(pg_bucket_same_rate(&b, &smaller));
    assert_int_equal(pg_bucket_reconfigure(&b, &smaller, 0), 0);
    assert_int_equal(b.level, 5000); /* no fuller than the new burst */
    assert_true(pg_bucket_same_rate(&b, &smaller));
    assert_int_equal(pg_bucket_reconfigure(&b, &bigger, 0), 0);
    assert_int_equal(b.level, 5000); /* not refilled to 20 */
    assert_int_equal(pg_bucket_remaining(&b, 0), 5);
    assert_int_equal(pg_bucket_burst(&b), 20);

    /* fractions carry over: 1 token + 2/1000 at 3/s -> 1 token + 120/60000 at 1/min */
    struct pg_bucket f = mk(3, SEC, 3, 0);
    take_n(&f, 0, 3);
    struct pg_rate_limit per_min = rl(1, MIN, 5);
    assert_int_equal(pg_bucket_reconfigure(&f, &per_min, 334), 0);
    assert_int_equal(f.level, 60120);
    assert_int_equal(f.last_ms, 334);
    assert_int_equal(f.rate_n, 1);
    assert_int_equal(f.period_ms, MIN);
    assert_int_equal(f.cap, 5 * MIN);

    /* a bad rate changes nothing */
    struct pg_bucket before = f;
    struct pg_rate_limit bad = rl(0, SEC, 1);
    assert_int_equal(pg_bucket_reconfigure(&f, &bad, 1000), -1);
    assert_memory_equal(&f, &before, sizeof f);
    /* same burst, another rate or period: not the same */
    struct pg_rate_limit faster = rl(2, MIN, 5), per_hour = rl(1, HOUR, 5);
    assert_false(pg_bucket_same_rate(&f, &faster));
    assert_false(pg_bucket_same_rate(&f, &per_hour));
    /* mode and max_wait are not the bucket's business */
    per_min.mode = PG_RL_QUEUE;
    per_min.max_wait_ms = 2000;
    assert_true(pg_bucket_same_rate(&f, &per_min));
}

/* ---- the local store ---- */

static int store_take(struct pg_bucket_store *s, const char *const *keys,
                      const struct pg_rate_limit *const *rates, size_t n, uint64_t now,
                      struct pg_bucket_result *r)
{
    memset(r, 0xee, sizeof *r);
    r->done = NULL;
    r->arg = NULL;
    return s->ops->take_all(s, keys, rates, n, now, r);
}

/* take_all on one key; returns r.taken and checks the call itself worked */
static bool take_key(struct pg_bucket_store *s, const char *key, const struct pg_rate_limit *rate,
                     uint64_t now, struct pg_bucket_result *r)
{
    assert_int_equal(store_take(s, &key, &rate, 1, now, r), PG_BUCKET_DONE);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->n, 1);
    return r->taken;
}

static uint64_t peek_remaining(struct pg_bucket_store *s, const char *key,
                               const struct pg_rate_limit *rate, uint64_t now)
{
    struct pg_bucket_result r;
    memset(&r, 0xee, sizeof r);
    assert_int_equal(s->ops->peek(s, key, rate, now, &r), PG_BUCKET_DONE);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    assert_false(r.taken);
    return r.b[0].remaining;
}

static void test_store_keys_independent(void **state)
{
    (void)state;
    struct pg_bucket_store *s = pg_bucket_local_new(16);
    assert_non_null(s);
    struct pg_rate_limit r2 = rl(1, SEC, 2);
    struct pg_bucket_result r;
    assert_true(take_key(s, "u:a", &r2, 0, &r));
    assert_int_equal(r.b[0].remaining, 1);
    assert_true(take_key(s, "u:a", &r2, 0, &r));
    assert_false(take_key(s, "u:a", &r2, 0, &r));
    assert_int_equal(r.wait_ms, 1000);
    assert_int_equal(r.b[0].wait_ms, 1000);
    assert_int_equal(r.b[0].retry_s, 1);
    assert_true(take_key(s, "u:b", &r2, 0, &r)); /* another key, its own bucket */
    assert_int_equal(r.b[0].remaining, 1);
    assert_int_equal(peek_remaining(s, "u:a", &r2, 0), 0);
    assert_int_equal(peek_remaining(s, "u:b", &r2, 0), 1);
    assert_int_equal(peek_remaining(s, "u:ab", &r2, 0), 2); /* never used: full */
    assert_int_equal(peek_remaining(s, "u:a", &r2, 1000), 1);
    pg_bucket_store_free(s);
}

static void test_store_take_all(void **state)
{
    (void)state;
    struct pg_bucket_store *s = pg_bucket_local_new(16);
    assert_non_null(s);
    struct pg_rate_limit up = rl(10, SEC, 10), route = rl(1, SEC, 1), con = rl(120, MIN, 20);
    const char *keys[] = { "u:navixy", "r:navixy:/track/read", "c:billing" };
    const struct pg_rate_limit *rates[] = { &up, &route, &con };
    struct pg_bucket_result r;

    assert_int_equal(store_take(s, keys, rates, 3, 0, &r), PG_BUCKET_DONE);
    assert_int_equal(r.status, 0);
    assert_true(r.taken);
    assert_int_equal(r.wait_ms, 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.b[0].remaining, 9);
    assert_int_equal(r.b[0].limit, 10);
    assert_int_equal(r.b[0].reset_s, 1); /* 100 ms */
    assert_int_equal(r.b[0].window_s, 1);
    assert_int_equal(r.b[1].remaining, 0);
    assert_int_equal(r.b[1].limit, 1);
    assert_int_equal(r.b[1].wait_ms, 1000);
    assert_int_equal(r.b[1].retry_s, 1);
    assert_int_equal(r.b[2].remaining, 19);
    assert_int_equal(r.b[2].limit, 20);
    assert_int_equal(r.b[2].reset_s, 1); /* 500 ms */
    assert_int_equal(r.b[2].window_s, 10);
    assert_int_equal(pg_bucket_tightest(r.b, r.n), 1);

    /* the route bucket is empty: nobody loses a token */
    assert_int_equal(store_take(s, keys, rates, 3, 10, &r), PG_BUCKET_DONE);
    assert_int_equal(r.status, 0);
    assert_false(r.taken);
    assert_int_equal(r.wait_ms, 990);
    assert_int_equal(r.b[0].remaining, 9); /* 9100 units; 8 had it been taken */
    assert_int_equal(r.b[1].remaining, 0);
    assert_int_equal(r.b[2].remaining, 19);
    assert_int_equal(peek_remaining(s, "u:navixy", &up, 10), 9);
    assert_int_equal(peek_remaining(s, "c:billing", &con, 10), 19);

    assert_int_equal(store_take(s, keys, rates, 3, 1000, &r), PG_BUCKET_DONE);
    assert_true(r.taken);
    assert_int_equal(r.b[0].remaining, 9); /* full again at 1000, minus one */
    assert_int_equal(r.b[2].remaining, 19);

    /* a key listed twice counts once */
    const char *twice[] = { "c:x", "c:x" };
    const struct pg_rate_limit *twice_rates[] = { &route, &route };
    assert_int_equal(store_take(s, twice, twice_rates, 2, 0, &r), PG_BUCKET_DONE);
    assert_true(r.taken);
    assert_int_equal(r.b[0].remaining, 0);
    assert_int_equal(r.b[1].remaining, 0);
    assert_int_equal(store_take(s, twice, twice_rates, 2, 0, &r), PG_BUCKET_DONE);
    assert_false(r.taken);
    pg_bucket_store_free(s);
}

static void test_store_bad_args(void **state)
{
    (void)state;
    assert_null(pg_bucket_local_new(0));
    pg_bucket_store_free(NULL);
    struct pg_bucket_store *s = pg_bucket_local_new(16);
    assert_non_null(s);
    struct pg_rate_limit ok = rl(1, SEC, 1), unset = ok;
    unset.set = false;
    const char *keys[] = { "a", "b", "c", "d" };
    const struct pg_rate_limit *rates[] = { &ok, &ok, &ok, &ok };
    struct pg_bucket_result r;
    assert_int_equal(store_take(s, keys, rates, PG_BUCKET_MAX_KEYS + 1, 0, &r), -1);
    assert_int_equal(r.status, -1);
    assert_false(r.taken);
    assert_int_equal(r.n, 0);
    rates[1] = &unset;
    assert_int_equal(store_take(s, keys, rates, 2, 0, &r), -1);
    assert_int_equal(r.status, -1);
    assert_false(r.taken);
    assert_int_equal(peek_remaining(s, "a", &ok, 0), 1); /* nothing taken from "a" */
    memset(&r, 0xee, sizeof r);
    assert_int_equal(s->ops->peek(s, "a", &unset, 0, &r), -1);
    assert_int_equal(r.status, -1);
    pg_bucket_store_free(s);
}

static void test_store_rate_change(void **state)
{
    (void)state;
    struct pg_bucket_store *s = pg_bucket_local_new(16);
    assert_non_null(s);
    struct pg_rate_limit r10 = rl(10, SEC, 10), r5 = rl(10, SEC, 5), r20 = rl(10, SEC, 20);
    struct pg_bucket_result r;
    for (int i = 0; i < 3; i++)
        assert_true(take_key(s, "c:k", &r10, 0, &r));
    assert_int_equal(r.b[0].remaining, 7);
    /* reload shrinks the burst: 7 -> 5, then one taken */
    assert_true(take_key(s, "c:k", &r5, 0, &r));
    assert_int_equal(r.b[0].remaining, 4);
    assert_int_equal(r.b[0].limit, 5);
    /* reload grows it: the 4 stay 4, no free refill to 20 */
    assert_true(take_key(s, "c:k", &r20, 0, &r));
    assert_int_equal(r.b[0].remaining, 3);
    assert_int_equal(r.b[0].limit, 20);
    /* a new rate with the same burst is picked up too: 3 tokens kept, then 1/s instead of 10/s */
    struct pg_rate_limit slow = rl(1, SEC, 20);
    assert_true(take_key(s, "c:k", &slow, 0, &r));
    assert_int_equal(r.b[0].remaining, 2);
    assert_int_equal(r.b[0].window_s, 20);
    assert_int_equal(peek_remaining(s, "c:k", &slow, 999), 2);
    assert_int_equal(peek_remaining(s, "c:k", &slow, 1000), 3);
    assert_true(take_key(s, "c:k", &r20, 0, &r));
    assert_int_equal(r.b[0].remaining, 1);
    assert_int_equal(r.b[0].window_s, 2);
    /* peek with another rate reports as if re-rated but stores nothing */
    struct pg_rate_limit r2 = rl(10, SEC, 2);
    assert_int_equal(peek_remaining(s, "c:k", &r2, 0), 1);
    assert_int_equal(peek_remaining(s, "c:k", &r20, 0), 1);
    assert_int_equal(peek_remaining(s, "c:k", &r2, 1000), 2);
    assert_int_equal(peek_remaining(s, "c:k", &r20, 1000), 11);
    pg_bucket_store_free(s);
}

static void test_store_cooldown(void **state)
{
    (void)state;
    struct pg_bucket_store *s = pg_bucket_local_new(16);
    assert_non_null(s);
    const struct pg_bucket_store_ops *o = s->ops;
    assert_int_equal(o->cooldown_get(s, "u:navixy", 0), 0);
    assert_int_equal(o->cooldown_set(s, "u:navixy", 5000), 0);
    assert_int_equal(o->cooldown_get(s, "u:navixy", 1000), 4000);
    assert_int_equal(o->cooldown_get(s, "u:navixy", 4999), 1);
    assert_int_equal(o->cooldown_get(s, "u:navixy", 5000), 0);
    assert_int_equal(o->cooldown_get(s, "u:navixy", 6000), 0);
    assert_int_equal(o->cooldown_get(s, "u:other", 1000), 0);
    /* a later deadline extends, an earlier one does not shorten */
    assert_int_equal(o->cooldown_set(s, "u:navixy", 9000), 0);
    assert_int_equal(o->cooldown_set(s, "u:navixy", 7000), 0);
    assert_int_equal(o->cooldown_get(s, "u:navixy", 6000), 3000);
    /* the bucket under the same key is unaffected, and leaves the cool-down alone */
    struct pg_rate_limit r1 = rl(1, SEC, 1);
    struct pg_bucket_result r;
    assert_true(take_key(s, "u:navixy", &r1, 6000, &r));
    assert_false(take_key(s, "u:navixy", &r1, 6000, &r));
    assert_int_equal(o->cooldown_get(s, "u:navixy", 6000), 3000);
    /* a deadline already past (the store has seen now = 6000) is a no-op */
    assert_int_equal(o->cooldown_set(s, "u:late", 6000), 0);
    assert_int_equal(o->cooldown_get(s, "u:late", 5000), 0);
    pg_bucket_store_free(s);
}

static void test_store_max_keys_and_sweep(void **state)
{
    (void)state;
    struct pg_bucket_store *s = pg_bucket_local_new(100);
    assert_non_null(s);
    struct pg_rate_limit per_min = rl(1, MIN, 1);
    struct pg_bucket_result r;
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "c:%d", i);
        assert_true(take_key(s, key, &per_min, 0, &r));
    }
    /* 100 live (not full) buckets: key 101 does not fit */
    const char *k101 = "c:100";
    const struct pg_rate_limit *rp = &per_min;
    assert_int_equal(store_take(s, &k101, &rp, 1, 59999, &r), -1);
    assert_int_equal(r.status, -1);
    assert_false(r.taken);
    /* a minute later all are full again, the same as absent: swept, and it fits */
    assert_true(take_key(s, "c:100", &per_min, 60000, &r));
    assert_true(take_key(s, "c:0", &per_min, 60000, &r)); /* back, full */
    assert_false(take_key(s, "c:0", &per_min, 60000, &r));
    pg_bucket_store_free(s);
}

static void test_store_sweep_keeps_keys_in_use(void **state)
{
    (void)state;
    /* At max_keys with every bucket full: a take_all naming a known key and a new one sweeps,
     * and must neither free the known key's entry under it nor count it twice. */
    struct pg_bucket_store *s = pg_bucket_local_new(2);
    assert_non_null(s);
    struct pg_rate_limit r1 = rl(1, SEC, 1);
    const struct pg_rate_limit *rates[] = { &r1, &r1 };
    struct pg_bucket_result r;
    assert_true(take_key(s, "u:a", &r1, 0, &r));
    assert_true(take_key(s, "u:b", &r1, 0, &r));
    const char *ac[] = { "u:a", "u:c" };
    assert_int_equal(store_take(s, ac, rates, 2, 1000, &r), PG_BUCKET_DONE);
    assert_true(r.taken);
    assert_int_equal(r.b[0].remaining, 0);
    assert_int_equal(r.b[1].remaining, 0);
    assert_false(take_key(s, "u:a", &r1, 1000, &r));
    assert_false(take_key(s, "u:c", &r1, 1000, &r));
    /* cool-downs are kept by the sweep while they run */
    assert_int_equal(s->ops->cooldown_set(s, "u:a", 10000), 0);
    assert_true(take_key(s, "u:d", &r1, 5000, &r)); /* u:c was full: swept */
    assert_int_equal(s->ops->cooldown_get(s, "u:a", 5000), 5000);
    assert_int_equal(store_take(s, ac + 1, rates, 1, 5000, &r), -1); /* a cooling, d live */
    assert_int_equal(s->ops->cooldown_set(s, "u:e", 20000), -1);
    assert_true(take_key(s, "u:c", &r1, 10000, &r)); /* a's cool-down over */
    pg_bucket_store_free(s);
}

static void test_store_10000_keys(void **state)
{
    (void)state;
    struct pg_bucket_store *s = pg_bucket_local_new(20000);
    assert_non_null(s);
    struct pg_rate_limit r2 = rl(1, SEC, 2);
    struct pg_bucket_result r;
    char key[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "r:up%d:/p/%d", i % 7, i);
        assert_true(take_key(s, key, &r2, 0, &r));
        assert_int_equal(r.b[0].remaining, 1);
    }
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "r:up%d:/p/%d", i % 7, i);
        assert_int_equal(peek_remaining(s, key, &r2, 0), 1);
        assert_true(take_key(s, key, &r2, 0, &r));
        assert_int_equal(r.b[0].remaining, 0);
        assert_int_equal(s->ops->cooldown_set(s, key, (uint64_t)i + 1), 0);
    }
    for (int i = 0; i < 10000; i += 997) {
        snprintf(key, sizeof key, "r:up%d:/p/%d", i % 7, i);
        assert_false(take_key(s, key, &r2, 0, &r));
        assert_int_equal(s->ops->cooldown_get(s, key, 0), (uint64_t)i + 1);
    }
    pg_bucket_store_free(s);
}

/* Workers share one store (SPEC 4.1): 8 threads racing 20,000 takes each over the same three
 * buckets (keys made on first use, so the table grows while they race) admit exactly the
 * smallest burst, and every request counts in the sweep of fresh keys. */
struct racer {
    struct pg_bucket_store *s;
    pthread_barrier_t *go; /* all start together, so they really overlap */
    int taken;
    int errors; /* take_all calls that did not answer PG_BUCKET_DONE */
    int worker;
};

static void *race(void *arg)
{
    struct racer *rc = arg;
    struct pg_rate_limit up = rl(1, HOUR, 5), route = rl(1, HOUR, 50), con = rl(1, HOUR, 500);
    const struct pg_rate_limit *rates[] = { &up, &route, &con };
    const char *keys[] = { "u:navixy", "r:navixy:/track", "c:billing" };
    pthread_barrier_wait(rc->go);
    /* no cmocka assert off the main thread: its longjmp would land in another thread's test */
    for (int i = 0; i < 20000; i++) {
        struct pg_bucket_result r;
        rc->errors += rc->s->ops->take_all(rc->s, keys, rates, 3, 1000, &r) != PG_BUCKET_DONE;
        rc->taken += r.taken;
        /* and a key of this worker's own, so inserts and rebuilds race the takes */
        char own[32];
        snprintf(own, sizeof own, "c:w%d-%d", rc->worker, i % 64);
        const char *k1[] = { own };
        const struct pg_rate_limit *r1[] = { &up };
        rc->errors += rc->s->ops->take_all(rc->s, k1, r1, 1, 1000, &r) != PG_BUCKET_DONE;
    }
    return NULL;
}

static void test_store_shared_by_threads(void **state)
{
    (void)state;
    struct pg_bucket_store *s = pg_bucket_local_new(100000);
    assert_non_null(s);
    pthread_t t[8];
    struct racer rc[8];
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, 8), 0);
    for (int i = 0; i < 8; i++) {
        rc[i] = (struct racer){ .s = s, .go = &go, .worker = i };
        assert_int_equal(pthread_create(&t[i], NULL, race, &rc[i]), 0);
    }
    int taken = 0;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        taken += rc[i].taken;
        assert_int_equal(rc[i].errors, 0);
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(taken, 5);
    struct pg_bucket_result r;
    struct pg_rate_limit up = rl(1, HOUR, 5);
    assert_int_equal(s->ops->peek(s, "u:navixy", &up, 1000, &r), PG_BUCKET_DONE);
    assert_int_equal(r.b[0].remaining, 0);
    pg_bucket_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_full),
        cmocka_unit_test(test_init_rejects_bad_rates),
        cmocka_unit_test(test_refill_1_per_s),
        cmocka_unit_test(test_refill_120_per_min),
        cmocka_unit_test(test_refill_10_per_hour),
        cmocka_unit_test(test_burst_cap),
        cmocka_unit_test(test_fractional_3_per_s),
        cmocka_unit_test(test_no_drift_over_a_minute),
        cmocka_unit_test(test_no_overflow_idle),
        cmocka_unit_test(test_no_overflow_near_uint64_max),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_take_all_or_nothing),
        cmocka_unit_test(test_take_all_longest_wait),
        cmocka_unit_test(test_take_all_edge_cases),
        cmocka_unit_test(test_retry_after_rounding),
        cmocka_unit_test(test_ratelimit_reset),
        cmocka_unit_test(test_policy_window),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_tightest),
        cmocka_unit_test(test_reconfigure),
        cmocka_unit_test(test_store_keys_independent),
        cmocka_unit_test(test_store_take_all),
        cmocka_unit_test(test_store_bad_args),
        cmocka_unit_test(test_store_rate_change),
        cmocka_unit_test(test_store_cooldown),
        cmocka_unit_test(test_store_max_keys_and_sweep),
        cmocka_unit_test(test_store_sweep_keeps_keys_in_use),
        cmocka_unit_test(test_store_10000_keys),
        cmocka_unit_test(test_store_shared_by_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
