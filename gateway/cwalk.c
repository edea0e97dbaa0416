/* cwalk.c -- the typed YAML key walker: one table-driven walk types, defaults and validates a
 * mapping, core and plugin tables alike; errors read FILE:LINE:COL: path: what. */
#include "cwalk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SECRET_MAX_FILE (64u << 10) /* file:/path secrets */

_Static_assert((int)PG_CONF_OBJECT < PG_CWALK_EXT,
               "public key types must stay below the caller's own");

/* ---- messages ---- */

__attribute__((format(printf, 3, 4))) int pg_cwalk_fail(struct pg_cwalk *cx, const yaml_node_t *n,
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
size_t pg_cwalk_path_key(struct pg_cwalk *cx, const char *name)
{
    size_t old = cx->plen;
    int n = snprintf(cx->path + old, sizeof cx->path - old, "%s%s", old ? "." : "", name);
    if (n > 0)
        cx->plen = old + (size_t)n < sizeof cx->path ? old + (size_t)n : sizeof cx->path - 1;
    return old;
}

size_t pg_cwalk_path_index(struct pg_cwalk *cx, size_t i)
{
    size_t old = cx->plen;
    int n = snprintf(cx->path + old, sizeof cx->path - old, "[%zu]", i);
    if (n > 0)
        cx->plen = old + (size_t)n < sizeof cx->path ? old + (size_t)n : sizeof cx->path - 1;
    return old;
}

void pg_cwalk_path_pop(struct pg_cwalk *cx, size_t old)
{
    cx->plen = old;
    cx->path[old] = '\0';
}

/* ---- nodes ---- */

static yaml_node_t *node_at(const struct pg_cwalk *cx, int i)
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

int pg_cwalk_want_mapping(struct pg_cwalk *cx, const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE
               ? 0
               : pg_cwalk_fail(cx, n, "expected a mapping, got %s", kind(n));
}

int pg_cwalk_want_list(struct pg_cwalk *cx, const yaml_node_t *n)
{
    return n->type == YAML_SEQUENCE_NODE ? 0
                                         : pg_cwalk_fail(cx, n, "expected a list, got %s", kind(n));
}

size_t pg_cwalk_list_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

yaml_node_t *pg_cwalk_list_item(const struct pg_cwalk *cx, const yaml_node_t *n, size_t i)
{
    return node_at(cx, n->data.sequence.items.start[i]);
}

/* The value of key `name` in mapping m, NULL if absent (or m is not a mapping). */
yaml_node_t *pg_cwalk_map_get(const struct pg_cwalk *cx, const yaml_node_t *m, const char *name)
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
int pg_cwalk_scalar(struct pg_cwalk *cx, const yaml_node_t *v, const char **s, size_t *n)
{
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return pg_cwalk_fail(cx, v, "expected a value, got %s", kind(v));
    *s = (const char *)v->data.scalar.value;
    *n = v->data.scalar.length;
    if (memchr(*s, '\0', *n))
        return pg_cwalk_fail(cx, v, "contains a NUL byte");
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
int pg_cwalk_text(struct pg_cwalk *cx, const yaml_node_t *v, const char **out)
{
    const char *s;
    size_t n;
    char name[128];
    if (pg_cwalk_scalar(cx, v, &s, &n))
        return -1;
    int r = env_ref(s, n, name, sizeof name);
    if (r < 0)
        return pg_cwalk_fail(cx, v, "malformed environment reference (use ${NAME})");
    if (r == 0) {
        *out = s;
        return 0;
    }
    const char *e = getenv(name);
    if (!e)
        return pg_cwalk_fail(cx, v, "environment variable '%s' is not set", name);
    *out = e;
    return 0;
}

int pg_cwalk_set_str(struct pg_cwalk *cx, const yaml_node_t *v, char **slot, const char *s)
{
    char *d = strdup(s);
    if (!d)
        return pg_cwalk_fail(cx, v, "out of memory");
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
char *pg_cwalk_read_file(const char *path, size_t max, size_t *len, const char **why)
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
static int secret_load(struct pg_cwalk *cx, const yaml_node_t *v, struct pg_secret *out)
{
    const char *s;
    size_t n;
    char name[128];
    char *buf = NULL;
    if (pg_cwalk_scalar(cx, v, &s, &n))
        return -1;
    int r = env_ref(s, n, name, sizeof name);
    if (r < 0)
        return pg_cwalk_fail(cx, v, "malformed environment reference (use ${NAME})");
    if (r > 0) {
        s = getenv(name);
        if (!s)
            return pg_cwalk_fail(cx, v, "environment variable '%s' is not set", name);
        n = strlen(s);
    } else if (n > 5 && !memcmp(s, "file:", 5)) {
        const char *why;
        buf = pg_cwalk_read_file(s + 5, SECRET_MAX_FILE, &n, &why);
        if (!buf)
            return pg_cwalk_fail(cx, v, "cannot read file '%s': %s", s + 5, why);
        if (n && buf[n - 1] == '\n')
            n--;
        if (n && buf[n - 1] == '\r')
            n--;
        s = buf;
    }
    int rc = 0;
    if (n == 0)
        rc = pg_cwalk_fail(cx, v, "secret is empty");
    else if (memchr(s, '\0', n))
        rc = pg_cwalk_fail(cx, v, "secret contains a NUL byte");
    char *p = rc ? NULL : malloc(n + 1);
    if (!rc && !p)
        rc = pg_cwalk_fail(cx, v, "out of memory");
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
int pg_cwalk_uint(const char *s, uint64_t *out, const char **end)
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

/* A whole number followed by one of the units (name, multiplier), scaled without overflow. */
struct unit {
    const char *name;
    uint64_t mult;
};

static int parse_units(const char *s, const struct unit *units, size_t n, uint64_t *out)
{
    uint64_t v;
    const char *e;
    if (pg_cwalk_uint(s, &v, &e))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e, units[i].name))
            return scaled(v, units[i].mult, out);
    return -1;
}

int pg_parse_duration_ms(const char *s, uint64_t *out)
{
    /* no bare number: seconds or milliseconds? */
    static const struct unit units[] = {
        { "ms", 1 }, { "s", 1000 }, { "min", 60000 }, { "h", 3600000 }
    };
    return parse_units(s, units, sizeof units / sizeof units[0], out);
}

int pg_parse_size(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        { "", 1 }, { "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 }
    };
    return parse_units(s, units, sizeof units / sizeof units[0], out);
}

/* ---- setters for the public types ---- */

static int set_string(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    return pg_cwalk_text(cx, v, &s) ? -1 : pg_cwalk_set_str(cx, v, pg_cwalk_slot(base, k), s);
}

static int set_secret(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    return secret_load(cx, v, pg_cwalk_slot(base, k));
}

static int set_enum(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s, *vals = k->enum_vals ? k->enum_vals : "";
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    size_t sn = strlen(s);
    int idx = 0;
    for (const char *p = vals;; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == sn && !memcmp(p, s, n)) {
            *(int *)pg_cwalk_slot(base, k) = idx;
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
    return pg_cwalk_fail(cx, v, "bad value '%.64s' (one of: %s)", s, list);
}

static int set_number(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    uint64_t x;
    const char *e;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    switch ((int)k->type) {
    case PG_CONF_DURATION:
        if (pg_parse_duration_ms(s, &x))
            return pg_cwalk_fail(
                cx, v, "bad duration '%.64s' (a whole number and ms, s, min or h: 10s)", s);
        break;
    case PG_CONF_SIZE:
        if (pg_parse_size(s, &x))
            return pg_cwalk_fail(cx, v,
                                 "bad size '%.64s' (a whole number of bytes, KiB, MiB or GiB)", s);
        break;
    default:
        if (pg_cwalk_uint(s, &x, &e) || *e)
            return pg_cwalk_fail(cx, v, "bad number '%.64s' (a whole number)", s);
        break;
    }
    if ((k->flags & PG_CWALK_POSITIVE) && x == 0)
        return pg_cwalk_fail(cx, v, "must be greater than zero");
    *(uint64_t *)pg_cwalk_slot(base, k) = x;
    return 0;
}

static int set_bool(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    const char *s;
    if (pg_cwalk_text(cx, v, &s))
        return -1;
    bool *b = pg_cwalk_slot(base, k);
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *b = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *b = false;
    else
        return pg_cwalk_fail(cx, v, "bad value '%.64s' (true or false)", s);
    return 0;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A map of header name -> secret value; names are HTTP tokens, unique ignoring case. */
static int set_headers(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    struct pg_kv_list *l = pg_cwalk_slot(base, k);
    if (pg_cwalk_want_mapping(cx, v))
        return -1;
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    pg_kv_list_free(l);
    if (n == 0)
        return pg_cwalk_fail(cx, v, "expected at least one header");
    l->v = calloc(n, sizeof *l->v);
    if (!l->v)
        return pg_cwalk_fail(cx, v, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        const yaml_node_t *kn = node_at(cx, p->key);
        const char *name;
        size_t nn;
        if (pg_cwalk_scalar(cx, kn, &name, &nn))
            return -1;
        for (size_t j = 0; j < nn; j++)
            if (!is_tchar(name[j]))
                return pg_cwalk_fail(cx, kn, "bad header name '%.64s'", name);
        for (size_t j = 0; j < l->n; j++)
            if (!strcasecmp(l->v[j].name, name))
                return pg_cwalk_fail(cx, kn, "duplicate header '%s'", name);
        l->v[i].name = strdup(name);
        l->n = i + 1;
        if (!l->v[i].name)
            return pg_cwalk_fail(cx, kn, "out of memory");
        size_t old = pg_cwalk_path_key(cx, name);
        int rc = secret_load(cx, node_at(cx, p->value), &l->v[i].value);
        if (!rc && strpbrk(l->v[i].value.p, "\r\n"))
            rc = pg_cwalk_fail(cx, node_at(cx, p->value), "header value contains CR or LF");
        pg_cwalk_path_pop(cx, old);
        if (rc)
            return -1;
    }
    return 0;
}

static int set_object(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v, void *base)
{
    return pg_cwalk_keys(cx, v, k->sub, pg_cwalk_slot(base, k), NULL, NULL);
}

/* ---- the key walker ---- */

static pg_cwalk_set_fn *const setters[PG_CWALK_EXT] = {
    [PG_CONF_STRING] = set_string,   [PG_CONF_SECRET] = set_secret,   [PG_CONF_ENUM] = set_enum,
    [PG_CONF_DURATION] = set_number, [PG_CONF_SIZE] = set_number,     [PG_CONF_BOOL] = set_bool,
    [PG_CONF_UINT] = set_number,     [PG_CONF_HEADERS] = set_headers, [PG_CONF_OBJECT] = set_object,
};

int pg_cwalk_keys(struct pg_cwalk *cx, yaml_node_t *m, const struct pg_conf_key *keys, void *base,
                  const char *skip, uint64_t *seen)
{
    static const struct pg_conf_key none[] = { { 0 } };
    uint64_t got = 0;
    if (!keys)
        keys = none;
    if (pg_cwalk_want_mapping(cx, m))
        return -1;
    for (const yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = node_at(cx, p->key);
        if (kn->type != YAML_SCALAR_NODE)
            return pg_cwalk_fail(cx, kn, "a key must be a plain name, got %s", kind(kn));
        const char *name = (const char *)kn->data.scalar.value;
        for (const yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *qn = node_at(cx, q->key);
            if (qn->type == YAML_SCALAR_NODE && !strcmp((const char *)qn->data.scalar.value, name))
                return pg_cwalk_fail(cx, kn, "duplicate key '%s'", name);
        }
        if (skip && !strcmp(name, skip))
            continue;
        size_t i = 0;
        while (keys[i].name && strcmp(keys[i].name, name))
            i++;
        if (!keys[i].name)
            return pg_cwalk_fail(cx, kn, "unknown key '%s'", name);
        size_t t = (size_t)keys[i].type;
        pg_cwalk_set_fn *set = t < PG_CWALK_EXT              ? setters[t]
                               : t - PG_CWALK_EXT < cx->next ? cx->ext[t - PG_CWALK_EXT]
                                                             : NULL;
        if (i >= 64 || !set)
            return pg_cwalk_fail(cx, kn, "key '%s' has a bad declaration",
                                 name); /* programmer error */
        got |= 1ull << i;
        size_t old = pg_cwalk_path_key(cx, name);
        int rc = set(cx, &keys[i], node_at(cx, p->value), base);
        pg_cwalk_path_pop(cx, old);
        if (rc)
            return -1;
    }
    for (size_t i = 0; keys[i].name && i < 64; i++)
        if ((keys[i].flags & PG_REQUIRED) && !(got & (1ull << i)))
            return pg_cwalk_fail(cx, m, "missing required key '%s'", keys[i].name);
    if (seen)
        *seen = got;
    return 0;
}

/* ---- the document ---- */

/* Aliases make one node appear twice (and can make cycles): refuse them before walking. */
static int no_aliases(struct pg_cwalk *cx)
{
    size_t n = (size_t)(cx->doc->nodes.top - cx->doc->nodes.start);
    unsigned char *refs = calloc(n + 1, 1);
    int rc = 0;
    if (!refs)
        return pg_cwalk_fail(cx, yaml_document_get_root_node(cx->doc), "out of memory");
    refs[1] = 1; /* the root */
    for (size_t i = 1; i <= n && !rc; i++) {
        const yaml_node_t *nd = node_at(cx, (int)i);
        int kids[2];
        if (nd->type == YAML_SEQUENCE_NODE) {
            for (const yaml_node_item_t *it = nd->data.sequence.items.start;
                 !rc && it < nd->data.sequence.items.top; it++)
                if (refs[*it]++)
                    rc = pg_cwalk_fail(cx, node_at(cx, *it),
                                       "anchors and aliases are not supported");
        } else if (nd->type == YAML_MAPPING_NODE) {
            for (const yaml_node_pair_t *p = nd->data.mapping.pairs.start;
                 !rc && p < nd->data.mapping.pairs.top; p++) {
                kids[0] = p->key;
                kids[1] = p->value;
                for (int j = 0; j < 2 && !rc; j++)
                    if (refs[kids[j]]++)
                        rc = pg_cwalk_fail(cx, node_at(cx, kids[j]),
                                           "anchors and aliases are not supported");
            }
        }
    }
    free(refs);
    return rc;
}

static int yaml_fail(struct pg_cwalk *cx, const yaml_parser_t *p)
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

yaml_node_t *pg_cwalk_open(struct pg_cwalk *cx, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    yaml_node_t *root = NULL;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(cx->err, cx->errcap, "%s: out of memory", cx->file);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &cx->own)) {
        yaml_fail(cx, &parser);
        goto out;
    }
    cx->doc = &cx->own;
    root = yaml_document_get_root_node(cx->doc);
    if (!root) {
        snprintf(cx->err, cx->errcap, "%s:1:1: the file is empty", cx->file);
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_fail(cx, &parser);
        root = NULL;
        goto out;
    }
    const yaml_node_t *second = yaml_document_get_root_node(&extra);
    bool several = second != NULL;
    if (several)
        pg_cwalk_fail(cx, second, "only one YAML document is allowed");
    doc_wipe(&extra);
    yaml_document_delete(&extra);
    if (several || no_aliases(cx))
        root = NULL;
out:
    yaml_parser_delete(&parser);
    return root;
}

void pg_cwalk_close(struct pg_cwalk *cx)
{
    if (!cx->doc)
        return;
    doc_wipe(cx->doc);
    yaml_document_delete(cx->doc);
    cx->doc = NULL;
}

int pg_cwalk_maps(struct pg_cwalk *cx, yaml_node_t *v, const struct pg_conf_key *keys, void *arr,
                  size_t sz, pg_cwalk_elem_fn *check, void *arg)
{
    for (size_t i = 0; i < pg_cwalk_list_len(v); i++) {
        yaml_node_t *it = pg_cwalk_list_item(cx, v, i);
        size_t old = pg_cwalk_path_index(cx, i);
        int rc = pg_cwalk_keys(cx, it, keys, (char *)arr + i * sz, NULL, NULL);
        if (!rc && check)
            rc = check(cx, it, i, arg);
        pg_cwalk_path_pop(cx, old);
        if (rc)
            return -1;
    }
    return 0;
}
