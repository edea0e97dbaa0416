/* page.h -- the status page (SPEC section 6, GET /_gateway/): owns its HTML, script and stylesheet
 * (gateway/page/, embedded at build time by cmake/embed.cmake) and their answers with the
 * security headers. The page reads its data from /_gateway/status with the admin key it asks for;
 * nothing here needs a key. Rows in endpoint.c's table call these. */
#ifndef PG_PAGE_H
#define PG_PAGE_H

#include <stddef.h>

struct pg_req;

/* Answer a GET or HEAD with the page (index.html), its script (page.js) or its stylesheet
 * (page.css): 200, Content-Type ctype (borrowed), the Content-Security-Policy and the other
 * security headers, Cache-Control: no-cache. The body is the embedded asset (none for HEAD). */
void pg_page_html(struct pg_req *r, const char *ctype);
void pg_page_js(struct pg_req *r, const char *ctype);
void pg_page_css(struct pg_req *r, const char *ctype);

/* Answer /_gateway (no slash) with 301 to /_gateway/: the page names its script, stylesheet and
 * data relative to its own URL, which must end in '/'. ctype is unused (the answer is empty). */
void pg_page_redirect(struct pg_req *r, const char *ctype);

/* The embedded assets' total size in bytes; the build fails at 100 KiB (CMakeLists.txt). */
size_t pg_page_assets_size(void);

#endif
