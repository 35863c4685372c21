/* Receiver-side ack tracker: remembered ranges of received packets and when an ack is due (paper §4.2.4). */
#include "ackrx.h"
#include "seq.h"

/* Ack at least every second ack-eliciting packet, as TCP does (RFC 1122 §4.2.3.2, paper §4.2.4). */
#define ACK_EVERY_DEFAULT 2

void sst_ackrx_init(struct sst_ackrx *a, sst_time_t max_ack_delay)
{
    a->n = 0;
    a->unacked_eliciting = 0;
    a->ack_deadline = SST_TIME_NEVER;
    a->immediate = false;
    a->max_ack_delay = max_ack_delay;
    a->ack_every = ACK_EVERY_DEFAULT;
}

/* Opens a slot at index i (shifting older ranges back); the oldest range falls off when full,
 * because old ranges matter least: the sender has most likely acked or declared them lost. */
static void insert_at(struct sst_ackrx *a, unsigned i, uint64_t seq)
{
    unsigned last = a->n < SST_ACKRX_RANGES ? a->n : SST_ACKRX_RANGES - 1;
    for (unsigned j = last; j > i; j--)
        a->r[j] = a->r[j - 1];
    a->r[i].lo = a->r[i].hi = seq;
    if (a->n < SST_ACKRX_RANGES)
        a->n++;
}

static void remove_at(struct sst_ackrx *a, unsigned i)
{
    for (unsigned j = i; j + 1 < a->n; j++)
        a->r[j] = a->r[j + 1];
    a->n--;
}

/* Adds seq to the ranges; returns true if it was new. */
static bool record(struct sst_ackrx *a, uint64_t seq)
{
    unsigned i = 0;
    /* Find the first range (newest first) whose lo is at or below seq + 1. */
    while (i < a->n && a->r[i].lo > seq + 1)
        i++;
    if (i == a->n) {
        /* Older than everything remembered (and not adjacent): append if there is room; a
         * number that old is dropped rather than evicting something newer. */
        if (a->n == SST_ACKRX_RANGES)
            return false;
        insert_at(a, i, seq);
        return true;
    }
    struct sst_ack_range *r = &a->r[i];
    if (seq >= r->lo && seq <= r->hi)
        return false; /* duplicate */
    if (seq == r->lo - 1) {
        r->lo = seq;
        /* Filling the last missing number above the next older range merges the two. */
        if (i + 1 < a->n && a->r[i + 1].hi + 1 == seq) {
            r->lo = a->r[i + 1].lo;
            remove_at(a, i + 1);
        }
    } else if (seq == r->hi + 1) {
        /* No merge with r[i-1] is possible: the search guarantees r[i-1].lo > seq + 1. */
        r->hi = seq;
    } else {
        /* seq > r->hi + 1: a new range between r[i-1] (if any) and r[i]. */
        insert_at(a, i, seq);
    }
    return true;
}

/* Forgets ranges the sender can no longer confuse with anything: more than the outstanding bound
 * below the newest.  This also keeps every range a 24-bit extrapolation away from the header
 * ASN, which is what lets Ack bodies carry only 24 bits per range (packet.h). */
static void prune_old(struct sst_ackrx *a)
{
    while (a->n > 1 && a->r[0].hi - a->r[a->n - 1].hi > SST_SEQ_MAX_OUTSTANDING)
        a->n--;
}

/* RFC 9000 §13.2.1: ack at once when an ack-eliciting packet arrives out of order (below the
 * highest seen) or beyond a gap, so the sender learns of loss and reordering within one RTT;
 * otherwise every ack_every packets or after max_ack_delay.  Non-eliciting packets (pure acks)
 * are recorded but never cause an ack, so acks are not acked in a loop. */
void sst_ackrx_on_packet(struct sst_ackrx *a, uint64_t seq, bool ack_eliciting, sst_time_t now)
{
    if (seq == 0)
        return; /* never sent (txseq starts at 1); counts as received from the start */
    bool had_any = a->n > 0;
    uint64_t prev_top = had_any ? a->r[0].hi : 0;
    if (!record(a, seq))
        return;
    prune_old(a);
    if (!ack_eliciting)
        return;
    bool in_order = !had_any ? seq == 1 : seq == prev_top + 1;
    if (!in_order)
        a->immediate = true;
    a->unacked_eliciting++;
    if (a->ack_deadline == SST_TIME_NEVER)
        a->ack_deadline = now > SST_TIME_NEVER - a->max_ack_delay ? SST_TIME_NEVER - 1
                                                                   : now + a->max_ack_delay;
}

bool sst_ackrx_ack_due(const struct sst_ackrx *a, sst_time_t now)
{
    if (a->immediate || a->unacked_eliciting >= a->ack_every)
        return a->n > 0;
    return a->ack_deadline != SST_TIME_NEVER && now >= a->ack_deadline;
}

/* The header range is the newest contiguous run, cut to its newest 16 packets (AckCt is 4 bits).
 * With nothing received it is ASN 0, AckCt 0: packet 0, which is never sent, so it acks nothing. */
void sst_ackrx_header_range(const struct sst_ackrx *a, uint64_t *asn, uint8_t *ack_ct)
{
    if (a->n == 0) {
        *asn = 0;
        *ack_ct = 0;
        return;
    }
    uint64_t run = a->r[0].hi - a->r[0].lo;
    *asn = a->r[0].hi;
    *ack_ct = (uint8_t)(run < 15 ? run : 15);
}

void sst_ackrx_on_ack_sent(struct sst_ackrx *a)
{
    a->unacked_eliciting = 0;
    a->ack_deadline = SST_TIME_NEVER;
    a->immediate = false;
}

unsigned sst_ackrx_ranges(const struct sst_ackrx *a, struct sst_ack_range *out, unsigned max)
{
    unsigned n = a->n < max ? a->n : max;
    for (unsigned i = 0; i < n; i++)
        out[i] = a->r[i];
    return n;
}
