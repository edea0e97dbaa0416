/* hub.c -- the process-wide lock, the shared limiter, and worker inboxes over eventfd. */
#include "hub.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bucket.h"
#include "limit.h"
#include "util.h"

struct pg_hub *pg_hub_new(void)
{
    struct pg_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (pthread_mutex_init(&h->mu, NULL)) {
        free(h);
        return NULL;
    }
    h->started_s = (uint64_t)time(NULL);
    /* bounded by the configured names (upstreams + routes + consumers), far below this */
    h->limit = pg_limit_new(h, pg_bucket_local_new(100000));
    if (!h->limit) {
        pg_hub_free(h);
        return NULL;
    }
    return h;
}

void pg_hub_free(struct pg_hub *h)
{
    if (!h)
        return;
    pg_limit_free(h->limit);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* The first post waiting in in, NULL if none (hub.mu held). */
static struct pg_post *first_post(const struct pg_inbox *in)
{
    struct pg_dlink *n = in->posts.head;
    return n ? PG_CONTAINER_OF(n, struct pg_post, link) : NULL;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    (void)what;
    /* the count only says "look"; a failed read (EAGAIN) means another wake-up took it */
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        pg_log(PG_LOG_ERR, "inbox: read: %s", strerror(errno));
    pg_inbox_drain(arg);
}

int pg_inbox_init(struct pg_inbox *in, struct pg_hub *h, struct event_base *base)
{
    in->hub = h;
    in->posts.head = in->posts.tail = NULL;
    in->ev_set = false;
    in->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->efd < 0)
        return -1;
    if (event_assign(&in->ev, base, in->efd, EV_READ | EV_PERSIST, on_wake, in) ||
        event_add(&in->ev, NULL)) {
        close(in->efd);
        in->efd = -1;
        return -1;
    }
    in->ev_set = true;
    return 0;
}

void pg_inbox_deinit(struct pg_inbox *in)
{
    if (!in->hub)
        return;
    if (in->ev_set)
        event_del(&in->ev);
    if (in->efd >= 0)
        close(in->efd);
    pg_hub_lock(in->hub);
    while (in->posts.head)
        pg_inbox_take_locked(first_post(in));
    pg_hub_unlock(in->hub);
    in->hub = NULL;
    in->ev_set = false;
    in->efd = -1;
}

void pg_inbox_put_locked(struct pg_inbox *in, struct pg_post *p)
{
    bool was_empty = in->posts.head == NULL;
    p->in = in;
    pg_dlist_push_tail(&in->posts, &p->link);
    /* one write per batch: the loop drains everything queued once it wakes */
    if (was_empty && in->efd >= 0) {
        uint64_t one = 1;
        if (write(in->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            pg_log(PG_LOG_ERR, "inbox: write: %s", strerror(errno));
    }
}

bool pg_inbox_take_locked(struct pg_post *p)
{
    struct pg_inbox *in = p->in;
    if (!in)
        return false;
    pg_dlist_remove(&in->posts, &p->link);
    p->in = NULL;
    return true;
}

void pg_inbox_drain(struct pg_inbox *in)
{
    /* one at a time: a post may cancel another of this worker's posts while it runs */
    for (;;) {
        pg_hub_lock(in->hub);
        struct pg_post *p = first_post(in);
        if (p)
            pg_inbox_take_locked(p);
        pg_hub_unlock(in->hub);
        if (!p)
            return;
        p->run(p);
    }
}
