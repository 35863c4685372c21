/* Unit tests for 24-bit sequence number extrapolation (core/seq.c, paper §4.2.2). */
#include <check.h>
#include <stdlib.h>

#include "seq.h"

#define SPAN (1ull << 24)
#define HALF (1ull << 23)

/* splitmix64: a fixed-seed generator so every run tests the same values. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t low(uint64_t v) { return (uint32_t)(v & SST_SEQ_WIRE_MASK); }

START_TEST(test_seq_extrapolate_near_ref)
{
    ck_assert_uint_eq(sst_seq_extrapolate(1000, 1000), 1000);
    ck_assert_uint_eq(sst_seq_extrapolate(1000, 1005), 1005);
    ck_assert_uint_eq(sst_seq_extrapolate(1000, 995), 995);
    ck_assert_uint_eq(sst_seq_extrapolate(1000, 1001), 1001);
}
END_TEST

START_TEST(test_seq_extrapolate_across_boundary_forward)
{
    /* ref just below a multiple of 2^24, packet just above it */
    ck_assert_uint_eq(sst_seq_extrapolate(0xfffffe, 0x000002), 0x1000002);
    ck_assert_uint_eq(sst_seq_extrapolate(0x5fffff0, 0x000010), 0x6000010);
    ck_assert_uint_eq(sst_seq_extrapolate(0xabcfffffffull, 0x000000), 0xabd0000000ull);
}
END_TEST

START_TEST(test_seq_extrapolate_across_boundary_backward)
{
    /* ref just above a multiple of 2^24, late packet from just below it */
    ck_assert_uint_eq(sst_seq_extrapolate(0x1000001, 0xffffff), 0xffffff);
    ck_assert_uint_eq(sst_seq_extrapolate(0x6000010, 0xfffff0), 0x5fffff0);
    ck_assert_uint_eq(sst_seq_extrapolate(0xabd0000000ull, 0xffffff), 0xabcfffffffull);
}
END_TEST

START_TEST(test_seq_extrapolate_half_window_edges)
{
    uint64_t refs[] = { HALF, 0x123456789ull, 0xfffffffffffull, SPAN * 7 + 3 };
    for (size_t i = 0; i < SST_ARRAY_LEN(refs); i++) {
        uint64_t ref = refs[i];
        /* 2^23 - 1 ahead is the farthest forward; exactly 2^23 away resolves backwards. */
        ck_assert_uint_eq(sst_seq_extrapolate(ref, low(ref + HALF - 1)), ref + HALF - 1);
        ck_assert_uint_eq(sst_seq_extrapolate(ref, low(ref - HALF)), ref - HALF);
        ck_assert_uint_eq(sst_seq_extrapolate(ref, low(ref + HALF)), ref - HALF);
    }
}
END_TEST

START_TEST(test_seq_extrapolate_near_zero)
{
    ck_assert_uint_eq(sst_seq_extrapolate(0, 0), 0);
    ck_assert_uint_eq(sst_seq_extrapolate(0, 1), 1);
    ck_assert_uint_eq(sst_seq_extrapolate(0, 0x7fffff), 0x7fffff);
    /* "Behind 0" does not exist: the nearest value with those low bits is above. */
    ck_assert_uint_eq(sst_seq_extrapolate(0, 0xffffff), 0xffffff);
    ck_assert_uint_eq(sst_seq_extrapolate(3, 0xfffff0), 0xfffff0);
    ck_assert_uint_eq(sst_seq_extrapolate(HALF - 1, 0xffffff), 0xffffff);
    /* Once ref is large enough, the backward candidate exists and wins. */
    ck_assert_uint_eq(sst_seq_extrapolate(SPAN + 3, 0xfffff0), 0xfffff0);
}
END_TEST

START_TEST(test_seq_extrapolate_huge_values)
{
    uint64_t top = UINT64_MAX;
    ck_assert_uint_eq(sst_seq_extrapolate(top, low(top)), top);
    ck_assert_uint_eq(sst_seq_extrapolate(top, low(top - 5)), top - 5);
    /* "Ahead of UINT64_MAX" does not exist: the nearest value with those low bits is below. */
    ck_assert_uint_eq(sst_seq_extrapolate(top - 2, low(top - 2 + 5)), top - 2 + 5 - SPAN);
    ck_assert_uint_eq(sst_seq_extrapolate(top - HALF, low(top - 1)), top - 1);
    ck_assert_uint_eq(sst_seq_extrapolate(1ull << 63, low((1ull << 63) + 77)), (1ull << 63) + 77);
    ck_assert_uint_eq(sst_seq_extrapolate(1ull << 63, low((1ull << 63) - 77)), (1ull << 63) - 77);
}
END_TEST

/* Matches the prototype's formula ((int32)(tsn<<8) - (int32)(rxseq<<8)) >> 8 wherever both apply. */
START_TEST(test_seq_extrapolate_matches_prototype_formula)
{
    uint64_t s = 0x5eed0001;
    for (int i = 0; i < 20000; i++) {
        uint64_t ref = SPAN + (rng_next(&s) >> 20); /* well inside the space */
        uint32_t tsn = (uint32_t)rng_next(&s) & SST_SEQ_WIRE_MASK;
        int32_t a = (int32_t)(tsn << 8), b = (int32_t)((uint32_t)ref << 8);
        int64_t delta = (int64_t)((uint32_t)a - (uint32_t)b);
        delta = (int32_t)(uint32_t)delta / 256; /* exact: low 8 bits are 0 */
        ck_assert_msg(sst_seq_extrapolate(ref, tsn) == (uint64_t)((int64_t)ref + delta),
                      "seed 0x5eed0001 iter %d ref %llu tsn %u", i, (unsigned long long)ref, tsn);
    }
}
END_TEST

START_TEST(test_seq_extrapolate_random_roundtrip)
{
    uint64_t s = 0x5eed0002;
    for (int i = 0; i < 50000; i++) {
        /* refs of every magnitude, including the ends of the space */
        unsigned shift = (unsigned)(rng_next(&s) % 64);
        uint64_t ref = rng_next(&s) >> shift;
        if (i % 7 == 0)
            ref = UINT64_MAX - (ref >> 40);
        int64_t delta = (int64_t)(rng_next(&s) % SPAN) - (int64_t)HALF; /* [-2^23, 2^23) */
        uint32_t w = low(ref + (uint64_t)delta);
        uint64_t got = sst_seq_extrapolate(ref, w);
        ck_assert_msg((got & SST_SEQ_WIRE_MASK) == w, "seed 0x5eed0002 iter %d: low bits", i);
        bool exists = delta >= 0 ? ref <= UINT64_MAX - (uint64_t)delta : ref >= (uint64_t)-delta;
        if (exists)
            ck_assert_msg(got == ref + (uint64_t)delta, "seed 0x5eed0002 iter %d: ref %llu delta %lld",
                          i, (unsigned long long)ref, (long long)delta);
        else
            ck_assert_msg((got > ref ? got - ref : ref - got) <= SPAN, "seed 0x5eed0002 iter %d", i);
    }
}
END_TEST

static Suite *seq_suite(void)
{
    Suite *s = suite_create("seq");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_seq_extrapolate_near_ref);
    tcase_add_test(tc, test_seq_extrapolate_across_boundary_forward);
    tcase_add_test(tc, test_seq_extrapolate_across_boundary_backward);
    tcase_add_test(tc, test_seq_extrapolate_half_window_edges);
    tcase_add_test(tc, test_seq_extrapolate_near_zero);
    tcase_add_test(tc, test_seq_extrapolate_huge_values);
    tcase_add_test(tc, test_seq_extrapolate_matches_prototype_formula);
    tcase_add_test(tc, test_seq_extrapolate_random_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(seq_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
