/* limit.c -- admission against token buckets and cool-downs; per-upstream FIFO queues. */
#include "limit.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "envelope.h"
#include "metrics.h"
#include "route.h"
#include "util.h"

#define PG_KEY_MAX 200

/* One FIFO of requests waiting for tokens of one bucket key (by name: survives reloads). */
struct pg_limit_queue {
    struct pg_limit_queue *next;
    struct pg_limit *l;
    char name[PG_KEY_MAX]; /* the bucket key its requests wait for */
    struct pg_limit_wait *head, *tail;
    size_t n;
    struct event timer;
};

struct pg_limit {
    struct event_base *base;
    struct pg_bucket_store *store;
    struct pg_limit_queue *queues;
    pg_clock_fn *now_ms; /* every time below is on this clock */
    void *now_arg;
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

struct pg_limit *pg_limit_new(struct event_base *base, struct pg_bucket_store *store)
{
    struct pg_limit *l = calloc(1, sizeof *l);
    if (!l) {
        pg_bucket_store_free(store);
        return NULL;
    }
    l->base = base;
    l->store = store;
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
        event_del(&q->timer);
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

enum attempt { TAKEN, WAIT, FAILED };

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

/* Try once: cool-down, then one token from every bucket of w. On WAIT, *wait_ms, whether r may
 * queue and for how long, and *block (the key it waits for) are set. */
static enum attempt attempt(struct pg_limit *l, struct pg_req *r, const struct want *w,
                            uint64_t now, uint64_t *wait_ms, bool *queue, uint64_t *max_wait,
                            const char **block)
{
    const struct pg_upstream *up = &r->conf->upstreams[r->upstream];
    uint64_t cd = l->store->ops->cooldown_get(l->store, w->cd_key, now);
    *block = w->cd_key;
    if (cd) {
        *wait_ms = cd;
        cooldown_policy(up, queue, max_wait);
        return WAIT;
    }
    if (w->n == 0)
        return TAKEN;
    struct pg_bucket_result res;
    memset(&res, 0, sizeof res);
    int rc = l->store->ops->take_all(l->store, w->kp, w->rates, w->n, now, &res);
    if (rc < 0 || res.status < 0)
        return FAILED;
    set_headers(r, w, &res);
    if (res.taken)
        return TAKEN;
    *wait_ms = res.wait_ms;
    *queue = true;
    *max_wait = UINT64_MAX;
    bool found = false;
    for (size_t i = 0; i < res.n; i++) {
        if (res.b[i].remaining > 0)
            continue; /* this bucket had a token: its mode does not matter */
        if (!found)
            *block = w->kp[i];
        found = true;
        held_by(w->rates[i], queue, max_wait);
    }
    return WAIT;
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
static int arm(struct pg_limit_queue *q, uint64_t now);
static void fail_queue(struct pg_limit_queue *q);

static struct pg_req *req_of(struct pg_limit_wait *wt)
{
    return PG_CONTAINER_OF(wt, struct pg_req, lwait);
}

static void unlink_req(struct pg_limit_queue *q, struct pg_req *r)
{
    struct pg_limit_wait *wt = &r->lwait;
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
    r->on_abort = NULL;
    q->n--;
}

/* The caller went away while queued: it leaves at once and took nothing. */
static void on_queued_abort(struct pg_req *r)
{
    struct pg_limit_queue *q = r->lwait.q;
    if (q)
        unlink_req(q, r);
}

/* Serve q at now: what its timer does when it fires. */
static void run_queue(struct pg_limit_queue *q, uint64_t now)
{
    struct pg_limit *l = q->l;
    /* first come, first served: the head is tried until it waits; the ones past their
     * max_wait leave with a 429 wherever they are */
    while (q->head) {
        struct pg_req *r = req_of(q->head);
        struct want w;
        uint64_t wait = 0, max_wait;
        bool qok;
        const char *block;
        collect(r, &w);
        enum attempt a = attempt(l, r, &w, now, &wait, &qok, &max_wait, &block);
        if (a == WAIT && now < r->lwait.deadline_ms)
            break;
        pg_limit_go_fn *go = r->lwait.go;
        unlink_req(q, r);
        if (a == TAKEN)
            go(r);
        else if (a == WAIT)
            reject(r, wait, "Rate limit exceeded: waited max_wait in the queue.",
                   scope_of(q->name, false));
        else
            pg_resp_fail(r, PG_E_INTERNAL, NULL);
    }
    for (struct pg_limit_wait *wt = q->head; wt;) {
        struct pg_limit_wait *next = wt->next;
        if (wt->deadline_ms <= now) {
            struct pg_req *r = req_of(wt);
            unlink_req(q, r);
            reject(r, 1000, "Rate limit exceeded: waited max_wait in the queue.",
                   scope_of(q->name, false));
        }
        wt = next;
    }
    if (q->head && arm(q, now))
        fail_queue(q);
}

static void on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pg_limit_queue *q = arg;
    (void)fd;
    (void)what;
    run_queue(q, now_of(q->l));
}

void pg_limit_tick(struct pg_limit *l)
{
    uint64_t now = now_of(l);
    /* queues are freed only with the limiter; one a go() callback adds goes to the front */
    for (struct pg_limit_queue *q = l->queues; q; q = q->next)
        if (q->head)
            run_queue(q, now);
}

/* Wake at the head's next token or the earliest deadline, whichever comes first. 0 ok, -1 the
 * timer could not be armed (the caller fails the waiters: without it they would wait forever). */
static int arm(struct pg_limit_queue *q, uint64_t now)
{
    uint64_t at = UINT64_MAX;
    for (const struct pg_limit_wait *wt = q->head; wt; wt = wt->next)
        if (wt->deadline_ms < at)
            at = wt->deadline_ms;
    uint64_t wait = q->head ? peek_wait(q->l, req_of(q->head), now) : 0;
    if (now + wait < at)
        at = now + wait;
    if (pg_event_add_ms(&q->timer, at > now ? at - now : 0) == 0)
        return 0;
    pg_log(PG_LOG_ERR, "rate-limit queue %s: its timer could not be armed", q->name);
    return -1;
}

/* Every waiter of q leaves with a 500: its timer is not armed, so nothing would wake them. */
static void fail_queue(struct pg_limit_queue *q)
{
    while (q->head) {
        struct pg_req *r = req_of(q->head);
        unlink_req(q, r);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
    }
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
    if (event_assign(&q->timer, l->base, -1, 0, on_queue_timer, q)) {
        free(q);
        return NULL;
    }
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

void pg_limit_admit(struct pg_limit *l, struct pg_req *r, pg_limit_go_fn *go)
{
    uint64_t now = now_of(l), wait = 0, max_wait;
    bool queue;
    struct want w;
    const char *block = NULL;
    r->rl_hdrs_len = 0;
    collect(r, &w);
    struct pg_limit_queue *q = busy_queue(l, &w);
    enum attempt a;
    if (q) {
        /* arrival order: nobody overtakes those already waiting for the same bucket */
        a = WAIT;
        queue_policy(l, r, &w, q, now, &queue, &max_wait);
    } else {
        a = attempt(l, r, &w, now, &wait, &queue, &max_wait, &block);
    }
    if (a == TAKEN) {
        go(r);
        return;
    }
    if (a == FAILED) {
        /* the store failed: rate_limit_store.on_error decides */
        if (r->conf->store == PG_STORE_LOCAL || r->conf->redis_on_error_allow)
            go(r);
        else
            pg_resp_fail(r, PG_E_INTERNAL, "The rate-limit store is unavailable.");
        return;
    }
    if (!queue || max_wait == 0 || (!q && wait > max_wait)) {
        if (q) /* behind others: as long as the head still has to wait */
            wait = peek_wait(l, req_of(q->head), now);
        reject(r, wait, NULL, q ? scope_of(q->name, false) : scope_of(block, block == w.cd_key));
        return;
    }
    if (!q && !(q = queue_of(l, block, true))) {
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    struct pg_limit_wait *wt = &r->lwait;
    wt->deadline_ms = now + max_wait;
    wt->go = go;
    wt->q = q;
    wt->next = NULL;
    wt->prev = q->tail;
    if (q->tail)
        q->tail->next = wt;
    else
        q->head = wt;
    q->tail = wt;
    q->n++;
    r->on_abort = on_queued_abort;
    if (arm(q, now))
        fail_queue(q);
}

void pg_limit_cooldown(struct pg_limit *l, const struct pg_upstream *up, uint64_t ms)
{
    char key[PG_KEY_MAX];
    int k = snprintf(key, sizeof key, "u:%s", up->name);
    if (k < 0 || (size_t)k >= sizeof key)
        return;
    uint64_t now = now_of(l);
    if (l->store->ops->cooldown_set(l->store, key, now + ms))
        pg_log(PG_LOG_WARN, "upstream %s: cool-down not recorded", up->name);
    struct pg_limit_queue *q = queue_of(l, key, false);
    if (q && q->head && arm(q, now))
        fail_queue(q);
}

size_t pg_limit_queued(const struct pg_limit *l, const struct pg_upstream *up)
{
    char key[PG_KEY_MAX];
    snprintf(key, sizeof key, "u:%s", up->name);
    for (const struct pg_limit_queue *q = l->queues; q; q = q->next)
        if (strcmp(q->name, key) == 0)
            return q->n;
    return 0;
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
