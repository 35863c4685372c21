/* Delivery-rate sampling per acknowledgment (draft-cheng-iccrg-delivery-rate-estimation §3). */
#include <string.h>

#include "delivery.h"

void sst_delivery_init(struct sst_delivery *d, sst_time_t now)
{
    memset(d, 0, sizeof(*d));
    d->delivered_time = now;
    d->first_sent_time = now;
    d->newest_sent = SST_TIME_NEVER;
}

void sst_delivery_on_sent(struct sst_delivery *d, struct sst_delivery_pkt *p, sst_time_t now,
                          uint64_t in_flight)
{
    /* Draft §3.2: after an idle period the interval must not include the idle time, so both
     * the send and the ack interval start with this packet. */
    if (in_flight == 0) {
        d->first_sent_time = now;
        d->delivered_time = now;
    }
    p->delivered = d->delivered;
    p->delivered_time = d->delivered_time;
    p->first_sent_time = d->first_sent_time;
    p->app_limited = d->app_limited != 0;
}

void sst_delivery_on_app_limited(struct sst_delivery *d, uint64_t in_flight)
{
    /* Draft §3.4: the period ends once everything now in flight is delivered; 1 keeps the mark
     * non-zero on an empty connection. */
    uint64_t mark = d->delivered + in_flight;
    d->app_limited = mark > 0 ? mark : 1;
}

void sst_delivery_ack_begin(struct sst_delivery *d)
{
    d->has_data = false;
    d->newest_sent = SST_TIME_NEVER;
    d->acked = 0;
}

void sst_delivery_on_acked(struct sst_delivery *d, const struct sst_delivery_pkt *p,
                           uint32_t bytes, sst_time_t sent, sst_time_t now)
{
    d->delivered += bytes;
    d->delivered_time = now;
    d->acked += bytes;
    /* The newest packet (latest send; ties go to the later sequence number, which arrives
     * here later) spans the most recent interval, so it defines the sample. */
    if (!d->has_data || sent >= d->newest_sent) {
        d->has_data = true;
        d->newest = *p;
        d->newest_sent = sent;
        /* The next packets' send interval starts at this one's send time. */
        d->first_sent_time = sent;
    }
}

void sst_delivery_on_lost(struct sst_delivery *d, uint32_t bytes)
{
    d->lost += bytes;
}

void sst_delivery_generate(struct sst_delivery *d, sst_time_t now, sst_time_t min_rtt,
                           struct sst_rate_sample *rs)
{
    memset(rs, 0, sizeof(*rs));
    rs->delivered_total = d->delivered;
    rs->acked = d->acked;
    rs->lost = d->lost - d->lost_reported;
    d->lost_reported = d->lost;
    rs->rtt = SST_TIME_NEVER;
    rs->newest_sent = SST_TIME_NEVER;
    /* Draft §3.4: the app-limited period is over once its bubble has been delivered. */
    if (d->app_limited != 0 && d->delivered > d->app_limited)
        d->app_limited = 0;
    if (!d->has_data)
        return;
    const struct sst_delivery_pkt *p = &d->newest;
    rs->prior_delivered = p->delivered;
    rs->app_limited = p->app_limited;
    rs->newest_sent = d->newest_sent;
    rs->rtt = now >= d->newest_sent ? now - d->newest_sent : 0;
    rs->delivered = d->delivered - p->delivered;
    sst_time_t send_elapsed = d->newest_sent - p->first_sent_time;
    sst_time_t ack_elapsed = d->delivered_time - p->delivered_time;
    /* Draft §3.3: the slower of the send and ack rates; acks can be compressed, and a sender
     * can burst, but neither can make the path faster than the slower of the two. */
    rs->interval = SST_MAX(send_elapsed, ack_elapsed);
    if (rs->interval == 0 || rs->interval < min_rtt)
        return;
    rs->bw = (uint64_t)((double)rs->delivered * 1e9 / (double)rs->interval);
    rs->valid = true;
}
