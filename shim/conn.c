/* Replaced connections: the swap inside connect(), the honest connect status, and the
 * event-thread transitions up / fail / fallback / done. */
#define _GNU_SOURCE
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "epollrec.h"
#include "evthread.h"
#include "fdtable.h"
#include "helper_client.h"
#include "log.h"
#include "real.h"
#include "shim.h"

/* Options copied from the app's TCP socket at connect() so they survive the swap and reach the
 * transport's socket (TCP_NODELAY is what latency-sensitive programs set before connecting). */
static const struct { int level, name; } copied_opts[] = {
    { IPPROTO_TCP, TCP_NODELAY },     { IPPROTO_TCP, TCP_KEEPIDLE },
    { IPPROTO_TCP, TCP_KEEPINTVL },   { IPPROTO_TCP, TCP_KEEPCNT },
    { IPPROTO_TCP, TCP_USER_TIMEOUT }, { IPPROTO_TCP, TCP_MAXSEG },
    { SOL_SOCKET, SO_KEEPALIVE },     { SOL_SOCKET, SO_PRIORITY },
};

void shim_conn_ref(struct shim_conn *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void shim_conn_unref(struct shim_conn *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

/* Options are written by app threads and read by the event thread when a transport starts. */
static pthread_mutex_t opts_lock = PTHREAD_MUTEX_INITIALIZER;

void shim_conn_opt_set(struct shim_conn *c, int level, int name, int value)
{
    pthread_mutex_lock(&opts_lock);
    int i;
    for (i = 0; i < c->n_opts; i++) {
        if (c->opts[i].level == level && c->opts[i].name == name) {
            c->opts[i].value = value;
            break;
        }
    }
    if (i == c->n_opts && c->n_opts < SHIM_CONN_MAX_OPTS)
        c->opts[c->n_opts++] = (struct shim_opt){ level, name, value };
    pthread_mutex_unlock(&opts_lock);
}

bool shim_conn_opt_get(const struct shim_conn *c, int level, int name, int *value)
{
    bool found = false;
    pthread_mutex_lock(&opts_lock);
    for (int i = 0; i < c->n_opts; i++) {
        if (c->opts[i].level == level && c->opts[i].name == name) {
            *value = c->opts[i].value;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&opts_lock);
    return found;
}

/* The kernel's keepalive defaults (net.ipv4.tcp_keepalive_time, _intvl, _probes; Linux's own
 * if unreadable), read once: what TCP uses for a parameter the app left unset. */
static int ka_defaults[3] = { 7200, 75, 9 };
static pthread_once_t ka_once = PTHREAD_ONCE_INIT;

static void ka_read_defaults(void)
{
    static const char *const files[3] = { "/proc/sys/net/ipv4/tcp_keepalive_time",
                                          "/proc/sys/net/ipv4/tcp_keepalive_intvl",
                                          "/proc/sys/net/ipv4/tcp_keepalive_probes" };
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(files[i], "re");
        int v;
        if (f && fscanf(f, "%d", &v) == 1 && v > 0)
            ka_defaults[i] = v;
        if (f)
            fclose(f);
    }
}

bool shim_opt_is_keepalive(int level, int name)
{
    return (level == SOL_SOCKET && name == SO_KEEPALIVE) ||
           (level == IPPROTO_TCP && (name == TCP_KEEPIDLE || name == TCP_KEEPINTVL || name == TCP_KEEPCNT));
}

bool shim_keepalive_params(const struct shim_conn *c, int p[3])
{
    static const int names[3] = { TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT };
    int on = 0;
    pthread_once(&ka_once, ka_read_defaults);
    for (int i = 0; i < 3; i++)
        if (!shim_conn_opt_get(c, IPPROTO_TCP, names[i], &p[i]) || p[i] <= 0)
            p[i] = ka_defaults[i];
    return shim_conn_opt_get(c, SOL_SOCKET, SO_KEEPALIVE, &on) && on;
}

int shim_conn_opt_copy(const struct shim_conn *c, struct shim_opt *out)
{
    pthread_mutex_lock(&opts_lock);
    int n = c->n_opts;
    memcpy(out, c->opts, (size_t)n * sizeof(out[0]));
    pthread_mutex_unlock(&opts_lock);
    return n;
}

static ino_t fd_inode(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* The app's socketpair end, as it is now on fd (just swapped there). */
static void record_socket(struct shim_conn *c, int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0) {
        c->ino = st.st_ino;
        c->dev = st.st_dev;
    }
}

struct shim_conn *shim_conn_check(int fd, uintptr_t v)
{
    struct shim_conn *c = (struct shim_conn *)v;
    /* A close we never saw (libc's internal close in fclose, a raw syscall) leaves a stale
     * entry; the inode check catches it when the number has been reused. */
    if (fd_inode(fd) != c->ino) {
        shim_fd_set(fd, 0);
        return NULL;
    }
    return c;
}

/* Queues bytes from the app end until it is no longer writable.  A socketpair is writable at
 * once, but a TCP socket is not writable until connected: with this filler in the way, the
 * app end reports POLLOUT exactly when the event thread discards it (connected) or closes the
 * other end (failed), so poll/epoll/select see the truth without any hook.  Unix stream
 * sockets report POLLOUT only while the sender's queued bytes are under a quarter of its
 * SO_SNDBUF, and refuse more once SO_SNDBUF is reached, so "EAGAIN" means "not writable".
 *
 * The send buffer is shrunk to the kernel's minimum first, so the filler is a few KiB rather
 * than a default SO_SNDBUF (≈ 200 KiB, copied in here and out again at the swap: a third of
 * the CPU of a shimmed connect/request/close); *restore gets the value for setsockopt that
 * gives the app end its normal send buffer back when the connection is up (restore_sndbuf). */
static ssize_t fill(int fd, int *restore)
{
    static const char zeros[16384];
    /* Every fresh socketpair end starts with the same buffer (net.core.wmem_default): read it
     * once per process rather than once per connection. */
    static _Atomic int fresh_sndbuf;
    size_t total = 0;
    int sndbuf = atomic_load_explicit(&fresh_sndbuf, memory_order_relaxed), tiny = 1;
    socklen_t l = sizeof(sndbuf);

    if (sndbuf <= 0) {
        if (shim_real_getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l) < 0)
            return -1;
        atomic_store_explicit(&fresh_sndbuf, sndbuf, memory_order_relaxed);
    }
    /* getsockopt reports twice what setsockopt takes (the kernel doubles it for overhead).
     * A huge net.core.wmem_default is capped at 256 KiB, as before this buffer was shrunk. */
    *restore = sndbuf > (1 << 20) ? 256 << 10 : sndbuf / 2;
    /* 1 byte: the kernel clamps it up to its minimum (SOCK_MIN_SNDBUF, ≈ 4.5 KiB). */
    shim_real_setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &tiny, sizeof(tiny));
    for (;;) {
        ssize_t n = shim_real_sendto(fd, zeros, sizeof(zeros), MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return (ssize_t)total;
        return -1;
    }
}

/* The connection is up: the app end gets its send buffer back (fill() shrank it).  The event
 * thread shares the fd table, but the app may have closed or reused the number meanwhile, so
 * the buffer is set on a private duplicate that is still our socket (shim_fd_pin). */
static void restore_sndbuf(struct shim_conn *c)
{
    int v = atomic_load(&c->sndbuf);
    int d = shim_fd_pin(c->app_fd, c->dev, c->ino);
    if (d < 0)
        return;   /* closed (or reused) by the app: nothing will write to it */
    shim_real_setsockopt(d, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    shim_real_close(d);
}

#define TCP_MSS_DEFAULT_VALUE 536   /* the kernel's TCP_MSS_DEFAULT (include/net/tcp.h) */

static void copy_options(struct shim_conn *c, int fd)
{
    for (size_t i = 0; i < sizeof(copied_opts) / sizeof(copied_opts[0]); i++) {
        int v = 0;
        socklen_t l = sizeof(v);
        if (shim_real_getsockopt(fd, copied_opts[i].level, copied_opts[i].name, &v, &l) != 0)
            continue;
        /* An unconnected socket answers TCP_MAXSEG with the kernel's default MSS, 536, when the
         * app set nothing (an explicit 536 looks the same): applied to the TCP fallback's
         * socket it clamped every segment to 524 bytes (3x the packets on a 1500-byte path,
         * 125x on loopback).  Only a value the app chose is carried. */
        if (copied_opts[i].level == IPPROTO_TCP && copied_opts[i].name == TCP_MAXSEG && v == TCP_MSS_DEFAULT_VALUE)
            continue;
        shim_conn_opt_set(c, copied_opts[i].level, copied_opts[i].name, v);
    }
}

/* Timeouts act on the fd the app reads and writes, so they move to the socketpair end. */
/* The TCP socket's timeouts and SO_LINGER go to the app end (getsockopt answers them; the
 * timeouts act there); an abortive SO_LINGER {1, 0} is also recorded for the pump. */
static void copy_timeouts(struct shim_conn *c, int from, int to)
{
    static const int names[] = { SO_RCVTIMEO, SO_SNDTIMEO };
    for (size_t i = 0; i < 2; i++) {
        struct timeval tv;
        socklen_t l = sizeof(tv);
        if (shim_real_getsockopt(from, SOL_SOCKET, names[i], &tv, &l) == 0 && (tv.tv_sec || tv.tv_usec))
            shim_real_setsockopt(to, SOL_SOCKET, names[i], &tv, l);
    }
    struct linger lg;
    socklen_t l = sizeof(lg);
    if (shim_real_getsockopt(from, SOL_SOCKET, SO_LINGER, &lg, &l) == 0 && lg.l_onoff) {
        shim_real_setsockopt(to, SOL_SOCKET, SO_LINGER, &lg, l);
        atomic_store(&c->linger0, lg.l_linger == 0);
    }
}

/* Buffer sizes the app set on its TCP socket before connect() (told apart from the kernel's
 * defaults, read once per process from a fresh TCP socket; a value set equal to the default
 * looks unset and changes nothing).  SO_SNDBUF becomes the app end's send buffer once the
 * connection is up (restore_sndbuf), as one set while connecting does.  SO_RCVBUF goes to the
 * app end (getsockopt answers it) and, as the send buffer of the pump's end, bounds what waits
 * for the app in the socketpair -- a unix stream socket's queue is limited by its sender's
 * buffer, not the receiver's: a program that reads slowly with a small receive buffer gets
 * back-pressure after that much, not after net.core.wmem_default (≈ 200 KiB).  The pump's
 * 64 KiB buffer and the transport's own window still come on top. */
static void copy_buffers(struct shim_conn *c, int from, int app_end, int pump_end)
{
    static _Atomic int def_snd, def_rcv;   /* a fresh TCP socket's, as getsockopt reports */
    if (atomic_load_explicit(&def_rcv, memory_order_relaxed) <= 0) {
        int s = shim_real_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int snd = 0, rcv = 0;
        socklen_t l = sizeof(int);
        if (s < 0)
            return;
        if (shim_real_getsockopt(s, SOL_SOCKET, SO_SNDBUF, &snd, &l) == 0 &&
            (l = sizeof(int), shim_real_getsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcv, &l) == 0)) {
            atomic_store_explicit(&def_snd, snd, memory_order_relaxed);
            atomic_store_explicit(&def_rcv, rcv, memory_order_relaxed);
        }
        shim_real_close(s);
        if (rcv <= 0)
            return;
    }
    int v = 0;
    socklen_t l = sizeof(v);
    /* getsockopt reports twice what setsockopt took: half of it is set again */
    if (shim_real_getsockopt(from, SOL_SOCKET, SO_SNDBUF, &v, &l) == 0 && v > 0 &&
        v != atomic_load_explicit(&def_snd, memory_order_relaxed))
        atomic_store(&c->sndbuf, v / 2);
    l = sizeof(v);
    if (shim_real_getsockopt(from, SOL_SOCKET, SO_RCVBUF, &v, &l) == 0 && v > 0 &&
        v != atomic_load_explicit(&def_rcv, memory_order_relaxed)) {
        int half = v / 2;
        shim_real_setsockopt(app_end, SOL_SOCKET, SO_RCVBUF, &half, sizeof(half));
        shim_real_setsockopt(pump_end, SOL_SOCKET, SO_SNDBUF, &half, sizeof(half));
    }
}

/* Blocking connect: wait for the filler to go (POLLOUT) or the far end to close.  As TCP,
 * SO_SNDTIMEO bounds the wait (then EINPROGRESS) and a signal interrupts it (EINTR); either way
 * the connection goes on in the background. */
static int wait_connected(int fd, struct shim_conn *c, bool opts)
{
    struct timeval tv = { 0, 0 };
    socklen_t tl = sizeof(tv);
    int timeout = -1;
    /* Without opts the app set no SO_SNDTIMEO (the app end has none either). */
    if (opts && shim_real_getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0 && (tv.tv_sec || tv.tv_usec))
        timeout = (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
    while (atomic_load_explicit(&c->state, memory_order_acquire) == SHIM_CONN_CONNECTING) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int n = poll(&p, 1, timeout);
        if (n < 0)
            return -1;   /* EINTR as TCP */
        if (n == 0) {
            errno = EINPROGRESS;
            return -1;
        }
        if (p.revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
    }
    if (atomic_load_explicit(&c->state, memory_order_acquire) == SHIM_CONN_CONNECTED) {
        atomic_store(&c->conn_reported, true);
        return 0;
    }
    atomic_store(&c->err_pending, false);
    atomic_store(&c->unconnected, true);
    errno = atomic_load(&c->err);
    return -1;
}

/* What a carried connection records about itself however it was set up (shim_conn_open or
 * shim_conn_adopt): its peer, its local address family, its transport, and the app's socket
 * options (when opts says the app may have set any), replayed on the transport socket.  c is
 * not shared yet: the lock is uncontended. */
static void conn_init(struct shim_conn *c, int fd, const struct sockaddr *sa, socklen_t len,
                      const struct shim_transport *tr, const char *why, bool opts)
{
    atomic_init(&c->err, 0);
    atomic_init(&c->err_pending, false);
    atomic_init(&c->unconnected, false);
    atomic_init(&c->reset_armed, false);
    atomic_init(&c->helper_err, 0);
    atomic_init(&c->wr_shut, false);
    atomic_init(&c->local_fill, 0);
    atomic_init(&c->pumped_by, 0);
    atomic_init(&c->rsv.on, false);
    atomic_init(&c->rsv.reading, false);
    c->family = sa->sa_family;
    memcpy(&c->peer, sa, len < sizeof(c->peer) ? len : sizeof(c->peer));
    c->peer_len = len;
    /* The source address the app bound its socket to without a port (IP_BIND_ADDRESS_NO_PORT,
     * as curl --interface does: a port would have kept it on kernel TCP), which getsockname
     * keeps reporting (hook_sockopt.c: the route lookup then supplies only the port); the
     * family's wildcard when it bound nothing. */
    socklen_t ll = sizeof(c->local);
    if (shim_real_getsockname(fd, (struct sockaddr *)&c->local, &ll) != 0 || c->local.ss_family != c->family ||
        ll > sizeof(c->local)) {
        memset(&c->local, 0, sizeof(c->local));
        c->local.ss_family = (sa_family_t)c->family;
        ll = c->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    }
    c->local_len = ll;
    c->app_fd = fd;
    c->net_fd = -1;
    c->tr = tr;
    snprintf(c->why, sizeof(c->why), "%s", why);
    /* A socket the app set nothing on holds the kernel's defaults, which is what the hooks
     * answer for an option the connection has no copy of (hook_sockopt.c kernel_default), and
     * what the transport's fresh socket has: a dozen getsockopt calls per connection saved. */
    if (opts)
        copy_options(c, fd);
}

int shim_conn_open(int fd, const struct sockaddr *sa, socklen_t len, const struct shim_transport *tr,
                   const char *why)
{
    int sv[2] = { -1, -1 };
    int fl, fdfl, saved;
    struct shim_conn *c = calloc(1, sizeof(*c));

    if (!c) {
        errno = ENOBUFS;
        return -1;
    }
    fl = shim_real_fcntl(fd, F_GETFL, 0);
    fdfl = shim_real_fcntl(fd, F_GETFD, 0);
    if (fl < 0 || fdfl < 0)
        goto fail;
    /* A non-blocking app (most event loops) gets both ends non-blocking from the start; the
     * pump's end is non-blocking either way. */
    bool nonblock = (fl & O_NONBLOCK) != 0;
    if (shim_fd_own_socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0, sv) < 0)
        goto fail;
    int sndbuf = 0;
    ssize_t filler = fill(sv[0], &sndbuf);
    if (filler < 0)
        goto fail;

    atomic_init(&c->refs, 2);   /* the fd table's and the event thread's */
    atomic_init(&c->state, SHIM_CONN_CONNECTING);
    atomic_init(&c->conn_reported, false);
    bool opts = shim_fd_opts_take(fd);
    conn_init(c, fd, sa, len, tr, why, opts);
    c->filler = (size_t)filler;
    atomic_init(&c->sndbuf, sndbuf);
    if (opts) {
        copy_timeouts(c, fd, sv[0]);
        copy_buffers(c, fd, sv[0], sv[1]);
    }

    if (!nonblock)
        shim_real_fcntl(sv[1], F_SETFL, O_NONBLOCK);
    c->pump_fd = shim_fd_hide(sv[1], SHIM_FD_ENGINE);
    sv[1] = -1;

    /* The swap: same fd number, now our socketpair end, decided before connect() returns so
     * the app has not yet registered it with epoll under its old identity. */
    if (shim_real_dup3(sv[0], fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
        goto fail_hidden;
    shim_real_close(sv[0]);
    sv[0] = -1;
    record_socket(c, fd);
    shim_epollrec_replay(fd);
    shim_fd_set(fd, (uintptr_t)c);

    SHIM_INFO("fd %d: carrying connection over %s (%s)", fd, tr->name, why);
    int err = shim_ev_submit(c);
    if (err != 0) {
        /* No event thread: nothing will ever complete this connection. */
        atomic_store(&c->err, err);
        atomic_store(&c->state, SHIM_CONN_FAILED);
        shim_fd_close_own(c->pump_fd);
        shim_conn_unref(c);
        errno = err;
        return -1;
    }
    if (fl & O_NONBLOCK) {
        errno = EINPROGRESS;
        return -1;
    }
    return wait_connected(fd, c, opts);

fail_hidden:
    saved = errno;
    shim_fd_close_own(c->pump_fd);
    errno = saved;
fail:
    saved = errno;
    if (sv[0] >= 0)
        shim_real_close(sv[0]);
    if (sv[1] >= 0)
        shim_real_close(sv[1]);
    free(c);
    errno = saved;
    return -1;
}

int shim_conn_adopt(int fd, const struct sockaddr *sa, socklen_t len, int app_end,
                    const struct shim_transport *tr, const char *why, struct shim_conn **out)
{
    struct shim_conn *c = calloc(1, sizeof(*c));
    int fl = shim_real_fcntl(fd, F_GETFL, 0);
    int fdfl = shim_real_fcntl(fd, F_GETFD, 0);

    if (!c || fl < 0 || fdfl < 0) {
        free(c);
        errno = ENOBUFS;
        return -1;
    }
    atomic_init(&c->refs, 1);   /* the fd table's only: no event thread is involved */
    c->external = true;
    atomic_init(&c->state, SHIM_CONN_CONNECTED);
    /* A non-blocking connect answers EINPROGRESS, as TCP: the next connect() says 0. */
    atomic_init(&c->conn_reported, !(fl & O_NONBLOCK));
    bool opts = shim_fd_opts_take(fd);
    conn_init(c, fd, sa, len, tr, why, opts);
    c->pump_fd = -1;
    if (opts)
        copy_timeouts(c, fd, app_end);
    if (fl & O_NONBLOCK)
        shim_real_fcntl(app_end, F_SETFL, O_NONBLOCK);
    if (shim_real_dup3(app_end, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
        int saved = errno;
        free(c);
        errno = saved;
        return -1;
    }
    record_socket(c, fd);
    shim_epollrec_replay(fd);
    shim_fd_set(fd, (uintptr_t)c);
    SHIM_INFO("fd %d: carrying connection over %s (%s)", fd, tr->name, why);
    if (out) {
        shim_conn_ref(c);
        *out = c;
    }
    if (fl & O_NONBLOCK) {
        errno = EINPROGRESS;
        return -1;
    }
    return 0;
}

int shim_conn_reconnect(int fd, struct shim_conn *c)
{
    int st = atomic_load_explicit(&c->state, memory_order_acquire);
    if (st == SHIM_CONN_CONNECTING) {
        errno = EALREADY;
        return -1;
    }
    if (st == SHIM_CONN_CONNECTED) {
        /* As TCP: the first connect() after a non-blocking connect completed returns 0. */
        if (!atomic_exchange(&c->conn_reported, true))
            return 0;
        errno = EISCONN;
        return -1;
    }
    /* As Linux: a connect() after the failure reports it (the error itself if SO_ERROR has
     * not taken it, else ECONNABORTED) and leaves the socket unconnected; the next retries. */
    if (!atomic_exchange(&c->unconnected, true)) {
        errno = atomic_exchange(&c->err_pending, false) ? atomic_load(&c->err) : ECONNABORTED;
        return -1;
    }
    /* A failed TCP socket may connect again: give the fd back a fresh TCP socket with the same
     * flags, and let connect() proceed as for a new socket. */
    int fl = shim_real_fcntl(fd, F_GETFL, 0);
    int fdfl = shim_real_fcntl(fd, F_GETFD, 0);
    int s = shim_fd_own_socket(c->family, SOCK_STREAM | ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0), 0);
    if (s < 0)
        return -1;
    if (shim_real_dup3(s, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
        shim_real_close(s);
        return -1;
    }
    shim_real_close(s);
    shim_fd_set(fd, 0);
    return 1;
}

void shim_conn_up(struct shim_conn *c, const struct sockaddr *local, socklen_t len)
{
    char buf[65536];
    if (local && len <= sizeof(c->local)) {
        memcpy(&c->local, local, len);
        c->local_len = len;
    }
    atomic_store_explicit(&c->state, SHIM_CONN_CONNECTED, memory_order_release);
    restore_sndbuf(c);
    /* Release the filler: the app end turns writable now, and not before. */
    while (c->filler > 0) {
        ssize_t n = read(c->pump_fd, buf, c->filler < sizeof(buf) ? c->filler : sizeof(buf));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;   /* the app already closed its end: the pump will see it */
        }
        c->filler -= (size_t)n;
    }
    SHIM_DEBUG("connection up over %s", c->tr->name);
    if (c->sst_refused && c->tr == &shim_transport_tcp && shim_cfg.refusal_ttl > 0)
        shim_conn_note_tcp_only(c);
}

/* The port refused over SST and kernel TCP reached it: later connections to it skip SST (one
 * round trip each) for SST_REFUSAL_CACHE seconds, in this process and, through sstd, in others.
 * Only after TCP connected: a port closed for both must keep asking SST, or a wait-for-port
 * loop would miss a service that opens behind the peer's sstd only (docs/shim.md §6d). */
void shim_conn_note_tcp_only(struct shim_conn *c)
{
    uint64_t ttl = (uint64_t)shim_cfg.refusal_ttl * 1000000000ull;
    shim_tcponly_put((const struct sockaddr *)&c->peer, c->peer_len, ttl);
    if (c->refused_via_helper)
        shim_helper_note_tcp_only((const struct sockaddr *)&c->peer, shim_cfg.refusal_ttl);
    SHIM_INFO("port refused over SST and served by TCP: kernel TCP for %u s", shim_cfg.refusal_ttl);
}

void shim_conn_fail(struct shim_conn *c, int err)
{
    atomic_store(&c->err, err);
    atomic_store(&c->err_pending, true);
    atomic_store_explicit(&c->state, SHIM_CONN_FAILED, memory_order_release);
    /* Closing our end frees the filler: the app end polls POLLOUT|POLLHUP, SO_ERROR says why. */
    shim_fd_close_own(c->pump_fd);
    c->pump_fd = -1;
    SHIM_INFO("connection over %s failed: %s", c->tr->name, strerror(err));
    shim_conn_unref(c);
}

void shim_conn_fallback(struct shim_conn *c, const char *why, bool peer_lacks_sst)
{
    if (peer_lacks_sst)
        shim_nosst_put((const struct sockaddr *)&c->peer, c->peer_len);
    if (shim_cfg.mode == SHIM_MODE_STRICT) {
        SHIM_WARN("SST_MODE=strict and SST unusable (%s): refusing the connection", why);
        shim_conn_fail(c, ECONNREFUSED);
        return;
    }
    SHIM_INFO("falling back to TCP: %s", why);
    snprintf(c->why, sizeof(c->why), "fallback: %s", why);
    c->tr = &shim_transport_tcp;
    c->tr_state = NULL;
    int err = c->tr->start(c, shim_ev_base());
    if (err != 0)
        shim_conn_fail(c, err);
}

void shim_conn_port_refused(struct shim_conn *c, const char *why)
{
    if (shim_cfg.mode == SHIM_MODE_STRICT) {
        /* What TCP answers a closed port with: the program reports it (curl's "Connection
         * refused", nc's exit status), so the shim only says it at info level -- a warning on
         * stderr for every refused connection was noise kernel TCP does not make. */
        SHIM_INFO("SST_MODE=strict: %s: connection refused", why);
        shim_conn_fail(c, ECONNREFUSED);
        return;
    }
    shim_conn_fallback(c, why, false);
}

void shim_conn_reset_app(void *arg, int pump_end, int err)
{
    struct shim_conn *c = arg;
    /* Before the byte: the app's SO_ERROR may ask as soon as its read fails.  A relay to sstd
     * reads only ECONNRESET; sstd said what it was (helper_hold.c). */
    int helper = atomic_load(&c->helper_err);
    atomic_store(&c->err, helper ? helper : err);
    if ((helper ? helper : err) == EPIPE) {
        /* After the peer's FIN: EPIPE and EOF, as TCP.  SO_ERROR says it once from now on
         * (before the app can see the hang-up), and the pump's end does not say it again. */
        atomic_store(&c->err_pending, true);
        atomic_store(&c->reset_armed, true);
        shim_reset_after_fin(pump_end);
        SHIM_DEBUG("connection over %s reset after the peer's end: the app's writes fail with EPIPE", c->tr->name);
        return;
    }
    if (shim_reset_arm(c->app_fd, c->dev, c->ino, pump_end)) {
        atomic_store(&c->reset_armed, true);
        SHIM_DEBUG("connection over %s reset (%s): the app reads ECONNRESET", c->tr->name, strerror(err));
    }
}

void shim_conn_done(struct shim_conn *c, int err)
{
    /* A reset the kernel reports (shim_conn_reset_app) is SO_ERROR's once, not twice. */
    if (err != 0 && !atomic_load(&c->reset_armed)) {
        atomic_store(&c->err, err);
        atomic_store(&c->err_pending, true);   /* e.g. ECONNRESET, for SO_ERROR */
    }
    c->pump_fd = -1;
    SHIM_DEBUG("connection over %s ended (%s)", c->tr->name, err ? strerror(err) : "orderly");
    shim_conn_unref(c);
}
