/* Explicit big-endian get/put helpers.  We never cast packed structs onto the wire. */
#ifndef SST_WIRE_H
#define SST_WIRE_H

#include <stdint.h>

static inline void sst_put8(uint8_t *p, uint8_t v) { p[0] = v; }
static inline void sst_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void sst_put24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16); p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)v;
}
static inline void sst_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void sst_put64(uint8_t *p, uint64_t v)
{
    sst_put32(p, (uint32_t)(v >> 32)); sst_put32(p + 4, (uint32_t)v);
}
static inline uint8_t sst_get8(const uint8_t *p) { return p[0]; }
static inline uint16_t sst_get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t sst_get24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}
static inline uint32_t sst_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t sst_get64(const uint8_t *p)
{
    return ((uint64_t)sst_get32(p) << 32) | sst_get32(p + 4);
}

#endif
