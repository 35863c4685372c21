/* A channel (paper §4.2): per-packet sequencing, replay protection, acknowledgment, protection,
 * loss recovery and congestion control between two hosts, shared by every stream above it. */
#include <stdlib.h>
#include <string.h>

#include "ackrx.h"
#include "channel.h"
#include "err.h"
#include "host_int.h"
#include "packet.h"
#include "pmtu.h"
#include "protect.h"
#include "recovery.h"
#include "replay.h"
#include "seq.h"
#include "wire.h"

/* Control packet (type 9) subtypes: the byte after the 4-byte header prefix. */
enum { CTRL_PING = 1, CTRL_CLOSE = 2, CTRL_PAD = 3 };
/* Flag on channel-built Ack packets: the window byte carries no stream window (see packet.h). */
#define ACK_FLAG_NO_WINDOW 0x8

#define HELLO_RTO_INITIAL SST_MS(500)
#define CLOSE_MAX_PTOS 3

struct sst_chan {
    struct sst_host *host;
    struct sst_addr peer;
    /* The local address our packets leave from: the one the peer sends to (see on_packet). */
    struct sst_addr local;
    bool has_local;
    enum sst_chan_state state;
    bool initiator;
    bool finish_confirmed;          /* initiator: the responder has sent us an authenticated packet */
    bool finish_resend;             /* initiator: coalesce FINISH ahead of the next packet */
    bool ack_now;                   /* send an ack-carrying packet at the next flush */
    bool keyed;                     /* keys, recovery and pacer initialised */
    bool flush_deferred;            /* the upper layer's recv() took over this packet's flush */
    uint8_t local_id, remote_id;
    uint8_t security, aead;
    uint8_t peer_key[32];
    uint8_t peer_reset_token[SST_RESET_TOKEN_LEN];
    uint64_t tag;

    /* negotiation (initiator) */
    struct sst_nego_initiator *nego;
    sst_time_t hello_deadline, hello_rto, connect_deadline;

    struct sst_protect tx_prot, rx_prot;
    struct sst_replay replay;
    struct sst_ackrx ackrx;
    struct sst_recovery rec;
    struct sst_pacer pacer;
    struct sst_pmtu pmtu;           /* path MTU discovery (RFC 8899): the datagram size in use */
    unsigned probes_due;            /* PTO probes to send regardless of cwnd */
    unsigned close_ptos;
    sst_time_t pace_until;          /* pacing holds sending until then */
    sst_time_t cb_now;              /* time of the current call, for recovery's callbacks */

    sst_time_t created, established_at, last_rx, last_tx_eliciting;
    enum sst_link_state link;

    const struct sst_chan_upper *up;
    void *up_ctx;
    /* The payload's last bytes as the upper layer left them where they were (sst_chan_fill_tail):
     * set only between its fill() and the packet's sealing. */
    uint8_t *fill_tail;
    size_t fill_tail_len;

    uint64_t tx_packets, rx_packets, tx_bytes, rx_bytes, acks_sent;
};

/* ---- small accessors ------------------------------------------------------------------- */

SST_API void sst_chan_set_upper(struct sst_chan *ch, const struct sst_chan_upper *up, void *ctx)
{
    ch->up = up;
    ch->up_ctx = ctx;
}
SST_API void *sst_chan_upper_ctx(const struct sst_chan *ch) { return ch->up_ctx; }
void sst_chan_fill_tail(struct sst_chan *ch, uint8_t *src, size_t len)
{
    ch->fill_tail = len > 0 ? src : NULL;
    ch->fill_tail_len = len;
}
SST_API enum sst_chan_state sst_chan_state(const struct sst_chan *ch) { return ch->state; }
SST_API const struct sst_addr *sst_chan_peer(const struct sst_chan *ch) { return &ch->peer; }
SST_API struct sst_host *sst_chan_host(const struct sst_chan *ch) { return ch->host; }
SST_API const struct sst_addr *sst_chan_local(const struct sst_chan *ch) { return ch->has_local ? &ch->local : NULL; }

/* Every packet of the channel leaves from its local address once it is known. */
static void chan_emit(struct sst_chan *ch, const uint8_t *pkt, size_t len)
{
    sst_host_emit_from(ch->host, &ch->peer, ch->has_local ? &ch->local : NULL, pkt, len);
}
uint8_t sst_chan_local_id(const struct sst_chan *ch) { return ch->local_id; }
uint8_t sst_chan_remote_id(const struct sst_chan *ch) { return ch->remote_id; }
uint64_t sst_chan_nego_tag(const struct sst_chan *ch) { return ch->tag; }
bool sst_chan_is_initiator(const struct sst_chan *ch) { return ch->initiator; }
bool sst_chan_was_established(const struct sst_chan *ch) { return ch->keyed; }

static size_t overhead(const struct sst_chan *ch) { return sst_protect_overhead(&ch->tx_prot); }

SST_API uint64_t sst_chan_usid_nonce(const struct sst_chan *ch, bool ours)
{
    if (!ch->keyed)
        return 0;
    return sst_protect_derive_id(ours ? &ch->tx_prot : &ch->rx_prot, "SST USID nonce");
}

/* The datagram size packets are built to: the confirmed PLPMTU once keyed (pmtu.h). */
static uint16_t chan_mtu(const struct sst_chan *ch)
{
    if (ch->keyed)
        return ch->pmtu.plpmtu;
    return sst_host_config(ch->host)->max_udp_payload;
}

SST_API size_t sst_chan_max_payload(const struct sst_chan *ch)
{
    return chan_mtu(ch) - SST_CHAN_HDR_LEN - overhead(ch);
}

/* ---- recovery callbacks: forward packet fates to the upper layer ------------------------ */

/* Packets the upper layer filled carry SST_SENT_OWNER; the channel's own acks, pings and closes
 * are none of its business. */
static bool upper_owns(struct sst_chan *ch, uint64_t seq)
{
    return sst_recovery_record(&ch->rec, seq)->flags & SST_SENT_OWNER;
}

static void rec_acked(void *ctx, uint64_t seq)
{
    struct sst_chan *ch = ctx;
    const struct sst_sent *s = sst_recovery_record(&ch->rec, seq);
    sst_pmtu_on_acked(&ch->pmtu, seq, s->bytes, s->flags & SST_SENT_PROBE, ch->cb_now);
    ch->rec.cc.mss = ch->pmtu.plpmtu; /* window arithmetic in packets of the size in use */
    if (ch->up && ch->up->acked && upper_owns(ch, seq))
        ch->up->acked(ch->up_ctx, ch, seq);
}

static void rec_lost(void *ctx, uint64_t seq)
{
    struct sst_chan *ch = ctx;
    const struct sst_sent *s = sst_recovery_record(&ch->rec, seq);
    /* A black hole shrinks max_payload before the upper layer hears of the loss, so the data it
     * queues again is re-segmented to the smaller size. */
    if (sst_pmtu_on_lost(&ch->pmtu, seq, s->bytes, s->flags & SST_SENT_PROBE,
                         sst_recovery_next_seq(&ch->rec), ch->cb_now))
        ch->rec.cc.mss = ch->pmtu.plpmtu;
    if (ch->up && ch->up->lost && upper_owns(ch, seq))
        ch->up->lost(ch->up_ctx, ch, seq);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static struct sst_chan *chan_alloc(struct sst_host *h, sst_time_t now, const struct sst_addr *peer,
                                   const struct sst_addr *local)
{
    struct sst_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    const struct sst_host_config *cfg = sst_host_config(h);
    ch->host = h;
    ch->peer = *peer;
    if (local != NULL) {
        ch->local = *local;
        ch->has_local = true;
    }
    ch->created = now;
    ch->last_rx = now;
    ch->pace_until = 0;
    ch->link = SST_LINK_UP;
    sst_replay_init(&ch->replay);
    sst_ackrx_init(&ch->ackrx, cfg->max_ack_delay);
    return ch;
}

static int chan_install_keys(struct sst_chan *ch, sst_time_t now, const struct sst_nego_result *res)
{
    const struct sst_host_config *cfg = sst_host_config(ch->host);
    int err = sst_protect_init(&ch->tx_prot, res->security, res->aead, res->tx_key);
    if (!err)
        err = sst_protect_init(&ch->rx_prot, res->security, res->aead, res->rx_key);
    if (err)
        return err;
    ch->security = res->security;
    ch->aead = res->aead;
    ch->local_id = res->local_chan_id;
    ch->remote_id = res->remote_chan_id;
    ch->tag = res->tag;
    memcpy(ch->peer_key, res->peer_static, 32);
    memcpy(ch->peer_reset_token, res->peer_reset_token, SST_RESET_TOKEN_LEN);
    struct sst_recovery_cb cb = { .ctx = ch, .acked = rec_acked, .lost = rec_lost };
    uint32_t mss = (uint32_t)(cfg->max_udp_payload);
    err = sst_recovery_init(&ch->rec, cfg->cc, mss, now, &cb);
    if (err)
        return err;
    ch->rec.max_ack_delay = cfg->max_ack_delay;
    uint16_t limit = ch->peer.family == SST_AF_INET6 ? cfg->max_udp_payload_limit6
                                                     : cfg->max_udp_payload_limit;
    sst_pmtu_init(&ch->pmtu, cfg->max_udp_payload, limit, cfg->pmtu_raise_timer);
    sst_pacer_init(&ch->pacer, mss);
    ch->state = SST_CHAN_ESTABLISHED;
    ch->established_at = now;
    ch->last_rx = now;
    ch->keyed = true;
    return 0;
}

struct sst_chan *sst_chan_new_initiator(struct sst_host *h, sst_time_t now, const struct sst_addr *peer)
{
    const struct sst_host_config *cfg = sst_host_config(h);
    /* Our local address is the kernel's choice until the responder's first authenticated
     * packet shows which one it sends to. */
    struct sst_chan *ch = chan_alloc(h, now, peer, NULL);
    if (!ch)
        return NULL;
    ch->initiator = true;
    ch->state = SST_CHAN_CONNECTING;
    ch->nego = sst_nego_initiator_new(sst_host_nego(h), now, peer, cfg->security);
    if (!ch->nego) {
        free(ch);
        return NULL;
    }
    ch->tag = sst_nego_initiator_tag(ch->nego);
    ch->hello_rto = HELLO_RTO_INITIAL;
    ch->connect_deadline = now + cfg->handshake_timeout;
    uint8_t *buf = sst_host_txbuf(h);
    size_t n = sst_nego_initiator_hello(ch->nego, buf, SST_TXBUF_LEN);
    sst_host_emit(h, peer, buf, n);
    ch->hello_deadline = now + ch->hello_rto;
    return ch;
}

struct sst_chan *sst_chan_new_responder(struct sst_host *h, sst_time_t now, const struct sst_addr *peer,
                                        const struct sst_addr *local, const struct sst_nego_result *res)
{
    struct sst_chan *ch = chan_alloc(h, now, peer, local);
    if (!ch)
        return NULL;
    ch->initiator = false;
    ch->finish_confirmed = true;
    if (chan_install_keys(ch, now, res)) {
        sst_chan_free(ch);
        return NULL;
    }
    return ch;
}

void sst_chan_free(struct sst_chan *ch)
{
    if (!ch)
        return;
    if (ch->nego)
        sst_nego_initiator_free(ch->nego);
    if (ch->keyed)
        sst_recovery_free(&ch->rec);
    sst_protect_wipe(&ch->tx_prot);
    sst_protect_wipe(&ch->rx_prot);
    free(ch);
}

/* Marks the channel dead and tells the host (which frees it once the event is delivered). */
static void chan_die(struct sst_chan *ch, int err)
{
    if (ch->state == SST_CHAN_CLOSED)
        return;
    ch->state = SST_CHAN_CLOSED;
    sst_host_chan_event(ch->host, ch, SST_CHAN_EV_DOWN, err);
}

/* ---- send path ------------------------------------------------------------------------- */

/* Until the responder proves it has our FINISH, the FINISH rides ahead of our next packet. */
static bool finish_pending(const struct sst_chan *ch)
{
    return ch->initiator && !ch->finish_confirmed && ch->finish_resend && ch->nego;
}

/* Builds the 4-byte header prefix for a channel-owned packet. */
static void put_prefix(uint8_t *p, unsigned type, unsigned flags)
{
    sst_put16(p, 0);
    p[2] = (uint8_t)((type << 4) | (flags & 0xf));
    p[3] = 0;
}

/* Seals and emits the packet in buf (header space at buf[0..8) is filled here).  payload_len
 * bytes of payload follow the header; when the upper layer's fill() left its last
 * ch->fill_tail_len bytes at ch->fill_tail, buf holds only the ones before them.  probe: a PMTU probe, which the path may drop for its size,
 * so the ack its header carries does not count as sent (the acks due still go in an ordinary
 * packet; otherwise the only report of the range below a gap could vanish with the probe, and the
 * peer would declare packets lost that arrived).  Returns 0 or SST_ERR_LIMIT if the sequence
 * window is full. */
static int chan_transmit(struct sst_chan *ch, sst_time_t now, uint8_t *buf, size_t payload_len,
                         bool eliciting, bool upper, bool probe)
{
    uint8_t *tail = ch->fill_tail;
    size_t tail_len = tail != NULL ? ch->fill_tail_len : 0;
    ch->fill_tail = NULL;
    uint64_t seq = sst_recovery_next_seq(&ch->rec);
    uint64_t asn;
    uint8_t ack_ct;
    sst_ackrx_header_range(&ch->ackrx, &asn, &ack_ct);
    struct sst_chan_hdr hdr = {
        .chan_id = ch->remote_id,
        .tsn24 = (uint32_t)(seq & SST_SEQ_WIRE_MASK),
        .ack_ct = ack_ct,
        .asn24 = (uint32_t)(asn & SST_SEQ_WIRE_MASK),
    };
    size_t len = SST_CHAN_HDR_LEN + payload_len;
    size_t wire_len = len + overhead(ch);
    int err = sst_recovery_on_sent(&ch->rec, now, (uint32_t)wire_len, eliciting);
    if (err)
        return err;
    if (upper)
        sst_recovery_record(&ch->rec, seq)->flags |= SST_SENT_OWNER;
    sst_chan_hdr_encode(buf, &hdr);
    /* Usually the packet is sealed straight into the driver's send queue (one copy fewer than
     * sealing here and having the driver copy it); nothing is emitted in between. */
    uint8_t *slot = finish_pending(ch) ? NULL : sst_host_tx_slot(ch->host, len + overhead(ch) + SST_PROTECT_TAILROOM);
    sst_protect_ready(&ch->tx_prot);
    if (slot != NULL) {
        /* A tail is sealed from where it lies (the stream's send ring): the payload is read
         * once, by the cipher, instead of being copied into buf first. */
        if (tail_len > 0)
            len = sst_protect_seal_gather(&ch->tx_prot, seq, buf, len - tail_len, tail, tail_len, slot);
        else
            len = sst_protect_seal_to(&ch->tx_prot, seq, buf, len, slot);
        chan_emit(ch, slot, len);
        goto sent;
    }
    if (tail_len > 0)
        memcpy(buf + len - tail_len, tail, tail_len);
    len = sst_protect_seal(&ch->tx_prot, seq, buf, len);

    /* Until the responder proves it has our FINISH, the FINISH rides ahead of our packets
     * (coalesced in one datagram) so the responder can always build the channel first. */
    if (finish_pending(ch)) {
        uint8_t dgram[SST_TXBUF_LEN];
        size_t n = sst_nego_initiator_finish(ch->nego, dgram, sizeof dgram);
        size_t limit = SST_CHAN_HDR_LEN + sst_chan_max_payload(ch) + overhead(ch);
        if (n && n + len <= limit) {
            memcpy(dgram + n, buf, len);
            chan_emit(ch, dgram, n + len);
            ch->finish_resend = false;
            goto sent;
        }
        /* Too big to share one datagram on this path: the FINISH goes first, on its own. */
        if (n) {
            chan_emit(ch, dgram, n);
            ch->finish_resend = false;
        }
    }
    chan_emit(ch, buf, len);
sent:
    if (!probe) {
        sst_ackrx_on_ack_sent(&ch->ackrx);
        ch->ack_now = false;
    }
    ch->tx_packets++;
    ch->tx_bytes += len;
    if (eliciting) {
        ch->last_tx_eliciting = now;
        sst_pacer_on_sent(&ch->pacer, (uint32_t)wire_len);
    }
    return 0;
}

/* A channel-built Ack packet: header range plus older ranges in the body (packet.h). */
static void chan_send_ack(struct sst_chan *ch, sst_time_t now)
{
    uint8_t *buf = sst_host_txbuf(ch->host);
    uint8_t *p = buf + SST_CHAN_HDR_LEN;
    size_t cap = sst_chan_max_payload(ch);
    put_prefix(p, SST_PT_ACK, ACK_FLAG_NO_WINDOW);
    struct sst_ack_range ranges[SST_ACKRX_RANGES];
    unsigned n = sst_ackrx_ranges(&ch->ackrx, ranges, SST_ACKRX_RANGES);
    size_t body = sst_ack_body_encode(p + SST_STREAM_HDR_LEN, cap - SST_STREAM_HDR_LEN,
                                      n > 1 ? ranges + 1 : ranges, n > 1 ? n - 1 : 0);
    if (chan_transmit(ch, now, buf, SST_STREAM_HDR_LEN + body, false, false, false) == 0)
        ch->acks_sent++;
}

static void chan_send_control(struct sst_chan *ch, sst_time_t now, uint8_t subtype)
{
    uint8_t *buf = sst_host_txbuf(ch->host);
    uint8_t *p = buf + SST_CHAN_HDR_LEN;
    put_prefix(p, SST_PT_CONTROL, 0);
    p[SST_STREAM_HDR_LEN] = subtype;
    (void)chan_transmit(ch, now, buf, SST_STREAM_HDR_LEN + 1, true, false, false);
}

/* A PMTU probe (RFC 8899 §4.1): a Control PAD packet padded so the datagram is exactly `size`
 * bytes.  Ack-eliciting, so its ack confirms the size; flagged SST_SENT_PROBE so its loss is
 * not taken for congestion (RFC 8899 §4.4).  Returns false if it could not be sent. */
static bool chan_send_probe(struct sst_chan *ch, sst_time_t now, uint16_t size)
{
    size_t fixed = SST_CHAN_HDR_LEN + overhead(ch) + SST_STREAM_HDR_LEN + 1;
    if (size < fixed || size > SST_MAX_DATAGRAM)
        return false;
    uint8_t *buf = sst_host_txbuf(ch->host);
    uint8_t *p = buf + SST_CHAN_HDR_LEN;
    size_t payload_len = size - SST_CHAN_HDR_LEN - overhead(ch);
    put_prefix(p, SST_PT_CONTROL, 0);
    p[SST_STREAM_HDR_LEN] = CTRL_PAD;
    memset(p + SST_STREAM_HDR_LEN + 1, 0, payload_len - SST_STREAM_HDR_LEN - 1);
    uint64_t seq = sst_recovery_next_seq(&ch->rec);
    if (chan_transmit(ch, now, buf, payload_len, true, false, true) != 0)
        return false;
    sst_recovery_record(&ch->rec, seq)->flags |= SST_SENT_PROBE;
    sst_pmtu_on_probe_sent(&ch->pmtu, seq, size);
    return true;
}

/* Sends the probe the PMTU search asks for, if any.  Only while the channel carries traffic
 * (something in flight): the probe's fate is judged by the acks of the packets around it, and
 * an idle channel is not kept awake by probes.  Never before the initiator's FINISH is
 * confirmed, because the FINISH may be coalesced in front of our packets. */
static void chan_maybe_probe(struct sst_chan *ch, sst_time_t now)
{
    if (ch->state != SST_CHAN_ESTABLISHED || !ch->finish_confirmed || ch->rec.bytes_in_flight == 0)
        return;
    sst_pmtu_tick(&ch->pmtu, now);
    uint16_t size = sst_pmtu_probe_size(&ch->pmtu);
    if (size && sst_recovery_can_send(&ch->rec, size))
        (void)chan_send_probe(ch, now, size);
}

/* Asks the upper layer for one payload and sends it.  Returns false if it had nothing. */
static bool chan_send_upper(struct sst_chan *ch, sst_time_t now)
{
    if (!ch->up || !ch->up->fill)
        return false;
    uint8_t *buf = sst_host_txbuf(ch->host);
    size_t cap = sst_chan_max_payload(ch);
    if (finish_pending(ch)) {
        /* Leave room for the FINISH that will share this datagram (piggybacked first data,
         * paper §4.4) so the pair never exceeds the path's datagram size. */
        uint8_t scratch[SST_TXBUF_LEN];
        size_t fin = sst_nego_initiator_finish(ch->nego, scratch, sizeof scratch);
        if (fin + SST_STREAM_HDR_LEN + 64 < cap)
            cap -= fin;
    }
    uint64_t seq = sst_recovery_next_seq(&ch->rec);
    ch->fill_tail = NULL;
    size_t n = ch->up->fill(ch->up_ctx, ch, seq, buf + SST_CHAN_HDR_LEN, cap);
    size_t head = n - (ch->fill_tail != NULL ? ch->fill_tail_len : 0);
    if (n == 0) {
        ch->fill_tail = NULL;
        return false;
    }
    if (n < SST_STREAM_HDR_LEN || n > cap || head < SST_STREAM_HDR_LEN)
        abort(); /* the upper layer broke the fill() contract: a bug, not bad input */
    if (ch->fill_tail != NULL && head > SST_PROTECT_GATHER_HEAD) {
        /* More than a header before the tail: the tail cannot be sealed where it lies. */
        memcpy(buf + SST_CHAN_HDR_LEN + head, ch->fill_tail, ch->fill_tail_len);
        ch->fill_tail = NULL;
    }
    bool eliciting = sst_pkt_ack_eliciting(sst_pkt_type(buf + SST_CHAN_HDR_LEN));
    return chan_transmit(ch, now, buf, n, eliciting, true, false) == 0;
}

/* Acks at most this many ack-eliciting packets apart while packets keep arriving with one
 * timestamp (see chan_ack_or_defer). */
#define ACK_BURST_MAX 16

/* Whether the ack that is due goes now.  Gaps, reordering, pings and a full burst are acked at
 * once (RFC 9000 §13.2.1; loss detection's packet threshold is 3), and so is every ack due when
 * the timer runs.  An ack that is due only because ack_every packets arrived waits until the
 * current instant has passed: the driver hands every datagram of one recvmmsg batch to the engine
 * with the same timestamp and runs the timer right after the batch, so one ack covers the batch
 * (up to ACK_BURST_MAX packets) instead of one per two packets, which made half of the packets a
 * bulk receiver sent.  Where packets arrive one at a time (the simulator, a slow link) the ack
 * leaves one nanosecond later, as before. */
static bool chan_ack_or_defer(struct sst_chan *ch, sst_time_t now, bool from_timer)
{
    if (ch->ack_now)
        return true;
    if (!sst_ackrx_ack_due(&ch->ackrx, now))
        return false;
    struct sst_ackrx *a = &ch->ackrx;
    if (from_timer || a->immediate || a->unacked_eliciting >= ACK_BURST_MAX ||
        (a->ack_deadline != SST_TIME_NEVER && now >= a->ack_deadline))
        return true;
    if (now < SST_TIME_NEVER - 1)
        a->ack_deadline = now + 1;
    return false;
}

/* Sends what probes, congestion control, pacing and pending acks call for. */
static void chan_flush_ex(struct sst_chan *ch, sst_time_t now, bool from_timer)
{
    if (ch->state != SST_CHAN_ESTABLISHED && ch->state != SST_CHAN_CLOSING)
        return;
    ch->cb_now = now;

    /* Probe timeout (RFC 9002 §6.2.4): new data if any, else a ping; ignores cwnd.  Above
     * BASE_PLPMTU the last one is always a (small) ping: if full-size packets fall into a black
     * hole, its ack is what lets loss detection and the PMTU search see it (RFC 8899 §4.3). */
    while (ch->probes_due > 0) {
        ch->probes_due--;
        bool small = ch->probes_due == 0 && sst_pmtu_above_base(&ch->pmtu);
        if (ch->state == SST_CHAN_CLOSING || small || !chan_send_upper(ch, now))
            chan_send_control(ch, now, ch->state == SST_CHAN_CLOSING ? CTRL_CLOSE : CTRL_PING);
    }
    chan_maybe_probe(ch, now);
    uint32_t mss = chan_mtu(ch);
    ch->pace_until = 0;
    bool app_limited = false;
    while (ch->state == SST_CHAN_ESTABLISHED && sst_recovery_can_send(&ch->rec, mss)) {
        sst_time_t at = sst_pacer_next(&ch->pacer, &ch->rec.cc, &ch->rec.rtt, now, mss);
        if (at > now) {
            ch->pace_until = at;
            break;
        }
        if (!chan_send_upper(ch, now)) {
            /* Window and pacing had room but the layer above had nothing: the application,
             * not the network, limits this flight (BBR must not learn a lower bandwidth). */
            sst_recovery_on_app_limited(&ch->rec);
            app_limited = true;
            break;
        }
    }
    /* Only a sender that waits for the pacer may be credited for coming back late. */
    if (ch->pace_until == 0)
        sst_pacer_on_unpaced(&ch->pacer, app_limited);
    /* A FINISH that no data packet carried goes with a ping, so the responder has something
     * to acknowledge (the ack is what confirms the channel to us). */
    if (ch->initiator && !ch->finish_confirmed && ch->finish_resend)
        chan_send_control(ch, now, CTRL_PING);
    if (chan_ack_or_defer(ch, now, from_timer))
        chan_send_ack(ch, now);
    sst_host_deadline_dirty(ch->host);
}

static void chan_flush(struct sst_chan *ch, sst_time_t now) { chan_flush_ex(ch, now, false); }

SST_API void sst_chan_wake(struct sst_chan *ch, sst_time_t now) { chan_flush(ch, now); }

SST_API void sst_chan_defer_flush(struct sst_chan *ch) { ch->flush_deferred = true; }

SST_API uint64_t sst_chan_ping(struct sst_chan *ch, sst_time_t now)
{
    if (ch->state != SST_CHAN_ESTABLISHED)
        return 0;
    uint64_t seq = sst_recovery_next_seq(&ch->rec);
    chan_send_control(ch, now, CTRL_PING);
    sst_host_deadline_dirty(ch->host);
    return sst_recovery_next_seq(&ch->rec) > seq ? seq : 0;
}

uint64_t sst_chan_seq_sent(const struct sst_chan *ch)
{
    return sst_recovery_next_seq(&ch->rec) - 1;
}

uint64_t sst_chan_seq_received(const struct sst_chan *ch)
{
    return ch->replay.top;
}

SST_API bool sst_chan_acked_through(const struct sst_chan *ch, uint64_t seq)
{
    return seq != 0 && ch->rec.largest_acked >= seq;
}

SST_API void sst_chan_close(struct sst_chan *ch, sst_time_t now)
{
    if (ch->state == SST_CHAN_CONNECTING) {
        chan_die(ch, SST_OK);
        return;
    }
    if (ch->state != SST_CHAN_ESTABLISHED)
        return;
    ch->state = SST_CHAN_CLOSING;
    ch->close_ptos = 0;
    chan_send_control(ch, now, CTRL_CLOSE);
    sst_host_deadline_dirty(ch->host);
}

/* ---- receive path ---------------------------------------------------------------------- */

/* Collects every acknowledged range a packet carries (its header range, plus the older ranges
 * of an Ack body) and hands them to recovery together, so loss detection sees all of them at
 * once and never declares lost a packet that a later range in the same packet acknowledges. */
static void chan_process_acks(struct sst_chan *ch, sst_time_t now, const struct sst_chan_hdr *hdr,
                              const uint8_t *payload, size_t plen)
{
    uint64_t highest_sent = sst_recovery_next_seq(&ch->rec) - 1;
    uint64_t asn = sst_seq_extrapolate(highest_sent, hdr->asn24);
    if (asn == 0 || asn > highest_sent)
        return; /* nothing acknowledged yet, or a range we never sent */
    uint64_t ranges[1 + SST_ACKRX_RANGES][2];
    size_t n = 0;
    ranges[n][0] = asn > hdr->ack_ct ? asn - hdr->ack_ct : 1;
    ranges[n][1] = asn;
    n++;
    if (plen >= SST_STREAM_HDR_LEN && sst_pkt_type(payload) == SST_PT_ACK) {
        struct sst_ack_range body[SST_ACKRX_RANGES];
        int k = sst_ack_body_decode(payload + SST_STREAM_HDR_LEN, plen - SST_STREAM_HDR_LEN, asn,
                                    body, SST_ACKRX_RANGES);
        for (int i = 0; i < k && i < (int)SST_ACKRX_RANGES; i++, n++) {
            ranges[n][0] = body[i].lo;
            ranges[n][1] = body[i].hi;
        }
    }
    (void)sst_recovery_on_ack_ranges(&ch->rec, (const uint64_t(*)[2])ranges, n, now);
}

/* Handles a Control packet; returns false if malformed.  *closed is set for a CLOSE. */
static bool chan_on_control(struct sst_chan *ch, const uint8_t *body, size_t len, bool *closed)
{
    if (len < 1)
        return false;
    switch (body[0]) {
    case CTRL_PING:
        ch->ack_now = true; /* pings measure the round trip: no delayed ack */
        return true;
    case CTRL_PAD:
        return true;
    case CTRL_CLOSE:
        *closed = true;
        return true;
    default:
        return false; /* unknown subtype: not acknowledged, so the sender learns nothing was done */
    }
}

void sst_chan_on_packet(struct sst_chan *ch, sst_time_t now, uint8_t *pkt, size_t len)
{
    if (ch->state == SST_CHAN_CONNECTING || ch->state == SST_CHAN_CLOSED)
        return;
    struct sst_chan_hdr hdr;
    if (sst_chan_hdr_decode(&hdr, pkt, len) || len < SST_CHAN_HDR_LEN + overhead(ch))
        return;
    uint64_t seq = sst_seq_extrapolate(ch->replay.top, hdr.tsn24);
    if (sst_replay_check(&ch->replay, seq))
        return;
    size_t plain_len;
    sst_protect_ready(&ch->rx_prot);
    if (sst_protect_open(&ch->rx_prot, seq, pkt, len, &plain_len))
        return;
    ch->cb_now = now;
    /* Authenticated: only now may the packet change state (RFC 4303 §3.4.3). */
    sst_replay_commit(&ch->replay, seq);
    /* The peer sends to this local address now (its own choice, e.g. after we became reachable
     * on another one): answer from it.  Only here, after authentication: a forged packet to
     * another of our addresses must not move our replies. */
    const struct sst_addr *local = sst_host_rx_local(ch->host);
    if (local != NULL && (!ch->has_local || !sst_addr_eq(local, &ch->local))) {
        ch->local = *local;
        ch->has_local = true;
    }
    ch->rx_packets++;
    ch->rx_bytes += len;
    ch->last_rx = now;
    if (ch->initiator && !ch->finish_confirmed) {
        ch->finish_confirmed = true;
        sst_nego_initiator_free(ch->nego);
        ch->nego = NULL;
    }

    const uint8_t *payload = pkt + SST_CHAN_HDR_LEN;
    size_t plen = plain_len - SST_CHAN_HDR_LEN;
    chan_process_acks(ch, now, &hdr, payload, plen);
    bool accept = true, eliciting = false, peer_closed = false;
    if (plen >= SST_STREAM_HDR_LEN) {
        unsigned type = sst_pkt_type(payload);
        eliciting = sst_pkt_ack_eliciting(type);
        if (type == SST_PT_ACK) {
            if (!(payload[2] & ACK_FLAG_NO_WINDOW) && ch->up && ch->up->recv)
                ch->up->recv(ch->up_ctx, ch, seq, payload, plen);
        } else if (type == SST_PT_CONTROL) {
            accept = chan_on_control(ch, payload + SST_STREAM_HDR_LEN, plen - SST_STREAM_HDR_LEN,
                                     &peer_closed);
        } else {
            accept = ch->up && ch->up->recv && ch->up->recv(ch->up_ctx, ch, seq, payload, plen);
        }
    }
    if (accept)
        sst_ackrx_on_packet(&ch->ackrx, seq, eliciting, now);
    if (peer_closed) {
        /* The peer is closing: acknowledge its CLOSE at once, then we are done too.  If this ack
         * is lost, the peer's retransmitted CLOSE draws a stateless RESET, which also ends it. */
        chan_send_ack(ch, now);
        chan_die(ch, SST_OK);
        return;
    }

    enum sst_link_state link = sst_recovery_link_state(&ch->rec, now);
    if (ch->link == SST_LINK_STALLED && link == SST_LINK_UP)
        sst_host_chan_event(ch->host, ch, SST_CHAN_EV_RESUMED, 0);
    ch->link = link;
    if (ch->state == SST_CHAN_CLOSING && ch->rec.bytes_in_flight == 0) {
        chan_die(ch, SST_OK);
        return;
    }
    if (ch->flush_deferred) {
        /* The upper layer flushes once its application has answered (sst_chan_defer_flush). */
        ch->flush_deferred = false;
        sst_host_deadline_dirty(ch->host);
        return;
    }
    chan_flush(ch, now);
}

void sst_chan_on_nego(struct sst_chan *ch, sst_time_t now, const uint8_t *pkt, size_t len)
{
    if (ch->state != SST_CHAN_CONNECTING || !ch->nego)
        return;
    uint8_t *out = sst_host_txbuf(ch->host);
    size_t out_len = 0;
    struct sst_nego_result res;
    int r = sst_nego_initiator_recv(ch->nego, now, pkt, len, out, &out_len, &res);
    if (r < 0) {
        /* A bad or forged reply is dropped; only a host key that fails verification is fatal. */
        if (r == SST_ERR_IDENTITY)
            chan_die(ch, SST_ERR_IDENTITY);
        return;
    }
    if (r == 0) {
        /* COOKIE: the new HELLO goes out now and restarts the retransmission timer. */
        if (out_len)
            chan_emit(ch, out, out_len);
        ch->hello_deadline = now + ch->hello_rto;
        sst_host_deadline_dirty(ch->host);
        return;
    }
    int err = chan_install_keys(ch, now, &res);
    memset(&res, 0, sizeof res);
    if (err) {
        chan_die(ch, err);
        return;
    }
    ch->finish_resend = true;
    sst_host_chan_event(ch->host, ch, SST_CHAN_EV_UP, 0);
    if (ch->state == SST_CHAN_ESTABLISHED)
        chan_flush(ch, now); /* FINISH goes coalesced with the first data, or with a ping */
}

void sst_chan_abort_connect(struct sst_chan *ch, int err)
{
    if (ch->state == SST_CHAN_CONNECTING)
        chan_die(ch, err);
}

void sst_chan_on_dup_finish(struct sst_chan *ch, sst_time_t now)
{
    if (ch->state != SST_CHAN_ESTABLISHED)
        return;
    ch->ack_now = true;
    chan_flush(ch, now);
}

void sst_chan_on_reset(struct sst_chan *ch, sst_time_t now, const uint8_t token[SST_RESET_TOKEN_LEN])
{
    (void)now;
    if (ch->state == SST_CHAN_CONNECTING || ch->state == SST_CHAN_CLOSED)
        return;
    if (!sst_nego_reset_matches(ch->peer_reset_token, token))
        return;
    /* A CLOSING channel whose CLOSE ack was lost is reset by a peer that already forgot it. */
    chan_die(ch, ch->state == SST_CHAN_CLOSING ? SST_OK : SST_ERR_RESET);
}

/* ---- timers ---------------------------------------------------------------------------- */

static sst_time_t min_t(sst_time_t a, sst_time_t b) { return a < b ? a : b; }

sst_time_t sst_chan_deadline(const struct sst_chan *ch)
{
    const struct sst_host_config *cfg = sst_host_config(ch->host);
    switch (ch->state) {
    case SST_CHAN_CONNECTING:
        return min_t(ch->hello_deadline, ch->connect_deadline);
    case SST_CHAN_CLOSED:
        return SST_TIME_NEVER;
    default:
        break;
    }
    sst_time_t t = sst_recovery_deadline(&ch->rec);
    if (ch->ackrx.ack_deadline != SST_TIME_NEVER)
        t = min_t(t, ch->ackrx.ack_deadline);
    if (ch->pace_until)
        t = min_t(t, ch->pace_until);
    if (cfg->idle_timeout)
        t = min_t(t, ch->last_rx + cfg->idle_timeout);
    if (cfg->keepalive && ch->state == SST_CHAN_ESTABLISHED) {
        sst_time_t last = SST_MAX(ch->last_rx, ch->last_tx_eliciting);
        t = min_t(t, last + cfg->keepalive);
    }
    return t;
}

static void chan_connect_timeout(struct sst_chan *ch, sst_time_t now)
{
    if (now >= ch->connect_deadline) {
        chan_die(ch, SST_ERR_TIMEOUT);
        return;
    }
    if (now >= ch->hello_deadline) {
        uint8_t *buf = sst_host_txbuf(ch->host);
        size_t n = sst_nego_initiator_hello(ch->nego, buf, SST_TXBUF_LEN);
        chan_emit(ch, buf, n);
        ch->hello_rto *= 2;
        ch->hello_deadline = now + ch->hello_rto;
    }
}

void sst_chan_on_timeout(struct sst_chan *ch, sst_time_t now)
{
    const struct sst_host_config *cfg = sst_host_config(ch->host);
    if (ch->state == SST_CHAN_CONNECTING) {
        chan_connect_timeout(ch, now);
        sst_host_deadline_dirty(ch->host);
        return;
    }
    if (ch->state == SST_CHAN_CLOSED)
        return;
    ch->cb_now = now;
    if (cfg->idle_timeout && now >= ch->last_rx + cfg->idle_timeout) {
        /* Silence for the whole idle period: with data outstanding the peer is gone. */
        chan_die(ch, ch->rec.bytes_in_flight ? SST_ERR_TIMEOUT : SST_OK);
        return;
    }
    if (now >= sst_recovery_deadline(&ch->rec)) {
        unsigned probes = sst_recovery_on_timeout(&ch->rec, now);
        ch->probes_due += probes;
        if (probes && ch->initiator && !ch->finish_confirmed)
            ch->finish_resend = true;
        if (probes && ch->state == SST_CHAN_CLOSING && ++ch->close_ptos > CLOSE_MAX_PTOS) {
            chan_die(ch, SST_OK);
            return;
        }
    }
    enum sst_link_state link = sst_recovery_link_state(&ch->rec, now);
    if (link != ch->link) {
        ch->link = link;
        if (link == SST_LINK_DOWN) {
            chan_die(ch, SST_ERR_TIMEOUT);
            return;
        }
        sst_host_chan_event(ch->host, ch,
                            link == SST_LINK_STALLED ? SST_CHAN_EV_STALLED : SST_CHAN_EV_RESUMED, 0);
        if (ch->state == SST_CHAN_CLOSED)
            return;
    }
    if (cfg->keepalive && ch->state == SST_CHAN_ESTABLISHED &&
        now >= SST_MAX(ch->last_rx, ch->last_tx_eliciting) + cfg->keepalive)
        chan_send_control(ch, now, CTRL_PING);
    chan_flush_ex(ch, now, true);
}

/* ---- memory ------------------------------------------------------------------------- */

/* The upper layer saw the channel idle: give back what only packets in flight need, and the
 * precomputed AES-GCM state of both directions (about 1 KB; rebuilt from the keys by the next
 * packet either way, sst_protect_ready). */
bool sst_chan_compact(struct sst_chan *ch, sst_time_t now)
{
    if (!ch->keyed || ch->state == SST_CHAN_CLOSED)
        return false;
    if (!sst_recovery_trim(&ch->rec, now))
        return false;
    sst_protect_idle(&ch->tx_prot);
    sst_protect_idle(&ch->rx_prot);
    return true;
}

size_t sst_chan_heap_bytes(const struct sst_chan *ch)
{
    size_t n = sizeof *ch + (size_t)ch->rec.cap * sizeof(struct sst_sent);
    n += sst_protect_heap_bytes(&ch->tx_prot) + sst_protect_heap_bytes(&ch->rx_prot);
    return n;
}

/* ---- statistics ------------------------------------------------------------------------ */

SST_API void sst_chan_get_stats(const struct sst_chan *ch, struct sst_chan_stats *out)
{
    memset(out, 0, sizeof *out);
    out->state = ch->state;
    out->link = ch->link;
    out->security = ch->security;
    out->aead = ch->aead;
    out->initiator = ch->initiator;
    out->local_id = ch->local_id;
    out->remote_id = ch->remote_id;
    memcpy(out->peer_key, ch->peer_key, 32);
    out->tx_packets = ch->tx_packets;
    out->rx_packets = ch->rx_packets;
    out->tx_bytes = ch->tx_bytes;
    out->rx_bytes = ch->rx_bytes;
    out->acks_sent = ch->acks_sent;
    out->established_at = ch->established_at;
    if (ch->keyed) {
        out->srtt = ch->rec.rtt.smoothed;
        out->rttvar = ch->rec.rtt.var;
        out->min_rtt = ch->rec.rtt.min;
        out->cwnd = ch->rec.cc.cwnd;
        out->ssthresh = ch->rec.cc.ssthresh;
        out->bytes_in_flight = ch->rec.bytes_in_flight;
        out->lost_packets = ch->rec.stat_lost;
        out->pto_count_total = ch->rec.stat_pto;
        out->cc_name = ch->rec.cc.ops ? ch->rec.cc.ops->name : "";
        out->plpmtu = ch->pmtu.plpmtu;
        out->pmtu_state = ch->pmtu.state;
        out->pmtu_probes_sent = ch->pmtu.probes_sent;
        out->pmtu_probes_lost = ch->pmtu.probes_lost;
        out->pmtu_blackholes = ch->pmtu.blackholes;
        out->congestion_events = ch->rec.cc.stat_congestion_events;
        out->hystart_exit_cwnd = ch->rec.cc.hystart.stat_exit_cwnd;
        out->pacing_rate = ch->rec.cc.pacing_rate;
    }
}
