/* BBR (v1) congestion control state: a model of the path (bottleneck bandwidth and minimum
 * RTT) that sets a pacing rate and a window, instead of reacting to each loss
 * (Cardwell et al., "BBR: Congestion-Based Congestion Control", ACM Queue 2016;
 * draft-cardwell-iccrg-bbr-congestion-control-00).  Included by cc.h. */
#ifndef SST_CC_BBR_H
#define SST_CC_BBR_H

#include "types.h"

struct sst_cc;
struct sst_cc_ops;

/* Windowed max filter (Kathleen Nichols' algorithm, as Linux lib/win_minmax.c): the best,
 * second-best and third-best samples of the last `win` time units, so expiring the best one
 * falls back to a recent runner-up instead of forgetting everything. */
struct sst_bbr_maxfilt {
    struct { uint64_t t, v; } s[3];
};
/* Records sample v at time t (t never decreases) and returns the max over (t - win, t]. */
uint64_t sst_bbr_maxfilt_update(struct sst_bbr_maxfilt *f, uint64_t win, uint64_t t, uint64_t v);
static inline uint64_t sst_bbr_maxfilt_get(const struct sst_bbr_maxfilt *f) { return f->s[0].v; }
void sst_bbr_maxfilt_reset(struct sst_bbr_maxfilt *f, uint64_t t, uint64_t v);

/* What a stretch of acknowledgments delivered and lost (the loss bound's evidence). */
struct sst_bbr_losswin {
    uint64_t lost, acked;         /* bytes */
    uint64_t peak;                /* largest inflight seen */
    uint64_t bw;                  /* largest valid delivery-rate sample, bytes/s */
    sst_time_t min_rtt;           /* smallest RTT sample; SST_TIME_NEVER: none */
};

enum sst_bbr_mode {
    SST_BBR_STARTUP = 0,     /* ramp up: pace at 2/ln2, stop when bandwidth plateaus */
    SST_BBR_DRAIN = 1,       /* drain the queue STARTUP built: pace at ln2/2 */
    SST_BBR_PROBE_BW = 2,    /* cruise at the estimated bandwidth, probing with a gain cycle */
    SST_BBR_PROBE_RTT = 3,   /* shrink to 4 packets for 200 ms to re-measure the min RTT */
};

#define SST_BBR_HIGH_GAIN 2.885           /* 2/ln2: doubles the rate each round in STARTUP */
#define SST_BBR_DRAIN_GAIN (1.0 / 2.885)
#define SST_BBR_CWND_GAIN 2.0             /* cwnd = 2 x BDP in PROBE_BW */
#define SST_BBR_CYCLE_LEN 8
#define SST_BBR_BW_WIN_ROUNDS 10          /* max filter window, round trips */
#define SST_BBR_MIN_RTT_WIN SST_SEC(10)
#define SST_BBR_PROBE_RTT_TIME SST_MS(200)
#define SST_BBR_MIN_CWND_PKTS 4
#define SST_BBR_FULL_BW_THRESH 1.25       /* growth per round that counts as "still growing" */
#define SST_BBR_FULL_BW_ROUNDS 3
#define SST_BBR_QUANTA 3                  /* cwnd headroom: this many send quanta (pacer.c) */
/* Ack aggregation (Linux bbr_update_ack_aggregation): acks that arrive in bursts (a receiver
 * acking one recvmmsg batch, a descheduled process) deliver more than bw x time; the largest
 * excess of the last 5-10 rounds is added to cwnd, at most 100 ms of bw. */
#define SST_BBR_EXTRA_ACKED_WIN_ROUNDS 5
#define SST_BBR_EXTRA_ACKED_MAX SST_MS(100)
#define SST_BBR_ACK_EPOCH_RESET (1u << 20)  /* bytes; restart an epoch grown this old */
/* Loss bound (from BBRv2, simplified; see cc_bbr.c): a bandwidth probe or a STARTUP round that
 * lost more than 2% of its packets, and at least 8, or a round that kept a standing queue of
 * 1/4 min RTT and lost any, caps inflight at 0.7 x its peak. */
#define SST_BBR_LOSS_THRESH 0.02
#define SST_BBR_STARTUP_LOSS_THRESH 0.10  /* STARTUP has no loss baseline yet: overflow only */
#define SST_BBR_LOSS_MIN_PKTS 8
#define SST_BBR_QUEUE_FRAC 0.25
#define SST_BBR_BETA 0.7
#define SST_BBR_COMPETE_GAIN 1.25         /* cruise window while a competitor's queue stands */
/* ... a queue of at least this much delay, besides the 1/4 min RTT: on a path of a few tens of
 * microseconds (a veth, a LAN) the receiver's own batching and the scheduler stand that fraction
 * of a queue all the time, with no competitor in sight. */
#define SST_BBR_COMPETE_MIN_QUEUE SST_MS(2)

extern const double sst_bbr_pacing_gain[SST_BBR_CYCLE_LEN];

struct sst_cc_bbr {
    uint8_t mode;                 /* enum sst_bbr_mode */
    struct sst_bbr_maxfilt bw;    /* bytes/s, windowed by round count */
    sst_time_t min_rtt;           /* SST_TIME_NEVER: no sample yet */
    sst_time_t min_rtt_stamp;     /* when min_rtt was measured */
    uint64_t round_count;         /* packet-timed round trips */
    uint64_t next_round_delivered;/* a round ends when a packet sent after this mark is acked */
    bool round_start;             /* this ack ended a round */
    double pacing_gain, cwnd_gain;
    unsigned cycle_idx;           /* PROBE_BW phase, index into sst_bbr_pacing_gain */
    sst_time_t cycle_stamp;       /* when the phase began */
    uint64_t full_bw;             /* bandwidth at the last 25% growth (STARTUP exit check) */
    unsigned full_bw_cnt;         /* rounds without 25% growth */
    bool full_bw_reached;
    sst_time_t probe_rtt_done;    /* end of the PROBE_RTT dwell; 0: not yet at 4 packets */
    bool probe_rtt_round_done;
    bool idle_restart;            /* restarting after idle: skip PROBE_RTT entry */
    bool has_seen_rtt;
    bool packet_conservation;     /* first round of a recovery period */
    bool recovery_entered;        /* on_congestion opened a period; applied at the next sample */
    bool queued;                  /* the last completed round kept a standing queue */
    bool competing;               /* the last round that ended in a cruise phase kept one */
    uint64_t path_bw;             /* largest bandwidth estimate so far, bytes/s */
    sst_time_t queued_rtt;        /* smallest RTT sample of the last competing round */
    uint64_t prior_cwnd;          /* cwnd before recovery / PROBE_RTT, restored after */
    /* ack aggregation */
    uint64_t extra_acked[2];      /* max excess delivered, over two alternating windows */
    unsigned extra_acked_rounds;  /* rounds into the current window */
    unsigned extra_acked_idx;
    sst_time_t ack_epoch_start;
    uint64_t ack_epoch_acked;     /* bytes acked since ack_epoch_start */
    /* loss bound */
    uint64_t inflight_hi;         /* cwnd cap after heavy loss; UINT64_MAX: none */
    uint64_t hi_step;             /* next loss-free round raises inflight_hi by this */
    uint64_t cut_round;           /* round_count when inflight_hi was last lowered */
    bool probe_open;              /* a PROBE_BW probe's loss window is open */
    struct sst_bbr_losswin probe, round;  /* over the probe / over the current round */
    struct sst_bbr_losswin cruise;  /* PROBE_BW phases after the last probe (the loss baseline) */
    double base_loss;             /* cruise loss rate before the current probe */
    uint64_t stat_loss_rounds;    /* rounds that lowered inflight_hi */
    uint64_t stat_probe_rtt;      /* PROBE_RTT entries */
};

extern const struct sst_cc_ops sst_cc_bbr_ops;
/* Sets up BBR state after sst_cc_init's common part (cwnd = initial window). */
void sst_bbr_init(struct sst_cc *cc, sst_time_t now);
/* Estimated bottleneck bandwidth (bytes/s), 0 before the first sample. */
uint64_t sst_bbr_bw(const struct sst_cc *cc);
/* bw x min_rtt x gain in bytes, plus quanta; the initial window before any RTT sample. */
uint64_t sst_bbr_target_inflight(const struct sst_cc *cc, double gain);

#endif
