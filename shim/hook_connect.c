/* Hooks connect() and sendto(MSG_FASTOPEN): the only places a connection is routed.  A plain
 * sendto() on a replaced fd is a write (hook_write.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "fdtable.h"
#include "helper_client.h"
#include "log.h"
#include "real.h"
#include "shim.h"

/* Kernel TCP on the app's own socket; the socket no longer needs its epoll records. */
static int plain(int fd, const struct sockaddr *sa, socklen_t len)
{
    uintptr_t v = shim_fd_get(fd);
    if (SHIM_FD_IS_TCPNEW(v))
        shim_fd_untag(fd, v);
    return shim_real_connect(fd, sa, len);
}

/* True for failures of the shim's own resources: descriptors (a carried connection holds one
 * more in this process, the pump's end of the socketpair), kernel or heap memory. */
static bool resource_error(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Carries the connection over tr; where the shim itself runs out of descriptors or memory before
 * the app's socket was touched, auto mode connects the socket with kernel TCP instead: a program
 * near its RLIMIT_NOFILE must not see connect() fail where TCP would succeed.  Strict mode (SST
 * or nothing) reports the error. */
static int carry(int fd, const struct sockaddr *sa, socklen_t len, const struct shim_transport *tr,
                 const char *why)
{
    int r = shim_conn_open(fd, sa, len, tr, why);
    if (r == 0 || !resource_error(errno) || shim_cfg.mode == SHIM_MODE_STRICT)
        return r;
    int dom = 0;
    socklen_t l = sizeof(dom);
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0 || dom != sa->sa_family)
        return r;   /* already swapped for the socketpair end: the failure is the connection's */
    /* Once on stderr (the default level), not once per connect of a program at its limit. */
    static atomic_bool warned;
    shim_log(atomic_exchange(&warned, true) ? SHIM_LOG_INFO : SHIM_LOG_WARN,
             "fd %d: carrying it failed (%s): kernel TCP instead", fd, strerror(errno));
    return plain(fd, sa, len);
}

/* Decides how a connect() to a selected destination is carried.  Only plain TCP sockets whose
 * family matches the address qualify; a socket the app bound to a port it named keeps kernel
 * TCP in auto mode (that source port belongs to the app's socket and could not be
 * reproduced); a port the kernel picked at a bind() to port 0 (hook_bind.c) asks nothing of
 * the transport. */
static int route(int fd, const struct sockaddr *sa, socklen_t len)
{
    int v = 0;
    socklen_t l = sizeof(v);
    char why[160];

    if (fd >= shim_fdtab_size)
        return plain(fd, sa, len);
    /* SO_TYPE too: a raw socket made with IPPROTO_TCP answers SO_PROTOCOL 6.  getsockname's
     * family is the socket's domain (no SO_DOMAIN call). */
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0 || v != SOCK_STREAM)
        return plain(fd, sa, len);
    l = sizeof(v);
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) < 0 || v != IPPROTO_TCP)
        return plain(fd, sa, len);
    struct sockaddr_storage self;
    socklen_t sl = sizeof(self);
    if (shim_real_getsockname(fd, (struct sockaddr *)&self, &sl) < 0 || self.ss_family != sa->sa_family)
        return plain(fd, sa, len);
    if (((self.ss_family == AF_INET && ((struct sockaddr_in *)&self)->sin_port != 0) ||
         (self.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&self)->sin6_port != 0)) &&
        !shim_fd_bound_anyport(fd)) {
        /* Strict mode promises SST or a refusal, never kernel TCP (with TCP blocked, `curl
         * --local-port` and iperf3's `--cport` data connections hung): there the port stays
         * the socket's name (getsockname) while SST carries the connection -- no SST peer ever
         * sees a TCP source port (a gateway's connection to its service comes from loopback). */
        if (shim_cfg.mode != SHIM_MODE_STRICT) {
            SHIM_DEBUG("fd %d: bound to a local port, kept on kernel TCP", fd);
            return plain(fd, sa, len);
        }
        SHIM_INFO("fd %d: bound to a local port: carried over SST all the same (SST_MODE=strict)", fd);
    }
    /* Known not to speak SST: plain kernel TCP on the app's own socket, zero overhead; in
     * strict mode, refused at once. */
    if (shim_nosst_has(sa, len)) {
        if (shim_cfg.mode == SHIM_MODE_STRICT) {
            SHIM_WARN("fd %d: SST_MODE=strict and the destination was just seen without SST: "
                      "connect refused (ECONNREFUSED)", fd);
            errno = ECONNREFUSED;
            return -1;
        }
        SHIM_DEBUG("fd %d: destination cached as without SST, plain TCP", fd);
        return plain(fd, sa, len);
    }
    if (shim_transport_sst.usable(sa, len, why, sizeof(why))) {
        int r = shim_helper_connect_now(fd, sa, len);
        if (r == SHIM_HELPER_TCP)
            return plain(fd, sa, len);
        if (r != SHIM_HELPER_LATER)
            return r;
        return carry(fd, sa, len, &shim_transport_sst, "SST_PEERS match");
    }
    if (shim_cfg.mode == SHIM_MODE_STRICT) {
        SHIM_WARN("fd %d: SST_MODE=strict and %s: connect refused (ECONNREFUSED)", fd, why);
        errno = ECONNREFUSED;
        return -1;
    }
    return carry(fd, sa, len, &shim_transport_tcp, why);
}

/* The general case: a replaced fd (connect again), a selected destination, or an address
 * the inline IPv4 match does not cover (IPv6, "*" or names in SST_PEERS). */
static __attribute__((noinline)) int connect_general(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!shim_engaged() || !sa)
        return shim_real_connect(fd, sa, len);
    struct shim_conn *c = shim_conn_lookup(fd);
    if (c) {
        int r = shim_conn_reconnect(fd, c);
        if (r <= 0)
            return r;
    }
    shim_peers_resolve();
    if (!shim_config_match(&shim_cfg, sa, len))
        return plain(fd, sa, len);
    return route(fd, sa, len);
}

SHIM_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    /* An uncarried IPv4 connect: one table load, the bits every SST_PEERS entry fixes compared
     * with the address (most destinations differ there), the TCPNEW tag dropped with one
     * compare-and-swap, and libc as a tail call -- every other case is a tail call too, so
     * this path needs no stack frame.  An address that passes that compare goes to
     * connect_general, which walks the entries (no loop here: it would cost this path saved
     * registers).  An inert shim (v4_exact false) and the shim's own threads (shim_tls_guard:
     * their sockets are never tagged, and a destination that matches goes to connect_general,
     * which checks) need no test here. */
    uintptr_t v = shim_fd_get(fd);
    if (SHIM_FD_IS_CONN(v) || !shim_config_v4_fast(&shim_cfg, sa, len) ||
        shim_config_v4_maybe(&shim_cfg, (const struct sockaddr_in *)sa))
        return connect_general(fd, sa, len);
    uintptr_t tag = SHIM_FD_TCPNEW;
    if (v == 0 || (v == SHIM_FD_TCPNEW &&
                   atomic_compare_exchange_strong_explicit(&shim_fdtab[fd], &tag, 0,
                                                           memory_order_acq_rel, memory_order_relaxed)))
        return shim_real_connect(fd, sa, len);
    return plain(fd, sa, len);
}

/* TCP Fast Open connects implicitly.  For a selected destination it becomes our connect() then
 * a send; a non-blocking socket gets EINPROGRESS with nothing sent, which is also what Linux
 * answers when it has no TFO cookie, so programs already retry the data. */
SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
                           socklen_t len)
{
    if (flags & MSG_FASTOPEN && sa && shim_engaged())
        shim_peers_resolve();
    if (!(flags & MSG_FASTOPEN) || !sa || !shim_engaged() || !shim_config_match(&shim_cfg, sa, len)) {
        uintptr_t v = shim_fd_get(fd);
        /* With an address, only an entry that still names fd's socket: a stale one (a close
         * the shim never saw; libuv closes with a raw syscall) on a number now held by a UDP
         * socket would lose the datagram's address. */
        if (SHIM_FD_IS_CONN(v) && (!sa || shim_conn_check(fd, v)))
            return shim_write_conn(fd, v, buf, n, flags & ~MSG_FASTOPEN, false);   /* hook_write.c */
        return shim_real_sendto(fd, buf, n, flags, sa, len);
    }
    if (connect(fd, sa, len) < 0)
        return -1;
    return shim_real_sendto(fd, buf, n, flags & ~MSG_FASTOPEN, NULL, 0);
}
