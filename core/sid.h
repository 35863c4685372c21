/* Stream identifiers (paper §4.3.1, §4.3.3, §4.3.9): 16-bit LSIDs taken from the low bits of a
 * per-direction 64-bit counter, the peer's counter recovered by extrapolation, USIDs built from
 * (counter, per-direction channel nonce), and the quiet period before an LSID is reused. */
#ifndef SST_SID_H
#define SST_SID_H

#include "types.h"

/* LSID 0 is the root stream in both directions (paper §4.3.2); counters start at 1. */
#define SST_LSID_ROOT 0
/* Allocation may skip at most this many quiet LSIDs (each costs a scan of the quiet table; they
 * expire as the channel moves on) ... */
#define SST_SID_MAX_SKIP 16
/* ... and at most this many LSIDs in use (one index lookup each).  After the 16-bit LSIDs wrap,
 * streams that live long -- persistent connections opened in a row -- hold a run of them, which
 * allocation must step over, however long.  The counter then jumps at most this far, well inside
 * the peer's extrapolation window (±2^15 around the highest counter it saw, §4.3.3). */
#define SST_SID_MAX_IN_USE_SKIP 16384
/* Quiet period in packets: the channel's mis-ordering limit (ref impl: 32; paper §4.3.9). */
#define SST_SID_QUIET_PKTS 32
/* Released LSIDs remembered; one packet frees at most a few streams, so few are ever quiet. */
#define SST_SID_QUIET_MAX 256

/* A Unique Stream Identifier: 128 bits, fixed for the stream's lifetime (paper §4.3.1). */
struct sst_usid {
    uint64_t counter;   /* the creator's 64-bit LSID counter value */
    uint64_t nonce;     /* the channel nonce for the creator's direction */
};

struct sst_sid_quiet {
    uint16_t lsid;
    uint64_t tx_seq, rx_seq;   /* channel sequence numbers when the LSID was released */
};

/* Our LSID space on one channel.  The quiet table is allocated on the first release and grows
 * (8, 16, ... SST_SID_QUIET_MAX entries), so an idle channel can give it back. */
struct sst_sid_alloc {
    uint64_t next;                 /* next counter value to try */
    unsigned nquiet, cap;
    struct sst_sid_quiet *quiet;
    uint64_t quiet_evicted;        /* releases forgotten because the table was full */
};

void sst_sid_init(struct sst_sid_alloc *a);
void sst_sid_free(struct sst_sid_alloc *a);
/* Forgets expired quiet entries and gives the table back if none is left. */
void sst_sid_compact(struct sst_sid_alloc *a, uint64_t tx_seq, uint64_t rx_seq);
/* Allocates a counter value whose low 16 bits (the LSID) are neither 0, in use (in_use(arg,
 * lsid) true) nor quiet at channel sequence numbers (tx_seq, rx_seq).  Stores it in *counter.
 * 0, or SST_ERR_LIMIT when more than SST_SID_MAX_SKIP quiet or SST_SID_MAX_IN_USE_SKIP in-use
 * candidates come first (nothing moves then: a later call tries the same ones again). */
SST_MUST_CHECK int sst_sid_alloc(struct sst_sid_alloc *a, bool (*in_use)(void *arg, uint16_t lsid),
                                 void *arg, uint64_t tx_seq, uint64_t rx_seq, uint64_t *counter);
/* Starts the quiet period for lsid at the current channel sequence numbers. */
void sst_sid_release(struct sst_sid_alloc *a, uint16_t lsid, uint64_t tx_seq, uint64_t rx_seq);
/* True if lsid is still quiet at (tx_seq, rx_seq); forgets expired entries. */
bool sst_sid_is_quiet(struct sst_sid_alloc *a, uint16_t lsid, uint64_t tx_seq, uint64_t rx_seq);
/* The 64-bit counter whose low 16 bits are lsid and which is closest to ref (the highest
 * counter seen from the peer), like packet sequence extrapolation (paper §4.3.3). */
uint64_t sst_sid_extrapolate(uint64_t ref, uint16_t lsid);
static inline struct sst_usid sst_sid_usid(uint64_t counter, uint64_t nonce)
{
    struct sst_usid u = { .counter = counter, .nonce = nonce };
    return u;
}
static inline bool sst_usid_eq(const struct sst_usid *a, const struct sst_usid *b)
{
    return a->counter == b->counter && a->nonce == b->nonce;
}

#endif
