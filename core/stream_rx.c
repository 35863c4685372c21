/* Reassembly of out-of-order stream segments into a bounded ring, delivered in order. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream_rx.h"

/* Streams are meant to be cheap (paper §2.1): the ring starts at this size and doubles. */
#define RX_INITIAL 2048

int sst_rx_init(struct sst_rx *rx, size_t max)
{
    memset(rx, 0, sizeof *rx);
    if (max == 0)
        return SST_ERR_INVAL;
    /* The ring is allocated when the first byte arrives (idle streams hold none). */
    rx->max = max;
    sst_rangeset_init(&rx->got);
    return 0;
}

/* Grows the ring so that [next, next + need) fits; false if beyond max or out of memory. */
static bool grow(struct sst_rx *rx, uint64_t need)
{
    if (need > rx->max)
        return false;
    size_t cap = rx->cap == 0 ? SST_MIN(rx->max, (size_t)RX_INITIAL) : rx->cap;
    while (cap < need)
        cap = cap > rx->max / 2 ? rx->max : cap * 2;
    uint8_t *nb = malloc(cap);
    if (nb == NULL)
        return false;
    /* Re-lay [next, next + old cap) at its positions in the new ring. */
    for (size_t done = 0; done < rx->cap;) {
        uint64_t o = rx->next + done;
        size_t from = (size_t)(o % rx->cap), to = (size_t)(o % cap);
        size_t n = SST_MIN(rx->cap - done, SST_MIN(rx->cap - from, cap - to));
        memcpy(nb + to, rx->buf + from, n);
        done += n;
    }
    free(rx->buf);
    rx->buf = nb;
    rx->cap = cap;
    return true;
}

void sst_rx_free(struct sst_rx *rx)
{
    free(rx->buf);
    rx->buf = NULL;
    rx->cap = 0;
    sst_rangeset_free(&rx->got);
}

void sst_rx_compact(struct sst_rx *rx)
{
    sst_rangeset_compact(&rx->got);
    if (rx->ready == rx->next && rx->got.n == 0) {
        free(rx->buf);
        rx->buf = NULL;
        rx->cap = 0;
    }
}

uint64_t sst_rx_offset32(const struct sst_rx *rx, uint32_t bsn)
{
    int32_t delta = (int32_t)(bsn - (uint32_t)rx->next);
    if (delta < 0 && (uint64_t)(-(int64_t)delta) > rx->next)
        return 0;
    return rx->next + (uint64_t)(int64_t)delta;
}

static void ring_copy_in(struct sst_rx *rx, uint64_t off, const uint8_t *data, size_t len)
{
    size_t pos = (size_t)(off % rx->cap);
    size_t first = SST_MIN(len, rx->cap - pos);
    memcpy(rx->buf + pos, data, first);
    memcpy(rx->buf, data + first, len - first);
}

int sst_rx_insert(struct sst_rx *rx, uint64_t off, const uint8_t *data, size_t len, bool fin,
                  size_t *fresh)
{
    uint64_t end = off + len;
    *fresh = 0;
    /* An empty segment without Close (a window update) carries nothing to place. */
    if (len == 0 && !fin)
        return 0;
    /* Checks first: nothing changes unless the whole segment is acceptable. */
    if (rx->fin_known && (end > rx->fin || (fin && end != rx->fin)))
        return SST_ERR_MALFORMED;
    if (fin && !rx->fin_known) {
        uint64_t highest = rx->got.n > 0 ? rx->got.hi[rx->got.n - 1] : rx->ready;
        if (highest > end)
            return SST_ERR_MALFORMED;
    }
    uint64_t lo = SST_MAX(off, rx->ready);
    if (lo < end && end > rx->next + rx->cap && !grow(rx, end - rx->next))
        return SST_ERR_AGAIN;
    if (lo < end) {
        if (!sst_rangeset_can_add(&rx->got, lo, end))
            return SST_ERR_AGAIN;
        *fresh = (size_t)sst_rangeset_uncovered(&rx->got, lo, end);
        ring_copy_in(rx, lo, data + (lo - off), (size_t)(end - lo));
        if (sst_rangeset_add(&rx->got, lo, end) != 0)
            return SST_ERR_AGAIN;   /* unreachable: can_add said yes */
        /* Pull contiguous ranges into the ready region. */
        if (rx->got.n > 0 && rx->got.lo[0] <= rx->ready) {
            rx->ready = SST_MAX(rx->ready, rx->got.hi[0]);
            sst_rangeset_drop_below(&rx->got, rx->ready);
        }
    }
    if (fin) {
        rx->fin_known = true;
        rx->fin = end;
    }
    return 0;
}

size_t sst_rx_read(struct sst_rx *rx, uint8_t *buf, size_t len)
{
    size_t n = (size_t)SST_MIN((uint64_t)len, rx->ready - rx->next);
    if (n == 0)
        return 0;
    size_t pos = (size_t)(rx->next % rx->cap);
    size_t first = SST_MIN(n, rx->cap - pos);
    if (buf != NULL) {
        memcpy(buf, rx->buf + pos, first);
        memcpy(buf + first, rx->buf, n - first);
    }
    rx->next += n;
    return n;
}
