/* The server side (server.h): SST listeners for the app's listening ports, and loopback bridges
 * that hand each accepted SST stream to the app's accept() with the SST peer's address. */
#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>
#include <utlist.h>

#include "engine.h"
#include "evthread.h"
#include "fdtable.h"
#include "helper_client.h"
#include "keeper.h"
#include "io/sockdiag.h"
#include "io/udp.h"
#include "log.h"
#include "real.h"
#include "route.h"
#include "server_opts.h"
#include "spump.h"

/* How long the loopback connect to the app's listener may take (its accept queue may be full:
 * the kernel then retries the SYN, as for any client). */
#define BRIDGE_CONNECT_TIMEOUT_SEC 10

/* An app socket listening on a selected port (locked by srv_lock). */
struct lsock {
    struct lsock *next;
    int fd;                          /* -1: closed here at exit, maybe open elsewhere (keeper.h) */
    dev_t dev;
    ino_t ino;                       /* identity: the number may be reused after a close we missed */
    int family;                      /* AF_INET or AF_INET6, as the app's socket */
    bool v6only;
    bool any;                        /* a wildcard bind; else only streams toward target */
    uint16_t port;
    struct sockaddr_storage target;  /* where bridges connect: the bound address, or loopback */
    socklen_t target_len;
    int pass_fd;                     /* our duplicate of it (an engine fd), -1 if none: to pass
                                        with LISTEN to sstd, which may happen after the app's
                                        image closed its copy (nginx's first process listens and
                                        exits at once); closed as soon as the port is settled */
    bool reg_sent;                   /* registered on the port's connection to sstd (event thread) */
};

/* A socket, for certain: its device and inode (zeroed padding: a hash key). */
struct sock_id {
    dev_t dev;
    ino_t ino;
};

/* A bridge's loopback connection not yet accepted by the app, keyed by its local address (what
 * the app's accept() sees as the peer).  Owned by its bridge; in the table until accepted. */
struct pend {
    uint8_t key[19];                 /* sst_addr_encode of our loopback socket's local address */
    struct sockaddr_storage peer;    /* the SST peer, in the listening socket's family */
    socklen_t peer_len;              /* 0: not expressible in that family (IPv6 peer, IPv4 socket) */
    struct sockaddr_storage local;   /* the address the peer's SST packets reached, in that family */
    socklen_t local_len;             /* 0: not known (the channel has no authenticated packet) */
    bool in_table;
    int slot;                        /* its copy in the shared table (forked children), or -1 */
    bool accepted;                   /* acc names the app's socket: its record goes with the bridge */
    struct sock_id acc;
    UT_hash_handle hh;
};
_Static_assert(sizeof(((struct pend *)0)->key) == SHIM_BRIDGE_KEY_LEN, "a bridge's key is its pend key");

/* An accepted connection's socket and its SST peer (locked by srv_lock), by the socket itself
 * (apeers: every descriptor of it answers -- a dup, sshd's stdin, a forked child's copy, the
 * same socket after exec through SST_SHIM_ACCEPTED) and, while the number accept() returned
 * still names it in the process that accepted it, by that number (afds: close and the exit
 * drain).  The accepting process removes a record when the connection's bridge ends; copies
 * in forked children and exec'd images (own false) stay until that image ends: their sockets'
 * inode numbers are not reused while the sockets exist. */
struct afd {
    struct sock_id id;
    int fd;                          /* the number accept() returned, -1 once closed (afds) */
    bool own;                        /* accepted in this process: its bridge is here */
    bool seen;                       /* prune_foreign: a descriptor of ours names it */
    struct bridge *bridge;           /* own: the bridge, alive while the record is (event thread
                                        only: bridge_done drops the record before freeing it) */
    struct sockaddr_storage peer;    /* the SST peer's address, the bridge's loopback port */
    socklen_t peer_len;
    struct sockaddr_storage local;   /* the address the peer reached (getsockname), or local_len 0 */
    socklen_t local_len;
    UT_hash_handle hh;               /* afds, by fd */
    UT_hash_handle hk;               /* apeers, by id */
};

/* One SST listener per port (event thread only): a service is listened on once, whichever
 * families and addresses the app's sockets for that port use.  Either our engine's listener,
 * or -- SST_PORT held by sstd -- a registration with sstd (LISTEN, docs/helper.md), which
 * lasts as long as its control connection (an engine fd: a keeper keeps it). */
struct lport {
    struct lport *next;
    uint16_t port;
    struct sst_listener *l;          /* our engine's, or NULL: */
    int reg_fd;                      /* the registration's control connection, -1 if none */
    struct event *reg_ev;            /* its answer, then its end */
    struct event *reg_slow;          /* no answer yet after REG_SLOW_SEC: said once */
    bool reg_ok;                     /* sstd took one of the port's sockets */
    int reg_left;                    /* port_open's tries left, for a refusal worth retrying */
    size_t reg_len;
    char reg_buf[256];               /* sstd's answer line */
    char dest_for[SST_ADDR_STRLEN];  /* sstd's last "DEST LOCAL ADDRESS": LOCAL (or "") ... */
    struct sst_addr dest;            /* ... and ADDRESS, for the PEER line of LOCAL that follows */
};

/* An accepted SST stream on its way to the app: loopback connect, then the pump. */
struct bridge {
    struct pend pend;
    struct sst_stream *s;
    int sock;
    struct event *ev;                /* loopback connect completion */
    uint16_t port;                   /* the app's TCP port (the SST service) */
    bool answered;                   /* the stream was answered OK (bridge_pump) */
    struct shim_spump *pump;         /* once answered: the pump (getsockopt(TCP_INFO)) */
    struct shim_sopts opts;          /* timeouts the app set on its accepted socket before the
                                        pump started (shim_server_bridge_opts) */
    int lfd;                         /* the listening socket it goes to (its options are the */
    dev_t ldev;                      /* accepted socket's: the kernel copies them at the */
    ino_t lino;                      /* handshake), while that number still names it */
    bool keyed;                      /* in bridge_keys (event thread), by pend.key */
    UT_hash_handle hb;
};

atomic_int shim_server_live;
static atomic_int n_pending;
static pthread_mutex_t srv_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t srv_pid;                /* a vfork child (other pid, our memory) leaves tables alone */
static struct lsock *lsocks;
static struct pend *pendings;
/* Connections not yet accepted, shared with the listening process's forked children: a
 * pre-forking server (nginx's workers, gunicorn, apache prefork) accepts in processes that
 * have no bridge and so no pending table of their own; they find the SST peer here.  An
 * anonymous MAP_SHARED mapping made at the first listen, before the server forks.  The
 * listening process's event thread publishes (FREE -> WRITING -> READY), an accept in any
 * process claims (READY -> CLAIMED, one winner), the bridge frees the slot when it ends. */
#define SHARED_SLOTS 256
enum { SLOT_FREE = 0, SLOT_WRITING, SLOT_READY, SLOT_CLAIMED };
struct sslot {
    atomic_uint state;
    uint8_t key[19];
    socklen_t peer_len;
    struct sockaddr_storage peer;
    socklen_t local_len;
    struct sockaddr_storage local;
};
struct srv_shared {
    atomic_int n_ready;
    struct sslot slot[SHARED_SLOTS];
};
static struct srv_shared *shared;
/* Forgets the oldest records of connections accepted here but bridged elsewhere, past this. */
#define FOREIGN_PRUNE_AT 512
static int n_foreign;                /* records with own false made by accept in this process */

static struct afd *afds;             /* by fd: those of apeers with fd >= 0 */
static struct afd *apeers;           /* by socket */
static unsigned addr_port(const struct sockaddr_storage *a);
static struct lport *lports;         /* event thread */
/* Every live bridge by its loopback address (event thread): what a forked child's accepted
 * socket has as its peer, the name its options come to this process with (server_opts.c). */
static struct bridge *bridge_keys;
/* A listener waiting for SST_PORT (port_open): tried again later (event thread). */
struct port_retry {
    struct port_retry *next;
    uint16_t port;
    int left;
    bool helper_only;                /* sstd only: its registration ended with it */
    struct event *ev;
};
static struct port_retry *retries;   /* a keeper goes on with them */
/* Shared slots published for connections sstd makes to a registered port (PEER): given back
 * once claimed by an accept, or after SPEER_TTL_SEC unclaimed (event thread). */
struct speer {
    struct speer *next;
    int slot;
    time_t at;
};
#define SPEER_TTL_SEC 60
static struct speer *speers;
static struct event *speer_ev;
static pthread_once_t srv_once = PTHREAD_ONCE_INIT;

static void at_prepare(void) { pthread_mutex_lock(&srv_lock); }
static void at_parent(void) { pthread_mutex_unlock(&srv_lock); }

/* A forked child has no SST listener (the parent's engine owns it and the UDP port): its
 * copies of the tables describe the parent's bridges, so they are dropped (leaked). */
static void at_child(void)
{
    pthread_mutex_init(&srv_lock, NULL);
    srv_pid = getpid();
    if (shim_keeper_forking)
        return;                  /* the keeper goes on with the bridges and their tables */
    lsocks = NULL;
    pendings = NULL;
    lports = NULL;
    bridge_keys = NULL;
    retries = NULL;                  /* the parent's events: leaked */
    speers = NULL;
    speer_ev = NULL;
    /* The accepted sockets are the child's too (a pre-forking or fork-per-connection server,
     * sshd's child that re-executes itself): their peers still answer there; the bridges stay
     * the parent's. */
    struct afd *a, *tmp;
    HASH_ITER(hk, apeers, a, tmp)
        a->own = false;
    /* The shared table (one count, kept): this child's accept() looks there. */
    atomic_store(&shim_server_live, (int)HASH_CNT(hk, apeers) + (shared ? 1 : 0));
    atomic_store(&n_pending, 0);
}

static void srv_setup(void)
{
    srv_pid = getpid();
    pthread_atfork(at_prepare, at_parent, at_child);
}

static bool port_selected(uint16_t port)
{
    if (shim_cfg.listen_all)
        return true;
    for (size_t i = 0; i < shim_cfg.n_listen; i++)
        if (shim_cfg.listen[i] == port)
            return true;
    return false;
}

/* The address a bridge connects to: the listener's own, with a wildcard replaced by the
 * family's loopback; IPv4-mapped becomes plain IPv4 (a dual-stack socket accepts both). */
static void listen_target(const struct sockaddr_storage *bound, struct sockaddr_storage *t, socklen_t *tlen)
{
    memset(t, 0, sizeof(*t));
    if (bound->ss_family == AF_INET6) {
        const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)bound;
        if (!IN6_IS_ADDR_V4MAPPED(&b6->sin6_addr)) {
            struct sockaddr_in6 *t6 = (struct sockaddr_in6 *)t;
            *t6 = *b6;
            if (IN6_IS_ADDR_UNSPECIFIED(&b6->sin6_addr))
                t6->sin6_addr = in6addr_loopback;
            *tlen = sizeof(*t6);
            return;
        }
        struct sockaddr_in *t4 = (struct sockaddr_in *)t;
        t4->sin_family = AF_INET;
        t4->sin_port = b6->sin6_port;
        memcpy(&t4->sin_addr, &b6->sin6_addr.s6_addr[12], 4);
    } else {
        *(struct sockaddr_in *)t = *(const struct sockaddr_in *)bound;
    }
    struct sockaddr_in *t4 = (struct sockaddr_in *)t;
    if (t4->sin_addr.s_addr == htonl(INADDR_ANY))
        t4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *tlen = sizeof(*t4);
}

/* ---- event thread: SST listeners ------------------------------------------------------------ */

static struct lport *lport_find(uint16_t port)
{
    for (struct lport *p = lports; p; p = p->next)
        if (p->port == port)
            return p;
    return NULL;
}

static void lport_close(uint16_t port)
{
    for (struct lport **pp = &lports; *pp; pp = &(*pp)->next) {
        struct lport *p = *pp;
        if (p->port != port)
            continue;
        *pp = p->next;
        if (p->l) {
            shim_engine_sync_time();
            sst_listener_close(p->l);
            shim_engine_kick();
        }
        if (p->reg_ev)
            event_free(p->reg_ev);
        if (p->reg_slow)
            event_free(p->reg_slow);
        if (p->reg_fd >= 0) {
            shim_fd_close_own(p->reg_fd);   /* sstd ends the registration */
            pthread_mutex_lock(&srv_lock);
            for (struct lsock *ls = lsocks; ls; ls = ls->next)
                if (ls->port == port)
                    ls->reg_sent = false;   /* a new registration sends them all again */
            pthread_mutex_unlock(&srv_lock);
        }
        if (p->l || p->reg_ok)
            SHIM_INFO("SST_LISTEN: port %u no longer accepts SST streams", port);
        free(p);
        return;
    }
}

/* Recorded listening sockets for port (locked). */
static int lsock_count(uint16_t port)
{
    int n = 0;
    for (struct lsock *ls = lsocks; ls; ls = ls->next)
        n += ls->port == port;
    return n;
}

static void lsock_unlink(struct lsock **pp)
{
    struct lsock *ls = *pp;
    *pp = ls->next;
    if (ls->pass_fd >= 0)
        shim_fd_close_own(ls->pass_fd);
    free(ls);
    atomic_fetch_sub(&shim_server_live, 1);
}

/* The port has its SST listener, or will have none: the duplicates kept for LISTEN go (one
 * held on would keep the app's listener in the kernel's table: a keeper would never end). */
static void lsock_pass_drop(uint16_t port)
{
    pthread_mutex_lock(&srv_lock);
    for (struct lsock *ls = lsocks; ls; ls = ls->next) {
        if (ls->port == port && ls->pass_fd >= 0) {
            shim_fd_close_own(ls->pass_fd);
            ls->pass_fd = -1;
        }
    }
    pthread_mutex_unlock(&srv_lock);
}

/* Whether ls's socket still listens somewhere: in another process once this one closed its copy
 * at exit (the keeper's listeners), else through its descriptor here. */
static bool lsock_alive(const struct lsock *ls)
{
    struct stat st;
    if (ls->fd < 0)
        return sst_sockdiag_listener(ls->family, ls->port, (unsigned long long)ls->ino, NULL) == 1;
    return fstat(ls->fd, &st) == 0 && st.st_dev == ls->dev && st.st_ino == ls->ino;
}

/* Drops records of port's sockets whose fd no longer is that socket (closed behind our back:
 * close_range, dup2 over it, a raw syscall); returns how many remain. */
static int lsock_prune(uint16_t port)
{
    pthread_mutex_lock(&srv_lock);
    for (struct lsock **pp = &lsocks; *pp;) {
        struct lsock *ls = *pp;
        if (ls->port == port && !lsock_alive(ls))
            lsock_unlink(pp);
        else
            pp = &ls->next;
    }
    int n = lsock_count(port);
    pthread_mutex_unlock(&srv_lock);
    return n;
}

/* Event thread: offers a pending connection to the forked children; the slot, or -1 (none
 * made, or full: only this process's accept then knows the peer). */
static int slot_publish(const uint8_t key[19], const struct sockaddr_storage *peer, socklen_t len,
                        const struct sockaddr_storage *local, socklen_t local_len)
{
    if (!shared || len == 0)
        return -1;
    for (int i = 0; i < SHARED_SLOTS; i++) {
        struct sslot *sl = &shared->slot[i];
        unsigned exp = SLOT_FREE;
        if (!atomic_compare_exchange_strong(&sl->state, &exp, SLOT_WRITING))
            continue;
        memcpy(sl->key, key, sizeof(sl->key));
        sl->peer = *peer;
        sl->peer_len = len;
        sl->local_len = local_len;
        if (local_len > 0)
            sl->local = *local;
        atomic_store(&sl->state, SLOT_READY);
        atomic_fetch_add(&shared->n_ready, 1);
        return i;
    }
    return -1;
}

/* Any process's accept: takes the pending connection keyed key if still offered. */
static bool slot_claim(const uint8_t key[19], struct sockaddr_storage *peer, socklen_t *len,
                       struct sockaddr_storage *local, socklen_t *local_len)
{
    if (!shared || atomic_load(&shared->n_ready) == 0)
        return false;
    for (int i = 0; i < SHARED_SLOTS; i++) {
        struct sslot *sl = &shared->slot[i];
        if (atomic_load(&sl->state) != SLOT_READY || memcmp(sl->key, key, sizeof(sl->key)) != 0)
            continue;
        unsigned exp = SLOT_READY;
        if (!atomic_compare_exchange_strong(&sl->state, &exp, SLOT_CLAIMED))
            continue;
        *peer = sl->peer;
        *len = sl->peer_len;
        *local = sl->local;
        *local_len = sl->local_len;
        atomic_fetch_sub(&shared->n_ready, 1);
        return true;
    }
    return false;
}

/* Gives a slot back: the connection was accepted here, or its bridge ended. */
static void slot_free(int *slot)
{
    if (*slot < 0 || !shared)
        return;
    struct sslot *sl = &shared->slot[*slot];
    unsigned exp = SLOT_READY;
    if (atomic_compare_exchange_strong(&sl->state, &exp, SLOT_FREE))
        atomic_fetch_sub(&shared->n_ready, 1);
    else
        atomic_store(&sl->state, SLOT_FREE);   /* claimed by a child, which copied it */
    *slot = -1;
}

static bool slot_claimed(int slot)
{
    return slot >= 0 && shared && atomic_load(&shared->slot[slot].state) == SLOT_CLAIMED;
}

static void pend_remove(struct pend *p)
{
    pthread_mutex_lock(&srv_lock);
    if (p->in_table) {
        HASH_DEL(pendings, p);
        p->in_table = false;
        atomic_fetch_sub(&n_pending, 1);
    }
    slot_free(&p->slot);
    pthread_mutex_unlock(&srv_lock);
}

/* Ends a bridge before its pump runs.  The stream is not answered yet (answer-later listener):
 * giving it back unanswered refuses it, so the peer's connect fails with ECONNREFUSED as a TCP
 * client's does when nothing accepts; one that was answered (the pump could not start) or
 * failed already is reset. */
static void bridge_forget(struct bridge *b);

static void bridge_abort(struct bridge *b)
{
    if (b->ev)
        event_free(b->ev);
    if (b->sock >= 0)
        shim_fd_close_own(b->sock);
    pend_remove(&b->pend);
    shim_engine_sync_time();
    if (b->answered)
        sst_stream_shutdown(b->s, SST_SHUT_RESET);
    sst_stream_close(b->s);   /* unanswered: refused (docs/api.md, answer later) */
    shim_engine_kick();
    bridge_forget(b);
    free(b);
}

/* Forgets a record (srv_lock held). */
static void afd_free(struct afd *a)
{
    if (a->fd >= 0)
        HASH_DELETE(hh, afds, a);
    HASH_DELETE(hk, apeers, a);
    free(a);
    atomic_fetch_sub(&shim_server_live, 1);
}

/* The bridge ends: the record of the socket the app accepted from it goes (it points to b). */
static void bridge_forget(struct bridge *b)
{
    if (b->keyed) {
        HASH_DELETE(hb, bridge_keys, b);
        b->keyed = false;
    }
    pthread_mutex_lock(&srv_lock);
    struct afd *a = NULL;
    if (b->pend.accepted)
        HASH_FIND(hk, apeers, &b->pend.acc, sizeof(b->pend.acc), a);
    if (a && a->own)
        afd_free(a);
    pthread_mutex_unlock(&srv_lock);
}

static void bridge_done(void *arg, int err)
{
    struct bridge *b = arg;
    if (err)
        SHIM_DEBUG("SST_LISTEN: connection ended: %s", strerror(err));
    pend_remove(&b->pend);
    /* Both directions ended: the app's socket has its peer's end and has shut its own (it is
     * closed, or about to be); its record goes, whichever descriptors still name it. */
    bridge_forget(b);
    free(b);
}

/* The exit drain waits for a bridge once the app accepted its connection: the app's end then
 * closes (by the app, or by shim_server_close_at_exit) and what it wrote is still to be handed
 * to the stream.  A connection still in the listener's backlog is not waited for: the kernel
 * resets it when the process goes, as for a TCP client. */
static bool bridge_accepted(void *arg)
{
    struct bridge *b = arg;
    pthread_mutex_lock(&srv_lock);
    bool accepted = !b->pend.in_table || slot_claimed(b->pend.slot);
    pthread_mutex_unlock(&srv_lock);
    return accepted;
}

/* The stream failed (the client reset it, its channel died): the app's accepted socket gets
 * RST, as from a TCP client -- its reads return what the loopback already holds for it, then
 * ECONNRESET -- instead of a FIN that would make a cut request look complete. */
static void bridge_reset(void *arg, int fd, int err)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    (void)arg;
    /* EPIPE: it failed after its end of stream reached the bridge (spump_finish), whose FIN is
     * out: a plain close delivers what the loopback still queues for the app (an abortive one
     * would drop it), and the kernel answers the app's later writes with RST, as a TCP client
     * that closed does. */
    if (err == EPIPE)
        return;
    shim_real_setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* The accepted socket's TCP_USER_TIMEOUT and keepalive as the kernel gave them to it -- the
 * listening socket's (nginx's `listen ... so_keepalive=`, any server that sets them before
 * listen) -- then what the app set on it since, go to the stream.  Read from the listener in
 * this process, so a pre-forking server's workers get them too.  Defaults (no timeout, no
 * keepalive) are nothing to give. */
static void bridge_inherit_opts(struct bridge *b, struct sst_stream *s)
{
    struct shim_sopts o;
    struct stat st;
    shim_sopts_none(&o);
    if (fstat(b->lfd, &st) == 0 && st.st_dev == b->ldev && st.st_ino == b->lino) {
        shim_sopts_read(b->lfd, true, false, &o);
        int on = 0;
        socklen_t l = sizeof(on);
        if (shim_real_getsockopt(b->lfd, SOL_SOCKET, SO_KEEPALIVE, &on, &l) == 0 && on)
            shim_sopts_read(b->lfd, false, true, &o);
        if (o.ut == 0)
            o.ut = -1;
        if (fstat(b->lfd, &st) != 0 || st.st_dev != b->ldev || st.st_ino != b->lino)
            shim_sopts_none(&o);   /* closed and reused meanwhile: not the listener's */
    }
    shim_sopts_merge(&o, &b->opts);
    shim_sopts_apply(s, &o);
}

static void bridge_pump(struct bridge *b)
{
    if (b->ev) {
        event_free(b->ev);
        b->ev = NULL;
    }
    /* The app's listener took the connection: the stream is answered only now, so the peer
     * sees its connect succeed only for a port that really accepts. */
    shim_engine_sync_time();
    (void)sst_stream_answer(b->s, true);
    shim_engine_kick();
    b->answered = true;
    int sock = b->sock;
    b->sock = -1;
    struct sst_stream *s = b->s;
    struct shim_spump *p = shim_spump_start(shim_ev_base(), sock, s, bridge_done, b);
    if (!p) {
        b->sock = sock;
        bridge_abort(b);
        return;
    }
    b->pump = p;
    shim_spump_wait_at_exit(p, bridge_accepted);
    shim_spump_on_error(p, bridge_reset);
    shim_spump_watch_rst(p);
    bridge_inherit_opts(b, s);
}

/* The loopback connect failed: refused means the app's listener went away unseen. */
static void bridge_failed(struct bridge *b, int err)
{
    uint16_t port = b->port;
    SHIM_DEBUG("SST_LISTEN: loopback connect to port %u failed: %s", port, strerror(err));
    bridge_abort(b);
    if (err == ECONNREFUSED && lsock_prune(port) == 0)
        lport_close(port);
}

static void on_bridge_connected(evutil_socket_t fd, short what, void *arg)
{
    struct bridge *b = arg;
    int err = ETIMEDOUT;
    socklen_t el = sizeof(err);
    if ((what & EV_WRITE) && shim_real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        err = errno;
    if (err != 0) {
        bridge_failed(b, err);
        return;
    }
    bridge_pump(b);
}

/* While the loopback connect runs, the stream may fail (peer reset, channel down). */
static void on_waiting_stream(struct sst_stream *s, unsigned ev, void *arg)
{
    struct bridge *b = arg;
    (void)s;
    if ((ev & SST_EV_ERROR) && b)
        bridge_abort(b);
}

/* Whether a socket bound to target (not a wildcard) takes a stream of peer: the stream must be
 * toward that address, which we take to be this host's address toward the peer (src, a route
 * lookup: the engine's one UDP socket does not learn the address a datagram was sent to). */
static bool bound_fits(const struct lsock *ls, const struct sockaddr_storage *src, socklen_t src_len)
{
    struct sst_addr t, r;
    if (src_len == 0 || sst_addr_from_sockaddr(&t, (const struct sockaddr *)&ls->target, ls->target_len) != 0 ||
            sst_addr_from_sockaddr(&r, (const struct sockaddr *)src, src_len) != 0)
        return false;
    t.port = r.port = 0;
    t.scope_id = r.scope_id = 0;
    return sst_addr_eq(&t, &r);
}

/* Chooses the app socket for a stream from peer, as kernel TCP would connect the peer: the
 * peer's family first, so its address can be reported as it is (an IPv4 peer also fits a
 * dual-stack IPv6 socket, as ::ffff:a.b.c.d), and a socket bound to a specific address only
 * for a stream toward that address (bound_fits).  A socket of the other family only does not
 * fit, as the kernel's TCP would not connect an IPv6 client to an IPv4-only listener (nor an
 * IPv4 one to an IPV6_V6ONLY listener), nor does one bound to another address (127.0.0.1 for
 * a remote peer): *fits false, the stream is refused -- until 2026-11-22 it was bridged, and an
 * IPv6 SST client reached e.g. nginx's `listen 80;` or socat's TCP-LISTEN where TCP would have
 * been refused, and any SST client a server listening on 127.0.0.1 only. */
static bool pick_target(uint16_t port, const struct sst_addr *peer, const struct sst_addr *local,
                        struct lsock *out, bool *fits)
{
    struct lsock *best = NULL;
    int best_score = -1;
    bool specific = false;
    pthread_mutex_lock(&srv_lock);
    for (struct lsock *ls = lsocks; ls; ls = ls->next)
        specific |= ls->port == port && !ls->any;
    pthread_mutex_unlock(&srv_lock);
    struct sockaddr_storage ps, src;
    socklen_t ps_len = 0, src_len = 0;
    /* The address the stream was sent to: the engine's UDP socket learns it from each
     * datagram (IP_PKTINFO, docs/driver.md).  Only when it does not know (no authenticated
     * packet yet) does a route lookup guess this host's address toward the peer. */
    if (specific && local != NULL) {
        if (sst_addr_to_sockaddr(local, local->family == SST_AF_INET4 ? AF_INET : AF_INET6, &src, &src_len) != 0)
            src_len = 0;
    } else if (specific && sst_addr_to_sockaddr(peer, peer->family == SST_AF_INET4 ? AF_INET : AF_INET6, &ps,
                                                &ps_len) == 0 &&
               !shim_route_local((struct sockaddr *)&ps, ps_len, 0, &src, &src_len)) {
        src_len = 0;
    }
    pthread_mutex_lock(&srv_lock);
    for (struct lsock *ls = lsocks; ls; ls = ls->next) {
        if (ls->port != port)
            continue;
        int score = 0;
        if (peer->family == SST_AF_INET4 && ls->target.ss_family == AF_INET)
            score = 2;   /* an IPv4 socket, or an IPv4-mapped bind */
        else if (peer->family == SST_AF_INET4 && ls->family == AF_INET6 && ls->any && !ls->v6only)
            score = 1;
        else if (peer->family == SST_AF_INET6 && ls->target.ss_family == AF_INET6)
            score = 2;
        if (score > 0 && !ls->any && !bound_fits(ls, &src, src_len))
            score = 0;
        if (score > best_score) {
            best = ls;
            best_score = score;
        }
    }
    if (best)
        *out = *best;
    *fits = best_score > 0;
    pthread_mutex_unlock(&srv_lock);
    return best != NULL;
}

/* Opens the loopback connection for stream s and records it before connecting, so the app's
 * accept() can never see it unrecorded (on loopback the handshake completes inside connect). */
static void bridge_start(uint16_t port, struct sst_stream *s)
{
    struct lsock ls;
    const struct sst_addr *peer = sst_stream_peer(s);
    struct bridge *b = calloc(1, sizeof(*b));
    if (!b) {
        shim_engine_sync_time();
        sst_stream_close(s);   /* unanswered: refused */
        shim_engine_kick();
        return;
    }
    b->s = s;
    b->sock = -1;
    b->pend.slot = -1;
    b->port = port;
    b->lfd = -1;
    shim_sopts_none(&b->opts);
    sst_stream_set_callback(s, on_waiting_stream, b);
    bool fits;
    if (!pick_target(port, peer, sst_stream_local(s), &ls, &fits)) {
        bridge_abort(b);
        lport_close(port);
        return;
    }
    if (!fits) {
        SHIM_DEBUG("SST_LISTEN: port %u has no socket that takes the peer (its family, its bound address): refused", port);
        bridge_abort(b);
        return;
    }
    if (sst_addr_to_sockaddr(peer, ls.family, &b->pend.peer, &b->pend.peer_len) != 0)
        b->pend.peer_len = 0;
    /* What getsockname() of the accepted socket reports (shim_server_getsockname): the address
     * the peer sent to, in the socket's family (IPv4-mapped on a dual-stack one), as TCP would. */
    const struct sst_addr *to = sst_stream_local(s);
    if (!to || sst_addr_to_sockaddr(to, ls.family, &b->pend.local, &b->pend.local_len) != 0)
        b->pend.local_len = 0;
    b->lfd = ls.fd;
    b->ldev = ls.dev;
    b->lino = ls.ino;

    int sock = shim_fd_own_socket(ls.target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        SHIM_WARN("SST_LISTEN: no socket for a loopback bridge: %s", strerror(errno));
        bridge_abort(b);
        return;
    }
    b->sock = shim_fd_hide(sock, SHIM_FD_ENGINE);
    /* Bind the source to the target's own address (loopback, or the listener's local
     * address): the port is fixed now and the key is exact, so a remote client of the same
     * source port cannot be mistaken for this bridge. */
    struct sockaddr_storage src = ls.target;
    ((struct sockaddr_in *)&src)->sin_port = 0;   /* same offset in sockaddr_in6 */
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    struct sst_addr la;
    if (bind(b->sock, (struct sockaddr *)&src, ls.target_len) != 0 ||
        shim_real_getsockname(b->sock, (struct sockaddr *)&local, &local_len) != 0 ||
        sst_addr_from_sockaddr(&la, (struct sockaddr *)&local, local_len) != 0) {
        SHIM_WARN("SST_LISTEN: cannot bind a loopback bridge: %s", strerror(errno));
        bridge_abort(b);
        return;
    }
    memset(b->pend.key, 0, sizeof(b->pend.key));
    sst_addr_encode(&la, b->pend.key);
    HASH_ADD_KEYPTR(hb, bridge_keys, b->pend.key, sizeof(b->pend.key), b);
    b->keyed = true;
    pthread_mutex_lock(&srv_lock);
    HASH_ADD(hh, pendings, key, sizeof(b->pend.key), &b->pend);
    b->pend.in_table = true;
    atomic_fetch_add(&n_pending, 1);
    b->pend.slot = slot_publish(b->pend.key, &b->pend.peer, b->pend.peer_len, &b->pend.local, b->pend.local_len);
    pthread_mutex_unlock(&srv_lock);

    if (shim_real_connect(b->sock, (struct sockaddr *)&ls.target, ls.target_len) == 0) {
        bridge_pump(b);
        return;
    }
    if (errno != EINPROGRESS) {
        bridge_failed(b, errno);
        return;
    }
    struct timeval tv = { BRIDGE_CONNECT_TIMEOUT_SEC, 0 };
    b->ev = event_new(shim_ev_base(), b->sock, EV_WRITE, on_bridge_connected, b);
    if (!b->ev || event_add(b->ev, &tv) < 0)
        bridge_abort(b);
}

static void on_listener(struct sst_listener *l, void *arg)
{
    struct lport *p = arg;
    uint16_t port = p->port;   /* bridge_start may close the listener (and free p) */
    struct sst_stream *s;
    while ((s = sst_accept(l, on_waiting_stream, NULL)) != NULL) {
        if (shim_log_enabled(SHIM_LOG_DEBUG)) {
            char a[SST_ADDR_STRLEN];
            SHIM_DEBUG("SST_LISTEN: stream from %s for port %u", sst_addr_str(sst_stream_peer(s), a, sizeof(a)),
                       port);
        }
        bridge_start(port, s);
        if (!lport_find(port))
            return;
    }
}

/* SST_PORT taken when a listener opens -- by this server's previous run that is just ending,
 * or its keeper (keeper.h), which notices within a second that the listening socket it served
 * is gone: tried again every PORT_RETRY_MS, PORT_RETRIES times, before the port stays TCP only
 * (a quick restart of nginx found the port taken and served TCP only). */
#define PORT_RETRY_MS 250
#define PORT_RETRIES 16
/* A registration with sstd that ended with sstd (a restart): sstd is asked again every
 * REG_RETRY_SEC, REG_AGAIN_TRIES times. */
#define REG_RETRY_SEC 1
#define REG_AGAIN_TRIES 30
/* sstd answers LISTEN at once; no answer by then (sstd frozen, or swamped) is worth a word. */
#define REG_SLOW_SEC 2

static void port_open(uint16_t port, int retries_left, bool helper_only);

static void retry_drop(struct port_retry *r)
{
    LL_DELETE(retries, r);
    event_free(r->ev);
    free(r);
}

static void on_port_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct port_retry *r = arg;
    uint16_t port = r->port;
    int left = r->left;
    bool helper_only = r->helper_only;
    retry_drop(r);
    port_open(port, left, helper_only);
}

static bool port_retry_later(uint16_t port, int left, bool helper_only)
{
    struct port_retry *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    *r = (struct port_retry){ .port = port, .left = left, .helper_only = helper_only };
    r->ev = event_new(shim_ev_base(), -1, 0, on_port_retry, r);
    struct timeval tv = { 0, PORT_RETRY_MS * 1000 };
    if (helper_only)
        tv = (struct timeval){ REG_RETRY_SEC, 0 };
    if (!r->ev || event_add(r->ev, &tv) < 0) {
        if (r->ev)
            event_free(r->ev);
        free(r);
        return false;
    }
    LL_PREPEND(retries, r);
    return true;
}

static void srv_port_open(void *arg)
{
    shim_sopts_box_watch(shim_ev_base());
    port_open((uint16_t)(uintptr_t)arg, PORT_RETRIES, false);
}

/* ---- listeners handed to sstd (LISTEN, docs/helper.md) ---------------------------------------
 * SST_PORT taken -- on a host that runs sstd, by sstd -- the port is registered with sstd
 * instead: one control connection per port, "LISTEN PORT" with a listening socket of the port
 * (SCM_RIGHTS: the proof that we listen there; sstd reads its address and closes its copy).
 * sstd then accepts the port's SST streams and connects them to that address, as its gateway
 * does.  Closing the connection (the port's last socket closed, the process's end) ends it. */

static void reg_failed(struct lport *p, const char *why, bool retry)
{
    uint16_t port = p->port;
    int left = p->reg_left;
    char msg[200];
    snprintf(msg, sizeof(msg), "%s", why);
    lport_close(port);
    if (retry && left > 0 && port_retry_later(port, left - 1, false))
        return;
    lsock_pass_drop(port);
    SHIM_WARN("SST_LISTEN: port %u stays TCP only (SST port %u is taken; sstd at %s: %s)", port, shim_cfg.port,
              shim_helper_path() ? shim_helper_path() : "?", msg);
}

/* Gives back the slots of sstd's connections once claimed, or unclaimed after SPEER_TTL_SEC
 * (a connection never accepted; its loopback port may be used again later). */
static void on_speer_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    time_t now = time(NULL);
    for (struct speer **pp = &speers; *pp;) {
        struct speer *e = *pp;
        if (slot_claimed(e->slot) || now - e->at > SPEER_TTL_SEC) {
            pthread_mutex_lock(&srv_lock);
            slot_free(&e->slot);
            pthread_mutex_unlock(&srv_lock);
            *pp = e->next;
            free(e);
        } else {
            pp = &e->next;
        }
    }
    if (!speers && speer_ev)
        event_del(speer_ev);
}

/* The family of the app's socket that sstd connects to from local: the one whose target
 * (loopback for a wildcard bind, the bound address else) is local's address -- sstd binds its
 * end there -- else local's own family.  The SST peer is given in it, as the kernel would give
 * a TCP client of that socket (IPv4-mapped on a dual-stack IPv6 socket). */
static int reg_family(uint16_t port, const struct sst_addr *local)
{
    int family = local->family == SST_AF_INET4 ? AF_INET : AF_INET6;
    pthread_mutex_lock(&srv_lock);
    for (struct lsock *ls = lsocks; ls; ls = ls->next) {
        struct sst_addr t;
        if (ls->port != port || sst_addr_from_sockaddr(&t, (struct sockaddr *)&ls->target, ls->target_len) != 0)
            continue;
        t.port = local->port;
        t.scope_id = local->scope_id;
        if (sst_addr_eq(&t, local)) {
            family = ls->family;
            break;
        }
    }
    pthread_mutex_unlock(&srv_lock);
    return family;
}

/* "DEST LOCAL ADDRESS": the address the SST peer of the next "PEER LOCAL REMOTE" reached
 * (what getsockname() of the accepted connection reports).  A line of its own, not a third
 * word of PEER: shims before it parse REMOTE to the end of the line and would drop the PEER. */
static void reg_dest(struct lport *p, char *words)
{
    char *addr = strchr(words, ' ');
    p->dest_for[0] = '\0';
    if (!addr || (size_t)(addr - words) >= sizeof(p->dest_for))
        return;
    *addr++ = '\0';
    if (sst_addr_parse(&p->dest, addr, 0) != 0)
        return;
    memcpy(p->dest_for, words, (size_t)(addr - words));   /* with its NUL */
}

/* "PEER LOCAL REMOTE": sstd's connection from LOCAL carries the SST stream of REMOTE.  Offered
 * in the shared table (found by the accept() of this process or any forked from the
 * listening one, as for our own bridges: steps 3-4), then "PEERED LOCAL" lets sstd connect. */
static void reg_peer(struct lport *p, char *words)
{
    char *remote = strchr(words, ' ');
    struct sst_addr la, ra;
    if (!remote)
        return;
    *remote++ = '\0';
    if (sst_addr_parse(&la, words, 0) != 0 || sst_addr_parse(&ra, remote, 0) != 0) {
        SHIM_DEBUG("SST_LISTEN: port %u: sstd said PEER %s %s", p->port, words, remote);
        return;
    }
    struct sockaddr_storage peer, to;
    socklen_t peer_len = 0, to_len = 0;
    uint8_t key[19];
    memset(key, 0, sizeof(key));
    sst_addr_encode(&la, key);
    int family = reg_family(p->port, &la);
    if (sst_addr_to_sockaddr(&ra, family, &peer, &peer_len) != 0)
        peer_len = 0;   /* an IPv6 peer on an IPv4 socket (sstd refuses that): its address is reported */
    /* The address the peer reached, if sstd said it just before ("DEST", sstd since 2026-11-22;
     * without it getsockname() keeps the route guess). */
    if (strcmp(p->dest_for, words) != 0 || sst_addr_to_sockaddr(&p->dest, family, &to, &to_len) != 0)
        to_len = 0;
    p->dest_for[0] = '\0';
    struct speer *e = peer_len ? calloc(1, sizeof(*e)) : NULL;
    if (e) {
        pthread_mutex_lock(&srv_lock);
        e->slot = slot_publish(key, &peer, peer_len, &to, to_len);
        pthread_mutex_unlock(&srv_lock);
        e->at = time(NULL);
        if (e->slot < 0) {
            free(e);
        } else {
            e->next = speers;
            speers = e;
            if (!speer_ev)
                speer_ev = event_new(shim_ev_base(), -1, EV_PERSIST, on_speer_tick, NULL);
            struct timeval tv = { 1, 0 };
            if (speer_ev && !event_pending(speer_ev, EV_TIMEOUT, NULL))
                event_add(speer_ev, &tv);
        }
    }
    char line[SST_ADDR_STRLEN + 16];
    snprintf(line, sizeof(line), "PEERED %s\n", words);
    if (!shim_helper_send(p->reg_fd, line, -1))
        SHIM_DEBUG("SST_LISTEN: port %u: PEERED not sent (%s); sstd connects after its wait", p->port,
                   strerror(errno));
}

/* Until 2026-11-22 the answers to a port's further sockets were compared one byte too far
 * (the literal's terminating NUL): never recognised, so their duplicates stayed (iperf3 -s
 * through sstd exited at its third test, see port_open) and a refusal went unreported. */
static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* sstd's answer, then its PEER lines, and the connection's end (sstd exited: registered again
 * with the next sstd, for a restart; never by binding SST_PORT ourselves, which the new sstd
 * needs). */
static void on_reg_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct lport *p = arg;
    uint16_t port = p->port;
    size_t room = sizeof(p->reg_buf) - 1 - p->reg_len;
    if (room == 0) {   /* no line of sstd's is that long */
        if (!p->reg_ok) {
            reg_failed(p, "answer too long", false);
            return;
        }
        p->reg_len = 0;
        room = sizeof(p->reg_buf) - 1;
    }
    ssize_t n = recv(fd, p->reg_buf + p->reg_len, room, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (!p->reg_ok) {
            reg_failed(p, "closed the connection without an answer", true);
            return;
        }
        SHIM_WARN("SST_LISTEN: sstd ended: port %u no longer accepts SST streams; registering it again "
                  "with the next sstd for %d s", port, REG_AGAIN_TRIES * REG_RETRY_SEC);
        lport_close(port);
        (void)port_retry_later(port, REG_AGAIN_TRIES - 1, true);
        return;
    }
    p->reg_len += (size_t)n;
    p->reg_buf[p->reg_len] = '\0';
    char *line = p->reg_buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        if (p->reg_ok) {
            if (strncmp(line, "PEER ", 5) == 0) {
                reg_peer(p, line + 5);
            } else if (strncmp(line, "DEST ", 5) == 0) {
                reg_dest(p, line + 5);
            } else if (has_prefix(line, "{\"ok\":true,\"listen\":")) {
                lsock_pass_drop(port);   /* another socket of the port, registered too */
                SHIM_DEBUG("SST_LISTEN: port %u: sstd took another listening socket of it", port);
            } else if (has_prefix(line, "{\"ok\":false") && !strstr(line, "\"error\":\"unknown-stream\"")) {
                /* A refused LISTEN of another socket of the port (PEERED's only refusal is
                 * unknown-stream): its peers are refused by sstd, as TCP would not reach it. */
                lsock_pass_drop(port);
                SHIM_WARN("SST_LISTEN: port %u: a listening socket of it takes no SST streams (sstd at %s: %s)", port,
                          shim_helper_path() ? shim_helper_path() : "?", line);
            }
            /* else the answers to our PEERED */
        } else if (has_prefix(line, "{\"ok\":true")) {
            p->reg_ok = true;
            lsock_pass_drop(port);
            /* Clients reach it at sstd's UDP port: normally SST_PORT, which sstd holds. */
            const char *u = strstr(line, "\"udp_port\":");
            unsigned udp = u ? (unsigned)strtoul(u + 11, NULL, 10) : 0;
            if (udp != 0 && udp != shim_cfg.port)
                SHIM_WARN("SST_LISTEN: port %u accepts SST streams through sstd at %s on its UDP port %u, not "
                          "SST_PORT %u (taken by something else): its clients need SST_PORT=%u", port,
                          shim_helper_path() ? shim_helper_path() : "?", udp, shim_cfg.port, udp);
            SHIM_INFO("SST_LISTEN: port %u also accepts SST streams, through sstd at %s (SST port %u taken here)",
                      port, shim_helper_path() ? shim_helper_path() : "?", shim_cfg.port);
        } else {
            /* {"ok":false,"error":"CODE","message":"..."}: quoted as it came (one line); "in-use"
             * is worth another try: the registration of this server's previous run, whose
             * keeper ends within a second once its listening socket is gone. */
            bool retry = strstr(line, "\"error\":\"in-use\"") != NULL;
            reg_failed(p, line, retry);
            return;
        }
        line = nl + 1;
    }
    p->reg_len = strlen(line);
    memmove(p->reg_buf, line, p->reg_len + 1);
}

static void on_reg_slow(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct lport *p = arg;
    if (!p->reg_ok)
        SHIM_WARN("SST_LISTEN: sstd at %s has not answered LISTEN %u for %d s (stopped or swamped?): the "
                  "port accepts SST streams only once it does", shim_helper_path() ? shim_helper_path() : "?",
                  p->port, REG_SLOW_SEC);
}

/* Sends LISTEN for each socket of p's port not registered on its connection yet -- an IPv4
 * and an IPv6 socket of a port are two (docs/helper.md "LISTEN") -- with the socket as proof
 * (SCM_RIGHTS), or, where this process holds none of it any more (a keeper: the app's image
 * closed its copies, and a duplicate held here would keep the listener alive), by its inode,
 * which sstd finds in the kernel's table.  sstd answers each in order (on_reg_read).  Returns
 * how many were sent, -1 if the connection failed. */
#define REG_MAX_SOCKS 16
static int reg_send(struct lport *p)
{
    struct { int fd; unsigned long long ino; } todo[REG_MAX_SOCKS];
    int n = 0, sent = 0;
    pthread_mutex_lock(&srv_lock);
    for (struct lsock *ls = lsocks; ls && n < REG_MAX_SOCKS; ls = ls->next) {
        if (ls->port != p->port || ls->reg_sent)
            continue;
        /* The number may be closed by the app meanwhile (only ls->fd: the duplicate is ours):
         * sstd checks what it receives, a socket listening on port. */
        todo[n].fd = ls->pass_fd >= 0 ? ls->pass_fd : ls->fd;
        todo[n].ino = (unsigned long long)ls->ino;
        ls->reg_sent = true;
        n++;
    }
    pthread_mutex_unlock(&srv_lock);
    for (int i = 0; i < n; i++) {
        char line[64];
        if (todo[i].fd >= 0)
            snprintf(line, sizeof(line), "LISTEN %u\n", p->port);
        else
            snprintf(line, sizeof(line), "LISTEN %u %llu\n", p->port, todo[i].ino);
        if (!shim_helper_send(p->reg_fd, line, todo[i].fd)) {
            SHIM_DEBUG("SST_LISTEN: port %u: LISTEN not sent to sstd (%s)", p->port, strerror(errno));
            return -1;
        }
        sent++;
    }
    return sent;
}

/* Registers port with sstd (the answers come to on_reg_read): 1 asked, 0 sstd cannot be
 * reached now, -1 it cannot be asked from here at all (SST_HELPER=off). */
static int reg_start(uint16_t port, int retries_left)
{
    const char *path = shim_helper_path();
    if (!path)
        return -1;
    int fd = shim_helper_dial(path);
    if (fd < 0)
        return 0;
    struct lport *p = calloc(1, sizeof(*p));
    if (!p) {
        shim_fd_close_own(fd);
        return 0;
    }
    *p = (struct lport){ .port = port, .reg_fd = fd, .reg_left = retries_left };
    if (reg_send(p) <= 0) {
        free(p);
        shim_fd_close_own(fd);
        pthread_mutex_lock(&srv_lock);
        for (struct lsock *ls = lsocks; ls; ls = ls->next)
            if (ls->port == port)
                ls->reg_sent = false;
        pthread_mutex_unlock(&srv_lock);
        return 0;
    }
    p->reg_ev = event_new(shim_ev_base(), fd, EV_READ | EV_PERSIST, on_reg_read, p);
    if (!p->reg_ev || event_add(p->reg_ev, NULL) < 0) {
        if (p->reg_ev)
            event_free(p->reg_ev);
        p->reg_ev = NULL;
        p->next = lports;
        lports = p;
        lport_close(port);
        return 0;
    }
    struct timeval slow = { REG_SLOW_SEC, 0 };
    p->reg_slow = evtimer_new(shim_ev_base(), on_reg_slow, p);
    if (p->reg_slow)
        (void)evtimer_add(p->reg_slow, &slow);
    p->next = lports;
    lports = p;
    return 1;
}

static void port_open(uint16_t port, int retries_left, bool helper_only)
{
    struct lport *have = lport_find(port);
    if (have) {
        /* Another socket of a port that has its SST listener: the app's IPv6 socket after its
         * IPv4 one, or a listener made anew before the old one's close was seen here (iperf3
         * -s between two tests).  A registration with sstd gets it on the same connection, so
         * each family's peers reach their own, and its duplicate goes at sstd's answer
         * (on_reg_read); with our engine's listener it goes now -- until 2026-11-22 it stayed
         * (and, with sstd, the answer was never recognised: on_reg_read): the socket
         * listened on after the app closed it, the app's next bind of the port failed with
         * EADDRINUSE (iperf3 -s exited at its third test) and a keeper served the dead port
         * forever. */
        if (have->reg_fd >= 0 && reg_send(have) < 0)
            SHIM_WARN("SST_LISTEN: port %u: a new listening socket of it could not be registered with sstd (%s)",
                      port, strerror(errno));
        if (have->l)
            lsock_pass_drop(port);
        return;
    }
    if (lsock_prune(port) == 0)
        return;
    if (helper_only) {
        int r = reg_start(port, 0);
        if (r == 0 && retries_left > 0 && port_retry_later(port, retries_left - 1, true))
            return;
        if (r <= 0) {
            lsock_pass_drop(port);
            SHIM_WARN("SST_LISTEN: port %u stays TCP only (%s)", port,
                      r < 0 ? "SST_HELPER is off" : "no sstd took it again");
        }
        return;
    }
    struct sst_ctx *ctx = shim_engine_listen_port(shim_ev_base());
    if (!ctx) {
        bool busy = shim_engine_port_busy();
        if (busy && reg_start(port, retries_left) > 0)
            return;
        if (busy && retries_left > 0 && port_retry_later(port, retries_left - 1, false))
            return;
        lsock_pass_drop(port);
        SHIM_WARN("SST_LISTEN: port %u stays TCP only (%s)", port,
                  shim_engine_why()[0] ? shim_engine_why() : "no SST engine on the SST port");
        return;
    }
    struct lport *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    p->port = port;
    p->reg_fd = -1;
    shim_engine_sync_time();
    p->l = sst_listen(ctx, service, on_listener, p);
    if (p->l)   /* answered once the loopback connect completed (bridge_pump) */
        sst_listener_set_answer_later(p->l, true);
    shim_engine_kick();
    lsock_pass_drop(port);
    if (!p->l) {
        SHIM_WARN("SST_LISTEN: cannot listen for SST service %s", service);
        free(p);
        return;
    }
    p->next = lports;
    lports = p;
    SHIM_INFO("SST_LISTEN: port %u also accepts SST streams (UDP port %u)", port, shim_cfg.port);
}

static void srv_port_close(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    if (lsock_prune(port) == 0)
        lport_close(port);
}

/* ---- app threads: hooks --------------------------------------------------------------------- */

void shim_server_listen(int fd)
{
    int saved = errno;
    int type = 0, proto = 0, v6only = 0;
    socklen_t il = sizeof(int);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    struct stat st;

    pthread_once(&srv_once, srv_setup);
    if (getpid() != srv_pid)
        goto out;
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &il) != 0 || type != SOCK_STREAM)
        goto out;
    il = sizeof(int);
    if (shim_real_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &il) != 0 || proto != IPPROTO_TCP)
        goto out;
    if (shim_real_getsockname(fd, (struct sockaddr *)&bound, &blen) != 0 ||
        (bound.ss_family != AF_INET && bound.ss_family != AF_INET6) || fstat(fd, &st) != 0)
        goto out;
    uint16_t port = ntohs(((struct sockaddr_in *)&bound)->sin_port);   /* same offset in v6 */
    if (!port_selected(port))
        goto out;
    if (bound.ss_family == AF_INET6) {
        il = sizeof(int);
        if (shim_real_getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &il) != 0)
            v6only = 0;
    }

    pthread_mutex_lock(&srv_lock);
    if (!shared) {   /* before the server forks its workers: they inherit the mapping */
        void *m = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED)
            shared = m;
    }
    bool known = false;
    for (struct lsock **pp = &lsocks; *pp;) {
        struct lsock *ls = *pp;
        if (ls->fd == fd && ls->dev == st.st_dev && ls->ino == st.st_ino) {
            known = true;   /* listen() again: a new backlog, nothing to do */
            pp = &ls->next;
        } else if (ls->fd == fd) {
            lsock_unlink(pp);   /* stale: that number was closed behind our back */
        } else {
            pp = &ls->next;
        }
    }
    struct lsock *ls = known ? NULL : calloc(1, sizeof(*ls));
    if (ls) {
        ls->fd = fd;
        ls->dev = st.st_dev;
        ls->ino = st.st_ino;
        ls->family = bound.ss_family;
        ls->v6only = v6only != 0;
        ls->any = bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_addr.s_addr == htonl(INADDR_ANY)
                  : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&bound)->sin6_addr) ||
                    (IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&bound)->sin6_addr) &&
                     memcmp(&((struct sockaddr_in6 *)&bound)->sin6_addr.s6_addr[12], "\0\0\0\0", 4) == 0);
        ls->port = port;
        listen_target(&bound, &ls->target, &ls->target_len);
        ls->pass_fd = -1;
        if (shim_helper_path()) {
            int d = shim_real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (d >= 0)
                ls->pass_fd = shim_fd_hide_high(d, SHIM_FD_ENGINE);
        }
        ls->next = lsocks;
        lsocks = ls;
        atomic_fetch_add(&shim_server_live, 1);
    }
    pthread_mutex_unlock(&srv_lock);
    if (ls) {
        shim_sopts_box_open();   /* before the app can fork its workers */
        int err = shim_ev_call(srv_port_open, (void *)(uintptr_t)port);
        if (err != 0)
            SHIM_WARN("SST_LISTEN: port %u stays TCP only: %s", port, strerror(err));
    }
out:
    errno = saved;
}

int shim_server_close(int fd)
{
    int saved = errno;
    int port = -1;
    bool found = false;
    pthread_mutex_lock(&srv_lock);
    /* Whatever the number names now goes away: a record for it is dropped without asking
     * whether it is still the same socket (if not, that socket is already gone). */
    for (struct lsock **pp = &lsocks; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd == fd) {
            found = true;
            port = (*pp)->port;
            break;
        }
    }
    struct afd *a;
    HASH_FIND_INT(afds, &fd, a);
    pthread_mutex_unlock(&srv_lock);
    /* getpid() only for our fds: a vfork child shares our memory but not our fd table. */
    if ((!found && !a) || getpid() != srv_pid)
        goto out;
    pthread_mutex_lock(&srv_lock);
    /* Kept, closed here: the socket may listen on in a forked child or a dup, which the SST
     * listener goes on serving (shim_server_closed asks the kernel once this close is done). */
    for (struct lsock *ls = lsocks; ls; ls = ls->next) {
        if (ls->fd == fd) {
            ls->fd = -1;
            break;
        }
    }
    HASH_FIND_INT(afds, &fd, a);
    if (a) {
        /* The number goes; the socket may live on in a dup (the record by socket stays until
         * the bridge ends). */
        HASH_DELETE(hh, afds, a);
        a->fd = -1;
    }
    pthread_mutex_unlock(&srv_lock);
out:
    errno = saved;
    return found && getpid() == srv_pid ? port : -1;
}

void shim_server_closed(int port)
{
    /* The last socket of its port gone: the SST listener goes too (streams waiting in its
     * backlog are reset, as the kernel resets a closed listener's queue). */
    int saved = errno;
    (void)shim_ev_call_if_running(srv_port_close, (void *)(uintptr_t)port);
    errno = saved;
}

/* As the kernel: copy what fits, report the full length. */
static void put_addr(struct sockaddr *sa, socklen_t *len, socklen_t cap, const struct sockaddr_storage *a,
                     socklen_t alen)
{
    memcpy(sa, a, cap < alen ? cap : alen);
    *len = alen;
}

/* Forgets records made by accept here for connections bridged by another process (a pre-fork
 * server's worker: the bridge that would drop them is the parent's) whose socket no process
 * descriptor of ours names any more (srv_lock held).  One scan of /proc/self/fd per
 * FOREIGN_PRUNE_AT such accepts. */
static void prune_foreign(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct afd *a, *tmp;
    HASH_ITER(hk, apeers, a, tmp)
        a->seen = a->own;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        struct stat st;
        struct sock_id id;
        if (*end || end == e->d_name || fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        memset(&id, 0, sizeof(id));
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        HASH_FIND(hk, apeers, &id, sizeof(id), a);
        if (a)
            a->seen = true;
    }
    closedir(d);
    n_foreign = 0;
    HASH_ITER(hk, apeers, a, tmp) {
        if (!a->seen)
            afd_free(a);
        else if (!a->own)
            n_foreign++;
    }
}

void shim_server_accepted(int fd, struct sockaddr *sa, socklen_t *len, socklen_t cap)
{
    bool in_shared = shared && atomic_load_explicit(&shared->n_ready, memory_order_relaxed) > 0;
    if ((atomic_load_explicit(&n_pending, memory_order_relaxed) == 0 && !in_shared) || getpid() != srv_pid)
        return;
    int saved = errno;
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    struct sst_addr fa;
    if (sa && len && *len <= cap && *len <= (socklen_t)sizeof(from)) {
        memcpy(&from, sa, *len);
        flen = *len;
    } else if (shim_real_getpeername(fd, (struct sockaddr *)&from, &flen) != 0) {
        goto out;
    }
    if (sst_addr_from_sockaddr(&fa, (struct sockaddr *)&from, flen) != 0)
        goto out;
    uint8_t key[19];
    memset(key, 0, sizeof(key));
    sst_addr_encode(&fa, key);

    struct stat st;
    bool have_st = fstat(fd, &st) == 0;
    struct sockaddr_storage peer, to;
    socklen_t peer_len = 0, to_len = 0;
    struct pend *p;
    bool found = false;
    pthread_mutex_lock(&srv_lock);
    HASH_FIND(hh, pendings, key, sizeof(key), p);
    if (p) {
        /* Bridged by this process */
        HASH_DEL(pendings, p);
        p->in_table = false;
        atomic_fetch_sub(&n_pending, 1);
        slot_free(&p->slot);
        peer = p->peer;
        peer_len = p->peer_len;
        to = p->local;
        to_len = p->local_len;
        found = true;
    } else {
        /* By the process this one was forked from (a pre-forking server's worker) */
        found = slot_claim(key, &peer, &peer_len, &to, &to_len);
    }
    /* The port: the bridge's own loopback port, not the SST peer's UDP port (the same for
     * every connection from a host, where programs key connections by address and port):
     * distinct for every live connection, fixed for its life, and what the kernel reports as
     * the socket's peer port, so a copy of it after exec gives the same answer. */
    if (found && peer_len > 0)
        ((struct sockaddr_in *)&peer)->sin_port = ((struct sockaddr_in *)&from)->sin_port;
    if (found && peer_len > 0 && have_st) {
        struct afd *a;
        struct sock_id id;
        memset(&id, 0, sizeof(id));
        id.dev = st.st_dev;
        id.ino = st.st_ino;
        HASH_FIND_INT(afds, &fd, a);
        if (a) {   /* a number reused behind our back (a raw close): not that socket any more */
            HASH_DELETE(hh, afds, a);
            a->fd = -1;
        }
        HASH_FIND(hk, apeers, &id, sizeof(id), a);
        if (!a && (a = calloc(1, sizeof(*a))) != NULL) {
            a->id = id;
            a->fd = -1;
            HASH_ADD(hk, apeers, id, sizeof(a->id), a);
            atomic_fetch_add(&shim_server_live, 1);
            if (!p && ++n_foreign > FOREIGN_PRUNE_AT)
                prune_foreign();
        }
        if (a) {
            if (a->fd < 0) {
                a->fd = fd;
                HASH_ADD_INT(afds, fd, a);
            }
            a->own = p != NULL;
            a->peer = peer;
            a->peer_len = peer_len;
            a->local_len = to_len;
            if (to_len > 0)
                a->local = to;
            if (p) {
                p->accepted = true;   /* the bridge removes the record when it ends */
                p->acc = id;
                a->bridge = (struct bridge *)p;   /* pend is the bridge's first member */
            } else {
                a->bridge = NULL;
            }
        }
    }
    pthread_mutex_unlock(&srv_lock);
    if (found && peer_len > 0 && sa && len)
        put_addr(sa, len, cap, &peer, peer_len);
out:
    errno = saved;
}

void shim_server_close_at_exit(bool at_exec)
{
    if (getpid() != srv_pid)
        return;
    pthread_mutex_lock(&srv_lock);
    struct afd *a, *tmp;
    HASH_ITER(hh, afds, a, tmp) {
        struct stat st;
        if (a->own && fstat(a->fd, &st) == 0 && st.st_dev == a->id.dev && st.st_ino == a->id.ino) {
            if (shim_fd_survives_image(a->fd, at_exec))
                shim_real_shutdown(a->fd, SHUT_WR);   /* survives exec, unpumped: FIN */
            else
                shim_real_close(a->fd);
        }
        HASH_DELETE(hh, afds, a);
        a->fd = -1;
    }
    /* The listening sockets too (the kernel would a moment later): whether one is still open
     * elsewhere -- a daemon child, forked workers -- then tells the kernel's own table
     * (shim_server_orphans), and the keeper goes on listening for it. */
    for (struct lsock *ls = lsocks; ls; ls = ls->next) {
        if (ls->fd >= 0 && lsock_alive(ls) && !shim_fd_survives_image(ls->fd, at_exec)) {
            shim_real_close(ls->fd);
            ls->fd = -1;
        }
    }
    pthread_mutex_unlock(&srv_lock);
}

/* Whether some recorded socket of port still listens, here or elsewhere (lsock_alive). */
static bool port_alive(uint16_t port)
{
    bool open = false;
    pthread_mutex_lock(&srv_lock);
    for (struct lsock *ls = lsocks; ls && !open; ls = ls->next)
        open = ls->port == port && lsock_alive(ls);
    pthread_mutex_unlock(&srv_lock);
    return open;
}

int shim_server_orphans(void)
{
    int alive = 0;
    /* A listener still trying for SST_PORT is one too (nginx's first process listens and
     * exits within milliseconds: the keeper gets the port once it is free). */
    for (struct port_retry *r = retries, *next; r; r = next) {
        next = r->next;
        if (port_alive(r->port))
            alive++;
        else
            retry_drop(r);
    }
    for (struct lport *p = lports, *next; p; p = next) {
        next = p->next;                  /* lport_close frees p */
        if (port_alive(p->port))
            alive++;
        else
            lport_close(p->port);
    }
    return alive;
}

void shim_server_in_keeper(void)
{
    pthread_mutex_lock(&srv_lock);
    for (struct lsock *ls = lsocks; ls; ls = ls->next)
        ls->fd = -1;
    struct afd *a, *tmp;
    HASH_ITER(hh, afds, a, tmp) {
        HASH_DELETE(hh, afds, a);
        a->fd = -1;
    }
    pthread_mutex_unlock(&srv_lock);
}

/* The identity of the socket fd names (device + inode: the same for any descriptor of it), or
 * false with errno kept when fd is not a socket. */
static bool sock_id_of(int fd, struct sock_id *id)
{
    struct stat st;
    int saved = errno;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        errno = saved;
        return false;
    }
    memset(id, 0, sizeof(*id));
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return true;
}

/* The SST peer recorded for the socket fd names, by the socket itself (any descriptor of it). */
static bool accepted_peer(int fd, struct sockaddr_storage *peer, socklen_t *peer_len,
                          struct sockaddr_storage *local, socklen_t *local_len)
{
    struct afd *a;
    struct sock_id id;
    if (!sock_id_of(fd, &id))
        return false;
    int saved = errno;
    pthread_mutex_lock(&srv_lock);
    HASH_FIND(hk, apeers, &id, sizeof(id), a);
    if (a) {
        *peer = a->peer;
        *peer_len = a->peer_len;
        if (local) {
            *local = a->local;
            *local_len = a->local_len;
        }
    }
    pthread_mutex_unlock(&srv_lock);
    errno = saved;
    return a != NULL;
}

bool shim_server_accepted_where(int fd, dev_t *dev, ino_t *ino, bool *elsewhere)
{
    struct afd *a;
    struct sock_id id;
    *elsewhere = false;
    if (!sock_id_of(fd, &id))
        return false;
    int saved = errno;
    pthread_mutex_lock(&srv_lock);
    HASH_FIND(hk, apeers, &id, sizeof(id), a);
    bool here = a && a->own && getpid() == srv_pid;
    *elsewhere = a && !here;
    pthread_mutex_unlock(&srv_lock);
    *dev = id.dev;
    *ino = id.ino;
    errno = saved;
    return here;
}

bool shim_server_accepted_here(int fd, dev_t *dev, ino_t *ino)
{
    bool elsewhere;
    return shim_server_accepted_where(fd, dev, ino, &elsewhere);
}

/* The app's options for bridge b (event thread): to its stream now, or kept for bridge_pump. */
static void bridge_opts(struct bridge *b, const struct shim_sopts *o)
{
    shim_sopts_merge(&b->opts, o);
    bool app_done, peer_done;
    struct sst_stream *s = b->pump ? shim_spump_stream(b->pump, &app_done, &peer_done) : NULL;
    if (s)
        shim_sopts_apply(s, o);   /* else bridge_pump gives b->opts */
}

/* Event thread: the bridge of accepted socket dev/ino if this process bridges it, else NULL. */
static struct bridge *own_bridge(dev_t dev, ino_t ino)
{
    struct afd *a;
    struct sock_id id;
    memset(&id, 0, sizeof(id));
    id.dev = dev;
    id.ino = ino;
    pthread_mutex_lock(&srv_lock);
    HASH_FIND(hk, apeers, &id, sizeof(id), a);
    struct bridge *b = a && a->own ? a->bridge : NULL;
    pthread_mutex_unlock(&srv_lock);
    return b;
}

void shim_server_bridge_opts(dev_t dev, ino_t ino, const struct shim_sopts *o)
{
    struct bridge *b = own_bridge(dev, ino);
    /* The record points to the bridge until bridge_done frees both, on this thread; none: its
     * bridge ended (the record went with it). */
    if (b)
        bridge_opts(b, o);
}

void shim_server_bridge_opts_key(const uint8_t key[SHIM_BRIDGE_KEY_LEN], const struct shim_sopts *o)
{
    struct bridge *b;
    HASH_FIND(hb, bridge_keys, key, SHIM_BRIDGE_KEY_LEN, b);
    if (b)
        bridge_opts(b, o);
}

bool shim_server_bridge_key(int fd, uint8_t key[SHIM_BRIDGE_KEY_LEN])
{
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    struct sst_addr fa;
    int saved = errno;
    bool ok = shim_real_getpeername(fd, (struct sockaddr *)&from, &flen) == 0 &&
              sst_addr_from_sockaddr(&fa, (struct sockaddr *)&from, flen) == 0;
    if (ok) {
        memset(key, 0, SHIM_BRIDGE_KEY_LEN);
        sst_addr_encode(&fa, key);
    }
    errno = saved;
    return ok;
}

struct shim_spump *shim_server_pump(dev_t dev, ino_t ino)
{
    struct bridge *b = own_bridge(dev, ino);   /* freed on this thread only: safe to read */
    return b ? b->pump : NULL;
}

/* ---- across exec: SST_SHIM_ACCEPTED ----------------------------------------------------------
 * "DEV:INO=FAMILY,PORT,ADDRESS[,LOCAL];..." for the recorded sockets that survive the exec (held
 * by a descriptor without FD_CLOEXEC), read and removed from the environment by the new image's
 * constructor (shim_server_inherit).  LOCAL, the address the peer reached (getsockname), in the
 * same family, when known. */

/* The text of a's IP address (peer or local), or false. */
static bool addr_text(const struct sockaddr_storage *a, char *ip, size_t cap)
{
    const void *addr = a->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
                                               : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
    return inet_ntop(a->ss_family, addr, ip, (socklen_t)cap) != NULL;
}

/* Whether this process holds the socket id through a descriptor that survives exec. */
static bool survives_exec(const struct sock_id *id)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return true;   /* cannot tell: passed on (the entry is harmless if the socket is gone) */
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        struct stat st;
        if (*end || end == e->d_name || fd == dirfd(d) || fstat((int)fd, &st) != 0)
            continue;
        int fl = fcntl((int)fd, F_GETFD);
        found = st.st_dev == id->dev && st.st_ino == id->ino && fl >= 0 && !(fl & FD_CLOEXEC);
    }
    closedir(d);
    return found;
}

bool shim_server_exec_env(char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "%s=", SHIM_SERVER_ENV);
    bool any = false;
    if (getpid() != srv_pid || n >= cap)
        return false;
    pthread_mutex_lock(&srv_lock);
    struct afd *a, *tmp;
    HASH_ITER(hk, apeers, a, tmp) {
        char ip[INET6_ADDRSTRLEN], lip[INET6_ADDRSTRLEN + 1] = "";
        if (!addr_text(&a->peer, ip, sizeof(ip)) || !survives_exec(&a->id))
            continue;
        if (a->local_len > 0 && a->local.ss_family == a->peer.ss_family) {
            lip[0] = ',';
            if (!addr_text(&a->local, lip + 1, sizeof(lip) - 1))
                lip[0] = '\0';
        }
        int w = snprintf(buf + n, cap - n, "%s%llu:%llu=%d,%u,%s%s", any ? ";" : "",
                         (unsigned long long)a->id.dev, (unsigned long long)a->id.ino,
                         a->peer.ss_family == AF_INET ? 4 : 6, addr_port(&a->peer), ip, lip);
        if (w < 0 || (size_t)w >= cap - n)
            break;   /* full: the rest report the loopback address after the exec */
        n += (size_t)w;
        any = true;
    }
    pthread_mutex_unlock(&srv_lock);
    return any;
}

void shim_server_inherit(const char *val)
{
    pthread_once(&srv_once, srv_setup);
    for (const char *p = val; p && *p;) {
        unsigned long long dev, ino;
        unsigned port;
        int fam, used = 0;
        char ip[INET6_ADDRSTRLEN], lip[INET6_ADDRSTRLEN] = "";
        if (sscanf(p, "%llu:%llu=%d,%u,%45[^;,]%n", &dev, &ino, &fam, &port, ip, &used) != 5 || used == 0)
            break;
        p += used;
        if (*p == ',') {
            int lused = 0;
            if (sscanf(p, ",%45[^;,]%n", lip, &lused) != 1 || lused == 0)
                break;
            p += lused;
        }
        if (*p == ';')
            p++;
        struct afd *a = calloc(1, sizeof(*a));
        if (!a)
            break;
        a->id.dev = (dev_t)dev;
        a->id.ino = (ino_t)ino;
        a->fd = -1;
        bool ok;
        if (fam == 4) {
            struct sockaddr_in *in = (struct sockaddr_in *)&a->peer;
            in->sin_family = AF_INET;
            in->sin_port = htons((uint16_t)port);
            ok = inet_pton(AF_INET, ip, &in->sin_addr) == 1;
            a->peer_len = sizeof(*in);
            struct sockaddr_in *lin = (struct sockaddr_in *)&a->local;
            if (lip[0] && inet_pton(AF_INET, lip, &lin->sin_addr) == 1) {
                lin->sin_family = AF_INET;
                a->local_len = sizeof(*lin);
            }
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->peer;
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)port);
            ok = inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1;
            a->peer_len = sizeof(*in6);
            struct sockaddr_in6 *lin6 = (struct sockaddr_in6 *)&a->local;
            if (lip[0] && inet_pton(AF_INET6, lip, &lin6->sin6_addr) == 1) {
                lin6->sin6_family = AF_INET6;
                a->local_len = sizeof(*lin6);
            }
        }
        struct afd *old = NULL;
        pthread_mutex_lock(&srv_lock);
        HASH_FIND(hk, apeers, &a->id, sizeof(a->id), old);
        if (ok && port <= 65535 && !old) {
            HASH_ADD(hk, apeers, id, sizeof(a->id), a);
            atomic_fetch_add(&shim_server_live, 1);
            a = NULL;
        }
        pthread_mutex_unlock(&srv_lock);
        free(a);
    }
}

bool shim_server_getpeername(int fd, struct sockaddr *sa, socklen_t *len, int *ret)
{
    struct sockaddr_storage peer;
    socklen_t peer_len = 0;
    if (!accepted_peer(fd, &peer, &peer_len, NULL, NULL))
        return false;
    if (!sa || !len) {
        errno = EFAULT;
        *ret = -1;
        return true;
    }
    put_addr(sa, len, *len, &peer, peer_len);
    *ret = 0;
    return true;
}

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr)[0] == 127;
    const struct in6_addr *ip = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(ip) || (IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127);
}

static unsigned addr_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

bool shim_server_getsockname(int fd, struct sockaddr *sa, socklen_t *len, int *ret)
{
    struct sockaddr_storage peer, local, route, to;
    socklen_t peer_len = 0, local_len = sizeof(local), route_len, to_len = 0;
    if (!accepted_peer(fd, &peer, &peer_len, &to, &to_len))
        return false;
    /* The bridge connected to the loopback address of a wildcard listener (§6c): TCP from the
     * peer would have arrived on the address it sent to, at the same port -- the address its
     * SST packets reached (IP_PKTINFO, recorded at accept), else (not known: an sstd before
     * DEST, a channel without an authenticated packet yet) the address this host uses toward
     * it, a guess that is wrong on a host with several addresses. */
    int saved = errno;
    if (shim_real_getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 || !is_loopback(&local) ||
        is_loopback(&peer)) {
        errno = saved;
        return false;   /* the kernel's answer (the hook asks it) */
    }
    if (to_len > 0 && to.ss_family == local.ss_family) {
        ((struct sockaddr_in *)&to)->sin_port = htons((uint16_t)addr_port(&local));   /* same offset in v6 */
        route = to;
        route_len = to_len;
    } else if (!shim_route_local((struct sockaddr *)&peer, peer_len, addr_port(&local), &route, &route_len)) {
        errno = saved;
        return false;
    }
    errno = saved;
    if (!sa || !len) {
        errno = EFAULT;
        *ret = -1;
        return true;
    }
    put_addr(sa, len, *len, &route, route_len);
    *ret = 0;
    return true;
}
