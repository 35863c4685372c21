/* Unit tests for the stream-layer packet codecs (core/stream_wire.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stream_wire.h"

static void roundtrip(const struct sst_spkt *in)
{
    uint8_t buf[256];
    size_t n = sst_spkt_encode(buf, sizeof buf, in);
    ck_assert_uint_gt(n, 0);
    struct sst_spkt out;
    ck_assert_int_eq(sst_spkt_decode(&out, buf, n), 0);
    ck_assert_uint_eq(out.type, in->type);
    ck_assert_uint_eq(out.flags, in->flags);
    ck_assert_uint_eq(out.win, in->win);
    ck_assert_uint_eq(out.lsid, in->lsid);
    ck_assert_uint_eq(out.ref_lsid, in->ref_lsid);
    ck_assert_uint_eq(out.bsn, in->bsn);
    ck_assert_uint_eq(out.dg_id, in->dg_id);
    ck_assert_uint_eq(out.dg_idx, in->dg_idx);
    ck_assert_uint_eq(out.dg_cnt, in->dg_cnt);
    ck_assert(sst_usid_eq(&out.usid, &in->usid));
    ck_assert(sst_usid_eq(&out.parent_usid, &in->parent_usid));
    ck_assert_uint_eq(out.len, in->len);
    if (in->len > 0)
        ck_assert_mem_eq(out.data, in->data, in->len);
}

START_TEST(test_wire_roundtrip_all_types)
{
    static const uint8_t data[] = "hello, structured streams";
    struct sst_spkt p[] = {
        { .type = SST_PT_INIT, .flags = SST_SF_PUSH, .win = 16, .lsid = 7, .ref_lsid = 0, .bsn = 0xfffe,
          .data = data, .len = sizeof data },
        { .type = SST_PT_REPLY, .flags = SST_SF_CLOSE, .win = 31, .lsid = 0xffff, .ref_lsid = 9, .bsn = 3 },
        { .type = SST_PT_DATA, .flags = SST_SF_MARK | SST_SF_PUSH, .win = 0, .lsid = 0, .bsn = 0xdeadbeef,
          .data = data, .len = 5 },
        { .type = SST_PT_DATAGRAM, .flags = SST_DGF_FIRST, .win = 10, .lsid = 4, .dg_id = 0x1234, .dg_idx = 0,
          .dg_cnt = 3, .data = data, .len = 4 },
        { .type = SST_PT_DATAGRAM, .flags = SST_DGF_FIRST | SST_DGF_LAST, .lsid = 4, .dg_cnt = 1 },
        { .type = SST_PT_RESET, .flags = SST_RSTF_ORIENT, .lsid = 77 },
        { .type = SST_PT_ATTACH, .flags = SST_ATTF_SLOT, .lsid = 5,
          .usid = { .counter = 0x0102030405060708ull, .nonce = 0xa1a2a3a4a5a6a7a8ull } },
        { .type = SST_PT_ATTACH, .flags = SST_ATTF_INIT, .lsid = 6, .usid = { 1, 2 },
          .parent_usid = { 3, 0xffffffffffffffffull } },
        { .type = SST_PT_DETACH, .lsid = 99 },
    };
    for (size_t i = 0; i < SST_ARRAY_LEN(p); i++)
        roundtrip(&p[i]);
}
END_TEST

START_TEST(test_wire_byte_layout)
{
    /* Data packet: LSID 0x0102, type 3 flags P|C, window 20, BSN 0x0a0b0c0d, payload "xy". */
    struct sst_spkt p = { .type = SST_PT_DATA, .flags = SST_SF_PUSH | SST_SF_CLOSE, .win = 20,
                          .lsid = 0x0102, .bsn = 0x0a0b0c0d, .data = (const uint8_t *)"xy", .len = 2 };
    uint8_t buf[16];
    ck_assert_uint_eq(sst_spkt_encode(buf, sizeof buf, &p), 10);
    static const uint8_t want[] = { 0x01, 0x02, 0x35, 20, 0x0a, 0x0b, 0x0c, 0x0d, 'x', 'y' };
    ck_assert_mem_eq(buf, want, sizeof want);
    /* Init: PSID and 16-bit BSN. */
    struct sst_spkt q = { .type = SST_PT_INIT, .win = 3, .lsid = 0x0011, .ref_lsid = 0x2233, .bsn = 0x4455 };
    ck_assert_uint_eq(sst_spkt_encode(buf, sizeof buf, &q), 8);
    static const uint8_t want2[] = { 0x00, 0x11, 0x10, 3, 0x22, 0x33, 0x44, 0x55 };
    ck_assert_mem_eq(buf, want2, sizeof want2);
}
END_TEST

START_TEST(test_wire_encode_refuses)
{
    uint8_t buf[64];
    struct sst_spkt big_bsn = { .type = SST_PT_INIT, .lsid = 1, .bsn = 0x10000 };
    ck_assert_uint_eq(sst_spkt_encode(buf, sizeof buf, &big_bsn), 0);
    struct sst_spkt ack = { .type = SST_PT_ACK };
    ck_assert_uint_eq(sst_spkt_encode(buf, sizeof buf, &ack), 0);
    struct sst_spkt bad_flag = { .type = SST_PT_RESET, .flags = SST_SF_PUSH, .lsid = 1 };
    ck_assert_uint_eq(sst_spkt_encode(buf, sizeof buf, &bad_flag), 0);
    struct sst_spkt small = { .type = SST_PT_DATA, .lsid = 1, .data = buf, .len = 60 };
    ck_assert_uint_eq(sst_spkt_encode(buf, 20, &small), 0);
    struct sst_spkt reset_data = { .type = SST_PT_RESET, .lsid = 1, .data = buf, .len = 1 };
    ck_assert_uint_eq(sst_spkt_encode(buf, sizeof buf, &reset_data), 0);
}
END_TEST

struct bad_case {
    const char *why;
    uint8_t bytes[40];
    size_t len;
};

START_TEST(test_wire_malformed_rejected)
{
    static const struct bad_case cases[] = {
        { "runt", { 0x00, 0x01, 0x30 }, 3 },
        { "empty", { 0 }, 0 },
        { "type 0", { 0x00, 0x01, 0x00, 0x00 }, 4 },
        { "ack is channel-owned", { 0x00, 0x00, 0x58, 0x00 }, 4 },
        { "control is channel-owned", { 0x00, 0x00, 0x90, 0x00 }, 4 },
        { "type 15", { 0x00, 0x01, 0xf0, 0x00, 0, 0, 0, 0 }, 8 },
        { "window reserved bits", { 0x00, 0x01, 0x30, 0x20, 0, 0, 0, 0 }, 8 },
        { "data header short", { 0x00, 0x01, 0x30, 0x00, 0, 0, 0 }, 7 },
        { "init header short", { 0x00, 0x01, 0x10, 0x00, 0, 0 }, 6 },
        { "init of LSID 0", { 0x00, 0x00, 0x10, 0x00, 0, 1, 0, 0 }, 8 },
        { "reply of LSID 0", { 0x00, 0x00, 0x20, 0x00, 0, 1, 0, 0 }, 8 },
        { "reply naming RSID 0", { 0x00, 0x05, 0x20, 0x00, 0, 0, 0, 0 }, 8 },
        { "reset trailing byte", { 0x00, 0x05, 0x60, 0x00, 0xff }, 5 },
        { "reset with data flag", { 0x00, 0x05, 0x64, 0x00 }, 4 },
        { "reset of root", { 0x00, 0x00, 0x60, 0x00 }, 4 },
        { "detach with flag", { 0x00, 0x05, 0x81, 0x00 }, 4 },
        { "detach trailing", { 0x00, 0x05, 0x80, 0x00, 1 }, 5 },
        { "attach short", { 0x00, 0x05, 0x70, 0x00, 1, 2, 3, 4, 5, 6, 7, 8 }, 12 },
        { "attach init missing parent",
          { 0x00, 0x05, 0x72, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8 }, 20 },
        { "datagram count 0", { 0x00, 0x05, 0x43, 0x00, 0, 1, 0, 0 }, 8 },
        { "datagram idx >= cnt", { 0x00, 0x05, 0x41, 0x00, 0, 1, 2, 2 }, 8 },
        { "datagram first without F", { 0x00, 0x05, 0x40, 0x00, 0, 1, 0, 2 }, 8 },
        { "datagram F on middle", { 0x00, 0x05, 0x42, 0x00, 0, 1, 1, 3 }, 8 },
        { "datagram last without L", { 0x00, 0x05, 0x40, 0x00, 0, 1, 2, 3 }, 8 },
        { "data with datagram flag bit 3", { 0x00, 0x05, 0x38, 0x00, 0, 0, 0, 0 }, 8 },
    };
    for (size_t i = 0; i < SST_ARRAY_LEN(cases); i++) {
        struct sst_spkt p;
        int rc = sst_spkt_decode(&p, cases[i].bytes, cases[i].len);
        ck_assert_msg(rc == SST_ERR_MALFORMED, "case '%s' returned %d", cases[i].why, rc);
    }
}
END_TEST

START_TEST(test_wire_random_bytes_never_crash)
{
    /* Decoding arbitrary bytes either fails cleanly or yields a packet that re-encodes to the
     * same bytes (the codec is a bijection on valid packets). */
    srandom(12345);
    uint8_t buf[64], again[64];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(random() % 48);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)random();
        struct sst_spkt p;
        if (sst_spkt_decode(&p, buf, len) != 0)
            continue;
        size_t n = sst_spkt_encode(again, sizeof again, &p);
        ck_assert_uint_eq(n, len);
        ck_assert_mem_eq(again, buf, len);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_wire");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, test_wire_roundtrip_all_types);
    tcase_add_test(tc, test_wire_byte_layout);
    tcase_add_test(tc, test_wire_encode_refuses);
    tcase_add_test(tc, test_wire_malformed_rejected);
    tcase_add_test(tc, test_wire_random_bytes_never_crash);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
