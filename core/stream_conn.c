/* Per-channel stream-layer state (paper §4.3): the conn that binds streams to one channel,
 * its LSID lookups, stateless Reset queue, and what happens when the channel goes down. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

void sst_conn_wake(struct conn *cn)
{
    if (cn != NULL && cn->up && cn->ch != NULL && !cn->in_fill)
        sst_chan_wake(cn->ch, cn->ctx->now);
}

struct sst_stream *sst_conn_find_local(struct conn *cn, uint16_t lsid)
{
    if (lsid == SST_LSID_ROOT)
        return cn->root;
    return sst_sidx_find_lsid(&cn->by_local, lsid);
}

struct sst_stream *sst_conn_find_remote(struct conn *cn, uint16_t lsid)
{
    if (lsid == SST_LSID_ROOT)
        return cn->root;
    return sst_sidx_find_lsid(&cn->by_remote, lsid);
}

bool sst_conn_lsid_in_use(void *arg, uint16_t lsid)
{
    return sst_conn_find_local(arg, lsid) != NULL;
}

void sst_conn_stateless_reset(struct conn *cn, uint16_t peer_lsid)
{
    /* Never for LSID 0, and never twice in a row for the same one. */
    if (peer_lsid == SST_LSID_ROOT || cn->nrst == RST_QUEUE)
        return;
    for (unsigned i = 0; i < cn->nrst; i++)
        if (cn->rst_lsid[i] == peer_lsid)
            return;
    cn->rst_lsid[cn->nrst] = peer_lsid;
    cn->rst_flags[cn->nrst] = SST_RSTF_ORIENT;
    cn->nrst++;
    cn->ctx->stats.resets_sent++;
}
uint64_t sst_conn_peer_counter(struct conn *cn, uint16_t lsid)
{
    uint64_t counter = sst_sid_extrapolate(cn->peer_counter, lsid);
    cn->peer_counter = SST_MAX(cn->peer_counter, counter);
    return counter;
}

/* ---- conn (per-channel state) ------------------------------------------------------------ */

struct conn *sst_conn_new(struct sst_ctx *c, struct sst_chan *ch, const struct sst_addr *peer)
{
    struct conn *cn = calloc(1, sizeof *cn);
    if (cn == NULL)
        return NULL;
    cn->ctx = c;
    cn->ch = ch;
    cn->peer = *peer;
    sst_sid_init(&cn->sid);
    sst_sidx_init(&cn->by_local, SST_SIDX_LOCAL);
    sst_sidx_init(&cn->by_remote, SST_SIDX_REMOTE);
    sst_txrec_init(&cn->recs, c->cfg.max_txrecs);
    struct sst_stream *root = sst_strm_alloc(c, cn, NULL, 1, 1);
    if (root == NULL) {
        free(cn);
        return NULL;
    }
    /* The root is pre-attached with LSID 0 both ways and carries only window updates. */
    root->is_root = true;
    root->has_local = root->has_remote = true;
    root->peer_knows = true;
    sst_fc_rx_init(&root->frx, ROOT_WINDOW);
    sst_fc_tx_init(&root->ftx, ROOT_WINDOW);
    root->adv_win = sst_fc_rx_window(&root->frx);
    c->stats.streams_live--;      /* internal, not counted as a stream */
    root->app_owned = false;
    cn->root = root;
    DL_APPEND(c->conns, cn);
    return cn;
}

struct conn *sst_conn_find_peer(struct sst_ctx *c, const struct sst_addr *peer)
{
    struct conn *cn;
    DL_FOREACH(c->conns, cn)
        if (cn->ch != NULL && sst_addr_eq(&cn->peer, peer))
            return cn;
    return NULL;
}

struct conn *sst_conn_find_chan(struct sst_ctx *c, const struct sst_chan *ch)
{
    struct conn *cn;
    DL_FOREACH(c->conns, cn)
        if (cn->ch == ch)
            return cn;
    return NULL;
}

/* The channel is gone (and its streams do not migrate): every unfinished stream fails. */
void sst_conn_down(struct conn *cn, int err)
{
    struct sst_ctx *c = cn->ctx;
    int serr = err != 0 ? err : SST_ERR_RESET;
    struct sst_stream *s, *tmp;
    DL_FOREACH_SAFE2(cn->streams, s, tmp, cn_next) {
        if (s->is_root)
            continue;
        bool finished = sst_tx_done(&s->tx) && (s->rd_shut || sst_rx_complete(&s->rx));
        s->rst_pending = s->rst_inflight = false;
        sst_strm_unbind(s);
        if (!finished && s->err == 0) {
            s->err = serr;
            sst_strm_post(s, SST_EV_ERROR);
        }
    }
    sst_dgram_free_partials(cn);
    free(cn->gone);
    sst_txrec_free_all(&cn->recs);
    sst_sid_free(&cn->sid);
    struct sst_stream *root = cn->root;
    sst_strm_unbind(root);
    sst_strm_free(root);
    sst_sidx_clear(&cn->by_local);
    sst_sidx_clear(&cn->by_remote);
    DL_DELETE(c->conns, cn);
    free(cn);
    sst_conn_free_unowned(c);
}

/* Frees the streams that have no conn and nobody holds, in one pass over the orphans: freeing
 * one frees no other and changes no other's state, except through its accept queue (children
 * never accepted are freed or released with it), so only then does the pass start over. */
void sst_conn_free_unowned(struct sst_ctx *c)
{
    struct sst_stream *s = c->orphans;
    while (s != NULL) {
        struct sst_stream *next = s->cn_next;
        if (!s->local_only && !s->app_owned && s->aq_owner == NULL && s->lq_owner == NULL) {
            bool kids_queued = s->acceptq != NULL;
            sst_strm_free(s);
            if (kids_queued)
                next = c->orphans;
        }
        s = next;
    }
}
const struct sst_chan_upper sst_conn_upper_ops = {
    .fill = sst_sched_fill,
    .acked = sst_sched_acked,
    .lost = sst_sched_lost,
    .recv = sst_srecv_recv,
};
