/* TCP_USER_TIMEOUT and keepalive of connections accepted from SST streams (server_opts.h). */
#define _GNU_SOURCE
#include "server_opts.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "conn.h"
#include "engine.h"
#include "evthread.h"
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
        /* The bridge is the listening process's, which this one cannot reach: the option stays
         * the loopback socket's, and the engine's liveness probe ends a dead client's
         * connection (docs/shim.md §6c "Timeouts"). */
        if (elsewhere && !atomic_exchange(&told, true))
            SHIM_INFO("SST_LISTEN: %s set on a connection bridged by another process (the listening one): "
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
