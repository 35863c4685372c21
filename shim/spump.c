/* The fd <-> SST stream pump (spump.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <utlist.h>

#include "engine.h"
#include "errwatch.h"
#include "fdtable.h"
#include "spump.h"

#define SPUMP_BUF 65536

struct shim_spump {
    struct shim_spump *prev, *next;  /* live_pumps */
    int fd;
    struct sst_stream *s;
    shim_spump_done_fn done;
    void *arg;
    bool fd_eof, net_eof;
    bool discard;                    /* the app shut its read side: what arrives is dropped */
    const atomic_bool *abort_flag;   /* set: the app's close is abortive (SO_LINGER 0) */
    struct shim_reserve *reserve;    /* on: the last byte of the app end's queue is not data */
    bool (*exit_wait)(void *arg);    /* true: the exit drain waits for the app end's EOF */
    shim_spump_error_fn on_error;    /* told of a stream error before fd closes */
    bool watch_rst;                  /* fd is a TCP socket: after its FIN, watch for its RST */
    struct shim_errwatch rst_watch;
    struct event *ev_rd, *ev_wr;
    size_t to_net_off, to_net_len;   /* fd bytes the stream has not taken yet */
    size_t to_fd_off, to_fd_len;     /* stream bytes the fd has not taken yet */
    /* Re-entrancy: an SST call made from a libevent callback dispatches the engine's callbacks
     * before it returns (docs/api.md "Callbacks"), this pump's own included.  While a handler
     * runs (busy) on_stream only records its events, and ending the pump waits until the
     * outermost handler is done, so the pump is never freed under code that still uses it. */
    bool busy, ending, end_reset;
    int end_err;
    unsigned pending_ev;
    unsigned nested;                 /* stream callbacks that arrived while busy (tests) */
    uint8_t to_net[SPUMP_BUF];
    uint8_t to_fd[SPUMP_BUF];
};

/* Every pump not yet finished (event thread only), for the exit drain. */
static struct shim_spump *live_pumps;

/* Ends the pump: the stream is closed (or reset), the fd closed, then the owner is told.  Only
 * from spump_leave: callbacks the calls below run for this stream just record (busy). */
static void spump_finish(struct shim_spump *p, int err, bool reset)
{
    p->busy = true;
    shim_errwatch_del(&p->rst_watch);
    DL_DELETE(live_pumps, p);
    event_free(p->ev_rd);
    event_free(p->ev_wr);
    shim_engine_sync_time();
    if (err || reset)
        sst_stream_shutdown(p->s, SST_SHUT_RESET);
    /* The stream failed after its end of stream reached the app: TCP's RST in CLOSE_WAIT,
     * which says EPIPE (shim_reset_after_fin). */
    if (err && !reset && p->net_eof)
        err = EPIPE;
    sst_stream_close(p->s);
    shim_engine_kick();
    /* err without reset: the stream failed (the peer's reset, a dead channel), not the app. */
    if (err && !reset && p->on_error)
        p->on_error(p->arg, p->fd, err);
    if (!err && !reset && p->reserve && atomic_load(&p->reserve->on)) {
        char b;
        ssize_t r = recv(p->fd, &b, 1, MSG_DONTWAIT);   /* a clean end: no reset for the app */
        (void)r;
    }
    shim_fd_close_own(p->fd);
    shim_spump_done_fn done = p->done;
    void *arg = p->arg;
    free(p);
    done(arg, err);
}

/* Asks for the end; it happens when the outermost handler leaves (the first request wins). */
static void spump_end(struct shim_spump *p, int err, bool reset)
{
    if (p->ending)
        return;
    p->ending = true;
    p->end_err = err;
    p->end_reset = reset;
}

static void on_stream_events(struct shim_spump *p, unsigned ev);
static void on_rst(void *arg);

static void spump_enter(struct shim_spump *p) { p->busy = true; }

/* Leaves a handler: stream events recorded meanwhile are handled, then the pump ends if asked. */
static void spump_leave(struct shim_spump *p)
{
    while (!p->ending && p->pending_ev) {
        unsigned ev = p->pending_ev;
        p->pending_ev = 0;
        on_stream_events(p, ev);
    }
    p->busy = false;
    if (p->ending)
        spump_finish(p, p->end_err, p->end_reset);
}

/* Whether every copy of the app's end is closed (POLLHUP: both directions shut). */
static bool app_gone(const struct shim_spump *p)
{
    return shim_fd_poll_now(p->fd, 0) & POLLHUP;
}

static bool both_done(const struct shim_spump *p)
{
    return p->fd_eof && p->net_eof && p->to_fd_len == 0 && p->to_net_len == 0;
}

/* fd -> stream: what the stream's send buffer takes; the rest waits for WRITABLE.  False if
 * the pump must end. */
static bool to_net(struct shim_spump *p)
{
    shim_engine_sync_time();
    while (p->to_net_len > 0) {
        sst_ssize_t w = sst_stream_write(p->s, p->to_net + p->to_net_off, p->to_net_len);
        if (w == SST_ERR_AGAIN)
            break;
        if (w < 0) {
            spump_end(p, shim_sst_errno((int)w), false);
            return false;
        }
        p->to_net_off += (size_t)w;
        p->to_net_len -= (size_t)w;
    }
    shim_engine_kick();
    if (p->to_net_len == 0 && !p->fd_eof)
        event_add(p->ev_rd, NULL);
    else
        event_del(p->ev_rd);
    return true;
}

static void fd_readable(struct shim_spump *p, int fd)
{
    size_t want = sizeof(p->to_net);
    bool reserved_eof = false;
    if (p->reserve && shim_reserve_enter(p->reserve)) {
        want = shim_fd_reserve_readable(fd, want, &reserved_eof);
        if (want == 0 && !reserved_eof) {
            shim_reserve_leave(p->reserve);
            return;                      /* the app's shutdown is right behind its byte */
        }
    }
    ssize_t n = reserved_eof ? 0 : recv(fd, p->to_net, want, MSG_DONTWAIT);
    if (p->reserve)
        shim_reserve_leave(p->reserve);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            spump_end(p, errno, true);
        return;
    }
    if (n == 0) {
        if (p->abort_flag && atomic_load(p->abort_flag) && app_gone(p)) {
            spump_end(p, 0, true);       /* closed with SO_LINGER 0: RST, not FIN */
            return;
        }
        /* shutdown(SHUT_WR) or close on the other end: the stream's write side closes after
         * the bytes already handed to it, like a TCP FIN. */
        p->fd_eof = true;
        event_del(p->ev_rd);
        shim_engine_sync_time();
        sst_stream_shutdown(p->s, SST_SHUT_WRITE);
        shim_engine_kick();
        if (p->watch_rst && !p->net_eof)
            shim_errwatch_add(event_get_base(p->ev_rd), &p->rst_watch, fd);
        if (both_done(p))
            spump_end(p, 0, false);
        return;
    }
    p->to_net_off = 0;
    p->to_net_len = (size_t)n;
    (void)to_net(p);
}

/* stream -> fd: as much as the fd takes; the rest waits for the fd's EV_WRITE. */
static void to_fd(struct shim_spump *p)
{
    for (;;) {
        while (p->to_fd_len > 0) {
            ssize_t n = send(p->fd, p->to_fd + p->to_fd_off, p->to_fd_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    event_add(p->ev_wr, NULL);
                    return;
                }
                if (errno == EPIPE && !app_gone(p)) {
                    /* shutdown(SHUT_RD) by the app, which still holds its end: TCP keeps the
                     * connection and drops what arrives; a reset would lose what the app
                     * writes after it. */
                    p->discard = true;
                    p->to_fd_len = 0;
                    break;
                }
                /* The other end closed with data still arriving: reset, as TCP sends RST. */
                spump_end(p, 0, true);
                return;
            }
            p->to_fd_off += (size_t)n;
            p->to_fd_len -= (size_t)n;
        }
        if (p->net_eof)
            break;
        shim_engine_sync_time();
        sst_ssize_t r = sst_stream_read(p->s, p->to_fd, sizeof(p->to_fd));
        shim_engine_kick(); /* reading opens the window: the update may go out now */
        if (r == SST_ERR_AGAIN)
            return;
        if (r < 0) {
            spump_end(p, shim_sst_errno((int)r), false);
            return;
        }
        if (r == 0) {
            p->net_eof = true;
            shim_errwatch_del(&p->rst_watch);   /* shut both ways, fd hangs up: no error */
            shutdown(p->fd, SHUT_WR);
            break;
        }
        p->to_fd_off = 0;
        p->to_fd_len = p->discard ? 0 : (size_t)r;
    }
    if (both_done(p))
        spump_end(p, 0, false);
    else if (p->net_eof && p->to_fd_len == 0 && sst_stream_error(p->s) != 0)
        spump_end(p, shim_sst_errno(sst_stream_error(p->s)), false);   /* EPIPE: spump_finish */
}

static void on_fd_readable(evutil_socket_t fd, short what, void *arg)
{
    struct shim_spump *p = arg;
    (void)what;
    spump_enter(p);
    fd_readable(p, fd);
    spump_leave(p);
}

static void on_fd_writable(evutil_socket_t fd, short what, void *arg)
{
    struct shim_spump *p = arg;
    (void)fd;
    (void)what;
    spump_enter(p);
    to_fd(p);
    spump_leave(p);
}

static void on_stream_events(struct shim_spump *p, unsigned ev)
{
    /* A failed stream is read out first: the bytes that arrived before the failure, then its
     * error (to_fd ends the pump) or, had the peer's end arrived, EOF -- the write side then
     * fails with EPIPE at the app's next write, as TCP's RST in CLOSE_WAIT. */
    if ((ev & SST_EV_WRITABLE) && !(ev & SST_EV_ERROR) && !to_net(p))
        return;
    if (ev & (SST_EV_READABLE | SST_EV_EOF | SST_EV_ERROR))
        to_fd(p);
}

/* Stream events arrive deferred, after the engine finished the input that caused them -- or
 * inside an SST call one of our handlers made: then they wait for that handler (busy). */
static void on_stream(struct sst_stream *s, unsigned ev, void *arg)
{
    struct shim_spump *p = arg;
    (void)s;
    if (p->busy) {
        p->pending_ev |= ev;
        p->nested++;
        return;
    }
    spump_enter(p);
    on_stream_events(p, ev);
    spump_leave(p);
}

struct shim_spump *shim_spump_start(struct event_base *base, int fd, struct sst_stream *s,
                                    shim_spump_done_fn done, void *arg)
{
    /* Only the header is zeroed: clearing the two 64 KiB buffers of every new stream was a
     * tenth of a shimmed connect/request/close's CPU (memset plus the page faults behind it). */
    struct shim_spump *p = malloc(sizeof(*p));
    if (!p)
        return NULL;
    memset(p, 0, offsetof(struct shim_spump, to_net));
    p->fd = fd;
    p->s = s;
    p->rst_watch.fn = on_rst;
    p->rst_watch.arg = p;
    p->rst_watch.fd = -1;
    p->done = done;
    p->arg = arg;
    p->ev_rd = event_new(base, fd, EV_READ | EV_PERSIST, on_fd_readable, p);
    p->ev_wr = event_new(base, fd, EV_WRITE, on_fd_writable, p);
    if (!p->ev_rd || !p->ev_wr || event_add(p->ev_rd, NULL) < 0) {
        if (p->ev_rd)
            event_free(p->ev_rd);
        if (p->ev_wr)
            event_free(p->ev_wr);
        free(p);
        return NULL;
    }
    DL_APPEND(live_pumps, p);
    sst_stream_set_callback(s, on_stream, p);
    /* Bytes may already wait (they came with the stream's first packets): look from the loop,
     * so `done` never runs before this returns. */
    event_active(p->ev_wr, EV_WRITE, 0);
    return p;
}

/* The TCP socket's RST after its FIN (errwatch.h): what the peer wrote after the local end
 * closed; the stream is reset, as TCP answers data for a closed socket. */
static void on_rst(void *arg)
{
    struct shim_spump *p = arg;
    spump_enter(p);
    spump_end(p, 0, true);
    spump_leave(p);
}

void shim_spump_watch_rst(struct shim_spump *p)
{
    p->watch_rst = true;
}

void shim_spump_abort_on_close(struct shim_spump *p, const atomic_bool *flag)
{
    p->abort_flag = flag;
}

void shim_spump_reserve(struct shim_spump *p, struct shim_reserve *flag)
{
    p->reserve = flag;
}

void shim_spump_on_error(struct shim_spump *p, shim_spump_error_fn fn)
{
    p->on_error = fn;
}

void shim_spump_wait_at_exit(struct shim_spump *p, bool (*accepted)(void *arg))
{
    p->exit_wait = accepted;
}

struct sst_stream *shim_spump_stream(const struct shim_spump *p, bool *app_done, bool *peer_done)
{
    *app_done = p->fd_eof;
    *peer_done = p->net_eof;
    return p->s;
}

/* Whether the app's end of the pump is closed (or shut for writing): what it wrote up to that
 * end is still to be handed over. */
static bool app_end_finished(const struct shim_spump *p)
{
    return shim_fd_poll_now(p->fd, POLLRDHUP) & (POLLRDHUP | POLLHUP | POLLERR);
}

/* A connection's app end is still open after this image closed its copies: a client's in a
 * forked child, in the program an exec starts (a descriptor without FD_CLOEXEC), or passed to
 * another process; a server's (an SST_LISTEN bridge, exit_wait) accepted or still to be
 * accepted by another process holding the listening socket -- its loopback peer has not ended
 * (a listener closed everywhere resets what it never accepted).  The keeper carries it on
 * (keeper.h); the exit drain does not wait for it. */
static bool orphaned(const struct shim_spump *p)
{
    return p->exit_wait ? !app_end_finished(p) : !app_gone(p);
}

bool shim_spump_exit_pending(bool keep_orphans)
{
    bool pending = false;
    struct shim_spump *p, *tmp;
    DL_FOREACH_SAFE(live_pumps, p, tmp) {
        if (p->busy || (keep_orphans && orphaned(p)))
            continue;                    /* busy cannot be: exit checks run from a timer */
        if (p->fd_eof && p->to_net_len == 0) {
            /* Everything the app wrote is in the stream, and nobody is left to read: give it
             * back now (graceful close, the stream delivers on its own) instead of waiting
             * for the peer's end of stream.  A client end still open elsewhere after a
             * half-close is an orphan (above): its holder may still read the answer. */
            spump_enter(p);
            spump_end(p, 0, false);
            spump_leave(p);
        } else if (p->fd_eof || app_end_finished(p) || (p->exit_wait && p->exit_wait(p->arg))) {
            pending = true;              /* still reading the app's last bytes */
        }
        /* else a server-side connection the app never accepted, or (no keeper) a client end
         * still open elsewhere: not waited for. */
    }
    return pending;
}

int shim_spump_orphans(void)
{
    int n = 0;
    struct shim_spump *p;
    DL_FOREACH(live_pumps, p)
        if (!p->busy && orphaned(p))
            n++;
    return n;
}

void shim_spump_after_fork(void)
{
    live_pumps = NULL;                   /* the parent's; leaked in the child */
}
