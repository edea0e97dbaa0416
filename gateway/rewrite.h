/* rewrite.h -- answer headers that point at the panel, rewritten for the caller (SPEC section 1):
 * Location and Content-Location get the gateway's public base in place of the upstream url
 * (the same matching as Navirec's Link, pg_uri_under in plugins/plugin.h) and lose the
 * credential query parameter. Pure: no I/O, no allocation. */
#ifndef PG_REWRITE_H
#define PG_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "plugins/plugin.h"

/* Is (p, n) the name of a header that carries one URI to rewrite: Location, Content-Location? */
bool pg_rewrite_is_location(const char *p, size_t n);

/* Rewrite a Location or Content-Location value (v, n): a URI under upstream_url (pg_uri_under)
 * gets public_base (NUL-terminated; a trailing '/' ignored) in place of the upstream url; any
 * other URI, relative ones included, keeps its base. In both, every query parameter named
 * `param` (NULL: none; names compared percent-decoded) is removed, and a query left empty loses
 * its '?'. The fragment is kept as it is. Writes the result to out[cap] NUL-terminated.
 * Returns 1 when the value changed (*outlen set), 0 when it stays as it is, -1 when the
 * rewritten value does not fit in cap (the caller drops the header rather than leak it). */
int pg_rewrite_location(const char *v, size_t n, const char *upstream_url, const char *public_base,
                        const char *param, char *out, size_t cap, size_t *outlen);

#endif
