/* The SST negotiation protocol on channel 0 (paper §4.4): Noise XX handshake, session resumption
 * (NNpsk0 with single-use tickets), stateless cookies, responder half-open table, 3x
 * anti-amplification, stateless reset tokens. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "err.h"
#include "negotiate.h"
#include "noise.h"
#include "ticket.h"
#include "wire.h"

/* ---- wire constants (docs/protocol-negotiation.md has the byte-by-byte layout) ---- */

#define COOKIE_LEN 16
/* Cookie secrets rotate every COOKIE_PERIOD; a cookie is accepted in its epoch and the next. */
#define COOKIE_PERIOD SST_SEC(120)
#define AMPLIFICATION_FACTOR 3

#define TICKET_LEN SST_TICKET_ID_LEN
#define HELLO_PAYLOAD_LEN 2     /* requested security, AES offered */
/* responder channel ID, security, AEAD, reset token, ticket ID for a later resumption */
#define RESPONSE_PAYLOAD_LEN (3 + SST_RESET_TOKEN_LEN + TICKET_LEN)
#define FINISH_PAYLOAD_LEN 17   /* initiator channel ID, reset token */

#define MSG1_LEN (32 + HELLO_PAYLOAD_LEN)
#define MSG2_LEN (32 + 32 + SST_NOISE_TAGLEN + RESPONSE_PAYLOAD_LEN + SST_NOISE_TAGLEN)
#define MSG3_LEN (32 + SST_NOISE_TAGLEN + FINISH_PAYLOAD_LEN + SST_NOISE_TAGLEN)

#define HELLO_FIXED_LEN (SST_NEGO_HDR_LEN + 1 + 2 + MSG1_LEN)  /* before cookie and padding */
#define COOKIE_MSG_LEN (SST_NEGO_HDR_LEN + COOKIE_LEN)
#define RESPONSE_LEN (SST_NEGO_HDR_LEN + 2 + MSG2_LEN)
#define FINISH_LEN (SST_NEGO_HDR_LEN + 2 + MSG3_LEN)
#define RESET_LEN (SST_NEGO_HDR_LEN + 1 + SST_RESET_TOKEN_LEN)

/* Resumption (NNpsk0 + confirmation).  The HELLO extension after XX message 1 carries the ticket
 * ID and the sealed payload of NNpsk0 message 1, whose "e" is XX message 1's (one ephemeral for
 * both, so the responder may pick either without another round trip). */
#define HELLO_EXT_RESUME 1
#define RMSG1_SEALED_LEN (HELLO_PAYLOAD_LEN + SST_NOISE_TAGLEN)
#define RMSG1_LEN (32 + RMSG1_SEALED_LEN)
#define HELLO_EXT_LEN (1 + TICKET_LEN + RMSG1_SEALED_LEN)
#define RMSG2_LEN (32 + RESPONSE_PAYLOAD_LEN + SST_NOISE_TAGLEN)
#define RMSG3_LEN (FINISH_PAYLOAD_LEN + SST_NOISE_TAGLEN)
#define RRESPONSE_LEN (SST_NEGO_HDR_LEN + 2 + RMSG2_LEN)
#define RFINISH_LEN (SST_NEGO_HDR_LEN + 2 + RMSG3_LEN)
#define DEFAULT_TICKET_LIFETIME SST_SEC(3600)

_Static_assert(HELLO_FIXED_LEN + COOKIE_LEN + HELLO_EXT_LEN <= SST_NEGO_HELLO_MIN, "HELLO fits its padding");
_Static_assert(RRESPONSE_LEN < RESPONSE_LEN && RFINISH_LEN < FINISH_LEN, "resumed messages fit the XX buffers");
_Static_assert(RESPONSE_LEN <= SST_NEGO_MAX_REPLY, "RESPONSE fits");
_Static_assert(RESPONSE_LEN * AMPLIFICATION_FACTOR >= RESPONSE_LEN &&
               RESPONSE_LEN <= AMPLIFICATION_FACTOR * SST_NEGO_HELLO_MIN,
               "a RESPONSE never exceeds 3x the HELLO that caused it");

/* Noise prologue: binds protocol, version and the initiator tag to the transcript. */
static const char prologue_label[] = "SST negotiation v1";
#define PROLOGUE_LEN (sizeof prologue_label - 1 + 8)
#define RPROLOGUE_LEN (PROLOGUE_LEN + TICKET_LEN)   /* resumption: the ticket ID follows the tag */

#define DEFAULT_MAX_HALF_OPEN 1024
#define DEFAULT_HALF_OPEN_TIMEOUT SST_SEC(10)

/* Half-open table key: canonical peer address (19 bytes) || initiator tag (8). */
#define HO_KEY_LEN (19 + 8)

enum ho_state { HO_WAIT_FINISH = 1, HO_DONE = 2 };

/* Responder's state for one handshake between RESPONSE and FINISH; after completion only a
 * tombstone (no secrets, about 140 B: key, expiry and the FINISH's hash) remains until expiry so
 * duplicates are recognised, not re-answered.  Every channel a host accepts leaves one for
 * half_open_timeout, so it is kept small (issue #6: memory per idle channel). */
/* What only a handshake in progress needs (RESPONSE sent, FINISH awaited): about 600 B with the
 * Noise state and the RESPONSE kept for retransmission.  Freed (wiped) on completion. */
struct ho_open {
    struct sst_addr peer;
    uint8_t local_chan_id;
    uint8_t security, aead;      /* agreed */
    uint8_t peer_e[32];          /* the initiator's ephemeral, to match retransmitted HELLOs */
    uint64_t rx_bytes, tx_bytes; /* amplification accounting for this exchange */
    struct sst_noise_hs hs;      /* after writing message 2 */
    uint8_t ticket_next[TICKET_LEN]; /* issued on completion (all zero: none) */
    uint8_t peer_static[32];     /* resumed: the host key the used ticket was issued to */
    uint16_t response_len;
    uint8_t response[RESPONSE_LEN];
};

struct half_open {
    uint8_t key[HO_KEY_LEN];
    UT_hash_handle hh;
    uint8_t state;               /* enum ho_state */
    bool resumed;                /* NNpsk0 with a ticket, not XX */
    sst_time_t expiry;
    struct ho_open *o;           /* HO_WAIT_FINISH only */
    uint8_t finish_hash[32];     /* HO_DONE: hash of the FINISH that completed it */
};

struct sst_nego_host {
    struct sst_nego_config cfg;
    struct sst_nego_host_ops ops;
    uint8_t static_pk[32];       /* computed once: every handshake would otherwise redo it */
    uint8_t cookie_master[32];   /* random per process: cookies never outlive a restart */
    uint8_t reset_key[32];       /* derived from the static key: survives a restart */
    struct half_open *table;
    struct sst_ticket_table issued;  /* responder: tickets we issued, by ticket ID */
    struct sst_ticket_table held;    /* initiator: our ticket for each peer, by address */
    struct sst_nego_stats stats;
};

enum init_state { IN_HELLO = 1, IN_DONE = 2 };

struct sst_nego_initiator {
    struct sst_nego_host *host;
    struct sst_addr peer;
    uint64_t tag;
    uint8_t state;               /* enum init_state */
    uint8_t security;            /* requested */
    bool have_cookie;
    uint8_t cookie[COOKIE_LEN];
    uint8_t msg1[MSG1_LEN];      /* Noise message 1, resent unchanged in every HELLO */
    struct sst_noise_hs hs;      /* after message 1; wiped on completion */
    bool resuming;               /* the HELLO offers a ticket; hs_psk is live */
    uint8_t ticket_id[TICKET_LEN];
    uint8_t rmsg1_sealed[RMSG1_SEALED_LEN]; /* NNpsk0 message 1 after its e */
    uint8_t peer_static[32];     /* resuming: the host key the ticket was issued to */
    struct sst_noise_hs hs_psk;  /* resuming: NNpsk0 after message 1 */
    uint8_t response_hash[32];   /* IN_DONE: the RESPONSE we answered */
    uint16_t finish_len;
    uint8_t finish[FINISH_LEN];  /* IN_DONE: for retransmission */
};

/* ---- small helpers ---- */

static void host_random(const struct sst_nego_host *h, void *buf, size_t len)
{
    if (h->ops.random)
        h->ops.random(h->ops.ctx, buf, len);
    else
        randombytes_buf(buf, len);
}

static void put_hdr(uint8_t *p, enum sst_nego_type type, uint64_t tag)
{
    p[0] = 0x00;
    p[1] = 'S';
    p[2] = 'S';
    p[3] = 'T';
    sst_put8(p + 4, SST_NEGO_VERSION);
    sst_put8(p + 5, (uint8_t)type);
    sst_put64(p + 6, tag);
}

static void make_prologue(uint8_t out[PROLOGUE_LEN], uint64_t tag)
{
    memcpy(out, prologue_label, sizeof prologue_label - 1);
    sst_put64(out + sizeof prologue_label - 1, tag);
}

/* The resumption prologue also names the ticket, so its transcript is bound to it. */
static void make_resume_prologue(uint8_t out[RPROLOGUE_LEN], uint64_t tag, const uint8_t ticket[TICKET_LEN])
{
    make_prologue(out, tag);
    memcpy(out + PROLOGUE_LEN, ticket, TICKET_LEN);
}

static void ho_key(uint8_t key[HO_KEY_LEN], const struct sst_addr *peer, uint64_t tag)
{
    sst_addr_encode(peer, key);
    sst_put64(key + 19, tag);
}

static void digest(uint8_t out[32], const uint8_t *p, size_t len)
{
    crypto_generichash(out, 32, p, len, NULL, 0);
}

int sst_nego_peek(const uint8_t *pkt, size_t len, uint64_t *tag)
{
    if (len < SST_NEGO_HDR_LEN || pkt[0] != 0x00 || pkt[1] != 'S' || pkt[2] != 'S' || pkt[3] != 'T')
        return SST_ERR_MALFORMED;
    if (sst_get8(pkt + 4) != SST_NEGO_VERSION)
        return SST_ERR_VERSION;
    uint8_t type = sst_get8(pkt + 5);
    if (type < SST_NEGO_HELLO || type > SST_NEGO_RESET)
        return SST_ERR_MALFORMED;
    if (tag)
        *tag = sst_get64(pkt + 6);
    return type;
}

/* ---- identity ---- */

void sst_identity_generate(struct sst_identity *id, void (*random)(void *, void *, size_t), void *ctx)
{
    do {
        if (random)
            random(ctx, id->sk, sizeof id->sk);
        else
            randombytes_buf(id->sk, sizeof id->sk);
    } while (crypto_scalarmult_base(id->pk, id->sk) != 0);
}

void sst_identity_fingerprint(const uint8_t pk[32], char out[65])
{
    sodium_bin2hex(out, 65, pk, 32);
}

/* ---- host ---- */

struct sst_nego_host *sst_nego_host_new(const struct sst_nego_config *cfg, const struct sst_nego_host_ops *ops)
{
    if (sodium_init() < 0)
        return NULL;
    if (cfg->security != SST_SEC_STRONG && cfg->security != SST_SEC_LIGHT)
        return NULL;
    struct sst_nego_host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cfg = *cfg;
    if (ops)
        h->ops = *ops;
    if (h->cfg.max_half_open == 0)
        h->cfg.max_half_open = DEFAULT_MAX_HALF_OPEN;
    if (h->cfg.half_open_timeout == 0)
        h->cfg.half_open_timeout = DEFAULT_HALF_OPEN_TIMEOUT;
    if (h->cfg.ticket_lifetime == 0)
        h->cfg.ticket_lifetime = DEFAULT_TICKET_LIFETIME;
    sst_ticket_table_init(&h->issued, h->cfg.max_tickets, TICKET_LEN);
    sst_ticket_table_init(&h->held, h->cfg.max_tickets, 19);
    if (crypto_scalarmult_base(h->static_pk, cfg->identity.sk) != 0) {
        sodium_memzero(h, sizeof *h);
        free(h);
        return NULL;
    }
    host_random(h, h->cookie_master, sizeof h->cookie_master);
    /* The reset key depends only on the static secret, so a host that restarts with the same
     * identity issues the same RESET tokens and its peers believe its RESETs (docs: reset). */
    crypto_kdf_derive_from_key(h->reset_key, sizeof h->reset_key, 1, "SSTreset", cfg->identity.sk);
    return h;
}

/* Drops the in-progress part (secrets wiped). */
static void ho_close(struct half_open *e)
{
    if (!e->o)
        return;
    sst_noise_hs_wipe(&e->o->hs);
    sodium_memzero(e->o, sizeof *e->o);
    free(e->o);
    e->o = NULL;
}

static void ho_free(struct sst_nego_host *h, struct half_open *e, bool release_id)
{
    HASH_DEL(h->table, e);
    if (e->state == HO_WAIT_FINISH) {
        h->stats.half_open--;
        if (release_id && h->ops.release_chan_id)
            h->ops.release_chan_id(h->ops.ctx, &e->o->peer, e->o->local_chan_id);
    }
    ho_close(e);
    h->stats.entries--;
    sodium_memzero(e, sizeof *e);
    free(e);
}

void sst_nego_host_free(struct sst_nego_host *h)
{
    if (!h)
        return;
    struct half_open *e, *tmp;
    HASH_ITER(hh, h->table, e, tmp) {
        ho_free(h, e, false);
    }
    sst_ticket_table_clear(&h->issued);
    sst_ticket_table_clear(&h->held);
    sodium_memzero(h, sizeof *h);
    free(h);
}

void sst_nego_host_stats(const struct sst_nego_host *h, struct sst_nego_stats *out)
{
    *out = h->stats;
    out->tickets_issued = h->issued.count;
    out->tickets_held = h->held.count;
}

sst_time_t sst_nego_host_expire(struct sst_nego_host *h, sst_time_t now)
{
    sst_time_t next = SST_TIME_NEVER;
    struct half_open *e, *tmp;
    HASH_ITER(hh, h->table, e, tmp) {
        if (e->expiry <= now)
            ho_free(h, e, true);
        else if (e->expiry < next)
            next = e->expiry;
    }
    /* Expired tickets are freed here but set no deadline: an idle host must not wake up for
     * them, and a ticket is refused at use once expired anyway (sst_ticket_find/take). */
    (void)sst_ticket_expire(&h->issued, now);
    (void)sst_ticket_expire(&h->held, now);
    return next;
}

/* ---- reset tokens ---- */

void sst_nego_reset_token(const struct sst_nego_host *h, const struct sst_addr *peer, uint8_t chan_id,
                          uint8_t out[SST_RESET_TOKEN_LEN])
{
    static const char label[] = "SST reset token";
    uint8_t addr[19], mac[crypto_auth_hmacsha256_BYTES];
    sst_addr_encode(peer, addr);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, h->reset_key, sizeof h->reset_key);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)label, sizeof label - 1);
    crypto_auth_hmacsha256_update(&st, addr, sizeof addr);
    crypto_auth_hmacsha256_update(&st, &chan_id, 1);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, mac, SST_RESET_TOKEN_LEN);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(mac, sizeof mac);
}

size_t sst_nego_reset_build(const struct sst_nego_host *h, const struct sst_addr *peer, uint8_t chan_id,
                            uint8_t *out, size_t cap)
{
    if (cap < RESET_LEN)
        return 0;
    put_hdr(out, SST_NEGO_RESET, 0);
    sst_put8(out + SST_NEGO_HDR_LEN, chan_id);
    sst_nego_reset_token(h, peer, chan_id, out + SST_NEGO_HDR_LEN + 1);
    return RESET_LEN;
}

int sst_nego_reset_parse(const uint8_t *pkt, size_t len, uint8_t *chan_id, uint8_t token[SST_RESET_TOKEN_LEN])
{
    int type = sst_nego_peek(pkt, len, NULL);
    if (type < 0)
        return type;
    if (type != SST_NEGO_RESET || len != RESET_LEN || sst_get64(pkt + 6) != 0)
        return SST_ERR_MALFORMED;
    *chan_id = sst_get8(pkt + SST_NEGO_HDR_LEN);
    memcpy(token, pkt + SST_NEGO_HDR_LEN + 1, SST_RESET_TOKEN_LEN);
    return 0;
}

bool sst_nego_reset_matches(const uint8_t expected[SST_RESET_TOKEN_LEN], const uint8_t got[SST_RESET_TOKEN_LEN])
{
    return crypto_verify_16(expected, got) == 0;
}

/* ---- cookies ---- */

/* cookie = BLAKE2b-128 keyed by secret(epoch) over peer address || tag || initiator ephemeral,
 * with secret(epoch) = BLAKE2b-256 keyed by the master secret over "SST cookie" || epoch. */
static void cookie_compute(const struct sst_nego_host *h, uint64_t epoch, const struct sst_addr *peer,
                           uint64_t tag, const uint8_t e[32], uint8_t out[COOKIE_LEN])
{
    uint8_t secret[32], in[19 + 8 + 32], label[10 + 8];
    memcpy(label, "SST cookie", 10);
    sst_put64(label + 10, epoch);
    crypto_generichash(secret, sizeof secret, label, sizeof label, h->cookie_master, sizeof h->cookie_master);
    sst_addr_encode(peer, in);
    sst_put64(in + 19, tag);
    memcpy(in + 27, e, 32);
    crypto_generichash(out, COOKIE_LEN, in, sizeof in, secret, sizeof secret);
    sodium_memzero(secret, sizeof secret);
}

static bool cookie_valid(const struct sst_nego_host *h, sst_time_t now, const struct sst_addr *peer,
                         uint64_t tag, const uint8_t e[32], const uint8_t cookie[COOKIE_LEN])
{
    uint64_t epoch = now / COOKIE_PERIOD;
    uint8_t want[COOKIE_LEN];
    bool ok = false;
    for (uint64_t back = 0; back <= 1 && back <= epoch && !ok; back++) {
        cookie_compute(h, epoch - back, peer, tag, e, want);
        ok = crypto_verify_16(want, cookie) == 0;
    }
    return ok;
}

/* ---- responder ---- */

/* Decoded HELLO (phase 1 checks lengths, phase 2 points into the packet). */
struct hello {
    uint64_t tag;
    const uint8_t *cookie;      /* NULL if none */
    const uint8_t *msg1;        /* MSG1_LEN bytes; the ephemeral is its first 32 */
    const uint8_t *ticket;      /* resumption offered: TICKET_LEN bytes, else NULL */
    const uint8_t *rmsg1_sealed; /* with ticket: RMSG1_SEALED_LEN bytes */
};

static int hello_parse(const uint8_t *pkt, size_t len, struct hello *out)
{
    /* HELLOs are padded to SST_NEGO_HELLO_MIN so a responder's reply is always smaller: this is
     * what bounds amplification and proves the path carries full-size datagrams. */
    if (len < SST_NEGO_HELLO_MIN)
        return SST_ERR_MALFORMED;
    size_t cookie_len = sst_get8(pkt + SST_NEGO_HDR_LEN);
    if (cookie_len != 0 && cookie_len != COOKIE_LEN)
        return SST_ERR_MALFORMED;
    size_t off = SST_NEGO_HDR_LEN + 1 + cookie_len;
    if (sst_get16(pkt + off) != MSG1_LEN)
        return SST_ERR_MALFORMED;
    out->tag = sst_get64(pkt + 6);
    out->cookie = cookie_len ? pkt + SST_NEGO_HDR_LEN + 1 : NULL;
    out->msg1 = pkt + off + 2;
    /* Within the 1200 bytes by the static assert on HELLO_EXT_LEN.  Another extension byte than
     * HELLO_EXT_RESUME is padding to us (room for later extensions). */
    const uint8_t *ext = out->msg1 + MSG1_LEN;
    out->ticket = ext[0] == HELLO_EXT_RESUME ? ext + 1 : NULL;
    out->rmsg1_sealed = out->ticket ? ext + 1 + TICKET_LEN : NULL;
    return 0;
}

/* Sends (copies) a reply to an unverified address only within the 3x budget of the exchange. */
static size_t send_unverified(struct sst_nego_host *h, uint64_t *rx, uint64_t *tx, size_t in_len,
                              const uint8_t *reply, size_t reply_len, uint8_t *out)
{
    *rx += in_len;
    if (*tx + reply_len > AMPLIFICATION_FACTOR * *rx)
        return 0;
    *tx += reply_len;
    memcpy(out, reply, reply_len);
    h->stats.tx_unverified += reply_len;
    return reply_len;
}

static int on_hello(struct sst_nego_host *h, sst_time_t now, const struct sst_addr *from, const uint8_t *pkt,
                    size_t len, uint8_t *out, size_t *out_len)
{
    struct hello hel;
    int rc = hello_parse(pkt, len, &hel);
    if (rc < 0)
        return rc;
    h->stats.rx_unverified += len;
    const uint8_t *peer_e = hel.msg1;

    uint8_t key[HO_KEY_LEN];
    ho_key(key, from, hel.tag);
    struct half_open *e = NULL;
    HASH_FIND(hh, h->table, key, HO_KEY_LEN, e);
    if (e) {
        /* A retransmitted HELLO gets the very same RESPONSE (no new state, no new DH); a HELLO
         * reusing the tag with another ephemeral, or after completion, is dropped. */
        if (e->state != HO_WAIT_FINISH || sodium_memcmp(e->o->peer_e, peer_e, 32) != 0)
            return SST_ERR_STATE;
        struct ho_open *o = e->o;
        *out_len = send_unverified(h, &o->rx_bytes, &o->tx_bytes, len, o->response, o->response_len, out);
        if (*out_len)
            h->stats.responses_resent++;
        return 0;
    }

    bool cookie_ok = false;
    if (hel.cookie) {
        if (!cookie_valid(h, now, from, hel.tag, peer_e, hel.cookie))
            return SST_ERR_AUTH;
        cookie_ok = true;
    }
    if (!cookie_ok && h->stats.half_open >= h->cfg.cookie_threshold) {
        /* Under load, keep no state: the initiator proves it receives at its address first. */
        uint8_t cookie_msg[COOKIE_MSG_LEN];
        put_hdr(cookie_msg, SST_NEGO_COOKIE, hel.tag);
        cookie_compute(h, now / COOKIE_PERIOD, from, hel.tag, peer_e, cookie_msg + SST_NEGO_HDR_LEN);
        uint64_t rx = 0, tx = 0;
        *out_len = send_unverified(h, &rx, &tx, len, cookie_msg, sizeof cookie_msg, out);
        h->stats.cookies_sent++;
        return 0;
    }
    (void)sst_nego_host_expire(h, now);
    if (h->stats.entries >= h->cfg.max_half_open)
        return SST_ERR_LIMIT;

    /* Work in a local handshake; nothing is stored until every step succeeded.  A HELLO naming
     * a ticket we hold resumes (NNpsk0); an unknown or expired ticket gets full XX with the
     * same ephemeral, so falling back costs no extra round trip. */
    const struct sst_ticket *tk = NULL;
    if (hel.ticket && h->cfg.max_tickets) {
        tk = sst_ticket_find(&h->issued, hel.ticket, now);
        if (!tk)
            h->stats.resume_fallbacks++;
    }
    struct sst_noise_hs hs;
    uint8_t e_secret[32], payload[RESPONSE_PAYLOAD_LEN], p1[HELLO_PAYLOAD_LEN];
    int chan_id = -1;
    host_random(h, e_secret, sizeof e_secret);
    if (tk) {
        uint8_t prologue[RPROLOGUE_LEN], m1[RMSG1_LEN];
        make_resume_prologue(prologue, hel.tag, hel.ticket);
        const struct sst_noise_keys keys = { .e_sk = e_secret, .psk = tk->psk };
        rc = sst_noise_hs_start(&hs, SST_NOISE_NNPSK0, false, prologue, sizeof prologue, &keys);
        memcpy(m1, peer_e, 32);
        memcpy(m1 + 32, hel.rmsg1_sealed, RMSG1_SEALED_LEN);
        /* A bad seal is a forged or damaged HELLO: dropped, and the ticket stays usable. */
        if (rc == 0)
            rc = sst_noise_hs_read(&hs, m1, sizeof m1, p1, sizeof p1);
    } else {
        uint8_t prologue[PROLOGUE_LEN];
        make_prologue(prologue, hel.tag);
        const struct sst_noise_keys keys = { .s_sk = h->cfg.identity.sk, .s_pk = h->static_pk, .e_sk = e_secret };
        rc = sst_noise_hs_start(&hs, SST_NOISE_XX, false, prologue, sizeof prologue, &keys);
        if (rc == 0)
            rc = sst_noise_hs_read(&hs, hel.msg1, MSG1_LEN, p1, sizeof p1);
    }
    sodium_memzero(e_secret, sizeof e_secret);
    if (rc < 0)
        goto fail;
    if (rc != HELLO_PAYLOAD_LEN || p1[0] > SST_SEC_LIGHT || p1[1] > 1) {
        rc = SST_ERR_MALFORMED;
        goto fail;
    }
    /* Light only when both sides ask for it; AES-GCM only when both offer it. */
    uint8_t security = (p1[0] == SST_SEC_LIGHT && h->cfg.security == SST_SEC_LIGHT) ? SST_SEC_LIGHT
                                                                                       : SST_SEC_STRONG;
    uint8_t aead = (p1[1] && h->cfg.aes_available) ? SST_AEAD_AES256GCM : SST_AEAD_CHACHA20POLY1305;
    chan_id = h->ops.alloc_chan_id ? h->ops.alloc_chan_id(h->ops.ctx, from) : 1;
    if (chan_id < 1 || chan_id > 255) {
        chan_id = -1;
        rc = SST_ERR_LIMIT;
        goto fail;
    }
    struct half_open *n = calloc(1, sizeof *n);
    struct ho_open *o = calloc(1, sizeof *o);
    if (!n || !o) {
        free(n);
        free(o);
        rc = SST_ERR_NOMEM;
        goto fail;
    }
    n->o = o;
    /* The ticket this handshake will leave behind: an opaque random name; its secret is derived
     * from the finished handshake on both sides (sst_noise_hs_split_resume). */
    if (h->cfg.max_tickets)
        host_random(h, o->ticket_next, TICKET_LEN);
    sst_put8(payload, (uint8_t)chan_id);
    sst_put8(payload + 1, security);
    sst_put8(payload + 2, aead);
    sst_nego_reset_token(h, from, (uint8_t)chan_id, payload + 3);
    memcpy(payload + 3 + SST_RESET_TOKEN_LEN, o->ticket_next, TICKET_LEN);
    size_t msg2_len = tk ? RMSG2_LEN : MSG2_LEN;
    put_hdr(o->response, SST_NEGO_RESPONSE, hel.tag);
    sst_put16(o->response + SST_NEGO_HDR_LEN, (uint16_t)msg2_len);
    rc = sst_noise_hs_write(&hs, payload, sizeof payload, o->response + SST_NEGO_HDR_LEN + 2, msg2_len);
    if (rc != (int)msg2_len) {
        ho_close(n);
        free(n);
        rc = rc < 0 ? rc : SST_ERR_CRYPTO;
        goto fail;
    }
    o->response_len = (uint16_t)(SST_NEGO_HDR_LEN + 2 + msg2_len);
    if (tk) {
        /* Single use: the ticket is spent the moment a HELLO proves it (a retransmitted HELLO
         * finds the half-open entry above, so it still gets this RESPONSE). */
        n->resumed = true;
        memcpy(o->peer_static, tk->peer_static, 32);
        sst_ticket_drop(&h->issued, hel.ticket);
        tk = NULL;
    }
    memcpy(n->key, key, HO_KEY_LEN);
    o->peer = *from;
    n->state = HO_WAIT_FINISH;
    o->local_chan_id = (uint8_t)chan_id;
    o->security = security;
    o->aead = aead;
    n->expiry = now + h->cfg.half_open_timeout;
    memcpy(o->peer_e, peer_e, 32);
    o->hs = hs;
    HASH_ADD(hh, h->table, key, HO_KEY_LEN, n);
    h->stats.half_open++;
    h->stats.entries++;
    h->stats.responses_sent++;
    *out_len = send_unverified(h, &o->rx_bytes, &o->tx_bytes, len, o->response, o->response_len, out);
    rc = 0;
    chan_id = -1;
fail:
    if (chan_id > 0 && h->ops.release_chan_id)
        h->ops.release_chan_id(h->ops.ctx, from, (uint8_t)chan_id);
    sst_noise_hs_wipe(&hs);
    sodium_memzero(payload, sizeof payload);
    return rc;
}

/* Stores the ticket a completed handshake leaves behind (nothing if the peer issued none or
 * resumption is off).  psk came from sst_noise_hs_split_resume. */
static void keep_ticket(struct sst_nego_host *h, struct sst_ticket_table *t, const uint8_t *key,
                        const uint8_t id[TICKET_LEN], const uint8_t psk[32], const uint8_t peer_static[32],
                        sst_time_t now)
{
    if (!h->cfg.max_tickets || sodium_is_zero(id, TICKET_LEN))
        return;
    struct sst_ticket tk;
    memcpy(tk.id, id, TICKET_LEN);
    memcpy(tk.psk, psk, 32);
    memcpy(tk.peer_static, peer_static, 32);
    tk.expiry = now + h->cfg.ticket_lifetime;
    (void)sst_ticket_put(t, key, &tk);  /* no memory: no ticket, the next handshake is full XX */
    sodium_memzero(&tk, sizeof tk);
}

static int on_finish(struct sst_nego_host *h, sst_time_t now, const struct sst_addr *from, const uint8_t *pkt,
                     size_t len, struct sst_nego_result *res, size_t *consumed)
{
    if (len < SST_NEGO_HDR_LEN + 2)
        return SST_ERR_MALFORMED;
    size_t mlen = sst_get16(pkt + SST_NEGO_HDR_LEN);
    if ((mlen != MSG3_LEN || len < FINISH_LEN) && (mlen != RMSG3_LEN || len < RFINISH_LEN))
        return SST_ERR_MALFORMED;
    uint8_t key[HO_KEY_LEN];
    ho_key(key, from, sst_get64(pkt + 6));
    struct half_open *e = NULL;
    HASH_FIND(hh, h->table, key, HO_KEY_LEN, e);
    if (!e)
        return SST_ERR_STATE;
    /* The entry decides which FINISH it waits for. */
    size_t want_mlen = e->resumed ? RMSG3_LEN : MSG3_LEN, flen = SST_NEGO_HDR_LEN + 2 + want_mlen;
    if (mlen != want_mlen)
        return SST_ERR_MALFORMED;
    if (e->state == HO_DONE) {
        /* The same FINISH again (lost acks): report it consumed so a coalesced packet after it
         * is still processed, but complete nothing twice. */
        uint8_t d[32];
        digest(d, pkt, flen);
        if (sodium_memcmp(d, e->finish_hash, 32) != 0)
            return SST_ERR_STATE;
        *consumed = flen;
        return 0;
    }

    struct ho_open *o = e->o;
    struct sst_noise_hs hs = o->hs;  /* committed only if everything below succeeds */
    struct sst_noise_cipher i2r, r2i;
    uint8_t payload[FINISH_PAYLOAD_LEN], psk[32];
    int rc = sst_noise_hs_read(&hs, pkt + SST_NEGO_HDR_LEN + 2, want_mlen, payload, sizeof payload);
    if (rc < 0)
        goto out;
    if (rc != FINISH_PAYLOAD_LEN || payload[0] == 0) {
        rc = SST_ERR_MALFORMED;
        goto out;
    }
    /* Resumed: the peer is whoever the ticket was issued to (only it knows the PSK); the allow
     * list is asked again all the same. */
    const uint8_t *peer_static = e->resumed ? o->peer_static : hs.rs;
    if (h->ops.verify_peer && h->ops.verify_peer(h->ops.ctx, from, peer_static, false) != 0) {
        rc = SST_ERR_IDENTITY;
        goto out;
    }
    memset(res, 0, sizeof *res);
    memcpy(res->peer_static, peer_static, 32);
    rc = sst_noise_hs_split_resume(&hs, &i2r, &r2i, psk);
    if (rc < 0)
        goto out;
    res->security = o->security;
    res->aead = o->aead;
    memcpy(res->tx_key, r2i.k, 32);
    memcpy(res->rx_key, i2r.k, 32);
    res->local_chan_id = o->local_chan_id;
    res->remote_chan_id = payload[0];
    memcpy(res->peer_reset_token, payload + 1, SST_RESET_TOKEN_LEN);
    res->tag = sst_get64(pkt + 6);
    res->initiator = false;
    res->resumed = e->resumed;
    keep_ticket(h, &h->issued, o->ticket_next, o->ticket_next, psk, res->peer_static, now);

    /* Keep a tombstone (no secrets) so duplicates are recognised until the entry expires. */
    ho_close(e);
    e->state = HO_DONE;
    digest(e->finish_hash, pkt, flen);
    e->expiry = now + h->cfg.half_open_timeout;
    h->stats.half_open--;
    h->stats.completed++;
    if (e->resumed)
        h->stats.resumed++;
    *consumed = flen;
    rc = 1;
out:
    sst_noise_hs_wipe(&hs);
    sst_noise_cipher_wipe(&i2r);
    sst_noise_cipher_wipe(&r2i);
    sodium_memzero(payload, sizeof payload);
    sodium_memzero(psk, sizeof psk);
    return rc;
}

int sst_nego_responder_recv(struct sst_nego_host *h, sst_time_t now, const struct sst_addr *from,
                            const uint8_t *pkt, size_t len, uint8_t *out, size_t *out_len,
                            struct sst_nego_result *res, size_t *consumed)
{
    *out_len = 0;
    *consumed = 0;
    uint64_t tag;
    int type = sst_nego_peek(pkt, len, &tag);
    int rc;
    if (type == SST_NEGO_HELLO)
        rc = on_hello(h, now, from, pkt, len, out, out_len);
    else if (type == SST_NEGO_FINISH)
        rc = on_finish(h, now, from, pkt, len, res, consumed);
    else
        rc = type < 0 ? type : SST_ERR_STATE;
    if (rc < 0)
        h->stats.rejected++;
    return rc;
}

/* ---- initiator ---- */

/* Offers resumption if the host holds a ticket for the peer: NNpsk0 message 1 on the ephemeral
 * the XX state already has (no second key generation).  The ticket is taken out of the cache
 * whatever happens next: tickets are single-use. */
static void offer_ticket(struct sst_nego_initiator *in, sst_time_t now, const uint8_t e_secret[32])
{
    struct sst_nego_host *h = in->host;
    uint8_t key[19], prologue[RPROLOGUE_LEN], m1[RMSG1_LEN];
    struct sst_ticket tk;
    sst_addr_encode(&in->peer, key);
    if (!h->cfg.max_tickets || !sst_ticket_take(&h->held, key, now, &tk))
        return;
    /* The key pinned for this peer may have changed since (known_hosts edited): then no
     * resumption; full XX shows the peer's key to verify_peer as usual. */
    if (h->ops.verify_peer && h->ops.verify_peer(h->ops.ctx, &in->peer, tk.peer_static, true) != 0)
        goto out;
    make_resume_prologue(prologue, in->tag, tk.id);
    const struct sst_noise_keys keys = { .e_sk = e_secret, .e_pk = in->hs.e_pk, .psk = tk.psk };
    if (sst_noise_hs_start(&in->hs_psk, SST_NOISE_NNPSK0, true, prologue, sizeof prologue, &keys) != 0)
        goto out;
    const uint8_t p1[HELLO_PAYLOAD_LEN] = {in->security, h->cfg.aes_available ? 1 : 0};
    if (sst_noise_hs_write(&in->hs_psk, p1, sizeof p1, m1, sizeof m1) != RMSG1_LEN) {
        sst_noise_hs_wipe(&in->hs_psk);
        goto out;
    }
    memcpy(in->rmsg1_sealed, m1 + 32, RMSG1_SEALED_LEN);
    memcpy(in->ticket_id, tk.id, TICKET_LEN);
    memcpy(in->peer_static, tk.peer_static, 32);
    in->resuming = true;
out:
    sodium_memzero(&tk, sizeof tk);
}

struct sst_nego_initiator *sst_nego_initiator_new(struct sst_nego_host *h, sst_time_t now,
                                                  const struct sst_addr *peer, enum sst_security security)
{
    if (security != SST_SEC_STRONG && security != SST_SEC_LIGHT)
        return NULL;
    struct sst_nego_initiator *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->host = h;
    in->peer = *peer;
    in->security = (uint8_t)security;
    in->state = IN_HELLO;
    uint8_t tagb[8], e_secret[32], prologue[PROLOGUE_LEN];
    host_random(h, tagb, sizeof tagb);
    in->tag = sst_get64(tagb);
    host_random(h, e_secret, sizeof e_secret);
    make_prologue(prologue, in->tag);
    const struct sst_noise_keys keys = { .s_sk = h->cfg.identity.sk, .s_pk = h->static_pk, .e_sk = e_secret };
    int rc = sst_noise_hs_start(&in->hs, SST_NOISE_XX, true, prologue, sizeof prologue, &keys);
    if (rc == 0) {
        const uint8_t p1[HELLO_PAYLOAD_LEN] = {in->security, h->cfg.aes_available ? 1 : 0};
        rc = sst_noise_hs_write(&in->hs, p1, sizeof p1, in->msg1, sizeof in->msg1);
    }
    if (rc == MSG1_LEN)
        offer_ticket(in, now, e_secret);
    sodium_memzero(e_secret, sizeof e_secret);
    if (rc != MSG1_LEN) {
        sst_nego_initiator_free(in);
        return NULL;
    }
    return in;
}

void sst_nego_initiator_free(struct sst_nego_initiator *in)
{
    if (!in)
        return;
    sodium_memzero(in, sizeof *in);
    free(in);
}

uint64_t sst_nego_initiator_tag(const struct sst_nego_initiator *in)
{
    return in->tag;
}

bool sst_nego_initiator_resuming(const struct sst_nego_initiator *in)
{
    return in->resuming;
}

size_t sst_nego_initiator_hello(struct sst_nego_initiator *in, uint8_t *out, size_t cap)
{
    if (cap < SST_NEGO_HELLO_MIN)
        return 0;
    memset(out, 0, SST_NEGO_HELLO_MIN);
    put_hdr(out, SST_NEGO_HELLO, in->tag);
    size_t off = SST_NEGO_HDR_LEN;
    sst_put8(out + off, in->have_cookie ? COOKIE_LEN : 0);
    off++;
    if (in->have_cookie) {
        memcpy(out + off, in->cookie, COOKIE_LEN);
        off += COOKIE_LEN;
    }
    sst_put16(out + off, MSG1_LEN);
    memcpy(out + off + 2, in->msg1, MSG1_LEN);
    off += 2 + MSG1_LEN;
    if (in->resuming) {
        sst_put8(out + off, HELLO_EXT_RESUME);
        memcpy(out + off + 1, in->ticket_id, TICKET_LEN);
        memcpy(out + off + 1 + TICKET_LEN, in->rmsg1_sealed, RMSG1_SEALED_LEN);
    }
    return SST_NEGO_HELLO_MIN;
}

static int on_response(struct sst_nego_initiator *in, sst_time_t now, const uint8_t *pkt, size_t len,
                       uint8_t *out, size_t *out_len, struct sst_nego_result *res)
{
    struct sst_nego_host *h = in->host;
    /* Which handshake the responder chose shows in the Noise message length; each is then
     * authenticated by its own transcript.  A resumed answer to a HELLO that offered no ticket
     * is nonsense. */
    if (len < SST_NEGO_HDR_LEN + 2)
        return SST_ERR_MALFORMED;
    size_t mlen = sst_get16(pkt + SST_NEGO_HDR_LEN);
    bool resumed = mlen == RMSG2_LEN;
    if (resumed ? (len != RRESPONSE_LEN || !in->resuming) : (len != RESPONSE_LEN || mlen != MSG2_LEN))
        return SST_ERR_MALFORMED;
    if (in->state == IN_DONE) {
        /* Our FINISH was lost and the responder repeated its RESPONSE: repeat the FINISH. */
        uint8_t d[32];
        digest(d, pkt, len);
        if (sodium_memcmp(d, in->response_hash, 32) != 0)
            return SST_ERR_STATE;
        memcpy(out, in->finish, in->finish_len);
        *out_len = in->finish_len;
        return 0;
    }

    struct sst_noise_hs hs = resumed ? in->hs_psk : in->hs;  /* committed only if all succeeds */
    struct sst_noise_cipher i2r, r2i;
    uint8_t payload[RESPONSE_PAYLOAD_LEN], p3[FINISH_PAYLOAD_LEN], finish[FINISH_LEN], psk[32];
    size_t msg3_len = resumed ? RMSG3_LEN : MSG3_LEN, finish_len = SST_NEGO_HDR_LEN + 2 + msg3_len;
    int chan_id = -1;
    int rc = sst_noise_hs_read(&hs, pkt + SST_NEGO_HDR_LEN + 2, mlen, payload, sizeof payload);
    if (rc < 0)
        goto out;
    uint8_t security = payload[1], aead = payload[2];
    /* The responder may upgrade light to strong, never downgrade; AES only if we offered it. */
    if (rc != RESPONSE_PAYLOAD_LEN || payload[0] == 0 || security > SST_SEC_LIGHT ||
        (security == SST_SEC_LIGHT && in->security != SST_SEC_LIGHT) || aead > SST_AEAD_AES256GCM ||
        (aead == SST_AEAD_AES256GCM && !h->cfg.aes_available)) {
        rc = SST_ERR_MALFORMED;
        goto out;
    }
    /* Resumed: only the holder of the ticket's PSK could answer, i.e. the host whose key
     * verify_peer accepted when the ticket was offered (offer_ticket). */
    const uint8_t *peer_static = resumed ? in->peer_static : hs.rs;
    if (!resumed && h->ops.verify_peer && h->ops.verify_peer(h->ops.ctx, &in->peer, hs.rs, true) != 0) {
        rc = SST_ERR_IDENTITY;
        goto out;
    }
    chan_id = h->ops.alloc_chan_id ? h->ops.alloc_chan_id(h->ops.ctx, &in->peer) : 1;
    if (chan_id < 1 || chan_id > 255) {
        chan_id = -1;
        rc = SST_ERR_LIMIT;
        goto out;
    }
    sst_put8(p3, (uint8_t)chan_id);
    sst_nego_reset_token(h, &in->peer, (uint8_t)chan_id, p3 + 1);
    put_hdr(finish, SST_NEGO_FINISH, in->tag);
    sst_put16(finish + SST_NEGO_HDR_LEN, (uint16_t)msg3_len);
    rc = sst_noise_hs_write(&hs, p3, sizeof p3, finish + SST_NEGO_HDR_LEN + 2, msg3_len);
    if (rc != (int)msg3_len) {
        rc = rc < 0 ? rc : SST_ERR_CRYPTO;
        goto out;
    }
    memset(res, 0, sizeof *res);
    memcpy(res->peer_static, peer_static, 32);
    rc = sst_noise_hs_split_resume(&hs, &i2r, &r2i, psk);
    if (rc < 0)
        goto out;
    res->security = security;
    res->aead = aead;
    memcpy(res->tx_key, i2r.k, 32);
    memcpy(res->rx_key, r2i.k, 32);
    res->local_chan_id = (uint8_t)chan_id;
    res->remote_chan_id = payload[0];
    memcpy(res->peer_reset_token, payload + 3, SST_RESET_TOKEN_LEN);
    res->tag = in->tag;
    res->initiator = true;
    res->resumed = resumed;
    uint8_t key[19];
    sst_addr_encode(&in->peer, key);
    keep_ticket(h, &h->held, key, payload + 3 + SST_RESET_TOKEN_LEN, psk, res->peer_static, now);

    sst_noise_hs_wipe(&in->hs);
    sst_noise_hs_wipe(&in->hs_psk);
    in->resuming = resumed;
    memcpy(in->finish, finish, finish_len);
    in->finish_len = (uint16_t)finish_len;
    digest(in->response_hash, pkt, len);
    in->state = IN_DONE;
    if (resumed)
        h->stats.resumed++;
    memcpy(out, finish, finish_len);
    *out_len = finish_len;
    chan_id = -1;
    rc = 1;
out:
    /* The channel ID went to the host's table only if we completed; otherwise hand it back. */
    if (chan_id > 0 && h->ops.release_chan_id)
        h->ops.release_chan_id(h->ops.ctx, &in->peer, (uint8_t)chan_id);
    sst_noise_hs_wipe(&hs);
    sst_noise_cipher_wipe(&i2r);
    sst_noise_cipher_wipe(&r2i);
    sodium_memzero(payload, sizeof payload);
    sodium_memzero(p3, sizeof p3);
    sodium_memzero(psk, sizeof psk);
    return rc;
}

int sst_nego_initiator_recv(struct sst_nego_initiator *in, sst_time_t now, const uint8_t *pkt, size_t len,
                            uint8_t *out, size_t *out_len, struct sst_nego_result *res)
{
    *out_len = 0;
    uint64_t tag;
    int type = sst_nego_peek(pkt, len, &tag);
    if (type < 0)
        return type;
    if (tag != in->tag)
        return SST_ERR_STATE;
    if (type == SST_NEGO_COOKIE) {
        /* Unauthenticated by nature: a forged cookie only costs one rejected HELLO. */
        if (in->state != IN_HELLO)
            return SST_ERR_STATE;
        if (len != COOKIE_MSG_LEN)
            return SST_ERR_MALFORMED;
        memcpy(in->cookie, pkt + SST_NEGO_HDR_LEN, COOKIE_LEN);
        in->have_cookie = true;
        *out_len = sst_nego_initiator_hello(in, out, SST_NEGO_MAX_REPLY);
        return 0;
    }
    if (type == SST_NEGO_RESPONSE)
        return on_response(in, now, pkt, len, out, out_len, res);
    return SST_ERR_STATE;
}

size_t sst_nego_initiator_finish(const struct sst_nego_initiator *in, uint8_t *out, size_t cap)
{
    if (in->state != IN_DONE || cap < in->finish_len)
        return 0;
    memcpy(out, in->finish, in->finish_len);
    return in->finish_len;
}
