/* A deterministic discrete-event network simulator for tests: virtual time, seeded randomness,
 * nodes addressed by struct sst_addr, and links modelled as a drop-tail FIFO queue feeding a
 * serializer followed by a propagation delay with loss, burst loss, reordering, duplication,
 * corruption and jitter.  Same seed and same inputs give the same run, event for event.
 *
 * A node is any endpoint with three callbacks (recv, deadline, timeout); it sends with sim_send().
 * The simulator jumps from event to event: the earliest of a packet arrival, a node deadline or a
 * scheduled callback.  Ties run in insertion order.  See docs/simulator.md. */
#ifndef SST_SIM_H
#define SST_SIM_H

#include "types.h"

struct sim;
struct sim_link;

/* ---- Seeded randomness ------------------------------------------------------------------ */

/* A stream of deterministic random bytes: ChaCha20 (libsodium randombytes_buf_deterministic)
 * keyed by BLAKE2b(seed, stream id), consumed from a block buffer.  Independent streams per
 * link and per node keep a change in one (say, a loss rate) from shifting every other. */
struct sim_rng {
    uint8_t key[32];
    uint64_t block;          /* next block number (mixed into the per-block key) */
    size_t pos;              /* bytes of buf already used */
    uint8_t buf[512];
};

void sim_rng_init(struct sim_rng *r, uint64_t seed, const char *label, uint64_t id);
void sim_rng_bytes(struct sim_rng *r, void *out, size_t len);
uint64_t sim_rng_u64(struct sim_rng *r);
/* Uniform in [0, n); n == 0 gives 0.  Unbiased (rejection sampling). */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double sim_rng_unit(struct sim_rng *r);
/* True with probability p (p <= 0: never, p >= 1: always, no draw consumed either way). */
bool sim_rng_chance(struct sim_rng *r, double p);

/* ---- Simulator ---------------------------------------------------------------------------- */

struct sim_config {
    uint64_t seed;
    size_t pool_packets;    /* packets in flight at most (default 4096); beyond: counted drop */
    size_t max_packet;      /* largest datagram carried (default 2048); larger: counted drop */
    bool hash_trace;        /* keep a running BLAKE2b hash of every delivery (sim_trace_hash) */
};

/* Whole-simulator counters. */
struct sim_stats {
    uint64_t events;          /* events processed (arrivals, timeouts, callbacks) */
    uint64_t sent;            /* sim_send calls */
    uint64_t delivered;       /* packets handed to a node's recv */
    uint64_t no_route;        /* dropped: no link for (from, to) and no default link */
    uint64_t no_node;         /* dropped at arrival: no node at the destination address */
    uint64_t too_big;         /* dropped: longer than max_packet */
    uint64_t pool_drops;      /* dropped: packet pool exhausted */
    uint64_t timeout_spins;   /* a node's deadline stayed <= now after timeout (clamped +1 ns) */
    size_t pool_in_use;       /* packets currently in flight */
    size_t pool_high_water;   /* most packets ever in flight at once */
    size_t pool_allocated;    /* packet buffers allocated so far (grows in chunks up to the cap) */
};

/* sim_config_default fills the defaults above with seed 1. */
void sim_config_default(struct sim_config *c);
/* NULL cfg = defaults.  Returns NULL only if allocation fails. */
struct sim *sim_new(const struct sim_config *cfg);
void sim_free(struct sim *s);

sst_time_t sim_now(const struct sim *s);
uint64_t sim_seed(const struct sim *s);
void sim_get_stats(const struct sim *s, struct sim_stats *out);
/* 32-byte BLAKE2b over every delivery so far (time, from, to, length, bytes), or zeros if
 * cfg.hash_trace was off.  Two runs are identical iff their hashes match (with overwhelming
 * probability). */
void sim_trace_hash(const struct sim *s, uint8_t out[32]);
/* First 8 bytes of sim_trace_hash as an integer, for printing. */
uint64_t sim_trace_hash64(const struct sim *s);

/* ---- Nodes -------------------------------------------------------------------------------- */

struct sim_node_ops {
    /* A datagram arrived.  pkt is writable and has at least SST_PROTECT_TAILROOM (16) spare
     * bytes after len; it is valid only during the call. */
    void (*recv)(void *ctx, sst_time_t now, const struct sst_addr *from, uint8_t *pkt, size_t len);
    /* When the node next wants timeout(); SST_TIME_NEVER for never.  NULL = never. */
    sst_time_t (*deadline)(void *ctx);
    /* Called at (or after) the deadline.  NULL = nothing. */
    void (*timeout)(void *ctx, sst_time_t now);
};

/* Adds a node at addr.  0, SST_ERR_INVAL (address already taken) or SST_ERR_NOMEM.
 * The ops struct is copied; ctx is passed to every callback. */
int sim_node_add(struct sim *s, const struct sst_addr *addr, const struct sim_node_ops *ops, void *ctx);
/* Removes the node: later arrivals count as no_node and its timer is forgotten.  Safe from any
 * callback, including the node's own. */
void sim_node_remove(struct sim *s, const struct sst_addr *addr);
/* Re-reads the node's deadline.  The simulator re-reads it after every callback into the node
 * and for every node when sim_run_* starts; call this only when code outside the node's own
 * callbacks changed its deadline while the simulator is running (e.g. host A's event callback
 * writing to host B). */
void sim_node_wake(struct sim *s, const struct sst_addr *addr);

/* Sends a datagram from `from` to `to` (copied; the caller keeps pkt).  Network semantics: the
 * packet may be dropped silently later.  Returns 0 if it entered the network (it may still be
 * lost on the link), else the reason it was dropped at once: SST_ERR_NO_CHANNEL (no route),
 * SST_ERR_TOO_BIG, SST_ERR_AGAIN (queue full), SST_ERR_NOMEM (pool exhausted). */
int sim_send(struct sim *s, const struct sst_addr *from, const struct sst_addr *to,
             const uint8_t *pkt, size_t len);

/* Schedules fn(ctx, now) at absolute virtual time t (clamped to now).  Returns 0 or
 * SST_ERR_NOMEM. */
int sim_at(struct sim *s, sst_time_t t, void (*fn)(void *ctx, sst_time_t now), void *ctx);

/* ---- Links -------------------------------------------------------------------------------- */

/* One direction of a path.  Zero everywhere = an ideal link (infinite rate, no delay, no loss). */
struct sim_link_params {
    uint64_t rate_bps;        /* serializer rate in bits/s; 0 = infinite (no queueing) */
    sst_time_t delay;         /* one-way propagation delay */
    size_t queue_bytes;       /* drop-tail limit on bytes in the link (queued + being sent);
                               * 0 = unlimited */
    double loss;              /* independent (Bernoulli) loss probability per packet */
    /* Gilbert-Elliott burst loss: the state changes before each packet, then a packet in the
     * bad state is lost with probability ge_loss_bad.  All zero = off. */
    double ge_p_good_bad;
    double ge_p_bad_good;
    double ge_loss_bad;
    double reorder;           /* probability a packet is held back reorder_delay extra ... */
    sst_time_t reorder_delay; /* ... and may be overtaken by later packets */
    double duplicate;         /* probability a packet is delivered twice */
    double corrupt;           /* probability 1..3 random bits of a packet are flipped */
    sst_time_t jitter;        /* extra delay uniform in [0, jitter]; FIFO order is kept */
    size_t mtu;               /* largest datagram (UDP payload) the link carries; a larger one
                               * is dropped silently, as a DF packet at a smaller hop with no
                               * ICMP coming back (counted in dropped_mtu); 0 = no limit */
};

struct sim_link_stats {
    uint64_t offered, offered_bytes;       /* packets/bytes routed onto the link */
    uint64_t delivered, delivered_bytes;   /* arrivals at the far end (duplicates included) */
    uint64_t dropped_queue;                /* drop-tail overflow */
    uint64_t lost;                         /* random + burst loss on the wire */
    uint64_t lost_burst;                   /* of which in the Gilbert-Elliott bad state */
    uint64_t corrupted, duplicated, reordered;
    uint64_t dropped_pool;                 /* no packet buffer (see sim_stats.pool_drops) */
    uint64_t dropped_mtu;                  /* longer than the link's mtu */
    size_t max_queue_bytes;                /* highest occupancy seen, bytes */
    size_t queue_bytes;                    /* occupancy at the last enqueue */
};

/* A new link owned by the simulator (freed with it). */
struct sim_link *sim_link_new(struct sim *s, const struct sim_link_params *p);
/* Changes parameters from now on (packets already in flight keep their fate). */
void sim_link_set_params(struct sim_link *l, const struct sim_link_params *p);
void sim_link_get_stats(const struct sim_link *l, struct sim_link_stats *out);
/* Routes datagrams from `from` to `to` over link l (l == NULL removes the route).  Several
 * pairs may share one link: they then share its queue and rate (a bottleneck).  0 or
 * SST_ERR_NOMEM. */
int sim_route(struct sim *s, const struct sst_addr *from, const struct sst_addr *to, struct sim_link *l);
/* The link for pairs without a route (NULL, the default, drops them as no_route). */
void sim_route_default(struct sim *s, struct sim_link *l);
/* Convenience: two new links, a->b with ab and b->a with ba (ba NULL = same as ab), routed.
 * Stores them in *out_ab / *out_ba if not NULL.  0 or SST_ERR_NOMEM. */
int sim_path(struct sim *s, const struct sst_addr *a, const struct sst_addr *b,
             const struct sim_link_params *ab, const struct sim_link_params *ba,
             struct sim_link **out_ab, struct sim_link **out_ba);

/* ---- Running ------------------------------------------------------------------------------ */

/* Runs every event due at or before t, then sets the clock to t (t in the past: no-op). */
void sim_run_until(struct sim *s, sst_time_t t);
/* Runs events while pred(ctx) is true, checking it before each event, but not past virtual time
 * `limit`.  Returns 0 once pred is false, SST_ERR_TIMEOUT if the limit came first (the clock is
 * then at limit). */
int sim_run_while(struct sim *s, bool (*pred)(void *ctx), void *ctx, sst_time_t limit);

/* Test helper: an IPv4 address 10.0.0.n:port. */
struct sst_addr sim_addr4(uint8_t n, uint16_t port);

#endif
