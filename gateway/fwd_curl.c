/* fwd_curl.c -- libcurl as an upstream client of fwd.c: https:// upstreams and upstreams named
 * by host, on the worker's curl multi (curlev.c). */
#include "fwdans.h"
#include "fwdreq.h"
#include "fwdstate.h"

/* curl's progress callback (requests with a body only): upload progress is progress. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct pg_fwd *f = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    if (ulnow > 0 && (uint64_t)ulnow != f->sent_seen) {
        f->sent_seen = (uint64_t)ulnow;
        f->last_ms = pg_now_ms();
    }
    return 0;
}

static void curl_done(CURL *e, CURLcode res, void *priv)
{
    (void)e;
    pg_fwd_done(priv, res);
}

int pg_fwd_curl_init(struct pg_fwd *f)
{
    CURL *e = f->easy = curl_easy_init();
    if (!e)
        return -1;
    f->x.done = curl_done;
    f->x.sock = CURL_SOCKET_BAD;
    pg_curl_defaults(e);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &f->x);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, pg_fwdans_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pg_fwdans_curl_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    /* upload progress for the idle timeout; switched on per request, only when there is a body */
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, f);
    /* the path is normalised already; curl must not squash dot segments again */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
    return 0;
}

static int curl_start(struct pg_fwd *f, const char *body, size_t bn)
{
    struct pg_req *r = f->req;
    const struct pg_upstream *up = f->up;
    CURL *e = f->easy;
    if (pg_fwdreq_curl_url(f))
        return -1;
    curl_easy_setopt(e, CURLOPT_CURLU, f->cu);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hused ? &f->nodes[0] : NULL);
    pg_fwdreq_curl_method(e, r, body, bn);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, bn ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, pg_curlev_share(r->w->curl));
    pg_curl_upstream(e, up);
    return pg_curlev_add(r->w->curl, e);
}

static void curl_stop(struct pg_fwd *f)
{
    pg_curlev_remove(f->req->w->curl, f->easy);
}

static void curl_resume(struct pg_fwd *f)
{
    curl_easy_pause(f->easy, CURLPAUSE_CONT); /* may call the body callback: it is re-entrant */
}

static void curl_upload(const struct pg_fwd *f, struct pg_fwd_upload *u)
{
    u->written = f->sent_seen;
    u->wrote_ms = f->last_ms; /* on_progress moved it at the write */
    u->total = f->body_len;
    /* from curl's socket callback: once curl has handed the last byte to the kernel, the send
     * queue is all that still moves (megabytes, on a slow upstream) */
    u->fd = f->x.sock != CURL_SOCKET_BAD ? (int)f->x.sock : -1;
}

const struct pg_fwd_client pg_fwd_curl = {
    .start = curl_start,
    .stop = curl_stop,
    .resume = curl_resume,
    .upload = curl_upload,
};
