/* Watching a socket for its error or hang-up only (event thread).
 *
 * A pump stops reading a kernel TCP socket once the peer's FIN came (EOF stays readable, so a
 * level-triggered read event would fire forever), yet the peer's kernel may still answer with
 * a RST -- the app wrote after the peer's close -- and kernel TCP tells the app at once: its
 * next write fails with EPIPE.  Without a watch the pump learnt of the RST only from its own
 * next write, one app write late.  libevent cannot wait for EPOLLERR/EPOLLHUP alone (and mixing
 * an edge-triggered read event with the level-triggered write event of the same fd is not
 * allowed), so the watched sockets go into a private epoll set with no event bits, which
 * epoll reports only on an error or a hang-up, and that set's fd into the loop. */
#ifndef SHIM_ERRWATCH_H
#define SHIM_ERRWATCH_H

#include <stdbool.h>

struct event_base;

struct shim_errwatch {
    void (*fn)(void *arg);           /* called once, from the loop, after the watch is removed */
    void *arg;
    int fd;                          /* watched, or -1 */
};

/* Creates the set (once per process, with the event loop: a descriptor that comes and goes
 * with the first connection to need it would look like a leak to a program counting its fds).
 * False if it cannot; shim_errwatch_add tries again. */
bool shim_errwatch_open(struct event_base *base);
/* Starts watching fd (w->fn and w->arg set by the caller).  False when it cannot (the watch
 * then simply does not fire: the pump learns of the error at its next write, as before). */
bool shim_errwatch_add(struct event_base *base, struct shim_errwatch *w, int fd);
/* Stops watching (no-op if not watched); before the watched fd is closed or w freed. */
void shim_errwatch_del(struct shim_errwatch *w);
/* In a forked child: the set belongs to the parent (closed with the engine's fds). */
void shim_errwatch_after_fork(void);

#endif
