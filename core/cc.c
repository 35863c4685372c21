/* Congestion control algorithms behind sst_cc_ops: NewReno (RFC 9002 §7) and CUBIC (RFC 9438);
 * BBR lives in cc_bbr.c. */
#include <math.h>
#include <string.h>

#include "cc.h"
#include "err.h"

/* RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta), the Reno-friendly additive increase. */
#define CUBIC_ALPHA (3.0 * (1.0 - SST_CUBIC_BETA) / (1.0 + SST_CUBIC_BETA))

static uint64_t min_window(const struct sst_cc *cc)
{
    return (uint64_t)SST_CC_MIN_WINDOW_PKTS * cc->mss;
}

/* RFC 9002 §7.2: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)). */
static uint64_t initial_window(uint32_t mss)
{
    uint64_t ten = (uint64_t)SST_CC_INITIAL_WINDOW_PKTS * mss;
    uint64_t floor = SST_MAX((uint64_t)14720, 2 * (uint64_t)mss);
    return SST_MIN(ten, floor);
}

/* RFC 9002 §7.3.2: an acked packet sent before the current recovery period began belongs to
 * the period and must not grow the window. */
static bool in_recovery(const struct sst_cc *cc, sst_time_t time_sent)
{
    return cc->recovery_start != SST_TIME_NEVER && time_sent <= cc->recovery_start;
}

bool sst_cc_cwnd_limited(const struct sst_cc *cc)
{
    if (cc->window_full || cc->window_full_prev)
        return true;
    /* Slow start may double cwnd within a round, so half a window in flight is enough. */
    uint64_t peak = SST_MAX(cc->flight_peak, cc->flight_peak_prev);
    return sst_cc_in_slow_start(cc) && 2 * peak > cc->cwnd;
}

/* Judged against cwnd at send time: cwnd may grow while the round's acks come back, and
 * that must not make the sender look application-limited. */
static void note_sent(struct sst_cc *cc)
{
    if (cc->in_flight > cc->flight_peak)
        cc->flight_peak = cc->in_flight;
    if (cc->in_flight + cc->mss > cc->cwnd)
        cc->window_full = true;
}

/* A packet sent after the current round began was acked: one round trip has passed. */
static void note_acked(struct sst_cc *cc, sst_time_t now, sst_time_t time_sent)
{
    if (cc->round_start == SST_TIME_NEVER || time_sent >= cc->round_start) {
        cc->flight_peak_prev = cc->flight_peak;
        cc->flight_peak = cc->in_flight;
        cc->window_full_prev = cc->window_full;
        cc->window_full = cc->in_flight + cc->mss > cc->cwnd;
        cc->round_start = now;
    }
}

static void hystart_init(struct sst_cc_hystart *h, sst_time_t now)
{
    memset(h, 0, sizeof(*h));
    h->round_start = now;
    h->last_min_rtt = h->cur_min_rtt = h->css_baseline = SST_TIME_NEVER;
}

/* RFC 9406 §4.2, called for every acked packet while cwnd < ssthresh; returns the bytes by
 * which cwnd grows.  The RTT samples are per packet (ack time - send time); the round's minimum
 * filters out the ack delay of the earlier packets an ack covers.  SST always paces, so the
 * burst limit L is infinite (§4.3).  Rounds are packet-timed like note_acked's. */
static uint64_t hystart_on_ack(struct sst_cc *cc, sst_time_t now, uint32_t bytes,
                               sst_time_t time_sent, bool grow)
{
    struct sst_cc_hystart *h = &cc->hystart;
    if (h->done)
        return bytes;
    if (time_sent >= h->round_start) {
        h->last_min_rtt = h->cur_min_rtt;
        h->cur_min_rtt = SST_TIME_NEVER;
        h->samples = 0;
        h->round_start = now;
        if (h->in_css && ++h->css_rounds >= SST_HYSTART_CSS_ROUNDS) {
            /* CSS saw no sign that the RTT rise was spurious: congestion avoidance. */
            h->done = true;
            h->stat_exit_cwnd = cc->cwnd;
            cc->ssthresh = cc->cwnd;
            return 0;
        }
    }
    sst_time_t rtt = now > time_sent ? now - time_sent : 0;
    if (rtt < h->cur_min_rtt)
        h->cur_min_rtt = rtt;
    h->samples++;
    bool enough = h->samples >= SST_HYSTART_N_RTT_SAMPLE && h->cur_min_rtt != SST_TIME_NEVER;
    if (!h->in_css) {
        if (enough && h->last_min_rtt != SST_TIME_NEVER) {
            sst_time_t thresh = SST_MAX(SST_HYSTART_MIN_RTT_THRESH,
                                        SST_MIN(h->last_min_rtt / SST_HYSTART_MIN_RTT_DIVISOR,
                                                SST_HYSTART_MAX_RTT_THRESH));
            if (h->cur_min_rtt >= h->last_min_rtt + thresh) {
                h->css_baseline = h->cur_min_rtt;
                h->in_css = true;
                h->css_rounds = 0;
            }
        }
        if (!h->in_css)
            return bytes;
    } else if (enough && h->cur_min_rtt < h->css_baseline) {
        /* The RTT came back down: the rise was not a queue of ours; back to slow start. */
        h->css_baseline = SST_TIME_NEVER;
        h->in_css = false;
        return bytes;
    }
    if (!grow)
        return 0;
    h->css_frac += bytes;
    uint64_t inc = h->css_frac / SST_HYSTART_CSS_GROWTH_DIVISOR;
    h->css_frac %= SST_HYSTART_CSS_GROWTH_DIVISOR;
    return inc;
}

/* A congestion event (or persistent congestion) ends HyStart++ for good (RFC 9406 §4.2). */
static void hystart_end(struct sst_cc *cc)
{
    cc->hystart.done = true;
    cc->hystart.in_css = false;
}

static void reno_on_sent(struct sst_cc *cc, sst_time_t now, uint32_t bytes)
{
    note_sent(cc);
}

/* RFC 9002 §7.3.1 slow start (cwnd += acked bytes) and §7.3.3 congestion avoidance (one mss
 * per cwnd of acked bytes, counted exactly rather than as mss*bytes/cwnd per ack). */
static void reno_on_ack(struct sst_cc *cc, sst_time_t now, uint32_t bytes, sst_time_t time_sent,
                        const struct sst_rtt *rtt)
{
    bool limited = sst_cc_cwnd_limited(cc);
    note_acked(cc, now, time_sent);
    if (in_recovery(cc, time_sent))
        return;
    if (sst_cc_in_slow_start(cc)) {
        uint64_t inc = hystart_on_ack(cc, now, bytes, time_sent, limited);
        if (limited)
            cc->cwnd += inc;
        return;
    }
    if (!limited)
        return;
    cc->bytes_acked_ca += bytes;
    if (cc->bytes_acked_ca >= cc->cwnd) {
        cc->bytes_acked_ca -= cc->cwnd;
        cc->cwnd += cc->mss;
    }
}

/* RFC 9002 §7.3.2: halve once per recovery period. */
static void reno_on_congestion(struct sst_cc *cc, sst_time_t now, sst_time_t time_sent)
{
    if (in_recovery(cc, time_sent))
        return;
    hystart_end(cc);
    cc->stat_congestion_events++;
    cc->recovery_start = now;
    cc->ssthresh = SST_MAX(cc->cwnd / 2, min_window(cc));
    cc->cwnd = cc->ssthresh;
    cc->bytes_acked_ca = 0;
}

/* RFC 9002 §7.6.2: collapse to the minimum window and leave recovery, so the next ack grows
 * the window again from there (ssthresh keeps the value the congestion event gave it). */
static void reno_on_persistent(struct sst_cc *cc, sst_time_t now)
{
    hystart_end(cc);
    cc->cwnd = min_window(cc);
    cc->recovery_start = SST_TIME_NEVER;
    cc->bytes_acked_ca = 0;
}

static const struct sst_cc_ops newreno_ops = {
    .name = "newreno",
    .on_sent = reno_on_sent,
    .on_ack = reno_on_ack,
    .on_congestion = reno_on_congestion,
    .on_persistent_congestion = reno_on_persistent,
};

double sst_cc_cubic_window(const struct sst_cc *cc, double t)
{
    double mss = cc->mss;
    double d = t - cc->cubic.k;
    /* Eq. 1 is stated in segments; C*(t-K)^3 segments = C*(t-K)^3*mss bytes. */
    return SST_CUBIC_C * d * d * d * mss + cc->cubic.w_max;
}

/* RFC 9438 §4.2: a new congestion-avoidance epoch; K is the time to climb back to W_max.
 * When cwnd already exceeds W_max (slow start went past it) K is negative and the curve
 * starts on its convex side at cwnd, which is what eq. 2 gives with a signed cube root. */
static void cubic_start_epoch(struct sst_cc *cc, sst_time_t now)
{
    struct sst_cc_cubic *c = &cc->cubic;
    double cwnd = (double)cc->cwnd;
    if (c->w_max <= 0)
        c->w_max = cwnd;
    c->epoch_start = now;
    c->cwnd_at_epoch = cwnd;
    c->w_est = cwnd;
    c->acked_since_epoch = 0;
    c->k = cbrt((c->w_max - cwnd) / (double)cc->mss / SST_CUBIC_C);
}

static double rtt_seconds(const struct sst_rtt *rtt)
{
    sst_time_t srtt = rtt != NULL && rtt->has_sample ? rtt->smoothed : SST_RTT_INITIAL;
    return (double)srtt / 1e9;
}

/* RFC 9438 §4.2-§4.5: standard slow start below ssthresh; above it the window follows
 * W_cubic(t + RTT), clamped to [cwnd, 1.5*cwnd], or the Reno estimate W_est when that is
 * larger (the Reno-friendly region). */
static void cubic_on_ack(struct sst_cc *cc, sst_time_t now, uint32_t bytes, sst_time_t time_sent,
                         const struct sst_rtt *rtt)
{
    struct sst_cc_cubic *c = &cc->cubic;
    bool limited = sst_cc_cwnd_limited(cc);
    note_acked(cc, now, time_sent);
    if (in_recovery(cc, time_sent))
        return;
    if (sst_cc_in_slow_start(cc)) {
        uint64_t inc = hystart_on_ack(cc, now, bytes, time_sent, limited);
        if (limited)
            cc->cwnd += inc;
        return;
    }
    if (!limited) {
        /* RFC 9438 §5.8: no growth while application-limited.  Restarting the epoch keeps the
         * curve from jumping ahead by the idle time once the sender is window-limited again. */
        c->epoch_start = SST_TIME_NEVER;
        return;
    }
    if (c->epoch_start == SST_TIME_NEVER)
        cubic_start_epoch(cc, now);
    c->acked_since_epoch += bytes;

    double cwnd = (double)cc->cwnd;
    double mss = (double)cc->mss;
    double t = (double)(now - c->epoch_start) / 1e9;
    double target = sst_cc_cubic_window(cc, t + rtt_seconds(rtt));
    if (target < cwnd)
        target = cwnd;
    if (target > 1.5 * cwnd)
        target = 1.5 * cwnd;

    /* §4.3: W_est grows by alpha segments per window of acked data; alpha becomes 1 once
     * W_est has reached the window before the last reduction. */
    double alpha = c->w_est >= c->cwnd_prior ? 1.0 : CUBIC_ALPHA;
    c->w_est += alpha * mss * (double)bytes / cwnd;

    double next;
    if (sst_cc_cubic_window(cc, t) < c->w_est)
        next = c->w_est;
    else
        next = cwnd + (target - cwnd) * (double)bytes / cwnd;  /* §4.4/§4.5 per-ack step */
    if (next > cwnd)
        cc->cwnd = (uint64_t)next;
}

/* RFC 9438 §4.6 multiplicative decrease by beta = 0.7 and §4.7 fast convergence: a flow that
 * loses before regaining its previous W_max releases bandwidth by lowering W_max further. */
static void cubic_on_congestion(struct sst_cc *cc, sst_time_t now, sst_time_t time_sent)
{
    struct sst_cc_cubic *c = &cc->cubic;
    if (in_recovery(cc, time_sent))
        return;
    hystart_end(cc);
    cc->stat_congestion_events++;
    double cwnd = (double)cc->cwnd;
    cc->recovery_start = now;
    if (cwnd < c->w_max)
        c->w_max = cwnd * (1.0 + SST_CUBIC_BETA) / 2.0;
    else
        c->w_max = cwnd;
    c->cwnd_prior = cwnd;
    cc->ssthresh = SST_MAX((uint64_t)llround(cwnd * SST_CUBIC_BETA), min_window(cc));
    cc->cwnd = cc->ssthresh;
    c->w_est = (double)cc->cwnd;
    c->epoch_start = SST_TIME_NEVER;
}

static void cubic_on_persistent(struct sst_cc *cc, sst_time_t now)
{
    hystart_end(cc);
    cc->cwnd = min_window(cc);
    cc->recovery_start = SST_TIME_NEVER;
    cc->cubic.epoch_start = SST_TIME_NEVER;
    cc->cubic.w_est = (double)cc->cwnd;
}

static const struct sst_cc_ops cubic_ops = {
    .name = "cubic",
    .on_sent = reno_on_sent,
    .on_ack = cubic_on_ack,
    .on_congestion = cubic_on_congestion,
    .on_persistent_congestion = cubic_on_persistent,
};

void sst_cc_init(struct sst_cc *cc, enum sst_cc_algo algo, uint32_t mss, sst_time_t now)
{
    memset(cc, 0, sizeof(*cc));
    cc->ops = algo == SST_CC_NEWRENO ? &newreno_ops
            : algo == SST_CC_BBR   ? &sst_cc_bbr_ops
                                   : &cubic_ops;
    cc->mss = mss;
    cc->cwnd = initial_window(mss);
    cc->ssthresh = UINT64_MAX;
    cc->recovery_start = SST_TIME_NEVER;
    cc->round_start = now;
    cc->cubic.epoch_start = SST_TIME_NEVER;
    hystart_init(&cc->hystart, now);
    if (algo == SST_CC_BBR)
        sst_bbr_init(cc, now);
}

const char *sst_cc_algo_name(enum sst_cc_algo algo)
{
    if (algo == SST_CC_BBR)
        return sst_cc_bbr_ops.name;
    return algo == SST_CC_NEWRENO ? newreno_ops.name : cubic_ops.name;
}

int sst_cc_algo_parse(const char *s, enum sst_cc_algo *out)
{
    if (s == NULL)
        return SST_ERR_INVAL;
    if (strcmp(s, "cubic") == 0) {
        *out = SST_CC_CUBIC;
        return SST_OK;
    }
    if (strcmp(s, "newreno") == 0 || strcmp(s, "reno") == 0) {
        *out = SST_CC_NEWRENO;
        return SST_OK;
    }
    if (strcmp(s, "bbr") == 0) {
        *out = SST_CC_BBR;
        return SST_OK;
    }
    return SST_ERR_INVAL;
}
