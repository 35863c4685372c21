/* The LSID quiet period (paper §4.3.9) counts every packet of the channel, not only the stream
 * layer's: a peer that only acknowledges (a receiver whose application does not answer) still
 * moves its packet sequence numbers on, and the channel's replay window, which is what keeps a
 * late packet of an LSID's old use from reaching its new one, works on those numbers.  Before,
 * the quiet table was fed the sequence numbers of stream-layer packets only, so after the wrap
 * a sender whose peer had only acknowledged since the releases found every released LSID still
 * quiet, and allocation gave up after SST_SID_MAX_SKIP of them: sst_connect NULL. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "simctx.h"
#include "stream_int.h"

enum { TXNS = 40 };   /* the last of them still quiet, more than allocation may skip */

struct peer {
    struct sst_stream *s;
    bool eof, errored, stall;
    uint64_t got;
};

static void peer_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct peer *p = arg;
    uint8_t buf[4096];
    if (ev & SST_EV_ERROR)
        p->errored = true;
    while (!p->stall) {
        sst_ssize_t n = sst_stream_read(s, buf, sizeof buf);
        if (n == 0)
            p->eof = true;
        if (n <= 0)
            break;
        p->got += (uint64_t)n;
    }
}

/* Server (b): every stream is read to its end, then closed (a one-request transaction); the
 * first one, the bulk stream, is not read at all (stall): b's only packets are channel acks. */
static struct peer srv[2 * TXNS + 1];
static unsigned naccepted;

static void srv_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct peer *p = arg;
    peer_cb(s, ev, arg);
    if (p->eof && p->s) {
        sst_stream_close(p->s);
        p->s = NULL;
    }
}

static void on_accept(struct sst_listener *l, void *arg)
{
    (void)arg;
    struct sst_stream *s;
    while (naccepted < SST_ARRAY_LEN(srv) && (s = sst_accept(l, srv_cb, &srv[naccepted])) != NULL) {
        srv[naccepted].s = s;
        srv[naccepted].stall = naccepted == 0;
        naccepted++;
    }
}

static bool less_accepted(void *arg)
{
    return naccepted < *(unsigned *)arg;
}

static struct peer cli[TXNS + 1];

START_TEST(test_quiet_period_counts_acks)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = 77;
    struct sim *sim = sim_new(&sc);
    ck_assert_ptr_nonnull(sim);
    struct simctx_node a, b;
    struct sst_addr aa = sim_addr4(1, 4000), ab = sim_addr4(2, 4000);
    simctx_node_init(&a, sim, &aa, "quiet-node", 1, NULL);
    simctx_node_init(&b, sim, &ab, "quiet-node", 2, NULL);
    struct sim_link_params lp = { .rate_bps = 100000000, .delay = SST_MS(1), .queue_bytes = 1000000 };
    ck_assert_int_eq(sim_path(sim, &aa, &ab, &lp, NULL, NULL, NULL), 0);
    ck_assert_ptr_nonnull(sst_listen(b.c, "q", on_accept, NULL));
    memset(srv, 0, sizeof srv);
    memset(cli, 0, sizeof cli);
    naccepted = 0;

    /* The bulk stream (LSID 1), then TXNS transactions at once, each closed by both sides and
     * freed: their LSIDs (2 .. TXNS + 1) enter the quiet period on a, within a few packets. */
    unsigned want = 1;
    simctx_node_enter(&a);
    cli[0].s = sst_connect(a.c, &ab, "q", peer_cb, &cli[0]);
    ck_assert_ptr_nonnull(cli[0].s);
    ck_assert_int_eq(sst_stream_write(cli[0].s, "b", 1), 1);
    simctx_node_leave(&a);
    ck_assert_int_eq(sim_run_while(sim, less_accepted, &want, sim_now(sim) + SST_SEC(5)), 0);
    simctx_node_enter(&a);
    for (unsigned i = 1; i <= TXNS; i++) {
        cli[i].s = sst_connect(a.c, &ab, "q", peer_cb, &cli[i]);
        ck_assert_ptr_nonnull(cli[i].s);
        ck_assert_int_eq(sst_stream_write(cli[i].s, "t", 1), 1);
        ck_assert_int_eq(sst_stream_shutdown(cli[i].s, SST_SHUT_WRITE), 0);
    }
    simctx_node_leave(&a);
    sim_run_until(sim, sim_now(sim) + SST_MS(50));
    simctx_node_enter(&a);
    for (unsigned i = 1; i <= TXNS; i++) {
        ck_assert(cli[i].eof && !cli[i].errored);
        sst_stream_close(cli[i].s);
    }
    simctx_node_leave(&a);
    sim_run_until(sim, sim_now(sim) + SST_MS(100));
    struct conn *ca = cli[0].s->conn;
    ck_assert_ptr_nonnull(ca);
    ck_assert_uint_eq(ca->sid.nquiet, TXNS);

    /* a uploads on the bulk stream; b's application reads nothing, so b answers with channel
     * acks only, well over SST_SID_QUIET_PKTS of them, until the window is full. */
    static uint8_t blob[200000];
    simctx_node_enter(&a);
    sst_ssize_t w = sst_stream_write(cli[0].s, blob, sizeof blob);
    simctx_node_leave(&a);
    ck_assert_int_gt(w, 60000);
    struct sst_chan_stats before, after;
    sst_chan_get_stats(ca->ch, &before);
    sim_run_until(sim, sim_now(sim) + SST_MS(200));
    sst_chan_get_stats(ca->ch, &after);
    ck_assert_uint_ge(after.rx_packets - before.rx_packets, 2 * SST_SID_QUIET_PKTS);
    ck_assert_uint_eq(srv[0].got, 0);

    /* The LSID counter wraps (what 65 536 streams would do, test_stream_sim's LSID wrap test):
     * both ends' counters are put just before the released LSIDs' next turn. */
    struct conn *cb = srv[0].s->conn;
    ck_assert_ptr_nonnull(cb);
    ca->sid.next = 65536 + 2;
    cb->peer_counter = 65536 + 1;
    /* Every released LSID is past its quiet period: b's acks moved b's sequence numbers on. */
    simctx_node_enter(&a);
    for (unsigned i = 1; i <= TXNS; i++) {
        cli[i] = (struct peer){ 0 };
        cli[i].s = sst_connect(a.c, &ab, "q", peer_cb, &cli[i]);
        ck_assert_msg(cli[i].s != NULL, "stream %u after the wrap: no LSID (the released ones still quiet)", i);
        ck_assert_uint_eq(cli[i].s->local_lsid, i + 1);
        ck_assert_int_eq(sst_stream_write(cli[i].s, "u", 1), 1);
        ck_assert_int_eq(sst_stream_shutdown(cli[i].s, SST_SHUT_WRITE), 0);
    }
    simctx_node_leave(&a);
    want = 1 + 2 * TXNS;
    ck_assert_int_eq(sim_run_while(sim, less_accepted, &want, sim_now(sim) + SST_SEC(5)), 0);
    sim_run_until(sim, sim_now(sim) + SST_MS(50));
    for (unsigned i = 1; i <= TXNS; i++)
        ck_assert(cli[i].eof && !cli[i].errored);
    for (unsigned i = 1 + TXNS; i < want; i++)
        ck_assert(srv[i].got == 1 && srv[i].eof && !srv[i].errored);
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(sim);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_quiet");
    TCase *tc = tcase_create("quiet");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_quiet_period_counts_acks);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
