/* The event thread: a libevent loop fed through a mutex-protected queue and a wake-up pipe. */
#define _GNU_SOURCE
#include "evthread.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>

#include "conn.h"
#include "engine.h"
#include "errwatch.h"
#include "fdtable.h"
#include "keeper.h"
#include "log.h"
#include "pump.h"
#include "real.h"
#include "server.h"
#include "shim.h"
#include "spump.h"

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static bool ev_running;
static int wake_rd = -1, wake_wr = -1;
static struct shim_conn *queue_head, *queue_tail;
static struct event_base *ev_base;
static struct event *wake_ev;

/* An option the app set on a replaced fd, for the live transport. */
struct opt_cmd {
    struct opt_cmd *next;
    struct shim_conn *c;   /* holds a reference */
    int level, name, value;
};
static struct opt_cmd *opt_head, *opt_tail;

/* A function to run on the event thread (shim_ev_call). */
struct call_cmd {
    struct call_cmd *next;
    void (*fn)(void *arg);
    void *arg;
};
static struct call_cmd *call_head, *call_tail;

/* The exit drain: exit() asks (EXIT_ASKED, then a wake-up byte, no lock: exit may come from
 * anywhere), the event thread checks every EXIT_CHECK_US until the SST pumps and the streams
 * they gave back are done (EXIT_DRAINED) -- or, when some connection is still open in another
 * process, hands everything to a keeper process and stops (EXIT_HANDED; keeper.h). */
enum { EXIT_NONE, EXIT_ASKED, EXIT_DRAINED, EXIT_HANDED };
static atomic_int exit_phase;
static atomic_uint exit_progress;    /* bumped when the peers acknowledge more of our streams */
static struct event *exit_ev;
static uint64_t exit_acked;
#define EXIT_CHECK_US 2000

/* The keeper (event thread only).  In the process that forks it: handing (the loop breaks and
 * the thread ends), keeper_failed (no second try: the orphans end with this image).  In the
 * keeper: keeper_mode, and the drain checks until nothing is left -- every KEEPER_IDLE_US while
 * connections are open elsewhere (the check only decides when the keeper ends: the pumps run on
 * their own; an ssh -f tunnel may last for days), every KEEPER_DRAIN_US afterwards. */
static struct event *keeper_ev;
static bool handing, keeper_failed, keeper_mode;
static int keeper_check_us;          /* the drain check's interval in the keeper */
static int keeper_idle_us;           /* how long the keeper's last bytes made no progress */
#define KEEPER_IDLE_US 1000000
#define KEEPER_DRAIN_US 50000

static void keeper_interval(int us)
{
    if (us == keeper_check_us)
        return;
    keeper_check_us = us;
    struct timeval tv = { us / 1000000, us % 1000000 };
    event_add(exit_ev, &tv);
}

static bool keeper_wanted(void)
{
    return keeper_mode || (shim_cfg.keeper && !keeper_failed);
}

/* In the keeper: it ends when no connection is left open elsewhere and what was handed over is
 * delivered -- or, as the exit drain, after SHIM_EXIT_FLUSH_MS without progress. */
static void keeper_check(bool pending, int orphans, bool progress)
{
    keeper_idle_us = progress || orphans > 0 ? 0 : keeper_idle_us + keeper_check_us;
    keeper_interval(orphans > 0 ? KEEPER_IDLE_US : KEEPER_DRAIN_US);
    if (orphans > 0)
        return;
    if ((pending || atomic_load(&shim_pump_live) > 0) && keeper_idle_us < SHIM_EXIT_FLUSH_MS * 1000)
        return;
    SHIM_DEBUG("keeper: done");
    _exit(0);
}

/* What a keeper would carry on: connections still open in another process, and SST
 * listeners whose listening socket is (server.c). */
static int open_elsewhere(void)
{
    return shim_spump_orphans() + shim_pump_orphans() + shim_server_orphans();
}

static void on_exit_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    bool keep = keeper_wanted();
    bool pending = shim_spump_exit_pending(keep);
    bool progress = false;
    struct sst_ctx *ctx = shim_engine_current(ev_base);
    if (ctx) {
        struct sst_ctx_stats st;
        sst_ctx_get_stats(ctx, &st);
        if (st.streams_closing > 0)
            pending = true;                 /* given back, not yet delivered and acknowledged */
        if (st.tx_acked != exit_acked) {
            exit_acked = st.tx_acked;
            atomic_fetch_add(&exit_progress, 1);
            progress = true;
        }
    }
    int orphans = keep ? open_elsewhere() : 0;
    if (keeper_mode) {
        keeper_check(pending, orphans, progress);
        return;
    }
    if (orphans > 0) {
        /* Forked from a callback of its own, never from inside another one (on_wake). */
        event_del(exit_ev);
        event_active(keeper_ev, EV_TIMEOUT, 1);
        return;
    }
    if (!pending) {
        event_del(exit_ev);
        atomic_store(&exit_phase, EXIT_DRAINED);
    }
}

static void exit_drain_start(void);

static void on_keeper(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int orphans = open_elsewhere();
    if (orphans == 0) {
        exit_drain_start();   /* ended meanwhile (a loopback FIN that was still on its way) */
        return;
    }
    pid_t k = shim_keeper_fork();
    if (k == 0) {
        keeper_mode = true;
        shim_server_in_keeper();
        keeper_interval(KEEPER_DRAIN_US);
        return;
    }
    if (k > 0) {
        SHIM_INFO("%d connection(s) or listener(s) still open in another process go on in "
                  "keeper pid %d", orphans, (int)k);
        handing = true;
        event_base_loopbreak(ev_base);
        return;
    }
    SHIM_WARN("cannot start a keeper process (%s): %d connection(s) or listener(s) still open "
              "in another process end with this one", strerror(errno), orphans);
    keeper_failed = true;
    exit_drain_start();
}

/* Also again after an exec whose drain ran but which then failed (the image went on). */
static void exit_drain_start(void)
{
    if (!exit_ev)
        exit_ev = event_new(ev_base, -1, EV_PERSIST, on_exit_check, NULL);
    if (!keeper_ev)
        keeper_ev = event_new(ev_base, -1, 0, on_keeper, NULL);
    if (!keeper_ev)
        keeper_failed = true;
    if (!exit_ev) {
        atomic_store(&exit_phase, EXIT_DRAINED);   /* cannot watch: exit as before */
        return;
    }
    struct timeval tv = { 0, EXIT_CHECK_US };
    event_add(exit_ev, &tv);
    on_exit_check(-1, 0, NULL);
}

static void start_one(struct shim_conn *c)
{
    int err = c->tr->start(c, ev_base);
    if (err != 0)
        shim_conn_fail(c, err);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    char buf[64];
    /* A short read emptied the pipe: no second read to meet EAGAIN. */
    while (read(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
        ;
    pthread_mutex_lock(&ev_lock);
    struct shim_conn *c = queue_head;
    struct opt_cmd *o = opt_head;
    struct call_cmd *k = call_head;
    queue_head = queue_tail = NULL;
    opt_head = opt_tail = NULL;
    call_head = call_tail = NULL;
    pthread_mutex_unlock(&ev_lock);
    /* Starts first: an option queued after a connect() then finds its transport started. */
    while (c) {
        struct shim_conn *next = c->next;
        c->next = NULL;
        start_one(c);
        c = next;
    }
    while (o) {
        struct opt_cmd *next = o->next;
        if (o->c->tr->set_option)
            o->c->tr->set_option(o->c, o->level, o->name, o->value);
        shim_conn_unref(o->c);
        free(o);
        o = next;
    }
    while (k) {
        struct call_cmd *next = k->next;
        k->fn(k->arg);
        free(k);
        k = next;
    }
    /* After the queue: a listen() just before the exit has its SST listener (a server that
     * listens, then daemonizes), which the drain may hand to a keeper. */
    if (atomic_load(&exit_phase) == EXIT_ASKED)
        exit_drain_start();
}

void shim_ev_set_option(struct shim_conn *c, int level, int name, int value)
{
    pthread_mutex_lock(&ev_lock);
    struct opt_cmd *o = ev_running ? calloc(1, sizeof(*o)) : NULL;
    if (o) {
        shim_conn_ref(c);
        *o = (struct opt_cmd){ .c = c, .level = level, .name = name, .value = value };
        if (opt_tail)
            opt_tail->next = o;
        else
            opt_head = o;
        opt_tail = o;
        ssize_t w = shim_real_write(wake_wr, "o", 1);
        (void)w;
    }
    pthread_mutex_unlock(&ev_lock);
}

static void *ev_main(void *arg)
{
    /* Everything this thread calls passes straight through the hooks. */
    shim_tls_guard = 1;
    event_base_dispatch(ev_base);
    if (handing) {
        /* The keeper has the loop now: this thread ends without touching it again. */
        atomic_store(&exit_phase, EXIT_HANDED);
        return NULL;
    }
    SHIM_WARN("event loop exited");
    return NULL;
}

/* The wake-up pipe and libevent's loop (its epoll fd and signal pipe are created through our
 * hooks: tagged as ours too, so a program closing "all" fds cannot pull the loop out from under
 * us).  0, an errno (the pipe), or -1 (libevent). */
static int ev_build_loop(void)
{
    int p[2];
    if (shim_real_pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return errno;
    wake_rd = shim_fd_hide(p[0], SHIM_FD_ENGINE);
    wake_wr = shim_fd_hide(p[1], SHIM_FD_ENGINE);
    shim_tls_hide_new = 1;
    shim_tls_guard++;
    struct event_config *ecfg = event_config_new();
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
    ev_base = ecfg ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg)
        event_config_free(ecfg);
    shim_tls_guard--;
    shim_tls_hide_new = 0;
    if (ev_base)
        (void)shim_errwatch_open(ev_base);   /* with the loop's own fds, not at a later connection */
    return ev_base ? 0 : -1;
}

int shim_thread_spawn(void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t tid;
    /* The app's signals belong to the app's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Called with ev_lock held. */
static int ev_start(void)
{
    int saved = errno;
    errno = 0;   /* what the failure message reports (below): never a stale one */
    /* The loop's descriptors may take numbers above the app's limit (fdtable.h): the first
     * connection of a program at its limit still gets its event thread. */
    shim_fd_room_enter();
    int err = ev_build_loop();
    shim_fd_room_leave();
    if (err > 0) {
        errno = saved;
        return err;
    }
    if (err < 0)
        goto fail;
    wake_ev = event_new(ev_base, wake_rd, EV_READ | EV_PERSIST, on_wake, NULL);
    if (!wake_ev || event_add(wake_ev, NULL) < 0)
        goto fail;

    int rc = shim_thread_spawn(ev_main, NULL);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    ev_running = true;
    SHIM_DEBUG("event thread started (%s backend)", event_base_get_method(ev_base));
    errno = saved;
    return 0;
fail:
    /* errno says which call failed when it was a system call (pthread_create's result is put
     * there too); 0 is a libevent failure of its own.  Before, every failure read "system
     * error", which told nothing (seen once under load in test_shim_reset.sh's exec case). */
    SHIM_ERROR("cannot start the event thread: %s", errno ? strerror(errno) : "libevent");
    errno = saved;
    return EAGAIN;
}

int shim_ev_submit(struct shim_conn *c)
{
    int err = 0;
    pthread_mutex_lock(&ev_lock);
    if (!ev_running)
        err = ev_start();
    if (err == 0) {
        /* Only the first connection of a batch writes the wake-up byte: the event thread
         * takes the whole queue under this lock after draining the pipe, so a non-empty queue
         * already has its wake-up on the way (one write and one wake-up per batch, not per
         * connect() of a program opening many at once). */
        bool wake = !queue_head && !opt_head && !call_head;
        if (queue_tail)
            queue_tail->next = c;
        else
            queue_head = c;
        queue_tail = c;
        if (wake) {
            ssize_t w = shim_real_write(wake_wr, "x", 1);
            (void)w;   /* a full pipe already means "wake up" */
        }
    }
    pthread_mutex_unlock(&ev_lock);
    return err;
}

/* Queues fn(arg) for the event thread; start: start the thread if it is not running (else
 * ESRCH). */
static int call_queue(void (*fn)(void *arg), void *arg, bool start)
{
    struct call_cmd *k = calloc(1, sizeof(*k));
    if (!k)
        return ENOMEM;
    k->fn = fn;
    k->arg = arg;
    int err = 0;
    pthread_mutex_lock(&ev_lock);
    if (!ev_running)
        err = start ? ev_start() : ESRCH;
    if (err == 0) {
        if (call_tail)
            call_tail->next = k;
        else
            call_head = k;
        call_tail = k;
        ssize_t w = shim_real_write(wake_wr, "c", 1);
        (void)w;
    }
    pthread_mutex_unlock(&ev_lock);
    if (err != 0)
        free(k);
    return err;
}

int shim_ev_call(void (*fn)(void *arg), void *arg)
{
    return call_queue(fn, arg, true);
}

int shim_ev_call_if_running(void (*fn)(void *arg), void *arg)
{
    return call_queue(fn, arg, false);
}

struct event_base *shim_ev_base(void)
{
    return ev_base;
}

static void at_prepare(void)
{
    pthread_mutex_lock(&ev_lock);
    shim_fd_fork_prepare();
}

static void at_parent(void)
{
    shim_fd_fork_parent();
    pthread_mutex_unlock(&ev_lock);
}

/* Forgets the loop another process runs now (called with no event thread here): its fds are
 * closed, the loop itself is abandoned, not freed: its epoll fd is shared with that process,
 * and any epoll_ctl from here would remove that process's registrations. */
static void ev_forget(void)
{
    shim_fd_close_engine_fds();
    ev_running = false;
    ev_base = NULL;
    wake_ev = NULL;
    wake_rd = wake_wr = -1;
    queue_head = queue_tail = NULL;
    opt_head = opt_tail = NULL;   /* the parent's; leaked in the child */
    call_head = call_tail = NULL;
    shim_pump_after_fork();             /* the other process's pumps, not ours */
    shim_spump_after_fork();
    shim_errwatch_after_fork();
    atomic_store(&exit_phase, EXIT_NONE);
    exit_ev = NULL;
    exit_acked = 0;
    keeper_ev = NULL;
    handing = keeper_failed = keeper_mode = false;
    keeper_check_us = keeper_idle_us = 0;
}

/* The child has no event thread.  Its copies of the loop's fds must go (a pump end held open
 * here would hide the parent's close from the app), and the loop is the parent's (ev_forget).
 * Replaced connections stay usable in the child: their bytes are still pumped by the parent's
 * thread, like a TCP socket shared across fork.  The keeper is the exception: the copy of the
 * loop it gets is the one that goes on (keeper.h). */
static void at_child(void)
{
    pthread_mutex_unlock(&ev_lock);
    pthread_mutex_init(&ev_lock, NULL);
    shim_fd_after_fork();
    if (shim_keeper_forking)
        return;
    ev_forget();
}

/* The app's replaced fds at the end of this image: those the image's end closes (all at exit,
 * FD_CLOEXEC ones at exec) are closed; the survivors of an exec are shut for writing when
 * shut_survivors (nobody pumps them in the new program: what was written is still delivered
 * and the peer sees the end), else left to a keeper. */
static void end_conns(bool at_exec, bool shut_survivors)
{
    for (int fd = 0; fd < shim_fdtab_size; fd++) {
        uintptr_t v = shim_fd_get(fd);
        if (!SHIM_FD_IS_CONN(v))
            continue;
        /* sstd pumps it, and goes on after this image (the event thread may run only for the
         * event connection, helper_events.c): as if the shim were not here. */
        if (((struct shim_conn *)v)->external)
            continue;
        if (shim_fd_survives_image(fd, at_exec)) {
            if (shut_survivors)
                shim_real_shutdown(fd, SHUT_WR);
            continue;
        }
        shim_fd_set(fd, 0);
        shim_real_close(fd);
    }
}

/* Asks the event thread for the exit drain and waits until it is done or handed to a keeper.
 * As long as the peers keep acknowledging, a big last write may take its time; the wait ends
 * SHIM_EXIT_FLUSH_MS after the last progress (a dead peer, a reader that stopped). */
static void drain_wait(void)
{
    atomic_store(&exit_phase, EXIT_ASKED);
    ssize_t w = shim_real_write(wake_wr, "e", 1);
    (void)w;
    unsigned seen = atomic_load(&exit_progress);
    int stalled = 0, quick = 0;
    while (stalled < SHIM_EXIT_FLUSH_MS) {
        int phase = atomic_load(&exit_phase);
        if (phase == EXIT_HANDED || (atomic_load(&shim_pump_live) == 0 && phase == EXIT_DRAINED))
            break;
        /* Often there is nothing to wait for (sstd carries the connections; the event thread
         * runs for their event connection only): the first looks come every 50 us, so such a
         * process's exit costs the event thread's wake-up, not a millisecond. */
        struct timespec ts = { 0, quick < 20 ? 50000 : 1000000 };
        nanosleep(&ts, NULL);
        if (quick < 20)
            quick++;
        else
            stalled++;
        unsigned now = atomic_load(&exit_progress);
        if (now != seen) {
            seen = now;
            stalled = 0;
        }
    }
    if (stalled >= SHIM_EXIT_FLUSH_MS)
        SHIM_DEBUG("exit: %d connection(s) still open (shared with another process?)%s",
                   atomic_load(&shim_pump_live),
                   atomic_load(&exit_phase) == EXIT_DRAINED ? "" : "; SST data not acknowledged");
}

/* The end of this process image, by exit() or by exec (at_exec): the app's replaced fds are
 * closed -- at exec only those exec would close (FD_CLOEXEC).  What is still open then (the
 * survivors of an exec, copies in forked children) is carried on by a keeper process
 * (SST_KEEPER, keeper.h); without one, survivors are shut for writing: what was written is
 * still delivered and the peer sees the end. */
static void flush_at_end(bool at_exec)
{
    if (!ev_running)
        return;
    end_conns(at_exec, !shim_cfg.keeper);
    shim_server_close_at_exit(at_exec);
    /* A kernel-socket pump ends once its app end is closed and what it held is written (the
     * kernel sends the rest).  An SST pump hands the app's last bytes to its stream, which the
     * engine -- dying with this process -- must then deliver: the event thread reports when
     * every such stream is acknowledged (on_exit_check). */
    drain_wait();
    if (atomic_load(&exit_phase) == EXIT_HANDED) {
        pthread_mutex_lock(&ev_lock);
        ev_forget();                      /* the keeper's now; an exec that fails starts anew */
        pthread_mutex_unlock(&ev_lock);
        return;
    }
    if (at_exec && shim_cfg.keeper) {
        end_conns(true, true);            /* no keeper could be made: the way without one */
        drain_wait();
    }
}

void shim_ev_flush_at_exit(void)
{
    flush_at_end(false);
}

void shim_ev_flush_at_exec(void)
{
    if (ev_running)
        SHIM_DEBUG("exec: the connections this process pumps end with its image");
    flush_at_end(true);
}

void shim_ev_install_atfork(void)
{
    pthread_atfork(at_prepare, at_parent, at_child);
}
