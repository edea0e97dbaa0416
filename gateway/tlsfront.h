/* tlsfront.h -- the TLS context for callers' connections (listen.tls, SPEC section 7). */
#ifndef PG_TLSFRONT_H
#define PG_TLSFRONT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "conf.h"

/* listen.tls: TLS 1.2 or later with conf's certificate chain and key, record buffers released
 * while idle. NULL with the reason in err when they cannot be used. */
SSL_CTX *pg_tls_front_ctx(const struct pg_conf *conf, char *err, size_t cap);

/* Can conf's listen.tls certificate and key be served (what a server would load)? 0 yes or no
 * TLS; -1 with a message in err. For --check. */
int pg_tls_front_check(const struct pg_conf *conf, char *err, size_t cap);

#endif
