/* auth.c -- single-flight logins, session generations, backoff, waiter queues. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "curlev.h"
#include "envelope.h"
#include "metrics.h"
#include "redact.h"
#include "util.h"

#define PG_LOGIN_BODY_MAX (64 * 1024)
#define PG_BACKOFF_FIRST_MS 5000u
#define PG_BACKOFF_MAX_MS 300000u

struct pg_auth_rt {
    struct pg_xfer x; /* first: the login transfer's CURLOPT_PRIVATE */
    struct pg_conf *conf;
    const struct pg_upstream *up;
    struct pg_worker *w; /* the worker whose multi runs the login */
    struct pg_session sess;
    uint64_t gen; /* bumped by every successful login */
    uint64_t logins;
    uint64_t login_start_ms; /* when the last login started: relogins are throttled from it */
    bool logging_in;
    CURL *easy;
    struct curl_slist hdrs[3];
    char ctype[128];
    struct pg_login_req lreq;
    char *url;
    char *rbuf; /* the login answer, at most PG_LOGIN_BODY_MAX */
    size_t rlen;
    bool rbig;
    uint64_t backoff_ms, retry_at_ms;
    struct pg_err last_err;
    struct pg_auth_wait *head, *tail;
};

static void rt_free(void *vrt)
{
    struct pg_auth_rt *rt = vrt;
    if (!rt)
        return;
    /* waiters hold a reference to the snapshot, so none can be queued when it dies */
    if (rt->easy) {
        if (rt->logging_in)
            pg_curlev_remove(rt->w->curl, rt->easy);
        curl_easy_cleanup(rt->easy);
    }
    OPENSSL_cleanse(&rt->sess, sizeof rt->sess);
    OPENSSL_cleanse(&rt->lreq, sizeof rt->lreq);
    free(rt->url);
    free(rt->rbuf);
    free(rt);
}

static struct pg_auth_rt *rt_get(struct pg_worker *w, struct pg_conf *conf, int up)
{
    struct pg_upstream *u = &conf->upstreams[up];
    if (u->rt)
        return u->rt;
    struct pg_auth_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return NULL;
    rt->conf = conf;
    rt->up = u;
    rt->w = w;
    u->rt = rt;
    u->rt_free = rt_free;
    return rt;
}

static void push(struct pg_auth_rt *rt, struct pg_auth_wait *wt)
{
    wt->rt = rt;
    wt->next = NULL;
    wt->prev = rt->tail;
    if (rt->tail)
        rt->tail->next = wt;
    else
        rt->head = wt;
    rt->tail = wt;
}

void pg_auth_cancel(struct pg_auth_wait *wt)
{
    struct pg_auth_rt *rt = wt->rt;
    if (!rt)
        return;
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        rt->head = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    else
        rt->tail = wt->prev;
    wt->rt = NULL;
    wt->prev = wt->next = NULL;
}

static size_t on_login_body(char *p, size_t size, size_t n, void *arg)
{
    struct pg_auth_rt *rt = arg;
    size_t len = size * n;
    if (rt->rlen + len > PG_LOGIN_BODY_MAX) {
        rt->rbig = true;
        return 0;
    }
    memcpy(rt->rbuf + rt->rlen, p, len);
    rt->rlen += len;
    return len;
}

/* The adapter's secrets and rt's session (rt may be NULL: no session yet). */
static size_t secrets(const struct pg_upstream *u, const struct pg_auth_rt *rt, struct pg_span *out,
                      size_t cap)
{
    if (!u->auth || !u->auth->secrets)
        return 0;
    const struct pg_session *s = rt && rt->sess.token_len ? &rt->sess : NULL;
    return u->auth->secrets(u->auth_state, s, out, cap);
}

size_t pg_auth_secrets(const struct pg_conf *conf, int up, struct pg_span *out, size_t cap)
{
    const struct pg_upstream *u = &conf->upstreams[up];
    return secrets(u, u->rt, out, cap);
}

static void fail_msg(const struct pg_auth_rt *rt, struct pg_err *err, const char *what)
{
    err->code = PG_E_UPSTREAM_AUTH_FAILED;
    int k = snprintf(err->msg, sizeof err->msg, "%s %s", rt->up->name, what);
    if (k < 0)
        err->msg[0] = '\0';
}

/* Wake every waiter with the login's outcome. The snapshot is held across the callbacks: a
 * waiter that finishes its request may drop the last other reference. */
static void wake(struct pg_auth_rt *rt, bool ok, const struct pg_err *err)
{
    struct pg_conf *conf = rt->conf;
    pg_conf_ref(conf);
    struct pg_auth_wait *wt = rt->head;
    rt->head = rt->tail = NULL;
    while (wt) {
        struct pg_auth_wait *next = wt->next;
        wt->rt = NULL;
        wt->prev = wt->next = NULL;
        wt->cb(wt, ok, err);
        wt = next;
    }
    pg_conf_unref(conf);
}

static void login_done(CURL *e, CURLcode res, void *priv)
{
    struct pg_auth_rt *rt = priv;
    struct pg_err err;
    memset(&err, 0, sizeof err);
    pg_curlev_remove(rt->w->curl, e);
    rt->logging_in = false;
    OPENSSL_cleanse(rt->lreq.body, sizeof rt->lreq.body);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int rc = -1;
    if (res != CURLE_OK) {
        fail_msg(rt, &err,
                 rt->rbig ? "sent an oversized login answer" : "could not be reached for a login");
    } else {
        const char *ct = NULL;
        curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
        /* the answer may echo the login body (the password) or the old session: the plugin
         * copies its error text from a redacted copy, cut only after redaction */
        struct pg_span sec[PG_REDACT_MAX];
        size_t nsec = secrets(rt->up, rt, sec, PG_REDACT_MAX);
        char *red = NULL;
        size_t redn = 0;
        bool oom = pg_redact_alloc(sec, nsec, rt->rbuf, rt->rlen, &red, &redn) != 0;
        /* out of memory: judged on no answer at all rather than on an unredacted one */
        struct pg_in_resp resp = { .status = (int)status,
                                   .body = oom   ? NULL
                                           : red ? red
                                                 : rt->rbuf,
                                   .body_len = oom   ? 0
                                               : red ? redn
                                                     : rt->rlen,
                                   .content_type = ct,
                                   .content_type_len = ct ? strlen(ct) : 0 };
        struct pg_session s;
        memset(&s, 0, sizeof s);
        rc = rt->up->auth->parse_login(rt->up->auth_state, &resp, &s, pg_now_ms(),
                                       (uint64_t)time(NULL), &err);
        if (rc == 0 && s.token_len > 0 && s.token_len < sizeof s.token) {
            rt->sess = s;
            rt->gen++;
            rt->backoff_ms = 0;
        } else {
            rc = -1;
            if (!err.msg[0])
                fail_msg(rt, &err, "rejected the gateway's credentials");
        }
        OPENSSL_cleanse(&s, sizeof s);
        if (red) {
            OPENSSL_cleanse(red, redn);
            free(red);
        }
    }
    OPENSSL_cleanse(rt->rbuf, rt->rlen);
    pg_metrics_login(rt->w->metrics, rt->up->name, rc == 0);
    if (rc == 0) {
        pg_log(PG_LOG_INFO, "upstream %s: logged in", rt->up->name);
        wake(rt, true, NULL);
        return;
    }
    err.code = PG_E_UPSTREAM_AUTH_FAILED;
    err.upstream_status = (int)status;
    rt->backoff_ms = rt->backoff_ms ? rt->backoff_ms * 2 : PG_BACKOFF_FIRST_MS;
    if (rt->backoff_ms > PG_BACKOFF_MAX_MS)
        rt->backoff_ms = PG_BACKOFF_MAX_MS;
    rt->retry_at_ms = pg_now_ms() + rt->backoff_ms;
    rt->last_err = err;
    pg_log(PG_LOG_WARN, "upstream %s: login failed (HTTP %ld%s%s): %s; next attempt in %llu s",
           rt->up->name, status, err.upstream_code[0] ? ", code " : "", err.upstream_code, err.msg,
           (unsigned long long)(rt->backoff_ms / 1000));
    wake(rt, false, &err);
}

static int start_login(struct pg_auth_rt *rt)
{
    const struct pg_upstream *up = rt->up;
    memset(&rt->lreq, 0, sizeof rt->lreq);
    if (up->auth->build_login(up->auth_state, &rt->lreq) || !rt->lreq.path ||
        rt->lreq.body_len > sizeof rt->lreq.body)
        return -1;
    if (!rt->easy && !(rt->easy = curl_easy_init()))
        return -1;
    if (!rt->rbuf && !(rt->rbuf = malloc(PG_LOGIN_BODY_MAX)))
        return -1;
    size_t un = up->url_len + strlen(rt->lreq.path) + 1;
    char *url = realloc(rt->url, un);
    if (!url)
        return -1;
    rt->url = url;
    memcpy(url, up->url, up->url_len);
    memcpy(url + up->url_len, rt->lreq.path, un - up->url_len);
    int k = snprintf(rt->ctype, sizeof rt->ctype, "Content-Type: %s",
                     rt->lreq.content_type ? rt->lreq.content_type : "application/json");
    if (k < 0 || (size_t)k >= sizeof rt->ctype)
        return -1;
    rt->hdrs[0] = (struct curl_slist){ rt->ctype, &rt->hdrs[1] };
    rt->hdrs[1] = (struct curl_slist){ (char *)"Expect:", &rt->hdrs[2] };
    rt->hdrs[2] = (struct curl_slist){ (char *)"Accept: application/json", NULL };
    rt->rlen = 0;
    rt->rbig = false;
    rt->x.done = login_done;
    CURL *e = rt->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &rt->x);
    curl_easy_setopt(e, CURLOPT_URL, rt->url);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, &rt->hdrs[0]);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rt->lreq.body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, rt->lreq.body);
    if (rt->lreq.method && strcmp(rt->lreq.method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rt->lreq.method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_login_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, rt);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)up->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)up->timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, up->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, up->tls_verify ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_CAINFO, up->tls_ca_file);
    if (pg_curlev_add(rt->w->curl, e))
        return -1;
    rt->logging_in = true;
    rt->logins++;
    rt->login_start_ms = pg_now_ms();
    return 0;
}

enum pg_auth_state pg_auth_acquire(struct pg_worker *w, struct pg_conf *conf, int up,
                                   struct pg_auth_wait *wt, const struct pg_session **s,
                                   uint64_t *gen, struct pg_err *err)
{
    const struct pg_upstream *u = &conf->upstreams[up];
    *s = NULL;
    *gen = 0;
    if (!u->auth || !u->auth->build_login)
        return PG_AUTH_READY;
    struct pg_auth_rt *rt = rt_get(w, conf, up);
    if (!rt) {
        memset(err, 0, sizeof *err);
        err->code = PG_E_INTERNAL;
        return PG_AUTH_FAILED;
    }
    uint64_t now = pg_now_ms();
    if (!rt->logging_in && rt->sess.token_len &&
        (!rt->sess.refresh_at_ms || now < rt->sess.refresh_at_ms)) {
        *s = &rt->sess;
        *gen = rt->gen;
        return PG_AUTH_READY;
    }
    if (!rt->logging_in && now < rt->retry_at_ms) {
        *err = rt->last_err;
        return PG_AUTH_FAILED;
    }
    if (!rt->logging_in && start_login(rt)) {
        memset(err, 0, sizeof *err);
        fail_msg(rt, err, "login could not be started");
        return PG_AUTH_FAILED;
    }
    push(rt, wt);
    return PG_AUTH_WAIT;
}

enum pg_auth_expiry pg_auth_expiry_judge(const struct pg_auth_view *v, uint64_t gen,
                                         uint64_t now_ms)
{
    /* a newer session, a login under way, or the session forgotten by another request refused
     * with the same generation (which started the login or met the throttle): nothing new */
    if (v->gen != gen || v->logging_in || !v->has_session)
        return PG_EXPIRY_REPLAY;
    /* now_ms before the start: a clock the caller got wrong; refusing is the safe side */
    if (v->logins &&
        (now_ms < v->login_start_ms || now_ms - v->login_start_ms < PG_AUTH_RELOGIN_MIN_MS))
        return PG_EXPIRY_REFUSED;
    return PG_EXPIRY_RELOGIN;
}

enum pg_auth_expiry pg_auth_expired(struct pg_conf *conf, int up, uint64_t gen, uint64_t now_ms)
{
    struct pg_auth_rt *rt = conf->upstreams[up].rt;
    if (!rt)
        return PG_EXPIRY_REPLAY;
    struct pg_auth_view v = { .gen = rt->gen,
                              .has_session = rt->sess.token_len > 0,
                              .logging_in = rt->logging_in,
                              .logins = rt->logins,
                              .login_start_ms = rt->login_start_ms };
    enum pg_auth_expiry e = pg_auth_expiry_judge(&v, gen, now_ms);
    if (e == PG_EXPIRY_RELOGIN) {
        OPENSSL_cleanse(&rt->sess, sizeof rt->sess);
        rt->sess.token_len = 0;
    }
    return e;
}

uint64_t pg_auth_logins(const struct pg_conf *conf, int up)
{
    const struct pg_auth_rt *rt = conf->upstreams[up].rt;
    return rt ? rt->logins : 0;
}
