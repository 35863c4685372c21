/* Hooks bind(): remembers whether the app's not-yet-connected TCP socket was bound to port 0.
 * Tcl binds every client socket to the wildcard with port 0 before connecting (so does python's
 * create_connection with source_address=(addr, 0), wget --bind-address, ssh -b): the kernel
 * then picks a port at bind, and a connect() that sees a bound port cannot tell it from one the
 * app chose (an rsh-style reserved port, which only the app's own socket can keep), so until
 * 2026-11-22 such sockets stayed on kernel TCP -- tclsh `socket -async` to a selected peer hung
 * in strict mode with TCP blocked.  The port the kernel picked asks nothing of the transport:
 * route() carries the connection (hook_connect.c) and getsockname keeps the bound address
 * and port (hook_sockopt.c). */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <sys/socket.h>

#include "fdtable.h"
#include "real.h"
#include "shim.h"

static SHIM_SLOW int bind_tcpnew(int fd, const struct sockaddr *sa, socklen_t len)
{
    int r = shim_real_bind(fd, sa, len);
    if (r != 0)
        return r;
    /* The kernel accepted the address, so it is the socket's family and long enough. */
    in_port_t port = 1;
    if (sa->sa_family == AF_INET)
        port = ((const struct sockaddr_in *)sa)->sin_port;
    else if (sa->sa_family == AF_INET6)
        port = ((const struct sockaddr_in6 *)sa)->sin6_port;
    shim_fd_bind_note(fd, port == 0);
    return 0;
}

SHIM_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    /* Every socket but the app's TCP sockets not yet connected (the shim's own threads never
     * tag theirs): one load and a tail call. */
    if (!SHIM_FD_IS_TCPNEW(shim_fd_get(fd)) || shim_tls_guard || !sa)
        return shim_real_bind(fd, sa, len);
    return bind_tcpnew(fd, sa, len);
}
