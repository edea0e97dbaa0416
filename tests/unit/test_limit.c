/* test_limit.c -- admission (SPEC section 4) on a fake clock, no sockets: one token from every
 * bucket that applies or from none, FIFO queues, max_wait -> 429, cool-down after a panel's 429.
 * Requests are pg_reqs answering into an evbuffer; queues are served with pg_limit_tick, which
 * is what their timers do when they fire. Two workers share the limiter (as threads do, one at a
 * time here): a queue is FIFO across them, and a verdict reaches a request through its own
 * worker's inbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "gateway/bucket.h"
#include "gateway/hub.h"
#include "gateway/limit.h"
#include "gateway/metrics.h"

#define HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define T0 1000000u /* ms: the fake clock's start */

/* up: reject mode, burst 3; its route /x/ burst 1. q: queue mode, one token a second, 10 s.
 * slow: queue mode, one token a minute, max_wait 2 s. The consumer's own bucket (reject mode,
 * burst 4) applies only where a test sets r->consumer. */
static const char yaml[] = "consumers:\n"
                           "  - {name: alice, key: \"sha256:" HEX "\", allow: [\"*\"],\n"
                           "     rate_limit: {rate: 1/hour, burst: 4}}\n"
                           "upstreams:\n"
                           "  - name: up\n"
                           "    url: http://127.0.0.1:9\n"
                           "    rate_limit: {rate: 1/hour, burst: 3}\n"
                           "    routes: [{path: /x/, rate_limit: {rate: 1/hour, burst: 1}}]\n"
                           "  - name: q\n"
                           "    url: http://127.0.0.1:9\n"
                           "    rate_limit: {rate: 1/s, burst: 1, mode: queue, max_wait: 10s}\n"
                           "  - name: slow\n"
                           "    url: http://127.0.0.1:9\n"
                           "    rate_limit: {rate: 1/min, burst: 1, mode: queue, max_wait: 2s}\n";

enum { UP, Q, SLOW };
#define NREQ 8

struct fix {
    uint64_t now; /* the limiter's clock */
    struct event_base *base;
    struct pg_hub *hub;
    struct pg_worker w[2];
    struct pg_conf *conf;
    struct pg_limit *l;
    struct pg_req r[NREQ];
    int went[NREQ]; /* the order go() ran in: request indexes */
    size_t nwent;
};

static uint64_t fake_now(void *arg)
{
    return ((const struct fix *)arg)->now;
}

static struct fix *fx; /* the go and done callbacks find the fixture here */

static void on_go(struct pg_req *r)
{
    fx->went[fx->nwent++] = (int)(r - fx->r);
}

static void on_done(struct pg_req *r, bool ok)
{
    (void)r;
    assert_true(ok);
}

static void on_kick(struct pg_req *r)
{
    (void)r;
}

static int setup(void **state)
{
    static struct fix f;
    char err[256];
    memset(&f, 0, sizeof f);
    f.now = T0;
    f.base = event_base_new();
    assert_non_null(f.base);
    f.hub = pg_hub_new();
    assert_non_null(f.hub);
    f.l = f.hub->limit;
    for (int i = 0; i < 2; i++) {
        struct pg_worker *w = &f.w[i];
        w->id = (unsigned)i;
        w->hub = f.hub;
        w->base = f.base;
        w->metrics = pg_metrics_new();
        assert_non_null(w->metrics);
        assert_int_equal(pg_inbox_init(&w->inbox, f.hub, f.base), 0);
        w->lport = pg_limit_port_new(f.l, f.base, &w->inbox);
        assert_non_null(w->lport);
    }
    f.conf = pg_conf_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err);
    if (!f.conf)
        fail_msg("config: %s", err);
    pg_limit_set_clock(f.l, fake_now, &f);
    for (size_t i = 0; i < NREQ; i++) {
        struct pg_req *r = &f.r[i];
        r->w = &f.w[0];
        r->conf = f.conf;
        r->out = evbuffer_new();
        assert_non_null(r->out);
        snprintf(r->rid, sizeof r->rid, "req-%zu", i);
        r->http_minor = 1;
        r->keep_alive = true;
        r->done = on_done;
        r->kick = on_kick;
    }
    fx = &f;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    for (int i = 0; i < 2; i++) {
        pg_limit_port_free(f->w[i].lport);
        pg_inbox_deinit(&f->w[i].inbox);
        pg_metrics_free(f->w[i].metrics);
    }
    pg_hub_free(f->hub);
    for (size_t i = 0; i < NREQ; i++)
        evbuffer_free(f->r[i].out);
    pg_conf_unref(f->conf);
    event_base_free(f->base);
    return 0;
}

/* Admit request i for upstream up and the path after /{upstream}. */
static void admit(struct fix *f, int i, int up, const char *rest)
{
    struct pg_req *r = &f->r[i];
    r->upstream = up;
    r->rest = rest;
    r->rest_len = strlen(rest);
    pg_limit_admit(r->w->lport, r, on_go);
}

/* What the queues' timers do when they fire, served as worker 0; then worker 1 runs what its
 * inbox got (pg_limit_tick drains worker 0's). */
static void tick(struct fix *f)
{
    pg_limit_tick(f->w[0].lport);
    pg_inbox_drain(&f->w[1].inbox);
}

/* Request i was answered with this status (0: not answered), and a 429 says Retry-After. */
static void assert_answer(const struct fix *f, int i, int status)
{
    const struct pg_req *r = &f->r[i];
    assert_int_equal(r->status, status);
    if (status != 429)
        return;
    struct evbuffer_ptr p = evbuffer_search(r->out, "\r\nRetry-After: ", 15, NULL);
    assert_true(p.pos >= 0);
    assert_true(r->ended);
}

static void assert_went(const struct fix *f, size_t n, const int *order)
{
    assert_int_equal(f->nwent, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(f->went[i], order[i]);
}

/* A request the route refuses takes nothing from the upstream or the consumer: the upstream's
 * burst of 3 still admits 2 more after the first, then the 4th is refused by the upstream. */
static void all_or_nothing(void **state)
{
    struct fix *f = *state;
    for (int i = 0; i < NREQ; i++)
        f->r[i].consumer = &f->conf->consumers[0];
    admit(f, 0, UP, "/x/1"); /* upstream 3 -> 2, route 1 -> 0, consumer 4 -> 3 */
    admit(f, 1, UP, "/x/2"); /* route empty: 429, nothing taken */
    assert_answer(f, 1, 429);
    admit(f, 2, UP, "/y"); /* no route: upstream 2 -> 1, consumer 3 -> 2 */
    admit(f, 3, UP, "/y"); /* upstream 1 -> 0, consumer 2 -> 1 */
    admit(f, 4, UP, "/y"); /* upstream empty: 429 */
    assert_answer(f, 4, 429);
    assert_went(f, 3, (const int[]){ 0, 2, 3 });
    /* the consumer lost one token per admitted request and none for the refused ones: one left,
     * so the upstream "q" (its own bucket full) admits one more of alice's and refuses the next */
    admit(f, 5, Q, "/");
    assert_went(f, 4, (const int[]){ 0, 2, 3, 5 });
    f->now += 1000; /* q's bucket refills, the consumer's (1/hour) does not */
    admit(f, 6, Q, "/");
    assert_answer(f, 6, 429); /* the consumer's bucket is in reject mode */
    assert_int_equal(f->nwent, 4);
    /* the RateLimit headers name the tightest bucket */
    assert_non_null(strstr(f->r[0].rl_hdrs, "RateLimit: \"route\";r=0;"));
}

/* Queued requests go in arrival order, one per token; a newcomer does not overtake them even
 * when a token is free before the queue's timer fires; one that leaves is skipped. */
static void fifo(void **state)
{
    struct fix *f = *state;
    for (int i = 0; i < 5; i++)
        admit(f, i, Q, "/");
    assert_went(f, 1, (const int[]){ 0 });
    assert_int_equal(pg_limit_queued(f->l, &f->conf->upstreams[Q]), 4);
    f->now += 999;
    tick(f);
    assert_int_equal(f->nwent, 1);
    f->now += 1;
    tick(f);
    assert_went(f, 2, (const int[]){ 0, 1 });
    /* 2 leaves (its caller went away): it never goes, and 3 is next */
    f->r[2].on_abort(&f->r[2]);
    assert_int_equal(pg_limit_queued(f->l, &f->conf->upstreams[Q]), 2);
    f->now += 1000;
    admit(f, 5, Q, "/"); /* a token is free, but 3 and 4 were first */
    assert_went(f, 2, (const int[]){ 0, 1 });
    tick(f);
    assert_went(f, 3, (const int[]){ 0, 1, 3 });
    for (int s = 0; s < 3; s++) {
        f->now += 1000;
        tick(f);
    }
    assert_went(f, 5, (const int[]){ 0, 1, 3, 4, 5 });
    assert_int_equal(pg_limit_queued(f->l, &f->conf->upstreams[Q]), 0);
    for (int i = 0; i < 6; i++)
        assert_answer(f, i, 0);
}

/* Past max_wait a queued request leaves with a 429, wherever it is in the queue; one whose wait
 * is longer than max_wait already on arrival is refused at once. */
static void max_wait_expiry(void **state)
{
    struct fix *f = *state;
    const struct pg_upstream *slow = &f->conf->upstreams[SLOW];
    admit(f, 0, SLOW, "/"); /* takes the only token; the next one comes in 60 s */
    admit(f, 1, SLOW, "/"); /* 60 s > max_wait: refused at once, not queued */
    assert_answer(f, 1, 429);
    f->now += 58500;        /* 1.5 s before the next token */
    admit(f, 2, SLOW, "/"); /* queued until T0 + 60.5 s at most */
    f->now += 500;
    admit(f, 3, SLOW, "/"); /* queued until T0 + 61 s at most */
    assert_int_equal(pg_limit_queued(f->l, slow), 2);
    f->now = T0 + 60000 - 1;
    tick(f);
    assert_int_equal(pg_limit_queued(f->l, slow), 2);
    f->now = T0 + 60000; /* the token: 2 goes, 3 waits for the next one (60 s on) */
    tick(f);
    assert_went(f, 2, (const int[]){ 0, 2 });
    assert_answer(f, 3, 0);
    f->now = T0 + 61000 - 1;
    tick(f);
    assert_answer(f, 3, 0);
    f->now = T0 + 61000;
    tick(f);
    assert_answer(f, 3, 429);
    assert_int_equal(pg_limit_queued(f->l, slow), 0);
    assert_int_equal(f->nwent, 2);
}

/* After a panel's 429 nothing reaches the upstream until the cool-down has passed: answered 429
 * locally (reject mode) without taking a token, or held in the queue (queue mode). */
static void cooldown(void **state)
{
    struct fix *f = *state;
    const struct pg_upstream *up = &f->conf->upstreams[UP], *q = &f->conf->upstreams[Q];
    pg_limit_cooldown(f->w[0].lport, f->conf, up, 3000);
    assert_int_equal(pg_limit_cooldown_left(f->l, up), 3000);
    admit(f, 0, UP, "/y");
    assert_answer(f, 0, 429);
    assert_non_null(strstr((const char *)evbuffer_pullup(f->r[0].out, -1), "Retry-After: 3\r\n"));
    f->now += 2999;
    admit(f, 1, UP, "/y");
    assert_answer(f, 1, 429);
    f->now += 1;
    assert_int_equal(pg_limit_cooldown_left(f->l, up), 0);
    /* the refused requests took no token: the burst of 3 is whole */
    for (int i = 2; i < 5; i++)
        admit(f, i, UP, "/y");
    assert_went(f, 3, (const int[]){ 2, 3, 4 });

    /* queue mode: the request waits out the cool-down, then goes */
    pg_limit_cooldown(f->w[1].lport, f->conf, q, 1500); /* seen by the other worker */
    admit(f, 5, Q, "/");
    assert_int_equal(pg_limit_queued(f->l, q), 1);
    f->now += 1499;
    tick(f);
    assert_int_equal(f->nwent, 3);
    f->now += 1;
    tick(f);
    assert_went(f, 4, (const int[]){ 2, 3, 4, 5 });
    assert_answer(f, 5, 0);
}

/* Behind a busy queue only the buckets that hold a request back decide whether it may wait: a
 * consumer bucket in reject mode that still has tokens does not turn queueing into a 429
 * (found in review: it did, but only while someone else was already queued). */
static void queue_behind_others(void **state)
{
    struct fix *f = *state;
    admit(f, 0, Q, "/a");                      /* q's only token */
    admit(f, 1, Q, "/a");                      /* queued */
    f->r[2].consumer = &f->conf->consumers[0]; /* reject mode, 4 tokens left */
    admit(f, 2, Q, "/a");
    assert_int_equal(f->nwent, 1);
    assert_answer(f, 1, 0);
    assert_answer(f, 2, 0); /* waiting, not refused */
    f->now += 1000;
    tick(f);
    f->now += 1000;
    tick(f);
    assert_int_equal(f->nwent, 3);
    assert_int_equal(f->went[1], 1);
    assert_int_equal(f->went[2], 2);
}

/* Two workers' requests in one queue: they go in arrival order whichever worker they came
 * through and whichever worker's timer serves the queue; each verdict runs on its own worker
 * (it waits in that worker's inbox until that worker looks); one that leaves while its verdict
 * is on the way is not run. */
static void queue_across_workers(void **state)
{
    struct fix *f = *state;
    for (int i = 0; i < 6; i++) {
        f->r[i].w = &f->w[i % 2];
        admit(f, i, Q, "/"); /* 0 takes the token; 1..5 queue, alternating workers */
    }
    assert_went(f, 1, (const int[]){ 0 });
    assert_int_equal(pg_limit_queued(f->l, &f->conf->upstreams[Q]), 5);
    f->now += 1000;
    pg_limit_tick(f->w[0].lport); /* worker 0 serves; 1 is worker 1's: not run yet */
    assert_int_equal(f->nwent, 1);
    assert_int_equal(pg_limit_queued(f->l, &f->conf->upstreams[Q]), 4);
    pg_inbox_drain(&f->w[1].inbox);
    assert_went(f, 2, (const int[]){ 0, 1 });
    f->now += 1000;
    pg_limit_tick(f->w[1].lport); /* worker 1 serves 2, worker 0's */
    assert_int_equal(f->nwent, 2);
    f->r[2].on_abort(&f->r[2]); /* its caller left with the verdict in the inbox */
    pg_inbox_drain(&f->w[0].inbox);
    assert_int_equal(f->nwent, 2); /* its token is spent, as for any caller who leaves */
    for (int s = 0; s < 3; s++) {
        f->now += 1000;
        tick(f);
    }
    assert_went(f, 5, (const int[]){ 0, 1, 3, 4, 5 });
    assert_int_equal(pg_limit_queued(f->l, &f->conf->upstreams[Q]), 0);
    for (int i = 0; i < 6; i++)
        assert_answer(f, i, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(max_wait_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(cooldown, setup, teardown),
        cmocka_unit_test_setup_teardown(queue_behind_others, setup, teardown),
        cmocka_unit_test_setup_teardown(queue_across_workers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
