/* util.c -- small shared helpers (see util.h). */
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

uint64_t pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pg_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pg_clock_mono(void *arg)
{
    (void)arg;
    return pg_now_ms();
}

int pg_event_add_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    return event_add(ev, &tv);
}

void pg_log(enum pg_log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warn", "info" };
    char line[1024];
    struct pg_sb head = pg_sb_of(line, sizeof line);
    pg_sb_time(&head, pg_wall_ms(), true);
    pg_sb_put(&head, " ", 1);
    pg_sb_str(&head, names[lvl]);
    pg_sb_put(&head, " ", 1);
    if (!pg_sb_end(&head))
        return;
    int n = (int)head.len;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    size_t len =
        (size_t)n +
        ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
    line[len++] = '\n';
    /* one write per line so lines from several threads do not interleave */
    fwrite(line, 1, len, stderr);
}

void pg_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int pg_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool pg_unreserved(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

void pg_trim(const char **p, size_t *n)
{
    while (*n && ((*p)[0] == ' ' || (*p)[0] == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

void pg_sb_u64(struct pg_sb *b, uint64_t v, unsigned width)
{
    char d[20];
    unsigned n = 0;
    do {
        d[sizeof d - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof d);
    while (n < width && n < sizeof d)
        d[sizeof d - 1 - n++] = '0';
    pg_sb_put(b, d + sizeof d - n, n);
}

/* "2024-05-01T12:34:56Z", or with milliseconds "2024-05-01T12:34:56.789Z" (RFC 3339, UTC). */
void pg_sb_time(struct pg_sb *l, uint64_t ms, bool frac)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        l->over = true;
        return;
    }
    const int part[6] = { tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                          tm.tm_hour,        tm.tm_min,     tm.tm_sec };
    static const char sep[6] = "--T::";
    for (int i = 0; i < 6; i++) {
        pg_sb_u64(l, part[i] < 0 ? 0 : (uint64_t)part[i], i ? 2 : 4);
        if (i < 5)
            pg_sb_put(l, &sep[i], 1);
    }
    if (frac) {
        pg_sb_put(l, ".", 1);
        pg_sb_u64(l, ms % 1000, 3);
    }
    pg_sb_put(l, "Z", 1);
}

bool pg_sb_end(struct pg_sb *b)
{
    if (b->cap == 0)
        return false;
    if (b->over)
        b->len = 0;
    b->p[b->len] = '\0';
    return !b->over;
}
