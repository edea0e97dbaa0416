/* cstore.c -- rate_limit_store (SPEC sections 4.1 and 7): type, the redis url and its parts,
 * prefix, timeout, on_error, session_key; and the rule that a session adapter with a redis
 * store needs session_key. */
#include "cstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util.h"

/* s with every ${NAME} inside it replaced from the environment (SPEC 4.1: a password inside the
 * url), into a heap string. NULL with the message written. */
static char *expand_env(struct pg_cwalk *cx, const yaml_node_t *v, const char *s)
{
    size_t cap = strlen(s) + 1, n = 0;
    char *out = malloc(cap);
    while (out && *s) {
        const char *add = s, *close = NULL;
        size_t an = 1;
        if (s[0] == '$' && s[1] == '{' && (close = strchr(s + 2, '}'))) {
            char name[128];
            size_t nn = (size_t)(close - s - 2);
            if (nn == 0 || nn >= sizeof name) {
                free(out);
                pg_cwalk_fail(cx, v, "malformed environment reference (use ${NAME})");
                return NULL;
            }
            memcpy(name, s + 2, nn);
            name[nn] = '\0';
            if (!(add = getenv(name))) {
                free(out);
                pg_cwalk_fail(cx, v, "environment variable '%s' is not set", name);
                return NULL;
            }
            an = strlen(add);
        }
        if (n + an + 1 > cap) {
            char *o = realloc(out, cap = n + an + 1 + cap);
            if (!o)
                OPENSSL_cleanse(out, n);
            out = o;
            if (!out)
                break;
        }
        memcpy(out + n, add, an);
        n += an;
        s = close ? close + 1 : s + 1;
    }
    if (!out) {
        pg_cwalk_fail(cx, v, "out of memory");
        return NULL;
    }
    out[n] = '\0';
    return out;
}

struct store_raw {
    int type; /* local|redis */
    char *url;
    int on_error; /* allow|deny */
    char *prefix;
    uint64_t timeout_ms;
    struct pg_secret session_key;
};

static const struct pg_conf_key store_keys[] = {
    { "type", PG_CONF_ENUM, 0, offsetof(struct store_raw, type), "local|redis", NULL },
    { "url", PG_CONF_STRING, 0, offsetof(struct store_raw, url), NULL, NULL },
    { "on_error", PG_CONF_ENUM, 0, offsetof(struct store_raw, on_error), "allow|deny", NULL },
    { "prefix", PG_CONF_STRING, 0, offsetof(struct store_raw, prefix), NULL, NULL },
    { "timeout", PG_CONF_DURATION, PG_CWALK_POSITIVE, offsetof(struct store_raw, timeout_ms), NULL,
      NULL },
    { "session_key", PG_CONF_SECRET, 0, offsetof(struct store_raw, session_key), NULL, NULL },
    { 0 },
};

/* *url from the url's node v as written, its ${NAME}s expanded once, and it must be a redis://
 * one. The node's raw text, not the string the key reader made: that one has a whole-value
 * ${NAME} expanded already, and expanding it again would take a password holding "${" for a
 * variable and name part of it in the error. 0 ok, -1 with the message. */
static int expand_url(struct pg_cwalk *cx, const yaml_node_t *v, char **url)
{
    const char *s;
    size_t n;
    if (pg_cwalk_scalar(cx, v, &s, &n))
        return -1;
    char *raw = strndup(s, n);
    char *u = raw ? expand_env(cx, v, raw) : NULL;
    if (raw) {
        OPENSSL_cleanse(raw, n);
        free(raw);
    } else {
        pg_cwalk_fail(cx, v, "out of memory");
    }
    if (!u)
        return -1;
    OPENSSL_cleanse(*url, strlen(*url));
    free(*url);
    *url = u;
    if (strncmp(u, "redis://", 8) || !u[8])
        return pg_cwalk_fail(cx, v, "bad url (must start with redis://)");
    return 0;
}

/* redis://[[user]:password@]host[:port][/db] into c's redis_* parts. 0 ok, -1 with *why. */
static int split_redis_url(struct pg_conf *c, const char *url, const char **why)
{
    const char *p = url + 8, *at = strrchr(p, '@'), *h = at ? at + 1 : p;
    const char *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(end - h));
    *why = "out of memory";
    if (at) {
        const char *pc = memchr(p, ':', (size_t)(at - p));
        if (!pc || pc + 1 == at) {
            *why = "the user info needs a password (redis://:password@host)";
            return -1;
        }
        if (!(c->redis_password = strndup(pc + 1, (size_t)(at - pc - 1))))
            return -1;
    }
    uint64_t port = 6379, db = 0;
    const char *e;
    if (colon && (pg_cwalk_uint(colon + 1, &port, &e) || e != end || port < 1 || port > 65535)) {
        *why = "bad port";
        return -1;
    }
    if (slash && slash[1] && (pg_cwalk_uint(slash + 1, &db, &e) || *e || db > 1000)) {
        *why = "bad database number";
        return -1;
    }
    size_t hn = (size_t)((colon ? colon : end) - h);
    if (hn == 0 || hn > 253) {
        *why = "no host";
        return -1;
    }
    if (!(c->redis_host = strndup(h, hn)))
        return -1;
    c->redis_port = (uint16_t)port;
    c->redis_db = (unsigned)db;
    return 0;
}

/* The prefix goes into every key: printable, no spaces, so a key reads back as it was made. */
static bool prefix_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~')
            return false;
    return true;
}

static int hex32(const struct pg_secret *k, uint8_t out[32])
{
    const char *s = k->p;
    if (k->n != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        int a = pg_hexval(s[2 * i]), b = pg_hexval(s[2 * i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

static void store_raw_free(struct store_raw *r)
{
    if (r->url)
        OPENSSL_cleanse(r->url, strlen(r->url));
    if (r->session_key.p)
        OPENSSL_cleanse(r->session_key.p, r->session_key.n);
    free(r->url);
    free(r->prefix);
    free(r->session_key.p);
    r->url = r->prefix = r->session_key.p = NULL;
}

int pg_conf_set_store(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_conf *c = base;
    struct store_raw r = { 0 };
    const char *why;
    int rc = pg_cwalk_keys(cx, v, store_keys, &r, NULL, NULL);
    (void)k;
    if (!rc && r.type == 1 && !r.url)
        rc = pg_cwalk_fail(cx, v, "type redis needs a url (redis://host:6379/0)");
    if (!rc && r.type == 0 && (r.url || r.prefix || r.timeout_ms || r.session_key.p))
        rc = pg_cwalk_fail(cx, v, "url, prefix, timeout and session_key are only for type redis");
    if (!rc && r.url && expand_url(cx, pg_cwalk_map_get(cx, v, "url"), &r.url))
        rc = -1;
    if (!rc && r.url && split_redis_url(c, r.url, &why))
        rc = pg_cwalk_fail(cx, pg_cwalk_map_get(cx, v, "url"), "bad url: %s", why);
    if (!rc && r.prefix && !prefix_ok(r.prefix))
        rc = pg_cwalk_fail(cx, pg_cwalk_map_get(cx, v, "prefix"),
                           "bad prefix (1 to 64 printable characters, no spaces)");
    if (!rc && r.timeout_ms > 10000)
        rc = pg_cwalk_fail(cx, pg_cwalk_map_get(cx, v, "timeout"), "at most 10s");
    if (!rc && r.session_key.p && hex32(&r.session_key, c->session_key))
        rc = pg_cwalk_fail(cx, pg_cwalk_map_get(cx, v, "session_key"),
                           "must be 64 hex characters (32 bytes: openssl rand -hex 32)");
    if (rc) {
        store_raw_free(&r);
        return -1;
    }
    c->store = r.type ? PG_STORE_REDIS : PG_STORE_LOCAL;
    free(c->redis_url);
    c->redis_url = r.url;
    r.url = NULL;
    c->redis_on_error_allow = r.on_error == 0;
    if (r.prefix) {
        free(c->redis_prefix);
        c->redis_prefix = r.prefix;
        r.prefix = NULL;
    }
    if (r.timeout_ms)
        c->redis_timeout_ms = r.timeout_ms;
    c->has_session_key = r.session_key.p != NULL;
    store_raw_free(&r);
    return 0;
}
/* SPEC 4.1: sessions go to redis encrypted, so a session adapter with the redis store needs
 * session_key. 0 ok, -1 with the message. */
int pg_conf_redis_needs_key(const struct pg_conf *c, char *err, size_t cap)
{
    if (c->store != PG_STORE_REDIS || c->has_session_key)
        return 0;
    for (size_t i = 0; i < c->nupstreams; i++)
        if (c->upstreams[i].auth && c->upstreams[i].auth->build_login) {
            snprintf(err, cap,
                     "%s: rate_limit_store: type redis needs session_key (64 hex characters): "
                     "upstream %s logs in, and its sessions are stored encrypted",
                     c->file, c->upstreams[i].name);
            return -1;
        }
    return 0;
}
