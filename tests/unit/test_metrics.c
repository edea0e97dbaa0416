/* test_metrics.c -- the counting half of /_gateway/status (SPEC section 6): latency percentiles
 * from the log buckets, the 15-minute ring, sums over workers, errors by envelope code, and
 * per-consumer counts. Time is a field of each record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "gateway/conf.h"
#include "gateway/envelope.h"
#include "gateway/metrics.h"

#define M0 29000000u /* a minute since the epoch (2025) */
#define AT(min, sec) ((uint64_t)(min)*60u + (sec))

static void rec(struct pg_metrics *m, const char *up, const char *consumer, uint64_t ms, int err,
                uint64_t now_s)
{
    struct pg_metrics_rec r = { .upstream = up,
                                .consumer = consumer,
                                .method_bit = PG_M_GET,
                                .status = err >= 0 ? 502 : 200,
                                .err = err,
                                .limited = err == PG_E_RATE_LIMITED,
                                .ms = ms,
                                .now_s = now_s };
    pg_metrics_request(m, &r);
}

/* upstream up of the sum of ms[0..n) at now_s, history from from_s. */
static json_t *view(struct pg_metrics **ms, size_t n, const char *up, uint64_t from_s,
                    uint64_t now_s)
{
    struct pg_metrics *sum = pg_metrics_sum(ms, n);
    assert_non_null(sum);
    json_t *o = json_object();
    assert_int_equal(pg_metrics_upstream_json(sum, up, from_s, now_s, o), 0);
    pg_metrics_free(sum);
    return o;
}

static json_int_t get_int(json_t *o, const char *path)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* 98 answers at 10 ms and 2 at 1 s: p50 in 10's bucket (8..11 ms), p99 in 1000's (896..1023). */
static void percentiles(void **state)
{
    (void)state;
    struct pg_metrics *m = pg_metrics_new();
    for (int i = 0; i < 98; i++)
        rec(m, "nvx", NULL, 10, -1, AT(M0, 5));
    rec(m, "nvx", NULL, 1000, -1, AT(M0, 6));
    rec(m, "nvx", NULL, 1000, -1, AT(M0, 7));
    json_t *o = view(&m, 1, "nvx", AT(M0, 0), AT(M0, 30));
    assert_int_equal(get_int(o, "latency_ms.p50"), 11);
    assert_int_equal(get_int(o, "latency_ms.p99"), 1023);
    assert_int_equal(get_int(o, "requests"), 100);
    json_decref(o);
    /* tiny and huge: 0 ms is its own bucket, an hour-long stream counts in the last one */
    struct pg_metrics *t = pg_metrics_new();
    rec(t, "s", NULL, 0, -1, AT(M0, 1));
    rec(t, "s", NULL, 3600000, -1, AT(M0, 2));
    o = view(&t, 1, "s", AT(M0, 0), AT(M0, 3));
    assert_int_equal(get_int(o, "latency_ms.p50"), 0);
    assert_int_equal(get_int(o, "latency_ms.p99"), 131071);
    json_decref(o);
    pg_metrics_free(t);
    /* nothing in the last 5 minutes: null, though the history still has the minute */
    o = view(&m, 1, "nvx", AT(M0, 0), AT(M0 + 5, 0));
    assert_true(json_is_null(json_object_get(json_object_get(o, "latency_ms"), "p50")));
    json_t *h = json_object_get(o, "history");
    assert_int_equal(json_array_size(h), 6);
    assert_int_equal(get_int(json_array_get(h, 0), "requests"), 100);
    assert_int_equal(get_int(json_array_get(h, 0), "p99_ms"), 1023);
    assert_true(json_is_null(json_object_get(json_array_get(h, 5), "p99_ms")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "t")),
                        "2025-02-19T21:20:00Z");
    json_decref(o);
    pg_metrics_free(m);
}

/* The ring keeps 15 minutes: a minute 15 later takes its slot, the history never shows more
 * than 15 entries, and a record older than what a slot holds is not counted there. */
static void ring(void **state)
{
    (void)state;
    struct pg_metrics *m = pg_metrics_new();
    rec(m, "u", NULL, 5, -1, AT(M0, 0));
    rec(m, "u", NULL, 5, PG_E_UPSTREAM_TIMEOUT, AT(M0 + 3, 0));
    rec(m, "u", NULL, 5, -1, AT(M0 + 15, 0)); /* M0's slot */
    rec(m, "u", NULL, 5, -1, AT(M0, 59));     /* late and older than the slot: history skips it */
    json_t *o = view(&m, 1, "u", AT(M0 - 100, 0), AT(M0 + 16, 0));
    json_t *h = json_object_get(o, "history");
    assert_int_equal(json_array_size(h), 15); /* M0+2 .. M0+16 */
    json_int_t n = 0, e = 0;
    for (size_t i = 0; i < json_array_size(h); i++) {
        n += get_int(json_array_get(h, i), "requests");
        e += get_int(json_array_get(h, i), "errors");
    }
    assert_int_equal(n, 2);
    assert_int_equal(e, 1);
    assert_int_equal(get_int(json_array_get(h, 1), "errors"), 1); /* M0+3 */
    assert_int_equal(get_int(o, "requests"), 4);                  /* totals keep everything */
    json_decref(o);
    pg_metrics_free(m);
}

/* Two workers' counters add up, minute by minute, and errors are counted by the envelope's code
 * (kinds sharing one, like 408 and 400 bad_request, add up). */
static void sum_over_workers(void **state)
{
    (void)state;
    struct pg_metrics *w[2] = { pg_metrics_new(), pg_metrics_new() };
    rec(w[0], "u", "alice", 20, -1, AT(M0, 1));
    rec(w[0], "u", "alice", 20, PG_E_RATE_LIMITED, AT(M0 + 1, 1));
    rec(w[1], "u", "alice", 20, PG_E_REQUEST_TIMEOUT, AT(M0 + 1, 2));
    rec(w[1], "u", "bob", 20, PG_E_BAD_REQUEST, AT(M0 + 2, 3));
    rec(w[1], NULL, "bob", 1, -1, AT(M0 + 2, 4)); /* the gateway's own: not upstream u's */
    json_t *o = view(w, 2, "u", AT(M0, 0), AT(M0 + 2, 30));
    assert_int_equal(get_int(o, "requests"), 4);
    assert_int_equal(get_int(o, "errors.bad_request"), 2);
    assert_int_equal(get_int(o, "errors.rate_limited"), 1);
    assert_int_equal(json_object_size(json_object_get(o, "errors")), 2);
    json_t *h = json_object_get(o, "history");
    assert_int_equal(json_array_size(h), 3);
    assert_int_equal(get_int(json_array_get(h, 1), "requests"), 2);
    assert_int_equal(get_int(json_array_get(h, 1), "errors"), 2);
    json_decref(o);
    struct pg_metrics *sum = pg_metrics_sum(w, 2);
    json_t *c = json_object();
    assert_int_equal(pg_metrics_consumer_json(sum, "alice", c), 0);
    assert_int_equal(get_int(c, "requests"), 3);
    assert_int_equal(get_int(c, "rate_limited"), 1);
    assert_int_equal(pg_metrics_consumer_json(sum, "bob", c), 0);
    assert_int_equal(get_int(c, "requests"), 2);
    assert_int_equal(pg_metrics_consumer_json(sum, "nobody", c), 0);
    assert_int_equal(get_int(c, "requests"), 0);
    json_decref(c);
    /* an upstream with no record at all reads as zeros */
    o = json_object();
    assert_int_equal(pg_metrics_upstream_json(sum, "never", AT(M0, 0), AT(M0, 0), o), 0);
    assert_int_equal(get_int(o, "requests"), 0);
    assert_int_equal(json_array_size(json_object_get(o, "history")), 1);
    json_decref(o);
    /* the exposition still counts the same answers */
    struct evbuffer *b = evbuffer_new();
    assert_int_equal(pg_metrics_render(w, 2, 0, b), 0);
    size_t n = evbuffer_get_length(b);
    const char *p = (const char *)evbuffer_pullup(b, -1);
    assert_non_null(
        memmem(p, n, "panelgate_request_duration_seconds_count{upstream=\"u\"} 4\n", 56));
    evbuffer_free(b);
    pg_metrics_free(sum);
    pg_metrics_free(w[0]);
    pg_metrics_free(w[1]);
}

/* More distinct consumers than the table holds: the first PG_MET_CONSUMERS are counted, the
 * rest are not, and nothing breaks. */
static void consumers_bounded(void **state)
{
    (void)state;
    struct pg_metrics *m = pg_metrics_new();
    char name[32];
    for (int i = 0; i < 1100; i++) {
        snprintf(name, sizeof name, "c%d", i);
        rec(m, "u", name, 1, -1, AT(M0, 0));
        rec(m, "u", name, 1, -1, AT(M0, 0));
    }
    struct pg_metrics *sum = pg_metrics_sum(&m, 1);
    json_t *c = json_object();
    int counted = 0;
    for (int i = 0; i < 1100; i++) {
        snprintf(name, sizeof name, "c%d", i);
        assert_int_equal(pg_metrics_consumer_json(sum, name, c), 0);
        json_int_t r = get_int(c, "requests");
        assert_true(r == 0 || r == 2);
        counted += r == 2;
    }
    assert_int_equal(counted, 1024);
    json_decref(c);
    pg_metrics_free(sum);
    pg_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentiles),
        cmocka_unit_test(ring),
        cmocka_unit_test(sum_over_workers),
        cmocka_unit_test(consumers_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
