/* Per-direction packet protection of channel packets: AEAD (strong) or a SipHash trailer (light). */
#include <sodium.h>
#include <string.h>

#include "err.h"
#include "protect.h"
#include "packet.h"
#include "wire.h"

#define LIGHT_TAG_LEN 4
#define AEAD_TAG_LEN 16

#include <stdlib.h>

_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == AEAD_TAG_LEN, "chacha tag size");
_Static_assert(crypto_aead_aes256gcm_ABYTES == AEAD_TAG_LEN, "gcm tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "chacha nonce size");
_Static_assert(crypto_aead_aes256gcm_NPUBBYTES == 12, "gcm nonce size");
_Static_assert(crypto_shorthash_KEYBYTES == 16, "siphash key size");

/* Nonce = 0^32 || seq64 big-endian: the 64-bit packet sequence number never repeats within a
 * key's lifetime (the channel never wraps, paper §4.2.2), so neither does the nonce. */
static void make_nonce(uint8_t nonce[12], uint64_t seq)
{
    memset(nonce, 0, 4);
    sst_put64(nonce + 4, seq);
}

static bool sodium_ready(void)
{
    return sodium_init() >= 0;
}

bool sst_protect_aes_available(void)
{
    return sodium_ready() && crypto_aead_aes256gcm_is_available() == 1;
}

int sst_protect_init(struct sst_protect *p, enum sst_security sec, enum sst_aead aead,
                     const uint8_t key[32])
{
    memset(p, 0, sizeof *p);
    if (sec != SST_SEC_STRONG && sec != SST_SEC_LIGHT)
        return SST_ERR_INVAL;
    if (aead != SST_AEAD_CHACHA20POLY1305 && aead != SST_AEAD_AES256GCM)
        return SST_ERR_INVAL;
    if (!sodium_ready())
        return SST_ERR_CRYPTO;
    p->security = (uint8_t)sec;
    p->aead = (uint8_t)aead;
    memcpy(p->key, key, 32);
    if (sec == SST_SEC_LIGHT) {
        /* SipHash takes a 16-byte key: compress all 32 key bytes into it (BLAKE2b keyed by the
         * direction key over a label) rather than silently ignoring half of the key. */
        static const char label[] = "sst light-mode siphash key";
        crypto_generichash(p->key, 32, (const uint8_t *)label, sizeof label - 1, key, 32);
    }
    if (sec == SST_SEC_STRONG && aead == SST_AEAD_AES256GCM) {
        if (crypto_aead_aes256gcm_is_available() != 1) {
            sodium_memzero(p, sizeof *p);
            return SST_ERR_CRYPTO;
        }
        sst_protect_wake(p);
    }
    return 0;
}

void sst_protect_idle(struct sst_protect *p)
{
    if (p->aes == NULL)
        return;
    sodium_memzero(p->aes, sizeof(crypto_aead_aes256gcm_state));
    free(p->aes);
    p->aes = NULL;
}

/* The state type is declared 16-byte aligned (AES-NI loads); aligned_alloc wants a multiple. */
#define AES_STATE_SIZE ((sizeof(crypto_aead_aes256gcm_state) + 15) & ~(size_t)15)

size_t sst_protect_heap_bytes(const struct sst_protect *p)
{
    return p->aes ? AES_STATE_SIZE : 0;
}

void sst_protect_wake(struct sst_protect *p)
{
    if (p->aes != NULL || p->security != SST_SEC_STRONG || p->aead != SST_AEAD_AES256GCM)
        return;
    crypto_aead_aes256gcm_state *st = aligned_alloc(16, AES_STATE_SIZE);
    if (st == NULL)
        return; /* the one-shot functions below take the key instead */
    crypto_aead_aes256gcm_beforenm(st, p->key);
    p->aes = st;
}

void sst_protect_wipe(struct sst_protect *p)
{
    sst_protect_idle(p);
    sodium_memzero(p, sizeof *p);
}

size_t sst_protect_overhead(const struct sst_protect *p)
{
    return p->security == SST_SEC_LIGHT ? LIGHT_TAG_LEN : AEAD_TAG_LEN;
}

/* SipHash-2-4 over header || payload || seq64.  The 8 bytes of seq are written into the tailroom
 * just past `len` so the MAC input is contiguous without a copy; the caller's tailroom covers it. */
static void light_mac(const struct sst_protect *p, uint64_t seq, uint8_t *pkt, size_t len,
                      uint8_t out[LIGHT_TAG_LEN])
{
    uint8_t mac[crypto_shorthash_BYTES];
    sst_put64(pkt + len, seq);
    crypto_shorthash(mac, pkt, len + 8, p->key);
    memcpy(out, mac, LIGHT_TAG_LEN);
}

size_t sst_protect_seal(const struct sst_protect *p, uint64_t seq, uint8_t *pkt, size_t len)
{
    if (p->security == SST_SEC_LIGHT) {
        uint8_t tag[LIGHT_TAG_LEN];
        light_mac(p, seq, pkt, len, tag);
        memcpy(pkt + len, tag, LIGHT_TAG_LEN);
        return len + LIGHT_TAG_LEN;
    }
    uint8_t nonce[12];
    make_nonce(nonce, seq);
    uint8_t *body = pkt + SST_CHAN_HDR_LEN;
    unsigned long long body_len = len - SST_CHAN_HDR_LEN;
    if (p->aead == SST_AEAD_AES256GCM && p->aes)
        crypto_aead_aes256gcm_encrypt_detached_afternm(body, pkt + len, NULL, body, body_len, pkt,
                                                       SST_CHAN_HDR_LEN, NULL, nonce, p->aes);
    else if (p->aead == SST_AEAD_AES256GCM)
        crypto_aead_aes256gcm_encrypt_detached(body, pkt + len, NULL, body, body_len, pkt,
                                               SST_CHAN_HDR_LEN, NULL, nonce, p->key);
    else
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(body, pkt + len, NULL, body, body_len, pkt,
                                                           SST_CHAN_HDR_LEN, NULL, nonce, p->key);
    return len + AEAD_TAG_LEN;
}

/* The AEAD of a packet whose body's plaintext is at body (hdr: the channel header, associated
 * data): ciphertext and tag go to out after the header, in one pass (libsodium allows c != m). */
static void aead_seal_body(const struct sst_protect *p, uint64_t seq, const uint8_t *hdr,
                           const uint8_t *body, unsigned long long body_len, uint8_t *out)
{
    uint8_t nonce[12];
    make_nonce(nonce, seq);
    uint8_t *c = out + SST_CHAN_HDR_LEN, *tag = c + body_len;
    if (p->aead == SST_AEAD_AES256GCM && p->aes)
        crypto_aead_aes256gcm_encrypt_detached_afternm(c, tag, NULL, body, body_len, hdr,
                                                       SST_CHAN_HDR_LEN, NULL, nonce, p->aes);
    else if (p->aead == SST_AEAD_AES256GCM)
        crypto_aead_aes256gcm_encrypt_detached(c, tag, NULL, body, body_len, hdr, SST_CHAN_HDR_LEN,
                                               NULL, nonce, p->key);
    else
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(c, tag, NULL, body, body_len, hdr,
                                                           SST_CHAN_HDR_LEN, NULL, nonce, p->key);
}

size_t sst_protect_seal_to(const struct sst_protect *p, uint64_t seq, uint8_t *pkt, size_t len,
                           uint8_t *out)
{
    if (p->security == SST_SEC_LIGHT) {
        /* Nothing is encrypted: the payload has to be copied anyway, then tagged in place. */
        memcpy(out, pkt, len);
        return sst_protect_seal(p, seq, out, len);
    }
    /* The AEADs read the plaintext from pkt and write the ciphertext to out in one pass, so the
     * payload is touched once instead of sealed in place and copied. */
    memcpy(out, pkt, SST_CHAN_HDR_LEN);
    aead_seal_body(p, seq, pkt, pkt + SST_CHAN_HDR_LEN, len - SST_CHAN_HDR_LEN, out);
    return len + AEAD_TAG_LEN;
}

size_t sst_protect_seal_gather(const struct sst_protect *p, uint64_t seq, const uint8_t *pkt,
                               size_t head_len, uint8_t *tail, size_t tail_len, uint8_t *out)
{
    size_t len = head_len + tail_len;
    if (p->security == SST_SEC_LIGHT) {
        /* Nothing is encrypted: the packet is put together in out and tagged there. */
        memcpy(out, pkt, head_len);
        memcpy(out + head_len, tail, tail_len);
        return sst_protect_seal(p, seq, out, len);
    }
    /* The head goes just before the tail so that the body is one piece, read once by the AEAD
     * where the tail lies; the bytes it covered there are put back.  All SST_PROTECT_GATHER_HEAD
     * bytes are saved (a fixed-size copy is a register move, not a call). */
    size_t head = head_len - SST_CHAN_HDR_LEN;
    uint8_t saved[SST_PROTECT_GATHER_HEAD];
    memcpy(saved, tail - SST_PROTECT_GATHER_HEAD, SST_PROTECT_GATHER_HEAD);
    memcpy(tail - head, pkt + SST_CHAN_HDR_LEN, head);
    memcpy(out, pkt, SST_CHAN_HDR_LEN);
    aead_seal_body(p, seq, pkt, tail - head, len - SST_CHAN_HDR_LEN, out);
    memcpy(tail - SST_PROTECT_GATHER_HEAD, saved, SST_PROTECT_GATHER_HEAD);
    return len + AEAD_TAG_LEN;
}

int sst_protect_open(const struct sst_protect *p, uint64_t seq, uint8_t *pkt, size_t len,
                     size_t *out_len)
{
    size_t over = sst_protect_overhead(p);
    if (len < SST_CHAN_HDR_LEN + over)
        return SST_ERR_MALFORMED;
    size_t plain_len = len - over;
    if (p->security == SST_SEC_LIGHT) {
        uint8_t got[LIGHT_TAG_LEN], want[LIGHT_TAG_LEN];
        memcpy(got, pkt + plain_len, LIGHT_TAG_LEN);
        light_mac(p, seq, pkt, plain_len, want);
        /* Put the trailer back so a rejected packet is left as it arrived. */
        memcpy(pkt + plain_len, got, LIGHT_TAG_LEN);
        if (sodium_memcmp(got, want, LIGHT_TAG_LEN) != 0)
            return SST_ERR_AUTH;
        *out_len = plain_len;
        return 0;
    }
    uint8_t nonce[12];
    make_nonce(nonce, seq);
    uint8_t *body = pkt + SST_CHAN_HDR_LEN;
    unsigned long long body_len = plain_len - SST_CHAN_HDR_LEN;
    int rc;
    if (p->aead == SST_AEAD_AES256GCM && p->aes)
        rc = crypto_aead_aes256gcm_decrypt_detached_afternm(body, NULL, body, body_len, pkt + plain_len,
                                                            pkt, SST_CHAN_HDR_LEN, nonce, p->aes);
    else if (p->aead == SST_AEAD_AES256GCM)
        rc = crypto_aead_aes256gcm_decrypt_detached(body, NULL, body, body_len, pkt + plain_len, pkt,
                                                    SST_CHAN_HDR_LEN, nonce, p->key);
    else
        rc = crypto_aead_chacha20poly1305_ietf_decrypt_detached(body, NULL, body, body_len,
                                                                pkt + plain_len, pkt, SST_CHAN_HDR_LEN,
                                                                nonce, p->key);
    /* libsodium's AES-GCM wipes the (in-place) body when the tag fails; a rejected packet is
     * dropped by the caller either way, so that is harmless. */
    if (rc != 0)
        return SST_ERR_AUTH;
    *out_len = plain_len;
    return 0;
}

const char *sst_security_name(enum sst_security s)
{
    switch (s) {
    case SST_SEC_STRONG: return "strong";
    case SST_SEC_LIGHT: return "light";
    }
    return "unknown";
}

uint64_t sst_protect_derive_id(const struct sst_protect *p, const char *label)
{
    /* A keyed BLAKE2b of the label: both ends of a direction hold the same key, so both derive
     * the same value, and the value reveals nothing about the key. */
    uint8_t out[8];
    crypto_generichash(out, sizeof out, (const uint8_t *)label, strlen(label), p->key, sizeof p->key);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof out; i++)
        v = (v << 8) | out[i];
    return v;
}

int sst_security_parse(const char *s, enum sst_security *out)
{
    if (strcmp(s, "strong") == 0) {
        *out = SST_SEC_STRONG;
        return 0;
    }
    if (strcmp(s, "light") == 0) {
        *out = SST_SEC_LIGHT;
        return 0;
    }
    return SST_ERR_INVAL;
}
