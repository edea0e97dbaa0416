/* fuzz_h1.c -- libFuzzer target for the own upstream client (gateway/h1.c): every input is the
 * byte stream an upstream answers with, over a real 127.0.0.1 connection on the client's event
 * loop. The first byte picks the request (bit 0: HEAD, bit 1: a POST, not resendable) and
 * whether the body callback asks for a pause (bit 2); the rest is written by the fake upstream
 * the moment it accepts, then its side is shut. Connections the client pools carry over to the
 * next input, so reuse of a dead pooled connection and its retry are exercised too.
 *
 * Checked: done() comes exactly once and nothing after it; no callback runs inside
 * pg_h1_start; the status is 200-999; header names are non-empty; the body delivered is never
 * longer than the input; the head comes before any body; a transfer never hangs (the upstream's
 * side is always shut, so every answer ends). Built with -DPG_FUZZ_REPLAY it is a plain program
 * over the files named on its command line (replay.c). */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "gateway/h1.h"
#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_INPUT_MAX (256 * 1024) /* fits the loopback socket buffers: one blocking write */
#define MAX_ACCEPTED 8

struct run {
    const uint8_t *answer;
    size_t answer_len;
    bool pause_body;
    bool in_start, head_seen, done, paused;
    int done_calls;
    size_t body_bytes;
    int accepted[MAX_ACCEPTED];
    size_t naccepted;
};

/* One per process: the loop, the client and the fake upstream's listening socket. */
static struct {
    struct event_base *base;
    struct pg_h1 *h1;
    int lfd;
    struct sockaddr_in addr;
    struct event *accept_ev, *guard;
    struct run *cur;
    bool timed_out;
} F;

static int cb_status(void *arg, int status)
{
    struct run *r = arg;
    CHECK(!r->in_start && !r->done && !r->head_seen);
    CHECK(status >= 200 && status <= 999);
    return 0;
}

static int cb_header(void *arg, const char *name, size_t nl, const char *value, size_t vn)
{
    struct run *r = arg;
    CHECK(!r->in_start && !r->done && !r->head_seen);
    CHECK(nl > 0 && name && (value || vn == 0));
    return 0;
}

static int cb_head_end(void *arg)
{
    struct run *r = arg;
    CHECK(!r->in_start && !r->done && !r->head_seen);
    r->head_seen = true;
    return 0;
}

static enum pg_h1_more cb_body(void *arg, const char *p, size_t n)
{
    struct run *r = arg;
    CHECK(!r->in_start && !r->done && r->head_seen && p);
    r->body_bytes += n;
    CHECK(r->body_bytes <= r->answer_len);
    if (r->pause_body) {
        r->paused = true;
        return PG_H1_PAUSE;
    }
    return PG_H1_GO;
}

static void cb_done(void *arg, CURLcode res)
{
    struct run *r = arg;
    (void)res;
    CHECK(!r->in_start && !r->done);
    r->done = true;
    r->done_calls++;
}

static const struct pg_h1_ops ops = {
    .status = cb_status,
    .header = cb_header,
    .head_end = cb_head_end,
    .body = cb_body,
    .done = cb_done,
};

/* The fake upstream: answer at once with the input's bytes, then shut its side. */
static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    (void)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return;
    struct run *r = F.cur;
    if (!r || r->naccepted == MAX_ACCEPTED) {
        close(fd);
        return;
    }
    r->accepted[r->naccepted++] = fd;
    for (size_t off = 0; off < r->answer_len;) {
        ssize_t k = send(fd, r->answer + off, r->answer_len - off, MSG_NOSIGNAL);
        if (k <= 0)
            break; /* the client went away: what it read is what it judges */
        off += (size_t)k;
    }
    shutdown(fd, SHUT_WR);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    F.timed_out = true;
}

static void setup(void)
{
    F.base = event_base_new();
    F.h1 = pg_h1_new(F.base, NULL);
    F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(F.base && F.h1 && F.lfd >= 0);
    F.addr.sin_family = AF_INET;
    F.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof F.addr;
    CHECK(bind(F.lfd, (struct sockaddr *)&F.addr, sizeof F.addr) == 0);
    CHECK(listen(F.lfd, 64) == 0);
    CHECK(getsockname(F.lfd, (struct sockaddr *)&F.addr, &len) == 0);
    F.accept_ev = event_new(F.base, F.lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    F.guard = evtimer_new(F.base, on_guard, NULL);
    CHECK(F.accept_ev && F.guard && event_add(F.accept_ev, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char get[] = "GET /f HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    static const char head[] = "HEAD /f HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    static const char post[] = "POST /f HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\n";
    if (size < 1 || size > FUZZ_INPUT_MAX)
        return 0;
    if (!F.base)
        setup();
    uint8_t flags = data[0];
    struct run r = { .answer = data + 1, .answer_len = size - 1, .pause_body = flags & 4 };
    char errbuf[CURL_ERROR_SIZE] = "";
    struct pg_h1_xfer x = { .ops = &ops,
                            .arg = &r,
                            .errbuf = errbuf,
                            .addr = (const struct sockaddr *)&F.addr,
                            .addrlen = sizeof F.addr };
    if (flags & 2) {
        x.head = post;
        x.head_len = sizeof post - 1;
        x.body = "abc";
        x.body_len = 3;
    } else {
        x.head = (flags & 1) ? head : get;
        x.head_len = ((flags & 1) ? sizeof head : sizeof get) - 1;
        x.idempotent = true;
    }
    x.head_method = flags & 1;
    F.cur = &r;
    F.timed_out = false;
    struct timeval guard = { 5, 0 };
    CHECK(evtimer_add(F.guard, &guard) == 0);
    r.in_start = true;
    CHECK(pg_h1_start(F.h1, &x) == 0);
    r.in_start = false;
    while (!r.done && !F.timed_out) {
        event_base_loop(F.base, EVLOOP_ONCE);
        if (r.paused && !r.done) {
            r.paused = false;
            pg_h1_resume(&x);
        }
    }
    CHECK(!F.timed_out); /* the upstream's side is shut: every answer must end */
    CHECK(r.done_calls == 1);
    evtimer_del(F.guard);
    /* the fake upstream's sockets go; a connection the client pooled sees the close later */
    for (size_t i = 0; i < r.naccepted; i++)
        close(r.accepted[i]);
    F.cur = NULL;
    return 0;
}
