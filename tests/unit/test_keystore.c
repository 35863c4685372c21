/* Unit tests for the keystore (core/io/keystore.c): identity creation and reload, TOFU pinning,
 * refusal of changed keys with the documented override message, and corrupt files. */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "io/keystore.h"

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sst-keystore-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    unsetenv(SST_KEYSTORE_ENV_ACCEPT);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *name, const char *text, mode_t mode)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(p, mode), 0);
}

static void key(uint8_t pk[32], uint8_t b) { memset(pk, b, 32); }

START_TEST(test_keystore_identity_created_0600_and_reloaded)
{
    char sub[300], err[SST_KEYSTORE_ERRLEN] = "";
    snprintf(sub, sizeof sub, "%s/a/b/sst", dir);
    struct sst_keystore *ks = sst_keystore_open(sub, err, sizeof err);
    ck_assert_msg(ks != NULL, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0700);
    struct sst_identity a, b;
    ck_assert_int_eq(sst_keystore_identity(ks, &a, err, sizeof err), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/host_key", sub);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_uint_eq(st.st_size, 65);
    uint8_t pk[32];
    crypto_scalarmult_base(pk, a.sk);
    ck_assert_mem_eq(pk, a.pk, 32);
    sst_keystore_close(ks);
    /* A fresh open of the same directory gives the same key. */
    ks = sst_keystore_open(sub, err, sizeof err);
    ck_assert_int_eq(sst_keystore_identity(ks, &b, err, sizeof err), 0);
    ck_assert_mem_eq(a.sk, b.sk, 32);
    ck_assert_mem_eq(a.pk, b.pk, 32);
    /* The .pub file holds the public key in hex. */
    char hex[65], buf[80] = "";
    sodium_bin2hex(hex, sizeof hex, a.pk, 32);
    snprintf(p, sizeof p, "%s/host_key.pub", sub);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    fclose(f);
    ck_assert(strncmp(buf, hex, 64) == 0);
    sst_keystore_close(ks);
}
END_TEST

START_TEST(test_keystore_default_dir_order)
{
    char buf[512];
    setenv("SST_KEYDIR", "/x/keys", 1);
    setenv("XDG_CONFIG_HOME", "/x/xdg", 1);
    setenv("HOME", "/x/home", 1);
    ck_assert_int_eq(sst_keystore_default_dir(buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/x/keys");
    unsetenv("SST_KEYDIR");
    ck_assert_int_eq(sst_keystore_default_dir(buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/x/xdg/sst");
    unsetenv("XDG_CONFIG_HOME");
    ck_assert_int_eq(sst_keystore_default_dir(buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/x/home/.config/sst");
    ck_assert_int_eq(sst_keystore_default_dir(buf, 5), SST_ERR_INVAL);
    /* open(NULL) uses it. */
    setenv("SST_KEYDIR", dir, 1);
    char err[SST_KEYSTORE_ERRLEN];
    struct sst_keystore *ks = sst_keystore_open(NULL, err, sizeof err);
    ck_assert_ptr_nonnull(ks);
    ck_assert_str_eq(sst_keystore_dir(ks), dir);
    sst_keystore_close(ks);
    unsetenv("SST_KEYDIR");
}
END_TEST

START_TEST(test_keystore_tofu_pin_and_changed_key_refused)
{
    char err[SST_KEYSTORE_ERRLEN] = "";
    struct sst_keystore *ks = sst_keystore_open(dir, err, sizeof err);
    uint8_t k1[32], k2[32];
    key(k1, 0x11);
    key(k2, 0x22);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "10.0.0.2", k1, err, sizeof err), 0);   /* pinned */
    ck_assert_int_eq(sst_keystore_check_peer(ks, "10.0.0.2", k1, err, sizeof err), 0);   /* matches */
    ck_assert_int_eq(sst_keystore_check_peer(ks, "server.example", k2, err, sizeof err), 0);
    err[0] = '\0';
    ck_assert_int_eq(sst_keystore_check_peer(ks, "10.0.0.2", k2, err, sizeof err), SST_ERR_IDENTITY);
    /* The message names the host, both fingerprints, the file and line, and every override. */
    char fp1[65], fp2[65], kh[400];
    sst_identity_fingerprint(k1, fp1);
    sst_identity_fingerprint(k2, fp2);
    snprintf(kh, sizeof kh, "%s/known_hosts", dir);
    ck_assert_ptr_nonnull(strstr(err, "HOST KEY FOR 10.0.0.2 HAS CHANGED"));
    ck_assert_ptr_nonnull(strstr(err, fp1));
    ck_assert_ptr_nonnull(strstr(err, fp2));
    ck_assert_ptr_nonnull(strstr(err, "remove line 1 from"));
    ck_assert_ptr_nonnull(strstr(err, kh));
    ck_assert_ptr_nonnull(strstr(err, "sstctl forget 10.0.0.2"));
    ck_assert_ptr_nonnull(strstr(err, "SST_ACCEPT_CHANGED_HOSTKEY=10.0.0.2"));
    /* Refusal is stable: the pin was not replaced. */
    ck_assert_int_eq(sst_keystore_check_peer(ks, "10.0.0.2", k2, err, sizeof err), SST_ERR_IDENTITY);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "10.0.0.2", k1, err, sizeof err), 0);
    /* known_hosts is 0600. */
    struct stat st;
    ck_assert_int_eq(stat(kh, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    sst_keystore_close(ks);
}
END_TEST

START_TEST(test_keystore_overrides)
{
    char err[SST_KEYSTORE_ERRLEN] = "";
    struct sst_keystore *ks = sst_keystore_open(dir, err, sizeof err);
    uint8_t k1[32], k2[32], k3[32];
    key(k1, 1), key(k2, 2), key(k3, 3);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostA", k1, err, sizeof err), 0);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostB", k1, err, sizeof err), 0);
    /* Env override for another host does not help. */
    setenv(SST_KEYSTORE_ENV_ACCEPT, "hostB", 1);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostA", k2, err, sizeof err), SST_ERR_IDENTITY);
    /* For this host: accepted and re-pinned. */
    setenv(SST_KEYSTORE_ENV_ACCEPT, "hostA", 1);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostA", k2, err, sizeof err), 0);
    unsetenv(SST_KEYSTORE_ENV_ACCEPT);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostA", k2, err, sizeof err), 0);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostA", k1, err, sizeof err), SST_ERR_IDENTITY);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostB", k1, err, sizeof err), 0);   /* untouched */
    /* forget: the next key is pinned afresh. */
    ck_assert_int_eq(sst_keystore_forget(ks, "hostA", err, sizeof err), 1);
    ck_assert_int_eq(sst_keystore_forget(ks, "hostA", err, sizeof err), 0);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostA", k3, err, sizeof err), 0);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostA", k2, err, sizeof err), SST_ERR_IDENTITY);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "hostB", k3, err, sizeof err), SST_ERR_IDENTITY);
    /* Names with whitespace are refused rather than corrupting the file. */
    ck_assert_int_eq(sst_keystore_check_peer(ks, "bad name", k1, err, sizeof err), SST_ERR_INVAL);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "", k1, err, sizeof err), SST_ERR_INVAL);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "evil\nhostB", k1, err, sizeof err), SST_ERR_INVAL);
    sst_keystore_close(ks);
}
END_TEST

START_TEST(test_keystore_verify_cb)
{
    char err[SST_KEYSTORE_ERRLEN] = "";
    struct sst_keystore *ks = sst_keystore_open(dir, err, sizeof err);
    struct sst_addr a;
    memset(&a, 0, sizeof a);
    a.family = SST_AF_INET4;
    a.ip[0] = 192, a.ip[1] = 0, a.ip[2] = 2, a.ip[3] = 7;
    a.port = 8661;
    uint8_t k1[32], k2[32];
    key(k1, 0xa1), key(k2, 0xa2);
    ck_assert_int_eq(sst_keystore_verify_cb(ks, &a, k1, true), 0);
    a.port = 9999; /* the pin is per host, not per port */
    ck_assert_int_eq(sst_keystore_verify_cb(ks, &a, k2, true), SST_ERR_IDENTITY);
    ck_assert_ptr_nonnull(strstr(sst_keystore_last_error(ks), "192.0.2.7"));
    /* Responder side never pins. */
    ck_assert_int_eq(sst_keystore_verify_cb(ks, &a, k2, false), 0);
    uint8_t k0[32];
    key(k0, 0);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "192.0.2.7", k1, err, sizeof err), 0);
    sst_keystore_close(ks);
}
END_TEST

START_TEST(test_keystore_corrupt_files)
{
    char err[SST_KEYSTORE_ERRLEN] = "";
    struct sst_keystore *ks = sst_keystore_open(dir, err, sizeof err);
    struct sst_identity id;
    static const char *bad_keys[] = {"", "zz\n", "0123\n",
                                     "g000000000000000000000000000000000000000000000000000000000000000\n",
                                     "00000000000000000000000000000000000000000000000000000000000000000\n"};
    for (size_t k = 0; k < SST_ARRAY_LEN(bad_keys); k++) {
        write_file("host_key", bad_keys[k], 0600);
        err[0] = '\0';
        ck_assert_int_eq(sst_keystore_identity(ks, &id, err, sizeof err), SST_ERR_IO);
        ck_assert_msg(strstr(err, "is corrupt") && strstr(err, "host_key"), "case %zu: %s", k, err);
    }
    /* Too-open permissions are refused with the chmod to run. */
    write_file("host_key", "1111111111111111111111111111111111111111111111111111111111111111\n", 0644);
    ck_assert_int_eq(sst_keystore_identity(ks, &id, err, sizeof err), SST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
    /* A good hand-written key loads (upper-case hex too). */
    write_file("host_key", "1111111111111111111111111111111111111111111111111111111111111111\n", 0600);
    ck_assert_int_eq(sst_keystore_identity(ks, &id, err, sizeof err), 0);
    ck_assert_uint_eq(id.sk[0], 0x11);

    /* known_hosts: comments and blanks are fine; a damaged line is reported with its number. */
    uint8_t k1[32];
    key(k1, 0x11);
    write_file("known_hosts",
               "# pins\n\nh1 1111111111111111111111111111111111111111111111111111111111111111\n", 0600);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "h1", k1, err, sizeof err), 0);
    write_file("known_hosts",
               "h1 1111111111111111111111111111111111111111111111111111111111111111\nh2 12345\n", 0600);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "h1", k1, err, sizeof err), SST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err, "line 2 is malformed"));
    write_file("known_hosts", "h1\n", 0600);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "h3", k1, err, sizeof err), SST_ERR_IO);
    /* Binary garbage. */
    char p[400];
    snprintf(p, sizeof p, "%s/known_hosts", dir);
    FILE *f = fopen(p, "w");
    static const char garbage[] = {'h', 0, 1, 2, '\n', (char)0xff};
    fwrite(garbage, 1, sizeof garbage, f);
    fclose(f);
    ck_assert_int_eq(sst_keystore_check_peer(ks, "h1", k1, err, sizeof err), SST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err, "corrupt"));
    /* known_hosts as a directory: error, no crash. */
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_int_lt(sst_keystore_check_peer(ks, "h1", k1, err, sizeof err), 0);
    sst_keystore_close(ks);
    /* Opening a path that is a file fails cleanly. */
    snprintf(p, sizeof p, "%s/host_key", dir);
    ck_assert_ptr_null(sst_keystore_open(p, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "cannot create key directory"));
}
END_TEST

static Suite *keystore_suite(void)
{
    Suite *s = suite_create("keystore");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_keystore_identity_created_0600_and_reloaded);
    tcase_add_test(tc, test_keystore_default_dir_order);
    tcase_add_test(tc, test_keystore_tofu_pin_and_changed_key_refused);
    tcase_add_test(tc, test_keystore_overrides);
    tcase_add_test(tc, test_keystore_verify_cb);
    tcase_add_test(tc, test_keystore_corrupt_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keystore_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
