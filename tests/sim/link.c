/* The link model: a drop-tail FIFO queue in front of a serializer, then propagation with
 * independent and Gilbert-Elliott burst loss, corruption, duplication, reordering and jitter.
 * Every decision for a packet is made when it enters the link; since the queue is FIFO this
 * gives the same result as deciding at departure, and lost packets need no buffer. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sim_internal.h"

struct sim_link *sim_link_new(struct sim *s, const struct sim_link_params *p)
{
    struct sim_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->sim = s;
    if (p)
        l->p = *p;
    /* Each link draws from its own stream, numbered by creation order. */
    sim_rng_init(&l->rng, s->cfg.seed, "sim link", s->nlinks++);
    l->next = s->links;
    s->links = l;
    return l;
}

void sim_link_destroy(struct sim_link *l)
{
    free(l->ring);
    free(l);
}

void sim_link_set_params(struct sim_link *l, const struct sim_link_params *p)
{
    l->p = *p;
}

void sim_link_get_stats(const struct sim_link *l, struct sim_link_stats *out)
{
    *out = l->st;
}

/* Bytes leave the queue when their serialization ends. */
static void drain(struct sim_link *l, sst_time_t now)
{
    while (l->ring_n > 0 && l->ring[l->ring_head].t <= now) {
        l->occupancy -= l->ring[l->ring_head].len;
        l->ring_head = (l->ring_head + 1) & (l->ring_cap - 1);
        l->ring_n--;
    }
}

static int ring_push(struct sim_link *l, sst_time_t t, size_t len)
{
    if (l->ring_n == l->ring_cap) {
        size_t cap = l->ring_cap ? l->ring_cap * 2 : 64;
        struct sim_departure *r = malloc(cap * sizeof *r);
        if (!r)
            return SST_ERR_NOMEM;
        for (size_t i = 0; i < l->ring_n; i++)
            r[i] = l->ring[(l->ring_head + i) & (l->ring_cap - 1)];
        free(l->ring);
        l->ring = r;
        l->ring_cap = cap;
        l->ring_head = 0;
    }
    l->ring[(l->ring_head + l->ring_n) & (l->ring_cap - 1)] = (struct sim_departure){ t, len };
    l->ring_n++;
    return 0;
}

/* Serialization time of len bytes at rate bits/s, rounded up to whole nanoseconds. */
static sst_time_t ser_time(uint64_t rate, size_t len)
{
    unsigned __int128 bits_ns = (unsigned __int128)len * 8u * 1000000000u;
    return (sst_time_t)((bits_ns + rate - 1) / rate);
}

/* Gilbert-Elliott: move between good and bad first, then lose in the bad state.  The chain
 * steps once per packet (a packet-count, not a time-based, model). */
static bool burst_lost(struct sim_link *l)
{
    const struct sim_link_params *p = &l->p;
    if (p->ge_p_good_bad <= 0.0 && !l->ge_bad)
        return false;
    if (l->ge_bad) {
        if (sim_rng_chance(&l->rng, p->ge_p_bad_good))
            l->ge_bad = false;
    } else if (sim_rng_chance(&l->rng, p->ge_p_good_bad)) {
        l->ge_bad = true;
    }
    return l->ge_bad && sim_rng_chance(&l->rng, p->ge_loss_bad);
}

static void corrupt(struct sim_link *l, uint8_t *data, size_t len)
{
    unsigned nbits = 1 + (unsigned)sim_rng_below(&l->rng, 3);
    for (unsigned i = 0; i < nbits; i++) {
        uint64_t bit = sim_rng_below(&l->rng, (uint64_t)len * 8);
        data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

static struct sim_pkt *copy_pkt(struct sim_link *l, const struct sst_addr *from,
                                const struct sst_addr *to, const uint8_t *data, size_t len)
{
    struct sim *s = l->sim;
    struct sim_pkt *pkt = sim_pool_get(&s->pool);
    if (!pkt) {
        l->st.dropped_pool++;
        s->st.pool_drops++;
        return NULL;
    }
    pkt->link = l;
    pkt->from = *from;
    pkt->to = *to;
    pkt->len = len;
    if (len)
        memcpy(pkt->data, data, len);
    return pkt;
}

int sim_link_enqueue(struct sim_link *l, const struct sst_addr *from, const struct sst_addr *to,
                     const uint8_t *data, size_t len)
{
    struct sim *s = l->sim;
    const struct sim_link_params *p = &l->p;
    sst_time_t now = s->now;
    sst_time_t depart = now;

    l->st.offered++;
    l->st.offered_bytes += len;

    if (p->mtu > 0 && len > p->mtu) {
        l->st.dropped_mtu++;
        return 0;
    }

    if (p->rate_bps > 0) {
        drain(l, now);
        if (p->queue_bytes > 0 && l->occupancy + len > p->queue_bytes) {
            l->st.dropped_queue++;
            return SST_ERR_AGAIN;
        }
        depart = SST_MAX(now, l->busy_until) + ser_time(p->rate_bps, len);
        if (ring_push(l, depart, len) != 0) {
            l->st.dropped_queue++;
            return SST_ERR_NOMEM;
        }
        l->busy_until = depart;
        l->occupancy += len;
        l->st.queue_bytes = l->occupancy;
        if (l->occupancy > l->st.max_queue_bytes)
            l->st.max_queue_bytes = l->occupancy;
    }

    /* A lost packet still used the serializer: loss happens on the wire (picoquic and the
     * original SST simulator do the same). */
    bool burst = burst_lost(l);
    bool random_loss = sim_rng_chance(&l->rng, p->loss);
    if (burst || random_loss) {
        l->st.lost++;
        if (burst)
            l->st.lost_burst++;
        return 0;
    }

    struct sim_pkt *pkt = copy_pkt(l, from, to, data, len);
    if (!pkt)
        return SST_ERR_NOMEM;
    if (len > 0 && sim_rng_chance(&l->rng, p->corrupt)) {
        corrupt(l, pkt->data, len);
        l->st.corrupted++;
    }

    sst_time_t arrive = depart + p->delay;
    if (p->jitter > 0)
        arrive += sim_rng_below(&l->rng, p->jitter + 1);
    if (sim_rng_chance(&l->rng, p->reorder)) {
        /* Held back outside the FIFO: later packets may overtake it. */
        arrive += p->reorder_delay;
        l->st.reordered++;
    } else {
        /* Jitter varies the delay but a FIFO link never reorders. */
        arrive = SST_MAX(arrive, l->last_arrival);
        l->last_arrival = arrive;
    }
    bool dup = sim_rng_chance(&l->rng, p->duplicate);
    if (sim_schedule_arrival(s, pkt, arrive) != 0) {
        sim_pool_put(&s->pool, pkt);
        return SST_ERR_NOMEM;
    }
    if (dup) {
        struct sim_pkt *copy = copy_pkt(l, from, to, pkt->data, len);
        if (copy) {
            l->st.duplicated++;
            if (sim_schedule_arrival(s, copy, arrive) != 0)
                sim_pool_put(&s->pool, copy);
        }
    }
    return 0;
}
