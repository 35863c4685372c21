/* Internal to the stream layer: the structures its files share (streams, per-channel conns,
 * listeners, the context) and the functions they call across files.  Not part of the API. */
#ifndef SST_STREAM_INT_H
#define SST_STREAM_INT_H

#include "channel.h"
#include "sid.h"
#include "sst.h"
#include "stream_fc.h"
#include "stream_index.h"
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
#define SVC_BUF (SVC_REQ_HDR + 255)
enum svc_code { SVC_OK = 0x00, SVC_NO_SERVICE = 0x10, SVC_BACKLOG_FULL = 0x11 };
/* SVC_UNANSWERED: responder, accepted under answer-later, the application has not answered. */
enum svc_state { SVC_NONE = 0, SVC_WAIT_REPLY, SVC_WAIT_REQUEST, SVC_UNANSWERED };

/* The root stream's window is fixed by the protocol, since Init data for the first top-level
 * stream borrows it before the peer can have said anything (paper §4.3.6). */
#define ROOT_WINDOW 65535u
/* Stateless Resets waiting to go out, per channel (best effort; more are dropped). */
#define RST_QUEUE 32
/* Children of one parent whose Init went out bare (without the data that waits for the
 * parent's credit) and is not yet confirmed: stream_sched.c can_emit. */
#define SST_BARE_INITS_MAX 16
/* Datagrams being reassembled per channel, and their largest fragment count. */
#define DG_PARTIALS 8
#define DG_MAX_FRAGS 32
#define DG_FRAG_MAX 1500
/* Multi-fragment datagrams go on a substream when the expected number of lost fragments
 * (fragments x channel loss rate, measured over at least this many packets) exceeds this. */
#define DGRAM_LOSS_BUDGET 0.1
#define DGRAM_LOSS_MIN_SAMPLE 100
/* Migration (paper §4.3.7): first delay between reconnection attempts, and its cap. */
#define MIG_BACKOFF_MIN SST_MS(500)
#define MIG_BACKOFF_MAX SST_SEC(4)
/* A woken dormant conn has at least this long to reach the peer (even with migrate_timeout 0)
 * before its streams fail with SST_ERR_TIMEOUT. */
#define DORMANT_WAKE_MIN SST_SEC(10)
/* A stream inactive this long gives back the storage of its empty rings and range sets
 * (idle streams hold none), long before it detaches (detach_idle): a short pause costs a
 * busy stream one regrowth of its rings, not an allocation per packet. */
#define COMPACT_IDLE SST_SEC(1)
/* Remote LSIDs that stopped naming a stream here (the peer detached it, or we freed the stream),
 * remembered per channel with the packet sequence number at that moment, so that the peer's
 * packets sent before and delayed past it are not taken for a new stream nor answered with a
 * stateless Reset (paper §4.3.9: the receiver's half of the quiet period). */
#define GONE_RING 64

/* Our side's attachment of a stream to its conn's channel (paper §4.3.7). */
enum att_state { ATT_NONE = 0, ATT_PENDING, ATT_INFLIGHT };
enum det_state { DET_NONE = 0, DET_PENDING, DET_INFLIGHT };

struct conn;
struct dgram_out;

struct sst_stream {
    struct sst_ctx *ctx;
    struct conn *conn;             /* NULL once detached (channel gone) or local-only */
    struct sst_stream *parent;
    struct sst_stream *kids;       /* children (all, accepted or not), via kid_prev/kid_next */
    struct sst_stream *kid_prev, *kid_next;
    unsigned nrecs;                /* send records in the channel's table pointing at us */
    int prio;
    struct sst_addr peer;

    /* incoming children waiting for accept (substreams, datagrams) */
    struct sst_stream *acceptq;
    struct sst_stream *aq_owner;   /* the stream whose accept queue holds us */
    struct sst_listener *lq_owner; /* the listener whose backlog holds us */
    /* Children whose Init is not yet known to the peer, and of those the ones whose Init went
     * out without its data (SST_BARE_INITS_MAX, stream_sched.c).  Each holds an LSID of its
     * own, so 16 bits suffice. */
    uint16_t unconfirmed_children, bare_children;

    uint16_t local_lsid, remote_lsid;
    struct sst_usid usid;          /* initiator: usid.counter is set at creation, the nonce
                                    * when the channel is up (usid_set) */
    uint64_t remote_counter;       /* the peer's LSID counter value behind remote_lsid */
    sst_time_t last_active;        /* for idle detach */
    struct sst_stream *idle_prev, *idle_next;   /* conn->idle, least recently active first */
    unsigned nacceptq;
    uint16_t svclen;               /* bytes of svcbuf filled */
    uint16_t dg_next_id;

    struct sst_rx rx;
    struct sst_tx tx;
    struct sst_fc_rx frx;
    struct sst_fc_tx ftx;

    sst_stream_cb cb;
    void *arg;
    /* Links that are never in use at once share storage (struct sst_stream is what an idle
     * stream costs):
     *  - an accept queue or listener backlog (aq_owner/lq_owner set) holds only streams the
     *    application has not taken, and only taken ones (app_owned) get events (in_evq);
     *  - a stream is on its conn's ready list (in_ready) or on its parent's waiters list
     *    (waiting), never both: each move takes it off the other first. */
    union {
        struct { struct sst_stream *aq_prev, *aq_next; };
        struct { struct sst_stream *ev_prev, *ev_next; };
    };
    union {
        struct { struct sst_stream *rd_prev, *rd_next; };
        struct { struct sst_stream *wt_prev, *wt_next; };
    };
    /* Init segments blocked on the parent (unknown to the peer, or out of its credit) wait off
     * the ready list, on the parent's waiters list (s->waiting), until the parent's state
     * changes.  A waiting stream leaves that list before its parent changes. */
    struct sst_stream *waiters;
    struct sst_stream *cn_prev, *cn_next;     /* conn->streams, or ctx->orphans without a conn */

    uint8_t *svcbuf;               /* SVC_BUF bytes while the request/answer is read */

    struct dgram_out *dgq;
    /* Both bounded by a buffer size, and buffers are at most 4 GiB - 1 (sst_ctx_new): */
    uint32_t borrowed;             /* received Init bytes charged to the parent's window */
    uint32_t dg_bytes;             /* bytes of the datagrams in dgq */


    /* small state and flags, packed together in 8 bytes (test_stream_mem checks the size; the
     * order keeps multi-bit fields from straddling a 32-bit unit; no bit is left) */
    int16_t err;                   /* SST_ERR_* once failed */
    unsigned adv_win : 5;          /* last window exponent advertised (0..31) */
    unsigned pending_ev : 6;       /* SST_EV_* bits waiting for the callback */
    unsigned att : 2;              /* enum att_state: our Attach on the current channel */
    unsigned det : 2;              /* enum det_state: our Detach (idle stream) */
    bool waiting : 1;              /* on s->parent's waiters list */
    unsigned svc : 2;              /* enum svc_state */
    bool listening : 1;
    bool counted_unconfirmed : 1;
    bool counted_closing : 1;     /* in ctx stats.streams_closing (sst_stream_close) */
    bool counted_bare : 1;         /* counted in parent->bare_children */
    bool has_local : 1;
    bool has_remote : 1;
    bool remote_detached : 1;          /* the peer detached its half (it had our Reply/Init) */
    bool usid_set : 1;                 /* usid is final and in ctx->by_usid */
    bool known_ever : 1;               /* the peer has known this stream (on some channel) */
    bool att_init : 1;                 /* that Attach carries the parent's USID (I flag) */
    bool in_idle : 1;
    bool initiator : 1;                /* we sent the Init */
    bool is_root : 1;
    bool peer_knows : 1;               /* the peer knows our LSID (Init/Reply acked, or Reply seen) */
    bool need_reply : 1;               /* responder: a Reply must go out even without data */
    bool need_wupdate : 1;             /* a window update must go out */
    bool win_news : 1;                 /* the window changed: an update goes out if it is
                                        * still news when the channel asks for a packet */
    bool rst_pending : 1;
    bool rst_inflight : 1;
    bool rst_done : 1;
    bool ephemeral : 1;                /* datagram sent as a substream: peer must not write back */
    bool local_only : 1;               /* stateless datagram presented as a read-only substream */
    bool rd_shut : 1;
    bool wr_shut : 1;
    bool app_owned : 1;                /* the application holds a handle */
    bool want_write : 1;
    bool eof_posted : 1;
    bool freed : 1;
    bool in_evq : 1;
    bool in_ready : 1;
    uint64_t bytes_written, bytes_read;
};

struct dgram_out {
    struct dgram_out *next;
    size_t len, frag, sent;        /* sent: fragments already emitted */
    uint16_t id;
    uint8_t cnt;
    uint8_t data[];
};

/* The receiver's quiet period (GONE_RING above): a ring of the latest released remote LSIDs. */
struct gone_ring {
    uint16_t lsid[GONE_RING];
    uint64_t seq[GONE_RING];
    unsigned next;
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
    bool flush_due;                /* a received packet's flush waits for the callbacks */
    struct sst_stream *root;
    struct sst_sidx by_local, by_remote;   /* streams by our LSID / the peer's */
    struct sst_stream *streams, *ready;
    struct sst_sid_alloc sid;
    uint64_t peer_counter;         /* highest counter seen from the peer's LSIDs */
    struct sst_txrec_table recs;
    uint16_t rst_lsid[RST_QUEUE];
    uint8_t rst_flags[RST_QUEUE];
    unsigned nrst;
    struct dg_partial *partial;    /* DG_PARTIALS slots, allocated by the first fragmented
                                    * datagram and freed when none is in progress */
    uint64_t dg_stamp;
    uint64_t tx_seq, rx_seq;
    struct sst_stream *idle;       /* attached streams, least recently active first */
    struct sst_stream *compact;    /* the first of conn->idle not yet compacted since its last
                                    * activity (the ones before it were); NULL: none */
    sst_time_t last_fill;          /* when we last sent a stream-layer packet */
    sst_time_t compact_chan_at;    /* when the channel's per-packet state may be given back
                                    * (COMPACT_IDLE after the last fill; NEVER once done) */
    uint8_t peer_key[32];          /* the peer's host key (streams migrate only between
                                    * channels to the same key) */
    bool have_key;
    bool was_up;                   /* the channel came up (a failed handshake is not migrated) */
    /* Limbo: the channel failed (SST_ERR_TIMEOUT) and the streams wait for a new one. */
    bool limbo;
    bool we_reconnect;             /* we initiated the failed channel: we re-establish it */
    /* Dormant: the channel closed while idle (idle timeout or the peer's graceful close).  Its
     * streams wait with no deadline; the first one with something to send wakes the conn, and
     * whichever side that is re-establishes a channel (both sides may; the host key and USIDs
     * find the streams).  A woken conn is an ordinary limbo conn with we_reconnect set. */
    bool dormant;
    bool chan_initiator;           /* we initiated this conn's channel */
    sst_time_t limbo_until, retry_at, backoff;
    sst_time_t probe_at;           /* dormant: when to check that the peer still knows us */
    struct gone_ring *gone;        /* allocated on the first release, freed once expired */
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
    bool answer_later;             /* sst_listener_set_answer_later */
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
    struct sst_stream *orphans;    /* streams without a conn (detached for good, or local-only) */
    bool dispatching;
    bool in_recv;                  /* inside sst_ctx_recv: packets' flushes wait for callbacks */
    struct sst_sidx by_usid;       /* every stream with a USID */
    bool mig_kick;                 /* a dormant conn woke: reconnect at the end of this call */
    struct sst_utimer *utimers;    /* streams with a user timeout or keepalive (stream_utimeout.c) */
    struct sst_ctx_stats stats;
};

/* ---- stream.c: lifecycle and events --------------------------------------------------------- */

/* Queues events for the stream's callback (deferred until sst_ctx_dispatch). */
void sst_strm_post(struct sst_stream *s, unsigned ev);
void sst_strm_post_listener(struct sst_listener *l);
/* Puts s on its conn's ready list (it may have something to send). */
void sst_strm_make_ready(struct sst_stream *s);
void sst_strm_unready(struct sst_stream *s);
/* Parks s on its parent's waiters list (off the ready list) / takes it off that list / moves
 * parent's waiters back to ready. */
void sst_strm_wait_on_parent(struct sst_stream *s);
void sst_strm_unwait(struct sst_stream *s);
void sst_strm_wake_waiters(struct sst_stream *parent);
void sst_strm_uncount_bare(struct sst_stream *s);
struct sst_stream *sst_strm_alloc(struct sst_ctx *c, struct conn *cn, struct sst_stream *parent,
                                  size_t rxcap, size_t txcap);
/* Allocates s's LSID on its conn; false when the LSID space is exhausted. */
bool sst_strm_set_local_lsid(struct sst_stream *s);
/* Takes s off its conn: LSIDs released, send records no longer point at it. */
void sst_strm_unbind(struct sst_stream *s);
/* The peer knows our LSID for s (Init/Reply acknowledged, Reply seen). */
void sst_strm_confirm(struct sst_stream *s);
void sst_strm_maybe_free(struct sst_stream *s);
void sst_strm_free(struct sst_stream *s);
void sst_strm_abort(struct sst_stream *s, int err, bool tell_peer);

/* ---- stream_utimeout.c: sst_stream_set_user_timeout, sst_stream_set_keepalive ---------------- */

struct sst_utimer;
/* Drops s's user timeout and keepalive, if it has any: the stream is freed. */
void sst_ut_forget(struct sst_stream *s);
/* When the earliest record wants a look (SST_TIME_NEVER: none). */
sst_time_t sst_ut_deadline(const struct sst_ctx *c);
/* Looks at the records due at c->now (pings for keepalive); a stream past a limit fails with
 * SST_ERR_TIMEOUT. */
void sst_ut_timeout(struct sst_ctx *c);
struct sst_stream *sst_strm_open_child(struct conn *cn, struct sst_stream *parent);
void sst_strm_adopt(struct sst_stream *s, sst_stream_cb cb, void *arg);
/* s has something to send (new bytes, Close, Reset, datagram, window update or Reply). */
bool sst_strm_has_work(const struct sst_stream *s);
/* Every public entry point ends here: flush what the call queued, then run callbacks. */
void sst_strm_api_done(struct sst_ctx *c);

/* ---- stream_conn.c: per-channel state ------------------------------------------------------- */

extern const struct sst_chan_upper sst_conn_upper_ops;
void sst_conn_wake(struct conn *cn);
struct sst_stream *sst_conn_find_local(struct conn *cn, uint16_t lsid);
struct sst_stream *sst_conn_find_remote(struct conn *cn, uint16_t lsid);
bool sst_conn_lsid_in_use(void *arg, uint16_t lsid);
/* Queues a stateless Reset (O set) for the peer's LSID (paper §4.3.8). */
void sst_conn_stateless_reset(struct conn *cn, uint16_t peer_lsid);
/* The peer's 64-bit LSID counter behind a received LSID (paper §4.3.3), tracking the highest. */
uint64_t sst_conn_peer_counter(struct conn *cn, uint16_t lsid);
/* The packet sequence numbers the LSID quiet period runs on (paper §4.3.9): the channel's,
 * which count every packet -- a peer that only acknowledges moves its numbers on, and the
 * replay window that keeps an LSID's old packets from its new use works on them.  The stream
 * layer's own (tx_seq, rx_seq: packets it filled or was given) once the channel is gone.  Until
 * 2026-11-22 the quiet table counted only those, and a sender whose peer had only acked since
 * its releases found them all still quiet after the LSIDs wrapped (test_stream_quiet). */
static inline uint64_t sst_conn_quiet_tx(const struct conn *cn)
{
    return cn->ch ? SST_MAX(cn->tx_seq, sst_chan_seq_sent(cn->ch)) : cn->tx_seq;
}
static inline uint64_t sst_conn_quiet_rx(const struct conn *cn)
{
    return cn->ch ? SST_MAX(cn->rx_seq, sst_chan_seq_received(cn->ch)) : cn->rx_seq;
}
struct conn *sst_conn_new(struct sst_ctx *c, struct sst_chan *ch, const struct sst_addr *peer);
struct conn *sst_conn_find_peer(struct sst_ctx *c, const struct sst_addr *peer);
struct conn *sst_conn_find_chan(struct sst_ctx *c, const struct sst_chan *ch);
void sst_conn_down(struct conn *cn, int err);
void sst_conn_free_unowned(struct sst_ctx *c);

/* ---- stream_migrate.c: USIDs, Attach/Detach, migration (paper §4.3.7) ------------------- */

/* Gives s its USID once its channel's direction nonce is known, and indexes it. */
void sst_mig_set_usid(struct sst_stream *s, uint64_t counter, bool ours);
void sst_mig_forget_usid(struct sst_stream *s);
/* Channel up: capture the peer's key, give waiting streams their USIDs, and adopt the streams
 * of a conn in limbo for the same peer. */
void sst_mig_conn_up(struct conn *cn);
/* Channel down: true if cn was put in limbo (its streams wait for a new channel). */
bool sst_mig_conn_down(struct conn *cn, int err);
/* Starts attaching s on its conn if it has work but no LSID there (after Detach). */
void sst_mig_need_attach(struct sst_stream *s);
/* Records activity on s for the idle-detach clock. */
void sst_mig_touch(struct sst_stream *s);
/* The application read from s: a stream inactive for COMPACT_IDLE whose ring it just emptied
 * gives the store back now (compaction passed it while the bytes were unread). */
void sst_mig_after_read(struct sst_stream *s);
void sst_mig_untrack(struct sst_stream *s);
size_t sst_mig_emit_attach(struct sst_stream *s, uint64_t seq, uint8_t *buf, size_t cap);
size_t sst_mig_emit_detach(struct sst_stream *s, uint64_t seq, uint8_t *buf, size_t cap);
void sst_mig_on_record(struct sst_stream *s, const struct sst_txrec *r, bool acked);
bool sst_mig_on_attach(struct conn *cn, uint64_t seq, const struct sst_spkt *p);
bool sst_mig_on_detach(struct conn *cn, uint64_t seq, const struct sst_spkt *p);
/* Remembers that the peer's LSID stopped naming a stream at packet seq. */
void sst_mig_gone(struct conn *cn, uint16_t lsid, uint64_t seq);
/* A packet for a remote LSID that was sent before that LSID stopped naming its stream. */
bool sst_mig_stale(struct conn *cn, uint16_t lsid, uint64_t seq);
sst_time_t sst_mig_deadline(struct sst_ctx *c);
void sst_mig_timeout(struct sst_ctx *c);
/* s (on a dormant conn) has something to send: wake its conn so a channel is re-established. */
void sst_mig_wake(struct sst_stream *s);
/* A handshake to `peer` met an ICMP port unreachable: conns in limbo reconnecting there fail. */
void sst_mig_refused(struct sst_ctx *c, const struct sst_addr *peer);
/* Runs the reconnections that woken dormant conns asked for (end of every public call). */
void sst_mig_kick(struct sst_ctx *c);

/* ---- stream_sched.c: the channel's fill/acked/lost ------------------------------------------ */

unsigned sst_sched_seg_type(const struct sst_stream *s);
bool sst_sched_parent_known(const struct sst_stream *s);
/* Records that packet seq carries stream control of `kind` (Reset, Attach, Detach) for s, so its
 * ack or loss comes back to s (resent until acknowledged).  False if the record table is full. */
bool sst_sched_track_control(struct sst_stream *s, uint64_t seq, enum sst_txrec_kind kind, unsigned pkt_type);
size_t sst_sched_fill(void *ctx, struct sst_chan *ch, uint64_t seq, uint8_t *buf, size_t cap);
void sst_sched_acked(void *ctx, struct sst_chan *ch, uint64_t seq);
void sst_sched_lost(void *ctx, struct sst_chan *ch, uint64_t seq);
void sst_sched_on_record(struct conn *cn, const struct sst_txrec *r, bool acked);

/* ---- stream_recv.c: the channel's recv ------------------------------------------------------ */

bool sst_srecv_recv(void *ctx, struct sst_chan *ch, uint64_t seq, const uint8_t *payload, size_t len);
void sst_srecv_window_check(struct sst_stream *s);
bool sst_srecv_window_news(const struct sst_stream *s);
void sst_srecv_window_from(struct sst_stream *s, uint64_t seq, uint8_t win);
void sst_srecv_enqueue_child(struct sst_stream *parent, struct sst_stream *s);
/* flags: the segment's SST_SF_MARK and SST_SF_CLOSE. */
bool sst_srecv_deliver(struct sst_stream *s, uint64_t off, const uint8_t *data, size_t len,
                       unsigned flags, bool borrowed);

/* ---- stream_dgram.c ------------------------------------------------------------------------- */

size_t sst_dgram_emit(struct sst_stream *s, uint8_t *buf, size_t cap);
bool sst_dgram_on_packet(struct conn *cn, uint64_t seq, const struct sst_spkt *p);
/* Frees the reassembly slots (and any datagram in progress). */
void sst_dgram_free_partials(struct conn *cn);

/* ---- stream_svc.c --------------------------------------------------------------------------- */

struct sst_listener *sst_svc_find_listener(struct sst_ctx *c, const char *name, size_t len);
/* Reads stream-layer bytes from the front of s's receive buffer, cancelling their deduction. */
size_t sst_svc_read(struct sst_stream *s, uint8_t *buf, size_t len);
/* The same, stopping at a record boundary (*end set when the bytes end a record). */
size_t sst_svc_read_msg(struct sst_stream *s, uint8_t *buf, size_t len, bool *end);
void sst_svc_pump(struct sst_stream *s);
/* A stream accepted under answer-later that the application gives back unanswered: refused. */
void sst_svc_refuse_unanswered(struct sst_stream *s);

#endif
