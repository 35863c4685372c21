/* An sst_ctx bound to a simulator node (see simctx.h). */
#include "simctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not Check's ck_assert: the fuzz targets (tests/fuzz) run these nodes outside any Check test.
 * Inside one, the abort fails the test (Check reports the signal). */
static void simctx_require(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "simctx: %s failed\n", what);
        abort();
    }
}

static void node_send(void *ctx, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    struct simctx_node *n = ctx;
    if (n->drop != NULL && n->drop(n->drop_arg, pkt, len))
        return;
    (void)sim_send(n->sim, &n->addr, to, pkt, len);
}

static uint8_t *node_tx_slot(void *ctx, size_t len)
{
    struct simctx_node *n = ctx;
    return len <= sizeof n->slot ? n->slot : NULL;
}

static void node_random(void *ctx, void *buf, size_t len)
{
    struct simctx_node *n = ctx;
    sim_rng_bytes(&n->rng, buf, len);
}

static sst_time_t quantize_down(const struct simctx_node *n, sst_time_t t)
{
    return n->quantum ? t - t % n->quantum : t;
}

struct simctx_frozen_pkt {
    struct simctx_frozen_pkt *next;
    struct sst_addr from;
    size_t len;
    uint8_t data[];
};

static void node_recv(void *ctx, sst_time_t now, const struct sst_addr *from, uint8_t *pkt, size_t len)
{
    struct simctx_node *n = ctx;
    if (n->frozen) {
        if (n->frozen_bytes + len > n->frozen_cap) {
            n->frozen_drops++;
            return;
        }
        /* Tailroom as sim gives it: the engine opens packets in place. */
        struct simctx_frozen_pkt *q = malloc(sizeof *q + len + 64);
        simctx_require(q != NULL, "malloc");
        q->next = NULL;
        q->from = *from;
        q->len = len;
        memcpy(q->data, pkt, len);
        if (n->fq_tail != NULL)
            n->fq_tail->next = q;
        else
            n->fq_head = q;
        n->fq_tail = q;
        n->frozen_bytes += len;
        return;
    }
    sst_ctx_recv(n->c, quantize_down(n, now), from, pkt, len);
}

static sst_time_t node_deadline(void *ctx)
{
    struct simctx_node *n = ctx;
    if (n->frozen)
        return SST_TIME_NEVER;
    sst_time_t d = sst_ctx_deadline(n->c);
    if (n->quantum == 0 || d == SST_TIME_NEVER || d % n->quantum == 0)
        return d;
    return quantize_down(n, d) + n->quantum;
}

static void node_timeout(void *ctx, sst_time_t now)
{
    struct simctx_node *n = ctx;
    sst_ctx_timeout(n->c, now);
}

static const struct sim_node_ops node_ops = {
    .recv = node_recv, .deadline = node_deadline, .timeout = node_timeout
};

void simctx_node_init(struct simctx_node *n, struct sim *s, const struct sst_addr *addr,
                      const char *rng_label, uint64_t rng_id, const struct sst_ctx_config *cfg_in)
{
    memset(n, 0, sizeof *n);
    n->sim = s;
    n->addr = *addr;
    sim_rng_init(&n->rng, sim_seed(s), rng_label, rng_id);
    struct sst_ctx_config cfg;
    if (cfg_in != NULL)
        cfg = *cfg_in;
    else
        sst_ctx_config_default(&cfg);
    sst_identity_generate(&cfg.host.identity, node_random, n);
    struct sst_host_io io = { .ctx = n, .send = node_send, .random = node_random, .tx_slot = node_tx_slot };
    n->c = sst_ctx_new(&cfg, &io);
    simctx_require(n->c != NULL, "sst_ctx_new");
    simctx_require(sim_node_add(s, &n->addr, &node_ops, n) == 0, "sim_node_add");
}

void simctx_node_enter(struct simctx_node *n)
{
    sst_ctx_set_time(n->c, sim_now(n->sim));
}

void simctx_node_leave(struct simctx_node *n)
{
    sim_node_wake(n->sim, &n->addr);
}

void simctx_node_rebind(struct simctx_node *n, const struct sst_addr *addr)
{
    sim_node_remove(n->sim, &n->addr);
    n->addr = *addr;
    simctx_require(sim_node_add(n->sim, &n->addr, &node_ops, n) == 0, "sim_node_add");
}

void simctx_node_freeze(struct simctx_node *n, size_t cap)
{
    n->frozen = true;
    n->frozen_cap = cap;
    sim_node_wake(n->sim, &n->addr);
}

void simctx_node_thaw(struct simctx_node *n, bool timers_first)
{
    sst_time_t now = sim_now(n->sim);
    n->frozen = false;
    if (timers_first && sst_ctx_deadline(n->c) <= now)
        sst_ctx_timeout(n->c, now);
    while (n->fq_head != NULL) {
        struct simctx_frozen_pkt *q = n->fq_head;
        n->fq_head = q->next;
        sst_ctx_recv(n->c, now, &q->from, q->data, q->len);
        free(q);
    }
    n->fq_tail = NULL;
    n->frozen_bytes = 0;
    sim_node_wake(n->sim, &n->addr);
}

void simctx_node_free(struct simctx_node *n)
{
    while (n->fq_head != NULL) {
        struct simctx_frozen_pkt *q = n->fq_head;
        n->fq_head = q->next;
        free(q);
    }
    sim_node_remove(n->sim, &n->addr);
    sst_ctx_free(n->c);
}
