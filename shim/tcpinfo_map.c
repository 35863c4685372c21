/* The TCP_INFO mapping (tcpinfo.h): the TCP state, the struct tcp_info made of a source, and
 * sstd's INFO answer read into a source.  Apart from tcpinfo.c's getsockopt plumbing so that
 * what turns sstd's answer into the app's struct links into tests and the fuzz target
 * tests/fuzz/fuzz_shimread.c without the shim's threads and hooks.  Only the kernel's uapi
 * header: its struct tcp_info is the whole one the kernel copies (glibc's netinet/tcp.h stops
 * at tcpi_total_retrans). */
#include <errno.h>
#include <linux/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcpinfo.h"

int shim_tcpinfo_state(bool app_done, bool peer_done)
{
    if (app_done && peer_done)
        return SHIM_TCPS_CLOSE;
    if (app_done)
        return SHIM_TCPS_FIN_WAIT2;
    if (peer_done)
        return SHIM_TCPS_CLOSE_WAIT;
    return SHIM_TCPS_ESTABLISHED;
}

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
        /* A payload beyond 64 KiB is no datagram's: a garbled answer (one of 2^32 was cut to
         * a zero divisor below -- SIGFPE in the app's getsockopt). */
        uint32_t mss = src->max_payload && src->max_payload <= UINT16_MAX ? (uint32_t)src->max_payload : 1200;
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
            if (!cs->pacing_rate && cs->srtt) {
                /* Saturated as the kernel's u64: a double beyond it has no uint64_t value. */
                double rate = (double)cs->cwnd * 1e9 / (double)cs->srtt;
                ti.tcpi_pacing_rate = rate >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)rate;
            }
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

/* "key":NUMBER (or true/false) in a flat JSON object. */
static bool json_u64(const char *json, const char *key, uint64_t *out)
{
    char pat[48];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        return false;
    p += strlen(pat);
    if (strncmp(p, "true", 4) == 0) {
        *out = 1;
        return true;
    }
    if (strncmp(p, "false", 5) == 0) {
        *out = 0;
        return true;
    }
    /* sstd writes digits: strtoull would also take "-46" (as 2^64 - 46) and leading spaces. */
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p || errno)
        return false;
    *out = v;
    return true;
}

bool shim_tcpinfo_parse(const char *json, struct shim_tcpinfo_src *src)
{
    uint64_t v, app_done = 0, peer_done = 0;
    if (!strstr(json, "\"ok\":true"))
        return false;
    memset(src, 0, sizeof(*src));
    json_u64(json, "app_done", &app_done);
    json_u64(json, "peer_done", &peer_done);
    src->state = shim_tcpinfo_state(app_done, peer_done);
    struct sst_stream_stats *ss = &src->stream;
    src->have_stream = json_u64(json, "bytes_written", &ss->bytes_written);
    if (src->have_stream) {
        json_u64(json, "bytes_read", &ss->bytes_read);
        json_u64(json, "rx_buffered", &ss->rx_buffered);
        json_u64(json, "bytes_sent", &ss->bytes_sent);
        json_u64(json, "bytes_acked", &ss->bytes_acked);
        json_u64(json, "bytes_retransmitted", &ss->bytes_retransmitted);
        json_u64(json, "tx_credit", &ss->tx_credit);
    }
    struct sst_chan_stats *cs = &src->chan;
    src->have_chan = json_u64(json, "cwnd", &cs->cwnd);
    if (src->have_chan) {
        cs->state = SST_CHAN_ESTABLISHED;
        json_u64(json, "srtt_ns", &cs->srtt);
        json_u64(json, "rttvar_ns", &cs->rttvar);
        json_u64(json, "min_rtt_ns", &cs->min_rtt);   /* absent: no sample yet (0) */
        json_u64(json, "ssthresh", &cs->ssthresh);
        json_u64(json, "bytes_in_flight", &cs->bytes_in_flight);
        json_u64(json, "lost_packets", &cs->lost_packets);
        json_u64(json, "tx_packets", &cs->tx_packets);
        json_u64(json, "rx_packets", &cs->rx_packets);
        json_u64(json, "pacing_rate", &cs->pacing_rate);
        if (json_u64(json, "plpmtu", &v))
            cs->plpmtu = (uint16_t)v;
        if (json_u64(json, "max_payload", &v))
            src->max_payload = (size_t)v;
        if (json_u64(json, "v6", &v))
            src->v6 = v != 0;
    }
    return true;
}
