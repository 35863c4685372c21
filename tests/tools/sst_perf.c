/* sst_perf: an iperf-like benchmark of native SST over real UDP that prints one JSON summary.
 *
 *   sst_perf server [--bind ADDR:PORT] [--security strong|light] [--cc cubic|newreno|bbr]
 *                   [--buffer BYTES] [--detach-idle S]
 *   sst_perf client ADDR:PORT [mode] [--security ...] [--cc ...] [--json] [--timeout S]
 *     mode: --bytes N | --time S [--streams K]        bulk upload on K parallel streams
 *           --rr N --size B [--cold]                  N sequential transactions, new stream each
 *                                                     (warm channel), or new channel each (--cold)
 *           --rate N [--size B] [--window W]          stream creation rate, W in flight
 *           --hol --time S [--size B] [--rr-streams R] 1 bulk download + R request loops
 *                 [--hol-prio] [--hol-redundant]      request streams: higher priority, sent twice
 *           --idle-streams N | --idle-channels K      memory per idle stream / channel
 *
 * Per-stream protocol: the client writes a 16-byte header (op, flags, 6 zero bytes, 64-bit
 * big-endian argument), then the op's data; flags ask both ends to give the stream a higher
 * priority (F_PRIO) or to send it redundantly (F_REDUNDANT).  Ops: 'U' upload (server answers with 8-byte counts of what it
 * has read so far, at most one per COUNT_EVERY_BYTES or COUNT_EVERY_NS, the last one after EOF), 'R' request (server answers arg bytes, then EOF), 'D' download (server sends
 * until the client goes away), 'I' idle (server holds the stream), 'M' memory (server answers one
 * text line with its heap and RSS).  docs/benchmarking.md describes the measurements. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <utlist.h>

#include "channel.h"
#include "err.h"
#include "io/clock.h"
#include "io/driver.h"
#include "sst.h"
#include "wire.h"

#define PERF_SERVICE "5201"
#define HDR_LEN 16
#define OP_UPLOAD 'U'
#define OP_REQUEST 'R'
#define OP_DOWNLOAD 'D'
#define OP_IDLE 'I'
#define OP_MEMORY 'M'
#define OP_UPLOAD_FIN 0x100     /* server-internal: final count pending after EOF */
/* Upload progress counts go out when this much was read or this long has passed since the last
 * one (whichever comes first), not after every read: a count is a data packet the client must
 * receive and acknowledge, and one per read charged the tool's chatter to the transport (a
 * fast receiver sent about one per 16-packet receive batch).  A timed client therefore sees a
 * count at most 256 KiB or 1 ms behind what had arrived (iperf3 sends no progress at all). */
#define COUNT_EVERY_BYTES (256u * 1024u)
#define COUNT_EVERY_NS SST_MS(1)
#define ARG_FOREVER UINT64_MAX
/* Header byte 1: options both ends apply to the stream (what a latency-aware application does). */
#define F_PRIO 0x01             /* sst_stream_set_priority(s, PRIO_HIGH) */
#define F_REDUNDANT 0x02        /* sst_stream_set_redundant(s, true) */
#define PRIO_HIGH 1             /* above the default 0 of the download */
#define MEMLINE_MAX 160

static uint8_t g_pattern[65536]; /* what we send: content is irrelevant, only counts matter */
static uint8_t g_sink[65536];    /* what we read and discard */

struct opts {
    const char *bind;
    const char *target;
    enum sst_security sec;
    enum sst_cc_algo cc;
    uint64_t bytes;
    double seconds;
    unsigned streams;
    unsigned long rr;
    uint64_t size;
    bool cold;
    unsigned long rate;
    unsigned window;
    bool hol;
    unsigned rr_streams;
    double hol_warmup;
    unsigned hol_flags;         /* F_PRIO | F_REDUNDANT for the request streams of --hol */
    unsigned long idle_streams;
    unsigned long idle_channels;
    bool json;
    double timeout;
    uint64_t buffer;            /* per-stream rx and tx buffer; 0 = the engine default */
    double detach_idle;         /* seconds; < 0 = the engine default (30 s) */
};

/* Heap in use (mallinfo2: small chunks + mmapped ones) and resident set size, in bytes. */
struct memsnap {
    uint64_t heap, rss;
};

static struct memsnap mem_now(void)
{
    struct mallinfo2 mi = mallinfo2();
    struct memsnap m = { .heap = mi.uordblks + mi.hblkhd, .rss = 0 };
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) == 2)
            m.rss = (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    return m;
}

static double tv_sec(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

static void make_ctx_config(struct sst_ctx_config *cfg, const struct opts *o)
{
    sst_ctx_config_default(cfg);
    sst_host_config_default(&cfg->host);
    cfg->host.security = o->sec;
    cfg->host.cc = o->cc;
    /* The receive buffer is the stream's flow-control window: at 256 KiB (default) one stream
     * cannot fill 100 Mbit/s x 50 ms (625 KB), so the benchmarks pass --buffer. */
    if (o->buffer) {
        cfg->rx_buffer = (size_t)o->buffer;
        cfg->tx_buffer = (size_t)o->buffer;
    }
    /* More than 65535 idle streams on one channel need LSIDs given back (paper §4.3.7): the
     * idle-stream benchmark at 100k lets streams detach after a second on both sides. */
    if (o->detach_idle >= 0)
        cfg->detach_idle = (sst_time_t)(o->detach_idle * 1e9);
}

static struct sst_driver *make_driver(struct event_base *base, const struct opts *o, const char *bind,
                                      bool small)
{
    struct sst_ctx_config cfg;
    make_ctx_config(&cfg, o);
    struct sst_addr a;
    if (sst_addr_parse(&a, bind, 0) != 0) {
        fprintf(stderr, "sst_perf: bad address %s\n", bind);
        return NULL;
    }
    /* Idle-channel clients are many small endpoints: a short send queue and small receive
     * batches keep the client's own footprint out of the way (the server is what we measure). */
    struct sst_udp_config uc = { 0 };
    if (small) {
        uc.queue_len = 16;
        uc.rx_batch = 4;
        uc.no_gro = true;
        uc.rcvbuf = 65536;
        uc.sndbuf = 65536;
    }
    struct sst_driver *d = sst_driver_new_ctx(base, &cfg, &a, NULL, &uc);
    if (!d)
        fprintf(stderr, "sst_perf: cannot bind %s: %s\n", bind, strerror(errno));
    return d;
}

static struct event_base *make_base(void)
{
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

/* ---- server ------------------------------------------------------------------------------ */

struct sconn {
    struct sst_stream *s;
    struct sst_ctx *ctx;
    uint8_t hdr[HDR_LEN];
    size_t hdr_got;
    unsigned op, flags;
    uint64_t arg, count, sent;
    uint64_t reported;       /* upload: the count in the last record */
    sst_time_t reported_at;  /* and when it was written */
    uint8_t rec[8];          /* upload: the count record being written */
    size_t rec_off;          /* bytes of rec already written (8: none pending) */
    struct sconn *prev, *next;
};

/* Applies the stream options a header's flags ask for (the same at both ends). */
static void apply_flags(struct sst_stream *s, unsigned flags)
{
    if (flags & F_PRIO)
        sst_stream_set_priority(s, PRIO_HIGH);
    if (flags & F_REDUNDANT)
        sst_stream_set_redundant(s, true);
}

/* Every live server stream's state, so what the peer never closed is freed at exit. */
static struct sconn *g_sconns;

/* Writes the rest of the pending 8-byte count record; true when none is left.  Records must
 * not interleave, so a short write is finished before the next one starts. */
static bool flush_record(struct sconn *c)
{
    while (c->rec_off < sizeof c->rec) {
        sst_ssize_t w = sst_stream_write(c->s, c->rec + c->rec_off, sizeof c->rec - c->rec_off);
        if (w <= 0)
            return false;
        c->rec_off += (size_t)w;
    }
    return true;
}

static void sconn_finish(struct sconn *c)
{
    sst_stream_close(c->s);
    DL_DELETE(g_sconns, c);
    free(c);
}

/* Reads and discards; returns 1 at EOF, -1 on error, 0 when nothing more is ready. */
static int drain(struct sst_stream *s, uint64_t *count)
{
    for (;;) {
        sst_ssize_t r = sst_stream_read(s, g_sink, sizeof g_sink);
        if (r > 0) {
            if (count)
                *count += (uint64_t)r;
            continue;
        }
        if (r == 0)
            return 1;
        return r == SST_ERR_AGAIN ? 0 : -1;
    }
}

/* Writes pattern bytes until `limit` are sent or the send buffer is full. */
static int pump_out(struct sst_stream *s, uint64_t *sent, uint64_t limit)
{
    while (*sent < limit) {
        uint64_t want = SST_MIN(limit - *sent, (uint64_t)sizeof g_pattern);
        sst_ssize_t w = sst_stream_write(s, g_pattern, (size_t)want);
        if (w == SST_ERR_AGAIN || w == 0)
            return 0;
        if (w < 0)
            return -1;
        *sent += (uint64_t)w;
    }
    return 0;
}

/* Held until the client goes away (the context frees what is left at exit). */
static void idle_stream_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    (void)arg;
    if ((ev & SST_EV_ERROR) || drain(s, NULL) != 0)
        sst_stream_close(s);
}

static void server_stream_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct sconn *c = arg;
    if (ev & SST_EV_ERROR) {
        sconn_finish(c);
        return;
    }
    while (c->hdr_got < HDR_LEN) {
        sst_ssize_t r = sst_stream_read(s, c->hdr + c->hdr_got, HDR_LEN - c->hdr_got);
        if (r == SST_ERR_AGAIN)
            return;
        if (r <= 0) {
            sconn_finish(c);
            return;
        }
        c->hdr_got += (size_t)r;
        if (c->hdr_got == HDR_LEN) {
            c->op = sst_get8(c->hdr);
            c->flags = sst_get8(c->hdr + 1);
            c->arg = sst_get64(c->hdr + 8);
            apply_flags(s, c->flags);
            c->rec_off = sizeof c->rec;
        }
    }
    switch (c->op) {
    case OP_UPLOAD: {
        if (!flush_record(c))
            return; /* WRITABLE calls again; reading waits so counts stay in order */
        int st = drain(s, &c->count);
        if (st < 0) {
            sconn_finish(c);
            return;
        }
        sst_time_t now = c->count != c->reported ? sst_clock_now() : 0;
        if (st == 1 || (c->count != c->reported && (c->count - c->reported >= COUNT_EVERY_BYTES ||
                                                    now - c->reported_at >= COUNT_EVERY_NS))) {
            /* Progress reports let a timed client measure what arrived by its deadline without
             * waiting for its send buffer to drain; the record after EOF is the final count. */
            c->reported = c->count;
            c->reported_at = now;
            sst_put64(c->rec, c->count);
            c->rec_off = 0;
            if (!flush_record(c) && st == 1) {
                c->op = OP_UPLOAD_FIN; /* finish once the record is out */
                return;
            }
        }
        if (st == 1) {
            sst_stream_shutdown(s, SST_SHUT_WRITE);
            sconn_finish(c);
        }
        return;
    }
    case OP_UPLOAD_FIN:
        if (flush_record(c)) {
            sst_stream_shutdown(s, SST_SHUT_WRITE);
            sconn_finish(c);
        }
        return;
    case OP_REQUEST:
    case OP_DOWNLOAD: {
        int st = drain(s, NULL);
        if (st < 0 || (st == 1 && c->op == OP_DOWNLOAD) || pump_out(s, &c->sent, c->arg) < 0) {
            sconn_finish(c);
            return;
        }
        if (c->op == OP_REQUEST && c->sent == c->arg) {
            sst_stream_shutdown(s, SST_SHUT_WRITE);
            sconn_finish(c); /* graceful: the buffered response is still delivered */
        }
        return;
    }
    case OP_IDLE:
        /* An idle stream needs no state of ours: the server drops its record, so the heap it
         * reports per idle stream is the stack's alone. */
        DL_DELETE(g_sconns, c);
        free(c);
        sst_stream_set_callback(s, idle_stream_cb, NULL);
        idle_stream_cb(s, SST_EV_READABLE, NULL);
        return;
    case OP_MEMORY: {
        struct memsnap m = mem_now();
        struct sst_ctx_stats cs;
        sst_ctx_get_stats(c->ctx, &cs);
        struct sst_host_stats hs;
        sst_host_get_stats(sst_ctx_host(c->ctx), &hs);
        char line[MEMLINE_MAX];
        int n = snprintf(line, sizeof line, "heap=%" PRIu64 " rss=%" PRIu64 " streams=%" PRIu64
                         " channels=%u\n", m.heap, m.rss, cs.streams_live, hs.channels);
        if (sst_stream_write(s, line, (size_t)n) != n)
            fprintf(stderr, "sst_perf server: memory line did not fit\n");
        sst_stream_shutdown(s, SST_SHUT_WRITE);
        sconn_finish(c);
        return;
    }
    default:
        fprintf(stderr, "sst_perf server: unknown op 0x%02x\n", c->op);
        sst_stream_shutdown(s, SST_SHUT_RESET);
        sconn_finish(c);
        return;
    }
}

static void server_listen_cb(struct sst_listener *l, void *arg)
{
    struct sst_ctx *ctx = arg;
    for (;;) {
        struct sconn *c = calloc(1, sizeof *c);
        if (!c)
            return;
        c->ctx = ctx;
        c->s = sst_accept(l, server_stream_cb, c);
        if (!c->s) {
            free(c);
            return;
        }
        DL_APPEND(g_sconns, c);
        /* Bytes may have arrived with the request: look at them now. */
        server_stream_cb(c->s, SST_EV_READABLE, c);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static int run_server(const struct opts *o)
{
    struct event_base *base = make_base();
    struct sst_driver *d = make_driver(base, o, o->bind, false);
    if (!d)
        return 1;
    struct sst_ctx *ctx = sst_driver_ctx(d);
    struct sst_listener *l = sst_listen(ctx, PERF_SERVICE, server_listen_cb, ctx);
    if (!l) {
        fprintf(stderr, "sst_perf: cannot listen\n");
        return 1;
    }
    struct sst_addr la;
    char buf[SST_ADDR_STRLEN];
    if (sst_driver_local_addr(d, &la) == 0)
        fprintf(stderr, "sst_perf server: listening on %s (%s, %s)\n", sst_addr_str(&la, buf, sizeof buf),
                sst_security_name(o->sec), sst_cc_algo_name(o->cc));
    struct event *si = evsignal_new(base, SIGINT, on_signal, base);
    struct event *st = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(si, NULL);
    event_add(st, NULL);
    event_base_dispatch(base);
    event_free(si);
    event_free(st);
    sst_listener_close(l);
    sst_driver_free(d); /* frees the streams; their state goes next */
    struct sconn *c, *tmp;
    DL_FOREACH_SAFE(g_sconns, c, tmp) {
        DL_DELETE(g_sconns, c);
        free(c);
    }
    event_base_free(base);
    return 0;
}

/* ---- client: transactions ----------------------------------------------------------------- */

struct client;

/* One stream the client drives: header, optional upload body, reading the answer. */
struct xact {
    struct client *cl;
    struct sst_stream *s;
    struct sst_driver *own;     /* cold transactions: the driver made for this one */
    uint8_t op;
    uint8_t flags;              /* header byte 1: F_PRIO, F_REDUNDANT */
    uint64_t arg;
    uint8_t hdr[HDR_LEN];
    size_t hdr_sent;
    uint64_t to_send, sent;     /* upload body */
    uint64_t got;               /* answer bytes read */
    uint8_t reply[MEMLINE_MAX];
    size_t reply_got;
    sst_time_t start;
    bool write_closed, connected, done;
    unsigned slot;              /* which loop or stream of the mode this is */
    uint64_t retrans;
    uint64_t confirmed;         /* upload: the server's latest count */
    uint64_t counts;            /* upload: count records received */
};

enum mode { MODE_BULK, MODE_RR, MODE_RATE, MODE_HOL, MODE_IDLE_STREAMS, MODE_IDLE_CHANNELS };

struct client {
    const struct opts *o;
    enum mode mode;
    struct event_base *base;
    struct sst_driver *d;
    struct sst_ctx *ctx;
    struct sst_addr peer;
    int err;
    const char *err_what;
    bool stop;                  /* time is up: finish what runs, start nothing new */
    void (*on_done)(struct client *cl, struct xact *x);
    sst_time_t t0, t1;
    struct rusage ru0, ru1;
    /* results */
    uint64_t *lat;
    size_t nlat, caplat;
    uint64_t bytes_sent, bytes_confirmed, bytes_read, retrans;
    uint64_t count_records;     /* bulk: the server's 8-byte counts received, all streams */
    uint64_t bulk_base;         /* MODE_HOL: download bytes read before the measurement */
    bool bytes_match;
    unsigned long started, completed, active;
    struct xact *bulk;          /* MODE_BULK: K streams; MODE_HOL: the download */
    struct xact *idle;          /* MODE_IDLE_STREAMS: preallocated */
    struct sst_driver **chans;  /* MODE_IDLE_CHANNELS */
    struct sst_driver *last_own;/* MODE_RR --cold: the last transaction's driver */
    unsigned long connected;
    struct memsnap srv0, srv1, cli0, cli1;
    unsigned long srv_streams0, srv_streams1, srv_chans0, srv_chans1;
    int phase;
    struct event *tick;
};

static void client_fail(struct client *cl, int err, const char *what)
{
    if (!cl->err) {
        cl->err = err ? err : SST_ERR_INVAL;
        cl->err_what = what;
    }
    event_base_loopbreak(cl->base);
}

static void lat_push(struct client *cl, uint64_t ns)
{
    if (cl->nlat == cl->caplat) {
        size_t cap = cl->caplat ? cl->caplat * 2 : 1024;
        uint64_t *p = realloc(cl->lat, cap * sizeof *p);
        if (!p) {
            client_fail(cl, SST_ERR_NOMEM, "latency array");
            return;
        }
        cl->lat = p;
        cl->caplat = cap;
    }
    cl->lat[cl->nlat++] = ns;
}

static void xact_pump(struct xact *x);

static void xact_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    struct xact *x = arg;
    (void)s;
    if (ev & SST_EV_CONNECTED) {
        x->connected = true;
        if (x->op == OP_IDLE) {
            x->cl->connected++;
            if (x->cl->on_done)
                x->cl->on_done(x->cl, x);
        }
    }
    if (ev & SST_EV_ERROR) {
        client_fail(x->cl, sst_stream_error(x->s), "stream error");
        return;
    }
    xact_pump(x);
}

static struct sst_ctx *xact_ctx(struct xact *x) { return x->own ? sst_driver_ctx(x->own) : x->cl->ctx; }

/* Opens x's stream: the caller set op, arg, to_send (and own for a cold transaction). */
static int xact_start(struct client *cl, struct xact *x)
{
    x->cl = cl;
    sst_put8(x->hdr, x->op);
    sst_put8(x->hdr + 1, x->flags);
    memset(x->hdr + 2, 0, 6);
    sst_put64(x->hdr + 8, x->arg);
    x->start = sst_clock_now();
    x->s = sst_connect(xact_ctx(x), &cl->peer, PERF_SERVICE, xact_cb, x);
    if (!x->s) {
        client_fail(cl, SST_ERR_LIMIT, "sst_connect");
        return -1;
    }
    apply_flags(x->s, x->flags);
    cl->started++;
    cl->active++;
    xact_pump(x); /* writable at once (paper §4.3.4) */
    return 0;
}

static void xact_finish(struct xact *x)
{
    struct client *cl = x->cl;
    struct sst_stream_stats st;
    sst_stream_get_stats(x->s, &st);
    x->retrans = st.bytes_retransmitted;
    cl->retrans += st.bytes_retransmitted;
    x->done = true;
    cl->active--;
    cl->completed++;
    sst_stream_close(x->s);
    x->s = NULL;
    cl->on_done(cl, x);
}

static void xact_pump(struct xact *x)
{
    struct client *cl = x->cl;
    if (x->done || !x->s)
        return;
    while (x->hdr_sent < HDR_LEN) {
        sst_ssize_t w = sst_stream_write(x->s, x->hdr + x->hdr_sent, HDR_LEN - x->hdr_sent);
        if (w == SST_ERR_AGAIN || w == 0)
            return;
        if (w < 0) {
            client_fail(cl, (int)w, "write header");
            return;
        }
        x->hdr_sent += (size_t)w;
    }
    uint64_t limit = cl->stop ? x->sent : x->to_send;
    if (pump_out(x->s, &x->sent, limit) < 0) {
        client_fail(cl, sst_stream_error(x->s), "write body");
        return;
    }
    if (!x->write_closed && x->op != OP_IDLE && x->op != OP_DOWNLOAD && x->sent == limit) {
        sst_stream_shutdown(x->s, SST_SHUT_WRITE);
        x->write_closed = true;
    }
    for (;;) {
        sst_ssize_t r;
        if (x->op == OP_UPLOAD) {
            /* 8-byte counts: progress reports, the last one after our EOF. */
            r = sst_stream_read(x->s, x->reply + x->reply_got, 8 - x->reply_got);
            if (r > 0) {
                x->reply_got += (size_t)r;
                if (x->reply_got == 8) {
                    x->confirmed = sst_get64(x->reply);
                    x->reply_got = 0;
                    x->counts++;
                }
            }
        } else if (x->op == OP_MEMORY) {
            if (x->reply_got == sizeof x->reply - 1) {
                client_fail(cl, SST_ERR_TOO_BIG, "reply too long");
                return;
            }
            r = sst_stream_read(x->s, x->reply + x->reply_got, sizeof x->reply - 1 - x->reply_got);
            if (r > 0)
                x->reply_got += (size_t)r;
        } else {
            r = sst_stream_read(x->s, g_sink, sizeof g_sink);
            if (r > 0)
                x->got += (uint64_t)r;
        }
        if (r > 0)
            continue;
        if (r == 0) {
            xact_finish(x);
            return;
        }
        if (r != SST_ERR_AGAIN)
            client_fail(cl, (int)r, "read");
        return;
    }
}

/* Brings the warm channel up with one small transaction, then calls next(cl). */
static void (*g_after_warmup)(struct client *cl);

static void warmup_done(struct client *cl, struct xact *x)
{
    if (x->got != 1)
        client_fail(cl, SST_ERR_MALFORMED, "warm-up answer size");
    free(x);
    cl->started = cl->completed = 0;
    cl->retrans = 0;
    g_after_warmup(cl);
}

static void warmup(struct client *cl, void (*next)(struct client *cl))
{
    struct xact *x = calloc(1, sizeof *x);
    x->op = OP_REQUEST;
    x->arg = 1;
    g_after_warmup = next;
    cl->on_done = warmup_done;
    xact_start(cl, x);
}

/* ---- bulk ---------------------------------------------------------------------------------- */

static void bulk_done(struct client *cl, struct xact *x)
{
    if (x->reply_got != 0)
        client_fail(cl, SST_ERR_MALFORMED, "truncated upload count");
    cl->bytes_sent += x->sent;
    cl->bytes_confirmed += x->confirmed;
    cl->count_records += x->counts;
    if (x->confirmed != x->sent)
        cl->bytes_match = false;
    if (cl->active == 0) {
        cl->t1 = sst_clock_now();
        event_base_loopbreak(cl->base);
    }
}

static void on_time_up(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd;
    (void)what;
    cl->stop = true;
    if (cl->mode == MODE_BULK) {
        /* Goodput of a timed run: what the server reported as received by now (its counts
         * lag by half an RTT), over the time since the first connect -- like iperf3, which
         * also does not wait for the sender's buffer to drain.  Nothing can be compared
         * byte for byte, so bytes_match only says no count exceeded what was written. */
        cl->t1 = sst_clock_now();
        for (unsigned i = 0; i < cl->o->streams; i++) {
            struct xact *x = &cl->bulk[i];
            cl->bytes_sent += x->sent;
            cl->bytes_confirmed += x->confirmed;
            cl->count_records += x->counts;
            if (x->confirmed > x->sent)
                cl->bytes_match = false;
            if (x->s) {
                struct sst_stream_stats st;
                sst_stream_get_stats(x->s, &st);
                cl->retrans += st.bytes_retransmitted;
            }
        }
        event_base_loopbreak(cl->base);
        return;
    }
}

static void start_bulk(struct client *cl)
{
    const struct opts *o = cl->o;
    cl->bulk = calloc(o->streams, sizeof *cl->bulk);
    cl->bytes_match = true;
    cl->on_done = bulk_done;
    getrusage(RUSAGE_SELF, &cl->ru0);
    cl->t0 = sst_clock_now();
    for (unsigned i = 0; i < o->streams; i++) {
        struct xact *x = &cl->bulk[i];
        x->op = OP_UPLOAD;
        x->slot = i;
        if (o->seconds > 0)
            x->to_send = ARG_FOREVER;
        else
            x->to_send = o->bytes / o->streams + (i == 0 ? o->bytes % o->streams : 0);
        if (xact_start(cl, x) < 0)
            return;
    }
    if (o->seconds > 0) {
        struct event *t = evtimer_new(cl->base, on_time_up, cl);
        struct timeval tv = { (time_t)o->seconds, (suseconds_t)(fmod(o->seconds, 1.0) * 1e6) };
        evtimer_add(t, &tv);
        cl->tick = t;
    }
}

/* ---- request/response, cold or warm -------------------------------------------------------- */

static void rr_next(struct client *cl);

static void free_driver_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sst_driver_free(arg);
}

static void rr_next_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rr_next(arg);
}

static void rr_done(struct client *cl, struct xact *x)
{
    lat_push(cl, sst_clock_now() - x->start);
    cl->bytes_read += x->got;
    if (x->got != x->arg)
        cl->bytes_match = false;
    bool last = cl->completed == cl->o->rr;
    if (x->own && last) {
        cl->last_own = x->own; /* the loop stops now: run_client frees it afterwards */
    } else if (x->own) {
        /* Not from inside its own callback: free the cold driver from the loop. */
        struct timeval now = { 0, 0 };
        event_base_once(cl->base, -1, EV_TIMEOUT, free_driver_cb, x->own, &now);
    }
    free(x);
    if (last) {
        cl->t1 = sst_clock_now();
        event_base_loopbreak(cl->base);
        return;
    }
    if (cl->o->cold) {
        struct timeval now = { 0, 0 };
        event_base_once(cl->base, -1, EV_TIMEOUT, rr_next_cb, cl, &now);
    } else {
        rr_next(cl);
    }
}

static void rr_next(struct client *cl)
{
    struct xact *x = calloc(1, sizeof *x);
    x->op = OP_REQUEST;
    x->arg = cl->o->size;
    if (cl->o->cold) {
        /* A fresh host on a fresh port: a new channel, handshake included (paper §5.4 "cold"). */
        x->own = make_driver(cl->base, cl->o, cl->peer.family == SST_AF_INET6 ? "[::]:0" : "0.0.0.0:0",
                             false);
        if (!x->own) {
            client_fail(cl, SST_ERR_IO, "cold driver");
            free(x);
            return;
        }
        sst_ctx_set_time(sst_driver_ctx(x->own), sst_driver_now(x->own));
    } else {
        sst_ctx_set_time(cl->ctx, sst_driver_now(cl->d));
    }
    if (xact_start(cl, x) < 0)
        return;
    sst_driver_rearm(x->own ? x->own : cl->d);
}

static void start_rr(struct client *cl)
{
    cl->bytes_match = true;
    cl->on_done = rr_done;
    getrusage(RUSAGE_SELF, &cl->ru0);
    cl->t0 = sst_clock_now();
    rr_next(cl);
}

/* ---- stream creation rate ------------------------------------------------------------------ */

static void rate_launch(struct client *cl)
{
    while (!cl->err && cl->active < cl->o->window && cl->started < cl->o->rate) {
        struct xact *x = calloc(1, sizeof *x);
        x->op = OP_REQUEST;
        x->arg = cl->o->size;
        if (xact_start(cl, x) < 0)
            return;
    }
}

static void rate_done(struct client *cl, struct xact *x)
{
    lat_push(cl, sst_clock_now() - x->start);
    cl->bytes_read += x->got;
    if (x->got != x->arg)
        cl->bytes_match = false;
    free(x);
    if (cl->completed == cl->o->rate) {
        cl->t1 = sst_clock_now();
        event_base_loopbreak(cl->base);
        return;
    }
    rate_launch(cl);
}

static void start_rate(struct client *cl)
{
    cl->bytes_match = true;
    cl->on_done = rate_done;
    getrusage(RUSAGE_SELF, &cl->ru0);
    cl->t0 = sst_clock_now();
    sst_ctx_set_time(cl->ctx, sst_driver_now(cl->d));
    rate_launch(cl);
    sst_driver_rearm(cl->d);
}

/* ---- head-of-line: one bulk download + R request loops ------------------------------------- */

static void hol_loop(struct client *cl, unsigned slot)
{
    struct xact *x = calloc(1, sizeof *x);
    x->op = OP_REQUEST;
    x->flags = (uint8_t)cl->o->hol_flags;
    x->arg = cl->o->size;
    x->slot = slot;
    xact_start(cl, x);
}

static void hol_done(struct client *cl, struct xact *x)
{
    if (x == cl->bulk)
        return; /* the server never ends a download; an error was reported already */
    lat_push(cl, sst_clock_now() - x->start);
    if (x->got != x->arg)
        cl->bytes_match = false;
    unsigned slot = x->slot;
    free(x);
    if (!cl->stop) {
        hol_loop(cl, slot);
        return;
    }
    if (cl->active == 1) { /* only the download is left */
        cl->t1 = sst_clock_now();
        cl->bytes_read = cl->bulk->got - cl->bulk_base;
        event_base_loopbreak(cl->base);
    }
}

static void hol_start_loops(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd;
    (void)what;
    sst_ctx_set_time(cl->ctx, sst_driver_now(cl->d));
    getrusage(RUSAGE_SELF, &cl->ru0);
    cl->t0 = sst_clock_now();
    cl->bulk_base = cl->bulk->got; /* download bytes count from here */
    for (unsigned i = 0; i < cl->o->rr_streams; i++)
        hol_loop(cl, i);
    sst_driver_rearm(cl->d);
    struct timeval tv = { (time_t)cl->o->seconds, (suseconds_t)(fmod(cl->o->seconds, 1.0) * 1e6) };
    cl->tick = evtimer_new(cl->base, on_time_up, cl);
    evtimer_add(cl->tick, &tv);
}

static void start_hol(struct client *cl)
{
    cl->bytes_match = true;
    cl->on_done = hol_done;
    cl->bulk = calloc(1, sizeof *cl->bulk);
    cl->bulk->op = OP_DOWNLOAD;
    cl->bulk->arg = ARG_FOREVER;
    xact_start(cl, cl->bulk);
    /* Let the download fill the bottleneck before the requests start. */
    struct timeval tv = { (time_t)cl->o->hol_warmup,
                          (suseconds_t)(fmod(cl->o->hol_warmup, 1.0) * 1e6) };
    event_base_once(cl->base, -1, EV_TIMEOUT, hol_start_loops, cl, &tv);
}

/* ---- idle memory --------------------------------------------------------------------------- */

static void mem_query(struct client *cl);

/* How long idle streams and channels sit before the memory is measured: 1.5 s, or 1.5 s past
 * --detach-idle (the Detach round trip done too). */
static struct timeval idle_settle(const struct client *cl)
{
    double s = 1.5 + (cl->o->detach_idle > 0 ? cl->o->detach_idle : 0);
    struct timeval tv = { (time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6) };
    return tv;
}

static int parse_memline(struct xact *x, struct memsnap *m, unsigned long *streams, unsigned long *chans)
{
    x->reply[x->reply_got] = 0;
    unsigned long long h, r, s;
    unsigned c;
    if (sscanf((char *)x->reply, "heap=%llu rss=%llu streams=%llu channels=%u", &h, &r, &s, &c) != 4)
        return -1;
    m->heap = h;
    m->rss = r;
    *streams = (unsigned long)s;
    *chans = c;
    return 0;
}

static void idle_settled(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd;
    (void)what;
    cl->cli1 = mem_now();
    cl->t1 = sst_clock_now();
    sst_ctx_set_time(cl->ctx, sst_driver_now(cl->d));
    mem_query(cl);
    sst_driver_rearm(cl->d);
}

/* Opens idle streams, at most `window` of them waiting for the server's acceptance at a time:
 * a burst of thousands of service requests would overflow the listener's backlog. */
static void idle_launch(struct client *cl)
{
    while (!cl->err && cl->started < cl->o->idle_streams && cl->started - cl->connected < cl->o->window) {
        struct xact *ix = &cl->idle[cl->started];
        ix->op = OP_IDLE;
        if (xact_start(cl, ix) < 0)
            return;
    }
}

static void idle_done(struct client *cl, struct xact *x)
{
    if (x->op == OP_MEMORY) {
        struct memsnap *m = cl->phase == 0 ? &cl->srv0 : &cl->srv1;
        unsigned long *s = cl->phase == 0 ? &cl->srv_streams0 : &cl->srv_streams1;
        unsigned long *c = cl->phase == 0 ? &cl->srv_chans0 : &cl->srv_chans1;
        if (parse_memline(x, m, s, c) < 0)
            client_fail(cl, SST_ERR_MALFORMED, "memory line");
        free(x);
        if (cl->phase++ == 0) {
            getrusage(RUSAGE_SELF, &cl->ru0);
            cl->cli0 = mem_now();
            cl->t0 = sst_clock_now();
            if (cl->mode == MODE_IDLE_STREAMS) {
                cl->started = 0;
                idle_launch(cl);
            } else {
                for (unsigned long i = 0; i < cl->o->idle_channels; i++) {
                    struct sst_driver *d = cl->chans[i];
                    sst_time_t now = sst_driver_now(d);
                    if (!sst_host_connect(sst_driver_host(d), now, &cl->peer)) {
                        client_fail(cl, SST_ERR_LIMIT, "sst_host_connect");
                        return;
                    }
                    sst_driver_rearm(d);
                }
                struct timeval tv = { 0, 20000 };
                evtimer_add(cl->tick, &tv);
            }
        } else {
            event_base_loopbreak(cl->base);
        }
        return;
    }
    /* An idle stream is connected (the server accepted it). */
    idle_launch(cl);
    if (cl->connected == cl->o->idle_streams) {
        /* Let acknowledgements and delayed acks settle, and the streams go idle (an engine
         * gives back an inactive stream's empty buffers after 1 s, COMPACT_IDLE), before
         * measuring. */
        struct timeval tv = idle_settle(cl);
        event_base_once(cl->base, -1, EV_TIMEOUT, idle_settled, cl, &tv);
    }
}

static void mem_query(struct client *cl)
{
    struct xact *x = calloc(1, sizeof *x);
    x->op = OP_MEMORY;
    xact_start(cl, x);
}

static void chan_poll(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd;
    (void)what;
    unsigned long up = 0;
    for (unsigned long i = 0; i < cl->o->idle_channels; i++) {
        struct sst_chan *ch = sst_host_find(sst_driver_host(cl->chans[i]), &cl->peer);
        if (ch && sst_chan_state(ch) == SST_CHAN_ESTABLISHED)
            up++;
    }
    cl->connected = up;
    if (up == cl->o->idle_channels) {
        struct timeval tv = idle_settle(cl);
        event_base_once(cl->base, -1, EV_TIMEOUT, idle_settled, cl, &tv);
        return;
    }
    struct timeval tv = { 0, 20000 };
    evtimer_add(cl->tick, &tv);
}

static void start_idle(struct client *cl)
{
    cl->on_done = idle_done;
    cl->bytes_match = true;
    if (cl->mode == MODE_IDLE_STREAMS) {
        cl->idle = calloc(cl->o->idle_streams, sizeof *cl->idle);
        if (!cl->idle) {
            client_fail(cl, SST_ERR_NOMEM, "idle array");
            return;
        }
    } else {
        cl->chans = calloc(cl->o->idle_channels, sizeof *cl->chans);
        for (unsigned long i = 0; i < cl->o->idle_channels; i++) {
            cl->chans[i] = make_driver(cl->base, cl->o,
                                       cl->peer.family == SST_AF_INET6 ? "[::]:0" : "0.0.0.0:0", true);
            if (!cl->chans[i]) {
                client_fail(cl, SST_ERR_IO, "idle channel driver");
                return;
            }
        }
        cl->tick = evtimer_new(cl->base, chan_poll, cl);
    }
    mem_query(cl);
}

/* ---- client main and report ---------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return (double)v[rank - 1] / 1e3;
}

static const char *mode_name(enum mode m)
{
    static const char *names[] = { "bulk", "rr", "rate", "hol", "idle_streams", "idle_channels" };
    return names[m];
}

static void report(struct client *cl)
{
    const struct opts *o = cl->o;
    double dur = (double)(cl->t1 - cl->t0) / 1e9;
    double user = tv_sec(cl->ru1.ru_utime) - tv_sec(cl->ru0.ru_utime);
    double sys = tv_sec(cl->ru1.ru_stime) - tv_sec(cl->ru0.ru_stime);
    struct sst_chan_stats cs = { 0 };
    struct sst_chan *ch = sst_host_find(sst_driver_host(cl->d), &cl->peer);
    if (ch)
        sst_chan_get_stats(ch, &cs);
    /* The UDP endpoint's counters (whole run, warm-up included): whether GSO/GRO batch. */
    struct sst_udp_stats us = { 0 };
    if (sst_driver_udp(cl->d) != NULL)
        sst_udp_get_stats(sst_driver_udp(cl->d), &us);
    char addr[SST_ADDR_STRLEN];
    sst_addr_str(&cl->peer, addr, sizeof addr);
    FILE *f = stdout;
    fprintf(f, "{\"tool\":\"sst_perf\",\"transport\":\"sst\",\"mode\":\"%s\",\"server\":\"%s\","
               "\"security\":\"%s\",\"cc\":\"%s\",\"ok\":%s,",
            mode_name(cl->mode), addr, sst_security_name(o->sec), sst_cc_algo_name(o->cc),
            cl->err ? "false" : "true");
    if (cl->err)
        fprintf(f, "\"error\":\"%s: %s\",", cl->err_what ? cl->err_what : "", sst_strerror(cl->err));
    fprintf(f, "\"duration_s\":%.6f,\"bytes_match\":%s,\"buffer\":%" PRIu64 ",", dur,
            cl->bytes_match ? "true" : "false", o->buffer);
    switch (cl->mode) {
    case MODE_BULK:
        fprintf(f, "\"streams\":%u,\"bytes\":%" PRIu64 ",\"bytes_confirmed\":%" PRIu64
                   ",\"goodput_bps\":%.0f,\"count_records\":%" PRIu64 ",",
                o->streams, cl->bytes_sent, cl->bytes_confirmed,
                dur > 0 ? (double)cl->bytes_confirmed * 8 / dur : 0, cl->count_records);
        break;
    case MODE_HOL:
        fprintf(f, "\"rr_streams\":%u,\"size\":%" PRIu64 ",\"hol_prio\":%s,\"hol_redundant\":%s,"
                   "\"bulk_bytes\":%" PRIu64 ",\"bulk_goodput_bps\":%.0f,",
                o->rr_streams, o->size, o->hol_flags & F_PRIO ? "true" : "false",
                o->hol_flags & F_REDUNDANT ? "true" : "false", cl->bytes_read,
                dur > 0 ? (double)cl->bytes_read * 8 / dur : 0);
        break;
    case MODE_RR:
    case MODE_RATE:
        fprintf(f, "\"size\":%" PRIu64 ",\"cold\":%s,\"window\":%u,\"bytes\":%" PRIu64 ",", o->size,
                o->cold ? "true" : "false", cl->mode == MODE_RATE ? o->window : 1, cl->bytes_read);
        break;
    case MODE_IDLE_STREAMS:
    case MODE_IDLE_CHANNELS: {
        double n = (double)(cl->mode == MODE_IDLE_STREAMS ? o->idle_streams : o->idle_channels);
        if (o->detach_idle >= 0)
            fprintf(f, "\"detach_idle_s\":%g,", o->detach_idle);
        fprintf(f, "\"count\":%.0f,\"established\":%lu,\"server_streams\":[%lu,%lu],"
                   "\"server_channels\":[%lu,%lu],"
                   "\"server_heap_per\":%.1f,\"server_rss_per\":%.1f,"
                   "\"client_heap_per\":%.1f,\"client_rss_per\":%.1f,",
                n, cl->connected, cl->srv_streams0, cl->srv_streams1, cl->srv_chans0, cl->srv_chans1,
                ((double)cl->srv1.heap - (double)cl->srv0.heap) / n,
                ((double)cl->srv1.rss - (double)cl->srv0.rss) / n,
                ((double)cl->cli1.heap - (double)cl->cli0.heap) / n,
                ((double)cl->cli1.rss - (double)cl->cli0.rss) / n);
        break;
    }
    }
    if (cl->mode == MODE_RR || cl->mode == MODE_RATE || cl->mode == MODE_HOL) {
        if (cl->nlat > 0)
            qsort(cl->lat, cl->nlat, sizeof *cl->lat, cmp_u64);
        double mean = 0;
        for (size_t i = 0; i < cl->nlat; i++)
            mean += (double)cl->lat[i];
        mean = cl->nlat ? mean / (double)cl->nlat / 1e3 : 0;
        fprintf(f, "\"transactions\":%lu,\"rate_per_s\":%.1f,", cl->completed,
                dur > 0 ? (double)cl->completed / dur : 0);
        if (cl->nlat)
            fprintf(f, "\"latency_us\":{\"n\":%zu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
                       "\"min\":%.1f,\"max\":%.1f,\"mean\":%.1f},",
                    cl->nlat, pct_us(cl->lat, cl->nlat, 50), pct_us(cl->lat, cl->nlat, 90),
                    pct_us(cl->lat, cl->nlat, 99), (double)cl->lat[0] / 1e3,
                    (double)cl->lat[cl->nlat - 1] / 1e3, mean);
    }
    fprintf(f, "\"retransmits\":{\"lost_packets\":%" PRIu64 ",\"bytes_retransmitted\":%" PRIu64 "},"
               "\"channel\":{\"srtt_ms\":%.3f,\"min_rtt_ms\":%.3f,\"cwnd\":%" PRIu64
               ",\"ssthresh\":%" PRIu64 ",\"pto_count\":%" PRIu64 ",\"tx_packets\":%" PRIu64
               ",\"rx_packets\":%" PRIu64 ",\"plpmtu\":%u,\"pmtu_blackholes\":%" PRIu64 ",\"congestion_events\":%" PRIu64
               ",\"hystart_exit_cwnd\":%" PRIu64 "},"
               "\"udp\":{\"tx_datagrams\":%" PRIu64 ",\"tx_syscalls\":%" PRIu64 ",\"tx_gso_messages\":%" PRIu64
               ",\"rx_datagrams\":%" PRIu64 ",\"rx_syscalls\":%" PRIu64 ",\"rx_gro_buffers\":%" PRIu64 ",\"gso\":%s},"
               "\"cpu_s\":{\"user\":%.4f,\"sys\":%.4f}}\n",
            cs.lost_packets, cl->retrans, (double)cs.srtt / 1e6, (double)cs.min_rtt / 1e6, cs.cwnd,
            cs.ssthresh == UINT64_MAX ? 0 : cs.ssthresh, cs.pto_count_total, cs.tx_packets, cs.rx_packets,
            (unsigned)cs.plpmtu, cs.pmtu_blackholes, cs.congestion_events, cs.hystart_exit_cwnd,
            us.tx_datagrams, us.tx_syscalls, us.tx_gso_messages, us.rx_datagrams, us.rx_syscalls,
            us.rx_gro_buffers, us.gso ? "true" : "false", user, sys);
    fflush(f);
    if (!o->json)
        fprintf(stderr, "sst_perf: %s %s in %.3f s%s\n", mode_name(cl->mode), cl->err ? "FAILED" : "done",
                dur, cl->bytes_match ? "" : " (byte counts differ)");
}

static void on_overall_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_fail(arg, SST_ERR_TIMEOUT, "overall timeout");
}

static int run_client(const struct opts *o)
{
    struct client cl = { .o = o, .bytes_match = true };
    if (sst_addr_parse(&cl.peer, o->target, 5201) != 0) {
        fprintf(stderr, "sst_perf: bad server address %s\n", o->target);
        return 2;
    }
    if (o->idle_streams)
        cl.mode = MODE_IDLE_STREAMS;
    else if (o->idle_channels)
        cl.mode = MODE_IDLE_CHANNELS;
    else if (o->hol)
        cl.mode = MODE_HOL;
    else if (o->rate)
        cl.mode = MODE_RATE;
    else if (o->rr)
        cl.mode = MODE_RR;
    else
        cl.mode = MODE_BULK;
    if ((cl.mode == MODE_BULK || cl.mode == MODE_HOL) && o->bytes == 0 && o->seconds <= 0) {
        fprintf(stderr, "sst_perf: give --bytes N or --time S\n");
        return 2;
    }
    if (cl.mode == MODE_IDLE_CHANNELS) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < o->idle_channels + 64) {
            rl.rlim_cur = SST_MIN(rl.rlim_max, (rlim_t)o->idle_channels + 64);
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    cl.base = make_base();
    cl.d = make_driver(cl.base, o, cl.peer.family == SST_AF_INET6 ? "[::]:0" : "0.0.0.0:0", false);
    if (!cl.d)
        return 1;
    cl.ctx = sst_driver_ctx(cl.d);
    sst_ctx_set_time(cl.ctx, sst_driver_now(cl.d));

    struct event *to = evtimer_new(cl.base, on_overall_timeout, &cl);
    struct timeval tv = { (time_t)o->timeout, 0 };
    evtimer_add(to, &tv);

    switch (cl.mode) {
    case MODE_BULK:
        warmup(&cl, start_bulk);
        break;
    case MODE_RR:
        if (o->cold)
            start_rr(&cl); /* no warm-up: every transaction opens its own channel */
        else
            warmup(&cl, start_rr);
        break;
    case MODE_RATE:
        warmup(&cl, start_rate);
        break;
    case MODE_HOL:
        warmup(&cl, start_hol);
        break;
    case MODE_IDLE_STREAMS:
    case MODE_IDLE_CHANNELS:
        warmup(&cl, start_idle);
        break;
    }
    sst_driver_rearm(cl.d);
    event_base_dispatch(cl.base);
    getrusage(RUSAGE_SELF, &cl.ru1);
    if (cl.t1 == 0)
        cl.t1 = sst_clock_now();
    if (cl.t0 == 0)
        cl.t0 = cl.t1;
    report(&cl);
    int rc = cl.err ? 1 : (cl.bytes_match ? 0 : 3);

    event_free(to);
    if (cl.last_own)
        sst_driver_free(cl.last_own);
    if (cl.tick)
        event_free(cl.tick);
    if (cl.chans) {
        for (unsigned long i = 0; i < o->idle_channels; i++)
            if (cl.chans[i])
                sst_driver_free(cl.chans[i]);
        free(cl.chans);
    }
    /* Streams still open (idle, the download, bulk) die with the context. */
    sst_driver_free(cl.d);
    free(cl.bulk);
    free(cl.idle);
    free(cl.lat);
    event_base_free(cl.base);
    return rc;
}

/* ---- command line -------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: sst_perf server [--bind ADDR:PORT] [--security strong|light] [--cc cubic|newreno|bbr]\n"
            "                       [--buffer BYTES] [--detach-idle S]\n"
            "       sst_perf client ADDR:PORT (--bytes N | --time S) [--streams K]\n"
            "       sst_perf client ADDR:PORT --rr N --size B [--cold]\n"
            "       sst_perf client ADDR:PORT --rate N [--size B] [--window W]\n"
            "       sst_perf client ADDR:PORT --hol --time S [--size B] [--rr-streams R] [--warmup S]\n"
            "                       [--hol-prio] [--hol-redundant]\n"
            "       sst_perf client ADDR:PORT --idle-streams N | --idle-channels K\n"
            "       common: [--security strong|light] [--cc cubic|newreno|bbr] [--buffer BYTES] [--json]\n"
            "               [--detach-idle S]  streams idle S seconds give up their LSID (default 30)\n"
            "               [--timeout S]\n");
}

/* Parses a count with an optional binary suffix (k, m, g). */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    switch (*end) {
    case 'k': case 'K': v *= 1024; end++; break;
    case 'm': case 'M': v *= 1024 * 1024; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    struct opts o = {
        .bind = "0.0.0.0:5201", .sec = SST_SEC_STRONG, .cc = SST_CC_CUBIC, .streams = 1,
        .window = 64, .rr_streams = 7, .hol_warmup = 1.0, .timeout = 120, .size = 1,
        .detach_idle = -1,
    };
    const char *cmd = argv[1];
    int first = 2;
    if (strcmp(cmd, "client") == 0) {
        if (argc < 3) {
            usage();
            return 2;
        }
        o.target = argv[2];
        first = 3;
    } else if (strcmp(cmd, "server") != 0) {
        usage();
        return 2;
    }
    static const struct option lo[] = {
        { "bind", required_argument, NULL, 'b' },     { "security", required_argument, NULL, 'S' },
        { "cc", required_argument, NULL, 'c' },       { "bytes", required_argument, NULL, 'n' },
        { "time", required_argument, NULL, 't' },     { "streams", required_argument, NULL, 'P' },
        { "rr", required_argument, NULL, 'r' },       { "size", required_argument, NULL, 's' },
        { "cold", no_argument, NULL, 'C' },           { "rate", required_argument, NULL, 'R' },
        { "window", required_argument, NULL, 'w' },   { "hol", no_argument, NULL, 'H' },
        { "rr-streams", required_argument, NULL, 'k' }, { "warmup", required_argument, NULL, 'W' },
        { "idle-streams", required_argument, NULL, 'i' },
        { "idle-channels", required_argument, NULL, 'I' },
        { "json", no_argument, NULL, 'j' },           { "timeout", required_argument, NULL, 'T' },
        { "buffer", required_argument, NULL, 'B' },   { "hol-prio", no_argument, NULL, 'p' },
        { "hol-redundant", no_argument, NULL, 'D' },  { "detach-idle", required_argument, NULL, 'L' },
        { NULL, 0, NULL, 0 },
    };
    optind = first;
    int ch;
    uint64_t v;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'b': o.bind = optarg; break;
        case 'S':
            if (sst_security_parse(optarg, &o.sec) != 0) {
                fprintf(stderr, "sst_perf: --security strong|light\n");
                return 2;
            }
            break;
        case 'c':
            if (sst_cc_algo_parse(optarg, &o.cc) != 0) {
                fprintf(stderr, "sst_perf: --cc cubic|newreno|bbr\n");
                return 2;
            }
            break;
        case 'n': case 'P': case 'r': case 's': case 'R': case 'w': case 'k': case 'i': case 'I': case 'B':
            if (parse_size(optarg, &v) != 0) {
                fprintf(stderr, "sst_perf: bad number '%s'\n", optarg);
                return 2;
            }
            if (ch == 'n') o.bytes = v;
            else if (ch == 'P') o.streams = (unsigned)v;
            else if (ch == 'r') o.rr = (unsigned long)v;
            else if (ch == 's') o.size = v;
            else if (ch == 'R') o.rate = (unsigned long)v;
            else if (ch == 'w') o.window = (unsigned)v;
            else if (ch == 'k') o.rr_streams = (unsigned)v;
            else if (ch == 'i') o.idle_streams = (unsigned long)v;
            else if (ch == 'B') o.buffer = v;
            else o.idle_channels = (unsigned long)v;
            break;
        case 't': o.seconds = atof(optarg); break;
        case 'W': o.hol_warmup = atof(optarg); break;
        case 'T': o.timeout = atof(optarg); break;
        case 'L': o.detach_idle = atof(optarg); break;
        case 'C': o.cold = true; break;
        case 'H': o.hol = true; break;
        case 'p': o.hol_flags |= F_PRIO; break;
        case 'D': o.hol_flags |= F_REDUNDANT; break;
        case 'j': o.json = true; break;
        default:
            usage();
            return 2;
        }
    }
    if (optind != argc || o.streams == 0 || o.window == 0 || o.rr_streams == 0) {
        usage();
        return 2;
    }
    if (o.hol && o.seconds <= 0)
        o.seconds = 10;
    for (size_t i = 0; i < sizeof g_pattern; i++)
        g_pattern[i] = (uint8_t)(i * 131 + (i >> 8));
    signal(SIGPIPE, SIG_IGN);
    return strcmp(cmd, "server") == 0 ? run_server(&o) : run_client(&o);
}
