/* Sent-packet ring, acknowledgment processing, loss detection and timers (RFC 9002 §6-§7.6). */
#include <stdlib.h>
#include <string.h>

#include "recovery.h"
#include "err.h"
#include "seq.h"

/* Set on records declared lost by the current detection pass, for the persistent congestion
 * check; cleared before the pass returns.  Private to this file. */
#define SENT_NEWLY_LOST 0x10
#define RESOLVED (SST_SENT_ACKED | SST_SENT_LOST)
#define MAX_BACKOFF_SHIFT 16     /* 2^16 PTOs is already more than a day */

static sst_time_t sat_add(sst_time_t a, sst_time_t b)
{
    return a > SST_TIME_NEVER - b ? SST_TIME_NEVER : a + b;
}

static sst_time_t sat_mul(sst_time_t a, unsigned k)
{
    return a > SST_TIME_NEVER / k ? SST_TIME_NEVER : a * k;
}

static struct sst_sent *slot(const struct sst_recovery *r, uint64_t seq)
{
    return &r->ring[seq & (r->cap - 1)];
}

static sst_time_t pto_base(const struct sst_recovery *r)
{
    return sst_rtt_pto(&r->rtt, r->max_ack_delay);
}

/* RFC 9002 §7.6.1: (smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay) * 3.  Also how
 * long lost records stay in the ring so a late ack can still be recognised as spurious. */
static sst_time_t persistent_duration(const struct sst_recovery *r)
{
    return sat_mul(pto_base(r), SST_PERSISTENT_CONGESTION_PTOS);
}

static sst_time_t stall_time(const struct sst_recovery *r)
{
    return SST_MAX(r->stall_timeout, sat_mul(pto_base(r), 3));
}

static sst_time_t down_time(const struct sst_recovery *r)
{
    return SST_MAX(r->down_timeout, stall_time(r));
}

int sst_recovery_init(struct sst_recovery *r, enum sst_cc_algo algo, uint32_t mss,
                      sst_time_t now, const struct sst_recovery_cb *cb)
{
    memset(r, 0, sizeof(*r));
    if (mss == 0 || mss > UINT16_MAX)
        return SST_ERR_INVAL;
    r->ring = calloc(SST_RECOVERY_INITIAL_CAP, sizeof(*r->ring));
    if (r->ring == NULL)
        return SST_ERR_NOMEM;
    r->cap = SST_RECOVERY_INITIAL_CAP;
    r->max_outstanding = SST_SEQ_MAX_OUTSTANDING;
    /* Packet 0 counts as sent and received (paper §4.2.2; reference implementation). */
    r->base = r->next = r->scan = 1;
    r->loss_time = SST_TIME_NEVER;
    r->last_eliciting_sent = now;
    r->last_ack_time = now;
    r->progress_time = now;
    r->first_rtt_sample = SST_TIME_NEVER;
    r->max_ack_delay = SST_RECOVERY_MAX_ACK_DELAY;
    r->stall_timeout = SST_RECOVERY_STALL_TIMEOUT;
    r->down_timeout = SST_RECOVERY_DOWN_TIMEOUT;
    sst_rtt_init(&r->rtt);
    sst_cc_init(&r->cc, algo, mss, now);
    sst_delivery_init(&r->dr, now);
    if (cb != NULL)
        r->cb = *cb;
    return SST_OK;
}

void sst_recovery_free(struct sst_recovery *r)
{
    free(r->ring);
    r->ring = NULL;
    r->cap = 0;
}

/* Smallest power of two >= n (n <= 2^31). */
static uint32_t pow2_ceil(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* Doubles the ring, keeping every record at seq & (cap-1).  Growth is the only allocation
 * after init, and amortised: the ring never shrinks while packets are tracked, so a busy
 * connection allocates O(log n) times (an idle one may give it back: sst_recovery_trim). */
static int grow(struct sst_recovery *r)
{
    uint32_t ncap = r->cap == 0 ? SST_RECOVERY_INITIAL_CAP : r->cap * 2;
    if (ncap > pow2_ceil(r->max_outstanding))
        return SST_ERR_LIMIT;
    struct sst_sent *nring = calloc(ncap, sizeof(*nring));
    if (nring == NULL)
        return SST_ERR_NOMEM;
    for (uint64_t s = r->base; s < r->next; s++)
        nring[s & (ncap - 1)] = *slot(r, s);
    free(r->ring);
    r->ring = nring;
    r->cap = ncap;
    return SST_OK;
}

static void report_lost(struct sst_recovery *r, uint64_t seq)
{
    if (r->cb.lost != NULL)
        r->cb.lost(r->cb.ctx, seq);
}

static void advance_scan(struct sst_recovery *r)
{
    if (r->scan < r->base)
        r->scan = r->base;
    while (r->scan < r->next && (slot(r, r->scan)->flags & RESOLVED))
        r->scan++;
}

/* Moves base past records that no longer matter, so the ring stays as small as the window.
 * Acked records go at once.  Lost records stay one persistent-congestion duration, so a late
 * ack can still be counted as spurious and a loss run can be measured; `force` drops them
 * early when the ring is at its limit.  A non-eliciting packet (pure ack) may never be acked
 * at all; after the same duration it is given up as lost so it cannot pin the ring. */
static void retire(struct sst_recovery *r, sst_time_t now, bool force)
{
    sst_time_t keep = persistent_duration(r);
    while (r->base < r->next) {
        struct sst_sent *s = slot(r, r->base);
        bool old = now >= s->time_sent && now - s->time_sent >= keep;
        if (s->flags & SST_SENT_ACKED) {
            /* nothing to do */
        } else if (s->flags & SST_SENT_LOST) {
            if (!force && !old)
                break;
        } else if (!(s->flags & SST_SENT_ELICITING) && old) {
            s->flags |= SST_SENT_LOST;
            report_lost(r, r->base);
        } else {
            break;
        }
        s->flags = 0;
        r->base++;
    }
    advance_scan(r);
}

bool sst_recovery_can_send(const struct sst_recovery *r, uint32_t bytes)
{
    if (r->next - r->scan >= r->max_outstanding)
        return false;
    return r->bytes_in_flight + bytes <= r->cc.cwnd;
}

int sst_recovery_on_sent(struct sst_recovery *r, sst_time_t now, uint32_t bytes, bool ack_eliciting)
{
    if (bytes > UINT16_MAX)
        return SST_ERR_INVAL;
    if (r->next - r->base >= SST_MIN(r->cap, r->max_outstanding))
        retire(r, now, false);
    if (r->next - r->base >= r->max_outstanding) {
        /* At the extrapolation bound (seq.h): lost records give up their retention first. */
        retire(r, now, true);
        if (r->next - r->base >= r->max_outstanding)
            return SST_ERR_LIMIT;
    }
    if (r->next - r->base >= r->cap) {
        int err = grow(r);
        if (err != SST_OK)
            return err;
    }
    struct sst_sent *s = slot(r, r->next);
    s->time_sent = now;
    s->bytes = (uint16_t)bytes;
    s->flags = SST_SENT_USED | (ack_eliciting ? SST_SENT_ELICITING : 0);
    r->next++;
    r->stat_sent++;
    if (ack_eliciting) {
        sst_delivery_on_sent(&r->dr, &s->dr, now, r->bytes_in_flight);
        if (r->bytes_in_flight == 0) {
            /* Link status measures silence while data is outstanding, not idle time. */
            r->progress_time = now;
            r->link_reported = SST_LINK_UP;
        }
        r->bytes_in_flight += bytes;
        r->cc.in_flight = r->bytes_in_flight;
        r->last_eliciting_sent = now;
        r->cc.ops->on_sent(&r->cc, now, bytes);
    }
    return SST_OK;
}

/* True if seq does not interrupt a run of losses: declared lost and not (spuriously) acked, or
 * a non-eliciting packet still unresolved (it says nothing about the path). */
static bool in_loss_run(const struct sst_sent *s)
{
    if (s->flags & SST_SENT_ACKED)
        return false;
    return (s->flags & SST_SENT_LOST) || !(s->flags & SST_SENT_ELICITING);
}

/* RFC 9002 §7.6.2: a run of lost ack-eliciting packets with nothing acked in between, sent
 * after the first RTT sample, spanning more than the persistent congestion duration, and
 * containing at least one packet this pass declared lost.  The walk starts at the lowest
 * packet this pass declared lost (first_new), as RFC 9002's pseudocode only looks at the newly
 * lost packets: joining older losses would need lost records kept longer than the duration
 * itself.  A blackout's packets are normally all declared lost by the first ack after it. */
static bool persistent_congestion(struct sst_recovery *r, uint64_t first_new)
{
    sst_time_t span = persistent_duration(r);
    sst_time_t start = SST_TIME_NEVER;
    bool has_new = false, found = false;
    for (uint64_t seq = first_new; seq < r->largest_acked; seq++) {
        struct sst_sent *s = slot(r, seq);
        bool newly = s->flags & SENT_NEWLY_LOST;
        s->flags &= (uint8_t)~SENT_NEWLY_LOST;
        if (!in_loss_run(s)) {
            start = SST_TIME_NEVER;
            has_new = false;
            continue;
        }
        if (!(s->flags & SST_SENT_LOST))
            continue;
        if (newly)
            has_new = true;
        if (!(s->flags & SST_SENT_ELICITING) || (s->flags & SST_SENT_PROBE) ||
            r->first_rtt_sample == SST_TIME_NEVER ||
            s->time_sent <= r->first_rtt_sample)
            continue;
        if (start == SST_TIME_NEVER)
            start = s->time_sent;
        else if (has_new && s->time_sent - start > span)
            found = true;
    }
    return found;
}

/* RFC 9002 §6.1 DetectAndRemoveLostPackets: a packet below the largest acked is lost when
 * kPacketThreshold (3) later packets were acked, or when it was sent more than
 * 9/8 * max(srtt, latest_rtt) (at least kGranularity) ago; otherwise the loss timer is armed
 * for the moment the time threshold will pass. */
static void detect_lost(struct sst_recovery *r, sst_time_t now)
{
    r->loss_time = SST_TIME_NEVER;
    if (r->largest_acked == 0)
        return;
    sst_time_t rtt = SST_MAX(r->rtt.smoothed, r->rtt.latest);
    sst_time_t delay = SST_MAX(rtt + rtt / 8, SST_GRANULARITY);
    bool any = false;
    sst_time_t largest_lost_sent = 0;
    uint64_t first_new = 0;

    for (uint64_t seq = r->scan; seq < r->largest_acked; seq++) {
        struct sst_sent *s = slot(r, seq);
        if (s->flags & RESOLVED)
            continue;
        sst_time_t lost_at = sat_add(s->time_sent, delay);
        if (now >= lost_at || r->largest_acked - seq >= SST_LOSS_PKT_THRESHOLD) {
            s->flags |= SST_SENT_LOST | SENT_NEWLY_LOST;
            if (first_new == 0)
                first_new = seq;
            if (s->flags & SST_SENT_PROBE) {
                r->bytes_in_flight -= s->bytes; /* RFC 8899 §4.4: no congestion response */
            } else if (s->flags & SST_SENT_ELICITING) {
                r->bytes_in_flight -= s->bytes;
                r->stat_lost++;
                sst_delivery_on_lost(&r->dr, s->bytes);
                any = true;
                if (s->time_sent > largest_lost_sent)
                    largest_lost_sent = s->time_sent;
            }
            report_lost(r, seq);
        } else if (s->flags & SST_SENT_ELICITING) {
            r->loss_time = SST_MIN(r->loss_time, lost_at);
        }
    }
    r->cc.in_flight = r->bytes_in_flight;
    if (any) {
        r->cc.ops->on_congestion(&r->cc, now, largest_lost_sent);
        if (persistent_congestion(r, first_new)) {
            r->stat_persistent++;
            r->cc.ops->on_persistent_congestion(&r->cc, now);
        }
    } else {
        /* Only non-eliciting packets were lost: just clear the marks. */
        for (uint64_t seq = first_new; first_new != 0 && seq < r->largest_acked; seq++)
            slot(r, seq)->flags &= (uint8_t)~SENT_NEWLY_LOST;
    }
    advance_scan(r);
}

/* The RTT sample (RFC 9002 §5.1): the largest newly acked ack-eliciting packet, taken only if it
 * is above the previous largest acked (so a late ack filling an old hole, which includes the
 * time the hole waited, does not inflate srtt).  Read-only pass before anything is marked. */
static void take_rtt_sample(struct sst_recovery *r, const uint64_t (*ranges)[2], size_t n,
                            sst_time_t now)
{
    uint64_t best = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t lo = SST_MAX(ranges[i][0], SST_MAX(r->base, best + 1));
        for (uint64_t seq = ranges[i][1]; seq >= lo && seq > r->largest_acked; seq--) {
            const struct sst_sent *s = slot(r, seq);
            if (!(s->flags & RESOLVED) && (s->flags & SST_SENT_ELICITING)) {
                best = seq;
                break;
            }
        }
    }
    if (best == 0)
        return;
    sst_time_t sent = slot(r, best)->time_sent;
    sst_rtt_update(&r->rtt, now > sent ? now - sent : 0);
    if (r->first_rtt_sample == SST_TIME_NEVER)
        r->first_rtt_sample = now;
}

static void mark_acked(struct sst_recovery *r, uint64_t lo, uint64_t hi, sst_time_t now,
                       uint64_t *largest)
{
    for (uint64_t seq = SST_MAX(lo, r->base); seq <= hi; seq++) {
        struct sst_sent *s = slot(r, seq);
        if (s->flags & SST_SENT_ACKED)
            continue;
        if (s->flags & SST_SENT_LOST) {
            /* Declared lost, then acked: the loss was spurious.  The channel was already told
             * `lost` and has queued a retransmission; telling it `acked` too would break the
             * one-outcome-per-packet contract, so only the statistic records it. */
            s->flags |= SST_SENT_ACKED;
            r->stat_spurious++;
            continue;
        }
        s->flags |= SST_SENT_ACKED;
        r->stat_acked++;
        if (seq > *largest)
            *largest = seq;
        if (s->flags & SST_SENT_ELICITING) {
            r->bytes_in_flight -= s->bytes;
            r->cc.in_flight = r->bytes_in_flight;
            sst_delivery_on_acked(&r->dr, &s->dr, s->bytes, s->time_sent, now);
            r->cc.ops->on_ack(&r->cc, now, s->bytes, s->time_sent, &r->rtt);
        }
        if (r->cb.acked != NULL)
            r->cb.acked(r->cb.ctx, seq);
    }
}

int sst_recovery_on_ack_ranges(struct sst_recovery *r, const uint64_t (*ranges)[2], size_t n,
                               sst_time_t now)
{
    for (size_t i = 0; i < n; i++)
        if (ranges[i][0] > ranges[i][1] || ranges[i][1] >= r->next)
            return SST_ERR_MALFORMED;

    take_rtt_sample(r, ranges, n, now);
    sst_delivery_ack_begin(&r->dr);
    uint64_t largest = 0;
    for (size_t i = 0; i < n; i++)
        mark_acked(r, ranges[i][0], ranges[i][1], now, &largest);
    if (largest != 0) {
        /* RFC 9002 §6.2.1: an acknowledgment resets the PTO backoff. */
        r->pto_count = 0;
        r->last_ack_time = now;
        r->progress_time = now;
        r->link_reported = SST_LINK_UP;
        if (largest > r->largest_acked)
            r->largest_acked = largest;
        advance_scan(r);
        detect_lost(r, now);
        if (r->cc.ops->on_rate_sample != NULL) {
            /* After loss detection, so the sample carries this ack's losses too. */
            struct sst_rate_sample rs;
            sst_delivery_generate(&r->dr, now, r->rtt.has_sample ? r->rtt.min : 0, &rs);
            r->cc.ops->on_rate_sample(&r->cc, now, &rs, &r->rtt);
        }
    }
    retire(r, now, false);
    return SST_OK;
}

int sst_recovery_on_ack(struct sst_recovery *r, uint64_t lo, uint64_t hi, sst_time_t now)
{
    const uint64_t range[1][2] = { { lo, hi } };
    return sst_recovery_on_ack_ranges(r, range, 1, now);
}

/* RFC 9002 §6.2.1: PTO = base * 2^pto_count from the last ack-eliciting packet sent. */
static sst_time_t pto_deadline(const struct sst_recovery *r)
{
    if (r->bytes_in_flight == 0)
        return SST_TIME_NEVER;
    unsigned shift = SST_MIN(r->pto_count, (unsigned)MAX_BACKOFF_SHIFT);
    return sat_add(r->last_eliciting_sent, sat_mul(pto_base(r), 1u << shift));
}

static sst_time_t link_deadline(const struct sst_recovery *r)
{
    if (r->bytes_in_flight == 0)
        return SST_TIME_NEVER;
    if (r->link_reported < SST_LINK_STALLED)
        return sat_add(r->progress_time, stall_time(r));
    if (r->link_reported < SST_LINK_DOWN)
        return sat_add(r->progress_time, down_time(r));
    return SST_TIME_NEVER;
}

sst_time_t sst_recovery_deadline(const struct sst_recovery *r)
{
    sst_time_t t = r->loss_time != SST_TIME_NEVER ? r->loss_time : pto_deadline(r);
    return SST_MIN(t, link_deadline(r));
}

unsigned sst_recovery_on_timeout(struct sst_recovery *r, sst_time_t now)
{
    unsigned probes = 0;
    if (r->loss_time != SST_TIME_NEVER) {
        if (now >= r->loss_time)
            detect_lost(r, now);
    } else if (now >= pto_deadline(r)) {
        r->pto_count++;
        r->stat_pto++;
        probes = SST_RECOVERY_PROBES;
    }
    enum sst_link_state st = sst_recovery_link_state(r, now);
    if (st > r->link_reported)
        r->link_reported = (uint8_t)st;
    retire(r, now, false);
    return probes;
}

enum sst_link_state sst_recovery_link_state(const struct sst_recovery *r, sst_time_t now)
{
    if (r->bytes_in_flight == 0 || now <= r->progress_time)
        return SST_LINK_UP;
    sst_time_t quiet = now - r->progress_time;
    if (quiet >= down_time(r))
        return SST_LINK_DOWN;
    if (quiet >= stall_time(r))
        return SST_LINK_STALLED;
    return SST_LINK_UP;
}

bool sst_recovery_trim(struct sst_recovery *r, sst_time_t now)
{
    retire(r, now, false);
    if (r->bytes_in_flight > 0)
        return false;
    /* Nothing ack-eliciting is outstanding: what is left are records nobody waits for (acked,
     * lost ones kept to spot a late ack, pure acks the peer never acknowledges).  The pure acks
     * are given up now, as retire() would after their retention. */
    for (; r->base < r->next; r->base++) {
        struct sst_sent *s = slot(r, r->base);
        if (!(s->flags & (SST_SENT_ACKED | SST_SENT_LOST | SST_SENT_ELICITING))) {
            s->flags |= SST_SENT_LOST;
            report_lost(r, r->base);
        }
    }
    if (r->scan < r->base)
        r->scan = r->base;
    free(r->ring);
    r->ring = NULL;
    r->cap = 0;
    return true;
}
