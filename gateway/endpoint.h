/* endpoint.h -- panelgate's own endpoints under /_gateway/ (SPEC section 6): health, me, status,
 * metrics, the status page. A table of rows (path, who may read it, content type, body writer)
 * that dispatch looks up; adding an endpoint is adding a row in endpoint.c. */
#ifndef PG_ENDPOINT_H
#define PG_ENDPOINT_H

#include <stddef.h>

struct evbuffer;
struct pg_req;

enum pg_ep_access {
    PG_EP_NONE,                /* anyone */
    PG_EP_KEY,                 /* a known caller key */
    PG_EP_ADMIN,               /* an admin key */
    PG_EP_ADMIN_UNLESS_PUBLIC, /* an admin key, or none with metrics.public */
};

struct pg_endpoint {
    const char *path;
    enum pg_ep_access access;
    const char *ctype;
    /* the answer's body into out; 0 ok, -1 out of memory */
    int (*body)(struct pg_req *r, struct evbuffer *out);
    /* instead of body (NULL then): answers r itself, for an answer with headers of its own
     * (the status page, page.h); ctype is the row's */
    void (*serve)(struct pg_req *r, const char *ctype);
};

/* The endpoint at the normalised path (p, n), or NULL. */
const struct pg_endpoint *pg_endpoint_find(const char *path, size_t n);

/* Answer r from ep (a GET or HEAD whose access was checked): 200 with the body, 503 from health
 * while draining, 500 when the body cannot be built. */
void pg_endpoint_serve(struct pg_req *r, const struct pg_endpoint *ep);

#endif
