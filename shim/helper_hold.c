/* The shim's own reference to sstd's end of each hand-off (docs/helper.md "sstd's death").
 *
 * A connection handed to sstd is one end of a Unix socketpair in the app and the other in
 * sstd.  When sstd dies (SIGKILL, a crash, SIGTERM, a restart) the kernel closes its end and the
 * app reads a clean EOF: a close-delimited download cut short looks complete.  Kernel TCP would
 * fail the connection.  Linux fails a Unix stream socket's reads with ECONNRESET only when its
 * peer is closed with unread bytes (shim_reset_arm), and only while its peer is still open can
 * a byte be put there.  So the shim keeps a duplicate of sstd's end ("the hold"): sstd's death
 * closes only sstd's copy, and the event thread, told by a pidfd that sstd has exited (every
 * descriptor of it closed by then), writes the byte from the app's end and closes the hold.
 *
 * Every other end of the connection must still reach the app at once, although the hold keeps
 * the socket open: sstd shuts its end down (SHUT_RDWR) before it closes it whenever it does not
 * pass it back for a reset (its EVENTS answer says "holds":true; an older sstd's holds are
 * dropped), a normal end leaves both directions shut anyway, and a reset passed back releases
 * the hold (shim_helper_hold_release).  A hold goes when its socket is shut both ways or the
 * app's end is closed (POLLHUP: one edge-triggered wake-up of the event thread per connection).
 *
 * Costs: one descriptor per live hand-off, placed as the shim's own (above the app's soft
 * RLIMIT_NOFILE where the hard limit leaves room, else in the top quarter below it, like the
 * in-process pump's end of a connection; none when no such number is free: sstd's death then
 * reads as EOF as before), one pidfd per sstd.  Not kept across exec (the new
 * image knows nothing of it) nor in a forked child (the parent's hold serves the connection
 * while the parent lives). */
#define _GNU_SOURCE
#include "helper_hold.h"

#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"
#include "evthread.h"
#include "fdtable.h"
#include "log.h"
#include "real.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct hold {
    struct hold *next;
    int end;                    /* our duplicate of sstd's end */
    int fd;                     /* the socket sstd's end talks to: its number, device, inode */
    dev_t dev;
    ino_t ino;
    pid_t sstd;
    struct shim_conn *c;        /* the app's connection (a reference), or NULL */
    struct event *ev;           /* POLLHUP: the connection is over, the hold goes */
};

/* One per sstd process that holds connections of ours: its pidfd turns readable when it has
 * exited. */
struct watch {
    struct watch *next;
    pid_t pid;
    int pidfd;
    int state;                  /* WATCH_*: what its EVENTS answer said */
    unsigned holds;
    struct event *ev;
};
enum { WATCH_UNKNOWN, WATCH_OK, WATCH_REFUSED };

/* Queued by any thread (a Treiber stack; the event thread takes it whole), for this pid: a
 * forked child drops what it inherited (those descriptors were closed at fork). */
static _Atomic(struct hold *) queued;
static _Atomic pid_t queued_pid;

/* Event thread only. */
static struct hold *holds;
static struct watch *watches;
static pid_t owner;

static pid_t self(void)
{
    return (pid_t)syscall(SYS_getpid);
}

/* A forked child's copy of the lists belongs to the parent's loop: abandoned, not freed. */
static void own_lists(void)
{
    pid_t me = self();
    if (owner != me) {
        holds = NULL;
        watches = NULL;
        owner = me;
    }
}

static void watch_put(struct watch *w)
{
    if (w->holds > 0 || w->state == WATCH_REFUSED)
        return;   /* a refusing sstd stays listed: its later holds are dropped at once */
    for (struct watch **pp = &watches; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    if (w->ev)
        event_free(w->ev);
    if (w->pidfd >= 0)
        shim_fd_close_own(w->pidfd);
    free(w);
}

static struct watch *watch_find(pid_t pid)
{
    for (struct watch *w = watches; w; w = w->next)
        if (w->pid == pid)
            return w;
    return NULL;
}

static void hold_free(struct hold *h)
{
    for (struct hold **pp = &holds; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    if (h->ev)
        event_free(h->ev);
    if (h->end >= 0)
        shim_fd_close_own(h->end);
    if (h->c)
        shim_conn_unref(h->c);
    struct watch *w = watch_find(h->sstd);
    free(h);
    if (w) {
        w->holds--;
        watch_put(w);
    }
}

/* The reset of h's socket, with end (h's own, or the one sstd passed back) closed by the caller
 * last; err EPIPE: after the peer's end of stream, TCP's RST in CLOSE_WAIT (EOF, and EPIPE for
 * writes: shim_reset_after_fin).  True if done.  Where fd is the app's own (not the relay's),
 * the app's SO_ERROR and first failing write give err, as for the in-process engine's resets
 * (shim_conn_reset_app); a relay's pump passes it on itself (helper_err). */
static bool hold_arm(struct hold *h, int err, int end)
{
    struct shim_conn *c = h->c;
    bool own = c && h->fd == c->app_fd && h->dev == c->dev && h->ino == c->ino;
    if (c && own)
        atomic_store(&c->err, err);   /* before the byte: SO_ERROR may ask at once */
    else if (c)
        atomic_store(&c->helper_err, err);
    if (err == EPIPE) {
        /* The stream failed after sstd passed its end on to the app (shim_reset_after_fin). */
        if (c && own) {
            atomic_store(&c->err_pending, true);   /* once, before the app sees the hang-up */
            atomic_store(&c->reset_armed, true);
        }
        shim_reset_after_fin(end);
        return true;
    }
    bool armed = shim_reset_arm(h->fd, h->dev, h->ino, end);
    if (armed && own)
        atomic_store(&c->reset_armed, true);
    return armed;
}

/* Whether sstd had passed the peer's end of stream on to h's socket (shut its end for
 * writing: the app's end reads EOF): its death is then a reset after the FIN, which TCP
 * reports as EPIPE with reads of 0 (shim_reset_after_fin). */
static bool hold_after_fin(const struct hold *h)
{
    int d = shim_fd_pin(h->fd, h->dev, h->ino);
    if (d < 0)
        return false;
    bool fin = shim_fd_poll_now(d, POLLRDHUP) & POLLRDHUP;
    shim_real_close(d);
    return fin;
}

/* sstd pid has exited: every connection it carried for us is reset. */
static void on_sstd_gone(evutil_socket_t fd, short what, void *arg)
{
    struct watch *w = arg;
    unsigned n = 0, armed = 0;
    (void)fd, (void)what;
    w->holds++;   /* kept while its holds go */
    for (struct hold *h = holds, *next; h; h = next) {
        next = h->next;
        if (h->sstd != w->pid)
            continue;
        n++;
        armed += hold_arm(h, hold_after_fin(h) ? EPIPE : ECONNRESET, h->end);
        hold_free(h);
    }
    if (n > 0)
        SHIM_WARN("helper sstd (pid %d) is gone: %u connection(s) it carried end with a reset "
                  "(%u armed; the others were shut or closed already)", (int)w->pid, n, armed);
    w->holds--;
    w->state = WATCH_UNKNOWN;
    watch_put(w);
}

static void on_hold_hup(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    if (shim_fd_poll_now(fd, POLLHUP) & POLLHUP)
        hold_free(arg);
}

static struct watch *watch_get(pid_t pid)
{
    struct watch *w = watch_find(pid);
    if (w)
        return w;
    w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->pid = pid;
    w->pidfd = -1;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0)
        w->pidfd = shim_fd_hide(pfd, SHIM_FD_ENGINE);
    if (w->pidfd < 0 ||
        !(w->ev = event_new(shim_ev_base(), w->pidfd, EV_READ, on_sstd_gone, w)) ||
        event_add(w->ev, NULL) < 0) {
        SHIM_DEBUG("helper: no pidfd for sstd pid %d: its death reads as EOF", (int)pid);
        if (w->ev)
            event_free(w->ev);
        if (w->pidfd >= 0)
            shim_fd_close_own(w->pidfd);
        free(w);
        return NULL;
    }
    w->next = watches;
    watches = w;
    return w;
}

static void hold_take(struct hold *h)
{
    int low = h->end;
    h->end = shim_fd_hide_high(low, SHIM_FD_ENGINE);
    if (h->end != low)
        shim_fd_set(low, 0);   /* the number may be the app's again */
    struct watch *w = h->end >= 0 ? watch_get(h->sstd) : NULL;
    if (!w || w->state == WATCH_REFUSED) {
        if (h->end >= 0)
            shim_fd_close_own(h->end);
        if (h->c)
            shim_conn_unref(h->c);
        free(h);
        return;
    }
    /* Edge-triggered: data the app writes does not wake us (EPOLLIN is not asked for), its
     * shutdown wakes us once (EPOLLRDHUP), its close or the other direction's end once more
     * (EPOLLHUP). */
    h->ev = event_new(shim_ev_base(), h->end, EV_CLOSED | EV_ET | EV_PERSIST, on_hold_hup, h);
    if (!h->ev || event_add(h->ev, NULL) < 0) {
        if (h->ev)
            event_free(h->ev);
        shim_fd_close_own(h->end);
        if (h->c)
            shim_conn_unref(h->c);
        free(h);
        watch_put(w);
        return;
    }
    w->holds++;
    h->next = holds;
    holds = h;
}

void shim_helper_hold_drain(void)
{
    own_lists();
    if (atomic_load(&queued_pid) != self())
        return;
    struct hold *h = atomic_exchange(&queued, NULL);
    while (h) {
        struct hold *next = h->next;
        hold_take(h);
        h = next;
    }
}

static void drain_cb(void *arg)
{
    (void)arg;
    shim_helper_hold_drain();
}

void shim_helper_hold(int end, int fd, dev_t dev, ino_t ino, pid_t sstd, struct shim_conn *c,
                      bool on_event_thread)
{
    struct hold *h = sstd > 0 ? calloc(1, sizeof(*h)) : NULL;
    if (!h) {
        shim_real_close(end);
        if (c)
            shim_conn_unref(c);
        return;
    }
    h->c = c;
    h->end = end;
    h->fd = fd;
    h->dev = dev;
    h->ino = ino;
    h->sstd = sstd;
    if (on_event_thread) {
        own_lists();
        hold_take(h);
        return;
    }
    /* The app's close hooks must leave it alone until the event thread moves it up. */
    shim_fd_set(end, SHIM_FD_ENGINE);
    pid_t me = self();
    if (atomic_exchange(&queued_pid, me) != me)
        atomic_store(&queued, NULL);   /* a forked child: the parent's queue is not ours */
    struct hold *head = atomic_load(&queued);
    do
        h->next = head;
    while (!atomic_compare_exchange_weak(&queued, &head, h));
    /* The first of a batch wakes the thread; a process whose event thread does not run yet
     * has it drained when its event connection is set up (helper_events.c). */
    if (!head)
        shim_ev_call_if_running(drain_cb, NULL);
}

void shim_helper_hold_reset(int fd, dev_t dev, ino_t ino, int err, int end)
{
    shim_helper_hold_drain();
    for (struct hold *h = holds; h; h = h->next) {
        if (h->dev == dev && h->ino == ino) {
            bool armed = hold_arm(h, err, end);
            hold_free(h);   /* end, closed next, is then the last */
            SHIM_DEBUG("helper: the stream of fd %d failed (%s): %s", fd, strerror(err),
                       err == EPIPE ? "after its end: EOF, the app's writes fail with EPIPE"
                       : armed      ? "the app reads ECONNRESET"
                                    : "fd no longer the connection's socket, or shut: EOF");
            return;
        }
    }
    if (err == EPIPE) {
        shim_reset_after_fin(end);
        SHIM_DEBUG("helper: the stream of fd %d failed after its end: EPIPE (no hold)", fd);
        return;
    }
    bool armed = shim_reset_arm(fd, dev, ino, end);
    SHIM_DEBUG("helper: the stream of fd %d failed (%s): %s (no hold)", fd, strerror(err),
               armed ? "the app reads ECONNRESET" : "fd no longer the connection's socket, or shut: EOF");
}

int shim_helper_hold_reclaim(dev_t dev, ino_t ino)
{
    shim_helper_hold_drain();
    for (struct hold *h = holds; h; h = h->next) {
        if (h->dev == dev && h->ino == ino) {
            int end = h->end;
            h->end = -1;   /* not closed: the caller's now */
            hold_free(h);
            return end;
        }
    }
    return -1;
}

void shim_helper_hold_sstd_answered(pid_t sstd, bool holds_ok)
{
    shim_helper_hold_drain();
    struct watch *w = watch_get(sstd);
    if (!w)
        return;
    if (holds_ok) {
        w->state = WATCH_OK;
        return;
    }
    SHIM_DEBUG("helper (pid %d) does not shut the ends it closes: no holds (its death reads as EOF)",
               (int)sstd);
    w->state = WATCH_REFUSED;
    w->holds++;
    for (struct hold *h = holds, *next; h; h = next) {
        next = h->next;
        if (h->sstd == sstd)
            hold_free(h);
    }
    w->holds--;
}

pid_t shim_helper_peer_pid(int sock)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || len != sizeof(cr))
        return 0;
    return cr.pid;
}
