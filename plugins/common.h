/* common.h -- helpers shared by the auth plugins (private to plugins/): error messages, config
 * checks, the JSON login body and reading JSON answers with jansson. No I/O. */
#ifndef PG_PLUG_COMMON_H
#define PG_PLUG_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "plugin.h"

/* err->code values: gateway/envelope.h's enum pg_err_code, which plugins do not include */
#define PG_PLUG_E_UPSTREAM_AUTH_FAILED 9

/* Copy msg into err->msg (cut to fit) and return -1, for `return pg_plug_fail(err, "...")`. */
int pg_plug_fail(struct pg_err *err, const char *msg);

/* Append the span (p, n) to out[*i] when n > 0 and *i < cap (for the `secrets` op). */
void pg_plug_span(struct pg_span *out, size_t cap, size_t *i, const char *p, size_t n);

/* Is (p, n) well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF)? A JSON
 * string may carry nothing else. */
bool pg_plug_utf8_ok(const char *p, size_t n);

/* Is every byte of (p, n) visible ASCII (0x21-0x7e), fit for a header value as is? True when
 * n is 0. */
bool pg_plug_visible_ascii(const char *p, size_t n);

/* Is p (NUL-terminated) a path in the form request paths are normalised to: '/' then segments
 * of unreserved characters, sub-delims, ':' or '@'; no empty (but a trailing one), "." or ".."
 * segment, no percent-escape or query. "/" is one. */
bool pg_plug_path_ok(const char *p);

/* Fill req as a POST of the JSON object {"<k1>":"<v1>","<k2>":"<v2>"} to path (borrowed). The
 * keys are written as they are; the values are escaped ('"', '\\', controls) and must be UTF-8
 * (pg_plug_utf8_ok). 0, or -1 with req->body wiped when the body does not fit. */
int pg_plug_login_json(struct pg_login_req *req, const char *path, const char *k1,
                       const struct pg_secret *v1, const char *k2, const struct pg_secret *v2);

/* The JSON object in (p, n), or NULL when p is NULL, (p, n) is larger than 64 KiB (answers
 * read here are small; this bounds what jansson allocates), is not one well-formed JSON object
 * (trailing bytes, duplicate keys, invalid UTF-8, "\u0000" included) or nests containers more
 * than 32 deep. The caller frees it with json_decref. */
json_t *pg_plug_json_object(const char *p, size_t n);

/* When v is a JSON string, copy it into dst[cap] NUL-terminated, cut at a UTF-8 character
 * boundary if too long, and return true; else leave dst alone and return false. */
bool pg_plug_json_text(char *dst, size_t cap, const json_t *v);

/* Like pg_plug_json_text, and a JSON integer is written in decimal: a panel's error code. */
bool pg_plug_json_code(char *dst, size_t cap, const json_t *v);

#endif
