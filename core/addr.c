/* sst_addr helpers: comparison, hashing, text form, canonical encoding.  No socket calls: parsing
 * uses inet_pton, which is pure text conversion. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "types.h"
#include "wire.h"

static size_t ip_len(const struct sst_addr *a) { return a->family == SST_AF_INET6 ? 16 : 4; }

SST_API bool sst_addr_eq(const struct sst_addr *a, const struct sst_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, ip_len(a)) == 0 &&
           (a->family != SST_AF_INET6 || a->scope_id == b->scope_id);
}

size_t sst_addr_encode(const struct sst_addr *a, uint8_t out[19])
{
    memset(out, 0, 19);
    out[0] = a->family;
    sst_put16(out + 1, a->port);
    memcpy(out + 3, a->ip, ip_len(a));
    return 19;
}

/* FNV-1a over the canonical encoding, mixed with the seed: only for hash tables (cookies use a
 * keyed MAC in negotiate.c). */
uint64_t sst_addr_hash(const struct sst_addr *a, uint64_t seed)
{
    uint8_t enc[19];
    sst_addr_encode(a, enc);
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < sizeof enc; i++) {
        h ^= enc[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

SST_API char *sst_addr_str(const struct sst_addr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->family == SST_AF_INET4) {
        inet_ntop(AF_INET, a->ip, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, a->port);
    } else if (a->family == SST_AF_INET6 && a->scope_id != 0) {
        /* A link-local address names a host only with its interface: the numeric zone, which
         * sst_addr_parse reads back. */
        inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
        snprintf(buf, len, "[%s%%%u]:%u", ip, (unsigned)a->scope_id, a->port);
    } else if (a->family == SST_AF_INET6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%u", ip, a->port);
    } else {
        snprintf(buf, len, "(none)");
    }
    return buf;
}

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 65535)
        return SST_ERR_INVAL;
    *port = (uint16_t)v;
    return 0;
}

SST_API int sst_addr_parse(struct sst_addr *out, const char *text, uint16_t default_port)
{
    char buf[SST_ADDR_STRLEN];
    memset(out, 0, sizeof *out);
    out->port = default_port;
    if (strlen(text) >= sizeof buf)
        return SST_ERR_INVAL;
    strcpy(buf, text);
    char *host = buf;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close)
            return SST_ERR_INVAL;
        *close = '\0';
        host = buf + 1;
        if (close[1] == ':') {
            if (parse_port(close + 2, &out->port))
                return SST_ERR_INVAL;
        } else if (close[1] != '\0') {
            return SST_ERR_INVAL;
        }
    } else {
        char *colon = strchr(buf, ':');
        if (colon && strchr(colon + 1, ':') == NULL) {  /* exactly one colon: IPv4:port */
            *colon = '\0';
            if (parse_port(colon + 1, &out->port))
                return SST_ERR_INVAL;
        }
    }
    /* An IPv6 zone: "fe80::1%3" (numeric only -- an interface name needs a system call,
     * which this sans-I/O file does not make; callers such as the shim pass the index). */
    uint32_t scope = 0;
    char *pct = strchr(host, '%');
    if (pct) {
        char *end;
        *pct = '\0';
        if (pct[1] < '0' || pct[1] > '9')
            return SST_ERR_INVAL;
        unsigned long v = strtoul(pct + 1, &end, 10);
        if (*end != '\0' || v == 0 || v > UINT32_MAX || inet_pton(AF_INET6, host, out->ip) != 1)
            return SST_ERR_INVAL;
        scope = (uint32_t)v;
    }
    if (!pct && inet_pton(AF_INET, host, out->ip) == 1) {
        out->family = SST_AF_INET4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, out->ip) == 1) {
        out->scope_id = scope;
        out->family = SST_AF_INET6;
        /* "::ffff:a.b.c.d" is the IPv4 host, as sst_addr_from_sockaddr folds it: sstd gets
         * such names from dual-stack sockets (Java's), and an IPv6 packet to a mapped
         * address reaches nobody. */
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (!pct && memcmp(out->ip, mapped, sizeof mapped) == 0) {
            memmove(out->ip, out->ip + 12, 4);
            memset(out->ip + 4, 0, 12);
            out->family = SST_AF_INET4;
        }
        return 0;
    }
    return SST_ERR_INVAL;
}
