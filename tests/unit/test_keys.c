/* test_keys.c -- caller API keys (SPEC section 3): SHA-256 digest, bearer lookup, allow-lists
 * with method narrowing, key generation. Digests are precomputed with sha256sum, not with the
 * code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/keys.h"

/* printf %s abc | sha256sum */
static const char ABC_SHA256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/* printf '' | sha256sum */
static const char EMPTY_SHA256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#define KEY_A "pgk_0123456789abcdef0123456789abcdef01234567"
/* printf %s KEY_A | sha256sum */
static const char KEY_A_SHA256[] =
    "d6ab01fe8f0a33f6ae593900c8561666954445c9e25f5993f66765ab8569bc97";
#define KEY_B "pgk_ffffffffffffffffffffffffffffffffffffffff"
static const char KEY_B_SHA256[] =
    "17f208007c0439fa748f0f396b73a8cb7e9343ae80d14a2829582ed6144c3107";

static void unhex32(const char *hex, uint8_t out[32])
{
    assert_int_equal(strlen(hex), 64);
    for (size_t i = 0; i < 32; i++) {
        unsigned v = 0;
        for (size_t j = 0; j < 2; j++) {
            char c = hex[2 * i + j];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                fail_msg("bad hex digit in test vector");
        }
        out[i] = (uint8_t)v;
    }
}

/* ---- pg_key_hash ---- */

static void test_hash_abc(void **state)
{
    (void)state;
    uint8_t want[32], got[32];
    unhex32(ABC_SHA256, want);
    memset(got, 0, sizeof got);
    pg_key_hash("abc", 3, got);
    assert_memory_equal(got, want, 32);
}

static void test_hash_empty(void **state)
{
    (void)state;
    uint8_t want[32], got[32];
    unhex32(EMPTY_SHA256, want);
    memset(got, 0xaa, sizeof got);
    pg_key_hash("", 0, got);
    assert_memory_equal(got, want, 32);
}

static void test_hash_uses_length_not_nul(void **state)
{
    (void)state;
    uint8_t want[32], got[32];
    unhex32(ABC_SHA256, want);
    pg_key_hash("abcdef", 3, got); /* only the first 3 bytes count */
    assert_memory_equal(got, want, 32);
}

static void test_hash_generated_key(void **state)
{
    (void)state;
    uint8_t want[32], got[32];
    unhex32(KEY_A_SHA256, want);
    pg_key_hash(KEY_A, strlen(KEY_A), got);
    assert_memory_equal(got, want, 32);
}

/* ---- pg_keys_lookup ---- */

struct fixture {
    struct pg_allow allow_a[1];
    struct pg_allow allow_b[1];
    struct pg_consumer consumers[2];
    struct pg_conf conf;
};

static struct fixture fx;

static int setup_conf(void **state)
{
    memset(&fx, 0, sizeof fx);
    fx.allow_a[0] = (struct pg_allow){ .upstream = -1, .methods = PG_M_ALL };
    fx.allow_b[0] = (struct pg_allow){ .upstream = 0, .methods = PG_M_GET };
    fx.consumers[0].name = "alpha";
    unhex32(KEY_A_SHA256, fx.consumers[0].key_sha256);
    fx.consumers[0].allow = fx.allow_a;
    fx.consumers[0].nallow = 1;
    fx.consumers[1].name = "beta";
    unhex32(KEY_B_SHA256, fx.consumers[1].key_sha256);
    fx.consumers[1].allow = fx.allow_b;
    fx.consumers[1].nallow = 1;
    fx.conf.consumers = fx.consumers;
    fx.conf.nconsumers = 2;
    *state = &fx.conf;
    return 0;
}

static const struct pg_consumer *lookup(const struct pg_conf *c, const char *authz)
{
    return pg_keys_lookup(c, authz, strlen(authz));
}

static void test_lookup_bearer_matches(void **state)
{
    const struct pg_conf *c = *state;
    const struct pg_consumer *k = lookup(c, "Bearer " KEY_A);
    assert_ptr_equal(k, &c->consumers[0]);
    assert_string_equal(k->name, "alpha");
}

static void test_lookup_scheme_case_insensitive(void **state)
{
    const struct pg_conf *c = *state;
    assert_ptr_equal(lookup(c, "bearer " KEY_A), &c->consumers[0]);
    assert_ptr_equal(lookup(c, "BEARER " KEY_A), &c->consumers[0]);
    assert_ptr_equal(lookup(c, "BeArEr " KEY_A), &c->consumers[0]);
}

static void test_lookup_extra_spaces_trimmed(void **state)
{
    const struct pg_conf *c = *state;
    assert_ptr_equal(lookup(c, "Bearer    " KEY_A), &c->consumers[0]);
    assert_ptr_equal(lookup(c, "Bearer " KEY_A "   "), &c->consumers[0]);
    assert_ptr_equal(lookup(c, "Bearer \t " KEY_A " \t"), &c->consumers[0]);
}

static void test_lookup_uses_length_not_nul(void **state)
{
    const struct pg_conf *c = *state;
    /* The value is (p, n): bytes after n are not part of the key. */
    const char v[] = "Bearer " KEY_A "garbage";
    assert_ptr_equal(pg_keys_lookup(c, v, strlen("Bearer " KEY_A)), &c->consumers[0]);
    assert_null(pg_keys_lookup(c, v, strlen(v)));
}

static void test_lookup_wrong_key(void **state)
{
    const struct pg_conf *c = *state;
    assert_null(lookup(c, "Bearer pgk_not_a_key"));
    assert_null(lookup(c, "Bearer abc"));
}

static void test_lookup_one_byte_off(void **state)
{
    const struct pg_conf *c = *state;
    char v[] = "Bearer " KEY_A;
    size_t n = strlen(v);
    v[n - 1] = '8'; /* last hex digit 7 -> 8 */
    assert_null(pg_keys_lookup(c, v, n));
    v[n - 1] = '7';
    v[7] = 'P'; /* first byte of the key, case changed */
    assert_null(pg_keys_lookup(c, v, n));
    v[7] = 'p';
    assert_null(pg_keys_lookup(c, v, n - 1));                    /* one byte short */
    assert_null(lookup(c, "Bearer " KEY_A "0"));                 /* one byte extra */
    assert_ptr_equal(pg_keys_lookup(c, v, n), &c->consumers[0]); /* restored: matches again */
}

static void test_lookup_other_schemes(void **state)
{
    const struct pg_conf *c = *state;
    assert_null(lookup(c, "Basic " KEY_A));
    assert_null(lookup(c, "Basic dXNlcjpwYXNz"));
    assert_null(lookup(c, "Token " KEY_A));
    assert_null(lookup(c, "NVX " KEY_A));
    assert_null(lookup(c, "Bearer" KEY_A));  /* no separator */
    assert_null(lookup(c, "BearerX" KEY_A)); /* a separator that is not a space */
    assert_null(lookup(c, "Bearer:" KEY_A));
    assert_null(lookup(c, "Bearer\t" KEY_A));
    assert_null(lookup(c, KEY_A)); /* bare key */
}

static void test_lookup_empty(void **state)
{
    const struct pg_conf *c = *state;
    assert_null(pg_keys_lookup(c, "", 0));
    assert_null(pg_keys_lookup(c, NULL, 0));
    assert_null(lookup(c, "Bearer"));
    assert_null(lookup(c, "Bearer "));
    assert_null(lookup(c, "Bearer     "));
}

static void test_lookup_two_consumers(void **state)
{
    const struct pg_conf *c = *state;
    const struct pg_consumer *a = lookup(c, "Bearer " KEY_A);
    const struct pg_consumer *b = lookup(c, "Bearer " KEY_B);
    assert_ptr_equal(a, &c->consumers[0]);
    assert_ptr_equal(b, &c->consumers[1]);
    assert_string_equal(b->name, "beta");
}

static void test_lookup_no_consumers(void **state)
{
    (void)state;
    struct pg_conf empty;
    memset(&empty, 0, sizeof empty);
    assert_null(lookup(&empty, "Bearer " KEY_A));
}

static void test_lookup_empty_token_never_matches(void **state)
{
    (void)state;
    /* Even a consumer configured with sha256("") is not reached by an empty bearer token. */
    struct pg_consumer k = { .name = "empty" };
    unhex32(EMPTY_SHA256, k.key_sha256);
    struct pg_conf c;
    memset(&c, 0, sizeof c);
    c.consumers = &k;
    c.nconsumers = 1;
    assert_null(lookup(&c, "Bearer "));
    assert_null(lookup(&c, "Bearer    "));
    assert_null(lookup(&c, "Bearer \t"));
}

/* ---- pg_keys_allowed ---- */

static void test_allowed_star(void **state)
{
    (void)state;
    struct pg_allow al[] = { { .upstream = -1, .methods = PG_M_ALL } };
    struct pg_consumer k = { .name = "ops", .allow = al, .nallow = 1 };
    assert_true(pg_keys_allowed(&k, 0, PG_M_GET));
    assert_true(pg_keys_allowed(&k, 3, PG_M_POST));
    assert_true(pg_keys_allowed(&k, 7, PG_M_DELETE));
    assert_true(pg_keys_allowed(&k, 1, PG_M_OPTIONS));
}

static void test_allowed_upstream_all_methods(void **state)
{
    (void)state;
    struct pg_allow al[] = { { .upstream = 2, .methods = PG_M_ALL } };
    struct pg_consumer k = { .name = "billing", .allow = al, .nallow = 1 };
    const unsigned ms[] = { PG_M_GET,   PG_M_HEAD,   PG_M_POST,   PG_M_PUT,
                            PG_M_PATCH, PG_M_DELETE, PG_M_OPTIONS };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        assert_true(pg_keys_allowed(&k, 2, ms[i]));
        assert_false(pg_keys_allowed(&k, 1, ms[i]));
        assert_false(pg_keys_allowed(&k, 3, ms[i]));
    }
}

static void test_allowed_narrowed_methods(void **state)
{
    (void)state;
    /* allow: [navixy, "panelica:GET", "openpanel:GET,POST"] with navixy=0, panelica=1,
     * openpanel=2 */
    struct pg_allow al[] = {
        { .upstream = 0, .methods = PG_M_ALL },
        { .upstream = 1, .methods = PG_M_GET },
        { .upstream = 2, .methods = PG_M_GET | PG_M_POST },
    };
    struct pg_consumer k = { .name = "billing", .allow = al, .nallow = 3 };
    assert_true(pg_keys_allowed(&k, 1, PG_M_GET));
    assert_false(pg_keys_allowed(&k, 1, PG_M_POST));
    assert_false(pg_keys_allowed(&k, 1, PG_M_DELETE));
    assert_false(pg_keys_allowed(&k, 1, PG_M_HEAD));
    assert_true(pg_keys_allowed(&k, 2, PG_M_GET));
    assert_true(pg_keys_allowed(&k, 2, PG_M_POST));
    assert_false(pg_keys_allowed(&k, 2, PG_M_PUT));
    assert_true(pg_keys_allowed(&k, 0, PG_M_DELETE));
}

static void test_allowed_other_upstream(void **state)
{
    (void)state;
    struct pg_allow al[] = { { .upstream = 1, .methods = PG_M_GET } };
    struct pg_consumer k = { .name = "ro", .allow = al, .nallow = 1 };
    assert_false(pg_keys_allowed(&k, 0, PG_M_GET));
    assert_false(pg_keys_allowed(&k, 2, PG_M_GET));
    assert_true(pg_keys_allowed(&k, 1, PG_M_GET));
}

static void test_allowed_empty_list_and_unknown_method(void **state)
{
    (void)state;
    struct pg_consumer none = { .name = "none", .allow = NULL, .nallow = 0 };
    assert_false(pg_keys_allowed(&none, 0, PG_M_GET));
    struct pg_allow al[] = { { .upstream = -1, .methods = PG_M_ALL } };
    struct pg_consumer k = { .name = "ops", .allow = al, .nallow = 1 };
    assert_false(pg_keys_allowed(&k, 0, 0)); /* pg_method_bit() == 0: unknown method */
}

/* ---- pg_keys_generate ---- */

static void assert_key_format(const char *s)
{
    assert_int_equal(strlen(s), 44);
    assert_memory_equal(s, "pgk_", 4);
    for (size_t i = 4; i < 44; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            fail_msg("byte %zu of \"%s\" is not lowercase hex", i, s);
    }
}

static void test_generate_format(void **state)
{
    (void)state;
    char out[45];
    memset(out, 'X', sizeof out);
    assert_int_equal(pg_keys_generate(out, sizeof out), 0);
    assert_int_equal(out[44], '\0');
    assert_key_format(out);
}

static void test_generate_differs(void **state)
{
    (void)state;
    char a[64], b[64];
    assert_int_equal(pg_keys_generate(a, sizeof a), 0);
    assert_int_equal(pg_keys_generate(b, sizeof b), 0);
    assert_key_format(a);
    assert_key_format(b);
    assert_string_not_equal(a, b);
}

static void test_generate_every_digit_random(void **state)
{
    (void)state;
    /* 64 keys: a digit position that never changes is not random (chance 16^-63 per position
     * for a real 160-bit key). */
    char keys[64][45];
    for (size_t i = 0; i < 64; i++) {
        assert_int_equal(pg_keys_generate(keys[i], sizeof keys[i]), 0);
        assert_key_format(keys[i]);
    }
    for (size_t pos = 4; pos < 44; pos++) {
        bool varies = false;
        for (size_t i = 1; i < 64; i++)
            varies |= keys[i][pos] != keys[0][pos];
        if (!varies)
            fail_msg("hex digit %zu is the same in 64 generated keys", pos - 4);
    }
}

static void test_generate_too_small(void **state)
{
    (void)state;
    char out[45];
    memset(out, 'X', sizeof out);
    assert_int_equal(pg_keys_generate(out, 44), -1);
    assert_int_equal(pg_keys_generate(out, 0), -1);
    assert_int_equal(pg_keys_generate(out, 4), -1);
    /* nothing was written on refusal */
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 'X');
}

static void test_generate_key_roundtrip(void **state)
{
    (void)state;
    /* A generated key, once hashed into a consumer, is found by lookup. */
    char key[45], authz[64];
    assert_int_equal(pg_keys_generate(key, sizeof key), 0);
    struct pg_allow al[] = { { .upstream = -1, .methods = PG_M_ALL } };
    struct pg_consumer k = { .name = "gen", .allow = al, .nallow = 1 };
    pg_key_hash(key, strlen(key), k.key_sha256);
    struct pg_conf c;
    memset(&c, 0, sizeof c);
    c.consumers = &k;
    c.nconsumers = 1;
    memcpy(authz, "Bearer ", 7);
    memcpy(authz + 7, key, 45);
    assert_ptr_equal(pg_keys_lookup(&c, authz, strlen(authz)), &k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_abc),
        cmocka_unit_test(test_hash_empty),
        cmocka_unit_test(test_hash_uses_length_not_nul),
        cmocka_unit_test(test_hash_generated_key),
        cmocka_unit_test_setup(test_lookup_bearer_matches, setup_conf),
        cmocka_unit_test_setup(test_lookup_scheme_case_insensitive, setup_conf),
        cmocka_unit_test_setup(test_lookup_extra_spaces_trimmed, setup_conf),
        cmocka_unit_test_setup(test_lookup_uses_length_not_nul, setup_conf),
        cmocka_unit_test_setup(test_lookup_wrong_key, setup_conf),
        cmocka_unit_test_setup(test_lookup_one_byte_off, setup_conf),
        cmocka_unit_test_setup(test_lookup_other_schemes, setup_conf),
        cmocka_unit_test_setup(test_lookup_empty, setup_conf),
        cmocka_unit_test_setup(test_lookup_two_consumers, setup_conf),
        cmocka_unit_test(test_lookup_no_consumers),
        cmocka_unit_test(test_lookup_empty_token_never_matches),
        cmocka_unit_test(test_allowed_star),
        cmocka_unit_test(test_allowed_upstream_all_methods),
        cmocka_unit_test(test_allowed_narrowed_methods),
        cmocka_unit_test(test_allowed_other_upstream),
        cmocka_unit_test(test_allowed_empty_list_and_unknown_method),
        cmocka_unit_test(test_generate_format),
        cmocka_unit_test(test_generate_differs),
        cmocka_unit_test(test_generate_every_digit_random),
        cmocka_unit_test(test_generate_too_small),
        cmocka_unit_test(test_generate_key_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
