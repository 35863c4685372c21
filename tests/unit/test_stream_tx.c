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
        struct sst_txrec rec, *r = &rec;
        ck_assert(sst_txrec_take(&recs, qseq[k], r));
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

START_TEST(test_txrec_ring_basic)
{
    /* Records are found by sequence number, taken once, and the ring only spans what is live. */
    struct sst_txrec_table t;
    sst_txrec_init(&t, 4096);
    ck_assert_ptr_null(t.ring);                         /* nothing allocated before use */
    for (uint64_t s = 1; s <= 10; s++) {
        struct sst_txrec *r = sst_txrec_add(&t, s);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(r->seq, s);
        ck_assert_uint_eq(r->off, 0);
        r->off = 100 * s;
    }
    ck_assert_ptr_null(sst_txrec_add(&t, 4));           /* one record per sequence number */
    ck_assert_uint_eq(t.count, 10);
    ck_assert_uint_eq(t.size, SST_TXREC_MIN_RING);
    struct sst_txrec r;
    ck_assert(sst_txrec_take(&t, 5, &r));
    ck_assert_uint_eq(r.seq, 5);
    ck_assert_uint_eq(r.off, 500);
    ck_assert(!sst_txrec_take(&t, 5, &r));              /* taken once */
    ck_assert_ptr_null(sst_txrec_find(&t, 5));
    ck_assert(!sst_txrec_take(&t, 11, &r));             /* never added */
    ck_assert(!sst_txrec_take(&t, 0, &r));
    ck_assert(sst_txrec_take(&t, 1, &r));
    ck_assert(sst_txrec_take(&t, 2, &r));
    ck_assert_uint_eq(t.base, 3);                       /* advanced past the taken prefix */
    ck_assert(sst_txrec_take(&t, 10, &r));
    ck_assert_uint_eq(t.top, 10);
    /* Iterating base..top visits exactly the live records, in order. */
    uint64_t want[] = { 3, 4, 6, 7, 8, 9 }, n = 0;
    for (uint64_t q = t.base; q < t.top; q++) {
        struct sst_txrec *p = sst_txrec_find(&t, q);
        if (p == NULL)
            continue;
        ck_assert_uint_lt(n, 6);
        ck_assert_uint_eq(p->seq, want[n]);
        ck_assert_uint_eq(p->off, 100 * want[n]);
        n++;
    }
    ck_assert_uint_eq(n, 6);
    int tag;
    sst_txrec_find(&t, 7)->stream = &tag;
    sst_txrec_find(&t, 8)->stream = &tag;
    sst_txrec_forget_stream(&t, &tag);
    ck_assert_ptr_null(sst_txrec_find(&t, 7)->stream);
    ck_assert_ptr_null(sst_txrec_find(&t, 8)->stream);
    ck_assert_ptr_nonnull(sst_txrec_find(&t, 8));       /* forgotten, not removed */
    ck_assert_uint_eq(t.high_water, 10);
    /* Trim only frees an empty table. */
    sst_txrec_trim(&t);
    ck_assert_ptr_nonnull(t.ring);
    for (uint64_t q = 3; q <= 9; q++)
        (void)sst_txrec_take(&t, q, &r);
    ck_assert_uint_eq(t.count, 0);
    sst_txrec_trim(&t);
    ck_assert_ptr_null(t.ring);
    ck_assert_uint_eq(t.high_water, 10);
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 1000));     /* allocated again on use */
    sst_txrec_free_all(&t);
}
END_TEST

START_TEST(test_txrec_ring_wraparound)
{
    /* A sliding window of 50 live records over 100 000 sequence numbers, resolved in a shuffled
     * order within the window: the ring wraps many times, never grows past the window's span,
     * and every record comes back with its own contents. */
    srandom(7);
    struct sst_txrec_table t;
    sst_txrec_init(&t, 65536);
    enum { W = 50 };
    uint64_t live[W];
    size_t nlive = 0;
    uint64_t next = 1;
    while (next < 100000 || nlive > 0) {
        while (next < 100000 && nlive < W) {
            struct sst_txrec *p = sst_txrec_add(&t, next);
            ck_assert_ptr_nonnull(p);
            p->off = next * 3;
            p->span = (uint32_t)(next & 0xffff);
            live[nlive++] = next++;
        }
        size_t k = (size_t)random() % nlive;
        struct sst_txrec r;
        ck_assert(sst_txrec_take(&t, live[k], &r));
        ck_assert_uint_eq(r.seq, live[k]);
        ck_assert_uint_eq(r.off, live[k] * 3);
        ck_assert_uint_eq(r.span, live[k] & 0xffff);
        live[k] = live[--nlive];
        ck_assert_uint_eq(t.count, nlive);
    }
    /* The oldest record can lag behind, so the span exceeds W, but it stays bounded. */
    ck_assert_uint_le(t.size, 4096);
    ck_assert_uint_eq(t.high_water, W);
    sst_txrec_free_all(&t);
}
END_TEST

START_TEST(test_txrec_ring_gaps_and_cap)
{
    /* Sequence numbers without records (the channel's own packets) still count in the span:
     * the ring grows across a gap, keeps the old records, and refuses a span beyond the cap. */
    struct sst_txrec_table t;
    sst_txrec_init(&t, 1000);
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 10));
    sst_txrec_find(&t, 10)->off = 42;
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 900));      /* a gap of 889: grows to 1024 */
    ck_assert_uint_eq(t.size, 1024);
    ck_assert_uint_eq(sst_txrec_find(&t, 10)->off, 42); /* kept across the growth */
    ck_assert_ptr_null(sst_txrec_add(&t, 1010));        /* 10..1010 spans 1001 > cap */
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 1009));     /* 10..1009 spans exactly 1000 */
    struct sst_txrec r;
    ck_assert(sst_txrec_take(&t, 10, &r));
    ck_assert_uint_eq(r.off, 42);
    ck_assert_uint_eq(t.base, 900);                     /* jumped the gap */
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 1010));     /* fits now */
    /* A large jump once everything is resolved needs no growth: the window restarts there. */
    ck_assert(sst_txrec_take(&t, 900, &r));
    ck_assert(sst_txrec_take(&t, 1009, &r));
    ck_assert(sst_txrec_take(&t, 1010, &r));
    ck_assert_uint_eq(t.count, 0);
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 5000000000ull));
    ck_assert_uint_eq(t.size, 1024);
    /* A refused packet's number is asked for again (stream_sched.c fill): a record for a
     * number below a live one is fine while the span fits. */
    ck_assert(sst_txrec_take(&t, 5000000000ull, &r));
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 5000000002ull));
    ck_assert_ptr_nonnull(sst_txrec_add(&t, 5000000001ull));
    ck_assert_uint_eq(t.base, 5000000001ull);
    ck_assert_uint_eq(t.top, 5000000003ull);
    ck_assert_uint_eq(t.count, 2);
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
    tcase_add_test(tc, test_txrec_ring_basic);
    tcase_add_test(tc, test_txrec_ring_wraparound);
    tcase_add_test(tc, test_txrec_ring_gaps_and_cap);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
