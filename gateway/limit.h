/* limit.h -- rate-limit admission (SPEC section 4): the buckets a request takes from (upstream,
 * longest matching route, consumer), reject or FIFO queue, panel cool-downs, the RateLimit
 * headers and /_gateway/me. One per worker, on a bucket store it owns. Queued requests cost no
 * thread and no timer of their own: one timer per queue, one queue per bucket key. */
#ifndef PG_LIMIT_H
#define PG_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "bucket.h"
#include "req.h"
#include "util.h"

struct event_base;
struct evbuffer;
struct pg_limit;

/* store: taken over (freed with the limiter). NULL on failure. */
struct pg_limit *pg_limit_new(struct event_base *base, struct pg_bucket_store *store);
void pg_limit_free(struct pg_limit *l); /* accepts NULL; no request may be queued */

/* The limiter reads its time from now_ms(arg) (default pg_clock_mono): unit tests hand in a fake
 * clock. Set it before the first admit; bucket and cool-down times are on this clock. */
void pg_limit_set_clock(struct pg_limit *l, pg_clock_fn *now_ms, void *arg);

/* Serve every queue now, as its timer does when it fires: heads that can take their tokens
 * go, requests past max_wait get their 429, then each queue's timer is armed again. The loop's
 * timers call this per queue; tests with a fake clock call it after moving the clock. */
void pg_limit_tick(struct pg_limit *l);

/* Admit r, whose upstream and consumer are known and whose r->rest is set: go(r)
 * (pg_limit_go_fn, req.h) runs now or when tokens come (queue mode; r->lwait links it meanwhile),
 * or r is answered 429 here. */
void pg_limit_admit(struct pg_limit *l, struct pg_req *r, pg_limit_go_fn *go);

/* The upstream refused with a 429 (or Navixy code 15): nothing reaches it for ms. */
void pg_limit_cooldown(struct pg_limit *l, const struct pg_upstream *up, uint64_t ms);

/* Requests waiting in upstream up's queue now. */
size_t pg_limit_queued(const struct pg_limit *l, const struct pg_upstream *up);

/* ms of cool-down left for upstream up. */
uint64_t pg_limit_cooldown_left(struct pg_limit *l, const struct pg_upstream *up);

/* The /_gateway/me document for consumer k. 0 ok, -1 out of memory. */
int pg_limit_me(struct pg_limit *l, const struct pg_conf *c, const struct pg_consumer *k,
                struct evbuffer *out);

#endif
