/* bench_tcp: the kernel TCP baselines sst_perf is compared with, speaking sst_perf's request
 * header, for the benchmark rows iperf3 cannot produce (transactions, connection rate, one
 * multiplexed connection for head-of-line blocking).
 *
 *   bench_tcp server [--bind ADDR:PORT] [--fastopen]
 *   bench_tcp client ADDR:PORT --rr N --size B [--fastopen] N sequential transactions, each on a
 *                                                           new connection (connect/request/close)
 *   bench_tcp client ADDR:PORT --rate N [--size B] [--window W]   connections per second, W at once
 *   bench_tcp client ADDR:PORT --hol --time S [--size B] [--rr-streams R] [--warmup S]
 *                                                           1 bulk download + R request loops
 *                                                           multiplexed over ONE connection
 *   common: [--json] [--timeout S]
 *
 * A connection starts with sst_perf's 16-byte header (op, 7 zero bytes, 64-bit big-endian arg).
 * 'R': the server answers arg bytes and closes.  'H': multiplexed mode, like HTTP/2 over one
 * connection: the client sends 5-byte requests (id 1..255, 32-bit size), the server answers each
 * with one frame (id, 32-bit length, payload) and fills the rest of the connection with bulk
 * frames (id 0, 16 KiB).  The server sets TCP_NOTSENT_LOWAT to 16 KiB and queues a response
 * behind at most one bulk frame, so what remains is TCP's own head-of-line blocking (one
 * byte stream, in-order delivery), not a deep application or socket buffer.
 *
 * --fastopen: TCP Fast Open (RFC 7413).  The server's listener gets TCP_FASTOPEN, the --rr
 * client's sockets TCP_FASTOPEN_CONNECT, so the request header rides in the SYN once the client
 * holds the server's cookie (its warm-up transaction fetches it) and the response starts one RTT
 * after connect.  Both namespaces need net.ipv4.tcp_fastopen=3.  The kernel falls back to a
 * normal handshake silently, so the client counts the transactions whose SYN data the server
 * acknowledged (TCP_INFO, TCPI_OPT_SYN_DATA) and reports them as "fastopen_syn_data". */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/clock.h"
#include "types.h"
#include "wire.h"

#define HDR_LEN 16
#define OP_REQUEST 'R'
#define OP_MUX 'H'
#define FRAME_HDR 5
#define BULK_FRAME 16384
#define MAX_LOOPS 64

static uint8_t g_pattern[1 << 20];

struct opts {
    const char *bind, *target;
    unsigned long rr, rate;
    uint64_t size;
    unsigned window, rr_streams;
    bool hol, json, fastopen;
    double seconds, warmup, timeout;
};

static double tv_sec(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static int to_sockaddr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sst_addr a;
    if (sst_addr_parse(&a, text, 5202) != 0)
        return -1;
    memset(ss, 0, sizeof *ss);
    if (a.family == SST_AF_INET4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(a.port);
        memcpy(&in->sin_addr, a.ip, 4);
        *len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a.port);
        memcpy(&in6->sin6_addr, a.ip, 16);
        in6->sin6_scope_id = a.scope_id;
        *len = sizeof *in6;
    }
    return 0;
}

static void add_pattern(struct evbuffer *out, uint64_t n)
{
    while (n > 0) {
        size_t k = (size_t)SST_MIN(n, (uint64_t)sizeof g_pattern);
        evbuffer_add_reference(out, g_pattern, k, NULL, NULL);
        n -= k;
    }
}

/* ---- server --------------------------------------------------------------------------------- */

struct sconn {
    struct bufferevent *bev;
    bool have_hdr;
    uint8_t op;
    uint64_t arg, sent;
};

static void sconn_free(struct sconn *c)
{
    bufferevent_free(c->bev);
    free(c);
}

/* 'R': keep at most 1 MiB of the answer in the application buffer. */
static void request_fill(struct sconn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (c->sent < c->arg && evbuffer_get_length(out) < (1u << 20)) {
        uint64_t k = SST_MIN(c->arg - c->sent, (uint64_t)sizeof g_pattern);
        add_pattern(out, k);
        c->sent += k;
    }
}

static void mux_bulk(struct sconn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint8_t h[FRAME_HDR];
    sst_put8(h, 0);
    sst_put32(h + 1, BULK_FRAME);
    evbuffer_add(out, h, sizeof h);
    add_pattern(out, BULK_FRAME);
}

static void server_write_cb(struct bufferevent *bev, void *arg)
{
    struct sconn *c = arg;
    (void)bev;
    if (!c->have_hdr)
        return;
    if (c->op == OP_REQUEST) {
        if (c->sent == c->arg) {
            sconn_free(c); /* everything handed to the kernel: close sends FIN after it */
            return;
        }
        request_fill(c);
    } else {
        mux_bulk(c);
    }
}

static void server_read_cb(struct bufferevent *bev, void *arg)
{
    struct sconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (!c->have_hdr) {
        if (evbuffer_get_length(in) < HDR_LEN)
            return;
        uint8_t h[HDR_LEN];
        evbuffer_remove(in, h, sizeof h);
        c->have_hdr = true;
        c->op = sst_get8(h);
        c->arg = sst_get64(h + 8);
        if (c->op == OP_REQUEST) {
            request_fill(c);
            if (c->arg == 0) {
                sconn_free(c);
                return;
            }
        } else if (c->op == OP_MUX) {
            int lowat = BULK_FRAME;
            setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
            mux_bulk(c);
        } else {
            sconn_free(c);
            return;
        }
    }
    if (c->op == OP_MUX) {
        uint8_t req[FRAME_HDR];
        while (evbuffer_get_length(in) >= FRAME_HDR) {
            evbuffer_remove(in, req, sizeof req);
            struct evbuffer *out = bufferevent_get_output(bev);
            evbuffer_add(out, req, sizeof req); /* same id and size: the frame header */
            add_pattern(out, sst_get32(req + 1));
        }
    } else {
        evbuffer_drain(in, evbuffer_get_length(in));
    }
}

static void server_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sconn_free(arg);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    struct event_base *base = arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sconn *c = calloc(1, sizeof *c);
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, server_read_cb, server_write_cb, server_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static int run_server(const struct opts *o)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (to_sockaddr(o->bind, &ss, &sl) != 0) {
        fprintf(stderr, "bench_tcp: bad address %s\n", o->bind);
        return 2;
    }
    struct event_base *base = event_base_new();
    struct evconnlistener *l = evconnlistener_new_bind(base, accept_cb, base,
                                                       LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 1024,
                                                       (struct sockaddr *)&ss, (int)sl);
    if (!l) {
        fprintf(stderr, "bench_tcp: cannot listen on %s: %s\n", o->bind, strerror(errno));
        return 1;
    }
    /* The queue length bounds Fast Open requests whose handshake is still incomplete. */
    int qlen = 1024;
    if (o->fastopen && setsockopt(evconnlistener_get_fd(l), IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof qlen) != 0) {
        fprintf(stderr, "bench_tcp: TCP_FASTOPEN: %s\n", strerror(errno));
        return 1;
    }
    fprintf(stderr, "bench_tcp server: listening on %s%s\n", o->bind, o->fastopen ? " (Fast Open)" : "");
    struct event *si = evsignal_new(base, SIGINT, on_signal, base);
    struct event *st = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(si, NULL);
    event_add(st, NULL);
    event_base_dispatch(base);
    event_free(si);
    event_free(st);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}

/* ---- client ---------------------------------------------------------------------------------- */

struct client {
    const struct opts *o;
    const char *mode;
    struct event_base *base;
    struct sockaddr_storage ss;
    socklen_t sl;
    int err;
    const char *err_what;
    uint64_t *lat;
    size_t nlat, caplat;
    unsigned long started, completed, active;
    uint64_t bytes, bulk_bytes;
    unsigned long syn_data; /* --fastopen: transactions whose SYN data was acknowledged */
    bool bytes_match, stop;
    sst_time_t t0, t1;
    struct rusage ru0, ru1;
    /* hol */
    struct bufferevent *mux;
    sst_time_t req_start[MAX_LOOPS + 1];
    uint64_t req_got[MAX_LOOPS + 1];
    bool req_busy[MAX_LOOPS + 1];
    uint8_t fhdr[FRAME_HDR];
    size_t fhdr_got;
    uint64_t frame_left;
    unsigned frame_id;
};

static void client_fail(struct client *cl, int err, const char *what)
{
    if (!cl->err) {
        cl->err = err ? err : EIO;
        cl->err_what = what;
    }
    event_base_loopbreak(cl->base);
}

static void lat_push(struct client *cl, uint64_t ns)
{
    if (cl->nlat == cl->caplat) {
        size_t cap = cl->caplat ? cl->caplat * 2 : 1024;
        uint64_t *p = realloc(cl->lat, cap * sizeof *p);
        if (!p)
            abort();
        cl->lat = p;
        cl->caplat = cap;
    }
    cl->lat[cl->nlat++] = ns;
}

static void put_hdr(uint8_t h[HDR_LEN], uint8_t op, uint64_t arg)
{
    memset(h, 0, HDR_LEN);
    sst_put8(h, op);
    sst_put64(h + 8, arg);
}

/* Whether the server acknowledged the data of this connection's SYN (a Fast Open that happened). */
static bool syn_data_acked(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && (ti.tcpi_options & TCPI_OPT_SYN_DATA);
}

/* One blocking transaction on a new connection: connect, request, read to EOF, close.  With
 * TCP_FASTOPEN_CONNECT, connect() returns at once and the first write() sends SYN + header. */
static int rr_once(struct client *cl, uint64_t *got, bool *syn_data)
{
    int fd = socket(cl->ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cl->o->fastopen && setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof one) != 0) {
        close(fd);
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&cl->ss, cl->sl) != 0) {
        close(fd);
        return -1;
    }
    uint8_t h[HDR_LEN];
    put_hdr(h, OP_REQUEST, cl->o->size);
    if (write(fd, h, sizeof h) != (ssize_t)sizeof h) {
        close(fd);
        return -1;
    }
    static uint8_t buf[65536];
    *got = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
            *got += (uint64_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        *syn_data = r == 0 && syn_data_acked(fd);
        close(fd);
        return r == 0 ? 0 : -1;
    }
}

static void run_rr(struct client *cl)
{
    uint64_t got;
    bool syn_data;
    /* warm-up: ARP/ND, the server's first accept, and with --fastopen the server's cookie */
    if (rr_once(cl, &got, &syn_data) != 0) {
        cl->err = errno;
        cl->err_what = "warm-up";
        return;
    }
    getrusage(RUSAGE_SELF, &cl->ru0);
    cl->t0 = sst_clock_now();
    for (unsigned long i = 0; i < cl->o->rr; i++) {
        sst_time_t s = sst_clock_now();
        if (rr_once(cl, &got, &syn_data) != 0) {
            cl->err = errno;
            cl->err_what = "transaction";
            break;
        }
        lat_push(cl, sst_clock_now() - s);
        cl->completed++;
        cl->syn_data += syn_data;
        cl->bytes += got;
        if (got != cl->o->size)
            cl->bytes_match = false;
    }
    cl->t1 = sst_clock_now();
}

/* ---- rate: W connections in flight ---------------------------------------------------------- */

struct rconn {
    struct client *cl;
    struct bufferevent *bev;
    uint64_t got;
};

static void rate_launch(struct client *cl);

static void rconn_end(struct rconn *r, bool ok)
{
    struct client *cl = r->cl;
    if (ok) {
        cl->completed++;
        cl->bytes += r->got;
        if (r->got != cl->o->size)
            cl->bytes_match = false;
    }
    bufferevent_free(r->bev);
    free(r);
    cl->active--;
    if (!ok) {
        client_fail(cl, ECONNRESET, "connection failed");
        return;
    }
    if (cl->completed == cl->o->rate) {
        cl->t1 = sst_clock_now();
        event_base_loopbreak(cl->base);
        return;
    }
    rate_launch(cl);
}

static void rconn_read(struct bufferevent *bev, void *arg)
{
    struct rconn *r = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    r->got += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void rconn_event(struct bufferevent *bev, short what, void *arg)
{
    struct rconn *r = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        uint8_t h[HDR_LEN];
        put_hdr(h, OP_REQUEST, r->cl->o->size);
        bufferevent_write(bev, h, sizeof h);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        rconn_read(bev, arg);
        rconn_end(r, true);
    } else if (what & BEV_EVENT_ERROR) {
        rconn_end(r, false);
    }
}

static void rate_launch(struct client *cl)
{
    while (!cl->err && cl->active < cl->o->window && cl->started < cl->o->rate) {
        struct rconn *r = calloc(1, sizeof *r);
        r->cl = cl;
        r->bev = bufferevent_socket_new(cl->base, -1, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(r->bev, rconn_read, NULL, rconn_event, r);
        bufferevent_enable(r->bev, EV_READ | EV_WRITE);
        cl->started++;
        cl->active++;
        if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&cl->ss, (int)cl->sl) != 0) {
            rconn_end(r, false);
            return;
        }
    }
}

/* ---- hol: one connection, R request loops + bulk ------------------------------------------------ */

static void mux_request(struct client *cl, unsigned id)
{
    uint8_t req[FRAME_HDR];
    sst_put8(req, (uint8_t)id);
    sst_put32(req + 1, (uint32_t)cl->o->size);
    cl->req_start[id] = sst_clock_now();
    cl->req_got[id] = 0;
    cl->req_busy[id] = true;
    cl->active++;
    cl->started++;
    bufferevent_write(cl->mux, req, sizeof req);
}

static void mux_response_done(struct client *cl, unsigned id)
{
    lat_push(cl, sst_clock_now() - cl->req_start[id]);
    cl->req_busy[id] = false;
    cl->active--;
    cl->completed++;
    if (!cl->stop) {
        mux_request(cl, id);
    } else if (cl->active == 0) {
        cl->t1 = sst_clock_now();
        event_base_loopbreak(cl->base);
    }
}

static void mux_read(struct bufferevent *bev, void *arg)
{
    struct client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in) > 0) {
        if (cl->fhdr_got < FRAME_HDR) {
            size_t k = SST_MIN(FRAME_HDR - cl->fhdr_got, evbuffer_get_length(in));
            evbuffer_remove(in, cl->fhdr + cl->fhdr_got, k);
            cl->fhdr_got += k;
            if (cl->fhdr_got < FRAME_HDR)
                return;
            cl->frame_id = sst_get8(cl->fhdr);
            cl->frame_left = sst_get32(cl->fhdr + 1);
            if (cl->frame_id > cl->o->rr_streams || (cl->frame_id && !cl->req_busy[cl->frame_id])) {
                client_fail(cl, EPROTO, "unexpected frame");
                return;
            }
        }
        size_t k = (size_t)SST_MIN(cl->frame_left, (uint64_t)evbuffer_get_length(in));
        evbuffer_drain(in, k);
        cl->frame_left -= k;
        if (cl->frame_id == 0)
            cl->bulk_bytes += k;
        else
            cl->req_got[cl->frame_id] += k;
        if (cl->frame_left == 0) {
            cl->fhdr_got = 0;
            if (cl->frame_id != 0)
                mux_response_done(cl, cl->frame_id);
        }
    }
}

static void mux_event(struct bufferevent *bev, short what, void *arg)
{
    struct client *cl = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_fail(cl, ECONNRESET, "multiplexed connection closed");
}

static void on_time_up(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd;
    (void)what;
    cl->stop = true;
}

static void hol_start_loops(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd;
    (void)what;
    getrusage(RUSAGE_SELF, &cl->ru0);
    cl->t0 = sst_clock_now();
    cl->bulk_bytes = 0;
    for (unsigned i = 1; i <= cl->o->rr_streams; i++)
        mux_request(cl, i);
    struct timeval tv = { (time_t)cl->o->seconds, (suseconds_t)(fmod(cl->o->seconds, 1.0) * 1e6) };
    event_base_once(cl->base, -1, EV_TIMEOUT, on_time_up, cl, &tv);
}

static void start_hol(struct client *cl)
{
    cl->mux = bufferevent_socket_new(cl->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(cl->mux, mux_read, NULL, mux_event, cl);
    bufferevent_enable(cl->mux, EV_READ | EV_WRITE);
    uint8_t h[HDR_LEN];
    put_hdr(h, OP_MUX, 0);
    bufferevent_write(cl->mux, h, sizeof h);
    if (bufferevent_socket_connect(cl->mux, (struct sockaddr *)&cl->ss, (int)cl->sl) != 0) {
        client_fail(cl, errno, "connect");
        return;
    }
    struct timeval tv = { (time_t)cl->o->warmup, (suseconds_t)(fmod(cl->o->warmup, 1.0) * 1e6) };
    event_base_once(cl->base, -1, EV_TIMEOUT, hol_start_loops, cl, &tv);
}

static void on_overall_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_fail(arg, ETIMEDOUT, "overall timeout");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return n ? (double)v[(rank < 1 ? 1 : rank) - 1] / 1e3 : 0;
}

static void report(struct client *cl)
{
    const struct opts *o = cl->o;
    double dur = (double)(cl->t1 - cl->t0) / 1e9;
    char cc[32] = "";
    int fd = socket(cl->ss.ss_family, SOCK_STREAM, 0);
    socklen_t cl_len = sizeof cc;
    if (fd >= 0) {
        if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &cl_len) != 0)
            cc[0] = 0;
        close(fd);
    }
    printf("{\"tool\":\"bench_tcp\",\"transport\":\"tcp\",\"mode\":\"%s\",\"cc\":\"%s\",\"ok\":%s,", cl->mode,
           cc, cl->err ? "false" : "true");
    if (cl->err)
        printf("\"error\":\"%s: %s\",", cl->err_what, strerror(cl->err));
    printf("\"duration_s\":%.6f,\"bytes_match\":%s,\"size\":%" PRIu64 ",\"bytes\":%" PRIu64 ",", dur,
           cl->bytes_match ? "true" : "false", o->size, cl->bytes);
    if (o->hol)
        printf("\"rr_streams\":%u,\"bulk_bytes\":%" PRIu64 ",\"bulk_goodput_bps\":%.0f,", o->rr_streams,
               cl->bulk_bytes, dur > 0 ? (double)cl->bulk_bytes * 8 / dur : 0);
    if (o->rate)
        printf("\"window\":%u,", o->window);
    if (o->fastopen)
        printf("\"fastopen\":true,\"fastopen_syn_data\":%lu,", cl->syn_data);
    if (cl->nlat > 0)
        qsort(cl->lat, cl->nlat, sizeof *cl->lat, cmp_u64);
    printf("\"transactions\":%lu,\"rate_per_s\":%.1f,", cl->completed, dur > 0 ? (double)cl->completed / dur : 0);
    if (cl->nlat) {
        double mean = 0;
        for (size_t i = 0; i < cl->nlat; i++)
            mean += (double)cl->lat[i];
        printf("\"latency_us\":{\"n\":%zu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"min\":%.1f,\"max\":%.1f,"
               "\"mean\":%.1f},",
               cl->nlat, pct_us(cl->lat, cl->nlat, 50), pct_us(cl->lat, cl->nlat, 90),
               pct_us(cl->lat, cl->nlat, 99), (double)cl->lat[0] / 1e3, (double)cl->lat[cl->nlat - 1] / 1e3,
               mean / (double)cl->nlat / 1e3);
    }
    printf("\"cpu_s\":{\"user\":%.4f,\"sys\":%.4f}}\n", tv_sec(cl->ru1.ru_utime) - tv_sec(cl->ru0.ru_utime),
           tv_sec(cl->ru1.ru_stime) - tv_sec(cl->ru0.ru_stime));
    fflush(stdout);
}

static int run_client(const struct opts *o)
{
    struct client *cl = calloc(1, sizeof *cl);
    cl->o = o;
    cl->bytes_match = true;
    if (to_sockaddr(o->target, &cl->ss, &cl->sl) != 0) {
        fprintf(stderr, "bench_tcp: bad address %s\n", o->target);
        return 2;
    }
    cl->base = event_base_new();
    struct event *to = evtimer_new(cl->base, on_overall_timeout, cl);
    struct timeval tv = { (time_t)o->timeout, 0 };
    evtimer_add(to, &tv);
    if (o->hol) {
        cl->mode = "hol";
        start_hol(cl);
        event_base_dispatch(cl->base);
    } else if (o->rate) {
        cl->mode = "rate";
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        getrusage(RUSAGE_SELF, &cl->ru0);
        cl->t0 = sst_clock_now();
        rate_launch(cl);
        event_base_dispatch(cl->base);
    } else {
        cl->mode = "rr";
        run_rr(cl);
    }
    getrusage(RUSAGE_SELF, &cl->ru1);
    if (cl->t1 == 0)
        cl->t1 = sst_clock_now();
    if (cl->t0 == 0)
        cl->t0 = cl->t1;
    report(cl);
    int rc = cl->err ? 1 : (cl->bytes_match ? 0 : 3);
    if (cl->mux)
        bufferevent_free(cl->mux);
    event_free(to);
    event_base_free(cl->base);
    free(cl->lat);
    free(cl);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_tcp server [--bind ADDR:PORT] [--fastopen]\n"
                    "       bench_tcp client ADDR:PORT --rr N --size B [--fastopen]\n"
                    "       bench_tcp client ADDR:PORT --rate N [--size B] [--window W]\n"
                    "       bench_tcp client ADDR:PORT --hol --time S [--size B] [--rr-streams R] [--warmup S]\n"
                    "       common: [--json] [--timeout S]\n");
}

int main(int argc, char **argv)
{
    struct opts o = { .bind = "0.0.0.0:5202", .size = 1, .window = 64, .rr_streams = 7, .seconds = 10,
                      .warmup = 1.0, .timeout = 120 };
    if (argc < 2 || (strcmp(argv[1], "server") != 0 && strcmp(argv[1], "client") != 0)) {
        usage();
        return 2;
    }
    bool server = strcmp(argv[1], "server") == 0;
    optind = 2;
    if (!server) {
        if (argc < 3) {
            usage();
            return 2;
        }
        o.target = argv[2];
        optind = 3;
    }
    static const struct option lo[] = {
        { "bind", required_argument, NULL, 'b' },   { "rr", required_argument, NULL, 'r' },
        { "size", required_argument, NULL, 's' },   { "rate", required_argument, NULL, 'R' },
        { "window", required_argument, NULL, 'w' }, { "hol", no_argument, NULL, 'H' },
        { "time", required_argument, NULL, 't' },   { "rr-streams", required_argument, NULL, 'k' },
        { "warmup", required_argument, NULL, 'W' }, { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 'T' }, { "fastopen", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'b': o.bind = optarg; break;
        case 'r': o.rr = strtoul(optarg, NULL, 0); break;
        case 's': o.size = strtoull(optarg, NULL, 0); break;
        case 'R': o.rate = strtoul(optarg, NULL, 0); break;
        case 'w': o.window = (unsigned)strtoul(optarg, NULL, 0); break;
        case 'H': o.hol = true; break;
        case 't': o.seconds = atof(optarg); break;
        case 'k': o.rr_streams = (unsigned)strtoul(optarg, NULL, 0); break;
        case 'W': o.warmup = atof(optarg); break;
        case 'j': o.json = true; break;
        case 'T': o.timeout = atof(optarg); break;
        case 'F': o.fastopen = true; break;
        default: usage(); return 2;
        }
    }
    if (optind != argc || o.window == 0 || o.rr_streams == 0 || o.rr_streams > MAX_LOOPS ||
        o.size > UINT32_MAX || (!server && !o.hol && !o.rate && !o.rr) || (!server && o.fastopen && !o.rr)) {
        usage();
        return 2;
    }
    for (size_t i = 0; i < sizeof g_pattern; i++)
        g_pattern[i] = (uint8_t)(i * 131 + (i >> 8));
    signal(SIGPIPE, SIG_IGN);
    return server ? run_server(&o) : run_client(&o);
}
