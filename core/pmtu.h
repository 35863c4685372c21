/* Datagram packetization-layer path MTU discovery (DPLPMTUD, RFC 8899) for one channel: which
 * datagram size is confirmed, which size to probe next, and black-hole detection.
 *
 * Sizes are whole UDP payloads (the SST datagram: channel header, payload and trailer).  The
 * module does no I/O and keeps no packets: the channel sends the probes it asks for (padded
 * Control packets) and reports the fate of every packet it sent with its size; the confirmed
 * size, plpmtu, is what the channel builds packets to.  A probe's fate comes from the channel's
 * own loss detection (recovery.h), which acts as RFC 8899's PROBE_TIMER: SST acknowledges every
 * packet, so a probe is failed as soon as later packets are acknowledged without it. */
#ifndef SST_PMTU_H
#define SST_PMTU_H

#include "types.h"

enum sst_pmtu_state {
    SST_PMTU_DISABLED = 0,      /* no larger size configured: stays at BASE_PLPMTU, no probes */
    SST_PMTU_BASE,              /* at BASE_PLPMTU, waiting for an ack to confirm the path */
    SST_PMTU_SEARCHING,         /* probing larger sizes */
    SST_PMTU_SEARCH_COMPLETE,   /* done; a new search starts after the raise timer */
    SST_PMTU_ERROR,             /* BASE_PLPMTU itself was black-holed: MIN_PLPMTU in use */
};

#define SST_PMTU_MIN 1200               /* MIN_PLPMTU: the safe starting size */
#define SST_PMTU_LIMIT4 1472            /* 1500-byte MTU - 20 (IPv4) - 8 (UDP) */
#define SST_PMTU_LIMIT6 1452            /* 1500-byte MTU - 40 (IPv6) - 8 (UDP) */
#define SST_PMTU_MAX_PROBES 3           /* RFC 8899 §5.1.2 MAX_PROBES */
#define SST_PMTU_RAISE_TIMER SST_SEC(600) /* RFC 8899 §5.1.1 PMTU_RAISE_TIMER */
/* Black hole: this many packets larger than the fallback size lost, none of them followed by an
 * acknowledged packet of that size, while a smaller packet sent after the first of them got
 * through (RFC 8899 §4.3). */
#define SST_PMTU_BLACKHOLE_LOSSES 3

struct sst_pmtu {
    uint8_t state;              /* enum sst_pmtu_state */
    uint8_t probe_count;        /* probes of probe_size lost so far */
    uint16_t base, max;         /* BASE_PLPMTU and MAX_PLPMTU */
    uint16_t plpmtu;            /* confirmed size in use */
    uint16_t probe_size;        /* size searched for now (SEARCHING), else 0 */
    uint16_t ceiling;           /* smallest size that failed in this search; max + 1: none */
    uint64_t probe_seq;         /* packet number of the probe in flight; 0: none */
    sst_time_t raise_timer;     /* PMTU_RAISE_TIMER */
    sst_time_t raise_at;        /* SEARCH_COMPLETE, ERROR, BASE after a black hole: search again */
    /* black-hole detection (packet numbers; 0 = none) */
    uint64_t ignore_below;      /* packets sent before the last size change say nothing new */
    uint64_t large_acked;       /* highest acknowledged packet above the fallback size */
    uint64_t small_acked;       /* highest acknowledged packet at or below it */
    uint64_t bh_first;          /* first large packet lost above large_acked */
    unsigned bh_lost;           /* large packets lost above large_acked */
    uint64_t bh_confirm_from;   /* 0, or: the signature was seen once; it must repeat among
                                 * packets from this one on (sent after the suspicion) */
    /* statistics */
    uint64_t probes_sent, probes_acked, probes_lost, blackholes;
};

/* Starts at base (BASE state), searching up to max once the path is confirmed.  max <= base
 * disables discovery.  raise_timer 0 means SST_PMTU_RAISE_TIMER. */
void sst_pmtu_init(struct sst_pmtu *p, uint16_t base, uint16_t max, sst_time_t raise_timer);
/* Runs the raise timer; call before asking for a probe. */
void sst_pmtu_tick(struct sst_pmtu *p, sst_time_t now);
/* Size of the probe to send now, or 0 (not searching, or a probe is in flight). */
uint16_t sst_pmtu_probe_size(const struct sst_pmtu *p);
/* The channel sent the probe asked for as packet seq. */
void sst_pmtu_on_probe_sent(struct sst_pmtu *p, uint64_t seq, uint16_t size);
/* Packet seq of `size` bytes was acknowledged; probe says it was a probe. */
void sst_pmtu_on_acked(struct sst_pmtu *p, uint64_t seq, uint16_t size, bool probe, sst_time_t now);
/* Packet seq of `size` bytes was declared lost.  next_seq is the next packet number the channel
 * will use.  Returns true if plpmtu shrank (a black hole): queued data must be re-segmented. */
bool sst_pmtu_on_lost(struct sst_pmtu *p, uint64_t seq, uint16_t size, bool probe,
                      uint64_t next_seq, sst_time_t now);
/* True if packets above BASE_PLPMTU are in use, so a PTO should include a small packet that can
 * show a black hole (RFC 8899 §4.3). */
static inline bool sst_pmtu_above_base(const struct sst_pmtu *p) { return p->plpmtu > p->base; }
const char *sst_pmtu_state_name(enum sst_pmtu_state s);

#endif
