/* fwdreq.h -- building the upstream request of one exchange (fwdreq.c): URL, header lines, the
 * plugin's query parameter, credential stripping. For fwd.c only; every call works on the
 * struct pg_fwd it is given and calls nothing back. */
#ifndef PG_FWDREQ_H
#define PG_FWDREQ_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "fwdstate.h"

/* The caller's query without any `param` parameter, into f->qbuf; f->query then points there
 * (a caller-supplied panel credential never reaches the panel). 0, or -1 out of memory. */
int pg_fwdreq_strip_param(struct pg_fwd *f, const char *param);

/* Does the body carry `param` at its top level (a JSON object key or a form field)? A JSON
 * body the gateway cannot read counts as carrying it. */
bool pg_fwdreq_body_has_param(const struct pg_req *r, const char *body, size_t bn,
                              const char *param);

/* f->url = upstream url + f->rest [+ '?' f->query], with room left for the plugin's parameter;
 * *target is the path part (the request target the panel sees). 0, or -1 out of memory. */
int pg_fwdreq_url(struct pg_fwd *f, const char **target, size_t *target_len);

/* Append the plugin's query parameter (o->add_query_*) to f->url, in the room pg_fwdreq_url left.
 */
void pg_fwdreq_add_param(struct pg_fwd *f, const struct pg_out_req *o);

/* The request's header lines into f->hb: the caller's minus hop-by-hop and plugin-set ones,
 * X-Forwarded-*, X-Request-Id, the plugin's. For h1 the whole wire head (request line, Host,
 * Content-Length); for curl NUL-terminated lines linked in f->nodes. 0, or -1 (no memory, too
 * many lines, or a plugin value with CR/LF). */
int pg_fwdreq_headers(struct pg_fwd *f, const struct pg_out_req *o);

/* curl only: f->url as f->cu (scheme, host and port kept between requests). 0 or -1. */
int pg_fwdreq_curl_url(struct pg_fwd *f);

/* curl only: the method and body (borrowed until the transfer ends) on easy handle e. */
void pg_fwdreq_curl_method(CURL *e, struct pg_req *r, const char *body, size_t bn);

#endif
