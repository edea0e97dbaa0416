/* perr.c -- recognising panels' error answers (SPEC section 5): shape detection, the Navixy code
 * table, the by-status kinds and the raw-body fallback. Pure; see perr.h for the rules. */
#include "perr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* Navixy's error table (navixy-backend-api.md, "Error codes"), one row per documented code.
 * status is the row's HTTP code, or 400 (the doc's default) where the row has none, except where
 * the gateway's own session or credentials were rejected: those are upstream_auth_failed 502, as
 * the caller cannot fix them. Kinds follow the row's meaning; where the doc gives a status the
 * kind agrees with it (402 is forbidden: a tariff or quota refusal). Sorted by code. */
static const struct navixy_row {
    int code;
    enum pg_err_code kind;
    int status;
} navixy_table[] = {
    { 1, PG_E_UPSTREAM_ERROR, 500 },         /* Database error */
    { 2, PG_E_FORBIDDEN, 403 },              /* Service Auth error */
    { 3, PG_E_UPSTREAM_AUTH_FAILED, 502 },   /* Wrong user hash */
    { 4, PG_E_UPSTREAM_AUTH_FAILED, 502 },   /* User not found or session ended */
    { 5, PG_E_BAD_REQUEST, 400 },            /* Wrong request format */
    { 6, PG_E_UPSTREAM_ERROR, 500 },         /* Unexpected error */
    { 7, PG_E_BAD_REQUEST, 400 },            /* Invalid parameters */
    { 8, PG_E_UPSTREAM_ERROR, 503 },         /* Queue service error, try again later */
    { 9, PG_E_PAYLOAD_TOO_LARGE, 412 },      /* Too large request */
    { 11, PG_E_FORBIDDEN, 403 },             /* Access denied */
    { 12, PG_E_NOT_FOUND, 400 },             /* Dealer not found */
    { 13, PG_E_FORBIDDEN, 403 },             /* Operation not permitted */
    { 14, PG_E_UPSTREAM_ERROR, 503 },        /* Database unavailable */
    { 15, PG_E_RATE_LIMITED, 429 },          /* Too many requests (rate limit exceeded) */
    { 101, PG_E_FORBIDDEN, 403 },            /* In demo mode this function is disabled */
    { 102, PG_E_UPSTREAM_AUTH_FAILED, 502 }, /* Wrong login or password */
    { 103, PG_E_UPSTREAM_AUTH_FAILED, 502 }, /* User not activated */
    { 111, PG_E_NOT_FOUND, 400 },            /* Wrong handler (no such resource) */
    { 112, PG_E_NOT_FOUND, 400 },            /* Wrong method (API method: no such call) */
    { 201, PG_E_NOT_FOUND, 400 },            /* Not found in database */
    { 202, PG_E_BAD_REQUEST, 400 },          /* Too many points in zone */
    { 203, PG_E_CONFLICT, 400 },             /* Delete entity associated with */
    { 204, PG_E_NOT_FOUND, 404 },            /* Entity not found */
    { 206, PG_E_CONFLICT, 400 },             /* Login already in use */
    { 207, PG_E_BAD_REQUEST, 400 },          /* Invalid captcha */
    { 208, PG_E_FORBIDDEN, 403 },            /* Device blocked */
    { 209, PG_E_UPSTREAM_ERROR, 400 },       /* Failed sending email */
    { 210, PG_E_UPSTREAM_ERROR, 400 },       /* Geocoding failed */
    { 211, PG_E_BAD_REQUEST, 400 },          /* Requested time span is too big */
    { 212, PG_E_BAD_REQUEST, 400 },          /* Requested limit is too big */
    { 213, PG_E_CONFLICT, 400 },             /* Cannot perform action: the device is offline */
    { 214, PG_E_UNPROCESSABLE, 400 },        /* Operation or parameters not supported by device */
    { 215, PG_E_UPSTREAM_ERROR, 400 },       /* External service error */
    { 217, PG_E_BAD_REQUEST, 400 },          /* List contains nonexistent entities */
    { 218, PG_E_BAD_REQUEST, 400 },          /* Malformed external service parameters */
    { 219, PG_E_FORBIDDEN, 403 },            /* Not allowed for clones of the device */
    { 220, PG_E_BAD_REQUEST, 400 },          /* Unknown device model */
    { 221, PG_E_FORBIDDEN, 403 },            /* Device limit exceeded */
    { 222, PG_E_NOT_FOUND, 400 },            /* Plugin not found */
    { 223, PG_E_CONFLICT, 400 },             /* Phone number already in use */
    { 224, PG_E_CONFLICT, 400 },             /* Device ID already in use */
    { 225, PG_E_FORBIDDEN, 403 },            /* Not allowed for this legal type */
    { 226, PG_E_BAD_REQUEST, 400 },          /* Wrong ICCID */
    { 227, PG_E_BAD_REQUEST, 400 },          /* Wrong activation code */
    { 228, PG_E_UNPROCESSABLE, 400 },        /* Not supported by sensor */
    { 229, PG_E_NOT_FOUND, 404 },            /* Requested data is not ready yet */
    { 230, PG_E_UNPROCESSABLE, 400 },        /* Not supported for this entity type */
    { 231, PG_E_CONFLICT, 409 },             /* Entity type mismatch */
    { 232, PG_E_CONFLICT, 400 },             /* Input already in use */
    { 233, PG_E_BAD_REQUEST, 400 },          /* No data file */
    { 234, PG_E_BAD_REQUEST, 400 },          /* Invalid data format */
    { 235, PG_E_UNPROCESSABLE, 400 },        /* Missing calibration data */
    { 236, PG_E_FORBIDDEN, 402 },            /* Feature unavailable due to tariff restrictions */
    { 237, PG_E_BAD_REQUEST, 400 },          /* Invalid tariff */
    { 238, PG_E_FORBIDDEN, 403 },            /* Changing tariff is not allowed */
    { 239, PG_E_NOT_FOUND, 404 },            /* New tariff doesn't exist */
    { 240, PG_E_FORBIDDEN, 403 },            /* Not allowed to change tariff too frequently */
    { 241, PG_E_UNPROCESSABLE, 400 },        /* Cannot change phone to bundled sim */
    { 242, PG_E_UNPROCESSABLE, 400 },        /* There were errors during content validation */
    { 243, PG_E_CONFLICT, 400 },             /* Device already connected */
    { 244, PG_E_CONFLICT, 400 },             /* Duplicate entity label */
    { 245, PG_E_BAD_REQUEST, 400 },          /* New password must be different */
    { 246, PG_E_BAD_REQUEST, 400 },          /* Invalid user ID */
    { 247, PG_E_CONFLICT, 409 },             /* Entity already exists */
    { 248, PG_E_BAD_REQUEST, 400 },          /* Wrong password (a parameter, not our login) */
    { 249, PG_E_FORBIDDEN, 403 },            /* Operation available for clones only */
    { 250, PG_E_FORBIDDEN, 403 },            /* Not allowed for deleted devices */
    { 251, PG_E_FORBIDDEN, 403 },            /* Insufficient funds */
    { 252, PG_E_CONFLICT, 400 },             /* Device already corrupted */
    { 253, PG_E_CONFLICT, 400 },             /* Device has clones */
    { 254, PG_E_UPSTREAM_ERROR, 500 },       /* Cannot save file */
    { 255, PG_E_CONFLICT, 400 },             /* Invalid task state */
    { 256, PG_E_CONFLICT, 400 },             /* Location already actual */
    { 257, PG_E_FORBIDDEN, 403 },            /* Registration forbidden */
    { 258, PG_E_NOT_FOUND, 404 },            /* Bundle not found */
    { 259, PG_E_BAD_REQUEST, 400 },          /* Payments count not comply with summary */
    { 260, PG_E_BAD_REQUEST, 400 },          /* Payments sum not comply with summary */
    { 261, PG_E_FORBIDDEN, 403 },            /* Entity has external links */
    { 262, PG_E_BAD_REQUEST, 400 },          /* Entries list is missing or has unknown entries */
    { 263, PG_E_BAD_REQUEST, 400 },          /* No change needed, old and new values the same */
    { 264, PG_E_FORBIDDEN, 403 },            /* Timeout not reached */
    { 265, PG_E_FORBIDDEN, 403 },            /* Already done */
    { 266, PG_E_FORBIDDEN, 403 },            /* Cannot act for the device in current status */
    { 267, PG_E_BAD_REQUEST, 400 },          /* Too many entities */
    { 268, PG_E_FORBIDDEN, 402 },            /* Over quota */
    { 269, PG_E_CONFLICT, 400 },             /* Invalid file state */
    { 270, PG_E_CONFLICT, 400 },             /* Too many sensors of same type already exist */
    { 271, PG_E_PAYLOAD_TOO_LARGE, 413 },    /* File over max size */
};

static int cmp_row(const void *key, const void *elem)
{
    json_int_t k = *(const json_int_t *)key;
    int c = ((const struct navixy_row *)elem)->code;
    return k < c ? -1 : k > c;
}

static const struct navixy_row *navixy_find(json_int_t code)
{
    return bsearch(&code, navixy_table, sizeof navixy_table / sizeof navixy_table[0],
                   sizeof navixy_table[0], cmp_row);
}

/* Kind and answer status from the panel's HTTP status alone (perr.h, "by status"). */
static void by_status(int status, struct pg_perr *out)
{
    out->status = status;
    switch (status) {
    case 400:
        out->code = PG_E_BAD_REQUEST;
        return;
    case 401: /* the panel rejected the gateway's credentials: not the caller's 401 */
        out->code = PG_E_UPSTREAM_AUTH_FAILED;
        out->status = 502;
        return;
    case 403:
        out->code = PG_E_FORBIDDEN;
        return;
    case 404:
    case 410:
        out->code = PG_E_NOT_FOUND;
        return;
    case 405:
        out->code = PG_E_METHOD_NOT_ALLOWED;
        return;
    case 409:
        out->code = PG_E_CONFLICT;
        return;
    case 413:
        out->code = PG_E_PAYLOAD_TOO_LARGE;
        return;
    case 422:
        out->code = PG_E_UNPROCESSABLE;
        return;
    case 429:
        out->code = PG_E_RATE_LIMITED;
        return;
    default:
        break;
    }
    if (status >= 400 && status <= 499) {
        out->code = PG_E_BAD_REQUEST;
    } else {
        out->code = PG_E_UPSTREAM_ERROR;
        if (status < 500 || status > 599)
            out->status = 502; /* a 1xx-3xx or nonsense status is no error status to pass on */
    }
}

/* Length of the longest prefix of (s, n) of at most cap bytes that does not end inside a UTF-8
 * sequence: only a lead byte in the last 3 bytes whose sequence would cross cap moves the cut, so
 * invalid bytes (raw bodies are not validated) never shorten the prefix by more than 3. */
static size_t utf8_cut(const char *s, size_t n, size_t cap)
{
    if (n <= cap)
        return n;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= cap; k++) {
        unsigned c = u[cap - k];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: the lead is further back */
        size_t len = c >= 0xf8 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return len > k ? cap - k : cap;
    }
    return cap;
}

static void set_message(struct pg_perr *out, const char *s, size_t n)
{
    size_t m = utf8_cut(s, n, PG_PERR_MESSAGE_MAX);
    if (m)
        memcpy(out->upstream_message, s, m);
    out->upstream_message[m] = '\0';
    out->upstream_message_len = m;
}

static void set_message_json(struct pg_perr *out, const json_t *str)
{
    set_message(out, json_string_value(str), json_string_length(str));
}

/* upstream_code from a JSON string: up to its first NUL, at most 63 bytes on a UTF-8 boundary. */
static void set_code_json(struct pg_perr *out, const json_t *str)
{
    const char *s = json_string_value(str);
    size_t n = strnlen(s, json_string_length(str));
    n = utf8_cut(s, n, sizeof out->upstream_code - 1);
    memcpy(out->upstream_code, s, n);
    out->upstream_code[n] = '\0';
}

/* out->details = compact JSON text of v, or NULL for a missing or null v. Dumped into our own
 * buffer (json_dumpb) so pg_perr_free's free() is right whatever jansson's allocator. */
static int set_details(struct pg_perr *out, const json_t *v)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    if (!v || json_is_null(v))
        return 0;
    size_t n = json_dumpb(v, NULL, 0, flags);
    if (n == 0)
        return -1; /* jansson could not allocate: a dump is never empty */
    char *s = malloc(n + 1);
    if (!s || json_dumpb(v, s, n, flags) != n) {
        free(s);
        return -1;
    }
    s[n] = '\0';
    out->details = s;
    return 0;
}

static bool opt_string(const json_t *v)
{
    return !v || json_is_null(v) || json_is_string(v);
}

/* A shape recogniser: 1 matched (out filled), 0 not this shape (out untouched), -1 out of memory.
 * root is a JSON object. */
typedef int shape_fn(int status, const json_t *root, struct pg_perr *out);

/* 1. Navixy {"success": false, "status": {"code": <integer>, "description": <string>}} */
static int try_navixy(int status, const json_t *root, struct pg_perr *out)
{
    const json_t *st = json_object_get(root, "status");
    if (!json_is_false(json_object_get(root, "success")) || !json_is_object(st))
        return 0;
    const json_t *code = json_object_get(st, "code");
    const json_t *desc = json_object_get(st, "description");
    if (!json_is_integer(code) || !opt_string(desc))
        return 0;
    json_int_t c = json_integer_value(code);
    const struct navixy_row *row = navixy_find(c);
    if (row) {
        out->code = row->kind;
        out->status = row->status;
    } else {
        by_status(status, out);
    }
    /* at most 20 characters: always fits */
    snprintf(out->upstream_code, sizeof out->upstream_code, "%" JSON_INTEGER_FORMAT, c);
    if (json_is_string(desc))
        set_message_json(out, desc);
    return 1;
}

/* 2. OpenPanel {"success": false, "error"|"message": <string>} */
static int try_openpanel_success(int status, const json_t *root, struct pg_perr *out)
{
    const json_t *err = json_object_get(root, "error");
    const json_t *msg = json_object_get(root, "message");
    const json_t *text = json_is_string(err) ? err : json_is_string(msg) ? msg : NULL;
    if (!json_is_false(json_object_get(root, "success")) || !text)
        return 0;
    by_status(status, out);
    set_message_json(out, text);
    return 1;
}

/* 3. Panelica {"error": <string>, "code": <string>, "details": <any>} */
static int try_panelica(int status, const json_t *root, struct pg_perr *out)
{
    const json_t *err = json_object_get(root, "error");
    const json_t *code = json_object_get(root, "code");
    if (!json_is_string(err) || !opt_string(code))
        return 0;
    by_status(status, out);
    if (json_is_string(code))
        set_code_json(out, code);
    set_message_json(out, err);
    return set_details(out, json_object_get(root, "details")) ? -1 : 1;
}

/* 4. OpenPanel's JWT layer {"msg": <string>}: 401 or 422 mean the gateway's token was refused. */
static int try_openpanel_msg(int status, const json_t *root, struct pg_perr *out)
{
    const json_t *msg = json_object_get(root, "msg");
    if (!json_is_string(msg))
        return 0;
    if (status == 401 || status == 422) {
        out->code = PG_E_UPSTREAM_AUTH_FAILED;
        out->status = 502;
    } else {
        by_status(status, out);
    }
    set_message_json(out, msg);
    return 1;
}

/* 5. Django REST framework {"detail": <string>} (simplejwt adds a string "code") */
static int try_drf_detail(int status, const json_t *root, struct pg_perr *out)
{
    const json_t *detail = json_object_get(root, "detail");
    const json_t *code = json_object_get(root, "code");
    if (!json_is_string(detail))
        return 0;
    by_status(status, out);
    if (json_is_string(code))
        set_code_json(out, code);
    set_message_json(out, detail);
    return 1;
}

/* 6. DRF field errors {"field": ["message", ...], ...}: every member a non-empty array of strings;
 * the message is the first field's first message (jansson keeps the body's member order). */
static int try_drf_fields(int status, const json_t *root, struct pg_perr *out)
{
    const json_t *first = NULL;
    /* jansson's iterators take a non-const object; they only read it */
    void *it = json_object_iter((json_t *)root);
    if (!it)
        return 0; /* {} */
    for (; it; it = json_object_iter_next((json_t *)root, it)) {
        const json_t *v = json_object_iter_value(it);
        size_t k = json_array_size(v); /* 0 for a non-array */
        if (k == 0)
            return 0;
        for (size_t i = 0; i < k; i++)
            if (!json_is_string(json_array_get(v, i)))
                return 0;
        if (!first)
            first = json_array_get(v, 0);
    }
    by_status(status, out);
    set_message_json(out, first);
    return set_details(out, root) ? -1 : 1;
}

/* The order of perr.h; the first full match wins. */
static shape_fn *const shapes[] = {
    try_navixy,            /* 1. {"success": false, "status": {...}} */
    try_openpanel_success, /* 2. {"success": false, "error"|"message"} */
    try_panelica,          /* 3. {"error", "code", "details"} */
    try_openpanel_msg,     /* 4. {"msg"} */
    try_drf_detail,        /* 5. {"detail"} */
    try_drf_fields,        /* 6. {"field": [...]} */
};

/* 7. Anything else: the status kept if it is an error status, the raw bytes as the message. */
static void raw(int status, const char *body, size_t n, struct pg_perr *out)
{
    out->code = PG_E_UPSTREAM_ERROR;
    out->status = status >= 400 && status <= 599 ? status : 502;
    set_message(out, body, n);
}

int pg_perr_recognise(int status, const char *body, size_t n, bool complete, struct pg_perr *out)
{
    memset(out, 0, sizeof *out);
    if (!body)
        n = 0;
    int r = 0; /* 1 matched, 0 no shape, -1 out of memory */
    if (complete && n > 0) {
        json_error_t jerr = { 0 };
        json_t *root = json_loadb(body, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
        /* jansson 2.14's parser returns NULL without an error text when it cannot allocate (it
         * never sets json_error_out_of_memory itself); every parse error has a text. Some of its
         * allocation failures do read as parse errors: those get the raw fallback. */
        if (!root && (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0]))
            return -1;
        for (size_t i = 0; json_is_object(root) && r == 0 && i < sizeof shapes / sizeof shapes[0];
             i++)
            r = shapes[i](status, root, out);
        json_decref(root);
    }
    if (r < 0) {
        pg_perr_free(out);
        return -1;
    }
    if (r == 0)
        raw(status, body, n, out);
    out->slow_down = status == 429 || out->code == PG_E_RATE_LIMITED;
    return 0;
}

void pg_perr_free(struct pg_perr *p)
{
    if (!p)
        return;
    free(p->details);
    memset(p, 0, sizeof *p);
}
