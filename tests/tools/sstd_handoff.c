/* Test client for sstd's hand-off: sends "CONNECT ADDR PORT" with one end of a socketpair
 * (SCM_RIGHTS), prints sstd's reply line on stderr, then copies stdin to the connection and the
 * connection to stdout (stdin EOF becomes shutdown(SHUT_WR)), like a shimmed process would.
 *   sstd_handoff SOCKET ADDR PORT [stall]
 * "stall": after CONNECTED, send stdin (without a FIN), then read nothing and sleep: a client
 * that is killed mid-transfer.
 * Stdin is sent at once, before the reply, as an application would write after a non-blocking
 * connect; the reply is read concurrently.
 * Exit: 0 after the peer closed, 2 refused, 3 unreachable or other error reply, 1 local failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int send_request(int ctl, const char *line, int fd)
{
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof cm);
    struct iovec iov = { .iov_base = (void *)line, .iov_len = strlen(line) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof cm };
    struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof fd);
    return sendmsg(ctl, &msg, MSG_NOSIGNAL) == (ssize_t)iov.iov_len ? 0 : -1;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a refused stream closes our socket: see the reply, not SIGPIPE */
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "stall") == 0)) {
        fprintf(stderr, "usage: sstd_handoff SOCKET ADDR PORT [stall]\n");
        return 1;
    }
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", argv[1]);
    int ctl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int sv[2];
    if (ctl < 0 || connect(ctl, (struct sockaddr *)&sun, sizeof sun) < 0) {
        fprintf(stderr, "sstd_handoff: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 1;
    char line[256];
    snprintf(line, sizeof line, "CONNECT %s %s\n", argv[2], argv[3]);
    if (send_request(ctl, line, sv[1]) < 0) {
        fprintf(stderr, "sstd_handoff: sendmsg: %s\n", strerror(errno));
        return 1;
    }
    close(sv[1]);
    /* Like a shimmed application, write at once: sstd accepts bytes before the peer's answer,
     * so the request rides with the stream's first packet (paper §4.3.4).  The reply line is
     * read concurrently. */
    char reply[1024];
    size_t n = 0;
    bool replied = false, in_open = true, stall = argc == 5;
    char buf[65536];
    int conn = sv[0];
    while (!replied || (in_open && stall)) {
        struct pollfd pfd[2] = { { .fd = ctl, .events = replied ? 0 : POLLIN },
                                 { .fd = 0, .events = in_open ? POLLIN : 0 } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (!replied && pfd[0].revents) {
            ssize_t r = read(ctl, reply + n, 1);
            if (r <= 0)
                replied = true; /* closed without a full line: reported below */
            else if (reply[n++] == '\n' || n == sizeof reply - 1)
                replied = true;
        }
        if (in_open && pfd[1].revents) {
            ssize_t r = read(0, buf, sizeof buf);
            if (r <= 0) {
                in_open = false;
                if (!stall)
                    shutdown(conn, SHUT_WR);
            } else if (write_all(conn, buf, (size_t)r) < 0) {
                in_open = false;
            }
        }
    }
    reply[n] = '\0';
    fprintf(stderr, "%s", reply);
    close(ctl);
    if (!strstr(reply, "\"CONNECTED\""))
        return strstr(reply, "\"REFUSED\"") ? 2 : 3;

    if (stall) {
        for (;;)
            pause();
    }
    for (;;) {
        struct pollfd pfd[2] = { { .fd = conn, .events = POLLIN }, { .fd = 0, .events = in_open ? POLLIN : 0 } };
        if (poll(pfd, in_open ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (pfd[0].revents) {
            ssize_t r = read(conn, buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return r == 0 ? 0 : 1;
            if (write_all(1, buf, (size_t)r) < 0)
                return 1;
        }
        if (in_open && pfd[1].revents) {
            ssize_t r = read(0, buf, sizeof buf);
            if (r <= 0) {
                in_open = false;
                shutdown(conn, SHUT_WR);
            } else if (write_all(conn, buf, (size_t)r) < 0) {
                return 1;
            }
        }
    }
}
