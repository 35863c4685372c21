/* libsst public API: structured streams (paper §2) over SST channels.
 *
 * A context (struct sst_ctx) owns one sans-I/O engine (struct sst_host) and the stream layer
 * above it.  The driver feeds it datagrams and time (sst_ctx_recv, sst_ctx_timeout) and re-arms
 * one timer at sst_ctx_deadline(); packets leave through io.send.  The application opens
 * top-level streams to a peer's service with sst_connect() and takes incoming ones from a
 * listener; any stream can fork substreams, send datagrams (ephemeral substreams), be given a
 * priority, and be shut down per direction.
 *
 * Events reach the application through one callback per stream (and one per listener), like a
 * libevent bufferevent: READABLE, WRITABLE, CONNECTED, EOF, ERROR, SUBSTREAM.  Callbacks are
 * deferred: they run when the engine has finished processing the input that caused them (at
 * the end of sst_ctx_recv / sst_ctx_timeout / an API call), never in the middle of it, so a
 * callback may call any function here, including closing the stream it was called for.  What
 * callbacks write, shut down or open is sent once the round of callbacks has returned, so it
 * shares packets (and the ack of the packet that caused it) instead of leaving call by call.
 *
 * The engine reads no clock: calls that may send (write, shutdown, connect, ...) use the time
 * of the last sst_ctx_recv/sst_ctx_timeout/sst_ctx_set_time call.
 *
 * Errors are negative SST_ERR_* codes (err.h). */
#ifndef SST_SST_H
#define SST_SST_H

#include <stddef.h>

#include "err.h"
#include "host.h"
#include "types.h"

struct sst_ctx;
struct sst_stream;
struct sst_listener;

/* Byte counts or negative errors. */
typedef ptrdiff_t sst_ssize_t;

enum sst_stream_event {
    SST_EV_CONNECTED = 0x01,   /* the peer accepted the service request (top-level streams) */
    SST_EV_READABLE = 0x02,    /* new bytes (or end of stream) can be read */
    SST_EV_WRITABLE = 0x04,    /* send buffer space freed after a write came up short */
    SST_EV_EOF = 0x08,         /* the peer closed its write side; all its bytes have arrived */
    SST_EV_ERROR = 0x10,       /* reset, refused or channel failure: see sst_stream_error() */
    SST_EV_SUBSTREAM = 0x20,   /* an incoming substream or datagram waits to be accepted */
};

typedef void (*sst_stream_cb)(struct sst_stream *s, unsigned events, void *arg);
typedef void (*sst_listener_cb)(struct sst_listener *l, void *arg);

enum sst_shut {
    SST_SHUT_READ = 1,     /* discard further incoming data */
    SST_SHUT_WRITE = 2,    /* send Close after the buffered bytes (TCP FIN) */
    SST_SHUT_BOTH = 3,
    SST_SHUT_RESET = 4,    /* abort both directions now, discarding buffers (paper §4.3.8) */
};

struct sst_ctx_config {
    struct sst_host_config host;   /* see sst_host_config_default */
    size_t rx_buffer;              /* per-stream receive buffer = flow-control window (4 MiB max,
                                    * allocated as it fills) */
    size_t tx_buffer;              /* per-stream send buffer (4 MiB max, allocated as it fills) */
    unsigned max_pending;          /* unaccepted substreams per stream, and listener backlog (64) */
    unsigned dgram_max_frags;      /* datagrams of at most this many packets go stateless (4) */
    size_t max_txrecs;             /* per channel: packet sequence numbers the send records may span,
                                    * oldest unresolved to newest (65536, at least 64) */
    /* Migration (paper §4.3.7): when a channel fails for lack of connectivity (SST_ERR_TIMEOUT),
     * its streams wait this long for a new channel to the same peer (re-established with
     * backoff by the side that initiated the failed one) instead of failing.  0 = fail at once.
     * Default 30 s.  A channel that closes gracefully (its idle_timeout, or the peer's close)
     * never fails its streams: they stay dormant with no deadline, and the first side with
     * something to send reconnects, then has max(migrate_timeout, 10 s) to reach the peer. */
    sst_time_t migrate_timeout;
    /* Streams idle this long (nothing in flight or waiting) detach from their channel, freeing
     * their LSID, and re-attach on next use.  0 = never.  Default 30 s. */
    sst_time_t detach_idle;
    /* Liveness of dormant streams (docs/protocol-streams.md §2c): a conn dormant this long
     * reconnects to its peer as if it had something to send, and every stream attaches, so a
     * peer whose process is gone is found out (a stateless Reset for the USID, another host
     * key, an ICMP port unreachable: SST_ERR_RESET; nobody answers: SST_ERR_TIMEOUT after
     * max(migrate_timeout, 10 s)).  Then idle again, the conn goes dormant again and probes
     * again after this long.  A side that only reads from a dead peer's stream therefore ends
     * within host.idle_timeout + liveness_probe + max(migrate_timeout, 10 s).  0 = never
     * (dormant streams wait for a write, like TCP without keepalives).  Default 60 s. */
    sst_time_t liveness_probe;
};

SST_API void sst_ctx_config_default(struct sst_ctx_config *c);

/* A context with its own host.  io.send is required; io.random and io.verify_peer are passed to
 * the host; io.chan_event, if set, is told about channel events after the stream layer.
 * NULL on allocation failure or bad configuration. */
SST_API struct sst_ctx *sst_ctx_new(const struct sst_ctx_config *cfg, const struct sst_host_io *io);
/* For drivers that must create the host themselves (the simulator glue): make the context
 * first, create the host with io.ctx = the context and io.chan_event = sst_ctx_chan_event,
 * then bind it.  The context does not free a bound host. */
SST_API struct sst_ctx *sst_ctx_new_unbound(const struct sst_ctx_config *cfg);
SST_API void sst_ctx_bind(struct sst_ctx *c, struct sst_host *h);
SST_API void sst_ctx_chan_event(void *ctx, struct sst_chan *ch, enum sst_chan_event ev, int err);
/* Frees every stream and listener (without notifying the peer), then the host if owned.  A
 * bound host must be freed before its context (it may still report channel events). */
SST_API void sst_ctx_free(struct sst_ctx *c);
SST_API struct sst_host *sst_ctx_host(struct sst_ctx *c);

/* Driver entry points (see host.h); each runs deferred callbacks before returning. */
SST_API void sst_ctx_recv(struct sst_ctx *c, sst_time_t now, const struct sst_addr *from,
                          uint8_t *pkt, size_t len);
/* With the local address the datagram was sent to (sst_host_recv_to; NULL: unknown). */
SST_API void sst_ctx_recv_to(struct sst_ctx *c, sst_time_t now, const struct sst_addr *from,
                             const struct sst_addr *local, uint8_t *pkt, size_t len);
SST_API sst_time_t sst_ctx_deadline(struct sst_ctx *c);
SST_API void sst_ctx_timeout(struct sst_ctx *c, sst_time_t now);
/* Tells the context the time before application calls made outside its callbacks. */
SST_API void sst_ctx_set_time(struct sst_ctx *c, sst_time_t now);
/* Runs pending callbacks (drivers that call the host directly use this). */
SST_API void sst_ctx_dispatch(struct sst_ctx *c);

/* ---- top-level streams ------------------------------------------------------------------ */

/* Opens a stream to `service` (1..255 bytes; the shim uses the decimal TCP port) at peer,
 * creating a channel if none exists.  Writable at once: bytes are sent as soon as the channel
 * is up, before the peer's answer (paper §4.3.4).  CONNECTED follows when the peer accepts;
 * if no one listens there, ERROR with sst_stream_error() == SST_ERR_REFUSED; a peer that has
 * no LSID left for it resets it (SST_ERR_RESET).  NULL on bad arguments or resource exhaustion
 * (memory, or no LSID of ours left on that channel: more than 16 384 of its streams live in a
 * row, docs/protocol-streams.md §3). */
SST_API struct sst_stream *sst_connect(struct sst_ctx *c, const struct sst_addr *peer,
                                       const char *service, sst_stream_cb cb, void *arg);
/* Accepts top-level streams for `service`.  NULL if already listened on or out of memory. */
SST_API struct sst_listener *sst_listen(struct sst_ctx *c, const char *service, sst_listener_cb cb,
                                        void *arg);
/* The next stream accepted for the listener, or NULL if none waits. */
SST_API struct sst_stream *sst_accept(struct sst_listener *l, sst_stream_cb cb, void *arg);
/* Stops listening; streams waiting in the backlog are reset. */
SST_API void sst_listener_close(struct sst_listener *l);
/* Answer later (off by default): streams this listener accepts from now on are not answered
 * yet; the application answers each with sst_stream_answer once it knows whether it can serve
 * it (a gateway: once its local connect completed), so the initiator sees CONNECTED only for a
 * service that really answers.  Until then the stream's writes return SST_ERR_AGAIN (WRITABLE
 * follows the answer), a shutdown(WRITE) waits for the answer, and sst_stream_close refuses. */
SST_API void sst_listener_set_answer_later(struct sst_listener *l, bool on);
/* Answers a stream accepted under answer-later: ok sends the service answer (the initiator
 * gets CONNECTED); !ok refuses it as a missing service would (the initiator's stream fails with
 * SST_ERR_REFUSED; ours stops reading and writing: close it).  0, SST_ERR_INVAL if the stream
 * is not waiting for an answer, or the stream's error. */
SST_API int sst_stream_answer(struct sst_stream *s, bool ok);

/* ---- data ------------------------------------------------------------------------------- */

/* Bytes read (> 0), 0 at end of stream, SST_ERR_AGAIN if nothing is ready, or the stream's
 * error (SST_ERR_RESET, SST_ERR_REFUSED, SST_ERR_TIMEOUT, ...). */
SST_API sst_ssize_t sst_stream_read(struct sst_stream *s, void *buf, size_t len);
/* Bytes taken into the send buffer (possibly fewer than len; WRITABLE follows), SST_ERR_AGAIN
 * if none fit, SST_ERR_CLOSED after shutdown(WRITE), or the stream's error. */
SST_API sst_ssize_t sst_stream_write(struct sst_stream *s, const void *buf, size_t len);
/* Messages (paper §2.3: record markers).  A stream may carry record boundaries among its
 * bytes; sst_stream_read ignores them, sst_stream_read_msg stops at them.  Each boundary
 * takes one byte of send buffer and of the peer's flow-control window (docs/api.md).
 *
 * Ends the current message: the bytes written since the previous boundary (possibly none: a
 * zero-length message) form one message.  0, SST_ERR_AGAIN (send buffer full; WRITABLE
 * follows), SST_ERR_CLOSED after shutdown(WRITE), or the stream's error. */
SST_API int sst_stream_mark(struct sst_stream *s);
/* Writes len bytes (0 allowed) and ends the message, all or nothing: len, SST_ERR_AGAIN if
 * len + 1 bytes of buffer are not free now (WRITABLE follows), SST_ERR_TOO_BIG if len + 1
 * exceeds the send buffer, SST_ERR_CLOSED, or the stream's error. */
SST_API sst_ssize_t sst_stream_write_msg(struct sst_stream *s, const void *buf, size_t len);
/* Reads up to len (> 0) bytes of the current message, never past its end.  *end is set when
 * the bytes returned end the message (the boundary is consumed with them); a message longer
 * than len comes in several calls, the last with *end set.  Returns the bytes read (0 with
 * *end set: a zero-length message, or the end of one whose bytes were all read before), 0
 * with *end clear at end of stream, SST_ERR_AGAIN, SST_ERR_INVAL (len 0) or the stream's
 * error.  Bytes written without a boundary before the end of stream read with *end clear. */
SST_API sst_ssize_t sst_stream_read_msg(struct sst_stream *s, void *buf, size_t len, bool *end);
/* 0, SST_ERR_INVAL or SST_ERR_CLOSED. */
SST_API int sst_stream_shutdown(struct sst_stream *s, enum sst_shut how);
/* Gives the handle back: the write side closes gracefully (buffered bytes are still
 * delivered), further incoming data is discarded, and the stream is freed when done.
 * No callback runs for it afterwards. */
SST_API void sst_stream_close(struct sst_stream *s);
/* The stream's sticky error, 0 if none. */
SST_API int sst_stream_error(const struct sst_stream *s);
SST_API void sst_stream_set_callback(struct sst_stream *s, sst_stream_cb cb, void *arg);

/* ---- substreams and datagrams (paper §2.1, §2.2) ----------------------------------------- */

/* A new child of s; its first bytes travel in Init packets at once, on the parent's window. */
SST_API struct sst_stream *sst_stream_open_substream(struct sst_stream *s, sst_stream_cb cb, void *arg);
/* Whether the peer may open substreams (and send datagrams) on s.  Off by default. */
SST_API void sst_stream_listen(struct sst_stream *s, bool on);
/* The next incoming substream (a datagram shows up as a complete, read-only one), or NULL. */
SST_API struct sst_stream *sst_stream_accept(struct sst_stream *s, sst_stream_cb cb, void *arg);
/* Sends a best-effort datagram as an ephemeral substream of s: small ones statelessly in
 * Datagram packets, larger ones on a reliable substream (paper §4.3.5).  0, SST_ERR_AGAIN
 * (queue full), SST_ERR_TOO_BIG (beyond the send buffer) or the stream's error. */
SST_API int sst_stream_send_datagram(struct sst_stream *s, const void *buf, size_t len);
/* Takes the first complete incoming datagram (either delivery path): its length, SST_ERR_AGAIN
 * if none, SST_ERR_TOO_BIG if it does not fit in cap (it stays queued). */
SST_API sst_ssize_t sst_stream_recv_datagram(struct sst_stream *s, void *buf, size_t cap);

/* Higher priorities go first (strictly); equal priorities share round-robin.  Default 0. */
SST_API void sst_stream_set_priority(struct sst_stream *s, int priority);
/* Latency-critical streams (opt-in, default off): every byte is sent twice, the copies right
 * behind the originals, so one lost packet costs no loss-detection round trip (proactive
 * redundancy, Flach et al., SIGCOMM 2013).  The copies are ordinary packets: they take
 * congestion window and pacing like any other, so they cost the stream's bandwidth twice; a
 * copy whose original is acknowledged first is not sent.  For short request/response streams,
 * not bulk. */
SST_API void sst_stream_set_redundant(struct sst_stream *s, bool on);
/* TCP_USER_TIMEOUT (RFC 5482) for s: once bytes (or the Close) written to it have gone without
 * any acknowledgment for limit, it fails with SST_ERR_TIMEOUT (the peer is sent a Reset), as a
 * stream of a channel given up after migrate_timeout does -- usually much earlier.  Measured
 * between limit and 1.25 x limit; 0 turns it off.  0, SST_ERR_INVAL (the root, a datagram),
 * SST_ERR_NOMEM, or the stream's error. */
SST_API int sst_stream_set_user_timeout(struct sst_stream *s, sst_time_t limit);
/* TCP keepalive (SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT) for s: once its channel has heard
 * nothing from the peer for idle, it pings every intvl; cnt pings unanswered (intvl after the
 * last) fail s with SST_ERR_TIMEOUT.  Only while s has a live channel (a dormant one is the
 * liveness probe's).  idle 0 turns it off.  0, SST_ERR_INVAL (the root, a datagram, intvl or
 * cnt 0), SST_ERR_NOMEM, or the stream's error. */
SST_API int sst_stream_set_keepalive(struct sst_stream *s, sst_time_t idle, sst_time_t intvl, unsigned cnt);

/* ---- introspection ---------------------------------------------------------------------- */

struct sst_stream_stats {
    uint64_t bytes_written, bytes_read;   /* application bytes */
    uint64_t bytes_retransmitted;         /* bytes sent again after a loss */
    uint64_t tx_inflight, tx_credit;      /* flow control: unacked bytes vs. peer's window */
    uint64_t rx_buffered;                 /* received, not yet read */
    int priority;
    uint16_t local_lsid, remote_lsid;
    bool attached;                        /* on a live channel */
    bool redundant;                       /* sst_stream_set_redundant */
    uint64_t bytes_redundant;             /* bytes sent as redundant copies */
    uint64_t bytes_sent;                  /* of bytes_written: sent at least once */
    uint64_t bytes_acked;                 /* of bytes_written: acknowledged in order from the
                                           * start (what TCP's snd_una has passed) */
};
SST_API void sst_stream_get_stats(const struct sst_stream *s, struct sst_stream_stats *out);
SST_API const struct sst_addr *sst_stream_peer(const struct sst_stream *s);
/* This host's address the stream's peer sends to (port: our SST port), as its channel knows it
 * (sst_chan_local): what a TCP server's getsockname would report, on a host with several
 * addresses.  NULL when unknown (the stream is not attached to a channel, or the driver does
 * not report local addresses). */
SST_API const struct sst_addr *sst_stream_local(const struct sst_stream *s);

struct sst_ctx_stats {
    uint64_t streams_opened, streams_accepted, streams_freed;
    uint64_t streams_live;
    uint64_t resets_sent, resets_received, refused;
    uint64_t user_timeouts;               /* streams failed by sst_stream_set_user_timeout */
    uint64_t keepalive_timeouts;          /* streams failed by sst_stream_set_keepalive */
    uint64_t dgrams_sent_stateless, dgrams_sent_substream, dgrams_received, dgrams_dropped;
    uint64_t rx_not_buffered;             /* segments left unacknowledged for lack of room */
    uint64_t malformed;                   /* stream-layer payloads rejected by the codec */
    size_t txrec_high_water;
    uint64_t migrations;                  /* channels replaced under live streams */
    uint64_t attaches_sent, attaches_received, detaches_sent, detaches_received;
    uint64_t lsids_in_use;                /* our LSIDs attached now, over all channels */
    uint64_t fill_calls;                  /* payloads the channels asked the stream layer for */
    uint64_t fill_scanned;                /* ready-list entries examined by those calls */
    /* Data segments whose payload stayed in the send ring, sealed from there into the datagram
     * (one copy fewer), and those copied into the packet because their bytes wrap around the
     * ring's end or begin within 8 bytes of its start (docs/protocol-streams.md). */
    uint64_t payload_in_ring, payload_copied;
    /* Idle connections (docs/protocol-streams.md §2b): channels closed under live streams that
     * left them dormant, dormant conns woken by a stream with something to send, and dormant
     * conns whose streams moved to a new channel (either side's), and those dormant now. */
    uint64_t idle_closes, idle_wakes, idle_resumes;
    uint64_t conns_dormant;
    uint64_t liveness_probes;             /* dormant conns that reconnected to check the peer */
    uint64_t attaches_deferred;           /* Attaches left unacknowledged: a simultaneous
                                           * reconnection's other channel wins */
    uint64_t streams_closing;             /* given back with sst_stream_close, still
                                           * delivering what was written (a process that exits
                                           * waits for this to reach 0, as TCP's FIN_WAIT) */
    uint64_t tx_acked;                    /* stream bytes (and ends) the peers acknowledged */
};
SST_API void sst_ctx_get_stats(const struct sst_ctx *c, struct sst_ctx_stats *out);

#endif
