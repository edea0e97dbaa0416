/* redact.h -- replacing the gateway's secrets in panel text before it is copied into an error
 * (SPEC section 1: "Credentials never appear in ... an error envelope"). Pure: no I/O, no
 * globals; the caller lists the secrets (pg_auth_secrets) and owns every buffer. */
#ifndef PG_REDACT_H
#define PG_REDACT_H

#include <stddef.h>

#include "plugins/plugin.h"

/* What a secret is replaced with. */
#define PG_REDACTED "[redacted]"
#define PG_REDACTED_LEN (sizeof PG_REDACTED - 1)

/* Secrets a request's error answer is checked for: the adapter's config secrets, the current
 * session, a signature made for the request. More than enough for every adapter. */
#define PG_REDACT_MAX 24

/* Replace every occurrence in (p, n) of any secret in sec[0..nsec) by PG_REDACTED; spans with
 * n == 0 are ignored. Where occurrences overlap, the one that starts first wins (at the same
 * start, the longest), and scanning goes on after it. Writes the result to out when out is not
 * NULL and it fits in cap (not NUL-terminated), and returns its length in any case, so a first
 * call with out NULL sizes the buffer (snprintf style). *hits (may be NULL) gets the number of
 * replacements. Linear in n times nsec (memmem per secret). */
size_t pg_redact(const struct pg_span *sec, size_t nsec, const char *p, size_t n, char *out,
                 size_t cap, size_t *hits);

/* Like pg_redact into a buffer it allocates: 0 with *out NULL when (p, n) holds no secret (no
 * allocation), 0 with *out (malloc'd, NUL-terminated, the caller frees) and *outn set when it
 * did, -1 out of memory. */
int pg_redact_alloc(const struct pg_span *sec, size_t nsec, const char *p, size_t n, char **out,
                    size_t *outn);

#endif
