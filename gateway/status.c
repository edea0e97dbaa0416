/* status.c -- the /_gateway/status document (SPEC section 6), built with jansson. */
#include "status.h"

#include <time.h>

#include "auth.h"
#include "fwd.h"
#include "limit.h"
#include "metrics.h"
#include "req.h"
#include "util.h"

/* A ms figure as whole seconds, rounded up: "cool-down 0 s" only once it is over. */
static json_int_t ceil_s(uint64_t ms)
{
    return (json_int_t)((ms + 999) / 1000);
}

static json_t *rfc3339(uint64_t s)
{
    char t[32];
    struct pg_sb b = pg_sb_of(t, sizeof t);
    pg_sb_time(&b, s * 1000, false);
    return pg_sb_end(&b) ? json_string(t) : NULL;
}

/* Upstream up's "session", or nothing for an adapter without one. -1 out of memory. */
static int session_json(struct pg_req *r, int up, json_t *o)
{
    struct pg_auth_status st;
    if (!pg_auth_status(r->w->hub, r->conf, up, &st))
        return 0;
    json_t *exp =
        st.expires_in_ms < 0 ? json_null() : json_integer(ceil_s((uint64_t)st.expires_in_ms));
    return json_object_set_new(
        o, "session",
        json_pack("{s:s,s:I,s:o,s:I,s:I,s:I}", "state", pg_auth_shown_name(st.state), "age_s",
                  (json_int_t)(st.age_ms / 1000), "expires_in_s", exp, "logins",
                  (json_int_t)st.logins, "login_failures", (json_int_t)st.failures, "backoff_s",
                  ceil_s(st.backoff_ms)));
}

static json_t *upstream_json(struct pg_req *r, const struct pg_metrics *sum, int i, uint64_t now_s)
{
    const struct pg_upstream *up = &r->conf->upstreams[i];
    struct pg_limit *l = r->w->limit;
    json_t *o =
        json_pack("{s:s,s:s}", "name", up->name, "client", pg_fwd_own_client(up) ? "h1" : "curl");
    if (!o || session_json(r, i, o) ||
        json_object_set_new(o, "cooldown_s", json_integer(ceil_s(pg_limit_cooldown_left(l, up)))) ||
        json_object_set_new(o, "buckets", pg_limit_buckets(l, up)) ||
        json_object_set_new(o, "queued", json_integer((json_int_t)pg_limit_queued(l, up))) ||
        pg_metrics_upstream_json(sum, up->name, r->w->hub->started_s, now_s, o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *consumers_json(const struct pg_conf *c, const struct pg_metrics *sum)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->nconsumers; i++) {
        json_t *o = json_pack("{s:s}", "name", c->consumers[i].name);
        if (!o || pg_metrics_consumer_json(sum, c->consumers[i].name, o) ||
            json_array_append_new(a, o)) {
            json_decref(o);
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* How the kernel spread connections over the workers' listeners (SO_REUSEPORT). */
static json_t *worker_conns(const struct pg_hub *h)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < h->nworkers; i++)
        if (json_array_append_new(a, json_integer((json_int_t)pg_worker_nconns(h->workers[i])))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *pg_status_json(struct pg_req *r)
{
    const struct pg_hub *h = r->w->hub;
    struct pg_metrics *ms[PG_WORKERS_MAX];
    for (size_t i = 0; i < h->nworkers; i++)
        ms[i] = h->workers[i]->metrics;
    struct pg_metrics *sum = pg_metrics_sum(ms, h->nworkers);
    if (!sum)
        return NULL;
    bool redis = r->conf->store == PG_STORE_REDIS;
    /* SPEC 4.1: the shared store's state as the workers last saw it */
    bool down = redis && __atomic_load_n(&h->store_down, __ATOMIC_RELAXED);
    json_t *ups = json_array();
    json_t *st =
        json_pack("{s:s,s:o,s:I,s:I,s:o,s:{s:s,s:s},s:o,s:o}", "version", PG_VERSION, "started",
                  rfc3339(h->started_s), "workers", (json_int_t)h->nworkers, "connections",
                  (json_int_t)pg_worker_nconns_all(r->w), "worker_connections", worker_conns(h),
                  "store", "type", redis ? "redis" : "local", "state", down ? "down" : "ok",
                  "upstreams", ups, "consumers", consumers_json(r->conf, sum));
    uint64_t now_s = (uint64_t)time(NULL);
    for (size_t i = 0; st && i < r->conf->nupstreams; i++)
        if (json_array_append_new(ups, upstream_json(r, sum, (int)i, now_s))) {
            json_decref(st);
            st = NULL;
        }
    pg_metrics_free(sum);
    return st;
}
