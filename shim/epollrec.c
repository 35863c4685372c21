/* Records epoll registrations of not-yet-connected TCP sockets (uthash by fd) for replay. */
#define _GNU_SOURCE
#include "epollrec.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <uthash.h>

#include "log.h"
#include "real.h"

struct rec {
    int fd;
    int n;
    int epfd[SHIM_EPOLLREC_MAX];
    struct epoll_event ev[SHIM_EPOLLREC_MAX];
    UT_hash_handle hh;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rec *recs;
/* How many records exist: forget() on a socket that was never registered before connect (the
 * common case, every uncarried connect) then takes no lock. */
static atomic_int n_recs;

void shim_epollrec_note(int epfd, int op, int fd, const struct epoll_event *ev)
{
    struct rec *r;
    pthread_mutex_lock(&lock);
    HASH_FIND_INT(recs, &fd, r);
    if (!r && op == EPOLL_CTL_ADD) {
        r = calloc(1, sizeof(*r));
        if (r) {
            r->fd = fd;
            HASH_ADD_INT(recs, fd, r);
            atomic_fetch_add_explicit(&n_recs, 1, memory_order_relaxed);
        }
    }
    if (r) {
        int i;
        for (i = 0; i < r->n && r->epfd[i] != epfd; i++)
            ;
        if (op == EPOLL_CTL_DEL) {
            if (i < r->n) {
                r->n--;
                r->epfd[i] = r->epfd[r->n];
                r->ev[i] = r->ev[r->n];
            }
        } else if (ev && i < r->n) {
            r->ev[i] = *ev;
        } else if (ev && i < SHIM_EPOLLREC_MAX) {
            r->epfd[i] = epfd;
            r->ev[i] = *ev;
            r->n++;
        }
    }
    pthread_mutex_unlock(&lock);
}

static struct rec *take(int fd)
{
    struct rec *r;
    if (atomic_load_explicit(&n_recs, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&lock);
    HASH_FIND_INT(recs, &fd, r);
    if (r) {
        HASH_DEL(recs, r);
        atomic_fetch_sub_explicit(&n_recs, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&lock);
    return r;
}

void shim_epollrec_replay(int fd)
{
    struct rec *r = take(fd);
    if (!r)
        return;
    for (int i = 0; i < r->n; i++) {
        /* The old description left the epoll set when dup3 closed it; add the new one. */
        if (shim_real_epoll_ctl(r->epfd[i], EPOLL_CTL_ADD, fd, &r->ev[i]) < 0)
            SHIM_WARN("fd %d: could not carry its epoll registration over the swap", fd);
        else
            SHIM_DEBUG("fd %d: epoll registration on epfd %d carried over the swap", fd, r->epfd[i]);
    }
    free(r);
}

void shim_epollrec_forget(int fd)
{
    free(take(fd));
}

void shim_epollrec_lock(void)
{
    pthread_mutex_lock(&lock);
}

void shim_epollrec_unlock(void)
{
    pthread_mutex_unlock(&lock);
}
