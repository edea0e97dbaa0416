/* fakepanels.c -- fake upstream panels for integration tests and demos: one evhttp server per
 * --<service> PORT (a generic echo service and one faithful fake per panel), each with test
 * knobs and counters under /_fake/, plus a bound-but-not-listening port that refuses connections.
 *
 * Fixed, obviously fake credentials (tests configure the gateway with these):
 *   --navixy        Navixy user API   login "fake-navixy-user"  password "fake-navixy-pass"
 *   --navixy-panel  Navixy Panel API  login "fake-panel-admin"  password "fake-panel-pass"
 *   --openpanel     OpenPanel         username "fake-op-admin"  password "fake-op-pass"
 *   --panelica      Panelica          api_key "pk_fake_panelica"
 *                                     api_secret "sk_fake_panelica_secret"
 *   --navirec       Navirec           token "fake-navirec-token"
 * POST /_fake/config?password=X replaces the secret a service accepts (the Navixy and OpenPanel
 * password, the Panelica api_secret, the Navirec token) until /_fake/reset.
 *
 * Every service answers, on any path containing /_fake/ (never counted as a hit):
 *   GET  /_fake/stats   counters, last_path, last_request, times_ms, the service's own counters
 *   POST /_fake/reset   zero the counters, forget sessions, restore every knob's default;
 *                       ?sessions=keep: the live sessions stay (a gateway allowed one login per
 *                       10 s after an expired-session answer must not lose its session per test)
 *   POST /_fake/expire  end all current sessions now (Navixy, OpenPanel)
 *   POST /_fake/config?KNOB=V&...  set knobs (all or none; a knob that does not apply to the
 *                       service is a 400); answers the knobs now in force
 * Knobs (services; default):
 *   expire_every=N    Navixy, OpenPanel; 0 (off). End every session after each N authenticated
 *                     requests (the Nth still succeeds): 500 requests at 100 -> 5 expiries.
 *   password=X        all panels (aliases: api_secret for Panelica, token for Navirec).
 *   jwt_ttl=S         OpenPanel; 3600. exp = iat + S (0: tokens are born expired).
 *   ratelimit=N       all; 0. The next N counted requests get the panel's rate-limit answer
 *                     (Navixy code 15 / HTTP 429; others 429 with Retry-After and their body).
 *   retry_after=S     all; 1 (Navixy 0: Navixy sends Retry-After only when S > 0).
 *   login_delay_ms=D  Navixy, OpenPanel; 0. Login answers wait D ms on a timer.
 *   fail_code=C, fail_count=K  Navixy; 0, 1. The next K authenticated requests get Navixy
 *                     error C with its HTTP status from the docs' table.
 *   ts_window=S, string_to_sign=T, reject_next=N, reject_code=C  Panelica; see fp_panelica.c.
 *   versions=A,B, vehicles=N, stream_n=N, stream_delay_ms=D  Navirec; see fp_navirec.c.
 * /_fake/stats: service, hits (requests outside /_fake/), logins, login_failures,
 * auth_failures (other requests refused for credentials) and auth_failure_reasons, expiries,
 * sessions (live), ratelimited, authed_since_expiry, last_path, last_request (method, uri, path,
 * query, headers as [name, value], body (first 64 KiB), body_len, plus per-panel notes),
 * times_ms (CLOCK_MONOTONIC ms of the last <= 1000 hits, oldest first), inflight (deferred
 * replies), and each panel's own counters.
 * The panels' own behaviour is described at the top of fp_<panel>.c; every service also answers
 * .../_leak/... with answers that echo a request's credentials (fp_leak.c).
 * --raw PORT is not an evhttp service: it writes scripted HTTP/1.1 bytes, badly behaved on
 * purpose, and has only /_fake/stats, /_fake/reset and /_fake/drop (see fp_raw.c). */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/util.h>
#include <openssl/rand.h>

#include "fp.h"

#define FP_METHODS                                                                                 \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |     \
     EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_PATCH)

static const char *const no_names[] = { NULL };

/* Indexed by enum fp_kind. */
static const struct fp_service_def fp_services[FP_NKINDS] = {
    { "echo", FP_ECHO, fp_echo_handle, fp_echo_ratelimited, NULL, 1, no_names, no_names },
    { "navixy", FP_NAVIXY, fp_navixy_handle, fp_navixy_ratelimited, "fake-navixy-pass", 0,
      fp_navixy_counters, fp_navixy_reasons },
    { "navixy-panel", FP_NAVIXY_PANEL, fp_navixy_handle, fp_navixy_ratelimited, "fake-panel-pass",
      0, fp_navixy_counters, fp_navixy_reasons },
    { "openpanel", FP_OPENPANEL, fp_openpanel_handle, fp_openpanel_ratelimited, "fake-op-pass", 1,
      fp_openpanel_counters, fp_openpanel_reasons },
    { "panelica", FP_PANELICA, fp_panelica_handle, fp_panelica_ratelimited,
      "sk_fake_panelica_secret", 1, fp_panelica_counters, fp_panelica_reasons },
    { "navirec", FP_NAVIREC, fp_navirec_handle, fp_navirec_ratelimited, "fake-navirec-token", 1,
      fp_navirec_counters, fp_navirec_reasons },
};

struct fp_ctx {
    struct event_base *base;
    struct event *sigterm, *sigint;
    struct fp_service services[FP_NKINDS];
    evutil_socket_t refuse_fd; /* -1 when --refuse was not given */
    struct fp_raw *raw;        /* NULL when --raw was not given */
    struct fp_op *ops;
};

struct fp_opts {
    const char *host;
    uint16_t ports[FP_NKINDS]; /* 0: service not requested */
    uint16_t refuse_port;      /* 0: no refusing port */
    uint16_t raw_port;         /* 0: no raw service */
};

/* ---- knobs ----------------------------------------------------------------------------------- */

struct knob_def {
    const char *name;
    bool is_str;
    size_t off;                  /* in struct fp_knobs */
    uint64_t max;                /* numbers; strings are at most FP_KNOB_STR_MAX bytes */
    unsigned kinds;              /* FP_K() of the services it applies to */
    int (*check)(const char *s); /* strings; NULL accepts any */
};

static int check_template(const char *s)
{
    return *s != '\0' ? 0 : -1;
}

#define KU(n, f, max, kinds)                                                                       \
    {                                                                                              \
        n, false, offsetof(struct fp_knobs, f), max, kinds, NULL                                   \
    }
#define KS(n, f, kinds, check)                                                                     \
    {                                                                                              \
        n, true, offsetof(struct fp_knobs, f), 0, kinds, check                                     \
    }
#define K_ALL (FP_K(FP_ECHO) | FP_K_PANELS)
#define K_NAVIXY (FP_K(FP_NAVIXY) | FP_K(FP_NAVIXY_PANEL))
#define DAY_S 86400
#define TEN_YEARS_S 315360000

static const struct knob_def knob_defs[] = {
    KU("expire_every", expire_every, UINT32_MAX, FP_K_SESSIONS),
    KS("password", password, FP_K_PANELS, NULL),
    KS("api_secret", password, FP_K(FP_PANELICA), NULL),
    KS("token", password, FP_K(FP_NAVIREC), NULL),
    KU("jwt_ttl", jwt_ttl, TEN_YEARS_S, FP_K(FP_OPENPANEL)),
    KU("ratelimit", ratelimit, UINT32_MAX, K_ALL),
    KU("retry_after", retry_after, DAY_S, K_ALL),
    KU("login_delay_ms", login_delay_ms, FP_DELAY_MAX_MS, FP_K_SESSIONS),
    KU("fail_code", fail_code, 999, K_NAVIXY),
    KU("fail_count", fail_count, UINT32_MAX, K_NAVIXY),
    KU("ts_window", ts_window, TEN_YEARS_S, FP_K(FP_PANELICA)),
    KS("string_to_sign", string_to_sign, FP_K(FP_PANELICA), check_template),
    KU("reject_next", reject_next, UINT32_MAX, FP_K(FP_PANELICA)),
    KS("reject_code", reject_code, FP_K(FP_PANELICA), fp_panelica_check_code),
    KS("versions", versions, FP_K(FP_NAVIREC), fp_navirec_check_versions),
    KU("vehicles", vehicles, 1000000, FP_K(FP_NAVIREC)),
    KU("stream_n", stream_n, FP_STREAM_MAX, FP_K(FP_NAVIREC)),
    KU("stream_delay_ms", stream_delay_ms, FP_DELAY_MAX_MS, FP_K(FP_NAVIREC)),
};

static const size_t knob_str_fields[] = {
    offsetof(struct fp_knobs, password),
    offsetof(struct fp_knobs, string_to_sign),
    offsetof(struct fp_knobs, reject_code),
    offsetof(struct fp_knobs, versions),
};

static uint64_t *knob_u64(struct fp_knobs *k, size_t off)
{
    return (uint64_t *)(void *)((char *)k + off);
}

static char **knob_str(struct fp_knobs *k, size_t off)
{
    return (char **)(void *)((char *)k + off);
}

static void knobs_free(struct fp_knobs *k)
{
    for (size_t i = 0; i < FP_ARRAY_LEN(knob_str_fields); i++) {
        free(*knob_str(k, knob_str_fields[i]));
        *knob_str(k, knob_str_fields[i]) = NULL;
    }
}

/* dst gets src's numbers and its own copies of src's strings. */
static int knobs_copy(struct fp_knobs *dst, const struct fp_knobs *src)
{
    int rc = 0;

    *dst = *src;
    for (size_t i = 0; i < FP_ARRAY_LEN(knob_str_fields); i++) {
        char **s = knob_str(dst, knob_str_fields[i]);
        if (*s != NULL && (*s = strdup(*s)) == NULL)
            rc = -1;
    }
    if (rc < 0)
        knobs_free(dst);
    return rc;
}

/* Defaults: see struct fp_knobs. On failure k holds nothing to free. */
static int knobs_default(struct fp_knobs *k, const struct fp_service_def *def)
{
    memset(k, 0, sizeof(*k));
    k->retry_after = def->retry_after;
    k->jwt_ttl = 3600;
    k->ts_window = 300;
    k->vehicles = 250;
    k->stream_n = 5;
    k->stream_delay_ms = 100;
    k->password = strdup(def->password != NULL ? def->password : "");
    k->string_to_sign = strdup("{timestamp}{method}{path}{body}");
    k->reject_code = strdup("INVALID_SIGNATURE");
    k->versions = strdup("1.33.0");
    if (k->password == NULL || k->string_to_sign == NULL || k->reject_code == NULL ||
        k->versions == NULL) {
        knobs_free(k);
        return -1;
    }
    return 0;
}

static json_t *knobs_json(struct fp_service *svc)
{
    json_t *root = json_object();
    unsigned bit = FP_K(svc->def->kind);

    for (size_t i = 0; root != NULL && i < FP_ARRAY_LEN(knob_defs); i++) {
        const struct knob_def *d = &knob_defs[i];
        json_t *v;

        if ((d->kinds & bit) == 0)
            continue;
        v = d->is_str ? fp_jstr0(*knob_str(&svc->knobs, d->off))
                      : json_integer((json_int_t)*knob_u64(&svc->knobs, d->off));
        if (json_object_set_new(root, d->name, v) < 0) {
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

struct knob_apply {
    struct fp_service *svc;
    struct fp_knobs k; /* the candidate, committed only when every parameter is good */
    bool fail_code_set, fail_count_set;
    char err[160];
};

static int knob_pair(const char *kp, size_t kn, const char *vp, size_t vn, void *arg)
{
    struct knob_apply *a = arg;
    const struct knob_def *d = NULL;
    size_t klen, vlen;
    char *key = fp_urldecode(kp, kn, &klen), *val = NULL;
    int rc = 1;

    if (key == NULL || (val = fp_urldecode(vp != NULL ? vp : "", vn, &vlen)) == NULL) {
        free(key);
        snprintf(a->err, sizeof(a->err), "out of memory");
        return -1;
    }
    for (size_t i = 0; i < FP_ARRAY_LEN(knob_defs); i++) {
        if (strcmp(knob_defs[i].name, key) == 0 && klen == strlen(key))
            d = &knob_defs[i];
    }
    if (d == NULL) {
        snprintf(a->err, sizeof(a->err), "unknown knob '%.40s'", key);
    } else if ((d->kinds & FP_K(a->svc->def->kind)) == 0) {
        snprintf(a->err, sizeof(a->err), "knob '%s' does not apply to --%s", d->name,
                 a->svc->def->name);
    } else if (d->is_str) {
        char **slot = knob_str(&a->k, d->off), *copy;
        if (vlen != strlen(val) || vlen > FP_KNOB_STR_MAX ||
            (d->check != NULL && d->check(val) != 0)) {
            snprintf(a->err, sizeof(a->err), "bad value for knob '%s'", d->name);
        } else if ((copy = strdup(val)) == NULL) {
            snprintf(a->err, sizeof(a->err), "out of memory");
        } else {
            free(*slot);
            *slot = copy;
            rc = 0;
        }
    } else if (vlen != strlen(val) || fp_parse_u64(val, d->max, knob_u64(&a->k, d->off)) < 0) {
        snprintf(a->err, sizeof(a->err), "bad value for knob '%s' (0-%llu)", d->name,
                 (unsigned long long)d->max);
    } else {
        a->fail_code_set |= strcmp(d->name, "fail_code") == 0;
        a->fail_count_set |= strcmp(d->name, "fail_count") == 0;
        rc = 0;
    }
    free(key);
    free(val);
    return rc;
}

/* ---- /_fake/ endpoints ----------------------------------------------------------------------- */

typedef int fake_fn(struct fp_service *svc, struct evhttp_request *req);

static int fake_stats(struct fp_service *svc, struct evhttp_request *req)
{
    json_t *times = json_array(), *root;
    size_t first = (svc->times_next + FP_TIMES - svc->ntimes) % FP_TIMES;

    for (size_t i = 0; times != NULL && i < svc->ntimes; i++) {
        if (json_array_append_new(
                times, json_integer((json_int_t)svc->times[(first + i) % FP_TIMES])) < 0) {
            json_decref(times);
            times = NULL;
        }
    }
    root = json_pack("{s:s, s:I, s:I, s:I, s:I, s:O, s:I, s:I, s:I, s:I, s:s?, s:O?, s:o, s:I}",
                     "service", svc->def->name, "hits", (json_int_t)svc->hits, "logins",
                     (json_int_t)svc->logins, "login_failures", (json_int_t)svc->login_failures,
                     "auth_failures", (json_int_t)svc->auth_failures, "auth_failure_reasons",
                     svc->reasons, "expiries", (json_int_t)svc->expiries, "sessions",
                     (json_int_t)svc->sessions.nlive, "ratelimited", (json_int_t)svc->ratelimited,
                     "authed_since_expiry", (json_int_t)svc->authed, "last_path", svc->last_path,
                     "last_request", svc->last_request, "times_ms", times, "inflight",
                     (json_int_t)svc->inflight);
    if (root == NULL || json_object_update(root, svc->counters) < 0) {
        json_decref(root);
        return -1;
    }
    return fp_reply_new(req, HTTP_OK, root);
}

static int counters_init(struct fp_service *svc)
{
    const char *const *names[2] = { svc->def->counters, svc->def->reasons };
    json_t *objs[2] = { svc->counters, svc->reasons };

    for (size_t i = 0; i < 2; i++) {
        json_object_clear(objs[i]);
        for (const char *const *n = names[i]; *n != NULL; n++) {
            if (json_object_set_new(objs[i], *n, json_integer(0)) < 0)
                return -1;
        }
    }
    return 0;
}

/* Counters, sessions (unless keep_sessions) and knobs; inflight is a gauge of live replies, so
 * it survives. */
static int service_reset(struct fp_service *svc, bool keep_sessions)
{
    struct fp_knobs k;

    if (knobs_default(&k, svc->def) < 0)
        return -1;
    knobs_free(&svc->knobs);
    svc->knobs = k;
    svc->hits = svc->logins = svc->login_failures = svc->auth_failures = 0;
    svc->expiries = svc->ratelimited = svc->authed = 0;
    free(svc->last_path);
    svc->last_path = NULL;
    json_decref(svc->last_request);
    svc->last_request = NULL;
    svc->ntimes = svc->times_next = 0;
    if (!keep_sessions)
        svc->sessions.nlive = svc->sessions.nended = svc->sessions.ended_next = 0;
    return counters_init(svc);
}

static int fake_reset(struct fp_service *svc, struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    const char *q = uri != NULL ? strchr(uri, '?') : NULL;
    if (service_reset(svc, q != NULL && strcmp(q + 1, "sessions=keep") == 0) < 0)
        return -1;
    return fp_reply_text(req, HTTP_OK, "{\"ok\":true}");
}

static int fake_expire(struct fp_service *svc, struct evhttp_request *req)
{
    size_t n = fp_sessions_end_all(svc);

    if (FP_K(svc->def->kind) & FP_K_SESSIONS)
        svc->expiries++;
    return fp_reply_new(req, HTTP_OK, json_pack("{s:b, s:I}", "ok", 1, "ended", (json_int_t)n));
}

static int fake_config(struct fp_service *svc, struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct knob_apply a;
    int rc;

    memset(&a, 0, sizeof(a));
    a.svc = svc;
    if (knobs_copy(&a.k, &svc->knobs) < 0)
        return -1;
    rc = q != NULL ? fp_form_each(q, strlen(q), knob_pair, &a) : 0;
    if (rc != 0) {
        knobs_free(&a.k);
        if (rc < 0)
            return -1;
        fp_reply_error(req, HTTP_BADREQUEST, a.err);
        return 0;
    }
    if (a.fail_code_set && !a.fail_count_set)
        a.k.fail_count = 1;
    knobs_free(&svc->knobs);
    svc->knobs = a.k;
    return fp_reply_new(req, HTTP_OK, knobs_json(svc));
}

static const struct {
    const char *suffix;
    fake_fn *fn;
} fake_routes[] = {
    { "/_fake/stats", fake_stats },
    { "/_fake/reset", fake_reset },
    { "/_fake/expire", fake_expire },
    { "/_fake/config", fake_config },
};

static void fake_request(struct fp_service *svc, struct evhttp_request *req, const char *path)
{
    for (size_t i = 0; i < FP_ARRAY_LEN(fake_routes); i++) {
        if (fp_ends_with(path, fake_routes[i].suffix)) {
            if (fake_routes[i].fn(svc, req) < 0)
                fp_reply_error(req, HTTP_INTERNAL, "internal_error");
            return;
        }
    }
    fp_reply_error(req, HTTP_NOTFOUND, "unknown /_fake/ endpoint");
}

/* ---- deferred replies ------------------------------------------------------------------------ */

void fp_op_free(struct fp_op *op)
{
    struct fp_ctx *ctx = op->svc->ctx;

    evhttp_connection_set_closecb(op->evcon, NULL, NULL);
    if (op->timer != NULL)
        event_free(op->timer);
    if (op->buf != NULL)
        evbuffer_free(op->buf);
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        ctx->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->svc->inflight--;
    free(op);
}

/* evhttp is freeing the connection under a deferred reply: the client left, a write failed, a
 * timeout hit, or shutdown. On EOF or timeout evhttp first detaches the unfinished request from
 * the connection and then nobody but us will free it. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct fp_op *op = arg;
    struct evhttp_request *req = op->req;

    (void)evcon;
    fp_op_free(op);
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

struct fp_op *fp_op_new(struct fp_service *svc, struct evhttp_request *req,
                        event_callback_fn on_timer)
{
    struct fp_op *op = calloc(1, sizeof(*op));

    if (op == NULL)
        return NULL;
    op->svc = svc;
    op->req = req;
    op->evcon = evhttp_request_get_connection(req);
    op->next = svc->ctx->ops;
    if (op->next != NULL)
        op->next->prev = op;
    svc->ctx->ops = op;
    svc->inflight++;
    evhttp_connection_set_closecb(op->evcon, on_conn_close, op);

    op->buf = evbuffer_new();
    if (on_timer != NULL)
        op->timer = evtimer_new(svc->ctx->base, on_timer, op);
    if (op->buf == NULL || (on_timer != NULL && op->timer == NULL)) {
        fp_op_free(op);
        return NULL;
    }
    return op;
}

/* op goes first: ending the reply can free the connection, which would call on_conn_close. */
void fp_op_finish(struct fp_op *op)
{
    struct evhttp_request *req = op->req;

    fp_op_free(op);
    evhttp_send_reply_end(req);
}

/* The client sees a truncated reply rather than a wrong one. */
void fp_op_abort(struct fp_op *op)
{
    struct evhttp_connection *evcon = op->evcon;

    fp_op_free(op);
    evhttp_connection_free(evcon);
}

/* evhttp stops reading once a request is in, so a client leaving before a delayed reply would go
 * unnoticed (and stay inflight) until the write. Read without a read callback, as evhttp itself
 * does while writing: EOF then reaches evhttp's event callback, which frees the connection. */
void fp_watch_close(struct fp_op *op)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(op->evcon);
    bufferevent_data_cb readcb, writecb;
    bufferevent_event_cb eventcb;
    void *cbarg;

    bufferevent_getcb(bev, &readcb, &writecb, &eventcb, &cbarg);
    bufferevent_setcb(bev, NULL, writecb, eventcb, cbarg);
    bufferevent_enable(bev, EV_READ);
}

static void stream_next(struct fp_op *op)
{
    if (op->done < op->total) {
        if (op->line(op) < 0) {
            fp_op_abort(op);
            return;
        }
        evhttp_send_reply_chunk(op->req, op->buf);
        /* evhttp leaves the chunk in place for HEAD, which has no body */
        evbuffer_drain(op->buf, evbuffer_get_length(op->buf));
        op->done++;
    }
    if (op->done == op->total)
        fp_op_finish(op);
    else if (evtimer_add(op->timer, &op->delay) < 0)
        fp_op_abort(op);
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stream_next(arg);
}

int fp_stream_start(struct fp_service *svc, struct evhttp_request *req, uint64_t total,
                    uint64_t delay_ms, const char *content_type, fp_line_fn *line, int variant)
{
    struct fp_op *op;

    if (fp_add_header(req, "Content-Type", content_type) < 0)
        return -1;
    if ((op = fp_op_new(svc, req, on_stream_timer)) == NULL)
        return -1;
    op->total = total;
    op->delay = fp_ms_to_tv(delay_ms);
    op->line = line;
    op->variant = variant;
    evhttp_send_reply_start(req, HTTP_OK, NULL);
    stream_next(op);
    return 0;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static const char *request_path(const struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    return path != NULL ? path : "";
}

/* On failure call holds nothing to free but what call_deinit frees. */
static int call_init(struct fp_call *c, struct evhttp_request *req, bool resumed)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    const char *uri_s = evhttp_request_get_uri(req);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n;

    memset(c, 0, sizeof(*c));
    c->req = req;
    c->cmd = evhttp_request_get_command(req);
    c->method = fp_method_name(c->cmd);
    c->raw_path = request_path(req);
    c->raw_uri = uri_s != NULL ? uri_s : "";
    c->query = q != NULL ? q : "";
    c->resumed = resumed;
    c->body_len = evbuffer_get_length(in);
    c->body = c->body_len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    /* no '+' decoding in a path; a decoded NUL ends it (strlen) */
    c->path = evhttp_uridecode(c->raw_path, 0, &n);
    return c->path != NULL && c->body != NULL ? 0 : -1;
}

static void run(struct fp_service *svc, struct evhttp_request *req, fp_call_fn *fn, bool resumed)
{
    struct fp_call call;

    if (call_init(&call, req, resumed) < 0 || fn(svc, &call) < 0)
        fp_reply_error(req, HTTP_INTERNAL, "internal_error");
    free(call.path);
}

static void on_login_timer(evutil_socket_t fd, short what, void *arg)
{
    struct fp_op *op = arg;
    struct fp_service *svc = op->svc;
    struct evhttp_request *req = op->req;

    (void)fd;
    (void)what;
    fp_op_free(op);
    run(svc, req, svc->def->handle, true);
}

int fp_login_delay(struct fp_service *svc, struct fp_call *call)
{
    struct fp_op *op;

    if (call->resumed || svc->knobs.login_delay_ms == 0)
        return 0;
    if ((op = fp_op_new(svc, call->req, on_login_timer)) == NULL)
        return -1;
    op->delay = fp_ms_to_tv(svc->knobs.login_delay_ms);
    if (evtimer_add(op->timer, &op->delay) < 0) {
        fp_op_free(op);
        return -1;
    }
    fp_watch_close(op);
    return 1;
}

static void count_hit(struct fp_service *svc, struct evhttp_request *req, const char *path)
{
    svc->hits++;
    free(svc->last_path);
    svc->last_path = strdup(path); /* NULL on OOM: stats then shows null */
    json_decref(svc->last_request);
    svc->last_request = fp_request_json(req, FP_LAST_BODY_MAX);
    svc->times[svc->times_next] = fp_now_ms();
    svc->times_next = (svc->times_next + 1) % FP_TIMES;
    if (svc->ntimes < FP_TIMES)
        svc->ntimes++;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct fp_service *svc = arg;
    const char *path = request_path(req);

    if (strstr(path, "/_fake/") != NULL) {
        fake_request(svc, req, path);
        return;
    }
    count_hit(svc, req, path);
    if (strstr(path, "/_leak/") != NULL) {
        run(svc, req, fp_leak_handle, false);
        return;
    }
    if (svc->knobs.ratelimit > 0) {
        svc->knobs.ratelimit--;
        svc->ratelimited++;
        run(svc, req, svc->def->ratelimited, false);
        return;
    }
    run(svc, req, svc->def->handle, false);
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Numeric addresses only: a name would need a blocking DNS lookup. */
static int host_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *ss,
                         socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (evutil_inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
        return 0;
    }
    if (evutil_inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

/* Bound but never listening: the kernel answers every SYN with RST, so connect() fails with
 * ECONNREFUSED, and holding the port keeps anything else from taking it. No SO_REUSEADDR: on
 * Linux two non-listening sockets that both set it may share a port. */
static evutil_socket_t bind_refuse(const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    evutil_socket_t fd;

    if (host_sockaddr(host, port, &ss, &len) < 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        evutil_closesocket(fd);
        return -1;
    }
    return fd;
}

/* State every service has, started or not, so ctx_deinit can treat them alike. */
static int service_init(struct fp_service *svc, struct fp_ctx *ctx, const struct fp_opts *o,
                        size_t i)
{
    bool v6 = strchr(o->host, ':') != NULL;
    int n;

    svc->def = &fp_services[i];
    svc->ctx = ctx;
    svc->port = o->ports[i];
    n = snprintf(svc->base_url, sizeof(svc->base_url), v6 ? "http://[%s]:%u" : "http://%s:%u",
                 o->host, (unsigned)svc->port);
    if (n < 0 || (size_t)n >= sizeof(svc->base_url))
        return -1;
    svc->counters = json_object();
    svc->reasons = json_object();
    svc->sessions.live = calloc(FP_MAX_SESSIONS, sizeof(svc->sessions.live[0]));
    svc->sessions.ended = calloc(FP_MAX_SESSIONS, sizeof(svc->sessions.ended[0]));
    if (svc->counters == NULL || svc->reasons == NULL || svc->sessions.live == NULL ||
        svc->sessions.ended == NULL || RAND_bytes(svc->jwt_key, sizeof(svc->jwt_key)) != 1)
        return -1;
    return service_reset(svc, false);
}

static void service_deinit(struct fp_service *svc)
{
    if (svc->http != NULL)
        evhttp_free(svc->http);
    knobs_free(&svc->knobs);
    free(svc->last_path);
    json_decref(svc->last_request);
    json_decref(svc->counters);
    json_decref(svc->reasons);
    free(svc->sessions.live);
    free(svc->sessions.ended);
}

static int service_start(struct fp_service *svc, const char *host)
{
    svc->http = evhttp_new(svc->ctx->base);
    if (svc->http == NULL)
        return -1;
    evhttp_set_allowed_methods(svc->http, FP_METHODS);
    evhttp_set_max_body_size(svc->http, FP_MAX_BODY);
    evhttp_set_max_headers_size(svc->http, FP_MAX_HEADERS);
    evhttp_set_gencb(svc->http, on_request, svc);
    if (evhttp_bind_socket_with_handle(svc->http, host, svc->port) == NULL) {
        fprintf(stderr, "fakepanels: --%s: cannot listen on %s:%u: %s\n", svc->def->name, host,
                (unsigned)svc->port, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct fp_ctx *ctx = arg;

    (void)sig;
    (void)what;
    event_base_loopbreak(ctx->base);
}

static int signals_start(struct fp_ctx *ctx)
{
    ctx->sigterm = evsignal_new(ctx->base, SIGTERM, on_signal, ctx);
    ctx->sigint = evsignal_new(ctx->base, SIGINT, on_signal, ctx);
    if (ctx->sigterm == NULL || ctx->sigint == NULL || evsignal_add(ctx->sigterm, NULL) < 0 ||
        evsignal_add(ctx->sigint, NULL) < 0)
        return -1;
    return 0;
}

static int raw_start(struct fp_ctx *ctx, const struct fp_opts *o)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (host_sockaddr(o->host, o->raw_port, &ss, &len) < 0 ||
        (ctx->raw = fp_raw_new(ctx->base, (struct sockaddr *)&ss, (int)len)) == NULL) {
        fprintf(stderr, "fakepanels: --raw: cannot listen on %s:%u: %s\n", o->host,
                (unsigned)o->raw_port, strerror(errno));
        return -1;
    }
    return 0;
}

/* On failure the caller still runs ctx_deinit. */
static int ctx_init(struct fp_ctx *ctx, const struct fp_opts *o)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->refuse_fd = -1;
    ctx->base = event_base_new();
    if (ctx->base == NULL || signals_start(ctx) < 0) {
        fprintf(stderr, "fakepanels: out of memory\n");
        return -1;
    }
    if (o->refuse_port != 0 && (ctx->refuse_fd = bind_refuse(o->host, o->refuse_port)) < 0) {
        fprintf(stderr, "fakepanels: --refuse: cannot bind %s:%u: %s\n", o->host,
                (unsigned)o->refuse_port, strerror(errno));
        return -1;
    }
    if (o->raw_port != 0 && raw_start(ctx, o) < 0)
        return -1;
    for (size_t i = 0; i < FP_NKINDS; i++) {
        struct fp_service *svc = &ctx->services[i];
        if (service_init(svc, ctx, o, i) < 0) {
            fprintf(stderr, "fakepanels: out of memory\n");
            return -1;
        }
        if (svc->port != 0 && service_start(svc, o->host) < 0)
            return -1;
    }
    return 0;
}

/* Ops go first (they point into connections), events before the base. */
static void ctx_deinit(struct fp_ctx *ctx)
{
    while (ctx->ops != NULL)
        fp_op_free(ctx->ops); /* evhttp_free below frees their requests with the connections */
    for (size_t i = 0; i < FP_NKINDS; i++)
        service_deinit(&ctx->services[i]);
    fp_raw_free(ctx->raw);
    if (ctx->refuse_fd >= 0)
        evutil_closesocket(ctx->refuse_fd);
    if (ctx->sigterm != NULL)
        event_free(ctx->sigterm);
    if (ctx->sigint != NULL)
        event_free(ctx->sigint);
    if (ctx->base != NULL)
        event_base_free(ctx->base);
}

/* ---- command line ---------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: fakepanels [--host ADDR] [--refuse PORT] [--raw PORT]");
    for (size_t i = 0; i < FP_NKINDS; i++)
        fprintf(f, " [--%s PORT]", fp_services[i].name);
    fprintf(f, "\n  ADDR is a numeric IPv4/IPv6 address (default 127.0.0.1); at least one PORT.\n"
               "  Prints \"ready\" once every port is bound; exits 0 on SIGTERM/SIGINT.\n"
               "  Each service has GET /_fake/stats and POST /_fake/reset, /_fake/expire,\n"
               "  /_fake/config?KNOB=VALUE (see the top of tests/fakepanels/fakepanels.c).\n");
}

/* Where the value of option name goes, NULL if unknown. */
static uint16_t *port_slot(struct fp_opts *o, const char *name)
{
    if (strncmp(name, "--", 2) != 0)
        return NULL;
    if (strcmp(name + 2, "refuse") == 0)
        return &o->refuse_port;
    if (strcmp(name + 2, "raw") == 0)
        return &o->raw_port;
    for (size_t i = 0; i < FP_NKINDS; i++) {
        if (strcmp(name + 2, fp_services[i].name) == 0)
            return &o->ports[i];
    }
    return NULL;
}

static int parse_port(const char *s, uint16_t *out)
{
    uint64_t v;

    if (fp_parse_u64(s, 65535, &v) < 0 || v == 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int parse_opt(struct fp_opts *o, const char *name, const char *val)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t *slot;

    if (strcmp(name, "--host") == 0) {
        if (host_sockaddr(val, 0, &ss, &len) < 0) {
            fprintf(stderr, "fakepanels: --host: '%s' is not a numeric IP address\n", val);
            return -1;
        }
        o->host = val;
        return 0;
    }
    if ((slot = port_slot(o, name)) == NULL) {
        fprintf(stderr, "fakepanels: unknown option '%s'\n", name);
        return -1;
    }
    if (*slot != 0) {
        fprintf(stderr, "fakepanels: %s given twice\n", name);
        return -1;
    }
    if (parse_port(val, slot) < 0) {
        fprintf(stderr, "fakepanels: %s: bad port '%s' (1-65535)\n", name, val);
        return -1;
    }
    return 0;
}

static bool any_port(const struct fp_opts *o)
{
    for (size_t i = 0; i < FP_NKINDS; i++) {
        if (o->ports[i] != 0)
            return true;
    }
    return o->refuse_port != 0 || o->raw_port != 0;
}

/* 0: run; 1: help was printed; -1: bad arguments, already reported. */
static int parse_args(int argc, char **argv, struct fp_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fakepanels: %s needs a value\n", argv[i]);
            return -1;
        }
        if (parse_opt(o, argv[i], argv[i + 1]) < 0)
            return -1;
    }
    if (!any_port(o)) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct fp_opts opts;
    struct fp_ctx ctx;
    int rc = parse_args(argc, argv, &opts);

    if (rc != 0)
        return rc > 0 ? 0 : 2;
    /* a client that leaves mid-reply must turn into EPIPE on write, not kill the process */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return 1;
    rc = 1;
    if (ctx_init(&ctx, &opts) == 0 && puts("ready") != EOF && fflush(stdout) == 0 &&
        event_base_dispatch(ctx.base) == 0)
        rc = 0;
    ctx_deinit(&ctx);
    libevent_global_shutdown();
    return rc;
}
