/* fp_leak.c -- every service: paths under /_leak/ that hand a request's credentials back the way
 * careless panels do, for tests/integration/test_leaks.py. Counted as hits; no auth check (the
 * gateway signs the request either way). <prefix> is the received path before "/_leak/"; <cred>
 * is the Navixy session hash the request carried (its hash query parameter, else the value of
 * "Authorization: NVX <hash>"), "" when none.
 *   .../_leak/redirect     302, Location: http://<Host><prefix>/_leak/landing?<query as received>
 *                          (a panel's redirect keeps its query, hash included), Content-Location:
 *                          landing?hash=<cred>&x=1 (relative), Set-Cookie: sid=<cred>; Path=/
 *   .../_leak/cookie       200 {"ok":true} with Set-Cookie: sid=<cred>; Path=/
 *   .../_leak/error/text   500 text/html: `pad` (query, default 0, at most 64 KiB) bytes of 'x',
 *                          then the echo
 *   .../_leak/error/navixy 400 {"success":false,"status":{"code":7,"description":<echo>}}
 *   .../_leak/error/panelica  400 {"error":<echo>,"code":"ECHO","details":{"echo":<echo>}}
 *   .../_leak/error/drf    400 {"detail":<echo>}
 * The echo is "<METHOD> <uri>\n", each header as "Name: value\n", then the body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp.h"

#define LEAK_PAD_MAX (64 << 10)

static int echo(struct fp_call *c, struct evbuffer *out)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(c->req);
    struct evkeyval *h;

    if (evbuffer_add_printf(out, "%s %s\n", c->method, c->raw_uri) < 0)
        return -1;
    TAILQ_FOREACH(h, in, next)
    {
        if (evbuffer_add_printf(out, "%s: %s\n", h->key, h->value) < 0)
            return -1;
    }
    return evbuffer_add(out, c->body, c->body_len);
}

/* The echo as a JSON string; NULL when out of memory. */
static json_t *echo_json(struct fp_call *c)
{
    struct evbuffer *b = evbuffer_new();
    json_t *s = NULL;

    if (b != NULL && echo(c, b) == 0) {
        size_t n = evbuffer_get_length(b);
        const char *p = (const char *)evbuffer_pullup(b, -1);
        s = fp_jstr(p != NULL ? p : "", p != NULL ? n : 0);
    }
    if (b != NULL)
        evbuffer_free(b);
    return s;
}

/* The session hash the request carried, malloc'd ("" when none); NULL when out of memory. */
static char *cred(struct fp_call *c)
{
    char *v = NULL;
    size_t vn = 0, count = 0;
    const char *a = fp_header(c->req, "Authorization");

    if (fp_form_get(c->query, strlen(c->query), "hash", &v, &vn, &count) == 0 && v != NULL)
        return v;
    if (a != NULL && strncmp(a, "NVX ", 4) == 0)
        return strdup(a + 4);
    return strdup("");
}

static int leak_redirect(struct fp_call *c, const char *prefix, size_t prefix_len)
{
    const char *host = fp_header(c->req, "Host");
    char *h = cred(c);
    char *loc = NULL, *cloc = NULL, *cookie = NULL;
    int rc = -1;

    if (h == NULL)
        return -1;
    if (asprintf(&loc, "http://%s%.*s/_leak/landing%s%s", host != NULL ? host : "", (int)prefix_len,
                 prefix, c->query[0] ? "?" : "", c->query) >= 0 &&
        asprintf(&cloc, "landing?hash=%s&x=1", h) >= 0 &&
        asprintf(&cookie, "sid=%s; Path=/", h) >= 0 &&
        fp_add_header(c->req, "Location", loc) == 0 &&
        fp_add_header(c->req, "Content-Location", cloc) == 0 &&
        fp_add_header(c->req, "Set-Cookie", cookie) == 0)
        rc = fp_reply_text(c->req, 302, "{\"moved\":true}");
    free(loc);
    free(cloc);
    free(cookie);
    free(h);
    return rc;
}

static int leak_cookie(struct fp_call *c)
{
    char *h = cred(c);
    char *cookie = NULL;
    int rc = -1;

    if (h == NULL)
        return -1;
    if (asprintf(&cookie, "sid=%s; Path=/", h) >= 0 &&
        fp_add_header(c->req, "Set-Cookie", cookie) == 0)
        rc = fp_reply_text(c->req, 200, "{\"ok\":true}");
    free(cookie);
    free(h);
    return rc;
}

static int leak_text(struct fp_call *c)
{
    struct evbuffer *b = evbuffer_new();
    char *pad = NULL;
    size_t padn = 0, count = 0;
    uint64_t n = 0;
    int rc = -1;

    if (b == NULL)
        return -1;
    if (fp_form_get(c->query, strlen(c->query), "pad", &pad, &padn, &count) == 0 && pad != NULL &&
        fp_parse_u64(pad, LEAK_PAD_MAX, &n) < 0)
        n = 0;
    free(pad);
    for (uint64_t i = 0; i < n; i++)
        if (evbuffer_add(b, "x", 1) < 0)
            goto out;
    if (echo(c, b) < 0 || evhttp_add_header(evhttp_request_get_output_headers(c->req),
                                            "Content-Type", "text/html") < 0)
        goto out;
    evhttp_send_reply(c->req, 500, "Internal Server Error", b);
    rc = 0;
out:
    evbuffer_free(b);
    return rc;
}

static int leak_json(struct fp_call *c, const char *shape)
{
    json_t *e = echo_json(c);
    json_t *root = NULL;

    if (e == NULL)
        return -1;
    if (strcmp(shape, "navixy") == 0)
        root = json_pack("{s:b,s:{s:i,s:O}}", "success", 0, "status", "code", 7, "description", e);
    else if (strcmp(shape, "panelica") == 0)
        root = json_pack("{s:O,s:s,s:{s:O}}", "error", e, "code", "ECHO", "details", "echo", e);
    else if (strcmp(shape, "drf") == 0)
        root = json_pack("{s:O}", "detail", e);
    json_decref(e);
    if (root == NULL)
        return fp_reply_text(c->req, 404, "{\"error\":\"unknown leak shape\"}");
    return fp_reply_new(c->req, 400, root);
}

int fp_leak_handle(struct fp_service *svc, struct fp_call *c)
{
    const char *at = strstr(c->raw_path, "/_leak/");
    const char *what;

    (void)svc;
    if (at == NULL)
        return -1;
    what = at + strlen("/_leak/");
    if (strcmp(what, "redirect") == 0)
        return leak_redirect(c, c->raw_path, (size_t)(at - c->raw_path));
    if (strcmp(what, "cookie") == 0)
        return leak_cookie(c);
    if (strcmp(what, "error/text") == 0)
        return leak_text(c);
    if (strncmp(what, "error/", 6) == 0)
        return leak_json(c, what + 6);
    return fp_reply_text(c->req, 404, "{\"error\":\"unknown leak path\"}");
}
