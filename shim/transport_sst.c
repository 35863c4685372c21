/* The "sst" transport, not yet available: the stream layer is being written in parallel.
 * It says so honestly, so auto mode falls back to TCP and strict mode refuses. */
#include <errno.h>
#include <stdio.h>

#include "conn.h"
#include "transport.h"

static bool sst_usable(const struct sockaddr *peer, socklen_t peer_len, char *why, size_t len)
{
    snprintf(why, len, "SST not available: the SST stream engine is not built into this shim yet");
    return false;
}

static int sst_start(struct shim_conn *c, struct event_base *base)
{
    return ECONNREFUSED;   /* never reached: usable() is false */
}

const struct shim_transport shim_transport_sst = {
    .name = "sst",
    .usable = sst_usable,
    .start = sst_start,
};
