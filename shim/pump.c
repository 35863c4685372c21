/* The byte pump between the app's socketpair end and a transport socket: one bounded buffer
 * per direction (back-pressure: a full buffer stops reading its source), half-close mapped
 * both ways (shutdown(SHUT_WR) on one side becomes shutdown(SHUT_WR) on the other). */
#define _GNU_SOURCE
#include "pump.h"

#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <utlist.h>

#include "errwatch.h"
#include "fdtable.h"

#define PUMP_BUF 65536

enum { UP = 0, DOWN = 1 };   /* UP: app -> network; DOWN: network -> app */

struct dir {
    int src, dst;
    struct event *rev, *wev;
    size_t len, off;
    bool eof;        /* source reached EOF */
    bool done;       /* EOF forwarded (or the direction abandoned) */
    bool discard;    /* app did shutdown(SHUT_RD): drop what arrives */
    char buf[PUMP_BUF];
};

atomic_int shim_pump_live;
static struct shim_pump *live_pumps;   /* event thread only */

struct shim_pump {
    struct shim_pump *prev, *next;  /* live_pumps */
    int app_fd, net_fd;
    struct dir d[2];
    struct event *hup_timer;   /* polls for the app's full close after its half-close */
    shim_pump_done_fn done;
    shim_pump_error_fn on_error;
    struct shim_reserve *reserve; /* on: the last byte of the app end's queue is not data */
    const atomic_bool *linger0;   /* the app's SO_LINGER {1, 0} (shim_pump_linger) */
    bool failed;                  /* the network side failed: on_error armed a reset */
    struct shim_errwatch net_watch; /* after the peer's FIN: its RST (errwatch.h) */
    void *arg;
};

static void finish(struct shim_pump *p, int err);

/* The network side failed (err): what is buffered for the app goes first if the app end takes
 * it now, then the app is told (on_error), then everything closes. */
static void net_failed(struct shim_pump *p, int err)
{
    struct dir *d = &p->d[DOWN];
    if (d->done)
        err = EPIPE;   /* after the peer's FIN reached the app: TCP's RST in CLOSE_WAIT */
    while (!d->discard && d->off < d->len) {
        ssize_t n = send(d->dst, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            break;
        d->off += (size_t)n;
    }
    if (p->on_error)
        p->on_error(p->arg, p->app_fd, err);
    p->failed = true;
    finish(p, err);
}

/* The app end is fully closed (every copy of its fd) when our end reports POLLHUP. */
static bool app_gone(struct shim_pump *p)
{
    return shim_fd_poll_now(p->app_fd, 0) & POLLHUP;
}

static void finish(struct shim_pump *p, int err)
{
    shim_errwatch_del(&p->net_watch);
    for (int i = 0; i < 2; i++) {
        event_free(p->d[i].rev);
        event_free(p->d[i].wev);
    }
    event_free(p->hup_timer);
    if (!p->failed && p->reserve && atomic_load(&p->reserve->on)) {
        char b;
        ssize_t r = recv(p->app_fd, &b, 1, MSG_DONTWAIT);   /* a clean end: no reset for the app */
        (void)r;
    }
    /* A plain close of the network socket: the kernel still sends what is queued, then FIN --
     * unless the app closed after SO_LINGER {1, 0}: then RST, as its own TCP socket would. */
    if (!p->failed && p->linger0 && atomic_load(p->linger0) && app_gone(p)) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(p->net_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    shim_fd_close_own(p->net_fd);
    shim_fd_close_own(p->app_fd);
    DL_DELETE(live_pumps, p);
    p->done(p->arg, err);
    free(p);
    atomic_fetch_sub(&shim_pump_live, 1);
}


static void dir_ended(struct shim_pump *p, int which)
{
    struct dir *d = &p->d[which];
    d->done = true;
    event_del(d->rev);
    event_del(d->wev);
    if (which == UP) {
        if (app_gone(p)) {
            finish(p, 0);
            return;
        }
        shutdown(p->net_fd, SHUT_WR);   /* the app's shutdown(SHUT_WR) reaches the peer */
        struct timeval tv = { 1, 0 };
        event_add(p->hup_timer, &tv);
    } else {
        shutdown(p->app_fd, SHUT_WR);   /* the peer's FIN: the app reads EOF */
        /* The network socket is not read any more, but the peer may still answer what the
         * app writes with RST: the app's next write must fail (EPIPE), not the one after. */
        if (!p->d[UP].done)
            shim_errwatch_add(event_get_base(d->rev), &p->net_watch, p->net_fd);
    }
    if (p->d[UP].done && p->d[DOWN].done)
        finish(p, 0);
}

/* Writes what is buffered; returns false if the pump was finished. */
static bool flush(struct shim_pump *p, int which)
{
    struct dir *d = &p->d[which];
    while (d->off < d->len) {
        ssize_t n = send(d->dst, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            d->off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_del(d->rev);
            event_add(d->wev, NULL);
            return true;
        }
        /* Write error. */
        if (which == DOWN && !app_gone(p)) {
            /* The app shut down reading: TCP would discard too. */
            d->discard = true;
            break;
        }
        if (which == UP)
            net_failed(p, errno);       /* the peer's RST while we write to it */
        else
            finish(p, 0);               /* the app closed with data arriving */
        return false;
    }
    d->len = d->off = 0;
    event_del(d->wev);
    if (d->eof) {
        dir_ended(p, which);
        return false;
    }
    event_add(d->rev, NULL);
    return true;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct shim_pump *p = arg;
    int which = fd == p->app_fd ? UP : DOWN;
    struct dir *d = &p->d[which];
    size_t want = sizeof(d->buf);
    bool reserved_eof = false;

    struct shim_reserve *rsv = which == UP ? p->reserve : NULL;
    if (rsv && shim_reserve_enter(rsv)) {
        want = shim_fd_reserve_readable(fd, want, &reserved_eof);
        if (want == 0 && !reserved_eof) {
            shim_reserve_leave(rsv);
            return;                   /* the app's shutdown is right behind its byte */
        }
    }
    ssize_t n = reserved_eof ? 0 : recv(fd, d->buf, want, MSG_DONTWAIT);
    if (rsv)
        shim_reserve_leave(rsv);
    if (n > 0) {
        if (d->discard)
            return;
        d->len = (size_t)n;
        d->off = 0;
        flush(p, which);
        return;
    }
    if (n == 0) {
        d->eof = true;
        flush(p, which);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return;
    /* A reset from the network ends everything, and reaches the app as a reset. */
    if (which == DOWN)
        net_failed(p, errno);
    else
        finish(p, errno);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct shim_pump *p = arg;
    int which = fd == p->net_fd ? UP : DOWN;
    flush(p, which);
}

/* The network socket failed or hung up after the peer's FIN (errwatch.h). */
static void on_net_watch(void *arg)
{
    struct shim_pump *p = arg;
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(p->net_fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err == 0)
        err = EPIPE;
    net_failed(p, err);
}

static void on_hup_timer(evutil_socket_t fd, short what, void *arg)
{
    struct shim_pump *p = arg;
    struct timeval tv = { 1, 0 };
    if (app_gone(p))
        finish(p, 0);
    else
        event_add(p->hup_timer, &tv);
}

void shim_pump_linger(struct shim_pump *p, const atomic_bool *linger0)
{
    p->linger0 = linger0;
}

void shim_pump_reserve(struct shim_pump *p, struct shim_reserve *flag)
{
    p->reserve = flag;
}

void shim_pump_on_error(struct shim_pump *p, shim_pump_error_fn fn)
{
    p->on_error = fn;
}

struct shim_pump *shim_pump_start(struct event_base *base, int app_fd, int net_fd,
                                  shim_pump_done_fn done, void *arg)
{
    struct shim_pump *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->app_fd = app_fd;
    p->net_fd = net_fd;
    p->done = done;
    p->arg = arg;
    p->d[UP].src = app_fd;
    p->d[UP].dst = net_fd;
    p->d[DOWN].src = net_fd;
    p->d[DOWN].dst = app_fd;
    for (int i = 0; i < 2; i++) {
        p->d[i].rev = event_new(base, p->d[i].src, EV_READ | EV_PERSIST, on_read, p);
        p->d[i].wev = event_new(base, p->d[i].dst, EV_WRITE | EV_PERSIST, on_write, p);
    }
    p->hup_timer = evtimer_new(base, on_hup_timer, p);
    p->net_watch.fn = on_net_watch;
    p->net_watch.arg = p;
    p->net_watch.fd = -1;
    if (!p->d[0].rev || !p->d[0].wev || !p->d[1].rev || !p->d[1].wev || !p->hup_timer) {
        for (int i = 0; i < 2; i++) {
            if (p->d[i].rev)
                event_free(p->d[i].rev);
            if (p->d[i].wev)
                event_free(p->d[i].wev);
        }
        if (p->hup_timer)
            event_free(p->hup_timer);
        free(p);
        return NULL;
    }
    atomic_fetch_add(&shim_pump_live, 1);
    DL_APPEND(live_pumps, p);
    event_add(p->d[UP].rev, NULL);
    event_add(p->d[DOWN].rev, NULL);
    return p;
}

int shim_pump_orphans(void)
{
    int n = 0;
    struct shim_pump *p;
    DL_FOREACH(live_pumps, p)
        if (!app_gone(p))
            n++;
    return n;
}

void shim_pump_after_fork(void)
{
    live_pumps = NULL;                       /* the parent's; leaked in the child */
    atomic_store(&shim_pump_live, 0);
}
