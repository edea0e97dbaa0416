/* auth.c -- single-flight logins, session generations, backoff, waiter queues (a state machine
 * without I/O), and the curl login transfer that drives it. */
#include "auth.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "curlev.h"
#include "envelope.h"
#include "metrics.h"
#include "redact.h"
#include "redis.h"
#include "rsess.h"
#include "util.h"
#include "worker.h"

#define PG_LOGIN_BODY_MAX (64 * 1024)

/* An upstream's state machine and the login transfer that serves it. */
struct pg_auth_rt {
    struct pg_xfer x; /* first: the login transfer's CURLOPT_PRIVATE */
    struct pg_auth_sm sm;
    struct pg_conf *conf; /* a running login holds a reference */
    const struct pg_upstream *up;
    struct pg_worker *starter; /* the worker asking now: a login it starts runs on its loop */
    struct pg_worker *w;       /* the worker whose multi runs the login */
    struct pg_dlink wlink;     /* in w's running logins (w's thread only) */
    CURL *easy;
    struct curl_slist hdrs[3];
    char ctype[128];
    struct pg_login_req lreq;
    char *url;
    char *rbuf; /* the login answer, at most PG_LOGIN_BODY_MAX */
    size_t rlen;
    bool rbig;
    /* a redis store (SPEC 4.1): the session is fetched, or logged in for under a lock and
     * stored, or awaited while another instance logs in; all on rt->w's loop */
    bool curl_running;
    struct pg_rop *rop; /* the redis command awaited */
    struct event poll;  /* the next look for the session another instance is making */
    bool poll_set;
    uint64_t poll_until_ms, poll_ms;
    bool locked;                      /* we hold {prefix}:lock:<upstream> with lock_val */
    char lock_val[33];                /* random: only its holder releases it */
    unsigned char blob[PG_RSESS_MAX]; /* the sealed value of the session in use */
    size_t blob_n;                    /* 0: none came from or went to redis */
};

/* ---- the state machine (no I/O) ---- */

void pg_auth_sm_init(struct pg_auth_sm *sm, const char *name, pg_auth_start_fn *start,
                     pg_clock_fn *now_ms, void *now_arg)
{
    memset(sm, 0, sizeof *sm);
    sm->name = name;
    sm->start = start;
    sm->now_ms = now_ms;
    sm->now_arg = now_arg;
}

static void push(struct pg_auth_sm *sm, struct pg_auth_wait *wt)
{
    wt->sm = sm;
    pg_dlist_push_tail(&sm->waiters, &wt->link);
}

void pg_auth_sm_cancel(struct pg_auth_wait *wt)
{
    struct pg_auth_sm *sm = wt->sm;
    if (!sm)
        return;
    pg_dlist_remove(&sm->waiters, &wt->link);
    wt->sm = NULL;
}

static void fail_msg(const char *name, struct pg_err *err, const char *what)
{
    err->code = PG_E_UPSTREAM_AUTH_FAILED;
    int k = snprintf(err->msg, sizeof err->msg, "%s %s", name, what);
    if (k < 0)
        err->msg[0] = '\0';
}

/* Wake every waiter with the login's outcome, in arrival order. They are taken off sm first:
 * a callback that acquires again is queued anew, for the next login. */
static void wake(struct pg_auth_sm *sm, bool ok, const struct pg_err *err)
{
    struct pg_dlist woken = sm->waiters;
    sm->waiters.head = sm->waiters.tail = NULL;
    while (woken.head) {
        struct pg_auth_wait *wt = PG_CONTAINER_OF(woken.head, struct pg_auth_wait, link);
        pg_dlist_remove(&woken, &wt->link);
        wt->sm = NULL;
        wt->cb(wt, ok, err);
    }
}

enum pg_auth_state pg_auth_sm_acquire(struct pg_auth_sm *sm, struct pg_auth_wait *wt,
                                      const struct pg_session **s, uint64_t *gen,
                                      struct pg_err *err)
{
    uint64_t now = sm->now_ms(sm->now_arg);
    *s = NULL;
    *gen = 0;
    if (!sm->logging_in && sm->sess.token_len &&
        (!sm->sess.refresh_at_ms || now < sm->sess.refresh_at_ms)) {
        *s = &sm->sess;
        *gen = sm->gen;
        return PG_AUTH_READY;
    }
    if (!sm->logging_in && now < sm->retry_at_ms) {
        *err = sm->last_err;
        return PG_AUTH_FAILED;
    }
    if (!sm->logging_in) {
        if (sm->start(sm)) {
            memset(err, 0, sizeof *err);
            fail_msg(sm->name, err, "login could not be started");
            return PG_AUTH_FAILED;
        }
        sm->logging_in = true;
        sm->logins++;
        sm->prev_login_start_ms = sm->login_start_ms;
        sm->login_start_ms = now;
    }
    push(sm, wt);
    return PG_AUTH_WAIT;
}

void pg_auth_sm_done(struct pg_auth_sm *sm, const struct pg_session *s, const struct pg_err *err)
{
    sm->logging_in = false;
    if (s) {
        sm->sess = *s;
        sm->sess_at_ms = sm->now_ms(sm->now_arg);
        sm->gen++;
        sm->backoff_ms = 0;
        pg_log(PG_LOG_INFO, "upstream %s: %s", sm->name,
               sm->adopting ? "session from the shared store" : "logged in");
        wake(sm, true, NULL);
        return;
    }
    struct pg_err e = *err;
    sm->failures++;
    e.code = PG_E_UPSTREAM_AUTH_FAILED;
    if (!e.msg[0])
        fail_msg(sm->name, &e, "rejected the gateway's credentials");
    sm->backoff_ms = sm->backoff_ms ? sm->backoff_ms * 2 : PG_AUTH_BACKOFF_FIRST_MS;
    if (sm->backoff_ms > PG_AUTH_BACKOFF_MAX_MS)
        sm->backoff_ms = PG_AUTH_BACKOFF_MAX_MS;
    sm->retry_at_ms = sm->now_ms(sm->now_arg) + sm->backoff_ms;
    sm->last_err = e;
    pg_log(PG_LOG_WARN, "upstream %s: login failed (HTTP %d%s%s): %s; next attempt in %llu s",
           sm->name, e.upstream_status, e.upstream_code[0] ? ", code " : "", e.upstream_code, e.msg,
           (unsigned long long)(sm->backoff_ms / 1000));
    wake(sm, false, &e);
}

void pg_auth_sm_adopt(struct pg_auth_sm *sm, const struct pg_session *s)
{
    /* no login was sent: the relogin throttle keeps running from the last one that was */
    sm->logins--;
    sm->login_start_ms = sm->prev_login_start_ms;
    sm->adopting = true;
    pg_auth_sm_done(sm, s, NULL);
    sm->adopting = false;
}

enum pg_auth_expiry pg_auth_sm_expired(struct pg_auth_sm *sm, uint64_t gen, uint64_t now_ms)
{
    struct pg_auth_view v = { .gen = sm->gen,
                              .has_session = sm->sess.token_len > 0,
                              .logging_in = sm->logging_in,
                              .logins = sm->logins,
                              .login_start_ms = sm->login_start_ms };
    enum pg_auth_expiry e = pg_auth_expiry_judge(&v, gen, now_ms);
    if (e == PG_EXPIRY_RELOGIN) {
        OPENSSL_cleanse(&sm->sess, sizeof sm->sess);
        sm->sess.token_len = 0;
    }
    return e;
}

/* ---- the login transfer ---- */

static int start_login(struct pg_auth_sm *sm);

static void rt_free(void *vrt)
{
    struct pg_auth_rt *rt = vrt;
    if (!rt)
        return;
    /* waiters and a running login hold a reference to the snapshot, so neither exists when it
     * dies, on whichever thread let go last */
    if (rt->easy)
        curl_easy_cleanup(rt->easy);
    OPENSSL_cleanse(&rt->sm.sess, sizeof rt->sm.sess);
    OPENSSL_cleanse(&rt->lreq, sizeof rt->lreq);
    free(rt->url);
    free(rt->rbuf);
    free(rt);
}

/* hub.mu held: the first worker to ask makes it */
static struct pg_auth_rt *rt_get(struct pg_conf *conf, int up)
{
    struct pg_upstream *u = &conf->upstreams[up];
    if (u->rt)
        return u->rt;
    struct pg_auth_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return NULL;
    rt->conf = conf;
    rt->up = u;
    pg_auth_sm_init(&rt->sm, u->name, start_login, pg_clock_mono, NULL);
    u->rt = rt;
    u->rt_free = rt_free;
    return rt;
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

/* The adapter's secrets and session s's (NULL: none). */
static size_t secrets(const struct pg_upstream *u, const struct pg_session *s, struct pg_span *out,
                      size_t cap)
{
    if (!u->auth || !u->auth->secrets)
        return 0;
    return u->auth->secrets(u->auth_state, s && s->token_len ? s : NULL, out, cap);
}

size_t pg_auth_secrets(const struct pg_conf *conf, int up, const struct pg_session *s,
                       struct pg_span *out, size_t cap)
{
    return secrets(&conf->upstreams[up], s, out, cap);
}

/* *dst = *src, the token's bytes only (a session is 4 KiB, a token rarely 1). */
static void sess_copy(struct pg_session *dst, const struct pg_session *src)
{
    size_t n = src->token_len < sizeof src->token ? src->token_len : 0;
    memcpy(dst->token, src->token, n);
    dst->token[n] = '\0';
    dst->token_len = n;
    dst->refresh_at_ms = src->refresh_at_ms;
}

/* The login (or the fetch standing in for one) is over: off w's list, every waiter told, and
 * its snapshot reference dropped (which may free rt). */
static void login_finish(struct pg_auth_rt *rt, const struct pg_session *s,
                         const struct pg_err *err, bool adopted)
{
    struct pg_hub *hub = rt->w->hub;
    pg_dlist_remove(&rt->w->logins, &rt->wlink);
    pg_hub_lock(hub);
    if (adopted)
        pg_auth_sm_adopt(&rt->sm, s);
    else
        pg_auth_sm_done(&rt->sm, s, err);
    pg_hub_unlock(hub);
    pg_conf_unref(rt->conf);
}

/* ---- sessions shared through a redis store (SPEC 4.1, rsess.h) ---- */

static bool shared(const struct pg_auth_rt *rt)
{
    return rt->conf->store == PG_STORE_REDIS && rt->conf->has_session_key && rt->w->redis;
}

static void curl_or_fail(struct pg_auth_rt *rt);

/* Delete key in redis if it still holds value (n bytes): the lock only by its holder, a session
 * only if it is the one retired. Fire and forget. */
static void del_if(struct pg_redis *rd, const char *key, const char *value, size_t n)
{
    static const char src[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                              "return redis.call('DEL', KEYS[1]) end return 0";
    const char *argv[5] = { "EVAL", src, "1", key, value };
    const size_t lens[5] = { 4, sizeof src - 1, 1, strlen(key), n };
    if (!pg_redis_cmd(rd, 5, argv, lens, NULL, NULL))
        pg_redis_failed(rd);
}

/* Let the lock go if we hold it (only if it is still ours: it may have expired and been taken
 * by another instance since). */
static void release(struct pg_auth_rt *rt)
{
    char key[256];
    if (!rt->locked)
        return;
    rt->locked = false;
    if (pg_rsess_key(rt->conf, rt->up, "lock", key, sizeof key) == 0)
        del_if(rt->w->redis, key, rt->lock_val, strlen(rt->lock_val));
}

/* A sealed session from redis into *s, unless it is the one this process just retired. */
static int adopt(struct pg_auth_rt *rt, const redisReply *r, struct pg_session *s)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return -1;
    size_t n = r->len;
    if (n == rt->blob_n && memcmp(r->str, rt->blob, n) == 0)
        return -1;
    if (pg_rsess_open(rt->conf->session_key, rt->up->name, (const unsigned char *)r->str, n,
                      pg_now_ms(), pg_wall_ms(), s))
        return -1;
    pg_hub_lock(rt->w->hub); /* retire() reads it from any worker */
    memcpy(rt->blob, r->str, n);
    rt->blob_n = n;
    pg_hub_unlock(rt->w->hub);
    return 0;
}

/* A session from redis ended the wait: the waiters get it as if from a login. */
static bool took_shared(struct pg_auth_rt *rt, const redisReply *r)
{
    struct pg_session s;
    if (adopt(rt, r, &s))
        return false;
    login_finish(rt, &s, NULL, true);
    OPENSSL_cleanse(&s, sizeof s);
    return true;
}

static void on_polled(void *arg, const redisReply *r);

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pg_auth_rt *rt = arg;
    char key[256];
    (void)fd;
    (void)what;
    rt->poll_set = false;
    const char *argv[2] = { "GET", key };
    if (pg_rsess_key(rt->conf, rt->up, "s", key, sizeof key) ||
        !(rt->rop = pg_redis_cmd(rt->w->redis, 2, argv, NULL, on_polled, rt)))
        curl_or_fail(rt);
}

/* Look again in ms (another instance holds the lock and is logging in). */
static void poll_in(struct pg_auth_rt *rt, uint64_t ms)
{
    if (event_assign(&rt->poll, rt->w->base, -1, 0, on_poll_timer, rt) ||
        pg_event_add_ms(&rt->poll, ms)) {
        curl_or_fail(rt);
        return;
    }
    rt->poll_set = true;
}

static void on_polled(void *arg, const redisReply *r)
{
    struct pg_auth_rt *rt = arg;
    rt->rop = NULL;
    if (took_shared(rt, r))
        return;
    if (!r || pg_now_ms() >= rt->poll_until_ms) {
        curl_or_fail(rt); /* none appeared within the upstream's timeout: log in ourselves */
        return;
    }
    /* 25 ms doubling to 200: a login takes a round trip to the panel at least */
    rt->poll_ms = rt->poll_ms * 2 > 200 ? 200 : rt->poll_ms * 2;
    poll_in(rt, rt->poll_ms);
}

static void on_lock(void *arg, const redisReply *r)
{
    struct pg_auth_rt *rt = arg;
    rt->rop = NULL;
    if (r && r->type == REDIS_REPLY_NIL) { /* another instance is logging in: wait for it */
        rt->poll_until_ms = pg_now_ms() + rt->up->timeout_ms;
        rt->poll_ms = 25;
        poll_in(rt, rt->poll_ms);
        return;
    }
    rt->locked = r && r->type == REDIS_REPLY_STATUS;
    curl_or_fail(rt);
}

/* No stored session: take the lock and log in, or learn that someone else does. */
static void lock_or_login(struct pg_auth_rt *rt)
{
    uint8_t rnd[16];
    char key[256], px[24];
    if (RAND_bytes(rnd, sizeof rnd) != 1 ||
        pg_rsess_key(rt->conf, rt->up, "lock", key, sizeof key)) {
        curl_or_fail(rt);
        return;
    }
    pg_hex(rnd, sizeof rnd, rt->lock_val);
    /* held for the login's own deadline and a margin; released as soon as it is stored */
    snprintf(px, sizeof px, "%llu", (unsigned long long)rt->up->timeout_ms + 2000);
    const char *argv[6] = { "SET", key, rt->lock_val, "NX", "PX", px };
    if (!(rt->rop = pg_redis_cmd(rt->w->redis, 6, argv, NULL, on_lock, rt)))
        curl_or_fail(rt);
}

static void on_fetch(void *arg, const redisReply *r)
{
    struct pg_auth_rt *rt = arg;
    rt->rop = NULL;
    if (took_shared(rt, r))
        return;
    if (r)
        lock_or_login(rt);
    else
        curl_or_fail(rt); /* redis failed: this instance logs in alone */
}

/* Look for a stored session first (hub.mu held). 0 sent, -1 not. */
static int fetch(struct pg_auth_rt *rt)
{
    char key[256];
    const char *argv[2] = { "GET", key };
    if (pg_rsess_key(rt->conf, rt->up, "s", key, sizeof key))
        return -1;
    rt->rop = pg_redis_cmd(rt->w->redis, 2, argv, NULL, on_fetch, rt);
    return rt->rop ? 0 : -1;
}

/* Our login made s: store it sealed for the other instances. Fire and forget. */
static void store(struct pg_auth_rt *rt, const struct pg_session *s)
{
    char key[256], px[24];
    unsigned char v[PG_RSESS_MAX];
    uint64_t ttl;
    size_t n = 0;
    if (pg_rsess_key(rt->conf, rt->up, "s", key, sizeof key) ||
        pg_rsess_seal(rt->conf->session_key, rt->up->name, s, pg_now_ms(), pg_wall_ms(), v, &n,
                      &ttl))
        n = 0;
    pg_hub_lock(rt->w->hub); /* retire() reads it from any worker */
    memcpy(rt->blob, v, n);
    rt->blob_n = n;
    pg_hub_unlock(rt->w->hub);
    if (n == 0)
        return;
    snprintf(px, sizeof px, "%llu", (unsigned long long)(ttl ? ttl : 1));
    const char *argv[5] = { "SET", key, (const char *)rt->blob, "PX", px };
    const size_t lens[5] = { 3, strlen(key), n, 2, strlen(px) };
    if (!pg_redis_cmd(rt->w->redis, 5, argv, lens, NULL, NULL))
        pg_redis_failed(rt->w->redis);
}

/* An expiry verdict retired the session: for every instance, if redis still holds that one. */
static void retire(struct pg_worker *w, struct pg_auth_rt *rt)
{
    char key[256];
    if (rt->blob_n && w->redis && rt->conf->store == PG_STORE_REDIS &&
        pg_rsess_key(rt->conf, rt->up, "s", key, sizeof key) == 0)
        del_if(w->redis, key, (const char *)rt->blob, rt->blob_n);
}

static void login_done(CURL *e, CURLcode res, void *priv)
{
    struct pg_auth_rt *rt = priv;
    struct pg_hub *hub = rt->w->hub;
    struct pg_err err;
    memset(&err, 0, sizeof err);
    pg_curlev_remove(rt->w->curl, e);
    curl_easy_setopt(e, CURLOPT_SHARE, NULL); /* the snapshot may outlive this loop's share */
    rt->curl_running = false;
    OPENSSL_cleanse(rt->lreq.body, sizeof rt->lreq.body);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int rc = -1;
    struct pg_session s;
    memset(&s, 0, sizeof s);
    if (res != CURLE_OK) {
        fail_msg(rt->up->name, &err,
                 rt->rbig ? "sent an oversized login answer" : "could not be reached for a login");
    } else {
        const char *ct = NULL;
        curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
        /* the answer may echo the login body (the password) or the old session: the plugin
         * copies its error text from a redacted copy, cut only after redaction */
        struct pg_span sec[PG_REDACT_MAX];
        pg_hub_lock(hub); /* another worker may forget the session meanwhile */
        sess_copy(&s, &rt->sm.sess);
        pg_hub_unlock(hub);
        size_t nsec = secrets(rt->up, &s, sec, PG_REDACT_MAX);
        char *red = NULL;
        size_t redn = 0;
        bool oom = pg_redact_alloc(sec, nsec, rt->rbuf, rt->rlen, &red, &redn) != 0;
        OPENSSL_cleanse(&s, sizeof s);
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
        rc = rt->up->auth->parse_login(rt->up->auth_state, &resp, &s, rt->sm.now_ms(rt->sm.now_arg),
                                       (uint64_t)time(NULL), &err);
        if (rc != 0 || s.token_len == 0 || s.token_len >= sizeof s.token)
            rc = -1;
        if (red) {
            OPENSSL_cleanse(red, redn);
            free(red);
        }
    }
    OPENSSL_cleanse(rt->rbuf, rt->rlen);
    pg_metrics_login(rt->w->metrics, rt->up->name, rc == 0);
    err.upstream_status = (int)status;
    if (rc == 0 && shared(rt))
        store(rt, &s);
    release(rt);
    login_finish(rt, rc == 0 ? &s : NULL, &err, false);
    OPENSSL_cleanse(&s, sizeof s);
}

/* The state machine's callback (hub.mu held): the outcome goes to the waiter's own loop. */
static void post_outcome(struct pg_auth_wait *wt, bool ok, const struct pg_err *err)
{
    wt->ok = ok;
    if (err)
        wt->err = *err;
    pg_inbox_put_locked(wt->in, &wt->post);
}

static void run_outcome(struct pg_post *p)
{
    struct pg_auth_wait *wt = PG_CONTAINER_OF(p, struct pg_auth_wait, post);
    wt->ready(wt, wt->ok, wt->ok ? NULL : &wt->err);
}

void pg_auth_cancel(struct pg_auth_wait *wt)
{
    if (!wt->in)
        return;
    struct pg_hub *hub = wt->in->hub;
    pg_hub_lock(hub);
    if (wt->sm)
        pg_auth_sm_cancel(wt);
    else
        pg_inbox_take_locked(&wt->post);
    pg_hub_unlock(hub);
}

void pg_auth_worker_stop(struct pg_worker *w)
{
    while (w->logins.head) {
        struct pg_auth_rt *rt = PG_CONTAINER_OF(w->logins.head, struct pg_auth_rt, wlink);
        struct pg_err err;
        memset(&err, 0, sizeof err);
        fail_msg(rt->up->name, &err, "login stopped: the worker is shutting down");
        if (rt->curl_running)
            pg_curlev_remove(w->curl, rt->easy);
        curl_easy_setopt(rt->easy, CURLOPT_SHARE, NULL);
        rt->curl_running = false;
        pg_redis_cancel(rt->rop);
        rt->rop = NULL;
        if (rt->poll_set)
            event_del(&rt->poll);
        rt->poll_set = false;
        release(rt);
        login_finish(rt, NULL, &err, false);
    }
}

/* Send the login itself on rt->w's curl multi. 0 sent, -1 not. */
static int curl_login(struct pg_auth_rt *rt)
{
    const struct pg_upstream *up = rt->up;
    struct pg_worker *w = rt->w;
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
    pg_curl_defaults(e);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &rt->x);
    curl_easy_setopt(e, CURLOPT_URL, rt->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, &rt->hdrs[0]);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rt->lreq.body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, rt->lreq.body);
    if (rt->lreq.method && strcmp(rt->lreq.method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rt->lreq.method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_login_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, rt);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)up->timeout_ms);
    curl_easy_setopt(e, CURLOPT_SHARE, pg_curlev_share(w->curl)); /* detached at the end */
    pg_curl_upstream(e, up);
    if (pg_curlev_add(w->curl, e))
        return -1;
    rt->curl_running = true;
    return 0;
}

/* After redis had no session for us (or failed): log in; if that cannot start, the waiters
 * hear so. */
static void curl_or_fail(struct pg_auth_rt *rt)
{
    if (curl_login(rt) == 0)
        return;
    struct pg_err err;
    memset(&err, 0, sizeof err);
    fail_msg(rt->up->name, &err, "login could not be started");
    release(rt);
    login_finish(rt, NULL, &err, false);
}

/* hub.mu held: on the asking worker's loop, a stored session is looked for first (a redis
 * store), else the login is sent. The running login is listed on the worker and holds a
 * reference to its snapshot until login_finish. */
static int start_login(struct pg_auth_sm *sm)
{
    struct pg_auth_rt *rt = PG_CONTAINER_OF(sm, struct pg_auth_rt, sm);
    struct pg_worker *w = rt->starter;
    rt->w = w;
    rt->locked = false;
    if ((!shared(rt) || fetch(rt)) && curl_login(rt))
        return -1;
    pg_dlist_push_head(&w->logins, &rt->wlink);
    pg_conf_ref(rt->conf);
    return 0;
}

enum pg_auth_state pg_auth_acquire(struct pg_worker *w, struct pg_conf *conf, int up,
                                   struct pg_auth_wait *wt, struct pg_session *s, bool *has,
                                   uint64_t *gen, struct pg_err *err)
{
    const struct pg_upstream *u = &conf->upstreams[up];
    *has = false;
    *gen = 0;
    if (!u->auth || !u->auth->build_login)
        return PG_AUTH_READY;
    wt->cb = post_outcome;
    wt->in = &w->inbox;
    wt->post.run = run_outcome;
    pg_hub_lock(w->hub);
    enum pg_auth_state st = PG_AUTH_FAILED;
    struct pg_auth_rt *rt = rt_get(conf, up);
    if (!rt) {
        memset(err, 0, sizeof *err);
        err->code = PG_E_INTERNAL;
        goto out;
    }
    const struct pg_session *cur;
    rt->starter = w;
    st = pg_auth_sm_acquire(&rt->sm, wt, &cur, gen, err);
    if (st == PG_AUTH_READY) {
        sess_copy(s, cur);
        *has = true;
    }
out:
    pg_hub_unlock(w->hub);
    return st;
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

enum pg_auth_expiry pg_auth_expired(struct pg_worker *w, struct pg_conf *conf, int up, uint64_t gen,
                                    uint64_t now_ms)
{
    enum pg_auth_expiry e = PG_EXPIRY_REPLAY;
    pg_hub_lock(w->hub);
    struct pg_auth_rt *rt = conf->upstreams[up].rt;
    if (rt)
        e = pg_auth_sm_expired(&rt->sm, gen, now_ms);
    if (rt && e == PG_EXPIRY_RELOGIN)
        retire(w, rt);
    pg_hub_unlock(w->hub);
    return e;
}

const char *pg_auth_shown_name(enum pg_auth_shown s)
{
    static const char *const names[] = { "none", "valid", "logging_in", "backoff" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "none";
}

void pg_auth_sm_status(const struct pg_auth_sm *sm, struct pg_auth_status *st)
{
    uint64_t now = sm->now_ms(sm->now_arg);
    bool has = sm->sess.token_len > 0;
    uint64_t refresh = sm->sess.refresh_at_ms;
    memset(st, 0, sizeof *st);
    st->logins = sm->logins;
    st->failures = sm->failures;
    st->expires_in_ms = -1;
    if (has) {
        st->age_ms = now - sm->sess_at_ms;
        if (refresh)
            st->expires_in_ms = refresh > now ? (int64_t)(refresh - now) : 0;
    }
    if (sm->backoff_ms && sm->retry_at_ms > now)
        st->backoff_ms = sm->retry_at_ms - now;
    if (sm->logging_in)
        st->state = PG_AS_LOGGING_IN;
    else if (st->backoff_ms)
        st->state = PG_AS_BACKOFF;
    else if (has && (!refresh || refresh > now))
        st->state = PG_AS_VALID;
    else
        st->state = PG_AS_NONE;
}

bool pg_auth_status(struct pg_hub *hub, const struct pg_conf *conf, int up,
                    struct pg_auth_status *st)
{
    const struct pg_upstream *u = &conf->upstreams[up];
    if (!u->auth || !u->auth->build_login)
        return false;
    pg_hub_lock(hub);
    const struct pg_auth_rt *rt = u->rt;
    if (rt)
        pg_auth_sm_status(&rt->sm, st);
    pg_hub_unlock(hub);
    if (!rt) {
        memset(st, 0, sizeof *st);
        st->expires_in_ms = -1;
    }
    return true;
}
