/* route.c -- path normalisation, upstream selection, the longest matching route. */
#include "route.h"

#include <string.h>

#include "util.h"

/* Handle the segment just finished in out[seg..*o): drop "." and resolve "..". -1 above root. */
static int close_segment(char *out, size_t seg, size_t *o)
{
    size_t len = *o - seg;
    if (len == 1 && out[seg] == '.') {
        *o = seg;
        return 0;
    }
    if (len == 2 && out[seg] == '.' && out[seg + 1] == '.') {
        /* seg points just past a '/'; remove that '/' and the segment before it */
        if (seg <= 1)
            return -1;
        size_t k = seg - 1;
        while (k > 0 && out[k - 1] != '/')
            k--;
        if (k == 0)
            return -1;
        *o = k;
        return 0;
    }
    return 0;
}

long pg_path_normalize(const char *p, size_t n, char *out, size_t cap)
{
    if (n == 0 || p[0] != '/' || cap < n + 1)
        return -1;
    size_t o = 0;
    size_t seg = 1; /* start of the current segment in out */
    out[o++] = '/';
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = pg_hexval(p[i + 1]), lo = pg_hexval(p[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            int d = hi * 16 + lo;
            i += 2;
            if (pg_unreserved(d)) {
                out[o++] = (char)d;
            } else if (d == '/' || d == '\\' || d == 0) {
                return -1; /* an upstream might decode these into a path separator */
            } else {
                static const char hexd[] = "0123456789ABCDEF";
                out[o++] = '%';
                out[o++] = hexd[d >> 4];
                out[o++] = hexd[d & 15];
            }
            continue;
        }
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return -1;
        if (c == '/') {
            if (close_segment(out, seg, &o))
                return -1;
            if (out[o - 1] != '/') /* else "//", or what "." or ".." left behind */
                out[o++] = '/';
            seg = o;
            continue;
        }
        out[o++] = (char)c;
    }
    /* a final "." or ".." leaves the '/' before it: "/a/b/.." is the directory "/a/" */
    if (close_segment(out, seg, &o))
        return -1;
    out[o] = '\0';
    return (long)o;
}

int pg_route_match(const struct pg_conf *c, const char *path, size_t n, const char **rest,
                   size_t *rest_len)
{
    if (n < 2 || path[0] != '/')
        return -1;
    const char *name = path + 1;
    const char *slash = memchr(name, '/', n - 1);
    size_t name_len = slash ? (size_t)(slash - name) : n - 1;
    if (name_len == 8 && memcmp(name, "_gateway", 8) == 0)
        return -1;
    int idx = pg_conf_upstream(c, name, name_len);
    if (idx < 0)
        return -1;
    *rest = name + name_len;
    *rest_len = n - 1 - name_len;
    return idx;
}

const struct pg_route_conf *pg_route_of(const struct pg_upstream *up, const char *rest, size_t rn)
{
    const struct pg_route_conf *best = NULL;
    if (rn == 0) {
        rest = "/";
        rn = 1;
    }
    for (size_t i = 0; i < up->nroutes; i++) {
        const struct pg_route_conf *rt = &up->routes[i];
        if (rt->path_len <= rn && memcmp(rt->path, rest, rt->path_len) == 0 &&
            (!best || rt->path_len > best->path_len))
            best = rt;
    }
    return best;
}
