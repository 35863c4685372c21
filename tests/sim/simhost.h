/* Glue that runs a real libsst engine (struct sst_host) as a simulator node: datagrams go out
 * through sim_send, randomness comes from a seeded per-node stream, and the node's timer is the
 * host's deadline.  A test drives whole SST conversations in virtual time with it. */
#ifndef SST_SIMHOST_H
#define SST_SIMHOST_H

#include "host.h"
#include "sim.h"

struct sim_host;

/* Creates an sst_host bound to node `addr` of simulator s.
 *  cfg: NULL = sst_host_config_default().  If the identity's secret key is all zero (as with
 *       NULL), a key pair is generated from the node's seeded stream, so host keys are
 *       reproducible too.
 *  io:  the test's callbacks (ctx, verify_peer, chan_event); its send and random are ignored
 *       and replaced by the simulator's.  NULL = no callbacks.
 * Returns NULL if the address is taken or allocation fails. */
struct sim_host *sim_host_new(struct sim *s, const struct sst_addr *addr,
                              const struct sst_host_config *cfg, const struct sst_host_io *io);
/* Removes the node and frees the engine. */
void sim_host_free(struct sim_host *sh);

struct sst_host *sim_host_engine(struct sim_host *sh);
const struct sst_addr *sim_host_addr(const struct sim_host *sh);
/* The node's random stream (the one the engine draws from). */
struct sim_rng *sim_host_rng(struct sim_host *sh);
/* sst_host_connect at the simulator's current time, then re-reads the node's deadline (safe
 * from inside another node's callback). */
struct sst_chan *sim_host_connect(struct sim_host *sh, const struct sst_addr *peer);
/* Call after driving the engine directly (stream writes, closes) from outside its own
 * callbacks while the simulator runs: the node's deadline may have moved. */
void sim_host_wake(struct sim_host *sh);
/* Datagrams the engine sent that the simulator refused at once (no route, queue full, ...). */
uint64_t sim_host_send_rejects(const struct sim_host *sh);

#endif
