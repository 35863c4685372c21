/* The helper daemon's default control socket path (helper_path.h). */
#include <stdio.h>

#include "helper_path.h"

SST_API int sst_helper_default_socket(char *buf, size_t len, uid_t uid, const char *xdg)
{
    int n;
    if (uid == 0)
        n = snprintf(buf, len, "/run/sst/sstd.sock");
    else if (xdg && *xdg == '/')
        n = snprintf(buf, len, "%s/sst/sstd.sock", xdg);
    else
        n = snprintf(buf, len, "/tmp/sst-%u/sstd.sock", (unsigned)uid);
    return n > 0 && (size_t)n < len ? 0 : -1;
}
