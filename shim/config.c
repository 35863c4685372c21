/* Parses the SST_* environment variables and matches destinations against SST_PEERS. */
#include "config.h"
#include "log.h"
#include "io/logline.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void compile_v4(struct shim_config *cfg);

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sst_log_one_line(err, errlen, msg);
    return -1;
}

/* Strict decimal: digits only, 1..max; no sign, no spaces, no trailing text. */
static bool parse_uint(const char *s, size_t n, unsigned long min, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n >= SHIM_HOST_MAX || h[0] == '-' || h[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return false;
    }
    return true;
}

/* Parses "addr" or "addr/len" (no port) into p; family from the text. */
static bool parse_net(const char *text, struct shim_peer *p)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t n = strlen(text);
    if (n >= sizeof(buf))
        return false;
    memcpy(buf, text, n + 1);
    char *slash = strchr(buf, '/');
    unsigned long prefix = 0;
    bool has_prefix = false;
    if (slash) {
        *slash = '\0';
        if (!parse_uint(slash + 1, strlen(slash + 1), 0, 128, &prefix))
            return false;
        has_prefix = true;
    }
    memset(p->ip, 0, sizeof(p->ip));
    if (inet_pton(AF_INET, buf, p->ip) == 1) {
        if (prefix > 32)
            return false;
        p->family = AF_INET;
        p->prefix = (uint8_t)(has_prefix ? prefix : 32);
    } else if (inet_pton(AF_INET6, buf, p->ip) == 1) {
        p->family = AF_INET6;
        p->prefix = (uint8_t)(has_prefix ? prefix : 128);
    } else {
        return false;
    }
    p->kind = SHIM_PEER_NET;
    return true;
}

/* One SST_PEERS entry: "*", "a.b.c.d[/n][:port]", "[v6[/n]][:port]", "v6[/n]", "host[:port]". */
static int parse_peer(const char *e, struct shim_peer *p, char *err, size_t errlen)
{
    char tmp[SHIM_HOST_MAX + 16];
    size_t n = strlen(e);
    unsigned long port = 0;

    memset(p, 0, sizeof(*p));
    if (strcmp(e, "*") == 0) {
        p->kind = SHIM_PEER_ANY;
        return 0;
    }
    if (n >= sizeof(tmp))
        return fail(err, errlen, "SST_PEERS: entry '%.40s...' is too long", e);
    memcpy(tmp, e, n + 1);

    if (tmp[0] == '[') {
        char *close = strchr(tmp, ']');
        if (!close)
            return fail(err, errlen, "SST_PEERS: '%s' lacks the closing ']'", e);
        *close = '\0';
        if (close[1] == ':') {
            if (!parse_uint(close + 2, strlen(close + 2), 1, 65535, &port))
                return fail(err, errlen, "SST_PEERS: bad port in '%s' (1-65535)", e);
        } else if (close[1] != '\0') {
            return fail(err, errlen, "SST_PEERS: unexpected text after ']' in '%s'", e);
        }
        if (!parse_net(tmp + 1, p) || p->family != AF_INET6)
            return fail(err, errlen, "SST_PEERS: '%s' is not an IPv6 address or CIDR", e);
        p->port = (uint16_t)port;
        return 0;
    }

    /* Two or more colons without brackets: a bare IPv6 address or CIDR, no port. */
    char *c1 = strchr(tmp, ':');
    if (c1 && strchr(c1 + 1, ':')) {
        if (!parse_net(tmp, p))
            return fail(err, errlen, "SST_PEERS: '%s' is not an IPv6 address or CIDR "
                        "(write [addr]:port for a port)", e);
        return 0;
    }
    if (c1) {
        *c1 = '\0';
        if (!parse_uint(c1 + 1, strlen(c1 + 1), 1, 65535, &port))
            return fail(err, errlen, "SST_PEERS: bad port in '%s' (1-65535)", e);
    }
    p->port = (uint16_t)port;
    if (parse_net(tmp, p))
        return 0;
    /* Anything that looks numeric but did not parse is a typo, not a hostname. */
    bool numeric = true;
    for (const char *q = tmp; *q; q++)
        if (!isdigit((unsigned char)*q) && *q != '.' && *q != '/')
            numeric = false;
    if (numeric || strchr(tmp, '/'))
        return fail(err, errlen, "SST_PEERS: '%s' is not a valid address or CIDR", e);
    if (!valid_hostname(tmp))
        return fail(err, errlen, "SST_PEERS: '%s' is not a valid hostname", e);
    p->kind = SHIM_PEER_HOST;
    memcpy(p->host, tmp, strlen(tmp) + 1);
    return 0;
}

static int parse_peers(struct shim_config *cfg, const char *v, char *err, size_t errlen)
{
    const char *s = v;
    snprintf(cfg->peers_text, sizeof(cfg->peers_text), "%s", v);
    for (;;) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        while (n > 0 && isspace((unsigned char)*s)) {
            s++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)s[n - 1]))
            n--;
        if (n == 0)
            return fail(err, errlen, "SST_PEERS: empty entry in '%s'", v);
        if (cfg->n_peers == SHIM_MAX_PEERS)
            return fail(err, errlen, "SST_PEERS: more than %d entries", SHIM_MAX_PEERS);
        char one[SHIM_HOST_MAX + 16];
        if (n >= sizeof(one))
            return fail(err, errlen, "SST_PEERS: entry '%.40s...' is too long", s);
        memcpy(one, s, n);
        one[n] = '\0';
        if (parse_peer(one, &cfg->peers[cfg->n_peers], err, errlen) < 0)
            return -1;
        cfg->n_peers++;
        if (!end)
            return 0;
        s = end + 1;
    }
}

static int parse_listen(struct shim_config *cfg, const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "1") == 0) {
        cfg->listen_all = true;
        return 0;
    }
    if (strcmp(v, "0") == 0 || v[0] == '\0')
        return 0;
    const char *s = v;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        unsigned long port;
        if (!parse_uint(s, n, 1, 65535, &port))
            return fail(err, errlen, "SST_LISTEN: '%s' is not 1, 0 or a comma list of ports", v);
        if (cfg->n_listen == SHIM_MAX_LISTEN)
            return fail(err, errlen, "SST_LISTEN: more than %d ports", SHIM_MAX_LISTEN);
        cfg->listen[cfg->n_listen++] = (uint16_t)port;
        if (!end)
            return 0;
        s = end + 1;
    }
}

static int copy_path(char *dst, const char *name, const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (n == 0 || n >= SHIM_PATH_MAX)
        return fail(err, errlen, "%s: path is empty or too long", name);
    memcpy(dst, v, n + 1);
    return 0;
}

int shim_config_parse(struct shim_config *cfg, shim_getenv_fn get, void *ctx, char *err, size_t errlen)
{
    const char *v;
    unsigned long num;

    memset(cfg, 0, sizeof(*cfg));
    cfg->port = SHIM_DEFAULT_PORT;
    cfg->log = SHIM_LOG_WARN;
    cfg->refusal_ttl = SHIM_REFUSAL_TTL_DEFAULT;
    cfg->keeper = true;
    err[0] = '\0';

    /* Logging first so a later error can go to the requested file. */
    if ((v = get(ctx, "SST_LOG_FILE")) && copy_path(cfg->log_file, "SST_LOG_FILE", v, err, errlen) < 0)
        return -1;
    if ((v = get(ctx, "SST_LOG"))) {
        static const char *const names[] = { "error", "warn", "info", "debug" };
        size_t i;
        for (i = 0; i < 4 && strcmp(v, names[i]) != 0; i++)
            ;
        if (i == 4)
            return fail(err, errlen, "SST_LOG: '%s' is not one of error|warn|info|debug", v);
        cfg->log = (enum shim_loglevel)i;
    }
    if ((v = get(ctx, "SST_MODE"))) {
        if (strcmp(v, "auto") == 0)
            cfg->mode = SHIM_MODE_AUTO;
        else if (strcmp(v, "strict") == 0)
            cfg->mode = SHIM_MODE_STRICT;
        else if (strcmp(v, "off") == 0)
            cfg->mode = SHIM_MODE_OFF;
        else
            return fail(err, errlen, "SST_MODE: '%s' is not one of auto|strict|off", v);
    }
    if ((v = get(ctx, "SST_PORT"))) {
        if (!parse_uint(v, strlen(v), 1, 65535, &num))
            return fail(err, errlen, "SST_PORT: '%s' is not a port number (1-65535)", v);
        cfg->port = (uint16_t)num;
    }
    if ((v = get(ctx, "SST_HELPER"))) {
        if (strcmp(v, "auto") == 0) {
            cfg->helper = SHIM_HELPER_AUTO;
            cfg->helper_autostart = true;
        } else if (strcmp(v, "off") == 0) {
            cfg->helper = SHIM_HELPER_OFF;
        } else if (v[0] == '/') {
            cfg->helper = SHIM_HELPER_PATH;
            if (copy_path(cfg->helper_path, "SST_HELPER", v, err, errlen) < 0)
                return -1;
        } else {
            return fail(err, errlen, "SST_HELPER: '%s' is not off, auto or an absolute socket path", v);
        }
    }
    if ((v = get(ctx, "SST_LISTEN")) && parse_listen(cfg, v, err, errlen) < 0)
        return -1;
    if ((v = get(ctx, "SST_SECURITY"))) {
        if (strcmp(v, "strong") == 0)
            cfg->security = SHIM_SEC_STRONG;
        else if (strcmp(v, "light") == 0)
            cfg->security = SHIM_SEC_LIGHT;
        else
            return fail(err, errlen, "SST_SECURITY: '%s' is not strong or light", v);
    }
    if ((v = get(ctx, "SST_CC"))) {
        if (strcmp(v, "cubic") == 0)
            cfg->cc = SHIM_CC_CUBIC;
        else if (strcmp(v, "newreno") == 0)
            cfg->cc = SHIM_CC_NEWRENO;
        else if (strcmp(v, "bbr") == 0)
            cfg->cc = SHIM_CC_BBR;
        else
            return fail(err, errlen, "SST_CC: '%s' is not one of cubic|newreno|bbr", v);
    }
    if ((v = get(ctx, "SST_LIVENESS"))) {
        if (!parse_uint(v, strlen(v), 0, SHIM_LIVENESS_MAX, &num))
            return fail(err, errlen, "SST_LIVENESS: '%s' is not a number of seconds (0-%u)", v,
                        (unsigned)SHIM_LIVENESS_MAX);
        cfg->liveness_set = true;
        cfg->liveness = (unsigned)num;
    }
    if ((v = get(ctx, "SST_REFUSAL_CACHE"))) {
        if (!parse_uint(v, strlen(v), 0, SHIM_REFUSAL_TTL_MAX, &num))
            return fail(err, errlen, "SST_REFUSAL_CACHE: '%s' is not a number of seconds (0-%u)", v,
                        (unsigned)SHIM_REFUSAL_TTL_MAX);
        cfg->refusal_ttl = (unsigned)num;
    }
    if ((v = get(ctx, "SST_KEEPER"))) {
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            return fail(err, errlen, "SST_KEEPER: '%s' is not 1 or 0", v);
        cfg->keeper = v[0] == '1';
    }
    if ((v = get(ctx, "SST_KEYDIR")) && copy_path(cfg->keydir, "SST_KEYDIR", v, err, errlen) < 0)
        return -1;
    /* An empty SST_PEERS is the same as unset: nothing is selected. */
    if ((v = get(ctx, "SST_PEERS")) && v[0] != '\0') {
        if (parse_peers(cfg, v, err, errlen) < 0)
            return -1;
        cfg->peers_set = true;
    }
    compile_v4(cfg);
    return 0;
}

/* Rebuilds cfg->v4 and cfg->v4_exact from peers[] (see config.h). */
static void compile_v4(struct shim_config *cfg)
{
    /* Off while the words change: a connect() of another thread (the names are resolved
     * lazily, shim_peers_resolve) takes the general path meanwhile; on again last, with
     * release order, so that a reader that sees it on sees the words. */
    __atomic_store_n(&cfg->v4_exact, false, __ATOMIC_RELEASE);
    bool exact = cfg->peers_set && cfg->mode != SHIM_MODE_OFF;
    cfg->n_v4 = 0;
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const struct shim_peer *p = &cfg->peers[i];
        if (p->kind != SHIM_PEER_NET) {
            exact = false;
            continue;
        }
        if (p->family != AF_INET)
            continue;
        struct shim_match4 *m = &cfg->v4[cfg->n_v4++];
        memcpy(&m->net, p->ip, sizeof(m->net));
        m->mask = p->prefix == 0 ? 0 : htonl(0xffffffffu << (32 - p->prefix));
        m->net &= m->mask;
        m->port = htons(p->port);
    }
    /* Quick reject: the prefix bits all entries share, with the value they share there.  No
     * entry: a value no masked address can have. */
    cfg->v4_qmask = 0;
    cfg->v4_qnet = 1;
    if (cfg->n_v4 > 0) {
        uint32_t q = 0xffffffffu;
        for (size_t i = 0; i < cfg->n_v4; i++)
            q &= cfg->v4[i].mask & ~(cfg->v4[i].net ^ cfg->v4[0].net);
        cfg->v4_qmask = q;
        cfg->v4_qnet = cfg->v4[0].net & q;
    }
    __atomic_store_n(&cfg->v4_exact, exact, __ATOMIC_RELEASE);
}

bool shim_config_has_names(const struct shim_config *cfg)
{
    for (size_t i = 0; i < cfg->n_peers; i++)
        if (cfg->peers[i].kind == SHIM_PEER_HOST)
            return true;
    return false;
}

int shim_config_resolve(struct shim_config *cfg, shim_resolve_fn resolve, void *ctx, char *err, size_t errlen)
{
    struct shim_peer out[SHIM_MAX_PEERS];
    size_t n = 0;
    int dropped = 0;

    err[0] = '\0';
    for (size_t i = 0; i < cfg->n_peers; i++) {
        struct shim_peer *p = &cfg->peers[i];
        if (p->kind != SHIM_PEER_HOST) {
            if (n < SHIM_MAX_PEERS)
                out[n++] = *p;
            continue;
        }
        uint8_t fam[8];
        uint8_t ips[8][16];
        int got = resolve(ctx, p->host, fam, ips, 8);
        if (got <= 0) {
            snprintf(err, errlen, "SST_PEERS: cannot resolve '%s'; entry ignored", p->host);
            dropped++;
            continue;
        }
        for (int k = 0; k < got && n < SHIM_MAX_PEERS; k++) {
            struct shim_peer q = { .kind = SHIM_PEER_NET, .family = fam[k], .port = p->port };
            q.prefix = fam[k] == AF_INET ? 32 : 128;
            memcpy(q.ip, ips[k], 16);
            snprintf(q.host, sizeof(q.host), "%s", p->host);
            out[n++] = q;
        }
    }
    memcpy(cfg->peers, out, n * sizeof(out[0]));
    cfg->n_peers = n;
    compile_v4(cfg);
    return dropped;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    /* A byte loop, not memcmp: a call into libc costs more than comparing a few bytes. */
    for (unsigned i = 0; i < full; i++)
        if (a[i] != b[i])
            return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

static bool is_loopback(int family, const uint8_t *ip)
{
    return family == AF_INET ? ip[0] == 127 : IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)ip);
}

bool shim_config_match_slow(const struct shim_config *cfg, const struct sockaddr *sa, socklen_t len)
{
    /* Runs in connect() for IPv6 destinations and when SST_PEERS has "*" or names: the
     * address is read in place, nothing is copied. */
    const uint8_t *ip;
    int family;
    uint16_t port;

    if (!cfg->peers_set || cfg->mode == SHIM_MODE_OFF || !sa)
        return false;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        family = AF_INET;
        ip = (const uint8_t *)&s4->sin_addr;
        port = ntohs(s4->sin_port);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            family = AF_INET;
            ip = &s6->sin6_addr.s6_addr[12];
        } else {
            family = AF_INET6;
            ip = s6->sin6_addr.s6_addr;
        }
    } else {
        return false;
    }

    for (size_t i = 0; i < cfg->n_peers; i++) {
        const struct shim_peer *p = &cfg->peers[i];
        if (p->kind == SHIM_PEER_ANY) {
            /* "*" leaves loopback and DNS-over-TCP alone: capturing them surprises more than
             * it helps. */
            if (port != 53 && !is_loopback(family, ip))
                return true;
            continue;
        }
        if (p->kind != SHIM_PEER_NET || p->family != family)
            continue;
        if (p->port != 0 && p->port != port)
            continue;
        if (prefix_match(ip, p->ip, p->prefix))
            return true;
    }
    return false;
}

const char *shim_mode_name(enum shim_mode m)
{
    return m == SHIM_MODE_STRICT ? "strict" : m == SHIM_MODE_OFF ? "off" : "auto";
}

const char *shim_cc_name(enum shim_cc cc)
{
    return cc == SHIM_CC_CUBIC     ? "cubic"
           : cc == SHIM_CC_NEWRENO ? "newreno"
           : cc == SHIM_CC_BBR     ? "bbr"
                                   : "default";
}

void shim_config_banner(const struct shim_config *cfg, char *out, size_t len)
{
    static const char *const sec[] = { "strong", "light" };
    static const char *const lvl[] = { "error", "warn", "info", "debug" };
    char text[4 * SHIM_PATH_MAX + 256];
    size_t off = 0;
#define ADD(...)                                                                   \
    do {                                                                           \
        if (off < sizeof(text))                                                    \
            off += (size_t)snprintf(text + off, sizeof(text) - off, __VA_ARGS__);  \
    } while (0)
    text[0] = '\0';
    ADD("SST_PEERS=%s", cfg->peers_text);
    if (cfg->mode != SHIM_MODE_AUTO)
        ADD(" SST_MODE=%s", shim_mode_name(cfg->mode));
    if (cfg->port != SHIM_DEFAULT_PORT)
        ADD(" SST_PORT=%u", (unsigned)cfg->port);
    if (cfg->helper == SHIM_HELPER_OFF)
        ADD(" SST_HELPER=off");
    else if (cfg->helper == SHIM_HELPER_PATH)
        ADD(" SST_HELPER=%s", cfg->helper_path);
    if (cfg->listen_all)
        ADD(" SST_LISTEN=1");
    for (size_t i = 0; i < cfg->n_listen; i++)
        ADD("%s%u", i == 0 ? " SST_LISTEN=" : ",", (unsigned)cfg->listen[i]);
    if (cfg->security != SHIM_SEC_STRONG)
        ADD(" SST_SECURITY=%s", sec[cfg->security]);
    if (cfg->cc != SHIM_CC_DEFAULT)
        ADD(" SST_CC=%s", shim_cc_name(cfg->cc));
    if (cfg->liveness_set)
        ADD(" SST_LIVENESS=%u", cfg->liveness);
    if (!cfg->keeper)
        ADD(" SST_KEEPER=0");
    if (cfg->refusal_ttl != SHIM_REFUSAL_TTL_DEFAULT)
        ADD(" SST_REFUSAL_CACHE=%u", cfg->refusal_ttl);
    if (cfg->keydir[0])
        ADD(" SST_KEYDIR=%s", cfg->keydir);
    if (cfg->log != SHIM_LOG_WARN)
        ADD(" SST_LOG=%s", lvl[cfg->log]);
    if (cfg->log_file[0])
        ADD(" SST_LOG_FILE=%s", cfg->log_file);
#undef ADD
    sst_log_one_line(out, len, text);   /* paths and SST_PEERS as given: any bytes */
}
