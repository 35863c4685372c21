/* An SST host: the sans-I/O engine instance a driver owns.  Datagrams and time go in
 * (sst_host_recv, sst_host_timeout); datagrams go out through io.send, events through
 * io.chan_event; the driver re-arms one timer at sst_host_deadline().  Channels to the same peer
 * address are shared by every stream to that peer (paper §4.1). */
#ifndef SST_HOST_H
#define SST_HOST_H

#include "types.h"
#include "cc.h"
#include "protect.h"
#include "negotiate.h"

struct sst_chan;
struct sst_host;

enum sst_chan_event {
    SST_CHAN_EV_UP = 1,        /* negotiation done; the channel carries data */
    SST_CHAN_EV_STALLED,       /* no acks for a while (link status, paper §5/ref impl) */
    SST_CHAN_EV_RESUMED,       /* acks flow again after a stall */
    SST_CHAN_EV_DOWN,          /* channel failed or closed; err says why; handle dies after */
};

struct sst_host_io {
    void *ctx;
    /* Sends one UDP datagram.  The engine may call it many times per input; drivers batch. */
    void (*send)(void *ctx, const struct sst_addr *to, const uint8_t *pkt, size_t len);
    /* Optional (NULL: send is used): the same, leaving from local address `from` -- the address
     * the peer sent its packets to (sst_host_recv_to), so that a host with several addresses
     * bound to a wildcard answers from the one it was reached at.  from is never NULL here:
     * datagrams with no known local address go through send. */
    void (*send_from)(void *ctx, const struct sst_addr *to, const struct sst_addr *from, const uint8_t *pkt,
                      size_t len);
    /* Randomness (NULL: libsodium randombytes_buf).  The simulator injects a seeded one. */
    void (*random)(void *ctx, void *buf, size_t len);
    /* Vets a peer's host key (NULL: accept any).  0 or SST_ERR_IDENTITY. */
    int (*verify_peer)(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated);
    /* Channel lifecycle; for DOWN, err is an SST_ERR_* code (0 for a graceful close). */
    void (*chan_event)(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err);
    /* Optional (NULL: none): the buffer, at least len bytes, in which the driver would queue the
     * next datagram, so the engine can seal straight into it; send() given that pointer then
     * queues without copying.  NULL when there is no room.  Valid only until the next send(). */
    uint8_t *(*tx_slot)(void *ctx, size_t len);
};

struct sst_host_config {
    struct sst_identity identity;     /* required: see sst_identity_generate / keystore */
    enum sst_security security;       /* default strong */
    enum sst_cc_algo cc;              /* default bbr */
    bool allow_aes;                   /* offer AES-256-GCM if the CPU has it (default true) */
    uint16_t max_udp_payload;         /* datagram size limit before PMTU discovery: 1232 */
    unsigned cookie_threshold;        /* half-open handshakes before cookies are demanded */
    unsigned max_half_open;
    unsigned max_channels;            /* per host */
    sst_time_t handshake_timeout;     /* give up connecting after this (default 10 s) */
    sst_time_t idle_timeout;          /* close a channel idle this long (default 60 s) */
    sst_time_t keepalive;             /* ping an idle channel this often; 0 = never (default 0) */
    sst_time_t max_ack_delay;         /* delayed-ack timer (default 10 ms) */
    /* Path MTU discovery (RFC 8899, core/pmtu.h): channels start at max_udp_payload and probe
     * up to these datagram sizes for IPv4 / IPv6 peers (SST_PMTU_LIMIT4 = 1472 and
     * SST_PMTU_LIMIT6 = 1452 on a 1500-byte MTU).  0 (the default for now) or a value
     * <= max_udp_payload disables discovery; at most 1500. */
    uint16_t max_udp_payload_limit;
    uint16_t max_udp_payload_limit6;
    sst_time_t pmtu_raise_timer;      /* re-search after this (0: default 600 s) */
    /* Session resumption (docs/protocol-negotiation.md): after a full handshake each side keeps
     * a single-use ticket, and the next channel between the two hosts costs one key generation
     * and one DH per side instead of one and three.  max_tickets bounds each side's table (a
     * responder's issued tickets, an initiator's one per peer); 0 turns resumption off
     * (default 1024).  ticket_lifetime: 0 means the default, 1 hour. */
    unsigned max_tickets;
    sst_time_t ticket_lifetime;
};

SST_API void sst_host_config_default(struct sst_host_config *c);
SST_API struct sst_host *sst_host_new(const struct sst_host_config *cfg, const struct sst_host_io *io);
SST_API void sst_host_free(struct sst_host *h);

/* Feeds one received datagram.  pkt is modified in place (decryption) and must have
 * SST_PROTECT_TAILROOM writable bytes after len.  Never fails loudly: bad packets are counted
 * and dropped. */
SST_API void sst_host_recv(struct sst_host *h, sst_time_t now, const struct sst_addr *from,
                           uint8_t *pkt, size_t len);
/* The same, with the local address the datagram was sent to (NULL: unknown, as sst_host_recv).
 * Negotiation answers (RESPONSE, COOKIE, RESET) leave from it; a channel takes the local address
 * of the FINISH that creates it (responder) or of its first authenticated packet (initiator),
 * and afterwards moves to another only on an authenticated packet sent to that one, so a forged
 * datagram to another of our addresses cannot redirect its replies.  Every packet of a channel
 * leaves from its local address (io.send_from). */
SST_API void sst_host_recv_to(struct sst_host *h, sst_time_t now, const struct sst_addr *from,
                              const struct sst_addr *local, uint8_t *pkt, size_t len);
/* The network reported that `peer` has nothing on its SST port (an ICMP port unreachable for
 * a datagram we sent there, err = SST_ERR_NO_SST).  Channels still negotiating with that peer
 * fail at once with that error, so callers can fall back without waiting for the handshake
 * timeout.  Established channels ignore it: ICMP is unauthenticated (as in QUIC). */
SST_API void sst_host_unreachable(struct sst_host *h, sst_time_t now, const struct sst_addr *peer, int err);
/* The earliest time sst_host_timeout must be called; SST_TIME_NEVER if none. */
SST_API sst_time_t sst_host_deadline(struct sst_host *h);
SST_API void sst_host_timeout(struct sst_host *h, sst_time_t now);

/* The channel to `peer`: an existing one (up or connecting) or a new one that starts negotiating
 * now.  NULL only on resource exhaustion. */
SST_API struct sst_chan *sst_host_connect(struct sst_host *h, sst_time_t now, const struct sst_addr *peer);
/* The existing channel to peer, or NULL. */
SST_API struct sst_chan *sst_host_find(struct sst_host *h, const struct sst_addr *peer);

/* Host-wide counters (for sstctl and tests). */
struct sst_host_stats {
    uint64_t rx_packets, tx_packets, rx_bytes, tx_bytes;
    uint64_t rx_dropped_malformed, rx_dropped_auth, rx_dropped_replay, rx_dropped_unknown;
    uint64_t handshakes_initiated, handshakes_completed, handshakes_failed;
    uint64_t handshakes_resumed;      /* of the completed ones, set up by session resumption */
    uint64_t cookies_sent, resets_sent, resets_received;
    uint64_t nego_rx_bytes_unverified, nego_tx_bytes_unverified; /* amplification accounting */
    unsigned channels;
};
SST_API void sst_host_get_stats(const struct sst_host *h, struct sst_host_stats *out);

#endif
