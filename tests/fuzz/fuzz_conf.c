/* fuzz_conf.c -- libFuzzer target for the config loader (gateway/conf.c, cwalk.c): every input
 * is a YAML file, loaded from memory with pg_conf_load_string as "fuzz.yaml" (which also runs each
 * plugin's init through the key tables), and the snapshot is freed again (LeakSanitizer sees
 * what a load or a refusal leaves behind).
 *
 * Checked: a refusal says why, prefixed with the file name, NUL-terminated in the buffer; a
 * secret read from ${PG_FUZZ_SECRET} as a password, api_secret or token never shows up in a
 * message (any string value may be a ${NAME}, and a plain one may be quoted); a loaded snapshot has
 * refs 1, unique upstream names that pg_conf_upstream finds, url_len matching url, and an auth
 * state exactly when an auth type. `file:` values read only regular files, bounded (cwalk.c), so no
 * input can block the loader on a FIFO or /dev/zero. Built with replay.c it is a plain program over
 * the files named on its command line. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf.h"
#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fz-s3cr3t-7f1c9a"
#define ERRCAP 512

/* Does the input name PG_FUZZ_SECRET only as the value of a secret key (password, api_secret,
 * token: secrets in every adapter that has them) and never spell the value out? Any string
 * value may be a whole ${NAME}, and a plain string (an auth type, a url) is quoted in messages,
 * so only then must the secret stay out of every message. */
static bool secret_only_as_secret(const uint8_t *data, size_t size)
{
    static const char name[] = "PG_FUZZ_SECRET";
    static const char *const keys[] = { "password:", "api_secret:", "token:" };
    const char *p = (const char *)data, *e = p + size;
    if (memmem(p, size, SECRET, sizeof SECRET - 1))
        return false;
    for (const char *q = p; (q = memmem(q, (size_t)(e - q), name, sizeof name - 1)); q++) {
        const char *b = q;
        if (b - p < 2 || b[-1] != '{' || b[-2] != '$')
            return false;
        b -= 2;
        while (b > p && (b[-1] == ' ' || b[-1] == '"' || b[-1] == '\''))
            b--;
        bool ok = false;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            size_t kn = strlen(keys[i]);
            ok = ok || ((size_t)(b - p) >= kn && !memcmp(b - kn, keys[i], kn));
        }
        if (!ok)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool env_set;
    if (!env_set) {
        CHECK(setenv("PG_FUZZ_SECRET", SECRET, 1) == 0);
        env_set = true;
    }
    if (size > (1u << 20))
        return 0;
    char err[ERRCAP + 1];
    err[ERRCAP] = 'Z'; /* a canary past the capacity given */
    struct pg_conf *c = pg_conf_load_string("fuzz.yaml", (const char *)data, size, err, ERRCAP);
    CHECK(err[ERRCAP] == 'Z');
    if (!c) {
        CHECK(memchr(err, '\0', ERRCAP));
        CHECK(strncmp(err, "fuzz.yaml", 9) == 0 && (err[9] == ':' || err[9] == '\0'));
        CHECK(strlen(err) > 10);
        if (secret_only_as_secret(data, size))
            CHECK(!strstr(err, SECRET));
        return 0;
    }
    CHECK(c->refs == 1);
    CHECK(c->public_url && c->listen_address);
    for (size_t i = 0; i < c->nupstreams; i++) {
        const struct pg_upstream *u = &c->upstreams[i];
        CHECK(u->name && u->url && u->name_len == strlen(u->name) && u->url_len == strlen(u->url));
        CHECK(pg_conf_upstream(c, u->name, u->name_len) == (int)i);
        CHECK(!u->auth == !u->auth_state);
    }
    for (size_t i = 0; i < c->nconsumers; i++)
        CHECK(c->consumers[i].name);
    /* a second reference is counted and given back */
    pg_conf_ref(c);
    pg_conf_unref(c);
    CHECK(c->refs == 1);
    pg_conf_unref(c);
    return 0;
}
