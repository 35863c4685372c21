/* LSID allocation, peer counter extrapolation and the LSID quiet period (paper §4.3.3, §4.3.9). */
#include <stdlib.h>

#include "err.h"
#include "sid.h"

void sst_sid_init(struct sst_sid_alloc *a)
{
    a->next = 1;
    a->nquiet = a->cap = 0;
    a->quiet = NULL;
    a->quiet_evicted = 0;
}

void sst_sid_free(struct sst_sid_alloc *a)
{
    free(a->quiet);
    a->quiet = NULL;
    a->nquiet = a->cap = 0;
}

void sst_sid_compact(struct sst_sid_alloc *a, uint64_t tx_seq, uint64_t rx_seq)
{
    (void)sst_sid_is_quiet(a, SST_LSID_ROOT, tx_seq, rx_seq);   /* expires old entries */
    if (a->nquiet == 0)
        sst_sid_free(a);
}

/* Room for one more quiet entry; false at the cap or when memory is short. */
static bool reserve(struct sst_sid_alloc *a)
{
    if (a->nquiet < a->cap)
        return true;
    if (a->cap >= SST_SID_QUIET_MAX)
        return false;
    unsigned cap = a->cap == 0 ? 8 : a->cap * 2;
    if (cap > SST_SID_QUIET_MAX)
        cap = SST_SID_QUIET_MAX;
    struct sst_sid_quiet *q = realloc(a->quiet, cap * sizeof *q);
    if (q == NULL)
        return false;
    a->quiet = q;
    a->cap = cap;
    return true;
}

static bool expired(const struct sst_sid_quiet *q, uint64_t tx_seq, uint64_t rx_seq)
{
    /* Both directions must have moved a full mis-ordering limit past the release, so the
     * channel's replay window rejects any packet that still names the old use (§4.3.9). */
    return tx_seq >= q->tx_seq + SST_SID_QUIET_PKTS && rx_seq >= q->rx_seq + SST_SID_QUIET_PKTS;
}

bool sst_sid_is_quiet(struct sst_sid_alloc *a, uint16_t lsid, uint64_t tx_seq, uint64_t rx_seq)
{
    bool quiet = false;
    unsigned i = 0;
    while (i < a->nquiet) {
        if (expired(&a->quiet[i], tx_seq, rx_seq)) {
            a->quiet[i] = a->quiet[--a->nquiet];
            continue;
        }
        if (a->quiet[i].lsid == lsid)
            quiet = true;
        i++;
    }
    return quiet;
}

int sst_sid_alloc(struct sst_sid_alloc *a, bool (*in_use)(void *arg, uint16_t lsid), void *arg,
                  uint64_t tx_seq, uint64_t rx_seq, uint64_t *counter)
{
    unsigned quiet = 0, busy = 0;
    for (uint64_t c = a->next;; c++) {
        uint16_t lsid = (uint16_t)c;
        if (lsid == SST_LSID_ROOT)
            continue;
        if (in_use != NULL && in_use(arg, lsid)) {
            if (++busy > SST_SID_MAX_IN_USE_SKIP)
                return SST_ERR_LIMIT;
            continue;
        }
        if (sst_sid_is_quiet(a, lsid, tx_seq, rx_seq)) {
            if (++quiet > SST_SID_MAX_SKIP)
                return SST_ERR_LIMIT;
            continue;
        }
        a->next = c + 1;
        *counter = c;
        return 0;
    }
}

void sst_sid_release(struct sst_sid_alloc *a, uint16_t lsid, uint64_t tx_seq, uint64_t rx_seq)
{
    if (!reserve(a)) {
        if (a->nquiet == 0)
            return;   /* no memory at all: the LSID is simply not protected */
        /* Forget the oldest release; counted so tests and stats can see it happen. */
        unsigned oldest = 0;
        for (unsigned i = 1; i < a->nquiet; i++)
            if (a->quiet[i].tx_seq < a->quiet[oldest].tx_seq)
                oldest = i;
        a->quiet[oldest] = a->quiet[--a->nquiet];
        a->quiet_evicted++;
    }
    a->quiet[a->nquiet++] = (struct sst_sid_quiet){ .lsid = lsid, .tx_seq = tx_seq, .rx_seq = rx_seq };
}

uint64_t sst_sid_extrapolate(uint64_t ref, uint16_t lsid)
{
    int16_t delta = (int16_t)(uint16_t)(lsid - (uint16_t)ref);
    if (delta < 0 && (uint64_t)(-(int64_t)delta) > ref)
        return (uint64_t)lsid;   /* would go below zero: the lowest value with these bits */
    return ref + (uint64_t)(int64_t)delta;
}
