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
 * acknowledged nor declared lost. */
struct sst_fc_tx {
    uint64_t credit;
    uint64_t inflight;
    uint64_t win_seq;      /* channel sequence number of the packet that carried credit */
    bool have_win;
};

void sst_fc_tx_init(struct sst_fc_tx *f, uint64_t initial_credit);
/* A window exponent arrived in the packet with channel sequence number seq; older updates
 * than the one in use are ignored ("always uses only the most recently-sent update"). */
void sst_fc_tx_on_window(struct sst_fc_tx *f, uint64_t seq, uint8_t exp);
/* May a segment of len bytes be sent now?  Empty segments (close, window updates) always may. */
bool sst_fc_tx_allows(const struct sst_fc_tx *f, uint64_t len);
void sst_fc_tx_charge(struct sst_fc_tx *f, uint64_t len);
/* The segment was acknowledged or declared lost: it no longer counts against credit. */
void sst_fc_tx_release(struct sst_fc_tx *f, uint64_t len);

/* Receiver side: limit is the buffer we promise; held the bytes received and acknowledged but
 * not yet delivered to the application. */
struct sst_fc_rx {
    uint64_t limit;
    uint64_t held;
};

void sst_fc_rx_init(struct sst_fc_rx *f, uint64_t limit);
void sst_fc_rx_charge(struct sst_fc_rx *f, uint64_t len);
void sst_fc_rx_release(struct sst_fc_rx *f, uint64_t len);
uint64_t sst_fc_rx_room(const struct sst_fc_rx *f);
/* The exponent to put in the next packet's window byte. */
uint8_t sst_fc_rx_window(const struct sst_fc_rx *f);

#endif
