/* getsockopt(TCP_INFO) on a carried connection (tcpinfo.h).  Only the kernel's uapi header: its
 * struct tcp_info is the whole one the kernel copies (glibc's netinet/tcp.h stops at
 * tcpi_total_retrans), and the two headers cannot be included together. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "engine.h"
#include "evthread.h"
#include "helper_client.h"
#include "log.h"
#include "real.h"
#include "server.h"
#include "spump.h"
#include "tcpinfo.h"

/* How long the app's getsockopt waits for the event thread's answer: it is normally there in
 * microseconds; a loop stuck longer than this gets the state alone, never a hang. */
#define TCPINFO_WAIT_MS 200

/* ---- the in-process engine: read on the event thread ------------------------------------- */

/* One getsockopt's question to the event thread.  Shared by the asking thread and the event
 * thread (two references): an answer that comes after the asker gave up lands here, never on
 * the asker's stack. */
struct tcpinfo_job {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    struct shim_conn *c;        /* holds a reference; NULL for an accepted socket: */
    dev_t dev;                  /* ... the socket, for shim_server_pump */
    ino_t ino;
    bool found;                 /* the event thread had its stream */
    struct shim_tcpinfo_src src;
    bool kernel;                /* TCP fallback: the kernel socket's own answer, in kti */
    socklen_t kti_len;
    struct tcp_info kti;
};

static void job_unref(struct tcpinfo_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    if (j->c)
        shim_conn_unref(j->c);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Event thread: the stream's and its channel's numbers, and the state from the pump's ends. */
void shim_tcpinfo_read_pump(struct shim_spump *p, struct shim_tcpinfo_src *src)
{
    bool app_done, peer_done;
    struct sst_stream *s = shim_spump_stream(p, &app_done, &peer_done);
    src->state = shim_tcpinfo_state(app_done, peer_done);
    if (!s)
        return;
    sst_stream_get_stats(s, &src->stream);
    src->have_stream = true;
    struct sst_ctx *ctx = shim_engine_current(shim_ev_base());
    const struct sst_addr *peer = sst_stream_peer(s);
    struct sst_chan *ch = ctx ? sst_host_find(sst_ctx_host(ctx), peer) : NULL;
    if (!ch)
        return;   /* dormant (idle channel closed): the stream's numbers only */
    sst_chan_get_stats(ch, &src->chan);
    src->max_payload = sst_chan_max_payload(ch);
    src->v6 = peer->family == AF_INET6;
    src->have_chan = true;
}

static void job_run(void *arg)
{
    struct tcpinfo_job *j = arg;
    struct shim_conn *c = j->c;
    struct shim_spump *p;
    if (!c) {
        if ((p = shim_server_pump(j->dev, j->ino)) != NULL) {
            shim_tcpinfo_read_pump(p, &j->src);
            j->found = true;
        }
    } else if (c->net_fd >= 0) {
        j->kti_len = sizeof(j->kti);
        j->kernel = shim_real_getsockopt(c->net_fd, IPPROTO_TCP, TCP_INFO, &j->kti, &j->kti_len) == 0;
    } else if (c->spump) {
        shim_tcpinfo_read_pump(c->spump, &j->src);
    }
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

/* Asks the event thread; false (src untouched) if it does not run or does not answer in time. */
static bool ask_event_thread(struct shim_conn *c, dev_t dev, ino_t ino, struct shim_tcpinfo_src *src,
                             void *val, socklen_t *len, int *rc)
{
    struct tcpinfo_job *j = calloc(1, sizeof(*j));
    if (!j)
        return false;
    atomic_init(&j->refs, 2);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (c)
        shim_conn_ref(c);
    j->c = c;
    j->dev = dev;
    j->ino = ino;
    j->src = *src;
    if (shim_ev_call_if_running(job_run, j) != 0) {
        atomic_store(&j->refs, 1);   /* job_run never runs */
        job_unref(j);
        return false;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += TCPINFO_WAIT_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&j->mu);
    while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &until) == 0)
        ;
    bool done = j->done && (c || j->found);
    pthread_mutex_unlock(&j->mu);
    if (done && j->kernel) {
        /* The TCP fallback's kernel socket: its own answer, truncated as the kernel does. */
        socklen_t n = *len < j->kti_len ? *len : j->kti_len;
        memcpy(val, &j->kti, n);
        *len = n;
        *rc = 0;
    } else if (done) {
        *src = j->src;
        *rc = shim_tcpinfo_fill(src, val, len);
    }
    if (!done)
        SHIM_DEBUG("TCP_INFO: the event thread did not answer within %d ms", TCPINFO_WAIT_MS);
    job_unref(j);
    return done;
}

int shim_tcpinfo_get(struct shim_conn *c, void *val, socklen_t *len)
{
    if (!val || !len) {
        errno = EFAULT;
        return -1;
    }
    struct shim_tcpinfo_src src;
    memset(&src, 0, sizeof(src));
    int st = atomic_load(&c->state);
    src.state = st == SHIM_CONN_CONNECTED ? SHIM_TCPS_ESTABLISHED
              : st == SHIM_CONN_CONNECTING ? SHIM_TCPS_SYN_SENT : SHIM_TCPS_CLOSE;
    if (st == SHIM_CONN_CONNECTED) {
        int saved = errno, rc = 0;
        /* Handed to sstd: it holds the stream and the channel (docs/helper.md "INFO").  If it
         * does not know the hand-off (sstd at its descriptor limit gave it back to the
         * in-process engine, shim_helper_hold_reclaim), the event thread may. */
        char buf[1024];
        struct shim_tcpinfo_src h;
        bool from_helper = c->helper_ino && shim_helper_info(c->helper_dev, c->helper_ino, buf, sizeof(buf)) &&
                           shim_tcpinfo_parse(buf, &h);
        if (from_helper) {
            src = h;
        } else if (ask_event_thread(c, 0, 0, &src, val, len, &rc)) {
            errno = saved;
            return rc;
        }
        errno = saved;
    }
    return shim_tcpinfo_fill(&src, val, len);
}

int shim_tcpinfo_get_accepted(int fd, void *val, socklen_t *len, bool *answered)
{
    dev_t dev;
    ino_t ino;
    int rc = 0, saved = errno;
    struct shim_tcpinfo_src src;
    *answered = false;
    if (!val || !len || !shim_server_accepted_here(fd, &dev, &ino))
        return 0;
    memset(&src, 0, sizeof(src));
    src.state = SHIM_TCPS_ESTABLISHED;
    *answered = ask_event_thread(NULL, dev, ino, &src, val, len, &rc);
    errno = saved;
    return rc;
}
