/* bench_handshake: CPU time per side of one SST negotiation (paper §4.4), measured in one
 * process over the sans-I/O negotiation API, for both kinds of handshake:
 *
 *   full XX   first contact: Noise XX (X25519, ChaCha20-Poly1305, SHA-256)
 *   resumed   a later channel between the same two hosts: NNpsk0 with the ticket the previous
 *             handshake left (docs/protocol-negotiation.md, "Session resumption")
 *
 *   bench_handshake [--count N] [--security strong|light] [--only full|resumed] [--json]
 *
 * Each round runs one handshake of each kind (alternating, so both see the same machine): a new
 * initiator writes HELLO; the responder handles it and writes RESPONSE; the initiator handles
 * that and writes FINISH; the responder completes.  Full rounds come from a different client
 * address to a different server address each time, so no ticket applies (but each side still
 * issues/keeps one, as the defaults do); resumed rounds go to one server address, each using
 * the ticket the round before left.  The time of each side's calls is summed on the thread's CPU
 * clock, so the other side's work is never counted; both sides must derive matching keys and
 * agree on the kind in every round, or the tool fails.  --only runs one kind (for profilers:
 * callgrind then counts instructions of that kind alone; the other's numbers read 0).  It also times libsodium's X25519 alone
 * (base-point multiplication and DH), which dominates both. */
#include <getopt.h>
#include <sodium.h>
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

/* Mean, median and p99 of n samples in ns (sorts them), printed in µs as a JSON object. */
static void json_stats(const char *name, uint64_t *v, unsigned long n, double *mean_us)
{
    uint64_t sum = 0;
    for (unsigned long i = 0; i < n; i++)
        sum += v[i];
    qsort(v, n, sizeof *v, cmp_u64);
    *mean_us = (double)sum / (double)n / 1e3;
    printf("\"%s\":{\"mean\":%.2f,\"p50\":%.2f,\"p99\":%.2f}", name, *mean_us, (double)v[n / 2] / 1e3,
           (double)v[(n * 99 + 99) / 100 - 1] / 1e3);
}

/* libsodium's X25519 alone, per operation (µs of CPU). */
static void time_x25519(double *base_us, double *dh_us)
{
    enum { N = 300 };
    uint8_t sk[32], pk[32], peer[32], out[32];
    randombytes_buf(sk, sizeof sk);
    randombytes_buf(out, sizeof out);
    if (crypto_scalarmult_base(peer, out) != 0)
        abort();
    uint64_t t = cpu_ns();
    for (int i = 0; i < N; i++) {
        sk[i % 32] ^= (uint8_t)i;
        if (crypto_scalarmult_base(pk, sk) != 0)
            abort();
    }
    *base_us = (double)(cpu_ns() - t) / N / 1e3;
    t = cpu_ns();
    for (int i = 0; i < N; i++) {
        sk[i % 32] ^= (uint8_t)i;
        if (crypto_scalarmult(out, sk, peer) != 0)
            abort();
    }
    *dh_us = (double)(cpu_ns() - t) / N / 1e3;
}

struct round {
    struct sst_nego_host *init, *resp;
    struct sst_addr client, server;
    sst_time_t now;
    bool want_resumed;
};

/* One handshake; adds each side's CPU time.  false if it failed or was not of the wanted kind. */
static bool run_round(const struct round *r, enum sst_security sec, uint64_t *ti, uint64_t *tr)
{
    uint8_t hello[SST_NEGO_MAX_REPLY], reply[SST_NEGO_MAX_REPLY], finish[SST_NEGO_MAX_REPLY];
    struct sst_nego_result ri, rr;
    size_t hlen, rlen = 0, flen = 0, consumed = 0;

    uint64_t t = cpu_ns();
    struct sst_nego_initiator *in = sst_nego_initiator_new(r->init, r->now, &r->server, sec);
    hlen = in ? sst_nego_initiator_hello(in, hello, sizeof hello) : 0;
    *ti += cpu_ns() - t;

    t = cpu_ns();
    int r1 = sst_nego_responder_recv(r->resp, r->now, &r->client, hello, hlen, reply, &rlen, &rr, &consumed);
    *tr += cpu_ns() - t;

    t = cpu_ns();
    int r2 = in ? sst_nego_initiator_recv(in, r->now, reply, rlen, finish, &flen, &ri) : -1;
    *ti += cpu_ns() - t;

    t = cpu_ns();
    int r3 = sst_nego_responder_recv(r->resp, r->now, &r->client, finish, flen, reply, &rlen, &rr, &consumed);
    sst_nego_host_expire(r->resp, r->now);
    *tr += cpu_ns() - t;

    t = cpu_ns();
    sst_nego_initiator_free(in);
    *ti += cpu_ns() - t;
    return r1 == 0 && r2 == 1 && r3 == 1 && memcmp(ri.tx_key, rr.rx_key, 32) == 0 &&
           memcmp(ri.rx_key, rr.tx_key, 32) == 0 && ri.resumed == r->want_resumed && rr.resumed == r->want_resumed;
}

static struct sst_addr addr4(uint8_t a, unsigned long i, uint16_t port)
{
    struct sst_addr x = { .family = SST_AF_INET4, .port = port };
    x.ip[0] = a;
    x.ip[1] = (uint8_t)(1 + (i / 65536) % 200);
    x.ip[2] = (uint8_t)(i >> 8);
    x.ip[3] = (uint8_t)i;
    return x;
}

int main(int argc, char **argv)
{
    unsigned long count = 2000;
    enum sst_security sec = SST_SEC_STRONG;
    bool json = false, do_full = true, do_resumed = true;
    static const struct option lo[] = {
        { "count", required_argument, NULL, 'n' },
        { "security", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "only", required_argument, NULL, 'o' },
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
        } else if (ch == 'o' && (strcmp(optarg, "full") == 0 || strcmp(optarg, "resumed") == 0)) {
            do_full = strcmp(optarg, "full") == 0;
            do_resumed = !do_full;
        } else {
            fprintf(stderr, "usage: bench_handshake [--count N] [--security strong|light] "
                            "[--only full|resumed] [--json]\n");
            return 2;
        }
    }
    if (count == 0)
        return 2;
    if (sodium_init() < 0)
        return 1;

    /* Both hosts as sst_host_config_default sets them up: resumption on, 1024 tickets, 1 h. */
    struct sst_nego_host_ops ops = { .alloc_chan_id = alloc_id, .verify_peer = accept_any };
    struct sst_nego_config rc = { .security = sec, .aes_available = false, .cookie_threshold = 1u << 30,
                                  .max_half_open = 1u << 20, .half_open_timeout = 1000000000ull,
                                  .max_tickets = 1024, .ticket_lifetime = 3600000000000ull };
    struct sst_nego_config ic = rc;
    sst_identity_generate(&rc.identity, NULL, NULL);
    sst_identity_generate(&ic.identity, NULL, NULL);
    struct sst_nego_host *resp = sst_nego_host_new(&rc, &ops);
    struct sst_nego_host *init = sst_nego_host_new(&ic, &ops);
    if (!resp || !init) {
        fprintf(stderr, "bench_handshake: cannot create negotiation hosts\n");
        return 1;
    }
    double x_base, x_dh;
    time_x25519(&x_base, &x_dh);
    uint64_t *ti = calloc(count, sizeof *ti), *tr = calloc(count, sizeof *tr);
    uint64_t *rti = calloc(count, sizeof *rti), *rtr = calloc(count, sizeof *rtr);
    if (!ti || !tr || !rti || !rtr)
        return 1;
    unsigned long failures = 0, rfailures = 0;
    struct timespec w;
    clock_gettime(CLOCK_MONOTONIC, &w);
    uint64_t wall0 = (uint64_t)w.tv_sec * 1000000000ull + (uint64_t)w.tv_nsec;

    /* The resumed chain starts with one full handshake (not counted). */
    struct round warm = { .init = init, .resp = resp, .client = addr4(10, 0, 40000),
                          .server = addr4(10, 0, 5201), .now = 0, .want_resumed = false };
    uint64_t dummy_i = 0, dummy_r = 0;
    if (do_resumed && !run_round(&warm, sec, &dummy_i, &dummy_r))
        rfailures++;
    for (unsigned long i = 0; i < count; i++) {
        sst_time_t now = (sst_time_t)(i + 1) * 1000000ull; /* 1 ms apart: old state expires */
        struct round full = { .init = init, .resp = resp, .client = addr4(10, i, 1024),
                              .server = addr4(172, i, 5201), .now = now, .want_resumed = false };
        if (do_full && !run_round(&full, sec, &ti[i], &tr[i]))
            failures++;
        struct round res = warm;
        res.now = now;
        res.want_resumed = true;
        if (do_resumed && !run_round(&res, sec, &rti[i], &rtr[i]))
            rfailures++;
    }
    clock_gettime(CLOCK_MONOTONIC, &w);
    double wall = (double)((uint64_t)w.tv_sec * 1000000000ull + (uint64_t)w.tv_nsec - wall0) / 1e9;
    double mi, mr, rmi, rmr;
    bool ok = failures == 0 && rfailures == 0;
    if (json) {
        printf("{\"tool\":\"bench_handshake\",\"security\":\"%s\",\"count\":%lu,\"failures\":%lu,"
               "\"resumed_failures\":%lu,\"ok\":%s,", sst_security_name(sec), count, failures, rfailures,
               ok ? "true" : "false");
        json_stats("initiator_cpu_us", ti, count, &mi);
        printf(",");
        json_stats("responder_cpu_us", tr, count, &mr);
        printf(",\"resumed\":{");
        json_stats("initiator_cpu_us", rti, count, &rmi);
        printf(",");
        json_stats("responder_cpu_us", rtr, count, &rmr);
        printf("},\"x25519_us\":{\"base\":%.2f,\"dh\":%.2f},\"handshakes_per_s\":%.1f}\n", x_base, x_dh,
               (double)(2 * count) / wall);
    } else {
        uint64_t s1 = 0, s2 = 0, s3 = 0, s4 = 0;
        for (unsigned long i = 0; i < count; i++)
            s1 += ti[i], s2 += tr[i], s3 += rti[i], s4 += rtr[i];
        printf("bench_handshake: %lu handshakes of each kind (%s), %lu + %lu failed\n"
               "  full XX:  initiator %.1f us, responder %.1f us CPU each (mean)\n"
               "  resumed:  initiator %.1f us, responder %.1f us CPU each (mean)\n"
               "  X25519 alone: base-point %.1f us, DH %.1f us\n",
               count, sst_security_name(sec), failures, rfailures, (double)s1 / count / 1e3,
               (double)s2 / count / 1e3, (double)s3 / count / 1e3, (double)s4 / count / 1e3, x_base, x_dh);
    }
    free(ti);
    free(tr);
    free(rti);
    free(rtr);
    sst_nego_host_free(resp);
    sst_nego_host_free(init);
    return ok ? 0 : 1;
}
