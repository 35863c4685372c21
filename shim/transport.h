/* Transports: what carries a replaced connection's bytes behind the app's socketpair end.
 *
 * The app holds one end of an AF_UNIX socketpair (dup'ed onto its fd number inside connect());
 * the event thread holds the other end, c->pump_fd.  A transport connects to c->peer and moves
 * bytes between c->pump_fd and the network.  "tcp" (kernel TCP, the fallback) works now; "sst"
 * will carry the bytes on an SST stream (paper §3) once the stream layer exists.
 *
 * Contract, all on the event thread:
 *   start(c, base)   begin connecting; return 0, or a positive errno to fail at once.
 *   then exactly one of
 *     shim_conn_up(c, local, len)        connection established: the shim discards the filler
 *                                        that held back POLLOUT, then the transport pumps;
 *     shim_conn_fail(c, errno)           the connect failed (ECONNREFUSED, ETIMEDOUT, ...);
 *     shim_conn_fallback(c, why, nosst)  (sst only) SST could not be used: the shim continues
 *                                        on "tcp" over the same socketpair in auto mode, or
 *                                        fails with ECONNREFUSED in strict mode; nosst=true
 *                                        records the destination in the negative cache;
 *   after up, shim_conn_done(c, err) once the transport has closed every fd it owned, including
 *   c->pump_fd (pass 0 for an orderly end, or the errno that ended it, kept for SO_ERROR).
 * Half-close: EOF read from c->pump_fd is the app's shutdown(SHUT_WR) (or its close, when
 * poll() also reports POLLHUP); the transport ends its sending direction.  A peer's FIN becomes
 * shutdown(c->pump_fd, SHUT_WR) so the app reads EOF.  See shim/pump.c for the fd-to-fd version.
 */
#ifndef SHIM_TRANSPORT_H
#define SHIM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct shim_conn;

struct shim_transport {
    const char *name;
    /* App thread, inside connect(), before anything is built: can this transport serve a
     * connection to peer at all?  Must not block; on false, writes the reason (e.g. "SST
     * engine not built in") into why. */
    bool (*usable)(const struct sockaddr *peer, socklen_t peer_len, char *why, size_t len);
    /* Event thread: begin carrying c, per the contract above.  Returns 0 or a positive errno. */
    int (*start)(struct shim_conn *c, struct event_base *base);
    /* Event thread, optional: the app set an int option (IPPROTO_TCP/IP/IPV6, SO_KEEPALIVE,
     * SO_PRIORITY) on its fd after start; apply it to the live transport if it has a use. */
    void (*set_option)(struct shim_conn *c, int level, int name, int value);
};

extern const struct shim_transport shim_transport_tcp;

/* Pieces of the tcp transport the sst transport reuses to race kernel TCP against SST:
 * dial starts a non-blocking connect to c->peer with the app's remembered options (0 and a
 * hidden engine fd in *sock, or a positive errno); connect_result reads SO_ERROR once the
 * socket is writable; adopt takes a connected socket: reports the connection up and pumps. */
int shim_tcp_dial(struct shim_conn *c, int *sock);
int shim_tcp_connect_result(int sock);
void shim_tcp_adopt(struct shim_conn *c, struct event_base *base, int sock);
extern const struct shim_transport shim_transport_sst;

#endif
