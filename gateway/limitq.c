/* limitq.c -- the waiting side of the limiter: FIFO queues per bucket key shared by every
 * worker (under the hub's lock), each worker's port with its own timers, verdicts delivered to
 * the waiter's own loop, and asking a redis store for a queue head's tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "envelope.h"
#include "limitint.h"

struct pg_req *pg_lim_req_of(struct pg_limit_wait *wt)
{
    return PG_CONTAINER_OF(wt, struct pg_req, lwait);
}

/* The waiter whose queue link is n; NULL for NULL (past the last). */
static struct pg_limit_wait *wait_of(struct pg_dlink *n)
{
    return n ? PG_CONTAINER_OF(n, struct pg_limit_wait, link) : NULL;
}

struct pg_limit_wait *pg_lim_head(const struct pg_limit_queue *q)
{
    return wait_of(q->waits.head);
}

/* hub.mu held. */
static void unlink_wait(struct pg_limit_queue *q, struct pg_limit_wait *wt)
{
    pg_dlist_remove(&q->waits, &wt->link);
    wt->q = NULL;
    q->n--;
}

/* The caller went away while queued or while its verdict was on the way: it leaves at once. A
 * token already taken for it is spent, as for any request whose caller leaves. */
void pg_lim_on_queued_abort(struct pg_req *r)
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
    struct pg_req *r = pg_lim_req_of(wt);
    r->on_abort = NULL;
    switch (wt->verdict) {
    case PG_LV_GO:
        wt->go(r);
        break;
    case PG_LV_LATE:
        pg_lim_reject(r, wt->wait_ms, "Rate limit exceeded: waited max_wait in the queue.",
                      wt->scope);
        break;
    case PG_LV_FAIL:
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        break;
    case PG_LV_UNAVAILABLE:
        pg_lim_unavailable(r);
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
    wt->scope = pg_lim_scope_of(q->name, false);
    wt->post.run = on_verdict;
    pg_inbox_put_locked(wt->port->in, &wt->post);
}

static int ask_head(struct pg_limit_port *p, struct pg_limit_queue *q, struct pg_limit_wait *wt);

/* With a redis store, r's tokens are redis's to give: is it up from p's worker? Down, the
 * failure counts, and on_error decides: allow goes on with the local store (false), deny
 * leaves *deny set. */
bool pg_lim_remote_for(struct pg_limit_port *p, const struct pg_req *r, bool *deny)
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
    while (q->waits.head && !q->asking) {
        struct pg_limit_wait *wt = pg_lim_head(q);
        struct pg_req *r = pg_lim_req_of(wt);
        struct want w;
        uint64_t wait = 0, max_wait;
        bool qok, deny;
        const char *block;
        pg_lim_collect(r, &w);
        bool remote = pg_lim_remote_for(p, r, &deny);
        if (deny) {
            send_off(q, wt, PG_LV_UNAVAILABLE, 1000);
            continue;
        }
        enum attempt a = pg_lim_attempt(l, r, &w, now, &wait, &qok, &max_wait, &block, remote);
        if (a == ASK) {
            /* redis is asked once the mirror says a token is due, one head at a time */
            wait = pg_lim_peek_wait(l, r, now);
            if (wait > 0 || now >= wt->deadline_ms) {
                a = WAIT;
            } else if (ask_head(p, q, wt) == 0) {
                break;
            } else if (!r->conf->redis_on_error_allow) {
                send_off(q, wt, PG_LV_UNAVAILABLE, 1000);
                continue;
            } else {
                a = pg_lim_attempt(l, r, &w, now, &wait, &qok, &max_wait, &block, false);
            }
        }
        if (a == WAIT && now < wt->deadline_ms)
            break;
        send_off(q, wt, a == TAKEN ? PG_LV_GO : a == WAIT ? PG_LV_LATE : PG_LV_FAIL, wait);
    }
    for (struct pg_limit_wait *wt = pg_lim_head(q); wt;) {
        struct pg_limit_wait *next = wait_of(wt->link.next);
        if (wt->deadline_ms <= now)
            send_off(q, wt, PG_LV_LATE, 1000);
        wt = next;
    }
}

/* Serve q as port's worker and arm port's timer for what is left (hub.mu held). */
static void serve(struct pg_limit_port *p, struct pg_limit_queue *q, uint64_t now)
{
    run_queue(p, q, now);
    if (q->waits.head && pg_lim_arm(p, q, now))
        pg_lim_fail_queue(q);
}

/* Redis answered the ask for q's head, on the asker's loop. */
static void on_ask_reply(void *arg, const redisReply *rep)
{
    struct pg_limit_queue *q = arg;
    struct pg_limit_port *p = q->asker;
    struct pg_limit *l = q->l;
    pg_hub_lock(l->hub);
    uint64_t now = pg_lim_now(l);
    struct pg_limit_wait *wt = q->asked;
    q->asking = false;
    q->asked = NULL;
    if (wt && wt == pg_lim_head(q)) {
        struct pg_req *r = pg_lim_req_of(wt);
        struct want w;
        struct pg_rtake t;
        uint64_t wait = 0, max_wait;
        bool qok;
        const char *block;
        pg_lim_collect(r, &w);
        if (rep && pg_rstore_parse_take(rep, w.n, 1, now, &t) == 0) { /* it asked for one */
            if (pg_lim_from_redis(l, r, &w, &t, now, &wait, &qok, &max_wait, &block) == TAKEN)
                send_off(q, wt, PG_LV_GO, 0);
        } else {
            if (rep)
                pg_redis_failed(p->rd);
            if (!r->conf->redis_on_error_allow)
                send_off(q, wt, PG_LV_UNAVAILABLE, 1000);
            else if (pg_lim_attempt(l, r, &w, now, &wait, &qok, &max_wait, &block, false) == TAKEN)
                send_off(q, wt, PG_LV_GO, 0); /* the local store meanwhile */
        }
    }
    if (q->waits.head)
        serve(p, q, now);
    pg_hub_unlock(l->hub);
}

/* Ask redis for wt's tokens on p's connection (hub.mu held). 0 sent, -1 not. */
static int ask_head(struct pg_limit_port *p, struct pg_limit_queue *q, struct pg_limit_wait *wt)
{
    struct pg_req *r = pg_lim_req_of(wt);
    struct want w;
    pg_lim_collect(r, &w);
    if (!pg_rstore_take(p->rd, &q->l->scripts, r->conf->redis_prefix, w.cd_key, w.kp, w.rates, w.n,
                        1, on_ask_reply, q)) {
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
    uint64_t now = pg_lim_now(l);
    /* another worker took the queue over and armed its own timer for later */
    if (t->q->waits.head && (t->q->armer == t->port || now >= t->q->due_ms))
        serve(t->port, t->q, now);
    pg_hub_unlock(l->hub);
}

void pg_limit_tick(struct pg_limit_port *p)
{
    struct pg_limit *l = p->l;
    pg_hub_lock(l->hub);
    uint64_t now = pg_lim_now(l);
    for (struct pg_limit_queue *q = l->queues; q; q = q->next)
        if (q->waits.head)
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
int pg_lim_arm(struct pg_limit_port *p, struct pg_limit_queue *q, uint64_t now)
{
    uint64_t at = UINT64_MAX;
    for (const struct pg_limit_wait *wt = pg_lim_head(q); wt; wt = wait_of(wt->link.next))
        if (wt->deadline_ms < at)
            at = wt->deadline_ms;
    struct pg_limit_wait *head = pg_lim_head(q);
    uint64_t wait = head ? pg_lim_peek_wait(q->l, pg_lim_req_of(head), now) : 0;
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
void pg_lim_fail_queue(struct pg_limit_queue *q)
{
    while (q->waits.head)
        send_off(q, pg_lim_head(q), PG_LV_FAIL, 0);
}

/* Queues are per bucket key: a request waits only behind those that want one of its buckets. */
struct pg_limit_queue *pg_lim_queue_of(struct pg_limit *l, const char *name, bool create)
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

/* Behind the busy queue q: may r wait, and how long at most? As in pg_lim_attempt, only the buckets
 * that hold r back decide -- q's own (the upstream's limit for a cool-down queue) and any that
 * is empty now; a bucket with tokens left has no say, whatever its mode. */
void pg_lim_queue_policy(struct pg_limit *l, const struct pg_req *r, const struct want *w,
                         const struct pg_limit_queue *q, uint64_t now, bool *queue,
                         uint64_t *max_wait)
{
    *queue = true;
    *max_wait = UINT64_MAX;
    if (strcmp(q->name, w->cd_key) == 0)
        pg_lim_cooldown_policy(&r->conf->upstreams[r->upstream], queue, max_wait);
    for (size_t i = 0; i < w->n; i++) {
        bool holds = strcmp(q->name, w->kp[i]) == 0;
        if (!holds) {
            struct pg_bucket_result res;
            memset(&res, 0, sizeof res);
            holds = l->store->ops->peek(l->store, w->kp[i], w->rates[i], now, &res) >= 0 &&
                    res.n == 1 && res.b[0].remaining == 0;
        }
        if (holds)
            pg_lim_held_by(w->rates[i], queue, max_wait);
    }
}

/* A queue that already holds requests wanting one of w's buckets (or its cool-down). */
struct pg_limit_queue *pg_lim_busy_queue(struct pg_limit *l, const struct want *w)
{
    struct pg_limit_queue *q = pg_lim_queue_of(l, w->cd_key, false);
    if (q && q->waits.head)
        return q;
    for (size_t i = 0; i < w->n; i++)
        if ((q = pg_lim_queue_of(l, w->kp[i], false)) && q->waits.head)
            return q;
    return NULL;
}

void pg_limit_port_set_redis(struct pg_limit_port *p, struct pg_redis *rd)
{
    p->rd = rd;
}

size_t pg_limit_queued(struct pg_limit *l, const struct pg_upstream *up)
{
    char key[PG_KEY_MAX];
    size_t n = 0;
    if (!pg_lim_key(key, "u:", up->name, NULL))
        return 0;
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
