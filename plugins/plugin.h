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

/* Error detail filled by plugins (and the core): a short message, never a credential. */
struct pg_err {
    int code; /* enum pg_err_code from gateway/envelope.h */
    char msg[160];
};

/* An outgoing upstream request a plugin may edit: extra headers and the query string. */
#define PG_OUT_MAX_HEADERS 8

struct pg_out_req {
    const char *method; /* upper case */
    const char *path;   /* upstream path, without the query, borrowed */
    size_t path_len;
    const char *query; /* without '?', may be NULL; borrowed */
    size_t query_len;
    const char *body; /* exact bytes sent; borrowed */
    size_t body_len;
    /* headers the plugin adds; names/values point into the plugin's state or into `scratch` */
    struct {
        const char *name;
        const char *value;
    } hdr[PG_OUT_MAX_HEADERS];
    size_t nhdr;
    /* a query parameter the plugin appends (name=value), e.g. Navixy's hash; NULL if none */
    const char *add_query_name;
    const char *add_query_value;
    char scratch[512]; /* plugin-owned bytes for computed values (signatures) */
    size_t scratch_used;
};

/* An upstream answer handed to a plugin: status, a header lookup and a (bounded) body. */
struct pg_in_resp {
    int status;
    const char *body;
    size_t body_len;
    const char *content_type; /* NULL if absent */
};

enum pg_verdict { PG_VERDICT_OK, PG_VERDICT_RELOGIN, PG_VERDICT_FAIL };

struct pg_auth_ops {
    const char *type;               /* YAML auth.type */
    size_t state_size;              /* core allocates it, zeroed; config keys land in it */
    const struct pg_conf_key *keys; /* {0}-terminated */
    /* after config keys were stored: defaults, cross-key validation. 0 ok, -1 with err->msg */
    int (*init)(void *st, struct pg_err *err);
    bool (*needs_login)(const void *st, uint64_t now_ms);
    int (*build_login)(const void *st, struct pg_out_req *req);
    int (*parse_login)(void *st, const struct pg_in_resp *resp, struct pg_err *err);
    /* add credentials to one outgoing request. 0 ok, -1 error */
    int (*sign)(const void *st, struct pg_out_req *req, uint64_t now_s);
    enum pg_verdict (*classify)(const void *st, const struct pg_in_resp *resp, struct pg_err *err);
    /* is this normalised upstream path reserved (login/logout)? may be NULL */
    bool (*reserved)(const void *st, const char *method, const char *path, size_t path_len);
    void (*deinit)(void *st); /* frees what init or conf stored; not the state itself */
};

/* Helpers plugins may call; implemented in the core (gateway/conf.c). */
void pg_secret_free(struct pg_secret *s);
void pg_kv_list_free(struct pg_kv_list *l);

extern const struct pg_auth_ops pg_auth_static;

/* The registry (plugins/registry.c): the ops table for a YAML auth.type, NULL if unknown. */
const struct pg_auth_ops *pg_plugin_find(const char *type);

#endif
