/* keys.c -- caller API keys: hash, constant-time lookup, allow-lists, generation. */
#include "keys.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "util.h"

void pg_key_hash(const char *key, size_t n, uint8_t out[32])
{
    SHA256((const unsigned char *)key, n, out);
}

const struct pg_consumer *pg_keys_lookup(const struct pg_conf *c, const char *authz, size_t n)
{
    if (!authz || !pg_iprefix(authz, n, "bearer "))
        return NULL;
    const char *k = authz + 7;
    size_t kn = n - 7;
    pg_trim(&k, &kn);
    if (kn == 0 || kn > 512)
        return NULL;
    uint8_t d[32];
    pg_key_hash(k, kn, d);
    const struct pg_consumer *found = NULL;
    for (size_t i = 0; i < c->nconsumers; i++) {
        /* no early exit: the time taken does not depend on which consumer matched */
        if (CRYPTO_memcmp(d, c->consumers[i].key_sha256, 32) == 0)
            found = &c->consumers[i];
    }
    OPENSSL_cleanse(d, sizeof d);
    return found;
}

bool pg_keys_allowed(const struct pg_consumer *k, int up, unsigned m)
{
    for (size_t i = 0; i < k->nallow; i++) {
        const struct pg_allow *a = &k->allow[i];
        if ((a->upstream == -1 || a->upstream == up) && (a->methods & m))
            return true;
    }
    return false;
}

int pg_keys_generate(char *out, size_t cap)
{
    uint8_t r[20];
    if (cap < 4 + 2 * sizeof r + 1 || RAND_bytes(r, sizeof r) != 1)
        return -1;
    out[0] = 'p';
    out[1] = 'g';
    out[2] = 'k';
    out[3] = '_';
    pg_hex(r, sizeof r, out + 4);
    OPENSSL_cleanse(r, sizeof r);
    return 0;
}
