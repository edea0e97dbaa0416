/* fp_navixy.c -- fake Navixy user API (--navixy) and Panel API (--navixy-panel), after
 * panels/navixy-backend-api.md and panels/navixy-panel-api.md.
 *
 * Paths match on their end, with or without one trailing '/', so any prefix (/v2, /panel) works:
 *   user API:  /user/auth     login: login+password -> {"success":true,"hash":"<32 hex>"}
 *              /user/logout   ends the session of the hash it carries
 *   Panel API: /account/auth  login -> {"hash":"<32 hex>","success":true,"permissions":{...}}
 *              /account/logout
 *   /always-expired  code 4 ("session ended") whatever hash it carries: a panel path that
 *              refuses every session (counted as always_refused, not as an auth failure)
 *   any other path needs a live hash -> {"success":true,"echo":{method,uri,path,query,headers,
 *              body,body_len}}
 * Parameters (login, password, hash) come from, in this priority: the root of a JSON body
 * (Content-Type application/json), a form body (application/x-www-form-urlencoded), the query;
 * and for the hash only, last, "Authorization: NVX <hash>" -- user API only, the Panel API
 * ignores that header (it counts it as nvx_header_ignored).
 *
 * Errors: {"success":false,"status":{"code":N,"description":"..."}} with the HTTP status of the
 * docs' table (400 when it gives none): a missing or unknown hash 4, a hash that is not 32 hex
 * digits 3, a wrong login or password 102 (the Panel API answers an unknown login 12, "Dealer not
 * found", as in its docs), a missing login or password 7, a JSON body that does not parse 5,
 * the rate-limit knob 15 (HTTP 429; Retry-After only when the retry_after knob is > 0).
 * Stats: hash_multi counts requests whose hash appeared more than once (in two places, or twice
 * in one); hash_json/hash_form/hash_query/hash_header count requests carrying it there;
 * last_request.hash_places lists where the last request had it. */

#include <stdlib.h>
#include <string.h>

#include <event2/util.h>

#include "fp.h"

#define NVX_HASH_LEN 32

const char *const fp_navixy_counters[] = {
    "hash_multi",  "hash_json",          "hash_form",      "hash_query",
    "hash_header", "nvx_header_ignored", "always_refused", NULL,
};
const char *const fp_navixy_reasons[] = {
    "missing_hash", "malformed_hash", "unknown_hash", "expired_hash", NULL,
};

struct nvx_err {
    int code;
    int http; /* 0: the default, 400 */
    const char *desc;
};

/* The docs' table of error codes. */
static const struct nvx_err nvx_errors[] = {
    { 1, 500, "Database error" },
    { 2, 403, "Service Auth error" },
    { 3, 0, "Wrong user hash" },
    { 4, 0, "User not found or session ended" },
    { 5, 0, "Wrong request format" },
    { 6, 500, "Unexpected error" },
    { 7, 0, "Invalid parameters" },
    { 8, 503, "Queue service error, try again later" },
    { 9, 412, "Too large request" },
    { 11, 403, "Access denied" },
    { 12, 0, "Dealer not found" },
    { 13, 403, "Operation not permitted" },
    { 14, 503, "Database unavailable" },
    { 15, 429, "Too many requests (rate limit exceeded)" },
    { 101, 403, "In demo mode this function is disabled" },
    { 102, 0, "Wrong login or password" },
    { 103, 0, "User not activated" },
    { 111, 0, "Wrong handler" },
    { 112, 0, "Wrong method" },
    { 201, 0, "Not found in database" },
    { 202, 0, "Too many points in zone" },
    { 203, 0, "Delete entity associated with" },
    { 204, 404, "Entity not found" },
    { 206, 0, "Login already in use" },
    { 207, 0, "Invalid captcha" },
    { 208, 403, "Device blocked" },
    { 209, 0, "Failed sending email" },
    { 210, 0, "Geocoding failed" },
    { 211, 0, "Requested time span is too big" },
    { 212, 0, "Requested limit is too big" },
    { 213, 0, "Cannot perform action: the device is offline" },
    { 214, 0, "Requested operation or parameters are not supported by the device" },
    { 215, 0, "External service error" },
    { 217, 0, "List contains nonexistent entities" },
    { 218, 0, "Malformed external service parameters" },
    { 219, 403, "Not allowed for clones of the device" },
    { 220, 0, "Unknown device model" },
    { 221, 403, "Device limit exceeded" },
    { 222, 0, "Plugin not found" },
    { 223, 0, "Phone number already in use" },
    { 224, 0, "Device ID already in use" },
    { 225, 403, "Not allowed for this legal type" },
    { 226, 0, "Wrong ICCID" },
    { 227, 0, "Wrong activation code" },
    { 228, 0, "Not supported by sensor" },
    { 229, 404, "Requested data is not ready yet" },
    { 230, 0, "Not supported for this entity type" },
    { 231, 409, "Entity type mismatch" },
    { 232, 0, "Input already in use" },
    { 233, 0, "No data file" },
    { 234, 0, "Invalid data format" },
    { 235, 0, "Missing calibration data" },
    { 236, 402, "Feature unavailable due to tariff restrictions" },
    { 237, 0, "Invalid tariff" },
    { 238, 403, "Changing tariff is not allowed" },
    { 239, 404, "New tariff doesn't exist" },
    { 240, 403, "Not allowed to change tariff too frequently" },
    { 241, 0, "Cannot change phone to bundled sim. Contact tech support." },
    { 242, 0, "There were errors during content validation" },
    { 243, 0, "Device already connected." },
    { 244, 0, "Duplicate entity label." },
    { 245, 0, "New password must be different" },
    { 246, 0, "Invalid user ID" },
    { 247, 409, "Entity already exists" },
    { 248, 0, "Wrong password" },
    { 249, 403, "Operation available for clones only" },
    { 250, 403, "Not allowed for deleted devices" },
    { 251, 403, "Insufficient funds" },
    { 252, 0, "Device already corrupted" },
    { 253, 0, "Device has clones" },
    { 254, 500, "Cannot save file" },
    { 255, 0, "Invalid task state" },
    { 256, 0, "Location already actual" },
    { 257, 403, "Registration forbidden" },
    { 258, 404, "Bundle not found" },
    { 259, 0, "Payments count not comply with summary" },
    { 260, 0, "Payments sum not comply with summary" },
    { 261, 403, "Entity has external links" },
    { 262, 0, "Entries list is missing some entries or contains nonexistent entries" },
    { 263, 0, "No change needed, old and new values are the same" },
    { 264, 403, "Timeout not reached" },
    { 265, 403, "Already done" },
    { 266, 403, "Cannot perform action for the device in current status" },
    { 267, 0, "Too many entities" },
    { 268, 402, "Over quota" },
    { 269, 0, "Invalid file state" },
    { 270, 0, "Too many sensors of same type already exist" },
    { 271, 413, "File over max size" },
};

/* Where a parameter was found, in lookup priority. */
enum nvx_src { NVX_NONE, NVX_JSON, NVX_FORM, NVX_QUERY, NVX_HEADER };

static const char *const nvx_src_names[] = { "none", "json", "form", "query", "header" };

/* The body, parsed once per request. */
struct nvx_body {
    json_t *json; /* root of a JSON body; NULL when the body is not JSON */
    bool form;    /* the body is x-www-form-urlencoded */
};

/* A parameter's first occurrence in priority order. */
struct nvx_param {
    enum nvx_src src;
    char *val; /* owned, NUL-terminated; NULL when absent or not a JSON string */
    size_t len;
    unsigned places; /* bit (1 << src) for every place it occurs */
    size_t total;    /* occurrences, all places together */
};

static bool is_panel(const struct fp_service *svc)
{
    return svc->def->kind == FP_NAVIXY_PANEL;
}

static int nvx_error_x(struct evhttp_request *req, uint64_t code, json_t *errors)
{
    const struct nvx_err *e = NULL;
    json_t *root;

    for (size_t i = 0; i < FP_ARRAY_LEN(nvx_errors); i++) {
        if ((uint64_t)nvx_errors[i].code == code)
            e = &nvx_errors[i];
    }
    root = json_pack("{s:b, s:{s:I, s:s}}", "success", 0, "status", "code", (json_int_t)code,
                     "description", e != NULL ? e->desc : "Unknown error");
    if (root != NULL && errors != NULL && json_object_set(root, "errors", errors) < 0) {
        json_decref(root);
        return -1;
    }
    return fp_reply_new(req, e != NULL && e->http != 0 ? e->http : HTTP_BADREQUEST, root);
}

static int nvx_error(struct evhttp_request *req, uint64_t code)
{
    return nvx_error_x(req, code, NULL);
}

static void param_found(struct nvx_param *p, enum nvx_src src, size_t count, char *val, size_t len)
{
    p->places |= 1u << src;
    p->total += count;
    if (p->src == NVX_NONE) {
        p->src = src;
        p->val = val;
        p->len = len;
    } else {
        free(val);
    }
}

/* Looks name up in the body and the query (and, when header, in Authorization: NVX). */
static int nvx_param_get(const struct fp_call *c, const struct nvx_body *b, const char *name,
                         bool header, struct nvx_param *p)
{
    json_t *v = json_is_object(b->json) ? json_object_get(b->json, name) : NULL;
    const struct evkeyval *h;
    char *val;
    size_t len, count;

    memset(p, 0, sizeof(*p));
    if (v != NULL) {
        val = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
        if (json_is_string(v) && val == NULL)
            return -1;
        param_found(p, NVX_JSON, 1, val, val != NULL ? strlen(val) : 0);
    }
    if (b->form) {
        if (fp_form_get(c->body, c->body_len, name, &val, &len, &count) < 0)
            goto oom;
        if (count > 0)
            param_found(p, NVX_FORM, count, val, len);
    }
    if (fp_form_get(c->query, strlen(c->query), name, &val, &len, &count) < 0)
        goto oom;
    if (count > 0)
        param_found(p, NVX_QUERY, count, val, len);
    if (!header)
        return 0;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(c->req), next)
    {
        const char *s = h->value;
        if (evutil_ascii_strcasecmp(h->key, "Authorization") != 0 ||
            evutil_ascii_strncasecmp(s, "NVX ", 4) != 0)
            continue;
        s += 4;
        while (*s == ' ')
            s++;
        if ((val = strdup(s)) == NULL)
            goto oom;
        param_found(p, NVX_HEADER, 1, val, strlen(val));
    }
    return 0;
oom:
    free(p->val);
    p->val = NULL;
    return -1;
}

/* 0: parsed (or not JSON); 1: a JSON body that does not parse (answer code 5). */
static int nvx_body_parse(const struct fp_call *c, struct nvx_body *b)
{
    const char *ct = fp_header(c->req, "Content-Type");

    memset(b, 0, sizeof(*b));
    if (fp_media_is(ct, "application/json") && c->body_len > 0) {
        b->json = json_loadb(c->body, c->body_len, JSON_DECODE_ANY, NULL);
        return b->json == NULL ? 1 : 0;
    }
    b->form = fp_media_is(ct, "application/x-www-form-urlencoded");
    return 0;
}

static bool valid_hash(const struct nvx_param *p)
{
    if (p->val == NULL || p->len != NVX_HASH_LEN)
        return false;
    for (size_t i = 0; i < NVX_HASH_LEN; i++) {
        char ch = p->val[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
    }
    return true;
}

static int missing_params(struct evhttp_request *req, const struct nvx_param *login,
                          const struct nvx_param *pass)
{
    json_t *errors = json_array();
    const struct nvx_param *ps[2] = { login, pass };
    const char *names[2] = { "login", "password" };
    int rc;

    if (errors == NULL)
        return -1;
    for (size_t i = 0; i < 2; i++) {
        if (ps[i]->val == NULL &&
            json_array_append_new(errors, json_pack("{s:s, s:s}", "parameter", names[i], "error",
                                                    ps[i]->src == NVX_NONE
                                                        ? "Parameter is missing"
                                                        : "Parameter must be a string")) < 0) {
            json_decref(errors);
            return -1;
        }
    }
    rc = nvx_error_x(req, 7, errors);
    json_decref(errors);
    return rc;
}

static int login_answer(struct fp_service *svc, struct evhttp_request *req)
{
    char hash[NVX_HASH_LEN + 1];

    if (fp_random_hex(hash, NVX_HASH_LEN / 2) < 0 || fp_session_add(svc, hash) < 0)
        return -1;
    svc->logins++;
    if (!is_panel(svc))
        return fp_reply_new(req, HTTP_OK, json_pack("{s:b, s:s}", "success", 1, "hash", hash));
    return fp_reply_new(req, HTTP_OK,
                        json_pack("{s:s, s:b, s:{s:[s,s,s,s], s:[s,s,s,s], s:[s]}}", "hash", hash,
                                  "success", 1, "permissions", "trackers", "create", "read",
                                  "update", "delete", "users", "create", "read", "update", "delete",
                                  "user_sessions", "create"));
}

static int nvx_login(struct fp_service *svc, struct fp_call *c, const struct nvx_body *b)
{
    const char *want_login = is_panel(svc) ? "fake-panel-admin" : "fake-navixy-user";
    const char *want_pass = svc->knobs.password;
    struct nvx_param login, pass;
    int rc;

    if (nvx_param_get(c, b, "login", false, &login) < 0)
        return -1;
    if (nvx_param_get(c, b, "password", false, &pass) < 0) {
        free(login.val);
        return -1;
    }
    if (login.val == NULL || pass.val == NULL) {
        svc->login_failures++;
        rc = missing_params(c->req, &login, &pass);
    } else if (!fp_secret_eq(login.val, login.len, want_login, strlen(want_login))) {
        svc->login_failures++;
        rc = nvx_error(c->req, is_panel(svc) ? 12 : 102);
    } else if (!fp_secret_eq(pass.val, pass.len, want_pass, strlen(want_pass))) {
        svc->login_failures++;
        rc = nvx_error(c->req, 102);
    } else {
        rc = login_answer(svc, c->req);
    }
    free(login.val);
    free(pass.val);
    return rc;
}

/* Notes where the hash came from; stats only, failures ignored. */
static void note_places(struct fp_service *svc, const struct nvx_param *h)
{
    static const char *const counter[] = { NULL, "hash_json", "hash_form", "hash_query",
                                           "hash_header" };
    json_t *places = json_array();

    for (int s = NVX_JSON; s <= NVX_HEADER; s++) {
        if ((h->places & (1u << s)) == 0)
            continue;
        fp_count(svc, counter[s]);
        json_array_append_new(places, json_string(nvx_src_names[s]));
    }
    if (h->total > 1)
        fp_count(svc, "hash_multi");
    if (svc->last_request != NULL)
        json_object_set(svc->last_request, "hash_places", places);
    json_decref(places);
}

/* Every path but the login: a live hash, then logout, the fail knob, or the echo. */
static int nvx_session_call(struct fp_service *svc, struct fp_call *c, const struct nvx_body *b)
{
    struct nvx_param h;
    json_t *echo;
    int rc;

    if (nvx_param_get(c, b, "hash", !is_panel(svc), &h) < 0)
        return -1;
    note_places(svc, &h);
    if (is_panel(svc) && fp_header(c->req, "Authorization") != NULL &&
        evutil_ascii_strncasecmp(fp_header(c->req, "Authorization"), "NVX ", 4) == 0)
        fp_count(svc, "nvx_header_ignored");
    if (fp_path_is(c->path, "/always-expired")) {
        fp_count(svc, "always_refused");
        rc = nvx_error(c->req, 4);
    } else if (h.src == NVX_NONE) {
        fp_auth_failed(svc, "missing_hash");
        rc = nvx_error(c->req, 4);
    } else if (!valid_hash(&h)) {
        fp_auth_failed(svc, "malformed_hash");
        rc = nvx_error(c->req, 3);
    } else if (fp_session_state(svc, h.val) != FP_SESSION_LIVE) {
        fp_auth_failed(svc, fp_session_state(svc, h.val) == FP_SESSION_ENDED ? "expired_hash"
                                                                             : "unknown_hash");
        rc = nvx_error(c->req, 4);
    } else {
        fp_authed(svc);
        if (fp_path_is(c->path, is_panel(svc) ? "/account/logout" : "/user/logout")) {
            fp_session_end(svc, h.val);
            rc = fp_reply_text(c->req, HTTP_OK, "{\"success\":true}");
        } else if (svc->knobs.fail_code != 0 && svc->knobs.fail_count > 0) {
            svc->knobs.fail_count--;
            rc = nvx_error(c->req, svc->knobs.fail_code);
        } else if ((echo = fp_request_json(c->req, FP_MAX_BODY)) == NULL) {
            rc = -1;
        } else {
            rc = fp_reply_new(c->req, HTTP_OK, json_pack("{s:b, s:o}", "success", 1, "echo", echo));
        }
    }
    free(h.val);
    return rc;
}

int fp_navixy_handle(struct fp_service *svc, struct fp_call *c)
{
    bool login = fp_path_is(c->path, is_panel(svc) ? "/account/auth" : "/user/auth");
    struct nvx_body b;
    int rc;

    if (login && (rc = fp_login_delay(svc, c)) != 0)
        return rc < 0 ? -1 : 0;
    if (nvx_body_parse(c, &b) != 0) {
        if (login)
            svc->login_failures++;
        return nvx_error(c->req, 5);
    }
    rc = login ? nvx_login(svc, c, &b) : nvx_session_call(svc, c, &b);
    json_decref(b.json);
    return rc;
}

int fp_navixy_ratelimited(struct fp_service *svc, struct fp_call *c)
{
    if (svc->knobs.retry_after > 0 &&
        fp_add_header_u64(c->req, "Retry-After", svc->knobs.retry_after) < 0)
        return -1;
    return nvx_error(c->req, 15);
}
