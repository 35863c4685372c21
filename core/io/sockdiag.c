/* sst_sockdiag_listener (sockdiag.h): one SOCK_DIAG_BY_FAMILY dump of the listening TCP sockets of
 * one port -- the kernel filters listeners by source port itself -- scanned for the inode (the
 * socket's identity: a listener closed and another opened on the port differ). */
#define _GNU_SOURCE
#include "sockdiag.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ask(int nl, int family, uint16_t port)
{
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nh.nlmsg_len = sizeof msg;
    msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << TCP_LISTEN;
    msg.req.id.idiag_sport = htons(port);
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    return sendto(nl, &msg, sizeof msg, 0, (struct sockaddr *)&kernel, sizeof kernel) == (ssize_t)sizeof msg ? 0 : -1;
}

/* The socket's description from its dump message (the kernel writes IPV6_V6ONLY of every
 * listening IPv6 socket as INET_DIAG_SKV6ONLY). */
static void describe(const struct nlmsghdr *h, const struct inet_diag_msg *m, struct sst_sockdiag *out)
{
    memset(out, 0, sizeof *out);
    out->family = m->idiag_family;
    out->uid = m->idiag_uid;
    if (m->idiag_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->bound;
        in->sin_family = AF_INET;
        in->sin_port = m->id.idiag_sport;
        memcpy(&in->sin_addr, m->id.idiag_src, 4);
        out->boundlen = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->bound;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = m->id.idiag_sport;
        memcpy(&in6->sin6_addr, m->id.idiag_src, 16);
        in6->sin6_scope_id = m->id.idiag_if;
        out->boundlen = sizeof *in6;
    }
    int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof *m);
    for (const struct rtattr *a = (const struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1)
            out->v6only = *(const uint8_t *)RTA_DATA(a) != 0;
    }
}

/* Reads one dump to its end: 1 if ino was in it (described in out), 0 if not, -1 on an error. */
static int scan(int nl, unsigned long long ino, struct sst_sockdiag *out)
{
    _Alignas(struct nlmsghdr) char buf[8192];
    int found = 0;
    for (;;) {
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE)
                return found;
            if (h->nlmsg_type == NLMSG_ERROR)
                return -1;
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                continue;
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            if (m->idiag_inode == ino && !found) {
                if (out)
                    describe(h, m, out);
                found = 1;
            }
        }
    }
}

int sst_sockdiag_listener(int family, uint16_t port, unsigned long long ino, struct sst_sockdiag *out)
{
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -1;
    int r = ask(nl, family, port) == 0 ? scan(nl, ino, out) : -1;
    int saved = errno;
    /* The system call itself: in the shim, close() is its own hook, and callers there hold its
     * locks (the hook would take them again). */
    syscall(SYS_close, nl);
    errno = saved;
    return r;
}
