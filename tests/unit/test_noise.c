/* Unit tests for noise.c: XX and NNpsk0 between two of our states, known-answer vectors generated
 * with the independent dissononce implementation, rejection of tampered/out-of-order messages,
 * precomputed public keys, and the resumption secret from Split's HKDF. */
#include <check.h>
#include <sodium.h>
#include <string.h>

#include "err.h"
#include "noise.h"

/* Vector: static/ephemeral secrets are 32 copies of one byte (initiator s=01 e=02, responder s=03
 * e=04), prologue "SST-test-prologue", payloads "p0", "pay1", "payload2"; transport "hello" with
 * empty AD each way.  Produced by python3-dissononce 0.34 (tests/integration/noise_interop.py
 * drives the same library live). */
static const char *kat_msg1 = "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d597030";
static const char *kat_msg2 =
    "ac01b2209e86354fb853237b5de0f4fab13c7fcbf433a61c019369617fecf10bb719b14d19eaf5ca91c89748c5ce8668"
    "e6864f05ee2367682b3e0c2fd086f0b4d3cca6224333bc15c4c3f1a32d608cf2da68d2531b8272d3e4e81ca694239bf2"
    "31bea20a";
static const char *kat_msg3 =
    "539a5cf3ae8a0a9134b32bfa775a1522db3558a1351ed4101989b8b88aa6a6f03d2abc552512edcf8e2a550ddc65de4a"
    "3703cd47cef6b9baf6edcbe80159cb034e2a2efb7649bde7";
static const char *kat_h = "2cae46f59a939dbcdf6d59a008afe0480ad556fe5eb04f26aac024e89ac325b4";
static const char *kat_t1 = "f5c8fdccae8939c5a6d0d9be2753d6cf345c85961d";
static const char *kat_t2 = "f09e15df5124f4ff10b6e05c089b54cbb3d16cd58f";
static const uint8_t prologue[] = "SST-test-prologue";

static void fill(uint8_t k[32], uint8_t b) { memset(k, b, 32); }

static void hex(const uint8_t *b, size_t n, char *out) { sodium_bin2hex(out, 2 * n + 1, b, n); }

static void kat_pair(struct sst_noise_hs *i, struct sst_noise_hs *r)
{
    uint8_t s[32], e[32];
    fill(s, 1), fill(e, 2);
    ck_assert_int_eq(sst_noise_hs_init(i, true, prologue, sizeof prologue - 1, s, e), 0);
    fill(s, 3), fill(e, 4);
    ck_assert_int_eq(sst_noise_hs_init(r, false, prologue, sizeof prologue - 1, s, e), 0);
}

START_TEST(test_noise_known_answer)
{
    struct sst_noise_hs i, r;
    kat_pair(&i, &r);
    uint8_t m[256], p[64];
    char hx[600];
    int n = sst_noise_hs_write(&i, (const uint8_t *)"p0", 2, m, sizeof m);
    ck_assert_int_eq(n, 34);
    hex(m, (size_t)n, hx);
    ck_assert_str_eq(hx, kat_msg1);
    ck_assert_int_eq(sst_noise_hs_read(&r, m, (size_t)n, p, sizeof p), 2);
    ck_assert_mem_eq(p, "p0", 2);

    n = sst_noise_hs_write(&r, (const uint8_t *)"pay1", 4, m, sizeof m);
    ck_assert_int_eq(n, 32 + 48 + 4 + 16);
    hex(m, (size_t)n, hx);
    ck_assert_str_eq(hx, kat_msg2);
    ck_assert_int_eq(sst_noise_hs_read(&i, m, (size_t)n, p, sizeof p), 4);
    ck_assert_mem_eq(p, "pay1", 4);

    n = sst_noise_hs_write(&i, (const uint8_t *)"payload2", 8, m, sizeof m);
    hex(m, (size_t)n, hx);
    ck_assert_str_eq(hx, kat_msg3);
    ck_assert_int_eq(sst_noise_hs_read(&r, m, (size_t)n, p, sizeof p), 8);
    ck_assert(sst_noise_hs_done(&i) && sst_noise_hs_done(&r));

    uint8_t hi[32], hr[32];
    sst_noise_hs_hash(&i, hi);
    sst_noise_hs_hash(&r, hr);
    hex(hi, 32, hx);
    ck_assert_str_eq(hx, kat_h);
    ck_assert_mem_eq(hi, hr, 32);
    /* Both sides learnt the other's static key. */
    uint8_t pk[32], sk[32];
    fill(sk, 3);
    crypto_scalarmult_base(pk, sk);
    ck_assert_mem_eq(i.rs, pk, 32);
    fill(sk, 1);
    crypto_scalarmult_base(pk, sk);
    ck_assert_mem_eq(r.rs, pk, 32);

    struct sst_noise_cipher ii2r, ir2i, ri2r, rr2i;
    ck_assert_int_eq(sst_noise_hs_split(&i, &ii2r, &ir2i), 0);
    ck_assert_int_eq(sst_noise_hs_split(&r, &ri2r, &rr2i), 0);
    n = sst_noise_encrypt(&ii2r, NULL, 0, (const uint8_t *)"hello", 5, m);
    hex(m, (size_t)n, hx);
    ck_assert_str_eq(hx, kat_t1);
    ck_assert_int_eq(sst_noise_decrypt(&ri2r, NULL, 0, m, (size_t)n, p), 5);
    n = sst_noise_encrypt(&rr2i, NULL, 0, (const uint8_t *)"hello", 5, m);
    hex(m, (size_t)n, hx);
    ck_assert_str_eq(hx, kat_t2);
    ck_assert_int_eq(sst_noise_decrypt(&ir2i, NULL, 0, m, (size_t)n, p), 5);
    ck_assert_mem_eq(p, "hello", 5);
}
END_TEST

/* Full handshake with random keys, then many transport messages both ways; nonces advance. */
START_TEST(test_noise_random_handshake_and_transport)
{
    uint8_t si[32], ei[32], sr[32], er[32];
    randombytes_buf(si, 32), randombytes_buf(ei, 32), randombytes_buf(sr, 32), randombytes_buf(er, 32);
    struct sst_noise_hs i, r;
    ck_assert_int_eq(sst_noise_hs_init(&i, true, NULL, 0, si, ei), 0);
    ck_assert_int_eq(sst_noise_hs_init(&r, false, NULL, 0, sr, er), 0);
    uint8_t m[512], p[512];
    int n;
    n = sst_noise_hs_write(&i, NULL, 0, m, sizeof m);
    ck_assert_int_eq(sst_noise_hs_read(&r, m, (size_t)n, p, sizeof p), 0);
    n = sst_noise_hs_write(&r, NULL, 0, m, sizeof m);
    ck_assert_int_eq(sst_noise_hs_read(&i, m, (size_t)n, p, sizeof p), 0);
    n = sst_noise_hs_write(&i, NULL, 0, m, sizeof m);
    ck_assert_int_eq(sst_noise_hs_read(&r, m, (size_t)n, p, sizeof p), 0);
    struct sst_noise_cipher a, b, c, d;
    ck_assert_int_eq(sst_noise_hs_split(&i, &a, &b), 0);
    ck_assert_int_eq(sst_noise_hs_split(&r, &c, &d), 0);
    ck_assert_mem_eq(a.k, c.k, 32);
    ck_assert_mem_eq(b.k, d.k, 32);
    ck_assert(memcmp(a.k, b.k, 32) != 0);
    for (int k = 0; k < 50; k++) {
        uint8_t msg[100];
        memset(msg, k, sizeof msg);
        n = sst_noise_encrypt(&a, (const uint8_t *)"ad", 2, msg, (size_t)k, m);
        ck_assert_int_eq(n, k + 16);
        ck_assert_int_eq(sst_noise_decrypt(&c, (const uint8_t *)"ad", 2, m, (size_t)n, p), k);
        ck_assert_mem_eq(p, msg, (size_t)k);
        n = sst_noise_encrypt(&d, NULL, 0, msg, (size_t)k, m);
        ck_assert_int_eq(sst_noise_decrypt(&b, NULL, 0, m, (size_t)n, p), k);
    }
    ck_assert_uint_eq(a.n, 50);
    /* A replayed transport message fails (nonce moved on) and does not advance the nonce. */
    uint8_t one = 1;
    n = sst_noise_encrypt(&a, NULL, 0, &one, 1, m);
    ck_assert_int_eq(sst_noise_decrypt(&c, NULL, 0, m, (size_t)n, p), 1);
    ck_assert_int_eq(sst_noise_decrypt(&c, NULL, 0, m, (size_t)n, p), SST_ERR_AUTH);
    ck_assert_uint_eq(c.n, 51);
}
END_TEST

/* Flipping any bit of message 2 or 3 is detected, and the reader's state is unchanged: the
 * original message still completes the handshake afterwards. */
START_TEST(test_noise_tamper_rejected_state_kept)
{
    struct sst_noise_hs i, r;
    kat_pair(&i, &r);
    uint8_t m1[64], m2[256], m3[256], p[64], bad[256];
    int n1 = sst_noise_hs_write(&i, (const uint8_t *)"p0", 2, m1, sizeof m1);
    ck_assert_int_eq(sst_noise_hs_read(&r, m1, (size_t)n1, p, sizeof p), 2);
    int n2 = sst_noise_hs_write(&r, (const uint8_t *)"pay1", 4, m2, sizeof m2);
    struct sst_noise_hs saved = i;
    /* Bytes 0-31 are the clear ephemeral: changing it changes ee, so the s tag fails too. */
    for (int pos = 0; pos < n2; pos++) {
        memcpy(bad, m2, (size_t)n2);
        bad[pos] ^= 0x01;
        ck_assert_int_lt(sst_noise_hs_read(&i, bad, (size_t)n2, p, sizeof p), 0);
        ck_assert_mem_eq(&i, &saved, sizeof i);
    }
    ck_assert_int_eq(sst_noise_hs_read(&i, m2, (size_t)n2 - 1, p, sizeof p), SST_ERR_AUTH);
    ck_assert_int_eq(sst_noise_hs_read(&i, m2, 40, p, sizeof p), SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_noise_hs_read(&i, m2, (size_t)n2, p, sizeof p), 4);
    int n3 = sst_noise_hs_write(&i, (const uint8_t *)"payload2", 8, m3, sizeof m3);
    saved = r;
    for (int pos = 0; pos < n3; pos++) {
        memcpy(bad, m3, (size_t)n3);
        bad[pos] ^= 0x80;
        ck_assert_int_eq(sst_noise_hs_read(&r, bad, (size_t)n3, p, sizeof p), SST_ERR_AUTH);
        ck_assert_mem_eq(&r, &saved, sizeof r);
    }
    ck_assert_int_eq(sst_noise_hs_read(&r, m3, (size_t)n3, p, sizeof p), 8);
    ck_assert(sst_noise_hs_done(&r));
}
END_TEST

START_TEST(test_noise_order_and_prologue)
{
    struct sst_noise_hs i, r;
    kat_pair(&i, &r);
    uint8_t m[256], p[64];
    /* Responder cannot write first; initiator cannot read first. */
    ck_assert_int_eq(sst_noise_hs_write(&r, NULL, 0, m, sizeof m), SST_ERR_STATE);
    ck_assert_int_eq(sst_noise_hs_read(&i, m, 64, p, sizeof p), SST_ERR_STATE);
    ck_assert_int_eq(sst_noise_hs_split(&i, NULL, NULL), SST_ERR_STATE);
    /* Too small an output buffer. */
    ck_assert_int_eq(sst_noise_hs_write(&i, NULL, 0, m, 31), SST_ERR_TOO_BIG);

    /* Different prologues: message 2 does not decrypt. */
    struct sst_noise_hs r2;
    uint8_t s[32], e[32];
    fill(s, 3), fill(e, 4);
    ck_assert_int_eq(sst_noise_hs_init(&r2, false, (const uint8_t *)"other", 5, s, e), 0);
    int n = sst_noise_hs_write(&i, NULL, 0, m, sizeof m);
    ck_assert_int_eq(sst_noise_hs_read(&r2, m, (size_t)n, p, sizeof p), 0);
    n = sst_noise_hs_write(&r2, NULL, 0, m, sizeof m);
    ck_assert_int_eq(sst_noise_hs_read(&i, m, (size_t)n, p, sizeof p), SST_ERR_AUTH);
    /* A low-order (all-zero) ephemeral from the peer is refused. */
    struct sst_noise_hs r3;
    ck_assert_int_eq(sst_noise_hs_init(&r3, false, NULL, 0, s, e), 0);
    memset(m, 0, 32);
    ck_assert_int_eq(sst_noise_hs_read(&r3, m, 32, p, sizeof p), 0);
    ck_assert_int_eq(sst_noise_hs_write(&r3, NULL, 0, m, sizeof m), SST_ERR_CRYPTO);
    sst_noise_hs_wipe(&r3);
    static const uint8_t zero[sizeof r3];
    ck_assert_mem_eq(&r3, zero, sizeof r3);
}
END_TEST

/* NNpsk0 vector: psk = 32 x 0x05, initiator e = 32 x 0x02, responder e = 32 x 0x04, prologue
 * "SST-test-prologue", payloads "p0" and "pay1"; python3-dissononce 0.34 with
 * PSKPatternModifier(0) on NN (a fixed-key DH subclass injects the ephemerals). */
static const char *kat_psk_msg1 =
    "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d5974af62c18e201c6d4f2a58e631b4102a3c1e";
static const char *kat_psk_msg2 =
    "ac01b2209e86354fb853237b5de0f4fab13c7fcbf433a61c019369617fecf10b64d564869e80123631425d112776bcbd232b45d2";
static const char *kat_psk_h2 = "319f88d1944356db5a8458978c8fff81f7c6ccd5dd765182bd7ca00f482c491d";

static void psk_pair(struct sst_noise_hs *i, struct sst_noise_hs *r, uint8_t psk_byte)
{
    uint8_t psk[32], e[32];
    fill(psk, psk_byte);
    fill(e, 2);
    struct sst_noise_keys ki = { .e_sk = e, .psk = psk };
    ck_assert_int_eq(sst_noise_hs_start(i, SST_NOISE_NNPSK0, true, prologue, sizeof prologue - 1, &ki), 0);
    fill(e, 4);
    fill(psk, 5);
    struct sst_noise_keys kr = { .e_sk = e, .psk = psk };
    ck_assert_int_eq(sst_noise_hs_start(r, SST_NOISE_NNPSK0, false, prologue, sizeof prologue - 1, &kr), 0);
}

/* Messages 1 and 2 match dissononce byte for byte; the payload-only third message then completes
 * both sides with the same split keys, and a one-bit change anywhere in any message fails with
 * the reader's state unchanged. */
START_TEST(test_noise_psk_known_answer_and_tamper)
{
    struct sst_noise_hs i, r, saved;
    psk_pair(&i, &r, 5);
    uint8_t m1[64], m2[128], m3[64], p[64], bad[128];
    char hx[256];
    int n1 = sst_noise_hs_write(&i, (const uint8_t *)"p0", 2, m1, sizeof m1);
    ck_assert_int_eq(n1, 32 + 2 + 16);
    hex(m1, (size_t)n1, hx);
    ck_assert_str_eq(hx, kat_psk_msg1);
    saved = r;
    for (int pos = 0; pos < n1; pos++) {
        memcpy(bad, m1, (size_t)n1);
        bad[pos] ^= 0x01;
        ck_assert_int_lt(sst_noise_hs_read(&r, bad, (size_t)n1, p, sizeof p), 0);
        ck_assert_mem_eq(&r, &saved, sizeof r);
    }
    ck_assert_int_eq(sst_noise_hs_read(&r, m1, (size_t)n1, p, sizeof p), 2);
    ck_assert_mem_eq(p, "p0", 2);
    int n2 = sst_noise_hs_write(&r, (const uint8_t *)"pay1", 4, m2, sizeof m2);
    ck_assert_int_eq(n2, 32 + 4 + 16);
    hex(m2, (size_t)n2, hx);
    ck_assert_str_eq(hx, kat_psk_msg2);
    saved = i;
    for (int pos = 0; pos < n2; pos++) {
        memcpy(bad, m2, (size_t)n2);
        bad[pos] ^= 0x01;
        ck_assert_int_lt(sst_noise_hs_read(&i, bad, (size_t)n2, p, sizeof p), 0);
        ck_assert_mem_eq(&i, &saved, sizeof i);
    }
    ck_assert_int_eq(sst_noise_hs_read(&i, m2, (size_t)n2, p, sizeof p), 4);
    uint8_t h[32];
    sst_noise_hs_hash(&i, h);
    hex(h, 32, hx);
    ck_assert_str_eq(hx, kat_psk_h2);
    int n3 = sst_noise_hs_write(&i, (const uint8_t *)"payload2", 8, m3, sizeof m3);
    ck_assert_int_eq(n3, 8 + 16);
    saved = r;
    for (int pos = 0; pos < n3; pos++) {
        memcpy(bad, m3, (size_t)n3);
        bad[pos] ^= 0x80;
        ck_assert_int_eq(sst_noise_hs_read(&r, bad, (size_t)n3, p, sizeof p), SST_ERR_AUTH);
        ck_assert_mem_eq(&r, &saved, sizeof r);
    }
    ck_assert_int_eq(sst_noise_hs_read(&r, m3, (size_t)n3, p, sizeof p), 8);
    ck_assert(sst_noise_hs_done(&i) && sst_noise_hs_done(&r));
    uint8_t xi[32], xr[32];
    struct sst_noise_cipher a, b, c, d, e, g;
    struct sst_noise_hs r_plain = r;
    ck_assert_int_eq(sst_noise_hs_split_resume(&i, &a, &b, xi), 0);
    ck_assert_int_eq(sst_noise_hs_split_resume(&r, &c, &d, xr), 0);
    ck_assert_int_eq(sst_noise_hs_split(&r_plain, &e, &g), 0);
    ck_assert_mem_eq(a.k, c.k, 32);
    ck_assert_mem_eq(b.k, d.k, 32);
    ck_assert_mem_eq(xi, xr, 32);
    /* Asking for the resumption secret leaves Split's keys as they are... */
    ck_assert_mem_eq(e.k, c.k, 32);
    ck_assert_mem_eq(g.k, d.k, 32);
    /* ... and the secret is neither of them; once split, the chaining key is gone. */
    ck_assert(memcmp(xi, a.k, 32) != 0 && memcmp(xi, b.k, 32) != 0);
    ck_assert_int_eq(sst_noise_hs_split_resume(&i, &a, &b, xi), SST_ERR_STATE);
}
END_TEST

/* Different PSKs: the responder cannot even read message 1 (its payload is sealed under the psk). */
START_TEST(test_noise_psk_mismatch)
{
    struct sst_noise_hs i, r;
    psk_pair(&i, &r, 6);
    uint8_t m1[64], p[64];
    int n1 = sst_noise_hs_write(&i, (const uint8_t *)"p0", 2, m1, sizeof m1);
    ck_assert_int_eq(sst_noise_hs_read(&r, m1, (size_t)n1, p, sizeof p), SST_ERR_AUTH);
    /* Missing key material is refused up front. */
    uint8_t e[32];
    fill(e, 2);
    struct sst_noise_keys k = { .e_sk = e };
    ck_assert_int_eq(sst_noise_hs_start(&i, SST_NOISE_NNPSK0, true, NULL, 0, &k), SST_ERR_INVAL);
    ck_assert_int_eq(sst_noise_hs_start(&i, SST_NOISE_XX, true, NULL, 0, &k), SST_ERR_INVAL);
}
END_TEST

/* Passing the public keys in gives exactly the handshake that computes them (known answer). */
START_TEST(test_noise_precomputed_public_keys)
{
    uint8_t s[32], e[32], spk[32], epk[32];
    fill(s, 1), fill(e, 2);
    ck_assert_int_eq(crypto_scalarmult_base(spk, s), 0);
    ck_assert_int_eq(crypto_scalarmult_base(epk, e), 0);
    struct sst_noise_keys k = { .s_sk = s, .s_pk = spk, .e_sk = e, .e_pk = epk };
    struct sst_noise_hs i, ref, r;
    ck_assert_int_eq(sst_noise_hs_start(&i, SST_NOISE_XX, true, prologue, sizeof prologue - 1, &k), 0);
    kat_pair(&ref, &r);
    ck_assert_mem_eq(&i, &ref, sizeof i);
    uint8_t m1[64];
    char hx[128];
    int n1 = sst_noise_hs_write(&i, (const uint8_t *)"p0", 2, m1, sizeof m1);
    hex(m1, (size_t)n1, hx);
    ck_assert_str_eq(hx, kat_msg1);
}
END_TEST

/* HKDF against RFC 5869-style expectations computed with libsodium's HMAC directly. */
START_TEST(test_noise_hkdf_consistency)
{
    uint8_t ck[32], ikm[40], o1[32], o2[32], tk[32], e1[32], e2[32], buf[33];
    for (int k = 0; k < 32; k++)
        ck[k] = (uint8_t)k;
    memset(ikm, 0xab, sizeof ikm);
    sst_noise_hkdf2(ck, ikm, sizeof ikm, o1, o2);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, ck, 32);
    crypto_auth_hmacsha256_update(&st, ikm, sizeof ikm);
    crypto_auth_hmacsha256_final(&st, tk);
    uint8_t one = 1;
    crypto_auth_hmacsha256_init(&st, tk, 32);
    crypto_auth_hmacsha256_update(&st, &one, 1);
    crypto_auth_hmacsha256_final(&st, e1);
    memcpy(buf, e1, 32);
    buf[32] = 2;
    crypto_auth_hmacsha256_init(&st, tk, 32);
    crypto_auth_hmacsha256_update(&st, buf, 33);
    crypto_auth_hmacsha256_final(&st, e2);
    ck_assert_mem_eq(o1, e1, 32);
    ck_assert_mem_eq(o2, e2, 32);
    /* Three outputs: the same first two, then HMAC(temp_key, out2 || 0x03). */
    uint8_t p1[32], p2[32], p3[32], e3[32];
    sst_noise_hkdf3(ck, ikm, sizeof ikm, p1, p2, p3);
    memcpy(buf, e2, 32);
    buf[32] = 3;
    crypto_auth_hmacsha256_init(&st, tk, 32);
    crypto_auth_hmacsha256_update(&st, buf, 33);
    crypto_auth_hmacsha256_final(&st, e3);
    ck_assert_mem_eq(p1, e1, 32);
    ck_assert_mem_eq(p2, e2, 32);
    ck_assert_mem_eq(p3, e3, 32);
}
END_TEST

static Suite *noise_suite(void)
{
    Suite *s = suite_create("noise");
    TCase *tc = tcase_create("xx");
    tcase_add_test(tc, test_noise_known_answer);
    tcase_add_test(tc, test_noise_random_handshake_and_transport);
    tcase_add_test(tc, test_noise_tamper_rejected_state_kept);
    tcase_add_test(tc, test_noise_order_and_prologue);
    tcase_add_test(tc, test_noise_hkdf_consistency);
    tcase_add_test(tc, test_noise_psk_known_answer_and_tamper);
    tcase_add_test(tc, test_noise_psk_mismatch);
    tcase_add_test(tc, test_noise_precomputed_public_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    SRunner *sr = srunner_create(noise_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
