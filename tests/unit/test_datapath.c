/* Simulator tests of how many packets a bulk receiver sends back (the CPU cost of the data
 * path, scripts/bench/bottlenecks.md): window updates for a reader that drains every packet at
 * once and answers each read (as sst_perf's upload server does), and acks for packets that
 * arrive together (one recvmmsg batch, same timestamp). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "host.h"
#include "sim.h"
#include "simctx.h"
#include "sst.h"

#define TOTAL (8u << 20)   /* two 4 MiB windows' worth, so periodic updates happen too */

/* Nodes are simctx nodes; `quantum` > 0 makes one poll like the batch driver (simctx.h).  The
 * default context configuration: 4 MiB receive buffer, so the full window is 4 MiB - 1. */
static void node_init(struct simctx_node *n, struct sim *s, uint8_t id)
{
    struct sst_addr addr = sim_addr4(id, 4000);
    simctx_node_init(n, s, &addr, "wupdate-node", id, NULL);
}

struct server {
    struct sst_listener *l;
    struct sst_stream *s;
    uint64_t got;
    bool eof;
    bool silent;   /* read only, never answer */
};

/* Reads everything at once and answers each read with an 8-byte record, like sst_perf. */
static void server_stream_cb(struct sst_stream *s, unsigned events, void *arg)
{
    struct server *sv = arg;
    if (!(events & (SST_EV_READABLE | SST_EV_EOF)))
        return;
    uint8_t buf[65536];
    uint64_t before = sv->got;
    sst_ssize_t r;
    while ((r = sst_stream_read(s, buf, sizeof buf)) > 0)
        sv->got += (uint64_t)r;
    if (r == 0)
        sv->eof = true;
    if (sv->got != before && !sv->silent) {
        uint8_t rec[8] = { 0 };
        (void)sst_stream_write(s, rec, sizeof rec);
    }
}

static void server_accept(struct sst_listener *l, void *arg)
{
    struct server *sv = arg;
    struct sst_stream *s = sst_accept(l, server_stream_cb, sv);
    if (s != NULL)
        sv->s = s;
}

struct client {
    struct sst_stream *s;
    uint64_t sent;
};

static void client_pump(struct client *cl)
{
    static uint8_t buf[65536];
    while (cl->sent < TOTAL) {
        size_t n = TOTAL - cl->sent < sizeof buf ? (size_t)(TOTAL - cl->sent) : sizeof buf;
        sst_ssize_t w = sst_stream_write(cl->s, buf, n);
        if (w <= 0)
            return;
        cl->sent += (uint64_t)w;
    }
    if (cl->sent == TOTAL) {
        ck_assert_int_eq(sst_stream_shutdown(cl->s, SST_SHUT_WRITE), 0);
        cl->sent++;   /* past TOTAL: shut down once */
    }
}

static void client_cb(struct sst_stream *s, unsigned events, void *arg)
{
    struct client *cl = arg;
    uint8_t buf[256];
    if (events & SST_EV_READABLE)
        while (sst_stream_read(s, buf, sizeof buf) > 0) {
        }
    if (events & (SST_EV_CONNECTED | SST_EV_WRITABLE))
        client_pump(cl);
}

static bool not_done(void *arg)
{
    const struct server *sv = arg;
    return !sv->eof;
}

/* Sends TOTAL bytes from a to b over the given link; returns both hosts' packet counts. */
static void run_bulk(const struct sim_link_params *lp, bool silent, sst_time_t quantum, uint64_t *a_tx,
                     uint64_t *b_tx)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = 77;
    sc.pool_packets = 16384;
    struct sim *s = sim_new(&sc);
    ck_assert_ptr_nonnull(s);
    struct simctx_node a, b;
    node_init(&a, s, 1);
    node_init(&b, s, 2);
    b.quantum = quantum;
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, lp, NULL, NULL, NULL), 0);
    static struct server sv;
    static struct client cl;
    memset(&sv, 0, sizeof sv);
    memset(&cl, 0, sizeof cl);
    sv.silent = silent;
    sv.l = sst_listen(b.c, "bulk", server_accept, &sv);
    ck_assert_ptr_nonnull(sv.l);
    sst_ctx_set_time(a.c, sim_now(s));
    cl.s = sst_connect(a.c, &b.addr, "bulk", client_cb, &cl);
    ck_assert_ptr_nonnull(cl.s);
    sim_node_wake(s, &a.addr);
    ck_assert_int_eq(sim_run_while(s, not_done, &sv, SST_SEC(30)), 0);
    ck_assert_uint_eq(sv.got, TOTAL);

    struct sst_host_stats ha, hb;
    sst_host_get_stats(sst_ctx_host(a.c), &ha);
    sst_host_get_stats(sst_ctx_host(b.c), &hb);
    *a_tx = ha.tx_packets;
    *b_tx = hb.tx_packets;
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
}

START_TEST(test_drained_reader_sends_few_updates)
{
    struct sim_link_params lp = { .rate_bps = 1000000000, .delay = SST_MS(1), .queue_bytes = 4000000 };
    uint64_t a_tx, b_tx;
    run_bulk(&lp, false, 0, &a_tx, &b_tx);
    printf("drained reader: sender %lu packets, receiver %lu packets\n",
           (unsigned long)a_tx, (unsigned long)b_tx);
    /* The receiver sends one record per read (each data packet is read on its own here), and
     * its acks ride on them, so about 0.9 packets per sender packet.  Before the fix it also
     * sent a window update after almost every data packet: 1.31 with this seed. */
    ck_assert_uint_gt(a_tx, TOTAL / 1500);
    ck_assert_uint_le(b_tx * 20, a_tx * 21);
}
END_TEST

START_TEST(test_acks_coalesce_per_arrival_instant)
{
    /* The receiver only reads.  Once it behaves like the batch driver (all datagrams of one
     * 50 us poll with one timestamp, timers after them), one ack covers each batch, at most 16
     * packets apart; packets handed over one at a time are still acked every second packet. */
    struct sim_link_params lp = { .rate_bps = 1000000000, .delay = SST_MS(1), .queue_bytes = 4000000 };
    uint64_t a_batch, b_batch, a_single, b_single;
    run_bulk(&lp, true, SST_US(50), &a_batch, &b_batch);
    run_bulk(&lp, true, 0, &a_single, &b_single);
    printf("acks: batched arrivals %lu for %lu packets, single arrivals %lu for %lu\n",
           (unsigned long)b_batch, (unsigned long)a_batch, (unsigned long)b_single,
           (unsigned long)a_single);
    ck_assert_uint_gt(a_batch, TOTAL / 1500);
    ck_assert_uint_gt(a_single, TOTAL / 1500);
    ck_assert_uint_ge(b_single * 5, a_single * 2);   /* about 1 per 2 */
    ck_assert_uint_le(b_batch * 4, a_batch);          /* at most 1 per 4 */
}
END_TEST

int main(void)
{
    Suite *su = suite_create("datapath");
    TCase *tc = tcase_create("sim");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_drained_reader_sends_few_updates);
    tcase_add_test(tc, test_acks_coalesce_per_arrival_instant);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
