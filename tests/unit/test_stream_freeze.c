/* Simulator tests of a stopped process (kill -STOP / -CONT): the receiving node's engine is not
 * called for 30 virtual seconds in the middle of a bulk download while its peer keeps sending;
 * its inbound datagrams queue up to a socket-buffer bound and are all handed over at once when
 * it resumes.  The sender's channel gives up meanwhile and the streams migrate to a new one
 * (paper §4.3.7).  The reader consumes slower than the link, so the transfer runs on receive
 * window updates; every byte must arrive, verified, within a bound after the thaw. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "simctx.h"
#include "sst.h"
#include "streamtest.h"

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

/* The server: the accepted stream sends `payload` pattern bytes and closes. */
struct server {
    struct ep ep;
    bool accepted;
    uint64_t payload;
};

static void srv_accept(struct sst_listener *l, void *arg)
{
    struct server *sv = arg;
    if (sv->accepted)
        return;
    memset(&sv->ep, 0, sizeof sv->ep);
    sv->ep.s = sst_accept(l, ep_cb, &sv->ep);
    if (sv->ep.s == NULL)
        return;
    sv->accepted = true;
    ep_start_tx(&sv->ep, 77, sv->payload);
}

/* The client is the shim's pump (shim/spump.c) in front of an application: on a stream event,
 * and when the application has made room, it reads the stream until SST_ERR_AGAIN or until its
 * socketpair to the application (pipe_cap bytes) is full; the application takes at most
 * `chunk` bytes of it every `tick`, not while frozen.  So a READABLE edge the engine fails to
 * report, or a window update it fails to send, stops the transfer for good. */
struct reader {
    struct sim *sim;
    struct simctx_node *n;
    struct ep ep;
    size_t chunk, pipe_cap, pipe_fill;
    sst_time_t tick;
};

static void reader_verify(struct ep *e, const uint8_t *buf, size_t got)
{
    size_t i = 0;
    while (e->hdr_got < 8 && i < got)
        e->hdr[e->hdr_got++] = buf[i++];
    if (e->hdr_got == 8 && e->rx_len == 0) {
        e->rx_seed = (uint32_t)e->hdr[0] << 24 | (uint32_t)e->hdr[1] << 16 |
                     (uint32_t)e->hdr[2] << 8 | e->hdr[3];
        e->rx_len = (uint64_t)e->hdr[4] << 24 | (uint64_t)e->hdr[5] << 16 |
                    (uint64_t)e->hdr[6] << 8 | e->hdr[7];
    }
    for (; i < got; i++, e->rx_done++)
        if (e->rx_done >= e->rx_len || buf[i] != ep_pat(e->rx_seed, e->rx_done))
            e->bad = true;
}

/* Reads the stream into the pipe (the engine's clock is current: from a callback or after
 * simctx_node_enter). */
static void reader_pump(struct reader *r)
{
    struct ep *e = &r->ep;
    static uint8_t buf[65536];
    while (!e->rx_eof && !e->errored && r->pipe_fill < r->pipe_cap) {
        size_t want = r->pipe_cap - r->pipe_fill;
        sst_ssize_t got = sst_stream_read(e->s, buf, want < sizeof buf ? want : sizeof buf);
        if (got == 0) {
            e->rx_eof = true;
            if (e->hdr_got < 8 || e->rx_done != e->rx_len)
                e->bad = true;
        } else if (got < 0) {
            if (got != SST_ERR_AGAIN) {
                e->errored = true;
                e->err = (int)got;
            }
            return;
        } else {
            reader_verify(e, buf, (size_t)got);
            r->pipe_fill += (size_t)got;
        }
    }
}

static void reader_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct reader *r = arg;
    if (ev & SST_EV_ERROR) {
        r->ep.errored = true;
        r->ep.err = sst_stream_error(s);
        return;
    }
    if (ev & (SST_EV_READABLE | SST_EV_EOF))
        reader_pump(r);
}

static void reader_tick(void *arg, sst_time_t now)
{
    struct reader *r = arg;
    if (!r->n->frozen) {
        bool was_full = r->pipe_fill >= r->pipe_cap;
        r->pipe_fill -= r->pipe_fill < r->chunk ? r->pipe_fill : r->chunk;
        if (was_full && r->pipe_fill < r->pipe_cap) {   /* the pump's on_fd_writable */
            simctx_node_enter(r->n);
            reader_pump(r);
            simctx_node_leave(r->n);
        }
    }
    if (!r->ep.rx_eof && !r->ep.errored)
        ck_assert_int_eq(sim_at(r->sim, now + r->tick, reader_tick, r), 0);
}

struct freeze_case {
    sst_time_t at;        /* freeze this long after the request */
    bool timers_first;    /* on thaw: overdue timers before the queued datagrams */
    uint64_t seed;
    bool fast_reader;     /* reads everything every ms (curl to a file), else 10 MB/s */
    size_t cap;           /* the frozen node's receive-buffer bound, bytes */
    uint64_t rate_bps;
    double loss;          /* random loss both ways (the seed then matters) */
    sst_time_t quantum;   /* both nodes batch like the UDP driver (simctx quantum); 0 = off */
};

/* Freeze moments cover the slow start, the window-limited steady state and late in the
 * transfer; both thaw orders; several seeds; a slow and a fast reader; a default-sized and a
 * forced 4 MiB (about 2 MB of datagrams) socket buffer. */
static const struct freeze_case cases[] = {
    { SST_MS(300), true, 1, false, 200000, 200000000, 0, 0 },
    { SST_MS(300), false, 2, false, 200000, 200000000, 0, 0 },
    { SST_MS(1200), true, 3, false, 200000, 200000000, 0, 0 },
    { SST_MS(1200), false, 4, false, 200000, 200000000, 0, 0 },
    { SST_MS(2500), true, 5, false, 2000000, 200000000, 0, 0 },
    { SST_MS(2500), false, 6, false, 2000000, 200000000, 0, 0 },
    { SST_MS(300), true, 7, true, 200000, 200000000, 0, 0 },
    { SST_MS(300), false, 8, true, 200000, 200000000, 0, 0 },
    { SST_MS(300), true, 9, true, 2000000, 200000000, 0, 0 },
    { SST_MS(300), false, 10, true, 2000000, 200000000, 0, 0 },
    { SST_MS(700), true, 11, true, 2000000, 500000000, 0, 0 },
    { SST_MS(700), false, 12, true, 2000000, 500000000, 0, 0 },
    { SST_MS(500), true, 13, true, 200000, 500000000, 0, 0 },
    { SST_MS(500), false, 14, true, 200000, 500000000, 0, 0 },
    { SST_MS(150), true, 15, true, 2000000, 1000000000, 0, 0 },
    { SST_MS(150), false, 16, true, 200000, 1000000000, 0, 0 },
    { SST_MS(4000), true, 17, false, 200000, 200000000, 0, 0 },
    { SST_MS(4000), false, 18, false, 2000000, 200000000, 0, 0 },
    { SST_MS(300), true, 19, true, 200000, 200000000, 0.001, 0 },
    { SST_MS(300), false, 20, true, 2000000, 200000000, 0.001, 0 },
    { SST_MS(800), true, 21, false, 200000, 200000000, 0.002, 0 },
    { SST_MS(800), false, 22, true, 200000, 500000000, 0.002, 0 },
    { SST_MS(300), true, 23, true, 200000, 200000000, 0, SST_MS(1) },
    { SST_MS(300), false, 24, true, 2000000, 200000000, 0, SST_MS(1) },
    { SST_MS(600), true, 25, false, 200000, 200000000, 0.001, SST_MS(1) },
    { SST_MS(600), false, 26, true, 200000, 500000000, 0.001, SST_MS(1) },
    { SST_MS(450), true, 27, true, 200000, 1000000000, 0.0005, SST_MS(1) },
    { SST_MS(450), false, 28, true, 2000000, 1000000000, 0.0005, SST_MS(1) },
};

static bool not_done(void *arg)
{
    struct reader *r = arg;
    return !r->ep.rx_eof && !r->ep.errored;
}

START_TEST(test_freeze_receiver_mid_download)
{
    struct freeze_case rc_case;
    const struct freeze_case *fc = &cases[0];
    if ((size_t)_i < SST_ARRAY_LEN(cases)) {
        fc = &cases[_i];
    } else {
        /* SST_FREEZE_SWEEP=N: N more cases drawn at random (seeded by the index). */
        struct sim_rng g;
        sim_rng_init(&g, (uint64_t)_i, "freeze-sweep", 0);
        static const uint64_t rates[] = { 100000000, 200000000, 500000000, 1000000000 };
        static const size_t caps[] = { 100000, 200000, 2000000 };
        rc_case = (struct freeze_case){
            .at = SST_MS(100) + sim_rng_below(&g, SST_MS(1500)),
            .timers_first = sim_rng_chance(&g, 0.5),
            .seed = 1000 + (uint64_t)_i,
            .fast_reader = sim_rng_chance(&g, 0.6),
            .cap = caps[sim_rng_below(&g, 3)],
            .rate_bps = rates[sim_rng_below(&g, 4)],
            .loss = sim_rng_chance(&g, 0.5) ? 0.002 * sim_rng_unit(&g) : 0,
            .quantum = sim_rng_chance(&g, 0.5) ? SST_MS(1) : 0,
        };
        fc = &rc_case;
    }
    struct sim *s = new_sim(fc->seed);
    /* 10 ms RTT, 200 Mbit/s: the link outruns the 10 MB/s reader. */
    struct sim_link_params lp = { .rate_bps = fc->rate_bps, .delay = SST_MS(5), .queue_bytes = 500000,
                                  .loss = fc->loss };
    static struct simctx_node a, b;
    struct sst_addr aa = sim_addr4(1, 4000), ba = sim_addr4(2, 4000);
    simctx_node_init(&a, s, &aa, "freeze-node", 1, NULL);
    simctx_node_init(&b, s, &ba, "freeze-node", 2, NULL);
    a.quantum = b.quantum = fc->quantum;
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    sv.payload = 50u << 20;
    ck_assert_ptr_nonnull(sst_listen(b.c, "dl", srv_accept, &sv));
    static struct reader r;
    memset(&r, 0, sizeof r);
    r.sim = s;
    r.n = &a;
    r.chunk = fc->fast_reader ? 1u << 20 : 100000;
    r.tick = fc->fast_reader ? SST_MS(1) : SST_MS(10);
    r.pipe_cap = 212992;
    simctx_node_enter(&a);
    r.ep.s = sst_connect(a.c, &b.addr, "dl", reader_cb, &r);
    ck_assert_ptr_nonnull(r.ep.s);
    simctx_node_leave(&a);
    ck_assert_int_eq(sim_at(s, SST_MS(1), reader_tick, &r), 0);
    sim_run_until(s, fc->at);
    ck_assert(!r.ep.errored && !sv.ep.errored);
    ck_assert_uint_gt(r.ep.rx_done, 0);
    if (r.ep.rx_done >= sv.payload || r.ep.rx_eof) {
        printf("freeze case %d: the transfer ended before the freeze\n", _i);
        ck_assert((size_t)_i >= SST_ARRAY_LEN(cases));   /* a drawn case: nothing to test */
        return;
    }
    uint64_t before = r.ep.rx_done;
    simctx_node_freeze(&a, fc->cap);
    sim_run_until(s, sim_now(s) + SST_SEC(30));
    simctx_node_thaw(&a, fc->timers_first);
    sst_time_t thawed = sim_now(s);
    int rc = sim_run_while(s, not_done, &r, thawed + SST_SEC(60));
    struct sst_stream_stats ss, cs;
    sst_stream_get_stats(sv.ep.s, &ss);
    sst_stream_get_stats(r.ep.s, &cs);
    struct sst_ctx_stats sa, sb;
    sst_ctx_get_stats(a.c, &sa);
    sst_ctx_get_stats(b.c, &sb);
    printf("freeze case %d (at %.1f s, %s first, seed %llu): rc %d, read %llu/%llu (%llu before), "
           "%.2f s after thaw; queued-drop %llu; server inflight %llu credit %llu written %llu "
           "acked %llu attached %d; client buffered %llu attached %d; migrations a=%llu b=%llu\n",
           _i, (double)fc->at / 1e9, fc->timers_first ? "timers" : "datagrams",
           (unsigned long long)fc->seed, rc, (unsigned long long)r.ep.rx_done,
           (unsigned long long)sv.payload, (unsigned long long)before,
           (double)(sim_now(s) - thawed) / 1e9, (unsigned long long)a.frozen_drops,
           (unsigned long long)ss.tx_inflight, (unsigned long long)ss.tx_credit,
           (unsigned long long)ss.bytes_written, (unsigned long long)ss.bytes_acked, ss.attached,
           (unsigned long long)cs.rx_buffered, cs.attached, (unsigned long long)sa.migrations,
           (unsigned long long)sb.migrations);
    ck_assert_msg(!r.ep.errored, "client stream failed: %d", r.ep.err);
    ck_assert_msg(!sv.ep.errored, "server stream failed: %d", sv.ep.err);
    ck_assert_int_eq(rc, 0);
    ck_assert(!r.ep.bad);
    ck_assert(r.ep.rx_eof);
    ck_assert_uint_eq(r.ep.rx_done, sv.payload);
    /* Reconnecting backs off to at most 4 s plus a handshake; what is left of 50 MB at the
     * reader's 10 MB/s takes at most 5 s more. */
    ck_assert_uint_lt(sim_now(s) - thawed, SST_SEC(12));
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *su = suite_create("stream_freeze");
    TCase *tc = tcase_create("freeze");
    tcase_set_timeout(tc, 120);
    const char *sweep = getenv("SST_FREEZE_SWEEP");
    int n = (int)SST_ARRAY_LEN(cases) + (sweep != NULL ? atoi(sweep) : 0);
    tcase_add_loop_test(tc, test_freeze_receiver_mid_download, 0, n);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
