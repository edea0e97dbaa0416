/* conf.c -- YAML config loader (SPEC section 7). One table-driven key walker types, defaults and
 * validates every section, core and plugin alike; errors read FILE:LINE:COL: path: what. */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "h1.h"

#define CONF_MAX_FILE (4u << 20)    /* a config file larger than 4 MiB is a mistake */
#define SECRET_MAX_FILE (64u << 10) /* file:/path secrets */
#define NAME_MAX_LEN 64             /* upstream and consumer names */
#define RATE_MAX 1000000000ull      /* tokens per period, and burst: keeps bucket math in 64 bits */
#define WORKERS_MAX 1024

/* Core-only flag for DURATION, SIZE and UINT keys: zero is refused. */
#define K_POSITIVE 0x100u

/* Core-only key types, numbered above the public enum pg_conf_type (room to grow it), so one
 * walker parses the core sections and plugin tables alike. Plugins never use these. */
enum core_type {
    K_PORT = 32,     /* uint16_t, 1..65535 */
    K_WORKERS,       /* unsigned: N >= 1 or "auto" (0) */
    K_ACCESS_LOG,    /* char *: "stdout", a path, or "off" (NULL) */
    K_HTTP_URL,      /* char *: http:// or https://, trailing '/' stripped */
    K_REDIS_URL,     /* char *: redis:// */
    K_FILE,          /* char *: a path that must be readable now */
    K_UPSTREAM_NAME, /* char *: [a-z0-9_-]+, not _gateway */
    K_CONSUMER_NAME, /* char *: [A-Za-z0-9_.-]+ */
    K_ROUTE_PATH,    /* char *: normalised absolute path */
    K_KEY_SHA256,    /* uint8_t[32] from "sha256:<64 hex>" */
    K_RATE,          /* struct rate: "N/s", "N/min", "N/hour" */
    K_RATE_LIMIT,    /* struct pg_rate_limit */
    K_STORE,         /* rate_limit_store, base is struct pg_conf */
    K_CONSUMERS,     /* base is struct pg_conf */
    K_UPSTREAMS,     /* base is struct pg_conf */
    K_ALLOW,         /* base is struct pg_consumer */
    K_ROUTES,        /* base is struct pg_upstream */
    K_AUTH,          /* base is struct pg_upstream */
    K_NTYPES
};
#define CORE(t) ((enum pg_conf_type)(t))
_Static_assert((int)PG_CONF_OBJECT < (int)K_PORT, "public key types must stay below the core ones");

/* An allow entry naming an upstream, until upstream names are known (they may come later). */
#define ALLOW_UNRESOLVED (-2)

struct ctx {
    const char *file;
    yaml_document_t *doc;
    char *err;
    size_t errcap;
    char path[256]; /* where we are, e.g. "upstreams[1].auth", for messages */
    size_t plen;
};

typedef int set_fn(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base);

/* ---- messages ---- */

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *cx, const yaml_node_t *n,
                                                      const char *fmt, ...)
{
    if (cx->errcap == 0)
        return -1;
    int off = snprintf(cx->err, cx->errcap, "%s:%zu:%zu: ", cx->file, n->start_mark.line + 1,
                       n->start_mark.column + 1);
    if (off >= 0 && (size_t)off < cx->errcap && cx->plen) {
        int m = snprintf(cx->err + off, cx->errcap - (size_t)off, "%s: ", cx->path);
        off = m < 0 ? m : off + m;
    }
    if (off >= 0 && (size_t)off < cx->errcap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cx->err + off, cx->errcap - (size_t)off, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Append ".name" (or "name" at the top) or "[i]" to the path; returns the length to restore. */
static size_t path_key(struct ctx *cx, const char *name)
{
    size_t old = cx->plen;
    int n = snprintf(cx->path + old, sizeof cx->path - old, "%s%s", old ? "." : "", name);
    if (n > 0)
        cx->plen = old + (size_t)n < sizeof cx->path ? old + (size_t)n : sizeof cx->path - 1;
    return old;
}

static size_t path_index(struct ctx *cx, size_t i)
{
    size_t old = cx->plen;
    int n = snprintf(cx->path + old, sizeof cx->path - old, "[%zu]", i);
    if (n > 0)
        cx->plen = old + (size_t)n < sizeof cx->path ? old + (size_t)n : sizeof cx->path - 1;
    return old;
}

static void path_pop(struct ctx *cx, size_t old)
{
    cx->plen = old;
    cx->path[old] = '\0';
}

/* ---- nodes ---- */

static yaml_node_t *node_at(const struct ctx *cx, int i)
{
    return yaml_document_get_node(cx->doc, i);
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_SCALAR_NODE:
        return is_null(n) ? "nothing" : "a value";
    default:
        return "nothing";
    }
}

static int want_mapping(struct ctx *cx, const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE ? 0 : fail(cx, n, "expected a mapping, got %s", kind(n));
}

static int want_list(struct ctx *cx, const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? 0 : fail(cx, n, "expected a list, got %s", kind(n));
}

static size_t list_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *list_item(const struct ctx *cx, const yaml_node_t *n, size_t i)
{
    return node_at(cx, n->data.sequence.items.start[i]);
}

/* The value of key `name` in mapping m, NULL if absent (or m is not a mapping). */
static yaml_node_t *map_get(const struct ctx *cx, const yaml_node_t *m, const char *name)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (const yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = node_at(cx, p->key);
        if (kn->type == YAML_SCALAR_NODE && !strcmp((const char *)kn->data.scalar.value, name))
            return node_at(cx, p->value);
    }
    return NULL;
}

/* A non-null scalar's raw bytes. */
static int scalar(struct ctx *cx, const yaml_node_t *v, const char **s, size_t *n)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(cx, v, "expected a value, got %s", kind(v));
    *s = (const char *)v->data.scalar.value;
    *n = v->data.scalar.length;
    if (memchr(*s, '\0', *n))
        return fail(cx, v, "contains a NUL byte");
    return 0;
}

/* Is (s, n) exactly "${NAME}"? 1 and NAME in `name`; 0 if it does not start with "${";
 * -1 if it does but is malformed. */
static int env_ref(const char *s, size_t n, char *name, size_t cap)
{
    if (n < 2 || s[0] != '$' || s[1] != '{')
        return 0;
    if (n < 4 || s[n - 1] != '}' || n - 3 >= cap)
        return -1;
    for (size_t i = 2; i < n - 1; i++) {
        char c = s[i];
        bool ok = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (i > 2 && c >= '0' && c <= '9');
        if (!ok)
            return -1;
    }
    memcpy(name, s + 2, n - 3);
    name[n - 3] = '\0';
    return 1;
}

/* A scalar's text, with a whole-value "${NAME}" read from the environment. Borrowed. */
static int text(struct ctx *cx, const yaml_node_t *v, const char **out)
{
    const char *s;
    size_t n;
    char name[128];
    if (scalar(cx, v, &s, &n))
        return -1;
    int r = env_ref(s, n, name, sizeof name);
    if (r < 0)
        return fail(cx, v, "malformed environment reference (use ${NAME})");
    if (r == 0) {
        *out = s;
        return 0;
    }
    const char *e = getenv(name);
    if (!e)
        return fail(cx, v, "environment variable '%s' is not set", name);
    *out = e;
    return 0;
}

static int set_str(struct ctx *cx, const yaml_node_t *v, char **slot, const char *s)
{
    char *d = strdup(s);
    if (!d)
        return fail(cx, v, "out of memory");
    free(*slot);
    *slot = d;
    return 0;
}

/* ---- secrets ---- */

void pg_secret_free(struct pg_secret *s)
{
    if (!s || !s->p)
        return;
    OPENSSL_cleanse(s->p, s->n);
    free(s->p);
    s->p = NULL;
    s->n = 0;
}

void pg_kv_list_free(struct pg_kv_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        pg_secret_free(&l->v[i].value);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* A whole regular file (at most `max` bytes) as a NUL-terminated heap string; NULL with *why
 * set. Anything else (a FIFO, /dev/zero, a terminal) is refused before a byte is read, and the
 * read is non-blocking, so no path can hang the loader or feed it without end. */
static char *read_file(const char *path, size_t max, size_t *len, const char **why)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb)) {
        *why = strerror(errno);
        close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        *why = "not a regular file";
        close(fd);
        return NULL;
    }
    size_t cap = 0, n = 0;
    char *b = NULL;
    int err = 0;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max) {
                err = EFBIG;
                break;
            }
            /* grow by copying, so the old bytes (maybe a secret) are wiped, not left behind */
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = malloc(ncap);
            if (!nb) {
                err = ENOMEM;
                break;
            }
            if (b) {
                memcpy(nb, b, n);
                OPENSSL_cleanse(b, n);
                free(b);
            }
            b = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, b + n, cap - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            err = errno; /* EAGAIN: a /proc or /sys file that would block */
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (!err && n > max)
        err = EFBIG;
    if (err) {
        if (b) {
            OPENSSL_cleanse(b, n);
            free(b);
        }
        *why = strerror(err);
        return NULL;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

/* "${NAME}" -> environment, "file:/path" -> file contents minus one trailing newline, else the
 * literal. Never puts the value in a message. */
static int secret_load(struct ctx *cx, const yaml_node_t *v, struct pg_secret *out)
{
    const char *s;
    size_t n;
    char name[128];
    char *buf = NULL;
    if (scalar(cx, v, &s, &n))
        return -1;
    int r = env_ref(s, n, name, sizeof name);
    if (r < 0)
        return fail(cx, v, "malformed environment reference (use ${NAME})");
    if (r > 0) {
        s = getenv(name);
        if (!s)
            return fail(cx, v, "environment variable '%s' is not set", name);
        n = strlen(s);
    } else if (n > 5 && !memcmp(s, "file:", 5)) {
        const char *why;
        buf = read_file(s + 5, SECRET_MAX_FILE, &n, &why);
        if (!buf)
            return fail(cx, v, "cannot read file '%s': %s", s + 5, why);
        if (n && buf[n - 1] == '\n')
            n--;
        if (n && buf[n - 1] == '\r')
            n--;
        s = buf;
    }
    int rc = 0;
    if (n == 0)
        rc = fail(cx, v, "secret is empty");
    else if (memchr(s, '\0', n))
        rc = fail(cx, v, "secret contains a NUL byte");
    char *p = rc ? NULL : malloc(n + 1);
    if (!rc && !p)
        rc = fail(cx, v, "out of memory");
    if (!rc) {
        memcpy(p, s, n);
        p[n] = '\0';
        pg_secret_free(out);
        out->p = p;
        out->n = n;
    }
    if (buf) {
        OPENSSL_cleanse(buf, n);
        free(buf);
    }
    return rc;
}

/* ---- value parsers ---- */

/* Leading decimal digits of s as a number; *end after them. -1 if none or overflow. */
static int parse_uint(const char *s, uint64_t *out, const char **end)
{
    if (*s < '0' || *s > '9')
        return -1; /* strtoull would accept " ", "+" and "-" (wrapping) */
    char *e;
    errno = 0;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno == ERANGE || v > UINT64_MAX)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

static int scaled(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

int pg_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = { { "ms", 1 }, { "s", 1000 }, { "min", 60000 }, { "h", 3600000 } };
    uint64_t v;
    const char *e;
    if (parse_uint(s, &v, &e))
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(e, units[i].unit))
            return scaled(v, units[i].ms, out);
    return -1; /* a bare number is refused: seconds or milliseconds? */
}

int pg_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t bytes;
    } units[] = { { "", 1 }, { "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 } };
    uint64_t v;
    const char *e;
    if (parse_uint(s, &v, &e))
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(e, units[i].unit))
            return scaled(v, units[i].bytes, out);
    return -1;
}

int pg_parse_rate(const char *s, uint64_t *n, uint64_t *period_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = { { "/s", 1000 }, { "/min", 60000 }, { "/hour", 3600000 } };
    uint64_t v;
    const char *e;
    if (parse_uint(s, &v, &e) || v < 1 || v > RATE_MAX)
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

/* ---- the key walker ---- */

static set_fn *const setters[K_NTYPES];

static void *slot(void *base, const struct pg_conf_key *k)
{
    return (char *)base + k->offset;
}

/* Parse mapping m into base with the {0}-terminated table keys: every key known, none twice,
 * required ones present. `skip` names one key handled by the caller (auth `type`). Bit i of
 * *seen (may be NULL) is set when keys[i] was given. */
static int walk(struct ctx *cx, yaml_node_t *m, const struct pg_conf_key *keys, void *base,
                const char *skip, uint64_t *seen)
{
    static const struct pg_conf_key none[] = { { 0 } };
    uint64_t got = 0;
    if (!keys)
        keys = none;
    if (want_mapping(cx, m))
        return -1;
    for (const yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = node_at(cx, p->key);
        if (kn->type != YAML_SCALAR_NODE)
            return fail(cx, kn, "a key must be a plain name, got %s", kind(kn));
        const char *name = (const char *)kn->data.scalar.value;
        for (const yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *qn = node_at(cx, q->key);
            if (qn->type == YAML_SCALAR_NODE && !strcmp((const char *)qn->data.scalar.value, name))
                return fail(cx, kn, "duplicate key '%s'", name);
        }
        if (skip && !strcmp(name, skip))
            continue;
        size_t i = 0;
        while (keys[i].name && strcmp(keys[i].name, name))
            i++;
        if (!keys[i].name)
            return fail(cx, kn, "unknown key '%s'", name);
        size_t t = (size_t)keys[i].type;
        if (i >= 64 || t >= K_NTYPES || !setters[t])
            return fail(cx, kn, "key '%s' has a bad declaration", name); /* programmer error */
        got |= 1ull << i;
        size_t old = path_key(cx, name);
        int rc = setters[t](cx, &keys[i], node_at(cx, p->value), base);
        path_pop(cx, old);
        if (rc)
            return -1;
    }
    for (size_t i = 0; keys[i].name && i < 64; i++)
        if ((keys[i].flags & PG_REQUIRED) && !(got & (1ull << i)))
            return fail(cx, m, "missing required key '%s'", keys[i].name);
    if (seen)
        *seen = got;
    return 0;
}

/* ---- setters for the public types ---- */

static int set_string(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    return text(cx, v, &s) ? -1 : set_str(cx, v, slot(base, k), s);
}

static int set_secret(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    return secret_load(cx, v, slot(base, k));
}

static int set_enum(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s, *vals = k->enum_vals ? k->enum_vals : "";
    if (text(cx, v, &s))
        return -1;
    size_t sn = strlen(s);
    int idx = 0;
    for (const char *p = vals;; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == sn && !memcmp(p, s, n)) {
            *(int *)slot(base, k) = idx;
            return 0;
        }
        if (!bar)
            break;
        p = bar + 1;
    }
    char list[160];
    size_t j = 0;
    for (const char *p = vals; *p && j + 3 < sizeof list; p++) {
        if (*p == '|') {
            list[j++] = ',';
            list[j++] = ' ';
        } else {
            list[j++] = *p;
        }
    }
    list[j] = '\0';
    return fail(cx, v, "bad value '%.64s' (one of: %s)", s, list);
}

static int set_number(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    uint64_t x;
    const char *e;
    if (text(cx, v, &s))
        return -1;
    switch ((int)k->type) {
    case PG_CONF_DURATION:
        if (pg_parse_duration_ms(s, &x))
            return fail(cx, v, "bad duration '%.64s' (a whole number and ms, s, min or h: 10s)", s);
        break;
    case PG_CONF_SIZE:
        if (pg_parse_size(s, &x))
            return fail(cx, v, "bad size '%.64s' (a whole number of bytes, KiB, MiB or GiB)", s);
        break;
    default:
        if (parse_uint(s, &x, &e) || *e)
            return fail(cx, v, "bad number '%.64s' (a whole number)", s);
        break;
    }
    if ((k->flags & K_POSITIVE) && x == 0)
        return fail(cx, v, "must be greater than zero");
    *(uint64_t *)slot(base, k) = x;
    return 0;
}

static int set_bool(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    if (text(cx, v, &s))
        return -1;
    bool *b = slot(base, k);
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *b = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *b = false;
    else
        return fail(cx, v, "bad value '%.64s' (true or false)", s);
    return 0;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A map of header name -> secret value; names are HTTP tokens, unique ignoring case. */
static int set_headers(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_kv_list *l = slot(base, k);
    if (want_mapping(cx, v))
        return -1;
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    pg_kv_list_free(l);
    if (n == 0)
        return fail(cx, v, "expected at least one header");
    l->v = calloc(n, sizeof *l->v);
    if (!l->v)
        return fail(cx, v, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        const yaml_node_t *kn = node_at(cx, p->key);
        const char *name;
        size_t nn;
        if (scalar(cx, kn, &name, &nn))
            return -1;
        for (size_t j = 0; j < nn; j++)
            if (!is_tchar(name[j]))
                return fail(cx, kn, "bad header name '%.64s'", name);
        for (size_t j = 0; j < l->n; j++)
            if (!strcasecmp(l->v[j].name, name))
                return fail(cx, kn, "duplicate header '%s'", name);
        l->v[i].name = strdup(name);
        l->n = i + 1;
        if (!l->v[i].name)
            return fail(cx, kn, "out of memory");
        size_t old = path_key(cx, name);
        int rc = secret_load(cx, node_at(cx, p->value), &l->v[i].value);
        if (!rc && strpbrk(l->v[i].value.p, "\r\n"))
            rc = fail(cx, node_at(cx, p->value), "header value contains CR or LF");
        path_pop(cx, old);
        if (rc)
            return -1;
    }
    return 0;
}

static int set_object(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    return walk(cx, v, k->sub, slot(base, k), NULL, NULL);
}

/* ---- setters for the core types ---- */

static int set_port(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s, *e;
    uint64_t x;
    if (text(cx, v, &s))
        return -1;
    if (parse_uint(s, &x, &e) || *e || x < 1 || x > 65535)
        return fail(cx, v, "bad port '%.64s' (1 to 65535)", s);
    *(uint16_t *)slot(base, k) = (uint16_t)x;
    return 0;
}

static int set_workers(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s, *e;
    uint64_t x = 0;
    if (text(cx, v, &s))
        return -1;
    if (strcmp(s, "auto") && (parse_uint(s, &x, &e) || *e || x < 1 || x > WORKERS_MAX))
        return fail(cx, v, "bad value '%.64s' (1 to %d, or auto)", s, WORKERS_MAX);
    *(unsigned *)slot(base, k) = (unsigned)x;
    return 0;
}

static int set_access_log(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    char **p = slot(base, k);
    if (text(cx, v, &s))
        return -1;
    if (!strcmp(s, "off")) {
        free(*p);
        *p = NULL;
        return 0;
    }
    return set_str(cx, v, p, s);
}

static int set_http_url(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    if (text(cx, v, &s))
        return -1;
    size_t skip = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
    if (!skip)
        return fail(cx, v, "bad url '%.64s' (must start with http:// or https://)", s);
    if (!s[skip] || s[skip] == '/')
        return fail(cx, v, "bad url '%.64s' (no host)", s);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return fail(cx, v, "bad url '%.64s' (no spaces, query or fragment)", s);
    if (set_str(cx, v, slot(base, k), s))
        return -1;
    char *u = *(char **)slot(base, k);
    size_t n = strlen(u);
    while (n > skip && u[n - 1] == '/')
        u[--n] = '\0';
    return 0;
}

static int set_redis_url(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    if (text(cx, v, &s))
        return -1;
    if (strncmp(s, "redis://", 8) || !s[8])
        return fail(cx, v, "bad url (must start with redis://)");
    return set_str(cx, v, slot(base, k), s);
}

static int set_file(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    if (text(cx, v, &s))
        return -1;
    if (access(s, R_OK))
        return fail(cx, v, "cannot read '%s': %s", s, strerror(errno));
    return set_str(cx, v, slot(base, k), s);
}

static int set_name(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    bool up = (int)k->type == K_UPSTREAM_NAME;
    if (text(cx, v, &s))
        return -1;
    size_t n = strlen(s);
    bool ok = n <= NAME_MAX_LEN;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
             (!up && ((c >= 'A' && c <= 'Z') || c == '.'));
    }
    if (!ok)
        return fail(cx, v, "bad name '%.64s' (%s, at most %d)", s,
                    up ? "a-z, 0-9, '_' and '-'" : "letters, digits, '_', '-' and '.'",
                    NAME_MAX_LEN);
    if (up && !strcmp(s, "_gateway"))
        return fail(cx, v, "the name '_gateway' is reserved");
    return set_str(cx, v, slot(base, k), s);
}

static int set_route_path(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    if (text(cx, v, &s))
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
        return fail(cx, v, "bad path '%.64s' (a normalised path starting with '/')", s);
    return set_str(cx, v, slot(base, k), s);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int set_key_sha256(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    uint8_t *d = slot(base, k);
    if (text(cx, v, &s))
        return -1;
    bool ok = !strncmp(s, "sha256:", 7) && strlen(s + 7) == 64;
    for (size_t i = 0; ok && i < 32; i++) {
        int hi = hexval(s[7 + 2 * i]), lo = hexval(s[8 + 2 * i]);
        ok = hi >= 0 && lo >= 0;
        if (ok)
            d[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!ok)
        return fail(cx, v, "bad key (sha256: and 64 hex digits, from `panelgate keygen`)");
    return 0;
}

struct rate {
    uint64_t n, period_ms;
};

static int set_rate(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    struct rate *r = slot(base, k);
    if (text(cx, v, &s))
        return -1;
    if (pg_parse_rate(s, &r->n, &r->period_ms))
        return fail(cx, v, "bad rate '%.64s' (N/s, N/min or N/hour, N from 1 to %llu)", s,
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
    { "burst", PG_CONF_UINT, K_POSITIVE, offsetof(struct rl_raw, burst), NULL, NULL },
    { "mode", PG_CONF_ENUM, 0, offsetof(struct rl_raw, mode), "reject|queue", NULL },
    { "max_wait", PG_CONF_DURATION, 0, offsetof(struct rl_raw, max_wait_ms), NULL, NULL },
    { 0 },
};

#define RL_BURST_SEEN (1u << 1) /* rl_keys[1] */

static int set_rate_limit(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct rl_raw r = { 0 };
    uint64_t seen;
    if (walk(cx, v, rl_keys, &r, NULL, &seen))
        return -1;
    if (!(seen & RL_BURST_SEEN)) {
        /* one second's worth, rounded up: at least 1 since rate.n >= 1 */
        r.burst = (r.rate.n * 1000 + r.rate.period_ms - 1) / r.rate.period_ms;
    } else if (r.burst > RATE_MAX) {
        size_t old = path_key(cx, "burst");
        fail(cx, map_get(cx, v, "burst"), "too large (at most %llu)", RATE_MAX);
        path_pop(cx, old);
        return -1;
    }
    struct pg_rate_limit *rl = slot(base, k);
    *rl = (struct pg_rate_limit){ .set = true,
                                  .rate_n = r.rate.n,
                                  .rate_period_ms = r.rate.period_ms,
                                  .burst = r.burst,
                                  .mode = r.mode ? PG_RL_QUEUE : PG_RL_REJECT,
                                  .max_wait_ms = r.max_wait_ms };
    return 0;
}

struct store_raw {
    int type; /* local|redis */
    char *url;
    int on_error; /* allow|deny */
};

static const struct pg_conf_key store_keys[] = {
    { "type", PG_CONF_ENUM, 0, offsetof(struct store_raw, type), "local|redis", NULL },
    { "url", CORE(K_REDIS_URL), 0, offsetof(struct store_raw, url), NULL, NULL },
    { "on_error", PG_CONF_ENUM, 0, offsetof(struct store_raw, on_error), "allow|deny", NULL },
    { 0 },
};

static int set_store(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_conf *c = base;
    struct store_raw r = { 0 };
    int rc = walk(cx, v, store_keys, &r, NULL, NULL);
    (void)k;
    if (!rc && r.type == 1 && !r.url)
        rc = fail(cx, v, "type redis needs a url (redis://host:6379/0)");
    if (!rc && r.type == 0 && r.url)
        rc = fail(cx, map_get(cx, v, "url"), "url is only for type redis");
    if (rc) {
        free(r.url);
        return -1;
    }
    free(c->redis_url);
    c->store = r.type ? PG_STORE_REDIS : PG_STORE_LOCAL;
    c->redis_url = r.url;
    c->redis_on_error_allow = r.on_error == 0;
    return 0;
}

/* allow: [name, "*", "name:GET,POST"]; names are resolved once all upstreams are known. */
static int set_allow(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_consumer *cs = base;
    (void)k;
    if (want_list(cx, v))
        return -1;
    free(cs->allow);
    cs->nallow = 0;
    cs->allow = calloc(list_len(v) ? list_len(v) : 1, sizeof *cs->allow);
    if (!cs->allow)
        return fail(cx, v, "out of memory");
    for (size_t i = 0; i < list_len(v); i++) {
        const yaml_node_t *it = list_item(cx, v, i);
        struct pg_allow *a = &cs->allow[i];
        const char *s;
        size_t n;
        size_t old = path_index(cx, i);
        if (scalar(cx, it, &s, &n))
            return -1;
        const char *colon = memchr(s, ':', n);
        size_t name_n = colon ? (size_t)(colon - s) : n;
        int rc = 0;
        if (name_n == 0)
            rc = fail(cx, it, "bad entry '%.64s' (an upstream name or *)", s);
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
                rc = fail(cx, it,
                          "unknown method '%.*s' (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)",
                          (int)(e - p), p);
            a->methods |= bit;
            p = comma ? comma + 1 : NULL;
        }
        path_pop(cx, old);
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

static int set_routes(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_upstream *u = base;
    (void)k;
    if (want_list(cx, v))
        return -1;
    size_t n = list_len(v);
    u->routes = calloc(n ? n : 1, sizeof *u->routes);
    if (!u->routes)
        return fail(cx, v, "out of memory");
    u->nroutes = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = list_item(cx, v, i);
        struct pg_route_conf *r = &u->routes[i];
        size_t old = path_index(cx, i);
        int rc = walk(cx, it, route_keys, r, NULL, NULL);
        if (!rc)
            r->path_len = strlen(r->path);
        for (size_t j = 0; !rc && j < i; j++)
            if (!strcmp(u->routes[j].path, r->path))
                rc = fail(cx, map_get(cx, it, "path"), "duplicate route path '%s'", r->path);
        path_pop(cx, old);
        if (rc)
            return -1;
    }
    return 0;
}

/* auth: {type: ..., plugin keys}: the plugin's own table, then its init. */
static int set_auth(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_upstream *u = base;
    (void)k;
    if (want_mapping(cx, v))
        return -1;
    const yaml_node_t *tn = map_get(cx, v, "type");
    if (!tn)
        return fail(cx, v, "missing required key 'type'");
    const char *type;
    size_t old = path_key(cx, "type");
    int rc = text(cx, tn, &type);
    if (!rc && !(u->auth = pg_plugin_find(type)))
        rc = fail(cx, tn, "unknown auth type '%.64s'", type);
    path_pop(cx, old);
    if (rc)
        return -1;
    /* from here on pg_conf_unref runs deinit, whatever was stored */
    u->auth_state = calloc(1, u->auth->state_size ? u->auth->state_size : 1);
    if (!u->auth_state) {
        u->auth = NULL;
        return fail(cx, v, "out of memory");
    }
    if (walk(cx, v, u->auth->keys, u->auth_state, "type", NULL))
        return -1;
    struct pg_err e = { 0 };
    if (u->auth->init && u->auth->init(u->auth_state, &e)) {
        /* the plugin's message names "auth:" itself; report it against the upstream */
        const char *dot = strrchr(cx->path, '.');
        old = cx->plen;
        if (dot)
            cx->plen = (size_t)(dot - cx->path);
        cx->path[cx->plen] = '\0';
        fail(cx, v, "%s", e.msg[0] ? e.msg : "auth: invalid configuration");
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
    { "timeout", PG_CONF_DURATION, K_POSITIVE, offsetof(struct pg_upstream, timeout_ms), NULL,
      NULL },
    { "tls", PG_CONF_OBJECT, 0, 0, NULL, up_tls_keys },
    { "auth", CORE(K_AUTH), 0, 0, NULL, NULL },
    { "rate_limit", CORE(K_RATE_LIMIT), 0, offsetof(struct pg_upstream, rl), NULL, NULL },
    { "routes", CORE(K_ROUTES), 0, 0, NULL, NULL },
    { 0 },
};

static int set_upstreams(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_conf *c = base;
    (void)k;
    if (want_list(cx, v))
        return -1;
    size_t n = list_len(v);
    if (n == 0)
        return fail(cx, v, "at least one upstream is required");
    c->upstreams = calloc(n, sizeof *c->upstreams);
    if (!c->upstreams)
        return fail(cx, v, "out of memory");
    c->nupstreams = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = list_item(cx, v, i);
        struct pg_upstream *u = &c->upstreams[i];
        u->timeout_ms = 10000;
        u->tls_verify = true;
        size_t old = path_index(cx, i);
        int rc = walk(cx, it, upstream_keys, u, NULL, NULL);
        if (!rc) {
            u->name_len = strlen(u->name);
            u->url_len = strlen(u->url);
            if (pg_h1_url_addr(u->url, &u->h1_addr, &u->h1_addrlen, &u->authority_off,
                               &u->authority_len))
                u->h1_addrlen = 0;
            int j = pg_conf_upstream(c, u->name, u->name_len);
            if (j >= 0 && (size_t)j < i)
                rc = fail(cx, map_get(cx, it, "name"), "duplicate upstream name '%s'", u->name);
        }
        path_pop(cx, old);
        if (rc)
            return -1;
    }
    return 0;
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

static int set_consumers(struct ctx *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_conf *c = base;
    (void)k;
    if (want_list(cx, v))
        return -1;
    size_t n = list_len(v);
    c->consumers = calloc(n ? n : 1, sizeof *c->consumers);
    if (!c->consumers)
        return fail(cx, v, "out of memory");
    c->nconsumers = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = list_item(cx, v, i);
        struct pg_consumer *cs = &c->consumers[i];
        size_t old = path_index(cx, i);
        int rc = walk(cx, it, consumer_keys, cs, NULL, NULL);
        for (size_t j = 0; !rc && j < i; j++) {
            if (!strcmp(c->consumers[j].name, cs->name))
                rc = fail(cx, map_get(cx, it, "name"), "duplicate consumer name '%s'", cs->name);
            else if (!CRYPTO_memcmp(c->consumers[j].key_sha256, cs->key_sha256, 32))
                rc = fail(cx, map_get(cx, it, "key"), "same key as consumer '%s'",
                          c->consumers[j].name);
        }
        path_pop(cx, old);
        if (rc)
            return -1;
    }
    return 0;
}

static set_fn *const setters[K_NTYPES] = {
    [PG_CONF_STRING] = set_string,
    [PG_CONF_SECRET] = set_secret,
    [PG_CONF_ENUM] = set_enum,
    [PG_CONF_DURATION] = set_number,
    [PG_CONF_SIZE] = set_number,
    [PG_CONF_BOOL] = set_bool,
    [PG_CONF_UINT] = set_number,
    [PG_CONF_HEADERS] = set_headers,
    [PG_CONF_OBJECT] = set_object,
    [K_PORT] = set_port,
    [K_WORKERS] = set_workers,
    [K_ACCESS_LOG] = set_access_log,
    [K_HTTP_URL] = set_http_url,
    [K_REDIS_URL] = set_redis_url,
    [K_FILE] = set_file,
    [K_UPSTREAM_NAME] = set_name,
    [K_CONSUMER_NAME] = set_name,
    [K_ROUTE_PATH] = set_route_path,
    [K_KEY_SHA256] = set_key_sha256,
    [K_RATE] = set_rate,
    [K_RATE_LIMIT] = set_rate_limit,
    [K_STORE] = set_store,
    [K_CONSUMERS] = set_consumers,
    [K_UPSTREAMS] = set_upstreams,
    [K_ALLOW] = set_allow,
    [K_ROUTES] = set_routes,
    [K_AUTH] = set_auth,
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
    { "max_header_bytes", PG_CONF_SIZE, K_POSITIVE, offsetof(struct pg_conf, max_header_bytes),
      NULL, NULL },
    { "max_body_bytes", PG_CONF_SIZE, 0, offsetof(struct pg_conf, max_body_bytes), NULL, NULL },
    { "client_timeout", PG_CONF_DURATION, K_POSITIVE, offsetof(struct pg_conf, client_timeout_ms),
      NULL, NULL },
    { "max_connections", PG_CONF_UINT, K_POSITIVE, offsetof(struct pg_conf, max_connections), NULL,
      NULL },
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
    { "consumers", CORE(K_CONSUMERS), 0, 0, NULL, NULL },
    { "upstreams", CORE(K_UPSTREAMS), PG_REQUIRED, 0, NULL, NULL },
    { 0 },
};

/* Allow entries name upstreams that may be declared after the consumers. */
static int resolve_allows(struct ctx *cx, struct pg_conf *c, const yaml_node_t *root)
{
    const yaml_node_t *cl = map_get(cx, root, "consumers");
    for (size_t i = 0; i < c->nconsumers; i++) {
        const yaml_node_t *al = map_get(cx, list_item(cx, cl, i), "allow");
        struct pg_consumer *cs = &c->consumers[i];
        for (size_t j = 0; j < cs->nallow; j++) {
            if (cs->allow[j].upstream != ALLOW_UNRESOLVED)
                continue;
            const yaml_node_t *it = list_item(cx, al, j);
            const char *s = (const char *)it->data.scalar.value;
            size_t n = strcspn(s, ":");
            cs->allow[j].upstream = pg_conf_upstream(c, s, n);
            if (cs->allow[j].upstream < 0) {
                path_key(cx, "consumers");
                path_index(cx, i);
                path_key(cx, "allow");
                path_index(cx, j);
                return fail(cx, it, "unknown upstream '%.*s'", (int)n, s);
            }
        }
    }
    return 0;
}

/* Aliases make one node appear twice (and can make cycles): refuse them before walking. */
static int no_aliases(struct ctx *cx)
{
    size_t n = (size_t)(cx->doc->nodes.top - cx->doc->nodes.start);
    unsigned char *refs = calloc(n + 1, 1);
    int rc = 0;
    if (!refs)
        return fail(cx, yaml_document_get_root_node(cx->doc), "out of memory");
    refs[1] = 1; /* the root */
    for (size_t i = 1; i <= n && !rc; i++) {
        const yaml_node_t *nd = node_at(cx, (int)i);
        int kids[2];
        if (nd->type == YAML_SEQUENCE_NODE) {
            for (const yaml_node_item_t *it = nd->data.sequence.items.start;
                 !rc && it < nd->data.sequence.items.top; it++)
                if (refs[*it]++)
                    rc = fail(cx, node_at(cx, *it), "anchors and aliases are not supported");
        } else if (nd->type == YAML_MAPPING_NODE) {
            for (const yaml_node_pair_t *p = nd->data.mapping.pairs.start;
                 !rc && p < nd->data.mapping.pairs.top; p++) {
                kids[0] = p->key;
                kids[1] = p->value;
                for (int j = 0; j < 2 && !rc; j++)
                    if (refs[kids[j]]++)
                        rc =
                            fail(cx, node_at(cx, kids[j]), "anchors and aliases are not supported");
            }
        }
    }
    free(refs);
    return rc;
}

static int yaml_fail(struct ctx *cx, const yaml_parser_t *p)
{
    if (cx->errcap == 0)
        return -1;
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(cx->err, cx->errcap, "%s: out of memory", cx->file);
        return -1;
    }
    snprintf(cx->err, cx->errcap, "%s:%zu:%zu: invalid YAML: %s%s%s", cx->file,
             p->problem_mark.line + 1, p->problem_mark.column + 1,
             p->problem ? p->problem : "syntax error", p->context ? " " : "",
             p->context ? p->context : "");
    return -1;
}

/* Scalars may hold secrets: wipe them before libyaml frees the document. */
static void doc_wipe(yaml_document_t *doc)
{
    for (yaml_node_t *n = doc->nodes.start; n < doc->nodes.top; n++)
        if (n->type == YAML_SCALAR_NODE)
            OPENSSL_cleanse(n->data.scalar.value, n->data.scalar.length);
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
    return c->listen_address && c->access_log ? 0 : -1;
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
    struct ctx cx = { .file = name, .err = errbuf, .errcap = errcap };
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool have_parser = false, have_doc = false;
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
    if (!yaml_parser_initialize(&parser)) {
        snprintf(errbuf, errcap, "%s: out of memory", name);
        goto out;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_fail(&cx, &parser);
        goto out;
    }
    have_doc = true;
    cx.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        snprintf(errbuf, errcap, "%s:1:1: the file is empty", name);
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_fail(&cx, &parser);
        goto out;
    }
    const yaml_node_t *second = yaml_document_get_root_node(&extra);
    bool several = second != NULL;
    if (several)
        fail(&cx, second, "only one YAML document is allowed");
    doc_wipe(&extra);
    yaml_document_delete(&extra);
    if (several || no_aliases(&cx))
        goto out;
    if (walk(&cx, root, top_keys, c, NULL, NULL) || resolve_allows(&cx, c, root))
        goto out;
    if (!c->public_url && default_public_url(c)) {
        snprintf(errbuf, errcap, "%s: out of memory", name);
        goto out;
    }
    rc = 0;
out:
    if (have_doc) {
        doc_wipe(&doc);
        yaml_document_delete(&doc);
    }
    if (have_parser)
        yaml_parser_delete(&parser);
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
    char *b = read_file(file, CONF_MAX_FILE, &n, &why);
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
    free(c->redis_url);
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
