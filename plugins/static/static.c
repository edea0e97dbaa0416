/* static.c -- `static` auth: fixed headers, a bearer token or HTTP Basic from config (SPEC 1).
 * Header values are built once at init; sign() only points the request at them. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "../common.h"
#include "../plugin.h"

struct static_basic {
    struct pg_secret user;
    struct pg_secret password;
};

struct static_auth {
    /* from config: exactly one of the three */
    struct pg_kv_list headers;
    struct pg_secret bearer;
    struct static_basic basic;
    /* built by init: the Authorization value for bearer/basic, empty for headers */
    struct pg_secret authz;
};

static const struct pg_conf_key basic_keys[] = {
    { "user", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct static_basic, user), NULL, NULL },
    { "password", PG_CONF_SECRET, PG_REQUIRED, offsetof(struct static_basic, password), NULL,
      NULL },
    { 0 },
};

static const struct pg_conf_key static_keys[] = {
    { "headers", PG_CONF_HEADERS, 0, offsetof(struct static_auth, headers), NULL, NULL },
    { "bearer", PG_CONF_SECRET, 0, offsetof(struct static_auth, bearer), NULL, NULL },
    { "basic", PG_CONF_OBJECT, 0, offsetof(struct static_auth, basic), NULL, basic_keys },
    { 0 },
};

/* Headers a fixed value must not set: they frame the message or belong to the hop. */
static bool forbidden_header(const char *name)
{
    static const char *const names[] = { "Host",       "Content-Length", "Transfer-Encoding",
                                         "Connection", "Keep-Alive",     "Proxy-Connection",
                                         "TE",         "Trailer",        "Upgrade" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i]))
            return true;
    return false;
}

static bool has_ctl(const struct pg_secret *s)
{
    for (size_t i = 0; i < s->n; i++)
        if ((unsigned char)s->p[i] < 0x20 || s->p[i] == 0x7f)
            return true;
    return false;
}

/* "<prefix><b64 or raw>" into st->authz. */
static int set_authz(struct static_auth *st, const char *prefix, const unsigned char *v, size_t n,
                     bool b64)
{
    size_t pn = strlen(prefix);
    size_t vn = b64 ? 4 * ((n + 2) / 3) : n;
    char *p = malloc(pn + vn + 1);
    if (!p)
        return -1;
    memcpy(p, prefix, pn);
    if (b64) {
        if (n > INT_MAX || (size_t)EVP_EncodeBlock((unsigned char *)p + pn, v, (int)n) != vn) {
            OPENSSL_cleanse(p, pn + vn + 1);
            free(p);
            return -1;
        }
    } else {
        memcpy(p + pn, v, n);
    }
    p[pn + vn] = '\0';
    st->authz.p = p;
    st->authz.n = pn + vn;
    return 0;
}

static int static_init(void *vst, struct pg_err *err)
{
    struct static_auth *st = vst;
    int given = (st->headers.n > 0) + (st->bearer.p != NULL) + (st->basic.user.p != NULL);
    if (given != 1)
        return pg_plug_fail(err, "auth: static needs exactly one of headers, bearer, basic");
    if (st->headers.n > PG_OUT_MAX_HEADERS) {
        snprintf(err->msg, sizeof err->msg, "auth: static allows at most %d headers",
                 PG_OUT_MAX_HEADERS);
        return -1;
    }
    for (size_t i = 0; i < st->headers.n; i++)
        if (forbidden_header(st->headers.v[i].name))
            return pg_plug_fail(err, "auth: static headers cannot set Host, Content-Length, "
                                     "Transfer-Encoding or hop-by-hop headers");
    if (st->bearer.p) {
        if (has_ctl(&st->bearer))
            return pg_plug_fail(err, "auth: static bearer token contains control characters");
        if (set_authz(st, "Bearer ", (const unsigned char *)st->bearer.p, st->bearer.n, false))
            return pg_plug_fail(err, "auth: out of memory");
    }
    if (st->basic.user.p) {
        const struct pg_secret *u = &st->basic.user, *pw = &st->basic.password;
        if (memchr(u->p, ':', u->n))
            return pg_plug_fail(err, "auth: static basic user must not contain ':'");
        size_t n = u->n + 1 + pw->n;
        unsigned char *pair = malloc(n);
        if (!pair)
            return pg_plug_fail(err, "auth: out of memory");
        memcpy(pair, u->p, u->n);
        pair[u->n] = ':';
        memcpy(pair + u->n + 1, pw->p, pw->n);
        int rc = set_authz(st, "Basic ", pair, n, true);
        OPENSSL_cleanse(pair, n);
        free(pair);
        if (rc)
            return pg_plug_fail(err, "auth: out of memory");
    }
    return 0;
}

static int static_sign(const void *vst, const struct pg_session *sess, struct pg_out_req *req,
                       uint64_t now_s)
{
    const struct static_auth *st = vst;
    (void)sess;
    (void)now_s;
    size_t need = st->authz.p ? 1 : st->headers.n;
    if (req->nhdr > PG_OUT_MAX_HEADERS || PG_OUT_MAX_HEADERS - req->nhdr < need)
        return -1;
    if (st->authz.p) {
        req->hdr[req->nhdr].name = "Authorization";
        req->hdr[req->nhdr++].value = st->authz.p;
        return 0;
    }
    for (size_t i = 0; i < st->headers.n; i++) {
        req->hdr[req->nhdr].name = st->headers.v[i].name;
        req->hdr[req->nhdr++].value = st->headers.v[i].value.p;
    }
    return 0;
}

static void static_deinit(void *vst)
{
    struct static_auth *st = vst;
    pg_kv_list_free(&st->headers);
    pg_secret_free(&st->bearer);
    pg_secret_free(&st->basic.user);
    pg_secret_free(&st->basic.password);
    pg_secret_free(&st->authz);
}

/* Every configured value but the Basic user name, and the Authorization value built from them
 * (whole, and its credential after the scheme: the Basic base64). */
static size_t static_secrets(const void *vst, const struct pg_session *s, struct pg_span *out,
                             size_t cap)
{
    const struct static_auth *st = vst;
    size_t i = 0;
    (void)s;
    for (size_t k = 0; k < st->headers.n; k++)
        pg_plug_span(out, cap, &i, st->headers.v[k].value.p, st->headers.v[k].value.n);
    pg_plug_span(out, cap, &i, st->bearer.p, st->bearer.n);
    pg_plug_span(out, cap, &i, st->basic.password.p, st->basic.password.n);
    pg_plug_span(out, cap, &i, st->authz.p, st->authz.n);
    const char *sp = st->authz.p ? memchr(st->authz.p, ' ', st->authz.n) : NULL;
    if (sp)
        pg_plug_span(out, cap, &i, sp + 1, st->authz.n - (size_t)(sp + 1 - st->authz.p));
    return i;
}

const struct pg_auth_ops pg_auth_static = {
    .type = "static",
    .state_size = sizeof(struct static_auth),
    .keys = static_keys,
    .init = static_init,
    .sign = static_sign,
    .deinit = static_deinit,
    .secrets = static_secrets,
};
