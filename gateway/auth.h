/* auth.h -- upstream sessions for login-based adapters (SPEC section 1): one login in flight
 * per upstream (single flight), requests that need it queued on the loop, backoff after a failed
 * login (5 s doubling to 5 min). The login itself is a curl transfer this module runs; plugins
 * only build the request and parse the answer. State lives in the config snapshot's upstream
 * (pg_upstream.rt) and dies with it. One worker: no locking. */
#ifndef PG_AUTH_H
#define PG_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "req.h"

struct pg_auth_rt;
struct pg_auth_wait;

/* The login ended: ok, or not with err saying why (err is borrowed for the call). */
typedef void pg_auth_ready_fn(struct pg_auth_wait *wt, bool ok, const struct pg_err *err);

/* A queued request; embedded in the waiter's own state. */
struct pg_auth_wait {
    struct pg_auth_wait *prev, *next;
    struct pg_auth_rt *rt; /* non-NULL while queued */
    pg_auth_ready_fn *cb;
};

enum pg_auth_state {
    PG_AUTH_READY,  /* *s and *gen are set: sign with them now */
    PG_AUTH_WAIT,   /* wt is queued; wt->cb runs when the login ends */
    PG_AUTH_FAILED, /* the last login failed and the backoff has not passed; err says why */
};

/* A session for upstream index up of conf, for worker w. Adapters without login are always
 * READY with *s = NULL. */
enum pg_auth_state pg_auth_acquire(struct pg_worker *w, struct pg_conf *conf, int up,
                                   struct pg_auth_wait *wt, const struct pg_session **s,
                                   uint64_t *gen, struct pg_err *err);

/* Leave the queue (the caller went away). Accepts a waiter that is not queued. */
void pg_auth_cancel(struct pg_auth_wait *wt);

/* A request signed with session generation gen was refused as expired: forget that session
 * (unless a newer one replaced it already). */
void pg_auth_expired(struct pg_conf *conf, int up, uint64_t gen);

/* The secrets in force for upstream up of conf: its adapter's config secrets and the current
 * session's credential (the plugin's `secrets` op), as spans into out[0..cap) borrowed from
 * the config and the session; valid until the next login or expiry on this loop. Returns how
 * many. Panel text copied into an error is redacted with them (redact.h). */
size_t pg_auth_secrets(const struct pg_conf *conf, int up, struct pg_span *out, size_t cap);

/* Logins sent so far for upstream up (for tests and metrics). */
uint64_t pg_auth_logins(const struct pg_conf *conf, int up);

#endif
