/* BBR v1 congestion control behind sst_cc_ops: bottleneck bandwidth and min RTT, a pacing rate
 * and a window from them (Cardwell et al., ACM Queue 2016; draft-cardwell-iccrg-bbr-congestion-
 * control-00; the state machine follows the one Linux tcp_bbr.c ships). */
#include <math.h>
#include <string.h>

#include "cc.h"
#include "delivery.h"

/* PROBE_BW gain cycle: probe for more bandwidth for one min RTT, drain what the probe queued,
 * then cruise for six. */
const double sst_bbr_pacing_gain[SST_BBR_CYCLE_LEN] = { 1.25, 0.75, 1, 1, 1, 1, 1, 1 };

/* Pace 1% below the estimate so a queue the model itself built drains over time (Linux
 * bbr_pacing_margin_percent). */
#define PACING_MARGIN 0.99

/* ---- windowed max filter ------------------------------------------------------------------ */

void sst_bbr_maxfilt_reset(struct sst_bbr_maxfilt *f, uint64_t t, uint64_t v)
{
    for (int i = 0; i < 3; i++) {
        f->s[i].t = t;
        f->s[i].v = v;
    }
}

/* Keeps the three samples spread over the window: when the best is about to age out, a
 * runner-up from a later quarter / half of the window takes over instead of an old value. */
static uint64_t maxfilt_subwin(struct sst_bbr_maxfilt *f, uint64_t win, uint64_t t, uint64_t v)
{
    uint64_t dt = t - f->s[0].t;
    if (dt > win) {
        f->s[0] = f->s[1];
        f->s[1] = f->s[2];
        f->s[2].t = t;
        f->s[2].v = v;
        if (t - f->s[0].t > win) {
            f->s[0] = f->s[1];
            f->s[1] = f->s[2];
        }
    } else if (f->s[1].t == f->s[0].t && dt > win / 4) {
        f->s[1].t = f->s[2].t = t;
        f->s[1].v = f->s[2].v = v;
    } else if (f->s[2].t == f->s[1].t && dt > win / 2) {
        f->s[2].t = t;
        f->s[2].v = v;
    }
    return f->s[0].v;
}

uint64_t sst_bbr_maxfilt_update(struct sst_bbr_maxfilt *f, uint64_t win, uint64_t t, uint64_t v)
{
    /* A new maximum, or nothing left in the window: the sample is all three. */
    if (v >= f->s[0].v || t - f->s[2].t > win) {
        sst_bbr_maxfilt_reset(f, t, v);
        return v;
    }
    if (v >= f->s[1].v) {
        f->s[1].t = f->s[2].t = t;
        f->s[1].v = f->s[2].v = v;
    } else if (v >= f->s[2].v) {
        f->s[2].t = t;
        f->s[2].v = v;
    }
    return maxfilt_subwin(f, win, t, v);
}

/* ---- model -------------------------------------------------------------------------------- */

uint64_t sst_bbr_bw(const struct sst_cc *cc)
{
    return sst_bbr_maxfilt_get(&cc->bbr.bw);
}

static uint64_t min_cwnd(const struct sst_cc *cc)
{
    return (uint64_t)SST_BBR_MIN_CWND_PKTS * cc->mss;
}

/* RFC 9002 §7.2 initial window, the BDP guess before any RTT sample (as Linux TCP_INIT_CWND). */
static uint64_t initial_window(const struct sst_cc *cc)
{
    uint64_t ten = (uint64_t)SST_CC_INITIAL_WINDOW_PKTS * cc->mss;
    return SST_MIN(ten, SST_MAX((uint64_t)14720, 2 * (uint64_t)cc->mss));
}

static uint64_t bdp(const struct sst_cc *cc, uint64_t bw, double gain)
{
    const struct sst_cc_bbr *b = &cc->bbr;
    if (b->min_rtt == SST_TIME_NEVER)
        return initial_window(cc);
    double w = (double)bw * (double)b->min_rtt / 1e9;
    return (uint64_t)(w * gain);
}

/* The paper's inflight target plus headroom (Linux bbr_quantization_budget): the pacer
 * releases a send quantum at a time (about 1 ms of data, pacer.c) and acks come in batches, so
 * a window of exactly one BDP would stall the pipe.  On a path whose min RTT is far below the
 * quantum's duration (a bare veth: 20 us) the quanta are nearly all of the window. */
uint64_t sst_bbr_target_inflight(const struct sst_cc *cc, double gain)
{
    uint64_t quanta = SST_BBR_QUANTA * sst_pacer_quantum(cc->pacing_rate, cc->mss);
    /* Two more packets while probing, so the probe's extra inflight is not capped by the
     * window. */
    if (cc->bbr.mode == SST_BBR_PROBE_BW && cc->bbr.cycle_idx == 0)
        quanta += 2 * (uint64_t)cc->mss;
    return bdp(cc, sst_bbr_bw(cc), gain) + quanta;
}

/* The cwnd headroom for ack aggregation: the largest excess of the recent windows, once the
 * bandwidth is known (Linux bbr_ack_aggregation_cwnd). */
static uint64_t aggregation_cwnd(const struct sst_cc *cc)
{
    const struct sst_cc_bbr *b = &cc->bbr;
    if (!b->full_bw_reached)
        return 0;
    uint64_t extra = SST_MAX(b->extra_acked[0], b->extra_acked[1]);
    uint64_t cap = (uint64_t)((double)sst_bbr_bw(cc) * (double)SST_BBR_EXTRA_ACKED_MAX / 1e9);
    return SST_MIN(extra, cap);
}

/* Linux bbr_update_ack_aggregation: within an epoch that starts whenever acks fall behind
 * the bandwidth estimate, data acked beyond bw x elapsed arrived in a burst. */
static void update_ack_aggregation(struct sst_cc *cc, sst_time_t now,
                                   const struct sst_rate_sample *rs)
{
    struct sst_cc_bbr *b = &cc->bbr;
    if (rs->acked == 0)
        return;
    if (b->round_start && ++b->extra_acked_rounds >= SST_BBR_EXTRA_ACKED_WIN_ROUNDS) {
        b->extra_acked_rounds = 0;
        b->extra_acked_idx ^= 1;
        b->extra_acked[b->extra_acked_idx] = 0;
    }
    sst_time_t elapsed = now > b->ack_epoch_start ? now - b->ack_epoch_start : 0;
    uint64_t expected = (uint64_t)((double)sst_bbr_bw(cc) * (double)elapsed / 1e9);
    if (b->ack_epoch_acked <= expected ||
        b->ack_epoch_acked + rs->acked >= SST_BBR_ACK_EPOCH_RESET) {
        b->ack_epoch_acked = 0;
        b->ack_epoch_start = now;
        expected = 0;
    }
    b->ack_epoch_acked += rs->acked;
    uint64_t extra = SST_MIN(b->ack_epoch_acked - expected, cc->cwnd);
    if (extra > b->extra_acked[b->extra_acked_idx])
        b->extra_acked[b->extra_acked_idx] = extra;
}

/* A deterministic stand-in for Linux's random starting phase: flows that enter PROBE_BW at
 * different times start in different phases, so their probes do not line up.  The engine has
 * no RNG of its own and simulator runs must repeat exactly; unpredictability is not needed. */
static unsigned phase_pick(sst_time_t now, uint64_t delivered)
{
    uint64_t x = now ^ (delivered * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (unsigned)(x % (SST_BBR_CYCLE_LEN - 1));
}

static void enter_startup(struct sst_cc *cc)
{
    struct sst_cc_bbr *b = &cc->bbr;
    b->mode = SST_BBR_STARTUP;
    b->pacing_gain = SST_BBR_HIGH_GAIN;
    b->cwnd_gain = SST_BBR_HIGH_GAIN;
}

static void losswin_reset(struct sst_bbr_losswin *w, uint64_t inflight);

static void advance_cycle(struct sst_cc *cc, sst_time_t now)
{
    struct sst_cc_bbr *b = &cc->bbr;
    b->cycle_idx = (b->cycle_idx + 1) % SST_BBR_CYCLE_LEN;
    b->cycle_stamp = now;
    b->pacing_gain = sst_bbr_pacing_gain[b->cycle_idx];
    if (b->cycle_idx == 0) {
        /* A probe begins: judge its losses (update_loss_bound) against the loss rate of the
         * cruising phases before it. */
        uint64_t total = b->cruise.lost + b->cruise.acked;
        b->base_loss = total > 0 ? (double)b->cruise.lost / (double)total : 0;
        losswin_reset(&b->cruise, cc->in_flight);
        b->probe_open = true;
        losswin_reset(&b->probe, cc->in_flight);
    }
}

/* Starts PROBE_BW in any phase but the 0.75 drain one (nothing to drain yet). */
static void enter_probe_bw(struct sst_cc *cc, sst_time_t now, uint64_t delivered)
{
    struct sst_cc_bbr *b = &cc->bbr;
    b->mode = SST_BBR_PROBE_BW;
    b->cwnd_gain = SST_BBR_CWND_GAIN;
    b->cycle_idx = SST_BBR_CYCLE_LEN - 1 - phase_pick(now, delivered);
    advance_cycle(cc, now);
}

/* Remembers the window to go back to after recovery or PROBE_RTT. */
static void save_cwnd(struct sst_cc *cc)
{
    struct sst_cc_bbr *b = &cc->bbr;
    if (cc->recovery_start == SST_TIME_NEVER && b->mode != SST_BBR_PROBE_RTT)
        b->prior_cwnd = cc->cwnd;
    else
        b->prior_cwnd = SST_MAX(b->prior_cwnd, cc->cwnd);
}

/* Packet-timed rounds (a round ends when a packet sent after the previous end is acked) and
 * the bandwidth filter.  App-limited samples only count when they raise the estimate: they
 * show what the application offered, not what the path could carry. */
static void update_bw(struct sst_cc *cc, const struct sst_rate_sample *rs)
{
    struct sst_cc_bbr *b = &cc->bbr;
    b->round_start = false;
    if (rs->newest_sent == SST_TIME_NEVER)
        return;
    if (rs->prior_delivered >= b->next_round_delivered) {
        b->next_round_delivered = rs->delivered_total;
        b->round_count++;
        b->round_start = true;
        b->packet_conservation = false;
    }
    if (rs->valid && (!rs->app_limited || rs->bw >= sst_bbr_bw(cc)))
        sst_bbr_maxfilt_update(&b->bw, SST_BBR_BW_WIN_ROUNDS, b->round_count, rs->bw);
    b->path_bw = SST_MAX(b->path_bw, sst_bbr_bw(cc));
}

/* PROBE_BW phases last one min RTT; the probing phase also waits until it has actually put
 * 1.25 BDP in flight (or seen loss), the draining phase may end early once inflight is back
 * at one BDP. */
static bool next_phase_due(const struct sst_cc *cc, sst_time_t now,
                           const struct sst_rate_sample *rs)
{
    const struct sst_cc_bbr *b = &cc->bbr;
    bool full_length = b->min_rtt != SST_TIME_NEVER && now - b->cycle_stamp > b->min_rtt;
    uint64_t prior_inflight = cc->in_flight + rs->acked + rs->lost;
    if (b->pacing_gain == 1.0)
        return full_length;
    if (b->pacing_gain > 1.0)
        return full_length &&
               (rs->lost > 0 || prior_inflight >= SST_MIN(b->inflight_hi,
                                    sst_bbr_target_inflight(cc, b->pacing_gain)));
    return full_length || prior_inflight <= sst_bbr_target_inflight(cc, 1.0);
}

/* STARTUP ends when three rounds in a row failed to raise the bandwidth by 25%: the pipe is
 * full and the rest went into a queue. */
static void check_full_bw(struct sst_cc *cc, const struct sst_rate_sample *rs)
{
    struct sst_cc_bbr *b = &cc->bbr;
    if (b->full_bw_reached || !b->round_start || rs->app_limited)
        return;
    uint64_t bw = sst_bbr_bw(cc);
    if ((double)bw >= (double)b->full_bw * SST_BBR_FULL_BW_THRESH) {
        b->full_bw = bw;
        b->full_bw_cnt = 0;
        return;
    }
    if (++b->full_bw_cnt >= SST_BBR_FULL_BW_ROUNDS)
        b->full_bw_reached = true;
}

static void check_drain(struct sst_cc *cc, sst_time_t now, const struct sst_rate_sample *rs)
{
    struct sst_cc_bbr *b = &cc->bbr;
    if (b->mode == SST_BBR_STARTUP && b->full_bw_reached) {
        b->mode = SST_BBR_DRAIN;
        b->pacing_gain = SST_BBR_DRAIN_GAIN;
        b->cwnd_gain = SST_BBR_HIGH_GAIN;  /* keep the window; the pacing rate drains */
    }
    if (b->mode == SST_BBR_DRAIN && cc->in_flight <= sst_bbr_target_inflight(cc, 1.0))
        enter_probe_bw(cc, now, rs->delivered_total);
}

static void exit_probe_rtt(struct sst_cc *cc, sst_time_t now, uint64_t delivered)
{
    struct sst_cc_bbr *b = &cc->bbr;
    b->min_rtt_stamp = now;
    cc->cwnd = SST_MAX(cc->cwnd, b->prior_cwnd);
    if (b->full_bw_reached)
        enter_probe_bw(cc, now, delivered);
    else
        enter_startup(cc);
}

/* Loss bound, a simplified form of BBRv2's inflight_hi (draft-cardwell-iccrg-bbr-congestion-
 * control-02 §4.5.10).  BBR v1 ignores loss, so against a loss-based flow in a shallow buffer
 * it keeps the queue full and the other flow starves.  Random loss must still not matter, so
 * loss only counts where it can be congestion:
 *  - over a PROBE_BW probe (its 1.25 phase and the 0.75 phase in which the probe's packets are
 *    acked) and over each STARTUP round, BBR itself raised inflight: more than 2% of the
 *    window's packets lost (for a probe: 2% more than the cruising phases before it lost, so a
 *    path with steady random loss of any rate does not count as congested), and at least 8 (random 1% loss rarely puts 8 losses into a window
 *    that small; BBRv2 also wants 8 loss events to leave STARTUP), means the raise was too much;
 *  - over a PROBE_BW round whose smallest RTT sample was 1/4 min RTT above min RTT, a queue
 *    stood for the whole round, so any loss there is the buffer overflowing.  BBR alone drains its queue
 *    every gain cycle, so random loss is almost never seen with a standing queue; a competing
 *    flow's queue is what makes this rule bite (and it is what gives CUBIC its share).
 * Then: inflight_hi = 0.7 x the window's peak inflight (CUBIC's beta), the bandwidth estimate
 * drops to what the window delivered (at most by the same factor), and STARTUP ends.  Losses
 * reported in the round after a cut belong to packets sent before it and do not cut again.
 * Each later round raises inflight_hi by a step.  While rounds keep a standing queue (a
 * competitor is there), the step is one packet, as Reno's additive increase (BBRv2 bounds
 * this "Reno coexistence" wait at 63 rounds; we do not, see raise_inflight_hi); after a round
 * without one the step doubles every round, so a cut that random loss caused is undone within
 * a few round trips.  Once the cap exceeds twice the window the model wants, it is dropped. */
static void losswin_reset(struct sst_bbr_losswin *w, uint64_t inflight)
{
    w->lost = w->acked = w->bw = 0;
    w->peak = inflight;
    w->min_rtt = SST_TIME_NEVER;
}

static void losswin_add(struct sst_bbr_losswin *w, const struct sst_rate_sample *rs,
                        uint64_t prior_inflight)
{
    w->lost += rs->lost;
    w->acked += rs->acked;
    if (prior_inflight > w->peak)
        w->peak = prior_inflight;
    if (rs->valid && rs->bw > w->bw)
        w->bw = rs->bw;
    if (rs->rtt < w->min_rtt)
        w->min_rtt = rs->rtt;
}

static bool loss_too_high(const struct sst_cc *cc, const struct sst_bbr_losswin *w,
                          unsigned min_pkts, double thresh)
{
    return w->lost >= (uint64_t)min_pkts * cc->mss &&
           (double)w->lost > thresh * (double)(w->lost + w->acked);
}

static bool queue_stood(const struct sst_cc *cc, const struct sst_bbr_losswin *w)
{
    const struct sst_cc_bbr *b = &cc->bbr;
    if (b->min_rtt == SST_TIME_NEVER || w->min_rtt == SST_TIME_NEVER)
        return false;
    return (double)w->min_rtt > (double)b->min_rtt * (1.0 + SST_BBR_QUEUE_FRAC);
}

static void lower_inflight_hi(struct sst_cc *cc, const struct sst_bbr_losswin *w)
{
    struct sst_cc_bbr *b = &cc->bbr;
    uint64_t hi = (uint64_t)(SST_BBR_BETA * (double)w->peak);
    b->inflight_hi = SST_MAX(hi, min_cwnd(cc));
    b->hi_step = cc->mss;
    b->cut_round = b->round_count;
    /* The filter's max may date from before the loss; what the window delivered is what the
     * path gives us now (BBRv2's bw_lo, here folded into the filter). */
    uint64_t bw = SST_MAX(w->bw, (uint64_t)(SST_BBR_BETA * (double)sst_bbr_bw(cc)));
    if (bw < sst_bbr_bw(cc))
        sst_bbr_maxfilt_reset(&b->bw, b->round_count, bw);
    b->full_bw_reached = true;
    b->stat_loss_rounds++;
}

/* queued: the round that just ended kept a standing queue (a competing flow is there). */
static void raise_inflight_hi(struct sst_cc *cc, bool queued)
{
    struct sst_cc_bbr *b = &cc->bbr;
    if (b->inflight_hi == UINT64_MAX)
        return;
    b->inflight_hi += b->hi_step;
    /* A standing queue means a competitor still holds the buffer: grow as Reno would (one
     * packet per round, RFC 5681) for as long as that lasts.  Doubling after BBRv2's 63-round
     * wait regained a cut in about 3 s at 50 ms, faster than CUBIC regains its own (K = 6 s
     * for 300 packets, RFC 9438 §4.2), and BBR ratcheted up to 70% (simulator, 100 Mbit/s x
     * 50 ms, 10-30 s). */
    if (queued)
        b->hi_step = cc->mss;
    else
        b->hi_step *= 2;
    if (b->inflight_hi > 2 * sst_bbr_target_inflight(cc, b->cwnd_gain)) {
        b->inflight_hi = UINT64_MAX;
        b->hi_step = cc->mss;
    }
}

static void update_loss_bound(struct sst_cc *cc, const struct sst_rate_sample *rs)
{
    struct sst_cc_bbr *b = &cc->bbr;
    uint64_t prior_inflight = cc->in_flight + rs->acked + rs->lost;
    losswin_add(&b->probe, rs, prior_inflight);
    losswin_add(&b->round, rs, prior_inflight);
    if (b->mode == SST_BBR_PROBE_BW && !b->probe_open)
        losswin_add(&b->cruise, rs, prior_inflight);
    /* Losses reported in the round after a cut belong to packets sent before it: one cut per
     * congestion episode, as one reduction per recovery period in RFC 9002 §7.3.2. */
    bool fresh = b->round_count > b->cut_round + 1 || b->stat_loss_rounds == 0;
    bool cut = false;

    if (b->probe_open && (b->mode != SST_BBR_PROBE_BW || b->cycle_idx >= 2)) {
        b->probe_open = false;
        if (fresh && b->mode == SST_BBR_PROBE_BW &&
            loss_too_high(cc, &b->probe, SST_BBR_LOSS_MIN_PKTS,
                          SST_BBR_LOSS_THRESH + b->base_loss)) {
            lower_inflight_hi(cc, &b->probe);
            cut = true;
        }
    }
    if (b->round_start) {
        bool judge;
        if (b->mode == SST_BBR_STARTUP)
            judge = loss_too_high(cc, &b->round, SST_BBR_LOSS_MIN_PKTS,
                                  SST_BBR_STARTUP_LOSS_THRESH);
        else
            /* Not in DRAIN: that queue is STARTUP's own, and STARTUP's losses were judged
             * by the rule above. */
            judge = b->mode == SST_BBR_PROBE_BW && queue_stood(cc, &b->round) &&
                    b->round.lost > 0;
        if (fresh && !cut && judge) {
            lower_inflight_hi(cc, &b->round);
            cut = true;
        }
        b->queued = queue_stood(cc, &b->round);
        /* Judged only on rounds that end in a cruise phase: those follow our own 0.75 drain,
         * so a lone BBR has no queue left there, with random loss or without; a queue that
         * stands then is a competitor's. */
        if (b->mode != SST_BBR_PROBE_BW)
            b->competing = false;
        else if (b->cycle_idx >= 2) {
            b->competing = b->queued && b->round.min_rtt >= b->min_rtt + SST_BBR_COMPETE_MIN_QUEUE;
            b->queued_rtt = b->round.min_rtt;
        }
        losswin_reset(&b->round, cc->in_flight);
        if (!cut)
            raise_inflight_hi(cc, b->queued);
    }
}

/* Min RTT over 10 s.  When it has not been refreshed for that long, PROBE_RTT drains the pipe
 * to 4 packets for 200 ms and one round, so the queue (ours and competing BBR flows', which
 * synchronise on this) empties and the true propagation delay shows. */
static void update_min_rtt(struct sst_cc *cc, sst_time_t now, const struct sst_rate_sample *rs)
{
    struct sst_cc_bbr *b = &cc->bbr;
    bool expired = b->min_rtt != SST_TIME_NEVER && now > b->min_rtt_stamp + SST_BBR_MIN_RTT_WIN;
    if (rs->rtt != SST_TIME_NEVER && (rs->rtt < b->min_rtt || expired)) {
        b->min_rtt = SST_MAX(rs->rtt, (sst_time_t)1);
        b->min_rtt_stamp = now;
    }
    if (expired && !b->idle_restart && b->mode != SST_BBR_PROBE_RTT) {
        save_cwnd(cc);
        b->mode = SST_BBR_PROBE_RTT;
        b->pacing_gain = 1.0;
        b->cwnd_gain = 1.0;
        b->probe_rtt_done = SST_TIME_NEVER;
        b->stat_probe_rtt++;
    }
    if (b->mode == SST_BBR_PROBE_RTT) {
        if (b->probe_rtt_done == SST_TIME_NEVER && cc->in_flight <= min_cwnd(cc)) {
            b->probe_rtt_done = now + SST_BBR_PROBE_RTT_TIME;
            b->probe_rtt_round_done = false;
            b->next_round_delivered = rs->delivered_total;
        } else if (b->probe_rtt_done != SST_TIME_NEVER) {
            if (b->round_start)
                b->probe_rtt_round_done = true;
            if (b->probe_rtt_round_done && now >= b->probe_rtt_done)
                exit_probe_rtt(cc, now, rs->delivered_total);
        }
    }
    if (rs->acked > 0)
        b->idle_restart = false;
}

/* Before the first RTT sample: the initial window at high gain over srtt (1 ms if none yet,
 * which leaves the initial window unpaced, as Linux does). */
static void init_pacing_rate(struct sst_cc *cc, const struct sst_rtt *rtt)
{
    sst_time_t srtt = rtt != NULL && rtt->has_sample ? rtt->smoothed : SST_MS(1);
    if (srtt == 0)
        srtt = 1;
    cc->bbr.has_seen_rtt = rtt != NULL && rtt->has_sample;
    cc->pacing_rate = (uint64_t)(SST_BBR_HIGH_GAIN * (double)cc->cwnd * 1e9 / (double)srtt);
}

static void set_pacing_rate(struct sst_cc *cc, const struct sst_rtt *rtt)
{
    struct sst_cc_bbr *b = &cc->bbr;
    if (!b->has_seen_rtt && rtt != NULL && rtt->has_sample)
        init_pacing_rate(cc, rtt);
    uint64_t rate = (uint64_t)((double)sst_bbr_bw(cc) * b->pacing_gain * PACING_MARGIN);
    /* Under a loss bound, pace at what the bound lets through per round trip, so the flow stays
     * paced rather than ack-clocked: a window-limited flow sends just after the queue refilled
     * and loses more than its share to drop-tail (the cut would feed on itself). */
    if (b->inflight_hi != UINT64_MAX && rtt != NULL && rtt->has_sample && rtt->smoothed > 0) {
        uint64_t cap = (uint64_t)((double)b->inflight_hi * 1e9 / (double)rtt->smoothed *
                                  b->pacing_gain * PACING_MARGIN);
        rate = SST_MIN(rate, cap);
    }
    /* Floor: the minimum window per min RTT.  A flow that only ever sent a little (the
     * receiving side of a transfer, whose eliciting packets are window updates) measures a
     * bandwidth of a few hundred bytes per second; pacing at that would hold its control
     * packets back for seconds and stall the peer. */
    if (b->min_rtt != SST_TIME_NEVER) {
        uint64_t floor = (uint64_t)((double)min_cwnd(cc) * 1e9 / (double)b->min_rtt);
        rate = SST_MAX(rate, floor);
    }
    /* In STARTUP the rate only grows: an early low sample must not slow the ramp. */
    if (rate > 0 && (b->full_bw_reached || rate > cc->pacing_rate))
        cc->pacing_rate = rate;
}

/* Loss response (BBR v1): losses come off the window at once; the first round of a recovery
 * period sends only as much as was delivered (packet conservation); leaving recovery restores
 * the window saved before it.  Returns true while conserving.
 * Departure: conservation (and the cut to inflight + acked) only when the last round kept a
 * standing queue, i.e. when the loss can be overflow.  Under random loss a new recovery period
 * opens nearly every other round (at 5% loss, every round), and conserving each time pinned
 * the window to what was in flight: 26 Mbit/s instead of 84 on 100 Mbit/s x 50 ms at 5%
 * (stream simulator), and STARTUP saw a false plateau. */
static bool recover_or_restore(struct sst_cc *cc, const struct sst_rate_sample *rs,
                               uint64_t *cwnd)
{
    struct sst_cc_bbr *b = &cc->bbr;
    uint64_t w = cc->cwnd;
    if (rs->lost > 0)
        w = w > rs->lost + cc->mss ? w - rs->lost : cc->mss;
    if (b->recovery_entered) {
        b->recovery_entered = false;
        if (b->queued) {
            b->packet_conservation = true;
            b->next_round_delivered = rs->delivered_total;  /* conserve for one round from now */
            w = cc->in_flight + rs->acked;
        }
    } else if (cc->recovery_start != SST_TIME_NEVER && rs->newest_sent != SST_TIME_NEVER &&
               rs->newest_sent > cc->recovery_start) {
        /* A packet sent after the loss was delivered: the period is over. */
        cc->recovery_start = SST_TIME_NEVER;
        b->packet_conservation = false;
        w = SST_MAX(w, b->prior_cwnd);
    }
    /* Never below the minimum window: Linux counts whole packets, so inflight + acked is at
     * least one there; in bytes, a sender whose only packets are small control messages
     * would get a window too small for any full packet, could send nothing, and so never
     * see the ack that ends recovery. */
    w = SST_MAX(w, min_cwnd(cc));
    if (b->packet_conservation) {
        *cwnd = SST_MAX(w, cc->in_flight + rs->acked);
        return true;
    }
    *cwnd = w;
    return false;
}

/* cwnd = cwnd_gain x BDP + quanta, approached by adding what each ack delivered (never more
 * than doubling per round).  Before the pipe is known full, only grow. */
static void set_cwnd(struct sst_cc *cc, const struct sst_rate_sample *rs)
{
    struct sst_cc_bbr *b = &cc->bbr;
    uint64_t cwnd = cc->cwnd;
    if (rs->acked > 0 && !recover_or_restore(cc, rs, &cwnd)) {
        uint64_t target = sst_bbr_target_inflight(cc, b->cwnd_gain) + aggregation_cwnd(cc);
        if (b->full_bw_reached)
            cwnd = SST_MIN(cwnd + rs->acked, target);
        else if (cwnd < target || rs->delivered_total < initial_window(cc))
            cwnd += rs->acked;
        cwnd = SST_MAX(cwnd, min_cwnd(cc));
    }
    if (cwnd > b->inflight_hi)
        cwnd = SST_MAX(b->inflight_hi, min_cwnd(cc));
    /* Cruising next to a competitor that keeps a queue standing (a loss-based flow filling the
     * buffer): 1.25 BDP instead of 2.  With 2 BDP, every 1.25 probe raised our delivery rate
     * at the competitor's expense, the max filter kept it, and the cruise that followed
     * stood on a bigger share of the queue (the v1 ratchet: 67-80% against CUBIC in the
     * simulator, 100 Mbit/s x 50 ms, 1-BDP buffer).  At 1.25 the window binds once the queue
     * passes a quarter of min RTT, so the probe's gain drains back to the competitor; a cap at
     * 1 BDP binds at any queue and starved BBR (23% of 10-30 s there, as delay-based senders
     * starve next to loss-based ones).  The probe phases keep the 2 BDP window.  Floor: half
     * the largest bandwidth this connection has measured, at the standing RTT, so a flow that
     * had the path to itself is not pushed below half of it (if the path gets slower for good,
     * the floor only weakens the cap, back towards v1). */
    if (b->competing && b->mode == SST_BBR_PROBE_BW && b->cycle_idx >= 2) {
        uint64_t half = (uint64_t)((double)b->path_bw * (double)b->queued_rtt / 2e9);
        uint64_t cap = SST_MAX(sst_bbr_target_inflight(cc, SST_BBR_COMPETE_GAIN),
                               SST_MAX(half, min_cwnd(cc)));
        cwnd = SST_MIN(cwnd, cap);
    }
    cc->cwnd = cwnd;
    if (b->mode == SST_BBR_PROBE_RTT)
        cc->cwnd = SST_MIN(cc->cwnd, min_cwnd(cc));
}

/* ---- sst_cc_ops --------------------------------------------------------------------------- */

static void bbr_on_rate_sample(struct sst_cc *cc, sst_time_t now, const struct sst_rate_sample *rs,
                               const struct sst_rtt *rtt)
{
    struct sst_cc_bbr *b = &cc->bbr;
    update_bw(cc, rs);
    update_ack_aggregation(cc, now, rs);
    if (b->mode == SST_BBR_PROBE_BW && next_phase_due(cc, now, rs))
        advance_cycle(cc, now);
    check_full_bw(cc, rs);
    update_loss_bound(cc, rs);
    check_drain(cc, now, rs);
    update_min_rtt(cc, now, rs);
    set_pacing_rate(cc, rtt);
    set_cwnd(cc, rs);
}

/* The first send into an empty pipe after idle: cruise at the estimate rather than probe, and
 * do not enter PROBE_RTT on the stale min RTT before an ack has come back (Linux
 * CA_EVENT_TX_START). */
static void bbr_on_sent(struct sst_cc *cc, sst_time_t now, uint32_t bytes)
{
    struct sst_cc_bbr *b = &cc->bbr;
    if (cc->in_flight != bytes || b->round_count == 0)
        return;
    b->idle_restart = true;
    if (b->mode == SST_BBR_PROBE_BW) {
        uint64_t rate = (uint64_t)((double)sst_bbr_bw(cc) * PACING_MARGIN);
        if (rate > 0)
            cc->pacing_rate = rate;
    }
}

/* Everything happens once per acknowledgment, in bbr_on_rate_sample. */
static void bbr_on_ack(struct sst_cc *cc, sst_time_t now, uint32_t bytes, sst_time_t time_sent,
                       const struct sst_rtt *rtt)
{
}

/* A new loss event (one per recovery period, as for the other algorithms): the window cut is
 * applied with the next rate sample, which knows how much this ack delivered. */
static void bbr_on_congestion(struct sst_cc *cc, sst_time_t now, sst_time_t time_sent)
{
    if (cc->recovery_start != SST_TIME_NEVER && time_sent <= cc->recovery_start)
        return;
    save_cwnd(cc);
    cc->stat_congestion_events++;
    cc->recovery_start = now;
    cc->bbr.recovery_entered = true;
}

/* RFC 9002 §7.6 (Linux: RTO): down to the minimum window; the window saved here comes back
 * once packets sent from now on are acked, and STARTUP's plateau check starts over. */
static void bbr_on_persistent(struct sst_cc *cc, sst_time_t now)
{
    struct sst_cc_bbr *b = &cc->bbr;
    save_cwnd(cc);
    cc->cwnd = min_cwnd(cc);
    cc->recovery_start = now;
    b->recovery_entered = false;
    b->packet_conservation = false;
    b->full_bw = 0;
    b->full_bw_cnt = 0;
}

const struct sst_cc_ops sst_cc_bbr_ops = {
    .name = "bbr",
    .on_sent = bbr_on_sent,
    .on_ack = bbr_on_ack,
    .on_congestion = bbr_on_congestion,
    .on_persistent_congestion = bbr_on_persistent,
    .on_rate_sample = bbr_on_rate_sample,
};

void sst_bbr_init(struct sst_cc *cc, sst_time_t now)
{
    struct sst_cc_bbr *b = &cc->bbr;
    memset(b, 0, sizeof(*b));
    sst_bbr_maxfilt_reset(&b->bw, 0, 0);
    b->min_rtt = SST_TIME_NEVER;
    b->min_rtt_stamp = now;
    b->probe_rtt_done = SST_TIME_NEVER;
    b->cycle_stamp = now;
    b->inflight_hi = UINT64_MAX;
    b->hi_step = cc->mss;
    b->ack_epoch_start = now;
    losswin_reset(&b->probe, 0);
    losswin_reset(&b->round, 0);
    losswin_reset(&b->cruise, 0);
    enter_startup(cc);
    init_pacing_rate(cc, NULL);
}
