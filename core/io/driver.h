/* The libevent driver: runs one sst_host over one real UDP endpoint on an event_base.
 *
 * It is the glue ngtcp2's examples call "read -> write; timer -> expiry -> write": every readable
 * event reads the socket in recvmmsg batches and feeds each datagram to sst_host_recv with the
 * current monotonic time; afterwards (and after each timer expiry) it flushes the send batch the
 * engine filled through io.send, and re-arms a single timer at the engine's deadline.  When the
 * socket buffer is full it waits for EV_WRITE with the rest still queued.
 *
 * Threading: single-threaded.  Everything -- callbacks into the application, sst_host_* and
 * sst_chan_* calls -- must run on the thread that runs the event_base.  After the application
 * pokes the engine from outside a driver callback (sst_host_connect, sst_chan_wake,
 * sst_chan_ping, ...), it calls sst_driver_rearm() so the send batch goes out and the timer
 * matches the new deadline.  Inside a chan_event callback this is optional: the driver flushes and
 * re-arms when the callback returns to it. */
#ifndef SST_IO_DRIVER_H
#define SST_IO_DRIVER_H

#include "types.h"
#include "host.h"
#include "io/udp.h"

struct event_base;
struct sst_driver;

/* Creates the UDP endpoint on `bind` (port 0: any; :: is dual-stack) and the host.
 * cfg: the host configuration (identity required).  user: the application's callbacks -- ctx,
 * random, verify_peer, chan_event are used (NULL fields keep the engine defaults); user->send is
 * ignored (the driver owns sending).  user may be NULL.  udp_cfg may be NULL for defaults.
 * Returns NULL if the socket cannot be opened or bound (errno says why), or memory is short. */
SST_API struct sst_driver *sst_driver_new(struct event_base *base, const struct sst_host_config *cfg,
                                          const struct sst_addr *bind, const struct sst_host_io *user);
/* As sst_driver_new, with endpoint options (buffer sizes, queue bound, GSO/GRO switches). */
SST_API struct sst_driver *sst_driver_new_udp(struct event_base *base, const struct sst_host_config *cfg,
                                              const struct sst_addr *bind, const struct sst_host_io *user,
                                              const struct sst_udp_config *udp_cfg);
/* Runs the stream layer (core/sst.h) instead of a bare host: the driver creates an sst_ctx (which
 * owns its host) and feeds it datagrams and timeouts, so its deferred stream callbacks run after
 * each batch.  After API calls made outside a driver callback, call sst_driver_rearm(). */
struct sst_ctx_config;
struct sst_ctx;
SST_API struct sst_driver *sst_driver_new_ctx(struct event_base *base, const struct sst_ctx_config *cfg,
                                              const struct sst_addr *bind, const struct sst_host_io *user,
                                              const struct sst_udp_config *udp_cfg);
/* Frees the context or host (channels die without notice to the peer), the events and the socket. */
SST_API void sst_driver_free(struct sst_driver *d);

SST_API struct sst_host *sst_driver_host(struct sst_driver *d);
SST_API struct sst_udp *sst_driver_udp(struct sst_driver *d);
/* The stream-layer context (NULL for a driver made with sst_driver_new). */
SST_API struct sst_ctx *sst_driver_ctx(struct sst_driver *d);
/* Flushes the send batch and re-arms the timer at the engine's deadline. */
SST_API void sst_driver_rearm(struct sst_driver *d);
/* The bound address with its real port.  0 or SST_ERR_IO. */
SST_API int sst_driver_local_addr(const struct sst_driver *d, struct sst_addr *out);
/* The driver's notion of now (sst_clock_now()); pass it to sst_host_connect and friends. */
SST_API sst_time_t sst_driver_now(const struct sst_driver *d);

#endif
