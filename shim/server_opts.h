/* TCP_USER_TIMEOUT and keepalive on a connection a server accepted from an SST stream
 * (SST_LISTEN): the app sets them on its kernel socket, whose peer is the loopback bridge and
 * never goes silent, so they are also given to the stream that carries the connection, as the
 * client side's sst transport does (transport_sst.c).  docs/shim.md §6c "Timeouts". */
#ifndef SHIM_SERVER_OPTS_H
#define SHIM_SERVER_OPTS_H

#include <stdbool.h>
#include <sys/types.h>

#include "sst.h"

/* What reaches a stream: the user timeout, the keepalive set, or both. */
struct shim_sopts {
    int ut;                          /* TCP_USER_TIMEOUT in ms; -1: not given */
    int ka[4];                       /* SO_KEEPALIVE, TCP_KEEPIDLE, _KEEPINTVL (s), _KEEPCNT;
                                        ka[0] -1: not given */
};

/* Nothing given. */
void shim_sopts_none(struct shim_sopts *o);
/* Reads kernel socket fd's options: the user timeout if want_ut, the keepalive set if want_ka
 * (the kernel answers its net.ipv4.tcp_keepalive_* defaults for parameters never set).  An
 * option that cannot be read is not given. */
void shim_sopts_read(int fd, bool want_ut, bool want_ka, struct shim_sopts *o);
/* The options given in o replace those in *into. */
void shim_sopts_merge(struct shim_sopts *into, const struct shim_sopts *o);
/* Event thread: gives s the options given in o. */
void shim_sopts_apply(struct sst_stream *s, const struct shim_sopts *o);

/* setsockopt hook, after libc's setsockopt(fd, level, name) succeeded on an fd that is no
 * replaced connection: if fd is a socket accepted from an SST stream and the option is one of
 * the five, the socket's options as they are now go to the stream: through the event thread in
 * the process that bridges it (server.c), through that process's mailbox from its forked
 * children; elsewhere (an exec'd image) they stay the kernel socket's, and a line at info level
 * says so once per process. */
void shim_server_sockopt(int fd, int level, int name);
/* The mailbox (the listening process): a unix datagram socket, bound before listen() returns so
 * that every child forked afterwards knows its name, read by the event thread. */
void shim_sopts_box_open(void);
struct event_base;
void shim_sopts_box_watch(struct event_base *base);
/* The five options: TCP_USER_TIMEOUT, SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT. */
bool shim_sopts_is_timeout(int level, int name);

#endif
