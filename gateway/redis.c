/* redis.c -- a worker's hiredis async connection: connect, AUTH/SELECT, reconnect with backoff,
 * per-command deadlines, EVALSHA with a NOSCRIPT fallback. */
#include "redis.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "conf.h"
#include "hub.h"
#include "metrics.h"
#include "util.h"

#define PG_REDIS_BACKOFF_FIRST_MS 100u
#define PG_REDIS_BACKOFF_MAX_MS 1000u
/* this many deadlines passed in a row, no answer between: the connection is taken as dead */
#define PG_REDIS_STUCK 3
#define PG_ROP_ARGS 16
/* bytes of arguments an op carries inline (a take: keys and numbers); more are allocated */
#define PG_ROP_INLINE 448
/* ops kept for reuse per connection */
#define PG_ROP_POOL 256

struct pg_redis {
    struct event_base *base;
    struct pg_hub *hub;
    struct pg_metrics *m;
    char *host, *password;
    int port;
    struct evdns_base *dns;
    bool literal;   /* host is an IP address: no look-up */
    bool resolving; /* a look-up of host is under way (lookup, once evdns returned it) */
    struct evdns_getaddrinfo_request *lookup;
    unsigned db;
    uint64_t timeout_ms;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool up;               /* connected: commands can be sent */
    bool closing;          /* pg_redis_free is running: callbacks only free */
    struct event retry;
    uint64_t backoff_ms;
    unsigned late;       /* deadlines passed since the last answer */
    char setup_err[128]; /* the AUTH/SELECT refusal logged last; "" after a good setup */
    bool setup_failed;   /* this connection's setup was refused: the rest of it is moot */
    /* commands appended during a loop turn go out in one write at its end, not a turn later
     * through the write event */
    struct event flush;
    bool flush_set;
    /* every op not yet answered, in send order; one timer for the earliest deadline */
    struct pg_dlist ops; /* pg_rop.link */
    struct event deadline;
    bool deadline_set;
    struct pg_rop *pool;
    size_t npool;
};

/* One command in flight. Freed by its hiredis callback, which always comes (a reply, or NULL
 * when the connection goes); until then a cancelled or late one is only marked done. */
struct pg_rop {
    struct pg_redis *rd;
    struct pg_dlink link; /* in rd's ops awaiting an answer, while listed */
    bool listed;
    struct pg_rop *pool_next; /* while in rd's pool */
    const struct pg_redis_script *script;
    pg_redis_reply_fn *fn; /* NULL once cancelled */
    void *arg;
    bool done; /* fn ran or never will */
    bool resent;
    uint64_t deadline_ms;
    int argc;
    const char *argv[PG_ROP_ARGS];
    size_t lens[PG_ROP_ARGS];
    char *buf; /* the keys' and args' bytes argv points into: inline, or allocated */
    char inline_buf[PG_ROP_INLINE];
};

void pg_redis_script_init(struct pg_redis_script *s)
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)s->src, strlen(s->src), d);
    pg_hex(d, sizeof d, s->sha);
}

/* The store's reachability changed as this worker saw it: one log line per change for the
 * whole process. */
static void note_state(struct pg_redis *rd, bool ok)
{
    int want = ok ? 1 : 0, old = __atomic_exchange_n(&rd->hub->store_down, !want, __ATOMIC_RELAXED);
    if (old == want) /* store_down was the opposite of ok: a change */
        pg_log(ok ? PG_LOG_INFO : PG_LOG_WARN, "rate_limit_store redis %s:%d: %s", rd->host,
               rd->port, ok ? "reachable" : "unreachable; on_error decides meanwhile");
}

void pg_redis_failed(struct pg_redis *rd)
{
    pg_metrics_store_error(rd->m);
}

static void connect_now(struct pg_redis *rd);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

static void schedule_retry(struct pg_redis *rd)
{
    rd->up = false;
    rd->ac = NULL;
    if (rd->closing)
        return;
    note_state(rd, false);
    if (pg_event_add_ms(&rd->retry, rd->backoff_ms))
        pg_log(PG_LOG_ERR, "redis: the reconnect timer could not be armed");
    rd->backoff_ms =
        rd->backoff_ms * 2 > PG_REDIS_BACKOFF_MAX_MS ? PG_REDIS_BACKOFF_MAX_MS : rd->backoff_ms * 2;
}

/* The connection is usable: AUTH and SELECT (when the url asks for them) were accepted. Only
 * now is the store reachable and the backoff reset: a server that takes connections but
 * refuses the password is down, retried with the backoff, and logged once, not per attempt. */
static void ready(struct pg_redis *rd)
{
    rd->late = 0;
    rd->backoff_ms = PG_REDIS_BACKOFF_FIRST_MS;
    rd->setup_err[0] = '\0';
    note_state(rd, true);
}

/* Log a failure to reach the store, unless it is the one logged last: a server that keeps
 * refusing (a wrong password, a name that does not resolve) is said once, not per retry. */
static void note_err(struct pg_redis *rd, const char *what)
{
    if (strncmp(rd->setup_err, what, sizeof rd->setup_err - 1) == 0)
        return;
    pg_log(PG_LOG_ERR, "rate_limit_store redis %s:%d: %.200s", rd->host, rd->port, what);
    snprintf(rd->setup_err, sizeof rd->setup_err, "%s", what);
}

/* priv is set (rd) on the last setup command only. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    struct pg_redis *rd = ac->data;
    if (!r) /* the connection went: on_disconnect retries */
        return;
    if (r->type != REDIS_REPLY_ERROR) {
        if (priv)
            ready(rd);
        return;
    }
    if (rd->setup_failed) /* SELECT's NOAUTH after a refused AUTH says nothing new */
        return;
    rd->setup_failed = true;
    /* the error's first word only (WRONGPASS, NOAUTH, ERR): a proxy that does not know AUTH
     * could echo the command, password and all */
    char word[96];
    size_t wn = strcspn(r->str, " ");
    snprintf(word, sizeof word, "%.*s: the server refused AUTH or SELECT", (int)(wn < 32 ? wn : 32),
             r->str);
    note_err(rd, word);
    redisAsyncDisconnect(ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct pg_redis *rd = ac->data;
    if (status != REDIS_OK) { /* hiredis frees ac after this */
        schedule_retry(rd);
        return;
    }
    rd->up = true; /* commands queue behind AUTH and SELECT */
    if (!rd->password && !rd->db)
        ready(rd);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    schedule_retry(ac->data);
}

/* AUTH and SELECT go first on a new connection; commands queued behind them run after. */
static void setup(struct pg_redis *rd)
{
    if (rd->password) {
        const char *argv[2] = { "AUTH", rd->password };
        redisAsyncCommandArgv(rd->ac, on_setup_reply, rd->db ? NULL : rd, 2, argv, NULL);
    }
    if (rd->db) {
        char db[16];
        snprintf(db, sizeof db, "%u", rd->db);
        const char *argv[2] = { "SELECT", db };
        redisAsyncCommandArgv(rd->ac, on_setup_reply, rd, 2, argv, NULL);
    }
}

/* Connect to addr (an IP address as text). */
static void connect_to(struct pg_redis *rd, const char *addr)
{
    redisAsyncContext *ac = redisAsyncConnect(addr, rd->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(rd);
        return;
    }
    ac->data = rd;
    if (redisLibeventAttach(ac, rd->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(rd);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    rd->ac = ac;
    rd->setup_failed = false;
    setup(rd);
}

/* The look-up of host ended (maybe inside evdns_getaddrinfo: a numeric name or /etc/hosts):
 * connect to its first IPv4 address, else its first IPv6 one. */
static void on_lookup(int err, struct evutil_addrinfo *res, void *arg)
{
    struct pg_redis *rd = arg;
    if (err == EVUTIL_EAI_CANCEL) { /* pg_redis_free: rd is going, or gone */
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    rd->resolving = false;
    rd->lookup = NULL;
    const struct evutil_addrinfo *pick = NULL;
    for (const struct evutil_addrinfo *ai = res; !err && ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && !pick)
            pick = ai;
    }
    char ip[64] = "";
    if (pick && pick->ai_family == AF_INET)
        evutil_inet_ntop(AF_INET, &((const struct sockaddr_in *)pick->ai_addr)->sin_addr, ip,
                         sizeof ip);
    else if (pick)
        evutil_inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip,
                         sizeof ip);
    if (res)
        evutil_freeaddrinfo(res);
    if (rd->closing)
        return;
    if (!ip[0]) {
        char why[160];
        snprintf(why, sizeof why, "%s does not resolve (%s)", rd->host,
                 err ? evutil_gai_strerror(err) : "no address");
        note_err(rd, why);
        schedule_retry(rd);
        return;
    }
    connect_to(rd, ip);
}

/* hiredis resolves a host name itself, blocking the loop (seconds, with a slow resolver):
 * a name is looked up here on the loop first, and hiredis gets the address. */
static void connect_now(struct pg_redis *rd)
{
    if (rd->literal || !rd->dns) {
        connect_to(rd, rd->host);
        return;
    }
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    rd->resolving = true;
    struct evdns_getaddrinfo_request *q =
        evdns_getaddrinfo(rd->dns, rd->host, NULL, &hints, on_lookup, rd);
    if (rd->resolving) /* not answered inside the call */
        rd->lookup = q;
}

static void on_flush(evutil_socket_t fd, short what, void *arg);
static void on_deadline(evutil_socket_t fd, short what, void *arg);

struct pg_redis *pg_redis_new(struct event_base *base, struct evdns_base *dns,
                              const struct pg_conf *conf, struct pg_hub *hub, struct pg_metrics *m)
{
    struct pg_redis *rd = calloc(1, sizeof *rd);
    if (!rd)
        return NULL;
    rd->base = base;
    rd->dns = dns;
    rd->hub = hub;
    rd->m = m;
    rd->port = conf->redis_port;
    rd->db = conf->redis_db;
    rd->timeout_ms = conf->redis_timeout_ms;
    rd->backoff_ms = PG_REDIS_BACKOFF_FIRST_MS;
    rd->host = strdup(conf->redis_host);
    rd->password = conf->redis_password ? strdup(conf->redis_password) : NULL;
    unsigned char a[16];
    rd->literal = rd->host && (evutil_inet_pton(AF_INET, rd->host, a) == 1 ||
                               evutil_inet_pton(AF_INET6, rd->host, a) == 1);
    if (!rd->host || (conf->redis_password && !rd->password) ||
        event_assign(&rd->retry, base, -1, 0, on_retry, rd) ||
        event_assign(&rd->flush, base, -1, 0, on_flush, rd) ||
        event_assign(&rd->deadline, base, -1, 0, on_deadline, rd)) {
        pg_redis_free(rd);
        return NULL;
    }
    connect_now(rd);
    return rd;
}

void pg_redis_free(struct pg_redis *rd)
{
    if (!rd)
        return;
    rd->closing = true;
    if (rd->lookup) /* its callback, if it ever runs, sees the cancel and touches nothing */
        evdns_getaddrinfo_cancel(rd->lookup);
    if (event_initialized(&rd->retry))
        event_del(&rd->retry);
    if (event_initialized(&rd->flush))
        event_del(&rd->flush);
    if (event_initialized(&rd->deadline))
        event_del(&rd->deadline);
    if (rd->ac)
        redisAsyncFree(rd->ac); /* every pending callback runs with NULL and frees its op */
    while (rd->pool) {
        struct pg_rop *op = rd->pool;
        rd->pool = op->pool_next;
        free(op);
    }
    free(rd->host);
    if (rd->password)
        OPENSSL_cleanse(rd->password, strlen(rd->password));
    free(rd->password);
    free(rd);
}

bool pg_redis_up(const struct pg_redis *rd)
{
    return rd && rd->up && rd->ac;
}

/* The oldest op awaiting an answer, NULL if none. */
static struct pg_rop *first_op(const struct pg_redis *rd)
{
    struct pg_dlink *n = rd->ops.head;
    return n ? PG_CONTAINER_OF(n, struct pg_rop, link) : NULL;
}

static void unlist(struct pg_rop *op)
{
    if (!op->listed)
        return;
    pg_dlist_remove(&op->rd->ops, &op->link);
    op->listed = false;
}

static void op_free(struct pg_rop *op)
{
    struct pg_redis *rd = op->rd;
    unlist(op);
    if (op->buf != op->inline_buf)
        free(op->buf);
    op->buf = NULL;
    if (rd->closing || rd->npool >= PG_ROP_POOL) {
        free(op);
        return;
    }
    op->pool_next = rd->pool;
    rd->pool = op;
    rd->npool++;
}

/* op's answer is known: fn runs once with it (NULL: failed). */
static void op_finish(struct pg_rop *op, const redisReply *r)
{
    if (op->done)
        return;
    op->done = true;
    unlist(op);
    if (!r)
        pg_redis_failed(op->rd);
    if (op->fn)
        op->fn(op->arg, r);
}

static int op_send(struct pg_rop *op);

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pg_rop *op = priv;
    const redisReply *r = reply;
    (void)ac;
    if (op->rd->closing) {
        op_free(op);
        return;
    }
    if (r)
        op->rd->late = 0;
    if (r && r->type == REDIS_REPLY_ERROR && op->script && !op->resent && !op->done &&
        strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* a restarted or flushed server: the script goes whole this once */
        op->resent = true;
        op->argv[0] = "EVAL";
        op->lens[0] = 4;
        op->argv[1] = op->script->src;
        op->lens[1] = strlen(op->script->src);
        if (op_send(op) == 0)
            return;
    }
    if (r && r->type == REDIS_REPLY_ERROR) {
        pg_log(PG_LOG_ERR, "rate_limit_store redis: %.200s", r->str);
        r = NULL;
    }
    op_finish(op, r);
    op_free(op);
}

static void arm_deadline(struct pg_redis *rd, uint64_t now)
{
    struct pg_rop *first = first_op(rd);
    if (rd->deadline_set || !first)
        return;
    uint64_t at = first->deadline_ms;
    if (pg_event_add_ms(&rd->deadline, at > now ? at - now : 0) == 0)
        rd->deadline_set = true;
    else
        pg_log(PG_LOG_ERR, "redis: the deadline timer could not be armed");
}

/* The earliest deadline came: every op past its own fails now (its late answer is dropped). */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct pg_redis *rd = arg;
    (void)fd;
    (void)what;
    rd->deadline_set = false;
    uint64_t now = pg_now_ms();
    unsigned late = 0;
    /* in send order, so deadlines rise; an op finished here leaves the list */
    struct pg_rop *op;
    while ((op = first_op(rd)) && op->deadline_ms <= now) {
        op_finish(op, NULL);
        late++;
    }
    rd->late += late;
    /* a server that stopped answering (SIGSTOP, a dead peer without a RST): drop the
     * connection so the reconnect finds out, rather than piling up deadlines */
    if (late && rd->late >= PG_REDIS_STUCK && rd->ac) {
        rd->late = 0;
        pg_log(PG_LOG_WARN, "rate_limit_store redis: answers late; reconnecting");
        redisAsyncDisconnect(rd->ac);
    }
    arm_deadline(rd, now);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct pg_redis *rd = arg;
    (void)fd;
    (void)what;
    rd->flush_set = false;
    if (rd->ac)
        redisAsyncHandleWrite(rd->ac);
}

static int op_send(struct pg_rop *op)
{
    struct pg_redis *rd = op->rd;
    if (!rd->ac ||
        redisAsyncCommandArgv(rd->ac, on_reply, op, op->argc, op->argv, op->lens) != REDIS_OK)
        return -1;
    if (!rd->flush_set) { /* runs once this loop turn's callbacks are done */
        event_active(&rd->flush, EV_WRITE, 0);
        rd->flush_set = true;
    }
    return 0;
}

static struct pg_rop *op_get(struct pg_redis *rd)
{
    struct pg_rop *op = rd->pool;
    if (op) {
        rd->pool = op->pool_next;
        rd->npool--;
    } else if (!(op = malloc(sizeof *op))) {
        return NULL;
    }
    memset(op, 0, offsetof(struct pg_rop, argv));
    op->rd = rd;
    return op;
}

/* Copy argv[0..argc) (lens: NULL for NUL-terminated strings) into a new op and send it. */
static struct pg_rop *op_start(struct pg_redis *rd, const struct pg_redis_script *s, int argc,
                               const char *const *argv, const size_t *lens, pg_redis_reply_fn *fn,
                               void *arg)
{
    if (!pg_redis_up(rd) || argc < 1 || argc > PG_ROP_ARGS)
        return NULL;
    struct pg_rop *op = op_get(rd);
    if (!op)
        return NULL;
    size_t total = 1;
    for (int i = 0; i < argc; i++)
        total += (lens ? lens[i] : strlen(argv[i])) + 1;
    op->buf = total <= sizeof op->inline_buf ? op->inline_buf : malloc(total);
    if (!op->buf) {
        op_free(op);
        return NULL;
    }
    op->script = s;
    op->fn = fn;
    op->arg = arg;
    char *p = op->buf;
    for (int i = 0; i < argc; i++) {
        size_t vn = lens ? lens[i] : strlen(argv[i]);
        memcpy(p, argv[i], vn);
        p[vn] = '\0';
        op->argv[i] = p;
        op->lens[i] = vn;
        p += vn + 1;
    }
    op->argc = argc;
    if (op_send(op)) {
        op_free(op);
        return NULL;
    }
    uint64_t now = pg_now_ms();
    op->deadline_ms = now + rd->timeout_ms;
    op->listed = true;
    pg_dlist_push_tail(&rd->ops, &op->link);
    arm_deadline(rd, now);
    return op;
}

struct pg_rop *pg_redis_cmd(struct pg_redis *rd, int argc, const char *const *argv,
                            const size_t *lens, pg_redis_reply_fn *fn, void *arg)
{
    return op_start(rd, NULL, argc, argv, lens, fn, arg);
}

struct pg_rop *pg_redis_eval(struct pg_redis *rd, const struct pg_redis_script *s, size_t nkeys,
                             const char *const *keys, size_t nargs, const char *const *args,
                             pg_redis_reply_fn *fn, void *arg)
{
    const char *argv[PG_ROP_ARGS];
    char nk[24];
    if (3 + nkeys + nargs > PG_ROP_ARGS)
        return NULL;
    snprintf(nk, sizeof nk, "%zu", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = s->sha;
    argv[2] = nk;
    for (size_t i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (size_t i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    return op_start(rd, s, (int)(3 + nkeys + nargs), argv, NULL, fn, arg);
}

void pg_redis_cancel(struct pg_rop *op)
{
    if (!op)
        return;
    op->fn = NULL;
    op->done = true;
    unlist(op); /* its deadline no longer matters; hiredis still owns it until the answer */
}
