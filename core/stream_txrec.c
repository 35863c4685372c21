/* Ring of per-packet send records indexed by channel sequence number (stream_txrec.h). */
#include <stdlib.h>
#include <string.h>

#include "stream_txrec.h"

static inline struct sst_txrec *slot(const struct sst_txrec_table *t, uint64_t seq)
{
    return &t->ring[seq & (t->size - 1)];
}

void sst_txrec_init(struct sst_txrec_table *t, size_t cap)
{
    memset(t, 0, sizeof *t);
    t->cap = cap;
}

void sst_txrec_free_all(struct sst_txrec_table *t)
{
    free(t->ring);
    t->ring = NULL;
    t->size = 0;
    t->base = t->top = 0;
    t->count = 0;
}

void sst_txrec_trim(struct sst_txrec_table *t)
{
    if (t->count == 0)
        sst_txrec_free_all(t);
}

/* Moves the live records into a ring of at least `span` slots.  Growth is the only allocation
 * while the channel is busy, and amortised: the ring doubles, so a channel allocates O(log n)
 * times between two idle periods. */
static bool grow(struct sst_txrec_table *t, uint64_t span)
{
    size_t nsize = t->size ? t->size : SST_TXREC_MIN_RING;
    while (nsize < span)
        nsize *= 2;
    struct sst_txrec *nring = calloc(nsize, sizeof *nring);
    if (nring == NULL)
        return false;
    for (uint64_t q = t->base; t->count > 0 && q < t->top; q++) {
        struct sst_txrec *r = slot(t, q);
        if (r->live && r->seq == q)
            nring[q & (nsize - 1)] = *r;
    }
    free(t->ring);
    t->ring = nring;
    t->size = nsize;
    return true;
}

struct sst_txrec *sst_txrec_add(struct sst_txrec_table *t, uint64_t seq)
{
    if (seq == UINT64_MAX)
        return NULL;
    if (t->count == 0)
        t->base = t->top = seq;
    uint64_t lo = SST_MIN(t->base, seq), hi = SST_MAX(t->top, seq + 1);
    if (hi - lo > t->cap)
        return NULL;
    if ((t->ring == NULL || hi - lo > t->size) && !grow(t, hi - lo))
        return NULL;
    struct sst_txrec *r = slot(t, seq);
    if (r->live)        /* within [base, top) and the span fits: it is this seq's record */
        return NULL;
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->live = true;
    t->base = lo;
    t->top = hi;
    t->count++;
    if (t->count > t->high_water)
        t->high_water = t->count;
    return r;
}

struct sst_txrec *sst_txrec_find(struct sst_txrec_table *t, uint64_t seq)
{
    if (t->count == 0 || seq < t->base || seq >= t->top)
        return NULL;
    struct sst_txrec *r = slot(t, seq);
    return r->live && r->seq == seq ? r : NULL;
}

bool sst_txrec_take(struct sst_txrec_table *t, uint64_t seq, struct sst_txrec *out)
{
    struct sst_txrec *r = sst_txrec_find(t, seq);
    if (r == NULL)
        return false;
    *out = *r;
    r->live = false;
    t->count--;
    /* Keep [base, top) tight around the live records so the span measures what is in flight.
     * Records are mostly resolved oldest first, so these loops run about once per take. */
    if (t->count == 0) {
        t->base = t->top = seq + 1;
        return true;
    }
    while (t->base < t->top && !slot(t, t->base)->live)
        t->base++;
    while (t->top > t->base && !slot(t, t->top - 1)->live)
        t->top--;
    return true;
}

void sst_txrec_forget_stream(struct sst_txrec_table *t, const void *stream)
{
    for (uint64_t q = t->base; q < t->top; q++) {
        struct sst_txrec *r = sst_txrec_find(t, q);
        if (r != NULL && r->stream == stream)
            r->stream = NULL;
    }
}
