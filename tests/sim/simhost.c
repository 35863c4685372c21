/* Binds an sst_host to a simulator node: io.send -> sim_send, io.random -> seeded stream,
 * node deadline/timeout -> sst_host_deadline/sst_host_timeout. */
#include <stdlib.h>
#include <string.h>

#include "simhost.h"

struct sim_host {
    struct sim *sim;
    struct sst_addr addr;
    struct sst_host *host;
    struct sst_host_io user;    /* the test's callbacks */
    struct sim_rng rng;
    uint64_t send_rejects;
};

static void io_send(void *ctx, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    struct sim_host *sh = ctx;
    if (sim_send(sh->sim, &sh->addr, to, pkt, len) != 0)
        sh->send_rejects++;
}

static void io_random(void *ctx, void *buf, size_t len)
{
    struct sim_host *sh = ctx;
    sim_rng_bytes(&sh->rng, buf, len);
}

static int io_verify_peer(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct sim_host *sh = ctx;
    if (!sh->user.verify_peer)
        return 0;
    return sh->user.verify_peer(sh->user.ctx, peer, pk, we_initiated);
}

static void io_chan_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    struct sim_host *sh = ctx;
    if (sh->user.chan_event)
        sh->user.chan_event(sh->user.ctx, ch, ev, err);
}

static void node_recv(void *ctx, sst_time_t now, const struct sst_addr *from, uint8_t *pkt, size_t len)
{
    struct sim_host *sh = ctx;
    sst_host_recv(sh->host, now, from, pkt, len);
}

static sst_time_t node_deadline(void *ctx)
{
    struct sim_host *sh = ctx;
    return sst_host_deadline(sh->host);
}

static void node_timeout(void *ctx, sst_time_t now)
{
    struct sim_host *sh = ctx;
    sst_host_timeout(sh->host, now);
}

static const struct sim_node_ops host_node_ops = {
    .recv = node_recv, .deadline = node_deadline, .timeout = node_timeout,
};

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

struct sim_host *sim_host_new(struct sim *s, const struct sst_addr *addr,
                              const struct sst_host_config *cfg, const struct sst_host_io *io)
{
    struct sim_host *sh = calloc(1, sizeof *sh);
    if (!sh)
        return NULL;
    sh->sim = s;
    sh->addr = *addr;
    if (io)
        sh->user = *io;
    /* The stream is named by the address, not by creation order, so adding a host to a test
     * does not change the keys and nonces of the others. */
    sim_rng_init(&sh->rng, sim_seed(s), "sim host", sst_addr_hash(addr, 0));

    struct sst_host_config c;
    if (cfg)
        c = *cfg;
    else
        sst_host_config_default(&c);
    if (all_zero(c.identity.sk, sizeof c.identity.sk))
        sst_identity_generate(&c.identity, io_random, sh);

    struct sst_host_io hio = {
        .ctx = sh, .send = io_send, .random = io_random,
        .verify_peer = io_verify_peer, .chan_event = io_chan_event,
    };
    sh->host = sst_host_new(&c, &hio);
    memset(&c.identity, 0, sizeof c.identity);
    if (!sh->host) {
        free(sh);
        return NULL;
    }
    if (sim_node_add(s, addr, &host_node_ops, sh) != 0) {
        sst_host_free(sh->host);
        free(sh);
        return NULL;
    }
    return sh;
}

void sim_host_free(struct sim_host *sh)
{
    if (!sh)
        return;
    sim_node_remove(sh->sim, &sh->addr);
    sst_host_free(sh->host);
    free(sh);
}

struct sst_host *sim_host_engine(struct sim_host *sh) { return sh->host; }
const struct sst_addr *sim_host_addr(const struct sim_host *sh) { return &sh->addr; }
struct sim_rng *sim_host_rng(struct sim_host *sh) { return &sh->rng; }
uint64_t sim_host_send_rejects(const struct sim_host *sh) { return sh->send_rejects; }

struct sst_chan *sim_host_connect(struct sim_host *sh, const struct sst_addr *peer)
{
    struct sst_chan *ch = sst_host_connect(sh->host, sim_now(sh->sim), peer);
    sim_node_wake(sh->sim, &sh->addr);
    return ch;
}

void sim_host_wake(struct sim_host *sh)
{
    sim_node_wake(sh->sim, &sh->addr);
}
