/* Pattern endpoints for stream tests (see streamtest.h). */
#include "streamtest.h"

#include <check.h>

uint8_t ep_pat(uint32_t seed, uint64_t i)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 17);
    x ^= x >> 29;
    return (uint8_t)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

void ep_pump(struct ep *e)
{
    uint8_t buf[4096];
    while (e->tx_done < e->tx_len) {
        size_t n = 0;
        for (; n < sizeof buf && e->tx_done + n < e->tx_len; n++) {
            uint64_t i = e->tx_done + n;
            if (i < 4)
                buf[n] = (uint8_t)(e->tx_seed >> (24 - 8 * i));
            else if (i < 8)
                buf[n] = (uint8_t)((e->tx_len - 8) >> (24 - 8 * (i - 4)));
            else
                buf[n] = ep_pat(e->tx_seed, i - 8);
        }
        sst_ssize_t w = sst_stream_write(e->s, buf, n);
        if (w <= 0)
            return;
        e->tx_done += (uint64_t)w;
    }
    if (e->close_after) {
        e->close_after = false;
        ck_assert_int_eq(sst_stream_shutdown(e->s, SST_SHUT_WRITE), 0);
    }
}

void ep_start_tx(struct ep *e, uint32_t seed, uint64_t payload)
{
    e->tx_seed = seed;
    e->tx_len = payload + 8;
    e->tx_done = 0;
    e->close_after = true;
    ep_pump(e);
}

void ep_read(struct ep *e)
{
    uint8_t buf[8192];
    for (;;) {
        sst_ssize_t n = sst_stream_read(e->s, buf, sizeof buf);
        if (n == 0) {
            e->rx_eof = true;
            if (e->hdr_got < 8 || e->rx_done != e->rx_len)
                e->bad = true;
            return;
        }
        if (n < 0)
            return;
        size_t i = 0;
        while (e->hdr_got < 8 && i < (size_t)n)
            e->hdr[e->hdr_got++] = buf[i++];
        if (e->hdr_got == 8 && i > 0 && e->rx_done == 0 && e->rx_len == 0) {
            e->rx_seed = (uint32_t)e->hdr[0] << 24 | (uint32_t)e->hdr[1] << 16 | (uint32_t)e->hdr[2] << 8 | e->hdr[3];
            e->rx_len = (uint64_t)e->hdr[4] << 24 | (uint64_t)e->hdr[5] << 16 | (uint64_t)e->hdr[6] << 8 | e->hdr[7];
        }
        for (; i < (size_t)n; i++, e->rx_done++)
            if (e->rx_done >= e->rx_len || buf[i] != ep_pat(e->rx_seed, e->rx_done))
                e->bad = true;
    }
}

void ep_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct ep *e = arg;
    if (e->on_event != NULL)
        e->on_event(e, ev);
    if (ev & SST_EV_CONNECTED)
        e->connected = true;
    if (ev & SST_EV_ERROR) {
        e->errored = true;
        e->err = sst_stream_error(s);
        return;
    }
    if ((ev & SST_EV_READABLE) && !e->stall) {
        ep_read(e);
        if (e->rx_eof && e->reply && e->tx_len == 0)
            ep_start_tx(e, e->rx_seed ^ 0x5a5a5a5au, e->rx_len / 2 + 1);
    }
    if (ev & (SST_EV_WRITABLE | SST_EV_CONNECTED))
        ep_pump(e);
}

