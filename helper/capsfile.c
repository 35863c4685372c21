/* The capability file: the hosts sstd knows to speak SST, published next to the control socket
 * (<socket without .sock>.caps) so that a new shimmed process can hand a connection to such a
 * host inside connect() without first asking CAPS on the socket.  A curl is a new process per
 * transfer: that local round trip to sstd (two wake-ups, 0.15 ms idle, 0.5-1.5 ms on a busy
 * machine) was the largest part of the hand-off's latency (docs/helper.md, "capability file").
 *
 * Only positive answers are listed, with the same expiry CAPS reports, in CLOCK_MONOTONIC
 * nanoseconds (the clock sstd's engine runs on, shared by every process of the machine); and
 * ports served by TCP only (refused over SST, then reached by a shim's TCP fallback) as
 * "!PEER/PORT EXPIRES", a key no reader of positive answers can mistake for one.  The
 * file is rewritten whole (temporary file + rename) when an answer changes, so a reader sees
 * either the old or the new list, never half of one.  Anything not listed is asked with CAPS
 * as before: the file is an accelerator, never the only source of truth. */
#define _GNU_SOURCE
#include "sstd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct render {
    char *buf;
    size_t cap, len;
    bool overflow;
};

static void add_line(void *arg, const char *host, enum sstd_cap cap, const char *reason, sst_time_t expires)
{
    struct render *r = arg;
    (void)reason;
    bool tcp_only = cap == SSTD_CAP_NO_SST && strchr(host, '/') != NULL;
    if ((cap != SSTD_CAP_SST && !tcp_only) || r->overflow)
        return;
    int n = snprintf(r->buf + r->len, r->cap - r->len, "%s%s %llu\n", tcp_only ? "!" : "", host,
                     (unsigned long long)expires);
    if (n < 0 || (size_t)n >= r->cap - r->len) {
        r->overflow = true; /* a host left out is merely asked with CAPS */
        r->buf[r->len] = '\0';
        return;
    }
    r->len += (size_t)n;
}

size_t sstd_capsfile_render(struct sstd_caps *c, sst_time_t now, char *buf, size_t cap)
{
    struct render r = { .buf = buf, .cap = cap };
    int n = snprintf(buf, cap, "%s\n", SSTD_CAPSFILE_MAGIC);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    r.len = (size_t)n;
    sstd_caps_foreach(c, now, add_line, &r);
    return r.len;
}

void sstd_capsfile_publish(struct sstd *d, sst_time_t now)
{
    char buf[SSTD_CAPSFILE_MAX], tmp[PATH_MAX + 8];
    const char *path = d->opts.caps_file;
    size_t len = sstd_capsfile_render(d->caps, now, buf, sizeof buf);
    if (!path[0] || len == 0 || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return;
    /* Readable by whoever may use the socket (see sstd_control_open's modes). */
    mode_t mode = d->opts.nallow > 0 ? 0644 : geteuid() == 0 ? 0640 : 0600;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        SSTD_DEBUG("capability file %s: %s", tmp, strerror(errno));
        return;
    }
    bool ok = write(fd, buf, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) < 0) {
        SSTD_DEBUG("capability file %s: %s", path, strerror(errno));
        unlink(tmp);
    }
}

void sstd_capsfile_touch(struct sstd *d)
{
    if (d->opts.caps_file[0])
        (void)utimensat(AT_FDCWD, d->opts.caps_file, NULL, 0);
}

void sstd_capsfile_remove(struct sstd *d)
{
    if (d->opts.caps_file[0])
        unlink(d->opts.caps_file);
}

/* Ports that answered (the stream's CONNECTED: with --forward gateways that is once the local
 * connect completed) are listed as "PEER/PORT EXPIRES" next to their host, so that the shim
 * hands a connection to such a port over inside connect() -- up at once, its first bytes in the
 * stream's Init -- and waits for the answer for any other port, as TCP Fast Open is used only
 * with a cookie from an earlier connection.  The file is rewritten only when the listed set
 * changes or an expiry is more than half used up, not per connection. */
void sstd_port_answered(struct sstd *d, const char *dest, sst_time_t now)
{
    sst_time_t expires;
    sst_time_t ttl = SST_SEC(SSTD_PORT_OK_SEC);
    bool listed = sstd_caps_get(d->caps, dest, now, &expires, NULL) == SSTD_CAP_SST;
    if (listed && expires - now > ttl / 2)
        return;
    sstd_caps_set(d->caps, dest, SSTD_CAP_SST, "port answered", now, ttl);
    sstd_capsfile_publish(d, now);
}

void sstd_port_refused(struct sstd *d, const char *dest, sst_time_t now)
{
    /* A port already known as served by TCP only keeps that entry: a refusal is what made it. */
    if (sstd_caps_get(d->caps, dest, now, NULL, NULL) != SSTD_CAP_SST)
        return;
    sstd_caps_del(d->caps, dest);
    sstd_capsfile_publish(d, now);
}

void sstd_port_tcp_only(struct sstd *d, const char *dest, sst_time_t now, sst_time_t ttl)
{
    sst_time_t expires;
    enum sstd_cap cap = sstd_caps_get(d->caps, dest, now, &expires, NULL);
    /* The port answered over SST since that refusal: the newer answer stands. */
    if (cap == SSTD_CAP_SST)
        return;
    if (cap == SSTD_CAP_NO_SST && expires - now > ttl / 2)
        return;
    sstd_caps_set(d->caps, dest, SSTD_CAP_NO_SST, "refused over SST, TCP answered", now, ttl);
    sstd_capsfile_publish(d, now);
}
