/* The simulator's packet pool: fixed-size buffers on a free list, allocated in chunks up to a
 * cap, so steady-state traffic does no malloc per packet and a flood is counted, not fatal. */
#include <stdlib.h>

#include "err.h"
#include "sim_internal.h"

#define POOL_CHUNK 64

int sim_pool_init(struct sim_pool *p, size_t cap, size_t max_packet)
{
    *p = (struct sim_pool){ 0 };
    /* Round the buffer size up so every packet header in a chunk stays aligned. */
    size_t sz = sizeof(struct sim_pkt) + max_packet + SST_PROTECT_TAILROOM;
    p->pkt_size = (sz + 15) & ~(size_t)15;
    p->cap = cap;
    return 0;
}

static int grow(struct sim_pool *p)
{
    size_t n = SST_MIN((size_t)POOL_CHUNK, p->cap - p->allocated);
    if (n == 0)
        return SST_ERR_NOMEM;
    if (p->nchunks == p->chunks_cap) {
        size_t cap = p->chunks_cap ? p->chunks_cap * 2 : 16;
        void **c = realloc(p->chunks, cap * sizeof *c);
        if (!c)
            return SST_ERR_NOMEM;
        p->chunks = c;
        p->chunks_cap = cap;
    }
    uint8_t *mem = malloc(n * p->pkt_size);
    if (!mem)
        return SST_ERR_NOMEM;
    p->chunks[p->nchunks++] = mem;
    for (size_t i = 0; i < n; i++) {
        struct sim_pkt *pkt = (struct sim_pkt *)(void *)(mem + i * p->pkt_size);
        pkt->next = p->free;
        p->free = pkt;
    }
    p->allocated += n;
    return 0;
}

struct sim_pkt *sim_pool_get(struct sim_pool *p)
{
    if (!p->free && grow(p) != 0)
        return NULL;
    struct sim_pkt *pkt = p->free;
    p->free = pkt->next;
    pkt->next = NULL;
    p->in_use++;
    if (p->in_use > p->high_water)
        p->high_water = p->in_use;
    return pkt;
}

void sim_pool_put(struct sim_pool *p, struct sim_pkt *pkt)
{
    pkt->next = p->free;
    p->free = pkt;
    p->in_use--;
}

void sim_pool_free(struct sim_pool *p)
{
    for (size_t i = 0; i < p->nchunks; i++)
        free(p->chunks[i]);
    free(p->chunks);
    *p = (struct sim_pool){ 0 };
}
