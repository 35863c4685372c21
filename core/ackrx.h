/* Receiver-side acknowledgment tracker: which packets we have received and must acknowledge, and
 * when an acknowledgment is due (paper §4.2.4; ack frequency as RFC 9000 §13.2.1). */
#ifndef SST_ACKRX_H
#define SST_ACKRX_H

#include "types.h"

/* Ranges of received sequence numbers remembered for acknowledgment.  The header carries the
 * range ending at the highest received packet; Ack packets may carry older ranges too so that a
 * run of lost acks does not make the sender declare received packets lost. */
#define SST_ACKRX_RANGES 16

struct sst_ack_range {
    uint64_t lo, hi; /* inclusive */
};

struct sst_ackrx {
    struct sst_ack_range r[SST_ACKRX_RANGES]; /* newest first (r[0].hi is the highest received) */
    unsigned n;
    unsigned unacked_eliciting;   /* ack-eliciting packets received since our last ack */
    sst_time_t ack_deadline;      /* SST_TIME_NEVER when no delayed ack is pending */
    bool immediate;               /* a gap or reordering was seen: ack now */
    sst_time_t max_ack_delay;     /* delayed-ack timer */
    unsigned ack_every;           /* ack at least every N eliciting packets (2) */
};

void sst_ackrx_init(struct sst_ackrx *a, sst_time_t max_ack_delay);
/* Records an authenticated packet.  Sets immediate when seq leaves a gap or fills one. */
void sst_ackrx_on_packet(struct sst_ackrx *a, uint64_t seq, bool ack_eliciting, sst_time_t now);
/* True if an ack must go out now (threshold reached or immediate). */
bool sst_ackrx_ack_due(const struct sst_ackrx *a, sst_time_t now);
/* The range for the channel header: ASN = highest received, AckCt = min(15, run length - 1). */
void sst_ackrx_header_range(const struct sst_ackrx *a, uint64_t *asn, uint8_t *ack_ct);
/* Called when a packet carrying our ack information is sent: clears the pending state. */
void sst_ackrx_on_ack_sent(struct sst_ackrx *a);
/* Copies up to max of the remembered ranges (newest first) for an Ack packet body. */
unsigned sst_ackrx_ranges(const struct sst_ackrx *a, struct sst_ack_range *out, unsigned max);

#endif
