/* Unit tests for the channel-layer codecs (core/packet.c): the 8-byte channel header and the Ack
 * body, including seeded fuzzing of every decoder. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "packet.h"
#include "seq.h"
#include "wire.h"

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- channel header -------------------------------------------------------------------- */

START_TEST(test_packet_hdr_layout)
{
    struct sst_chan_hdr h = { .chan_id = 0xab, .tsn24 = 0x123456, .ack_ct = 7, .asn24 = 0x89abcd };
    uint8_t out[SST_CHAN_HDR_LEN];
    sst_chan_hdr_encode(out, &h);
    static const uint8_t want[] = { 0xab, 0x12, 0x34, 0x56, 0x07, 0x89, 0xab, 0xcd };
    ck_assert_mem_eq(out, want, sizeof want);
}
END_TEST

START_TEST(test_packet_hdr_roundtrip)
{
    uint64_t s = 0x5eed0301;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = rng_next(&s);
        struct sst_chan_hdr h = {
            .chan_id = (uint8_t)v,
            .tsn24 = (uint32_t)(v >> 8) & SST_SEQ_WIRE_MASK,
            .ack_ct = (uint8_t)((v >> 32) & 0x0f),
            .asn24 = (uint32_t)(v >> 36) & SST_SEQ_WIRE_MASK,
        };
        uint8_t buf[SST_CHAN_HDR_LEN + 3] = { 0 };
        sst_chan_hdr_encode(buf, &h);
        struct sst_chan_hdr d;
        ck_assert_int_eq(sst_chan_hdr_decode(&d, buf, sizeof buf), SST_OK);
        ck_assert_uint_eq(d.chan_id, h.chan_id);
        ck_assert_uint_eq(d.tsn24, h.tsn24);
        ck_assert_uint_eq(d.ack_ct, h.ack_ct);
        ck_assert_uint_eq(d.asn24, h.asn24);
    }
}
END_TEST

START_TEST(test_packet_hdr_encode_masks_and_clamps)
{
    struct sst_chan_hdr h = { .chan_id = 1, .tsn24 = 0x1123456, .ack_ct = 20, .asn24 = 0xff000001 };
    uint8_t out[SST_CHAN_HDR_LEN];
    sst_chan_hdr_encode(out, &h);
    static const uint8_t want[] = { 0x01, 0x12, 0x34, 0x56, 0x0f, 0x00, 0x00, 0x01 };
    ck_assert_mem_eq(out, want, sizeof want);
}
END_TEST

START_TEST(test_packet_hdr_rejects_runt)
{
    uint8_t buf[SST_CHAN_HDR_LEN] = { 1, 0, 0, 1, 0, 0, 0, 0 };
    struct sst_chan_hdr d;
    for (size_t len = 0; len < SST_CHAN_HDR_LEN; len++)
        ck_assert_int_eq(sst_chan_hdr_decode(&d, buf, len), SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_chan_hdr_decode(&d, buf, SST_CHAN_HDR_LEN), SST_OK);
}
END_TEST

START_TEST(test_packet_hdr_rejects_reserved_bits)
{
    uint8_t buf[SST_CHAN_HDR_LEN] = { 1, 0, 0, 1, 0, 0, 0, 0 };
    struct sst_chan_hdr d;
    for (unsigned hi = 1; hi < 16; hi++) {
        buf[4] = (uint8_t)(hi << 4 | 0x3);
        ck_assert_int_eq(sst_chan_hdr_decode(&d, buf, sizeof buf), SST_ERR_MALFORMED);
    }
}
END_TEST

/* ---- Ack body ---------------------------------------------------------------------------- */

START_TEST(test_packet_ack_body_layout)
{
    const struct sst_ack_range r[] = { { 100, 110 }, { 50, 60 }, { 10, 10 } };
    uint8_t out[64];
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, r, 3), 16);
    static const uint8_t want[] = { 3,
                                    0x00, 0x00, 0x6e, 0x00, 0x0a,
                                    0x00, 0x00, 0x3c, 0x00, 0x0a,
                                    0x00, 0x00, 0x0a, 0x00, 0x00 };
    ck_assert_mem_eq(out, want, sizeof want);
    struct sst_ack_range d[SST_ACK_BODY_MAX_RANGES];
    ck_assert_int_eq(sst_ack_body_decode(out, 16, 120, d, SST_ACK_BODY_MAX_RANGES), 3);
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_uint_eq(d[i].lo, r[i].lo);
        ck_assert_uint_eq(d[i].hi, r[i].hi);
    }
}
END_TEST

START_TEST(test_packet_ack_body_empty)
{
    uint8_t out[4];
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, NULL, 0), 1);
    ck_assert_uint_eq(out[0], 0);
    struct sst_ack_range d[1];
    ck_assert_int_eq(sst_ack_body_decode(out, 1, 5, d, 1), 0);
    ck_assert_uint_eq(sst_ack_body_encode(out, 0, NULL, 0), 0);
}
END_TEST

START_TEST(test_packet_ack_body_across_24bit_boundary)
{
    const struct sst_ack_range r[] = { { 0x1000003, 0x1000005 }, { 0xfffff0, 0xffffff } };
    uint8_t out[16];
    size_t len = sst_ack_body_encode(out, sizeof out, r, 2);
    ck_assert_uint_eq(len, 11);
    struct sst_ack_range d[2];
    /* ref = the header ASN, a little above the body's ranges */
    ck_assert_int_eq(sst_ack_body_decode(out, len, 0x1000010, d, 2), 2);
    ck_assert_uint_eq(d[0].lo, 0x1000003);
    ck_assert_uint_eq(d[0].hi, 0x1000005);
    ck_assert_uint_eq(d[1].lo, 0xfffff0);
    ck_assert_uint_eq(d[1].hi, 0xffffff);
}
END_TEST

START_TEST(test_packet_ack_body_encode_stops_when_full)
{
    const struct sst_ack_range r[] = { { 100, 110 }, { 50, 60 }, { 10, 10 } };
    uint8_t out[16];
    memset(out, 0xee, sizeof out);
    ck_assert_uint_eq(sst_ack_body_encode(out, 10, r, 3), 6); /* room for one range only */
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(out[6], 0xee);
    ck_assert_uint_eq(sst_ack_body_encode(out, 5, r, 3), 1); /* no range fits */
    ck_assert_uint_eq(out[0], 0);
}
END_TEST

START_TEST(test_packet_ack_body_encode_stops_at_bad_range)
{
    uint8_t out[64];
    struct sst_ack_range d[SST_ACK_BODY_MAX_RANGES];
    /* adjacent to the previous (should have been merged) */
    const struct sst_ack_range adj[] = { { 100, 110 }, { 50, 99 }, { 10, 10 } };
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, adj, 3), 6);
    /* overlapping, and out of order */
    const struct sst_ack_range ovl[] = { { 100, 110 }, { 50, 105 } };
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, ovl, 2), 6);
    const struct sst_ack_range up[] = { { 100, 110 }, { 200, 210 } };
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, up, 2), 6);
    /* lo > hi, and a range containing packet 0 */
    const struct sst_ack_range inv[] = { { 100, 110 }, { 60, 50 } };
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, inv, 2), 6);
    const struct sst_ack_range zero[] = { { 100, 110 }, { 0, 5 } };
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, zero, 2), 6);
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, zero + 1, 1), 1);
    /* too far below the newest for the decoder to extrapolate */
    uint64_t top = 10 * SST_SEQ_MAX_OUTSTANDING;
    const struct sst_ack_range far[] = { { top, top }, { top - SST_SEQ_MAX_OUTSTANDING, top - 5 },
                                         { 5, top - SST_SEQ_MAX_OUTSTANDING - 1 } };
    size_t len = sst_ack_body_encode(out, sizeof out, far, 3);
    ck_assert_uint_eq(len, 11);
    ck_assert_int_eq(sst_ack_body_decode(out, len, top, d, SST_ACK_BODY_MAX_RANGES), 2);
    ck_assert_uint_eq(d[1].hi, top - 5);
}
END_TEST

START_TEST(test_packet_ack_body_encode_caps_count_and_length)
{
    struct sst_ack_range r[20];
    for (unsigned i = 0; i < 20; i++) {
        r[i].hi = 1000 - 10 * i;
        r[i].lo = r[i].hi - 3;
    }
    uint8_t out[256];
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, r, 20),
                      1 + SST_ACK_BODY_MAX_RANGES * SST_ACK_RANGE_WIRE_LEN);
    ck_assert_uint_eq(out[0], SST_ACK_BODY_MAX_RANGES);

    const struct sst_ack_range lng[] = { { 10, 1000000 } };
    ck_assert_uint_eq(sst_ack_body_encode(out, sizeof out, lng, 1), 6);
    struct sst_ack_range d[1];
    ck_assert_int_eq(sst_ack_body_decode(out, 6, 1000000, d, 1), 1);
    ck_assert_uint_eq(d[0].hi, 1000000);
    ck_assert_uint_eq(d[0].lo, 1000000 - SST_ACK_RANGE_MAX_LEN + 1); /* newest 65536 packets */
}
END_TEST

/* Builds a body by hand: count, then (hi24, len16) pairs. */
static size_t raw_body(uint8_t *out, unsigned count, const uint32_t (*pairs)[2], unsigned n)
{
    out[0] = (uint8_t)count;
    for (unsigned i = 0; i < n; i++) {
        sst_put24(out + 1 + 5 * i, pairs[i][0]);
        sst_put16(out + 4 + 5 * i, (uint16_t)pairs[i][1]);
    }
    return 1 + 5 * (size_t)n;
}

START_TEST(test_packet_ack_body_decode_rejects)
{
    uint8_t b[128] = { 0 };
    struct sst_ack_range d[SST_ACK_BODY_MAX_RANGES];
    const unsigned M = SST_ACK_BODY_MAX_RANGES;
    ck_assert_int_eq(sst_ack_body_decode(b, 0, 100, d, M), SST_ERR_MALFORMED); /* empty */

    static const uint32_t ok[][2] = { { 90, 5 }, { 50, 0 } };
    size_t len = raw_body(b, 2, ok, 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len - 1, 100, d, M), SST_ERR_MALFORMED); /* short */
    b[len] = 0;
    ck_assert_int_eq(sst_ack_body_decode(b, len + 1, 100, d, M), SST_ERR_MALFORMED); /* trailing */
    b[0] = 3;
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), SST_ERR_MALFORMED); /* count > data */

    /* more ranges than allowed, with a matching length */
    uint32_t many[17][2];
    for (unsigned i = 0; i < 17; i++) {
        many[i][0] = 1000 - 10 * i;
        many[i][1] = 1;
    }
    len = raw_body(b, 17, many, 17);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 2000, d, M), SST_ERR_MALFORMED);
    len = raw_body(b, 16, many, 16);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 2000, d, M), 16);

    static const uint32_t above[][2] = { { 101, 0 } };
    len = raw_body(b, 1, above, 1);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), SST_ERR_MALFORMED); /* above ref */
    ck_assert_int_eq(sst_ack_body_decode(b, len, 101, d, M), 1);

    static const uint32_t to_zero[][2] = { { 5, 5 } };
    len = raw_body(b, 1, to_zero, 1);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), SST_ERR_MALFORMED); /* covers 0 */
    static const uint32_t to_one[][2] = { { 5, 4 } };
    len = raw_body(b, 1, to_one, 1);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), 1);

    static const uint32_t adjacent[][2] = { { 90, 5 }, { 84, 0 } };
    len = raw_body(b, 2, adjacent, 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), SST_ERR_MALFORMED);
    static const uint32_t gap1[][2] = { { 90, 5 }, { 83, 0 } };
    len = raw_body(b, 2, gap1, 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), 2);
    static const uint32_t overlap[][2] = { { 90, 5 }, { 87, 0 } };
    len = raw_body(b, 2, overlap, 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), SST_ERR_MALFORMED);
    static const uint32_t ascending[][2] = { { 50, 0 }, { 90, 5 } };
    len = raw_body(b, 2, ascending, 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len, 100, d, M), SST_ERR_MALFORMED);

    /* a second range more than the outstanding bound below the first */
    uint64_t ref = 3 * SST_SEQ_MAX_OUTSTANDING;
    uint32_t far[][2] = { { (uint32_t)(ref & SST_SEQ_WIRE_MASK), 0 },
                          { (uint32_t)((ref - SST_SEQ_MAX_OUTSTANDING - 1) & SST_SEQ_WIRE_MASK), 0 } };
    len = raw_body(b, 2, far, 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len, ref, d, M), SST_ERR_MALFORMED);
    far[1][0] = (uint32_t)((ref - SST_SEQ_MAX_OUTSTANDING) & SST_SEQ_WIRE_MASK);
    len = raw_body(b, 2, far, 2);
    ck_assert_int_eq(sst_ack_body_decode(b, len, ref, d, M), 2);
}
END_TEST

START_TEST(test_packet_ack_body_decode_respects_max)
{
    const struct sst_ack_range r[] = { { 100, 110 }, { 50, 60 }, { 10, 10 } };
    uint8_t out[64];
    size_t len = sst_ack_body_encode(out, sizeof out, r, 3);
    struct sst_ack_range d[3];
    memset(d, 0xee, sizeof d);
    ck_assert_int_eq(sst_ack_body_decode(out, len, 200, d, 2), 2);
    ck_assert_uint_eq(d[1].hi, 60);
    ck_assert_uint_eq(d[2].hi, 0xeeeeeeeeeeeeeeeeull); /* nothing written past max */
    /* a bad range beyond max is still rejected: validation covers the whole body */
    out[len - 1] = 0xff;
    ck_assert_int_eq(sst_ack_body_decode(out, len, 200, d, 2), SST_ERR_MALFORMED);
}
END_TEST

/* Random valid range lists: everything the encoder writes decodes to what it encoded, for any
 * ref within the documented bound. */
START_TEST(test_packet_ack_body_random_roundtrip)
{
    uint64_t s = 0x5eed0302;
    for (int it = 0; it < 3000; it++) {
        struct sst_ack_range r[SST_ACK_BODY_MAX_RANGES];
        unsigned n = (unsigned)(rng_next(&s) % (SST_ACK_BODY_MAX_RANGES + 1));
        uint64_t hi = SST_SEQ_MAX_OUTSTANDING + (rng_next(&s) >> 4);
        uint64_t floor = hi - SST_SEQ_MAX_OUTSTANDING;
        unsigned k = 0;
        for (; k < n; k++) {
            uint64_t span = rng_next(&s) % (it % 2 ? 40 : 70000);
            if (hi < floor + span + 1)
                break;
            r[k].hi = hi;
            r[k].lo = hi - span;
            uint64_t gap = 2 + rng_next(&s) % (it % 3 ? 20 : 300000);
            if (r[k].lo < floor + gap)
                { k++; break; }
            hi = r[k].lo - gap;
        }
        uint8_t out[1 + SST_ACK_BODY_MAX_RANGES * SST_ACK_RANGE_WIRE_LEN];
        size_t len = sst_ack_body_encode(out, sizeof out, r, k);
        ck_assert_uint_eq(len, 1 + k * SST_ACK_RANGE_WIRE_LEN);
        if (k == 0)
            continue;
        uint64_t slack = (1u << 23) - SST_SEQ_MAX_OUTSTANDING;
        uint64_t ref = r[0].hi + rng_next(&s) % slack;
        struct sst_ack_range d[SST_ACK_BODY_MAX_RANGES];
        int got = sst_ack_body_decode(out, len, ref, d, SST_ACK_BODY_MAX_RANGES);
        ck_assert_msg(got == (int)k, "seed 0x5eed0302 iter %d: decode %d want %u", it, got, k);
        for (unsigned i = 0; i < k; i++) {
            uint64_t lo = r[i].hi - r[i].lo >= SST_ACK_RANGE_MAX_LEN
                              ? r[i].hi - SST_ACK_RANGE_MAX_LEN + 1 : r[i].lo;
            ck_assert_msg(d[i].hi == r[i].hi && d[i].lo == lo, "seed 0x5eed0302 iter %d range %u",
                          it, i);
        }
    }
}
END_TEST

/* ---- fuzzing --------------------------------------------------------------------------- */

/* Random bytes into the header decoder: accepted exactly when long enough with a clear reserved
 * nibble, and then the encoder reproduces the first 8 bytes. */
START_TEST(test_packet_fuzz_chan_hdr)
{
    uint64_t s = 0x5eed0401;
    for (int it = 0; it < 5000; it++) {
        uint8_t buf[32];
        size_t len = (size_t)(rng_next(&s) % sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next(&s);
        struct sst_chan_hdr h;
        int rc = sst_chan_hdr_decode(&h, buf, len);
        bool valid = len >= SST_CHAN_HDR_LEN && (buf[4] >> 4) == 0;
        ck_assert_msg((rc == SST_OK) == valid && (rc == SST_OK || rc == SST_ERR_MALFORMED),
                      "seed 0x5eed0401 iter %d: rc %d", it, rc);
        if (rc == SST_OK) {
            uint8_t re[SST_CHAN_HDR_LEN];
            sst_chan_hdr_encode(re, &h);
            ck_assert_msg(memcmp(re, buf, sizeof re) == 0, "seed 0x5eed0401 iter %d", it);
        }
    }
}
END_TEST

/* Checks one decode result for consistency; returns true if accepted. */
static bool check_body(const uint8_t *buf, size_t len, uint64_t ref, uint64_t seed, int it)
{
    struct sst_ack_range d[SST_ACK_BODY_MAX_RANGES + 1];
    memset(d, 0xee, sizeof d);
    int rc = sst_ack_body_decode(buf, len, ref, d, SST_ACK_BODY_MAX_RANGES);
    ck_assert_msg(rc == SST_ERR_MALFORMED || (rc >= 0 && rc <= SST_ACK_BODY_MAX_RANGES),
                  "seed %llx iter %d: rc %d", (unsigned long long)seed, it, rc);
    struct sst_ack_range d2[SST_ACK_BODY_MAX_RANGES];
    ck_assert_int_eq(sst_ack_body_decode(buf, len, ref, d2, SST_ACK_BODY_MAX_RANGES), rc);
    if (rc < 0)
        return false;
    ck_assert_uint_eq(d[SST_ACK_BODY_MAX_RANGES].hi, 0xeeeeeeeeeeeeeeeeull);
    ck_assert_uint_eq(len, 1 + (size_t)rc * SST_ACK_RANGE_WIRE_LEN);
    for (int i = 0; i < rc; i++) {
        ck_assert(d[i].lo >= 1 && d[i].lo <= d[i].hi && d[i].hi <= ref);
        if (i > 0)
            ck_assert(d[i].hi + 1 < d[i - 1].lo);
    }
    uint8_t re[1 + SST_ACK_BODY_MAX_RANGES * SST_ACK_RANGE_WIRE_LEN];
    size_t relen = sst_ack_body_encode(re, sizeof re, d, (unsigned)rc);
    ck_assert_msg(relen == len && memcmp(re, buf, len) == 0,
                  "seed %llx iter %d: accepted body does not re-encode identically",
                  (unsigned long long)seed, it);
    return true;
}

START_TEST(test_packet_fuzz_ack_body)
{
    const uint64_t seed = 0x5eed0402;
    uint64_t s = seed;
    unsigned accepted = 0, rejected = 0;
    for (int it = 0; it < 5000; it++) {
        uint8_t buf[1 + 18 * SST_ACK_RANGE_WIRE_LEN + 2];
        /* Mostly well-framed lengths with random contents, sometimes arbitrary lengths. */
        unsigned count = (unsigned)(rng_next(&s) % 18);
        size_t len = it % 4 == 0 ? (size_t)(rng_next(&s) % sizeof buf)
                                 : 1 + (size_t)count * SST_ACK_RANGE_WIRE_LEN;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rng_next(&s);
        if (len > 0 && it % 4 != 0)
            buf[0] = (uint8_t)count;
        uint64_t ref = it % 2 ? rng_next(&s) : rng_next(&s) % (1u << 25);
        if (check_body(buf, len, ref, seed, it))
            accepted++;
        else
            rejected++;
    }
    ck_assert_uint_gt(rejected, 0);
    ck_assert_uint_gt(accepted, 0); /* counts 0 and 1 are often valid: both paths ran */
}
END_TEST

/* Valid bodies with one byte flipped: near-valid inputs reach the deeper checks. */
START_TEST(test_packet_fuzz_ack_body_mutated)
{
    const uint64_t seed = 0x5eed0403;
    uint64_t s = seed;
    unsigned accepted = 0, rejected = 0;
    for (int it = 0; it < 5000; it++) {
        struct sst_ack_range r[SST_ACK_BODY_MAX_RANGES];
        unsigned n = 1 + (unsigned)(rng_next(&s) % SST_ACK_BODY_MAX_RANGES);
        uint64_t hi = 100000 + rng_next(&s) % 1000000;
        unsigned k = 0;
        for (; k < n && hi > 100; k++) {
            r[k].hi = hi;
            r[k].lo = hi - rng_next(&s) % 30;
            hi = r[k].lo - 2 - rng_next(&s) % 30;
        }
        uint8_t buf[1 + SST_ACK_BODY_MAX_RANGES * SST_ACK_RANGE_WIRE_LEN];
        size_t len = sst_ack_body_encode(buf, sizeof buf, r, k);
        buf[rng_next(&s) % len] ^= (uint8_t)(1u << (rng_next(&s) % 8));
        if (check_body(buf, len, r[0].hi + rng_next(&s) % 1000, seed, it))
            accepted++;
        else
            rejected++;
    }
    ck_assert_uint_gt(rejected, 0);
    ck_assert_uint_gt(accepted, 0);
}
END_TEST

static Suite *packet_suite(void)
{
    Suite *s = suite_create("packet");
    TCase *tc = tcase_create("chan_hdr");
    tcase_add_test(tc, test_packet_hdr_layout);
    tcase_add_test(tc, test_packet_hdr_roundtrip);
    tcase_add_test(tc, test_packet_hdr_encode_masks_and_clamps);
    tcase_add_test(tc, test_packet_hdr_rejects_runt);
    tcase_add_test(tc, test_packet_hdr_rejects_reserved_bits);
    suite_add_tcase(s, tc);
    tc = tcase_create("ack_body");
    tcase_add_test(tc, test_packet_ack_body_layout);
    tcase_add_test(tc, test_packet_ack_body_empty);
    tcase_add_test(tc, test_packet_ack_body_across_24bit_boundary);
    tcase_add_test(tc, test_packet_ack_body_encode_stops_when_full);
    tcase_add_test(tc, test_packet_ack_body_encode_stops_at_bad_range);
    tcase_add_test(tc, test_packet_ack_body_encode_caps_count_and_length);
    tcase_add_test(tc, test_packet_ack_body_decode_rejects);
    tcase_add_test(tc, test_packet_ack_body_decode_respects_max);
    tcase_add_test(tc, test_packet_ack_body_random_roundtrip);
    suite_add_tcase(s, tc);
    tc = tcase_create("fuzz");
    tcase_add_test(tc, test_packet_fuzz_chan_hdr);
    tcase_add_test(tc, test_packet_fuzz_ack_body);
    tcase_add_test(tc, test_packet_fuzz_ack_body_mutated);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(packet_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
