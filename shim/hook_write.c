/* Hooks write(), writev(), send(), sendmsg() (and sendto(), hook_connect.c) for replaced fds:
 * the first write after a peer's reset fails with the reset's error, as kernel TCP's does.
 *
 * A reset reaches the app's socketpair end as the kernel's ECONNRESET on a Unix socket whose
 * peer closed with unread bytes (docs/shim.md §2 "A peer's reset"), which also shuts the end
 * for writing: a write then fails with EPIPE and raises SIGPIPE at once, with the ECONNRESET
 * still pending for a read or SO_ERROR.  TCP answers the first failing call after a RST with
 * the error itself -- a write included, without SIGPIPE -- and EPIPE (with SIGPIPE) only
 * after that.  A program that does not ignore SIGPIPE died where TCP would have given it
 * ECONNRESET.  So a write on a replaced fd goes out with MSG_NOSIGNAL; on EPIPE the socket's
 * pending error, if any, is taken (getsockopt SO_ERROR: read-and-clear, as the write of TCP
 * takes it) and returned; else EPIPE, with the SIGPIPE the app did not ask to be spared.
 * Every other fd: one table load, a compare and libc as a tail call (no system call added). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "fdtable.h"
#include "real.h"
#include "shim.h"

/* The kernel said EPIPE for a write on replaced fd (with flags, the app's). */
static ssize_t after_epipe(int fd, uintptr_t v, int flags)
{
    struct shim_conn *c = (struct shim_conn *)v;
    int kerr = 0;
    socklen_t l = sizeof(kerr);
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &kerr, &l) == 0 && kerr != 0) {
        /* The transport's own error where this process armed the reset (ETIMEDOUT for a dead
         * channel, as TCP's write says), as SO_ERROR answers it (hook_sockopt.c). */
        int err = atomic_load(&c->reset_armed) && atomic_load(&c->err) ? atomic_load(&c->err) : kerr;
        errno = err;
        return -1;
    }
    /* A reset after the peer's FIN is TCP's EPIPE (shim_reset_after_fin): this write takes it
     * from SO_ERROR, as sk_stream_error does. */
    if (atomic_load(&c->err) == EPIPE)
        atomic_store(&c->err_pending, false);
    if (!(flags & MSG_NOSIGNAL))
        raise(SIGPIPE);
    errno = EPIPE;
    return -1;
}

/* A replaced fd's number may have been closed behind the shim's back and reused by something
 * that is not a socket (the entry is stale): that gets the call the app made. */
static bool not_socket(ssize_t r)
{
    return r < 0 && errno == ENOTSOCK;
}

/* The app shut the writing of the connection on fd, and the entry still names fd's socket.
 * A close the shim never saw leaves the entry behind with its flag: libuv (node) closes with a
 * raw syscall, so every socket node shut and closed did, and the next socket to get the
 * number -- the app's next connection, or the shim's own control socket to sstd -- had its
 * writes failed with EPIPE without a system call (node's keep-alive agent through sstd: 95 of
 * 100 requests EPIPE, test_shim_apps.sh).  The inode check runs only once the flag is set. */
enum shut { SHUT_NOT, SHUT_YES, SHUT_STALE };

static enum shut shut_state(int fd, uintptr_t v)
{
    if (!atomic_load(&((struct shim_conn *)v)->wr_shut))
        return SHUT_NOT;
    int saved = errno;
    bool current = shim_conn_check(fd, v) != NULL;   /* drops a stale entry */
    errno = saved;
    return current ? SHUT_YES : SHUT_STALE;   /* stale: the fd is not ours, the app's call */
}

/* No connection was ever carried in this process (a program the shim does not carry, such as
 * the nginx and wrk of benchmark 9): one load, no table lookup, before the tail call.  The
 * flag is set before the first record is stored, by the thread that stores it; a thread that
 * writes to that fd learnt the number after it. */
static inline bool shim_conns_maybe(void)
{
    return atomic_load_explicit(&shim_fd_conns_seen, memory_order_relaxed);
}

SHIM_SLOW ssize_t shim_write_conn(int fd, uintptr_t v, const void *buf, size_t n, int flags, bool is_write)
{
    if (shim_tls_guard)
        return is_write ? shim_real_write(fd, buf, n) : shim_real_sendto(fd, buf, n, flags, NULL, 0);
    enum shut st = shut_state(fd, v);
    if (st == SHUT_YES)
        return after_epipe(fd, v, flags);   /* the app shut its writing (hook_sockopt.c) */
    if (st == SHUT_STALE)
        return is_write ? shim_real_write(fd, buf, n) : shim_real_sendto(fd, buf, n, flags, NULL, 0);
    /* A connected socket: the address a sendto() gives is ignored, as TCP does. */
    ssize_t r = shim_real_sendto(fd, buf, n, flags | MSG_NOSIGNAL, NULL, 0);
    if (r >= 0 || errno != EPIPE) {
        if (is_write && not_socket(r)) {
            shim_conn_check(fd, v);
            return shim_real_write(fd, buf, n);
        }
        return r;
    }
    return after_epipe(fd, v, flags);
}

static SHIM_SLOW ssize_t sendmsg_conn(int fd, uintptr_t v, const struct msghdr *msg, int flags, bool is_writev)
{
    if (shim_tls_guard)
        return is_writev ? shim_real_writev(fd, msg->msg_iov, (int)msg->msg_iovlen) : shim_real_sendmsg(fd, msg, flags);
    enum shut st = shut_state(fd, v);
    if (st == SHUT_YES)
        return after_epipe(fd, v, flags);   /* the app shut its writing (hook_sockopt.c) */
    if (st == SHUT_STALE)
        return is_writev ? shim_real_writev(fd, msg->msg_iov, (int)msg->msg_iovlen) : shim_real_sendmsg(fd, msg, flags);
    ssize_t r = shim_real_sendmsg(fd, msg, flags | MSG_NOSIGNAL);
    if (r >= 0 || errno != EPIPE) {
        if (is_writev && not_socket(r)) {
            shim_conn_check(fd, v);
            return shim_real_writev(fd, msg->msg_iov, (int)msg->msg_iovlen);
        }
        return r;
    }
    return after_epipe(fd, v, flags);
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (!shim_conns_maybe())
        return shim_real_write(fd, buf, n);
    uintptr_t v = shim_fd_get(fd);
    if (!SHIM_FD_IS_CONN(v))
        return shim_real_write(fd, buf, n);
    return shim_write_conn(fd, v, buf, n, 0, true);
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (!shim_conns_maybe())
        return shim_real_sendto(fd, buf, n, flags, NULL, 0);
    uintptr_t v = shim_fd_get(fd);
    if (!SHIM_FD_IS_CONN(v))
        return shim_real_sendto(fd, buf, n, flags, NULL, 0);
    return shim_write_conn(fd, v, buf, n, flags, false);
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (!shim_conns_maybe())
        return shim_real_writev(fd, iov, cnt);
    uintptr_t v = shim_fd_get(fd);
    if (!SHIM_FD_IS_CONN(v))
        return shim_real_writev(fd, iov, cnt);
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)(cnt < 0 ? 0 : cnt) };
    if (cnt < 0) {
        errno = EINVAL;
        return -1;
    }
    return sendmsg_conn(fd, v, &msg, 0, true);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!shim_conns_maybe())
        return shim_real_sendmsg(fd, msg, flags);
    uintptr_t v = shim_fd_get(fd);
    if (!SHIM_FD_IS_CONN(v) || !msg)
        return shim_real_sendmsg(fd, msg, flags);
    if (msg->msg_name || msg->msg_namelen) {
        if (!shim_conn_check(fd, v))
            return shim_real_sendmsg(fd, msg, flags);   /* stale: a UDP socket keeps its address */
        /* A connected socket ignores the address, as TCP does. */
        struct msghdr m = *msg;
        m.msg_name = NULL;
        m.msg_namelen = 0;
        return sendmsg_conn(fd, v, &m, flags, false);
    }
    return sendmsg_conn(fd, v, msg, flags, false);
}

/* sendfile, splice and sendmmsg into a replaced fd (nginx sends files with sendfile): the first
 * two cannot take MSG_NOSIGNAL, so the reset's error is not left to the kernel's EPIPE (and its
 * SIGPIPE, which kills a program that does not ignore it) but taken first, where this process
 * armed a reset that is still pending on the socket: the call fails with it, without SIGPIPE, as
 * TCP's first call after a RST does; the next call gets the kernel's EPIPE and SIGPIPE, as
 * TCP's.  After the app's shutdown(SHUT_WR) told to sstd (its end is not shut, hook_sockopt.c)
 * they fail as write does.  One SO_ERROR per call while a reset is armed, nothing before.
 * -1 (errno set) when the call must not reach the kernel, else 0. */
static int write_precheck(int fd, int flags)
{
    if (!shim_conns_maybe())
        return 0;
    uintptr_t v = shim_fd_get(fd);
    if (!SHIM_FD_IS_CONN(v) || shim_tls_guard)
        return 0;
    if (shut_state(fd, v) == SHUT_YES)
        return (int)after_epipe(fd, v, flags);
    struct shim_conn *c = (struct shim_conn *)v;
    if (!atomic_load(&c->reset_armed) || !shim_conn_check(fd, v))
        return 0;
    int kerr = 0;
    socklen_t l = sizeof(kerr);
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &kerr, &l) < 0 || kerr == 0) {
        if (atomic_load(&c->err) == EPIPE)
            atomic_store(&c->err_pending, false);   /* the call's EPIPE takes it (after_epipe) */
        return 0;
    }
    errno = atomic_load(&c->err) ? atomic_load(&c->err) : kerr;
    return -1;
}

SHIM_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
    if (write_precheck(out, 0) < 0)
        return -1;
    return shim_real_sendfile(out, in, off, n);
}

SHIM_EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t n)
{
    if (write_precheck(out, 0) < 0)
        return -1;
    return shim_real_sendfile64(out, in, off, n);
}

SHIM_EXPORT ssize_t splice(int in, off64_t *off_in, int out, off64_t *off_out, size_t n, unsigned int fl)
{
    if (write_precheck(out, 0) < 0)
        return -1;
    return shim_real_splice(in, off_in, out, off_out, n, fl);
}

SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    if (write_precheck(fd, flags) < 0)
        return -1;
    return shim_real_sendmmsg(fd, v, n, flags);
}
