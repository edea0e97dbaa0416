/* alog.c -- the access log: its lines (text, json) built whole in a caller's buffer, the one
 * destination every worker writes to, and its reopen on SIGUSR1. */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "envelope.h"
#include "metrics.h"
#include "util.h"

_Static_assert(PG_ALOG_LINE_MAX <= PIPE_BUF, "a line must go out in one atomic write");

/* ---- lines ---- */

/* (s, n) as a JSON string; null for NULL. */
static void put_jstr(struct pg_sb *l, const char *s, size_t n)
{
    if (!s) {
        pg_sb_str(l, "null");
        return;
    }
    pg_sb_put(l, "\"", 1);
    size_t k;
    if (!l->over && pg_json_escape_mem(l->p + l->len, l->cap - l->len - 1, &k, s, n))
        l->over = true;
    else if (!l->over)
        l->len += k;
    pg_sb_put(l, "\"", 1);
}

static void put_jcstr(struct pg_sb *l, const char *s)
{
    put_jstr(l, s, s ? strlen(s) : 0);
}

/* The path: the target up to its query, at most PG_ALOG_PATH_MAX bytes; NULL when none. */
static const char *path_of(const struct pg_alog_rec *r, size_t *n)
{
    if (!r->target || !r->target_len) {
        *n = 0;
        return NULL;
    }
    const char *q = memchr(r->target, '?', r->target_len);
    *n = q ? (size_t)(q - r->target) : r->target_len;
    if (*n > PG_ALOG_PATH_MAX)
        *n = PG_ALOG_PATH_MAX;
    return r->target;
}

/* A status: never negative in practice; printed as it is if it were. */
static void put_int(struct pg_sb *l, int v)
{
    if (v < 0) {
        pg_sb_put(l, "-", 1);
        pg_sb_u64(l, (uint64_t) - (int64_t)v, 0);
    } else {
        pg_sb_u64(l, (uint64_t)v, 0);
    }
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* The text line, as it always was: fields split by spaces, "-" for none. */
static void text_line(struct pg_sb *l, const struct pg_alog_rec *r)
{
    size_t pn;
    const char *path = path_of(r, &pn);
    const char *words[] = { or_dash(r->peer), or_dash(r->request_id), or_dash(r->consumer),
                            or_dash(r->method) };
    pg_sb_time(l, r->time_ms, false);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        pg_sb_put(l, " ", 1);
        pg_sb_str(l, words[i]);
    }
    pg_sb_put(l, " ", 1);
    pg_sb_put(l, path ? path : "-", path ? pn : 1);
    pg_sb_put(l, " ", 1);
    put_int(l, r->status);
    pg_sb_put(l, " ", 1);
    pg_sb_u64(l, r->bytes, 0);
    pg_sb_put(l, " ", 1);
    pg_sb_u64(l, r->duration_ms, 0);
    pg_sb_put(l, "ms ", 3);
    pg_sb_str(l, or_dash(r->upstream));
    pg_sb_put(l, "\n", 1);
}

/* One JSON object: SPEC 7's fields in its order, then peer and code. */
static void json_line(struct pg_sb *l, const struct pg_alog_rec *r)
{
    size_t pn;
    const char *path = path_of(r, &pn);
    pg_sb_str(l, "{\"time\":\"");
    pg_sb_time(l, r->time_ms, true);
    pg_sb_str(l, "\",\"request_id\":");
    put_jcstr(l, r->request_id && *r->request_id ? r->request_id : NULL);
    pg_sb_str(l, ",\"consumer\":");
    put_jcstr(l, r->consumer);
    pg_sb_str(l, ",\"method\":");
    put_jcstr(l, r->method);
    pg_sb_str(l, ",\"path\":");
    put_jstr(l, path, pn);
    pg_sb_str(l, ",\"status\":");
    put_int(l, r->status);
    pg_sb_str(l, ",\"upstream\":");
    put_jcstr(l, r->upstream);
    pg_sb_str(l, ",\"upstream_status\":");
    if (r->upstream_status > 0)
        pg_sb_u64(l, (uint64_t)r->upstream_status, 0);
    else
        pg_sb_str(l, "null");
    pg_sb_str(l, ",\"bytes\":");
    pg_sb_u64(l, r->bytes, 0);
    pg_sb_str(l, ",\"duration_ms\":");
    pg_sb_u64(l, r->duration_ms, 0);
    pg_sb_str(l, ",\"limited\":");
    put_jcstr(l, pg_metrics_scope_name(r->limited));
    pg_sb_str(l, r->login ? ",\"login\":true" : ",\"login\":false");
    pg_sb_str(l, r->replayed ? ",\"replayed\":true,\"peer\":" : ",\"replayed\":false,\"peer\":");
    put_jcstr(l, r->peer);
    pg_sb_str(l, ",\"code\":");
    put_jcstr(l, r->err >= 0 ? pg_err_name((enum pg_err_code)r->err) : NULL);
    pg_sb_str(l, "}\n");
}

int pg_alog_line(enum pg_alog_format f, const struct pg_alog_rec *rec, char *out, size_t cap,
                 size_t *len)
{
    struct pg_sb l = pg_sb_of(out, cap);
    if (f == PG_ALOG_JSON)
        json_line(&l, rec);
    else
        text_line(&l, rec);
    if (l.over)
        return -1;
    *len = l.len;
    return 0;
}

/* ---- the destination ---- */

/* Reopen (logrotate's postrotate `kill -USR1`) keeps one descriptor number for the whole
 * process and puts the new file behind it with dup3 (main thread): the workers go on writing to
 * the same number and need not be told, nor can one hold a stale descriptor; the old file
 * closes with the swap. Posting a reopen to every worker's inbox instead would open the file
 * once per worker, on the loops, and leave no one place to report a failure. The kernel keeps
 * each write() whole and on one file across a dup3; the lock does the same for a whole flush:
 * its writes all reach one file, and never interleave with another worker's flush, even after
 * a short write. It is taken once per flush (once a second, or per 16 KiB of lines, per
 * worker), never per request. */
struct pg_alog {
    pthread_mutex_t mu;
    int fd;     /* -1: off; STDOUT_FILENO; or the file (the same number after a reopen); a
                 * reload may change it, under mu */
    int old_fd; /* the destination of the generation before (its late lines go there) */
    char *path; /* the configured file; NULL for stdout and off (main thread only) */
    /* atomic: generation << 1 | format. A reload that changes the format or the destination
     * starts a generation; a worker's buffer holds lines of one generation only (worker.c),
     * and a flush sends them where their generation's lines go, so a json file never gets a
     * text line made before the reload. */
    unsigned state;
    bool started_off; /* no worker buffers lines: turning the log on takes a restart */
};

static int open_file(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

struct pg_alog *pg_alog_new(const struct pg_conf *c, char *err, size_t cap)
{
    struct pg_alog *a = calloc(1, sizeof *a);
    if (!a || pthread_mutex_init(&a->mu, NULL)) {
        free(a);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    a->fd = a->old_fd = -1;
    a->state = c->access_log_format == PG_ALOG_JSON ? PG_ALOG_JSON : PG_ALOG_TEXT;
    a->started_off = !c->access_log;
    if (!c->access_log)
        return a;
    if (!strcmp(c->access_log, "stdout")) {
        a->fd = a->old_fd = STDOUT_FILENO;
        return a;
    }
    if (!(a->path = strdup(c->access_log))) {
        snprintf(err, cap, "out of memory");
        pg_alog_free(a);
        return NULL;
    }
    if ((a->fd = a->old_fd = open_file(a->path)) < 0) {
        snprintf(err, cap, "access_log %s: %s", a->path, strerror(errno));
        pg_alog_free(a);
        return NULL;
    }
    return a;
}

void pg_alog_free(struct pg_alog *a)
{
    if (!a)
        return;
    if (a->old_fd > STDERR_FILENO && a->old_fd != a->fd)
        close(a->old_fd);
    if (a->fd > STDERR_FILENO)
        close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

bool pg_alog_on(const struct pg_alog *a)
{
    return a && a->fd >= 0;
}

unsigned pg_alog_state(const struct pg_alog *a)
{
    return a ? __atomic_load_n(&a->state, __ATOMIC_RELAXED) : PG_ALOG_TEXT;
}

int pg_alog_write(struct pg_alog *a, struct evbuffer *buf, unsigned gen)
{
    int rc = 0, e = 0;
    pthread_mutex_lock(&a->mu);
    /* lines of an older generation still (two reloads within a flush) have no open
     * destination left: they are dropped with the off ones below */
    unsigned cur = pg_alog_state(a) >> 1;
    int fd = gen == cur ? a->fd : gen + 1 == cur ? a->old_fd : -1;
    if (fd < 0) /* off, or too old */
        evbuffer_drain(buf, evbuffer_get_length(buf));
    while (evbuffer_get_length(buf) > 0) {
        size_t n = evbuffer_get_length(buf);
        if (n > PIPE_BUF)
            n = PIPE_BUF;
        const char *p = (const char *)evbuffer_pullup(buf, (ssize_t)n);
        const char *nl = p ? memrchr(p, '\n', n) : NULL;
        if (nl) /* no line is longer than PG_ALOG_LINE_MAX <= PIPE_BUF */
            n = (size_t)(nl - p) + 1;
        if (evbuffer_write_atmost(buf, fd, (ssize_t)n) <= 0) {
            rc = -1;
            e = errno;
            break;
        }
    }
    pthread_mutex_unlock(&a->mu);
    errno = e;
    return rc;
}

int pg_alog_reopen(struct pg_alog *a)
{
    if (!a || !a->path) {
        pg_log(PG_LOG_INFO, "SIGUSR1: the access log is %s: nothing to reopen",
               pg_alog_on(a) ? "stdout" : "off");
        return 1;
    }
    int fd = open_file(a->path);
    if (fd < 0) {
        pg_log(PG_LOG_ERR,
               "SIGUSR1: cannot reopen access_log %s: %s; still writing to the old file", a->path,
               strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&a->mu);
    int rc = dup3(fd, a->fd, O_CLOEXEC);
    int e = errno;
    pthread_mutex_unlock(&a->mu);
    close(fd);
    if (rc < 0) {
        pg_log(PG_LOG_ERR,
               "SIGUSR1: cannot reopen access_log %s: %s; still writing to the old file", a->path,
               strerror(e));
        return -1;
    }
    pg_log(PG_LOG_INFO, "SIGUSR1: reopened access_log %s", a->path);
    return 0;
}

/* The destination c names, as pg_alog keeps it: off (-1), stdout, or a file path. */
static bool same_place(const struct pg_alog *a, const char *want)
{
    if (!want)
        return a->fd < 0;
    if (!strcmp(want, "stdout"))
        return a->fd == STDOUT_FILENO && !a->path;
    return a->path && !strcmp(a->path, want);
}

int pg_alog_apply(struct pg_alog *a, const struct pg_conf *c)
{
    const char *want = c->access_log;
    unsigned fmt = c->access_log_format == PG_ALOG_JSON ? PG_ALOG_JSON : PG_ALOG_TEXT;
    bool move = !same_place(a, want);
    if (move && a->started_off) {
        pg_log(PG_LOG_WARN, "reload: turning the access log on takes a restart (it started off)");
        return -1;
    }
    if (!move && fmt == (pg_alog_state(a) & 1))
        return 0;
    bool file = move && want && strcmp(want, "stdout") != 0;
    char *path = file ? strdup(want) : NULL;
    int fd = !move ? a->fd : !want ? -1 : file ? (path ? open_file(path) : -1) : STDOUT_FILENO;
    if (file && fd < 0) {
        pg_log(PG_LOG_ERR, "reload: access_log %.200s: %s; the log stays where it was", want,
               path ? strerror(errno) : "out of memory");
        free(path);
        return -1;
    }
    /* under mu: no flush is half done, and the next one sees the new generation */
    pthread_mutex_lock(&a->mu);
    int gone = a->old_fd != a->fd ? a->old_fd : -1;
    a->old_fd = a->fd;
    a->fd = fd;
    __atomic_store_n(&a->state, ((pg_alog_state(a) >> 1) + 1) << 1 | fmt, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&a->mu);
    if (gone > STDERR_FILENO)
        close(gone);
    if (move) {
        free(a->path);
        a->path = path;
        pg_log(PG_LOG_INFO, "reload: access_log now %.200s", want ? want : "off");
    }
    return 0;
}
