/* worker.h -- a worker: one event loop and everything that belongs to it. The server assembles
 * one (pg_worker_init) and runs its connections on it; a request reaches it through pg_req.w.
 * Nothing here is shared with another worker. */
#ifndef PG_WORKER_H
#define PG_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct evbuffer;
struct pg_conf;
struct pg_curlev;
struct pg_h1;
struct pg_fwd_pool;
struct pg_limit;
struct pg_metrics;
struct pg_req;

/* The worker's context: one event loop and everything that belongs to it. */
struct pg_worker {
    struct event_base *base;
    struct pg_conf *conf; /* current snapshot; requests take their own reference */
    uint64_t conf_gen;    /* bumped on every reload */
    struct pg_curlev *curl;
    struct pg_h1 *h1; /* plain-http upstreams at an IP address */
    struct pg_fwd_pool *fwds;
    struct pg_limit *limit;
    struct pg_metrics *metrics;
    bool tls; /* listener speaks TLS (X-Forwarded-Proto) */
    bool draining;
    uint64_t nconns;
    uint8_t rid_rand[10];    /* request ids: timestamp + this, incremented per id */
    struct evbuffer *log;    /* access log lines waiting to be written; NULL: off */
    struct event *log_timer; /* flushes log once a second */
    int log_fd;
};

/* Assemble w on base with a reference to conf (its upstream clients, forwarder pool, limiter,
 * metrics, request-id seed, access log). 0 ok; -1 with err set, and w holds nothing. */
int pg_worker_init(struct pg_worker *w, struct event_base *base, struct pg_conf *conf, char *err,
                   size_t cap);
/* Release everything pg_worker_init made, the conf reference included. */
void pg_worker_deinit(struct pg_worker *w);

/* A new request id into out (27 bytes with the NUL): 26 Crockford base32 characters, 48 bits of
 * ms time then 80 bits counted up from a random start, so unique within the worker. */
void pg_worker_rid(struct pg_worker *w, char *out);

/* An answer is done: count it (metrics) and write its access log line (the path without its
 * query, which may carry panel credentials). status 499: the caller left first. */
void pg_worker_record(struct pg_worker *w, const struct pg_req *r, int status);

#endif
