/* limit.c -- admission against token buckets and cool-downs; FIFO queues per bucket key, shared
 * by every worker (under the hub's lock), each worker arming its own timers (its port). */
#include "limit.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "envelope.h"
#include "hub.h"
#include "metrics.h"
#include "redis.h"
#include "route.h"
#include "rstore.h"
#include "util.h"

#define PG_KEY_MAX 200

/* One FIFO of requests waiting for tokens of one bucket key (by name: survives reloads), from
 * any worker. The worker that last served or armed it holds the timer that serves it next
 * (armer, at due_ms); a stale timer on another worker that fires earlier finds nothing due. */
struct pg_limit_queue {
    struct pg_limit_queue *next;
    struct pg_limit *l;
    char name[PG_KEY_MAX]; /* the bucket key its requests wait for */
    struct pg_limit_wait *head, *tail;
    size_t n;
    struct pg_limit_port *armer;
    uint64_t due_ms;
    /* redis store: the head's tokens are being asked for (one ask in flight per queue) */
    bool asking;
    struct pg_limit_wait *asked; /* the head it asked for; tokens are fungible if it left */
    struct pg_limit_port *asker;
};

struct pg_limit {
    struct pg_hub *hub; /* hub->mu guards the queues and every waiter's links */
    struct pg_bucket_store *store;
    struct pg_limit_queue *queues;
    pg_clock_fn *now_ms; /* every time below is on this clock */
    void *now_arg;
    struct pg_rstore_scripts scripts; /* for a redis store */
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

static uint64_t now_of(const struct pg_limit *l)
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
    pg_bucket_store_free(l->store);
    free(l);
}

static void add_key(struct want *w, const char *scope, const struct pg_rate_limit *rl,
                    const char *fmt_a, const char *a, const char *b)
{
    if (!rl->set || w->n == PG_BUCKET_MAX_KEYS)
        return;
    int k = b ? snprintf(w->keys[w->n], PG_KEY_MAX, "%s%s:%s", fmt_a, a, b)
              : snprintf(w->keys[w->n], PG_KEY_MAX, "%s%s", fmt_a, a);
    if (k < 0 || k >= PG_KEY_MAX)
        return; /* a 200-byte name cannot come from a valid config */
    w->kp[w->n] = w->keys[w->n];
    w->rates[w->n] = rl;
    w->scope[w->n] = scope;
    w->n++;
}

static void collect(const struct pg_req *r, struct want *w)
{
    const struct pg_upstream *up = &r->conf->upstreams[r->upstream];
    w->n = 0;
    snprintf(w->cd_key, sizeof w->cd_key, "u:%s", up->name);
    add_key(w, "upstream", &up->rl, "u:", up->name, NULL);
    const struct pg_route_conf *rt = pg_route_of(up, r->rest, r->rest_len);
    if (rt)
        add_key(w, "route", &rt->rl, "r:", up->name, rt->path);
    if (r->consumer)
        add_key(w, "consumer", &r->consumer->rl, "c:", r->consumer->name, NULL);
}

/* RateLimit headers (SPEC section 4) for the tightest bucket that applied. */
static void set_headers(struct pg_req *r, const struct want *w, const struct pg_bucket_result *res)
{
    r->rl_hdrs_len = 0;
    if (res->n == 0)
        return;
    size_t t = pg_bucket_tightest(res->b, res->n);
    const struct pg_bucket_info *b = &res->b[t];
    int k = snprintf(r->rl_hdrs, sizeof r->rl_hdrs,
                     "RateLimit-Limit: %llu\r\nRateLimit-Remaining: %llu\r\n"
                     "RateLimit-Reset: %llu\r\nRateLimit-Policy: \"%s\";q=%llu;w=%llu\r\n"
                     "RateLimit: \"%s\";r=%llu;t=%llu\r\n",
                     (unsigned long long)b->limit, (unsigned long long)b->remaining,
                     (unsigned long long)b->reset_s, w->scope[t], (unsigned long long)b->limit,
                     (unsigned long long)b->window_s, w->scope[t], (unsigned long long)b->remaining,
                     (unsigned long long)b->retry_s);
    if (k > 0 && (size_t)k < sizeof r->rl_hdrs)
        r->rl_hdrs_len = (size_t)k;
}

static uint64_t ceil_s(uint64_t ms)
{
    return ms ? (ms + 999) / 1000 : 0;
}

/* The metric scope of a bucket key ("u:", "r:", "c:"); the cool-down key is the "u:" one. */
static enum pg_metric_scope scope_of(const char *key, bool cooldown)
{
    if (cooldown)
        return PG_MS_COOLDOWN;
    return key[0] == 'r' ? PG_MS_ROUTE : key[0] == 'c' ? PG_MS_CONSUMER : PG_MS_UPSTREAM;
}

static void reject(struct pg_req *r, uint64_t wait_ms, const char *msg, enum pg_metric_scope sc)
{
    pg_metrics_limited(r->w->metrics, r->conf->upstreams[r->upstream].name, sc);
    struct pg_envelope e = { .code = PG_E_RATE_LIMITED, .message = msg, .has_retry_after = true };
    e.retry_after_s = ceil_s(wait_ms);
    if (e.retry_after_s == 0)
        e.retry_after_s = 1;
    pg_resp_error(r, &e);
}

/* rate_limit_store.on_error: deny, and redis cannot answer (SPEC 4.1). */
static void unavailable(struct pg_req *r)
{
    struct pg_envelope e = { .code = PG_E_UPSTREAM_UNAVAILABLE,
                             .status = 503, /* the gateway's own state, not a panel's: retry */
                             .message = "The shared rate-limit store is unavailable.",
                             .has_retry_after = true,
                             .retry_after_s = 1 };
    pg_resp_error(r, &e);
}

/* ASK: the tokens are redis's to give (rstore.h); nothing was taken here. */
enum attempt { TAKEN, WAIT, FAILED, ASK };

/* A limit that holds a request back has its say: a reject-mode one refuses waiting, and the
 * shortest max_wait of them bounds it. */
static void held_by(const struct pg_rate_limit *rl, bool *queue, uint64_t *max_wait)
{
    if (rl->mode != PG_RL_QUEUE)
        *queue = false;
    if (rl->max_wait_ms < *max_wait)
        *max_wait = rl->max_wait_ms;
}

/* Waiting out a cool-down: the upstream's own limit decides (none set: no waiting). */
static void cooldown_policy(const struct pg_upstream *up, bool *queue, uint64_t *max_wait)
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
        held_by(w->rates[i], queue, max_wait);
    }
    return WAIT;
}

/* A cool-down of cd ms holds r: WAIT as the upstream's own limit says. */
static enum attempt cooled(const struct pg_req *r, const struct want *w, uint64_t cd,
                           uint64_t *wait_ms, bool *queue, uint64_t *max_wait, const char **block)
{
    *block = w->cd_key;
    *wait_ms = cd;
    cooldown_policy(&r->conf->upstreams[r->upstream], queue, max_wait);
    return WAIT;
}

/* Try once: cool-down, then one token from every bucket of w; or, remote (a redis store), ASK
 * once no cool-down is known here. On WAIT, as judge. */
static enum attempt attempt(struct pg_limit *l, struct pg_req *r, const struct want *w,
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

/* Redis's answer t for r into the local store (the mirror /_gateway/me, the queue timers and
 * the on_error: allow fallback read), then judged as a local answer would be. */
static enum attempt from_redis(struct pg_limit *l, struct pg_req *r, const struct want *w,
                               const struct pg_rtake *t, uint64_t now, uint64_t *wait_ms,
                               bool *queue, uint64_t *max_wait, const char **block)
{
    if (t->cooldown_ms) {
        l->store->ops->cooldown_set(l->store, w->cd_key, now + t->cooldown_ms);
        return cooled(r, w, t->cooldown_ms, wait_ms, queue, max_wait, block);
    }
    struct pg_bucket_result res;
    memset(&res, 0, sizeof res);
    res.taken = t->taken;
    res.n = t->n;
    for (size_t i = 0; i < t->n; i++) {
        if (pg_bucket_local_put(l->store, w->kp[i], &t->b[i]))
            pg_log(PG_LOG_WARN, "rate limit %s: not mirrored locally", w->kp[i]);
        pg_bucket_describe(&t->b[i], now, &res.b[i]);
        if (!t->taken && res.b[i].wait_ms > res.wait_ms)
            res.wait_ms = res.b[i].wait_ms;
    }
    *block = w->cd_key;
    return judge(r, w, &res, wait_ms, queue, max_wait, block);
}

/* ms until r could take its tokens, looked up without taking any (queue timers). */
static uint64_t peek_wait(struct pg_limit *l, const struct pg_req *r, uint64_t now)
{
    struct want w;
    collect(r, &w);
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

static struct pg_limit_queue *queue_of(struct pg_limit *l, const char *name, bool create);
static int arm(struct pg_limit_port *p, struct pg_limit_queue *q, uint64_t now);
static void fail_queue(struct pg_limit_queue *q);

static struct pg_req *req_of(struct pg_limit_wait *wt)
{
    return PG_CONTAINER_OF(wt, struct pg_req, lwait);
}

/* hub.mu held. */
static void unlink_wait(struct pg_limit_queue *q, struct pg_limit_wait *wt)
{
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        q->head = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    else
        q->tail = wt->prev;
    wt->prev = wt->next = NULL;
    wt->q = NULL;
    q->n--;
}

/* The caller went away while queued or while its verdict was on the way: it leaves at once. A
 * token already taken for it is spent, as for any request whose caller leaves. */
static void on_queued_abort(struct pg_req *r)
{
    struct pg_limit_wait *wt = &r->lwait;
    struct pg_hub *hub = wt->port->l->hub;
    pg_hub_lock(hub);
    if (wt->q)
        unlink_wait(wt->q, wt);
    else
        pg_inbox_take_locked(&wt->post);
    pg_hub_unlock(hub);
    r->on_abort = NULL;
}

/* On the waiter's own loop: act on the verdict the queue gave it. */
static void on_verdict(struct pg_post *post)
{
    struct pg_limit_wait *wt = PG_CONTAINER_OF(post, struct pg_limit_wait, post);
    struct pg_req *r = req_of(wt);
    r->on_abort = NULL;
    switch (wt->verdict) {
    case PG_LV_GO:
        wt->go(r);
        break;
    case PG_LV_LATE:
        reject(r, wt->wait_ms, "Rate limit exceeded: waited max_wait in the queue.", wt->scope);
        break;
    case PG_LV_FAIL:
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        break;
    case PG_LV_UNAVAILABLE:
        unavailable(r);
        break;
    }
}

/* hub.mu held: wt leaves q with verdict v, delivered on its own worker's loop. */
static void send_off(struct pg_limit_queue *q, struct pg_limit_wait *wt, enum pg_limit_verdict v,
                     uint64_t wait_ms)
{
    unlink_wait(q, wt);
    wt->verdict = v;
    wt->wait_ms = wait_ms;
    wt->scope = scope_of(q->name, false);
    wt->post.run = on_verdict;
    pg_inbox_put_locked(wt->port->in, &wt->post);
}

static int ask_head(struct pg_limit_port *p, struct pg_limit_queue *q, struct pg_limit_wait *wt);

/* With a redis store, r's tokens are redis's to give: is it up from p's worker? Down, the
 * failure counts, and on_error decides: allow goes on with the local store (false), deny
 * leaves *deny set. */
static bool remote_for(struct pg_limit_port *p, const struct pg_req *r, bool *deny)
{
    *deny = false;
    if (r->conf->store != PG_STORE_REDIS || !p->rd)
        return false;
    if (pg_redis_up(p->rd))
        return true;
    pg_redis_failed(p->rd);
    *deny = !r->conf->redis_on_error_allow;
    return false;
}

/* Serve q at now as p's worker (hub.mu held): what its timer does when it fires. */
static void run_queue(struct pg_limit_port *p, struct pg_limit_queue *q, uint64_t now)
{
    struct pg_limit *l = q->l;
    /* first come, first served: the head is tried until it waits; the ones past their
     * max_wait leave with a 429 wherever they are */
    while (q->head && !q->asking) {
        struct pg_limit_wait *wt = q->head;
        struct pg_req *r = req_of(wt);
        struct want w;
        uint64_t wait = 0, max_wait;
        bool qok, deny;
        const char *block;
        collect(r, &w);
        bool remote = remote_for(p, r, &deny);
        if (deny) {
            send_off(q, wt, PG_LV_UNAVAILABLE, 1000);
            continue;
        }
        enum attempt a = attempt(l, r, &w, now, &wait, &qok, &max_wait, &block, remote);
        if (a == ASK) {
            /* redis is asked once the mirror says a token is due, one head at a time */
            wait = peek_wait(l, r, now);
            if (wait > 0 || now >= wt->deadline_ms) {
                a = WAIT;
            } else if (ask_head(p, q, wt) == 0) {
                break;
            } else if (!r->conf->redis_on_error_allow) {
                send_off(q, wt, PG_LV_UNAVAILABLE, 1000);
                continue;
            } else {
                a = attempt(l, r, &w, now, &wait, &qok, &max_wait, &block, false);
            }
        }
        if (a == WAIT && now < wt->deadline_ms)
            break;
        send_off(q, wt, a == TAKEN ? PG_LV_GO : a == WAIT ? PG_LV_LATE : PG_LV_FAIL, wait);
    }
    for (struct pg_limit_wait *wt = q->head; wt;) {
        struct pg_limit_wait *next = wt->next;
        if (wt->deadline_ms <= now)
            send_off(q, wt, PG_LV_LATE, 1000);
        wt = next;
    }
}

/* Serve q as port's worker and arm port's timer for what is left (hub.mu held). */
static void serve(struct pg_limit_port *p, struct pg_limit_queue *q, uint64_t now)
{
    run_queue(p, q, now);
    if (q->head && arm(p, q, now))
        fail_queue(q);
}

/* Redis answered the ask for q's head, on the asker's loop. */
static void on_ask_reply(void *arg, const redisReply *rep)
{
    struct pg_limit_queue *q = arg;
    struct pg_limit_port *p = q->asker;
    struct pg_limit *l = q->l;
    pg_hub_lock(l->hub);
    uint64_t now = now_of(l);
    struct pg_limit_wait *wt = q->asked;
    q->asking = false;
    q->asked = NULL;
    if (wt && wt == q->head) {
        struct pg_req *r = req_of(wt);
        struct want w;
        struct pg_rtake t;
        uint64_t wait = 0, max_wait;
        bool qok;
        const char *block;
        collect(r, &w);
        if (rep && pg_rstore_parse_take(rep, w.n, now, &t) == 0) {
            if (from_redis(l, r, &w, &t, now, &wait, &qok, &max_wait, &block) == TAKEN)
                send_off(q, wt, PG_LV_GO, 0);
        } else {
            if (rep)
                pg_redis_failed(p->rd);
            if (!r->conf->redis_on_error_allow)
                send_off(q, wt, PG_LV_UNAVAILABLE, 1000);
            else if (attempt(l, r, &w, now, &wait, &qok, &max_wait, &block, false) == TAKEN)
                send_off(q, wt, PG_LV_GO, 0); /* the local store meanwhile */
        }
    }
    if (q->head)
        serve(p, q, now);
    pg_hub_unlock(l->hub);
}

/* Ask redis for wt's tokens on p's connection (hub.mu held). 0 sent, -1 not. */
static int ask_head(struct pg_limit_port *p, struct pg_limit_queue *q, struct pg_limit_wait *wt)
{
    struct pg_req *r = req_of(wt);
    struct want w;
    collect(r, &w);
    if (!pg_rstore_take(p->rd, &q->l->scripts, r->conf->redis_prefix, w.cd_key, w.kp, w.rates, w.n,
                        on_ask_reply, q)) {
        pg_redis_failed(p->rd);
        return -1;
    }
    q->asking = true;
    q->asked = wt;
    q->asker = p;
    return 0;
}

static void on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
    struct port_timer *t = arg;
    struct pg_limit *l = t->port->l;
    (void)fd;
    (void)what;
    pg_hub_lock(l->hub);
    uint64_t now = now_of(l);
    /* another worker took the queue over and armed its own timer for later */
    if (t->q->head && (t->q->armer == t->port || now >= t->q->due_ms))
        serve(t->port, t->q, now);
    pg_hub_unlock(l->hub);
}

void pg_limit_tick(struct pg_limit_port *p)
{
    struct pg_limit *l = p->l;
    pg_hub_lock(l->hub);
    uint64_t now = now_of(l);
    for (struct pg_limit_queue *q = l->queues; q; q = q->next)
        if (q->head)
            serve(p, q, now);
    pg_hub_unlock(l->hub);
    pg_inbox_drain(p->in);
}

/* p's timer for q, made on first use. */
static struct port_timer *timer_of(struct pg_limit_port *p, struct pg_limit_queue *q)
{
    for (struct port_timer *t = p->timers; t; t = t->next)
        if (t->q == q)
            return t;
    struct port_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->port = p;
    t->q = q;
    if (event_assign(&t->ev, p->base, -1, 0, on_queue_timer, t)) {
        free(t);
        return NULL;
    }
    t->next = p->timers;
    p->timers = t;
    return t;
}

/* Wake at the head's next token or the earliest deadline, whichever comes first, on port p's
 * loop (hub.mu held). 0 ok, -1 the timer could not be armed (the caller fails the waiters:
 * without it they would wait forever). */
static int arm(struct pg_limit_port *p, struct pg_limit_queue *q, uint64_t now)
{
    uint64_t at = UINT64_MAX;
    for (const struct pg_limit_wait *wt = q->head; wt; wt = wt->next)
        if (wt->deadline_ms < at)
            at = wt->deadline_ms;
    uint64_t wait = q->head ? peek_wait(q->l, req_of(q->head), now) : 0;
    if (now + wait < at)
        at = now + wait;
    struct port_timer *t = timer_of(p, q);
    if (t && pg_event_add_ms(&t->ev, at > now ? at - now : 0) == 0) {
        q->armer = p;
        q->due_ms = at;
        return 0;
    }
    pg_log(PG_LOG_ERR, "rate-limit queue %s: its timer could not be armed", q->name);
    return -1;
}

/* Every waiter of q leaves with a 500: no timer is armed, so nothing would wake them. */
static void fail_queue(struct pg_limit_queue *q)
{
    while (q->head)
        send_off(q, q->head, PG_LV_FAIL, 0);
}

/* Queues are per bucket key: a request waits only behind those that want one of its buckets. */
static struct pg_limit_queue *queue_of(struct pg_limit *l, const char *name, bool create)
{
    for (struct pg_limit_queue *q = l->queues; q; q = q->next)
        if (strcmp(q->name, name) == 0)
            return q;
    if (!create || strlen(name) >= sizeof(((struct pg_limit_queue *)0)->name))
        return NULL;
    struct pg_limit_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->l = l;
    memcpy(q->name, name, strlen(name) + 1);
    q->next = l->queues;
    l->queues = q;
    return q;
}

/* Behind the busy queue q: may r wait, and how long at most? As in attempt, only the buckets
 * that hold r back decide -- q's own (the upstream's limit for a cool-down queue) and any that
 * is empty now; a bucket with tokens left has no say, whatever its mode. */
static void queue_policy(struct pg_limit *l, const struct pg_req *r, const struct want *w,
                         const struct pg_limit_queue *q, uint64_t now, bool *queue,
                         uint64_t *max_wait)
{
    *queue = true;
    *max_wait = UINT64_MAX;
    if (strcmp(q->name, w->cd_key) == 0)
        cooldown_policy(&r->conf->upstreams[r->upstream], queue, max_wait);
    for (size_t i = 0; i < w->n; i++) {
        bool holds = strcmp(q->name, w->kp[i]) == 0;
        if (!holds) {
            struct pg_bucket_result res;
            memset(&res, 0, sizeof res);
            holds = l->store->ops->peek(l->store, w->kp[i], w->rates[i], now, &res) >= 0 &&
                    res.n == 1 && res.b[0].remaining == 0;
        }
        if (holds)
            held_by(w->rates[i], queue, max_wait);
    }
}

/* A queue that already holds requests wanting one of w's buckets (or its cool-down). */
static struct pg_limit_queue *busy_queue(struct pg_limit *l, const struct want *w)
{
    struct pg_limit_queue *q = queue_of(l, w->cd_key, false);
    if (q && q->head)
        return q;
    for (size_t i = 0; i < w->n; i++)
        if ((q = queue_of(l, w->kp[i], false)) && q->head)
            return q;
    return NULL;
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
            wait = peek_wait(l, req_of(q->head), now);
        *wait_out = wait;
        *scope = q ? scope_of(q->name, false) : scope_of(block, block == w->cd_key);
        return AD_REJECT;
    }
    if (!q && !(q = queue_of(l, block, true)))
        return AD_OOM;
    struct pg_limit_wait *wt = &r->lwait;
    wt->deadline_ms = now + max_wait;
    wt->go = go;
    wt->q = q;
    wt->port = p;
    wt->next = NULL;
    wt->prev = q->tail;
    if (q->tail)
        q->tail->next = wt;
    else
        q->head = wt;
    q->tail = wt;
    q->n++;
    r->on_abort = on_queued_abort;
    if (arm(p, q, now))
        fail_queue(q);
    return AD_QUEUED;
}

/* The decision for r, with hub.mu held; on AD_REJECT *wait and *scope say why; AD_ASK (remote
 * only): redis is to be asked. */
static enum admit_outcome decide(struct pg_limit_port *p, struct pg_req *r, pg_limit_go_fn *go,
                                 bool remote, uint64_t *wait_out, enum pg_metric_scope *scope)
{
    struct pg_limit *l = p->l;
    uint64_t now = now_of(l), wait = 0, max_wait = 0;
    bool queue = false;
    struct want w;
    const char *block = NULL;
    collect(r, &w);
    struct pg_limit_queue *q = busy_queue(l, &w);
    enum attempt a;
    if (q) {
        /* arrival order: nobody overtakes those already waiting for the same bucket */
        a = WAIT;
        queue_policy(l, r, &w, q, now, &queue, &max_wait);
    } else {
        a = attempt(l, r, &w, now, &wait, &queue, &max_wait, &block, remote);
    }
    if (a == ASK)
        return AD_ASK;
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
        reject(r, wait, NULL, scope);
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
        unavailable(r);
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
    collect(r, &w);
    uint64_t now = now_of(l);
    if (!rep || pg_rstore_parse_take(rep, w.n, now, &t)) {
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
    enum attempt a = from_redis(l, r, &w, &t, now, &wait, &queue, &max_wait, &block);
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
    bool remote = remote_for(p, r, &deny);
    if (deny) {
        unavailable(r);
        return;
    }
    pg_hub_lock(p->l->hub);
    enum admit_outcome o = decide(p, r, go, remote, &wait, &scope);
    pg_hub_unlock(p->l->hub);
    if (o == AD_ASK) {
        struct want w;
        struct pg_limit_wait *wt = &r->lwait;
        collect(r, &w);
        wt->go = go;
        wt->port = p;
        wt->rop = pg_rstore_take(p->rd, &p->l->scripts, r->conf->redis_prefix, w.cd_key, w.kp,
                                 w.rates, w.n, on_take_reply, r);
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

void pg_limit_port_set_redis(struct pg_limit_port *p, struct pg_redis *rd)
{
    p->rd = rd;
}

void pg_limit_cooldown(struct pg_limit_port *p, const struct pg_conf *c,
                       const struct pg_upstream *up, uint64_t ms)
{
    struct pg_limit *l = p->l;
    char key[PG_KEY_MAX];
    int k = snprintf(key, sizeof key, "u:%s", up->name);
    if (k < 0 || (size_t)k >= sizeof key)
        return;
    pg_hub_lock(l->hub);
    uint64_t now = now_of(l);
    if (l->store->ops->cooldown_set(l->store, key, now + ms))
        pg_log(PG_LOG_WARN, "upstream %s: cool-down not recorded", up->name);
    if (c->store == PG_STORE_REDIS && p->rd) { /* every instance holds off, not only this one */
        if (pg_redis_up(p->rd))
            pg_rstore_cooldown(p->rd, &l->scripts, c->redis_prefix, key, ms);
        else
            pg_redis_failed(p->rd);
    }
    struct pg_limit_queue *q = queue_of(l, key, false);
    if (q && q->head && arm(p, q, now))
        fail_queue(q);
    pg_hub_unlock(l->hub);
}

size_t pg_limit_queued(struct pg_limit *l, const struct pg_upstream *up)
{
    char key[PG_KEY_MAX];
    size_t n = 0;
    snprintf(key, sizeof key, "u:%s", up->name);
    pg_hub_lock(l->hub);
    for (const struct pg_limit_queue *q = l->queues; q; q = q->next)
        if (strcmp(q->name, key) == 0)
            n = q->n;
    pg_hub_unlock(l->hub);
    return n;
}

struct pg_limit_port *pg_limit_port_new(struct pg_limit *l, struct event_base *base,
                                        struct pg_inbox *in)
{
    struct pg_limit_port *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->l = l;
    p->base = base;
    p->in = in;
    return p;
}

void pg_limit_port_free(struct pg_limit_port *p)
{
    if (!p)
        return;
    while (p->timers) {
        struct port_timer *t = p->timers;
        p->timers = t->next;
        event_del(&t->ev);
        free(t);
    }
    free(p);
}

uint64_t pg_limit_cooldown_left(struct pg_limit *l, const struct pg_upstream *up)
{
    char key[PG_KEY_MAX];
    int k = snprintf(key, sizeof key, "u:%s", up->name);
    if (k < 0 || (size_t)k >= sizeof key)
        return 0;
    return l->store->ops->cooldown_get(l->store, key, now_of(l));
}

static int me_bucket(struct pg_limit *l, struct evbuffer *out, bool *first, const char *scope,
                     const char *key, const struct pg_rate_limit *rl, uint64_t now)
{
    if (!rl->set)
        return 0;
    struct pg_bucket_result res;
    memset(&res, 0, sizeof res);
    if (l->store->ops->peek(l->store, key, rl, now, &res) < 0 || res.n < 1)
        return 0;
    const struct pg_bucket_info *b = &res.b[0];
    if (evbuffer_add_printf(out, "%s{\"scope\":\"%s\",\"key\":\"", *first ? "" : ",", scope) < 0 ||
        pg_json_escape(out, key + 2, strlen(key + 2)) ||
        evbuffer_add_printf(out, "\",\"limit\":%llu,\"remaining\":%llu,\"reset\":%llu}",
                            (unsigned long long)b->limit, (unsigned long long)b->remaining,
                            (unsigned long long)b->reset_s) < 0)
        return -1;
    *first = false;
    return 0;
}

int pg_limit_me(struct pg_limit *l, const struct pg_conf *c, const struct pg_consumer *k,
                struct evbuffer *out)
{
    uint64_t now = now_of(l);
    char key[PG_KEY_MAX];
    bool first = true;
    if (evbuffer_add(out, "{\"consumer\":\"", 13) ||
        pg_json_escape(out, k->name, strlen(k->name)) ||
        evbuffer_add_printf(out, "\",\"admin\":%s,\"upstreams\":[", k->admin ? "true" : "false") <
            0)
        return -1;
    for (size_t i = 0; i < c->nupstreams; i++) {
        unsigned m = 0;
        for (size_t a = 0; a < k->nallow; a++)
            if (k->allow[a].upstream == -1 || k->allow[a].upstream == (int)i)
                m |= k->allow[a].methods;
        if (!m)
            continue;
        static const char *const names[] = { "GET",   "HEAD",   "POST",   "PUT",
                                             "PATCH", "DELETE", "OPTIONS" };
        if (evbuffer_add_printf(out, "%s{\"name\":\"%s\",\"methods\":[", first ? "" : ",",
                                c->upstreams[i].name) < 0)
            return -1;
        first = false;
        bool mf = true;
        for (unsigned b = 0; b < 7; b++) {
            if (!(m & (1u << b)))
                continue;
            if (evbuffer_add_printf(out, "%s\"%s\"", mf ? "" : ",", names[b]) < 0)
                return -1;
            mf = false;
        }
        if (evbuffer_add(out, "]}", 2))
            return -1;
    }
    if (evbuffer_add(out, "],\"buckets\":[", 13))
        return -1;
    first = true;
    snprintf(key, sizeof key, "c:%s", k->name);
    if (me_bucket(l, out, &first, "consumer", key, &k->rl, now))
        return -1;
    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct pg_upstream *up = &c->upstreams[i];
        bool allowed = false;
        for (size_t a = 0; a < k->nallow; a++)
            allowed = allowed || k->allow[a].upstream == -1 || k->allow[a].upstream == (int)i;
        if (!allowed)
            continue;
        snprintf(key, sizeof key, "u:%s", up->name);
        if (me_bucket(l, out, &first, "upstream", key, &up->rl, now))
            return -1;
        for (size_t j = 0; j < up->nroutes; j++) {
            int n = snprintf(key, sizeof key, "r:%s:%s", up->name, up->routes[j].path);
            if (n > 0 && (size_t)n < sizeof key &&
                me_bucket(l, out, &first, "route", key, &up->routes[j].rl, now))
                return -1;
        }
    }
    return evbuffer_add(out, "]}", 2);
}
