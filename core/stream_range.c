/* A bounded, sorted set of disjoint half-open ranges used by reassembly and retransmission. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream_range.h"

void sst_rangeset_init(struct sst_rangeset *rs)
{
    rs->n = rs->cap = 0;
    rs->lo = rs->hi = NULL;
}

void sst_rangeset_free(struct sst_rangeset *rs)
{
    free(rs->lo);
    sst_rangeset_init(rs);
}

void sst_rangeset_compact(struct sst_rangeset *rs)
{
    if (rs->n == 0)
        sst_rangeset_free(rs);
}

/* Room for one more range; false at the capacity or when memory is short. */
static bool reserve(struct sst_rangeset *rs)
{
    if (rs->n < rs->cap)
        return true;
    if (rs->cap >= SST_RANGESET_MAX)
        return false;
    unsigned cap = rs->cap == 0 ? 4 : SST_MIN(rs->cap * 4, (unsigned)SST_RANGESET_MAX);
    uint64_t *m = malloc(2 * (size_t)cap * sizeof *m);
    if (m == NULL)
        return false;
    if (rs->n > 0) {
        memcpy(m, rs->lo, rs->n * sizeof *m);
        memcpy(m + cap, rs->hi, rs->n * sizeof *m);
    }
    free(rs->lo);
    rs->lo = m;
    rs->hi = m + cap;
    rs->cap = cap;
    return true;
}

static void remove_at(struct sst_rangeset *rs, unsigned i, unsigned count)
{
    memmove(&rs->lo[i], &rs->lo[i + count], (rs->n - i - count) * sizeof rs->lo[0]);
    memmove(&rs->hi[i], &rs->hi[i + count], (rs->n - i - count) * sizeof rs->hi[0]);
    rs->n -= count;
}

int sst_rangeset_add(struct sst_rangeset *rs, uint64_t lo, uint64_t hi)
{
    if (lo >= hi)
        return 0;
    /* First range whose end reaches lo (adjacent ranges merge too). */
    unsigned i = 0;
    while (i < rs->n && rs->hi[i] < lo)
        i++;
    /* Ranges i..j-1 overlap or touch [lo, hi). */
    unsigned j = i;
    while (j < rs->n && rs->lo[j] <= hi)
        j++;
    if (j == i) {
        if (!reserve(rs))
            return SST_ERR_LIMIT;
        memmove(&rs->lo[i + 1], &rs->lo[i], (rs->n - i) * sizeof rs->lo[0]);
        memmove(&rs->hi[i + 1], &rs->hi[i], (rs->n - i) * sizeof rs->hi[0]);
        rs->lo[i] = lo;
        rs->hi[i] = hi;
        rs->n++;
        return 0;
    }
    rs->lo[i] = SST_MIN(lo, rs->lo[i]);
    rs->hi[i] = SST_MAX(hi, rs->hi[j - 1]);
    if (j - i > 1)
        remove_at(rs, i + 1, j - i - 1);
    return 0;
}

bool sst_rangeset_can_add(const struct sst_rangeset *rs, uint64_t lo, uint64_t hi)
{
    if (lo >= hi || rs->n < SST_RANGESET_MAX)
        return true;
    for (unsigned i = 0; i < rs->n; i++)
        if (rs->hi[i] >= lo && rs->lo[i] <= hi)
            return true;
    return false;
}

void sst_rangeset_add_merge(struct sst_rangeset *rs, uint64_t lo, uint64_t hi)
{
    while (sst_rangeset_add(rs, lo, hi) == SST_ERR_LIMIT) {
        unsigned best = 0;
        uint64_t gap = UINT64_MAX;
        for (unsigned i = 0; i + 1 < rs->n; i++) {
            if (rs->lo[i + 1] - rs->hi[i] < gap) {
                gap = rs->lo[i + 1] - rs->hi[i];
                best = i;
            }
        }
        rs->hi[best] = rs->hi[best + 1];
        remove_at(rs, best + 1, 1);
    }
}

void sst_rangeset_drop_below(struct sst_rangeset *rs, uint64_t x)
{
    unsigned i = 0;
    while (i < rs->n && rs->hi[i] <= x)
        i++;
    if (i > 0)
        remove_at(rs, 0, i);
    if (rs->n > 0 && rs->lo[0] < x)
        rs->lo[0] = x;
}

void sst_rangeset_trim(struct sst_rangeset *rs, uint64_t lo, uint64_t hi)
{
    for (unsigned i = 0; i < rs->n; i++) {
        if (rs->hi[i] <= lo || rs->lo[i] >= hi)
            continue;
        if (lo <= rs->lo[i] && hi >= rs->hi[i]) {
            remove_at(rs, i, 1);
            i--;
        } else if (lo <= rs->lo[i]) {
            rs->lo[i] = hi;
        } else if (hi >= rs->hi[i]) {
            rs->hi[i] = lo;
        }
        /* A removal strictly inside one range would split it; callers never ask for that. */
    }
}

uint64_t sst_rangeset_skip(const struct sst_rangeset *rs, uint64_t x)
{
    for (unsigned i = 0; i < rs->n; i++) {
        if (rs->lo[i] > x)
            break;
        if (x < rs->hi[i])
            return rs->hi[i];
    }
    return x;
}

uint64_t sst_rangeset_next_start(const struct sst_rangeset *rs, uint64_t x)
{
    for (unsigned i = 0; i < rs->n; i++)
        if (rs->lo[i] > x)
            return rs->lo[i];
    return UINT64_MAX;
}

uint64_t sst_rangeset_uncovered(const struct sst_rangeset *rs, uint64_t lo, uint64_t hi)
{
    if (lo >= hi)
        return 0;
    uint64_t total = hi - lo;
    for (unsigned i = 0; i < rs->n; i++) {
        uint64_t a = SST_MAX(lo, rs->lo[i]), b = SST_MIN(hi, rs->hi[i]);
        if (a < b)
            total -= b - a;
    }
    return total;
}
