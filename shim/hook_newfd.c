/* Hooks the calls that hand out new fd numbers (socket, socketpair, accept, accept4, pipe,
 * pipe2, epoll_create, epoll_create1, eventfd) and epoll_ctl: any stale record for the number is dropped
 * (preload-shims.md lesson 6), and while the event thread builds its loop the new fds are
 * moved high and tagged as the shim's.  New TCP sockets are tagged so that their epoll
 * registrations made before connect() can be replayed at the swap (epollrec.h). */
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "epollrec.h"
#include "fdtable.h"
#include "real.h"
#include "server.h"
#include "shim.h"

static int new_fd(int fd)
{
    if (fd < 0 || !shim_fdtab)
        return fd;
    if (shim_tls_hide_new)
        return shim_fd_hide(fd, SHIM_FD_ENGINE);
    shim_fd_fresh(fd);
    return fd;
}

static int new_pair(int r, int fds[2])
{
    if (r == 0) {
        fds[0] = new_fd(fds[0]);
        fds[1] = new_fd(fds[1]);
    }
    return r;
}

SHIM_EXPORT int socket(int domain, int type, int proto)
{
    int fd = new_fd(shim_real_socket(domain, type, proto));
    /* A TCP socket the app may connect to a selected peer: watch its epoll registrations. */
    if (fd >= 0 && shim_engaged() && !shim_tls_hide_new && (domain == AF_INET || domain == AF_INET6) &&
        (type & 0xff) == SOCK_STREAM)
        shim_fd_tag_tcpnew(fd);
    return fd;
}

static SHIM_SLOW int epoll_ctl_recorded(int epfd, int op, int fd, struct epoll_event *ev)
{
    int r = shim_real_epoll_ctl(epfd, op, fd, ev);
    if (r == 0)
        shim_epollrec_note(epfd, op, fd, ev);
    return r;
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    /* Every other fd: one load, then libc as a tail call (wrk calls this twice per request). */
    if (shim_fd_get(fd) != SHIM_FD_TCPNEW || shim_tls_guard)
        return shim_real_epoll_ctl(epfd, op, fd, ev);
    return epoll_ctl_recorded(epfd, op, fd, ev);
}

SHIM_EXPORT int socketpair(int domain, int type, int proto, int sv[2])
{
    return new_pair(shim_real_socketpair(domain, type, proto, sv), sv);
}

/* accept/accept4 also give a connection bridged from an SST stream its SST peer's address
 * (server.h; one atomic load when the process has no SST listener). */
SHIM_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    socklen_t cap = len ? *len : 0;
    return shim_server_on_accept(new_fd(shim_real_accept(fd, sa, len)), sa, len, cap);
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    socklen_t cap = len ? *len : 0;
    return shim_server_on_accept(new_fd(shim_real_accept4(fd, sa, len, flags)), sa, len, cap);
}

SHIM_EXPORT int pipe(int fds[2])
{
    return new_pair(shim_real_pipe(fds), fds);
}

SHIM_EXPORT int pipe2(int fds[2], int flags)
{
    return new_pair(shim_real_pipe2(fds, flags), fds);
}

SHIM_EXPORT int epoll_create(int size)
{
    return new_fd(shim_real_epoll_create(size));
}

SHIM_EXPORT int epoll_create1(int flags)
{
    return new_fd(shim_real_epoll_create1(flags));
}

SHIM_EXPORT int eventfd(unsigned initval, int flags)
{
    return new_fd(shim_real_eventfd(initval, flags));
}
