/* Fuzz target: stream-layer payloads from an authenticated but hostile peer -- what a peer that
 * holds valid keys can put inside its channel packets (Init, Reply, Data, Datagram, Reset,
 * Attach, Detach, acks of the stream layer, paper §4.3).  Two contexts in the simulator: A
 * connects to B's listener and opens a stream and a substream; B runs an echoing server that
 * accepts everything.  Then each record of the input (fuzz.h) acts:
 *   op % 4 == 0..1: the record's bytes reach B's stream layer as one payload from A's channel,
 *                   with a fresh sequence number (as the channel hands them up after decryption);
 *   op % 4 == 2:    time passes (1 + first byte) ms: both engines and the link run;
 *   op % 4 == 3:    A's application acts (first byte): writes, opens a substream, sends a
 *                   datagram, half-closes or resets.
 * Checked: no crash, no sanitizer report, and both contexts free cleanly (ASan's leak check). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "simctx.h"
#include "sst.h"
#include "stream_int.h"

#define FUZZ_STREAM_MAX_PAYLOAD 1500
/* Injected payloads use sequence numbers far above A's own, so they never repeat one A's
 * channel really sent (the channel's replay window would have rejected a repeat). */
#define FUZZ_STREAM_SEQ_BASE (UINT64_C(1) << 32)

static uint8_t stream_scratch[65536];
/* What the target reached, over all runs (test_fuzz checks the seeds reach the stream layer). */
static unsigned long stream_injected, stream_accepted;

/* B's server: accepts every stream and substream, echoes what it reads, closes at its end. */
static void b_stream_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    (void)arg;
    if (ev & SST_EV_SUBSTREAM) {
        struct sst_stream *k;
        while ((k = sst_stream_accept(s, b_stream_cb, NULL)) != NULL)
            sst_stream_listen(k, true);
        while (sst_stream_recv_datagram(s, stream_scratch, sizeof stream_scratch) >= 0)
            ;
    }
    for (;;) {
        sst_ssize_t n = sst_stream_read(s, stream_scratch, sizeof stream_scratch);
        if (n > 0) {
            (void)sst_stream_write(s, stream_scratch, (size_t)n);   /* short writes: dropped */
            continue;
        }
        if (n == 0 || (n < 0 && n != SST_ERR_AGAIN)) {
            sst_stream_close(s);       /* end of stream or error: give it back */
            return;
        }
        break;
    }
}

static void b_accept(struct sst_listener *l, void *arg)
{
    (void)arg;
    struct sst_stream *s;
    while ((s = sst_accept(l, b_stream_cb, NULL)) != NULL) {
        stream_accepted++;
        sst_stream_listen(s, true);
    }
}

/* A's streams only drain what arrives. */
static void a_stream_cb(struct sst_stream *s, unsigned ev, void *arg)
{
    (void)ev;
    bool *up = arg;
    if (up != NULL && (ev & (SST_EV_CONNECTED | SST_EV_ERROR)))
        *up = true;
    while (sst_stream_read(s, stream_scratch, sizeof stream_scratch) > 0)
        ;
}

static bool stream_not_up(void *arg) { return !*(bool *)arg; }

struct stream_world {
    struct sim *sim;
    struct simctx_node a, b;
    struct sst_stream *top, *sub;
    bool up;
};

static void stream_world_init(struct stream_world *w, uint64_t seed)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = seed;
    w->sim = sim_new(&sc);
    if (w->sim == NULL)
        abort();
    struct sst_addr aaddr = sim_addr4(1, 4000), baddr = sim_addr4(2, 4000);
    simctx_node_init(&w->a, w->sim, &aaddr, "fuzz-stream-a", 1, NULL);
    simctx_node_init(&w->b, w->sim, &baddr, "fuzz-stream-b", 2, NULL);
    struct sim_link_params lp = { .rate_bps = 100000000, .delay = SST_MS(1), .queue_bytes = 1000000 };
    if (sim_path(w->sim, &aaddr, &baddr, &lp, NULL, NULL, NULL) != 0)
        abort();
    if (sst_listen(w->b.c, "fz", b_accept, NULL) == NULL)
        abort();
    w->up = false;
    simctx_node_enter(&w->a);
    w->top = sst_connect(w->a.c, &baddr, "fz", a_stream_cb, &w->up);
    sst_stream_write(w->top, "hello", 5);
    simctx_node_leave(&w->a);
    sim_run_while(w->sim, stream_not_up, &w->up, SST_SEC(5));
    simctx_node_enter(&w->a);
    w->sub = sst_stream_open_substream(w->top, a_stream_cb, NULL);
    if (w->sub != NULL)
        sst_stream_write(w->sub, "sub", 3);
    simctx_node_leave(&w->a);
    sim_run_until(w->sim, sim_now(w->sim) + SST_MS(20));
}

static void stream_world_free(struct stream_world *w)
{
    simctx_node_free(&w->a);
    simctx_node_free(&w->b);
    sim_free(w->sim);
}

/* One payload into B's stream layer, as its channel from A would hand it up. */
static void stream_inject(struct stream_world *w, uint64_t seq, const uint8_t *p, size_t len)
{
    struct conn *cn = sst_conn_find_peer(w->b.c, &w->a.addr);
    if (cn == NULL || cn->ch == NULL)
        return;                        /* the hostile input already ended the conn */
    sst_ctx_set_time(w->b.c, sim_now(w->sim));
    stream_injected++;
    (void)sst_srecv_recv(cn, cn->ch, seq, p, len);
    sst_ctx_dispatch(w->b.c);
    simctx_node_leave(&w->b);
}

static void stream_app_act(struct stream_world *w, uint8_t what)
{
    struct sst_stream *s = (what & 0x80) && w->sub != NULL ? w->sub : w->top;
    if (s == NULL)
        return;
    simctx_node_enter(&w->a);
    switch (what & 7) {
    case 0:
    case 1:
        memset(stream_scratch, what, 3000);
        (void)sst_stream_write(s, stream_scratch, 1000u * (what & 3));
        break;
    case 2: {
        struct sst_stream *k = sst_stream_open_substream(s, a_stream_cb, NULL);
        if (k != NULL) {
            (void)sst_stream_write(k, "kid", 3);
            sst_stream_close(k);
        }
        break;
    }
    case 3:
        (void)sst_stream_send_datagram(s, "datagram", 8);
        break;
    case 4:
        (void)sst_stream_shutdown(s, SST_SHUT_WRITE);
        break;
    case 5:
        (void)sst_stream_shutdown(s, SST_SHUT_RESET);
        break;
    default:
        (void)sst_stream_write_msg(s, "msg", 3);
        break;
    }
    simctx_node_leave(&w->a);
}

int fuzz_stream_one(const uint8_t *in, size_t size)
{
    static struct stream_world w;
    stream_world_init(&w, 1);
    uint64_t seq = FUZZ_STREAM_SEQ_BASE;
    static uint8_t payload[FUZZ_STREAM_MAX_PAYLOAD];
    size_t pos = 0;
    struct fuzz_rec r;
    while (fuzz_next(in, size, &pos, &r)) {
        switch (r.op % 4) {
        case 0:
        case 1: {
            size_t len = r.len < sizeof payload ? r.len : sizeof payload;
            memcpy(payload, r.data, len);
            stream_inject(&w, seq++, payload, len);
            break;
        }
        case 2:
            sim_run_until(w.sim, sim_now(w.sim) + SST_MS(1 + (r.len > 0 ? r.data[0] : 0)));
            break;
        default:
            stream_app_act(&w, r.len > 0 ? r.data[0] : 0);
            break;
        }
    }
    sim_run_until(w.sim, sim_now(w.sim) + SST_MS(500));
    stream_world_free(&w);
    return 0;
}

/* ---- seeds: the stream-layer payloads B's channel really handed up in a busy exchange ---- */

struct stream_capture {
    uint8_t script[65536];
    size_t len;
};
static struct stream_capture stream_cap;
static const struct sst_chan_upper *stream_real_upper;

static bool stream_capture_recv(void *ctx, struct sst_chan *ch, uint64_t seq, const uint8_t *p,
                                size_t len)
{
    fuzz_put(stream_cap.script, sizeof stream_cap.script, &stream_cap.len, 0, p, len);
    return stream_real_upper->recv(ctx, ch, seq, p, len);
}

void fuzz_stream_seeds(fuzz_emit_fn emit, void *arg)
{
    static struct stream_world w;
    stream_world_init(&w, 2);
    struct conn *cn = sst_conn_find_peer(w.b.c, &w.a.addr);
    if (cn == NULL || cn->ch == NULL)
        abort();
    /* Listen in on B's channel: the same upper layer, with every payload recorded. */
    static struct sst_chan_upper up;
    stream_real_upper = &sst_conn_upper_ops;
    up = sst_conn_upper_ops;
    up.recv = stream_capture_recv;
    sst_chan_set_upper(cn->ch, &up, cn);
    stream_cap.len = 0;
    static const uint8_t acts[] = { 0, 1, 2, 3, 6, 0x81, 0x82, 0x83, 0x84, 4 };
    for (size_t i = 0; i < sizeof acts; i++) {
        stream_app_act(&w, acts[i]);
        sim_run_until(w.sim, sim_now(w.sim) + SST_MS(10));
    }
    sim_run_until(w.sim, sim_now(w.sim) + SST_MS(200));
    emit(arg, stream_cap.script, stream_cap.len);
    /* The same payloads with time passing between them, and with a reset at the end. */
    uint8_t *mixed = malloc(sizeof stream_cap.script);
    if (mixed != NULL) {
        size_t n = 0, pos = 0;
        struct fuzz_rec r;
        static const uint8_t tick = 3, reset = 5;
        while (fuzz_next(stream_cap.script, stream_cap.len, &pos, &r)) {
            fuzz_put(mixed, sizeof stream_cap.script, &n, r.op, r.data, r.len);
            fuzz_put(mixed, sizeof stream_cap.script, &n, 2, &tick, 1);
        }
        fuzz_put(mixed, sizeof stream_cap.script, &n, 3, &reset, 1);
        emit(arg, mixed, n);
        free(mixed);
    }
    sst_chan_set_upper(cn->ch, &sst_conn_upper_ops, cn);
    stream_world_free(&w);
}
