/* Per-stream flow control (paper §4.3.6): the 5-bit exponential window, the sender's credit
 * against unacknowledged bytes in flight, and the receiver's deduction of buffered bytes. */
#ifndef SST_STREAM_FC_H
#define SST_STREAM_FC_H

#include "types.h"

#define SST_WIN_EXP_MAX 31
#define SST_WIN_EXP_MASK 0x1f

/* The largest n (0..31) with 2^n - 1 <= bytes: the receiver never promises more than it has. */
uint8_t sst_fc_win_encode(uint64_t bytes);
/* The window a received exponent guarantees: 2^n - 1 bytes. */
uint64_t sst_fc_win_decode(uint8_t exp);

/* Sender side: credit is the peer's most recent window; inflight the bytes sent and neither
 * acknowledged nor declared lost.  Acknowledged bytes keep counting (as unconfirmed) until the
 * next window update: the receiver holds them until its application reads them, and channel
 * acks can overtake the window update that reports the smaller window (departure from the
 * paper, whose rule lets a sender overrun a receiver whose reader is slow). */
struct sst_fc_tx {
    uint64_t credit;
    uint64_t inflight;
    uint64_t unconfirmed;  /* acknowledged since the window in use was sent */
    uint64_t win_seq;      /* channel sequence number of the packet that carried credit;
                            * 0 before any (channel packets are numbered from 1) */
};

void sst_fc_tx_init(struct sst_fc_tx *f, uint64_t initial_credit);
/* A window exponent arrived in the packet with channel sequence number seq; older updates
 * than the one in use are ignored ("always uses only the most recently-sent update"). */
void sst_fc_tx_on_window(struct sst_fc_tx *f, uint64_t seq, uint8_t exp);
/* May a segment of len bytes be sent now?  Empty segments (close, window updates) always may. */
bool sst_fc_tx_allows(const struct sst_fc_tx *f, uint64_t len);
void sst_fc_tx_charge(struct sst_fc_tx *f, uint64_t len);
/* The segment was declared lost: it no longer counts against credit. */
void sst_fc_tx_release(struct sst_fc_tx *f, uint64_t len);
/* The segment was acknowledged: it counts until the next window update. */
void sst_fc_tx_acked(struct sst_fc_tx *f, uint64_t len);

/* Receiver side: limit is the buffer we promise; held the bytes received and acknowledged but
 * not yet delivered to the application. */
struct sst_fc_rx {
    uint64_t limit;
    uint64_t held;
    uint64_t released;     /* delivered since our window was last advertised */
};

void sst_fc_rx_init(struct sst_fc_rx *f, uint64_t limit);
void sst_fc_rx_charge(struct sst_fc_rx *f, uint64_t len);
void sst_fc_rx_release(struct sst_fc_rx *f, uint64_t len);
uint64_t sst_fc_rx_room(const struct sst_fc_rx *f);
/* The exponent to put in the next packet's window byte. */
uint8_t sst_fc_rx_window(const struct sst_fc_rx *f);
/* A packet carrying our window is going out. */
void sst_fc_rx_advertised(struct sst_fc_rx *f);
/* Should a window update go out although the exponent did not change?  Yes once a quarter of
 * the buffer was delivered since the last one, so the sender's unconfirmed bytes are cleared. */
bool sst_fc_rx_update_due(const struct sst_fc_rx *f);

#endif
