/* A replaced connection: the state shared by the app's hooks and the event thread for one
 * connect() that the shim carries through a socketpair. */
#ifndef SHIM_CONN_H
#define SHIM_CONN_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "fdtable.h"
#include "transport.h"

struct shim_spump;

enum shim_conn_state {
    SHIM_CONN_CONNECTING = 1,
    SHIM_CONN_CONNECTED,
    SHIM_CONN_FAILED,
};

#define SHIM_CONN_MAX_OPTS 16

/* An int-valued socket option read from the app's TCP socket at connect(), or set later;
 * applied to the transport's socket and answered by getsockopt. */
struct shim_opt {
    int level, name, value;
};

struct shim_conn {
    atomic_int refs;            /* fd-table entries + one for the event thread while it runs */
    atomic_int state;           /* enum shim_conn_state */
    atomic_int err;             /* errno of a failure, or what ended the connection */
    atomic_bool err_pending;    /* SO_ERROR not yet read since the failure */
    atomic_bool conn_reported;  /* a connect() already returned 0: the next says EISCONN */
    atomic_bool unconnected;    /* a connect() reported the failure: the next one retries */
    atomic_bool linger0;        /* SO_LINGER {1, 0}: the app's last close resets the connection */
    atomic_int pumped_by;       /* the process whose pump reads the app's end (not sstd), or 0 */
    struct shim_reserve rsv;    /* the app's shutdown(SHUT_WR) queued one byte behind its data
                                   that the pump leaves unread (shim_fd_reserve_readable) */
    atomic_bool reset_armed;    /* the transport's error reaches the app as the kernel's
                                   ECONNRESET (shim_conn_reset_app): SO_ERROR asks the kernel;
                                   also after an EPIPE after the FIN (its err_pending is the
                                   one SO_ERROR answer: shim_reset_after_fin) */
    dev_t helper_dev;           /* the socket sstd knows this hand-off by (CONNECT's RESET words: */
    ino_t helper_ino;           /* the app's, or the relay's end), 0 if not handed to sstd */
    atomic_bool wr_shut;        /* the app's shutdown(SHUT_WR) told to sstd instead of done on its
                                   end (hook_sockopt.c): its writes fail as after SHUT_WR */
    atomic_int helper_err;      /* the errno sstd reported for a relayed hand-off's stream (its
                                   RESET): the relay pump's reset gives it, not its own read's */
    bool external;              /* pumped by another process (sstd, shim_conn_adopt): the exit
                                   and exec drains leave it to that process */
    bool sst_refused;           /* the peer refused the port over SST before the TCP fallback
                                   (event thread): once TCP connects, the port is cached (§6d) */
    bool refused_via_helper;    /* ... and the refusal came through sstd: tell it (TCPONLY) */
    ino_t ino;                  /* inode of the app's socketpair end: detects stale entries */
    dev_t dev;                  /* and its device (sockfs): both name the socket for certain */
    int family;                 /* AF_INET or AF_INET6, as the app's socket */
    int sotype_flags;           /* always SOCK_STREAM; kept for SO_TYPE */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct sockaddr_storage local;   /* written by the event thread before state = CONNECTED */
    socklen_t local_len;
    atomic_int local_fill;      /* 0, 1 while getsockname fills local from the route, 2 after */
    int pump_fd;                /* our socketpair end (event thread) */
    size_t filler;              /* bytes queued from the app end to hold back POLLOUT */
    int app_fd;                 /* the app's fd number at connect() (SO_SNDBUF restore) */
    atomic_int sndbuf;          /* SO_SNDBUF value the app end gets when the connection is up */
    const struct shim_transport *tr;
    void *tr_state;             /* the transport's own */
    int net_fd;                 /* tcp transport's socket while it lives, else -1 (event thread) */
    struct shim_spump *spump;   /* the sst transport's pump while it runs, else NULL (event
                                   thread; getsockopt(TCP_INFO) reads the stream through it) */
    int n_opts;
    struct shim_opt opts[SHIM_CONN_MAX_OPTS];
    char why[120];              /* why this transport (logged; smcss-style reason) */
    struct shim_conn *next;     /* event-thread submission queue */
};

void shim_conn_ref(struct shim_conn *c);
void shim_conn_unref(struct shim_conn *c);

/* The connect() path for a selected destination: builds the socketpair, swaps it onto fd,
 * submits it to the event thread.  Returns 0 (blocking socket, connected), or -1 with errno
 * (EINPROGRESS for a non-blocking socket, or the failure). */
int shim_conn_open(int fd, const struct sockaddr *sa, socklen_t len, const struct shim_transport *tr,
                   const char *why);
/* The connect() path when the connection already exists behind app_end (one end of a Unix
 * stream socketpair whose other end some other party pumps, e.g. sstd): swaps app_end onto fd
 * (the caller still closes app_end), records the connection as connected, and answers as
 * connect() would: 0, or -1/EINPROGRESS for a non-blocking socket (writable at once).  With
 * out, *out gets the connection with a reference of the caller's (only when adopted). */
int shim_conn_adopt(int fd, const struct sockaddr *sa, socklen_t len, int app_end,
                    const struct shim_transport *tr, const char *why, struct shim_conn **out);
/* connect() again on a replaced fd: EALREADY / EISCONN / the pending error, as TCP does.
 * Returns 1 when the fd was restored to a fresh TCP socket and connect should proceed. */
int shim_conn_reconnect(int fd, struct shim_conn *c);
/* The entry for fd if it is a replaced connection and still the same socket, else NULL.  Inline
 * so that the answer for every other fd is one table load inside the hook. */
struct shim_conn *shim_conn_check(int fd, uintptr_t v);
static inline struct shim_conn *shim_conn_lookup(int fd)
{
    uintptr_t v = shim_fd_get(fd);
    return SHIM_FD_IS_CONN(v) ? shim_conn_check(fd, v) : NULL;
}

/* Remembers an int option for getsockopt and the transport (any thread; locked). */
void shim_conn_opt_set(struct shim_conn *c, int level, int name, int value);
bool shim_conn_opt_get(const struct shim_conn *c, int level, int name, int *value);
/* Whether the app turned SO_KEEPALIVE on for c, and its TCP_KEEPIDLE, TCP_KEEPINTVL (seconds)
 * and TCP_KEEPCNT in p -- the kernel's defaults for those it did not set. */
bool shim_keepalive_params(const struct shim_conn *c, int p[3]);
/* Whether level/name is one of those four options. */
bool shim_opt_is_keepalive(int level, int name);
/* Copies the remembered options into out (SHIM_CONN_MAX_OPTS entries); returns the count. */
int shim_conn_opt_copy(const struct shim_conn *c, struct shim_opt *out);

/* Event-thread callbacks, see transport.h. */
void shim_conn_up(struct shim_conn *c, const struct sockaddr *local, socklen_t len);
void shim_conn_fail(struct shim_conn *c, int err);
void shim_conn_fallback(struct shim_conn *c, const char *why, bool peer_lacks_sst);
/* The SST peer refused the port (it speaks SST; nothing takes that port): ECONNREFUSED in
 * strict mode, said at info level only (kernel TCP's own answer); auto mode tries TCP, as
 * shim_conn_fallback. */
void shim_conn_port_refused(struct shim_conn *c, const char *why);
/* Event thread: c's port refused over SST and its TCP fallback connected: caches the port as
 * served by TCP only (shim_conn_up calls it when c->sst_refused). */
void shim_conn_note_tcp_only(struct shim_conn *c);
void shim_conn_done(struct shim_conn *c, int err);

/* The transport ended with err (the peer reset the stream, the channel died): called by the
 * pump with its end of the app's socketpair still open, just before it closes it, so that the
 * app's read fails with ECONNRESET -- after every byte delivered before -- instead of reading
 * a clean EOF (shim_reset_arm).  arg is the connection.  Without it (the app shut its write
 * side, its fd number no longer names the socket) the app reads EOF and SO_ERROR says err. */
void shim_conn_reset_app(void *arg, int pump_end, int err);

/* A write (write, send, sendto) on replaced fd v, the app's flags (hook_write.c): a reset
 * still pending on the socket is the answer of the first one that fails, as with TCP. */
ssize_t shim_write_conn(int fd, uintptr_t v, const void *buf, size_t n, int flags, bool is_write);

#endif
