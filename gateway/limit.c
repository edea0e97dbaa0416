/* limit.c -- admission against token buckets and cool-downs (the local store, or a redis store
 * asked once per request), the RateLimit headers, cool-downs, /_gateway/me. The waiting side
 * (queues, ports, timers) is limitq.c. */
#include "limit.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "envelope.h"
#include "limitint.h"
#include "route.h"

struct pg_limit *pg_limit_new(struct pg_hub *hub, struct pg_bucket_store *store)
{
    struct pg_limit *l = store ? calloc(1, sizeof *l) : NULL;
    if (!l) {
        pg_bucket_store_free(store);
        return NULL;
    }
    l->hub = hub;
    l->store = store;
    pg_rstore_scripts_init(&l->scripts);
    l->now_ms = pg_clock_mono;
    return l;
}

void pg_limit_set_clock(struct pg_limit *l, pg_clock_fn *now_ms, void *arg)
{
    l->now_ms = now_ms;
    l->now_arg = arg;
}

uint64_t pg_lim_now(const struct pg_limit *l)
{
    return l->now_ms(l->now_arg);
}

void pg_limit_free(struct pg_limit *l)
{
    if (!l)
        return;
    while (l->queues) {
        struct pg_limit_queue *q = l->queues;
        l->queues = q->next;
        free(q);
    }
    for (size_t i = 0; i < PG_LEASE_SLOTS; i++)
        while (l->leases[i]) {
            struct pg_lease *e = l->leases[i];
            l->leases[i] = e->next;
            free(e);
        }
    pg_bucket_store_free(l->store);
    free(l);
}

bool pg_lim_key(char *out, const char *prefix, const char *a, const char *b)
{
    struct pg_sb k = pg_sb_of(out, PG_KEY_MAX);
    pg_sb_str(&k, prefix);
    pg_sb_str(&k, a);
    if (b) {
        pg_sb_put(&k, ":", 1);
        pg_sb_str(&k, b);
    }
    return pg_sb_end(&k);
}

static void add_key(struct want *w, const char *scope, const struct pg_rate_limit *rl,
                    const char *prefix, const char *a, const char *b)
{
    if (!rl->set || w->n == PG_BUCKET_MAX_KEYS || !pg_lim_key(w->keys[w->n], prefix, a, b))
        return;
    w->kp[w->n] = w->keys[w->n];
    w->rates[w->n] = rl;
    w->scope[w->n] = scope;
    w->n++;
}

void pg_lim_collect(const struct pg_req *r, struct want *w)
{
    const struct pg_upstream *up = &r->conf->upstreams[r->upstream];
    w->n = 0;
    pg_lim_key(w->cd_key, "u:", up->name, NULL);
    add_key(w, "upstream", &up->rl, "u:", up->name, NULL);
    const struct pg_route_conf *rt = pg_route_of(up, r->rest, r->rest_len);
    if (rt)
        add_key(w, "route", &rt->rl, "r:", up->name, rt->path);
    if (r->consumer)
        add_key(w, "consumer", &r->consumer->rl, "c:", r->consumer->name, NULL);
}

/* "Name: <v>\r\n" */
static void header_u64(struct pg_sb *h, const char *name, uint64_t v)
{
    pg_sb_str(h, name);
    pg_sb_u64(h, v, 0);
    pg_sb_put(h, "\r\n", 2);
}

/* RateLimit headers (SPEC section 4) for the tightest bucket that applied: the classic three
 * and the draft's pair. Built by hand: this runs on every limited request. */
static void set_headers(struct pg_req *r, const struct want *w, const struct pg_bucket_result *res)
{
    r->rl_hdrs_len = 0;
    if (res->n == 0)
        return;
    size_t t = pg_bucket_tightest(res->b, res->n);
    const struct pg_bucket_info *b = &res->b[t];
    struct pg_sb h = pg_sb_of(r->rl_hdrs, sizeof r->rl_hdrs);
    header_u64(&h, "RateLimit-Limit: ", b->limit);
    header_u64(&h, "RateLimit-Remaining: ", b->remaining);
    header_u64(&h, "RateLimit-Reset: ", b->reset_s);
    pg_sb_str(&h, "RateLimit-Policy: \"");
    pg_sb_str(&h, w->scope[t]);
    pg_sb_str(&h, "\";q=");
    pg_sb_u64(&h, b->limit, 0);
    header_u64(&h, ";w=", b->window_s);
    pg_sb_str(&h, "RateLimit: \"");
    pg_sb_str(&h, w->scope[t]);
    pg_sb_str(&h, "\";r=");
    pg_sb_u64(&h, b->remaining, 0);
    header_u64(&h, ";t=", b->retry_s);
    if (pg_sb_end(&h))
        r->rl_hdrs_len = h.len;
}

static uint64_t ceil_s(uint64_t ms)
{
    return ms ? (ms + 999) / 1000 : 0;
}

/* The metric scope of a bucket key ("u:", "r:", "c:"); the cool-down key is the "u:" one. */
enum pg_metric_scope pg_lim_scope_of(const char *key, bool cooldown)
{
    if (cooldown)
        return PG_MS_COOLDOWN;
    return key[0] == 'r' ? PG_MS_ROUTE : key[0] == 'c' ? PG_MS_CONSUMER : PG_MS_UPSTREAM;
}

void pg_lim_reject(struct pg_req *r, uint64_t wait_ms, const char *msg, enum pg_metric_scope sc)
{
    /* panelgate_rate_limited_total counts it with the answer (pg_worker_record) */
    r->limited = (int)sc;
    struct pg_envelope e = { .code = PG_E_RATE_LIMITED, .message = msg, .has_retry_after = true };
    e.retry_after_s = ceil_s(wait_ms);
    if (e.retry_after_s == 0)
        e.retry_after_s = 1;
    pg_resp_error(r, &e);
}

/* rate_limit_store.on_error: deny, and redis cannot answer (SPEC 4.1). */
void pg_lim_unavailable(struct pg_req *r)
{
    struct pg_envelope e = { .code = PG_E_UPSTREAM_UNAVAILABLE,
                             .status = 503, /* the gateway's own state, not a panel's: retry */
                             .message = "The shared rate-limit store is unavailable.",
                             .has_retry_after = true,
                             .retry_after_s = 1 };
    pg_resp_error(r, &e);
}

/* A limit that holds a request back has its say: a reject-mode one refuses waiting, and the
 * shortest max_wait of them bounds it. */
void pg_lim_held_by(const struct pg_rate_limit *rl, bool *queue, uint64_t *max_wait)
{
    if (rl->mode != PG_RL_QUEUE)
        *queue = false;
    if (rl->max_wait_ms < *max_wait)
        *max_wait = rl->max_wait_ms;
}

/* Waiting out a cool-down: the upstream's own limit decides (none set: no waiting). */
void pg_lim_cooldown_policy(const struct pg_upstream *up, bool *queue, uint64_t *max_wait)
{
    *queue = up->rl.set && up->rl.mode == PG_RL_QUEUE;
    *max_wait = up->rl.max_wait_ms;
}

/* The buckets' answer res for r: TAKEN, or WAIT with *wait_ms, whether r may queue and for how
 * long, and *block (the key it waits for) set. */
static enum attempt judge(struct pg_req *r, const struct want *w,
                          const struct pg_bucket_result *res, uint64_t *wait_ms, bool *queue,
                          uint64_t *max_wait, const char **block)
{
    set_headers(r, w, res);
    if (res->taken)
        return TAKEN;
    *wait_ms = res->wait_ms;
    *queue = true;
    *max_wait = UINT64_MAX;
    bool found = false;
    for (size_t i = 0; i < res->n; i++) {
        if (res->b[i].remaining > 0)
            continue; /* this bucket had a token: its mode does not matter */
        if (!found)
            *block = w->kp[i];
        found = true;
        pg_lim_held_by(w->rates[i], queue, max_wait);
    }
    return WAIT;
}

/* A cool-down of cd ms holds r: WAIT as the upstream's own limit says. */
static enum attempt cooled(const struct pg_req *r, const struct want *w, uint64_t cd,
                           uint64_t *wait_ms, bool *queue, uint64_t *max_wait, const char **block)
{
    *block = w->cd_key;
    *wait_ms = cd;
    pg_lim_cooldown_policy(&r->conf->upstreams[r->upstream], queue, max_wait);
    return WAIT;
}

/* Try once: cool-down, then one token from every bucket of w; or, remote (a redis store), ASK
 * once no cool-down is known here. On WAIT, as judge. */
enum attempt pg_lim_attempt(struct pg_limit *l, struct pg_req *r, const struct want *w,
                            uint64_t now, uint64_t *wait_ms, bool *queue, uint64_t *max_wait,
                            const char **block, bool remote)
{
    uint64_t cd = l->store->ops->cooldown_get(l->store, w->cd_key, now);
    *block = w->cd_key;
    if (cd)
        return cooled(r, w, cd, wait_ms, queue, max_wait, block);
    if (remote) /* also with no bucket: another instance may have seen a 429 */
        return ASK;
    if (w->n == 0)
        return TAKEN;
    struct pg_bucket_result res;
    memset(&res, 0, sizeof res);
    int rc = l->store->ops->take_all(l->store, w->kp, w->rates, w->n, now, &res);
    if (rc < 0 || res.status < 0)
        return FAILED;
    return judge(r, w, &res, wait_ms, queue, max_wait, block);
}

/* ---- leases (a redis store): see limitint.h ---- */

/* How many tokens to ask redis for at once for w's buckets: what the slowest of them refills
 * in PG_LEASE_MS, at most PG_LEASE_MAX; 1 (no lease) below 2. */
static uint64_t lease_size(const struct want *w)
{
    uint64_t k = PG_LEASE_MAX;
    for (size_t i = 0; i < w->n; i++) {
        uint64_t per = w->rates[i]->rate_n * PG_LEASE_MS / w->rates[i]->rate_period_ms;
        if (per < k)
            k = per;
    }
    return k < 2 ? 1 : k;
}

/* w's keys, '\n'-joined, into out (cap >= PG_BUCKET_MAX_KEYS * PG_KEY_MAX); their hash. */
static uint64_t lease_key(const struct want *w, char *out)
{
    uint64_t h = 1469598103934665603ull;
    size_t n = 0;
    for (size_t i = 0; i < w->n; i++) {
        size_t k = strlen(w->kp[i]);
        memcpy(out + n, w->kp[i], k);
        n += k;
        out[n++] = '\n';
    }
    memcpy(out + n, w->cd_key, strlen(w->cd_key) + 1);
    for (const char *p = out; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

static struct pg_lease *lease_find(struct pg_limit *l, const char *key, uint64_t h)
{
    for (struct pg_lease *e = l->leases[h % PG_LEASE_SLOTS]; e; e = e->next)
        if (e->hash == h && strcmp(e->keys, key) == 0)
            return e;
    return NULL;
}

/* One token for r from a live lease on its buckets (hub.mu held). */
static bool lease_take(struct pg_limit *l, struct pg_req *r, const struct want *w, uint64_t now)
{
    char key[PG_BUCKET_MAX_KEYS * PG_KEY_MAX + PG_KEY_MAX];
    struct pg_lease *e = lease_find(l, key, lease_key(w, key));
    if (!e || e->left == 0 || now >= e->until_ms)
        return false;
    e->left--;
    for (size_t i = 0; i < e->res.n; i++)
        if (e->res.b[i].remaining)
            e->res.b[i].remaining--;
    set_headers(r, w, &e->res);
    return true;
}

/* Redis gave n tokens more than the asking request took: a lease on w's buckets until now +
 * PG_LEASE_MS (hub.mu held). Out of memory: they lapse at once. */
static void lease_put(struct pg_limit *l, const struct want *w, uint64_t n, uint64_t now,
                      const struct pg_bucket_result *res)
{
    char key[PG_BUCKET_MAX_KEYS * PG_KEY_MAX + PG_KEY_MAX];
    uint64_t h = lease_key(w, key);
    struct pg_lease *e = lease_find(l, key, h);
    if (!e) {
        size_t kn = strlen(key) + 1;
        if (!(e = calloc(1, sizeof *e + kn)))
            return;
        memcpy(e->keys, key, kn);
        e->hash = h;
        e->next = l->leases[h % PG_LEASE_SLOTS];
        l->leases[h % PG_LEASE_SLOTS] = e;
    }
    e->left = (now < e->until_ms ? e->left : 0) + n;
    e->until_ms = now + PG_LEASE_MS;
    e->res = *res;
}

/* A cool-down: no lease may let a request past it (hub.mu held). */
static void leases_drop(struct pg_limit *l)
{
    for (size_t i = 0; i < PG_LEASE_SLOTS; i++)
        for (struct pg_lease *e = l->leases[i]; e; e = e->next)
            e->left = 0;
}

/* Redis's answer t for r into the local store (the mirror /_gateway/me, the queue timers and
 * the on_error: allow fallback read), then judged as a local answer would be. */
enum attempt pg_lim_from_redis(struct pg_limit *l, struct pg_req *r, const struct want *w,
                               const struct pg_rtake *t, uint64_t now, uint64_t *wait_ms,
                               bool *queue, uint64_t *max_wait, const char **block)
{
    if (t->cooldown_ms) { /* another instance saw a 429 */
        leases_drop(l);
        l->store->ops->cooldown_set(l->store, w->cd_key, now + t->cooldown_ms);
        return cooled(r, w, t->cooldown_ms, wait_ms, queue, max_wait, block);
    }
    struct pg_bucket_result res;
    memset(&res, 0, sizeof res);
    res.taken = t->taken > 0;
    res.n = t->n;
    for (size_t i = 0; i < t->n; i++) {
        if (pg_bucket_local_put(l->store, w->kp[i], &t->b[i]))
            pg_log(PG_LOG_WARN, "rate limit %s: not mirrored locally", w->kp[i]);
        pg_bucket_describe(&t->b[i], now, &res.b[i]);
        if (!t->taken && res.b[i].wait_ms > res.wait_ms)
            res.wait_ms = res.b[i].wait_ms;
    }
    if (t->taken > 1)
        lease_put(l, w, t->taken - 1, now, &res);
    *block = w->cd_key;
    return judge(r, w, &res, wait_ms, queue, max_wait, block);
}

/* ms until r could take its tokens, looked up without taking any (queue timers). */
uint64_t pg_lim_peek_wait(struct pg_limit *l, const struct pg_req *r, uint64_t now)
{
    struct want w;
    pg_lim_collect(r, &w);
    uint64_t wait = l->store->ops->cooldown_get(l->store, w.cd_key, now);
    for (size_t i = 0; i < w.n; i++) {
        struct pg_bucket_result res;
        memset(&res, 0, sizeof res);
        if (l->store->ops->peek(l->store, w.kp[i], w.rates[i], now, &res) >= 0 && res.n == 1 &&
            res.b[0].wait_ms > wait)
            wait = res.b[0].wait_ms;
    }
    return wait;
}

/* What admission decided, acted on once the lock is let go. */
enum admit_outcome { AD_GO, AD_STORE_FAILED, AD_REJECT, AD_OOM, AD_QUEUED, AD_ASK };

/* What attempt a (with its wait, queue, max_wait and block) means for r, behind q if q is
 * set (hub.mu held): go, a 429 (*wait_out, *scope), or r waits in a queue. */
static enum admit_outcome conclude(struct pg_limit_port *p, struct pg_req *r, pg_limit_go_fn *go,
                                   const struct want *w, struct pg_limit_queue *q, enum attempt a,
                                   uint64_t wait, bool queue, uint64_t max_wait, const char *block,
                                   uint64_t now, uint64_t *wait_out, enum pg_metric_scope *scope)
{
    struct pg_limit *l = p->l;
    if (a == TAKEN)
        return AD_GO;
    if (a == FAILED)
        return AD_STORE_FAILED;
    if (!queue || max_wait == 0 || (!q && wait > max_wait)) {
        if (q) /* behind others: as long as the head still has to wait */
            wait = pg_lim_peek_wait(l, pg_lim_req_of(pg_lim_head(q)), now);
        *wait_out = wait;
        *scope = q ? pg_lim_scope_of(q->name, false) : pg_lim_scope_of(block, block == w->cd_key);
        return AD_REJECT;
    }
    if (!q && !(q = pg_lim_queue_of(l, block, true)))
        return AD_OOM;
    struct pg_limit_wait *wt = &r->lwait;
    wt->deadline_ms = now + max_wait;
    wt->go = go;
    wt->q = q;
    wt->port = p;
    pg_dlist_push_tail(&q->waits, &wt->link);
    q->n++;
    r->on_abort = pg_lim_on_queued_abort;
    if (pg_lim_arm(p, q, now))
        pg_lim_fail_queue(q);
    return AD_QUEUED;
}

/* The decision for r, with hub.mu held; on AD_REJECT *wait and *scope say why; AD_ASK (remote
 * only): redis is to be asked. */
static enum admit_outcome decide(struct pg_limit_port *p, struct pg_req *r, pg_limit_go_fn *go,
                                 bool remote, uint64_t *wait_out, enum pg_metric_scope *scope)
{
    struct pg_limit *l = p->l;
    uint64_t now = pg_lim_now(l), wait = 0, max_wait = 0;
    bool queue = false;
    struct want w;
    const char *block = NULL;
    pg_lim_collect(r, &w);
    struct pg_limit_queue *q = pg_lim_busy_queue(l, &w);
    enum attempt a;
    if (q) {
        /* arrival order: nobody overtakes those already waiting for the same bucket */
        a = WAIT;
        pg_lim_queue_policy(l, r, &w, q, now, &queue, &max_wait);
    } else {
        a = pg_lim_attempt(l, r, &w, now, &wait, &queue, &max_wait, &block, remote);
    }
    if (a == ASK) /* a lease on these buckets spares the round trip */
        return lease_take(l, r, &w, now) ? AD_GO : AD_ASK;
    return conclude(p, r, go, &w, q, a, wait, queue, max_wait, block, now, wait_out, scope);
}

/* Act on a decision once the lock is let go. */
static void act(struct pg_req *r, pg_limit_go_fn *go, enum admit_outcome o, uint64_t wait,
                enum pg_metric_scope scope)
{
    switch (o) {
    case AD_GO:
        go(r);
        break;
    case AD_STORE_FAILED: /* rate_limit_store.on_error decides */
        if (r->conf->store == PG_STORE_LOCAL || r->conf->redis_on_error_allow)
            go(r);
        else
            pg_resp_fail(r, PG_E_INTERNAL, "The rate-limit store is unavailable.");
        break;
    case AD_REJECT:
        pg_lim_reject(r, wait, NULL, scope);
        break;
    case AD_OOM:
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        break;
    case AD_QUEUED: /* a verdict comes through the worker's inbox */
    case AD_ASK:
        break;
    }
}

/* Decide for r with the local store (hub.mu taken here), and act. */
static void admit_local(struct pg_limit_port *p, struct pg_req *r, pg_limit_go_fn *go)
{
    uint64_t wait = 0;
    enum pg_metric_scope scope = PG_MS_UPSTREAM;
    pg_hub_lock(p->l->hub);
    enum admit_outcome o = decide(p, r, go, false, &wait, &scope);
    pg_hub_unlock(p->l->hub);
    act(r, go, o, wait, scope);
}

/* Redis could not answer for r: on_error decides (allow: the local store meanwhile). */
static void store_failed(struct pg_limit_port *p, struct pg_req *r, pg_limit_go_fn *go)
{
    if (r->conf->redis_on_error_allow)
        admit_local(p, r, go);
    else
        pg_lim_unavailable(r);
}

static void on_ask_abort(struct pg_req *r)
{
    pg_redis_cancel(r->lwait.rop);
    r->lwait.rop = NULL;
    r->on_abort = NULL;
}

/* Redis answered r's admission, on r's own loop. */
static void on_take_reply(void *arg, const redisReply *rep)
{
    struct pg_req *r = arg;
    struct pg_limit_wait *wt = &r->lwait;
    struct pg_limit_port *p = wt->port;
    struct pg_limit *l = p->l;
    pg_limit_go_fn *go = wt->go;
    struct want w;
    struct pg_rtake t;
    wt->rop = NULL;
    r->on_abort = NULL;
    pg_lim_collect(r, &w);
    uint64_t now = pg_lim_now(l);
    if (!rep || pg_rstore_parse_take(rep, w.n, lease_size(&w), now, &t)) {
        if (rep)
            pg_redis_failed(p->rd);
        store_failed(p, r, go);
        return;
    }
    uint64_t wait = 0, max_wait = 0;
    bool queue = false;
    const char *block = NULL;
    enum pg_metric_scope scope = PG_MS_UPSTREAM;
    pg_hub_lock(l->hub);
    enum attempt a = pg_lim_from_redis(l, r, &w, &t, now, &wait, &queue, &max_wait, &block);
    /* a queue that filled meanwhile here does not matter: redis already said yes or no */
    enum admit_outcome o =
        conclude(p, r, go, &w, NULL, a, wait, queue, max_wait, block, now, &wait, &scope);
    pg_hub_unlock(l->hub);
    act(r, go, o, wait, scope);
}

void pg_limit_admit(struct pg_limit_port *p, struct pg_req *r, pg_limit_go_fn *go)
{
    uint64_t wait = 0;
    enum pg_metric_scope scope = PG_MS_UPSTREAM;
    bool deny;
    r->rl_hdrs_len = 0;
    bool remote = pg_lim_remote_for(p, r, &deny);
    if (deny) {
        pg_lim_unavailable(r);
        return;
    }
    pg_hub_lock(p->l->hub);
    enum admit_outcome o = decide(p, r, go, remote, &wait, &scope);
    pg_hub_unlock(p->l->hub);
    if (o == AD_ASK) {
        struct want w;
        struct pg_limit_wait *wt = &r->lwait;
        pg_lim_collect(r, &w);
        wt->go = go;
        wt->port = p;
        wt->rop = pg_rstore_take(p->rd, &p->l->scripts, r->conf->redis_prefix, w.cd_key, w.kp,
                                 w.rates, w.n, lease_size(&w), on_take_reply, r);
        if (wt->rop) {
            r->on_abort = on_ask_abort;
            return;
        }
        pg_redis_failed(p->rd);
        store_failed(p, r, go);
        return;
    }
    act(r, go, o, wait, scope);
}

void pg_limit_cooldown(struct pg_limit_port *p, const struct pg_conf *c,
                       const struct pg_upstream *up, uint64_t ms)
{
    struct pg_limit *l = p->l;
    char key[PG_KEY_MAX];
    if (!pg_lim_key(key, "u:", up->name, NULL))
        return;
    pg_hub_lock(l->hub);
    uint64_t now = pg_lim_now(l);
    leases_drop(l);
    if (l->store->ops->cooldown_set(l->store, key, now + ms))
        pg_log(PG_LOG_WARN, "upstream %s: cool-down not recorded", up->name);
    if (c->store == PG_STORE_REDIS && p->rd) { /* every instance holds off, not only this one */
        if (pg_redis_up(p->rd))
            pg_rstore_cooldown(p->rd, &l->scripts, c->redis_prefix, key, ms);
        else
            pg_redis_failed(p->rd);
    }
    struct pg_limit_queue *q = pg_lim_queue_of(l, key, false);
    if (q && q->waits.head && pg_lim_arm(p, q, now))
        pg_lim_fail_queue(q);
    pg_hub_unlock(l->hub);
}

uint64_t pg_limit_cooldown_left(struct pg_limit *l, const struct pg_upstream *up)
{
    char key[PG_KEY_MAX];
    if (!pg_lim_key(key, "u:", up->name, NULL))
        return 0;
    return l->store->ops->cooldown_get(l->store, key, pg_lim_now(l));
}

/* Bucket key under rl as {"scope", "key" (without the scope's prefix), "limit", "remaining",
 * <reset>} appended to arr; nothing when rl is unset or the store cannot say. -1 out of memory. */
static int bucket_json(struct pg_limit *l, json_t *arr, const char *scope, const char *key,
                       const struct pg_rate_limit *rl, uint64_t now, const char *reset)
{
    if (!rl->set)
        return 0;
    struct pg_bucket_result res;
    memset(&res, 0, sizeof res);
    if (l->store->ops->peek(l->store, key, rl, now, &res) < 0 || res.n < 1)
        return 0;
    const struct pg_bucket_info *b = &res.b[0];
    return json_array_append_new(arr, json_pack("{s:s,s:s,s:I,s:I,s:I}", "scope", scope, "key",
                                                key + 2, "limit", (json_int_t)b->limit, "remaining",
                                                (json_int_t)b->remaining, reset,
                                                (json_int_t)b->reset_s));
}

/* Upstream up's own bucket and its routes' into arr. -1 out of memory. */
static int upstream_buckets(struct pg_limit *l, json_t *arr, const struct pg_upstream *up,
                            uint64_t now, const char *reset)
{
    char key[PG_KEY_MAX];
    if (pg_lim_key(key, "u:", up->name, NULL) &&
        bucket_json(l, arr, "upstream", key, &up->rl, now, reset))
        return -1;
    for (size_t j = 0; j < up->nroutes; j++)
        if (pg_lim_key(key, "r:", up->name, up->routes[j].path) &&
            bucket_json(l, arr, "route", key, &up->routes[j].rl, now, reset))
            return -1;
    return 0;
}

json_t *pg_limit_buckets(struct pg_limit *l, const struct pg_upstream *up)
{
    json_t *arr = json_array();
    if (arr && upstream_buckets(l, arr, up, pg_lim_now(l), "reset_s")) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* The methods consumer k may send to upstream i, as PG_M_* bits. */
static unsigned allowed_methods(const struct pg_consumer *k, int i)
{
    unsigned m = 0;
    for (size_t a = 0; a < k->nallow; a++)
        if (k->allow[a].upstream == -1 || k->allow[a].upstream == i)
            m |= k->allow[a].methods;
    return m;
}

static json_t *methods_json(unsigned m)
{
    static const char *const names[] = {
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"
    };
    json_t *a = json_array();
    for (unsigned b = 0; a && b < 7; b++)
        if ((m & (1u << b)) && json_array_append_new(a, json_string(names[b]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *pg_limit_me(struct pg_limit *l, const struct pg_conf *c, const struct pg_consumer *k)
{
    uint64_t now = pg_lim_now(l);
    char key[PG_KEY_MAX];
    json_t *ups = json_array(), *bks = json_array();
    json_t *me = json_pack("{s:s,s:b,s:o,s:o}", "consumer", k->name, "admin", k->admin, "upstreams",
                           ups, "buckets", bks);
    if (!me)
        return NULL;
    if (pg_lim_key(key, "c:", k->name, NULL) &&
        bucket_json(l, bks, "consumer", key, &k->rl, now, "reset"))
        goto fail;
    for (size_t i = 0; i < c->nupstreams; i++) {
        unsigned m = allowed_methods(k, (int)i);
        if (!m)
            continue;
        if (json_array_append_new(ups, json_pack("{s:s,s:o}", "name", c->upstreams[i].name,
                                                 "methods", methods_json(m))) ||
            upstream_buckets(l, bks, &c->upstreams[i], now, "reset"))
            goto fail;
    }
    return me;
fail:
    json_decref(me);
    return NULL;
}
