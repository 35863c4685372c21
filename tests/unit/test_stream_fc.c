/* Unit tests for stream flow control (core/stream_fc.c): window encoding and credit accounting. */
#include <check.h>
#include <stdlib.h>

#include "stream_fc.h"

START_TEST(test_fc_encode_table)
{
    static const struct { uint64_t bytes; uint8_t exp; } t[] = {
        { 0, 0 }, { 1, 1 }, { 2, 1 }, { 3, 2 }, { 6, 2 }, { 7, 3 }, { 1023, 10 }, { 1024, 10 },
        { 65534, 15 }, { 65535, 16 }, { 65536, 16 }, { (1ull << 31) - 1, 31 }, { UINT64_MAX, 31 },
    };
    for (size_t i = 0; i < SST_ARRAY_LEN(t); i++)
        ck_assert_msg(sst_fc_win_encode(t[i].bytes) == t[i].exp, "bytes %llu -> %u, want %u",
                      (unsigned long long)t[i].bytes, sst_fc_win_encode(t[i].bytes), t[i].exp);
}
END_TEST

START_TEST(test_fc_encode_never_overpromises)
{
    /* The decoded window never exceeds what the receiver has, and is more than half of it
     * (the encoding's precision, paper §4.3.6). */
    for (uint64_t b = 0; b < 200000; b += 7) {
        uint64_t w = sst_fc_win_decode(sst_fc_win_encode(b));
        ck_assert_uint_le(w, b);
        ck_assert_uint_ge(2 * w + 1, b);
    }
    ck_assert_uint_eq(sst_fc_win_decode(0), 0);
    ck_assert_uint_eq(sst_fc_win_decode(16), 65535);
    ck_assert_uint_eq(sst_fc_win_decode(31), (1ull << 31) - 1);
}
END_TEST

START_TEST(test_fc_tx_credit)
{
    struct sst_fc_tx f;
    sst_fc_tx_init(&f, 0);
    ck_assert(!sst_fc_tx_allows(&f, 1));
    ck_assert(sst_fc_tx_allows(&f, 0));         /* empty segments always go */
    sst_fc_tx_on_window(&f, 10, 12);             /* 4095 bytes */
    ck_assert(sst_fc_tx_allows(&f, 4095));
    ck_assert(!sst_fc_tx_allows(&f, 4096));
    sst_fc_tx_charge(&f, 3000);
    ck_assert(sst_fc_tx_allows(&f, 1095));
    ck_assert(!sst_fc_tx_allows(&f, 1096));
    /* An older update (lower packet sequence number) is ignored. */
    sst_fc_tx_on_window(&f, 9, 20);
    ck_assert(!sst_fc_tx_allows(&f, 2000));
    /* Acknowledging the segment cancels its deduction, even out of order. */
    sst_fc_tx_release(&f, 3000);
    ck_assert(sst_fc_tx_allows(&f, 4095));
    /* A newer, smaller window wins. */
    sst_fc_tx_on_window(&f, 11, 5);
    ck_assert(!sst_fc_tx_allows(&f, 32));
    ck_assert(sst_fc_tx_allows(&f, 31));
    sst_fc_tx_release(&f, 100);                  /* never goes negative */
    ck_assert_uint_eq(f.inflight, 0);
}
END_TEST

START_TEST(test_fc_rx_deduct_and_cancel)
{
    struct sst_fc_rx r;
    sst_fc_rx_init(&r, 65536);
    ck_assert_uint_eq(sst_fc_rx_window(&r), 16);
    sst_fc_rx_charge(&r, 40000);                 /* received and acked, not yet read */
    ck_assert_uint_eq(sst_fc_rx_room(&r), 25536);
    ck_assert_uint_eq(sst_fc_rx_window(&r), 14);
    sst_fc_rx_charge(&r, 30000);                 /* over the limit (a race): room is 0 */
    ck_assert_uint_eq(sst_fc_rx_room(&r), 0);
    ck_assert_uint_eq(sst_fc_rx_window(&r), 0);
    sst_fc_rx_release(&r, 70000);                /* delivered: deduction cancelled */
    ck_assert_uint_eq(sst_fc_rx_window(&r), 16);
}
END_TEST

START_TEST(test_fc_sender_never_overruns_receiver)
{
    /* A sender that obeys the decoded window never makes the receiver hold more than its
     * limit, whatever order the reader and the acks take (deterministic random walk). */
    srandom(7);
    struct sst_fc_rx r;
    struct sst_fc_tx f;
    sst_fc_rx_init(&r, 20000);
    sst_fc_tx_init(&f, 0);
    uint64_t seq = 1;
    sst_fc_tx_on_window(&f, seq++, sst_fc_rx_window(&r));
    uint64_t unacked = 0;
    for (int step = 0; step < 100000; step++) {
        switch (random() % 3) {
        case 0: {                                 /* sender sends a segment if allowed */
            uint64_t len = 1 + (uint64_t)(random() % 1200);
            if (sst_fc_tx_allows(&f, len)) {
                sst_fc_tx_charge(&f, len);
                unacked += len;
            }
            break;
        }
        case 1:                                   /* receiver buffers and acks; the ack */
            sst_fc_rx_charge(&r, unacked);        /* reaches the sender before the update */
            ck_assert_uint_le(r.held, r.limit);
            sst_fc_tx_acked(&f, unacked);
            unacked = 0;
            if (random() % 2)
                sst_fc_tx_on_window(&f, seq++, sst_fc_rx_window(&r));
            break;
        default: {                                /* application reads some */
            uint64_t n = (uint64_t)random() % (r.held + 1);
            sst_fc_rx_release(&r, n);
            sst_fc_tx_on_window(&f, seq++, sst_fc_rx_window(&r));
            break;
        }
        }
    }
}
END_TEST

START_TEST(test_fc_ack_before_window_update)
{
    /* Channel acks can arrive before the window update that reports the receiver's smaller
     * window: acknowledged bytes keep counting until the next update (stream_fc.h). */
    struct sst_fc_tx f;
    sst_fc_tx_init(&f, 0);
    sst_fc_tx_on_window(&f, 1, 12);              /* 4095 */
    sst_fc_tx_charge(&f, 4000);
    sst_fc_tx_acked(&f, 4000);                   /* received, but the reader is asleep */
    ck_assert_uint_eq(f.inflight, 0);
    ck_assert(!sst_fc_tx_allows(&f, 96));        /* would overrun a receiver holding 4000 */
    ck_assert(sst_fc_tx_allows(&f, 95));
    sst_fc_tx_on_window(&f, 2, 6);               /* the update: 63 bytes of room */
    ck_assert(sst_fc_tx_allows(&f, 63));
    ck_assert(!sst_fc_tx_allows(&f, 64));
    /* A lost segment simply stops counting. */
    sst_fc_tx_charge(&f, 60);
    sst_fc_tx_release(&f, 60);
    ck_assert(sst_fc_tx_allows(&f, 63));
    /* The receiver asks for an update once a quarter of its buffer was read. */
    struct sst_fc_rx r;
    sst_fc_rx_init(&r, 1000);
    sst_fc_rx_charge(&r, 600);
    sst_fc_rx_release(&r, 249);
    ck_assert(!sst_fc_rx_update_due(&r));
    sst_fc_rx_release(&r, 1);
    ck_assert(sst_fc_rx_update_due(&r));
    sst_fc_rx_advertised(&r);
    ck_assert(!sst_fc_rx_update_due(&r));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_fc");
    TCase *tc = tcase_create("fc");
    tcase_add_test(tc, test_fc_encode_table);
    tcase_add_test(tc, test_fc_encode_never_overpromises);
    tcase_add_test(tc, test_fc_tx_credit);
    tcase_add_test(tc, test_fc_rx_deduct_and_cancel);
    tcase_add_test(tc, test_fc_sender_never_overruns_receiver);
    tcase_add_test(tc, test_fc_ack_before_window_update);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
