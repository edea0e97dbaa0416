/* conf.c -- panelgate's config schema (SPEC section 7): the key tables of every section, the
 * core key types and their checks, defaults, and the refcounted snapshot they build. The typed
 * walking, secrets and FILE:LINE:COL errors are cwalk.c's. */
#include "conf.h"

#include <errno.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "cstore.h"
#include "cwalk.h"
#include "util.h"

#define CONF_MAX_FILE (4u << 20) /* a config file larger than 4 MiB is a mistake */
#define NAME_MAX_LEN 64          /* upstream and consumer names */
#define RATE_MAX 1000000000ull   /* tokens per period, and burst: keeps bucket math in 64 bits */

/* Core-only key types, numbered from PG_CWALK_EXT above the public enum pg_conf_type, so one
 * walker parses the core sections and plugin tables alike. Plugins never use these. */
enum core_type {
    K_PORT = PG_CWALK_EXT, /* uint16_t, 1..65535 */
    K_WORKERS,             /* unsigned: N >= 1 or "auto" (0) */
    K_ACCESS_LOG,          /* a log path (below) or {path, format}; base is struct pg_conf */
    K_LOG_PATH,            /* char *: "stdout", a path, or "off" (NULL) */
    K_HTTP_URL,            /* char *: http:// or https://, trailing '/' stripped */
    K_FILE,                /* char *: a path that must be readable now */
    K_UPSTREAM_NAME,       /* char *: [a-z0-9_-]+, not _gateway */
    K_CONSUMER_NAME,       /* char *: [A-Za-z0-9_.-]+ */
    K_ROUTE_PATH,          /* char *: normalised absolute path */
    K_KEY_SHA256,          /* uint8_t[32] from "sha256:<64 hex>" */
    K_RATE,                /* struct rate: "N/s", "N/min", "N/hour" */
    K_RATE_LIMIT,          /* struct pg_rate_limit */
    K_STORE,               /* rate_limit_store, base is struct pg_conf */
    K_RESOLVER,            /* resolver: ["IP[:port]", ...], base is struct pg_conf */
    K_CONSUMERS,           /* base is struct pg_conf */
    K_UPSTREAMS,           /* base is struct pg_conf */
    K_ALLOW,               /* base is struct pg_consumer */
    K_ROUTES,              /* base is struct pg_upstream */
    K_AUTH,                /* base is struct pg_upstream */
    K_NTYPES
};
#define CORE(t) ((enum pg_conf_type)(t))

/* An allow entry naming an upstream, until upstream names are known (they may come later). */
#define ALLOW_UNRESOLVED (-2)

int pg_parse_rate(const char *s, uint64_t *n, uint64_t *period_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = { { "/s", 1000 }, { "/min", 60000 }, { "/hour", 3600000 } };
    uint64_t v;
    const char *e;
    if (pg_cwalk_uint(s, &v, &e) || v < 1 || v > RATE_MAX)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(e, units[i].unit)) {
            *n = v;
            *period_ms = units[i].ms;
            return 0;
        }
    }
    return -1;
}

unsigned pg_method_bit(const char *m, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = { { "GET", PG_M_GET },        { "HEAD", PG_M_HEAD },   { "POST", PG_M_POST },
                    { "PUT", PG_M_PUT },        { "PATCH", PG_M_PATCH }, { "DELETE", PG_M_DELETE },
                    { "OPTIONS", PG_M_OPTIONS } };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strlen(methods[i].name) == n && !memcmp(methods[i].name, m, n))
            return methods[i].bit;
    return 0;
}

/* ---- setters for the core types ---- */

static int set_port(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s, *e;
    uint64_t x;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    if (pg_cwalk_uint(s, &x, &e) || *e || x < 1 || x > 65535)
        return pg_cwalk_fail(cx, v, "bad port '%.64s' (1 to 65535)", s);
    *(uint16_t *)pg_cwalk_slot(base, k) = (uint16_t)x;
    return 0;
}

static int set_workers(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s, *e;
    uint64_t x = 0;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    if (strcmp(s, "auto") && (pg_cwalk_uint(s, &x, &e) || *e || x < 1 || x > PG_WORKERS_MAX))
        return pg_cwalk_fail(cx, v, "bad value '%.64s' (1 to %d, or auto)", s, PG_WORKERS_MAX);
    *(unsigned *)pg_cwalk_slot(base, k) = (unsigned)x;
    return 0;
}

static int set_log_path(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                        void *base)
{
    const char *s;
    char **p = pg_cwalk_slot(base, k);
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    if (!*s)
        return pg_cwalk_fail(cx, v, "empty path (stdout, a file path, or off)");
    if (!strcmp(s, "off")) {
        free(*p);
        *p = NULL;
        return 0;
    }
    return pg_cwalk_set_str(cx, v, p, s);
}

static const struct pg_conf_key access_log_keys[] = {
    { "path", CORE(K_LOG_PATH), 0, offsetof(struct pg_conf, access_log), NULL, NULL },
    { "format", PG_CONF_ENUM, 0, offsetof(struct pg_conf, access_log_format), "text|json", NULL },
    { 0 },
};

/* access_log: a path alone (format text), or {path, format}; base is struct pg_conf. */
static int set_access_log(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                          void *base)
{
    if (v->type == YAML_MAPPING_NODE)
        return pg_cwalk_keys(cx, v, access_log_keys, base, NULL, NULL);
    if (v->type == YAML_SEQUENCE_NODE)
        return pg_cwalk_fail(cx, v,
                             "expected stdout, a file path, off or {path, format}, got a "
                             "list");
    return set_log_path(cx, k, v, base);
}

static int set_http_url(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                        void *base)
{
    const char *s;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    size_t skip = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
    if (!skip)
        return pg_cwalk_fail(cx, v, "bad url '%.64s' (must start with http:// or https://)", s);
    if (!s[skip] || s[skip] == '/')
        return pg_cwalk_fail(cx, v, "bad url '%.64s' (no host)", s);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return pg_cwalk_fail(cx, v, "bad url '%.64s' (no spaces, query or fragment)", s);
    if (pg_cwalk_set_str(cx, v, pg_cwalk_slot(base, k), s))
        return -1;
    char *u = *(char **)pg_cwalk_slot(base, k);
    size_t n = strlen(u);
    while (n > skip && u[n - 1] == '/')
        u[--n] = '\0';
    return 0;
}

static int set_file(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    if (access(s, R_OK))
        return pg_cwalk_fail(cx, v, "cannot read '%s': %s", s, strerror(errno));
    return pg_cwalk_set_str(cx, v, pg_cwalk_slot(base, k), s);
}

static int set_name(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    bool up = (int)k->type == K_UPSTREAM_NAME;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    size_t n = strlen(s);
    bool ok = n <= NAME_MAX_LEN;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
             (!up && ((c >= 'A' && c <= 'Z') || c == '.'));
    }
    if (!ok)
        return pg_cwalk_fail(cx, v, "bad name '%.64s' (%s, at most %d)", s,
                             up ? "a-z, 0-9, '_' and '-'" : "letters, digits, '_', '-' and '.'",
                             NAME_MAX_LEN);
    if (up && !strcmp(s, "_gateway"))
        return pg_cwalk_fail(cx, v, "the name '_gateway' is reserved");
    return pg_cwalk_set_str(cx, v, pg_cwalk_slot(base, k), s);
}

static int set_route_path(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                          void *base)
{
    const char *s;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    size_t n = strlen(s);
    bool ok = s[0] == '/' && !strstr(s, "//") && !strstr(s, "/./") && !strstr(s, "/../");
    if (ok && n >= 2 && !strcmp(s + n - 2, "/."))
        ok = false;
    if (ok && n >= 3 && !strcmp(s + n - 3, "/.."))
        ok = false;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] > ' ' && s[i] != 0x7f && s[i] != '?' && s[i] != '#';
    if (!ok)
        return pg_cwalk_fail(cx, v, "bad path '%.64s' (a normalised path starting with '/')", s);
    return pg_cwalk_set_str(cx, v, pg_cwalk_slot(base, k), s);
}

static int set_key_sha256(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                          void *base)
{
    const char *s;
    uint8_t *d = pg_cwalk_slot(base, k);
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    bool ok = !strncmp(s, "sha256:", 7) && strlen(s + 7) == 64;
    for (size_t i = 0; ok && i < 32; i++) {
        int hi = pg_hexval((unsigned char)s[7 + 2 * i]),
            lo = pg_hexval((unsigned char)s[8 + 2 * i]);
        ok = hi >= 0 && lo >= 0;
        if (ok)
            d[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!ok)
        return pg_cwalk_fail(cx, v, "bad key (sha256: and 64 hex digits, from `panelgate keygen`)");
    return 0;
}

struct rate {
    uint64_t n, period_ms;
};

static int set_rate(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    struct rate *r = pg_cwalk_slot(base, k);
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    if (pg_parse_rate(s, &r->n, &r->period_ms))
        return pg_cwalk_fail(cx, v, "bad rate '%.64s' (N/s, N/min or N/hour, N from 1 to %llu)", s,
                             RATE_MAX);
    return 0;
}

struct rl_raw {
    struct rate rate;
    uint64_t burst;
    int mode;
    uint64_t max_wait_ms;
};

static const struct pg_conf_key rl_keys[] = {
    { "rate", CORE(K_RATE), PG_REQUIRED, offsetof(struct rl_raw, rate), NULL, NULL },
    { "burst", PG_CONF_UINT, PG_CWALK_POSITIVE, offsetof(struct rl_raw, burst), NULL, NULL },
    { "mode", PG_CONF_ENUM, 0, offsetof(struct rl_raw, mode), "reject|queue", NULL },
    { "max_wait", PG_CONF_DURATION, 0, offsetof(struct rl_raw, max_wait_ms), NULL, NULL },
    { 0 },
};

#define RL_BURST_SEEN (1u << 1) /* rl_keys[1] */

static int set_rate_limit(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                          void *base)
{
    struct rl_raw r = { 0 };
    uint64_t seen;
    if (pg_cwalk_keys(cx, v, rl_keys, &r, NULL, &seen))
        return -1;
    if (!(seen & RL_BURST_SEEN)) {
        /* one second's worth, rounded up: at least 1 since rate.n >= 1 */
        r.burst = (r.rate.n * 1000 + r.rate.period_ms - 1) / r.rate.period_ms;
    } else if (r.burst > RATE_MAX) {
        size_t old = pg_cwalk_path_key(cx, "burst");
        pg_cwalk_fail(cx, pg_cwalk_map_get(cx, v, "burst"), "too large (at most %llu)", RATE_MAX);
        pg_cwalk_path_pop(cx, old);
        return -1;
    }
    struct pg_rate_limit *rl = pg_cwalk_slot(base, k);
    *rl = (struct pg_rate_limit){ .set = true,
                                  .rate_n = r.rate.n,
                                  .rate_period_ms = r.rate.period_ms,
                                  .burst = r.burst,
                                  .mode = r.mode ? PG_RL_QUEUE : PG_RL_REJECT,
                                  .max_wait_ms = r.max_wait_ms };
    return 0;
}

/* resolver: DNS servers as "IP" or "IP:port" (SPEC 7); absent: /etc/resolv.conf. */
static int set_resolver(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                        void *base)
{
    struct pg_conf *c = base;
    (void)k;
    if (pg_cwalk_want_list(cx, v))
        return -1;
    size_t n = pg_cwalk_list_len(v);
    if (n == 0 || n > 8)
        return pg_cwalk_fail(cx, v, "1 to 8 servers, as \"IP\" or \"IP:port\"");
    if (!(c->resolvers = calloc(n, sizeof *c->resolvers)))
        return pg_cwalk_fail(cx, v, "out of memory");
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = pg_cwalk_list_item(cx, v, i);
        const char *s;
        struct sockaddr_storage ss;
        int sl = sizeof ss;
        if (pg_cwalk_text(cx, it, &s))
            return -1;
        if (evutil_parse_sockaddr_port(s, (struct sockaddr *)&ss, &sl))
            return pg_cwalk_fail(cx, it, "bad resolver '%.64s' (\"IP\" or \"IP:port\")", s);
        if (!(c->resolvers[i] = strdup(s)))
            return pg_cwalk_fail(cx, it, "out of memory");
        c->nresolvers = i + 1;
    }
    return 0;
}

/* allow: [name, "*", "name:GET,POST"]; names are resolved once all upstreams are known. */
static int set_allow(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_consumer *cs = base;
    (void)k;
    if (pg_cwalk_want_list(cx, v))
        return -1;
    free(cs->allow);
    cs->nallow = 0;
    cs->allow = calloc(pg_cwalk_list_len(v) ? pg_cwalk_list_len(v) : 1, sizeof *cs->allow);
    if (!cs->allow)
        return pg_cwalk_fail(cx, v, "out of memory");
    for (size_t i = 0; i < pg_cwalk_list_len(v); i++) {
        const yaml_node_t *it = pg_cwalk_list_item(cx, v, i);
        struct pg_allow *a = &cs->allow[i];
        const char *s;
        size_t n;
        size_t old = pg_cwalk_path_index(cx, i);
        if (pg_cwalk_scalar(cx, it, &s, &n))
            return -1;
        const char *colon = memchr(s, ':', n);
        size_t name_n = colon ? (size_t)(colon - s) : n;
        int rc = 0;
        if (name_n == 0)
            rc = pg_cwalk_fail(cx, it, "bad entry '%.64s' (an upstream name or *)", s);
        a->upstream = name_n == 1 && s[0] == '*' ? -1 : ALLOW_UNRESOLVED;
        a->methods = colon ? 0 : PG_M_ALL;
        for (const char *p = colon ? colon + 1 : NULL; !rc && p;) {
            const char *comma = strchr(p, ',');
            const char *e = comma ? comma : s + n;
            while (p < e && *p == ' ')
                p++;
            while (e > p && e[-1] == ' ')
                e--;
            unsigned bit = pg_method_bit(p, (size_t)(e - p));
            if (!bit)
                rc = pg_cwalk_fail(
                    cx, it, "unknown method '%.*s' (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)",
                    (int)(e - p), p);
            a->methods |= bit;
            p = comma ? comma + 1 : NULL;
        }
        pg_cwalk_path_pop(cx, old);
        if (rc)
            return -1;
        cs->nallow = i + 1;
    }
    return 0;
}

static const struct pg_conf_key route_keys[] = {
    { "path", CORE(K_ROUTE_PATH), PG_REQUIRED, offsetof(struct pg_route_conf, path), NULL, NULL },
    { "rate_limit", CORE(K_RATE_LIMIT), PG_REQUIRED, offsetof(struct pg_route_conf, rl), NULL,
      NULL },
    { 0 },
};

/* Route i: its path's length, and a path no earlier route has. */
static int check_route(struct pg_cwalk *cx, yaml_node_t *item, size_t i, void *arg)
{
    struct pg_upstream *u = arg;
    struct pg_route_conf *r = &u->routes[i];
    r->path_len = strlen(r->path);
    for (size_t j = 0; j < i; j++)
        if (!strcmp(u->routes[j].path, r->path))
            return pg_cwalk_fail(cx, pg_cwalk_map_get(cx, item, "path"),
                                 "duplicate route path '%s'", r->path);
    return 0;
}

static int set_routes(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_upstream *u = base;
    (void)k;
    if (pg_cwalk_want_list(cx, v))
        return -1;
    size_t n = pg_cwalk_list_len(v);
    u->routes = calloc(n ? n : 1, sizeof *u->routes);
    if (!u->routes)
        return pg_cwalk_fail(cx, v, "out of memory");
    u->nroutes = n;
    return pg_cwalk_maps(cx, v, route_keys, u->routes, sizeof *u->routes, check_route, u);
}

/* auth: {type: ..., plugin keys}: the plugin's own table, then its init. */
static int set_auth(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_upstream *u = base;
    (void)k;
    if (pg_cwalk_want_mapping(cx, v))
        return -1;
    const yaml_node_t *tn = pg_cwalk_map_get(cx, v, "type");
    if (!tn)
        return pg_cwalk_fail(cx, v, "missing required key 'type'");
    const char *type;
    size_t old = pg_cwalk_path_key(cx, "type");
    int rc = pg_cwalk_text(cx, tn, &type);
    if (!rc && !(u->auth = pg_plugin_find(type)))
        rc = pg_cwalk_fail(cx, tn, "unknown auth type '%.64s'", type);
    pg_cwalk_path_pop(cx, old);
    if (rc)
        return -1;
    /* from here on pg_conf_unref runs deinit, whatever was stored */
    u->auth_state = calloc(1, u->auth->state_size ? u->auth->state_size : 1);
    if (!u->auth_state) {
        u->auth = NULL;
        return pg_cwalk_fail(cx, v, "out of memory");
    }
    if (pg_cwalk_keys(cx, v, u->auth->keys, u->auth_state, "type", NULL))
        return -1;
    struct pg_err e = { 0 };
    if (u->auth->init && u->auth->init(u->auth_state, &e)) {
        /* the plugin's message names "auth:" itself; report it against the upstream */
        const char *dot = strrchr(cx->path, '.');
        old = cx->plen;
        if (dot)
            cx->plen = (size_t)(dot - cx->path);
        cx->path[cx->plen] = '\0';
        pg_cwalk_fail(cx, v, "%s", e.msg[0] ? e.msg : "auth: invalid configuration");
        cx->path[cx->plen] = dot ? '.' : '\0';
        cx->plen = old;
        return -1;
    }
    return 0;
}

static const struct pg_conf_key up_tls_keys[] = {
    { "verify", PG_CONF_BOOL, 0, offsetof(struct pg_upstream, tls_verify), NULL, NULL },
    { "ca_file", CORE(K_FILE), 0, offsetof(struct pg_upstream, tls_ca_file), NULL, NULL },
    { 0 },
};

static const struct pg_conf_key upstream_keys[] = {
    { "name", CORE(K_UPSTREAM_NAME), PG_REQUIRED, offsetof(struct pg_upstream, name), NULL, NULL },
    { "url", CORE(K_HTTP_URL), PG_REQUIRED, offsetof(struct pg_upstream, url), NULL, NULL },
    { "timeout", PG_CONF_DURATION, PG_CWALK_POSITIVE, offsetof(struct pg_upstream, timeout_ms),
      NULL, NULL },
    { "tls", PG_CONF_OBJECT, 0, 0, NULL, up_tls_keys },
    { "auth", CORE(K_AUTH), 0, 0, NULL, NULL },
    { "rate_limit", CORE(K_RATE_LIMIT), 0, offsetof(struct pg_upstream, rl), NULL, NULL },
    { "routes", CORE(K_ROUTES), 0, 0, NULL, NULL },
    { 0 },
};

/* Upstream i: its lengths, and a name no earlier upstream has. */
static int check_upstream(struct pg_cwalk *cx, yaml_node_t *item, size_t i, void *arg)
{
    struct pg_conf *c = arg;
    struct pg_upstream *u = &c->upstreams[i];
    u->name_len = strlen(u->name);
    u->url_len = strlen(u->url);
    int j = pg_conf_upstream(c, u->name, u->name_len);
    if (j >= 0 && (size_t)j < i)
        return pg_cwalk_fail(cx, pg_cwalk_map_get(cx, item, "name"), "duplicate upstream name '%s'",
                             u->name);
    return 0;
}

static int set_upstreams(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                         void *base)
{
    struct pg_conf *c = base;
    (void)k;
    if (pg_cwalk_want_list(cx, v))
        return -1;
    size_t n = pg_cwalk_list_len(v);
    if (n == 0)
        return pg_cwalk_fail(cx, v, "at least one upstream is required");
    c->upstreams = calloc(n, sizeof *c->upstreams);
    if (!c->upstreams)
        return pg_cwalk_fail(cx, v, "out of memory");
    c->nupstreams = n;
    for (size_t i = 0; i < n; i++) { /* the defaults, before the keys */
        c->upstreams[i].timeout_ms = 10000;
        c->upstreams[i].tls_verify = true;
    }
    return pg_cwalk_maps(cx, v, upstream_keys, c->upstreams, sizeof *c->upstreams, check_upstream,
                         c);
}

static const struct pg_conf_key consumer_keys[] = {
    { "name", CORE(K_CONSUMER_NAME), PG_REQUIRED, offsetof(struct pg_consumer, name), NULL, NULL },
    { "key", CORE(K_KEY_SHA256), PG_REQUIRED, offsetof(struct pg_consumer, key_sha256), NULL,
      NULL },
    { "allow", CORE(K_ALLOW), 0, 0, NULL, NULL },
    { "admin", PG_CONF_BOOL, 0, offsetof(struct pg_consumer, admin), NULL, NULL },
    { "rate_limit", CORE(K_RATE_LIMIT), 0, offsetof(struct pg_consumer, rl), NULL, NULL },
    { 0 },
};

/* Consumer i: a name and a key no earlier consumer has. */
static int check_consumer(struct pg_cwalk *cx, yaml_node_t *item, size_t i, void *arg)
{
    struct pg_conf *c = arg;
    const struct pg_consumer *cs = &c->consumers[i];
    for (size_t j = 0; j < i; j++) {
        if (!strcmp(c->consumers[j].name, cs->name))
            return pg_cwalk_fail(cx, pg_cwalk_map_get(cx, item, "name"),
                                 "duplicate consumer name '%s'", cs->name);
        if (!CRYPTO_memcmp(c->consumers[j].key_sha256, cs->key_sha256, 32))
            return pg_cwalk_fail(cx, pg_cwalk_map_get(cx, item, "key"), "same key as consumer '%s'",
                                 c->consumers[j].name);
    }
    return 0;
}

static int set_consumers(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                         void *base)
{
    struct pg_conf *c = base;
    (void)k;
    if (pg_cwalk_want_list(cx, v))
        return -1;
    size_t n = pg_cwalk_list_len(v);
    c->consumers = calloc(n ? n : 1, sizeof *c->consumers);
    if (!c->consumers)
        return pg_cwalk_fail(cx, v, "out of memory");
    c->nconsumers = n;
    return pg_cwalk_maps(cx, v, consumer_keys, c->consumers, sizeof *c->consumers, check_consumer,
                         c);
}

/* The walker's setters for the core types (pg_cwalk.ext). */
static pg_cwalk_set_fn *const core_setters[K_NTYPES - PG_CWALK_EXT] = {
    [K_PORT - PG_CWALK_EXT] = set_port,
    [K_WORKERS - PG_CWALK_EXT] = set_workers,
    [K_ACCESS_LOG - PG_CWALK_EXT] = set_access_log,
    [K_LOG_PATH - PG_CWALK_EXT] = set_log_path,
    [K_HTTP_URL - PG_CWALK_EXT] = set_http_url,
    [K_FILE - PG_CWALK_EXT] = set_file,
    [K_UPSTREAM_NAME - PG_CWALK_EXT] = set_name,
    [K_CONSUMER_NAME - PG_CWALK_EXT] = set_name,
    [K_ROUTE_PATH - PG_CWALK_EXT] = set_route_path,
    [K_KEY_SHA256 - PG_CWALK_EXT] = set_key_sha256,
    [K_RATE - PG_CWALK_EXT] = set_rate,
    [K_RATE_LIMIT - PG_CWALK_EXT] = set_rate_limit,
    [K_STORE - PG_CWALK_EXT] = pg_conf_set_store,
    [K_RESOLVER - PG_CWALK_EXT] = set_resolver,
    [K_CONSUMERS - PG_CWALK_EXT] = set_consumers,
    [K_UPSTREAMS - PG_CWALK_EXT] = set_upstreams,
    [K_ALLOW - PG_CWALK_EXT] = set_allow,
    [K_ROUTES - PG_CWALK_EXT] = set_routes,
    [K_AUTH - PG_CWALK_EXT] = set_auth,
};

/* ---- the top level ---- */

/* listen, limits and metrics are flat fields of pg_conf: their objects sit at offset 0. */
static const struct pg_conf_key listen_tls_keys[] = {
    { "cert", CORE(K_FILE), PG_REQUIRED, offsetof(struct pg_conf, tls_cert), NULL, NULL },
    { "key", CORE(K_FILE), PG_REQUIRED, offsetof(struct pg_conf, tls_key), NULL, NULL },
    { 0 },
};

static const struct pg_conf_key listen_keys[] = {
    { "address", PG_CONF_STRING, 0, offsetof(struct pg_conf, listen_address), NULL, NULL },
    { "port", CORE(K_PORT), 0, offsetof(struct pg_conf, listen_port), NULL, NULL },
    { "tls", PG_CONF_OBJECT, 0, 0, NULL, listen_tls_keys },
    { 0 },
};

static const struct pg_conf_key limits_keys[] = {
    { "max_header_bytes", PG_CONF_SIZE, PG_CWALK_POSITIVE,
      offsetof(struct pg_conf, max_header_bytes), NULL, NULL },
    { "max_body_bytes", PG_CONF_SIZE, 0, offsetof(struct pg_conf, max_body_bytes), NULL, NULL },
    { "client_timeout", PG_CONF_DURATION, PG_CWALK_POSITIVE,
      offsetof(struct pg_conf, client_timeout_ms), NULL, NULL },
    { "max_connections", PG_CONF_UINT, PG_CWALK_POSITIVE, offsetof(struct pg_conf, max_connections),
      NULL, NULL },
    { 0 },
};

static const struct pg_conf_key metrics_keys[] = {
    { "public", PG_CONF_BOOL, 0, offsetof(struct pg_conf, metrics_public), NULL, NULL },
    { 0 },
};

static const struct pg_conf_key top_keys[] = {
    { "listen", PG_CONF_OBJECT, 0, 0, NULL, listen_keys },
    { "public_url", CORE(K_HTTP_URL), 0, offsetof(struct pg_conf, public_url), NULL, NULL },
    { "workers", CORE(K_WORKERS), 0, offsetof(struct pg_conf, workers), NULL, NULL },
    { "limits", PG_CONF_OBJECT, 0, 0, NULL, limits_keys },
    { "access_log", CORE(K_ACCESS_LOG), 0, offsetof(struct pg_conf, access_log), NULL, NULL },
    { "metrics", PG_CONF_OBJECT, 0, 0, NULL, metrics_keys },
    { "drain_timeout", PG_CONF_DURATION, 0, offsetof(struct pg_conf, drain_timeout_ms), NULL,
      NULL },
    { "rate_limit_store", CORE(K_STORE), 0, 0, NULL, NULL },
    { "resolver", CORE(K_RESOLVER), 0, 0, NULL, NULL },
    { "consumers", CORE(K_CONSUMERS), 0, 0, NULL, NULL },
    { "upstreams", CORE(K_UPSTREAMS), PG_REQUIRED, 0, NULL, NULL },
    { 0 },
};

/* Allow entries name upstreams that may be declared after the consumers. */
static int resolve_allows(struct pg_cwalk *cx, struct pg_conf *c, const yaml_node_t *root)
{
    const yaml_node_t *cl = pg_cwalk_map_get(cx, root, "consumers");
    for (size_t i = 0; i < c->nconsumers; i++) {
        const yaml_node_t *al = pg_cwalk_map_get(cx, pg_cwalk_list_item(cx, cl, i), "allow");
        struct pg_consumer *cs = &c->consumers[i];
        for (size_t j = 0; j < cs->nallow; j++) {
            if (cs->allow[j].upstream != ALLOW_UNRESOLVED)
                continue;
            const yaml_node_t *it = pg_cwalk_list_item(cx, al, j);
            const char *s = (const char *)it->data.scalar.value;
            size_t n = strcspn(s, ":");
            cs->allow[j].upstream = pg_conf_upstream(c, s, n);
            if (cs->allow[j].upstream < 0) {
                pg_cwalk_path_key(cx, "consumers");
                pg_cwalk_path_index(cx, i);
                pg_cwalk_path_key(cx, "allow");
                pg_cwalk_path_index(cx, j);
                return pg_cwalk_fail(cx, it, "unknown upstream '%.*s'", (int)n, s);
            }
        }
    }
    return 0;
}

static int defaults(struct pg_conf *c)
{
    c->listen_address = strdup("127.0.0.1");
    c->access_log = strdup("stdout");
    c->listen_port = 8080;
    c->workers = 1;
    c->max_header_bytes = 16384;
    c->max_body_bytes = 10u << 20;
    c->client_timeout_ms = 30000;
    c->max_connections = 10000;
    c->drain_timeout_ms = 10000;
    c->store = PG_STORE_LOCAL;
    c->redis_on_error_allow = true;
    c->redis_prefix = strdup("panelgate");
    c->redis_timeout_ms = 50;
    return c->listen_address && c->access_log && c->redis_prefix ? 0 : -1;
}

static int default_public_url(struct pg_conf *c)
{
    bool v6 = strchr(c->listen_address, ':') != NULL;
    char buf[300];
    int n = snprintf(buf, sizeof buf, "http://%s%s%s:%u", v6 ? "[" : "", c->listen_address,
                     v6 ? "]" : "", (unsigned)c->listen_port);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    c->public_url = strdup(buf);
    return c->public_url ? 0 : -1;
}

struct pg_conf *pg_conf_load_string(const char *name, const char *yaml, size_t len, char *errbuf,
                                    size_t errcap)
{
    struct pg_cwalk cx = { .file = name,
                           .err = errbuf,
                           .errcap = errcap,
                           .ext = core_setters,
                           .next = K_NTYPES - PG_CWALK_EXT };
    struct pg_conf *c = calloc(1, sizeof *c);
    int rc = -1;

    if (errcap)
        errbuf[0] = '\0';
    if (c)
        c->refs = 1;
    if (!c || defaults(c) || !(c->file = strdup(name))) {
        snprintf(errbuf, errcap, "%s: out of memory", name);
        goto out;
    }
    yaml_node_t *root = pg_cwalk_open(&cx, yaml, len);
    if (!root)
        goto out;
    if (pg_cwalk_keys(&cx, root, top_keys, c, NULL, NULL) || resolve_allows(&cx, c, root))
        goto out;
    if (!c->public_url && default_public_url(c)) {
        snprintf(errbuf, errcap, "%s: out of memory", name);
        goto out;
    }
    if (pg_conf_redis_needs_key(c, errbuf, errcap))
        goto out;
    rc = 0;
out:
    pg_cwalk_close(&cx);
    if (rc) {
        pg_conf_unref(c);
        return NULL;
    }
    return c;
}

struct pg_conf *pg_conf_load(const char *file, char *errbuf, size_t errcap)
{
    size_t n;
    const char *why;
    char *b = pg_cwalk_read_file(file, CONF_MAX_FILE, &n, &why);
    if (!b) {
        snprintf(errbuf, errcap, "%s: cannot read: %s", file, why);
        return NULL;
    }
    struct pg_conf *c = pg_conf_load_string(file, b, n, errbuf, errcap);
    OPENSSL_cleanse(b, n);
    free(b);
    return c;
}

/* ---- lifetime ---- */

void pg_conf_ref(struct pg_conf *c)
{
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

static void upstream_free(struct pg_upstream *u)
{
    if (u->rt_free)
        u->rt_free(u->rt); /* sessions first: they may point into the auth state */
    free(u->name);
    free(u->url);
    free(u->tls_ca_file);
    SSL_CTX_free(u->h1_tls);
    free(u->h1_name);
    if (u->auth_state) {
        if (u->auth && u->auth->deinit)
            u->auth->deinit(u->auth_state);
        if (u->auth)
            OPENSSL_cleanse(u->auth_state, u->auth->state_size);
        free(u->auth_state);
    }
    for (size_t i = 0; i < u->nroutes; i++)
        free(u->routes[i].path);
    free(u->routes);
}

void pg_conf_unref(struct pg_conf *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < c->nupstreams; i++)
        upstream_free(&c->upstreams[i]);
    free(c->upstreams);
    for (size_t i = 0; i < c->nconsumers; i++) {
        free(c->consumers[i].name);
        free(c->consumers[i].allow);
    }
    free(c->consumers);
    free(c->file);
    free(c->listen_address);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->public_url);
    free(c->access_log);
    for (size_t i = 0; i < c->nresolvers; i++)
        free(c->resolvers[i]);
    free(c->resolvers);
    if (c->redis_url)
        OPENSSL_cleanse(c->redis_url, strlen(c->redis_url));
    free(c->redis_url);
    free(c->redis_host);
    if (c->redis_password)
        OPENSSL_cleanse(c->redis_password, strlen(c->redis_password));
    free(c->redis_password);
    free(c->redis_prefix);
    OPENSSL_cleanse(c->session_key, sizeof c->session_key);
    free(c);
}

int pg_conf_upstream(const struct pg_conf *c, const char *name, size_t n)
{
    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct pg_upstream *u = &c->upstreams[i];
        if (u->name && u->name_len == n && !memcmp(u->name, name, n))
            return (int)i;
    }
    return -1;
}
