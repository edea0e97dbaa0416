/* fp_navirec.c -- fake Navirec API (--navirec), after panels/navirec-api.md. Navirec is a Django
 * REST framework service; this fake answers as DRF does, checking in DRF's order:
 *
 * 1. Accept (content negotiation, then AcceptHeaderVersioning): no Accept, or a media range the
 *    endpoint can answer (application/json, text/html, the wildcards application/STAR and
 *    STAR/STAR; streams: application/x-ndjson, application/json -- counted as stream_accept_json,
 *    the docs only show ndjson -- and the wildcards) -> go on; none -> 406 {"detail":"Could
 *    not satisfy the request Accept header."}. Its version parameter must be one of the
 *    versions knob (default 1.33.0), else 406 {"detail":"Invalid version in \"Accept\"
 *    header."}; no version is accepted (the docs' browsable-API convenience), counted as
 *    no_version.
 * 2. "Authorization: Token <token>" -> else 401 {"detail":...} with WWW-Authenticate: Token:
 *    "Authentication credentials were not provided." / "Invalid token header. No credentials
 *    provided." / "Invalid token header. Token string should not contain spaces." / "Invalid
 *    token."
 * 3. Endpoints (any prefix, trailing '/' optional):
 *    GET /vehicles/   a page (page_size, default 100, at most 1000) of the vehicles knob's
 *                     vehicles as a JSON list, with Link: <URL>; rel="next", <URL>; rel="prev"
 *                     whose URL is this fake's own absolute URL (http://HOST:PORT/path?...): the
 *                     request's query with cursor replaced, keys sorted, quote_plus-encoded, and
 *                     the cursor base64("p=<id>") / base64("r=1&p=<id>") -- as DRF's
 *                     CursorPagination builds them. A bad cursor -> 404 {"detail":"Invalid
 *                     cursor"}.
 *    POST /vehicles/  JSON (or form) {"name","account"} -> 201; a missing field -> 400
 *                     {"name":["This field is required."]}; bad JSON 400 {"detail":...};
 *                     another Content-Type 415.
 *    GET /streams/vehicle_states/, /streams/driver_states/: application/x-ndjson, chunked:
 *                     {"event":"connected"}, 1-2 states, {"event":"initial_state_sent"}, the rest
 *                     of n states, {"event":"disconnected"} (n + 3 lines), delay_ms apart; n and
 *                     delay_ms from the query, else the stream_n / stream_delay_ms knobs.
 *    anything else    {"echo":{...}}
 * Rate-limit knob: 429, Retry-After: S, {"detail":"Request was throttled. Expected available in
 * S seconds."}. Every answer has Vary: Accept and Allow; Accept-Language and Accept-Timezone are
 * confirmed in Content-Language and Content-Timezone. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/util.h>

#include "fp.h"

#define NR_PAGE_DEFAULT 100
#define NR_PAGE_MAX 1000
#define NR_MAX_PARAMS 128 /* query parameters a paginated request may carry */
#define NR_CURSOR_MAX 256 /* bytes of a cursor */
#define NR_VERSION_MAX 64 /* bytes of an Accept version parameter */
#define NR_ID_PREFIX "00000000-0000-4000-8000-"
#define NR_ID_DIGITS 12

const char *const fp_navirec_counters[] = {
    "no_version", "bad_version", "not_acceptable", "stream_accept_json", NULL,
};
const char *const fp_navirec_reasons[] = {
    "missing_token", "no_credentials", "token_with_spaces", "invalid_token", NULL,
};

enum nr_media { NR_JSON, NR_NDJSON };

static int nr_detail(struct evhttp_request *req, int status, const char *detail)
{
    return fp_reply_new(req, status, json_pack("{s:s}", "detail", detail));
}

/* Headers of every answer. */
static int nr_headers(const struct fp_call *c, const char *allow)
{
    const char *lang = fp_header(c->req, "Accept-Language");
    const char *tz = fp_header(c->req, "Accept-Timezone");

    if (fp_add_header(c->req, "Vary", "Accept") < 0 || fp_add_header(c->req, "Allow", allow) < 0)
        return -1;
    if (lang != NULL && fp_add_header(c->req, "Content-Language", lang) < 0)
        return -1;
    if (tz != NULL && fp_add_header(c->req, "Content-Timezone", tz) < 0)
        return -1;
    return 0;
}

/* ---- Accept ---------------------------------------------------------------------------------- */

int fp_navirec_check_versions(const char *s)
{
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              *s == '.' || *s == '-' || *s == ','))
            return -1;
    }
    return 0;
}

static bool version_allowed(const char *versions, const char *v, size_t n)
{
    while (*versions != '\0') {
        const char *comma = strchr(versions, ',');
        size_t k = comma != NULL ? (size_t)(comma - versions) : strlen(versions);

        if (k == n && memcmp(versions, v, n) == 0)
            return true;
        versions += k;
        if (*versions == ',')
            versions++;
    }
    return false;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static size_t trim_len(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (size_t)(end - p);
}

/* Index of media type m[0..n) among those want answers; -1 if none. */
static int media_index(const char *m, size_t n, enum nr_media want)
{
    static const char *const json[] = { "application/json", "application/*", "text/html", "*/*" };
    static const char *const ndjson[] = { "application/x-ndjson", "application/json",
                                          "application/*", "*/*" };
    const char *const *list = want == NR_JSON ? json : ndjson;
    size_t count = want == NR_JSON ? FP_ARRAY_LEN(json) : FP_ARRAY_LEN(ndjson);

    for (size_t i = 0; i < count; i++) {
        if (strlen(list[i]) == n && evutil_ascii_strncasecmp(m, list[i], n) == 0)
            return (int)i;
    }
    return -1;
}

/* One media range "type/sub; a=b; version=X": *index from media_index, *ver its version (NULL:
 * none). */
static void media_range(const char *p, const char *end, enum nr_media want, int *index,
                        const char **ver, size_t *vlen)
{
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *mend = semi != NULL ? semi : end;

    p = skip_ws(p, end);
    *index = media_index(p, trim_len(p, mend), want);
    *ver = NULL;
    while (*index >= 0 && semi != NULL) {
        const char *q = skip_ws(semi + 1, end);
        const char *next = memchr(q, ';', (size_t)(end - q));
        const char *pend = next != NULL ? next : end;
        const char *eq = memchr(q, '=', (size_t)(pend - q));

        if (eq != NULL && trim_len(q, eq) == 7 && evutil_ascii_strncasecmp(q, "version", 7) == 0) {
            const char *v = skip_ws(eq + 1, pend);
            size_t n = trim_len(v, pend);
            if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
                v++;
                n -= 2;
            }
            *ver = v;
            *vlen = n;
        }
        semi = next;
    }
}

/* 0: acceptable (the version, if any, is checked and noted); 1: refused (answered). */
static int nr_accept(struct fp_service *svc, const struct fp_call *c, enum nr_media want)
{
    const struct evkeyval *h;
    const char *ver = NULL;
    size_t vlen = 0;
    bool any = false;
    int index = -1;

    TAILQ_FOREACH(h, evhttp_request_get_input_headers(c->req), next)
    {
        const char *p = h->value, *end = p + strlen(p);

        if (evutil_ascii_strcasecmp(h->key, "Accept") != 0)
            continue;
        any = true;
        while (index < 0 && p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *rend = comma != NULL ? comma : end;

            media_range(p, rend, want, &index, &ver, &vlen);
            p = comma != NULL ? comma + 1 : end;
        }
        if (index >= 0)
            break;
    }
    if (want == NR_NDJSON && index == 1)
        fp_count(svc, "stream_accept_json");
    if (any && index < 0) {
        fp_count(svc, "not_acceptable");
        return nr_detail(c->req, 406, "Could not satisfy the request Accept header.") < 0 ? -1 : 1;
    }
    if (ver == NULL) {
        fp_count(svc, "no_version");
        return 0;
    }
    if (vlen > NR_VERSION_MAX || !version_allowed(svc->knobs.versions, ver, vlen)) {
        fp_count(svc, "bad_version");
        return nr_detail(c->req, 406, "Invalid version in \"Accept\" header.") < 0 ? -1 : 1;
    }
    if (svc->last_request != NULL)
        json_object_set_new(svc->last_request, "version", fp_jstr(ver, vlen));
    return 0;
}

/* ---- Authorization --------------------------------------------------------------------------- */

/* 0: authenticated; 1: refused (answered); -1: out of memory. As DRF's TokenAuthentication:
 * the header is split() on whitespace; a first word other than "token" (any case) is another
 * scheme, which leaves the request unauthenticated. */
static int nr_auth(struct fp_service *svc, const struct fp_call *c)
{
    const char *p = fp_header(c->req, "Authorization");
    const char *want = svc->knobs.password, *word[2] = { NULL, NULL };
    size_t len[2] = { 0, 0 }, words = 0;
    const char *reason = NULL, *detail = NULL;

    while (p != NULL && *p != '\0') {
        const char *w;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        for (w = p; *p != '\0' && *p != ' ' && *p != '\t'; p++)
            ;
        if (words < 2) {
            word[words] = w;
            len[words] = (size_t)(p - w);
        }
        words++;
    }
    if (words == 0 || len[0] != 5 || evutil_ascii_strncasecmp(word[0], "token", 5) != 0) {
        reason = "missing_token";
        detail = "Authentication credentials were not provided.";
    } else if (words == 1) {
        reason = "no_credentials";
        detail = "Invalid token header. No credentials provided.";
    } else if (words > 2) {
        reason = "token_with_spaces";
        detail = "Invalid token header. Token string should not contain spaces.";
    } else if (!fp_secret_eq(word[1], len[1], want, strlen(want))) {
        reason = "invalid_token";
        detail = "Invalid token.";
    }
    if (reason == NULL)
        return 0;
    fp_auth_failed(svc, reason);
    if (fp_add_header(c->req, "WWW-Authenticate", "Token") < 0)
        return -1;
    return nr_detail(c->req, 401, detail) < 0 ? -1 : 1;
}

/* ---- /vehicles/ ------------------------------------------------------------------------------ */

static int vehicle_id(uint64_t k, char *out, size_t cap)
{
    int n = snprintf(out, cap, NR_ID_PREFIX "%012" PRIu64, k);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int parse_vehicle_id(const char *s, size_t n, uint64_t *k)
{
    size_t plen = strlen(NR_ID_PREFIX);
    char digits[NR_ID_DIGITS + 1];

    if (n != plen + NR_ID_DIGITS || memcmp(s, NR_ID_PREFIX, plen) != 0)
        return -1;
    memcpy(digits, s + plen, NR_ID_DIGITS);
    digits[NR_ID_DIGITS] = '\0';
    return fp_parse_u64(digits, UINT64_MAX, k);
}

struct cursor {
    bool reverse;
    bool has_pos;
    uint64_t pos; /* vehicle number of p */
    bool bad;
};

static int cursor_pair(const char *k, size_t kn, const char *v, size_t vn, void *arg)
{
    struct cursor *cur = arg;
    char num[24];
    uint64_t x;

    if (v == NULL)
        v = "";
    if (kn == 1 && (k[0] == 'o' || k[0] == 'r')) {
        if (vn == 0 || vn >= sizeof(num)) {
            cur->bad = true;
            return 1;
        }
        memcpy(num, v, vn);
        num[vn] = '\0';
        if (fp_parse_u64(num, UINT32_MAX, &x) < 0) {
            cur->bad = true;
            return 1;
        }
        if (k[0] == 'r')
            cur->reverse = x != 0;
    } else if (kn == 1 && k[0] == 'p') {
        if (parse_vehicle_id(v, vn, &cur->pos) < 0) {
            cur->bad = true;
            return 1;
        }
        cur->has_pos = true;
    }
    return 0;
}

/* DRF: b64decode, then a query string of o (offset), r (reverse) and p (position). */
static int cursor_decode(const char *s, size_t n, struct cursor *cur)
{
    unsigned char plain[NR_CURSOR_MAX];
    size_t len;

    memset(cur, 0, sizeof(*cur));
    if (n > NR_CURSOR_MAX || fp_b64_decode(s, n, false, plain, sizeof(plain), &len) < 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (plain[i] < 0x20 || plain[i] > 0x7e)
            return -1;
    }
    fp_form_each((const char *)plain, len, cursor_pair, cur);
    return cur->bad ? -1 : 0;
}

struct qparam {
    char *k, *v;
    size_t kn, vn;
};

struct qparams {
    struct qparam p[NR_MAX_PARAMS];
    size_t n;
    bool too_many;
};

static int collect_pair(const char *k, size_t kn, const char *v, size_t vn, void *arg)
{
    struct qparams *q = arg;
    struct qparam *e;

    if (q->n == NR_MAX_PARAMS) {
        q->too_many = true;
        return 1;
    }
    e = &q->p[q->n];
    e->k = fp_urldecode(k, kn, &e->kn);
    e->v = e->k != NULL ? fp_urldecode(v != NULL ? v : "", vn, &e->vn) : NULL;
    if (e->v == NULL) {
        free(e->k);
        return -1;
    }
    q->n++;
    return 0;
}

static void qparams_free(struct qparams *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->p[i].k);
        free(q->p[i].v);
    }
}

static int qparam_cmp(const struct qparam *a, const struct qparam *b)
{
    size_t n = a->kn < b->kn ? a->kn : b->kn;
    int c = memcmp(a->k, b->k, n);

    return c != 0 ? c : (a->kn > b->kn) - (a->kn < b->kn);
}

/* <URL>; rel="REL": the request with cursor = base64(plain), keys sorted (stable), quote_plus. */
static int add_link(struct fp_service *svc, const struct fp_call *c, const struct qparams *q,
                    const char *plain, const char *rel, struct evbuffer *out)
{
    const struct qparam *sorted[NR_MAX_PARAMS + 1];
    struct qparam cur = { (char *)"cursor", NULL, 6, 0 };
    char b64[NR_CURSOR_MAX];
    size_t n = 0;

    if (fp_b64_encode((const unsigned char *)plain, strlen(plain), false, b64, sizeof(b64)) == 0)
        return -1;
    cur.v = b64;
    cur.vn = strlen(b64);
    for (size_t i = 0; i < q->n; i++) {
        if (!(q->p[i].kn == 6 && memcmp(q->p[i].k, "cursor", 6) == 0))
            sorted[n++] = &q->p[i];
    }
    sorted[n++] = &cur;
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable, n is small */
        const struct qparam *x = sorted[i];
        size_t j = i;
        for (; j > 0 && qparam_cmp(sorted[j - 1], x) > 0; j--)
            sorted[j] = sorted[j - 1];
        sorted[j] = x;
    }
    if (evbuffer_get_length(out) > 0 && evbuffer_add(out, ", ", 2) < 0)
        return -1;
    /* like DRF's build_absolute_uri: the links name the host the request was addressed to */
    const char *host = fp_header(c->req, "Host");
    if (host && host[strcspn(host, " <>\"")] == '\0' && strlen(host) < 256
            ? evbuffer_add_printf(out, "<http://%s%s?", host, c->raw_path) < 0
            : evbuffer_add_printf(out, "<%s%s?", svc->base_url, c->raw_path) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && evbuffer_add(out, "&", 1) < 0) ||
            fp_quote_plus(out, sorted[i]->k, sorted[i]->kn) < 0 || evbuffer_add(out, "=", 1) < 0 ||
            fp_quote_plus(out, sorted[i]->v, sorted[i]->vn) < 0)
            return -1;
    }
    return evbuffer_add_printf(out, ">; rel=\"%s\"", rel) < 0 ? -1 : 0;
}

static json_t *vehicle_json(uint64_t k)
{
    char id[64], reg[32];
    int n = snprintf(reg, sizeof(reg), "FAKE-%04" PRIu64, k);

    if (vehicle_id(k, id, sizeof(id)) < 0 || n < 0 || (size_t)n >= sizeof(reg))
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:b}", "id", id, "name", reg + 5, "registration", reg,
                     "account", "00000000-0000-4000-8000-00000000acc1", "active", 1);
}

/* Page [first, last] of vehicles 1..total, as the cursor says. */
static void page_bounds(const struct cursor *cur, uint64_t total, uint64_t size, uint64_t *first,
                        uint64_t *last)
{
    uint64_t pos;

    if (!cur->reverse) {
        pos = cur->has_pos ? cur->pos : 0;
        *first = pos < total ? pos + 1 : total + 1;
        *last = total - (*first - 1) > size ? *first - 1 + size : total;
    } else {
        pos = cur->has_pos && cur->pos <= total + 1 ? cur->pos : total + 1;
        *last = pos > 0 ? pos - 1 : 0;
        *first = *last > size ? *last - size + 1 : 1;
    }
}

static int nr_list(struct fp_service *svc, struct fp_call *c)
{
    struct qparams *q = calloc(1, sizeof(*q));
    struct evbuffer *link = evbuffer_new();
    uint64_t size = NR_PAGE_DEFAULT, first, last, total = svc->knobs.vehicles;
    struct cursor cur;
    char *val = NULL, plain[96], id[64];
    size_t vlen, count;
    json_t *list = json_array();
    int rc = -1;

    if (q == NULL || link == NULL || list == NULL)
        goto out;
    if ((rc = fp_form_each(c->query, strlen(c->query), collect_pair, q)) != 0) {
        rc = q->too_many ? nr_detail(c->req, HTTP_BADREQUEST, "Too many query parameters") : -1;
        goto out;
    }
    rc = -1;
    if (fp_form_get(c->query, strlen(c->query), "page_size", &val, &vlen, &count) < 0)
        goto out;
    if (val != NULL && fp_parse_u64(val, UINT32_MAX, &size) == 0 && size > 0)
        size = size > NR_PAGE_MAX ? NR_PAGE_MAX : size;
    else
        size = NR_PAGE_DEFAULT; /* DRF ignores a page_size it cannot use */
    free(val);
    if (fp_form_get(c->query, strlen(c->query), "cursor", &val, &vlen, &count) < 0)
        goto out;
    memset(&cur, 0, sizeof(cur));
    if (val != NULL && cursor_decode(val, vlen, &cur) < 0) {
        rc = nr_detail(c->req, HTTP_NOTFOUND, "Invalid cursor");
        goto out;
    }
    page_bounds(&cur, total, size, &first, &last);
    for (uint64_t k = first; k <= last; k++) {
        if (json_array_append_new(list, vehicle_json(k)) < 0)
            goto out;
    }
    if (first <= last && last < total &&
        (vehicle_id(last, id, sizeof(id)) < 0 ||
         snprintf(plain, sizeof(plain), "p=%s", id) >= (int)sizeof(plain) ||
         add_link(svc, c, q, plain, "next", link) < 0))
        goto out;
    if (first <= last && first > 1 &&
        (vehicle_id(first, id, sizeof(id)) < 0 ||
         snprintf(plain, sizeof(plain), "r=1&p=%s", id) >= (int)sizeof(plain) ||
         add_link(svc, c, q, plain, "prev", link) < 0))
        goto out;
    if (evbuffer_get_length(link) > 0) {
        if (evbuffer_add(link, "", 1) < 0 ||
            fp_add_header(c->req, "Link", (const char *)evbuffer_pullup(link, -1)) < 0)
            goto out;
    }
    rc = fp_reply_json(c->req, HTTP_OK, list);
out:
    free(val);
    if (q != NULL)
        qparams_free(q);
    free(q);
    if (link != NULL)
        evbuffer_free(link);
    json_decref(list);
    return rc;
}

static const char *py_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_ARRAY:
        return "list";
    case JSON_STRING:
        return "str";
    case JSON_INTEGER:
        return "int";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    default:
        return "NoneType";
    }
}

/* A serializer's CharField check of data[name]; adds the error to errors. */
static int check_field(json_t *data, const char *name, json_t *errors)
{
    json_t *v = json_object_get(data, name);
    const char *msg = NULL;

    if (v == NULL)
        msg = "This field is required.";
    else if (json_is_null(v))
        msg = "This field may not be null.";
    else if (!json_is_string(v))
        msg = "Not a valid string.";
    else if (json_string_length(v) == 0)
        msg = "This field may not be blank.";
    if (msg == NULL)
        return 0;
    return json_object_set_new(errors, name, json_pack("[s]", msg));
}

static json_t *form_object(const struct fp_call *c)
{
    static const char *const fields[] = { "name", "account" };
    json_t *obj = json_object();

    for (size_t i = 0; obj != NULL && i < FP_ARRAY_LEN(fields); i++) {
        char *val;
        size_t vlen, count;

        if (fp_form_get(c->body, c->body_len, fields[i], &val, &vlen, &count) < 0) {
            json_decref(obj);
            return NULL;
        }
        if (val != NULL && json_object_set_new(obj, fields[i], fp_jstr(val, vlen)) < 0) {
            free(val);
            json_decref(obj);
            return NULL;
        }
        free(val);
    }
    return obj;
}

static int nr_create(struct fp_service *svc, struct fp_call *c)
{
    const char *ct = fp_header(c->req, "Content-Type");
    json_t *data, *errors, *echo;
    json_error_t jerr;
    char id[37], msg[256];
    int rc = -1;

    (void)svc;
    if (fp_media_is(ct, "application/json")) {
        if ((data = json_loadb(c->body, c->body_len, JSON_DECODE_ANY, &jerr)) == NULL) {
            snprintf(msg, sizeof(msg), "JSON parse error - %s", jerr.text);
            return nr_detail(c->req, HTTP_BADREQUEST, msg);
        }
    } else if (fp_media_is(ct, "application/x-www-form-urlencoded") || c->body_len == 0) {
        if ((data = form_object(c)) == NULL)
            return -1;
    } else {
        snprintf(msg, sizeof(msg), "Unsupported media type \"%.100s\" in request.",
                 ct != NULL ? ct : "");
        return nr_detail(c->req, 415, msg);
    }
    if (!json_is_object(data)) {
        snprintf(msg, sizeof(msg), "Invalid data. Expected a dictionary, but got %s.",
                 py_type(data));
        json_decref(data);
        return fp_reply_new(c->req, HTTP_BADREQUEST, json_pack("{s:[s]}", "non_field_errors", msg));
    }
    if ((errors = json_object()) == NULL || check_field(data, "name", errors) < 0 ||
        check_field(data, "account", errors) < 0)
        goto out;
    if (json_object_size(errors) > 0) {
        rc = fp_reply_json(c->req, HTTP_BADREQUEST, errors);
        goto out;
    }
    if (fp_uuid4(id) < 0 || (echo = fp_request_json(c->req, FP_MAX_BODY)) == NULL)
        goto out;
    rc = fp_reply_new(c->req, 201,
                      json_pack("{s:s, s:O, s:O, s:o}", "id", id, "name",
                                json_object_get(data, "name"), "account",
                                json_object_get(data, "account"), "echo", echo));
out:
    json_decref(errors);
    json_decref(data);
    return rc;
}

/* ---- streams --------------------------------------------------------------------------------- */

/* Line op->done of a stream of op->total lines (n states + 3 events); variant 1: drivers. */
static int stream_line(struct fp_op *op)
{
    uint64_t i = op->done, n = op->total - 3, split = 1 + (n < 2 ? n : 2), s;
    const char *ev = op->variant == 1 ? "driver_state" : "vehicle_state";
    const char *what = op->variant == 1 ? "driver" : "vehicle";
    const char *coll = op->variant == 1 ? "drivers" : "vehicles";

    if (i == 0)
        return evbuffer_add_printf(op->buf, "{\"event\":\"connected\"}\n") < 0 ? -1 : 0;
    if (i == op->total - 1)
        return evbuffer_add_printf(op->buf, "{\"event\":\"disconnected\"}\n") < 0 ? -1 : 0;
    if (i == split)
        return evbuffer_add_printf(op->buf, "{\"event\":\"initial_state_sent\"}\n") < 0 ? -1 : 0;
    s = i < split ? i : i - 1;
    return evbuffer_add_printf(
               op->buf,
               "{\"id\":\"f47a0ff0-ccd3-11ee-8001-%012" PRIu64 "\",\"event\":\"%s\",\"data\":"
               "{\"id\":\"f47a0ff0-ccd3-11ee-8001-%012" PRIu64 "\",\"%s\":\"%s/%s/" NR_ID_PREFIX
               "%012" PRIu64 "/\",\"time\":\"2024-02-16T14:%02" PRIu64 ":%02" PRIu64
               ".687000Z\",\"location\":{\"type\":\"Point\",\"coordinates\":[24.88556,"
               "59.48166]},\"speed\":%" PRIu64 ",\"seq\":%" PRIu64 "}}\n",
               s, ev, s, what, op->svc->base_url, coll, (s - 1) % 2 + 1, (s / 60) % 60, s % 60,
               s % 120, s) < 0
               ? -1
               : 0;
}

static int nr_stream(struct fp_service *svc, struct fp_call *c, int variant)
{
    uint64_t n = svc->knobs.stream_n, delay = svc->knobs.stream_delay_ms;
    const char *names[2] = { "n", "delay_ms" };
    uint64_t *slots[2] = { &n, &delay };
    uint64_t max[2] = { FP_STREAM_MAX, FP_DELAY_MAX_MS };

    for (size_t i = 0; i < 2; i++) {
        char *val;
        size_t vlen, count;
        int bad;

        if (fp_form_get(c->query, strlen(c->query), names[i], &val, &vlen, &count) < 0)
            return -1;
        bad = val != NULL && fp_parse_u64(val, max[i], slots[i]) < 0;
        free(val);
        if (bad)
            return fp_reply_new(c->req, HTTP_BADREQUEST,
                                json_pack("{s:[s]}", names[i], "A valid integer is required."));
    }
    return fp_stream_start(svc, c->req, n + 3, delay, "application/x-ndjson", stream_line, variant);
}

/* ---- dispatch -------------------------------------------------------------------------------- */

int fp_navirec_handle(struct fp_service *svc, struct fp_call *c)
{
    bool vehicles = fp_path_is(c->path, "/vehicles");
    int stream = fp_path_is(c->path, "/streams/vehicle_states")  ? 0
                 : fp_path_is(c->path, "/streams/driver_states") ? 1
                                                                 : -1;
    json_t *echo;
    char msg[64];
    int rc;

    if (nr_headers(c, vehicles ? "GET, POST, HEAD, OPTIONS" : "GET, HEAD, OPTIONS") < 0)
        return -1;
    if ((rc = nr_accept(svc, c, stream >= 0 ? NR_NDJSON : NR_JSON)) != 0 ||
        (rc = nr_auth(svc, c)) != 0)
        return rc < 0 ? -1 : 0;
    fp_authed(svc);
    if (vehicles && (c->cmd == EVHTTP_REQ_GET || c->cmd == EVHTTP_REQ_HEAD))
        return nr_list(svc, c);
    if (vehicles && c->cmd == EVHTTP_REQ_POST)
        return nr_create(svc, c);
    if (stream >= 0 && (c->cmd == EVHTTP_REQ_GET || c->cmd == EVHTTP_REQ_HEAD))
        return nr_stream(svc, c, stream);
    if (vehicles || stream >= 0) {
        snprintf(msg, sizeof(msg), "Method \"%s\" not allowed.", c->method);
        return nr_detail(c->req, HTTP_BADMETHOD, msg);
    }
    if ((echo = fp_request_json(c->req, FP_MAX_BODY)) == NULL)
        return -1;
    return fp_reply_new(c->req, HTTP_OK, json_pack("{s:o}", "echo", echo));
}

int fp_navirec_ratelimited(struct fp_service *svc, struct fp_call *c)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "Request was throttled. Expected available in %llu seconds.",
                     (unsigned long long)svc->knobs.retry_after);

    if (n < 0 || (size_t)n >= sizeof(msg) || nr_headers(c, "GET, HEAD, OPTIONS") < 0 ||
        fp_add_header_u64(c->req, "Retry-After", svc->knobs.retry_after) < 0)
        return -1;
    return nr_detail(c->req, 429, msg);
}
