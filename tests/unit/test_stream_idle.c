/* Simulator tests of idle connections: a stream left idle for many channel idle timeouts stays
 * open (its channel closes, the stream goes dormant) and carries data again, byte-exact, when
 * either side writes, with the writing side re-establishing the channel.  With the liveness
 * probe on (the default, docs/protocol-streams.md §2c) the dormant conns reconnect every
 * liveness_probe and the streams survive that; a peer whose process is gone ends a stream that
 * only reads, within the documented bound, with SST_ERR_TIMEOUT or SST_ERR_RESET. */
#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "simctx.h"
#include "sst.h"

/* ---- glue: one sst_ctx per simulator node (tests/sim/simctx.h) --------------------------- */

/* detach_idle 30 s, channel idle_timeout 60 s, migrate_timeout 30 s; liveness_probe as given
 * (the default is 60 s).  The identity comes from (seed, label, id): the same label at the same
 * id gives the same host key (a restarted process with a persistent key). */
static void node_init_ex(struct simctx_node *n, struct sim *s, uint8_t id, const char *label, sst_time_t probe)
{
    struct sst_addr a = sim_addr4(id, 4000);
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    cfg.liveness_probe = probe;
    simctx_node_init(n, s, &a, label, id, &cfg);
}

static void node_init(struct simctx_node *n, struct sim *s, uint8_t id)
{
    node_init_ex(n, s, id, "idle-node", SST_SEC(60));
}

/* ---- endpoints: a pattern writer and a verifying reader per stream ----------------------- */

static uint8_t pat(uint32_t seed, uint64_t i)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 17);
    x ^= x >> 29;
    return (uint8_t)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

struct ep {
    struct simctx_node *n;
    struct sst_stream *s;
    uint32_t tx_seed, rx_seed;
    uint64_t tx_len, tx_done, rx_done;
    bool shut_after, eof, errored, bad;
    int err;
};

static void ep_pump(struct ep *e)
{
    uint8_t buf[4096];
    while (e->tx_done < e->tx_len) {
        size_t n = (size_t)SST_MIN((uint64_t)sizeof buf, e->tx_len - e->tx_done);
        for (size_t i = 0; i < n; i++)
            buf[i] = pat(e->tx_seed, e->tx_done + i);
        sst_ssize_t w = sst_stream_write(e->s, buf, n);
        if (w <= 0)
            return;
        e->tx_done += (uint64_t)w;
    }
    if (e->shut_after) {
        e->shut_after = false;
        ck_assert_int_eq(sst_stream_shutdown(e->s, SST_SHUT_WRITE), 0);
    }
}

static void ep_read(struct ep *e)
{
    uint8_t buf[8192];
    for (;;) {
        sst_ssize_t n = sst_stream_read(e->s, buf, sizeof buf);
        if (n == 0) {
            e->eof = true;
            return;
        }
        if (n < 0)
            return;
        for (sst_ssize_t i = 0; i < n; i++, e->rx_done++)
            if (buf[i] != pat(e->rx_seed, e->rx_done))
                e->bad = true;
    }
}

static void ep_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct ep *e = arg;
    if (ev & SST_EV_ERROR) {
        e->errored = true;
        e->err = sst_stream_error(s);
        return;
    }
    if (ev & SST_EV_READABLE)
        ep_read(e);
    if (ev & (SST_EV_WRITABLE | SST_EV_CONNECTED))
        ep_pump(e);
}

/* Queues `more` pattern bytes on e from the test body (outside callbacks). */
static void ep_send(struct ep *e, uint64_t more)
{
    sst_ctx_set_time(e->n->c, sim_now(e->n->sim));
    e->tx_len += more;
    ep_pump(e);
    sim_node_wake(e->n->sim, &e->n->addr);
}

static void ep_shut(struct ep *e)
{
    sst_ctx_set_time(e->n->c, sim_now(e->n->sim));
    e->shut_after = true;
    ep_pump(e);
    sim_node_wake(e->n->sim, &e->n->addr);
}

static void srv_accept(struct sst_listener *l, void *arg)
{
    struct ep *e = arg;
    if (e->s != NULL)
        return;
    e->s = sst_accept(l, ep_cb, e);
    if (e->s != NULL)
        ep_pump(e);
}

/* Both endpoints received everything the other has written so far (or one failed). */
struct pair {
    struct ep *a, *b;
    bool want_eof;
};

static bool pair_busy(void *arg)
{
    struct pair *p = arg;
    if (p->a->errored || p->b->errored || p->b->s == NULL)
        return p->b->s == NULL;
    if (p->want_eof && !(p->a->eof && p->b->eof))
        return true;
    return p->a->rx_done < p->b->tx_len || p->b->rx_done < p->a->tx_len;
}

struct two {
    struct simctx_node *a, *b;
};

/* Runs while either side still has a channel or a conn that is not dormant (a liveness probe
 * in progress). */
static bool not_both_dormant(void *arg)
{
    struct two *t = arg;
    struct simctx_node *nodes[2] = { t->a, t->b };
    for (int i = 0; i < 2; i++) {
        struct sst_ctx_stats st;
        sst_ctx_get_stats(nodes[i]->c, &st);
        struct sst_host_stats hs;
        sst_host_get_stats(sst_ctx_host(nodes[i]->c), &hs);
        if (st.conns_dormant != 1 || hs.channels != 0)
            return true;
    }
    return false;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks;
}

/* ---- the scenario ------------------------------------------------------------------------ */

enum first { BOTH_AT_ONCE, RESPONDER_FIRST, INITIATOR_FIRST };

/* A connects to B and both exchange a little; the stream idles for `idle` (many channel idle
 * timeouts); then data flows again starting as `first` says.  Everything must arrive
 * byte-exact, no stream may fail, and while idle no channel, LSID or timer may remain (with
 * the liveness probe on: no timer but the probe's, at most `probe` away, and a probe at least
 * every probe + 150 s) and the heap may not grow. */
static void idle_scenario_ex(uint64_t seed, double loss, sst_time_t idle, enum first first, unsigned cycles,
                             sst_time_t probe)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = seed;
    struct sim *s = sim_new(&sc);
    ck_assert_ptr_nonnull(s);
    struct simctx_node a, b;
    node_init_ex(&a, s, 1, "idle-node", probe);
    node_init_ex(&b, s, 2, "idle-node", probe);
    struct two both = { &a, &b };
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000,
                                  .loss = loss };
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);

    struct ep ea = { .n = &a, .tx_seed = 11, .rx_seed = 22 };
    struct ep eb = { .n = &b, .tx_seed = 22, .rx_seed = 11 };
    ck_assert_ptr_nonnull(sst_listen(b.c, "svc", srv_accept, &eb));
    sst_ctx_set_time(a.c, sim_now(s));
    ea.s = sst_connect(a.c, &b.addr, "svc", ep_cb, &ea);
    ck_assert_ptr_nonnull(ea.s);
    ea.tx_len = 5000;
    eb.tx_len = 7000;
    ep_pump(&ea);
    sim_node_wake(s, &a.addr);
    struct pair p = { .a = &ea, .b = &eb };
    ck_assert_int_eq(sim_run_while(s, pair_busy, &p, sim_now(s) + SST_SEC(10)), 0);
    ck_assert(!ea.errored && !eb.errored);

    for (unsigned cycle = 0; cycle < cycles; cycle++) {
        sst_time_t t0 = sim_now(s);
        /* Detach (30 s) and channel idle close (60 s after the last packet) are long past. */
        sim_run_until(s, t0 + SST_SEC(300));
        /* A probe may be in progress: look at both sides once they are dormant again. */
        ck_assert_int_eq(sim_run_while(s, not_both_dormant, &both, sim_now(s) + SST_SEC(300)), 0);
        size_t heap1 = heap_in_use();
        sim_run_until(s, t0 + idle);
        ck_assert_int_eq(sim_run_while(s, not_both_dormant, &both, sim_now(s) + SST_SEC(300)), 0);
        size_t heap2 = heap_in_use();
        sst_time_t idled = sim_now(s) - t0;
        struct simctx_node *nodes[2] = { &a, &b };
        for (int i = 0; i < 2; i++) {
            struct sst_ctx_stats st;
            sst_ctx_get_stats(nodes[i]->c, &st);
            struct sst_host_stats hs;
            sst_host_get_stats(sst_ctx_host(nodes[i]->c), &hs);
            ck_assert_uint_ge(st.idle_closes, cycle + 1);
            ck_assert_uint_eq(st.conns_dormant, 1);
            ck_assert_uint_eq(st.lsids_in_use, 0);
            ck_assert_uint_eq(st.streams_live, 1);
            ck_assert_uint_eq(hs.channels, 0);
            if (probe == 0) {
                ck_assert_uint_eq(st.liveness_probes, 0);
                ck_assert_uint_eq(sst_ctx_deadline(nodes[i]->c), SST_TIME_NEVER);
            } else {
                /* The only timer is the coarse probe; each cycle is at most the probe interval
                 * dormant plus detach (30 s) and the channel's idle close (60 s) after it, and
                 * one of the two sides probes (the other's conn is woken by it). */
                ck_assert_uint_gt(sst_ctx_deadline(nodes[i]->c), sim_now(s));
                ck_assert_uint_le(sst_ctx_deadline(nodes[i]->c), sim_now(s) + probe);
            }
        }
        if (probe != 0) {
            struct sst_ctx_stats sa, sb;
            sst_ctx_get_stats(a.c, &sa);
            sst_ctx_get_stats(b.c, &sb);
            ck_assert_uint_ge(sa.liveness_probes + sb.liveness_probes,
                              (cycle + 1) * (idled / (probe + SST_SEC(150))));
            ck_assert_uint_ge(sa.liveness_probes + sb.liveness_probes, cycle + 1);
        }
        /* Without the probe nothing runs while idle and the heap may not grow at all.  With it,
         * every probe is a handshake and attaches: the counts above must hold, and the heap is
         * only reported (it creeps by a few KB per hour of probes in this process, simulator
         * included; not yet traced to its owner -- docs/protocol-streams.md §2c). */
        if (probe == 0)
            ck_assert_uint_le(heap2, heap1);
        else
            printf("idle seed %llu: heap %zu -> %zu bytes over %.0f s of probes\n", (unsigned long long)seed,
                   heap1, heap2, (double)(idled - SST_SEC(300)) / 1e9);
        ck_assert(!ea.errored && !eb.errored);

        /* Wake up: 100 KB each way (several round trips of data under loss). */
        struct ep *w1 = first == RESPONDER_FIRST ? &eb : &ea;
        struct ep *w2 = w1 == &ea ? &eb : &ea;
        ep_send(w1, 100000);
        if (first == BOTH_AT_ONCE)
            ep_send(w2, 100000);
        ck_assert_int_eq(sim_run_while(s, pair_busy, &p, sim_now(s) + SST_SEC(60)), 0);
        ck_assert_msg(!ea.errored && !eb.errored, "seed %llu: errors %d %d",
                      (unsigned long long)seed, ea.err, eb.err);
        if (first != BOTH_AT_ONCE) {
            ep_send(w2, 100000);
            ck_assert_int_eq(sim_run_while(s, pair_busy, &p, sim_now(s) + SST_SEC(60)), 0);
            ck_assert(!ea.errored && !eb.errored);
        }
        struct sst_ctx_stats sw, so;
        sst_ctx_get_stats(w1->n->c, &sw);
        sst_ctx_get_stats(w2->n->c, &so);
        ck_assert_uint_eq(sw.idle_wakes, cycle + 1);   /* the first writer reconnected */
        ck_assert_uint_eq(sw.conns_dormant + so.conns_dormant, 0);
        printf("idle seed %llu loss %.2f: cycle %u, %.0f s idle, resumed (wakes %llu/%llu)\n",
               (unsigned long long)seed, loss, cycle, (double)idle / 1e9,
               (unsigned long long)sw.idle_wakes, (unsigned long long)so.idle_wakes);
    }
    ck_assert(!ea.bad && !eb.bad);
    ck_assert_uint_eq(ea.rx_done, eb.tx_len);
    ck_assert_uint_eq(eb.rx_done, ea.tx_len);

    /* Both close; the stream ends cleanly on both sides. */
    ep_shut(&ea);
    ep_shut(&eb);
    p.want_eof = true;
    ck_assert_int_eq(sim_run_while(s, pair_busy, &p, sim_now(s) + SST_SEC(60)), 0);
    ck_assert(ea.eof && eb.eof && !ea.errored && !eb.errored && !ea.bad && !eb.bad);
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
}

static void idle_scenario(uint64_t seed, double loss, sst_time_t idle, enum first first, unsigned cycles)
{
    idle_scenario_ex(seed, loss, idle, first, cycles, SST_SEC(60));
}

START_TEST(test_idle_10min_both_write_at_once)
{
    idle_scenario(1, 0, SST_SEC(600), BOTH_AT_ONCE, 1);
}
END_TEST

START_TEST(test_idle_10min_initiator_first)
{
    idle_scenario(2, 0, SST_SEC(600), INITIATOR_FIRST, 1);
}
END_TEST

START_TEST(test_idle_10min_responder_first)
{
    idle_scenario(3, 0, SST_SEC(600), RESPONDER_FIRST, 1);
}
END_TEST

/* Liveness probe off: a dormant stream has no timer at all, like TCP without keepalives. */
START_TEST(test_idle_10min_no_probe)
{
    idle_scenario_ex(6, 0, SST_SEC(600), INITIATOR_FIRST, 1, 0);
    idle_scenario_ex(7, 0.01, SST_SEC(3600), RESPONDER_FIRST, 2, 0);
}
END_TEST

START_TEST(test_idle_1h_lossy)
{
    /* 1% loss both ways, an hour idle, three times over, alternating who writes first. */
    idle_scenario(4, 0.01, SST_SEC(3600), RESPONDER_FIRST, 3);
    idle_scenario(5, 0.01, SST_SEC(3600), BOTH_AT_ONCE, 1);
}
END_TEST

/* The peer vanished while the stream idled: the first write reconnects, finds nobody, and
 * the stream fails with SST_ERR_TIMEOUT instead of waiting forever. */
START_TEST(test_idle_peer_gone_write_fails)
{
    struct sim *s = sim_new(NULL);
    ck_assert_ptr_nonnull(s);
    struct simctx_node a, b;
    node_init(&a, s, 1);
    node_init(&b, s, 2);
    struct sim_link_params lp = { .delay = SST_MS(10) };
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    struct ep ea = { .n = &a, .tx_seed = 11, .rx_seed = 22, .tx_len = 100 };
    struct ep eb = { .n = &b, .tx_seed = 22, .rx_seed = 11 };
    ck_assert_ptr_nonnull(sst_listen(b.c, "svc", srv_accept, &eb));
    ea.s = sst_connect(a.c, &b.addr, "svc", ep_cb, &ea);
    ck_assert_ptr_nonnull(ea.s);
    ep_pump(&ea);
    struct pair p = { .a = &ea, .b = &eb };
    ck_assert_int_eq(sim_run_while(s, pair_busy, &p, SST_SEC(10)), 0);
    sim_run_until(s, sim_now(s) + SST_SEC(200));
    simctx_node_free(&b);
    sst_time_t t = sim_now(s);
    ep_send(&ea, 1000);
    sim_run_until(s, t + SST_SEC(60));
    ck_assert(ea.errored);
    ck_assert_int_eq(ea.err, SST_ERR_TIMEOUT);
    simctx_node_free(&a);
    sim_free(s);
}
END_TEST

/* ---- liveness: a peer whose process is gone, seen by a side that only reads ------------- */

enum death { VANISHED, RESTARTED_SAME_KEY, RESTARTED_NEW_KEY, PORT_CLOSED };

static bool not_errored(void *arg)
{
    const struct ep *e = arg;
    return !e->errored;
}

struct probe_wait {
    struct simctx_node *n;
    uint64_t probes;
};

static bool probe_not_started(void *arg)
{
    struct probe_wait *w = arg;
    struct sst_ctx_stats st;
    sst_ctx_get_stats(w->n->c, &st);
    return st.liveness_probes < w->probes;
}

/* A connects to B, both exchange a little and then only read.  One side's process dies `after`
 * the exchange (its node disappears with no word to the peer, as with kill -9), in the way
 * `death` says; the survivor must see its stream fail with `want` within the documented bound
 * idle_timeout + liveness_probe + max(migrate_timeout, 10 s) = 60 + 60 + 30 s (plus round
 * trips), never hang. */
static void liveness_scenario_ex(uint64_t seed, bool kill_server, enum death death, sst_time_t after, int want,
                                 double back_loss, sst_time_t *took)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = seed;
    struct sim *s = sim_new(&sc);
    ck_assert_ptr_nonnull(s);
    struct simctx_node a, b, reborn;
    node_init(&a, s, 1);
    node_init(&b, s, 2);
    struct sim_link_params lp = { .delay = SST_MS(10) };
    struct sim_link *ab, *ba;
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, &ab, &ba), 0);
    struct ep ea = { .n = &a, .tx_seed = 11, .rx_seed = 22, .tx_len = 3000 };
    struct ep eb = { .n = &b, .tx_seed = 22, .rx_seed = 11, .tx_len = 4000 };
    struct ep er = { .n = &reborn };
    ck_assert_ptr_nonnull(sst_listen(b.c, "svc", srv_accept, &eb));
    sst_ctx_set_time(a.c, sim_now(s));
    ea.s = sst_connect(a.c, &b.addr, "svc", ep_cb, &ea);
    ck_assert_ptr_nonnull(ea.s);
    ep_pump(&ea);
    sim_node_wake(s, &a.addr);
    struct pair p = { .a = &ea, .b = &eb };
    ck_assert_int_eq(sim_run_while(s, pair_busy, &p, SST_SEC(10)), 0);
    sim_run_until(s, sim_now(s) + after);
    ck_assert(!ea.errored && !eb.errored);

    struct simctx_node *dead = kill_server ? &b : &a;
    struct simctx_node *live = kill_server ? &a : &b;
    struct ep *survivor = kill_server ? &ea : &eb;
    sst_time_t t_kill = sim_now(s);
    uint8_t dead_id = kill_server ? 2 : 1;
    simctx_node_free(dead);
    if (back_loss > 0) {
        /* Loss on the way from the dead side's address back to the survivor. */
        struct sim_link_params lossy = lp;
        lossy.loss = back_loss;
        sim_link_set_params(kill_server ? ba : ab, &lossy);
    }
    if (death == RESTARTED_SAME_KEY || death == RESTARTED_NEW_KEY) {
        /* Another process at the same address: it knows none of the old streams. */
        node_init_ex(&reborn, s, dead_id, death == RESTARTED_SAME_KEY ? "idle-node" : "idle-reborn", SST_SEC(60));
        ck_assert_ptr_nonnull(sst_listen(reborn.c, "svc", srv_accept, &er));
    }
    if (death == PORT_CLOSED) {
        /* The dead side's kernel answers the probe's handshake with an ICMP port unreachable
         * (the simulator has no ICMP: the driver's call is made by hand once the probe sends). */
        struct sst_ctx_stats st0;
        sst_ctx_get_stats(live->c, &st0);
        struct probe_wait w = { live, st0.liveness_probes + 1 };
        ck_assert_int_eq(sim_run_while(s, probe_not_started, &w, t_kill + SST_SEC(160)), 0);
        ck_assert(!survivor->errored);
        sst_time_t now = sim_now(s);
        sst_ctx_set_time(live->c, now);
        sst_host_unreachable(sst_ctx_host(live->c), now, &dead->addr, SST_ERR_NO_SST);
        sst_ctx_dispatch(live->c);
        ck_assert(survivor->errored);   /* at once, not after the reconnection deadline */
    }
    sst_time_t bound = SST_SEC(60) + SST_SEC(60) + SST_SEC(30) + SST_SEC(5);
    ck_assert_int_eq(sim_run_while(s, not_errored, survivor, t_kill + bound), 0);
    ck_assert_msg(survivor->errored, "seed %llu: survivor still waiting", (unsigned long long)seed);
    ck_assert_int_eq(survivor->err, want);
    struct sst_ctx_stats st;
    sst_ctx_get_stats(live->c, &st);
    /* Killed while the channel was still up, the survivor's own detach (30 s) leaves Detach
     * packets unacknowledged: the channel fails and the reconnection finds the peer gone,
     * probe or not.  Killed while dormant, only the probe can find out. */
    if (after >= SST_SEC(150))
        ck_assert_uint_ge(st.liveness_probes, 1);
    ck_assert_uint_eq(st.streams_live, 1);   /* our handle: the stream itself has ended */
    if (took != NULL)
        *took = sim_now(s) - t_kill;
    printf("liveness seed %llu: %s killed (%d), survivor failed after %.1f s with %d\n",
           (unsigned long long)seed, kill_server ? "server" : "client", (int)death,
           (double)(sim_now(s) - t_kill) / 1e9, survivor->err);
    ck_assert(!er.errored);
    if (death == RESTARTED_SAME_KEY || death == RESTARTED_NEW_KEY)
        simctx_node_free(&reborn);
    simctx_node_free(live);
    sim_free(s);
}

static void liveness_scenario(uint64_t seed, bool kill_server, enum death death, sst_time_t after, int want)
{
    liveness_scenario_ex(seed, kill_server, death, after, want, 0, NULL);
}

/* Killed while the channel is up: the reconnection after the channel fails finds nobody (a
 * server survivor does not reconnect: it waits migrate_timeout for the client). */
START_TEST(test_liveness_vanished_while_active)
{
    liveness_scenario(21, true, VANISHED, SST_SEC(1), SST_ERR_TIMEOUT);
    liveness_scenario(22, false, VANISHED, SST_SEC(1), SST_ERR_TIMEOUT);
}
END_TEST

/* Killed after both sides went dormant: the probe's reconnection times out. */
START_TEST(test_liveness_vanished_while_dormant)
{
    liveness_scenario(23, true, VANISHED, SST_SEC(200), SST_ERR_TIMEOUT);
    liveness_scenario(24, false, VANISHED, SST_SEC(200), SST_ERR_TIMEOUT);
}
END_TEST

/* A new process at the address with the same persistent host key: the streams' Attaches draw
 * stateless Resets (unknown USID). */
START_TEST(test_liveness_restarted_same_key)
{
    liveness_scenario(25, true, RESTARTED_SAME_KEY, SST_SEC(200), SST_ERR_RESET);
    liveness_scenario(26, false, RESTARTED_SAME_KEY, SST_SEC(200), SST_ERR_RESET);
}
END_TEST

/* A new process with another host key: the streams cannot come back. */
START_TEST(test_liveness_restarted_new_key)
{
    liveness_scenario(27, true, RESTARTED_NEW_KEY, SST_SEC(200), SST_ERR_RESET);
    liveness_scenario(28, false, RESTARTED_NEW_KEY, SST_SEC(200), SST_ERR_RESET);
}
END_TEST

/* The restarted peer's stateless Resets for the probe's Attaches cross a lossy path (40 %):
 * the Attach stays unacknowledged until one Reset arrives (docs/protocol-streams.md §2a), so
 * the stream fails about when it does without loss, not a detach period (30 s) later when an
 * acknowledged Attach whose Reset was lost would leave the stream believing it is attached. */
START_TEST(test_liveness_restarted_lossy_resets)
{
    sst_time_t clean, lossy;
    liveness_scenario_ex(31, true, RESTARTED_SAME_KEY, SST_SEC(200), SST_ERR_RESET, 0, &clean);
    for (uint64_t seed = 32; seed < 40; seed++) {
        liveness_scenario_ex(seed, true, RESTARTED_SAME_KEY, SST_SEC(200), SST_ERR_RESET, 0.4, &lossy);
        ck_assert_msg(lossy < clean + SST_SEC(10), "seed %llu: %.1f s vs %.1f s without loss",
                      (unsigned long long)seed, (double)lossy / 1e9, (double)clean / 1e9);
    }
}
END_TEST

/* The dead side's port is closed: the ICMP port unreachable ends the stream at once. */
START_TEST(test_liveness_port_closed)
{
    liveness_scenario(29, true, PORT_CLOSED, SST_SEC(200), SST_ERR_RESET);
    liveness_scenario(30, false, PORT_CLOSED, SST_SEC(200), SST_ERR_RESET);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_idle");
    TCase *tc = tcase_create("idle");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_idle_10min_both_write_at_once);
    tcase_add_test(tc, test_idle_10min_initiator_first);
    tcase_add_test(tc, test_idle_10min_responder_first);
    tcase_add_test(tc, test_idle_1h_lossy);
    tcase_add_test(tc, test_idle_peer_gone_write_fails);
    tcase_add_test(tc, test_idle_10min_no_probe);
    tcase_add_test(tc, test_liveness_vanished_while_active);
    tcase_add_test(tc, test_liveness_vanished_while_dormant);
    tcase_add_test(tc, test_liveness_restarted_same_key);
    tcase_add_test(tc, test_liveness_restarted_new_key);
    tcase_add_test(tc, test_liveness_port_closed);
    tcase_add_test(tc, test_liveness_restarted_lossy_resets);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
