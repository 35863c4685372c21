/* The negotiation protocol (paper §4.4): sets up a channel's keys, IDs and mode over channel 0.
 * Noise XX (Noise_XX_25519_ChaChaPoly_SHA256) on libsodium primitives for a first contact,
 * session resumption (Noise NNpsk0 with a single-use ticket from an earlier handshake) for a
 * peer we completed a handshake with, a stateless cookie challenge for responders under load, a
 * 3x anti-amplification bound, and stateless reset tokens.  Message formats are in
 * docs/protocol-negotiation.md. */
#ifndef SST_NEGOTIATE_H
#define SST_NEGOTIATE_H

#include "types.h"
#include "protect.h"

#define SST_NEGO_HDR_LEN 14          /* 0x00 'S' 'S' 'T', version, type, 64-bit initiator tag */
#define SST_NEGO_VERSION 1
#define SST_NEGO_HELLO_MIN 1200      /* HELLOs are padded to this: bounds amplification, proves MTU */
#define SST_NEGO_MAX_REPLY 1400      /* largest negotiation packet any side sends */
#define SST_RESET_TOKEN_LEN 16

enum sst_nego_type {
    SST_NEGO_HELLO = 1,     /* I -> R: Noise "e", requested mode; optional cookie */
    SST_NEGO_COOKIE = 2,    /* R -> I: stateless cookie challenge */
    SST_NEGO_RESPONSE = 3,  /* R -> I: Noise "e, ee, s, es" + responder params (encrypted) */
    SST_NEGO_FINISH = 4,    /* I -> R: Noise "s, se" + initiator params (encrypted) */
    SST_NEGO_RESET = 5,     /* stateless reset for an unknown channel ID */
};

/* Long-term host identity: an X25519 key pair (Noise static key). */
struct sst_identity {
    uint8_t pk[32];
    uint8_t sk[32];
};

/* What a completed handshake yields; the channel is built from it. */
struct sst_nego_result {
    uint8_t security;              /* enum sst_security agreed */
    uint8_t aead;                  /* enum sst_aead agreed */
    uint8_t tx_key[32], rx_key[32];
    uint8_t local_chan_id;         /* peer sends to us with this ID */
    uint8_t remote_chan_id;        /* we send to the peer with this ID */
    uint8_t peer_static[32];       /* peer's authenticated host key */
    uint8_t peer_reset_token[SST_RESET_TOKEN_LEN]; /* proves a RESET for remote_chan_id came from the peer */
    uint64_t tag;                  /* initiator tag of this handshake */
    bool initiator;
    bool resumed;                  /* set up by session resumption (NNpsk0), not full XX */
};

/* Host-wide negotiation context: identity, cookie secret, reset key, responder's half-open
 * table.  Callbacks let the host allocate channel IDs and vet peer keys. */
struct sst_nego_host_ops {
    void *ctx;
    void (*random)(void *ctx, void *buf, size_t len);
    /* A free local channel ID (1..255) for a channel with `peer`, or SST_ERR_LIMIT. */
    int (*alloc_chan_id)(void *ctx, const struct sst_addr *peer);
    /* 0 if `peer` may present host key pk, else SST_ERR_IDENTITY (initiator side: TOFU). */
    int (*verify_peer)(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated);
    /* Optional (may be NULL): a channel ID handed out by alloc_chan_id for a responder half-open
     * handshake that expired or failed without completing is free again. */
    void (*release_chan_id)(void *ctx, const struct sst_addr *peer, uint8_t chan_id);
};

struct sst_nego_config {
    struct sst_identity identity;
    enum sst_security security;       /* what we request as initiator / accept as responder */
    bool aes_available;               /* we offer AES-256-GCM */
    unsigned cookie_threshold;        /* half-open handshakes before cookies are demanded (0: always) */
    unsigned max_half_open;           /* hard cap on half-open state */
    sst_time_t half_open_timeout;     /* responder drops half-open state after this */
    /* Session resumption: tickets kept on each side (a responder's issued tickets, an
     * initiator's one ticket per peer address); 0 turns resumption off (no tickets issued or
     * used).  ticket_lifetime 0 means 1 hour. */
    unsigned max_tickets;
    sst_time_t ticket_lifetime;
};

struct sst_nego_host;  /* opaque */
struct sst_nego_initiator;  /* opaque */

struct sst_nego_host *sst_nego_host_new(const struct sst_nego_config *cfg,
                                        const struct sst_nego_host_ops *ops);
void sst_nego_host_free(struct sst_nego_host *h);
/* The token this host would put in a stateless RESET for `chan_id` received from `peer`. */
void sst_nego_reset_token(const struct sst_nego_host *h, const struct sst_addr *peer,
                          uint8_t chan_id, uint8_t out[SST_RESET_TOKEN_LEN]);

/* Responder: handles a HELLO or FINISH from `from`.  May write a reply (COOKIE or RESPONSE) into
 * out (cap >= SST_NEGO_MAX_REPLY) and set *out_len (0: nothing to send).  Returns 1 and fills
 * *res when a FINISH completes a handshake; then `res->tag` identifies it.  Returns 0 when
 * nothing completed, negative on a bad or unauthenticated packet (dropped, no state kept).
 * After a FINISH, *consumed says how many bytes of pkt were the FINISH message, so a coalesced
 * channel packet after it can be processed. */
int sst_nego_responder_recv(struct sst_nego_host *h, sst_time_t now, const struct sst_addr *from,
                            const uint8_t *pkt, size_t len, uint8_t *out, size_t *out_len,
                            struct sst_nego_result *res, size_t *consumed);
/* Drops expired half-open handshakes and tickets; returns the next half-open expiry or
 * SST_TIME_NEVER (tickets set no deadline: they are checked at use). */
sst_time_t sst_nego_host_expire(struct sst_nego_host *h, sst_time_t now);

/* Initiator: one per outgoing handshake.  If the host holds an unexpired ticket for `peer` whose
 * host key verify_peer still accepts, the HELLO offers resumption (the ticket is used up either
 * way); the responder may still answer with full XX. */
struct sst_nego_initiator *sst_nego_initiator_new(struct sst_nego_host *h, sst_time_t now,
                                                  const struct sst_addr *peer, enum sst_security security);
void sst_nego_initiator_free(struct sst_nego_initiator *in);
uint64_t sst_nego_initiator_tag(const struct sst_nego_initiator *in);
/* Writes the (re)transmittable HELLO into out; returns its length. */
size_t sst_nego_initiator_hello(struct sst_nego_initiator *in, uint8_t *out, size_t cap);
/* Handles a COOKIE or RESPONSE (out needs SST_NEGO_MAX_REPLY bytes); `now` dates the ticket a
 * completed handshake leaves for the next one.  COOKIE: writes a new HELLO
 * into out, returns 0.  RESPONSE: writes FINISH into out, fills *res, returns 1.  The same
 * RESPONSE again after completion: writes the same FINISH, returns 0.  Negative: bad packet,
 * state unchanged (SST_ERR_IDENTITY when verify_peer refused the responder's key).
 * After completion, sst_nego_initiator_finish() rewrites the same FINISH (for retransmission,
 * coalesced ahead of channel packets until the responder acknowledges any packet). */
int sst_nego_initiator_recv(struct sst_nego_initiator *in, sst_time_t now, const uint8_t *pkt, size_t len,
                            uint8_t *out, size_t *out_len, struct sst_nego_result *res);
/* Whether this handshake offers a resumption ticket. */
bool sst_nego_initiator_resuming(const struct sst_nego_initiator *in);
size_t sst_nego_initiator_finish(const struct sst_nego_initiator *in, uint8_t *out, size_t cap);

/* Packet classification on channel 0.  Returns the type, or negative if not a negotiation packet
 * of our version. */
int sst_nego_peek(const uint8_t *pkt, size_t len, uint64_t *tag);
/* Stateless RESET: build (as the host that does not know chan_id) and verify (as the host that
 * does).  Verification is constant-time against the expected token. */
size_t sst_nego_reset_build(const struct sst_nego_host *h, const struct sst_addr *peer, uint8_t chan_id,
                            uint8_t *out, size_t cap);
/* Parses a RESET: stores the channel ID it names (our remote_chan_id) and token. */
int sst_nego_reset_parse(const uint8_t *pkt, size_t len, uint8_t *chan_id,
                         uint8_t token[SST_RESET_TOKEN_LEN]);
bool sst_nego_reset_matches(const uint8_t expected[SST_RESET_TOKEN_LEN],
                            const uint8_t got[SST_RESET_TOKEN_LEN]);

/* Responder counters, for amplification accounting and tests. */
struct sst_nego_stats {
    uint64_t rx_unverified;     /* bytes of HELLOs received (addresses not yet proven) */
    uint64_t tx_unverified;     /* bytes of COOKIEs and RESPONSEs sent in reply */
    uint64_t cookies_sent, responses_sent, responses_resent, completed;
    uint64_t rejected;          /* packets dropped with a negative return */
    uint64_t resumed;           /* completed handshakes (either role) that were resumptions */
    uint64_t resume_fallbacks;  /* responder: tickets offered but unknown/expired: full XX instead */
    unsigned tickets_issued;    /* responder: tickets held now */
    unsigned tickets_held;      /* initiator: peers we hold a ticket for now */
    unsigned half_open;         /* responder handshakes waiting for FINISH */
    unsigned entries;           /* half_open + recently completed (kept to drop duplicates) */
};
void sst_nego_host_stats(const struct sst_nego_host *h, struct sst_nego_stats *out);

/* Identity helpers. */
void sst_identity_generate(struct sst_identity *id, void (*random)(void *, void *, size_t), void *ctx);
/* Lowercase hex fingerprint of a host key (64 chars + NUL). */
void sst_identity_fingerprint(const uint8_t pk[32], char out[65]);

#endif
