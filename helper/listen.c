/* Registered listeners (LISTEN): a shimmed server under SST_LISTEN whose engine cannot bind the
 * SST port (this daemon holds it) hands its port to us.  Streams for that service are accepted
 * here and connected to the server's own listening socket exactly as --forward does
 * (gateway.c); the registration lives as long as the control connection that made it.  The
 * server's listening socket comes with the request as proof that the caller listens there; we
 * read its address and close our copy at once, so we never keep the server's listener open
 * (a listener held here would keep accepting into a queue nobody reads once the server ended). */
#define _GNU_SOURCE
#include "sstd.h"
#include "pump.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "sst.h"
#include "io/udp.h"

/* How long a connection waits for the server's shim to record its SST peer (PEERED) before it
 * goes ahead anyway (the server's accept() then reports sstd's loopback address). */
#define SSTD_LISTEN_PEER_WAIT_MS 1000

/* A stream's local socket, bound, waiting for PEERED before its connect. */
struct sstd_reg_wait {
    struct sstd_reg *r;
    struct sstd_pump *p;             /* NULL once the pump is gone (the initiator gave up) */
    int fd;
    char local[SST_ADDR_STRLEN];
    struct event *timer;
    struct sstd_reg_wait *next;
};

struct sstd_reg {
    struct sstd *d;
    struct sstd_client *c;           /* the registration's connection (PEER lines go there) */
    struct sstd_reg_wait *waits;
    uint16_t port;
    pid_t pid;                       /* the registering process (SO_PEERCRED) */
    struct sockaddr_storage dst;     /* the server's listener: where streams are connected */
    socklen_t dstlen;
    struct sst_listener *l;
    struct sstd_reg *next;
};

bool sstd_reg_check_fd(int fd, uint16_t port, struct sockaddr_storage *dst, socklen_t *dstlen,
                       const char **code, char *msg, size_t msglen)
{
    int v = 0;
    socklen_t il = sizeof v;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *code = "not-listening";
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &il) != 0 || v != SOCK_STREAM) {
        snprintf(msg, msglen, "the socket passed with LISTEN is not a stream socket");
        return false;
    }
    il = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &il) != 0 || v != IPPROTO_TCP ||
            getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        snprintf(msg, msglen, "the socket passed with LISTEN is not a TCP/IP socket");
        return false;
    }
    il = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &il) != 0 || v != 1) {
        snprintf(msg, msglen, "the socket passed with LISTEN is not listening");
        return false;
    }
    uint16_t bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);   /* same offset in v6 */
    if (bound != port) {
        *code = "port-mismatch";
        snprintf(msg, msglen, "the socket passed with LISTEN %u listens on port %u", port, bound);
        return false;
    }
    /* Where to connect: the bound address; loopback for a wildcard bind; an IPv4-mapped bind
     * over IPv4 (as the shim's own bridges, docs/shim.md §6c step 3). */
    memset(dst, 0, sizeof *dst);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)dst;
        *in = *(struct sockaddr_in *)&ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *dstlen = sizeof *in;
    } else {
        struct sockaddr_in6 *b = (struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&b->sin6_addr)) {
            struct sockaddr_in *in = (struct sockaddr_in *)dst;
            in->sin_family = AF_INET;
            in->sin_port = b->sin6_port;
            memcpy(&in->sin_addr, &b->sin6_addr.s6_addr[12], 4);
            if (in->sin_addr.s_addr == htonl(INADDR_ANY))
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            *dstlen = sizeof *in;
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)dst;
            *in6 = *b;
            if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
                in6->sin6_addr = in6addr_loopback;
            *dstlen = sizeof *in6;
        }
    }
    return true;
}

/* The wait is over (PEERED, the timer, the registration's end: go false): the connect, or the
 * refusal; the pump may be gone already. */
static void wait_end(struct sstd_reg_wait *w, bool go)
{
    struct sstd_reg *r = w->r;
    for (struct sstd_reg_wait **pp = &r->waits; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    event_free(w->timer);
    struct sstd_pump *p = w->p;
    if (p) {
        p->reg_wait = NULL;
        /* No PROXY header: the server did not ask for one (--proxy-protocol is the gateway's). */
        if (go) {
            sstd_gateway_connect(r->d, p, w->fd, r->port, (struct sockaddr *)&r->dst, r->dstlen, false);
        } else {
            close(w->fd);
            sstd_pump_refuse(p);
        }
    } else {
        close(w->fd);
    }
    free(w);
}

static void wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct sstd_reg_wait *w = arg;
    struct sstd *d = w->r->d;
    SSTD_DEBUG("listen: no PEERED for %s within %d ms; connecting anyway", w->local, SSTD_LISTEN_PEER_WAIT_MS);
    wait_end(w, true);
    sstd_kick(d);
}

void sstd_reg_pump_gone(struct sstd_reg_wait *w)
{
    w->p = NULL;
}

bool sstd_reg_peered(struct sstd_reg *r, const char *local)
{
    for (struct sstd_reg_wait *w = r->waits; w; w = w->next) {
        if (strcmp(w->local, local) == 0) {
            wait_end(w, true);
            sstd_kick(r->d);
            return true;
        }
    }
    return false;
}

/* The server's accept() should report the SST peer, as with its own engine (docs/shim.md §6c
 * step 3): the local socket is bound first (the listener's address, port 0), its address told
 * to the server's shim with the peer's ("PEER LOCAL REMOTE"), and the connect waits for the
 * shim's PEERED -- on loopback the handshake completes inside connect(), so the record must
 * exist first -- at most SSTD_LISTEN_PEER_WAIT_MS. */
static void reg_accept(struct sstd_reg *r, struct sstd_pump *p)
{
    struct sstd *d = r->d;
    int fd = sstd_gateway_socket(r->dst.ss_family);
    struct sockaddr_storage la = r->dst;
    socklen_t ll = r->dstlen;
    ((struct sockaddr_in *)&la)->sin_port = 0;   /* same offset in v6 */
    struct sst_addr a;
    struct sstd_reg_wait *w = NULL;
    if (fd < 0 || bind(fd, (struct sockaddr *)&la, ll) < 0 || getsockname(fd, (struct sockaddr *)&la, &ll) < 0 ||
            sst_addr_from_sockaddr(&a, (struct sockaddr *)&la, ll) < 0 || !(w = calloc(1, sizeof *w))) {
        sstd_gateway_connect(d, p, fd, r->port, (struct sockaddr *)&r->dst, r->dstlen, false);
        return;
    }
    *w = (struct sstd_reg_wait){ .r = r, .p = p, .fd = fd };
    sst_addr_str(&a, w->local, sizeof w->local);
    w->timer = evtimer_new(d->base, wait_timeout, w);
    struct timeval tv = { 0, SSTD_LISTEN_PEER_WAIT_MS * 1000 };
    if (!w->timer || evtimer_add(w->timer, &tv) < 0) {
        if (w->timer)
            event_free(w->timer);
        free(w);
        sstd_gateway_connect(d, p, fd, r->port, (struct sockaddr *)&r->dst, r->dstlen, false);
        return;
    }
    p->reg_wait = w;
    w->next = r->waits;
    r->waits = w;
    char peer[SST_ADDR_STRLEN], line[2 * SST_ADDR_STRLEN + 16];
    sst_addr_str(sst_stream_peer(p->s), peer, sizeof peer);
    snprintf(line, sizeof line, "PEER %s %s\n", w->local, peer);
    sstd_client_send(r->c, line);
}

static void listener_cb(struct sst_listener *l, void *arg)
{
    struct sstd_reg *r = arg;
    struct sstd_pump *p;
    while ((p = sstd_pump_accept(r->d, l, r->port)) != NULL)
        reg_accept(r, p);
}

struct sstd_reg *sstd_reg_open(struct sstd *d, struct sstd_client *c, uint16_t port, const struct sockaddr_storage *dst,
                               socklen_t dstlen, pid_t pid, const char **code, char *msg, size_t msglen)
{
    if (sstd_forwarded(&d->opts, port)) {
        *code = "forwarded";
        snprintf(msg, msglen, "port %u is served by --forward", port);
        return NULL;
    }
    for (struct sstd_reg *r = d->regs; r; r = r->next) {
        if (r->port == port) {
            *code = "in-use";
            snprintf(msg, msglen, "port %u is registered by pid %d", port, (int)r->pid);
            return NULL;
        }
    }
    struct sstd_reg *r = calloc(1, sizeof *r);
    if (!r) {
        *code = "nomem";
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    *r = (struct sstd_reg){ .d = d, .c = c, .port = port, .pid = pid, .dstlen = dstlen };
    memcpy(&r->dst, dst, dstlen);
    r->l = sst_listen(sstd_ctx(d), service, listener_cb, r);
    if (!r->l) {
        free(r);
        *code = "failed";
        snprintf(msg, msglen, "cannot listen for SST service %u", port);
        return NULL;
    }
    /* Answered once the local connect completed, as the gateway's (a closed port is refused). */
    sst_listener_set_answer_later(r->l, true);
    r->next = d->regs;
    d->regs = r;
    struct sst_addr a;
    char to[SST_ADDR_STRLEN] = "?";
    if (sst_addr_from_sockaddr(&a, (const struct sockaddr *)dst, dstlen) == 0)
        sst_addr_str(&a, to, sizeof to);
    SSTD_INFO("listen: SST service %u -> %s for pid %d", port, to, (int)pid);
    return r;
}

void sstd_reg_close(struct sstd_reg *r)
{
    struct sstd *d = r->d;
    for (struct sstd_reg **pp = &d->regs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    /* Streams waiting in its backlog are reset, as a closed TCP listener's queue is, and so
     * are those waiting for PEERED; streams already connected go on (they are the server's
     * accepted connections). */
    while (r->waits)
        wait_end(r->waits, false);
    sst_listener_close(r->l);
    sstd_kick(d);
    SSTD_INFO("listen: SST service %u of pid %d ended", r->port, (int)r->pid);
    free(r);
}

void sstd_reg_json(struct sstd *d, struct evbuffer *out)
{
    evbuffer_add(out, "[", 1);
    for (struct sstd_reg *r = d->regs; r; r = r->next) {
        struct sst_addr a;
        char to[SST_ADDR_STRLEN] = "?";
        if (sst_addr_from_sockaddr(&a, (const struct sockaddr *)&r->dst, r->dstlen) == 0)
            sst_addr_str(&a, to, sizeof to);
        evbuffer_add_printf(out, "%s{\"port\":%u,\"pid\":%d,\"to\":", r == d->regs ? "" : ",", r->port, (int)r->pid);
        sstd_json_str(out, to);
        evbuffer_add(out, "}", 1);
    }
    evbuffer_add(out, "]", 1);
}
