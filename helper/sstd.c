/* sstd: the SST helper daemon's main program -- options, keys, the UDP engine, the control
 * socket, the event loop, and a graceful shutdown that closes every channel cleanly. */
#define _GNU_SOURCE
#include "sstd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <sodium.h>

#include "err.h"
#include "pump.h"
#include "sst.h"
#include "io/driver.h"
#include "io/keystore.h"

#define STOP_GRACE_SEC 3    /* wait this long for peers to acknowledge our Close */

sst_time_t sstd_now(struct sstd *d)
{
    return sst_driver_now(d->drv);
}

struct sst_host *sstd_host(struct sstd *d)
{
    return sst_driver_host(d->drv);
}

struct sst_ctx *sstd_ctx(struct sstd *d)
{
    return sst_driver_ctx(d->drv);
}

void sstd_rearm(struct sstd *d)
{
    sst_driver_rearm(d->drv);
}

static int verify_peer(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct sstd *d = ctx;
    return sst_keystore_verify_cb(d->ks, peer, pk, we_initiated);
}

static void chan_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    struct sstd *d = ctx;
    sstd_peers_chan_event(d, ch, ev, err);
    sstd_stop_maybe(d);
}

static void stop_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sstd *d = arg;
    unsigned pumps = 0;
    for (struct sstd_pump *p = d->pumps; p; p = p->next)
        pumps++;
    SSTD_WARN("%u channel(s) did not confirm the close and %u client(s) did not read their last bytes "
              "within %d s; exiting anyway", sstd_peers_open(d), pumps, STOP_GRACE_SEC);
    event_base_loopexit(d->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct sstd *d = arg;
    if (d->stopping) {
        event_base_loopexit(d->base, NULL); /* a second signal: do not wait any longer */
        return;
    }
    SSTD_INFO("%s: closing channels and exiting", strsignal((int)sig));
    d->stopping = true;
    sstd_control_stop(d);
    sstd_gateway_close(d);
    /* Every stream ends now, before its channel: a program learns of it at once, not when sstd
     * has exited, and reads first what sstd received for it; the channels close once no pump
     * is left (docs/helper.md "Shutdown"). */
    sstd_pumps_stop(d);
    sstd_stop_maybe(d);
    struct timeval tv = { STOP_GRACE_SEC, 0 };
    evtimer_add(d->stop_timer, &tv);
}

static int open_engine(struct sstd *d)
{
    char err[SST_KEYSTORE_ERRLEN];
    struct sst_ctx_config cfg;
    struct sst_addr bind;
    const char *bind_text = d->opts.bind[0] ? d->opts.bind : "::";

    d->ks = sst_keystore_open(d->opts.keydir[0] ? d->opts.keydir : NULL, err, sizeof err);
    if (!d->ks) {
        SSTD_ERROR("keystore: %s", err);
        return -1;
    }
    sst_ctx_config_default(&cfg);
    if (sst_keystore_identity(d->ks, &cfg.host.identity, err, sizeof err) < 0) {
        SSTD_ERROR("host key: %s", err);
        return -1;
    }
    cfg.host.handshake_timeout = SST_SEC(d->opts.handshake_timeout_sec);
    if (d->opts.migrate_set)
        cfg.migrate_timeout = SST_SEC(d->opts.migrate_sec);
    if (d->opts.liveness_set)
        cfg.liveness_probe = SST_SEC(d->opts.liveness_sec);
    if (d->opts.cc_set)
        cfg.host.cc = d->opts.cc;
    if (d->opts.security_set)
        cfg.host.security = d->opts.security;
    if (sst_addr_parse(&bind, bind_text, d->opts.port) < 0) {
        SSTD_ERROR("--bind: '%s' is not an IPv4/IPv6 address", bind_text);
        return -1;
    }
    bind.port = d->opts.port;
    struct sst_host_io io = { .ctx = d, .verify_peer = verify_peer, .chan_event = chan_event };
    /* The stream-layer driver mode: streams for the hand-off and the gateway (core/sst.h). */
    d->drv = sst_driver_new_ctx(d->base, &cfg, &bind, &io, NULL);
    sodium_memzero(&cfg.host.identity, sizeof cfg.host.identity);
    if (!d->drv) {
        SSTD_ERROR("cannot open UDP %s port %u: %s", bind_text, d->opts.port, strerror(errno));
        return -1;
    }
    struct sst_addr local;
    if (sst_driver_local_addr(d->drv, &local) == 0)
        d->port = local.port;
    return 0;
}

/* Every hand-off and gateway stream holds a descriptor here, and sstd uses no select(): take
 * the hard limit, as the soft one (often 1024) would cap the connections of every program on
 * the host (daemons commonly do this; systemd's default is 1024 soft, 524288 hard). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        SSTD_INFO("descriptor limit raised from %llu to %llu", (unsigned long long)was,
                  (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    static struct sstd daemon_state;
    struct sstd *d = &daemon_state;
    char err[1024] = "";
    int ready_fd = -1, log_fd = -1;

    sstd_stdio_open();
    int rc = sstd_options_parse(&d->opts, argc, argv, err, sizeof err);
    if (rc == 1) {
        sstd_options_usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "sstd: %s\n", err);
        return 2;
    }
    if (d->opts.log_file[0]) {
        log_fd = open(d->opts.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log_fd < 0) {
            fprintf(stderr, "sstd: cannot open log file %s: %s\n", d->opts.log_file, strerror(errno));
            return 1;
        }
    }
    sstd_log_setup(d->opts.log_level, log_fd, false);
    if (!d->opts.foreground && sstd_daemonize(&ready_fd, err, sizeof err) < 0) {
        fprintf(stderr, "sstd: %s\n", err);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    d->listen_fd = -1;
    /* Precise timers (timerfd): PING measures round trips by polling at sub-millisecond steps. */
    struct event_config *ecfg = event_config_new();
    if (ecfg) {
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        d->base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    d->caps = sstd_caps_new();
    if (!d->base || !d->caps || sstd_peers_init(d) < 0) {
        SSTD_ERROR("out of memory");
        sstd_daemon_ready(ready_fd, 1);
        return 1;
    }
    d->sig_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
    d->sig_int = evsignal_new(d->base, SIGINT, signal_cb, d);
    d->stop_timer = evtimer_new(d->base, stop_timeout_cb, d);
    if (!d->sig_term || !d->sig_int || !d->stop_timer || evsignal_add(d->sig_term, NULL) < 0 ||
        evsignal_add(d->sig_int, NULL) < 0 || open_engine(d) < 0 || sstd_gateway_open(d) < 0 || sstd_control_open(d) < 0 ||
        sstd_pidfile_write(d->opts.pid_file, err, sizeof err) < 0) {
        if (err[0])
            SSTD_ERROR("%s", err);
        sstd_daemon_ready(ready_fd, 1);
        return 1;
    }
    d->started = sstd_now(d);
    sstd_capsfile_publish(d, d->started); /* replaces what a previous daemon on this socket left */
    SSTD_INFO("sstd %d: UDP port %u, control %s", (int)getpid(), d->port, d->opts.socket_path);
    if (ready_fd >= 0) {
        sstd_daemon_ready(ready_fd, 0);
        if (log_fd < 0)
            sstd_log_setup(d->opts.log_level, -1, true); /* stderr is /dev/null now */
    }

    event_base_dispatch(d->base);

    sstd_control_close(d);
    sstd_capsfile_remove(d);
    sstd_pumps_free(d);
    sstd_gateway_close(d);
    sstd_peers_free(d);
    sst_driver_free(d->drv);
    sst_keystore_close(d->ks);
    sstd_caps_free(d->caps);
    event_free(d->sig_term);
    event_free(d->sig_int);
    event_free(d->stop_timer);
    event_base_free(d->base);
    unlink(d->opts.pid_file);
    SSTD_INFO("exited cleanly");
    if (log_fd >= 0)
        close(log_fd);
    return d->exit_code;
}
