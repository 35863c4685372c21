/* Glue that runs a whole libsst application context (struct sst_ctx, streams included) as a
 * simulator node: the twin of simhost.h one layer up.  Datagrams go out through sim_send,
 * randomness (host keys included) comes from a seeded per-node stream, and the node's timer is
 * the context's deadline, so stream tests run reproducibly in virtual time. */
#ifndef SST_SIMCTX_H
#define SST_SIMCTX_H

#include "sim.h"
#include "sst.h"

/* Public so tests can reach the engine (c) and address directly; embed it, don't copy it
 * after simctx_node_init (the simulator and the engine hold pointers to it). */
struct simctx_node {
    struct sim *sim;
    struct sst_addr addr;
    struct sst_ctx *c;
    struct sim_rng rng;
    /* Optional: return true to drop an outgoing datagram before it enters the network, for
     * tests that lose one chosen packet. */
    bool (*drop)(void *arg, const uint8_t *pkt, size_t len);
    void *drop_arg;
    /* Optional: > 0 makes the node behave like a batch driver that wakes every `quantum`: it hands
     * the engine every datagram that arrived since with one timestamp (the start of the quantum)
     * and runs its timers at the next boundary.  Set after simctx_node_init. */
    sst_time_t quantum;
    /* The datagram buffer offered to the engine as its send slot (sst_host_io.tx_slot), as the
     * UDP driver offers its queue: packets are sealed straight into it, the path that runs in
     * production (sst_protect_seal_to / seal_gather).  1500 bytes plus the seal's tailroom. */
    uint8_t slot[1600];
    /* A frozen node (simctx_node_freeze): a stopped process (SIGSTOP) whose engine is not
     * called; inbound datagrams wait in a socket-buffer-like queue of at most frozen_cap bytes
     * (beyond: dropped, as the kernel drops on a full receive buffer). */
    bool frozen;
    size_t frozen_cap, frozen_bytes;
    uint64_t frozen_drops;
    struct simctx_frozen_pkt *fq_head, *fq_tail;
};

/* Creates the context and adds node `addr` to simulator s.  The node's random stream is
 * sim_rng_init(seed of s, rng_label, rng_id): tests keep their own label and id so their
 * seeded runs stay exactly as they were.  cfg: NULL = sst_ctx_config_default(); its identity
 * is always generated from the node's stream.  Aborts with a message on error (a running Check
 * test reports it as failed). */
void simctx_node_init(struct simctx_node *n, struct sim *s, const struct sst_addr *addr,
                      const char *rng_label, uint64_t rng_id, const struct sst_ctx_config *cfg);
/* Call around application calls made from the test body (outside callbacks): enter sets the
 * engine's clock to the simulator's, leave re-reads the node's deadline. */
void simctx_node_enter(struct simctx_node *n);
void simctx_node_leave(struct simctx_node *n);
/* Moves the node to a new address, keeping its engine (a mobile host, paper §4.3.7). */
void simctx_node_rebind(struct simctx_node *n, const struct sst_addr *addr);
/* Stops calling the engine (no timers, no receives) until simctx_node_thaw; datagrams that
 * arrive meanwhile queue up to cap bytes. */
void simctx_node_freeze(struct simctx_node *n, size_t cap);
/* Resumes the node at the simulator's current time: timers_first = run its overdue timers
 * before handing it the queued datagrams (all with the current time), else after. */
void simctx_node_thaw(struct simctx_node *n, bool timers_first);
/* Removes the node and frees the context. */
void simctx_node_free(struct simctx_node *n);

#endif
