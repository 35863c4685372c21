/* Congestion control behind a small interface: one context per channel, shared by all its streams
 * (paper §4.2.4).  Algorithms: NewReno (RFC 9002 §7 / RFC 6582), CUBIC (RFC 9438) and BBR v1
 * (cc_bbr.h). */
#ifndef SST_CC_H
#define SST_CC_H

#include "types.h"
#include "rtt.h"
#include "cc_bbr.h"

enum sst_cc_algo { SST_CC_CUBIC = 0, SST_CC_NEWRENO = 1, SST_CC_BBR = 2 };

struct sst_cc;
struct sst_rate_sample;
struct sst_cc_ops {
    const char *name;
    void (*on_sent)(struct sst_cc *cc, sst_time_t now, uint32_t bytes);
    /* A packet sent at time_sent was acknowledged (bytes already removed from flight). */
    void (*on_ack)(struct sst_cc *cc, sst_time_t now, uint32_t bytes, sst_time_t time_sent,
                   const struct sst_rtt *rtt);
    /* Loss (or ECN) detected for a packet sent at time_sent: at most one reduction per
     * recovery period (packets sent before the period began do not reduce again). */
    void (*on_congestion)(struct sst_cc *cc, sst_time_t now, sst_time_t time_sent);
    /* RFC 9002 §7.6: collapse to the minimum window. */
    void (*on_persistent_congestion)(struct sst_cc *cc, sst_time_t now);
    /* Optional (NULL for loss-based algorithms): once per acknowledgment, after its packets
     * went through on_ack and loss detection ran, the delivery-rate sample (delivery.h). */
    void (*on_rate_sample)(struct sst_cc *cc, sst_time_t now, const struct sst_rate_sample *rs,
                           const struct sst_rtt *rtt);
};

struct sst_cc_cubic {
    sst_time_t epoch_start;   /* SST_TIME_NEVER: no epoch */
    double w_max, k, w_est, cwnd_at_epoch;  /* in bytes (k in seconds) */
    uint64_t acked_since_epoch;
    double cwnd_prior;        /* cwnd just before the last reduction (RFC 9438 §4.3 alpha switch) */
};

/* HyStart++ (RFC 9406): leaves the initial slow start when the round's minimum RTT rises,
 * i.e. when a queue starts to build, instead of doubling cwnd until the queue overflows. */
struct sst_cc_hystart {
    sst_time_t round_start;   /* a round ends when a packet sent after this is acked */
    sst_time_t last_min_rtt;  /* SST_TIME_NEVER: no sample */
    sst_time_t cur_min_rtt;
    sst_time_t css_baseline;  /* min RTT that started Conservative Slow Start */
    unsigned samples;         /* RTT samples in the current round */
    unsigned css_rounds;      /* rounds completed in CSS */
    bool in_css;
    bool done;                /* only the first slow start uses HyStart++ (§4.3) */
    uint32_t css_frac;        /* bytes acked in CSS not yet credited (1/4 growth) */
    uint64_t stat_exit_cwnd;  /* cwnd when HyStart++ ended slow start; 0: it did not */
};

struct sst_cc {
    const struct sst_cc_ops *ops;
    uint64_t cwnd;            /* bytes */
    uint64_t ssthresh;        /* bytes; UINT64_MAX initially */
    uint32_t mss;             /* max datagram payload used for window arithmetic */
    sst_time_t recovery_start;/* SST_TIME_NEVER: not in recovery */
    uint64_t bytes_acked_ca;  /* NewReno congestion-avoidance byte counter */
    uint64_t in_flight;       /* maintained by recovery.c; algorithms read it (app-limited check) */
    struct sst_cc_cubic cubic;
    struct sst_cc_hystart hystart;
    /* Application-limited detection (RFC 9002 §7.8), per round trip (the current and the
     * previous one; a round ends when a packet sent after it began is acknowledged): the largest
     * in_flight right after a send, and whether a send left less than one mss of cwnd free. */
    uint64_t flight_peak, flight_peak_prev;
    bool window_full, window_full_prev;
    sst_time_t round_start;
    /* Pacing rate in bytes/s set by a model-based algorithm (BBR); 0 = the pacer derives the
     * rate from cwnd / srtt. */
    uint64_t pacing_rate;
    uint64_t stat_congestion_events;  /* reductions: on_congestion calls that opened a period */
    struct sst_cc_bbr bbr;
};

#define SST_CC_INITIAL_WINDOW_PKTS 10  /* RFC 9002 §7.2 */
#define SST_CC_MIN_WINDOW_PKTS 2

void sst_cc_init(struct sst_cc *cc, enum sst_cc_algo algo, uint32_t mss, sst_time_t now);
const char *sst_cc_algo_name(enum sst_cc_algo algo);
/* Parses "cubic" / "newreno" / "bbr"; SST_ERR_INVAL otherwise. */
int sst_cc_algo_parse(const char *s, enum sst_cc_algo *out);
static inline bool sst_cc_in_slow_start(const struct sst_cc *cc) { return cc->cwnd < cc->ssthresh; }
/* True if the sender used its window in this or the previous round trip (RFC 9002 §7.8): a send
 * left less than one mss of cwnd free, or, in slow start, more than half of cwnd was in flight
 * (as Linux tcp_is_cwnd_limited).  The algorithms grow cwnd only while this holds. */
bool sst_cc_cwnd_limited(const struct sst_cc *cc);
/* RFC 9438 eq. 1: W_cubic(t) = C*(t-K)^3 + W_max, in bytes, t in seconds since the epoch began. */
double sst_cc_cubic_window(const struct sst_cc *cc, double t);

/* RFC 9406 §4.3 constants. */
#define SST_HYSTART_MIN_RTT_THRESH SST_MS(4)
#define SST_HYSTART_MAX_RTT_THRESH SST_MS(16)
#define SST_HYSTART_MIN_RTT_DIVISOR 8
#define SST_HYSTART_N_RTT_SAMPLE 8
#define SST_HYSTART_CSS_GROWTH_DIVISOR 4
#define SST_HYSTART_CSS_ROUNDS 5

#define SST_CUBIC_C 0.4       /* RFC 9438 §5.1 */
#define SST_CUBIC_BETA 0.7    /* RFC 9438 §4.6 */

/* Pacing (RFC 9002 §7.7): a token bucket refilled at rate = gain * cwnd / srtt, with a burst of
 * a few packets, so a cwnd's worth of packets is spread over a round trip.  When the algorithm
 * sets cc->pacing_rate (BBR), that rate is used instead. */
struct sst_pacer {
    sst_time_t last;      /* time tokens were last refilled */
    double tokens;        /* bytes available now */
    double burst;         /* bucket depth, bytes */
    sst_time_t wake;      /* when the pacer last told its caller to come back (NEVER: not asked) */
    double credit;        /* sending time (bytes) a late come-back lost; refills at up to 2x rate */
};
void sst_pacer_init(struct sst_pacer *p, uint32_t mss);
/* Earliest time a packet of `bytes` may go out (now if it may go now). */
sst_time_t sst_pacer_next(struct sst_pacer *p, const struct sst_cc *cc, const struct sst_rtt *rtt,
                          sst_time_t now, uint32_t bytes);
void sst_pacer_on_sent(struct sst_pacer *p, uint32_t bytes);
/* The caller stopped asking for a reason other than pacing: the come-back time the pacer gave
 * is void, so lateness after it is not the pacer's to credit.  app_limited: the sender ran out
 * of data, which also drops any credit (an idle sender may not burst, RFC 9002 §7.7). */
void sst_pacer_on_unpaced(struct sst_pacer *p, bool app_limited);
/* The bytes a sender pacing at rate_Bps (bytes/s) may emit back to back: about 1 ms at that
 * rate, at least 2 * mss, at most SST_PACER_QUANTUM_MAX (Linux tcp_tso_autosize with
 * sk_pacing_shift 10).  Pacing finer than this costs a timer wake-up per packet or two, which a
 * CPU-bound sender cannot afford and a timer may not even resolve. */
uint64_t sst_pacer_quantum(uint64_t rate_Bps, uint32_t mss);
#define SST_PACER_QUANTUM_MAX 65536u

#endif
