/* Registered listeners (LISTEN): a shimmed server under SST_LISTEN whose engine cannot bind the
 * SST port (this daemon holds it) hands its port to us.  Streams for that service are accepted
 * here and connected to one of the server's own listening sockets exactly as --forward does
 * (gateway.c); a registration lives as long as the control connection that made it.  The
 * server's listening socket comes with the request as proof that the caller listens there; we
 * read its address and close our copy at once, so we never keep the server's listener open
 * (a listener held here would keep accepting into a queue nobody reads once the server ended).
 * A keeper, which holds no listening socket, names it by its inode instead, found in the
 * kernel's table (core/io/sockdiag.c).
 *
 * A port may have several listening sockets (an IPv4 and an IPv6 one, or sockets bound to
 * different addresses), registered on one connection or by different processes: each stream
 * goes to the socket that kernel TCP would connect its peer to, and is refused where TCP would
 * refuse it (docs/helper.md "LISTEN"; the shim's own listener does the same, docs/shim.md §6c
 * step 4). */
#define _GNU_SOURCE
#include "sstd.h"
#include "pump.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "sst.h"
#include "io/udp.h"
#include "io/sockdiag.h"

/* How long a connection waits for the server's shim to record its SST peer (PEERED) before it
 * goes ahead anyway (the server's accept() then reports sstd's loopback address). */
#define SSTD_LISTEN_PEER_WAIT_MS 1000

/* One listening socket of a registration: which peers TCP would connect to it, and where
 * their streams are connected. */
struct sstd_rsock {
    bool v4, v6;                     /* peers of these families reach it (an IPv4 socket takes
                                        no IPv6 client, an IPV6_V6ONLY one no IPv4 client) */
    bool native4;                    /* an IPv4 peer reaches it as IPv4 (not IPv4-mapped) */
    bool any;                        /* a wildcard bind; else only streams toward `bound` */
    struct sst_addr bound;           /* the bound address (IPv4 for an IPv4-mapped bind), port 0 */
    unsigned long long ino;          /* the socket's identity */
    struct sockaddr_storage dst;     /* where streams are connected: the bound address, or loopback */
    socklen_t dstlen;
    struct sstd_rsock *next;
};

/* A stream's local socket, bound, waiting for PEERED before its connect. */
struct sstd_reg_wait {
    struct sstd_reg *r;
    struct sstd_rsock *s;            /* the listening socket it goes to (one of r's) */
    struct sstd_pump *p;             /* NULL once the pump is gone (the initiator gave up) */
    int fd;
    char local[SST_ADDR_STRLEN];
    struct event *timer;
    struct sstd_reg_wait *next;
};

/* A registration: one control connection, one port, the listening sockets registered on it
 * (one LISTEN each: a server's IPv4 and IPv6 sockets of the port). */
struct sstd_reg {
    struct sstd *d;
    struct sstd_client *c;           /* the registration's connection (PEER lines go there) */
    struct sstd_reg_wait *waits;
    uint16_t port;
    pid_t pid;                       /* the registering process (SO_PEERCRED) */
    struct sstd_rsock *socks;
    struct sstd_reg *next;
};

/* The SST listener of a registered port, shared by every registration of the port (the engine
 * has one listener per service; two servers, one per family, share a port). */
struct sstd_regport {
    struct sstd *d;
    uint16_t port;
    struct sst_listener *l;
    struct sstd_regport *next;
};

/* Where to connect for a socket bound to ss: the bound address; loopback for a wildcard bind;
 * an IPv4-mapped bind over IPv4 (as the shim's own bridges, docs/shim.md §6c step 3). */
static void target_of(const struct sockaddr_storage *ss, struct sockaddr_storage *dst, socklen_t *dstlen)
{
    memset(dst, 0, sizeof *dst);
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)dst;
        *in = *(const struct sockaddr_in *)ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *dstlen = sizeof *in;
        return;
    }
    const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_V4MAPPED(&b->sin6_addr)) {
        struct sockaddr_in *in = (struct sockaddr_in *)dst;
        in->sin_family = AF_INET;
        in->sin_port = b->sin6_port;
        memcpy(&in->sin_addr, &b->sin6_addr.s6_addr[12], 4);
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *dstlen = sizeof *in;
        return;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)dst;
    *in6 = *b;
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
        in6->sin6_addr = in6addr_loopback;
    *dstlen = sizeof *in6;
}

/* TCP's rule for which peers reach a socket bound to ds->bound (with IPV6_V6ONLY ds->v6only). */
static void rsock_describe(struct sstd_rsock *s, const struct sstd_diag *ds)
{
    struct sockaddr_storage b = ds->bound;
    if (ds->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&b;
        s->v4 = s->native4 = true;
        s->any = in->sin_addr.s_addr == htonl(INADDR_ANY);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&b;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            s->v4 = s->native4 = true;   /* only IPv4 reaches an IPv4-mapped bind; over IPv4 */
            s->any = memcmp(&in6->sin6_addr.s6_addr[12], "\0\0\0\0", 4) == 0;
        } else {
            s->v6 = true;
            s->any = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
            s->v4 = s->any && !ds->v6only;
        }
        in6->sin6_scope_id = 0;
    }
    ((struct sockaddr_in *)&b)->sin_port = 0;   /* same offset in v6 */
    if (sst_addr_from_sockaddr(&s->bound, (struct sockaddr *)&b, ds->boundlen) != 0)
        memset(&s->bound, 0, sizeof s->bound);
    s->ino = ds->ino;
    target_of(&ds->bound, &s->dst, &s->dstlen);
}

/* Two sockets TCP cannot tell apart (the same peers reach both): a port's second such
 * registration is another server's claim on the same place. */
static bool rsock_same_place(const struct sstd_rsock *a, const struct sstd_rsock *b)
{
    return a->ino == b->ino || (a->v4 == b->v4 && a->v6 == b->v6 && a->any == b->any &&
                                (a->any || sst_addr_eq(&a->bound, &b->bound)));
}

/* The socket listening on port with inode ino in sstd's network namespace, of either family:
 * 1 (out filled), 0 none here, -1 (errno) the table cannot be read. */
static int find_listener(uint16_t port, unsigned long long ino, struct sstd_diag *out)
{
    static const int families[] = { AF_INET, AF_INET6 };
    struct sst_sockdiag sd;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        int r = sst_sockdiag_listener(families[i], port, ino, &sd);
        if (r != 0) {
            if (r == 1) {
                out->family = sd.family;
                out->v6only = sd.v6only;
                out->uid = sd.uid;
                out->ino = ino;
                out->bound = sd.bound;
                out->boundlen = sd.boundlen;
            }
            return r;
        }
    }
    return 0;
}

bool sstd_reg_check_fd(int fd, uint16_t port, struct sstd_diag *out, const char **code, char *msg, size_t msglen)
{
    int v = 0;
    socklen_t il = sizeof v;
    struct stat st;
    memset(out, 0, sizeof *out);
    out->boundlen = sizeof out->bound;
    *code = "not-listening";
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &il) != 0 || v != SOCK_STREAM) {
        snprintf(msg, msglen, "the socket passed with LISTEN is not a stream socket");
        return false;
    }
    il = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &il) != 0 || v != IPPROTO_TCP ||
            getsockname(fd, (struct sockaddr *)&out->bound, &out->boundlen) != 0 ||
            (out->bound.ss_family != AF_INET && out->bound.ss_family != AF_INET6) || fstat(fd, &st) != 0) {
        snprintf(msg, msglen, "the socket passed with LISTEN is not a TCP/IP socket");
        return false;
    }
    out->family = out->bound.ss_family;
    out->ino = (unsigned long long)st.st_ino;
    il = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &il) != 0 || v != 1) {
        snprintf(msg, msglen, "the socket passed with LISTEN is not listening");
        return false;
    }
    uint16_t bound = ntohs(((struct sockaddr_in *)&out->bound)->sin_port);   /* same offset in v6 */
    if (bound != port) {
        *code = "port-mismatch";
        snprintf(msg, msglen, "the socket passed with LISTEN %u listens on port %u", port, bound);
        return false;
    }
    v = 0;
    il = sizeof v;
    if (out->family == AF_INET6 && getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &il) == 0)
        out->v6only = v != 0;
    /* A socket of another network namespace (its process reached our control socket by its
     * path) is not in our kernel table: its address means something else here -- 127.0.0.1:PORT
     * here is not its listener, maybe another program's -- so it is refused.  If the table
     * cannot be read, the socket is taken as before (it still proves the port). */
    int found = sst_sockdiag_listener(out->family, port, out->ino, NULL);
    if (found == 0) {
        *code = "other-netns";
        snprintf(msg, msglen, "the socket passed with LISTEN %u is not in sstd's network namespace", port);
        return false;
    }
    if (found < 0)
        SSTD_INFO("listen: cannot read the kernel's listening sockets (%s): the namespace of port %u's socket "
                  "is not checked", strerror(errno), port);
    return true;
}

bool sstd_reg_check_ino(unsigned long long ino, uint16_t port, uid_t uid, struct sstd_diag *out, const char **code,
                        char *msg, size_t msglen)
{
    int found = find_listener(port, ino, out);
    if (found < 0) {
        *code = "failed";
        snprintf(msg, msglen, "cannot read the kernel's listening sockets: %s", strerror(errno));
        return false;
    }
    if (found == 0) {
        *code = "not-listening";
        snprintf(msg, msglen, "no socket with inode %llu listens on port %u in sstd's network namespace", ino, port);
        return false;
    }
    /* The inode names a socket without handing it over: only its owner (or root) may claim it. */
    if (uid != 0 && out->uid != uid) {
        *code = "permission";
        snprintf(msg, msglen, "the socket with inode %llu listening on port %u belongs to uid %u, not %u", ino, port,
                 (unsigned)out->uid, (unsigned)uid);
        return false;
    }
    out->ino = ino;
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
            sstd_gateway_connect(r->d, p, w->fd, r->port, (struct sockaddr *)&w->s->dst, w->s->dstlen, false);
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
static void reg_accept(struct sstd_reg *r, struct sstd_rsock *s, struct sstd_pump *p)
{
    struct sstd *d = r->d;
    int fd = sstd_gateway_socket(s->dst.ss_family);
    struct sockaddr_storage la = s->dst;
    socklen_t ll = s->dstlen;
    ((struct sockaddr_in *)&la)->sin_port = 0;   /* same offset in v6 */
    struct sst_addr a;
    struct sstd_reg_wait *w = NULL;
    if (fd < 0 || bind(fd, (struct sockaddr *)&la, ll) < 0 || getsockname(fd, (struct sockaddr *)&la, &ll) < 0 ||
            sst_addr_from_sockaddr(&a, (struct sockaddr *)&la, ll) < 0 || !(w = calloc(1, sizeof *w))) {
        sstd_gateway_connect(d, p, fd, r->port, (struct sockaddr *)&s->dst, s->dstlen, false);
        return;
    }
    *w = (struct sstd_reg_wait){ .r = r, .s = s, .p = p, .fd = fd };
    sst_addr_str(&a, w->local, sizeof w->local);
    w->timer = evtimer_new(d->base, wait_timeout, w);
    struct timeval tv = { 0, SSTD_LISTEN_PEER_WAIT_MS * 1000 };
    if (!w->timer || evtimer_add(w->timer, &tv) < 0) {
        if (w->timer)
            event_free(w->timer);
        free(w);
        sstd_gateway_connect(d, p, fd, r->port, (struct sockaddr *)&s->dst, s->dstlen, false);
        return;
    }
    p->reg_wait = w;
    w->next = r->waits;
    r->waits = w;
    char peer[SST_ADDR_STRLEN], line[2 * SST_ADDR_STRLEN + 16];
    /* First the address the peer's packets reached (IP_PKTINFO), for the server's getsockname():
     * a line of its own ("DEST LOCAL ADDRESS"), which shims before it ignore -- they read PEER's
     * REMOTE to the end of the line, so a third word there would lose them the PEER. */
    const struct sst_addr *to = sst_stream_local(p->s);
    if (to) {
        sst_addr_str(to, peer, sizeof peer);
        snprintf(line, sizeof line, "DEST %s %s\n", w->local, peer);
        sstd_client_send(r->c, line);
    }
    sst_addr_str(sst_stream_peer(p->s), peer, sizeof peer);
    snprintf(line, sizeof line, "PEER %s %s\n", w->local, peer);
    sstd_client_send(r->c, line);
}

/* This host's address toward peer (a route lookup): a guess at the address the peer's packets
 * reach, for a stream whose channel does not know it (sst_stream_local NULL). */
static bool route_src(const struct sst_addr *peer, struct sst_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = peer->family == SST_AF_INET4 ? AF_INET : AF_INET6;
    if (sst_addr_to_sockaddr(peer, family, &ss, &len) != 0)
        return false;
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    len = sizeof ss;
    bool ok = connect(fd, (struct sockaddr *)&ss, family == AF_INET ? sizeof(struct sockaddr_in)
                                                                     : sizeof(struct sockaddr_in6)) == 0 &&
              getsockname(fd, (struct sockaddr *)&ss, &len) == 0;
    close(fd);
    if (!ok)
        return false;
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_scope_id = 0;
    ((struct sockaddr_in *)&ss)->sin_port = 0;   /* same offset in v6 */
    return sst_addr_from_sockaddr(out, (struct sockaddr *)&ss, len) == 0;
}

/* The socket TCP would connect peer to among the port's registrations: one its family reaches
 * (an IPv4 peer prefers an IPv4 socket to a dual-stack one, so its address is reported as
 * itself), bound to the wildcard or to the address the peer's packets reach.  NULL: TCP would
 * refuse the peer (no socket of its family, or only sockets bound to other addresses). */
static struct sstd_rsock *pick(struct sstd *d, uint16_t port, const struct sst_addr *peer,
                               const struct sst_addr *local)
{
    struct sstd_rsock *best = NULL;
    int best_score = 0;
    bool want4 = peer->family == SST_AF_INET4;
    int have_src = 0;   /* 0 not asked, 1 known, -1 unknown */
    struct sst_addr src;
    if (local != NULL) {
        /* The address the peer sent to, as sstd's UDP socket saw it (IP_PKTINFO). */
        src = *local;
        src.port = 0;
        src.scope_id = 0;
        have_src = 1;
    }
    for (struct sstd_reg *r = d->regs; r; r = r->next) {
        if (r->port != port)
            continue;
        for (struct sstd_rsock *s = r->socks; s; s = s->next) {
            int score = want4 ? (s->v4 ? (s->native4 ? 4 : 2) : 0) : (s->v6 ? 4 : 0);
            if (score == 0)
                continue;
            if (!s->any) {
                if (have_src == 0)
                    have_src = route_src(peer, &src) ? 1 : -1;
                if (have_src < 0 || !sst_addr_eq(&src, &s->bound))
                    continue;
                score++;
            }
            if (score > best_score) {
                best = s;
                best_score = score;
            }
        }
    }
    return best;
}

static struct sstd_reg *rsock_reg(struct sstd *d, const struct sstd_rsock *t)
{
    for (struct sstd_reg *r = d->regs; r; r = r->next)
        for (struct sstd_rsock *s = r->socks; s; s = s->next)
            if (s == t)
                return r;
    return NULL;
}

static void listener_cb(struct sst_listener *l, void *arg)
{
    struct sstd_regport *rp = arg;
    struct sstd_pump *p;
    while ((p = sstd_pump_accept(rp->d, l, rp->port)) != NULL) {
        struct sstd_rsock *s = pick(rp->d, rp->port, sst_stream_peer(p->s), sst_stream_local(p->s));
        struct sstd_reg *r = s ? rsock_reg(rp->d, s) : NULL;
        if (!r) {
            char peer[SST_ADDR_STRLEN];
            SSTD_DEBUG("listen: no socket of port %u takes a connection from %s (TCP would refuse it): refused",
                       rp->port, sst_addr_str(sst_stream_peer(p->s), peer, sizeof peer));
            sstd_pump_refuse(p);
            continue;
        }
        reg_accept(r, s, p);
    }
}

static struct sstd_regport *regport_find(struct sstd *d, uint16_t port)
{
    for (struct sstd_regport *rp = d->regports; rp; rp = rp->next)
        if (rp->port == port)
            return rp;
    return NULL;
}

bool sstd_reg_add(struct sstd *d, struct sstd_client *c, struct sstd_reg **regp, uint16_t port,
                  const struct sstd_diag *ds, pid_t pid, const char **code, char *msg, size_t msglen)
{
    struct sstd_reg *r = *regp;
    if (r && r->port != port) {
        *code = "bad-args";
        snprintf(msg, msglen, "this connection registers port %u, not %u", r->port, port);
        return false;
    }
    if (sstd_forwarded(&d->opts, port)) {
        *code = "forwarded";
        snprintf(msg, msglen, "port %u is served by --forward", port);
        return false;
    }
    struct sstd_rsock *s = calloc(1, sizeof *s);
    if (!s) {
        *code = "nomem";
        snprintf(msg, msglen, "out of memory");
        return false;
    }
    rsock_describe(s, ds);
    for (struct sstd_reg *o = d->regs; o; o = o->next) {
        if (o->port != port || o == r)
            continue;
        for (struct sstd_rsock *t = o->socks; t; t = t->next) {
            if (rsock_same_place(s, t)) {
                free(s);
                *code = "in-use";
                snprintf(msg, msglen, "port %u is registered by pid %d", port, (int)o->pid);
                return false;
            }
        }
    }
    bool fresh = !r;
    if (fresh && !(r = calloc(1, sizeof *r))) {
        free(s);
        *code = "nomem";
        snprintf(msg, msglen, "out of memory");
        return false;
    }
    struct sstd_regport *rp = regport_find(d, port);
    if (!rp) {
        char service[8];
        snprintf(service, sizeof service, "%u", port);
        rp = calloc(1, sizeof *rp);
        if (rp)
            *rp = (struct sstd_regport){ .d = d, .port = port };
        if (!rp || !(rp->l = sst_listen(sstd_ctx(d), service, listener_cb, rp))) {
            free(rp);
            free(s);
            if (fresh)
                free(r);
            *code = "failed";
            snprintf(msg, msglen, "cannot listen for SST service %u", port);
            return false;
        }
        /* Answered once the local connect completed, as the gateway's (a closed port is refused). */
        sst_listener_set_answer_later(rp->l, true);
        rp->next = d->regports;
        d->regports = rp;
    }
    if (fresh) {
        *r = (struct sstd_reg){ .d = d, .c = c, .port = port, .pid = pid };
        r->next = d->regs;
        d->regs = r;
        *regp = r;
    }
    /* The same place again on this connection (the server listened anew there): the new socket
     * replaces the old one, which the kernel let go or shares the port with (SO_REUSEPORT). */
    for (struct sstd_rsock **pp = &r->socks; *pp; pp = &(*pp)->next) {
        if (rsock_same_place(s, *pp)) {
            struct sstd_rsock *old = *pp;
            bool busy = false;
            for (struct sstd_reg_wait *w = r->waits; w; w = w->next)
                busy |= w->s == old;
            if (!busy) {
                s->next = old->next;
                *pp = s;
                free(old);
                s = NULL;
            }
            break;
        }
    }
    if (s) {
        s->next = r->socks;
        r->socks = s;
    }
    char to[SST_ADDR_STRLEN] = "?";
    struct sst_addr a;
    struct sockaddr_storage dst;
    socklen_t dstlen;
    target_of(&ds->bound, &dst, &dstlen);
    if (sst_addr_from_sockaddr(&a, (const struct sockaddr *)&dst, dstlen) == 0)
        sst_addr_str(&a, to, sizeof to);
    SSTD_INFO("listen: SST service %u -> %s%s for pid %d", port, to,
              ds->family == AF_INET6 && ds->v6only ? " (IPv6 only)" : "", (int)pid);
    return true;
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
    /* Streams waiting for PEERED are reset, as a closed TCP listener's queue is; streams already
     * connected go on (they are the server's accepted connections). */
    while (r->waits)
        wait_end(r->waits, false);
    bool last = true;
    for (struct sstd_reg *o = d->regs; o; o = o->next)
        last &= o->port != r->port;
    /* The port's last registration: its SST listener closes, and the streams waiting in its
     * backlog are reset with it. */
    for (struct sstd_regport **pp = &d->regports; last && *pp; pp = &(*pp)->next) {
        if ((*pp)->port == r->port) {
            struct sstd_regport *rp = *pp;
            *pp = rp->next;
            sst_listener_close(rp->l);
            free(rp);
            break;
        }
    }
    while (r->socks) {
        struct sstd_rsock *s = r->socks;
        r->socks = s->next;
        free(s);
    }
    sstd_kick(d);
    SSTD_INFO("listen: SST service %u of pid %d ended", r->port, (int)r->pid);
    free(r);
}

void sstd_reg_json(struct sstd *d, struct evbuffer *out)
{
    evbuffer_add(out, "[", 1);
    bool first = true;
    for (struct sstd_reg *r = d->regs; r; r = r->next) {
        for (struct sstd_rsock *s = r->socks; s; s = s->next) {
            struct sst_addr a;
            char to[SST_ADDR_STRLEN] = "?";
            if (sst_addr_from_sockaddr(&a, (const struct sockaddr *)&s->dst, s->dstlen) == 0)
                sst_addr_str(&a, to, sizeof to);
            evbuffer_add_printf(out, "%s{\"port\":%u,\"pid\":%d,\"to\":", first ? "" : ",", r->port, (int)r->pid);
            sstd_json_str(out, to);
            evbuffer_add_printf(out, ",\"ipv4\":%s,\"ipv6\":%s}", s->v4 ? "true" : "false", s->v6 ? "true" : "false");
            first = false;
        }
    }
    evbuffer_add(out, "]", 1);
}
