/* Session-resumption tickets (docs/protocol-negotiation.md, "Session resumption"): a bounded,
 * expiring table of resumption secrets.  A responder keeps the tickets it issued, keyed by
 * ticket ID; an initiator keeps the one it holds for each peer, keyed by the peer's address.
 * Tickets are single-use: taking one removes it.  Insertion order is expiry order (one lifetime
 * per table, time only moves forward), so expiry and eviction work from the oldest end. */
#ifndef SST_TICKET_H
#define SST_TICKET_H

#include "types.h"

#define SST_TICKET_ID_LEN 16
#define SST_TICKET_KEY_MAX 19        /* a canonical address (sst_addr_encode) or a ticket ID */

struct sst_ticket {
    uint8_t id[SST_TICKET_ID_LEN];   /* the opaque name the responder chose */
    uint8_t psk[32];                 /* resumption secret of the handshake that issued it */
    uint8_t peer_static[32];         /* the peer's host key authenticated by that handshake */
    sst_time_t expiry;
};

struct sst_ticket_entry;             /* private to ticket.c */

struct sst_ticket_table {
    struct sst_ticket_entry *head;   /* uthash, oldest first */
    unsigned count, cap;             /* cap 0: the table holds nothing */
    size_t keylen;                   /* bytes of key used (<= SST_TICKET_KEY_MAX) */
};

void sst_ticket_table_init(struct sst_ticket_table *t, unsigned cap, size_t keylen);
/* Frees (and wipes) every ticket. */
void sst_ticket_table_clear(struct sst_ticket_table *t);
/* Stores a ticket under key, replacing one with the same key and evicting the oldest when full.
 * 0, or SST_ERR_NOMEM (nothing stored; resumption is an optimisation, callers go on). */
int sst_ticket_put(struct sst_ticket_table *t, const uint8_t *key, const struct sst_ticket *tk);
/* The unexpired ticket under key, left in place (NULL if none); valid until the table changes. */
const struct sst_ticket *sst_ticket_find(const struct sst_ticket_table *t, const uint8_t *key, sst_time_t now);
/* Removes the ticket under key, if any. */
void sst_ticket_drop(struct sst_ticket_table *t, const uint8_t *key);
/* Removes the ticket under key and copies it to out; false if there is none or it expired. */
bool sst_ticket_take(struct sst_ticket_table *t, const uint8_t *key, sst_time_t now, struct sst_ticket *out);
/* Drops expired tickets; returns the next expiry or SST_TIME_NEVER. */
sst_time_t sst_ticket_expire(struct sst_ticket_table *t, sst_time_t now);

#endif
