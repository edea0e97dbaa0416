/* test_envelope.c -- the error envelope (SPEC section 5): kind -> status/code table, the JSON body
 * (parsed back with jansson, field by field), JSON string escaping, HTTP reason phrases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "gateway/envelope.h"

#define RID "01JD3Z8Q4WJ8V6M2B5N7K9T1XC"
#define FFFD "\xef\xbf\xbd"

/* SPEC section 5: the closed list of codes. */
static const char *const spec_codes[] = {
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "unprocessable",
    "rate_limited",
    "upstream_auth_failed",
    "upstream_error",
    "upstream_unavailable",
    "upstream_timeout",
    "internal_error",
    NULL,
};

static bool in_spec_codes(const char *s)
{
    for (size_t i = 0; spec_codes[i]; i++)
        if (strcmp(s, spec_codes[i]) == 0)
            return true;
    return false;
}

/* Render e and return the body as a NUL-terminated heap string (and its length). */
static char *render(const struct pg_envelope *e, const char *rid, size_t *len)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(pg_envelope_body(b, e, rid), 0);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    assert_non_null(s);
    assert_int_equal(evbuffer_remove(b, s, n), (int)n);
    s[n] = '\0';
    evbuffer_free(b);
    if (len)
        *len = n;
    return s;
}

/* Render, parse with jansson, return the inner "error" object (a new reference to the root in
 * *root). Fails the test when the body is not JSON or not {"error": {...}} alone. */
static json_t *render_parse(const struct pg_envelope *e, const char *rid, json_t **root)
{
    size_t n;
    char *s = render(e, rid, &n);
    json_error_t err;
    json_t *r = json_loadb(s, n, 0, &err);
    if (!r)
        fail_msg("envelope is not JSON (%s at %d): %s", err.text, err.position, s);
    free(s);
    assert_true(json_is_object(r));
    assert_int_equal(json_object_size(r), 1);
    json_t *eo = json_object_get(r, "error");
    assert_non_null(eo);
    assert_true(json_is_object(eo));
    *root = r;
    return eo;
}

static void assert_json_str(json_t *o, const char *key, const char *want)
{
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_string(v))
        fail_msg("\"%s\" missing or not a string", key);
    assert_int_equal(json_string_length(v), strlen(want));
    assert_memory_equal(json_string_value(v), want, strlen(want));
}

static void assert_json_int(json_t *o, const char *key, json_int_t want)
{
    json_t *v = json_object_get(o, key);
    if (!v || !json_is_integer(v))
        fail_msg("\"%s\" missing or not an integer", key);
    assert_int_equal(json_integer_value(v), want);
}

static void assert_absent(json_t *o, const char *key)
{
    if (json_object_get(o, key))
        fail_msg("\"%s\" must be absent", key);
}

/* ---- pg_envelope_body: the gateway's own errors ---- */

static void test_gateway_error_fields(void **state)
{
    (void)state;
    struct pg_envelope e = { .code = PG_E_UNAUTHORIZED, .message = "missing API key" };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 401);
    assert_json_str(eo, "code", "unauthorized");
    assert_json_str(eo, "message", "missing API key");
    assert_non_null(json_object_get(eo, "details"));
    assert_true(json_is_null(json_object_get(eo, "details")));
    assert_json_str(eo, "request_id", RID);
    assert_absent(eo, "upstream");
    assert_absent(eo, "upstream_status");
    assert_absent(eo, "upstream_code");
    assert_absent(eo, "upstream_message");
    assert_absent(eo, "retry_after");
    assert_int_equal(json_object_size(eo), 5);
    json_decref(root);
}

static void test_gateway_error_exact_bytes(void **state)
{
    (void)state;
    struct pg_envelope e = { .code = PG_E_UNAUTHORIZED, .message = "missing API key" };
    size_t n;
    char *s = render(&e, RID, &n);
    static const char want[] = "{\"error\":{\"status\":401,\"code\":\"unauthorized\","
                               "\"message\":\"missing API key\",\"details\":null,"
                               "\"request_id\":\"" RID "\"}}";
    assert_int_equal(n, sizeof want - 1);
    assert_string_equal(s, want);
    free(s);
}

static void test_gateway_error_ignores_upstream_fields_without_upstream(void **state)
{
    (void)state;
    /* upstream == NULL means the gateway made the error: no upstream* keys, whatever else is set */
    struct pg_envelope e = { .code = PG_E_FORBIDDEN,
                             .message = "no",
                             .upstream = NULL,
                             .upstream_status = 400,
                             .upstream_code = "7",
                             .upstream_message = "x",
                             .upstream_message_len = 1 };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 403);
    assert_json_str(eo, "code", "forbidden");
    assert_absent(eo, "upstream");
    assert_absent(eo, "upstream_status");
    assert_absent(eo, "upstream_code");
    assert_absent(eo, "upstream_message");
    assert_true(json_is_null(json_object_get(eo, "details")));
    json_decref(root);
}

static void test_default_message(void **state)
{
    (void)state;
    for (int c = 0; c < PG_E__COUNT; c++) {
        struct pg_envelope e = { .code = (enum pg_err_code)c };
        json_t *root;
        json_t *eo = render_parse(&e, RID, &root);
        json_t *m = json_object_get(eo, "message");
        assert_true(json_is_string(m));
        assert_true(json_string_length(m) > 0);
        assert_json_int(eo, "status", pg_err_status((enum pg_err_code)c));
        assert_json_str(eo, "code", pg_err_name((enum pg_err_code)c));
        json_decref(root);
    }
}

static void test_message_and_request_id_escaped(void **state)
{
    (void)state;
    const char *msg = "bad \"x\" \\ path\n\x01 caf\xc3\xa9";
    const char *rid = "a\"b";
    struct pg_envelope e = { .code = PG_E_BAD_REQUEST, .message = msg };
    json_t *root;
    json_t *eo = render_parse(&e, rid, &root);
    assert_json_str(eo, "message", msg);
    assert_json_str(eo, "request_id", rid);
    json_decref(root);
}

static void test_null_request_id(void **state)
{
    (void)state;
    struct pg_envelope e = { .code = PG_E_INTERNAL, .message = "x" };
    json_t *root;
    json_t *eo = render_parse(&e, NULL, &root);
    assert_json_int(eo, "status", 500);
    assert_json_str(eo, "code", "internal_error");
    assert_json_str(eo, "request_id", "");
    json_decref(root);
}

static void test_out_of_range_code_is_internal(void **state)
{
    (void)state;
    struct pg_envelope e = { .code = PG_E__COUNT, .message = "x" };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 500);
    assert_json_str(eo, "code", "internal_error");
    json_decref(root);
}

/* ---- pg_envelope_body: a panel answered ---- */

static void test_upstream_error_fields(void **state)
{
    (void)state;
    const char *um = "Wrong login or password";
    struct pg_envelope e = {
        .code = PG_E_UPSTREAM_AUTH_FAILED,
        .message = "navixy rejected the gateway's credentials",
        .upstream = "navixy",
        .upstream_status = 400,
        .upstream_code = "102",
        .upstream_message = um,
        .upstream_message_len = strlen(um),
        .details_json = "{\"field\": [\"message\"], \"n\": 1}",
    };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 502);
    assert_json_str(eo, "code", "upstream_auth_failed");
    assert_json_str(eo, "message", "navixy rejected the gateway's credentials");
    assert_json_str(eo, "upstream", "navixy");
    assert_json_int(eo, "upstream_status", 400);
    assert_json_str(eo, "upstream_code", "102");
    assert_json_str(eo, "upstream_message", "Wrong login or password");
    assert_json_str(eo, "request_id", RID);
    assert_absent(eo, "retry_after");

    json_t *want = json_loads("{\"field\": [\"message\"], \"n\": 1}", 0, NULL);
    assert_non_null(want);
    json_t *got = json_object_get(eo, "details");
    assert_true(json_is_object(got));
    assert_true(json_equal(got, want));
    json_decref(want);
    assert_int_equal(json_object_size(eo), 9);
    json_decref(root);
}

static void test_upstream_optional_fields_absent(void **state)
{
    (void)state;
    struct pg_envelope e = {
        .code = PG_E_UPSTREAM_ERROR,
        .message = "x",
        .upstream = "navirec",
        .upstream_status = 418,
    };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 502);
    assert_json_str(eo, "code", "upstream_error");
    assert_json_str(eo, "upstream", "navirec");
    assert_json_int(eo, "upstream_status", 418);
    assert_absent(eo, "upstream_code");
    assert_absent(eo, "upstream_message");
    assert_true(json_is_null(json_object_get(eo, "details")));
    json_decref(root);
}

static void test_upstream_message_uses_length(void **state)
{
    (void)state;
    const char um[] = "Not found; and then garbage";
    struct pg_envelope e = { .code = PG_E_NOT_FOUND,
                             .message = "x",
                             .upstream = "panelica",
                             .upstream_status = 404,
                             .upstream_message = um,
                             .upstream_message_len = 9 };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_str(eo, "upstream_message", "Not found");
    json_decref(root);
}

static void check_truncation(size_t len, char fill, size_t want_len)
{
    char *um = malloc(len); /* not NUL-terminated: ASan catches a read past len */
    assert_non_null(um);
    memset(um, fill, len);
    struct pg_envelope e = { .code = PG_E_UPSTREAM_ERROR,
                             .message = "x",
                             .upstream = "navixy",
                             .upstream_status = 500,
                             .upstream_message = um,
                             .upstream_message_len = len };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    json_t *v = json_object_get(eo, "upstream_message");
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), want_len);
    assert_memory_equal(json_string_value(v), um, want_len);
    json_decref(root);
    free(um);
}

static void test_upstream_message_truncated_512(void **state)
{
    (void)state;
    check_truncation(600, 'x', 512);
    check_truncation(513, 'x', 512);
    check_truncation(512, 'x', 512);
    check_truncation(511, 'x', 511);
    check_truncation(100000, 'y', 512);
    /* the limit is on the panel's bytes, not on the escaped JSON text */
    check_truncation(600, '"', 512);
    check_truncation(600, '\\', 512);
}

static void test_retry_after(void **state)
{
    (void)state;
    struct pg_envelope e = { .code = PG_E_RATE_LIMITED,
                             .message = "slow down",
                             .has_retry_after = true,
                             .retry_after_s = 3 };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 429);
    assert_json_str(eo, "code", "rate_limited");
    assert_json_int(eo, "retry_after", 3);
    json_decref(root);

    e.retry_after_s = 0;
    eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "retry_after", 0);
    json_decref(root);

    e.retry_after_s = 86400ull * 365;
    eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "retry_after", 86400ll * 365);
    json_decref(root);

    e.code = PG_E_DRAINING;
    e.retry_after_s = 5;
    eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 503);
    assert_json_int(eo, "retry_after", 5);
    json_decref(root);
}

static void test_retry_after_absent_unless_flagged(void **state)
{
    (void)state;
    struct pg_envelope e = { .code = PG_E_RATE_LIMITED,
                             .message = "slow down",
                             .has_retry_after = false,
                             .retry_after_s = 7 };
    json_t *root;
    json_t *eo = render_parse(&e, RID, &root);
    assert_json_int(eo, "status", 429);
    assert_absent(eo, "retry_after");
    json_decref(root);
}

/* ---- pg_err_status / pg_err_name ---- */

static void test_err_table(void **state)
{
    (void)state;
    static const struct {
        enum pg_err_code c;
        int status;
        const char *name;
    } want[] = {
        { PG_E_BAD_REQUEST, 400, "bad_request" },
        { PG_E_UNAUTHORIZED, 401, "unauthorized" },
        { PG_E_FORBIDDEN, 403, "forbidden" },
        { PG_E_NOT_FOUND, 404, "not_found" },
        { PG_E_METHOD_NOT_ALLOWED, 405, "method_not_allowed" },
        { PG_E_CONFLICT, 409, "conflict" },
        { PG_E_PAYLOAD_TOO_LARGE, 413, "payload_too_large" },
        { PG_E_UNPROCESSABLE, 422, "unprocessable" },
        { PG_E_RATE_LIMITED, 429, "rate_limited" },
        { PG_E_UPSTREAM_AUTH_FAILED, 502, "upstream_auth_failed" },
        { PG_E_UPSTREAM_ERROR, 502, "upstream_error" },
        { PG_E_UPSTREAM_UNAVAILABLE, 502, "upstream_unavailable" },
        { PG_E_UPSTREAM_TIMEOUT, 504, "upstream_timeout" },
        { PG_E_INTERNAL, 500, "internal_error" },
        { PG_E_REQUEST_TIMEOUT, 408, "bad_request" },
        { PG_E_URI_TOO_LONG, 414, "bad_request" },
        { PG_E_HEADERS_TOO_LARGE, 431, "bad_request" },
        { PG_E_NOT_IMPLEMENTED, 501, "bad_request" },
        { PG_E_OVERLOADED, 503, "rate_limited" },
        { PG_E_DRAINING, 503, "rate_limited" },
    };
    /* one row per enum value, so a new kind must be added here */
    assert_int_equal(sizeof want / sizeof want[0], PG_E__COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(want[i].c, (enum pg_err_code)i);
        assert_int_equal(pg_err_status(want[i].c), want[i].status);
        assert_string_equal(pg_err_name(want[i].c), want[i].name);
    }
}

static void test_err_names_in_spec_list(void **state)
{
    (void)state;
    for (int c = 0; c < PG_E__COUNT; c++) {
        const char *n = pg_err_name((enum pg_err_code)c);
        assert_non_null(n);
        if (!in_spec_codes(n))
            fail_msg("kind %d has code \"%s\", not in SPEC section 5", c, n);
        int s = pg_err_status((enum pg_err_code)c);
        assert_true(s >= 400 && s <= 599);
        assert_string_not_equal(pg_http_reason(s), "Unknown");
    }
    /* every SPEC code is produced by some kind */
    for (size_t i = 0; spec_codes[i]; i++) {
        bool found = false;
        for (int c = 0; c < PG_E__COUNT; c++)
            found |= strcmp(pg_err_name((enum pg_err_code)c), spec_codes[i]) == 0;
        if (!found)
            fail_msg("no kind maps to \"%s\"", spec_codes[i]);
    }
}

static void test_err_out_of_range(void **state)
{
    (void)state;
    assert_int_equal(pg_err_status(PG_E__COUNT), 500);
    assert_string_equal(pg_err_name(PG_E__COUNT), "internal_error");
    assert_int_equal(pg_err_status((enum pg_err_code)1000), 500);
    assert_string_equal(pg_err_name((enum pg_err_code)1000), "internal_error");
}

/* ---- pg_json_escape ---- */

static char *escape(const char *p, size_t n, size_t *outn)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(pg_json_escape(b, p, n), 0);
    size_t len = evbuffer_get_length(b);
    char *s = malloc(len + 1);
    assert_non_null(s);
    assert_int_equal(evbuffer_remove(b, s, len), (int)len);
    s[len] = '\0';
    evbuffer_free(b);
    *outn = len;
    return s;
}

/* The escaped text, between quotes, must parse as a JSON string; returns it decoded. */
static json_t *parse_as_string(const char *esc, size_t n)
{
    char *q = malloc(n + 2);
    assert_non_null(q);
    q[0] = '"';
    memcpy(q + 1, esc, n);
    q[n + 1] = '"';
    json_error_t err;
    json_t *v = json_loadb(q, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    free(q);
    if (!v)
        fail_msg("escaped text is not a JSON string body (%s): %.*s", err.text, (int)n, esc);
    assert_true(json_is_string(v));
    return v;
}

/* escape(in) == want byte for byte, and it decodes back to `decoded` (NULL: same as in). */
static void check_escape(const char *in, size_t n, const char *want, size_t wn, const char *decoded,
                         size_t dn)
{
    size_t en;
    char *esc = escape(in, n, &en);
    if (want) {
        if (en != wn || memcmp(esc, want, wn) != 0)
            fail_msg("escape: want %zu bytes, got %zu: \"%s\"", wn, en, esc);
    }
    json_t *v = parse_as_string(esc, en);
    if (!decoded) {
        decoded = in;
        dn = n;
    }
    assert_int_equal(json_string_length(v), dn);
    assert_memory_equal(json_string_value(v), decoded, dn);
    json_decref(v);
    free(esc);
}

#define CHECK(in, want, dec)                                                                       \
    check_escape(in, sizeof in - 1, want, sizeof want - 1, dec, sizeof dec - 1)
#define CHECK_SAME(in) check_escape(in, sizeof in - 1, in, sizeof in - 1, NULL, 0)

static void test_escape_plain(void **state)
{
    (void)state;
    CHECK_SAME("");
    CHECK_SAME("hello world");
    CHECK_SAME("/path?x=1&y=2 {}[]:,'<>");
    CHECK_SAME("~");
}

static void test_escape_quotes_backslash(void **state)
{
    (void)state;
    CHECK("a\"b", "a\\\"b", "a\"b");
    CHECK("\\", "\\\\", "\\");
    CHECK("\"\\\"", "\\\"\\\\\\\"", "\"\\\"");
    CHECK("C:\\dir\\\"x\"", "C:\\\\dir\\\\\\\"x\\\"", "C:\\dir\\\"x\"");
    CHECK("/", "/", "/");
}

static void test_escape_controls(void **state)
{
    (void)state;
    CHECK("\x01", "\\u0001", "\x01");
    CHECK("a\x1f"
          "b",
          "a\\u001fb",
          "a\x1f"
          "b");
    CHECK("\x7f", "\\u007f", "\x7f");
    CHECK("x\x7fy", "x\\u007fy", "x\x7fy");
    /* every byte below 0x20 is escaped and decodes back (the form may be short or \u) */
    for (int c = 0; c < 0x20; c++) {
        char in[3] = { 'a', (char)c, 'b' };
        size_t en;
        char *esc = escape(in, 3, &en);
        for (size_t i = 0; i < en; i++)
            if ((unsigned char)esc[i] < 0x20)
                fail_msg("raw control byte 0x%02x in output", (unsigned char)esc[i]);
        json_t *v = parse_as_string(esc, en);
        assert_int_equal(json_string_length(v), 3);
        assert_memory_equal(json_string_value(v), in, 3);
        json_decref(v);
        free(esc);
    }
}

static void test_escape_nul_uses_length(void **state)
{
    (void)state;
    const char in[] = "a\0b";
    size_t en;
    char *esc = escape(in, 3, &en);
    assert_int_equal(en, 8);
    assert_memory_equal(esc, "a\\u0000b", 8);
    free(esc);
    esc = escape("abcdef", 3, &en);
    assert_int_equal(en, 3);
    assert_memory_equal(esc, "abc", 3);
    free(esc);
}

static void test_escape_valid_utf8_kept(void **state)
{
    (void)state;
    CHECK_SAME("\xc3\xa9");                         /* é */
    CHECK_SAME("caf\xc3\xa9 cr\xc3\xa8me");         /* café crème */
    CHECK_SAME("\xf0\x9f\x98\x80");                 /* 😀 U+1F600 */
    CHECK_SAME("\xe2\x82\xac");                     /* € U+20AC */
    CHECK_SAME("\xc2\x80");                         /* U+0080, smallest 2-byte */
    CHECK_SAME("\xdf\xbf");                         /* U+07FF */
    CHECK_SAME("\xe0\xa0\x80");                     /* U+0800, smallest 3-byte */
    CHECK_SAME("\xed\x9f\xbf");                     /* U+D7FF, just below surrogates */
    CHECK_SAME("\xee\x80\x80");                     /* U+E000, just above surrogates */
    CHECK_SAME("\xef\xbf\xbd");                     /* U+FFFD itself */
    CHECK_SAME("\xef\xbf\xbf");                     /* U+FFFF */
    CHECK_SAME("\xf0\x90\x80\x80");                 /* U+10000, smallest 4-byte */
    CHECK_SAME("\xf4\x8f\xbf\xbf");                 /* U+10FFFF, the largest */
    CHECK_SAME("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2"); /* Привет (part) */
}

static void test_escape_invalid_utf8_replaced(void **state)
{
    (void)state;
    /* each byte that is not part of a valid sequence becomes one U+FFFD */
    CHECK("\xff", FFFD, FFFD);
    CHECK("\xfe", FFFD, FFFD);
    CHECK("a\xff"
          "b",
          "a" FFFD "b", "a" FFFD "b");
    CHECK("\x80", FFFD, FFFD);               /* lone continuation byte */
    CHECK("\xe2\x82", FFFD FFFD, FFFD FFFD); /* truncated € at the end */
    CHECK("\xe2\x82"
          "A",
          FFFD FFFD "A", FFFD FFFD "A");
    CHECK("\xc3", FFFD, FFFD); /* truncated é at the end */
    CHECK("\xc3"
          "A",
          FFFD "A", FFFD "A");
    CHECK("\xc0\xaf", FFFD FFFD, FFFD FFFD);                             /* overlong '/' */
    CHECK("\xc1\xbf", FFFD FFFD, FFFD FFFD);                             /* overlong U+007F */
    CHECK("\xe0\x80\xaf", FFFD FFFD FFFD, FFFD FFFD FFFD);               /* overlong 3-byte */
    CHECK("\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD, FFFD FFFD FFFD FFFD); /* overlong 4-byte */
    CHECK("\xed\xa0\x80", FFFD FFFD FFFD, FFFD FFFD FFFD);               /* surrogate U+D800 */
    CHECK("\xed\xbf\xbf", FFFD FFFD FFFD, FFFD FFFD FFFD);               /* surrogate U+DFFF */
    CHECK("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD, FFFD FFFD FFFD FFFD); /* U+110000 */
    CHECK("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD, FFFD FFFD FFFD FFFD);
    CHECK("\xf0\x9f\x98", FFFD FFFD FFFD, FFFD FFFD FFFD); /* truncated 😀 */
    /* a valid sequence right after an invalid byte survives */
    CHECK("\xff\xc3\xa9\"", FFFD "\xc3\xa9\\\"", FFFD "\xc3\xa9\"");
}

static void test_escape_random_always_parses(void **state)
{
    (void)state;
    uint32_t x = 0x12345678u; /* fixed seed: failures reproduce */
    unsigned char buf[64];
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = 0;
        x = x * 1664525u + 1013904223u;
        n = (x >> 24) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            unsigned b = x >> 24;
            /* bias towards the interesting ranges */
            if ((x >> 8) % 4 == 0)
                b = 0x80 | (b & 0x3f);
            buf[i] = (unsigned char)b;
        }
        size_t en;
        char *esc = escape((const char *)buf, n, &en);
        json_t *v = parse_as_string(esc, en);
        bool ascii = true;
        for (size_t i = 0; i < n; i++)
            ascii &= buf[i] < 0x80;
        if (ascii) {
            assert_int_equal(json_string_length(v), n);
            assert_memory_equal(json_string_value(v), buf, n);
        }
        json_decref(v);
        free(esc);
    }
}

/* The memory form writes exactly the evbuffer form's bytes, and refuses what does not fit. */
static void test_escape_mem(void **state)
{
    (void)state;
    uint32_t x = 0x9e3779b9u;
    unsigned char buf[64];
    char out[64 * 6];
    for (int iter = 0; iter < 2000; iter++) {
        x = x * 1664525u + 1013904223u;
        size_t n = (x >> 24) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            buf[i] = (unsigned char)(x >> 24);
        }
        size_t en, mn = 0;
        char *esc = escape((const char *)buf, n, &en);
        assert_int_equal(pg_json_escape_mem(out, sizeof out, &mn, (const char *)buf, n), 0);
        assert_int_equal(mn, en);
        assert_memory_equal(out, esc, en);
        if (en > 0) /* one byte short: refused */
            assert_int_equal(pg_json_escape_mem(out, en - 1, &mn, (const char *)buf, n), -1);
        free(esc);
    }
    size_t mn = 99;
    assert_int_equal(pg_json_escape_mem(out, 0, &mn, "", 0), 0);
    assert_int_equal(mn, 0);
    assert_int_equal(pg_json_escape_mem(out, 5, &mn, "\x01", 1), -1); /* \u0001 is 6 bytes */
    assert_int_equal(pg_json_escape_mem(out, 6, &mn, "\x01", 1), 0);
    assert_int_equal(mn, 6);
    assert_memory_equal(out, "\\u0001", 6);
}

/* ---- pg_http_reason ---- */

static void test_http_reason(void **state)
{
    (void)state;
    assert_string_equal(pg_http_reason(200), "OK");
    assert_string_equal(pg_http_reason(404), "Not Found");
    assert_string_equal(pg_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(pg_http_reason(504), "Gateway Timeout");
    assert_string_equal(pg_http_reason(401), "Unauthorized");
    assert_string_equal(pg_http_reason(429), "Too Many Requests");
    assert_string_equal(pg_http_reason(502), "Bad Gateway");
    assert_string_equal(pg_http_reason(999), "Unknown");
    assert_string_equal(pg_http_reason(0), "Unknown");
    assert_string_equal(pg_http_reason(-1), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gateway_error_fields),
        cmocka_unit_test(test_gateway_error_exact_bytes),
        cmocka_unit_test(test_gateway_error_ignores_upstream_fields_without_upstream),
        cmocka_unit_test(test_default_message),
        cmocka_unit_test(test_message_and_request_id_escaped),
        cmocka_unit_test(test_null_request_id),
        cmocka_unit_test(test_out_of_range_code_is_internal),
        cmocka_unit_test(test_upstream_error_fields),
        cmocka_unit_test(test_upstream_optional_fields_absent),
        cmocka_unit_test(test_upstream_message_uses_length),
        cmocka_unit_test(test_upstream_message_truncated_512),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_after_absent_unless_flagged),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_err_names_in_spec_list),
        cmocka_unit_test(test_err_out_of_range),
        cmocka_unit_test(test_escape_plain),
        cmocka_unit_test(test_escape_quotes_backslash),
        cmocka_unit_test(test_escape_controls),
        cmocka_unit_test(test_escape_nul_uses_length),
        cmocka_unit_test(test_escape_valid_utf8_kept),
        cmocka_unit_test(test_escape_invalid_utf8_replaced),
        cmocka_unit_test(test_escape_random_always_parses),
        cmocka_unit_test(test_escape_mem),
        cmocka_unit_test(test_http_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
