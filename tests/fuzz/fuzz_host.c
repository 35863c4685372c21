/* Fuzz target: datagrams from anyone into a listening host -- the surface an attacker reaches
 * without keys (negotiation: Init, cookies, responses, stateless resets, and channel packets
 * for channels that do not exist).  One context with a listener, as sstd --forward runs it;
 * each input is a script of records (fuzz.h):
 *   op % 4 == 0..2: a datagram with the record's bytes from one of four addresses (op / 4 % 4);
 *   op % 4 == 3:    time passes (1 + first byte) ms, and due timers run.
 * Checked beyond "no crash, no sanitizer report": nothing without the keys completes a
 * handshake or creates a channel. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "host.h"
#include "protect.h"
#include "simctx.h"
#include "sst.h"

#define FUZZ_HOST_MAX_DGRAM 1600
/* Datagrams the target's host sent in answer, over all runs (test_fuzz checks the seeds draw
 * answers: they reach the negotiation, not just the first length check). */
static unsigned long host_answered;

static void host_accept(struct sst_listener *l, void *arg)
{
    (void)arg;
    struct sst_stream *s;
    while ((s = sst_accept(l, NULL, NULL)) != NULL)
        sst_stream_close(s);
}

static struct sim *host_sim_new(void)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = 1;
    return sim_new(&sc);
}

int fuzz_host_one(const uint8_t *in, size_t size)
{
    struct sim *sim = host_sim_new();
    if (sim == NULL)
        abort();
    static struct simctx_node b;
    struct sst_addr baddr = sim_addr4(2, 4000);
    simctx_node_init(&b, sim, &baddr, "fuzz-host-b", 2, NULL);
    if (sst_listen(b.c, "fz", host_accept, NULL) == NULL)
        abort();
    struct sst_addr from[4];
    for (int i = 0; i < 4; i++)
        from[i] = sim_addr4((uint8_t)(10 + i), (uint16_t)(4000 + i));
    static uint8_t pkt[FUZZ_HOST_MAX_DGRAM + SST_PROTECT_TAILROOM];
    size_t pos = 0;
    struct fuzz_rec r;
    while (fuzz_next(in, size, &pos, &r)) {
        if (r.op % 4 == 3) {
            sim_run_until(sim, sim_now(sim) + SST_MS(1 + (r.len > 0 ? r.data[0] : 0)));
            continue;
        }
        size_t len = r.len < FUZZ_HOST_MAX_DGRAM ? r.len : FUZZ_HOST_MAX_DGRAM;
        memcpy(pkt, r.data, len);      /* decryption works in place */
        sst_ctx_recv(b.c, sim_now(sim), &from[r.op / 4 % 4], pkt, len);
        simctx_node_leave(&b);
    }
    sim_run_until(sim, sim_now(sim) + SST_SEC(1));
    struct sst_host_stats hs;
    sst_host_get_stats(sst_ctx_host(b.c), &hs);
    host_answered += hs.tx_packets;
    /* Completing a handshake takes the peer's keys: a script of bytes cannot. */
    if (hs.channels != 0 || hs.handshakes_completed != 0)
        abort();
    simctx_node_free(&b);
    sim_free(sim);
    return 0;
}

/* ---- seeds: the datagrams of real handshakes (full and resumed) and a short exchange ---- */

struct host_capture {
    fuzz_emit_fn emit;
    void *arg;
    uint8_t script[8192];
    size_t len;
};

static bool host_capture_tx(void *arg, const uint8_t *pkt, size_t len)
{
    struct host_capture *cap = arg;
    fuzz_put(cap->script, sizeof cap->script, &cap->len, 0, pkt, len);
    return false;                      /* record, never drop */
}

static void host_seed_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    (void)s;
    if (ev & (SST_EV_CONNECTED | SST_EV_ERROR))
        *(bool *)arg = true;
}

static bool host_not_connected(void *arg) { return !*(bool *)arg; }

void fuzz_host_seeds(fuzz_emit_fn emit, void *arg)
{
    struct sim *sim = host_sim_new();
    static struct simctx_node a, b;
    struct sst_addr aaddr = sim_addr4(10, 4000), baddr = sim_addr4(2, 4000);
    /* Another key than the target's: replaying these cannot complete a handshake there. */
    simctx_node_init(&a, sim, &aaddr, "fuzz-seed-a", 1, NULL);
    simctx_node_init(&b, sim, &baddr, "fuzz-seed-b", 2, NULL);
    struct sim_link_params lp = { .delay = SST_MS(5) };
    sim_path(sim, &aaddr, &baddr, &lp, NULL, NULL, NULL);
    sst_listen(b.c, "fz", host_accept, NULL);
    static struct host_capture cap;
    memset(&cap, 0, sizeof cap);
    cap.emit = emit;
    cap.arg = arg;
    a.drop = host_capture_tx;
    a.drop_arg = &cap;
    for (int round = 0; round < 2; round++) {   /* a full handshake, then a resumed one */
        simctx_node_enter(&a);
        static bool connected;
        connected = false;
        struct sst_stream *s = sst_connect(a.c, &baddr, "fz", host_seed_cb, &connected);
        sst_stream_write(s, "hello", 5);
        simctx_node_leave(&a);
        sim_run_while(sim, host_not_connected, &connected, sim_now(sim) + SST_SEC(5));
        simctx_node_enter(&a);
        sst_stream_close(s);
        simctx_node_leave(&a);
        sim_run_until(sim, sim_now(sim) + SST_MS(200));
        emit(arg, cap.script, cap.len);
        /* The channel goes: the next connect resumes with the ticket this one left. */
        sim_run_until(sim, sim_now(sim) + SST_SEC(70));
        cap.len = 0;
    }
    simctx_node_free(&a);
    simctx_node_free(&b);
    sim_free(sim);
}
