/* Stream lifecycle (paper §2, §4.3): allocation, LSID binding, confirmation, abort and
 * freeing of streams, and the deferred event queue that reports their changes. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

/* ---- small helpers ----------------------------------------------------------------------- */

void sst_strm_post(struct sst_stream *s, unsigned ev)
{
    if (s->freed || !s->app_owned)
        return;
    s->pending_ev |= ev;
    if (!s->in_evq) {
        DL_APPEND2(s->ctx->evq, s, ev_prev, ev_next);
        s->in_evq = true;
    }
}

void sst_strm_post_listener(struct sst_listener *l)
{
    if (l->pending_ev)
        return;
    l->pending_ev = true;
    l->ev_next = l->ctx->lev;
    l->ctx->lev = l;
}

void sst_strm_unwait(struct sst_stream *s)
{
    if (s->waiting) {
        DL_DELETE2(s->parent->waiters, s, wt_prev, wt_next);
        s->waiting = false;
    }
}

bool sst_strm_has_work(const struct sst_stream *s)
{
    return s->rst_pending || (s->err == 0 && (s->dgq != NULL || s->need_reply || s->need_wupdate ||
                                              (s->win_news && sst_srecv_window_news(s)) ||
                                              sst_tx_pending(&s->tx)));
}

void sst_strm_make_ready(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    if (cn == NULL || s->freed)
        return;
    /* A detached stream with something to send attaches again first (paper §4.3.7); a Reset
     * can name the peer's LSID instead.  Checked even when s is on the ready list already:
     * it may have been put there before it had work, and fill() only drops a detached stream. */
    if (!s->has_local && !s->is_root && sst_strm_has_work(s) && !(s->rst_pending && s->has_remote))
        sst_mig_need_attach(s);
    if (s->in_ready)
        return;
    sst_strm_unwait(s);
    /* On a conn whose channel idled out, the first stream with work brings a channel back. */
    if (cn->dormant && !s->is_root && sst_strm_has_work(s))
        sst_mig_wake(s);
    if (s->freed || s->conn == NULL)
        return;
    DL_APPEND2(cn->ready, s, rd_prev, rd_next);
    s->in_ready = true;
}

void sst_strm_unready(struct sst_stream *s)
{
    if (s->in_ready) {
        DL_DELETE2(s->conn->ready, s, rd_prev, rd_next);
        s->in_ready = false;
    }
}

void sst_strm_wait_on_parent(struct sst_stream *s)
{
    sst_strm_unready(s);
    if (s->waiting || s->parent == NULL)
        return;
    DL_APPEND2(s->parent->waiters, s, wt_prev, wt_next);
    s->waiting = true;
}

void sst_strm_wake_waiters(struct sst_stream *parent)
{
    while (parent->waiters != NULL) {
        struct sst_stream *w = parent->waiters;
        sst_strm_unwait(w);
        sst_strm_make_ready(w);
    }
}

/* ---- stream lifecycle -------------------------------------------------------------------- */

struct sst_stream *sst_strm_alloc(struct sst_ctx *c, struct conn *cn, struct sst_stream *parent,
                                       size_t rxcap, size_t txcap)
{
    struct sst_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (sst_rx_init(&s->rx, rxcap) != 0 || sst_tx_init(&s->tx, txcap) != 0) {
        sst_rx_free(&s->rx);
        free(s);
        return NULL;
    }
    s->ctx = c;
    s->conn = cn;
    s->parent = parent;
    if (parent != NULL)
        DL_APPEND2(parent->kids, s, kid_prev, kid_next);
    if (cn != NULL) {
        s->peer = cn->peer;
        DL_APPEND2(cn->streams, s, cn_prev, cn_next);
    } else {
        DL_APPEND2(c->orphans, s, cn_prev, cn_next);
    }
    sst_fc_rx_init(&s->frx, c->cfg.rx_buffer);
    sst_fc_tx_init(&s->ftx, 0);
    s->adv_win = sst_fc_rx_window(&s->frx);
    c->stats.streams_live++;
    return s;
}

bool sst_strm_set_local_lsid(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    uint64_t counter;
    if (sst_sid_alloc(&cn->sid, sst_conn_lsid_in_use, cn, sst_conn_quiet_tx(cn), sst_conn_quiet_rx(cn),
                      &counter) != 0)
        return false;
    s->local_lsid = (uint16_t)counter;
    if (!sst_sidx_add(&cn->by_local, s)) {
        sst_sid_release(&cn->sid, s->local_lsid, sst_conn_quiet_tx(cn), sst_conn_quiet_rx(cn));
        return false;
    }
    s->has_local = true;
    /* The creator's counter and its direction's channel nonce form the USID (paper §4.3.3);
     * the nonce exists once the channel is up (sst_mig_conn_up fills in the others). */
    if (s->initiator && !s->usid_set) {
        s->usid.counter = counter;
        if (cn->up)
            sst_mig_set_usid(s, counter, true);
    }
    sst_mig_touch(s);
    return true;
}

void sst_strm_unbind(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    sst_strm_unwait(s);
    if (cn == NULL)
        return;
    sst_mig_untrack(s);
    s->att = ATT_NONE;
    s->det = DET_NONE;
    sst_strm_unready(s);
    if (s->has_local && !s->is_root) {
        sst_sidx_del(&cn->by_local, s);
        sst_sid_release(&cn->sid, s->local_lsid, sst_conn_quiet_tx(cn), sst_conn_quiet_rx(cn));
    }
    if (s->has_remote && !s->is_root) {
        sst_sidx_del(&cn->by_remote, s);
        sst_mig_gone(cn, s->remote_lsid, cn->rx_seq + 1);
    }
    s->has_local = s->has_remote = false;
    /* Records of this stream stay in the table (their sequence numbers are still in flight)
     * but no longer point at it; Init data it borrowed is returned to the parent now. */
    if (s->nrecs > 0) {
        for (uint64_t q = cn->recs.base; q < cn->recs.top; q++) {
            struct sst_txrec *r = sst_txrec_find(&cn->recs, q);
            if (r == NULL || r->stream != s)
                continue;
            if (r->borrowed && s->parent != NULL)
                sst_fc_tx_release(&s->parent->ftx, r->charged);
            if (r->borrowed && s->parent != NULL)
                sst_strm_wake_waiters(s->parent);
            r->stream = NULL;
        }
        s->nrecs = 0;
    }
    DL_DELETE2(cn->streams, s, cn_prev, cn_next);
    DL_APPEND2(s->ctx->orphans, s, cn_prev, cn_next);
    s->conn = NULL;
}

/* s's bare Init no longer occupies one of the parent's SST_BARE_INITS_MAX slots: its siblings
 * blocked on that bound may send theirs. */
void sst_strm_uncount_bare(struct sst_stream *s)
{
    if (!s->counted_bare)
        return;
    s->counted_bare = false;
    if (s->parent == NULL)
        return;
    s->parent->bare_children--;
    sst_strm_wake_waiters(s->parent);
}

void sst_strm_confirm(struct sst_stream *s)
{
    if (s->peer_knows)
        return;
    s->peer_knows = true;
    s->known_ever = true;
    sst_strm_wake_waiters(s);   /* children's Inits may name us now */
    sst_strm_uncount_bare(s);
    if (s->counted_unconfirmed && s->parent != NULL) {
        s->parent->unconfirmed_children--;
        s->counted_unconfirmed = false;
        if (s->parent->unconfirmed_children == 0)
            sst_strm_make_ready(s->parent);
    }
}


/* Frees s when the application has let go and both directions are finished. */
void sst_strm_maybe_free(struct sst_stream *s)
{
    if (s->freed || s->app_owned || s->is_root || s->aq_owner != NULL || s->lq_owner != NULL)
        return;
    if (s->unconfirmed_children > 0 || s->rst_pending || s->rst_inflight)
        return;
    if (s->conn != NULL && s->err == 0) {
        bool tx_done = sst_tx_done(&s->tx);
        bool rx_done = s->rd_shut || sst_rx_eof(&s->rx);
        if (!tx_done || !rx_done)
            return;
    }
    sst_strm_free(s);
}

void sst_strm_free(struct sst_stream *s)
{
    struct sst_ctx *c = s->ctx;
    if (c->utimers != NULL)
        sst_ut_forget(s);
    while (s->waiters != NULL)
        sst_strm_unwait(s->waiters);
    sst_mig_forget_usid(s);
    sst_strm_uncount_bare(s);
    if (s->counted_unconfirmed && s->parent != NULL) {
        s->parent->unconfirmed_children--;
        s->counted_unconfirmed = false;
    }
    /* A dormant conn left with no streams is freed at the end of this call (sst_mig_kick). */
    if (s->conn != NULL && s->conn->dormant)
        c->mig_kick = true;
    /* Return borrowed receive window: the parent no longer holds these bytes for us. */
    if (s->borrowed > 0 && s->parent != NULL)
        sst_fc_rx_release(&s->parent->frx, s->borrowed);
    sst_strm_unbind(s);
    if (s->in_evq) {
        DL_DELETE2(c->evq, s, ev_prev, ev_next);
        s->in_evq = false;
    }
    if (s->aq_owner != NULL) {
        DL_DELETE2(s->aq_owner->acceptq, s, aq_prev, aq_next);
        s->aq_owner->nacceptq--;
        s->aq_owner = NULL;
    }
    if (s->lq_owner != NULL) {
        DL_DELETE2(s->lq_owner->backlog, s, aq_prev, aq_next);
        s->lq_owner->nbacklog--;
        s->lq_owner = NULL;
    }
    /* Children never accepted are aborted (stateless datagrams simply dropped); accepted ones
     * keep running on their own (paper §2.1). */
    struct sst_stream *ch, *tmp;
    DL_FOREACH_SAFE2(s->kids, ch, tmp, kid_next) {
        DL_DELETE2(s->kids, ch, kid_prev, kid_next);
        ch->parent = NULL;
        if (ch->aq_owner != s)
            continue;
        DL_DELETE2(s->acceptq, ch, aq_prev, aq_next);
        ch->aq_owner = NULL;
        ch->app_owned = false;
        if (ch->local_only) {
            sst_strm_free(ch);
        } else if (ch->conn != NULL) {
            ch->rst_pending = true;    /* freed once the Reset is acknowledged */
            sst_strm_make_ready(ch);
        }
        /* detached ones are freed by conn_down's sweep */
    }
    s->acceptq = NULL;
    s->nacceptq = 0;
    if (s->parent != NULL)
        DL_DELETE2(s->parent->kids, s, kid_prev, kid_next);
    DL_DELETE2(c->orphans, s, cn_prev, cn_next);   /* unbound above: an orphan now */
    while (s->dgq != NULL) {
        struct dgram_out *d = s->dgq;
        s->dgq = d->next;
        free(d);
    }
    sst_rx_free(&s->rx);
    sst_tx_free(&s->tx);
    free(s->svcbuf);
    s->freed = true;
    if (s->counted_closing)
        c->stats.streams_closing--;
    if (!s->is_root) {
        c->stats.streams_live--;
        c->stats.streams_freed++;
    }
    free(s);
}

/* Aborts s locally: buffers dropped, error recorded, the peer told unless it told us. */
void sst_strm_abort(struct sst_stream *s, int err, bool tell_peer)
{
    if (s->err == 0)
        s->err = err;
    sst_strm_unready(s);
    s->need_reply = s->need_wupdate = s->win_news = false;
    /* Children we opened whose Init the peer has not confirmed can never be created now: their
     * Init names this stream, which is gone (the peer refuses it, and we may no longer be able
     * to send it at all).  They fail with it instead of waiting for a Reply forever. */
    if (!s->is_root) {
        struct sst_stream *k, *ktmp;
        DL_FOREACH_SAFE2(s->kids, k, ktmp, kid_next) {
            if (k->initiator && !k->peer_knows && k->err == 0)
                sst_strm_abort(k, err, true);
        }
    }
    while (s->dgq != NULL) {
        struct dgram_out *d = s->dgq;
        s->dgq = d->next;
        free(d);
    }
    s->dg_bytes = 0;
    /* A stream detached both ways attaches again to deliver its Reset. */
    bool reachable = s->has_local || s->has_remote || (s->known_ever && s->usid_set);
    if (tell_peer && s->conn != NULL && reachable && !s->rst_done) {
        s->rst_pending = true;
        sst_strm_make_ready(s);
    } else if (s->conn != NULL) {
        sst_strm_unbind(s);
    }
    sst_strm_post(s, SST_EV_ERROR);
}
/* ---- streams: creation ----------------------------------------------------------------- */

/* A stream we initiate as a child of parent on cn; announced by an (empty) Init at once so the
 * peer learns of it even before any data (paper §4.3.3). */
struct sst_stream *sst_strm_open_child(struct conn *cn, struct sst_stream *parent)
{
    struct sst_ctx *c = cn->ctx;
    if (!parent->has_local && !parent->is_root)
        sst_mig_need_attach(parent);   /* the Init names the parent's LSID */
    struct sst_stream *s = sst_strm_alloc(c, cn, parent, c->cfg.rx_buffer, c->cfg.tx_buffer);
    if (s == NULL)
        return NULL;
    s->initiator = true;
    if (!sst_strm_set_local_lsid(s)) {
        sst_strm_free(s);
        return NULL;
    }
    parent->unconfirmed_children++;
    s->counted_unconfirmed = true;
    s->need_wupdate = true;
    sst_strm_make_ready(s);
    c->stats.streams_opened++;
    return s;
}
void sst_strm_adopt(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    s->app_owned = true;
    s->cb = cb;
    s->arg = arg;
    s->ctx->stats.streams_accepted++;
    /* Anything that arrived while the stream waited is reported now. */
    if (s->err != 0)
        sst_strm_post(s, SST_EV_ERROR);
    if (sst_rx_available(&s->rx) > 0)
        sst_strm_post(s, SST_EV_READABLE);
    if (sst_rx_complete(&s->rx)) {
        s->eof_posted = true;
        sst_strm_post(s, SST_EV_READABLE | SST_EV_EOF);
    }
    if (s->listening && s->acceptq != NULL)
        sst_strm_post(s, SST_EV_SUBSTREAM);
}
