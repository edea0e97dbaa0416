/* rstore.h -- buckets and cool-downs in redis (SPEC section 4.1), for every instance at once.
 * One Lua script takes one token from each of a request's buckets, or from none, and reads its
 * upstream's cool-down, on Redis's own clock (TIME inside the script), so instances with skewed
 * clocks agree and no token is spent twice (Kong's and APISIX's read-then-write overshoot
 * cannot happen: the script runs atomically). Buckets keep the integer arithmetic of bucket.c:
 * a level in token x ms / period units. Keys: {prefix}:b:<bucket key>, {prefix}:cd:<upstream>,
 * each with a TTL (a bucket's: until it is full again; a cool-down's: its length). */
#ifndef PG_RSTORE_H
#define PG_RSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bucket.h"
#include "redis.h"

/* What the take script answered for one request. */
struct pg_rtake {
    uint64_t taken;       /* tokens that came out of every bucket (0: none) */
    uint64_t cooldown_ms; /* the upstream's cool-down left (nothing was taken then) */
    size_t n;
    struct pg_bucket b[PG_BUCKET_MAX_KEYS]; /* each bucket after the take, as of last_ms */
};

/* The two scripts, SHAs made (once, at start). */
struct pg_rstore_scripts {
    struct pg_redis_script take, cooldown;
};
void pg_rstore_scripts_init(struct pg_rstore_scripts *s);

/* Send the take for cd_key (the upstream's "u:" key) and keys[0..n) with rates[i]: up to want
 * tokens (>= 1) from every bucket, as many as every one has, or none; fn(arg, reply) follows
 * (parse it with pg_rstore_parse_take). NULL: not sent. */
struct pg_rop *pg_rstore_take(struct pg_redis *rd, const struct pg_rstore_scripts *s,
                              const char *prefix, const char *cd_key, const char *const *keys,
                              const struct pg_rate_limit *const *rates, size_t n, uint64_t want,
                              pg_redis_reply_fn *fn, void *arg);

/* The take script's reply for n buckets asked for want tokens into out, its times on the
 * caller's clock now_ms. 0 ok, -1 not a reply the script makes (more taken than asked for
 * included: a lease that large would admit without a limit). */
int pg_rstore_parse_take(const redisReply *r, size_t n, uint64_t want, uint64_t now_ms,
                         struct pg_rtake *out);

/* Hold upstream key cd_key for ms in redis (a longer hold already there stays). Fire and
 * forget: a failure is counted by the connection. */
void pg_rstore_cooldown(struct pg_redis *rd, const struct pg_rstore_scripts *s, const char *prefix,
                        const char *cd_key, uint64_t ms);

#endif
