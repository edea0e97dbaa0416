/* hub.h -- what the workers of one process share, and the one way a thread hands work to another.
 *
 * The hub owns the process-wide lock, the rate limiter (buckets, cool-downs and queues of every
 * worker) and the list of workers (for sums: metrics, connections), and lends the workers the
 * access log (alog.h). Every list a request can
 * wait in that another thread may touch -- a login's waiters, a bucket's queue, a worker's inbox
 * -- is guarded by hub.mu, and nothing else is: one lock, so a waiter moving from a queue to an
 * inbox is never half in both.
 *
 * Inboxes: a thread never touches another worker's event_base. It links a pg_post into that
 * worker's inbox (under hub.mu) and writes the inbox's eventfd; the worker's own event reads it
 * and runs each post on its own loop, one at a time, outside the lock. A post is embedded in the
 * waiter it delivers, so delivering allocates nothing, and the owner can take it back (cancel)
 * until it runs. */
#ifndef PG_HUB_H
#define PG_HUB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/event_struct.h>

#include "conf.h"
#include "util.h"

struct pg_alog;
struct pg_limit;
struct pg_worker;
struct pg_inbox;

struct pg_post;
typedef void pg_post_fn(struct pg_post *p);

/* A delivery to one worker, embedded in what it delivers; hub.mu guards the links. */
struct pg_post {
    struct pg_dlink link;
    struct pg_inbox *in; /* non-NULL while waiting in an inbox */
    pg_post_fn *run;     /* runs on the inbox's loop, without the lock */
};

/* One worker's inbox: its posts and the eventfd that wakes its loop. */
struct pg_inbox {
    struct pg_hub *hub;
    struct pg_dlist posts; /* hub.mu */
    int efd;
    struct event ev;
    bool ev_set;
};

struct pg_hub {
    pthread_mutex_t mu;
    struct pg_limit *limit; /* shared by every worker; its queues are under mu */
    struct pg_alog *alog;   /* the access log every worker writes to (its own lock); NULL: off.
                             * main.c owns it; set before the workers are made */
    struct pg_worker *workers[PG_WORKERS_MAX];
    size_t nworkers;    /* set before the worker threads start; fixed after */
    uint64_t started_s; /* wall clock when the process started (status) */
    int store_down;     /* atomic: the redis store was last seen unreachable or not reached yet
                         * (status, one log line per change) */
};

/* A hub with a local bucket store. NULL out of memory. */
struct pg_hub *pg_hub_new(void);
void pg_hub_free(struct pg_hub *h); /* accepts NULL; every worker is gone */

static inline void pg_hub_lock(struct pg_hub *h)
{
    pthread_mutex_lock(&h->mu);
}
static inline void pg_hub_unlock(struct pg_hub *h)
{
    pthread_mutex_unlock(&h->mu);
}

/* The inbox of a worker whose loop is base. 0 ok, -1 (nothing held). */
int pg_inbox_init(struct pg_inbox *in, struct pg_hub *h, struct event_base *base);
/* Posts still waiting are dropped (their owners are gone). Accepts one never initialised. */
void pg_inbox_deinit(struct pg_inbox *in);

/* With hub.mu held: queue p (not queued anywhere) to in and wake its loop. */
void pg_inbox_put_locked(struct pg_inbox *in, struct pg_post *p);
/* With hub.mu held: take p back if it is still waiting. True if it was. */
bool pg_inbox_take_locked(struct pg_post *p);
/* Run in's posts now, on its own thread (the eventfd's event does this; tests call it). */
void pg_inbox_drain(struct pg_inbox *in);

#endif
