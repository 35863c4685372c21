/* Fuzz target: what the shim reads of sstd's writing -- the capability file next to sstd's
 * socket (sst_helper_caps_lookup, read by shim_helper_connect_now inside the app's connect())
 * and the INFO answer behind getsockopt(TCP_INFO) (shim_tcpinfo_parse, then shim_tcpinfo_fill
 * into the app's struct tcp_info).  Any process of the
 * user can write that file and a dying or foreign sstd can answer anything: neither may crash
 * or hang the app.  Each input is a script of records (fuzz.h):
 *   op % 3 == 0: the capability file's bytes, as capsfile_load hands them over (at most
 *                16 383 bytes, NUL-terminated; a NUL inside ends the text there);
 *   op % 3 == 1: a lookup: the record is the key (and, as SST_HELPER would give it, a socket
 *                path for sst_helper_caps_path); the keys the shim itself builds for a
 *                connection to 10.0.0.2:5201 and [::1]:80 are looked up after each file too;
 *   op % 3 == 2: an INFO answer line (at most REPLY_MAX - 1 = 1023 bytes, as helper_ask reads).
 * Checked: a listed key's expiry lies after "now"; an answer the parser takes says "ok":true and
 * its state is one of the TCP states it can give; the struct filled from it is no longer than
 * the app asked for and carries that state; a capability path ends in ".caps". */
#include <stdlib.h>
#include <string.h>

#include "../../shim/tcpinfo.h"
#include "fuzz.h"
#include "io/helper_path.h"

#define SHIMREAD_CAPS_MAX 16384   /* shim_helper_connect_now's buffer */
#define SHIMREAD_REPLY_MAX 1024   /* helper_client.c's REPLY_MAX */
#define SHIMREAD_NOW UINT64_C(1000000000000)   /* CLOCK_MONOTONIC ns: 1000 s after boot */

/* What the seeds reach, over all runs (test_shim_fuzz checks the seeds reach it). */
static unsigned long shimread_listed, shimread_info_ok, shimread_info_chan;

static void shimread_lookup(const char *text, const char *key)
{
    uint64_t expires = 0;
    if (sst_helper_caps_lookup(text, key, SHIMREAD_NOW, &expires)) {
        if (expires <= SHIMREAD_NOW)
            abort();
        shimread_listed++;
    }
}

static void shimread_caps_keys(const char *text)
{
    /* As shim_helper_connect_now builds them: the host, the host's port, the TCP-only port. */
    static const char *const keys[] = { "10.0.0.2:8661", "10.0.0.2:8661/5201", "!10.0.0.2:8661/5201",
                                        "[::1]:8661", "[::1]:8661/80", "!" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        shimread_lookup(text, keys[i]);
}

static void shimread_info(const char *json)
{
    struct shim_tcpinfo_src src;
    if (!shim_tcpinfo_parse(json, &src))
        return;
    if (!strstr(json, "\"ok\":true"))
        abort();
    if (src.state != SHIM_TCPS_ESTABLISHED && src.state != SHIM_TCPS_FIN_WAIT2 &&
        src.state != SHIM_TCPS_CLOSE_WAIT && src.state != SHIM_TCPS_CLOSE)
        abort();
    shimread_info_ok++;
    shimread_info_chan += src.have_chan && src.have_stream;
    /* The app's getsockopt: a whole struct tcp_info (the kernel's is under 256 bytes), then one
     * cut short as an old program's smaller struct would ask. */
    static uint8_t ti[512];
    socklen_t len = sizeof ti;
    if (shim_tcpinfo_fill(&src, ti, &len) != 0 || len == 0 || len > sizeof ti || ti[0] != src.state)
        abort();
    len = 7;
    if (shim_tcpinfo_fill(&src, ti, &len) != 0 || len != 7)
        abort();
}

int fuzz_shimread_one(const uint8_t *in, size_t size)
{
    static char text[SHIMREAD_CAPS_MAX], buf[SHIMREAD_CAPS_MAX], path[4096];
    size_t pos = 0;
    struct fuzz_rec r;
    text[0] = '\0';
    while (fuzz_next(in, size, &pos, &r)) {
        size_t n;
        switch (r.op % 3) {
        case 0:
            n = r.len < sizeof text - 1 ? r.len : sizeof text - 1;
            memcpy(text, r.data, n);
            text[n] = '\0';
            shimread_caps_keys(text);
            break;
        case 1:
            n = r.len < sizeof buf - 1 ? r.len : sizeof buf - 1;
            memcpy(buf, r.data, n);
            buf[n] = '\0';
            shimread_lookup(text, buf);
            if (sst_helper_caps_path(path, sizeof path, buf) == 0 &&
                (strlen(path) < 5 || strcmp(path + strlen(path) - 5, ".caps") != 0))
                abort();
            break;
        default:
            n = r.len < SHIMREAD_REPLY_MAX - 1 ? r.len : SHIMREAD_REPLY_MAX - 1;
            memcpy(buf, r.data, n);
            buf[n] = '\0';
            shimread_info(buf);
            break;
        }
    }
    return 0;
}

/* ---- seeds: files and answers as sstd writes them (helper/capsfile.c, docs/helper.md) ---- */

void fuzz_shimread_seeds(fuzz_emit_fn emit, void *arg)
{
    static const char caps[] =
        "sstd-caps 1\n10.0.0.2:8661 1300000000000\n10.0.0.2:8661/5201 1300000000000\n"
        "[::1]:8661 1300000000000\n!10.0.0.3:8661/80 1200000000000\n";
    static const char stale[] = "sstd-caps 1\n10.0.0.2:8661 999\n[::1]:8661/80 1300000000000";
    static const char info[] =
        "{\"ok\":true,\"app_done\":false,\"peer_done\":false,\"bytes_written\":1000,\"bytes_read\":20,"
        "\"rx_buffered\":0,\"bytes_sent\":1000,\"bytes_acked\":900,\"bytes_retransmitted\":0,"
        "\"tx_credit\":65536,\"cwnd\":14600,\"ssthresh\":18446744073709551615,\"bytes_in_flight\":100,"
        "\"lost_packets\":0,\"tx_packets\":3,\"rx_packets\":2,\"pacing_rate\":1000000,\"plpmtu\":1400,"
        "\"max_payload\":1300,\"v6\":false,\"srtt_ns\":20000000,\"rttvar_ns\":5000000,"
        "\"min_rtt_ns\":19000000}";
    static const char dormant[] = "{\"ok\":true,\"app_done\":true,\"peer_done\":false,\"bytes_written\":5}";
    static const char refused[] = "{\"ok\":false,\"error\":\"unknown-stream\",\"message\":\"no hand-off of that socket\"}";
    static const char key[] = "10.0.0.3:8661/80", sock[] = "/tmp/sst-1000/sstd.sock";
    static uint8_t buf[2048];
    size_t len = 0;
    fuzz_put(buf, sizeof buf, &len, 0, caps, sizeof caps - 1);
    fuzz_put(buf, sizeof buf, &len, 1, key, sizeof key - 1);
    fuzz_put(buf, sizeof buf, &len, 1, sock, sizeof sock - 1);
    fuzz_put(buf, sizeof buf, &len, 2, info, sizeof info - 1);
    emit(arg, buf, len);
    len = 0;
    fuzz_put(buf, sizeof buf, &len, 0, stale, sizeof stale - 1);
    fuzz_put(buf, sizeof buf, &len, 2, dormant, sizeof dormant - 1);
    fuzz_put(buf, sizeof buf, &len, 2, refused, sizeof refused - 1);
    emit(arg, buf, len);
    /* Found by this target: a payload size of 2^32 became a zero divisor (SIGFPE in the app's
     * getsockopt); a huge window over a tiny RTT a pacing rate beyond uint64_t (undefined
     * conversion); "-46" was read as 2^64 - 46 (shim/tcpinfo_map.c). */
    static const char *const hostile[] = {
        "{\"ok\":true,\"cwnd\":14600,\"max_payload\":4294967296}",
        "{\"ok\":true,\"cwnd\":18446744073709551615,\"srtt_ns\":1,\"min_rtt_ns\":1}",
        "{\"ok\":true,\"cwnd\":-46,\"srtt_ns\":20000040,\"min_rtt_ns\":19000000}",
    };
    len = 0;
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
        fuzz_put(buf, sizeof buf, &len, 2, hostile[i], strlen(hostile[i]));
    emit(arg, buf, len);
}
