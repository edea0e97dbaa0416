/* keys.h -- caller authentication (SPEC section 3): API key hashing, constant-time lookup,
 * allow-lists with method narrowing, key generation. */
#ifndef PG_KEYS_H
#define PG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

/* SHA-256 of the key bytes. */
void pg_key_hash(const char *key, size_t n, uint8_t out[32]);

/* The consumer whose key is the bearer token in the Authorization value (p, n), or NULL.
 * Every consumer's digest is compared with CRYPTO_memcmp, with no early exit. */
const struct pg_consumer *pg_keys_lookup(const struct pg_conf *c, const char *authz, size_t n);

/* May consumer k call upstream index `up` with the method bit m (PG_M_*)? */
bool pg_keys_allowed(const struct pg_consumer *k, int up, unsigned m);

/* A new random key "pgk_" + 40 hex digits (160 bits) into out (cap >= 45). 0 ok, -1 no entropy. */
int pg_keys_generate(char *out, size_t cap);

#endif
