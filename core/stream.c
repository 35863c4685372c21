/* The stream layer's state machine (paper §2, §4.3): streams multiplexed on channels, root and
 * top-level streams with service requests, substreams, datagrams, priorities, shutdown and
 * reset, and the public API of sst.h. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "channel.h"
#include "sid.h"
#include "sst.h"
#include "stream_fc.h"
#include "stream_rx.h"
#include "stream_tx.h"
#include "stream_txrec.h"
#include "stream_wire.h"

/* Service negotiation on a new top-level stream (paper §4.3.2): the initiator's first bytes
 * are a request, the responder's first bytes the answer; both are consumed by the stream layer.
 *   request: 'S' 'R' version(1) length(1) service[length]
 *   reply:   'S' 'A' code(1) */
#define SVC_VERSION 1
#define SVC_REQ_HDR 4
#define SVC_REPLY_LEN 3
enum svc_code { SVC_OK = 0x00, SVC_NO_SERVICE = 0x10, SVC_BACKLOG_FULL = 0x11 };
enum svc_state { SVC_NONE = 0, SVC_WAIT_REPLY, SVC_WAIT_REQUEST };

/* The root stream's window is fixed by the protocol, since Init data for the first top-level
 * stream borrows it before the peer can have said anything (paper §4.3.6). */
#define ROOT_WINDOW 65535u
/* Stateless Resets waiting to go out, per channel (best effort; more are dropped). */
#define RST_QUEUE 32
/* Datagrams being reassembled per channel, and their largest fragment count. */
#define DG_PARTIALS 8
#define DG_MAX_FRAGS 32
#define DG_FRAG_MAX 1500
/* Multi-fragment datagrams go on a substream when the expected number of lost fragments
 * (fragments x channel loss rate, measured over at least this many packets) exceeds this. */
#define DGRAM_LOSS_BUDGET 0.1
#define DGRAM_LOSS_MIN_SAMPLE 100

struct conn;
struct dgram_out;

struct sst_stream {
    struct sst_ctx *ctx;
    struct conn *conn;             /* NULL once detached (channel gone) or local-only */
    struct sst_stream *parent;
    struct sst_stream *kids;       /* children (all, accepted or not), via kid_prev/kid_next */
    struct sst_stream *kid_prev, *kid_next;
    unsigned nrecs;                /* send records in the channel's table pointing at us */
    struct sst_addr peer;

    /* incoming children waiting for accept (substreams, datagrams) */
    struct sst_stream *acceptq;
    unsigned nacceptq;
    struct sst_stream *aq_prev, *aq_next;
    struct sst_stream *aq_owner;   /* the stream whose accept queue holds us */
    struct sst_listener *lq_owner; /* the listener whose backlog holds us */
    bool listening;
    unsigned unconfirmed_children; /* children whose Init is not yet known to the peer */
    bool counted_unconfirmed;

    uint16_t local_lsid, remote_lsid;
    bool has_local, has_remote;
    struct sst_usid usid;
    bool initiator;                /* we sent the Init */
    bool is_root;
    bool peer_knows;               /* the peer knows our LSID (Init/Reply acked, or Reply seen) */
    bool need_reply;               /* responder: a Reply must go out even without data */
    bool need_wupdate;             /* a window update must go out */
    uint8_t adv_win;               /* last window exponent advertised */
    bool rst_pending, rst_inflight, rst_done;
    bool ephemeral;                /* datagram sent as a substream: peer must not write back */
    bool local_only;               /* stateless datagram presented as a read-only substream */
    int err;
    bool rd_shut, wr_shut;
    bool app_owned;                /* the application holds a handle */
    bool want_write;
    bool eof_posted;
    bool freed;

    struct sst_rx rx;
    struct sst_tx tx;
    struct sst_fc_rx frx;
    struct sst_fc_tx ftx;
    uint64_t borrowed;             /* received Init bytes charged to the parent's window */

    int prio;
    sst_stream_cb cb;
    void *arg;
    unsigned pending_ev;
    struct sst_stream *ev_prev, *ev_next;
    bool in_evq;
    struct sst_stream *rd_prev, *rd_next;
    bool in_ready;
    struct sst_stream *cn_prev, *cn_next;     /* conn->streams */
    struct sst_stream *all_prev, *all_next;   /* ctx->streams */
    UT_hash_handle hh_local, hh_remote;

    uint8_t svc;
    uint8_t svcbuf[SVC_REQ_HDR + 255];
    size_t svclen;

    uint16_t dg_next_id;
    struct dgram_out *dgq;
    size_t dg_bytes;

    uint64_t bytes_written, bytes_read;
};

struct dgram_out {
    struct dgram_out *next;
    size_t len, frag, sent;        /* sent: fragments already emitted */
    uint16_t id;
    uint8_t cnt;
    uint8_t data[];
};

struct dg_partial {
    bool used;
    uint16_t parent_lsid, id;
    uint8_t cnt, got;
    uint64_t stamp;                /* for evicting the oldest */
    uint32_t have;                 /* bitmap of fragments received */
    uint16_t flen[DG_MAX_FRAGS];
    uint8_t *buf;                  /* cnt * DG_FRAG_MAX bytes */
};

struct conn {
    struct sst_ctx *ctx;
    struct sst_chan *ch;
    struct sst_addr peer;
    bool up;
    bool in_fill;
    struct sst_stream *root;
    struct sst_stream *by_local, *by_remote;
    struct sst_stream *streams, *ready;
    struct sst_sid_alloc sid;
    uint64_t peer_counter;         /* highest counter seen from the peer's LSIDs */
    struct sst_txrec_table recs;
    uint16_t rst_lsid[RST_QUEUE];
    uint8_t rst_flags[RST_QUEUE];
    unsigned nrst;
    struct dg_partial partial[DG_PARTIALS];
    uint64_t dg_stamp;
    uint64_t tx_seq, rx_seq;
    struct conn *prev, *next;
};

struct sst_listener {
    struct sst_ctx *ctx;
    char service[256];
    sst_listener_cb cb;
    void *arg;
    struct sst_stream *backlog;
    unsigned nbacklog;
    bool pending_ev;
    struct sst_listener *prev, *next;
    struct sst_listener *ev_next;
};

struct sst_ctx {
    struct sst_ctx_config cfg;
    struct sst_host *host;
    bool owns_host;
    struct sst_host_io app_io;     /* the driver's callbacks (chan_event forwarded) */
    sst_time_t now;
    struct conn *conns;
    struct sst_listener *listeners;
    struct sst_listener *lev;      /* listeners with a pending callback */
    struct sst_stream *evq;
    struct sst_stream *streams;    /* every stream, for parent-pointer cleanup */
    bool dispatching;
    struct sst_ctx_stats stats;
};

static const struct sst_chan_upper upper_ops;

/* ---- small helpers ----------------------------------------------------------------------- */

static void post(struct sst_stream *s, unsigned ev)
{
    if (s->freed || !s->app_owned)
        return;
    s->pending_ev |= ev;
    if (!s->in_evq) {
        DL_APPEND2(s->ctx->evq, s, ev_prev, ev_next);
        s->in_evq = true;
    }
}

static void post_listener(struct sst_listener *l)
{
    if (l->pending_ev)
        return;
    l->pending_ev = true;
    l->ev_next = l->ctx->lev;
    l->ctx->lev = l;
}

static void make_ready(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    if (cn == NULL || s->in_ready || s->freed)
        return;
    DL_APPEND2(cn->ready, s, rd_prev, rd_next);
    s->in_ready = true;
}

static void unready(struct sst_stream *s)
{
    if (s->in_ready) {
        DL_DELETE2(s->conn->ready, s, rd_prev, rd_next);
        s->in_ready = false;
    }
}

static void wake(struct conn *cn)
{
    if (cn != NULL && cn->up && cn->ch != NULL && !cn->in_fill)
        sst_chan_wake(cn->ch, cn->ctx->now);
}

static struct sst_stream *find_local(struct conn *cn, uint16_t lsid)
{
    struct sst_stream *s = NULL;
    if (lsid == SST_LSID_ROOT)
        return cn->root;
    HASH_FIND(hh_local, cn->by_local, &lsid, sizeof lsid, s);
    return s;
}

static struct sst_stream *find_remote(struct conn *cn, uint16_t lsid)
{
    struct sst_stream *s = NULL;
    if (lsid == SST_LSID_ROOT)
        return cn->root;
    HASH_FIND(hh_remote, cn->by_remote, &lsid, sizeof lsid, s);
    return s;
}

static bool lsid_in_use(void *arg, uint16_t lsid)
{
    return find_local(arg, lsid) != NULL;
}

static void queue_stateless_reset(struct conn *cn, uint16_t peer_lsid)
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

/* ---- stream lifecycle -------------------------------------------------------------------- */

static struct sst_stream *stream_alloc(struct sst_ctx *c, struct conn *cn, struct sst_stream *parent,
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
    DL_APPEND2(c->streams, s, all_prev, all_next);
    if (cn != NULL) {
        s->peer = cn->peer;
        DL_APPEND2(cn->streams, s, cn_prev, cn_next);
    }
    sst_fc_rx_init(&s->frx, c->cfg.rx_buffer);
    sst_fc_tx_init(&s->ftx, 0);
    s->adv_win = sst_fc_rx_window(&s->frx);
    c->stats.streams_live++;
    return s;
}

static bool set_local_lsid(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    uint64_t counter;
    if (sst_sid_alloc(&cn->sid, lsid_in_use, cn, cn->tx_seq, cn->rx_seq, &counter) != 0)
        return false;
    s->local_lsid = (uint16_t)counter;
    s->has_local = true;
    HASH_ADD(hh_local, cn->by_local, local_lsid, sizeof s->local_lsid, s);
    if (s->initiator)
        s->usid = sst_sid_usid(counter, 0);
    return true;
}

static void detach(struct sst_stream *s)
{
    struct conn *cn = s->conn;
    if (cn == NULL)
        return;
    unready(s);
    if (s->has_local && !s->is_root) {
        HASH_DELETE(hh_local, cn->by_local, s);
        sst_sid_release(&cn->sid, s->local_lsid, cn->tx_seq, cn->rx_seq);
    }
    if (s->has_remote && !s->is_root)
        HASH_DELETE(hh_remote, cn->by_remote, s);
    s->has_local = s->has_remote = false;
    /* Records of this stream stay in the table (their sequence numbers are still in flight)
     * but no longer point at it; Init data it borrowed is returned to the parent now. */
    struct sst_txrec *r, *tmp;
    if (s->nrecs > 0) {
        HASH_ITER(hh, cn->recs.by_seq, r, tmp) {
            if (r->stream != s)
                continue;
            if (r->borrowed && s->parent != NULL)
                sst_fc_tx_release(&s->parent->ftx, r->charged);
            r->stream = NULL;
        }
        s->nrecs = 0;
    }
    DL_DELETE2(cn->streams, s, cn_prev, cn_next);
    s->conn = NULL;
}

static void confirm(struct sst_stream *s)
{
    if (s->peer_knows)
        return;
    s->peer_knows = true;
    if (s->counted_unconfirmed && s->parent != NULL) {
        s->parent->unconfirmed_children--;
        s->counted_unconfirmed = false;
        if (s->parent->unconfirmed_children == 0)
            make_ready(s->parent);
    }
}

static void stream_free(struct sst_stream *s);

/* Frees s when the application has let go and both directions are finished. */
static void maybe_free(struct sst_stream *s)
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
    stream_free(s);
}

static void stream_free(struct sst_stream *s)
{
    struct sst_ctx *c = s->ctx;
    if (s->counted_unconfirmed && s->parent != NULL) {
        s->parent->unconfirmed_children--;
        s->counted_unconfirmed = false;
    }
    /* Return borrowed receive window: the parent no longer holds these bytes for us. */
    if (s->borrowed > 0 && s->parent != NULL)
        sst_fc_rx_release(&s->parent->frx, s->borrowed);
    detach(s);
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
            stream_free(ch);
        } else if (ch->conn != NULL) {
            ch->rst_pending = true;    /* freed once the Reset is acknowledged */
            make_ready(ch);
        }
        /* detached ones are freed by conn_down's sweep */
    }
    s->acceptq = NULL;
    s->nacceptq = 0;
    if (s->parent != NULL)
        DL_DELETE2(s->parent->kids, s, kid_prev, kid_next);
    DL_DELETE2(c->streams, s, all_prev, all_next);
    while (s->dgq != NULL) {
        struct dgram_out *d = s->dgq;
        s->dgq = d->next;
        free(d);
    }
    sst_rx_free(&s->rx);
    sst_tx_free(&s->tx);
    s->freed = true;
    if (!s->is_root) {
        c->stats.streams_live--;
        c->stats.streams_freed++;
    }
    free(s);
}

/* Aborts s locally: buffers dropped, error recorded, the peer told unless it told us. */
static void abort_stream(struct sst_stream *s, int err, bool tell_peer)
{
    if (s->err == 0)
        s->err = err;
    unready(s);
    s->need_reply = s->need_wupdate = false;
    while (s->dgq != NULL) {
        struct dgram_out *d = s->dgq;
        s->dgq = d->next;
        free(d);
    }
    s->dg_bytes = 0;
    if (tell_peer && s->conn != NULL && (s->has_local || s->has_remote) && !s->rst_done) {
        s->rst_pending = true;
        make_ready(s);
    } else if (s->conn != NULL) {
        detach(s);
    }
    post(s, SST_EV_ERROR);
}

/* ---- conn (per-channel state) ------------------------------------------------------------ */

static struct conn *conn_new(struct sst_ctx *c, struct sst_chan *ch, const struct sst_addr *peer)
{
    struct conn *cn = calloc(1, sizeof *cn);
    if (cn == NULL)
        return NULL;
    cn->ctx = c;
    cn->ch = ch;
    cn->peer = *peer;
    sst_sid_init(&cn->sid);
    sst_txrec_init(&cn->recs, c->cfg.max_txrecs);
    struct sst_stream *root = stream_alloc(c, cn, NULL, 1, 1);
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

static struct conn *conn_find_peer(struct sst_ctx *c, const struct sst_addr *peer)
{
    struct conn *cn;
    DL_FOREACH(c->conns, cn)
        if (cn->ch != NULL && sst_addr_eq(&cn->peer, peer))
            return cn;
    return NULL;
}

static struct conn *conn_find_chan(struct sst_ctx *c, const struct sst_chan *ch)
{
    struct conn *cn;
    DL_FOREACH(c->conns, cn)
        if (cn->ch == ch)
            return cn;
    return NULL;
}

/* The channel is gone: every unfinished stream on it fails (migration is not implemented). */
static void conn_down(struct conn *cn, int err)
{
    struct sst_ctx *c = cn->ctx;
    int serr = err != 0 ? err : SST_ERR_RESET;
    struct sst_stream *s, *tmp;
    DL_FOREACH_SAFE2(cn->streams, s, tmp, cn_next) {
        if (s->is_root)
            continue;
        bool finished = sst_tx_done(&s->tx) && (s->rd_shut || sst_rx_complete(&s->rx));
        s->rst_pending = s->rst_inflight = false;
        detach(s);
        if (!finished && s->err == 0) {
            s->err = serr;
            post(s, SST_EV_ERROR);
        }
    }
    for (unsigned i = 0; i < DG_PARTIALS; i++)
        free(cn->partial[i].buf);
    sst_txrec_free_all(&cn->recs);
    struct sst_stream *root = cn->root;
    detach(root);
    stream_free(root);
    /* Now free the detached streams nobody holds; freeing one can change others, so rescan. */
    bool again = true;
    while (again) {
        again = false;
        DL_FOREACH2(c->streams, s, all_next) {
            if (s->conn == NULL && !s->local_only && !s->app_owned && s->aq_owner == NULL &&
                s->lq_owner == NULL) {
                stream_free(s);
                again = true;
                break;
            }
        }
    }
    DL_DELETE(c->conns, cn);
    free(cn);
}

/* ---- sending: one stream-layer packet per channel packet (paper §4.3.4) ------------------ */

/* The header type a stream's next segment uses (paper §4.3.3-4.3.4): Init until the peer
 * knows our LSID if we created the stream, Reply until then if the peer did, Data after. */
static unsigned seg_type(const struct sst_stream *s)
{
    if (s->is_root || s->peer_knows)
        return SST_PT_DATA;
    return s->initiator ? SST_PT_INIT : SST_PT_REPLY;
}

/* An Init can only name a parent the peer already knows. */
static bool parent_known(const struct sst_stream *s)
{
    return s->parent != NULL && s->parent->has_local && (s->parent->is_root || s->parent->peer_knows);
}

static struct sst_fc_tx *seg_fc(struct sst_stream *s, unsigned type)
{
    return type == SST_PT_INIT ? &s->parent->ftx : &s->ftx;
}

/* Whether s could put a packet into `cap` bytes now; fills *seg when that packet is data. */
static bool can_emit(struct sst_stream *s, size_t cap, struct sst_seg *seg, bool *has_seg)
{
    *has_seg = false;
    if (s->conn == NULL || !s->has_local)
        return false;
    if (s->rst_pending)
        return true;
    if (s->err != 0)
        return false;
    unsigned type = seg_type(s);
    if (type == SST_PT_INIT && !parent_known(s))
        return false;
    if (s->dgq != NULL && type == SST_PT_DATA && !s->is_root)
        return true;
    if (cap > SST_STREAM_MAX_HDR) {
        uint64_t limit = type == SST_PT_DATA ? UINT64_MAX : (uint64_t)SST_INIT_BSN_MAX + 1;
        if (sst_tx_next(&s->tx, cap - SST_STREAM_MAX_HDR, limit, seg) &&
            sst_fc_tx_allows(seg_fc(s, type), seg->len)) {
            *has_seg = true;
            return true;
        }
    }
    return s->need_reply || s->need_wupdate;
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
    struct sst_txrec *r = sst_txrec_add(&cn->recs, seq);
    if (r == NULL)
        return 0;
    r->kind = SST_TXREC_RESET;
    r->pkt_type = SST_PT_RESET;
    r->stream = s;
    s->nrecs++;
    s->rst_pending = false;
    s->rst_inflight = true;
    cn->ctx->stats.resets_sent++;
    return sst_spkt_put_hdr(buf, cap, &p);
}

static size_t emit_dgram(struct sst_stream *s, uint8_t *buf, size_t cap)
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

static size_t emit_segment(struct sst_stream *s, uint64_t seq, uint8_t *buf, size_t cap,
                           const struct sst_seg *seg, bool has_seg)
{
    struct conn *cn = s->conn;
    unsigned type = seg_type(s);
    struct sst_spkt p = {
        .type = (uint8_t)type,
        .lsid = s->local_lsid,
        .win = sst_fc_rx_window(&s->frx),
    };
    if (type == SST_PT_INIT)
        p.ref_lsid = s->parent->local_lsid;
    else if (type == SST_PT_REPLY)
        p.ref_lsid = s->remote_lsid;
    struct sst_seg empty = { .off = s->tx.sent, .len = 0, .fin = false };
    const struct sst_seg *g = has_seg ? seg : &empty;
    if (!has_seg && type != SST_PT_DATA && g->off > SST_INIT_BSN_MAX)
        empty.off = 0;   /* a bare Init/Reply: any in-range BSN will do */
    p.bsn = (uint32_t)g->off;
    if (g->fin)
        p.flags |= SST_SF_CLOSE;
    if (has_seg && g->off + g->len == s->tx.end)
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
    r->span = (uint32_t)(g->len + (g->fin ? 1 : 0));
    r->charged = (uint32_t)g->len;
    r->borrowed = type == SST_PT_INIT;
    if (has_seg) {
        sst_tx_copy(&s->tx, g->off, buf + hl, g->len);
        sst_tx_commit(&s->tx, g);
        sst_fc_tx_charge(seg_fc(s, type), g->len);
    }
    if (type == SST_PT_REPLY)
        s->need_reply = false;
    s->need_wupdate = false;
    s->adv_win = p.win;
    sst_fc_rx_advertised(&s->frx);
    return hl + g->len;
}

static size_t emit(struct sst_stream *s, uint64_t seq, uint8_t *buf, size_t cap,
                   const struct sst_seg *seg, bool has_seg)
{
    if (s->rst_pending)
        return emit_reset(s, seq, buf, cap);
    if (s->dgq != NULL && !s->is_root && seg_type(s) == SST_PT_DATA)
        return emit_dgram(s, buf, cap);
    return emit_segment(s, seq, buf, cap, seg, has_seg);
}

static void on_record(struct conn *cn, struct sst_txrec *r, bool acked);

static size_t up_fill(void *ctx, struct sst_chan *ch, uint64_t seq, uint8_t *buf, size_t cap)
{
    struct conn *cn = ctx;
    cn->tx_seq = seq;
    /* A record under this sequence number means that packet never left (the channel refused
     * it after fill): treat it as lost before reusing the number. */
    struct sst_txrec *stale = sst_txrec_take(&cn->recs, seq);
    if (stale != NULL)
        on_record(cn, stale, false);
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
    DL_FOREACH_SAFE2(cn->ready, s, tmp, rd_next) {
        if (!can_emit(s, cap, &seg, &has_seg)) {
            /* Nothing to send for now: leave the list until new work or credit arrives. */
            bool work = s->rst_pending || (s->err == 0 && (s->dgq != NULL || s->need_reply ||
                                                           s->need_wupdate || sst_tx_pending(&s->tx)));
            if (!work)
                unready(s);
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
    size_t n = emit(best, seq, buf, cap, &best_seg, best_has);
    cn->in_fill = false;
    if (best->in_ready) {
        DL_DELETE2(cn->ready, best, rd_prev, rd_next);
        DL_APPEND2(cn->ready, best, rd_prev, rd_next);
    }
    return n;
}

/* ---- packet fates ------------------------------------------------------------------------ */

static void on_record(struct conn *cn, struct sst_txrec *rec, bool acked)
{
    struct sst_txrec copy = *rec;
    const struct sst_txrec *r = &copy;
    struct sst_stream *s = r->stream;
    sst_txrec_release(&cn->recs, rec);
    if (s == NULL)
        return;
    s->nrecs--;
    if (r->kind == SST_TXREC_RESET) {
        s->rst_inflight = false;
        if (acked) {
            s->rst_done = true;
            detach(s);
            maybe_free(s);
        } else {
            s->rst_pending = true;
            make_ready(s);
        }
        return;
    }
    struct sst_fc_tx *fc = r->borrowed ? (s->parent != NULL ? &s->parent->ftx : NULL) : &s->ftx;
    if (fc != NULL && acked)
        sst_fc_tx_acked(fc, r->charged);
    else if (fc != NULL)
        sst_fc_tx_release(fc, r->charged);
    if (acked) {
        uint64_t before = sst_tx_space(&s->tx);
        sst_tx_acked(&s->tx, r->off, r->span);
        if (r->pkt_type == SST_PT_INIT || r->pkt_type == SST_PT_REPLY)
            confirm(s);
        if (s->want_write && sst_tx_space(&s->tx) > before) {
            s->want_write = false;
            post(s, SST_EV_WRITABLE);
        }
        /* More credit (ours or, for borrowed bytes, the parent's children's) may be usable. */
        make_ready(s);
        if (r->borrowed && s->parent != NULL)
            make_ready(s);
        maybe_free(s);
    } else {
        sst_tx_lost(&s->tx, r->off, r->span);
        if (r->span == 0 && r->pkt_type == SST_PT_REPLY && !s->peer_knows)
            s->need_reply = true;
        else if (r->span == 0)
            s->need_wupdate = true;
        make_ready(s);
    }
}

static void up_acked(void *ctx, struct sst_chan *ch, uint64_t seq)
{
    struct conn *cn = ctx;
    struct sst_txrec *r = sst_txrec_take(&cn->recs, seq);
    if (r != NULL)
        on_record(cn, r, true);
}

static void up_lost(void *ctx, struct sst_chan *ch, uint64_t seq)
{
    struct conn *cn = ctx;
    struct sst_txrec *r = sst_txrec_take(&cn->recs, seq);
    if (r != NULL)
        on_record(cn, r, false);
}

/* ---- receiving ----------------------------------------------------------------------------- */

static void svc_pump(struct sst_stream *s);

/* Flow-control bookkeeping after the receive buffer changed: a window that shrank must be
 * announced before the sender fills it on stale credit; one that reopened from below half the
 * buffer must be announced or a sender waiting for credit would wait forever. */
static void window_check(struct sst_stream *s)
{
    if (s->conn == NULL || s->err != 0)
        return;
    uint8_t now = sst_fc_rx_window(&s->frx);
    uint8_t full = sst_fc_win_encode(s->frx.limit);
    if (now < s->adv_win || (now > s->adv_win && s->adv_win + 1 < full) ||
        sst_fc_rx_update_due(&s->frx)) {
        s->need_wupdate = true;
        make_ready(s);
    }
}

/* Delivers stream bytes to s.  Returns false when they could not be buffered (then the packet
 * is not acknowledged and will come again). */
static bool deliver(struct sst_stream *s, uint64_t off, const uint8_t *data, size_t len, bool fin,
                    bool borrowed)
{
    struct sst_ctx *c = s->ctx;
    if (s->err != 0 || s->rst_pending || s->rst_inflight)
        return true;
    if (s->ephemeral && len > 0) {
        /* The receiver of a datagram must not write back (paper §2.2). */
        abort_stream(s, SST_ERR_RESET, true);
        return true;
    }
    size_t fresh = 0;
    int rc = sst_rx_insert(&s->rx, off, data, len, fin, &fresh);
    if (rc == SST_ERR_AGAIN) {
        c->stats.rx_not_buffered++;
        return false;
    }
    if (rc != 0) {
        c->stats.malformed++;
        abort_stream(s, SST_ERR_MALFORMED, true);
        return true;
    }
    if (borrowed && s->parent != NULL) {
        sst_fc_rx_charge(&s->parent->frx, fresh);
        s->borrowed += fresh;
        window_check(s->parent);
    } else {
        sst_fc_rx_charge(&s->frx, fresh);
        window_check(s);
    }
    if (s->rd_shut) {
        /* Reading was shut: consume and forget, but keep the offsets for end-of-stream. */
        uint8_t sink[1024];
        size_t n;
        while ((n = sst_rx_read(&s->rx, sink, sizeof sink)) > 0) {
            size_t k = (size_t)SST_MIN((uint64_t)n, s->borrowed);
            if (k > 0 && s->parent != NULL)
                sst_fc_rx_release(&s->parent->frx, k);
            s->borrowed -= k;
            sst_fc_rx_release(&s->frx, n - k);
        }
        window_check(s);
        maybe_free(s);
        return true;
    }
    if (s->svc != SVC_NONE)
        svc_pump(s);
    if (s->freed)
        return true;
    if (s->svc == SVC_NONE) {
        if (sst_rx_available(&s->rx) > 0)
            post(s, SST_EV_READABLE);
        if (sst_rx_complete(&s->rx) && !s->eof_posted) {
            s->eof_posted = true;
            post(s, SST_EV_READABLE | SST_EV_EOF);
        }
    }
    /* A complete substream waiting in an accept queue is a datagram the parent can take now. */
    if (s->aq_owner != NULL && sst_rx_complete(&s->rx))
        post(s->aq_owner, SST_EV_SUBSTREAM);
    return true;
}

static void window_from(struct sst_stream *s, uint64_t seq, uint8_t win)
{
    sst_fc_tx_on_window(&s->ftx, seq, win);
    /* Credit may have grown, or unconfirmed bytes been cleared. */
    make_ready(s);
}

static void enqueue_child(struct sst_stream *parent, struct sst_stream *s)
{
    DL_APPEND2(parent->acceptq, s, aq_prev, aq_next);
    parent->nacceptq++;
    s->aq_owner = parent;
    post(parent, SST_EV_SUBSTREAM);
}

static bool on_init(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_ctx *c = cn->ctx;
    struct sst_stream *parent = find_remote(cn, p->ref_lsid);
    struct sst_stream *s = find_remote(cn, p->lsid);
    if (s != NULL) {
        /* A retransmitted or continuing Init for a stream we know. */
        if (s->initiator || s->parent != parent)
            return true;
    } else {
        if (parent == NULL || parent->err != 0) {
            queue_stateless_reset(cn, p->lsid);
            return true;
        }
        /* Flow control over stream creation: a bounded queue of unaccepted children
         * (paper §2.1); top-level streams count against the root's. */
        bool refuse = parent->nacceptq >= c->cfg.max_pending;
        if (!parent->is_root && !parent->listening)
            refuse = true;
        if (refuse) {
            queue_stateless_reset(cn, p->lsid);
            return true;
        }
        s = stream_alloc(c, cn, parent, c->cfg.rx_buffer, c->cfg.tx_buffer);
        if (s == NULL)
            return false;
        s->initiator = false;
        s->remote_lsid = p->lsid;
        s->has_remote = true;
        uint64_t counter = sst_sid_extrapolate(cn->peer_counter, p->lsid);
        cn->peer_counter = SST_MAX(cn->peer_counter, counter);
        s->usid = sst_sid_usid(counter, 0);
        if (!set_local_lsid(s)) {
            stream_free(s);
            queue_stateless_reset(cn, p->lsid);
            return true;
        }
        HASH_ADD(hh_remote, cn->by_remote, remote_lsid, sizeof s->remote_lsid, s);
        s->need_reply = true;
        make_ready(s);
        if (parent->is_root) {
            /* Held by the root until the service request is read. */
            s->svc = SVC_WAIT_REQUEST;
            DL_APPEND2(parent->acceptq, s, aq_prev, aq_next);
            parent->nacceptq++;
            s->aq_owner = parent;
        } else {
            enqueue_child(parent, s);
        }
    }
    window_from(s, seq, p->win);
    return deliver(s, p->bsn, p->data, p->len, p->flags & SST_SF_CLOSE, true);
}

static bool on_reply(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_stream *s = find_local(cn, p->ref_lsid);
    if (s == NULL || s->is_root || !s->initiator) {
        queue_stateless_reset(cn, p->lsid);
        return true;
    }
    if (!s->has_remote) {
        if (find_remote(cn, p->lsid) != NULL)
            return true;   /* the peer reused an LSID we still map: ignore, it will retry */
        s->remote_lsid = p->lsid;
        s->has_remote = true;
        HASH_ADD(hh_remote, cn->by_remote, remote_lsid, sizeof s->remote_lsid, s);
    } else if (s->remote_lsid != p->lsid) {
        return true;
    }
    /* A Reply proves the peer has our Init (paper §4.3.3). */
    confirm(s);
    make_ready(s);
    window_from(s, seq, p->win);
    return deliver(s, p->bsn, p->data, p->len, p->flags & SST_SF_CLOSE, false);
}

static bool on_data(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_stream *s = find_remote(cn, p->lsid);
    if (s == NULL) {
        queue_stateless_reset(cn, p->lsid);
        return true;
    }
    window_from(s, seq, p->win);
    if (s->is_root)
        return true;   /* the root carries window updates only */
    return deliver(s, sst_rx_offset32(&s->rx, p->bsn), p->data, p->len, p->flags & SST_SF_CLOSE, false);
}

static bool on_reset(struct conn *cn, const struct sst_spkt *p)
{
    struct sst_stream *s = (p->flags & SST_RSTF_ORIENT) ? find_local(cn, p->lsid) : find_remote(cn, p->lsid);
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
        detach(s);
        maybe_free(s);
        return true;
    }
    /* A refusal reply may still sit in the buffer: read it so the right error is reported. */
    if (s->svc == SVC_WAIT_REPLY)
        svc_pump(s);
    if (s->freed)
        return true;
    abort_stream(s, SST_ERR_RESET, false);
    maybe_free(s);
    return true;
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
    struct sst_stream *s = stream_alloc(c, NULL, parent, SST_MAX(len, 1), 1);
    if (s == NULL) {
        c->stats.dgrams_dropped++;
        return;
    }
    s->peer = cn->peer;
    s->local_only = true;
    s->wr_shut = true;
    size_t fresh;
    if (sst_rx_insert(&s->rx, 0, data, len, true, &fresh) != 0) {
        stream_free(s);
        c->stats.dgrams_dropped++;
        return;
    }
    c->stats.dgrams_received++;
    enqueue_child(parent, s);
}

static bool on_datagram(struct conn *cn, uint64_t seq, const struct sst_spkt *p)
{
    struct sst_ctx *c = cn->ctx;
    struct sst_stream *parent = find_remote(cn, p->lsid);
    if (parent == NULL) {
        queue_stateless_reset(cn, p->lsid);
        return true;
    }
    window_from(parent, seq, p->win);
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
    return true;
}

static bool up_recv(void *ctx, struct sst_chan *ch, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct conn *cn = ctx;
    cn->rx_seq = SST_MAX(cn->rx_seq, seq);
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
        return on_datagram(cn, seq, &p);
    case SST_PT_RESET:
        return on_reset(cn, &p);
    case SST_PT_ATTACH:
        /* Migration (paper §4.3.7) is not implemented: refuse the attachment. */
        queue_stateless_reset(cn, p.lsid);
        return true;
    default:
        return true;   /* Detach: nothing attached elsewhere to detach */
    }
}

static const struct sst_chan_upper upper_ops = {
    .fill = up_fill,
    .acked = up_acked,
    .lost = up_lost,
    .recv = up_recv,
};

/* ---- service requests (paper §4.3.2) ----------------------------------------------------- */

static struct sst_listener *find_listener(struct sst_ctx *c, const char *name, size_t len)
{
    struct sst_listener *l;
    DL_FOREACH(c->listeners, l)
        if (strlen(l->service) == len && memcmp(l->service, name, len) == 0)
            return l;
    return NULL;
}

/* Reads stream-layer bytes from the front of s's receive buffer, cancelling their deduction. */
static size_t svc_read(struct sst_stream *s, uint8_t *buf, size_t len)
{
    size_t n = sst_rx_read(&s->rx, buf, len);
    size_t k = (size_t)SST_MIN((uint64_t)n, s->borrowed);
    if (k > 0 && s->parent != NULL)
        sst_fc_rx_release(&s->parent->frx, k);
    s->borrowed -= k;
    sst_fc_rx_release(&s->frx, n - k);
    if (s->parent != NULL)
        window_check(s->parent);
    window_check(s);
    return n;
}

static void svc_answer(struct sst_stream *s, uint8_t code)
{
    uint8_t reply[SVC_REPLY_LEN] = { 'S', 'A', code };
    /* The send buffer is empty here, so the three bytes always fit. */
    (void)sst_tx_write(&s->tx, reply, sizeof reply);
    make_ready(s);
}

static void svc_pump(struct sst_stream *s)
{
    struct sst_ctx *c = s->ctx;
    if (s->svc == SVC_WAIT_REPLY) {
        s->svclen += svc_read(s, s->svcbuf + s->svclen, SVC_REPLY_LEN - s->svclen);
        if (s->svclen < SVC_REPLY_LEN)
            return;
        s->svc = SVC_NONE;
        if (s->svcbuf[0] != 'S' || s->svcbuf[1] != 'A') {
            c->stats.malformed++;
            abort_stream(s, SST_ERR_MALFORMED, true);
        } else if (s->svcbuf[2] != SVC_OK) {
            c->stats.refused++;
            abort_stream(s, SST_ERR_REFUSED, true);
        } else {
            post(s, SST_EV_CONNECTED | SST_EV_WRITABLE);
            if (sst_rx_available(&s->rx) > 0 || sst_rx_complete(&s->rx))
                post(s, SST_EV_READABLE);
        }
        return;
    }
    /* Responder: header, then the service name. */
    if (s->svclen < SVC_REQ_HDR)
        s->svclen += svc_read(s, s->svcbuf + s->svclen, SVC_REQ_HDR - s->svclen);
    if (s->svclen < SVC_REQ_HDR)
        return;
    if (s->svcbuf[0] != 'S' || s->svcbuf[1] != 'R' || s->svcbuf[2] != SVC_VERSION || s->svcbuf[3] == 0) {
        c->stats.malformed++;
        abort_stream(s, SST_ERR_MALFORMED, true);
        return;
    }
    size_t want = SVC_REQ_HDR + s->svcbuf[3];
    s->svclen += svc_read(s, s->svcbuf + s->svclen, want - s->svclen);
    if (s->svclen < want)
        return;
    s->svc = SVC_NONE;
    struct sst_stream *root = s->aq_owner;
    if (root != NULL) {
        DL_DELETE2(root->acceptq, s, aq_prev, aq_next);
        root->nacceptq--;
        s->aq_owner = NULL;
    }
    struct sst_listener *l = find_listener(c, (const char *)s->svcbuf + SVC_REQ_HDR, s->svcbuf[3]);
    if (l == NULL || l->nbacklog >= c->cfg.max_pending) {
        /* Refusal: answer, close our side, and let the initiator reset or close (§4.3.2). */
        c->stats.refused++;
        svc_answer(s, l == NULL ? SVC_NO_SERVICE : SVC_BACKLOG_FULL);
        sst_tx_close(&s->tx);
        s->rd_shut = true;
        svc_read(s, NULL, SIZE_MAX);
        maybe_free(s);
        return;
    }
    svc_answer(s, SVC_OK);
    DL_APPEND2(l->backlog, s, aq_prev, aq_next);
    l->nbacklog++;
    s->lq_owner = l;
    post_listener(l);
}

/* ---- context ------------------------------------------------------------------------------ */

SST_API void sst_ctx_config_default(struct sst_ctx_config *c)
{
    memset(c, 0, sizeof *c);
    sst_host_config_default(&c->host);
    c->rx_buffer = 256 * 1024;
    c->tx_buffer = 256 * 1024;
    c->max_pending = 64;
    c->dgram_max_frags = 4;
    c->max_txrecs = 65536;
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
    if (c->cfg.rx_buffer < 4096 || c->cfg.tx_buffer < 64 || c->cfg.max_pending == 0 ||
        c->cfg.dgram_max_frags == 0 || c->cfg.dgram_max_frags > DG_MAX_FRAGS ||
        c->cfg.max_txrecs < SST_TXREC_CHUNK) {
        free(c);
        return NULL;
    }
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
        .random = io->random != NULL ? ctx_random : NULL,
        .verify_peer = io->verify_peer != NULL ? ctx_verify : NULL,
        .chan_event = sst_ctx_chan_event,
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
    struct conn *cn = conn_find_chan(c, ch);
    switch (ev) {
    case SST_CHAN_EV_UP:
        /* Both sides install the stream layer here; the initiator's conn already exists. */
        if (cn == NULL)
            cn = conn_new(c, ch, sst_chan_peer(ch));
        if (cn != NULL) {
            cn->up = true;
            sst_chan_set_upper(ch, &upper_ops, cn);
            struct sst_stream *s;
            DL_FOREACH2(cn->streams, s, cn_next)
                make_ready(s);
            wake(cn);
        }
        break;
    case SST_CHAN_EV_DOWN:
        if (cn != NULL) {
            sst_chan_set_upper(ch, NULL, NULL);
            cn->ch = NULL;
            cn->up = false;
            conn_down(cn, err);
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
        conn_down(cn, SST_ERR_CLOSED);
    }
    while (c->streams != NULL)
        stream_free(c->streams);
    while (c->listeners != NULL) {
        struct sst_listener *l = c->listeners;
        DL_DELETE(c->listeners, l);
        free(l);
    }
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

SST_API void sst_ctx_dispatch(struct sst_ctx *c)
{
    if (c->dispatching)
        return;
    c->dispatching = true;
    while (c->evq != NULL || c->lev != NULL) {
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
}

/* Every public entry point ends here: flush what the call queued, then run callbacks. */
static void api_done(struct sst_ctx *c)
{
    struct conn *cn;
    DL_FOREACH(c->conns, cn)
        if (cn->ready != NULL)
            wake(cn);
    sst_ctx_dispatch(c);
}

SST_API void sst_ctx_recv(struct sst_ctx *c, sst_time_t now, const struct sst_addr *from,
                          uint8_t *pkt, size_t len)
{
    sst_ctx_set_time(c, now);
    sst_host_recv(c->host, now, from, pkt, len);
    api_done(c);
}

SST_API sst_time_t sst_ctx_deadline(struct sst_ctx *c)
{
    return sst_host_deadline(c->host);
}

SST_API void sst_ctx_timeout(struct sst_ctx *c, sst_time_t now)
{
    sst_ctx_set_time(c, now);
    sst_host_timeout(c->host, now);
    api_done(c);
}

SST_API void sst_ctx_get_stats(const struct sst_ctx *c, struct sst_ctx_stats *out)
{
    *out = c->stats;
    size_t hw = 0;
    struct conn *cn;
    DL_FOREACH(c->conns, cn)
        hw = SST_MAX(hw, cn->recs.high_water);
    out->txrec_high_water = hw;
}

/* ---- streams: creation ----------------------------------------------------------------- */

/* A stream we initiate as a child of parent on cn; announced by an (empty) Init at once so the
 * peer learns of it even before any data (paper §4.3.3). */
static struct sst_stream *open_child(struct conn *cn, struct sst_stream *parent)
{
    struct sst_ctx *c = cn->ctx;
    struct sst_stream *s = stream_alloc(c, cn, parent, c->cfg.rx_buffer, c->cfg.tx_buffer);
    if (s == NULL)
        return NULL;
    s->initiator = true;
    if (!set_local_lsid(s)) {
        stream_free(s);
        return NULL;
    }
    parent->unconfirmed_children++;
    s->counted_unconfirmed = true;
    s->need_wupdate = true;
    make_ready(s);
    c->stats.streams_opened++;
    return s;
}

SST_API struct sst_stream *sst_connect(struct sst_ctx *c, const struct sst_addr *peer,
                                       const char *service, sst_stream_cb cb, void *arg)
{
    size_t slen = service != NULL ? strlen(service) : 0;
    if (c->host == NULL || peer == NULL || slen == 0 || slen > 255)
        return NULL;
    struct conn *cn = conn_find_peer(c, peer);
    if (cn == NULL) {
        struct sst_chan *ch = sst_host_connect(c->host, c->now, peer);
        if (ch == NULL)
            return NULL;
        cn = conn_find_chan(c, ch);
        if (cn == NULL)
            cn = conn_new(c, ch, peer);
        if (cn == NULL)
            return NULL;
    }
    struct sst_stream *s = open_child(cn, cn->root);
    if (s == NULL)
        return NULL;
    s->cb = cb;
    s->arg = arg;
    s->app_owned = true;
    s->svc = SVC_WAIT_REPLY;
    uint8_t req[SVC_REQ_HDR + 255] = { 'S', 'R', SVC_VERSION, (uint8_t)slen };
    memcpy(req + SVC_REQ_HDR, service, slen);
    (void)sst_tx_write(&s->tx, req, SVC_REQ_HDR + slen);
    api_done(c);
    return s;
}

SST_API struct sst_listener *sst_listen(struct sst_ctx *c, const char *service, sst_listener_cb cb, void *arg)
{
    size_t slen = service != NULL ? strlen(service) : 0;
    if (slen == 0 || slen > 255 || find_listener(c, service, slen) != NULL)
        return NULL;
    struct sst_listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->ctx = c;
    memcpy(l->service, service, slen + 1);
    l->cb = cb;
    l->arg = arg;
    DL_APPEND(c->listeners, l);
    return l;
}

static void adopt(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    s->app_owned = true;
    s->cb = cb;
    s->arg = arg;
    s->ctx->stats.streams_accepted++;
    /* Anything that arrived while the stream waited is reported now. */
    if (s->err != 0)
        post(s, SST_EV_ERROR);
    if (sst_rx_available(&s->rx) > 0)
        post(s, SST_EV_READABLE);
    if (sst_rx_complete(&s->rx)) {
        s->eof_posted = true;
        post(s, SST_EV_READABLE | SST_EV_EOF);
    }
    if (s->listening && s->acceptq != NULL)
        post(s, SST_EV_SUBSTREAM);
}

SST_API struct sst_stream *sst_accept(struct sst_listener *l, sst_stream_cb cb, void *arg)
{
    struct sst_stream *s = l->backlog;
    if (s == NULL)
        return NULL;
    DL_DELETE2(l->backlog, s, aq_prev, aq_next);
    l->nbacklog--;
    s->lq_owner = NULL;
    adopt(s, cb, arg);
    api_done(l->ctx);
    return s;
}

SST_API void sst_listener_close(struct sst_listener *l)
{
    struct sst_ctx *c = l->ctx;
    while (l->backlog != NULL) {
        struct sst_stream *s = l->backlog;
        DL_DELETE2(l->backlog, s, aq_prev, aq_next);
        l->nbacklog--;
        s->lq_owner = NULL;
        abort_stream(s, SST_ERR_RESET, true);
        maybe_free(s);
    }
    /* A pending callback must not run for a freed listener. */
    struct sst_listener **pp = &c->lev;
    while (*pp != NULL) {
        if (*pp == l)
            *pp = l->ev_next;
        else
            pp = &(*pp)->ev_next;
    }
    DL_DELETE(c->listeners, l);
    free(l);
    api_done(c);
}

SST_API struct sst_stream *sst_stream_open_substream(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    if (s->conn == NULL || s->err != 0 || s->local_only || !s->has_local)
        return NULL;
    struct sst_stream *child = open_child(s->conn, s);
    if (child == NULL)
        return NULL;
    child->cb = cb;
    child->arg = arg;
    child->app_owned = true;
    api_done(s->ctx);
    return child;
}

SST_API void sst_stream_listen(struct sst_stream *s, bool on)
{
    s->listening = on;
}

SST_API struct sst_stream *sst_stream_accept(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    struct sst_stream *child = s->acceptq;
    if (child == NULL)
        return NULL;
    DL_DELETE2(s->acceptq, child, aq_prev, aq_next);
    s->nacceptq--;
    child->aq_owner = NULL;
    adopt(child, cb, arg);
    api_done(s->ctx);
    return child;
}

/* ---- streams: data ----------------------------------------------------------------------- */

SST_API sst_ssize_t sst_stream_read(struct sst_stream *s, void *buf, size_t len)
{
    if (s->svc == SVC_WAIT_REPLY)
        return s->err != 0 ? s->err : SST_ERR_AGAIN;
    if (s->err != 0 && sst_rx_available(&s->rx) == 0)
        return s->err;
    if (s->rd_shut)
        return 0;
    size_t n = s->svc == SVC_NONE ? svc_read(s, buf, len) : 0;
    s->bytes_read += n;
    if (n > 0) {
        api_done(s->ctx);
        return (sst_ssize_t)n;
    }
    if (sst_rx_eof(&s->rx))
        return 0;
    return s->err != 0 ? s->err : SST_ERR_AGAIN;
}

SST_API sst_ssize_t sst_stream_write(struct sst_stream *s, const void *buf, size_t len)
{
    if (s->local_only || s->ephemeral)
        return SST_ERR_RESET;
    if (s->err != 0)
        return s->err;
    if (s->wr_shut)
        return SST_ERR_CLOSED;
    size_t n = sst_tx_write(&s->tx, buf, len);
    s->bytes_written += n;
    if (n < len)
        s->want_write = true;
    if (n == 0)
        return SST_ERR_AGAIN;
    make_ready(s);
    api_done(s->ctx);
    return (sst_ssize_t)n;
}

SST_API int sst_stream_shutdown(struct sst_stream *s, enum sst_shut how)
{
    if (how == SST_SHUT_RESET) {
        if (s->err == 0 || s->conn != NULL)
            abort_stream(s, SST_ERR_RESET, true);
        s->pending_ev &= ~(unsigned)SST_EV_ERROR;   /* the caller knows */
        api_done(s->ctx);
        return 0;
    }
    if ((how & ~SST_SHUT_BOTH) != 0 || how == 0)
        return SST_ERR_INVAL;
    if (how & SST_SHUT_WRITE) {
        if (!s->wr_shut && !s->local_only) {
            s->wr_shut = true;
            sst_tx_close(&s->tx);
            make_ready(s);
        }
    }
    if (how & SST_SHUT_READ) {
        s->rd_shut = true;
        size_t avail = (size_t)sst_rx_available(&s->rx);
        if (avail > 0)
            (void)svc_read(s, NULL, avail);
    }
    api_done(s->ctx);
    return 0;
}

SST_API void sst_stream_close(struct sst_stream *s)
{
    struct sst_ctx *c = s->ctx;
    if (s->err == 0 && !s->local_only)
        (void)sst_stream_shutdown(s, SST_SHUT_BOTH);
    s->rd_shut = true;
    s->cb = NULL;
    s->app_owned = false;
    if (s->in_evq) {
        DL_DELETE2(c->evq, s, ev_prev, ev_next);
        s->in_evq = false;
    }
    maybe_free(s);
    api_done(c);
}

SST_API int sst_stream_error(const struct sst_stream *s)
{
    return s->err;
}

SST_API void sst_stream_set_callback(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    s->cb = cb;
    s->arg = arg;
}

SST_API void sst_stream_set_priority(struct sst_stream *s, int priority)
{
    s->prio = priority;
}

/* ---- datagrams (paper §2.2, §4.3.5) ------------------------------------------------------ */

SST_API int sst_stream_send_datagram(struct sst_stream *s, const void *buf, size_t len)
{
    struct sst_ctx *c = s->ctx;
    if (s->err != 0)
        return s->err;
    if (s->conn == NULL || s->local_only || !s->has_local)
        return SST_ERR_STATE;
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
        make_ready(s);
        api_done(c);
        return 0;
    }
    struct sst_stream *child = open_child(cn, s);
    if (child == NULL)
        return SST_ERR_NOMEM;
    (void)sst_tx_write(&child->tx, buf, len);
    child->wr_shut = true;
    sst_tx_close(&child->tx);
    child->ephemeral = true;
    child->rd_shut = true;
    c->stats.dgrams_sent_substream++;
    api_done(c);
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
        (void)svc_read(child, buf, len);
        child->app_owned = true;
        s->ctx->stats.streams_accepted++;
        sst_stream_close(child);
        api_done(s->ctx);
        return (sst_ssize_t)len;
    }
    return SST_ERR_AGAIN;
}

/* ---- introspection ----------------------------------------------------------------------- */

SST_API void sst_stream_get_stats(const struct sst_stream *s, struct sst_stream_stats *out)
{
    memset(out, 0, sizeof *out);
    out->bytes_written = s->bytes_written;
    out->bytes_read = s->bytes_read;
    out->bytes_retransmitted = s->tx.retx_bytes;
    out->tx_inflight = s->ftx.inflight;
    out->tx_credit = s->ftx.credit;
    out->rx_buffered = sst_rx_available(&s->rx);
    out->priority = s->prio;
    out->local_lsid = s->local_lsid;
    out->remote_lsid = s->remote_lsid;
    out->attached = s->conn != NULL && s->conn->up;
}

SST_API const struct sst_addr *sst_stream_peer(const struct sst_stream *s)
{
    return &s->peer;
}
