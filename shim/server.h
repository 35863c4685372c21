/* The shim's server side (SST_LISTEN): a preloaded server's listening TCP socket also accepts SST
 * streams for its port, each delivered to the app's own accept() as a loopback TCP connection
 * made by the event thread, whose address accept() and getpeername() report as the SST peer's.
 *
 * The app thread side (listen, accept, getpeername, close hooks) and the event thread side
 * (the SST listeners and the loopback bridges) share two small locked tables: the app's
 * listening sockets, and the loopback connections not yet accepted, keyed by their local
 * address.  Both are empty -- and every hook below costs one atomic load -- in a process that
 * never listens on a selected port.  docs/shim.md §6b. */
#ifndef SHIM_SERVER_H
#define SHIM_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "shim.h"

/* Listening sockets recorded + accepted fds recorded: zero means every hook passes through. */
#pragma GCC visibility push(hidden)
extern atomic_int shim_server_live;
#pragma GCC visibility pop

/* listen(fd) succeeded: if fd is a TCP socket on a port SST_LISTEN selects, records it and
 * has the event thread listen for SST streams to that port (on UDP SST_PORT). */
void shim_server_listen(int fd);
/* Before close(fd): a recorded listening socket is marked closed here and its port returned,
 * for shim_server_closed after the real close; a recorded accepted fd forgets its SST peer.
 * -1: nothing to look at afterwards. */
int shim_server_close(int fd);
/* After the real close of a listening socket of port: the port's SST listener stops once no
 * socket of it listens any more -- here or in another process (a forked child, a worker: the
 * kernel's table says, core/io/sockdiag.h). */
void shim_server_closed(int port);
/* accept()/accept4() returned fd (sa/len as the app passed them; cap = *len before the call):
 * a connection made by the event thread gets the SST peer's address in sa and for getpeername. */
void shim_server_accepted(int fd, struct sockaddr *sa, socklen_t *len, socklen_t cap);
/* exit(): closes the accepted SST connections the app still holds (the kernel would a moment
 * later, but the bridges that must deliver what the app wrote die with this process: the exit
 * drain waits for them once their app end is closed).  at_exec: those without FD_CLOEXEC
 * survive into the new program and are shut for writing instead.  Then the recorded listening
 * sockets (but the survivors of an exec), for shim_server_orphans. */
void shim_server_close_at_exit(bool at_exec);
/* Event thread, at the end of the listening process's image: the ports whose SST listener
 * still has a listening socket open elsewhere (a daemon child, forked workers; the kernel's
 * table says, core/io/sockdiag.h) -- what the keeper carries on; the others' listeners close. */
int shim_server_orphans(void);
/* In the keeper (keeper.h): the app's descriptors are gone here, its sockets are the app's. */
void shim_server_in_keeper(void);
/* getpeername on an accepted SST connection: writes the SST peer, sets *ret (0) and returns
 * true; false for every other fd. */
bool shim_server_getpeername(int fd, struct sockaddr *sa, socklen_t *len, int *ret);
/* getsockname on an accepted SST connection that the bridge delivered over loopback (a
 * wildcard listener): this host's address toward the SST peer with the connection's port, as
 * TCP from that peer would have; sets *ret and returns true.  False for every other fd. */
bool shim_server_getsockname(int fd, struct sockaddr *sa, socklen_t *len, int *ret);

/* getsockopt(TCP_INFO) on an accepted socket: true if fd is one this process accepted from
 * an SST stream and bridges itself (dev/ino name it for shim_server_pump). */
bool shim_server_accepted_here(int fd, dev_t *dev, ino_t *ino);
/* The same, told apart from a socket accepted from an SST stream whose bridge is another
 * process's (a forked worker, an exec'd image: *elsewhere true, false returned). */
bool shim_server_accepted_where(int fd, dev_t *dev, ino_t *ino, bool *elsewhere);
/* Event thread: the app set options on accepted socket dev/ino (server_opts.h); they go to
 * its bridge's stream, now or when the bridge's pump starts.  Nothing if it is not bridged
 * here (any more). */
struct shim_sopts;
void shim_server_bridge_opts(dev_t dev, ino_t ino, const struct shim_sopts *o);
/* A bridge's name in every process: its loopback socket's local address (sst_addr_encode), the
 * accepted socket's kernel peer. */
#define SHIM_BRIDGE_KEY_LEN 19
/* The key of the bridge of accepted socket fd (any process holding it); false if fd has no
 * peer address. */
bool shim_server_bridge_key(int fd, uint8_t key[SHIM_BRIDGE_KEY_LEN]);
/* Event thread: the same as shim_server_bridge_opts for the bridge named key, if it is this
 * process's (options a forked child set, server_opts.c). */
void shim_server_bridge_opts_key(const uint8_t key[SHIM_BRIDGE_KEY_LEN], const struct shim_sopts *o);
/* Event thread: the pump of the bridge of accepted socket dev/ino, or NULL (ended, or not
 * bridged here).  Valid until the event thread returns to its loop. */
struct shim_spump;
struct shim_spump *shim_server_pump(dev_t dev, ino_t ino);

/* The environment variable that carries the accepted sockets' SST peers across exec. */
#define SHIM_SERVER_ENV "SST_SHIM_ACCEPTED"
/* exec (hook_exec.c): writes "SST_SHIM_ACCEPTED=..." into buf for the recorded accepted sockets
 * that survive the exec (a descriptor without FD_CLOEXEC holds them), so that the new image's
 * getpeername on them answers the SST peer (sshd re-executes itself with the connection on
 * stdin).  False if there is none (buf then holds nothing to pass). */
bool shim_server_exec_env(char *buf, size_t cap);
/* The constructor: the records an exec'ing image passed in SST_SHIM_ACCEPTED's value. */
void shim_server_inherit(const char *val);

static inline bool shim_server_engaged(void)
{
    return atomic_load_explicit(&shim_server_live, memory_order_relaxed) > 0 && !shim_tls_guard;
}

static inline int shim_server_on_close(int fd)
{
    return shim_server_engaged() ? shim_server_close(fd) : -1;
}

static inline int shim_server_on_accept(int fd, struct sockaddr *sa, socklen_t *len, socklen_t cap)
{
    if (fd >= 0 && shim_server_engaged())
        shim_server_accepted(fd, sa, len, cap);
    return fd;
}

#endif
