/* perr.h -- recognising panels' error answers (SPEC section 5): a panel's non-2xx body -> the
 * envelope's kind, the HTTP status panelgate answers with, and the panel's own code, message and
 * structured details. Pure: no I/O, no globals; the caller writes the sentence and the envelope. */
#ifndef PG_PERR_H
#define PG_PERR_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"

#define PG_PERR_MESSAGE_MAX 512 /* bytes of the panel's message kept (SPEC: 512) */

struct pg_perr {
    enum pg_err_code code; /* the envelope's kind: one of the 14 SPEC codes, never an alias */
    int status;            /* the HTTP status panelgate answers with (400-599) */
    /* The panel's own code as text ("7", "INVALID_SIGNATURE"), "" if none; at most 63 bytes, cut
     * on a UTF-8 boundary and at a NUL. */
    char upstream_code[64];
    /* The panel's message, at most 512 bytes, cut on a UTF-8 boundary, NUL-terminated; it may
     * hold NULs, so use the length. */
    char upstream_message[PG_PERR_MESSAGE_MAX + 1];
    size_t upstream_message_len;
    char *details;  /* compact JSON text of the panel's structured details, NULL for null; owned */
    bool slow_down; /* the panel asked to be left alone for a while: HTTP 429, whatever its body
                     * (an unknown shape is upstream_error with 429 kept), or Navixy code 15 */
};

/* Recognise a panel's error answer: status is the panel's HTTP status, (body, n) the body bytes
 * (not NUL-terminated; may hold NULs; body may be NULL when n is 0), complete=false when the body
 * was cut at the buffer limit. out is overwritten, not freed: pg_perr_free a previous result
 * first. 0 ok, -1 out of memory (out is then zeroed, safe to pg_perr_free). Never crashes or hangs
 * on any input; time and memory are linear in n.
 *
 * The body is parsed strictly with jansson (JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, no trailing
 * data, depth limit 2048). Shapes are tried in this order; the first that matches in full (every
 * member it reads has the expected type) wins:
 *   1. Navixy       {"success": false, "status": {"code": <integer>, "description": <string>}}
 *                   (description may be absent or null: message "")
 *   2. OpenPanel    {"success": false, "error": <string>} or {"success": false, "message":
 * <string>}
 *                   ("error" wins when both are strings)
 *   3. Panelica     {"error": <string>, "code": <string>, "details": <any>} (code and details may
 *                   be absent or null)
 *   4. OpenPanel    {"msg": <string>} (flask-jwt-extended)
 *   5. DRF          {"detail": <string>} (a string "code" beside it is taken as upstream_code)
 *   6. DRF fields   {"<field>": [<string>, ...], ...}: every member a non-empty array of strings
 *   7. anything else: not JSON, complete=false, an empty body, a scalar or array, any other
 *                   object (including the shapes above with a wrong member type).
 * Other members are ignored in every shape.
 *
 * Kind and status:
 *   1.    one static table of Navixy's documented codes; the panel's HTTP status is not used for
 *         a known code. Unknown codes get the by-status rule below.
 *   4.    401 and 422 (token rejected) -> upstream_auth_failed 502; otherwise by status.
 *   2,3,5,6 by status: 400 bad_request, 401 upstream_auth_failed 502, 403 forbidden, 404 and 410
 *         not_found, 405 method_not_allowed, 409 conflict, 413 payload_too_large, 422
 *         unprocessable, 429 rate_limited, other 4xx bad_request, 5xx upstream_error; the panel's
 *         status is kept except for 401; a status outside 400-599 -> upstream_error 502.
 *   7.    upstream_error, the panel's status if 400-599 else 502; upstream_code ""; message = the
 *         body's first 512 bytes (cut on a UTF-8 boundary; the bytes are not validated); details
 *         NULL.
 * details: Panelica "details" (any JSON type) and the whole DRF field-error object, as compact
 * JSON (jansson JSON_COMPACT | JSON_ENCODE_ANY); NULL otherwise. */
int pg_perr_recognise(int status, const char *body, size_t n, bool complete, struct pg_perr *out);

/* Release p's details and zero p. Accepts a zeroed struct (and NULL). */
void pg_perr_free(struct pg_perr *p);

#endif
