/* The STATUS reply: daemon, host counters, every channel with its statistics, and the
 * capability cache, as one JSON object (docs/helper.md lists the fields). */
#include "sstd.h"

#include <stdio.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "io/driver.h"
#include "pump.h"
#include "sst.h"

static const char *chan_state_name(enum sst_chan_state s)
{
    static const char *const names[] = { "connecting", "established", "closing", "closed" };
    return (unsigned)s < SST_ARRAY_LEN(names) ? names[s] : "?";
}

static const char *link_name(enum sst_link_state s)
{
    static const char *const names[] = { "up", "stalled", "down" };
    return (unsigned)s < SST_ARRAY_LEN(names) ? names[s] : "?";
}

static const char *num_or_null(char *buf, bool have, sst_time_t t)
{
    if (!have)
        return "null";
    snprintf(buf, 32, "%.3f", sstd_ms(t));
    return buf;
}

struct walk {
    struct sstd *d;
    struct evbuffer *out;
    sst_time_t now;
    bool first;
};

static void chan_json(void *arg, struct sstd_peer *p)
{
    struct walk *w = arg;
    struct sst_chan_stats st;
    char r1[32], r2[32], r3[32];
    if (!p->chan)
        return;
    sst_chan_get_stats(p->chan, &st);
    evbuffer_add_printf(w->out, "%s{\"peer\":", w->first ? "" : ",");
    w->first = false;
    sstd_json_str(w->out, p->key);
    evbuffer_add_printf(w->out,
                        ",\"state\":\"%s\",\"link\":\"%s\",\"initiator\":%s,\"security\":\"%s\","
                        "\"aead\":\"%s\",\"cc\":",
                        chan_state_name(st.state), link_name(st.link), st.initiator ? "true" : "false",
                        st.security == SST_SEC_STRONG ? "strong" : "light",
                        st.aead == SST_AEAD_AES256GCM ? "aes256gcm" : "chacha20poly1305");
    sstd_json_str(w->out, st.cc_name ? st.cc_name : "");
    /* Before the first RTT sample srtt is the RFC 9002 initial 333 ms: report null instead. */
    bool established = (st.state == SST_CHAN_ESTABLISHED || st.state == SST_CHAN_CLOSING) &&
                       st.min_rtt != 0 && st.min_rtt != SST_TIME_NEVER;
    evbuffer_add_printf(w->out,
                        ",\"rtt_ms\":%s,\"min_rtt_ms\":%s,\"rttvar_ms\":%s,\"cwnd\":%llu,"
                        "\"bytes_in_flight\":%llu,\"lost_packets\":%llu,\"loss\":%.6f,"
                        "\"tx_bytes\":%llu,\"rx_bytes\":%llu,\"tx_packets\":%llu,\"rx_packets\":%llu,"
                        "\"age_s\":%.3f,\"streams\":%u,\"warm\":%s,\"warm_left_s\":%.3f,"
                        "\"handshakes\":%llu,\"last_handshake_ms\":%.3f}",
                        num_or_null(r1, established, st.srtt), num_or_null(r2, established, st.min_rtt),
                        num_or_null(r3, established, st.rttvar), (unsigned long long)st.cwnd,
                        (unsigned long long)st.bytes_in_flight, (unsigned long long)st.lost_packets,
                        st.tx_packets ? (double)st.lost_packets / (double)st.tx_packets : 0.0,
                        (unsigned long long)st.tx_bytes, (unsigned long long)st.rx_bytes,
                        (unsigned long long)st.tx_packets, (unsigned long long)st.rx_packets,
                        p->up_at && p->state == SSTD_PEER_UP ? (double)(w->now - p->up_at) / 1e9 : 0.0,
                        p->streams, w->now < p->want_until ? "true" : "false",
                        w->now < p->want_until ? (double)(p->want_until - w->now) / 1e9 : 0.0,
                        (unsigned long long)p->handshakes, sstd_ms(p->last_handshake_ns));
}

static void cap_json(void *arg, const char *host, enum sstd_cap cap, const char *reason, sst_time_t expires)
{
    struct walk *w = arg;
    evbuffer_add_printf(w->out, "%s{\"host\":", w->first ? "" : ",");
    w->first = false;
    sstd_json_str(w->out, host);
    evbuffer_add_printf(w->out, ",\"sst\":\"%s\",\"reason\":", sstd_cap_name(cap));
    sstd_json_str(w->out, reason);
    evbuffer_add_printf(w->out, ",\"expires_in_s\":%.3f}", (double)(expires - w->now) / 1e9);
}

void sstd_status_json(struct sstd *d, struct evbuffer *out)
{
    struct sst_host_stats hs;
    struct walk w = { .d = d, .out = out, .now = sstd_now(d), .first = true };
    sst_host_get_stats(sstd_host(d), &hs);
    evbuffer_add_printf(out, "{\"ok\":true,\"pid\":%d,\"uptime_s\":%.3f,\"port\":%u,\"socket\":", (int)getpid(),
                        (double)(w.now - d->started) / 1e9, d->port);
    sstd_json_str(out, d->opts.socket_path);
    evbuffer_add_printf(out, ",\"idle_s\":%u,\"proxy_protocol\":%s,\"forward\":[", d->opts.idle_sec,
                        d->opts.proxy_protocol ? "true" : "false");
    for (unsigned i = 0; i < d->opts.nforward; i++)
        evbuffer_add_printf(out, "%s%u", i ? "," : "", d->opts.forward[i]);
    evbuffer_add_printf(out, "],\"listeners\":");
    sstd_reg_json(d, out);
    evbuffer_add_printf(out,
                        ",\"host\":{\"channels\":%u,\"rx_packets\":%llu,\"tx_packets\":%llu,"
                        "\"rx_bytes\":%llu,\"tx_bytes\":%llu,\"handshakes_initiated\":%llu,"
                        "\"handshakes_completed\":%llu,\"handshakes_resumed\":%llu,\"handshakes_failed\":%llu,"
                        "\"rx_dropped_auth\":%llu,\"rx_dropped_malformed\":%llu},\"channels\":[",
                        hs.channels, (unsigned long long)hs.rx_packets, (unsigned long long)hs.tx_packets,
                        (unsigned long long)hs.rx_bytes, (unsigned long long)hs.tx_bytes,
                        (unsigned long long)hs.handshakes_initiated, (unsigned long long)hs.handshakes_completed,
                        (unsigned long long)hs.handshakes_resumed, (unsigned long long)hs.handshakes_failed, (unsigned long long)hs.rx_dropped_auth,
                        (unsigned long long)hs.rx_dropped_malformed);
    sstd_peers_foreach(d, chan_json, &w);
    struct sst_ctx_stats cs;
    sst_ctx_get_stats(sstd_ctx(d), &cs);
    evbuffer_add_printf(out,
                        "],\"stream_totals\":{\"opened\":%llu,\"accepted\":%llu,\"live\":%llu,"
                        "\"resets_sent\":%llu,\"resets_received\":%llu,\"refused\":%llu",
                        (unsigned long long)cs.streams_opened, (unsigned long long)cs.streams_accepted,
                        (unsigned long long)cs.streams_live, (unsigned long long)cs.resets_sent,
                        (unsigned long long)cs.resets_received, (unsigned long long)cs.refused);
    evbuffer_add_printf(out, "}");
    evbuffer_add_printf(out, ",\"streams\":[");
    for (struct sstd_pump *p = d->pumps; p; p = p->next) {
        evbuffer_add_printf(out, "%s{\"kind\":\"%s\",\"owner_pid\":%d,\"stream\":", p == d->pumps ? "" : ",",
                            p->kind == SSTD_PUMP_HANDOFF ? "handoff" : "gateway", (int)p->owner_pid);
        sstd_json_str(out, p->dest);
        struct sst_stream_stats ss = { 0 };
        if (p->s)
            sst_stream_get_stats(p->s, &ss);
        evbuffer_add_printf(out, ",\"tx_inflight\":%llu,\"tx_credit\":%llu,\"rx_buffered\":%llu,"
                            "\"buffered_to_fd\":%zu,\"buffered_to_stream\":%zu",
                            (unsigned long long)ss.tx_inflight, (unsigned long long)ss.tx_credit,
                            (unsigned long long)ss.rx_buffered, p->to_fd_len, p->to_st_len);
        evbuffer_add_printf(out, ",\"bytes_up\":%llu,\"bytes_down\":%llu,\"state\":\"%s\",\"age_s\":%.3f}",
                            (unsigned long long)p->bytes_up, (unsigned long long)p->bytes_down,
                            !p->connected ? "connecting" : p->fd_eof && p->st_eof ? "closing"
                            : p->fd_eof || p->st_eof ? "half-closed" : "open",
                            (double)(w.now - p->started) / 1e9);
    }
    evbuffer_add_printf(out, "],\"caps\":[");
    w.first = true;
    sstd_caps_foreach(d->caps, w.now, cap_json, &w);
    evbuffer_add_printf(out, "]}");
}
