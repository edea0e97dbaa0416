/* h1url.c -- which upstream urls the own client serves in plain: http://IP[:port]. */
#include "h1.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

int pg_h1_url_addr(const char *url, struct sockaddr_storage *ss, socklen_t *len,
                   size_t *authority_off, size_t *authority_len)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *a = url + 7, *end = a + strcspn(a, "/");
    char host[64];
    const char *hp = a, *he, *port = NULL;
    if (memchr(a, '@', (size_t)(end - a)))
        return -1;
    if (*a == '[') {
        hp = a + 1;
        he = memchr(hp, ']', (size_t)(end - hp));
        if (!he)
            return -1;
        if (he + 1 < end) {
            if (he[1] != ':')
                return -1;
            port = he + 2;
        }
    } else {
        he = memchr(a, ':', (size_t)(end - a));
        if (he)
            port = he + 1;
        else
            he = end;
    }
    if ((size_t)(he - hp) >= sizeof host)
        return -1;
    memcpy(host, hp, (size_t)(he - hp));
    host[he - hp] = '\0';
    unsigned long pn = 80;
    if (port) {
        if (port == end || end - port > 5)
            return -1;
        pn = 0;
        for (const char *q = port; q < end; q++) {
            if (*q < '0' || *q > '9')
                return -1;
            pn = pn * 10 + (unsigned long)(*q - '0');
        }
        if (pn == 0 || pn > 65535)
            return -1;
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (*a != '[' && inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)pn);
        *len = sizeof *s4;
    } else if (*a == '[' && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)pn);
        *len = sizeof *s6;
    } else {
        return -1; /* a host name: libcurl resolves it, per request, with its DNS cache */
    }
    *authority_off = 7;
    *authority_len = (size_t)(end - a);
    return 0;
}
