/* conn.h -- a caller's connection as the connection layer (server.c) keeps it and dispatch
 * (dispatch.c) reads it. server.c owns it: socket and TLS I/O, events, timers, parsing loop,
 * keep-alive, parking, linger, close. Dispatch is handed each request through pg_conn_up and
 * calls down only through the request's own hooks (pg_req) and the parser's refusal. */
#ifndef PG_CONN_H
#define PG_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event_struct.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "envelope.h"
#include "req.h"
#include "reqparse.h"

struct pg_server;
struct pg_endpoint;
struct pg_consumer;

enum pg_cstate {
    CS_READ,    /* reading a request (or idle between keep-alive requests) */
    CS_BUSY,    /* a request is being answered */
    CS_CLOSING, /* flushing the last answer */
    CS_LINGER,  /* answer flushed, write side shut; discarding input until EOF or timeout */
};

struct pg_conn;

/* What a connection holds only while a request is on it (or its bytes are arriving): made at
 * the first byte, freed once the connection is idle again, so an idle keep-alive connection
 * costs its struct pg_conn and its two empty buffers only (nginx frees a connection's buffers
 * while it idles too). */
struct pg_creq {
    struct pg_conn *c;
    struct pg_creq *next_free; /* in the server's cache while no connection has it */
    struct pg_reqparse ps;
    struct pg_req req;
};

struct pg_conn {
    struct pg_dlink link; /* in the server's conns */
    struct pg_server *srv;
    evutil_socket_t fd;
    struct evbuffer *in, *out;
    struct event rev; /* readable; persistent while reading is wanted */
    struct event wev; /* writable (armed only while the kernel buffer is full) or kicked */
    bool kicked;      /* wev is active: a write runs before the loop sleeps */
    bool reading;     /* rev is added */
    bool reprocess;   /* rev was activated to parse buffered bytes, not to read */
    bool events;      /* rev, wev and timer are assigned */
    bool in_rev;      /* on_rev is running: it, not await_request, frees an idle input buffer */
    /* dispatch's state (dispatch.c): the last Authorization value that matched, so keep-alive
     * requests skip the SHA-256; valid only for the config generation it was checked against */
    char akey[128];
    size_t akey_len;
    uint64_t akey_gen;
    const struct pg_consumer *akey_consumer;
    struct pg_creq *cr; /* NULL while idle */
    enum pg_cstate state;
    bool parked; /* answers wait unread: the next request is not parsed until they drain */
    /* the head was refused but no body follows: answered at the request's end, keep-alive */
    bool refused;
    enum pg_err_code rcode;
    const char *rmsg;
    const struct pg_endpoint *ep; /* a gateway endpoint the head was judged for, or NULL */
    uint64_t stall_ms;            /* unwritten output made no progress since; 0: none waiting */
    struct event timer;
    SSL *ssl;                  /* listen.tls: the connection's TLS state; NULL for plain HTTP */
    bool tls_read_wants_write; /* a handshake step inside SSL_read waits for room to write */
    char peer[INET6_ADDRSTRLEN];
};

/* The layer above the connections: it judges each head (the parser's callback, arg the
 * connection) and answers each complete request (the connection is CS_BUSY, its timer off;
 * the answer's end comes back through pg_req.done). */
struct pg_conn_up {
    pg_reqparse_head_fn *head;
    void (*request)(struct pg_conn *c);
};

#endif
