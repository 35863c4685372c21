/* The keeper: a process that goes on pumping this process's connections after its image ends
 * (exit, exec, daemon()) while another process -- a forked child, the exec'd program -- still
 * holds them (docs/shim.md §5 "The keeper"). */
#ifndef SHIM_KEEPER_H
#define SHIM_KEEPER_H

#include <stdbool.h>
#include <sys/types.h>

/* True while the event thread forks the keeper: the fork handlers then leave the copied loop,
 * tables and engine alone, for the keeper goes on with them. */
extern bool shim_keeper_forking;

/* Event thread only, from a callback of its loop (the loop's state is consistent there).
 * Forks the keeper, detached (its own session, no parent to reap it, the app's descriptors
 * and signal handlers gone).  Returns the keeper's pid in the calling process, 0 in the keeper
 * (which goes on from the same callback), -1 when it could not be made (errno). */
pid_t shim_keeper_fork(void);

#endif
