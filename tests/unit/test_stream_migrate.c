/* Simulator tests of stream migration (paper §4.3.7): streams surviving a link failure, the
 * peer moving to a new address, a restarted peer, idle streams detaching so that 100k open
 * streams use few LSIDs, and memory per idle stream and per idle channel. */
#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "negotiate.h"
#include "sim.h"
#include "simctx.h"
#include "sst.h"
#include "streamtest.h"

/* ---- glue: one sst_ctx per simulator node (tests/sim/simctx.h) --------------------------- */

static void node_init(struct simctx_node *n, struct sim *s, uint8_t id, const struct sst_ctx_config *cfg)
{
    struct sst_addr a = sim_addr4(id, 4000);
    simctx_node_init(n, s, &a, "stream-node", id, cfg);
}

/* ---- endpoints: pattern writers and verifying readers (tests/sim/streamtest.h) ---------- */

/* A server: every accepted stream gets an ep that verifies the request and answers it. */
struct server {
    struct sst_listener *l;
    struct ep eps[512];
    unsigned n;
    bool stall, listen_sub;
    void (*on_event)(struct ep *e, unsigned ev);
    void *user;
};


static struct sim *new_sim(uint64_t seed)
{
    struct sim_config c;
    sim_config_default(&c);
    c.seed = seed;
    c.pool_packets = 16384;
    struct sim *s = sim_new(&c);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* Moves node n to a new address, keeping its engine (a mobile host, paper §4.3.7). */
static void node_rebind(struct simctx_node *n, uint8_t id)
{
    struct sst_addr a = sim_addr4(id, 4000);
    simctx_node_rebind(n, &a);
}

static bool ep_not_errored(void *arg)
{
    struct ep *e = arg;
    return !e->errored;
}

/* ---- tests ------------------------------------------------------------------------------- */

/* A server that starts sending its own data as soon as it accepts, so both directions are
 * busy at the moment the link fails. */
static uint64_t srv_payload;

static void bidi_accept(struct sst_listener *l, void *arg)
{
    struct server *sv = arg;
    while (sv->n < SST_ARRAY_LEN(sv->eps)) {
        struct ep *e = &sv->eps[sv->n];
        memset(e, 0, sizeof *e);
        e->s = sst_accept(l, ep_cb, e);
        if (e->s == NULL)
            return;
        ep_start_tx(e, 1000 + sv->n, srv_payload);
        sv->n++;
    }
}

struct pair_done {
    struct ep *c;
    unsigned n;
    struct server *sv;
};

static bool bidi_not_done(void *arg)
{
    struct pair_done *d = arg;
    if (d->sv->n < d->n)
        return true;
    for (unsigned i = 0; i < d->n; i++) {
        struct ep *c = &d->c[i], *s = &d->sv->eps[i];
        if (c->errored || s->errored)
            return false;
        if (!(c->rx_eof && c->tx_done == c->tx_len && s->rx_eof && s->tx_done == s->tx_len))
            return true;
    }
    return false;
}

static void set_cut(struct sim_link *ab, struct sim_link *ba, const struct sim_link_params *lp, bool cut)
{
    struct sim_link_params p = *lp;
    if (cut)
        p.loss = 1.0;
    sim_link_set_params(ab, &p);
    sim_link_set_params(ba, &p);
}

static void check_bidi(struct pair_done *d, uint64_t cli_payload)
{
    for (unsigned i = 0; i < d->n; i++) {
        struct ep *c = &d->c[i], *s = &d->sv->eps[i];
        ck_assert_msg(!c->errored && !s->errored, "stream %u: client err %d, server err %d", i, c->err, s->err);
        ck_assert(!c->bad && !s->bad);
        ck_assert_uint_eq(s->rx_done, cli_payload);
        ck_assert_uint_eq(c->rx_done, srv_payload);
        ck_assert(c->rx_eof && s->rx_eof);
    }
}

START_TEST(test_migrate_link_failure_mid_transfer)
{
    /* Three streams move data both ways; the link fails long enough for both channels to go
     * DOWN (SST_ERR_TIMEOUT), then heals: the client re-establishes a channel, every stream
     * re-attaches by USID and finishes with every byte verified, none lost or duplicated.
     * _i = 1: the same over a link with 2% loss, 2% reordering and 1% duplication. */
    struct sim *s = new_sim(31 + 100 * (uint64_t)_i);
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000 };
    if (_i == 1) {
        lp.loss = 0.02;
        lp.reorder = 0.02;
        lp.reorder_delay = SST_MS(3);
        lp.duplicate = 0.01;
    }
    struct simctx_node a, b;
    node_init(&a, s, 1, NULL);
    node_init(&b, s, 2, NULL);
    struct sim_link *ab, *ba;
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, &ab, &ba), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    srv_payload = 1500000;
    sv.l = sst_listen(b.c, "bidi", bidi_accept, &sv);
    /* Streams 0-2 start at once; stream 3 is opened while the link is already cut, so its
     * Init is never acknowledged on the old channel and it re-attaches with its parent's USID
     * (Attach with I), the server creating it there. */
    enum { N = 4 };
    static struct ep c[N];
    memset(c, 0, sizeof c);
    simctx_node_enter(&a);
    for (unsigned i = 0; i < N - 1; i++) {
        c[i].s = sst_connect(a.c, &b.addr, "bidi", ep_cb, &c[i]);
        ck_assert_ptr_nonnull(c[i].s);
        ep_start_tx(&c[i], 10 + i, 2000000);
    }
    simctx_node_leave(&a);
    sim_run_until(s, SST_MS(500));
    /* Mid-transfer in both directions. */
    ck_assert_uint_eq(sv.n, N - 1);
    ck_assert_uint_gt(sv.eps[0].rx_done, 0);
    ck_assert_uint_lt(sv.eps[0].rx_done, 2000000);
    ck_assert_uint_gt(c[0].rx_done, 0);
    ck_assert_uint_lt(c[0].rx_done, srv_payload);
    set_cut(ab, ba, &lp, true);
    sim_run_until(s, sim_now(s) + SST_SEC(1));
    simctx_node_enter(&a);
    c[N - 1].s = sst_connect(a.c, &b.addr, "bidi", ep_cb, &c[N - 1]);
    ck_assert_ptr_nonnull(c[N - 1].s);
    ep_start_tx(&c[N - 1], 10 + N - 1, 2000000);
    simctx_node_leave(&a);
    sim_run_until(s, sim_now(s) + SST_SEC(24));
    struct sst_ctx_stats sa, sb;
    sst_ctx_get_stats(a.c, &sa);
    sst_ctx_get_stats(b.c, &sb);
    ck_assert_uint_eq(sst_host_find(sst_ctx_host(a.c), &b.addr) == NULL ||
                      sa.lsids_in_use == 0, 1);   /* the old channel is gone */
    for (unsigned i = 0; i < N; i++)
        ck_assert(!c[i].errored && !sv.eps[i].errored);   /* waiting, not failed */
    set_cut(ab, ba, &lp, false);
    sst_time_t healed = sim_now(s);
    struct pair_done d = { c, N, &sv };
    ck_assert_int_eq(sim_run_while(s, bidi_not_done, &d, healed + SST_SEC(40)), 0);
    check_bidi(&d, 2000000);
    sst_ctx_get_stats(a.c, &sa);
    sst_ctx_get_stats(b.c, &sb);
    printf("link failure (%s): finished %.2f s after healing; migrations a=%llu b=%llu, attaches a=%llu b=%llu\n",
           _i == 0 ? "clean" : "lossy", (double)(sim_now(s) - healed) / 1e9, (unsigned long long)sa.migrations,
           (unsigned long long)sb.migrations, (unsigned long long)sa.attaches_sent,
           (unsigned long long)sb.attaches_sent);
    ck_assert_uint_ge(sa.migrations, 1);
    ck_assert_uint_ge(sb.migrations, 1);
    ck_assert_uint_ge(sa.attaches_sent, N);
    ck_assert_uint_ge(sb.attaches_sent, N);
    ck_assert_uint_eq(sa.resets_received + sb.resets_received, 0);
    /* Reconnection backs off to at most MIG_BACKOFF_MAX (4 s) plus a handshake; on the clean
     * link the rest of the transfer takes well under a second more. */
    if (_i == 0)
        ck_assert_uint_lt(sim_now(s) - healed, SST_SEC(8));
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
}
END_TEST

START_TEST(test_migrate_peer_address_change)
{
    /* The client moves from 10.0.0.1 to 10.0.0.3 mid-transfer, keeping its engine.  Its old
     * channel times out; it reconnects from the new address and attaches its streams; the
     * server, whose old channel is still alive, moves each stream by USID to the new channel. */
    struct sim *s = new_sim(32);
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000 };
    struct simctx_node a, b;
    node_init(&a, s, 1, NULL);
    node_init(&b, s, 2, NULL);
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    struct sst_addr newaddr = sim_addr4(3, 4000);
    ck_assert_int_eq(sim_path(s, &newaddr, &b.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    srv_payload = 1000000;
    sv.l = sst_listen(b.c, "bidi", bidi_accept, &sv);
    enum { N = 2 };
    static struct ep c[N];
    memset(c, 0, sizeof c);
    simctx_node_enter(&a);
    for (unsigned i = 0; i < N; i++) {
        c[i].s = sst_connect(a.c, &b.addr, "bidi", ep_cb, &c[i]);
        ep_start_tx(&c[i], 20 + i, 1500000);
    }
    simctx_node_leave(&a);
    sim_run_until(s, SST_MS(400));
    ck_assert_uint_eq(sv.n, N);
    ck_assert_uint_lt(sv.eps[0].rx_done, 1500000);
    ck_assert_uint_lt(c[0].rx_done, srv_payload);
    node_rebind(&a, 3);
    sst_time_t moved = sim_now(s);
    struct pair_done d = { c, N, &sv };
    ck_assert_int_eq(sim_run_while(s, bidi_not_done, &d, moved + SST_SEC(60)), 0);
    check_bidi(&d, 1500000);
    for (unsigned i = 0; i < N; i++)
        ck_assert(sst_addr_eq(sst_stream_peer(sv.eps[i].s), &newaddr));
    struct sst_ctx_stats sb;
    sst_ctx_get_stats(b.c, &sb);
    printf("address change: finished %.2f s after the move; server migrations %llu\n",
           (double)(sim_now(s) - moved) / 1e9, (unsigned long long)sb.migrations);
    /* One migration per stream moved by Attach, or one for all if the server's old channel
     * timed out first and its streams waited in limbo. */
    ck_assert_uint_ge(sb.migrations, 1);
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
}
END_TEST

START_TEST(test_migrate_peer_restart_resets)
{
    /* The server restarts (same address and host key, no stream state) while the link is cut:
     * when the client re-attaches, the new server knows no such USID and answers with a
     * Reset, so the stream fails with SST_ERR_RESET instead of hanging. */
    struct sim *s = new_sim(33);
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000 };
    struct simctx_node a, b;
    node_init(&a, s, 1, NULL);
    node_init(&b, s, 2, NULL);
    struct sim_link *ab, *ba;
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, &ab, &ba), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    srv_payload = 1000000;
    sv.l = sst_listen(b.c, "bidi", bidi_accept, &sv);
    struct ep c = { 0 };
    simctx_node_enter(&a);
    c.s = sst_connect(a.c, &b.addr, "bidi", ep_cb, &c);
    ep_start_tx(&c, 40, 3000000);
    simctx_node_leave(&a);
    sim_run_until(s, SST_MS(300));
    ck_assert_uint_eq(sv.n, 1);
    set_cut(ab, ba, &lp, true);
    sim_run_until(s, sim_now(s) + SST_SEC(20));
    ck_assert(!c.errored);
    simctx_node_free(&b);
    node_init(&b, s, 2, NULL);
    memset(&sv, 0, sizeof sv);
    sv.l = sst_listen(b.c, "bidi", bidi_accept, &sv);
    set_cut(ab, ba, &lp, false);
    sst_time_t healed = sim_now(s);
    ck_assert_int_eq(sim_run_while(s, ep_not_errored, &c, healed + SST_SEC(20)), 0);
    ck_assert_int_eq(c.err, SST_ERR_RESET);
    ck_assert_uint_eq(sv.n, 0);   /* nothing was mistaken for a new stream */
    printf("peer restart: reset %.2f s after healing\n", (double)(sim_now(s) - healed) / 1e9);
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
}
END_TEST

static bool ep_pending(void *arg)
{
    struct ep *e = arg;
    return !e->errored && !(e->rx_eof && e->tx_done == e->tx_len);
}

START_TEST(test_migrate_restarted_peer_stale_channel)
{
    /* The server restarts (same address and key) while the client's channel to it is up and a
     * transfer runs; right after, the client opens a new stream, which goes out on that stale
     * channel.  The new server resets the channel; the streams migrate to a fresh one: the old
     * stream, which the new server never had, fails with SST_ERR_RESET, and the new one -- its
     * Init was never confirmed -- is created there by its Attach and completes both ways, as a
     * new TCP connection to a restarted server does.  (Before, the channel's reset failed
     * every stream on it, the new one included.) */
    struct sim *s = new_sim(35);
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000 };
    struct simctx_node a, b;
    node_init(&a, s, 1, NULL);
    node_init(&b, s, 2, NULL);
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    srv_payload = 200000;
    sv.l = sst_listen(b.c, "bidi", bidi_accept, &sv);
    struct ep c1 = { 0 }, c2 = { 0 };
    simctx_node_enter(&a);
    c1.s = sst_connect(a.c, &b.addr, "bidi", ep_cb, &c1);
    ep_start_tx(&c1, 40, 3000000);
    simctx_node_leave(&a);
    sim_run_until(s, SST_MS(300));
    ck_assert_uint_eq(sv.n, 1);
    ck_assert(!c1.errored);
    simctx_node_free(&b);
    node_init(&b, s, 2, NULL);
    memset(&sv, 0, sizeof sv);
    sv.l = sst_listen(b.c, "bidi", bidi_accept, &sv);
    simctx_node_enter(&a);
    c2.s = sst_connect(a.c, &b.addr, "bidi", ep_cb, &c2);
    ep_start_tx(&c2, 41, 100000);
    simctx_node_leave(&a);
    ck_assert_int_eq(sim_run_while(s, ep_pending, &c2, sim_now(s) + SST_SEC(20)), 0);
    ck_assert_msg(!c2.errored, "new stream failed: %d", c2.err);
    ck_assert(!c2.bad);
    ck_assert_uint_eq(sv.n, 1);                 /* the new stream, nothing else */
    ck_assert_uint_eq(sv.eps[0].rx_done, 100000);
    ck_assert_uint_eq(c2.rx_done, srv_payload);
    ck_assert_int_eq(sim_run_while(s, ep_not_errored, &c1, sim_now(s) + SST_SEC(20)), 0);
    ck_assert_int_eq(c1.err, SST_ERR_RESET);
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
}
END_TEST

START_TEST(test_migrate_same_key_other_port)
{
    /* Two servers share one host key at two UDP ports of one host -- two processes of one user
     * with the default key directory, each on its own SST port (docs/shim.md §6c "Limits") --
     * and the client has a live channel to each.  The first server restarts; the client's next
     * stream to it goes out on the stale channel, whose reset puts it in limbo.  It must follow
     * its address to the restarted server, never move to the other server's channel because its
     * key is the same: there it would be created by its Attach and accepted by the wrong
     * program (before: the other server got it; were that one gone too, the stream waited
     * until its dead channel timed out -- 18 s through sstd after nginx and redis restarted). */
    struct sim *s = new_sim(36);
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000 };
    struct simctx_node a, b1, b2;
    node_init(&a, s, 1, NULL);
    node_init(&b1, s, 2, NULL);
    struct sst_addr b2addr = sim_addr4(2, 4001);
    simctx_node_init(&b2, s, &b2addr, "stream-node", 2, NULL);   /* b1's key */
    ck_assert_int_eq(sim_path(s, &a.addr, &b1.addr, &lp, NULL, NULL, NULL), 0);
    ck_assert_int_eq(sim_path(s, &a.addr, &b2.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv1, sv2;
    memset(&sv1, 0, sizeof sv1);
    memset(&sv2, 0, sizeof sv2);
    srv_payload = 100000;
    sv1.l = sst_listen(b1.c, "bidi", bidi_accept, &sv1);
    sv2.l = sst_listen(b2.c, "bidi", bidi_accept, &sv2);
    struct ep c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
    simctx_node_enter(&a);
    c1.s = sst_connect(a.c, &b1.addr, "bidi", ep_cb, &c1);
    ep_start_tx(&c1, 50, 100000);
    c2.s = sst_connect(a.c, &b2.addr, "bidi", ep_cb, &c2);
    ep_start_tx(&c2, 51, 100000);
    simctx_node_leave(&a);
    ck_assert_int_eq(sim_run_while(s, ep_pending, &c1, sim_now(s) + SST_SEC(10)), 0);
    ck_assert_int_eq(sim_run_while(s, ep_pending, &c2, sim_now(s) + SST_SEC(10)), 0);
    ck_assert(!c1.errored && !c2.errored);
    ck_assert_uint_eq(sv1.n, 1);
    ck_assert_uint_eq(sv2.n, 1);
    /* b1 restarts (same address and key); the client's channels to both stay up. */
    simctx_node_free(&b1);
    node_init(&b1, s, 2, NULL);
    memset(&sv1, 0, sizeof sv1);
    sv1.l = sst_listen(b1.c, "bidi", bidi_accept, &sv1);
    simctx_node_enter(&a);
    c3.s = sst_connect(a.c, &b1.addr, "bidi", ep_cb, &c3);
    ep_start_tx(&c3, 52, 100000);
    simctx_node_leave(&a);
    sst_time_t t0 = sim_now(s);
    ck_assert_int_eq(sim_run_while(s, ep_pending, &c3, t0 + SST_SEC(20)), 0);
    ck_assert_msg(!c3.errored, "stream to the restarted server failed: %d", c3.err);
    ck_assert(!c3.bad);
    ck_assert_uint_eq(sv2.n, 1);   /* the other server got nothing */
    ck_assert_uint_eq(sv1.n, 1);   /* the restarted one got the stream */
    ck_assert_uint_eq(sv1.eps[0].rx_done, 100000);
    ck_assert_uint_eq(c3.rx_done, srv_payload);
    ck_assert_uint_lt(sim_now(s) - t0, SST_SEC(1));
    printf("same key, other port: the stream reached the restarted server in %.3f s\n",
           (double)(sim_now(s) - t0) / 1e9);
    simctx_node_free(&a);
    simctx_node_free(&b1);
    simctx_node_free(&b2);
    sim_free(s);
}
END_TEST

START_TEST(test_migrate_gives_up_after_timeout)
{
    /* The link never heals: after migrate_timeout the streams fail with SST_ERR_TIMEOUT; with
     * migrate_timeout 0 they fail as soon as the channel goes down. */
    for (int mode = 0; mode < 2; mode++) {
        struct sim *s = new_sim(34);
        struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000 };
        struct sst_ctx_config cfg;
        sst_ctx_config_default(&cfg);
        cfg.migrate_timeout = mode == 0 ? SST_SEC(20) : 0;
        struct simctx_node a, b;
        node_init(&a, s, 1, &cfg);
        node_init(&b, s, 2, &cfg);
        struct sim_link *ab, *ba;
        ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, &ab, &ba), 0);
        static struct server sv;
        memset(&sv, 0, sizeof sv);
        srv_payload = 100000;
        sv.l = sst_listen(b.c, "bidi", bidi_accept, &sv);
        struct ep c = { 0 };
        simctx_node_enter(&a);
        c.s = sst_connect(a.c, &b.addr, "bidi", ep_cb, &c);
        ep_start_tx(&c, 50, 3000000);
        simctx_node_leave(&a);
        sim_run_until(s, SST_MS(300));
        set_cut(ab, ba, &lp, true);
        sst_time_t cut = sim_now(s);
        ck_assert_int_eq(sim_run_while(s, ep_not_errored, &c, cut + SST_SEC(120)), 0);
        ck_assert_int_eq(c.err, SST_ERR_TIMEOUT);
        sst_time_t took = sim_now(s) - cut;
        printf("no healing, migrate_timeout %s: failed after %.1f s\n", mode == 0 ? "20 s" : "0",
               (double)took / 1e9);
        /* DOWN comes after ~15 s without progress; limbo adds migrate_timeout. */
        if (mode == 0)
            ck_assert_uint_ge(took, SST_SEC(30));
        else
            ck_assert_uint_lt(took, SST_SEC(25));
        simctx_node_free(&a);
        simctx_node_free(&b);
        sim_free(s);
    }
}
END_TEST

/* ---- many idle streams: detach keeps LSID use bounded -------------------------------------- */

/* Each stream: the client's handle, bytes echoed back so far, and the server's handle. */
struct idle_st {
    struct sst_stream *c, *s;
    unsigned echoed;
    bool connected;
};

static struct idle_st *idle_tab;
static unsigned idle_accepted, idle_connected, idle_errors, idle_bad;

static void idle_cli_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct idle_st *st = arg;
    if (ev & SST_EV_ERROR) {
        idle_errors++;
        return;
    }
    if ((ev & SST_EV_CONNECTED) && !st->connected) {
        st->connected = true;
        idle_connected++;
    }
    uint8_t buf[64];
    sst_ssize_t n;
    while ((n = sst_stream_read(s, buf, sizeof buf)) > 0) {
        /* The echo of "ping" followed by this stream's index byte. */
        for (sst_ssize_t i = 0; i < n; i++, st->echoed++) {
            uint8_t want = st->echoed < 4 ? (uint8_t)"ping"[st->echoed] : (uint8_t)(st - idle_tab);
            if (st->echoed >= 5 || buf[i] != want)
                idle_bad++;
        }
    }
}

static void idle_srv_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    (void)arg;
    if (ev & SST_EV_ERROR) {
        idle_errors++;
        return;
    }
    uint8_t buf[64];
    sst_ssize_t n;
    while ((n = sst_stream_read(s, buf, sizeof buf)) > 0)
        ck_assert_int_eq(sst_stream_write(s, buf, (size_t)n), n);
    if (n == 0)
        sst_stream_close(s);   /* the client closed: so do we */
}

static void idle_accept(struct sst_listener *l, void *arg)
{
    (void)arg;
    while (sst_accept(l, idle_srv_cb, NULL) != NULL)
        idle_accepted++;
}

static size_t heap_used(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

START_TEST(test_migrate_100k_idle_streams_detach)
{
    /* 100k streams are opened in batches and left open and idle; idle ones detach on both
     * sides (detach_idle 200 ms), so LSIDs in use stay bounded while all streams stay open.
     * Then 200 of the old streams are used again (re-attached both ways): each echoes its own
     * bytes.  Heap per idle stream is measured with mallinfo2 and printed. */
    enum { TOTAL = 100000, BATCH = 2500, USE = 200 };
    struct sim *s = new_sim(35);
    struct sim_link_params lp = { .rate_bps = 1000000000, .delay = SST_US(200), .queue_bytes = 4000000 };
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    cfg.detach_idle = SST_MS(200);
    cfg.max_pending = BATCH;
    cfg.host.idle_timeout = 0;        /* the channel itself stays up while everything idles */
    struct simctx_node a, b;
    node_init(&a, s, 1, &cfg);
    node_init(&b, s, 2, &cfg);
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    ck_assert_ptr_nonnull(sst_listen(b.c, "idle", idle_accept, NULL));
    idle_tab = calloc(TOTAL, sizeof *idle_tab);
    ck_assert_ptr_nonnull(idle_tab);
    idle_accepted = idle_connected = idle_errors = idle_bad = 0;
    /* Warm up the channel so its own state is not counted per stream. */
    simctx_node_enter(&a);
    struct sst_stream *warm = sst_connect(a.c, &b.addr, "idle", idle_cli_cb, &idle_tab[0]);
    simctx_node_leave(&a);
    sim_run_until(s, SST_SEC(1));
    simctx_node_enter(&a);
    sst_stream_close(warm);
    simctx_node_leave(&a);
    sim_run_until(s, SST_SEC(2));
    idle_accepted = idle_connected = 0;
    memset(&idle_tab[0], 0, sizeof idle_tab[0]);
    size_t before = heap_used();
    uint64_t max_lsids = 0;
    for (unsigned k = 0; k < TOTAL; k += BATCH) {
        simctx_node_enter(&a);
        for (unsigned i = k; i < k + BATCH; i++) {
            idle_tab[i].c = sst_connect(a.c, &b.addr, "idle", idle_cli_cb, &idle_tab[i]);
            ck_assert_ptr_nonnull(idle_tab[i].c);
        }
        simctx_node_leave(&a);
        /* Sample while the batch is busy and again once it idled. */
        for (int step = 0; step < 2; step++) {
            sim_run_until(s, sim_now(s) + (step == 0 ? SST_MS(100) : SST_MS(400)));
            struct sst_ctx_stats sa, sb;
            sst_ctx_get_stats(a.c, &sa);
            sst_ctx_get_stats(b.c, &sb);
            max_lsids = SST_MAX(max_lsids, SST_MAX(sa.lsids_in_use, sb.lsids_in_use));
        }
    }
    sim_run_until(s, sim_now(s) + SST_SEC(1));
    ck_assert_uint_eq(idle_errors, 0);
    ck_assert_uint_eq(idle_connected, TOTAL);
    ck_assert_uint_eq(idle_accepted, TOTAL);
    struct sst_ctx_stats sa, sb;
    sst_ctx_get_stats(a.c, &sa);
    sst_ctx_get_stats(b.c, &sb);
    ck_assert_uint_eq(sa.streams_live, TOTAL);
    ck_assert_uint_eq(sb.streams_live, TOTAL);
    size_t after = heap_used();
    double per_stream = ((double)after - (double)before) / (2.0 * TOTAL);
    printf("100k idle streams: at most %llu LSIDs in use on one side (now %llu/%llu), detaches %llu/%llu, "
           "heap %.0f B per idle stream per end (target <= 512: %s)\n",
           (unsigned long long)max_lsids, (unsigned long long)sa.lsids_in_use,
           (unsigned long long)sb.lsids_in_use, (unsigned long long)sa.detaches_sent,
           (unsigned long long)sb.detaches_sent, per_stream, per_stream <= 512 ? "met" : "NOT met");
    /* Every idle stream detached: only the batch being opened holds LSIDs. */
    ck_assert_uint_gt(max_lsids, 0);
    ck_assert_uint_le(max_lsids, 2 * BATCH);
    ck_assert_uint_eq(sa.lsids_in_use, 0);
    ck_assert_uint_eq(sb.lsids_in_use, 0);
    ck_assert_uint_ge(sa.detaches_sent, TOTAL);
    ck_assert_uint_ge(sb.detaches_sent, TOTAL);
    /* Old streams come back to life: re-attached on both sides, bytes echoed intact. */
    struct sim_rng rng;
    sim_rng_init(&rng, 35, "pick", 0);
    unsigned picked[USE];
    simctx_node_enter(&a);
    for (unsigned i = 0; i < USE; i++) {
        picked[i] = (unsigned)sim_rng_below(&rng, TOTAL);
        struct idle_st *st = &idle_tab[picked[i]];
        if (st->echoed > 0 || st->s != NULL)
            continue;   /* picked twice */
        st->s = st->c;  /* mark */
        uint8_t msg[5] = { 'p', 'i', 'n', 'g', (uint8_t)picked[i] };
        ck_assert_int_eq(sst_stream_write(st->c, msg, sizeof msg), 5);
    }
    simctx_node_leave(&a);
    sim_run_until(s, sim_now(s) + SST_SEC(2));
    ck_assert_uint_eq(idle_errors, 0);
    ck_assert_uint_eq(idle_bad, 0);
    for (unsigned i = 0; i < USE; i++)
        ck_assert_uint_eq(idle_tab[picked[i]].echoed, 5);
    sst_ctx_get_stats(a.c, &sa);
    ck_assert_uint_ge(sa.attaches_sent, USE / 2);
    simctx_node_free(&a);
    simctx_node_free(&b);
    free(idle_tab);
    sim_free(s);
}
END_TEST

START_TEST(test_migrate_idle_channel_memory)
{
    /* Heap per idle channel: 64 clients each open a channel to one server, exchange one
     * stream and go idle.  (Both ends' channel state is counted, so the per-end figure is half
     * the per-channel delta; host, channel and stream-layer state together.) */
    enum { K = 64 };
    struct sim *s = new_sim(36);
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    cfg.host.idle_timeout = 0;
    cfg.detach_idle = SST_MS(200);   /* idle channels give back their send-record pools */
    struct sim_link_params lp = { .rate_bps = 1000000000, .delay = SST_US(200) };
    static struct simctx_node cl[K];
    struct simctx_node b;
    node_init(&b, s, 200, &cfg);
    for (unsigned i = 0; i < K; i++) {
        node_init(&cl[i], s, (uint8_t)(10 + i), &cfg);
        ck_assert_int_eq(sim_path(s, &cl[i].addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    }
    ck_assert_ptr_nonnull(sst_listen(b.c, "idle", idle_accept, NULL));
    idle_tab = calloc(K, sizeof *idle_tab);
    idle_accepted = idle_connected = idle_errors = idle_bad = 0;
    sim_run_until(s, SST_MS(10));
    size_t before = heap_used();
    for (unsigned i = 0; i < K; i++) {
        simctx_node_enter(&cl[i]);
        idle_tab[i].c = sst_connect(cl[i].c, &b.addr, "idle", idle_cli_cb, &idle_tab[i]);
        simctx_node_leave(&cl[i]);
    }
    sim_run_until(s, SST_SEC(1));
    ck_assert_uint_eq(idle_connected, K);
    for (unsigned i = 0; i < K; i++) {
        simctx_node_enter(&cl[i]);
        sst_stream_close(idle_tab[i].c);
        simctx_node_leave(&cl[i]);
    }
    sim_run_until(s, SST_SEC(3));
    struct sst_ctx_stats sb;
    sst_ctx_get_stats(b.c, &sb);
    ck_assert_uint_eq(sb.streams_live, 0);   /* both ends closed: only the channels remain */
    struct sst_host_stats hs;
    sst_host_get_stats(sst_ctx_host(b.c), &hs);
    ck_assert_uint_eq(hs.channels, K);
    size_t after = heap_used();
    double per_end = ((double)after - (double)before) / (2.0 * K);
    printf("idle channels: heap %.0f B per channel end over %u channels (target <= 4096: %s)\n",
           per_end, K, per_end <= 4096 ? "met" : "NOT met");
    for (unsigned i = 0; i < K; i++)
        simctx_node_free(&cl[i]);
    simctx_node_free(&b);
    free(idle_tab);
    sim_free(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *su = suite_create("stream_migrate");
    TCase *tc = tcase_create("migrate");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_migrate_link_failure_mid_transfer, 0, 2);
    tcase_add_test(tc, test_migrate_peer_address_change);
    tcase_add_test(tc, test_migrate_peer_restart_resets);
    tcase_add_test(tc, test_migrate_restarted_peer_stale_channel);
    tcase_add_test(tc, test_migrate_same_key_other_port);
    tcase_add_test(tc, test_migrate_gives_up_after_timeout);
    tcase_add_test(tc, test_migrate_100k_idle_streams_detach);
    tcase_add_test(tc, test_migrate_idle_channel_memory);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
