/* shim_sockdiag_listening (sockdiag.h): one SOCK_DIAG_BY_FAMILY dump of the listening TCP
 * sockets of one port -- the kernel filters listeners by source port itself -- scanned for the
 * inode (the socket's identity: a listener closed and another opened on the port differ). */
#define _GNU_SOURCE
#include "sockdiag.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "real.h"

static int ask(int nl, int family, uint16_t port)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 req;
    } msg;
    memset(&msg, 0, sizeof(msg));
    msg.nh.nlmsg_len = sizeof(msg);
    msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << TCP_LISTEN;
    msg.req.id.idiag_sport = htons(port);
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    return sendto(nl, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) ==
           (ssize_t)sizeof(msg) ? 0 : -1;
}

/* Reads the dump to its end: 1 if ino was in it, 0 if not, -1 on an error. */
static int scan(int nl, ino_t ino)
{
    static _Alignas(struct nlmsghdr) char buf[16384];
    int found = 0;
    for (;;) {
        ssize_t n = recv(nl, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE)
                return found;
            if (h->nlmsg_type == NLMSG_ERROR)
                return -1;
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            if ((ino_t)m->idiag_inode == ino)
                found = 1;
        }
    }
}

int shim_sockdiag_listening(int family, uint16_t port, ino_t ino)
{
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -1;
    int r = ask(nl, family, port) == 0 ? scan(nl, ino) : -1;
    int saved = errno;
    shim_real_close(nl);
    errno = saved;
    return r;
}
