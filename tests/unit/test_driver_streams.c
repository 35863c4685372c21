/* The stream layer over real UDP on loopback: two libevent drivers running sst_ctx in one
 * event_base; a client opens top-level streams to a listening service, sends data, reads the
 * echo, half-closes; a refused service surfaces as SST_ERR_REFUSED. */
#include <check.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "io/driver.h"
#include "sst.h"

#define PAYLOAD (1024 * 1024 + 123)

struct server {
    struct sst_listener *l;
    struct sst_stream *s[8];
    int n;
    uint8_t buf[65536];
    size_t pending;      /* bytes read but not yet echoed */
    size_t echo_off;
    bool eof_seen[8];
};

struct client {
    struct sst_driver *d;
    struct sst_stream *s;
    uint8_t *out, *in;
    size_t len, written, got;
    bool connected, eof, write_closed;
    int err;
    struct event_base *base;
};

static void server_stream_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct server *sv = arg;
    int idx = 0;
    while (idx < sv->n && sv->s[idx] != s)
        idx++;
    /* Echo: read what fits, write it back; stop reading while the write side is full. */
    for (;;) {
        if (sv->pending == 0) {
            sst_ssize_t r = sst_stream_read(s, sv->buf, sizeof sv->buf);
            if (r == 0) {
                sv->eof_seen[idx] = true;
                sst_stream_shutdown(s, SST_SHUT_WRITE);
                return;
            }
            if (r < 0)
                return;
            sv->pending = (size_t)r;
            sv->echo_off = 0;
        }
        sst_ssize_t w = sst_stream_write(s, sv->buf + sv->echo_off, sv->pending);
        if (w <= 0)
            return; /* WRITABLE will call us again */
        sv->echo_off += (size_t)w;
        sv->pending -= (size_t)w;
    }
    (void)ev;
}

static void server_listen_cb(struct sst_listener *l, void *arg)
{
    struct server *sv = arg;
    struct sst_stream *s;
    while ((s = sst_accept(l, server_stream_cb, sv)) != NULL && sv->n < 8)
        sv->s[sv->n++] = s;
}

static void client_pump(struct client *c)
{
    while (c->written < c->len) {
        sst_ssize_t w = sst_stream_write(c->s, c->out + c->written, c->len - c->written);
        if (w <= 0)
            break;
        c->written += (size_t)w;
    }
    if (c->written == c->len && !c->write_closed) {
        sst_stream_shutdown(c->s, SST_SHUT_WRITE);
        c->write_closed = true;
    }
    for (;;) {
        sst_ssize_t r = sst_stream_read(c->s, c->in + c->got, c->len + 1 - c->got);
        if (r == 0) {
            c->eof = true;
            event_base_loopbreak(c->base);
            return;
        }
        if (r < 0) {
            if (r != SST_ERR_AGAIN) {
                c->err = (int)r;
                event_base_loopbreak(c->base);
            }
            return;
        }
        c->got += (size_t)r;
    }
}

static void client_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct client *c = arg;
    (void)s;
    if (ev & SST_EV_CONNECTED)
        c->connected = true;
    if (ev & SST_EV_ERROR) {
        c->err = sst_stream_error(c->s);
        event_base_loopbreak(c->base);
        return;
    }
    client_pump(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static struct sst_driver *make_driver(struct event_base *base, const char *bind)
{
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    sst_host_config_default(&cfg.host);
    struct sst_addr a;
    ck_assert_int_eq(sst_addr_parse(&a, bind, 0), 0);
    struct sst_driver *d = sst_driver_new_ctx(base, &cfg, &a, NULL, NULL);
    ck_assert_ptr_nonnull(d);
    return d;
}

static void run_echo(const char *server_bind, const char *client_bind)
{
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    struct sst_driver *ds = make_driver(base, server_bind);
    struct sst_driver *dc = make_driver(base, client_bind);
    struct server *sv = calloc(1, sizeof *sv);
    sv->l = sst_listen(sst_driver_ctx(ds), "8080", server_listen_cb, sv);
    ck_assert_ptr_nonnull(sv->l);

    struct sst_addr to;
    ck_assert_int_eq(sst_driver_local_addr(ds, &to), 0);
    struct client c = { .d = dc, .len = PAYLOAD, .base = base };
    c.out = malloc(PAYLOAD);
    c.in = malloc(PAYLOAD + 1);
    for (size_t i = 0; i < PAYLOAD; i++)
        c.out[i] = (uint8_t)(i * 7 + (i >> 11));
    sst_ctx_set_time(sst_driver_ctx(dc), sst_driver_now(dc));
    c.s = sst_connect(sst_driver_ctx(dc), &to, "8080", client_cb, &c);
    ck_assert_ptr_nonnull(c.s);
    client_pump(&c); /* writable at once: bytes wait for the channel (paper §4.3.4) */
    sst_driver_rearm(dc);

    struct event *t = evtimer_new(base, on_timeout, base);
    struct timeval tv = { 20, 0 };
    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);

    ck_assert_int_eq(c.err, 0);
    ck_assert(c.connected);
    ck_assert(c.eof);
    ck_assert_uint_eq(c.got, PAYLOAD);
    ck_assert_mem_eq(c.in, c.out, PAYLOAD);
    ck_assert_int_eq(sv->n, 1);
    ck_assert(sv->eof_seen[0]);

    sst_stream_close(c.s);
    sst_driver_free(dc);
    sst_driver_free(ds);
    free(sv);
    free(c.out);
    free(c.in);
    event_base_free(base);
}

START_TEST(test_echo_ipv4) { run_echo("127.0.0.1:0", "127.0.0.1:0"); }
END_TEST
START_TEST(test_echo_ipv6) { run_echo("[::1]:0", "[::1]:0"); }
END_TEST

START_TEST(test_refused_service)
{
    struct event_base *base = event_base_new();
    struct sst_driver *ds = make_driver(base, "127.0.0.1:0");
    struct sst_driver *dc = make_driver(base, "127.0.0.1:0");
    struct sst_addr to;
    ck_assert_int_eq(sst_driver_local_addr(ds, &to), 0);
    struct client c = { .d = dc, .len = 0, .base = base };
    sst_ctx_set_time(sst_driver_ctx(dc), sst_driver_now(dc));
    c.s = sst_connect(sst_driver_ctx(dc), &to, "9999", client_cb, &c);
    ck_assert_ptr_nonnull(c.s);
    sst_driver_rearm(dc);
    struct event *t = evtimer_new(base, on_timeout, base);
    struct timeval tv = { 10, 0 };
    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
    ck_assert_int_eq(c.err, SST_ERR_REFUSED);
    ck_assert(!c.connected);
    sst_stream_close(c.s);
    sst_driver_free(dc);
    sst_driver_free(ds);
    event_base_free(base);
}
END_TEST

/* Nothing listens on the peer's UDP port: the ICMP port unreachable ends the attempt at once
 * with SST_ERR_NO_SST, long before the 10 s handshake timeout. */
START_TEST(test_no_sst_at_peer_fails_fast)
{
    struct event_base *base = event_base_new();
    struct sst_driver *dc = make_driver(base, "127.0.0.1:0");
    /* A port that was just free: bind, learn it, close. */
    struct sst_driver *tmp = make_driver(base, "127.0.0.1:0");
    struct sst_addr to;
    ck_assert_int_eq(sst_driver_local_addr(tmp, &to), 0);
    sst_driver_free(tmp);
    struct client c = { .d = dc, .len = 0, .base = base };
    sst_time_t t0 = sst_driver_now(dc);
    sst_ctx_set_time(sst_driver_ctx(dc), t0);
    c.s = sst_connect(sst_driver_ctx(dc), &to, "80", client_cb, &c);
    ck_assert_ptr_nonnull(c.s);
    sst_driver_rearm(dc);
    struct event *t = evtimer_new(base, on_timeout, base);
    struct timeval tv = { 5, 0 };
    evtimer_add(t, &tv);
    event_base_dispatch(base);
    event_free(t);
    ck_assert_int_eq(c.err, SST_ERR_NO_SST);
    ck_assert_uint_lt(sst_driver_now(dc) - t0, SST_SEC(2));
    struct sst_udp_stats us;
    sst_udp_get_stats(sst_driver_udp(dc), &us);
    ck_assert_uint_ge(us.rx_icmp_errors, 1);
    sst_stream_close(c.s);
    sst_driver_free(dc);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("driver_streams");
    TCase *tc = tcase_create("loopback");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_echo_ipv4);
    tcase_add_test(tc, test_echo_ipv6);
    tcase_add_test(tc, test_refused_service);
    tcase_add_test(tc, test_no_sst_at_peer_fails_fast);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
