/* test_perr.c -- recognising panels' error answers (SPEC section 5): every error example in the
 * panels' docs, Navixy's whole error table, and malformed bodies (wrong types, invalid UTF-8,
 * truncation, NULs, 10,000-deep nesting, 1 MiB strings, out of memory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gateway/perr.h"

/* A string literal as (pointer, length): keeps embedded NULs. */
#define B(s) s, sizeof(s) - 1
#define NO_DETAILS NULL

struct pcase {
    const char *name;
    int status; /* the panel's */
    const char *body;
    size_t body_len;
    bool complete;
    enum pg_err_code kind;
    int want_status;
    const char *want_code;
    const char *want_msg;
    size_t want_msg_len;
    const char *want_details; /* exact compact JSON, or NULL */
};

/* Expect the raw fallback for body at the panel's status s: upstream_error answered with want_s,
 * the whole (short) body as the message. */
#define RAW(name, s, body, want_s)                                                                 \
    {                                                                                              \
        name, s, B(body), true, PG_E_UPSTREAM_ERROR, want_s, "", B(body), NO_DETAILS               \
    }

/* navixy-backend-api.md, "Or error if hash is wrong" and "Error handling", verbatim. */
#define NVX4_DOC                                                                                   \
    "{\n  \"success\": false,\n  \"status\": {\n    \"code\": 4,\n    \"description\": \"User "    \
    "not found or session ended\"\n  }\n}"
#define NVX1_DOC                                                                                   \
    "{\n  \"success\": false,\n  \"status\": {\n    \"code\": 1,\n    \"description\": "           \
    "\"Database error\"\n  }\n}"
#define NVX(code, desc)                                                                            \
    "{\"success\":false,\"status\":{\"code\":" #code ",\"description\":\"" desc "\"}}"
/* panelica-api.md, "Response Format", verbatim. */
#define PANELICA_DOC                                                                               \
    "{\n  \"error\": \"Error message\",\n  \"code\": \"ERROR_CODE\",\n  \"details\": "             \
    "\"Additional context\"\n}"
/* navirec-api.md, "Rate limits", verbatim. */
#define NAVIREC_429_DOC                                                                            \
    "{\n    \"detail\": \"Request was throttled. Expected available in 3 seconds.\"\n}"
#define DRF_FIELDS                                                                                 \
    "{\"name\": [\"This field is required.\"], \"plate_number\": [\"Ensure this field has no "     \
    "more than 10 characters.\"]}"
#define DRF_FIELDS_C                                                                               \
    "{\"name\":[\"This field is required.\"],\"plate_number\":[\"Ensure this field has no more "   \
    "than 10 characters.\"]}"
#define SIMPLEJWT                                                                                  \
    "{\"detail\": \"Given token not valid for any token type\", \"code\": \"token_not_valid\", "   \
    "\"messages\": [{\"token_class\": \"AccessToken\", \"message\": \"Token is invalid or "        \
    "expired\"}]}"
#define LONG_CODE "ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz_0123456789_MORE_THAN_63"

static const struct pcase cases[] = {
    /* Navixy: the docs' examples, then the kinds and statuses of the table */
    { "navixy doc: code 4 session ended", 400, B(NVX4_DOC), true, PG_E_UPSTREAM_AUTH_FAILED, 502,
      "4", B("User not found or session ended"), NO_DETAILS },
    { "navixy doc: code 1 database error", 500, B(NVX1_DOC), true, PG_E_UPSTREAM_ERROR, 500, "1",
      B("Database error"), NO_DETAILS },
    { "navixy: 7 invalid parameters", 400, B(NVX(7, "Invalid parameters")), true, PG_E_BAD_REQUEST,
      400, "7", B("Invalid parameters"), NO_DETAILS },
    { "navixy: 3 wrong user hash", 400, B(NVX(3, "Wrong user hash")), true,
      PG_E_UPSTREAM_AUTH_FAILED, 502, "3", B("Wrong user hash"), NO_DETAILS },
    { "navixy: 102 wrong login or password", 400, B(NVX(102, "Wrong login or password")), true,
      PG_E_UPSTREAM_AUTH_FAILED, 502, "102", B("Wrong login or password"), NO_DETAILS },
    { "navixy: 11 access denied", 403, B(NVX(11, "Access denied")), true, PG_E_FORBIDDEN, 403, "11",
      B("Access denied"), NO_DETAILS },
    { "navixy: 13 operation not permitted", 403, B(NVX(13, "Operation not permitted")), true,
      PG_E_FORBIDDEN, 403, "13", B("Operation not permitted"), NO_DETAILS },
    { "navixy: 15 rate limit", 429, B(NVX(15, "Too many requests (rate limit exceeded)")), true,
      PG_E_RATE_LIMITED, 429, "15", B("Too many requests (rate limit exceeded)"), NO_DETAILS },
    { "navixy: 201 not found in database", 400, B(NVX(201, "Not found in database")), true,
      PG_E_NOT_FOUND, 400, "201", B("Not found in database"), NO_DETAILS },
    { "navixy: 204 entity not found", 404, B(NVX(204, "Entity not found")), true, PG_E_NOT_FOUND,
      404, "204", B("Entity not found"), NO_DETAILS },
    { "navixy: 247 entity already exists", 409, B(NVX(247, "Entity already exists")), true,
      PG_E_CONFLICT, 409, "247", B("Entity already exists"), NO_DETAILS },
    { "navixy: 244 duplicate label", 400, B(NVX(244, "Duplicate entity label.")), true,
      PG_E_CONFLICT, 400, "244", B("Duplicate entity label."), NO_DETAILS },
    { "navixy: 236 tariff (402)", 402,
      B(NVX(236, "Feature unavailable due to tariff restrictions")), true, PG_E_FORBIDDEN, 402,
      "236", B("Feature unavailable due to tariff restrictions"), NO_DETAILS },
    { "navixy: 9 too large request (412)", 412, B(NVX(9, "Too large request")), true,
      PG_E_PAYLOAD_TOO_LARGE, 412, "9", B("Too large request"), NO_DETAILS },
    { "navixy: 271 file over max size", 413, B(NVX(271, "File over max size")), true,
      PG_E_PAYLOAD_TOO_LARGE, 413, "271", B("File over max size"), NO_DETAILS },
    { "navixy: 242 content validation", 400,
      B(NVX(242, "There were errors during content validation")), true, PG_E_UNPROCESSABLE, 400,
      "242", B("There were errors during content validation"), NO_DETAILS },
    { "navixy: 8 queue service error", 503, B(NVX(8, "Queue service error, try again later")), true,
      PG_E_UPSTREAM_ERROR, 503, "8", B("Queue service error, try again later"), NO_DETAILS },
    { "navixy: 14 database unavailable", 503, B(NVX(14, "Database unavailable")), true,
      PG_E_UPSTREAM_ERROR, 503, "14", B("Database unavailable"), NO_DETAILS },
    { "navixy: a known code ignores the panel's status", 500, B(NVX(7, "Invalid parameters")), true,
      PG_E_BAD_REQUEST, 400, "7", B("Invalid parameters"), NO_DETAILS },
    { "navixy: unknown code at 400", 400, B(NVX(999, "New error")), true, PG_E_BAD_REQUEST, 400,
      "999", B("New error"), NO_DETAILS },
    { "navixy: unknown code at 404", 404, B(NVX(999, "New error")), true, PG_E_NOT_FOUND, 404,
      "999", B("New error"), NO_DETAILS },
    { "navixy: unknown code at 503", 503, B(NVX(999, "New error")), true, PG_E_UPSTREAM_ERROR, 503,
      "999", B("New error"), NO_DETAILS },
    { "navixy: unknown code at 200", 200, B(NVX(999, "New error")), true, PG_E_UPSTREAM_ERROR, 502,
      "999", B("New error"), NO_DETAILS },
    { "navixy: negative code", 400, B(NVX(-3, "x")), true, PG_E_BAD_REQUEST, 400, "-3", B("x"),
      NO_DETAILS },
    { "navixy: largest integer code", 400, B(NVX(9223372036854775807, "x")), true, PG_E_BAD_REQUEST,
      400, "9223372036854775807", B("x"), NO_DETAILS },
    { "navixy: description absent", 400, B("{\"success\":false,\"status\":{\"code\":4}}"), true,
      PG_E_UPSTREAM_AUTH_FAILED, 502, "4", B(""), NO_DETAILS },
    { "navixy: description null", 400,
      B("{\"success\":false,\"status\":{\"code\":7,\"description\":null}}"), true, PG_E_BAD_REQUEST,
      400, "7", B(""), NO_DETAILS },
    { "navixy: members reordered, extra members", 400,
      B("{\"status\":{\"description\":\"Invalid parameters\",\"extra\":[1],\"code\":7},"
        "\"list\":[],\"success\":false}"),
      true, PG_E_BAD_REQUEST, 400, "7", B("Invalid parameters"), NO_DETAILS },
    { "navixy: escaped NUL and non-ASCII in description", 400,
      B(NVX(7, "a\\u0000b \\u00e9t\\u00e9")), true, PG_E_BAD_REQUEST, 400, "7",
      B("a\0b \xc3\xa9t\xc3\xa9"), NO_DETAILS },
    RAW("navixy: description is a number", 400,
        "{\"success\":false,\"status\":{\"code\":7,\"description\":5}}", 400),
    RAW("navixy: code is a string", 400,
        "{\"success\":false,\"status\":{\"code\":\"7\",\"description\":\"Invalid parameters\"}}",
        400),
    RAW("navixy: code is a real", 400,
        "{\"success\":false,\"status\":{\"code\":7.0,\"description\":\"x\"}}", 400),
    RAW("navixy: code missing", 400, "{\"success\":false,\"status\":{\"description\":\"x\"}}", 400),
    RAW("navixy: success true", 400,
        "{\"success\":true,\"status\":{\"code\":7,\"description\":\"x\"}}", 400),
    RAW("navixy: success is a string", 400,
        "{\"success\":\"false\",\"status\":{\"code\":7,\"description\":\"x\"}}", 400),
    RAW("navixy: no success member", 400, "{\"status\":{\"code\":7,\"description\":\"x\"}}", 400),
    RAW("navixy: code too big for an integer", 400,
        "{\"success\":false,\"status\":{\"code\":99999999999999999999,\"description\":\"x\"}}",
        400),

    /* Panelica: kind by status, code, message and any JSON as details */
    { "panelica doc: documented format", 400, B(PANELICA_DOC), true, PG_E_BAD_REQUEST, 400,
      "ERROR_CODE", B("Error message"), "\"Additional context\"" },
    { "panelica: 401 signature", 401,
      B("{\"error\":\"Invalid signature\",\"code\":\"INVALID_SIGNATURE\",\"details\":null}"), true,
      PG_E_UPSTREAM_AUTH_FAILED, 502, "INVALID_SIGNATURE", B("Invalid signature"), NO_DETAILS },
    { "panelica: 403 object details", 403,
      B("{\"error\": \"Insufficient scope\", \"code\": \"INSUFFICIENT_SCOPE\", \"details\": "
        "{\"required\": \"domains:write\", \"granted\": [\"domains:read\"]}}"),
      true, PG_E_FORBIDDEN, 403, "INSUFFICIENT_SCOPE", B("Insufficient scope"),
      "{\"required\":\"domains:write\",\"granted\":[\"domains:read\"]}" },
    { "panelica: 404 no details", 404, B("{\"error\":\"Domain not found\",\"code\":\"NOT_FOUND\"}"),
      true, PG_E_NOT_FOUND, 404, "NOT_FOUND", B("Domain not found"), NO_DETAILS },
    { "panelica: 409 array details", 409,
      B("{\"error\":\"Exists\",\"code\":\"CONFLICT\",\"details\":[1, 2.5, true, null, {}]}"), true,
      PG_E_CONFLICT, 409, "CONFLICT", B("Exists"), "[1,2.5,true,null,{}]" },
    { "panelica: 422 nested details", 422,
      B("{\"error\":\"Invalid\",\"code\":\"VALIDATION_ERROR\",\"details\":{\"fields\":"
        "{\"domain\":\"invalid\"}}}"),
      true, PG_E_UNPROCESSABLE, 422, "VALIDATION_ERROR", B("Invalid"),
      "{\"fields\":{\"domain\":\"invalid\"}}" },
    { "panelica: 429 number details", 429,
      B("{\"error\":\"Rate limit exceeded\",\"code\":\"RATE_LIMITED\",\"details\":60}"), true,
      PG_E_RATE_LIMITED, 429, "RATE_LIMITED", B("Rate limit exceeded"), "60" },
    { "panelica: false details are not null", 400,
      B("{\"error\":\"e\",\"code\":\"C\",\"details\":false}"), true, PG_E_BAD_REQUEST, 400, "C",
      B("e"), "false" },
    { "panelica: string details escaped compactly", 400,
      B("{\"error\":\"e\",\"code\":\"C\",\"details\":\"d\\u00e9tails / \\n\\u0000\"}"), true,
      PG_E_BAD_REQUEST, 400, "C", B("e"), "\"d\xc3\xa9tails / \\n\\u0000\"" },
    { "panelica: 500", 500, B("{\"error\":\"Internal error\",\"code\":\"INTERNAL_ERROR\"}"), true,
      PG_E_UPSTREAM_ERROR, 500, "INTERNAL_ERROR", B("Internal error"), NO_DETAILS },
    { "panelica: 503", 503, B("{\"error\":\"Maintenance\",\"code\":\"MAINTENANCE\"}"), true,
      PG_E_UPSTREAM_ERROR, 503, "MAINTENANCE", B("Maintenance"), NO_DETAILS },
    { "panelica: 405", 405, B("{\"error\":\"Method not allowed\",\"code\":\"METHOD\"}"), true,
      PG_E_METHOD_NOT_ALLOWED, 405, "METHOD", B("Method not allowed"), NO_DETAILS },
    { "panelica: 410 is not_found", 410, B("{\"error\":\"Gone\",\"code\":\"GONE\"}"), true,
      PG_E_NOT_FOUND, 410, "GONE", B("Gone"), NO_DETAILS },
    { "panelica: 413", 413, B("{\"error\":\"Too big\",\"code\":\"TOO_BIG\"}"), true,
      PG_E_PAYLOAD_TOO_LARGE, 413, "TOO_BIG", B("Too big"), NO_DETAILS },
    { "panelica: other 4xx is bad_request, status kept", 418, B("{\"error\":\"Teapot\"}"), true,
      PG_E_BAD_REQUEST, 418, "", B("Teapot"), NO_DETAILS },
    { "panelica: 3xx is upstream_error 502", 302, B("{\"error\":\"Moved\",\"code\":\"MOVED\"}"),
      true, PG_E_UPSTREAM_ERROR, 502, "MOVED", B("Moved"), NO_DETAILS },
    { "panelica: status 600 is upstream_error 502", 600, B("{\"error\":\"x\"}"), true,
      PG_E_UPSTREAM_ERROR, 502, "", B("x"), NO_DETAILS },
    { "panelica: status 0 is upstream_error 502", 0, B("{\"error\":\"x\"}"), true,
      PG_E_UPSTREAM_ERROR, 502, "", B("x"), NO_DETAILS },
    { "panelica: code null", 400, B("{\"error\":\"e\",\"code\":null}"), true, PG_E_BAD_REQUEST, 400,
      "", B("e"), NO_DETAILS },
    { "panelica: code cut at 63 bytes", 400, B("{\"error\":\"e\",\"code\":\"" LONG_CODE "\"}"),
      true, PG_E_BAD_REQUEST, 400,
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz_012345678", B("e"), NO_DETAILS },
    { "panelica: code cut at a NUL", 400, B("{\"error\":\"e\",\"code\":\"AB\\u0000CD\"}"), true,
      PG_E_BAD_REQUEST, 400, "AB", B("e"), NO_DETAILS },
    RAW("panelica: code is a number", 400, "{\"error\":\"Invalid\",\"code\":7,\"details\":null}",
        400),
    RAW("panelica: error is an object", 400,
        "{\"error\":{\"code\":\"X\",\"message\":\"m\"},\"details\":[]}", 400),
    RAW("panelica: duplicate member", 400, "{\"error\":\"a\",\"code\":\"A\",\"error\":\"b\"}", 400),

    /* Navirec (Django REST framework) */
    { "navirec doc: 429 throttled", 429, B(NAVIREC_429_DOC), true, PG_E_RATE_LIMITED, 429, "",
      B("Request was throttled. Expected available in 3 seconds."), NO_DETAILS },
    { "navirec: 401 invalid token", 401, B("{\"detail\": \"Invalid token.\"}"), true,
      PG_E_UPSTREAM_AUTH_FAILED, 502, "", B("Invalid token."), NO_DETAILS },
    { "navirec: 403 permission", 403,
      B("{\"detail\":\"You do not have permission to perform this action.\"}"), true,
      PG_E_FORBIDDEN, 403, "", B("You do not have permission to perform this action."),
      NO_DETAILS },
    { "navirec: 404 not found", 404, B("{\"detail\":\"Not found.\"}"), true, PG_E_NOT_FOUND, 404,
      "", B("Not found."), NO_DETAILS },
    { "navirec: 405 method", 405, B("{\"detail\":\"Method \\\"DELETE\\\" not allowed.\"}"), true,
      PG_E_METHOD_NOT_ALLOWED, 405, "", B("Method \"DELETE\" not allowed."), NO_DETAILS },
    { "navirec: 402 request failed", 402, B("{\"detail\":\"Request failed.\"}"), true,
      PG_E_BAD_REQUEST, 402, "", B("Request failed."), NO_DETAILS },
    { "navirec: 500", 500, B("{\"detail\":\"A server error occurred.\"}"), true,
      PG_E_UPSTREAM_ERROR, 500, "", B("A server error occurred."), NO_DETAILS },
    { "navirec: simplejwt detail with code", 401, B(SIMPLEJWT), true, PG_E_UPSTREAM_AUTH_FAILED,
      502, "token_not_valid", B("Given token not valid for any token type"), NO_DETAILS },
    { "navirec: field errors", 400, B(DRF_FIELDS), true, PG_E_BAD_REQUEST, 400, "",
      B("This field is required."), DRF_FIELDS_C },
    { "navirec: non_field_errors", 400,
      B("{\"non_field_errors\": [\"The fields vehicle, start must make a unique set.\"]}"), true,
      PG_E_BAD_REQUEST, 400, "", B("The fields vehicle, start must make a unique set."),
      "{\"non_field_errors\":[\"The fields vehicle, start must make a unique set.\"]}" },
    { "navirec: several messages, first wins", 400,
      B("{\"password\":[\"This password is too short.\",\"This password is too common.\"]}"), true,
      PG_E_BAD_REQUEST, 400, "", B("This password is too short."),
      "{\"password\":[\"This password is too short.\",\"This password is too common.\"]}" },
    { "navirec: field order is the body's", 400, B("{\"zeta\":[\"z first\"],\"alpha\":[\"a\"]}"),
      true, PG_E_BAD_REQUEST, 400, "", B("z first"), "{\"zeta\":[\"z first\"],\"alpha\":[\"a\"]}" },
    { "navirec: a field named detail", 400, B("{\"detail\":[\"This field is required.\"]}"), true,
      PG_E_BAD_REQUEST, 400, "", B("This field is required."),
      "{\"detail\":[\"This field is required.\"]}" },
    { "navirec: a field named msg", 400, B("{\"msg\":[\"Too long.\"]}"), true, PG_E_BAD_REQUEST,
      400, "", B("Too long."), "{\"msg\":[\"Too long.\"]}" },
    { "navirec: field errors at 422 by status", 422, B("{\"name\":[\"Bad.\"]}"), true,
      PG_E_UNPROCESSABLE, 422, "", B("Bad."), "{\"name\":[\"Bad.\"]}" },
    RAW("navirec: a number among messages", 400, "{\"name\":[\"ok\", 5]}", 400),
    RAW("navirec: an empty message list", 400, "{\"name\":[]}", 400),
    RAW("navirec: a non-array member", 400, "{\"name\":[\"x\"],\"count\":3}", 400),
    RAW("navirec: nested serializer errors", 400, "{\"address\":{\"city\":[\"Required.\"]}}", 400),
    RAW("navirec: detail is a number", 400, "{\"detail\":5}", 400),
    RAW("navirec: detail null", 404, "{\"detail\":null}", 404),
    RAW("empty object", 400, "{}", 400),

    /* OpenPanel */
    { "openpanel: msg 401 expired", 401, B("{\"msg\":\"Token has expired\"}"), true,
      PG_E_UPSTREAM_AUTH_FAILED, 502, "", B("Token has expired"), NO_DETAILS },
    { "openpanel: msg 422 malformed token", 422, B("{\n  \"msg\": \"Not enough segments\"\n}\n"),
      true, PG_E_UPSTREAM_AUTH_FAILED, 502, "", B("Not enough segments"), NO_DETAILS },
    { "openpanel: msg 401 missing header", 401, B("{\"msg\":\"Missing Authorization Header\"}"),
      true, PG_E_UPSTREAM_AUTH_FAILED, 502, "", B("Missing Authorization Header"), NO_DETAILS },
    { "openpanel: msg 400 by status", 400, B("{\"msg\":\"Bad request\"}"), true, PG_E_BAD_REQUEST,
      400, "", B("Bad request"), NO_DETAILS },
    { "openpanel: msg 500 by status", 500, B("{\"msg\":\"Oops\"}"), true, PG_E_UPSTREAM_ERROR, 500,
      "", B("Oops"), NO_DETAILS },
    { "openpanel: success false, error", 404,
      B("{\"success\": false, \"error\": \"User not found\"}"), true, PG_E_NOT_FOUND, 404, "",
      B("User not found"), NO_DETAILS },
    { "openpanel: success false, message", 400,
      B("{\"success\": false, \"message\": \"Plan does not exist\"}"), true, PG_E_BAD_REQUEST, 400,
      "", B("Plan does not exist"), NO_DETAILS },
    { "openpanel: error wins over message", 409,
      B("{\"success\":false,\"message\":\"m\",\"error\":\"e\"}"), true, PG_E_CONFLICT, 409, "",
      B("e"), NO_DETAILS },
    { "openpanel: message when error is null", 400,
      B("{\"success\":false,\"error\":null,\"message\":\"m\"}"), true, PG_E_BAD_REQUEST, 400, "",
      B("m"), NO_DETAILS },
    { "openpanel: success false at 401", 401, B("{\"success\":false,\"error\":\"Unauthorized\"}"),
      true, PG_E_UPSTREAM_AUTH_FAILED, 502, "", B("Unauthorized"), NO_DETAILS },
    RAW("openpanel: success false alone", 400, "{\"success\":false}", 400),
    RAW("openpanel: msg is a number", 401, "{\"msg\":5}", 401),

    /* Malformed bodies: all fall back to the raw bytes */
    RAW("invalid UTF-8 in a string", 400, "{\"error\":\"\xff\xfe\",\"code\":\"X\"}", 400),
    RAW("overlong UTF-8 in a string", 400, "{\"detail\":\"\xc0\xaf\"}", 400),
    RAW("lone surrogate escape", 400, "{\"detail\":\"\\ud800\"}", 400),
    RAW("truncated JSON", 400, "{\"success\": false, \"status\": {\"code\": 7, \"descr", 400),
    { "complete=false, valid Navixy body", 400, B(NVX(7, "Invalid parameters")), false,
      PG_E_UPSTREAM_ERROR, 400, "", B(NVX(7, "Invalid parameters")), NO_DETAILS },
    { "complete=false, empty", 500, B(""), false, PG_E_UPSTREAM_ERROR, 500, "", B(""), NO_DETAILS },
    RAW("empty body", 502, "", 502),
    RAW("empty body, status 0", 0, "", 502),
    RAW("whitespace only", 400, " \r\n\t", 400),
    RAW("raw NUL inside a string", 400, "{\"error\":\"a\0b\",\"code\":\"X\"}", 400),
    RAW("NUL after the object", 400, "{\"detail\":\"x\"}\0", 400),
    RAW("trailing garbage", 400, "{\"detail\":\"x\"} x", 400),
    RAW("two objects", 400, "{\"detail\":\"a\"}{\"detail\":\"b\"}", 400),
    RAW("top-level array", 400, "[{\"error\":\"x\",\"code\":\"X\"}]", 400),
    RAW("null", 500, "null", 500),
    RAW("a string", 400, "\"Bad request\"", 400),
    RAW("a number", 400, "42", 400),
    RAW("true", 400, "true", 400),
    RAW("byte order mark", 400, "\xef\xbb\xbf{\"detail\":\"x\"}", 400),
    RAW("HTML error page", 502,
        "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", 502),
    RAW("plain text 503", 503, "Service Unavailable", 503),
    RAW("status 599 kept", 599, "x", 599),
    RAW("status 600 is not an error status", 600, "x", 502),
    RAW("status 399", 399, "x", 502),
    RAW("negative status", -1, "x", 502),
    RAW("200 with garbage", 200, "x", 502),
};

static void check(const char *name, const struct pg_perr *p, enum pg_err_code kind, int status,
                  const char *code, const char *msg, size_t msg_len, const char *details)
{
    if (p->code != kind)
        fail_msg("%s: kind %s (%d), want %s (%d)", name, pg_err_name(p->code), (int)p->code,
                 pg_err_name(kind), (int)kind);
    if (p->status != status)
        fail_msg("%s: status %d, want %d", name, p->status, status);
    if (strcmp(p->upstream_code, code) != 0)
        fail_msg("%s: upstream_code \"%s\", want \"%s\"", name, p->upstream_code, code);
    if (p->upstream_message_len != msg_len || memcmp(p->upstream_message, msg, msg_len) != 0)
        fail_msg("%s: upstream_message (%zu bytes) \"%.*s\", want (%zu bytes) \"%.*s\"", name,
                 p->upstream_message_len, (int)p->upstream_message_len, p->upstream_message,
                 msg_len, (int)msg_len, msg);
    if (p->upstream_message[p->upstream_message_len] != '\0')
        fail_msg("%s: upstream_message is not NUL-terminated", name);
    if (!details != !p->details || (details && strcmp(details, p->details) != 0))
        fail_msg("%s: details %s, want %s", name, p->details ? p->details : "NULL",
                 details ? details : "NULL");
}

static void run_case(void **state)
{
    const struct pcase *c = *state;
    struct pg_perr p;
    assert_int_equal(pg_perr_recognise(c->status, c->body, c->body_len, c->complete, &p), 0);
    check(c->name, &p, c->kind, c->want_status, c->want_code, c->want_msg, c->want_msg_len,
          c->want_details);
    pg_perr_free(&p);
}

/* Navixy's error table, copied from navixy-backend-api.md ("Error codes"; 0: no HTTP code given)
 * with the kind panelgate answers. */
static const struct {
    int code;
    int doc_http;
    enum pg_err_code kind;
    const char *description;
} navixy_doc[] = {
    { 1, 500, PG_E_UPSTREAM_ERROR, "Database error" },
    { 2, 403, PG_E_FORBIDDEN, "Service Auth error" },
    { 3, 0, PG_E_UPSTREAM_AUTH_FAILED, "Wrong user hash" },
    { 4, 0, PG_E_UPSTREAM_AUTH_FAILED, "User not found or session ended" },
    { 5, 0, PG_E_BAD_REQUEST, "Wrong request format" },
    { 6, 500, PG_E_UPSTREAM_ERROR, "Unexpected error" },
    { 7, 0, PG_E_BAD_REQUEST, "Invalid parameters" },
    { 8, 503, PG_E_UPSTREAM_ERROR, "Queue service error, try again later" },
    { 9, 412, PG_E_PAYLOAD_TOO_LARGE, "Too large request" },
    { 11, 403, PG_E_FORBIDDEN, "Access denied" },
    { 12, 0, PG_E_NOT_FOUND, "Dealer not found" },
    { 13, 403, PG_E_FORBIDDEN, "Operation not permitted" },
    { 14, 503, PG_E_UPSTREAM_ERROR, "Database unavailable" },
    { 15, 429, PG_E_RATE_LIMITED, "Too many requests (rate limit exceeded)" },
    { 101, 403, PG_E_FORBIDDEN, "In demo mode this function is disabled" },
    { 102, 0, PG_E_UPSTREAM_AUTH_FAILED, "Wrong login or password" },
    { 103, 0, PG_E_UPSTREAM_AUTH_FAILED, "User not activated" },
    { 111, 0, PG_E_NOT_FOUND, "Wrong handler" },
    { 112, 0, PG_E_NOT_FOUND, "Wrong method" },
    { 201, 0, PG_E_NOT_FOUND, "Not found in database" },
    { 202, 0, PG_E_BAD_REQUEST, "Too many points in zone" },
    { 203, 0, PG_E_CONFLICT, "Delete entity associated with" },
    { 204, 404, PG_E_NOT_FOUND, "Entity not found" },
    { 206, 0, PG_E_CONFLICT, "Login already in use" },
    { 207, 0, PG_E_BAD_REQUEST, "Invalid captcha" },
    { 208, 403, PG_E_FORBIDDEN, "Device blocked" },
    { 209, 0, PG_E_UPSTREAM_ERROR, "Failed sending email" },
    { 210, 0, PG_E_UPSTREAM_ERROR, "Geocoding failed" },
    { 211, 0, PG_E_BAD_REQUEST, "Requested time span is too big" },
    { 212, 0, PG_E_BAD_REQUEST, "Requested limit is too big" },
    { 213, 0, PG_E_CONFLICT, "Cannot perform action: the device is offline" },
    { 214, 0, PG_E_UNPROCESSABLE,
      "Requested operation or parameters are not supported by the device" },
    { 215, 0, PG_E_UPSTREAM_ERROR, "External service error" },
    { 217, 0, PG_E_BAD_REQUEST, "List contains nonexistent entities" },
    { 218, 0, PG_E_BAD_REQUEST, "Malformed external service parameters" },
    { 219, 403, PG_E_FORBIDDEN, "Not allowed for clones of the device" },
    { 220, 0, PG_E_BAD_REQUEST, "Unknown device model" },
    { 221, 403, PG_E_FORBIDDEN, "Device limit exceeded" },
    { 222, 0, PG_E_NOT_FOUND, "Plugin not found" },
    { 223, 0, PG_E_CONFLICT, "Phone number already in use" },
    { 224, 0, PG_E_CONFLICT, "Device ID already in use" },
    { 225, 403, PG_E_FORBIDDEN, "Not allowed for this legal type" },
    { 226, 0, PG_E_BAD_REQUEST, "Wrong ICCID" },
    { 227, 0, PG_E_BAD_REQUEST, "Wrong activation code" },
    { 228, 0, PG_E_UNPROCESSABLE, "Not supported by sensor" },
    { 229, 404, PG_E_NOT_FOUND, "Requested data is not ready yet" },
    { 230, 0, PG_E_UNPROCESSABLE, "Not supported for this entity type" },
    { 231, 409, PG_E_CONFLICT, "Entity type mismatch" },
    { 232, 0, PG_E_CONFLICT, "Input already in use" },
    { 233, 0, PG_E_BAD_REQUEST, "No data file" },
    { 234, 0, PG_E_BAD_REQUEST, "Invalid data format" },
    { 235, 0, PG_E_UNPROCESSABLE, "Missing calibration data" },
    { 236, 402, PG_E_FORBIDDEN, "Feature unavailable due to tariff restrictions" },
    { 237, 0, PG_E_BAD_REQUEST, "Invalid tariff" },
    { 238, 403, PG_E_FORBIDDEN, "Changing tariff is not allowed" },
    { 239, 404, PG_E_NOT_FOUND, "New tariff doesn't exist" },
    { 240, 403, PG_E_FORBIDDEN, "Not allowed to change tariff too frequently" },
    { 241, 0, PG_E_UNPROCESSABLE, "Cannot change phone to bundled sim. Contact tech support." },
    { 242, 0, PG_E_UNPROCESSABLE, "There were errors during content validation" },
    { 243, 0, PG_E_CONFLICT, "Device already connected." },
    { 244, 0, PG_E_CONFLICT, "Duplicate entity label." },
    { 245, 0, PG_E_BAD_REQUEST, "New password must be different" },
    { 246, 0, PG_E_BAD_REQUEST, "Invalid user ID" },
    { 247, 409, PG_E_CONFLICT, "Entity already exists" },
    { 248, 0, PG_E_BAD_REQUEST, "Wrong password" },
    { 249, 403, PG_E_FORBIDDEN, "Operation available for clones only" },
    { 250, 403, PG_E_FORBIDDEN, "Not allowed for deleted devices" },
    { 251, 403, PG_E_FORBIDDEN, "Insufficient funds" },
    { 252, 0, PG_E_CONFLICT, "Device already corrupted" },
    { 253, 0, PG_E_CONFLICT, "Device has clones" },
    { 254, 500, PG_E_UPSTREAM_ERROR, "Cannot save file" },
    { 255, 0, PG_E_CONFLICT, "Invalid task state" },
    { 256, 0, PG_E_CONFLICT, "Location already actual" },
    { 257, 403, PG_E_FORBIDDEN, "Registration forbidden" },
    { 258, 404, PG_E_NOT_FOUND, "Bundle not found" },
    { 259, 0, PG_E_BAD_REQUEST, "Payments count not comply with summary" },
    { 260, 0, PG_E_BAD_REQUEST, "Payments sum not comply with summary" },
    { 261, 403, PG_E_FORBIDDEN, "Entity has external links" },
    { 262, 0, PG_E_BAD_REQUEST,
      "Entries list is missing some entries or contains nonexistent entries" },
    { 263, 0, PG_E_BAD_REQUEST, "No change needed, old and new values are the same" },
    { 264, 403, PG_E_FORBIDDEN, "Timeout not reached" },
    { 265, 403, PG_E_FORBIDDEN, "Already done" },
    { 266, 403, PG_E_FORBIDDEN, "Cannot perform action for the device in current status" },
    { 267, 0, PG_E_BAD_REQUEST, "Too many entities" },
    { 268, 402, PG_E_FORBIDDEN, "Over quota" },
    { 269, 0, PG_E_CONFLICT, "Invalid file state" },
    { 270, 0, PG_E_CONFLICT, "Too many sensors of same type already exist" },
    { 271, 413, PG_E_PAYLOAD_TOO_LARGE, "File over max size" },
};

/* The kind a documented HTTP status implies (SPEC section 5); -1 where the doc gives none. */
static int kind_of_doc_status(int http)
{
    switch (http) {
    case 0:
        return -1;
    case 402: /* payment required: a tariff or quota refusal */
    case 403:
        return PG_E_FORBIDDEN;
    case 404:
        return PG_E_NOT_FOUND;
    case 409:
        return PG_E_CONFLICT;
    case 412: /* "Too large request" */
    case 413:
        return PG_E_PAYLOAD_TOO_LARGE;
    case 429:
        return PG_E_RATE_LIMITED;
    default:
        return http >= 500 ? PG_E_UPSTREAM_ERROR : PG_E_BAD_REQUEST;
    }
}

/* Every documented code answers with the doc's HTTP code (400 where it gives none), whatever the
 * panel's own status; only the session and login rows are upstream_auth_failed 502. */
/* Which answers ask the gateway to slow down (cool-down): any 429, known shape or not, and
 * Navixy's code 15 whatever the HTTP status; nothing else. */
static void slow_down(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *body;
        bool want;
    } slow[] = {
        { 429, "slow down", true },
        { 429, "{\"detail\": \"Request was throttled.\"}", true },
        { 200, "{\"success\": false, \"status\": {\"code\": 15, \"description\": \"x\"}}", true },
        { 503, "busy", false },
        { 400, "{\"detail\": \"bad\"}", false },
    };
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        struct pg_perr p;
        assert_int_equal(
            pg_perr_recognise(slow[i].status, slow[i].body, strlen(slow[i].body), true, &p), 0);
        if (p.slow_down != slow[i].want)
            fail_msg("case %zu: slow_down %d", i, p.slow_down);
        pg_perr_free(&p);
    }
}

static void navixy_table_matches_doc(void **state)
{
    (void)state;
    static const int panel_statuses[] = { 400, 418, 500, 200 };
    size_t n = sizeof navixy_doc / sizeof navixy_doc[0];
    assert_int_equal(n, 88); /* rows in the doc's table */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < sizeof panel_statuses / sizeof panel_statuses[0]; j++) {
            char body[256], name[64], code[16];
            int bn = snprintf(body, sizeof body,
                              "{\"success\":false,\"status\":{\"code\":%d,\"description\":\"%s\"}}",
                              navixy_doc[i].code, navixy_doc[i].description);
            assert_true(bn > 0 && (size_t)bn < sizeof body);
            snprintf(name, sizeof name, "navixy code %d at %d", navixy_doc[i].code,
                     panel_statuses[j]);
            snprintf(code, sizeof code, "%d", navixy_doc[i].code);
            int want = navixy_doc[i].doc_http ? navixy_doc[i].doc_http : 400;
            if (navixy_doc[i].kind == PG_E_UPSTREAM_AUTH_FAILED) {
                assert_int_equal(navixy_doc[i].doc_http, 0);
                want = 502;
            }
            int implied = kind_of_doc_status(navixy_doc[i].doc_http);
            if (implied >= 0 && (int)navixy_doc[i].kind != implied)
                fail_msg("%s: kind %s disagrees with the doc's HTTP %d", name,
                         pg_err_name(navixy_doc[i].kind), navixy_doc[i].doc_http);
            struct pg_perr p;
            assert_int_equal(pg_perr_recognise(panel_statuses[j], body, (size_t)bn, true, &p), 0);
            check(name, &p, navixy_doc[i].kind, want, code, navixy_doc[i].description,
                  strlen(navixy_doc[i].description), NULL);
            pg_perr_free(&p);
        }
    }
}

/* Codes between and around the documented ones take the by-status rule. */
static void navixy_unknown_codes(void **state)
{
    (void)state;
    static const int unknown[] = { 0, 10, 16, 100, 104, 110, 113, 200, 205, 216, 272, 300, 1000 };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        for (size_t k = 0; k < sizeof navixy_doc / sizeof navixy_doc[0]; k++)
            assert_int_not_equal(unknown[i], navixy_doc[k].code);
        char body[128], code[16];
        int bn = snprintf(body, sizeof body,
                          "{\"success\":false,\"status\":{\"code\":%d,\"description\":\"d\"}}",
                          unknown[i]);
        snprintf(code, sizeof code, "%d", unknown[i]);
        struct pg_perr p;
        assert_int_equal(pg_perr_recognise(418, body, (size_t)bn, true, &p), 0);
        check(body, &p, PG_E_BAD_REQUEST, 418, code, "d", 1, NULL);
        assert_int_equal(pg_perr_recognise(401, body, (size_t)bn, true, &p), 0);
        check(body, &p, PG_E_UPSTREAM_AUTH_FAILED, 502, code, "d", 1, NULL);
        assert_int_equal(pg_perr_recognise(504, body, (size_t)bn, true, &p), 0);
        check(body, &p, PG_E_UPSTREAM_ERROR, 504, code, "d", 1, NULL);
    }
}

/* A heap buffer of n copies of the string unit (n * strlen(unit) bytes, NUL-terminated). */
static char *repeat(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * u, unit, u);
    s[u * n] = '\0';
    return s;
}

/* prefix + middle + suffix in one heap string */
static char *concat3(const char *a, const char *b, const char *c)
{
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    char *s = malloc(na + nb + nc + 1);
    assert_non_null(s);
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    memcpy(s + na + nb, c, nc + 1);
    return s;
}

static void expect_raw(const char *name, int status, const char *body, size_t n, int want_status)
{
    struct pg_perr p;
    assert_int_equal(pg_perr_recognise(status, body, n, true, &p), 0);
    check(name, &p, PG_E_UPSTREAM_ERROR, want_status, "", body, n > 512 ? 512 : n, NULL);
    pg_perr_free(&p);
}

/* 10,000-deep nesting is beyond jansson's depth limit (2048): the raw fallback, no stack
 * overflow. Within the limit, deep details come back whole. */
static void deep_nesting(void **state)
{
    (void)state;
    const size_t depth = 10000;
    char *open = repeat("[", depth), *close = repeat("]", depth);
    char *arrays = concat3(open, "", close);
    expect_raw("10,000 arrays", 400, arrays, strlen(arrays), 400);

    char *oopen = repeat("{\"a\":", depth), *oclose = repeat("}", depth);
    char *objects = concat3(oopen, "1", oclose);
    expect_raw("10,000 objects", 500, objects, strlen(objects), 500);

    char *inner = concat3(open, "", close);
    char *panelica = concat3("{\"error\":\"e\",\"code\":\"C\",\"details\":", inner, "}");
    expect_raw("Panelica details 10,000 deep", 400, panelica, strlen(panelica), 400);
    char *navixy = concat3(
        "{\"success\":false,\"status\":{\"code\":7,\"description\":\"x\"},\"x\":", objects, "}");
    expect_raw("Navixy with a 10,000-deep member", 400, navixy, strlen(navixy), 400);
    char *unclosed = repeat("[", depth);
    expect_raw("10,000 unclosed", 400, unclosed, strlen(unclosed), 400);

    char *o1000 = repeat("[", 1000), *c1000 = repeat("]", 1000);
    char *d1000 = concat3(o1000, "", c1000);
    char *ok = concat3("{\"error\":\"e\",\"code\":\"C\",\"details\":", d1000, "}");
    struct pg_perr p;
    assert_int_equal(pg_perr_recognise(400, ok, strlen(ok), true, &p), 0);
    check("Panelica details 1,000 deep", &p, PG_E_BAD_REQUEST, 400, "C", "e", 1, d1000);
    pg_perr_free(&p);

    free(open);
    free(close);
    free(arrays);
    free(oopen);
    free(oclose);
    free(objects);
    free(inner);
    free(panelica);
    free(navixy);
    free(unclosed);
    free(o1000);
    free(c1000);
    free(d1000);
    free(ok);
}

/* 1 MiB strings: messages are cut to 512 bytes on a UTF-8 boundary, details are kept whole. */
static void huge_strings(void **state)
{
    (void)state;
    const size_t mib = 1024 * 1024;
    struct pg_perr p;

    char *a = repeat("a", mib);
    char *body = concat3("{\"error\":\"", a, "\",\"code\":\"BIG\"}");
    assert_int_equal(pg_perr_recognise(400, body, strlen(body), true, &p), 0);
    check("Panelica 1 MiB error", &p, PG_E_BAD_REQUEST, 400, "BIG", a, 512, NULL);
    pg_perr_free(&p);
    free(body);

    char *quoted = concat3("\"", a, "\"");
    body = concat3("{\"error\":\"e\",\"details\":", quoted, "}");
    assert_int_equal(pg_perr_recognise(400, body, strlen(body), true, &p), 0);
    check("Panelica 1 MiB details", &p, PG_E_BAD_REQUEST, 400, "", "e", 1, quoted);
    pg_perr_free(&p);
    free(body);
    free(quoted);

    char *euro = repeat("\xe2\x82\xac", mib / 3); /* U+20AC, 3 bytes: 512 is mid-character */
    body = concat3("{\"success\":false,\"status\":{\"code\":7,\"description\":\"", euro, "\"}}");
    assert_int_equal(pg_perr_recognise(400, body, strlen(body), true, &p), 0);
    check("Navixy 1 MiB description", &p, PG_E_BAD_REQUEST, 400, "7", euro, 510, NULL);
    pg_perr_free(&p);
    free(body);

    body = concat3("{\"detail\":\"", a, "\"}");
    body[mib / 2] = '\xff'; /* invalid UTF-8 deep inside: the raw fallback */
    expect_raw("1 MiB with invalid UTF-8", 429, body, strlen(body), 429);
    expect_raw("1 MiB cut off", 429, body, mib / 2, 429);
    free(body);
    expect_raw("1 MiB of text", 502, a, mib, 502);
    free(a);
    free(euro);
}

/* Where 512 falls inside a UTF-8 sequence the cut moves back to its start; invalid bytes in a raw
 * body never shorten the cut by more than 3 bytes. */
static void utf8_cuts(void **state)
{
    (void)state;
    static const struct {
        const char *ch; /* the character placed at offset `at` */
        size_t at;
        size_t want;
    } cuts[] = {
        { "\xc3\xa9", 511, 511 },         /* 2-byte at 511: would end at 513 */
        { "\xc3\xa9", 510, 512 },         /* ends at 512 exactly */
        { "\xe2\x82\xac", 510, 510 },     /* 3-byte straddling */
        { "\xe2\x82\xac", 509, 512 },     /* ends at 512 */
        { "\xf0\x9f\x98\x80", 509, 509 }, /* 4-byte straddling */
        { "\xf0\x9f\x98\x80", 511, 511 }, { "\xf0\x9f\x98\x80", 508, 512 }, { "a", 511, 512 },
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char *pre = repeat("a", cuts[i].at), *post = repeat("b", 100);
        char *text = concat3(pre, cuts[i].ch, post);
        char name[64];
        snprintf(name, sizeof name, "cut %zu at %zu", i, cuts[i].at);
        struct pg_perr p;
        /* raw body */
        assert_int_equal(pg_perr_recognise(503, text, strlen(text), true, &p), 0);
        check(name, &p, PG_E_UPSTREAM_ERROR, 503, "", text, cuts[i].want, NULL);
        /* JSON string */
        char *body = concat3("{\"detail\":\"", text, "\"}");
        assert_int_equal(pg_perr_recognise(404, body, strlen(body), true, &p), 0);
        check(name, &p, PG_E_NOT_FOUND, 404, "", text, cuts[i].want, NULL);
        free(body);
        free(text);
        free(pre);
        free(post);
    }

    struct pg_perr p;
    char *cont = repeat("\x80", 600), *ff = repeat("\xff", 600);
    assert_int_equal(pg_perr_recognise(500, cont, 600, true, &p), 0);
    check("600 continuation bytes", &p, PG_E_UPSTREAM_ERROR, 500, "", cont, 512, NULL);
    assert_int_equal(pg_perr_recognise(500, ff, 600, true, &p), 0);
    check("600 0xff bytes", &p, PG_E_UPSTREAM_ERROR, 500, "", ff, 512, NULL);
    free(cont);
    free(ff);

    /* upstream_code: 63 bytes at most, on a boundary */
    char *pre = repeat("A", 62);
    char *code = concat3("{\"error\":\"e\",\"code\":\"", pre, "\xc3\xa9\"}");
    assert_int_equal(pg_perr_recognise(400, code, strlen(code), true, &p), 0);
    check("code cut before a 2-byte char", &p, PG_E_BAD_REQUEST, 400, pre, "e", 1, NULL);
    free(code);
    free(pre);
}

/* pg_perr_free takes a zeroed struct and NULL, and leaves a zeroed struct; a result may be freed
 * and the struct used again. */
static void free_and_reuse(void **state)
{
    (void)state;
    struct pg_perr p;
    memset(&p, 0, sizeof p);
    pg_perr_free(&p);
    pg_perr_free(NULL);
    static const char body[] = "{\"error\":\"e\",\"code\":\"C\",\"details\":{\"a\":[1]}}";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pg_perr_recognise(409, body, sizeof body - 1, true, &p), 0);
        check("reuse", &p, PG_E_CONFLICT, 409, "C", "e", 1, "{\"a\":[1]}");
        pg_perr_free(&p);
        assert_null(p.details);
        assert_int_equal(p.upstream_message_len, 0);
        pg_perr_free(&p); /* twice is harmless */
    }
    /* a NULL body with a length is an empty body */
    assert_int_equal(pg_perr_recognise(404, NULL, 10, true, &p), 0);
    check("NULL body", &p, PG_E_UPSTREAM_ERROR, 404, "", "", 0, NULL);
    pg_perr_free(&p);
}

/* Out of memory inside jansson, at each allocation in turn: -1 with a zeroed result, or (where
 * jansson reports the failure as a parse error) the raw fallback; never a crash or a leak (ASan,
 * valgrind). */
static long alloc_budget = -1; /* allocations left before failing; -1: never fail */
static long allocs_failed;

static void *failing_malloc(size_t n)
{
    if (alloc_budget == 0) {
        allocs_failed++;
        return NULL;
    }
    if (alloc_budget > 0)
        alloc_budget--;
    return malloc(n);
}

static void out_of_memory(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *body;
        enum pg_err_code kind;
        const char *details;
    } bodies[] = {
        { 400, "{\"error\":\"e\",\"code\":\"C\",\"details\":{\"a\":[1,{\"b\":\"c\"}]}}",
          PG_E_BAD_REQUEST, "{\"a\":[1,{\"b\":\"c\"}]}" },
        { 400, "{\"name\":[\"x\",\"y\"],\"plate\":[\"z\"]}", PG_E_BAD_REQUEST,
          "{\"name\":[\"x\",\"y\"],\"plate\":[\"z\"]}" },
        { 400, "{\"success\":false,\"status\":{\"code\":7,\"description\":\"x\"}}",
          PG_E_BAD_REQUEST, NULL },
    };
    json_set_alloc_funcs(failing_malloc, free);
    for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++) {
        int minus_one = 0;
        for (long budget = 0;; budget++) {
            struct pg_perr p;
            alloc_budget = budget;
            allocs_failed = 0;
            int r = pg_perr_recognise(bodies[b].status, bodies[b].body, strlen(bodies[b].body),
                                      true, &p);
            alloc_budget = -1;
            if (r == -1) {
                minus_one++;
                assert_null(p.details);
                assert_int_equal(p.upstream_message_len, 0);
                assert_string_equal(p.upstream_code, "");
            } else {
                assert_int_equal(r, 0);
                assert_true(p.code == bodies[b].kind || p.code == PG_E_UPSTREAM_ERROR);
            }
            pg_perr_free(&p);
            if (allocs_failed == 0) { /* the budget sufficed: the full answer */
                assert_int_equal(r, 0);
                assert_int_equal(p.code, bodies[b].kind);
                break;
            }
            assert_true(budget < 10000);
        }
        assert_true(minus_one > 0); /* parse (and dump) failures are reported */
    }
    json_set_alloc_funcs(malloc, free);
}

int main(void)
{
    size_t n = sizeof cases / sizeof cases[0];
    struct CMUnitTest *t = calloc(n, sizeof *t);
    if (!t)
        return 1;
    for (size_t i = 0; i < n; i++) {
        t[i].name = cases[i].name;
        t[i].test_func = run_case;
        t[i].initial_state = (void *)&cases[i];
    }
    int failed = _cmocka_run_group_tests("perr_bodies", t, n, NULL, NULL);
    free(t);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slow_down),
        cmocka_unit_test(navixy_table_matches_doc),
        cmocka_unit_test(navixy_unknown_codes),
        cmocka_unit_test(deep_nesting),
        cmocka_unit_test(huge_strings),
        cmocka_unit_test(utf8_cuts),
        cmocka_unit_test(free_and_reuse),
        cmocka_unit_test(out_of_memory),
    };
    return failed + cmocka_run_group_tests_name("perr", tests, NULL, NULL);
}
