/* The capability cache: which hosts answered SST and which did not, with an expiry, so that only
 * the first connection to a new host has to race SST against TCP (issue [helper], "auto").
 * Bounded in size as well as time: a crawler under SST_PEERS=* adds an entry (~200 B) per host
 * it visits, and "no SST" answers live 10 minutes, so at SSTD_CAPS_MAX entries the least
 * recently used one (set or looked up) gives way -- uthash keeps insertion order, and a use
 * moves an entry to the back, so that is always the first one. */
#include "sstd.h"

#include <stdlib.h>
#include <string.h>

struct cap_entry {
    char host[SST_ADDR_STRLEN];
    enum sstd_cap cap;
    char reason[64];
    sst_time_t expires;
    UT_hash_handle hh;
};

struct sstd_caps {
    struct cap_entry *tab;
    uint64_t evicted;   /* entries dropped for room before they expired */
};

/* A use: to the back of the eviction order. */
static void touch(struct sstd_caps *c, struct cap_entry *e)
{
    HASH_DEL(c->tab, e);
    HASH_ADD_STR(c->tab, host, e);
}

struct sstd_caps *sstd_caps_new(void)
{
    return calloc(1, sizeof(struct sstd_caps));
}

void sstd_caps_free(struct sstd_caps *c)
{
    struct cap_entry *e, *tmp;
    if (!c)
        return;
    HASH_ITER(hh, c->tab, e, tmp) {
        HASH_DEL(c->tab, e);
        free(e);
    }
    free(c);
}

void sstd_caps_set(struct sstd_caps *c, const char *host, enum sstd_cap cap, const char *reason,
                   sst_time_t now, sst_time_t ttl)
{
    struct cap_entry *e;
    if (strlen(host) >= sizeof e->host)
        return;
    HASH_FIND_STR(c->tab, host, e);
    if (e) {
        touch(c, e);
    } else {
        if (HASH_COUNT(c->tab) >= SSTD_CAPS_MAX) {
            struct cap_entry *lru = c->tab;   /* the front: least recently used */
            HASH_DEL(c->tab, lru);
            free(lru);
            c->evicted++;
        }
        e = calloc(1, sizeof *e);
        if (!e)
            return; /* a cache miss later is harmless */
        strcpy(e->host, host);
        HASH_ADD_STR(c->tab, host, e);
    }
    e->cap = cap;
    snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    e->expires = now + ttl;
}

void sstd_caps_del(struct sstd_caps *c, const char *host)
{
    struct cap_entry *e;
    HASH_FIND_STR(c->tab, host, e);
    if (e) {
        HASH_DEL(c->tab, e);
        free(e);
    }
}

enum sstd_cap sstd_caps_get(struct sstd_caps *c, const char *host, sst_time_t now, sst_time_t *expires,
                            const char **reason)
{
    struct cap_entry *e;
    HASH_FIND_STR(c->tab, host, e);
    if (e && now >= e->expires) {
        HASH_DEL(c->tab, e);
        free(e);
        e = NULL;
    }
    if (e)
        touch(c, e);
    if (expires)
        *expires = e ? e->expires : 0;
    if (reason)
        *reason = e ? e->reason : "";
    return e ? e->cap : SSTD_CAP_UNKNOWN;
}

void sstd_caps_foreach(struct sstd_caps *c, sst_time_t now,
                       void (*fn)(void *arg, const char *host, enum sstd_cap cap, const char *reason,
                                  sst_time_t expires),
                       void *arg)
{
    struct cap_entry *e, *tmp;
    HASH_ITER(hh, c->tab, e, tmp) {
        if (now >= e->expires) {
            HASH_DEL(c->tab, e);
            free(e);
            continue;
        }
        fn(arg, e->host, e->cap, e->reason, e->expires);
    }
}

size_t sstd_caps_count(const struct sstd_caps *c, uint64_t *evicted)
{
    if (evicted)
        *evicted = c->evicted;
    return HASH_COUNT(c->tab);
}

const char *sstd_cap_name(enum sstd_cap cap)
{
    switch (cap) {
    case SSTD_CAP_SST:
        return "sst";
    case SSTD_CAP_NO_SST:
        return "no-sst";
    default:
        return "unknown";
    }
}
