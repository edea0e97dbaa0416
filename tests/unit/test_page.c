/* test_page.c -- the status page's answers (page.c): the embedded assets with their type, the
 * Content-Security-Policy and the other security headers, a HEAD without body, the redirect of
 * /_gateway, and the assets' size bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "gateway/page.h"
#include "gateway/req.h"

#define CSP                                                                                        \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "          \
    "form-action 'none'\r\n"

static int done_calls;
static bool done_ok;

static void kick(struct pg_req *r)
{
    (void)r;
}

static void done(struct pg_req *r, bool ok)
{
    (void)r;
    done_calls++;
    done_ok = ok;
}

/* An answer written by fn into a fresh request: head and body as NUL-terminated heap strings. */
struct answer {
    char *head, *body;
    size_t body_len;
};

static struct answer run(void (*fn)(struct pg_req *, const char *), const char *ctype, bool head)
{
    struct pg_req r;
    memset(&r, 0, sizeof r);
    r.out = evbuffer_new();
    assert_non_null(r.out);
    r.head = head;
    r.http_minor = 1;
    r.keep_alive = true;
    r.kick = kick;
    r.done = done;
    memcpy(r.rid, "rid-1", 6);
    done_calls = 0;
    fn(&r, ctype);
    assert_int_equal(done_calls, 1);
    assert_true(done_ok);
    size_t n = evbuffer_get_length(r.out);
    char *all = malloc(n + 1);
    assert_non_null(all);
    assert_int_equal(evbuffer_remove(r.out, all, n), (int)n);
    all[n] = '\0';
    evbuffer_free(r.out);
    char *sep = strstr(all, "\r\n\r\n");
    assert_non_null(sep);
    struct answer a;
    a.body_len = n - (size_t)(sep + 4 - all);
    a.body = malloc(a.body_len + 1);
    assert_non_null(a.body);
    memcpy(a.body, sep + 4, a.body_len + 1);
    sep[2] = '\0';
    a.head = all;
    return a;
}

static void answer_free(struct answer *a)
{
    free(a->head);
    free(a->body);
}

static void assert_page_headers(const struct answer *a, const char *ctype, size_t len)
{
    char line[160];
    assert_true(strncmp(a->head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    snprintf(line, sizeof line, "Content-Type: %s\r\n", ctype);
    assert_non_null(strstr(a->head, line));
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", len);
    assert_non_null(strstr(a->head, line));
    assert_non_null(strstr(a->head, CSP));
    assert_non_null(strstr(a->head, "X-Content-Type-Options: nosniff\r\n"));
    assert_non_null(strstr(a->head, "Referrer-Policy: no-referrer\r\n"));
    assert_non_null(strstr(a->head, "Cache-Control: no-cache\r\n"));
    assert_non_null(strstr(a->head, "X-Request-Id: rid-1\r\n"));
}

static void test_html(void **state)
{
    (void)state;
    struct answer a = run(pg_page_html, "text/html; charset=utf-8", false);
    assert_page_headers(&a, "text/html; charset=utf-8", a.body_len);
    assert_true(strncmp(a.body, "<!doctype html>", 15) == 0);
    /* nothing inline the policy would refuse; the script and stylesheet by relative name */
    assert_null(strstr(a.body, "<script>"));
    assert_null(strstr(a.body, "style="));
    assert_non_null(strstr(a.body, "<script src=\"page.js\""));
    assert_non_null(strstr(a.body, "href=\"page.css\""));
    assert_non_null(strstr(a.body, "name=\"viewport\""));
    answer_free(&a);
}

static void test_assets(void **state)
{
    (void)state;
    struct answer js = run(pg_page_js, "text/javascript; charset=utf-8", false);
    assert_page_headers(&js, "text/javascript; charset=utf-8", js.body_len);
    assert_non_null(strstr(js.body, "\"use strict\""));
    /* data goes into the DOM as text, never as markup, and the key never into localStorage */
    assert_null(strstr(js.body, "innerHTML"));
    assert_null(strstr(js.body, "outerHTML"));
    assert_null(strstr(js.body, "insertAdjacentHTML"));
    assert_null(strstr(js.body, "document.write"));
    assert_null(strstr(js.body, "localStorage"));
    struct answer css = run(pg_page_css, "text/css; charset=utf-8", false);
    assert_page_headers(&css, "text/css; charset=utf-8", css.body_len);
    assert_null(strstr(css.body, "@import"));
    assert_null(strstr(css.body, "url("));
    answer_free(&js);
    answer_free(&css);
}

static void test_head(void **state)
{
    (void)state;
    struct answer get = run(pg_page_html, "text/html; charset=utf-8", false);
    struct answer head = run(pg_page_html, "text/html; charset=utf-8", true);
    assert_int_equal(head.body_len, 0);
    /* the same head, Content-Length the GET's body */
    assert_string_equal(head.head, get.head);
    assert_page_headers(&head, "text/html; charset=utf-8", get.body_len);
    answer_free(&get);
    answer_free(&head);
}

static void test_redirect(void **state)
{
    (void)state;
    struct answer a = run(pg_page_redirect, NULL, false);
    assert_true(strncmp(a.head, "HTTP/1.1 301 Moved Permanently\r\n", 32) == 0);
    assert_non_null(strstr(a.head, "Location: /_gateway/\r\n"));
    assert_non_null(strstr(a.head, "Content-Length: 0\r\n"));
    assert_int_equal(a.body_len, 0);
    answer_free(&a);
}

/* The build refuses 100 KiB (cmake/embed.cmake); this says the total it counts is the bodies. */
static void test_size(void **state)
{
    (void)state;
    struct answer h = run(pg_page_html, "text/html", false);
    struct answer j = run(pg_page_js, "text/javascript", false);
    struct answer c = run(pg_page_css, "text/css", false);
    assert_int_equal(pg_page_assets_size(), h.body_len + j.body_len + c.body_len);
    assert_true(pg_page_assets_size() < 100 * 1024);
    assert_true(h.body_len > 0 && j.body_len > 0 && c.body_len > 0);
    answer_free(&h);
    answer_free(&j);
    answer_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html),     cmocka_unit_test(test_assets), cmocka_unit_test(test_head),
        cmocka_unit_test(test_redirect), cmocka_unit_test(test_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
