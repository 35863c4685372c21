/* Resolves the real libc functions behind the hooks (dlsym RTLD_NEXT) with raw-syscall fallbacks. */
#define _GNU_SOURCE
#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>


static int (*p_socket)(int, int, int);
static int (*p_socketpair)(int, int, int, int *);
static int (*p_connect)(int, const struct sockaddr *, socklen_t);
static int (*p_close)(int);
static int (*p_close_range)(unsigned, unsigned, int);
static void (*p_closefrom)(int);
static int (*p_shutdown)(int, int);
static int (*p_getpeername)(int, struct sockaddr *, socklen_t *);
static int (*p_getsockname)(int, struct sockaddr *, socklen_t *);
static int (*p_getsockopt)(int, int, int, void *, socklen_t *);
static int (*p_setsockopt)(int, int, int, const void *, socklen_t);
static int (*p_fcntl)(int, int, ...);
static int (*p_dup)(int);
static int (*p_dup2)(int, int);
static int (*p_dup3)(int, int, int);
static int (*p_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*p_accept)(int, struct sockaddr *, socklen_t *);
static int (*p_listen)(int, int);
static int (*p_pipe2)(int *, int);
static int (*p_pipe)(int *);
static int (*p_epoll_create1)(int);
static int (*p_epoll_create)(int);
static int (*p_eventfd)(unsigned, int);
static int (*p_epoll_ctl)(int, int, int, struct epoll_event *);
static ssize_t (*p_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);

/* dlsym(RTLD_NEXT) returns the next definition after this library: libc's.  A NULL means a
 * symbol this libc lacks (closefrom, close_range on old glibc): the syscall fallback serves. */
#define RESOLVE(name) (p_##name = (__typeof__(p_##name))dlsym(RTLD_NEXT, #name))

int shim_real_init(void)
{
    RESOLVE(socket);
    RESOLVE(socketpair);
    RESOLVE(connect);
    RESOLVE(close);
    RESOLVE(close_range);
    RESOLVE(closefrom);
    RESOLVE(shutdown);
    RESOLVE(getpeername);
    RESOLVE(getsockname);
    RESOLVE(getsockopt);
    RESOLVE(setsockopt);
    RESOLVE(fcntl);
    RESOLVE(dup);
    RESOLVE(dup2);
    RESOLVE(dup3);
    RESOLVE(accept4);
    RESOLVE(accept);
    RESOLVE(listen);
    RESOLVE(pipe2);
    RESOLVE(pipe);
    RESOLVE(epoll_create1);
    RESOLVE(epoll_create);
    RESOLVE(eventfd);
    RESOLVE(epoll_ctl);
    RESOLVE(sendto);
    if (!p_socket || !p_connect || !p_close || !p_fcntl || !p_dup3 || !p_getsockopt)
        return -1;
    return 0;
}

int shim_real_socket(int domain, int type, int proto)
{
    return p_socket ? p_socket(domain, type, proto) : (int)syscall(SYS_socket, domain, type, proto);
}

int shim_real_socketpair(int domain, int type, int proto, int sv[2])
{
    return p_socketpair ? p_socketpair(domain, type, proto, sv)
                        : (int)syscall(SYS_socketpair, domain, type, proto, sv);
}

int shim_real_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    return p_connect ? p_connect(fd, sa, len) : (int)syscall(SYS_connect, fd, sa, len);
}

int shim_real_close(int fd)
{
    return p_close ? p_close(fd) : (int)syscall(SYS_close, fd);
}

int shim_real_close_range(unsigned first, unsigned last, int flags)
{
    return p_close_range ? p_close_range(first, last, flags)
                         : (int)syscall(SYS_close_range, first, last, flags);
}

void shim_real_closefrom(int lowfd)
{
    if (p_closefrom)
        p_closefrom(lowfd);
    else
        syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0);
}

int shim_real_shutdown(int fd, int how)
{
    return p_shutdown ? p_shutdown(fd, how) : (int)syscall(SYS_shutdown, fd, how);
}

int shim_real_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    return p_getpeername ? p_getpeername(fd, sa, len) : (int)syscall(SYS_getpeername, fd, sa, len);
}

int shim_real_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    return p_getsockname ? p_getsockname(fd, sa, len) : (int)syscall(SYS_getsockname, fd, sa, len);
}

int shim_real_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    return p_getsockopt ? p_getsockopt(fd, level, name, val, len)
                        : (int)syscall(SYS_getsockopt, fd, level, name, val, len);
}

int shim_real_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    return p_setsockopt ? p_setsockopt(fd, level, name, val, len)
                        : (int)syscall(SYS_setsockopt, fd, level, name, val, len);
}

int shim_real_fcntl(int fd, int cmd, unsigned long arg)
{
    return p_fcntl ? p_fcntl(fd, cmd, arg) : (int)syscall(SYS_fcntl, fd, cmd, arg);
}

int shim_real_dup(int fd)
{
    return p_dup ? p_dup(fd) : (int)syscall(SYS_dup, fd);
}

int shim_real_dup2(int fd, int fd2)
{
    if (p_dup2)
        return p_dup2(fd, fd2);
    if (fd == fd2) {
        /* dup2 onto itself only checks that fd is open. */
        return (int)syscall(SYS_fcntl, fd, F_GETFD) < 0 ? -1 : fd2;
    }
    return (int)syscall(SYS_dup3, fd, fd2, 0);
}

int shim_real_dup3(int fd, int fd2, int flags)
{
    return p_dup3 ? p_dup3(fd, fd2, flags) : (int)syscall(SYS_dup3, fd, fd2, flags);
}

int shim_real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    return p_accept4 ? p_accept4(fd, sa, len, flags) : (int)syscall(SYS_accept4, fd, sa, len, flags);
}

int shim_real_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    return p_accept ? p_accept(fd, sa, len) : (int)syscall(SYS_accept4, fd, sa, len, 0);
}

int shim_real_listen(int fd, int backlog)
{
    return p_listen ? p_listen(fd, backlog) : (int)syscall(SYS_listen, fd, backlog);
}

int shim_real_pipe2(int fds[2], int flags)
{
    return p_pipe2 ? p_pipe2(fds, flags) : (int)syscall(SYS_pipe2, fds, flags);
}

int shim_real_pipe(int fds[2])
{
    return p_pipe ? p_pipe(fds) : (int)syscall(SYS_pipe2, fds, 0);
}

int shim_real_epoll_create1(int flags)
{
    return p_epoll_create1 ? p_epoll_create1(flags) : (int)syscall(SYS_epoll_create1, flags);
}

int shim_real_epoll_create(int size)
{
    return p_epoll_create ? p_epoll_create(size) : (int)syscall(SYS_epoll_create1, 0);
}

int shim_real_eventfd(unsigned initval, int flags)
{
    return p_eventfd ? p_eventfd(initval, flags) : (int)syscall(SYS_eventfd2, initval, flags);
}

ssize_t shim_real_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len)
{
    return p_sendto ? p_sendto(fd, buf, n, flags, sa, len)
                    : syscall(SYS_sendto, fd, buf, n, flags, sa, len);
}

int shim_real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    return p_epoll_ctl ? p_epoll_ctl(epfd, op, fd, ev) : (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}
