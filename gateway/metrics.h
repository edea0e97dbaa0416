/* metrics.h -- a worker's counters (SPEC section 6); every worker's, summed, rendered in the
 * Prometheus text format at /_gateway/metrics and as the counting half of /_gateway/status
 * (requests, errors by envelope code, latency percentiles, a 15-minute history by minute, and
 * per consumer). Series are keyed by upstream name, so they
 * survive config reloads; the number of series is bounded (names come from the config). One per
 * worker, written by its thread; each has a lock so another worker can read it to render. */
#ifndef PG_METRICS_H
#define PG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct evbuffer;
struct pg_metrics;

enum pg_metric_scope { PG_MS_UPSTREAM, PG_MS_ROUTE, PG_MS_CONSUMER, PG_MS_COOLDOWN, PG_MS__N };
enum pg_metric_err { PG_ME_TIMEOUT, PG_ME_UNAVAILABLE, PG_ME_MALFORMED, PG_ME_AUTH, PG_ME__N };

/* The label of a scope ("upstream", "route", "consumer", "cooldown"); NULL out of range. */
const char *pg_metrics_scope_name(int scope);

struct pg_metrics *pg_metrics_new(void);
void pg_metrics_free(struct pg_metrics *m); /* accepts NULL */

/* Minutes of history kept per upstream (status), and how many of the last ones the latency
 * percentiles cover. */
#define PG_MET_HISTORY 15
#define PG_MET_LATENCY_MIN 5

/* One answered request. */
struct pg_metrics_rec {
    const char *upstream; /* NULL: the gateway's own answer */
    const char *consumer; /* NULL: no caller key was accepted */
    unsigned method_bit;  /* PG_M_* (conf.h); 0: another method, or unparsed */
    int status;
    int err;        /* enum pg_err_code of an error envelope answer; -1: none */
    bool limited;   /* answered rate_limited: a bucket, a cool-down, or the panel's own 429 */
    unsigned scope; /* 1 + enum pg_metric_scope of the local limit that refused it; 0: none */
    uint64_t ms;    /* request to answer */
    uint64_t now_s; /* wall clock: the minute it counts in */
};

void pg_metrics_request(struct pg_metrics *m, const struct pg_metrics_rec *rec);
void pg_metrics_login(struct pg_metrics *m, const char *upstream, bool ok);
void pg_metrics_upstream_error(struct pg_metrics *m, const char *upstream, enum pg_metric_err k);
void pg_metrics_inflight(struct pg_metrics *m, const char *upstream, int delta);
void pg_metrics_store_error(struct pg_metrics *m);

/* The sum of ms[0..n) (each locked in turn), for reading with the functions below; free it
 * with pg_metrics_free. NULL out of memory. */
struct pg_metrics *pg_metrics_sum(struct pg_metrics *const *ms, size_t n);

/* Add upstream name's "requests", "inflight", "errors" (by envelope code), "latency_ms" (p50,
 * p99 over the last PG_MET_LATENCY_MIN minutes; null without requests) and "history" (one entry
 * per minute from from_s's minute, at most PG_MET_HISTORY, to now_s's) to the object o of a
 * sum. 0 ok, -1 out of memory. */
int pg_metrics_upstream_json(const struct pg_metrics *sum, const char *name, uint64_t from_s,
                             uint64_t now_s, json_t *o);
/* Add consumer name's "requests" and "rate_limited" to o. 0 ok, -1 out of memory. */
int pg_metrics_consumer_json(const struct pg_metrics *sum, const char *name, json_t *o);

/* Append the exposition of the sum of ms[0..n). 0 ok, -1 out of memory. */
int pg_metrics_render(struct pg_metrics *const *ms, size_t n, uint64_t connections,
                      struct evbuffer *out);

#endif
