/* A narrated run of the SST engine in the deterministic simulator: two hosts negotiate a channel
 * over a 10 Mbit/s x 50 ms link, move bulk data with CUBIC, survive 1% loss, and a restarted peer
 * is detected by stateless reset.  Used by `make demo` until the shim demo supersedes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "err.h"
#include "host.h"
#include "packet.h"
#include "sim.h"
#include "simhost.h"
#include "wire.h"

struct node {
    struct sim *sim;
    struct sim_host *sh;
    struct sst_addr addr;
    struct sst_chan *chan;
    uint64_t rx_bytes, acked, lost;
    bool source;
    int down_err, downs;
    sst_time_t up_at;
};

static size_t fill(void *ctx, struct sst_chan *ch, uint64_t seq, uint8_t *buf, size_t cap)
{
    struct node *n = ctx;
    (void)ch;
    (void)seq;
    if (!n->source)
        return 0;
    sst_put16(buf, 1);
    buf[2] = SST_PT_DATA << 4;
    buf[3] = 0;
    memset(buf + 4, 'x', cap - 4);
    return cap;
}
static void acked(void *ctx, struct sst_chan *ch, uint64_t seq) { (void)ch; (void)seq; ((struct node *)ctx)->acked++; }
static void lost(void *ctx, struct sst_chan *ch, uint64_t seq) { (void)ch; (void)seq; ((struct node *)ctx)->lost++; }
static bool recv_cb(void *ctx, struct sst_chan *ch, uint64_t seq, const uint8_t *p, size_t len)
{
    (void)ch;
    (void)seq;
    (void)p;
    ((struct node *)ctx)->rx_bytes += len;
    return true;
}
static const struct sst_chan_upper upper = { .fill = fill, .acked = acked, .lost = lost, .recv = recv_cb };

static void on_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err)
{
    struct node *n = ctx;
    char a[SST_ADDR_STRLEN];
    sst_addr_str(&n->addr, a, sizeof a);
    double t = (double)sim_now(n->sim) / 1e6;
    if (ev == SST_CHAN_EV_UP) {
        n->chan = ch;
        n->up_at = sim_now(n->sim);
        sst_chan_set_upper(ch, &upper, n);
        struct sst_chan_stats st;
        sst_chan_get_stats(ch, &st);
        printf("  %8.1f ms  %-16s channel UP (%s, %s, %s)\n", t, a, st.initiator ? "initiator" : "responder",
               st.security == SST_SEC_STRONG ? "strong" : "light",
               st.aead == SST_AEAD_AES256GCM ? "AES-256-GCM" : "ChaCha20-Poly1305");
    } else if (ev == SST_CHAN_EV_DOWN) {
        n->downs++;
        n->down_err = err;
        n->chan = NULL;
        printf("  %8.1f ms  %-16s channel DOWN: %s\n", t, a, err ? sst_strerror(err) : "closed");
    }
}

static struct sim_host *make_host(struct sim *s, struct node *n, uint8_t i, const struct sst_host_config *cfg)
{
    memset(n, 0, sizeof *n);
    n->sim = s;
    n->addr = sim_addr4(i, 8661);
    struct sst_host_io io = { .ctx = n, .chan_event = on_event };
    n->sh = sim_host_new(s, &n->addr, cfg, &io);
    return n->sh;
}

static void fixed_random(void *ctx, void *buf, size_t len) { memset(buf, *(uint8_t *)ctx, len); }

int main(void)
{
    struct sim_config sc;
    sim_config_default(&sc);
    sc.seed = 2007;
    sc.pool_packets = 20000;
    struct sim *s = sim_new(&sc);
    struct sst_host_config cfg;
    sst_host_config_default(&cfg);
    uint8_t seed = 7;
    sst_identity_generate(&cfg.identity, fixed_random, &seed);
    struct node a, b;
    if (!make_host(s, &a, 1, NULL) || !make_host(s, &b, 2, &cfg))
        return 1;
    struct sim_link_params p = { .rate_bps = 10000000, .delay = SST_MS(25), .queue_bytes = 62500 };
    struct sim_link *ab, *ba;
    sim_path(s, &a.addr, &b.addr, &p, NULL, &ab, &ba);

    printf("SST in the simulator: 10 Mbit/s, 50 ms RTT, 1-BDP drop-tail queue (virtual time)\n\n");
    printf("1. Negotiation (Noise XX, one round trip before the initiator may send)\n");
    a.source = true;
    sim_host_connect(a.sh, &b.addr);
    sim_run_until(s, SST_SEC(10));
    struct sst_chan_stats st;
    sst_chan_get_stats(a.chan, &st);
    printf("\n2. Bulk transfer with %s for 10 s\n", st.cc_name);
    printf("   goodput %.2f Mbit/s (%.0f%% of the link), srtt %.1f ms, cwnd %llu bytes, lost %llu\n",
           (double)b.rx_bytes * 8 / (10.0 - (double)a.up_at / 1e9) / 1e6,
           (double)b.rx_bytes * 8 / (10.0 - (double)a.up_at / 1e9) / 1e5, (double)st.srtt / 1e6,
           (unsigned long long)st.cwnd, (unsigned long long)a.lost);

    printf("\n3. The same channel with 1%% random loss for 10 s\n");
    p.loss = 0.01;
    sim_link_set_params(ab, &p);
    uint64_t before = b.rx_bytes, lost_before = a.lost;
    sim_run_until(s, SST_SEC(20));
    printf("   goodput %.2f Mbit/s; %llu packets reported lost to the layer above (the stream layer resends them)\n",
           (double)(b.rx_bytes - before) * 8 / 10.0 / 1e6, (unsigned long long)(a.lost - lost_before));
    a.source = false;
    p.loss = 0;
    sim_link_set_params(ab, &p);
    sim_run_until(s, SST_SEC(21));

    printf("\n4. The responder restarts with the same host key; the initiator pings its old channel\n");
    sim_host_free(b.sh);
    make_host(s, &b, 2, &cfg);
    sst_chan_ping(a.chan, sim_now(s));
    sim_host_wake(a.sh);
    sim_run_until(s, SST_SEC(22));
    printf("\n5. A fresh channel to the restarted host\n");
    sim_host_connect(a.sh, &b.addr);
    sim_run_until(s, SST_SEC(23));

    struct sim_stats ss;
    sim_get_stats(s, &ss);
    printf("\n%llu simulator events; the whole run is reproducible from seed %llu\n",
           (unsigned long long)ss.events, (unsigned long long)sc.seed);
    int ok = a.downs == 1 && a.down_err == SST_ERR_RESET && a.chan != NULL;
    sim_host_free(a.sh);
    sim_host_free(b.sh);
    sim_free(s);
    return ok ? 0 : 1;
}
