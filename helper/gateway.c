/* The gateway: incoming SST streams for --forward ports are connected to the local TCP service
 * at 127.0.0.1:PORT and pumped, optionally behind a PROXY v2 header naming the SST peer.  Ports
 * not forwarded have no listener, so the stream layer refuses them (SST_ERR_REFUSED); a forwarded
 * port whose local connect fails (or takes over SSTD_GATEWAY_CONNECT_SEC) is refused the same
 * way, since streams are answered only once that connect completed. */
#define _GNU_SOURCE
#include "sstd.h"
#include "pump.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sst.h"
#include "io/udp.h"

int sstd_gateway_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* No Nagle on the local hop: the stream's bytes are written as they arrive, and a request
     * that comes in two writes (a header, then its body) would otherwise wait for the server's
     * delayed ACK of the first -- 40 ms per request, where the program's own TCP_NODELAY
     * (which never reaches this socket) spared it over kernel TCP.  Proxies do the same
     * (nginx tcp_nodelay, HAProxy). */
    int one = 1;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void sstd_gateway_connect(struct sstd *d, struct sstd_pump *p, int fd, uint16_t port, const struct sockaddr *dst,
                          socklen_t dstlen, bool proxy)
{
    (void)d;
    char where[SST_ADDR_STRLEN];
    struct sst_addr da;
    if (sst_addr_from_sockaddr(&da, dst, dstlen) == 0)
        sst_addr_str(&da, where, sizeof where);
    else
        snprintf(where, sizeof where, "port %u", port);
    if (fd < 0 || (connect(fd, dst, dstlen) < 0 && errno != EINPROGRESS) ||
        sstd_pump_attach_fd(p, fd) < 0) {
        SSTD_INFO("gateway: %s: %s; refusing the stream", where, strerror(errno));
        if (fd >= 0 && p->fd != fd)
            close(fd);
        sstd_pump_refuse(p);
        return;
    }
    if (proxy) {
        uint8_t hdr[SSTD_PROXY_V2_MAX];
        size_t n = sstd_proxy_v2(hdr, sizeof hdr, sst_stream_peer(p->s), &da);
        sstd_pump_prefix(p, hdr, n);
    }
    SSTD_DEBUG("gateway: stream %s -> %s", p->dest, where);
}

void sstd_gateway_accept(struct sstd *d, struct sstd_pump *p, uint16_t port, const struct sockaddr *dst,
                         socklen_t dstlen, bool proxy)
{
    sstd_gateway_connect(d, p, sstd_gateway_socket(dst->sa_family), port, dst, dstlen, proxy);
}

static void listener_cb(struct sst_listener *l, void *arg)
{
    struct sstd_fwd *f = arg;
    struct sstd_pump *p;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(f->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    while ((p = sstd_pump_accept(f->d, l, f->port)) != NULL)
        sstd_gateway_accept(f->d, p, f->port, (struct sockaddr *)&sin, sizeof sin, f->d->opts.proxy_protocol);
}

int sstd_gateway_open(struct sstd *d)
{
    char service[8];
    for (unsigned i = 0; i < d->opts.nforward; i++) {
        struct sstd_fwd *f = &d->fwd[i];
        f->d = d;
        f->port = d->opts.forward[i];
        snprintf(service, sizeof service, "%u", f->port);
        f->l = sst_listen(sstd_ctx(d), service, listener_cb, f);
        if (!f->l) {
            SSTD_ERROR("cannot listen for SST service %s", service);
            return -1;
        }
        /* A stream is answered once its local connect completed (pump.c fd_cb): a closed local
         * port is refused, so the initiator's program gets ECONNREFUSED as from kernel TCP. */
        sst_listener_set_answer_later(f->l, true);
        SSTD_INFO("gateway: SST service %s -> 127.0.0.1:%u%s", service, f->port,
                  d->opts.proxy_protocol ? " (PROXY v2)" : "");
    }
    return 0;
}

void sstd_gateway_close(struct sstd *d)
{
    for (unsigned i = 0; i < d->opts.nforward; i++) {
        if (d->fwd[i].l)
            sst_listener_close(d->fwd[i].l);
        d->fwd[i].l = NULL;
    }
}
