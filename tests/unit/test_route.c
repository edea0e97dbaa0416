/* test_route.c -- path normalisation (SPEC section 2: "..", "//", "%2e" can never escape an
 * upstream's prefix; /user/%61uth is /user/auth) and /{upstream}/{rest} matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/route.h"

/* ---- pg_path_normalize ---- */

struct norm_case {
    const char *in;
    size_t n;         /* 0: strlen(in) */
    const char *want; /* NULL: refused (-1) */
};

#define REFUSED NULL

static const struct norm_case norm_cases[] = {
    /* unchanged */
    { "/", 0, "/" },
    { "/a/b", 0, "/a/b" },
    { "/a/b/", 0, "/a/b/" },
    { "/user/auth", 0, "/user/auth" },
    { "/a..b", 0, "/a..b" },
    { "/..a/.b/...", 0, "/..a/.b/..." },
    { "/a-b_c~d.e", 0, "/a-b_c~d.e" },
    { "/a:b@c!$&'()*+,;=", 0, "/a:b@c!$&'()*+,;=" },
    /* slashes, ".", ".." */
    { "//a///b", 0, "/a/b" },
    { "//", 0, "/" },
    { "/a//", 0, "/a/" },
    { "/a/./b", 0, "/a/b" },
    { "/a/b/../c", 0, "/a/c" },
    { "/a/b/..", 0, "/a/" },
    { "/a/b/../", 0, "/a/" },
    { "/a/.", 0, "/a/" },
    { "/.", 0, "/" },
    { "/./", 0, "/" },
    { "/a/..", 0, "/" },
    { "/a/b/../../c", 0, "/c" },
    { "/a/./b/.././../c/", 0, "/c/" },
    { "/x/../user/auth", 0, "/user/auth" },
    { "/user//auth/", 0, "/user/auth/" },
    { "/user/./auth", 0, "/user/auth" },
    { "/..", 0, REFUSED },
    { "/../", 0, REFUSED },
    { "/../a", 0, REFUSED },
    { "/a/../..", 0, REFUSED },
    { "/a/../../b", 0, REFUSED },
    { "/a/b/../../..", 0, REFUSED },
    { "//..", 0, REFUSED },
    /* percent-encoding */
    { "/%2e%2e/x", 0, REFUSED },
    { "/%2E%2E", 0, REFUSED },
    { "/a/%2e%2e/%2e%2e", 0, REFUSED },
    { "/a/%2e%2e/b", 0, "/b" },
    { "/a/%2E%2e", 0, "/" },
    { "/a/.%2e/b", 0, "/b" },
    { "/a/%2e/b", 0, "/a/b" },
    { "/%2e", 0, "/" },
    { "/user/%61uth", 0, "/user/auth" },
    { "/user/%61%75%74%68/", 0, "/user/auth/" },
    { "/%41%5a%30%39%2D%5F%7E", 0, "/AZ09-_~" },
    { "/a%7e", 0, "/a~" },
    { "/a%20b", 0, "/a%20b" },
    { "/a%3a", 0, "/a%3A" },
    { "/a%3Fb%23c", 0, "/a%3Fb%23c" },
    { "/a%25", 0, "/a%25" },
    { "/a%25%32%65", 0, "/a%252e" }, /* decoded once only: %25 stays an escape */
    { "/a%c3%a9", 0, "/a%C3%A9" },
    { "/a%0a", 0, "/a%0A" },
    { "/a%2fb", 0, REFUSED },
    { "/a%2Fb", 0, REFUSED },
    { "/a/..%2f", 0, REFUSED },
    { "/a%5cb", 0, REFUSED },
    { "/a%5Cb", 0, REFUSED },
    { "/a%00", 0, REFUSED },
    { "/a%zz", 0, REFUSED },
    { "/a%g0", 0, REFUSED },
    { "/a%0g", 0, REFUSED },
    { "/a%4", 0, REFUSED },
    { "/a%", 0, REFUSED },
    { "/a%%41", 0, REFUSED },
    { "/a%+4", 0, REFUSED },
    /* raw bytes */
    { "/a b", 0, REFUSED },
    { "/a\\b", 0, REFUSED },
    { "/a\tb", 0, REFUSED },
    { "/a\rb", 0, REFUSED },
    { "/a\nb", 0, REFUSED },
    { "/a\x01", 0, REFUSED },
    { "/a\x7f", 0, REFUSED },
    { "/caf\xc3\xa9", 0, REFUSED },
    { "/a\xff", 0, REFUSED },
    { "/a\x80", 0, REFUSED },
    { "/a\0b", 4, REFUSED },
    { "/a\0", 3, REFUSED },
    /* not a path */
    { "", 0, REFUSED },
    { "a/b", 0, REFUSED },
    { "a", 0, REFUSED },
    { "%2fa", 0, REFUSED },
    { ".", 0, REFUSED },
    { "\\a", 0, REFUSED },
    { "*", 0, REFUSED },
    { "http://x/a", 0, REFUSED },
};

static void test_normalize_table(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof norm_cases / sizeof norm_cases[0]; i++) {
        const struct norm_case *t = &norm_cases[i];
        size_t n = t->n ? t->n : strlen(t->in);
        /* the input without its NUL, and exactly the documented output capacity, both on the
         * heap so ASan sees any read or write past them */
        char *in = malloc(n ? n : 1);
        assert_non_null(in);
        memcpy(in, t->in, n);
        size_t cap = n + 1;
        char *out = malloc(cap);
        assert_non_null(out);
        memset(out, 'Z', cap);
        long r = pg_path_normalize(in, n, out, cap);
        free(in);
        if (t->want == REFUSED) {
            if (r != -1) {
                print_error("case %zu \"%s\": want -1, got %ld\n", i, t->in, r);
                failures++;
            }
        } else {
            size_t wn = strlen(t->want);
            if (r != (long)wn || r < 0 || (size_t)r >= cap || out[r] != '\0' ||
                strlen(out) != (size_t)r || memcmp(out, t->want, wn) != 0) {
                print_error("case %zu \"%s\": want \"%s\" (%zu), got %ld \"%.*s\"\n", i, t->in,
                            t->want, wn, r, r > 0 && (size_t)r < cap ? (int)r : 0, out);
                failures++;
            }
        }
        free(out);
    }
    assert_int_equal(failures, 0);
}

static void test_normalize_cap(void **state)
{
    (void)state;
    char out[16];
    memset(out, 'Z', sizeof out);
    assert_int_equal(pg_path_normalize("/a/b", 4, out, 4), -1); /* cap must be >= n + 1 */
    assert_int_equal(pg_path_normalize("/a/b", 4, out, 0), -1);
    assert_int_equal(pg_path_normalize("/", 1, out, 1), -1);
    assert_int_equal(pg_path_normalize("/a/b", 4, out, 5), 4);
    assert_memory_equal(out, "/a/b", 5);
    assert_int_equal(pg_path_normalize("/", 1, out, 2), 1);
    assert_memory_equal(out, "/", 2);
}

static void test_normalize_uses_length(void **state)
{
    (void)state;
    /* (p, n) is not NUL-terminated: bytes after n are ignored. */
    char out[16];
    assert_int_equal(pg_path_normalize("/a/b/../c", 4, out, sizeof out), 4);
    assert_string_equal(out, "/a/b");
    assert_int_equal(pg_path_normalize("/a%41", 3, out, sizeof out), -1);     /* "/a%" */
    assert_int_equal(pg_path_normalize("/a%41", 4, out, sizeof out), -1);     /* "/a%4" */
    assert_int_equal(pg_path_normalize("/a/%2e%2e", 8, out, sizeof out), -1); /* "/a/%2e%2" */
    assert_int_equal(pg_path_normalize("/a/%2e%2e", 6, out, sizeof out), 3);  /* "/a/%2e" */
    assert_string_equal(out, "/a/");
    assert_int_equal(pg_path_normalize("/a/%2e%2e", 9, out, sizeof out), 1);
    assert_string_equal(out, "/");
    assert_int_equal(pg_path_normalize("/a%41", 5, out, sizeof out), 3);
    assert_string_equal(out, "/aA");
}

static void test_normalize_idempotent(void **state)
{
    (void)state;
    static const char *const in[] = { "/a/b/../c/", "/user/%61uth", "/a%3a%20/./x",
                                      "//a/.%2e/b%7e" };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        char o1[64], o2[64];
        long r1 = pg_path_normalize(in[i], strlen(in[i]), o1, sizeof o1);
        assert_true(r1 > 0);
        long r2 = pg_path_normalize(o1, (size_t)r1, o2, sizeof o2);
        assert_int_equal(r2, r1);
        assert_string_equal(o2, o1);
    }
}

/* ---- pg_route_match ---- */

static struct pg_upstream ups[3];
static struct pg_conf conf;

static int setup_conf(void **state)
{
    static char n0[] = "echo", n1[] = "navixy", n2[] = "ec";
    memset(ups, 0, sizeof ups);
    memset(&conf, 0, sizeof conf);
    ups[0].name = n0;
    ups[0].name_len = 4;
    ups[1].name = n1;
    ups[1].name_len = 6;
    ups[2].name = n2;
    ups[2].name_len = 2;
    conf.upstreams = ups;
    conf.nupstreams = 3;
    *state = &conf;
    return 0;
}

static int match(const struct pg_conf *c, const char *path, const char **rest, size_t *rest_len)
{
    *rest = NULL;
    *rest_len = (size_t)-1;
    return pg_route_match(c, path, strlen(path), rest, rest_len);
}

static void test_match_with_rest(void **state)
{
    const struct pg_conf *c = *state;
    const char *rest;
    size_t rn;
    const char *p = "/echo/x";
    assert_int_equal(pg_route_match(c, p, strlen(p), &rest, &rn), 0);
    assert_int_equal(rn, 2);
    assert_ptr_equal(rest, p + 5);
    assert_memory_equal(rest, "/x", 2);

    p = "/navixy/user/get_info";
    assert_int_equal(match(c, p, &rest, &rn), 1);
    assert_int_equal(rn, strlen("/user/get_info"));
    assert_memory_equal(rest, "/user/get_info", rn);

    assert_int_equal(match(c, "/ec/a/b/", &rest, &rn), 2);
    assert_int_equal(rn, 5);
    assert_memory_equal(rest, "/a/b/", 5);
}

static void test_match_no_rest(void **state)
{
    const struct pg_conf *c = *state;
    const char *rest;
    size_t rn;
    assert_int_equal(match(c, "/echo", &rest, &rn), 0);
    assert_int_equal(rn, 0);
    assert_non_null(rest);
}

static void test_match_rest_slash(void **state)
{
    const struct pg_conf *c = *state;
    const char *rest;
    size_t rn;
    assert_int_equal(match(c, "/echo/", &rest, &rn), 0);
    assert_int_equal(rn, 1);
    assert_memory_equal(rest, "/", 1);
}

static void test_match_uses_length(void **state)
{
    const struct pg_conf *c = *state;
    const char *rest;
    size_t rn;
    const char *p = "/echo/x";
    assert_int_equal(pg_route_match(c, p, 5, &rest, &rn), 0); /* "/echo" */
    assert_int_equal(rn, 0);
    assert_int_equal(pg_route_match(c, p, 4, &rest, &rn), -1);         /* "/ech" */
    assert_int_equal(pg_route_match(c, "/navixyz", 7, &rest, &rn), 1); /* "/navixy" */
    assert_int_equal(rn, 0);
}

static void test_match_unknown(void **state)
{
    const struct pg_conf *c = *state;
    const char *rest;
    size_t rn;
    assert_int_equal(match(c, "/ech", &rest, &rn), -1);
    assert_int_equal(match(c, "/ech/x", &rest, &rn), -1);
    assert_int_equal(match(c, "/echox/y", &rest, &rn), -1);
    assert_int_equal(match(c, "/echox", &rest, &rn), -1);
    assert_int_equal(match(c, "/e", &rest, &rn), -1);
    assert_int_equal(match(c, "/", &rest, &rn), -1);
    assert_int_equal(pg_route_match(c, "", 0, &rest, &rn), -1);
    assert_int_equal(match(c, "//echo", &rest, &rn), -1);
    assert_int_equal(match(c, "echo/x", &rest, &rn), -1);
    assert_int_equal(match(c, "xecho/x", &rest, &rn), -1); /* not a path: no leading '/' */
    assert_int_equal(match(c, "xecho", &rest, &rn), -1);
    assert_int_equal(match(c, "/_gateway/x", &rest, &rn), -1);
    assert_int_equal(match(c, "/_gateway", &rest, &rn), -1);
    assert_int_equal(match(c, "/_gateway/health", &rest, &rn), -1);
}

static void test_match_no_upstreams(void **state)
{
    (void)state;
    struct pg_conf empty;
    memset(&empty, 0, sizeof empty);
    const char *rest;
    size_t rn;
    assert_int_equal(match(&empty, "/echo/x", &rest, &rn), -1);
}

static void test_match_reserved_gateway_never_upstream(void **state)
{
    (void)state;
    /* route.h: 'A path naming the reserved "_gateway" is never an upstream', even if a
     * snapshot (hand-built here) holds an upstream of that name. */
    static char n0[] = "echo", n1[] = "_gateway";
    struct pg_upstream u[2];
    memset(u, 0, sizeof u);
    u[0].name = n0;
    u[0].name_len = 4;
    u[1].name = n1;
    u[1].name_len = 8;
    struct pg_conf c;
    memset(&c, 0, sizeof c);
    c.upstreams = u;
    c.nupstreams = 2;
    const char *rest;
    size_t rn;
    assert_int_equal(match(&c, "/echo/x", &rest, &rn), 0); /* the snapshot itself works */
    assert_int_equal(match(&c, "/_gateway/health", &rest, &rn), -1);
    assert_int_equal(match(&c, "/_gateway", &rest, &rn), -1);
}

static void test_normalize_then_match(void **state)
{
    const struct pg_conf *c = *state;
    /* What the server does: normalise, then route. Escapes cannot leave the prefix. */
    static const struct {
        const char *raw;
        int idx;
        const char *rest;
    } cases[] = {
        { "/navixy/user/%61uth", 1, "/user/auth" },
        { "/navixy//user/./auth/", 1, "/user/auth/" },
        { "/echo/../navixy/x", 1, "/x" },
        { "/%65cho/x", 0, "/x" },
        { "/echo/%2e%2e/%2e%2e/etc", -2, NULL }, /* refused by normalisation */
        { "/echo/..", -1, NULL },                /* "/" names no upstream */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        long r = pg_path_normalize(cases[i].raw, strlen(cases[i].raw), out, sizeof out);
        if (cases[i].idx == -2) {
            assert_int_equal(r, -1);
            continue;
        }
        assert_true(r > 0);
        const char *rest;
        size_t rn;
        assert_int_equal(pg_route_match(c, out, (size_t)r, &rest, &rn), cases[i].idx);
        if (cases[i].rest) {
            assert_int_equal(rn, strlen(cases[i].rest));
            assert_memory_equal(rest, cases[i].rest, rn);
        }
    }
}

/* ---- pg_route_of ---- */

static void test_route_of_longest_prefix(void **state)
{
    (void)state;
    static char p0[] = "/trips/", p1[] = "/", p2[] = "/trips/live", p3[] = "/tr";
    struct pg_route_conf rts[] = {
        { p0, 7, { 0 } }, { p1, 1, { 0 } }, { p2, 11, { 0 } }, { p3, 3, { 0 } }
    };
    struct pg_upstream up;
    memset(&up, 0, sizeof up);
    up.routes = rts;
    up.nroutes = 4;
    /* the longest prefix wins, wherever it is in the list */
    assert_ptr_equal(pg_route_of(&up, "/trips/live/7", 13), &rts[2]);
    assert_ptr_equal(pg_route_of(&up, "/trips/1", 8), &rts[0]);
    assert_ptr_equal(pg_route_of(&up, "/trips", 6), &rts[3]);
    assert_ptr_equal(pg_route_of(&up, "/users", 6), &rts[1]);
    /* "" (nothing after /{upstream}) is "/" */
    assert_ptr_equal(pg_route_of(&up, "", 0), &rts[1]);
    /* the length is honoured: the bytes past it are not looked at */
    assert_ptr_equal(pg_route_of(&up, "/trips/live", 7), &rts[0]);
    /* byte prefix, case-sensitive */
    assert_ptr_equal(pg_route_of(&up, "/TRIPS/1", 8), &rts[1]);
    /* no catch-all route: no match */
    up.routes = rts;
    up.nroutes = 1;
    assert_null(pg_route_of(&up, "/users", 6));
    assert_null(pg_route_of(&up, "", 0));
    up.nroutes = 0;
    assert_null(pg_route_of(&up, "/trips/1", 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_normalize_cap),
        cmocka_unit_test(test_normalize_uses_length),
        cmocka_unit_test(test_normalize_idempotent),
        cmocka_unit_test_setup(test_match_with_rest, setup_conf),
        cmocka_unit_test_setup(test_match_no_rest, setup_conf),
        cmocka_unit_test_setup(test_match_rest_slash, setup_conf),
        cmocka_unit_test_setup(test_match_uses_length, setup_conf),
        cmocka_unit_test_setup(test_match_unknown, setup_conf),
        cmocka_unit_test(test_match_no_upstreams),
        cmocka_unit_test(test_match_reserved_gateway_never_upstream),
        cmocka_unit_test_setup(test_normalize_then_match, setup_conf),
        cmocka_unit_test(test_route_of_longest_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
