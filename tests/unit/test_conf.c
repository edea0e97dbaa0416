/* test_conf.c -- config loader: good files and their values and defaults, bad files and their
 * exact FILE:LINE:COL, the value parsers, and the static auth adapter through its ops table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/conf.h"
#include "gateway/cwalk.h"

#define ERRCAP 512

/* 64 hex digits: sha256 placeholders for consumers */
#define HEX_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define HEX_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define UP "upstreams:\n  - {name: a, url: http://a.test}\n"

static struct pg_conf *load(const char *yaml, char *err)
{
    return pg_conf_load_string("t.yaml", yaml, strlen(yaml), err, ERRCAP);
}

static struct pg_conf *load_ok(const char *yaml)
{
    char err[ERRCAP];
    struct pg_conf *c = load(yaml, err);
    if (!c)
        fail_msg("unexpected error: %s", err);
    return c;
}

/* The load fails, the message starts with `prefix` (file:line:col: path:) and names `word`. */
static void expect_err(const char *yaml, const char *prefix, const char *word)
{
    char err[ERRCAP];
    struct pg_conf *c = load(yaml, err);
    if (c) {
        pg_conf_unref(c);
        fail_msg("loaded, expected an error '%s... %s'", prefix, word);
    }
    if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, word))
        fail_msg("got '%s', want prefix '%s' and '%s'", err, prefix, word);
}

/* A temporary file with these contents; the caller unlinks it. */
static void temp_file(char *path, size_t cap, const char *contents)
{
    snprintf(path, cap, "/tmp/pg_test_conf_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(contents);
    assert_int_equal(write(fd, contents, n), (ssize_t)n);
    close(fd);
}

/* The header values the upstream's auth adds to a request, "Name: value|Name: value". */
static void signed_headers(const struct pg_upstream *u, char *out, size_t cap)
{
    struct pg_out_req r = { .method = "GET", .target = "/x", .target_len = 2 };
    assert_int_equal(u->auth->sign(u->auth_state, NULL, &r, 0), 0);
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r.nhdr; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s: %s", i ? "|" : "", r.hdr[i].name,
                              r.hdr[i].value);
}

/* ---- good files ---- */

/* SPEC section 7's example, every key, with values that differ from the defaults. */
static void good_full_example(void **state)
{
    (void)state;
    char f[64], yaml[4096];
    temp_file(f, sizeof f, "pem\n");
    snprintf(yaml, sizeof yaml,
             "listen: {address: 0.0.0.0, port: 8443, tls: {cert: %s, key: %s}}\n"
             "public_url: https://gw.example.com/\n"
             "workers: 4\n"
             "limits: {max_header_bytes: 32KiB, max_body_bytes: 10MiB,\n"
             "         client_timeout: 15s, max_connections: 500}\n"
             "access_log: /var/log/panelgate.log\n"
             "metrics: {public: true}\n"
             "drain_timeout: 2500ms\n"
             "rate_limit_store: {type: redis, url: \"redis://r:6379/0\", on_error: deny,\n"
             "                   session_key: \"" HEX_A "\"}\n"
             "consumers:\n"
             "  - {name: billing, key: \"sha256:" HEX_A "\", allow: [navixy, \"panelica:GET\"],\n"
             "     rate_limit: {rate: 50/s, burst: 100}}\n"
             "  - {name: ops, key: \"sha256:" HEX_B "\", admin: true, allow: [\"*\"]}\n"
             "upstreams:\n"
             "  - name: navixy\n"
             "    url: https://api.eu.navixy.com/v2\n"
             "    timeout: 1min\n"
             "    tls: {verify: false, ca_file: %s}\n"
             "    auth: {type: static, bearer: tok}\n"
             "    rate_limit: {rate: 10/s, burst: 20, mode: queue, max_wait: 2s}\n"
             "    routes: [{path: /track/read, rate_limit: {rate: 24/min}}]\n"
             "  - name: panelica\n"
             "    url: http://127.0.0.1:9000/\n",
             f, f, f);
    struct pg_conf *c = load_ok(yaml);
    unlink(f);

    assert_int_equal(c->refs, 1);
    assert_string_equal(c->file, "t.yaml");
    assert_string_equal(c->listen_address, "0.0.0.0");
    assert_int_equal(c->listen_port, 8443);
    assert_string_equal(c->tls_cert, f);
    assert_string_equal(c->tls_key, f);
    assert_string_equal(c->public_url, "https://gw.example.com");
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->max_header_bytes, 32768);
    assert_int_equal(c->max_body_bytes, 10u << 20);
    assert_int_equal(c->client_timeout_ms, 15000);
    assert_int_equal(c->max_connections, 500);
    assert_string_equal(c->access_log, "/var/log/panelgate.log");
    assert_true(c->metrics_public);
    assert_int_equal(c->drain_timeout_ms, 2500);
    assert_int_equal(c->store, PG_STORE_REDIS);
    assert_string_equal(c->redis_url, "redis://r:6379/0");
    assert_false(c->redis_on_error_allow);

    assert_int_equal(c->nconsumers, 2);
    const struct pg_consumer *b = &c->consumers[0], *o = &c->consumers[1];
    assert_string_equal(b->name, "billing");
    assert_int_equal(b->key_sha256[0], 0x00);
    assert_int_equal(b->key_sha256[1], 0x11);
    assert_int_equal(b->key_sha256[31], 0xff);
    assert_false(b->admin);
    assert_int_equal(b->nallow, 2);
    assert_int_equal(b->allow[0].upstream, 0); /* upstreams come later in the file */
    assert_int_equal(b->allow[0].methods, PG_M_ALL);
    assert_int_equal(b->allow[1].upstream, 1);
    assert_int_equal(b->allow[1].methods, PG_M_GET);
    assert_true(b->rl.set);
    assert_int_equal(b->rl.rate_n, 50);
    assert_int_equal(b->rl.rate_period_ms, 1000);
    assert_int_equal(b->rl.burst, 100);
    assert_int_equal(b->rl.mode, PG_RL_REJECT);
    assert_string_equal(o->name, "ops");
    assert_int_equal(o->key_sha256[0], 0xff);
    assert_true(o->admin);
    assert_int_equal(o->nallow, 1);
    assert_int_equal(o->allow[0].upstream, -1);
    assert_int_equal(o->allow[0].methods, PG_M_ALL);
    assert_false(o->rl.set);

    assert_int_equal(c->nupstreams, 2);
    const struct pg_upstream *n = &c->upstreams[0], *p = &c->upstreams[1];
    assert_string_equal(n->name, "navixy");
    assert_int_equal(n->name_len, 6);
    assert_string_equal(n->url, "https://api.eu.navixy.com/v2");
    assert_int_equal(n->url_len, strlen("https://api.eu.navixy.com/v2"));
    assert_int_equal(n->timeout_ms, 60000);
    assert_false(n->tls_verify);
    assert_string_equal(n->tls_ca_file, f);
    assert_ptr_equal(n->auth, &pg_auth_static);
    assert_non_null(n->auth_state);
    assert_true(n->rl.set);
    assert_int_equal(n->rl.rate_n, 10);
    assert_int_equal(n->rl.burst, 20);
    assert_int_equal(n->rl.mode, PG_RL_QUEUE);
    assert_int_equal(n->rl.max_wait_ms, 2000);
    assert_int_equal(n->nroutes, 1);
    assert_string_equal(n->routes[0].path, "/track/read");
    assert_int_equal(n->routes[0].path_len, 11);
    assert_int_equal(n->routes[0].rl.rate_n, 24);
    assert_int_equal(n->routes[0].rl.rate_period_ms, 60000);
    assert_int_equal(n->routes[0].rl.burst, 1); /* 24/min is under one token a second */

    assert_string_equal(p->url, "http://127.0.0.1:9000");
    assert_null(p->auth);
    assert_null(p->auth_state);
    assert_false(p->rl.set);
    assert_int_equal(p->nroutes, 0);
    assert_int_equal(pg_conf_upstream(c, "panelica", 8), 1);
    assert_int_equal(pg_conf_upstream(c, "panelicaX", 8), 1); /* (p, n): only n bytes count */
    assert_int_equal(pg_conf_upstream(c, "nav", 3), -1);
    pg_conf_unref(c);
}

static void good_defaults(void **state)
{
    (void)state;
    struct pg_conf *c = load_ok(UP);
    assert_string_equal(c->listen_address, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_null(c->tls_cert);
    assert_null(c->tls_key);
    assert_string_equal(c->public_url, "http://127.0.0.1:8080");
    assert_int_equal(c->workers, 1);
    assert_int_equal(c->max_header_bytes, 16384);
    assert_int_equal(c->max_body_bytes, 10u << 20);
    assert_int_equal(c->client_timeout_ms, 30000);
    assert_int_equal(c->max_connections, 10000);
    assert_string_equal(c->access_log, "stdout");
    assert_int_equal(c->access_log_format, PG_ALOG_TEXT);
    assert_false(c->metrics_public);
    assert_int_equal(c->drain_timeout_ms, 10000);
    assert_int_equal(c->store, PG_STORE_LOCAL);
    assert_null(c->redis_url);
    assert_true(c->redis_on_error_allow);
    assert_int_equal(c->nconsumers, 0);
    assert_int_equal(c->nupstreams, 1);
    assert_int_equal(c->upstreams[0].timeout_ms, 10000);
    assert_true(c->upstreams[0].tls_verify);
    assert_null(c->upstreams[0].tls_ca_file);
    assert_false(c->upstreams[0].rl.set);
    pg_conf_unref(c);
}

static void good_small_values(void **state)
{
    (void)state;
    struct pg_conf *c = load_ok("listen: {address: '::1', port: 9}\n"
                                "workers: auto\n"
                                "access_log: off\n"
                                "consumers:\n"
                                "  - name: c\n"
                                "    key: \"sha256:" HEX_A "\"\n"
                                "    allow: [\"*:GET,HEAD\", \"b:POST, DELETE\"]\n"
                                "    rate_limit: {rate: 1500/min}\n"
                                "upstreams:\n"
                                "  - {name: a, url: http://a.test///}\n"
                                "  - name: b\n"
                                "    url: http://b.test\n"
                                "    rate_limit: {rate: 1/hour, mode: reject}\n"
                                "    routes:\n"
                                "      - {path: /x/, rate_limit: {rate: 3/s}}\n"
                                "      - {path: /x/y, rate_limit: {rate: 7/s, burst: 1}}\n"
                                "      - {path: /z, rate_limit: {rate: 90/min}}\n");
    assert_string_equal(c->public_url, "http://[::1]:9");
    assert_int_equal(c->workers, 0);
    assert_null(c->access_log);
    const struct pg_consumer *k = &c->consumers[0];
    assert_int_equal(k->allow[0].upstream, -1);
    assert_int_equal(k->allow[0].methods, PG_M_GET | PG_M_HEAD);
    assert_int_equal(k->allow[1].upstream, 1);
    assert_int_equal(k->allow[1].methods, PG_M_POST | PG_M_DELETE);
    assert_int_equal(k->rl.burst, 25); /* 1500/min = 25 a second */
    assert_string_equal(c->upstreams[0].url, "http://a.test");
    assert_int_equal(c->upstreams[0].url_len, 13);
    const struct pg_upstream *b = &c->upstreams[1];
    assert_int_equal(b->rl.rate_period_ms, 3600000);
    assert_int_equal(b->rl.burst, 1);
    assert_int_equal(b->nroutes, 3);
    assert_int_equal(b->routes[0].rl.burst, 3);
    assert_int_equal(b->routes[1].rl.burst, 1);
    assert_int_equal(b->routes[2].rl.burst, 2); /* 1.5 a second, rounded up */
    pg_conf_unref(c);
}

/* access_log: the plain form (a path, stdout or off: format text) and {path, format}. */
static void good_access_log_forms(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *path; /* NULL: off */
        int format;
    } cases[] = {
        { "access_log: /var/log/pg.log\n", "/var/log/pg.log", PG_ALOG_TEXT },
        { "access_log: stdout\n", "stdout", PG_ALOG_TEXT },
        { "access_log: off\n", NULL, PG_ALOG_TEXT },
        { "access_log: {path: /var/log/pg.json, format: json}\n", "/var/log/pg.json",
          PG_ALOG_JSON },
        { "access_log: {path: stdout, format: text}\n", "stdout", PG_ALOG_TEXT },
        { "access_log: {format: json}\n", "stdout", PG_ALOG_JSON },
        { "access_log: {path: /a.log}\n", "/a.log", PG_ALOG_TEXT },
        { "access_log: {path: off, format: json}\n", NULL, PG_ALOG_JSON },
        { "access_log:\n  path: \"${PG_TEST_ALOG}\"\n  format: json\n", "/env/a.log",
          PG_ALOG_JSON },
        { "access_log: {}\n", "stdout", PG_ALOG_TEXT },
    };
    setenv("PG_TEST_ALOG", "/env/a.log", 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "%s%s", cases[i].yaml, UP);
        struct pg_conf *c = load_ok(yaml);
        if (cases[i].path)
            assert_string_equal(c->access_log, cases[i].path);
        else
            assert_null(c->access_log);
        assert_int_equal(c->access_log_format, cases[i].format);
        pg_conf_unref(c);
    }
    unsetenv("PG_TEST_ALOG");
}

static void good_env_and_file_secrets(void **state)
{
    (void)state;
    char f1[64], f2[64], yaml[1024];
    temp_file(f1, sizeof f1, "s3cret\n");
    temp_file(f2, sizeof f2, "pw\n\n");
    setenv("PG_TEST_TOKEN", "from-env", 1);
    setenv("PG_TEST_URL", "http://env.test/", 1);
    snprintf(yaml, sizeof yaml,
             "upstreams:\n"
             "  - name: a\n"
             "    url: ${PG_TEST_URL}\n"
             "    auth: {type: static, bearer: \"${PG_TEST_TOKEN}\"}\n"
             "  - name: b\n"
             "    url: http://b.test\n"
             "    auth: {type: static, headers: {X-Api-Key: \"file:%s\", X-Other: lit}}\n"
             "  - name: c\n"
             "    url: http://c.test\n"
             "    auth: {type: static, basic: {user: u, password: \"file:%s\"}}\n",
             f1, f2);
    struct pg_conf *c = load_ok(yaml);
    unlink(f1);
    unlink(f2);
    char got[256];
    assert_string_equal(c->upstreams[0].url, "http://env.test");
    signed_headers(&c->upstreams[0], got, sizeof got);
    assert_string_equal(got, "Authorization: Bearer from-env");
    signed_headers(&c->upstreams[1], got, sizeof got);
    assert_string_equal(got, "X-Api-Key: s3cret|X-Other: lit");
    /* only one trailing newline is dropped: the password is "pw\n" */
    signed_headers(&c->upstreams[2], got, sizeof got);
    assert_string_equal(got, "Authorization: Basic dTpwdwo=");
    pg_conf_unref(c);
    unsetenv("PG_TEST_TOKEN");
    unsetenv("PG_TEST_URL");
}

static void good_static_basic(void **state)
{
    (void)state;
    struct pg_conf *c = load_ok("upstreams:\n"
                                "  - name: a\n"
                                "    url: http://a.test\n"
                                "    auth:\n"
                                "      type: static\n"
                                "      basic: {user: Aladdin, password: open sesame}\n");
    const struct pg_upstream *u = &c->upstreams[0];
    char got[256];
    signed_headers(u, got, sizeof got);
    assert_string_equal(got, "Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    /* no login, no verdicts, no reserved paths: a static credential never changes */
    assert_null(u->auth->build_login);
    assert_null(u->auth->classify);
    assert_null(u->auth->reserved);
    /* sign refuses to overflow the request's header slots */
    struct pg_out_req r = { .nhdr = PG_OUT_MAX_HEADERS };
    assert_int_equal(u->auth->sign(u->auth_state, NULL, &r, 0), -1);
    pg_conf_unref(c);
}

static void good_refcount_and_file(void **state)
{
    (void)state;
    char f[64], err[ERRCAP];
    temp_file(f, sizeof f, UP);
    struct pg_conf *c = pg_conf_load(f, err, sizeof err);
    unlink(f);
    assert_non_null(c);
    assert_string_equal(c->file, f);
    pg_conf_ref(c);
    assert_int_equal(c->refs, 2);
    pg_conf_unref(c);
    assert_int_equal(c->refs, 1);
    assert_string_equal(c->upstreams[0].name, "a");
    pg_conf_unref(c);
    pg_conf_unref(NULL);
}

/* ---- bad files: exact position, and a word of the message ---- */

static void bad_load_missing_file(void **state)
{
    (void)state;
    char err[ERRCAP];
    assert_null(pg_conf_load("/nonexistent/pg.yaml", err, sizeof err));
    assert_string_equal(err, "/nonexistent/pg.yaml: cannot read: No such file or directory");
}

static void bad_yaml_syntax(void **state)
{
    (void)state;
    expect_err("listen: {port: 1\n" UP, "t.yaml:2:", "invalid YAML");
    expect_err("a: b: c\n", "t.yaml:1:5: ", "invalid YAML: mapping values are not allowed");
}

static void bad_empty_and_not_a_mapping(void **state)
{
    (void)state;
    expect_err("", "t.yaml:1:1: ", "empty");
    expect_err("# only a comment\n", "t.yaml:1:1: ", "empty");
    expect_err("- a\n- b\n", "t.yaml:1:1: ", "expected a mapping, got a list");
    expect_err(UP "---\n" UP, "t.yaml:4:1: ", "only one YAML document");
}

static void bad_unknown_key_top(void **state)
{
    (void)state;
    expect_err("workers: 1\nlisen: {port: 1}\n" UP, "t.yaml:2:1: ", "unknown key 'lisen'");
}

static void bad_unknown_key_nested(void **state)
{
    (void)state;
    expect_err("listen: {adress: x}\n" UP, "t.yaml:1:10: listen: ", "unknown key 'adress'");
    expect_err("listen: {tls: {cert: /dev/null, key: /dev/null, ca: x}}\n" UP,
               "t.yaml:1:49: listen.tls: ", "unknown key 'ca'");
}

static void bad_unknown_key_in_auth(void **state)
{
    (void)state;
    expect_err("upstreams:\n"
               "  - name: a\n"
               "    url: http://a.test\n"
               "    auth: {type: static, pasword: x}\n",
               "t.yaml:4:26: upstreams[0].auth: ", "unknown key 'pasword'");
}

static void bad_wrong_type(void **state)
{
    (void)state;
    expect_err("listen: [1, 2]\n" UP, "t.yaml:1:9: listen: ", "expected a mapping, got a list");
    expect_err("upstreams: {name: a}\n", "t.yaml:1:12: upstreams: ", "expected a list");
    expect_err("workers: [1]\n" UP, "t.yaml:1:10: workers: ", "expected a value, got a list");
    expect_err("public_url:\n" UP, "t.yaml:1:12: public_url: ", "got nothing");
    expect_err("metrics: {public: yes}\n" UP, "t.yaml:1:19: metrics.public: ", "true or false");
}

static void bad_access_log(void **state)
{
    (void)state;
    expect_err("access_log: {path: /a.log, format: yaml}\n" UP,
               "t.yaml:1:36: access_log.format: ", "bad value 'yaml' (one of: text, json)");
    expect_err("access_log: {path: /a.log, fmt: json}\n" UP,
               "t.yaml:1:28: access_log: ", "unknown key 'fmt'");
    expect_err("access_log: {path: [/a.log]}\n" UP,
               "t.yaml:1:20: access_log.path: ", "expected a value, got a list");
    expect_err("access_log: {path: {file: /a.log}}\n" UP,
               "t.yaml:1:20: access_log.path: ", "expected a value, got a mapping");
    expect_err("access_log: {format: [json]}\n" UP,
               "t.yaml:1:22: access_log.format: ", "expected a value, got a list");
    expect_err("access_log: {format: json, format: text}\n" UP,
               "t.yaml:1:28: access_log: ", "duplicate key 'format'");
    expect_err("access_log: [stdout]\n" UP, "t.yaml:1:13: access_log: ", "got a list");
    expect_err("access_log:\n" UP, "t.yaml:1:12: access_log: ", "expected a value, got nothing");
    expect_err("access_log: ''\n" UP, "t.yaml:1:13: access_log: ", "empty path");
    expect_err("access_log: {path: ''}\n" UP, "t.yaml:1:20: access_log.path: ", "empty path");
    expect_err("access_log: {path: \"${PG_TEST_UNSET_VAR}\"}\n" UP,
               "t.yaml:1:20: access_log.path: ", "'PG_TEST_UNSET_VAR' is not set");
    expect_err("access_log:\n  path: /a.log\n  format: JSON\n" UP,
               "t.yaml:3:11: access_log.format: ", "one of: text, json");
}

static void bad_missing_required(void **state)
{
    (void)state;
    expect_err("workers: 2\n", "t.yaml:1:1: ", "missing required key 'upstreams'");
    expect_err("upstreams:\n  - {name: a}\n",
               "t.yaml:2:5: upstreams[0]: ", "missing required key 'url'");
    expect_err("upstreams:\n"
               "  - name: a\n"
               "    url: http://a.test\n"
               "    auth: {type: static, basic: {user: u}}\n",
               "t.yaml:4:33: upstreams[0].auth.basic: ", "missing required key 'password'");
    expect_err("upstreams:\n  - {name: a, url: http://a.test, auth: {bearer: x}}\n",
               "t.yaml:2:41: upstreams[0].auth: ", "missing required key 'type'");
    expect_err("listen: {tls: {cert: /dev/null}}\n" UP,
               "t.yaml:1:15: listen.tls: ", "missing required key 'key'");
    expect_err("consumers: [{name: c}]\n" UP,
               "t.yaml:1:13: consumers[0]: ", "missing required key 'key'");
}

static void bad_durations(void **state)
{
    (void)state;
    expect_err("drain_timeout: 10\n" UP, "t.yaml:1:16: drain_timeout: ", "bad duration '10'");
    expect_err("drain_timeout: 10x\n" UP, "t.yaml:1:16: drain_timeout: ", "bad duration '10x'");
    expect_err("drain_timeout: -1s\n" UP, "t.yaml:1:16: drain_timeout: ", "bad duration '-1s'");
    expect_err("drain_timeout: 99999999999999999999s\n" UP,
               "t.yaml:1:16: drain_timeout: ", "bad duration");
    expect_err("drain_timeout: 1.5s\n" UP, "t.yaml:1:16: ", "bad duration");
    expect_err("limits: {client_timeout: 0s}\n" UP,
               "t.yaml:1:26: limits.client_timeout: ", "greater than zero");
}

static void bad_sizes(void **state)
{
    (void)state;
    expect_err("limits: {max_body_bytes: 10MB}\n" UP,
               "t.yaml:1:26: limits.max_body_bytes: ", "bad size '10MB'");
    expect_err("limits: {max_body_bytes: 99999999999GiB}\n" UP, "t.yaml:1:26: ", "bad size");
    expect_err("limits: {max_header_bytes: 0}\n" UP, "t.yaml:1:28: ", "greater than zero");
    expect_err("limits: {max_connections: 10k}\n" UP,
               "t.yaml:1:27: limits.max_connections: ", "bad number");
}

#define RL_UP(rl) "upstreams:\n  - name: a\n    url: http://a.test\n    rate_limit: " rl "\n"

static void bad_rates(void **state)
{
    (void)state;
    expect_err(RL_UP("{rate: 0/s}"),
               "t.yaml:4:24: upstreams[0].rate_limit.rate: ", "bad rate '0/s'");
    expect_err(RL_UP("{rate: 5/week}"),
               "t.yaml:4:24: upstreams[0].rate_limit.rate: ", "bad rate '5/week'");
    expect_err(RL_UP("{rate: 5}"), "t.yaml:4:24: ", "bad rate");
    expect_err(RL_UP("{burst: 5}"),
               "t.yaml:4:17: upstreams[0].rate_limit: ", "missing required key 'rate'");
    expect_err(RL_UP("{rate: 1/s, burst: 0}"),
               "t.yaml:4:36: upstreams[0].rate_limit.burst: ", "greater than zero");
}

static void bad_enum(void **state)
{
    (void)state;
    expect_err(RL_UP("{rate: 1/s, mode: fast}"), "t.yaml:4:35: upstreams[0].rate_limit.mode: ",
               "bad value 'fast' (one of: reject, queue)");
    expect_err("rate_limit_store: {type: memcached}\n" UP,
               "t.yaml:1:26: rate_limit_store.type: ", "one of: local, redis");
}

static void bad_store(void **state)
{
    (void)state;
    expect_err("rate_limit_store: {type: redis}\n" UP,
               "t.yaml:1:19: rate_limit_store: ", "needs a url");
    expect_err("rate_limit_store: {type: redis, url: 'http://r'}\n" UP,
               "t.yaml:1:38: rate_limit_store: ", "redis://");
    expect_err("rate_limit_store: {url: 'redis://r'}\n" UP, "t.yaml:1:19: ", "only for type redis");
    expect_err("rate_limit_store: {type: local, prefix: p}\n" UP,
               "t.yaml:1:19: ", "only for type redis");
    expect_err("rate_limit_store: {type: redis, url: 'redis://r:99999'}\n" UP,
               "t.yaml:1:38: rate_limit_store: ", "bad port");
    expect_err("rate_limit_store: {type: redis, url: 'redis://user@r'}\n" UP,
               "t.yaml:1:38: rate_limit_store: ", "needs a password");
    expect_err("rate_limit_store: {type: redis, url: 'redis://r/x'}\n" UP,
               "t.yaml:1:38: rate_limit_store: ", "bad database");
    expect_err("rate_limit_store: {type: redis, url: 'redis://:${PG_TEST_UNSET_VAR}@r'}\n" UP,
               "t.yaml:1:38: rate_limit_store: ", "'PG_TEST_UNSET_VAR' is not set");
    expect_err("rate_limit_store: {type: redis, url: 'redis://r', prefix: 'a b'}\n" UP,
               "t.yaml:1:59: rate_limit_store: ", "bad prefix");
    expect_err("rate_limit_store: {type: redis, url: 'redis://r', timeout: 11s}\n" UP,
               "t.yaml:1:60: rate_limit_store: ", "at most 10s");
    expect_err("rate_limit_store: {type: redis, url: 'redis://r', session_key: abc}\n" UP,
               "t.yaml:1:64: rate_limit_store: ", "64 hex");
    expect_err("resolver: [\"dns.example\"]\n" UP, "t.yaml:1:12: resolver: ", "bad resolver");
    expect_err("resolver: []\n" UP, "t.yaml:1:11: resolver: ", "1 to 8 servers");
    expect_err("rate_limit_store: {type: redis, url: 'redis://r'}\n"
               "upstreams:\n"
               "  - name: nx\n"
               "    url: http://127.0.0.1:9\n"
               "    auth: {type: navixy_session, login: u, password: p}\n",
               "t.yaml: rate_limit_store: ", "needs session_key");
}

/* redis://:${ENV}@host:port/db is split into its parts, the password read from the environment
 * inside the url; prefix and timeout have their defaults. */
static void good_redis_store(void **state)
{
    (void)state;
    setenv("PG_TEST_REDIS_PW", "fake-redis-pw", 1);
    struct pg_conf *c = load_ok("rate_limit_store: {type: redis,\n"
                                "  url: 'redis://:${PG_TEST_REDIS_PW}@10.0.0.5:6380/3'}\n" UP);
    assert_int_equal(c->store, PG_STORE_REDIS);
    assert_string_equal(c->redis_host, "10.0.0.5");
    assert_int_equal(c->redis_port, 6380);
    assert_string_equal(c->redis_password, "fake-redis-pw");
    assert_int_equal(c->redis_db, 3);
    assert_string_equal(c->redis_prefix, "panelgate");
    assert_int_equal(c->redis_timeout_ms, 50);
    assert_false(c->has_session_key);
    pg_conf_unref(c);
    /* the whole url from the environment, its password holding "${": expanded once, taken as
     * it is (a second expansion would fail and name part of the password) */
    setenv("PG_TEST_REDIS_URL", "redis://:se${cret}pw@10.0.0.5", 1);
    c = load_ok("rate_limit_store: {type: redis, url: '${PG_TEST_REDIS_URL}'}\n" UP);
    assert_string_equal(c->redis_password, "se${cret}pw");
    assert_string_equal(c->redis_host, "10.0.0.5");
    pg_conf_unref(c);
    unsetenv("PG_TEST_REDIS_URL");
    c = load_ok("rate_limit_store: {type: redis, url: 'redis://r', prefix: pg1, timeout: 20ms,\n"
                "  session_key: \"" HEX_A "\"}\n" UP);
    assert_string_equal(c->redis_host, "r");
    assert_int_equal(c->redis_port, 6379);
    assert_null(c->redis_password);
    assert_int_equal(c->redis_db, 0);
    assert_string_equal(c->redis_prefix, "pg1");
    assert_int_equal(c->redis_timeout_ms, 20);
    assert_true(c->has_session_key);
    assert_int_equal(c->session_key[0], 0x00);
    assert_int_equal(c->session_key[31], 0xff);
    pg_conf_unref(c);
}

static void bad_sha256(void **state)
{
    (void)state;
    expect_err("consumers:\n  - {name: c, key: \"sha256:abcd\"}\n" UP,
               "t.yaml:2:20: consumers[0].key: ", "bad key");
    expect_err("consumers:\n  - {name: c, key: \"sha256:" HEX_A "0\"}\n" UP,
               "t.yaml:2:20: ", "bad key");
    expect_err("consumers:\n  - {name: c, key: \"sha256:"
               "g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}\n" UP,
               "t.yaml:2:20: consumers[0].key: ", "bad key");
    expect_err("consumers:\n  - {name: c, key: \"md5:" HEX_A "\"}\n" UP,
               "t.yaml:2:20: ", "bad key");
}

static void bad_duplicate_upstream(void **state)
{
    (void)state;
    expect_err("upstreams:\n  - {name: a, url: http://a.test}\n  - {name: a, url: http://b.test}\n",
               "t.yaml:3:12: upstreams[1]: ", "duplicate upstream name 'a'");
}

static void bad_duplicate_consumer(void **state)
{
    (void)state;
    expect_err("consumers:\n"
               "  - {name: c, key: \"sha256:" HEX_A "\"}\n"
               "  - {name: c, key: \"sha256:" HEX_B "\"}\n" UP,
               "t.yaml:3:12: consumers[1]: ", "duplicate consumer name 'c'");
    expect_err("consumers:\n"
               "  - {name: c, key: \"sha256:" HEX_A "\"}\n"
               "  - {name: d, key: \"sha256:" HEX_A "\"}\n" UP,
               "t.yaml:3:20: consumers[1]: ", "same key as consumer 'c'");
}

static void bad_upstream_names_and_urls(void **state)
{
    (void)state;
    expect_err("upstreams:\n  - {name: _gateway, url: http://a.test}\n",
               "t.yaml:2:12: upstreams[0].name: ", "reserved");
    expect_err("upstreams:\n  - {name: Navixy, url: http://a.test}\n",
               "t.yaml:2:12: upstreams[0].name: ", "bad name 'Navixy'");
    expect_err("upstreams:\n  - {name: a, url: ftp://a.test}\n",
               "t.yaml:2:20: upstreams[0].url: ", "http:// or https://");
    expect_err("upstreams:\n  - {name: a, url: 'http://a.test/?x=1'}\n",
               "t.yaml:2:20: ", "bad url");
    expect_err("upstreams: []\n", "t.yaml:1:12: upstreams: ", "at least one upstream");
    expect_err("public_url: example.com\n" UP, "t.yaml:1:13: public_url: ", "bad url");
}

static void bad_allow_unknown_upstream(void **state)
{
    (void)state;
    expect_err("consumers:\n"
               "  - name: c\n"
               "    key: \"sha256:" HEX_A "\"\n"
               "    allow: [a, b]\n" UP,
               "t.yaml:4:16: consumers[0].allow[1]: ", "unknown upstream 'b'");
    expect_err("consumers:\n"
               "  - name: c\n"
               "    key: \"sha256:" HEX_A "\"\n"
               "    allow: [\"zz:GET\"]\n" UP,
               "t.yaml:4:13: consumers[0].allow[0]: ", "unknown upstream 'zz'");
}

static void bad_allow_unknown_method(void **state)
{
    (void)state;
    expect_err("consumers:\n"
               "  - name: c\n"
               "    key: \"sha256:" HEX_A "\"\n"
               "    allow: [\"a:GET,FETCH\"]\n" UP,
               "t.yaml:4:13: consumers[0].allow[0]: ", "unknown method 'FETCH'");
    expect_err("consumers:\n"
               "  - name: c\n"
               "    key: \"sha256:" HEX_A "\"\n"
               "    allow: [\"a:get\"]\n" UP,
               "t.yaml:4:13: ", "unknown method 'get'");
    expect_err("consumers:\n"
               "  - name: c\n"
               "    key: \"sha256:" HEX_A "\"\n"
               "    allow: [\"a:\"]\n" UP,
               "t.yaml:4:13: ", "unknown method ''");
}

static void bad_env_missing(void **state)
{
    (void)state;
    unsetenv("PG_TEST_SURELY_UNSET");
    expect_err("upstreams:\n"
               "  - name: a\n"
               "    url: http://a.test\n"
               "    auth: {type: static, bearer: \"${PG_TEST_SURELY_UNSET}\"}\n",
               "t.yaml:4:34: upstreams[0].auth.bearer: ",
               "environment variable 'PG_TEST_SURELY_UNSET' is not set");
    expect_err("public_url: ${PG_TEST_SURELY_UNSET}\n" UP,
               "t.yaml:1:13: public_url: ", "'PG_TEST_SURELY_UNSET' is not set");
    expect_err("public_url: ${1BAD}\n" UP, "t.yaml:1:13: ", "malformed environment reference");
}

static void bad_secret_file_missing(void **state)
{
    (void)state;
    expect_err("upstreams:\n"
               "  - name: a\n"
               "    url: http://a.test\n"
               "    auth: {type: static, headers: {X-Key: \"file:/nonexistent/pg-secret\"}}\n",
               "t.yaml:4:43: upstreams[0].auth.headers.X-Key: ",
               "cannot read file '/nonexistent/pg-secret': No such file or directory");
}

/* file: names only a regular file: a FIFO without a writer, /dev/zero or a directory is an
 * error at once (the FIFO used to block the loader in open, /dev/zero was read up to the cap).
 * alarm() turns a hang into a failure. */
static void bad_secret_file_not_regular(void **state)
{
    (void)state;
    char dir[] = "/tmp/pg_test_conf_XXXXXX", fifo[64], yaml[512], err[ERRCAP];
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *paths[] = { fifo, "/dev/zero", dir };
    alarm(5);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        snprintf(yaml, sizeof yaml,
                 "upstreams:\n  - name: a\n    url: http://a.test\n"
                 "    auth: {type: static, bearer: \"file:%s\"}\n",
                 paths[i]);
        char want[128];
        snprintf(want, sizeof want, "cannot read file '%s': not a regular file", paths[i]);
        expect_err(yaml, "t.yaml:4:34: upstreams[0].auth.bearer: ", want);
    }
    /* the config file itself too */
    struct pg_conf *c = pg_conf_load(fifo, err, sizeof err);
    assert_null(c);
    char want[128];
    snprintf(want, sizeof want, "%s: cannot read: not a regular file", fifo);
    assert_string_equal(err, want);
    alarm(0);
    unlink(fifo);
    rmdir(dir);
}

/* A secret file over 64 KiB is refused, not cut. */
static void bad_secret_file_too_big(void **state)
{
    (void)state;
    char f[64], yaml[512];
    size_t n = (64u << 10) + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'k', n);
    big[n] = '\0';
    temp_file(f, sizeof f, big);
    free(big);
    snprintf(yaml, sizeof yaml,
             "upstreams:\n  - name: a\n    url: http://a.test\n"
             "    auth: {type: static, bearer: \"file:%s\"}\n",
             f);
    expect_err(yaml, "t.yaml:4:34: upstreams[0].auth.bearer: ", "File too large");
    unlink(f);
}

static void bad_secret_values(void **state)
{
    (void)state;
    char f[64], yaml[512];
    temp_file(f, sizeof f, "two\nlines\n");
    snprintf(yaml, sizeof yaml,
             "upstreams:\n  - name: a\n    url: http://a.test\n"
             "    auth: {type: static, headers: {X-Key: \"file:%s\"}}\n",
             f);
    expect_err(yaml, "t.yaml:4:43: upstreams[0].auth.headers.X-Key: ", "CR or LF");
    unlink(f);
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n"
               "    auth: {type: static, bearer: ''}\n",
               "t.yaml:4:34: upstreams[0].auth.bearer: ", "empty");
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n"
               "    auth: {type: static, headers: {'Bad Name': x}}\n",
               "t.yaml:4:36: ", "bad header name");
}

static void bad_static_init(void **state)
{
    (void)state;
    expect_err(
        "upstreams:\n  - name: a\n    url: http://a.test\n"
        "    auth: {type: static, bearer: x, basic: {user: u, password: p}}\n",
        "t.yaml:4:11: upstreams[0]: ", "auth: static needs exactly one of headers, bearer, basic");
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n    auth: {type: static}\n",
               "t.yaml:4:11: upstreams[0]: ", "exactly one");
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n"
               "    auth: {type: static, headers: {Host: x}}\n",
               "t.yaml:4:11: upstreams[0]: ", "cannot set Host");
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n"
               "    auth: {type: static, basic: {user: 'a:b', password: p}}\n",
               "t.yaml:4:11: ", "must not contain ':'");
}

static void bad_auth_type(void **state)
{
    (void)state;
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n    auth: {type: magic}\n",
               "t.yaml:4:18: upstreams[0].auth.type: ", "unknown auth type 'magic'");
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n    auth: static\n",
               "t.yaml:4:11: upstreams[0].auth: ", "expected a mapping");
}

static void bad_duplicate_key(void **state)
{
    (void)state;
    expect_err("workers: 1\nworkers: 2\n" UP, "t.yaml:2:1: ", "duplicate key 'workers'");
    expect_err("upstreams:\n  - {name: a, url: http://a.test, name: b}\n",
               "t.yaml:2:35: upstreams[0]: ", "duplicate key 'name'");
    expect_err("upstreams:\n  - name: a\n    url: http://a.test\n"
               "    auth: {type: static, headers: {X-A: 1, x-a: 2}}\n",
               "t.yaml:4:44: ", "duplicate header 'x-a'");
}

static void bad_aliases(void **state)
{
    (void)state;
    expect_err("x: &rl {rate: 1/s}\n" UP, "t.yaml:1:1: ", "unknown key 'x'");
    expect_err("upstreams:\n"
               "  - {name: a, url: http://a.test, rate_limit: &rl {rate: 1/s}}\n"
               "  - {name: b, url: http://b.test, rate_limit: *rl}\n",
               "t.yaml:2:47: ", "aliases are not supported");
}

static void bad_port_workers_routes(void **state)
{
    (void)state;
    expect_err("listen: {port: 0}\n" UP, "t.yaml:1:16: listen.port: ", "bad port");
    expect_err("listen: {port: 65536}\n" UP, "t.yaml:1:16: listen.port: ", "bad port");
    expect_err("workers: 0\n" UP, "t.yaml:1:10: workers: ", "or auto");
    expect_err("listen: {tls: {cert: /nonexistent/c.pem, key: /dev/null}}\n" UP,
               "t.yaml:1:22: listen.tls.cert: ", "cannot read '/nonexistent/c.pem'");
    expect_err(RL_UP("{rate: 1/s}\n    routes: [{path: track, rate_limit: {rate: 1/s}}]"),
               "t.yaml:5:21: upstreams[0].routes[0].path: ", "bad path 'track'");
    expect_err(RL_UP("{rate: 1/s}\n    routes: [{path: /a/../b, rate_limit: {rate: 1/s}}]"),
               "t.yaml:5:21: ", "bad path");
    expect_err(RL_UP("{rate: 1/s}\n    routes: [{path: /a}]"),
               "t.yaml:5:14: upstreams[0].routes[0]: ", "missing required key 'rate_limit'");
    expect_err(RL_UP("{rate: 1/s}\n    routes: [{path: /a, rate_limit: {rate: 1/s}},"
                     " {path: /a, rate_limit: {rate: 2/s}}]"),
               "t.yaml:5:58: upstreams[0].routes[1]: ", "duplicate route path '/a'");
}

/* ---- the parsers ---- */

static void parse_duration(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(pg_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(pg_parse_duration_ms("10s", &v), 0);
    assert_int_equal(v, 10000);
    assert_int_equal(pg_parse_duration_ms("5min", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(pg_parse_duration_ms("24h", &v), 0);
    assert_int_equal(v, 86400000);
    assert_int_equal(pg_parse_duration_ms("0s", &v), 0);
    assert_int_equal(v, 0);
    v = 7;
    const char *bad[] = { "10",
                          "10x",
                          "-1s",
                          "+1s",
                          " 1s",
                          "1 s",
                          "1S",
                          "s",
                          "",
                          "1.5s",
                          "99999999999999999999s",
                          "18446744073709552s",
                          "5m",
                          "1hour" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pg_parse_duration_ms(bad[i], &v) == 0)
            fail_msg("'%s' parsed", bad[i]);
    assert_int_equal(v, 7); /* untouched on error */
}

static void parse_size(void **state)
{
    (void)state;
    uint64_t v = 0;
    assert_int_equal(pg_parse_size("512", &v), 0);
    assert_int_equal(v, 512);
    assert_int_equal(pg_parse_size("64KiB", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(pg_parse_size("10MiB", &v), 0);
    assert_int_equal(v, 10485760);
    assert_int_equal(pg_parse_size("2GiB", &v), 0);
    assert_int_equal(v, 2147483648u);
    const char *bad[] = {
        "10MB", "10k", "-1", "KiB", "", "1.5MiB", "17179869184GiB", "99999999999999999999"
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pg_parse_size(bad[i], &v) == 0)
            fail_msg("'%s' parsed", bad[i]);
}

static void parse_rate(void **state)
{
    (void)state;
    uint64_t n = 0, p = 0;
    assert_int_equal(pg_parse_rate("50/s", &n, &p), 0);
    assert_int_equal(n, 50);
    assert_int_equal(p, 1000);
    assert_int_equal(pg_parse_rate("120/min", &n, &p), 0);
    assert_int_equal(n, 120);
    assert_int_equal(p, 60000);
    assert_int_equal(pg_parse_rate("1/hour", &n, &p), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p, 3600000);
    const char *bad[] = { "0/s", "5/week", "5",   "/s",           "-1/s",
                          "5/S", "5 /s",   "5/h", "1000000001/s", "99999999999999999999/s" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pg_parse_rate(bad[i], &n, &p) == 0)
            fail_msg("'%s' parsed", bad[i]);
}

static void method_bits(void **state)
{
    (void)state;
    assert_int_equal(pg_method_bit("GET", 3), PG_M_GET);
    assert_int_equal(pg_method_bit("OPTIONS", 7), PG_M_OPTIONS);
    assert_int_equal(pg_method_bit("DELETEX", 6), PG_M_DELETE);
    assert_int_equal(pg_method_bit("get", 3), 0);
    assert_int_equal(pg_method_bit("GE", 2), 0);
    assert_int_equal(pg_method_bit("TRACE", 5), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_full_example),
        cmocka_unit_test(good_defaults),
        cmocka_unit_test(good_small_values),
        cmocka_unit_test(good_access_log_forms),
        cmocka_unit_test(good_env_and_file_secrets),
        cmocka_unit_test(good_static_basic),
        cmocka_unit_test(good_refcount_and_file),
        cmocka_unit_test(bad_load_missing_file),
        cmocka_unit_test(bad_yaml_syntax),
        cmocka_unit_test(bad_empty_and_not_a_mapping),
        cmocka_unit_test(bad_unknown_key_top),
        cmocka_unit_test(bad_unknown_key_nested),
        cmocka_unit_test(bad_unknown_key_in_auth),
        cmocka_unit_test(bad_wrong_type),
        cmocka_unit_test(bad_access_log),
        cmocka_unit_test(bad_missing_required),
        cmocka_unit_test(bad_durations),
        cmocka_unit_test(bad_sizes),
        cmocka_unit_test(bad_rates),
        cmocka_unit_test(bad_enum),
        cmocka_unit_test(bad_store),
        cmocka_unit_test(good_redis_store),
        cmocka_unit_test(bad_sha256),
        cmocka_unit_test(bad_duplicate_upstream),
        cmocka_unit_test(bad_duplicate_consumer),
        cmocka_unit_test(bad_upstream_names_and_urls),
        cmocka_unit_test(bad_allow_unknown_upstream),
        cmocka_unit_test(bad_allow_unknown_method),
        cmocka_unit_test(bad_env_missing),
        cmocka_unit_test(bad_secret_file_missing),
        cmocka_unit_test(bad_secret_file_not_regular),
        cmocka_unit_test(bad_secret_file_too_big),
        cmocka_unit_test(bad_secret_values),
        cmocka_unit_test(bad_static_init),
        cmocka_unit_test(bad_auth_type),
        cmocka_unit_test(bad_duplicate_key),
        cmocka_unit_test(bad_aliases),
        cmocka_unit_test(bad_port_workers_routes),
        cmocka_unit_test(parse_duration),
        cmocka_unit_test(parse_size),
        cmocka_unit_test(parse_rate),
        cmocka_unit_test(method_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
