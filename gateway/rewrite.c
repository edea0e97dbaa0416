/* rewrite.c -- URIs in answer headers that point at the panel: which ones (pg_uri_under, shared
 * with the Navirec plugin's Link rewriting), and Location/Content-Location for every adapter. */
#include "rewrite.h"

#include <string.h>
#include <strings.h>

#include "query.h"
#include "util.h"

/* upstream_url split once per call: origin "scheme://authority" (case-insensitive) and path. */
struct base {
    const char *url;
    size_t origin_len, len; /* len: without trailing '/' */
};

/* Is `rest` (n bytes) empty or starting at a path boundary? */
static bool boundary(const char *rest, size_t n)
{
    return n == 0 || rest[0] == '/' || rest[0] == '?' || rest[0] == '#';
}

const char *pg_uri_under(const char *upstream_url, const char *uri, size_t n)
{
    if (!upstream_url || !uri)
        return NULL;
    struct base b = { upstream_url, 0, strlen(upstream_url) };
    while (b.len > 0 && upstream_url[b.len - 1] == '/')
        b.len--;
    const char *scheme_end = strstr(upstream_url, "://");
    if (!scheme_end || (size_t)(scheme_end - upstream_url) + 3 >= b.len)
        return NULL;
    const char *slash =
        memchr(scheme_end + 3, '/', b.len - (size_t)(scheme_end + 3 - upstream_url));
    b.origin_len = slash ? (size_t)(slash - upstream_url) : b.len;
    const char *bpath = b.url + b.origin_len;
    size_t bpn = b.len - b.origin_len;
    if (n >= b.len && strncasecmp(uri, b.url, b.origin_len) == 0 &&
        memcmp(uri + b.origin_len, bpath, bpn) == 0 && boundary(uri + b.len, n - b.len))
        return uri + b.len;
    if (n >= 1 && uri[0] == '/' && !(n >= 2 && uri[1] == '/') && n >= bpn &&
        memcmp(uri, bpath, bpn) == 0 && boundary(uri + bpn, n - bpn))
        return uri + bpn;
    return NULL;
}

bool pg_rewrite_is_location(const char *p, size_t n)
{
    return pg_ieq(p, n, "location") || pg_ieq(p, n, "content-location");
}

int pg_rewrite_location(const char *v, size_t n, const char *upstream_url, const char *public_base,
                        const char *param, char *out, size_t cap, size_t *outlen)
{
    if (!v || !out || cap == 0 || !outlen)
        return 0;
    const char *rest = public_base ? pg_uri_under(upstream_url, v, n) : NULL;
    size_t pbn = rest ? strlen(public_base) : 0;
    while (pbn > 0 && public_base[pbn - 1] == '/')
        pbn--;
    const char *s = rest ? rest : v;
    size_t sn = n - (size_t)(s - v);
    /* s = path [ '?' query ] [ '#' fragment ] */
    const char *hash = memchr(s, '#', sn);
    size_t before_frag = hash ? (size_t)(hash - s) : sn;
    const char *q = memchr(s, '?', before_frag);
    size_t pathn = q ? (size_t)(q - s) : before_frag;
    size_t qn = q ? before_frag - pathn - 1 : 0;
    size_t fragn = sn - before_frag;
    /* the stripped query is never longer than the query: it is written in place in out */
    size_t need = pbn + pathn + 1 + qn + fragn;
    if (need + 1 > cap)
        return rest || (param && q && pg_query_has(q + 1, qn, param)) ? -1 : 0;
    size_t o = 0;
    memcpy(out, public_base, pbn);
    o += pbn;
    memcpy(out + o, s, pathn);
    o += pathn;
    bool stripped = false;
    if (q) {
        size_t kept = qn;
        if (param && pg_query_has(q + 1, qn, param)) {
            kept = pg_query_strip(q + 1, qn, param, out + o + 1);
            stripped = true;
        } else {
            memcpy(out + o + 1, q + 1, qn);
        }
        if (kept > 0 || !stripped) {
            out[o] = '?';
            o += 1 + kept;
        }
    }
    memcpy(out + o, s + before_frag, fragn);
    o += fragn;
    out[o] = '\0';
    if (!rest && !stripped)
        return 0;
    *outlen = o;
    return 1;
}
