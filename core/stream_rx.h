/* Receive-side reassembly for one stream (paper §4.3.4): out-of-order segments into a bounded
 * ring buffer, in-order delivery to the application, and the end-of-stream position. */
#ifndef SST_STREAM_RX_H
#define SST_STREAM_RX_H

#include "stream_range.h"

/* What only a stream with bytes buffered needs: allocated with the ring, freed with it. */
struct sst_rx_store {
    uint8_t *buf;       /* ring of cap bytes; byte at offset o lives at buf[o % cap] */
    size_t cap;         /* grows on demand (streams start small) up to max */
    struct sst_rangeset got;   /* ranges received beyond ready */
    /* Record boundaries (paper §2.3): each occupies one unit of the offset space after the
     * last byte of its record (a zero in the ring).  Offsets >= next of the mark units
     * received, sorted, in [mhead, nmarks); allocated only when the peer sends marks. */
    uint64_t *marks;
    uint32_t mhead, nmarks, capmarks;
};

struct sst_rx {
    struct sst_rx_store *st;   /* NULL while nothing is buffered and none was since compaction */
    size_t max;
    uint64_t next;      /* next offset the application reads */
    uint64_t ready;     /* end of the contiguous bytes received from next */
    uint64_t fin;       /* stream length once a Close flag arrived, else SST_RX_FIN_UNKNOWN */
};

#define SST_RX_FIN_UNKNOWN UINT64_MAX

static inline bool sst_rx_fin_known(const struct sst_rx *rx) { return rx->fin != SST_RX_FIN_UNKNOWN; }

/* Allocates a small ring that may grow to max bytes (> 0).  0 or SST_ERR_NOMEM. */
SST_MUST_CHECK int sst_rx_init(struct sst_rx *rx, size_t max);
void sst_rx_free(struct sst_rx *rx);
/* Gives back the store when nothing is buffered (an idle stream), else what of it is empty. */
void sst_rx_compact(struct sst_rx *rx);
/* The 64-bit stream offset of a 32-bit BSN, by wraparound arithmetic around rx->next (paper
 * §4.3.4).  Offsets that would lie below zero come back as 0 with *old set. */
uint64_t sst_rx_offset32(const struct sst_rx *rx, uint32_t bsn);
/* Stores a segment at offset off; fin marks it as the last one.  Either all of it is taken or
 * none.  Sets *fresh to the bytes not received before (what flow control charges).
 * 0 (duplicates included), SST_ERR_AGAIN when it does not fit the buffer or the range table
 * (the caller does not acknowledge it, so it is retransmitted), SST_ERR_MALFORMED when it
 * contradicts the known end of stream. */
SST_MUST_CHECK int sst_rx_insert(struct sst_rx *rx, uint64_t off, const uint8_t *data, size_t len,
                                 bool fin, size_t *fresh);
/* The same for a segment that may end a record (Mark flag): its len bytes are followed by a
 * mark unit at off + len, and the Close (if fin) comes after that.  *fresh counts units. */
SST_MUST_CHECK int sst_rx_insert_seg(struct sst_rx *rx, uint64_t off, const uint8_t *data, size_t len,
                                     bool mark, bool fin, size_t *fresh);
/* Copies up to len in-order bytes into buf (NULL: discard) and frees their space, passing
 * over record boundaries; returns the bytes copied (rx->next advances by units, marks
 * included: flow control releases that). */
size_t sst_rx_read(struct sst_rx *rx, uint8_t *buf, size_t len);
/* Like sst_rx_read, but stops at the next record boundary: *end is set when the bytes
 * returned end a record (the boundary is consumed with them).  A zero-length record reads as
 * 0 with *end set. */
size_t sst_rx_read_msg(struct sst_rx *rx, uint8_t *buf, size_t len, bool *end);
static inline uint64_t sst_rx_available(const struct sst_rx *rx) { return rx->ready - rx->next; }
/* All bytes up to the Close were read. */
static inline bool sst_rx_eof(const struct sst_rx *rx) { return rx->next == rx->fin; }
/* Every byte up to the Close has arrived (possibly not yet read). */
static inline bool sst_rx_complete(const struct sst_rx *rx) { return rx->ready == rx->fin; }

#endif
