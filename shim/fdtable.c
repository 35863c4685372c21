/* The fd table: ownership and replacement records per fd number, plus high-number placement of
 * the shim's own fds (preload-shims.md lessons 6 and 8). */
#define _GNU_SOURCE
#include "fdtable.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "conn.h"
#include "epollrec.h"
#include "real.h"

_Atomic(uintptr_t) *shim_fdtab;
int shim_fdtab_size;
static int fd_floor;
static pid_t owner_pid;   /* the process this table describes */

/* A vfork() child shares our memory but has its own fd table, and no atfork handler tells us
 * about it: its closes and dups (posix_spawn file actions, subprocess close_fds) must not edit
 * the parent's records, let alone free its connections. */
static bool foreign_process(void)
{
    return (pid_t)syscall(SYS_getpid) != owner_pid;
}

bool shim_fd_foreign_process(void)
{
    return foreign_process();
}

void shim_fd_after_fork(void)
{
    owner_pid = (pid_t)syscall(SYS_getpid);
}

int shim_fd_init(void)
{
    struct rlimit rl;
    size_t n = 65536;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        n = rl.rlim_max < 1024 ? 1024 : (size_t)rl.rlim_max;
    /* Untouched pages cost nothing: MAP_NORESERVE keeps a large table cheap. */
    void *p = mmap(NULL, n * sizeof(uintptr_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    /* Own fds go in the top quarter of the soft limit (at most 1024 slots below it), far from
     * the small numbers programs dup2 onto, yet inside the limit. */
    rlim_t cur = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (cur > n)
        cur = n;
    fd_floor = cur > 4096 ? (int)(cur - 1024) : (int)(cur * 3 / 4);
    owner_pid = (pid_t)syscall(SYS_getpid);
    shim_fdtab = p;
    shim_fdtab_size = (int)n;   /* after the table: shim_fd_get checks only the size */
    return 0;
}

int shim_fd_floor(void)
{
    return fd_floor;
}

void shim_fd_set(int fd, uintptr_t v)
{
    if (!shim_fdtab || fd < 0 || fd >= shim_fdtab_size || foreign_process())
        return;
    uintptr_t old = atomic_exchange_explicit(&shim_fdtab[fd], v, memory_order_acq_rel);
    if (SHIM_FD_IS_CONN(old))
        shim_conn_unref((struct shim_conn *)old);
    else if (old == SHIM_FD_TCPREC)
        shim_epollrec_forget(fd);
}

void shim_fd_untag_tcpnew(int fd)
{
    if (!shim_fdtab || fd < 0 || fd >= shim_fdtab_size)
        return;
    uintptr_t tag = SHIM_FD_TCPNEW;
    if (atomic_compare_exchange_strong_explicit(&shim_fdtab[fd], &tag, 0, memory_order_acq_rel,
                                                memory_order_relaxed))
        return;
    tag = SHIM_FD_TCPREC;
    if (atomic_compare_exchange_strong_explicit(&shim_fdtab[fd], &tag, 0, memory_order_acq_rel,
                                                memory_order_relaxed))
        shim_epollrec_forget(fd);
}

void shim_fd_mark_tcprec(int fd)
{
    if (!shim_fdtab || fd < 0 || fd >= shim_fdtab_size)
        return;
    uintptr_t tag = SHIM_FD_TCPNEW;
    atomic_compare_exchange_strong_explicit(&shim_fdtab[fd], &tag, SHIM_FD_TCPREC,
                                            memory_order_acq_rel, memory_order_relaxed);
}

void shim_fd_fresh(int fd)
{
    if (shim_fd_get(fd) != 0)
        shim_fd_set(fd, 0);
}

int shim_fd_hide(int fd, uintptr_t tag)
{
    int nfd = fd;
    if (fd < fd_floor) {
        nfd = shim_real_fcntl(fd, F_DUPFD_CLOEXEC, (unsigned long)fd_floor);
        if (nfd >= 0)
            shim_real_close(fd);
        else
            nfd = fd;
    }
    shim_real_fcntl(nfd, F_SETFD, FD_CLOEXEC);
    shim_fd_set(nfd, tag);
    return nfd;
}

void shim_fd_close_own(int fd)
{
    shim_fd_set(fd, 0);
    shim_real_close(fd);
}

void shim_fd_close_engine_fds(void)
{
    if (!shim_fdtab)
        return;
    for (int fd = 0; fd < shim_fdtab_size; fd++) {
        if (atomic_load_explicit(&shim_fdtab[fd], memory_order_relaxed) == SHIM_FD_ENGINE) {
            atomic_store_explicit(&shim_fdtab[fd], 0, memory_order_relaxed);
            shim_real_close(fd);
        }
    }
}

bool shim_fd_survives_image(int fd, bool at_exec)
{
    int fl = at_exec ? shim_real_fcntl(fd, F_GETFD, 0) : FD_CLOEXEC;
    return fl >= 0 && !(fl & FD_CLOEXEC);
}
