/* Unit tests for the pacer (core/pacer.c): burst, spacing at 1.25x / 2x cwnd per srtt, send
 * quanta at high rates. */
#include <check.h>
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
