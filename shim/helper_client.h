/* The hand-off of connections to the helper daemon, sstd (helper_client.c). */
#ifndef SHIM_HELPER_CLIENT_H
#define SHIM_HELPER_CLIENT_H

#include <stdbool.h>
#include <sys/socket.h>

struct event_base;
struct shim_conn;

/* Event thread: starts carrying c through the sstd listening at path.  False if the daemon
 * cannot be reached now (nothing was started; the caller uses the in-process engine). */
bool shim_helper_start(struct shim_conn *c, struct event_base *base, const char *path);
/* Opens a control connection to the daemon at path: a hidden engine fd, or -1. */
int shim_helper_dial(const char *path);
/* One request line on a control connection, with pass_fd (>= 0) by SCM_RIGHTS; never blocks
 * (a fresh connection takes a short line whole).  False if it did not go out whole. */
bool shim_helper_send(int fd, const char *line, int pass_fd);
/* The helper's socket path this process uses, or NULL (SST_HELPER=off). */
const char *shim_helper_path(void);
/* App thread, inside connect() to a selected destination: if the helper daemon knows the host
 * speaks SST (this process's recent CAPS answer, else one CAPS question), hands the connection
 * over at once and returns connect()'s answer (0, or -1 with errno: EINPROGRESS for a
 * non-blocking socket).  SHIM_HELPER_LATER: not done, nothing changed; take the regular path. */
#define SHIM_HELPER_LATER 1
/* ... SHIM_HELPER_TCP: nothing changed; sstd lists the port as served by TCP only (refused
 * over SST lately, reached by a shim's TCP fallback): auto mode connects with kernel TCP. */
#define SHIM_HELPER_TCP 2
struct sockaddr;
int shim_helper_connect_now(int fd, const struct sockaddr *sa, socklen_t len);
/* Tells sstd (TCPONLY, fire and forget) that dest refused over SST and TCP served it, so other
 * processes' connections to it skip SST for secs seconds. */
void shim_helper_note_tcp_only(const struct sockaddr *dest, unsigned secs);
/* The in-process engine's start (transport_sst.c), for when the helper goes away. */
int shim_sst_start_inproc(struct shim_conn *c, struct event_base *base);

/* Tells sstd about the app's own use of a connection it pumps, named by the socket CONNECT's
 * RESET words gave (dev/ino): "SHUTWR" (the app shut its writing: sstd ends the stream's write
 * side once it has read what the socket holds), "LINGER0" / "LINGER" (an abortive close asked
 * for, or no longer: the app's close then resets the stream).  On the caller's thread, waiting at
 * most 100 ms for the answer; false if sstd did not do it (an older or slow daemon). */
bool shim_helper_mark(dev_t dev, ino_t ino, const char *what);
/* Asks sstd for the stream and channel numbers of the hand-off named dev/ino (INFO, for
 * getsockopt(TCP_INFO)): its answer line in buf.  The caller's thread, at most 100 ms; false if
 * sstd did not answer (an older daemon answers "unknown"). */
bool shim_helper_info(dev_t dev, ino_t ino, char *buf, size_t cap);

#endif
