/* Stream migration (paper §4.3.7): USIDs, Attach and Detach, idle streams giving up their LSIDs,
 * and streams surviving their channel (link failure, peer address change) by re-attaching to a
 * new channel to the same peer. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

/* ---- USIDs (paper §4.3.1, §4.3.3) ----------------------------------------------------------- */

void sst_mig_set_usid(struct sst_stream *s, uint64_t counter, bool ours)
{
    struct sst_ctx *c = s->ctx;
    if (s->usid_set || s->conn == NULL || s->conn->ch == NULL)
        return;
    s->usid = sst_sid_usid(counter, sst_chan_usid_nonce(s->conn->ch, ours));
    /* A duplicate cannot happen with distinct nonces; such a stream (or one we have no memory
     * to index) just cannot migrate. */
    if (sst_sidx_find_usid(&c->by_usid, &s->usid) != NULL || !sst_sidx_add(&c->by_usid, s))
        return;
    s->usid_set = true;
}

void sst_mig_forget_usid(struct sst_stream *s)
{
    if (!s->usid_set)
        return;
    sst_sidx_del(&s->ctx->by_usid, s);
    s->usid_set = false;
}

static struct sst_stream *find_usid(struct sst_ctx *c, const struct sst_usid *u)
{
    return sst_sidx_find_usid(&c->by_usid, u);
}

/* Streams migrate only between channels to the same host key; the address may change. */
static bool same_peer(const struct conn *a, const struct conn *b)
{
    if (a->have_key && b->have_key)
        return memcmp(a->peer_key, b->peer_key, sizeof a->peer_key) == 0;
    return sst_addr_eq(&a->peer, &b->peer);
}

/* Whether the streams of limbo conn `from` may move to the live conn `to`: the same peer, and
 * either at the address they had, or on a channel the peer initiated -- a peer that moved
 * reconnects from its new address (protocol-streams.md "Peer address change").  A channel we
 * initiated to another address that shows the same key is another endpoint holding that key
 * (two processes of one user, each on its own UDP port with the default key directory), not
 * the peer that moved: a stream taken there would be created by its Attach in the wrong
 * program (until 2026-11-22: a stream to a restarted server was accepted by its neighbour, or
 * waited for that neighbour's dead channel to time out). */
static bool may_adopt(const struct conn *from, const struct conn *to)
{
    return same_peer(from, to) && (sst_addr_eq(&from->peer, &to->peer) || !to->chan_initiator);
}

/* ---- idle tracking ------------------------------------------------------------------------ */

void sst_mig_untrack(struct sst_stream *s)
{
    if (s->in_idle) {
        if (s->conn->compact == s)
            s->conn->compact = s->idle_next;
        DL_DELETE2(s->conn->idle, s, idle_prev, idle_next);
        s->in_idle = false;
    }
}

void sst_mig_touch(struct sst_stream *s)
{
    struct sst_ctx *c = s->ctx;
    /* Tracked even with detach_idle 0: the list also drives compaction (COMPACT_IDLE). */
    if (s->is_root || s->conn == NULL || !s->has_local)
        return;
    s->last_active = c->now;
    sst_mig_untrack(s);
    DL_APPEND2(s->conn->idle, s, idle_prev, idle_next);
    s->in_idle = true;
    /* Active again: compacted once more after COMPACT_IDLE (it is the newest on the list). */
    if (s->conn->compact == NULL)
        s->conn->compact = s;
}

void sst_mig_after_read(struct sst_stream *s)
{
    /* Only inactive streams: an active one is compacted by the timer once it pauses, and
     * reading is not what keeps its ring in use (no allocation per read). */
    if (s->in_idle && s->last_active + COMPACT_IDLE <= s->ctx->now)
        sst_rx_compact(&s->rx);
}

/* An idle stream may give up its LSID: nothing of ours in flight or waiting, confirmed both
 * ways, and nothing that names its LSID still pending (children's Inits). */
static bool may_detach(const struct sst_stream *s)
{
    return s->has_local && s->peer_knows && s->att == ATT_NONE && s->det == DET_NONE &&
           s->err == 0 && !s->rst_pending && !s->rst_inflight && s->nrecs == 0 &&
           !sst_strm_has_work(s) && s->unconfirmed_children == 0 && s->waiters == NULL &&
           s->svc == SVC_NONE && s->usid_set && !s->ephemeral &&
           (!s->initiator || s->has_remote || s->remote_detached);
}

/* ---- our side: Attach and Detach -------------------------------------------------------- */

static bool start_attach(struct sst_stream *s)
{
    if (!sst_strm_set_local_lsid(s))
        return false;
    s->att = ATT_PENDING;
    s->peer_knows = false;
    /* A stream the peer may never have heard of (our Init was never confirmed) is attached
     * with its parent's USID, so the peer can create it (Attach with I set). */
    s->att_init = s->initiator && !s->known_ever;
    return true;
}

void sst_mig_need_attach(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    if (cn == NULL || !cn->up || s->has_local || s->is_root || s->local_only || !s->usid_set ||
        s->att != ATT_NONE || s->det != DET_NONE)
        return;
    if (!start_attach(s))
        sst_strm_abort(s, SST_ERR_LIMIT, false);
}

static void put_parent_usid(const struct sst_stream *s, struct sst_spkt *p)
{
    /* The root has no USID of its own: all zero names "the root of this channel". */
    if (s->parent != NULL && !s->parent->is_root)
        p->parent_usid = s->parent->usid;
}

size_t sst_mig_emit_attach(struct sst_stream *s, uint64_t seq, uint8_t *buf, size_t cap)
{
    struct sst_spkt p = {
        .type = SST_PT_ATTACH,
        .lsid = s->local_lsid,
        .win = sst_fc_rx_window(&s->frx),
        .usid = s->usid,
    };
    if (s->att_init) {
        p.flags |= SST_ATTF_INIT;
        put_parent_usid(s, &p);
    }
    size_t n = sst_spkt_put_hdr(buf, cap, &p);
    if (n == 0 || !sst_sched_track_control(s, seq, SST_TXREC_ATTACH, SST_PT_ATTACH))
        return 0;
    s->att = ATT_INFLIGHT;
    s->adv_win = p.win;
    sst_fc_rx_advertised(&s->frx);
    s->ctx->stats.attaches_sent++;
    return n;
}

size_t sst_mig_emit_detach(struct sst_stream *s, uint64_t seq, uint8_t *buf, size_t cap)
{
    struct sst_spkt p = { .type = SST_PT_DETACH, .lsid = s->local_lsid };
    size_t n = sst_spkt_put_hdr(buf, cap, &p);
    if (n == 0 || !sst_sched_track_control(s, seq, SST_TXREC_DETACH, SST_PT_DETACH))
        return 0;
    s->det = DET_INFLIGHT;
    s->ctx->stats.detaches_sent++;
    return n;
}

void sst_mig_on_record(struct sst_stream *s, const struct sst_txrec *r, bool acked)
{
    struct conn *cn = s->conn;
    if (r->kind == SST_TXREC_ATTACH) {
        if (s->att != ATT_INFLIGHT)
            return;
        if (!acked) {
            s->att = ATT_PENDING;
        } else {
            /* The peer has associated our LSID with the stream: Data may flow. */
            s->att = ATT_NONE;
            s->known_ever = true;
            sst_strm_confirm(s);
        }
        sst_strm_make_ready(s);
        return;
    }
    if (s->det != DET_INFLIGHT)
        return;
    if (!acked) {
        s->det = DET_PENDING;
        sst_strm_make_ready(s);
        return;
    }
    /* The peer forgot our LSID: it enters the quiet period (paper §4.3.9). */
    s->det = DET_NONE;
    sst_mig_untrack(s);
    sst_sidx_del(&cn->by_local, s);
    sst_sid_release(&cn->sid, s->local_lsid, sst_conn_quiet_tx(cn), sst_conn_quiet_rx(cn));
    s->has_local = false;
    s->peer_knows = false;
    /* An idle stream keeps only its state, not its buffers' storage (paper §4.3.7: open
     * streams bounded by memory). */
    sst_rx_compact(&s->rx);
    sst_tx_compact(&s->tx);
    /* Work that arrived while the Detach was in flight attaches the stream again. */
    sst_strm_make_ready(s);
}

/* ---- the peer's side: Attach and Detach received ---------------------------------------- */

/* Moves s (on another conn, or in limbo) to cn: its packets in flight there count as lost and
 * will be sent again with fresh sequence numbers on cn; it gets a new LSID and attaches. */
static void stream_move(struct sst_stream *s, struct conn *cn, bool lazy)
{
    struct conn *old = s->conn;
    if (old == cn)
        return;
    if (old != NULL) {
        struct sst_txrec r;
        for (uint64_t q = old->recs.base; s->nrecs > 0 && q < old->recs.top; q++) {
            struct sst_txrec *p = sst_txrec_find(&old->recs, q);
            if (p != NULL && p->stream == s && sst_txrec_take(&old->recs, q, &r))
                sst_sched_on_record(old, &r, false);
        }
        sst_mig_untrack(s);
        sst_strm_unready(s);
        if (s->has_local) {
            sst_sidx_del(&old->by_local, s);
            if (!old->limbo)
                sst_sid_release(&old->sid, s->local_lsid, sst_conn_quiet_tx(old), sst_conn_quiet_rx(old));
        }
        if (s->has_remote)
            sst_sidx_del(&old->by_remote, s);
        DL_DELETE2(old->streams, s, cn_prev, cn_next);
        /* Top-level streams hang off the channel's root: re-parent them to the new root. */
        if (s->parent == old->root) {
            struct sst_stream *oroot = old->root, *nroot = cn->root;
            sst_strm_unwait(s);   /* off the old root's waiters before the parent changes */
            DL_DELETE2(oroot->kids, s, kid_prev, kid_next);
            DL_APPEND2(nroot->kids, s, kid_prev, kid_next);
            s->parent = nroot;
            if (s->aq_owner == oroot) {
                DL_DELETE2(oroot->acceptq, s, aq_prev, aq_next);
                oroot->nacceptq--;
                DL_APPEND2(nroot->acceptq, s, aq_prev, aq_next);
                nroot->nacceptq++;
                s->aq_owner = nroot;
            }
            if (s->counted_unconfirmed) {
                oroot->unconfirmed_children--;
                nroot->unconfirmed_children++;
            }
            if (s->counted_bare) {
                oroot->bare_children--;
                nroot->bare_children++;
            }
            if (s->borrowed > 0) {
                sst_fc_rx_release(&oroot->frx, s->borrowed);
                sst_fc_rx_charge(&nroot->frx, s->borrowed);
            }
        }
    }
    if (old == NULL)
        DL_DELETE2(s->ctx->orphans, s, cn_prev, cn_next);
    s->conn = cn;
    s->peer = cn->peer;
    DL_APPEND2(cn->streams, s, cn_prev, cn_next);
    s->has_local = s->has_remote = false;
    s->peer_knows = false;
    s->need_reply = false;
    s->att = ATT_NONE;
    s->det = DET_NONE;
    s->rst_inflight = false;
    /* Windows come with the new channel's sequence numbers. */
    s->ftx.win_seq = 0;
    if (s->err != 0 && !s->rst_pending)
        return;
    /* Streams coming back from a dormant conn attach only when they have something to send
     * (or the peer attaches them): a thousand idle streams cost no packets on reconnection. */
    if (lazy && !sst_strm_has_work(s))
        return;
    if (cn->up && !start_attach(s)) {
        sst_strm_abort(s, SST_ERR_LIMIT, false);
        return;
    }
    sst_strm_make_ready(s);
}

/* Creates the stream an Attach with I set describes, as on_init would for an Init. */
static struct sst_stream *attach_create(struct conn *cn, const struct sst_spkt *p)
{
    struct sst_ctx *c = cn->ctx;
    static const struct sst_usid zero;
    struct sst_stream *parent;
    if (find_usid(c, &p->usid) != NULL)
        return NULL;   /* a stream we still hold under that USID but cannot attach (gone) */
    if (sst_usid_eq(&p->parent_usid, &zero))
        parent = cn->root;
    else
        parent = find_usid(c, &p->parent_usid);
    if (parent == NULL || parent->err != 0 || parent->conn == NULL || !same_peer(parent->conn, cn))
        return NULL;
    if (parent->nacceptq >= c->cfg.max_pending || (!parent->is_root && !parent->listening))
        return NULL;
    struct sst_stream *s = sst_strm_alloc(c, cn, parent, c->cfg.rx_buffer, c->cfg.tx_buffer);
    if (s == NULL)
        return NULL;
    s->initiator = false;
    s->known_ever = true;
    s->usid = p->usid;
    if (!sst_sidx_add(&c->by_usid, s)) {
        sst_strm_free(s);
        return NULL;
    }
    s->usid_set = true;
    if (parent->is_root) {
        s->svc = SVC_WAIT_REQUEST;
        DL_APPEND2(parent->acceptq, s, aq_prev, aq_next);
        parent->nacceptq++;
        s->aq_owner = parent;
    } else {
        sst_srecv_enqueue_child(parent, s);
    }
    return s;
}

/* Both channel nonces, combined so that both hosts compute the same value for a channel. */
static uint64_t chan_rank(const struct conn *cn)
{
    return sst_chan_usid_nonce(cn->ch, true) ^ sst_chan_usid_nonce(cn->ch, false);
}

/* When both hosts re-establish a channel at the same moment (both had data for streams whose
 * channel idled out), two live channels join the same pair, one initiated by each side.  Each
 * side may have moved the streams to a different one; so that they do not chase each other,
 * both sides keep streams on the channel of lower rank.  Two channels initiated by the same
 * side (a peer that moved to a new address) are not a race: the Attach always wins. */
static bool duplicate_loses(const struct conn *cn, const struct conn *cur)
{
    return cur->up && cur->ch != NULL && cn->ch != NULL && same_peer(cur, cn) &&
           cur->chan_initiator != cn->chan_initiator && chan_rank(cur) < chan_rank(cn);
}

bool sst_mig_on_attach(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_ctx *c = cn->ctx;
    c->stats.attaches_received++;
    struct sst_stream *s = find_usid(c, &p->usid);
    if (s != NULL && (s->freed || s->local_only || s->conn == NULL || !same_peer(s->conn, cn)))
        s = NULL;
    if (s == NULL && (p->flags & SST_ATTF_INIT))
        s = attach_create(cn, p);
    if (s == NULL) {
        /* No such stream here (a restarted peer, or one already gone): refuse (§4.3.8).  The
         * Reset is one-shot, so the Attach stays unacknowledged and comes again until a Reset
         * reaches the attacher; acknowledged, a lost Reset would leave the attacher believing
         * its stream attached (the liveness probe, protocol-streams.md §2c, relies on this). */
        sst_conn_stateless_reset(cn, p->lsid);
        return false;
    }
    if (s->conn != cn && duplicate_loses(cn, s->conn)) {
        /* Both sides reconnected at once: the streams settle on the other channel.  Leave
         * this Attach unacknowledged (the peer resends it until our Attach on the winning
         * channel moves its stream there) and make sure ours goes out. */
        if (!s->has_local && s->att == ATT_NONE && s->det == DET_NONE && !start_attach(s)) {
            sst_strm_abort(s, SST_ERR_LIMIT, false);
            return true;
        }
        sst_strm_make_ready(s);
        c->stats.attaches_deferred++;
        return false;
    }
    if (s->conn != cn) {
        c->stats.migrations += s->conn->limbo ? 0 : 1;
        stream_move(s, cn, false);
    }
    if (s->conn != cn)
        return true;   /* aborted while moving */
    if (!s->has_local && s->att == ATT_NONE && s->det == DET_NONE && cn->up && !start_attach(s)) {
        sst_strm_abort(s, SST_ERR_LIMIT, false);
        return true;
    }
    if (!s->has_remote || s->remote_lsid != p->lsid) {
        struct sst_stream *other = sst_conn_find_remote(cn, p->lsid);
        if (other != NULL && other != s && !other->is_root) {
            /* A mapping the peer gave up without our noticing: the Attach is newer. */
            sst_sidx_del(&cn->by_remote, other);
            other->has_remote = false;
        }
        if (s->has_remote)
            sst_sidx_del(&cn->by_remote, s);
        s->has_remote = false;
        s->remote_lsid = p->lsid;
        s->remote_counter = sst_conn_peer_counter(cn, p->lsid);
        if (!sst_sidx_add(&cn->by_remote, s))
            return false;   /* unacknowledged: the peer sends the Attach again */
        s->has_remote = true;
    }
    sst_srecv_window_from(s, seq, p->win);
    sst_mig_touch(s);
    sst_strm_make_ready(s);
    return true;
}

bool sst_mig_on_detach(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_stream *s = sst_conn_find_remote(cn, p->lsid);
    if (s == NULL || s->is_root)
        return true;
    cn->ctx->stats.detaches_received++;
    sst_sidx_del(&cn->by_remote, s);
    s->has_remote = false;
    s->remote_detached = true;
    sst_mig_gone(cn, p->lsid, seq);
    /* Only a peer that knew our LSID for the stream detaches it: Init/Reply are done. */
    sst_strm_confirm(s);
    return true;
}

void sst_mig_gone(struct conn *cn, uint16_t lsid, uint64_t seq)
{
    struct gone_ring *g = cn->gone;
    if (g == NULL) {
        /* Without memory the release is not remembered: a delayed packet may then draw a
         * stateless Reset, which the peer ignores for a stream it no longer has. */
        g = cn->gone = calloc(1, sizeof *g);
        if (g == NULL)
            return;
    }
    g->lsid[g->next] = lsid;
    g->seq[g->next] = seq;
    g->next = (g->next + 1) % GONE_RING;
}

bool sst_mig_stale(struct conn *cn, uint16_t lsid, uint64_t seq)
{
    const struct gone_ring *g = cn->gone;
    if (g == NULL)
        return false;
    for (unsigned i = 0; i < GONE_RING; i++)
        if (g->seq[i] != 0 && g->lsid[i] == lsid && seq < g->seq[i])
            return true;
    return false;
}

/* An idle channel gives the ring back once every entry is past the mis-ordering limit: the
 * channel's replay window then rejects any packet sent before those releases (§4.3.9). */
static void gone_compact(struct conn *cn)
{
    const struct gone_ring *g = cn->gone;
    if (g == NULL)
        return;
    for (unsigned i = 0; i < GONE_RING; i++)
        if (g->seq[i] != 0 && cn->rx_seq < g->seq[i] + SST_SID_QUIET_PKTS)
            return;
    free(cn->gone);
    cn->gone = NULL;
}

/* ---- channels failing and coming up ------------------------------------------------------ */

/* Moves every stream of limbo conn `from` to `to` and frees `from`. */
static void adopt_limbo(struct conn *from, struct conn *to)
{
    struct sst_ctx *c = from->ctx;
    struct sst_stream *s, *tmp;
    bool lazy = from->dormant;
    from->dormant = false;
    DL_FOREACH_SAFE2(from->streams, s, tmp, cn_next) {
        if (!s->is_root)
            stream_move(s, to, lazy);
    }
    if (lazy)
        c->stats.idle_resumes++;
    else
        c->stats.migrations++;
    sst_conn_down(from, SST_ERR_TIMEOUT);   /* only the root is left */
}

void sst_mig_conn_up(struct conn *cn)
{
    struct sst_ctx *c = cn->ctx;
    struct sst_chan_stats st;
    sst_chan_get_stats(cn->ch, &st);
    static const uint8_t zero[32];
    cn->have_key = memcmp(st.peer_key, zero, sizeof zero) != 0;
    cn->we_reconnect = st.initiator;
    cn->chan_initiator = st.initiator;
    cn->was_up = true;
    memcpy(cn->peer_key, st.peer_key, sizeof cn->peer_key);
    /* Streams opened while the channel was connecting get their USIDs now. */
    struct sst_stream *s;
    DL_FOREACH2(cn->streams, s, cn_next) {
        if (s->initiator && s->has_local && !s->usid_set && !s->is_root)
            sst_mig_set_usid(s, s->usid.counter, true);
    }
    struct conn *o, *tmp;
    DL_FOREACH_SAFE(c->conns, o, tmp) {
        if (o == cn || !o->limbo)
            continue;
        if (may_adopt(o, cn)) {
            adopt_limbo(o, cn);
        } else if (o->we_reconnect && !o->dormant && sst_addr_eq(&o->peer, &cn->peer)) {
            /* Another host answers at the peer's address: the streams cannot come back. */
            sst_conn_down(o, SST_ERR_RESET);
        }
    }
}

static bool finished(const struct sst_stream *s)
{
    return sst_tx_done(&s->tx) && (s->rd_shut || sst_rx_complete(&s->rx));
}

bool sst_mig_conn_down(struct conn *cn, int err)
{
    struct sst_ctx *c = cn->ctx;
    /* A graceful close (err 0: our idle timeout, or the peer closed the channel) leaves the
     * streams dormant, like an idle TCP connection: no deadline, no packets.  A link failure
     * (SST_ERR_TIMEOUT) puts them in limbo for migrate_timeout.  So does the peer's stateless
     * reset of a channel we initiated (SST_ERR_RESET: the peer forgot it -- it restarted, or
     * freed it after an idle timeout whose CLOSE we missed): we reconnect at once, and on the
     * new channel streams it still has (dormant) re-attach, streams it lost get a stateless
     * Reset for their USID, and streams it never heard of (our Init unconfirmed, e.g. opened
     * on the stale channel) are created by their Attach -- instead of all of them failing with
     * the channel.  The responder of a reset channel is not the one to reconnect: waiting in
     * limbo for a peer that restarted would only hold its streams for migrate_timeout, so they
     * fail at once as before. */
    bool idle = err == SST_OK;
    bool lost_link = err == SST_ERR_TIMEOUT || (err == SST_ERR_RESET && cn->chan_initiator);
    if (cn->limbo || !cn->was_up || (!idle && (!lost_link || c->cfg.migrate_timeout == 0)))
        return false;
    bool any = false;
    struct sst_stream *s, *tmp;
    DL_FOREACH2(cn->streams, s, cn_next) {
        if (!s->is_root && s->err == 0 && !finished(s))
            any = true;
    }
    if (!any)
        return false;
    /* Everything in flight on the dead channel is lost: retransmitted on the next one. */
    struct sst_txrec r;
    for (uint64_t q = cn->recs.base; q < cn->recs.top; q++) {
        if (sst_txrec_take(&cn->recs, q, &r))
            sst_sched_on_record(cn, &r, false);
    }
    sst_txrec_free_all(&cn->recs);
    sst_txrec_init(&cn->recs, c->cfg.max_txrecs);
    DL_FOREACH_SAFE2(cn->streams, s, tmp, cn_next) {
        if (s->is_root)
            continue;
        sst_mig_untrack(s);
        sst_strm_unready(s);
        if (s->err != 0 || s->rst_pending || s->rst_inflight || finished(s)) {
            /* Done or aborting: nothing worth carrying over (the peer times out its side). */
            s->rst_pending = s->rst_inflight = false;
            sst_strm_unbind(s);
            continue;
        }
        s->has_local = s->has_remote = false;
        s->peer_knows = false;
        s->att = ATT_NONE;
        s->det = DET_NONE;
    }
    sst_sidx_clear(&cn->by_local);
    sst_sidx_clear(&cn->by_remote);
    sst_strm_unready(cn->root);
    cn->ready = NULL;
    sst_dgram_free_partials(cn);
    cn->nrst = 0;
    sst_sid_free(&cn->sid);
    sst_sid_init(&cn->sid);
    cn->ch = NULL;
    cn->up = false;
    cn->limbo = true;
    cn->limbo_until = c->now + c->cfg.migrate_timeout;
    cn->backoff = MIG_BACKOFF_MIN;
    cn->retry_at = c->now;
    if (idle) {
        cn->dormant = true;
        cn->we_reconnect = false;
        c->stats.idle_closes++;
        cn->limbo_until = SST_TIME_NEVER;
        cn->probe_at = c->cfg.liveness_probe > 0 ? c->now + c->cfg.liveness_probe : SST_TIME_NEVER;
    }
    sst_conn_free_unowned(c);
    /* A channel to the same peer may already be up (the peer moved and reconnected first). */
    struct conn *o;
    DL_FOREACH(c->conns, o) {
        if (o != cn && o->up && may_adopt(cn, o)) {
            adopt_limbo(cn, o);
            return true;
        }
    }
    if (idle) {
        /* A dormant stream keeps its state, not its buffers' storage (idle streams are cheap);
         * one that still has something to send wakes the conn at once. */
        struct sst_stream *busy = NULL;
        DL_FOREACH2(cn->streams, s, cn_next) {
            if (s->is_root)
                continue;
            sst_rx_compact(&s->rx);
            sst_tx_compact(&s->tx);
            if (busy == NULL && sst_strm_has_work(s))
                busy = s;
        }
        if (busy != NULL)
            sst_mig_wake(busy);
    }
    return true;
}

/* From here on a dormant conn is a link failure like any other: reconnect at once, then with
 * backoff, and fail the streams with SST_ERR_TIMEOUT if the peer cannot be reached in time.
 * Once a channel is up every stream attaches (the conn is no longer dormant: adopt_limbo is
 * not lazy), so a peer that lost them answers each Attach with a stateless Reset. */
static void conn_wake(struct conn *cn)
{
    struct sst_ctx *c = cn->ctx;
    cn->dormant = false;
    cn->we_reconnect = true;
    cn->limbo_until = c->now + SST_MAX(c->cfg.migrate_timeout, DORMANT_WAKE_MIN);
    cn->backoff = MIG_BACKOFF_MIN;
    cn->retry_at = c->now;
    cn->probe_at = SST_TIME_NEVER;
    c->mig_kick = true;
}

/* Streams on a dormant conn wait for whichever side first has something to send. */
void sst_mig_wake(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    if (cn == NULL || !cn->dormant)
        return;
    conn_wake(cn);
    s->ctx->stats.idle_wakes++;
}

/* The peer's kernel refused our handshake (ICMP port unreachable): no SST endpoint listens at
 * the peer's address any more, so the process that held these streams is gone.  Like TCP's
 * RST, it ends them at once instead of after the reconnection deadline.  Only conns that were
 * trying to reach that address (woken, probing or migrating) are concerned; ICMP is not
 * authenticated, so it never touches a live channel (host.h, sst_host_unreachable). */
void sst_mig_refused(struct sst_ctx *c, const struct sst_addr *peer)
{
    struct conn *cn, *tmp;
    DL_FOREACH_SAFE(c->conns, cn, tmp) {
        if (cn->limbo && !cn->dormant && cn->we_reconnect && sst_addr_eq(&cn->peer, peer) &&
            sst_conn_find_peer(c, peer) == NULL)
            sst_conn_down(cn, SST_ERR_RESET);
    }
}

/* ---- timers ------------------------------------------------------------------------------- */

sst_time_t sst_mig_deadline(struct sst_ctx *c)
{
    sst_time_t t = SST_TIME_NEVER;
    struct conn *cn;
    DL_FOREACH(c->conns, cn) {
        if (cn->dormant) {
            t = SST_MIN(t, cn->probe_at);   /* the coarse liveness probe, if on (§2c) */
        } else if (cn->limbo) {
            t = SST_MIN(t, cn->limbo_until);
            if (cn->we_reconnect && sst_conn_find_peer(c, &cn->peer) == NULL)
                t = SST_MIN(t, cn->retry_at);
        } else if (cn->up) {
            if (cn->compact != NULL)
                t = SST_MIN(t, cn->compact->last_active + COMPACT_IDLE);
            t = SST_MIN(t, cn->compact_chan_at);
            if (c->cfg.detach_idle > 0 && cn->idle != NULL)
                t = SST_MIN(t, cn->idle->last_active + c->cfg.detach_idle);
            if (c->cfg.detach_idle > 0 && cn->recs.ring != NULL && cn->recs.count == 0)
                t = SST_MIN(t, cn->last_fill + c->cfg.detach_idle);
        }
    }
    return t;
}

/* Streams inactive for COMPACT_IDLE give back the storage of whatever is empty in their
 * rings, range sets and mark tables; each is looked at once per inactive period (the cursor
 * moves past it until its next activity puts it at the tail again). */
static void compact_scan(struct conn *cn)
{
    struct sst_ctx *c = cn->ctx;
    while (cn->compact != NULL && cn->compact->last_active + COMPACT_IDLE <= c->now) {
        struct sst_stream *s = cn->compact;
        sst_rx_compact(&s->rx);
        sst_tx_compact(&s->tx);
        cn->compact = s->idle_next;
    }
}

static void idle_scan(struct conn *cn)
{
    struct sst_ctx *c = cn->ctx;
    /* Each stream is looked at once per idle period: the busy ones go back to the tail. */
    struct sst_stream *stop = NULL;
    while (cn->idle != NULL && cn->idle != stop && cn->idle->last_active + c->cfg.detach_idle <= c->now) {
        struct sst_stream *s = cn->idle;
        if (may_detach(s)) {
            sst_mig_untrack(s);
            s->det = DET_PENDING;
            sst_strm_make_ready(s);
        } else {
            sst_mig_touch(s);
            if (stop == NULL)
                stop = s;
        }
    }
}

/* Re-establishes the channel of limbo conn cn; a failed handshake just waits for the next try. */
static void reconnect(struct conn *cn)
{
    struct sst_ctx *c = cn->ctx;
    struct sst_chan *ch = sst_host_connect(c->host, c->now, &cn->peer);
    if (ch != NULL && sst_conn_find_chan(c, ch) == NULL)
        (void)sst_conn_new(c, ch, &cn->peer);
    cn->retry_at = c->now + cn->backoff;
    cn->backoff = SST_MIN(cn->backoff * 2, MIG_BACKOFF_MAX);
}

/* Only the root is left on cn. */
static bool conn_empty(const struct conn *cn)
{
    return cn->streams == cn->root && cn->root->cn_next == NULL;
}

void sst_mig_kick(struct sst_ctx *c)
{
    c->mig_kick = false;
    struct conn *cn, *tmp;
    DL_FOREACH_SAFE(c->conns, cn, tmp) {
        if (cn->dormant && conn_empty(cn))
            sst_conn_down(cn, SST_OK);
        else if (cn->limbo && !cn->dormant && cn->we_reconnect && c->now >= cn->retry_at &&
                 sst_conn_find_peer(c, &cn->peer) == NULL)
            reconnect(cn);
    }
}

void sst_mig_timeout(struct sst_ctx *c)
{
    struct conn *cn, *tmp;
    DL_FOREACH_SAFE(c->conns, cn, tmp) {
        if (cn->dormant) {
            if (conn_empty(cn)) {
                sst_conn_down(cn, SST_OK);
            } else if (c->now >= cn->probe_at) {
                /* Liveness (§2c): check that the peer still knows these streams. */
                conn_wake(cn);
                c->stats.liveness_probes++;   /* sst_mig_kick reconnects at the end of the call */
            }
            continue;
        }
        if (!cn->limbo) {
            if (cn->up)
                compact_scan(cn);
            /* A channel that has sent nothing for us in COMPACT_IDLE gives back its recovery
             * ring once nothing is in flight (tried again later while something is). */
            if (cn->up && cn->ch != NULL && c->now >= cn->compact_chan_at)
                cn->compact_chan_at = sst_chan_compact(cn->ch, c->now) ? SST_TIME_NEVER
                                                                       : c->now + COMPACT_IDLE;
            if (cn->up && c->cfg.detach_idle > 0) {
                idle_scan(cn);
                /* An idle channel gives back its send-record pool too. */
                if (cn->recs.count == 0 && c->now >= cn->last_fill + c->cfg.detach_idle) {
                    sst_txrec_trim(&cn->recs);
                    sst_sid_compact(&cn->sid, sst_conn_quiet_tx(cn), sst_conn_quiet_rx(cn));
                    gone_compact(cn);
                }
            }
            continue;
        }
        if (c->now >= cn->limbo_until) {
            sst_conn_down(cn, SST_ERR_TIMEOUT);
            continue;
        }
        if (cn->we_reconnect && c->now >= cn->retry_at && sst_conn_find_peer(c, &cn->peer) == NULL)
            reconnect(cn);
    }
}
