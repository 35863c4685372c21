/* Where the helper daemon's control socket lives by default: shared by sstd, sstctl and the shim
 * so they always agree (docs/helper.md). */
#ifndef SST_IO_HELPER_PATH_H
#define SST_IO_HELPER_PATH_H

#include <stddef.h>
#include <sys/types.h>

#include "types.h"

/* /run/sst/sstd.sock for root, else $XDG_RUNTIME_DIR/sst/sstd.sock (xdg must be absolute), else
 * /tmp/sst-UID/sstd.sock.  0, or -1 if it does not fit in len. */
SST_API int sst_helper_default_socket(char *buf, size_t len, uid_t uid, const char *xdg);

#endif
