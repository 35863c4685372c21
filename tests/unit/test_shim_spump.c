/* The shim's fd <-> stream pump (shim/spump.c) driven by a real engine in the simulator: the
 * server side is a simctx node whose accepted stream is pumped to one end of a socketpair, the
 * pump's libevent events run from the test.  Checks bytes and half-close both ways, and the
 * re-entrancy guard: a stream callback arriving while a pump handler runs (as when an SST call
 * made from a libevent callback dispatches the pump's own callback, docs/api.md "Callbacks")
 * only records its events; the pump ends afterwards, once, when the handler leaves. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>

#include "simctx.h"

/* The pump itself, with its private struct visible to the test. */
#include "../../shim/spump.c"

static struct simctx_node node_a, node_b;
static struct sim *sim;

/* What shim/engine.c and fdtable.c give the pump, backed by the simulated node. */
void shim_engine_sync_time(void) { simctx_node_enter(&node_a); }
void shim_engine_kick(void) { simctx_node_leave(&node_a); }
int shim_sst_errno(int err) { return err == SST_ERR_RESET ? ECONNRESET : ECONNABORTED; }
void shim_fd_close_own(int fd) { close(fd); }
/* No pump here watches for a RST (shim_spump_watch_rst is for SST_LISTEN's TCP bridge). */
bool shim_errwatch_add(struct event_base *b, struct shim_errwatch *w, int fd)
{
    (void)b, (void)w, (void)fd;
    return false;
}
void shim_errwatch_del(struct shim_errwatch *w) { (void)w; }
size_t shim_fd_reserve_readable(int fd, size_t max, bool *eof)
{
    (void)fd;
    *eof = false;
    return max;   /* no reserve flag is set in these tests */
}

static struct event_base *base;
static int local_fd, peer_fd;     /* the pump's end, the application's end */
static struct shim_spump *pump;
static int done_calls, done_err;

static struct sst_stream *cli;
static char cli_buf[256];
static size_t cli_len;
static bool cli_eof;

static void pump_done(void *arg, int err)
{
    (void)arg;
    done_calls++;
    done_err = err;
    pump = NULL;
}

static void noop_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    (void)s;
    (void)ev;
    (void)arg;
}

static void listener_cb(struct sst_listener *l, void *arg)
{
    (void)arg;
    struct sst_stream *s = sst_accept(l, noop_cb, NULL);
    ck_assert_ptr_nonnull(s);
    pump = shim_spump_start(base, local_fd, s, pump_done, NULL);
    ck_assert_ptr_nonnull(pump);
}

static void cli_cb(struct sst_stream *s, unsigned events, void *arg)
{
    (void)arg;
    (void)events;
    for (;;) {
        sst_ssize_t n = sst_stream_read(s, cli_buf + cli_len, sizeof cli_buf - 1 - cli_len);
        if (n > 0) {
            cli_len += (size_t)n;
            continue;
        }
        if (n == 0)
            cli_eof = true;
        break;
    }
}

static void settle(void)
{
    for (int i = 0; i < 20; i++) {
        sim_run_until(sim, sim_now(sim) + SST_MS(5));
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
}

static void setup(void)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = 62;
    sim = sim_new(&sc);
    ck_assert_ptr_nonnull(sim);
    struct sst_addr a = sim_addr4(1, 9000), b = sim_addr4(2, 9000);
    simctx_node_init(&node_a, sim, &a, "spump-node", 1, NULL);
    simctx_node_init(&node_b, sim, &b, "spump-node", 2, NULL);
    struct sim_link_params lp = { .rate_bps = 100000000, .delay = SST_MS(1), .queue_bytes = 1000000 };
    ck_assert_int_eq(sim_path(sim, &a, &b, &lp, NULL, NULL, NULL), 0);
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    local_fd = sv[0];
    peer_fd = sv[1];
    pump = NULL;
    done_calls = done_err = 0;
    cli_len = 0;
    cli_eof = false;
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
    if (peer_fd >= 0)
        close(peer_fd);
    event_base_free(base);
    simctx_node_free(&node_a);
    simctx_node_free(&node_b);
    sim_free(sim);
}

START_TEST(test_spump_both_ways_and_close)
{
    ck_assert_int_eq(write(peer_fd, "pong", 4), 4);
    shutdown(peer_fd, SHUT_WR);
    settle();
    ck_assert_uint_eq(cli_len, 4);
    ck_assert_int_eq(memcmp(cli_buf, "pong", 4), 0);
    ck_assert(cli_eof);
    ck_assert_int_eq(done_calls, 0);   /* the client's direction is still open */
    simctx_node_enter(&node_b);
    sst_stream_close(cli);
    simctx_node_leave(&node_b);
    settle();
    char buf[4];
    ck_assert_int_eq(read(peer_fd, buf, sizeof buf), 0);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_int_eq(done_err, 0);
}
END_TEST

/* The peer resets while a pump handler runs: the callback only records the error; the pump
 * ends once, when the handler leaves, and tells its owner the reset. */
START_TEST(test_spump_reset_while_busy_is_deferred)
{
    spump_enter(pump);
    simctx_node_enter(&node_b);
    sst_stream_shutdown(cli, SST_SHUT_RESET);
    sst_stream_close(cli);
    simctx_node_leave(&node_b);
    sim_run_until(sim, sim_now(sim) + SST_MS(20));
    ck_assert_uint_eq(pump->nested, 1);
    ck_assert(pump->pending_ev & SST_EV_ERROR);
    ck_assert_int_eq(done_calls, 0);
    spump_leave(pump);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_int_eq(done_err, ECONNRESET);
    char buf[4];
    ck_assert_int_eq(read(peer_fd, buf, sizeof buf), 0);
}
END_TEST

/* Not busy: the same reset ends the pump from its callback at once. */
START_TEST(test_spump_reset_when_idle_ends_at_once)
{
    simctx_node_enter(&node_b);
    sst_stream_shutdown(cli, SST_SHUT_RESET);
    sst_stream_close(cli);
    simctx_node_leave(&node_b);
    sim_run_until(sim, sim_now(sim) + SST_MS(20));
    ck_assert_int_eq(done_calls, 1);
    ck_assert_int_eq(done_err, ECONNRESET);
}
END_TEST

/* The exit drain (shim_spump_exit_pending, polled by evthread.c after exit() closed the app's
 * fds): a pump whose app end is open is not waited for; once the app wrote and closed, the pump
 * is pending until it has read everything, then gives its stream back at once (without waiting
 * for the peer's end), and the stream, counted in streams_closing, still delivers it. */
START_TEST(test_spump_exit_drain_hands_over_then_delivers)
{
    struct sst_ctx_stats st;
    ck_assert(!shim_spump_exit_pending(true));      /* app end open: not waited for */
    ck_assert_int_eq(shim_spump_orphans(), 1);      /* ... but left for the keeper */
    ck_assert_int_eq(done_calls, 0);
    ck_assert_int_eq(write(peer_fd, "bye", 3), 3);
    close(peer_fd);
    peer_fd = -1;
    ck_assert(shim_spump_exit_pending(true));       /* closed, its last bytes not read yet */
    ck_assert_int_eq(shim_spump_orphans(), 0);
    ck_assert_int_eq(done_calls, 0);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);     /* the pump reads "bye" and the end */
    ck_assert_int_eq(done_calls, 0);                /* on its own it waits for the peer's end */
    ck_assert(!shim_spump_exit_pending(true));
    ck_assert_int_eq(done_calls, 1);
    ck_assert_int_eq(done_err, 0);
    sst_ctx_get_stats(node_a.c, &st);
    ck_assert_uint_eq(st.streams_closing, 1);
    settle();
    ck_assert_uint_eq(cli_len, 3);
    ck_assert_int_eq(memcmp(cli_buf, "bye", 3), 0);
    ck_assert(cli_eof);
    sst_ctx_get_stats(node_a.c, &st);
    ck_assert_uint_eq(st.streams_closing, 0);       /* delivered and acknowledged */
}
END_TEST

/* An app end still open elsewhere (a forked child, the exec'd program) after a half-close: its
 * holder may still read the answer.  With a keeper (keep_orphans) the pump is left alone and
 * the answer arrives; without one, the old way, the stream is given back at the app's end. */
static void half_closed_elsewhere(bool keep)
{
    ck_assert_int_eq(write(peer_fd, "req", 3), 3);
    ck_assert_int_eq(shutdown(peer_fd, SHUT_WR), 0);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);     /* the pump reads "req" and the end */
    ck_assert(!shim_spump_exit_pending(keep));
    ck_assert_int_eq(shim_spump_orphans(), keep ? 1 : 0);   /* without: given back */
    ck_assert_int_eq(done_calls, keep ? 0 : 1);
    simctx_node_enter(&node_b);
    ck_assert_int_eq(sst_stream_write(cli, "ans", 3), 3);
    simctx_node_leave(&node_b);
    settle();
    char buf[16];
    ssize_t n = read(peer_fd, buf, sizeof buf);
    if (keep) {
        ck_assert_int_eq(n, 3);
        ck_assert_int_eq(memcmp(buf, "ans", 3), 0);
    } else {
        ck_assert_int_eq(n, 0);                     /* the pump is gone: EOF, no answer */
    }
    ck_assert_uint_eq(cli_len, 3);
    ck_assert_int_eq(memcmp(cli_buf, "req", 3), 0);
}

START_TEST(test_spump_exit_drain_keeps_half_closed_orphan)
{
    half_closed_elsewhere(true);
}
END_TEST

START_TEST(test_spump_exit_drain_without_keeper_gives_back)
{
    half_closed_elsewhere(false);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shim");
    TCase *tc = tcase_create("spump");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_spump_both_ways_and_close);
    tcase_add_test(tc, test_spump_reset_while_busy_is_deferred);
    tcase_add_test(tc, test_spump_reset_when_idle_ends_at_once);
    tcase_add_test(tc, test_spump_exit_drain_hands_over_then_delivers);
    tcase_add_test(tc, test_spump_exit_drain_keeps_half_closed_orphan);
    tcase_add_test(tc, test_spump_exit_drain_without_keeper_gives_back);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
