/* Internal interface between the host (datagram demultiplexing, negotiation, channel table) and
 * its channels.  Not installed; only core/host.c and core/channel.c include it. */
#ifndef SST_HOST_INT_H
#define SST_HOST_INT_H

#include "channel.h"
#include "host.h"
#include "negotiate.h"

/* Largest datagram the engine builds or accepts, plus room for in-place protection. */
#define SST_MAX_DATAGRAM 1500
#define SST_TXBUF_LEN (SST_MAX_DATAGRAM + SST_PROTECT_TAILROOM + 64)

/* host.c services used by channels */
void sst_host_emit(struct sst_host *h, const struct sst_addr *to, const uint8_t *pkt, size_t len);
/* The same from local address `from` (NULL: the driver's choice, as sst_host_emit). */
void sst_host_emit_from(struct sst_host *h, const struct sst_addr *to, const struct sst_addr *from,
                        const uint8_t *pkt, size_t len);
/* The local address of the datagram being received (sst_host_recv_to), NULL if unknown or
 * outside a receive. */
const struct sst_addr *sst_host_rx_local(const struct sst_host *h);
uint8_t *sst_host_txbuf(struct sst_host *h);
/* The driver's buffer for the next datagram (sst_host_io.tx_slot), or NULL: seal into it and
 * pass it to sst_host_emit before anything else is emitted. */
uint8_t *sst_host_tx_slot(struct sst_host *h, size_t len);
const struct sst_host_config *sst_host_config(const struct sst_host *h);
struct sst_nego_host *sst_host_nego(struct sst_host *h);
void sst_host_chan_event(struct sst_host *h, struct sst_chan *ch, enum sst_chan_event ev, int err);
/* The channel's deadline changed; the host recomputes its own lazily. */
void sst_host_deadline_dirty(struct sst_host *h);

/* channel.c services used by the host */
struct sst_chan *sst_chan_new_initiator(struct sst_host *h, sst_time_t now, const struct sst_addr *peer);
struct sst_chan *sst_chan_new_responder(struct sst_host *h, sst_time_t now, const struct sst_addr *peer,
                                        const struct sst_addr *local, const struct sst_nego_result *res);
void sst_chan_free(struct sst_chan *ch);
/* A protected channel packet addressed to this channel (chan ID already matched). */
void sst_chan_on_packet(struct sst_chan *ch, sst_time_t now, uint8_t *pkt, size_t len);
/* A COOKIE or RESPONSE for this channel's handshake (initiator side). */
void sst_chan_on_nego(struct sst_chan *ch, sst_time_t now, const uint8_t *pkt, size_t len);
/* A duplicate FINISH arrived for this (responder) channel: the initiator has not heard from us. */
void sst_chan_on_dup_finish(struct sst_chan *ch, sst_time_t now);
/* A stateless RESET naming our remote channel ID; acts only if the token matches. */
void sst_chan_on_reset(struct sst_chan *ch, sst_time_t now, const uint8_t token[SST_RESET_TOKEN_LEN]);
/* Ends a channel that is still negotiating (no effect once established). */
void sst_chan_abort_connect(struct sst_chan *ch, int err);
sst_time_t sst_chan_deadline(const struct sst_chan *ch);
void sst_chan_on_timeout(struct sst_chan *ch, sst_time_t now);
uint8_t sst_chan_local_id(const struct sst_chan *ch);
uint8_t sst_chan_remote_id(const struct sst_chan *ch);
uint64_t sst_chan_nego_tag(const struct sst_chan *ch);
bool sst_chan_is_initiator(const struct sst_chan *ch);
bool sst_chan_was_established(const struct sst_chan *ch);

#endif
