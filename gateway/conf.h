/* conf.h -- the configuration snapshot (SPEC section 7): types, loader, refcounting.
 * A loaded pg_conf is immutable; requests hold a reference while they run. */
#ifndef PG_CONF_H
#define PG_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "../plugins/plugin.h"

enum pg_rl_mode { PG_RL_REJECT = 0, PG_RL_QUEUE = 1 };

/* Event-loop threads one process runs at most (workers: N). */
#define PG_WORKERS_MAX 256

struct pg_rate_limit {
    bool set;                /* false: no bucket */
    uint64_t rate_n;         /* tokens added per rate_period_ms */
    uint64_t rate_period_ms; /* 1000 (s), 60000 (min), 3600000 (hour) */
    uint64_t burst;          /* bucket size; default max(1, one second's worth) */
    enum pg_rl_mode mode;
    uint64_t max_wait_ms; /* queue mode; default 0 = reject at once when empty */
};

struct pg_route_conf {
    char *path; /* matched against the part after /{upstream} */
    size_t path_len;
    struct pg_rate_limit rl;
};

/* HTTP methods as bits, for allow-list narrowing. */
enum {
    PG_M_GET = 1u << 0,
    PG_M_HEAD = 1u << 1,
    PG_M_POST = 1u << 2,
    PG_M_PUT = 1u << 3,
    PG_M_PATCH = 1u << 4,
    PG_M_DELETE = 1u << 5,
    PG_M_OPTIONS = 1u << 6,
    PG_M_ALL = 0x7fu,
};

/* "GET" -> PG_M_GET; 0 for an unknown method. */
unsigned pg_method_bit(const char *m, size_t n);

struct pg_allow {
    int upstream;     /* index into pg_conf.upstreams, -1 = "*" */
    unsigned methods; /* PG_M_* mask; PG_M_ALL when not narrowed */
};

struct pg_consumer {
    char *name;
    uint8_t key_sha256[32];
    bool admin;
    struct pg_allow *allow;
    size_t nallow;
    struct pg_rate_limit rl;
};

struct pg_upstream {
    char *name;
    size_t name_len;
    char *url; /* no trailing '/' */
    size_t url_len;
    /* http://IP[:port] urls: the address the gateway's own client connects to, and the
     * authority sent as Host (offsets into url); h1_addrlen 0: libcurl serves this upstream.
     * Set by pg_fwd_prepare when the snapshot is activated, not by the loader. */
    struct sockaddr_storage h1_addr;
    socklen_t h1_addrlen;
    size_t authority_off, authority_len;
    uint16_t h1_port; /* https by name: the port, the name being h1_name (resolved on the loop) */
    struct ssl_ctx_st *h1_tls;      /* https on the own client: its TLS context; NULL: plain */
    char *h1_name;                  /* https: the host name sent as SNI and checked */
    uint64_t timeout_ms;            /* connect + idle timeout; default 10s */
    bool tls_verify;                /* default true */
    char *tls_ca_file;              /* NULL: system store */
    const struct pg_auth_ops *auth; /* NULL: no auth block (plain pass-through) */
    void *auth_state;               /* auth->state_size bytes, keys stored in it, owned */
    struct pg_rate_limit rl;
    struct pg_route_conf *routes;
    size_t nroutes;
    /* runtime state of this snapshot's upstream (sessions, logins), created and owned by
     * auth.c; the snapshot frees it through rt_free */
    void *rt;
    void (*rt_free)(void *rt);
};

enum pg_store_type { PG_STORE_LOCAL = 0, PG_STORE_REDIS = 1 };

/* access_log format: the text line, or one JSON object per line (SPEC 7; alog.h). */
enum pg_alog_format { PG_ALOG_TEXT = 0, PG_ALOG_JSON = 1 };

struct pg_conf {
    int refs;
    char *file; /* path it was loaded from */

    char *listen_address;     /* default 127.0.0.1 */
    uint16_t listen_port;     /* default 8080 */
    char *tls_cert, *tls_key; /* listen.tls; NULL: plain HTTP */
    char *public_url;         /* default http://{address}:{port} */
    unsigned workers;         /* 0 = auto (cores); default 1; at most PG_WORKERS_MAX */

    uint64_t max_header_bytes;  /* default 16384 */
    uint64_t max_body_bytes;    /* default 10 MiB */
    uint64_t client_timeout_ms; /* default 30 s */
    uint64_t max_connections;   /* default 10000 */

    char *access_log;      /* "stdout", a path, or NULL for off; default stdout */
    int access_log_format; /* enum pg_alog_format (an enum key writes an int); default text */
    char **resolvers;      /* resolver: "IP[:port]" DNS servers; none: /etc/resolv.conf */
    size_t nresolvers;
    bool metrics_public;
    uint64_t drain_timeout_ms; /* default 10 s */

    enum pg_store_type store;
    char *redis_url;           /* as configured (may hold the password): never logged */
    bool redis_on_error_allow; /* on_error: allow (default) | deny */
    /* the url's parts (SPEC 4.1): redis://[[user]:password@]host[:port][/db] */
    char *redis_host;
    uint16_t redis_port;  /* default 6379 */
    char *redis_password; /* NULL: no AUTH */
    unsigned redis_db;
    char *redis_prefix;        /* key namespace; default "panelgate" */
    uint64_t redis_timeout_ms; /* a slower answer counts as a failure; default 50 ms */
    bool has_session_key;
    uint8_t session_key[32]; /* AES-256-GCM key for sessions stored in redis */

    struct pg_consumer *consumers;
    size_t nconsumers;
    struct pg_upstream *upstreams;
    size_t nupstreams;
};

/* Load and validate FILE. Returns a snapshot with refs == 1, or NULL with a message of the form
 * "FILE:LINE:COL: what is wrong" in errbuf. Plugins are looked up in the registry (auth.h). */
struct pg_conf *pg_conf_load(const char *file, char *errbuf, size_t errcap);

/* Same, from a string already in memory (unit tests); `name` stands in for the file name. */
struct pg_conf *pg_conf_load_string(const char *name, const char *yaml, size_t len, char *errbuf,
                                    size_t errcap);

void pg_conf_ref(struct pg_conf *c);
void pg_conf_unref(struct pg_conf *c); /* frees at zero; accepts NULL */

/* Index of the upstream with this name, -1 if none. */
int pg_conf_upstream(const struct pg_conf *c, const char *name, size_t n);

/* "N/s", "N/min" or "N/hour", N from 1 to 10^9 (shared with the command line and tests): 0 ok,
 * -1 bad input. pg_parse_duration_ms and pg_parse_size are the walker's (cwalk.h). */
int pg_parse_rate(const char *s, uint64_t *n, uint64_t *period_ms);

#endif
