/* limit.h -- rate-limit admission (SPEC section 4): the buckets a request takes from (upstream,
 * longest matching route, consumer), reject or FIFO queue, panel cool-downs, the RateLimit
 * headers and /_gateway/me. One per process (the hub's), on a bucket store it owns, shared by
 * every worker: a queue is FIFO across workers. Each worker reaches it through its port, which
 * holds that worker's timers; a queued request's verdict reaches it through its worker's inbox
 * (hub.h), so go() always runs on the request's own loop. Queued requests cost no thread and no
 * timer of their own: one queue per bucket key, one timer per queue and worker. */
#ifndef PG_LIMIT_H
#define PG_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bucket.h"
#include "req.h"
#include "util.h"

struct event_base;
struct evbuffer;
struct pg_hub;
struct pg_inbox;
struct pg_limit;
struct pg_limit_port;

/* store: taken over (freed with the limiter; NULL fails). hub->mu guards the queues. NULL on
 * failure. */
struct pg_limit *pg_limit_new(struct pg_hub *hub, struct pg_bucket_store *store);
void pg_limit_free(struct pg_limit *l); /* accepts NULL; no request may be queued */

/* A worker's way in: its loop (queue timers) and inbox (verdicts). Free it on that worker's
 * thread, before its loop goes. */
struct pg_limit_port *pg_limit_port_new(struct pg_limit *l, struct event_base *base,
                                        struct pg_inbox *in);
void pg_limit_port_free(struct pg_limit_port *p); /* accepts NULL */

/* With rate_limit_store redis, p's worker asks redis through rd (borrowed; NULL: no store). */
struct pg_redis;
void pg_limit_port_set_redis(struct pg_limit_port *p, struct pg_redis *rd);

/* The limiter reads its time from now_ms(arg) (default pg_clock_mono): unit tests hand in a fake
 * clock. Set it before the first admit; bucket and cool-down times are on this clock. */
void pg_limit_set_clock(struct pg_limit *l, pg_clock_fn *now_ms, void *arg);

/* Serve every queue now as p's worker, as a queue's timer does when it fires: heads that can take
 * their tokens go, requests past max_wait get their 429, then each queue's timer is armed again
 * on p's loop; then p's inbox is drained (other workers' verdicts wait in theirs). Tests with a
 * fake clock call it after moving the clock. */
void pg_limit_tick(struct pg_limit_port *p);

/* Admit r, whose upstream and consumer are known and whose r->rest is set: go(r)
 * (pg_limit_go_fn, req.h) runs now or when tokens come (queue mode; r->lwait links it meanwhile),
 * or r is answered 429 here. */
void pg_limit_admit(struct pg_limit_port *p, struct pg_req *r, pg_limit_go_fn *go);

/* The upstream up of c refused with a 429 (or Navixy code 15): nothing reaches it for ms, from
 * any worker (and with a redis store, from any instance). */
void pg_limit_cooldown(struct pg_limit_port *p, const struct pg_conf *c,
                       const struct pg_upstream *up, uint64_t ms);

/* Requests waiting in upstream up's queue now, all workers'. */
size_t pg_limit_queued(struct pg_limit *l, const struct pg_upstream *up);

/* ms of cool-down left for upstream up. */
uint64_t pg_limit_cooldown_left(struct pg_limit *l, const struct pg_upstream *up);

/* The /_gateway/me document for consumer k (SPEC section 6). NULL out of memory. */
json_t *pg_limit_me(struct pg_limit *l, const struct pg_conf *c, const struct pg_consumer *k);

/* Upstream up's buckets (its own, then its routes') as status shows them (SPEC section 6):
 * [{"scope", "key", "limit", "remaining", "reset_s"}]. NULL out of memory. */
json_t *pg_limit_buckets(struct pg_limit *l, const struct pg_upstream *up);

#endif
