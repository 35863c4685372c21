/* Per-packet send records (paper §4.3.4): what each channel packet sequence number carried,
 * so the channel's acked/lost verdicts can be applied to the right stream bytes.  Records come
 * from a pool that grows in chunks up to a cap; nothing is allocated per packet once warm. */
#ifndef SST_STREAM_TXREC_H
#define SST_STREAM_TXREC_H

#include <uthash.h>

#include "types.h"

enum sst_txrec_kind {
    SST_TXREC_SEG = 1,      /* Init/Reply/Data segment: off, span, fc charge */
    SST_TXREC_RESET,        /* a Reset that must be resent until acknowledged */
    SST_TXREC_ATTACH,       /* an Attach, resent until acknowledged (paper §4.3.7) */
    SST_TXREC_DETACH,       /* a Detach, likewise */
};

struct sst_txrec {
    uint64_t seq;           /* channel packet sequence number (hash key) */
    void *stream;           /* owning stream; NULL once the stream is gone */
    uint64_t off;           /* SEG: stream offset */
    uint32_t span;          /* SEG: payload bytes + 1 if it carried the Close */
    uint32_t charged;       /* SEG: bytes charged to flow control */
    uint8_t kind;           /* enum sst_txrec_kind */
    uint8_t pkt_type;       /* SST_PT_INIT / REPLY / DATA / RESET */
    bool borrowed;          /* SEG: charged to the parent's window (Init data, §4.3.6) */
    UT_hash_handle hh;
    struct sst_txrec *next_free;
};

struct sst_txrec_chunk;

struct sst_txrec_table {
    struct sst_txrec *by_seq;        /* uthash */
    struct sst_txrec *free_list;
    struct sst_txrec_chunk *chunks;
    size_t count, allocated, cap, high_water;
};

#define SST_TXREC_CHUNK 256

void sst_txrec_init(struct sst_txrec_table *t, size_t cap);
void sst_txrec_free_all(struct sst_txrec_table *t);
/* Gives the pool's memory back when no record is in use (an idle channel); it grows again on
 * the next packet.  Keeps the cap and the high-water mark. */
void sst_txrec_trim(struct sst_txrec_table *t);
/* A zeroed record for seq, inserted; NULL when the pool is at its cap or memory is short. */
struct sst_txrec *sst_txrec_add(struct sst_txrec_table *t, uint64_t seq);
/* The record for seq, removed from the table (caller then releases it); NULL if none. */
struct sst_txrec *sst_txrec_take(struct sst_txrec_table *t, uint64_t seq);
void sst_txrec_release(struct sst_txrec_table *t, struct sst_txrec *r);
/* Detaches every record of a stream that is going away. */
void sst_txrec_forget_stream(struct sst_txrec_table *t, const void *stream);

#endif
