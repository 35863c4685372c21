/* The stream-layer context: configuration, the host it drives, channel events, the driver entry
 * points and the deferred-callback dispatch (sst.h). */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

/* ---- context ------------------------------------------------------------------------------ */

SST_API void sst_ctx_config_default(struct sst_ctx_config *c)
{
    memset(c, 0, sizeof *c);
    sst_host_config_default(&c->host);
    /* Maxima, not allocations: the rings grow on demand (stream_rx.c / stream_tx.c grow()) and
     * an idle stream drops its storage, so a large maximum costs memory only while a peer or the
     * application fills it.  4 MiB, like Linux's tcp_rmem / tcp_wmem maxima, is a window of
     * 100 Mbit/s x 300 ms or 1 Gbit/s x 30 ms; 256 KiB held one stream to ~38 Mbit/s on a
     * 100 Mbit/s x 50 ms path (docs/benchmarks.md). */
    c->rx_buffer = 4 * 1024 * 1024;
    c->tx_buffer = 4 * 1024 * 1024;
    c->max_pending = 64;
    c->dgram_max_frags = 4;
    c->max_txrecs = 65536;
    c->migrate_timeout = SST_SEC(30);
    c->detach_idle = SST_SEC(30);
    c->liveness_probe = SST_SEC(60);
}

SST_API struct sst_ctx *sst_ctx_new_unbound(const struct sst_ctx_config *cfg)
{
    struct sst_ctx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (cfg != NULL)
        c->cfg = *cfg;
    else
        sst_ctx_config_default(&c->cfg);
    /* The receive buffer must hold at least two full packets (ref impl: 2 x MTU). */
    if (c->cfg.rx_buffer < 4096 || c->cfg.rx_buffer > UINT32_MAX || c->cfg.tx_buffer < 64 ||
        c->cfg.tx_buffer > SST_TX_MAX_BUFFER ||
        c->cfg.max_pending == 0 ||
        c->cfg.dgram_max_frags == 0 || c->cfg.dgram_max_frags > DG_MAX_FRAGS ||
        c->cfg.max_txrecs < SST_TXREC_MIN_RING) {
        free(c);
        return NULL;
    }
    sst_sidx_init(&c->by_usid, SST_SIDX_USID);
    return c;
}

SST_API void sst_ctx_bind(struct sst_ctx *c, struct sst_host *h)
{
    c->host = h;
}

/* The host calls these with io.ctx = the context; they forward to the driver's callbacks. */
static void ctx_send(void *ctx, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    struct sst_ctx *c = ctx;
    c->app_io.send(c->app_io.ctx, to, pkt, len);
}

static void ctx_send_from(void *ctx, const struct sst_addr *to, const struct sst_addr *from, const uint8_t *pkt,
                          size_t len)
{
    struct sst_ctx *c = ctx;
    c->app_io.send_from(c->app_io.ctx, to, from, pkt, len);
}

static uint8_t *ctx_tx_slot(void *ctx, size_t len)
{
    struct sst_ctx *c = ctx;
    return c->app_io.tx_slot(c->app_io.ctx, len);
}

static void ctx_random(void *ctx, void *buf, size_t len)
{
    struct sst_ctx *c = ctx;
    c->app_io.random(c->app_io.ctx, buf, len);
}

static int ctx_verify(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct sst_ctx *c = ctx;
    return c->app_io.verify_peer(c->app_io.ctx, peer, pk, we_initiated);
}

SST_API struct sst_ctx *sst_ctx_new(const struct sst_ctx_config *cfg, const struct sst_host_io *io)
{
    if (io == NULL || io->send == NULL)
        return NULL;
    struct sst_ctx *c = sst_ctx_new_unbound(cfg);
    if (c == NULL)
        return NULL;
    c->app_io = *io;
    struct sst_host_io hio = {
        .ctx = c,
        .send = ctx_send,
        .send_from = io->send_from != NULL ? ctx_send_from : NULL,
        .random = io->random != NULL ? ctx_random : NULL,
        .verify_peer = io->verify_peer != NULL ? ctx_verify : NULL,
        .chan_event = sst_ctx_chan_event,
        .tx_slot = io->tx_slot != NULL ? ctx_tx_slot : NULL,
    };
    c->host = sst_host_new(&c->cfg.host, &hio);
    if (c->host == NULL) {
        free(c);
        return NULL;
    }
    c->owns_host = true;
    return c;
}

SST_API void sst_ctx_chan_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    struct sst_ctx *c = ctx;
    struct conn *cn = sst_conn_find_chan(c, ch);
    switch (ev) {
    case SST_CHAN_EV_UP:
        /* Both sides install the stream layer here; the initiator's conn already exists. */
        if (cn == NULL)
            cn = sst_conn_new(c, ch, sst_chan_peer(ch));
        if (cn != NULL) {
            cn->up = true;
            cn->compact_chan_at = c->now + COMPACT_IDLE;
            sst_chan_set_upper(ch, &sst_conn_upper_ops, cn);
            /* USIDs, and streams waiting in limbo for a channel to this peer (§4.3.7). */
            sst_mig_conn_up(cn);
            struct sst_stream *s;
            DL_FOREACH2(cn->streams, s, cn_next)
                sst_strm_make_ready(s);
            sst_conn_wake(cn);
        }
        break;
    case SST_CHAN_EV_DOWN:
        if (cn != NULL) {
            sst_chan_set_upper(ch, NULL, NULL);
            cn->ch = NULL;
            cn->up = false;
            /* A reconnection refused by the peer's kernel: its process is gone (§2c). */
            struct sst_addr peer = cn->peer;
            bool refused = !cn->was_up && err == SST_ERR_NO_SST;
            /* A link failure puts the streams in limbo instead, when migration is on. */
            if (!sst_mig_conn_down(cn, err))
                sst_conn_down(cn, err);
            if (refused)
                sst_mig_refused(c, &peer);
        }
        break;
    default:
        break;
    }
    if (c->app_io.chan_event != NULL)
        c->app_io.chan_event(c->app_io.ctx, ch, ev, err);
}

SST_API void sst_ctx_free(struct sst_ctx *c)
{
    if (c == NULL)
        return;
    while (c->conns != NULL) {
        struct conn *cn = c->conns;
        if (cn->ch != NULL)
            sst_chan_set_upper(cn->ch, NULL, NULL);
        cn->ch = NULL;
        sst_conn_down(cn, SST_ERR_CLOSED);
    }
    while (c->orphans != NULL)      /* every stream, now that no conn is left */
        sst_strm_free(c->orphans);
    while (c->listeners != NULL) {
        struct sst_listener *l = c->listeners;
        DL_DELETE(c->listeners, l);
        free(l);
    }
    sst_sidx_clear(&c->by_usid);
    if (c->owns_host)
        sst_host_free(c->host);
    free(c);
}

SST_API struct sst_host *sst_ctx_host(struct sst_ctx *c)
{
    return c->host;
}

SST_API void sst_ctx_set_time(struct sst_ctx *c, sst_time_t now)
{
    if (now > c->now)
        c->now = now;
}

/* Runs every queued listener and stream callback; true if it ran any. */
static bool dispatch_round(struct sst_ctx *c)
{
    bool ran = false;
    c->dispatching = true;
    while (c->evq != NULL || c->lev != NULL) {
        ran = true;
        if (c->lev != NULL) {
            struct sst_listener *l = c->lev;
            c->lev = l->ev_next;
            l->pending_ev = false;
            if (l->cb != NULL)
                l->cb(l, l->arg);
            continue;
        }
        struct sst_stream *s = c->evq;
        DL_DELETE2(c->evq, s, ev_prev, ev_next);
        s->in_evq = false;
        unsigned ev = s->pending_ev;
        s->pending_ev = 0;
        if (s->cb != NULL && s->app_owned && ev != 0)
            s->cb(s, ev, s->arg);
    }
    c->dispatching = false;
    return ran;
}

/* Sends what the streams queued, then runs the callbacks, until neither has anything left.
 * Calls made from inside a callback only queue their work (sst_strm_api_done returns at once
 * while dispatching), so everything one round of callbacks writes, shuts down or opens leaves
 * together: a new stream's service request, first bytes and Close in one Init, a server's
 * answer and Close in one Reply that also carries the ack (docs/protocol-streams.md §5). */
static void flush_and_dispatch(struct sst_ctx *c)
{
    if (c->dispatching)
        return;
    do {
        if (c->mig_kick)
            sst_mig_kick(c);
        struct conn *cn, *tmp;
        DL_FOREACH_SAFE(c->conns, cn, tmp) {
            if (cn->ready != NULL || cn->flush_due) {
                cn->flush_due = false;
                sst_conn_wake(cn);
            }
        }
    } while (dispatch_round(c));
}

SST_API void sst_ctx_dispatch(struct sst_ctx *c) { flush_and_dispatch(c); }

/* Every public entry point ends here: flush what the call queued, then run callbacks. */
void sst_strm_api_done(struct sst_ctx *c) { flush_and_dispatch(c); }

SST_API void sst_ctx_recv(struct sst_ctx *c, sst_time_t now, const struct sst_addr *from,
                          uint8_t *pkt, size_t len)
{
    sst_ctx_recv_to(c, now, from, NULL, pkt, len);
}

SST_API void sst_ctx_recv_to(struct sst_ctx *c, sst_time_t now, const struct sst_addr *from,
                             const struct sst_addr *local, uint8_t *pkt, size_t len)
{
    sst_ctx_set_time(c, now);
    c->in_recv = true;
    sst_host_recv_to(c->host, now, from, local, pkt, len);
    c->in_recv = false;
    /* The callbacks first, then the flush the packet's channel deferred to them. */
    if (!c->dispatching)
        (void)dispatch_round(c);
    flush_and_dispatch(c);
}

SST_API sst_time_t sst_ctx_deadline(struct sst_ctx *c)
{
    sst_time_t t = SST_MIN(sst_host_deadline(c->host), sst_mig_deadline(c));
    return SST_MIN(t, sst_ut_deadline(c));
}

SST_API void sst_ctx_timeout(struct sst_ctx *c, sst_time_t now)
{
    sst_ctx_set_time(c, now);
    sst_host_timeout(c->host, now);
    sst_mig_timeout(c);
    sst_ut_timeout(c);
    sst_strm_api_done(c);
}

SST_API void sst_ctx_get_stats(const struct sst_ctx *c, struct sst_ctx_stats *out)
{
    *out = c->stats;
    size_t hw = 0;
    struct conn *cn;
    DL_FOREACH(c->conns, cn)
        hw = SST_MAX(hw, cn->recs.high_water);
    out->txrec_high_water = hw;
    uint64_t lsids = 0;
    DL_FOREACH(c->conns, cn)
        lsids += sst_sidx_count(&cn->by_local);
    out->lsids_in_use = lsids;
    uint64_t dormant = 0;
    DL_FOREACH(c->conns, cn)
        dormant += cn->dormant ? 1 : 0;
    out->conns_dormant = dormant;
}
