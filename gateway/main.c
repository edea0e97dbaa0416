/* main.c -- command line (SPEC section 8), signals, the event loop. The only place that exits. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "gateway/conf.h"
#include "gateway/dispatch.h"
#include "gateway/keys.h"
#include "gateway/server.h"
#include "gateway/util.h"

struct app {
    const char *file;
    struct event_base *base;
    struct pg_server *srv;
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

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    (void)what;
    pg_log(PG_LOG_INFO, "signal %d: draining", (int)sig);
    pg_server_drain(a->srv);
}

/* Which client serves each upstream (docs/design.md, "Upstream connections"): an operator
 * should see whether the fast path is in use. Names only: a url may carry user info. */
static void log_upstreams(const struct pg_conf *c)
{
    for (size_t i = 0; i < c->nupstreams; i++)
        pg_log(PG_LOG_INFO, "upstream %s: %s", c->upstreams[i].name,
               c->upstreams[i].h1_addrlen ? "own HTTP/1.1 client"
                                          : "libcurl (https or a host name)");
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct app *a = arg;
    char err[512];
    (void)sig;
    (void)what;
    struct pg_conf *c = pg_conf_load(a->file, err, sizeof err);
    if (!c) {
        pg_log(PG_LOG_ERR, "reload failed, keeping the running config: %s", err);
        return;
    }
    pg_server_reload(a->srv, c);
    pg_log(PG_LOG_INFO, "reloaded %s", a->file);
    log_upstreams(c);
    pg_conf_unref(c);
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

static int run(const char *file)
{
    char err[512];
    int rc = 1;
    struct app a = { .file = file };
    struct event *sterm = NULL, *sint = NULL, *shup = NULL;
    struct pg_conf *conf = pg_conf_load(file, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "panelgate: %s\n", err);
        return 1;
    }
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    if (!(cv->features & CURL_VERSION_ASYNCHDNS)) {
        fprintf(stderr, "panelgate: libcurl lacks asynchronous DNS; refusing to block the loop\n");
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto out;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(conf);
    a.base = event_base_new();
    if (!a.base)
        goto out_curl;
    a.srv = pg_server_new(a.base, conf, &pg_dispatch, err, sizeof err);
    if (!a.srv) {
        fprintf(stderr, "panelgate: %s\n", err);
        goto out_curl;
    }
    sterm = evsignal_new(a.base, SIGTERM, on_term, &a);
    sint = evsignal_new(a.base, SIGINT, on_term, &a);
    shup = evsignal_new(a.base, SIGHUP, on_hup, &a);
    if (!sterm || !sint || !shup || evsignal_add(sterm, NULL) || evsignal_add(sint, NULL) ||
        evsignal_add(shup, NULL))
        goto out_curl;
    pg_log(PG_LOG_INFO, "panelgate %s listening on %s:%u", PG_VERSION, conf->listen_address,
           (unsigned)conf->listen_port);
    log_upstreams(conf);
    if (conf->workers != 1)
        pg_log(PG_LOG_WARN, "workers: %u requested; this build runs one event-loop worker",
               conf->workers);
    /* the server holds its own reference: the snapshot (and its login transfers) must go with
     * the server, before the curl multi it runs on */
    pg_conf_unref(conf);
    conf = NULL;
    if (event_base_dispatch(a.base) < 0)
        goto out_curl;
    pg_log(PG_LOG_INFO, "stopped");
    rc = 0;
out_curl:
    if (sterm)
        event_free(sterm);
    if (sint)
        event_free(sint);
    if (shup)
        event_free(shup);
    pg_server_free(a.srv);
    if (a.base)
        event_base_free(a.base);
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
    if (pg_server_check_tls(c, err, sizeof err)) {
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
