/* Unit tests for stream reassembly (core/stream_rx.c): random out-of-order and duplicate
 * segments delivered in order, verified by hash; bounds and end-of-stream checks. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream_rx.h"

#define SEED 20261121u

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
}

START_TEST(test_rx_random_order_dups_hash)
{
    /* 1 MB cut into random segments, delivered in a shuffled order with ~30% duplicates,
     * through a 64 KiB ring; the reader drains whatever is ready between insertions. */
    const size_t total = 1 << 20;
    uint8_t *src = malloc(total), *dst = malloc(total);
    fill_pattern(src, total, SEED);
    srandom(SEED);
    struct sst_rx rx;
    ck_assert_int_eq(sst_rx_init(&rx, 65536), 0);
    size_t got = 0, sent_upto = 0;
    /* Segments not yet accepted, as (offset, length) pairs. */
    enum { MAXQ = 4096 };
    static uint64_t qoff[MAXQ];
    static size_t qlen[MAXQ];
    size_t nq = 0;
    uint64_t fresh_total = 0;
    while (got < total) {
        /* Cut new segments while the queue is short. */
        while (nq < 64 && sent_upto < total) {
            size_t len = 1 + (size_t)(random() % 1400);
            if (len > total - sent_upto)
                len = total - sent_upto;
            qoff[nq] = sent_upto;
            qlen[nq] = len;
            nq++;
            sent_upto += len;
        }
        size_t k = (size_t)random() % nq;
        size_t fresh = 0;
        bool fin = qoff[k] + qlen[k] == total;
        int rc = sst_rx_insert(&rx, qoff[k], src + qoff[k], qlen[k], fin, &fresh);
        ck_assert(rc == 0 || rc == SST_ERR_AGAIN);
        if (rc == 0) {
            fresh_total += fresh;
            if (random() % 10 >= 3) {     /* keep 30% of accepted segments as future duplicates */
                qoff[k] = qoff[nq - 1];
                qlen[k] = qlen[nq - 1];
                nq--;
            }
        }
        size_t n = sst_rx_read(&rx, dst + got, total - got);
        got += n;
        ck_assert_uint_le(got, total);
    }
    ck_assert(sst_rx_eof(&rx));
    ck_assert_uint_eq(fresh_total, total);     /* each byte charged exactly once */
    uint8_t h1[32], h2[32];
    crypto_generichash(h1, sizeof h1, src, total, NULL, 0);
    crypto_generichash(h2, sizeof h2, dst, total, NULL, 0);
    ck_assert_mem_eq(h1, h2, sizeof h1);
    sst_rx_free(&rx);
    free(src);
    free(dst);
}
END_TEST

START_TEST(test_rx_bounded_buffer)
{
    struct sst_rx rx;
    uint8_t data[100] = { 0 };
    size_t fresh;
    ck_assert_int_eq(sst_rx_init(&rx, 100), 0);
    /* Beyond the ring: refused, nothing stored. */
    ck_assert_int_eq(sst_rx_insert(&rx, 50, data, 51, false, &fresh), SST_ERR_AGAIN);
    ck_assert_int_eq(sst_rx_insert(&rx, 50, data, 50, false, &fresh), 0);
    ck_assert_uint_eq(fresh, 50);
    ck_assert_uint_eq(sst_rx_available(&rx), 0);
    ck_assert_int_eq(sst_rx_insert(&rx, 0, data, 50, false, &fresh), 0);
    ck_assert_uint_eq(sst_rx_available(&rx), 100);
    /* Full until read. */
    ck_assert_int_eq(sst_rx_insert(&rx, 100, data, 1, false, &fresh), SST_ERR_AGAIN);
    ck_assert_uint_eq(sst_rx_read(&rx, NULL, 30), 30);
    ck_assert_int_eq(sst_rx_insert(&rx, 100, data, 30, false, &fresh), 0);
    /* A duplicate of old data charges nothing. */
    ck_assert_int_eq(sst_rx_insert(&rx, 10, data, 20, false, &fresh), 0);
    ck_assert_uint_eq(fresh, 0);
    sst_rx_free(&rx);
}
END_TEST

START_TEST(test_rx_range_table_full)
{
    /* Every other byte: the range table fills, then a disjoint segment is refused but one
     * that merges with existing ranges is taken. */
    struct sst_rx rx;
    uint8_t b = 'x';
    size_t fresh;
    ck_assert_int_eq(sst_rx_init(&rx, 4096), 0);
    for (unsigned i = 0; i < SST_RANGESET_MAX; i++)
        ck_assert_int_eq(sst_rx_insert(&rx, 1 + 2 * i, &b, 1, false, &fresh), 0);
    ck_assert_int_eq(sst_rx_insert(&rx, 1000, &b, 1, false, &fresh), SST_ERR_AGAIN);
    ck_assert_int_eq(sst_rx_insert(&rx, 2, &b, 1, false, &fresh), 0);
    ck_assert_int_eq(sst_rx_insert(&rx, 1000, &b, 1, false, &fresh), 0);
    sst_rx_free(&rx);
}
END_TEST

START_TEST(test_rx_fin_consistency)
{
    struct sst_rx rx;
    uint8_t data[10] = { 0 };
    size_t fresh;
    ck_assert_int_eq(sst_rx_init(&rx, 100), 0);
    ck_assert_int_eq(sst_rx_insert(&rx, 20, data, 10, false, &fresh), 0);
    /* A Close before data already received is a protocol violation. */
    ck_assert_int_eq(sst_rx_insert(&rx, 0, data, 10, true, &fresh), SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_rx_insert(&rx, 30, data, 0, true, &fresh), 0);
    ck_assert(!sst_rx_complete(&rx));
    ck_assert_int_eq(sst_rx_insert(&rx, 30, data, 1, false, &fresh), SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_rx_insert(&rx, 0, data, 10, true, &fresh), SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_rx_insert(&rx, 0, data, 10, false, &fresh), 0);
    ck_assert_int_eq(sst_rx_insert(&rx, 10, data, 10, false, &fresh), 0);
    ck_assert(sst_rx_complete(&rx));
    ck_assert(!sst_rx_eof(&rx));
    ck_assert_uint_eq(sst_rx_read(&rx, NULL, 1000), 30);
    ck_assert(sst_rx_eof(&rx));
    sst_rx_free(&rx);
}
END_TEST

START_TEST(test_rx_bsn_wraparound)
{
    struct sst_rx rx;
    ck_assert_int_eq(sst_rx_init(&rx, 16), 0);
    rx.next = rx.ready = 0xfffffff0ull;
    ck_assert_uint_eq(sst_rx_offset32(&rx, 0xfffffff8u), 0xfffffff8ull);
    ck_assert_uint_eq(sst_rx_offset32(&rx, 0x00000004u), 0x100000004ull);  /* wrapped ahead */
    rx.next = rx.ready = 0x100000010ull;
    ck_assert_uint_eq(sst_rx_offset32(&rx, 0xfffffff0u), 0xfffffff0ull);   /* old duplicate */
    rx.next = rx.ready = 5;
    ck_assert_uint_eq(sst_rx_offset32(&rx, 0xfffffff0u), 0);               /* clamped at 0 */
    sst_rx_free(&rx);
}
END_TEST

int main(void)
{
    if (sodium_init() < 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("stream_rx");
    TCase *tc = tcase_create("reassembly");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_rx_random_order_dups_hash);
    tcase_add_test(tc, test_rx_bounded_buffer);
    tcase_add_test(tc, test_rx_range_table_full);
    tcase_add_test(tc, test_rx_fin_consistency);
    tcase_add_test(tc, test_rx_bsn_wraparound);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
