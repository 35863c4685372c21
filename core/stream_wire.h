/* Stream-layer packet codecs (paper §4.3, Fig. 5 and 6): Init, Reply, Data, Datagram, Reset,
 * Attach and Detach, each after the common 4-byte header (packet.h).  Byte layouts are in
 * docs/protocol-streams.md. */
#ifndef SST_STREAM_WIRE_H
#define SST_STREAM_WIRE_H

#include "packet.h"
#include "sid.h"

/* Flags of Init, Reply and Data (paper Fig. 5). */
#define SST_SF_PUSH 0x4
#define SST_SF_MARK 0x2
#define SST_SF_CLOSE 0x1
/* Datagram fragment flags: first and last fragment of one datagram. */
#define SST_DGF_FIRST 0x2
#define SST_DGF_LAST 0x1
/* Reset: O (orientation) set means the LSID is in the receiver's LSID space (paper §4.3.8). */
#define SST_RSTF_ORIENT 0x1
/* Attach: the attachment slot (0 or 1) and whether a parent USID follows (paper Fig. 6). */
#define SST_ATTF_SLOT 0x1
#define SST_ATTF_INIT 0x2

/* The window byte's top three bits are reserved and must be zero. */
#define SST_WIN_RESERVED 0xe0

#define SST_INIT_HDR_LEN 8      /* prefix, PSID/RSID 16, BSN 16 */
#define SST_DATA_HDR_LEN 8      /* prefix, BSN 32 */
#define SST_DGRAM_HDR_LEN 8     /* prefix, datagram ID 16, fragment index 8, fragment count 8 */
#define SST_RESET_LEN 4
#define SST_DETACH_LEN 4
#define SST_USID_LEN 16
#define SST_ATTACH_LEN (SST_STREAM_HDR_LEN + SST_USID_LEN)
#define SST_ATTACH_INIT_LEN (SST_ATTACH_LEN + SST_USID_LEN)
/* Init and Reply carry a 16-bit BSN: data at offsets beyond this waits for Data packets. */
#define SST_INIT_BSN_MAX 0xffffu
/* The largest stream-layer header, for sizing segments. */
#define SST_STREAM_MAX_HDR 8

/* A decoded stream-layer packet.  Fields not used by a type are zero; data points into the
 * decoded buffer. */
struct sst_spkt {
    uint8_t type;            /* enum sst_pkt_type */
    uint8_t flags;           /* low nibble of byte 2 */
    uint8_t win;             /* window exponent 0..31 */
    uint16_t lsid;
    uint16_t ref_lsid;       /* Init: parent's LSID (PSID); Reply: initiator's LSID (RSID) */
    uint32_t bsn;            /* byte sequence number (16 bits in Init/Reply) */
    uint16_t dg_id;          /* Datagram: per-parent datagram number */
    uint8_t dg_idx, dg_cnt;  /* Datagram: fragment index and count */
    struct sst_usid usid, parent_usid;   /* Attach */
    const uint8_t *data;
    size_t len;
};

/* Header length of a packet type, 0 for types the stream layer does not own. */
size_t sst_spkt_hdr_len(unsigned type);
/* Writes p's header (not its data) into buf; returns the header length, or 0 if cap is too
 * small, the type is not ours or a field does not fit its width (e.g. Init BSN >= 2^16). */
size_t sst_spkt_put_hdr(uint8_t *buf, size_t cap, const struct sst_spkt *p);
/* Header plus p->data; returns the total length or 0 as above. */
size_t sst_spkt_encode(uint8_t *buf, size_t cap, const struct sst_spkt *p);
/* Parses a stream-layer payload: checks lengths first, then decodes.  0, or
 * SST_ERR_MALFORMED for a runt, an unknown or channel-owned type, reserved bits set, flags a
 * type does not define, trailing bytes after a fixed-size packet, an Init/Reply creating
 * LSID 0, or inconsistent datagram fragment fields. */
SST_MUST_CHECK int sst_spkt_decode(struct sst_spkt *p, const uint8_t *buf, size_t len);

#endif
