/* The background event thread: one libevent loop per process, started on the first replaced
 * connection, that runs the transports and pumps.  Restarted lazily in a forked child. */
#ifndef SHIM_EVTHREAD_H
#define SHIM_EVTHREAD_H

struct shim_conn;

/* Hands c (holding the event thread's reference) to the loop, starting it if needed.
 * Returns 0 or a positive errno. */
int shim_ev_submit(struct shim_conn *c);
/* Forwards an option the app set on a replaced fd to its live transport (no-op before the
 * thread runs: the transport then reads the remembered options at start). */
void shim_ev_set_option(struct shim_conn *c, int level, int name, int value);
/* Runs fn(arg) on the event thread, starting it if needed (the server side's work: listeners
 * are opened and closed there).  Returns 0 or a positive errno (fn then never runs). */
int shim_ev_call(void (*fn)(void *arg), void *arg);
/* The same only if the thread runs already (ESRCH otherwise: fn does not run): for work that
 * must not start a thread on the app's thread. */
int shim_ev_call_if_running(void (*fn)(void *arg), void *arg);
/* A detached thread of the shim's running fn(arg), with every signal blocked (the app's
 * signals belong to the app's threads).  0 or pthread_create's error. */
int shim_thread_spawn(void *(*fn)(void *), void *arg);
/* The loop's event_base (event thread only; NULL before the first start). */
struct event_base *shim_ev_base(void);
/* At exit(): closes the app's remaining replaced fds (the kernel would a moment later) and
 * waits until what the app wrote is delivered -- handed to the kernel by the socket pumps,
 * acknowledged by the peer for SST streams -- as the kernel does for a TCP socket closed at
 * exit; it gives up after SHIM_EXIT_FLUSH_MS without progress. */
#define SHIM_EXIT_FLUSH_MS 2000
void shim_ev_flush_at_exit(void);
/* exec() (hook_exec.c): the same for the end of this process image; replaced fds that survive
 * the exec (no FD_CLOEXEC) are shut for writing instead of closed (docs/shim.md §5). */
void shim_ev_flush_at_exec(void);
/* Installs the pthread_atfork handlers; once, from init. */
void shim_ev_install_atfork(void);

#endif
