/* A bounded, sorted set of disjoint half-open 64-bit ranges [lo, hi): the bookkeeping behind
 * reassembly (bytes received) and retransmission (bytes acked, bytes to resend). */
#ifndef SST_STREAM_RANGE_H
#define SST_STREAM_RANGE_H

#include "types.h"

/* Capacity is bounded so a stream's bookkeeping stays small; callers bound the number of
 * outstanding segments below this so the sets cannot overflow in normal operation.  Storage
 * is allocated on first use and grows (4, 16, 64, 128 ranges), so an empty set costs no heap
 * (idle streams, paper §2.1); it is never allocated per packet once grown. */
#define SST_RANGESET_MAX 128

struct sst_rangeset {
    unsigned n, cap;
    uint64_t *lo;        /* cap entries each; lo and hi share one allocation */
    uint64_t *hi;
};

void sst_rangeset_init(struct sst_rangeset *rs);
void sst_rangeset_free(struct sst_rangeset *rs);
/* Gives the storage back if the set is empty. */
void sst_rangeset_compact(struct sst_rangeset *rs);
/* Adds [lo, hi), merging with overlapping or adjacent ranges.  0, or SST_ERR_LIMIT (set
 * unchanged) when a new disjoint range would exceed the capacity (or memory is short). */
SST_MUST_CHECK int sst_rangeset_add(struct sst_rangeset *rs, uint64_t lo, uint64_t hi);
/* Would add(lo, hi) succeed? */
bool sst_rangeset_can_add(const struct sst_rangeset *rs, uint64_t lo, uint64_t hi);
/* Like add, but on overflow coalesces the two closest neighbours (over-approximating the set).
 * Only for sets where covering extra values is safe (the retransmit queue). */
void sst_rangeset_add_merge(struct sst_rangeset *rs, uint64_t lo, uint64_t hi);
/* Removes every value below x. */
void sst_rangeset_drop_below(struct sst_rangeset *rs, uint64_t x);
/* Removes [lo, hi) when that only trims ranges (lo is a range start or hi a range end);
 * general removal is never needed by the stream layer. */
void sst_rangeset_trim(struct sst_rangeset *rs, uint64_t lo, uint64_t hi);
/* If x lies inside a range, that range's end; otherwise x. */
uint64_t sst_rangeset_skip(const struct sst_rangeset *rs, uint64_t x);
/* The start of the first range that begins after x, or UINT64_MAX. */
uint64_t sst_rangeset_next_start(const struct sst_rangeset *rs, uint64_t x);
/* How many values of [lo, hi) are not in the set. */
uint64_t sst_rangeset_uncovered(const struct sst_rangeset *rs, uint64_t lo, uint64_t hi);
static inline bool sst_rangeset_empty(const struct sst_rangeset *rs) { return rs->n == 0; }

#endif
