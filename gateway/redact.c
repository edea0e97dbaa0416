/* redact.c -- secrets out of panel text: one pass, earliest occurrence first. */
#include "redact.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A secret's next occurrence at or after `from`, or n when there is none. */
static size_t next_at(const struct pg_span *s, const char *p, size_t n, size_t from)
{
    if (s->n == 0 || n - from < s->n)
        return n;
    const char *hit = memmem(p + from, n - from, s->p, s->n);
    return hit ? (size_t)(hit - p) : n;
}

static void put(char *out, size_t cap, size_t at, const char *p, size_t k)
{
    if (out && at <= cap && cap - at >= k)
        memcpy(out + at, p, k);
}

size_t pg_redact(const struct pg_span *sec, size_t nsec, const char *p, size_t n, char *out,
                 size_t cap, size_t *hits)
{
    size_t pos[PG_REDACT_MAX];
    size_t count = 0, len = 0, i = 0;
    if (nsec > PG_REDACT_MAX)
        nsec = PG_REDACT_MAX;
    for (size_t k = 0; k < nsec; k++)
        pos[k] = next_at(&sec[k], p, n, 0);
    for (;;) {
        /* the earliest occurrence; at the same start the longest secret */
        size_t best = nsec, at = n;
        for (size_t k = 0; k < nsec; k++) {
            if (pos[k] < i)
                pos[k] = next_at(&sec[k], p, n, i);
            if (pos[k] < n &&
                (best == nsec || pos[k] < at || (pos[k] == at && sec[k].n > sec[best].n))) {
                at = pos[k];
                best = k;
            }
        }
        if (best == nsec)
            break;
        put(out, cap, len, p + i, at - i);
        len += at - i;
        put(out, cap, len, PG_REDACTED, PG_REDACTED_LEN);
        len += PG_REDACTED_LEN;
        count++;
        i = at + sec[best].n;
    }
    put(out, cap, len, p + i, n - i);
    len += n - i;
    if (out && len > cap)
        memset(out, 0, cap); /* never a half-written answer with a secret's prefix in it */
    if (hits)
        *hits = count;
    return len;
}

int pg_redact_alloc(const struct pg_span *sec, size_t nsec, const char *p, size_t n, char **out,
                    size_t *outn)
{
    size_t hits = 0;
    size_t need = pg_redact(sec, nsec, p, n, NULL, 0, &hits);
    *out = NULL;
    *outn = 0;
    if (hits == 0)
        return 0;
    char *b = malloc(need + 1);
    if (!b)
        return -1;
    pg_redact(sec, nsec, p, n, b, need, NULL);
    b[need] = '\0';
    *out = b;
    *outn = need;
    return 0;
}
