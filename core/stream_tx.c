/* Send buffer, segmentation and retransmission queue of one stream (paper §4.3.4). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream_tx.h"

/* Streams start small (paper §2.1: one stream per transaction) and double as needed; see
 * RX_INITIAL. */
#define TX_INITIAL 256

int sst_tx_init(struct sst_tx *tx, size_t max)
{
    memset(tx, 0, sizeof *tx);
    if (max == 0 || max > SST_TX_MAX_BUFFER)
        return SST_ERR_INVAL;
    /* The store (ring, range sets, marks) is allocated by the first write or the first
     * outcome that needs a range (idle streams hold none). */
    tx->max = (uint32_t)max;
    return 0;
}

/* The store, allocated if need be; NULL when memory is short. */
static struct sst_tx_store *store(struct sst_tx *tx)
{
    if (tx->st == NULL) {
        tx->st = calloc(1, sizeof *tx->st);
        if (tx->st != NULL) {
            sst_rangeset_init(&tx->st->acked);
            sst_rangeset_init(&tx->st->lost);
        }
    }
    return tx->st;
}

static size_t ring_cap(const struct sst_tx *tx) { return tx->st != NULL ? tx->st->cap : 0; }

/* Where copies of a redundant stream resume. */
static uint64_t dup_from(const struct sst_tx *tx)
{
    return SST_MAX(tx->st != NULL ? tx->st->dup_next : 0, tx->base);
}

/* The acknowledged ranges beyond base (none without a store). */
static const struct sst_rangeset *acked_set(const struct sst_tx *tx)
{
    static const struct sst_rangeset none;
    return tx->st != NULL ? &tx->st->acked : &none;
}

void sst_tx_free(struct sst_tx *tx)
{
    if (tx->st == NULL)
        return;
    free(tx->st->buf);
    sst_rangeset_free(&tx->st->acked);
    sst_rangeset_free(&tx->st->lost);
    free(tx->st->marks);
    free(tx->st);
    tx->st = NULL;
}

void sst_tx_compact(struct sst_tx *tx)
{
    if (tx->st == NULL)
        return;
    /* Everything written is acknowledged (the Close may still be out, but not lost): no byte,
     * range or mark is left to keep. */
    if (tx->base >= tx->end && tx->st->acked.n == 0 && tx->st->lost.n == 0 &&
        (!tx->redundant || tx->st->dup_next >= tx->sent)) {
        sst_tx_free(tx);
        return;
    }
    sst_rangeset_compact(&tx->st->acked);
    sst_rangeset_compact(&tx->st->lost);
    if (tx->st->mhead == tx->st->nmarks) {
        free(tx->st->marks);
        tx->st->marks = NULL;
        tx->st->mhead = tx->st->nmarks = tx->st->capmarks = 0;
    }
}

size_t sst_tx_space(const struct sst_tx *tx)
{
    if (tx->fin)
        return 0;
    return tx->max - (size_t)(tx->end - tx->base);
}

/* Grows the ring to hold at least need bytes from base; false when out of memory. */
static bool grow(struct sst_tx *tx, size_t need)
{
    if (store(tx) == NULL)
        return false;
    size_t cap = tx->st->cap == 0 ? SST_MIN(tx->max, (size_t)TX_INITIAL) : tx->st->cap;
    while (cap < need)
        cap = cap > tx->max / 2 ? tx->max : cap * 2;
    if (cap == tx->st->cap)
        return true;
    uint8_t *nb = malloc(cap);
    if (nb == NULL)
        return false;
    for (size_t done = 0; done < (size_t)(tx->end - tx->base);) {
        uint64_t o = tx->base + done;
        size_t from = (size_t)(o % tx->st->cap), to = (size_t)(o % cap);
        size_t n = SST_MIN((size_t)(tx->end - tx->base) - done, SST_MIN(tx->st->cap - from, cap - to));
        memcpy(nb + to, tx->st->buf + from, n);
        done += n;
    }
    free(tx->st->buf);
    tx->st->buf = nb;
    tx->st->cap = cap;
    return true;
}

/* Room for one more mark offset; false when out of memory. */
static bool mark_room(struct sst_tx *tx)
{
    if (tx->st->nmarks < tx->st->capmarks)
        return true;
    if (tx->st->mhead > 0) {
        memmove(tx->st->marks, tx->st->marks + tx->st->mhead, (tx->st->nmarks - tx->st->mhead) * sizeof *tx->st->marks);
        tx->st->nmarks -= tx->st->mhead;
        tx->st->mhead = 0;
        return true;
    }
    uint32_t cap = tx->st->capmarks == 0 ? 8 : tx->st->capmarks * 2;
    uint64_t *nm = realloc(tx->st->marks, cap * sizeof *nm);
    if (nm == NULL)
        return false;
    tx->st->marks = nm;
    tx->st->capmarks = cap;
    return true;
}

bool sst_tx_reserve(struct sst_tx *tx, size_t n)
{
    size_t used = (size_t)(tx->end - tx->base);
    if (n > sst_tx_space(tx))
        return false;
    if ((tx->st == NULL || used + n > tx->st->cap) && !grow(tx, used + n))
        return false;
    return mark_room(tx);
}

int sst_tx_mark(struct sst_tx *tx)
{
    if (!sst_tx_reserve(tx, 1))
        return sst_tx_space(tx) == 0 ? SST_ERR_AGAIN : SST_ERR_NOMEM;
    static const uint8_t zero;
    tx->st->marks[tx->st->nmarks++] = tx->end;
    (void)sst_tx_write(tx, &zero, 1);   /* reserved above: always fits */
    return 0;
}

/* The first mark at or after x, or UINT64_MAX. */
static uint64_t mark_from(const struct sst_tx *tx, uint64_t x)
{
    if (tx->st == NULL)
        return UINT64_MAX;
    uint32_t lo = tx->st->mhead, hi = tx->st->nmarks;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tx->st->marks[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < tx->st->nmarks ? tx->st->marks[lo] : UINT64_MAX;
}

size_t sst_tx_write(struct sst_tx *tx, const uint8_t *data, size_t len)
{
    size_t n = SST_MIN(len, sst_tx_space(tx));
    size_t used = (size_t)(tx->end - tx->base);
    if (n > 0 && used + n > ring_cap(tx) && !grow(tx, used + n))
        n = ring_cap(tx) - used;
    if (n == 0)
        return 0;
    size_t pos = (size_t)(tx->end % tx->st->cap);
    size_t first = SST_MIN(n, tx->st->cap - pos);
    memcpy(tx->st->buf + pos, data, first);
    memcpy(tx->st->buf, data + first, n - first);
    tx->end += n;
    return n;
}

void sst_tx_close(struct sst_tx *tx)
{
    tx->fin = true;
}

/* End of the sequence space: the bytes plus the Close if the write side is closed. */
static uint64_t seq_end(const struct sst_tx *tx)
{
    return tx->end + (tx->fin ? 1 : 0);
}

static bool make_seg(const struct sst_tx *tx, uint64_t lo, uint64_t hi, size_t max_len,
                     uint64_t limit, bool retx, struct sst_seg *seg)
{
    /* hi is a sequence-space bound; payload stops at end, the Close is the unit at end. */
    if (lo >= limit)
        return false;
    uint64_t data_hi = SST_MIN(hi, tx->end);
    /* A segment ends at the first record boundary inside it: the mark unit rides as the
     * segment's Mark flag and costs no payload byte. */
    uint64_t m = mark_from(tx, lo);
    bool mark = m < data_hi && m - lo <= max_len;
    if (mark)
        data_hi = m;
    else if (data_hi > lo + max_len)
        data_hi = lo + max_len;
    uint64_t seq_hi = data_hi + (mark ? 1 : 0);
    bool fin = tx->fin && seq_hi == tx->end && hi > tx->end;
    if (data_hi == lo && !fin && !mark)
        return false;
    seg->off = lo;
    seg->len = (size_t)(data_hi - lo);
    seg->mark = mark;
    seg->fin = fin;
    seg->retx = retx;
    seg->copy = false;
    return true;
}

/* The first stretch of [lo, hi) not acknowledged yet, as a segment (retx: sent before). */
static bool unacked_seg(const struct sst_tx *tx, uint64_t lo, uint64_t hi, size_t max_len,
                        uint64_t limit, struct sst_seg *seg)
{
    while (lo < hi) {
        uint64_t skip = sst_rangeset_skip(acked_set(tx), lo);
        if (skip > lo) {
            lo = skip;
            continue;
        }
        uint64_t stop = SST_MIN(hi, sst_rangeset_next_start(acked_set(tx), lo));
        return make_seg(tx, lo, stop, max_len, limit, true, seg);
    }
    return false;
}

bool sst_tx_next(const struct sst_tx *tx, size_t max_len, uint64_t limit, struct sst_seg *seg)
{
    /* Lost ranges first; a range may since have been acknowledged in part (a late ack of the
     * original packet), so skip acknowledged stretches. */
    for (unsigned i = 0; tx->st != NULL && i < tx->st->lost.n; i++) {
        uint64_t lo = SST_MAX(tx->st->lost.lo[i], tx->base);
        if (unacked_seg(tx, lo, tx->st->lost.hi[i], max_len, limit, seg))
            return true;
    }
    if (tx->outstanding >= SST_TX_MAX_OUTSTANDING)
        return false;
    if (tx->sent < seq_end(tx))
        return make_seg(tx, tx->sent, seq_end(tx), max_len, limit, false, seg);
    /* Copies after the originals: they never hold back a first transmission (under a small
     * congestion window the originals go in the first flight), and a copy whose original was
     * acknowledged meanwhile is skipped. */
    if (tx->redundant && unacked_seg(tx, dup_from(tx), tx->sent, max_len, limit, seg)) {
        seg->copy = true;
        return true;
    }
    return false;
}

void sst_tx_commit(struct sst_tx *tx, const struct sst_seg *seg)
{
    uint64_t hi = seg->off + seg->len + (seg->mark ? 1 : 0) + (seg->fin ? 1 : 0);
    if (seg->copy) {
        if (store(tx) != NULL)
            tx->st->dup_next = hi;   /* else the copy may go once more: harmless */
        tx->dup_bytes += seg->len;
    } else if (seg->retx) {
        /* The part of this lost range before the segment was skipped because it had been
         * acknowledged, so the range can be cut from its start up to the segment's end. */
        for (unsigned i = 0; i < tx->st->lost.n; i++) {
            if (seg->off >= tx->st->lost.lo[i] && seg->off < tx->st->lost.hi[i]) {
                sst_rangeset_trim(&tx->st->lost, tx->st->lost.lo[i], hi);
                break;
            }
        }
        tx->retx_bytes += seg->len;
    } else {
        tx->sent = hi;
    }
    tx->outstanding++;
}

void sst_tx_copy(const struct sst_tx *tx, uint64_t off, uint8_t *dst, size_t len)
{
    if (len == 0)
        return;
    size_t pos = (size_t)(off % tx->st->cap);
    size_t first = SST_MIN(len, tx->st->cap - pos);
    memcpy(dst, tx->st->buf + pos, first);
    memcpy(dst + first, tx->st->buf, len - first);
}

uint8_t *sst_tx_ref(const struct sst_tx *tx, uint64_t off, size_t len, size_t before)
{
    if (len == 0)
        return NULL;
    size_t pos = (size_t)(off % tx->st->cap);
    if (pos < before || len > tx->st->cap - pos)
        return NULL;
    return tx->st->buf + pos;
}

/* base moved: forget ranges and marks below it. */
static void advance_base(struct sst_tx *tx)
{
    sst_rangeset_drop_below(&tx->st->acked, tx->base);
    sst_rangeset_drop_below(&tx->st->lost, tx->base);
    while (tx->st->mhead < tx->st->nmarks && tx->st->marks[tx->st->mhead] < tx->base)
        tx->st->mhead++;
    if (tx->st->mhead == tx->st->nmarks)
        tx->st->mhead = tx->st->nmarks = 0;
}

void sst_tx_acked(struct sst_tx *tx, uint64_t off, uint64_t span)
{
    if (tx->outstanding > 0)
        tx->outstanding--;
    if (off + span <= tx->base || span == 0)
        return;
    /* In order with nothing acknowledged beyond base (the usual case): base moves, no range
     * is recorded (and a stream that only sent its Close needs no store). */
    if (off <= tx->base && (tx->st == NULL || tx->st->acked.n == 0)) {
        tx->base = off + span;
        if (tx->st != NULL)
            advance_base(tx);
        return;
    }
    if (store(tx) == NULL)
        return;   /* unrecorded: the bytes stay unacknowledged (memory is short) */
    /* The outstanding bound keeps the set well below capacity; should it still be full, the
     * range is queued to be sent again so a later ack records it (costs bytes, loses none). */
    if (sst_rangeset_add(&tx->st->acked, SST_MAX(off, tx->base), off + span) != 0) {
        sst_rangeset_add_merge(&tx->st->lost, SST_MAX(off, tx->base), off + span);
        return;
    }
    if (tx->st->acked.n > 0 && tx->st->acked.lo[0] <= tx->base) {
        tx->base = tx->st->acked.hi[0];
        advance_base(tx);
    }
}

void sst_tx_lost(struct sst_tx *tx, uint64_t off, uint64_t span)
{
    if (tx->outstanding > 0)
        tx->outstanding--;
    if (off + span <= tx->base || span == 0)
        return;
    if (store(tx) == NULL)
        return;   /* unrecorded: never resent, so never acknowledged (memory is short) */
    sst_rangeset_add_merge(&tx->st->lost, SST_MAX(off, tx->base), off + span);
}

bool sst_tx_pending(const struct sst_tx *tx)
{
    if (tx->sent < seq_end(tx))
        return true;
    if (tx->redundant) {
        uint64_t lo = dup_from(tx);
        if (lo < tx->sent && sst_rangeset_uncovered(acked_set(tx), lo, tx->sent) > 0)
            return true;
    }
    for (unsigned i = 0; tx->st != NULL && i < tx->st->lost.n; i++) {
        uint64_t lo = SST_MAX(tx->st->lost.lo[i], tx->base);
        if (lo < tx->st->lost.hi[i] && sst_rangeset_uncovered(&tx->st->acked, lo, tx->st->lost.hi[i]) > 0)
            return true;
    }
    return false;
}
