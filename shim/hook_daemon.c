/* daemon(3): libc's forks and ends the parent with its internal _exit, which no hook sees, so
 * the connections the parent's event thread pumped died with it (ssh -f: authenticated, then
 * daemon(), then the session is gone).  Here the parent ends as exit() would for the shim --
 * the drain, and a keeper for the connections the daemon child holds (keeper.h) -- then
 * _exit(0); the child does what libc's daemon does.  Without an event thread, libc's own. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <paths.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "evthread.h"
#include "fdtable.h"
#include "real.h"
#include "shim.h"

/* The child's part, as glibc's daemon(): a new session, "/" unless nochdir, stdin/out/err on
 * /dev/null unless noclose (refused, ENODEV, when /dev/null is not the null device). */
static int become_daemon(int nochdir, int noclose)
{
    if (setsid() < 0)
        return -1;
    if (!nochdir && chdir("/") != 0) {
        /* glibc ignores it too */
    }
    if (noclose)
        return 0;
    int fd = open(_PATH_DEVNULL, O_RDWR);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
        close(fd);
        errno = ENODEV;
        return -1;
    }
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
    return 0;
}

SHIM_EXPORT int daemon(int nochdir, int noclose)
{
    if (!shim_engaged() || shim_fd_foreign_process() || !shim_ev_base()) {
        int (*real)(int, int) = (int (*)(int, int))dlsym(RTLD_NEXT, "daemon");
        if (!real) {
            errno = ENOSYS;
            return -1;
        }
        return real(nochdir, noclose);
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        shim_tls_guard++;
        shim_ev_flush_at_exit();
        _exit(0);
    }
    return become_daemon(nochdir, noclose);
}
