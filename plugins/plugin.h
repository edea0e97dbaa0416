/* plugin.h -- the upstream auth adapter interface. Plugins include only this header (plus libc,
 * OpenSSL, jansson); they do no I/O: the core sends what they build and hands back answers. */
#ifndef PG_PLUGIN_H
#define PG_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A secret from config: NUL-terminated, wiped on free, never logged. */
struct pg_secret {
    char *p;
    size_t n;
};

/* Borrowed bytes (p, n), not NUL-terminated: a secret an adapter lists for redaction. */
struct pg_span {
    const char *p;
    size_t n;
};

/* One header of a map-typed config value (static `headers:`). */
struct pg_kv {
    char *name;
    struct pg_secret value;
};

struct pg_kv_list {
    struct pg_kv *v;
    size_t n;
};

/* Config key types a plugin (or the core) can declare; conf.c does parsing, typing, defaults of
 * zero and file:line:col errors once for all of them. Storage type at `offset` in brackets. */
enum pg_conf_type {
    PG_CONF_STRING,   /* char * (NUL-terminated, owned by the config) */
    PG_CONF_SECRET,   /* struct pg_secret; accepts ${ENV} and file:/path */
    PG_CONF_ENUM,     /* int: index into the '|'-separated `enum_vals` */
    PG_CONF_DURATION, /* uint64_t milliseconds: 250ms, 10s, 5min, 24h */
    PG_CONF_SIZE,     /* uint64_t bytes: 512, 64KiB, 10MiB */
    PG_CONF_BOOL,     /* bool */
    PG_CONF_UINT,     /* uint64_t */
    PG_CONF_HEADERS,  /* struct pg_kv_list: a map of header name -> secret value */
    PG_CONF_OBJECT,   /* nested mapping parsed with `sub` at the same base + offset */
};

#define PG_REQUIRED 0x1u

struct pg_conf_key {
    const char *name;
    enum pg_conf_type type;
    unsigned flags;
    size_t offset;
    const char *enum_vals;         /* PG_CONF_ENUM only */
    const struct pg_conf_key *sub; /* PG_CONF_OBJECT only; a {0}-terminated table */
};

/* Error detail filled by plugins (and the core): a short message, never a credential. The
 * upstream_* fields describe the panel's own error when it answered. */
struct pg_err {
    int code; /* enum pg_err_code from gateway/envelope.h */
    char msg[160];
    char upstream_code[64];     /* panel's error code as text ("102", "INVALID_SIGNATURE"), or "" */
    char upstream_message[256]; /* panel's error text, or "" */
    int upstream_status;        /* set by the core: the panel's HTTP status, 0 if none */
};

/* The credential a login produced. Owned by the core (one per upstream), filled by parse_login,
 * read by sign. Never logged. */
#define PG_TOKEN_MAX 4096

struct pg_session {
    char token[PG_TOKEN_MAX]; /* NUL-terminated: a Navixy hash, a JWT */
    size_t token_len;
    uint64_t refresh_at_ms; /* monotonic time after which to log in again first; 0 = never */
};

/* An outgoing upstream request a plugin may edit: extra headers and one query parameter. */
#define PG_OUT_MAX_HEADERS 8

struct pg_out_req {
    const char *method; /* upper case */
    const char *target; /* upstream request target as sent: url path + rest [+ '?' query] */
    size_t target_len;
    const char *body; /* exact bytes sent; borrowed */
    size_t body_len;
    const char *accept; /* the caller's Accept header, NULL if none */
    size_t accept_len;
    /* headers the plugin adds (a caller header of the same name is then dropped); names and
     * values point into the plugin's state, the session or `scratch` */
    struct {
        const char *name;
        const char *value;
    } hdr[PG_OUT_MAX_HEADERS];
    size_t nhdr;
    /* a query parameter the core appends (name=value, value percent-encoded), e.g. Navixy's hash */
    const char *add_query_name;
    const char *add_query_value;
    char scratch[512]; /* plugin-owned bytes for computed values (signatures, timestamps) */
    size_t scratch_used;
    /* a computed secret among the hdr values (Panelica's signature; NUL-terminated, at most 127
     * bytes), NULL if none: the core keeps a copy until the answer, so panel text that echoes it
     * is redacted like the config secrets */
    const char *made_secret;
};

/* A login request a plugin builds; the core sends it to the upstream url + path. */
struct pg_login_req {
    const char *method;       /* "POST" */
    const char *path;         /* e.g. "/user/auth", appended to the upstream url */
    const char *content_type; /* of body */
    char body[2048];          /* holds the password: the core wipes it after sending */
    size_t body_len;
};

/* An upstream answer handed to a plugin: status and a bounded, complete body. */
struct pg_in_resp {
    int status;
    const char *body;
    size_t body_len;
    const char *content_type; /* NULL if absent */
    size_t content_type_len;
};

enum pg_verdict {
    PG_VERDICT_OK,      /* not an auth problem: the answer goes to the caller */
    PG_VERDICT_RELOGIN, /* session expired: log in again (single flight) and replay once */
    PG_VERDICT_RESIGN,  /* signature/timestamp refused: sign afresh and replay once */
    PG_VERDICT_FAIL,    /* the panel refuses the gateway's credentials: upstream_auth_failed */
};

struct pg_auth_ops {
    const char *type;               /* YAML auth.type */
    size_t state_size;              /* core allocates it, zeroed; config keys land in it */
    const struct pg_conf_key *keys; /* {0}-terminated */
    /* after config keys were stored: defaults, cross-key validation. 0 ok, -1 with err->msg */
    int (*init)(void *st, struct pg_err *err);
    /* frees what init or conf stored, also for a partly filled state; not the state itself */
    void (*deinit)(void *st);

    /* Login-based adapters set these three; token-less adapters leave them NULL. */
    int (*build_login)(const void *st, struct pg_login_req *req);
    /* 0: s filled (token, refresh_at_ms from now_ms); -1: err filled (code, upstream_*).
     * The token's format is the plugin's own (it may hold a ready header value). now_s is wall
     * clock seconds, for expiry claims such as a JWT's exp. */
    int (*parse_login)(const void *st, const struct pg_in_resp *resp, struct pg_session *s,
                       uint64_t now_ms, uint64_t now_s, struct pg_err *err);

    /* Add credentials to one outgoing request; s is NULL for token-less adapters. 0 ok, -1 */
    int (*sign)(const void *st, const struct pg_session *s, struct pg_out_req *req, uint64_t now_s);
    /* Is this non-2xx answer an auth problem? May fill err->upstream_*. NULL: always OK. */
    enum pg_verdict (*classify)(const void *st, const struct pg_in_resp *resp, struct pg_err *err);
    /* Is this normalised path (after /{upstream}) reserved: login, logout? NULL: none are. */
    bool (*reserved)(const void *st, const char *method, const char *path, size_t path_len);
    /* Rewrite one answer header for the caller (Navirec Link). Return 1 and fill out/outlen when
     * rewritten, 0 to pass it as is, -1 to drop it. upstream_url is the configured url,
     * public_base the gateway's public_url + "/" + upstream name. May be NULL. */
    int (*rewrite_header)(const void *st, const char *name, size_t name_len, const char *value,
                          size_t value_len, const char *upstream_url, const char *public_base,
                          char *out, size_t cap, size_t *outlen);
    /* The query/body parameter that carries this panel's credential when a caller sends it
     * (Navixy: "hash"): removed from the query, refused (400) in a JSON or form body. May be
     * NULL. */
    const char *cred_param;
    /* The secrets in force, for redacting panel text the core copies into an error (SPEC 1):
     * the config secrets that are credentials (passwords, tokens, keys, header values; not user
     * names) and, when s is not NULL, the bare credential inside the session (the hash, the JWT
     * without "Bearer "). Fills out[0..cap) with spans borrowed from st and s; returns how many.
     * May be NULL: the adapter holds no secret. */
    size_t (*secrets)(const void *st, const struct pg_session *s, struct pg_span *out, size_t cap);
};

/* Helpers plugins may call; implemented in the core (gateway/conf.c). */
void pg_secret_free(struct pg_secret *s);
void pg_kv_list_free(struct pg_kv_list *l);

/* Does the URI (uri, n) point under upstream_url (NUL-terminated, the configured url; trailing
 * '/' ignored)? An absolute URI must match its scheme and authority (case-insensitively) and
 * its path as a prefix ending at a segment boundary ('/', '?', '#' or the end); an
 * absolute-path reference ("/x", which a client resolves against the gateway's own root) must
 * match the path. Returns the part of uri after the upstream url (what goes after the
 * gateway's public base), or NULL. Implemented in gateway/rewrite.c; Link and Location
 * rewriting share it. */
const char *pg_uri_under(const char *upstream_url, const char *uri, size_t n);

extern const struct pg_auth_ops pg_auth_static;
extern const struct pg_auth_ops pg_auth_navixy_session;
extern const struct pg_auth_ops pg_auth_openpanel_jwt;
extern const struct pg_auth_ops pg_auth_panelica_hmac;
extern const struct pg_auth_ops pg_auth_navirec_token;

/* The registry (plugins/registry.c): the ops table for a YAML auth.type, NULL if unknown. */
const struct pg_auth_ops *pg_plugin_find(const char *type);

#endif
