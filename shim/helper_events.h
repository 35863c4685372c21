/* The event connection to sstd (helper_events.c): how a hand-off's stream error reaches the app
 * as ECONNRESET although sstd, not the shim, holds the other end of the app's socketpair. */
#ifndef SHIM_HELPER_EVENTS_H
#define SHIM_HELPER_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* At a hand-off, before CONNECT goes: makes sure this process has its event connection to sstd
 * (one per process, served by the event thread, which this starts if needed).  The first call
 * dials and says EVENTS at once, on the calling thread, so that sstd registers it before the
 * CONNECT that follows can fail (a refused port answers within a round trip).  Cheap after
 * the first call: one getpid() and one atomic load.  on_event_thread: the caller is it. */
void shim_helper_events_want(bool on_event_thread);
/* The same off the calling thread (a short-lived thread of its own does it), for a hand-off
 * inside the app's connect(): the first connection of a process (a curl) would otherwise wait
 * for the dial and the event thread's start before its request could go.  sstd holds a failed
 * stream's report up to 1 s for the process's event connection (docs/helper.md "Resets").
 * then(arg), if not NULL, runs on the event thread afterwards (started by that short-lived
 * thread, not by the caller); cancel(arg) runs instead, on some thread, if it cannot. */
void shim_helper_events_want_soon(void (*then)(void *), void (*cancel)(void *), void *arg);
/* The words CONNECT carries so that sstd can report the stream's failure: " RESET FD DEV INO",
 * FD the number the app (or the relay) reads, DEV/INO the socket behind it (the reset is
 * armed only while FD names that socket).  With sock >= 0, *dev and *ino are set to sock's
 * (fstat); "" and false if it cannot be examined (sstd then closes as before: EOF). */
bool shim_helper_events_words(int fd, int sock, dev_t *dev, ino_t *ino, char *out, size_t len);

#endif
