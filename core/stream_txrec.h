/* Per-packet send records (paper §4.3.4): what each channel packet sequence number carried,
 * so the channel's acked/lost verdicts can be applied to the right stream bytes.
 *
 * Channel sequence numbers are consecutive (paper §4.2.2) and every one gets exactly one
 * verdict, so the records live in a ring indexed by seq & (size - 1), like the channel's own
 * sent-packet ring (recovery.h): adding and finding a record is an index, not a hash.  The ring
 * spans the sequence numbers from the oldest live record to the newest, gaps (packets without
 * a record, e.g. the channel's acks) included; it doubles when that span outgrows it, up to the
 * cap, and is freed when the channel goes idle (sst_txrec_trim).  Nothing is allocated per
 * packet once the ring has reached the channel's window. */
#ifndef SST_STREAM_TXREC_H
#define SST_STREAM_TXREC_H

#include "types.h"

enum sst_txrec_kind {
    SST_TXREC_SEG = 1,      /* Init/Reply/Data segment: off, span, fc charge */
    SST_TXREC_RESET,        /* a Reset that must be resent until acknowledged */
    SST_TXREC_ATTACH,       /* an Attach, resent until acknowledged (paper §4.3.7) */
    SST_TXREC_DETACH,       /* a Detach, likewise */
};

struct sst_txrec {
    uint64_t seq;           /* channel packet sequence number */
    void *stream;           /* owning stream; NULL once the stream is gone */
    uint64_t off;           /* SEG: stream offset */
    uint32_t span;          /* SEG: payload bytes + 1 if it carried the Close */
    uint32_t charged;       /* SEG: bytes charged to flow control */
    uint8_t kind;           /* enum sst_txrec_kind */
    uint8_t pkt_type;       /* SST_PT_INIT / REPLY / DATA / RESET */
    bool borrowed;          /* SEG: charged to the parent's window (Init data, §4.3.6) */
    bool live;              /* the slot holds a record (stream_txrec.c's own) */
};

struct sst_txrec_table {
    struct sst_txrec *ring;          /* `size` slots (a power of two), NULL until the first add */
    size_t size;
    size_t cap;                      /* at most this many consecutive sequence numbers */
    uint64_t base;                   /* no live record below this sequence number */
    uint64_t top;                    /* no live record at or above this one */
    size_t count, high_water;        /* live records; the most there ever were at once */
};

/* The ring's first size; it doubles from here. */
#define SST_TXREC_MIN_RING 64u

void sst_txrec_init(struct sst_txrec_table *t, size_t cap);
void sst_txrec_free_all(struct sst_txrec_table *t);
/* Gives the ring's memory back when no record is in use (an idle channel); it is allocated
 * again on the next packet.  Keeps the cap and the high-water mark. */
void sst_txrec_trim(struct sst_txrec_table *t);
/* A zeroed record for seq (the caller fills it in), valid until the next add.  NULL
 * if seq already has one, if the live records would then span more than `cap` sequence
 * numbers, or if memory is short. */
struct sst_txrec *sst_txrec_add(struct sst_txrec_table *t, uint64_t seq);
/* The live record for seq, or NULL; valid until the next add or take. */
struct sst_txrec *sst_txrec_find(struct sst_txrec_table *t, uint64_t seq);
/* Removes the record for seq and copies it to *out; false if there is none. */
bool sst_txrec_take(struct sst_txrec_table *t, uint64_t seq, struct sst_txrec *out);
/* The live records in sequence order: for (q = t->base; q < t->top; q++) with
 * sst_txrec_find(t, q) — the loop body may take the current record. */
/* Detaches every record of a stream that is going away. */
void sst_txrec_forget_stream(struct sst_txrec_table *t, const void *stream);

#endif
