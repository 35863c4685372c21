/* Pool-backed table of per-packet send records keyed by channel sequence number. */
#include <stdlib.h>
#include <string.h>

#include "stream_txrec.h"

struct sst_txrec_chunk {
    struct sst_txrec_chunk *next;
    struct sst_txrec recs[SST_TXREC_CHUNK];
};

void sst_txrec_init(struct sst_txrec_table *t, size_t cap)
{
    memset(t, 0, sizeof *t);
    t->cap = cap;
}

void sst_txrec_free_all(struct sst_txrec_table *t)
{
    HASH_CLEAR(hh, t->by_seq);
    struct sst_txrec_chunk *c = t->chunks;
    while (c != NULL) {
        struct sst_txrec_chunk *next = c->next;
        free(c);
        c = next;
    }
    t->chunks = NULL;
    t->free_list = NULL;
    t->count = t->allocated = 0;
}

void sst_txrec_trim(struct sst_txrec_table *t)
{
    if (t->count > 0 || t->chunks == NULL)
        return;
    size_t cap = t->cap, hw = t->high_water;
    sst_txrec_free_all(t);
    sst_txrec_init(t, cap);
    t->high_water = hw;
}

static bool grow(struct sst_txrec_table *t)
{
    if (t->allocated + SST_TXREC_CHUNK > t->cap)
        return false;
    struct sst_txrec_chunk *c = malloc(sizeof *c);
    if (c == NULL)
        return false;
    c->next = t->chunks;
    t->chunks = c;
    for (size_t i = 0; i < SST_TXREC_CHUNK; i++) {
        c->recs[i].next_free = t->free_list;
        t->free_list = &c->recs[i];
    }
    t->allocated += SST_TXREC_CHUNK;
    return true;
}

struct sst_txrec *sst_txrec_add(struct sst_txrec_table *t, uint64_t seq)
{
    if (t->free_list == NULL && !grow(t))
        return NULL;
    struct sst_txrec *r = t->free_list;
    t->free_list = r->next_free;
    memset(r, 0, sizeof *r);
    r->seq = seq;
    HASH_ADD(hh, t->by_seq, seq, sizeof r->seq, r);
    t->count++;
    if (t->count > t->high_water)
        t->high_water = t->count;
    return r;
}

struct sst_txrec *sst_txrec_take(struct sst_txrec_table *t, uint64_t seq)
{
    struct sst_txrec *r = NULL;
    HASH_FIND(hh, t->by_seq, &seq, sizeof seq, r);
    if (r != NULL) {
        HASH_DELETE(hh, t->by_seq, r);
        t->count--;
    }
    return r;
}

void sst_txrec_release(struct sst_txrec_table *t, struct sst_txrec *r)
{
    r->next_free = t->free_list;
    t->free_list = r;
}

void sst_txrec_forget_stream(struct sst_txrec_table *t, const void *stream)
{
    struct sst_txrec *r, *tmp;
    HASH_ITER(hh, t->by_seq, r, tmp) {
        if (r->stream == stream)
            r->stream = NULL;
    }
}
