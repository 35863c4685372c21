/* Round-trip time estimation (RFC 6298 smoothing, RFC 9002 §5 min_rtt and latest_rtt). */
#ifndef SST_RTT_H
#define SST_RTT_H

#include "types.h"

#define SST_RTT_INITIAL SST_MS(333)   /* RFC 9002 §6.2.2 kInitialRtt */
#define SST_GRANULARITY SST_MS(1)     /* RFC 9002 kGranularity */

struct sst_rtt {
    sst_time_t latest, min, smoothed, var;
    bool has_sample;
};

void sst_rtt_init(struct sst_rtt *r);
/* A new sample: the time from sending the newest newly-acked eliciting packet to its ack. */
void sst_rtt_update(struct sst_rtt *r, sst_time_t sample);
/* Probe timeout base: srtt + max(4*rttvar, granularity) + max_ack_delay (RFC 9002 §6.2.1). */
sst_time_t sst_rtt_pto(const struct sst_rtt *r, sst_time_t max_ack_delay);

#endif
