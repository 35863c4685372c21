/* Test helper for the shim's integration tests: connects like a TCP program would (blocking or
 * non-blocking + poll + SO_ERROR) and prints what it observed, one "key=value" per line. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static const char *errname(int e)
{
    switch (e) {
    case 0: return "OK";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EINPROGRESS: return "EINPROGRESS";
    case ECONNRESET: return "ECONNRESET";
    case EALREADY: return "EALREADY";
    case EISCONN: return "EISCONN";
    case ENOTCONN: return "ENOTCONN";
    default: return strerrorname_np(e) ? strerrorname_np(e) : "E?";
    }
}

static int sockaddr_for(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return AF_INET;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return AF_INET6;
    }
    fprintf(stderr, "bad address %s\n", host);
    exit(2);
}

/* What the kernel says the fd is, bypassing any preload: "unix" once the shim replaced it. */
static const char *raw_domain(int fd)
{
    int v = 0;
    socklen_t l = sizeof(v);
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &v, &l) < 0)
        return "none";
    return v == AF_UNIX ? "unix" : v == AF_INET ? "inet" : v == AF_INET6 ? "inet6" : "other";
}

/* The fd's real send buffer (raw syscall, past the shim's getsockopt) is at least that of a
 * fresh socket of its kind: the shim shrinks its socketpair end's buffer while connecting
 * (the filler) and must give it back once connected. */
static bool sndbuf_ok(int fd)
{
    int v = 0, fresh = 0, dom = 0, sv[2];
    socklen_t l = sizeof(v);
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_SNDBUF, &v, &l) < 0)
        return false;
    l = sizeof(dom);
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0)
        return false;
    if (dom == AF_UNIX) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
            return false;
        close(sv[1]);
    } else {
        sv[0] = socket(dom, SOCK_STREAM, 0);
    }
    l = sizeof(fresh);
    int rc = syscall(SYS_getsockopt, sv[0], SOL_SOCKET, SO_SNDBUF, &fresh, &l);
    close(sv[0]);
    return rc == 0 && v >= fresh;
}

static void report_fd(int fd)
{
    int v;
    socklen_t l;
    struct sockaddr_storage peer;
    char buf[INET6_ADDRSTRLEN];

    printf("raw_domain=%s\n", raw_domain(fd));
    printf("sndbuf_ok=%s\n", sndbuf_ok(fd) ? "yes" : "no");
    l = sizeof(v);
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l);
    printf("so_domain=%s\n", v == AF_INET ? "inet" : v == AF_INET6 ? "inet6" : "other");
    l = sizeof(v);
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l);
    printf("so_type=%s\n", v == SOCK_STREAM ? "stream" : "other");
    l = sizeof(v);
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l);
    printf("so_protocol=%s\n", v == IPPROTO_TCP ? "tcp" : "other");
    l = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &l) == 0) {
        int port = peer.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&peer)->sin_port)
                                             : ntohs(((struct sockaddr_in6 *)&peer)->sin6_port);
        const void *a = peer.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&peer)->sin_addr
                                                  : (const void *)&((struct sockaddr_in6 *)&peer)->sin6_addr;
        inet_ntop(peer.ss_family, a, buf, sizeof(buf));
        printf("peer=%s:%d\n", buf, port);
    } else {
        printf("peer=%s\n", errname(errno));
    }
}

/* probe HOST PORT block|nonblock: one connect, reported. */
static int cmd_probe(const char *host, int port, bool nonblock)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fam = sockaddr_for(host, port, &ss, &len);
    int fd = socket(fam, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    int rc = connect(fd, (struct sockaddr *)&ss, len);
    int e = rc < 0 ? errno : 0;
    printf("connect=%s\n", errname(e));
    if (nonblock && e == EINPROGRESS) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int n = poll(&p, 1, 10000);
        printf("poll=%d\n", n);
        int so = -1;
        socklen_t l = sizeof(so);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &l);
        printf("so_error=%s\n", errname(so));
        e = so;
        l = sizeof(so);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &l);
        printf("so_error_again=%s\n", errname(so));
        rc = connect(fd, (struct sockaddr *)&ss, len);
        printf("reconnect=%s\n", errname(rc < 0 ? errno : 0));
    }
    report_fd(fd);
    if (e == 0) {
        /* Half-close round trip with an echo-and-close server: send, SHUT_WR, read to EOF. */
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        const char msg[] = "ping-half-close";
        if (write(fd, msg, sizeof(msg) - 1) != (ssize_t)sizeof(msg) - 1)
            printf("write=%s\n", errname(errno));
        shutdown(fd, SHUT_WR);
        char buf[256];
        size_t got = 0;
        ssize_t n;
        while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
            got += (size_t)n;
        buf[got] = '\0';
        printf("echo=%s\n", n == 0 ? buf : "READ-ERROR");
    }
    close(fd);
    return 0;
}

/* pending: non-blocking connect to a listener whose accept queue is full, so the SYN is
 * dropped and the connection stays pending: POLLOUT must not be reported until it completes. */
static int cmd_pending(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 0) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
        perror("listener");
        return 2;
    }
    /* Filler connection made with raw syscalls so no preload sees it: fills the queue. */
    int f = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (syscall(SYS_connect, f, &a, sizeof(a)) < 0) {
        perror("filler");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    printf("connect=%s\n", errname(rc < 0 ? errno : 0));
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int n = poll(&p, 1, 300);
    printf("poll_while_pending=%d\n", n);
    int w = (int)write(fd, "x", 1);
    printf("write_while_pending=%s\n", errname(w < 0 ? errno : 0));
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);
    printf("getpeername_while_pending=%s\n",
           errname(getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ? errno : 0));
    /* A blocking connect bounded by SO_SNDTIMEO gives up with EINPROGRESS, as TCP does. */
    int bfd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 0, 200000 };
    setsockopt(bfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    rc = connect(bfd, (struct sockaddr *)&a, sizeof(a));
    printf("timed_blocking_connect=%s\n", errname(rc < 0 ? errno : 0));
    close(bfd);
    /* Make room: the retransmitted SYN (about 1 s later) now completes. */
    int c1 = accept(lfd, NULL, NULL);
    n = poll(&p, 1, 10000);
    printf("poll_after_accept=%d\n", n);
    int so = -1;
    socklen_t l = sizeof(so);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &l);
    printf("so_error=%s\n", errname(so));
    int c2 = accept(lfd, NULL, NULL);
    if (write(fd, "hello", 5) != 5)
        printf("write_after=%s\n", errname(errno));
    char buf[8] = { 0 };
    ssize_t got = read(c2, buf, 5);
    printf("server_got=%s\n", got == 5 ? buf : "NOTHING");
    printf("raw_domain=%s\n", raw_domain(fd));
    close(c1);
    close(c2);
    close(fd);
    close(f);
    close(lfd);
    return 0;
}

static void on_alarm(int sig) { (void)sig; }

/* eintr HOST PORT MS: a blocking connect interrupted by SIGALRM after MS ms (handler installed
 * without SA_RESTART) must return EINTR, as TCP's does; the attempt goes on, and poll + SO_ERROR
 * report how it ended. */
static int cmd_eintr(const char *host, int port, int ms)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (sockaddr_for(host, port, &ss, &len) < 0)
        return 2;
    struct sigaction sa = { .sa_handler = on_alarm };   /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    struct itimerval it = { .it_value = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    int rc = connect(fd, (struct sockaddr *)&ss, len);
    int e = rc < 0 ? errno : 0;
    printf("connect=%s\n", errname(e));
    rc = connect(fd, (struct sockaddr *)&ss, len);
    printf("connect_again=%s\n", errname(rc < 0 ? errno : 0));
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    printf("poll=%d\n", poll(&p, 1, 20000));
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("so_error=%s\n", errname(err));
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "pending") == 0)
        return cmd_pending();
    if (argc == 5 && strcmp(argv[1], "eintr") == 0)
        return cmd_eintr(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 5 && strcmp(argv[1], "probe") == 0)
        return cmd_probe(argv[2], atoi(argv[3]), strcmp(argv[4], "nonblock") == 0);
    fprintf(stderr, "usage: shim_probe probe HOST PORT block|nonblock | shim_probe eintr HOST PORT MS | shim_probe pending\n");
    return 2;
}
