/* The fd table: ownership and replacement records per fd number, plus high-number placement of
 * the shim's own fds (preload-shims.md lessons 6 and 8). */
#define _GNU_SOURCE
#include "fdtable.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/close_range.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "conn.h"
#include "epollrec.h"
#include "log.h"
#include "real.h"

_Atomic(uintptr_t) *shim_fdtab;
_Atomic(uint8_t) *shim_fd_optset;
int shim_fdtab_size;
static int fd_floor;
#define FD_FLOOR_MAX 3072        /* highest fd_floor (see shim_fd_init) */
#define FD_GROW_HEADROOM 64      /* numbers of the shim's the early-grown table covers */
static pid_t owner_pid;   /* the process this table describes */

/* The room above the app's soft RLIMIT_NOFILE (see fdtable.h).  One window at a time in the
 * process; nested calls of the thread that holds it only count. */
static pthread_mutex_t room_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread unsigned room_depth;
static struct rlimit room_app;     /* the limits as the app set them */
static rlim_t room_top;            /* the raised soft limit, 0 while not raised */

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

void shim_fd_fork_prepare(void)
{
    pthread_mutex_lock(&room_lock);   /* no raised limit crosses a fork */
}

void shim_fd_fork_parent(void)
{
    pthread_mutex_unlock(&room_lock);
}

void shim_fd_after_fork(void)
{
    owner_pid = (pid_t)syscall(SYS_getpid);
    pthread_mutex_init(&room_lock, NULL);
}

/* The kernel grows a process's descriptor table when a number past its end is handed out, and
 * a multithreaded process then waits for an RCU grace period before the old table may go
 * (expand_fdtable: synchronize_rcu).  The shim's numbers are high (fd_floor, or above the app's
 * limit: shim_fd_hide), so its first one grew the table -- typically on a shim thread, after the
 * process had become multithreaded: 8-10 ms measured there, and the process's exit waited for
 * that thread (a shimmed curl took 33 ms of wall time against 16 over kernel TCP).  Grown here,
 * while the constructor runs single-threaded, it costs microseconds. */
static void grow_kernel_table(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    long top = fd_floor;
    long limit = rl.rlim_cur < (rlim_t)shim_fdtab_size ? (long)rl.rlim_cur : shim_fdtab_size;
    if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < (rlim_t)shim_fdtab_size) {
        top = (long)rl.rlim_cur;   /* the room above the app's limit (shim_fd_room_enter) */
        limit = rl.rlim_max < (rlim_t)shim_fdtab_size ? (long)rl.rlim_max : shim_fdtab_size;
    }
    top += FD_GROW_HEADROOM;
    if (top >= limit)
        top = limit - 1;
    int fd = shim_real_eventfd(0, EFD_CLOEXEC);
    if (fd < 0)
        return;
    shim_fd_room_enter();
    int hi = top > fd ? shim_real_fcntl(fd, F_DUPFD_CLOEXEC, top) : -1;
    shim_fd_room_leave();
    if (hi >= 0)
        shim_real_close(hi);
    shim_real_close(fd);
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
    void *o = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (o == MAP_FAILED) {
        munmap(p, n * sizeof(uintptr_t));
        return -1;
    }
    shim_fd_optset = o;
    /* Own fds go in the top quarter of the soft limit, far from the small numbers programs
     * dup2 onto, yet inside the limit; no higher than FD_FLOOR_MAX, since the kernel's table
     * must reach them (8 bytes a number: 512 KiB at 64 K, for every process under the shim). */
    rlim_t cur = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (cur > n)
        cur = n;
    fd_floor = cur * 3 / 4 < FD_FLOOR_MAX ? (int)(cur * 3 / 4) : FD_FLOOR_MAX;
    owner_pid = (pid_t)syscall(SYS_getpid);
    shim_fdtab = p;
    shim_fdtab_size = (int)n;   /* after the table: shim_fd_get checks only the size */
    grow_kernel_table();
    return 0;
}

atomic_bool shim_fd_conns_seen;

bool shim_fd_opts_peek(int fd)
{
    if (!SHIM_FD_IS_TCPNEW(shim_fd_get(fd)))
        return true;
    return (atomic_load_explicit(&shim_fd_optset[fd], memory_order_relaxed) & SHIM_FD_OPT_SET) != 0;
}

bool shim_fd_opts_take(int fd)
{
    if (!SHIM_FD_IS_TCPNEW(shim_fd_get(fd)))
        return true;
    return (atomic_exchange_explicit(&shim_fd_optset[fd], 0, memory_order_relaxed) & SHIM_FD_OPT_SET) != 0;
}

bool shim_fd_bound_anyport(int fd)
{
    if (!SHIM_FD_IS_TCPNEW(shim_fd_get(fd)))
        return false;
    return (atomic_load_explicit(&shim_fd_optset[fd], memory_order_relaxed) & SHIM_FD_OPT_ANYPORT) != 0;
}

void shim_fd_set(int fd, uintptr_t v)
{
    if (!shim_fdtab || fd < 0 || fd >= shim_fdtab_size || foreign_process())
        return;
    if (SHIM_FD_IS_CONN(v))
        atomic_store_explicit(&shim_fd_conns_seen, true, memory_order_relaxed);
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

void shim_fd_room_enter(void)
{
    if (room_depth++ > 0)
        return;
    pthread_mutex_lock(&room_lock);
    room_top = 0;
    /* Read first: the hard limit must stay exactly the app's (a privileged process could
     * raise it, and must not). */
    if (getrlimit(RLIMIT_NOFILE, &room_app) != 0) {
        room_app.rlim_cur = room_app.rlim_max = 0;
        return;
    }
    if (room_app.rlim_cur >= room_app.rlim_max || room_app.rlim_cur >= (rlim_t)shim_fdtab_size)
        return;   /* no room, or past the fd table */
    struct rlimit up = { .rlim_cur = room_app.rlim_max, .rlim_max = room_app.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &up) == 0)
        room_top = up.rlim_cur;
}

void shim_fd_room_leave(void)
{
    if (--room_depth > 0)
        return;
    if (room_top != 0) {
        struct rlimit now;
        /* The app's limit back; if the app itself set one meanwhile, that one stays. */
        if (prlimit(0, RLIMIT_NOFILE, &room_app, &now) == 0 && now.rlim_cur != room_top)
            prlimit(0, RLIMIT_NOFILE, &now, NULL);
    }
    room_top = 0;
    pthread_mutex_unlock(&room_lock);
}

/* Creation for the shim's own use: where the app holds every number below its limit, again in
 * the room above it. */
int shim_fd_own_socket(int domain, int type, int proto)
{
    int fd = shim_real_socket(domain, type, proto);
    if (fd < 0 && errno == EMFILE) {
        shim_fd_room_enter();
        fd = shim_real_socket(domain, type, proto);
        shim_fd_room_leave();
    }
    return fd;
}

int shim_fd_own_socketpair(int domain, int type, int proto, int sv[2])
{
    int r = shim_real_socketpair(domain, type, proto, sv);
    if (r < 0 && errno == EMFILE) {
        shim_fd_room_enter();
        r = shim_real_socketpair(domain, type, proto, sv);
        shim_fd_room_leave();
    }
    return r;
}

/* Moves fd to at least base; fd itself if it is there already or the move fails. */
static int move_up(int fd, int base)
{
    if (fd >= base)
        return fd;
    int nfd = shim_real_fcntl(fd, F_DUPFD_CLOEXEC, (unsigned long)base);
    if (nfd < 0)
        return fd;
    shim_real_close(fd);
    return nfd;
}

int shim_fd_hide(int fd, uintptr_t tag)
{
    shim_fd_room_enter();
    /* Above the app's own limit where there is room (the app keeps every number it may use),
     * else the top quarter of it. */
    int nfd = room_top != 0 ? move_up(fd, (int)room_app.rlim_cur) : fd;
    if (room_top == 0 || nfd < (int)room_app.rlim_cur)
        nfd = move_up(nfd, fd_floor);
    shim_fd_room_leave();
    if (nfd == fd)   /* a moved one has it already (F_DUPFD_CLOEXEC) */
        shim_real_fcntl(nfd, F_SETFD, FD_CLOEXEC);
    shim_fd_set(nfd, tag);
    return nfd;
}

int shim_fd_hide_high(int fd, uintptr_t tag)
{
    shim_fd_room_enter();
    int nfd = room_top != 0 ? move_up(fd, (int)room_app.rlim_cur) : fd;
    if (room_top == 0 || nfd < (int)room_app.rlim_cur)
        nfd = move_up(nfd, fd_floor);
    bool high = nfd >= fd_floor || (room_top != 0 && nfd >= (int)room_app.rlim_cur);
    shim_fd_room_leave();
    if (!high) {
        shim_real_close(nfd);
        return -1;
    }
    if (nfd == fd)   /* a moved one has it already (F_DUPFD_CLOEXEC) */
        shim_real_fcntl(nfd, F_SETFD, FD_CLOEXEC);
    shim_fd_set(nfd, tag);
    return nfd;
}

void shim_fd_close_own(int fd)
{
    shim_fd_set(fd, 0);
    shim_real_close(fd);
}

int shim_fd_close_range_app(unsigned first, unsigned last, int flags)
{
    unsigned start = first;
    unsigned top = (unsigned)shim_fdtab_size - 1;
    unsigned hi = last < top ? last : top;
    int rc = 0;

    for (unsigned fd = first; fd <= hi; fd++) {
        uintptr_t v = shim_fd_get((int)fd);
        if (v == 0)
            continue;
        if (SHIM_FD_IS_OWN(v)) {
            SHIM_DEBUG("close_range: shim-owned fd %u kept open", fd);
            if (start < fd && shim_real_close_range(start, fd - 1, flags) < 0)
                rc = -1;
            start = fd + 1;
        } else if (!(flags & CLOSE_RANGE_CLOEXEC)) {
            /* A replaced connection or a recorded TCP socket: the record goes with the fd. */
            shim_fd_set((int)fd, 0);
        }
    }
    /* start cannot wrap: it only moves past fds below the table size. */
    if (start <= last && shim_real_close_range(start, last, flags) < 0)
        rc = -1;
    return rc;
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

size_t shim_fd_reserve_readable(int fd, size_t max, bool *eof)
{
    int queued = 0;
    /* The shutdown first, then the queue: a queue looked at after the shutdown is final. */
    bool shut = shim_fd_poll_now(fd, POLLRDHUP) & (POLLRDHUP | POLLHUP);
    if (ioctl(fd, SIOCINQ, &queued) < 0 || queued <= 1) {
        *eof = shut;
        return 0;
    }
    *eof = false;
    return (size_t)queued - 1 < max ? (size_t)queued - 1 : max;
}

bool shim_reset_arm(int app_fd, dev_t dev, ino_t ino, int pump_end)
{
    int queued = 0;
    /* Bytes the app wrote and the pump did not read yet already make the close a reset. */
    if (pump_end >= 0 && ioctl(pump_end, SIOCINQ, &queued) == 0 && queued > 0)
        return true;
    int d = shim_fd_pin(app_fd, dev, ino);
    if (d < 0)
        return false;
    bool ok = shim_real_sendto(d, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0) == 1;
    shim_real_close(d);
    return ok;
}

void shim_reset_after_fin(int pump_end)
{
    if (pump_end < 0)
        return;
    /* Shut first: nothing the app writes after the shutdown can land in the queue, so the
     * queue, once read empty, stays empty until the close. */
    shutdown(pump_end, SHUT_RD);
    char b[4096];
    while (recv(pump_end, b, sizeof b, MSG_DONTWAIT) > 0)
        ;
}

int shim_fd_pin(int fd, dev_t dev, ino_t ino)
{
    if (fd < 0)
        return -1;
    /* A duplicate pins what the number names now: checked, then used, with no window for
     * the app to close and reuse the number in between. */
    int d = shim_real_fcntl(fd, F_DUPFD_CLOEXEC, (unsigned long)fd_floor);
    if (d < 0 && errno == EMFILE) {
        shim_fd_room_enter();            /* an app at its limit: a number above it */
        d = shim_real_fcntl(fd, F_DUPFD_CLOEXEC, (unsigned long)fd_floor);
        shim_fd_room_leave();
    }
    if (d < 0)
        return -1;
    struct stat st;
    if (fstat(d, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino)
        return d;
    shim_real_close(d);
    return -1;
}
