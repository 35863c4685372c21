/* Tests for the network simulator (tests/sim): exact timing, queueing, every impairment and its
 * counter, determinism, bottleneck sharing, pool exhaustion and speed, using tiny test nodes. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "sim.h"
#include "wire.h"

/* ---- Test nodes ------------------------------------------------------------------------- */

/* Records every arrival; optionally echoes it back to the sender. */
struct rec {
    struct sim *sim;
    struct sst_addr addr;
    bool echo;
    size_t n, cap;
    sst_time_t *t;
    uint32_t *seq;          /* first 4 bytes of the payload */
    size_t *len;
    uint8_t (*head)[64];    /* first 64 bytes */
    struct sst_addr *from;
};

static void rec_recv(void *ctx, sst_time_t now, const struct sst_addr *from, uint8_t *pkt, size_t len)
{
    struct rec *r = ctx;
    /* The simulator promises SST_PROTECT_TAILROOM writable bytes past len (ASan checks it). */
    memset(pkt + len, 0xAB, 16);
    if (r->n < r->cap) {
        r->t[r->n] = now;
        r->seq[r->n] = len >= 4 ? sst_get32(pkt) : UINT32_MAX;
        r->len[r->n] = len;
        memset(r->head[r->n], 0, 64);
        memcpy(r->head[r->n], pkt, SST_MIN(len, (size_t)64));
        r->from[r->n] = *from;
        r->n++;
    }
    if (r->echo)
        sim_send(r->sim, &r->addr, from, pkt, len);
}

static const struct sim_node_ops rec_ops = { .recv = rec_recv };

static struct rec *rec_new(struct sim *s, struct sst_addr addr, size_t cap, bool echo)
{
    struct rec *r = calloc(1, sizeof *r);
    r->sim = s;
    r->addr = addr;
    r->echo = echo;
    r->cap = cap;
    r->t = calloc(cap, sizeof *r->t);
    r->seq = calloc(cap, sizeof *r->seq);
    r->len = calloc(cap, sizeof *r->len);
    r->head = calloc(cap, sizeof *r->head);
    r->from = calloc(cap, sizeof *r->from);
    ck_assert_int_eq(sim_node_add(s, &addr, &rec_ops, r), 0);
    return r;
}

static void rec_free(struct rec *r)
{
    free(r->t);
    free(r->seq);
    free(r->len);
    free(r->head);
    free(r->from);
    free(r);
}

/* Payload of packet `seq`: 4-byte sequence number, then a pattern derived from it. */
static void fill(uint8_t *buf, size_t len, uint32_t seq)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seq * 7u + i * 13u);
    if (len >= 4)
        sst_put32(buf, seq);
}

/* Sends `count` packets of `len` bytes, one every `interval`, from its deadline/timeout timer. */
struct pacer {
    struct sim *sim;
    struct sst_addr from, to;
    sst_time_t next, interval;
    uint32_t seq, count;
    size_t len;
    struct sim_rng *rng;    /* if set, each gap is uniform in [interval/2, 3*interval/2] */
    int last_rc;
    unsigned rejected;      /* sim_send returned an error */
};

static sst_time_t pacer_deadline(void *ctx)
{
    struct pacer *p = ctx;
    return p->seq < p->count ? p->next : SST_TIME_NEVER;
}

static void pacer_timeout(void *ctx, sst_time_t now)
{
    struct pacer *p = ctx;
    ck_assert_uint_eq(now, p->next);  /* the simulator calls us exactly at the deadline */
    uint8_t buf[2048];
    fill(buf, p->len, p->seq);
    p->last_rc = sim_send(p->sim, &p->from, &p->to, buf, p->len);
    if (p->last_rc != 0)
        p->rejected++;
    p->seq++;
    if (p->rng)
        p->next += p->interval / 2 + sim_rng_below(p->rng, p->interval + 1);
    else
        p->next += p->interval;
}

static const struct sim_node_ops pacer_ops = {
    .recv = NULL, .deadline = pacer_deadline, .timeout = pacer_timeout,
};

static struct pacer *pacer_new(struct sim *s, struct sst_addr from, struct sst_addr to,
                               sst_time_t start, sst_time_t interval, uint32_t count, size_t len)
{
    struct pacer *p = calloc(1, sizeof *p);
    *p = (struct pacer){ .sim = s, .from = from, .to = to, .next = start, .interval = interval,
                         .count = count, .len = len };
    ck_assert_int_eq(sim_node_add(s, &from, &pacer_ops, p), 0);
    return p;
}

static struct sim *sim_with_seed(uint64_t seed)
{
    struct sim_config c;
    sim_config_default(&c);
    c.seed = seed;
    c.hash_trace = true;
    struct sim *s = sim_new(&c);
    ck_assert_ptr_nonnull(s);
    return s;
}

static int send_seq(struct sim *s, struct sst_addr from, struct sst_addr to, uint32_t seq, size_t len)
{
    uint8_t buf[2048];
    fill(buf, len, seq);
    return sim_send(s, &from, &to, buf, len);
}

/* ---- Timing ------------------------------------------------------------------------------ */

START_TEST(test_sim_delay_exact)
{
    struct sim *s = sim_with_seed(1);
    struct sst_addr a = sim_addr4(1, 1000), b = sim_addr4(2, 2000);
    struct rec *ra = rec_new(s, a, 8, false), *rb = rec_new(s, b, 8, true);
    struct sim_link_params ab = { .delay = SST_MS(10) }, ba = { .delay = SST_MS(15) };
    ck_assert_int_eq(sim_path(s, &a, &b, &ab, &ba, NULL, NULL), 0);
    sim_run_until(s, SST_MS(3));
    ck_assert_int_eq(send_seq(s, a, b, 5, 100), 0);
    sim_run_until(s, SST_SEC(1));
    ck_assert_uint_eq(rb->n, 1);
    ck_assert_uint_eq(rb->t[0], SST_MS(13));
    ck_assert(sst_addr_eq(&rb->from[0], &a));
    ck_assert_uint_eq(ra->n, 1);
    ck_assert_uint_eq(ra->t[0], SST_MS(28));
    ck_assert_uint_eq(ra->seq[0], 5);
    ck_assert_uint_eq(sim_now(s), SST_SEC(1));
    rec_free(ra);
    rec_free(rb);
    sim_free(s);
}
END_TEST

START_TEST(test_sim_rate_serialization_exact)
{
    struct sim *s = sim_with_seed(1);
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2);
    struct rec *rb = rec_new(s, b, 8, false);
    struct sim_link_params p = { .rate_bps = 1000000, .delay = SST_MS(5) };
    ck_assert_int_eq(sim_path(s, &a, &b, &p, NULL, NULL, NULL), 0);
    /* 1000 bytes at 1 Mbit/s = 8 ms each, back to back. */
    for (uint32_t i = 0; i < 3; i++)
        ck_assert_int_eq(send_seq(s, a, b, i, 1000), 0);
    sim_run_until(s, SST_SEC(1));
    ck_assert_uint_eq(rb->n, 3);
    ck_assert_uint_eq(rb->t[0], SST_MS(13));
    ck_assert_uint_eq(rb->t[1], SST_MS(21));
    ck_assert_uint_eq(rb->t[2], SST_MS(29));
    /* An idle link starts serializing at once; odd sizes round up to the next nanosecond:
     * 1001 bytes at 3 Mbit/s = 8008 bits / 3e6 = 2669333.3 ns. */
    struct sim_link_params q = { .rate_bps = 3000000 };
    struct sim_link *l = sim_link_new(s, NULL);
    sim_link_set_params(l, &q);
    ck_assert_int_eq(sim_route(s, &a, &b, l), 0);
    ck_assert_int_eq(send_seq(s, a, b, 9, 1001), 0);
    sim_run_until(s, SST_SEC(2));
    ck_assert_uint_eq(rb->n, 4);
    ck_assert_uint_eq(rb->t[3], SST_SEC(1) + 2669334);
    rec_free(rb);
    sim_free(s);
}
END_TEST

START_TEST(test_sim_jitter_keeps_fifo_within_bounds)
{
    struct sim *s = sim_with_seed(7);
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2);
    struct rec *rb = rec_new(s, b, 2000, false);
    struct sim_link_params p = { .delay = SST_MS(20), .jitter = SST_MS(10) };
    ck_assert_int_eq(sim_path(s, &a, &b, &p, NULL, NULL, NULL), 0);
    struct pacer *pa = pacer_new(s, a, b, 0, SST_MS(1), 1000, 100);
    sim_run_until(s, SST_SEC(5));
    ck_assert_uint_eq(rb->n, 1000);
    unsigned delayed_extra = 0;
    for (size_t i = 0; i < rb->n; i++) {
        ck_assert_uint_eq(rb->seq[i], i);  /* FIFO: never reordered by jitter */
        sst_time_t sent = SST_MS(1) * i, owd = rb->t[i] - sent;
        ck_assert_uint_ge(owd, SST_MS(20));
        ck_assert_uint_le(owd, SST_MS(30));
        if (owd > SST_MS(20))
            delayed_extra++;
    }
    ck_assert_uint_gt(delayed_extra, 900);  /* jitter actually varies the delay */
    free(pa);
    rec_free(rb);
    sim_free(s);
}
END_TEST

/* ---- Queue --------------------------------------------------------------------------------- */

START_TEST(test_sim_queue_overflow_drops_tail)
{
    struct sim *s = sim_with_seed(1);
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2);
    struct rec *rb = rec_new(s, b, 64, false);
    struct sim_link *l;
    struct sim_link_params p = { .rate_bps = 1000000, .delay = SST_MS(1), .queue_bytes = 10000 };
    ck_assert_int_eq(sim_path(s, &a, &b, &p, NULL, &l, NULL), 0);
    /* 25 x 1000 bytes at once into a 10000-byte queue: the first 10 fit, the tail 15 drop. */
    int drops = 0;
    for (uint32_t i = 0; i < 25; i++)
        if (send_seq(s, a, b, i, 1000) == SST_ERR_AGAIN)
            drops++;
    ck_assert_int_eq(drops, 15);
    struct sim_link_stats st;
    sim_link_get_stats(l, &st);
    ck_assert_uint_eq(st.dropped_queue, 15);
    ck_assert_uint_eq(st.max_queue_bytes, 10000);
    /* After 40 ms five packets (8 ms each) have left the queue: exactly five more fit. */
    sim_run_until(s, SST_MS(40));
    drops = 0;
    for (uint32_t i = 100; i < 110; i++)
        if (send_seq(s, a, b, i, 1000) == SST_ERR_AGAIN)
            drops++;
    ck_assert_int_eq(drops, 5);
    sim_run_until(s, SST_SEC(1));
    sim_link_get_stats(l, &st);
    ck_assert_uint_eq(st.dropped_queue, 20);
    ck_assert_uint_eq(st.delivered, 15);
    ck_assert_uint_eq(rb->n, 15);
    for (size_t i = 0; i < 10; i++)
        ck_assert_uint_eq(rb->seq[i], i);  /* the head survived, the tail was dropped */
    for (size_t i = 10; i < 15; i++)
        ck_assert_uint_eq(rb->seq[i], 100 + i - 10);
    /* The second batch queued behind the first: 15 packets back to back from t=0. */
    ck_assert_uint_eq(rb->t[14], SST_MS(8) * 15 + SST_MS(1));
    rec_free(rb);
    sim_free(s);
}
END_TEST

/* ---- Loss ---------------------------------------------------------------------------------- */

/* Sends n packets a->b over a link with params p, 1 per ms; returns the recorder. */
static struct rec *run_flow(struct sim *s, const struct sim_link_params *p, uint32_t n, size_t len,
                            struct sim_link **l)
{
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2);
    struct rec *rb = rec_new(s, b, n * 2 + 16, false);
    ck_assert_int_eq(sim_path(s, &a, &b, p, NULL, l, NULL), 0);
    struct pacer *pa = pacer_new(s, a, b, 0, SST_MS(1), n, len);
    sim_run_until(s, SST_MS(n) + SST_SEC(10));
    ck_assert_uint_eq(pa->seq, n);
    free(pa);
    return rb;
}

START_TEST(test_sim_random_loss_rate)
{
    struct sim *s = sim_with_seed(1234);
    struct sim_link *l;
    struct sim_link_params p = { .delay = SST_MS(5), .loss = 0.1 };
    const uint32_t n = 20000;
    struct rec *rb = run_flow(s, &p, n, 64, &l);
    struct sim_link_stats st;
    sim_link_get_stats(l, &st);
    /* Binomial(20000, 0.1): mean 2000, sd 42.4; +-5 sd. */
    ck_assert_uint_ge(st.lost, 1788);
    ck_assert_uint_le(st.lost, 2212);
    ck_assert_uint_eq(st.lost + st.delivered, n);
    ck_assert_uint_eq(rb->n, st.delivered);
    ck_assert_uint_eq(st.lost_burst, 0);
    rec_free(rb);
    sim_free(s);
}
END_TEST

/* Mean length of runs of consecutive missing sequence numbers in a received log. */
static double mean_loss_run(const struct rec *r, uint32_t n, uint32_t *max_run)
{
    uint8_t *got = calloc(n, 1);
    for (size_t i = 0; i < r->n; i++)
        got[r->seq[i]] = 1;
    unsigned runs = 0, lost = 0, cur = 0;
    *max_run = 0;
    for (uint32_t i = 0; i <= n; i++) {
        if (i < n && !got[i]) {
            cur++;
            lost++;
            continue;
        }
        if (cur) {
            runs++;
            if (cur > *max_run)
                *max_run = cur;
        }
        cur = 0;
    }
    free(got);
    return runs ? (double)lost / runs : 0.0;
}

START_TEST(test_sim_burst_loss_produces_runs)
{
    const uint32_t n = 20000;
    /* Gilbert-Elliott: bad state 1/(1+20) of the time, mean sojourn 5 packets, all lost. */
    struct sim *s = sim_with_seed(99);
    struct sim_link *l;
    struct sim_link_params p = { .delay = SST_MS(1), .ge_p_good_bad = 0.01, .ge_p_bad_good = 0.2,
                                 .ge_loss_bad = 1.0 };
    struct rec *rb = run_flow(s, &p, n, 32, &l);
    struct sim_link_stats st;
    sim_link_get_stats(l, &st);
    ck_assert_uint_eq(st.lost, st.lost_burst);
    ck_assert_uint_eq(st.lost + rb->n, n);
    uint32_t max_run;
    double burst_mean = mean_loss_run(rb, n, &max_run);
    /* Expected loss ~4.8% (about 950 packets) in runs of mean length 5. */
    ck_assert_uint_gt(st.lost, 500);
    ck_assert_uint_lt(st.lost, 1500);
    ck_assert(burst_mean > 3.5 && burst_mean < 7.0);
    ck_assert_uint_ge(max_run, 15);

    /* Independent loss at the same average rate gives runs barely longer than one. */
    struct sim *s2 = sim_with_seed(99);
    struct sim_link *l2;
    struct sim_link_params q = { .delay = SST_MS(1), .loss = (double)st.lost / n };
    struct rec *rb2 = run_flow(s2, &q, n, 32, &l2);
    uint32_t max_run2;
    double random_mean = mean_loss_run(rb2, n, &max_run2);
    ck_assert(random_mean < 1.2);
    ck_assert_uint_lt(max_run2, max_run);
    rec_free(rb);
    rec_free(rb2);
    sim_free(s);
    sim_free(s2);
}
END_TEST

/* ---- Reordering, duplication, corruption ---------------------------------------------------- */

START_TEST(test_sim_reordering_happens_and_is_counted)
{
    const uint32_t n = 2000;
    struct sim *s = sim_with_seed(5);
    struct sim_link *l;
    struct sim_link_params p = { .delay = SST_MS(10), .reorder = 0.05, .reorder_delay = SST_MS(3) };
    struct rec *rb = run_flow(s, &p, n, 64, &l);
    struct sim_link_stats st;
    sim_link_get_stats(l, &st);
    ck_assert_uint_eq(rb->n, n);
    ck_assert_uint_gt(st.reordered, 50);
    ck_assert_uint_lt(st.reordered, 160);
    /* Each held-back packet arrives exactly reorder_delay late, after 3 later packets
     * (sent 1 ms apart), so it is seen out of order. */
    unsigned late = 0, overtaken = 0;
    uint32_t max_seen = 0;
    for (size_t i = 0; i < rb->n; i++) {
        sst_time_t owd = rb->t[i] - SST_MS(1) * rb->seq[i];
        if (owd == SST_MS(13))
            late++;
        else
            ck_assert_uint_eq(owd, SST_MS(10));
        if (i > 0 && rb->seq[i] < max_seen)
            overtaken++;
        max_seen = SST_MAX(max_seen, rb->seq[i]);
    }
    ck_assert_uint_eq(late, st.reordered);
    /* A held-back packet is overtaken unless its successors were held back too. */
    ck_assert_uint_le(overtaken, st.reordered);
    ck_assert_uint_ge(overtaken * 10, st.reordered * 9);
    rec_free(rb);
    sim_free(s);
}
END_TEST

START_TEST(test_sim_duplication_happens_and_is_counted)
{
    const uint32_t n = 2000;
    struct sim *s = sim_with_seed(6);
    struct sim_link *l;
    struct sim_link_params p = { .delay = SST_MS(2), .duplicate = 0.1 };
    struct rec *rb = run_flow(s, &p, n, 64, &l);
    struct sim_link_stats st;
    sim_link_get_stats(l, &st);
    ck_assert_uint_gt(st.duplicated, 140);
    ck_assert_uint_lt(st.duplicated, 260);
    ck_assert_uint_eq(rb->n, n + st.duplicated);
    ck_assert_uint_eq(st.delivered, n + st.duplicated);
    unsigned dups = 0;
    for (size_t i = 1; i < rb->n; i++) {
        if (rb->seq[i] == rb->seq[i - 1]) {
            dups++;
            ck_assert_uint_eq(rb->t[i], rb->t[i - 1]);
            ck_assert_mem_eq(rb->head[i], rb->head[i - 1], 64);
        }
    }
    ck_assert_uint_eq(dups, st.duplicated);
    rec_free(rb);
    sim_free(s);
}
END_TEST

static unsigned popcount8(uint8_t v)
{
    unsigned c = 0;
    for (; v; v &= (uint8_t)(v - 1))
        c++;
    return c;
}

START_TEST(test_sim_corruption_flips_bits_and_is_counted)
{
    const uint32_t n = 2000;
    struct sim *s = sim_with_seed(8);
    struct sim_link *l;
    struct sim_link_params p = { .delay = SST_MS(2), .corrupt = 0.05 };
    struct rec *rb = run_flow(s, &p, n, 64, &l);
    struct sim_link_stats st;
    sim_link_get_stats(l, &st);
    ck_assert_uint_eq(rb->n, n);
    ck_assert_uint_gt(st.corrupted, 50);
    ck_assert_uint_lt(st.corrupted, 160);
    /* No reordering here, so the i-th arrival is packet i; compare with what was sent. */
    unsigned bad = 0;
    for (size_t i = 0; i < rb->n; i++) {
        uint8_t want[64];
        fill(want, 64, (uint32_t)i);
        unsigned flipped = 0;
        for (size_t k = 0; k < 64; k++)
            flipped += popcount8(want[k] ^ rb->head[i][k]);
        ck_assert_uint_le(flipped, 3);
        if (flipped)
            bad++;
    }
    /* Two flips of the same bit cancel out, so a few corrupted packets may look intact. */
    ck_assert_uint_le(bad, st.corrupted);
    ck_assert_uint_ge(bad + 5, st.corrupted);
    rec_free(rb);
    sim_free(s);
}
END_TEST

/* ---- Determinism ---------------------------------------------------------------------------- */

struct scenario_result {
    uint64_t hash;
    struct sim_link_stats ab, ba;
    size_t nb;
    sst_time_t last;
};

/* Every impairment at once, echo traffic in both directions. */
static struct scenario_result run_scenario(uint64_t seed)
{
    struct sim *s = sim_with_seed(seed);
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2);
    struct rec *rb = rec_new(s, b, 4000, true);
    struct sim_link *lab, *lba;
    struct sim_link_params p = {
        .rate_bps = 2000000, .delay = SST_MS(20), .queue_bytes = 8000, .loss = 0.02,
        .ge_p_good_bad = 0.01, .ge_p_bad_good = 0.3, .ge_loss_bad = 0.7, .reorder = 0.03,
        .reorder_delay = SST_MS(4), .duplicate = 0.02, .corrupt = 0.02, .jitter = SST_MS(2),
    };
    ck_assert_int_eq(sim_path(s, &a, &b, &p, NULL, &lab, &lba), 0);
    /* b echoes back to the pacer at a, which ignores it; the trace hash still sees it. */
    struct pacer *pa = pacer_new(s, a, b, 0, SST_US(2500), 3000, 700);
    sim_run_until(s, SST_SEC(20));
    struct scenario_result r = { .hash = sim_trace_hash64(s), .nb = rb->n };
    sim_link_get_stats(lab, &r.ab);
    sim_link_get_stats(lba, &r.ba);
    r.last = rb->n ? rb->t[rb->n - 1] : 0;
    free(pa);
    rec_free(rb);
    sim_free(s);
    return r;
}

START_TEST(test_sim_same_seed_same_trace)
{
    struct scenario_result r1 = run_scenario(42), r2 = run_scenario(42), r3 = run_scenario(43);
    ck_assert_uint_ne(r1.hash, 0);
    ck_assert_uint_eq(r1.hash, r2.hash);
    ck_assert_mem_eq(&r1.ab, &r2.ab, sizeof r1.ab);
    ck_assert_mem_eq(&r1.ba, &r2.ba, sizeof r1.ba);
    ck_assert_uint_eq(r1.nb, r2.nb);
    ck_assert_uint_eq(r1.last, r2.last);
    ck_assert_uint_ne(r1.hash, r3.hash);
    /* Every impairment fired in the scenario, so the comparison covers all of them. */
    ck_assert_uint_gt(r1.ab.lost, 0);
    ck_assert_uint_gt(r1.ab.lost_burst, 0);
    ck_assert_uint_gt(r1.ab.dropped_queue, 0);
    ck_assert_uint_gt(r1.ab.reordered, 0);
    ck_assert_uint_gt(r1.ab.duplicated, 0);
    ck_assert_uint_gt(r1.ab.corrupted, 0);
    printf("test_sim: scenario seed 42 trace %016llx, seed 43 trace %016llx\n",
           (unsigned long long)r1.hash, (unsigned long long)r3.hash);
}
END_TEST

START_TEST(test_sim_rng_streams)
{
    struct sim_rng r1, r2, r3;
    sim_rng_init(&r1, 1, "x", 0);
    sim_rng_init(&r2, 1, "x", 0);
    sim_rng_init(&r3, 1, "x", 1);
    uint8_t b1[1500], b2[1500], b3[1500];
    sim_rng_bytes(&r1, b1, sizeof b1);  /* crosses several buffer refills */
    sim_rng_bytes(&r2, b2, sizeof b2);
    sim_rng_bytes(&r3, b3, sizeof b3);
    ck_assert_mem_eq(b1, b2, sizeof b1);
    ck_assert(memcmp(b1, b3, sizeof b1) != 0);
    /* Refilled blocks differ from the first one. */
    ck_assert(memcmp(b1, b1 + 512, 512) != 0);
    unsigned hist[10] = { 0 };
    for (int i = 0; i < 10000; i++) {
        uint64_t v = sim_rng_below(&r1, 10);
        ck_assert_uint_lt(v, 10);
        hist[v]++;
    }
    for (int i = 0; i < 10; i++)  /* mean 1000, sd 30 */
        ck_assert(hist[i] > 850 && hist[i] < 1150);
    ck_assert(!sim_rng_chance(&r1, 0.0));
    ck_assert(sim_rng_chance(&r1, 1.0));
}
END_TEST

/* ---- Bottleneck sharing ------------------------------------------------------------------- */

START_TEST(test_sim_two_flows_share_bottleneck)
{
    struct sim *s = sim_with_seed(11);
    struct sst_addr a1 = sim_addr4(1, 1), a2 = sim_addr4(2, 2);
    struct sst_addr b1 = sim_addr4(11, 1), b2 = sim_addr4(12, 2);
    struct rec *r1 = rec_new(s, b1, 4000, false), *r2 = rec_new(s, b2, 4000, false);
    struct sim_link_params p = { .rate_bps = 10000000, .delay = SST_MS(10), .queue_bytes = 30000 };
    struct sim_link *bn = sim_link_new(s, &p);
    ck_assert_int_eq(sim_route(s, &a1, &b1, bn), 0);
    ck_assert_int_eq(sim_route(s, &a2, &b2, bn), 0);
    /* Each flow offers 1000-byte packets every 0.5 ms on average = 16 Mbit/s into a 10 Mbit/s
     * link.  Gaps are randomized: strictly periodic senders lock into a phase where drop-tail
     * always drops the same flow (Floyd & Jacobson's phase effect), which is real but not what
     * this test is about. */
    struct sim_rng rng1, rng2;
    sim_rng_init(&rng1, 11, "pacer", 1);
    sim_rng_init(&rng2, 11, "pacer", 2);
    struct pacer *p1 = pacer_new(s, a1, b1, 0, SST_US(500), 2000, 1000);
    struct pacer *p2 = pacer_new(s, a2, b2, SST_US(250), SST_US(500), 2000, 1000);
    p1->rng = &rng1;
    p2->rng = &rng2;
    sim_run_until(s, SST_SEC(2));
    struct sim_link_stats st;
    sim_link_get_stats(bn, &st);
    ck_assert_uint_eq(st.delivered, r1->n + r2->n);
    ck_assert_uint_gt(st.dropped_queue, 0);
    /* Throughput over the busy second [0.2 s, 1.0 s): the link's rate, shared about evenly. */
    uint64_t bytes1 = 0, bytes2 = 0;
    sst_time_t t0 = SST_MS(200), t1 = SST_MS(1000);
    for (size_t i = 0; i < r1->n; i++)
        if (r1->t[i] >= t0 && r1->t[i] < t1)
            bytes1 += r1->len[i];
    for (size_t i = 0; i < r2->n; i++)
        if (r2->t[i] >= t0 && r2->t[i] < t1)
            bytes2 += r2->len[i];
    double mbps_total = (double)(bytes1 + bytes2) * 8 / 0.8 / 1e6;
    ck_assert(mbps_total > 9.98 && mbps_total <= 10.0 + 0.02);
    double share1 = (double)bytes1 / (double)(bytes1 + bytes2);
    printf("test_sim: bottleneck %.3f Mbit/s, flow 1 share %.3f\n", mbps_total, share1);
    ck_assert(share1 > 0.4 && share1 < 0.6);
    ck_assert_uint_le(st.max_queue_bytes, 30000);
    ck_assert_uint_ge(st.max_queue_bytes, 29000);
    free(p1);
    free(p2);
    rec_free(r1);
    rec_free(r2);
    sim_free(s);
}
END_TEST

/* ---- Pool, routing, nodes ------------------------------------------------------------------ */

START_TEST(test_sim_pool_exhaustion_counted)
{
    struct sim_config c;
    sim_config_default(&c);
    c.pool_packets = 16;
    struct sim *s = sim_new(&c);
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2);
    struct rec *rb = rec_new(s, b, 256, false);
    struct sim_link *l;
    struct sim_link_params p = { .delay = SST_MS(10) };
    ck_assert_int_eq(sim_path(s, &a, &b, &p, NULL, &l, NULL), 0);
    int nomem = 0;
    for (uint32_t i = 0; i < 100; i++)
        if (send_seq(s, a, b, i, 500) == SST_ERR_NOMEM)
            nomem++;
    ck_assert_int_eq(nomem, 84);
    struct sim_stats ss;
    sim_get_stats(s, &ss);
    ck_assert_uint_eq(ss.pool_drops, 84);
    ck_assert_uint_eq(ss.pool_in_use, 16);
    ck_assert_uint_eq(ss.pool_allocated, 16);
    sim_run_until(s, SST_MS(20));
    sim_get_stats(s, &ss);
    ck_assert_uint_eq(ss.pool_in_use, 0);
    ck_assert_uint_eq(ss.pool_high_water, 16);
    ck_assert_uint_eq(rb->n, 16);
    struct sim_link_stats st;
    sim_link_get_stats(l, &st);
    ck_assert_uint_eq(st.dropped_pool, 84);
    /* Buffers came back: sending works again without growing the pool. */
    ck_assert_int_eq(send_seq(s, a, b, 500, 500), 0);
    sim_run_until(s, SST_MS(40));
    ck_assert_uint_eq(rb->n, 17);
    sim_get_stats(s, &ss);
    ck_assert_uint_eq(ss.pool_allocated, 16);
    rec_free(rb);
    sim_free(s);
}
END_TEST

START_TEST(test_sim_no_route_no_node_too_big)
{
    struct sim *s = sim_with_seed(1);
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2), ghost = sim_addr4(9, 9);
    struct rec *rb = rec_new(s, b, 8, false);
    ck_assert_int_eq(send_seq(s, a, b, 1, 10), SST_ERR_NO_CHANNEL);
    struct sim_link *def = sim_link_new(s, &(struct sim_link_params){ .delay = SST_MS(1) });
    sim_route_default(s, def);
    ck_assert_int_eq(send_seq(s, a, b, 2, 10), 0);
    ck_assert_int_eq(send_seq(s, a, ghost, 3, 10), 0);
    uint8_t big[4096] = { 0 };
    ck_assert_int_eq(sim_send(s, &a, &b, big, sizeof big), SST_ERR_TOO_BIG);
    /* A node removed while a packet is in flight to it: counted, not delivered. */
    ck_assert_int_eq(send_seq(s, a, b, 4, 10), 0);
    sim_run_until(s, SST_US(500));
    sim_node_remove(s, &b);
    sim_run_until(s, SST_MS(5));
    struct sim_stats ss;
    sim_get_stats(s, &ss);
    ck_assert_uint_eq(ss.no_route, 1);
    ck_assert_uint_eq(ss.too_big, 1);
    ck_assert_uint_eq(ss.no_node, 3);  /* ghost, and two to the removed node */
    ck_assert_uint_eq(ss.delivered, 0);
    ck_assert_uint_eq(rb->n, 0);
    ck_assert_int_eq(sim_node_add(s, &b, &rec_ops, rb), 0);
    ck_assert_int_eq(sim_node_add(s, &b, &rec_ops, rb), SST_ERR_INVAL);
    rec_free(rb);
    sim_free(s);
}
END_TEST

/* A node whose deadline the test moves from outside, and one that never advances it. */
struct timer_node {
    sst_time_t deadline;
    unsigned fired;
    sst_time_t fired_at[8];
    bool stuck;
};

static sst_time_t tn_deadline(void *ctx) { return ((struct timer_node *)ctx)->deadline; }

static void tn_timeout(void *ctx, sst_time_t now)
{
    struct timer_node *t = ctx;
    if (t->fired < 8)
        t->fired_at[t->fired] = now;
    t->fired++;
    if (!t->stuck)
        t->deadline = SST_TIME_NEVER;
}

static const struct sim_node_ops tn_ops = { .deadline = tn_deadline, .timeout = tn_timeout };

static bool tn_not_fired(void *ctx) { return ((struct timer_node *)ctx)->fired == 0; }

START_TEST(test_sim_node_deadlines)
{
    struct sim *s = sim_with_seed(1);
    struct timer_node t = { .deadline = SST_MS(50) };
    struct sst_addr a = sim_addr4(1, 1);
    ck_assert_int_eq(sim_node_add(s, &a, &tn_ops, &t), 0);
    /* Moved earlier from outside between runs: the earlier time wins, the stale one is ignored. */
    t.deadline = SST_MS(30);
    ck_assert_int_eq(sim_run_while(s, tn_not_fired, &t, SST_SEC(1)), 0);
    ck_assert_uint_eq(t.fired, 1);
    ck_assert_uint_eq(t.fired_at[0], SST_MS(30));
    ck_assert_uint_eq(sim_now(s), SST_MS(30));
    sim_run_until(s, SST_MS(100));
    ck_assert_uint_eq(t.fired, 1);
    /* Idle: run_while reports the limit and leaves the clock there. */
    t.fired = 0;
    ck_assert_int_eq(sim_run_while(s, tn_not_fired, &t, SST_MS(200)), SST_ERR_TIMEOUT);
    ck_assert_uint_eq(sim_now(s), SST_MS(200));
    /* A deadline in the past fires at once; one that never advances is stepped and counted. */
    t.deadline = SST_MS(10);
    t.stuck = true;
    sim_run_until(s, SST_MS(200) + 5);
    ck_assert_uint_eq(t.fired, 6);
    ck_assert_uint_eq(t.fired_at[0], SST_MS(200));
    ck_assert_uint_eq(t.fired_at[5], SST_MS(200) + 5);
    struct sim_stats ss;
    sim_get_stats(s, &ss);
    ck_assert_uint_eq(ss.timeout_spins, 6);
    sim_free(s);
}
END_TEST

static void at_cb(void *ctx, sst_time_t now)
{
    sst_time_t *log = ctx;
    for (int i = 0; i < 4; i++)
        if (log[i] == 0) {
            log[i] = now;
            break;
        }
}

START_TEST(test_sim_at_callbacks_in_order)
{
    struct sim *s = sim_with_seed(1);
    sst_time_t log[4] = { 0 };
    ck_assert_int_eq(sim_at(s, SST_MS(7), at_cb, log), 0);
    ck_assert_int_eq(sim_at(s, SST_MS(3), at_cb, log), 0);
    ck_assert_int_eq(sim_at(s, SST_MS(3), at_cb, log), 0);
    sim_run_until(s, SST_MS(5));
    ck_assert_uint_eq(log[0], SST_MS(3));
    ck_assert_uint_eq(log[1], SST_MS(3));
    ck_assert_uint_eq(log[2], 0);
    sim_run_until(s, SST_MS(10));
    ck_assert_uint_eq(log[2], SST_MS(7));
    sim_free(s);
}
END_TEST

/* ---- Speed ---------------------------------------------------------------------------------- */

START_TEST(test_sim_speed_minutes_of_virtual_time)
{
    /* Three minutes at 2000 packets/s through a 20 Mbit/s lossy bottleneck with echoes. */
    struct sim_config c;
    sim_config_default(&c);
    c.seed = 3;
    struct sim *s = sim_new(&c);
    struct sst_addr a = sim_addr4(1, 1), b = sim_addr4(2, 2);
    struct rec *rb = rec_new(s, b, 1, true);
    struct sim_link *lab;
    struct sim_link_params p = { .rate_bps = 20000000, .delay = SST_MS(25), .queue_bytes = 64000,
                                 .loss = 0.01, .jitter = SST_US(100) };
    ck_assert_int_eq(sim_path(s, &a, &b, &p, NULL, &lab, NULL), 0);
    const uint32_t n = 360000;
    struct pacer *pa = pacer_new(s, a, b, 0, SST_US(500), n, 1000);
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    sim_run_until(s, SST_SEC(181));
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
    struct sim_stats ss;
    sim_get_stats(s, &ss);
    ck_assert_uint_eq(pa->seq, n);
    struct sim_link_stats st;
    sim_link_get_stats(lab, &st);
    ck_assert_uint_eq(ss.sent, n + st.delivered);  /* every arrival at b was echoed */
    ck_assert_uint_gt(ss.delivered, n * 2 * 0.97);
    ck_assert_uint_eq(ss.pool_in_use, 0);
    ck_assert_uint_lt(ss.pool_high_water, 200);
    printf("test_sim: %llu events, 181 s virtual in %.3f s wall: %.2f Mevents/s, %.0fx real time\n",
           (unsigned long long)ss.events, wall, (double)ss.events / wall / 1e6, 181.0 / wall);
    free(pa);
    rec_free(rb);
    sim_free(s);
}
END_TEST

static Suite *sim_suite(void)
{
    Suite *s = suite_create("sim");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sim_delay_exact);
    tcase_add_test(tc, test_sim_rate_serialization_exact);
    tcase_add_test(tc, test_sim_jitter_keeps_fifo_within_bounds);
    tcase_add_test(tc, test_sim_queue_overflow_drops_tail);
    tcase_add_test(tc, test_sim_random_loss_rate);
    tcase_add_test(tc, test_sim_burst_loss_produces_runs);
    tcase_add_test(tc, test_sim_reordering_happens_and_is_counted);
    tcase_add_test(tc, test_sim_duplication_happens_and_is_counted);
    tcase_add_test(tc, test_sim_corruption_flips_bits_and_is_counted);
    tcase_add_test(tc, test_sim_same_seed_same_trace);
    tcase_add_test(tc, test_sim_rng_streams);
    tcase_add_test(tc, test_sim_two_flows_share_bottleneck);
    tcase_add_test(tc, test_sim_pool_exhaustion_counted);
    tcase_add_test(tc, test_sim_no_route_no_node_too_big);
    tcase_add_test(tc, test_sim_node_deadlines);
    tcase_add_test(tc, test_sim_at_callbacks_in_order);
    tcase_add_test(tc, test_sim_speed_minutes_of_virtual_time);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
