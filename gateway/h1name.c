/* h1name.c -- upstreams named by host for the own client: /etc/hosts first, then DNS on the
 * worker's loop (evdns), the answer's addresses used in turn until its TTL (at most 5 min). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "h1int.h"
#include "util.h"

/* ---- host names: resolved on the loop (evdns), the answers used in turn until their TTL ---- */

static struct pg_h1_name *name_get(struct pg_h1 *h, const char *name)
{
    struct pg_h1_name *nm;
    for (nm = h->names; nm; nm = nm->next)
        if (strcmp(nm->name, name) == 0)
            return nm;
    if (strlen(name) >= sizeof nm->name || !(nm = calloc(1, sizeof *nm)))
        return NULL;
    memcpy(nm->name, name, strlen(name) + 1);
    nm->h = h;
    nm->next = h->names;
    h->names = nm;
    return nm;
}

/* The next address of nm's answer for x (round robin over the answer). */
static void name_pick(struct pg_h1_name *nm, struct pg_h1_xfer *x)
{
    struct sockaddr_in *sa = (struct sockaddr_in *)&x->resolved;
    *sa = nm->addrs[nm->turn++ % nm->n];
    sa->sin_port = htons(x->port);
    x->addr = (const struct sockaddr *)sa;
    x->addrlen = sizeof *sa;
}

bool pg_h1_name_next(struct pg_h1 *h, struct pg_h1_xfer *x)
{
    struct pg_h1_name *nm = name_get(h, x->name);
    if (!nm || nm->n < 2 || ++x->tried >= nm->n)
        return false;
    name_pick(nm, x);
    return true;
}

static void on_resolved(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct pg_h1_name *nm = arg;
    nm->req = NULL;
    if (result == DNS_ERR_CANCEL)
        return;
    nm->n = 0;
    if (result == DNS_ERR_NONE && type == DNS_IPv4_A)
        for (int i = 0; i < count && nm->n < H1_NAME_ADDRS; i++) {
            struct sockaddr_in *sa = &nm->addrs[nm->n++];
            memset(sa, 0, sizeof *sa);
            sa->sin_family = AF_INET;
            memcpy(&sa->sin_addr, (const char *)addresses + 4 * i, 4);
        }
    uint64_t ms = ttl > 0 ? (uint64_t)ttl * 1000 : 1000;
    nm->expires_ms = pg_now_ms() + (ms < H1_TTL_MAX_MS ? ms : H1_TTL_MAX_MS);
    while (nm->waiters.head) {
        struct pg_h1_xfer *x = PG_CONTAINER_OF(nm->waiters.head, struct pg_h1_xfer, wait);
        pg_dlist_remove(&nm->waiters, &x->wait);
        x->waiting = NULL;
        int rc = -3;
        if (nm->n) {
            name_pick(nm, x);
            rc = pg_h1_start_at(nm->h, x);
        }
        if (rc == 0)
            continue;
        if (x->errbuf)
            snprintf(x->errbuf, CURL_ERROR_SIZE,
                     rc == -3 ? "%.64s: no address (DNS: %s)" : "%.64s: cannot open a socket (%s)",
                     nm->name, rc == -3 ? evdns_err_to_string(result) : strerror(errno));
        x->ops->done(x->arg, rc == -3 ? CURLE_COULDNT_RESOLVE_HOST : CURLE_COULDNT_CONNECT);
    }
}

/* The /etc/hosts look-up: evdns_getaddrinfo answers a name from the hosts file (or a numeric
 * one) inside the call; anything else it would ask DNS for, without a TTL, so that query is
 * cancelled and evdns_base_resolve_ipv4, which has the TTL, asks instead. */
static void on_hosts(int err, struct evutil_addrinfo *res, void *arg)
{
    struct pg_h1_name *nm = arg;
    if (nm->probing && err == 0) {
        nm->n = 0;
        for (struct evutil_addrinfo *ai = res; ai && nm->n < H1_NAME_ADDRS; ai = ai->ai_next)
            if (ai->ai_family == AF_INET && ai->ai_addrlen == sizeof(struct sockaddr_in))
                memcpy(&nm->addrs[nm->n++], ai->ai_addr, sizeof(struct sockaddr_in));
        nm->expires_ms = pg_now_ms() + H1_HOSTS_MS;
    }
    if (res)
        evutil_freeaddrinfo(res);
}

static bool from_hosts(struct pg_h1 *h, struct pg_h1_name *nm)
{
    struct evutil_addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    nm->n = 0;
    nm->probing = true;
    struct evdns_getaddrinfo_request *q =
        evdns_getaddrinfo(h->dns, nm->name, NULL, &hints, on_hosts, nm);
    nm->probing = false;
    if (q) /* not in the hosts file: DNS would be asked; the TTL-aware query does it */
        evdns_getaddrinfo_cancel(q);
    /* evdns read the hosts file once: a name it lacks is never probed again (each probe of one
     * sends a DNS query only to cancel it) */
    nm->not_in_hosts = nm->n == 0;
    return nm->n > 0;
}

int pg_h1_start(struct pg_h1 *h, struct pg_h1_xfer *x)
{
    x->tried = 0;
    if (!x->name)
        return pg_h1_start_at(h, x);
    struct pg_h1_name *nm = name_get(h, x->name);
    if (!nm)
        return -1;
    if ((nm->n && pg_now_ms() < nm->expires_ms) ||
        (!nm->req && h->dns && !nm->not_in_hosts && from_hosts(h, nm))) {
        name_pick(nm, x);
        return pg_h1_start_at(h, x);
    }
    /* the answer comes from the loop: x waits for it, never called back from here */
    if (!h->dns)
        return -2;
    if (!nm->req && !(nm->req = evdns_base_resolve_ipv4(h->dns, nm->name, DNS_QUERY_NO_SEARCH,
                                                        on_resolved, nm)))
        return -2;
    pg_dlist_push_tail(&nm->waiters, &x->wait);
    x->waiting = nm;
    return 0;
}
