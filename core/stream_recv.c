/* The channel's recv callback (paper §4.3.3-4.3.8): decodes stream-layer packets and applies
 * Init, Reply, Data and Reset to streams, with receive-side flow-control bookkeeping. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

/* ---- receiving ----------------------------------------------------------------------------- */


/* Whether s's receive window is news for the sender: a window that shrank must be announced
 * before the sender fills it on stale credit; one that reopened from below half the buffer must
 * be announced or a sender waiting for credit would wait forever; and a quarter of the buffer
 * read since the last advertisement clears the sender's unconfirmed bytes (stream_fc.h). */
bool sst_srecv_window_news(const struct sst_stream *s)
{
    if (s->conn == NULL || s->err != 0)
        return false;
    /* Every byte up to the peer's Close is here: the peer sends no more bytes on this stream
     * (retransmissions need no credit), so a window would only cost it a packet -- one per
     * short transaction.  A listening stream still lends its window to Inits of substreams. */
    if (sst_rx_complete(&s->rx) && !s->listening)
        return false;
    uint8_t now = sst_fc_rx_window(&s->frx);
    uint8_t full = sst_fc_win_encode(s->frx.limit);
    return now < s->adv_win || (now > s->adv_win && s->adv_win + 1 < full) ||
           sst_fc_rx_update_due(&s->frx);
}

/* Flow-control bookkeeping after the receive buffer changed.  Whether an update goes out is
 * decided when the channel next asks for a packet (can_emit, stream_sched.c), i.e. after the
 * application's callbacks for the packet that changed it: a drop that the application's read
 * undid in the meantime (a request arriving and read at once) costs no packet. */
void sst_srecv_window_check(struct sst_stream *s)
{
    if (s->conn == NULL || s->err != 0)
        return;
    if (sst_srecv_window_news(s)) {
        s->win_news = true;
        sst_strm_make_ready(s);
    }
}

/* Delivers stream bytes to s.  Returns false when they could not be buffered (then the packet
 * is not acknowledged and will come again). */
bool sst_srecv_deliver(struct sst_stream *s, uint64_t off, const uint8_t *data, size_t len,
                       unsigned flags, bool borrowed)
{
    struct sst_ctx *c = s->ctx;
    if (s->err != 0 || s->rst_pending || s->rst_inflight)
        return true;
    bool mark = (flags & SST_SF_MARK) != 0, fin = (flags & SST_SF_CLOSE) != 0;
    if (s->ephemeral && (len > 0 || mark)) {
        /* The receiver of a datagram must not write back (paper §2.2). */
        sst_strm_abort(s, SST_ERR_RESET, true);
        return true;
    }
    size_t fresh = 0;
    int rc = sst_rx_insert_seg(&s->rx, off, data, len, mark, fin, &fresh);
    if (rc == SST_ERR_AGAIN) {
        c->stats.rx_not_buffered++;
        return false;
    }
    if (rc != 0) {
        c->stats.malformed++;
        sst_strm_abort(s, SST_ERR_MALFORMED, true);
        return true;
    }
    if (borrowed && s->parent != NULL) {
        sst_fc_rx_charge(&s->parent->frx, fresh);
        s->borrowed += fresh;
        sst_srecv_window_check(s->parent);
    } else {
        sst_fc_rx_charge(&s->frx, fresh);
        sst_srecv_window_check(s);
    }
    if (s->rd_shut) {
        /* Reading was shut: consume and forget, but keep the offsets for end-of-stream. */
        (void)sst_svc_read(s, NULL, SIZE_MAX);
        sst_strm_maybe_free(s);
        return true;
    }
    if (s->svc == SVC_WAIT_REPLY || s->svc == SVC_WAIT_REQUEST)
        sst_svc_pump(s);
    if (s->freed)
        return true;
    if (s->svc == SVC_NONE || s->svc == SVC_UNANSWERED) {
        if (sst_rx_available(&s->rx) > 0)
            sst_strm_post(s, SST_EV_READABLE);
        if (sst_rx_complete(&s->rx) && !s->eof_posted) {
            s->eof_posted = true;
            sst_strm_post(s, SST_EV_READABLE | SST_EV_EOF);
        }
    }
    /* A complete substream waiting in an accept queue is a datagram the parent can take now. */
    if (s->aq_owner != NULL && sst_rx_complete(&s->rx))
        sst_strm_post(s->aq_owner, SST_EV_SUBSTREAM);
    return true;
}

void sst_srecv_window_from(struct sst_stream *s, uint64_t seq, uint8_t win)
{
    sst_fc_tx_on_window(&s->ftx, seq, win);
    /* Credit may have grown, or unconfirmed bytes been cleared: for s's own segments and for
     * its children's Init data, which borrows s's window. */
    sst_strm_make_ready(s);
    sst_strm_wake_waiters(s);
    sst_mig_touch(s);
}

void sst_srecv_enqueue_child(struct sst_stream *parent, struct sst_stream *s)
{
    DL_APPEND2(parent->acceptq, s, aq_prev, aq_next);
    parent->nacceptq++;
    s->aq_owner = parent;
    sst_strm_post(parent, SST_EV_SUBSTREAM);
}

static bool on_init(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_ctx *c = cn->ctx;
    struct sst_stream *parent = sst_conn_find_remote(cn, p->ref_lsid);
    struct sst_stream *s = sst_conn_find_remote(cn, p->lsid);
    if (s != NULL && !s->is_root && s->remote_counter != sst_sid_extrapolate(cn->peer_counter, p->lsid)) {
        /* The peer's counter moved on: it freed that stream (which we still hold, e.g. our
         * application has not closed it) and reused the LSID after its quiet period.  The old
         * stream no longer needs the mapping (paper §4.3.3, §4.3.9). */
        sst_sidx_del(&cn->by_remote, s);
        s->has_remote = false;
        s = NULL;
    }
    if (s != NULL) {
        /* A retransmitted or continuing Init for a stream we know. */
        if (s->initiator || s->parent != parent)
            return true;
    } else {
        /* Sent before that LSID stopped naming a stream here: not a new stream.  Left
         * unacknowledged, so a genuine packet would be sent again. */
        if (sst_mig_stale(cn, p->lsid, seq))
            return false;
        if (parent == NULL || parent->err != 0) {
            sst_conn_stateless_reset(cn, p->lsid);
            return true;
        }
        /* Flow control over stream creation: a bounded queue of unaccepted children
         * (paper §2.1); top-level streams count against the root's. */
        bool refuse = parent->nacceptq >= c->cfg.max_pending;
        if (!parent->is_root && !parent->listening)
            refuse = true;
        if (refuse) {
            /* The Reset is stateless (not retransmitted): the Init stays unacknowledged, so
             * the initiator sends it again, and gets a Reset again, until one arrives.  An
             * acknowledged Init would tell it we know the stream, and it would wait for a
             * Reply forever if the Reset were lost. */
            sst_conn_stateless_reset(cn, p->lsid);
            return false;
        }
        s = sst_strm_alloc(c, cn, parent, c->cfg.rx_buffer, c->cfg.tx_buffer);
        if (s == NULL)
            return false;
        s->initiator = false;
        s->remote_lsid = p->lsid;
        uint64_t counter = sst_conn_peer_counter(cn, p->lsid);
        s->remote_counter = counter;
        s->known_ever = true;
        sst_mig_set_usid(s, counter, false);
        if (!sst_strm_set_local_lsid(s)) {
            /* No LSID of ours is free near our counter (a run of more than
             * SST_SID_MAX_IN_USE_SKIP live streams after the wrap): refused like a full
             * backlog, the Init left unacknowledged so the Reset comes again with every
             * retransmission until one arrives. */
            sst_strm_free(s);
            sst_conn_stateless_reset(cn, p->lsid);
            return false;
        }
        if (!sst_sidx_add(&cn->by_remote, s)) {
            sst_strm_free(s);
            return false;   /* unacknowledged: the peer sends the Init again */
        }
        s->has_remote = true;
        s->need_reply = true;
        sst_strm_make_ready(s);
        if (parent->is_root) {
            /* Held by the root until the service request is read. */
            s->svc = SVC_WAIT_REQUEST;
            DL_APPEND2(parent->acceptq, s, aq_prev, aq_next);
            parent->nacceptq++;
            s->aq_owner = parent;
        } else {
            sst_srecv_enqueue_child(parent, s);
        }
    }
    sst_srecv_window_from(s, seq, p->win);
    return sst_srecv_deliver(s, p->bsn, p->data, p->len, p->flags, true);
}

static bool on_reply(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_stream *s = sst_conn_find_local(cn, p->ref_lsid);
    if (s == NULL || s->is_root || !s->initiator) {
        sst_conn_stateless_reset(cn, p->lsid);
        return true;
    }
    if (!s->has_remote) {
        if (sst_conn_find_remote(cn, p->lsid) != NULL)
            return true;   /* the peer reused an LSID we still map: ignore, it will retry */
        s->remote_lsid = p->lsid;
        s->remote_counter = sst_conn_peer_counter(cn, p->lsid);
        if (!sst_sidx_add(&cn->by_remote, s))
            return false;   /* unacknowledged: the peer sends the Reply again */
        s->has_remote = true;
    } else if (s->remote_lsid != p->lsid) {
        return true;
    }
    /* A Reply proves the peer has our Init (paper §4.3.3). */
    sst_strm_confirm(s);
    sst_strm_make_ready(s);
    sst_srecv_window_from(s, seq, p->win);
    return sst_srecv_deliver(s, p->bsn, p->data, p->len, p->flags, false);
}

static bool on_data(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_stream *s = sst_conn_find_remote(cn, p->lsid);
    if (s == NULL) {
        if (sst_mig_stale(cn, p->lsid, seq))
            return false;   /* a late packet of a stream gone here: no Reset */
        sst_conn_stateless_reset(cn, p->lsid);
        return true;
    }
    sst_srecv_window_from(s, seq, p->win);
    if (s->is_root)
        return true;   /* the root carries window updates only */
    return sst_srecv_deliver(s, sst_rx_offset32(&s->rx, p->bsn), p->data, p->len, p->flags, false);
}

static bool on_reset(struct conn *cn, const struct sst_spkt *p)
{
    struct sst_stream *s = (p->flags & SST_RSTF_ORIENT) ? sst_conn_find_local(cn, p->lsid) : sst_conn_find_remote(cn, p->lsid);
    if (s == NULL || s->is_root)
        return true;   /* never answer a Reset with a Reset */
    cn->ctx->stats.resets_received++;
    s->rst_pending = false;
    s->rst_done = true;
    /* A stateless Reset for a stream the peer knew, after its Close reached us and ours was
     * sent: the peer finished and garbage-collected the stream before our last packets were
     * acknowledged (paper §4.3.8).  Not an error: it had everything it wanted. */
    if ((p->flags & SST_RSTF_ORIENT) && s->peer_knows && sst_rx_complete(&s->rx) && s->tx.fin &&
        s->err == 0) {
        sst_strm_unbind(s);
        sst_strm_maybe_free(s);
        return true;
    }
    /* A refusal reply may still sit in the buffer: read it so the right error is reported. */
    if (s->svc == SVC_WAIT_REPLY)
        sst_svc_pump(s);
    if (s->freed)
        return true;
    sst_strm_abort(s, SST_ERR_RESET, false);
    sst_strm_maybe_free(s);
    return true;
}
bool sst_srecv_recv(void *ctx, struct sst_chan *ch, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct conn *cn = ctx;
    cn->rx_seq = SST_MAX(cn->rx_seq, seq);
    /* A packet rebuilds the channel's AES-GCM states if it was compacted: a channel that only
     * receives must go quiet again too (COMPACT_IDLE after its last packet, not only its last fill). */
    cn->compact_chan_at = cn->ctx->now + COMPACT_IDLE;
    /* What the application answers from this packet's callbacks goes out with its ack, in as
     * few packets as possible: sst_ctx_recv flushes the channel after the callbacks ran. */
    if (cn->ctx->in_recv) {
        sst_chan_defer_flush(ch);
        cn->flush_due = true;
    }
    struct sst_spkt p;
    if (sst_spkt_decode(&p, payload, len) != 0) {
        /* Authenticated but not ours to parse: acknowledge and drop, retrying cannot help. */
        cn->ctx->stats.malformed++;
        return true;
    }
    switch (p.type) {
    case SST_PT_INIT:
        return on_init(cn, seq, &p);
    case SST_PT_REPLY:
        return on_reply(cn, seq, &p);
    case SST_PT_DATA:
        return on_data(cn, seq, &p);
    case SST_PT_DATAGRAM:
        return sst_dgram_on_packet(cn, seq, &p);
    case SST_PT_RESET:
        return on_reset(cn, &p);
    case SST_PT_ATTACH:
        return sst_mig_on_attach(cn, seq, &p);
    case SST_PT_DETACH:
        return sst_mig_on_detach(cn, seq, &p);
    default:
        return true;
    }
}
