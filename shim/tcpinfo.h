/* getsockopt(TCP_INFO) on a carried connection: kernel TCP's struct tcp_info filled from the
 * SST channel and stream that carry it (docs/shim.md §3 "getsockopt"), so that programs which
 * read RTT, congestion window or retransmissions (iperf3, nginx's $tcpinfo_rtt, health checks)
 * see the path's real numbers instead of zeros. */
#ifndef SHIM_TCPINFO_H
#define SHIM_TCPINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sst.h"
#include "channel.h"

struct shim_conn;

/* Kernel TCP's state numbers (include/net/tcp_states.h), as tcpi_state reports them. */
enum {
    SHIM_TCPS_ESTABLISHED = 1,
    SHIM_TCPS_SYN_SENT = 2,
    SHIM_TCPS_FIN_WAIT1 = 4,
    SHIM_TCPS_FIN_WAIT2 = 5,
    SHIM_TCPS_CLOSE = 7,
    SHIM_TCPS_CLOSE_WAIT = 8,
    SHIM_TCPS_LAST_ACK = 9,
};

/* What the answer is made of: the state, the carrying channel's numbers (have_chan), the
 * stream's.  Read on the event thread (in-process engine) or received from sstd (INFO). */
struct shim_tcpinfo_src {
    int state;                  /* SHIM_TCPS_* */
    bool have_chan;             /* chan and max_payload are valid */
    bool have_stream;           /* stream is valid */
    struct sst_chan_stats chan;
    size_t max_payload;         /* sst_chan_max_payload: the segment size */
    bool v6;                    /* the channel runs over IPv6 (the path MTU's header size) */
    struct sst_stream_stats stream;
};

/* The TCP state from the connection's and its pump's ends: app_done, the app shut its writing
 * (or closed); peer_done, the peer's end of stream arrived. */
int shim_tcpinfo_state(bool app_done, bool peer_done);

/* Writes the struct tcp_info made of src into val with getsockopt's truncation rule (at most
 * *len bytes, *len set to what was written).  0, or -1 with errno (EFAULT). */
int shim_tcpinfo_fill(const struct shim_tcpinfo_src *src, void *val, socklen_t *len);

/* Parses sstd's INFO answer (docs/helper.md "INFO") into src.  False if it is not one. */
bool shim_tcpinfo_parse(const char *json, struct shim_tcpinfo_src *src);

/* Event thread: src from the stream pump p carries and its channel. */
struct shim_spump;
void shim_tcpinfo_read_pump(struct shim_spump *p, struct shim_tcpinfo_src *src);

/* getsockopt(TCP_INFO) on a socket accepted from an SST stream (SST_LISTEN) that this process
 * bridges: *answered, and the answer (0 or -1); not answered (another process's bridge: a
 * pre-forking server's worker, an exec'd image; or no event thread), the caller asks the
 * kernel, which knows the loopback bridge. */
int shim_tcpinfo_get_accepted(int fd, void *val, socklen_t *len, bool *answered);

/* The getsockopt(TCP_INFO) answer for replaced connection c (app thread). */
int shim_tcpinfo_get(struct shim_conn *c, void *val, socklen_t *len);

#endif
