/* sstd logging: one line per message ("sstd[pid] level: text") to stderr, a file, or syslog
 * once daemonized, filtered by --log / SST_LOG like the shim's.  Every message is made one
 * printable line, by the shim's rule (sst_log_one_line, core/io/logline.h): messages quote
 * what local clients sent on the control socket, a peer's or the environment's strings, and
 * their newline or terminal escape must not forge lines or reach a terminal. */
#define _GNU_SOURCE
#include "sstd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "io/logline.h"

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
    char msg[1024];
    int saved = errno;
    va_list ap;
    int n;

    if (level > threshold)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (to_syslog) {
        sst_log_one_line(line, sizeof line, msg);
        syslog(prio[level], "%s", line);
        errno = saved;
        return;
    }
    n = snprintf(line, sizeof line, "sstd[%d] %s: ", (int)getpid(), level_names[level]);
    sst_log_one_line(line + n, sizeof line - 1 - (size_t)n, msg);
    n += (int)strlen(line + n);
    line[n++] = '\n';
    /* One write per line so concurrent writers to the same file never interleave mid-line. */
    if (write(log_fd, line, (size_t)n) < 0) {
        /* nowhere else to report it */
    }
    errno = saved;
}
