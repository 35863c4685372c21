/* The event connection to sstd: one per process, from the event thread (docs/helper.md
 * "Resets").  A connection handed to sstd has no shim in its data path, so when its stream
 * fails sstd cannot make the app's read fail: only a byte written from the app's end of the
 * socketpair before the other end closes does that on Linux (shim_reset_arm).  So sstd does not
 * close its end then: it passes it back here with "RESET FD DEV INO ERRNO" (the words CONNECT
 * gave it), and the event thread writes the byte from the app's end -- if FD still names that
 * socket -- and closes the returned end.  One connection for every hand-off of the process:
 * a program near its fd limit must not lose a descriptor per connection.  An older sstd
 * answers EVENTS with an error: the connection closes and resets read as EOF, as before. */
#define _GNU_SOURCE
#include "helper_events.h"

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "evthread.h"
#include "fdtable.h"
#include "helper_client.h"
#include "helper_hold.h"
#include "log.h"
#include "real.h"
#include "shim.h"

#define EVENTS_LINE_MAX 256
#define EVENTS_FDS_MAX 8     /* descriptors received and not yet matched with their line */

/* The process whose event connection is open or asked for (a forked child asks again: the
 * parent's connection is the parent's, and its copy was closed at fork). */
static _Atomic pid_t wanted_by;

/* Event thread only. */
static int evc = -1;
static pid_t evc_pid;
static pid_t evc_sstd;           /* sstd's pid (SO_PEERCRED) */
static struct event *evc_ev;
static char line[EVENTS_LINE_MAX];
static size_t line_len;
static int fds[EVENTS_FDS_MAX];
static int nfds;

static pid_t self(void)
{
    return (pid_t)syscall(SYS_getpid);
}

static void drop_fds(void)
{
    for (int i = 0; i < nfds; i++)
        shim_fd_close_own(fds[i]);
    nfds = 0;
}

/* permanent: sstd does not know EVENTS; not asked again by this process. */
static void events_close(bool permanent)
{
    if (evc_ev)
        event_free(evc_ev);
    evc_ev = NULL;
    if (evc >= 0)
        shim_fd_close_own(evc);
    evc = -1;
    drop_fds();
    line_len = 0;
    if (!permanent)
        atomic_store(&wanted_by, 0);   /* the next hand-off opens a new one */
}

/* "RESET FD DEV INO ERRNO" with sstd's end of the app's socketpair (end). */
static void on_reset(const char *text, int end)
{
    int fd, err;
    unsigned long long dev, ino;
    if (sscanf(text, "RESET %d %llu %llu %d", &fd, &dev, &ino, &err) != 4 || end < 0) {
        SHIM_DEBUG("helper event not understood: '%s'", text);
        return;
    }
    shim_helper_hold_reset(fd, (dev_t)dev, (ino_t)ino, err, end);
}

static void on_line(const char *text)
{
    int end = -1;
    if (strncmp(text, "RESET ", 6) == 0 && nfds > 0) {
        end = fds[0];
        memmove(fds, fds + 1, (size_t)(nfds - 1) * sizeof(int));
        nfds--;
    }
    if (strncmp(text, "RESET ", 6) == 0)
        on_reset(text, end);
    else if (strstr(text, "\"ok\":false"))
        SHIM_DEBUG("helper has no event connection (older sstd?): resets of its connections read as EOF");
    if (strncmp(text, "RESET ", 6) != 0)
        shim_helper_hold_sstd_answered(evc_sstd, strstr(text, "\"holds\":true") != NULL);
    if (end >= 0)
        shim_fd_close_own(end);
}

static void on_events(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    char buf[1024];
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * EVENTS_FDS_MAX)];
    } cm;
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof(cm) };
    /* A passed descriptor needs a number: an app at its limit must not make it vanish. */
    shim_fd_room_enter();
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    int saved = errno;
    shim_fd_room_leave();
    errno = saved;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    /* Each descriptor comes with the first byte of its line; sstd sends one line per message,
     * so they are matched in order.  Hidden at once: the app must not be able to dup2 over
     * one (the app's close hooks leave the shim's fds alone). */
    for (struct cmsghdr *h = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; h; h = CMSG_NXTHDR(&msg, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int pfd;
            memcpy(&pfd, CMSG_DATA(h) + i * sizeof(int), sizeof(pfd));
            if (nfds < EVENTS_FDS_MAX)
                fds[nfds++] = shim_fd_hide(pfd, SHIM_FD_ENGINE);
            else
                shim_real_close(pfd);
        }
    }
    if (n <= 0) {
        SHIM_DEBUG("helper closed the event connection");
        events_close(false);
        return;
    }
    bool unsupported = false;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] != '\n') {
            if (line_len < sizeof(line) - 1)
                line[line_len++] = buf[i];
            continue;
        }
        line[line_len] = '\0';
        line_len = 0;
        if (strstr(line, "\"ok\":false"))
            unsupported = true;
        on_line(line);
    }
    if (unsupported)
        events_close(true);
}

/* Event thread: fd (connected, EVENTS sent) becomes this process's event connection. */
static void events_take(int fd)
{
    if (evc >= 0 && evc_pid == self()) {
        shim_fd_close_own(fd);           /* two threads raced: one connection is enough */
        return;
    }
    if (evc >= 0) {
        /* Inherited across fork: the fd went with the parent's engine fds; the event belongs
         * to the parent's loop and is abandoned, not freed (as evthread.c's at_child does). */
        evc_ev = NULL;
        nfds = 0;
        line_len = 0;
    }
    evc = fd;
    evc_pid = self();
    evc_sstd = shim_helper_peer_pid(fd);
    shim_helper_hold_drain();
    evc_ev = event_new(shim_ev_base(), fd, EV_READ | EV_PERSIST, on_events, NULL);
    if (!evc_ev || event_add(evc_ev, NULL) < 0)
        events_close(false);
}

static void events_take_cb(void *arg)
{
    events_take((int)(intptr_t)arg);
}

/* A new control connection that said EVENTS, or -1. */
static int events_dial(void)
{
    static const char req[] = "EVENTS\n";
    const char *path = shim_helper_path();
    int fd = path ? shim_helper_dial(path) : -1;
    if (fd >= 0 && shim_real_sendto(fd, req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL, NULL, 0) != (ssize_t)sizeof(req) - 1) {
        shim_fd_close_own(fd);
        fd = -1;
    }
    if (fd >= 0)
        SHIM_DEBUG("event connection to the helper at %s", path);
    return fd;
}

/* The process for which a setup thread was started (shim_helper_events_want_soon). */
static _Atomic pid_t soon_by;

static void hold_drain_cb(void *arg)
{
    (void)arg;
    shim_helper_hold_drain();
}

struct soon_call {
    void (*then)(void *);
    void (*cancel)(void *);
    void *arg;
};

static void soon_call_run(const struct soon_call *k)
{
    if (k->then && shim_ev_call(k->then, k->arg) != 0)
        k->cancel(k->arg);
}

static void *events_setup_main(void *arg)
{
    struct soon_call k = *(struct soon_call *)arg;
    free(arg);
    shim_tls_guard = 1;   /* the shim's own thread: its calls pass through the hooks */
    shim_helper_events_want(false);
    /* Holds queued before the event thread ran (helper_hold.c), even if the dial failed. */
    shim_ev_call(hold_drain_cb, NULL);
    atomic_store(&soon_by, 0);   /* a failed dial is tried again at the next hand-off */
    soon_call_run(&k);
    return NULL;
}

void shim_helper_events_want_soon(void (*then)(void *), void (*cancel)(void *), void *arg)
{
    pid_t me = self();
    struct soon_call k = { then, cancel, arg };
    /* Already wanted: the event thread runs (or is being started by the thread that wanted it);
     * a call to it costs the caller a lock and a write. */
    if (atomic_load_explicit(&wanted_by, memory_order_relaxed) == me ||
        atomic_exchange(&soon_by, me) == me) {
        soon_call_run(&k);
        return;
    }
    struct soon_call *heap = malloc(sizeof(*heap));
    if (heap)
        *heap = k;
    if (!heap || shim_thread_spawn(events_setup_main, heap) != 0) {
        free(heap);
        atomic_store(&soon_by, 0);
        shim_helper_events_want(false);
        soon_call_run(&k);
    }
}

void shim_helper_events_want(bool on_event_thread)
{
    pid_t me = self();
    if (atomic_load_explicit(&wanted_by, memory_order_relaxed) == me)
        return;
    atomic_store(&wanted_by, me);
    int saved = errno;
    int fd = events_dial();
    if (fd < 0)
        atomic_store(&wanted_by, 0);
    else if (on_event_thread)
        events_take(fd);
    else if (shim_ev_call(events_take_cb, (void *)(intptr_t)fd) != 0) {
        shim_fd_close_own(fd);
        atomic_store(&wanted_by, 0);
    }
    errno = saved;
}

bool shim_helper_events_words(int fd, int sock, dev_t *dev, ino_t *ino, char *out, size_t len)
{
    struct stat st;
    if (sock >= 0) {
        if (fstat(sock, &st) != 0) {
            out[0] = '\0';
            return false;
        }
        *dev = st.st_dev;
        *ino = st.st_ino;
    }
    snprintf(out, len, " RESET %d %llu %llu", fd, (unsigned long long)*dev, (unsigned long long)*ino);
    return true;
}
