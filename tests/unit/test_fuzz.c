/* The fuzz targets (tests/fuzz/, docs/fuzzing.md) as a regression test: every seed input, then
 * deterministic mutations of them (bit flips, byte and length changes, records cut, repeated
 * or spliced), each run in a fresh engine.  A crash, an abort of a target's own check or (under
 * `make asan`) a sanitizer report fails it.  `make fuzz` runs the same targets under libFuzzer
 * for as long as asked; SST_FUZZ_RUNS=N sets the mutations per target here (default 200). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz_host.c"
#include "../fuzz/fuzz_stream.c"
#include "../fuzz/mutate.h"

/* The host target's seeds are real negotiation datagrams: the target's host answers them. */
static void host_reached(void)
{
    ck_assert_uint_gt(host_answered, 0);
}

/* The stream target's seeds reach B's stream layer, and B's server accepts streams. */
static void stream_reached(void)
{
    ck_assert_uint_gt(stream_injected, 10);
    ck_assert_uint_gt(stream_accepted, 0);
}

START_TEST(test_fuzz_host_seeds_and_mutations)
{
    run_target(fuzz_host_one, fuzz_host_seeds, host_reached, 0x5eed0001, 200);
}
END_TEST

START_TEST(test_fuzz_stream_seeds_and_mutations)
{
    run_target(fuzz_stream_one, fuzz_stream_seeds, stream_reached, 0x5eed0002, 200);
}
END_TEST

/* The host target's own check holds on its seeds: replaying the datagrams of a real handshake
 * (another host key) completes nothing, and the script format reads back what was written. */
START_TEST(test_fuzz_script_format)
{
    uint8_t buf[64];
    size_t len = 0;
    fuzz_put(buf, sizeof buf, &len, 7, "abc", 3);
    fuzz_put(buf, sizeof buf, &len, 2, "", 0);
    fuzz_put(buf, sizeof buf, &len, 9, buf, 100);  /* does not fit: dropped */
    ck_assert_uint_eq(len, 9);
    size_t pos = 0;
    struct fuzz_rec r;
    ck_assert(fuzz_next(buf, len, &pos, &r));
    ck_assert_uint_eq(r.op, 7);
    ck_assert_uint_eq(r.len, 3);
    ck_assert_int_eq(memcmp(r.data, "abc", 3), 0);
    ck_assert(fuzz_next(buf, len, &pos, &r));
    ck_assert_uint_eq(r.op, 2);
    ck_assert_uint_eq(r.len, 0);
    ck_assert(!fuzz_next(buf, len, &pos, &r));
    /* A length beyond the end is cut to what is there. */
    uint8_t cut[] = { 1, 10, 0, 'x', 'y' };
    pos = 0;
    ck_assert(fuzz_next(cut, sizeof cut, &pos, &r));
    ck_assert_uint_eq(r.len, 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz");
    TCase *tc = tcase_create("targets");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fuzz_script_format);
    tcase_add_test(tc, test_fuzz_host_seeds_and_mutations);
    tcase_add_test(tc, test_fuzz_stream_seeds_and_mutations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
