/* apps_probe: what a C program does to a TCP connection beyond read and write, against an echo
 * server (HOST PORT), printing one line per check; test_shim_apps_heavy.sh runs it over kernel
 * TCP and under the shim and wants the same lines.  Each check opens its own connection:
 *   epoll-et   edge-triggered epoll (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET) pushing 4 MiB through a
 *              non-blocking socket, draining to EAGAIN at every edge; SHUT_WR, then EPOLLRDHUP and EOF
 *   peek       MSG_PEEK sees the bytes a later recv returns; MSG_PEEK|MSG_DONTWAIT on nothing: EAGAIN
 *   waitall    one recv(MSG_WAITALL) of 1 MiB returns all of it
 *   sendfile   5 MiB file -> socket with sendfile(), echoed back byte-exact
 *   splice     file -> pipe -> socket, and socket -> pipe -> memory
 *   writev     1024 iovecs of 1..2048 bytes in one writev (loops on partial writes)
 *   cork       TCP_CORK set (getsockopt reads 1), 100 small sends, uncork; MSG_MORE sends
 *   ioctl      FIONREAD counts what is queued; SIOCOUTQ 0 once the peer has everything
 * Compile: cc -O2 -o apps_probe apps_probe.c */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *host, *port;

static void die(const char *what)
{
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static int dial(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        printf("FAIL getaddrinfo\n");
        exit(1);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect");
    freeaddrinfo(ai);
    return fd;
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(seed >> 16);
    }
}

static void send_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0)
            die("send");
        b += k;
        n -= (size_t)k;
    }
}

static void recv_exact(int fd, uint8_t *b, size_t n, const char *what)
{
    while (n > 0) {
        ssize_t k = recv(fd, b, n, 0);
        if (k <= 0) {
            if (k == 0)
                errno = EPIPE;
            die(what);
        }
        b += k;
        n -= (size_t)k;
    }
}

/* Shuts writing, expects EOF (the echo server closes after our FIN) and nothing more. */
static int end_clean(int fd)
{
    char c;
    shutdown(fd, SHUT_WR);
    ssize_t k = recv(fd, &c, 1, 0);
    close(fd);
    return k == 0;
}

static void check_epoll_et(void)
{
    enum { N = 4 << 20 };
    uint8_t *out = malloc(N), *in = malloc(N);
    fill(out, N, 1);
    int fd = dial();
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    size_t sent = 0, got = 0;
    int rdhup = 0, eof = 0, shut = 0, waits = 0, stalls = 0;
    while (!eof) {
        struct epoll_event e[4];
        int n = epoll_wait(ep, e, 4, 5000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        if (n == 0 && ++stalls > 2) {
            printf("FAIL epoll-et: no edge for 10 s (sent %zu got %zu)\n", sent, got);
            exit(1);
        }
        waits++;
        uint32_t bits = n > 0 ? e[0].events : 0;
        if (bits & EPOLLRDHUP)
            rdhup = 1;
        /* Edge-triggered: every edge must be drained to EAGAIN or it never comes again. */
        while (sent < N) {
            ssize_t k = send(fd, out + sent, N - sent > 65536 ? 65536 : N - sent, MSG_NOSIGNAL);
            if (k < 0 && errno == EAGAIN)
                break;
            if (k < 0)
                die("epoll-et send");
            sent += (size_t)k;
        }
        if (sent == N && !shut) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        for (;;) {
            ssize_t k = recv(fd, in + got, got < N ? N - got : 1, 0);
            if (k < 0 && errno == EAGAIN)
                break;
            if (k < 0)
                die("epoll-et recv");
            if (k == 0) {
                eof = 1;
                break;
            }
            got += (size_t)k;
        }
    }
    /* The edge that carried the FIN may have been consumed with the last bytes: poll says
     * whether the socket now reads as shut by the peer. */
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP))
        rdhup = 1;
    printf("epoll-et: sent %zu echoed %zu same %d rdhup %d edges>1 %d\n", sent, got,
           got == N && memcmp(in, out, N) == 0, rdhup, waits > 1);
    close(ep);
    close(fd);
    free(out);
    free(in);
}

static void check_peek(void)
{
    int fd = dial();
    char b[16] = {0}, c[16] = {0};
    ssize_t k = recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    int eagain = k < 0 && errno == EAGAIN;
    send_all(fd, (const uint8_t *)"hello, peek", 11);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 10000);
    /* The echo may arrive in pieces: peek until all 11 bytes are queued. */
    for (int i = 0; i < 500; i++) {
        k = recv(fd, b, 11, MSG_PEEK);
        if (k == 11)
            break;
        usleep(10000);
    }
    ssize_t k2 = recv(fd, b, 11, MSG_PEEK | MSG_WAITALL);
    recv_exact(fd, (uint8_t *)c, 11, "peek recv");
    printf("peek: empty-eagain %d peeked %zd '%s' again %zd read '%s' clean %d\n", eagain, k, b, k2,
           c, end_clean(fd));
}

static void check_waitall(void)
{
    enum { N = 1 << 20 };
    uint8_t *out = malloc(N), *in = malloc(N);
    fill(out, N, 2);
    int fd = dial();
    send_all(fd, out, N);
    ssize_t k = recv(fd, in, N, MSG_WAITALL);
    printf("waitall: one recv %zd same %d clean %d\n", k, k == N && memcmp(in, out, N) == 0,
           end_clean(fd));
    free(out);
    free(in);
}

/* Reads N echoed bytes on fd while a child... no: the echo server's buffer would fill, so the
 * sender is a thread-free loop: send a slice, read what came back, until both are done. */
static int echo_file_via(int fd, int file, size_t n, int use_splice, uint8_t *expect)
{
    uint8_t *in = malloc(n);
    size_t got = 0;
    off_t off = 0;
    int pfd[2] = {-1, -1};
    if (use_splice && pipe(pfd) < 0)
        die("pipe");
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t inpipe = 0;
    while (got < n) {
        if ((size_t)off < n || inpipe > 0) {
            ssize_t k;
            if (!use_splice) {
                k = sendfile(fd, file, &off, n - (size_t)off > 262144 ? 262144 : n - (size_t)off);
            } else {
                if (inpipe == 0) {
                    loff_t lo = off;
                    ssize_t f = splice(file, &lo, pfd[1], NULL, 65536, 0);
                    if (f < 0)
                        die("splice file->pipe");
                    off = lo;
                    inpipe = (size_t)f;
                }
                k = splice(pfd[0], NULL, fd, NULL, inpipe, SPLICE_F_NONBLOCK);
                if (k > 0)
                    inpipe -= (size_t)k;
            }
            if (k < 0 && errno != EAGAIN)
                die(use_splice ? "splice pipe->socket" : "sendfile");
        }
        struct pollfd p = {.fd = fd, .events = POLLIN | ((size_t)off < n || inpipe ? POLLOUT : 0)};
        if (poll(&p, 1, 10000) <= 0) {
            printf("FAIL %s: stalled at %zu/%zu\n", use_splice ? "splice" : "sendfile", got, n);
            exit(1);
        }
        ssize_t r = recv(fd, in + got, n - got, 0);
        if (r == 0) {
            errno = EPIPE;
            die("echo ended early");
        }
        if (r > 0)
            got += (size_t)r;
    }
    int same = memcmp(in, expect, n) == 0;
    free(in);
    if (pfd[0] >= 0) {
        close(pfd[0]);
        close(pfd[1]);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return same;
}

static int tmpfile_of(const uint8_t *b, size_t n)
{
    char path[] = "/tmp/apps_probe.XXXXXX";
    int f = mkstemp(path);
    if (f < 0)
        die("mkstemp");
    unlink(path);
    if (write(f, b, n) != (ssize_t)n)
        die("write tmp");
    return f;
}

static void check_sendfile(void)
{
    enum { N = 5 << 20 };
    uint8_t *out = malloc(N);
    fill(out, N, 3);
    int f = tmpfile_of(out, N);
    int fd = dial();
    int same = echo_file_via(fd, f, N, 0, out);
    printf("sendfile: %d bytes same %d clean %d\n", N, same, end_clean(fd));
    close(f);
    free(out);
}

static void check_splice(void)
{
    enum { N = 3 << 20 };
    uint8_t *out = malloc(N);
    fill(out, N, 4);
    int f = tmpfile_of(out, N);
    int fd = dial();
    int same = echo_file_via(fd, f, N, 1, out);
    /* socket -> pipe: splice out of the carried socket. */
    int pfd[2];
    if (pipe(pfd) < 0)
        die("pipe");
    send_all(fd, out, 50000);
    size_t got = 0;
    uint8_t *in = malloc(50000);
    while (got < 50000) {
        ssize_t k = splice(fd, NULL, pfd[1], NULL, 50000 - got, 0);
        if (k <= 0) {
            if (k == 0)
                errno = EPIPE;
            die("splice socket->pipe");
        }
        if (read(pfd[0], in + got, (size_t)k) != k)
            die("read pipe");
        got += (size_t)k;
    }
    printf("splice: file->pipe->socket %d same %d; socket->pipe %zu same %d clean %d\n", N, same,
           got, memcmp(in, out, 50000) == 0, end_clean(fd));
    close(pfd[0]);
    close(pfd[1]);
    close(f);
    free(in);
    free(out);
}

static void check_writev(void)
{
    enum { IOVS = 1024 };
    struct iovec iov[IOVS];
    size_t total = 0;
    uint8_t *out = malloc(IOVS * 2048);
    fill(out, IOVS * 2048, 5);
    for (int i = 0; i < IOVS; i++) {
        iov[i].iov_base = out + total;
        iov[i].iov_len = 1 + (size_t)(i * 37) % 2048;
        total += iov[i].iov_len;
    }
    int fd = dial();
    /* The echo comes back while we write: a reader process keeps the server from blocking. */
    int pfd[2];
    if (pipe(pfd) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        uint8_t *in = malloc(total);
        size_t got = 0;
        while (got < total) {
            ssize_t k = recv(fd, in + got, total - got, 0);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        char c = got == total && memcmp(in, out, total) == 0;
        if (write(pfd[1], &c, 1) != 1)
            _exit(1);
        _exit(0);
    }
    struct iovec *v = iov;
    int left = IOVS, calls = 0;
    while (left > 0) {
        ssize_t k = writev(fd, v, left);
        if (k < 0)
            die("writev");
        calls++;
        while (left > 0 && (size_t)k >= v->iov_len) {
            k -= (ssize_t)v->iov_len;
            v++;
            left--;
        }
        if (left > 0) {
            v->iov_base = (uint8_t *)v->iov_base + k;
            v->iov_len -= (size_t)k;
        }
    }
    char same = 0;
    if (read(pfd[0], &same, 1) != 1)
        die("read verdict");
    waitpid(pid, NULL, 0);
    printf("writev: %d iovecs %zu bytes same %d clean %d\n", IOVS, total, same, end_clean(fd));
    close(pfd[0]);
    close(pfd[1]);
    free(out);
}

static void check_cork(void)
{
    int fd = dial(), one = 1, zero = 0, v = -1;
    socklen_t len = sizeof v;
    if (setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one) < 0)
        die("TCP_CORK");
    getsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, &len);
    uint8_t out[1000], in[1300];
    fill(out, sizeof out, 6);
    for (int i = 0; i < 100; i++)
        send_all(fd, out + i * 10, 10);
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    recv_exact(fd, in, 1000, "cork recv");
    int same = memcmp(in, out, 1000) == 0;
    for (int i = 0; i < 3; i++)
        if (send(fd, out + i * 100, 100, MSG_MORE | MSG_NOSIGNAL) != 100)
            die("send MSG_MORE");
    send_all(fd, out + 300, 100);
    recv_exact(fd, in, 400, "MSG_MORE recv");
    printf("cork: getsockopt %d corked 1000 same %d; MSG_MORE 400 same %d clean %d\n", v, same,
           memcmp(in, out, 400) == 0, end_clean(fd));
}

static void check_ioctl(void)
{
    int fd = dial(), inq = -1, outq = -1;
    uint8_t out[3000];
    fill(out, sizeof out, 7);
    send_all(fd, out, sizeof out);
    for (int i = 0; i < 500 && inq < 3000; i++) {
        if (ioctl(fd, FIONREAD, &inq) < 0)
            die("FIONREAD");
        if (inq < 3000)
            usleep(10000);
    }
    for (int i = 0; i < 500; i++) {
        if (ioctl(fd, SIOCOUTQ, &outq) < 0)
            die("SIOCOUTQ");
        if (outq == 0)
            break;
        usleep(10000);
    }
    uint8_t in[3000];
    recv_exact(fd, in, sizeof in, "ioctl recv");
    printf("ioctl: FIONREAD %d SIOCOUTQ %d same %d clean %d\n", inq, outq,
           memcmp(in, out, sizeof in) == 0, end_clean(fd));
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: apps_probe HOST PORT [CHECK...]\n");
        return 2;
    }
    host = argv[1];
    port = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const struct {
        const char *name;
        void (*fn)(void);
    } checks[] = {{"epoll-et", check_epoll_et}, {"peek", check_peek},       {"waitall", check_waitall},
                  {"sendfile", check_sendfile}, {"splice", check_splice},   {"writev", check_writev},
                  {"cork", check_cork},         {"ioctl", check_ioctl}};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        int want = argc == 3;
        for (int a = 3; a < argc; a++)
            want |= strcmp(argv[a], checks[i].name) == 0;
        if (want)
            checks[i].fn();
    }
    return 0;
}
