/* Sent-packet table, loss detection and probe timeout (RFC 9002 §6, RACK-style time threshold),
 * persistent congestion, and link status.  SST gives every packet, retransmissions included, a
 * fresh sequence number (paper §4.2.2), so every RTT sample and loss decision is unambiguous. */
#ifndef SST_RECOVERY_H
#define SST_RECOVERY_H

#include "types.h"
#include "cc.h"
#include "delivery.h"
#include "rtt.h"

#define SST_LOSS_PKT_THRESHOLD 3        /* RFC 9002 kPacketThreshold */
#define SST_PERSISTENT_CONGESTION_PTOS 3/* RFC 9002 kPersistentCongestionThreshold */

/* Per-packet record, stored in a ring indexed by sequence number: sequence numbers are
 * consecutive, so no allocation or lookup structure is needed per packet. */
struct sst_sent {
    sst_time_t time_sent;
    uint16_t bytes;     /* wire size */
    uint8_t flags;      /* SST_SENT_* */
    struct sst_delivery_pkt dr; /* delivery-rate snapshot at send time (eliciting packets) */
};
#define SST_SENT_USED     0x01  /* record valid */
#define SST_SENT_ELICITING 0x02 /* ack-eliciting; counts in bytes_in_flight */
#define SST_SENT_ACKED    0x04
#define SST_SENT_LOST     0x08
#define SST_SENT_PROBE    0x40  /* path MTU probe (pmtu.h): its loss is no congestion signal, so
                                 * it neither reduces cwnd nor counts in stat_lost, the delivery
                                 * rate's losses or persistent congestion (RFC 8899 §4.4) */
#define SST_SENT_OWNER    0x80  /* never touched by recovery.c: free for the channel's own use */

enum sst_link_state { SST_LINK_UP = 0, SST_LINK_STALLED = 1, SST_LINK_DOWN = 2 };

/* Callbacks must not call back into sst_recovery_* functions that change state; queue the work
 * (retransmissions) and do it after the call returns. */
struct sst_recovery_cb {
    void *ctx;
    void (*acked)(void *ctx, uint64_t seq);  /* once per packet, in increasing order per range */
    /* Once per packet; never also acked afterwards (a later ack of a packet declared lost only
     * counts stat_spurious).  Also called for non-eliciting packets nobody acked within the
     * retention time, so every sequence number gets exactly one outcome. */
    void (*lost)(void *ctx, uint64_t seq);
};

struct sst_recovery {
    struct sst_sent *ring;      /* capacity `cap` (power of two), grows up to max_outstanding */
    uint32_t cap;
    uint32_t max_outstanding;   /* <= SST_SEQ_MAX_OUTSTANDING */
    uint64_t base;              /* lowest sequence number still tracked */
    uint64_t next;              /* next sequence number to be sent */
    uint64_t largest_acked;     /* 0: none */
    uint64_t bytes_in_flight;
    sst_time_t loss_time;       /* time-threshold loss timer; SST_TIME_NEVER if none */
    sst_time_t last_eliciting_sent;
    sst_time_t last_ack_time;   /* last time any new ack arrived */
    unsigned pto_count;
    sst_time_t max_ack_delay;
    sst_time_t stall_timeout;   /* STALLED after this long without acks for outstanding data */
    sst_time_t down_timeout;    /* DOWN after this long */
    struct sst_rtt rtt;
    struct sst_cc cc;
    struct sst_recovery_cb cb;
    /* statistics */
    uint64_t stat_sent, stat_acked, stat_lost, stat_spurious, stat_pto;
    /* added by recovery.c's owner (extensions, existing fields unchanged) */
    uint64_t scan;              /* lowest sequence number neither acked nor lost (>= base) */
    sst_time_t progress_time;   /* last ack progress, or the first send after an idle period */
    sst_time_t first_rtt_sample;/* when the first RTT sample was taken; SST_TIME_NEVER: none */
    uint8_t link_reported;      /* highest link state whose deadline was already passed */
    uint64_t stat_persistent;   /* persistent congestion events */
    struct sst_delivery dr;     /* delivery-rate sampling (delivery.h), fed to cc on_rate_sample */
};

#define SST_RECOVERY_INITIAL_CAP 32          /* ring slots allocated at init */
#define SST_RECOVERY_STALL_TIMEOUT SST_SEC(2)
#define SST_RECOVERY_DOWN_TIMEOUT SST_SEC(15)
#define SST_RECOVERY_MAX_ACK_DELAY SST_MS(10) /* matches the host's delayed-ack default */
#define SST_RECOVERY_PROBES 2                 /* packets to send on PTO (RFC 9002 §6.2.4) */

SST_MUST_CHECK int sst_recovery_init(struct sst_recovery *r, enum sst_cc_algo algo, uint32_t mss,
                                     sst_time_t now, const struct sst_recovery_cb *cb);
void sst_recovery_free(struct sst_recovery *r);
/* Gives the ring back when no packet is tracked any more (after retiring what is past its
 * retention); the next packet sent allocates it again.  True if it was given back. */
bool sst_recovery_trim(struct sst_recovery *r, sst_time_t now);
/* Next sequence number the channel will assign (starts at 1; 0 counts as sent and received). */
static inline uint64_t sst_recovery_next_seq(const struct sst_recovery *r) { return r->next; }
/* True if a packet of `bytes` that elicits an ack fits in cwnd and in the outstanding limit. */
bool sst_recovery_can_send(const struct sst_recovery *r, uint32_t bytes);
/* Records packet r->next as sent and advances next.  SST_ERR_LIMIT if the outstanding window
 * (extrapolation bound) is full. */
SST_MUST_CHECK int sst_recovery_on_sent(struct sst_recovery *r, sst_time_t now, uint32_t bytes,
                                        bool ack_eliciting);
/* Processes an acknowledged range [lo, hi] (from a header or an Ack packet).  Ranges naming
 * sequence numbers never sent are ignored (SST_ERR_MALFORMED returned, nothing changed). Calls
 * cb.acked for newly acked packets, updates RTT when hi is newly acked and eliciting, then
 * runs loss detection (cb.lost). */
int sst_recovery_on_ack(struct sst_recovery *r, uint64_t lo, uint64_t hi, sst_time_t now);
/* Several ranges from one packet, processed as one acknowledgment: all are checked first (any
 * bad range: SST_ERR_MALFORMED, nothing changed), then marked, then loss detection runs once, so
 * a hole that a later range fills is not declared lost in between. ranges[i][0] = lo, [1] = hi. */
int sst_recovery_on_ack_ranges(struct sst_recovery *r, const uint64_t (*ranges)[2], size_t n,
                               sst_time_t now);
/* The earliest deadline: loss timer or probe timeout, or the next link status change (STALLED,
 * DOWN) while data is outstanding; SST_TIME_NEVER if nothing is outstanding. */
sst_time_t sst_recovery_deadline(const struct sst_recovery *r);
/* Handles an expired deadline.  Returns the number of probe packets the channel should send
 * now (0 if the loss timer or a link status deadline fired, SST_RECOVERY_PROBES for a PTO).
 * Probes are sent even if cwnd is full (RFC 9002 §7.5).  Check sst_recovery_link_state after. */
unsigned sst_recovery_on_timeout(struct sst_recovery *r, sst_time_t now);
/* UP, or STALLED / DOWN when eliciting data has been outstanding without ack progress for the
 * stall time (max(stall_timeout, 3 PTOs)) / down time (max(down_timeout, stall time)). */
enum sst_link_state sst_recovery_link_state(const struct sst_recovery *r, sst_time_t now);
/* The sender had nothing to send although cwnd and pacing allowed it: marks the delivery-rate
 * samples of the data now in flight app-limited, so they do not lower a bandwidth model
 * (delivery.h).  Meant for the channel when its upper layer has nothing to fill. */
static inline void sst_recovery_on_app_limited(struct sst_recovery *r)
{
    sst_delivery_on_app_limited(&r->dr, r->bytes_in_flight);
}
/* The record of a tracked packet (base <= seq < next), e.g. from inside an acked/lost callback. */
static inline struct sst_sent *sst_recovery_record(struct sst_recovery *r, uint64_t seq)
{
    return &r->ring[seq & (r->cap - 1)];
}

#endif
