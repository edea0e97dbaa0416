/* fwd_h1.c -- the own HTTP/1.1 client (h1.c) as an upstream client of fwd.c: http:// upstreams
 * at an IP address. */
#include "fwdans.h"
#include "fwdstate.h"

static void h1_done(void *arg, CURLcode res)
{
    struct pg_fwd *f = arg;
    f->running = false; /* the client let go of the transfer already */
    pg_fwd_done(f, res);
}

static const struct pg_h1_ops h1_ops = {
    .status = pg_fwdans_h1_status,
    .header = pg_fwdans_h1_header,
    .head_end = pg_fwdans_h1_head_end,
    .body = pg_fwdans_h1_body,
    .done = h1_done,
};

static int h1_start(struct pg_fwd *f, const char *body, size_t bn)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    f->hx.ops = &h1_ops;
    f->hx.arg = f;
    f->hx.errbuf = f->errbuf;
    f->hx.addr = (const struct sockaddr *)&up->h1_addr;
    f->hx.addrlen = up->h1_addrlen;
    f->hx.tls = up->h1_tls;
    f->hx.tls_name = up->h1_name;
    f->hx.name = up->h1_addrlen ? NULL : up->h1_name; /* resolved on the loop */
    f->hx.port = up->h1_port;
    f->hx.head = f->hb;
    f->hx.head_len = f->hused;
    f->hx.body = body;
    f->hx.body_len = bn;
    f->hx.head_method = r->head;
    f->hx.idempotent = !(r->method_bit & (PG_M_POST | PG_M_PATCH));
    return pg_h1_start(r->w->h1, &f->hx);
}

static void h1_stop(struct pg_fwd *f)
{
    pg_h1_cancel(&f->hx);
}

static void h1_resume(struct pg_fwd *f)
{
    pg_h1_resume(&f->hx);
}

static void h1_upload(const struct pg_fwd *f, struct pg_fwd_upload *u)
{
    u->written = f->hx.sent;
    u->wrote_ms = f->hx.sent_ms;
    u->total = f->hx.head_len + f->hx.body_len;
    u->fd = pg_h1_fd(&f->hx);
}

const struct pg_fwd_client pg_fwd_h1 = {
    .start = h1_start,
    .stop = h1_stop,
    .resume = h1_resume,
    .upload = h1_upload,
};
