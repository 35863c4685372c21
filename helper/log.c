/* sstd logging: one line per message ("sstd[pid] level: text") to stderr, a file, or syslog
 * once daemonized, filtered by --log / SST_LOG like the shim's. */
#define _GNU_SOURCE
#include "sstd.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static enum sstd_loglevel threshold = SSTD_LOG_WARN;
static int log_fd = 2;
static bool to_syslog;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void sstd_log_setup(enum sstd_loglevel level, int fd, bool use_syslog)
{
    threshold = level;
    log_fd = fd >= 0 ? fd : 2;
    to_syslog = use_syslog;
    if (use_syslog)
        openlog("sstd", LOG_PID, LOG_DAEMON);
}

int sstd_log_level_parse(const char *s)
{
    for (size_t i = 0; i < SST_ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void sstd_log(enum sstd_loglevel level, const char *fmt, ...)
{
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    char line[1024];
    int saved = errno;
    va_list ap;
    int n;

    if (level > threshold)
        return;
    if (to_syslog) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        syslog(prio[level], "%s", line);
        errno = saved;
        return;
    }
    n = snprintf(line, sizeof line, "sstd[%d] %s: ", (int)getpid(), level_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so concurrent writers to the same file never interleave mid-line. */
    if (write(log_fd, line, (size_t)n) < 0) {
        /* nowhere else to report it */
    }
    errno = saved;
}
