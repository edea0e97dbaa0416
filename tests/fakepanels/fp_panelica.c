/* fp_panelica.c -- fake Panelica External API (--panelica), after panels/panelica-api.md.
 *
 * Every request but GET .../health needs
 *   X-API-Key: pk_fake_panelica
 *   X-Timestamp: <unix seconds>, within ts_window (default 300) seconds of the fake's clock
 *   X-Signature: lowercase hex HMAC-SHA256(api_secret, string-to-sign)
 * The string-to-sign is SPEC section 1's default, timestamp + METHOD + path-with-query + body
 * (panelica-api.md names the headers but defers the string to a guide that is not in panels/).
 * The string_to_sign knob takes a template of {timestamp} (the X-Timestamp value as sent),
 * {method}, {path} (the request-target: path and query as received), {query} (raw, no '?'),
 * {body} and {body_sha256} (lowercase hex); other text is literal. last_request.string_to_sign
 * shows what the fake signed (first 4 KiB).
 *
 * Refusals use the docs' error shape {"error","code","details"}, all HTTP 401: MISSING_API_KEY,
 * INVALID_API_KEY, MISSING_TIMESTAMP, INVALID_TIMESTAMP (not decimal seconds),
 * TIMESTAMP_EXPIRED, MISSING_SIGNATURE, INVALID_SIGNATURE. Knobs: reject_next=N refuses the next
 * N well-signed requests with reject_code (default INVALID_SIGNATURE); ratelimit gives 429
 * RATE_LIMIT_EXCEEDED with Retry-After. A repeated auth header counts as dup_auth_headers (the
 * first one is used).
 * Success: GET .../health {"status":"healthy",...} (no auth), GET .../me the key info, any other
 * path {"echo":{...}} ("successful responses return the data directly"). */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fp.h"

#define PL_API_KEY "pk_fake_panelica"
#define PL_STS_SHOWN 4096 /* bytes of the string-to-sign kept in last_request */

const char *const fp_panelica_counters[] = { "dup_auth_headers", NULL };
const char *const fp_panelica_reasons[] = {
    "missing_key",       "invalid_key",       "missing_timestamp",
    "invalid_timestamp", "timestamp_expired", "missing_signature",
    "invalid_signature", "rejected_by_knob",  NULL,
};

struct pl_err {
    const char *code;
    const char *error;
    const char *details;
    const char *reason; /* stats */
};

static const struct pl_err pl_errors[] = {
    { "MISSING_API_KEY", "Missing API key", "The X-API-Key header is required", "missing_key" },
    { "INVALID_API_KEY", "Invalid API key", "The API key does not exist or has been revoked",
      "invalid_key" },
    { "MISSING_TIMESTAMP", "Missing timestamp", "The X-Timestamp header is required",
      "missing_timestamp" },
    { "INVALID_TIMESTAMP", "Invalid timestamp", "X-Timestamp must be a Unix time in seconds",
      "invalid_timestamp" },
    { "TIMESTAMP_EXPIRED", "Request timestamp expired",
      "X-Timestamp is outside the allowed window around the server time", "timestamp_expired" },
    { "MISSING_SIGNATURE", "Missing signature", "The X-Signature header is required",
      "missing_signature" },
    { "INVALID_SIGNATURE", "Invalid signature",
      "The HMAC-SHA256 signature does not match the request", "invalid_signature" },
};

static const struct pl_err *pl_find(const char *code)
{
    for (size_t i = 0; i < FP_ARRAY_LEN(pl_errors); i++) {
        if (strcmp(pl_errors[i].code, code) == 0)
            return &pl_errors[i];
    }
    return NULL;
}

int fp_panelica_check_code(const char *s)
{
    return pl_find(s) != NULL ? 0 : -1;
}

static int pl_reply_error(struct evhttp_request *req, int status, const char *error,
                          const char *code, const char *details)
{
    return fp_reply_new(
        req, status,
        json_pack("{s:s, s:s, s:s}", "error", error, "code", code, "details", details));
}

/* Refuses for credentials; reason_override replaces the stats reason (the reject knob). */
static int pl_refuse(struct fp_service *svc, struct evhttp_request *req, const char *code,
                     const char *reason_override)
{
    const struct pl_err *e = pl_find(code);

    if (e == NULL)
        return -1;
    fp_auth_failed(svc, reason_override != NULL ? reason_override : e->reason);
    return pl_reply_error(req, 401, e->error, e->code, e->details);
}

static int sha256_hex(const char *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return -1;
    fp_hex(md, 32, out);
    return 0;
}

/* Expands the string_to_sign template for c into out. */
static int string_to_sign(const struct fp_service *svc, const struct fp_call *c, const char *ts,
                          struct evbuffer *out)
{
    const char *t = svc->knobs.string_to_sign;

    while (*t != '\0') {
        const char *close = *t == '{' ? strchr(t, '}') : NULL;
        size_t n = close != NULL ? (size_t)(close - t + 1) : 1;
        char hex[65];
        int rc;

        if (n == 11 && memcmp(t, "{timestamp}", n) == 0) {
            rc = evbuffer_add(out, ts, strlen(ts));
        } else if (n == 8 && memcmp(t, "{method}", n) == 0) {
            rc = evbuffer_add(out, c->method, strlen(c->method));
        } else if (n == 6 && memcmp(t, "{path}", n) == 0) {
            rc = evbuffer_add(out, c->raw_uri, strlen(c->raw_uri));
        } else if (n == 7 && memcmp(t, "{query}", n) == 0) {
            rc = evbuffer_add(out, c->query, strlen(c->query));
        } else if (n == 6 && memcmp(t, "{body}", n) == 0) {
            rc = evbuffer_add(out, c->body, c->body_len);
        } else if (n == 13 && memcmp(t, "{body_sha256}", n) == 0) {
            rc = sha256_hex(c->body, c->body_len, hex) < 0 ? -1 : evbuffer_add(out, hex, 64);
        } else {
            n = 1;
            rc = evbuffer_add(out, t, 1);
        }
        if (rc < 0)
            return -1;
        t += n;
    }
    return 0;
}

/* 1: sig is the lowercase hex HMAC of the string-to-sign; 0: it is not; -1: out of memory. */
static int signature_ok(struct fp_service *svc, const struct fp_call *c, const char *ts,
                        const char *sig)
{
    struct evbuffer *sts = evbuffer_new();
    const char *key = svc->knobs.password;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const unsigned char *p;
    size_t n;
    char hex[65];
    int rc = -1;

    if (sts == NULL)
        return -1;
    if (string_to_sign(svc, c, ts, sts) < 0)
        goto out;
    n = evbuffer_get_length(sts);
    p = n > 0 ? evbuffer_pullup(sts, -1) : (const unsigned char *)"";
    if (p == NULL || HMAC(EVP_sha256(), key, (int)strlen(key), p, n, mac, &len) == NULL ||
        len != 32)
        goto out;
    if (svc->last_request != NULL)
        json_object_set_new(svc->last_request, "string_to_sign",
                            fp_jstr((const char *)p, n < PL_STS_SHOWN ? n : PL_STS_SHOWN));
    fp_hex(mac, 32, hex);
    rc = strlen(sig) == 64 && CRYPTO_memcmp(hex, sig, 64) == 0 ? 1 : 0;
out:
    evbuffer_free(sts);
    return rc;
}

/* 0: authenticated; 1: refused (answered); -1: out of memory. */
static int pl_auth(struct fp_service *svc, const struct fp_call *c)
{
    const char *key = fp_header(c->req, "X-API-Key");
    const char *ts = fp_header(c->req, "X-Timestamp");
    const char *sig = fp_header(c->req, "X-Signature");
    uint64_t t, now = (uint64_t)time(NULL), skew;
    int rc;

    if (fp_header_count(c->req, "X-API-Key") > 1 || fp_header_count(c->req, "X-Timestamp") > 1 ||
        fp_header_count(c->req, "X-Signature") > 1)
        fp_count(svc, "dup_auth_headers");
    if (key == NULL)
        return pl_refuse(svc, c->req, "MISSING_API_KEY", NULL) < 0 ? -1 : 1;
    if (!fp_secret_eq(key, strlen(key), PL_API_KEY, strlen(PL_API_KEY)))
        return pl_refuse(svc, c->req, "INVALID_API_KEY", NULL) < 0 ? -1 : 1;
    if (ts == NULL)
        return pl_refuse(svc, c->req, "MISSING_TIMESTAMP", NULL) < 0 ? -1 : 1;
    if (fp_parse_u64(ts, UINT32_MAX * (uint64_t)16, &t) < 0)
        return pl_refuse(svc, c->req, "INVALID_TIMESTAMP", NULL) < 0 ? -1 : 1;
    skew = t > now ? t - now : now - t;
    if (skew > svc->knobs.ts_window)
        return pl_refuse(svc, c->req, "TIMESTAMP_EXPIRED", NULL) < 0 ? -1 : 1;
    if (sig == NULL)
        return pl_refuse(svc, c->req, "MISSING_SIGNATURE", NULL) < 0 ? -1 : 1;
    if ((rc = signature_ok(svc, c, ts, sig)) <= 0)
        return rc < 0 || pl_refuse(svc, c->req, "INVALID_SIGNATURE", NULL) < 0 ? -1 : 1;
    if (svc->knobs.reject_next > 0) {
        svc->knobs.reject_next--;
        return pl_refuse(svc, c->req, svc->knobs.reject_code, "rejected_by_knob") < 0 ? -1 : 1;
    }
    return 0;
}

int fp_panelica_handle(struct fp_service *svc, struct fp_call *c)
{
    json_t *echo;
    int rc;

    if (fp_path_is(c->path, "/health") && (c->cmd == EVHTTP_REQ_GET || c->cmd == EVHTTP_REQ_HEAD))
        return fp_reply_text(c->req, HTTP_OK,
                             "{\"status\":\"healthy\",\"version\":\"1.0.27\",\"uptime\":\"1h\"}");
    if ((rc = pl_auth(svc, c)) != 0)
        return rc < 0 ? -1 : 0;
    fp_authed(svc);
    if (fp_path_is(c->path, "/me") && c->cmd == EVHTTP_REQ_GET)
        return fp_reply_new(c->req, HTTP_OK,
                            json_pack("{s:s, s:s, s:s, s:[s,s], s:s, s:{s:s, s:s, s:s}}", "key_id",
                                      "00000000-0000-4000-8000-00000000fa4e", "key_prefix",
                                      PL_API_KEY, "name", "fakepanels", "scopes", "*:*",
                                      "domains:read", "rate_limit_tier", "enterprise", "user", "id",
                                      "00000000-0000-4000-8000-000000000001", "username", "admin",
                                      "role", "ROOT"));
    if ((echo = fp_request_json(c->req, FP_MAX_BODY)) == NULL)
        return -1;
    return fp_reply_new(c->req, HTTP_OK, json_pack("{s:o}", "echo", echo));
}

int fp_panelica_ratelimited(struct fp_service *svc, struct fp_call *c)
{
    char details[64];
    int n = snprintf(details, sizeof(details), "Retry after %llu seconds",
                     (unsigned long long)svc->knobs.retry_after);

    if (n < 0 || (size_t)n >= sizeof(details) ||
        fp_add_header_u64(c->req, "Retry-After", svc->knobs.retry_after) < 0)
        return -1;
    return pl_reply_error(c->req, 429, "Rate limit exceeded", "RATE_LIMIT_EXCEEDED", details);
}
