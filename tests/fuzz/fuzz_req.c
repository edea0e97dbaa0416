/* fuzz_req.c -- libFuzzer target for the caller's request parser (gateway/reqparse.c), fed from
 * a buffer exactly as the server feeds it: the first input byte picks a piece size (1-64 bytes)
 * and whether the head check refuses bodies; the rest is parsed once whole and once in pieces,
 * pipelined requests one after another until an error, and both must come to the same requests
 * and the same end (no split changes a verdict, though it may change which of two faults is
 * named). Checked on every request: the head
 * holds only token names and CR/LF/NUL-free values within the limits; trailers never add a
 * header (the field count at the end equals the one the head check saw); a chunked body never
 * passes max_body_bytes; MORE means every byte was taken. Linked with replay.c it runs the
 * corpus on every ctest run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/hdr.h"
#include "gateway/reqparse.h"
#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADER 2048
#define MAX_BODY 4096

struct seen {
    size_t nhdrs; /* at the head check */
    bool refuse_bodies;
    bool refused; /* the head check said no */
    int heads;
};

static void check_head(const struct pg_req *r)
{
    CHECK(r->nhdrs <= PG_MAX_HDRS);
    CHECK(r->hlen <= MAX_HEADER);
    CHECK(r->url_len > 0 && r->url + r->url_len <= r->hlen);
    for (size_t i = 0; i < r->nhdrs; i++) {
        CHECK(r->hdrs[i].name + r->hdrs[i].name_len <= r->hlen);
        CHECK(r->hdrs[i].value + r->hdrs[i].value_len <= r->hlen);
        CHECK(pg_hdr_name_ok(pg_req_hname(r, i), r->hdrs[i].name_len));
        CHECK(pg_hdr_value_ok(pg_req_hvalue(r, i), r->hdrs[i].value_len));
    }
    CHECK(r->method && r->http_minor <= 9);
}

static int on_head(struct pg_reqparse *ps, bool body_follows, void *arg)
{
    struct seen *s = arg;
    check_head(ps->r);
    s->nhdrs = ps->r->nhdrs;
    s->heads++;
    if (body_follows && s->refuse_bodies) {
        pg_reqparse_refuse(ps, PG_E_UNAUTHORIZED, NULL);
        s->refused = true;
        return -1;
    }
    return 0;
}

/* What parsing a stream came to: per request its shape, then how it ended. The same bytes fed
 * in other pieces must come to the same. */
struct outcome {
    int msgs;
    struct {
        size_t nhdrs, hlen, body;
        unsigned method_bit;
    } m[64];
    enum pg_reqparse_rc last;
    enum pg_err_code err;
};

static void run(const char *p, size_t n, size_t piece, bool refuse_bodies, struct outcome *o)
{
    struct seen s = { .refuse_bodies = refuse_bodies };
    struct pg_req r = { .upstream = -1 };
    struct pg_reqparse ps = { .max_header_bytes = MAX_HEADER, .max_body_bytes = MAX_BODY };
    ps.on_head = on_head;
    ps.arg = &s;
    memset(o, 0, sizeof *o);
    o->last = PG_RP_MORE;
    r.body = evbuffer_new();
    if (!r.body)
        abort();
    pg_reqparse_reset(&ps, &r);
    while (n > 0 && o->msgs < 64) {
        size_t k = n < piece ? n : piece, used = 0;
        enum pg_reqparse_rc rc = pg_reqparse_feed(&ps, p, k, &used);
        CHECK(used <= k);
        p += used;
        n -= used;
        o->last = rc;
        if (rc == PG_RP_ERROR) {
            const char *msg;
            o->err = pg_reqparse_error(&ps, &msg);
            CHECK(o->err < PG_E__COUNT);
            CHECK(!s.refused || o->err == PG_E_UNAUTHORIZED); /* the head check's word is kept */
            break;
        }
        if (rc == PG_RP_MORE) {
            CHECK(used == k);
            continue;
        }
        /* a whole request: the head check ran, and nothing was added since */
        CHECK(s.heads > 0);
        CHECK(r.nhdrs == s.nhdrs);
        check_head(&r);
        CHECK(evbuffer_get_length(r.body) <= MAX_BODY);
        o->m[o->msgs].nhdrs = r.nhdrs;
        o->m[o->msgs].hlen = r.hlen;
        o->m[o->msgs].body = evbuffer_get_length(r.body);
        o->m[o->msgs].method_bit = r.method_bit;
        o->msgs++;
        pg_reqparse_shrink(&ps);
        pg_reqparse_reset(&ps, &r);
        s.heads = 0;
    }
    free(r.hbuf);
    evbuffer_free(r.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)(data[0] & 63) + 1;
    bool refuse_bodies = (data[0] & 64) != 0;
    static struct outcome whole, pieces;
    run((const char *)data + 1, size - 1, size, refuse_bodies, &whole);
    run((const char *)data + 1, size - 1, piece, refuse_bodies, &pieces);
    CHECK(whole.msgs == pieces.msgs);
    CHECK(whole.last == pieces.last);
    /* not the error kind: with two faults in one request, which is seen first depends on the
     * split (the scanner reads ahead of http_parser's limits) */
    CHECK(memcmp(whole.m, pieces.m, sizeof whole.m[0] * (size_t)whole.msgs) == 0);
    return 0;
}
