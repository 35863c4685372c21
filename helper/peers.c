/* Peers and their shared channels: one channel per remote host for every local user (paper §4.1),
 * warm channels kept alive with pings and re-established after failure while wanted, and the
 * capability cache fed from handshake outcomes. */
#include "sstd.h"

#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "err.h"
#include "io/keystore.h"

static void keepalive_cb(evutil_socket_t fd, short what, void *arg);
static void retry_cb(evutil_socket_t fd, short what, void *arg);

void sstd_addr_host(const struct sst_addr *a, char *buf, size_t len)
{
    struct sst_addr noport = *a;
    char tmp[SST_ADDR_STRLEN];
    noport.port = 0;
    sst_addr_str(&noport, tmp, sizeof tmp);
    /* sst_addr_str prints "ip:0" or "[ip]:0": strip the port and brackets. */
    char *colon = strrchr(tmp, ':');
    if (colon)
        *colon = '\0';
    if (tmp[0] == '[') {
        size_t n = strlen(tmp);
        if (n >= 2 && tmp[n - 1] == ']')
            tmp[n - 1] = '\0';
        snprintf(buf, len, "%s", tmp + 1);
    } else {
        snprintf(buf, len, "%s", tmp);
    }
}

int sstd_peers_init(struct sstd *d)
{
    d->peers = NULL;
    return 0;
}

static void peer_free(struct sstd_peer *p)
{
    struct sstd_waiter *w = p->waiters;
    while (w) {
        struct sstd_waiter *next = w->next;
        free(w);
        w = next;
    }
    if (p->keepalive_ev)
        event_free(p->keepalive_ev);
    if (p->retry_ev)
        event_free(p->retry_ev);
    free(p);
}

void sstd_peers_free(struct sstd *d)
{
    struct sstd_peer *p, *tmp;
    HASH_ITER(hh, d->peers, p, tmp) {
        HASH_DEL(d->peers, p);
        peer_free(p);
    }
}

struct sstd_peer *sstd_peer_find(struct sstd *d, const struct sst_addr *a)
{
    char key[SST_ADDR_STRLEN];
    struct sstd_peer *p;
    sst_addr_str(a, key, sizeof key);
    HASH_FIND_STR(d->peers, key, p);
    return p;
}

struct sstd_peer *sstd_peer_get(struct sstd *d, const struct sst_addr *a)
{
    struct sstd_peer *p = sstd_peer_find(d, a);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->d = d;
    p->addr = *a;
    sst_addr_str(a, p->key, sizeof p->key);
    p->retry_ms = SSTD_RETRY_MIN_MS;
    p->keepalive_ev = evtimer_new(d->base, keepalive_cb, p);
    p->retry_ev = evtimer_new(d->base, retry_cb, p);
    if (!p->keepalive_ev || !p->retry_ev) {
        peer_free(p);
        return NULL;
    }
    HASH_ADD_STR(d->peers, key, p);
    return p;
}

static void notify(struct sstd_peer *p, int err)
{
    struct sstd_waiter *w = p->waiters;
    p->waiters = NULL;
    while (w) {
        struct sstd_waiter *next = w->next;
        w->fn(w->arg, p, err);
        free(w);
        w = next;
    }
}

/* A warm channel pings often enough that neither side's idle timeout (60 s) can fire, and at
 * least twice per --idle period so a short idle setting is still honoured promptly. */
static struct timeval keepalive_interval(const struct sstd *d)
{
    unsigned ms = SSTD_KEEPALIVE_SEC * 1000;
    if (d->opts.idle_sec * 500 < ms)
        ms = d->opts.idle_sec * 500;
    if (ms < 200)
        ms = 200;
    return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

static void start_connect(struct sstd_peer *p)
{
    struct sstd *d = p->d;
    sst_time_t now = sstd_now(d);
    struct sst_chan *ch = sst_host_connect(sstd_host(d), now, &p->addr);
    if (!ch) {
        SSTD_WARN("connect %s: out of channels or memory", p->key);
        p->last_err = SST_ERR_NOMEM;
        notify(p, SST_ERR_NOMEM);
        return;
    }
    p->chan = ch;
    if (sst_chan_state(ch) == SST_CHAN_ESTABLISHED) {
        p->state = SSTD_PEER_UP;
        notify(p, 0);
        return;
    }
    if (p->state != SSTD_PEER_CONNECTING) {
        p->state = SSTD_PEER_CONNECTING;
        p->initiator = true;
        p->connect_started = now;
        p->handshakes++;
        SSTD_INFO("connecting to %s", p->key);
    }
    sstd_rearm(d);
}

void sstd_peer_want(struct sstd_peer *p, sst_time_t until)
{
    if (until > p->want_until)
        p->want_until = until;
    if (p->state == SSTD_PEER_IDLE && !p->d->stopping && !evtimer_pending(p->retry_ev, NULL))
        start_connect(p);
    if (p->state == SSTD_PEER_UP && !evtimer_pending(p->keepalive_ev, NULL)) {
        struct timeval tv = keepalive_interval(p->d);
        evtimer_add(p->keepalive_ev, &tv);
    }
}

int sstd_peer_wait(struct sstd_peer *p, sstd_wait_fn fn, void *arg)
{
    if (p->state == SSTD_PEER_UP) {
        fn(arg, p, 0);
        return 0;
    }
    struct sstd_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return SST_ERR_NOMEM;
    w->fn = fn;
    w->arg = arg;
    w->next = p->waiters;
    p->waiters = w;
    if (p->state == SSTD_PEER_IDLE && !p->d->stopping) {
        event_del(p->retry_ev); /* an explicit request retries now, not after the backoff */
        start_connect(p);
    }
    return 0;
}

void sstd_peer_unwait(struct sstd_peer *p, void *arg)
{
    struct sstd_waiter **pp = &p->waiters;
    while (*pp) {
        if ((*pp)->arg == arg) {
            struct sstd_waiter *w = *pp;
            *pp = w->next;
            free(w);
        } else {
            pp = &(*pp)->next;
        }
    }
}

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sstd_peer *p = arg;
    struct sstd *d = p->d;
    sst_time_t now = sstd_now(d);
    if (p->state != SSTD_PEER_UP || d->stopping)
        return;
    if (now >= p->want_until && p->streams == 0) {
        /* Unused for the whole idle period: close gracefully (the peer sees DOWN, err 0).  A
         * channel the peer opened is the peer's to close; we only stop pinging it. */
        if (p->want_until && p->initiator) {
            SSTD_INFO("%s idle for %us: closing the warm channel", p->key, d->opts.idle_sec);
            p->want_until = 0;
            sst_chan_close(p->chan, now);
            sstd_rearm(d);
        }
        return;
    }
    sst_chan_ping(p->chan, now);
    sstd_rearm(d);
    sstd_capsfile_touch(d);   /* the shim's fast hand-off trusts only a fresh file */
    struct timeval tv = keepalive_interval(d);
    evtimer_add(p->keepalive_ev, &tv);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sstd_peer *p = arg;
    if (p->state == SSTD_PEER_IDLE && !p->d->stopping &&
        (sstd_now(p->d) < p->want_until || p->waiters))
        start_connect(p);
}

static void on_up(struct sstd *d, struct sstd_peer *p, struct sst_chan *ch, sst_time_t now)
{
    struct sst_chan_stats st;
    bool ours = p->state == SSTD_PEER_CONNECTING && p->chan == ch;
    p->chan = ch;
    p->state = SSTD_PEER_UP;
    p->up_at = now;
    p->retry_ms = SSTD_RETRY_MIN_MS;
    p->last_err = 0;
    sst_chan_get_stats(ch, &st);
    p->initiator = st.initiator;
    if (ours)
        p->last_handshake_ns = now - p->connect_started;
    sstd_caps_set(d->caps, p->key, SSTD_CAP_SST, "handshake completed", now, SST_SEC(SSTD_CAPS_YES_SEC));
    sstd_capsfile_publish(d, now);
    SSTD_INFO("channel to %s up (%s, handshake %.1f ms)", p->key, st.initiator ? "initiated" : "accepted",
              ours ? sstd_ms(p->last_handshake_ns) : 0.0);
    if (now < p->want_until || p->streams) {
        struct timeval tv = keepalive_interval(d);
        evtimer_add(p->keepalive_ev, &tv);
    }
    notify(p, 0);
}

static void on_down(struct sstd *d, struct sstd_peer *p, int err, sst_time_t now)
{
    bool never_up = p->state == SSTD_PEER_CONNECTING;
    p->chan = NULL;
    p->state = SSTD_PEER_IDLE;
    p->last_err = err;
    event_del(p->keepalive_ev);
    if (never_up) {
        /* No handshake answer (timeout) or an explicit refusal: this host does not speak SST now. */
        p->failures++;
        sstd_caps_set(d->caps, p->key, SSTD_CAP_NO_SST, err ? sst_strerror(err) : "closed", now,
                      SST_SEC(SSTD_CAPS_NO_SEC));
        sstd_capsfile_publish(d, now); /* drops the host if it was listed */
        SSTD_INFO("handshake with %s failed: %s", p->key, err ? sst_strerror(err) : "closed");
        if (err == SST_ERR_IDENTITY)
            SSTD_WARN("%s", sst_keystore_last_error(d->ks));
    } else {
        SSTD_INFO("channel to %s down: %s", p->key, err ? sst_strerror(err) : "closed");
    }
    notify(p, err ? err : SST_ERR_CLOSED);
    if (!d->stopping && now < p->want_until && err) {
        /* Still wanted: re-establish with exponential backoff (bounded). */
        struct timeval tv = { .tv_sec = p->retry_ms / 1000, .tv_usec = (p->retry_ms % 1000) * 1000 };
        evtimer_add(p->retry_ev, &tv);
        p->retry_ms = SST_MIN(p->retry_ms * 2, (unsigned)SSTD_RETRY_MAX_MS);
    }
}

void sstd_peers_chan_event(struct sstd *d, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    sst_time_t now = sstd_now(d);
    struct sstd_peer *p = sstd_peer_get(d, sst_chan_peer(ch));
    if (!p)
        return;
    switch (ev) {
    case SST_CHAN_EV_UP:
        if (p->state != SSTD_PEER_UP || p->chan == ch)
            on_up(d, p, ch, now);
        break;
    case SST_CHAN_EV_STALLED:
        SSTD_INFO("channel to %s stalled", p->key);
        break;
    case SST_CHAN_EV_RESUMED:
        SSTD_INFO("channel to %s resumed", p->key);
        break;
    case SST_CHAN_EV_DOWN:
        if (p->chan == ch)
            on_down(d, p, err, now);
        break;
    }
}

unsigned sstd_peers_close_all(struct sstd *d)
{
    struct sstd_peer *p, *tmp;
    sst_time_t now = sstd_now(d);
    HASH_ITER(hh, d->peers, p, tmp) {
        p->want_until = 0;
        event_del(p->retry_ev);
        event_del(p->keepalive_ev);
        if (p->chan && sst_chan_state(p->chan) != SST_CHAN_CLOSING)
            sst_chan_close(p->chan, now);
    }
    sstd_rearm(d);
    return sstd_peers_open(d);
}

unsigned sstd_peers_open(struct sstd *d)
{
    unsigned n = 0;
    struct sstd_peer *p, *tmp;
    HASH_ITER(hh, d->peers, p, tmp) {
        if (p->chan)
            n++;
    }
    return n;
}

void sstd_peers_foreach(struct sstd *d, void (*fn)(void *arg, struct sstd_peer *p), void *arg)
{
    struct sstd_peer *p, *tmp;
    HASH_ITER(hh, d->peers, p, tmp) {
        fn(arg, p);
    }
}
