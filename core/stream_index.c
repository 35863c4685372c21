/* Open-addressing stream indexes (linear probing, deletion by backward shift so no tombstones
 * accumulate).  The table grows at 3/4 load, shrinks below 1/8 and is freed when empty, so an
 * idle conn whose streams detached holds no index storage. */
#include <sodium.h>
#include <stdlib.h>

#include "stream_int.h"

#define SIDX_MIN 8

/* A 64-bit finaliser (MurmurHash3 fmix64): every key bit reaches every slot bit. */
static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t hash_lsid(const struct sst_sidx *x, uint16_t lsid) { return mix(x->seed ^ lsid); }

static uint64_t hash_usid(const struct sst_sidx *x, const struct sst_usid *u)
{
    return mix(mix(x->seed ^ u->counter) ^ u->nonce);
}

static uint64_t hash_of(const struct sst_sidx *x, const struct sst_stream *s)
{
    switch (x->key) {
    case SST_SIDX_LOCAL:
        return hash_lsid(x, s->local_lsid);
    case SST_SIDX_REMOTE:
        return hash_lsid(x, s->remote_lsid);
    default:
        return hash_usid(x, &s->usid);
    }
}

void sst_sidx_init(struct sst_sidx *x, enum sst_sidx_key key)
{
    x->slot = NULL;
    x->cap = x->n = 0;
    x->key = (uint8_t)key;
    randombytes_buf(&x->seed, sizeof x->seed);
}

void sst_sidx_clear(struct sst_sidx *x)
{
    free(x->slot);
    x->slot = NULL;
    x->cap = x->n = 0;
}

static void put(struct sst_stream **slot, uint32_t mask, uint64_t h, struct sst_stream *s)
{
    uint32_t i = (uint32_t)h & mask;
    while (slot[i] != NULL)
        i = (i + 1) & mask;
    slot[i] = s;
}

static bool resize(struct sst_sidx *x, uint32_t cap)
{
    struct sst_stream **ns = calloc(cap, sizeof *ns);
    if (ns == NULL)
        return false;
    for (uint32_t i = 0; i < x->cap; i++)
        if (x->slot[i] != NULL)
            put(ns, cap - 1, hash_of(x, x->slot[i]), x->slot[i]);
    free(x->slot);
    x->slot = ns;
    x->cap = cap;
    return true;
}

bool sst_sidx_add(struct sst_sidx *x, struct sst_stream *s)
{
    if ((uint64_t)(x->n + 1) * 4 > (uint64_t)x->cap * 3 &&
        !resize(x, x->cap == 0 ? SIDX_MIN : x->cap * 2))
        return false;
    put(x->slot, x->cap - 1, hash_of(x, s), s);
    x->n++;
    return true;
}

void sst_sidx_del(struct sst_sidx *x, struct sst_stream *s)
{
    if (x->cap == 0)
        return;
    uint32_t mask = x->cap - 1, i = (uint32_t)hash_of(x, s) & mask;
    while (x->slot[i] != s) {
        if (x->slot[i] == NULL)
            return;
        i = (i + 1) & mask;
    }
    /* Backward shift: pull each later entry of the run into the hole unless its home slot lies
     * cyclically in (hole, its position], where moving it would put it before its home. */
    for (uint32_t j = (i + 1) & mask; x->slot[j] != NULL; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)hash_of(x, x->slot[j]) & mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            x->slot[i] = x->slot[j];
            i = j;
        }
    }
    x->slot[i] = NULL;
    x->n--;
    if (x->n == 0)
        sst_sidx_clear(x);
    else if (x->cap > SIDX_MIN && x->n * 8 < x->cap)
        (void)resize(x, x->cap / 2);   /* kept as is when memory is short */
}

struct sst_stream *sst_sidx_find_lsid(const struct sst_sidx *x, uint16_t lsid)
{
    if (x->cap == 0)
        return NULL;
    uint16_t want = lsid;
    uint32_t mask = x->cap - 1;
    for (uint32_t i = (uint32_t)hash_lsid(x, want) & mask; x->slot[i] != NULL; i = (i + 1) & mask) {
        const struct sst_stream *s = x->slot[i];
        if ((x->key == SST_SIDX_LOCAL ? s->local_lsid : s->remote_lsid) == want)
            return x->slot[i];
    }
    return NULL;
}

struct sst_stream *sst_sidx_find_usid(const struct sst_sidx *x, const struct sst_usid *u)
{
    if (x->cap == 0)
        return NULL;
    uint32_t mask = x->cap - 1;
    for (uint32_t i = (uint32_t)hash_usid(x, u) & mask; x->slot[i] != NULL; i = (i + 1) & mask)
        if (sst_usid_eq(&x->slot[i]->usid, u))
            return x->slot[i];
    return NULL;
}
