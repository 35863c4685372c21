/* The simulator object: virtual clock, nodes by address, routes onto links, and the event loop
 * that jumps to the earliest arrival, node deadline or scheduled callback. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sim_internal.h"
#include "wire.h"

void sim_config_default(struct sim_config *c)
{
    *c = (struct sim_config){
        .seed = 1,
        .pool_packets = 4096,
        .max_packet = 2048,
        .hash_trace = false,
    };
}

void sim_addr_key(const struct sst_addr *a, struct sim_addr_key *k)
{
    memset(k, 0, sizeof *k);
    sst_addr_encode(a, k->b);
    if (a->family == SST_AF_INET6)
        sst_put32(k->b + 19, a->scope_id);
}

struct sim *sim_new(const struct sim_config *cfg)
{
    if (sodium_init() < 0)
        return NULL;
    /* crypto_generichash_state must be 64-byte aligned. */
    size_t size = (sizeof(struct sim) + 63) & ~(size_t)63;
    struct sim *s = aligned_alloc(64, size);
    if (!s)
        return NULL;
    memset(s, 0, size);
    if (cfg)
        s->cfg = *cfg;
    else
        sim_config_default(&s->cfg);
    if (s->cfg.pool_packets == 0)
        s->cfg.pool_packets = 4096;
    if (s->cfg.max_packet == 0)
        s->cfg.max_packet = 2048;
    sim_pool_init(&s->pool, s->cfg.pool_packets, s->cfg.max_packet);
    crypto_generichash_init(&s->trace, NULL, 0, 32);
    return s;
}

void sim_free(struct sim *s)
{
    if (!s)
        return;
    struct sim_route_ent *r, *rtmp;
    HASH_ITER(hh, s->routes, r, rtmp) {
        HASH_DEL(s->routes, r);
        free(r);
    }
    HASH_CLEAR(hh, s->nodes);
    for (struct sim_node *n = s->all_nodes, *next; n; n = next) {
        next = n->all_next;
        free(n);
    }
    for (struct sim_link *l = s->links, *next; l; l = next) {
        next = l->next;
        sim_link_destroy(l);
    }
    /* sim_at calls still pending (a test stopped its run while one was armed) own their cell. */
    for (size_t i = 0; i < s->heap.n; i++) {
        if (s->heap.ev[i].kind == SIM_EV_CALL)
            free(s->heap.ev[i].p);
    }
    sim_heap_free(&s->heap);
    sim_pool_free(&s->pool);
    free(s);
}

sst_time_t sim_now(const struct sim *s) { return s->now; }
uint64_t sim_seed(const struct sim *s) { return s->cfg.seed; }

void sim_get_stats(const struct sim *s, struct sim_stats *out)
{
    *out = s->st;
    out->pool_in_use = s->pool.in_use;
    out->pool_high_water = s->pool.high_water;
    out->pool_allocated = s->pool.allocated;
}

void sim_trace_hash(const struct sim *s, uint8_t out[32])
{
    memset(out, 0, 32);
    if (!s->cfg.hash_trace)
        return;
    /* Finalizing consumes the state, so finalize a copy and keep hashing the original. */
    crypto_generichash_state copy;
    memcpy(&copy, &s->trace, sizeof copy);
    crypto_generichash_final(&copy, out, 32);
}

uint64_t sim_trace_hash64(const struct sim *s)
{
    uint8_t h[32];
    sim_trace_hash(s, h);
    return sst_get64(h);
}

struct sst_addr sim_addr4(uint8_t n, uint16_t port)
{
    struct sst_addr a = { .family = SST_AF_INET4, .port = port };
    a.ip[0] = 10;
    a.ip[3] = n;
    return a;
}

/* ---- Nodes ---- */

static struct sim_node *find_node(const struct sim *s, const struct sst_addr *addr)
{
    struct sim_addr_key k;
    sim_addr_key(addr, &k);
    struct sim_node *n = NULL;
    HASH_FIND(hh, s->nodes, &k, sizeof k, n);
    return n;
}

/* Re-reads a node's deadline and arms a heap entry if it changed.  Older entries stay in the
 * heap but carry a stale generation and are skipped when popped. */
static void rearm(struct sim *s, struct sim_node *n)
{
    if (!n->alive)
        return;
    sst_time_t d = n->ops.deadline ? n->ops.deadline(n->ctx) : SST_TIME_NEVER;
    if (d == n->armed)
        return;
    n->timer_gen++;
    n->armed = d;
    if (d == SST_TIME_NEVER)
        return;
    if (d < s->now)
        d = s->now;
    struct sim_ev ev = { .t = d, .kind = SIM_EV_TIMER, .gen = n->timer_gen, .p = n };
    if (sim_heap_push(&s->heap, ev) != 0)
        n->armed = SST_TIME_NEVER;  /* out of memory: retried at the next rearm */
}

int sim_node_add(struct sim *s, const struct sst_addr *addr, const struct sim_node_ops *ops, void *ctx)
{
    if (find_node(s, addr))
        return SST_ERR_INVAL;
    struct sim_node *n = calloc(1, sizeof *n);
    if (!n)
        return SST_ERR_NOMEM;
    sim_addr_key(addr, &n->key);
    n->addr = *addr;
    n->ops = *ops;
    n->ctx = ctx;
    n->alive = true;
    n->armed = SST_TIME_NEVER;
    HASH_ADD(hh, s->nodes, key, sizeof n->key, n);
    n->all_next = s->all_nodes;
    s->all_nodes = n;
    rearm(s, n);
    return 0;
}

void sim_node_remove(struct sim *s, const struct sst_addr *addr)
{
    struct sim_node *n = find_node(s, addr);
    if (!n)
        return;
    HASH_DEL(s->nodes, n);
    /* The struct stays allocated until sim_free: timer events may still point at it. */
    n->alive = false;
    n->timer_gen++;
}

void sim_node_wake(struct sim *s, const struct sst_addr *addr)
{
    struct sim_node *n = find_node(s, addr);
    if (n)
        rearm(s, n);
}

static void rearm_all(struct sim *s)
{
    /* all_nodes order is deterministic (reverse insertion), unlike hash iteration order. */
    for (struct sim_node *n = s->all_nodes; n; n = n->all_next)
        rearm(s, n);
}

/* ---- Routes and sending ---- */

static void route_key(const struct sst_addr *from, const struct sst_addr *to, struct sim_route_key *k)
{
    sim_addr_key(from, &k->from);
    sim_addr_key(to, &k->to);
}

int sim_route(struct sim *s, const struct sst_addr *from, const struct sst_addr *to, struct sim_link *l)
{
    struct sim_route_key k;
    route_key(from, to, &k);
    struct sim_route_ent *r = NULL;
    HASH_FIND(hh, s->routes, &k, sizeof k, r);
    if (!l) {
        if (r) {
            HASH_DEL(s->routes, r);
            free(r);
        }
        return 0;
    }
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return SST_ERR_NOMEM;
        r->key = k;
        HASH_ADD(hh, s->routes, key, sizeof r->key, r);
    }
    r->link = l;
    return 0;
}

void sim_route_default(struct sim *s, struct sim_link *l) { s->default_link = l; }

int sim_path(struct sim *s, const struct sst_addr *a, const struct sst_addr *b,
             const struct sim_link_params *ab, const struct sim_link_params *ba,
             struct sim_link **out_ab, struct sim_link **out_ba)
{
    struct sim_link *lab = sim_link_new(s, ab);
    struct sim_link *lba = sim_link_new(s, ba ? ba : ab);
    if (!lab || !lba)
        return SST_ERR_NOMEM;  /* links are freed with the simulator */
    if (sim_route(s, a, b, lab) != 0 || sim_route(s, b, a, lba) != 0)
        return SST_ERR_NOMEM;
    if (out_ab)
        *out_ab = lab;
    if (out_ba)
        *out_ba = lba;
    return 0;
}

int sim_send(struct sim *s, const struct sst_addr *from, const struct sst_addr *to,
             const uint8_t *pkt, size_t len)
{
    s->st.sent++;
    if (len > s->cfg.max_packet) {
        s->st.too_big++;
        return SST_ERR_TOO_BIG;
    }
    struct sim_route_key k;
    route_key(from, to, &k);
    struct sim_route_ent *r = NULL;
    HASH_FIND(hh, s->routes, &k, sizeof k, r);
    struct sim_link *l = r ? r->link : s->default_link;
    if (!l) {
        s->st.no_route++;
        return SST_ERR_NO_CHANNEL;
    }
    return sim_link_enqueue(l, from, to, pkt, len);
}

int sim_schedule_arrival(struct sim *s, struct sim_pkt *pkt, sst_time_t t)
{
    struct sim_ev ev = { .t = t, .kind = SIM_EV_ARRIVE, .p = pkt };
    return sim_heap_push(&s->heap, ev);
}

int sim_at(struct sim *s, sst_time_t t, void (*fn)(void *ctx, sst_time_t now), void *ctx)
{
    /* A function pointer cannot travel in a void *, so it rides in a tiny heap cell. */
    void (**cell)(void *, sst_time_t) = malloc(sizeof *cell);
    if (!cell)
        return SST_ERR_NOMEM;
    *cell = fn;
    struct sim_ev ev = { .t = SST_MAX(t, s->now), .kind = SIM_EV_CALL, .p = cell, .ctx = ctx };
    if (sim_heap_push(&s->heap, ev) != 0) {
        free(cell);
        return SST_ERR_NOMEM;
    }
    return 0;
}

/* ---- The event loop ---- */

static void trace_delivery(struct sim *s, const struct sim_pkt *pkt)
{
    uint8_t hdr[8 + 19 + 19 + 4];
    sst_put64(hdr, s->now);
    sst_addr_encode(&pkt->from, hdr + 8);
    sst_addr_encode(&pkt->to, hdr + 27);
    sst_put32(hdr + 46, (uint32_t)pkt->len);
    crypto_generichash_update(&s->trace, hdr, sizeof hdr);
    crypto_generichash_update(&s->trace, pkt->data, pkt->len);
}

static void arrive(struct sim *s, struct sim_pkt *pkt)
{
    pkt->link->st.delivered++;
    pkt->link->st.delivered_bytes += pkt->len;
    struct sim_node *n = find_node(s, &pkt->to);
    if (!n) {
        s->st.no_node++;
    } else {
        s->st.delivered++;
        if (s->cfg.hash_trace)
            trace_delivery(s, pkt);
        if (n->ops.recv)
            n->ops.recv(n->ctx, s->now, &pkt->from, pkt->data, pkt->len);
        rearm(s, n);
    }
    sim_pool_put(&s->pool, pkt);
}

static void fire_timer(struct sim *s, struct sim_node *n)
{
    n->armed = SST_TIME_NEVER;
    if (n->ops.timeout)
        n->ops.timeout(n->ctx, s->now);
    if (!n->alive)
        return;
    sst_time_t d = n->ops.deadline ? n->ops.deadline(n->ctx) : SST_TIME_NEVER;
    if (d <= s->now) {
        /* The node did not move its deadline: firing again at the same instant would spin
         * forever, so step one nanosecond and count it (an engine bug worth seeing). */
        s->st.timeout_spins++;
        n->timer_gen++;
        n->armed = s->now + 1;
        struct sim_ev ev = { .t = s->now + 1, .kind = SIM_EV_TIMER, .gen = n->timer_gen, .p = n };
        if (sim_heap_push(&s->heap, ev) != 0)
            n->armed = SST_TIME_NEVER;
        return;
    }
    rearm(s, n);
}

/* Runs the earliest event if it is due at or before limit.  False if none is. */
static bool step(struct sim *s, sst_time_t limit)
{
    for (;;) {
        if (sim_heap_peek_time(&s->heap) > limit || s->heap.n == 0)
            return false;
        struct sim_ev ev;
        sim_heap_pop(&s->heap, &ev);
        if (ev.kind == SIM_EV_TIMER) {
            struct sim_node *n = ev.p;
            if (!n->alive || ev.gen != n->timer_gen)
                continue;  /* stale: the deadline moved since this was armed */
        }
        s->now = ev.t;
        s->st.events++;
        switch (ev.kind) {
        case SIM_EV_ARRIVE:
            arrive(s, ev.p);
            break;
        case SIM_EV_TIMER:
            fire_timer(s, ev.p);
            break;
        case SIM_EV_CALL: {
            void (**cell)(void *, sst_time_t) = ev.p;
            void (*fn)(void *, sst_time_t) = *cell;
            free(cell);
            fn(ev.ctx, s->now);
            /* The callback may have poked any node. */
            rearm_all(s);
            break;
        }
        }
        return true;
    }
}

void sim_run_until(struct sim *s, sst_time_t t)
{
    if (t < s->now)
        return;
    rearm_all(s);
    while (step(s, t)) {
    }
    s->now = t;
}

int sim_run_while(struct sim *s, bool (*pred)(void *ctx), void *ctx, sst_time_t limit)
{
    rearm_all(s);
    for (;;) {
        if (!pred(ctx))
            return 0;
        if (s->now > limit || !step(s, limit))
            break;
    }
    if (limit > s->now)
        s->now = limit;
    return pred(ctx) ? SST_ERR_TIMEOUT : 0;
}
