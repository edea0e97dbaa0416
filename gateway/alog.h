/* alog.h -- the access log (SPEC 7): one destination for the whole process (a file, stdout, or
 * off), the two line formats (text, json), and the reopen SIGUSR1 asks for (logrotate). Each
 * worker builds its lines and buffers them (worker.c); they reach the destination through
 * pg_alog_write. Only the main thread opens, reopens and frees it. */
#ifndef PG_ALOG_H
#define PG_ALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

struct evbuffer;
struct pg_alog;

/* Room for one line: every field is bounded (the path is cut at PG_ALOG_PATH_MAX bytes, names
 * at 64, a request id at 128), so a JSON line, escaped, stays well below it. A write of at most
 * PIPE_BUF (4096 on Linux) bytes is never interleaved with another's. */
#define PG_ALOG_LINE_MAX 4096
#define PG_ALOG_PATH_MAX 256

/* What one line says about one answered request; strings are borrowed for the call. */
struct pg_alog_rec {
    uint64_t time_ms;       /* wall clock, ms since the epoch */
    const char *peer;       /* caller IP; NULL: unknown */
    const char *request_id; /* NULL or "": none */
    const char *consumer;   /* NULL: no caller key was accepted */
    const char *method;     /* NULL: the request line was not parsed */
    const char *target;     /* the request target as received, query and all; NULL: none */
    size_t target_len;
    int status;
    const char *upstream; /* NULL: the gateway's own answer */
    int upstream_status;  /* 0: no panel answered */
    uint64_t bytes;       /* body bytes of the answer */
    uint64_t duration_ms; /* arrival to answer */
    int err;              /* enum pg_err_code of an envelope answer; -1: none */
    int limited;          /* enum pg_metric_scope of the limit that refused it; -1: none */
    bool login;           /* it waited for a login to the panel */
    bool replayed;        /* it was sent to the panel a second time */
};

/* rec as one line of format f, '\n' included, into out (cap bytes, one of them kept free): 0
 * with *len its length, or -1 when it does not fit (out holds nothing usable). The path is the
 * target up to its '?' (a query may carry panel credentials), at most PG_ALOG_PATH_MAX bytes.
 *
 * Format text: "TIME PEER RID CONSUMER METHOD PATH STATUS BYTES DURATIONms UPSTREAM", a "-" for
 * each field missing.
 *
 * Format json: {"time", "request_id", "consumer", "method", "path", "status", "upstream",
 * "upstream_status", "bytes", "duration_ms", "limited", "login", "replayed", "peer", "code"};
 * time is RFC 3339 UTC with milliseconds, null for none, every string escaped with
 * pg_json_escape's rules. */
int pg_alog_line(enum pg_alog_format f, const struct pg_alog_rec *rec, char *out, size_t cap,
                 size_t *len);

/* The access log of c, the config the process started with: off, stdout, or c's file opened
 * for appending (created 0640). NULL with err set when the file cannot be opened (or out of
 * memory). Before any worker runs. */
struct pg_alog *pg_alog_new(const struct pg_conf *c, char *err, size_t cap);
/* Close it (a file) and free it; accepts NULL. Once no worker writes any more. */
void pg_alog_free(struct pg_alog *a);

/* Lines go somewhere (not off); NULL is off. */
bool pg_alog_on(const struct pg_alog *a);
/* The log's generation << 1 | format (enum pg_alog_format): a line is made in this format and
 * belongs to this generation (pg_alog_write). NULL: text. */
unsigned pg_alog_state(const struct pg_alog *a);

/* Any worker: write buf's whole lines -- all made in generation gen -- at most PIPE_BUF bytes a
 * write, to that generation's destination (the current one, or for lines made before the last
 * reload the one before), and drain what was written. A failed or short write leaves the rest
 * in buf (whole lines but the one cut). 0 all written, -1 not. */
int pg_alog_write(struct pg_alog *a, struct evbuffer *buf, unsigned gen);

/* SIGUSR1, main thread: open the configured path afresh and put it in the old file's place for
 * every later write. Logs what it did. 0 reopened; 1 nothing to reopen (stdout, off); -1 the
 * file could not be opened: the old one stays in use. */
int pg_alog_reopen(struct pg_alog *a);

/* A reload, main thread: c's access_log takes effect -- its format for lines made from now on,
 * its destination (stdout, another file, or off) for every write from now on. A log that
 * started off stays off (no worker buffers lines: a restart turns it on), and a file that cannot
 * be opened leaves the log where it was; both are logged, and -1 returned. */
int pg_alog_apply(struct pg_alog *a, const struct pg_conf *c);

#endif
