/* The error/hang-up watch (errwatch.h). */
#define _GNU_SOURCE
#include "errwatch.h"

#include <errno.h>
#include <event2/event.h>
#include <sys/epoll.h>

#include "fdtable.h"
#include "real.h"

static int set_fd = -1;              /* the private epoll set */
static struct event *set_ev;         /* its readiness in the loop */

static void on_set(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    struct epoll_event e;
    /* One at a time: a callback may end its pump, and with it nothing but its own watch. */
    while (epoll_wait(fd, &e, 1, 0) == 1) {
        struct shim_errwatch *w = e.data.ptr;
        shim_errwatch_del(w);
        w->fn(w->arg);
    }
}

bool shim_errwatch_open(struct event_base *base)
{
    if (set_ev)
        return true;
    shim_fd_room_enter();
    int fd = shim_real_epoll_create1(EPOLL_CLOEXEC);
    shim_fd_room_leave();
    if (fd < 0)
        return false;
    fd = shim_fd_hide(fd, SHIM_FD_ENGINE);
    set_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_set, NULL);
    if (!set_ev || event_add(set_ev, NULL) < 0) {
        if (set_ev)
            event_free(set_ev);
        set_ev = NULL;
        shim_fd_close_own(fd);
        return false;
    }
    set_fd = fd;
    return true;
}

bool shim_errwatch_add(struct event_base *base, struct shim_errwatch *w, int fd)
{
    w->fd = -1;
    if (!shim_errwatch_open(base))
        return false;
    /* No event bits: epoll still reports EPOLLERR and EPOLLHUP. */
    struct epoll_event e = { .events = 0, .data.ptr = w };
    if (shim_real_epoll_ctl(set_fd, EPOLL_CTL_ADD, fd, &e) < 0)
        return false;
    w->fd = fd;
    return true;
}

void shim_errwatch_del(struct shim_errwatch *w)
{
    if (w->fd < 0)
        return;
    shim_real_epoll_ctl(set_fd, EPOLL_CTL_DEL, w->fd, NULL);
    w->fd = -1;
}

void shim_errwatch_after_fork(void)
{
    set_fd = -1;
    set_ev = NULL;                   /* the parent's loop's; leaked in the child */
}
