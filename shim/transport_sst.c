/* The "sst" transport: carries a replaced connection on an SST stream (paper §3) of the
 * process's engine (engine.h), raced against kernel TCP where SST is not yet known to work, so
 * a host without SST costs no added latency.
 *
 * A connection's service is the decimal TCP port it targeted; the peer's UDP port is SST_PORT.
 * The app sees the connection established (shim_conn_up):
 *   - at once when the channel is up and this host:port accepted an SST stream before (warm):
 *     the app's first bytes ride in the stream's Init packet -- zero round trips (paper §4.3.4);
 *   - otherwise when the peer accepts the stream (CONNECTED). */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uthash.h>

#include "channel.h"
#include "conn.h"
#include "engine.h"
#include "err.h"
#include "fdtable.h"
#include "helper_client.h"
#include "host.h"
#include "io/udp.h"
#include "log.h"
#include "shim.h"
#include "spump.h"
#include "transport.h"

#define WARM_CACHE_MAX 1024
#define WARM_TTL SST_SEC(600)

/* ---- host:port pairs that accepted an SST stream: their next connects are up at once ------ */

struct warm {
    uint8_t key[19 + 2];
    sst_time_t expires;
    UT_hash_handle hh;
};
static struct warm *warm_cache;
static unsigned warm_count;
static struct event_base *warm_base;   /* the engine generation the cache belongs to */

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
    w->expires = now + WARM_TTL;
}

/* A port that refused (closed since it answered): its next connect waits for the answer. */
static void warm_del(const struct sst_addr *peer, uint16_t port)
{
    uint8_t key[21];
    struct warm *w;
    warm_key(key, peer, port);
    HASH_FIND(hh, warm_cache, key, sizeof(key), w);
    if (w) {
        HASH_DEL(warm_cache, w);
        free(w);
        warm_count--;
    }
}

/* ---- one connection ------------------------------------------------------------------------ */

struct sconn {
    struct shim_conn *c;
    struct sst_ctx *ctx;
    struct sst_stream *s;
    struct event_base *base;
    struct sst_addr peer;
    uint16_t tcp_port;
    int tcp_sock;               /* the racing kernel TCP attempt, or -1 */
    struct event *ev_tcp;
};

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

static void drop_stream(struct sconn *sc, bool reset)
{
    if (!sc->s)
        return;
    shim_engine_sync_time();
    if (reset)
        sst_stream_shutdown(sc->s, SST_SHUT_RESET);
    sst_stream_close(sc->s);
    sc->s = NULL;
    shim_engine_kick();
}

static void pump_done(void *arg, int err)
{
    struct shim_conn *c = arg;
    struct sst_addr peer;
    c->pump_fd = -1;   /* closed by the pump */
    c->spump = NULL;   /* freed by it */
    /* A connection reported up at once (warm) that the peer then refused: the port closed
     * since it last answered.  Forget it, so the next connect gets the refusal at connect()
     * (ECONNREFUSED) instead of a connection that ends at once. */
    if (err == ECONNREFUSED && warm_base != NULL &&
        sst_addr_from_sockaddr(&peer, (const struct sockaddr *)&c->peer, c->peer_len) == 0) {
        uint16_t port = peer.port;
        peer.port = shim_cfg.port;
        warm_del(&peer, port);
    }
    shim_conn_done(c, err);
}

/* Reports the connection up and hands fd and stream to the pump; sc is freed. */
static void sconn_up(struct sconn *sc)
{
    struct shim_conn *c = sc->c;
    struct sst_stream *s = sc->s;
    struct event_base *base = sc->base;
    tcp_race_stop(sc);
    c->tr_state = NULL;
    free(sc);
    /* Before the app can see the connection up: its shutdown hook must know at once. */
    atomic_store(&c->pumped_by, (int)getpid());
    shim_conn_up(c, NULL, 0);
    struct shim_spump *p = shim_spump_start(base, c->pump_fd, s, pump_done, c);
    if (!p) {
        shim_engine_sync_time();
        sst_stream_shutdown(s, SST_SHUT_RESET);
        sst_stream_close(s);
        shim_engine_kick();
        shim_fd_close_own(c->pump_fd);
        c->pump_fd = -1;
        shim_conn_done(c, ENOBUFS);
        return;
    }
    c->spump = p;
    shim_spump_abort_on_close(p, &c->linger0);
    shim_spump_on_error(p, shim_conn_reset_app);
    shim_spump_reserve(p, &c->rsv);
    SHIM_DEBUG("connection carried over SST");
}

/* SST is out before the connection was up.  The racing TCP attempt (if any) continues alone;
 * otherwise the shim falls back (auto) or refuses (strict). */
static void sconn_sst_failed(struct sconn *sc, int err)
{
    struct shim_conn *c = sc->c;
    bool lacks_sst = err == SST_ERR_TIMEOUT || err == SST_ERR_NO_SST;
    c->sst_refused = err == SST_ERR_REFUSED;   /* TCP reaching it then caches the port (§6d) */
    drop_stream(sc, false);
    if (sc->tcp_sock >= 0) {
        SHIM_DEBUG("SST attempt failed (%s); the racing TCP connect continues", sst_strerror(err));
        return;
    }
    free(sc);
    c->tr_state = NULL;
    if (err == SST_ERR_IDENTITY) {
        SHIM_ERROR("SST: %s", shim_engine_identity_error());
        shim_conn_fail(c, EACCES);
        return;
    }
    if (err == SST_ERR_REFUSED) {
        shim_conn_port_refused(c, "SST peer has no service on this port");
        return;
    }
    char why[120];
    snprintf(why, sizeof(why), "SST %s", sst_strerror(err));
    shim_conn_fallback(c, why, lacks_sst);
}

/* Until the connection is up, stream events decide the race. */
static void connect_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct sconn *sc = arg;
    if (ev & SST_EV_ERROR) {
        sconn_sst_failed(sc, sst_stream_error(s));
        return;
    }
    if (ev & SST_EV_CONNECTED) {
        warm_put(&sc->peer, sc->tcp_port, shim_engine_now());
        sconn_up(sc);
    }
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
    drop_stream(sc, true);
    struct event_base *base = sc->base;
    free(sc);
    c->tr_state = NULL;
    c->tr = &shim_transport_tcp;
    snprintf(c->why, sizeof(c->why), "race: TCP answered first");
    shim_tcp_adopt(c, base, sock);
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

static bool channel_established(struct sst_ctx *ctx, const struct sst_addr *peer)
{
    struct sst_chan *ch = sst_host_find(sst_ctx_host(ctx), peer);
    return ch && sst_chan_state(ch) == SST_CHAN_ESTABLISHED;
}

/* Starts the kernel TCP connect that races SST. */
static void tcp_race_start(struct sconn *sc)
{
    int sock;
    if (shim_tcp_dial(sc->c, &sock) != 0)
        return;   /* SST alone decides; TCP's error would come again on fallback */
    sc->tcp_sock = sock;
    sc->ev_tcp = event_new(sc->base, sock, EV_WRITE, tcp_race_cb, sc);
    if (!sc->ev_tcp || event_add(sc->ev_tcp, NULL) < 0)
        tcp_race_stop(sc);
}

/* TCP_USER_TIMEOUT (ms, 0 = off) is the stream's user timeout: bytes unacknowledged that long
 * fail it with ETIMEDOUT (sst_stream_set_user_timeout), as TCP's give up on the connection.
 * SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT is its keepalive (sst_stream_set_keepalive): a
 * silent peer is pinged and given up as TCP's keepalive does (shim_keepalive_params).  The
 * other options have no SST counterpart: remembered and answered by getsockopt only. */
static void sst_set_option(struct shim_conn *c, int level, int name, int value)
{
    bool ut = level == IPPROTO_TCP && name == TCP_USER_TIMEOUT;
    if ((!ut && !shim_opt_is_keepalive(level, name)) || value < 0)
        return;
    /* The stream: the sconn's while connecting, the pump's once up; neither once handed to
     * sstd or fallen back to TCP. */
    struct sconn *sc = c->tr_state;
    bool app_done, peer_done;
    struct sst_stream *s = sc ? sc->s : c->spump ? shim_spump_stream(c->spump, &app_done, &peer_done) : NULL;
    if (!s)
        return;
    shim_engine_sync_time();
    if (ut) {
        (void)sst_stream_set_user_timeout(s, SST_MS((sst_time_t)value));
    } else {
        int p[3];
        bool on = shim_keepalive_params(c, p);
        (void)sst_stream_set_keepalive(s, on ? SST_SEC(p[0]) : 0, SST_SEC(p[1]), (unsigned)p[2]);
    }
    shim_engine_kick();   /* the engine's next deadline may be earlier now */
}

int shim_sst_start_inproc(struct shim_conn *c, struct event_base *base)
{
    struct sst_ctx *ctx = shim_engine_get(base);
    if (!ctx) {
        shim_conn_fallback(c, shim_engine_why(), false);
        return 0;
    }
    if (warm_base != base) {   /* a new engine (first use, or a forked child): a fresh cache */
        warm_cache = NULL;
        warm_count = 0;
        warm_base = base;
    }
    struct sconn *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return ENOBUFS;
    sc->c = c;
    sc->ctx = ctx;
    sc->base = base;
    sc->tcp_sock = -1;
    if (sst_addr_from_sockaddr(&sc->peer, (const struct sockaddr *)&c->peer, c->peer_len) != 0) {
        free(sc);
        return EAFNOSUPPORT;
    }
    sc->tcp_port = sc->peer.port;
    sc->peer.port = shim_cfg.port;
    c->tr_state = sc;
    char service[8];
    snprintf(service, sizeof(service), "%u", sc->tcp_port);
    shim_engine_sync_time();
    bool established = channel_established(ctx, &sc->peer);
    bool warm = established && warm_has(&sc->peer, sc->tcp_port, shim_engine_now());
    sc->s = sst_connect(ctx, &sc->peer, service, connect_cb, sc);
    shim_engine_kick();
    if (!sc->s) {
        free(sc);
        c->tr_state = NULL;
        shim_conn_fallback(c, "SST stream could not be opened", false);
        return 0;
    }
    /* Set before connect(): copied from the socket at the swap. */
    int v;
    if (shim_conn_opt_get(c, IPPROTO_TCP, TCP_USER_TIMEOUT, &v) && v > 0)
        sst_set_option(c, IPPROTO_TCP, TCP_USER_TIMEOUT, v);
    if (shim_conn_opt_get(c, SOL_SOCKET, SO_KEEPALIVE, &v) && v)
        sst_set_option(c, SOL_SOCKET, SO_KEEPALIVE, v);
    if (warm) {
        /* Zero round trips: the app's first bytes go in the stream's Init packet.  A refusal
         * (the port stopped being served) reaches the app as an error on the connection. */
        sconn_up(sc);
        return 0;
    }
    /* Race kernel TCP unless the host is known to speak SST or the user wants proof (strict). */
    if (shim_cfg.mode == SHIM_MODE_AUTO && !established)
        tcp_race_start(sc);
    return 0;
}

/* With a helper daemon the connection goes there (shared, warm channels); else, or if it cannot
 * be reached, the process's own engine carries it. */
static int sst_start(struct shim_conn *c, struct event_base *base)
{
    const char *path = shim_helper_path();
    if (path && shim_helper_start(c, base, path))
        return 0;
    return shim_sst_start_inproc(c, base);
}

const struct shim_transport shim_transport_sst = {
    .name = "sst",
    .usable = sst_usable,
    .start = sst_start,
    .set_option = sst_set_option,
};
