/* Replay protection: a 128-packet bitmask window over received sequence numbers (paper §4.2.2,
 * like IPsec ESP).  Check before authentication, commit only after it (RFC 4303 §3.4.3). */
#ifndef SST_REPLAY_H
#define SST_REPLAY_H

#include "types.h"

/* The mis-ordering limit (MOL): packets more than this far behind the highest seen are dropped. */
#define SST_REPLAY_WINDOW 128

struct sst_replay {
    uint64_t top;                      /* highest sequence number committed (0: none yet) */
    uint64_t bits[SST_REPLAY_WINDOW / 64]; /* bit i: top - i was received */
};

void sst_replay_init(struct sst_replay *r);
/* 0 if seq may be accepted; SST_ERR_REPLAY (duplicate) or SST_ERR_TOO_OLD. Does not modify r.
 * Sequence 0 counts as already received (txseq starts at 1). */
SST_MUST_CHECK int sst_replay_check(const struct sst_replay *r, uint64_t seq);
/* Records seq as received; call only after the packet authenticated. */
void sst_replay_commit(struct sst_replay *r, uint64_t seq);

#endif
