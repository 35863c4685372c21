/* A channel (paper §4.2): sequencing, acknowledgment, protection and congestion control for all
 * packets between two hosts.  The stream layer sits above it through sst_chan_upper: the channel
 * asks it for payloads when congestion control allows, tells it which packet sequence numbers
 * were acknowledged or lost, and hands it authenticated payloads. */
#ifndef SST_CHANNEL_H
#define SST_CHANNEL_H

#include "types.h"
#include "host.h"
#include "recovery.h"

enum sst_chan_state {
    SST_CHAN_CONNECTING = 0,   /* initiator: negotiating */
    SST_CHAN_ESTABLISHED,      /* keys in place; data flows */
    SST_CHAN_CLOSING,          /* graceful close sent, waiting for its ack */
    SST_CHAN_CLOSED,           /* dead; freed by the host after events are delivered */
};

/* The layer above the channel (the stream layer in core-2, or a test harness). */
struct sst_chan_upper {
    /* Writes one payload for packet `seq` into buf (at most cap bytes).  The payload starts with
     * the 4-byte stream header (packet.h).  Returns its length, or 0 if nothing is waiting. */
    size_t (*fill)(void *ctx, struct sst_chan *ch, uint64_t seq, uint8_t *buf, size_t cap);
    /* (fill may leave the payload's last bytes where they are: see sst_chan_fill_tail.) */
    void (*acked)(void *ctx, struct sst_chan *ch, uint64_t seq);
    void (*lost)(void *ctx, struct sst_chan *ch, uint64_t seq);
    /* An authenticated, new payload of a stream-layer type.  Return true to acknowledge it,
     * false if it could not be buffered (it will be retransmitted; paper §4.3.4). */
    bool (*recv)(void *ctx, struct sst_chan *ch, uint64_t seq, const uint8_t *payload, size_t len);
};

SST_API void sst_chan_set_upper(struct sst_chan *ch, const struct sst_chan_upper *up, void *ctx);
/* Called from inside fill(): the payload's last len bytes are not in buf but at src (a stream's
 * send ring), and fill's return value counts them; buf holds the bytes before them (the stream
 * header, at most SST_PROTECT_GATHER_HEAD).  The packet is then sealed from src straight into
 * the datagram (sst_protect_seal_gather), one copy of the payload fewer.  The
 * SST_PROTECT_GATHER_HEAD bytes before src must be the caller's memory too: sealing borrows
 * them and puts them back.  src must stay valid and unchanged until fill() has returned and the
 * channel has sealed the packet (it does so before any other callback). */
void sst_chan_fill_tail(struct sst_chan *ch, uint8_t *src, size_t len);
SST_API void *sst_chan_upper_ctx(const struct sst_chan *ch);
/* The upper layer has something to send: transmit what cwnd and pacing allow now. */
SST_API void sst_chan_wake(struct sst_chan *ch, sst_time_t now);
/* Called by the upper layer from inside its recv(): the flush that follows this packet (what
 * its acks freed, a due ack) is left to the upper layer, which must call sst_chan_wake before
 * it returns control to whoever fed the packet.  The stream layer does this so that what its
 * application answers from the packet's callbacks shares a packet with the ack. */
SST_API void sst_chan_defer_flush(struct sst_chan *ch);
/* Graceful close: outstanding data is still delivered; DOWN(err 0) follows. */
SST_API void sst_chan_close(struct sst_chan *ch, sst_time_t now);
/* Sends a ping now (keepalive / RTT probe); its ack updates the RTT estimate.  Returns the
 * ping's packet sequence number (0 if nothing was sent: channel not established). */
SST_API uint64_t sst_chan_ping(struct sst_chan *ch, sst_time_t now);
/* True once the peer has acknowledged packet seq or a later one (the highest acknowledged
 * sequence number has reached seq): an RTT probe's answer, told apart from any other packet. */
SST_API bool sst_chan_acked_through(const struct sst_chan *ch, uint64_t seq);

SST_API enum sst_chan_state sst_chan_state(const struct sst_chan *ch);
SST_API const struct sst_addr *sst_chan_peer(const struct sst_chan *ch);
/* This host's address the peer sends to (and our packets leave from), port included; NULL
 * while unknown: the driver does not report local addresses (sst_host_recv), or an initiator
 * has not yet received an authenticated packet. */
SST_API const struct sst_addr *sst_chan_local(const struct sst_chan *ch);
SST_API struct sst_host *sst_chan_host(const struct sst_chan *ch);
/* The pseudorandom nonce unique to this channel and one direction of flow that, with a 64-bit
 * LSID counter, forms a stream's USID (paper §4.3.3).  ours: the direction we send in.  Both
 * hosts compute the same value for the same direction.  0 before the channel is up. */
SST_API uint64_t sst_chan_usid_nonce(const struct sst_chan *ch, bool ours);
/* Largest payload (after the channel header, before the trailer) a packet may carry now. */
SST_API size_t sst_chan_max_payload(const struct sst_chan *ch);

struct sst_chan_stats {
    enum sst_chan_state state;
    enum sst_link_state link;
    enum sst_security security;
    enum sst_aead aead;
    bool initiator;
    uint8_t local_id, remote_id;
    uint8_t peer_key[32];
    sst_time_t srtt, rttvar, min_rtt;
    uint64_t cwnd, ssthresh, bytes_in_flight;
    uint64_t tx_packets, rx_packets, tx_bytes, rx_bytes;
    uint64_t lost_packets, pto_count_total, acks_sent;
    sst_time_t established_at;
    const char *cc_name;
    /* path MTU discovery (pmtu.h): datagram size in use, enum sst_pmtu_state, counters */
    uint16_t plpmtu;
    uint8_t pmtu_state;
    uint64_t pmtu_probes_sent, pmtu_probes_lost, pmtu_blackholes;
    /* congestion control: window reductions (one per recovery period), and the cwnd at which
     * HyStart++ (RFC 9406) ended the first slow start without loss (0: it did not) */
    uint64_t congestion_events, hystart_exit_cwnd;
    /* the pacing rate a model-based algorithm set (BBR, bytes/s); 0: paced from cwnd / srtt */
    uint64_t pacing_rate;
};
SST_API void sst_chan_get_stats(const struct sst_chan *ch, struct sst_chan_stats *out);
/* Gives back per-packet state while nothing is in flight (loss recovery's ring) and the
 * precomputed AES-GCM states; called by the stream layer once a channel has sent nothing of its
 * own for a while.  True if given back. */
bool sst_chan_compact(struct sst_chan *ch, sst_time_t now);
/* Heap bytes the channel holds: its structure, recovery's ring and the AES-GCM states (the
 * negotiation's records belong to the host).  For memory tests and statistics. */
size_t sst_chan_heap_bytes(const struct sst_chan *ch);
/* The highest packet sequence number sent on ch, and the highest authenticated one received
 * from the peer (0: none yet): every packet counts, a bare acknowledgment or a ping included.
 * The stream layer's LSID quiet period runs on these (paper §4.3.9: the replay window, which
 * keeps an LSID's old packets from its new use, works on every packet's sequence number). */
uint64_t sst_chan_seq_sent(const struct sst_chan *ch);
uint64_t sst_chan_seq_received(const struct sst_chan *ch);

#endif
