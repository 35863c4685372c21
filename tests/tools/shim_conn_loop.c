/* Opens and closes N loopback TCP connections with the calls an event-loop client and server
 * make per connection (wrk and nginx: socket, fcntl, setsockopt, connect, epoll_ctl, accept4,
 * getsockopt, close), for test_shim_fastpath.sh, which runs it under callgrind with the shim
 * preloaded and a non-matching SST_PEERS to check that none of these calls leaves the hooks'
 * pass-through path.
 *
 *   shim_conn_loop N [--epoll-before-connect]
 *
 * --epoll-before-connect registers each client socket with epoll before connect(), which the
 * shim must record (it cannot know yet whether the connection will be carried): the test's
 * positive control, proving that it sees a slow path when one runs.  Prints "ok N". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void one_connection(int lfd, int ep, const struct sockaddr_in *to, int early)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0)
        die("socket");
    int fl = fcntl(c, F_GETFL);
    if (fl < 0 || fcntl(c, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl");
    int one = 1;
    if (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("setsockopt");
    struct epoll_event ev = { .events = EPOLLOUT, .data.fd = c };
    if (early && epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
        die("epoll_ctl early");
    if (connect(c, (const struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS)
        die("connect");
    if (!early && epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
        die("epoll_ctl add");
    struct epoll_event got;
    if (epoll_wait(ep, &got, 1, 5000) != 1)
        die("epoll_wait");
    int err = -1;
    socklen_t len = sizeof(err);
    if (getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
        die("getsockopt SO_ERROR");
    ev.events = EPOLLIN;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev) < 0 || epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL) < 0)
        die("epoll_ctl mod/del");

    struct sockaddr_in peer;
    socklen_t plen = sizeof(peer);
    int s = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK);
    if (s < 0)
        die("accept4");
    if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("setsockopt accepted");
    if (write(c, "x", 1) != 1)
        die("write");
    char b;
    struct epoll_event sev = { .events = EPOLLIN, .data.fd = s };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &sev) < 0 || epoll_wait(ep, &got, 1, 5000) != 1)
        die("epoll accepted");
    if (read(s, &b, 1) != 1 || b != 'x')
        die("read");
    if (close(s) < 0 || close(c) < 0)
        die("close");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int n = atoi(argv[1]);
    int early = argc > 2 && strcmp(argv[2], "--epoll-before-connect") == 0;

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 64) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
        die("listener");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    for (int i = 0; i < n; i++)
        one_connection(lfd, ep, &a, early);
    close(ep);
    close(lfd);
    printf("ok %d\n", n);
    return 0;
}
