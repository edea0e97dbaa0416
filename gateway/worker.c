/* worker.c -- assembling a worker (its loop's upstream clients, forwarder pool, limiter,
 * metrics, request ids, access log) and the per-answer record every request ends with. */
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "alog.h"
#include "auth.h"
#include "curlev.h"
#include "fwd.h"
#include "h1.h"
#include "limit.h"
#include "metrics.h"
#include "redis.h"
#include "req.h"
#include "util.h"

/* ---- request ids: 26 Crockford base32 characters, 48 bits of ms time then 80 counting bits ----
 */

void pg_worker_rid(struct pg_worker *w, char *out)
{
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (int i = 9; i >= 0; i--) /* increment the random tail: unique within the worker */
        if (++w->rid_rand[i])
            break;
    /* the 128-bit value hi:lo, emitted 5 bits at a time from the low end */
    uint64_t hi = ms << 16 | (uint64_t)w->rid_rand[0] << 8 | w->rid_rand[1];
    uint64_t lo = 0;
    for (int i = 2; i < 10; i++)
        lo = lo << 8 | w->rid_rand[i];
    for (int i = 25; i >= 0; i--) {
        out[i] = b32[lo & 31];
        lo = lo >> 5 | hi << 59;
        hi >>= 5;
    }
    out[26] = '\0';
}

/* ---- per-answer accounting: metrics and the access log ---- */

/* The buffered lines to the log (alog.c writes whole lines, at most PIPE_BUF bytes a write). A
 * failed write keeps them for the next try; it is said once, and once more when writes work
 * again. */
static void log_flush(struct pg_worker *w)
{
    if (!w->log || evbuffer_get_length(w->log) == 0)
        return;
    bool ok = pg_alog_write(w->alog, w->log, w->log_gen) == 0;
    if (ok != w->log_failing)
        return;
    w->log_failing = !ok;
    if (!ok)
        pg_log(PG_LOG_ERR,
               "access log: a write failed (%s); lines wait (up to 1 MiB a worker) and are tried "
               "again every second",
               strerror(errno));
    else
        pg_log(PG_LOG_INFO, "access log: writing again");
}

/* The request's access log line into the worker's buffer, whole or not at all. */
static void log_line(struct pg_worker *w, const struct pg_req *r, int status, uint64_t ms,
                     const struct timespec *ts)
{
    /* a log that cannot keep up loses lines rather than memory */
    if (!w->log || evbuffer_get_length(w->log) > 1024 * 1024)
        return;
    struct pg_alog_rec rec = {
        .time_ms = (uint64_t)ts->tv_sec * 1000u + (uint64_t)ts->tv_nsec / 1000000u,
        .peer = r->peer,
        .request_id = r->rid,
        .consumer = r->consumer ? r->consumer->name : NULL,
        .method = r->method,
        .target = r->url_len ? r->hbuf + r->url : NULL, /* alog cuts the query off */
        .target_len = r->url_len,
        .status = status,
        .upstream = r->conf && r->upstream >= 0 ? r->conf->upstreams[r->upstream].name : NULL,
        .upstream_status = r->upstream_status,
        .bytes = r->resp_bytes,
        .duration_ms = ms,
        .err = r->err,
        .limited = r->limited,
        .login = r->login,
        .replayed = r->replayed,
    };
    char line[PG_ALOG_LINE_MAX];
    size_t n;
    unsigned st = pg_alog_state(w->alog);
    if (st >> 1 != w->log_gen) { /* a reload changed the log: the buffer goes where it belongs */
        log_flush(w);
        evbuffer_drain(w->log, evbuffer_get_length(w->log)); /* unwritable: never mixed */
        w->log_gen = st >> 1;
    }
    /* every field is bounded, so a line always fits; one that did not would be dropped whole,
     * as one the buffer has no memory for */
    if (pg_alog_line((enum pg_alog_format)(st & 1), &rec, line, sizeof line, &n) ||
        evbuffer_add(w->log, line, n))
        return;
    if (evbuffer_get_length(w->log) >= 16384)
        log_flush(w);
}

void pg_worker_record(struct pg_worker *w, const struct pg_req *r, int status)
{
    /* one wall-clock read for both: the metrics' minute, the log line's ms (coarse will do when
     * no line is written) */
    struct timespec now;
    clock_gettime(w->log ? CLOCK_REALTIME : CLOCK_REALTIME_COARSE, &now);
    uint64_t ms = r->start_ms ? pg_now_ms() - r->start_ms : 0;
    struct pg_metrics_rec rec = {
        .upstream = r->conf && r->upstream >= 0 ? r->conf->upstreams[r->upstream].name : NULL,
        .consumer = r->consumer ? r->consumer->name : NULL,
        .method_bit = r->method_bit,
        .status = status,
        .err = r->err,
        /* a local limit or cool-down, or the panel's own 429 passed on as rate_limited */
        .limited = r->limited >= 0 || r->err == PG_E_RATE_LIMITED,
        .scope = r->limited >= 0 ? (unsigned)r->limited + 1 : 0,
        .ms = ms,
        .now_s = (uint64_t)now.tv_sec,
    };
    pg_metrics_request(w->metrics, &rec);
    log_line(w, r, status, ms, &now);
}

static void on_log_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    log_flush(arg);
}

/* The worker's side of the access log (the hub's, opened by main): a line buffer and the
 * once-a-second flush. Nothing when the log is off. */
static int open_log(struct pg_worker *w)
{
    if (!pg_alog_on(w->hub->alog))
        return 0;
    w->alog = w->hub->alog;
    w->log = evbuffer_new();
    if (!w->log)
        return -1;
    struct event *t = event_new(w->base, -1, EV_PERSIST, on_log_timer, w);
    struct timeval one = { 1, 0 };
    if (!t || event_add(t, &one)) {
        if (t)
            event_free(t);
        return -1;
    }
    w->log_timer = t;
    return 0;
}

uint64_t pg_worker_nconns_all(const struct pg_worker *w)
{
    uint64_t n = 0;
    for (size_t i = 0; i < w->hub->nworkers; i++)
        n += pg_worker_nconns(w->hub->workers[i]);
    return n;
}

/* The worker's resolver: the configured servers (and /etc/hosts), or /etc/resolv.conf's. It
 * does not keep the loop running on its own. NULL out of memory. */
static struct evdns_base *dns_new(struct event_base *base, const struct pg_conf *conf)
{
    int flags = EVDNS_BASE_DISABLE_WHEN_INACTIVE |
                (conf->nresolvers ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS);
    struct evdns_base *d = evdns_base_new(base, flags);
    if (!d || !conf->nresolvers)
        return d;
    for (size_t i = 0; i < conf->nresolvers; i++)
        if (evdns_base_nameserver_ip_add(d, conf->resolvers[i]))
            pg_log(PG_LOG_WARN, "resolver %s: not usable", conf->resolvers[i]);
    evdns_base_load_hosts(d, NULL);
    return d;
}

int pg_worker_init(struct pg_worker *w, struct pg_hub *hub, unsigned id, struct event_base *base,
                   struct pg_conf *conf, char *err, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->hub = hub;
    w->base = base;
    w->conf = conf;
    pg_conf_ref(conf);
    w->tls = conf->tls_cert != NULL;
    if (RAND_bytes(w->rid_rand, sizeof w->rid_rand) != 1)
        goto fail_msg;
    if (id >= PG_WORKERS_MAX || pg_inbox_init(&w->inbox, hub, base))
        goto fail_msg;
    w->curl = pg_curlev_new(base);
    w->dns = dns_new(base, conf);
    w->h1 = pg_h1_new(base, w->dns);
    w->fwds = pg_fwd_pool_new();
    w->limit = hub->limit;
    w->lport = pg_limit_port_new(hub->limit, base, &w->inbox);
    w->metrics = pg_metrics_new();
    if (!w->curl || !w->dns || !w->h1 || !w->fwds || !w->lport || !w->metrics)
        goto fail_msg;
    if (conf->store == PG_STORE_REDIS) {
        if (!(w->redis = pg_redis_new(base, w->dns, conf, hub, w->metrics)))
            goto fail_msg;
        pg_limit_port_set_redis(w->lport, w->redis);
    }
    if (open_log(w))
        goto fail_msg;
    hub->workers[id] = w;
    if (hub->nworkers <= id)
        hub->nworkers = id + 1;
    return 0;
fail_msg:
    snprintf(err, cap, "out of memory");
    pg_worker_deinit(w);
    return -1;
}

void pg_worker_deinit(struct pg_worker *w)
{
    if (w->log_timer)
        event_free(w->log_timer);
    if (w->log) {
        log_flush(w);
        evbuffer_free(w->log);
    }
    /* pending answers are dropped unrun: no request is left to take them */
    pg_redis_free(w->redis);
    pg_metrics_free(w->metrics);
    pg_limit_port_free(w->lport);
    /* logins running here leave the multi before it goes */
    if (w->curl)
        pg_auth_worker_stop(w);
    pg_conf_unref(w->conf);
    pg_fwd_pool_free(w->fwds);
    pg_h1_free(w->h1); /* its queries are cancelled before the resolver goes */
    if (w->dns)
        evdns_base_free(w->dns, 0);
    pg_curlev_free(w->curl);
    pg_inbox_deinit(&w->inbox);
    memset(w, 0, sizeof *w);
}
