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
#include "spump.h"
#include "tcpinfo.h"

/* How long the app's getsockopt waits for the event thread's answer: it is normally there in
 * microseconds; a loop stuck longer than this gets the state alone, never a hang. */
#define TCPINFO_WAIT_MS 200

static uint32_t clamp32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* ns -> the µs struct tcp_info counts in. */
static uint32_t usec(sst_time_t ns)
{
    return clamp32(ns / 1000);
}

int shim_tcpinfo_fill(const struct shim_tcpinfo_src *src, void *val, socklen_t *len)
{
    if (!val || !len) {
        errno = EFAULT;
        return -1;
    }
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    ti.tcpi_state = (uint8_t)src->state;
    if (src->have_chan) {
        const struct sst_chan_stats *cs = &src->chan;
        /* One segment is one packet's payload; the window is counted in those, as the kernel
         * counts snd_cwnd in segments of snd_mss (iperf3 prints snd_cwnd * snd_mss). */
        uint32_t mss = src->max_payload ? (uint32_t)src->max_payload : 1200;
        ti.tcpi_snd_mss = ti.tcpi_rcv_mss = ti.tcpi_advmss = mss;
        if (cs->plpmtu)   /* the datagram size in use, plus the UDP and IP headers: the path MTU */
            ti.tcpi_pmtu = cs->plpmtu + 8u + (src->v6 ? 40u : 20u);
        /* Before the first sample srtt is the RFC 9002 initial 333 ms: kernel TCP reports its
         * first real sample, so 0 until there is one (as sstd's status does). */
        bool sampled = (cs->state == SST_CHAN_ESTABLISHED || cs->state == SST_CHAN_CLOSING) &&
                       cs->min_rtt != 0 && cs->min_rtt != SST_TIME_NEVER;
        if (sampled) {
            ti.tcpi_rtt = usec(cs->srtt);
            ti.tcpi_rttvar = usec(cs->rttvar);
            ti.tcpi_min_rtt = usec(cs->min_rtt);
            /* RFC 6298's timeout, floored at Linux's TCP_RTO_MIN (200 ms) */
            uint64_t rto = cs->srtt + (4 * cs->rttvar > 1000000 ? 4 * cs->rttvar : 1000000);
            ti.tcpi_rto = usec(rto < 200000000 ? 200000000 : rto);
            if (!cs->pacing_rate && cs->srtt)
                ti.tcpi_pacing_rate = (uint64_t)((double)cs->cwnd * 1e9 / (double)cs->srtt);
        }
        if (cs->pacing_rate)
            ti.tcpi_pacing_rate = cs->pacing_rate;
        ti.tcpi_max_pacing_rate = UINT64_MAX;   /* no SO_MAX_PACING_RATE: the kernel's ~0 */
        ti.tcpi_snd_cwnd = clamp32(cs->cwnd ? (cs->cwnd + mss - 1) / mss : 0);
        /* "infinite" before the first loss, as the kernel's TCP_INFINITE_SSTHRESH */
        uint64_t ssth = cs->ssthresh / mss;
        ti.tcpi_snd_ssthresh = ssth >= 0x7fffffff ? 0x7fffffff : (uint32_t)ssth;
        ti.tcpi_unacked = clamp32((cs->bytes_in_flight + mss - 1) / mss);
        /* The channel's counters: every connection to this host shares the channel, as they
         * share its congestion window. */
        ti.tcpi_total_retrans = clamp32(cs->lost_packets);
        ti.tcpi_segs_out = ti.tcpi_data_segs_out = clamp32(cs->tx_packets);
        ti.tcpi_segs_in = ti.tcpi_data_segs_in = clamp32(cs->rx_packets);
    }
    if (src->have_stream) {
        const struct sst_stream_stats *ss = &src->stream;
        ti.tcpi_bytes_acked = ss->bytes_acked;
        ti.tcpi_bytes_received = ss->bytes_read + ss->rx_buffered;
        ti.tcpi_bytes_sent = ss->bytes_sent;
        ti.tcpi_bytes_retrans = ss->bytes_retransmitted;
        ti.tcpi_notsent_bytes = clamp32(ss->bytes_written - ss->bytes_sent);
        ti.tcpi_snd_wnd = clamp32(ss->tx_credit);
    }
    socklen_t n = *len < (socklen_t)sizeof(ti) ? *len : (socklen_t)sizeof(ti);
    memcpy(val, &ti, n);
    *len = n;
    return 0;
}

/* ---- the in-process engine: read on the event thread ------------------------------------- */

/* One getsockopt's question to the event thread.  Shared by the asking thread and the event
 * thread (two references): an answer that comes after the asker gave up lands here, never on
 * the asker's stack. */
struct tcpinfo_job {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    struct shim_conn *c;        /* holds a reference */
    struct shim_tcpinfo_src src;
    bool kernel;                /* TCP fallback: the kernel socket's own answer, in kti */
    socklen_t kti_len;
    struct tcp_info kti;
};

static void job_unref(struct tcpinfo_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    shim_conn_unref(j->c);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Event thread: the stream's and its channel's numbers, and the state from the pump's ends. */
static void read_sst(struct shim_spump *p, struct shim_tcpinfo_src *src)
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
    if (c->net_fd >= 0) {
        j->kti_len = sizeof(j->kti);
        j->kernel = shim_real_getsockopt(c->net_fd, IPPROTO_TCP, TCP_INFO, &j->kti, &j->kti_len) == 0;
    } else if (c->spump) {
        read_sst(c->spump, &j->src);
    }
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

/* Asks the event thread; false (src untouched) if it does not run or does not answer in time. */
static bool ask_event_thread(struct shim_conn *c, struct shim_tcpinfo_src *src, void *val, socklen_t *len,
                             int *rc)
{
    struct tcpinfo_job *j = calloc(1, sizeof(*j));
    if (!j)
        return false;
    atomic_init(&j->refs, 2);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    shim_conn_ref(c);
    j->c = c;
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
    bool done = j->done;
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
        } else if (ask_event_thread(c, &src, val, len, &rc)) {
            errno = saved;
            return rc;
        }
        errno = saved;
    }
    return shim_tcpinfo_fill(&src, val, len);
}
