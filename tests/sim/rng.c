/* Deterministic random streams for the simulator: libsodium's ChaCha20-based
 * randombytes_buf_deterministic, keyed per stream and per block, read from a buffer. */
#include <string.h>

#include <sodium.h>

#include "sim.h"
#include "wire.h"

/* The stream key is BLAKE2b-256(seed64 || id64 || label): distinct labels and ids give
 * independent streams from one seed. */
void sim_rng_init(struct sim_rng *r, uint64_t seed, const char *label, uint64_t id)
{
    uint8_t in[16];
    sst_put64(in, seed);
    sst_put64(in + 8, id);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof r->key);
    crypto_generichash_update(&st, in, sizeof in);
    if (label)
        crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
    crypto_generichash_final(&st, r->key, sizeof r->key);
    r->block = 0;
    r->pos = sizeof r->buf;  /* empty: the first draw fills it */
}

/* randombytes_buf_deterministic has no nonce argument, so each block uses its own key:
 * the stream key with the block number xored into its last 8 bytes. */
static void refill(struct sim_rng *r)
{
    uint8_t k[32];
    memcpy(k, r->key, sizeof k);
    for (int i = 0; i < 8; i++)
        k[24 + i] ^= (uint8_t)(r->block >> (8 * i));
    r->block++;
    randombytes_buf_deterministic(r->buf, sizeof r->buf, k);
    r->pos = 0;
}

void sim_rng_bytes(struct sim_rng *r, void *out, size_t len)
{
    uint8_t *o = out;
    while (len > 0) {
        if (r->pos == sizeof r->buf)
            refill(r);
        size_t n = SST_MIN(len, sizeof r->buf - r->pos);
        memcpy(o, r->buf + r->pos, n);
        r->pos += n;
        o += n;
        len -= n;
    }
}

uint64_t sim_rng_u64(struct sim_rng *r)
{
    uint8_t b[8];
    sim_rng_bytes(r, b, sizeof b);
    return sst_get64(b);
}

uint64_t sim_rng_below(struct sim_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the top partial range so every residue is equally likely. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    uint64_t v;
    do {
        v = sim_rng_u64(r);
    } while (v >= limit);
    return v % n;
}

double sim_rng_unit(struct sim_rng *r)
{
    return (double)(sim_rng_u64(r) >> 11) * 0x1.0p-53;
}

bool sim_rng_chance(struct sim_rng *r, double p)
{
    if (p <= 0.0)
        return false;
    if (p >= 1.0)
        return true;
    return sim_rng_unit(r) < p;
}
