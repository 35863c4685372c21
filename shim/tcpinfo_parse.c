/* sstd's INFO answer read into a TCP_INFO source, and the TCP state (tcpinfo.h).  Apart from
 * tcpinfo.c's hooks so that the parser of what sstd writes links into tests and the fuzz target
 * tests/fuzz/fuzz_shimread.c without the shim's threads and hooks. */
#include <errno.h>
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
