/* Unit tests for the UDP endpoint (core/io/udp.c) on loopback: batching, GSO/GRO, the EAGAIN
 * queue, dual-stack v4-mapped handling, local addresses (replies from the address the request
 * went to) and sockaddr conversion. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "io/clock.h"
#include "io/udp.h"

/* ---- helpers ---- */

/* Datagram i carries its index in the first 4 bytes and a pattern derived from i after that, so
 * the receiver can check every byte without keeping copies. */
static uint8_t pattern_byte(uint32_t i, size_t j) { return (uint8_t)(i * 31u + j * 7u + (j >> 8)); }

static void fill_dgram(uint8_t *buf, uint32_t i, size_t len)
{
    for (size_t j = 0; j < len; j++)
        buf[j] = pattern_byte(i, j);
    if (len >= 4) {
        buf[0] = (uint8_t)(i >> 24);
        buf[1] = (uint8_t)(i >> 16);
        buf[2] = (uint8_t)(i >> 8);
        buf[3] = (uint8_t)i;
    }
}

/* Deterministic mixed sizes in [4, 1400]. */
static size_t size_of(uint32_t i)
{
    uint32_t x = i * 2654435761u + 12345u;
    return 4 + (x >> 8) % 1397;
}

#define MAX_RX 4096

struct rx_log {
    unsigned count;
    unsigned bad;              /* datagrams whose bytes did not match */
    size_t (*expect_len)(uint32_t i);
    uint32_t max_index;
    uint8_t seen[MAX_RX];      /* times each index arrived */
    uint32_t order[MAX_RX];    /* arrival order */
    struct sst_addr last_from;
    bool scribble;             /* write the tailroom, as in-place decryption may */
};

static void on_rx(void *ctx, const struct sst_addr *from, uint8_t *pkt, size_t len)
{
    struct rx_log *l = ctx;
    l->last_from = *from;
    if (len < 4) {
        l->bad++;
        return;
    }
    uint32_t i = ((uint32_t)pkt[0] << 24) | ((uint32_t)pkt[1] << 16) | ((uint32_t)pkt[2] << 8) | pkt[3];
    bool ok = i < l->max_index && i < MAX_RX && len == l->expect_len(i);
    for (size_t j = 4; ok && j < len; j++)
        ok = pkt[j] == pattern_byte(i, j);
    if (!ok) {
        l->bad++;
    } else {
        l->seen[i]++;
        if (l->count < MAX_RX)
            l->order[l->count] = i;
    }
    l->count++;
    if (l->scribble)
        memset(pkt + len, 0xEE, SST_UDP_TAILROOM);
}

/* Receives until `want` datagrams arrived or 2 s passed. */
static void drain(struct sst_udp *u, struct rx_log *l, unsigned want)
{
    sst_time_t deadline = sst_clock_now() + SST_SEC(2);
    while (l->count < want && sst_clock_now() < deadline) {
        struct pollfd p = {.fd = sst_udp_fd(u), .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            while (sst_udp_recv(u, on_rx, l) > 0) {
            }
        }
    }
}

static struct sst_udp *open_on(const char *ip, const struct sst_udp_config *cfg, struct sst_addr *bound)
{
    struct sst_addr a;
    ck_assert_int_eq(sst_addr_parse(&a, ip, 0), 0);
    struct sst_udp *u = NULL;
    ck_assert_int_eq(sst_udp_open(&u, &a, cfg), 0);
    ck_assert_int_eq(sst_udp_local_addr(u, bound), 0);
    ck_assert_uint_ne(bound->port, 0);
    return u;
}

static const char *const loopbacks[] = {"127.0.0.1", "::1"};

/* ---- address conversion ---- */

START_TEST(test_udp_addr_roundtrip)
{
    static const char *const texts[] = {"127.0.0.1:9", "10.1.2.3:65535", "[::1]:8661", "[2001:db8::5]:1",
                                        "0.0.0.0:0"};
    for (size_t t = 0; t < SST_ARRAY_LEN(texts); t++) {
        struct sst_addr a, b;
        ck_assert_int_eq(sst_addr_parse(&a, texts[t], 0), 0);
        struct sockaddr_storage ss;
        socklen_t len;
        ck_assert_int_eq(sst_addr_to_sockaddr(&a, 0, &ss, &len), 0);
        ck_assert_int_eq(ss.ss_family, a.family == SST_AF_INET4 ? AF_INET : AF_INET6);
        ck_assert_int_eq(sst_addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
        ck_assert_msg(sst_addr_eq(&a, &b), "round trip of %s", texts[t]);
        /* Every address also fits an IPv6 socket and converts back to itself. */
        ck_assert_int_eq(sst_addr_to_sockaddr(&a, AF_INET6, &ss, &len), 0);
        ck_assert_int_eq(ss.ss_family, AF_INET6);
        ck_assert_int_eq(sst_addr_from_sockaddr(&b, (struct sockaddr *)&ss, len), 0);
        ck_assert_msg(sst_addr_eq(&a, &b), "v6-socket round trip of %s", texts[t]);
    }
}
END_TEST

START_TEST(test_udp_addr_v4mapped_and_errors)
{
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(4242)};
    static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
    memcpy(&in6.sin6_addr, mapped, 16);
    struct sst_addr a;
    ck_assert_int_eq(sst_addr_from_sockaddr(&a, (struct sockaddr *)&in6, sizeof in6), 0);
    ck_assert_int_eq(a.family, SST_AF_INET4);
    ck_assert_uint_eq(a.port, 4242);
    ck_assert_mem_eq(a.ip, mapped + 12, 4);

    /* v4-mapped written as an IPv6 sst_addr goes onto an IPv4 socket as plain IPv4. */
    struct sst_addr m = {.family = SST_AF_INET6, .port = 7};
    memcpy(m.ip, mapped, 16);
    struct sockaddr_storage ss;
    socklen_t len;
    ck_assert_int_eq(sst_addr_to_sockaddr(&m, AF_INET, &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_mem_eq(&((struct sockaddr_in *)&ss)->sin_addr, mapped + 12, 4);

    /* Text names the same host as the sockaddr: "[::ffff:192.0.2.7]:9" is IPv4 192.0.2.7
     * (sstd gets such names from shims of dual-stack sockets), and equals "192.0.2.7:9". */
    struct sst_addr pm, p4;
    ck_assert_int_eq(sst_addr_parse(&pm, "[::ffff:192.0.2.7]:9", 0), 0);
    ck_assert_int_eq(pm.family, SST_AF_INET4);
    ck_assert_uint_eq(pm.port, 9);
    ck_assert_mem_eq(pm.ip, mapped + 12, 4);
    ck_assert_int_eq(sst_addr_parse(&p4, "192.0.2.7:9", 0), 0);
    ck_assert(sst_addr_eq(&pm, &p4));
    ck_assert_int_eq(sst_addr_parse(&pm, "::ffff:192.0.2.7", 8661), 0);
    ck_assert_int_eq(pm.family, SST_AF_INET4);
    ck_assert_uint_eq(pm.port, 8661);
    /* ::192.0.2.7 (IPv4-compatible, deprecated) and ::ffff:0:a.b.c.d are not mapped. */
    ck_assert_int_eq(sst_addr_parse(&pm, "[::192.0.2.7]:9", 0), 0);
    ck_assert_int_eq(pm.family, SST_AF_INET6);
    ck_assert_int_eq(sst_addr_parse(&pm, "[::ffff:0:192.0.2.7]:9", 0), 0);
    ck_assert_int_eq(pm.family, SST_AF_INET6);

    /* A numeric IPv6 zone is the scope id, and sst_addr_str writes it back (sstd's names for
     * link-local hosts); names, zero, and zones on IPv4 are rejected. */
    struct sst_addr z;
    char zs[SST_ADDR_STRLEN];
    ck_assert_int_eq(sst_addr_parse(&z, "[fe80::1%3]:9", 0), 0);
    ck_assert_int_eq(z.family, SST_AF_INET6);
    ck_assert_uint_eq(z.scope_id, 3);
    ck_assert_uint_eq(z.port, 9);
    ck_assert_str_eq(sst_addr_str(&z, zs, sizeof zs), "[fe80::1%3]:9");
    ck_assert_int_eq(sst_addr_parse(&z, "fe80::1%4294967295", 8661), 0);
    ck_assert_uint_eq(z.scope_id, 4294967295u);
    ck_assert_str_eq(sst_addr_str(&z, zs, sizeof zs), "[fe80::1%4294967295]:8661");
    ck_assert_int_eq(sst_addr_parse(&z, "[fe80::1]:9", 0), 0);
    ck_assert_uint_eq(z.scope_id, 0);
    ck_assert_str_eq(sst_addr_str(&z, zs, sizeof zs), "[fe80::1]:9");
    static const char *const bad_zones[] = {"[fe80::1%eth0]:9", "[fe80::1%0]:9", "[fe80::1%]:9", "10.0.0.1%3",
                                            "[fe80::1%3x]:9", "[fe80::1%4294967296]:9", "[fe80::1%-1]:9"};
    for (size_t i = 0; i < SST_ARRAY_LEN(bad_zones); i++)
        ck_assert_msg(sst_addr_parse(&z, bad_zones[i], 0) == SST_ERR_INVAL, "accepted %s", bad_zones[i]);

    /* A real IPv6 address cannot go onto an IPv4 socket; no family is rejected. */
    struct sst_addr v6;
    ck_assert_int_eq(sst_addr_parse(&v6, "[2001:db8::1]:5", 0), 0);
    ck_assert_int_eq(sst_addr_to_sockaddr(&v6, AF_INET, &ss, &len), SST_ERR_INVAL);
    struct sst_addr none = {0};
    ck_assert_int_eq(sst_addr_to_sockaddr(&none, 0, &ss, &len), SST_ERR_INVAL);

    /* Short lengths and foreign families are rejected. */
    struct sockaddr_in in = {.sin_family = AF_INET};
    ck_assert_int_eq(sst_addr_from_sockaddr(&a, (struct sockaddr *)&in, sizeof in - 1), SST_ERR_INVAL);
    ck_assert_int_eq(sst_addr_from_sockaddr(&a, (struct sockaddr *)&in6, sizeof in6 - 1), SST_ERR_INVAL);
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    ck_assert_int_eq(sst_addr_from_sockaddr(&a, (struct sockaddr *)&un, sizeof un), SST_ERR_INVAL);

    /* Scope IDs survive for link-local IPv6. */
    struct sockaddr_in6 ll = {.sin6_family = AF_INET6, .sin6_port = htons(1), .sin6_scope_id = 3};
    ll.sin6_addr.s6_addr[0] = 0xfe;
    ll.sin6_addr.s6_addr[1] = 0x80;
    ll.sin6_addr.s6_addr[15] = 1;
    ck_assert_int_eq(sst_addr_from_sockaddr(&a, (struct sockaddr *)&ll, sizeof ll), 0);
    ck_assert_uint_eq(a.scope_id, 3);
    ck_assert_int_eq(sst_addr_to_sockaddr(&a, 0, &ss, &len), 0);
    ck_assert_uint_eq(((struct sockaddr_in6 *)&ss)->sin6_scope_id, 3);
}
END_TEST

/* ---- mixed sizes through the batch path ---- */

START_TEST(test_udp_mixed_sizes_batched)
{
    const char *ip = loopbacks[_i];
    struct sst_addr ra, sa;
    struct sst_udp *rx = open_on(ip, NULL, &ra);
    struct sst_udp *tx = open_on(ip, NULL, &sa);
    static struct rx_log log;
    memset(&log, 0, sizeof log);
    log.expect_len = size_of;
    const uint32_t n = 2000;
    log.max_index = n;
    uint8_t buf[1500];
    for (uint32_t i = 0; i < n; i++) {
        size_t len = size_of(i);
        fill_dgram(buf, i, len);
        ck_assert_int_eq(sst_udp_send(tx, &ra, buf, len), 0);
        if (i % 150 == 149) {  /* a burst, then the driver would flush */
            ck_assert_int_eq(sst_udp_flush(tx), 0);
            drain(rx, &log, i + 1);
        }
    }
    ck_assert_int_eq(sst_udp_flush(tx), 0);
    drain(rx, &log, n);

    ck_assert_uint_eq(log.bad, 0);
    ck_assert_uint_eq(log.count, n);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_msg(log.seen[i] == 1, "datagram %u seen %u times", i, log.seen[i]);
    ck_assert_msg(sst_addr_eq(&log.last_from, &sa), "source address is the sender's");

    struct sst_udp_stats st;
    sst_udp_get_stats(tx, &st);
    ck_assert_uint_eq(st.tx_datagrams, n);
    ck_assert_uint_eq(st.tx_errors, 0);
    ck_assert_uint_eq(st.tx_queued, 0);
    /* Batching: far fewer system calls than datagrams (each flush sends 150 in <= 3 calls). */
    ck_assert_uint_lt(st.tx_syscalls, n / 20);
    sst_udp_get_stats(rx, &st);
    ck_assert_uint_eq(st.rx_datagrams, n);
    ck_assert_uint_lt(st.rx_syscalls, n);
    sst_udp_close(rx);
    sst_udp_close(tx);
}
END_TEST

/* ---- GSO send, with and without GRO on the receiver ---- */

static size_t gso_len(uint32_t i) { return i % 41 == 40 ? 500 : 1200; }

START_TEST(test_udp_gso_batch)
{
    const char *ip = loopbacks[_i / 2];
    bool gro = _i % 2;
    struct sst_udp_config rcfg = {.no_gro = !gro};
    struct sst_addr ra, rb, sa;
    struct sst_udp *rx = open_on(ip, &rcfg, &ra);
    struct sst_udp *rx2 = open_on(ip, &rcfg, &rb);
    struct sst_udp *tx = open_on(ip, NULL, &sa);
    struct sst_udp_stats st;
    sst_udp_get_stats(tx, &st);
    ck_assert_msg(st.gso, "kernel supports UDP GSO (>= 4.18)");
    sst_udp_get_stats(rx, &st);
    ck_assert(st.gro == gro);

    static struct rx_log la, lb;
    memset(&la, 0, sizeof la);
    memset(&lb, 0, sizeof lb);
    la.expect_len = lb.expect_len = gso_len;
    la.max_index = lb.max_index = 1000;
    la.scribble = lb.scribble = true;
    /* Runs: 41 datagrams (40 x 1200 + 1 x 500) to A, 41 to B, 41 to A again. */
    uint8_t buf[1200];
    unsigned na = 0, nb = 0;
    for (uint32_t i = 0; i < 123; i++) {
        size_t len = gso_len(i);
        fill_dgram(buf, i, len);
        bool to_b = i / 41 == 1;
        ck_assert_int_eq(sst_udp_send(tx, to_b ? &rb : &ra, buf, len), 0);
        if (to_b)
            nb++;
        else
            na++;
    }
    ck_assert_int_eq(sst_udp_flush(tx), 0);
    sst_udp_get_stats(tx, &st);
    ck_assert_uint_eq(st.tx_datagrams, 123);
    ck_assert_uint_eq(st.tx_gso_messages, 3);   /* one per run */
    ck_assert_uint_eq(st.tx_syscalls, 1);

    drain(rx, &la, na);
    drain(rx2, &lb, nb);
    ck_assert_uint_eq(la.bad + lb.bad, 0);
    ck_assert_uint_eq(la.count, na);
    ck_assert_uint_eq(lb.count, nb);
    for (uint32_t i = 0; i < 123; i++)
        ck_assert_uint_eq(i / 41 == 1 ? lb.seen[i] : la.seen[i], 1);
    /* Within one run, segments arrive in order. */
    for (unsigned k = 1; k < 41; k++)
        ck_assert_uint_eq(la.order[k], la.order[k - 1] + 1);
    sst_udp_get_stats(rx, &st);
    ck_assert_uint_eq(st.rx_datagrams, na);
    if (gro)  /* loopback hands a GRO socket the GSO super-packet whole: it had to be split */
        ck_assert_uint_ge(st.rx_gro_buffers, 1);
    else
        ck_assert_uint_eq(st.rx_gro_buffers, 0);
    sst_udp_close(rx);
    sst_udp_close(rx2);
    sst_udp_close(tx);
}
END_TEST

/* ---- EAGAIN and GSO fallback through an injected sendmmsg ---- */

/* Loopback never reports EAGAIN (loopback_xmit orphans each skb, returning its memory to the
 * sender's SO_SNDBUF at once), so the full-socket path is driven by a wrapper around the real
 * sendmmsg: it sends at most `budget` messages, then fails like a full socket buffer. */
static struct {
    int budget;            /* messages still allowed; < 0: unlimited */
    int fail_gso_errno;    /* if set, GSO messages fail with this errno */
    unsigned gso_seen;     /* GSO messages offered */
    unsigned calls;
} fake;

static int fake_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int n, int flags)
{
    fake.calls++;
    if (msgs[0].msg_hdr.msg_controllen > 0) {
        fake.gso_seen++;
        if (fake.fail_gso_errno) {
            errno = fake.fail_gso_errno;
            return -1;
        }
    }
    if (fake.budget == 0) {
        errno = EAGAIN;
        return -1;
    }
    unsigned allow = fake.budget < 0 ? n : SST_MIN(n, (unsigned)fake.budget);
    int r = sendmmsg(fd, msgs, allow, flags);
    if (r > 0 && fake.budget > 0)
        fake.budget -= r;
    return r;
}

static size_t len_900(uint32_t i) { (void)i; return 900; }

START_TEST(test_udp_eagain_queue_and_bound)
{
    memset(&fake, 0, sizeof fake);
    struct sst_udp_config cfg = {.queue_len = 64, .sendmmsg_fn = fake_sendmmsg, .no_gso = true};
    struct sst_addr ra, sa;
    struct sst_udp *rx = open_on("127.0.0.1", NULL, &ra);
    struct sst_udp *tx = open_on("127.0.0.1", &cfg, &sa);
    static struct rx_log log;
    memset(&log, 0, sizeof log);
    log.expect_len = len_900;
    log.max_index = 1000;
    uint8_t buf[900];
    uint32_t next = 0;

    /* Socket "full" from the start: everything stays queued. */
    fake.budget = 0;
    for (; next < 50; next++) {
        fill_dgram(buf, next, 900);
        ck_assert_int_eq(sst_udp_send(tx, &ra, buf, 900), 0);
    }
    ck_assert_int_eq(sst_udp_flush(tx), SST_ERR_AGAIN);
    ck_assert(sst_udp_blocked(tx));
    ck_assert_uint_eq(sst_udp_queued(tx), 50);

    /* Partial progress: 20 messages get out, the rest waits. */
    fake.budget = 20;
    ck_assert_int_eq(sst_udp_flush(tx), SST_ERR_AGAIN);
    ck_assert_uint_eq(sst_udp_queued(tx), 30);

    /* Fill the bounded queue while blocked: 34 more fit, the next 10 are dropped and counted. */
    for (; next < 84; next++) {
        fill_dgram(buf, next, 900);
        ck_assert_int_eq(sst_udp_send(tx, &ra, buf, 900), 0);
    }
    for (uint32_t k = 0; k < 10; k++) {
        fill_dgram(buf, 84 + k, 900);
        ck_assert_int_eq(sst_udp_send(tx, &ra, buf, 900), SST_ERR_LIMIT);
    }
    ck_assert_uint_eq(sst_udp_queued(tx), 64);

    /* Writable again: everything queued goes out, in order, exactly once. */
    fake.budget = -1;
    ck_assert_int_eq(sst_udp_flush(tx), 0);
    ck_assert(!sst_udp_blocked(tx));
    drain(rx, &log, 84);
    ck_assert_uint_eq(log.bad, 0);
    ck_assert_uint_eq(log.count, 84);
    for (uint32_t i = 0; i < 84; i++) {
        ck_assert_uint_eq(log.seen[i], 1);
        ck_assert_uint_eq(log.order[i], i);
    }
    struct sst_udp_stats st;
    sst_udp_get_stats(tx, &st);
    ck_assert_uint_eq(st.tx_dropped_full, 10);
    ck_assert_uint_eq(st.tx_datagrams, 84);
    ck_assert_uint_eq(st.tx_queue_high, 64);
    ck_assert_uint_eq(st.tx_eagain, 2);
    sst_udp_close(rx);
    sst_udp_close(tx);
}
END_TEST

/* Datagrams built in the queue's own slot (sst_udp_tx_slot) are queued without a copy and
 * arrive intact and in order, mixed with copied ones; a full queue or an oversized request gets
 * no slot.  The socket is held "full" so the queue fills. */
START_TEST(test_udp_tx_slot_in_place)
{
    memset(&fake, 0, sizeof fake);
    struct sst_udp_config cfg = {.queue_len = 8, .max_datagram = 1000, .sendmmsg_fn = fake_sendmmsg,
                                 .no_gso = true};
    struct sst_addr ra, sa;
    struct sst_udp *rx = open_on("127.0.0.1", NULL, &ra);
    struct sst_udp *tx = open_on("127.0.0.1", &cfg, &sa);
    static struct rx_log log;
    memset(&log, 0, sizeof log);
    log.expect_len = len_900;
    log.max_index = 100;
    fake.budget = 0;
    ck_assert_ptr_null(sst_udp_tx_slot(tx, 1001));                 /* beyond a slot */
    uint8_t buf[900];
    for (uint32_t i = 0; i < 8; i++) {
        uint8_t *slot = sst_udp_tx_slot(tx, 1000);
        ck_assert_ptr_nonnull(slot);
        ck_assert_ptr_eq(sst_udp_tx_slot(tx, 900), slot);           /* the same until sent */
        if (i % 3 == 2) {                                           /* some copied as before */
            fill_dgram(buf, i, 900);
            ck_assert_int_eq(sst_udp_send(tx, &ra, buf, 900), 0);
        } else {
            fill_dgram(slot, i, 900);
            ck_assert_int_eq(sst_udp_send(tx, &ra, slot, 900), 0);
        }
    }
    ck_assert_uint_eq(sst_udp_queued(tx), 8);
    ck_assert_ptr_null(sst_udp_tx_slot(tx, 900));                  /* queue full */
    /* The queue wraps: 5 go out, the freed slots are reused in place. */
    fake.budget = 5;
    ck_assert_int_eq(sst_udp_flush(tx), SST_ERR_AGAIN);
    for (uint32_t i = 8; i < 13; i++) {
        uint8_t *slot = sst_udp_tx_slot(tx, 900);
        ck_assert_ptr_nonnull(slot);
        fill_dgram(slot, i, 900);
        ck_assert_int_eq(sst_udp_send(tx, &ra, slot, 900), 0);
    }
    fake.budget = -1;
    ck_assert_int_eq(sst_udp_flush(tx), 0);
    drain(rx, &log, 13);
    ck_assert_uint_eq(log.bad, 0);
    ck_assert_uint_eq(log.count, 13);
    for (uint32_t i = 0; i < 13; i++)
        ck_assert_uint_eq(log.order[i], i);
    struct sst_udp_stats st;
    sst_udp_get_stats(tx, &st);
    ck_assert_uint_eq(st.tx_in_place, 11);      /* all but i = 2 and 5 */
    sst_udp_close(rx);
    sst_udp_close(tx);
}
END_TEST

/* When the queue is full but the socket is not blocked, send flushes to make room. */
START_TEST(test_udp_full_queue_flushes)
{
    struct sst_udp_config cfg = {.queue_len = 16};
    struct sst_addr ra, sa;
    struct sst_udp *rx = open_on("127.0.0.1", NULL, &ra);
    struct sst_udp *tx = open_on("127.0.0.1", &cfg, &sa);
    static struct rx_log log;
    memset(&log, 0, sizeof log);
    log.expect_len = len_900;
    log.max_index = 1000;
    uint8_t buf[900];
    for (uint32_t i = 0; i < 100; i++) {
        fill_dgram(buf, i, 900);
        ck_assert_int_eq(sst_udp_send(tx, &ra, buf, 900), 0);
        ck_assert_uint_le(sst_udp_queued(tx), 16);
    }
    ck_assert_int_eq(sst_udp_flush(tx), 0);
    drain(rx, &log, 100);
    ck_assert_uint_eq(log.bad, 0);
    ck_assert_uint_eq(log.count, 100);
    struct sst_udp_stats st;
    sst_udp_get_stats(tx, &st);
    ck_assert_uint_eq(st.tx_dropped_full, 0);
    sst_udp_close(rx);
    sst_udp_close(tx);
}
END_TEST

/* A real tiny SO_SNDBUF: the kernel's minimum (SO_SNDBUFFORCE of 1 byte rounds up to ~4.5 KiB).
 * Every datagram must still arrive, whether or not the kernel pushes back. */
START_TEST(test_udp_tiny_sndbuf_delivers)
{
    struct sst_udp_config cfg = {.sndbuf = 1};
    struct sst_addr ra, sa;
    struct sst_udp *rx = open_on("127.0.0.1", NULL, &ra);
    struct sst_udp *tx = open_on("127.0.0.1", &cfg, &sa);
    struct sst_udp_stats st;
    sst_udp_get_stats(tx, &st);
    ck_assert_int_lt(st.sndbuf, 16384);
    static struct rx_log log;
    memset(&log, 0, sizeof log);
    log.expect_len = gso_len;
    log.max_index = 1000;
    uint8_t buf[1200];
    for (uint32_t i = 0; i < 800; i++) {
        fill_dgram(buf, i, gso_len(i));
        ck_assert_int_eq(sst_udp_send(tx, &ra, buf, gso_len(i)), 0);
    }
    sst_time_t deadline = sst_clock_now() + SST_SEC(2);
    while (sst_udp_flush(tx) == SST_ERR_AGAIN && sst_clock_now() < deadline) {
        struct pollfd p = {.fd = sst_udp_fd(tx), .events = POLLOUT};
        poll(&p, 1, 50);
        while (sst_udp_recv(rx, on_rx, &log) > 0) {
        }
    }
    drain(rx, &log, 800);
    ck_assert_uint_eq(log.bad, 0);
    ck_assert_uint_eq(log.count, 800);
    sst_udp_close(rx);
    sst_udp_close(tx);
}
END_TEST

START_TEST(test_udp_gso_fallback_remembered)
{
    static const int errs[] = {EIO, EINVAL};
    memset(&fake, 0, sizeof fake);
    fake.budget = -1;
    fake.fail_gso_errno = errs[_i];
    struct sst_udp_config cfg = {.sendmmsg_fn = fake_sendmmsg};
    struct sst_addr ra, sa;
    struct sst_udp_config rcfg = {.no_gro = true};
    struct sst_udp *rx = open_on("::1", &rcfg, &ra);
    struct sst_udp *tx = open_on("::1", &cfg, &sa);
    static struct rx_log log;
    memset(&log, 0, sizeof log);
    log.expect_len = gso_len;
    log.max_index = 1000;
    uint8_t buf[1200];
    uint32_t i = 0;
    for (int round = 0; round < 2; round++) {
        for (unsigned k = 0; k < 41; k++, i++) {
            fill_dgram(buf, i, gso_len(i));
            ck_assert_int_eq(sst_udp_send(tx, &ra, buf, gso_len(i)), 0);
        }
        ck_assert_int_eq(sst_udp_flush(tx), 0);
    }
    drain(rx, &log, i);
    ck_assert_uint_eq(log.bad, 0);
    ck_assert_uint_eq(log.count, 82);
    /* GSO was tried exactly once; the second round never offered it again. */
    ck_assert_uint_eq(fake.gso_seen, 1);
    struct sst_udp_stats st;
    sst_udp_get_stats(tx, &st);
    ck_assert(!st.gso);
    ck_assert(st.gso_fell_back);
    ck_assert_uint_eq(st.tx_gso_messages, 0);
    ck_assert_uint_eq(st.tx_errors, 0);
    ck_assert_uint_eq(st.tx_datagrams, 82);
    sst_udp_close(rx);
    sst_udp_close(tx);
}
END_TEST

/* ---- dual stack ---- */

START_TEST(test_udp_dual_stack_v4mapped)
{
    struct sst_addr any6, v4bound, dual;
    ck_assert_int_eq(sst_addr_parse(&any6, "::", 0), 0);
    struct sst_udp *d = NULL;
    ck_assert_int_eq(sst_udp_open(&d, &any6, NULL), 0);
    ck_assert_int_eq(sst_udp_local_addr(d, &dual), 0);
    ck_assert_int_eq(dual.family, SST_AF_INET6);
    struct sst_udp *v4 = open_on("127.0.0.1", NULL, &v4bound);

    /* IPv4 peer -> dual-stack socket: the source is reported as plain IPv4. */
    struct sst_addr to_dual;
    ck_assert_int_eq(sst_addr_parse(&to_dual, "127.0.0.1", dual.port), 0);
    static struct rx_log log;
    memset(&log, 0, sizeof log);
    log.expect_len = len_900;
    log.max_index = 10;
    uint8_t buf[900];
    fill_dgram(buf, 1, 900);
    ck_assert_int_eq(sst_udp_send(v4, &to_dual, buf, 900), 0);
    ck_assert_int_eq(sst_udp_flush(v4), 0);
    drain(d, &log, 1);
    ck_assert_uint_eq(log.count, 1);
    ck_assert_uint_eq(log.bad, 0);
    ck_assert_int_eq(log.last_from.family, SST_AF_INET4);
    ck_assert_msg(sst_addr_eq(&log.last_from, &v4bound), "v4-mapped source maps back to the v4 address");

    /* Reply from the IPv6 socket to that IPv4 address (sent as ::ffff:127.0.0.1). */
    struct sst_addr reply_to = log.last_from;
    memset(&log, 0, sizeof log);
    log.expect_len = len_900;
    log.max_index = 10;
    fill_dgram(buf, 2, 900);
    ck_assert_int_eq(sst_udp_send(d, &reply_to, buf, 900), 0);
    ck_assert_int_eq(sst_udp_flush(d), 0);
    drain(v4, &log, 1);
    ck_assert_uint_eq(log.count, 1);
    ck_assert_uint_eq(log.seen[2], 1);

    /* An IPv4 socket cannot reach an IPv6 peer: refused at send time, counted. */
    struct sst_addr v6peer;
    ck_assert_int_eq(sst_addr_parse(&v6peer, "[::1]:9", 0), 0);
    ck_assert_int_eq(sst_udp_send(v4, &v6peer, buf, 900), SST_ERR_INVAL);
    struct sst_udp_stats st;
    sst_udp_get_stats(v4, &st);
    ck_assert_uint_eq(st.tx_errors, 1);
    sst_udp_close(d);
    sst_udp_close(v4);
}
END_TEST


/* ---- local addresses (IP_PKTINFO / IPV6_PKTINFO) ---- */

/* What a wildcard-bound server saw: each datagram's index, source and local address. */
struct local_log {
    unsigned count;
    uint32_t index[64];
    struct sst_addr from[64], local[64];
    bool has_local[64];
};

static void on_rx_local(void *ctx, const struct sst_addr *from, const struct sst_addr *local, uint8_t *pkt,
                        size_t len)
{
    struct local_log *l = ctx;
    if (l->count >= 64 || len < 4)
        return;
    unsigned k = l->count++;
    l->index[k] = ((uint32_t)pkt[0] << 24) | ((uint32_t)pkt[1] << 16) | ((uint32_t)pkt[2] << 8) | pkt[3];
    l->from[k] = *from;
    l->has_local[k] = local != NULL;
    if (local)
        l->local[k] = *local;
}

static void drain_local(struct sst_udp *u, struct local_log *l, unsigned want)
{
    sst_time_t deadline = sst_clock_now() + SST_SEC(2);
    while (l->count < want && sst_clock_now() < deadline) {
        struct pollfd p = {.fd = sst_udp_fd(u), .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            while (sst_udp_recv_to(u, on_rx_local, l) > 0) {
            }
        }
    }
}

static struct sst_addr addr_at(const char *ip, uint16_t port)
{
    struct sst_addr a;
    ck_assert_int_eq(sst_addr_parse(&a, ip, port), 0);
    return a;
}

/* A server bound to a wildcard address (dual-stack :: in case 0, 0.0.0.0 in case 1) on a host
 * with several addresses (all of 127/8 is local, and ::1): each datagram reports the address it
 * was sent to, and a reply sent from it reaches the client from that address, the one the
 * client's socket expects.  Before IP_PKTINFO the kernel chose the source (127.0.0.1 toward a
 * 127.0.0.1 client) and the reply to 127.0.0.2 came from the wrong address. */
START_TEST(test_udp_reply_from_local_addr)
{
    bool dual = _i == 0;
    struct sst_udp *srv = NULL;
    struct sst_addr any = addr_at(dual ? "::" : "0.0.0.0", 0), sa;
    ck_assert_int_eq(sst_udp_open(&srv, &any, NULL), 0);
    ck_assert_int_eq(sst_udp_local_addr(srv, &sa), 0);
    struct sst_addr cl4a;
    struct sst_udp *c4 = open_on("127.0.0.1", NULL, &cl4a);
    struct sst_addr cl6a;
    struct sst_udp *c6 = dual ? open_on("::1", NULL, &cl6a) : NULL;

    const char *dests[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3", "::1"};
    unsigned ndest = dual ? 4 : 3;
    uint8_t buf[200];
    for (unsigned i = 0; i < ndest; i++) {
        fill_dgram(buf, i, sizeof buf);
        struct sst_addr to = addr_at(dests[i], sa.port);
        ck_assert_int_eq(sst_udp_send(to.family == SST_AF_INET6 ? c6 : c4, &to, buf, sizeof buf), 0);
    }
    ck_assert_int_eq(sst_udp_flush(c4), 0);
    if (c6)
        ck_assert_int_eq(sst_udp_flush(c6), 0);
    static struct local_log in;
    memset(&in, 0, sizeof in);
    drain_local(srv, &in, ndest);
    ck_assert_uint_eq(in.count, ndest);
    for (unsigned k = 0; k < in.count; k++) {
        struct sst_addr want = addr_at(dests[in.index[k]], sa.port);
        ck_assert_msg(in.has_local[k], "datagram %u: no local address", in.index[k]);
        char got_s[SST_ADDR_STRLEN], want_s[SST_ADDR_STRLEN];
        ck_assert_msg(sst_addr_eq(&in.local[k], &want), "local %s, sent to %s",
                      sst_addr_str(&in.local[k], got_s, sizeof got_s), sst_addr_str(&want, want_s, sizeof want_s));
        /* The reply, from the local address the request went to. */
        fill_dgram(buf, 100 + in.index[k], sizeof buf);
        ck_assert_int_eq(sst_udp_send_from(srv, &in.from[k], &in.local[k], buf, sizeof buf), 0);
    }
    ck_assert_int_eq(sst_udp_flush(srv), 0);
    static struct local_log back4, back6;
    memset(&back4, 0, sizeof back4);
    memset(&back6, 0, sizeof back6);
    drain_local(c4, &back4, 3);
    ck_assert_uint_eq(back4.count, 3);
    if (c6) {
        drain_local(c6, &back6, 1);
        ck_assert_uint_eq(back6.count, 1);
    }
    struct local_log *logs[] = {&back4, &back6};
    for (unsigned b = 0; b < 2; b++)
        for (unsigned k = 0; k < logs[b]->count; k++) {
            struct local_log *l = logs[b];
            ck_assert_uint_ge(l->index[k], 100);
            struct sst_addr want = addr_at(dests[l->index[k] - 100], sa.port);
            char got_s[SST_ADDR_STRLEN], want_s[SST_ADDR_STRLEN];
            ck_assert_msg(sst_addr_eq(&l->from[k], &want), "reply came from %s, request went to %s",
                          sst_addr_str(&l->from[k], got_s, sizeof got_s),
                          sst_addr_str(&want, want_s, sizeof want_s));
            /* A socket bound to one address reports that one as the local address. */
            ck_assert(l->has_local[k]);
            ck_assert(sst_addr_eq(&l->local[k], b == 0 ? &cl4a : &cl6a));
        }
    struct sst_udp_stats st;
    sst_udp_get_stats(srv, &st);
    ck_assert_uint_eq(st.tx_errors, 0);
    ck_assert_uint_eq(st.tx_src_dropped, 0);
    sst_udp_close(srv);
    sst_udp_close(c4);
    if (c6)
        sst_udp_close(c6);
}
END_TEST

/* GSO batches group by destination AND source: equal-size datagrams to one client from
 * alternating local addresses must not share a message (they would all leave from the first
 * one's address).  A source the kernel refuses (not ours) is dropped, not the datagram. */
START_TEST(test_udp_gso_two_sources)
{
    struct sst_udp *srv = NULL;
    struct sst_addr any = addr_at("::", 0), sa;
    ck_assert_int_eq(sst_udp_open(&srv, &any, NULL), 0);
    ck_assert_int_eq(sst_udp_local_addr(srv, &sa), 0);
    struct sst_addr ca;
    struct sst_udp_config ccfg = {.no_gro = true};
    struct sst_udp *c = open_on("127.0.0.1", &ccfg, &ca);
    struct sst_addr src1 = addr_at("127.0.0.1", sa.port), src2 = addr_at("127.0.0.2", sa.port);
    uint8_t buf[1000];
    for (uint32_t i = 0; i < 30; i++) {
        fill_dgram(buf, i, sizeof buf);
        ck_assert_int_eq(sst_udp_send_from(srv, &ca, (i / 5) % 2 ? &src2 : &src1, buf, sizeof buf), 0);
    }
    /* 10.255.255.1 is not an address of this host: the kernel refuses it as a source. */
    struct sst_addr foreign = addr_at("10.255.255.1", sa.port);
    fill_dgram(buf, 30, sizeof buf);
    ck_assert_int_eq(sst_udp_send_from(srv, &ca, &foreign, buf, sizeof buf), 0);
    ck_assert_int_eq(sst_udp_flush(srv), 0);
    static struct local_log l;
    memset(&l, 0, sizeof l);
    drain_local(c, &l, 31);
    ck_assert_uint_eq(l.count, 31);
    unsigned seen[31] = {0};
    for (unsigned k = 0; k < l.count; k++) {
        uint32_t i = l.index[k];
        ck_assert_uint_lt(i, 31);
        seen[i]++;
        const struct sst_addr *want = i == 30 ? &src1 : (i / 5) % 2 ? &src2 : &src1;
        char got_s[SST_ADDR_STRLEN];
        ck_assert_msg(sst_addr_eq(&l.from[k], want), "datagram %u came from %s", i,
                      sst_addr_str(&l.from[k], got_s, sizeof got_s));
    }
    for (unsigned i = 0; i < 31; i++)
        ck_assert_uint_eq(seen[i], 1);
    struct sst_udp_stats st;
    sst_udp_get_stats(srv, &st);
    ck_assert_uint_eq(st.tx_src_dropped, 1);
    ck_assert_uint_eq(st.tx_errors, 0);
    if (st.gso)
        ck_assert_uint_ge(st.tx_gso_messages, 6);   /* one per run of five */
    sst_udp_close(srv);
    sst_udp_close(c);
}
END_TEST

START_TEST(test_udp_send_rejects_bad_lengths)
{
    struct sst_udp_config cfg = {.max_datagram = 1000};
    struct sst_addr sa;
    struct sst_udp *tx = open_on("127.0.0.1", &cfg, &sa);
    uint8_t buf[1001] = {0};
    ck_assert_int_eq(sst_udp_send(tx, &sa, buf, 1001), SST_ERR_TOO_BIG);
    ck_assert_int_eq(sst_udp_send(tx, &sa, buf, 0), SST_ERR_INVAL);
    ck_assert_int_eq(sst_udp_send(tx, &sa, buf, 1000), 0);
    ck_assert_uint_eq(sst_udp_queued(tx), 1);
    sst_udp_close(tx);
    struct sst_addr none = {0};
    struct sst_udp *u = NULL;
    ck_assert_int_eq(sst_udp_open(&u, &none, NULL), SST_ERR_INVAL);
    ck_assert_ptr_null(u);
}
END_TEST

static Suite *udp_suite(void)
{
    Suite *s = suite_create("udp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_udp_addr_roundtrip);
    tcase_add_test(tc, test_udp_addr_v4mapped_and_errors);
    tcase_add_loop_test(tc, test_udp_mixed_sizes_batched, 0, 2);
    tcase_add_loop_test(tc, test_udp_gso_batch, 0, 4);
    tcase_add_test(tc, test_udp_eagain_queue_and_bound);
    tcase_add_test(tc, test_udp_full_queue_flushes);
    tcase_add_test(tc, test_udp_tx_slot_in_place);
    tcase_add_test(tc, test_udp_tiny_sndbuf_delivers);
    tcase_add_loop_test(tc, test_udp_gso_fallback_remembered, 0, 2);
    tcase_add_test(tc, test_udp_dual_stack_v4mapped);
    tcase_add_test(tc, test_udp_send_rejects_bad_lengths);
    tcase_add_loop_test(tc, test_udp_reply_from_local_addr, 0, 2);
    tcase_add_test(tc, test_udp_gso_two_sources);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(udp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
