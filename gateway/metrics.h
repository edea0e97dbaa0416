/* metrics.h -- a worker's counters (SPEC section 6); every worker's, summed, rendered in the
 * Prometheus text format at /_gateway/metrics. Series are keyed by upstream name, so they
 * survive config reloads; the number of series is bounded (names come from the config). One per
 * worker, written by its thread; each has a lock so another worker can read it to render. */
#ifndef PG_METRICS_H
#define PG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct pg_metrics;

enum pg_metric_scope { PG_MS_UPSTREAM, PG_MS_ROUTE, PG_MS_CONSUMER, PG_MS_COOLDOWN, PG_MS__N };
enum pg_metric_err { PG_ME_TIMEOUT, PG_ME_UNAVAILABLE, PG_ME_MALFORMED, PG_ME_AUTH, PG_ME__N };

struct pg_metrics *pg_metrics_new(void);
void pg_metrics_free(struct pg_metrics *m); /* accepts NULL */

/* One answered request: upstream name (NULL for the gateway's own answers), method text,
 * HTTP status, duration in ms. */
void pg_metrics_request(struct pg_metrics *m, const char *upstream, const char *method, int status,
                        uint64_t ms);
void pg_metrics_login(struct pg_metrics *m, const char *upstream, bool ok);
void pg_metrics_limited(struct pg_metrics *m, const char *upstream, enum pg_metric_scope scope);
void pg_metrics_upstream_error(struct pg_metrics *m, const char *upstream, enum pg_metric_err k);
void pg_metrics_inflight(struct pg_metrics *m, const char *upstream, int delta);
void pg_metrics_store_error(struct pg_metrics *m);

/* Append the exposition of the sum of ms[0..n). 0 ok, -1 out of memory. */
int pg_metrics_render(struct pg_metrics *const *ms, size_t n, uint64_t connections,
                      struct evbuffer *out);

#endif
