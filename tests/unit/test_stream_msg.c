/* Tests of record boundaries (paper §2.3, Mark flag): the send side cuts segments at
 * boundaries, the receive side surfaces them through sst_stream_read_msg, and through a lossy,
 * reordering, duplicating link every message arrives with its boundaries exact. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "simctx.h"
#include "sst.h"
#include "stream_rx.h"
#include "stream_tx.h"

/* ---- glue: one sst_ctx per simulator node (tests/sim/simctx.h) --------------------------- */

static void node_init(struct simctx_node *n, struct sim *s, uint8_t id)
{
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    cfg.rx_buffer = 64 * 1024;   /* small windows: flow control and marks interact */
    cfg.tx_buffer = 64 * 1024;
    struct sst_addr a = sim_addr4(id, 4000);
    simctx_node_init(n, s, &a, "msg-node", id, &cfg);
}

/* ---- unit level: segments and reassembly --------------------------------------------- */

static void tx_put(struct sst_tx *tx, const char *str)
{
    size_t n = strlen(str);
    ck_assert_uint_eq(sst_tx_write(tx, (const uint8_t *)str, n), n);
}

/* Bytes "abc" | "defgh" | "" | then "ij" with no boundary and the Close: each segment ends at
 * a boundary (its Mark flag), a zero-length message is a Mark-only segment, and a segment
 * too small for a message is cut before the boundary. */
START_TEST(test_msg_segments_end_at_marks)
{
    struct sst_tx tx;
    ck_assert_int_eq(sst_tx_init(&tx, 1000), 0);
    tx_put(&tx, "abc");
    ck_assert_int_eq(sst_tx_mark(&tx), 0);
    tx_put(&tx, "defgh");
    ck_assert_int_eq(sst_tx_mark(&tx), 0);
    ck_assert_int_eq(sst_tx_mark(&tx), 0);
    tx_put(&tx, "ij");
    sst_tx_close(&tx);
    struct { uint64_t off; size_t len; bool mark, fin; } want[] = {
        { 0, 2, false, false },   /* max_len 2: cut inside "abc", no boundary yet */
        { 2, 1, true, false },    /* "c" + boundary at 3 */
        { 4, 5, true, false },    /* "defgh" + boundary at 9 */
        { 10, 0, true, false },   /* the zero-length message: boundary at 10 */
        { 11, 2, false, true },   /* "ij" and the Close */
    };
    struct sst_seg segs[5];
    for (unsigned i = 0; i < 5; i++) {
        ck_assert(sst_tx_next(&tx, i == 0 ? 2 : 100, UINT64_MAX, &segs[i]));
        ck_assert_uint_eq(segs[i].off, want[i].off);
        ck_assert_uint_eq(segs[i].len, want[i].len);
        ck_assert(segs[i].mark == want[i].mark);
        ck_assert(segs[i].fin == want[i].fin);
        sst_tx_commit(&tx, &segs[i]);
    }
    ck_assert(!sst_tx_pending(&tx));
    /* Lose the "defgh" segment and re-cut it smaller: the boundary stays on its last piece. */
    sst_tx_lost(&tx, 4, 6);
    struct sst_seg r1, r2;
    ck_assert(sst_tx_next(&tx, 3, UINT64_MAX, &r1));
    ck_assert(r1.off == 4 && r1.len == 3 && !r1.mark && r1.retx);
    sst_tx_commit(&tx, &r1);
    ck_assert(sst_tx_next(&tx, 3, UINT64_MAX, &r2));
    ck_assert(r2.off == 7 && r2.len == 2 && r2.mark);
    sst_tx_commit(&tx, &r2);

    /* The receiver gets them in reverse order, one twice. */
    struct sst_rx rx;
    ck_assert_int_eq(sst_rx_init(&rx, 1000), 0);
    uint8_t pay[16];
    size_t fresh;
    const struct sst_seg *in[] = { &segs[4], &segs[3], &r2, &r1, &segs[1], &segs[3], &segs[0] };
    size_t units = 0;
    for (unsigned i = 0; i < SST_ARRAY_LEN(in); i++) {
        sst_tx_copy(&tx, in[i]->off, pay, in[i]->len);
        ck_assert_int_eq(sst_rx_insert_seg(&rx, in[i]->off, pay, in[i]->len, in[i]->mark, in[i]->fin,
                                           &fresh), 0);
        units += fresh;
    }
    ck_assert_uint_eq(units, 13);   /* 10 bytes + 3 boundaries, duplicates not counted */
    char out[16];
    bool end;
    ck_assert_uint_eq(sst_rx_read_msg(&rx, (uint8_t *)out, 2, &end), 2);
    ck_assert(!end && memcmp(out, "ab", 2) == 0);
    ck_assert_uint_eq(sst_rx_read_msg(&rx, (uint8_t *)out, 16, &end), 1);
    ck_assert(end && out[0] == 'c');
    ck_assert_uint_eq(sst_rx_read_msg(&rx, (uint8_t *)out, 16, &end), 5);
    ck_assert(end && memcmp(out, "defgh", 5) == 0);
    ck_assert_uint_eq(sst_rx_read_msg(&rx, (uint8_t *)out, 16, &end), 0);
    ck_assert(end);                                  /* the zero-length message */
    ck_assert_uint_eq(sst_rx_read_msg(&rx, (uint8_t *)out, 16, &end), 2);
    ck_assert(!end && memcmp(out, "ij", 2) == 0);   /* no boundary before the Close */
    ck_assert(sst_rx_eof(&rx));
    sst_rx_free(&rx);

    /* A plain read passes over every boundary and still reaches the end of stream. */
    ck_assert_int_eq(sst_rx_init(&rx, 1000), 0);
    for (unsigned i = 0; i < SST_ARRAY_LEN(in); i++) {
        sst_tx_copy(&tx, in[i]->off, pay, in[i]->len);
        ck_assert_int_eq(sst_rx_insert_seg(&rx, in[i]->off, pay, in[i]->len, in[i]->mark, in[i]->fin,
                                           &fresh), 0);
    }
    ck_assert_uint_eq(sst_rx_read(&rx, (uint8_t *)out, 16), 10);
    ck_assert(memcmp(out, "abcdefghij", 10) == 0);
    ck_assert(sst_rx_eof(&rx));
    sst_rx_free(&rx);

    /* Acknowledging everything frees the boundaries' bookkeeping. */
    sst_tx_acked(&tx, 0, 14);
    ck_assert(sst_tx_done(&tx));
    ck_assert_ptr_nonnull(tx.st);
    ck_assert_uint_eq(tx.st->nmarks, 0);
    sst_tx_compact(&tx);
    ck_assert_ptr_null(tx.st);                       /* ring, ranges and marks all given back */
    sst_tx_free(&tx);
}
END_TEST

/* ---- simulator: random messages through a bad link ---------------------------------------- */

static uint8_t pat(uint32_t seed, uint64_t i)
{
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 17);
    x ^= x >> 29;
    return (uint8_t)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

#define MAX_OPS 600

/* What one side writes: a list of operations, each len pattern bytes then (if msg) a
 * boundary.  Plain writes may be taken in part; messages go whole (sst_stream_write_msg). */
struct op {
    uint32_t len;
    bool msg;
};

struct side {
    struct simctx_node *n;
    struct sst_stream *s;
    uint32_t seed;
    struct op ops[MAX_OPS];
    unsigned nops, op;
    uint32_t op_done;            /* bytes of a plain op written so far */
    uint64_t tx_bytes;           /* pattern index of the next byte */
    bool shut;
    /* receive side: what the peer's ops imply */
    const struct side *peer;
    struct sim_rng rng;          /* read sizes */
    bool plain_reader;           /* read with sst_stream_read (boundaries invisible) */
    uint64_t rx_bytes;
    uint32_t cur;                /* bytes of the current message so far */
    unsigned msgs;               /* complete messages received */
    unsigned expect_idx;         /* the peer's op index the current message ends at */
    bool eof, errored, bad;
    char why[160];
};

static void side_fail(struct side *sd, const char *why)
{
    if (!sd->bad)
        snprintf(sd->why, sizeof sd->why, "%s (msg %u, cur %u)", why, sd->msgs, sd->cur);
    sd->bad = true;
}

static void side_pump(struct side *sd)
{
    static uint8_t buf[4 * 1500];
    while (sd->op < sd->nops) {
        const struct op *o = &sd->ops[sd->op];
        uint32_t left = o->len - sd->op_done;
        for (uint32_t i = 0; i < left; i++)
            buf[i] = pat(sd->seed, sd->tx_bytes + i);
        if (o->msg && sd->op_done == 0) {
            sst_ssize_t w = sst_stream_write_msg(sd->s, buf, o->len);
            if (w == SST_ERR_AGAIN)
                return;
            ck_assert_int_eq(w, (sst_ssize_t)o->len);
        } else if (o->msg) {
            /* unreachable: messages are written whole */
            ck_abort();
        } else {
            sst_ssize_t w = left > 0 ? sst_stream_write(sd->s, buf, left) : 0;
            if (w == SST_ERR_AGAIN)
                return;
            ck_assert_int_ge(w, 0);
            sd->op_done += (uint32_t)w;
            sd->tx_bytes += (uint64_t)w;
            if (sd->op_done < o->len)
                return;
            sd->op_done = 0;
            sd->op++;
            continue;
        }
        sd->tx_bytes += o->len;
        sd->op++;
    }
    if (!sd->shut) {
        sd->shut = true;
        ck_assert_int_eq(sst_stream_shutdown(sd->s, SST_SHUT_WRITE), 0);
    }
}

/* The length of the peer's next message starting at op index *i (advanced past it), and
 * whether it ends in a boundary (false: the bytes run to the end of stream). */
static uint32_t next_expected(const struct side *peer, unsigned *i, bool *marked)
{
    uint32_t len = 0;
    *marked = false;
    while (*i < peer->nops) {
        const struct op *o = &peer->ops[(*i)++];
        len += o->len;
        if (o->msg) {
            *marked = true;
            break;
        }
    }
    return len;
}

static void side_read(struct side *sd)
{
    static uint8_t buf[8192];
    for (;;) {
        size_t want = 1 + (size_t)sim_rng_below(&sd->rng, sizeof buf);
        bool end = false;
        sst_ssize_t n = sd->plain_reader ? sst_stream_read(sd->s, buf, want)
                                         : sst_stream_read_msg(sd->s, buf, want, &end);
        if (n < 0)
            return;
        if (n == 0 && !end) {
            sd->eof = true;
            /* Whatever followed the last boundary arrives without one. */
            unsigned i = sd->expect_idx;
            bool marked;
            uint32_t tail = next_expected(sd->peer, &i, &marked);
            if (sd->plain_reader) {
                if (sd->rx_bytes != sd->peer->tx_bytes)
                    side_fail(sd, "plain reader: byte count");
            } else if (marked || tail != sd->cur || i != sd->peer->nops) {
                side_fail(sd, "end of stream: trailing bytes or missing messages");
            }
            return;
        }
        for (sst_ssize_t k = 0; k < n; k++)
            if (buf[k] != pat(sd->peer->seed, sd->rx_bytes + (uint64_t)k))
                side_fail(sd, "content");
        sd->rx_bytes += (uint64_t)n;
        sd->cur += (uint32_t)n;
        if (!sd->plain_reader && (size_t)n > want)
            side_fail(sd, "read past the buffer");
        if (end) {
            bool marked;
            uint32_t len = next_expected(sd->peer, &sd->expect_idx, &marked);
            if (!marked || len != sd->cur)
                side_fail(sd, "boundary in the wrong place");
            sd->msgs++;
            sd->cur = 0;
        }
    }
}

static void side_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct side *sd = arg;
    (void)s;
    if (ev & SST_EV_ERROR) {
        sd->errored = true;
        return;
    }
    if (ev & SST_EV_READABLE)
        side_read(sd);
    if (ev & (SST_EV_WRITABLE | SST_EV_CONNECTED))
        side_pump(sd);
}

static void srv_accept(struct sst_listener *l, void *arg)
{
    struct side *sd = arg;
    if (sd->s != NULL)
        return;
    sd->s = sst_accept(l, side_cb, sd);
    if (sd->s != NULL) {
        side_pump(sd);
        side_read(sd);
    }
}

/* Random operations: lengths 0..3 MTU (0..3600), about one in `plain_every` a plain write. */
static void make_ops(struct side *sd, uint64_t seed, unsigned n, unsigned plain_every)
{
    struct sim_rng r;
    sim_rng_init(&r, seed, "msg-ops", sd->seed);
    sd->nops = n;
    for (unsigned i = 0; i < n; i++) {
        uint64_t pick = sim_rng_below(&r, 8);
        uint32_t len;
        if (pick == 0)
            len = 0;                                        /* zero-length */
        else if (pick == 1)
            len = 1 + (uint32_t)sim_rng_below(&r, 8);       /* tiny */
        else
            len = (uint32_t)sim_rng_below(&r, 3601);
        sd->ops[i].len = len;
        sd->ops[i].msg = plain_every == 0 || sim_rng_below(&r, plain_every) != 0;
    }
}

struct both {
    struct side *a, *b;
};

static bool both_busy(void *arg)
{
    struct both *p = arg;
    if (p->a->errored || p->b->errored || p->a->bad || p->b->bad)
        return false;
    return !(p->a->eof && p->b->eof);
}

static void msg_scenario(uint64_t seed, const struct sim_link_params *lp, unsigned plain_every,
                         bool b_plain_reader)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = seed;
    struct sim *s = sim_new(&sc);
    ck_assert_ptr_nonnull(s);
    struct simctx_node na, nb;
    node_init(&na, s, 1);
    node_init(&nb, s, 2);
    ck_assert_int_eq(sim_path(s, &na.addr, &nb.addr, lp, NULL, NULL, NULL), 0);
    static struct side a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.n = &na;
    b.n = &nb;
    a.seed = 101;
    b.seed = 202;
    a.peer = &b;
    b.peer = &a;
    b.plain_reader = b_plain_reader;
    sim_rng_init(&a.rng, seed, "msg-read", 1);
    sim_rng_init(&b.rng, seed, "msg-read", 2);
    make_ops(&a, seed, MAX_OPS, plain_every);
    make_ops(&b, seed, MAX_OPS / 2, plain_every);
    ck_assert_ptr_nonnull(sst_listen(nb.c, "msg", srv_accept, &b));
    a.s = sst_connect(na.c, &nb.addr, "msg", side_cb, &a);
    ck_assert_ptr_nonnull(a.s);
    side_pump(&a);
    struct both p = { &a, &b };
    int rc = sim_run_while(s, both_busy, &p, SST_SEC(120));
    ck_assert_msg(!a.bad && !b.bad, "seed %llu: a: %s; b: %s", (unsigned long long)seed, a.why, b.why);
    ck_assert_msg(rc == 0 && !a.errored && !b.errored, "seed %llu: rc %d errors %d %d",
                  (unsigned long long)seed, rc, a.errored, b.errored);
    ck_assert_uint_eq(a.rx_bytes, b.tx_bytes);
    ck_assert_uint_eq(b.rx_bytes, a.tx_bytes);
    unsigned marks_b = 0, marks_a = 0;
    for (unsigned i = 0; i < a.nops; i++)
        marks_a += a.ops[i].msg;
    for (unsigned i = 0; i < b.nops; i++)
        marks_b += b.ops[i].msg;
    ck_assert_uint_eq(a.msgs, marks_b);
    if (!b_plain_reader)
        ck_assert_uint_eq(b.msgs, marks_a);
    struct sim_link_stats ls;
    (void)ls;
    printf("messages seed %llu: %u + %u messages, %llu + %llu bytes, done at %.2f s\n",
           (unsigned long long)seed, marks_a, marks_b, (unsigned long long)a.tx_bytes,
           (unsigned long long)b.tx_bytes, (double)sim_now(s) / 1e9);
    simctx_node_free(&na);
    simctx_node_free(&nb);
    sim_free(s);
}

START_TEST(test_msg_random_lossy)
{
    /* 5% loss, reordering, duplication: every message (0..3 MTU) with exact boundaries. */
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000,
                                  .loss = 0.05, .reorder = 0.05, .reorder_delay = SST_MS(5),
                                  .duplicate = 0.02 };
    for (uint64_t seed = 1; seed <= 3; seed++)
        msg_scenario(seed, &lp, 0, false);
}
END_TEST

START_TEST(test_msg_mixed_with_plain_writes)
{
    /* One op in three is a plain write: its bytes join the next message. */
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000,
                                  .loss = 0.02, .reorder = 0.05, .reorder_delay = SST_MS(5) };
    msg_scenario(11, &lp, 3, false);
}
END_TEST

START_TEST(test_msg_plain_reader_sees_only_bytes)
{
    /* sst_stream_read passes over boundaries: the byte stream is exact and reaches EOF. */
    struct sim_link_params lp = { .rate_bps = 20000000, .delay = SST_MS(10), .queue_bytes = 200000,
                                  .loss = 0.02 };
    msg_scenario(21, &lp, 4, true);
}
END_TEST

/* ---- API edge cases ------------------------------------------------------------------------ */

struct api_pair {
    struct sim *sim;
    struct simctx_node a, b;
    struct sst_stream *sa, *sb;
};

static void grab_accept(struct sst_listener *l, void *arg)
{
    struct api_pair *p = arg;
    if (p->sb == NULL)
        p->sb = sst_accept(l, NULL, NULL);
}

static bool no_server(void *arg)
{
    struct api_pair *p = arg;
    return p->sb == NULL;
}

static void api_open(struct api_pair *p)
{
    memset(p, 0, sizeof *p);
    p->sim = sim_new(NULL);
    ck_assert_ptr_nonnull(p->sim);
    node_init(&p->a, p->sim, 1);
    node_init(&p->b, p->sim, 2);
    struct sim_link_params lp = { .delay = SST_MS(5) };
    ck_assert_int_eq(sim_path(p->sim, &p->a.addr, &p->b.addr, &lp, NULL, NULL, NULL), 0);
    ck_assert_ptr_nonnull(sst_listen(p->b.c, "api", grab_accept, p));
    p->sa = sst_connect(p->a.c, &p->b.addr, "api", NULL, NULL);
    ck_assert_ptr_nonnull(p->sa);
    ck_assert_int_eq(sst_stream_write_msg(p->sa, "hello", 5), 5);
    ck_assert_int_eq(sim_run_while(p->sim, no_server, p, SST_SEC(5)), 0);
}

static void api_close(struct api_pair *p)
{
    simctx_node_free(&p->a);
    simctx_node_free(&p->b);
    sim_free(p->sim);
}

static void api_run(struct api_pair *p)
{
    sim_node_wake(p->sim, &p->a.addr);
    sim_run_until(p->sim, sim_now(p->sim) + SST_MS(200));
}

START_TEST(test_msg_api_edges)
{
    struct api_pair p;
    api_open(&p);
    char buf[64];
    bool end;
    sim_run_until(p.sim, sim_now(p.sim) + SST_MS(100));
    ck_assert_int_eq(sst_stream_read_msg(p.sb, buf, 0, &end), SST_ERR_INVAL);
    /* A message read with a short buffer comes in pieces; only the last ends it. */
    ck_assert_int_eq(sst_stream_read_msg(p.sb, buf, 3, &end), 3);
    ck_assert(!end && memcmp(buf, "hel", 3) == 0);
    ck_assert_int_eq(sst_stream_read_msg(p.sb, buf, 64, &end), 2);
    ck_assert(end && memcmp(buf, "lo", 2) == 0);
    ck_assert_int_eq(sst_stream_read_msg(p.sb, buf, 64, &end), SST_ERR_AGAIN);
    ck_assert(!end);

    /* Three zero-length messages, a plain write, a mark: five boundaries, in order. */
    sst_ctx_set_time(p.a.c, sim_now(p.sim));
    ck_assert_int_eq(sst_stream_write_msg(p.sa, NULL, 0), 0);
    ck_assert_int_eq(sst_stream_mark(p.sa), 0);
    ck_assert_int_eq(sst_stream_write_msg(p.sa, "", 0), 0);
    ck_assert_int_eq(sst_stream_write(p.sa, "xy", 2), 2);
    ck_assert_int_eq(sst_stream_write(p.sa, "z", 1), 1);
    ck_assert_int_eq(sst_stream_mark(p.sa), 0);
    ck_assert_int_eq(sst_stream_write_msg(p.sa, "last", 4), 4);
    api_run(&p);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(sst_stream_read_msg(p.sb, buf, 64, &end), 0);
        ck_assert(end);
    }
    ck_assert_int_eq(sst_stream_read_msg(p.sb, buf, 64, &end), 3);
    ck_assert(end && memcmp(buf, "xyz", 3) == 0);
    ck_assert_int_eq(sst_stream_read_msg(p.sb, buf, 64, &end), 4);
    ck_assert(end && memcmp(buf, "last", 4) == 0);
    struct sst_stream_stats st;
    sst_stream_get_stats(p.sa, &st);
    ck_assert_uint_eq(st.bytes_written, 5 + 3 + 4);   /* boundaries are not bytes */

    /* All or nothing: a message larger than the send buffer is refused outright; one that
     * does not fit now is refused whole. */
    static uint8_t big[64 * 1024];
    sst_ctx_set_time(p.a.c, sim_now(p.sim));
    ck_assert_int_eq(sst_stream_write_msg(p.sa, big, sizeof big), SST_ERR_TOO_BIG);
    ck_assert_int_eq(sst_stream_write_msg(p.sa, big, sizeof big - 1), (sst_ssize_t)(sizeof big - 1));
    ck_assert_int_eq(sst_stream_write_msg(p.sa, big, 10), SST_ERR_AGAIN);
    ck_assert_int_eq(sst_stream_mark(p.sa), SST_ERR_AGAIN);
    api_run(&p);
    size_t got = 0;
    for (unsigned spins = 0; spins < 100;) {
        sst_ssize_t n = sst_stream_read_msg(p.sb, buf, sizeof buf, &end);
        if (n == SST_ERR_AGAIN) {
            api_run(&p);
            spins++;
            continue;
        }
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
        if (end)
            break;
    }
    ck_assert(end);
    ck_assert_uint_eq(got, sizeof big - 1);

    /* After shutdown(WRITE) no more boundaries. */
    sst_ctx_set_time(p.a.c, sim_now(p.sim));
    ck_assert_int_eq(sst_stream_shutdown(p.sa, SST_SHUT_WRITE), 0);
    ck_assert_int_eq(sst_stream_mark(p.sa), SST_ERR_CLOSED);
    ck_assert_int_eq(sst_stream_write_msg(p.sa, "x", 1), SST_ERR_CLOSED);
    api_close(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_msg");
    TCase *tc = tcase_create("msg");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_msg_segments_end_at_marks);
    tcase_add_test(tc, test_msg_random_lossy);
    tcase_add_test(tc, test_msg_mixed_with_plain_writes);
    tcase_add_test(tc, test_msg_plain_reader_sees_only_bytes);
    tcase_add_test(tc, test_msg_api_edges);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
