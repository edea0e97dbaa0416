/* dispatch.h -- the layer above the connections: judges request heads and answers complete
 * requests (gateway endpoints, or rate limits then the forwarder). main.c hands it to the server.
 */
#ifndef PG_DISPATCH_H
#define PG_DISPATCH_H

struct pg_conn_up;

extern const struct pg_conn_up pg_dispatch;

#endif
