/* A pump between a non-blocking fd (the app's socketpair end, or the server side's loopback
 * socket) and an SST stream, on the event thread, with TCP's half-close and flow control:
 * nothing is read from one side faster than the other side takes it. */
#ifndef SHIM_SPUMP_H
#define SHIM_SPUMP_H

#include <stdatomic.h>
#include <stdbool.h>

#include "sst.h"

struct event_base;
struct shim_spump;

/* Called once when both directions ended or one failed, after the pump closed fd (with
 * shim_fd_close_own) and the stream.  err: 0, or the errno that ended it. */
typedef void (*shim_spump_done_fn)(void *arg, int err);

/* Takes over fd and s (the stream's callback becomes the pump's).  NULL on allocation failure
 * (nothing taken over). */
struct shim_spump *shim_spump_start(struct event_base *base, int fd, struct sst_stream *s,
                                    shim_spump_done_fn done, void *arg);

/* While *flag is set (the app's SO_LINGER {1, 0}), the app end's close resets the stream
 * instead of closing it after its data, as TCP's abortive close sends RST.  flag outlives the
 * pump. */
void shim_spump_abort_on_close(struct shim_spump *p, const atomic_bool *flag);

/* Called when the pump ends with an error of the stream or the channel (the peer reset it, the
 * channel died), with fd still open, just before the pump closes it: the owner may make the
 * close a reset for the app (shim_conn_reset_app).  Not for an end the app caused (its close
 * with data arriving, SO_LINGER {1, 0}). */
/* fd is a TCP socket (SST_LISTEN's loopback bridge): once it read EOF, a RST that answers
 * what the peer still writes resets the stream at once (shim/errwatch.h), not at the pump's
 * next write. */
void shim_spump_watch_rst(struct shim_spump *p);
typedef void (*shim_spump_error_fn)(void *arg, int fd, int err);
void shim_spump_on_error(struct shim_spump *p, shim_spump_error_fn fn);

/* flag (outlives the pump) set: the app shut its writing and one byte it did not write stays
 * queued behind its data (shim_fd_reserve_readable); an orderly end drains it, so that the app
 * sees a clean end, and an error end leaves it, so that the close is a reset. */
struct shim_reserve;
void shim_spump_reserve(struct shim_spump *p, struct shim_reserve *flag);

/* The exit drain also waits for this pump while accepted(arg) is true and the app end has not
 * ended yet: for an fd whose close is not seen at once (a TCP socket's FIN waits behind the
 * data it still holds).  Without it only an app end already closed is waited for. */
void shim_spump_wait_at_exit(struct shim_spump *p, bool (*accepted)(void *arg));

/* The stream p pumps (event thread; valid until the pump's done callback), and which ends
 * arrived: app_done, the app end's EOF (its shutdown(SHUT_WR) or close); peer_done, the
 * stream's end.  For getsockopt(TCP_INFO) (tcpinfo.c). */
struct sst_stream *shim_spump_stream(const struct shim_spump *p, bool *app_done, bool *peer_done);

/* The exit drain (event thread, polled by evthread.c after exit() closed the app's fds): pumps
 * whose app end has ended and whose bytes are all in their stream give the stream back
 * (sst_stream_close: it still delivers them); true while some pump is still reading an ended
 * app end.  Pumps whose app end is still open elsewhere are not waited for; with keep_orphans
 * they are left alone for the keeper (shim_spump_orphans), else the old way: one whose app end
 * was shut for writing gives its stream back as the others. */
bool shim_spump_exit_pending(bool keep_orphans);
/* Client pumps whose app end is still open after this image closed its copies (a forked child,
 * the exec'd program holds it): what the keeper (keeper.h) carries on. */
int shim_spump_orphans(void);
/* In a forked child: forgets the parent's pumps. */
void shim_spump_after_fork(void);

#endif
