/* worker.h -- a worker: one event loop (one thread) and everything that belongs to it. The
 * server assembles one (pg_worker_init) and runs its connections on it; a request reaches it
 * through pg_req.w. What the workers share lives in the hub (hub.h); another thread reaches a
 * worker only through its inbox, and reads nothing of it but nconns and metrics (sums). */
#ifndef PG_WORKER_H
#define PG_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub.h"

struct event;
struct event_base;
struct evdns_base;
struct evbuffer;
struct pg_alog;
struct pg_conf;
struct pg_curlev;
struct pg_h1;
struct pg_fwd_pool;
struct pg_limit;
struct pg_limit_port;
struct pg_metrics;
struct pg_redis;
struct pg_req;
struct pg_auth_rt;

/* The worker's context: one event loop and everything that belongs to it. */
struct pg_worker {
    unsigned id; /* 0.. workers - 1 */
    struct pg_hub *hub;
    struct pg_inbox inbox;
    struct event_base *base;
    struct pg_conf *conf; /* current snapshot; requests take their own reference */
    uint64_t conf_gen;    /* bumped on every reload */
    struct pg_curlev *curl;
    struct pg_h1 *h1;       /* the own client: http at an IP address, https at a name */
    struct evdns_base *dns; /* its resolver (resolver: or /etc/resolv.conf and /etc/hosts) */
    struct pg_fwd_pool *fwds;
    struct pg_limit *limit; /* the hub's */
    struct pg_limit_port *lport;
    struct pg_redis *redis;     /* rate_limit_store redis: this worker's connection; else NULL */
    struct pg_metrics *metrics; /* this worker's counters; summed over workers when rendered */
    struct pg_dlist logins;     /* logins running on this loop (auth.c: pg_auth_rt.wlink) */
    bool tls;                   /* listener speaks TLS (X-Forwarded-Proto) */
    bool draining;
    uint64_t nconns;         /* other threads read it (status): written with pg_worker_nconns_add */
    uint8_t rid_rand[10];    /* request ids: timestamp + this, incremented per id */
    struct pg_alog *alog;    /* the process's access log (the hub's); NULL: off */
    struct evbuffer *log;    /* access log lines waiting to be written; NULL: off */
    struct event *log_timer; /* flushes log once a second */
    bool log_failing;        /* the last write failed (said once per episode) */
    unsigned log_gen;        /* the access log's generation the buffered lines belong to */
};

/* Assemble worker id of hub on base with a reference to conf (its inbox, upstream clients,
 * forwarder pool, limiter port, metrics, request-id seed, access log) and list it in the hub.
 * Before any worker thread runs. 0 ok; -1 with err set, and w holds nothing. */
int pg_worker_init(struct pg_worker *w, struct pg_hub *hub, unsigned id, struct event_base *base,
                   struct pg_conf *conf, char *err, size_t cap);
/* Release everything pg_worker_init made, the conf reference included. On w's thread, or once
 * it has stopped. */
void pg_worker_deinit(struct pg_worker *w);

/* Connections open on w, as another thread may read them. */
static inline uint64_t pg_worker_nconns(const struct pg_worker *w)
{
    return __atomic_load_n(&w->nconns, __ATOMIC_RELAXED);
}
/* On w's own thread: count a connection in (+1) or out (-1). */
static inline void pg_worker_nconns_add(struct pg_worker *w, int d)
{
    __atomic_store_n(&w->nconns, w->nconns + (uint64_t)(int64_t)d, __ATOMIC_RELAXED);
}

/* Connections open on every worker of w's hub. */
uint64_t pg_worker_nconns_all(const struct pg_worker *w);

/* A new request id into out (27 bytes with the NUL): 26 Crockford base32 characters, 48 bits of
 * ms time then 80 bits counted up from a random start, so unique within the worker. */
void pg_worker_rid(struct pg_worker *w, char *out);

/* An answer is done: count it (metrics) and buffer its access log line (alog.h: the path
 * without its query, which may carry panel credentials). status 499: the caller left first. */
void pg_worker_record(struct pg_worker *w, const struct pg_req *r, int status);

#endif
