/* Unit tests for loss recovery (core/recovery.c): ack ranges, RFC 9002 loss detection, PTO,
 * persistent congestion, spurious losses, the sent-packet ring and link status. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "recovery.h"

#define MSS 1200u
#define MAXSEQ 200000

/* Records every callback: per sequence number how often it was acked / reported lost. */
struct rec {
    uint8_t acked[MAXSEQ], lost[MAXSEQ];
    uint64_t nacked, nlost, last_acked;
    bool order_ok;
};

static void on_acked(void *ctx, uint64_t seq)
{
    struct rec *c = ctx;
    ck_assert_uint_lt(seq, MAXSEQ);
    c->acked[seq]++;
    c->nacked++;
    c->last_acked = seq;
}

static void on_lost(void *ctx, uint64_t seq)
{
    struct rec *c = ctx;
    ck_assert_uint_lt(seq, MAXSEQ);
    c->lost[seq]++;
    c->nlost++;
}

static struct rec *rec_new(void)
{
    struct rec *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    return c;
}

static void setup(struct sst_recovery *r, struct rec *c, enum sst_cc_algo algo, sst_time_t now)
{
    const struct sst_recovery_cb cb = { .ctx = c, .acked = on_acked, .lost = on_lost };
    ck_assert_int_eq(sst_recovery_init(r, algo, MSS, now, &cb), SST_OK);
}

static void send_n(struct sst_recovery *r, sst_time_t now, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(sst_recovery_on_sent(r, now, MSS, true), SST_OK);
}

/* Gives the estimator a first sample of `rtt`: sends one packet at `now`, acks it at now+rtt. */
static sst_time_t prime_rtt(struct sst_recovery *r, sst_time_t now, sst_time_t rtt)
{
    uint64_t seq = sst_recovery_next_seq(r);
    send_n(r, now, 1);
    ck_assert_int_eq(sst_recovery_on_ack(r, seq, seq, now + rtt), SST_OK);
    return now + rtt;
}

START_TEST(test_recovery_init_state)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_CUBIC, SST_SEC(1));
    ck_assert_uint_eq(sst_recovery_next_seq(&r), 1);
    ck_assert_uint_eq(sst_recovery_deadline(&r), SST_TIME_NEVER);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(100)), SST_LINK_UP);
    ck_assert(sst_recovery_can_send(&r, MSS));
    ck_assert_int_eq(sst_recovery_on_sent(&r, 0, 70000, true), SST_ERR_INVAL);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_ack_range_calls_back_in_order_and_samples_rtt)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sst_recovery_on_sent(&r, SST_MS(i), MSS, true), SST_OK);
    ck_assert_uint_eq(r.bytes_in_flight, 5 * MSS);
    ck_assert_uint_eq(r.cc.in_flight, 5 * MSS);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 1, 3, SST_MS(52)), SST_OK);
    ck_assert_uint_eq(c->nacked, 3);
    ck_assert_uint_eq(c->last_acked, 3);
    ck_assert(c->acked[1] == 1 && c->acked[2] == 1 && c->acked[3] == 1);
    ck_assert_uint_eq(r.bytes_in_flight, 2 * MSS);
    ck_assert_uint_eq(r.largest_acked, 3);
    /* Sample from the largest newly acked packet: 3, sent at 2 ms. */
    ck_assert(r.rtt.has_sample);
    ck_assert_uint_eq(r.rtt.latest, SST_MS(50));
    /* Acking the same range again changes nothing and does not resample. */
    ck_assert_int_eq(sst_recovery_on_ack(&r, 1, 3, SST_MS(90)), SST_OK);
    ck_assert_uint_eq(c->nacked, 3);
    ck_assert_uint_eq(r.rtt.latest, SST_MS(50));
    ck_assert_uint_eq(r.stat_acked, 3);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_ranges_naming_unsent_packets_rejected)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    send_n(&r, 0, 7);                       /* 1..7 sent; next is 8 */
    ck_assert_int_eq(sst_recovery_on_ack(&r, 5, 8, SST_MS(10)), SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 5, 1000, SST_MS(10)), SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 4, 3, SST_MS(10)), SST_ERR_MALFORMED);
    /* One bad range among good ones: the whole acknowledgment is refused. */
    const uint64_t ranges[2][2] = { { 1, 2 }, { 6, 9 } };
    ck_assert_int_eq(sst_recovery_on_ack_ranges(&r, ranges, 2, SST_MS(10)), SST_ERR_MALFORMED);
    ck_assert_uint_eq(c->nacked, 0);
    ck_assert_uint_eq(r.stat_acked, 0);
    ck_assert_uint_eq(r.largest_acked, 0);
    ck_assert_uint_eq(r.bytes_in_flight, 7 * MSS);
    ck_assert(!r.rtt.has_sample);
    /* Sequence number 0 counts as already acknowledged; the boundary 7 is fine. */
    ck_assert_int_eq(sst_recovery_on_ack(&r, 0, 7, SST_MS(10)), SST_OK);
    ck_assert_uint_eq(c->nacked, 7);
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_packet_threshold_loss)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    send_n(&r, 0, 5);
    uint64_t cwnd = r.cc.cwnd;
    ck_assert_int_eq(sst_recovery_on_ack(&r, 4, 4, SST_MS(50)), SST_OK);
    /* 4 acked: 1 has three later packets acked and is lost; 2 and 3 are not (yet). */
    ck_assert_uint_eq(c->lost[1], 1);
    ck_assert_uint_eq(c->lost[2] + c->lost[3], 0);
    ck_assert_uint_eq(r.stat_lost, 1);
    ck_assert_uint_eq(r.bytes_in_flight, 2 * MSS + MSS);   /* 2, 3, 5 */
    ck_assert_uint_eq(r.cc.cwnd, cwnd / 2);
    /* The time threshold is armed for 2 and 3: 9/8 * 50 ms after they were sent. */
    ck_assert_uint_eq(r.loss_time, SST_US(56250));
    ck_assert_uint_eq(sst_recovery_deadline(&r), SST_US(56250));
    ck_assert_int_eq(sst_recovery_on_ack(&r, 5, 5, SST_MS(51)), SST_OK);
    ck_assert_uint_eq(c->lost[2], 1);        /* 5 - 2 = 3 */
    ck_assert_uint_eq(c->lost[3], 0);
    /* Same recovery period: one reduction only. */
    ck_assert_uint_eq(r.cc.cwnd, cwnd / 2);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_time_threshold_loss_via_timer)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    ck_assert_int_eq(sst_recovery_on_sent(&r, SST_SEC(1), MSS, true), SST_OK);
    ck_assert_int_eq(sst_recovery_on_sent(&r, SST_SEC(1) + SST_MS(1), MSS, true), SST_OK);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 2, 2, SST_SEC(1) + SST_MS(51)), SST_OK);
    ck_assert_uint_eq(r.rtt.latest, SST_MS(50));
    ck_assert_uint_eq(c->nlost, 0);
    sst_time_t when = SST_SEC(1) + SST_US(56250);
    ck_assert_uint_eq(sst_recovery_deadline(&r), when);
    ck_assert_uint_eq(sst_recovery_on_timeout(&r, when - 1), 0);
    ck_assert_uint_eq(c->nlost, 0);
    ck_assert_uint_eq(sst_recovery_on_timeout(&r, when), 0);   /* loss timer: no probes */
    ck_assert_uint_eq(c->lost[1], 1);
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    ck_assert_uint_eq(r.stat_pto, 0);
    ck_assert_uint_eq(sst_recovery_deadline(&r), SST_TIME_NEVER);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_pto_fires_and_backs_off)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_CUBIC, 0);
    send_n(&r, SST_SEC(1), 1);
    /* No RTT sample: PTO = 333 + 4 * 166.5 + 10 (max_ack_delay) = 1009 ms. */
    sst_time_t pto = SST_MS(1009);
    sst_time_t d = sst_recovery_deadline(&r);
    ck_assert_uint_eq(d, SST_SEC(1) + pto);
    ck_assert_uint_eq(sst_recovery_on_timeout(&r, d - 1), 0);
    ck_assert_uint_eq(r.pto_count, 0);
    ck_assert_uint_eq(sst_recovery_on_timeout(&r, d), SST_RECOVERY_PROBES);
    ck_assert_uint_eq(r.pto_count, 1);
    ck_assert_uint_eq(c->nlost, 0);                  /* a PTO declares nothing lost */
    send_n(&r, d, 2);                                /* the probes */
    sst_time_t d2 = sst_recovery_deadline(&r);
    ck_assert_uint_eq(d2, d + 2 * pto);
    ck_assert_uint_eq(sst_recovery_on_timeout(&r, d2), SST_RECOVERY_PROBES);
    ck_assert_uint_eq(r.pto_count, 2);
    ck_assert_uint_eq(sst_recovery_deadline(&r), d + 4 * pto);
    ck_assert_uint_eq(r.stat_pto, 2);
    /* An acknowledgment resets the backoff (RFC 9002 §6.2.1). */
    ck_assert_int_eq(sst_recovery_on_ack(&r, 3, 3, d2 + SST_MS(20)), SST_OK);
    ck_assert_uint_eq(r.pto_count, 0);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_spurious_loss_counted_not_acked)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    send_n(&r, 0, 5);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 2, 5, SST_MS(40)), SST_OK);
    ck_assert_uint_eq(c->lost[1], 1);
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    /* The "lost" packet was only late. */
    ck_assert_int_eq(sst_recovery_on_ack(&r, 1, 1, SST_MS(45)), SST_OK);
    ck_assert_uint_eq(r.stat_spurious, 1);
    ck_assert_uint_eq(c->acked[1], 0);               /* never both lost and acked */
    ck_assert_uint_eq(r.bytes_in_flight, 0);         /* not subtracted twice */
    ck_assert_uint_eq(r.stat_acked, 4);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 1, 1, SST_MS(46)), SST_OK);
    ck_assert_uint_eq(r.stat_spurious, 1);           /* counted once */
    sst_recovery_free(&r);
    free(c);
}
END_TEST

/* Eliciting packets every 100 ms, none acked, then one acked packet: all earlier ones are lost.
 * RTT samples of 50 ms and 50 ms give srtt 50, rttvar 18.75, so the persistent congestion
 * duration is 3 * (50 + 75 + 10) = 405 ms: 5 packets span 400 ms, 6 span 500 ms. */
static void lose_run(struct sst_recovery *r, sst_time_t start, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(sst_recovery_on_sent(r, start + SST_MS(100) * i, MSS, true), SST_OK);
    sst_time_t t = start + SST_MS(100) * n;
    uint64_t seq = sst_recovery_next_seq(r);
    send_n(r, t, 1);
    ck_assert_int_eq(sst_recovery_on_ack(r, seq, seq, t + SST_MS(50)), SST_OK);
}

START_TEST(test_recovery_persistent_congestion)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, _i == 0 ? SST_CC_NEWRENO : SST_CC_CUBIC, 0);
    sst_time_t t = prime_rtt(&r, 0, SST_MS(50));
    lose_run(&r, t + SST_MS(10), 6);                 /* lost packets span 500 ms > 405 ms */
    ck_assert_uint_eq(c->nlost, 6);
    ck_assert_uint_eq(r.stat_persistent, 1);
    ck_assert_uint_eq(r.cc.cwnd, SST_CC_MIN_WINDOW_PKTS * MSS);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_short_loss_run_is_not_persistent)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    sst_time_t t = prime_rtt(&r, 0, SST_MS(50));
    uint64_t cwnd = r.cc.cwnd;
    lose_run(&r, t + SST_MS(10), 5);                 /* span 400 ms < 405 ms */
    ck_assert_uint_eq(c->nlost, 5);
    ck_assert_uint_eq(r.stat_persistent, 0);
    /* An ordinary halving, after the ack grew slow start by one packet (6 of 10 in flight). */
    ck_assert_uint_eq(r.cc.cwnd, (cwnd + MSS) / 2);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_ack_in_the_middle_breaks_persistent_run)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    sst_time_t t = prime_rtt(&r, 0, SST_MS(50));
    uint64_t cwnd = r.cc.cwnd;
    /* 10 packets over 900 ms, but the 5th is acked: two runs of 300 and 400 ms. */
    uint64_t first = sst_recovery_next_seq(&r);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(sst_recovery_on_sent(&r, t + SST_MS(100) * i, MSS, true), SST_OK);
    const uint64_t ranges[2][2] = { { first + 4, first + 4 }, { first + 10, first + 10 } };
    send_n(&r, t + SST_SEC(1), 1);
    ck_assert_int_eq(sst_recovery_on_ack_ranges(&r, ranges, 2, t + SST_SEC(1) + SST_MS(50)), SST_OK);
    ck_assert_uint_eq(c->nlost, 9);
    ck_assert_uint_eq(r.stat_persistent, 0);
    /* One ordinary halving, after both acks grew slow start by a packet each (ranges are
     * all processed before loss detection runs). */
    ck_assert_uint_eq(r.cc.cwnd, (cwnd + 2 * MSS) / 2);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_no_persistent_congestion_before_first_rtt_sample)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    lose_run(&r, 0, 30);                             /* 3 s of losses, no prior sample */
    ck_assert_uint_eq(c->nlost, 30);
    ck_assert_uint_eq(r.stat_persistent, 0);
    ck_assert_uint_gt(r.cc.cwnd, SST_CC_MIN_WINDOW_PKTS * MSS);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_ring_grows_and_base_advances)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    ck_assert_uint_eq(r.cap, SST_RECOVERY_INITIAL_CAP);
    send_n(&r, 0, 5000);
    ck_assert_uint_eq(r.cap, 8192);                  /* doubled from 32 as needed */
    ck_assert_uint_eq(r.base, 1);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 1, 5000, SST_MS(30)), SST_OK);
    ck_assert_uint_eq(c->nacked, 5000);
    ck_assert_uint_eq(r.base, 5001);
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    /* Steady state: 100000 more packets, 20 in flight at a time, lossless: the ring stops
     * growing and base follows the acks. */
    sst_time_t now = SST_MS(30);
    for (int round = 0; round < 5000; round++) {
        uint64_t lo = sst_recovery_next_seq(&r);
        send_n(&r, now, 20);
        now += SST_MS(30);
        ck_assert_int_eq(sst_recovery_on_ack(&r, lo, lo + 19, now), SST_OK);
        ck_assert_uint_eq(r.base, lo + 20);
    }
    ck_assert_uint_eq(r.cap, 8192);
    ck_assert_uint_eq(c->nacked, 105000);
    ck_assert_uint_eq(c->nlost, 0);
    sst_recovery_free(&r);

    /* A fresh connection in the same steady state never grows past its initial ring. */
    memset(c, 0, sizeof(*c));
    setup(&r, c, SST_CC_NEWRENO, 0);
    now = 0;
    for (int round = 0; round < 5000; round++) {
        uint64_t lo = sst_recovery_next_seq(&r);
        send_n(&r, now, 20);
        now += SST_MS(30);
        ck_assert_int_eq(sst_recovery_on_ack(&r, lo, lo + 19, now), SST_OK);
    }
    ck_assert_uint_eq(r.cap, SST_RECOVERY_INITIAL_CAP);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_lost_records_retained_then_retired)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    sst_time_t t = prime_rtt(&r, 0, SST_MS(50));     /* PC duration 480 ms */
    uint64_t lost = sst_recovery_next_seq(&r);
    send_n(&r, t, 4);
    ck_assert_int_eq(sst_recovery_on_ack(&r, lost + 1, lost + 3, t + SST_MS(50)), SST_OK);
    ck_assert_uint_eq(c->lost[lost], 1);
    /* Kept so a late ack can still be recognised as spurious. */
    ck_assert_uint_eq(r.base, lost);
    uint64_t next = sst_recovery_next_seq(&r);
    send_n(&r, t + SST_SEC(1), 1);
    ck_assert_int_eq(sst_recovery_on_ack(&r, next, next, t + SST_SEC(1) + SST_MS(50)), SST_OK);
    ck_assert_uint_eq(r.base, next + 1);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_outstanding_limit)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    r.max_outstanding = 1000;
    r.cc.cwnd = UINT64_MAX / 2;                      /* only the outstanding limit applies */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(sst_recovery_on_sent(&r, 0, MSS, true), SST_OK);
    ck_assert(!sst_recovery_can_send(&r, MSS));
    ck_assert_int_eq(sst_recovery_on_sent(&r, 0, MSS, true), SST_ERR_LIMIT);
    ck_assert_uint_eq(sst_recovery_next_seq(&r), 1001);
    ck_assert_uint_le(r.cap, 1024);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 1, 10, SST_MS(20)), SST_OK);
    ck_assert(sst_recovery_can_send(&r, MSS));
    ck_assert_int_eq(sst_recovery_on_sent(&r, SST_MS(20), MSS, true), SST_OK);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_cwnd_gates_can_send)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    send_n(&r, 0, 10);                               /* initial window: 10 packets */
    ck_assert(!sst_recovery_can_send(&r, MSS));
    ck_assert(sst_recovery_can_send(&r, 0));
    /* Non-eliciting packets (pure acks) are not in flight and not limited by cwnd. */
    ck_assert_int_eq(sst_recovery_on_sent(&r, 0, 60, false), SST_OK);
    ck_assert_uint_eq(r.bytes_in_flight, 10 * MSS);
    ck_assert_int_eq(sst_recovery_on_ack(&r, 1, 1, SST_MS(20)), SST_OK);
    ck_assert(sst_recovery_can_send(&r, MSS));
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_unacked_pure_acks_do_not_pin_the_ring)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    ck_assert_int_eq(sst_recovery_on_sent(&r, 0, 40, false), SST_OK);   /* seq 1, never acked */
    sst_time_t now = SST_MS(1);
    for (int i = 0; i < 100; i++) {
        uint64_t seq = sst_recovery_next_seq(&r);
        send_n(&r, now, 1);
        now += SST_MS(20);
        ck_assert_int_eq(sst_recovery_on_ack(&r, seq, seq, now), SST_OK);
    }
    ck_assert_uint_eq(c->lost[1], 1);                /* given up, reported once */
    ck_assert_uint_eq(r.stat_lost, 0);               /* not an eliciting loss */
    ck_assert_uint_eq(r.base, sst_recovery_next_seq(&r));
    ck_assert_uint_eq(r.cap, SST_RECOVERY_INITIAL_CAP);
    sst_recovery_free(&r);

    /* A pure receiver: only pure acks, which the peer never acknowledges, so no threshold
     * ever resolves them.  After the retention time (3 PTOs, 3.03 s before any RTT sample)
     * they are given up and the ring stays small. */
    memset(c, 0, sizeof(*c));
    setup(&r, c, SST_CC_NEWRENO, 0);
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(sst_recovery_on_sent(&r, SST_MS(10) * i, 40, false), SST_OK);
    ck_assert_uint_le(r.cap, 512);
    ck_assert_uint_ge(c->nlost, 10000 - 512);
    for (uint64_t s = 1; s <= c->nlost; s++)
        ck_assert_uint_eq(c->lost[s], 1);
    ck_assert_uint_eq(r.stat_lost, 0);
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_link_state_transitions)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    sst_time_t t = prime_rtt(&r, 0, SST_MS(50));     /* 3 PTOs = 480 ms < 2 s */
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(30)), SST_LINK_UP);  /* idle: up */
    uint64_t seq = sst_recovery_next_seq(&r);
    send_n(&r, SST_SEC(1), 1);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(3) - 1), SST_LINK_UP);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(3)), SST_LINK_STALLED);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(16) - 1), SST_LINK_STALLED);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(16)), SST_LINK_DOWN);

    /* Following the deadlines reaches both transitions on time, and the deadlines keep
     * moving forward (no busy loop once a state has been reached). */
    bool saw_stall = false, saw_down = false;
    sst_time_t prev = t, d;
    int steps = 0;
    while ((d = sst_recovery_deadline(&r)) != SST_TIME_NEVER && d <= SST_SEC(20)) {
        ck_assert_uint_gt(d, prev);
        ck_assert_int_lt(++steps, 100);
        sst_recovery_on_timeout(&r, d);
        if (d == SST_SEC(3))
            saw_stall = sst_recovery_link_state(&r, d) == SST_LINK_STALLED;
        if (d == SST_SEC(16))
            saw_down = sst_recovery_link_state(&r, d) == SST_LINK_DOWN;
        prev = d;
    }
    ck_assert(saw_stall);
    ck_assert(saw_down);
    /* Ack progress (a probe sent 50 ms earlier, so the RTT estimate stays at 50 ms): up
     * again at once. */
    uint64_t probe = sst_recovery_next_seq(&r);
    send_n(&r, SST_SEC(21) - SST_MS(50), 1);
    ck_assert_int_eq(sst_recovery_on_ack(&r, probe, probe, SST_SEC(21)), SST_OK);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(21)), SST_LINK_UP);
    ck_assert_uint_eq(c->lost[seq], 1);               /* the first one, by time threshold */
    /* A later silence is reported again: the stall deadline is armed afresh. */
    send_n(&r, SST_SEC(22), 1);
    saw_stall = false;
    prev = SST_SEC(22);
    steps = 0;
    while ((d = sst_recovery_deadline(&r)) <= SST_SEC(24)) {
        ck_assert_uint_gt(d, prev);
        ck_assert_int_lt(++steps, 100);
        sst_recovery_on_timeout(&r, d);
        if (d == SST_SEC(24))
            saw_stall = sst_recovery_link_state(&r, d) == SST_LINK_STALLED;
        prev = d;
    }
    ck_assert(saw_stall);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

START_TEST(test_recovery_stall_time_scales_with_rtt)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_NEWRENO, 0);
    /* A 1 s path: PTO = 1000 + 2000 + 10 ms, so stalled only after 3 PTOs = 9.03 s. */
    prime_rtt(&r, 0, SST_SEC(1));
    send_n(&r, SST_SEC(2), 1);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(2) + SST_MS(9029)), SST_LINK_UP);
    ck_assert_int_eq(sst_recovery_link_state(&r, SST_SEC(2) + SST_MS(9030)), SST_LINK_STALLED);
    sst_recovery_free(&r);
    free(c);
}
END_TEST

/* A virtual link: every 7th transmission is dropped, the rest are acked individually one RTT
 * later.  The sender sends whenever cwnd allows and follows the timer.  Every sequence number
 * ends with exactly one outcome, in-flight accounting returns to zero, memory stays small. */
START_TEST(test_recovery_virtual_link_exactly_one_outcome)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, _i == 0 ? SST_CC_NEWRENO : SST_CC_CUBIC, 0);
    enum { N = 20000 };
    static sst_time_t arrive[N + 2];
    sst_time_t now = 0, rtt = SST_MS(40);
    uint64_t next_arrival = 1, total = N;
    for (int events = 0;; events++) {
        ck_assert_int_lt(events, 10 * N);
        while (sst_recovery_next_seq(&r) <= total && sst_recovery_can_send(&r, MSS)) {
            uint64_t seq = sst_recovery_next_seq(&r);
            ck_assert_int_eq(sst_recovery_on_sent(&r, now, MSS, true), SST_OK);
            arrive[seq] = seq % 7 == 0 ? SST_TIME_NEVER : now + rtt;
        }
        /* Next event: an arrival or the recovery deadline. */
        while (next_arrival < sst_recovery_next_seq(&r) && arrive[next_arrival] == SST_TIME_NEVER)
            next_arrival++;
        sst_time_t ta = next_arrival < sst_recovery_next_seq(&r) ? arrive[next_arrival] : SST_TIME_NEVER;
        sst_time_t td = sst_recovery_deadline(&r);
        if (ta == SST_TIME_NEVER && td == SST_TIME_NEVER)
            break;
        if (ta <= td) {
            now = ta;
            ck_assert_int_eq(sst_recovery_on_ack(&r, next_arrival, next_arrival, now), SST_OK);
            next_arrival++;
        } else {
            now = td;
            unsigned probes = sst_recovery_on_timeout(&r, now);
            for (unsigned i = 0; i < probes && sst_recovery_next_seq(&r) <= total; i++) {
                uint64_t seq = sst_recovery_next_seq(&r);
                ck_assert_int_eq(sst_recovery_on_sent(&r, now, MSS, true), SST_OK);
                arrive[seq] = seq % 7 == 0 ? SST_TIME_NEVER : now + rtt;
            }
        }
    }
    for (uint64_t s = 1; s <= total; s++) {
        ck_assert_msg(c->acked[s] + c->lost[s] == 1, "seq %llu acked %u lost %u",
                      (unsigned long long)s, c->acked[s], c->lost[s]);
        ck_assert_uint_eq(c->lost[s], s % 7 == 0);
    }
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    ck_assert_uint_eq(r.stat_spurious, 0);
    ck_assert_uint_le(r.cap, 1024);
    /* 14% loss keeps the window small but the transfer finishes in bounded virtual time. */
    ck_assert_uint_lt(now, SST_SEC(600));
    sst_recovery_free(&r);
    free(c);
}
END_TEST

/* An idle connection gives its ring back (sst_recovery_trim) only with nothing ack-eliciting
 * outstanding; pure acks left over are given up as lost; the next send allocates a ring again
 * and the connection carries on (acks, losses) as before. */
START_TEST(test_recovery_trim_when_idle)
{
    struct sst_recovery r;
    struct rec *c = rec_new();
    setup(&r, c, SST_CC_CUBIC, 0);
    sst_time_t now = prime_rtt(&r, 0, SST_MS(20));
    uint64_t lo = sst_recovery_next_seq(&r);
    send_n(&r, now, 40);                             /* grows past the initial ring */
    ck_assert_uint_gt(r.cap, SST_RECOVERY_INITIAL_CAP);
    ck_assert(!sst_recovery_trim(&r, now));          /* 40 packets in flight: kept */
    ck_assert_ptr_nonnull(r.ring);
    now += SST_MS(20);
    ck_assert_int_eq(sst_recovery_on_ack(&r, lo, lo + 39, now), SST_OK);
    uint64_t pure = sst_recovery_next_seq(&r);
    ck_assert_int_eq(sst_recovery_on_sent(&r, now, 40, false), SST_OK);   /* a pure ack */
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    uint64_t lost_before = c->nlost;
    ck_assert(sst_recovery_trim(&r, now));
    ck_assert_ptr_null(r.ring);
    ck_assert_uint_eq(r.cap, 0);
    ck_assert_uint_eq(c->lost[pure], 1);             /* the pure ack was given up */
    ck_assert_uint_eq(c->nlost, lost_before + 1);
    ck_assert_uint_eq(r.stat_lost, 0);               /* no congestion signal */
    ck_assert(sst_recovery_trim(&r, now));           /* again: nothing to do */

    /* Traffic again: a fresh ring; acks and a loss are handled as before. */
    lo = sst_recovery_next_seq(&r);
    send_n(&r, now, 10);
    ck_assert_uint_eq(r.cap, SST_RECOVERY_INITIAL_CAP);
    now += SST_MS(20);
    ck_assert_int_eq(sst_recovery_on_ack(&r, lo + 1, lo + 9, now), SST_OK);   /* lo is missing */
    ck_assert_uint_eq(c->lost[lo], 1);               /* 3 later packets acked: declared lost */
    ck_assert_uint_eq(c->acked[lo + 9], 1);
    ck_assert_uint_eq(r.bytes_in_flight, 0);
    sst_recovery_free(&r);
    free(c);
}
END_TEST


static Suite *recovery_suite(void)
{
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_recovery_init_state);
    tcase_add_test(tc, test_recovery_ack_range_calls_back_in_order_and_samples_rtt);
    tcase_add_test(tc, test_recovery_ranges_naming_unsent_packets_rejected);
    tcase_add_test(tc, test_recovery_packet_threshold_loss);
    tcase_add_test(tc, test_recovery_time_threshold_loss_via_timer);
    tcase_add_test(tc, test_recovery_pto_fires_and_backs_off);
    tcase_add_test(tc, test_recovery_spurious_loss_counted_not_acked);
    tcase_add_loop_test(tc, test_recovery_persistent_congestion, 0, 2);
    tcase_add_test(tc, test_recovery_short_loss_run_is_not_persistent);
    tcase_add_test(tc, test_recovery_ack_in_the_middle_breaks_persistent_run);
    tcase_add_test(tc, test_recovery_no_persistent_congestion_before_first_rtt_sample);
    tcase_add_test(tc, test_recovery_ring_grows_and_base_advances);
    tcase_add_test(tc, test_recovery_lost_records_retained_then_retired);
    tcase_add_test(tc, test_recovery_outstanding_limit);
    tcase_add_test(tc, test_recovery_cwnd_gates_can_send);
    tcase_add_test(tc, test_recovery_unacked_pure_acks_do_not_pin_the_ring);
    tcase_add_test(tc, test_recovery_link_state_transitions);
    tcase_add_test(tc, test_recovery_stall_time_scales_with_rtt);
    tcase_add_test(tc, test_recovery_trim_when_idle);
    tcase_add_loop_test(tc, test_recovery_virtual_link_exactly_one_outcome, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(recovery_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
