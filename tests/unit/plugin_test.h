/* plugin_test.h -- helpers shared by the plugin unit tests: a state filled through the plugin's
 * key table (as conf.c fills it), init, deinit, classify and the headers sign added. Define
 * PT_OPS as the ops table under test before including this. */
#ifndef PG_PLUGIN_TEST_H
#define PG_PLUGIN_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#define PT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PT_ASAN 1
#endif
#endif
#ifdef PT_ASAN
size_t __sanitizer_get_current_allocated_bytes(void); /* sanitizer/allocator_interface.h */
#else
#include <malloc.h>
#endif

#include "plugins/plugin.h"

/* The config key `name`, which must exist and have this type. */
static inline const struct pg_conf_key *pt_key(const char *name, enum pg_conf_type type)
{
    for (const struct pg_conf_key *k = PT_OPS->keys; k->name; k++)
        if (strcmp(k->name, name) == 0) {
            assert_int_equal(k->type, type);
            return k;
        }
    fail_msg("no config key '%s'", name);
    return NULL;
}

static inline void *pt_slot(void *st, const char *name, enum pg_conf_type type)
{
    return (char *)st + pt_key(name, type)->offset;
}

/* Store (v, n) as the secret `name`, replacing one stored before. */
static inline void pt_set_secret_n(void *st, const char *name, const char *v, size_t n)
{
    struct pg_secret *s = pt_slot(st, name, PG_CONF_SECRET);
    pg_secret_free(s);
    s->p = malloc(n + 1);
    assert_non_null(s->p);
    memcpy(s->p, v, n);
    s->p[n] = '\0';
    s->n = n;
}

static inline void pt_set_secret(void *st, const char *name, const char *v)
{
    pt_set_secret_n(st, name, v, strlen(v));
}

static inline void pt_set_string(void *st, const char *name, const char *v)
{
    char **p = pt_slot(st, name, PG_CONF_STRING);
    free(*p);
    *p = strdup(v);
    assert_non_null(*p);
}

static inline void pt_set_ms(void *st, const char *name, uint64_t ms)
{
    memcpy(pt_slot(st, name, PG_CONF_DURATION), &ms, sizeof ms);
}

/* A zeroed state, as the core allocates it. */
static inline void *pt_new(void)
{
    void *st = calloc(1, PT_OPS->state_size);
    assert_non_null(st);
    return st;
}

/* init must succeed. */
static inline void pt_init_ok(void *st)
{
    struct pg_err err = { 0 };
    if (PT_OPS->init(st, &err))
        fail_msg("init failed: %s", err.msg);
}

static inline void pt_drop(void *st)
{
    PT_OPS->deinit(st);
    free(st);
}

/* Heap bytes in use now (ASan's count under ASan, glibc's arenas otherwise): a state filled and
 * dropped must give back every byte it took, which a plain build checks as well. */
static inline size_t pt_heap_in_use(void)
{
#ifdef PT_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

/* deinit on st (filled in any part, init run or not): every pointer a config key stored is
 * released and cleared, and the heap is back to `before` once st itself is freed. */
static inline void pt_drop_checked(void *st, size_t before)
{
    PT_OPS->deinit(st);
    for (const struct pg_conf_key *k = PT_OPS->keys; k->name; k++) {
        const char *slot = (const char *)st + k->offset;
        if (k->type == PG_CONF_SECRET) {
            const struct pg_secret *s = (const struct pg_secret *)(const void *)slot;
            if (s->p || s->n)
                fail_msg("deinit kept the secret '%s'", k->name);
        } else if (k->type == PG_CONF_STRING) {
            char *p;
            memcpy(&p, slot, sizeof p);
            if (p)
                fail_msg("deinit kept the string '%s'", k->name);
        }
    }
    free(st);
    assert_int_equal(pt_heap_in_use(), before);
}

/* Classify an answer whose body is (body, n); err is cleared first. */
static inline enum pg_verdict pt_classify_n(void *st, int status, const char *body, size_t n,
                                            struct pg_err *err)
{
    struct pg_in_resp resp = { status, body, n, "application/json", 16 };
    memset(err, 0, sizeof *err);
    return PT_OPS->classify(st, &resp, err);
}

/* Classify an answer with a NUL-terminated body, or none (NULL). */
static inline enum pg_verdict pt_classify(void *st, int status, const char *body,
                                          struct pg_err *err)
{
    return pt_classify_n(st, status, body, body ? strlen(body) : 0, err);
}

/* The value of the header sign added as `name`, NULL if none; added twice fails. */
static inline const char *pt_header(const struct pg_out_req *r, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < r->nhdr; i++)
        if (strcmp(r->hdr[i].name, name) == 0) {
            if (found)
                fail_msg("header %s added twice", name);
            found = r->hdr[i].value;
        }
    return found;
}

#endif
