/* Reassembly of out-of-order stream segments into a bounded ring, delivered in order. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream_rx.h"

/* Streams are meant to be cheap (paper §2.1): the ring starts at this size and doubles (a
 * full packet takes it to 2 KiB at once).  Small, so a burst of new streams whose first bytes
 * are a service request leaves little freed memory behind once they idle. */
#define RX_INITIAL 256

int sst_rx_init(struct sst_rx *rx, size_t max)
{
    memset(rx, 0, sizeof *rx);
    rx->fin = SST_RX_FIN_UNKNOWN;
    if (max == 0)
        return SST_ERR_INVAL;
    /* The store (ring, range set, marks) is allocated when the first byte arrives (idle
     * streams hold none). */
    rx->max = max;
    return 0;
}

static size_t ring_cap(const struct sst_rx *rx) { return rx->st != NULL ? rx->st->cap : 0; }

/* Grows the ring so that [next, next + need) fits; false if beyond max or out of memory. */
static bool grow(struct sst_rx *rx, uint64_t need)
{
    if (need > rx->max)
        return false;
    if (rx->st == NULL) {
        rx->st = calloc(1, sizeof *rx->st);
        if (rx->st == NULL)
            return false;
        sst_rangeset_init(&rx->st->got);
    }
    size_t cap = rx->st->cap == 0 ? SST_MIN(rx->max, (size_t)RX_INITIAL) : rx->st->cap;
    while (cap < need)
        cap = cap > rx->max / 2 ? rx->max : cap * 2;
    uint8_t *nb = malloc(cap);
    if (nb == NULL)
        return false;
    /* Re-lay [next, next + old cap) at its positions in the new ring. */
    for (size_t done = 0; done < rx->st->cap;) {
        uint64_t o = rx->next + done;
        size_t from = (size_t)(o % rx->st->cap), to = (size_t)(o % cap);
        size_t n = SST_MIN(rx->st->cap - done, SST_MIN(rx->st->cap - from, cap - to));
        memcpy(nb + to, rx->st->buf + from, n);
        done += n;
    }
    free(rx->st->buf);
    rx->st->buf = nb;
    rx->st->cap = cap;
    return true;
}

void sst_rx_free(struct sst_rx *rx)
{
    if (rx->st == NULL)
        return;
    free(rx->st->buf);
    sst_rangeset_free(&rx->st->got);
    free(rx->st->marks);
    free(rx->st);
    rx->st = NULL;
}

void sst_rx_compact(struct sst_rx *rx)
{
    if (rx->st == NULL)
        return;
    /* Nothing buffered: no byte, range or mark beyond next can exist, so the whole store
     * goes. */
    if (rx->ready == rx->next && rx->st->got.n == 0) {
        sst_rx_free(rx);
        return;
    }
    sst_rangeset_compact(&rx->st->got);
    if (rx->st->mhead == rx->st->nmarks) {
        free(rx->st->marks);
        rx->st->marks = NULL;
        rx->st->mhead = rx->st->nmarks = rx->st->capmarks = 0;
    }
}

/* ---- record boundaries (paper §2.3) ------------------------------------------------------ */

/* Index of the first mark >= x in [mhead, nmarks). */
static uint32_t mark_index(const struct sst_rx *rx, uint64_t x)
{
    uint32_t lo = rx->st->mhead, hi = rx->st->nmarks;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rx->st->marks[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Room for one more mark; false when out of memory. */
static bool mark_room(struct sst_rx *rx)
{
    if (rx->st->nmarks < rx->st->capmarks)
        return true;
    if (rx->st->mhead > 0) {
        memmove(rx->st->marks, rx->st->marks + rx->st->mhead, (rx->st->nmarks - rx->st->mhead) * sizeof *rx->st->marks);
        rx->st->nmarks -= rx->st->mhead;
        rx->st->mhead = 0;
        return true;
    }
    uint32_t cap = rx->st->capmarks == 0 ? 8 : rx->st->capmarks * 2;
    uint64_t *nm = realloc(rx->st->marks, cap * sizeof *nm);
    if (nm == NULL)
        return false;
    rx->st->marks = nm;
    rx->st->capmarks = cap;
    return true;
}

/* Records the mark unit at m (room was made); a duplicate is ignored. */
static void mark_add(struct sst_rx *rx, uint64_t m)
{
    uint32_t i = mark_index(rx, m);
    if (i < rx->st->nmarks && rx->st->marks[i] == m)
        return;
    memmove(rx->st->marks + i + 1, rx->st->marks + i, (rx->st->nmarks - i) * sizeof *rx->st->marks);
    rx->st->marks[i] = m;
    rx->st->nmarks++;
}

static uint64_t next_mark(const struct sst_rx *rx)
{
    if (rx->st == NULL)
        return UINT64_MAX;
    return rx->st->mhead < rx->st->nmarks ? rx->st->marks[rx->st->mhead] : UINT64_MAX;
}

static void pop_mark(struct sst_rx *rx)
{
    rx->st->mhead++;
    if (rx->st->mhead == rx->st->nmarks)
        rx->st->mhead = rx->st->nmarks = 0;
    rx->next++;
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
    size_t pos = (size_t)(off % rx->st->cap);
    size_t first = SST_MIN(len, rx->st->cap - pos);
    memcpy(rx->st->buf + pos, data, first);
    memcpy(rx->st->buf, data + first, len - first);
}

int sst_rx_insert(struct sst_rx *rx, uint64_t off, const uint8_t *data, size_t len, bool fin,
                  size_t *fresh)
{
    return sst_rx_insert_seg(rx, off, data, len, false, fin, fresh);
}

int sst_rx_insert_seg(struct sst_rx *rx, uint64_t off, const uint8_t *data, size_t len, bool mark,
                      bool fin, size_t *fresh)
{
    uint64_t dend = off + len;               /* end of the bytes; the mark unit sits there */
    uint64_t end = dend + (mark ? 1 : 0);
    *fresh = 0;
    /* An empty segment without Mark or Close (a window update) carries nothing to place. */
    if (len == 0 && !fin && !mark)
        return 0;
    /* Checks first: nothing changes unless the whole segment is acceptable. */
    if (sst_rx_fin_known(rx) && (end > rx->fin || (fin && end != rx->fin)))
        return SST_ERR_MALFORMED;
    if (fin && !sst_rx_fin_known(rx)) {
        uint64_t highest = rx->st != NULL && rx->st->got.n > 0 ? rx->st->got.hi[rx->st->got.n - 1]
                                                              : rx->ready;
        if (highest > end)
            return SST_ERR_MALFORMED;
    }
    uint64_t lo = SST_MAX(off, rx->ready);
    if (lo < end && end > rx->next + ring_cap(rx) && !grow(rx, end - rx->next))
        return SST_ERR_AGAIN;
    if (lo < end) {
        /* The ring holds [next, end) now, so the store exists. */
        if (!sst_rangeset_can_add(&rx->st->got, lo, end))
            return SST_ERR_AGAIN;
        bool new_mark = mark && dend >= lo;   /* else the mark unit was here already */
        if (new_mark && !mark_room(rx))
            return SST_ERR_AGAIN;
        *fresh = (size_t)sst_rangeset_uncovered(&rx->st->got, lo, end);
        if (lo < dend)
            ring_copy_in(rx, lo, data + (lo - off), (size_t)(dend - lo));
        if (new_mark) {
            rx->st->buf[dend % rx->st->cap] = 0;
            mark_add(rx, dend);
        }
        if (sst_rangeset_add(&rx->st->got, lo, end) != 0)
            return SST_ERR_AGAIN;   /* unreachable: can_add said yes */
        /* Pull contiguous ranges into the ready region. */
        if (rx->st->got.n > 0 && rx->st->got.lo[0] <= rx->ready) {
            rx->ready = SST_MAX(rx->ready, rx->st->got.hi[0]);
            sst_rangeset_drop_below(&rx->st->got, rx->ready);
        }
    }
    if (fin) {
        rx->fin = end;
    }
    return 0;
}

/* Copies up to len bytes from next, stopping before the next mark unit. */
static size_t copy_out(struct sst_rx *rx, uint8_t *buf, size_t len)
{
    uint64_t stop = SST_MIN(rx->ready, next_mark(rx));
    size_t n = (size_t)SST_MIN((uint64_t)len, stop - rx->next);
    if (n == 0)
        return 0;
    size_t pos = (size_t)(rx->next % rx->st->cap);
    size_t first = SST_MIN(n, rx->st->cap - pos);
    if (buf != NULL) {
        memcpy(buf, rx->st->buf + pos, first);
        memcpy(buf + first, rx->st->buf, n - first);
    }
    rx->next += n;
    return n;
}

size_t sst_rx_read(struct sst_rx *rx, uint8_t *buf, size_t len)
{
    size_t copied = 0;
    /* Boundaries are invisible to a plain read: it passes over those before and among the
     * bytes it returns, but leaves one right after its last byte in place, so that a caller
     * reading an exact count (the service request) does not swallow the boundary the next
     * reader (sst_rx_read_msg) must see. */
    while (copied < len && rx->next < rx->ready) {
        while (rx->next < rx->ready && next_mark(rx) == rx->next)
            pop_mark(rx);
        copied += copy_out(rx, buf != NULL ? buf + copied : NULL, len - copied);
    }
    return copied;
}

size_t sst_rx_read_msg(struct sst_rx *rx, uint8_t *buf, size_t len, bool *end)
{
    size_t n = copy_out(rx, buf, len);
    *end = rx->next < rx->ready && next_mark(rx) == rx->next;
    if (*end)
        pop_mark(rx);
    return n;
}
