/* server.h -- the HTTP/1.1 front end of one worker: listener, connections (socket and TLS I/O,
 * timers, keep-alive, parking, linger), the parsing loop, reload, drain. Requests go up to the
 * pg_conn_up it is given (dispatch.c). One per worker thread; with workers > 1 each binds the
 * same port with SO_REUSEPORT and the kernel spreads connections over them. */
#ifndef PG_SERVER_H
#define PG_SERVER_H

#include <stddef.h>

#include "conf.h"

struct event_base;
struct pg_conn_up;
struct pg_hub;
struct pg_server;

/* Worker id of hub: bind conf's listen address and serve on base, handing requests to up
 * (borrowed, e.g. pg_dispatch). Takes a reference to conf. Made on the main thread before the
 * worker threads start. NULL with a message in err on failure. */
struct pg_server *pg_server_new(struct pg_hub *hub, unsigned id, struct event_base *base,
                                struct pg_conf *conf, const struct pg_conn_up *up, char *err,
                                size_t cap);

/* Serve new requests with conf (takes a reference); in-flight requests keep their snapshot. On
 * the worker's thread. */
void pg_server_reload(struct pg_server *s, struct pg_conf *conf);

/* Stop accepting, close idle connections, let in-flight requests finish; the loop is broken when
 * none is left or after drain_timeout. On the worker's thread. */
void pg_server_drain(struct pg_server *s);

/* What conf changes against the config the process started with that a reload cannot apply
 * (SPEC 7: listen, workers, TLS on or off, the store): one warning each. */
void pg_server_restart_warnings(const struct pg_conf *started, const struct pg_conf *conf);

/* From any thread: the worker reloads with conf (a reference is taken) / drains, on its own
 * loop. */
void pg_server_post_reload(struct pg_server *s, struct pg_conf *conf);
void pg_server_post_drain(struct pg_server *s);

/* Close everything; accepts NULL. Once the worker's thread has stopped. */
void pg_server_free(struct pg_server *s);

#endif
