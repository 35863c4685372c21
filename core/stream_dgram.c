/* Datagrams as ephemeral substreams (paper §2.2, §4.3.5): stateless fragments with reassembly,
 * or a reliable substream when losing a fragment is likely. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

size_t sst_dgram_emit(struct sst_stream *s, uint8_t *buf, size_t cap)
{
    struct dgram_out *d = s->dgq;
    size_t off = d->sent * d->frag;
    size_t len = SST_MIN(d->frag, d->len - off);
    struct sst_spkt p = {
        .type = SST_PT_DATAGRAM,
        .lsid = s->local_lsid,
        .win = sst_fc_rx_window(&s->frx),
        .dg_id = d->id,
        .dg_idx = (uint8_t)d->sent,
        .dg_cnt = d->cnt,
        .data = d->data + off,
        .len = len,
    };
    if (d->sent == 0)
        p.flags |= SST_DGF_FIRST;
    if (d->sent + 1 == d->cnt)
        p.flags |= SST_DGF_LAST;
    size_t n = sst_spkt_encode(buf, cap, &p);
    d->sent++;
    if (d->sent == d->cnt || n == 0) {
        /* Done, or the payload limit shrank below the fragment size: best effort, drop. */
        s->dgq = d->next;
        s->dg_bytes -= d->len;
        if (n == 0)
            s->ctx->stats.dgrams_dropped++;
        free(d);
    }
    if (n > 0) {
        s->adv_win = p.win;
        sst_fc_rx_advertised(&s->frx);
    }
    return n;
}
/* Creates a read-only child holding one complete datagram (the stateless path), so it looks
 * exactly like a substream that carried the datagram (paper §2.2). */
static void deliver_datagram(struct conn *cn, struct sst_stream *parent, const uint8_t *data, size_t len)
{
    struct sst_ctx *c = cn->ctx;
    if (parent->nacceptq >= c->cfg.max_pending) {
        c->stats.dgrams_dropped++;
        return;
    }
    struct sst_stream *s = sst_strm_alloc(c, NULL, parent, SST_MAX(len, 1), 1);
    if (s == NULL) {
        c->stats.dgrams_dropped++;
        return;
    }
    s->peer = cn->peer;
    s->local_only = true;
    s->wr_shut = true;
    size_t fresh;
    if (sst_rx_insert(&s->rx, 0, data, len, true, &fresh) != 0) {
        sst_strm_free(s);
        c->stats.dgrams_dropped++;
        return;
    }
    c->stats.dgrams_received++;
    sst_srecv_enqueue_child(parent, s);
}

bool sst_dgram_on_packet(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_ctx *c = cn->ctx;
    struct sst_stream *parent = sst_conn_find_remote(cn, p->lsid);
    if (parent == NULL) {
        if (sst_mig_stale(cn, p->lsid, seq))
            return false;   /* a late packet of a stream gone here: no Reset */
        sst_conn_stateless_reset(cn, p->lsid);
        return true;
    }
    sst_srecv_window_from(parent, seq, p->win);
    if (!parent->listening || parent->is_root || parent->err != 0) {
        c->stats.dgrams_dropped++;
        return true;
    }
    if (p->dg_cnt == 1) {
        deliver_datagram(cn, parent, p->data, p->len);
        return true;
    }
    if (p->dg_cnt > DG_MAX_FRAGS || p->len > DG_FRAG_MAX) {
        c->stats.dgrams_dropped++;
        return true;
    }
    /* Find or start the partial datagram; the oldest one is evicted when all slots are busy. */
    if (cn->partial == NULL) {
        cn->partial = calloc(DG_PARTIALS, sizeof *cn->partial);
        if (cn->partial == NULL)
            return true;
    }
    struct dg_partial *slot = NULL, *oldest = NULL;
    for (unsigned i = 0; i < DG_PARTIALS; i++) {
        struct dg_partial *d = &cn->partial[i];
        if (d->used && d->parent_lsid == p->lsid && d->id == p->dg_id) {
            slot = d;
            break;
        }
        if (oldest == NULL || !d->used || (oldest->used && d->stamp < oldest->stamp))
            oldest = d;
    }
    if (slot == NULL) {
        slot = oldest;
        if (slot->used)
            c->stats.dgrams_dropped++;
        free(slot->buf);
        memset(slot, 0, sizeof *slot);
        slot->buf = malloc((size_t)p->dg_cnt * DG_FRAG_MAX);
        if (slot->buf == NULL)
            return true;
        slot->used = true;
        slot->parent_lsid = p->lsid;
        slot->id = p->dg_id;
        slot->cnt = p->dg_cnt;
        slot->stamp = ++cn->dg_stamp;
    }
    if (slot->cnt != p->dg_cnt || (slot->have & (1u << p->dg_idx)))
        return true;
    memcpy(slot->buf + (size_t)p->dg_idx * DG_FRAG_MAX, p->data, p->len);
    slot->flen[p->dg_idx] = (uint16_t)p->len;
    slot->have |= 1u << p->dg_idx;
    if (++slot->got < slot->cnt)
        return true;
    /* Complete: compact the fragments in place and hand it over. */
    size_t total = 0;
    for (unsigned i = 0; i < slot->cnt; i++) {
        memmove(slot->buf + total, slot->buf + (size_t)i * DG_FRAG_MAX, slot->flen[i]);
        total += slot->flen[i];
    }
    deliver_datagram(cn, parent, slot->buf, total);
    free(slot->buf);
    memset(slot, 0, sizeof *slot);
    /* The slots are given back when no datagram is in progress (an idle channel holds none). */
    bool busy = false;
    for (unsigned i = 0; i < DG_PARTIALS && cn->partial != NULL; i++)
        busy = busy || cn->partial[i].used;
    if (!busy)
        sst_dgram_free_partials(cn);
    return true;
}

void sst_dgram_free_partials(struct conn *cn)
{
    if (cn->partial == NULL)
        return;
    for (unsigned i = 0; i < DG_PARTIALS; i++)
        free(cn->partial[i].buf);
    free(cn->partial);
    cn->partial = NULL;
}
/* ---- datagrams (paper §2.2, §4.3.5) ------------------------------------------------------ */

SST_API int sst_stream_send_datagram(struct sst_stream *s, const void *buf, size_t len)
{
    struct sst_ctx *c = s->ctx;
    if (s->err != 0)
        return s->err;
    if (s->conn == NULL || s->local_only || (!s->has_local && !s->usid_set))
        return SST_ERR_STATE;
    if (s->conn->limbo) {
        /* No channel now: best effort, like a full queue; a dormant conn starts reconnecting. */
        sst_mig_wake(s);
        sst_strm_api_done(c);
        return SST_ERR_AGAIN;
    }
    if (len > c->cfg.tx_buffer)
        return SST_ERR_TOO_BIG;
    struct conn *cn = s->conn;
    size_t frag = (cn->up ? sst_chan_max_payload(cn->ch) : 1200) - SST_DGRAM_HDR_LEN;
    size_t cnt = len == 0 ? 1 : (len + frag - 1) / frag;
    /* Small datagrams to a stream the peer knows go statelessly; one likely to lose a fragment
     * (given the channel's loss rate so far) takes a reliable ephemeral substream instead
     * (paper §2.2).  "Likely": expected lost fragments above DGRAM_LOSS_BUDGET. */
    double loss = 0;
    if (cn->up) {
        struct sst_chan_stats cs;
        sst_chan_get_stats(cn->ch, &cs);
        if (cs.tx_packets >= DGRAM_LOSS_MIN_SAMPLE)
            loss = (double)cs.lost_packets / (double)cs.tx_packets;
    }
    bool fragile = cnt > 1 && (double)cnt * loss > DGRAM_LOSS_BUDGET;
    if (cnt <= c->cfg.dgram_max_frags && s->peer_knows && !fragile) {
        if (s->dg_bytes + len > c->cfg.tx_buffer)
            return SST_ERR_AGAIN;
        struct dgram_out *d = malloc(sizeof *d + len);
        if (d == NULL)
            return SST_ERR_NOMEM;
        d->next = NULL;
        d->len = len;
        d->frag = frag;
        d->sent = 0;
        d->cnt = (uint8_t)cnt;
        d->id = s->dg_next_id++;
        memcpy(d->data, buf, len);
        struct dgram_out **pp = &s->dgq;
        while (*pp != NULL)
            pp = &(*pp)->next;
        *pp = d;
        s->dg_bytes += len;
        c->stats.dgrams_sent_stateless++;
        sst_strm_make_ready(s);
        sst_strm_api_done(c);
        return 0;
    }
    struct sst_stream *child = sst_strm_open_child(cn, s);
    if (child == NULL)
        return SST_ERR_NOMEM;
    (void)sst_tx_write(&child->tx, buf, len);
    child->wr_shut = true;
    sst_tx_close(&child->tx);
    child->ephemeral = true;
    child->rd_shut = true;
    c->stats.dgrams_sent_substream++;
    sst_strm_api_done(c);
    return 0;
}

SST_API sst_ssize_t sst_stream_recv_datagram(struct sst_stream *s, void *buf, size_t cap)
{
    struct sst_stream *child;
    DL_FOREACH2(s->acceptq, child, aq_next) {
        if (!sst_rx_complete(&child->rx) || child->rx.next != 0)
            continue;
        size_t len = (size_t)sst_rx_available(&child->rx);
        if (len > cap)
            return SST_ERR_TOO_BIG;
        DL_DELETE2(s->acceptq, child, aq_prev, aq_next);
        s->nacceptq--;
        child->aq_owner = NULL;
        (void)sst_svc_read(child, buf, len);
        child->app_owned = true;
        s->ctx->stats.streams_accepted++;
        sst_stream_close(child);
        sst_strm_api_done(s->ctx);
        return (sst_ssize_t)len;
    }
    return SST_ERR_AGAIN;
}
