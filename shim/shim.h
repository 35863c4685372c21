/* Process-wide shim state shared by the hooks: configuration, the active flag, the per-thread
 * re-entry guard, and the negative cache. */
#ifndef SHIM_SHIM_H
#define SHIM_SHIM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

/* Hidden, as the fd table (fdtable.h): read PC-relative by every hook. */
#pragma GCC visibility push(hidden)
extern struct shim_config shim_cfg;
/* True once init succeeded with SST_PEERS set and SST_MODE != off.  When false every hook is
 * a straight call to libc. */
extern bool shim_active;
/* Thread-locals read by every hook.  initial-exec: the library is loaded at start-up
 * (LD_PRELOAD), so its TLS sits in the static block and an access is one %fs-relative load
 * rather than a __tls_get_addr call (the default model for -fPIC code). */
#define SHIM_TLS __thread __attribute__((tls_model("initial-exec")))
/* Non-zero while this thread runs shim code that may call hooked functions (the resolver at
 * init, the event thread): hooks then pass straight through. */
extern SHIM_TLS int shim_tls_guard;
/* Non-zero while the event thread builds its event_base: new fds go high and are tagged. */
extern SHIM_TLS int shim_tls_hide_new;
#pragma GCC visibility pop

uint64_t shim_now_ns(void);
/* Negative cache, locked: does dest lack SST? / record that it does. */
bool shim_nosst_has(const struct sockaddr *sa, socklen_t len);
void shim_nosst_put(const struct sockaddr *sa, socklen_t len);
/* Records dest (host and port) as served by TCP only for ttl_ns: refused over SST, reached by
 * kernel TCP.  Kept in the negative cache (bounded, oldest evicted); a longer entry stays. */
void shim_tcponly_put(const struct sockaddr *sa, socklen_t len, uint64_t ttl_ns);

/* Resolves the hostnames of SST_PEERS, once per process, at the first connect() that needs
 * the full match (docs/shim.md §1): a process that connects nowhere never asks the resolver.
 * Callers that read shim_cfg.peers call it first; other threads wait for it. */
void shim_peers_resolve_slow(void);
extern bool shim_peers_unresolved;
static inline void shim_peers_resolve(void)
{
    if (__atomic_load_n(&shim_peers_unresolved, __ATOMIC_ACQUIRE))
        shim_peers_resolve_slow();
}

/* A hook runs its shim logic only when this is true. */
static inline bool shim_engaged(void)
{
    return shim_active && !shim_tls_guard;
}

#endif
