/* test_rsess.c -- sessions sealed for redis (SPEC section 4.1): a round trip keeps the token and
 * the refresh time across clocks; the wrong key, the wrong upstream, a flipped byte or a cut
 * value do not open; an expired one does not either; the redis key changes with the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/rsess.h"

static const uint8_t KEY[32] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
#define MONO 5000000u         /* ms on the monotonic clock of the sealing instance */
#define WALL 1796000000000ull /* the same instant, wall clock */
#define MONO2 9000000u        /* another instance's monotonic clock at the same instant */

static struct pg_session session(const char *tok, uint64_t refresh_at)
{
    struct pg_session s;
    memset(&s, 0, sizeof s);
    s.token_len = strlen(tok);
    memcpy(s.token, tok, s.token_len + 1);
    s.refresh_at_ms = refresh_at;
    return s;
}

static void round_trip(void **state)
{
    (void)state;
    unsigned char v[PG_RSESS_MAX];
    size_t n;
    uint64_t ttl;
    struct pg_session s = session("fake-session-hash-0123456789abcdef", MONO + 60000), o;
    assert_int_equal(pg_rsess_seal(KEY, "navixy", &s, MONO, WALL, v, &n, &ttl), 0);
    assert_int_equal(n, PG_RSESS_NONCE + 8 + s.token_len + PG_RSESS_TAG);
    assert_int_equal(ttl, 60000);
    /* no plaintext in the value */
    assert_null(memmem(v, n, "fake-session-hash", 17));
    /* opened 10 s later by an instance whose monotonic clock reads differently */
    assert_int_equal(pg_rsess_open(KEY, "navixy", v, n, MONO2 + 10000, WALL + 10000, &o), 0);
    assert_int_equal(o.token_len, s.token_len);
    assert_string_equal(o.token, s.token);
    assert_int_equal(o.refresh_at_ms, MONO2 + 60000);
    /* a second seal of the same session uses a fresh nonce */
    unsigned char v2[PG_RSESS_MAX];
    size_t n2;
    assert_int_equal(pg_rsess_seal(KEY, "navixy", &s, MONO, WALL, v2, &n2, &ttl), 0);
    assert_int_equal(n2, n);
    assert_memory_not_equal(v, v2, PG_RSESS_NONCE);
    /* no refresh time: kept a day, never due */
    s.refresh_at_ms = 0;
    assert_int_equal(pg_rsess_seal(KEY, "navixy", &s, MONO, WALL, v, &n, &ttl), 0);
    assert_int_equal(ttl, 86400000u);
    assert_int_equal(pg_rsess_open(KEY, "navixy", v, n, MONO2, WALL + 3600000, &o), 0);
    assert_int_equal(o.refresh_at_ms, 0);
}

static void refused(void **state)
{
    (void)state;
    unsigned char v[PG_RSESS_MAX];
    size_t n;
    uint64_t ttl;
    uint8_t other[32];
    memcpy(other, KEY, 32);
    other[31] ^= 1;
    struct pg_session s = session("fake-jwt.eyJ.sig", MONO + 60000), o;
    assert_int_equal(pg_rsess_seal(KEY, "openpanel", &s, MONO, WALL, v, &n, &ttl), 0);
    assert_int_equal(pg_rsess_open(other, "openpanel", v, n, MONO, WALL, &o), -1);
    assert_int_equal(pg_rsess_open(KEY, "openpanel2", v, n, MONO, WALL, &o), -1);
    for (size_t i = 0; i < n; i += 7) {
        v[i] ^= 0x20;
        assert_int_equal(pg_rsess_open(KEY, "openpanel", v, n, MONO, WALL, &o), -1);
        v[i] ^= 0x20;
    }
    assert_int_equal(pg_rsess_open(KEY, "openpanel", v, n - 1, MONO, WALL, &o), -1);
    assert_int_equal(pg_rsess_open(KEY, "openpanel", v, 10, MONO, WALL, &o), -1);
    /* due at WALL + 60 s: open before, not at or after */
    assert_int_equal(pg_rsess_open(KEY, "openpanel", v, n, MONO, WALL + 59999, &o), 0);
    assert_int_equal(pg_rsess_open(KEY, "openpanel", v, n, MONO, WALL + 60000, &o), -1);
    /* a session already due is not sealed */
    s.refresh_at_ms = MONO;
    assert_int_equal(pg_rsess_seal(KEY, "openpanel", &s, MONO, WALL, v, &n, &ttl), -1);
}

static void key_names(void **state)
{
    (void)state;
    char err[256], k1[256], k2[256], lk[256];
    const char *y1 = "upstreams:\n  - name: nx\n    url: http://127.0.0.1:9\n"
                     "    auth: {type: navixy_session, login: fake-u, password: fake-p1}\n";
    const char *y2 = "upstreams:\n  - name: nx\n    url: http://127.0.0.1:9\n"
                     "    auth: {type: navixy_session, login: fake-u, password: fake-p2}\n";
    struct pg_conf *c1 = pg_conf_load_string("t.yaml", y1, strlen(y1), err, sizeof err);
    struct pg_conf *c2 = pg_conf_load_string("t.yaml", y2, strlen(y2), err, sizeof err);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_int_equal(pg_rsess_key(c1, &c1->upstreams[0], "s", k1, sizeof k1), 0);
    assert_int_equal(pg_rsess_key(c2, &c2->upstreams[0], "s", k2, sizeof k2), 0);
    assert_int_equal(pg_rsess_key(c1, &c1->upstreams[0], "lock", lk, sizeof lk), 0);
    assert_int_equal(strncmp(k1, "panelgate:s:nx:", 15), 0);
    assert_int_equal(strlen(k1), 15 + 16);
    assert_string_not_equal(k1, k2); /* a changed password never finds the old session */
    assert_string_equal(lk, "panelgate:lock:nx");
    assert_null(strstr(k1, "fake-p1"));
    assert_int_equal(pg_rsess_key(c1, &c1->upstreams[0], "s", k1, 20), -1);
    pg_conf_unref(c1);
    pg_conf_unref(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(refused),
        cmocka_unit_test(key_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
