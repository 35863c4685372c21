/* The "tcp" transport: kernel TCP to the destination, pumped to the app's socketpair end.  It
 * is the fallback when SST cannot be used, so its errors are exactly the kernel's. */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "fdtable.h"
#include "pump.h"
#include "real.h"
#include "transport.h"

struct tcp_state {
    struct shim_conn *c;
    int sock;
    struct event *connect_ev;
};

static bool tcp_usable(const struct sockaddr *peer, socklen_t peer_len, char *why, size_t len)
{
    return true;
}

static void pump_done(void *arg, int err)
{
    struct shim_conn *c = arg;
    c->net_fd = -1;
    shim_conn_done(c, err);
}

/* Options the app sets after connect() reach the kernel socket that carries its bytes. */
static void tcp_set_option(struct shim_conn *c, int level, int name, int value)
{
    if (c->net_fd >= 0)
        shim_real_setsockopt(c->net_fd, level, name, &value, sizeof(value));
}

void shim_tcp_adopt(struct shim_conn *c, struct event_base *base, int sock)
{
    struct sockaddr_storage local;
    socklen_t ll = sizeof(local);
    if (getsockname(sock, (struct sockaddr *)&local, &ll) < 0)
        ll = 0;
    c->net_fd = sock;
    /* Before the app can see the connection up: its shutdown hook must know at once. */
    atomic_store(&c->pumped_by, (int)getpid());
    shim_conn_up(c, ll ? (struct sockaddr *)&local : NULL, ll);
    int app = c->pump_fd;
    struct shim_pump *p = shim_pump_start(base, app, sock, pump_done, c);
    if (!p) {
        c->net_fd = -1;
        shim_fd_close_own(sock);
        shim_fd_close_own(app);
        shim_conn_done(c, ENOBUFS);
        return;
    }
    shim_pump_on_error(p, shim_conn_reset_app);   /* the peer's RST: ECONNRESET for the app */
    shim_pump_reserve(p, &c->rsv);
    shim_pump_linger(p, &c->linger0);   /* an abortive close reaches the peer as RST */
}

int shim_tcp_connect_result(int sock)
{
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    return err;
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    struct tcp_state *t = arg;
    struct shim_conn *c = t->c;
    struct event_base *base = event_get_base(t->connect_ev);
    int sock = t->sock;

    event_free(t->connect_ev);
    free(t);
    int err = shim_tcp_connect_result(sock);
    if (err != 0) {
        c->net_fd = -1;
        shim_fd_close_own(sock);
        shim_conn_fail(c, err);
        return;
    }
    shim_tcp_adopt(c, base, sock);
}

int shim_tcp_dial(struct shim_conn *c, int *sock_out)
{
    int s = shim_fd_own_socket(c->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    s = shim_fd_hide(s, SHIM_FD_ENGINE);
    struct shim_opt opts[SHIM_CONN_MAX_OPTS];
    int n = shim_conn_opt_copy(c, opts);
    for (int i = 0; i < n; i++)
        shim_real_setsockopt(s, opts[i].level, opts[i].name, &opts[i].value, sizeof(opts[i].value));
    if (shim_real_connect(s, (const struct sockaddr *)&c->peer, c->peer_len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        shim_fd_close_own(s);
        return e;   /* ENETUNREACH and friends, exactly as the kernel said */
    }
    *sock_out = s;
    return 0;
}

static int tcp_start(struct shim_conn *c, struct event_base *base)
{
    struct tcp_state *t = calloc(1, sizeof(*t));
    if (!t)
        return ENOBUFS;
    int err = shim_tcp_dial(c, &t->sock);
    if (err != 0) {
        free(t);
        return err;
    }
    t->c = c;
    c->net_fd = t->sock;
    t->connect_ev = event_new(base, t->sock, EV_WRITE, on_connected, t);
    if (!t->connect_ev || event_add(t->connect_ev, NULL) < 0) {
        if (t->connect_ev)
            event_free(t->connect_ev);
        c->net_fd = -1;
        shim_fd_close_own(t->sock);
        free(t);
        return ENOBUFS;
    }
    return 0;
}

const struct shim_transport shim_transport_tcp = {
    .name = "tcp",
    .usable = tcp_usable,
    .start = tcp_start,
    .set_option = tcp_set_option,
};
