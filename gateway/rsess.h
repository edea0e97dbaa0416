/* rsess.h -- panel sessions in redis (SPEC section 4.1): sealed with AES-256-GCM under
 * rate_limit_store.session_key (a fresh 96-bit nonce per write, the upstream's name as
 * associated data, so a value moved to another upstream's key does not open), keyed by the
 * upstream's name and a hash of its url and credentials (a changed password never finds the old
 * session). A redis dump or MONITOR shows no usable credential. Pure functions: auth.c does the
 * I/O. */
#ifndef PG_RSESS_H
#define PG_RSESS_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* nonce + (8-byte refresh time + token) + tag */
#define PG_RSESS_NONCE 12
#define PG_RSESS_TAG 16
#define PG_RSESS_MAX (PG_RSESS_NONCE + 8 + PG_TOKEN_MAX + PG_RSESS_TAG)

/* "{prefix}:s:<upstream>:<16 hex of SHA-256(session_key, url, credentials)>" (kind "s") or
 * "{prefix}:lock:<upstream>" (kind "lock") into out. 0 ok, -1 does not fit. */
int pg_rsess_key(const struct pg_conf *c, const struct pg_upstream *u, const char *kind, char *out,
                 size_t cap);

/* Seal s for upstream name aad into out[0..PG_RSESS_MAX), *n its length. Its refresh time goes
 * as wall-clock ms (instances share no monotonic clock): now_mono and now_wall are the same
 * instant on both clocks. *ttl_ms: how long redis should keep it (until the refresh time, or a
 * day). 0 ok, -1 (a crypto failure). */
int pg_rsess_seal(const uint8_t key[32], const char *aad, const struct pg_session *s,
                  uint64_t now_mono, uint64_t now_wall, unsigned char *out, size_t *n,
                  uint64_t *ttl_ms);

/* Open what pg_rsess_seal made into *s, its refresh time back on the monotonic clock. 0: a
 * session still valid at now; -1: not one (wrong key or upstream, tampered, cut, expired). */
int pg_rsess_open(const uint8_t key[32], const char *aad, const unsigned char *in, size_t n,
                  uint64_t now_mono, uint64_t now_wall, struct pg_session *s);

#endif
