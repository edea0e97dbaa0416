/* fwdreq.c -- the upstream request built into the pooled pg_fwd: URL, header lines (h1 wire form
 * or a curl_slist over an array), the plugin's query parameter, the caller's panel credential
 * stripped or refused. Runs nothing: fwd.c sends what this builds. */
#include "fwdreq.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include <jansson.h>

#include "hdr.h"
#include "query.h"
#include "util.h"

/* Append raw bytes to f->hb; pg_fwdreq_headers reserved the room. */
static void put_raw(struct pg_fwd *f, const char *p, size_t n)
{
    memcpy(f->hb + f->hused, p, n);
    f->hused += n;
}

/* Append one header line. For h1 it is the wire form "name: value\r\n" and a NULL value (a
 * curl default to suppress) adds nothing. For curl it is "name: value" NUL-terminated and linked
 * into the list; an empty value is written "name;", curl's syntax for sending it empty. */
static int add_hdr(struct pg_fwd *f, size_t *nn, const char *name, size_t nl, const char *value,
                   size_t vl)
{
    size_t need = nl + vl + 4;
    if (f->hused + need > f->hcap)
        return -1;
    if (pg_fwd_via_h1(f)) {
        if (value) {
            put_raw(f, name, nl);
            put_raw(f, ": ", 2);
            put_raw(f, value, vl);
            put_raw(f, "\r\n", 2);
        }
        return 0;
    }
    if (*nn >= sizeof f->nodes / sizeof f->nodes[0])
        return -1;
    char *s = f->hb + f->hused;
    size_t len = nl + 1;
    memcpy(s, name, nl);
    if (!value) {
        s[nl] = ':'; /* "name:" with nothing after: curl must not send its default */
    } else if (vl == 0) {
        s[nl] = ';'; /* curl's syntax for a header sent with an empty value */
    } else {
        s[nl] = ':';
        s[nl + 1] = ' ';
        memcpy(s + nl + 2, value, vl);
        len = nl + 2 + vl;
    }
    s[len] = '\0';
    f->hused += len + 1;
    f->nodes[*nn].data = s;
    f->nodes[*nn].next = NULL;
    if (*nn)
        f->nodes[*nn - 1].next = &f->nodes[*nn];
    (*nn)++;
    return 0;
}

static bool plugin_sets(const struct pg_out_req *o, const char *name, size_t nl)
{
    for (size_t i = 0; i < o->nhdr; i++)
        if (pg_ieq(name, nl, o->hdr[i].name))
            return true;
    return false;
}

int pg_fwdreq_headers(struct pg_fwd *f, const struct pg_out_req *o)
{
    struct pg_req *r = f->req;
    const char *target = f->url + f->path_off;
    size_t tn = strlen(target);
    size_t need = r->hlen + 4 * r->nhdrs + 1024 + 2 * PG_RID_MAX + tn + f->up->url_len;
    for (size_t i = 0; i < o->nhdr; i++)
        need += strlen(o->hdr[i].name) + strlen(o->hdr[i].value) + 4;
    if (pg_fwd_grow(&f->hb, &f->hcap, need))
        return -1;
    f->hused = 0;
    size_t nn = 0;
    if (pg_fwd_via_h1(f)) {
        put_raw(f, r->method, strlen(r->method));
        put_raw(f, " ", 1);
        put_raw(f, target, tn);
        put_raw(f, " HTTP/1.1\r\nHost: ", 17);
        put_raw(f, f->up->url + f->up->authority_off, f->up->authority_len);
        put_raw(f, "\r\n", 2);
    }
    size_t cvn = 0, xffn = 0;
    const char *conn = pg_req_header(r, "connection", &cvn);
    const char *xff = pg_req_header(r, "x-forwarded-for", &xffn);
    bool accept = false, ctype = false;
    for (size_t i = 0; i < r->nhdrs; i++) {
        const char *nm = pg_req_hname(r, i);
        size_t nl = r->hdrs[i].name_len;
        if (pg_hdr_req_drop(nm, nl) || (conn && pg_hdr_conn_lists(conn, cvn, nm, nl)) ||
            plugin_sets(o, nm, nl))
            continue;
        accept = accept || pg_ieq(nm, nl, "accept");
        ctype = ctype || pg_ieq(nm, nl, "content-type");
        if (add_hdr(f, &nn, nm, nl, pg_req_hvalue(r, i), r->hdrs[i].value_len))
            return -1;
    }
    char xv[512];
    struct pg_sb x = pg_sb_of(xv, sizeof xv);
    if (xff) {
        pg_sb_put(&x, xff, xffn);
        pg_sb_put(&x, ", ", 2);
    }
    pg_sb_str(&x, r->peer);
    if (!pg_sb_end(&x)) { /* an absurd caller chain is replaced; an address alone fits */
        x = pg_sb_of(xv, sizeof xv);
        pg_sb_str(&x, r->peer);
        pg_sb_end(&x);
    }
    const char *proto = r->w->tls ? "https" : "http";
    if (add_hdr(f, &nn, "X-Forwarded-For", 15, xv, x.len) ||
        add_hdr(f, &nn, "X-Forwarded-Proto", 17, proto, strlen(proto)) ||
        add_hdr(f, &nn, "X-Request-Id", 12, r->rid, strlen(r->rid)))
        return -1;
    for (size_t i = 0; i < o->nhdr; i++) {
        /* adapters check what they keep; this is the last place before the wire, where a
         * CR or LF from a panel's token would become a header of its own */
        size_t hn = strlen(o->hdr[i].name), hv = strlen(o->hdr[i].value);
        if (!pg_hdr_name_ok(o->hdr[i].name, hn) || !pg_hdr_value_ok(o->hdr[i].value, hv) ||
            add_hdr(f, &nn, o->hdr[i].name, hn, o->hdr[i].value, hv))
            return -1;
    }
    size_t bn = evbuffer_get_length(r->body);
    if (pg_fwd_via_h1(f)) {
        /* RFC 9112 6.3: a body has a length; POST, PUT and PATCH say 0 rather than nothing */
        if (bn || (r->method_bit & (PG_M_POST | PG_M_PUT | PG_M_PATCH))) {
            char cl[48];
            struct pg_sb c = pg_sb_of(cl, sizeof cl);
            pg_sb_str(&c, "Content-Length: ");
            pg_sb_u64(&c, bn, 0);
            pg_sb_put(&c, "\r\n", 2);
            put_raw(f, cl, c.len);
        }
        put_raw(f, "\r\n", 2);
        return 0;
    }
    /* curl adds these unless told not to; the upstream should see only what the caller sent */
    /* curl adds Expect and a form Content-Type only to requests with a body; every header in
     * the list costs curl a scan per transfer, so suppress them only there */
    bool body = bn > 0 || strcmp(r->method, "POST") == 0;
    if ((body && add_hdr(f, &nn, "Expect", 6, NULL, 0)) ||
        (!accept && add_hdr(f, &nn, "Accept", 6, NULL, 0)) ||
        (body && !ctype && add_hdr(f, &nn, "Content-Type", 12, NULL, 0)))
        return -1;
    return 0;
}

/* f->url = upstream url + rest [+ '?' query]; room is left for the plugin's parameter.
 * *target points at the path part (what the panel sees as the request target). */
int pg_fwdreq_url(struct pg_fwd *f, const char **target, size_t *target_len)
{
    size_t rn = f->rest_len, qn = f->query_len;
    size_t need = f->up->url_len + rn + qn + 3 * PG_TOKEN_MAX + 80;
    if (pg_fwd_grow(&f->url, &f->ucap, need))
        return -1;
    char *u = f->url;
    size_t n = 0;
    memcpy(u, f->up->url, f->up->url_len);
    n += f->up->url_len;
    if (rn == 0) {
        u[n++] = '/';
    } else {
        memcpy(u + n, f->rest, rn);
        n += rn;
    }
    f->path_end = n;
    if (qn) {
        u[n++] = '?';
        memcpy(u + n, f->query, qn);
        n += qn;
    }
    u[n] = '\0';
    const char *p = strstr(u, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    f->path_off = p ? (size_t)(p - u) : n;
    *target = u + f->path_off;
    *target_len = n - f->path_off;
    return 0;
}

/* Append the plugin's query parameter to f->url; pg_fwdreq_url left the room. */
void pg_fwdreq_add_param(struct pg_fwd *f, const struct pg_out_req *o)
{
    if (!o->add_query_name || !o->add_query_value || strlen(o->add_query_name) > 64 ||
        strlen(o->add_query_value) > PG_TOKEN_MAX)
        return;
    size_t n = strlen(f->url);
    pg_query_add(f->url + n, f->query_len > 0, o->add_query_name, o->add_query_value);
}

/* Hand curl the URL as a CURLU that keeps the upstream's scheme, host and port between
 * requests, so only the path and query are parsed per request. */
int pg_fwdreq_curl_url(struct pg_fwd *f)
{
    if (!f->cu && !(f->cu = curl_url()))
        return -1;
    /* by content, not pointer: a reloaded config may reuse the address for another url */
    if (!f->cu_up || strcmp(f->cu_up, f->up->url) != 0) {
        free(f->cu_up);
        f->cu_up = NULL;
        if (curl_url_set(f->cu, CURLUPART_URL, f->url, CURLU_PATH_AS_IS) != CURLUE_OK)
            return -1;
        f->cu_up = strdup(f->up->url);
        return 0;
    }
    /* pg_fwdreq_url found the path; the plugin's parameter may have added the '?' since */
    const char *p = f->url + f->path_off;
    char *q = f->url[f->path_end] == '?' ? f->url + f->path_end : NULL;
    if (q)
        *q = '\0';
    int rc = curl_url_set(f->cu, CURLUPART_PATH, p, CURLU_PATH_AS_IS) != CURLUE_OK ||
             curl_url_set(f->cu, CURLUPART_QUERY, q ? q + 1 : NULL, 0) != CURLUE_OK;
    if (q)
        *q = '?';
    return rc ? -1 : 0;
}

void pg_fwdreq_curl_method(CURL *e, struct pg_req *r, const char *body, size_t bn)
{
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (r->head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    bool post = strcmp(r->method, "POST") == 0;
    if (bn || post) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bn);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, bn ? body : "");
    }
    /* a body makes curl send POST: any other method, GET included, is named explicitly */
    if (!post && (bn || strcmp(r->method, "GET") != 0))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
}

/* The caller's query without any `param` parameter, in f->qbuf (a caller-supplied panel
 * credential never reaches the panel). */
int pg_fwdreq_strip_param(struct pg_fwd *f, const char *param)
{
    if (pg_fwd_grow(&f->qbuf, &f->qcap, f->query_len + 1))
        return -1;
    f->query_len = pg_query_strip(f->query, f->query_len, param, f->qbuf);
    f->query = f->qbuf;
    return 0;
}

/* Does the body carry `param` at its top level (a JSON object key or a form field)? */
bool pg_fwdreq_body_has_param(const struct pg_req *r, const char *body, size_t bn,
                              const char *param)
{
    size_t cn;
    const char *ct = pg_req_header(r, "content-type", &cn);
    if (!bn || !ct)
        return false;
    if (pg_iprefix(ct, cn, "application/json")) {
        /* a body the gateway cannot read might still be read by a lenient panel: refused */
        json_t *j = json_loadb(body, bn, JSON_DECODE_ANY, NULL);
        bool has = !j || (json_is_object(j) && json_object_get(j, param));
        json_decref(j);
        return has;
    }
    if (pg_iprefix(ct, cn, "application/x-www-form-urlencoded"))
        return pg_query_has(body, bn, param);
    return false;
}
