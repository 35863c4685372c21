/* Packet sequence numbers: full 64-bit values on each side, low 24 bits on the wire (paper §4.2.2). */
#ifndef SST_SEQ_H
#define SST_SEQ_H

#include "types.h"

#define SST_SEQ_WIRE_BITS 24
#define SST_SEQ_WIRE_MASK 0xffffffu
/* The sender never lets more than this many packets be outstanding (sent, not yet known to be
 * received or lost), so the receiver's extrapolation is unambiguous (paper §4.2.2: < 2^22). */
#define SST_SEQ_MAX_OUTSTANDING (1u << 22)

/* The 64-bit value whose low 24 bits are low24 and which is closest to ref (sign-extended
 * 24-bit delta).  Never returns a value below 0 or above UINT64_MAX: clamps at the ends. */
uint64_t sst_seq_extrapolate(uint64_t ref, uint32_t low24);

#endif
