/* endpoint.c -- panelgate's own endpoints (SPEC section 6): one table row each, a body writer
 * per row; dispatch (server.c) finds the row and checks who may read it. */
#include "endpoint.h"

#include <event2/buffer.h>

#include "limit.h"
#include "metrics.h"
#include "page.h"
#include "req.h"
#include "status.h"
#include "util.h"

static int body_health(struct pg_req *r, struct evbuffer *out)
{
    (void)r;
    return evbuffer_add_reference(out, "{\"status\":\"ok\"}", 15, NULL, NULL);
}

static int add_to_evbuffer(const char *p, size_t n, void *out)
{
    return evbuffer_add(out, p, n);
}

/* j (a reference taken over; NULL: out of memory) as compact JSON into out. */
static int put_json(json_t *j, struct evbuffer *out)
{
    int rc = j ? json_dump_callback(j, add_to_evbuffer, out, JSON_COMPACT) : -1;
    json_decref(j);
    return rc;
}

static int body_me(struct pg_req *r, struct evbuffer *out)
{
    return put_json(pg_limit_me(r->w->limit, r->conf, r->consumer), out);
}

static int body_status(struct pg_req *r, struct evbuffer *out)
{
    return put_json(pg_status_json(r), out);
}

static int body_metrics(struct pg_req *r, struct evbuffer *out)
{
    const struct pg_hub *h = r->w->hub;
    struct pg_metrics *ms[PG_WORKERS_MAX];
    for (size_t i = 0; i < h->nworkers; i++)
        ms[i] = h->workers[i]->metrics;
    return pg_metrics_render(ms, h->nworkers, pg_worker_nconns_all(r->w), out);
}

static const struct pg_endpoint endpoints[] = {
    /* health is 503 while draining: a balancer takes the instance out */
    { "/_gateway/health", PG_EP_NONE, "application/json", body_health, NULL },
    { "/_gateway/me", PG_EP_KEY, "application/json", body_me, NULL },
    { "/_gateway/status", PG_EP_ADMIN, "application/json", body_status, NULL },
    { "/_gateway/metrics", PG_EP_ADMIN_UNLESS_PUBLIC, "text/plain; version=0.0.4", body_metrics,
      NULL },
    /* the status page; its data is /_gateway/status with the admin key the page asks for */
    { "/_gateway/", PG_EP_NONE, "text/html; charset=utf-8", NULL, pg_page_html },
    { "/_gateway/page.js", PG_EP_NONE, "text/javascript; charset=utf-8", NULL, pg_page_js },
    { "/_gateway/page.css", PG_EP_NONE, "text/css; charset=utf-8", NULL, pg_page_css },
    { "/_gateway", PG_EP_NONE, NULL, NULL, pg_page_redirect },
};

const struct pg_endpoint *pg_endpoint_find(const char *path, size_t n)
{
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (pg_ieq(path, n, endpoints[i].path))
            return &endpoints[i];
    return NULL;
}

void pg_endpoint_serve(struct pg_req *r, const struct pg_endpoint *ep)
{
    if (ep->serve) {
        ep->serve(r, ep->ctype);
        return;
    }
    if (ep->body == body_health && r->w->draining) {
        pg_resp_fail(r, PG_E_DRAINING, NULL);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b || ep->body(r, b)) {
        if (b)
            evbuffer_free(b);
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    size_t len = evbuffer_get_length(b);
    pg_resp_simple(r, 200, ep->ctype, (const char *)evbuffer_pullup(b, -1), len);
    evbuffer_free(b);
}
