/* cwalk.h -- the typed YAML key walker under the config loader: one YAML document walked with
 * {0}-terminated pg_conf_key tables; scalars, ${ENV} and file: secrets, durations, sizes, and
 * errors as FILE:LINE:COL: path: what. Knows no panelgate section; conf.c brings the schema. */
#ifndef PG_CWALK_H
#define PG_CWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "../plugins/plugin.h"

/* Flag for DURATION, SIZE and UINT keys: zero is refused. Core tables only (plugins never). */
#define PG_CWALK_POSITIVE 0x100u

/* Key types from here on are the caller's own, parsed by the setters it puts in pg_cwalk.ext
 * (ext[type - PG_CWALK_EXT]); the public enum pg_conf_type stays below, with room to grow. */
#define PG_CWALK_EXT 32

struct pg_cwalk;

/* Parse value node v of key k into base (the struct the key table describes). 0 ok, -1 with
 * the message written through pg_cwalk_fail. */
typedef int pg_cwalk_set_fn(struct pg_cwalk *cx, const struct pg_conf_key *k, yaml_node_t *v,
                            void *base);

struct pg_cwalk {
    const char *file; /* for messages; borrowed */
    char *err;        /* the message buffer, errcap bytes; borrowed */
    size_t errcap;
    pg_cwalk_set_fn *const *ext; /* the caller's setters for types PG_CWALK_EXT + i, i < next */
    size_t next;
    yaml_document_t *doc; /* &own while a document is open, else NULL */
    yaml_document_t own;
    char path[256]; /* where we are, e.g. "upstreams[1].auth", for messages */
    size_t plen;
};

/* Parse yaml (len bytes, borrowed for the call) into cx's document: exactly one document, no
 * anchors or aliases. Returns its root, or NULL with the message in cx->err; either way call
 * pg_cwalk_close once done. Set file, err, errcap, ext and next first, the rest zero. */
yaml_node_t *pg_cwalk_open(struct pg_cwalk *cx, const char *yaml, size_t len);

/* Wipe every scalar (they may hold secrets) and free the document. Accepts a closed cx. */
void pg_cwalk_close(struct pg_cwalk *cx);

/* Parse mapping m into base with the {0}-terminated table keys: every key known, none twice,
 * required ones present. `skip` names one key handled by the caller (auth `type`). Bit i of
 * *seen (may be NULL) is set when keys[i] was given. */
int pg_cwalk_keys(struct pg_cwalk *cx, yaml_node_t *m, const struct pg_conf_key *keys, void *base,
                  const char *skip, uint64_t *seen);

/* Write "FILE:LINE:COL: path: message" for node n into cx->err; always returns -1. */
__attribute__((format(printf, 3, 4))) int pg_cwalk_fail(struct pg_cwalk *cx, const yaml_node_t *n,
                                                        const char *fmt, ...);

/* After element i of a list of mappings was parsed: its own checks (a name not used by an
 * earlier element...), with item the element's node for messages. 0, or -1 with the error. */
typedef int pg_cwalk_elem_fn(struct pg_cwalk *cx, yaml_node_t *item, size_t i, void *arg);

/* Parse list v's n mappings with keys into the elements of sz bytes at arr (allocated and
 * prepared by the caller: it owns them whatever happens), each under its "[i]" in the path,
 * then check (may be NULL) each one. 0, or -1 with the error set. */
int pg_cwalk_maps(struct pg_cwalk *cx, yaml_node_t *v, const struct pg_conf_key *keys, void *arr,
                  size_t sz, pg_cwalk_elem_fn *check, void *arg);

/* Append ".name" (or "name" at the top) or "[i]" to the path; they return the length that
 * pg_cwalk_path_pop restores. */
size_t pg_cwalk_path_key(struct pg_cwalk *cx, const char *name);
size_t pg_cwalk_path_index(struct pg_cwalk *cx, size_t i);
void pg_cwalk_path_pop(struct pg_cwalk *cx, size_t old);

/* Node shapes: 0 if n is a mapping (a list), else -1 with the message. */
int pg_cwalk_want_mapping(struct pg_cwalk *cx, const yaml_node_t *n);
int pg_cwalk_want_list(struct pg_cwalk *cx, const yaml_node_t *n);
size_t pg_cwalk_list_len(const yaml_node_t *n);
yaml_node_t *pg_cwalk_list_item(const struct pg_cwalk *cx, const yaml_node_t *n, size_t i);
/* The value of key `name` in mapping m, NULL if absent (or m is not a mapping). */
yaml_node_t *pg_cwalk_map_get(const struct pg_cwalk *cx, const yaml_node_t *m, const char *name);

/* A non-null scalar's raw bytes (no NUL among them); borrowed from the document. */
int pg_cwalk_scalar(struct pg_cwalk *cx, const yaml_node_t *v, const char **s, size_t *n);

/* A scalar's text, with a whole-value "${NAME}" read from the environment. Borrowed. */
int pg_cwalk_text(struct pg_cwalk *cx, const yaml_node_t *v, const char **out);

/* *slot = a copy of s (the old value freed); -1 "out of memory" against v. */
int pg_cwalk_set_str(struct pg_cwalk *cx, const yaml_node_t *v, char **slot, const char *s);

/* Leading decimal digits of s as a number; *end after them. -1 if none or overflow. */
int pg_cwalk_uint(const char *s, uint64_t *out, const char **end);

/* A whole regular file (at most `max` bytes) as a NUL-terminated heap string the caller frees
 * (wipe it first if it may hold a secret); NULL with *why set. Anything else (a FIFO, /dev/zero,
 * a terminal) is refused before a byte is read, and the read is non-blocking. */
char *pg_cwalk_read_file(const char *path, size_t max, size_t *len, const char **why);

/* Where key k's value lives in base. */
static inline void *pg_cwalk_slot(void *base, const struct pg_conf_key *k)
{
    return (char *)base + k->offset;
}

/* Value parsers shared with the command line and tests: 0 ok, -1 bad input.
 * Durations: a whole number and ms, s, min or h (a bare number is refused), in milliseconds.
 * Sizes: a whole number of bytes, KiB, MiB or GiB. */
int pg_parse_duration_ms(const char *s, uint64_t *out);
int pg_parse_size(const char *s, uint64_t *out);

#endif
