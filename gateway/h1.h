/* h1.h -- the gateway's own HTTP/1.1 client: plain http at an IP address, and https at a host
 * name (OpenSSL on the pooled socket). One per worker, on its event loop. Owns the upstream
 * connections and their keep-alive pools (one per address and TLS context), and the TLS
 * sessions it resumes. libcurl stays in charge of the rest (http at a host name, https at an
 * IP address) and of logins (curlev.h); docs/design.md says why this path exists (syscalls and
 * instructions per request).
 *
 * A transfer sends one complete request (head + body, both borrowed until it ends) and reports
 * the answer through its ops: the status and headers once the head is complete, the body as it
 * arrives (framing removed), then done() exactly once. No callback runs inside pg_h1_start. */
#ifndef PG_H1_H
#define PG_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "util.h"

struct event_base;
struct evdns_base;
struct pg_h1;
struct pg_h1_conn;
struct pg_h1_name;

/* What the body callback wants next. */
enum pg_h1_more { PG_H1_GO = 0, PG_H1_PAUSE = 1, PG_H1_ABORT = -1 };

struct pg_h1_ops {
    /* The answer's head (1xx interim answers are skipped): status, then each header, then the
     * end. Any nonzero return aborts the transfer (done gets CURLE_WRITE_ERROR). */
    int (*status)(void *arg, int status);
    int (*header)(void *arg, const char *name, size_t nl, const char *value, size_t vn);
    int (*head_end)(void *arg);
    /* Body bytes, always consumed; PG_H1_PAUSE stops reading the upstream until pg_h1_resume. */
    enum pg_h1_more (*body)(void *arg, const char *p, size_t n);
    /* The end: CURLE_OK, or CURLE_COULDNT_CONNECT, CURLE_GOT_NOTHING, CURLE_SEND_ERROR,
     * CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_WEIRD_SERVER_REPLY, CURLE_WRITE_ERROR (libcurl's
     * codes, so the forwarder maps both clients' failures in one place). */
    void (*done)(void *arg, CURLcode res);
};

/* One transfer; lives in its owner (the forwarder's pooled state). Fields are the client's. */
struct pg_h1_xfer {
    const struct pg_h1_ops *ops;
    void *arg;
    char *errbuf;                /* CURL_ERROR_SIZE bytes: why a transfer failed, for the log */
    const struct sockaddr *addr; /* where to connect; with name set, filled in by the client */
    socklen_t addrlen;
    const char *name; /* a host name to resolve on the loop (its answers used in turn, kept
                       * for their TTL, at most 5 min); NULL: addr is given */
    uint16_t port;
    SSL_CTX *tls;            /* https: the upstream's client context (pg_h1_tls_ctx); NULL: plain */
    const char *tls_name;    /* https: the name sent as SNI and checked against the certificate */
    const char *head, *body; /* the request, borrowed until done */
    size_t head_len, body_len;
    bool head_method; /* a HEAD request: the answer has no body whatever it says */
    bool idempotent;  /* may be sent again if a pooled connection turns out dead (RFC 9110 9.2.2) */

    struct pg_h1_conn *c;
    struct pg_dlink wait;       /* in a name's waiters while it is being resolved */
    struct pg_h1_name *waiting; /* that name; NULL otherwise */
    struct sockaddr_storage resolved;
    size_t sent;
    uint64_t sent_ms; /* pg_now_ms() when the upstream last took request bytes; 0 before */
    bool reused;      /* on a pooled connection: a silent close may be a stale one */
    unsigned tried;   /* by name: addresses of the answer that refused the connection */
    bool got_any;     /* any answer byte arrived */
    bool paused;
};

/* dns: the worker's resolver for upstreams named by host (borrowed; NULL: none). */
struct pg_h1 *pg_h1_new(struct event_base *base, struct evdns_base *dns);
void pg_h1_free(struct pg_h1 *h); /* accepts NULL; closes pooled connections; none may be busy */

/* Start x (ops, arg, errbuf, addr, head/body set by the caller). 0 started; -1 out of memory,
 * -2 no socket (errno says why, e.g. EMFILE); on failure nothing will be called back. */
int pg_h1_start(struct pg_h1 *h, struct pg_h1_xfer *x);
/* Stop x before its end (its connection is closed: the answer is unfinished). No callback. */
void pg_h1_cancel(struct pg_h1_xfer *x);
/* Read the upstream again after the body callback said PG_H1_PAUSE. */
void pg_h1_resume(struct pg_h1_xfer *x);
/* The socket x's request goes out on, -1 when it has none (for a look at its send queue). */
int pg_h1_fd(const struct pg_h1_xfer *x);

/* A client TLS context for an upstream: TLS 1.2+, the chain checked against ca_file (NULL:
 * the system store) and the name against the url's host unless verify is false; sessions are
 * kept per worker and address for resumption. NULL with err set. SSL_CTX_free releases it. */
SSL_CTX *pg_h1_tls_ctx(bool verify, const char *ca_file, char *err, size_t cap);

/* Does this url (http://IP[:port][/path]) qualify, and if so where: its address and the
 * authority to send as Host. 0 yes, -1 no (https, a host name, user info). */
int pg_h1_url_addr(const char *url, struct sockaddr_storage *ss, socklen_t *len,
                   size_t *authority_off, size_t *authority_len);

#endif
