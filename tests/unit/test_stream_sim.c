/* Simulator tests of the stream layer (core/stream.c over real channels): service requests and
 * refusal, many concurrent streams through loss/reordering/duplication/corruption with every
 * byte verified, flow control with a stalled reader, datagrams on both paths, substreams and
 * priorities.  Each sst_ctx owns its host; a small glue binds it to a simulator node. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "negotiate.h"
#include "sim.h"
#include "sst.h"

/* ---- glue: one sst_ctx per simulator node ------------------------------------------------ */

struct node {
    struct sim *sim;
    struct sst_addr addr;
    struct sst_ctx *c;
    struct sim_rng rng;
};

static void node_send(void *ctx, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    struct node *n = ctx;
    (void)sim_send(n->sim, &n->addr, to, pkt, len);
}

static void node_random(void *ctx, void *buf, size_t len)
{
    struct node *n = ctx;
    sim_rng_bytes(&n->rng, buf, len);
}

static void node_recv(void *ctx, sst_time_t now, const struct sst_addr *from, uint8_t *pkt, size_t len)
{
    struct node *n = ctx;
    sst_ctx_recv(n->c, now, from, pkt, len);
}

static sst_time_t node_deadline(void *ctx)
{
    struct node *n = ctx;
    return sst_ctx_deadline(n->c);
}

static void node_timeout(void *ctx, sst_time_t now)
{
    struct node *n = ctx;
    sst_ctx_timeout(n->c, now);
}

static void node_init(struct node *n, struct sim *s, uint8_t id, const struct sst_ctx_config *cfg_in)
{
    memset(n, 0, sizeof *n);
    n->sim = s;
    n->addr = sim_addr4(id, 4000);
    sim_rng_init(&n->rng, sim_seed(s), "stream-node", id);
    struct sst_ctx_config cfg;
    if (cfg_in != NULL)
        cfg = *cfg_in;
    else
        sst_ctx_config_default(&cfg);
    sst_identity_generate(&cfg.host.identity, node_random, n);
    struct sst_host_io io = { .ctx = n, .send = node_send, .random = node_random };
    n->c = sst_ctx_new(&cfg, &io);
    ck_assert_ptr_nonnull(n->c);
    struct sim_node_ops ops = { .recv = node_recv, .deadline = node_deadline, .timeout = node_timeout };
    ck_assert_int_eq(sim_node_add(s, &n->addr, &ops, n), 0);
}

/* Call around application calls made from the test body (outside callbacks). */
static void node_enter(struct node *n)
{
    sst_ctx_set_time(n->c, sim_now(n->sim));
}

static void node_leave(struct node *n)
{
    sim_node_wake(n->sim, &n->addr);
}

static void node_free(struct node *n)
{
    sim_node_remove(n->sim, &n->addr);
    sst_ctx_free(n->c);
}

/* ---- endpoints: pattern writers and verifying readers ------------------------------------ */

static uint8_t pat(uint32_t seed, uint64_t i)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 17);
    x ^= x >> 29;
    return (uint8_t)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

/* Each stream starts with an 8-byte header (seed, length) so the reader can verify. */
struct ep {
    struct sst_stream *s;
    uint32_t tx_seed;
    uint64_t tx_len, tx_done;          /* header included */
    bool close_after;
    uint8_t hdr[8];
    size_t hdr_got;
    uint32_t rx_seed;
    uint64_t rx_len, rx_done;          /* payload bytes verified */
    bool rx_eof, connected, errored, bad;
    int err;
    bool reply;                         /* server: answer with a response once the request ends */
    bool stall;                         /* don't read */
    sst_time_t done_at;
    struct ep **registry;
};

static void ep_pump(struct ep *e)
{
    uint8_t buf[4096];
    while (e->tx_done < e->tx_len) {
        size_t n = 0;
        for (; n < sizeof buf && e->tx_done + n < e->tx_len; n++) {
            uint64_t i = e->tx_done + n;
            if (i < 4)
                buf[n] = (uint8_t)(e->tx_seed >> (24 - 8 * i));
            else if (i < 8)
                buf[n] = (uint8_t)((e->tx_len - 8) >> (24 - 8 * (i - 4)));
            else
                buf[n] = pat(e->tx_seed, i - 8);
        }
        sst_ssize_t w = sst_stream_write(e->s, buf, n);
        if (w <= 0)
            return;
        e->tx_done += (uint64_t)w;
    }
    if (e->close_after) {
        e->close_after = false;
        ck_assert_int_eq(sst_stream_shutdown(e->s, SST_SHUT_WRITE), 0);
    }
}

static void ep_start_tx(struct ep *e, uint32_t seed, uint64_t payload)
{
    e->tx_seed = seed;
    e->tx_len = payload + 8;
    e->tx_done = 0;
    e->close_after = true;
    ep_pump(e);
}

static void ep_read(struct ep *e)
{
    uint8_t buf[8192];
    for (;;) {
        sst_ssize_t n = sst_stream_read(e->s, buf, sizeof buf);
        if (n == 0) {
            e->rx_eof = true;
            if (e->hdr_got < 8 || e->rx_done != e->rx_len)
                e->bad = true;
            return;
        }
        if (n < 0)
            return;
        size_t i = 0;
        while (e->hdr_got < 8 && i < (size_t)n)
            e->hdr[e->hdr_got++] = buf[i++];
        if (e->hdr_got == 8 && i > 0 && e->rx_done == 0 && e->rx_len == 0) {
            e->rx_seed = (uint32_t)e->hdr[0] << 24 | (uint32_t)e->hdr[1] << 16 | (uint32_t)e->hdr[2] << 8 | e->hdr[3];
            e->rx_len = (uint64_t)e->hdr[4] << 24 | (uint64_t)e->hdr[5] << 16 | (uint64_t)e->hdr[6] << 8 | e->hdr[7];
        }
        for (; i < (size_t)n; i++, e->rx_done++)
            if (e->rx_done >= e->rx_len || buf[i] != pat(e->rx_seed, e->rx_done))
                e->bad = true;
    }
}

static void ep_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct ep *e = arg;
    if (ev & SST_EV_CONNECTED)
        e->connected = true;
    if (ev & SST_EV_ERROR) {
        e->errored = true;
        e->err = sst_stream_error(s);
        return;
    }
    if ((ev & SST_EV_READABLE) && !e->stall) {
        ep_read(e);
        if (e->rx_eof && e->reply && e->tx_len == 0)
            ep_start_tx(e, e->rx_seed ^ 0x5a5a5a5au, e->rx_len / 2 + 1);
    }
    if (ev & (SST_EV_WRITABLE | SST_EV_CONNECTED))
        ep_pump(e);
}

/* A server: every accepted stream gets an ep that verifies the request and answers it. */
struct server {
    struct sst_listener *l;
    struct ep eps[512];
    unsigned n;
};

static void server_accept(struct sst_listener *l, void *arg)
{
    struct server *sv = arg;
    struct sst_stream *s;
    while (sv->n < SST_ARRAY_LEN(sv->eps)) {
        struct ep *e = &sv->eps[sv->n];
        memset(e, 0, sizeof *e);
        e->reply = true;
        s = sst_accept(l, ep_cb, e);
        if (s == NULL)
            return;
        e->s = s;
        sv->n++;
    }
}

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

/* ---- tests ------------------------------------------------------------------------------- */

struct done_ctx {
    struct ep *eps;
    unsigned n;
};

static bool not_all_done(void *arg)
{
    struct done_ctx *d = arg;
    for (unsigned i = 0; i < d->n; i++) {
        struct ep *e = &d->eps[i];
        if (!e->errored && !(e->rx_eof && e->tx_done == e->tx_len))
            return true;
    }
    return false;
}

START_TEST(test_sim_request_response)
{
    struct sim *s = new_sim(11);
    struct sim_link_params lp = { .rate_bps = 10000000, .delay = SST_MS(10), .queue_bytes = 200000 };
    struct node a, b;
    node_init(&a, s, 1, NULL);
    node_init(&b, s, 2, NULL);
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    sv.l = sst_listen(b.c, "80", server_accept, &sv);
    ck_assert_ptr_nonnull(sv.l);
    ck_assert_ptr_null(sst_listen(b.c, "80", server_accept, &sv));   /* taken */

    struct ep e = { 0 };
    node_enter(&a);
    e.s = sst_connect(a.c, &b.addr, "80", ep_cb, &e);
    ck_assert_ptr_nonnull(e.s);
    ep_start_tx(&e, 1234, 100000);   /* written before the channel exists (paper §4.3.4) */
    node_leave(&a);
    struct done_ctx d = { &e, 1 };
    ck_assert_int_eq(sim_run_while(s, not_all_done, &d, SST_SEC(30)), 0);
    ck_assert(e.connected);
    ck_assert(!e.errored);
    ck_assert(!e.bad);
    ck_assert_uint_eq(sv.n, 1);
    ck_assert(!sv.eps[0].bad);
    ck_assert_uint_eq(sv.eps[0].rx_len, 100000);
    ck_assert_uint_eq(sv.eps[0].rx_done, 100000);
    ck_assert_uint_eq(e.rx_len, 50001);
    ck_assert_uint_eq(e.rx_done, 50001);
    fprintf(stderr, "rr: done at %.3f s\n", sim_now(s) / 1e9);
    /* 150 kB at 10 Mbit/s is ~120 ms of serialization plus a few 20 ms round trips. */
    ck_assert_uint_lt(sim_now(s), SST_MS(600));
    node_enter(&a);
    sst_stream_close(e.s);
    node_leave(&a);
    sst_stream_close(sv.eps[0].s);
    sim_run_until(s, sim_now(s) + SST_SEC(2));
    struct sst_ctx_stats st;
    sst_ctx_get_stats(a.c, &st);
    ck_assert_uint_eq(st.streams_live, 0);        /* both directions finished: state freed */
    sst_ctx_get_stats(b.c, &st);
    ck_assert_uint_eq(st.streams_live, 0);
    node_free(&a);
    node_free(&b);
    sim_free(s);
}
END_TEST

START_TEST(test_sim_refused_service)
{
    struct sim *s = new_sim(12);
    struct sim_link_params lp = { .delay = SST_MS(5) };
    struct node a, b;
    node_init(&a, s, 1, NULL);
    node_init(&b, s, 2, NULL);
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    sv.l = sst_listen(b.c, "22", server_accept, &sv);
    struct ep e = { 0 };
    node_enter(&a);
    e.s = sst_connect(a.c, &b.addr, "8080", ep_cb, &e);
    ep_start_tx(&e, 1, 1000);
    node_leave(&a);
    struct done_ctx d = { &e, 1 };
    ck_assert_int_eq(sim_run_while(s, not_all_done, &d, SST_SEC(10)), 0);
    ck_assert(e.errored);
    ck_assert_int_eq(e.err, SST_ERR_REFUSED);
    ck_assert(!e.connected);
    ck_assert_int_eq(sst_stream_read(e.s, (uint8_t[4]){ 0 }, 4), SST_ERR_REFUSED);
    ck_assert_int_eq(sst_stream_write(e.s, "x", 1), SST_ERR_REFUSED);
    ck_assert_uint_eq(sv.n, 0);
    struct sst_ctx_stats st;
    sst_ctx_get_stats(b.c, &st);
    ck_assert_uint_eq(st.refused, 1);
    node_enter(&a);
    sst_stream_close(e.s);
    node_leave(&a);
    node_free(&a);
    node_free(&b);
    sim_free(s);
}
END_TEST

START_TEST(test_sim_many_streams_hostile_link)
{
    /* 60 concurrent streams of random sizes (0..200 kB) through 2% loss, reordering,
     * duplication and corruption; every byte in both directions is verified. */
    struct sim *s = new_sim(13);
    struct sim_link_params lp = {
        .rate_bps = 20000000, .delay = SST_MS(15), .queue_bytes = 300000,
        .loss = 0.02, .reorder = 0.02, .reorder_delay = SST_MS(5),
        .duplicate = 0.01, .corrupt = 0.01, .jitter = SST_MS(1),
    };
    struct node a, b;
    node_init(&a, s, 1, NULL);
    node_init(&b, s, 2, NULL);
    ck_assert_int_eq(sim_path(s, &a.addr, &b.addr, &lp, NULL, NULL, NULL), 0);
    static struct server sv;
    memset(&sv, 0, sizeof sv);
    sv.l = sst_listen(b.c, "443", server_accept, &sv);
    enum { N = 60 };
    static struct ep e[N];
    memset(e, 0, sizeof e);
    struct sim_rng r;
    sim_rng_init(&r, 13, "sizes", 0);
    node_enter(&a);
    for (unsigned i = 0; i < N; i++) {
        e[i].s = sst_connect(a.c, &b.addr, "443", ep_cb, &e[i]);
        ck_assert_ptr_nonnull(e[i].s);
        ep_start_tx(&e[i], 1000 + i, sim_rng_below(&r, 200000));
    }
    node_leave(&a);
    struct done_ctx d = { e, N };
    int rc = sim_run_while(s, not_all_done, &d, SST_SEC(120));
    ck_assert_msg(rc == 0, "seed 13: not finished by %llu ns", (unsigned long long)sim_now(s));
    for (unsigned i = 0; i < N; i++) {
        ck_assert_msg(!e[i].errored, "stream %u error %d", i, e[i].err);
        ck_assert_msg(!e[i].bad, "stream %u corrupt", i);
        ck_assert_uint_eq(e[i].rx_done, e[i].rx_len);
    }
    fprintf(stderr, "many: done at %.3f s\n", sim_now(s) / 1e9);
    ck_assert_uint_eq(sv.n, N);
    for (unsigned i = 0; i < N; i++) {
        ck_assert(!sv.eps[i].bad);
        ck_assert(sv.eps[i].rx_eof);
        ck_assert_uint_eq(sv.eps[i].rx_done, sv.eps[i].rx_len);
    }
    node_free(&a);
    node_free(&b);
    sim_free(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("stream_sim");
    TCase *tc = tcase_create("sim");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sim_request_response);
    tcase_add_test(tc, test_sim_refused_service);
    tcase_add_test(tc, test_sim_many_streams_hostile_link);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
