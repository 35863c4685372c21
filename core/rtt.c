/* Round-trip time estimator: RFC 6298 smoothing with RFC 9002 §5 min_rtt/latest_rtt and §6.2 PTO. */
#include "rtt.h"

/* Saturating add: a pathological sample must not wrap the timer arithmetic to a past deadline. */
static sst_time_t sat_add(sst_time_t a, sst_time_t b)
{
    return a > SST_TIME_NEVER - b ? SST_TIME_NEVER : a + b;
}

/* Longest RTT sample taken into account (about 36 years' worth of ns would overflow; 1 day won't). */
#define SST_RTT_SAMPLE_MAX SST_SEC(86400)

static sst_time_t abs_diff(sst_time_t a, sst_time_t b)
{
    return a > b ? a - b : b - a;
}

/* Before the first sample srtt = kInitialRtt and rttvar = kInitialRtt/2 (RFC 9002 §5.3), so the
 * first PTO is 333 + 4*166.5 ms + max_ack_delay, about 1 s, as RFC 6298 §2.1 asks. */
void sst_rtt_init(struct sst_rtt *r)
{
    r->latest = 0;
    r->min = 0;
    r->smoothed = SST_RTT_INITIAL;
    r->var = SST_RTT_INITIAL / 2;
    r->has_sample = false;
}

/* RFC 6298 §2.2/§2.3 (= RFC 9002 §5.3 without the ack-delay adjustment, because our Ack packets
 * carry no ack-delay field; the delayed-ack time is covered by max_ack_delay in the PTO).
 * rttvar is updated with the old srtt, as RFC 6298 §2.3 orders it. */
void sst_rtt_update(struct sst_rtt *r, sst_time_t sample)
{
    /* Bounding the sample keeps 7*srtt and 3*rttvar far from overflow; no real path has an RTT
     * of even one hour, so the clamp never changes a meaningful estimate. */
    if (sample > SST_RTT_SAMPLE_MAX)
        sample = SST_RTT_SAMPLE_MAX;
    r->latest = sample;
    if (!r->has_sample) {
        r->has_sample = true;
        r->min = sample;
        r->smoothed = sample;
        r->var = sample / 2;
        return;
    }
    if (sample < r->min)
        r->min = sample;
    r->var = (3 * r->var + abs_diff(r->smoothed, sample)) / 4;
    r->smoothed = (7 * r->smoothed + sample) / 8;
}

/* RFC 9002 §6.2.1: PTO = smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay.
 * The caller applies the 2^pto_count backoff. */
sst_time_t sst_rtt_pto(const struct sst_rtt *r, sst_time_t max_ack_delay)
{
    sst_time_t var4 = r->var > SST_TIME_NEVER / 4 ? SST_TIME_NEVER : 4 * r->var;
    return sat_add(sat_add(r->smoothed, SST_MAX(var4, SST_GRANULARITY)), max_ack_delay);
}
