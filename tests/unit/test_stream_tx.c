/* Unit tests for the send side (core/stream_tx.c, core/stream_txrec.c): segmentation,
 * retransmission of lost ranges with fresh records, and re-fragmentation to a smaller MTU. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream_rx.h"
#include "stream_tx.h"
#include "stream_txrec.h"

static uint8_t pattern(uint64_t off) { return (uint8_t)(off * 131 + 7); }

static void write_pattern(struct sst_tx *tx, size_t n)
{
    uint8_t buf[4096];
    while (n > 0) {
        size_t k = SST_MIN(n, sizeof buf);
        for (size_t i = 0; i < k; i++)
            buf[i] = pattern(tx->end + i);
        ck_assert_uint_eq(sst_tx_write(tx, buf, k), k);
        n -= k;
    }
}

START_TEST(test_tx_segmentation)
{
    struct sst_tx tx;
    struct sst_seg seg;
    ck_assert_int_eq(sst_tx_init(&tx, 10000), 0);
    ck_assert(!sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    write_pattern(&tx, 2500);
    sst_tx_close(&tx);
    uint64_t expect_off = 0;
    size_t lens[] = { 1000, 1000, 500 };
    for (int i = 0; i < 3; i++) {
        ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
        ck_assert_uint_eq(seg.off, expect_off);
        ck_assert_uint_eq(seg.len, lens[i]);
        ck_assert(seg.fin == (i == 2));          /* the Close rides on the last segment */
        ck_assert(!seg.retx);
        sst_tx_commit(&tx, &seg);
        expect_off += seg.len;
    }
    ck_assert(!sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    ck_assert(!sst_tx_pending(&tx));
    ck_assert(!sst_tx_done(&tx));
    sst_tx_acked(&tx, 1000, 1000);
    ck_assert_uint_eq(tx.base, 0);               /* out of order: the buffer is still held */
    sst_tx_acked(&tx, 2000, 501);
    sst_tx_acked(&tx, 0, 1000);
    ck_assert(sst_tx_done(&tx));
    ck_assert_uint_eq(sst_tx_space(&tx), 0);     /* closed */
    sst_tx_free(&tx);
}
END_TEST

START_TEST(test_tx_bounded_write)
{
    struct sst_tx tx;
    struct sst_seg seg;
    uint8_t buf[300] = { 0 };
    ck_assert_int_eq(sst_tx_init(&tx, 256), 0);
    ck_assert_uint_eq(sst_tx_write(&tx, buf, 300), 256);
    ck_assert_uint_eq(sst_tx_write(&tx, buf, 1), 0);
    ck_assert(sst_tx_next(&tx, 100, UINT64_MAX, &seg));
    sst_tx_commit(&tx, &seg);
    ck_assert_uint_eq(sst_tx_space(&tx), 0);     /* sent is not acked */
    sst_tx_acked(&tx, seg.off, seg.len);
    ck_assert_uint_eq(sst_tx_space(&tx), 100);
    sst_tx_free(&tx);
}
END_TEST

START_TEST(test_tx_refragment_lost)
{
    /* Three 1000-byte segments; the middle one is lost and the MTU shrinks to 300: the lost
     * range goes out again as 300/300/300/100 segments, then new data follows. */
    struct sst_tx tx;
    struct sst_seg seg;
    ck_assert_int_eq(sst_tx_init(&tx, 10000), 0);
    write_pattern(&tx, 4000);
    for (int i = 0; i < 3; i++) {
        ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
        sst_tx_commit(&tx, &seg);
    }
    sst_tx_acked(&tx, 0, 1000);
    sst_tx_lost(&tx, 1000, 1000);
    sst_tx_acked(&tx, 2000, 1000);
    size_t want[] = { 300, 300, 300, 100 };
    uint64_t off = 1000;
    for (int i = 0; i < 4; i++) {
        ck_assert(sst_tx_next(&tx, 300, UINT64_MAX, &seg));
        ck_assert(seg.retx);
        ck_assert_uint_eq(seg.off, off);
        ck_assert_uint_eq(seg.len, want[i]);
        uint8_t out[300];
        sst_tx_copy(&tx, seg.off, out, seg.len);
        for (size_t j = 0; j < seg.len; j++)
            ck_assert_uint_eq(out[j], pattern(seg.off + j));
        sst_tx_commit(&tx, &seg);
        off += seg.len;
    }
    ck_assert(sst_tx_next(&tx, 300, UINT64_MAX, &seg));
    ck_assert(!seg.retx);
    ck_assert_uint_eq(seg.off, 3000);
    ck_assert_uint_eq(tx.retx_bytes, 1000);
    sst_tx_free(&tx);
}
END_TEST

START_TEST(test_tx_lost_then_late_ack)
{
    /* A segment declared lost whose original packet is acknowledged after all: the acked
     * part is not sent again. */
    struct sst_tx tx;
    struct sst_seg seg;
    ck_assert_int_eq(sst_tx_init(&tx, 10000), 0);
    write_pattern(&tx, 2000);
    ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    sst_tx_commit(&tx, &seg);
    ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    sst_tx_commit(&tx, &seg);
    sst_tx_lost(&tx, 0, 1000);
    sst_tx_lost(&tx, 1000, 1000);
    tx.outstanding += 1;                          /* the late ack below is for a third record */
    sst_tx_acked(&tx, 0, 1000);
    ck_assert(sst_tx_next(&tx, 1500, UINT64_MAX, &seg));
    ck_assert(seg.retx);
    ck_assert_uint_eq(seg.off, 1000);
    ck_assert_uint_eq(seg.len, 1000);
    sst_tx_free(&tx);
}
END_TEST

START_TEST(test_tx_init_bsn_limit)
{
    /* Init/Reply segments may only start below 2^16. */
    struct sst_tx tx;
    struct sst_seg seg;
    ck_assert_int_eq(sst_tx_init(&tx, 200000), 0);
    write_pattern(&tx, 70000);
    uint64_t n = 0;
    while (sst_tx_next(&tx, 1200, 0x10000, &seg)) {
        ck_assert_uint_lt(seg.off, 0x10000);
        sst_tx_commit(&tx, &seg);
        sst_tx_acked(&tx, seg.off, seg.len);
        n += seg.len;
    }
    ck_assert_uint_ge(n, 0x10000);
    ck_assert_uint_lt(n, 70000);
    ck_assert(sst_tx_next(&tx, 1200, UINT64_MAX, &seg));
    sst_tx_free(&tx);
}
END_TEST

START_TEST(test_tx_random_loss_end_to_end)
{
    /* Sender and receiver with random loss and a payload limit that changes every packet:
     * every byte arrives intact and the sender ends with everything acknowledged. */
    srandom(99);
    struct sst_tx tx;
    struct sst_rx rx;
    struct sst_txrec_table recs;
    const size_t total = 300000;
    ck_assert_int_eq(sst_tx_init(&tx, 65536), 0);
    ck_assert_int_eq(sst_rx_init(&rx, 65536), 0);
    sst_txrec_init(&recs, 4096);
    size_t written = 0, readn = 0;
    uint64_t seq = 1;
    /* In-flight packets in a small queue; each is delivered or lost later. */
    enum { Q = 32 };
    uint64_t qseq[Q];
    size_t nq = 0;
    uint8_t pkt[1500];
    while (!sst_tx_done(&tx)) {
        if (written < total) {
            uint8_t buf[8192];
            size_t k = SST_MIN(sizeof buf, total - written);
            for (size_t i = 0; i < k; i++)
                buf[i] = pattern(written + i);
            written += sst_tx_write(&tx, buf, k);
            if (written == total)
                sst_tx_close(&tx);
        }
        struct sst_seg seg;
        size_t mtu = 200 + (size_t)(random() % 1200);
        while (nq < Q && sst_tx_next(&tx, mtu, UINT64_MAX, &seg)) {
            sst_tx_commit(&tx, &seg);
            struct sst_txrec *r = sst_txrec_add(&recs, seq);
            ck_assert_ptr_nonnull(r);
            r->off = seg.off;
            r->span = (uint32_t)(seg.len + seg.fin);
            qseq[nq++] = seq++;
        }
        /* Resolve one random in-flight packet. */
        if (nq == 0)
            continue;
        size_t k = (size_t)random() % nq;
        struct sst_txrec *r = sst_txrec_take(&recs, qseq[k]);
        ck_assert_ptr_nonnull(r);
        qseq[k] = qseq[--nq];
        bool fin = r->span > 0 && r->off + r->span - 1 == tx.end && tx.fin;
        size_t len = r->span - (fin ? 1 : 0);
        if (random() % 5 == 0) {
            sst_tx_lost(&tx, r->off, r->span);
        } else {
            size_t fresh;
            sst_tx_copy(&tx, r->off, pkt, len);
            int rc = sst_rx_insert(&rx, r->off, pkt, len, fin, &fresh);
            if (rc == 0)
                sst_tx_acked(&tx, r->off, r->span);
            else
                sst_tx_lost(&tx, r->off, r->span);   /* receiver could not buffer it */
        }
        sst_txrec_release(&recs, r);
        uint8_t out[65536];
        size_t n = sst_rx_read(&rx, out, sizeof out);
        for (size_t i = 0; i < n; i++)
            ck_assert_uint_eq(out[i], pattern(readn + i));
        readn += n;
    }
    ck_assert_uint_eq(readn, total);
    ck_assert(sst_rx_eof(&rx));
    ck_assert_uint_eq(recs.count, 0);
    ck_assert_uint_le(recs.high_water, Q);
    sst_txrec_free_all(&recs);
    sst_tx_free(&tx);
    sst_rx_free(&rx);
}
END_TEST

START_TEST(test_tx_redundant_copies)
{
    /* A redundant stream: 2500 bytes and the Close go out as three originals, then as three
     * copies (never ahead of an original); a copy whose original was acknowledged meanwhile is
     * skipped, and a lost range still goes before new data.  Copies are not retransmissions. */
    struct sst_tx tx;
    struct sst_seg seg;
    ck_assert_int_eq(sst_tx_init(&tx, 10000), 0);
    tx.redundant = true;
    write_pattern(&tx, 2500);
    sst_tx_close(&tx);
    for (int i = 0; i < 3; i++) {
        ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
        ck_assert(!seg.retx && !seg.copy);
        ck_assert_uint_eq(seg.off, 1000u * (unsigned)i);
        sst_tx_commit(&tx, &seg);
    }
    ck_assert(sst_tx_pending(&tx));
    sst_tx_acked(&tx, 1000, 1000);               /* the second original arrived first */
    ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    ck_assert(seg.copy && seg.retx);
    ck_assert_uint_eq(seg.off, 0);
    ck_assert_uint_eq(seg.len, 1000);
    sst_tx_commit(&tx, &seg);
    ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    ck_assert(seg.copy);
    ck_assert_uint_eq(seg.off, 2000);            /* 1000..2000 skipped: acknowledged */
    ck_assert_uint_eq(seg.len, 500);
    ck_assert(seg.fin);
    sst_tx_commit(&tx, &seg);
    ck_assert(!sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    ck_assert(!sst_tx_pending(&tx));
    ck_assert_uint_eq(tx.dup_bytes, 1500);
    ck_assert_uint_eq(tx.retx_bytes, 0);
    /* Both copies of 0..1000 lost: it is sent again as a retransmission. */
    sst_tx_lost(&tx, 0, 1000);
    ck_assert(sst_tx_next(&tx, 1000, UINT64_MAX, &seg));
    ck_assert(seg.retx && !seg.copy);
    ck_assert_uint_eq(seg.off, 0);
    sst_tx_commit(&tx, &seg);
    ck_assert_uint_eq(tx.retx_bytes, 1000);
    ck_assert(!sst_tx_next(&tx, 1000, UINT64_MAX, &seg));   /* no copy of a retransmission */
    sst_tx_acked(&tx, 0, 1000);
    sst_tx_acked(&tx, 2000, 501);
    ck_assert(sst_tx_done(&tx));
    sst_tx_free(&tx);
}
END_TEST

START_TEST(test_txrec_pool_cap)
{
    struct sst_txrec_table t;
    sst_txrec_init(&t, SST_TXREC_CHUNK);
    for (uint64_t s = 0; s < SST_TXREC_CHUNK; s++)
        ck_assert_ptr_nonnull(sst_txrec_add(&t, s));
    ck_assert_ptr_null(sst_txrec_add(&t, 99999));    /* at the cap */
    struct sst_txrec *r = sst_txrec_take(&t, 17);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->seq, 17);
    ck_assert_ptr_null(sst_txrec_take(&t, 17));
    sst_txrec_release(&t, r);
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 99999)); /* reused, no new chunk */
    ck_assert_uint_eq(t.allocated, SST_TXREC_CHUNK);
    int tag;
    struct sst_txrec *q = sst_txrec_take(&t, 5);
    q->stream = &tag;
    HASH_ADD(hh, t.by_seq, seq, sizeof q->seq, q);
    sst_txrec_forget_stream(&t, &tag);
    ck_assert_ptr_null(sst_txrec_take(&t, 5)->stream);
    sst_txrec_free_all(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_tx");
    TCase *tc = tcase_create("tx");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_tx_segmentation);
    tcase_add_test(tc, test_tx_bounded_write);
    tcase_add_test(tc, test_tx_refragment_lost);
    tcase_add_test(tc, test_tx_lost_then_late_ack);
    tcase_add_test(tc, test_tx_init_bsn_limit);
    tcase_add_test(tc, test_tx_random_loss_end_to_end);
    tcase_add_test(tc, test_tx_redundant_copies);
    tcase_add_test(tc, test_txrec_pool_cap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
