/* The real libc functions behind every hook, resolved once with dlsym(RTLD_NEXT); until then
 * (hooks called by other libraries' constructors), and for a symbol this libc lacks, each
 * pointer holds a fallback making the raw system call, so a pointer is never NULL. */
#ifndef SHIM_REAL_H
#define SHIM_REAL_H

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define SHIM_EXPORT __attribute__((visibility("default")))
/* A hook's work for the shim's own or replaced fds: kept out of line, so that the hook's
 * pass-through for every other fd needs no stack frame (a load, a compare, a tail call). */
#define SHIM_SLOW __attribute__((noinline, cold))

/* Resolves every symbol; called from the constructor.  Returns 0 or -1 if one is missing. */
int shim_real_init(void);

/* Resolved by shim_real_init (the syscall fallbacks until then, or when libc lacks the
 * symbol).  The wrappers below are inline so that a hook's pass-through is one indirect jump,
 * without a NULL test.  Declared hidden so the hooks read them PC-relative, not via the GOT. */
struct epoll_event;
#pragma GCC visibility push(hidden)
extern int (*shim_p_socket)(int, int, int);
extern int (*shim_p_socketpair)(int, int, int, int *);
extern int (*shim_p_connect)(int, const struct sockaddr *, socklen_t);
extern int (*shim_p_close)(int);
extern int (*shim_p_close_range)(unsigned, unsigned, int);
extern void (*shim_p_closefrom)(int);
extern int (*shim_p_shutdown)(int, int);
extern int (*shim_p_getpeername)(int, struct sockaddr *, socklen_t *);
extern int (*shim_p_getsockname)(int, struct sockaddr *, socklen_t *);
extern int (*shim_p_getsockopt)(int, int, int, void *, socklen_t *);
extern int (*shim_p_setsockopt)(int, int, int, const void *, socklen_t);
extern int (*shim_p_fcntl)(int, int, ...);
extern int (*shim_p_dup)(int);
extern int (*shim_p_dup2)(int, int);
extern int (*shim_p_dup3)(int, int, int);
extern int (*shim_p_accept4)(int, struct sockaddr *, socklen_t *, int);
extern int (*shim_p_accept)(int, struct sockaddr *, socklen_t *);
extern int (*shim_p_listen)(int, int);
extern int (*shim_p_bind)(int, const struct sockaddr *, socklen_t);
extern int (*shim_p_pipe2)(int *, int);
extern int (*shim_p_pipe)(int *);
extern int (*shim_p_epoll_create1)(int);
extern int (*shim_p_epoll_create)(int);
extern int (*shim_p_eventfd)(unsigned, int);
extern int (*shim_p_epoll_ctl)(int, int, int, struct epoll_event *);
extern ssize_t (*shim_p_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
struct iovec;
extern ssize_t (*shim_p_write)(int, const void *, size_t);
extern ssize_t (*shim_p_writev)(int, const struct iovec *, int);
extern ssize_t (*shim_p_sendmsg)(int, const struct msghdr *, int);
struct mmsghdr;
extern ssize_t (*shim_p_sendfile)(int, int, off_t *, size_t);
extern ssize_t (*shim_p_sendfile64)(int, int, off64_t *, size_t);
extern ssize_t (*shim_p_splice)(int, off64_t *, int, off64_t *, size_t, unsigned);
extern int (*shim_p_sendmmsg)(int, struct mmsghdr *, unsigned, int);
#pragma GCC visibility pop

static inline int shim_real_socket(int domain, int type, int proto)
{
    return shim_p_socket(domain, type, proto);
}

static inline int shim_real_socketpair(int domain, int type, int proto, int sv[2])
{
    return shim_p_socketpair(domain, type, proto, sv);
}

static inline int shim_real_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    return shim_p_connect(fd, sa, len);
}

static inline int shim_real_close(int fd)
{
    return shim_p_close(fd);
}

static inline int shim_real_close_range(unsigned first, unsigned last, int flags)
{
    return shim_p_close_range(first, last, flags);
}

static inline void shim_real_closefrom(int lowfd)
{
    shim_p_closefrom(lowfd);
}

static inline int shim_real_shutdown(int fd, int how)
{
    return shim_p_shutdown(fd, how);
}

static inline int shim_real_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    return shim_p_getpeername(fd, sa, len);
}

static inline int shim_real_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    return shim_p_getsockname(fd, sa, len);
}

static inline int shim_real_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    return shim_p_getsockopt(fd, level, name, val, len);
}

static inline int shim_real_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    return shim_p_setsockopt(fd, level, name, val, len);
}

static inline int shim_real_fcntl(int fd, int cmd, unsigned long arg)
{
    return shim_p_fcntl(fd, cmd, arg);
}

static inline int shim_real_dup(int fd)
{
    return shim_p_dup(fd);
}

static inline int shim_real_dup2(int fd, int fd2)
{
    return shim_p_dup2(fd, fd2);
}

static inline int shim_real_dup3(int fd, int fd2, int flags)
{
    return shim_p_dup3(fd, fd2, flags);
}

static inline int shim_real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    return shim_p_accept4(fd, sa, len, flags);
}

static inline int shim_real_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    return shim_p_accept(fd, sa, len);
}

static inline int shim_real_listen(int fd, int backlog)
{
    return shim_p_listen(fd, backlog);
}

static inline int shim_real_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return shim_p_bind(fd, sa, len);
}

static inline int shim_real_pipe2(int fds[2], int flags)
{
    return shim_p_pipe2(fds, flags);
}

static inline int shim_real_pipe(int fds[2])
{
    return shim_p_pipe(fds);
}

static inline int shim_real_epoll_create1(int flags)
{
    return shim_p_epoll_create1(flags);
}

static inline int shim_real_epoll_create(int size)
{
    return shim_p_epoll_create(size);
}

static inline int shim_real_eventfd(unsigned initval, int flags)
{
    return shim_p_eventfd(initval, flags);
}

static inline ssize_t shim_real_sendto(int fd, const void *buf, size_t n, int flags,
                                       const struct sockaddr *sa, socklen_t len)
{
    return shim_p_sendto(fd, buf, n, flags, sa, len);
}

static inline ssize_t shim_real_write(int fd, const void *buf, size_t n)
{
    return shim_p_write(fd, buf, n);
}

static inline ssize_t shim_real_writev(int fd, const struct iovec *iov, int cnt)
{
    return shim_p_writev(fd, iov, cnt);
}

static inline ssize_t shim_real_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return shim_p_sendmsg(fd, msg, flags);
}

static inline ssize_t shim_real_sendfile(int out, int in, off_t *off, size_t n)
{
    return shim_p_sendfile(out, in, off, n);
}

static inline ssize_t shim_real_sendfile64(int out, int in, off64_t *off, size_t n)
{
    return shim_p_sendfile64(out, in, off, n);
}

static inline ssize_t shim_real_splice(int in, off64_t *off_in, int out, off64_t *off_out, size_t n, unsigned fl)
{
    return shim_p_splice(in, off_in, out, off_out, n, fl);
}

static inline int shim_real_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
    return shim_p_sendmmsg(fd, v, n, flags);
}

static inline int shim_real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    return shim_p_epoll_ctl(epfd, op, fd, ev);
}

#endif
