/* The local address a connection to a peer would have: what getsockname reports for
 * connections that have no kernel TCP socket of their own (carried over SST). */
#ifndef SHIM_ROUTE_H
#define SHIM_ROUTE_H

#include <stdbool.h>
#include <sys/socket.h>

/* Asks the routing table which source address this host uses toward peer (a UDP socket of
 * peer's family connected to it: no packet leaves) and fills out with it, in peer's family
 * (an IPv4-mapped peer gives an IPv4-mapped source), with port as its port -- or, for port
 * 0, the port the kernel bound that socket to: an ephemeral number, free when taken and
 * reserved by nobody afterwards.  False (out untouched) when there is no route or no
 * descriptor to ask with. */
bool shim_route_local(const struct sockaddr *peer, socklen_t peer_len, unsigned port,
                      struct sockaddr_storage *out, socklen_t *out_len);

#endif
