/* Simulator internals shared by sim.c, link.c, heap.c and pool.c; tests use sim.h only. */
#ifndef SST_SIM_INTERNAL_H
#define SST_SIM_INTERNAL_H

#include <sodium.h>
#include <uthash.h>

#include "protect.h"
#include "sim.h"

/* A datagram in flight.  data has max_packet + SST_PROTECT_TAILROOM bytes so the receiver can
 * decrypt in place. */
struct sim_pkt {
    struct sim_pkt *next;      /* free list */
    struct sim_link *link;
    struct sst_addr from, to;
    size_t len;
    uint8_t data[];
};

/* Fixed-size packet buffers on a free list, allocated in chunks up to a cap: no malloc per
 * packet once the working set is allocated. */
struct sim_pool {
    struct sim_pkt *free;
    void **chunks;
    size_t nchunks, chunks_cap;
    size_t pkt_size;           /* bytes per buffer incl. header */
    size_t cap, allocated, in_use, high_water;
};

int sim_pool_init(struct sim_pool *p, size_t cap, size_t max_packet);
void sim_pool_free(struct sim_pool *p);
struct sim_pkt *sim_pool_get(struct sim_pool *p);
void sim_pool_put(struct sim_pool *p, struct sim_pkt *pkt);

enum sim_ev_kind { SIM_EV_ARRIVE = 1, SIM_EV_TIMER, SIM_EV_CALL };

struct sim_ev {
    sst_time_t t;
    uint64_t seq;              /* insertion order: breaks ties so runs are reproducible */
    uint32_t kind;             /* enum sim_ev_kind */
    uint32_t gen;              /* SIM_EV_TIMER: node timer generation when armed */
    void *p;                   /* sim_pkt, sim_node or sim_call */
    void *ctx;                 /* SIM_EV_CALL: the callback's ctx */
};

/* Binary min-heap on (t, seq). */
struct sim_heap {
    struct sim_ev *ev;
    size_t n, cap;
    uint64_t next_seq;
};

int sim_heap_push(struct sim_heap *h, struct sim_ev ev);
bool sim_heap_pop(struct sim_heap *h, struct sim_ev *out);
/* Earliest event's time, SST_TIME_NEVER if empty. */
sst_time_t sim_heap_peek_time(const struct sim_heap *h);
void sim_heap_free(struct sim_heap *h);

/* Key for address hash tables: canonical encoding plus IPv6 scope (struct sst_addr has padding,
 * so it cannot be hashed as raw bytes). */
struct sim_addr_key {
    uint8_t b[23];
};
void sim_addr_key(const struct sst_addr *a, struct sim_addr_key *k);

struct sim_node {
    struct sim_addr_key key;
    UT_hash_handle hh;
    struct sst_addr addr;
    struct sim_node_ops ops;
    void *ctx;
    bool alive;
    uint32_t timer_gen;        /* bumped when the armed deadline changes; stale events ignored */
    sst_time_t armed;          /* deadline currently in the heap, SST_TIME_NEVER if none */
    struct sim_node *all_next; /* every node ever added, for sim_free */
};

struct sim_route_key {
    struct sim_addr_key from, to;
};

struct sim_route_ent {
    struct sim_route_key key;
    UT_hash_handle hh;
    struct sim_link *link;
};

/* A departure recorded in the link's FIFO: bytes leave the queue when serialization ends. */
struct sim_departure {
    sst_time_t t;
    size_t len;
};

struct sim_link {
    struct sim *sim;
    struct sim_link *next;     /* all links, for sim_free */
    struct sim_link_params p;
    struct sim_link_stats st;
    struct sim_rng rng;
    bool ge_bad;               /* Gilbert-Elliott state */
    sst_time_t busy_until;     /* serializer finishes the last accepted packet */
    sst_time_t last_arrival;   /* latest in-order arrival scheduled: keeps FIFO under jitter */
    /* Ring of accepted packets not yet fully serialized (occupancy). */
    struct sim_departure *ring;
    size_t ring_head, ring_n, ring_cap;
    size_t occupancy;
};

struct sim {
    struct sim_config cfg;
    sst_time_t now;
    struct sim_heap heap;
    struct sim_pool pool;
    struct sim_node *nodes;            /* uthash by address, live nodes only */
    struct sim_node *all_nodes;
    struct sim_route_ent *routes;      /* uthash by (from, to) */
    struct sim_link *default_link;
    struct sim_link *links;
    uint64_t nlinks;
    struct sim_stats st;
    crypto_generichash_state trace;
};

/* link.c: pushes one datagram through the link model at s->now; schedules arrivals. */
int sim_link_enqueue(struct sim_link *l, const struct sst_addr *from, const struct sst_addr *to,
                     const uint8_t *pkt, size_t len);
void sim_link_destroy(struct sim_link *l);
/* sim.c: schedules the arrival of pkt at time t. */
int sim_schedule_arrival(struct sim *s, struct sim_pkt *pkt, sst_time_t t);

#endif
