/* Unit tests for congestion control (core/cc.c): NewReno (RFC 9002 §7) and CUBIC (RFC 9438). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cc.h"
#include "err.h"

#define MSS 1200u

/* A virtual link: whole rounds of packets sent at `now`, all acked one RTT later.  The test
 * keeps in_flight the way recovery.c does (updated before each cc call). */
struct vlink {
    struct sst_cc cc;
    struct sst_rtt rtt;
    sst_time_t now;
    sst_time_t rtt_ns;
};

static void vl_init(struct vlink *v, enum sst_cc_algo algo, sst_time_t rtt_ns)
{
    sst_cc_init(&v->cc, algo, MSS, 0);
    sst_rtt_init(&v->rtt);
    sst_rtt_update(&v->rtt, rtt_ns);
    v->now = 0;
    v->rtt_ns = rtt_ns;
}

static void vl_send(struct vlink *v, uint64_t npkts)
{
    for (uint64_t i = 0; i < npkts; i++) {
        v->cc.in_flight += MSS;
        v->cc.ops->on_sent(&v->cc, v->now, MSS);
    }
}

static void vl_ack(struct vlink *v, uint64_t npkts, sst_time_t sent)
{
    for (uint64_t i = 0; i < npkts; i++) {
        v->cc.in_flight -= MSS;
        v->cc.ops->on_ack(&v->cc, v->now, MSS, sent, &v->rtt);
    }
}

/* Sends npkts now and acks them all one RTT later. */
static void vl_round(struct vlink *v, uint64_t npkts)
{
    sst_time_t sent = v->now;
    vl_send(v, npkts);
    v->now += v->rtt_ns;
    vl_ack(v, npkts, sent);
}

/* A window-limited round: as many full packets as cwnd allows. */
static void vl_full_round(struct vlink *v)
{
    vl_round(v, v->cc.cwnd / MSS);
}

/* A window-limited round whose packets are acked rtt_ns after they were sent. */
static void vl_full_round_rtt(struct vlink *v, sst_time_t rtt_ns)
{
    sst_time_t keep = v->rtt_ns;
    v->rtt_ns = rtt_ns;
    vl_full_round(v);
    v->rtt_ns = keep;
}

static const enum sst_cc_algo algos[] = { SST_CC_NEWRENO, SST_CC_CUBIC };

START_TEST(test_cc_init_window_and_names)
{
    struct sst_cc cc;
    sst_cc_init(&cc, algos[_i], MSS, 0);
    ck_assert_uint_eq(cc.cwnd, 10 * MSS);       /* RFC 9002 §7.2 */
    ck_assert_uint_eq(cc.ssthresh, UINT64_MAX);
    ck_assert(sst_cc_in_slow_start(&cc));
    ck_assert_str_eq(cc.ops->name, sst_cc_algo_name(algos[_i]));
    /* Large datagrams: the initial window is capped at max(14720, 2*mss). */
    sst_cc_init(&cc, algos[_i], 9000, 0);
    ck_assert_uint_eq(cc.cwnd, 18000);
    enum sst_cc_algo a;
    ck_assert_int_eq(sst_cc_algo_parse(cc.ops->name, &a), SST_OK);
    ck_assert_int_eq(a, algos[_i]);
    ck_assert_int_eq(sst_cc_algo_parse("vegas", &a), SST_ERR_INVAL);
    ck_assert_int_eq(sst_cc_algo_parse(NULL, &a), SST_ERR_INVAL);
}
END_TEST

START_TEST(test_cc_slow_start_doubles_per_rtt)
{
    struct vlink v;
    vl_init(&v, algos[_i], SST_MS(100));
    uint64_t w = v.cc.cwnd;
    for (int round = 0; round < 5; round++) {
        vl_full_round(&v);
        ck_assert_uint_eq(v.cc.cwnd, 2 * w);
        w = v.cc.cwnd;
    }
    ck_assert_uint_eq(v.cc.cwnd, 320 * MSS);
}
END_TEST

START_TEST(test_cc_newreno_congestion_avoidance_one_mss_per_rtt)
{
    struct vlink v;
    vl_init(&v, SST_CC_NEWRENO, SST_MS(50));
    v.cc.cwnd = v.cc.ssthresh = 20 * MSS;
    for (int round = 1; round <= 10; round++) {
        vl_full_round(&v);
        ck_assert_uint_eq(v.cc.cwnd, (20u + round) * MSS);
    }
    ck_assert(!sst_cc_in_slow_start(&v.cc));
}
END_TEST

START_TEST(test_cc_loss_reduces_newreno_half_cubic_07)
{
    struct vlink v;
    vl_init(&v, algos[_i], SST_MS(100));
    vl_full_round(&v);
    vl_full_round(&v);
    ck_assert_uint_eq(v.cc.cwnd, 40 * MSS);
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - SST_MS(1));
    uint64_t want = algos[_i] == SST_CC_NEWRENO ? 20 * MSS : 28 * MSS;
    ck_assert_uint_eq(v.cc.cwnd, want);
    ck_assert_uint_eq(v.cc.ssthresh, want);
    ck_assert(!sst_cc_in_slow_start(&v.cc));
}
END_TEST

START_TEST(test_cc_one_reduction_per_recovery_period)
{
    struct vlink v;
    vl_init(&v, algos[_i], SST_MS(100));
    vl_full_round(&v);
    vl_full_round(&v);                                 /* cwnd 40 mss */
    sst_time_t sent = v.now;
    vl_send(&v, 40);                                   /* a full window in flight */
    v.now += SST_MS(100);
    v.cc.ops->on_congestion(&v.cc, v.now, sent);       /* loss of one of them */
    uint64_t reduced = v.cc.cwnd;
    ck_assert_uint_lt(reduced, 40 * MSS);
    sst_time_t start = v.cc.recovery_start;
    ck_assert_uint_eq(start, v.now);
    /* More losses from the same flight: same recovery period, no further cut. */
    v.now += SST_MS(5);
    v.cc.ops->on_congestion(&v.cc, v.now, sent);
    v.cc.ops->on_congestion(&v.cc, v.now, start);
    ck_assert_uint_eq(v.cc.cwnd, reduced);
    /* Acks for packets sent before the period began do not grow the window either. */
    vl_ack(&v, 39, sent);
    ck_assert_uint_eq(v.cc.cwnd, reduced);
    /* A loss of a packet sent after the period began is a new congestion event. */
    sst_time_t sent2 = v.now;
    vl_send(&v, reduced / MSS);
    v.now += SST_MS(100);
    v.cc.ops->on_congestion(&v.cc, v.now, sent2);
    ck_assert_uint_lt(v.cc.cwnd, reduced);
}
END_TEST

START_TEST(test_cc_acks_after_recovery_grow_again)
{
    struct vlink v;
    vl_init(&v, SST_CC_NEWRENO, SST_MS(100));
    vl_full_round(&v);
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - 1);
    ck_assert_uint_eq(v.cc.cwnd, 10 * MSS);
    v.now += 1;
    vl_full_round(&v);          /* packets sent after recovery_start: CA growth */
    ck_assert_uint_eq(v.cc.cwnd, 11 * MSS);
}
END_TEST

START_TEST(test_cc_persistent_congestion_collapses_to_min)
{
    struct vlink v;
    vl_init(&v, algos[_i], SST_MS(100));
    for (int i = 0; i < 4; i++)
        vl_full_round(&v);
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - 1);
    v.cc.ops->on_persistent_congestion(&v.cc, v.now);
    ck_assert_uint_eq(v.cc.cwnd, SST_CC_MIN_WINDOW_PKTS * MSS);
    ck_assert_uint_eq(v.cc.recovery_start, SST_TIME_NEVER);
    /* It slow-starts back up towards ssthresh. */
    ck_assert(sst_cc_in_slow_start(&v.cc));
    v.now += 1;
    vl_full_round(&v);
    ck_assert_uint_eq(v.cc.cwnd, 2 * SST_CC_MIN_WINDOW_PKTS * MSS);
}
END_TEST

START_TEST(test_cc_app_limited_does_not_grow)
{
    struct vlink v;
    vl_init(&v, algos[_i], SST_MS(100));
    /* Slow start with only 2 of 10 packets' worth in flight: no growth. */
    for (int i = 0; i < 10; i++)
        vl_round(&v, 2);
    ck_assert_uint_eq(v.cc.cwnd, 10 * MSS);
    /* Congestion avoidance with a quarter of the window used: no growth. */
    v.cc.cwnd = v.cc.ssthresh = 20 * MSS;
    for (int i = 0; i < 20; i++)
        vl_round(&v, 5);
    ck_assert_uint_eq(v.cc.cwnd, 20 * MSS);
    /* Filling the window again brings growth back within two rounds. */
    vl_full_round(&v);
    vl_full_round(&v);
    ck_assert_uint_gt(v.cc.cwnd, 20 * MSS);
}
END_TEST

/* RFC 9438 eq. 1 and 2, computed independently in segments. */
static double rfc_w_cubic(double w_max_seg, double cwnd_epoch_seg, double t)
{
    double k = cbrt((w_max_seg - cwnd_epoch_seg) / 0.4);
    return 0.4 * pow(t - k, 3) + w_max_seg;
}

START_TEST(test_cc_cubic_follows_w_cubic_curve)
{
    struct vlink v;
    vl_init(&v, SST_CC_CUBIC, SST_MS(100));
    for (int i = 0; i < 7; i++)
        vl_full_round(&v);
    ck_assert_uint_eq(v.cc.cwnd, 1280 * MSS);
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - 1);
    ck_assert_uint_eq(v.cc.cwnd, 896 * MSS);                    /* 1280 * 0.7 */
    ck_assert(fabs(v.cc.cubic.w_max - 1280.0 * MSS) < 1e-6);    /* no earlier W_max */
    v.now += 1;
    vl_full_round(&v);                                          /* starts the epoch */
    ck_assert_uint_ne(v.cc.cubic.epoch_start, SST_TIME_NEVER);
    ck_assert(fabs(v.cc.cubic.k - cbrt(384.0 / 0.4)) < 1e-9);   /* K = 9.865 s */

    /* The window formula itself, at a few points. */
    const double pts[] = { 0.0, 1.0, 5.0, 9.865, 12.0, 15.0 };
    for (size_t i = 0; i < SST_ARRAY_LEN(pts); i++) {
        double want = rfc_w_cubic(1280, 896, pts[i]) * MSS;
        ck_assert_msg(fabs(sst_cc_cubic_window(&v.cc, pts[i]) - want) < 1e-3,
                      "W_cubic(%g)", pts[i]);
    }

    /* The window the algorithm actually reaches, window-limited rounds of 100 ms: at time t
     * it lies between W_cubic(t) and W_cubic(t + RTT), the target RFC 9438 §4.2 aims at, give
     * or take 0.2% (each round closes about 63% of the remaining gap to the target, so near
     * the plateau the window trails the curve by a segment or so). */
    const double checks[] = { 1.0, 3.0, 6.0, 9.9, 12.0, 14.0 };
    size_t next_check = 0;
    while (next_check < SST_ARRAY_LEN(checks)) {
        vl_full_round(&v);
        double t = (double)(v.now - v.cc.cubic.epoch_start) / 1e9;
        if (t + 1e-9 < checks[next_check])
            continue;
        double lo = rfc_w_cubic(1280, 896, t) * 0.998;
        double hi = rfc_w_cubic(1280, 896, t + 0.1) * 1.002;
        double got = (double)v.cc.cwnd / MSS;
        if (getenv("SST_TEST_VERBOSE") != NULL)
            printf("t=%.2f cwnd=%.2f W(t)=%.2f W(t+rtt)=%.2f\n", t, got, lo / 0.998, hi / 1.002);
        ck_assert_msg(got >= lo && got <= hi, "t=%.2f cwnd=%.1f want [%.1f, %.1f]", t, got, lo, hi);
        next_check++;
    }
    ck_assert_uint_gt(v.cc.cwnd, 1280 * MSS);   /* past the plateau, on the convex side */
}
END_TEST

START_TEST(test_cc_cubic_reno_friendly_region)
{
    /* Small window, short RTT: W_cubic climbs slower than Reno would, so CUBIC follows W_est
     * (RFC 9438 §4.3): alpha = 3*0.3/1.7 segments per RTT until W_est reaches the window before
     * the loss, then 1 segment per RTT. */
    struct vlink v;
    vl_init(&v, SST_CC_CUBIC, SST_MS(10));
    vl_full_round(&v);
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - 1);   /* 20 -> 14 segments, W_max 20 */
    ck_assert_uint_eq(v.cc.cwnd, 14 * MSS);
    v.now += 1;
    for (int i = 0; i < 100; i++)
        vl_full_round(&v);
    double t = (double)(v.now - v.cc.cubic.epoch_start) / 1e9;
    double got = (double)v.cc.cwnd / MSS;
    ck_assert(sst_cc_cubic_window(&v.cc, t) < v.cc.cubic.w_est);
    ck_assert_uint_eq(v.cc.cwnd, (uint64_t)v.cc.cubic.w_est);
    /* ~12 rounds at 0.53/RTT to climb 14 -> 20, then ~88 rounds at about 1/RTT; windows are
     * whole packets so each round grows a little less than the ideal. */
    ck_assert_msg(got > 14 + 6 + 80 && got < 14 + 100, "cwnd %.1f segments", got);
    ck_assert(got > rfc_w_cubic(20, 14, t));
}
END_TEST

START_TEST(test_cc_cubic_fast_convergence)
{
    struct vlink v;
    vl_init(&v, SST_CC_CUBIC, SST_MS(100));
    for (int i = 0; i < 4; i++)
        vl_full_round(&v);                              /* 160 segments */
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - 1);   /* W_max 160, cwnd 112 */
    v.now += 1;
    for (int i = 0; i < 5; i++)
        vl_full_round(&v);
    double before = (double)v.cc.cwnd;
    ck_assert(before < 160.0 * MSS);
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - 1);
    /* RFC 9438 §4.7: lost again below W_max, so W_max = cwnd * (1 + beta) / 2. */
    ck_assert(fabs(v.cc.cubic.w_max - before * 0.85) < 1e-6);
    ck_assert_uint_eq(v.cc.cwnd, (uint64_t)llround(before * 0.7));
}
END_TEST

START_TEST(test_cc_cubic_growth_capped_at_half_window_per_rtt)
{
    /* Far below W_max (e.g. after persistent congestion), W_cubic(t + RTT) is way above cwnd;
     * RFC 9438 §4.2 caps the target at 1.5 * cwnd, so one round grows less than 50%. */
    struct vlink v;
    vl_init(&v, SST_CC_CUBIC, SST_MS(100));
    v.cc.cwnd = v.cc.ssthresh = 20 * MSS;
    v.cc.cubic.w_max = v.cc.cubic.cwnd_prior = 2000.0 * MSS;
    vl_full_round(&v);      /* starts the epoch: K = cbrt(1980 / 0.4) = 17 s */
    for (int i = 0; i < 5; i++) {
        uint64_t before = v.cc.cwnd;
        vl_full_round(&v);
        ck_assert_uint_gt(v.cc.cwnd, before);
        ck_assert_uint_le(v.cc.cwnd, before + before / 2);
    }
}
END_TEST

/* HyStart++ (RFC 9406): an RTT rise of max(4 ms, min(minRTT/8, 16 ms)) over the previous
 * round's minimum, seen in 8 samples, moves slow start into CSS (growth / 4); five CSS rounds
 * later cwnd becomes ssthresh (congestion avoidance) without any loss.  Jitter below the
 * threshold does not count. */
START_TEST(test_cc_hystart_exits_slow_start_on_rtt_rise)
{
    struct vlink v;
    vl_init(&v, algos[_i], SST_MS(100));
    vl_full_round(&v);                          /* 10 -> 20 */
    vl_full_round_rtt(&v, SST_MS(110));         /* +10 ms < 12.5 ms threshold: 20 -> 40 */
    ck_assert_uint_eq(v.cc.cwnd, 40 * MSS);
    ck_assert(!v.cc.hystart.in_css);
    vl_full_round_rtt(&v, SST_MS(125));         /* +15 ms over the last round's 110 ms */
    ck_assert(v.cc.hystart.in_css);
    /* Seven samples at full slow-start growth, then the other 33 at a quarter. */
    ck_assert_uint_eq(v.cc.cwnd, 80 * MSS - 33 * MSS + 33 * MSS / 4);
    uint64_t css_start = v.cc.cwnd;
    for (int i = 0; i < SST_HYSTART_CSS_ROUNDS - 1; i++) {
        uint64_t before = v.cc.cwnd;
        vl_full_round_rtt(&v, SST_MS(125));
        ck_assert(v.cc.hystart.in_css);
        ck_assert(sst_cc_in_slow_start(&v.cc));
        ck_assert_uint_le(v.cc.cwnd - before, (before / MSS) * MSS / 4 + 1);
        ck_assert_uint_ge(v.cc.cwnd - before, (before / MSS) * MSS / 4 - 1);
    }
    vl_full_round_rtt(&v, SST_MS(125));         /* its first ack completes the fifth CSS round */
    ck_assert(!sst_cc_in_slow_start(&v.cc));
    ck_assert(v.cc.hystart.done);
    ck_assert_uint_gt(v.cc.hystart.stat_exit_cwnd, css_start);
    ck_assert_uint_eq(v.cc.ssthresh, v.cc.hystart.stat_exit_cwnd);
    ck_assert_uint_lt(v.cc.cwnd, 3 * css_start); /* ~1.25^5; plain slow start: 32x */
}
END_TEST

/* In CSS, a round whose minimum RTT falls below the baseline that started CSS resumes slow
 * start; a loss in CSS ends HyStart++ for the connection (later slow starts are plain). */
START_TEST(test_cc_hystart_css_resumes_or_ends_on_loss)
{
    struct vlink v;
    vl_init(&v, algos[_i], SST_MS(100));
    vl_full_round(&v);
    vl_full_round(&v);
    vl_full_round_rtt(&v, SST_MS(120));
    ck_assert(v.cc.hystart.in_css);
    uint64_t w = v.cc.cwnd;
    uint64_t n = w / MSS;
    vl_full_round(&v);                          /* back at 100 ms: after 8 samples, resume */
    ck_assert(!v.cc.hystart.in_css);
    ck_assert(!v.cc.hystart.done);
    ck_assert_uint_eq(v.cc.cwnd, w + 7 * MSS / 4 + (n - 7) * MSS);
    vl_full_round_rtt(&v, SST_MS(120));
    ck_assert(v.cc.hystart.in_css);
    v.cc.ops->on_congestion(&v.cc, v.now, v.now - SST_MS(1));
    ck_assert(v.cc.hystart.done);
    ck_assert(!v.cc.hystart.in_css);
    ck_assert_uint_eq(v.cc.hystart.stat_exit_cwnd, 0);
}
END_TEST

static Suite *cc_suite(void)
{
    Suite *s = suite_create("cc");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_cc_init_window_and_names, 0, 2);
    tcase_add_loop_test(tc, test_cc_slow_start_doubles_per_rtt, 0, 2);
    tcase_add_test(tc, test_cc_newreno_congestion_avoidance_one_mss_per_rtt);
    tcase_add_loop_test(tc, test_cc_loss_reduces_newreno_half_cubic_07, 0, 2);
    tcase_add_loop_test(tc, test_cc_one_reduction_per_recovery_period, 0, 2);
    tcase_add_test(tc, test_cc_acks_after_recovery_grow_again);
    tcase_add_loop_test(tc, test_cc_persistent_congestion_collapses_to_min, 0, 2);
    tcase_add_loop_test(tc, test_cc_app_limited_does_not_grow, 0, 2);
    tcase_add_test(tc, test_cc_cubic_follows_w_cubic_curve);
    tcase_add_test(tc, test_cc_cubic_reno_friendly_region);
    tcase_add_test(tc, test_cc_cubic_fast_convergence);
    tcase_add_test(tc, test_cc_cubic_growth_capped_at_half_window_per_rtt);
    tcase_add_loop_test(tc, test_cc_hystart_exits_slow_start_on_rtt_rise, 0, 2);
    tcase_add_loop_test(tc, test_cc_hystart_css_resumes_or_ends_on_loss, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
