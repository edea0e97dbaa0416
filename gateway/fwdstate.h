/* fwdstate.h -- struct pg_fwd, the state of one upstream exchange, and its bounds. Shared by the
 * forwarder's three files only: fwd.c (the exchange), fwdreq.c (the request), fwdans.c (the
 * answer). Nothing outside them includes it. */
#ifndef PG_FWDSTATE_H
#define PG_FWDSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <event2/event_struct.h>

#include "auth.h"
#include "curlev.h"
#include "h1.h"
#include "req.h"

/* Pause the upstream when this many bytes wait for the caller; resume below the server's low
 * mark (PG_FWD_HIGH / 2). Bounds memory per streaming request. */
#define PG_FWD_HIGH (256 * 1024)
/* an upstream answer head larger than this fails the request (upstream_error) */
#define PG_FWD_HEAD_MAX (64 * 1024)
/* header lines the gateway adds besides the caller's: forwarding, id, plugin, curl suppressions */
#define PG_FWD_EXTRA_HDRS (8 + PG_OUT_MAX_HEADERS)
/* an error answer a plugin must judge is held back up to this size; larger ones stream on */
#define PG_FWD_HOLD_MAX (64 * 1024)

struct pg_fwd;

/* The upload as a client sees it, for the idle checks. */
struct pg_fwd_upload {
    uint64_t written;  /* request bytes handed to the kernel */
    uint64_t wrote_ms; /* when the last of them were (progress) */
    uint64_t total;    /* the request's bytes as this client counts them */
    int fd;            /* the upstream socket (its send queue still moves); -1: none known */
};

/* An upstream client as fwd.c drives it; each fills this in its own file. */
struct pg_fwd_client {
    /* Send f's request (built by fwdreq.c for this client) with body. 0 running (pg_fwd_done
     * follows, never inside this call), -1 failed, -2 out of sockets. */
    int (*start)(struct pg_fwd *f, const char *body, size_t bn);
    void (*stop)(struct pg_fwd *f);   /* end a running transfer, finished or not */
    void (*resume)(struct pg_fwd *f); /* the caller drained: read the answer again */
    void (*upload)(const struct pg_fwd *f, struct pg_fwd_upload *u);
};

/* fwd_h1.c: http:// at an IP address, https:// at a name; fwd_curl.c: the rest. */
extern const struct pg_fwd_client pg_fwd_h1, pg_fwd_curl;

/* fwd_curl.c: f's easy handle with the options that never change between requests. 0, -1. */
int pg_fwd_curl_init(struct pg_fwd *f);

/* fwd.c: the exchange is over, whichever client ran it and however it ended. */
void pg_fwd_done(struct pg_fwd *f, CURLcode res);

struct pg_fwd {
    struct pg_xfer x; /* first: CURLOPT_PRIVATE */
    const struct pg_fwd_client *client;
    struct pg_h1_xfer hx; /* the own client's transfer (fwd_h1.c) */
    struct pg_fwd *next_free;
    struct pg_fwd_pool *pool;
    struct pg_req *req;
    const struct pg_upstream *up;
    CURL *easy;
    struct curl_slist nodes[PG_MAX_HDRS + PG_FWD_EXTRA_HDRS];
    char *hb; /* upstream request header lines, NUL-separated */
    size_t hcap, hused;
    char *url;
    size_t ucap;
    size_t path_off, path_end; /* in url: where the path starts, and its end ('?' or NUL) */
    char *head;                /* answer header lines for the caller, until the head is complete */
    size_t head_len, head_cap;
    const char *rest, *query; /* the request's target, borrowed from the connection */
    size_t rest_len, query_len;
    CURLU *cu;
    char *cu_up; /* the upstream url whose scheme, host and port cu holds (a copy) */
    char *qbuf;  /* the caller's query without the panel credential parameter */
    size_t qcap;
    struct pg_auth_wait wait;
    uint64_t gen;  /* session generation the request was signed with */
    bool has_sess; /* sess holds the session it was signed with (a copy: another worker's login
                    * may replace the shared one meanwhile); wiped when the exchange ends */
    struct pg_session sess;
    bool replayed; /* a request is replayed at most once */
    bool hold;     /* an error answer is being held for the plugin's verdict */
    char *ebuf;    /* the held answer body, at most PG_FWD_HOLD_MAX */
    size_t elen;
    char ctype[128]; /* the answer's Content-Type, for the verdict */
    char conn[256];  /* the answer's Connection header values, comma-joined */
    size_t conn_len;
    bool truncated;        /* the held answer was bigger than PG_FWD_HOLD_MAX */
    int64_t retry_after_s; /* the answer's Retry-After in seconds, -1 if none */
    char made[128];        /* the secret the plugin computed for this request (a signature) */
    size_t made_len;       /* 0: none; wiped when the exchange ends */
    int status;
    int64_t clen; /* upstream Content-Length, -1 unknown */
    bool chunked_up;
    bool head_done, paused, running;
    /* the last progress (answer byte, upload progress, resume after a pause), for the idle
     * timeout; the h1 client's own send progress is its hx.sent_ms */
    uint64_t last_ms;
    uint64_t sent_seen; /* curl: request body bytes sent at the last progress callback */
    /* the upload as the last idle check saw it: bytes written, bytes still in the socket's send
     * queue (unsent or unacknowledged), and when */
    uint64_t up_written, up_queued, up_check_ms;
    size_t body_len;
    struct event idle;
    char errbuf[CURL_ERROR_SIZE];
};

/* Does this exchange go through h1.c (http:// at an IP address, https:// at a name) rather than
 * curl? For fwdreq.c, which builds the request in the form its client takes. */
static inline bool pg_fwd_via_h1(const struct pg_fwd *f)
{
    return f->client == &pg_fwd_h1;
}

/* Make *buf (of *cap bytes) hold at least need bytes; 0, or -1 out of memory (buf unchanged). */
static inline int pg_fwd_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = need < 4096 ? 4096 : need + need / 2;
    char *nb = realloc(*buf, c);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = c;
    return 0;
}

#endif
