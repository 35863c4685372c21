/* The head-of-line benchmark (docs/benchmarking.md, scenario 6) in the simulator: one bulk
 * download and 7 request/response loops (16 KiB answers, a new stream per request) share one
 * channel over 100 Mbit/s x 50 ms with a 1-BDP queue, BBR, clean or with 2 % random loss both
 * ways.  Virtual time makes the per-request latencies exact and repeatable, so the effect of
 * request-stream priority and redundancy (sst_stream_set_redundant) is checked here, not only
 * measured by the benchmark over linkemu. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "simctx.h"
#include "sst.h"

#define LOOPS 7
#define ANSWER 16384
#define F_PRIO 0x01
#define F_REDUNDANT 0x02
#define MAX_LAT 4096

static uint8_t g_junk[16384];

/* ---- server: 'D' = download forever, 'R' = ANSWER bytes then end of stream ---------------- */

struct srv_stream {
    struct sst_stream *s;
    uint8_t hdr[2];
    size_t got;
    uint64_t sent;
    bool done;
};

static void srv_pump(struct srv_stream *x)
{
    bool download = x->hdr[0] == 'D';
    while (!x->done && (download || x->sent < ANSWER)) {
        size_t want = download ? sizeof g_junk : (size_t)SST_MIN((uint64_t)sizeof g_junk, ANSWER - x->sent);
        sst_ssize_t w = sst_stream_write(x->s, g_junk, want);
        if (w <= 0)
            return;
        x->sent += (uint64_t)w;
    }
    if (!download && !x->done) {
        ck_assert_int_eq(sst_stream_shutdown(x->s, SST_SHUT_WRITE), 0);
        x->done = true;
    }
}

static void srv_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct srv_stream *x = arg;
    if (ev & SST_EV_ERROR) {
        x->done = true;
        return;
    }
    while (x->got < sizeof x->hdr) {
        sst_ssize_t r = sst_stream_read(s, x->hdr + x->got, sizeof x->hdr - x->got);
        if (r <= 0)
            return;
        x->got += (size_t)r;
        if (x->got == sizeof x->hdr) {
            if (x->hdr[1] & F_PRIO)
                sst_stream_set_priority(s, 1);
            if (x->hdr[1] & F_REDUNDANT)
                sst_stream_set_redundant(s, true);
        }
    }
    uint8_t sink[64];
    while (sst_stream_read(s, sink, sizeof sink) > 0) {
    }
    srv_pump(x);
}

struct server {
    struct srv_stream st[8192];
    unsigned n;
};

static void srv_accept(struct sst_listener *l, void *arg)
{
    struct server *sv = arg;
    while (sv->n < SST_ARRAY_LEN(sv->st)) {
        struct srv_stream *x = &sv->st[sv->n];
        memset(x, 0, sizeof *x);
        x->s = sst_accept(l, srv_cb, x);
        if (x->s == NULL)
            return;
        sv->n++;
        srv_cb(x->s, SST_EV_READABLE, x);
    }
}

/* ---- client: the download and LOOPS request loops ------------------------------------------ */

struct client;
struct req {
    struct client *cl;
    struct sst_stream *s;
    sst_time_t start;
    uint64_t got;
    bool download, connected;
};

struct client {
    struct sim *sim;
    struct simctx_node *node;
    struct sst_addr server;
    uint8_t flags;
    bool measuring, stop;
    struct req bulk, loops[LOOPS];
    sst_time_t lat[MAX_LAT];
    unsigned nlat;
    uint64_t bulk_bytes;
};

static void req_start(struct client *cl, struct req *r);

static void req_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct req *r = arg;
    struct client *cl = r->cl;
    ck_assert_msg(!(ev & SST_EV_ERROR), "stream error %d", sst_stream_error(s));
    if (ev & SST_EV_CONNECTED)
        r->connected = true;
    for (;;) {
        sst_ssize_t n = sst_stream_read(s, g_junk, sizeof g_junk);
        if (n > 0) {
            r->got += (uint64_t)n;
            if (r->download && cl->measuring)
                cl->bulk_bytes += (uint64_t)n;
            continue;
        }
        if (n == 0 && !r->download) {
            ck_assert_uint_eq(r->got, ANSWER);
            if (cl->measuring && cl->nlat < MAX_LAT)
                cl->lat[cl->nlat++] = sim_now(cl->sim) - r->start;
            sst_stream_close(s);
            r->s = NULL;
            if (!cl->stop)
                req_start(cl, r);
        }
        return;
    }
}

static void req_start(struct client *cl, struct req *r)
{
    r->cl = cl;
    r->got = 0;
    r->start = sim_now(cl->sim);
    r->s = sst_connect(cl->node->c, &cl->server, "hol", req_cb, r);
    ck_assert_ptr_nonnull(r->s);
    uint8_t hdr[2] = { r->download ? 'D' : 'R', r->download ? 0 : cl->flags };
    if (hdr[1] & F_PRIO)
        sst_stream_set_priority(r->s, 1);
    if (hdr[1] & F_REDUNDANT)
        sst_stream_set_redundant(r->s, true);
    ck_assert_int_eq(sst_stream_write(r->s, hdr, sizeof hdr), (sst_ssize_t)sizeof hdr);
    if (!r->download)
        ck_assert_int_eq(sst_stream_shutdown(r->s, SST_SHUT_WRITE), 0);
}

static void loops_begin(void *arg, sst_time_t now)
{
    struct client *cl = arg;
    sst_ctx_set_time(cl->node->c, now);
    cl->measuring = true;
    for (unsigned i = 0; i < LOOPS; i++)
        req_start(cl, &cl->loops[i]);
    sim_node_wake(cl->sim, &cl->node->addr);
}

static void loops_end(void *arg, sst_time_t now)
{
    struct client *cl = arg;
    (void)now;
    cl->measuring = false;
    cl->stop = true;
}

static bool bulk_not_connected(void *arg)
{
    const struct req *r = arg;
    return !r->connected;
}

static int cmp_time(const void *x, const void *y)
{
    sst_time_t a = *(const sst_time_t *)x, b = *(const sst_time_t *)y;
    return a < b ? -1 : a > b;
}

/* Nearest-rank percentile, as sst_perf reports it. */
static sst_time_t pct(const sst_time_t *v, unsigned n, unsigned p)
{
    unsigned rank = (p * n + 99) / 100;
    return v[rank > 0 ? rank - 1 : 0];
}

struct hol_result {
    sst_time_t p50, p99;
    unsigned n;
    double bulk_mbps;
};

static struct hol_result run_hol(double loss, uint8_t flags, uint64_t seed)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = seed;
    sc.pool_packets = 16384;
    struct sim *s = sim_new(&sc);
    ck_assert_ptr_nonnull(s);
    struct sim_link_params lp = { .rate_bps = 100000000, .delay = SST_MS(25), .queue_bytes = 625000,
                                  .loss = loss };
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    cfg.host.cc = SST_CC_BBR;
    struct simctx_node a, b;
    struct sst_addr aa = sim_addr4(1, 4000), ba = sim_addr4(2, 4000);
    simctx_node_init(&a, s, &aa, "hol-node", 1, &cfg);
    simctx_node_init(&b, s, &ba, "hol-node", 2, &cfg);
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    ck_assert_ptr_nonnull(sst_listen(b.c, "hol", srv_accept, &sv));
    static struct client cl;
    memset(&cl, 0, sizeof cl);
    cl.sim = s;
    cl.node = &a;
    cl.server = b.addr;
    cl.flags = flags;
    cl.bulk.download = true;
    simctx_node_enter(&a);
    req_start(&cl, &cl.bulk);
    simctx_node_leave(&a);
    /* As the benchmark (whose warm-up transaction brings the channel up first): the loops start
     * 1 s after the download has started on an established channel, and run for 5 s. */
    ck_assert_int_eq(sim_run_while(s, bulk_not_connected, &cl.bulk, SST_SEC(30)), 0);
    sst_time_t t0 = sim_now(s);
    ck_assert_int_eq(sim_at(s, t0 + SST_SEC(1), loops_begin, &cl), 0);
    ck_assert_int_eq(sim_at(s, t0 + SST_SEC(6), loops_end, &cl), 0);
    sim_run_until(s, t0 + SST_SEC(6));
    struct hol_result res = { .n = cl.nlat, .bulk_mbps = (double)cl.bulk_bytes * 8 / 5 / 1e6 };
    ck_assert_uint_gt(cl.nlat, 100);
    qsort(cl.lat, cl.nlat, sizeof cl.lat[0], cmp_time);
    res.p50 = pct(cl.lat, cl.nlat, 50);
    res.p99 = pct(cl.lat, cl.nlat, 99);
    printf("hol sim: loss %.0f%% flags %u: %u requests, p50 %.1f ms, p99 %.1f ms, bulk %.1f Mbit/s\n",
           loss * 100, flags, res.n, (double)res.p50 / 1e6, (double)res.p99 / 1e6, res.bulk_mbps);
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
    return res;
}

START_TEST(test_hol_sim_redundant_requests)
{
    /* Lossless, the requests take one round trip (50 ms) plus queueing behind the download. */
    struct hol_result clean = run_hol(0, F_PRIO | F_REDUNDANT, 61);
    ck_assert_uint_lt(clean.p99, SST_MS(80));
    /* At 2 % loss about a quarter of the plain transactions lose one of their ~14 packets
     * and wait a round trip or two for loss detection and the retransmission: p99 shows it. */
    struct hol_result plain = run_hol(0.02, 0, 61);
    ck_assert_msg(plain.p99 > clean.p99 + SST_MS(40), "plain p99 %llu ns", (unsigned long long)plain.p99);
    /* Prioritised and redundant request streams: a lost packet's copy arrives right behind it,
     * so p99 stays within the benchmark's target of 1.5x the lossless p99. */
    struct hol_result red = run_hol(0.02, F_PRIO | F_REDUNDANT, 61);
    ck_assert_msg(red.p99 * 2 <= clean.p99 * 3, "redundant p99 %llu ns vs lossless %llu ns",
                  (unsigned long long)red.p99, (unsigned long long)clean.p99);
    ck_assert_uint_lt(red.p99, plain.p99);
    /* The copies cost the requests' bandwidth twice, but the download keeps most of the link. */
    ck_assert_msg(red.bulk_mbps > 50, "download %.1f Mbit/s", red.bulk_mbps);
    ck_assert_msg(plain.bulk_mbps > red.bulk_mbps, "copies are not free: %.1f vs %.1f Mbit/s",
                  plain.bulk_mbps, red.bulk_mbps);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("hol_sim");
    TCase *tc = tcase_create("sim");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_hol_sim_redundant_requests);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
