/* hdr.c -- header classification for forwarding, Retry-After parsing. */
#include "hdr.h"

#include <string.h>
#include <time.h>

#include "util.h"

struct name {
    const char *s;
    size_t n;
};
#define N(s)                                                                                       \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }

/* Lengths are compared first: most names are rejected without touching their bytes. */
static bool in_list(const char *p, size_t n, const struct name *names)
{
    for (; names->s; names++)
        if (names->n == n && strncasecmp(p, names->s, n) == 0)
            return true;
    return false;
}

bool pg_hdr_is_hop(const char *p, size_t n)
{
    static const struct name hop[] = { N("connection"),
                                       N("keep-alive"),
                                       N("proxy-connection"),
                                       N("te"),
                                       N("trailer"),
                                       N("transfer-encoding"),
                                       N("upgrade"),
                                       N("proxy-authorization"),
                                       N("proxy-authenticate"),
                                       { NULL, 0 } };
    return in_list(p, n, hop);
}

bool pg_hdr_conn_lists(const char *v, size_t vn, const char *p, size_t n)
{
    size_t i = 0;
    while (i < vn) {
        size_t j = i;
        while (j < vn && v[j] != ',')
            j++;
        const char *t = v + i;
        size_t tn = j - i;
        pg_trim(&t, &tn);
        if (tn == n && strncasecmp(t, p, n) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

bool pg_hdr_req_drop(const char *p, size_t n)
{
    static const struct name drop[] = {
        N("host"),          N("content-length"),  N("expect"),
        N("authorization"), N("x-forwarded-for"), N("x-forwarded-proto"),
        N("x-request-id"),  N("x-api-key"),       N("x-signature"),
        N("x-timestamp"),   { NULL, 0 }
    };
    return pg_hdr_is_hop(p, n) || in_list(p, n, drop);
}

bool pg_hdr_resp_drop(const char *p, size_t n)
{
    /* the panel's own RateLimit headers describe the gateway's budget, not the caller's; its
     * cookies belong to the gateway's session with the panel (SPEC 1: never to a caller) */
    return pg_hdr_is_hop(p, n) || pg_ieq(p, n, "content-length") || pg_ieq(p, n, "x-request-id") ||
           pg_iprefix(p, n, "ratelimit") || pg_ieq(p, n, "set-cookie") ||
           pg_ieq(p, n, "set-cookie2");
}

bool pg_hdr_name_ok(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr("!#$%&'*+-.^_`|~", c))))
            return false;
    }
    return true;
}

bool pg_hdr_value_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            return false;
    return true;
}

bool pg_hdr_request_id_ok(const char *v, size_t n)
{
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

int pg_parse_retry_after(const char *v, size_t n, int64_t now_s, uint64_t *secs)
{
    pg_trim(&v, &n);
    if (n == 0 || n > 64)
        return -1;
    if (v[0] >= '0' && v[0] <= '9') {
        uint64_t x = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] < '0' || v[i] > '9' || x > UINT64_MAX / 10 / 1000)
                return -1;
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        *secs = x;
        return 0;
    }
    char buf[65];
    memcpy(buf, v, n);
    buf[n] = '\0';
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *secs = (int64_t)t > now_s ? (uint64_t)((int64_t)t - now_s) : 0;
    return 0;
}
