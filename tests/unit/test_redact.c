/* test_redact.c -- secrets replaced in panel text: every occurrence, overlaps, the longest at
 * one start, sizing without writing, a buffer too small, redaction before a 512-byte cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/redact.h"

#define SP(s)                                                                                      \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }

static void check(const struct pg_span *sec, size_t nsec, const char *in, const char *want,
                  size_t want_hits)
{
    char out[1024];
    size_t hits = 99;
    size_t n = pg_redact(sec, nsec, in, strlen(in), out, sizeof out, &hits);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    assert_int_equal(hits, want_hits);
    /* sizing call: same length, nothing written */
    assert_int_equal(pg_redact(sec, nsec, in, strlen(in), NULL, 0, NULL), n);
}

static void replaces(void **state)
{
    (void)state;
    const struct pg_span sec[] = { SP("0123456789abcdef0123456789abcdef"), SP("hunter2") };
    check(sec, 2, "no secret here", "no secret here", 0);
    check(sec, 2, "hash=0123456789abcdef0123456789abcdef&x=1", "hash=[redacted]&x=1", 1);
    check(sec, 2, "hunter2hunter2 pw=hunter2", "[redacted][redacted] pw=[redacted]", 3);
    check(sec, 2, "hunter2", "[redacted]", 1);
    check(sec, 2, "", "", 0);
    /* a prefix alone is not the secret */
    check(sec, 2, "hunter 0123456789abcdef", "hunter 0123456789abcdef", 0);
}

static void overlaps(void **state)
{
    (void)state;
    /* the longest at the same start wins; an occurrence inside a replaced one is gone with it */
    const struct pg_span sec[] = { SP("Bearer"), SP("Bearer eyJabc"), SP("eyJ") };
    check(sec, 3, "x Bearer eyJabc y", "x [redacted] y", 1);
    check(sec, 3, "Bearer eyJ", "[redacted] [redacted]", 2);
    /* overlapping different secrets: the earlier start wins, scanning resumes after it */
    const struct pg_span ab[] = { SP("cdef"), SP("abcd") };
    check(ab, 2, "abcdef", "[redacted]ef", 1);
    /* empty and missing spans are ignored */
    const struct pg_span odd[] = { { "", 0 }, { NULL, 0 }, SP("k") };
    check(odd, 3, "kek", "[redacted]e[redacted]", 2);
    check(NULL, 0, "abc", "abc", 0);
}

static void small_buffer(void **state)
{
    (void)state;
    const struct pg_span sec[] = { SP("pw") };
    char out[8];
    memset(out, 'Z', sizeof out);
    /* needs 3 + 10 bytes: nothing half-written is left behind */
    size_t n = pg_redact(sec, 1, "a=pw", 4, out, sizeof out, NULL);
    assert_int_equal(n, 12);
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0);
}

static void alloc(void **state)
{
    (void)state;
    const struct pg_span sec[] = { SP("s3cret") };
    char *out = (char *)1;
    size_t n = 7;
    assert_int_equal(pg_redact_alloc(sec, 1, "clean", 5, &out, &n), 0);
    assert_null(out);
    assert_int_equal(n, 0);
    assert_int_equal(pg_redact_alloc(sec, 1, "x s3cret y", 10, &out, &n), 0);
    assert_non_null(out);
    assert_string_equal(out, "x [redacted] y");
    assert_int_equal(n, strlen("x [redacted] y"));
    free(out);
}

/* A secret straddling byte 512 of the panel text: redaction runs before the envelope's 512-byte
 * cut (fwd.c), so the whole secret is replaced and no prefix of it is left for the cut to keep;
 * the cut itself is tested end to end in test_leaks.py (test_hash_cut_at_512_bytes). */
static void secret_across_512(void **state)
{
    (void)state;
    const struct pg_span sec[] = { SP("0123456789abcdef0123456789abcdef") };
    char body[600];
    memset(body, 'x', 500);
    memcpy(body + 500, sec[0].p, sec[0].n);
    size_t bn = 500 + sec[0].n;
    char out[600];
    size_t n = pg_redact(sec, 1, body, bn, out, sizeof out, NULL);
    assert_int_equal(n, 510);
    /* the result's first 512 bytes end in the marker, not in "0123456789ab" */
    assert_memory_equal(out + 500, "[redacted]", 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replaces),          cmocka_unit_test(overlaps),
        cmocka_unit_test(small_buffer),      cmocka_unit_test(alloc),
        cmocka_unit_test(secret_across_512),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
