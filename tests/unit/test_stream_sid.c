/* Unit tests for LSID allocation, counter extrapolation and the quiet period (core/sid.c). */
#include <check.h>
#include <stdlib.h>

#include "err.h"
#include "sid.h"

START_TEST(test_sid_extrapolate_table)
{
    static const struct { uint64_t ref; uint16_t lsid; uint64_t want; } t[] = {
        { 0, 1, 1 },
        { 1, 0, 0 },
        { 5, 3, 3 },                          /* slightly behind */
        { 0xfff0, 0x0005, 0x10005 },          /* wrapped ahead */
        { 0x10005, 0xfff0, 0xfff0 },          /* wrapped behind */
        { 0x123456789abcull, 0x9abd, 0x123456789abdull },
        { 0x123456789abcull, 0x1abc, 0x123456781abcull }, /* exactly half way: behind */
        { 3, 0xfffe, 0xfffe },                /* would go negative: lowest value with those bits */
    };
    for (size_t i = 0; i < SST_ARRAY_LEN(t); i++)
        ck_assert_msg(sst_sid_extrapolate(t[i].ref, t[i].lsid) == t[i].want,
                      "case %zu: got %llx want %llx", i,
                      (unsigned long long)sst_sid_extrapolate(t[i].ref, t[i].lsid),
                      (unsigned long long)t[i].want);
}
END_TEST

START_TEST(test_sid_peer_tracks_counter)
{
    /* The peer sees only low 16 bits of our counter but recovers it exactly through several
     * wraps, even with skipped values (allocation skips in-use LSIDs). */
    struct sst_sid_alloc a;
    sst_sid_init(&a);
    uint64_t peer_ref = 0;
    srandom(3);
    for (int i = 0; i < 300000; i++) {
        uint64_t c;
        ck_assert_int_eq(sst_sid_alloc(&a, NULL, NULL, 0, 0, &c), 0);
        if (random() % 4 == 0)
            a.next += (uint64_t)(random() % SST_SID_MAX_SKIP);
        uint64_t got = sst_sid_extrapolate(peer_ref, (uint16_t)c);
        ck_assert_uint_eq(got, c);
        peer_ref = SST_MAX(peer_ref, got);
    }
    ck_assert_uint_gt(peer_ref, 4 * 65536);
}
END_TEST

static bool busy_odd(void *arg, uint16_t lsid)
{
    (void)arg;
    return (lsid & 1) != 0;
}

static bool busy_all(void *arg, uint16_t lsid)
{
    (void)arg;
    (void)lsid;
    return true;
}

START_TEST(test_sid_skips_in_use_and_root)
{
    struct sst_sid_alloc a;
    sst_sid_init(&a);
    uint64_t c;
    ck_assert_int_eq(sst_sid_alloc(&a, busy_odd, NULL, 0, 0, &c), 0);
    ck_assert_uint_eq(c, 2);
    a.next = 0xffff;                          /* next candidates: 0xffff (odd), 0x10000 (root) */
    ck_assert_int_eq(sst_sid_alloc(&a, busy_odd, NULL, 0, 0, &c), 0);
    ck_assert_uint_eq(c, 0x10002);
    ck_assert_int_eq(sst_sid_alloc(&a, busy_all, NULL, 0, 0, &c), SST_ERR_LIMIT);
}
END_TEST

/* LSIDs 1..run are held (long-lived streams opened in a row) and the counter has wrapped. */
static bool busy_low_run(void *arg, uint16_t lsid)
{
    unsigned run = *(const unsigned *)arg;
    return lsid >= 1 && lsid <= run;
}

START_TEST(test_sid_steps_over_long_in_use_run)
{
    struct sst_sid_alloc a;
    sst_sid_init(&a);
    uint64_t c;
    unsigned run = 5000;
    a.next = 0x10000;                         /* wrapped: root, then the held run */
    ck_assert_int_eq(sst_sid_alloc(&a, busy_low_run, &run, 0, 0, &c), 0);
    ck_assert_uint_eq(c, 0x10000 + run + 1);
    /* The peer, which saw up to 0xffff, still extrapolates the jump exactly. */
    ck_assert_uint_eq(sst_sid_extrapolate(0xffff, (uint16_t)c), c);
    /* A run longer than the in-use bound fails without moving: the next call, once streams of
     * the run ended, allocates right after the last free one it finds. */
    run = SST_SID_MAX_IN_USE_SKIP + 1;
    a.next = 0x20000;
    ck_assert_int_eq(sst_sid_alloc(&a, busy_low_run, &run, 0, 0, &c), SST_ERR_LIMIT);
    ck_assert_uint_eq(a.next, 0x20000);
    run = SST_SID_MAX_IN_USE_SKIP;
    ck_assert_int_eq(sst_sid_alloc(&a, busy_low_run, &run, 0, 0, &c), 0);
    ck_assert_uint_eq(c, 0x20000 + run + 1);
    ck_assert_uint_eq(sst_sid_extrapolate(0x1ffff, (uint16_t)c), c);
}
END_TEST

START_TEST(test_sid_quiet_period)
{
    struct sst_sid_alloc a;
    sst_sid_init(&a);
    sst_sid_release(&a, 1, 100, 50);
    /* Quiet until both sequence numbers moved 32 packets on. */
    ck_assert(sst_sid_is_quiet(&a, 1, 131, 200));
    ck_assert(sst_sid_is_quiet(&a, 1, 200, 81));
    ck_assert(!sst_sid_is_quiet(&a, 2, 100, 50));
    uint64_t c;
    ck_assert_int_eq(sst_sid_alloc(&a, NULL, NULL, 110, 60, &c), 0);
    ck_assert_uint_eq(c, 2);                  /* 1 skipped while quiet */
    ck_assert(!sst_sid_is_quiet(&a, 1, 132, 82));
    ck_assert_uint_eq(a.nquiet, 0);           /* expired entry forgotten */
    for (unsigned i = 0; i < SST_SID_QUIET_MAX + 5; i++)
        sst_sid_release(&a, (uint16_t)(i + 10), i, i);
    ck_assert_uint_eq(a.nquiet, SST_SID_QUIET_MAX);
    ck_assert_uint_eq(a.quiet_evicted, 5);
    ck_assert(!sst_sid_is_quiet(&a, 10, 5, 5)); /* the oldest went first */
    ck_assert(sst_sid_is_quiet(&a, 20, 5, 5));
    /* Compacting keeps live entries; once all expired the table is given back. */
    sst_sid_compact(&a, 5, 5);
    ck_assert_uint_eq(a.nquiet, SST_SID_QUIET_MAX);
    sst_sid_compact(&a, 1000, 1000);
    ck_assert_uint_eq(a.nquiet, 0);
    ck_assert_ptr_null(a.quiet);
    sst_sid_release(&a, 7, 2000, 2000);
    ck_assert(sst_sid_is_quiet(&a, 7, 2001, 2001));
    sst_sid_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_sid");
    TCase *tc = tcase_create("sid");
    tcase_add_test(tc, test_sid_extrapolate_table);
    tcase_add_test(tc, test_sid_peer_tracks_counter);
    tcase_add_test(tc, test_sid_skips_in_use_and_root);
    tcase_add_test(tc, test_sid_steps_over_long_in_use_run);
    tcase_add_test(tc, test_sid_quiet_period);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
