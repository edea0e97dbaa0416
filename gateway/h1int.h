/* h1int.h -- what h1.c (connections, pools, TLS) and h1name.c (host names resolved on the
 * loop) share. Not for other modules. */
#ifndef PG_H1INT_H
#define PG_H1INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "h1.h"

#define H1_RBUF (64 * 1024)

#define H1_NAME_ADDRS 8
#define H1_TTL_MAX_MS 300000 /* an answer is used at most this long, whatever its TTL */

/* A host name upstreams are reached by, as this worker resolved it. */
struct pg_h1_name {
    struct pg_h1_name *next;
    struct pg_h1 *h;
    char name[256];
    struct sockaddr_in addrs[H1_NAME_ADDRS]; /* the last answer, used in turn */
    size_t n, turn;
    uint64_t expires_ms;
    struct evdns_request *req; /* a query under way */
    struct pg_dlist waiters;   /* transfers waiting for it */
    bool probing;              /* inside the /etc/hosts look-up (answered synchronously) */
    bool not_in_hosts;         /* the hosts file (read once, with the resolver) does not name it */
};

#define H1_HOSTS_MS 60000 /* a name from /etc/hosts is looked up again after this */

struct host;

struct pg_h1 {
    struct event_base *base;
    struct evdns_base *dns;
    struct pg_h1_name *names;
    struct host *hosts;
    char rbuf[H1_RBUF]; /* every read lands here and is parsed at once */
};

/* x (by name) could not connect to x->addr: the next address of the name's answer, if one is
 * left untried (h1name.c). */
bool pg_h1_name_next(struct pg_h1 *h, struct pg_h1_xfer *x);

/* x's connection at x->addr: a pooled one or a new one (h1.c). 0, -1 out of memory, -2 no
 * socket. */
int pg_h1_start_at(struct pg_h1 *h, struct pg_h1_xfer *x);

#endif
