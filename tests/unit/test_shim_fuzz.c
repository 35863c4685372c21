/* The shim's fuzz targets as a regression test, as test_fuzz runs the engine's: their seeds, then
 * deterministic mutations (tests/fuzz/mutate.h).  shimread: the capability file and the INFO
 * answer, as the shim reads what sstd writes (tests/fuzz/fuzz_shimread.c); config: the shim's
 * environment (tests/fuzz/fuzz_config.c).  A crash, an abort of a target's own checks or (under
 * `make asan`) a sanitizer report fails it. */
#include <linux/tcp.h>   /* the kernel's whole struct tcp_info, before netinet's headers */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz_config.c"
#include "../fuzz/fuzz_shimread.c"
#include "../fuzz/mutate.h"

/* The seeds reach the parsers: hosts listed, INFO answers read with their channel's numbers. */
static void shimread_reached(void)
{
    ck_assert_uint_ge(shimread_listed, 3);
    ck_assert_uint_ge(shimread_info_ok, 2);
    ck_assert_uint_ge(shimread_info_chan, 1);
}

/* The seeds configure the shim, match destinations and resolve names; one is refused. */
static void config_reached(void)
{
    ck_assert_uint_ge(config_ok, 3);
    ck_assert_uint_ge(config_failed, 1);
    ck_assert_uint_ge(config_matched, 3);
    ck_assert_uint_ge(config_resolved, 1);
}

START_TEST(test_fuzz_shimread_seeds_and_mutations)
{
    run_target(fuzz_shimread_one, fuzz_shimread_seeds, shimread_reached, 0x5eed0004, 5000);
}
END_TEST

START_TEST(test_fuzz_config_seeds_and_mutations)
{
    run_target(fuzz_config_one, fuzz_config_seeds, config_reached, 0x5eed0005, 5000);
}
END_TEST

/* INFO answers a garbled or foreign sstd could give: the app's getsockopt gets numbers, never a
 * signal (found by the shimread target). */
START_TEST(test_tcpinfo_hostile_answers)
{
    struct shim_tcpinfo_src src;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    ck_assert(shim_tcpinfo_parse("{\"ok\":true,\"cwnd\":14600,\"max_payload\":4294967296}", &src));
    ck_assert_int_eq(shim_tcpinfo_fill(&src, &ti, &len), 0);   /* was SIGFPE */
    ck_assert_uint_eq(ti.tcpi_snd_mss, 1200);
    ck_assert_uint_eq(ti.tcpi_snd_cwnd, 13);
    len = sizeof ti;
    ck_assert(shim_tcpinfo_parse("{\"ok\":true,\"cwnd\":18446744073709551615,\"srtt_ns\":1,"
                                 "\"min_rtt_ns\":1}", &src));
    ck_assert_int_eq(shim_tcpinfo_fill(&src, &ti, &len), 0);
    ck_assert(ti.tcpi_pacing_rate == UINT64_MAX);             /* was 2^63 on x86: undefined */
    ck_assert(shim_tcpinfo_parse("{\"ok\":true,\"cwnd\":-46,\"bytes_written\": 5}", &src));
    ck_assert(!src.have_chan);                                 /* "-46" was 2^64 - 46 */
    ck_assert(!src.have_stream);
    ck_assert(shim_tcpinfo_parse("{\"ok\":true,\"cwnd\":1400,\"max_payload\":1400}", &src));
    len = sizeof ti;
    ck_assert_int_eq(shim_tcpinfo_fill(&src, &ti, &len), 0);
    ck_assert_uint_eq(ti.tcpi_snd_mss, 1400);
    ck_assert_uint_eq(ti.tcpi_snd_cwnd, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shim_fuzz");
    TCase *tc = tcase_create("targets");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_tcpinfo_hostile_answers);
    tcase_add_test(tc, test_fuzz_shimread_seeds_and_mutations);
    tcase_add_test(tc, test_fuzz_config_seeds_and_mutations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
