/* The control target (tests/fuzz/fuzz_control.c: sstd's request parsing, sstctl's JSON reader)
 * as a regression test, as test_fuzz runs the engine's targets: its seeds, then deterministic
 * mutations (tests/fuzz/mutate.h).  A crash, an abort of the target's own checks or (under
 * `make asan`) a sanitizer report fails it. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz_control.c"
#include "../fuzz/mutate.h"

/* The seeds reach every parser: hosts parse, whole requests read, replies parse. */
static void control_reached(void)
{
    ck_assert_uint_ge(control_hosts_ok, 6);
    ck_assert_uint_ge(control_requests_ok, 10);
    ck_assert_uint_ge(control_replies_ok, 5);
}

START_TEST(test_fuzz_control_seeds_and_mutations)
{
    run_target(fuzz_control_one, fuzz_control_seeds, control_reached, 0x5eed0003, 5000);
}
END_TEST

/* The parsers' edges, as sstd answers them. */
START_TEST(test_request_words)
{
    char line[] = "CONNECT\t10.0.0.2  80\rRESET 7 1 2 LINGER0 UTIMEOUT=5000 KEEPALIVE=10,2,3 extra";
    char *w[SSTD_REQ_WORDS];
    ck_assert_uint_eq(sstd_request_split(line, w), 10);
    ck_assert_str_eq(w[0], "CONNECT");
    ck_assert_str_eq(w[2], "80");
    ck_assert_str_eq(w[7], "LINGER0");
    ck_assert_str_eq(w[8], "UTIMEOUT=5000");
    /* Keepalive's word: three whole numbers, all 0 (off) or a positive interval and count. */
    int ka[3];
    ck_assert(sstd_request_keepalive(w[9], ka) && ka[0] == 10 && ka[1] == 2 && ka[2] == 3);
    ck_assert(sstd_request_keepalive("KEEPALIVE=0,0,0", ka) && ka[0] == 0);
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,0,3", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,2,0", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,2", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,2,3,4", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,,3", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=-1,2,3", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,2,3x", ka));
    ck_assert(!sstd_request_keepalive("UTIMEOUT=5", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=,10,2,3", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,2,3,", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=+10,2,3", ka));
    ck_assert(!sstd_request_keepalive("KEEPALIVE=10,2,2147483648", ka));
    ck_assert(sstd_request_keepalive("KEEPALIVE=2147483647,1,1", ka) && ka[0] == 2147483647);
    /* A word longer than any buffer: its fourth field is seen, however far out. */
    char longw[200] = "KEEPALIVE=1,1,1";
    memset(longw + 15, ',', 150);
    strcpy(longw + 165, "5");
    ck_assert(!sstd_request_keepalive(longw, ka));
    /* TCP_USER_TIMEOUT's word (CONNECT's tail, MARK): whole milliseconds 0..INT_MAX only. */
    ck_assert_int_eq(sstd_request_utimeout(w[8]), 5000);
    ck_assert_int_eq(sstd_request_utimeout("UTIMEOUT=0"), 0);
    ck_assert_int_eq(sstd_request_utimeout("UTIMEOUT=2147483647"), 2147483647);
    ck_assert_int_eq(sstd_request_utimeout("UTIMEOUT=2147483648"), -1);
    ck_assert_int_eq(sstd_request_utimeout("UTIMEOUT=-1"), -1);
    ck_assert_int_eq(sstd_request_utimeout("UTIMEOUT="), -1);
    ck_assert_int_eq(sstd_request_utimeout("UTIMEOUT=5s"), -1);
    ck_assert_int_eq(sstd_request_utimeout("LINGER0"), -1);
    long n;
    ck_assert(sstd_request_long("65535", 1, 65535, &n) && n == 65535);
    ck_assert(!sstd_request_long("65536", 1, 65535, &n));
    ck_assert(!sstd_request_long("0", 1, 65535, &n));
    ck_assert(!sstd_request_long("12x", 1, 65535, &n));
    ck_assert(!sstd_request_long("99999999999999999999", 1, 65535, &n));
    ck_assert(!sstd_request_long(NULL, 1, 65535, &n));
    unsigned long long dev, ino;
    ck_assert(sstd_request_devino("2049", "18446744073709551615", &dev, &ino));
    ck_assert(dev == 2049 && ino == 18446744073709551615ULL);
    ck_assert(!sstd_request_devino("2049", "18446744073709551616", &dev, &ino));
    ck_assert(!sstd_request_devino("2049", NULL, &dev, &ino));
    int fd;
    char *ok[4] = { "RESET", "7", "1", "2" }, *neg[4] = { "RESET", "-1", "1", "2" },
         *big[4] = { "RESET", "2147483648", "1", "2" }, *other[4] = { "LINGER0", "7", "1", "2" };
    ck_assert(sstd_request_notify(ok, &fd, &dev, &ino) && fd == 7 && dev == 1 && ino == 2);
    ck_assert(!sstd_request_notify(neg, &fd, &dev, &ino));
    ck_assert(!sstd_request_notify(big, &fd, &dev, &ino));
    ck_assert(!sstd_request_notify(other, &fd, &dev, &ino));
    char empty[] = " \t\r";
    ck_assert_uint_eq(sstd_request_split(empty, w), 0);
    ck_assert_ptr_null(w[0]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("helper_fuzz");
    TCase *tc = tcase_create("control");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_request_words);
    tcase_add_test(tc, test_fuzz_control_seeds_and_mutations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
