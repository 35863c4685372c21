/* Pattern endpoints for stream tests: a writer that sends an 8-byte header (seed, length) and
 * a seeded byte pattern, and a reader that verifies every byte against it, optionally
 * answering with a response once the request ends. */
#ifndef SST_STREAMTEST_H
#define SST_STREAMTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "sst.h"

/* Byte i of the pattern for seed. */
uint8_t ep_pat(uint32_t seed, uint64_t i);

/* Each stream starts with an 8-byte header (seed, length) so the reader can verify. */
struct ep {
    struct sst_stream *s;
    uint32_t tx_seed;
    uint64_t tx_len, tx_done;          /* header included */
    bool close_after;
    uint8_t hdr[8];
    size_t hdr_got;
    uint32_t rx_seed;
    uint64_t rx_len, rx_done;          /* payload bytes verified */
    bool rx_eof, connected, errored, bad;
    int err;
    bool reply;                         /* server: answer with a response once the request ends */
    bool stall;                         /* don't read */
    sst_time_t done_at;
    void (*on_event)(struct ep *e, unsigned ev);   /* extra per-test behaviour */
    void *user;
};

/* Writes as much of the pending transmission as the stream takes; shuts the write side
 * when it is all written if close_after is set. */
void ep_pump(struct ep *e);
/* Starts sending a header and `payload` pattern bytes, then shutting the write side. */
void ep_start_tx(struct ep *e, uint32_t seed, uint64_t payload);
/* Reads and verifies everything available; sets rx_eof at the end and bad on any mismatch. */
void ep_read(struct ep *e);
/* The stream callback (arg = the struct ep). */
void ep_cb(struct sst_stream *s, unsigned ev, void *arg);

#endif
