/* Noise_XX_25519_ChaChaPoly_SHA256 and Noise_NNpsk0_25519_ChaChaPoly_SHA256 (+ a payload-only
 * third message) handshakes and transport ciphers on libsodium (Noise rev 34). */
#include <sodium.h>
#include <string.h>

#include "err.h"
#include "noise.h"

_Static_assert(sizeof(SST_NOISE_PROTOCOL_NAME) - 1 == SST_NOISE_HASHLEN,
               "protocol name is exactly HASHLEN bytes, so h = name (Noise §5.2)");

/* ---- HMAC / HKDF (Noise §4.3) ---- */

/* HKDF (Noise §4.3) with 1..3 outputs.  temp_key keys every output's HMAC, so its keyed state
 * (the two pad blocks) is computed once and copied: 2 SHA-256 compressions saved per output
 * after the first; a handshake runs HKDF 4-5 times per side. */
static void hkdf(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len, unsigned n, uint8_t *out[3])
{
    crypto_auth_hmacsha256_state st, keyed;
    uint8_t temp_key[32], prev[32];
    crypto_auth_hmacsha256_init(&st, ck, 32);
    if (ikm_len)
        crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&st, temp_key);
    crypto_auth_hmacsha256_init(&keyed, temp_key, 32);
    for (unsigned i = 0; i < n; i++) {
        uint8_t idx = (uint8_t)(i + 1);
        st = keyed;
        if (i > 0)
            crypto_auth_hmacsha256_update(&st, prev, 32);
        crypto_auth_hmacsha256_update(&st, &idx, 1);
        crypto_auth_hmacsha256_final(&st, prev);
        memcpy(out[i], prev, 32);
    }
    sodium_memzero(&st, sizeof st);
    sodium_memzero(&keyed, sizeof keyed);
    sodium_memzero(temp_key, sizeof temp_key);
    sodium_memzero(prev, sizeof prev);
}

void sst_noise_hkdf2(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len, uint8_t out1[32],
                     uint8_t out2[32])
{
    uint8_t *out[3] = { out1, out2, NULL };
    hkdf(ck, ikm, ikm_len, 2, out);
}

void sst_noise_hkdf3(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len, uint8_t out1[32],
                     uint8_t out2[32], uint8_t out3[32])
{
    uint8_t *out[3] = { out1, out2, out3 };
    hkdf(ck, ikm, ikm_len, 3, out);
}

/* ---- CipherState (Noise §5.1) ---- */

/* ChaChaPoly nonce (Noise §12.3): 32 bits of zeros then the 64-bit counter little-endian. */
static void chacha_nonce(uint8_t nonce[12], uint64_t n)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

static void cipher_init_key(struct sst_noise_cipher *c, const uint8_t k[32])
{
    memcpy(c->k, k, 32);
    c->n = 0;
    c->has_key = true;
}

int sst_noise_encrypt(struct sst_noise_cipher *c, const uint8_t *ad, size_t adlen, const uint8_t *in,
                      size_t len, uint8_t *out)
{
    if (!c->has_key) {
        if (len)
            memmove(out, in, len);
        return (int)len;
    }
    /* n = 2^64-1 is reserved (Noise §5.1); we refuse rather than rekey. */
    if (c->n == UINT64_MAX || len > SST_NOISE_MAX_MSG - SST_NOISE_TAGLEN)
        return SST_ERR_LIMIT;
    uint8_t nonce[12];
    chacha_nonce(nonce, c->n);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, adlen, NULL, nonce, c->k);
    c->n++;
    return (int)(len + SST_NOISE_TAGLEN);
}

int sst_noise_decrypt(struct sst_noise_cipher *c, const uint8_t *ad, size_t adlen, const uint8_t *in,
                      size_t len, uint8_t *out)
{
    if (!c->has_key) {
        if (len)
            memmove(out, in, len);
        return (int)len;
    }
    if (len < SST_NOISE_TAGLEN)
        return SST_ERR_MALFORMED;
    if (c->n == UINT64_MAX || len > SST_NOISE_MAX_MSG)
        return SST_ERR_LIMIT;
    uint8_t nonce[12];
    chacha_nonce(nonce, c->n);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad, adlen, nonce, c->k) != 0)
        return SST_ERR_AUTH;
    c->n++;
    return (int)(len - SST_NOISE_TAGLEN);
}

void sst_noise_cipher_wipe(struct sst_noise_cipher *c)
{
    sodium_memzero(c, sizeof *c);
}

/* ---- SymmetricState (Noise §5.2) ---- */

static void mix_hash(struct sst_noise_symmetric *ss, const uint8_t *data, size_t len)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, ss->h, sizeof ss->h);
    crypto_hash_sha256_update(&st, data, len);
    crypto_hash_sha256_final(&st, ss->h);
}

static void mix_key(struct sst_noise_symmetric *ss, const uint8_t ikm[32])
{
    uint8_t temp_k[32];
    sst_noise_hkdf2(ss->ck, ikm, 32, ss->ck, temp_k);
    cipher_init_key(&ss->cs, temp_k);
    sodium_memzero(temp_k, sizeof temp_k);
}

/* MixKeyAndHash (Noise §5.2), for the psk token. */
static void mix_key_and_hash(struct sst_noise_symmetric *ss, const uint8_t ikm[32])
{
    uint8_t temp_h[32], temp_k[32];
    sst_noise_hkdf3(ss->ck, ikm, 32, ss->ck, temp_h, temp_k);
    mix_hash(ss, temp_h, 32);
    cipher_init_key(&ss->cs, temp_k);
    sodium_memzero(temp_h, sizeof temp_h);
    sodium_memzero(temp_k, sizeof temp_k);
}

/* DH then MixKey; fails on an all-zero shared secret (a low-order public key). */
static int mix_dh(struct sst_noise_symmetric *ss, const uint8_t sk[32], const uint8_t pk[32])
{
    uint8_t shared[32];
    int rc = crypto_scalarmult(shared, sk, pk);
    if (rc == 0)
        mix_key(ss, shared);
    sodium_memzero(shared, sizeof shared);
    return rc == 0 ? 0 : SST_ERR_CRYPTO;
}

/* EncryptAndHash: out gets len (+16 once keyed) bytes; returns that count or negative. */
static int encrypt_and_hash(struct sst_noise_symmetric *ss, const uint8_t *in, size_t len, uint8_t *out)
{
    int n = sst_noise_encrypt(&ss->cs, ss->h, sizeof ss->h, in, len, out);
    if (n >= 0)
        mix_hash(ss, out, (size_t)n);
    return n;
}

static int decrypt_and_hash(struct sst_noise_symmetric *ss, const uint8_t *in, size_t len, uint8_t *out)
{
    /* The hash input is the ciphertext, which decryption may overwrite when out == in: hash a
     * copy of h first, then mix the ciphertext in only on success. */
    uint8_t h_next[32];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, ss->h, sizeof ss->h);
    crypto_hash_sha256_update(&st, in, len);
    crypto_hash_sha256_final(&st, h_next);
    int n = sst_noise_decrypt(&ss->cs, ss->h, sizeof ss->h, in, len, out);
    if (n >= 0)
        memcpy(ss->h, h_next, 32);
    return n;
}

static size_t sealed_len(const struct sst_noise_symmetric *ss, size_t len)
{
    return len + (ss->cs.has_key ? SST_NOISE_TAGLEN : 0);
}

/* ---- HandshakeState (Noise §5.3), patterns XX and NNpsk0 ---- */

int sst_noise_hs_start(struct sst_noise_hs *hs, enum sst_noise_pattern pattern, bool initiator,
                       const uint8_t *prologue, size_t plen, const struct sst_noise_keys *keys)
{
    memset(hs, 0, sizeof *hs);
    if (!keys->e_sk || (pattern == SST_NOISE_XX && !keys->s_sk) || (pattern == SST_NOISE_NNPSK0 && !keys->psk) ||
        (pattern != SST_NOISE_XX && pattern != SST_NOISE_NNPSK0))
        return SST_ERR_INVAL;
    hs->pattern = (uint8_t)pattern;
    hs->initiator = initiator;
    if (pattern == SST_NOISE_XX) {
        /* InitializeSymmetric: the name is exactly HASHLEN bytes, so h = name, ck = h. */
        memcpy(hs->ss.h, SST_NOISE_PROTOCOL_NAME, SST_NOISE_HASHLEN);
    } else {
        /* A longer name is hashed (Noise §5.2). */
        crypto_hash_sha256(hs->ss.h, (const uint8_t *)SST_NOISE_PSK_PROTOCOL_NAME,
                           sizeof SST_NOISE_PSK_PROTOCOL_NAME - 1);
        memcpy(hs->psk, keys->psk, 32);
    }
    memcpy(hs->ss.ck, hs->ss.h, SST_NOISE_HASHLEN);
    mix_hash(&hs->ss, prologue, plen);
    memcpy(hs->e_sk, keys->e_sk, 32);
    int rc = 0;
    if (pattern == SST_NOISE_XX) {
        memcpy(hs->s_sk, keys->s_sk, 32);
        if (keys->s_pk)
            memcpy(hs->s_pk, keys->s_pk, 32);
        else
            rc |= crypto_scalarmult_base(hs->s_pk, hs->s_sk);
    }
    if (keys->e_pk)
        memcpy(hs->e_pk, keys->e_pk, 32);
    else
        rc |= crypto_scalarmult_base(hs->e_pk, hs->e_sk);
    if (rc != 0) {
        sst_noise_hs_wipe(hs);
        return SST_ERR_CRYPTO;
    }
    return 0;
}

int sst_noise_hs_init(struct sst_noise_hs *hs, bool initiator, const uint8_t *prologue, size_t plen,
                      const uint8_t s_sk[32], const uint8_t e_secret[32])
{
    const struct sst_noise_keys keys = { .s_sk = s_sk, .e_sk = e_secret };
    return sst_noise_hs_start(hs, SST_NOISE_XX, initiator, prologue, plen, &keys);
}

static bool our_turn(const struct sst_noise_hs *hs)
{
    /* Messages 0 and 2 are the initiator's, message 1 the responder's. */
    return hs->msg_index < 3 && ((hs->msg_index % 2 == 0) == hs->initiator);
}

/* Bytes of a message before its payload. */
static size_t tokens_len(const struct sst_noise_hs *hs)
{
    if (hs->pattern == SST_NOISE_NNPSK0)
        return hs->msg_index < 2 ? 32 : 0;      /* psk, e / e, ee / nothing */
    switch (hs->msg_index) {
    case 0: return 32;                          /* e */
    case 1: return 32 + 32 + SST_NOISE_TAGLEN;  /* e, ee, s(encrypted), es */
    default: return 32 + SST_NOISE_TAGLEN;      /* s(encrypted), se */
    }
}

/* Whether the payload of the next message is encrypted (a key is set by then).  XX message 0
 * travels in clear; in NNpsk0 the psk token keys the cipher before anything is sent. */
static bool payload_keyed(const struct sst_noise_hs *hs)
{
    return hs->pattern == SST_NOISE_NNPSK0 || hs->msg_index > 0;
}

/* The "e" token's hashing: MixHash(e), and in a psk handshake also MixKey(e) (Noise §9.2). */
static void mix_e(struct sst_noise_hs *hs, const uint8_t e[32])
{
    mix_hash(&hs->ss, e, 32);
    if (hs->pattern == SST_NOISE_NNPSK0)
        mix_key(&hs->ss, e);
}

int sst_noise_hs_write(struct sst_noise_hs *hs, const uint8_t *payload, size_t plen, uint8_t *out,
                       size_t cap)
{
    if (!our_turn(hs))
        return SST_ERR_STATE;
    size_t need = tokens_len(hs) + plen + (payload_keyed(hs) ? SST_NOISE_TAGLEN : 0);
    if (need > cap || need > SST_NOISE_MAX_MSG)
        return SST_ERR_TOO_BIG;

    struct sst_noise_hs t = *hs;   /* commit only on success */
    size_t off = 0;
    int rc = 0, n;
    if (t.pattern == SST_NOISE_NNPSK0) {
        switch (t.msg_index) {
        case 0: /* -> psk, e */
            mix_key_and_hash(&t.ss, t.psk);
            memcpy(out, t.e_pk, 32);
            mix_e(&t, t.e_pk);
            off = 32;
            break;
        case 1: /* <- e, ee */
            memcpy(out, t.e_pk, 32);
            mix_e(&t, t.e_pk);
            off = 32;
            if ((rc = mix_dh(&t.ss, t.e_sk, t.re)) != 0)
                goto out;
            break;
        default: /* -> (payload only: key confirmation) */
            break;
        }
        goto payload;
    }
    switch (t.msg_index) {
    case 0: /* -> e */
        memcpy(out, t.e_pk, 32);
        mix_e(&t, t.e_pk);
        off = 32;
        break;
    case 1: /* <- e, ee, s, es */
        memcpy(out, t.e_pk, 32);
        mix_e(&t, t.e_pk);
        off = 32;
        if ((rc = mix_dh(&t.ss, t.e_sk, t.re)) != 0)
            goto out;
        n = encrypt_and_hash(&t.ss, t.s_pk, 32, out + off);
        if (n < 0) {
            rc = n;
            goto out;
        }
        off += (size_t)n;
        if ((rc = mix_dh(&t.ss, t.s_sk, t.re)) != 0)
            goto out;
        break;
    default: /* -> s, se */
        n = encrypt_and_hash(&t.ss, t.s_pk, 32, out);
        if (n < 0) {
            rc = n;
            goto out;
        }
        off = (size_t)n;
        if ((rc = mix_dh(&t.ss, t.s_sk, t.re)) != 0)
            goto out;
        break;
    }
payload:
    n = encrypt_and_hash(&t.ss, payload, plen, out + off);
    if (n < 0) {
        rc = n;
        goto out;
    }
    off += (size_t)n;
    t.msg_index++;
    *hs = t;
    rc = (int)off;
out:
    sodium_memzero(&t, sizeof t);
    return rc;
}

int sst_noise_hs_read(struct sst_noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                      size_t cap)
{
    if (hs->msg_index >= 3 || our_turn(hs))
        return SST_ERR_STATE;
    size_t min = tokens_len(hs) + (payload_keyed(hs) ? SST_NOISE_TAGLEN : 0);
    if (len < min)
        return SST_ERR_MALFORMED;
    if (len > SST_NOISE_MAX_MSG)
        return SST_ERR_TOO_BIG;

    struct sst_noise_hs t = *hs;
    uint8_t plain_s[32 + SST_NOISE_TAGLEN];
    size_t off = 0;
    int rc = 0, n;
    if (t.pattern == SST_NOISE_NNPSK0) {
        switch (t.msg_index) {
        case 0: /* -> psk, e */
            mix_key_and_hash(&t.ss, t.psk);
            memcpy(t.re, msg, 32);
            mix_e(&t, t.re);
            off = 32;
            break;
        case 1: /* <- e, ee */
            memcpy(t.re, msg, 32);
            mix_e(&t, t.re);
            off = 32;
            if ((rc = mix_dh(&t.ss, t.e_sk, t.re)) != 0)
                goto out;
            break;
        default: /* -> (payload only) */
            break;
        }
        goto payload;
    }
    switch (t.msg_index) {
    case 0: /* -> e */
        memcpy(t.re, msg, 32);
        mix_e(&t, t.re);
        off = 32;
        break;
    case 1: /* <- e, ee, s, es */
        memcpy(t.re, msg, 32);
        mix_e(&t, t.re);
        off = 32;
        if ((rc = mix_dh(&t.ss, t.e_sk, t.re)) != 0)
            goto out;
        n = decrypt_and_hash(&t.ss, msg + off, sealed_len(&t.ss, 32), plain_s);
        if (n < 0) {
            rc = n;
            goto out;
        }
        memcpy(t.rs, plain_s, 32);
        off += sealed_len(&t.ss, 32);
        if ((rc = mix_dh(&t.ss, t.e_sk, t.rs)) != 0)
            goto out;
        break;
    default: /* -> s, se */
        n = decrypt_and_hash(&t.ss, msg, sealed_len(&t.ss, 32), plain_s);
        if (n < 0) {
            rc = n;
            goto out;
        }
        memcpy(t.rs, plain_s, 32);
        off = sealed_len(&t.ss, 32);
        if ((rc = mix_dh(&t.ss, t.e_sk, t.rs)) != 0)
            goto out;
        break;
    }
payload:;
    size_t body = len - off;
    if (t.ss.cs.has_key && body < SST_NOISE_TAGLEN) {
        rc = SST_ERR_MALFORMED;
        goto out;
    }
    size_t plen = t.ss.cs.has_key ? body - SST_NOISE_TAGLEN : body;
    if (plen > cap) {
        rc = SST_ERR_TOO_BIG;
        goto out;
    }
    /* On a bad tag libsodium zeroes `payload`; the handshake state (t) is simply not committed. */
    n = decrypt_and_hash(&t.ss, msg + off, body, payload);
    if (n < 0) {
        rc = n;
        goto out;
    }
    t.msg_index++;
    *hs = t;
    rc = n;
out:
    sodium_memzero(&t, sizeof t);
    sodium_memzero(plain_s, sizeof plain_s);
    return rc;
}

int sst_noise_hs_split_resume(struct sst_noise_hs *hs, struct sst_noise_cipher *c_i2r,
                              struct sst_noise_cipher *c_r2i, uint8_t resume_secret[32])
{
    if (!sst_noise_hs_done(hs) || sodium_is_zero(hs->ss.ck, sizeof hs->ss.ck))
        return SST_ERR_STATE;
    /* HKDF-Expand is a chain: asking for a third output leaves k1, k2 exactly Noise's Split(). */
    uint8_t k1[32], k2[32], k3[32];
    if (resume_secret)
        sst_noise_hkdf3(hs->ss.ck, NULL, 0, k1, k2, k3);
    else
        sst_noise_hkdf2(hs->ss.ck, NULL, 0, k1, k2);
    cipher_init_key(c_i2r, k1);
    cipher_init_key(c_r2i, k2);
    if (resume_secret)
        memcpy(resume_secret, k3, 32);
    sodium_memzero(k1, sizeof k1);
    sodium_memzero(k2, sizeof k2);
    sodium_memzero(k3, sizeof k3);
    /* Keep h for channel binding; every secret goes. */
    uint8_t h[32];
    memcpy(h, hs->ss.h, 32);
    bool initiator = hs->initiator;
    uint8_t rs[32];
    memcpy(rs, hs->rs, 32);
    sst_noise_hs_wipe(hs);
    memcpy(hs->ss.h, h, 32);
    memcpy(hs->rs, rs, 32);
    hs->initiator = initiator;
    hs->msg_index = 3;
    return 0;
}

int sst_noise_hs_split(struct sst_noise_hs *hs, struct sst_noise_cipher *c_i2r, struct sst_noise_cipher *c_r2i)
{
    return sst_noise_hs_split_resume(hs, c_i2r, c_r2i, NULL);
}

void sst_noise_hs_hash(const struct sst_noise_hs *hs, uint8_t out[SST_NOISE_HASHLEN])
{
    memcpy(out, hs->ss.h, SST_NOISE_HASHLEN);
}

void sst_noise_hs_wipe(struct sst_noise_hs *hs)
{
    sodium_memzero(hs, sizeof *hs);
}
