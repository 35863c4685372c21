/* The libevent driver: one sst_host on one sst_udp, with a read event, a write event and one timer. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "driver.h"
#include "err.h"
#include "host.h"
#include "protect.h"
#include "sst.h"

_Static_assert(SST_UDP_TAILROOM >= SST_PROTECT_TAILROOM, "received datagrams must be decryptable in place");

/* recvmmsg batches handled per readable event before the loop gets control back, so timers and
 * other sockets on the same event_base are not starved by a flood (the reasoning of redis's
 * NET_MAX_WRITES_PER_EVENT).  The read event is level-triggered: what is left fires it again. */
#define MAX_BATCHES_PER_EVENT 16

struct sst_driver {
    struct event_base *base;
    struct sst_udp *udp;
    struct sst_host *host;
    struct sst_ctx *ctx;        /* set when the driver runs the stream layer (owns host) */
    struct event *ev_read;
    struct event *ev_write;     /* added only while the socket buffer is full */
    struct event *ev_timer;     /* armed at sst_host_deadline() */
    struct sst_host_io user;    /* the application's callbacks and ctx */
    sst_time_t batch_now;       /* timestamp of the recvmmsg batch being delivered */
    bool write_pending;
};

/* ---- engine -> driver trampolines: the host has one ctx (the driver); the user has theirs ---- */

static void io_send(void *ctx, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    struct sst_driver *d = ctx;
    /* Failures (queue bound, unreachable family) are counted in the endpoint's stats; to the
     * engine a dropped datagram is loss, which it recovers from. */
    (void)sst_udp_send(d->udp, to, pkt, len);
}

/* A datagram of a channel or a negotiation answer that must leave from the local address its
 * peer sent to (a multi-homed host bound to a wildcard address). */
static void io_send_from(void *ctx, const struct sst_addr *to, const struct sst_addr *from, const uint8_t *pkt,
                         size_t len)
{
    struct sst_driver *d = ctx;
    (void)sst_udp_send_from(d->udp, to, from, pkt, len);
}

static uint8_t *io_tx_slot(void *ctx, size_t len)
{
    struct sst_driver *d = ctx;
    return sst_udp_tx_slot(d->udp, len);
}

static void io_random(void *ctx, void *buf, size_t len)
{
    struct sst_driver *d = ctx;
    d->user.random(d->user.ctx, buf, len);
}

static int io_verify_peer(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct sst_driver *d = ctx;
    return d->user.verify_peer(d->user.ctx, peer, pk, we_initiated);
}

static void io_chan_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    struct sst_driver *d = ctx;
    d->user.chan_event(d->user.ctx, ch, ev, err);
}

/* ---- the engine: a bare host, or the stream layer's context around one ---- */

static sst_time_t engine_deadline(struct sst_driver *d)
{
    return d->ctx ? sst_ctx_deadline(d->ctx) : sst_host_deadline(d->host);
}

static void engine_timeout(struct sst_driver *d, sst_time_t now)
{
    if (d->ctx)
        sst_ctx_timeout(d->ctx, now);
    else
        sst_host_timeout(d->host, now);
}

static void engine_recv(struct sst_driver *d, sst_time_t now, const struct sst_addr *from,
                        const struct sst_addr *local, uint8_t *pkt, size_t len)
{
    if (d->ctx)
        sst_ctx_recv_to(d->ctx, now, from, local, pkt, len);
    else
        sst_host_recv_to(d->host, now, from, local, pkt, len);
}

/* ---- flushing and the timer ---- */

static struct timeval ns_to_timeval(sst_time_t ns)
{
    /* Round up to whole microseconds: firing early would only cost a wasted wake-up, but rounding
     * down repeatedly could spin on a deadline a few ns away. */
    sst_time_t us = (ns + 999) / 1000;
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
    return tv;
}

static void flush_and_arm(struct sst_driver *d)
{
    if (sst_udp_flush(d->udp) == SST_ERR_AGAIN) {
        if (!d->write_pending && event_add(d->ev_write, NULL) == 0)
            d->write_pending = true;
    } else if (d->write_pending) {
        event_del(d->ev_write);
        d->write_pending = false;
    }
    sst_time_t deadline = engine_deadline(d);
    if (deadline == SST_TIME_NEVER) {
        evtimer_del(d->ev_timer);
        return;
    }
    sst_time_t now = sst_clock_now();
    struct timeval tv = ns_to_timeval(deadline > now ? deadline - now : 0);
    evtimer_add(d->ev_timer, &tv);  /* re-adding a pending timer reschedules it */
}

/* Runs the engine's timers if they are due.  libevent may wake a little early (its own clock,
 * rounding); the engine is only called once its deadline has really passed. */
static void run_due_timeout(struct sst_driver *d)
{
    sst_time_t now = sst_clock_now();
    if (engine_deadline(d) <= now)
        engine_timeout(d, now);
}

/* ---- libevent callbacks ---- */

static void on_datagram(void *ctx, const struct sst_addr *from, const struct sst_addr *local, uint8_t *pkt,
                        size_t len)
{
    struct sst_driver *d = ctx;
    engine_recv(d, d->batch_now, from, local, pkt, len);
}

/* An ICMP error for a datagram we sent: port unreachable means no SST endpoint there. */
static void on_icmp_error(void *ctx, const struct sst_addr *dest, int err)
{
    struct sst_driver *d = ctx;
    if (err != ECONNREFUSED)
        return; /* host/net unreachable: the handshake's own retries and timeout decide */
    sst_host_unreachable(d->host, sst_clock_now(), dest, SST_ERR_NO_SST);
    if (d->ctx)
        sst_ctx_dispatch(d->ctx);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct sst_driver *d = arg;
    int r = 0;
    for (int i = 0; i < MAX_BATCHES_PER_EVENT; i++) {
        /* One clock read per batch: the datagrams of one recvmmsg arrived together. */
        d->batch_now = sst_clock_now();
        r = sst_udp_recv_to(d->udp, on_datagram, d);
        /* A short batch emptied the socket: one more recvmmsg would only fail with EAGAIN
         * (with a request/response load, one failed call per wake-up). */
        if (r <= 0 || (unsigned)r < sst_udp_rx_batch(d->udp))
            break;
    }
    /* Nothing to read (or a failure): a queued ICMP error may be what made the socket
     * readable, and it keeps it readable until drained.  A wake-up that found datagrams
     * leaves it to the next one, which the error itself causes. */
    if (r <= 0)
        (void)sst_udp_recv_errors(d->udp, on_icmp_error, d);
    run_due_timeout(d);
    flush_and_arm(d);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    flush_and_arm(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sst_driver *d = arg;
    run_due_timeout(d);
    flush_and_arm(d);
}

/* ---- lifecycle ---- */

/* Builds everything but the engine: the endpoint and the events. */
static struct sst_driver *driver_alloc(struct event_base *base, uint16_t max_udp_payload,
                                       const struct sst_addr *bind, const struct sst_host_io *user,
                                       const struct sst_udp_config *udp_cfg)
{
    struct sst_driver *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->base = base;
    if (user)
        d->user = *user;

    struct sst_udp_config uc;
    sst_udp_config_default(&uc);
    if (udp_cfg)
        uc = *udp_cfg;
    /* Every datagram the engine may emit must fit a send slot. */
    if (uc.max_datagram && uc.max_datagram < max_udp_payload)
        uc.max_datagram = max_udp_payload;
    if (sst_udp_open(&d->udp, bind, &uc) != 0)
        goto fail;
    int fd = sst_udp_fd(d->udp);
    d->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, on_read, d);
    d->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, d);
    d->ev_timer = evtimer_new(base, on_timer, d);
    if (!d->ev_read || !d->ev_write || !d->ev_timer)
        goto fail;
    return d;

fail:
    sst_driver_free(d);
    return NULL;
}

/* The engine's io: sending is the driver's; the rest forwards to the user's callbacks. */
static struct sst_host_io driver_io(struct sst_driver *d)
{
    struct sst_host_io io = {
        .ctx = d,
        .send = io_send,
        .send_from = io_send_from,
        .tx_slot = io_tx_slot,
        .random = d->user.random ? io_random : NULL,
        .verify_peer = d->user.verify_peer ? io_verify_peer : NULL,
        .chan_event = d->user.chan_event ? io_chan_event : NULL,
    };
    return io;
}

static struct sst_driver *driver_start(struct sst_driver *d)
{
    if (!d->host || event_add(d->ev_read, NULL) != 0) {
        sst_driver_free(d);
        return NULL;
    }
    flush_and_arm(d);
    return d;
}

SST_API struct sst_driver *sst_driver_new_udp(struct event_base *base, const struct sst_host_config *cfg,
                                              const struct sst_addr *bind, const struct sst_host_io *user,
                                              const struct sst_udp_config *udp_cfg)
{
    struct sst_driver *d = driver_alloc(base, cfg->max_udp_payload, bind, user, udp_cfg);
    if (!d)
        return NULL;
    struct sst_host_io io = driver_io(d);
    d->host = sst_host_new(cfg, &io);
    return driver_start(d);
}

SST_API struct sst_driver *sst_driver_new_ctx(struct event_base *base, const struct sst_ctx_config *cfg,
                                              const struct sst_addr *bind, const struct sst_host_io *user,
                                              const struct sst_udp_config *udp_cfg)
{
    struct sst_driver *d = driver_alloc(base, cfg->host.max_udp_payload, bind, user, udp_cfg);
    if (!d)
        return NULL;
    struct sst_host_io io = driver_io(d);
    d->ctx = sst_ctx_new(cfg, &io);
    d->host = d->ctx ? sst_ctx_host(d->ctx) : NULL;
    return driver_start(d);
}

SST_API struct sst_driver *sst_driver_new(struct event_base *base, const struct sst_host_config *cfg,
                                          const struct sst_addr *bind, const struct sst_host_io *user)
{
    return sst_driver_new_udp(base, cfg, bind, user, NULL);
}

SST_API void sst_driver_free(struct sst_driver *d)
{
    if (!d)
        return;
    if (d->ev_read)
        event_free(d->ev_read);
    if (d->ev_write)
        event_free(d->ev_write);
    if (d->ev_timer)
        event_free(d->ev_timer);
    if (d->ctx)
        sst_ctx_free(d->ctx);  /* frees the host it owns */
    else if (d->host)
        sst_host_free(d->host);
    sst_udp_close(d->udp);
    free(d);
}

SST_API struct sst_host *sst_driver_host(struct sst_driver *d) { return d->host; }

SST_API struct sst_udp *sst_driver_udp(struct sst_driver *d) { return d->udp; }

SST_API struct sst_ctx *sst_driver_ctx(struct sst_driver *d) { return d->ctx; }

SST_API void sst_driver_rearm(struct sst_driver *d) { flush_and_arm(d); }

SST_API int sst_driver_local_addr(const struct sst_driver *d, struct sst_addr *out)
{
    return sst_udp_local_addr(d->udp, out);
}

SST_API sst_time_t sst_driver_now(const struct sst_driver *d)
{
    (void)d;
    return sst_clock_now();
}
