/* A multi-homed host (sst_host_recv_to / io.send_from): two hosts wired by hand, B with two
 * addresses.  A host bound to a wildcard address must answer from the address it was reached
 * at -- negotiation answers, cookies, resets and every packet of the channel -- or the peer,
 * which knows it by that address, drops the answers.  A channel's local address moves only on
 * an authenticated packet. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "err.h"
#include "host.h"
#include "sim.h"

#define WIRE_MAX 64

/* One datagram in flight: where it goes, where it comes from (NULL source: the sender's
 * default address, the kernel's choice). */
struct dgram {
    struct sst_addr to, from;
    size_t len;
    uint8_t pkt[1600];
};

struct node {
    struct sst_host *h;
    struct sst_addr def;        /* the kernel's choice of source */
    unsigned ups, downs;
    struct sst_chan *ch;        /* the last channel that came up */
};

static struct dgram wire[WIRE_MAX];
static unsigned nwire;
static unsigned sent_by_default;  /* datagrams that named no source */

static void push(const struct sst_addr *to, const struct sst_addr *from, const uint8_t *pkt, size_t len)
{
    ck_assert_uint_lt(nwire, WIRE_MAX);
    ck_assert_uint_le(len, sizeof wire[0].pkt - 16);
    struct dgram *d = &wire[nwire++];
    d->to = *to;
    d->from = *from;
    d->len = len;
    memcpy(d->pkt, pkt, len);
}

static void io_send(void *ctx, const struct sst_addr *to, const uint8_t *pkt, size_t len)
{
    struct node *n = ctx;
    sent_by_default++;
    push(to, &n->def, pkt, len);
}

static void io_send_from(void *ctx, const struct sst_addr *to, const struct sst_addr *from, const uint8_t *pkt,
                         size_t len)
{
    (void)ctx;
    push(to, from, pkt, len);
}

static void io_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    struct node *n = ctx;
    (void)err;
    if (ev == SST_CHAN_EV_UP) {
        n->ups++;
        n->ch = ch;
    } else if (ev == SST_CHAN_EV_DOWN) {
        n->downs++;
        if (n->ch == ch)
            n->ch = NULL;
    }
}

static struct node a, b;
static struct sst_addr a_addr, b1, b2;   /* B's addresses: b1 its default, b2 an alias */
static sst_time_t now;

static void setup(unsigned cookie_threshold)
{
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    nwire = 0;
    sent_by_default = 0;
    now = SST_MS(1);
    a_addr = sim_addr4(1, 4000);
    b1 = sim_addr4(2, 4000);
    b2 = sim_addr4(3, 4000);
    a.def = a_addr;
    b.def = b1;
    struct sst_host_config c;
    sst_host_config_default(&c);
    struct sst_host_io io = {.send = io_send, .send_from = io_send_from, .chan_event = io_event};
    io.ctx = &a;
    a.h = sst_host_new(&c, &io);
    c.cookie_threshold = cookie_threshold;
    io.ctx = &b;
    b.h = sst_host_new(&c, &io);
    ck_assert_ptr_nonnull(a.h);
    ck_assert_ptr_nonnull(b.h);
}

static void teardown(void)
{
    sst_host_free(a.h);
    sst_host_free(b.h);
}

/* Delivers what is on the wire (and what that provokes) to the host owning each destination;
 * every datagram B sends must come from `b_src` (NULL: not checked). */
static void run(const struct sst_addr *b_src)
{
    for (int round = 0; round < 20 && nwire > 0; round++) {
        static struct dgram batch[WIRE_MAX];
        unsigned n = nwire;
        memcpy(batch, wire, n * sizeof batch[0]);
        nwire = 0;
        for (unsigned i = 0; i < n; i++) {
            struct dgram *d = &batch[i];
            now += SST_MS(1);
            if (sst_addr_eq(&d->to, &a_addr)) {
                if (b_src) {
                    char got[SST_ADDR_STRLEN];
                    ck_assert_msg(sst_addr_eq(&d->from, b_src), "B sent from %s",
                                  sst_addr_str(&d->from, got, sizeof got));
                }
                sst_host_recv_to(a.h, now, &d->from, &d->to, d->pkt, d->len);
            } else if (sst_addr_eq(&d->to, &b1) || sst_addr_eq(&d->to, &b2)) {
                sst_host_recv_to(b.h, now, &d->from, &d->to, d->pkt, d->len);
            }
        }
    }
}

/* A reaches B at its second address: every answer (the RESPONSE, or the COOKIE first in case 1)
 * and every channel packet leaves from it, and both ends come up.  Before: B answered from its
 * default address and A, which had sent to the alias, dropped the RESPONSE. */
START_TEST(test_answers_from_address_reached)
{
    setup(_i == 1 ? 0 : 64);
    ck_assert_ptr_nonnull(sst_host_connect(a.h, now, &b2));
    run(&b2);
    ck_assert_uint_eq(a.ups, 1);
    ck_assert_uint_eq(b.ups, 1);
    struct sst_host_stats hs;
    sst_host_get_stats(b.h, &hs);
    if (_i == 1)
        ck_assert_uint_ge(hs.cookies_sent, 1);
    ck_assert_ptr_nonnull(sst_chan_local(b.ch));
    ck_assert(sst_addr_eq(sst_chan_local(b.ch), &b2));
    /* The initiator learns its own from B's first authenticated packet. */
    ck_assert_ptr_nonnull(sst_chan_local(a.ch));
    ck_assert(sst_addr_eq(sst_chan_local(a.ch), &a_addr));
    /* B's own traffic (a ping) leaves from b2 as well, and A acknowledges it. */
    uint64_t seq = sst_chan_ping(b.ch, now);
    ck_assert_uint_ne(seq, 0);
    run(&b2);
    ck_assert(sst_chan_acked_through(b.ch, seq));
    teardown();
}
END_TEST

/* A packet for a channel B does not know, sent to its alias, draws the stateless RESET from
 * the alias, so the peer can match it. */
START_TEST(test_reset_from_address_reached)
{
    setup(64);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof junk);
    junk[0] = 77;                                /* a channel ID B never gave out */
    sst_host_recv_to(b.h, now, &a_addr, &b2, junk, sizeof junk);
    struct sst_host_stats hs;
    sst_host_get_stats(b.h, &hs);
    ck_assert_uint_eq(hs.resets_sent, 1);
    ck_assert_uint_eq(nwire, 1);
    ck_assert(sst_addr_eq(&wire[0].from, &b2));
    ck_assert_uint_eq(sent_by_default, 0);
    teardown();
}
END_TEST

/* After the channel is up on b2: a forged packet (our channel ID, garbage body) to b1 does not
 * move B's replies; an authenticated one from A to b1 does, and B then answers from b1. */
START_TEST(test_local_moves_only_when_authenticated)
{
    setup(64);
    ck_assert_ptr_nonnull(sst_host_connect(a.h, now, &b2));
    run(&b2);
    ck_assert_uint_eq(b.ups, 1);
    /* The forgery: A's next real packet with its authentication tag flipped, sent to b1 (an
     * off-path attacker who saw the channel's header). */
    nwire = 0;
    ck_assert_uint_ne(sst_chan_ping(a.ch, now), 0);
    ck_assert_uint_eq(nwire, 1);
    struct dgram real = wire[0];
    nwire = 0;
    struct dgram forged = real;
    forged.pkt[forged.len - 1] ^= 0x55;
    sst_host_recv_to(b.h, now, &forged.from, &b1, forged.pkt, forged.len);
    ck_assert(sst_addr_eq(sst_chan_local(b.ch), &b2));
    sst_host_recv_to(b.h, now, &real.from, &b2, real.pkt, real.len);
    ck_assert(sst_addr_eq(sst_chan_local(b.ch), &b2));
    nwire = 0;
    uint64_t seq = sst_chan_ping(b.ch, now);
    ck_assert_uint_eq(nwire, 1);
    ck_assert(sst_addr_eq(&wire[0].from, &b2));     /* still from b2 */
    run(&b2);
    ck_assert(sst_chan_acked_through(b.ch, seq));

    /* A's next packet (a ping) reaches B at b1: B follows, and its ack leaves from b1. */
    uint64_t aseq = sst_chan_ping(a.ch, now);
    ck_assert_uint_eq(nwire, 1);
    wire[0].to = b1;
    sst_host_recv_to(b.h, now, &wire[0].from, &wire[0].to, wire[0].pkt, wire[0].len);
    nwire = 0;
    ck_assert(sst_addr_eq(sst_chan_local(b.ch), &b1));
    now += SST_MS(50);
    sst_host_timeout(b.h, now);                     /* the ack, now or at its delay */
    sst_chan_ping(b.ch, now);
    ck_assert_uint_ge(nwire, 1);
    for (unsigned i = 0; i < nwire; i++)
        ck_assert(sst_addr_eq(&wire[i].from, &b1));
    (void)aseq;
    teardown();
}
END_TEST

/* A driver that reports no local address (sst_host_recv, or recv_to with NULL) keeps the old
 * behaviour: everything goes through io.send, the kernel's choice. */
START_TEST(test_no_local_address_uses_send)
{
    setup(64);
    ck_assert_ptr_nonnull(sst_host_connect(a.h, now, &b1));
    for (int round = 0; round < 20 && nwire > 0; round++) {
        static struct dgram batch[WIRE_MAX];
        unsigned n = nwire;
        memcpy(batch, wire, n * sizeof batch[0]);
        nwire = 0;
        for (unsigned i = 0; i < n; i++) {
            now += SST_MS(1);
            struct sst_host *h = sst_addr_eq(&batch[i].to, &a_addr) ? a.h : b.h;
            sst_host_recv(h, now, &batch[i].from, batch[i].pkt, batch[i].len);
        }
    }
    ck_assert_uint_eq(a.ups, 1);
    ck_assert_uint_eq(b.ups, 1);
    ck_assert_ptr_null(sst_chan_local(b.ch));
    ck_assert_ptr_null(sst_chan_local(a.ch));
    teardown();
}
END_TEST

static Suite *multihome_suite(void)
{
    Suite *s = suite_create("multihome");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, test_answers_from_address_reached, 0, 2);
    tcase_add_test(tc, test_reset_from_address_reached);
    tcase_add_test(tc, test_local_moves_only_when_authenticated);
    tcase_add_test(tc, test_no_local_address_uses_send);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(multihome_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
