/* rsess.c -- sealing sessions for redis (AES-256-GCM, OpenSSL EVP) and their keys. */
#include "rsess.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util.h"

#define DAY_MS 86400000ull

int pg_rsess_key(const struct pg_conf *c, const struct pg_upstream *u, const char *kind, char *out,
                 size_t cap)
{
    int k;
    if (strcmp(kind, "lock") == 0) {
        k = snprintf(out, cap, "%s:lock:%s", c->redis_prefix, u->name);
    } else {
        /* the url and the adapter's configured secrets: what a session was made with. Keyed
         * by session_key first: a plain hash in a key name would let anyone who reads redis
         * test password guesses offline */
        uint8_t d[EVP_MAX_MD_SIZE];
        char hex[17];
        struct pg_span sec[8];
        size_t n = u->auth && u->auth->secrets ? u->auth->secrets(u->auth_state, NULL, sec, 8) : 0;
        EVP_MD_CTX *h = EVP_MD_CTX_new();
        int ok = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1 &&
                 EVP_DigestUpdate(h, c->session_key, sizeof c->session_key) == 1 &&
                 EVP_DigestUpdate(h, u->url, u->url_len) == 1;
        for (size_t i = 0; ok && i < n; i++) {
            uint8_t len[4] = { (uint8_t)(sec[i].n >> 24), (uint8_t)(sec[i].n >> 16),
                               (uint8_t)(sec[i].n >> 8), (uint8_t)sec[i].n };
            /* lengths first: "ab" + "c" is not "a" + "bc" */
            ok = EVP_DigestUpdate(h, len, sizeof len) == 1 &&
                 EVP_DigestUpdate(h, sec[i].p, sec[i].n) == 1;
        }
        ok = ok && EVP_DigestFinal_ex(h, d, NULL) == 1;
        EVP_MD_CTX_free(h);
        if (!ok)
            return -1;
        pg_hex(d, 8, hex);
        k = snprintf(out, cap, "%s:s:%s:%s", c->redis_prefix, u->name, hex);
    }
    return k < 0 || (size_t)k >= cap ? -1 : 0;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* One AES-256-GCM pass: enc 1 seals in (n bytes) to out and writes the tag; enc 0 opens and
 * checks it. 0 ok, -1 failed (for opening: not authentic). */
static int gcm(int enc, const uint8_t key[32], const unsigned char *nonce, const char *aad,
               const unsigned char *in, size_t n, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int len,
        ok = x && EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, key, nonce, enc) == 1 &&
             EVP_CipherUpdate(x, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) == 1 &&
             EVP_CipherUpdate(x, out, &len, in, (int)n) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, PG_RSESS_TAG, tag) == 1;
    ok = ok && EVP_CipherFinal_ex(x, out + len, &len) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, PG_RSESS_TAG, tag) == 1;
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -1;
}

int pg_rsess_seal(const uint8_t key[32], const char *aad, const struct pg_session *s,
                  uint64_t now_mono, uint64_t now_wall, unsigned char *out, size_t *n,
                  uint64_t *ttl_ms)
{
    unsigned char plain[8 + PG_TOKEN_MAX];
    size_t tn = s->token_len;
    if (tn == 0 || tn >= PG_TOKEN_MAX || RAND_bytes(out, PG_RSESS_NONCE) != 1)
        return -1;
    uint64_t left = s->refresh_at_ms > now_mono ? s->refresh_at_ms - now_mono : 0;
    if (s->refresh_at_ms && left == 0)
        return -1; /* already due: not worth sharing */
    put64(plain, s->refresh_at_ms ? now_wall + left : 0);
    memcpy(plain + 8, s->token, tn);
    int rc =
        gcm(1, key, out, aad, plain, 8 + tn, out + PG_RSESS_NONCE, out + PG_RSESS_NONCE + 8 + tn);
    OPENSSL_cleanse(plain, 8 + tn);
    *n = PG_RSESS_NONCE + 8 + tn + PG_RSESS_TAG;
    *ttl_ms = s->refresh_at_ms ? left : DAY_MS;
    return rc;
}

int pg_rsess_open(const uint8_t key[32], const char *aad, const unsigned char *in, size_t n,
                  uint64_t now_mono, uint64_t now_wall, struct pg_session *s)
{
    unsigned char plain[8 + PG_TOKEN_MAX], tag[PG_RSESS_TAG];
    if (n <= PG_RSESS_NONCE + 8 + PG_RSESS_TAG || n > PG_RSESS_MAX)
        return -1;
    size_t pn = n - PG_RSESS_NONCE - PG_RSESS_TAG, tn = pn - 8;
    memcpy(tag, in + n - PG_RSESS_TAG, PG_RSESS_TAG);
    int rc = gcm(0, key, in, aad, in + PG_RSESS_NONCE, pn, plain, tag);
    uint64_t refresh = rc ? 0 : get64(plain);
    if (rc == 0 && (tn >= sizeof s->token || (refresh && refresh <= now_wall)))
        rc = -1;
    if (rc == 0) {
        memcpy(s->token, plain + 8, tn);
        s->token[tn] = '\0';
        s->token_len = tn;
        s->refresh_at_ms = refresh ? now_mono + (refresh - now_wall) : 0;
    }
    OPENSSL_cleanse(plain, sizeof plain);
    return rc;
}
