/* fuzz_perr.c -- libFuzzer target for pg_perr_recognise (gateway/perr.c): the first 2 bytes
 * (big-endian, modulo 1000) are the panel's HTTP status, the rest is the body. Each input runs
 * complete and cut off; the result must keep perr.h's invariants and render, with
 * pg_envelope_body, to a JSON envelope. Linked with replay.c it is a plain program that runs the
 * files (or directories of files) named on its command line, for builds without libFuzzer. See
 * tests/fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "gateway/envelope.h"
#include "gateway/perr.h"
#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The envelope for p must be one JSON object {"error": {...}} carrying p's fields. */
static void check_envelope(const struct pg_perr *p, int status)
{
    struct pg_envelope e = {
        .code = p->code,
        .upstream = "fuzz",
        .upstream_status = status,
        .upstream_code = p->upstream_code[0] ? p->upstream_code : NULL,
        .upstream_message = p->upstream_message,
        .upstream_message_len = p->upstream_message_len,
        .details_json = p->details,
    };
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    if (pg_envelope_body(b, &e, "01JD3Z8Q4WJ8V6M2B5N7K9T1XC") == 0) {
        size_t n = evbuffer_get_length(b);
        const char *s = (const char *)evbuffer_pullup(b, -1);
        json_t *root = json_loadb(s, n, JSON_ALLOW_NUL, NULL);
        CHECK(root);
        json_t *err = json_object_get(root, "error");
        CHECK(json_is_object(err));
        CHECK(json_is_string(json_object_get(err, "upstream_message")));
        CHECK(p->details ? json_object_get(err, "details") != NULL
                         : json_is_null(json_object_get(err, "details")));
        json_decref(root);
    }
    evbuffer_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int status = ((data[0] << 8) | data[1]) % 1000;
    const char *body = (const char *)data + 2;
    size_t n = size - 2;
    for (int complete = 1; complete >= 0; complete--) {
        struct pg_perr p;
        /* -1 means out of memory only, and ASan's malloc aborts instead of failing */
        CHECK(pg_perr_recognise(status, body, n, complete, &p) == 0);
        CHECK(p.code <= PG_E_UPSTREAM_ERROR); /* a panel's error is never one of ours */
        CHECK(p.status >= 400 && p.status <= 599);
        CHECK(memchr(p.upstream_code, '\0', sizeof p.upstream_code));
        CHECK(p.upstream_message_len <= PG_PERR_MESSAGE_MAX);
        CHECK(p.upstream_message[p.upstream_message_len] == '\0');
        if (!complete) { /* the raw fallback: the body's first bytes, at most 3 short of 512 */
            CHECK(p.code == PG_E_UPSTREAM_ERROR && !p.upstream_code[0] && !p.details);
            CHECK(n <= PG_PERR_MESSAGE_MAX ? p.upstream_message_len == n
                                           : p.upstream_message_len + 3 >= PG_PERR_MESSAGE_MAX);
            CHECK(memcmp(p.upstream_message, body, p.upstream_message_len) == 0);
        }
        if (p.details) {
            json_t *d = json_loads(p.details, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            CHECK(d);
            json_decref(d);
        }
        check_envelope(&p, status);
        pg_perr_free(&p);
    }
    return 0;
}
