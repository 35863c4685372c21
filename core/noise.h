/* A minimal Noise Protocol Framework (rev 34) implementation of exactly one protocol,
 * Noise_XX_25519_ChaChaPoly_SHA256, on libsodium primitives.
 *
 *   XX:  -> e
 *        <- e, ee, s, es
 *        -> s, se
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

/* HandshakeState (Noise §5.3) for XX. */
struct sst_noise_hs {
    struct sst_noise_symmetric ss;
    uint8_t s_pk[32], s_sk[32];    /* local static */
    uint8_t e_pk[32], e_sk[32];    /* local ephemeral */
    uint8_t rs[32], re[32];        /* remote static / ephemeral (once received) */
    bool initiator;
    uint8_t msg_index;             /* next message of the pattern: 0, 1, 2; 3 = done */
};

/* Initializes a handshake.  e_secret: 32 random bytes for the ephemeral private key (the public
 * key is derived with crypto_scalarmult_base).  prologue may be NULL when plen is 0.
 * 0 or SST_ERR_CRYPTO (a degenerate key). */
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

#endif
