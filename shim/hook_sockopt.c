/* Hooks getsockopt/setsockopt, getpeername/getsockname and shutdown on replaced connections so
 * the app's fd still answers as a TCP socket (SO_DOMAIN, SO_TYPE, SO_PROTOCOL, SO_ERROR, TCP
 * options) even though it is now a socketpair end. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "helper_client.h"
#include "evthread.h"
#include "real.h"
#include "route.h"
#include "server.h"
#include "server_opts.h"
#include "shim.h"
#include "tcpinfo.h"

static int put_int(void *val, socklen_t *len, int v)
{
    if (!val || !len || *len < (socklen_t)sizeof(int)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(val, &v, sizeof(v));
    *len = sizeof(int);
    return 0;
}

static int put_addr(struct sockaddr *sa, socklen_t *len, const struct sockaddr_storage *a, socklen_t alen)
{
    if (!sa || !len) {
        errno = EFAULT;
        return -1;
    }
    /* As the kernel: copy what fits, report the full length. */
    memcpy(sa, a, *len < alen ? *len : alen);
    *len = alen;
    return 0;
}

static int sol_socket_get(int fd, struct shim_conn *c, int name, void *val, socklen_t *len)
{
    int v;
    switch (name) {
    case SO_ERROR:
        /* Read-and-clear, as TCP: the failure once, then 0. */
        if (atomic_exchange(&c->err_pending, false))
            return put_int(val, len, atomic_load(&c->err));
        if (atomic_load(&c->state) == SHIM_CONN_CONNECTED) {
            /* A reset (docs/shim.md §2) is the kernel's ECONNRESET on the socketpair end until
             * a read or SO_ERROR takes it: ask the kernel, so that a read that already reported
             * it leaves 0 here, as TCP.  A pending one is answered with the transport's own
             * error when this process armed it (for a hand-off, the errno sstd's RESET reported). */
            int kerr = 0;
            socklen_t l = sizeof(kerr);
            if (shim_real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &kerr, &l) < 0)
                return -1;
            return put_int(val, len, kerr && atomic_load(&c->reset_armed) ? atomic_load(&c->err) : kerr);
        }
        return put_int(val, len, 0);
    case SO_DOMAIN:
        return put_int(val, len, c->family);
    case SO_TYPE:
        return put_int(val, len, SOCK_STREAM);
    case SO_PROTOCOL:
        return put_int(val, len, IPPROTO_TCP);
    case SO_ACCEPTCONN:
        return put_int(val, len, 0);
    case SO_KEEPALIVE:
    case SO_PRIORITY:
        return put_int(val, len, shim_conn_opt_get(c, SOL_SOCKET, name, &v) ? v : 0);
    case SO_SNDBUF:
        /* While connecting the app end's buffer is shrunk to hold the filler: answer the size
         * it gets when the connection is up (doubled, as the kernel reports it). */
        if (atomic_load(&c->state) == SHIM_CONN_CONNECTING)
            return put_int(val, len, 2 * atomic_load(&c->sndbuf));
        return shim_real_getsockopt(fd, SOL_SOCKET, name, val, len);
    default:
        return shim_real_getsockopt(fd, SOL_SOCKET, name, val, len);
    }
}

/* Every fd but a replaced connection's: one table load (connection entries exist only while
 * the shim is active), then libc as a tail call. */
static inline bool is_replaced(int fd)
{
    return SHIM_FD_IS_CONN(shim_fd_get(fd)) && !shim_tls_guard;
}

/* A TCP/IP option the app never set on this connection: what kernel TCP answers for it, asked
 * of a fresh TCP socket of the family (the defaults: IP_TTL 64, TCP_SYNCNT 6, TCP_QUICKACK 1,
 * TCP_CONGESTION's name, TCP_MAXSEG's 536 before a route is known) -- and the path MTU
 * (IP_MTU, IPV6_MTU) of a UDP socket connected to the peer, as a connected TCP socket knows
 * it.  Until 2026-11-22 every such option answered the int 0 (TTL 0, an empty congestion
 * name).  A socket and a close per call, only for options nobody set: rare calls. */
static int kernel_default(const struct shim_conn *c, int level, int name, void *val, socklen_t *len)
{
    bool mtu = (level == IPPROTO_IP && name == IP_MTU) || (level == IPPROTO_IPV6 && name == IPV6_MTU);
    int s = shim_real_socket(c->family, (mtu ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (s < 0)
        return put_int(val, len, 0);   /* no descriptor to ask with: the old answer */
    int rc = -1;
    if (!mtu || shim_real_connect(s, (const struct sockaddr *)&c->peer, c->peer_len) == 0)
        rc = shim_real_getsockopt(s, level, name, val, len);
    int saved = errno;
    shim_real_close(s);
    errno = saved;
    return rc;
}

/* The hooks' work on a replaced fd lives in SHIM_SLOW functions, so that the pass-through for
 * every other fd is a table load and a tail call, without a stack frame. */
static SHIM_SLOW int conn_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    int v;
    struct shim_conn *c = shim_conn_lookup(fd);
    if (!c)
        return shim_real_getsockopt(fd, level, name, val, len);
    if (level == SOL_SOCKET)
        return sol_socket_get(fd, c, name, val, len);
    if (level == IPPROTO_TCP && name == TCP_INFO)
        return shim_tcpinfo_get(c, val, len);   /* the carrying stream's and channel's numbers */
    if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
        if (shim_conn_opt_get(c, level, name, &v))
            return put_int(val, len, v);
        return kernel_default(c, level, name, val, len);
    }
    return shim_real_getsockopt(fd, level, name, val, len);
}

/* TCP_INFO on a socket the app accepted from an SST stream (SST_LISTEN): the stream's and
 * channel's numbers, not the loopback bridge's. */
static SHIM_SLOW int accepted_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    bool answered;
    int rc = shim_tcpinfo_get_accepted(fd, val, len, &answered);
    return answered ? rc : shim_real_getsockopt(fd, level, name, val, len);
}

SHIM_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    if (!is_replaced(fd)) {
        if (__builtin_expect(name == TCP_INFO && level == IPPROTO_TCP, 0) && shim_server_engaged())
            return accepted_getsockopt(fd, level, name, val, len);
        return shim_real_getsockopt(fd, level, name, val, len);
    }
    return conn_getsockopt(fd, level, name, val, len);
}

/* Handed to sstd: the options its stream acts on go there (docs/helper.md "MARK"):
 * TCP_USER_TIMEOUT, and keepalive as the whole set (SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT). */
static void tell_helper(struct shim_conn *c, int level, int name, int v)
{
    char what[48];
    int ka[3];
    if (level == IPPROTO_TCP && name == TCP_USER_TIMEOUT && v >= 0) {
        snprintf(what, sizeof(what), "UTIMEOUT=%d", v);
    } else if (shim_opt_is_keepalive(level, name)) {
        if (!shim_keepalive_params(c, ka))
            ka[0] = ka[1] = ka[2] = 0;   /* off */
        snprintf(what, sizeof(what), "KEEPALIVE=%d,%d,%d", ka[0], ka[1], ka[2]);
    } else {
        return;
    }
    int saved = errno;
    shim_helper_mark(c->helper_dev, c->helper_ino, what);
    errno = saved;
}

static SHIM_SLOW int conn_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int v;
    struct shim_conn *c = shim_conn_lookup(fd);
    if (!c)
        return shim_real_setsockopt(fd, level, name, val, len);
    if (val && len == sizeof(int)) {
        memcpy(&v, val, sizeof(v));
        if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6 ||
            (level == SOL_SOCKET && (name == SO_KEEPALIVE || name == SO_PRIORITY))) {
            /* Remembered (answered by getsockopt, read by a transport at start) and forwarded
             * to the live transport. */
            shim_conn_opt_set(c, level, name, v);
            shim_ev_set_option(c, level, name, v);
            if (c->helper_ino)
                tell_helper(c, level, name, v);
            return 0;
        }
    }
    if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6)
        return 0;   /* struct-valued TCP/IP options (TCP_CONGESTION, IP_OPTIONS...): accepted */
    /* A bigger send buffer on the app end while connecting would release the filler early and
     * report POLLOUT before the connection exists: remembered, applied when it is up. */
    if (level == SOL_SOCKET && (name == SO_SNDBUF || name == SO_SNDBUFFORCE) &&
        atomic_load(&c->state) == SHIM_CONN_CONNECTING) {
        if (val && len == sizeof(int)) {
            memcpy(&v, val, sizeof(v));
            atomic_store(&c->sndbuf, v);
        }
        return 0;
    }
    /* SO_LINGER {1, 0} asks for an abortive close (TCP sends RST and drops what is unsent): a
     * unix socket has none, so the pump resets the stream when the app end closes.  The app
     * end takes the value too, for getsockopt. */
    if (level == SOL_SOCKET && name == SO_LINGER && val && len >= (socklen_t)sizeof(struct linger)) {
        struct linger lg;
        memcpy(&lg, val, sizeof(lg));
        int rc = shim_real_setsockopt(fd, level, name, val, len);
        bool abort = lg.l_onoff && lg.l_linger == 0;
        if (rc == 0 && atomic_exchange(&c->linger0, abort) != abort && c->helper_ino) {
            /* Handed to sstd: it sees the app's close, so it is the one to reset the stream. */
            int saved = errno;
            shim_helper_mark(c->helper_dev, c->helper_ino, abort ? "LINGER0" : "LINGER");
            errno = saved;
        }
        return rc;
    }
    /* Buffer sizes and timeouts act on the fd the app uses: the socketpair end. */
    return shim_real_setsockopt(fd, level, name, val, len);
}

/* On a socket the app accepted from an SST stream (SST_LISTEN): the kernel socket takes the
 * option (getsockopt reads it back, the kernel checks it), and a timeout -- TCP_USER_TIMEOUT,
 * keepalive -- also goes to the stream (server_opts.h): the loopback socket's own never sees
 * the SST peer go silent. */
static SHIM_SLOW int accepted_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    int rc = shim_real_setsockopt(fd, level, name, val, len);
    if (rc == 0)
        shim_server_sockopt(fd, level, name);
    return rc;
}

SHIM_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    /* An fd without an entry: the load and a tail call.  A TCP socket not yet connected (the
     * shim's own threads never tag theirs): marked, so that a carried connect reads its options
     * back (shim_fd_optset), then libc. */
    uintptr_t v = shim_fd_get(fd);
    if (SHIM_FD_IS_TCPNEW(v))
        shim_fd_opts_mark(fd);
    if (!SHIM_FD_IS_CONN(v) || shim_tls_guard) {
        if (__builtin_expect(shim_server_engaged(), 0) && shim_sopts_is_timeout(level, name))
            return accepted_setsockopt(fd, level, name, val, len);
        return shim_real_setsockopt(fd, level, name, val, len);
    }
    return conn_setsockopt(fd, level, name, val, len);
}

SHIM_EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    struct shim_conn *c;
    int ret;
    if (shim_server_engaged() && shim_server_getpeername(fd, sa, len, &ret))
        return ret;   /* accepted from an SST stream: the SST peer (server.h) */
    if (!is_replaced(fd) || !(c = shim_conn_lookup(fd)))
        return shim_real_getpeername(fd, sa, len);
    if (atomic_load_explicit(&c->state, memory_order_acquire) != SHIM_CONN_CONNECTED) {
        errno = ENOTCONN;
        return -1;
    }
    return put_addr(sa, len, &c->peer, c->peer_len);
}

static unsigned local_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

static bool local_wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* A connection carried over SST (or handed to sstd) has no kernel socket with a local address,
 * and the wildcard with port 0 reads as "not bound" to the programs that print or pass on
 * their local end: Java's getLocalAddress/getLocalPort, node's localAddress/localPort, perl's
 * sockhost, FTP's PORT, SIP's Via.  So once connected, the first getsockname asks the routing
 * table for the source address toward the peer -- what kernel TCP would have bound -- with the
 * ephemeral port the kernel gave that lookup (no TCP port exists to report; route.h), and the
 * connection keeps that answer.  A source address the app bound without a port
 * (IP_BIND_ADDRESS_NO_PORT) stays, with that port; a port the kernel gave the app's bind() to
 * port 0 (hook_bind.c: Tcl binds the wildcard) stays, with the route's address when the bound
 * one is the wildcard -- what the app may have read before connect.  The tcp transport's real
 * local address stays as it is. */
static void local_fill(struct shim_conn *c)
{
    int st = 0;
    if (atomic_load_explicit(&c->local_fill, memory_order_acquire) == 2)
        return;
    if (!atomic_compare_exchange_strong(&c->local_fill, &st, 1)) {
        while (atomic_load_explicit(&c->local_fill, memory_order_acquire) != 2)
            sched_yield();   /* another thread's lookup: a few system calls */
        return;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    int saved = errno;
    unsigned bound = local_port(&c->local);
    if ((bound == 0 || local_wildcard(&c->local)) &&
        shim_route_local((const struct sockaddr *)&c->peer, c->peer_len, 0, &ss, &sl) &&
        sl <= sizeof(c->local)) {
        if (local_wildcard(&c->local)) {
            c->local = ss;
            c->local_len = sl;
            if (bound != 0 && c->local.ss_family == AF_INET)   /* the kernel's port of the app's bind */
                ((struct sockaddr_in *)&c->local)->sin_port = htons((uint16_t)bound);
            else if (bound != 0)
                ((struct sockaddr_in6 *)&c->local)->sin6_port = htons((uint16_t)bound);
        } else if (c->local.ss_family == AF_INET) {   /* bound by the app: its address stays */
            ((struct sockaddr_in *)&c->local)->sin_port = htons((uint16_t)local_port(&ss));
        } else {
            ((struct sockaddr_in6 *)&c->local)->sin6_port = htons((uint16_t)local_port(&ss));
        }
    }
    errno = saved;
    atomic_store_explicit(&c->local_fill, 2, memory_order_release);
}

SHIM_EXPORT int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    struct shim_conn *c;
    int ret;
    if (shim_server_engaged() && shim_server_getsockname(fd, sa, len, &ret))
        return ret;   /* accepted from an SST stream over the loopback bridge (server.h) */
    if (!is_replaced(fd) || !(c = shim_conn_lookup(fd)))
        return shim_real_getsockname(fd, sa, len);
    /* The event thread writes local before publishing CONNECTED (release); this load pairs. */
    if (atomic_load_explicit(&c->state, memory_order_acquire) == SHIM_CONN_CONNECTED)
        local_fill(c);
    return put_addr(sa, len, &c->local, c->local_len);
}

SHIM_EXPORT int shutdown(int fd, int how)
{
    struct shim_conn *c;
    if (!is_replaced(fd) || !(c = shim_conn_lookup(fd)))
        return shim_real_shutdown(fd, how);
    if (atomic_load(&c->state) != SHIM_CONN_CONNECTED) {
        errno = ENOTCONN;
        return -1;
    }
    /* The pump maps it: our end reads EOF (SHUT_WR) and shuts the transport's sending side.
     * Once the app's end is shut for writing, nothing can be written from it any more, and
     * that write is what makes a later reset reach the app (shim_reset_arm): so first one byte
     * goes behind the app's data, which the pump leaves queued (shim_fd_reserve_readable) --
     * only where a pump of this process reads the app's end (sstd would take it for data). */
    /* Not in a forked child that inherited the fd: the parent's pump, which reads it, would
     * not see the flag (another copy of our memory) and send the byte to the peer. */
    /* sstd pumps the app's end itself (a hand-off inside connect() or direct): the end stays
     * open for writing, so that a later reset can still be armed from it, and sstd is told
     * instead: it ends the stream's write side once it has read what the socket holds, and the
     * write hooks fail the app's writes as the kernel would after the shutdown (EPIPE).
     * Before, such a reset read as EOF.  Any process sharing the socket may do it (sstd
     * reads it, not a pump of ours). */
    if ((how == SHUT_WR || how == SHUT_RDWR) && c->helper_ino && atomic_load(&c->pumped_by) == 0) {
        if (atomic_load(&c->wr_shut))
            return how == SHUT_RDWR ? shim_real_shutdown(fd, SHUT_RD) : 0;
        if (shim_helper_mark(c->helper_dev, c->helper_ino, "SHUTWR")) {
            atomic_store(&c->wr_shut, true);
            return how == SHUT_RDWR ? shim_real_shutdown(fd, SHUT_RD) : 0;
        }
    }
    if ((how == SHUT_WR || how == SHUT_RDWR) && atomic_load(&c->pumped_by) == (int)getpid() &&
        !atomic_exchange(&c->rsv.on, true)) {
        int saved = errno;
        while (atomic_load(&c->rsv.reading))
            sched_yield();   /* a recv of the pump that looked before `on`: a few us */
        if (shim_real_sendto(fd, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0) != 1)
            atomic_store(&c->rsv.on, false);   /* full or already shut: a plain EOF */
        errno = saved;
    }
    return shim_real_shutdown(fd, how);
}
