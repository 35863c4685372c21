/* Channel-layer packet codec: the 8-byte channel header of paper §4.1/§4.2 and the packet kinds
 * the channel layer itself owns.  Wire layout is in docs/protocol.md. */
#ifndef SST_PACKET_H
#define SST_PACKET_H

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

#endif
