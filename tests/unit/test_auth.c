/* test_auth.c -- the expiry decision (SPEC section 1): at most one new login per upstream every
 * 10 s, and N requests refused together share one login. Time is a parameter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/auth.h"

#define T0 1000000u /* ms: when the last login started */

/* An upstream holding the session of generation 3, logged in at T0, no login under way. */
static struct pg_auth_view live(void)
{
    return (struct pg_auth_view){
        .gen = 3, .has_session = true, .logging_in = false, .logins = 3, .login_start_ms = T0
    };
}

static void within_10s_refused(void **state)
{
    (void)state;
    struct pg_auth_view v = live();
    assert_int_equal(pg_auth_expiry_judge(&v, 3, T0), PG_EXPIRY_REFUSED);
    assert_int_equal(pg_auth_expiry_judge(&v, 3, T0 + 1), PG_EXPIRY_REFUSED);
    assert_int_equal(pg_auth_expiry_judge(&v, 3, T0 + PG_AUTH_RELOGIN_MIN_MS - 1),
                     PG_EXPIRY_REFUSED);
    /* a clock before the login's start (a caller's mistake): no login either */
    assert_int_equal(pg_auth_expiry_judge(&v, 3, T0 - 5), PG_EXPIRY_REFUSED);
}

static void after_10s_relogin(void **state)
{
    (void)state;
    struct pg_auth_view v = live();
    assert_int_equal(pg_auth_expiry_judge(&v, 3, T0 + PG_AUTH_RELOGIN_MIN_MS), PG_EXPIRY_RELOGIN);
    assert_int_equal(pg_auth_expiry_judge(&v, 3, T0 + 86400000u), PG_EXPIRY_RELOGIN);
}

static void newer_session_replays(void **state)
{
    (void)state;
    struct pg_auth_view v = live();
    /* signed with generation 2, refused: generation 3 replaced it already, no login needed,
     * whenever the last login was */
    assert_int_equal(pg_auth_expiry_judge(&v, 2, T0 + 1), PG_EXPIRY_REPLAY);
    assert_int_equal(pg_auth_expiry_judge(&v, 2, T0 + PG_AUTH_RELOGIN_MIN_MS), PG_EXPIRY_REPLAY);
}

/* N requests signed with the same generation refused together: the first gets the login, the
 * others join it; each is replayed once. Modelled the way auth.c updates its state. */
static void burst_shares_one_login(void **state)
{
    (void)state;
    struct pg_auth_view v = live();
    uint64_t now = T0 + 60000u;
    int relogins = 0, replays = 0;
    for (int i = 0; i < 50; i++) {
        enum pg_auth_expiry e = pg_auth_expiry_judge(&v, 3, now + (uint64_t)i);
        if (e == PG_EXPIRY_RELOGIN) {
            relogins++;
            v.has_session = false; /* pg_auth_expired forgets it */
            if (i == 0) {          /* the replay's acquire starts the login */
                v.logging_in = true;
                v.logins++;
                v.login_start_ms = now;
            }
        } else if (e == PG_EXPIRY_REPLAY) {
            replays++;
        }
        if (i == 20) { /* the login ends meanwhile: generation 4 */
            v.logging_in = false;
            v.has_session = true;
            v.gen = 4;
        }
    }
    assert_int_equal(relogins, 1);
    assert_int_equal(replays, 49);
    assert_int_equal(v.logins, 4);
}

/* A session refused within 10 s keeps being used (it is not forgotten), and the first refusal
 * 10 s after the login brings the one new login. */
static void always_refused_path(void **state)
{
    (void)state;
    struct pg_auth_view v = live();
    int logins = 0;
    for (uint64_t t = T0; t < T0 + 25000u; t += 500) {
        enum pg_auth_expiry e = pg_auth_expiry_judge(&v, v.gen, t);
        assert_int_not_equal(e, PG_EXPIRY_REPLAY);
        if (e == PG_EXPIRY_RELOGIN) {
            logins++;
            v.gen++;
            v.logins++;
            v.login_start_ms = t;
        }
    }
    /* 25 s of refusals: logins at T0 + 10 s and T0 + 20 s only */
    assert_int_equal(logins, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(within_10s_refused),    cmocka_unit_test(after_10s_relogin),
        cmocka_unit_test(newer_session_replays), cmocka_unit_test(burst_shares_one_login),
        cmocka_unit_test(always_refused_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
