/* Replay window: a 128-bit mask of recently received sequence numbers (paper §4.2.2, RFC 4303 §3.4.3). */
#include "err.h"
#include "replay.h"

#define WORD_BITS 64
#define WORDS (SST_REPLAY_WINDOW / WORD_BITS)

/* bits[0] bit 0 is `top` itself; bit i (counting across words, bits[0] first) is top - i. */
static bool bit_get(const struct sst_replay *r, uint64_t i)
{
    return (r->bits[i / WORD_BITS] >> (i % WORD_BITS)) & 1u;
}

static void bit_set(struct sst_replay *r, uint64_t i)
{
    r->bits[i / WORD_BITS] |= 1ull << (i % WORD_BITS);
}

/* Moves the window forward by n: every recorded top - i becomes (top + n) - (i + n). */
static void window_shift(struct sst_replay *r, uint64_t n)
{
    if (n >= SST_REPLAY_WINDOW) {
        for (unsigned w = 0; w < WORDS; w++)
            r->bits[w] = 0;
        return;
    }
    unsigned words = (unsigned)(n / WORD_BITS), bits = (unsigned)(n % WORD_BITS);
    for (int w = WORDS - 1; w >= 0; w--) {
        uint64_t v = 0;
        int src = w - (int)words;
        if (src >= 0) {
            v = r->bits[src] << bits;
            /* bits == 0 must not shift by 64 (undefined) */
            if (bits != 0 && src >= 1)
                v |= r->bits[src - 1] >> (WORD_BITS - bits);
        }
        r->bits[w] = v;
    }
}

/* Sequence number 0 is never sent (txseq starts at 1), so it starts out marked as received. */
void sst_replay_init(struct sst_replay *r)
{
    r->top = 0;
    for (unsigned w = 0; w < WORDS; w++)
        r->bits[w] = 0;
    bit_set(r, 0);
}

/* Runs before authentication, so it must not change anything: a forged packet with a huge
 * sequence number would otherwise slide the window and make genuine packets "too old". */
int sst_replay_check(const struct sst_replay *r, uint64_t seq)
{
    if (seq > r->top)
        return SST_OK;
    uint64_t behind = r->top - seq;
    if (behind >= SST_REPLAY_WINDOW)
        return SST_ERR_TOO_OLD;
    return bit_get(r, behind) ? SST_ERR_REPLAY : SST_OK;
}

/* Called only after the packet authenticated.  Committing a number already recorded, or one
 * behind the window, changes nothing (the caller should have checked first). */
void sst_replay_commit(struct sst_replay *r, uint64_t seq)
{
    if (seq > r->top) {
        window_shift(r, seq - r->top);
        r->top = seq;
        bit_set(r, 0);
        return;
    }
    uint64_t behind = r->top - seq;
    if (behind < SST_REPLAY_WINDOW)
        bit_set(r, behind);
}
