/* The RFC 8899 DPLPMTUD state machine for one channel: probe sizes, probe outcomes, black holes. */
#include <string.h>

#include "pmtu.h"

/* Size packets fall back to on a black hole: BASE_PLPMTU from above it, MIN_PLPMTU from BASE. */
static uint16_t fallback(const struct sst_pmtu *p)
{
    return p->plpmtu > p->base ? p->base : SST_MIN(p->base, (uint16_t)SST_PMTU_MIN);
}

static void bh_reset(struct sst_pmtu *p)
{
    p->large_acked = 0;
    p->small_acked = 0;
    p->bh_first = 0;
    p->bh_lost = 0;
    p->bh_confirm_from = 0;
}

void sst_pmtu_init(struct sst_pmtu *p, uint16_t base, uint16_t max, sst_time_t raise_timer)
{
    memset(p, 0, sizeof *p);
    p->base = base;
    p->max = max > base ? max : base;
    p->plpmtu = base;
    p->raise_timer = raise_timer ? raise_timer : SST_PMTU_RAISE_TIMER;
    p->raise_at = SST_TIME_NEVER;
    p->state = max > base ? SST_PMTU_BASE : SST_PMTU_DISABLED;
}

static void search_complete(struct sst_pmtu *p, sst_time_t now)
{
    p->state = SST_PMTU_SEARCH_COMPLETE;
    p->probe_size = 0;
    p->probe_seq = 0;
    p->probe_count = 0;
    p->raise_at = now + p->raise_timer;
}

/* Most paths are 1500-byte Ethernet, so the first probe is the configured maximum (one round
 * trip to the best size); only if it fails does a binary search run between the confirmed
 * size and the smallest failed one (RFC 8899 §5.3.2 leaves the search method open). */
static void search_start(struct sst_pmtu *p, sst_time_t now)
{
    if (p->plpmtu >= p->max) {
        search_complete(p, now);
        return;
    }
    p->state = SST_PMTU_SEARCHING;
    p->ceiling = (uint16_t)(p->max + 1);
    p->probe_size = p->max;
    p->probe_seq = 0;
    p->probe_count = 0;
    p->raise_at = SST_TIME_NEVER;
}

/* After a probe size succeeded or failed MAX_PROBES times: halve the remaining interval, or
 * stop when no size between the confirmed and the failed one is left. */
static void search_next(struct sst_pmtu *p, sst_time_t now)
{
    p->probe_seq = 0;
    p->probe_count = 0;
    if (p->ceiling <= p->plpmtu + 1) {
        search_complete(p, now);
        return;
    }
    p->probe_size = (uint16_t)(p->plpmtu + (p->ceiling - p->plpmtu) / 2);
}

void sst_pmtu_tick(struct sst_pmtu *p, sst_time_t now)
{
    if (p->raise_at == SST_TIME_NEVER || now < p->raise_at)
        return;
    p->raise_at = SST_TIME_NEVER;
    switch (p->state) {
    case SST_PMTU_SEARCH_COMPLETE:
    case SST_PMTU_BASE:
        /* PMTU_RAISE_TIMER (RFC 8899 §5.1.1): the path may have grown, or a black hole that
         * sent us back to BASE may be gone; BASE itself is confirmed by the packets since. */
        search_start(p, now);
        break;
    case SST_PMTU_ERROR:
        /* Try BASE_PLPMTU again; the next acknowledged packet confirms it (RFC 8899 §5.2). */
        p->plpmtu = p->base;
        p->state = SST_PMTU_BASE;
        bh_reset(p);
        break;
    default:
        break;
    }
}

uint16_t sst_pmtu_probe_size(const struct sst_pmtu *p)
{
    if (p->state != SST_PMTU_SEARCHING || p->probe_seq != 0)
        return 0;
    return p->probe_size;
}

void sst_pmtu_on_probe_sent(struct sst_pmtu *p, uint64_t seq, uint16_t size)
{
    if (p->state != SST_PMTU_SEARCHING || size != p->probe_size)
        return;
    p->probe_seq = seq;
    p->probes_sent++;
}

void sst_pmtu_on_acked(struct sst_pmtu *p, uint64_t seq, uint16_t size, bool probe, sst_time_t now)
{
    if (probe) {
        /* A probe from before a black hole or from an earlier search proves nothing now. */
        if (p->state != SST_PMTU_SEARCHING || seq != p->probe_seq)
            return;
        p->probes_acked++;
        if (size > p->plpmtu)
            p->plpmtu = size;
        bh_reset(p);
        search_next(p, now);
        return;
    }
    if (seq < p->ignore_below)
        return;
    if (p->state == SST_PMTU_BASE && p->raise_at == SST_TIME_NEVER) {
        /* An acknowledged packet confirms BASE_PLPMTU works (RFC 8899 §5.2): search. */
        search_start(p, now);
    }
    if (size > fallback(p)) {
        if (seq > p->large_acked)
            p->large_acked = seq;
        if (p->bh_lost && seq > p->bh_first)
            p->bh_lost = 0; /* a large packet got through after the losses: no black hole */
        if (p->bh_confirm_from && seq >= p->bh_confirm_from)
            p->bh_confirm_from = 0;  /* one sent after the suspicion did: it was congestion */
    } else if (seq > p->small_acked) {
        p->small_acked = seq;
    }
}

/* Full-size packets vanish while a smaller, later one arrives: the path MTU shrank under us
 * (RFC 8899 §4.3).  Fall back and let the raise timer start a new search. */
static void black_hole(struct sst_pmtu *p, uint64_t next_seq, sst_time_t now)
{
    p->blackholes++;
    if (p->plpmtu > p->base) {
        p->plpmtu = p->base;
        p->state = SST_PMTU_BASE;
    } else {
        p->plpmtu = fallback(p);
        p->state = SST_PMTU_ERROR;
    }
    p->probe_size = 0;
    p->probe_seq = 0;
    p->probe_count = 0;
    p->raise_at = now + p->raise_timer;
    p->ignore_below = next_seq;
    bh_reset(p);
}

bool sst_pmtu_on_lost(struct sst_pmtu *p, uint64_t seq, uint16_t size, bool probe,
                      uint64_t next_seq, sst_time_t now)
{
    if (probe) {
        if (p->state != SST_PMTU_SEARCHING || seq != p->probe_seq)
            return false;
        p->probes_lost++;
        p->probe_seq = 0;
        /* RFC 8899 §5.1.2: a size fails after MAX_PROBES lost probes; until then, retry it. */
        if (++p->probe_count >= SST_PMTU_MAX_PROBES) {
            p->ceiling = p->probe_size;
            search_next(p, now);
        }
        return false;
    }
    if (p->state == SST_PMTU_DISABLED || seq < p->ignore_below || p->plpmtu <= fallback(p) ||
        size <= fallback(p))
        return false;
    if (seq <= p->large_acked)
        return false; /* a later large packet already arrived: congestion, not the MTU */
    if (seq < p->bh_confirm_from)
        return false; /* already counted in the first sighting */
    if (p->bh_lost == 0 || seq < p->bh_first)
        p->bh_first = seq;
    p->bh_lost++;
    if (p->bh_lost >= SST_PMTU_BLACKHOLE_LOSSES && p->small_acked > p->bh_first) {
        /* Seen twice before it counts.  A drop-tail queue limited in bytes overflows the same
         * way: with a few hundred bytes free, full-size packets are dropped while the small
         * ones between them (acks, pings) still fit, so one sighting during a congestion
         * episode is common (a 100 Mbit/s x 50 ms path with a 1-BDP queue fell back to BASE
         * for PMTU_RAISE_TIMER in slow start).  Congestion ends within a round trip and a
         * large packet sent after the first sighting gets through; a black hole swallows
         * those too, so the second sighting costs one round trip more. */
        if (p->bh_confirm_from == 0) {
            p->bh_confirm_from = next_seq;
            p->bh_lost = 0;
            p->bh_first = 0;
            return false;
        }
        black_hole(p, next_seq, now);
        return true;
    }
    return false;
}

const char *sst_pmtu_state_name(enum sst_pmtu_state s)
{
    switch (s) {
    case SST_PMTU_DISABLED: return "disabled";
    case SST_PMTU_BASE: return "base";
    case SST_PMTU_SEARCHING: return "searching";
    case SST_PMTU_SEARCH_COMPLETE: return "search_complete";
    case SST_PMTU_ERROR: return "error";
    }
    return "?";
}
