/* The shim's SST engine: one per process, run by the event thread -- libsst's stream layer over
 * one UDP socket, with the host key and known hosts from SST_KEYDIR.  Every connection to a host,
 * client or server side, shares its one channel. */
#ifndef SHIM_ENGINE_H
#define SHIM_ENGINE_H

#include <stdbool.h>

#include "sst.h"

struct event_base;

/* The engine on this event thread's base, built on first use (and again in a forked child).
 * NULL if it cannot run in this process; shim_engine_why() then says why. */
struct sst_ctx *shim_engine_get(struct event_base *base);
const char *shim_engine_why(void);
/* The engine if this process built one on `base`, else NULL (never builds one). */
struct sst_ctx *shim_engine_current(struct event_base *base);
/* The engine on the fixed UDP port SST_PORT ([::], dual-stack), for the server side: built
 * there, or rebuilt there if it runs on an ephemeral port without live streams.  Client
 * connections use the same engine.  NULL if the port cannot be had (logged). */
struct sst_ctx *shim_engine_listen_port(struct event_base *base);
/* Whether shim_engine_listen_port's last NULL was SST_PORT taken by another process (which
 * may be about to end: a server's previous run, its keeper). */
bool shim_engine_port_busy(void);
/* Call before API calls made outside the engine's own callbacks (the engine reads no clock). */
void shim_engine_sync_time(void);
/* Call after them: sends what they queued and re-arms the engine's timer, once, after the
 * event-loop callbacks that are running now (every kick of one iteration: one flush). */
void shim_engine_kick(void);
sst_time_t shim_engine_now(void);
/* The last identity refusal from the key store (for logs). */
const char *shim_engine_identity_error(void);
/* The one place SST errors become errno. */
int shim_sst_errno(int sst_err);

#endif
