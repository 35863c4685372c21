/* Send-side buffering for one stream (paper §4.3.4): bytes held until acknowledged, new data
 * cut into segments of whatever size the channel allows now, and lost ranges queued to be
 * re-segmented (so a shrunken payload limit re-fragments them) and sent again. */
#ifndef SST_STREAM_TX_H
#define SST_STREAM_TX_H

#include "stream_range.h"

/* Offsets live in a "sequence space" where the Close occupies one unit after the last byte,
 * like TCP's FIN, so its loss and acknowledgment are tracked like data. */
/* What only a stream with bytes or outcomes to keep needs: allocated on demand, freed by
 * compaction once everything is acknowledged. */
struct sst_tx_store {
    uint8_t *buf;        /* ring of cap bytes holding [base, end) */
    size_t cap;          /* grows on demand up to max */
    struct sst_rangeset acked;   /* acknowledged ranges beyond base */
    struct sst_rangeset lost;    /* ranges to send again */
    /* Record boundaries (paper §2.3): a mark is one unit of sequence space after the last byte
     * of its record (a zero byte in the ring, never sent as payload).  Offsets of the marks
     * not yet acknowledged, increasing, in [mhead, nmarks). */
    uint64_t *marks;
    uint32_t mhead, nmarks, capmarks;
    /* Redundant streams: copies are sent up to here (below base when there is no store). */
    uint64_t dup_next;
};

struct sst_tx {
    struct sst_tx_store *st;     /* NULL when there is nothing to keep (idle) */
    uint64_t base;       /* lowest unacknowledged offset */
    uint64_t end;        /* end of the bytes written */
    uint64_t sent;       /* first offset never sent */
    uint64_t retx_bytes;         /* statistics: bytes sent again after a loss */
    uint64_t dup_bytes;          /* statistics: bytes sent as redundant copies */
    uint32_t max;                /* at most SST_TX_MAX_BUFFER */
    unsigned outstanding : 30;   /* segments in flight */
    unsigned fin : 1;            /* the write side is closed: the Close sits at offset end */
    /* Proactive redundancy (sst_stream_set_redundant): every byte sent is sent once more, the
     * copies trailing the originals; [store's dup_next, sent) still needs its copy. */
    unsigned redundant : 1;
};

/* The largest send buffer: 4 GiB - 1 (the receive window is at most 2 GiB anyway). */
#define SST_TX_MAX_BUFFER UINT32_MAX

/* A segment picked for sending: payload [off, off+len) and the Close if fin. */
struct sst_seg {
    uint64_t off;
    size_t len;
    bool mark;           /* the unit at off + len is a record boundary (Mark flag) */
    bool fin;
    bool retx;           /* bytes sent before (a loss or a copy): they need no fresh credit */
    bool copy;           /* the redundant copy of bytes whose original was just sent */
};

/* Segments a stream may have in flight.  The send buffer bounds this anyway; should the
 * acknowledged-range set overflow, ranges are re-sent rather than lost (sst_tx_acked). */
#define SST_TX_MAX_OUTSTANDING 4096

/* A small ring that may grow to max bytes (1 .. SST_TX_MAX_BUFFER).  0 or SST_ERR_INVAL. */
SST_MUST_CHECK int sst_tx_init(struct sst_tx *tx, size_t max);
void sst_tx_free(struct sst_tx *tx);
/* Gives back the store when nothing is unacknowledged (an idle stream), else what of it is
 * empty. */
void sst_tx_compact(struct sst_tx *tx);
/* Buffers up to len bytes; returns how many fit (0 when full or closed). */
size_t sst_tx_write(struct sst_tx *tx, const uint8_t *data, size_t len);
size_t sst_tx_space(const struct sst_tx *tx);
/* Ends a record: a mark unit after the bytes written so far.  0, SST_ERR_AGAIN (no room) or
 * SST_ERR_NOMEM. */
SST_MUST_CHECK int sst_tx_mark(struct sst_tx *tx);
/* Makes room for n more units in the ring and for one more mark now (so a following write of
 * n - 1 bytes and a mark fit whole); false if beyond the buffer's limit or out of memory. */
bool sst_tx_reserve(struct sst_tx *tx, size_t n);
/* Closes the write side: the Close follows the last byte written. */
void sst_tx_close(struct sst_tx *tx);
/* Picks the next segment: lost ranges first (skipping parts acknowledged since), then new data,
 * then on a redundant stream the copy of bytes sent once and not yet acknowledged.
 * At most max_len payload bytes, starting below limit (Init/Reply carry a 16-bit BSN).
 * Returns false if nothing can be sent.  Does not change state: see sst_tx_commit. */
bool sst_tx_next(const struct sst_tx *tx, size_t max_len, uint64_t limit, struct sst_seg *seg);
void sst_tx_commit(struct sst_tx *tx, const struct sst_seg *seg);
/* Copies the payload bytes [off, off+len) out of the ring. */
void sst_tx_copy(const struct sst_tx *tx, uint64_t off, uint8_t *dst, size_t len);
/* Where the bytes [off, off+len) lie in the ring when they are in one piece with at least
 * `before` ring bytes ahead of them (memory a caller may borrow, sst_chan_fill_tail); NULL when
 * the range wraps around the ring's end or starts within `before` bytes of its start (the
 * caller copies those with sst_tx_copy: a packet or so per ring turn). */
uint8_t *sst_tx_ref(const struct sst_tx *tx, uint64_t off, size_t len, size_t before);
/* Outcome of a segment (sequence-space length: len + mark + fin). */
void sst_tx_acked(struct sst_tx *tx, uint64_t off, uint64_t span);
void sst_tx_lost(struct sst_tx *tx, uint64_t off, uint64_t span);
/* Something is waiting to be sent (new bytes, a Close, or lost ranges). */
bool sst_tx_pending(const struct sst_tx *tx);
/* Everything written, and the Close, has been acknowledged. */
static inline bool sst_tx_done(const struct sst_tx *tx) { return tx->fin && tx->base == tx->end + 1; }

#endif
