/* Pacer (RFC 9002 §7.7): a token bucket that spreads a congestion window over a round trip. */
#include <math.h>

#include "cc.h"

#define PACER_BURST_PKTS 10      /* bucket depth: the initial window's worth, as RFC 9002 §7.7 allows */
#define PACER_GAIN_CA 1.25       /* rate = 1.25 * cwnd / srtt (RFC 9002 §7.7 "N = 1.25") */
#define PACER_GAIN_SS 2.0        /* slow start doubles cwnd per round trip, so pace at 2x */
/* Per-packet gaps shorter than this are not worth a timer wake-up each: ~240 Mbit/s with
 * 1472-byte packets, ~200 Mbit/s with 1232. */
#define PACER_MIN_SLEEP SST_US(50)
/* Credit for late come-backs is capped at this fraction of srtt's worth of sending: far more
 * than the scheduling delays of a loaded machine (milliseconds), and small against the round
 * trip, so catching up cannot build a queue the lateness had not already drained. */
#define PACER_CREDIT_SRTT_DIVISOR 4

void sst_pacer_init(struct sst_pacer *p, uint32_t mss)
{
    p->last = SST_TIME_NEVER;    /* the first query fills the bucket */
    p->burst = (double)PACER_BURST_PKTS * mss;
    p->tokens = p->burst;
    p->wake = SST_TIME_NEVER;
    p->credit = 0;
}

uint64_t sst_pacer_quantum(uint64_t rate_Bps, uint32_t mss)
{
    uint64_t q = rate_Bps >> 10;                      /* ~1 ms (1/1024 s) of data */
    q = SST_MIN(q, (uint64_t)SST_PACER_QUANTUM_MAX);
    return SST_MAX(q, 2 * (uint64_t)mss);
}

/* Smoothed RTT, kInitialRtt before the first sample (RFC 9002 §6.2.2), floored at the timer
 * granularity. */
static sst_time_t pacer_srtt(const struct sst_rtt *rtt)
{
    sst_time_t srtt = rtt->has_sample ? rtt->smoothed : SST_RTT_INITIAL;
    return srtt < SST_GRANULARITY ? SST_GRANULARITY : srtt;
}

/* Bytes per nanosecond. */
static double pacing_rate(const struct sst_cc *cc, const struct sst_rtt *rtt)
{
    if (cc->pacing_rate > 0)
        return (double)cc->pacing_rate / 1e9;   /* set by the algorithm's own model (BBR) */
    double gain = sst_cc_in_slow_start(cc) ? PACER_GAIN_SS : PACER_GAIN_CA;
    return gain * (double)cc->cwnd / (double)pacer_srtt(rtt);
}

static double min_d(double a, double b) { return a < b ? a : b; }

/* Adds the tokens earned since the last refill, up to `depth`.  What the cap cuts off is sending
 * time lost for good -- unless the pacer itself named a come-back time that has passed: then its
 * caller (a timer, a thread the scheduler ran late) came back late, and the part of the overflow
 * earned after that time becomes credit, capped at a quarter of srtt at the pacing rate.  Credit
 * is paid back into the bucket at up to the pacing rate again, so a sender catches up at no more
 * than twice the rate and never bursts more than the bucket.  Without it a sender paced at 0.99x
 * of BBR's bandwidth estimate on a loaded machine falls behind its estimate for good whenever its
 * thread runs more than a bucket (~1 ms) late.  (Linux TCP forgives only half a packet's pacing
 * delay for such "OS jitter", tcp_update_skb_after_send; its pacing timer fires in softirq
 * context, which user-space load does not delay.) */
static void pacer_refill(struct sst_pacer *p, double rate, double depth, sst_time_t now,
                         const struct sst_rtt *rtt)
{
    if (p->last == SST_TIME_NEVER) {
        p->tokens = p->burst;
        p->last = now;
    } else if (now > p->last) {
        double earned = rate * (double)(now - p->last);
        double room = depth - p->tokens;
        if (earned < room) {
            double boost = min_d(min_d(earned, p->credit), room - earned);
            p->credit -= boost;
            p->tokens += earned + boost;
        } else {
            if (p->wake != SST_TIME_NEVER && now > p->wake) {
                double lost = min_d(earned - room, rate * (double)(now - p->wake));
                double cap = rate * (double)(pacer_srtt(rtt) / PACER_CREDIT_SRTT_DIVISOR);
                p->credit = min_d(p->credit + lost, cap);
            }
            p->tokens = depth;
        }
        p->last = now;
    }
    if (now >= p->wake)
        p->wake = SST_TIME_NEVER;
}

/* Nanoseconds until the bucket holds `want`: at twice the rate while credit lasts. */
static double pacer_wait(const struct sst_pacer *p, double rate, double want)
{
    double missing = want - p->tokens;
    if (p->credit >= missing / 2)
        return missing / (2 * rate);
    return (missing - p->credit) / rate;
}

sst_time_t sst_pacer_next(struct sst_pacer *p, const struct sst_cc *cc, const struct sst_rtt *rtt,
                          sst_time_t now, uint32_t bytes)
{
    double rate = pacing_rate(cc, rtt);
    /* Fast: a packet is due sooner than PACER_MIN_SLEEP after the previous one.  A timer
     * wake-up per packet would then cost about as much CPU as the packet (and a timer may not
     * even resolve the gap), so the pacer works in send quanta (~1 ms of data), as Linux TCP
     * does per TSO burst: the bucket holds a quantum, and an empty bucket sleeps until a whole
     * quantum has accumulated.  Same average rate.  Slower flows are paced packet by packet
     * from a bucket of the initial-window burst, as before. */
    bool fast = (double)cc->mss / rate < (double)PACER_MIN_SLEEP;
    double quantum = (double)sst_pacer_quantum((uint64_t)(rate * 1e9), cc->mss);
    double depth = fast && quantum > p->burst ? quantum : p->burst;
    pacer_refill(p, rate, depth, now, rtt);
    /* A packet larger than the bucket could never fit: a full bucket is enough for it. */
    double need = (double)bytes < p->burst ? (double)bytes : p->burst;
    /* Tolerance for the rounding of the refill: the time returned below must be enough. */
    if (p->tokens + 1e-6 >= need)
        return now;
    double want = fast && quantum > need ? quantum : need;
    double wait = ceil(pacer_wait(p, rate, want));
    if (wait > (double)(SST_TIME_NEVER - now - 1))
        return SST_TIME_NEVER - 1;
    p->wake = now + (sst_time_t)wait;
    return p->wake;
}

/* Tokens may go negative when the caller sends without asking (probes, acks): the debt is
 * repaid before the next paced packet. */
void sst_pacer_on_sent(struct sst_pacer *p, uint32_t bytes)
{
    p->tokens -= (double)bytes;
}

void sst_pacer_on_unpaced(struct sst_pacer *p, bool app_limited)
{
    p->wake = SST_TIME_NEVER;
    if (app_limited)
        p->credit = 0;
}
