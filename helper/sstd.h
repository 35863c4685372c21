/* sstd internals: the daemon state every helper/ file shares (options, peers, control clients). */
#ifndef SSTD_H
#define SSTD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <uthash.h>

#include "types.h"
#include "host.h"
#include "channel.h"

#define SSTD_DEFAULT_PORT 8661
#define SSTD_MAX_FORWARD 64
#define SSTD_MAX_ALLOW 32
#define SSTD_PATH_MAX 108           /* sun_path */
#define SSTD_LINE_MAX 1024          /* longest control request line */
#define SSTD_KEEPALIVE_SEC 5        /* ping interval of a warm channel (well under idle_timeout) */
#define SSTD_RETRY_MIN_MS 500       /* first re-establishment delay after a failure */
#define SSTD_RETRY_MAX_MS 30000
#define SSTD_CAPS_YES_SEC 3600      /* how long "answered SST" is believed */
#define SSTD_CAPS_NO_SEC 600        /* how long "no SST there" is believed */
#define SSTD_CAPS_MAX 4096          /* capability cache entries (hosts and HOST/PORT), ~200 B
                                       each; the least recently used gives way beyond */
#define SSTD_GATEWAY_CONNECT_SEC 10 /* gateway: a local connect not done by then is refused */
#define SSTD_PORT_OK_SEC 600        /* how long "HOST/PORT answered" is believed (0-RTT hand-offs) */
#define SSTD_PORT_TCP_MAX_SEC 3600  /* TCPONLY: longest time a port is kept as served by TCP only */

enum sstd_loglevel { SSTD_LOG_ERROR = 0, SSTD_LOG_WARN, SSTD_LOG_INFO, SSTD_LOG_DEBUG };

struct sstd_opts {
    char socket_path[SSTD_PATH_MAX];
    char pid_file[PATH_MAX];
    char caps_file[PATH_MAX];     /* derived: <socket without .sock>.caps (capsfile.c) */
    char keydir[PATH_MAX];          /* "" = keystore default */
    char log_file[PATH_MAX];        /* "" = stderr (or syslog once daemonized) */
    char bind[80];                  /* UDP bind address text, "" = "::" */
    uint16_t port;                  /* UDP port, default 8661 */
    uint16_t forward[SSTD_MAX_FORWARD];
    unsigned nforward;
    bool proxy_protocol;
    bool foreground;
    enum sstd_loglevel log_level;
    unsigned idle_sec;              /* warm channels stay up this long after their last use */
    unsigned handshake_timeout_sec; /* give up on a host that does not answer (default 10) */
    /* Engine settings left at the engine's default unless given (core/sst.h sst_ctx_config):
     * how long streams wait for a lost channel to come back, and the dormant-stream probe. */
    bool migrate_set;
    unsigned migrate_sec;
    bool liveness_set;
    unsigned liveness_sec;
    bool cc_set;                    /* --cc given; else the engine default (sst_host_config_default) */
    enum sst_cc_algo cc;
    bool security_set;              /* --security given; else the engine default (strong) */
    enum sst_security security;
    uid_t allow_uid[SSTD_MAX_ALLOW];
    unsigned nallow;
};

/* options.c: fills o from argv (defaults first).  0, or -1 with a message in err; 1 for --help. */
int sstd_options_parse(struct sstd_opts *o, int argc, char **argv, char *err, size_t errlen);
void sstd_options_usage(FILE *f);
/* The default control socket path: $XDG_RUNTIME_DIR/sst/sstd.sock, /run/sst/sstd.sock for root. */
int sstd_default_socket_path(char *buf, size_t len, uid_t uid, const char *xdg_runtime_dir);
bool sstd_forwarded(const struct sstd_opts *o, uint16_t port);

/* log.c */
void sstd_log_setup(enum sstd_loglevel level, int fd, bool use_syslog);
int sstd_log_level_parse(const char *s);
void sstd_log(enum sstd_loglevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define SSTD_ERROR(...) sstd_log(SSTD_LOG_ERROR, __VA_ARGS__)
#define SSTD_WARN(...) sstd_log(SSTD_LOG_WARN, __VA_ARGS__)
#define SSTD_INFO(...) sstd_log(SSTD_LOG_INFO, __VA_ARGS__)
#define SSTD_DEBUG(...) sstd_log(SSTD_LOG_DEBUG, __VA_ARGS__)

/* caps.c: the capability cache, keyed by the peer's SST address text ("ip:port").  Pure: time is passed in. */
enum sstd_cap { SSTD_CAP_UNKNOWN = 0, SSTD_CAP_SST, SSTD_CAP_NO_SST };
struct sstd_caps;
struct sstd_caps *sstd_caps_new(void);
void sstd_caps_free(struct sstd_caps *c);
void sstd_caps_set(struct sstd_caps *c, const char *host, enum sstd_cap cap, const char *reason,
                   sst_time_t now, sst_time_t ttl);
/* The cached answer (UNKNOWN when absent or expired; expired entries are dropped).  A hit (like
 * a set) counts as a use: at SSTD_CAPS_MAX entries the least recently used is evicted. */
enum sstd_cap sstd_caps_get(struct sstd_caps *c, const char *host, sst_time_t now, sst_time_t *expires,
                            const char **reason);
/* Calls fn for every live entry. */
void sstd_caps_del(struct sstd_caps *c, const char *host);
void sstd_caps_foreach(struct sstd_caps *c, sst_time_t now,
                       void (*fn)(void *arg, const char *host, enum sstd_cap cap, const char *reason,
                                  sst_time_t expires),
                       void *arg);
const char *sstd_cap_name(enum sstd_cap cap);
/* Entries held (expired ones not yet dropped included) and, in *evicted, those evicted for room. */
size_t sstd_caps_count(const struct sstd_caps *c, uint64_t *evicted);

/* capsfile.c: the hosts known to speak SST, published for the shim next to the control socket.
 * Format: the line SSTD_CAPSFILE_MAGIC, then "HOST:PORT EXPIRES" per host, EXPIRES in
 * CLOCK_MONOTONIC ns.  render is pure (returns the length, 0 if even the header does not fit). */
#define SSTD_CAPSFILE_MAGIC "sstd-caps 1"
#define SSTD_CAPSFILE_MAX 16384      /* the shim reads this much (helper_client.c) */
size_t sstd_capsfile_render(struct sstd_caps *c, sst_time_t now, char *buf, size_t cap);
struct sstd;
void sstd_capsfile_publish(struct sstd *d, sst_time_t now);   /* rewrites the file (temporary file + rename) */
void sstd_capsfile_remove(struct sstd *d);
/* Sets the file's mtime to now: "this daemon still runs" (SST_HELPER_CAPS_FRESH_SEC). */
void sstd_capsfile_touch(struct sstd *d);
/* A hand-off stream to dest ("PEER/PORT", the pump's dest) was answered: that port takes
 * connections at once (0-RTT) for SSTD_PORT_OK_SEC; refused (or reset before its answer): it is
 * forgotten.  Both publish the capability file when the listed set changes. */
void sstd_port_answered(struct sstd *d, const char *dest, sst_time_t now);
void sstd_port_refused(struct sstd *d, const char *dest, sst_time_t now);
/* A shim's TCP fallback connected after dest refused over SST: dest is listed as served by TCP
 * only ("!PEER/PORT EXPIRES" in the file, "port_tcp_only" in CAPS) for ttl, so auto-mode
 * connections to it go straight to kernel TCP -- unless the port answers over SST meanwhile
 * (sstd_port_answered replaces the entry). */
void sstd_port_tcp_only(struct sstd *d, const char *dest, sst_time_t now, sst_time_t ttl);

/* json.c: appends a JSON string literal (quoted, escaped) to an evbuffer. */
struct evbuffer;
void sstd_json_str(struct evbuffer *out, const char *s);
/* Formats a time span in milliseconds with 3 decimals. */
double sstd_ms(sst_time_t t);

/* request.c: the words of a control request line.  split: up to SSTD_REQ_WORDS words separated
 * by spaces, tabs and CRs (in place; missing words are NULL), returns how many.  long: a whole
 * decimal word in min..max (false for NULL).  devino: two whole decimal words (MARK, INFO).
 * notify: CONNECT's "RESET FD DEV INO" tail (false, nothing meant, for anything else). */
#define SSTD_REQ_WORDS 10
unsigned sstd_request_split(char *line, char *w[SSTD_REQ_WORDS]);
bool sstd_request_long(const char *s, long min, long max, long *out);
bool sstd_request_devino(const char *a, const char *b, unsigned long long *dev, unsigned long long *ino);
bool sstd_request_notify(char *const w[4], int *fd, unsigned long long *dev, unsigned long long *ino);
/* The MS of a "UTIMEOUT=MS" word (the app's TCP_USER_TIMEOUT: CONNECT's tail, MARK), whole
 * milliseconds 0..INT_MAX; -1 for any other word. */
int sstd_request_utimeout(const char *w);
/* "KEEPALIVE=IDLE,INTVL,CNT" (the app's SO_KEEPALIVE and TCP_KEEPIDLE/INTVL/CNT, seconds; all
 * 0: off): true with the three in ka, each 0..INT_MAX, IDLE 0 or all three positive. */
bool sstd_request_keepalive(const char *w, int ka[3]);

/* The host text of an address without port (keystore / caps key). */
void sstd_addr_host(const struct sst_addr *a, char *buf, size_t len);

/* ---- the running daemon ---------------------------------------------------------------- */

struct event;
struct event_base;
struct sst_driver;
struct sst_keystore;
struct sstd_client;
struct sstd_pump;
struct sst_listener;
struct sstd_peer;
struct sstd;

enum sstd_peer_state { SSTD_PEER_IDLE = 0, SSTD_PEER_CONNECTING, SSTD_PEER_UP };

/* Told once when a peer's channel comes up (err 0) or the attempt fails (err < 0). */
typedef void (*sstd_wait_fn)(void *arg, struct sstd_peer *p, int err);

struct sstd_waiter {
    sstd_wait_fn fn;
    void *arg;
    struct sstd_waiter *next;
};

/* One remote SST host (UDP address): at most one channel, shared by every user (paper §4.1). */
struct sstd_peer {
    char key[SST_ADDR_STRLEN];      /* "addr:port": hash key */
    struct sst_addr addr;
    struct sstd *d;
    struct sst_chan *chan;          /* NULL while idle */
    enum sstd_peer_state state;
    bool initiator;                 /* we opened the current channel */
    sst_time_t want_until;          /* warm: keep up and re-establish until then (0: not warm) */
    sst_time_t connect_started, up_at;
    sst_time_t last_handshake_ns;   /* duration of the last handshake we initiated */
    unsigned streams;               /* hand-off / gateway streams on the channel now */
    unsigned retry_ms;              /* next re-establishment backoff */
    uint64_t handshakes;            /* channels we initiated to this peer */
    uint64_t failures;
    int last_err;
    struct event *keepalive_ev;     /* pings while warm */
    struct event *retry_ev;         /* re-establishment after failure */
    struct sstd_waiter *waiters;
    UT_hash_handle hh;
};

struct sstd {
    struct sstd_opts opts;
    struct event_base *base;
    struct sst_driver *drv;
    struct sst_keystore *ks;
    struct sstd_caps *caps;
    struct sstd_peer *peers;        /* peers.c: uthash by key */
    struct sstd_client *clients;    /* control.c */
    struct sstd_pump *pumps;        /* pump.c: hand-off and gateway streams */
    struct sstd_fwd {               /* gateway.c, one listener per --forward port */
        struct sstd *d;
        uint16_t port;
        struct sst_listener *l;
    } fwd[SSTD_MAX_FORWARD];
    struct sstd_reg *regs;          /* listen.c: ports registered by LISTEN */
    struct sstd_regport *regports;  /* listen.c: their SST listeners, one per port */
    int listen_fd;
    struct event *listen_ev;
    struct event *accept_resume;    /* control.c: accepting paused for want of descriptors */
    unsigned accept_paused;         /* pauses in the current episode */
    struct sstd_held_reset *held;   /* control.c: resets waiting for their event connection */
    unsigned nheld;
    struct event *held_ev;
    struct event *errwatch_ev;      /* pump.c: a private epoll set of local sockets watched for
                                       their RST only, after their FIN (sstd_pump fd_watched) */
    struct event *sig_term, *sig_int, *stop_timer;
    bool stopping;
    bool closing_channels;          /* stopping, and the pumps are gone: channels closing */
    int exit_code;
    sst_time_t started;
    uint16_t port;                  /* the UDP port actually bound */
};

/* engine: the driver's clock, the host, and "flush and re-arm" after poking the engine. */
sst_time_t sstd_now(struct sstd *d);
struct sst_host *sstd_host(struct sstd *d);
struct sst_ctx;
struct sst_ctx *sstd_ctx(struct sstd *d);
void sstd_rearm(struct sstd *d);

/* peers.c */
int sstd_peers_init(struct sstd *d);
void sstd_peers_free(struct sstd *d);
struct sstd_peer *sstd_peer_find(struct sstd *d, const struct sst_addr *a);
struct sstd_peer *sstd_peer_get(struct sstd *d, const struct sst_addr *a);
/* Keeps p's channel up (opening it now if needed) until `until`; extends, never shortens. */
void sstd_peer_want(struct sstd_peer *p, sst_time_t until);
/* Opens the channel if idle and registers fn for UP/failure (called at once if already up). */
int sstd_peer_wait(struct sstd_peer *p, sstd_wait_fn fn, void *arg);
void sstd_peer_unwait(struct sstd_peer *p, void *arg);
void sstd_peers_chan_event(struct sstd *d, struct sst_chan *ch, enum sst_chan_event ev, int err);
/* Closes every channel gracefully; returns how many are still open. */
unsigned sstd_peers_close_all(struct sstd *d);
unsigned sstd_peers_open(struct sstd *d);
void sstd_peers_foreach(struct sstd *d, void (*fn)(void *arg, struct sstd_peer *p), void *arg);

/* status.c: the STATUS reply (one JSON object, no newline). */
void sstd_status_json(struct sstd *d, struct evbuffer *out);

/* control.c */
int sstd_control_open(struct sstd *d);
void sstd_control_close(struct sstd *d);
/* Stopping (SIGTERM): the control socket closes and so does every client connection except
 * the event connections, which carry the stopping hand-offs' resets until sstd exits
 * (sstd_control_close then frees them). */
void sstd_control_stop(struct sstd *d);
/* pump.c: once stopping and no pump is left, closes the channels, and exits the loop once
 * none is open either. */
void sstd_stop_maybe(struct sstd *d);
/* Appends a reply line to a client's output (text must be one JSON object without newline). */
/* A hand-off stream failed (the peer reset it, refused it, the channel died): passes the
 * pump's end of the client's socketpair, fd, to the event connection of process pid (EVENTS),
 * with "RESET app_fd dev ino eno", so that its shim makes the app's read fail with
 * ECONNRESET, and its SO_ERROR and first failing write with eno (docs/helper.md "Resets"; eno
 * EPIPE: the stream failed after its end reached the app, whose writes then fail with EPIPE and
 * reads end with EOF, as TCP's after a RST in CLOSE_WAIT).  Never blocks: false (the app reads
 * EOF) when pid's event connection does not take the message now.  When pid has none yet, a
 * duplicate of fd waits for it a moment (bounded).  The caller closes its fd either way. */
bool sstd_control_pass_reset(struct sstd *d, pid_t pid, int fd, int app_fd, unsigned long long dev,
                             unsigned long long ino, int eno);
void sstd_client_reply(struct sstd_client *c, struct evbuffer *json);
/* Sends line (one line with its newline) on c's connection, outside any request's answer. */
void sstd_client_send(struct sstd_client *c, const char *line);
void sstd_client_reply_error(struct sstd_client *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* gateway.c: listens for every --forward port; frees the listeners. */
int sstd_gateway_open(struct sstd *d);
void sstd_gateway_close(struct sstd *d);

/* gateway.c: connects the accepted stream p (service port) to the local listener at dst and
 * pumps it (answered once that connect completes; refused when it fails or takes over
 * SSTD_GATEWAY_CONNECT_SEC); proxy: a PROXY v2 header first. */
struct sockaddr;
void sstd_gateway_accept(struct sstd *d, struct sstd_pump *p, uint16_t port, const struct sockaddr *dst,
                         socklen_t dstlen, bool proxy);
/* The same in two steps: the local socket (non-blocking, TCP_NODELAY; -1 with errno), then its
 * connect (fd < 0: the stream is refused). */
int sstd_gateway_socket(int family);
void sstd_gateway_connect(struct sstd *d, struct sstd_pump *p, int fd, uint16_t port, const struct sockaddr *dst,
                          socklen_t dstlen, bool proxy);

/* A registered listening socket, as listen.c describes it (from the socket, or from the kernel's
 * table: core/io/sockdiag.h). */
struct sstd_diag {
    int family;                     /* AF_INET or AF_INET6 */
    bool v6only;                    /* IPV6_V6ONLY */
    uid_t uid;                      /* its owner */
    unsigned long long ino;         /* its identity */
    struct sockaddr_storage bound;  /* its bound address and port */
    socklen_t boundlen;
};

/* listen.c: a port registered by a shimmed server whose own engine cannot have the SST port
 * (LISTEN PORT + one of its listening sockets, or LISTEN PORT INODE; docs/helper.md "LISTEN").
 * check_fd verifies a passed socket (a TCP socket of our network namespace listening on
 * port), check_ino a socket named by its inode (listening on port here, owned by uid unless
 * uid is 0); both describe it in out, or give an error code and message.  add registers it on
 * *reg, the connection's registration (created on its first LISTEN: one port per connection,
 * any number of the port's sockets); false with code/message (forwarded, another
 * registration's socket at the same place).  close ends a registration. */
struct sstd_reg;
struct sstd_reg_wait;
struct sstd_regport;
bool sstd_reg_check_fd(int fd, uint16_t port, struct sstd_diag *out, const char **code, char *msg, size_t msglen);
bool sstd_reg_check_ino(unsigned long long ino, uint16_t port, uid_t uid, struct sstd_diag *out, const char **code,
                        char *msg, size_t msglen);
struct sstd_client;
bool sstd_reg_add(struct sstd *d, struct sstd_client *c, struct sstd_reg **reg, uint16_t port,
                  const struct sstd_diag *ds, pid_t pid, const char **code, char *msg, size_t msglen);
void sstd_reg_close(struct sstd_reg *r);
/* PEERED LOCAL (the registering shim recorded the peer of the connection from LOCAL, which
 * sstd announced with "PEER LOCAL REMOTE"): that connection goes ahead now.  False if r has
 * no connection from LOCAL waiting (it went ahead after its wait, or never was). */
bool sstd_reg_peered(struct sstd_reg *r, const char *local);
/* pump.c: the pump a registration's connection waits with is freed. */
void sstd_reg_pump_gone(struct sstd_reg_wait *w);
void sstd_reg_json(struct sstd *d, struct evbuffer *out);   /* STATUS's "listeners" array */

/* proxy.c: a PROXY protocol v2 header (haproxy's proxy-protocol.txt §2.2) saying the connection
 * came from src to dst over TCP.  Returns its length (16 + 12 or 16 + 36), 0 if cap is short or
 * the families are unknown.  Mixed families are sent as IPv6 (IPv4-mapped). */
size_t sstd_proxy_v2(uint8_t *out, size_t cap, const struct sst_addr *src, const struct sst_addr *dst);
#define SSTD_PROXY_V2_MAX (16 + 36)

/* daemon.c */
int sstd_prepare_socket_dir(const char *socket_path, bool shared, char *err, size_t errlen);
void sstd_stdio_open(void);
int sstd_daemonize(int *ready_fd, char *err, size_t errlen);
void sstd_daemon_ready(int ready_fd, int status);
int sstd_pidfile_write(const char *path, char *err, size_t errlen);

#endif
