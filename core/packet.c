/* Channel-layer codecs: the 8-byte channel header (paper §4.1, §4.2) and the Ack packet body. */
#include "err.h"
#include "packet.h"
#include "seq.h"
#include "wire.h"

void sst_chan_hdr_encode(uint8_t out[SST_CHAN_HDR_LEN], const struct sst_chan_hdr *h)
{
    sst_put8(out, h->chan_id);
    sst_put24(out + 1, h->tsn24 & SST_SEQ_WIRE_MASK);
    sst_put8(out + 4, (uint8_t)SST_MIN(h->ack_ct, SST_ACKCT_MAX));
    sst_put24(out + 5, h->asn24 & SST_SEQ_WIRE_MASK);
}

/* Rejecting a set reserved nibble keeps those bits free for a future version (a peer that set
 * them would otherwise be misread silently). */
int sst_chan_hdr_decode(struct sst_chan_hdr *h, const uint8_t *pkt, size_t len)
{
    if (len < SST_CHAN_HDR_LEN)
        return SST_ERR_MALFORMED;
    uint8_t b4 = sst_get8(pkt + 4);
    if (b4 >> 4)
        return SST_ERR_MALFORMED;
    h->chan_id = sst_get8(pkt);
    h->tsn24 = sst_get24(pkt + 1);
    h->ack_ct = b4 & 0x0f;
    h->asn24 = sst_get24(pkt + 5);
    return SST_OK;
}

/* True if `next` may follow `prev` in a body: strictly older with at least one unreceived
 * number between them (adjacent ranges would have been merged by the receiver). */
static bool range_follows(const struct sst_ack_range *prev, const struct sst_ack_range *next)
{
    return prev->lo >= 2 && next->hi <= prev->lo - 2;
}

size_t sst_ack_body_encode(uint8_t *out, size_t cap, const struct sst_ack_range *ranges, unsigned n)
{
    if (cap < 1)
        return 0;
    size_t pos = 1;
    unsigned count = 0;
    struct sst_ack_range prev = { 0, 0 };
    for (unsigned i = 0; i < n && count < SST_ACK_BODY_MAX_RANGES; i++) {
        struct sst_ack_range r = ranges[i];
        if (r.lo == 0 || r.lo > r.hi)
            break;
        if (count > 0 && !range_follows(&prev, &r))
            break;
        if (count > 0 && ranges[0].hi - r.hi > SST_SEQ_MAX_OUTSTANDING)
            break;
        if (cap - pos < SST_ACK_RANGE_WIRE_LEN)
            break;
        if (r.hi - r.lo >= SST_ACK_RANGE_MAX_LEN)
            r.lo = r.hi - (SST_ACK_RANGE_MAX_LEN - 1);
        sst_put24(out + pos, (uint32_t)(r.hi & SST_SEQ_WIRE_MASK));
        sst_put16(out + pos + 3, (uint16_t)(r.hi - r.lo));
        pos += SST_ACK_RANGE_WIRE_LEN;
        prev = r;
        count++;
    }
    sst_put8(out, (uint8_t)count);
    return pos;
}

/* Two phases: the length must match N exactly before any range is read; then each range is
 * decoded and checked against ref and its predecessor. */
int sst_ack_body_decode(const uint8_t *body, size_t len, uint64_t ref,
                        struct sst_ack_range *out, unsigned max)
{
    if (len < 1)
        return SST_ERR_MALFORMED;
    unsigned count = sst_get8(body);
    if (count > SST_ACK_BODY_MAX_RANGES || len != 1 + (size_t)count * SST_ACK_RANGE_WIRE_LEN)
        return SST_ERR_MALFORMED;

    struct sst_ack_range prev = { 0, 0 }, first = { 0, 0 };
    const uint8_t *p = body + 1;
    for (unsigned i = 0; i < count; i++, p += SST_ACK_RANGE_WIRE_LEN) {
        struct sst_ack_range r;
        r.hi = sst_seq_extrapolate(ref, sst_get24(p));
        uint16_t span = sst_get16(p + 3);
        if (r.hi > ref || r.hi <= span)
            return SST_ERR_MALFORMED; /* above the bound, or reaching down to 0 */
        r.lo = r.hi - span;
        if (i == 0)
            first = r;
        else if (!range_follows(&prev, &r) || first.hi - r.hi > SST_SEQ_MAX_OUTSTANDING)
            return SST_ERR_MALFORMED;
        if (i < max)
            out[i] = r;
        prev = r;
    }
    return (int)SST_MIN(count, max);
}
