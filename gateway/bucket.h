/* bucket.h -- token buckets (SPEC section 4): exact integer refill on an injected monotonic clock,
 * all-or-nothing takes over several buckets, and the bucket store (local now, redis later) that
 * keeps buckets and upstream cool-downs by key. Types first, functions after. */
#ifndef PG_BUCKET_H
#define PG_BUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* ---- types ---- */

/* Limits a rate must respect for the math below to stay inside 64 bits; conf.c enforces the same
 * (RATE_MAX, and periods of s, min or hour). Largest level: 1e9 x 3.6e6 = 3.6e15 units. */
#define PG_BUCKET_MAX_RATE 1000000000ull   /* rate_n, tokens per period */
#define PG_BUCKET_MAX_BURST 1000000000ull  /* burst, tokens */
#define PG_BUCKET_MAX_PERIOD_MS 3600000ull /* one hour */

/* A token bucket. The level counts units of (token x ms / period_ms): one token is period_ms
 * units, each elapsed ms adds rate_n units, a full bucket holds burst x period_ms units. So
 * fractional tokens are exact integers and nothing drifts however often it is refilled.
 * Fields are for reading (tests, a redis store rebuilding one from a script's reply); change
 * them only through the functions below. Invariant: level <= cap. */
struct pg_bucket {
    uint64_t level;     /* units, as of last_ms */
    uint64_t last_ms;   /* monotonic ms of the last refill; never moves backwards */
    uint64_t rate_n;    /* units added per ms (= tokens per period) */
    uint64_t period_ms; /* units in one token */
    uint64_t cap;       /* burst x period_ms units */
};

/* What one bucket tells the caller, for the RateLimit-* headers, Retry-After and queue timers. */
struct pg_bucket_info {
    uint64_t remaining; /* whole tokens left: RateLimit-Remaining, r= */
    uint64_t limit;     /* burst, tokens: RateLimit-Limit, q= */
    uint64_t reset_s;   /* s until full again, rounded up (0 when full): RateLimit-Reset */
    uint64_t retry_s;   /* s until one token, rounded up (0 when one is there): t=, Retry-After */
    uint64_t wait_ms;   /* ms until one token, rounded up (0 when one is there): queue timers */
    uint64_t window_s;  /* s to refill the whole burst from empty, rounded up: w= */
};

/* Buckets one request can touch: its upstream, the longest matching route, its consumer. */
#define PG_BUCKET_MAX_KEYS 3

struct pg_bucket_result;

/* Completion of a store call that answered PG_BUCKET_PENDING. */
typedef void pg_bucket_done_fn(struct pg_bucket_result *r, void *arg);

/* Store call answers. */
enum { PG_BUCKET_DONE = 0, PG_BUCKET_PENDING = 1 };

struct pg_bucket_result {
    /* in: for stores that answer later (redis); called once from the event loop, never from
     * inside the call that returned PG_BUCKET_PENDING, and not after cancel. The local store
     * answers at once and ignores both. */
    pg_bucket_done_fn *done;
    void *arg;
    /* out */
    int status;       /* 0 answered; -1 the store failed (rate_limit_store.on_error decides) */
    bool taken;       /* take_all: one token came out of every bucket */
    uint64_t wait_ms; /* not taken: ms until every bucket that lacked a token has one (the
                       * longest of their waits); 0 when taken */
    size_t n;         /* entries in b */
    struct pg_bucket_info b[PG_BUCKET_MAX_KEYS]; /* b[i] describes keys[i], after any take */
};

struct pg_bucket_store;

/* A bucket store: the local one below, or one shared through redis (an atomic Lua script doing
 * the same integer arithmetic; its replies are turned into pg_bucket_info with
 * pg_bucket_describe). Keys are NUL-terminated strings built by the caller from configured names:
 * "u:<upstream>", "r:<upstream>:<route path>", "c:<consumer>"; the cool-down of an upstream uses
 * its "u:" key. Keys and rates are borrowed for the duration of the call only. */
struct pg_bucket_store_ops {
    /* One token from the bucket of every keys[i] (created full at first use, with rates[i]; a
     * bucket whose stored rate differs from rates[i] is re-rated first, see
     * pg_bucket_reconfigure), or from none. n <= PG_BUCKET_MAX_KEYS; a key listed twice counts
     * once. Returns PG_BUCKET_DONE with r filled, PG_BUCKET_PENDING (r filled before r->done
     * runs; r must stay valid until then or until cancel), or -1: invalid arguments (a rate
     * outside the limits, n too large) or the store failed; r->status is -1 and nothing was
     * taken. */
    int (*take_all)(struct pg_bucket_store *s, const char *const *keys,
                    const struct pg_rate_limit *const *rates, size_t n, uint64_t now_ms,
                    struct pg_bucket_result *r);
    /* The state of key's bucket at now_ms without taking or creating anything (a missing bucket
     * is reported full), for /_gateway/me: r->n = 1, r->taken false. Returns as take_all. */
    int (*peek)(struct pg_bucket_store *s, const char *key, const struct pg_rate_limit *rate,
                uint64_t now_ms, struct pg_bucket_result *r);
    /* Hold the upstream until until_ms (monotonic ms): a later deadline replaces an earlier one,
     * never the reverse. 0 ok, -1 out of memory or the store failed. */
    int (*cooldown_set)(struct pg_bucket_store *s, const char *upstream_key, uint64_t until_ms);
    /* ms of cool-down left at now_ms; 0 when none. Synchronous: a redis store answers from a
     * worker-local mirror of the cool-downs it has seen. */
    uint64_t (*cooldown_get)(struct pg_bucket_store *s, const char *upstream_key, uint64_t now_ms);
    /* Forget the pending answer for r (its request is being freed): r->done will not run. NULL
     * for stores that never answer PG_BUCKET_PENDING. */
    void (*cancel)(struct pg_bucket_store *s, struct pg_bucket_result *r);
    void (*free)(struct pg_bucket_store *s);
};

/* Implementations embed this first (as `super`) and fill ops. */
struct pg_bucket_store {
    const struct pg_bucket_store_ops *ops;
};

/* ---- the math: pure, now_ms is always a parameter ---- */

/* A full bucket for rl at now_ms. 0 ok; -1 (b untouched) when rl is not set or a value is 0 or
 * beyond PG_BUCKET_MAX_*. */
int pg_bucket_init(struct pg_bucket *b, const struct pg_rate_limit *rl, uint64_t now_ms);

/* Switch b to rl (a config reload changed its rate): refill at now_ms, then keep the tokens it
 * holds, fractions included (rounded down), but no more than the new burst, so a reload neither
 * grants a free burst nor takes tokens away. 0 ok; -1 (b untouched) as pg_bucket_init. */
int pg_bucket_reconfigure(struct pg_bucket *b, const struct pg_rate_limit *rl, uint64_t now_ms);

/* Does b already run at rl's rate and burst? (mode and max_wait are not the bucket's business) */
bool pg_bucket_same_rate(const struct pg_bucket *b, const struct pg_rate_limit *rl);

/* Add what accrued since last_ms, capped at full. A now_ms before last_ms changes nothing. */
void pg_bucket_refill(struct pg_bucket *b, uint64_t now_ms);

/* The functions below read the level b would have at now_ms (a now_ms before last_ms reads the
 * stored level) and never change b. */

/* Whole tokens available. */
uint64_t pg_bucket_remaining(const struct pg_bucket *b, uint64_t now_ms);

/* ms until one whole token is there, 0 if one is: the smallest w such that the level at
 * now_ms + w holds a token, so waiting that long always suffices. */
uint64_t pg_bucket_wait_ms(const struct pg_bucket *b, uint64_t now_ms);

/* Seconds until full again, rounded up; 0 when full. For RateLimit-Reset. */
uint64_t pg_bucket_reset_s(const struct pg_bucket *b, uint64_t now_ms);

/* Seconds until one token, rounded up: pg_bucket_wait_ms in whole seconds, so at least 1 when a
 * token is missing and 0 when one is there. For Retry-After and t=. */
uint64_t pg_bucket_retry_s(const struct pg_bucket *b, uint64_t now_ms);

/* Seconds to refill the whole burst from empty, rounded up (>= 1): w= of RateLimit-Policy. */
uint64_t pg_bucket_window_s(const struct pg_bucket *b);

/* Burst, in tokens. */
uint64_t pg_bucket_burst(const struct pg_bucket *b);

/* All of the above at now_ms in one struct. */
void pg_bucket_describe(const struct pg_bucket *b, uint64_t now_ms, struct pg_bucket_info *out);

/* Refill b[0..n) at now_ms, then take one token from every bucket, or from none. A pointer listed
 * twice counts once. Returns 0 (taken; *wait_ms = 0) or -1 (nothing taken; *wait_ms = the longest
 * pg_bucket_wait_ms among the buckets that lack a token). wait_ms may be NULL; n == 0 takes
 * nothing and returns 0. */
int pg_bucket_take_all(struct pg_bucket *const *b, size_t n, uint64_t now_ms, uint64_t *wait_ms);

/* Index of the tightest of v[0..n), the one whose numbers go in the RateLimit headers: fewest
 * remaining tokens; on a tie the smaller limit; then the first. n when n == 0. */
size_t pg_bucket_tightest(const struct pg_bucket_info *v, size_t n);

/* ---- stores ---- */

/* The in-process store, owned by one worker (no locking, no global state). Entries are made by
 * take_all and cooldown_set for keys the caller builds from the config, so the table holds at most
 * upstreams (bucket + cool-down share the "u:" key) + routes + consumers entries of the configs
 * in use. A bucket that has refilled to full, with no cool-down running, is the same as no entry
 * (a new one starts full), so entries of names dropped by a reload are swept when the table is
 * rebuilt. max_keys (>= 1) is a hard bound on top: a new key past it makes take_all and
 * cooldown_set fail (-1) once a sweep cannot make room. About 80 bytes + the key per entry, and
 * 2 to 8 slot pointers per entry. The caller owns the store (pg_bucket_store_free); NULL on
 * max_keys 0 or out of memory. */
struct pg_bucket_store *pg_bucket_local_new(size_t max_keys);

/* Set key's bucket in the local store s to b (made if absent): the mirror of a shared bucket
 * as redis last answered (rstore.h), which /_gateway/me, the queue timers and the on_error:
 * allow fallback read. 0 ok, -1 out of memory or max_keys reached. */
int pg_bucket_local_put(struct pg_bucket_store *s, const char *key, const struct pg_bucket *b);

/* s->ops->free(s); accepts NULL. */
void pg_bucket_store_free(struct pg_bucket_store *s);

#endif
