/* Hands a connection to the helper daemon, sstd (docs/helper.md, "The hand-off"): channels then
 * live in the daemon, shared by every process and kept warm between them, so a new process's
 * first connection to a host costs no handshake.
 *
 * On the event thread, without blocking: CAPS asks whether the host is known to speak SST.  If
 * it is, the connection is up at once (the app's first bytes then ride in the stream's Init
 * packet): the shim releases the filler and CONNECT goes with the shim's end of the app's
 * socketpair (SCM_RIGHTS), which sstd pumps to an SST stream — the shim is then out of the data
 * path.  Otherwise CONNECT goes with one end of a fresh socketpair, the shim pumps the app's pair
 * to it, and the app sees the connection up when sstd answers CONNECTED (the app's end still
 * holds the filler that keeps POLLOUT back until then, so it cannot be handed over yet).  If the
 * daemon cannot be reached, or dies before answering, the in-process engine takes over: nothing
 * waits on it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "conn.h"
#include "evthread.h"
#include "fdtable.h"
#include "helper_client.h"
#include "helper_events.h"
#include "helper_hold.h"
#include "io/helper_path.h"
#include "log.h"
#include "pump.h"
#include "real.h"
#include "shim.h"
#include "transport.h"

#define REPLY_MAX 1024
#define REPLY_TIMEOUT_SEC 15   /* sstd answers within its handshake timeout (10 s) */

enum phase { PH_CAPS = 1, PH_CONNECT };

struct hconn {
    struct shim_conn *c;
    struct event_base *base;
    int ctl;                    /* control connection to sstd */
    int near;                   /* our end of the hand-off socketpair, or -1 */
    enum phase phase;
    bool up;
    /* The app's socket end went to sstd with CONNECT (the direct hand-off, or one inside
     * connect(): adopted), and the shim's duplicate of it is the hold (helper_hold.c) of the
     * app's socket dev/ino.  c stays referenced until sstd's first answer: at its descriptor
     * limit sstd never gets the end (the kernel drops it; it answers fd-limit at once), and the
     * in-process engine then carries the connection on the hold's end. */
    bool direct, adopted;
    dev_t dev;
    ino_t ino;
    struct event *ev;
    size_t len;
    char buf[REPLY_MAX];
    char host[64];              /* "ADDR" as sstd wants it */
    unsigned port;              /* TCP destination port */
};


/* HOST:SST_PORT (bracketed for IPv6), as sstd's requests name the peer's SST endpoint: sstd's
 * own --port is only its default, and the shim's SST_PORT says where the peer listens. */
static void peer_key(const char *host, char *out, size_t len)
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)shim_cfg.port);
}

static void hc_free(struct hconn *h)
{
    if (h->ev)
        event_free(h->ev);
    if (h->ctl >= 0)
        shim_fd_close_own(h->ctl);
    if (h->near >= 0)
        shim_fd_close_own(h->near);
    free(h);
}

static void pump_done(void *arg, int err)
{
    struct shim_conn *c = arg;
    c->net_fd = -1;
    shim_conn_done(c, err);
}

/* The connection is up: pump the app's end to our end of the hand-off pair. */
static void hc_up(struct hconn *h)
{
    struct shim_conn *c = h->c;
    h->up = true;
    /* Before the app can see the connection up: its shutdown hook must know at once. */
    atomic_store(&c->pumped_by, (int)getpid());
    shim_conn_up(c, NULL, 0);
    int near = h->near;
    h->near = -1;
    c->net_fd = near;
    struct shim_pump *p = shim_pump_start(h->base, c->pump_fd, near, pump_done, c);
    if (!p) {
        c->net_fd = -1;
        shim_fd_close_own(near);
        shim_fd_close_own(c->pump_fd);
        shim_conn_done(c, ENOBUFS);
        return;
    }
    /* sstd reports a stream's error on our end of the relay pair as a reset: passed on. */
    shim_pump_on_error(p, shim_conn_reset_app);
    shim_pump_reserve(p, &c->rsv);
}

/* sstd answered (or is gone): it has its end of the app's socket (or the connection ends with
 * it, as every hand-off when the daemon dies); our reference to c goes. */
static void hc_direct_release(struct hconn *h)
{
    struct shim_conn *c = h->c;
    if (!h->direct || !c)
        return;
    h->c = NULL;
    if (h->adopted)
        shim_conn_unref(c);
    else
        shim_conn_done(c, 0);   /* the event thread's reference */
}

/* sstd could not take the app's socket end it was sent (fd-limit): the in-process engine
 * carries the connection on the hold's duplicate.  The app already saw it up; what it wrote
 * waits in the socketpair, so nothing is lost. */
static void hc_direct_takeover(struct hconn *h, const char *why)
{
    struct shim_conn *c = h->c;
    struct event_base *base = h->base;
    bool adopted = h->adopted;
    int end = shim_helper_hold_reclaim(h->dev, h->ino);
    h->c = NULL;
    hc_free(h);
    if (end < 0) {
        SHIM_WARN("helper %s, and no duplicate of the app's socket was kept: the connection ends", why);
        if (adopted)
            shim_conn_unref(c);
        else
            shim_conn_done(c, ECONNRESET);
        return;
    }
    SHIM_WARN("helper %s: using the in-process SST engine for a connection already up", why);
    c->pump_fd = end;
    c->external = false;   /* pumped here from now on: the exit drain waits for it */
    c->helper_dev = 0;     /* sstd does not know it: shutdown and SO_LINGER stay here */
    c->helper_ino = 0;
    int err = shim_sst_start_inproc(c, base);   /* our reference is the transport's now */
    if (err)
        shim_conn_fail(c, err);
}

/* The daemon is gone or broken before it carried anything: the in-process engine takes over. */
static void hc_abandon(struct hconn *h, const char *why)
{
    struct shim_conn *c = h->c;
    struct event_base *base = h->base;
    bool up = h->up;
    hc_direct_release(h);
    hc_free(h);
    if (up) {
        /* sstd pumps the app's socket (it would have said so at once if it could not), or it
         * is gone and the connection ends with it, as every hand-off when the daemon dies. */
        SHIM_INFO("helper %s after the hand-off: the connection is the daemon's", why);
        return;
    }
    SHIM_WARN("helper %s: using the in-process SST engine", why);
    int err = shim_sst_start_inproc(c, base);
    if (err)
        shim_conn_fail(c, err);
}

static bool send_line(int fd, const char *line, int pass_fd)
{
    struct iovec iov = { .iov_base = (void *)line, .iov_len = strlen(line) };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (pass_fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    /* A local stream socket with an empty buffer takes a short line whole. */
    return shim_real_sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)iov.iov_len;
}

bool shim_helper_send(int fd, const char *line, int pass_fd)
{
    return send_line(fd, line, pass_fd);
}

/* What the app set on its socket that sstd acts on (docs/helper.md "MARK"): SO_LINGER {1, 0},
 * TCP_USER_TIMEOUT (ms, 0: none), keepalive (idle, intvl, cnt; idle 0: off). */
struct handoff_opts {
    bool linger0;
    int utimeout_ms;
    int keepalive[3];
};

/* CONNECT's line: "CONNECT HOST PORT" and the RESET words (words, empty without them); after
 * these, the options set before the hand-off: LINGER0, UTIMEOUT=MS, KEEPALIVE=IDLE,INTVL,CNT.
 * CONNECT_LINE_MAX holds the longest (a key and words of 79 bytes and every option at its
 * widest: 245), so the line is never cut before its newline. */
#define CONNECT_LINE_MAX 320
static void connect_line(char *line, size_t len, const char *key, unsigned port, const char *words,
                         const struct handoff_opts *o)
{
    char ut[24] = "", ka[48] = "";
    if (words[0] && o->utimeout_ms > 0)
        snprintf(ut, sizeof(ut), " UTIMEOUT=%d", o->utimeout_ms);
    if (words[0] && o->keepalive[0] > 0)
        snprintf(ka, sizeof(ka), " KEEPALIVE=%d,%d,%d", o->keepalive[0], o->keepalive[1], o->keepalive[2]);
    snprintf(line, len, "CONNECT %s %u%s%s%s%s\n", key, port, words, words[0] && o->linger0 ? " LINGER0" : "",
             ut, ka);
}

/* The options c's app set (copied at the swap, or set since). */
static void conn_handoff_opts(const struct shim_conn *c, struct handoff_opts *o)
{
    o->linger0 = atomic_load(&c->linger0);
    if (!shim_conn_opt_get(c, IPPROTO_TCP, TCP_USER_TIMEOUT, &o->utimeout_ms) || o->utimeout_ms < 0)
        o->utimeout_ms = 0;
    if (!shim_keepalive_params(c, o->keepalive))
        o->keepalive[0] = 0;
}

/* The same read back from the app's socket fd before the swap (inside connect()): only if it
 * may have set any (the option mark; unmarked, they are the kernel's defaults). */
static void fd_handoff_opts(int fd, struct handoff_opts *o)
{
    memset(o, 0, sizeof(*o));
    if (!shim_fd_opts_peek(fd))
        return;
    struct linger lg = { 0, 0 };
    socklen_t l = sizeof(lg);
    o->linger0 = shim_real_getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l) == 0 && lg.l_onoff && lg.l_linger == 0;
    l = sizeof(int);
    if (shim_real_getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &o->utimeout_ms, &l) != 0 || o->utimeout_ms < 0)
        o->utimeout_ms = 0;
    int on = 0;
    l = sizeof(on);
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &l) != 0 || !on)
        return;
    static const int names[3] = { TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT };
    for (int i = 0; i < 3; i++) {
        l = sizeof(int);
        if (shim_real_getsockopt(fd, IPPROTO_TCP, names[i], &o->keepalive[i], &l) != 0 || o->keepalive[i] <= 0) {
            o->keepalive[0] = 0;   /* cannot tell: none */
            return;
        }
    }
}

/* The host is known to speak SST: the connection is up at once (the app's first bytes then
 * ride in the stream's Init), and sstd gets the shim's own end of the app's socketpair, so it
 * pumps straight to the app and the shim leaves the data path: one relay hop less in each
 * direction (no event-thread wake-up, read and write per chunk).  The filler is released
 * before the end is passed, so sstd never reads it as data. */
static void hc_send_direct(struct hconn *h)
{
    struct shim_conn *c = h->c;
    char line[CONNECT_LINE_MAX], words[80];

    /* What sstd knows the connection by, before the app can see it up (shutdown and
     * SO_LINGER are told to sstd: shim_helper_mark). */
    c->helper_dev = c->dev;
    c->helper_ino = c->ino;
    shim_conn_up(c, NULL, 0);
    h->up = true;
    /* The stream's failure comes back over the event connection, for the app's fd. */
    shim_helper_events_want(true);
    dev_t dev = c->dev;
    ino_t ino = c->ino;
    shim_helper_events_words(c->app_fd, -1, &dev, &ino, words, sizeof(words));
    char key[80];
    peer_key(h->host, key, sizeof(key));
    struct handoff_opts o;
    conn_handoff_opts(c, &o);
    connect_line(line, sizeof(line), key, h->port, words, &o);
    bool ok = send_line(h->ctl, line, c->pump_fd);
    /* Our copy stays as the hold (sstd's death then reads as a reset, helper_hold.c; sstd's
     * fd-limit answer hands it back), or goes if sstd did not take it: the connection ends
     * (the app reads EOF). */
    if (!ok) {
        shim_fd_close_own(c->pump_fd);
        shim_conn_done(c, ECONNRESET);
        h->c = NULL;   /* the app's fd holds the last reference now */
        hc_abandon(h, "did not take the request");
        return;
    }
    shim_conn_ref(c);   /* the hold's: SO_ERROR gives the errno sstd reports */
    shim_helper_hold(c->pump_fd, c->app_fd, dev, ino, shim_helper_peer_pid(h->ctl), c, true);
    c->pump_fd = -1;
    h->direct = true;   /* c and the event thread's reference stay until sstd's first answer */
    h->dev = dev;
    h->ino = ino;
    SHIM_DEBUG("host known to speak SST: connection up, the helper pumps the app's socket itself");
    h->phase = PH_CONNECT;
    h->len = 0;
}

/* CAPS answered: hand the connection over. */
static void hc_send_connect(struct hconn *h, bool port_answered)
{
    if (port_answered) {
        hc_send_direct(h);
        return;
    }
    int sv[2];
    if (shim_fd_own_socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        hc_abandon(h, "hand-off socketpair failed");
        return;
    }
    h->near = shim_fd_hide(sv[0], SHIM_FD_ENGINE);
    char line[CONNECT_LINE_MAX], words[80];
    /* The stream's failure comes back as a reset on our relay end, which the relay pump
     * passes on to the app (shim_conn_reset_app). */
    shim_helper_events_want(true);
    dev_t dev = 0;
    ino_t ino = 0;
    bool named = shim_helper_events_words(h->near, h->near, &dev, &ino, words, sizeof(words));
    char key[80];
    peer_key(h->host, key, sizeof(key));
    struct handoff_opts o;
    conn_handoff_opts(h->c, &o);
    connect_line(line, sizeof(line), key, h->port, named ? words : "", &o);
    bool ok = send_line(h->ctl, line, sv[1]);
    /* sstd has its copy; ours stays as the hold (helper_hold.c) */
    if (named) {
        h->c->helper_dev = dev;   /* SO_LINGER is told to sstd for the relay's end */
        h->c->helper_ino = ino;
    }
    if (ok && named) {
        shim_conn_ref(h->c);
        shim_helper_hold(sv[1], h->near, dev, ino, shim_helper_peer_pid(h->ctl), h->c, true);
    }
    else
        close(sv[1]);
    if (!ok) {
        hc_abandon(h, "did not take the request");
        return;
    }
    h->phase = PH_CONNECT;
    h->len = 0;
}

static void hc_on_reply(struct hconn *h, const char *line)
{
    struct shim_conn *c = h->c;
    if (h->phase == PH_CAPS) {
        if (strstr(line, "\"sst\":\"no-sst\"")) {
            hc_free(h);
            shim_conn_fallback(c, "helper: host known not to speak SST", true);
            return;
        }
        /* Refused over SST lately and served by TCP (another process's fallback told sstd):
         * auto mode skips the round trip of a refusal.  Strict mode asks anyway (no TCP). */
        if (shim_cfg.mode == SHIM_MODE_AUTO && shim_cfg.refusal_ttl > 0 &&
            strstr(line, "\"port_tcp_only\":true")) {
            hc_free(h);
            c->sst_refused = true;   /* cached here too once TCP connects */
            shim_conn_fallback(c, "helper: port refused over SST lately, served by TCP", false);
            return;
        }
        /* Up at once only for a port that answered before (TFO-like): any other port waits
         * for the peer's answer, so a closed one is refused at connect() as with TCP. */
        hc_send_connect(h, strstr(line, "\"sst\":\"sst\"") != NULL &&
                           strstr(line, "\"port_answered\":true") != NULL);
        return;
    }
    bool up = h->up;
    if (!strstr(line, "\"result\":")) {
        /* A request-level error, before any stream: sstd carries nothing.  "fd-limit": it is at
         * its descriptor limit and the kernel dropped the socket we passed (docs/helper.md
         * "Out of descriptors"). */
        char why[120];
        const char *e = strstr(line, "\"error\":\"");
        e = e ? e + 9 : "?";
        snprintf(why, sizeof(why), "could not take the connection (%.*s)", (int)strcspn(e, "\""), e);
        if (h->direct && h->c)
            hc_direct_takeover(h, why);
        else
            hc_abandon(h, why);
        return;
    }
    hc_direct_release(h);
    if (strstr(line, "\"result\":\"CONNECTED\"")) {
        SHIM_DEBUG("helper carries the connection: %s", line);
        if (!up)
            hc_up(h);
        h->near = -1;   /* owned by the pump now */
        hc_free(h);
        return;
    }
    bool refused = strstr(line, "\"result\":\"REFUSED\"") != NULL;
    hc_free(h);
    if (up) {
        /* An optimistic hand-off the peer turned down: sstd passes the reset back over the
         * event connection (the app's read fails with ECONNRESET), or shuts its end (EOF). */
        SHIM_INFO("helper: %s after the connection was reported up", refused ? "refused" : "unreachable");
        return;
    }
    if (refused) {
        c->sst_refused = true;   /* TCP reaching it then caches the port, here and in sstd */
        c->refused_via_helper = true;
        shim_conn_port_refused(c, "SST peer has no service on this port");
    }
    else
        shim_conn_fallback(c, "helper: host unreachable over SST", true);
}

static void hc_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *h = arg;
    if (what & EV_TIMEOUT) {
        hc_abandon(h, "did not answer");
        return;
    }
    ssize_t n = recv(fd, h->buf + h->len, sizeof(h->buf) - 1 - h->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        hc_abandon(h, "closed the control connection");
        return;
    }
    h->len += (size_t)n;
    h->buf[h->len] = '\0';
    char *nl = strchr(h->buf, '\n');
    if (!nl) {
        if (h->len >= sizeof(h->buf) - 1)
            hc_abandon(h, "sent an overlong reply");
        return;
    }
    *nl = '\0';
    hc_on_reply(h, h->buf);
}

/* The numeric address and TCP port of a destination, as sstd's requests want them.  An
 * IPv4-mapped IPv6 destination (a dual-stack socket's connect to an IPv4 host: every Java
 * socket) is the IPv4 host: sstd's channel, capability cache and file know it by that name,
 * and a mapped name would send sstd dialling an IPv6 address that reaches nobody. */
static bool ip_text(const struct sockaddr *sa, char *out, size_t len, unsigned *port)
{
    const void *ip;
    int family = sa->sa_family;
    if (family == AF_INET) {
        ip = &((const struct sockaddr_in *)sa)->sin_addr;
        *port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    } else if (family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        ip = &s6->sin6_addr;
        *port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            family = AF_INET;
            ip = &s6->sin6_addr.s6_addr[12];
        }
    } else {
        return false;
    }
    if (!inet_ntop(family, ip, out, (socklen_t)len))
        return false;
    /* A link-local destination names its interface (the numeric zone sst_addr_parse reads):
     * without it sstd cannot send to the host at all. */
    uint32_t scope = family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_scope_id : 0;
    if (scope != 0) {
        size_t n = strlen(out);
        if ((size_t)snprintf(out + n, len - n, "%%%u", (unsigned)scope) >= len - n)
            return false;
    }
    return true;
}

int shim_helper_dial(const char *path)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(un.sun_path))
        return -1;
    strcpy(un.sun_path, path);
    int fd = shim_fd_own_socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    fd = shim_fd_hide(fd, SHIM_FD_ENGINE);
    if (shim_real_connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
        SHIM_DEBUG("helper at %s not reachable (%s)", path, strerror(errno));
        shim_fd_close_own(fd);
        return -1;
    }
    return fd;
}

void shim_helper_note_tcp_only(const struct sockaddr *dest, unsigned secs)
{
    char host[64], line[160];
    unsigned port;
    const char *path = shim_helper_path();
    if (!path || !ip_text(dest, host, sizeof(host), &port))
        return;
    int fd = shim_helper_dial(path);
    if (fd < 0)
        return;
    char key[80];
    peer_key(host, key, sizeof(key));
    snprintf(line, sizeof(line), "TCPONLY %s %u %u\n", key, port, secs);
    if (!send_line(fd, line, -1))
        SHIM_DEBUG("helper did not take TCPONLY");
    /* sstd reads the line before it sees the close; its answer is not needed. */
    shim_fd_close_own(fd);
}

/* The sstd binary that belongs to this library: next to it (build/ or an install's lib dir with
 * ../bin, ../sbin). */
static bool find_sstd(char *out, size_t len)
{
    Dl_info info;
    if (!dladdr((void *)find_sstd, &info) || !info.dli_fname)
        return false;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", info.dli_fname);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return false;
    *slash = '\0';
    static const char *const rel[] = { "sstd", "../bin/sstd", "../sbin/sstd", "../../bin/sstd" };
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        int n = snprintf(out, len, "%s/%s", dir, rel[i]);
        if (n > 0 && (size_t)n < len && access(out, X_OK) == 0)
            return true;
    }
    return false;
}

/* SST_HELPER=auto and no daemon: start one (it daemonizes and returns once its socket listens),
 * without the preload or our configuration in its environment.  Once per process. */
static bool helper_autostart(const char *path)
{
    static bool tried;
    if (tried)
        return false;
    tried = true;
    char sstd[PATH_MAX];
    if (!find_sstd(sstd, sizeof(sstd))) {
        SHIM_WARN("SST_HELPER=auto: no sstd binary next to the shim library; using the in-process engine");
        return false;
    }
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof(*env));
    if (!env)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 && strncmp(environ[i], "SST_", 4) != 0)
            env[k++] = environ[i];
    /* Same key directory, security and congestion control as this process would use (SST_*
     * variables are not passed on, so they become options). */
    char *argv[12];
    size_t a = 0;
    argv[a++] = sstd;
    argv[a++] = "--socket";
    argv[a++] = (char *)path;
    if (shim_cfg.keydir[0]) {
        argv[a++] = "--keydir";
        argv[a++] = shim_cfg.keydir;
    }
    if (shim_cfg.security == SHIM_SEC_LIGHT) {
        argv[a++] = "--security";
        argv[a++] = "light";
    }
    if (shim_cfg.cc != SHIM_CC_DEFAULT) {
        argv[a++] = "--cc";
        argv[a++] = (char *)shim_cc_name(shim_cfg.cc);
    }
    argv[a] = NULL;
    /* The daemon must not hold the app's pipes or sockets open (a shell waiting for the app's
     * output would wait for the daemon too): stdio to /dev/null, everything else closed. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    /* We run on the event thread, which blocks every signal: the daemon must not inherit that
     * mask (it would ignore SIGTERM), nor the app's dispositions. */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, sstd, &fa, &at, argv, env);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (rc != 0) {
        SHIM_WARN("SST_HELPER=auto: cannot start %s: %s", sstd, strerror(rc));
        return false;
    }
    /* The launcher exits when the daemon is ready (or failed); the app may reap it first. */
    int status = 0;
    pid_t w;
    do {
        w = waitpid(pid, &status, 0);
    } while (w < 0 && errno == EINTR);
    if (w == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        SHIM_WARN("SST_HELPER=auto: %s did not start (status %d)", sstd, status);
        return false;
    }
    SHIM_INFO("SST_HELPER=auto: started %s --socket %s", sstd, path);
    return true;
}

bool shim_helper_start(struct shim_conn *c, struct event_base *base, const char *path)
{
    int fd = shim_helper_dial(path);
    if (fd < 0 && shim_cfg.helper == SHIM_HELPER_AUTO && shim_cfg.helper_autostart && helper_autostart(path))
        fd = shim_helper_dial(path);
    if (fd < 0)
        return false;
    struct hconn *h = calloc(1, sizeof(*h));
    if (!h) {
        shim_fd_close_own(fd);
        return false;
    }
    h->c = c;
    h->base = base;
    h->ctl = fd;
    h->near = -1;
    h->phase = PH_CAPS;
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    if (!ip_text(sa, h->host, sizeof(h->host), &h->port)) {
        hc_free(h);
        return false;
    }
    char line[128], key[80];
    peer_key(h->host, key, sizeof(key));
    snprintf(line, sizeof(line), "CAPS %s %u\n", key, h->port);
    struct timeval tv = { REPLY_TIMEOUT_SEC, 0 };
    h->ev = event_new(base, fd, EV_READ | EV_PERSIST, hc_on_event, h);
    if (!h->ev || event_add(h->ev, &tv) < 0 || !send_line(fd, line, -1)) {
        hc_free(h);
        return false;
    }
    SHIM_DEBUG("handing the connection to the helper at %s", path);
    return true;
}

static char default_path[108];

static void find_default_path(void)
{
    if (sst_helper_default_socket(default_path, sizeof(default_path), geteuid(), getenv("XDG_RUNTIME_DIR")) < 0)
        default_path[0] = '\0';
}

const char *shim_helper_path(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (shim_cfg.helper == SHIM_HELPER_OFF)
        return NULL;
    if (shim_cfg.helper == SHIM_HELPER_PATH)
        return shim_cfg.helper_path;
    pthread_once(&once, find_default_path);   /* app threads (connect) and the event thread */
    return default_path[0] ? default_path : NULL;
}

/* ---- the hand-off inside connect() ---------------------------------------------------------
 * For a port that answered through sstd before (TCP Fast Open's rule: 0-RTT only with proof
 * from an earlier connection), nothing needs to wait: the connection is up at once and sstd
 * pumps the app's socket itself.  So the app thread does it all inside connect(): the question
 * (sstd's capability file, else one CAPS round trip), a socketpair, CONNECT with one end, the
 * other end swapped onto the app's fd.  No event thread, no filler, no relay: the request
 * leaves through sstd as soon as the app writes it.  Any other port goes the asynchronous way
 * and is up when the peer answers, so a closed port is refused at connect().
 *
 * There is no per-process cache of these answers: a port that stops answering is dropped from
 * sstd's file and CAPS at its first refusal, and a cached yes would hand this process's next
 * connections to it over blind (each would read EOF instead of ECONNREFUSED). */

#define CAPS_WAIT_MS 100     /* sstd answers CAPS from its cache at once; if not, go async */

/* Asks "CAPS key port" on ctl and waits up to CAPS_WAIT_MS: did that port answer lately? */
static bool caps_now(int ctl, const char *key, unsigned port)
{
    char line[128], buf[REPLY_MAX];
    size_t len = 0;
    snprintf(line, sizeof(line), "CAPS %s %u\n", key, port);
    if (!send_line(ctl, line, -1))
        return false;
    for (;;) {
        struct pollfd p = { .fd = ctl, .events = POLLIN };
        if (poll(&p, 1, CAPS_WAIT_MS) <= 0)
            return false;   /* slow daemon or a signal: the asynchronous path takes over */
        ssize_t n = recv(ctl, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        if (strchr(buf, '\n'))
            break;
        if (len >= sizeof(buf) - 1)
            return false;
    }
    return strstr(buf, "\"sst\":\"sst\"") && strstr(buf, "\"port_answered\":true");
}

/* One request line to sstd on a fresh control connection, its answer line in buf (the
 * caller's thread, at most CAPS_WAIT_MS per read).  False if sstd is not there or silent. */
static bool helper_ask(const char *line, char *buf, size_t cap)
{
    size_t len = 0;
    const char *path = shim_helper_path();
    int ctl = path ? shim_helper_dial(path) : -1;
    bool ok = false;
    buf[0] = '\0';
    if (ctl < 0 || !send_line(ctl, line, -1))
        goto out;
    for (;;) {
        struct pollfd p = { .fd = ctl, .events = POLLIN };
        if (poll(&p, 1, CAPS_WAIT_MS) <= 0)
            goto out;   /* a slow or older daemon: the caller does without */
        ssize_t n = recv(ctl, buf + len, cap - 1 - len, MSG_DONTWAIT);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        buf[len] = '\0';
        if (strchr(buf, '\n'))
            break;
        if (len >= cap - 1)
            goto out;
    }
    ok = true;
out:
    if (ctl >= 0)
        shim_fd_close_own(ctl);
    return ok;
}

bool shim_helper_mark(dev_t dev, ino_t ino, const char *what)
{
    char line[128], buf[REPLY_MAX];
    int saved = errno;
    snprintf(line, sizeof(line), "MARK %llu %llu %s\n", (unsigned long long)dev, (unsigned long long)ino, what);
    bool ok = helper_ask(line, buf, sizeof(buf)) && strstr(buf, "\"ok\":true") != NULL;
    SHIM_DEBUG("helper: MARK %s: %s", what, ok ? "done" : "not done");
    errno = saved;
    return ok;
}

bool shim_helper_info(dev_t dev, ino_t ino, char *buf, size_t cap)
{
    char line[128];
    int saved = errno;
    snprintf(line, sizeof(line), "INFO %llu %llu\n", (unsigned long long)dev, (unsigned long long)ino);
    bool ok = helper_ask(line, buf, cap) && strstr(buf, "\"ok\":true") != NULL;
    if (!ok)
        SHIM_DEBUG("helper: INFO not answered: %s", buf);
    errno = saved;
    return ok;
}

/* Event thread: waits for sstd's first answer to a CONNECT sent inside connect() (the reading
 * and the outcomes are the event-thread hand-off's: hc_on_event, hc_on_reply). */
static void watch_start(void *arg)
{
    struct hconn *h = arg;
    h->base = shim_ev_base();
    struct timeval tv = { REPLY_TIMEOUT_SEC, 0 };
    h->ev = event_new(h->base, h->ctl, EV_READ | EV_PERSIST, hc_on_event, h);
    if (!h->ev || event_add(h->ev, &tv) < 0) {
        hc_direct_release(h);
        hc_free(h);
    }
}

/* The event thread could not be reached: the answer cannot be waited for. */
static void watch_cancel(void *arg)
{
    struct hconn *h = arg;
    hc_direct_release(h);
    hc_free(h);
}

/* Loads sstd's capability file next to its socket (docs/helper.md) into text: false if it is
 * missing, unreadable, or not our own user's (or root's: in a shared directory anyone else's
 * could claim any host).  *fresh: sstd touched it lately (from its keepalive).  A stale file
 * means an idle daemon -- or a frozen one, which would hold a connection handed to it for as
 * long as it is frozen: then CONNECT goes only after a CAPS answer. */
static bool capsfile_load(const char *sock_path, char path[PATH_MAX], char *text, size_t cap, bool *fresh)
{
    struct stat st;
    struct timespec now;
    *fresh = false;
    if (sst_helper_caps_path(path, PATH_MAX, sock_path) < 0)
        return false;
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0)
        return false;
    ssize_t n = -1;
    if (fstat(f, &st) == 0 && S_ISREG(st.st_mode) && (st.st_uid == geteuid() || st.st_uid == 0))
        n = read(f, text, cap - 1);
    shim_real_close(f);
    if (n <= 0)
        return false;
    text[n] = '\0';
    *fresh = clock_gettime(CLOCK_REALTIME, &now) == 0 &&
             now.tv_sec - st.st_mtim.tv_sec <= SST_HELPER_CAPS_FRESH_SEC;
    return true;
}

int shim_helper_connect_now(int fd, const struct sockaddr *sa, socklen_t len)
{
    char host[64], key[80], pkey[88], line[CONNECT_LINE_MAX];
    unsigned port;
    const char *path = shim_helper_path();
    struct sockaddr_un un = { .sun_family = AF_UNIX };

    if (!path || strlen(path) >= sizeof(un.sun_path) || !ip_text(sa, host, sizeof(host), &port))
        return SHIM_HELPER_LATER;
    peer_key(host, key, sizeof(key));
    snprintf(pkey, sizeof(pkey), "%s/%u", key, port);
    strcpy(un.sun_path, path);

    /* The file answers for the host and the port (no CAPS round trip to sstd): a new process
     * such as each curl pays none. */
    char text[16384], tkey[96], cpath[PATH_MAX];
    bool fresh = false;
    bool have = capsfile_load(path, cpath, text, sizeof(text), &fresh) && fresh;
    uint64_t expires, now = shim_now_ns();
    snprintf(tkey, sizeof(tkey), "!%s", pkey);
    if (have && shim_cfg.mode == SHIM_MODE_AUTO && shim_cfg.refusal_ttl > 0 &&
        sst_helper_caps_lookup(text, tkey, now, &expires)) {
        SHIM_DEBUG("fd %d: %s refused over SST lately and is served by TCP (sstd's capability file): kernel TCP",
                   fd, pkey);
        return SHIM_HELPER_TCP;
    }
    bool listed = have && sst_helper_caps_lookup(text, key, now, &expires) &&
                  sst_helper_caps_lookup(text, pkey, now, &expires);
    if (listed)
        SHIM_DEBUG("%s is known to speak SST (sstd's capability file %s): no CAPS", pkey, cpath);
    int ctl = shim_fd_own_socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl < 0)
        return SHIM_HELPER_LATER;
    int sv[2] = { -1, -1 };
    int r = SHIM_HELPER_LATER;
    if (shim_real_connect(ctl, (struct sockaddr *)&un, sizeof(un)) < 0)
        goto out;   /* no daemon (or its backlog is full): the asynchronous path decides */
    if (!listed && !caps_now(ctl, key, port)) {
        if (!fresh)
            SHIM_DEBUG("%s: sstd's capability file is stale or missing and CAPS got no answer in time", pkey);
        goto out;
    }
    if (shim_fd_own_socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        goto out;
    /* sv[0] goes onto fd: a failure of the stream comes back over the event connection
     * (once per process, served by the event thread) as a reset for fd.  It is set up after
     * the CONNECT and off this thread: the request goes first. */
    char words[80];
    dev_t dev = 0;
    ino_t ino = 0;
    bool named = shim_helper_events_words(fd, sv[0], &dev, &ino, words, sizeof(words));
    /* What the app set before connect() that sstd acts on (SO_LINGER {1, 0}: sstd resets the
     * stream at the app's close; TCP_USER_TIMEOUT; keepalive). */
    struct handoff_opts o = { 0 };
    if (named)
        fd_handoff_opts(fd, &o);
    connect_line(line, sizeof(line), key, port, named ? words : "", &o);
    if (!send_line(ctl, line, sv[1]))
        goto out;
    pid_t sstd = named ? shim_helper_peer_pid(ctl) : 0;
    /* The CONNECTED/REFUSED answer is not awaited here: that port answered before; if it
     * refuses now (closed since), the app gets a reset (ECONNRESET on its read), and sstd drops
     * the port so the next connect waits for the answer.  But sstd at its descriptor limit
     * never gets sv[1] (the kernel drops it, sstd answers fd-limit at once): so the control
     * connection goes to the event thread, which waits for sstd's first answer and on
     * fd-limit carries the connection on the hold's end (hc_direct_takeover). */
    struct shim_conn *c = NULL;
    r = shim_conn_adopt(fd, sa, len, sv[0], &shim_transport_sst, "SST_PEERS match, warm helper", &c);
    int saved_r = errno;
    if (sstd > 0) {
        /* sstd has its copy of sv[1]; ours stays as the hold (sstd's death then reads as a
         * reset, helper_hold.c), taken over by the event thread, with the app's connection. */
        if (c) {
            c->helper_dev = dev;
            c->helper_ino = ino;
            shim_conn_ref(c);
        }
        shim_helper_hold(sv[1], fd, dev, ino, sstd, c, false);
        sv[1] = -1;
    }
    struct hconn *h = c && sstd > 0 ? calloc(1, sizeof(*h)) : NULL;
    if (h) {
        h->c = c;
        h->ctl = shim_fd_hide(ctl, SHIM_FD_ENGINE);
        h->near = -1;
        h->phase = PH_CONNECT;
        h->up = true;
        h->direct = true;
        h->adopted = true;
        h->dev = dev;
        h->ino = ino;
        ctl = -1;   /* the watch's now */
        shim_helper_events_want_soon(watch_start, watch_cancel, h);
    } else {
        if (c)
            shim_conn_unref(c);
        shim_helper_events_want_soon(NULL, NULL, NULL);
    }
    errno = saved_r;
    SHIM_DEBUG("fd %d: handed to the helper inside connect(): %s answered before", fd, pkey);
out:;
    int saved = errno;   /* connect()'s answer (EINPROGRESS) survives the closes */
    if (sv[0] >= 0)
        shim_real_close(sv[0]);
    if (sv[1] >= 0)
        shim_real_close(sv[1]);
    if (ctl >= 0)
        shim_real_close(ctl);
    errno = saved;
    return r;
}
