/* A non-blocking UDP endpoint for the engine: batched receive (recvmmsg, split UDP_GRO buffers)
 * and a bounded send queue flushed with sendmmsg and UDP GSO.
 *
 * Receive: sst_udp_recv() reads one recvmmsg batch and hands every datagram to a callback.  The
 * buffer it gets has SST_UDP_TAILROOM writable bytes after the datagram, so the engine can decrypt
 * in place (SST_PROTECT_TAILROOM).  A GRO-coalesced buffer is split at the gso_size the kernel
 * reports, and the bytes the callback may scribble on after one segment are restored before the
 * next segment is handed up.
 *
 * Send: sst_udp_send() copies a datagram into a preallocated slot (no malloc per packet);
 * sst_udp_flush() sends the queue with sendmmsg, coalescing runs of equal-size datagrams to the
 * same destination into one UDP GSO message (UDP_SEGMENT).  If the kernel or device rejects GSO
 * (EIO/EINVAL) the endpoint falls back to one datagram per message and remembers.  If the socket
 * buffer is full (EAGAIN) the rest stays queued, flush returns SST_ERR_AGAIN and the caller waits
 * for writability; the queue is bounded and datagrams beyond it are dropped and counted, as a
 * router would drop them.
 *
 * Single-threaded: an endpoint belongs to one thread (the driver's event loop).  Details, buffer
 * sizes and fallbacks: docs/driver.md. */
#ifndef SST_IO_UDP_H
#define SST_IO_UDP_H

#include <sys/socket.h>

#include "types.h"

/* Writable bytes guaranteed after every received datagram (== SST_PROTECT_TAILROOM). */
#define SST_UDP_TAILROOM 16

struct sst_udp;
struct mmsghdr;

/* Every field may be left 0 for its default. */
struct sst_udp_config {
    size_t rcvbuf;           /* SO_RCVBUF request in bytes; SO_RCVBUFFORCE tried first (4 MiB) */
    size_t sndbuf;           /* SO_SNDBUF request in bytes; SO_SNDBUFFORCE tried first (4 MiB) */
    unsigned queue_len;      /* datagrams the send queue holds; more are dropped (1024) */
    unsigned rx_batch;       /* recvmmsg batch: 64 buffers, or 16 of 64 KiB when GRO is on */
    uint16_t max_datagram;   /* largest datagram sent or received without GRO (1500) */
    bool no_gso;             /* never use UDP GSO on send */
    bool no_gro;             /* never enable UDP_GRO on receive */
    /* Fault injection for tests: called instead of sendmmsg(2) (same contract, errno included).
     * NULL: the real system call. */
    int (*sendmmsg_fn)(int fd, struct mmsghdr *msgs, unsigned int n, int flags);
};

struct sst_udp_stats {
    uint64_t rx_datagrams;      /* handed to the callback (after GRO splitting) */
    uint64_t rx_syscalls;       /* recvmmsg calls that returned data */
    uint64_t rx_gro_buffers;    /* coalesced buffers that were split */
    uint64_t rx_dropped;        /* truncated (MSG_TRUNC) or unparseable source address */
    uint64_t rx_icmp_errors;    /* ICMP errors read from the error queue (IP_RECVERR) */
    uint64_t tx_datagrams;      /* accepted by the kernel */
    uint64_t tx_syscalls;       /* sendmmsg calls */
    uint64_t tx_gso_messages;   /* messages that carried a UDP_SEGMENT cmsg and were accepted */
    uint64_t tx_dropped_full;   /* sst_udp_send found the bounded queue full */
    uint64_t tx_errors;         /* datagrams the kernel refused (not EAGAIN), or bad addresses */
    uint64_t tx_eagain;         /* flushes stopped by a full socket buffer */
    uint64_t tx_in_place;       /* datagrams built in their queue slot (sst_udp_tx_slot): no copy */
    uint64_t tx_src_dropped;    /* datagrams naming a source address the kernel refused (no longer
                                 * ours?): sent again from the kernel's choice */
    unsigned tx_queued;         /* datagrams waiting now */
    unsigned tx_queue_high;     /* high-water mark of tx_queued */
    bool gso;                   /* GSO in use (false after a fallback) */
    bool gro;                   /* UDP_GRO enabled on the socket */
    bool gso_fell_back;         /* the kernel rejected a GSO message and GSO was switched off */
    int rcvbuf, sndbuf;         /* SO_RCVBUF / SO_SNDBUF the kernel granted (bytes, as reported) */
};

/* Called once per received datagram.  pkt is writable for len + SST_UDP_TAILROOM bytes and valid
 * only during the call. */
typedef void (*sst_udp_recv_fn)(void *ctx, const struct sst_addr *from, uint8_t *pkt, size_t len);
/* The same with the datagram's local address: the one it was sent to (IP_PKTINFO /
 * IPV6_PKTINFO) on a socket bound to a wildcard address, the bound one on any other; its port
 * is the socket's.  NULL when unknown (no cmsg, or sent to a multicast address). */
typedef void (*sst_udp_recv_to_fn)(void *ctx, const struct sst_addr *from, const struct sst_addr *local,
                                   uint8_t *pkt, size_t len);

/* Called once per ICMP error the kernel queued for a datagram we sent: dest is where that
 * datagram went, err the errno the ICMP message means (ECONNREFUSED: port unreachable). */
typedef void (*sst_udp_error_fn)(void *ctx, const struct sst_addr *dest, int err);

SST_API void sst_udp_config_default(struct sst_udp_config *c);
/* Opens a non-blocking, close-on-exec UDP socket bound to `bind` (port 0: any).  An IPv6 socket is
 * dual-stack (IPV6_V6ONLY off), so one bound to :: also serves IPv4 peers.  cfg may be NULL.
 * Returns 0, SST_ERR_INVAL (bad address or config), SST_ERR_IO (socket/bind failed; errno is
 * left as the system call set it) or SST_ERR_NOMEM. */
SST_API SST_MUST_CHECK int sst_udp_open(struct sst_udp **out, const struct sst_addr *bind,
                                        const struct sst_udp_config *cfg);
/* Drains the socket's error queue (IP_RECVERR / IPV6_RECVERR are on), calling fn per ICMP
 * error; returns how many.  Call it when a readable event found no datagram (sst_udp_recv
 * returned 0 or failed): a queued error keeps the socket readable (POLLERR) until it is read,
 * so a wake-up that did find datagrams can leave it to the next one. */
SST_API int sst_udp_recv_errors(struct sst_udp *u, sst_udp_error_fn fn, void *ctx);
/* Closes the socket and frees everything; queued datagrams are discarded.  NULL is a no-op. */
SST_API void sst_udp_close(struct sst_udp *u);
SST_API int sst_udp_fd(const struct sst_udp *u);
/* The bound address (with the kernel-chosen port).  0 or SST_ERR_IO. */
SST_API int sst_udp_local_addr(const struct sst_udp *u, struct sst_addr *out);

/* Reads one recvmmsg batch and calls fn for each datagram.  Returns the number of kernel buffers
 * read (0: nothing waiting), or SST_ERR_IO on an unexpected socket error.  Fewer than
 * sst_udp_rx_batch() buffers: the socket was empty when the call returned. */
SST_API int sst_udp_recv(struct sst_udp *u, sst_udp_recv_fn fn, void *ctx);
/* The same, handing each datagram's local address too (sst_udp_recv_to_fn). */
SST_API int sst_udp_recv_to(struct sst_udp *u, sst_udp_recv_to_fn fn, void *ctx);
/* The most kernel buffers one sst_udp_recv reads. */
SST_API unsigned sst_udp_rx_batch(const struct sst_udp *u);

/* Queues one datagram (copied).  If the queue is full and the socket is not known to be full,
 * flushes first.  Returns 0, SST_ERR_INVAL (len 0, or an address this socket cannot reach, e.g.
 * IPv6 on an IPv4 socket), SST_ERR_TOO_BIG (len > max_datagram) or SST_ERR_LIMIT (queue full:
 * dropped and counted). */
SST_API int sst_udp_send(struct sst_udp *u, const struct sst_addr *to, const uint8_t *pkt, size_t len);
/* The same, leaving from local address `from` (IP_PKTINFO / IPV6_PKTINFO source) when it is not
 * NULL and the socket is bound to a wildcard address -- a reply from the address its request
 * went to (sst_udp_recv_to).  Runs of datagrams batch into one GSO message only with the same
 * destination and source.  If the kernel refuses the source (the address was removed), the
 * datagrams go out from its own choice (counted in tx_src_dropped). */
SST_API int sst_udp_send_from(struct sst_udp *u, const struct sst_addr *to, const struct sst_addr *from,
                              const uint8_t *pkt, size_t len);
/* The queue slot the next sst_udp_send will fill, if it has room for len bytes and the queue is
 * not full; NULL otherwise.  A caller may build its datagram there and pass the same pointer to
 * sst_udp_send, which then queues it without copying.  Valid until the next send or flush. */
SST_API uint8_t *sst_udp_tx_slot(struct sst_udp *u, size_t len);
/* Sends everything queued.  Returns 0 when the queue is empty, SST_ERR_AGAIN when the socket
 * buffer filled up (the rest stays queued: wait until the fd is writable, then flush again).
 * Datagrams the kernel refuses for other reasons are dropped and counted in tx_errors. */
SST_API int sst_udp_flush(struct sst_udp *u);
/* Datagrams waiting in the send queue. */
SST_API unsigned sst_udp_queued(const struct sst_udp *u);
/* True after a flush stopped on EAGAIN, until the next flush. */
SST_API bool sst_udp_blocked(const struct sst_udp *u);
SST_API void sst_udp_get_stats(const struct sst_udp *u, struct sst_udp_stats *out);

/* Converts a sockaddr_in or sockaddr_in6 (len bytes) to an sst_addr.  IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) become SST_AF_INET4, so a peer has one identity whichever socket it reached.
 * Returns 0 or SST_ERR_INVAL (other family or short len). */
SST_API int sst_addr_from_sockaddr(struct sst_addr *out, const struct sockaddr *sa, socklen_t len);
/* Converts an sst_addr for use on a socket of family sock_family (AF_INET, AF_INET6, or 0 for the
 * address's own family): IPv4 on an AF_INET6 socket becomes ::ffff:a.b.c.d, an IPv4-mapped IPv6
 * address on an AF_INET socket becomes plain IPv4.  Stores the length in *len.  Returns 0 or
 * SST_ERR_INVAL (IPv6 on an IPv4 socket, or no family). */
SST_API int sst_addr_to_sockaddr(const struct sst_addr *a, int sock_family, struct sockaddr_storage *ss,
                                 socklen_t *len);

#endif
