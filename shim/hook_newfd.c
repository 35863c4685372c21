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

static SHIM_SLOW int new_fd_recorded(int fd)
{
    if (fd < 0 || !shim_fdtab)
        return fd;
    if (shim_tls_hide_new)
        return shim_fd_hide(fd, SHIM_FD_ENGINE);
    shim_fd_fresh(fd);
    return fd;
}

/* The common case -- nothing recorded for the number, not the shim's own code -- is one table
 * load and one thread-local load (a negative fd or an inert shim reads 0 too).  shim_tls_guard
 * covers shim_tls_hide_new: the event thread sets both (engine.c, evthread.c). */
static inline int new_fd(int fd)
{
    if (shim_fd_get(fd) != 0 || shim_tls_guard)
        return new_fd_recorded(fd);
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

static bool is_tcp(int domain, int type)
{
    return (domain == AF_INET || domain == AF_INET6) && (type & 0xff) == SOCK_STREAM;
}

static SHIM_SLOW int socket_recorded(int fd, bool tcp)
{
    fd = new_fd_recorded(fd);
    if (tcp && shim_engaged() && !shim_tls_hide_new)
        shim_fd_tag_tcpnew(fd);   /* ignores a negative fd */
    return fd;
}

SHIM_EXPORT int socket(int domain, int type, int proto)
{
    /* Sorted before the call, so that one value (in one saved register) lives across it rather
     * than domain and type: the pass-through then needs no stack frame beyond that register
     * (benchmark 9 counts every instruction of wrk's socket() per request). */
    uintptr_t tag = is_tcp(domain, type) ? SHIM_FD_TCPNEW : 0;
    int fd = shim_real_socket(domain, type, proto);
    /* A negative fd, an inert shim (size 0), a stale record, the shim's own code (the guard
     * covers shim_tls_hide_new): out of line.  Otherwise one load finds the number unrecorded,
     * and a TCP socket the app may connect to a selected peer is tagged so that its epoll
     * registrations are watched.  A table exists only once init (which holds the guard) has
     * made the shim active, so shim_active needs no test here. */
    if ((unsigned)fd >= (unsigned)shim_fdtab_size || shim_tls_guard)
        return socket_recorded(fd, tag != 0);
    _Atomic(uintptr_t) *entry = &shim_fdtab[fd];
    if (atomic_load_explicit(entry, memory_order_acquire) != 0)
        return socket_recorded(fd, tag != 0);
    /* A store, not a compare-and-swap, and made for any socket (0 over 0 for one that is not
     * TCP: cheaper than a branch): the entry was 0 just now, and no other thread can record
     * anything for a number the kernel has only just handed to this call (a vfork child's
     * socket() may tag a number that is free in the parent: see fdtable.h). */
    atomic_store_explicit(entry, tag, memory_order_release);
    return fd;
}

static SHIM_SLOW int epoll_ctl_recorded(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (!SHIM_FD_IS_TCPNEW(shim_fd_get(fd)) || shim_tls_guard)
        return shim_real_epoll_ctl(epfd, op, fd, ev);
    int r = shim_real_epoll_ctl(epfd, op, fd, ev);
    if (r == 0) {
        /* Tagged TCPREC before the record exists, so that a connect() or close() racing in
         * another thread either sees the tag and drops the record, or has already untagged:
         * then the record just made is dropped here. */
        shim_fd_mark_tcprec(fd);
        shim_epollrec_note(epfd, op, fd, ev);
        if (shim_fd_get(fd) != SHIM_FD_TCPREC)
            shim_epollrec_forget(fd);
    }
    return r;
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    /* An fd with no entry: one load, then libc as a tail call (wrk calls this about six times
     * per Connection: close request).  Any entry -- a new TCP socket, a connection, the
     * shim's own -- is sorted out of line. */
    if (shim_fd_get(fd) == 0)
        return shim_real_epoll_ctl(epfd, op, fd, ev);
    return epoll_ctl_recorded(epfd, op, fd, ev);
}

SHIM_EXPORT int socketpair(int domain, int type, int proto, int sv[2])
{
    return new_pair(shim_real_socketpair(domain, type, proto, sv), sv);
}

/* accept/accept4 also give a connection bridged from an SST stream its SST peer's address
 * (server.h).  A process with no SST listener (one atomic load) takes none of that path; a
 * listener is recorded before the connections it bridges can arrive, so checking before the
 * call is enough. */
static SHIM_SLOW int accept_sst(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    socklen_t cap = len ? *len : 0;
    return shim_server_on_accept(new_fd(shim_real_accept4(fd, sa, len, flags)), sa, len, cap);
}

SHIM_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    if (shim_server_engaged())
        return accept_sst(fd, sa, len, 0);
    return new_fd(shim_real_accept(fd, sa, len));
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    if (shim_server_engaged())
        return accept_sst(fd, sa, len, flags);
    return new_fd(shim_real_accept4(fd, sa, len, flags));
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
