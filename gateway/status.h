/* status.h -- the /_gateway/status document (SPEC section 6): what the workers, the store, each
 * upstream's session, cool-down, buckets and counters, and each consumer look like now. It
 * gathers from auth (sessions), limit (buckets, queues, cool-downs) and metrics (counts,
 * latency, history); it never reads a credential, session value or key hash. */
#ifndef PG_STATUS_H
#define PG_STATUS_H

#include <jansson.h>

struct pg_req;

/* The document as r's worker sees it, for r's config snapshot. NULL out of memory. */
json_t *pg_status_json(struct pg_req *r);

#endif
