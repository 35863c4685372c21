/* Hooks dup, dup2, dup3 and fcntl(F_DUPFD*): a copy of a replaced connection's fd shares its
 * entry; dup2/dup3 onto one of the shim's own fds is refused with EBUSY. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#include "conn.h"
#include "fdtable.h"
#include "log.h"
#include "real.h"
#include "shim.h"

/* fd2 was just made a copy of fd by the kernel. */
static void copied(int fd, int fd2)
{
    uintptr_t v = shim_fd_get(fd);
    if (SHIM_FD_IS_CONN(v)) {
        shim_conn_ref((struct shim_conn *)v);
        shim_fd_set(fd2, v);
    } else {
        /* Options set through fd2 on a socket not yet connected pass unseen (fd2 is not
         * tagged): fd's connect must read them back.  So would a bind naming a port: fd's
         * port counts as the app's from now on (kernel TCP keeps it, hook_connect.c). */
        if (SHIM_FD_IS_TCPNEW(v)) {
            shim_fd_opts_mark(fd);
            shim_fd_bind_note(fd, false);
        }
        shim_fd_fresh(fd2);
    }
}

static bool target_is_ours(int fd2)
{
    uintptr_t v = shim_fd_get(fd2);
    if (SHIM_FD_IS_OWN(v)) {
        SHIM_WARN("dup2/dup3 onto fd %d refused: it belongs to the shim", fd2);
        errno = EBUSY;
        return true;
    }
    return false;
}

SHIM_EXPORT int dup(int fd)
{
    int r = shim_real_dup(fd);
    if (r >= 0 && shim_fdtab && !shim_tls_guard)
        copied(fd, r);
    return r;
}

SHIM_EXPORT int dup2(int fd, int fd2)
{
    if (!shim_fdtab || shim_tls_guard)
        return shim_real_dup2(fd, fd2);
    if (fd == fd2 || target_is_ours(fd2))
        return fd == fd2 ? shim_real_dup2(fd, fd2) : -1;
    int r = shim_real_dup2(fd, fd2);
    if (r >= 0)
        copied(fd, r);
    return r;
}

SHIM_EXPORT int dup3(int fd, int fd2, int flags)
{
    if (!shim_fdtab || shim_tls_guard)
        return shim_real_dup3(fd, fd2, flags);
    if (fd != fd2 && target_is_ours(fd2))
        return -1;
    int r = shim_real_dup3(fd, fd2, flags);
    if (r >= 0)
        copied(fd, r);
    return r;
}

static SHIM_SLOW int fcntl_dup(int fd, int cmd, unsigned long arg)
{
    int r = shim_real_fcntl(fd, cmd, arg);
    if (r >= 0)
        copied(fd, r);
    return r;
}

static inline int do_fcntl(int fd, int cmd, unsigned long arg)
{
    /* F_GETFL/F_SETFL & co. (twice per connection in most event loops): straight to libc. */
    if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || !shim_fdtab || shim_tls_guard)
        return shim_real_fcntl(fd, cmd, arg);
    return fcntl_dup(fd, cmd, arg);
}

/* fcntl is variadic; every command's argument fits an unsigned long (int or pointer), which is
 * also how glibc forwards it.  On x86-64 and AArch64 Linux a variadic argument travels in the
 * same register as a named one, so the hooks are defined with a third named parameter (under
 * the symbol names, asm labels): the pass-through (F_GETFL/F_SETFL, twice per connection in
 * event loops) is then a compare and a tail call, without va_list's register spill and frame.
 * Elsewhere, the portable va_arg form. */
#if defined(__x86_64__) || defined(__aarch64__)
SHIM_EXPORT int shim_hook_fcntl(int fd, int cmd, unsigned long arg) __asm__("fcntl");
SHIM_EXPORT int shim_hook_fcntl64(int fd, int cmd, unsigned long arg) __asm__("fcntl64");

int shim_hook_fcntl(int fd, int cmd, unsigned long arg)
{
    return do_fcntl(fd, cmd, arg);
}

int shim_hook_fcntl64(int fd, int cmd, unsigned long arg)
{
    return do_fcntl(fd, cmd, arg);
}
#else
SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return do_fcntl(fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return do_fcntl(fd, cmd, arg);
}
#endif
