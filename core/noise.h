/* A minimal Noise Protocol Framework (rev 34) implementation of the two handshakes SST uses,
 * on libsodium primitives (25519, ChaChaPoly, SHA256):
 *
 *   XX (first contact):          NNpsk0 + confirmation (session resumption):
 *        -> e                          -> psk, e
 *        <- e, ee, s, es               <- e, ee
 *        -> s, se                      -> (payload only)
 *
 * The third resumption message has no tokens: it is one more EncryptAndHash of the initiator's
 * payload under the handshake key, so the responder gets key confirmation from the initiator
 * before it commits state (docs/protocol-negotiation.md, "Session resumption").  The first two
 * messages are exactly Noise_NNpsk0_25519_ChaChaPoly_SHA256.
 *
 * The caller supplies every secret (static key, ephemeral secret bytes) so the engine stays
 * deterministic under the simulator; nothing here reads randomness.  Read functions work on a
 * copy of the state and commit it only when every check passed, so a bad message leaves the
 * handshake exactly as it was. */
#ifndef SST_NOISE_H
#define SST_NOISE_H

#include "types.h"

#define SST_NOISE_KEYLEN 32
#define SST_NOISE_HASHLEN 32
#define SST_NOISE_TAGLEN 16
#define SST_NOISE_MAX_MSG 65535
#define SST_NOISE_PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_SHA256"
#define SST_NOISE_PSK_PROTOCOL_NAME "Noise_NNpsk0_25519_ChaChaPoly_SHA256"

enum sst_noise_pattern {
    SST_NOISE_XX = 0,
    SST_NOISE_NNPSK0 = 1,    /* plus a payload-only third message (see above) */
};

/* CipherState (Noise §5.1): key k and 64-bit nonce n. */
struct sst_noise_cipher {
    uint8_t k[SST_NOISE_KEYLEN];
    uint64_t n;
    bool has_key;
};

/* SymmetricState (Noise §5.2): chaining key, handshake hash, and its CipherState. */
struct sst_noise_symmetric {
    uint8_t ck[SST_NOISE_HASHLEN];
    uint8_t h[SST_NOISE_HASHLEN];
    struct sst_noise_cipher cs;
};

/* HandshakeState (Noise §5.3) for XX or NNpsk0. */
struct sst_noise_hs {
    struct sst_noise_symmetric ss;
    uint8_t pattern;               /* enum sst_noise_pattern */
    uint8_t s_pk[32], s_sk[32];    /* local static */
    uint8_t e_pk[32], e_sk[32];    /* local ephemeral */
    uint8_t rs[32], re[32];        /* remote static / ephemeral (once received) */
    uint8_t psk[32];               /* NNpsk0 only */
    bool initiator;
    uint8_t msg_index;             /* next message of the pattern: 0, 1, 2; 3 = done */
};

/* Key material for sst_noise_hs_start.  A public key that the caller already has is passed in,
 * because each X25519 base-point multiplication costs as much as a DH (≈ 45 µs here): the host
 * computes its static public key once, and a resumption attempt shares its ephemeral with the XX
 * fallback.  The caller vouches that a given public key matches its secret. */
struct sst_noise_keys {
    const uint8_t *s_sk;      /* XX: local static secret key (NNpsk0: unused, may be NULL) */
    const uint8_t *s_pk;      /* its public key, or NULL to compute it */
    const uint8_t *e_sk;      /* 32 random bytes: the ephemeral secret key */
    const uint8_t *e_pk;      /* its public key, or NULL to compute it */
    const uint8_t *psk;       /* NNpsk0: the 32-byte pre-shared key (XX: unused) */
};

/* Initializes a handshake of `pattern`.  prologue may be NULL when plen is 0.
 * 0, SST_ERR_INVAL (a key the pattern needs is missing) or SST_ERR_CRYPTO (a degenerate key). */
SST_MUST_CHECK int sst_noise_hs_start(struct sst_noise_hs *hs, enum sst_noise_pattern pattern, bool initiator,
                                      const uint8_t *prologue, size_t plen, const struct sst_noise_keys *keys);
/* XX with both public keys computed from the secrets (tests and the interop peer). */
SST_MUST_CHECK int sst_noise_hs_init(struct sst_noise_hs *hs, bool initiator, const uint8_t *prologue,
                                     size_t plen, const uint8_t s_sk[32], const uint8_t e_secret[32]);
/* Writes the next handshake message carrying `payload` into out.  Returns the message length or
 * SST_ERR_STATE (not our turn), SST_ERR_TOO_BIG (cap), SST_ERR_CRYPTO. */
SST_MUST_CHECK int sst_noise_hs_write(struct sst_noise_hs *hs, const uint8_t *payload, size_t plen,
                                      uint8_t *out, size_t cap);
/* Reads the next handshake message; on success stores its payload in payload (cap bytes) and
 * returns the payload length.  SST_ERR_STATE, SST_ERR_MALFORMED (short), SST_ERR_TOO_BIG,
 * SST_ERR_AUTH (decryption failed) or SST_ERR_CRYPTO (low-order point); state unchanged then. */
SST_MUST_CHECK int sst_noise_hs_read(struct sst_noise_hs *hs, const uint8_t *msg, size_t len,
                                     uint8_t *payload, size_t cap);
static inline bool sst_noise_hs_done(const struct sst_noise_hs *hs) { return hs->msg_index >= 3; }
/* Split (Noise §5.2): c_i2r encrypts initiator -> responder, c_r2i the other way.  Only valid
 * once done; wipes the handshake state.  SST_ERR_STATE if not done. */
SST_MUST_CHECK int sst_noise_hs_split(struct sst_noise_hs *hs, struct sst_noise_cipher *c_i2r,
                                      struct sst_noise_cipher *c_r2i);
/* Split, and also the secret for a later resumed handshake between the same two parties: the
 * third output of the same HKDF(ck, empty) whose first two are Split's k1, k2 (HKDF-Expand
 * blocks are independent PRF outputs, so it tells nothing about the transport keys, and Split
 * itself is unchanged).  resume_secret may be NULL (then this is sst_noise_hs_split). */
SST_MUST_CHECK int sst_noise_hs_split_resume(struct sst_noise_hs *hs, struct sst_noise_cipher *c_i2r,
                                             struct sst_noise_cipher *c_r2i, uint8_t resume_secret[32]);
/* The handshake hash, for channel binding (valid at any point; final after the last message). */
void sst_noise_hs_hash(const struct sst_noise_hs *hs, uint8_t out[SST_NOISE_HASHLEN]);
void sst_noise_hs_wipe(struct sst_noise_hs *hs);

/* Transport messages (Noise §5.1 EncryptWithAd/DecryptWithAd with the CipherState's nonce).
 * encrypt writes plen + 16 bytes and returns that; decrypt returns the plaintext length or
 * SST_ERR_AUTH / SST_ERR_MALFORMED (nonce not advanced then).  out may equal in. */
SST_MUST_CHECK int sst_noise_encrypt(struct sst_noise_cipher *c, const uint8_t *ad, size_t adlen,
                                     const uint8_t *in, size_t len, uint8_t *out);
SST_MUST_CHECK int sst_noise_decrypt(struct sst_noise_cipher *c, const uint8_t *ad, size_t adlen,
                                     const uint8_t *in, size_t len, uint8_t *out);
void sst_noise_cipher_wipe(struct sst_noise_cipher *c);

/* HKDF (Noise §4.3) with HMAC-SHA256: two 32-byte outputs from chaining key and input key
 * material.  Exposed for tests and for negotiate.c's key schedule. */
void sst_noise_hkdf2(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len, uint8_t out1[32],
                     uint8_t out2[32]);
/* The same with three outputs (MixKeyAndHash for the psk token). */
void sst_noise_hkdf3(const uint8_t ck[32], const uint8_t *ikm, size_t ikm_len, uint8_t out1[32],
                     uint8_t out2[32], uint8_t out3[32]);

#endif
