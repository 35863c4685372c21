/* Unit tests for session resumption (negotiate.c, ticket.c; docs/protocol-negotiation.md,
 * "Session resumption"): a full XX handshake leaves a single-use ticket on both sides, the next
 * handshake between the same two hosts resumes with NNpsk0 and a fresh ephemeral DH, and every
 * way a ticket can be unknown, expired, forged, replayed or refused ends in full XX or a drop,
 * never in a weaker channel.  Byte buffers only: no network, no clock. */
#include <check.h>
#include <sodium.h>
#include <string.h>

#include "err.h"
#include "negotiate.h"
#include "noise.h"
#include "ticket.h"

#define RESPONSE_XX_LEN 147u
#define RESPONSE_RESUMED_LEN 99u
#define FINISH_XX_LEN 97u
#define FINISH_RESUMED_LEN 49u

struct side {
    uint8_t seed;
    uint64_t counter;
    int next_chan_id;
    bool refuse_identity;
    int verify_calls;
    uint8_t last_verified[32];
};

static void det_random(void *ctx, void *buf, size_t len)
{
    struct side *s = ctx;
    uint8_t key[32] = {0}, nonce[8];
    key[0] = s->seed;
    memcpy(nonce, &s->counter, 8);
    crypto_stream_chacha20(buf, len, nonce, key);
    s->counter++;
}

static int alloc_id(void *ctx, const struct sst_addr *peer)
{
    struct side *s = ctx;
    (void)peer;
    return 1 + (s->next_chan_id++ % 255);
}

static int verify(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct side *s = ctx;
    (void)peer, (void)we_initiated;
    s->verify_calls++;
    memcpy(s->last_verified, pk, 32);
    return s->refuse_identity ? SST_ERR_IDENTITY : 0;
}

struct fixture {
    struct side is, rs;
    struct sst_nego_config icfg, rcfg;
    struct sst_nego_host *ih, *rh;
    struct sst_addr iaddr, raddr;
    unsigned cookies;              /* COOKIE round trips seen by handshake_at */
};

static struct sst_addr mkaddr(uint8_t last, uint16_t port)
{
    struct sst_addr a;
    memset(&a, 0, sizeof a);
    a.family = SST_AF_INET4;
    a.ip[0] = 10, a.ip[3] = last;
    a.port = port;
    return a;
}

static struct sst_nego_host *mkhost(struct side *s, const struct sst_nego_config *cfg)
{
    struct sst_nego_host_ops ops = { .ctx = s, .random = det_random, .alloc_chan_id = alloc_id,
                                     .verify_peer = verify };
    return sst_nego_host_new(cfg, &ops);
}

static void fx_init(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->is = (struct side){ .seed = 1, .next_chan_id = 7 };
    f->rs = (struct side){ .seed = 2, .next_chan_id = 42 };
    sst_identity_generate(&f->icfg.identity, det_random, &f->is);
    sst_identity_generate(&f->rcfg.identity, det_random, &f->rs);
    f->icfg.security = f->rcfg.security = SST_SEC_STRONG;
    f->icfg.cookie_threshold = f->rcfg.cookie_threshold = 100;
    f->icfg.max_tickets = f->rcfg.max_tickets = 8;
    f->icfg.ticket_lifetime = f->rcfg.ticket_lifetime = SST_SEC(60);
    f->rcfg.half_open_timeout = SST_SEC(5);
    f->ih = mkhost(&f->is, &f->icfg);
    f->rh = mkhost(&f->rs, &f->rcfg);
    ck_assert_ptr_nonnull(f->ih);
    ck_assert_ptr_nonnull(f->rh);
    f->iaddr = mkaddr(1, 5000);
    f->raddr = mkaddr(2, 8661);
}

static void fx_free(struct fixture *f)
{
    sst_nego_host_free(f->ih);
    sst_nego_host_free(f->rh);
}

/* One handshake at time `now`, initiator at f->iaddr.  Checks the messages have the lengths of
 * the expected kind, that both sides agree, and returns whether it was resumed. */
static bool handshake_at(struct fixture *f, sst_time_t now, bool expect_resumed, struct sst_nego_result *ires,
                         struct sst_nego_result *rres)
{
    struct sst_nego_initiator *in = sst_nego_initiator_new(f->ih, now, &f->raddr, SST_SEC_STRONG);
    ck_assert_ptr_nonnull(in);
    uint8_t hello[SST_NEGO_MAX_REPLY], reply[SST_NEGO_MAX_REPLY], fin[SST_NEGO_MAX_REPLY];
    size_t hlen = sst_nego_initiator_hello(in, hello, sizeof hello), rlen = 0, flen = 0, consumed = 0;
    ck_assert_uint_eq(hlen, SST_NEGO_HELLO_MIN);
    ck_assert_int_eq(sst_nego_responder_recv(f->rh, now, &f->iaddr, hello, hlen, reply, &rlen, rres, &consumed), 0);
    if (sst_nego_peek(reply, rlen, NULL) == SST_NEGO_COOKIE) {
        /* The HELLO that answers the cookie carries the same ticket extension. */
        ck_assert_int_eq(sst_nego_initiator_recv(in, now, reply, rlen, hello, &hlen, ires), 0);
        ck_assert_uint_eq(hello[51 + 16], expect_resumed ? 1 : 0);
        ck_assert_int_eq(sst_nego_responder_recv(f->rh, now, &f->iaddr, hello, hlen, reply, &rlen, rres, &consumed), 0);
        f->cookies++;
    }
    ck_assert_uint_eq(rlen, expect_resumed ? RESPONSE_RESUMED_LEN : RESPONSE_XX_LEN);
    ck_assert_uint_le(rlen, 3 * hlen);
    ck_assert_int_eq(sst_nego_initiator_recv(in, now, reply, rlen, fin, &flen, ires), 1);
    ck_assert_uint_eq(flen, expect_resumed ? FINISH_RESUMED_LEN : FINISH_XX_LEN);
    ck_assert_int_eq(sst_nego_responder_recv(f->rh, now, &f->iaddr, fin, flen, reply, &rlen, rres, &consumed), 1);
    ck_assert_uint_eq(consumed, flen);
    ck_assert_uint_eq(rlen, 0);
    ck_assert_mem_eq(ires->tx_key, rres->rx_key, 32);
    ck_assert_mem_eq(ires->rx_key, rres->tx_key, 32);
    ck_assert(memcmp(ires->tx_key, ires->rx_key, 32) != 0);
    ck_assert_uint_eq(ires->remote_chan_id, rres->local_chan_id);
    ck_assert_uint_eq(rres->remote_chan_id, ires->local_chan_id);
    ck_assert_int_eq(ires->resumed, rres->resumed);
    ck_assert_int_eq(ires->resumed, expect_resumed);
    /* Identity: each side ends up with the other's real host key, resumed or not. */
    ck_assert_mem_eq(ires->peer_static, f->rcfg.identity.pk, 32);
    ck_assert_mem_eq(rres->peer_static, f->icfg.identity.pk, 32);
    /* The channel works with these keys, and only in its direction. */
    struct sst_protect tx, rx;
    uint8_t pkt[64 + SST_PROTECT_TAILROOM];
    ck_assert_int_eq(sst_protect_init(&tx, ires->security, ires->aead, ires->tx_key), 0);
    ck_assert_int_eq(sst_protect_init(&rx, rres->security, rres->aead, rres->rx_key), 0);
    memset(pkt, 0x5a, 40);
    size_t n = sst_protect_seal(&tx, 1, pkt, 40), olen;
    ck_assert_int_eq(sst_protect_open(&rx, 1, pkt, n, &olen), 0);
    ck_assert_int_eq(sst_protect_init(&rx, ires->security, ires->aead, ires->rx_key), 0);
    n = sst_protect_seal(&tx, 2, pkt, 40);
    ck_assert_int_eq(sst_protect_open(&rx, 2, pkt, n, &olen), SST_ERR_AUTH);
    sst_nego_initiator_free(in);
    return ires->resumed;
}

/* First contact is full XX and leaves one ticket on each side; the next three handshakes resume
 * (each issuing the ticket for the next); every session has its own keys. */
START_TEST(test_resume_chain)
{
    struct fixture f;
    fx_init(&f);
    struct sst_nego_result ir[4], rr[4];
    struct sst_nego_stats is, rs;
    ck_assert(!handshake_at(&f, 0, false, &ir[0], &rr[0]));
    sst_nego_host_stats(f.ih, &is);
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(is.tickets_held, 1);
    ck_assert_uint_eq(rs.tickets_issued, 1);
    for (int k = 1; k < 4; k++) {
        ck_assert(handshake_at(&f, SST_SEC(k), true, &ir[k], &rr[k]));
        sst_nego_host_stats(f.ih, &is);
        sst_nego_host_stats(f.rh, &rs);
        ck_assert_uint_eq(is.tickets_held, 1);   /* the used one went, a new one came */
        ck_assert_uint_eq(rs.tickets_issued, 1);
    }
    ck_assert_uint_eq(rs.resumed, 3);
    ck_assert_uint_eq(is.resumed, 3);
    ck_assert_uint_eq(rs.completed, 4);
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++) {
            ck_assert(memcmp(ir[a].tx_key, ir[b].tx_key, 32) != 0);
            ck_assert(memcmp(ir[a].rx_key, ir[b].rx_key, 32) != 0);
        }
    fx_free(&f);
}
END_TEST

/* The keys of a resumed session depend on a fresh ephemeral DH, not only on the PSK: the same
 * PSK with other ephemerals gives other keys (so a stolen PSK does not open recorded sessions,
 * and each resumption has its own keys even from one ticket). */
START_TEST(test_resume_fresh_ee_per_session)
{
    uint8_t psk[32], k1[2][32], k2[2][32];
    memset(psk, 0x33, sizeof psk);
    for (int run = 0; run < 2; run++) {
        uint8_t ei[32], er[32], m[128], p[64];
        memset(ei, 0x10 + run, 32);
        memset(er, 0x20 + run, 32);
        struct sst_noise_keys ki = { .e_sk = ei, .psk = psk }, kr = { .e_sk = er, .psk = psk };
        struct sst_noise_hs i, r;
        ck_assert_int_eq(sst_noise_hs_start(&i, SST_NOISE_NNPSK0, true, NULL, 0, &ki), 0);
        ck_assert_int_eq(sst_noise_hs_start(&r, SST_NOISE_NNPSK0, false, NULL, 0, &kr), 0);
        int n = sst_noise_hs_write(&i, NULL, 0, m, sizeof m);
        ck_assert_int_eq(sst_noise_hs_read(&r, m, (size_t)n, p, sizeof p), 0);
        n = sst_noise_hs_write(&r, NULL, 0, m, sizeof m);
        ck_assert_int_eq(sst_noise_hs_read(&i, m, (size_t)n, p, sizeof p), 0);
        n = sst_noise_hs_write(&i, NULL, 0, m, sizeof m);
        ck_assert_int_eq(sst_noise_hs_read(&r, m, (size_t)n, p, sizeof p), 0);
        struct sst_noise_cipher a, b, c, d;
        ck_assert_int_eq(sst_noise_hs_split(&i, &a, &b), 0);
        ck_assert_int_eq(sst_noise_hs_split(&r, &c, &d), 0);
        ck_assert_mem_eq(a.k, c.k, 32);
        memcpy(k1[run], a.k, 32);
        memcpy(k2[run], b.k, 32);
    }
    ck_assert(memcmp(k1[0], k1[1], 32) != 0);
    ck_assert(memcmp(k2[0], k2[1], 32) != 0);
}
END_TEST

/* A responder that lost its tickets (restart: same identity, new process) answers the resumed
 * HELLO with full XX in the same round trip; the initiator completes XX and holds a new ticket. */
START_TEST(test_resume_unknown_ticket_falls_back)
{
    struct fixture f;
    fx_init(&f);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    sst_nego_host_free(f.rh);
    f.rh = mkhost(&f.rs, &f.rcfg);
    ck_assert(!handshake_at(&f, SST_SEC(1), false, &ir, &rr));
    struct sst_nego_stats rs, is;
    sst_nego_host_stats(f.rh, &rs);
    sst_nego_host_stats(f.ih, &is);
    ck_assert_uint_eq(rs.resume_fallbacks, 1);
    ck_assert_uint_eq(is.tickets_held, 1);
    /* ... which the restarted responder knows: the next one resumes. */
    ck_assert(handshake_at(&f, SST_SEC(2), true, &ir, &rr));
    fx_free(&f);
}
END_TEST

/* Expiry on either side: an initiator does not offer an expired ticket; a responder whose copy
 * expired first (shorter lifetime) falls back to XX. */
START_TEST(test_resume_expired_ticket)
{
    struct fixture f;
    fx_init(&f);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    ck_assert(!handshake_at(&f, SST_SEC(61), false, &ir, &rr));  /* both expired at 60 s */
    struct sst_nego_stats rs;
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.resume_fallbacks, 0);  /* none was even offered */
    fx_free(&f);

    fx_init(&f);
    f.rcfg.ticket_lifetime = SST_SEC(10);
    sst_nego_host_free(f.rh);
    f.rh = mkhost(&f.rs, &f.rcfg);
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    ck_assert(!handshake_at(&f, SST_SEC(11), false, &ir, &rr));
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.resume_fallbacks, 1);
    /* sst_nego_host_expire frees expired tickets too, but they set no deadline (an idle host
     * does not wake for them): after the tombstone of the handshake at 11 s (+ 5 s), none. */
    ck_assert_uint_eq(rs.tickets_issued, 1);
    ck_assert_uint_eq(sst_nego_host_expire(f.rh, SST_SEC(12)), SST_SEC(16));
    ck_assert_uint_eq(sst_nego_host_expire(f.rh, SST_SEC(16)), SST_TIME_NEVER);
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.tickets_issued, 1);
    ck_assert_uint_eq(sst_nego_host_expire(f.rh, SST_SEC(21)), SST_TIME_NEVER);
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.tickets_issued, 0);
    fx_free(&f);
}
END_TEST

/* Offsets in a HELLO without cookie: msg1 at 17 (34 bytes), then the extension byte at 51, the
 * ticket ID at 52..67 and the sealed NNpsk0 payload at 68..85. */
#define EXT_OFF 51
#define TICKET_OFF 52
#define SEALED_OFF 68
#define SEALED_END 86

/* A forged ticket ID is just unknown (full XX); a forged or damaged seal is dropped without
 * reply or state, and the genuine HELLO still resumes afterwards (the ticket was not spent). */
START_TEST(test_resume_forged_hello)
{
    struct fixture f;
    fx_init(&f);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    struct sst_nego_initiator *in = sst_nego_initiator_new(f.ih, SST_SEC(1), &f.raddr, SST_SEC_STRONG);
    ck_assert(sst_nego_initiator_resuming(in));
    uint8_t hello[SST_NEGO_MAX_REPLY], bad[SST_NEGO_MAX_REPLY], reply[SST_NEGO_MAX_REPLY];
    size_t hlen = sst_nego_initiator_hello(in, hello, sizeof hello), rlen, consumed;
    ck_assert_uint_eq(hello[EXT_OFF], 1);
    struct sst_nego_stats rs;
    /* Flip each bit of the seal (and the e it is bound to: that changes the XX part too, and
     * the seal no longer opens). */
    for (size_t pos = SEALED_OFF; pos < SEALED_END; pos++) {
        memcpy(bad, hello, hlen);
        bad[pos] ^= 0x04;
        ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, bad, hlen, reply, &rlen, &rr, &consumed),
                         SST_ERR_AUTH);
        ck_assert_uint_eq(rlen, 0);
    }
    memcpy(bad, hello, hlen);
    bad[17] ^= 0x01;  /* the shared ephemeral */
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, bad, hlen, reply, &rlen, &rr, &consumed),
                     SST_ERR_AUTH);
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.half_open, 0);
    ck_assert_uint_eq(rs.tickets_issued, 1);
    /* Another ticket ID (from another address, so it is a new handshake): unknown -> full XX. */
    struct sst_addr other = mkaddr(9, 5000);
    memcpy(bad, hello, hlen);
    bad[TICKET_OFF] ^= 0x01;
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &other, bad, hlen, reply, &rlen, &rr, &consumed), 0);
    ck_assert_uint_eq(rlen, RESPONSE_XX_LEN);
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.resume_fallbacks, 1);
    /* The genuine HELLO still resumes. */
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, hello, hlen, reply, &rlen, &rr, &consumed), 0);
    ck_assert_uint_eq(rlen, RESPONSE_RESUMED_LEN);
    sst_nego_initiator_free(in);
    fx_free(&f);
}
END_TEST

/* Every bit of a resumed RESPONSE and FINISH matters; a rejected message leaves both sides
 * able to complete with the genuine one.  A resumed RESPONSE to a HELLO that offered no ticket
 * is refused. */
START_TEST(test_resume_tampered_response_and_finish)
{
    struct fixture f;
    fx_init(&f);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    struct sst_nego_initiator *in = sst_nego_initiator_new(f.ih, SST_SEC(1), &f.raddr, SST_SEC_STRONG);
    uint8_t hello[SST_NEGO_MAX_REPLY], reply[SST_NEGO_MAX_REPLY], bad[SST_NEGO_MAX_REPLY], fin[SST_NEGO_MAX_REPLY],
        out[SST_NEGO_MAX_REPLY];
    size_t hlen = sst_nego_initiator_hello(in, hello, sizeof hello), rlen, flen, olen, consumed;
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, hello, hlen, reply, &rlen, &rr, &consumed), 0);
    ck_assert_uint_eq(rlen, RESPONSE_RESUMED_LEN);
    for (size_t pos = 0; pos < rlen; pos++) {
        memcpy(bad, reply, rlen);
        bad[pos] ^= 0x01;
        ck_assert_msg(sst_nego_initiator_recv(in, SST_SEC(1), bad, rlen, fin, &flen, &ir) < 0, "flip at %zu", pos);
        ck_assert_uint_eq(flen, 0);
    }
    ck_assert_int_lt(sst_nego_initiator_recv(in, SST_SEC(1), reply, rlen - 1, fin, &flen, &ir), 0);
    /* A plain XX initiator (no ticket offered) refuses the resumed form outright. */
    struct sst_nego_host *ih2 = mkhost(&f.is, &f.icfg);
    struct sst_nego_initiator *in2 = sst_nego_initiator_new(ih2, SST_SEC(1), &f.raddr, SST_SEC_STRONG);
    ck_assert(!sst_nego_initiator_resuming(in2));
    memcpy(bad, reply, rlen);
    uint64_t tag2 = sst_nego_initiator_tag(in2);
    for (int k = 0; k < 8; k++)
        bad[6 + k] = (uint8_t)(tag2 >> (56 - 8 * k));   /* its own tag: only the form is wrong */
    ck_assert_int_eq(sst_nego_initiator_recv(in2, SST_SEC(1), bad, rlen, fin, &flen, &ir), SST_ERR_MALFORMED);
    sst_nego_initiator_free(in2);
    sst_nego_host_free(ih2);

    ck_assert_int_eq(sst_nego_initiator_recv(in, SST_SEC(1), reply, rlen, fin, &flen, &ir), 1);
    ck_assert_uint_eq(flen, FINISH_RESUMED_LEN);
    for (size_t pos = 0; pos < flen; pos++) {
        memcpy(bad, fin, flen);
        bad[pos] ^= 0x80;
        ck_assert_msg(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, bad, flen, out, &olen, &rr, &consumed) < 0,
                      "flip at %zu", pos);
    }
    /* An XX-sized FINISH for a resumed handshake is refused too. */
    memset(bad, 0, sizeof bad);
    memcpy(bad, fin, SST_NEGO_HDR_LEN);
    bad[SST_NEGO_HDR_LEN] = 0, bad[SST_NEGO_HDR_LEN + 1] = 81;
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, bad, FINISH_XX_LEN, out, &olen, &rr, &consumed),
                     SST_ERR_MALFORMED);
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, fin, flen, out, &olen, &rr, &consumed), 1);
    ck_assert(rr.resumed && ir.resumed);
    ck_assert_mem_eq(ir.tx_key, rr.rx_key, 32);
    /* Duplicates: the same RESPONSE gets the same FINISH; the same FINISH is consumed, not
     * completed twice. */
    ck_assert_int_eq(sst_nego_initiator_recv(in, SST_SEC(1), reply, rlen, out, &olen, &ir), 0);
    ck_assert_uint_eq(olen, flen);
    ck_assert_mem_eq(out, fin, flen);
    ck_assert_uint_eq(sst_nego_initiator_finish(in, out, sizeof out), flen);
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, fin, flen, out, &olen, &rr, &consumed), 0);
    ck_assert_uint_eq(consumed, flen);
    sst_nego_initiator_free(in);
    fx_free(&f);
}
END_TEST

/* Tickets are single-use: a retransmitted HELLO gets the cached RESPONSE, but the same HELLO
 * replayed as a new handshake (after the half-open entry expired) finds no ticket and gets XX,
 * which the replayer cannot complete. */
START_TEST(test_resume_single_use)
{
    struct fixture f;
    fx_init(&f);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    struct sst_nego_initiator *in = sst_nego_initiator_new(f.ih, SST_SEC(1), &f.raddr, SST_SEC_STRONG);
    uint8_t hello[SST_NEGO_MAX_REPLY], r1[SST_NEGO_MAX_REPLY], r2[SST_NEGO_MAX_REPLY];
    size_t hlen = sst_nego_initiator_hello(in, hello, sizeof hello), l1, l2, consumed;
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, hello, hlen, r1, &l1, &rr, &consumed), 0);
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(1), &f.iaddr, hello, hlen, r2, &l2, &rr, &consumed), 0);
    ck_assert_uint_eq(l1, RESPONSE_RESUMED_LEN);
    ck_assert_uint_eq(l2, l1);
    ck_assert_mem_eq(r1, r2, l1);
    struct sst_nego_stats rs;
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.tickets_issued, 0);     /* spent by the first HELLO */
    (void)sst_nego_host_expire(f.rh, SST_SEC(10)); /* half-open entry gone */
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(10), &f.iaddr, hello, hlen, r2, &l2, &rr, &consumed), 0);
    ck_assert_uint_eq(l2, RESPONSE_XX_LEN);
    sst_nego_host_stats(f.rh, &rs);
    ck_assert_uint_eq(rs.resume_fallbacks, 1);
    /* The initiator spent its copy when it offered it. */
    struct sst_nego_stats is;
    sst_nego_host_stats(f.ih, &is);
    ck_assert_uint_eq(is.tickets_held, 0);
    sst_nego_initiator_free(in);
    fx_free(&f);
}
END_TEST

/* Identity checks keep their meaning: the initiator offers a ticket only for a host key its
 * verify_peer still accepts (else full XX, which shows the real key); the responder asks its
 * verify_peer about the ticket's key on FINISH and refuses the handshake if told to. */
START_TEST(test_resume_identity_checks)
{
    struct fixture f;
    fx_init(&f);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    f.is.refuse_identity = true;
    int calls = f.is.verify_calls;
    struct sst_nego_initiator *in = sst_nego_initiator_new(f.ih, SST_SEC(1), &f.raddr, SST_SEC_STRONG);
    ck_assert(!sst_nego_initiator_resuming(in));
    ck_assert_int_eq(f.is.verify_calls, calls + 1);
    ck_assert_mem_eq(f.is.last_verified, f.rcfg.identity.pk, 32);
    sst_nego_initiator_free(in);
    f.is.refuse_identity = false;
    ck_assert(!handshake_at(&f, SST_SEC(2), false, &ir, &rr));  /* ticket was spent: XX */

    /* Responder side. */
    in = sst_nego_initiator_new(f.ih, SST_SEC(3), &f.raddr, SST_SEC_STRONG);
    ck_assert(sst_nego_initiator_resuming(in));
    uint8_t hello[SST_NEGO_MAX_REPLY], reply[SST_NEGO_MAX_REPLY], fin[SST_NEGO_MAX_REPLY];
    size_t hlen = sst_nego_initiator_hello(in, hello, sizeof hello), rlen, flen, consumed;
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(3), &f.iaddr, hello, hlen, reply, &rlen, &rr, &consumed), 0);
    ck_assert_int_eq(sst_nego_initiator_recv(in, SST_SEC(3), reply, rlen, fin, &flen, &ir), 1);
    f.rs.refuse_identity = true;
    calls = f.rs.verify_calls;
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(3), &f.iaddr, fin, flen, reply, &rlen, &rr, &consumed),
                     SST_ERR_IDENTITY);
    ck_assert_int_eq(f.rs.verify_calls, calls + 1);
    ck_assert_mem_eq(f.rs.last_verified, f.icfg.identity.pk, 32);
    f.rs.refuse_identity = false;
    ck_assert_int_eq(sst_nego_responder_recv(f.rh, SST_SEC(3), &f.iaddr, fin, flen, reply, &rlen, &rr, &consumed), 1);
    sst_nego_initiator_free(in);
    fx_free(&f);
}
END_TEST

/* Resumption through the cookie challenge: the HELLO that answers a COOKIE still offers the
 * ticket (the extension moves 16 bytes on) and the handshake resumes. */
START_TEST(test_resume_with_cookie)
{
    struct fixture f;
    fx_init(&f);
    f.rcfg.cookie_threshold = 0;
    sst_nego_host_free(f.rh);
    f.rh = mkhost(&f.rs, &f.rcfg);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    ck_assert(handshake_at(&f, SST_SEC(1), true, &ir, &rr));
    ck_assert_uint_eq(f.cookies, 2);
    fx_free(&f);
}
END_TEST

/* Resumption off on the responder (max_tickets 0): it issues no ticket (all-zero ID), so the
 * initiator keeps none and every handshake is XX. */
START_TEST(test_resume_off)
{
    struct fixture f;
    fx_init(&f);
    f.rcfg.max_tickets = 0;
    sst_nego_host_free(f.rh);
    f.rh = mkhost(&f.rs, &f.rcfg);
    struct sst_nego_result ir, rr;
    ck_assert(!handshake_at(&f, 0, false, &ir, &rr));
    struct sst_nego_stats is;
    sst_nego_host_stats(f.ih, &is);
    ck_assert_uint_eq(is.tickets_held, 0);
    ck_assert(!handshake_at(&f, SST_SEC(1), false, &ir, &rr));
    fx_free(&f);
}
END_TEST

/* The ticket table: bounded (oldest evicted), single-use, expiring in order. */
START_TEST(test_ticket_table)
{
    struct sst_ticket_table t;
    sst_ticket_table_init(&t, 3, SST_TICKET_ID_LEN);
    struct sst_ticket tk, out;
    uint8_t key[SST_TICKET_ID_LEN];
    for (int k = 0; k < 5; k++) {
        memset(&tk, k, sizeof tk);
        tk.expiry = SST_SEC(10 + k);
        memset(key, k, sizeof key);
        ck_assert_int_eq(sst_ticket_put(&t, key, &tk), 0);
    }
    ck_assert_uint_eq(t.count, 3);
    memset(key, 0, sizeof key);
    ck_assert(!sst_ticket_take(&t, key, 0, &out));   /* evicted */
    memset(key, 3, sizeof key);
    ck_assert_ptr_nonnull(sst_ticket_find(&t, key, SST_SEC(12)));
    ck_assert_ptr_null(sst_ticket_find(&t, key, SST_SEC(13)));  /* expired at 13 s */
    ck_assert(sst_ticket_take(&t, key, SST_SEC(12), &out));
    ck_assert_uint_eq(out.psk[0], 3);
    ck_assert(!sst_ticket_take(&t, key, SST_SEC(12), &out));  /* single use */
    ck_assert_uint_eq(sst_ticket_expire(&t, SST_SEC(11)), SST_SEC(12));
    ck_assert_uint_eq(t.count, 2);
    ck_assert_uint_eq(sst_ticket_expire(&t, SST_SEC(12)), SST_SEC(14));
    ck_assert_uint_eq(t.count, 1);
    sst_ticket_table_clear(&t);
    ck_assert_uint_eq(t.count, 0);
    sst_ticket_table_init(&t, 0, SST_TICKET_ID_LEN);
    ck_assert_int_eq(sst_ticket_put(&t, key, &tk), 0);
    ck_assert_uint_eq(t.count, 0);  /* cap 0 keeps nothing */
}
END_TEST

static Suite *resume_suite(void)
{
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_resume_chain);
    tcase_add_test(tc, test_resume_fresh_ee_per_session);
    tcase_add_test(tc, test_resume_unknown_ticket_falls_back);
    tcase_add_test(tc, test_resume_expired_ticket);
    tcase_add_test(tc, test_resume_forged_hello);
    tcase_add_test(tc, test_resume_tampered_response_and_finish);
    tcase_add_test(tc, test_resume_single_use);
    tcase_add_test(tc, test_resume_identity_checks);
    tcase_add_test(tc, test_resume_with_cookie);
    tcase_add_test(tc, test_resume_off);
    tcase_add_test(tc, test_ticket_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resume_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
