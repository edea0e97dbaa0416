/* route.h -- path normalisation and routing (SPEC section 2): /{upstream}/{rest}, and the route
 * whose rate limit a request takes from (SPEC section 4). */
#ifndef PG_ROUTE_H
#define PG_ROUTE_H

#include <stddef.h>

#include "conf.h"

/* Normalise the raw request path (p, n) (no query string) into out (cap >= n + 1):
 * percent-encoded unreserved characters are decoded (%61 -> a, %2e -> .), other escapes are kept
 * with upper-case hex, "//" collapses, "." segments go and ".." removes the previous segment.
 * Returns the normalised length, or -1 when the path must be refused: not starting with '/',
 * a bad escape, an encoded '/', '\' or NUL, a raw control, space or non-ASCII byte, a
 * backslash, or ".." above the root. out is NUL-terminated. */
long pg_path_normalize(const char *p, size_t n, char *out, size_t cap);

/* Split a normalised path into its upstream and the rest. On success returns the upstream index
 * and points *rest at the part after "/{name}" ("" when nothing follows); -1 if no upstream has
 * that name. A path naming the reserved "_gateway" is never an upstream. */
int pg_route_match(const struct pg_conf *c, const char *path, size_t n, const char **rest,
                   size_t *rest_len);

/* The route of upstream up whose rate limit applies to rest (the part after /{upstream}, as
 * pg_route_match gives it; "" counts as "/"): the longest route path that is a byte prefix of
 * rest (SPEC section 4), or NULL when none is. The first of equal-length paths wins. */
const struct pg_route_conf *pg_route_of(const struct pg_upstream *up, const char *rest, size_t rn);

#endif
