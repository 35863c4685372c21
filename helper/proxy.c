/* PROXY protocol v2 headers for the gateway, so servers behind it see the real SST peer
 * (haproxy doc/proxy-protocol.txt §2.2: binary header, command PROXY, TCP over IPv4/IPv6). */
#include "sstd.h"

#include <string.h>

#include "wire.h"

static const uint8_t signature[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* The 16-byte IPv6 form of an address (IPv4 becomes ::ffff:a.b.c.d). */
static void as_v6(const struct sst_addr *a, uint8_t out[16])
{
    if (a->family == SST_AF_INET6) {
        memcpy(out, a->ip, 16);
        return;
    }
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, a->ip, 4);
}

size_t sstd_proxy_v2(uint8_t *out, size_t cap, const struct sst_addr *src, const struct sst_addr *dst)
{
    bool v4 = src->family == SST_AF_INET4 && dst->family == SST_AF_INET4;
    size_t alen = v4 ? 12 : 36;
    if ((src->family != SST_AF_INET4 && src->family != SST_AF_INET6) ||
        (dst->family != SST_AF_INET4 && dst->family != SST_AF_INET6) || cap < 16 + alen)
        return 0;
    memcpy(out, signature, sizeof signature);
    sst_put8(out + 12, 0x21);               /* version 2, command PROXY */
    sst_put8(out + 13, v4 ? 0x11 : 0x21);   /* AF_INET or AF_INET6, STREAM */
    sst_put16(out + 14, (uint16_t)alen);
    uint8_t *p = out + 16;
    if (v4) {
        memcpy(p, src->ip, 4);
        memcpy(p + 4, dst->ip, 4);
        p += 8;
    } else {
        as_v6(src, p);
        as_v6(dst, p + 16);
        p += 32;
    }
    sst_put16(p, src->port);
    sst_put16(p + 2, dst->port);
    return 16 + alen;
}
