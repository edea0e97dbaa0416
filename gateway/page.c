/* page.c -- the status page's three files, embedded by the build, answered with a Content-Security-
 * Policy that lets the page load only its own script and stylesheet and talk only to its origin. */
#include "page.h"

#include <stdio.h>

#include "req.h"

/* defined in the build tree's page_assets.c (cmake/embed.cmake); the lengths exclude the NUL
 * the generator appends */
extern const unsigned char pg_page_index_html[], pg_page_page_js[], pg_page_page_css[];
extern const size_t pg_page_index_html_len, pg_page_page_js_len, pg_page_page_css_len;

/* The page builds its DOM from script (no inline script or style, no innerHTML with data), so
 * 'self' is all it needs; data: images for the browser's own favicon fallback. */
#define PAGE_HEADERS                                                                               \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "          \
    "form-action 'none'\r\n"                                                                       \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Cache-Control: no-cache\r\n"

/* 200 with the asset (p, n), borrowed: it lives as long as the binary. */
static void serve(struct pg_req *r, const char *ctype, const unsigned char *p, size_t n)
{
    char extra[sizeof PAGE_HEADERS + 128];
    int k = snprintf(extra, sizeof extra, "Content-Type: %s\r\n%s", ctype, PAGE_HEADERS);
    if (k < 0 || (size_t)k >= sizeof extra) {
        pg_resp_fail(r, PG_E_INTERNAL, NULL);
        return;
    }
    if (pg_resp_head(r, 200, extra, (size_t)k, (int64_t)n) || pg_resp_body(r, p, n)) {
        pg_resp_abort(r);
        return;
    }
    pg_resp_end(r);
}

void pg_page_html(struct pg_req *r, const char *ctype)
{
    serve(r, ctype, pg_page_index_html, pg_page_index_html_len);
}

void pg_page_js(struct pg_req *r, const char *ctype)
{
    serve(r, ctype, pg_page_page_js, pg_page_page_js_len);
}

void pg_page_css(struct pg_req *r, const char *ctype)
{
    serve(r, ctype, pg_page_page_css, pg_page_page_css_len);
}

void pg_page_redirect(struct pg_req *r, const char *ctype)
{
    static const char loc[] = "Location: /_gateway/\r\n";
    (void)ctype;
    if (pg_resp_head(r, 301, loc, sizeof loc - 1, 0)) {
        pg_resp_abort(r);
        return;
    }
    pg_resp_end(r);
}

size_t pg_page_assets_size(void)
{
    return pg_page_index_html_len + pg_page_page_js_len + pg_page_page_css_len;
}
