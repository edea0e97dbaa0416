/* metrics.c -- counters per upstream name and per consumer name, their Prometheus text
 * exposition, and the status endpoint's view of them. */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf.h"
#include "envelope.h"
#include "util.h"

/* Bounds: upstream names come from the config, methods are the 7 proxied ones plus "other",
 * statuses are 100-599; past the caps new series are folded into the last slot. */
#define PG_MET_UPSTREAMS 256
#define PG_MET_CODES 64
#define PG_MET_BUCKETS 11
#define PG_MET_CONSUMERS 1024 /* a hash table's slots: consumers past it are not counted */
/* Latency for the status percentiles: 4 buckets per power of two (each at most 25% wide) from
 * 0 ms up to 131 s; longer answers (streams) count in the last one. */
#define PG_MET_LAT 64

static const double bucket_s[PG_MET_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,    2.5,   5,    10 };
static const uint64_t bucket_ms[PG_MET_BUCKETS] = { 5,   10,   25,   50,   100,  250,
                                                    500, 1000, 2500, 5000, 10000 };
/* in PG_M_* bit order (conf.h), "other" last */
static const char *const methods[] = { "GET",   "HEAD",   "POST",    "PUT",
                                       "PATCH", "DELETE", "OPTIONS", "other" };
#define PG_MET_METHODS (sizeof methods / sizeof methods[0])
_Static_assert(PG_M_GET == 1u && PG_M_OPTIONS == 1u << (PG_MET_METHODS - 2),
               "methods[] follows the PG_M_* bits");
static const char *const scopes[PG_MS__N] = { "upstream", "route", "consumer", "cooldown" };
static const char *const errs[PG_ME__N] = { "timeout", "unavailable", "malformed", "auth" };

struct code {
    uint16_t status;
    uint8_t method;
    uint64_t n;
};

/* One minute of an upstream's answers; `min` is the minute since the epoch it counts. */
struct minute {
    uint64_t min;
    uint32_t n, errs;
    uint32_t lat[PG_MET_LAT];
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
    uint64_t err_kinds[PG_E__COUNT];
    struct minute mins[PG_MET_HISTORY]; /* a ring indexed by min % PG_MET_HISTORY */
};

struct consumer {
    char name[72]; /* "": a free slot */
    uint64_t requests, limited;
};

/* mu: the owning worker writes, a worker rendering /_gateway/metrics reads; uncontended but
 * for renders, so a few tens of ns per answer. */
struct pg_metrics {
    pthread_mutex_t mu;
    struct series *s;
    size_t n;
    struct consumer *c; /* PG_MET_CONSUMERS slots, open addressing on the name */
    uint64_t store_errors;
};

const char *pg_metrics_scope_name(int scope)
{
    return scope >= 0 && scope < PG_MS__N ? scopes[scope] : NULL;
}

struct pg_metrics *pg_metrics_new(void)
{
    struct pg_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (!(m->s = calloc(PG_MET_UPSTREAMS, sizeof *m->s)) ||
        !(m->c = calloc(PG_MET_CONSUMERS, sizeof *m->c)) || pthread_mutex_init(&m->mu, NULL)) {
        free(m->s);
        free(m->c);
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
    free(m->c);
    free(m);
}

/* The index of series name in m, or -1. */
static long series_index(const struct pg_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->s[i].name, name) == 0)
            return (long)i;
    return -1;
}

static struct series *series_of(struct pg_metrics *m, const char *upstream)
{
    const char *name = upstream ? upstream : "_gateway";
    long i = series_index(m, name);
    if (i >= 0)
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

/* The slot of consumer name, or with `free_ok` the free slot it would take; -1: none (unknown,
 * or the table is full). FNV-1a, linear probing; names come from the config, so the table only
 * fills past PG_MET_CONSUMERS distinct consumers over the process's life. */
static long consumer_slot(const struct pg_metrics *m, const char *name, bool free_ok)
{
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof m->c[0].name)
        return -1;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    for (size_t k = 0; k < PG_MET_CONSUMERS; k++) {
        size_t i = (h + k) % PG_MET_CONSUMERS;
        if (!m->c[i].name[0])
            return free_ok ? (long)i : -1;
        if (strcmp(m->c[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

/* Consumer name's counters, made on first use; NULL: the table is full. */
static struct consumer *consumer_of(struct pg_metrics *m, const char *name)
{
    long i = consumer_slot(m, name, true);
    if (i < 0)
        return NULL;
    if (!m->c[i].name[0])
        memcpy(m->c[i].name, name, strlen(name) + 1);
    return &m->c[i];
}

static unsigned lat_bucket(uint64_t ms)
{
    if (ms < 4)
        return (unsigned)ms;
    unsigned e = 63u - (unsigned)__builtin_clzll(ms); /* floor(log2 ms) >= 2 */
    unsigned i = (e - 1) * 4 + (unsigned)((ms >> (e - 2)) & 3);
    return i < PG_MET_LAT ? i : PG_MET_LAT - 1;
}

/* The largest ms bucket i holds: what a percentile falling in it reports. */
static uint64_t lat_upper(unsigned i)
{
    if (i < 4)
        return i;
    unsigned e = i / 4 + 1;
    return ((uint64_t)(4 + i % 4 + 1) << (e - 2)) - 1;
}

/* s's slot for minute min, emptied when it still holds an older minute; NULL when min is older
 * than what the slot holds. */
static struct minute *minute_of(struct series *s, uint64_t min)
{
    struct minute *t = &s->mins[min % PG_MET_HISTORY];
    if (t->min == min)
        return t;
    if (t->min > min)
        return NULL;
    memset(t, 0, sizeof *t);
    t->min = min;
    return t;
}

void pg_metrics_request(struct pg_metrics *m, const struct pg_metrics_rec *rec)
{
    pthread_mutex_lock(&m->mu);
    struct series *s = series_of(m, rec->upstream);
    uint8_t mi =
        rec->method_bit ? (uint8_t)__builtin_ctz(rec->method_bit) : (uint8_t)(PG_MET_METHODS - 1);
    if (mi >= PG_MET_METHODS)
        mi = (uint8_t)(PG_MET_METHODS - 1);
    uint16_t st = rec->status >= 100 && rec->status <= 599 ? (uint16_t)rec->status : 0;
    code_of(s, st, mi)->n++;
    size_t b = 0;
    while (b < PG_MET_BUCKETS && rec->ms > bucket_ms[b])
        b++;
    if (b < PG_MET_BUCKETS)
        s->hist[b]++;
    s->count++;
    s->sum_ms += rec->ms;
    if (rec->scope && rec->scope <= PG_MS__N)
        s->limited[rec->scope - 1]++;
    bool err = rec->err >= 0 && rec->err < PG_E__COUNT;
    if (err)
        s->err_kinds[rec->err]++;
    struct minute *t = minute_of(s, rec->now_s / 60);
    if (t) {
        t->n++;
        t->errs += err;
        t->lat[lat_bucket(rec->ms)]++;
    }
    struct consumer *c = rec->consumer ? consumer_of(m, rec->consumer) : NULL;
    if (c) {
        c->requests++;
        c->limited += rec->limited;
    }
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
        for (size_t k = 0; k < PG_E__COUNT; k++)
            d->err_kinds[k] += a->err_kinds[k];
        for (size_t k = 0; k < PG_MET_HISTORY; k++) {
            const struct minute *from = &a->mins[k];
            struct minute *to = from->min ? minute_of(d, from->min) : NULL;
            if (!to)
                continue;
            to->n += from->n;
            to->errs += from->errs;
            for (size_t j = 0; j < PG_MET_LAT; j++)
                to->lat[j] += from->lat[j];
        }
    }
    for (size_t i = 0; i < PG_MET_CONSUMERS; i++) {
        const struct consumer *a = &src->c[i];
        struct consumer *d = a->name[0] ? consumer_of(dst, a->name) : NULL;
        if (d) {
            d->requests += a->requests;
            d->limited += a->limited;
        }
    }
    dst->store_errors += src->store_errors;
}

static int render(const struct pg_metrics *m, uint64_t connections, struct evbuffer *out);

struct pg_metrics *pg_metrics_sum(struct pg_metrics *const *ms, size_t n)
{
    struct pg_metrics *sum = pg_metrics_new();
    if (!sum)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&ms[i]->mu);
        merge(sum, ms[i]);
        pthread_mutex_unlock(&ms[i]->mu);
    }
    return sum;
}

int pg_metrics_render(struct pg_metrics *const *ms, size_t n, uint64_t connections,
                      struct evbuffer *out)
{
    struct pg_metrics *sum = pg_metrics_sum(ms, n);
    if (!sum)
        return -1;
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

/* ---- the status endpoint's view of a sum ---- */

static const struct series *series_find(const struct pg_metrics *m, const char *name)
{
    long i = series_index(m, name);
    return i >= 0 ? &m->s[i] : NULL;
}

/* The q-quantile (0..1] of lat's n counts, as its bucket's upper bound, or null. */
static json_t *quantile(const uint32_t *lat, uint64_t n, double q)
{
    if (n == 0)
        return json_null();
    uint64_t rank = (uint64_t)(q * (double)n + 0.999999), seen = 0;
    for (unsigned i = 0; i < PG_MET_LAT; i++) {
        seen += lat[i];
        if (seen >= rank)
            return json_integer((json_int_t)lat_upper(i));
    }
    return json_integer((json_int_t)lat_upper(PG_MET_LAT - 1));
}

/* "2026-12-07T09:41:00Z" for the minute min. */
static json_t *minute_time(uint64_t min)
{
    char t[32];
    struct pg_sb b = pg_sb_of(t, sizeof t);
    pg_sb_time(&b, min * 60000, false);
    return pg_sb_end(&b) ? json_string(t) : NULL;
}

static int history_json(const struct series *s, uint64_t from_min, uint64_t now_min, json_t *o)
{
    json_t *h = json_array();
    if (!h || json_object_set_new(o, "history", h))
        return -1;
    if (now_min - from_min >= PG_MET_HISTORY)
        from_min = now_min - (PG_MET_HISTORY - 1);
    for (uint64_t m = from_min; m <= now_min; m++) {
        const struct minute *t = s ? &s->mins[m % PG_MET_HISTORY] : NULL;
        bool have = t && t->min == m;
        json_t *e =
            json_pack("{s:o,s:I,s:I,s:o}", "t", minute_time(m), "requests",
                      (json_int_t)(have ? t->n : 0), "errors", (json_int_t)(have ? t->errs : 0),
                      "p99_ms", have ? quantile(t->lat, t->n, 0.99) : json_null());
        if (!e || json_array_append_new(h, e))
            return -1;
    }
    return 0;
}

static int latency_json(const struct series *s, uint64_t now_min, json_t *o)
{
    uint32_t lat[PG_MET_LAT] = { 0 };
    uint64_t n = 0;
    for (size_t k = 0; s && k < PG_MET_HISTORY; k++) {
        const struct minute *t = &s->mins[k];
        if (t->min + PG_MET_LATENCY_MIN <= now_min || t->min > now_min)
            continue;
        n += t->n;
        for (size_t j = 0; j < PG_MET_LAT; j++)
            lat[j] += t->lat[j];
    }
    return json_object_set_new(
        o, "latency_ms",
        json_pack("{s:o,s:o}", "p50", quantile(lat, n, 0.5), "p99", quantile(lat, n, 0.99)));
}

/* Errors by the envelope's code: kinds sharing a code are added up. */
static int errors_json(const struct series *s, json_t *o)
{
    json_t *e = json_object();
    if (!e || json_object_set_new(o, "errors", e))
        return -1;
    for (int k = 0; s && k < PG_E__COUNT; k++) {
        if (!s->err_kinds[k])
            continue;
        const char *code = pg_err_name((enum pg_err_code)k);
        json_int_t had = json_integer_value(json_object_get(e, code));
        if (json_object_set_new(e, code, json_integer(had + (json_int_t)s->err_kinds[k])))
            return -1;
    }
    return 0;
}

int pg_metrics_upstream_json(const struct pg_metrics *sum, const char *name, uint64_t from_s,
                             uint64_t now_s, json_t *o)
{
    const struct series *s = series_find(sum, name);
    if (json_object_set_new(o, "inflight", json_integer(s ? (json_int_t)s->inflight : 0)) ||
        json_object_set_new(o, "requests", json_integer(s ? (json_int_t)s->count : 0)) ||
        errors_json(s, o) || latency_json(s, now_s / 60, o))
        return -1;
    return history_json(s, (from_s < now_s ? from_s : now_s) / 60, now_s / 60, o);
}

int pg_metrics_consumer_json(const struct pg_metrics *sum, const char *name, json_t *o)
{
    long i = consumer_slot(sum, name, false);
    const struct consumer *c = i >= 0 ? &sum->c[i] : NULL;
    if (json_object_set_new(o, "requests", json_integer(c ? (json_int_t)c->requests : 0)) ||
        json_object_set_new(o, "rate_limited", json_integer(c ? (json_int_t)c->limited : 0)))
        return -1;
    return 0;
}
