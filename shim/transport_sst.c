/* The "sst" transport, not yet available: the stream layer is being written in parallel.
 * It says so honestly, so auto mode falls back to TCP and strict mode refuses.
 *
 * Test knob (not configuration): SST_SHIM_TEST_SST=nopeer makes it behave like an SST attempt
 * that finds no SST at the peer, asynchronously, so the fallback-after-EINPROGRESS path and the
 * negative cache run in integration tests before the engine exists.  It is logged as such. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "transport.h"

static int test_nopeer = -1;   /* -1: not read yet */

static bool nopeer(void)
{
    if (test_nopeer < 0) {
        const char *v = getenv("SST_SHIM_TEST_SST");
        test_nopeer = v && strcmp(v, "nopeer") == 0;
    }
    return test_nopeer == 1;
}

static bool sst_usable(const struct sockaddr *peer, socklen_t peer_len, char *why, size_t len)
{
    if (nopeer())
        return true;
    snprintf(why, len, "SST not available: the SST stream engine is not built into this shim yet");
    return false;
}

static void no_answer(evutil_socket_t fd, short what, void *arg)
{
    shim_conn_fallback(arg, "test knob SST_SHIM_TEST_SST=nopeer: peer without SST", true);
}

static int sst_start(struct shim_conn *c, struct event_base *base)
{
    struct timeval tv = { 0, 20000 };
    if (!nopeer())
        return ECONNREFUSED;   /* unreachable: usable() was false */
    SHIM_WARN("test knob SST_SHIM_TEST_SST=nopeer: simulating an SST attempt without answer");
    return event_base_once(base, -1, EV_TIMEOUT, no_answer, c, &tv) == 0 ? 0 : ENOBUFS;
}

const struct shim_transport shim_transport_sst = {
    .name = "sst",
    .usable = sst_usable,
    .start = sst_start,
};
