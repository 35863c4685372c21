/* Unit tests for the RTT estimator (core/rtt.c): RFC 6298 smoothing, RFC 9002 min_rtt and PTO. */
#include <check.h>
#include <stdlib.h>

#include "rtt.h"

START_TEST(test_rtt_init_uses_initial_rtt)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    ck_assert(!r.has_sample);
    ck_assert_uint_eq(r.smoothed, SST_MS(333));
    ck_assert_uint_eq(r.var, SST_US(166500));
    /* RFC 9002 §6.2.2: PTO before any sample = 333 + 4*166.5 + max_ack_delay = 999 + 25 ms. */
    ck_assert_uint_eq(sst_rtt_pto(&r, SST_MS(25)), SST_MS(1024));
}
END_TEST

START_TEST(test_rtt_first_sample_sets_all)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    sst_rtt_update(&r, SST_MS(100));
    ck_assert(r.has_sample);
    ck_assert_uint_eq(r.latest, SST_MS(100));
    ck_assert_uint_eq(r.min, SST_MS(100));
    ck_assert_uint_eq(r.smoothed, SST_MS(100));
    ck_assert_uint_eq(r.var, SST_MS(50));
}
END_TEST

START_TEST(test_rtt_smoothing_follows_rfc6298)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    sst_rtt_update(&r, SST_MS(100));
    sst_rtt_update(&r, SST_MS(180));
    /* rttvar = 3/4*50 + 1/4*|100-180| = 37.5 + 20; srtt = 7/8*100 + 1/8*180 = 87.5 + 22.5. */
    ck_assert_uint_eq(r.var, SST_US(57500));
    ck_assert_uint_eq(r.smoothed, SST_MS(110));
    ck_assert_uint_eq(r.latest, SST_MS(180));
    ck_assert_uint_eq(r.min, SST_MS(100));
    sst_rtt_update(&r, SST_MS(30));
    /* rttvar = 3/4*57.5 + 1/4*80 = 43.125 + 20; srtt = 7/8*110 + 30/8 = 96.25 + 3.75. */
    ck_assert_uint_eq(r.var, SST_US(63125));
    ck_assert_uint_eq(r.smoothed, SST_MS(100));
    ck_assert_uint_eq(r.min, SST_MS(30));
    ck_assert_uint_eq(r.latest, SST_MS(30));
}
END_TEST

START_TEST(test_rtt_converges_to_constant_samples)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    sst_rtt_update(&r, SST_MS(500));
    for (int i = 0; i < 200; i++)
        sst_rtt_update(&r, SST_MS(40));
    /* Integer rounding may leave a few ns; the estimate must be within 1 us of the truth and the
     * variance must have decayed to almost nothing. */
    ck_assert_uint_le(r.smoothed - SST_MS(40), SST_US(1));
    ck_assert_uint_lt(r.var, SST_US(1));
    ck_assert_uint_eq(r.min, SST_MS(40));
}
END_TEST

START_TEST(test_rtt_min_never_increases)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    sst_time_t samples[] = { SST_MS(50), SST_MS(70), SST_MS(20), SST_MS(90), SST_MS(21) };
    sst_time_t expect_min[] = { SST_MS(50), SST_MS(50), SST_MS(20), SST_MS(20), SST_MS(20) };
    for (size_t i = 0; i < SST_ARRAY_LEN(samples); i++) {
        sst_rtt_update(&r, samples[i]);
        ck_assert_uint_eq(r.min, expect_min[i]);
        ck_assert_uint_eq(r.latest, samples[i]);
    }
}
END_TEST

START_TEST(test_rtt_pto_formula)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    sst_rtt_update(&r, SST_MS(100));
    /* srtt 100 + 4*50 + 10 */
    ck_assert_uint_eq(sst_rtt_pto(&r, SST_MS(10)), SST_MS(310));
    ck_assert_uint_eq(sst_rtt_pto(&r, 0), SST_MS(300));
}
END_TEST

START_TEST(test_rtt_pto_granularity_floor)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    /* A 100 us sample on loopback: 4*rttvar = 200 us < kGranularity, so the floor applies. */
    sst_rtt_update(&r, SST_US(100));
    ck_assert_uint_eq(sst_rtt_pto(&r, 0), SST_US(100) + SST_GRANULARITY);
    for (int i = 0; i < 100; i++)
        sst_rtt_update(&r, SST_US(100));
    ck_assert_uint_eq(sst_rtt_pto(&r, SST_MS(10)), r.smoothed + SST_GRANULARITY + SST_MS(10));
}
END_TEST

START_TEST(test_rtt_huge_values_do_not_wrap)
{
    struct sst_rtt r;
    sst_rtt_init(&r);
    sst_rtt_update(&r, UINT64_MAX / 2);
    sst_rtt_update(&r, UINT64_MAX);
    /* The deadline must never wrap to something small (that would fire a PTO at once). */
    ck_assert_uint_ge(sst_rtt_pto(&r, SST_MS(25)), r.smoothed);
    ck_assert_uint_ge(sst_rtt_pto(&r, UINT64_MAX), r.smoothed);
    ck_assert_uint_eq(sst_rtt_pto(&r, UINT64_MAX), SST_TIME_NEVER);
    sst_rtt_update(&r, 0);
    ck_assert_uint_eq(r.min, 0);
    ck_assert_uint_ge(sst_rtt_pto(&r, 0), SST_GRANULARITY);
}
END_TEST

static Suite *rtt_suite(void)
{
    Suite *s = suite_create("rtt");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_rtt_init_uses_initial_rtt);
    tcase_add_test(tc, test_rtt_first_sample_sets_all);
    tcase_add_test(tc, test_rtt_smoothing_follows_rfc6298);
    tcase_add_test(tc, test_rtt_converges_to_constant_samples);
    tcase_add_test(tc, test_rtt_min_never_increases);
    tcase_add_test(tc, test_rtt_pto_formula);
    tcase_add_test(tc, test_rtt_pto_granularity_floor);
    tcase_add_test(tc, test_rtt_huge_values_do_not_wrap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rtt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
