/* Unit tests for the pacer (core/pacer.c): burst, spacing at 1.25x / 2x cwnd per srtt, send
 * quanta at high rates. */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cc.h"

#define MSS 1200u

/* Sends as soon as the pacer allows, n packets from `start`; returns the send times. */
static void pace(struct sst_pacer *p, const struct sst_cc *cc, const struct sst_rtt *rtt,
                 sst_time_t start, sst_time_t *times, int n)
{
    sst_time_t now = start;
    for (int i = 0; i < n; i++) {
        sst_time_t t = sst_pacer_next(p, cc, rtt, now, MSS);
        ck_assert_uint_ge(t, now);
        now = t;
        /* Asking again at the returned time must allow the packet (no off-by-rounding). */
        ck_assert_uint_eq(sst_pacer_next(p, cc, rtt, now, MSS), now);
        sst_pacer_on_sent(p, MSS);
        times[i] = now;
    }
}

START_TEST(test_pacer_burst_then_spacing_congestion_avoidance)
{
    struct sst_cc cc;
    struct sst_rtt rtt;
    struct sst_pacer p;
    sst_cc_init(&cc, SST_CC_NEWRENO, MSS, 0);
    cc.cwnd = cc.ssthresh = 100 * MSS;          /* congestion avoidance: gain 1.25 */
    sst_rtt_init(&rtt);
    sst_rtt_update(&rtt, SST_MS(100));
    sst_pacer_init(&p, MSS);
    sst_time_t t[30];
    pace(&p, &cc, &rtt, SST_SEC(1), t, 30);
    /* The first 10 packets (the burst) leave at once. */
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(t[i], SST_SEC(1));
    /* Then one every mss / (1.25 * cwnd / srtt) = 1200 / 1.5 B/us = 800 us. */
    for (int i = 10; i < 30; i++) {
        sst_time_t gap = t[i] - t[i - 1];
        ck_assert_msg(gap >= SST_US(800) - 1 && gap <= SST_US(800) + 1, "gap %d = %llu ns", i,
                      (unsigned long long)gap);
    }
}
END_TEST

START_TEST(test_pacer_slow_start_paces_at_twice_the_rate)
{
    struct sst_cc cc;
    struct sst_rtt rtt;
    struct sst_pacer p;
    sst_cc_init(&cc, SST_CC_CUBIC, MSS, 0);
    cc.cwnd = 100 * MSS;                        /* ssthresh still infinite: slow start */
    sst_rtt_init(&rtt);
    sst_rtt_update(&rtt, SST_MS(100));
    sst_pacer_init(&p, MSS);
    sst_time_t t[20];
    pace(&p, &cc, &rtt, 0, t, 20);
    /* 2 * 120000 B / 100 ms = 2.4 B/us: 500 us per packet. */
    for (int i = 10; i < 20; i++) {
        sst_time_t gap = t[i] - t[i - 1];
        ck_assert(gap >= SST_US(500) - 1 && gap <= SST_US(500) + 1);
    }
}
END_TEST

START_TEST(test_pacer_uses_initial_rtt_before_first_sample)
{
    struct sst_cc cc;
    struct sst_rtt rtt;
    struct sst_pacer p;
    sst_cc_init(&cc, SST_CC_NEWRENO, MSS, 0);   /* cwnd 12000, slow start */
    sst_rtt_init(&rtt);
    sst_pacer_init(&p, MSS);
    sst_time_t t[12];
    pace(&p, &cc, &rtt, 0, t, 12);
    /* 2 * 12000 B / 333 ms: 1200 B every 16.65 ms. */
    sst_time_t gap = t[11] - t[10];
    ck_assert_uint_ge(gap, SST_US(16650) - 1);
    ck_assert_uint_le(gap, SST_US(16650) + 1);
}
END_TEST

START_TEST(test_pacer_idle_refills_only_up_to_burst)
{
    struct sst_cc cc;
    struct sst_rtt rtt;
    struct sst_pacer p;
    sst_cc_init(&cc, SST_CC_NEWRENO, MSS, 0);
    cc.cwnd = cc.ssthresh = 100 * MSS;
    sst_rtt_init(&rtt);
    sst_rtt_update(&rtt, SST_MS(100));
    sst_pacer_init(&p, MSS);
    sst_time_t t[15];
    pace(&p, &cc, &rtt, 0, t, 15);
    /* After a long idle period only a burst's worth may go at once, not the idle time's worth. */
    pace(&p, &cc, &rtt, SST_SEC(10), t, 15);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(t[i], SST_SEC(10));
    ck_assert_uint_gt(t[10], SST_SEC(10));
}
END_TEST

START_TEST(test_pacer_unasked_sends_are_repaid)
{
    struct sst_cc cc;
    struct sst_rtt rtt;
    struct sst_pacer p;
    sst_cc_init(&cc, SST_CC_NEWRENO, MSS, 0);
    cc.cwnd = cc.ssthresh = 100 * MSS;
    sst_rtt_init(&rtt);
    sst_rtt_update(&rtt, SST_MS(100));
    sst_pacer_init(&p, MSS);
    ck_assert_uint_eq(sst_pacer_next(&p, &cc, &rtt, 0, MSS), 0);
    /* Twelve packets sent without asking (e.g. PTO probes): two beyond the burst are owed,
     * so the next packet waits for three packets' worth of tokens. */
    for (int i = 0; i < 12; i++)
        sst_pacer_on_sent(&p, MSS);
    sst_time_t t = sst_pacer_next(&p, &cc, &rtt, 0, MSS);
    ck_assert_uint_ge(t, 3 * SST_US(800) - 1);
    ck_assert_uint_le(t, 3 * SST_US(800) + 1);
}
END_TEST

START_TEST(test_pacer_quantum_sizes)
{
    ck_assert_uint_eq(sst_pacer_quantum(0, MSS), 2 * MSS);             /* at least 2 packets */
    ck_assert_uint_eq(sst_pacer_quantum(12500000, MSS), 12500000 >> 10); /* 100 Mbit/s: ~1 ms */
    ck_assert_uint_eq(sst_pacer_quantum(1250000000, MSS), SST_PACER_QUANTUM_MAX);  /* 10 Gbit/s */
}
END_TEST

/* At 1 Gbit/s (cwnd 100 KB over srtt 1 ms, gain 1.25) packets are due every 9.6 us, too close
 * for a timer wake-up each: the pacer releases ~1 ms of data (a 64 KiB-capped quantum) per
 * wake-up, and over 100 ms it still sends at the pacing rate, neither faster nor slower. */
START_TEST(test_pacer_high_rate_wakes_once_per_quantum)
{
    struct sst_cc cc;
    struct sst_rtt rtt;
    struct sst_pacer p;
    sst_cc_init(&cc, SST_CC_NEWRENO, MSS, 0);
    cc.cwnd = cc.ssthresh = 100000;
    sst_rtt_init(&rtt);
    sst_rtt_update(&rtt, SST_MS(1));
    sst_pacer_init(&p, MSS);
    double rate = 1.25 * 100000 / 1e-3;                   /* bytes/s: 1.25e8 */
    uint64_t quantum = sst_pacer_quantum((uint64_t)rate, MSS);
    ck_assert_uint_eq(quantum, SST_PACER_QUANTUM_MAX);
    sst_time_t now = 0, end = SST_MS(100);
    uint64_t sent = 0;
    unsigned wakeups = 0;
    while (now < end) {
        sst_time_t at = sst_pacer_next(&p, &cc, &rtt, now, MSS);
        if (at > now) {
            /* Never a sleep shorter than a quantum's worth of the rate (less one packet). */
            ck_assert_uint_ge(at - now, (sst_time_t)((double)(quantum - MSS) / rate * 1e9));
            now = at;
            wakeups++;
            continue;
        }
        sst_pacer_on_sent(&p, MSS);
        sent += MSS;
    }
    double expect = rate * 0.1;
    ck_assert_msg((double)sent >= 0.97 * expect && (double)sent <= 1.03 * expect + 10 * MSS,
                  "sent %llu expected %.0f", (unsigned long long)sent, expect);
    /* 125 MB/s / 64 KiB = ~1900 wake-ups per second: ~190 in 100 ms, not ~10 000. */
    ck_assert_uint_le(wakeups, 200);
    ck_assert_uint_ge(wakeups, 150);
}
END_TEST

/* A sender that always has data and paces at BBR's fixed rate of 12.5 MB/s (100 Mbit/s, one
 * 1200-byte packet every 96 us), srtt 50 ms.  It sends whenever the pacer allows and otherwise
 * comes back when told -- except the come-back due after `late_at`, which it makes `late_by`
 * later, like a thread the scheduler ran late.  Returns the bytes sent in [0, end); `max_burst`
 * gets the most packets sent at one instant after the late come-back. */
#define LATE_RATE 12500000u
static uint64_t pace_with_one_late_comeback(struct sst_pacer *p, sst_time_t late_at,
                                            sst_time_t late_by, sst_time_t end, int *max_burst)
{
    struct sst_cc cc;
    struct sst_rtt rtt;
    sst_cc_init(&cc, SST_CC_NEWRENO, MSS, 0);
    cc.cwnd = cc.ssthresh = 1000 * MSS;
    cc.pacing_rate = LATE_RATE;
    sst_rtt_init(&rtt);
    sst_rtt_update(&rtt, SST_MS(50));
    sst_time_t now = 0, burst_at = SST_TIME_NEVER;
    uint64_t sent = 0;
    bool late_done = false;
    int burst = 0;
    *max_burst = 0;
    while (now < end) {
        sst_time_t at = sst_pacer_next(p, &cc, &rtt, now, MSS);
        if (at > now) {
            now = at;
            if (!late_done && now >= late_at) {
                now += late_by;
                late_done = true;
            }
            continue;
        }
        sst_pacer_on_sent(p, MSS);
        sent += MSS;
        if (late_done) {
            burst = now == burst_at ? burst + 1 : 1;
            burst_at = now;
            if (burst > *max_burst)
                *max_burst = burst;
        }
    }
    return sent;
}

/* Coming back 5 ms late loses no sending time: the 62.5 KB the late 5 ms were worth (less
 * what the 10-packet bucket held anyway) is credited and sent over the next few ms at up to
 * twice the rate -- never as a burst larger than the bucket. */
START_TEST(test_pacer_late_comeback_is_made_up)
{
    struct sst_pacer p;
    sst_pacer_init(&p, MSS);
    int max_burst;
    uint64_t sent = pace_with_one_late_comeback(&p, SST_MS(20), SST_MS(5), SST_MS(100), &max_burst);
    double expect = 10.0 * MSS + LATE_RATE * 0.1;       /* the first burst + 100 ms at the rate */
    ck_assert_msg((double)sent >= expect - 2 * MSS && (double)sent <= expect + 2 * MSS,
                  "sent %llu, expected %.0f", (unsigned long long)sent, expect);
    ck_assert_int_le(max_burst, 10);
    ck_assert_double_eq_tol(p.credit, 0, 1e-6);       /* all repaid by the end */
}
END_TEST

/* Catching up runs at no more than twice the rate: 5 ms late, then 2 ms later the sender has
 * made up at most 2 ms of the loss (plus the bucket), not all of it. */
START_TEST(test_pacer_late_credit_is_repaid_at_most_at_twice_the_rate)
{
    struct sst_pacer p;
    sst_pacer_init(&p, MSS);
    int max_burst;
    sst_time_t late_at = SST_MS(20), late_by = SST_MS(5);
    uint64_t sent = pace_with_one_late_comeback(&p, late_at, late_by, late_at + late_by + SST_MS(2),
                                                &max_burst);
    /* Up to the come-back (~20 ms): the first burst + 20 ms of rate.  Then the bucket (12 KB)
     * and 2 ms at twice the rate (50 KB) at most. */
    double upto = 10.0 * MSS + LATE_RATE * 0.020 + 10.0 * MSS + 2 * LATE_RATE * 0.002;
    ck_assert_msg((double)sent <= upto + 2 * MSS, "sent %llu, at most %.0f",
                  (unsigned long long)sent, upto);
    ck_assert_double_gt(p.credit, 0);
}
END_TEST

/* Lateness is credited only for a come-back time the pacer named, up to a quarter of srtt at the
 * rate (12.5 ms, 156 KB here); a sender that ran out of data gets none. */
START_TEST(test_pacer_late_credit_is_capped_and_dropped_when_app_limited)
{
    struct sst_pacer p;
    sst_pacer_init(&p, MSS);
    int max_burst;
    pace_with_one_late_comeback(&p, SST_MS(20), SST_SEC(10), SST_MS(20) + SST_SEC(10) + SST_US(200),
                                &max_burst);
    ck_assert_double_le(p.credit, LATE_RATE * 0.0125 + 1);
    ck_assert_double_ge(p.credit, LATE_RATE * 0.0125 - 4.0 * MSS);   /* less ~300 us repaid */
    sst_pacer_on_unpaced(&p, false);                  /* cwnd-limited: credit kept */
    ck_assert_double_gt(p.credit, 0);
    sst_pacer_on_unpaced(&p, true);                   /* out of data: credit dropped */
    ck_assert_double_eq(p.credit, 0);

    /* A come-back time the caller gave up on (unpaced) earns nothing when it comes back. */
    struct sst_cc cc;
    struct sst_rtt rtt;
    sst_cc_init(&cc, SST_CC_NEWRENO, MSS, 0);
    cc.pacing_rate = LATE_RATE;
    sst_rtt_init(&rtt);
    sst_rtt_update(&rtt, SST_MS(50));
    sst_pacer_init(&p, MSS);
    ck_assert_uint_eq(sst_pacer_next(&p, &cc, &rtt, 0, MSS), 0);
    for (int i = 0; i < 10; i++)
        sst_pacer_on_sent(&p, MSS);
    ck_assert_uint_gt(sst_pacer_next(&p, &cc, &rtt, 0, MSS), 0);   /* a come-back time named */
    sst_pacer_on_unpaced(&p, false);
    ck_assert_uint_eq(sst_pacer_next(&p, &cc, &rtt, SST_MS(30), MSS), SST_MS(30));
    ck_assert_double_eq(p.credit, 0);
}
END_TEST

static Suite *pacer_suite(void)
{
    Suite *s = suite_create("pacer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_pacer_burst_then_spacing_congestion_avoidance);
    tcase_add_test(tc, test_pacer_slow_start_paces_at_twice_the_rate);
    tcase_add_test(tc, test_pacer_uses_initial_rtt_before_first_sample);
    tcase_add_test(tc, test_pacer_idle_refills_only_up_to_burst);
    tcase_add_test(tc, test_pacer_unasked_sends_are_repaid);
    tcase_add_test(tc, test_pacer_quantum_sizes);
    tcase_add_test(tc, test_pacer_high_rate_wakes_once_per_quantum);
    tcase_add_test(tc, test_pacer_late_comeback_is_made_up);
    tcase_add_test(tc, test_pacer_late_credit_is_repaid_at_most_at_twice_the_rate);
    tcase_add_test(tc, test_pacer_late_credit_is_capped_and_dropped_when_app_limited);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pacer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
