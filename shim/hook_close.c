/* Hooks close(), close_range() and closefrom(): replaced connections drop their table entry,
 * and the shim's own fds are never closed by the program (preload-shims.md lesson 8:
 * proxychains broke when ssh closed every fd). */
#define _GNU_SOURCE
#include <errno.h>
#include <unistd.h>

#include "fdtable.h"
#include "log.h"
#include "real.h"
#include "server.h"
#include "shim.h"

static SHIM_SLOW int close_recorded(int fd, uintptr_t v)
{
    if (SHIM_FD_IS_OWN(v)) {
        /* The program believes it closes an fd it never opened: let it, keep ours. */
        SHIM_DEBUG("close(%d): shim-owned fd kept open", fd);
        return 0;
    }
    shim_fd_set(fd, 0);
    return shim_real_close(fd);
}

static SHIM_SLOW int close_checked(int fd)
{
    int port = shim_server_on_close(fd);   /* an SST_LISTEN socket: looked at again after */
    uintptr_t v = shim_fd_get(fd);
    int rc = v == 0 || shim_tls_guard ? shim_real_close(fd) : close_recorded(fd, v);
    if (port >= 0)
        shim_server_closed(port);          /* its SST listener stops if it was the last */
    return rc;
}

SHIM_EXPORT int close(int fd)
{
    /* An fd without an entry in a process without SST_LISTEN sockets: two loads and libc as a
     * tail call. */
    if (shim_fd_get(fd) == 0 && atomic_load_explicit(&shim_server_live, memory_order_relaxed) <= 0)
        return shim_real_close(fd);
    return close_checked(fd);
}

SHIM_EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    if (!shim_fdtab || shim_tls_guard || first > last)
        return shim_real_close_range(first, last, flags);
    return shim_fd_close_range_app(first, last, flags);
}

SHIM_EXPORT void closefrom(int lowfd)
{
    if (!shim_fdtab || shim_tls_guard || lowfd < 0) {
        shim_real_closefrom(lowfd);
        return;
    }
    int saved = errno;
    if (shim_fd_close_range_app((unsigned)lowfd, ~0u, 0) < 0) {
        /* Old kernels without close_range: close one by one, as glibc's fallback does. */
        for (int fd = lowfd; fd < shim_fdtab_size; fd++)
            if (!SHIM_FD_IS_OWN(shim_fd_get(fd)))
                close(fd);
    }
    errno = saved;
}
