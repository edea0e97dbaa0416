/* sdnotify.c -- sd_notify(3)'s datagrams to $NOTIFY_SOCKET, for Type=notify units. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void pg_sdnotify_open(struct pg_sdnotify *n)
{
    memset(n, 0, sizeof *n);
    n->fd = -1;
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return;
    size_t len = strlen(name);
    if ((name[0] != '/' && name[0] != '@') || len >= sizeof n->addr.sun_path) {
        pg_log(PG_LOG_WARN, "NOTIFY_SOCKET %.120s: not a socket path; systemd is not told", name);
        return;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, name, len);
    if (name[0] == '@') /* the abstract namespace: a leading NUL, no terminating one */
        n->addr.sun_path[0] = '\0';
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0)
        pg_log(PG_LOG_WARN, "NOTIFY_SOCKET: %s; systemd is not told", strerror(errno));
}

void pg_sdnotify(struct pg_sdnotify *n, const char *msg)
{
    if (n->fd < 0)
        return;
    if (sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
               n->addrlen) >= 0)
        return;
    if (!n->failed++)
        pg_log(PG_LOG_WARN, "NOTIFY_SOCKET: %s; systemd may not see the state", strerror(errno));
}

void pg_sdnotify_close(struct pg_sdnotify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
