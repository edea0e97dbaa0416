/* bucket.c -- token buckets: refill, take, time to next token; and the local bucket store, an
 * open-addressing table of buckets and cool-downs owned by one worker. */
#include "bucket.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- the math ---- */

/* a / b rounded up, for b > 0; no a + b - 1 that could wrap. */
static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static bool rate_ok(const struct pg_rate_limit *rl)
{
    return rl && rl->set && rl->rate_n >= 1 && rl->rate_n <= PG_BUCKET_MAX_RATE &&
           rl->rate_period_ms >= 1 && rl->rate_period_ms <= PG_BUCKET_MAX_PERIOD_MS &&
           rl->burst >= 1 && rl->burst <= PG_BUCKET_MAX_BURST;
}

/* The level at now_ms. Never forms elapsed x rate_n unless it is known to be at most the missing
 * amount (<= cap <= 3.6e15), so a year idle, or now_ms near UINT64_MAX, cannot overflow. */
static uint64_t level_at(const struct pg_bucket *b, uint64_t now_ms)
{
    if (now_ms <= b->last_ms || b->level >= b->cap)
        return b->level;
    uint64_t elapsed = now_ms - b->last_ms;
    uint64_t missing = b->cap - b->level;
    /* elapsed > floor(missing / rate) <=> elapsed x rate > missing */
    if (elapsed > missing / b->rate_n)
        return b->cap;
    return b->level + elapsed * b->rate_n;
}

int pg_bucket_init(struct pg_bucket *b, const struct pg_rate_limit *rl, uint64_t now_ms)
{
    if (!rate_ok(rl))
        return -1;
    b->rate_n = rl->rate_n;
    b->period_ms = rl->rate_period_ms;
    b->cap = rl->burst * rl->rate_period_ms;
    b->level = b->cap;
    b->last_ms = now_ms;
    return 0;
}

int pg_bucket_reconfigure(struct pg_bucket *b, const struct pg_rate_limit *rl, uint64_t now_ms)
{
    if (!rate_ok(rl))
        return -1;
    pg_bucket_refill(b, now_ms);
    uint64_t whole = b->level / b->period_ms;
    uint64_t frac = b->level % b->period_ms; /* < old period: frac x new period < 1.3e13 */
    uint64_t cap = rl->burst * rl->rate_period_ms;
    if (whole >= rl->burst)
        b->level = cap;
    else
        b->level = whole * rl->rate_period_ms + frac * rl->rate_period_ms / b->period_ms;
    b->rate_n = rl->rate_n;
    b->period_ms = rl->rate_period_ms;
    b->cap = cap;
    return 0;
}

bool pg_bucket_same_rate(const struct pg_bucket *b, const struct pg_rate_limit *rl)
{
    return rl->rate_n == b->rate_n && rl->rate_period_ms == b->period_ms &&
           rl->burst == b->cap / b->period_ms;
}

void pg_bucket_refill(struct pg_bucket *b, uint64_t now_ms)
{
    if (now_ms <= b->last_ms)
        return;
    b->level = level_at(b, now_ms);
    b->last_ms = now_ms;
}

uint64_t pg_bucket_remaining(const struct pg_bucket *b, uint64_t now_ms)
{
    return level_at(b, now_ms) / b->period_ms;
}

uint64_t pg_bucket_wait_ms(const struct pg_bucket *b, uint64_t now_ms)
{
    uint64_t level = level_at(b, now_ms);
    if (level >= b->period_ms)
        return 0;
    return ceil_div(b->period_ms - level, b->rate_n);
}

uint64_t pg_bucket_reset_s(const struct pg_bucket *b, uint64_t now_ms)
{
    uint64_t ms = ceil_div(b->cap - level_at(b, now_ms), b->rate_n);
    return ceil_div(ms, 1000);
}

uint64_t pg_bucket_retry_s(const struct pg_bucket *b, uint64_t now_ms)
{
    return ceil_div(pg_bucket_wait_ms(b, now_ms), 1000);
}

uint64_t pg_bucket_window_s(const struct pg_bucket *b)
{
    return ceil_div(ceil_div(b->cap, b->rate_n), 1000);
}

uint64_t pg_bucket_burst(const struct pg_bucket *b)
{
    return b->cap / b->period_ms;
}

void pg_bucket_describe(const struct pg_bucket *b, uint64_t now_ms, struct pg_bucket_info *out)
{
    out->remaining = pg_bucket_remaining(b, now_ms);
    out->limit = pg_bucket_burst(b);
    out->reset_s = pg_bucket_reset_s(b, now_ms);
    out->wait_ms = pg_bucket_wait_ms(b, now_ms);
    out->retry_s = ceil_div(out->wait_ms, 1000);
    out->window_s = pg_bucket_window_s(b);
}

/* Has b[i] already appeared in b[0..i)? Callers pass a handful of buckets. */
static bool seen_before(struct pg_bucket *const *b, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (b[j] == b[i])
            return true;
    return false;
}

int pg_bucket_take_all(struct pg_bucket *const *b, size_t n, uint64_t now_ms, uint64_t *wait_ms)
{
    uint64_t wait = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        pg_bucket_refill(b[i], now_ms);
        if (b[i]->level < b[i]->period_ms) {
            uint64_t w = pg_bucket_wait_ms(b[i], now_ms);
            wait = w > wait ? w : wait;
            ok = false;
        }
    }
    if (wait_ms)
        *wait_ms = wait;
    if (!ok)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!seen_before(b, i))
            b[i]->level -= b[i]->period_ms;
    return 0;
}

size_t pg_bucket_tightest(const struct pg_bucket_info *v, size_t n)
{
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        if (best == n || v[i].remaining < v[best].remaining ||
            (v[i].remaining == v[best].remaining && v[i].limit < v[best].limit))
            best = i;
    }
    return best;
}

/* ---- the local store ---- */

/* One key: its bucket (once a take_all used it) and its cool-down (once cooldown_set did). */
struct entry {
    uint64_t hash;
    uint64_t cooldown_until_ms; /* monotonic ms; <= now means none */
    bool has_bucket;
    bool pinned; /* in use by the take_all running now: a sweep must keep it */
    struct pg_bucket b;
    char key[]; /* NUL-terminated */
};

/* Linear probing over entry pointers; entries never move in memory, only their slots do, and only
 * in rebuild. Load stays <= 1/2, so every probe sequence ends at an empty slot. Keys come from
 * the config, not from callers, so a plain FNV-1a is enough (nothing to flood). */
struct local {
    struct pg_bucket_store super;
    /* one lock for the table: a take is a few hundred instructions over at most 3 keys, so
     * workers sharing the store (SPEC 4.1: no token spent twice) wait nanoseconds for it */
    pthread_mutex_t mu;
    struct entry **slot;
    size_t size;     /* power of two, >= MIN_SLOTS */
    size_t count;    /* entries in the table */
    size_t max_keys; /* hard bound on count */
    uint64_t now_ms; /* latest now seen, for the sweep in cooldown_set (which has no now) */
};

#define MIN_SLOTS 16

static uint64_t hash_key(const char *k)
{
    uint64_t h = 14695981039346656037ull;
    for (; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 1099511628211ull;
    }
    return h;
}

static struct entry *find(const struct local *s, const char *key, uint64_t h)
{
    size_t mask = s->size - 1;
    for (size_t i = (size_t)h & mask; s->slot[i]; i = (i + 1) & mask)
        if (s->slot[i]->hash == h && !strcmp(s->slot[i]->key, key))
            return s->slot[i];
    return NULL;
}

static void place(struct entry **slot, size_t size, struct entry *e)
{
    size_t mask = size - 1, i = (size_t)e->hash & mask;
    while (slot[i])
        i = (i + 1) & mask;
    slot[i] = e;
}

/* A new empty entry; reserve() has made room (count + 1 <= size / 2). */
static struct entry *insert(struct local *s, const char *key, uint64_t h)
{
    size_t len = strlen(key);
    struct entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, len + 1);
    e->hash = h;
    place(s->slot, s->size, e);
    s->count++;
    return e;
}

/* Indistinguishable from no entry at now_ms: no cool-down left and the bucket (if any) full. */
static bool droppable(const struct entry *e, uint64_t now_ms)
{
    return !e->pinned && e->cooldown_until_ms <= now_ms &&
           (!e->has_bucket || level_at(&e->b, now_ms) >= e->b.cap);
}

/* Make room for `adding` new entries: when the table would pass half full or max_keys, rebuild it
 * without the droppable entries, sized to 4x what is left plus `adding` (so the next rebuild is
 * at least that many inserts away: amortised O(1)). Frees entries: pointers to unpinned entries
 * found before the call are stale after it. 0 ok (max_keys may still be in the way), -1 out of
 * memory (the table is unchanged). */
static int reserve(struct local *s, size_t adding, uint64_t now_ms)
{
    if (s->count + adding <= s->size / 2 && s->count + adding <= s->max_keys)
        return 0;
    size_t live = 0;
    for (size_t i = 0; i < s->size; i++)
        if (s->slot[i] && !droppable(s->slot[i], now_ms))
            live++;
    size_t size = MIN_SLOTS;
    while (size < 4 * (live + adding))
        size *= 2;
    struct entry **slot = calloc(size, sizeof *slot);
    if (!slot)
        return -1;
    for (size_t i = 0; i < s->size; i++) {
        struct entry *e = s->slot[i];
        if (!e)
            continue;
        if (droppable(e, now_ms))
            free(e);
        else
            place(slot, size, e);
    }
    free(s->slot);
    s->slot = slot;
    s->size = size;
    s->count = live;
    return 0;
}

/* The entry for key, made if missing after reserve() made room; NULL at max_keys or OOM. */
static struct entry *find_or_insert(struct local *s, const char *key)
{
    uint64_t h = hash_key(key);
    struct entry *e = find(s, key, h);
    if (e || s->count >= s->max_keys)
        return e;
    return insert(s, key, h);
}

static void note_now(struct local *s, uint64_t now_ms)
{
    if (now_ms > s->now_ms)
        s->now_ms = now_ms;
}

static void result_reset(struct pg_bucket_result *r)
{
    r->status = -1;
    r->taken = false;
    r->wait_ms = 0;
    r->n = 0;
}

static int local_take_all_locked(struct pg_bucket_store *st, const char *const *keys,
                                 const struct pg_rate_limit *const *rates, size_t n,
                                 uint64_t now_ms, struct pg_bucket_result *r)
{
    struct local *s = (struct local *)st;
    struct entry *e[PG_BUCKET_MAX_KEYS] = { 0 };
    struct pg_bucket *b[PG_BUCKET_MAX_KEYS] = { 0 };
    size_t missing = 0;

    result_reset(r);
    if (n > PG_BUCKET_MAX_KEYS)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!rate_ok(rates[i]))
            return -1;
    note_now(s, now_ms);
    /* the hot path: every key known, no allocation */
    for (size_t i = 0; i < n; i++) {
        e[i] = find(s, keys[i], hash_key(keys[i]));
        missing += !e[i];
    }
    if (missing) {
        /* pinned, the entries found above survive the sweep in reserve */
        for (size_t i = 0; i < n; i++)
            if (e[i])
                e[i]->pinned = true;
        int rc = reserve(s, missing, now_ms);
        for (size_t i = 0; i < n; i++)
            if (e[i])
                e[i]->pinned = false;
        if (rc)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (!e[i] && !(e[i] = find_or_insert(s, keys[i])))
                return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!e[i]->has_bucket) {
            pg_bucket_init(&e[i]->b, rates[i], now_ms);
            e[i]->has_bucket = true;
        } else if (!pg_bucket_same_rate(&e[i]->b, rates[i])) {
            pg_bucket_reconfigure(&e[i]->b, rates[i], now_ms);
        }
        b[i] = &e[i]->b;
    }
    r->taken = pg_bucket_take_all(b, n, now_ms, &r->wait_ms) == 0;
    for (size_t i = 0; i < n; i++)
        pg_bucket_describe(b[i], now_ms, &r->b[i]);
    r->n = n;
    r->status = 0;
    return PG_BUCKET_DONE;
}

static int local_peek_locked(struct pg_bucket_store *st, const char *key,
                             const struct pg_rate_limit *rate, uint64_t now_ms,
                             struct pg_bucket_result *r)
{
    struct local *s = (struct local *)st;
    struct pg_bucket b;

    result_reset(r);
    if (pg_bucket_init(&b, rate, now_ms))
        return -1;
    note_now(s, now_ms);
    const struct entry *e = find(s, key, hash_key(key));
    if (e && e->has_bucket) {
        b = e->b; /* a copy: peeking re-rates nothing */
        if (!pg_bucket_same_rate(&b, rate))
            pg_bucket_reconfigure(&b, rate, now_ms);
    }
    pg_bucket_describe(&b, now_ms, &r->b[0]);
    r->n = 1;
    r->status = 0;
    return PG_BUCKET_DONE;
}

static int local_cooldown_set_locked(struct pg_bucket_store *st, const char *upstream_key,
                                     uint64_t until_ms)
{
    struct local *s = (struct local *)st;
    struct entry *e = find(s, upstream_key, hash_key(upstream_key));
    if (!e) {
        if (until_ms <= s->now_ms)
            return 0; /* already over: nothing to remember */
        if (reserve(s, 1, s->now_ms) || !(e = find_or_insert(s, upstream_key)))
            return -1;
    }
    if (until_ms > e->cooldown_until_ms)
        e->cooldown_until_ms = until_ms;
    return 0;
}

static uint64_t local_cooldown_get_locked(struct pg_bucket_store *st, const char *upstream_key,
                                          uint64_t now_ms)
{
    struct local *s = (struct local *)st;
    note_now(s, now_ms);
    const struct entry *e = find(s, upstream_key, hash_key(upstream_key));
    if (!e || e->cooldown_until_ms <= now_ms)
        return 0;
    return e->cooldown_until_ms - now_ms;
}

/* ---- the same, under the table's lock: safe from any thread ---- */

static int local_take_all(struct pg_bucket_store *st, const char *const *keys,
                          const struct pg_rate_limit *const *rates, size_t n, uint64_t now_ms,
                          struct pg_bucket_result *r)
{
    struct local *s = (struct local *)st;
    pthread_mutex_lock(&s->mu);
    int rc = local_take_all_locked(st, keys, rates, n, now_ms, r);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int local_peek(struct pg_bucket_store *st, const char *key, const struct pg_rate_limit *rate,
                      uint64_t now_ms, struct pg_bucket_result *r)
{
    struct local *s = (struct local *)st;
    pthread_mutex_lock(&s->mu);
    int rc = local_peek_locked(st, key, rate, now_ms, r);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int local_cooldown_set(struct pg_bucket_store *st, const char *upstream_key,
                              uint64_t until_ms)
{
    struct local *s = (struct local *)st;
    pthread_mutex_lock(&s->mu);
    int rc = local_cooldown_set_locked(st, upstream_key, until_ms);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static uint64_t local_cooldown_get(struct pg_bucket_store *st, const char *upstream_key,
                                   uint64_t now_ms)
{
    struct local *s = (struct local *)st;
    pthread_mutex_lock(&s->mu);
    uint64_t ms = local_cooldown_get_locked(st, upstream_key, now_ms);
    pthread_mutex_unlock(&s->mu);
    return ms;
}

int pg_bucket_local_put(struct pg_bucket_store *st, const char *key, const struct pg_bucket *b)
{
    struct local *s = (struct local *)st;
    int rc = -1;
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, key, hash_key(key));
    if (!e && !reserve(s, 1, b->last_ms))
        e = find_or_insert(s, key);
    if (e) {
        e->b = *b;
        e->has_bucket = true;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void local_free(struct pg_bucket_store *st)
{
    struct local *s = (struct local *)st;
    pthread_mutex_destroy(&s->mu);
    for (size_t i = 0; i < s->size; i++)
        free(s->slot[i]);
    free(s->slot);
    free(s);
}

static const struct pg_bucket_store_ops local_ops = {
    .take_all = local_take_all,
    .peek = local_peek,
    .cooldown_set = local_cooldown_set,
    .cooldown_get = local_cooldown_get,
    .cancel = NULL, /* always answers at once */
    .free = local_free,
};

struct pg_bucket_store *pg_bucket_local_new(size_t max_keys)
{
    if (max_keys < 1)
        return NULL;
    struct local *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->slot = calloc(MIN_SLOTS, sizeof *s->slot);
    if (!s->slot) {
        free(s);
        return NULL;
    }
    if (pthread_mutex_init(&s->mu, NULL)) {
        free(s->slot);
        free(s);
        return NULL;
    }
    s->super.ops = &local_ops;
    s->size = MIN_SLOTS;
    s->max_keys = max_keys;
    return &s->super;
}

void pg_bucket_store_free(struct pg_bucket_store *s)
{
    if (s)
        s->ops->free(s);
}
