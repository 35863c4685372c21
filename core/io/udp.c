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

/* Control buffer for one cmsg carrying an int or uint16 (UDP_GRO / UDP_SEGMENT). */
union cmsg_buf {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(int))];
};

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

/* One queued datagram; its bytes live in tx_slab at the same index. */
struct tx_slot {
    union sockaddr_any to;
    socklen_t tolen;
    uint16_t len;
};

struct sst_udp {
    int fd;
    int family;                 /* AF_INET or AF_INET6 */
    bool gso, gro, blocked, gso_fell_back;
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

/* Hands a coalesced buffer up one segment at a time.  The callback may write into the tailroom
 * after its segment, which is the start of the next one: save those bytes and put them back. */
static void deliver_split(struct sst_udp *u, sst_udp_recv_fn fn, void *ctx, const struct sst_addr *from,
                          uint8_t *buf, size_t len, size_t seg)
{
    u->stats.rx_gro_buffers++;
    for (size_t off = 0; off < len; off += seg) {
        size_t n = SST_MIN(seg, len - off);
        bool last = off + n == len;
        uint8_t saved[SST_UDP_TAILROOM];
        if (!last)
            memcpy(saved, buf + off + n, sizeof saved);
        u->stats.rx_datagrams++;
        fn(ctx, from, buf + off, n);
        if (!last)
            memcpy(buf + off + n, saved, sizeof saved);
    }
}

SST_API int sst_udp_recv(struct sst_udp *u, sst_udp_recv_fn fn, void *ctx)
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
        size_t seg = gro_segment_size(h);
        if (seg == 0 || seg >= len) {
            u->stats.rx_datagrams++;
            fn(ctx, &from, buf, len);
        } else {
            deliver_split(u, fn, ctx, &from, buf, len, seg);
        }
    }
    return r;
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

static bool same_dest(const struct tx_slot *a, const struct tx_slot *b)
{
    return a->tolen == b->tolen && memcmp(&a->to, &b->to, a->tolen) == 0;
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
        if (segs > 1) {
            union cmsg_buf *cb = &u->tx_ctl[nmsg];
            memset(cb, 0, sizeof *cb);
            m->msg_hdr.msg_control = cb->buf;
            m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
            struct cmsghdr *cm = CMSG_FIRSTHDR(&m->msg_hdr);
            cm->cmsg_level = IPPROTO_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t gso_size = first->len;
            memcpy(CMSG_DATA(cm), &gso_size, sizeof gso_size);
        }
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
