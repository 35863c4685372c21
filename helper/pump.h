/* A pump moves bytes both ways between a local socket and an SST stream, with bounded buffers
 * and half-close mapped in both directions (used by the hand-off and by the gateway). */
#ifndef SSTD_PUMP_H
#define SSTD_PUMP_H

#include <sys/socket.h>
#include <unistd.h>

#include "sstd.h"

#define SSTD_PUMP_BUF 65536      /* per direction: the most a pump holds outside kernel and stream */

struct sst_stream;
struct sstd_pump;

/* Told once when an outgoing stream is answered: 0 (CONNECTED) or the error (REFUSED, TIMEOUT...). */
typedef void (*sstd_pump_answer_fn)(void *arg, struct sstd_pump *p, int err);

enum sstd_pump_kind { SSTD_PUMP_HANDOFF = 0, SSTD_PUMP_GATEWAY };

struct sstd_pump {
    struct sstd *d;
    enum sstd_pump_kind kind;
    struct sstd_peer *peer;
    struct sst_stream *s;
    int fd;
    struct event *rev, *wev;
    bool fd_connecting;           /* gateway: waiting for the local TCP connect */
    bool fd_eof, fd_wr_shut, st_eof, st_wr_shut, connected;
    bool fd_gone;                 /* hand-off: the client closed its end entirely (or died) */
    bool fd_readable;             /* the local socket may hold bytes: set by its read event,
                                     cleared by a read that came back short (see pump_move) */
    bool stopping;                /* sstd is stopping: what the stream has for the client goes,
                                     then the stream ends (sstd_pumps_stop) */
    bool fd_watched;              /* gateway: after the local server's FIN, its socket is in
                                     the error watch: its RST resets the stream (errwatch) */
    size_t to_fd_off, to_fd_len;
    size_t to_st_off, to_st_len;
    size_t to_st_held;            /* of to_st_len: written to a stream not answered yet (kept for a retry) */
    bool retried;                 /* hand-off: the stream was opened again once already */
    uint64_t bytes_up, bytes_down;   /* fd -> stream, stream -> fd */
    pid_t owner_pid;
    /* Hand-off: a stream error is reported to the owner's shim (CONNECT ... RESET FD DEV INO:
     * the app's fd number and its socket, echoed back with our end, sstd_control_pass_reset). */
    bool notify;
    bool shut_on_empty;           /* MARK SHUTWR: the client's writing is over once the socket
                                     is read empty (its shim keeps the end open for a reset) */
    bool linger0;                 /* MARK LINGER0: the client's close resets the stream */
    int utimeout_ms;              /* the app's TCP_USER_TIMEOUT (0: none), for every stream */
    int keepalive[3];             /* the app's keepalive: idle, intvl (s), cnt (idle 0: off) */
    int notify_fd;
    unsigned long long notify_dev, notify_ino;
    bool st_failed;               /* the stream failed: the end is reported to the client */
    int st_err;                   /* hand-off: the stream failed with bytes still for the client
                                     (in the buffer or the stream): they go first, then the end
                                     (0: none) */
    char dest[SST_ADDR_STRLEN + 8];
    sst_time_t started;
    sstd_pump_answer_fn answer;
    void *answer_arg;
    /* Re-entrancy: an SST call made while pumping may run this pump's stream callback (the
     * engine dispatches callbacks at the end of API calls made outside one, docs/api.md); the
     * nested call only records its events, and ending the pump waits until the outer step is
     * done, so a pump is never freed under the code that is using it. */
    bool busy, fin, fin_reset;
    int fin_err;
    unsigned pending_ev;
    unsigned nested;              /* stream callbacks that arrived while busy (tests, debugging) */
    struct sstd_reg_wait *reg_wait;   /* listen.c: its local connect waits for the server's shim */
    struct sstd_pump *next;
    /* Last: pump_new zeroes only what comes before (128 KiB of calloc per connection was a
     * tenth of sstd's CPU in a connection-rate run). */
    uint8_t to_fd[SSTD_PUMP_BUF];
    uint8_t to_st[SSTD_PUMP_BUF];
};

/* Opens a stream to service `port` at `peer` and pumps it to fd (which the pump now owns). */
struct sstd_pump *sstd_pump_connect(struct sstd *d, struct sstd_peer *peer, uint16_t port, int fd,
                                    pid_t owner, sstd_pump_answer_fn answer, void *arg);
/* Gateway: accepts the next stream waiting on l (NULL if none) into a pump without a socket yet;
 * then sstd_pump_attach_fd gives it the connecting local TCP socket, or sstd_pump_abort resets. */
struct sst_listener;
struct sstd_pump *sstd_pump_accept(struct sstd *d, struct sst_listener *l, uint16_t port);
int sstd_pump_attach_fd(struct sstd_pump *p, int fd);
void sstd_pump_abort(struct sstd_pump *p);
/* Gateway: the local service cannot be reached: the stream is refused (the initiator gets
 * SST_ERR_REFUSED, its program ECONNREFUSED) and the pump ends. */
void sstd_pump_refuse(struct sstd_pump *p);
/* Prefixes the bytes toward fd (PROXY v2 header); call before any data flowed. */
void sstd_pump_prefix(struct sstd_pump *p, const uint8_t *buf, size_t len);
/* Forgets the answer callback (its owner went away). */
void sstd_pump_cancel_answer(struct sstd *d, void *arg);
/* Frees every pump without notifying anyone (daemon exit). */
void sstd_pumps_free(struct sstd *d);
/* sstd is stopping (SIGTERM): every pump ends now.  A hand-off first writes what the stream
 * already holds for its client (the client reads it), then its stream is reset and the reset
 * passed back (RESET), so that the program's read fails at once -- not when sstd has exited,
 * up to the 3 s its channels' close may take -- and after every byte sstd received for it.
 * A gateway resets its stream and its local connection (RST) at once. */
void sstd_pumps_stop(struct sstd *d);
/* After API calls made outside engine callbacks: run deferred callbacks, flush, re-arm. */
void sstd_kick(struct sstd *d);

/* MARK DEV INO WHAT (control.c): the client's shim tells sstd about the app's use of the
 * hand-off whose RESET words named DEV/INO: "SHUTWR", "LINGER0", "LINGER", "UTIMEOUT=MS",
 * "KEEPALIVE=IDLE,INTVL,CNT".
 * False if no such pump or WHAT is unknown. */
bool sstd_pump_mark(struct sstd *d, unsigned long long dev, unsigned long long ino, const char *what);
/* The app's TCP_USER_TIMEOUT for a hand-off (0: off): its stream's user timeout
 * (sst_stream_set_user_timeout), now and for a stream opened again (reconnect). */
void sstd_pump_set_user_timeout(struct sstd_pump *p, int ms);
/* The app's keepalive for a hand-off (ka: idle and intvl in seconds, cnt; idle 0: off): its
 * stream's (sst_stream_set_keepalive), now and for a stream opened again. */
void sstd_pump_set_keepalive(struct sstd_pump *p, const int ka[3]);

/* INFO DEV INO (control.c): the numbers of the hand-off whose RESET words named DEV/INO -- its
 * stream's and its channel's, as one JSON object appended to out (docs/helper.md "INFO"), for
 * the shim's getsockopt(TCP_INFO).  False if no such pump. */
struct evbuffer;
bool sstd_pump_info(struct sstd *d, unsigned long long dev, unsigned long long ino, struct evbuffer *out);

/* Closes sstd's end of a hand-off (or a descriptor a client passed) for good, as an end of
 * stream for the app: shut down first, because the client's shim holds a duplicate of it
 * (docs/helper.md "sstd's death"), so the close alone would not end the app's connection.
 * Not at sstd's exit, and not for an end passed back for a reset: those must not read as EOF. */
static inline void sstd_handoff_close(int fd)
{
    shutdown(fd, SHUT_RDWR);
    close(fd);
}

#endif
