/* Shim configuration: parses the SST_* environment into a struct and matches destinations
 * against SST_PEERS.  No hooks and no global state here, so unit tests link it directly. */
#ifndef SHIM_CONFIG_H
#define SHIM_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SHIM_DEFAULT_PORT 8661      /* the reference implementation's UDP port */
#define SHIM_MAX_PEERS 64           /* SST_PEERS entries (after hostname expansion) */
#define SHIM_MAX_LISTEN 32          /* ports in SST_LISTEN */
#define SHIM_HOST_MAX 256
#define SHIM_PATH_MAX 512
#define SHIM_LIVENESS_MAX 86400     /* SST_LIVENESS at most a day */
#define SHIM_REFUSAL_TTL_DEFAULT 60 /* SST_REFUSAL_CACHE: seconds a port refused over SST but
                                       served by TCP goes straight to kernel TCP (auto mode) */
#define SHIM_REFUSAL_TTL_MAX 3600

enum shim_mode { SHIM_MODE_AUTO = 0, SHIM_MODE_STRICT, SHIM_MODE_OFF };
enum shim_helper { SHIM_HELPER_AUTO = 0, SHIM_HELPER_OFF, SHIM_HELPER_PATH };
enum shim_security { SHIM_SEC_STRONG = 0, SHIM_SEC_LIGHT };
enum shim_loglevel { SHIM_LOG_ERROR = 0, SHIM_LOG_WARN, SHIM_LOG_INFO, SHIM_LOG_DEBUG };
/* SST_CC; DEFAULT leaves the engine's own default (sst_host_config_default) in place, so a
 * change of that default reaches shimmed programs without a new variable. */
enum shim_cc { SHIM_CC_DEFAULT = 0, SHIM_CC_CUBIC, SHIM_CC_NEWRENO, SHIM_CC_BBR };

enum shim_peer_kind {
    SHIM_PEER_ANY = 1,   /* "*": every non-loopback destination except port 53 */
    SHIM_PEER_NET,       /* address or CIDR, optional port */
    SHIM_PEER_HOST,      /* hostname, optional port; shim_config_resolve turns it into NETs */
};

struct shim_peer {
    uint8_t kind;        /* enum shim_peer_kind */
    uint8_t family;      /* AF_INET or AF_INET6 for SHIM_PEER_NET */
    uint8_t prefix;      /* prefix length in bits */
    uint16_t port;       /* host order; 0 = any port */
    uint8_t ip[16];      /* network order; IPv4 uses ip[0..3] */
    char host[SHIM_HOST_MAX];
};

struct shim_config {
    bool peers_set;                  /* SST_PEERS set and non-empty: the shim may act */
    enum shim_mode mode;
    uint16_t port;                   /* SST_PORT */
    enum shim_helper helper;
    bool helper_autostart;           /* SST_HELPER=auto given explicitly: start sstd if absent */
    char helper_path[SHIM_PATH_MAX];
    bool listen_all;                 /* SST_LISTEN=1 */
    size_t n_listen;
    uint16_t listen[SHIM_MAX_LISTEN];
    enum shim_security security;
    enum shim_cc cc;                 /* SST_CC */
    bool liveness_set;               /* SST_LIVENESS given */
    unsigned liveness;               /* SST_LIVENESS seconds: 0 = no probe (docs/shim.md §9) */
    unsigned refusal_ttl;            /* SST_REFUSAL_CACHE seconds: 0 = no refusal cache (§6d) */
    bool keeper;                     /* SST_KEEPER: a keeper process carries connections still
                                      * open elsewhere when this image ends (§5) */
    char keydir[SHIM_PATH_MAX];      /* "" = default */
    enum shim_loglevel log;
    char log_file[SHIM_PATH_MAX];    /* "" = stderr */
    char peers_text[SHIM_PATH_MAX];  /* SST_PEERS as given, for the banner */
    size_t n_peers;
    struct shim_peer peers[SHIM_MAX_PEERS];
    /* The IPv4 entries of peers[] as masked words, built by parse and resolve: when v4_exact
     * (the shim may act and every entry is an address or prefix, no "*" and no unresolved
     * name) an IPv4 destination is matched against these alone -- shim_config_match runs in
     * every connect(), so for every connection the shim does not carry. */
    bool v4_exact;
    /* The bits every IPv4 entry fixes to the same value: an address that differs there
     * matches none (most destinations of most connects), tested before the entries. */
    uint32_t v4_qmask, v4_qnet;
    size_t n_v4;
    struct shim_match4 {
        uint32_t net, mask;   /* network order */
        uint16_t port;        /* network order; 0 = any port */
    } v4[SHIM_MAX_PEERS];
};

/* Looks up one variable; NULL when unset.  getenv-compatible so the shim passes a wrapper of
 * getenv and tests pass a table. */
typedef const char *(*shim_getenv_fn)(void *ctx, const char *name);

/* Fills *cfg from the environment.  Returns 0, or -1 with a one-line message naming the
 * variable and the bad value in err (the shim then stays inert rather than guessing). */
int shim_config_parse(struct shim_config *cfg, shim_getenv_fn get, void *ctx, char *err, size_t errlen);

/* Resolves one hostname into up to max addresses (family + 16 bytes); returns the count or -1. */
typedef int (*shim_resolve_fn)(void *ctx, const char *host, uint8_t *families, uint8_t (*ips)[16], int max);

/* Whether SST_PEERS names a host (an entry shim_config_resolve must turn into addresses). */
bool shim_config_has_names(const struct shim_config *cfg);
/* Replaces every SHIM_PEER_HOST entry by one NET entry per address (full-length prefix, same
 * port).  Unresolvable names are dropped and reported in err; returns the number dropped. */
int shim_config_resolve(struct shim_config *cfg, shim_resolve_fn resolve, void *ctx, char *err, size_t errlen);

/* True when a connect() to sa should be carried over SST.  IPv4-mapped IPv6 addresses match
 * IPv4 rules.  The general per-entry walk; shim_config_match is the entry point. */
bool shim_config_match_slow(const struct shim_config *cfg, const struct sockaddr *sa, socklen_t len);

/* An IPv4 destination when cfg->v4_exact: a few masked word compares, inline (connect()
 * runs it for every connection the shim does not carry). */
/* False when no entry can match: the bits every entry fixes differ (connect() tests this
 * alone inline and leaves the entries to its out-of-line path). */
static inline bool shim_config_v4_maybe(const struct shim_config *cfg, const struct sockaddr_in *s4)
{
    return (s4->sin_addr.s_addr & cfg->v4_qmask) == cfg->v4_qnet;
}

static inline bool shim_config_match4(const struct shim_config *cfg, const struct sockaddr_in *s4)
{
    uint32_t a = s4->sin_addr.s_addr;
    if (!shim_config_v4_maybe(cfg, s4))
        return false;
    for (size_t i = 0; i < cfg->n_v4; i++) {
        const struct shim_match4 *m = &cfg->v4[i];
        if ((a & m->mask) == m->net && (m->port == 0 || m->port == s4->sin_port))
            return true;
    }
    return false;
}

/* Can sa be matched by shim_config_match4? */
static inline bool shim_config_v4_fast(const struct shim_config *cfg, const struct sockaddr *sa,
                                       socklen_t len)
{
    return __atomic_load_n(&cfg->v4_exact, __ATOMIC_ACQUIRE) && sa && sa->sa_family == AF_INET &&
           len >= (socklen_t)sizeof(struct sockaddr_in);
}

static inline bool shim_config_match(const struct shim_config *cfg, const struct sockaddr *sa,
                                     socklen_t len)
{
    if (!shim_config_v4_fast(cfg, sa, len))
        return shim_config_match_slow(cfg, sa, len);
    return shim_config_match4(cfg, (const struct sockaddr_in *)sa);
}

/* Writes a one-line summary of the settings that differ from the defaults. */
void shim_config_banner(const struct shim_config *cfg, char *out, size_t len);

const char *shim_mode_name(enum shim_mode m);
/* "cubic", "newreno", "bbr", or "default". */
const char *shim_cc_name(enum shim_cc cc);

#endif
