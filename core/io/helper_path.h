/* Where the helper daemon's control socket lives by default: shared by sstd, sstctl and the shim
 * so they always agree (docs/helper.md). */
#ifndef SST_IO_HELPER_PATH_H
#define SST_IO_HELPER_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "types.h"

/* /run/sst/sstd.sock for root, else $XDG_RUNTIME_DIR/sst/sstd.sock (xdg must be absolute), else
 * /tmp/sst-UID/sstd.sock.  0, or -1 if it does not fit in len. */
SST_API int sst_helper_default_socket(char *buf, size_t len, uid_t uid, const char *xdg);

/* sstd's capability file next to its control socket: the socket path without a final ".sock",
 * plus ".caps".  0, or -1 if it does not fit in len. */
SST_API int sst_helper_caps_path(char *buf, size_t len, const char *socket_path);

/* sstd touches its capability file from every keepalive (every <= 5 s while a channel is warm);
 * the shim hands a connection over inside connect() without asking CAPS only while the file's
 * mtime is at most this old: a frozen daemon (SIGSTOP, a deadlock) still takes connections into
 * its listen backlog and would hold them for as long as it is frozen. */
#define SST_HELPER_CAPS_FRESH_SEC 12

/* Looks key ("ADDR:PORT", "[ADDR6]:PORT") up in the capability file's text (NUL-terminated):
 * true if it is listed as speaking SST with an expiry after now (CLOCK_MONOTONIC ns), which is
 * stored in *expires.  A text without the "sstd-caps 1" header lists nothing. */
SST_API bool sst_helper_caps_lookup(const char *text, const char *key, uint64_t now, uint64_t *expires);

#endif
