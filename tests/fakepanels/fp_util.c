/* fp_util.c -- helpers shared by the fake panels: bounded parsing of numbers, queries, forms and
 * base64; replies; JSON views of requests; sessions and the counters /_fake/stats reports. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "gateway/util.h"
#include "fp.h"

/* ---- numbers, time, strings ------------------------------------------------------------------ */

int fp_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9') /* strtoull would accept spaces and a sign */
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

struct timeval fp_ms_to_tv(uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

uint64_t fp_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool fp_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

bool fp_path_is(const char *path, const char *suffix)
{
    size_t n = strlen(path), k = strlen(suffix);

    if (fp_ends_with(path, suffix))
        return true;
    return n > k && path[n - 1] == '/' && memcmp(path + n - 1 - k, suffix, k) == 0;
}

const char *fp_method_name(enum evhttp_cmd_type cmd)
{
    static const struct {
        enum evhttp_cmd_type cmd;
        const char *name;
    } names[] = {
        { EVHTTP_REQ_GET, "GET" },       { EVHTTP_REQ_POST, "POST" },
        { EVHTTP_REQ_HEAD, "HEAD" },     { EVHTTP_REQ_PUT, "PUT" },
        { EVHTTP_REQ_DELETE, "DELETE" }, { EVHTTP_REQ_OPTIONS, "OPTIONS" },
        { EVHTTP_REQ_TRACE, "TRACE" },   { EVHTTP_REQ_CONNECT, "CONNECT" },
        { EVHTTP_REQ_PATCH, "PATCH" },
    };

    for (size_t i = 0; i < FP_ARRAY_LEN(names); i++) {
        if (names[i].cmd == cmd)
            return names[i].name;
    }
    return "UNKNOWN";
}

bool fp_secret_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && CRYPTO_memcmp(a, b, an) == 0;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

json_t *fp_jstr(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    char *u;
    size_t k = 0;

    if (s != NULL || n > SIZE_MAX / 2)
        return s;
    if ((u = malloc(2 * n + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x80) {
            u[k++] = (char)c;
        } else {
            u[k++] = (char)(0xC0 | (c >> 6));
            u[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    s = json_stringn(u, k);
    free(u);
    return s;
}

json_t *fp_jstr0(const char *s)
{
    return fp_jstr(s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* ["Name", "value"]; NULL when out of memory. */
static json_t *header_pair(const struct evkeyval *h)
{
    json_t *pair = json_array();

    if (pair == NULL || json_array_append_new(pair, fp_jstr0(h->key)) < 0 ||
        json_array_append_new(pair, fp_jstr0(h->value)) < 0) {
        json_decref(pair);
        return NULL;
    }
    return pair;
}

json_t *fp_headers_json(struct evhttp_request *req)
{
    json_t *arr = json_array();
    const struct evkeyval *h;

    if (arr == NULL)
        return NULL;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        if (json_array_append_new(arr, header_pair(h)) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *fp_request_json(struct evhttp_request *req, size_t max_body)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t body_len = evbuffer_get_length(in);
    size_t keep = body_len < max_body ? body_len : max_body;
    const char *body = keep > 0 ? (const char *)evbuffer_pullup(in, (ev_ssize_t)keep) : "";
    json_t *root = json_object();

    if (root == NULL || body == NULL ||
        json_object_set_new(root, "method",
                            json_string(fp_method_name(evhttp_request_get_command(req)))) < 0 ||
        json_object_set_new(root, "uri", fp_jstr0(evhttp_request_get_uri(req))) < 0 ||
        json_object_set_new(root, "path", fp_jstr0(path)) < 0 ||
        json_object_set_new(root, "query", fp_jstr0(query)) < 0 ||
        json_object_set_new(root, "headers", fp_headers_json(req)) < 0 ||
        json_object_set_new(root, "body", fp_jstr(body, keep)) < 0 ||
        json_object_set_new(root, "body_len", json_integer((json_int_t)body_len)) < 0 ||
        (keep < body_len && json_object_set_new(root, "body_truncated", json_true()) < 0)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

static int dump_to_evbuffer(const char *p, size_t n, void *arg)
{
    return evbuffer_add(arg, p, n);
}

/* ---- replies --------------------------------------------------------------------------------- */

void fp_reply_error(struct evhttp_request *req, int code, const char *msg)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    json_t *root = json_pack("{s:s}", "error", msg);
    struct evbuffer *buf = evbuffer_new();

    evhttp_clear_headers(out);
    if (root != NULL && buf != NULL &&
        json_dump_callback(root, dump_to_evbuffer, buf, JSON_COMPACT) == 0 &&
        evhttp_add_header(out, "Content-Type", "application/json") == 0) {
        evhttp_send_reply(req, code, NULL, buf);
    } else {
        evhttp_send_reply(req, code, NULL, NULL);
    }
    json_decref(root);
    if (buf != NULL)
        evbuffer_free(buf);
}

/* Reason phrases libevent 2.1 lacks (it would say "Client Error"); NULL: libevent's own. */
static const char *reason_phrase(int code)
{
    switch (code) {
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    default:
        return NULL;
    }
}

/* Sends buf (emptied, still the caller's) as application/json unless a Content-Type is set. */
static int reply_buf(struct evhttp_request *req, int code, struct evbuffer *buf)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    if (evhttp_find_header(out, "Content-Type") == NULL &&
        evhttp_add_header(out, "Content-Type", "application/json") < 0)
        return -1;
    evhttp_send_reply(req, code, reason_phrase(code), buf);
    return 0;
}

int fp_reply_bytes(struct evhttp_request *req, int code, const char *p, size_t n)
{
    struct evbuffer *buf = evbuffer_new();
    int rc = -1;

    if (buf == NULL)
        return -1;
    if (evbuffer_add(buf, p, n) == 0)
        rc = reply_buf(req, code, buf);
    evbuffer_free(buf);
    return rc;
}

int fp_reply_text(struct evhttp_request *req, int code, const char *s)
{
    return fp_reply_bytes(req, code, s, strlen(s));
}

int fp_reply_json(struct evhttp_request *req, int code, const json_t *root)
{
    struct evbuffer *buf = evbuffer_new();
    int rc = -1;

    if (buf == NULL)
        return -1;
    if (json_dump_callback(root, dump_to_evbuffer, buf, JSON_COMPACT) == 0)
        rc = reply_buf(req, code, buf);
    evbuffer_free(buf);
    return rc;
}

int fp_reply_new(struct evhttp_request *req, int code, json_t *root)
{
    int rc;

    if (root == NULL)
        return -1;
    rc = fp_reply_json(req, code, root);
    json_decref(root);
    return rc;
}

int fp_add_header(struct evhttp_request *req, const char *name, const char *value)
{
    return evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

int fp_add_header_u64(struct evhttp_request *req, const char *name, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof(s), "%llu", (unsigned long long)v);

    if (n < 0 || (size_t)n >= sizeof(s))
        return -1;
    return fp_add_header(req, name, s);
}

/* ---- request headers ------------------------------------------------------------------------- */

const char *fp_header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

size_t fp_header_count(struct evhttp_request *req, const char *name)
{
    const struct evkeyval *h;
    size_t n = 0;

    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        if (evutil_ascii_strcasecmp(h->key, name) == 0)
            n++;
    }
    return n;
}

bool fp_media_is(const char *value, const char *type)
{
    size_t k = strlen(type);

    if (value == NULL)
        return false;
    while (*value == ' ' || *value == '\t')
        value++;
    if (evutil_ascii_strncasecmp(value, type, k) != 0)
        return false;
    value += k;
    while (*value == ' ' || *value == '\t')
        value++;
    return *value == '\0' || *value == ';';
}

/* ---- forms and queries ----------------------------------------------------------------------- */

/* Decoded byte at p[*i] (advancing *i): "%XX" is one byte, '+' a space; a '%' without two hex
 * digits stays itself, as the panels' frameworks leave it. */
static char decode_at(const char *p, size_t n, size_t *i)
{
    char c = p[*i];

    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c == '%' && n - *i >= 3 && pg_hexval(p[*i + 1]) >= 0 && pg_hexval(p[*i + 2]) >= 0) {
        char v = (char)(pg_hexval(p[*i + 1]) * 16 + pg_hexval(p[*i + 2]));
        *i += 3;
        return v;
    }
    (*i)++;
    return c;
}

char *fp_urldecode(const char *p, size_t n, size_t *outn)
{
    char *out = malloc(n + 1);
    size_t i = 0, k = 0;

    if (out == NULL)
        return NULL;
    while (i < n)
        out[k++] = decode_at(p, n, &i);
    out[k] = '\0';
    *outn = k;
    return out;
}

/* p[0..n) decodes to exactly key. No allocation: this runs once per pair of a hostile body. */
static bool decoded_equals(const char *p, size_t n, const char *key)
{
    size_t i = 0;

    while (i < n) {
        if (*key == '\0' || decode_at(p, n, &i) != *key)
            return false;
        key++;
    }
    return *key == '\0';
}

int fp_form_each(const char *p, size_t n, fp_pair_fn *fn, void *arg)
{
    while (n > 0) {
        const char *amp = memchr(p, '&', n);
        size_t pn = amp != NULL ? (size_t)(amp - p) : n;
        const char *eq = memchr(p, '=', pn);
        size_t kn = eq != NULL ? (size_t)(eq - p) : pn;
        int rc;

        if (pn > 0) {
            rc = fn(p, kn, eq != NULL ? eq + 1 : NULL, eq != NULL ? pn - kn - 1 : 0, arg);
            if (rc != 0)
                return rc;
        }
        p += pn;
        n -= pn;
        if (amp != NULL) {
            p++;
            n--;
        }
    }
    return 0;
}

struct form_get {
    const char *key;
    char *val;
    size_t vlen, count;
};

static int form_get_pair(const char *k, size_t kn, const char *v, size_t vn, void *arg)
{
    struct form_get *g = arg;

    if (!decoded_equals(k, kn, g->key))
        return 0;
    g->count++;
    if (g->val == NULL) {
        g->val = fp_urldecode(v != NULL ? v : "", vn, &g->vlen);
        if (g->val == NULL)
            return -1;
    }
    return 0;
}

int fp_form_get(const char *p, size_t n, const char *key, char **val, size_t *vlen, size_t *count)
{
    struct form_get g = { key, NULL, 0, 0 };

    if (fp_form_each(p, n, form_get_pair, &g) < 0) {
        free(g.val);
        return -1;
    }
    *val = g.val;
    *vlen = g.vlen;
    *count = g.count;
    return 0;
}

int fp_quote_plus(struct evbuffer *out, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        int rc;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-' || c == '~') {
            rc = evbuffer_add(out, &p[i], 1);
        } else if (c == ' ') {
            rc = evbuffer_add(out, "+", 1);
        } else {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            rc = evbuffer_add(out, e, 3);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ---- base64, hex, random --------------------------------------------------------------------- */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t fp_b64_encode(const unsigned char *in, size_t n, bool url, char *out, size_t cap)
{
    const char *abc = url ? b64_url : b64_std;
    size_t k = 0, need = url ? (n * 4 + 2) / 3 : (n + 2) / 3 * 4;

    if (n > SIZE_MAX / 4 - 1 || need + 1 > cap)
        return 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = n - i;

        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        out[k++] = abc[(v >> 18) & 63];
        out[k++] = abc[(v >> 12) & 63];
        if (left > 1)
            out[k++] = abc[(v >> 6) & 63];
        else if (!url)
            out[k++] = '=';
        if (left > 2)
            out[k++] = abc[v & 63];
        else if (!url)
            out[k++] = '=';
    }
    out[k] = '\0';
    return k;
}

int fp_b64_decode(const char *in, size_t n, bool url, unsigned char *out, size_t cap, size_t *outn)
{
    const char *abc = url ? b64_url : b64_std;
    uint32_t acc = 0;
    size_t bits = 0, k = 0, pad = 0;

    if (!url) {
        if (n % 4 != 0)
            return -1;
        while (pad < 2 && n > 0 && in[n - 1] == '=') {
            n--;
            pad++;
        }
    }
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *c = in[i] != '\0' ? strchr(abc, in[i]) : NULL;

        if (c == NULL)
            return -1;
        acc = (acc << 6) | (uint32_t)(c - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (k >= cap)
                return -1;
            out[k++] = (unsigned char)(acc >> bits);
        }
    }
    /* leftover bits must be zero, or two encodings would decode alike */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    *outn = k;
    return 0;
}

void fp_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int fp_random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];

    if (nbytes > sizeof(b) || RAND_bytes(b, (int)nbytes) != 1)
        return -1;
    fp_hex(b, nbytes, out);
    return 0;
}

int fp_uuid4(char out[37])
{
    unsigned char b[16];
    char h[33];
    int n;

    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    fp_hex(b, sizeof(b), h);
    n = snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
    return n == 36 ? 0 : -1;
}

/* ---- sessions -------------------------------------------------------------------------------- */

static void copy_id(char dst[FP_SESSION_ID_MAX], const char *id)
{
    size_t n = strlen(id);

    if (n >= FP_SESSION_ID_MAX)
        n = FP_SESSION_ID_MAX - 1;
    memcpy(dst, id, n);
    dst[n] = '\0';
}

static void remember_ended(struct fp_service *svc, const char *id)
{
    struct fp_sessions *s = &svc->sessions;

    copy_id(s->ended[s->ended_next], id);
    s->ended_next = (s->ended_next + 1) % FP_MAX_SESSIONS;
    if (s->nended < FP_MAX_SESSIONS)
        s->nended++;
}

int fp_session_add(struct fp_service *svc, const char *id)
{
    struct fp_sessions *s = &svc->sessions;

    if (s->live == NULL)
        return -1;
    if (s->nlive == FP_MAX_SESSIONS) {
        memmove(s->live[0], s->live[1], (FP_MAX_SESSIONS - 1) * sizeof(s->live[0]));
        s->nlive--;
    }
    copy_id(s->live[s->nlive++], id);
    return 0;
}

enum fp_session_state fp_session_state(const struct fp_service *svc, const char *id)
{
    const struct fp_sessions *s = &svc->sessions;

    if (strlen(id) >= FP_SESSION_ID_MAX)
        return FP_SESSION_UNKNOWN;
    for (size_t i = 0; i < s->nlive; i++) {
        if (strcmp(s->live[i], id) == 0)
            return FP_SESSION_LIVE;
    }
    for (size_t i = 0; i < s->nended; i++) {
        if (strcmp(s->ended[i], id) == 0)
            return FP_SESSION_ENDED;
    }
    return FP_SESSION_UNKNOWN;
}

bool fp_session_end(struct fp_service *svc, const char *id)
{
    struct fp_sessions *s = &svc->sessions;

    for (size_t i = 0; i < s->nlive; i++) {
        if (strcmp(s->live[i], id) == 0) {
            remember_ended(svc, id);
            memmove(s->live[i], s->live[i + 1], (s->nlive - i - 1) * sizeof(s->live[0]));
            s->nlive--;
            return true;
        }
    }
    return false;
}

size_t fp_sessions_end_all(struct fp_service *svc)
{
    struct fp_sessions *s = &svc->sessions;
    size_t n = s->nlive;

    for (size_t i = 0; i < n; i++)
        remember_ended(svc, s->live[i]);
    s->nlive = 0;
    return n;
}

/* ---- counters -------------------------------------------------------------------------------- */

void fp_authed(struct fp_service *svc)
{
    svc->authed++;
    if (svc->knobs.expire_every > 0 && svc->authed >= svc->knobs.expire_every) {
        fp_sessions_end_all(svc);
        svc->expiries++;
        svc->authed = 0;
    }
}

static void bump(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);

    if (v != NULL)
        json_integer_set(v, json_integer_value(v) + 1);
    else
        json_object_set_new(obj, name, json_integer(1)); /* lost on OOM: only a counter */
}

void fp_count(struct fp_service *svc, const char *name)
{
    bump(svc->counters, name);
}

void fp_auth_failed(struct fp_service *svc, const char *reason)
{
    svc->auth_failures++;
    bump(svc->reasons, reason);
}
