/* fwd.h -- forwarding one caller request to its upstream over libcurl and streaming the answer
 * back with back-pressure. Owns per-request upstream state (pooled per worker). */
#ifndef PG_FWD_H
#define PG_FWD_H

#include <stddef.h>

#include <curl/curl.h>

#include "req.h"

/* Per-worker pool of forwarding states (each keeps its curl easy handle and buffers). */
struct pg_fwd_pool *pg_fwd_pool_new(void);
void pg_fwd_pool_free(struct pg_fwd_pool *p); /* accepts NULL; no request may be running */

/* Which client serves each upstream of c -- the own HTTP/1.1 client for http:// at an IP
 * address (its address and the authority sent as Host are worked out here) and for https://
 * at a host name (its TLS context is made here), libcurl for the rest. Run when a snapshot is
 * activated (start, reload), before a request uses it; parsing the YAML does not choose clients. */
void pg_fwd_prepare(struct pg_conf *c);

/* Whether pg_fwd_prepare gave up to the own client (else libcurl serves it). */
static inline bool pg_fwd_own_client(const struct pg_upstream *up)
{
    return up->h1_addrlen || up->h1_tls;
}

/* Forward r to upstream r->upstream; `rest` is the normalised path after /{upstream} (borrowed
 * for the call), `query` the raw query string without '?' (NULL if none). The answer goes to the
 * caller through pg_resp_*; on any failure an envelope is sent. */
void pg_fwd_start(struct pg_req *r, const char *rest, size_t rest_len, const char *query,
                  size_t query_len);

#endif
