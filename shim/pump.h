/* An fd-to-fd byte pump with half-close, run on the event thread: the app's socketpair end on
 * one side, a transport socket on the other. */
#ifndef SHIM_PUMP_H
#define SHIM_PUMP_H

struct event_base;
struct shim_pump;

/* Called once when both directions have ended or one failed; the pump has closed both fds.
 * err is 0 or the errno that ended it. */
typedef void (*shim_pump_done_fn)(void *arg, int err);

#include <stdatomic.h>

/* Pumps running in this process (read at exit to let them flush). */
extern atomic_int shim_pump_live;
/* Pumps whose app end is still open after this image closed its copies (a forked child, the
 * exec'd program holds it): what the keeper (keeper.h) carries on.  Event thread. */
int shim_pump_orphans(void);
/* In a forked child: forgets the parent's pumps. */
void shim_pump_after_fork(void);

/* Starts pumping between app_fd (our socketpair end) and net_fd.  Both must be non-blocking;
 * the pump owns and eventually closes both.  Returns NULL on allocation failure. */
struct shim_pump *shim_pump_start(struct event_base *base, int app_fd, int net_fd,
                                  shim_pump_done_fn done, void *arg);

/* Called when the network side fails (a read or write error: the peer's RST, a timeout), with
 * the app end still open, just before the pump closes it (shim_conn_reset_app: the app then
 * reads ECONNRESET instead of EOF).  Not for an end the app caused. */
typedef void (*shim_pump_error_fn)(void *arg, int app_fd, int err);
void shim_pump_on_error(struct shim_pump *p, shim_pump_error_fn fn);
/* As shim_spump_reserve: after the app's shutdown(SHUT_WR) the last queued byte is not data. */
struct shim_reserve;
void shim_pump_reserve(struct shim_pump *p, struct shim_reserve *flag);
/* linger0 (the connection's SO_LINGER {1, 0}, shim_conn): when the app's close ends the pump, the
 * network socket is closed abortively too, so its peer sees TCP's RST, not FIN. */
void shim_pump_linger(struct shim_pump *p, const atomic_bool *linger0);

#endif
