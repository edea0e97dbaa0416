/* sdnotify.h -- systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram
 * per state change to the socket $NOTIFY_SOCKET names -- READY=1 once every worker listens,
 * RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 when draining starts. Without
 * $NOTIFY_SOCKET (not started by systemd with Type=notify) nothing is sent. Main thread only. */
#ifndef PG_SDNOTIFY_H
#define PG_SDNOTIFY_H

#include <sys/socket.h>
#include <sys/un.h>

struct pg_sdnotify {
    int fd; /* -1: nothing to tell */
    struct sockaddr_un addr;
    socklen_t addrlen;
    int failed; /* a send failed and was logged: later failures are not */
};

/* Read $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace). A name that cannot be
 * used is logged and leaves n silent: the gateway runs either way. */
void pg_sdnotify_open(struct pg_sdnotify *n);
/* Send msg ("READY=1", lines separated by '\n'). */
void pg_sdnotify(struct pg_sdnotify *n, const char *msg);
/* Close the socket; accepts one never opened. */
void pg_sdnotify_close(struct pg_sdnotify *n);

#endif
