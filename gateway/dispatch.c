/* dispatch.c -- what a request is: its head judged before the body is read (caller key,
 * upstream, allow-list, reserved path, gateway endpoint; SPEC sections 2, 3, 6), then, once
 * complete, answered by an endpoint or sent through the rate limits to the forwarder. */
#include "dispatch.h"

#include <string.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

#include "conn.h"
#include "endpoint.h"
#include "fwd.h"
#include "hdr.h"
#include "keys.h"
#include "limit.h"
#include "req.h"
#include "reqparse.h"
#include "route.h"
#include "util.h"

static void set_rid(struct pg_conn *c)
{
    struct pg_req *r = &c->cr->req;
    size_t n;
    const char *v = pg_req_header(r, "x-request-id", &n);
    if (v && pg_hdr_request_id_ok(v, n)) {
        memcpy(r->rid, v, n);
        r->rid[n] = '\0';
    } else {
        pg_worker_rid(r->w, r->rid);
    }
}

/* The consumer whose key the request carries, or NULL. */
static const struct pg_consumer *caller(struct pg_conn *c)
{
    struct pg_req *r = &c->cr->req;
    size_t an;
    const char *az = pg_req_header(r, "authorization", &an);
    if (!az)
        return NULL;
    if (c->akey_consumer && c->akey_gen == c->cr->req.w->conf_gen && an == c->akey_len &&
        CRYPTO_memcmp(az, c->akey, an) == 0)
        return c->akey_consumer;
    const struct pg_consumer *k = pg_keys_lookup(r->conf, az, an);
    c->akey_consumer = NULL;
    if (k && an <= sizeof c->akey) {
        memcpy(c->akey, az, an);
        c->akey_len = an;
        c->akey_gen = c->cr->req.w->conf_gen;
        c->akey_consumer = k;
    }
    return k;
}

/* A request for the gateway itself: which endpoint, and may this caller read it. */
static enum pg_err_code judge_endpoint(struct pg_conn *c, const char *path, size_t n,
                                       const char **msg)
{
    struct pg_req *r = &c->cr->req;
    const struct pg_endpoint *ep = pg_endpoint_find(path, n);
    if (!ep) {
        *msg = "No such gateway endpoint.";
        return PG_E_NOT_FOUND;
    }
    if (r->method_bit != PG_M_GET && r->method_bit != PG_M_HEAD)
        return PG_E_METHOD_NOT_ALLOWED;
    if (ep->access != PG_EP_NONE &&
        !(ep->access == PG_EP_ADMIN_UNLESS_PUBLIC && r->conf->metrics_public)) {
        if (!(r->consumer = caller(c)))
            return PG_E_UNAUTHORIZED;
        if (ep->access != PG_EP_KEY && !r->consumer->admin) {
            *msg = "An admin key is required.";
            return PG_E_FORBIDDEN;
        }
    }
    c->ep = ep;
    return PG_E__COUNT;
}

/* The request's target, from its head alone: gateway endpoint, or caller key, upstream,
 * allow-list and reserved path. PG_E__COUNT when it may go on, else the refusal. */
static enum pg_err_code judge_target(struct pg_conn *c, const char **msg)
{
    struct pg_req *r = &c->cr->req;
    if (!r->method_bit) {
        *msg = "This method is not proxied.";
        return PG_E_METHOD_NOT_ALLOWED;
    }
    const char *u = r->hbuf + r->url;
    size_t un = r->url_len;
    const char *hash = memchr(u, '#', un);
    if (hash)
        un = (size_t)(hash - u);
    const char *q = memchr(u, '?', un);
    size_t pn = q ? (size_t)(q - u) : un;
    size_t qn = q ? un - pn - 1 : 0;
    /* the normalised path goes after the headers, in the same buffer */
    if (pg_reqparse_reserve(&c->cr->ps, pn + 1, c->cr->ps.max_header_bytes + PG_URL_MAX + 1))
        return PG_E_INTERNAL;
    u = r->hbuf + r->url;
    char *norm = r->hbuf + r->hlen;
    long nn = pg_path_normalize(u, pn, norm, pn + 1);
    if (nn < 0) {
        *msg = "The request path is not acceptable.";
        return PG_E_BAD_REQUEST;
    }
    if (pg_iprefix(norm, (size_t)nn, "/_gateway/") || pg_ieq(norm, (size_t)nn, "/_gateway"))
        return judge_endpoint(c, norm, (size_t)nn, msg);
    if (!(r->consumer = caller(c)))
        return PG_E_UNAUTHORIZED;
    const char *rest;
    size_t rn;
    r->upstream = pg_route_match(r->conf, norm, (size_t)nn, &rest, &rn);
    if (r->upstream < 0) {
        *msg = "No upstream of that name.";
        return PG_E_NOT_FOUND;
    }
    if (!pg_keys_allowed(r->consumer, r->upstream, r->method_bit)) {
        *msg = "This key may not call that upstream with this method.";
        return PG_E_FORBIDDEN;
    }
    const struct pg_upstream *up = &r->conf->upstreams[r->upstream];
    if (up->auth && up->auth->reserved && up->auth->reserved(up->auth_state, r->method, rest, rn)) {
        *msg = "That path is reserved for the gateway.";
        return PG_E_FORBIDDEN;
    }
    r->rest = rest;
    r->rest_len = rn;
    r->query = q ? u + pn + 1 : NULL;
    r->query_len = qn;
    return PG_E__COUNT;
}

/* SPEC 2: a head is judged before its body is read. A refusal with a body to follow is
 * answered at once and the connection closed (the body is never read); without one it is
 * answered when the request ends, and the connection stays. 100 Continue only for a pass. */
static int judge(struct pg_reqparse *ps, bool body_follows, void *arg)
{
    struct pg_conn *c = arg;
    struct pg_req *r = &c->cr->req;
    r->start_ms = pg_now_ms();
    set_rid(c);
    r->conf = r->w->conf;
    pg_conf_ref(r->conf);
    const char *msg = NULL;
    enum pg_err_code code = judge_target(c, &msg);
    if (code == PG_E__COUNT && c->ep && body_follows) {
        code = PG_E_PAYLOAD_TOO_LARGE; /* the gateway's endpoints take no body */
        msg = "Gateway endpoints take no request body.";
        c->ep = NULL;
    }
    if (code != PG_E__COUNT) {
        if (body_follows) {
            pg_reqparse_refuse(ps, code, msg);
            return -1;
        }
        c->refused = true;
        c->rcode = code;
        c->rmsg = msg;
        return 0;
    }
    size_t en;
    const char *ex = pg_req_header(r, "expect", &en);
    if (body_follows && ex && r->http_minor >= 1 && pg_ieq(ex, en, "100-continue")) {
        if (evbuffer_add(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25))
            return -1;
        r->kick(r);
    }
    return 0;
}

/* Past the rate limits: forward. */
static void admitted(struct pg_req *r)
{
    pg_fwd_start(r, r->rest, r->rest_len, r->query, r->query_len);
}

/* A whole request was read and its head judged: answer it. */
static void request(struct pg_conn *c)
{
    struct pg_req *r = &c->cr->req;
    if (c->refused)
        pg_resp_fail(r, c->rcode, c->rmsg);
    else if (c->ep)
        pg_endpoint_serve(r, c->ep);
    else
        pg_limit_admit(r->w->lport, r, admitted);
}

const struct pg_conn_up pg_dispatch = { .head = judge, .request = request };
