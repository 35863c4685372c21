/* Bounded, expiring, single-use table of session-resumption tickets (see ticket.h). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "err.h"
#include "ticket.h"

struct sst_ticket_entry {
    uint8_t key[SST_TICKET_KEY_MAX];
    UT_hash_handle hh;
    struct sst_ticket tk;
};

void sst_ticket_table_init(struct sst_ticket_table *t, unsigned cap, size_t keylen)
{
    memset(t, 0, sizeof *t);
    t->cap = cap;
    t->keylen = keylen <= SST_TICKET_KEY_MAX ? keylen : SST_TICKET_KEY_MAX;
}

static void entry_del(struct sst_ticket_table *t, struct sst_ticket_entry *e)
{
    HASH_DEL(t->head, e);
    t->count--;
    sodium_memzero(e, sizeof *e);
    free(e);
}

void sst_ticket_table_clear(struct sst_ticket_table *t)
{
    struct sst_ticket_entry *e, *tmp;
    HASH_ITER(hh, t->head, e, tmp) {
        entry_del(t, e);
    }
}

int sst_ticket_put(struct sst_ticket_table *t, const uint8_t *key, const struct sst_ticket *tk)
{
    if (t->cap == 0)
        return 0;
    struct sst_ticket_entry *e = NULL;
    HASH_FIND(hh, t->head, key, t->keylen, e);
    if (e)
        entry_del(t, e);  /* re-added at the young end: order stays expiry order */
    while (t->count >= t->cap)
        entry_del(t, t->head);
    e = calloc(1, sizeof *e);
    if (!e)
        return SST_ERR_NOMEM;
    memcpy(e->key, key, t->keylen);
    e->tk = *tk;
    HASH_ADD(hh, t->head, key, t->keylen, e);
    t->count++;
    return 0;
}

const struct sst_ticket *sst_ticket_find(const struct sst_ticket_table *t, const uint8_t *key, sst_time_t now)
{
    struct sst_ticket_entry *e = NULL;
    HASH_FIND(hh, t->head, key, t->keylen, e);
    return e && e->tk.expiry > now ? &e->tk : NULL;
}

void sst_ticket_drop(struct sst_ticket_table *t, const uint8_t *key)
{
    struct sst_ticket_entry *e = NULL;
    HASH_FIND(hh, t->head, key, t->keylen, e);
    if (e)
        entry_del(t, e);
}

bool sst_ticket_take(struct sst_ticket_table *t, const uint8_t *key, sst_time_t now, struct sst_ticket *out)
{
    struct sst_ticket_entry *e = NULL;
    HASH_FIND(hh, t->head, key, t->keylen, e);
    if (!e)
        return false;
    bool ok = e->tk.expiry > now;
    if (ok)
        *out = e->tk;
    entry_del(t, e);
    return ok;
}

sst_time_t sst_ticket_expire(struct sst_ticket_table *t, sst_time_t now)
{
    while (t->head && t->head->tk.expiry <= now)
        entry_del(t, t->head);
    return t->head ? t->head->tk.expiry : SST_TIME_NEVER;
}
