/* The channel's fill/acked/lost callbacks (paper §4.3.4, §5.6): picks the stream that sends next
 * by priority, cuts and records its segment, and applies each packet's fate to its stream. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "protect.h"
#include "stream_int.h"

_Static_assert(SST_STREAM_MAX_HDR <= SST_PROTECT_GATHER_HEAD, "a stream header fits before a ring tail");

/* ---- sending: one stream-layer packet per channel packet (paper §4.3.4) ------------------ */

/* The header type a stream's next segment uses (paper §4.3.3-4.3.4): Init until the peer
 * knows our LSID if we created the stream, Reply until then if the peer did, Data after. */
unsigned sst_sched_seg_type(const struct sst_stream *s)
{
    if (s->is_root || s->peer_knows)
        return SST_PT_DATA;
    return s->initiator ? SST_PT_INIT : SST_PT_REPLY;
}

/* An Init can only name a parent the peer already knows. */
bool sst_sched_parent_known(const struct sst_stream *s)
{
    return s->parent != NULL && s->parent->has_local && (s->parent->is_root || s->parent->peer_knows);
}

static struct sst_fc_tx *seg_fc(struct sst_stream *s, unsigned type)
{
    return type == SST_PT_INIT ? &s->parent->ftx : &s->ftx;
}

/* What can_emit found. */
enum emit_verdict {
    EMIT_NOW,          /* a packet can go now */
    EMIT_IDLE,         /* nothing to send: off the ready list until new work */
    EMIT_BLOCKED,      /* work waits for our credit or confirmation: off the list until a window
                        * update, an ack, a loss or a Reply makes it ready again */
    EMIT_BLOCKED_PARENT,  /* an Init waits for the parent (known to the peer, its credit) */
    EMIT_LATER,        /* the packet offered now is too small: stay on the list */
};

/* Whether s could put a packet into `cap` bytes now; fills *seg when that packet is data. */
static enum emit_verdict can_emit(struct sst_stream *s, size_t cap, struct sst_seg *seg, bool *has_seg)
{
    *has_seg = false;
    if (s->conn == NULL)
        return EMIT_IDLE;
    if (s->win_news) {
        /* Decided now, after the callbacks of the packet that changed the window ran. */
        s->win_news = false;
        if (sst_srecv_window_news(s))
            s->need_wupdate = true;
    }
    if (!s->has_local)   /* detached: only a Reset naming the peer's LSID can go */
        return s->rst_pending && s->has_remote ? EMIT_NOW : EMIT_IDLE;
    /* Attach before anything else on this channel, Detach when idle (paper §4.3.7). */
    if (s->att == ATT_PENDING) {
        if (!s->att_init || s->parent == NULL || s->parent->is_root || s->parent->known_ever)
            return EMIT_NOW;
        return EMIT_BLOCKED_PARENT;
    }
    if (s->att == ATT_INFLIGHT || s->det == DET_INFLIGHT)
        return EMIT_BLOCKED;
    if (s->det == DET_PENDING)
        return EMIT_NOW;
    if (s->rst_pending)
        return EMIT_NOW;
    if (s->err != 0)
        return EMIT_IDLE;
    unsigned type = sst_sched_seg_type(s);
    if (type == SST_PT_INIT && !sst_sched_parent_known(s))
        return s->parent != NULL ? EMIT_BLOCKED_PARENT : EMIT_IDLE;
    if (s->dgq != NULL && type == SST_PT_DATA && !s->is_root)
        return EMIT_NOW;
    enum emit_verdict none = EMIT_IDLE;
    if (sst_tx_pending(&s->tx)) {
        if (cap <= SST_STREAM_MAX_HDR)
            return EMIT_LATER;
        uint64_t limit = type == SST_PT_DATA ? UINT64_MAX : (uint64_t)SST_INIT_BSN_MAX + 1;
        if (sst_tx_next(&s->tx, cap - SST_STREAM_MAX_HDR, limit, seg)) {
            /* A retransmission re-sends bytes the receiver's window already admitted (it keeps
             * room for the gap behind them), so it needs no fresh credit.  Gating it on credit
             * can deadlock: after a migration the acked-but-unconfirmed bytes may exceed the
             * credit while the receiver, waiting for the gap, sends no window update. */
            if (seg->retx || sst_fc_tx_allows(seg_fc(s, type), seg->len + (seg->mark ? 1 : 0))) {
                *has_seg = true;
                return EMIT_NOW;
            }
            none = type == SST_PT_INIT ? EMIT_BLOCKED_PARENT : EMIT_BLOCKED;
        } else {
            none = EMIT_BLOCKED;
        }
    }
    /* An Init whose data waits for the parent's credit still goes out bare, to create the
     * stream (its own window then carries the data; the parent's credit may be held by
     * children whose readers stall).  But the peer holds each such stream in its bounded queue
     * of streams that have not shown their service request yet (on_init, paper §2.1), and
     * refuses the excess with a stateless Reset: a burst of bare Inits -- 2 000 streams opened
     * at once under BBR's unpaced first flights -- overflowed it, and refused streams whose
     * Reset was lost waited for a Reply forever.  So only SST_BARE_INITS_MAX of a parent's
     * children may have a bare Init unconfirmed at a time; the others wait for the parent's
     * credit or a free slot (sst_strm_uncount_bare). */
    if (none == EMIT_BLOCKED_PARENT && type == SST_PT_INIT && !s->counted_bare &&
        s->parent->bare_children >= SST_BARE_INITS_MAX)
        return none;
    if (s->need_reply || s->need_wupdate)
        return EMIT_NOW;
    return none;
}

bool sst_sched_track_control(struct sst_stream *s, uint64_t seq, enum sst_txrec_kind kind, unsigned pkt_type)
{
    struct sst_txrec *r = sst_txrec_add(&s->conn->recs, seq);
    if (r == NULL)
        return false;
    r->kind = (uint8_t)kind;
    r->pkt_type = (uint8_t)pkt_type;
    r->stream = s;
    s->nrecs++;
    return true;
}

static size_t emit_reset(struct sst_stream *s, uint64_t seq, uint8_t *buf, size_t cap)
{
    struct conn *cn = s->conn;
    struct sst_spkt p = { .type = SST_PT_RESET };
    if (s->has_local && (s->peer_knows || !s->has_remote)) {
        p.lsid = s->local_lsid;
    } else {
        p.lsid = s->remote_lsid;
        p.flags = SST_RSTF_ORIENT;
    }
    size_t n = sst_spkt_put_hdr(buf, cap, &p);
    if (n == 0 || !sst_sched_track_control(s, seq, SST_TXREC_RESET, SST_PT_RESET))
        return 0;
    s->rst_pending = false;
    s->rst_inflight = true;
    cn->ctx->stats.resets_sent++;
    return n;
}
/* The window to put in a packet: the current one, except that a single-step rise to the full
 * buffer is held back until a quarter of the buffer has been read since the last advertisement
 * (the periodic update, stream_fc.c).  With a power-of-two encoding the full window (4 MiB - 1
 * for 4 MiB) is only representable while nothing is held, so a reader that drains each packet at
 * once flips between it and half of it: every packet we sent right after a read (a reply, an
 * update) advertised the full window, the next data packet dropped it again, which
 * sst_srecv_window_check must announce, and the receiver sent about one ack-eliciting update per
 * data packet.  Advertising less than the room is always safe; a rise from below half the buffer
 * (a sender that may be waiting) is never held back, nor is the root's protocol-fixed window.
 * Sets *held when it held the rise back: that packet does not count as an advertisement. */
static uint8_t window_to_advertise(const struct sst_stream *s, bool *held)
{
    uint8_t now = sst_fc_rx_window(&s->frx);
    *held = !s->is_root && now == s->adv_win + 1 && now == sst_fc_win_encode(s->frx.limit) &&
            !sst_fc_rx_update_due(&s->frx);
    return *held ? s->adv_win : now;
}

static size_t emit_segment(struct sst_stream *s, struct sst_chan *ch, uint64_t seq, uint8_t *buf,
                           size_t cap, const struct sst_seg *seg, bool has_seg)
{
    struct conn *cn = s->conn;
    unsigned type = sst_sched_seg_type(s);
    struct sst_spkt p = {
        .type = (uint8_t)type,
        .lsid = s->local_lsid,
    };
    bool win_held;
    p.win = window_to_advertise(s, &win_held);
    if (type == SST_PT_INIT)
        p.ref_lsid = s->parent->local_lsid;
    else if (type == SST_PT_REPLY)
        p.ref_lsid = s->remote_lsid;
    struct sst_seg empty = { .off = s->tx.sent, .len = 0, .fin = false };
    const struct sst_seg *g = has_seg ? seg : &empty;
    if (!has_seg && type != SST_PT_DATA && g->off > SST_INIT_BSN_MAX)
        empty.off = 0;   /* a bare Init/Reply: any in-range BSN will do */
    p.bsn = (uint32_t)g->off;
    /* A record boundary is one unit of sequence space after the segment's bytes (Mark). */
    size_t units = g->len + (g->mark ? 1 : 0);
    if (g->fin)
        p.flags |= SST_SF_CLOSE;
    if (g->mark)
        p.flags |= SST_SF_MARK;
    if (has_seg && g->off + units == s->tx.end)
        p.flags |= SST_SF_PUSH;
    size_t hl = sst_spkt_put_hdr(buf, cap, &p);
    if (hl == 0 || hl + g->len > cap)
        return 0;
    struct sst_txrec *r = sst_txrec_add(&cn->recs, seq);
    if (r == NULL)
        return 0;
    r->kind = SST_TXREC_SEG;
    r->pkt_type = (uint8_t)type;
    r->stream = s;
    s->nrecs++;
    r->off = g->off;
    r->span = (uint32_t)(units + (g->fin ? 1 : 0));
    r->charged = (uint32_t)units;
    r->borrowed = type == SST_PT_INIT;
    if (has_seg) {
        /* The payload stays in the ring when it lies there in one piece: the channel seals it
         * from there into the datagram (sst_chan_fill_tail); else it is copied here. */
        uint8_t *src = hl <= SST_PROTECT_GATHER_HEAD ?
                       sst_tx_ref(&s->tx, g->off, g->len, SST_PROTECT_GATHER_HEAD) : NULL;
        if (src != NULL) {
            sst_chan_fill_tail(ch, src, g->len);
            cn->ctx->stats.payload_in_ring++;
        } else {
            sst_tx_copy(&s->tx, g->off, buf + hl, g->len);
            cn->ctx->stats.payload_copied += g->len > 0;
        }
        sst_tx_commit(&s->tx, g);
        sst_fc_tx_charge(seg_fc(s, type), units);
    }
    if (type == SST_PT_INIT && !has_seg && !s->counted_bare && sst_tx_pending(&s->tx)) {
        s->counted_bare = true;
        s->parent->bare_children++;
    }
    if (type == SST_PT_REPLY)
        s->need_reply = false;
    s->need_wupdate = false;
    s->win_news = false;
    s->adv_win = p.win;
    if (!win_held)
        sst_fc_rx_advertised(&s->frx);
    return hl + g->len;
}

static size_t emit(struct sst_stream *s, struct sst_chan *ch, uint64_t seq, uint8_t *buf, size_t cap,
                   const struct sst_seg *seg, bool has_seg)
{
    if (s->has_local && s->att == ATT_PENDING)
        return sst_mig_emit_attach(s, seq, buf, cap);
    if (s->has_local && s->det == DET_PENDING)
        return sst_mig_emit_detach(s, seq, buf, cap);
    if (s->rst_pending)
        return emit_reset(s, seq, buf, cap);
    if (s->dgq != NULL && !s->is_root && sst_sched_seg_type(s) == SST_PT_DATA)
        return sst_dgram_emit(s, buf, cap);
    return emit_segment(s, ch, seq, buf, cap, seg, has_seg);
}


size_t sst_sched_fill(void *ctx, struct sst_chan *ch, uint64_t seq, uint8_t *buf, size_t cap)
{
    struct conn *cn = ctx;
    /* A record under this sequence number means that packet never left (the channel refused
     * it after fill): treat it as lost before reusing the number.  Records are only added here,
     * under the number of the fill that made them, and numbers never go down, so only a number
     * an earlier fill already had can have one: a fresh number skips the hash lookup. */
    bool reused = seq <= cn->tx_seq;
    cn->tx_seq = seq;
    struct sst_txrec stale;
    if (reused && sst_txrec_take(&cn->recs, seq, &stale))
        sst_sched_on_record(cn, &stale, false);
    if (cn->nrst > 0 && cap >= SST_RESET_LEN) {
        struct sst_spkt p = { .type = SST_PT_RESET, .flags = cn->rst_flags[0], .lsid = cn->rst_lsid[0] };
        cn->nrst--;
        memmove(cn->rst_lsid, cn->rst_lsid + 1, cn->nrst * sizeof cn->rst_lsid[0]);
        memmove(cn->rst_flags, cn->rst_flags + 1, cn->nrst);
        return sst_spkt_put_hdr(buf, cap, &p);
    }
    /* Strict priority between levels, round-robin within one: the ready list is rotated so
     * the first sendable stream of the highest level is the least recently served. */
    struct sst_stream *best = NULL, *s, *tmp;
    struct sst_seg seg, best_seg;
    bool has_seg, best_has = false;
    cn->ctx->stats.fill_calls++;
    DL_FOREACH_SAFE2(cn->ready, s, tmp, rd_next) {
        cn->ctx->stats.fill_scanned++;
        enum emit_verdict v = can_emit(s, cap, &seg, &has_seg);
        if (v != EMIT_NOW) {
            /* Nothing it can send now: blocked streams leave the list until the event that
             * unblocks them, so each packet scans only streams that can send. */
            if (v == EMIT_IDLE || v == EMIT_BLOCKED)
                sst_strm_unready(s);
            else if (v == EMIT_BLOCKED_PARENT)
                sst_strm_wait_on_parent(s);
            continue;
        }
        if (best == NULL || s->prio > best->prio) {
            best = s;
            best_seg = seg;
            best_has = has_seg;
        }
    }
    if (best == NULL)
        return 0;
    cn->in_fill = true;
    size_t n = emit(best, ch, seq, buf, cap, &best_seg, best_has);
    cn->in_fill = false;
    if (n > 0 && !best->freed)
        sst_mig_touch(best);
    if (n > 0) {
        cn->last_fill = cn->ctx->now;
        cn->compact_chan_at = cn->last_fill + COMPACT_IDLE;
    }
    if (best->in_ready) {
        DL_DELETE2(cn->ready, best, rd_prev, rd_next);
        DL_APPEND2(cn->ready, best, rd_prev, rd_next);
    }
    return n;
}

/* ---- packet fates ------------------------------------------------------------------------ */

void sst_sched_on_record(struct conn *cn, const struct sst_txrec *r, bool acked)
{
    (void)cn;
    struct sst_stream *s = r->stream;
    if (s == NULL)
        return;
    s->nrecs--;
    if (r->kind == SST_TXREC_ATTACH || r->kind == SST_TXREC_DETACH) {
        sst_mig_on_record(s, r, acked);
        return;
    }
    if (r->kind == SST_TXREC_RESET) {
        s->rst_inflight = false;
        if (acked) {
            s->rst_done = true;
            sst_strm_unbind(s);
            sst_strm_maybe_free(s);
        } else {
            s->rst_pending = true;
            sst_strm_make_ready(s);
        }
        return;
    }
    struct sst_fc_tx *fc = r->borrowed ? (s->parent != NULL ? &s->parent->ftx : NULL) : &s->ftx;
    if (fc != NULL && acked)
        sst_fc_tx_acked(fc, r->charged);
    else if (fc != NULL)
        sst_fc_tx_release(fc, r->charged);
    /* Borrowed bytes changed the parent's credit: its children's Inits may fit now. */
    if (r->borrowed && s->parent != NULL)
        sst_strm_wake_waiters(s->parent);
    if (acked) {
        uint64_t before = sst_tx_space(&s->tx);
        s->ctx->stats.tx_acked += r->span;
        sst_tx_acked(&s->tx, r->off, r->span);
        if (r->pkt_type == SST_PT_INIT || r->pkt_type == SST_PT_REPLY)
            sst_strm_confirm(s);
        if (s->want_write && sst_tx_space(&s->tx) > before) {
            s->want_write = false;
            sst_strm_post(s, SST_EV_WRITABLE);
        }
        /* More credit (ours or, for borrowed bytes, the parent's children's) may be usable. */
        sst_strm_make_ready(s);
        sst_strm_maybe_free(s);
    } else {
        sst_tx_lost(&s->tx, r->off, r->span);
        if (r->span == 0 && r->pkt_type == SST_PT_REPLY && !s->peer_knows)
            s->need_reply = true;
        else if (r->span == 0)
            s->need_wupdate = true;
        sst_strm_make_ready(s);
    }
}

void sst_sched_acked(void *ctx, struct sst_chan *ch, uint64_t seq)
{
    struct conn *cn = ctx;
    struct sst_txrec r;
    if (sst_txrec_take(&cn->recs, seq, &r))
        sst_sched_on_record(cn, &r, true);
}

void sst_sched_lost(void *ctx, struct sst_chan *ch, uint64_t seq)
{
    struct conn *cn = ctx;
    struct sst_txrec r;
    if (sst_txrec_take(&cn->recs, seq, &r))
        sst_sched_on_record(cn, &r, false);
}
