/* hdr.c -- header classification for forwarding. */
#include "hdr.h"

#include <string.h>

#include "util.h"

static bool in_list(const char *p, size_t n, const char *const *names)
{
    for (; *names; names++)
        if (pg_ieq(p, n, *names))
            return true;
    return false;
}

bool pg_hdr_is_hop(const char *p, size_t n)
{
    static const char *const hop[] = { "connection",
                                       "keep-alive",
                                       "proxy-connection",
                                       "te",
                                       "trailer",
                                       "transfer-encoding",
                                       "upgrade",
                                       "proxy-authorization",
                                       "proxy-authenticate",
                                       NULL };
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
    static const char *const drop[] = { "host",
                                        "content-length",
                                        "expect",
                                        "authorization",
                                        "x-forwarded-for",
                                        "x-forwarded-proto",
                                        "x-request-id",
                                        "x-api-key",
                                        "x-signature",
                                        "x-timestamp",
                                        NULL };
    return pg_hdr_is_hop(p, n) || in_list(p, n, drop);
}

bool pg_hdr_resp_drop(const char *p, size_t n)
{
    return pg_hdr_is_hop(p, n) || pg_ieq(p, n, "content-length") || pg_ieq(p, n, "x-request-id");
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
