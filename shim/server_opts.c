/* TCP_USER_TIMEOUT and keepalive of connections accepted from SST streams (server_opts.h). */
#define _GNU_SOURCE
#include "server_opts.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "engine.h"
#include "evthread.h"
#include "fdtable.h"
#include "log.h"
#include "real.h"
#include "server.h"

void shim_sopts_none(struct shim_sopts *o)
{
    o->ut = -1;
    o->ka[0] = o->ka[1] = o->ka[2] = o->ka[3] = -1;
}

static bool read_int(int fd, int level, int name, int *v)
{
    socklen_t l = sizeof(*v);
    return shim_real_getsockopt(fd, level, name, v, &l) == 0 && l == sizeof(*v);
}

void shim_sopts_read(int fd, bool want_ut, bool want_ka, struct shim_sopts *o)
{
    int saved = errno, v, ka[4];
    if (want_ut && read_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v) && v >= 0)
        o->ut = v;
    if (want_ka && read_int(fd, SOL_SOCKET, SO_KEEPALIVE, &ka[0]) && read_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &ka[1]) &&
        read_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, &ka[2]) && read_int(fd, IPPROTO_TCP, TCP_KEEPCNT, &ka[3]) &&
        ka[1] > 0 && ka[2] > 0 && ka[3] > 0) {
        o->ka[0] = ka[0] != 0;
        for (int i = 1; i < 4; i++)
            o->ka[i] = ka[i];
    }
    errno = saved;
}

void shim_sopts_merge(struct shim_sopts *into, const struct shim_sopts *o)
{
    if (o->ut >= 0)
        into->ut = o->ut;
    if (o->ka[0] >= 0)
        for (int i = 0; i < 4; i++)
            into->ka[i] = o->ka[i];
}

void shim_sopts_apply(struct sst_stream *s, const struct shim_sopts *o)
{
    if (o->ut < 0 && o->ka[0] < 0)
        return;
    shim_engine_sync_time();
    if (o->ut >= 0)
        (void)sst_stream_set_user_timeout(s, SST_MS((sst_time_t)o->ut));
    if (o->ka[0] >= 0)
        (void)sst_stream_set_keepalive(s, o->ka[0] ? SST_SEC((sst_time_t)o->ka[1]) : 0,
                                       SST_SEC((sst_time_t)o->ka[2]), (unsigned)o->ka[3]);
    shim_engine_kick();   /* the engine's next deadline may be earlier now */
}

bool shim_sopts_is_timeout(int level, int name)
{
    return (level == IPPROTO_TCP && name == TCP_USER_TIMEOUT) || shim_opt_is_keepalive(level, name);
}

/* ---- the mailbox: options set in a forked child ----------------------------------------------
 * A child of the listening process holds accepted sockets whose bridges are its parent's: a
 * pre-forking server's worker, a fork-per-connection server (postgres's backends set
 * tcp_user_timeout and tcp_keepalives_* after the fork).  The listening process binds a unix
 * datagram socket to an abstract name the kernel picks (autobind: no clash, nothing on disk)
 * before its first listen() returns, so its children know the name from the memory they copy;
 * they send the options with the bridge's key (the accepted socket's kernel peer).  Only from
 * this uid or root (SCM_CREDENTIALS): any process of the network namespace can send there. */
#define BOX_MAGIC 0x53535431u       /* "SST1" */
struct box_msg {
    uint32_t magic;
    uint8_t key[SHIM_BRIDGE_KEY_LEN];
    uint8_t pad;
    int32_t ut;
    int32_t ka[4];
};

/* No lock: a child forked while another thread held one would keep it held.  0 none, 1 being
 * opened (in a child forked meanwhile: stays so, and the child has no mailbox), 2 open: the
 * fields below are set (release/acquire). */
static atomic_int box_state;
static int box_fd = -1;              /* the listening process's (hidden, closed in children) */
static pid_t box_pid;                /* that process */
static struct sockaddr_un box_addr;  /* its name: copied into every child forked after it */
static socklen_t box_len;            /* its length */
static struct event *box_ev;         /* event thread */

void shim_sopts_box_open(void)
{
    int st = 0;
    /* Once; a child keeps its parent's: the bridges it may get are there. */
    if (atomic_compare_exchange_strong(&box_state, &st, 1)) {
        int on = 1;
        struct sockaddr_un a, self = { .sun_family = AF_UNIX };
        socklen_t al = sizeof(a);
        const socklen_t fam_len = offsetof(struct sockaddr_un, sun_path);
        int s = shim_fd_own_socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        /* Bound with the family alone: the kernel picks a free abstract name (unix(7)). */
        if (s >= 0 && bind(s, (const struct sockaddr *)&self, fam_len) == 0 &&
            shim_real_getsockname(s, (struct sockaddr *)&a, &al) == 0 && al > fam_len && al <= sizeof(a) &&
            shim_real_setsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0) {
            box_fd = shim_fd_hide(s, SHIM_FD_ENGINE);
            box_pid = getpid();
            box_addr = a;
            box_len = al;
            atomic_store(&box_state, 2);
        } else {
            SHIM_DEBUG("SST_LISTEN: no mailbox for forked children: %s", strerror(errno));
            if (s >= 0)
                shim_real_close(s);
            atomic_store(&box_state, 0);   /* the next listen() tries again */
        }
    }
}

static bool box_open_here(void)
{
    return atomic_load(&box_state) == 2 && box_pid == getpid();
}

static bool sopts_valid(const struct shim_sopts *o)
{
    if (o->ut < -1 || o->ka[0] < -1 || o->ka[0] > 1)
        return false;
    return o->ka[0] < 0 || (o->ka[1] > 0 && o->ka[2] > 0 && o->ka[3] > 0);
}

static void on_box(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (int i = 0; i < 64; i++) {   /* then back to the loop: the others' turn */
        struct box_msg m;
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(sizeof(struct ucred))];
        } cm;
        struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof(cm) };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
        if (n < 0)
            return;
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
        struct ucred cr;
        if (n != (ssize_t)sizeof(m) || m.magic != BOX_MAGIC || !h || h->cmsg_level != SOL_SOCKET ||
            h->cmsg_type != SCM_CREDENTIALS || h->cmsg_len < CMSG_LEN(sizeof(cr)))
            continue;
        memcpy(&cr, CMSG_DATA(h), sizeof(cr));
        struct shim_sopts o;
        o.ut = m.ut;
        memcpy(o.ka, m.ka, sizeof(o.ka));
        if ((cr.uid != 0 && cr.uid != geteuid()) || !sopts_valid(&o)) {
            SHIM_DEBUG("SST_LISTEN: options from pid %d uid %u not taken", (int)cr.pid, (unsigned)cr.uid);
            continue;
        }
        shim_server_bridge_opts_key(m.key, &o);
    }
}

void shim_sopts_box_watch(struct event_base *base)
{
    if (!box_open_here() || box_ev)
        return;
    box_ev = event_new(base, box_fd, EV_READ | EV_PERSIST, on_box, NULL);
    if (box_ev && event_add(box_ev, NULL) < 0) {
        event_free(box_ev);
        box_ev = NULL;
    }
}

/* A child: the options of the accepted socket fd to its parent's mailbox.  False if there is
 * none (an exec'd image: the name did not cross the exec) or it could not be sent. */
static bool box_send(int fd, const struct shim_sopts *o)
{
    struct box_msg m;
    if (atomic_load(&box_state) != 2 || box_pid == getpid())
        return false;   /* none (an exec'd image), or ours: not a child's */
    memset(&m, 0, sizeof(m));
    m.magic = BOX_MAGIC;
    if (!shim_server_bridge_key(fd, m.key))
        return false;
    m.ut = o->ut;
    memcpy(m.ka, o->ka, sizeof(m.ka));
    int s = shim_real_socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    bool ok = shim_real_sendto(s, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&box_addr,
                               box_len) == (ssize_t)sizeof(m);
    shim_real_close(s);
    return ok;
}

/* The app's options on its way to the event thread. */
struct sopts_job {
    dev_t dev;
    ino_t ino;
    struct shim_sopts o;
};

static void sopts_run(void *arg)
{
    struct sopts_job *j = arg;
    shim_server_bridge_opts(j->dev, j->ino, &j->o);
    free(j);
}

void shim_server_sockopt(int fd, int level, int name)
{
    static atomic_bool told;
    dev_t dev;
    ino_t ino;
    bool elsewhere;
    if (!shim_sopts_is_timeout(level, name))
        return;
    bool ut = level == IPPROTO_TCP && name == TCP_USER_TIMEOUT;
    int saved = errno;
    if (!shim_server_accepted_where(fd, &dev, &ino, &elsewhere)) {
        struct shim_sopts o;
        shim_sopts_none(&o);
        if (elsewhere)
            shim_sopts_read(fd, ut, !ut, &o);
        /* The bridge is the listening process's: its mailbox takes it from a forked child.  An
         * exec'd image cannot reach it: the option stays the loopback socket's, and the
         * engine's liveness probe ends a dead client's connection (docs/shim.md §6c
         * "Timeouts"). */
        if (elsewhere && !box_send(fd, &o) && !atomic_exchange(&told, true))
            SHIM_INFO("SST_LISTEN: %s set on a connection bridged by another process, out of reach: "
                      "it acts on the loopback socket only",
                      ut ? "TCP_USER_TIMEOUT" : "keepalive");
        errno = saved;
        return;
    }
    struct sopts_job *j = malloc(sizeof(*j));
    if (j) {
        j->dev = dev;
        j->ino = ino;
        shim_sopts_none(&j->o);
        /* As the kernel socket holds them now: the whole keepalive set at once (the stream takes
         * the three parameters together; those never set are the kernel's defaults). */
        shim_sopts_read(fd, ut, !ut, &j->o);
        if (shim_ev_call_if_running(sopts_run, j) != 0)
            free(j);
    }
    errno = saved;
}
