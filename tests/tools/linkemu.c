/* linkemu: a user-space link emulator that joins two network namespaces through TUN devices
 * and applies, per direction, loss, Gilbert-Elliott burst loss, a rate-limited drop-tail
 * queue, one-way delay and reordering (a stand-in for netem, which these machines lack). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

/* A slot holds one IP packet; the TUN devices run at MTU 1500 (netns.sh sets it), so 2048
 * leaves room for a larger MTU up to this size.  Larger packets would be truncated by read(2). */
#define SLOT_BYTES 2048
/* Packets read from one TUN device per wakeup before looking at the other one and the
 * timer: keeps one busy direction from starving the other (cf. redis NET_MAX_WRITES_PER_EVENT). */
#define READ_BUDGET 64
#define DEFAULT_SLOTS 8192
#define NSEC_PER_SEC 1000000000ull
#define RNG_BLOCK 4096

enum { DIR_AB = 0, DIR_BA = 1, NDIRS = 2 };
static const char *const dir_names[NDIRS] = {"ab", "ba"};

/* Deterministic random stream: ChaCha20 keystream (libsodium) keyed from --seed and the
 * direction, so each direction's loss/reorder decisions replay exactly for a given seed. */
struct rng {
    uint8_t key[crypto_stream_chacha20_KEYBYTES];
    uint64_t block;          /* nonce of the next keystream block */
    size_t pos;              /* bytes of buf already used */
    uint8_t buf[RNG_BLOCK];
};

/* The per-direction model parameters (all zero = a perfect, infinitely fast link). */
struct params {
    uint64_t rate_bps;       /* serialization rate, bits/s; 0 = unlimited (no queue) */
    uint64_t delay_ns;       /* one-way propagation delay added after serialization */
    uint64_t queue_bytes;    /* drop-tail limit on bytes not yet serialized; 0 = auto */
    double loss;             /* independent loss probability per packet */
    bool ge;                 /* Gilbert-Elliott burst loss enabled */
    double ge_p;             /* P(good -> bad) per packet */
    double ge_r;             /* P(bad -> good) per packet */
    double ge_bad_loss;      /* loss probability in the bad state (netem's 1-h) */
    double ge_good_loss;     /* loss probability in the good state (netem's 1-k) */
    double reorder;          /* probability a packet is held back by reorder_gap_ns */
    uint64_t reorder_gap_ns; /* extra delay of a reordered packet; later packets overtake it */
};

struct stats {
    uint64_t rx_pkts, rx_bytes;       /* read from the input device */
    uint64_t tx_pkts, tx_bytes;       /* written to the output device */
    uint64_t drop_loss;               /* random loss */
    uint64_t drop_ge;                 /* Gilbert-Elliott loss */
    uint64_t drop_queue;              /* drop-tail queue overflow */
    uint64_t drop_pool;               /* no free slot (bounded memory) */
    uint64_t drop_write;              /* output device refused the packet */
    uint64_t reordered;               /* packets held back for reordering */
    uint64_t backlog_max;             /* high-water of queued bytes */
    uint64_t inflight_max;            /* high-water of slots in use */
};

struct slot {
    uint64_t at;             /* delivery time, CLOCK_MONOTONIC ns (virtual in --simulate) */
    uint64_t seq;            /* arrival order: ties in `at` keep FIFO order */
    uint32_t len;
    uint8_t data[SLOT_BYTES];
};

/* One direction: the model state plus a fixed pool of slots and a min-heap of slots awaiting
 * delivery ordered by (at, seq).  Everything is allocated once at start-up. */
struct dir {
    const char *name;
    struct params p;
    struct stats s;
    struct rng rng;
    bool ge_bad;             /* Gilbert-Elliott state */
    uint64_t busy_until;     /* when the serializer finishes the last admitted packet */
    uint64_t seq;
    uint32_t nslots;
    struct slot *slots;
    uint32_t *freelist;      /* LIFO: reusing hot slots keeps the resident set small */
    uint32_t nfree;
    uint32_t *heap;
    uint32_t nheap;
    int in_fd, out_fd;
};

enum verdict { PASS, DROP_LOSS, DROP_GE, DROP_QUEUE };

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("linkemu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---- randomness ---- */

static void rng_init(struct rng *r, uint64_t seed, int dir)
{
    uint8_t in[16];
    for (int i = 0; i < 8; i++)
        in[i] = (uint8_t)(seed >> (8 * i));
    memcpy(in + 8, "linkemu", 7);
    in[15] = (uint8_t)dir;
    crypto_generichash(r->key, sizeof r->key, in, sizeof in, NULL, 0);
    r->block = 0;
    r->pos = RNG_BLOCK;
}

static uint64_t rng_u64(struct rng *r)
{
    if (r->pos + 8 > RNG_BLOCK) {
        uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
        for (size_t i = 0; i < sizeof nonce; i++)
            nonce[i] = (uint8_t)(r->block >> (8 * i));
        r->block++;
        crypto_stream_chacha20(r->buf, RNG_BLOCK, nonce, r->key);
        r->pos = 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->buf[r->pos + i] << (8 * i);
    r->pos += 8;
    return v;
}

/* True with probability p.  Draws nothing when p is 0 or 1, so enabling one impairment does
 * not shift the random stream of another that is switched off. */
static bool rng_chance(struct rng *r, double p)
{
    if (p <= 0.0)
        return false;
    if (p >= 1.0)
        return true;
    return (double)(rng_u64(r) >> 11) * 0x1p-53 < p;
}

/* ---- the link model (pure: time and packet length in, verdict out) ---- */

static uint64_t tx_ns(const struct dir *d, uint32_t len)
{
    return (uint64_t)len * 8ull * NSEC_PER_SEC / d->p.rate_bps;
}

/* Decides the fate of a len-byte packet arriving at now; on PASS sets *at to its delivery
 * time.  Order of stages, as in netem: loss, then the bottleneck queue, then delay. */
static enum verdict model_admit(struct dir *d, uint64_t now, uint32_t len, uint64_t *at)
{
    if (d->p.ge) {
        /* Gilbert-Elliott: step the two-state Markov chain once per packet, then lose the
         * packet with the loss probability of the state it lands in. */
        if (d->ge_bad) {
            if (rng_chance(&d->rng, d->p.ge_r))
                d->ge_bad = false;
        } else if (rng_chance(&d->rng, d->p.ge_p)) {
            d->ge_bad = true;
        }
        if (rng_chance(&d->rng, d->ge_bad ? d->p.ge_bad_loss : d->p.ge_good_loss))
            return DROP_GE;
    }
    if (rng_chance(&d->rng, d->p.loss))
        return DROP_LOSS;

    uint64_t done = now;
    if (d->p.rate_bps) {
        /* The serializer's backlog in bytes is exactly the time it still needs times the
         * rate, so the drop-tail queue needs no list of its own. */
        uint64_t backlog = 0;
        if (d->busy_until > now)
            backlog = (uint64_t)((double)(d->busy_until - now) * (double)d->p.rate_bps /
                                 (8.0 * NSEC_PER_SEC));
        if (backlog + len > d->p.queue_bytes)
            return DROP_QUEUE;
        if (backlog + len > d->s.backlog_max)
            d->s.backlog_max = backlog + len;
        done = (d->busy_until > now ? d->busy_until : now) + tx_ns(d, len);
        d->busy_until = done;
    }
    *at = done + d->p.delay_ns;
    if (rng_chance(&d->rng, d->p.reorder)) {
        *at += d->p.reorder_gap_ns;
        d->s.reordered++;
    }
    return PASS;
}

/* ---- slot pool and delivery heap ---- */

static void dir_alloc(struct dir *d, uint32_t nslots)
{
    d->nslots = nslots;
    d->slots = calloc(nslots, sizeof *d->slots);
    d->freelist = calloc(nslots, sizeof *d->freelist);
    d->heap = calloc(nslots, sizeof *d->heap);
    if (!d->slots || !d->freelist || !d->heap)
        die("out of memory for %u slots", nslots);
    for (uint32_t i = 0; i < nslots; i++)
        d->freelist[i] = nslots - 1 - i;
    d->nfree = nslots;
}

static void dir_free(struct dir *d)
{
    free(d->slots);
    free(d->freelist);
    free(d->heap);
}

static bool slot_before(const struct dir *d, uint32_t a, uint32_t b)
{
    const struct slot *x = &d->slots[a], *y = &d->slots[b];
    return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

static void heap_push(struct dir *d, uint32_t idx)
{
    uint32_t i = d->nheap++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!slot_before(d, idx, d->heap[parent]))
            break;
        d->heap[i] = d->heap[parent];
        i = parent;
    }
    d->heap[i] = idx;
}

static uint32_t heap_pop(struct dir *d)
{
    uint32_t top = d->heap[0];
    uint32_t last = d->heap[--d->nheap];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= d->nheap)
            break;
        if (c + 1 < d->nheap && slot_before(d, d->heap[c + 1], d->heap[c]))
            c++;
        if (!slot_before(d, d->heap[c], last))
            break;
        d->heap[i] = d->heap[c];
        i = c;
    }
    if (d->nheap)
        d->heap[i] = last;
    return top;
}

static uint64_t dir_next(const struct dir *d)
{
    return d->nheap ? d->slots[d->heap[0]].at : UINT64_MAX;
}

/* Runs a packet already stored in slot idx through the model: queued for delivery, or the
 * slot goes straight back to the free list. */
static void dir_admit(struct dir *d, uint32_t idx, uint64_t now)
{
    struct slot *sl = &d->slots[idx];
    d->s.rx_pkts++;
    d->s.rx_bytes += sl->len;
    uint64_t at = 0;
    switch (model_admit(d, now, sl->len, &at)) {
    case PASS:
        sl->at = at;
        sl->seq = d->seq++;
        heap_push(d, idx);
        /* The caller already took idx off the free list, so this counts it. */
        if (d->nslots - d->nfree > d->s.inflight_max)
            d->s.inflight_max = d->nslots - d->nfree;
        return;
    case DROP_LOSS:
        d->s.drop_loss++;
        break;
    case DROP_GE:
        d->s.drop_ge++;
        break;
    case DROP_QUEUE:
        d->s.drop_queue++;
        break;
    }
    d->freelist[d->nfree++] = idx;
}

/* ---- statistics ---- */

static void stats_print(FILE *f, const struct dir *d)
{
    const struct stats *s = &d->s;
    fprintf(f,
            "linkemu stats dir=%s rx_pkts=%" PRIu64 " rx_bytes=%" PRIu64 " tx_pkts=%" PRIu64
            " tx_bytes=%" PRIu64 " drop_loss=%" PRIu64 " drop_ge=%" PRIu64
            " drop_queue=%" PRIu64 " drop_pool=%" PRIu64 " drop_write=%" PRIu64
            " reordered=%" PRIu64 " backlog_max=%" PRIu64 " inflight_max=%" PRIu64
            " pending=%u\n",
            d->name, s->rx_pkts, s->rx_bytes, s->tx_pkts, s->tx_bytes, s->drop_loss, s->drop_ge,
            s->drop_queue, s->drop_pool, s->drop_write, s->reordered, s->backlog_max,
            s->inflight_max, d->nheap);
}

static uint64_t stats_gen;

/* Writes both directions to stderr and, atomically (tmp + rename), to the stats file. */
static void stats_dump(struct dir *dirs, const char *stats_file)
{
    stats_gen++;
    for (int i = 0; i < NDIRS; i++)
        stats_print(stderr, &dirs[i]);
    if (!stats_file)
        return;
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", stats_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "linkemu: %s: %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "linkemu gen=%" PRIu64 "\n", stats_gen);
    for (int i = 0; i < NDIRS; i++)
        stats_print(f, &dirs[i]);
    if (fclose(f) != 0 || rename(tmp, stats_file) != 0)
        fprintf(stderr, "linkemu: %s: %s\n", stats_file, strerror(errno));
}

/* ---- option parsing ---- */

/* Splits a number from its unit suffix; the unit is matched case-insensitively. */
static double parse_num(const char *opt, const char *text, const char **unit)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || v < 0)
        die("%s: bad number '%s'", opt, text);
    *unit = end;
    return v;
}

/* Rates as tc writes them: bit, kbit, mbit, gbit (decimal); bare k/m/g mean the same; a bare
 * number is bits/s; bps/kbps/mbps are bytes/s as in tc. */
static uint64_t parse_rate(const char *opt, const char *text)
{
    const char *u;
    double v = parse_num(opt, text, &u);
    static const struct { const char *s; double mul; } units[] = {
        {"", 1}, {"bit", 1}, {"k", 1e3}, {"kbit", 1e3}, {"m", 1e6}, {"mbit", 1e6},
        {"g", 1e9}, {"gbit", 1e9}, {"bps", 8}, {"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(u, units[i].s))
            return (uint64_t)(v * units[i].mul + 0.5);
    die("%s: unknown rate unit in '%s' (use bit, kbit, mbit, gbit)", opt, text);
}

/* Times: ns, us, ms, s; a bare number is milliseconds. */
static uint64_t parse_time(const char *opt, const char *text)
{
    const char *u;
    double v = parse_num(opt, text, &u);
    static const struct { const char *s; double mul; } units[] = {
        {"", 1e6}, {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"sec", 1e9},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(u, units[i].s))
            return (uint64_t)(v * units[i].mul + 0.5);
    die("%s: unknown time unit in '%s' (use ns, us, ms, s)", opt, text);
}

/* Sizes as tc writes them: b, kb/k, mb/m (binary multiples); a bare number is bytes. */
static uint64_t parse_size(const char *opt, const char *text)
{
    const char *u;
    double v = parse_num(opt, text, &u);
    static const struct { const char *s; double mul; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"m", 1048576}, {"mb", 1048576},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(u, units[i].s))
            return (uint64_t)(v * units[i].mul + 0.5);
    die("%s: unknown size unit in '%s' (use b, kb, mb)", opt, text);
}

/* Probabilities are percentages as in netem; the '%' is optional. */
static double parse_pct(const char *opt, const char *text)
{
    const char *u;
    double v = parse_num(opt, text, &u);
    if ((*u && strcmp(u, "%")) || v > 100.0)
        die("%s: bad percentage '%s'", opt, text);
    return v / 100.0;
}

/* --ge P,R[,BADLOSS[,GOODLOSS]]: netem's "loss gemodel p r 1-h 1-k", all in percent. */
static void parse_ge(const char *opt, const char *text, struct params *p)
{
    char buf[128];
    if (strlen(text) >= sizeof buf)
        die("%s: too long", opt);
    strcpy(buf, text);
    double v[4] = {0, 0, 100, 0};
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == 4)
            die("%s: at most 4 values", opt);
        v[n++] = parse_pct(opt, tok) * 100.0;
    }
    if (n < 2)
        die("%s: need at least P,R", opt);
    p->ge = true;
    p->ge_p = v[0] / 100.0;
    p->ge_r = v[1] / 100.0;
    p->ge_bad_loss = v[2] / 100.0;
    p->ge_good_loss = v[3] / 100.0;
}

struct config {
    const char *ns[NDIRS];
    const char *tun[NDIRS];
    const char *ready_file;
    const char *stats_file;
    uint64_t seed;
    bool seed_set;
    uint32_t slots;
    uint64_t sim_count;
    uint32_t sim_size;
    uint64_t sim_interval_ns;
};

static void usage(FILE *f)
{
    fputs("usage: linkemu [options]\n"
          "  --ns-a NS --ns-b NS       namespaces (name under /var/run/netns or a path) in which\n"
          "                            to create the TUN devices; default: the current one\n"
          "  --tun-a NAME --tun-b NAME TUN device names (default lemu-a, lemu-b)\n"
          "  model options; plain = both directions, suffix -ab or -ba = one direction\n"
          "  (ab = packets read from A and written to B):\n"
          "  --rate R          serialization rate: 100mbit, 20mbit, 500kbit; 0 = unlimited\n"
          "  --queue S         drop-tail limit on unserialized bytes: 640kb (default: 100 ms\n"
          "                    at the rate, at least 64kb)\n"
          "  --delay T         one-way delay: 25ms, 500us\n"
          "  --loss P          random loss: 1%\n"
          "  --ge P,R[,B[,G]]  Gilbert-Elliott burst loss (percent): P good->bad, R bad->good,\n"
          "                    B loss in bad (default 100), G loss in good (default 0)\n"
          "  --reorder P       hold back P% of packets by the reorder gap so later ones pass\n"
          "  --reorder-gap T   default 1ms\n"
          "  --seed N          seed for loss/reorder decisions (default: random, printed)\n"
          "  --slots N         packet slots per direction: the memory bound (default 8192)\n"
          "  --ready-file F    write the pid to F once both devices exist\n"
          "  --stats-file F    rewrite stats into F on SIGUSR1 and at exit\n"
          "  --simulate N      no devices: push N packets a->b through the model in virtual\n"
          "  --sim-size B      time (size B bytes, default 1500; one every --sim-interval T,\n"
          "  --sim-interval T  default 0 = back to back) and print stats and measurements\n"
          "signals: SIGUSR1 prints stats; SIGTERM/SIGINT print stats and exit.\n",
          f);
}

static void parse_args(int argc, char **argv, struct config *c, struct dir *dirs)
{
    bool queue_set[NDIRS] = {false, false};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(arg, "--", 2))
            die("unexpected argument '%s' (try --help)", arg);
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof name)
            die("unknown option '%s'", arg);
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                die("%s needs a value", name);
            val = argv[++i];
        }

        /* Global options first. */
        if (!strcmp(name, "--ns-a")) { c->ns[DIR_AB] = val; continue; }
        if (!strcmp(name, "--ns-b")) { c->ns[DIR_BA] = val; continue; }
        if (!strcmp(name, "--tun-a")) { c->tun[DIR_AB] = val; continue; }
        if (!strcmp(name, "--tun-b")) { c->tun[DIR_BA] = val; continue; }
        if (!strcmp(name, "--ready-file")) { c->ready_file = val; continue; }
        if (!strcmp(name, "--stats-file")) { c->stats_file = val; continue; }
        if (!strcmp(name, "--seed")) {
            c->seed = strtoull(val, NULL, 0);
            c->seed_set = true;
            continue;
        }
        if (!strcmp(name, "--slots")) {
            unsigned long n = strtoul(val, NULL, 0);
            if (n < 2 || n > (1ul << 22))
                die("--slots: between 2 and %lu", 1ul << 22);
            c->slots = (uint32_t)n;
            continue;
        }
        if (!strcmp(name, "--simulate")) { c->sim_count = strtoull(val, NULL, 0); continue; }
        if (!strcmp(name, "--sim-size")) {
            uint64_t sz = parse_size(name, val);
            if (sz < 20 || sz > SLOT_BYTES)
                die("--sim-size: between 20 and %d", SLOT_BYTES);
            c->sim_size = (uint32_t)sz;
            continue;
        }
        if (!strcmp(name, "--sim-interval")) { c->sim_interval_ns = parse_time(name, val); continue; }

        /* Model options: --X (both), --X-ab, --X-ba. */
        bool which[NDIRS] = {true, true};
        if (nlen > 3 && !strcmp(name + nlen - 3, "-ab")) {
            which[DIR_BA] = false;
            name[nlen - 3] = '\0';
        } else if (nlen > 3 && !strcmp(name + nlen - 3, "-ba")) {
            which[DIR_AB] = false;
            name[nlen - 3] = '\0';
        }
        for (int d = 0; d < NDIRS; d++) {
            if (!which[d])
                continue;
            struct params *p = &dirs[d].p;
            if (!strcmp(name, "--rate")) {
                p->rate_bps = parse_rate(name, val);
            } else if (!strcmp(name, "--delay")) {
                p->delay_ns = parse_time(name, val);
            } else if (!strcmp(name, "--queue")) {
                p->queue_bytes = parse_size(name, val);
                queue_set[d] = true;
            } else if (!strcmp(name, "--loss")) {
                p->loss = parse_pct(name, val);
            } else if (!strcmp(name, "--ge")) {
                parse_ge(name, val, p);
            } else if (!strcmp(name, "--reorder")) {
                p->reorder = parse_pct(name, val);
            } else if (!strcmp(name, "--reorder-gap")) {
                p->reorder_gap_ns = parse_time(name, val);
            } else {
                die("unknown option '%s' (try --help)", arg);
            }
        }
    }
    for (int d = 0; d < NDIRS; d++) {
        struct params *p = &dirs[d].p;
        if (!queue_set[d]) {
            /* 100 ms worth of the rate: a typical router buffer, and enough that kernel TCP
             * can fill the link at the RTTs the tests use. */
            uint64_t q = p->rate_bps / 8 / 10;
            p->queue_bytes = q < 65536 ? 65536 : q;
        }
        if (p->queue_bytes < SLOT_BYTES && p->rate_bps)
            die("--queue must be at least %d bytes (one packet)", SLOT_BYTES);
    }
}

/* ---- devices ---- */

static int ns_open(const char *ns)
{
    char path[PATH_MAX];
    if (strchr(ns, '/'))
        snprintf(path, sizeof path, "%s", ns);
    else
        snprintf(path, sizeof path, "/var/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("namespace %s: %s", path, strerror(errno));
    return fd;
}

/* Creates TUN device `name` inside namespace ns (or the current one).  A TUN device belongs
 * to the namespace its file was opened in, so we enter ns, open, and come back; the process
 * is single-threaded, so setns(2) is safe here. */
static int tun_open(const char *ns, const char *name)
{
    int home = -1;
    if (ns) {
        home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (home < 0)
            die("/proc/self/ns/net: %s", strerror(errno));
        int nsfd = ns_open(ns);
        if (setns(nsfd, CLONE_NEWNET) < 0)
            die("setns %s: %s", ns, strerror(errno));
        close(nsfd);
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        die("/dev/net/tun: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (strlen(name) >= IFNAMSIZ)
        die("device name '%s' too long", name);
    memcpy(ifr.ifr_name, name, strlen(name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        die("TUNSETIFF %s%s%s: %s", name, ns ? " in " : "", ns ? ns : "", strerror(errno));
    if (ns) {
        if (setns(home, CLONE_NEWNET) < 0)
            die("setns back: %s", strerror(errno));
        close(home);
    }
    return fd;
}

static uint64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Reads up to READ_BUDGET packets from d's input device straight into free slots. */
static void dir_pump(struct dir *d, uint64_t now)
{
    static uint8_t scratch[SLOT_BYTES];
    for (int n = 0; n < READ_BUDGET; n++) {
        if (d->nfree == 0) {
            /* Bounded memory: read and discard so the device queue keeps moving. */
            ssize_t r = read(d->in_fd, scratch, sizeof scratch);
            if (r <= 0)
                return;
            d->s.rx_pkts++;
            d->s.rx_bytes += (uint64_t)r;
            d->s.drop_pool++;
            continue;
        }
        uint32_t idx = d->freelist[d->nfree - 1];
        struct slot *sl = &d->slots[idx];
        ssize_t r = read(d->in_fd, sl->data, sizeof sl->data);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            die("read from %s side: %s", d->name, strerror(errno));
        }
        if (r == 0)
            return;
        d->nfree--;
        sl->len = (uint32_t)r;
        dir_admit(d, idx, now);
    }
}

/* Writes every packet whose delivery time has come to d's output device. */
static void dir_deliver(struct dir *d, uint64_t now)
{
    while (d->nheap && d->slots[d->heap[0]].at <= now) {
        uint32_t idx = heap_pop(d);
        struct slot *sl = &d->slots[idx];
        ssize_t w = write(d->out_fd, sl->data, sl->len);
        if (w == (ssize_t)sl->len) {
            d->s.tx_pkts++;
            d->s.tx_bytes += sl->len;
        } else {
            /* EIO while the peer device is down, EAGAIN/ENOBUFS under pressure: a link drops. */
            d->s.drop_write++;
        }
        d->freelist[d->nfree++] = idx;
    }
}

static void write_ready_file(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) != 0)
        die("ready file %s: %s", path, strerror(errno));
}

enum { TAG_A, TAG_B, TAG_TIMER, TAG_SIGNAL };

static int run_live(struct config *c, struct dir *dirs)
{
    /* Timer slack defaults to 50 us; 1 ns makes timerfd wakeups as precise as the kernel allows. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    int tun_a = tun_open(c->ns[DIR_AB], c->tun[DIR_AB]);
    int tun_b = tun_open(c->ns[DIR_BA], c->tun[DIR_BA]);
    dirs[DIR_AB].in_fd = tun_a;
    dirs[DIR_AB].out_fd = tun_b;
    dirs[DIR_BA].in_fd = tun_b;
    dirs[DIR_BA].out_fd = tun_a;

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask: %s", strerror(errno));
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || tfd < 0 || ep < 0)
        die("signalfd/timerfd/epoll: %s", strerror(errno));
    const struct { int fd; uint64_t tag; } watch[] = {
        {tun_a, TAG_A}, {tun_b, TAG_B}, {tfd, TAG_TIMER}, {sfd, TAG_SIGNAL},
    };
    for (size_t i = 0; i < sizeof watch / sizeof watch[0]; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = watch[i].tag};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, watch[i].fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }

    if (c->ready_file)
        write_ready_file(c->ready_file);
    fprintf(stderr, "linkemu: running pid %d seed %" PRIu64 "\n", (int)getpid(), c->seed);

    uint64_t armed = UINT64_MAX;
    bool running = true;
    while (running) {
        struct epoll_event evs[8];
        int n = epoll_wait(ep, evs, 8, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        uint64_t now = mono_now();
        for (int i = 0; i < n; i++) {
            if ((evs[i].events & (EPOLLERR | EPOLLHUP)) && evs[i].data.u64 <= TAG_B)
                die("TUN device %s failed", evs[i].data.u64 == TAG_A ? "a" : "b");
            switch (evs[i].data.u64) {
            case TAG_A:
                dir_pump(&dirs[DIR_AB], now);
                break;
            case TAG_B:
                dir_pump(&dirs[DIR_BA], now);
                break;
            case TAG_TIMER: {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                    die("timerfd read: %s", strerror(errno));
                armed = UINT64_MAX;
                break;
            }
            case TAG_SIGNAL: {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    if (si.ssi_signo == SIGUSR1)
                        stats_dump(dirs, c->stats_file);
                    else
                        running = false;
                }
                break;
            }
            }
        }
        now = mono_now();
        for (int d = 0; d < NDIRS; d++)
            dir_deliver(&dirs[d], now);

        /* One absolute timer for the earliest pending delivery of either direction. */
        uint64_t next = dir_next(&dirs[DIR_AB]);
        if (dir_next(&dirs[DIR_BA]) < next)
            next = dir_next(&dirs[DIR_BA]);
        if (next != armed) {
            struct itimerspec its;
            memset(&its, 0, sizeof its);
            if (next != UINT64_MAX) {
                its.it_value.tv_sec = (time_t)(next / NSEC_PER_SEC);
                its.it_value.tv_nsec = (long)(next % NSEC_PER_SEC);
            }
            if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
                die("timerfd_settime: %s", strerror(errno));
            armed = next;
        }
    }
    stats_dump(dirs, c->stats_file);
    close(ep);
    close(tfd);
    close(sfd);
    close(tun_a);
    close(tun_b);
    return 0;
}

/* ---- simulation: the same model in virtual time, for tests and for calibration ---- */

struct sim_meas {
    uint64_t first_out, first_len;   /* first delivery time and its size */
    uint64_t last_at;                /* last delivery, ns */
    uint64_t delivered, bytes;
    double delay_sum;                /* sum of (delivery - arrival) */
    uint64_t out_of_order;           /* deliveries with a seq below one already delivered */
    uint64_t max_seq;
    bool any;
    uint64_t loss_bursts, lost;      /* runs of consecutive losses in arrival order */
    bool in_burst;
};

static void sim_deliver_until(struct dir *d, uint64_t t, const uint64_t *arrival,
                              struct sim_meas *m)
{
    while (d->nheap && d->slots[d->heap[0]].at <= t) {
        uint32_t idx = heap_pop(d);
        struct slot *sl = &d->slots[idx];
        d->s.tx_pkts++;
        d->s.tx_bytes += sl->len;
        if (m->delivered++ == 0) {
            m->first_out = sl->at;
            m->first_len = sl->len;
        }
        m->bytes += sl->len;
        m->last_at = sl->at;
        m->delay_sum += (double)(sl->at - arrival[idx]);
        if (m->any && sl->seq < m->max_seq)
            m->out_of_order++;
        if (!m->any || sl->seq > m->max_seq)
            m->max_seq = sl->seq;
        m->any = true;
        d->freelist[d->nfree++] = idx;
    }
}

static int run_sim(struct config *c, struct dir *dirs)
{
    struct dir *d = &dirs[DIR_AB];
    uint64_t *arrival = calloc(d->nslots, sizeof *arrival);
    if (!arrival)
        die("out of memory");
    struct sim_meas m;
    memset(&m, 0, sizeof m);
    uint64_t t = 0;
    for (uint64_t i = 0; i < c->sim_count; i++, t += c->sim_interval_ns) {
        sim_deliver_until(d, t, arrival, &m);
        uint64_t lost_before = d->s.drop_loss + d->s.drop_ge + d->s.drop_queue + d->s.drop_pool;
        if (d->nfree == 0) {
            d->s.rx_pkts++;
            d->s.rx_bytes += c->sim_size;
            d->s.drop_pool++;
        } else {
            uint32_t idx = d->freelist[--d->nfree];
            d->slots[idx].len = c->sim_size;
            arrival[idx] = t;
            dir_admit(d, idx, t);
        }
        bool lost = d->s.drop_loss + d->s.drop_ge + d->s.drop_queue + d->s.drop_pool > lost_before;
        if (lost) {
            m.lost++;
            if (!m.in_burst)
                m.loss_bursts++;
        }
        m.in_burst = lost;
    }
    sim_deliver_until(d, UINT64_MAX, arrival, &m);
    stats_print(stdout, d);
    /* Throughput between the first and last delivery: the first packet's bytes left the
     * serializer before the window opened, so they do not count. */
    double span = m.last_at > m.first_out ? (double)(m.last_at - m.first_out) / 1e9 : 0;
    uint64_t span_bytes = m.bytes - m.first_len;
    printf("linkemu sim delivered=%" PRIu64 " lost=%" PRIu64 " loss_rate=%.6f loss_bursts=%" PRIu64
           " mean_burst=%.4f out_of_order=%" PRIu64 " mean_delay_ms=%.6f throughput_bps=%.0f\n",
           m.delivered, m.lost, c->sim_count ? (double)m.lost / (double)c->sim_count : 0.0,
           m.loss_bursts, m.loss_bursts ? (double)m.lost / (double)m.loss_bursts : 0.0,
           m.out_of_order, m.delivered ? m.delay_sum / (double)m.delivered / 1e6 : 0.0,
           span > 0 ? (double)span_bytes * 8.0 / span : 0.0);
    free(arrival);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        die("sodium_init failed");
    struct config c = {
        .tun = {"lemu-a", "lemu-b"},
        .slots = DEFAULT_SLOTS,
        .sim_size = 1500,
    };
    static struct dir dirs[NDIRS];
    for (int d = 0; d < NDIRS; d++) {
        dirs[d].name = dir_names[d];
        dirs[d].p.reorder_gap_ns = 1000000;
        dirs[d].in_fd = dirs[d].out_fd = -1;
    }
    parse_args(argc, argv, &c, dirs);
    if (!c.seed_set)
        randombytes_buf(&c.seed, sizeof c.seed);
    for (int d = 0; d < NDIRS; d++) {
        rng_init(&dirs[d].rng, c.seed, d);
        dir_alloc(&dirs[d], c.slots);
    }
    int rc = c.sim_count ? run_sim(&c, dirs) : run_live(&c, dirs);
    for (int d = 0; d < NDIRS; d++)
        dir_free(&dirs[d]);
    return rc;
}
