/* Hooks listen(): a TCP socket listening on a port SST_LISTEN selects also accepts SST streams
 * for that port (server.h); the kernel's listen runs first and alone decides the result. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "real.h"
#include "server.h"
#include "shim.h"

SHIM_EXPORT int listen(int fd, int backlog)
{
    int r = shim_real_listen(fd, backlog);
    if (r == 0 && shim_engaged() && (shim_cfg.listen_all || shim_cfg.n_listen > 0))
        shim_server_listen(fd);
    return r;
}
