/* Pumps between a local socket and an SST stream.  Each direction has one bounded buffer: we read
 * from the source only while it has room, so a slow reader pushes back through the stream's flow
 * control (paper §4.3.6) or the kernel socket buffer -- never into unbounded memory.  A FIN on
 * either side becomes a half-close on the other; a client that vanishes while the peer may still
 * send resets the stream (paper §4.3.8), as TCP answers data for a closed socket with RST. */
#define _GNU_SOURCE
#include "pump.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "err.h"
#include "sst.h"

static void pump_step(struct sstd_pump *p);
static void fd_cb(evutil_socket_t fd, short what, void *arg);
static void stream_cb(struct sst_stream *s, unsigned events, void *arg);

void sstd_kick(struct sstd *d)
{
    sst_ctx_dispatch(sstd_ctx(d));
    sstd_rearm(d);
}

static void pump_unlink(struct sstd_pump *p)
{
    for (struct sstd_pump **pp = &p->d->pumps; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

/* ---- the error watch ---------------------------------------------------------------------
 * A gateway stops reading its local socket once the server's FIN came (EOF stays readable: a
 * level-triggered read event would fire forever), but the server's kernel answers what the
 * peer writes after that with RST, and kernel TCP fails the client's next write at once
 * (EPIPE).  Without a watch the pump learnt of the RST only from its own next write, one client
 * write late.  libevent cannot wait for EPOLLERR/EPOLLHUP alone, and an edge-triggered read
 * event may not share the fd with the level-triggered write event, so such sockets go into a
 * private epoll set with no event bits (epoll reports only an error or a hang-up there), whose
 * fd is in the loop. */
static void errwatch_cb(evutil_socket_t fd, short what, void *arg);

static void errwatch_del(struct sstd_pump *p)
{
    if (!p->fd_watched)
        return;
    epoll_ctl(event_get_fd(p->d->errwatch_ev), EPOLL_CTL_DEL, p->fd, NULL);
    p->fd_watched = false;
}

static void errwatch_add(struct sstd_pump *p)
{
    struct sstd *d = p->d;
    if (p->fd_watched)
        return;
    if (!d->errwatch_ev) {
        int fd = epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0)
            return;   /* then the RST is seen at the next write, as before */
        d->errwatch_ev = event_new(d->base, fd, EV_READ | EV_PERSIST, errwatch_cb, d);
        if (!d->errwatch_ev || event_add(d->errwatch_ev, NULL) < 0) {
            if (d->errwatch_ev)
                event_free(d->errwatch_ev);
            d->errwatch_ev = NULL;
            close(fd);
            return;
        }
    }
    struct epoll_event e = { .events = 0, .data.ptr = p };
    p->fd_watched = epoll_ctl(event_get_fd(d->errwatch_ev), EPOLL_CTL_ADD, p->fd, &e) == 0;
}

static void pump_release(struct sstd_pump *p)
{
    if (p->reg_wait)
        sstd_reg_pump_gone(p->reg_wait);
    errwatch_del(p);
    if (p->rev)
        event_free(p->rev);
    if (p->wev)
        event_free(p->wev);
    if (p->fd >= 0)
        close(p->fd);
    free(p);
}

/* The errno a failed hand-off stream (err) reaches its client with (RESET, docs/helper.md
 * "Resets").  After the stream's end of stream reached the client (its FIN, then the reset) TCP
 * says EPIPE, not ECONNRESET: tcp_reset in CLOSE_WAIT; the client's reads then end with EOF. */
static int reset_errno(const struct sstd_pump *p, int err)
{
    if (p->fd_wr_shut)
        return EPIPE;
    switch (err) {
    case SST_ERR_REFUSED:
        return ECONNREFUSED;
    case SST_ERR_TIMEOUT:
        return ETIMEDOUT;
    case SST_ERR_RESET:
        return ECONNRESET;
    default:
        return ECONNABORTED;
    }
}

/* Shuts the client's end of a hand-off down both ways and empties it, so that its close reads
 * as EOF to the client (unread bytes would make it a reset: af_unix's unix_release_sock). */
static void handoff_shut(struct sstd_pump *p)
{
    shutdown(p->fd, SHUT_RDWR);   /* EOF for the app although its shim holds a copy */
    if (!p->fd_wr_shut)
        return;   /* only after the FIN is that EOF the whole answer (see reset_errno) */
    char b[4096];
    while (recv(p->fd, b, sizeof b, MSG_DONTWAIT) > 0)
        ;
}

/* Ends the pump.  reset: abort the stream toward the peer instead of closing it gracefully. */
static void pump_finish(struct sstd_pump *p, bool reset, int err)
{
    struct sstd *d = p->d;
    p->busy = true;   /* callbacks the calls below run for this pump only record events */
    if (p->answer) {
        sstd_pump_answer_fn fn = p->answer;
        p->answer = NULL;
        fn(p->answer_arg, p, err ? err : SST_ERR_CLOSED);
    }
    if (p->s) {
        if (reset)
            sst_stream_shutdown(p->s, SST_SHUT_RESET);
        sst_stream_close(p->s);
        p->s = NULL;
    }
    if (p->st_failed && p->notify && p->kind == SSTD_PUMP_HANDOFF && p->fd >= 0 && !p->fd_gone &&
        sstd_control_pass_reset(d, p->owner_pid, p->fd, p->notify_fd, p->notify_dev, p->notify_ino,
                                reset_errno(p, err)))
        SSTD_DEBUG("pump %s: stream failed (%s); end passed back to pid %d for a reset", p->dest,
                   sst_strerror(err), (int)p->owner_pid);
    else if (p->kind == SSTD_PUMP_HANDOFF && p->fd >= 0)
        handoff_shut(p);
    if (reset && p->fd >= 0 && p->kind == SSTD_PUMP_GATEWAY) {
        /* Abortive close: the local server sees RST, as it would from a TCP client. */
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    SSTD_DEBUG("pump %s done (%s): %llu bytes up, %llu down", p->dest, reset ? "reset" : "closed",
               (unsigned long long)p->bytes_up, (unsigned long long)p->bytes_down);
    if (p->peer) {
        if (p->peer->streams)
            p->peer->streams--;
        /* A local use: our channel stays warm for the idle period after the last stream.  A
         * gateway stream does not make us want the initiator's channel: that is its choice. */
        if (p->kind == SSTD_PUMP_HANDOFF)
            sstd_peer_want(p->peer, sstd_now(d) + SST_SEC(d->opts.idle_sec));
    }
    pump_unlink(p);
    pump_release(p);
    sstd_stop_maybe(d);
}

/* The local side read EOF.  A Unix socketpair reports POLLHUP only when the other end is gone
 * entirely (closed or its process died); a mere shutdown(SHUT_WR) leaves it clear. */
static bool fd_hung_up(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR));
}

/* The fd events persist (EV_PERSIST) and change only when what the pump waits for changes:
 * adding or deleting them at every step cost two epoll_ctl calls per readable event. */
static void update_events(struct sstd_pump *p)
{
    if (p->fd_connecting)
        return;
    bool want_read = !p->fd_eof && !p->stopping && p->to_st_off + p->to_st_len < SSTD_PUMP_BUF;
    bool want_write = p->to_fd_len > 0;
    if (want_read != (event_pending(p->rev, EV_READ, NULL) != 0))
        (void)(want_read ? event_add(p->rev, NULL) : event_del(p->rev));
    if (want_write != (event_pending(p->wev, EV_WRITE, NULL) != 0))
        (void)(want_write ? event_add(p->wev, NULL) : event_del(p->wev));
}

/* Asks for the pump to end once the current step is over (see busy in pump.h). */
static void pump_end(struct sstd_pump *p, bool reset, int err)
{
    if (p->fin)
        return;
    p->fin = true;
    p->fin_reset = reset;
    p->fin_err = err;
}

/* A hand-off keeps what it wrote to a stream the peer has not answered yet, so that the stream
 * can be opened again once if the channel turns out to be dead (see reconnect). */
static bool keeps_for_retry(const struct sstd_pump *p)
{
    return p->kind == SSTD_PUMP_HANDOFF && !p->connected && !p->retried;
}

/* The peer answers at last: what was kept for a retry is delivered for good. */
static void drop_held(struct sstd_pump *p)
{
    p->to_st_off += p->to_st_held;
    p->to_st_len -= p->to_st_held;
    p->to_st_held = 0;
}

/* A hand-off stream reset before the peer answered it, on a channel that is gone: the peer's
 * sstd restarted (or was killed) while ours still held the channel, so the new process did not
 * know the channel and reset it -- it never saw this stream.  Kernel TCP to a restarted server
 * just works for a new connection; so does this one: opened again, once, on a fresh channel,
 * with every byte written so far (held since, at most the pump's buffer).  A stream the peer
 * answered (CONNECTED) or refused is never opened twice. */
static bool reconnect(struct sstd_pump *p, int err)
{
    if (p->kind != SSTD_PUMP_HANDOFF || p->connected || p->retried || err != SST_ERR_RESET ||
        p->bytes_down || p->st_eof || !p->peer || p->peer->state == SSTD_PEER_UP)
        return false;
    char service[8];
    snprintf(service, sizeof service, "%s", strrchr(p->dest, '/') + 1);
    p->retried = true;
    p->bytes_up -= p->to_st_held;
    p->to_st_held = 0;
    p->st_wr_shut = false;
    SSTD_INFO("stream %s: reset with its channel before the peer answered; opening it again", p->dest);
    p->s = sst_connect(sstd_ctx(p->d), &p->peer->addr, service, stream_cb, p);
    if (p->s && p->utimeout_ms > 0)
        sstd_pump_set_user_timeout(p, p->utimeout_ms);
    if (p->s && p->keepalive[0] > 0)
        sstd_pump_set_keepalive(p, p->keepalive);
    return p->s != NULL;
}

/* Moves what can move now; returns early when the pump must end (p->fin). */
static void pump_move(struct sstd_pump *p)
{
    bool progress = true;
    while (progress) {
        progress = false;
        /* An emptied buffer starts over at its beginning (no ring: one copy in, one copy out). */
        if (p->to_st_len == 0)
            p->to_st_off = 0;
        if (p->to_fd_len == 0)
            p->to_fd_off = 0;
        /* fd -> buffer.  Only while the socket may hold bytes: a stream socket's read that
         * comes back short has emptied its queue, and bytes that arrive later make the
         * (level-triggered) read event fire again.  Reading anyway cost a failed read() per
         * stream event and per step: 2.7 per request of a request/response protocol. */
        if (!p->fd_connecting && !p->fd_eof && !p->stopping && p->fd_readable &&
            p->to_st_off + p->to_st_len < SSTD_PUMP_BUF) {
            size_t room = SSTD_PUMP_BUF - p->to_st_off - p->to_st_len;
            ssize_t n = read(p->fd, p->to_st + p->to_st_off + p->to_st_len, room);
            if (n >= 0 && (size_t)n < room)
                p->fd_readable = false;
            if (p->shut_on_empty && ((n >= 0 && (size_t)n < room) || (n < 0 && errno == EAGAIN))) {
                /* MARK SHUTWR: read empty, the client's writing is over (its FIN). */
                p->fd_eof = true;
                progress = true;
            }
            if (n > 0) {
                p->to_st_len += (size_t)n;
                progress = true;
            } else if (n == 0) {
                p->fd_eof = true;
                progress = true;
                if (p->kind == SSTD_PUMP_HANDOFF && fd_hung_up(p->fd)) {
                    /* The client is gone (closed, exited, killed).  What it wrote still goes,
                     * as the kernel sends a closed TCP socket's queue: a program that writes
                     * and exits at once must not lose its last bytes (resetting here dropped
                     * all but the first few KB of a 4 MB write-then-exit).  Nothing can be
                     * delivered to it any more: what the peer sends is dropped, and the
                     * stream, given back gracefully below, answers the peer's data after
                     * ours is delivered with a reset, as TCP answers a closed socket. */
                    p->fd_gone = true;
                    p->to_fd_len = 0;
                    if (p->linger0) {
                        /* SO_LINGER {1, 0}, then the close: an abortive close, as TCP's RST
                         * (what is unsent is dropped; the peer's read fails). */
                        SSTD_DEBUG("pump %s: the client closed with SO_LINGER {1, 0}: reset", p->dest);
                        pump_end(p, true, SST_ERR_RESET);
                        return;
                    }
                }
            } else if (n < 0 && errno == EAGAIN) {
                p->fd_readable = false;
            } else if (n < 0 && errno != EINTR) {
                SSTD_DEBUG("pump %s: local read: %s", p->dest, strerror(errno));
                pump_end(p, true, SST_ERR_RESET);
                return;
            }
        }
        /* buffer -> stream */
        if (p->s && !p->st_err && p->to_st_len > p->to_st_held) {
            sst_ssize_t n = sst_stream_write(p->s, p->to_st + p->to_st_off + p->to_st_held,
                                             p->to_st_len - p->to_st_held);
            if (n > 0) {
                if (keeps_for_retry(p)) {
                    p->to_st_held += (size_t)n;   /* until the answer: see reconnect */
                } else {
                    p->to_st_off += (size_t)n;
                    p->to_st_len -= (size_t)n;
                }
                p->bytes_up += (uint64_t)n;
                progress = true;
            } else if (n != SST_ERR_AGAIN) {
                SSTD_DEBUG("pump %s: stream write: %s", p->dest, sst_strerror((int)n));
                p->st_failed = true;
                pump_end(p, true, (int)n);
                return;
            }
        }
        if (p->s && !p->st_err && p->fd_eof && p->to_st_len == p->to_st_held && !p->st_wr_shut) {
            sst_stream_shutdown(p->s, SST_SHUT_WRITE); /* the client's FIN */
            p->st_wr_shut = true;
            if (p->kind == SSTD_PUMP_GATEWAY && !p->fd_wr_shut)
                errwatch_add(p);   /* the server's RST for what the peer still writes */
        }
        /* stream -> buffer */
        if (p->s && !p->fd_gone && !p->st_eof && p->to_fd_off + p->to_fd_len < SSTD_PUMP_BUF) {
            size_t room = SSTD_PUMP_BUF - p->to_fd_off - p->to_fd_len;
            sst_ssize_t n = room ? sst_stream_read(p->s, p->to_fd + p->to_fd_off + p->to_fd_len, room) : SST_ERR_AGAIN;
            if (n > 0) {
                p->to_fd_len += (size_t)n;
                p->bytes_down += (uint64_t)n;
                progress = true;
            } else if (n == 0) {
                p->st_eof = true;
                progress = true;
            } else if (n != SST_ERR_AGAIN) {
                SSTD_DEBUG("pump %s: stream read: %s", p->dest, sst_strerror((int)n));
                p->st_failed = true;
                pump_end(p, true, (int)n);
                return;
            }
        }
        /* buffer -> fd */
        if (!p->fd_connecting && p->to_fd_len > 0) {
            ssize_t n = write(p->fd, p->to_fd + p->to_fd_off, p->to_fd_len);
            if (n > 0) {
                p->to_fd_off += (size_t)n;
                p->to_fd_len -= (size_t)n;
                progress = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                SSTD_DEBUG("pump %s: local write: %s", p->dest, strerror(errno));
                pump_end(p, true, SST_ERR_RESET);
                return;
            }
        }
        if (!p->fd_connecting && p->st_eof && p->to_fd_len == 0 && !p->fd_wr_shut) {
            errwatch_del(p);          /* a socket shut both ways hangs up: no error */
            shutdown(p->fd, SHUT_WR); /* the peer's FIN */
            p->fd_wr_shut = true;
        }
    }
    if (p->st_err && (p->fd_gone || (p->to_fd_len == 0 && (!p->s || p->st_eof)))) {
        /* The failed stream's last bytes are the local end's; now the end: a hand-off's client
         * is told of it (pump_finish), a gateway's server gets RST -- unless the peer's end of
         * stream came first: then our FIN is out and a plain close keeps what the socket still
         * queues for the server (an abortive one would drop it); what the server writes after
         * it draws the kernel's RST, as from a TCP client that closed. */
        pump_end(p, p->kind == SSTD_PUMP_GATEWAY && !p->st_eof, p->st_err);
        return;
    }

    if (p->fd_eof && p->st_wr_shut && p->st_eof && p->fd_wr_shut)
        pump_end(p, false, 0);
    if (!p->fin && p->stopping && p->s && (p->to_fd_len == 0 || p->fd_gone)) {
        /* sstd stops: the client has every byte the stream held (the last read found nothing
         * more); now the stream ends with a reset, which the client reads next (a normal end
         * just above goes first). */
        p->st_failed = true;
        pump_end(p, true, SST_ERR_RESET);
        return;
    }
    /* A gone client's bytes are all in the stream (its FIN too): sst_stream_close delivers
     * them on its own.  A pending answer (CONNECTED or the refusal) is still waited for. */
    if (p->fd_gone && p->st_wr_shut && !p->answer)
        pump_end(p, false, 0);
}

/* Handles the stream events recorded in pending_ev; false once the pump must end. */
static bool take_events(struct sstd_pump *p)
{
    unsigned events = p->pending_ev;
    p->pending_ev = 0;
    if ((events & SST_EV_CONNECTED) && !p->connected) {
        p->connected = true;
        drop_held(p);
        if (p->kind == SSTD_PUMP_HANDOFF)
            sstd_port_answered(p->d, p->dest, sstd_now(p->d));   /* its next connections are up at once */
        if (p->answer) {
            sstd_pump_answer_fn fn = p->answer;
            p->answer = NULL;
            fn(p->answer_arg, p, 0);
        }
    }
    if ((events & SST_EV_ERROR) && p->s && !p->st_err) {
        int err = sst_stream_error(p->s);
        SSTD_DEBUG("stream %s: %s", p->dest, sst_strerror(err));
        bool up = p->kind == SSTD_PUMP_HANDOFF ? p->connected : !p->fd_connecting;
        if (up && !p->fd_gone) {
            /* The stream still gives what it received before it failed: read out first (then
             * its error, or the peer's end and pump_move ends the pump after it), as TCP reads
             * what arrived before an RST.  A peer that wrote its last bytes and closed frees
             * the stream once we acknowledged it all, and answers what we send next with a
             * reset (paper §4.3.8): ending here lost what the local end had not read yet (a
             * client's answer; a server's request, when it answered before reading it all). */
            p->st_failed = true;
            p->st_err = err;
            return true;
        }
        /* The peer reset or refused: the stream is dead, nothing to reset back. */
        struct sst_stream *s = p->s;
        p->s = NULL;
        sst_stream_close(s);
        if (reconnect(p, err))
            return true;
        /* Refused, or reset before any answer (the port closed since it answered): the next
         * connection to it waits for the answer again, and so gets the refusal. */
        if (p->kind == SSTD_PUMP_HANDOFF && (err == SST_ERR_REFUSED || (!p->connected && err == SST_ERR_RESET)))
            sstd_port_refused(p->d, p->dest, sstd_now(p->d));
        p->st_failed = true;
        if (p->kind == SSTD_PUMP_HANDOFF && p->to_fd_len > 0 && !p->fd_gone) {
            /* What the stream delivered before it failed still goes to the client (pump_move
             * ends the pump once it is written): the reset comes after it, as with TCP. */
            p->st_err = err;
            return true;
        }
        pump_end(p, p->kind == SSTD_PUMP_GATEWAY, err);
    }
    return !p->fin;
}

/* One step: events, then data, until nothing new arrived meanwhile; then ends the pump if asked
 * (the only place that frees it while callbacks can be running) or re-arms its fd events. */
static void pump_step(struct sstd_pump *p)
{
    if (p->busy)
        return;   /* an SST call of the outer step ran our callback: it picks the events up */
    p->busy = true;
    do {
        if (!take_events(p))
            break;
        pump_move(p);
    } while (!p->fin && p->pending_ev);
    p->busy = false;
    if (p->fin) {
        pump_finish(p, p->fin_reset, p->fin_err);
        return;
    }
    update_events(p);
}

static void stream_cb(struct sst_stream *s, unsigned events, void *arg)
{
    struct sstd_pump *p = arg;
    (void)s;
    p->pending_ev |= events;
    if (p->busy)
        p->nested++;
    pump_step(p);
}

static void fd_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sstd_pump *p = arg;
    struct sstd *d = p->d;
    sst_ctx_set_time(sstd_ctx(d), sstd_now(d));
    if (what & EV_READ)
        p->fd_readable = true;
    if (p->fd_connecting) {
        /* The stream is answered only now (answer-later listener, gateway.c): the initiator
         * sees CONNECTED only for a port that really answers, and a refusal otherwise. */
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (what & EV_TIMEOUT)
            soerr = ETIMEDOUT;
        else
            getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr) {
            SSTD_INFO("gateway: local service %s: %s; refusing the stream", p->dest, strerror(soerr));
            sstd_pump_refuse(p);
            sstd_kick(d);
            return;
        }
        p->fd_connecting = false;
        p->fd_readable = true;   /* the server may have written already */
        event_del(p->wev);       /* its connect timeout is over; update_events re-arms it */
        int err = sst_stream_answer(p->s, true);
        if (err != 0 && err != SST_ERR_INVAL) {
            SSTD_DEBUG("gateway: stream %s gone before its answer: %s", p->dest, sst_strerror(err));
            pump_end(p, true, err);
        }
    }
    pump_step(p);
    sstd_kick(d);
}

static struct sstd_pump *pump_new(struct sstd *d, enum sstd_pump_kind kind)
{
    struct sstd_pump *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    memset(p, 0, offsetof(struct sstd_pump, to_fd));   /* the buffers need no clearing */
    p->d = d;
    p->fd = -1;
    p->kind = kind;
    p->started = sstd_now(d);
    p->next = d->pumps;
    d->pumps = p;
    return p;
}

static int pump_set_fd(struct sstd_pump *p, int fd)
{
    p->fd = fd;
    p->fd_readable = true;   /* the client may have written before we got its end */
    p->rev = event_new(p->d->base, fd, EV_READ | EV_PERSIST, fd_cb, p);
    p->wev = event_new(p->d->base, fd, EV_WRITE | EV_PERSIST, fd_cb, p);
    return p->rev && p->wev ? 0 : -1;
}

struct sstd_pump *sstd_pump_connect(struct sstd *d, struct sstd_peer *peer, uint16_t port, int fd, pid_t owner,
                                    sstd_pump_answer_fn answer, void *arg)
{
    char service[8];
    evutil_make_socket_nonblocking(fd);
    struct sstd_pump *p = pump_new(d, SSTD_PUMP_HANDOFF);
    if (!p)
        return NULL;
    if (pump_set_fd(p, fd) < 0) {
        p->fd = -1; /* the caller still owns fd on failure */
        pump_unlink(p);
        pump_release(p);
        return NULL;
    }
    snprintf(service, sizeof service, "%u", port);
    snprintf(p->dest, sizeof p->dest, "%s/%u", peer->key, port);
    p->owner_pid = owner;
    p->peer = peer;
    p->answer = answer;
    p->answer_arg = arg;
    sst_ctx_set_time(sstd_ctx(d), sstd_now(d));
    p->busy = true;   /* a callback run inside sst_connect only records its events */
    p->s = sst_connect(sstd_ctx(d), &peer->addr, service, stream_cb, p);
    p->busy = false;
    if (!p->s) {
        p->answer = NULL;
        p->fd = -1;
        pump_unlink(p);
        pump_release(p);
        return NULL;
    }
    peer->streams++;
    /* Bytes the client wrote already may go at once: the stream is writable before the peer's
     * answer (paper §4.3.4).  Pumping starts from the event loop, never inside this call. */
    event_add(p->rev, NULL);
    if (p->pending_ev)
        event_active(p->wev, EV_WRITE, 1);
    return p;
}

struct sstd_pump *sstd_pump_accept(struct sstd *d, struct sst_listener *l, uint16_t port)
{
    struct sstd_pump *p = pump_new(d, SSTD_PUMP_GATEWAY);
    if (!p)
        return NULL;
    p->fd_connecting = true; /* no fd yet: stream data waits in the bounded buffer */
    p->connected = true;
    p->busy = true;   /* as in sstd_pump_connect */
    p->s = sst_accept(l, stream_cb, p);
    p->busy = false;
    if (!p->s) {
        pump_unlink(p);
        pump_release(p);
        return NULL;
    }
    const struct sst_addr *from = sst_stream_peer(p->s);
    char peer[SST_ADDR_STRLEN];
    sst_addr_str(from, peer, sizeof peer);
    snprintf(p->dest, sizeof p->dest, "%s>%u", peer, port);
    p->peer = sstd_peer_find(d, from);
    if (p->peer)
        p->peer->streams++;
    return p;
}

int sstd_pump_attach_fd(struct sstd_pump *p, int fd)
{
    if (pump_set_fd(p, fd) < 0)
        return -1;
    /* The connect's completion; bounded, since the initiator waits for our answer meanwhile
     * (a full accept queue drops the SYN and the kernel would retry for minutes). */
    struct timeval tv = { SSTD_GATEWAY_CONNECT_SEC, 0 };
    event_add(p->wev, &tv);
    return 0;
}

void sstd_pump_refuse(struct sstd_pump *p)
{
    if (p->s)
        (void)sst_stream_answer(p->s, false);
    pump_end(p, false, SST_ERR_REFUSED);   /* the refused stream is closed, not reset */
    if (!p->busy)
        pump_finish(p, false, SST_ERR_REFUSED);
}

void sstd_pump_abort(struct sstd_pump *p)
{
    pump_end(p, true, SST_ERR_RESET);
    if (!p->busy)
        pump_finish(p, true, SST_ERR_RESET);
}

void sstd_pump_prefix(struct sstd_pump *p, const uint8_t *buf, size_t len)
{
    if (len > SSTD_PUMP_BUF - p->to_fd_len)
        return;
    memmove(p->to_fd + len, p->to_fd + p->to_fd_off, p->to_fd_len);
    memcpy(p->to_fd, buf, len);
    p->to_fd_off = 0;
    p->to_fd_len += len;
}

void sstd_pump_cancel_answer(struct sstd *d, void *arg)
{
    for (struct sstd_pump *p = d->pumps; p; p = p->next)
        if (p->answer_arg == arg)
            p->answer = NULL;
}

bool sstd_pump_mark(struct sstd *d, unsigned long long dev, unsigned long long ino, const char *what)
{
    int ka[3];
    for (struct sstd_pump *p = d->pumps; p; p = p->next) {
        if (p->kind != SSTD_PUMP_HANDOFF || !p->notify || p->notify_dev != dev || p->notify_ino != ino)
            continue;
        if (strcmp(what, "SHUTWR") == 0) {
            p->shut_on_empty = true;
            p->fd_readable = true;   /* read what is left, then the end */
            pump_step(p);
            sstd_kick(d);
        } else if (strcmp(what, "LINGER0") == 0) {
            p->linger0 = true;
        } else if (strcmp(what, "LINGER") == 0) {
            p->linger0 = false;
        } else if (sstd_request_utimeout(what) >= 0) {
            sstd_pump_set_user_timeout(p, sstd_request_utimeout(what));
            sstd_kick(d);
        } else if (sstd_request_keepalive(what, ka)) {
            sstd_pump_set_keepalive(p, ka);
            sstd_kick(d);
        } else {
            return false;
        }
        return true;
    }
    return false;
}

void sstd_pump_set_user_timeout(struct sstd_pump *p, int ms)
{
    p->utimeout_ms = ms;
    if (p->s)
        (void)sst_stream_set_user_timeout(p->s, SST_MS((sst_time_t)ms));
}

void sstd_pump_set_keepalive(struct sstd_pump *p, const int ka[3])
{
    memcpy(p->keepalive, ka, sizeof p->keepalive);
    if (p->s)
        (void)sst_stream_set_keepalive(p->s, SST_SEC(ka[0]), SST_SEC(ka[1]), (unsigned)ka[2]);
}

bool sstd_pump_info(struct sstd *d, unsigned long long dev, unsigned long long ino, struct evbuffer *out)
{
    for (struct sstd_pump *p = d->pumps; p; p = p->next) {
        if (p->kind != SSTD_PUMP_HANDOFF || !p->notify || p->notify_dev != dev || p->notify_ino != ino)
            continue;
        /* app_done: the client's end of writing (its FIN or close), peer_done: the stream's */
        evbuffer_add_printf(out, "{\"ok\":true,\"app_done\":%s,\"peer_done\":%s",
                            p->fd_eof ? "true" : "false", p->st_eof ? "true" : "false");
        if (!p->s) {
            evbuffer_add_printf(out, "}");
            return true;
        }
        struct sst_stream_stats ss;
        sst_stream_get_stats(p->s, &ss);
        evbuffer_add_printf(out,
                            ",\"bytes_written\":%llu,\"bytes_read\":%llu,\"rx_buffered\":%llu,"
                            "\"bytes_sent\":%llu,\"bytes_acked\":%llu,\"bytes_retransmitted\":%llu,"
                            "\"tx_credit\":%llu",
                            (unsigned long long)ss.bytes_written, (unsigned long long)ss.bytes_read,
                            (unsigned long long)ss.rx_buffered, (unsigned long long)ss.bytes_sent,
                            (unsigned long long)ss.bytes_acked, (unsigned long long)ss.bytes_retransmitted,
                            (unsigned long long)ss.tx_credit);
        const struct sst_addr *peer = sst_stream_peer(p->s);
        struct sst_chan *ch = sst_host_find(sst_ctx_host(sstd_ctx(d)), peer);
        if (ch) {
            struct sst_chan_stats cs;
            sst_chan_get_stats(ch, &cs);
            evbuffer_add_printf(out,
                                ",\"cwnd\":%llu,\"ssthresh\":%llu,\"bytes_in_flight\":%llu,"
                                "\"lost_packets\":%llu,\"tx_packets\":%llu,\"rx_packets\":%llu,"
                                "\"pacing_rate\":%llu,\"plpmtu\":%u,\"max_payload\":%zu,\"v6\":%s",
                                (unsigned long long)cs.cwnd, (unsigned long long)cs.ssthresh,
                                (unsigned long long)cs.bytes_in_flight, (unsigned long long)cs.lost_packets,
                                (unsigned long long)cs.tx_packets, (unsigned long long)cs.rx_packets,
                                (unsigned long long)cs.pacing_rate, (unsigned)cs.plpmtu,
                                sst_chan_max_payload(ch), peer->family == AF_INET6 ? "true" : "false");
            /* The RTT only once sampled (before, srtt is RFC 9002's initial 333 ms) */
            if ((cs.state == SST_CHAN_ESTABLISHED || cs.state == SST_CHAN_CLOSING) && cs.min_rtt != 0 &&
                cs.min_rtt != SST_TIME_NEVER)
                evbuffer_add_printf(out, ",\"srtt_ns\":%llu,\"rttvar_ns\":%llu,\"min_rtt_ns\":%llu",
                                    (unsigned long long)cs.srtt, (unsigned long long)cs.rttvar,
                                    (unsigned long long)cs.min_rtt);
        }
        evbuffer_add_printf(out, "}");
        return true;
    }
    return false;
}

void sstd_pumps_free(struct sstd *d)
{
    while (d->pumps) {
        struct sstd_pump *p = d->pumps;
        d->pumps = p->next;
        p->busy = true;   /* the close may run p's callback: it must not free p under us */
        if (p->s)
            sst_stream_close(p->s);
        pump_release(p);
    }
    if (d->errwatch_ev) {
        close(event_get_fd(d->errwatch_ev));
        event_free(d->errwatch_ev);
        d->errwatch_ev = NULL;
    }
}

void sstd_stop_maybe(struct sstd *d)
{
    if (!d->stopping || d->pumps)
        return;   /* the clients read their last bytes first, on live channels */
    if (!d->closing_channels) {
        d->closing_channels = true;
        sstd_peers_close_all(d);
    }
    if (sstd_peers_open(d) == 0)
        event_base_loopexit(d->base, NULL);
}

void sstd_pumps_stop(struct sstd *d)
{
    /* One pump at a time, from the head: a step may end (free) other pumps (their stream
     * callbacks run inside our SST calls). */
    struct sstd_pump *p;
    do {
        for (p = d->pumps; p && p->stopping; p = p->next)
            ;
        if (!p)
            break;
        p->stopping = true;
        if (p->kind == SSTD_PUMP_GATEWAY || p->fd_connecting || p->fd_gone) {
            pump_end(p, true, SST_ERR_RESET);   /* the local server sees RST */
        }
        pump_step(p);   /* a hand-off: what the client writes from now on is not read */
    } while (p);
}

/* A watched local socket failed: the server's RST for what the peer wrote after its FIN. */
static void errwatch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    struct epoll_event e;
    /* One at a time: ending a pump frees it, and nothing else. */
    while (epoll_wait(fd, &e, 1, 0) == 1) {
        struct sstd_pump *p = e.data.ptr;
        errwatch_del(p);
        if (p->busy || p->fin)
            continue;   /* cannot be: the watch fires from the loop */
        int err = 0;
        socklen_t l = sizeof err;
        (void)getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        SSTD_DEBUG("pump %s: local socket after its FIN: %s", p->dest, err ? strerror(err) : "hung up");
        pump_end(p, true, SST_ERR_RESET);
        pump_step(p);
    }
}
