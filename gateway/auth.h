/* auth.h -- upstream sessions for login-based adapters (SPEC section 1): one login in flight
 * per upstream (single flight), requests that need it queued on the loop, backoff after a failed
 * login (5 s doubling to 5 min). The login itself is a curl transfer this module runs; plugins
 * only build the request and parse the answer. State lives in the config snapshot's upstream
 * (pg_upstream.rt) and dies with it, shared by every worker of the process: the hub's lock
 * guards it, a login runs on the loop of the worker that started it, and each waiter hears the
 * outcome on its own loop through its worker's inbox (hub.h). The state machine itself takes no
 * lock (its callers do), so tests drive it alone. */
#ifndef PG_AUTH_H
#define PG_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "hub.h"
#include "req.h"
#include "util.h"

struct pg_auth_sm;
struct pg_auth_wait;

/* The login ended: ok, or not with err saying why (err is borrowed for the call). */
typedef void pg_auth_ready_fn(struct pg_auth_wait *wt, bool ok, const struct pg_err *err);

/* A queued request; embedded in the waiter's own state. */
struct pg_auth_wait {
    struct pg_dlink link;  /* in sm's waiters */
    struct pg_auth_sm *sm; /* non-NULL while queued */
    pg_auth_ready_fn *cb;  /* the state machine's: runs inside pg_auth_sm_done */
    /* pg_auth_acquire's waiters: cb posts the outcome to `in`, and `ready` runs on that loop */
    pg_auth_ready_fn *ready;
    struct pg_inbox *in;
    struct pg_post post;
    bool ok;
    struct pg_err err;
};

enum pg_auth_state {
    PG_AUTH_READY,  /* *s and *gen are set: sign with them now */
    PG_AUTH_WAIT,   /* wt is queued; wt->cb runs when the login ends */
    PG_AUTH_FAILED, /* the last login failed and the backoff has not passed; err says why */
};

/* Backoff after a failed login: the first wait, doubled by every further failure up to the
 * last; a successful login resets it. */
#define PG_AUTH_BACKOFF_FIRST_MS 5000u
#define PG_AUTH_BACKOFF_MAX_MS 300000u

/* Send a login for sm (auth.c: a curl transfer). 0: sent, and pg_auth_sm_done follows once, from
 * the loop, never inside this call; -1: it could not be sent. */
typedef int pg_auth_start_fn(struct pg_auth_sm *sm);

/* One upstream's login state machine, without I/O: single flight, session generations, backoff,
 * the waiter queue. auth.c embeds one per upstream and sends the logins; tests drive it with a
 * fake start and clock. Fields are read-only outside auth.c. */
struct pg_auth_sm {
    const char *name; /* the upstream's, for messages; borrowed */
    pg_auth_start_fn *start;
    pg_clock_fn *now_ms; /* every _ms below is on this clock */
    void *now_arg;
    struct pg_session sess;       /* token_len 0: none (not yet, or forgotten as expired) */
    uint64_t gen;                 /* bumped by every successful login */
    uint64_t logins;              /* logins started */
    uint64_t failures;            /* logins that failed */
    uint64_t sess_at_ms;          /* when sess was got (a login, or adopted) */
    uint64_t login_start_ms;      /* when the last one started: relogins are throttled from it */
    uint64_t prev_login_start_ms; /* the one before (pg_auth_sm_adopt puts it back) */
    bool adopting;
    bool logging_in;
    uint64_t backoff_ms;     /* 0 after a success; else the wait the last failure set */
    uint64_t retry_at_ms;    /* no new login before this */
    struct pg_err last_err;  /* why the last login failed: FAILED answers carry it */
    struct pg_dlist waiters; /* pg_auth_wait.link, in arrival order */
};

/* Zeroed, with its name, login starter and clock (pg_clock_mono outside tests). */
void pg_auth_sm_init(struct pg_auth_sm *sm, const char *name, pg_auth_start_fn *start,
                     pg_clock_fn *now_ms, void *now_arg);

/* The session to sign with now (READY), or wt queued behind the one login in flight, starting
 * it if none is (WAIT), or FAILED: within the backoff of a failed login, or the login could not
 * be started (nothing is queued then). A session past its refresh_at_ms is renewed first. */
enum pg_auth_state pg_auth_sm_acquire(struct pg_auth_sm *sm, struct pg_auth_wait *wt,
                                      const struct pg_session **s, uint64_t *gen,
                                      struct pg_err *err);

/* The login started by sm's start ended: with session s (copied; a new generation) or, s NULL,
 * failed with err (the backoff doubles). Every waiter's callback runs, in arrival order; a
 * callback may call pg_auth_sm_acquire again. */
void pg_auth_sm_done(struct pg_auth_sm *sm, const struct pg_session *s, const struct pg_err *err);

/* Leave sm's queue. Accepts a waiter that is not queued. */
void pg_auth_sm_cancel(struct pg_auth_wait *wt);

/* The login sm's start began was not needed: session s, made elsewhere (another instance's,
 * through a redis store), came instead. As pg_auth_sm_done with s, but it counts as no login:
 * logins and the relogin throttle are as before the start. */
void pg_auth_sm_adopt(struct pg_auth_sm *sm, const struct pg_session *s);

/* A session for upstream index up of conf, for worker w: READY with the session copied into *s
 * (*has set; adapters without login: *has false), or WAIT (wt->ready, set by the caller, runs
 * on w's loop once the login ends), or FAILED with err. */
enum pg_auth_state pg_auth_acquire(struct pg_worker *w, struct pg_conf *conf, int up,
                                   struct pg_auth_wait *wt, struct pg_session *s, bool *has,
                                   uint64_t *gen, struct pg_err *err);

/* What /_gateway/status shows of an upstream's session (SPEC section 6). */
enum pg_auth_shown { PG_AS_NONE, PG_AS_VALID, PG_AS_LOGGING_IN, PG_AS_BACKOFF };
struct pg_auth_status {
    enum pg_auth_shown state;
    uint64_t age_ms;       /* since the session in use was got; 0 without one */
    int64_t expires_in_ms; /* until it is renewed; -1: no session, or it is never renewed */
    uint64_t logins, failures;
    uint64_t backoff_ms; /* left before the next login may be tried */
};
const char *pg_auth_shown_name(enum pg_auth_shown s);

/* sm's state as status shows it, on sm's clock. */
void pg_auth_sm_status(const struct pg_auth_sm *sm, struct pg_auth_status *st);

/* The session state of upstream up of conf into *st. False (st untouched) for an adapter that
 * has no session. Takes the hub lock. */
bool pg_auth_status(struct pg_hub *hub, const struct pg_conf *conf, int up,
                    struct pg_auth_status *st);

/* Leave the queue, or drop an outcome not yet run (the caller went away). Accepts a waiter that
 * waits for nothing. On the waiter's own loop. */
void pg_auth_cancel(struct pg_auth_wait *wt);

/* A worker is going: logins still running on its loop (no request waits for them any more) are
 * stopped as failed. On that worker's thread, before its curl multi goes. */
void pg_auth_worker_stop(struct pg_worker *w);

/* An expired-session answer leads to at most one new login per upstream every this many ms
 * (SPEC section 1): a panel path that always answers 401 must not cost a login per request. */
#define PG_AUTH_RELOGIN_MIN_MS 10000u

/* What an expired-session answer to a request leads to. */
enum pg_auth_expiry {
    PG_EXPIRY_REPLAY,  /* replay it: a newer session, or the login already under way, serves it */
    PG_EXPIRY_RELOGIN, /* the session was forgotten: the replay starts the one new login */
    PG_EXPIRY_REFUSED, /* the last login started under PG_AUTH_RELOGIN_MIN_MS ago: no login, the
                        * caller gets the panel's own error */
};

/* An upstream's login state as the expiry decision sees it. */
struct pg_auth_view {
    uint64_t gen;            /* generation of the newest session (0: none yet) */
    bool has_session;        /* that session is still held (not forgotten) */
    bool logging_in;         /* a login is under way */
    uint64_t logins;         /* logins started so far */
    uint64_t login_start_ms; /* when the last one started (the state machine's clock) */
};

/* The decision alone, pure (time is a parameter) for tests: a request signed with generation
 * gen got an expired-session answer at now_ms. N requests refused together with the same
 * generation: the first gets RELOGIN (or REFUSED), the others REPLAY once the session is
 * forgotten, so they share the one login. */
enum pg_auth_expiry pg_auth_expiry_judge(const struct pg_auth_view *v, uint64_t gen,
                                         uint64_t now_ms);

/* A request signed with session generation gen was refused as expired at now_ms: judge it (see
 * pg_auth_expiry_judge) and on RELOGIN forget that session. */
enum pg_auth_expiry pg_auth_expired(struct pg_worker *w, struct pg_conf *conf, int up, uint64_t gen,
                                    uint64_t now_ms);

/* pg_auth_expired on one state machine (now_ms on its clock). */
enum pg_auth_expiry pg_auth_sm_expired(struct pg_auth_sm *sm, uint64_t gen, uint64_t now_ms);

/* The secrets in force for upstream up of conf: its adapter's config secrets and the credential
 * of s, the session a request was signed with (NULL: none) (the plugin's `secrets` op), as spans
 * into out[0..cap) borrowed from the config and s. Returns how many. Panel text copied into an
 * error is redacted with them (redact.h). */
size_t pg_auth_secrets(const struct pg_conf *conf, int up, const struct pg_session *s,
                       struct pg_span *out, size_t cap);

#endif
