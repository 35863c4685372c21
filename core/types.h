/* Basic types shared by every libsst module: virtual time and endpoint addresses. */
#ifndef SST_TYPES_H
#define SST_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exported from libsst.so; everything else is hidden (-fvisibility=hidden). */
#define SST_API __attribute__((visibility("default")))
#define SST_MUST_CHECK __attribute__((warn_unused_result))

/* Time is injected: nanoseconds on a monotonic clock chosen by the driver
 * (the real clock under libevent, a virtual clock in the simulator). */
typedef uint64_t sst_time_t;
#define SST_TIME_NEVER UINT64_MAX
#define SST_NS(x) ((sst_time_t)(x))
#define SST_US(x) ((sst_time_t)(x) * 1000ull)
#define SST_MS(x) ((sst_time_t)(x) * 1000000ull)
#define SST_SEC(x) ((sst_time_t)(x) * 1000000000ull)

/* A UDP endpoint, IPv4 or IPv6, independent of the socket API so the engine
 * never includes socket headers.  ip holds 4 or 16 bytes, network order. */
enum sst_af { SST_AF_NONE = 0, SST_AF_INET4 = 4, SST_AF_INET6 = 6 };

struct sst_addr {
    uint8_t family;     /* enum sst_af */
    uint16_t port;      /* host byte order */
    uint32_t scope_id;  /* IPv6 link-local scope, else 0 */
    uint8_t ip[16];     /* IPv4 uses ip[0..3] */
};

/* Longest text form: "[" + IPv6 + "%" scope + "]:" + port. */
#define SST_ADDR_STRLEN 72

SST_API bool sst_addr_eq(const struct sst_addr *a, const struct sst_addr *b);
/* 64-bit hash of (family, ip, port) keyed by the caller's secret; used for hash tables and cookies. */
uint64_t sst_addr_hash(const struct sst_addr *a, uint64_t seed);
/* Formats "1.2.3.4:5" or "[::1]:5" into buf (SST_ADDR_STRLEN bytes); returns buf. */
SST_API char *sst_addr_str(const struct sst_addr *a, char *buf, size_t len);
/* Parses "1.2.3.4", "1.2.3.4:5", "::1", "[::1]:5"; port defaults to default_port.  0 or SST_ERR_INVAL. */
SST_API int sst_addr_parse(struct sst_addr *out, const char *text, uint16_t default_port);
/* Fills a canonical wire encoding (19 bytes: family, port, ip[16]) into out; returns bytes written. */
size_t sst_addr_encode(const struct sst_addr *a, uint8_t out[19]);

#define SST_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SST_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SST_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
