/* Unit tests for the 128-packet replay window (core/replay.c, paper §4.2.2, RFC 4303 §3.4.3). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "replay.h"

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Check, then commit, as the receive path does after authentication. */
static int accept(struct sst_replay *r, uint64_t seq)
{
    int rc = sst_replay_check(r, seq);
    if (rc == SST_OK)
        sst_replay_commit(r, seq);
    return rc;
}

START_TEST(test_replay_fresh_window)
{
    struct sst_replay r;
    sst_replay_init(&r);
    ck_assert_int_eq(sst_replay_check(&r, 0), SST_ERR_REPLAY); /* 0 is never sent */
    ck_assert_int_eq(sst_replay_check(&r, 1), SST_OK);
    ck_assert_int_eq(sst_replay_check(&r, 127), SST_OK);
    ck_assert_int_eq(sst_replay_check(&r, 1000000), SST_OK);
}
END_TEST

START_TEST(test_replay_duplicate_rejected)
{
    struct sst_replay r;
    sst_replay_init(&r);
    ck_assert_int_eq(accept(&r, 1), SST_OK);
    ck_assert_int_eq(accept(&r, 1), SST_ERR_REPLAY);
    ck_assert_int_eq(accept(&r, 2), SST_OK);
    ck_assert_int_eq(accept(&r, 1), SST_ERR_REPLAY);
    ck_assert_int_eq(accept(&r, 2), SST_ERR_REPLAY);
}
END_TEST

START_TEST(test_replay_check_does_not_modify)
{
    struct sst_replay r, before;
    sst_replay_init(&r);
    ck_assert_int_eq(accept(&r, 5), SST_OK);
    memcpy(&before, &r, sizeof r);
    uint64_t probes[] = { 0, 3, 4, 5, 6, 1000, 1ull << 40, UINT64_MAX };
    for (size_t i = 0; i < SST_ARRAY_LEN(probes); i++) {
        int first = sst_replay_check(&r, probes[i]);
        ck_assert(memcmp(&before, &r, sizeof r) == 0);
        ck_assert_int_eq(sst_replay_check(&r, probes[i]), first);
    }
    /* A checked but never committed (forged) packet leaves its number acceptable. */
    ck_assert_int_eq(sst_replay_check(&r, 1000), SST_OK);
    ck_assert_int_eq(sst_replay_check(&r, 1000), SST_OK);
    /* ...and a forged huge number did not slide the window. */
    ck_assert_int_eq(sst_replay_check(&r, 4), SST_OK);
}
END_TEST

START_TEST(test_replay_out_of_order_within_window)
{
    struct sst_replay r;
    sst_replay_init(&r);
    ck_assert_int_eq(accept(&r, 10), SST_OK);
    ck_assert_int_eq(accept(&r, 5), SST_OK);
    ck_assert_int_eq(accept(&r, 5), SST_ERR_REPLAY);
    ck_assert_int_eq(accept(&r, 9), SST_OK);
    ck_assert_int_eq(accept(&r, 6), SST_OK);
    ck_assert_int_eq(accept(&r, 10), SST_ERR_REPLAY);
    ck_assert_int_eq(accept(&r, 7), SST_OK);
    ck_assert_int_eq(accept(&r, 8), SST_OK);
    for (uint64_t s = 5; s <= 10; s++)
        ck_assert_int_eq(sst_replay_check(&r, s), SST_ERR_REPLAY);
    for (uint64_t s = 1; s <= 4; s++)
        ck_assert_int_eq(sst_replay_check(&r, s), SST_OK);
}
END_TEST

START_TEST(test_replay_too_old_boundary)
{
    struct sst_replay r;
    sst_replay_init(&r);
    ck_assert_int_eq(accept(&r, 200), SST_OK);
    /* The window covers top-127 .. top: 128 numbers, the mis-ordering limit. */
    ck_assert_int_eq(sst_replay_check(&r, 200 - 127), SST_OK);
    ck_assert_int_eq(sst_replay_check(&r, 200 - 128), SST_ERR_TOO_OLD);
    ck_assert_int_eq(sst_replay_check(&r, 1), SST_ERR_TOO_OLD);
    ck_assert_int_eq(accept(&r, 73), SST_OK);
    ck_assert_int_eq(accept(&r, 73), SST_ERR_REPLAY);
}
END_TEST

START_TEST(test_replay_window_slides)
{
    struct sst_replay r;
    sst_replay_init(&r);
    for (uint64_t s = 1; s <= 300; s++) {
        ck_assert_int_eq(sst_replay_check(&r, s), SST_OK);
        sst_replay_commit(&r, s);
        ck_assert_int_eq(sst_replay_check(&r, s), SST_ERR_REPLAY);
    }
    ck_assert_uint_eq(r.top, 300);
    ck_assert_int_eq(sst_replay_check(&r, 300 - 127), SST_ERR_REPLAY);
    ck_assert_int_eq(sst_replay_check(&r, 300 - 128), SST_ERR_TOO_OLD);
}
END_TEST

START_TEST(test_replay_shift_across_words)
{
    struct sst_replay r;
    sst_replay_init(&r);
    ck_assert_int_eq(accept(&r, 1), SST_OK);
    ck_assert_int_eq(accept(&r, 65), SST_OK); /* 1 is now bit 64: the second word */
    ck_assert_int_eq(sst_replay_check(&r, 1), SST_ERR_REPLAY);
    ck_assert_int_eq(sst_replay_check(&r, 2), SST_OK);
    ck_assert_int_eq(sst_replay_check(&r, 64), SST_OK);
    ck_assert_int_eq(accept(&r, 100), SST_OK); /* shift by 35: bits cross the word boundary */
    ck_assert_int_eq(sst_replay_check(&r, 1), SST_ERR_REPLAY);
    ck_assert_int_eq(sst_replay_check(&r, 65), SST_ERR_REPLAY);
    ck_assert_int_eq(sst_replay_check(&r, 66), SST_OK);
    ck_assert_int_eq(accept(&r, 129), SST_OK); /* 1 is now 128 behind */
    ck_assert_int_eq(sst_replay_check(&r, 1), SST_ERR_TOO_OLD);
    ck_assert_int_eq(sst_replay_check(&r, 65), SST_ERR_REPLAY);
    ck_assert_int_eq(accept(&r, 129 + 64), SST_OK); /* shift by exactly one word */
    ck_assert_int_eq(sst_replay_check(&r, 65), SST_ERR_TOO_OLD);
    ck_assert_int_eq(sst_replay_check(&r, 100), SST_ERR_REPLAY);
    ck_assert_int_eq(sst_replay_check(&r, 129), SST_ERR_REPLAY);
    ck_assert_int_eq(sst_replay_check(&r, 128), SST_OK);
}
END_TEST

START_TEST(test_replay_big_jump_clears_window)
{
    struct sst_replay r;
    sst_replay_init(&r);
    for (uint64_t s = 1; s <= 50; s++)
        ck_assert_int_eq(accept(&r, s), SST_OK);
    ck_assert_int_eq(accept(&r, 50 + 100000), SST_OK);
    ck_assert_int_eq(sst_replay_check(&r, 50), SST_ERR_TOO_OLD);
    for (uint64_t s = 100050 - 127; s < 100050; s++)
        ck_assert_int_eq(sst_replay_check(&r, s), SST_OK);
    ck_assert_int_eq(accept(&r, UINT64_MAX), SST_OK);
    ck_assert_int_eq(sst_replay_check(&r, UINT64_MAX), SST_ERR_REPLAY);
    ck_assert_int_eq(sst_replay_check(&r, UINT64_MAX - 1), SST_OK);
}
END_TEST

/* Commit of an old or duplicate number is harmless (the caller should have checked first). */
START_TEST(test_replay_commit_old_is_noop)
{
    struct sst_replay r, before;
    sst_replay_init(&r);
    ck_assert_int_eq(accept(&r, 500), SST_OK);
    memcpy(&before, &r, sizeof r);
    sst_replay_commit(&r, 10);
    sst_replay_commit(&r, 500);
    ck_assert(memcmp(&before, &r, sizeof r) == 0);
}
END_TEST

/* Random arrivals against a plain model: a set of received numbers and the highest committed. */
START_TEST(test_replay_matches_model)
{
    enum { N = 20000 };
    static bool seen[N + 512];
    memset(seen, 0, sizeof seen);
    seen[0] = true;
    uint64_t s = 0x5eed0101, top = 0;
    struct sst_replay r;
    sst_replay_init(&r);
    for (int i = 0; i < 100000; i++) {
        /* half new numbers just ahead, half late arrivals up to 200 behind (past the window) */
        uint64_t step = rng_next(&s) % 200;
        uint64_t seq = rng_next(&s) % 2 ? top + 1 + step % 3 : top >= step ? top - step : 0;
        if (seq >= N)
            break;
        int expect = seq > top ? SST_OK : top - seq >= 128 ? SST_ERR_TOO_OLD
                                         : seen[seq] ? SST_ERR_REPLAY : SST_OK;
        int got = sst_replay_check(&r, seq);
        ck_assert_msg(got == expect, "seed 0x5eed0101 iter %d seq %llu top %llu: got %d want %d", i,
                      (unsigned long long)seq, (unsigned long long)top, got, expect);
        /* 1 in 5 accepted packets fails authentication and is never committed. */
        if (got == SST_OK && rng_next(&s) % 5 != 0) {
            sst_replay_commit(&r, seq);
            seen[seq] = true;
            if (seq > top)
                top = seq;
        }
    }
    ck_assert_uint_gt(top, N - 10); /* the walk really moved the window */
}
END_TEST

static Suite *replay_suite(void)
{
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_replay_fresh_window);
    tcase_add_test(tc, test_replay_duplicate_rejected);
    tcase_add_test(tc, test_replay_check_does_not_modify);
    tcase_add_test(tc, test_replay_out_of_order_within_window);
    tcase_add_test(tc, test_replay_too_old_boundary);
    tcase_add_test(tc, test_replay_window_slides);
    tcase_add_test(tc, test_replay_shift_across_words);
    tcase_add_test(tc, test_replay_big_jump_clears_window);
    tcase_add_test(tc, test_replay_commit_old_is_noop);
    tcase_add_test(tc, test_replay_matches_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(replay_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
