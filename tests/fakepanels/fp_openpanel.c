/* fp_openpanel.c -- fake OpenPanel admin API (--openpanel), after panels/openpanel-api.md. Its
 * JWT layer answers as flask-jwt-extended does (OpenPanel is a Flask application).
 *
 *   POST /api/ (also /api, or any path ending so) with JSON {"username","password"}
 *        -> 200 {"access_token":"<JWT>"}; wrong or missing credentials -> 401
 *        {"msg":"Bad username or password"}; a body that is not JSON -> 400/415
 *        {"success":false,"error":...}; another method -> 405.
 *   The JWT: header {"typ":"JWT","alg":"HS256"}, payload {"fresh":false,"iat","jti","type":
 *        "access","sub":"fake-op-admin","nbf","exp":iat+jwt_ttl}, HS256 with a key random per
 *        process. Each jti is a session: /_fake/expire, expire_every and reset revoke them.
 *   Every other path needs "Authorization: Bearer <JWT>":
 *        no header                    401 {"msg":"Missing Authorization Header"}
 *        no "Bearer <JWT>" in it      401 {"msg":"Missing 'Bearer' type in 'Authorization' header.
 *                                         Expected 'Authorization: Bearer <JWT>'"}
 *        "Bearer" with 0 or 2+ words  422 {"msg":"Bad Authorization header. Expected ..."}
 *        malformed token, bad alg     422 {"msg":"Not enough segments" | "Invalid header padding"
 *                                         | ... | "Signature verification failed"}
 *        exp passed                   401 {"msg":"Token has expired"}
 *        revoked (expired by a knob)  401 {"msg":"Token has been revoked"}
 *   /api/always-401 (any method) 401 {"msg":"Token has been revoked"} whatever token it carries:
 *        a panel path that refuses every session (counted as always_refused, not as an auth
 *        failure).
 *   GET /api/whoami -> {"logged_in_as":"fake-op-admin"}; anything else ->
 *        {"success":true,"response":{"message":"..."},"echo":{...}} (the docs' success shape).
 *   Rate-limit knob: 429, Retry-After, {"success":false,"error":"Too Many Requests"}. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fp.h"

#define OP_USER "fake-op-admin"
#define OP_TOKEN_MAX 4096 /* bytes of a Bearer token this fake looks at */
#define OP_HEADER "{\"typ\":\"JWT\",\"alg\":\"HS256\"}"
#define OP_SIG_LEN 32

const char *const fp_openpanel_counters[] = { "always_refused", NULL };
const char *const fp_openpanel_reasons[] = {
    "missing_header", "not_bearer", "bad_header", "malformed_token",
    "bad_signature",  "expired",    "revoked",    NULL,
};

/* Why a request was refused: HTTP status, the msg, and the reason counted in stats. */
struct op_refusal {
    int status;
    const char *msg;
    const char *reason;
};

static int op_msg(struct evhttp_request *req, int status, const char *msg)
{
    return fp_reply_new(req, status, json_pack("{s:s}", "msg", msg));
}

static int op_error(struct evhttp_request *req, int status, const char *error)
{
    return fp_reply_new(req, status, json_pack("{s:b, s:s}", "success", 0, "error", error));
}

static int sign(const struct fp_service *svc, const char *p, size_t n,
                unsigned char mac[OP_SIG_LEN])
{
    unsigned int len = 0;

    if (HMAC(EVP_sha256(), svc->jwt_key, sizeof(svc->jwt_key), (const unsigned char *)p, n, mac,
             &len) == NULL ||
        len != OP_SIG_LEN)
        return -1;
    return 0;
}

/* header.payload.signature, all base64url; the jti becomes a live session. */
static int jwt_make(struct fp_service *svc, char *out, size_t cap)
{
    json_int_t now = (json_int_t)time(NULL);
    unsigned char mac[OP_SIG_LEN];
    char jti[37], *payload = NULL;
    json_t *claims;
    size_t k, m;

    if (fp_uuid4(jti) < 0)
        return -1;
    claims = json_pack("{s:b, s:I, s:s, s:s, s:s, s:I, s:I}", "fresh", 0, "iat", now, "jti", jti,
                       "type", "access", "sub", OP_USER, "nbf", now, "exp",
                       now + (json_int_t)svc->knobs.jwt_ttl);
    if (claims != NULL)
        payload = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (payload == NULL)
        return -1;
    k = fp_b64_encode((const unsigned char *)OP_HEADER, strlen(OP_HEADER), true, out, cap);
    m = k > 0 && k + 1 < cap ? fp_b64_encode((const unsigned char *)payload, strlen(payload), true,
                                             out + k + 1, cap - k - 1)
                             : 0;
    free(payload);
    if (m == 0)
        return -1;
    out[k] = '.';
    k += 1 + m;
    if (sign(svc, out, k, mac) < 0 || k + 1 >= cap ||
        fp_b64_encode(mac, sizeof(mac), true, out + k + 1, cap - k - 1) == 0)
        return -1;
    out[k] = '.';
    return fp_session_add(svc, jti);
}

static int op_login(struct fp_service *svc, struct fp_call *c)
{
    const char *pass = svc->knobs.password;
    json_t *body, *user, *pw;
    char token[1024];
    int rc;

    if (c->cmd != EVHTTP_REQ_POST) {
        if (fp_add_header(c->req, "Allow", "POST, OPTIONS") < 0)
            return -1;
        return op_error(c->req, HTTP_BADMETHOD, "The method is not allowed for the requested URL.");
    }
    if ((rc = fp_login_delay(svc, c)) != 0)
        return rc < 0 ? -1 : 0;
    if (!fp_media_is(fp_header(c->req, "Content-Type"), "application/json")) {
        svc->login_failures++;
        return op_error(c->req, 415,
                        "Did not attempt to load JSON data because the request Content-Type was "
                        "not 'application/json'.");
    }
    if ((body = json_loadb(c->body, c->body_len, JSON_DECODE_ANY, NULL)) == NULL) {
        svc->login_failures++;
        return op_error(c->req, HTTP_BADREQUEST,
                        "Failed to decode JSON object: the body is not valid JSON");
    }
    user = json_is_object(body) ? json_object_get(body, "username") : NULL;
    pw = json_is_object(body) ? json_object_get(body, "password") : NULL;
    if (!json_is_string(user) || !json_is_string(pw) ||
        !fp_secret_eq(json_string_value(user), json_string_length(user), OP_USER,
                      strlen(OP_USER)) ||
        !fp_secret_eq(json_string_value(pw), json_string_length(pw), pass, strlen(pass))) {
        json_decref(body);
        svc->login_failures++;
        return op_msg(c->req, 401, "Bad username or password");
    }
    json_decref(body);
    if (jwt_make(svc, token, sizeof(token)) < 0)
        return -1;
    svc->logins++;
    return fp_reply_new(c->req, HTTP_OK, json_pack("{s:s}", "access_token", token));
}

/* JSON object of base64url segment p[0..n); NULL if it is not one. */
static json_t *segment_json(const char *p, size_t n)
{
    unsigned char buf[OP_TOKEN_MAX];
    size_t len;
    json_t *v;

    if (fp_b64_decode(p, n, true, buf, sizeof(buf), &len) < 0)
        return NULL;
    v = json_loadb((const char *)buf, len, 0, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static bool segment_decodes(const char *p, size_t n)
{
    unsigned char buf[OP_TOKEN_MAX];
    size_t len;

    return fp_b64_decode(p, n, true, buf, sizeof(buf), &len) == 0;
}

/* The token's claims once header, signature and lifetime check out; NULL and *r otherwise. */
static json_t *jwt_verify(const struct fp_service *svc, const char *tok, struct op_refusal *r)
{
    const char *dot1 = strchr(tok, '.'), *dot2 = strrchr(tok, '.');
    size_t n = strlen(tok), siglen;
    unsigned char mac[OP_SIG_LEN], sig[OP_TOKEN_MAX];
    json_t *hdr, *claims, *exp, *nbf, *type, *sub;
    json_int_t now = (json_int_t)time(NULL);

    *r = (struct op_refusal){ 422, NULL, "malformed_token" };
    if (dot1 == NULL || dot1 == dot2) {
        r->msg = "Not enough segments";
        return NULL;
    }
    if ((hdr = segment_json(tok, (size_t)(dot1 - tok))) == NULL) {
        r->msg = segment_decodes(tok, (size_t)(dot1 - tok)) ? "Invalid header string"
                                                            : "Invalid header padding";
        return NULL;
    }
    if (!json_is_string(json_object_get(hdr, "alg")) ||
        strcmp(json_string_value(json_object_get(hdr, "alg")), "HS256") != 0) {
        json_decref(hdr);
        r->msg = "The specified alg value is not allowed";
        return NULL;
    }
    json_decref(hdr);
    if ((claims = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1))) == NULL) {
        r->msg = segment_decodes(dot1 + 1, (size_t)(dot2 - dot1 - 1)) ? "Invalid payload string"
                                                                      : "Invalid payload padding";
        return NULL;
    }
    if (fp_b64_decode(dot2 + 1, n - (size_t)(dot2 - tok) - 1, true, sig, sizeof(sig), &siglen) <
        0) {
        json_decref(claims);
        r->msg = "Invalid crypto padding";
        return NULL;
    }
    if (sign(svc, tok, (size_t)(dot2 - tok), mac) < 0 || siglen != OP_SIG_LEN ||
        CRYPTO_memcmp(mac, sig, OP_SIG_LEN) != 0) {
        json_decref(claims);
        *r = (struct op_refusal){ 422, "Signature verification failed", "bad_signature" };
        return NULL;
    }
    exp = json_object_get(claims, "exp");
    nbf = json_object_get(claims, "nbf");
    type = json_object_get(claims, "type");
    sub = json_object_get(claims, "sub");
    if (exp != NULL && !json_is_integer(exp))
        r->msg = "Expiration Time claim (exp) must be an integer.";
    else if (exp != NULL && json_integer_value(exp) <= now)
        *r = (struct op_refusal){ 401, "Token has expired", "expired" };
    else if (nbf != NULL && (!json_is_integer(nbf) || json_integer_value(nbf) > now))
        r->msg = "The token is not yet valid (nbf)";
    else if (!json_is_string(type) || strcmp(json_string_value(type), "access") != 0)
        r->msg = "Only non-refresh tokens are allowed";
    else if (!json_is_string(sub))
        r->msg = "Missing claim: sub";
    else if (!json_is_string(json_object_get(claims, "jti")) ||
             fp_session_state(svc, json_string_value(json_object_get(claims, "jti"))) !=
                 FP_SESSION_LIVE)
        *r = (struct op_refusal){ 401, "Token has been revoked", "revoked" };
    else
        return claims;
    json_decref(claims);
    return NULL;
}

/* The Bearer token of the Authorization header, as flask-jwt-extended reads it: the header must
 * start with the type "Bearer" (case-sensitive) and hold exactly two words. */
static const char *bearer(struct evhttp_request *req, struct op_refusal *r, char *tok, size_t cap)
{
    const char *h = fp_header(req, "Authorization"), *p, *end;
    size_t n;

    if (h == NULL) {
        *r = (struct op_refusal){ 401, "Missing Authorization Header", "missing_header" };
        return NULL;
    }
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncmp(h, "Bearer", 6) != 0 || (h[6] != '\0' && h[6] != ' ' && h[6] != '\t')) {
        *r = (struct op_refusal){ 401,
                                  "Missing 'Bearer' type in 'Authorization' header. Expected "
                                  "'Authorization: Bearer <JWT>'",
                                  "not_bearer" };
        return NULL;
    }
    for (p = h + 6; *p == ' ' || *p == '\t'; p++)
        ;
    for (end = p; *end != '\0' && *end != ' ' && *end != '\t'; end++)
        ;
    n = (size_t)(end - p);
    while (*end == ' ' || *end == '\t')
        end++;
    if (n == 0 || *end != '\0') {
        *r = (struct op_refusal){ 422,
                                  "Bad Authorization header. Expected 'Authorization: Bearer "
                                  "<JWT>'",
                                  "bad_header" };
        return NULL;
    }
    if (n >= cap) {
        *r = (struct op_refusal){ 422, "Signature verification failed", "bad_signature" };
        return NULL;
    }
    memcpy(tok, p, n);
    tok[n] = '\0';
    return tok;
}

int fp_openpanel_handle(struct fp_service *svc, struct fp_call *c)
{
    struct op_refusal r;
    char tok[OP_TOKEN_MAX];
    json_t *claims, *echo;
    int rc;

    if (fp_path_is(c->path, "/api"))
        return op_login(svc, c);
    if (fp_path_is(c->path, "/api/always-401")) {
        fp_count(svc, "always_refused");
        return op_msg(c->req, 401, "Token has been revoked");
    }
    if (bearer(c->req, &r, tok, sizeof(tok)) == NULL ||
        (claims = jwt_verify(svc, tok, &r)) == NULL) {
        fp_auth_failed(svc, r.reason);
        return op_msg(c->req, r.status, r.msg);
    }
    fp_authed(svc);
    if (fp_path_is(c->path, "/api/whoami")) {
        rc = fp_reply_new(c->req, HTTP_OK,
                          json_pack("{s:O}", "logged_in_as", json_object_get(claims, "sub")));
    } else if ((echo = fp_request_json(c->req, FP_MAX_BODY)) == NULL) {
        rc = -1;
    } else {
        rc =
            fp_reply_new(c->req, HTTP_OK,
                         json_pack("{s:{s:s}, s:b, s:o}", "response", "message",
                                   "fake openpanel: request accepted", "success", 1, "echo", echo));
    }
    json_decref(claims);
    return rc;
}

int fp_openpanel_ratelimited(struct fp_service *svc, struct fp_call *c)
{
    if (fp_add_header_u64(c->req, "Retry-After", svc->knobs.retry_after) < 0)
        return -1;
    return op_error(c->req, 429, "Too Many Requests");
}
