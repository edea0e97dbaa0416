/* hdr.h -- which headers cross the gateway (SPEC sections 1-2): hop-by-hop headers (RFC 9110
 * 7.6.1), headers the gateway sets itself, and caller-supplied panel credentials; the panel's
 * Retry-After value. */
#ifndef PG_HDR_H
#define PG_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Is the header name (p, n) hop-by-hop? Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-Authorization, Proxy-Authenticate. */
bool pg_hdr_is_hop(const char *p, size_t n);

/* Does the Connection header value (v, vn) list the header name (p, n) as a token? */
bool pg_hdr_conn_lists(const char *v, size_t vn, const char *p, size_t n);

/* Must a caller's request header (p, n) be dropped before the upstream sees it? True for
 * hop-by-hop, Host, Content-Length, Expect, Authorization (the caller's key), the
 * X-Forwarded-* and X-Request-Id headers the gateway sets, and panel credentials
 * (X-API-Key, X-Signature, X-Timestamp). */
bool pg_hdr_req_drop(const char *p, size_t n);

/* Must an upstream response header (p, n) be dropped before the caller sees it? True for
 * hop-by-hop, Content-Length (the gateway frames the body itself), X-Request-Id, the panel's
 * RateLimit* headers (the gateway sends its own) and Set-Cookie/Set-Cookie2 (the panel's session
 * is the gateway's, never a caller's). */
bool pg_hdr_resp_drop(const char *p, size_t n);

/* Is (p, n) a header name: one or more RFC 9110 token characters (no space, no colon)? */
bool pg_hdr_name_ok(const char *p, size_t n);

/* Is (v, n) a header value the gateway will pass on: no CR, LF or NUL? */
bool pg_hdr_value_ok(const char *v, size_t n);

/* Is (v, n) a sane caller X-Request-Id to keep: 1-128 of [A-Za-z0-9._:-]? */
bool pg_hdr_request_id_ok(const char *v, size_t n);

/* Retry-After: delta-seconds or an HTTP-date (IMF-fixdate), relative to now_s (wall clock).
 * 0 with *secs set, -1 when the value is neither. A date in the past gives 0 seconds. */
int pg_parse_retry_after(const char *v, size_t n, int64_t now_s, uint64_t *secs);

#endif
