/* Exponential window encoding and per-stream credit accounting (paper §4.3.6). */
#include "stream_fc.h"

uint8_t sst_fc_win_encode(uint64_t bytes)
{
    /* The largest n with 2^n - 1 <= bytes is floor(log2(bytes + 1)): one count-leading-zeros
     * instead of a loop of up to 31 steps (this runs several times per packet on both ends). */
    if (bytes >= (1ull << SST_WIN_EXP_MAX) - 1)
        return SST_WIN_EXP_MAX;
    return (uint8_t)(63 - __builtin_clzll(bytes + 1));
}

uint64_t sst_fc_win_decode(uint8_t exp)
{
    exp &= SST_WIN_EXP_MASK;
    return (1ull << exp) - 1;
}

void sst_fc_tx_init(struct sst_fc_tx *f, uint64_t initial_credit)
{
    f->credit = initial_credit;
    f->inflight = 0;
    f->win_seq = 0;   /* none yet: channel packets carrying windows are numbered from 1 */
}

void sst_fc_tx_on_window(struct sst_fc_tx *f, uint64_t seq, uint8_t exp)
{
    if (seq < f->win_seq)
        return;
    f->credit = sst_fc_win_decode(exp);
    f->win_seq = seq;
    f->unconfirmed = 0;
}

bool sst_fc_tx_allows(const struct sst_fc_tx *f, uint64_t len)
{
    if (len == 0)
        return true;
    return f->inflight + f->unconfirmed + len <= f->credit;
}

void sst_fc_tx_charge(struct sst_fc_tx *f, uint64_t len)
{
    f->inflight += len;
}

void sst_fc_tx_release(struct sst_fc_tx *f, uint64_t len)
{
    f->inflight = len > f->inflight ? 0 : f->inflight - len;
}

void sst_fc_tx_acked(struct sst_fc_tx *f, uint64_t len)
{
    sst_fc_tx_release(f, len);
    f->unconfirmed += len;
}

void sst_fc_rx_init(struct sst_fc_rx *f, uint64_t limit)
{
    f->limit = limit;
    f->held = 0;
    f->released = 0;
}

void sst_fc_rx_charge(struct sst_fc_rx *f, uint64_t len)
{
    f->held += len;
}

void sst_fc_rx_release(struct sst_fc_rx *f, uint64_t len)
{
    f->held = len > f->held ? 0 : f->held - len;
    f->released += len;
}

void sst_fc_rx_advertised(struct sst_fc_rx *f)
{
    f->released = 0;
}

bool sst_fc_rx_update_due(const struct sst_fc_rx *f)
{
    return f->released > 0 && f->released >= f->limit / 4;
}

uint64_t sst_fc_rx_room(const struct sst_fc_rx *f)
{
    return f->held >= f->limit ? 0 : f->limit - f->held;
}

uint8_t sst_fc_rx_window(const struct sst_fc_rx *f)
{
    return sst_fc_win_encode(sst_fc_rx_room(f));
}
