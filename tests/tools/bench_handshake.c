/* bench_handshake: CPU time per side of one SST negotiation (paper §4.4; Noise XX over X25519,
 * ChaCha20-Poly1305, SHA-256), measured in one process over the sans-I/O negotiation API.
 *
 *   bench_handshake [--count N] [--security strong|light] [--json]
 *
 * Each round: a new initiator writes HELLO; the responder handles it and writes RESPONSE; the
 * initiator handles that and writes FINISH; the responder completes.  Every round comes from a
 * different peer address, as on a busy server.  The time of each side's calls is summed on the
 * thread's CPU clock, so the other side's work is never counted; both sides must derive
 * matching keys in every round, or the tool fails. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "negotiate.h"
#include "protect.h"

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int alloc_id(void *ctx, const struct sst_addr *peer)
{
    (void)ctx;
    (void)peer;
    return 1; /* one channel per peer address: ID 1 is always free */
}

static int accept_any(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    (void)ctx;
    (void)peer;
    (void)pk;
    (void)we_initiated;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    unsigned long count = 2000;
    enum sst_security sec = SST_SEC_STRONG;
    bool json = false;
    static const struct option lo[] = {
        { "count", required_argument, NULL, 'n' },
        { "security", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'n') {
            count = strtoul(optarg, NULL, 0);
        } else if (ch == 's') {
            if (sst_security_parse(optarg, &sec) != 0) {
                fprintf(stderr, "bench_handshake: --security strong|light\n");
                return 2;
            }
        } else if (ch == 'j') {
            json = true;
        } else {
            fprintf(stderr, "usage: bench_handshake [--count N] [--security strong|light] [--json]\n");
            return 2;
        }
    }
    if (count == 0)
        return 2;

    struct sst_nego_host_ops ops = { .alloc_chan_id = alloc_id, .verify_peer = accept_any };
    struct sst_nego_config rc = { .security = sec, .aes_available = false, .cookie_threshold = 1u << 30,
                                  .max_half_open = 1u << 20, .half_open_timeout = 1000000000ull };
    struct sst_nego_config ic = rc;
    sst_identity_generate(&rc.identity, NULL, NULL);
    sst_identity_generate(&ic.identity, NULL, NULL);
    struct sst_nego_host *resp = sst_nego_host_new(&rc, &ops);
    struct sst_nego_host *init = sst_nego_host_new(&ic, &ops);
    if (!resp || !init) {
        fprintf(stderr, "bench_handshake: cannot create negotiation hosts\n");
        return 1;
    }
    struct sst_addr server;
    sst_addr_parse(&server, "10.77.0.2:5201", 0);
    uint64_t *ti = calloc(count, sizeof *ti), *tr = calloc(count, sizeof *tr);
    uint8_t hello[SST_NEGO_MAX_REPLY], reply[SST_NEGO_MAX_REPLY], finish[SST_NEGO_MAX_REPLY];
    unsigned long failures = 0;
    uint64_t wall0 = 0;
    struct timespec w;
    clock_gettime(CLOCK_MONOTONIC, &w);
    wall0 = (uint64_t)w.tv_sec * 1000000000ull + (uint64_t)w.tv_nsec;

    for (unsigned long i = 0; i < count; i++) {
        /* A distinct client address per round: 10.x.y.z:port. */
        struct sst_addr client = { .family = SST_AF_INET4, .port = (uint16_t)(1024 + i % 60000) };
        client.ip[0] = 10;
        client.ip[1] = (uint8_t)(1 + (i / 60000) % 200);
        client.ip[2] = (uint8_t)(i >> 8);
        client.ip[3] = (uint8_t)i;
        sst_time_t now = (sst_time_t)i * 1000000ull; /* 1 ms apart: old state expires */
        struct sst_nego_result ri, rr;
        size_t hlen, rlen = 0, flen = 0, consumed = 0;

        uint64_t t = cpu_ns();
        struct sst_nego_initiator *in = sst_nego_initiator_new(init, &server, sec);
        hlen = in ? sst_nego_initiator_hello(in, hello, sizeof hello) : 0;
        ti[i] += cpu_ns() - t;

        t = cpu_ns();
        int r1 = sst_nego_responder_recv(resp, now, &client, hello, hlen, reply, &rlen, &rr, &consumed);
        tr[i] += cpu_ns() - t;

        t = cpu_ns();
        int r2 = in ? sst_nego_initiator_recv(in, reply, rlen, finish, &flen, &ri) : -1;
        ti[i] += cpu_ns() - t;

        t = cpu_ns();
        int r3 = sst_nego_responder_recv(resp, now, &client, finish, flen, reply, &rlen, &rr, &consumed);
        sst_nego_host_expire(resp, now);
        tr[i] += cpu_ns() - t;

        if (r1 != 0 || r2 != 1 || r3 != 1 || memcmp(ri.tx_key, rr.rx_key, 32) != 0 ||
            memcmp(ri.rx_key, rr.tx_key, 32) != 0)
            failures++;
        sst_nego_initiator_free(in);
    }
    clock_gettime(CLOCK_MONOTONIC, &w);
    double wall = (double)((uint64_t)w.tv_sec * 1000000000ull + (uint64_t)w.tv_nsec - wall0) / 1e9;
    uint64_t si = 0, sr = 0;
    for (unsigned long i = 0; i < count; i++) {
        si += ti[i];
        sr += tr[i];
    }
    qsort(ti, count, sizeof *ti, cmp_u64);
    qsort(tr, count, sizeof *tr, cmp_u64);
    double mi = (double)si / (double)count / 1e3, mr = (double)sr / (double)count / 1e3;
    if (json)
        printf("{\"tool\":\"bench_handshake\",\"security\":\"%s\",\"count\":%lu,\"failures\":%lu,"
               "\"ok\":%s,\"initiator_cpu_us\":{\"mean\":%.2f,\"p50\":%.2f,\"p99\":%.2f},"
               "\"responder_cpu_us\":{\"mean\":%.2f,\"p50\":%.2f,\"p99\":%.2f},"
               "\"handshakes_per_s\":%.1f}\n",
               sst_security_name(sec), count, failures, failures ? "false" : "true", mi,
               (double)ti[count / 2] / 1e3, (double)ti[(count * 99 + 99) / 100 - 1] / 1e3, mr,
               (double)tr[count / 2] / 1e3, (double)tr[(count * 99 + 99) / 100 - 1] / 1e3,
               (double)count / wall);
    else
        printf("bench_handshake: %lu handshakes (%s), %lu failed: initiator %.1f us, responder %.1f us CPU "
               "each (mean)\n", count, sst_security_name(sec), failures, mi, mr);
    free(ti);
    free(tr);
    sst_nego_host_free(resp);
    sst_nego_host_free(init);
    return failures ? 1 : 0;
}
