/* rstore.c -- the take and cool-down scripts and their replies. */
#include "rstore.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* KEYS[1] the cool-down, KEYS[2..] the buckets; ARGV rate_n, period_ms, burst per bucket, then
 * want: up to that many tokens from every bucket, as many as every one has, or none. Answers
 * {taken, cooldown_ms, then level, cap, rate_n, period_ms per bucket}. The refill and
 * re-rating are bucket.c's (pg_bucket_refill, pg_bucket_reconfigure); numbers stay below 2^53
 * (cap <= 3.6e15 units), so Lua's doubles hold them exactly. A bucket is one string, "level
 * last rate period cap", set with its TTL in one call: a third cheaper in redis than a hash
 * with HMGET, HSET and PEXPIRE (redis-benchmark, 180k against 120k scripts/s). */
static const char take_src[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local cd = redis.call('PTTL', KEYS[1])\n"
    "if cd > 0 then return {0, cd} end\n"
    "local n = #KEYS - 1\n"
    "local lv, cp, rt, pd = {}, {}, {}, {}\n"
    "local take = tonumber(ARGV[3*n+1])\n"
    "for i = 1, n do\n"
    "  local rate, per, burst = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])\n"
    "  local cap = burst * per\n"
    "  local level, last, orate, oper, ocap\n"
    "  local v = redis.call('GET', KEYS[i+1])\n"
    "  if v then\n"
    "    local a, b, c, d, e = string.match(v, '^(%d+) (%d+) (%d+) (%d+) (%d+)$')\n"
    "    level, last, orate, oper, ocap = tonumber(a), tonumber(b), tonumber(c), tonumber(d),\n"
    "                                     tonumber(e)\n"
    "  end\n"
    "  if not (level and orate and orate >= 1 and oper and oper >= 1 and level <= ocap) then\n"
    "    level, orate, oper, ocap = cap, rate, per, cap\n"
    "  elseif now > last and level < ocap then\n"
    "    local el = now - last\n"
    "    if el > math.floor((ocap - level) / orate) then level = ocap\n"
    "    else level = level + el * orate end\n"
    "  end\n"
    "  if orate ~= rate or oper ~= per or ocap ~= cap then\n"
    "    local whole = math.floor(level / oper)\n"
    "    if whole >= burst then level = cap\n"
    "    else level = whole * per + math.floor((level % oper) * per / oper) end\n"
    "  end\n"
    "  lv[i], cp[i], rt[i], pd[i] = level, cap, rate, per\n"
    "  local has = math.floor(level / per)\n"
    "  if has < take then take = has end\n"
    "end\n"
    "local out = {take, 0}\n"
    "for i = 1, n do\n"
    "  lv[i] = lv[i] - take * pd[i]\n"
    /* %d: a number passed to redis.call becomes text with %.14g, losing digits past 1e14 */
    "  redis.call('SET', KEYS[i+1], string.format('%d %d %d %d %d', lv[i], now, rt[i], pd[i],\n"
    "             cp[i]), 'PX', string.format('%d', math.floor((cp[i] - lv[i]) / rt[i]) + 1000))\n"
    "  out[#out+1] = lv[i]; out[#out+1] = cp[i]; out[#out+1] = rt[i]; out[#out+1] = pd[i]\n"
    "end\n"
    "return out\n";

/* KEYS[1] the cool-down; ARGV[1] its length in ms. A longer hold already there stays. */
static const char cooldown_src[] = "local ms = tonumber(ARGV[1])\n"
                                   "if redis.call('PTTL', KEYS[1]) < ms then\n"
                                   "  redis.call('SET', KEYS[1], '1', 'PX', ms)\n"
                                   "end\n"
                                   "return 1\n";

void pg_rstore_scripts_init(struct pg_rstore_scripts *s)
{
    s->take.src = take_src;
    s->cooldown.src = cooldown_src;
    pg_redis_script_init(&s->take);
    pg_redis_script_init(&s->cooldown);
}

/* "{prefix}:{kind}:{key}" into out; key is a limiter key ("u:name", ...), whose upstream part
 * the cool-down keys keep without the "u:". -1 when it does not fit. */
static int rkey(char *out, size_t cap, const char *prefix, const char *kind, const char *key)
{
    int k = snprintf(out, cap, "%s:%s:%s", prefix, kind, key);
    return k < 0 || (size_t)k >= cap ? -1 : 0;
}

#define RKEY_MAX 320

struct pg_rop *pg_rstore_take(struct pg_redis *rd, const struct pg_rstore_scripts *s,
                              const char *prefix, const char *cd_key, const char *const *keys,
                              const struct pg_rate_limit *const *rates, size_t n, uint64_t want,
                              pg_redis_reply_fn *fn, void *arg)
{
    char kb[1 + PG_BUCKET_MAX_KEYS][RKEY_MAX], ab[PG_BUCKET_MAX_KEYS * 3 + 1][24];
    const char *kp[1 + PG_BUCKET_MAX_KEYS], *ap[PG_BUCKET_MAX_KEYS * 3 + 1];
    if (n > PG_BUCKET_MAX_KEYS || rkey(kb[0], RKEY_MAX, prefix, "cd", cd_key + 2))
        return NULL;
    kp[0] = kb[0];
    for (size_t i = 0; i < n; i++) {
        if (rkey(kb[i + 1], RKEY_MAX, prefix, "b", keys[i]))
            return NULL;
        kp[i + 1] = kb[i + 1];
        snprintf(ab[3 * i], 24, "%llu", (unsigned long long)rates[i]->rate_n);
        snprintf(ab[3 * i + 1], 24, "%llu", (unsigned long long)rates[i]->rate_period_ms);
        snprintf(ab[3 * i + 2], 24, "%llu", (unsigned long long)rates[i]->burst);
        for (int j = 0; j < 3; j++)
            ap[3 * i + (size_t)j] = ab[3 * i + (size_t)j];
    }
    snprintf(ab[3 * n], 24, "%llu", (unsigned long long)(want ? want : 1));
    ap[3 * n] = ab[3 * n];
    return pg_redis_eval(rd, &s->take, n + 1, kp, 3 * n + 1, ap, fn, arg);
}

static int int_at(const redisReply *r, size_t i, uint64_t *out)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER ||
        r->element[i]->integer < 0)
        return -1;
    *out = (uint64_t)r->element[i]->integer;
    return 0;
}

int pg_rstore_parse_take(const redisReply *r, size_t n, uint64_t want, uint64_t now_ms,
                         struct pg_rtake *out)
{
    uint64_t taken, cd;
    memset(out, 0, sizeof *out);
    if (!r || r->type != REDIS_REPLY_ARRAY || int_at(r, 0, &taken) || int_at(r, 1, &cd) ||
        taken > (want ? want : 1))
        return -1;
    out->taken = taken;
    out->cooldown_ms = cd;
    if (cd > 0)
        return r->elements == 2 && !out->taken ? 0 : -1;
    if (r->elements != 2 + 4 * n)
        return -1;
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        struct pg_bucket *b = &out->b[i];
        if (int_at(r, 2 + 4 * i, &b->level) || int_at(r, 3 + 4 * i, &b->cap) ||
            int_at(r, 4 + 4 * i, &b->rate_n) || int_at(r, 5 + 4 * i, &b->period_ms) ||
            b->rate_n == 0 || b->period_ms == 0 || b->level > b->cap)
            return -1;
        b->last_ms = now_ms;
    }
    return 0;
}

void pg_rstore_cooldown(struct pg_redis *rd, const struct pg_rstore_scripts *s, const char *prefix,
                        const char *cd_key, uint64_t ms)
{
    char k[RKEY_MAX], a[24];
    if (rkey(k, sizeof k, prefix, "cd", cd_key + 2))
        return;
    snprintf(a, sizeof a, "%llu", (unsigned long long)(ms ? ms : 1));
    const char *kp[1] = { k }, *ap[1] = { a };
    if (!pg_redis_eval(rd, &s->cooldown, 1, kp, 1, ap, NULL, NULL))
        pg_redis_failed(rd);
}
