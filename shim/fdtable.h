/* The fd table: a flat array indexed by fd number saying which fds the shim owns or has
 * replaced.  Lookups are one atomic load, so a program that never uses SST pays nothing else. */
#ifndef SHIM_FDTABLE_H
#define SHIM_FDTABLE_H

#include <stdatomic.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Entry values: 0 = not ours; these two tags; anything else is a struct shim_conn pointer
 * holding one reference. */
#define SHIM_FD_ENGINE ((uintptr_t)1)  /* event loop, wake pipe, pump ends, transport sockets */
#define SHIM_FD_LOG ((uintptr_t)2)     /* the log file: survives fork */
#define SHIM_FD_TCPNEW ((uintptr_t)3)  /* the app's TCP socket, not yet connected: epoll_ctl
                                          registrations are recorded for replay at the swap */
#define SHIM_FD_TCPREC ((uintptr_t)4)  /* the same, with registrations recorded (epollrec.h):
                                          only then has an uncarried connect() or a close()
                                          records to drop, so the common case takes no lock */
#define SHIM_FD_IS_OWN(v) ((v) == SHIM_FD_ENGINE || (v) == SHIM_FD_LOG)
/* A not-yet-connected TCP socket of the app: TCPNEW or TCPREC (one subtract and compare). */
#define SHIM_FD_IS_TCPNEW(v) ((v) - SHIM_FD_TCPNEW <= SHIM_FD_TCPREC - SHIM_FD_TCPNEW)
#define SHIM_FD_IS_CONN(v) ((v) > SHIM_FD_TCPREC)

/* Hidden: every hook reads these PC-relative, without a GOT load. */
#pragma GCC visibility push(hidden)
extern _Atomic(uintptr_t) *shim_fdtab;
extern int shim_fdtab_size;
/* Set (never cleared) before the first connection record is stored: until then no fd can be a
 * carried connection, and the write hooks skip the table (hook_write.c). */
extern atomic_bool shim_fd_conns_seen;
/* One byte per fd number, beside the table, about the not-yet-connected TCP socket there.
 * SHIM_FD_OPT_SET once the app may have set a socket option on it (its setsockopt, or a dup that
 * could set one unseen): a carried connect of a socket without it skips reading a dozen options
 * back from the kernel (they are the defaults, which the hooks answer without a copy): conn.c.
 * A stale bit left by an earlier socket of the number only costs that read.
 * SHIM_FD_OPT_ANYPORT after the app's bind() asked for port 0 (the kernel's choice), cleared by
 * a bind that named a port: the bound port is then no part of what the app asked for, and the
 * connection can still be carried (hook_bind.c, hook_connect.c). */
extern _Atomic(uint8_t) *shim_fd_optset;
#define SHIM_FD_OPT_SET ((uint8_t)1)
#define SHIM_FD_OPT_ANYPORT ((uint8_t)2)
#pragma GCC visibility pop

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

/* Marks fd's socket as possibly carrying options the app set (see shim_fd_optset); fd is a
 * TCPNEW or TCPREC entry, so inside the table. */
static inline void shim_fd_opts_mark(int fd)
{
    atomic_fetch_or_explicit(&shim_fd_optset[fd], SHIM_FD_OPT_SET, memory_order_relaxed);
}

/* The app's bind() of fd's not-yet-connected TCP socket succeeded, asking for port 0 (anyport)
 * or naming one.  fd is a TCPNEW or TCPREC entry, so inside the table. */
static inline void shim_fd_bind_note(int fd, bool anyport)
{
    if (anyport)
        atomic_fetch_or_explicit(&shim_fd_optset[fd], SHIM_FD_OPT_ANYPORT, memory_order_relaxed);
    else
        atomic_fetch_and_explicit(&shim_fd_optset[fd], (uint8_t)~SHIM_FD_OPT_ANYPORT, memory_order_relaxed);
}
/* Whether the port fd's socket is bound to is the kernel's choice (its last bind, seen by the
 * hook, asked for port 0); false for an fd the socket() hook did not tag. */
bool shim_fd_bound_anyport(int fd);

/* Whether the app may have set options on fd's not-yet-connected TCP socket, clearing the mark:
 * true for any fd the socket() hook did not tag (it could not watch it). */
bool shim_fd_opts_take(int fd);
/* The same without clearing the mark (what a hand-off inside connect() tells sstd). */
bool shim_fd_opts_peek(int fd);

/* Stores v for fd, dropping whatever was there (a conn loses the table's reference). */
void shim_fd_set(int fd, uintptr_t v);
/* SHIM_FD_TCPNEW on / off for the app's TCP socket fd, without shim_fd_set's getpid() (these two
 * run on every socket() and uncarried connect(), so a program the shim does not carry must pay
 * no system call for them).  Tagging only moves 0 -> TCPNEW and untagging TCPNEW -> 0 (a
 * compare-and-swap), so neither can drop a connection record.  The vfork case that getpid()
 * guards against costs at most epoll bookkeeping here: a vfork child's socket() can tag a
 * number that is free or a non-TCP fd in the parent (route() checks the socket type before
 * it would use the records), and a vfork child does not connect() the parent's sockets. */
void shim_fd_untag_tcpnew(int fd);
/* epoll_ctl is about to record a registration for fd: TCPNEW -> TCPREC. */
void shim_fd_mark_tcprec(int fd);

static inline void shim_fd_tag_tcpnew(int fd)
{
    if ((unsigned)fd >= (unsigned)shim_fdtab_size)
        return;
    uintptr_t zero = 0;
    atomic_compare_exchange_strong_explicit(&shim_fdtab[fd], &zero, SHIM_FD_TCPNEW,
                                            memory_order_acq_rel, memory_order_relaxed);
}

/* True in a vfork() child (our memory, another process): it must not act for the parent. */
bool shim_fd_foreign_process(void);

/* The uncarried connect() of a socket whose entry read v: a TCPNEW tag goes with one
 * compare-and-swap; TCPREC also drops its epoll records (out of line). */
static inline void shim_fd_untag(int fd, uintptr_t v)
{
    uintptr_t tag = SHIM_FD_TCPNEW;
    if (v == SHIM_FD_TCPNEW &&
        atomic_compare_exchange_strong_explicit(&shim_fdtab[fd], &tag, 0, memory_order_acq_rel,
                                                memory_order_relaxed))
        return;
    if (SHIM_FD_IS_TCPNEW(v))
        shim_fd_untag_tcpnew(fd);
}
/* The kernel just handed out fd: anything recorded for that number is stale. */
void shim_fd_fresh(int fd);
/* Moves an fd the shim owns to a high number with FD_CLOEXEC and tags it: above the app's soft
 * RLIMIT_NOFILE where the hard limit leaves room (see shim_fd_room_enter), else into the top
 * quarter below it.  Returns the new fd (the old number is closed), or fd itself tagged if no
 * high slot is free. */
int shim_fd_hide(int fd, uintptr_t tag);
/* The same, but -1 (fd closed) when no high slot is free, for a descriptor the shim may do
 * without rather than take one of the numbers the app uses first. */
int shim_fd_hide_high(int fd, uintptr_t tag);
/* RLIMIT_NOFILE bounds descriptor NUMBERS as they are handed out, not how many a process holds.
 * Between these two calls (nestable per thread; one thread at a time) the soft limit is raised
 * to the hard one, so descriptors the shim creates meanwhile, and shim_fd_hide's moves, may take
 * numbers above the app's own limit: a carried connection costs the app no number beyond its
 * socket's, as with kernel TCP, even when the app is at its limit.  The app's limit is put back
 * at the end (unless the app changed it meanwhile).  A no-op where soft == hard. */
void shim_fd_room_enter(void);
void shim_fd_room_leave(void);
/* socket()/socketpair() for the shim's own descriptors: a failure for want of a number below
 * the app's limit (EMFILE) is retried in the room above it. */
int shim_fd_own_socket(int domain, int type, int proto);
int shim_fd_own_socketpair(int domain, int type, int proto, int sv[2]);
/* Releases an engine fd: untags and really closes it. */
void shim_fd_close_own(int fd);
/* In a forked child (atfork): the table now describes this process. */
void shim_fd_after_fork(void);
/* pthread_atfork prepare/parent: no window of shim_fd_room_enter is open across a fork (the
 * child's after_fork starts with the lock free). */
void shim_fd_fork_prepare(void);
void shim_fd_fork_parent(void);
/* Closes [first, last] but the shim's own fds (in sub-ranges, close_range(2) with flags), and
 * drops the records of what it closes (not with CLOSE_RANGE_CLOEXEC: those stay open).  The
 * close_range/closefrom hooks; the keeper (keeper.c), which keeps nothing of the app's.  0 or
 * -1 (errno) as close_range. */
int shim_fd_close_range_app(unsigned first, unsigned last, int flags);
/* In a forked child: closes every SHIM_FD_ENGINE fd inherited from the parent. */
void shim_fd_close_engine_fds(void);
/* What poll(2) reports for fd right now (0 if nothing): POLLHUP once every copy of a
 * socketpair's other end is closed, POLLRDHUP once it shut its writing (events). */
static inline short shim_fd_poll_now(int fd, short events)
{
    struct pollfd q = { .fd = fd, .events = events };
    return poll(&q, 1, 0) == 1 ? q.revents : 0;
}
/* Makes closing pump_end (one end of a Unix stream socketpair) fail the other end's reads with
 * ECONNRESET, after the bytes queued for it: Linux sets ECONNRESET on the peer of a unix
 * stream socket closed with unread bytes in its receive queue (af_unix.c, unix_release_sock),
 * so one byte is written from the app's end, app_fd, unless bytes wait there already.  The
 * app may have closed app_fd and reused the number meanwhile: the byte goes through a private
 * duplicate only if that names the socket dev/ino (the app's end, recorded at the swap), never
 * into an unrelated descriptor.  pump_end may be -1 (not held here: the byte is always
 * written).  False when it cannot be done (the app shut its write side, the number is closed
 * or reused): the close is then a clean EOF.  The caller closes pump_end afterwards. */
bool shim_reset_arm(int app_fd, dev_t dev, ino_t ino, int pump_end);
/* The transport failed after the peer's end of stream reached the app (its FIN, then a reset:
 * kernel TCP's RST in CLOSE_WAIT).  TCP's answer there is not ECONNRESET: tcp_reset sets EPIPE
 * for that state, and reads keep returning 0 (tcp_recvmsg looks at SOCK_DONE before sk_err), so
 * the app's writes fail with EPIPE (and SIGPIPE) and its reads end with EOF.  A reset armed on
 * the socketpair would fail the next read with ECONNRESET instead; so pump_end, the app end's
 * peer, is shut for reading (the app's writes fail with EPIPE from now on) and emptied of what
 * the app wrote (unread bytes would make the close a reset), and the caller then closes it. */
void shim_reset_after_fin(int pump_end);
/* A private duplicate of fd if fd still names the socket dev/ino (the app may have closed the
 * number and reused it meanwhile), for acting on the app's socket from another thread; -1
 * otherwise.  The caller closes it. */
int shim_fd_pin(int fd, dev_t dev, ino_t ino);
/* After the app's shutdown(SHUT_WR) on a connection a pump of this process reads, the shutdown
 * hook queues one byte behind the app's data (hook_sockopt.c): the pump must leave it unread,
 * since it is what still lets a reset reach the app (shim_reset_arm: a write from the app's end
 * is refused once it is shut).  How many bytes of fd's queue are the app's data, at most max;
 * 0 with *eof once only that byte is left and the app's writing is shut (its EOF); 0 without
 * *eof while the shutdown itself is still to come (a moment: the hook makes both calls). */
size_t shim_fd_reserve_readable(int fd, size_t max, bool *eof);
/* The handshake between the shutdown hook (an app thread: sets `on`, then queues the byte) and
 * the pump (the event thread: looks at `on`, then reads).  Without it a pump that looked just
 * before the hook set `on` would read the byte with the app's data and send it to the peer.
 * Dekker-style with sequentially consistent atomics: the pump raises `reading` before it looks
 * at `on` and lowers it after its recv; the hook raises `on`, then waits for `reading` to drop
 * before it queues the byte.  So either the pump sees `on` (and leaves the last byte), or its
 * recv ends before the byte is there. */
struct shim_reserve {
    atomic_bool on;        /* the app's writing is shut and its last queued byte is not data */
    atomic_bool reading;   /* the pump is between looking at `on` and the end of its recv */
};
static inline bool shim_reserve_enter(struct shim_reserve *r)
{
    atomic_store(&r->reading, true);
    return atomic_load(&r->on);
}
static inline void shim_reserve_leave(struct shim_reserve *r)
{
    atomic_store(&r->reading, false);
}
/* Whether fd outlives the end of this process image: none at exit, at exec those without
 * FD_CLOEXEC. */
bool shim_fd_survives_image(int fd, bool at_exec);

#endif
