/* Shim logging: formats into a stack buffer and emits it with one write(2), so lines from
 * several threads never interleave and no stdio lock is taken inside a hook.  Every message is
 * made one printable line: it may quote what the shim does not control (environment values,
 * sstd's replies, a peer's strings), whose newline or terminal escape must not forge lines. */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "io/logline.h"

static enum shim_loglevel threshold = SHIM_LOG_WARN;
static int log_fd = -1;

void shim_log_setup(enum shim_loglevel level, int fd)
{
    threshold = level;
    log_fd = fd;
}

bool shim_log_enabled(enum shim_loglevel level)
{
    return level <= threshold;
}

void shim_log(enum shim_loglevel level, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    char line[1024];   /* as sstd's: the changed-host-key message alone is ~550 bytes */
    char msg[1024];
    int saved = errno;   /* logging must never change the errno a hook returns */
    int n;
    va_list ap;

    if (level > threshold)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = snprintf(line, sizeof(line), "sstshim[%d] %s: ", (int)getpid(), names[level]);
    sst_log_one_line(line + n, sizeof(line) - 1 - (size_t)n, msg);
    n += (int)strlen(line + n);
    line[n++] = '\n';
    /* Raw syscall: write() itself is not hooked, but this also keeps us off any other preload. */
    if (syscall(SYS_write, log_fd >= 0 ? log_fd : 2, line, (size_t)n) < 0) {
        /* Nowhere else to report a failed log write. */
    }
    errno = saved;
}
