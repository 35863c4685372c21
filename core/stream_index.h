/* Indexes of a conn's streams by LSID and of a context's streams by USID (paper §4.3.1,
 * §4.3.3): open-addressing tables of stream pointers, so a stream carries no hash handle and
 * an index costs one pointer slot per entry at a load of 3/8 to 3/4 (uthash took 56 bytes in
 * every stream per index, used or not). */
#ifndef SST_STREAM_INDEX_H
#define SST_STREAM_INDEX_H

#include "sid.h"

struct sst_stream;

/* Which key of the stream an index is by. */
enum sst_sidx_key { SST_SIDX_LOCAL = 0, SST_SIDX_REMOTE, SST_SIDX_USID };

struct sst_sidx {
    struct sst_stream **slot;   /* cap slots (a power of two), NULL when empty; none when cap 0 */
    uint32_t cap, n;
    uint64_t seed;              /* random per index: a peer choosing LSIDs or USID counters
                                 * cannot aim them at one cluster of slots */
    uint8_t key;                /* enum sst_sidx_key */
};

void sst_sidx_init(struct sst_sidx *x, enum sst_sidx_key key);
/* Empties the index and gives its storage back (the streams are not touched). */
void sst_sidx_clear(struct sst_sidx *x);
/* Adds s, whose key no stream in x has.  False when memory is short (x unchanged).  The key
 * must not change while s is in x. */
SST_MUST_CHECK bool sst_sidx_add(struct sst_sidx *x, struct sst_stream *s);
/* Removes s if it is in x. */
void sst_sidx_del(struct sst_sidx *x, struct sst_stream *s);
struct sst_stream *sst_sidx_find_lsid(const struct sst_sidx *x, uint16_t lsid);
struct sst_stream *sst_sidx_find_usid(const struct sst_sidx *x, const struct sst_usid *u);
static inline uint32_t sst_sidx_count(const struct sst_sidx *x) { return x->n; }

#endif
