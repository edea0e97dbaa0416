/* main.c -- command line (SPEC section 8), the worker threads (SPEC section 4.1), signals. The
 * main thread owns no event loop: it starts the workers, then waits for signals and passes
 * them on through each worker's inbox (SIGUSR1's access log reopen it does itself). The only
 * place that exits. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "gateway/alog.h"
#include "gateway/conf.h"
#include "gateway/dispatch.h"
#include "gateway/fwd.h"
#include "gateway/hub.h"
#include "gateway/keys.h"
#include "gateway/sdnotify.h"
#include "gateway/server.h"
#include "gateway/tlsfront.h"
#include "gateway/util.h"

/* One worker thread: its loop and its server. */
struct wthread {
    struct event_base *base;
    struct pg_server *srv;
    pthread_t th;
    bool running;
    bool failed; /* its loop ended without being told to drain */
};

struct app {
    const char *file;
    struct pg_conf *started; /* what a reload is compared with for keys it cannot apply */
    struct pg_hub *hub;
    struct pg_alog *alog;      /* the access log; the workers borrow it through the hub */
    struct pg_sdnotify notify; /* systemd's Type=notify socket, if it gave one */
    unsigned n;
    struct wthread w[PG_WORKERS_MAX];
};

static int usage(void)
{
    fprintf(stderr, "usage: panelgate -c FILE\n"
                    "       panelgate --check -c FILE\n"
                    "       panelgate keygen --name NAME\n"
                    "       panelgate --version\n");
    return 2;
}

static bool name_ok(const char *n)
{
    if (!*n || strlen(n) > 64)
        return false;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
              *n == '-' || *n == '_'))
            return false;
    return true;
}

static int keygen(const char *name)
{
    char key[64], hex[65];
    uint8_t d[32];
    if (!name_ok(name)) {
        fprintf(stderr, "panelgate: keygen: --name must be 1-64 of [A-Za-z0-9_-]\n");
        return 2;
    }
    if (pg_keys_generate(key, sizeof key)) {
        fprintf(stderr, "panelgate: keygen: no randomness available\n");
        return 1;
    }
    pg_key_hash(key, strlen(key), d);
    pg_hex(d, sizeof d, hex);
    printf("%s\n"
           "# The key above is shown once; the config keeps only its hash. Add under consumers:\n"
           "  - {name: %s, key: \"sha256:%s\", allow: [\"*\"]}\n",
           key, name, hex);
    return 0;
}

/* Which client serves each upstream (docs/design.md, "Upstream connections"): an operator
 * should see whether the fast path is in use. Names only: a url may carry user info. */
static void log_upstreams(const struct pg_conf *c)
{
    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct pg_upstream *u = &c->upstreams[i];
        pg_log(PG_LOG_INFO, "upstream %s: %s", u->name,
               u->h1_tls       ? "own HTTP/1.1 client over TLS"
               : u->h1_addrlen ? "own HTTP/1.1 client"
                               : "libcurl (https or a host name)");
        if (!u->tls_verify && strncmp(u->url, "https://", 8) == 0)
            pg_log(PG_LOG_WARN,
                   "upstream %s: tls.verify is false: its certificate and name are not checked",
                   u->name);
    }
}

/* SIGHUP: one new snapshot, and every worker switches to it on its own loop. systemd hears
 * RELOADING=1 first and READY=1 after, also when the file is refused (the old one serves). */
static void reload(struct app *a)
{
    char err[512], msg[64];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    pg_sdnotify(&a->notify, msg);
    struct pg_conf *c = pg_conf_load(a->file, err, sizeof err);
    if (!c) {
        pg_log(PG_LOG_ERR, "reload failed, keeping the running config: %s", err);
        pg_sdnotify(&a->notify, "READY=1\nSTATUS=reload refused; the running config serves");
        return;
    }
    pg_fwd_prepare(c);
    pg_server_restart_warnings(a->started, c);
    pg_alog_apply(a->alog, c); /* it says what it could not do */
    for (unsigned i = 0; i < a->n; i++)
        pg_server_post_reload(a->w[i].srv, c);
    pg_log(PG_LOG_INFO, "reloaded %s", a->file);
    log_upstreams(c);
    pg_conf_unref(c);
    pg_sdnotify(&a->notify, "READY=1\nSTATUS=serving (reloaded)");
}

/* SPEC 2: the soft open-file limit raised as far as max_connections needs: each connection
 * may hold an upstream connection too, plus pooled idle ones and the process's own files.
 * systemd's default soft limit (1024) is far below max_connections' default (10000). */
static void raise_nofile(const struct pg_conf *conf)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)conf->max_connections * 2 + 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rlim_t want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = 0;
    }
    if (rl.rlim_cur < need)
        pg_log(PG_LOG_WARN,
               "open-file limit %llu is below the %llu that max_connections %llu needs (hard "
               "limit %llu); at the limit new connections wait (raise LimitNOFILE / ulimit -n)",
               (unsigned long long)rl.rlim_cur, (unsigned long long)need,
               (unsigned long long)conf->max_connections, (unsigned long long)rl.rlim_max);
}

static void *worker_main(void *arg)
{
    struct wthread *t = arg;
    if (event_base_dispatch(t->base) < 0 || !event_base_got_break(t->base)) {
        pg_log(PG_LOG_ERR, "a worker's event loop stopped on its own; shutting down");
        t->failed = true;
        kill(getpid(), SIGTERM); /* the main thread drains the others */
    }
    return NULL;
}

/* workers: auto is one per online core. */
static unsigned worker_count(const struct pg_conf *conf)
{
    if (conf->workers)
        return conf->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > PG_WORKERS_MAX ? PG_WORKERS_MAX : (unsigned)n;
}

/* Make every worker's loop and server (binding the port) on this thread. 0 ok, -1 with err. */
static int make_workers(struct app *a, struct pg_conf *conf, char *err, size_t cap)
{
    a->n = worker_count(conf);
    for (unsigned i = 0; i < a->n; i++) {
        struct wthread *t = &a->w[i];
        if (!(t->base = event_base_new())) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        if (!(t->srv = pg_server_new(a->hub, i, t->base, conf, &pg_dispatch, err, cap)))
            return -1;
    }
    return 0;
}

/* Wait for signals until one says stop: SIGHUP reloads, SIGUSR1 reopens the access log
 * (logrotate), SIGTERM and SIGINT drain. */
static void wait_signals(struct app *a, const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(a);
            continue;
        }
        if (sig == SIGUSR1) {
            pg_alog_reopen(a->alog); /* it logs the outcome; a failure keeps the old file */
            continue;
        }
        pg_log(PG_LOG_INFO, "signal %d: draining", sig);
        pg_sdnotify(&a->notify, "STOPPING=1\nSTATUS=draining");
        for (unsigned i = 0; i < a->n; i++)
            pg_server_post_drain(a->w[i].srv);
        return;
    }
}

/* Join the threads, then free what they ran (on this thread: they are gone). 0 if every loop
 * ended by draining. */
static int stop_workers(struct app *a)
{
    int rc = 0;
    for (unsigned i = 0; i < a->n; i++)
        if (a->w[i].running) {
            pthread_join(a->w[i].th, NULL);
            a->w[i].running = false;
            if (a->w[i].failed)
                rc = -1;
        }
    /* every worker's connections first: a request waiting on another worker's login is
     * cancelled before that login stops */
    for (unsigned i = 0; i < a->n; i++) {
        pg_server_free(a->w[i].srv);
        a->w[i].srv = NULL;
    }
    for (unsigned i = 0; i < a->n; i++)
        if (a->w[i].base) {
            event_base_free(a->w[i].base);
            a->w[i].base = NULL;
        }
    return rc;
}

static int run(const char *file)
{
    char err[512];
    int rc = 1;
    static struct app a; /* 256 workers' slots: not on the stack */
    a.file = file;
    struct pg_conf *conf = pg_conf_load(file, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "panelgate: %s\n", err);
        return 1;
    }
    pg_fwd_prepare(conf);
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    if (!(cv->features & CURL_VERSION_ASYNCHDNS)) {
        fprintf(stderr, "panelgate: libcurl lacks asynchronous DNS; refusing to block the loop\n");
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto out;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(conf);
    /* the workers inherit this mask: only the main thread takes these signals */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1); /* unhandled, its default action would end the process */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        goto out_curl;
    pg_sdnotify_open(&a.notify);
    if (!(a.hub = pg_hub_new())) {
        fprintf(stderr, "panelgate: out of memory\n");
        goto out_curl;
    }
    if (!(a.alog = pg_alog_new(conf, err, sizeof err))) {
        fprintf(stderr, "panelgate: %s\n", err);
        goto out_workers;
    }
    a.hub->alog = a.alog;
    /* a redis store is down until a worker has connected and authenticated (status) */
    a.hub->store_down = conf->store == PG_STORE_REDIS;
    if (make_workers(&a, conf, err, sizeof err)) {
        fprintf(stderr, "panelgate: %s\n", err);
        goto out_workers;
    }
    pg_log(PG_LOG_INFO, "panelgate %s listening on %s:%u with %u worker%s", PG_VERSION,
           conf->listen_address, (unsigned)conf->listen_port, a.n, a.n == 1 ? "" : "s");
    log_upstreams(conf);
    /* each server holds its own reference; main keeps the started one for comparisons */
    a.started = conf;
    conf = NULL;
    for (unsigned i = 0; i < a.n; i++) {
        if (pthread_create(&a.w[i].th, NULL, worker_main, &a.w[i]) != 0) {
            pg_log(PG_LOG_ERR, "cannot start worker %u; stopping", i);
            for (unsigned j = 0; j < i; j++)
                pg_server_post_drain(a.w[j].srv);
            goto out_workers;
        }
        a.w[i].running = true;
    }
    /* every listener was bound before the threads started: callers can connect now */
    pg_sdnotify(&a.notify, "READY=1\nSTATUS=serving");
    wait_signals(&a, &set);
    if (stop_workers(&a) == 0) {
        pg_log(PG_LOG_INFO, "stopped");
        rc = 0;
    }
out_workers: /* a second call finds nothing left */
    stop_workers(&a);
    pg_alog_free(a.alog); /* the workers' last lines were written as they stopped */
    pg_hub_free(a.hub);
    pg_sdnotify_close(&a.notify);
    pg_conf_unref(a.started);
out_curl:
    curl_global_cleanup();
out:
    pg_conf_unref(conf);
    return rc;
}

static int check(const char *file)
{
    char err[512];
    struct pg_conf *c = pg_conf_load(file, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (pg_tls_front_check(c, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", file, err);
        pg_conf_unref(c);
        return 1;
    }
    printf("%s: ok (%zu upstreams, %zu consumers)\n", file, c->nupstreams, c->nconsumers);
    pg_conf_unref(c);
    return 0;
}

int main(int argc, char **argv)
{
    const char *file = NULL;
    bool do_check = false;
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0) {
        if (argc == 4 && strcmp(argv[2], "--name") == 0)
            return keygen(argv[3]);
        return usage();
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("panelgate %s\n", PG_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--check") == 0) {
            do_check = true;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else {
            return usage();
        }
    }
    if (!file)
        return usage();
    return do_check ? check(file) : run(file);
}
