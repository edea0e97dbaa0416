/* limitint.h -- what limit.c (admission) and limitq.c (queues, ports, timers) share: the
 * limiter's structures and the functions one side calls on the other. Not for other modules. */
#ifndef PG_LIMITINT_H
#define PG_LIMITINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "bucket.h"
#include "hub.h"
#include "limit.h"
#include "metrics.h"
#include "redis.h"
#include "req.h"
#include "rstore.h"
#include "util.h"

#define PG_KEY_MAX 200

/* The bucket key "<prefix><a>" or "<prefix><a>:<b>" ("u:name", "r:name:/path", "c:name") into
 * out (PG_KEY_MAX). False (out "") when it does not fit: a 200-byte name cannot come from a
 * valid config. */
bool pg_lim_key(char *out, const char *prefix, const char *a, const char *b);

/* One FIFO of requests waiting for tokens of one bucket key (by name: survives reloads), from
 * any worker. The worker that last served or armed it holds the timer that serves it next
 * (armer, at due_ms); a stale timer on another worker that fires earlier finds nothing due. */
struct pg_limit_queue {
    struct pg_limit_queue *next;
    struct pg_limit *l;
    char name[PG_KEY_MAX]; /* the bucket key its requests wait for */
    struct pg_dlist waits; /* pg_limit_wait.link, first come first */
    size_t n;
    struct pg_limit_port *armer;
    uint64_t due_ms;
    /* redis store: the head's tokens are being asked for (one ask in flight per queue) */
    bool asking;
    struct pg_limit_wait *asked; /* the head it asked for; tokens are fungible if it left */
    struct pg_limit_port *asker;
};

/* A lease (redis store): tokens redis gave this process ahead of requests for one set of
 * buckets, used by the next requests for PG_LEASE_MS; unused ones lapse. The buckets were
 * debited in redis, so the fleet never admits more than they hold: a lease can only under-use.
 * Only for rates that refill at least 2 tokens per PG_LEASE_MS; a cool-down drops them all. */
#define PG_LEASE_MS 10
#define PG_LEASE_MAX 32
#define PG_LEASE_SLOTS 64
struct pg_lease {
    struct pg_lease *next;
    uint64_t hash;
    uint64_t left;               /* tokens still to hand out */
    uint64_t until_ms;           /* then the rest lapse */
    struct pg_bucket_result res; /* for the RateLimit headers; remaining counted down */
    char keys[];                 /* the bucket keys, '\n'-joined */
};

struct pg_limit {
    struct pg_hub *hub; /* hub->mu guards the queues and every waiter's links */
    struct pg_bucket_store *store;
    struct pg_limit_queue *queues;
    pg_clock_fn *now_ms; /* every time below is on this clock */
    void *now_arg;
    struct pg_rstore_scripts scripts; /* for a redis store */
    struct pg_lease *leases[PG_LEASE_SLOTS];
};

/* A worker's timer for one shared queue. */
struct port_timer {
    struct port_timer *next;
    struct pg_limit_port *port;
    struct pg_limit_queue *q;
    struct event ev;
};

struct pg_limit_port {
    struct pg_limit *l;
    struct event_base *base;
    struct pg_inbox *in;
    struct port_timer *timers;
    struct pg_redis *rd; /* this worker's connection to a redis store; NULL: none */
};

/* The buckets one request takes from. */
struct want {
    size_t n;
    char keys[PG_BUCKET_MAX_KEYS][PG_KEY_MAX];
    const char *kp[PG_BUCKET_MAX_KEYS];
    const struct pg_rate_limit *rates[PG_BUCKET_MAX_KEYS];
    const char *scope[PG_BUCKET_MAX_KEYS];
    char cd_key[PG_KEY_MAX]; /* the upstream's cool-down key */
};

/* ASK: the tokens are redis's to give (rstore.h); nothing was taken here. */
enum attempt { TAKEN, WAIT, FAILED, ASK };

/* ---- limit.c ---- */
uint64_t pg_lim_now(const struct pg_limit *l);
/* The buckets r takes from. */
void pg_lim_collect(const struct pg_req *r, struct want *w);
/* Try once (hub.mu held): see limit.c. */
enum attempt pg_lim_attempt(struct pg_limit *l, struct pg_req *r, const struct want *w,
                            uint64_t now, uint64_t *wait_ms, bool *queue, uint64_t *max_wait,
                            const char **block, bool remote);
enum attempt pg_lim_from_redis(struct pg_limit *l, struct pg_req *r, const struct want *w,
                               const struct pg_rtake *t, uint64_t now, uint64_t *wait_ms,
                               bool *queue, uint64_t *max_wait, const char **block);
uint64_t pg_lim_peek_wait(struct pg_limit *l, const struct pg_req *r, uint64_t now);
void pg_lim_reject(struct pg_req *r, uint64_t wait_ms, const char *msg, enum pg_metric_scope sc);
void pg_lim_unavailable(struct pg_req *r);
enum pg_metric_scope pg_lim_scope_of(const char *key, bool cooldown);
void pg_lim_held_by(const struct pg_rate_limit *rl, bool *queue, uint64_t *max_wait);
void pg_lim_cooldown_policy(const struct pg_upstream *up, bool *queue, uint64_t *max_wait);

/* ---- limitq.c (hub.mu held unless said) ---- */
struct pg_limit_queue *pg_lim_queue_of(struct pg_limit *l, const char *name, bool create);
int pg_lim_arm(struct pg_limit_port *p, struct pg_limit_queue *q, uint64_t now);
void pg_lim_fail_queue(struct pg_limit_queue *q);
struct pg_limit_queue *pg_lim_busy_queue(struct pg_limit *l, const struct want *w);
void pg_lim_queue_policy(struct pg_limit *l, const struct pg_req *r, const struct want *w,
                         const struct pg_limit_queue *q, uint64_t now, bool *queue,
                         uint64_t *max_wait);
struct pg_req *pg_lim_req_of(struct pg_limit_wait *wt);
/* The first waiter of q, NULL if none. */
struct pg_limit_wait *pg_lim_head(const struct pg_limit_queue *q);
/* r's on_abort while it waits in a queue or its verdict is on the way (takes hub.mu). */
void pg_lim_on_queued_abort(struct pg_req *r);
/* Is redis to be asked for r from p's worker (no lock needed)? See limitq.c. */
bool pg_lim_remote_for(struct pg_limit_port *p, const struct pg_req *r, bool *deny);

#endif
