/* The UDP endpoint: batched recvmmsg with GRO splitting and a bounded sendmmsg/GSO send queue. */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>  /* struct timespec, needed by linux/errqueue.h */
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "err.h"
#include "udp.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define DEFAULT_BUF (4u << 20)     /* socket buffers: ~3 ms at 10 Gbit/s, enough for GRO bursts */
#define DEFAULT_QUEUE 1024u
#define DEFAULT_MAX_DGRAM 1500u
#define RX_BATCH_PLAIN 64u
#define RX_BATCH_GRO 16u           /* 16 x 64 KiB = 1 MiB of receive buffers */
#define GRO_BUF 65536u             /* a coalesced buffer never exceeds one IP datagram */
#define TX_BATCH 64u               /* messages per sendmmsg */
/* Kernel limits on one GSO message (net/ipv4/udp.c): at most UDP_MAX_SEGMENTS (64) segments, and
 * the whole payload within one IP datagram (65507 bytes over IPv4); keep a margin. */
#define GSO_MAX_SEGS 64u
#define GSO_MAX_BYTES 65000u

/* Control buffer of one received or sent message: UDP_GRO / UDP_SEGMENT (an int or uint16) and
 * the local address (IP_PKTINFO or IPV6_PKTINFO; a dual-stack socket's IPv4 datagrams come with
 * the latter, v4-mapped, but a kernel may add the former too). */
union cmsg_buf {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                CMSG_SPACE(sizeof(struct in_pktinfo))];
};

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* The local address a datagram leaves from (sst_udp_send_from); family 0: the kernel's choice.
 * Compared as raw bytes when batching, so always zero-filled first. */
struct tx_src {
    uint8_t family;             /* AF_INET, AF_INET6 or 0 */
    uint8_t ip[16];             /* IPv4 in ip[0..3] */
    uint32_t ifindex;           /* IPv6 link-local: the scope; else 0 */
};

/* One queued datagram; its bytes live in tx_slab at the same index. */
struct tx_slot {
    union sockaddr_any to;
    socklen_t tolen;
    uint16_t len;
    struct tx_src src;
};

struct sst_udp {
    int fd;
    int family;                 /* AF_INET or AF_INET6 */
    bool gso, gro, blocked, gso_fell_back;
    /* Bound to a wildcard address: each datagram's local address comes from IP(V6)_PKTINFO and
     * replies name their source; a socket bound to one address reports that one (`bound`). */
    bool wildcard, pktinfo;
    struct sst_addr bound;
    struct sst_udp_config cfg;
    int (*sendmmsg_fn)(int fd, struct mmsghdr *msgs, unsigned int n, int flags);

    /* Receive batch: rx_batch buffers of rx_buf_len bytes, each followed by the tailroom. */
    unsigned rx_batch;
    size_t rx_buf_len;
    uint8_t *rx_slab;
    struct mmsghdr *rx_msgs;
    struct iovec *rx_iov;
    union sockaddr_any *rx_names;
    union cmsg_buf *rx_ctl;

    /* Send queue: a ring of queue_len slots starting at tx_head. */
    unsigned tx_head, tx_count;
    struct tx_slot *tx_slots;
    uint8_t *tx_slab;
    struct iovec *tx_iov;       /* one per queued datagram at most */
    struct mmsghdr tx_msgs[TX_BATCH];
    union cmsg_buf tx_ctl[TX_BATCH];
    unsigned tx_msg_segs[TX_BATCH];

    struct sst_udp_stats stats;
};

SST_API void sst_udp_config_default(struct sst_udp_config *c)
{
    memset(c, 0, sizeof *c);
    c->rcvbuf = DEFAULT_BUF;
    c->sndbuf = DEFAULT_BUF;
    c->queue_len = DEFAULT_QUEUE;
    c->max_datagram = DEFAULT_MAX_DGRAM;
}

/* ---- address conversion ---- */

SST_API int sst_addr_from_sockaddr(struct sst_addr *out, const struct sockaddr *sa, socklen_t len)
{
    memset(out, 0, sizeof *out);
    if (len < (socklen_t)sizeof(sa_family_t))
        return SST_ERR_INVAL;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = SST_AF_INET4;
        out->port = ntohs(in->sin_port);
        memcpy(out->ip, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        out->port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            /* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; one peer, one identity. */
            out->family = SST_AF_INET4;
            memcpy(out->ip, &in6->sin6_addr.s6_addr[12], 4);
        } else {
            out->family = SST_AF_INET6;
            memcpy(out->ip, &in6->sin6_addr, 16);
            out->scope_id = in6->sin6_scope_id;
        }
        return 0;
    }
    return SST_ERR_INVAL;
}

static bool ip6_is_v4mapped(const uint8_t ip[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, sizeof prefix) == 0;
}

SST_API int sst_addr_to_sockaddr(const struct sst_addr *a, int sock_family, struct sockaddr_storage *ss,
                                 socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    *len = 0;
    int fam;
    if (a->family == SST_AF_INET4)
        fam = AF_INET;
    else if (a->family == SST_AF_INET6)
        fam = AF_INET6;
    else
        return SST_ERR_INVAL;
    if (sock_family == 0)
        sock_family = fam;

    if (sock_family == AF_INET) {
        const uint8_t *v4;
        if (fam == AF_INET)
            v4 = a->ip;
        else if (ip6_is_v4mapped(a->ip))
            v4 = a->ip + 12;
        else
            return SST_ERR_INVAL;
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, v4, 4);
        *len = sizeof *in;
        return 0;
    }
    if (sock_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        if (fam == AF_INET) {
            in6->sin6_addr.s6_addr[10] = 0xff;
            in6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&in6->sin6_addr.s6_addr[12], a->ip, 4);
        } else {
            memcpy(&in6->sin6_addr, a->ip, 16);
            in6->sin6_scope_id = a->scope_id;
        }
        *len = sizeof *in6;
        return 0;
    }
    return SST_ERR_INVAL;
}

/* ---- open / close ---- */

/* Asks for a large buffer: the FORCE variant (root or CAP_NET_ADMIN) ignores net.core.*mem_max;
 * otherwise the kernel clamps the plain request to that sysctl.  Best effort: failure is not fatal. */
static void set_buffer(int fd, int force_opt, int opt, size_t bytes)
{
    int v = bytes > (size_t)(INT32_MAX / 2) ? INT32_MAX / 2 : (int)bytes;
    if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) != 0)
        (void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

static int get_buffer(int fd, int opt)
{
    int v = 0;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) != 0)
        return 0;
    return v;
}

static int alloc_buffers(struct sst_udp *u)
{
    unsigned n = u->rx_batch;
    size_t stride = u->rx_buf_len + SST_UDP_TAILROOM;
    u->rx_slab = malloc(stride * n);
    u->rx_msgs = calloc(n, sizeof *u->rx_msgs);
    u->rx_iov = calloc(n, sizeof *u->rx_iov);
    u->rx_names = calloc(n, sizeof *u->rx_names);
    u->rx_ctl = calloc(n, sizeof *u->rx_ctl);
    unsigned q = u->cfg.queue_len;
    u->tx_slots = calloc(q, sizeof *u->tx_slots);
    u->tx_slab = malloc((size_t)q * u->cfg.max_datagram);
    u->tx_iov = calloc(q, sizeof *u->tx_iov);
    if (!u->rx_slab || !u->rx_msgs || !u->rx_iov || !u->rx_names || !u->rx_ctl || !u->tx_slots ||
        !u->tx_slab || !u->tx_iov)
        return SST_ERR_NOMEM;
    /* The receive headers never change except for the lengths the kernel overwrites. */
    for (unsigned i = 0; i < n; i++) {
        u->rx_iov[i].iov_base = u->rx_slab + stride * i;
        u->rx_iov[i].iov_len = u->rx_buf_len;
        struct msghdr *h = &u->rx_msgs[i].msg_hdr;
        h->msg_name = &u->rx_names[i];
        h->msg_iov = &u->rx_iov[i];
        h->msg_iovlen = 1;
        h->msg_control = u->rx_ctl[i].buf;
    }
    return 0;
}

SST_API void sst_udp_close(struct sst_udp *u)
{
    if (!u)
        return;
    if (u->fd >= 0)
        close(u->fd);
    free(u->rx_slab);
    free(u->rx_msgs);
    free(u->rx_iov);
    free(u->rx_names);
    free(u->rx_ctl);
    free(u->tx_slots);
    free(u->tx_slab);
    free(u->tx_iov);
    free(u);
}

static int real_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags)
{
    return sendmmsg(fd, msgs, n, flags);
}

SST_API int sst_udp_open(struct sst_udp **out, const struct sst_addr *bind_addr,
                         const struct sst_udp_config *cfg)
{
    *out = NULL;
    struct sst_udp_config c;
    sst_udp_config_default(&c);
    if (cfg) {
        c.no_gso = cfg->no_gso;
        c.no_gro = cfg->no_gro;
        c.sendmmsg_fn = cfg->sendmmsg_fn;
        if (cfg->rcvbuf)
            c.rcvbuf = cfg->rcvbuf;
        if (cfg->sndbuf)
            c.sndbuf = cfg->sndbuf;
        if (cfg->queue_len)
            c.queue_len = cfg->queue_len;
        if (cfg->rx_batch)
            c.rx_batch = cfg->rx_batch;
        if (cfg->max_datagram)
            c.max_datagram = cfg->max_datagram;
    }
    if (c.rx_batch > 1024)  /* UIO_MAXIOV bounds recvmmsg's vlen */
        return SST_ERR_INVAL;

    struct sockaddr_storage ss;
    socklen_t sslen;
    if (sst_addr_to_sockaddr(bind_addr, 0, &ss, &sslen) != 0)
        return SST_ERR_INVAL;

    struct sst_udp *u = calloc(1, sizeof *u);
    if (!u)
        return SST_ERR_NOMEM;
    u->cfg = c;
    u->family = ss.ss_family;
    u->sendmmsg_fn = c.sendmmsg_fn ? c.sendmmsg_fn : real_sendmmsg;
    u->fd = socket(u->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0)
        goto io_fail;
    if (u->family == AF_INET6) {
        /* Dual-stack: a socket on :: also receives IPv4 as ::ffff:a.b.c.d (RFC 4038 §4.2). */
        int off = 0;
        (void)setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    /* ICMP errors (port unreachable: no SST there) are queued for sst_udp_recv_errors. */
    int on_err = 1;
    (void)setsockopt(u->fd, IPPROTO_IP, IP_RECVERR, &on_err, sizeof on_err);
    if (u->family == AF_INET6)
        (void)setsockopt(u->fd, IPPROTO_IPV6, IPV6_RECVERR, &on_err, sizeof on_err);
    /* Don't Fragment on every datagram, without the kernel's path MTU cache shrinking or
     * fragmenting them: SST finds the path MTU itself by probing (RFC 8899 §3, core/pmtu.h).
     * A probe above the interface MTU fails with EMSGSIZE in sst_udp_flush and is simply lost,
     * which the engine counts as a failed probe.  Both options on a dual-stack socket: its IPv4
     * peers go out under IP_MTU_DISCOVER. */
    int pmtud = IP_PMTUDISC_PROBE;
    (void)setsockopt(u->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtud, sizeof pmtud);
    if (u->family == AF_INET6) {
        int pmtud6 = IPV6_PMTUDISC_PROBE;
        (void)setsockopt(u->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtud6, sizeof pmtud6);
    }
    set_buffer(u->fd, SO_RCVBUFFORCE, SO_RCVBUF, c.rcvbuf);
    set_buffer(u->fd, SO_SNDBUFFORCE, SO_SNDBUF, c.sndbuf);
    if (bind(u->fd, (struct sockaddr *)&ss, sslen) != 0)
        goto io_fail;
    if (sst_udp_local_addr(u, &u->bound) != 0)
        goto io_fail;
    static const uint8_t zero_ip[16];
    u->wildcard = memcmp(bind_addr->ip, zero_ip, bind_addr->family == SST_AF_INET4 ? 4 : 16) == 0;
    if (u->wildcard) {
        /* The local address of every datagram, so that replies leave from the address the
         * peer sent to (a multi-homed host: IP aliases, a VIP, several IPv6 addresses); the
         * kernel would pick its own source toward the peer, and the peer would drop them. */
        int on = 1;
        if (u->family == AF_INET6)
            u->pktinfo = setsockopt(u->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) == 0;
        else
            u->pktinfo = setsockopt(u->fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) == 0;
    }

    if (!c.no_gro) {
        int on = 1;
        u->gro = setsockopt(u->fd, IPPROTO_UDP, UDP_GRO, &on, sizeof on) == 0;
    }
    if (!c.no_gso) {
        /* Setting the socket-wide segment size to 0 changes nothing but fails with ENOPROTOOPT on
         * kernels without UDP GSO (< 4.18): a cheap capability probe. */
        int zero = 0;
        u->gso = setsockopt(u->fd, IPPROTO_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
    }
    u->rx_buf_len = u->gro ? GRO_BUF : c.max_datagram;
    u->rx_batch = c.rx_batch ? c.rx_batch : (u->gro ? RX_BATCH_GRO : RX_BATCH_PLAIN);
    int rc = alloc_buffers(u);
    if (rc != 0) {
        sst_udp_close(u);
        return rc;
    }
    u->stats.rcvbuf = get_buffer(u->fd, SO_RCVBUF);
    u->stats.sndbuf = get_buffer(u->fd, SO_SNDBUF);
    *out = u;
    return 0;

io_fail: {
        int e = errno;
        sst_udp_close(u);
        errno = e;
        return SST_ERR_IO;
    }
}

SST_API int sst_udp_fd(const struct sst_udp *u) { return u->fd; }

SST_API int sst_udp_local_addr(const struct sst_udp *u, struct sst_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(u->fd, (struct sockaddr *)&ss, &len) != 0)
        return SST_ERR_IO;
    return sst_addr_from_sockaddr(out, (struct sockaddr *)&ss, len) == 0 ? 0 : SST_ERR_IO;
}

/* ---- receive ---- */

/* The segment size of a GRO-coalesced buffer, or 0 if the kernel did not coalesce. */
static size_t gro_segment_size(struct msghdr *h)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int v;
            memcpy(&v, CMSG_DATA(cm), sizeof v);
            return v > 0 ? (size_t)v : 0;
        }
    }
    return 0;
}

/* The local address a datagram was sent to, from its IP_PKTINFO / IPV6_PKTINFO cmsg (port: the
 * socket's).  False if there is none, or it is multicast or broadcast (no source for a reply). */
static bool pktinfo_local(const struct sst_udp *u, struct msghdr *h, struct sst_addr *out)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof pi);
            if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr))
                return false;
            struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(u->bound.port),
                                         .sin6_addr = pi.ipi6_addr };
            if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr))
                sin6.sin6_scope_id = (uint32_t)pi.ipi6_ifindex;
            return sst_addr_from_sockaddr(out, (struct sockaddr *)&sin6, sizeof sin6) == 0;
        }
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof pi);
            /* ipi_addr: the header's destination; for a broadcast or multicast one,
             * ipi_spec_dst is the interface's address the kernel would answer from. */
            uint32_t a = ntohl(pi.ipi_addr.s_addr);
            struct in_addr ip = pi.ipi_addr;
            if (IN_MULTICAST(a) || a == INADDR_BROADCAST)
                ip = pi.ipi_spec_dst;
            struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(u->bound.port), .sin_addr = ip };
            return sst_addr_from_sockaddr(out, (struct sockaddr *)&sin, sizeof sin) == 0;
        }
    }
    return false;
}

/* Hands one datagram to whichever callback the caller gave. */
static void deliver(struct sst_udp *u, sst_udp_recv_fn fn, sst_udp_recv_to_fn fn_to, void *ctx,
                    const struct sst_addr *from, const struct sst_addr *local, uint8_t *pkt, size_t len)
{
    u->stats.rx_datagrams++;
    if (fn_to)
        fn_to(ctx, from, local, pkt, len);
    else
        fn(ctx, from, pkt, len);
}

/* Hands a coalesced buffer up one segment at a time.  The callback may write into the tailroom
 * after its segment, which is the start of the next one: save those bytes and put them back. */
static void deliver_split(struct sst_udp *u, sst_udp_recv_fn fn, sst_udp_recv_to_fn fn_to, void *ctx,
                          const struct sst_addr *from, const struct sst_addr *local, uint8_t *buf,
                          size_t len, size_t seg)
{
    u->stats.rx_gro_buffers++;
    for (size_t off = 0; off < len; off += seg) {
        size_t n = SST_MIN(seg, len - off);
        bool last = off + n == len;
        uint8_t saved[SST_UDP_TAILROOM];
        if (!last)
            memcpy(saved, buf + off + n, sizeof saved);
        deliver(u, fn, fn_to, ctx, from, local, buf + off, n);
        if (!last)
            memcpy(buf + off + n, saved, sizeof saved);
    }
}

static int recv_batch(struct sst_udp *u, sst_udp_recv_fn fn, sst_udp_recv_to_fn fn_to, void *ctx)
{
    for (unsigned i = 0; i < u->rx_batch; i++) {
        struct msghdr *h = &u->rx_msgs[i].msg_hdr;
        h->msg_namelen = sizeof u->rx_names[i];
        h->msg_controllen = sizeof u->rx_ctl[i].buf;
        h->msg_flags = 0;
    }
    int r;
    do {
        r = recvmmsg(u->fd, u->rx_msgs, u->rx_batch, MSG_DONTWAIT, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : SST_ERR_IO;
    if (r > 0)
        u->stats.rx_syscalls++;

    for (int i = 0; i < r; i++) {
        struct msghdr *h = &u->rx_msgs[i].msg_hdr;
        size_t len = u->rx_msgs[i].msg_len;
        uint8_t *buf = u->rx_iov[i].iov_base;
        struct sst_addr from;
        if ((h->msg_flags & MSG_TRUNC) ||
            sst_addr_from_sockaddr(&from, &u->rx_names[i].sa, h->msg_namelen) != 0) {
            u->stats.rx_dropped++;
            continue;
        }
        struct sst_addr local_buf;
        const struct sst_addr *local = NULL;
        if (!u->wildcard)
            local = &u->bound;
        else if (u->pktinfo && pktinfo_local(u, h, &local_buf))
            local = &local_buf;
        size_t seg = gro_segment_size(h);
        if (seg == 0 || seg >= len)
            deliver(u, fn, fn_to, ctx, &from, local, buf, len);
        else
            deliver_split(u, fn, fn_to, ctx, &from, local, buf, len, seg);
    }
    return r;
}

SST_API int sst_udp_recv(struct sst_udp *u, sst_udp_recv_fn fn, void *ctx)
{
    return recv_batch(u, fn, NULL, ctx);
}

SST_API int sst_udp_recv_to(struct sst_udp *u, sst_udp_recv_to_fn fn, void *ctx)
{
    return recv_batch(u, NULL, fn, ctx);
}

SST_API unsigned sst_udp_rx_batch(const struct sst_udp *u)
{
    return u->rx_batch;
}

SST_API int sst_udp_recv_errors(struct sst_udp *u, sst_udp_error_fn fn, void *ctx)
{
    int n = 0;
    for (;;) {
        struct sockaddr_storage name;
        union {
            struct cmsghdr align;
            uint8_t buf[512];
        } ctl;
        uint8_t data[64];
        struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
        struct msghdr h = {
            .msg_name = &name, .msg_namelen = sizeof name, .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf,
        };
        ssize_t r = recvmsg(u->fd, &h, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return n;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
            bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
            bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
            if (!v4 && !v6)
                continue;
            struct sock_extended_err ee;
            memcpy(&ee, CMSG_DATA(c), sizeof ee);
            if (ee.ee_origin != SO_EE_ORIGIN_ICMP && ee.ee_origin != SO_EE_ORIGIN_ICMP6)
                continue;
            /* msg_name is the destination of the datagram that drew the error. */
            struct sst_addr dest;
            if (sst_addr_from_sockaddr(&dest, (struct sockaddr *)&name, h.msg_namelen) != 0)
                continue;
            u->stats.rx_icmp_errors++;
            n++;
            fn(ctx, &dest, (int)ee.ee_errno);
        }
    }
}

/* ---- send ---- */

static struct tx_slot *tx_slot_at(struct sst_udp *u, unsigned offset, uint8_t **data)
{
    unsigned i = (u->tx_head + offset) % u->cfg.queue_len;
    *data = u->tx_slab + (size_t)i * u->cfg.max_datagram;
    return &u->tx_slots[i];
}

/* One GSO message has one destination and one source. */
static bool same_dest(const struct tx_slot *a, const struct tx_slot *b)
{
    return a->tolen == b->tolen && memcmp(&a->to, &b->to, a->tolen) == 0 &&
           memcmp(&a->src, &b->src, sizeof a->src) == 0;
}

/* Appends the source-address cmsg for src to m (whose control buffer is cb). */
static void put_src_cmsg(struct sst_udp *u, struct msghdr *m, union cmsg_buf *cb, const struct tx_src *src)
{
    struct cmsghdr *cm = (struct cmsghdr *)(cb->buf + m->msg_controllen);
    if (u->family == AF_INET6) {
        /* IPv4 destinations on a dual-stack socket too, v4-mapped (the kernel's ip_cmsg_send
         * takes IPV6_PKTINFO for them). */
        struct in6_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        if (src->family == AF_INET) {
            pi.ipi6_addr.s6_addr[10] = 0xff;
            pi.ipi6_addr.s6_addr[11] = 0xff;
            memcpy(&pi.ipi6_addr.s6_addr[12], src->ip, 4);
        } else {
            memcpy(&pi.ipi6_addr, src->ip, 16);
            pi.ipi6_ifindex = src->ifindex;
        }
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(cm), &pi, sizeof pi);
        m->msg_controllen += CMSG_SPACE(sizeof pi);
    } else {
        struct in_pktinfo pi;
        memset(&pi, 0, sizeof pi);
        memcpy(&pi.ipi_spec_dst, src->ip, 4);
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof pi);
        memcpy(CMSG_DATA(cm), &pi, sizeof pi);
        m->msg_controllen += CMSG_SPACE(sizeof pi);
    }
}

/* Fills tx_msgs from the head of the queue (the queue itself is not changed): runs of datagrams
 * to the same destination whose sizes equal the first one's (the last may be shorter) become
 * one GSO message, the kernel's segmentation contract (UDP_SEGMENT, Linux 4.18).  Returns the
 * number of messages. */
static unsigned build_batch(struct sst_udp *u)
{
    unsigned nmsg = 0, off = 0, niov = 0;
    while (off < u->tx_count && nmsg < TX_BATCH) {
        uint8_t *data;
        struct tx_slot *first = tx_slot_at(u, off, &data);
        struct iovec *iov = &u->tx_iov[niov];
        iov[0].iov_base = data;
        iov[0].iov_len = first->len;
        unsigned segs = 1;
        size_t bytes = first->len;
        while (u->gso && off + segs < u->tx_count && segs < GSO_MAX_SEGS) {
            struct tx_slot *s = tx_slot_at(u, off + segs, &data);
            if (!same_dest(first, s) || s->len > first->len || bytes + s->len > GSO_MAX_BYTES)
                break;
            iov[segs].iov_base = data;
            iov[segs].iov_len = s->len;
            bytes += s->len;
            segs++;
            if (s->len < first->len)  /* a short segment can only be the last */
                break;
        }
        struct mmsghdr *m = &u->tx_msgs[nmsg];
        memset(m, 0, sizeof *m);
        m->msg_hdr.msg_name = &first->to;
        m->msg_hdr.msg_namelen = first->tolen;
        m->msg_hdr.msg_iov = iov;
        m->msg_hdr.msg_iovlen = segs;
        if (segs > 1 || first->src.family != 0) {
            union cmsg_buf *cb = &u->tx_ctl[nmsg];
            memset(cb, 0, sizeof *cb);
            m->msg_hdr.msg_control = cb->buf;
            m->msg_hdr.msg_controllen = 0;
        }
        if (segs > 1) {
            struct cmsghdr *cm = (struct cmsghdr *)u->tx_ctl[nmsg].buf;  /* controllen is still 0 */
            cm->cmsg_level = IPPROTO_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t gso_size = first->len;
            memcpy(CMSG_DATA(cm), &gso_size, sizeof gso_size);
            m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
        }
        if (first->src.family != 0)
            put_src_cmsg(u, &m->msg_hdr, &u->tx_ctl[nmsg], &first->src);
        u->tx_msg_segs[nmsg] = segs;
        niov += segs;
        off += segs;
        nmsg++;
    }
    return nmsg;
}

static void tx_pop(struct sst_udp *u, unsigned n)
{
    u->tx_head = (u->tx_head + n) % u->cfg.queue_len;
    u->tx_count -= n;
}

SST_API int sst_udp_flush(struct sst_udp *u)
{
    u->blocked = false;
    while (u->tx_count > 0) {
        unsigned nmsg = build_batch(u);
        int r = u->sendmmsg_fn(u->fd, u->tx_msgs, nmsg, 0);
        int e = errno;
        u->stats.tx_syscalls++;
        if (r > 0) {
            for (int i = 0; i < r; i++) {
                u->stats.tx_datagrams += u->tx_msg_segs[i];
                if (u->tx_msg_segs[i] > 1)
                    u->stats.tx_gso_messages++;
                tx_pop(u, u->tx_msg_segs[i]);
            }
            continue;
        }
        /* r < 0: the first message failed (a later failure shows up as a short count and then
         * as this case on the next call). */
        if (r < 0 && e == EINTR)
            continue;
        if (r == 0 || e == EAGAIN || e == EWOULDBLOCK) {
            u->blocked = true;
            u->stats.tx_eagain++;
            return SST_ERR_AGAIN;
        }
        uint8_t *unused;
        struct tx_slot *head = tx_slot_at(u, 0, &unused);
        if (head->src.family != 0) {
            /* The kernel refused a message naming a source: the address may be ours no longer
             * (removed; EINVAL over IPv6, ENETUNREACH over IPv4) or unusable toward this
             * destination.  Send it again from the kernel's choice rather than lose it; if the
             * source was not the cause, the retry fails for the real one, handled below (before
             * GSO is blamed for an EINVAL). */
            for (unsigned i = 0; i < u->tx_msg_segs[0]; i++)
                memset(&tx_slot_at(u, i, &unused)->src, 0, sizeof head->src);
            u->stats.tx_src_dropped += u->tx_msg_segs[0];
            continue;
        }
        if ((e == EIO || e == EINVAL) && u->tx_msg_segs[0] > 1) {
            /* EIO: the device cannot checksum-offload the segments; EINVAL: this kernel or path
             * rejects the segment size.  Either way, stop using GSO on this socket for good
             * and resend the same datagrams one per message. */
            u->gso = false;
            u->gso_fell_back = true;
            continue;
        }
        /* A per-destination failure (EMSGSIZE, ENETUNREACH, EPERM, ENOBUFS, ...): the datagrams
         * are lost as they would be in the network; SST recovers them (paper §4.2). */
        u->stats.tx_errors += u->tx_msg_segs[0];
        tx_pop(u, u->tx_msg_segs[0]);
    }
    return 0;
}

SST_API int sst_udp_send(struct sst_udp *u, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    return sst_udp_send_from(u, to, NULL, pkt, len);
}

SST_API int sst_udp_send_from(struct sst_udp *u, const struct sst_addr *to, const struct sst_addr *from,
                              const uint8_t *pkt, size_t len)
{
    if (len == 0)
        return SST_ERR_INVAL;
    if (len > u->cfg.max_datagram)
        return SST_ERR_TOO_BIG;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (sst_addr_to_sockaddr(to, u->family, &ss, &sslen) != 0) {
        u->stats.tx_errors++;
        return SST_ERR_INVAL;
    }
    if (u->tx_count == u->cfg.queue_len) {
        if (!u->blocked)
            (void)sst_udp_flush(u);
        if (u->tx_count == u->cfg.queue_len) {
            u->stats.tx_dropped_full++;
            return SST_ERR_LIMIT;
        }
    }
    uint8_t *data;
    struct tx_slot *s = tx_slot_at(u, u->tx_count, &data);
    memset(&s->to, 0, sizeof s->to);
    memcpy(&s->to, &ss, sslen);
    s->tolen = sslen;
    s->len = (uint16_t)len;
    memset(&s->src, 0, sizeof s->src);
    /* A source only where the kernel would choose one: a socket bound to one address always
     * sends from it.  One of the other family than the destination cannot be used: ignored. */
    if (from != NULL && u->wildcard && from->family == to->family) {
        if (from->family == SST_AF_INET4) {
            s->src.family = AF_INET;
            memcpy(s->src.ip, from->ip, 4);
        } else if (u->family == AF_INET6) {
            s->src.family = AF_INET6;
            memcpy(s->src.ip, from->ip, 16);
            s->src.ifindex = from->scope_id;
        }
    }
    if (data != pkt)
        memcpy(data, pkt, len);
    else                /* built in place from sst_udp_tx_slot: nothing to copy */
        u->stats.tx_in_place++;
    u->tx_count++;
    if (u->tx_count > u->stats.tx_queue_high)
        u->stats.tx_queue_high = u->tx_count;
    return 0;
}

SST_API uint8_t *sst_udp_tx_slot(struct sst_udp *u, size_t len)
{
    if (u->tx_count == u->cfg.queue_len || len > u->cfg.max_datagram)
        return NULL;
    uint8_t *data;
    (void)tx_slot_at(u, u->tx_count, &data);
    return data;
}

SST_API unsigned sst_udp_queued(const struct sst_udp *u) { return u->tx_count; }

SST_API bool sst_udp_blocked(const struct sst_udp *u) { return u->blocked; }

SST_API void sst_udp_get_stats(const struct sst_udp *u, struct sst_udp_stats *out)
{
    *out = u->stats;
    out->tx_queued = u->tx_count;
    out->gso = u->gso;
    out->gro = u->gro;
    out->gso_fell_back = u->gso_fell_back;
}
