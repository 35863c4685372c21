/* Per-direction packet protection (paper §4.2.3).
 *  strong: AEAD over every packet, AES-256-GCM when both hosts have AES-NI, else
 *          ChaCha20-Poly1305-IETF; nonce = 0^32 || seq64 (big-endian); the 8-byte channel header
 *          is associated data, the payload is encrypted, a 16-byte tag is appended.
 *  light:  no encryption; a 4-byte trailer = first 4 bytes of SipHash-2-4 (crypto_shorthash)
 *          keyed per direction over header || payload || seq64 — the paper's TCP-grade mode. */
#ifndef SST_PROTECT_H
#define SST_PROTECT_H

#include "types.h"

enum sst_security { SST_SEC_STRONG = 0, SST_SEC_LIGHT = 1 };
enum sst_aead { SST_AEAD_CHACHA20POLY1305 = 0, SST_AEAD_AES256GCM = 1 };

#define SST_PROTECT_MAX_OVERHEAD 16
/* Bytes a buffer must have beyond the packet's end for seal/open to work in place. */
#define SST_PROTECT_TAILROOM 16

struct sst_protect {
    uint8_t security;   /* enum sst_security */
    uint8_t aead;       /* enum sst_aead */
    uint8_t key[32];
    /* libsodium's precomputed AES-GCM state (crypto_aead_aes256gcm_state: the expanded key and
     * GHASH powers, 512 bytes), kept opaque here so only protect.c includes <sodium.h>.  Heap,
     * not inline: it is half a kilobyte per direction, and an idle channel gives it back
     * (sst_protect_idle) while the 32-byte key stays.  NULL means "use the key directly"
     * (libsodium's one-shot AES-GCM expands the key per packet): correct, only slower, so a
     * failed allocation costs speed, never a packet. */
    void *aes;
};

/* Every successful init must be paired with sst_protect_wipe (AES-GCM allocates its state). */
SST_MUST_CHECK int sst_protect_init(struct sst_protect *p, enum sst_security sec, enum sst_aead aead,
                                    const uint8_t key[32]);
void sst_protect_wipe(struct sst_protect *p);
/* The direction went quiet: give back the precomputed AES-GCM state (wiped first). */
void sst_protect_idle(struct sst_protect *p);
/* Packets flow again: rebuild what sst_protect_idle gave back (a no-op when present, or for
 * ChaCha20-Poly1305 and light mode, which keep no state beyond the key). */
void sst_protect_wake(struct sst_protect *p);
/* Heap bytes held beyond the structure (the AES-GCM state, if any). */
size_t sst_protect_heap_bytes(const struct sst_protect *p);
static inline void sst_protect_ready(struct sst_protect *p)
{
    if (p->aes == NULL && p->aead == SST_AEAD_AES256GCM && p->security == SST_SEC_STRONG)
        sst_protect_wake(p);
}
size_t sst_protect_overhead(const struct sst_protect *p);
/* Seals pkt[0..len) in place (header = first 8 bytes); the buffer must have
 * SST_PROTECT_TAILROOM bytes after len.  Returns the new length. */
size_t sst_protect_seal(const struct sst_protect *p, uint64_t seq, uint8_t *pkt, size_t len);
/* Seals pkt[0..len) into out (which must not overlap pkt and must have SST_PROTECT_TAILROOM
 * bytes after len): the same bytes sst_protect_seal would leave in pkt, written straight into
 * the datagram's final buffer (a driver's send slot), one copy fewer.  pkt is left unchanged.
 * Returns the new length. */
size_t sst_protect_seal_to(const struct sst_protect *p, uint64_t seq, uint8_t *pkt, size_t len,
                           uint8_t *out);
/* Bytes of the payload's head (the part of the encrypted body before `tail`) that
 * sst_protect_seal_gather may lay down just before tail: the longest stream header. */
#define SST_PROTECT_GATHER_HEAD 8
/* sst_protect_seal_to for a packet in two pieces: pkt[0..head_len) (the channel header and the
 * payload's head, at most SST_PROTECT_GATHER_HEAD bytes after the header) and tail[0..tail_len)
 * (the payload's bytes where they already are: a stream's send ring).  out receives the same
 * bytes sst_protect_seal_to would write for the two pieces joined, and must have
 * SST_PROTECT_TAILROOM bytes after them.  The AEADs need their plaintext in one piece, so the
 * SST_PROTECT_GATHER_HEAD bytes just before tail must be the caller's memory: they are
 * borrowed for the call (the head is written there, the bytes are put back before it returns),
 * which spares copying the tail into pkt first.  Returns the new length. */
size_t sst_protect_seal_gather(const struct sst_protect *p, uint64_t seq, const uint8_t *pkt,
                               size_t head_len, uint8_t *tail, size_t tail_len, uint8_t *out);
/* Verifies (and decrypts) in place; on success stores the plaintext length (header included)
 * in *out_len.  SST_ERR_AUTH or SST_ERR_MALFORMED; the buffer needs SST_PROTECT_TAILROOM too. */
SST_MUST_CHECK int sst_protect_open(const struct sst_protect *p, uint64_t seq, uint8_t *pkt,
                                    size_t len, size_t *out_len);
/* A 64-bit value derived from this direction's key and a label (e.g. the stream layer's USID
 * nonce, paper §4.3.3): equal at both ends of the direction, unpredictable to anyone else. */
uint64_t sst_protect_derive_id(const struct sst_protect *p, const char *label);
/* True if this CPU runs libsodium's AES-256-GCM (AES-NI + PCLMUL). */
bool sst_protect_aes_available(void);
const char *sst_security_name(enum sst_security s);
int sst_security_parse(const char *s, enum sst_security *out);

#endif
