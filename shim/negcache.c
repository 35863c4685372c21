/* Negative cache of destinations without SST: a uthash table keyed by (family, ip, port). */
#include "negcache.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <uthash.h>

struct nc_key {
    uint8_t family;
    uint8_t ip[16];
    uint16_t port;
};

struct nc_entry {
    struct nc_key key;
    uint64_t expires;
    UT_hash_handle hh;
};

struct shim_negcache {
    struct nc_entry *table;
};

static void make_key(struct nc_key *k, int family, const uint8_t ip[16], uint16_t port)
{
    memset(k, 0, sizeof(*k));   /* padding is part of the hashed key */
    k->family = (uint8_t)family;
    memcpy(k->ip, ip, family == AF_INET ? 4 : 16);
    k->port = port;
}

struct shim_negcache *shim_negcache_new(void)
{
    return calloc(1, sizeof(struct shim_negcache));
}

void shim_negcache_free(struct shim_negcache *nc)
{
    struct nc_entry *e, *tmp;
    if (!nc)
        return;
    HASH_ITER(hh, nc->table, e, tmp) {
        HASH_DEL(nc->table, e);
        free(e);
    }
    free(nc);
}

int shim_negcache_put(struct shim_negcache *nc, int family, const uint8_t ip[16], uint16_t port,
                      uint64_t now, uint64_t ttl)
{
    struct nc_key k;
    struct nc_entry *e;

    make_key(&k, family, ip, port);
    HASH_FIND(hh, nc->table, &k, sizeof(k), e);
    if (e) {
        /* Refresh and move to the back so eviction stays oldest-first. */
        HASH_DEL(nc->table, e);
    } else {
        if (HASH_COUNT(nc->table) >= SHIM_NEGCACHE_MAX) {
            struct nc_entry *old = nc->table;   /* insertion order: the head is the oldest */
            HASH_DEL(nc->table, old);
            free(old);
        }
        e = calloc(1, sizeof(*e));
        if (!e)
            return -1;
        e->key = k;
    }
    e->expires = now + ttl;
    HASH_ADD(hh, nc->table, key, sizeof(e->key), e);
    return 0;
}

bool shim_negcache_has(struct shim_negcache *nc, int family, const uint8_t ip[16], uint16_t port,
                       uint64_t now)
{
    struct nc_key k;
    struct nc_entry *e;

    make_key(&k, family, ip, port);
    HASH_FIND(hh, nc->table, &k, sizeof(k), e);
    if (!e)
        return false;
    if (now >= e->expires) {
        HASH_DEL(nc->table, e);
        free(e);
        return false;
    }
    return true;
}

unsigned shim_negcache_count(const struct shim_negcache *nc)
{
    return HASH_COUNT(nc->table);
}
