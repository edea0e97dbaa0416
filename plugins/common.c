/* common.c -- helpers shared by the auth plugins; see common.h. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "common.h"

#define JSON_MAX_BODY (64u * 1024)
#define JSON_MAX_DEPTH 32

int pg_plug_fail(struct pg_err *err, const char *msg)
{
    size_t n = strlen(msg);
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    memcpy(err->msg, msg, n);
    err->msg[n] = '\0';
    return -1;
}

bool pg_plug_utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1fu;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0fu;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

bool pg_plug_visible_ascii(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return false;
    return true;
}

bool pg_plug_path_ok(const char *p)
{
    if (p[0] != '/')
        return false;
    const char *seg = p + 1;
    for (const char *q = p + 1;; q++) {
        if (*q == '/' || !*q) {
            size_t n = (size_t)(q - seg);
            if ((n == 0 && *q) || (n == 1 && seg[0] == '.') ||
                (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (!*q)
                return true;
            seg = q + 1;
            continue;
        }
        unsigned char c = (unsigned char)*q;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-._~!$&'()*+,;=:@", c)))
            return false;
    }
}

/* Append (p, n) at buf + *o if it fits in cap. */
static bool put(char *buf, size_t cap, size_t *o, const char *p, size_t n)
{
    if (cap - *o < n)
        return false;
    memcpy(buf + *o, p, n);
    *o += n;
    return true;
}

/* Append s as the inside of a JSON string: '"', '\' and controls escaped, UTF-8 kept. */
static bool put_json_str(char *buf, size_t cap, size_t *o, const struct pg_secret *s)
{
    static const char hexd[] = "0123456789abcdef";
    static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
    for (size_t i = 0; i < s->n; i++) {
        unsigned char c = (unsigned char)s->p[i];
        const char *hit = c ? strchr(from, c) : NULL;
        char e[6] = { '\\', hit ? to[hit - from] : 'u', '0', '0', hexd[c >> 4], hexd[c & 15] };
        bool ok = hit        ? put(buf, cap, o, e, 2)
                  : c < 0x20 ? put(buf, cap, o, e, 6)
                             : put(buf, cap, o, (const char *)&c, 1);
        if (!ok)
            return false;
    }
    return true;
}

int pg_plug_login_json(struct pg_login_req *req, const char *path, const char *k1,
                       const struct pg_secret *v1, const char *k2, const struct pg_secret *v2)
{
    char *b = req->body;
    size_t o = 0, cap = sizeof req->body;
    req->method = "POST";
    req->path = path;
    req->content_type = "application/json";
    if (!put(b, cap, &o, "{\"", 2) || !put(b, cap, &o, k1, strlen(k1)) ||
        !put(b, cap, &o, "\":\"", 3) || !put_json_str(b, cap, &o, v1) ||
        !put(b, cap, &o, "\",\"", 3) || !put(b, cap, &o, k2, strlen(k2)) ||
        !put(b, cap, &o, "\":\"", 3) || !put_json_str(b, cap, &o, v2) ||
        !put(b, cap, &o, "\"}", 2)) {
        OPENSSL_cleanse(req->body, sizeof req->body);
        req->body_len = 0;
        return -1;
    }
    req->body_len = o;
    return 0;
}

/* Do v's containers nest at most `left` deep? */
static bool depth_ok(json_t *v, int left)
{
    const char *k;
    size_t i;
    json_t *m;
    if (!json_is_object(v) && !json_is_array(v))
        return true;
    if (left == 0)
        return false;
    json_object_foreach(v, k, m) if (!depth_ok(m, left - 1)) return false;
    json_array_foreach(v, i, m) if (!depth_ok(m, left - 1)) return false;
    return true;
}

json_t *pg_plug_json_object(const char *p, size_t n)
{
    /* cheap pre-check before building a tree (classify may see any answer) */
    size_t i = 0;
    while (p && i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (!p || n > JSON_MAX_BODY || i == n || p[i] != '{')
        return NULL;
    json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root) || !depth_ok(root, JSON_MAX_DEPTH)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

bool pg_plug_json_text(char *dst, size_t cap, const json_t *v)
{
    if (!json_is_string(v))
        return false;
    /* no NUL inside: JSON_ALLOW_NUL is never set */
    const char *p = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    return true;
}

bool pg_plug_json_code(char *dst, size_t cap, const json_t *v)
{
    if (!json_is_integer(v))
        return pg_plug_json_text(dst, cap, v);
    int n = snprintf(dst, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return n >= 0 && (size_t)n < cap;
}

void pg_plug_span(struct pg_span *out, size_t cap, size_t *i, const char *p, size_t n)
{
    if (!p || n == 0 || *i >= cap)
        return;
    out[*i].p = p;
    out[*i].n = n;
    (*i)++;
}
