/* Negative cache: destinations recently seen not to speak SST, so later connects to them skip the
 * socketpair and use plain kernel TCP.  Time is passed in (ns); the caller serialises access. */
#ifndef SHIM_NEGCACHE_H
#define SHIM_NEGCACHE_H

#include <stdbool.h>
#include <stdint.h>

#define SHIM_NEGCACHE_TTL_NS (300ull * 1000000000ull)   /* 5 minutes */
#define SHIM_NEGCACHE_MAX 1024                           /* entries; oldest evicted beyond */

struct shim_negcache;

struct shim_negcache *shim_negcache_new(void);
void shim_negcache_free(struct shim_negcache *nc);
/* Records that (family, ip, port) lacks SST until now + ttl.  Returns 0 or -1 (no memory). */
int shim_negcache_put(struct shim_negcache *nc, int family, const uint8_t ip[16], uint16_t port,
                      uint64_t now, uint64_t ttl);
/* True when the destination is cached and not expired; expired entries are dropped. */
bool shim_negcache_has(struct shim_negcache *nc, int family, const uint8_t ip[16], uint16_t port,
                       uint64_t now);
unsigned shim_negcache_count(const struct shim_negcache *nc);

#endif
