/* The fd table: a flat array indexed by fd number saying which fds the shim owns or has
 * replaced.  Lookups are one atomic load, so a program that never uses SST pays nothing else. */
#ifndef SHIM_FDTABLE_H
#define SHIM_FDTABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Entry values: 0 = not ours; these two tags; anything else is a struct shim_conn pointer
 * holding one reference. */
#define SHIM_FD_ENGINE ((uintptr_t)1)  /* event loop, wake pipe, pump ends, transport sockets */
#define SHIM_FD_LOG ((uintptr_t)2)     /* the log file: survives fork */
#define SHIM_FD_TCPNEW ((uintptr_t)3)  /* the app's TCP socket, not yet connected: epoll_ctl
                                          registrations are recorded for replay at the swap */
#define SHIM_FD_IS_OWN(v) ((v) == SHIM_FD_ENGINE || (v) == SHIM_FD_LOG)
#define SHIM_FD_IS_CONN(v) ((v) > SHIM_FD_TCPNEW)

extern _Atomic(uintptr_t) *shim_fdtab;
extern int shim_fdtab_size;

/* Allocates the table (sized from RLIMIT_NOFILE, lazily backed by mmap).  0 or -1. */
int shim_fd_init(void);

/* One compare covers a negative fd, an fd past the table and an inert shim (size 0: the table
 * is published before its size, both once, in the constructor). */
static inline uintptr_t shim_fd_get(int fd)
{
    if ((unsigned)fd >= (unsigned)shim_fdtab_size)
        return 0;
    return atomic_load_explicit(&shim_fdtab[fd], memory_order_acquire);
}

/* Stores v for fd, dropping whatever was there (a conn loses the table's reference). */
void shim_fd_set(int fd, uintptr_t v);
/* SHIM_FD_TCPNEW on / off for the app's TCP socket fd, without shim_fd_set's getpid() (these two
 * run on every socket() and uncarried connect(), so a program the shim does not carry must pay
 * no system call for them).  Tagging only moves 0 -> TCPNEW and untagging TCPNEW -> 0 (a
 * compare-and-swap), so neither can drop a connection record.  The vfork case that getpid()
 * guards against costs at most epoll bookkeeping here: a vfork child's socket() can tag a
 * number that is free or a non-TCP fd in the parent (route() checks the socket type before
 * it would use the records), and a vfork child does not connect() the parent's sockets. */
void shim_fd_tag_tcpnew(int fd);
void shim_fd_untag_tcpnew(int fd);
/* The kernel just handed out fd: anything recorded for that number is stale. */
void shim_fd_fresh(int fd);
/* Moves an fd the shim owns to a high number with FD_CLOEXEC and tags it; returns the new fd
 * (the old number is closed), or fd itself tagged if no high slot is free. */
int shim_fd_hide(int fd, uintptr_t tag);
/* Releases an engine fd: untags and really closes it. */
void shim_fd_close_own(int fd);
/* The lowest number shim_fd_hide uses. */
int shim_fd_floor(void);
/* In a forked child (atfork): the table now describes this process. */
void shim_fd_after_fork(void);
/* In a forked child: closes every SHIM_FD_ENGINE fd inherited from the parent. */
void shim_fd_close_engine_fds(void);

#endif
