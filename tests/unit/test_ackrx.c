/* Unit tests for the receiver-side ack tracker (core/ackrx.c, paper §4.2.4, RFC 9000 §13.2.1). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ackrx.h"
#include "seq.h"

#define DELAY SST_MS(10)

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void expect_ranges(const struct sst_ackrx *a, const uint64_t (*want)[2], unsigned n)
{
    ck_assert_uint_eq(a->n, n);
    for (unsigned i = 0; i < n; i++) {
        ck_assert_msg(a->r[i].hi == want[i][0] && a->r[i].lo == want[i][1],
                      "range %u: [%llu,%llu] want [%llu,%llu]", i, (unsigned long long)a->r[i].lo,
                      (unsigned long long)a->r[i].hi, (unsigned long long)want[i][1],
                      (unsigned long long)want[i][0]);
    }
}

static void recv_all(struct sst_ackrx *a, const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sst_ackrx_on_packet(a, seqs[i], true, 0);
}

START_TEST(test_ackrx_init_state)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    ck_assert_uint_eq(a.n, 0);
    ck_assert_uint_eq(a.ack_every, 2);
    ck_assert_uint_eq(a.max_ack_delay, DELAY);
    ck_assert_uint_eq(a.ack_deadline, SST_TIME_NEVER);
    ck_assert(!sst_ackrx_ack_due(&a, SST_SEC(100)));
    uint64_t asn = 99;
    uint8_t ct = 99;
    sst_ackrx_header_range(&a, &asn, &ct);
    ck_assert_uint_eq(asn, 0);
    ck_assert_uint_eq(ct, 0);
}
END_TEST

START_TEST(test_ackrx_ack_every_two)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    sst_ackrx_on_packet(&a, 1, true, SST_MS(1));
    ck_assert(!sst_ackrx_ack_due(&a, SST_MS(1)));
    sst_ackrx_on_packet(&a, 2, true, SST_MS(2));
    ck_assert(sst_ackrx_ack_due(&a, SST_MS(2)));
    ck_assert(!a.immediate);
    sst_ackrx_on_ack_sent(&a);
    ck_assert(!sst_ackrx_ack_due(&a, SST_MS(2)));
    ck_assert_uint_eq(a.ack_deadline, SST_TIME_NEVER);
    sst_ackrx_on_packet(&a, 3, true, SST_MS(3));
    ck_assert(!sst_ackrx_ack_due(&a, SST_MS(3)));
    sst_ackrx_on_packet(&a, 4, true, SST_MS(3));
    ck_assert(sst_ackrx_ack_due(&a, SST_MS(3)));
}
END_TEST

START_TEST(test_ackrx_delayed_ack_deadline)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    a.ack_every = 4;
    sst_ackrx_on_packet(&a, 1, true, SST_MS(100));
    ck_assert_uint_eq(a.ack_deadline, SST_MS(110));
    /* Later packets do not push the deadline back: the first unacked packet sets it. */
    sst_ackrx_on_packet(&a, 2, true, SST_MS(105));
    ck_assert_uint_eq(a.ack_deadline, SST_MS(110));
    ck_assert(!sst_ackrx_ack_due(&a, SST_MS(110) - 1));
    ck_assert(sst_ackrx_ack_due(&a, SST_MS(110)));
    sst_ackrx_on_ack_sent(&a);
    ck_assert(!sst_ackrx_ack_due(&a, SST_MS(200)));
    sst_ackrx_on_packet(&a, 3, true, SST_MS(200));
    ck_assert_uint_eq(a.ack_deadline, SST_MS(210));
}
END_TEST

START_TEST(test_ackrx_non_eliciting_never_triggers)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    sst_ackrx_on_packet(&a, 1, false, 0);
    sst_ackrx_on_packet(&a, 2, false, 0);
    sst_ackrx_on_packet(&a, 5, false, 0); /* a gap, but in pure acks: acking it would loop */
    ck_assert_uint_eq(a.unacked_eliciting, 0);
    ck_assert_uint_eq(a.ack_deadline, SST_TIME_NEVER);
    ck_assert(!a.immediate);
    ck_assert(!sst_ackrx_ack_due(&a, SST_SEC(10)));
    /* ...but they are recorded, so the next ack covers them. */
    static const uint64_t want[][2] = { { 5, 5 }, { 2, 1 } };
    expect_ranges(&a, want, 2);
}
END_TEST

START_TEST(test_ackrx_gap_sets_immediate)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    sst_ackrx_on_packet(&a, 1, true, 0);
    sst_ackrx_on_ack_sent(&a);
    sst_ackrx_on_packet(&a, 3, true, 0);
    ck_assert(a.immediate);
    ck_assert(sst_ackrx_ack_due(&a, 0));
    static const uint64_t want[][2] = { { 3, 3 }, { 1, 1 } };
    expect_ranges(&a, want, 2);
}
END_TEST

START_TEST(test_ackrx_first_packet_after_loss_is_gap)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    sst_ackrx_on_packet(&a, 2, true, 0); /* packet 1 lost */
    ck_assert(a.immediate);
}
END_TEST

START_TEST(test_ackrx_reorder_fill_sets_immediate_and_merges)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    static const uint64_t seqs[] = { 1, 2, 4 };
    recv_all(&a, seqs, 3);
    sst_ackrx_on_ack_sent(&a);
    sst_ackrx_on_packet(&a, 3, true, 0);
    ck_assert(a.immediate);
    static const uint64_t want[][2] = { { 4, 1 } };
    expect_ranges(&a, want, 1);
    uint64_t asn;
    uint8_t ct;
    sst_ackrx_header_range(&a, &asn, &ct);
    ck_assert_uint_eq(asn, 4);
    ck_assert_uint_eq(ct, 3);
}
END_TEST

/* Figure 4 of the paper: 1..7 received except 4. */
START_TEST(test_ackrx_paper_figure4)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    static const uint64_t seqs[] = { 1, 2, 3, 5, 6, 7 };
    static const uint64_t asns[] = { 1, 2, 3, 5, 6, 7 };
    static const uint8_t cts[] = { 0, 1, 2, 0, 1, 2 };
    for (size_t i = 0; i < SST_ARRAY_LEN(seqs); i++) {
        sst_ackrx_on_packet(&a, seqs[i], true, 0);
        uint64_t asn;
        uint8_t ct;
        sst_ackrx_header_range(&a, &asn, &ct);
        ck_assert_uint_eq(asn, asns[i]);
        ck_assert_uint_eq(ct, cts[i]);
    }
    static const uint64_t want[][2] = { { 7, 5 }, { 3, 1 } };
    expect_ranges(&a, want, 2);
}
END_TEST

START_TEST(test_ackrx_ackct_capped_at_15)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    for (uint64_t s = 1; s <= 100; s++) {
        sst_ackrx_on_packet(&a, s, true, 0);
        uint64_t asn;
        uint8_t ct;
        sst_ackrx_header_range(&a, &asn, &ct);
        ck_assert_uint_eq(asn, s);
        ck_assert_uint_eq(ct, s - 1 < 15 ? s - 1 : 15); /* run length - 1, at most 15 */
    }
    static const uint64_t want[][2] = { { 100, 1 } };
    expect_ranges(&a, want, 1);
}
END_TEST

START_TEST(test_ackrx_merge_from_below_and_above)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    static const uint64_t seqs[] = { 5, 6, 7, 8, 10, 11, 12, 20 };
    recv_all(&a, seqs, SST_ARRAY_LEN(seqs));
    static const uint64_t w1[][2] = { { 20, 20 }, { 12, 10 }, { 8, 5 } };
    expect_ranges(&a, w1, 3);
    sst_ackrx_on_packet(&a, 9, true, 0); /* joins [10,12] and [5,8] */
    static const uint64_t w2[][2] = { { 20, 20 }, { 12, 5 } };
    expect_ranges(&a, w2, 2);
    sst_ackrx_on_packet(&a, 13, true, 0); /* extends [5,12] upwards */
    sst_ackrx_on_packet(&a, 19, true, 0); /* extends [20,20] downwards */
    static const uint64_t w3[][2] = { { 20, 19 }, { 13, 5 } };
    expect_ranges(&a, w3, 2);
    sst_ackrx_on_packet(&a, 16, true, 0); /* a new range in the middle */
    static const uint64_t w4[][2] = { { 20, 19 }, { 16, 16 }, { 13, 5 } };
    expect_ranges(&a, w4, 3);
    sst_ackrx_on_packet(&a, 2, true, 0); /* a new oldest range */
    sst_ackrx_on_packet(&a, 4, true, 0); /* joins [5,13] from below */
    static const uint64_t w5[][2] = { { 20, 19 }, { 16, 16 }, { 13, 4 }, { 2, 2 } };
    expect_ranges(&a, w5, 4);
    sst_ackrx_on_packet(&a, 3, true, 0);
    static const uint64_t w6[][2] = { { 20, 19 }, { 16, 16 }, { 13, 2 } };
    expect_ranges(&a, w6, 3);
}
END_TEST

START_TEST(test_ackrx_duplicate_and_zero_ignored)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    sst_ackrx_on_packet(&a, 1, true, 0);
    sst_ackrx_on_packet(&a, 1, true, 0);
    sst_ackrx_on_packet(&a, 0, true, 0);
    ck_assert_uint_eq(a.unacked_eliciting, 1);
    ck_assert(!a.immediate);
    static const uint64_t want[][2] = { { 1, 1 } };
    expect_ranges(&a, want, 1);
}
END_TEST

START_TEST(test_ackrx_bounded_drops_oldest)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    /* odd numbers 1..39: 20 separate ranges, only the newest 16 fit */
    for (uint64_t s = 1; s <= 39; s += 2)
        sst_ackrx_on_packet(&a, s, true, 0);
    ck_assert_uint_eq(a.n, SST_ACKRX_RANGES);
    ck_assert_uint_eq(a.r[0].hi, 39);
    ck_assert_uint_eq(a.r[SST_ACKRX_RANGES - 1].lo, 9);
    for (unsigned i = 0; i < a.n; i++)
        ck_assert_uint_eq(a.r[i].lo, 39 - 2 * i);
    /* Older than everything remembered and not adjacent: dropped, nothing newer evicted. */
    sst_ackrx_on_packet(&a, 3, true, 0);
    ck_assert_uint_eq(a.n, SST_ACKRX_RANGES);
    ck_assert_uint_eq(a.r[SST_ACKRX_RANGES - 1].lo, 9);
    /* Adjacent to the oldest remembered range: still recorded. */
    sst_ackrx_on_packet(&a, 8, true, 0);
    ck_assert_uint_eq(a.r[SST_ACKRX_RANGES - 1].lo, 8);
    /* A new newest range evicts the oldest. */
    sst_ackrx_on_packet(&a, 45, true, 0);
    ck_assert_uint_eq(a.n, SST_ACKRX_RANGES);
    ck_assert_uint_eq(a.r[0].hi, 45);
    ck_assert_uint_eq(a.r[SST_ACKRX_RANGES - 1].lo, 11);
}
END_TEST

START_TEST(test_ackrx_prunes_beyond_outstanding_bound)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    sst_ackrx_on_packet(&a, 1, true, 0);
    sst_ackrx_on_packet(&a, 1 + SST_SEQ_MAX_OUTSTANDING, true, 0);
    ck_assert_uint_eq(a.n, 2); /* exactly at the bound: kept */
    sst_ackrx_on_packet(&a, 3 + SST_SEQ_MAX_OUTSTANDING, true, 0);
    ck_assert_uint_eq(a.n, 2); /* [1,1] is now too far below the newest: forgotten */
    ck_assert_uint_eq(a.r[1].lo, 1 + SST_SEQ_MAX_OUTSTANDING);
    ck_assert_uint_eq(a.r[0].hi, 3 + SST_SEQ_MAX_OUTSTANDING);
}
END_TEST

START_TEST(test_ackrx_ranges_copy_bounded)
{
    struct sst_ackrx a;
    sst_ackrx_init(&a, DELAY);
    static const uint64_t seqs[] = { 1, 3, 5, 7 };
    recv_all(&a, seqs, 4);
    struct sst_ack_range out[3];
    memset(out, 0xee, sizeof out);
    ck_assert_uint_eq(sst_ackrx_ranges(&a, out, 2), 2);
    ck_assert_uint_eq(out[0].hi, 7);
    ck_assert_uint_eq(out[1].hi, 5);
    ck_assert_uint_eq(out[2].hi, 0xeeeeeeeeeeeeeeeeull); /* untouched beyond max */
    struct sst_ack_range all[SST_ACKRX_RANGES];
    ck_assert_uint_eq(sst_ackrx_ranges(&a, all, SST_ACKRX_RANGES), 4);
    ck_assert_uint_eq(all[3].lo, 1);
}
END_TEST

/* Random local reordering and a few losses, compared with the set of received numbers: the
 * tracker must hold exactly the runs of that set, newest first (never more than 16 here). */
START_TEST(test_ackrx_matches_model)
{
    enum { N = 400 };
    for (uint64_t seed = 0x5eed0201; seed < 0x5eed0201 + 20; seed++) {
        uint64_t s = seed;
        uint64_t order[N];
        bool got[N + 1];
        memset(got, 0, sizeof got);
        for (unsigned i = 0; i < N; i++)
            order[i] = i + 1;
        for (unsigned i = 0; i + 1 < N; i++) { /* swaps of neighbours up to 3 apart */
            unsigned j = i + (unsigned)(rng_next(&s) % 4);
            if (j < N) {
                uint64_t t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        struct sst_ackrx a;
        sst_ackrx_init(&a, DELAY);
        uint64_t top = 0;
        for (unsigned i = 0; i < N; i++) {
            if (rng_next(&s) % 50 == 0)
                continue; /* lost */
            uint64_t seq = order[i];
            bool in_order = seq == top + 1;
            sst_ackrx_on_packet(&a, seq, true, 0);
            got[seq] = true;
            ck_assert_msg(a.immediate == !in_order,
                          "seed %llx: immediate wrong for %llu",
                          (unsigned long long)seed, (unsigned long long)seq);
            if (seq > top)
                top = seq;
            sst_ackrx_on_ack_sent(&a);
            /* model: runs of `got`, newest first */
            unsigned k = 0;
            uint64_t v = top;
            while (v >= 1) {
                while (v >= 1 && !got[v])
                    v--;
                if (v == 0)
                    break;
                uint64_t hi = v;
                while (v >= 1 && got[v])
                    v--;
                ck_assert_msg(k < SST_ACKRX_RANGES, "seed %llx: model exceeded 16 ranges",
                              (unsigned long long)seed);
                ck_assert_msg(a.r[k].hi == hi && a.r[k].lo == v + 1,
                              "seed %llx step %u range %u: [%llu,%llu] want [%llu,%llu]",
                              (unsigned long long)seed, i, k, (unsigned long long)a.r[k].lo,
                              (unsigned long long)a.r[k].hi, (unsigned long long)(v + 1),
                              (unsigned long long)hi);
                k++;
            }
            ck_assert_uint_eq(a.n, k);
        }
    }
}
END_TEST

static Suite *ackrx_suite(void)
{
    Suite *s = suite_create("ackrx");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ackrx_init_state);
    tcase_add_test(tc, test_ackrx_ack_every_two);
    tcase_add_test(tc, test_ackrx_delayed_ack_deadline);
    tcase_add_test(tc, test_ackrx_non_eliciting_never_triggers);
    tcase_add_test(tc, test_ackrx_gap_sets_immediate);
    tcase_add_test(tc, test_ackrx_first_packet_after_loss_is_gap);
    tcase_add_test(tc, test_ackrx_reorder_fill_sets_immediate_and_merges);
    tcase_add_test(tc, test_ackrx_paper_figure4);
    tcase_add_test(tc, test_ackrx_ackct_capped_at_15);
    tcase_add_test(tc, test_ackrx_merge_from_below_and_above);
    tcase_add_test(tc, test_ackrx_duplicate_and_zero_ignored);
    tcase_add_test(tc, test_ackrx_bounded_drops_oldest);
    tcase_add_test(tc, test_ackrx_prunes_beyond_outstanding_bound);
    tcase_add_test(tc, test_ackrx_ranges_copy_bounded);
    tcase_add_test(tc, test_ackrx_matches_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ackrx_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
