/* The shim's own reference to sstd's end of each hand-off (helper_hold.c): sstd's death, of any
 * kind, must reach the app as a reset (ECONNRESET), never as the clean EOF a Unix socket gives
 * when its peer closes (docs/helper.md "sstd's death"). */
#ifndef SHIM_HELPER_HOLD_H
#define SHIM_HELPER_HOLD_H

#include <stdbool.h>
#include <sys/types.h>

/* sstd (pid sstd, from the control connection's SO_PEERCRED) took end -- its end of the socket
 * that fd (device dev, inode ino) reads: the app's own, or the shim's relay end -- with a
 * CONNECT.  end becomes the shim's (it is closed if it cannot be kept).  While the shim holds
 * it, sstd's close of its copy does not end the app's connection; when sstd is gone the shim
 * makes the close a reset (shim_reset_arm).  Any thread; on_event_thread: the caller is it. */
struct shim_conn;
/* c: the app's connection (a reference the hold takes over, or NULL): its SO_ERROR then gives
 * the errno sstd reports for the stream, not just the kernel's ECONNRESET. */
void shim_helper_hold(int end, int fd, dev_t dev, ino_t ino, pid_t sstd, struct shim_conn *c,
                      bool on_event_thread);
/* Event thread: sstd passed back end, its end of the socket fd/dev/ino, for a reset with errno
 * err (RESET): arms the reset (shim_reset_arm), records err for the app's SO_ERROR and write
 * (as the in-process engine's reset does), and releases the hold of that socket.  The caller
 * closes end afterwards. */
void shim_helper_hold_reset(int fd, dev_t dev, ino_t ino, int err, int end);
/* Event thread: sstd never got its copy of the end held for dev/ino (it answered fd-limit: the
 * kernel dropped the descriptor): the hold's end is handed back (still hidden, the shim's own)
 * so the in-process engine can carry the connection on it; -1 if there is no such hold. */
int shim_helper_hold_reclaim(dev_t dev, ino_t ino);
/* Event thread: the EVENTS answer of sstd pid said whether it shuts a hand-off's end down
 * before closing it whenever it does not pass it back (holds:true); an sstd that does not
 * would leave a held connection open forever, so its holds are dropped (EOF as before). */
void shim_helper_hold_sstd_answered(pid_t sstd, bool holds_ok);
/* Event thread: takes the holds queued by other threads (shim_helper_hold). */
void shim_helper_hold_drain(void);
/* The pid at the other end of a connected Unix socket, 0 if unknown. */
pid_t shim_helper_peer_pid(int sock);

#endif
