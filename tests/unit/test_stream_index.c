/* Unit tests for the stream indexes by LSID and USID (core/stream_index.c). */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>

#include "stream_int.h"


/* xorshift64*: a fixed sequence of operations for every run. */
static uint64_t rng(uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ULL;
}

static void check_bounds(const struct sst_sidx *x)
{
    /* Load between 1/16 and 3/4, and no storage at all when empty. */
    if (x->n == 0) {
        ck_assert_ptr_null(x->slot);
        ck_assert_uint_eq(x->cap, 0);
    } else {
        ck_assert_uint_le((uint64_t)x->n * 4, (uint64_t)x->cap * 3);
        ck_assert(x->cap <= 8 || x->cap <= 16 * x->n);
    }
}

/* Random adds and deletes of N streams with distinct LSIDs (clustered in a small range, so
 * probe runs wrap around the table), every lookup checked against the truth after each step. */
static void run_lsid(enum sst_sidx_key key, uint64_t seed, unsigned N, unsigned every)
{
    struct sst_stream *s = calloc(N, sizeof *s);
    bool *in = calloc(N, sizeof *in);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(in);
    for (unsigned i = 0; i < N; i++) {
        s[i].local_lsid = (uint16_t)(1 + i * 7);
        s[i].remote_lsid = (uint16_t)(1 + i * 7);
    }
    struct sst_sidx x;
    sst_sidx_init(&x, key);
    unsigned count = 0, peak = 0;
    for (unsigned step = 0; step < 60000; step++) {
        unsigned i = (unsigned)(rng(&seed) % N);
        /* Grow for the first half, then mostly delete, so the table also shrinks. */
        bool add = step < 30000 ? rng(&seed) % 4 != 0 : rng(&seed) % 4 == 0;
        if (add && !in[i]) {
            ck_assert(sst_sidx_add(&x, &s[i]));
            in[i] = true;
            count++;
        } else if (!add && in[i]) {
            sst_sidx_del(&x, &s[i]);
            in[i] = false;
            count--;
        } else if (!add) {
            sst_sidx_del(&x, &s[i]);   /* absent: nothing happens */
        }
        peak = count > peak ? count : peak;
        ck_assert_uint_eq(sst_sidx_count(&x), count);
        check_bounds(&x);
        if (step % every == 0) {
            for (unsigned k = 0; k < N; k++)
                ck_assert_ptr_eq(sst_sidx_find_lsid(&x, (uint16_t)(1 + k * 7)), in[k] ? &s[k] : NULL);
            ck_assert_ptr_null(sst_sidx_find_lsid(&x, 2));   /* never used */
        }
    }
    ck_assert_uint_gt(peak, N / 2);
    for (unsigned k = 0; k < N; k++)
        if (in[k])
            sst_sidx_del(&x, &s[k]);
    ck_assert_uint_eq(sst_sidx_count(&x), 0);
    check_bounds(&x);
    ck_assert_ptr_null(sst_sidx_find_lsid(&x, 1));
    free(s);
    free(in);
}

START_TEST(test_sidx_local_random)
{
    run_lsid(SST_SIDX_LOCAL, 0x1234567, 3000, 97);
    /* A few entries in a small table: probe runs wrap around its end all the time. */
    run_lsid(SST_SIDX_LOCAL, 0x1234567, 12, 1);
}
END_TEST

START_TEST(test_sidx_remote_random)
{
    run_lsid(SST_SIDX_REMOTE, 0x89abcdef, 3000, 97);
    run_lsid(SST_SIDX_REMOTE, 0x89abcdef, 40, 1);
}
END_TEST

/* The local index looks at local LSIDs only: a remote LSID equal to a wanted one is no match. */
START_TEST(test_sidx_key_kind)
{
    struct sst_stream a = { .local_lsid = 5, .remote_lsid = 9 };
    struct sst_sidx loc, rem;
    sst_sidx_init(&loc, SST_SIDX_LOCAL);
    sst_sidx_init(&rem, SST_SIDX_REMOTE);
    ck_assert(sst_sidx_add(&loc, &a));
    ck_assert(sst_sidx_add(&rem, &a));
    ck_assert_ptr_eq(sst_sidx_find_lsid(&loc, 5), &a);
    ck_assert_ptr_null(sst_sidx_find_lsid(&loc, 9));
    ck_assert_ptr_eq(sst_sidx_find_lsid(&rem, 9), &a);
    ck_assert_ptr_null(sst_sidx_find_lsid(&rem, 5));
    sst_sidx_clear(&loc);
    sst_sidx_clear(&rem);
    ck_assert_ptr_null(sst_sidx_find_lsid(&loc, 5));
}
END_TEST

/* USIDs that share their counter or their nonce are told apart by the whole 128 bits. */
START_TEST(test_sidx_usid)
{
    enum { M = 2000 };
    struct sst_stream *s = calloc(M, sizeof *s);
    ck_assert_ptr_nonnull(s);
    struct sst_sidx x;
    sst_sidx_init(&x, SST_SIDX_USID);
    for (unsigned i = 0; i < M; i++) {
        s[i].usid = sst_sid_usid(1 + i / 2, i % 2 ? 0xabcdef : 0x123456);
        ck_assert(sst_sidx_add(&x, &s[i]));
    }
    for (unsigned i = 0; i < M; i++) {
        struct sst_usid u = sst_sid_usid(1 + i / 2, i % 2 ? 0xabcdef : 0x123456);
        ck_assert_ptr_eq(sst_sidx_find_usid(&x, &u), &s[i]);
    }
    struct sst_usid other = sst_sid_usid(1, 0x777);
    ck_assert_ptr_null(sst_sidx_find_usid(&x, &other));
    for (unsigned i = 0; i < M; i += 2)
        sst_sidx_del(&x, &s[i]);
    for (unsigned i = 0; i < M; i++) {
        struct sst_usid u = sst_sid_usid(1 + i / 2, i % 2 ? 0xabcdef : 0x123456);
        ck_assert_ptr_eq(sst_sidx_find_usid(&x, &u), i % 2 ? &s[i] : NULL);
    }
    ck_assert_uint_eq(sst_sidx_count(&x), M / 2);
    check_bounds(&x);
    sst_sidx_clear(&x);
    free(s);
}
END_TEST

int main(void)
{
    if (sodium_init() < 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("stream_index");
    TCase *tc = tcase_create("sidx");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sidx_local_random);
    tcase_add_test(tc, test_sidx_remote_random);
    tcase_add_test(tc, test_sidx_key_kind);
    tcase_add_test(tc, test_sidx_usid);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
