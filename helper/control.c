/* The control socket: a Unix stream socket where sstctl and shimmed processes send one request
 * line at a time and get one JSON line back (docs/helper.md, "Control protocol").  Access is
 * checked with SO_PEERCRED: the daemon's own uid, root, and --allow-uid. */
#define _GNU_SOURCE
#include "sstd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "err.h"
#include "pump.h"
#include "io/keystore.h"

#define PING_MAX 20
#define PING_POLL_US 500          /* how often a pending ping checks for its ack */
#define PING_TIMEOUT_SEC 5
#define ACCEPT_PAUSE_MS 100       /* out of descriptors: how long accepting rests */

enum client_op { OP_NONE = 0, OP_WARM, OP_PING, OP_CONNECT };

struct sstd_client {
    struct sstd *d;
    int fd;
    uid_t uid;
    pid_t pid;
    struct event *rev, *wev;
    struct evbuffer *in, *out;
    int passed_fd;                /* received with SCM_RIGHTS, -1 if none */
    bool fd_dropped;              /* a descriptor was passed but the kernel could not install it
                                     (MSG_CTRUNC: we are at RLIMIT_NOFILE) */
    enum client_op op;            /* the request in progress; later lines wait */
    struct sstd_peer *peer;
    bool close_after_write;
    bool connect_reused;          /* CONNECT found the channel already up */
    bool events;                  /* EVENTS: the process's event connection (resets go here) */
    struct sstd_reg *reg;         /* LISTEN: the port registered for the connection's life */
    /* PING */
    struct event *ping_ev;
    unsigned ping_count, ping_done;
    sst_time_t ping_sent, ping_deadline;
    uint64_t ping_seq;            /* the pending probe's packet (0: not sent) */
    sst_time_t ping_rtt[PING_MAX];
    sst_time_t ping_handshake;    /* handshake time if PING had to open the channel, else 0 */
    struct sstd_client *next;
};

static void client_process(struct sstd_client *c);

static void client_free(struct sstd_client *c)
{
    struct sstd *d = c->d;
    for (struct sstd_client **pp = &d->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->peer)
        sstd_peer_unwait(c->peer, c);
    sstd_pump_cancel_answer(d, c);
    if (c->reg)
        sstd_reg_close(c->reg);
    if (c->ping_ev)
        event_free(c->ping_ev);
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    if (c->passed_fd >= 0)
        sstd_handoff_close(c->passed_fd);
    close(c->fd);
    free(c);
}

/* Writes what the kernel takes now; the rest waits for EV_WRITE. */
static void client_flush(struct sstd_client *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_add(c->wev, NULL);
            return;
        }
        if (n <= 0) {
            client_free(c);
            return;
        }
    }
    if (c->close_after_write)
        client_free(c);
}

void sstd_client_reply(struct sstd_client *c, struct evbuffer *json)
{
    evbuffer_add_buffer(c->out, json);
    evbuffer_add(c->out, "\n", 1);
    c->op = OP_NONE;
    c->peer = NULL;
    /* The next queued request may be answered synchronously; flush once at the end. */
    client_process(c);
}

/* {"ok":true}: a request done with nothing to tell (PEERED, MARK). */
static void reply_ok(struct sstd_client *c)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"ok\":true}");
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

void sstd_client_send(struct sstd_client *c, const char *line)
{
    evbuffer_add(c->out, line, strlen(line));
    event_add(c->wev, NULL); /* flushed from the loop */
}

void sstd_client_reply_error(struct sstd_client *c, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        client_free(c);
        return;
    }
    evbuffer_add_printf(b, "{\"ok\":false,\"error\":\"%s\",\"message\":", code);
    sstd_json_str(b, msg);
    evbuffer_add(b, "}", 1);
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

/* Parses HOST ("1.2.3.4", "1.2.3.4:8661", "::1", "[::1]:8661"); the port defaults to ours. */
static int parse_peer(struct sstd_client *c, const char *text, struct sst_addr *out)
{
    uint16_t defport = c->d->opts.port ? c->d->opts.port : SSTD_DEFAULT_PORT;
    if (!text || sst_addr_parse(out, text, defport) < 0) {
        sstd_client_reply_error(c, "bad-host", "'%s' is not a numeric IPv4/IPv6 address[:port]", text ? text : "");
        return -1;
    }
    return 0;
}

/* ---- WARM ------------------------------------------------------------------------------ */

/* ---- PING ------------------------------------------------------------------------------
 * Each probe is one SST ping (sst_chan_ping, answered by the peer with an immediate ack).  Its RTT
 * is the time until the peer has acknowledged the ping's packet (sst_chan_acked_through), polled
 * every 0.5 ms, so any other packet arriving meanwhile (a late ack of the handshake's packets,
 * stream traffic) cannot end it early.  The reply also carries the channel's smoothed estimate
 * (srtt), which the same acks update. */

static void ping_send(struct sstd_client *c)
{
    sst_time_t now = sstd_now(c->d);
    c->ping_sent = now;
    c->ping_deadline = now + SST_SEC(PING_TIMEOUT_SEC);
    c->ping_seq = sst_chan_ping(c->peer->chan, now);
    sstd_rearm(c->d);
    struct timeval tv = { 0, PING_POLL_US };
    evtimer_add(c->ping_ev, &tv);
}

static void ping_reply(struct sstd_client *c)
{
    struct sst_chan_stats st;
    struct sstd_peer *p = c->peer;
    sst_time_t min = SST_TIME_NEVER, sum = 0;
    sst_chan_get_stats(p->chan, &st);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"ok\":true,\"peer\":");
    sstd_json_str(b, p->key);
    if (c->op == OP_WARM) {
        /* WARM answers once the channel is up and one ping measured its round trip. */
        evbuffer_add_printf(b, ",\"state\":\"up\",\"rtt_ms\":%.3f,\"srtt_ms\":%.3f,\"handshake_ms\":%.3f,"
                            "\"warm_s\":%u}",
                            sstd_ms(c->ping_rtt[0]), sstd_ms(st.srtt), sstd_ms(c->ping_handshake),
                            c->d->opts.idle_sec);
        sstd_client_reply(c, b);
        evbuffer_free(b);
        return;
    }
    evbuffer_add_printf(b, ",\"rtt_ms\":[");
    for (unsigned i = 0; i < c->ping_done; i++) {
        evbuffer_add_printf(b, "%s%.3f", i ? "," : "", sstd_ms(c->ping_rtt[i]));
        min = SST_MIN(min, c->ping_rtt[i]);
        sum += c->ping_rtt[i];
    }
    evbuffer_add_printf(b, "],\"min_ms\":%.3f,\"avg_ms\":%.3f,\"srtt_ms\":%.3f,\"handshake_ms\":%.3f}",
                        sstd_ms(min), sstd_ms(sum / c->ping_done), sstd_ms(st.srtt), sstd_ms(c->ping_handshake));
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

static void ping_poll(evutil_socket_t fd, short what, void *arg)
{
    struct sstd_client *c = arg;
    struct sstd_peer *p = c->peer;
    sst_time_t now = sstd_now(c->d);
    if (!p || !p->chan || p->state != SSTD_PEER_UP) {
        sstd_client_reply_error(c, "down", "channel to %s went down during ping", p ? p->key : "?");
        return;
    }
    if (sst_chan_acked_through(p->chan, c->ping_seq)) {
        c->ping_rtt[c->ping_done++] = now - c->ping_sent;
        if (c->ping_done == c->ping_count) {
            ping_reply(c);
            return;
        }
        ping_send(c);
        return;
    }
    if (now >= c->ping_deadline) {
        sstd_client_reply_error(c, "timeout", "no answer from %s within %d s", p->key, PING_TIMEOUT_SEC);
        return;
    }
    struct timeval tv = { 0, PING_POLL_US };
    evtimer_add(c->ping_ev, &tv);
}

static void ping_up(void *arg, struct sstd_peer *p, int err)
{
    struct sstd_client *c = arg;
    if (err) {
        sstd_client_reply_error(c, err == SST_ERR_TIMEOUT  ? "timeout"
                                   : err == SST_ERR_NO_SST ? "no-sst"
                                                           : "failed",
                                "%s: %s", p->key,
                                sst_strerror(err));
        return;
    }
    if (c->ping_handshake == SST_TIME_NEVER)
        c->ping_handshake = p->last_handshake_ns;
    else
        c->ping_handshake = 0;
    ping_send(c);
}

/* WARM HOST opens (or reuses) the channel, keeps it warm for --idle seconds, and answers after
 * one ping, so the reply and a STATUS right after it carry a measured RTT. */
static void do_ping(struct sstd_client *c, const char *host, const char *count, enum client_op op)
{
    struct sst_addr a;
    if (parse_peer(c, host, &a) < 0)
        return;
    c->ping_count = 3;
    if (count) {
        long n;
        if (!sstd_request_long(count, 1, PING_MAX, &n)) {
            sstd_client_reply_error(c, "bad-count", "count must be 1..%d", PING_MAX);
            return;
        }
        c->ping_count = (unsigned)n;
    }
    struct sstd_peer *p = sstd_peer_get(c->d, &a);
    if (!p || (!c->ping_ev && !(c->ping_ev = evtimer_new(c->d->base, ping_poll, c)))) {
        sstd_client_reply_error(c, "nomem", "out of memory");
        return;
    }
    c->op = op;
    c->peer = p;
    c->ping_done = 0;
    c->ping_handshake = p->state == SSTD_PEER_UP ? 0 : SST_TIME_NEVER;
    /* A ping is a use: it keeps (or makes) the channel warm for the idle period. */
    sstd_peer_want(p, sstd_now(c->d) + SST_SEC(c->d->opts.idle_sec));
    if (sstd_peer_wait(p, ping_up, c) < 0)
        sstd_client_reply_error(c, "nomem", "out of memory");
}

/* ---- CAPS, FORGET ------------------------------------------------------------------------ */

/* CAPS HOST [PORT]: with PORT, also whether a hand-off to that port was answered lately
 * ("port":"ok"), i.e. whether a connection to it may be reported up before the answer. */
static void do_caps(struct sstd_client *c, const char *host, const char *port)
{
    struct sst_addr a;
    char name[SST_ADDR_STRLEN];
    sst_time_t expires, now = sstd_now(c->d);
    const char *reason;
    if (parse_peer(c, host, &a) < 0)
        return;
    sst_addr_str(&a, name, sizeof name);
    enum sstd_cap cap = sstd_caps_get(c->d->caps, name, now, &expires, &reason);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"ok\":true,\"host\":");
    sstd_json_str(b, name);
    evbuffer_add_printf(b, ",\"sst\":\"%s\",\"reason\":", sstd_cap_name(cap));
    sstd_json_str(b, reason);
    evbuffer_add_printf(b, ",\"expires_in_s\":%.3f", cap ? (double)(expires - now) / 1e9 : 0.0);
    long pn;
    if (sstd_request_long(port, 1, 65535, &pn)) {
        char dest[SST_ADDR_STRLEN + 8];
        snprintf(dest, sizeof dest, "%s/%ld", name, pn);
        enum sstd_cap pcap = sstd_caps_get(c->d->caps, dest, now, &expires, NULL);
        bool ok = cap == SSTD_CAP_SST && pcap == SSTD_CAP_SST;
        bool tcp = pcap == SSTD_CAP_NO_SST;
        evbuffer_add_printf(b, ",\"port\":%ld,\"port_answered\":%s,\"port_tcp_only\":%s,\"port_expires_in_s\":%.3f",
                            pn, ok ? "true" : "false", tcp ? "true" : "false",
                            ok || tcp ? (double)(expires - now) / 1e9 : 0.0);
    }
    evbuffer_add(b, "}", 1);
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

/* TCPONLY HOST PORT SECONDS: a shim in auto mode saw PORT refused over SST and then reached by
 * its kernel TCP fallback; other processes' connections to it skip SST for SECONDS (at most
 * SSTD_PORT_TCP_MAX_SEC) unless it answers over SST first (docs/helper.md "Refused ports"). */
static void do_tcp_only(struct sstd_client *c, const char *host, const char *port, const char *secs)
{
    struct sst_addr a;
    char name[SST_ADDR_STRLEN], dest[SST_ADDR_STRLEN + 8];
    if (parse_peer(c, host, &a) < 0)
        return;
    long pn, sec;
    if (!sstd_request_long(port, 1, 65535, &pn) || !sstd_request_long(secs, 1, SSTD_PORT_TCP_MAX_SEC, &sec)) {
        sstd_client_reply_error(c, "bad-args", "TCPONLY HOST PORT SECONDS: port 1..65535, seconds 1..%d",
                                SSTD_PORT_TCP_MAX_SEC);
        return;
    }
    sst_addr_str(&a, name, sizeof name);
    snprintf(dest, sizeof dest, "%s/%ld", name, pn);
    sstd_port_tcp_only(c->d, dest, sstd_now(c->d), SST_SEC(sec));
    SSTD_INFO("%s: refused over SST, served by TCP: kernel TCP for %ld s", dest, sec);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"ok\":true,\"dest\":");
    sstd_json_str(b, dest);
    evbuffer_add_printf(b, ",\"seconds\":%ld}", sec);
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

static void do_forget(struct sstd_client *c, const char *host)
{
    char err[SST_KEYSTORE_ERRLEN];
    if (!host || !*host) {
        sstd_client_reply_error(c, "bad-host", "FORGET needs a host name or address");
        return;
    }
    int n = sst_keystore_forget(c->d->ks, host, err, sizeof err);
    if (n < 0) {
        sstd_client_reply_error(c, "keystore", "%s", err);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"ok\":true,\"host\":");
    sstd_json_str(b, host);
    evbuffer_add_printf(b, ",\"removed\":%d}", n);
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

/* ---- CONNECT (the hand-off) ----------------------------------------------------------------
 * "CONNECT ADDR PORT" with one end of a socketpair in SCM_RIGHTS: sstd opens an SST stream to
 * service "PORT" at ADDR's sstd (UDP port: ours) on the shared channel and pumps it to the fd. */

static void connect_answer(void *arg, struct sstd_pump *p, int err)
{
    struct sstd_client *c = arg;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    if (err == 0) {
        evbuffer_add_printf(b, "{\"ok\":true,\"result\":\"CONNECTED\",\"stream\":");
        sstd_json_str(b, p->dest);
        evbuffer_add_printf(b, ",\"channel\":\"%s\"}", c->connect_reused ? "reused" : "new");
    } else if (err == SST_ERR_REFUSED) {
        evbuffer_add_printf(b, "{\"ok\":false,\"result\":\"REFUSED\",\"error\":\"refused\",\"errno\":%d,"
                            "\"message\":", ECONNREFUSED);
        sstd_json_str(b, "the peer's sstd does not forward this port");
        evbuffer_add(b, "}", 1);
    } else {
        evbuffer_add_printf(b, "{\"ok\":false,\"result\":\"UNREACHABLE\",\"error\":\"unreachable\",\"errno\":%d,"
                            "\"message\":", ENETUNREACH);
        sstd_json_str(b, sst_strerror(err));
        evbuffer_add(b, "}", 1);
    }
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

static void do_connect(struct sstd_client *c, const char *addr, const char *port, char *const notify[7])
{
    struct sstd *d = c->d;
    struct sst_addr a;
    char key[SST_ADDR_STRLEN];
    long pn;
    if (!sstd_request_long(port, 1, 65535, &pn)) {
        sstd_client_reply_error(c, "bad-port", "CONNECT ADDR PORT: port must be 1..65535");
        return;
    }
    if (c->passed_fd < 0 && c->fd_dropped) {
        /* The client still holds its copy of that socket: told so at once, it carries the
         * connection itself (docs/helper.md "Out of descriptors"). */
        c->fd_dropped = false;
        SSTD_WARN("CONNECT %s %s: out of descriptors, the client's socket was dropped (raise the "
                  "daemon's RLIMIT_NOFILE); the client carries the connection itself", addr ? addr : "?", port);
        sstd_client_reply_error(c, "fd-limit", "sstd is at its descriptor limit: the socket passed with CONNECT was dropped");
        return;
    }
    if (c->passed_fd < 0) {
        sstd_client_reply_error(c, "no-fd", "CONNECT needs a socket passed with SCM_RIGHTS");
        return;
    }
    c->fd_dropped = false;
    /* HOST as in every request: a port names the peer's SST endpoint (a shim's SST_PORT), a
     * bare address means ours.  Until 2026-11-22 the port was always ours, so a shim whose
     * SST_PORT differed from --port asked CAPS about one endpoint and had its connection
     * dialled to another (test_shim_helper_port.sh). */
    if (parse_peer(c, addr, &a) < 0)
        return;
    sst_addr_str(&a, key, sizeof key);
    int fd = c->passed_fd;
    c->passed_fd = -1;
    if (sstd_caps_get(d->caps, key, sstd_now(d), NULL, NULL) == SSTD_CAP_NO_SST) {
        sstd_handoff_close(fd);
        c->op = OP_CONNECT; /* connect_answer resets it */
        connect_answer(c, NULL, SST_ERR_TIMEOUT);
        return;
    }
    struct sstd_peer *p = sstd_peer_get(d, &a);
    if (!p) {
        sstd_handoff_close(fd);
        sstd_client_reply_error(c, "nomem", "out of memory");
        return;
    }
    c->connect_reused = p->state == SSTD_PEER_UP;
    sstd_peer_want(p, sstd_now(d) + SST_SEC(d->opts.idle_sec));
    c->op = OP_CONNECT;
    struct sstd_pump *pump = sstd_pump_connect(d, p, (uint16_t)pn, fd, c->pid, connect_answer, c);
    if (!pump) {
        sstd_handoff_close(fd);
        c->op = OP_NONE;
        sstd_client_reply_error(c, "nomem", "cannot open a stream");
        return;
    }
    /* "RESET FD DEV INO" after CONNECT ADDR PORT: the app's fd number and its socket, for
     * sstd_control_pass_reset. */
    pump->notify = sstd_request_notify(notify, &pump->notify_fd, &pump->notify_dev, &pump->notify_ino);
    /* "... RESET FD DEV INO [LINGER0] [UTIMEOUT=MS] [KEEPALIVE=IDLE,INTVL,CNT]": what the app
     * set before the hand-off (SO_LINGER {1, 0}, TCP_USER_TIMEOUT, keepalive). */
    for (int i = 4; pump->notify && i < 7 && notify[i]; i++) {
        int ka[3];
        if (strcmp(notify[i], "LINGER0") == 0)
            pump->linger0 = true;
        else if (sstd_request_utimeout(notify[i]) > 0)
            sstd_pump_set_user_timeout(pump, sstd_request_utimeout(notify[i]));
        else if (sstd_request_keepalive(notify[i], ka) && ka[0] > 0)
            sstd_pump_set_keepalive(pump, ka);
    }
    sstd_kick(d);
}

/* LISTEN PORT + one of the server's listening sockets, or LISTEN PORT INODE (a keeper, which
 * holds no listening socket, names it): PORT's SST streams that TCP would connect to that
 * socket are connected to it for as long as this connection stays open; a connection
 * registers one port, with as many of its sockets as it has (listen.c, docs/helper.md
 * "LISTEN"). */
static void do_listen(struct sstd_client *c, const char *port, const char *inode)
{
    long pn;
    const char *code = "bad-port";
    char msg[200];
    struct sstd_diag ds;
    bool ok = false;
    int fd = c->passed_fd;
    c->passed_fd = -1;
    if (!sstd_request_long(port, 1, 65535, &pn)) {
        snprintf(msg, sizeof msg, "LISTEN PORT: port must be 1..65535");
    } else if (inode) {
        unsigned long long ino = 0;
        char *e = NULL;
        errno = 0;
        if (inode[0] >= '0' && inode[0] <= '9')
            ino = strtoull(inode, &e, 10);
        if (!e || *e || errno || ino == 0 || fd >= 0) {
            code = "bad-args";
            snprintf(msg, sizeof msg, "LISTEN PORT INODE: a socket's inode number, and no socket passed");
        } else {
            ok = sstd_reg_check_ino(ino, (uint16_t)pn, c->uid, &ds, &code, msg, sizeof msg);
        }
    } else if (fd < 0) {
        code = c->fd_dropped ? "fd-limit" : "no-fd";
        snprintf(msg, sizeof msg, "LISTEN needs the listening socket passed with SCM_RIGHTS");
    } else {
        ok = sstd_reg_check_fd(fd, (uint16_t)pn, &ds, &code, msg, sizeof msg);
    }
    if (ok)
        ok = sstd_reg_add(c->d, c, &c->reg, (uint16_t)pn, &ds, c->pid, &code, msg, sizeof msg);
    c->fd_dropped = false;
    /* Never kept: the server's listener must close when the server closes it. */
    if (fd >= 0)
        close(fd);
    if (!ok) {
        SSTD_INFO("LISTEN %s%s%s from pid %d refused: %s", port ? port : "", inode ? " " : "", inode ? inode : "",
                  (int)c->pid, msg);
        sstd_client_reply_error(c, code, "%s", msg);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return;
    evbuffer_add_printf(b, "{\"ok\":true,\"listen\":%u,\"udp_port\":%u}", (unsigned)pn, c->d->port);
    sstd_client_reply(c, b);
    evbuffer_free(b);
}

/* ---- EVENTS: resets reported back to the client's shim ------------------------------------
 * One connection per process (its shim's event thread) says EVENTS and then only listens.  A
 * hand-off stream that fails is not closed here: its end of the client's socketpair goes back
 * over that connection, and the shim writes one byte into it from the app's end before closing
 * it, which makes Linux fail the app's next read with ECONNRESET (a Unix socket has no RST; only
 * the holder of the app's end can do this).  One non-blocking sendmsg, nothing queued: a frozen
 * or gone client costs nothing but the fallback to a plain close (EOF). */

/* Sends one report; false if the connection does not take it now.  A partial write closes
 * the connection (half a line would garble every later one; the shim opens another). */
static bool send_reset(struct sstd_client *c, int fd, int app_fd, unsigned long long dev,
                       unsigned long long ino, int eno)
{
    char line[128];
    int len = snprintf(line, sizeof line, "RESET %d %llu %llu %d\n", app_fd, dev, ino, eno);
    struct iovec iov = { .iov_base = line, .iov_len = (size_t)len };
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof cm);
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm };
    struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof fd);
    ssize_t n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == len)
        return true;
    if (n > 0) {
        /* The shim drops a descriptor whose line never ends: an end of stream, as before. */
        SSTD_WARN("event connection of pid %d: short write; closing it", (int)c->pid);
        shutdown(fd, SHUT_RDWR);
        client_free(c);
        return true;
    }
    SSTD_DEBUG("event connection of pid %d: %s; the client reads EOF", (int)c->pid, strerror(errno));
    return false;
}

/* The event connection of pid (NULL: none).  *busy: it has a reply still queued (the answer to
 * EVENTS itself, flushed from the loop), and a report now could land inside it. */
static struct sstd_client *events_client(struct sstd *d, pid_t pid, bool *busy)
{
    for (struct sstd_client *c = d->clients; c; c = c->next) {
        if (c->events && c->pid == pid) {
            *busy = evbuffer_get_length(c->out) > 0;
            return c;
        }
    }
    return NULL;
}

/* A report whose process has no event connection yet (or one still flushing a reply).  Its shim
 * dials one (and says EVENTS) before its first CONNECT, but sstd may read that CONNECT first,
 * and a stream can fail within a round trip (a refused port).  So the report waits for it, with
 * a duplicate of our end, at most HELD_WAIT of the daemon's clock and HELD_MAX reports; then the
 * end closes (EOF).  A process without a shim's event connection (an older shim sends no RESET
 * words: nothing is held for it) costs a second of a descriptor at most. */
#define HELD_MAX 64
#define HELD_WAIT SST_SEC(1)
#define HELD_POLL_US 10000

struct sstd_held_reset {
    struct sstd_held_reset *next;
    pid_t pid;
    int fd, app_fd, eno;   /* eno: what the app's SO_ERROR and write say (RESET) */
    unsigned long long dev, ino;
    sst_time_t until;
};

/* delivered: the end went to the shim, which arms the reset; else it ends as EOF, except at
 * exit (the shim's duplicate makes sstd's death a reset). */
static void held_free(struct sstd *d, struct sstd_held_reset **pp, bool delivered, bool exiting)
{
    struct sstd_held_reset *h = *pp;
    *pp = h->next;
    if (!delivered && !exiting)
        shutdown(h->fd, SHUT_RDWR);
    close(h->fd);
    free(h);
    d->nheld--;
}

/* Delivers what can go now, drops what waited too long; polls again while any is left. */
static void held_poll(evutil_socket_t fd, short what, void *arg)
{
    struct sstd *d = arg;
    sst_time_t now = sstd_now(d);
    (void)fd, (void)what;
    for (struct sstd_held_reset **pp = &d->held; *pp;) {
        struct sstd_held_reset *h = *pp;
        bool busy = false;
        struct sstd_client *c = events_client(d, h->pid, &busy);
        if (c && !busy) {
            bool sent = send_reset(c, h->fd, h->app_fd, h->dev, h->ino, h->eno);
            held_free(d, pp, sent, false);
        } else if (now >= h->until) {
            SSTD_DEBUG("pid %d has no event connection: its client reads EOF", (int)h->pid);
            held_free(d, pp, false, false);
        } else {
            pp = &h->next;
        }
    }
    if (d->held) {
        struct timeval tv = { 0, HELD_POLL_US };
        evtimer_add(d->held_ev, &tv);
    }
}

static bool held_add(struct sstd *d, pid_t pid, int fd, int app_fd, unsigned long long dev,
                     unsigned long long ino, int eno)
{
    if (d->nheld >= HELD_MAX || (!d->held_ev && !(d->held_ev = evtimer_new(d->base, held_poll, d))))
        return false;
    struct sstd_held_reset *h = calloc(1, sizeof *h);
    if (!h)
        return false;
    h->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (h->fd < 0) {
        free(h);
        return false;
    }
    h->pid = pid;
    h->app_fd = app_fd;
    h->dev = dev;
    h->ino = ino;
    h->eno = eno;
    h->until = sstd_now(d) + HELD_WAIT;
    h->next = d->held;
    d->held = h;
    d->nheld++;
    struct timeval tv = { 0, HELD_POLL_US };
    evtimer_add(d->held_ev, &tv);
    return true;
}

bool sstd_control_pass_reset(struct sstd *d, pid_t pid, int fd, int app_fd, unsigned long long dev,
                             unsigned long long ino, int eno)
{
    bool busy = false;
    struct sstd_client *c = events_client(d, pid, &busy);
    if (!c || busy)
        return held_add(d, pid, fd, app_fd, dev, ino, eno);   /* delivered when it can go */
    return send_reset(c, fd, app_fd, dev, ino, eno);
}

/* ---- dispatch ------------------------------------------------------------------------- */

static void dispatch(struct sstd_client *c, char *line)
{
    char *w[SSTD_REQ_WORDS];
    sstd_request_split(line, w);
    char *cmd = w[0], *a1 = w[1], *a2 = w[2], **more = w + 3;
    if (!cmd) {
        sstd_client_reply_error(c, "empty", "empty request");
    } else if (strcmp(cmd, "STATUS") == 0) {
        struct evbuffer *b = evbuffer_new();
        if (!b)
            return;
        sstd_status_json(c->d, b);
        sstd_client_reply(c, b);
        evbuffer_free(b);
    } else if (strcmp(cmd, "WARM") == 0) {
        do_ping(c, a1, "1", OP_WARM);
    } else if (strcmp(cmd, "PING") == 0) {
        do_ping(c, a1, a2, OP_PING);
    } else if (strcmp(cmd, "CAPS") == 0) {
        do_caps(c, a1, a2);
    } else if (strcmp(cmd, "FORGET") == 0) {
        do_forget(c, a1);
    } else if (strcmp(cmd, "TCPONLY") == 0) {
        do_tcp_only(c, a1, a2, more[0]);
    } else if (strcmp(cmd, "CONNECT") == 0) {
        do_connect(c, a1, a2, more);
    } else if (strcmp(cmd, "LISTEN") == 0) {
        do_listen(c, a1, a2);
    } else if (strcmp(cmd, "PEERED") == 0) {
        /* PEERED LOCAL: the registering shim's answer to our "PEER LOCAL REMOTE". */
        if (!c->reg || !a1)
            sstd_client_reply_error(c, "bad-args", "PEERED LOCAL: only on a LISTEN connection");
        else if (!sstd_reg_peered(c->reg, a1))
            sstd_client_reply_error(c, "unknown-stream", "no connection from %s waits", a1);
        else
            reply_ok(c);
    } else if (strcmp(cmd, "MARK") == 0) {
        /* MARK DEV INO WHAT: the app's shutdown or SO_LINGER, from its shim (docs/helper.md). */
        unsigned long long dev, ino;
        if (!sstd_request_devino(a1, a2, &dev, &ino) || !more[0]) {
            sstd_client_reply_error(c, "bad-mark", "MARK DEV INO SHUTWR|LINGER0|LINGER|UTIMEOUT=MS|KEEPALIVE=IDLE,INTVL,CNT");
        } else if (!sstd_pump_mark(c->d, dev, ino, more[0])) {
            sstd_client_reply_error(c, "unknown-stream", "no hand-off of that socket, or not SHUTWR|LINGER0|LINGER|UTIMEOUT=MS|KEEPALIVE=IDLE,INTVL,CNT");
        } else {
            reply_ok(c);
        }
    } else if (strcmp(cmd, "INFO") == 0) {
        /* INFO DEV INO: a hand-off's stream and channel numbers, for the shim's TCP_INFO. */
        unsigned long long dev, ino;
        struct evbuffer *b = evbuffer_new();
        if (!b)
            return;
        if (!sstd_request_devino(a1, a2, &dev, &ino))
            sstd_client_reply_error(c, "bad-info", "INFO DEV INO");
        else if (!sstd_pump_info(c->d, dev, ino, b))
            sstd_client_reply_error(c, "unknown-stream", "no hand-off of that socket");
        else {
            SSTD_DEBUG("INFO %llu %llu answered for pid %d", dev, ino, (int)c->pid);
            sstd_client_reply(c, b);
        }
        evbuffer_free(b);
    } else if (strcmp(cmd, "EVENTS") == 0) {
        c->events = true;
        struct evbuffer *b = evbuffer_new();
        if (!b)
            return;
        /* holds: every end of a hand-off that is not passed back is shut down before it is
         * closed, so the shim may keep a duplicate (docs/helper.md "sstd's death"). */
        evbuffer_add_printf(b, "{\"ok\":true,\"events\":true,\"pid\":%d,\"holds\":true}", (int)c->pid);
        sstd_client_reply(c, b);
        evbuffer_free(b);
    } else {
        sstd_client_reply_error(c, "unknown", "unknown request '%s' (STATUS, PING, WARM, CAPS, TCPONLY, FORGET, CONNECT, LISTEN, EVENTS, MARK, INFO)", cmd);
    }
}

/* Handles queued request lines one at a time: a request that waits (WARM, PING) holds the rest. */
static void client_process(struct sstd_client *c)
{
    while (c->op == OP_NONE) {
        size_t len;
        char *line = evbuffer_readln(c->in, &len, EVBUFFER_EOL_LF);
        if (!line) {
            if (evbuffer_get_length(c->in) > SSTD_LINE_MAX) {
                evbuffer_drain(c->in, evbuffer_get_length(c->in));
                c->close_after_write = true;
                evbuffer_add_printf(c->out, "{\"ok\":false,\"error\":\"too-long\",\"message\":\"request line over %d bytes\"}\n",
                                    SSTD_LINE_MAX);
            }
            break;
        }
        if (len > SSTD_LINE_MAX) {
            free(line);
            sstd_client_reply_error(c, "too-long", "request line over %d bytes", SSTD_LINE_MAX);
            continue;
        }
        dispatch(c, line);
        free(line);
    }
    event_add(c->wev, NULL); /* flush from the loop: no re-entrant free while replying */
}

static void client_write_cb(evutil_socket_t fd, short what, void *arg)
{
    client_flush(arg);
}

static void client_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sstd_client *c = arg;
    char buf[4096];
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * 4)];
    } cm;
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm };
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    /* Any descriptors passed along (the hand-off's socketpair end) are kept for the request.  Only
     * a successful recvmsg fills msg_control: after a failure (ECONNRESET when the client closed
     * with our answer unread) it is the stack's stale bytes, which once held another client's
     * SCM_RIGHTS header -- taking that "fd" closed a live hand-off's socket. */
    bool got_fd = false;
    for (struct cmsghdr *h = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; h; h = CMSG_NXTHDR(&msg, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        got_fd = got_fd || nfd > 0;
        for (size_t i = 0; i < nfd; i++) {
            int pfd;
            memcpy(&pfd, CMSG_DATA(h) + i * sizeof(int), sizeof pfd);
            if (c->passed_fd < 0)
                c->passed_fd = pfd;
            else
                sstd_handoff_close(pfd); /* one descriptor per request */
        }
    }
    if (n <= 0) {
        client_free(c);
        return;
    }
    /* At RLIMIT_NOFILE the kernel drops a passed descriptor it cannot install and says so with
     * MSG_CTRUNC: the CONNECT it came with is answered "fd-limit", not "no-fd". */
    if ((msg.msg_flags & MSG_CTRUNC) && !got_fd)
        c->fd_dropped = true;
    evbuffer_add(c->in, buf, (size_t)n);
    client_process(c);
}

static bool uid_allowed(const struct sstd *d, uid_t uid)
{
    if (uid == 0 || uid == geteuid())
        return true;
    for (unsigned i = 0; i < d->opts.nallow; i++)
        if (d->opts.allow_uid[i] == uid)
            return true;
    return false;
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sstd *d = arg;
    (void)fd;
    (void)what;
    event_add(d->listen_ev, NULL);
}

/* Out of descriptors (or memory): the connection stays in the backlog, so a level-triggered
 * listen event would call us again at once -- a spin at full CPU that starves every pump.
 * Stop accepting for a while instead; what closes meanwhile makes room. */
static void accept_pause(struct sstd *d, int err)
{
    if (!d->accept_resume)
        d->accept_resume = evtimer_new(d->base, accept_resume_cb, d);
    if (!d->accept_resume)
        return;
    event_del(d->listen_ev);
    struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
    evtimer_add(d->accept_resume, &tv);
    if (!d->accept_paused++)
        SSTD_WARN("control socket: cannot accept (%s): accepting again every %d ms until it can",
                  strerror(err), ACCEPT_PAUSE_MS);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct sstd *d = arg;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            accept_pause(d, errno);
        return;
    }
    if (d->accept_paused) {
        SSTD_INFO("control socket: accepting again (%u pauses)", d->accept_paused);
        d->accept_paused = 0;
    }
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
        close(fd);
        return;
    }
    struct sstd_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->d = d;
    c->fd = fd;
    c->uid = cred.uid;
    c->pid = cred.pid;
    c->passed_fd = -1;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(d->base, fd, EV_READ | EV_PERSIST, client_read_cb, c);
    c->wev = event_new(d->base, fd, EV_WRITE, client_write_cb, c);
    c->next = d->clients;
    d->clients = c;
    if (!c->in || !c->out || !c->rev || !c->wev) {
        client_free(c);
        return;
    }
    if (!uid_allowed(d, cred.uid)) {
        SSTD_WARN("control client pid %d uid %u refused: not the daemon's uid, root or --allow-uid",
                  (int)cred.pid, (unsigned)cred.uid);
        evbuffer_add_printf(c->out,
                            "{\"ok\":false,\"error\":\"permission\",\"message\":\"uid %u may not use this "
                            "sstd (runs as uid %u; see --allow-uid)\"}\n",
                            (unsigned)cred.uid, (unsigned)geteuid());
        c->close_after_write = true;
        event_add(c->wev, NULL);
        return;
    }
    SSTD_DEBUG("control client pid %d uid %u", (int)cred.pid, (unsigned)cred.uid);
    event_add(c->rev, NULL);
}

/* A socket file already there: another daemon if something answers, else a stale leftover. */
static int claim_path(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
    int e = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "another sstd is already listening on %s", path);
        return -1;
    }
    if (e == ECONNREFUSED)
        unlink(path);
    return 0;
}

int sstd_control_open(struct sstd *d)
{
    char err[512];
    const char *path = d->opts.socket_path;
    bool shared = d->opts.nallow > 0;
    if (sstd_prepare_socket_dir(path, shared || geteuid() == 0, err, sizeof err) < 0 ||
        claim_path(path, err, sizeof err) < 0) {
        SSTD_ERROR("%s", err);
        return -1;
    }
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) {
        SSTD_ERROR("socket path too long: %s", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        SSTD_ERROR("socket: %s", strerror(errno));
        return -1;
    }
    /* Create it private, then open it up as far as policy says: never a window where it is wider. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc < 0) {
        SSTD_ERROR("cannot bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* 0600: only the owner (root bypasses).  With --allow-uid other users must be able to
     * connect at all, so 0666 and SO_PEERCRED is the gate; root's socket is 0660 (group). */
    mode_t mode = shared ? 0666 : geteuid() == 0 ? 0660 : 0600;
    if (chmod(path, mode) < 0 || listen(fd, 128) < 0) {
        SSTD_ERROR("cannot set up %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    d->listen_fd = fd;
    d->listen_ev = event_new(d->base, fd, EV_READ | EV_PERSIST, accept_cb, d);
    if (!d->listen_ev || event_add(d->listen_ev, NULL) < 0) {
        SSTD_ERROR("event_new failed");
        return -1;
    }
    SSTD_INFO("control socket %s (mode %03o)", path, (unsigned)mode);
    return 0;
}

/* Stops taking control connections: the listening socket and its events go, the socket file
 * is unlinked. */
static void listener_close(struct sstd *d)
{
    if (d->accept_resume) {
        event_free(d->accept_resume);
        d->accept_resume = NULL;
    }
    if (d->listen_ev) {
        event_free(d->listen_ev);
        d->listen_ev = NULL;
    }
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        d->listen_fd = -1;
        unlink(d->opts.socket_path);
    }
}

void sstd_control_stop(struct sstd *d)
{
    for (struct sstd_client *c = d->clients, *next; c; c = next) {
        next = c->next;
        if (!c->events)
            client_free(c);
    }
    listener_close(d);
}

void sstd_control_close(struct sstd *d)
{
    while (d->held)
        held_free(d, &d->held, false, true);
    if (d->held_ev) {
        event_free(d->held_ev);
        d->held_ev = NULL;
    }
    while (d->clients)
        client_free(d->clients);
    listener_close(d);
}
