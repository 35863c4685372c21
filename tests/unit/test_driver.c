/* Unit tests for the libevent driver (core/io/driver.c): two hosts in one process on loopback,
 * one event_base, real UDP sockets and the real clock. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "err.h"
#include "host.h"
#include "io/clock.h"
#include "io/driver.h"

struct side {
    const char *name;
    struct event_base *base;
    struct sst_chan *ch;
    unsigned ups, downs, verified;
    int down_err;
    struct sst_addr up_peer;
    struct side *other;
};

static void stop_if_both_up(struct side *s)
{
    if (s->ups > 0 && s->other->ups > 0)
        event_base_loopbreak(s->base);
}

static void on_chan_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    struct side *s = ctx;
    if (ev == SST_CHAN_EV_UP) {
        s->ups++;
        s->ch = ch;
        s->up_peer = *sst_chan_peer(ch);
        stop_if_both_up(s);
    } else if (ev == SST_CHAN_EV_DOWN) {
        s->downs++;
        s->down_err = err;
        if (s->ch == ch)
            s->ch = NULL;
    }
}

static int on_verify_peer(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct side *s = ctx;
    s->verified++;
    return 0;
}

/* Runs the loop until something calls loopbreak or `limit` passes. */
static void run_for(struct event_base *base, sst_time_t limit)
{
    struct timeval tv = {.tv_sec = (time_t)(limit / SST_SEC(1)),
                         .tv_usec = (suseconds_t)((limit % SST_SEC(1)) / 1000)};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static struct event_base *precise_base(void)
{
    struct event_config *ec = event_config_new();
    ck_assert_ptr_nonnull(ec);
    /* Sub-millisecond timers (timerfd) so the delayed-ack and pacing deadlines are honoured. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    ck_assert_ptr_nonnull(base);
    return base;
}

static struct sst_driver *make_driver(struct event_base *base, const char *bind_text, struct side *s)
{
    struct sst_host_config cfg;
    sst_host_config_default(&cfg);
    struct sst_addr bind;
    ck_assert_int_eq(sst_addr_parse(&bind, bind_text, 0), 0);
    struct sst_host_io user = {.ctx = s, .verify_peer = on_verify_peer, .chan_event = on_chan_event};
    struct sst_driver *d = sst_driver_new(base, &cfg, &bind, &user);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(sst_driver_host(d));
    return d;
}

/* Connects A to B (at b_addr) and runs until both report UP; checks the peers' addresses. */
static void connect_both(struct event_base *base, struct sst_driver *a, struct side *sa, struct side *sb,
                         const struct sst_addr *b_addr)
{
    struct sst_chan *ch = sst_host_connect(sst_driver_host(a), sst_driver_now(a), b_addr);
    ck_assert_ptr_nonnull(ch);
    sst_driver_rearm(a);
    sst_time_t t0 = sst_clock_now();
    run_for(base, SST_SEC(3));
    sst_time_t took = sst_clock_now() - t0;
    ck_assert_msg(sa->ups == 1 && sb->ups == 1, "both sides up (A %u, B %u) after %llu ms", sa->ups, sb->ups,
                  (unsigned long long)(took / SST_MS(1)));
    ck_assert_uint_eq(sa->downs + sb->downs, 0);
    ck_assert_ptr_eq(sa->ch, ch);
    ck_assert_msg(sst_addr_eq(&sa->up_peer, b_addr), "A's channel goes to B");
    ck_assert_int_eq(sst_chan_state(sa->ch), SST_CHAN_ESTABLISHED);
    ck_assert_int_eq(sst_chan_state(sb->ch), SST_CHAN_ESTABLISHED);
    ck_assert_uint_ge(sa->verified + sb->verified, 1);
    /* A loopback handshake is a few round trips of microseconds; a second means a lost timer. */
    ck_assert_uint_lt(took, SST_SEC(1));
}

static const char *const loopbacks[] = {"127.0.0.1", "::1"};

START_TEST(test_driver_connect_and_ping)
{
    struct event_base *base = precise_base();
    struct side sa = {.name = "A", .base = base}, sb = {.name = "B", .base = base};
    sa.other = &sb;
    sb.other = &sa;
    struct sst_driver *a = make_driver(base, loopbacks[_i], &sa);
    struct sst_driver *b = make_driver(base, loopbacks[_i], &sb);
    struct sst_addr a_addr, b_addr;
    ck_assert_int_eq(sst_driver_local_addr(a, &a_addr), 0);
    ck_assert_int_eq(sst_driver_local_addr(b, &b_addr), 0);
    ck_assert_int_eq(a_addr.family, _i == 0 ? SST_AF_INET4 : SST_AF_INET6);

    connect_both(base, a, &sa, &sb, &b_addr);
    ck_assert_msg(sst_addr_eq(&sb.up_peer, &a_addr), "B sees A's address as the peer");

    /* A ping is acknowledged; its round trip on loopback is well under 50 ms. */
    struct sst_chan_stats before, after;
    sst_chan_get_stats(sa.ch, &before);
    for (int k = 0; k < 5; k++) {
        sst_chan_ping(sa.ch, sst_driver_now(a));
        sst_driver_rearm(a);
        run_for(base, SST_MS(30));
    }
    sst_chan_get_stats(sa.ch, &after);
    ck_assert_uint_gt(after.rx_packets, before.rx_packets);
    ck_assert_uint_gt(after.tx_packets, before.tx_packets);
    ck_assert_uint_gt(after.srtt, 0);
    ck_assert_uint_lt(after.srtt, SST_MS(50));
    ck_assert_uint_gt(after.min_rtt, 0);
    ck_assert_uint_le(after.min_rtt, after.srtt + after.rttvar * 4 + 1);

    struct sst_udp_stats us;
    sst_udp_get_stats(sst_driver_udp(a), &us);
    ck_assert_uint_gt(us.tx_datagrams, 0);
    /* Channel packets are sealed straight into the send queue (handshake messages are not). */
    ck_assert_uint_gt(us.tx_in_place, 0);
    ck_assert_uint_eq(us.tx_errors + us.tx_dropped_full, 0);
    ck_assert_uint_eq(us.tx_queued, 0);

    sst_driver_free(a);
    sst_driver_free(b);
    event_base_free(base);
}
END_TEST

/* A dual-stack responder on :: accepts an IPv4 initiator; both name each other consistently. */
START_TEST(test_driver_dual_stack)
{
    struct event_base *base = precise_base();
    struct side sa = {.name = "A", .base = base}, sb = {.name = "B", .base = base};
    sa.other = &sb;
    sb.other = &sa;
    struct sst_driver *a = make_driver(base, "127.0.0.1", &sa);
    struct sst_driver *b = make_driver(base, "::", &sb);
    struct sst_addr a_addr, b_bound, b_v4;
    ck_assert_int_eq(sst_driver_local_addr(a, &a_addr), 0);
    ck_assert_int_eq(sst_driver_local_addr(b, &b_bound), 0);
    ck_assert_int_eq(sst_addr_parse(&b_v4, "127.0.0.1", b_bound.port), 0);
    connect_both(base, a, &sa, &sb, &b_v4);
    ck_assert_int_eq(sb.up_peer.family, SST_AF_INET4);
    ck_assert_msg(sst_addr_eq(&sb.up_peer, &a_addr), "v4-mapped peer maps back to A's IPv4 address");
    sst_driver_free(a);
    sst_driver_free(b);
    event_base_free(base);
}
END_TEST

/* Fault injection: the first `eagain_left` sendmmsg calls fail as if the socket buffer were full
 * (loopback itself never pushes back; see docs/driver.md). */
static int eagain_left;

static int flaky_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags)
{
    if (eagain_left > 0) {
        eagain_left--;
        errno = EAGAIN;
        return -1;
    }
    return sendmmsg(fd, msgs, n, flags);
}

/* A full socket buffer parks the HELLO in the queue; the driver's EV_WRITE handler sends it as soon
 * as the socket is writable, without waiting for any engine timer. */
START_TEST(test_driver_eagain_waits_for_writable)
{
    struct event_base *base = precise_base();
    struct side sa = {.name = "A", .base = base}, sb = {.name = "B", .base = base};
    sa.other = &sb;
    sb.other = &sa;
    struct sst_host_config cfg;
    sst_host_config_default(&cfg);
    struct sst_addr bind;
    ck_assert_int_eq(sst_addr_parse(&bind, "127.0.0.1", 0), 0);
    struct sst_host_io user = {.ctx = &sa, .chan_event = on_chan_event};
    struct sst_udp_config ucfg = {.sendmmsg_fn = flaky_sendmmsg};
    struct sst_driver *a = sst_driver_new_udp(base, &cfg, &bind, &user, &ucfg);
    ck_assert_ptr_nonnull(a);
    struct sst_driver *b = make_driver(base, "127.0.0.1", &sb);
    struct sst_addr b_addr;
    ck_assert_int_eq(sst_driver_local_addr(b, &b_addr), 0);

    eagain_left = 2;
    ck_assert_ptr_nonnull(sst_host_connect(sst_driver_host(a), sst_driver_now(a), &b_addr));
    sst_driver_rearm(a);
    struct sst_udp *u = sst_driver_udp(a);
    ck_assert_uint_ge(sst_udp_queued(u), 1);
    ck_assert(sst_udp_blocked(u));
    /* A non-blocking loop runs only what is ready without waiting: no engine timer is due yet, so
     * only EV_WRITE can move A's queue (it keeps looping while events are ready, so the rest of
     * the handshake may complete here too). */
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(eagain_left, 0);
    ck_assert_uint_eq(sst_udp_queued(u), 0);
    ck_assert(!sst_udp_blocked(u));
    struct sst_udp_stats us;
    sst_udp_get_stats(u, &us);
    ck_assert_uint_eq(us.tx_eagain, 2);
    ck_assert_uint_ge(us.tx_datagrams, 1);

    if (sa.ups == 0 || sb.ups == 0)
        run_for(base, SST_SEC(3));
    ck_assert_uint_eq(sa.ups, 1);
    ck_assert_uint_eq(sb.ups, 1);
    sst_driver_free(a);
    sst_driver_free(b);
    event_base_free(base);
}
END_TEST

static Suite *driver_suite(void)
{
    Suite *s = suite_create("driver");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_driver_connect_and_ping, 0, 2);
    tcase_add_test(tc, test_driver_dual_stack);
    tcase_add_test(tc, test_driver_eagain_waits_for_writable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(driver_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
