/* The SST host: demultiplexes datagrams to channels or to the negotiation protocol, owns the
 * channel table and the host-wide timers.  Sans-I/O: time and datagrams come in as arguments. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "channel.h"
#include "err.h"
#include "host.h"
#include "host_int.h"
#include "negotiate.h"
#include "packet.h"
#include "pmtu.h"

/* Stateless resets are rate limited so that a flood of junk cannot make us a reflector. */
#define RESET_BUDGET_PER_SEC 50
#define RESERVATION_TTL SST_SEC(10)

/* Demultiplexing key: the peer's address and the channel ID it puts in its packets (ours). */
struct chan_key {
    struct sst_addr peer;
    uint8_t local_id;
};

struct chan_entry {
    struct chan_key key;        /* zero-padded: hashed as raw bytes */
    struct sst_chan *ch;        /* NULL while only reserved by a running handshake */
    sst_time_t reserved_until;
    UT_hash_handle hh;
};

struct sst_host {
    struct sst_host_config cfg;
    struct sst_host_io io;
    struct sst_nego_host *nego;
    struct chan_entry *table;           /* uthash by chan_key */
    struct chan_entry *last_found;      /* entry_find's previous answer (see there) */
    struct sst_chan **chans;            /* every live channel, for timers and lookups */
    unsigned nchans, cap_chans;
    struct sst_chan **dead;             /* closed channels, freed after their DOWN event */
    unsigned ndead, cap_dead;
    sst_time_t now;
    const struct sst_addr *rx_local;    /* the received datagram's local address, during recv */
    sst_time_t deadline;
    bool deadline_dirty;
    sst_time_t reset_window_start;
    unsigned resets_in_window;
    struct sst_host_stats stats;
    _Alignas(16) uint8_t txbuf[SST_TXBUF_LEN];
    _Alignas(16) uint8_t nego_buf[SST_TXBUF_LEN];
};

SST_API void sst_host_config_default(struct sst_host_config *c)
{
    memset(c, 0, sizeof *c);
    c->security = SST_SEC_STRONG;
    c->cc = SST_CC_BBR;   /* docs/protocol-recovery.md "Choice of the default" */
    c->allow_aes = true;
    c->max_udp_payload = 1232;  /* IPv6 minimum MTU 1280 - 40 (IPv6) - 8 (UDP) */
    c->cookie_threshold = 64;
    c->max_half_open = 4096;
    c->max_channels = 4096;
    c->handshake_timeout = SST_SEC(10);
    c->idle_timeout = SST_SEC(60);
    c->keepalive = 0;
    c->max_ack_delay = SST_MS(10); /* ref. impl. and paper's TCP-like delayed ack */
    /* Path MTU discovery (RFC 8899) up to a 1500-byte path MTU; 0 turns it off. */
    c->max_udp_payload_limit = SST_PMTU_LIMIT4;
    c->max_udp_payload_limit6 = SST_PMTU_LIMIT6;
    c->pmtu_raise_timer = SST_PMTU_RAISE_TIMER;
    c->max_tickets = 1024;
    c->ticket_lifetime = SST_SEC(3600);
}

/* ---- services for channels ------------------------------------------------------------- */

void sst_host_emit(struct sst_host *h, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    h->stats.tx_packets++;
    h->stats.tx_bytes += len;
    h->io.send(h->io.ctx, to, pkt, len);
}

void sst_host_emit_from(struct sst_host *h, const struct sst_addr *to, const struct sst_addr *from,
                        const uint8_t *pkt, size_t len)
{
    if (from == NULL || h->io.send_from == NULL) {
        sst_host_emit(h, to, pkt, len);
        return;
    }
    h->stats.tx_packets++;
    h->stats.tx_bytes += len;
    h->io.send_from(h->io.ctx, to, from, pkt, len);
}

const struct sst_addr *sst_host_rx_local(const struct sst_host *h) { return h->rx_local; }

uint8_t *sst_host_txbuf(struct sst_host *h) { return h->txbuf; }

uint8_t *sst_host_tx_slot(struct sst_host *h, size_t len)
{
    return h->io.tx_slot != NULL ? h->io.tx_slot(h->io.ctx, len) : NULL;
}
const struct sst_host_config *sst_host_config(const struct sst_host *h) { return &h->cfg; }
struct sst_nego_host *sst_host_nego(struct sst_host *h) { return h->nego; }
void sst_host_deadline_dirty(struct sst_host *h) { h->deadline_dirty = true; }

static struct chan_entry *entry_find(struct sst_host *h, const struct sst_addr *peer, uint8_t id)
{
    struct chan_key k;
    memset(&k, 0, sizeof k);
    k.peer = *peer;
    k.local_id = id;
    /* Consecutive packets almost always belong to the same channel: comparing with the last
     * answer (the same bytes HASH_FIND would compare) skips hashing the 29-byte key per packet. */
    struct chan_entry *e = h->last_found;
    if (e != NULL && memcmp(&e->key, &k, sizeof k) == 0)
        return e;
    HASH_FIND(hh, h->table, &k, sizeof k, e);
    if (e != NULL)
        h->last_found = e;
    return e;
}

static struct chan_entry *entry_add(struct sst_host *h, const struct sst_addr *peer, uint8_t id)
{
    struct chan_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->key.peer = *peer;
    e->key.local_id = id;
    HASH_ADD(hh, h->table, key, sizeof e->key, e);
    return e;
}

static void entry_del(struct sst_host *h, struct chan_entry *e)
{
    if (h->last_found == e)
        h->last_found = NULL;
    HASH_DEL(h->table, e);
    free(e);
}

static bool ptr_push(struct sst_chan ***arr, unsigned *n, unsigned *cap, struct sst_chan *ch)
{
    if (*n == *cap) {
        unsigned ncap = *cap ? *cap * 2 : 8;
        struct sst_chan **p = realloc(*arr, ncap * sizeof *p);
        if (!p)
            return false;
        *arr = p;
        *cap = ncap;
    }
    (*arr)[(*n)++] = ch;
    return true;
}

static void chans_remove(struct sst_host *h, struct sst_chan *ch)
{
    for (unsigned i = 0; i < h->nchans; i++) {
        if (h->chans[i] == ch) {
            h->chans[i] = h->chans[--h->nchans];
            return;
        }
    }
}

void sst_host_chan_event(struct sst_host *h, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    if (ev == SST_CHAN_EV_UP) {
        struct chan_entry *e = entry_find(h, sst_chan_peer(ch), sst_chan_local_id(ch));
        if (!e)
            e = entry_add(h, sst_chan_peer(ch), sst_chan_local_id(ch));
        if (e) {
            e->ch = ch;
            e->reserved_until = SST_TIME_NEVER;
        }
        h->stats.handshakes_completed++;
    }
    if (ev == SST_CHAN_EV_DOWN) {
        struct chan_entry *e = entry_find(h, sst_chan_peer(ch), sst_chan_local_id(ch));
        if (e && e->ch == ch)
            entry_del(h, e);
        chans_remove(h, ch);
        if (!ptr_push(&h->dead, &h->ndead, &h->cap_dead, ch))
            abort(); /* cannot track the dead channel: would leak or double free */
        if (!sst_chan_was_established(ch))
            h->stats.handshakes_failed++;
    }
    h->deadline_dirty = true;
    if (h->io.chan_event)
        h->io.chan_event(h->io.ctx, ch, ev, err);
}

static void reap_dead(struct sst_host *h)
{
    for (unsigned i = 0; i < h->ndead; i++)
        sst_chan_free(h->dead[i]);
    h->ndead = 0;
}

/* ---- negotiation callbacks ------------------------------------------------------------- */

static void default_random(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
}

static void host_random(void *ctx, void *buf, size_t len)
{
    struct sst_host *h = ctx;
    h->io.random(h->io.ctx, buf, len);
}

/* A free local channel ID for `peer`, reserved until the handshake completes or times out.
 * IDs start at a random point so they are not predictable across restarts. */
static int host_alloc_chan_id(void *ctx, const struct sst_addr *peer)
{
    struct sst_host *h = ctx;
    uint8_t start;
    h->io.random(h->io.ctx, &start, 1);
    for (unsigned i = 0; i < 255; i++) {
        uint8_t id = (uint8_t)(1 + (start + i) % 255);
        if (entry_find(h, peer, id))
            continue;
        struct chan_entry *e = entry_add(h, peer, id);
        if (!e)
            return SST_ERR_NOMEM;
        e->reserved_until = h->now + RESERVATION_TTL;
        return id;
    }
    return SST_ERR_LIMIT;
}

/* A handshake that reserved an ID failed before using it: free the ID now, not at expiry. */
static void host_release_chan_id(void *ctx, const struct sst_addr *peer, uint8_t id)
{
    struct sst_host *h = ctx;
    struct chan_entry *e = entry_find(h, peer, id);
    if (e && !e->ch)
        entry_del(h, e);
}

static int host_verify_peer(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct sst_host *h = ctx;
    if (!h->io.verify_peer)
        return 0;
    return h->io.verify_peer(h->io.ctx, peer, pk, we_initiated);
}

/* ---- construction ---------------------------------------------------------------------- */

static bool key_is_zero(const uint8_t k[32])
{
    uint8_t z = 0;
    for (int i = 0; i < 32; i++)
        z |= k[i];
    return z == 0;
}

SST_API struct sst_host *sst_host_new(const struct sst_host_config *cfg, const struct sst_host_io *io)
{
    if (!io || !io->send || cfg->max_udp_payload < 1200 || cfg->max_udp_payload > SST_MAX_DATAGRAM)
        return NULL;
    if (cfg->max_udp_payload_limit > SST_MAX_DATAGRAM || cfg->max_udp_payload_limit6 > SST_MAX_DATAGRAM)
        return NULL;
    if (sodium_init() < 0)
        return NULL;
    struct sst_host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cfg = *cfg;
    h->io = *io;
    if (!h->io.random)
        h->io.random = default_random;
    if (key_is_zero(h->cfg.identity.sk))
        sst_identity_generate(&h->cfg.identity, h->io.random, h->io.ctx);
    struct sst_nego_config nc = {
        .identity = h->cfg.identity,
        .security = cfg->security,
        .aes_available = cfg->allow_aes && sst_protect_aes_available(),
        .cookie_threshold = cfg->cookie_threshold,
        .max_half_open = cfg->max_half_open,
        .half_open_timeout = cfg->handshake_timeout,
        .max_tickets = cfg->max_tickets,
        .ticket_lifetime = cfg->ticket_lifetime,
    };
    struct sst_nego_host_ops ops = {
        .ctx = h,
        .random = host_random,
        .alloc_chan_id = host_alloc_chan_id,
        .release_chan_id = host_release_chan_id,
        .verify_peer = host_verify_peer,
    };
    h->nego = sst_nego_host_new(&nc, &ops);
    sodium_memzero(&nc, sizeof nc);
    if (!h->nego) {
        free(h);
        return NULL;
    }
    h->deadline = SST_TIME_NEVER;
    return h;
}

SST_API void sst_host_free(struct sst_host *h)
{
    if (!h)
        return;
    for (unsigned i = 0; i < h->nchans; i++)
        sst_chan_free(h->chans[i]);
    reap_dead(h);
    struct chan_entry *e, *tmp;
    h->last_found = NULL;
    HASH_ITER(hh, h->table, e, tmp) {
        HASH_DEL(h->table, e);
        free(e);
    }
    free(h->chans);
    free(h->dead);
    sst_nego_host_free(h->nego);
    sodium_memzero(&h->cfg.identity, sizeof h->cfg.identity);
    free(h);
}

/* ---- lookups --------------------------------------------------------------------------- */

/* The channel new streams to `peer` should use: an established one if any, else a connecting one. */
SST_API struct sst_chan *sst_host_find(struct sst_host *h, const struct sst_addr *peer)
{
    struct sst_chan *connecting = NULL;
    for (unsigned i = 0; i < h->nchans; i++) {
        struct sst_chan *ch = h->chans[i];
        if (!sst_addr_eq(sst_chan_peer(ch), peer))
            continue;
        if (sst_chan_state(ch) == SST_CHAN_ESTABLISHED)
            return ch;
        if (sst_chan_state(ch) == SST_CHAN_CONNECTING)
            connecting = ch;
    }
    return connecting;
}

static struct sst_chan *find_by_tag(struct sst_host *h, const struct sst_addr *peer, uint64_t tag,
                                    bool initiator)
{
    for (unsigned i = 0; i < h->nchans; i++) {
        struct sst_chan *ch = h->chans[i];
        if (sst_chan_is_initiator(ch) == initiator && sst_chan_nego_tag(ch) == tag &&
            sst_addr_eq(sst_chan_peer(ch), peer))
            return ch;
    }
    return NULL;
}

static struct sst_chan *find_by_remote_id(struct sst_host *h, const struct sst_addr *peer, uint8_t id)
{
    for (unsigned i = 0; i < h->nchans; i++) {
        struct sst_chan *ch = h->chans[i];
        if (sst_chan_state(ch) != SST_CHAN_CONNECTING && sst_chan_remote_id(ch) == id &&
            sst_addr_eq(sst_chan_peer(ch), peer))
            return ch;
    }
    return NULL;
}

SST_API struct sst_chan *sst_host_connect(struct sst_host *h, sst_time_t now, const struct sst_addr *peer)
{
    h->now = now;
    reap_dead(h);
    struct sst_chan *ch = sst_host_find(h, peer);
    if (ch)
        return ch;
    if (h->nchans >= h->cfg.max_channels)
        return NULL;
    ch = sst_chan_new_initiator(h, now, peer);
    if (!ch)
        return NULL;
    if (!ptr_push(&h->chans, &h->nchans, &h->cap_chans, ch)) {
        sst_chan_free(ch);
        return NULL;
    }
    h->stats.handshakes_initiated++;
    h->deadline_dirty = true;
    return ch;
}

/* ---- receive --------------------------------------------------------------------------- */

static bool reset_allowed(struct sst_host *h, sst_time_t now)
{
    if (now - h->reset_window_start >= SST_SEC(1) || h->reset_window_start > now) {
        h->reset_window_start = now;
        h->resets_in_window = 0;
    }
    return h->resets_in_window++ < RESET_BUDGET_PER_SEC;
}

/* A packet for a channel ID we do not know: tell a restarted or confused peer with a stateless
 * RESET.  It is at most 3x what provoked it (the negotiation's amplification bound) and rate
 * limited; RESETs travel on channel 0, so two hosts can never answer each other's in a loop. */
static void maybe_send_reset(struct sst_host *h, sst_time_t now, const struct sst_addr *from,
                             uint8_t chan_id, size_t len)
{
    if (len < SST_CHAN_HDR_LEN + SST_STREAM_HDR_LEN || !reset_allowed(h, now))
        return;
    size_t n = sst_nego_reset_build(h->nego, from, chan_id, h->nego_buf, sizeof h->nego_buf);
    if (n == 0 || n > 3 * len)
        return;
    h->stats.resets_sent++;
    sst_host_emit_from(h, from, h->rx_local, h->nego_buf, n);
}

static void on_channel_packet(struct sst_host *h, sst_time_t now, const struct sst_addr *from,
                              uint8_t *pkt, size_t len)
{
    struct chan_entry *e = entry_find(h, from, pkt[0]);
    if (e && e->ch) {
        sst_chan_on_packet(e->ch, now, pkt, len);
        return;
    }
    h->stats.rx_dropped_unknown++;
    if (!e)  /* a reserved ID belongs to a handshake in progress: never reset it */
        maybe_send_reset(h, now, from, pkt[0], len);
}

static void on_finish(struct sst_host *h, sst_time_t now, const struct sst_addr *from, uint8_t *pkt,
                      size_t len, uint64_t tag)
{
    struct sst_chan *existing = find_by_tag(h, from, tag, false);
    if (existing) {
        /* Our first packets to the initiator were lost: answer so it stops resending FINISH. */
        sst_chan_on_dup_finish(existing, now);
        return;
    }
    struct sst_nego_result res;
    size_t out_len = 0, consumed = 0;
    h->stats.nego_rx_bytes_unverified += len;
    int r = sst_nego_responder_recv(h->nego, now, from, pkt, len, h->nego_buf, &out_len, &res, &consumed);
    if (out_len) {
        h->stats.nego_tx_bytes_unverified += out_len;
        sst_host_emit_from(h, from, h->rx_local, h->nego_buf, out_len);
    }
    if (r != 1) {
        if (r < 0)
            h->stats.rx_dropped_malformed++;
        return;
    }
    struct sst_chan *ch = NULL;
    if (h->nchans < h->cfg.max_channels)
        ch = sst_chan_new_responder(h, now, from, h->rx_local, &res);
    sodium_memzero(&res, sizeof res);
    if (!ch || !ptr_push(&h->chans, &h->nchans, &h->cap_chans, ch)) {
        sst_chan_free(ch);
        return;
    }
    sst_host_chan_event(h, ch, SST_CHAN_EV_UP, 0);
    /* A channel packet coalesced after the FINISH (paper §4.4: piggybacked first data). */
    if (consumed > 0 && consumed < len && pkt[consumed] != SST_CHAN_ID_NEGOTIATION &&
        sst_chan_state(ch) == SST_CHAN_ESTABLISHED)
        on_channel_packet(h, now, from, pkt + consumed, len - consumed);
}

static void on_negotiation(struct sst_host *h, sst_time_t now, const struct sst_addr *from,
                           uint8_t *pkt, size_t len)
{
    uint64_t tag = 0;
    int type = sst_nego_peek(pkt, len, &tag);
    switch (type) {
    case SST_NEGO_HELLO: {
        size_t out_len = 0, consumed = 0;
        struct sst_nego_result res;
        h->stats.nego_rx_bytes_unverified += len;
        int r = sst_nego_responder_recv(h->nego, now, from, pkt, len, h->nego_buf, &out_len, &res,
                                        &consumed);
        if (r < 0)
            h->stats.rx_dropped_malformed++;
        if (out_len) {
            h->stats.nego_tx_bytes_unverified += out_len;
            if (sst_nego_peek(h->nego_buf, out_len, NULL) == SST_NEGO_COOKIE)
                h->stats.cookies_sent++;
            sst_host_emit_from(h, from, h->rx_local, h->nego_buf, out_len);
        }
        break;
    }
    case SST_NEGO_FINISH:
        on_finish(h, now, from, pkt, len, tag);
        break;
    case SST_NEGO_COOKIE:
    case SST_NEGO_RESPONSE: {
        struct sst_chan *ch = find_by_tag(h, from, tag, true);
        if (ch)
            sst_chan_on_nego(ch, now, pkt, len);
        else
            h->stats.rx_dropped_unknown++;
        break;
    }
    case SST_NEGO_RESET: {
        uint8_t id, token[SST_RESET_TOKEN_LEN];
        if (sst_nego_reset_parse(pkt, len, &id, token)) {
            h->stats.rx_dropped_malformed++;
            break;
        }
        struct sst_chan *ch = find_by_remote_id(h, from, id);
        if (ch) {
            h->stats.resets_received++;
            sst_chan_on_reset(ch, now, token);
        }
        break;
    }
    default:
        h->stats.rx_dropped_malformed++;
        break;
    }
}

SST_API void sst_host_recv(struct sst_host *h, sst_time_t now, const struct sst_addr *from, uint8_t *pkt,
                           size_t len)
{
    sst_host_recv_to(h, now, from, NULL, pkt, len);
}

SST_API void sst_host_recv_to(struct sst_host *h, sst_time_t now, const struct sst_addr *from,
                              const struct sst_addr *local, uint8_t *pkt, size_t len)
{
    h->now = now;
    reap_dead(h);
    h->stats.rx_packets++;
    h->stats.rx_bytes += len;
    if (len < SST_CHAN_HDR_LEN || len > SST_MAX_DATAGRAM) {
        h->stats.rx_dropped_malformed++;
        return;
    }
    h->rx_local = local;
    if (pkt[0] == SST_CHAN_ID_NEGOTIATION)
        on_negotiation(h, now, from, pkt, len);
    else
        on_channel_packet(h, now, from, pkt, len);
    h->rx_local = NULL;
    reap_dead(h);
}

SST_API void sst_host_unreachable(struct sst_host *h, sst_time_t now, const struct sst_addr *peer, int err)
{
    h->now = now;
    reap_dead(h);
    /* Collect first: aborting removes the channel from h->chans. */
    struct sst_chan *victims[16];
    unsigned n = 0;
    for (unsigned i = 0; i < h->nchans && n < SST_ARRAY_LEN(victims); i++)
        if (sst_chan_state(h->chans[i]) == SST_CHAN_CONNECTING && sst_addr_eq(sst_chan_peer(h->chans[i]), peer))
            victims[n++] = h->chans[i];
    for (unsigned i = 0; i < n; i++)
        sst_chan_abort_connect(victims[i], err);
    reap_dead(h);
}

/* ---- timers ---------------------------------------------------------------------------- */

static sst_time_t reservations_expire(struct sst_host *h, sst_time_t now)
{
    sst_time_t next = SST_TIME_NEVER;
    struct chan_entry *e, *tmp;
    HASH_ITER(hh, h->table, e, tmp) {
        if (e->ch)
            continue;
        if (e->reserved_until <= now)
            entry_del(h, e);
        else if (e->reserved_until < next)
            next = e->reserved_until;
    }
    return next;
}

SST_API sst_time_t sst_host_deadline(struct sst_host *h)
{
    if (!h->deadline_dirty)
        return h->deadline;
    sst_time_t t = sst_nego_host_expire(h->nego, h->now);
    sst_time_t r = reservations_expire(h, h->now);
    if (r < t)
        t = r;
    for (unsigned i = 0; i < h->nchans; i++) {
        sst_time_t c = sst_chan_deadline(h->chans[i]);
        if (c < t)
            t = c;
    }
    h->deadline = t;
    h->deadline_dirty = false;
    return t;
}

SST_API void sst_host_timeout(struct sst_host *h, sst_time_t now)
{
    h->now = now;
    reap_dead(h);
    /* Iterate over a snapshot: a timeout may close a channel (removing it from chans). */
    unsigned n = h->nchans;
    struct sst_chan *due[64];
    while (n > 0) {
        unsigned k = 0;
        for (unsigned i = 0; i < h->nchans && k < SST_ARRAY_LEN(due); i++)
            if (sst_chan_deadline(h->chans[i]) <= now)
                due[k++] = h->chans[i];
        for (unsigned i = 0; i < k; i++)
            if (sst_chan_state(due[i]) != SST_CHAN_CLOSED)
                sst_chan_on_timeout(due[i], now);
        if (k < SST_ARRAY_LEN(due))
            break;
        n -= k;
    }
    (void)sst_nego_host_expire(h->nego, now);
    (void)reservations_expire(h, now);
    h->deadline_dirty = true;
    reap_dead(h);
}

SST_API void sst_host_get_stats(const struct sst_host *h, struct sst_host_stats *out)
{
    *out = h->stats;
    out->channels = h->nchans;
    struct sst_nego_stats ns;
    sst_nego_host_stats(h->nego, &ns);
    out->handshakes_resumed = ns.resumed;
}
