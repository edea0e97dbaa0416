/* query.h -- query strings (and form bodies, which share the syntax): find, drop and add a
 * parameter. Names compare after percent-decoding, so "h%61sh" is "hash". */
#ifndef PG_QUERY_H
#define PG_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/* Is the parameter name (p, n), percent-decoded, equal to want? */
bool pg_query_name_is(const char *p, size_t n, const char *want);

/* Does the query or form body (q, n) carry a parameter named name? */
bool pg_query_has(const char *q, size_t n, const char *name);

/* Copy (q, n) to out (room for n bytes) without any parameter named name, and without empty
 * '&&' segments. Returns the length written (not NUL-terminated). */
size_t pg_query_strip(const char *q, size_t n, const char *name, char *out);

/* Bytes pg_query_add may write for this name and value, with the NUL. */
size_t pg_query_add_room(const char *name, const char *value);

/* Write "?name=value" (or "&name=value" when the target already has a query) at out, the value
 * percent-encoded but for unreserved characters; NUL-terminated. Returns the length written. */
size_t pg_query_add(char *out, bool has_query, const char *name, const char *value);

#endif
