/* Resolves the real libc functions behind the hooks (dlsym RTLD_NEXT); the wrappers are in real.h. */
#define _GNU_SOURCE
#include "real.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The fallbacks: the raw system call, for hooks that run before the constructor resolved
 * libc (other libraries' constructors) and for symbols this libc lacks. */
static int fb_socket(int d, int t, int p) { return (int)syscall(SYS_socket, d, t, p); }
static int fb_socketpair(int d, int t, int p, int *sv) { return (int)syscall(SYS_socketpair, d, t, p, sv); }
static int fb_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    return (int)syscall(SYS_connect, fd, sa, len);
}
static int fb_close(int fd) { return (int)syscall(SYS_close, fd); }
static int fb_close_range(unsigned first, unsigned last, int flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}
static void fb_closefrom(int lowfd) { syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0); }
static int fb_shutdown(int fd, int how) { return (int)syscall(SYS_shutdown, fd, how); }
static int fb_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    return (int)syscall(SYS_getpeername, fd, sa, len);
}
static int fb_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    return (int)syscall(SYS_getsockname, fd, sa, len);
}
static int fb_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    return (int)syscall(SYS_getsockopt, fd, level, name, val, len);
}
static int fb_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    return (int)syscall(SYS_setsockopt, fd, level, name, val, len);
}
static int fb_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}
static int fb_dup(int fd) { return (int)syscall(SYS_dup, fd); }
static int fb_dup2(int fd, int fd2)
{
    /* dup2 onto itself only checks that fd is open. */
    if (fd == fd2)
        return (int)syscall(SYS_fcntl, fd, F_GETFD) < 0 ? -1 : fd2;
    return (int)syscall(SYS_dup3, fd, fd2, 0);
}
static int fb_dup3(int fd, int fd2, int flags) { return (int)syscall(SYS_dup3, fd, fd2, flags); }
static int fb_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    return (int)syscall(SYS_accept4, fd, sa, len, flags);
}
static int fb_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    return (int)syscall(SYS_accept4, fd, sa, len, 0);
}
static int fb_listen(int fd, int backlog) { return (int)syscall(SYS_listen, fd, backlog); }
static int fb_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return (int)syscall(SYS_bind, fd, sa, len);
}
static int fb_pipe2(int *fds, int flags) { return (int)syscall(SYS_pipe2, fds, flags); }
static int fb_pipe(int *fds) { return (int)syscall(SYS_pipe2, fds, 0); }
static int fb_epoll_create1(int flags) { return (int)syscall(SYS_epoll_create1, flags); }
static int fb_epoll_create(int size) { return (int)syscall(SYS_epoll_create1, 0); }
static int fb_eventfd(unsigned initval, int flags) { return (int)syscall(SYS_eventfd2, initval, flags); }
static int fb_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}
static ssize_t fb_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
                         socklen_t len)
{
    return syscall(SYS_sendto, fd, buf, n, flags, sa, len);
}

static ssize_t fb_write(int fd, const void *buf, size_t n) { return syscall(SYS_write, fd, buf, n); }
static ssize_t fb_writev(int fd, const struct iovec *iov, int cnt) { return syscall(SYS_writev, fd, iov, cnt); }
static ssize_t fb_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return syscall(SYS_sendmsg, fd, msg, flags);
}

static ssize_t fb_sendfile(int out, int in, off_t *off, size_t n) { return syscall(SYS_sendfile, out, in, off, n); }
static ssize_t fb_sendfile64(int out, int in, off64_t *off, size_t n)
{
#ifdef SYS_sendfile64
    return syscall(SYS_sendfile64, out, in, off, n);
#else
    return syscall(SYS_sendfile, out, in, off, n);
#endif
}
static ssize_t fb_splice(int in, off64_t *off_in, int out, off64_t *off_out, size_t n, unsigned fl)
{
    return syscall(SYS_splice, in, off_in, out, off_out, n, fl);
}
static int fb_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
    return (int)syscall(SYS_sendmmsg, fd, v, n, flags);
}

int (*shim_p_socket)(int, int, int) = fb_socket;
int (*shim_p_socketpair)(int, int, int, int *) = fb_socketpair;
int (*shim_p_connect)(int, const struct sockaddr *, socklen_t) = fb_connect;
int (*shim_p_close)(int) = fb_close;
int (*shim_p_close_range)(unsigned, unsigned, int) = fb_close_range;
void (*shim_p_closefrom)(int) = fb_closefrom;
int (*shim_p_shutdown)(int, int) = fb_shutdown;
int (*shim_p_getpeername)(int, struct sockaddr *, socklen_t *) = fb_getpeername;
int (*shim_p_getsockname)(int, struct sockaddr *, socklen_t *) = fb_getsockname;
int (*shim_p_getsockopt)(int, int, int, void *, socklen_t *) = fb_getsockopt;
int (*shim_p_setsockopt)(int, int, int, const void *, socklen_t) = fb_setsockopt;
int (*shim_p_fcntl)(int, int, ...) = fb_fcntl;
int (*shim_p_dup)(int) = fb_dup;
int (*shim_p_dup2)(int, int) = fb_dup2;
int (*shim_p_dup3)(int, int, int) = fb_dup3;
int (*shim_p_accept4)(int, struct sockaddr *, socklen_t *, int) = fb_accept4;
int (*shim_p_accept)(int, struct sockaddr *, socklen_t *) = fb_accept;
int (*shim_p_listen)(int, int) = fb_listen;
int (*shim_p_bind)(int, const struct sockaddr *, socklen_t) = fb_bind;
int (*shim_p_pipe2)(int *, int) = fb_pipe2;
int (*shim_p_pipe)(int *) = fb_pipe;
int (*shim_p_epoll_create1)(int) = fb_epoll_create1;
int (*shim_p_epoll_create)(int) = fb_epoll_create;
int (*shim_p_eventfd)(unsigned, int) = fb_eventfd;
int (*shim_p_epoll_ctl)(int, int, int, struct epoll_event *) = fb_epoll_ctl;
ssize_t (*shim_p_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t) = fb_sendto;
ssize_t (*shim_p_write)(int, const void *, size_t) = fb_write;
ssize_t (*shim_p_writev)(int, const struct iovec *, int) = fb_writev;
ssize_t (*shim_p_sendmsg)(int, const struct msghdr *, int) = fb_sendmsg;
ssize_t (*shim_p_sendfile)(int, int, off_t *, size_t) = fb_sendfile;
ssize_t (*shim_p_sendfile64)(int, int, off64_t *, size_t) = fb_sendfile64;
ssize_t (*shim_p_splice)(int, off64_t *, int, off64_t *, size_t, unsigned) = fb_splice;
int (*shim_p_sendmmsg)(int, struct mmsghdr *, unsigned, int) = fb_sendmmsg;

/* dlsym(RTLD_NEXT) returns the next definition after this library: libc's.  A NULL means a
 * symbol this libc lacks (closefrom, close_range on old glibc): the syscall fallback stays. */
#define RESOLVE(name)                                                                      \
    do {                                                                                   \
        void *p_ = dlsym(RTLD_NEXT, #name);                                                \
        if (p_)                                                                            \
            shim_p_##name = (__typeof__(shim_p_##name))p_;                                 \
        else                                                                               \
            missing |= is_required(#name);                                                 \
    } while (0)

/* Without these the shim cannot work at all (init then leaves it inert). */
static bool is_required(const char *name)
{
    static const char *const req[] = {"socket", "connect", "close", "fcntl", "dup3", "getsockopt"};
    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
        if (strcmp(name, req[i]) == 0)
            return true;
    return false;
}

int shim_real_init(void)
{
    bool missing = false;

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
    RESOLVE(bind);
    RESOLVE(pipe2);
    RESOLVE(pipe);
    RESOLVE(epoll_create1);
    RESOLVE(epoll_create);
    RESOLVE(eventfd);
    RESOLVE(epoll_ctl);
    RESOLVE(sendto);
    RESOLVE(write);
    RESOLVE(writev);
    RESOLVE(sendmsg);
    RESOLVE(sendfile);
    RESOLVE(sendfile64);
    RESOLVE(splice);
    RESOLVE(sendmmsg);
    return missing ? -1 : 0;
}
