/* tlsfront.c -- the SSL_CTX callers' TLS is served with (listen.tls). */
#include "tlsfront.h"

#include <stdio.h>

#include <openssl/err.h>
#include <openssl/x509.h>

/* listen.tls: TLS 1.2 or later with the configured certificate chain and key. NULL with err
 * set when they cannot be used. */
SSL_CTX *pg_tls_front_ctx(const struct pg_conf *conf, char *err, size_t cap)
{
    const char *what = "out of memory";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* partial writes: the output evbuffer goes out a chunk at a time; released buffers: an
     * idle keep-alive connection holds no TLS record buffers */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    ERR_clear_error();
    what = "listen.tls.cert: not a usable PEM certificate chain";
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1)
        goto fail;
    what = "listen.tls.key: not a usable PEM private key";
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            what = "listen.tls: the key does not belong to the certificate";
        goto fail;
    }
    what = "listen.tls: the key does not belong to the certificate";
    if (SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    return ctx;
fail:;
    const char *why = ERR_reason_error_string(ERR_peek_last_error());
    snprintf(err, cap, "%s (%s)", what, why ? why : "-");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int pg_tls_front_check(const struct pg_conf *conf, char *err, size_t cap)
{
    if (!conf->tls_cert)
        return 0;
    SSL_CTX *ctx = pg_tls_front_ctx(conf, err, cap);
    SSL_CTX_free(ctx);
    return ctx ? 0 : -1;
}
