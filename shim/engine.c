/* The shim's SST engine (engine.h): built lazily on the event thread, rebuilt in a forked child. */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "channel.h"
#include "engine.h"
#include "err.h"
#include "host.h"
#include "io/driver.h"
#include "io/keystore.h"
#include "io/udp.h"
#include "fdtable.h"
#include "log.h"
#include "shim.h"

/* How long an SST handshake may take before the host is given up on (the race with TCP
 * usually decides much sooner; an ICMP port unreachable ends it at once). */
#define SHIM_SST_HANDSHAKE_TIMEOUT SST_SEC(3)

static struct {
    struct event_base *base;    /* the event thread's base it was built on */
    struct sst_driver *drv;
    struct sst_ctx *ctx;
    struct sst_keystore *ks;
    bool fixed_port;            /* bound to [::]:SST_PORT for the server side (SST_LISTEN) */
    bool port_busy;             /* the last try for SST_PORT found it taken (EADDRINUSE) */
    bool busy_warned;           /* ... and said so once: tries that follow are quiet */
    bool failed;
    char why[120];
    struct event *flush_ev;     /* shim_engine_kick's deferred flush, one per loop iteration */
} eng;

/* A channel that died before it ever came up means the host does not speak SST (or is
 * unreachable): remember it for every port, so later connects go straight to kernel TCP. */
static void on_chan_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    (void)ctx;
    if (ev != SST_CHAN_EV_DOWN || (err != SST_ERR_TIMEOUT && err != SST_ERR_NO_SST))
        return;
    struct sst_chan_stats st;
    sst_chan_get_stats(ch, &st);
    if (st.established_at != 0)
        return;
    struct sockaddr_storage ss;
    socklen_t len;
    if (sst_addr_to_sockaddr(sst_chan_peer(ch), 0, &ss, &len) != 0)
        return;
    ((struct sockaddr_in *)&ss)->sin_port = 0;   /* same offset in sockaddr_in6 */
    shim_nosst_put((const struct sockaddr *)&ss, len);
    char a[SST_ADDR_STRLEN];
    SHIM_INFO("no SST at %s (%s): cached, later connects use TCP",
              sst_addr_str(sst_chan_peer(ch), a, sizeof(a)), sst_strerror(err));
}

/* The engine cannot run in this process: every connection falls back (auto) or is refused. */
static void engine_fail(const char *what, const char *detail)
{
    eng.failed = true;
    snprintf(eng.why, sizeof(eng.why), "%s", what);
    SHIM_WARN("%s: %s", what, detail);
}

/* Opens the UDP endpoint on port (0: ephemeral) and the engine over it.  False, with errno,
 * when neither [::]:port nor 0.0.0.0:port can be bound. */
static bool engine_bind(struct event_base *base, const struct sst_ctx_config *cfg,
                        const struct sst_host_io *io, uint16_t port)
{
    /* The UDP socket is created through our own socket() hook: make it a hidden engine fd. */
    struct sst_addr any;
    shim_fd_room_enter();   /* even if the app holds every number below its limit */
    shim_tls_guard++;
    shim_tls_hide_new = 1;
    sst_addr_parse(&any, "[::]:0", port);
    any.port = port;
    eng.drv = sst_driver_new_ctx(base, cfg, &any, io, NULL);
    if (!eng.drv) {
        sst_addr_parse(&any, "0.0.0.0:0", port);   /* no IPv6 on this host */
        any.port = port;
        eng.drv = sst_driver_new_ctx(base, cfg, &any, io, NULL);
    }
    shim_tls_hide_new = 0;
    shim_tls_guard--;
    shim_fd_room_leave();
    return eng.drv != NULL;
}

/* Builds the engine; with want_port, on the fixed SST_PORT so peers can reach our listeners,
 * else (or if that port is taken) on an ephemeral port, which serves client connections. */
static void engine_build(struct event_base *base, bool want_port)
{
    char err[SST_KEYSTORE_ERRLEN];
    if (!eng.ks)
        eng.ks = sst_keystore_open(shim_cfg.keydir[0] ? shim_cfg.keydir : NULL, err, sizeof(err));
    if (!eng.ks) {
        engine_fail("SST key store unusable", err);
        return;
    }
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    sst_host_config_default(&cfg.host);
    if (sst_keystore_identity(eng.ks, &cfg.host.identity, err, sizeof(err)) != 0) {
        engine_fail("SST host key unusable", err);
        return;
    }
    cfg.host.security = shim_cfg.security == SHIM_SEC_LIGHT ? SST_SEC_LIGHT : SST_SEC_STRONG;
    cfg.host.handshake_timeout = SHIM_SST_HANDSHAKE_TIMEOUT;
    if (shim_cfg.cc == SHIM_CC_CUBIC)
        cfg.host.cc = SST_CC_CUBIC;
    else if (shim_cfg.cc == SHIM_CC_NEWRENO)
        cfg.host.cc = SST_CC_NEWRENO;
    else if (shim_cfg.cc == SHIM_CC_BBR)
        cfg.host.cc = SST_CC_BBR;
    if (shim_cfg.liveness_set) {
        /* SST_LIVENESS=N: dormant connections probe their peer every N s, and channels close
         * after at most N s of silence (so the probe starts that soon): a peer process that
         * died is noticed within about 2N + 30 s (docs/shim.md §9, protocol-streams.md §2c). */
        cfg.liveness_probe = SST_SEC(shim_cfg.liveness);
        if (shim_cfg.liveness > 0 && cfg.host.idle_timeout > SST_SEC(shim_cfg.liveness))
            cfg.host.idle_timeout = SST_SEC(shim_cfg.liveness);
    }
    struct sst_host_io io = { .ctx = eng.ks, .verify_peer = sst_keystore_verify_cb,
                              .chan_event = on_chan_event };

    if (want_port) {
        eng.fixed_port = engine_bind(base, &cfg, &io, shim_cfg.port);
        eng.port_busy = !eng.fixed_port && errno == EADDRINUSE;
        if (!eng.fixed_port && !(eng.port_busy && eng.busy_warned))
            SHIM_WARN("SST_LISTEN: cannot bind UDP port %u (%s): SST peers cannot reach this "
                      "process's listeners%s", shim_cfg.port, strerror(errno),
                      eng.port_busy ? " until it is free (tried again for a few seconds)" : "");
        eng.busy_warned |= eng.port_busy;
    }
    if (!eng.drv)
        (void)engine_bind(base, &cfg, &io, 0);
    memset(&cfg.host.identity, 0, sizeof(cfg.host.identity));
    if (!eng.drv) {
        engine_fail("SST engine could not start", strerror(errno));
        return;
    }
    eng.ctx = sst_driver_ctx(eng.drv);
    SHIM_DEBUG("SST engine started (%s security, %s congestion control, UDP port %s)",
               shim_cfg.security == SHIM_SEC_LIGHT ? "light" : "strong",
               sst_cc_algo_name(cfg.host.cc),
               eng.fixed_port ? "fixed" : "ephemeral");
}

struct sst_ctx *shim_engine_current(struct event_base *base)
{
    return eng.base == base ? eng.ctx : NULL;
}

struct sst_ctx *shim_engine_get(struct event_base *base)
{
    if (eng.base != base) {
        /* First use, or a forked child (whose event thread has a new base; the parent's UDP
         * socket was closed there by shim_fd_close_engine_fds).  The parent's copy is left
         * alone: its memory belongs to objects this process no longer drives. */
        memset(&eng, 0, sizeof(eng));
        eng.base = base;
        engine_build(base, false);
    }
    return eng.failed ? NULL : eng.ctx;
}

struct sst_ctx *shim_engine_listen_port(struct event_base *base)
{
    eng.port_busy = false;                /* set again below by a bind that finds it taken */
    if (eng.base != base) {
        memset(&eng, 0, sizeof(eng));
        eng.base = base;
        engine_build(base, true);
        return eng.fixed_port ? eng.ctx : NULL;
    }
    if (eng.failed)
        return NULL;
    if (eng.fixed_port)
        return eng.ctx;
    /* Client connections came first and the engine sits on an ephemeral port.  Without live
     * streams it is rebuilt on SST_PORT (idle channels end without notice: their peers time
     * them out); with live streams it stays, and the listeners cannot be reached. */
    struct sst_ctx_stats st;
    sst_ctx_get_stats(eng.ctx, &st);
    if (st.streams_live > 0) {
        SHIM_WARN("SST_LISTEN: the engine carries %llu stream(s) on an ephemeral UDP port; "
                  "not moved to port %u", (unsigned long long)st.streams_live, shim_cfg.port);
        return NULL;
    }
    int old_fd = sst_udp_fd(sst_driver_udp(eng.drv));
    shim_tls_guard++;
    sst_driver_free(eng.drv);
    shim_tls_guard--;
    shim_fd_set(old_fd, 0);   /* closed by the driver, behind the hooks */
    eng.drv = NULL;
    eng.ctx = NULL;
    engine_build(base, true);
    return eng.fixed_port ? eng.ctx : NULL;
}

const char *shim_engine_why(void) { return eng.why; }

bool shim_engine_port_busy(void) { return eng.port_busy; }

void shim_engine_sync_time(void) { sst_ctx_set_time(eng.ctx, sst_driver_now(eng.drv)); }

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (eng.drv)
        sst_driver_rearm(eng.drv);
}

/* The flush runs once, after the callbacks the loop is running now: every connect, write and
 * close one wake-up of the event thread brings leaves in one sendmmsg (the Inits of 64 new
 * connections: one system call, not 64; a connect/request/close loop made 3.7 sendmmsg calls
 * per connection).  Nothing waits for the flush inside the same callback.  Without the event
 * (out of memory) the flush is immediate, as before. */
void shim_engine_kick(void)
{
    if (!eng.flush_ev && eng.base)
        eng.flush_ev = event_new(eng.base, -1, 0, on_flush, NULL);
    if (eng.flush_ev)
        event_active(eng.flush_ev, EV_TIMEOUT, 0);
    else
        sst_driver_rearm(eng.drv);
}

sst_time_t shim_engine_now(void) { return sst_driver_now(eng.drv); }

const char *shim_engine_identity_error(void) { return sst_keystore_last_error(eng.ks); }

int shim_sst_errno(int err)
{
    switch (err) {
    case SST_ERR_REFUSED: return ECONNREFUSED;
    case SST_ERR_NO_SST: return ECONNREFUSED;
    case SST_ERR_RESET: return ECONNRESET;
    case SST_ERR_TIMEOUT: return ETIMEDOUT;
    case SST_ERR_IDENTITY: return EACCES;
    case SST_ERR_NOMEM: return ENOBUFS;
    default: return ECONNABORTED;
    }
}
