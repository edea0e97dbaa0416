/* query.c -- query-string parameters: find, drop, add. */
#include "query.h"

#include <string.h>

#include "util.h"

bool pg_query_name_is(const char *p, size_t n, const char *want)
{
    size_t wn = strlen(want), k = 0;
    for (size_t i = 0; i < n; i++, k++) {
        int c = (unsigned char)p[i];
        if (c == '%' && i + 2 < n && pg_hexval(p[i + 1]) >= 0 && pg_hexval(p[i + 2]) >= 0) {
            c = pg_hexval(p[i + 1]) * 16 + pg_hexval(p[i + 2]);
            i += 2;
        }
        if (k >= wn || c != want[k])
            return false;
    }
    return k == wn;
}

/* The next '&'-separated segment of (q, n) from *i: its start, name length and end. */
static bool next_param(const char *q, size_t n, size_t *i, size_t *start, size_t *name_len,
                       size_t *end)
{
    if (*i >= n)
        return false;
    size_t j = *i, k = *i;
    while (j < n && q[j] != '&')
        j++;
    while (k < j && q[k] != '=')
        k++;
    *start = *i;
    *name_len = k - *i;
    *end = j;
    *i = j + 1;
    return true;
}

bool pg_query_has(const char *q, size_t n, const char *name)
{
    size_t i = 0, s, nl, e;
    while (next_param(q, n, &i, &s, &nl, &e))
        if (pg_query_name_is(q + s, nl, name))
            return true;
    return false;
}

size_t pg_query_strip(const char *q, size_t n, const char *name, char *out)
{
    size_t o = 0, i = 0, s, nl, e;
    while (next_param(q, n, &i, &s, &nl, &e)) {
        if (e == s || pg_query_name_is(q + s, nl, name))
            continue;
        if (o)
            out[o++] = '&';
        memcpy(out + o, q + s, e - s);
        o += e - s;
    }
    return o;
}

size_t pg_query_add_room(const char *name, const char *value)
{
    return strlen(name) + 3 * strlen(value) + 3;
}

size_t pg_query_add(char *out, bool has_query, const char *name, const char *value)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t n = 0, nl = strlen(name);
    out[n++] = has_query ? '&' : '?';
    memcpy(out + n, name, nl);
    n += nl;
    out[n++] = '=';
    for (; *value; value++) {
        unsigned char c = (unsigned char)*value;
        if (pg_unreserved(c)) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hexd[c >> 4];
            out[n++] = hexd[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}
