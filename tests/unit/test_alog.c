/* test_alog.c -- access log lines (every JSON line parses, with SPEC 7's fields and types, no
 * query, hostile bytes escaped, the longest line fits; the text layout byte for byte) and the
 * destination (whole lines written, reopen after a rename, a failed reopen keeps the file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "gateway/alog.h"
#include "gateway/envelope.h"
#include "gateway/metrics.h"

/* 2024-05-01T12:34:56.789Z */
#define T_MS 1714566896789ull

static struct pg_alog_rec full_rec(void)
{
    static const char target[] = "/navixy/tracker/list?hash=0123abcd&password=fake-secret-1";
    return (struct pg_alog_rec){ .time_ms = T_MS,
                                 .peer = "127.0.0.1",
                                 .request_id = "rid-1",
                                 .consumer = "alice",
                                 .method = "GET",
                                 .target = target,
                                 .target_len = sizeof target - 1,
                                 .status = 200,
                                 .upstream = "navixy",
                                 .upstream_status = 200,
                                 .bytes = 1234,
                                 .duration_ms = 56,
                                 .err = -1,
                                 .limited = -1,
                                 .login = true,
                                 .replayed = false };
}

/* rec as a JSON line: it ends in one '\n', has no other, and parses to an object. */
static json_t *json_of(const struct pg_alog_rec *rec, size_t *len_out)
{
    char line[PG_ALOG_LINE_MAX];
    size_t n = 0;
    assert_int_equal(pg_alog_line(PG_ALOG_JSON, rec, line, sizeof line, &n), 0);
    assert_true(n > 0 && n <= sizeof line);
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1));
    json_error_t e;
    json_t *o = json_loadb(line, n, JSON_ALLOW_NUL, &e);
    if (!o)
        fail_msg("not JSON (%s): %.*s", e.text, (int)n, line);
    assert_true(json_is_object(o));
    if (len_out)
        *len_out = n;
    return o;
}

static const char *const spec_fields[] = { "time",    "request_id",  "consumer", "method",
                                           "path",    "status",      "upstream", "upstream_status",
                                           "bytes",   "duration_ms", "limited",  "login",
                                           "replayed" };

/* Exactly SPEC 7's fields and the two extra ones (peer, code). */
static void assert_keys(json_t *o)
{
    size_t n = sizeof spec_fields / sizeof spec_fields[0];
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(o, spec_fields[i]))
            fail_msg("field %s missing", spec_fields[i]);
    assert_non_null(json_object_get(o, "peer"));
    assert_non_null(json_object_get(o, "code"));
    assert_int_equal(json_object_size(o), n + 2);
}

static void json_full(void **state)
{
    (void)state;
    struct pg_alog_rec r = full_rec();
    json_t *o = json_of(&r, NULL);
    assert_keys(o);
    assert_string_equal(json_string_value(json_object_get(o, "time")), "2024-05-01T12:34:56.789Z");
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "rid-1");
    assert_string_equal(json_string_value(json_object_get(o, "consumer")), "alice");
    assert_string_equal(json_string_value(json_object_get(o, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(o, "path")), "/navixy/tracker/list");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
    assert_string_equal(json_string_value(json_object_get(o, "upstream")), "navixy");
    assert_int_equal(json_integer_value(json_object_get(o, "upstream_status")), 200);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes")), 1234);
    assert_int_equal(json_integer_value(json_object_get(o, "duration_ms")), 56);
    assert_true(json_is_null(json_object_get(o, "limited")));
    assert_true(json_is_true(json_object_get(o, "login")));
    assert_true(json_is_false(json_object_get(o, "replayed")));
    assert_string_equal(json_string_value(json_object_get(o, "peer")), "127.0.0.1");
    assert_true(json_is_null(json_object_get(o, "code")));
    json_decref(o);
}

/* Nothing known: every optional field is null, the rest still typed. */
static void json_nulls(void **state)
{
    (void)state;
    struct pg_alog_rec r = { .time_ms = 0, .status = 499, .err = -1, .limited = -1 };
    json_t *o = json_of(&r, NULL);
    assert_keys(o);
    assert_string_equal(json_string_value(json_object_get(o, "time")), "1970-01-01T00:00:00.000Z");
    static const char *const nulls[] = { "request_id", "consumer", "method",          "path",
                                         "upstream",   "limited",  "upstream_status", "peer",
                                         "code" };
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (!json_is_null(json_object_get(o, nulls[i])))
            fail_msg("%s is not null", nulls[i]);
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 499);
    assert_true(json_is_false(json_object_get(o, "login")));
    json_decref(o);
    r.request_id = ""; /* an empty id is none too */
    o = json_of(&r, NULL);
    assert_true(json_is_null(json_object_get(o, "request_id")));
    json_decref(o);
}

/* limited names the scope as the metrics do; code is the envelope's code name. */
static void json_limited_and_code(void **state)
{
    (void)state;
    static const char *const want[PG_MS__N] = { "upstream", "route", "consumer", "cooldown" };
    struct pg_alog_rec r = full_rec();
    r.status = 429;
    r.upstream_status = 0;
    r.err = PG_E_RATE_LIMITED;
    for (int s = 0; s < PG_MS__N; s++) {
        r.limited = s;
        json_t *o = json_of(&r, NULL);
        assert_string_equal(json_string_value(json_object_get(o, "limited")), want[s]);
        assert_string_equal(json_string_value(json_object_get(o, "code")), "rate_limited");
        assert_true(json_is_null(json_object_get(o, "upstream_status")));
        json_decref(o);
    }
    r.limited = PG_MS__N; /* out of range: null, still JSON */
    json_t *o = json_of(&r, NULL);
    assert_true(json_is_null(json_object_get(o, "limited")));
    json_decref(o);
}

/* The path stops at the query: no byte after '?' reaches the line, in either format. */
static void path_without_query(void **state)
{
    (void)state;
    struct pg_alog_rec r = full_rec();
    char line[PG_ALOG_LINE_MAX];
    size_t n;
    for (int f = PG_ALOG_TEXT; f <= PG_ALOG_JSON; f++) {
        assert_int_equal(pg_alog_line((enum pg_alog_format)f, &r, line, sizeof line, &n), 0);
        line[n] = '\0';
        assert_null(strstr(line, "fake-secret-1"));
        assert_null(strstr(line, "hash"));
        assert_null(strchr(line, '?'));
        assert_non_null(strstr(line, "/navixy/tracker/list"));
    }
}

/* Caller bytes (quotes, backslashes, control bytes, invalid UTF-8) stay one valid line. */
static void json_hostile_path(void **state)
{
    (void)state;
    static const char target[] = "/a\"b\\c\x01\x1f\x7f\n\r\xff\xc3(\xe2\x82\t/z?q=\"x";
    struct pg_alog_rec r = full_rec();
    r.target = target;
    r.target_len = sizeof target - 1;
    json_t *o = json_of(&r, NULL);
    static const char want[] = "/a\"b\\c\x01\x1f\x7f\n\r\xef\xbf\xbd\xef\xbf\xbd("
                               "\xef\xbf\xbd\xef\xbf\xbd\t/z";
    json_t *p = json_object_get(o, "path");
    assert_int_equal(json_string_length(p), sizeof want - 1);
    assert_memory_equal(json_string_value(p), want, sizeof want - 1);
    json_decref(o);
}

/* Cut at 256 bytes, also in the middle of a UTF-8 sequence (which becomes U+FFFD). */
static void path_cut_at_256(void **state)
{
    (void)state;
    char target[400];
    memset(target, 'a', sizeof target);
    target[0] = '/';
    target[255] = '\xc3'; /* é split by the cut */
    target[256] = '\xa9';
    struct pg_alog_rec r = full_rec();
    r.target = target;
    r.target_len = sizeof target;
    json_t *o = json_of(&r, NULL);
    const char *p = json_string_value(json_object_get(o, "path"));
    assert_int_equal(strlen(p), 255 + 3);
    assert_memory_equal(p + 255, "\xef\xbf\xbd", 3);
    json_decref(o);
    char line[PG_ALOG_LINE_MAX];
    size_t n;
    assert_int_equal(pg_alog_line(PG_ALOG_TEXT, &r, line, sizeof line, &n), 0);
    assert_non_null(memmem(line, n, target, 256));
    assert_null(memmem(line, n, target, 257));
}

/* The longest line there can be (every field at its bound, each path byte escaped to 6) fits
 * PG_ALOG_LINE_MAX, and a buffer too small is refused whole. */
static void longest_line_fits(void **state)
{
    (void)state;
    char rid[129], cons[65], up[65], target[PG_ALOG_PATH_MAX + 10];
    memset(rid, 'r', 128);
    rid[128] = '\0';
    memset(cons, 'c', 64);
    cons[64] = '\0';
    memset(up, 'u', 64);
    up[64] = '\0';
    memset(target, '\x01', sizeof target);
    struct pg_alog_rec r = full_rec();
    r.request_id = rid;
    r.consumer = cons;
    r.upstream = up;
    r.peer = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    r.method = "OPTIONS";
    r.target = target;
    r.target_len = sizeof target;
    r.status = -2147483647 - 1;
    r.upstream_status = 2147483647;
    r.bytes = r.duration_ms = INT64_MAX; /* UINT64_MAX is one digit longer, jansson reads neither */
    r.err = PG_E_UPSTREAM_AUTH_FAILED;
    r.limited = PG_MS_CONSUMER;
    r.time_ms = 253402300799999ull; /* 9999-12-31T23:59:59.999Z */
    size_t n;
    json_t *o = json_of(&r, &n);
    assert_true(n + 1024 < PG_ALOG_LINE_MAX); /* about 2.2 KiB: room to spare */
    assert_string_equal(json_string_value(json_object_get(o, "time")), "9999-12-31T23:59:59.999Z");
    json_decref(o);
    char line[PG_ALOG_LINE_MAX];
    size_t m = 77;
    /* the line and one byte more (pg_sb keeps room for a NUL) */
    assert_int_equal(pg_alog_line(PG_ALOG_JSON, &r, line, n, &m), -1);
    assert_int_equal(m, 77);
    assert_int_equal(pg_alog_line(PG_ALOG_JSON, &r, line, n + 1, &m), 0);
    assert_int_equal(m, n);
    assert_int_equal(pg_alog_line(PG_ALOG_TEXT, &r, line, 10, &m), -1);
}

/* Random bytes in every caller-given string: every line parses. */
static void json_random_always_parses(void **state)
{
    (void)state;
    uint32_t x = 0x2545f491u; /* fixed seed: failures reproduce */
    char target[300], rid[129];
    for (int iter = 0; iter < 3000; iter++) {
        x = x * 1664525u + 1013904223u;
        size_t tn = (x >> 20) % sizeof target;
        for (size_t i = 0; i < tn; i++) {
            x = x * 1664525u + 1013904223u;
            target[i] = (char)(x >> 24);
        }
        x = x * 1664525u + 1013904223u;
        size_t rn = (x >> 24) % 128;
        for (size_t i = 0; i < rn; i++) {
            x = x * 1664525u + 1013904223u;
            rid[i] = (char)((x >> 24) | 1); /* no NUL: a C string */
        }
        rid[rn] = '\0';
        struct pg_alog_rec r = full_rec();
        r.target = target;
        r.target_len = tn;
        r.request_id = rid;
        json_decref(json_of(&r, NULL));
    }
}

/* The text format keeps its layout, byte for byte. */
static void text_layout(void **state)
{
    (void)state;
    struct pg_alog_rec r = full_rec();
    char line[PG_ALOG_LINE_MAX];
    size_t n;
    assert_int_equal(pg_alog_line(PG_ALOG_TEXT, &r, line, sizeof line, &n), 0);
    static const char want[] = "2024-05-01T12:34:56Z 127.0.0.1 rid-1 alice GET "
                               "/navixy/tracker/list 200 1234 56ms navixy\n";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(line, want, n);
    struct pg_alog_rec none = { .time_ms = 0, .status = 400, .err = -1, .limited = -1 };
    assert_int_equal(pg_alog_line(PG_ALOG_TEXT, &none, line, sizeof line, &n), 0);
    static const char want2[] = "1970-01-01T00:00:00Z - - - - - 400 0 0ms -\n";
    assert_int_equal(n, sizeof want2 - 1);
    assert_memory_equal(line, want2, n);
}

/* ---- the destination ---- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static size_t count_lines(const char *path)
{
    size_t n, lines = 0;
    const char *p = slurp(path, &n);
    for (size_t i = 0; i < n; i++)
        lines += p[i] == '\n';
    if (n)
        assert_int_equal(p[n - 1], '\n');
    return lines;
}

/* k numbered lines of about 300 bytes into b (more than PIPE_BUF together). */
static void add_lines(struct evbuffer *b, int from, int k)
{
    for (int i = from; i < from + k; i++)
        assert_true(evbuffer_add_printf(b, "line %06d %0290d\n", i, 0) > 0);
}

static struct pg_alog *alog_at(const char *path, struct pg_conf *c)
{
    memset(c, 0, sizeof *c);
    c->access_log = (char *)path;
    c->access_log_format = PG_ALOG_JSON;
    char err[256];
    struct pg_alog *a = pg_alog_new(c, err, sizeof err);
    if (!a)
        fail_msg("pg_alog_new: %s", err);
    return a;
}

static void file_write_reopen(void **state)
{
    (void)state;
    char dir[] = "/tmp/pg_test_alog_XXXXXX", path[300], moved[300];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(moved, sizeof moved, "%s/access.log.1", dir);
    struct pg_conf c;
    struct pg_alog *a = alog_at(path, &c);
    assert_true(pg_alog_on(a));
    assert_int_equal((enum pg_alog_format)(pg_alog_state(a) & 1), PG_ALOG_JSON);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0137, 0); /* at most 0640 */
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    add_lines(b, 0, 40); /* ~12 KiB: several writes, each of whole lines */
    assert_int_equal(pg_alog_write(a, b, 0), 0);
    assert_int_equal(evbuffer_get_length(b), 0);
    assert_int_equal(count_lines(path), 40);
    /* logrotate: rename, then SIGUSR1 */
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(pg_alog_reopen(a), 0);
    add_lines(b, 40, 25);
    assert_int_equal(pg_alog_write(a, b, 0), 0);
    assert_int_equal(count_lines(moved), 40);
    assert_int_equal(count_lines(path), 25);
    size_t n;
    const char *p = slurp(path, &n);
    assert_memory_equal(p, "line 000040 ", 12);
    /* the path cannot be opened (its directory is gone): the old file stays in use */
    char gone[64];
    snprintf(gone, sizeof gone, "%s.gone", dir);
    assert_int_equal(rename(dir, gone), 0);
    assert_int_equal(pg_alog_reopen(a), -1);
    add_lines(b, 65, 3);
    assert_int_equal(pg_alog_write(a, b, 0), 0);
    snprintf(path, sizeof path, "%s/access.log", gone);
    assert_int_equal(count_lines(path), 28);
    evbuffer_free(b);
    pg_alog_free(a);
    unlink(path);
    snprintf(moved, sizeof moved, "%s/access.log.1", gone);
    unlink(moved);
    rmdir(gone);
}

/* A reload moves the log and changes its format: each change is a generation; lines made
 * before it (generation 0) still reach the old file, later ones the new; off drops them; a log
 * that started off stays off; a file that cannot be opened leaves everything as it was. */
static void reload_apply(void **state)
{
    (void)state;
    char dir[] = "/tmp/pg_test_alog_XXXXXX", p1[300], p2[300];
    assert_non_null(mkdtemp(dir));
    snprintf(p1, sizeof p1, "%s/one.log", dir);
    snprintf(p2, sizeof p2, "%s/two.log", dir);
    struct pg_conf c;
    struct pg_alog *a = alog_at(p1, &c);              /* json */
    assert_int_equal(pg_alog_state(a), PG_ALOG_JSON); /* generation 0 */
    assert_int_equal(pg_alog_apply(a, &c), 0);        /* nothing changed: same generation */
    assert_int_equal(pg_alog_state(a), PG_ALOG_JSON);
    struct pg_conf n = c;
    n.access_log = p2;
    n.access_log_format = PG_ALOG_TEXT;
    assert_int_equal(pg_alog_apply(a, &n), 0);
    assert_int_equal(pg_alog_state(a), 1u << 1 | PG_ALOG_TEXT);
    struct evbuffer *b = evbuffer_new();
    add_lines(b, 0, 3);
    assert_int_equal(pg_alog_write(a, b, 0), 0); /* made before the reload: the old file */
    add_lines(b, 3, 2);
    assert_int_equal(pg_alog_write(a, b, 1), 0);
    assert_int_equal(count_lines(p1), 3);
    assert_int_equal(count_lines(p2), 2);
    /* the format alone: a generation, the same file for both */
    n.access_log_format = PG_ALOG_JSON;
    assert_int_equal(pg_alog_apply(a, &n), 0);
    assert_int_equal(pg_alog_state(a), 2u << 1 | PG_ALOG_JSON);
    add_lines(b, 5, 1);
    assert_int_equal(pg_alog_write(a, b, 1), 0);
    add_lines(b, 6, 1);
    assert_int_equal(pg_alog_write(a, b, 2), 0);
    assert_int_equal(count_lines(p2), 4);
    /* a path that cannot be opened: as it was */
    n.access_log = (char *)"/nonexistent-dir-pg/x.log";
    assert_int_equal(pg_alog_apply(a, &n), -1);
    assert_int_equal(pg_alog_state(a), 2u << 1 | PG_ALOG_JSON);
    /* off: later lines go nowhere, and are drained */
    n.access_log = NULL;
    assert_int_equal(pg_alog_apply(a, &n), 0);
    assert_false(pg_alog_on(a));
    add_lines(b, 7, 2);
    assert_int_equal(pg_alog_write(a, b, 3), 0);
    assert_int_equal(evbuffer_get_length(b), 0);
    assert_int_equal(count_lines(p2), 4);
    pg_alog_free(a);
    /* started off: turning it on takes a restart */
    struct pg_conf off = { 0 };
    char err[256];
    a = pg_alog_new(&off, err, sizeof err);
    assert_int_equal(pg_alog_apply(a, &c), -1);
    assert_false(pg_alog_on(a));
    pg_alog_free(a);
    evbuffer_free(b);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

static void stdout_and_off(void **state)
{
    (void)state;
    struct pg_conf c = { 0 };
    char err[256];
    struct pg_alog *a = pg_alog_new(&c, err, sizeof err); /* off */
    assert_non_null(a);
    assert_false(pg_alog_on(a));
    assert_int_equal((enum pg_alog_format)(pg_alog_state(a) & 1), PG_ALOG_TEXT);
    assert_int_equal(pg_alog_reopen(a), 1);
    pg_alog_free(a);
    c.access_log = (char *)"stdout";
    a = pg_alog_new(&c, err, sizeof err);
    assert_non_null(a);
    assert_true(pg_alog_on(a));
    assert_int_equal(pg_alog_reopen(a), 1);
    pg_alog_free(a); /* stdout stays open */
    assert_true(fcntl(STDOUT_FILENO, F_GETFD) >= 0);
    assert_false(pg_alog_on(NULL));
    assert_int_equal(pg_alog_reopen(NULL), 1);
    pg_alog_free(NULL);
    c.access_log = (char *)"/nonexistent-dir-pg/access.log";
    assert_null(pg_alog_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "access_log /nonexistent-dir-pg/access.log: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_full),
        cmocka_unit_test(json_nulls),
        cmocka_unit_test(json_limited_and_code),
        cmocka_unit_test(path_without_query),
        cmocka_unit_test(json_hostile_path),
        cmocka_unit_test(path_cut_at_256),
        cmocka_unit_test(longest_line_fits),
        cmocka_unit_test(json_random_always_parses),
        cmocka_unit_test(text_layout),
        cmocka_unit_test(file_write_reopen),
        cmocka_unit_test(stdout_and_off),
        cmocka_unit_test(reload_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
