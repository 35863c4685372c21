/* Delivery-rate sampling: how fast the path delivered data, measured per acknowledgment
 * (draft-cheng-iccrg-delivery-rate-estimation), the bandwidth input of model-based congestion
 * control (BBR). */
#ifndef SST_DELIVERY_H
#define SST_DELIVERY_H

#include "types.h"

/* Snapshot of the connection's delivery state taken when a packet is sent, kept with the
 * sent-packet record (recovery.h) until the packet is acked or lost. */
struct sst_delivery_pkt {
    uint64_t delivered;          /* C.delivered when the packet was sent */
    sst_time_t delivered_time;   /* C.delivered_time when the packet was sent */
    sst_time_t first_sent_time;  /* send time of the first packet of its flight */
    bool app_limited;            /* sent while the application left the pipe underused */
};

/* One rate sample, built from every packet newly acked by one acknowledgment. */
struct sst_rate_sample {
    bool valid;                  /* delivered/interval give a usable rate (bw) */
    bool app_limited;            /* the newest acked packet was sent app-limited */
    uint64_t bw;                 /* bytes per second; 0 when !valid */
    uint64_t delivered;          /* bytes delivered over the interval */
    sst_time_t interval;         /* max(send_elapsed, ack_elapsed) */
    uint64_t prior_delivered;    /* C.delivered when the newest acked packet was sent */
    uint64_t delivered_total;    /* C.delivered now (after this ack) */
    uint64_t acked;              /* bytes newly acked by this acknowledgment */
    uint64_t lost;               /* bytes declared lost since the previous sample */
    sst_time_t rtt;              /* now - send time of the newest acked packet; NEVER: none */
    sst_time_t newest_sent;      /* send time of the newest acked packet; NEVER: none */
};

/* The connection's delivery counters (draft §3.1 "C.*") and the sample being built. */
struct sst_delivery {
    uint64_t delivered;          /* total bytes acked (ack-eliciting packets only) */
    sst_time_t delivered_time;   /* when `delivered` last grew */
    sst_time_t first_sent_time;  /* send time of the newest packet acked, or of the first
                                  * packet sent after an idle period */
    uint64_t app_limited;        /* 0, or the `delivered` mark that ends the app-limited
                                  * period (samples before it may understate the path) */
    uint64_t lost;               /* total bytes declared lost */
    uint64_t lost_reported;      /* `lost` at the previous sample */
    /* the sample under construction (reset by sst_delivery_ack_begin) */
    bool has_data;
    struct sst_delivery_pkt newest;  /* snapshot of the newest packet acked so far */
    sst_time_t newest_sent;
    uint64_t acked;
};

void sst_delivery_init(struct sst_delivery *d, sst_time_t now);
/* An ack-eliciting packet is being sent at `now` with `in_flight` bytes already outstanding:
 * fills its snapshot *p.  An empty pipe restarts the send and ack clocks (draft §3.2). */
void sst_delivery_on_sent(struct sst_delivery *d, struct sst_delivery_pkt *p, sst_time_t now,
                          uint64_t in_flight);
/* The sender has nothing to send although cwnd and pacing would allow it: samples taken until
 * the data in flight now is delivered are marked app-limited (draft §3.4).  Call from the
 * layer that knows (the channel, when its upper layer has nothing to fill). */
void sst_delivery_on_app_limited(struct sst_delivery *d, uint64_t in_flight);
/* Starts collecting one acknowledgment's packets. */
void sst_delivery_ack_begin(struct sst_delivery *d);
/* An ack-eliciting packet of `bytes`, sent at `sent`, is newly acknowledged (draft §3.3
 * UpdateRateSample). */
void sst_delivery_on_acked(struct sst_delivery *d, const struct sst_delivery_pkt *p,
                           uint32_t bytes, sst_time_t sent, sst_time_t now);
/* An ack-eliciting packet of `bytes` was declared lost. */
void sst_delivery_on_lost(struct sst_delivery *d, uint32_t bytes);
/* Finishes the acknowledgment's sample into *rs (draft §3.3 GenerateRateSample).  An interval
 * shorter than min_rtt (ack compression, stretched acks) gives an invalid sample: such a rate
 * would exceed what the path can carry.  min_rtt 0 = unknown (no check). */
void sst_delivery_generate(struct sst_delivery *d, sst_time_t now, sst_time_t min_rtt,
                           struct sst_rate_sample *rs);

#endif
