/* Channel-layer packet codec: the 8-byte channel header of paper §4.1/§4.2 and the packet kinds
 * the channel layer itself owns.  Wire layout is in docs/protocol-channel.md. */
#ifndef SST_PACKET_H
#define SST_PACKET_H

#include "ackrx.h"
#include "types.h"

#define SST_CHAN_HDR_LEN 8
/* Channel ID 0 is reserved for the negotiation protocol (paper §4.2.1). */
#define SST_CHAN_ID_NEGOTIATION 0
#define SST_ACKCT_MAX 15

/* Channel header: byte 0 receiver's channel ID, bytes 1-3 low 24 bits of the packet sequence
 * number (TSN), byte 4 high nibble reserved (must be 0), low nibble AckCt, bytes 5-7 low 24 bits
 * of the acknowledged sequence number (ASN).  Acknowledges [ASN-AckCt, ASN]. */
struct sst_chan_hdr {
    uint8_t chan_id;
    uint32_t tsn24;
    uint8_t ack_ct;
    uint32_t asn24;
};

/* ack_ct above SST_ACKCT_MAX is sent as SST_ACKCT_MAX (acknowledging less is always safe);
 * tsn24 and asn24 are masked to 24 bits. */
void sst_chan_hdr_encode(uint8_t out[SST_CHAN_HDR_LEN], const struct sst_chan_hdr *h);
/* 0, or SST_ERR_MALFORMED for a runt or a non-zero reserved nibble. */
SST_MUST_CHECK int sst_chan_hdr_decode(struct sst_chan_hdr *h, const uint8_t *pkt, size_t len);

/* Every channel payload starts with the 4-byte stream-layer header prefix (paper Fig. 5/6):
 * LSID (16), type (high nibble) and flags (low nibble), window byte.  Types 1-4 and 6-8 belong to
 * the stream layer (core-2); the channel layer owns Ack (5, paper §4.3.4 "separate Ack packet")
 * and Control (9, our extension: ping, close, padding/PMTU probe). */
#define SST_STREAM_HDR_LEN 4
enum sst_pkt_type {
    SST_PT_INIT = 1,
    SST_PT_REPLY = 2,
    SST_PT_DATA = 3,
    SST_PT_DATAGRAM = 4,
    SST_PT_ACK = 5,
    SST_PT_RESET = 6,
    SST_PT_ATTACH = 7,
    SST_PT_DETACH = 8,
    SST_PT_CONTROL = 9,
};
static inline unsigned sst_pkt_type(const uint8_t *payload) { return payload[2] >> 4; }
/* Ack packets elicit no ack; every other type does. */
static inline bool sst_pkt_ack_eliciting(unsigned type) { return type != SST_PT_ACK; }

/* Ack packet (type 5) body, after the 4-byte stream header prefix: older acknowledged ranges that
 * the channel header's single (ASN, AckCt) range cannot carry (docs/protocol-channel.md).
 *   byte 0       N, the number of ranges (0..SST_ACK_BODY_MAX_RANGES)
 *   N times:     HI (24 bits, low bits of the range's highest sequence number),
 *                LEN (16 bits, the range holds LEN+1 packets: [HI-LEN, HI])
 * Ranges are newest first, disjoint and not adjacent (at least one missing number between two).
 * The body is exactly 1 + 5*N bytes. */
#define SST_ACK_BODY_MAX_RANGES SST_ACKRX_RANGES
#define SST_ACK_RANGE_WIRE_LEN 5
#define SST_ACK_RANGE_MAX_LEN 65536u /* packets in one encoded range */

/* Writes the body for ranges[0..n) into out (cap bytes) and returns its length; 0 if cap < 1.
 * Ranges are encoded newest first and encoding stops (the rest are left out, which only
 * acknowledges less) at the first range that does not fit in cap, is not below and non-adjacent
 * to the previous one, contains 0, lies more than SST_SEQ_MAX_OUTSTANDING below ranges[0].hi
 * (the decoder could not extrapolate it), or after SST_ACK_BODY_MAX_RANGES ranges.  A range longer
 * than SST_ACK_RANGE_MAX_LEN is cut to its newest SST_ACK_RANGE_MAX_LEN packets. */
size_t sst_ack_body_encode(uint8_t *out, size_t cap, const struct sst_ack_range *ranges, unsigned n);
/* Parses an Ack body.  ref is an upper bound on every acknowledged number: the packet's header
 * ASN after extrapolation (the sender's ackrx keeps every range within SST_SEQ_MAX_OUTSTANDING
 * of it, so 24 bits suffice).  HI values are extrapolated against ref.  Validates all N ranges,
 * stores the newest min(N, max) in out and returns that count; or SST_ERR_MALFORMED if the length
 * is not 1 + 5*N, N > SST_ACK_BODY_MAX_RANGES, a range goes above ref or down to 0, ranges are
 * not newest first, disjoint and non-adjacent, or one lies more than SST_SEQ_MAX_OUTSTANDING
 * below the first.  Every body the encoder writes decodes to the same ranges when ref is at or
 * above ranges[0].hi and less than 2^23 - SST_SEQ_MAX_OUTSTANDING above it; every accepted body
 * re-encodes to the same bytes. */
SST_MUST_CHECK int sst_ack_body_decode(const uint8_t *body, size_t len, uint64_t ref,
                                       struct sst_ack_range *out, unsigned max);

#endif
