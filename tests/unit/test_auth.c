/* test_auth.c -- the expiry decision (SPEC section 1): at most one new login per upstream every
 * 10 s, and N requests refused together share one login. Time is a parameter. And the login
 * state machine on a fake clock and a fake login sender: single flight, session generations,
 * backoff 5 s doubling to 5 min, a failed login answering every waiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* ---- the state machine ---- */

struct fake {
    uint64_t now;
    int starts;   /* logins sent */
    int start_rc; /* what the next start returns */
};
static struct fake fk;
static struct pg_auth_sm machine; /* the one under test */

static uint64_t fake_now(void *arg)
{
    return ((const struct fake *)arg)->now;
}

static int fake_start(struct pg_auth_sm *m)
{
    (void)m;
    if (fk.start_rc == 0)
        fk.starts++;
    return fk.start_rc;
}

/* A request waiting for the login: what its callback saw, and in which order it ran. */
struct waiter {
    struct pg_auth_wait wt;
    int calls;
    int order;
    bool ok;
    struct pg_err err;
    enum pg_auth_state again; /* what acquiring again from inside the callback gave */
    uint64_t again_gen;
};
static int woken;

static void on_ready(struct pg_auth_wait *wt, bool ok, const struct pg_err *err)
{
    struct waiter *w = (struct waiter *)((char *)wt - offsetof(struct waiter, wt));
    w->calls++;
    w->order = woken++;
    w->ok = ok;
    memset(&w->err, 0, sizeof w->err);
    if (err)
        w->err = *err;
    /* what fwd.c does: acquire again, now that the login ended */
    struct pg_auth_wait again = { .cb = on_ready };
    const struct pg_session *s;
    struct pg_err e;
    w->again = pg_auth_sm_acquire(&machine, &again, &s, &w->again_gen, &e);
    assert_true(w->again != PG_AUTH_WAIT); /* the login just ended: nothing to queue behind */
}

static int sm_setup(void **state)
{
    (void)state;
    memset(&fk, 0, sizeof fk);
    fk.now = T0;
    woken = 0;
    pg_auth_sm_init(&machine, "p", fake_start, fake_now, &fk);
    return 0;
}

static enum pg_auth_state acquire(struct waiter *w, const struct pg_session **s, uint64_t *gen,
                                  struct pg_err *err)
{
    memset(w, 0, sizeof *w);
    w->wt.cb = on_ready;
    return pg_auth_sm_acquire(&machine, &w->wt, s, gen, err);
}

/* A login that ends with token tok, valid until refresh_at_ms (0: no refresh). */
static void login_ok(const char *tok, uint64_t refresh_at_ms)
{
    struct pg_session s;
    memset(&s, 0, sizeof s);
    s.token_len = strlen(tok);
    memcpy(s.token, tok, s.token_len + 1);
    s.refresh_at_ms = refresh_at_ms;
    pg_auth_sm_done(&machine, &s, NULL);
}

static void login_fails(int status)
{
    struct pg_err e;
    memset(&e, 0, sizeof e);
    e.upstream_status = status;
    pg_auth_sm_done(&machine, NULL, &e);
}

/* Five requests before the first session: one login, all five wait for it; the one that left
 * is not woken; the others are, in arrival order, and then sign with generation 1. */
static void single_flight(void **state)
{
    (void)state;
    struct waiter w[5];
    const struct pg_session *s;
    uint64_t gen = 99;
    struct pg_err err;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(acquire(&w[i], &s, &gen, &err), PG_AUTH_WAIT);
        assert_null(s);
    }
    assert_int_equal(fk.starts, 1);
    assert_int_equal(machine.logins, 1);
    assert_int_equal(machine.login_start_ms, T0);
    pg_auth_sm_cancel(&w[2].wt);
    pg_auth_sm_cancel(&w[2].wt); /* twice: harmless */
    fk.now += 300;
    login_ok("tok-1", 0);
    const int order[] = { 0, 1, -1, 2, 3 };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(w[i].calls, i == 2 ? 0 : 1);
        if (i == 2)
            continue;
        assert_true(w[i].ok);
        assert_int_equal(w[i].order, order[i]);
        assert_int_equal(w[i].again, PG_AUTH_READY);
        assert_int_equal(w[i].again_gen, 1);
    }
    struct waiter x;
    assert_int_equal(acquire(&x, &s, &gen, &err), PG_AUTH_READY);
    assert_non_null(s);
    assert_string_equal(s->token, "tok-1");
    assert_int_equal(gen, 1);
    assert_int_equal(fk.starts, 1);
}

/* Every login is a new generation: a session past its refresh time is renewed first (one login
 * for all who ask meanwhile), and an expired-session answer signed with an older generation
 * starts no login. */
static void generations(void **state)
{
    (void)state;
    struct waiter w[3];
    const struct pg_session *s;
    uint64_t gen;
    struct pg_err err;
    assert_int_equal(acquire(&w[0], &s, &gen, &err), PG_AUTH_WAIT);
    login_ok("tok-1", T0 + 60000);
    fk.now = T0 + 59999;
    assert_int_equal(acquire(&w[0], &s, &gen, &err), PG_AUTH_READY);
    assert_int_equal(gen, 1);
    fk.now = T0 + 60000; /* refresh time: log in again before signing */
    assert_int_equal(acquire(&w[1], &s, &gen, &err), PG_AUTH_WAIT);
    assert_int_equal(acquire(&w[2], &s, &gen, &err), PG_AUTH_WAIT);
    assert_int_equal(fk.starts, 2);
    login_ok("tok-2", 0);
    assert_int_equal(w[1].again_gen, 2);
    assert_int_equal(acquire(&w[0], &s, &gen, &err), PG_AUTH_READY);
    assert_string_equal(s->token, "tok-2");
    assert_int_equal(gen, 2);
    /* a request signed with generation 1 refused as expired: generation 2 serves its replay */
    assert_int_equal(pg_auth_sm_expired(&machine, 1, fk.now), PG_EXPIRY_REPLAY);
    assert_int_equal(machine.sess.token_len, 5);
    /* generation 2 refused within 10 s of its login: kept, no login */
    assert_int_equal(pg_auth_sm_expired(&machine, 2, fk.now + 1000), PG_EXPIRY_REFUSED);
    assert_int_equal(machine.sess.token_len, 5);
    /* later: forgotten, and the next acquire logs in (generation 3) */
    fk.now += PG_AUTH_RELOGIN_MIN_MS;
    assert_int_equal(pg_auth_sm_expired(&machine, 2, fk.now), PG_EXPIRY_RELOGIN);
    assert_int_equal(machine.sess.token_len, 0);
    assert_int_equal(acquire(&w[0], &s, &gen, &err), PG_AUTH_WAIT);
    assert_int_equal(fk.starts, 3);
    login_ok("tok-3", 0);
    assert_int_equal(w[0].again_gen, 3);
}

/* Failed logins: no new one before the backoff has passed, 5 s doubling to 5 min; a success
 * resets it. */
static void backoff_doubling(void **state)
{
    (void)state;
    static const uint64_t want_s[] = { 5, 10, 20, 40, 80, 160, 300, 300 };
    struct waiter w;
    const struct pg_session *s;
    uint64_t gen;
    struct pg_err err;
    for (size_t i = 0; i < sizeof want_s / sizeof want_s[0]; i++) {
        assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_WAIT);
        assert_int_equal(fk.starts, (int)i + 1);
        fk.now += 200; /* the login takes a while */
        login_fails(401);
        assert_int_equal(machine.backoff_ms, want_s[i] * 1000);
        uint64_t retry = fk.now + want_s[i] * 1000;
        fk.now = retry - 1;
        assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_FAILED);
        assert_int_equal(fk.starts, (int)i + 1); /* no login inside the backoff */
        fk.now = retry;
    }
    assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_WAIT);
    login_ok("tok", 0);
    assert_int_equal(machine.backoff_ms, 0);
    assert_int_equal(pg_auth_sm_expired(&machine, 1, fk.now + PG_AUTH_RELOGIN_MIN_MS),
                     PG_EXPIRY_RELOGIN);
    fk.now += PG_AUTH_RELOGIN_MIN_MS;
    assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_WAIT);
    login_fails(500);
    assert_int_equal(machine.backoff_ms, 5000); /* from the start again */
}

/* What status shows along a session's life: none, logging_in, valid with its age and time to
 * refresh, none again past the refresh time, backoff after a refused login with the time left
 * and the failure counted, valid again after the next login. */
static void status_states(void **state)
{
    (void)state;
    struct pg_auth_status st;
    pg_auth_sm_status(&machine, &st);
    assert_int_equal(st.state, PG_AS_NONE);
    assert_int_equal(st.expires_in_ms, -1);
    assert_int_equal(st.logins + st.failures + st.age_ms + st.backoff_ms, 0);
    struct waiter w;
    const struct pg_session *s;
    uint64_t gen;
    struct pg_err err;
    assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_WAIT);
    pg_auth_sm_status(&machine, &st);
    assert_int_equal(st.state, PG_AS_LOGGING_IN);
    assert_int_equal(st.logins, 1);
    fk.now += 250;
    login_ok("tok-1", fk.now + 60000);
    fk.now += 7000;
    pg_auth_sm_status(&machine, &st);
    assert_int_equal(st.state, PG_AS_VALID);
    assert_int_equal(st.age_ms, 7000);
    assert_int_equal(st.expires_in_ms, 53000);
    assert_string_equal(pg_auth_shown_name(st.state), "valid");
    fk.now += 53000; /* the refresh time: renewed by the next request, none until then */
    pg_auth_sm_status(&machine, &st);
    assert_int_equal(st.state, PG_AS_NONE);
    assert_int_equal(st.expires_in_ms, 0);
    assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_WAIT);
    fk.now += 100;
    login_fails(403);
    fk.now += 1500;
    pg_auth_sm_status(&machine, &st);
    assert_int_equal(st.state, PG_AS_BACKOFF);
    assert_int_equal(st.backoff_ms, PG_AUTH_BACKOFF_FIRST_MS - 1500);
    assert_int_equal(st.logins, 2);
    assert_int_equal(st.failures, 1);
    assert_string_equal(pg_auth_shown_name(st.state), "backoff");
    fk.now += PG_AUTH_BACKOFF_FIRST_MS;
    assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_WAIT);
    login_ok("tok-2", 0);
    pg_auth_sm_status(&machine, &st);
    assert_int_equal(st.state, PG_AS_VALID);
    assert_int_equal(st.expires_in_ms, -1); /* never refreshed by time */
    assert_int_equal(st.age_ms, 0);
    assert_int_equal(st.backoff_ms, 0);
    assert_int_equal(st.logins, 3);
    assert_int_equal(st.failures, 1);
}

/* A login that fails while requests wait answers every one of them with the reason; the next
 * requests inside the backoff get the same reason at once, without a login. */
static void failed_login_with_waiters(void **state)
{
    (void)state;
    struct waiter w[3], x;
    const struct pg_session *s;
    uint64_t gen;
    struct pg_err err;
    for (int i = 0; i < 3; i++)
        assert_int_equal(acquire(&w[i], &s, &gen, &err), PG_AUTH_WAIT);
    struct pg_err e;
    memset(&e, 0, sizeof e);
    e.upstream_status = 403;
    memcpy(e.upstream_code, "BAD_KEY", 8);
    pg_auth_sm_done(&machine, NULL, &e);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_false(w[i].ok);
        assert_int_equal(w[i].order, i);
        assert_int_equal(w[i].err.code, PG_E_UPSTREAM_AUTH_FAILED);
        assert_int_equal(w[i].err.upstream_status, 403);
        assert_string_equal(w[i].err.upstream_code, "BAD_KEY");
        assert_string_equal(w[i].err.msg, "p rejected the gateway's credentials");
        assert_int_equal(w[i].again, PG_AUTH_FAILED); /* inside the backoff already */
    }
    assert_null(machine.waiters.head);
    memset(&err, 0, sizeof err);
    assert_int_equal(acquire(&x, &s, &gen, &err), PG_AUTH_FAILED);
    assert_int_equal(err.upstream_status, 403);
    assert_string_equal(err.upstream_code, "BAD_KEY");
    assert_int_equal(x.calls, 0);
    assert_null(machine.waiters.head);
    assert_int_equal(fk.starts, 1);
}

/* A login that cannot even be sent: FAILED at once, nobody queued, no backoff. */
static void start_fails(void **state)
{
    (void)state;
    struct waiter w;
    const struct pg_session *s;
    uint64_t gen;
    struct pg_err err;
    fk.start_rc = -1;
    assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_FAILED);
    assert_int_equal(err.code, PG_E_UPSTREAM_AUTH_FAILED);
    assert_string_equal(err.msg, "p login could not be started");
    assert_null(machine.waiters.head);
    assert_false(machine.logging_in);
    assert_int_equal(machine.logins, 0);
    fk.start_rc = 0;
    assert_int_equal(acquire(&w, &s, &gen, &err), PG_AUTH_WAIT);
    assert_int_equal(fk.starts, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(within_10s_refused),
        cmocka_unit_test(after_10s_relogin),
        cmocka_unit_test(newer_session_replays),
        cmocka_unit_test(burst_shares_one_login),
        cmocka_unit_test(always_refused_path),
        cmocka_unit_test_setup(single_flight, sm_setup),
        cmocka_unit_test_setup(generations, sm_setup),
        cmocka_unit_test_setup(backoff_doubling, sm_setup),
        cmocka_unit_test_setup(failed_login_with_waiters, sm_setup),
        cmocka_unit_test_setup(start_fails, sm_setup),
        cmocka_unit_test_setup(status_states, sm_setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
