/* Pacer (RFC 9002 §7.7): a token bucket that spreads a congestion window over a round trip. */
#include <math.h>

#include "cc.h"

#define PACER_BURST_PKTS 10      /* bucket depth: the initial window's worth, as RFC 9002 §7.7 allows */
#define PACER_GAIN_CA 1.25       /* rate = 1.25 * cwnd / srtt (RFC 9002 §7.7 "N = 1.25") */
#define PACER_GAIN_SS 2.0        /* slow start doubles cwnd per round trip, so pace at 2x */
/* Per-packet gaps shorter than this are not worth a timer wake-up each: ~240 Mbit/s with
 * 1472-byte packets, ~200 Mbit/s with 1232. */
#define PACER_MIN_SLEEP SST_US(50)

void sst_pacer_init(struct sst_pacer *p, uint32_t mss)
{
    p->last = SST_TIME_NEVER;    /* the first query fills the bucket */
    p->burst = (double)PACER_BURST_PKTS * mss;
    p->tokens = p->burst;
}

uint64_t sst_pacer_quantum(uint64_t rate_Bps, uint32_t mss)
{
    uint64_t q = rate_Bps >> 10;                      /* ~1 ms (1/1024 s) of data */
    q = SST_MIN(q, (uint64_t)SST_PACER_QUANTUM_MAX);
    return SST_MAX(q, 2 * (uint64_t)mss);
}

/* Bytes per nanosecond.  Before the first RTT sample srtt is kInitialRtt (RFC 9002 §6.2.2). */
static double pacing_rate(const struct sst_cc *cc, const struct sst_rtt *rtt)
{
    if (cc->pacing_rate > 0)
        return (double)cc->pacing_rate / 1e9;   /* set by the algorithm's own model (BBR) */
    sst_time_t srtt = rtt->has_sample ? rtt->smoothed : SST_RTT_INITIAL;
    if (srtt < SST_GRANULARITY)
        srtt = SST_GRANULARITY;
    double gain = sst_cc_in_slow_start(cc) ? PACER_GAIN_SS : PACER_GAIN_CA;
    return gain * (double)cc->cwnd / (double)srtt;
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
    if (p->last == SST_TIME_NEVER) {
        p->tokens = p->burst;
        p->last = now;
    } else if (now > p->last) {
        p->tokens += rate * (double)(now - p->last);
        if (p->tokens > depth)
            p->tokens = depth;
        p->last = now;
    }
    /* A packet larger than the bucket could never fit: a full bucket is enough for it. */
    double need = (double)bytes < p->burst ? (double)bytes : p->burst;
    /* Tolerance for the rounding of the refill: the time returned below must be enough. */
    if (p->tokens + 1e-6 >= need)
        return now;
    double want = fast && quantum > need ? quantum : need;
    double wait = ceil((want - p->tokens) / rate);
    if (wait > (double)(SST_TIME_NEVER - now - 1))
        return SST_TIME_NEVER - 1;
    return now + (sst_time_t)wait;
}

/* Tokens may go negative when the caller sends without asking (probes, acks): the debt is
 * repaid before the next paced packet. */
void sst_pacer_on_sent(struct sst_pacer *p, uint32_t bytes)
{
    p->tokens -= (double)bytes;
}
