/* metrics.c -- counters per upstream name and their Prometheus text exposition. */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* Bounds: upstream names come from the config, methods are the 7 proxied ones plus "other",
 * statuses are 100-599; past the caps new series are folded into the last slot. */
#define PG_MET_UPSTREAMS 256
#define PG_MET_CODES 64
#define PG_MET_BUCKETS 11

static const double bucket_s[PG_MET_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,    2.5,   5,    10 };
static const uint64_t bucket_ms[PG_MET_BUCKETS] = { 5,   10,   25,   50,   100,  250,
                                                    500, 1000, 2500, 5000, 10000 };
static const char *const methods[] = { "GET",   "HEAD",   "POST",    "PUT",
                                       "PATCH", "DELETE", "OPTIONS", "other" };
#define PG_MET_METHODS (sizeof methods / sizeof methods[0])
static const char *const scopes[PG_MS__N] = { "upstream", "route", "consumer", "cooldown" };
static const char *const errs[PG_ME__N] = { "timeout", "unavailable", "malformed", "auth" };

struct code {
    uint16_t status;
    uint8_t method;
    uint64_t n;
};

struct series {
    char name[72];
    struct code codes[PG_MET_CODES];
    size_t ncodes;
    uint64_t hist[PG_MET_BUCKETS]; /* non-cumulative; summed when rendered */
    uint64_t count, sum_ms;
    uint64_t logins_ok, logins_fail;
    uint64_t limited[PG_MS__N];
    uint64_t errors[PG_ME__N];
    int64_t inflight;
};

/* mu: the owning worker writes, a worker rendering /_gateway/metrics reads; uncontended but
 * for renders, so a few tens of ns per answer. */
struct pg_metrics {
    pthread_mutex_t mu;
    struct series *s;
    size_t n;
    uint64_t store_errors;
};

struct pg_metrics *pg_metrics_new(void)
{
    struct pg_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (!(m->s = calloc(PG_MET_UPSTREAMS, sizeof *m->s)) || pthread_mutex_init(&m->mu, NULL)) {
        free(m->s);
        free(m);
        return NULL;
    }
    return m;
}

void pg_metrics_free(struct pg_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m->s);
    free(m);
}

static struct series *series_of(struct pg_metrics *m, const char *upstream)
{
    const char *name = upstream ? upstream : "_gateway";
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->s[i].name, name) == 0)
            return &m->s[i];
    if (m->n == PG_MET_UPSTREAMS || strlen(name) >= sizeof m->s[0].name)
        return &m->s[m->n ? m->n - 1 : 0];
    struct series *s = &m->s[m->n++];
    memcpy(s->name, name, strlen(name) + 1);
    return s;
}

/* One (status, method) counter of s, made on first use. */
static struct code *code_of(struct series *s, uint16_t st, uint8_t mi)
{
    for (size_t i = 0; i < s->ncodes; i++)
        if (s->codes[i].status == st && s->codes[i].method == mi)
            return &s->codes[i];
    struct code *c =
        s->ncodes < PG_MET_CODES ? &s->codes[s->ncodes++] : &s->codes[PG_MET_CODES - 1];
    if (c->n == 0) {
        c->status = st;
        c->method = mi;
    }
    return c;
}

void pg_metrics_request(struct pg_metrics *m, const char *upstream, const char *method, int status,
                        uint64_t ms)
{
    pthread_mutex_lock(&m->mu);
    struct series *s = series_of(m, upstream);
    uint8_t mi = (uint8_t)(PG_MET_METHODS - 1);
    for (uint8_t i = 0; method && (size_t)i + 1 < PG_MET_METHODS; i++)
        if (strcmp(methods[i], method) == 0)
            mi = i;
    uint16_t st = status >= 100 && status <= 599 ? (uint16_t)status : 0;
    code_of(s, st, mi)->n++;
    size_t b = 0;
    while (b < PG_MET_BUCKETS && ms > bucket_ms[b])
        b++;
    if (b < PG_MET_BUCKETS)
        s->hist[b]++;
    s->count++;
    s->sum_ms += ms;
    pthread_mutex_unlock(&m->mu);
}

void pg_metrics_login(struct pg_metrics *m, const char *upstream, bool ok)
{
    pthread_mutex_lock(&m->mu);
    struct series *s = series_of(m, upstream);
    if (ok)
        s->logins_ok++;
    else
        s->logins_fail++;
    pthread_mutex_unlock(&m->mu);
}

void pg_metrics_limited(struct pg_metrics *m, const char *upstream, enum pg_metric_scope scope)
{
    if ((unsigned)scope >= PG_MS__N)
        return;
    pthread_mutex_lock(&m->mu);
    series_of(m, upstream)->limited[scope]++;
    pthread_mutex_unlock(&m->mu);
}

void pg_metrics_upstream_error(struct pg_metrics *m, const char *upstream, enum pg_metric_err k)
{
    if ((unsigned)k >= PG_ME__N)
        return;
    pthread_mutex_lock(&m->mu);
    series_of(m, upstream)->errors[k]++;
    pthread_mutex_unlock(&m->mu);
}

void pg_metrics_inflight(struct pg_metrics *m, const char *upstream, int delta)
{
    pthread_mutex_lock(&m->mu);
    series_of(m, upstream)->inflight += delta;
    pthread_mutex_unlock(&m->mu);
}

void pg_metrics_store_error(struct pg_metrics *m)
{
    pthread_mutex_lock(&m->mu);
    m->store_errors++;
    pthread_mutex_unlock(&m->mu);
}

/* Add src's counters into dst (src locked by the caller, dst private). */
static void merge(struct pg_metrics *dst, const struct pg_metrics *src)
{
    for (size_t i = 0; i < src->n; i++) {
        const struct series *a = &src->s[i];
        struct series *d = series_of(dst, a->name);
        for (size_t j = 0; j < a->ncodes; j++)
            code_of(d, a->codes[j].status, a->codes[j].method)->n += a->codes[j].n;
        for (size_t b = 0; b < PG_MET_BUCKETS; b++)
            d->hist[b] += a->hist[b];
        d->count += a->count;
        d->sum_ms += a->sum_ms;
        d->logins_ok += a->logins_ok;
        d->logins_fail += a->logins_fail;
        for (size_t k = 0; k < PG_MS__N; k++)
            d->limited[k] += a->limited[k];
        for (size_t k = 0; k < PG_ME__N; k++)
            d->errors[k] += a->errors[k];
        d->inflight += a->inflight;
    }
    dst->store_errors += src->store_errors;
}

static int render(const struct pg_metrics *m, uint64_t connections, struct evbuffer *out);

int pg_metrics_render(struct pg_metrics *const *ms, size_t n, uint64_t connections,
                      struct evbuffer *out)
{
    struct pg_metrics *sum = pg_metrics_new();
    if (!sum)
        return -1;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&ms[i]->mu);
        merge(sum, ms[i]);
        pthread_mutex_unlock(&ms[i]->mu);
    }
    int rc = render(sum, connections, out);
    pg_metrics_free(sum);
    return rc;
}

#define P(...)                                                                                     \
    do {                                                                                           \
        if (evbuffer_add_printf(out, __VA_ARGS__) < 0)                                             \
            return -1;                                                                             \
    } while (0)

static int render(const struct pg_metrics *m, uint64_t connections, struct evbuffer *out)
{
    P("# HELP panelgate_requests_total Requests answered.\n"
      "# TYPE panelgate_requests_total counter\n");
    for (size_t i = 0; i < m->n; i++)
        for (size_t j = 0; j < m->s[i].ncodes; j++) {
            const struct code *c = &m->s[i].codes[j];
            P("panelgate_requests_total{upstream=\"%s\",method=\"%s\",status=\"%u\"} %llu\n",
              m->s[i].name, methods[c->method], (unsigned)c->status, (unsigned long long)c->n);
        }
    P("# HELP panelgate_request_duration_seconds Time from request to answer.\n"
      "# TYPE panelgate_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->n; i++) {
        const struct series *s = &m->s[i];
        uint64_t cum = 0;
        for (size_t b = 0; b < PG_MET_BUCKETS; b++) {
            cum += s->hist[b];
            P("panelgate_request_duration_seconds_bucket{upstream=\"%s\",le=\"%g\"} %llu\n",
              s->name, bucket_s[b], (unsigned long long)cum);
        }
        P("panelgate_request_duration_seconds_bucket{upstream=\"%s\",le=\"+Inf\"} %llu\n"
          "panelgate_request_duration_seconds_sum{upstream=\"%s\"} %.3f\n"
          "panelgate_request_duration_seconds_count{upstream=\"%s\"} %llu\n",
          s->name, (unsigned long long)s->count, s->name, (double)s->sum_ms / 1000.0, s->name,
          (unsigned long long)s->count);
    }
    P("# HELP panelgate_upstream_logins_total Logins to panels.\n"
      "# TYPE panelgate_upstream_logins_total counter\n");
    for (size_t i = 0; i < m->n; i++)
        if (m->s[i].logins_ok || m->s[i].logins_fail)
            P("panelgate_upstream_logins_total{upstream=\"%s\",result=\"ok\"} %llu\n"
              "panelgate_upstream_logins_total{upstream=\"%s\",result=\"failed\"} %llu\n",
              m->s[i].name, (unsigned long long)m->s[i].logins_ok, m->s[i].name,
              (unsigned long long)m->s[i].logins_fail);
    P("# HELP panelgate_rate_limited_total Requests refused by a rate limit or cool-down.\n"
      "# TYPE panelgate_rate_limited_total counter\n");
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = 0; k < PG_MS__N; k++)
            if (m->s[i].limited[k])
                P("panelgate_rate_limited_total{upstream=\"%s\",scope=\"%s\"} %llu\n", m->s[i].name,
                  scopes[k], (unsigned long long)m->s[i].limited[k]);
    P("# HELP panelgate_upstream_errors_total Upstream failures by kind.\n"
      "# TYPE panelgate_upstream_errors_total counter\n");
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = 0; k < PG_ME__N; k++)
            if (m->s[i].errors[k])
                P("panelgate_upstream_errors_total{upstream=\"%s\",kind=\"%s\"} %llu\n",
                  m->s[i].name, errs[k], (unsigned long long)m->s[i].errors[k]);
    P("# HELP panelgate_connections_active Open caller connections.\n"
      "# TYPE panelgate_connections_active gauge\n"
      "panelgate_connections_active %llu\n",
      (unsigned long long)connections);
    P("# HELP panelgate_inflight_requests Requests being forwarded.\n"
      "# TYPE panelgate_inflight_requests gauge\n");
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->s[i].name, "_gateway") != 0)
            P("panelgate_inflight_requests{upstream=\"%s\"} %lld\n", m->s[i].name,
              (long long)m->s[i].inflight);
    P("# HELP panelgate_store_errors_total Rate-limit store failures.\n"
      "# TYPE panelgate_store_errors_total counter\n"
      "panelgate_store_errors_total{store=\"redis\"} %llu\n",
      (unsigned long long)m->store_errors);
    return 0;
}
