/* The "sst" transport: carries a replaced connection on an SST stream (paper §3) run by an
 * in-process engine on the event thread, raced against kernel TCP where SST is not yet known
 * to work, so a host without SST costs no added latency.
 *
 * Per process, one engine (libsst's stream layer over one UDP socket, core/io/driver.h) serves
 * every connection: all connections to a host share one channel, one handshake, one congestion
 * controller.  A connection's service is the decimal TCP port it targeted; the peer's UDP port
 * is SST_PORT.
 *
 * When the app sees the connection as established (shim_conn_up):
 *   - the channel is up and this host:port accepted an SST stream before (warm): at once, so
 *     the app's first bytes ride in the stream's Init packet -- zero round trips (paper §4.3.4);
 *   - otherwise when the peer accepts the stream (CONNECTED).
 * Errors are mapped to errno here and nowhere else (sst_errno). */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "channel.h"
#include "conn.h"
#include "err.h"
#include "fdtable.h"
#include "host.h"
#include "io/driver.h"
#include "io/keystore.h"
#include "io/udp.h"
#include "log.h"
#include "shim.h"
#include "sst.h"
#include "transport.h"

#define PUMP_BUF 65536
/* How long a first SST attempt may take before the connection is given up on SST (the race
 * with TCP usually decides much sooner). */
#define SHIM_SST_HANDSHAKE_TIMEOUT SST_SEC(3)
#define WARM_CACHE_MAX 1024

/* ---- the engine: one per process, owned by the event thread ------------------------------ */

struct engine {
    struct event_base *base;    /* the event thread's base it was built on */
    struct sst_driver *drv;
    struct sst_ctx *ctx;
    struct sst_keystore *ks;
    bool failed;
    char why[120];
};

static struct engine eng;

/* host:port pairs that accepted an SST stream: their next connections report up at once. */
struct warm {
    uint8_t key[19 + 2];
    sst_time_t expires;
    UT_hash_handle hh;
};
static struct warm *warm_cache;
static unsigned warm_count;

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
    SHIM_INFO("no SST at %s (%s): cached, later connects use TCP", sst_addr_str(sst_chan_peer(ch), a, sizeof(a)),
              sst_strerror(err));
}

/* The engine cannot run in this process: every connection falls back (auto) or is refused. */
static void engine_fail(const char *what, const char *detail)
{
    eng.failed = true;
    snprintf(eng.why, sizeof(eng.why), "%s", what);
    SHIM_WARN("%s: %s", what, detail);
}

/* Builds the engine on first use, and again in a forked child (whose event thread has a new
 * base; the parent's UDP socket was closed there by shim_fd_close_engine_fds). */
static struct engine *engine_get(struct event_base *base)
{
    if (eng.base == base)
        return eng.failed ? NULL : &eng;
    memset(&eng, 0, sizeof(eng));
    warm_cache = NULL;   /* a forked child's copy: leaked, never freed twice */
    warm_count = 0;
    eng.base = base;

    char err[SST_KEYSTORE_ERRLEN];
    eng.ks = sst_keystore_open(shim_cfg.keydir[0] ? shim_cfg.keydir : NULL, err, sizeof(err));
    if (!eng.ks) {
        engine_fail("SST key store unusable", err);
        return NULL;
    }
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    sst_host_config_default(&cfg.host);
    if (sst_keystore_identity(eng.ks, &cfg.host.identity, err, sizeof(err)) != 0) {
        engine_fail("SST host key unusable", err);
        return NULL;
    }
    cfg.host.security = shim_cfg.security == SHIM_SEC_LIGHT ? SST_SEC_LIGHT : SST_SEC_STRONG;
    cfg.host.handshake_timeout = SHIM_SST_HANDSHAKE_TIMEOUT;
    struct sst_host_io io = { .ctx = eng.ks, .verify_peer = sst_keystore_verify_cb,
                              .chan_event = on_chan_event };

    /* The UDP socket is created through our own socket() hook: make it a hidden engine fd. */
    struct sst_addr any;
    shim_tls_guard++;
    shim_tls_hide_new = 1;
    sst_addr_parse(&any, "[::]:0", 0);
    eng.drv = sst_driver_new_ctx(base, &cfg, &any, &io, NULL);
    if (!eng.drv) {
        sst_addr_parse(&any, "0.0.0.0:0", 0);   /* no IPv6 on this host */
        eng.drv = sst_driver_new_ctx(base, &cfg, &any, &io, NULL);
    }
    shim_tls_hide_new = 0;
    shim_tls_guard--;
    memset(&cfg.host.identity, 0, sizeof(cfg.host.identity));
    if (!eng.drv) {
        engine_fail("SST engine could not start", strerror(errno));
        return NULL;
    }
    eng.ctx = sst_driver_ctx(eng.drv);
    SHIM_DEBUG("SST engine started (%s security)", shim_cfg.security == SHIM_SEC_LIGHT ? "light" : "strong");
    return &eng;
}

/* ---- addresses and the warm cache --------------------------------------------------------- */

/* The SST endpoint for a TCP destination: same host, UDP port SST_PORT; the TCP port becomes the
 * stream's service. */
static bool to_sst_addr(const struct sockaddr *sa, socklen_t len, uint16_t port, struct sst_addr *out,
                        uint16_t *tcp_port)
{
    if (sst_addr_from_sockaddr(out, sa, len) != 0)
        return false;
    *tcp_port = out->port;
    out->port = port;
    return true;
}

static void warm_key(uint8_t key[21], const struct sst_addr *peer, uint16_t port)
{
    sst_addr_encode(peer, key);
    key[19] = (uint8_t)(port >> 8);
    key[20] = (uint8_t)port;
}

static bool warm_has(const struct sst_addr *peer, uint16_t port, sst_time_t now)
{
    uint8_t key[21];
    struct warm *w;
    warm_key(key, peer, port);
    HASH_FIND(hh, warm_cache, key, sizeof(key), w);
    return w && w->expires > now;
}

static void warm_put(const struct sst_addr *peer, uint16_t port, sst_time_t now)
{
    uint8_t key[21];
    struct warm *w;
    warm_key(key, peer, port);
    HASH_FIND(hh, warm_cache, key, sizeof(key), w);
    if (!w) {
        if (warm_count >= WARM_CACHE_MAX)
            return;
        w = calloc(1, sizeof(*w));
        if (!w)
            return;
        memcpy(w->key, key, sizeof(key));
        HASH_ADD(hh, warm_cache, key, sizeof(w->key), w);
        warm_count++;
    }
    w->expires = now + SST_SEC(600);
}

/* The one place SST errors become errno. */
static int sst_errno(int err)
{
    switch (err) {
    case SST_ERR_REFUSED: return ECONNREFUSED;
    case SST_ERR_RESET: return ECONNRESET;
    case SST_ERR_TIMEOUT: return ETIMEDOUT;
    case SST_ERR_IDENTITY: return EACCES;
    case SST_ERR_NOMEM: return ENOBUFS;
    default: return ECONNABORTED;
    }
}

/* ---- one connection ------------------------------------------------------------------------ */

struct sconn {
    struct shim_conn *c;
    struct sst_stream *s;
    struct sst_addr peer;
    uint16_t tcp_port;
    bool up, app_eof, net_eof, racing_done;
    int tcp_sock;               /* the racing kernel TCP attempt, or -1 */
    struct event *ev_tcp;
    struct event *ev_app_rd, *ev_app_wr;
    size_t to_net_off, to_net_len;   /* app bytes the stream has not taken yet */
    size_t to_app_off, to_app_len;   /* stream bytes the app end has not taken yet */
    uint8_t to_net[PUMP_BUF];
    uint8_t to_app[PUMP_BUF];
};

static void engine_kick(void)
{
    sst_driver_rearm(eng.drv);
}

static void now_to_engine(void)
{
    sst_ctx_set_time(eng.ctx, sst_driver_now(eng.drv));
}

static void tcp_race_stop(struct sconn *sc)
{
    if (sc->ev_tcp) {
        event_free(sc->ev_tcp);
        sc->ev_tcp = NULL;
    }
    if (sc->tcp_sock >= 0) {
        shim_fd_close_own(sc->tcp_sock);
        sc->tcp_sock = -1;
    }
}

/* Ends the connection after it was up: everything we own is closed, then the shim is told.
 * err (for SO_ERROR) or reset aborts the stream toward the peer instead of closing it. */
static void sconn_end(struct sconn *sc, int err, bool reset)
{
    struct shim_conn *c = sc->c;
    if (sc->ev_app_rd)
        event_free(sc->ev_app_rd);
    if (sc->ev_app_wr)
        event_free(sc->ev_app_wr);
    tcp_race_stop(sc);
    if (sc->s) {
        now_to_engine();
        if (err || reset)
            sst_stream_shutdown(sc->s, SST_SHUT_RESET);
        sst_stream_close(sc->s);
        engine_kick();
    }
    if (c->pump_fd >= 0)
        shim_fd_close_own(c->pump_fd);
    free(sc);
    shim_conn_done(c, err);
}

static void sconn_finish(struct sconn *sc, int err) { sconn_end(sc, err, false); }

/* Before up: SST is out.  The racing TCP attempt (if any) continues alone; otherwise the shim
 * falls back (auto) or refuses (strict). */
static void sconn_sst_failed(struct sconn *sc, int err)
{
    struct shim_conn *c = sc->c;
    bool lacks_sst = err == SST_ERR_TIMEOUT || err == SST_ERR_NO_SST;
    if (sc->s) {
        sst_stream_close(sc->s);
        sc->s = NULL;
        engine_kick();
    }
    if (sc->tcp_sock >= 0) {
        if (lacks_sst)
            shim_nosst_put((const struct sockaddr *)&c->peer, c->peer_len);
        SHIM_DEBUG("SST attempt failed (%s); the racing TCP connect continues", sst_strerror(err));
        return;
    }
    free(sc);
    c->tr_state = NULL;
    if (err == SST_ERR_IDENTITY) {
        SHIM_ERROR("SST: %s", sst_keystore_last_error(eng.ks));
        shim_conn_fail(c, EACCES);
        return;
    }
    char why[120];
    snprintf(why, sizeof(why), "SST %s", err == SST_ERR_REFUSED ? "peer has no service on this port"
                                                                : sst_strerror(err));
    shim_conn_fallback(c, why, lacks_sst);
}

static void app_rd_cb(evutil_socket_t fd, short what, void *arg);
static void app_wr_cb(evutil_socket_t fd, short what, void *arg);
static void pump_to_app(struct sconn *sc);

/* Reports the connection up and starts pumping.  False if that failed (sc is gone). */
static bool sconn_up(struct sconn *sc)
{
    struct shim_conn *c = sc->c;
    sc->up = true;
    tcp_race_stop(sc);
    shim_conn_up(c, NULL, 0);
    sc->ev_app_rd = event_new(eng.base, c->pump_fd, EV_READ | EV_PERSIST, app_rd_cb, sc);
    sc->ev_app_wr = event_new(eng.base, c->pump_fd, EV_WRITE, app_wr_cb, sc);
    if (!sc->ev_app_rd || !sc->ev_app_wr || event_add(sc->ev_app_rd, NULL) < 0) {
        sconn_finish(sc, ENOBUFS);
        return false;
    }
    SHIM_DEBUG("connection carried over SST to port %u", sc->tcp_port);
    return true;
}

static bool sconn_done_both_ways(const struct sconn *sc)
{
    return sc->app_eof && sc->net_eof && sc->to_app_len == 0 && sc->to_net_len == 0;
}

/* App -> stream: what the stream's send buffer takes; the rest waits for WRITABLE. */
static void pump_to_net(struct sconn *sc)
{
    now_to_engine();
    while (sc->to_net_len > 0) {
        sst_ssize_t w = sst_stream_write(sc->s, sc->to_net + sc->to_net_off, sc->to_net_len);
        if (w == SST_ERR_AGAIN)
            break;
        if (w < 0) {
            sconn_finish(sc, sst_errno((int)w));
            return;
        }
        sc->to_net_off += (size_t)w;
        sc->to_net_len -= (size_t)w;
    }
    engine_kick();
    if (sc->to_net_len == 0 && !sc->app_eof)
        event_add(sc->ev_app_rd, NULL);
    else
        event_del(sc->ev_app_rd);
}

static void app_rd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sconn *sc = arg;
    ssize_t n = recv(fd, sc->to_net, sizeof(sc->to_net), MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        sconn_finish(sc, errno);
        return;
    }
    if (n == 0) {
        /* The app shut down its write side (or closed): the stream's write side closes after
         * the bytes already handed to it, like a TCP FIN. */
        sc->app_eof = true;
        event_del(sc->ev_app_rd);
        now_to_engine();
        sst_stream_shutdown(sc->s, SST_SHUT_WRITE);
        engine_kick();
        if (sconn_done_both_ways(sc))
            sconn_finish(sc, 0);
        return;
    }
    sc->to_net_off = 0;
    sc->to_net_len = (size_t)n;
    pump_to_net(sc);
}

/* Stream -> app: as much as the app end takes; the rest waits for the app end's EV_WRITE. */
static void pump_to_app(struct sconn *sc)
{
    for (;;) {
        while (sc->to_app_len > 0) {
            ssize_t n = send(sc->c->pump_fd, sc->to_app + sc->to_app_off, sc->to_app_len,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    event_add(sc->ev_app_wr, NULL);
                    return;
                }
                /* The app closed its end with data still coming: reset, as TCP does. */
                sconn_end(sc, 0, true);
                return;
            }
            sc->to_app_off += (size_t)n;
            sc->to_app_len -= (size_t)n;
        }
        if (sc->net_eof)
            break;
        now_to_engine();
        sst_ssize_t r = sst_stream_read(sc->s, sc->to_app, sizeof(sc->to_app));
        engine_kick(); /* reading opens the window: the update may go out now */
        if (r == SST_ERR_AGAIN)
            return;
        if (r < 0) {
            sconn_finish(sc, sst_errno((int)r));
            return;
        }
        if (r == 0) {
            sc->net_eof = true;
            shutdown(sc->c->pump_fd, SHUT_WR);
            break;
        }
        sc->to_app_off = 0;
        sc->to_app_len = (size_t)r;
    }
    if (sconn_done_both_ways(sc))
        sconn_finish(sc, 0);
}

static void app_wr_cb(evutil_socket_t fd, short what, void *arg)
{
    pump_to_app(arg);
}

/* Stream events arrive deferred, after the engine finished the input that caused them. */
static void stream_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct sconn *sc = arg;
    if (!sc->up) {
        if (ev & SST_EV_ERROR) {
            sconn_sst_failed(sc, sst_stream_error(s));
            return;
        }
        if (!(ev & SST_EV_CONNECTED))
            return;
        warm_put(&sc->peer, sc->tcp_port, sst_driver_now(eng.drv));
        if (!sconn_up(sc))
            return;
    } else if (ev & SST_EV_CONNECTED) {
        warm_put(&sc->peer, sc->tcp_port, sst_driver_now(eng.drv));
    }
    if ((ev & SST_EV_ERROR) && sc->to_app_len == 0) {
        int e = sst_stream_error(s);
        /* A refusal after an optimistic up (warm cache went stale) is still a refusal. */
        sconn_finish(sc, sst_errno(e));
        return;
    }
    if (ev & SST_EV_WRITABLE)
        pump_to_net(sc);
    if (ev & (SST_EV_READABLE | SST_EV_EOF | SST_EV_ERROR))
        pump_to_app(sc);
}

/* The racing kernel TCP connect finished first (or failed). */
static void tcp_race_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sconn *sc = arg;
    struct shim_conn *c = sc->c;
    event_free(sc->ev_tcp);
    sc->ev_tcp = NULL;
    int sock = sc->tcp_sock;
    sc->tcp_sock = -1;
    int err = shim_tcp_connect_result(sock);
    if (err != 0) {
        shim_fd_close_own(sock);
        if (!sc->s) {   /* SST already failed: TCP's answer is the answer */
            free(sc);
            c->tr_state = NULL;
            shim_conn_fail(c, err);
        }
        return;         /* else SST may still win */
    }
    /* TCP won: this connection goes over kernel TCP.  The SST attempt is dropped; its channel,
     * if it comes up, stays warm for the next connection to this host. */
    SHIM_INFO("TCP answered before SST: this connection uses TCP");
    if (sc->s) {
        now_to_engine();
        sst_stream_shutdown(sc->s, SST_SHUT_RESET);
        sst_stream_close(sc->s);
        sc->s = NULL;
        engine_kick();
    }
    free(sc);
    c->tr_state = NULL;
    c->tr = &shim_transport_tcp;
    snprintf(c->why, sizeof(c->why), "race: TCP answered first");
    shim_tcp_adopt(c, eng.base, sock);
}

static bool sst_usable(const struct sockaddr *peer, socklen_t peer_len, char *why, size_t len)
{
    /* Test knob, not configuration: exercises the socketpair + kernel TCP path on its own. */
    const char *knob = getenv("SST_SHIM_TEST_SST");
    if (knob && strcmp(knob, "unavailable") == 0) {
        snprintf(why, len, "SST not available: disabled by the test knob SST_SHIM_TEST_SST=unavailable");
        return false;
    }
    if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6) {
        snprintf(why, len, "not an IP destination");
        return false;
    }
    return true;
}

static bool channel_established(const struct sst_addr *peer)
{
    struct sst_chan *ch = sst_host_find(sst_ctx_host(eng.ctx), peer);
    return ch && sst_chan_state(ch) == SST_CHAN_ESTABLISHED;
}

static int sst_start(struct shim_conn *c, struct event_base *base)
{
    struct engine *e = engine_get(base);
    if (!e) {
        shim_conn_fallback(c, eng.why, false);
        return 0;
    }
    struct sconn *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return ENOBUFS;
    sc->c = c;
    sc->tcp_sock = -1;
    if (!to_sst_addr((const struct sockaddr *)&c->peer, c->peer_len, shim_cfg.port, &sc->peer, &sc->tcp_port)) {
        free(sc);
        return EAFNOSUPPORT;
    }
    c->tr_state = sc;
    char service[8];
    snprintf(service, sizeof(service), "%u", sc->tcp_port);
    now_to_engine();
    bool warm = channel_established(&sc->peer) &&
                warm_has(&sc->peer, sc->tcp_port, sst_driver_now(eng.drv));
    sc->s = sst_connect(eng.ctx, &sc->peer, service, stream_cb, sc);
    engine_kick();
    if (!sc->s) {
        free(sc);
        c->tr_state = NULL;
        shim_conn_fallback(c, "SST stream could not be opened", false);
        return 0;
    }
    if (warm) {
        /* Zero round trips: the app's first bytes go in the stream's Init packet. */
        (void)sconn_up(sc);
        return 0;
    }
    /* Race kernel TCP unless the host is known to speak SST or the user wants proof (strict). */
    if (shim_cfg.mode == SHIM_MODE_AUTO && !channel_established(&sc->peer)) {
        int sock;
        if (shim_tcp_dial(c, &sock) == 0) {
            sc->tcp_sock = sock;
            sc->ev_tcp = event_new(base, sock, EV_WRITE, tcp_race_cb, sc);
            if (!sc->ev_tcp || event_add(sc->ev_tcp, NULL) < 0)
                tcp_race_stop(sc);
        }
    }
    return 0;
}

const struct shim_transport shim_transport_sst = {
    .name = "sst",
    .usable = sst_usable,
    .start = sst_start,
};
