/* fwdans.h -- the upstream answer of one exchange (fwdans.c): the callbacks both clients feed
 * (curl's header and write functions, h1.c's pg_h1_ops steps but done) and the redaction of a
 * held error answer. They touch the caller only through pg_resp_* and never end the exchange:
 * a refusal is their return value, and fwd.c's done path finishes. */
#ifndef PG_FWDANS_H
#define PG_FWDANS_H

#include <stddef.h>

#include "fwdstate.h"

/* curl's CURLOPT_HEADERFUNCTION and CURLOPT_WRITEFUNCTION, with the struct pg_fwd as data. The
 * write function returns CURL_WRITEFUNC_PAUSE (f->paused set) once PG_FWD_HIGH bytes wait for
 * the caller, and is re-entrant (curl_easy_pause may call it). */
size_t pg_fwdans_curl_header(char *p, size_t size, size_t n, void *arg);
size_t pg_fwdans_curl_body(char *p, size_t size, size_t n, void *arg);

/* h1.c's status, header, head_end and body steps (struct pg_h1_ops), arg the struct pg_fwd. */
int pg_fwdans_h1_status(void *arg, int status);
int pg_fwdans_h1_header(void *arg, const char *name, size_t nl, const char *value, size_t vn);
int pg_fwdans_h1_head_end(void *arg);
enum pg_h1_more pg_fwdans_h1_body(void *arg, const char *p, size_t n);

/* Replace the gateway's secrets (config, session, this request's signature) in the held error
 * answer f->ebuf before anything is copied from it. 0, or -1 out of memory. */
int pg_fwdans_redact_held(struct pg_fwd *f);

#endif
