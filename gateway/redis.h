/* redis.h -- one worker's connection to the shared store (SPEC section 4.1): hiredis's async API
 * on the worker's own loop (its libevent adapter), AUTH and SELECT from the url on connect,
 * reconnect with backoff, and a deadline per command (rate_limit_store.timeout): an answer
 * slower than that counts as a failure. Scripts run by SHA (EVALSHA), sent whole again when
 * the server does not know them (NOSCRIPT). */
#ifndef PG_REDIS_H
#define PG_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

struct event_base;
struct evdns_base;
struct pg_conf;
struct pg_hub;
struct pg_metrics;
struct pg_redis;
struct pg_rop;

/* The answer to a command, on the worker's loop: r NULL when it failed (not connected, an error
 * reply, the deadline passed, the connection dropped); r is borrowed for the call. */
typedef void pg_redis_reply_fn(void *arg, const redisReply *r);

/* A script: its source and SHA-1 (hex), made once at start (pg_redis_script_init). */
struct pg_redis_script {
    const char *src;
    char sha[41];
};

/* SHA-1 of s->src into s->sha. */
void pg_redis_script_init(struct pg_redis_script *s);

/* A connection for conf's store on base, connecting now (the first commands fail until it is
 * up). A host name in the url is resolved through dns on the loop before each (re)connect
 * (hiredis would block the loop on it). Failures count in m (panelgate_store_errors_total);
 * hub says once per change of state whether the store is reachable. NULL out of memory. */
struct pg_redis *pg_redis_new(struct event_base *base, struct evdns_base *dns,
                              const struct pg_conf *conf, struct pg_hub *hub, struct pg_metrics *m);
void pg_redis_free(struct pg_redis *rd); /* accepts NULL; pending callbacks are not run */

/* Is the connection up (a command can be sent)? */
bool pg_redis_up(const struct pg_redis *rd);

/* Run script s with keys and args (all NUL-terminated); fn(arg, reply) runs once, later, from
 * the loop. Returns a handle for pg_redis_cancel, or NULL when nothing was sent (not connected,
 * out of memory): fn is not called then, and the caller acts on the failure itself. */
struct pg_rop *pg_redis_eval(struct pg_redis *rd, const struct pg_redis_script *s, size_t nkeys,
                             const char *const *keys, size_t nargs, const char *const *args,
                             pg_redis_reply_fn *fn, void *arg);

/* Any command: argv[0..argc) with their lengths (lens NULL: NUL-terminated strings, else binary
 * values); as pg_redis_eval otherwise. */
struct pg_rop *pg_redis_cmd(struct pg_redis *rd, int argc, const char *const *argv,
                            const size_t *lens, pg_redis_reply_fn *fn, void *arg);

/* fn will not be called for op (its caller went away). */
void pg_redis_cancel(struct pg_rop *op);

/* Count one failure a caller saw (a reply it could not use). */
void pg_redis_failed(struct pg_redis *rd);

#endif
