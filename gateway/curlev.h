/* curlev.h -- libcurl's multi_socket API driven by the worker's libevent loop. One per worker.
 * Owns the CURLM (and with it the upstream keep-alive connection pool). */
#ifndef PG_CURLEV_H
#define PG_CURLEV_H

#include <curl/curl.h>

struct event_base;
struct pg_curlev;

/* Called once per finished transfer, outside any curl callback, with CURLOPT_PRIVATE. The callee
 * must pg_curlev_remove() the handle. */
typedef void pg_curl_done_fn(CURL *e, CURLcode res, void *priv);

/* Every easy handle's CURLOPT_PRIVATE points at a struct that starts with this. */
struct pg_xfer {
    pg_curl_done_fn *done;
    /* the socket curl last named for this transfer, CURL_SOCKET_BAD when none: during a multi
     * transfer CURLINFO_ACTIVESOCKET knows none (curl 7.88 learns it when the transfer ends) */
    curl_socket_t sock;
};

struct pg_curlev *pg_curlev_new(struct event_base *base);
void pg_curlev_free(struct pg_curlev *c); /* accepts NULL; handles must be removed first */

struct pg_upstream;

/* What every easy handle of the gateway has, logins and forwarded requests alike: no signals,
 * no proxy (which also spares curl the *_proxy environment lookups), http and https only,
 * TCP_NODELAY. */
void pg_curl_defaults(CURL *e);

/* up's connect timeout and TLS settings on e: peer and host verification (tls.verify), the CA
 * file (tls.ca_file; NULL: the system store). */
void pg_curl_upstream(CURL *e, const struct pg_upstream *up);

/* The loop's share (TLS sessions, DNS answers) for CURLOPT_SHARE. A handle that outlives the
 * loop must set CURLOPT_SHARE back to NULL first. */
CURLSH *pg_curlev_share(struct pg_curlev *c);

/* Start a transfer; e's CURLOPT_PRIVATE must point at a struct pg_xfer. 0 ok, -1 error. */
int pg_curlev_add(struct pg_curlev *c, CURL *e);
/* Stop a transfer (finished or not). Never call from inside a curl callback. */
void pg_curlev_remove(struct pg_curlev *c, CURL *e);

#endif
