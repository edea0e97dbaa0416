/* navirec_token.c -- `navirec_token` auth (SPEC 1): a static `Authorization: Token <token>`, the
 * API version in Accept, a User-Agent naming panelgate; Link headers rewritten to the gateway. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../common.h"
#include "../plugin.h"

#define NVR_USER_AGENT "panelgate"
#define NVR_VERSION_MAX 32

struct navirec {
    /* from config */
    struct pg_secret token;
    char *api_version;
    /* built by init */
    struct pg_secret authz; /* "Token <token>" */
    char *accept_json;      /* "application/json; version=<api_version>" */
};

static const struct pg_conf_key navirec_keys[] = {
    { "token", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct navirec, token), NULL, NULL },
    { "api_version", PG_CONF_STRING, PG_REQUIRED, offsetof(struct navirec, api_version), NULL,
      NULL },
    { 0 },
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "1.33.0": digit groups joined by single dots. */
static bool version_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > NVR_VERSION_MAX || !is_digit(v[0]) || !is_digit(v[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_digit(v[i]) && !(v[i] == '.' && is_digit(v[i + 1])))
            return false;
    return true;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int navirec_init(void *vst, struct pg_err *err)
{
    struct navirec *st = vst;
    if (!st->token.p || !st->api_version)
        return pg_plug_fail(err, "auth: navirec_token needs token and api_version");
    if (!version_ok(st->api_version))
        return pg_plug_fail(err,
                            "auth: navirec_token api_version must be digits and dots, like 1.33.0");
    if (!pg_plug_visible_ascii(st->token.p, st->token.n))
        return pg_plug_fail(err,
                            "auth: navirec_token token must be printable ASCII without spaces");
    static const char prefix[] = "Token ";
    size_t n = sizeof prefix - 1 + st->token.n;
    char *p = malloc(n + 1);
    if (!p)
        return pg_plug_fail(err, "auth: out of memory");
    memcpy(p, prefix, sizeof prefix - 1);
    memcpy(p + sizeof prefix - 1, st->token.p, st->token.n);
    p[n] = '\0';
    st->authz.p = p;
    st->authz.n = n;
    static const char json[] = "application/json; version=";
    size_t vn = strlen(st->api_version);
    if (!(st->accept_json = malloc(sizeof json + vn)))
        return pg_plug_fail(err, "auth: out of memory");
    memcpy(st->accept_json, json, sizeof json - 1);
    memcpy(st->accept_json + sizeof json - 1, st->api_version, vn + 1);
    return 0;
}

static void navirec_deinit(void *vst)
{
    struct navirec *st = vst;
    pg_secret_free(&st->token);
    pg_secret_free(&st->authz);
    free(st->api_version);
    st->api_version = NULL;
    free(st->accept_json);
    st->accept_json = NULL;
}

/* Skip a quoted-string starting at a[i] == '"': the index after it, or n (and *open set) when
 * it is not closed. */
static size_t skip_quoted(const char *a, size_t n, size_t i, bool *open)
{
    for (i++; i < n; i++) {
        if (a[i] == '\\')
            i++;
        else if (a[i] == '"')
            return i + 1;
    }
    *open = true;
    return n;
}

/* Does any media-range of the Accept value carry a `version` parameter? */
static bool accept_has_version(const char *a, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (a[i] == '"') {
            bool open = false;
            i = skip_quoted(a, n, i, &open);
            continue;
        }
        if (a[i++] != ';')
            continue;
        while (i < n && is_ows(a[i]))
            i++;
        size_t s = i;
        while (i < n && is_tchar(a[i]))
            i++;
        size_t e = i;
        while (i < n && is_ows(a[i]))
            i++;
        if (e - s == 7 && strncasecmp(a + s, "version", 7) == 0 && i < n && a[i] == '=')
            return true;
    }
    return false;
}

/* The caller's first media type when it is a concrete `type/subtype` (no wildcard): its length
 * from *start, else 0. */
static size_t accept_first_type(const char *a, size_t n, size_t *start)
{
    size_t i = 0;
    while (i < n && (is_ows(a[i]) || a[i] == ','))
        i++;
    size_t s = i;
    while (i < n && is_tchar(a[i]) && a[i] != '*')
        i++;
    if (i == s || i == n || a[i] != '/')
        return 0;
    size_t slash = i++;
    while (i < n && is_tchar(a[i]) && a[i] != '*')
        i++;
    if (i == slash + 1)
        return 0;
    size_t e = i;
    while (i < n && is_ows(a[i]))
        i++;
    if (i < n && a[i] != ';' && a[i] != ',')
        return 0;
    *start = s;
    return e - s;
}

/* The Accept value to send, or NULL to keep the caller's (it names a version). Composed in
 * req->scratch when it is built from the caller's type. */
static const char *accept_value(const struct navirec *st, struct pg_out_req *req)
{
    if (req->accept && accept_has_version(req->accept, req->accept_len))
        return NULL;
    size_t s = 0, tn = req->accept ? accept_first_type(req->accept, req->accept_len, &s) : 0;
    if (tn == 0 || (tn == 16 && strncasecmp(req->accept + s, "application/json", 16) == 0))
        return st->accept_json;
    static const char ver[] = "; version=";
    size_t vn = strlen(st->api_version);
    size_t need = tn + sizeof ver - 1 + vn + 1;
    if (req->scratch_used > sizeof req->scratch || sizeof req->scratch - req->scratch_used < need)
        return st->accept_json; /* an absurdly long type: ask for JSON, still versioned */
    char *v = req->scratch + req->scratch_used;
    memcpy(v, req->accept + s, tn);
    memcpy(v + tn, ver, sizeof ver - 1);
    memcpy(v + tn + sizeof ver - 1, st->api_version, vn + 1);
    req->scratch_used += need;
    return v;
}

static int navirec_sign(const void *vst, const struct pg_session *s, struct pg_out_req *req,
                        uint64_t now_s)
{
    const struct navirec *st = vst;
    (void)s;
    (void)now_s;
    if (!st->authz.p || !st->accept_json)
        return -1; /* init did not succeed */
    if (req->nhdr > PG_OUT_MAX_HEADERS || PG_OUT_MAX_HEADERS - req->nhdr < 3)
        return -1;
    req->hdr[req->nhdr].name = "Authorization";
    req->hdr[req->nhdr++].value = st->authz.p;
    req->hdr[req->nhdr].name = "User-Agent";
    req->hdr[req->nhdr++].value = NVR_USER_AGENT;
    const char *accept = accept_value(st, req);
    if (accept) {
        req->hdr[req->nhdr].name = "Accept";
        req->hdr[req->nhdr++].value = accept;
    }
    return 0;
}

/* Fill err->upstream_* from a DRF body {"detail": "...", "code": "..."} when it is one. */
static void drf_detail(const struct pg_in_resp *resp, struct pg_err *err)
{
    json_t *root = pg_plug_json_object(resp->body, resp->body_len);
    if (pg_plug_json_text(err->upstream_message, sizeof err->upstream_message,
                          json_object_get(root, "detail")))
        pg_plug_json_text(err->upstream_code, sizeof err->upstream_code,
                          json_object_get(root, "code"));
    json_decref(root);
}

static enum pg_verdict navirec_classify(const void *vst, const struct pg_in_resp *resp,
                                        struct pg_err *err)
{
    (void)vst;
    drf_detail(resp, err);
    if (resp->status != 401)
        return PG_VERDICT_OK;
    /* a static token cannot be refreshed: no retry */
    err->code = PG_PLUG_E_UPSTREAM_AUTH_FAILED;
    pg_plug_fail(err, "Navirec rejected the gateway's API token");
    return PG_VERDICT_FAIL;
}

/* ---- Link rewriting ---- */

struct out {
    char *p;
    size_t cap, n;
    bool full;
};

static void emit(struct out *o, const char *p, size_t n)
{
    if (o->full || o->cap - o->n < n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
}

/* Link: <URI>; param="...", <URI>; ... (RFC 8288). URIs under upstream_url (pg_uri_under, the
 * matching Location rewriting in the core uses too) get public_base in its place; everything else
 * is copied byte for byte. A malformed value is passed as is, and so is one whose rewrite would not
 * fit in cap (including the NUL written after it): a link to the panel's host is not worth dropping
 * the header, and the caller's key does not work there. */
static int navirec_rewrite_header(const void *vst, const char *name, size_t name_len,
                                  const char *value, size_t value_len, const char *upstream_url,
                                  const char *public_base, char *out, size_t cap, size_t *outlen)
{
    (void)vst;
    if (name_len != 4 || strncasecmp(name, "Link", 4) != 0 || !value || !upstream_url ||
        !public_base || !out || cap == 0 || !outlen)
        return 0;
    size_t pbn = strlen(public_base);
    while (pbn > 0 && public_base[pbn - 1] == '/')
        pbn--;

    struct out o = { out, cap - 1, 0, false };
    bool changed = false;
    size_t i = 0;
    for (;;) {
        size_t s = i;
        while (i < value_len && (is_ows(value[i]) || value[i] == ','))
            i++;
        emit(&o, value + s, i - s);
        if (i == value_len)
            break;
        if (value[i] != '<')
            return 0;
        const char *uri = value + i + 1;
        const char *gt = memchr(uri, '>', value_len - i - 1);
        if (!gt)
            return 0;
        size_t un = (size_t)(gt - uri);
        const char *rest = pg_uri_under(upstream_url, uri, un);
        emit(&o, "<", 1);
        if (rest) {
            emit(&o, public_base, pbn);
            emit(&o, rest, un - (size_t)(rest - uri));
            changed = true;
        } else {
            emit(&o, uri, un);
        }
        emit(&o, ">", 1);
        /* params up to the next ',' outside a quoted-string */
        i = (size_t)(gt - value) + 1;
        s = i;
        while (i < value_len && value[i] != ',') {
            if (value[i] == '"') {
                bool open = false;
                i = skip_quoted(value, value_len, i, &open);
                if (open)
                    return 0;
            } else {
                i++;
            }
        }
        emit(&o, value + s, i - s);
    }
    if (!changed || o.full)
        return 0;
    out[o.n] = '\0';
    *outlen = o.n;
    return 1;
}

static size_t navirec_secrets(const void *vst, const struct pg_session *s, struct pg_span *out,
                              size_t cap)
{
    const struct navirec *st = vst;
    size_t i = 0;
    (void)s;
    pg_plug_span(out, cap, &i, st->token.p, st->token.n);
    return i;
}

const struct pg_auth_ops pg_auth_navirec_token = {
    .type = "navirec_token",
    .state_size = sizeof(struct navirec),
    .keys = navirec_keys,
    .init = navirec_init,
    .deinit = navirec_deinit,
    .build_login = NULL,
    .parse_login = NULL,
    .sign = navirec_sign,
    .classify = navirec_classify,
    .reserved = NULL,
    .rewrite_header = navirec_rewrite_header,
    .cred_param = NULL,
    .secrets = navirec_secrets,
};
