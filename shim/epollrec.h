/* epoll registrations of the app's TCP sockets made before connect(), replayed onto the
 * socketpair end at the swap: epoll watches the open file description, so the registration of
 * the replaced TCP socket would otherwise vanish silently (the ip2unix technique). */
#ifndef SHIM_EPOLLREC_H
#define SHIM_EPOLLREC_H

#include <sys/epoll.h>

#define SHIM_EPOLLREC_MAX 4   /* epoll instances remembered per socket */

/* Records epoll_ctl(epfd, op, fd, ev) for a SHIM_FD_TCPNEW fd. */
void shim_epollrec_note(int epfd, int op, int fd, const struct epoll_event *ev);
/* Re-adds every recorded registration of fd (now the socketpair end), then forgets them. */
void shim_epollrec_replay(int fd);
void shim_epollrec_forget(int fd);
/* Held across fork so the child never inherits the table's lock mid-update. */
void shim_epollrec_lock(void);
void shim_epollrec_unlock(void);

#endif
