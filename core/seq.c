/* Packet sequence number extrapolation: 64-bit values from the 24 low bits on the wire (paper §4.2.2). */
#include "seq.h"

#define SEQ_SPAN (1ull << SST_SEQ_WIRE_BITS)

/* The candidate ref + d, where d is the 24-bit difference sign-extended into [-2^23, 2^23).  This
 * is the prototype's ((int32)(tsn<<8) - (int32)(rxseq<<8)) >> 8, written without shifting signed
 * values.  At either end of the 64-bit space that candidate may not exist; we then take the
 * nearest value on the other side, which still has the right low bits (the packet will fail the
 * replay check or authentication, so the choice only has to be well defined). */
uint64_t sst_seq_extrapolate(uint64_t ref, uint32_t low24)
{
    uint32_t d = (low24 - (uint32_t)ref) & SST_SEQ_WIRE_MASK;
    if (d < SEQ_SPAN / 2) {
        /* ahead of ref by d */
        if (ref > UINT64_MAX - d)
            return ref + d - SEQ_SPAN;
        return ref + d;
    }
    /* behind ref by SEQ_SPAN - d */
    uint64_t back = SEQ_SPAN - d;
    if (ref < back)
        return ref - back + SEQ_SPAN;
    return ref - back;
}
