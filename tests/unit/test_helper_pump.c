/* sstd's pump (helper/pump.c) driven by a real engine in the simulator: the sstd side is a
 * simctx node, the pump's local socket one end of a socketpair, and its libevent events run
 * from the test.  Checks that bytes and half-close cross both ways, and the re-entrancy guard:
 * a stream callback that arrives while the pump is inside a step (as when an SST call made from
 * a libevent callback dispatches the pump's own callback, docs/api.md "Callbacks") only records
 * its events, and the pump ends afterwards, once, from the outer step. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>

#include "../../helper/sstd.h"
#include "../../helper/pump.h"
#include "simctx.h"

/* What sstd.c gives the other helper files, backed by the simulated node. */
static struct simctx_node node_a, node_b;
static struct sim *sim;

sst_time_t sstd_now(struct sstd *d)
{
    (void)d;
    return sim_now(sim);
}
struct sst_host *sstd_host(struct sstd *d)
{
    (void)d;
    return sst_ctx_host(node_a.c);
}
struct sst_ctx *sstd_ctx(struct sstd *d)
{
    (void)d;
    return node_a.c;
}
void sstd_rearm(struct sstd *d)
{
    (void)d;
    simctx_node_leave(&node_a);
}

static struct sstd daemon_state;
static int local_fd = -1;        /* the pump's end of the socketpair */
static struct sstd_pump *pump;   /* the gateway pump the listener made */

/* The client (node B): its stream, what it read, whether it saw the end or an error. */
static struct sst_stream *cli;
static char cli_buf[256];
static size_t cli_len;
static bool cli_eof;
static int cli_err;

static void listener_cb(struct sst_listener *l, void *arg)
{
    (void)arg;
    struct sstd_pump *p = sstd_pump_accept(&daemon_state, l, 80);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sstd_pump_attach_fd(p, local_fd), 0);
    pump = p;
}

static void cli_cb(struct sst_stream *s, unsigned events, void *arg)
{
    (void)arg;
    if (events & SST_EV_ERROR) {
        cli_err = sst_stream_error(s);
        return;
    }
    for (;;) {
        sst_ssize_t n = sst_stream_read(s, cli_buf + cli_len, sizeof cli_buf - 1 - cli_len);
        if (n > 0) {
            cli_len += (size_t)n;
            continue;
        }
        if (n == 0)
            cli_eof = true;
        else if (n != SST_ERR_AGAIN)
            cli_err = (int)n;
        break;
    }
}

/* Advances the simulation and runs the pump's ready libevent callbacks, a few rounds. */
static void settle(void)
{
    for (int i = 0; i < 20; i++) {
        sim_run_until(sim, sim_now(sim) + SST_MS(5));
        event_base_loop(daemon_state.base, EVLOOP_NONBLOCK);
    }
}

static bool pump_alive(void)
{
    for (struct sstd_pump *p = daemon_state.pumps; p; p = p->next)
        if (p == pump)
            return true;
    return false;
}

static int peer_fd;   /* the local service's end of the socketpair */

static void setup(void)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = 61;
    sim = sim_new(&sc);
    ck_assert_ptr_nonnull(sim);
    struct sst_addr a = sim_addr4(1, 8661), b = sim_addr4(2, 8661);
    simctx_node_init(&node_a, sim, &a, "pump-node", 1, NULL);
    simctx_node_init(&node_b, sim, &b, "pump-node", 2, NULL);
    struct sim_link_params lp = { .rate_bps = 100000000, .delay = SST_MS(1), .queue_bytes = 1000000 };
    ck_assert_int_eq(sim_path(sim, &a, &b, &lp, NULL, NULL, NULL), 0);
    memset(&daemon_state, 0, sizeof daemon_state);
    daemon_state.base = event_base_new();
    ck_assert_ptr_nonnull(daemon_state.base);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    local_fd = sv[0];
    peer_fd = sv[1];
    pump = NULL;
    cli = NULL;
    cli_len = 0;
    cli_eof = false;
    cli_err = 0;
    ck_assert_ptr_nonnull(sst_listen(node_a.c, "80", listener_cb, NULL));
    simctx_node_enter(&node_b);
    cli = sst_connect(node_b.c, &node_a.addr, "80", cli_cb, NULL);
    ck_assert_ptr_nonnull(cli);
    ck_assert_int_eq(sst_stream_write(cli, "ping", 4), 4);
    simctx_node_leave(&node_b);
    settle();
    ck_assert_ptr_nonnull(pump);
    char buf[16];
    ck_assert_int_eq(read(peer_fd, buf, sizeof buf), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
}

static void teardown(void)
{
    sstd_pumps_free(&daemon_state);
    close(peer_fd);
    event_base_free(daemon_state.base);
    simctx_node_free(&node_a);
    simctx_node_free(&node_b);
    sim_free(sim);
}

START_TEST(test_pump_both_ways_and_close)
{
    ck_assert_int_eq(write(peer_fd, "pong", 4), 4);
    shutdown(peer_fd, SHUT_WR);
    settle();
    ck_assert_uint_eq(cli_len, 4);
    ck_assert_int_eq(memcmp(cli_buf, "pong", 4), 0);
    ck_assert(cli_eof);
    ck_assert(pump_alive());    /* the client's direction is still open */
    simctx_node_enter(&node_b);
    sst_stream_close(cli);
    simctx_node_leave(&node_b);
    settle();
    char buf[4];
    ck_assert_int_eq(read(peer_fd, buf, sizeof buf), 0);   /* the client's FIN */
    ck_assert(!pump_alive());
    ck_assert_int_eq(cli_err, 0);
}
END_TEST

/* The peer resets while the pump is inside a step (busy, as an outer pump step is while an SST
 * call it made dispatches callbacks): the callback must not end the pump under that step. */
START_TEST(test_pump_reset_while_busy_is_deferred)
{
    pump->busy = true;
    simctx_node_enter(&node_b);
    sst_stream_shutdown(cli, SST_SHUT_RESET);
    sst_stream_close(cli);
    simctx_node_leave(&node_b);
    sim_run_until(sim, sim_now(sim) + SST_MS(20));
    /* The reset arrived and the pump's callback ran, but only recorded it. */
    ck_assert_uint_eq(pump->nested, 1);
    ck_assert(pump->pending_ev & SST_EV_ERROR);
    ck_assert(pump_alive());
    ck_assert_ptr_nonnull(pump->s);
    /* The outer step ends: the next step takes the recorded events and ends the pump once. */
    pump->busy = false;
    event_active(pump->rev, EV_READ, 1);
    event_base_loop(daemon_state.base, EVLOOP_NONBLOCK);
    ck_assert(!pump_alive());
    char buf[4];
    ck_assert_int_eq(read(peer_fd, buf, sizeof buf), 0);   /* the local service sees the end */
}
END_TEST

/* Without the guard: the same reset ends the pump from its callback at once. */
START_TEST(test_pump_reset_when_idle_ends_at_once)
{
    simctx_node_enter(&node_b);
    sst_stream_shutdown(cli, SST_SHUT_RESET);
    sst_stream_close(cli);
    simctx_node_leave(&node_b);
    sim_run_until(sim, sim_now(sim) + SST_MS(20));
    ck_assert(!pump_alive());
}
END_TEST

int main(void)
{
    sstd_log_setup(SSTD_LOG_ERROR, 2, false);
    Suite *s = suite_create("helper");
    TCase *tc = tcase_create("pump");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pump_both_ways_and_close);
    tcase_add_test(tc, test_pump_reset_while_busy_is_deferred);
    tcase_add_test(tc, test_pump_reset_when_idle_ends_at_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
