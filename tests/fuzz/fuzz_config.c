/* Fuzz target: the shim's configuration (shim_config_parse, shim/config.c) from environment
 * values of any bytes -- SST_PEERS, SST_PORT, SST_LISTEN and the rest, as the app's environment
 * hands them to the shim inside every process it is preloaded into.  Each input is a script of
 * records (fuzz.h):
 *   op < 0xf0:  sets the variable names[op % 12] to the record's bytes (up to a NUL: an
 *               environment value cannot hold one); the last setting of a name counts;
 *   op >= 0xf0: a destination to match once the configuration is read: IPv6 (16 address bytes,
 *               2 port bytes) if the record has 18 bytes or more, else IPv4 (4 + 2, zeros for
 *               what is missing).
 * Then the configuration is parsed; if it names hosts they are resolved by a deterministic
 * stand-in for getaddrinfo (0 to 3 addresses from the name's bytes).
 * Checked: a parse succeeds with err empty, or fails with err holding one printable line (the
 * shim logs it as one line: a value's newline or escape bytes must not forge others); the
 * banner is one line; connect()'s inline matcher (shim_config_match: the compiled IPv4 table)
 * and the general per-entry walk (shim_config_match_slow) agree on every destination. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../../shim/config.h"
#include "fuzz.h"

#define CONFIG_VARS 13
#define CONFIG_PROBES 16

static const char *const config_names[CONFIG_VARS] = {
    "SST_PEERS", "SST_PORT", "SST_LISTEN", "SST_MODE", "SST_HELPER", "SST_LOG", "SST_LOG_FILE",
    "SST_SECURITY", "SST_CC", "SST_LIVENESS", "SST_REFUSAL_CACHE", "SST_KEYDIR", "SST_KEEPER",
};

struct config_env {
    char *val[CONFIG_VARS];
};

/* What the seeds reach, over all runs (test_shim_fuzz checks the seeds reach it). */
static unsigned long config_ok, config_failed, config_matched, config_resolved;

static const char *config_get(void *ctx, const char *name)
{
    struct config_env *env = ctx;
    for (int i = 0; i < CONFIG_VARS; i++)
        if (strcmp(name, config_names[i]) == 0)
            return env->val[i];
    abort();   /* the parser asked for a name the target does not know: extend config_names */
}

/* getaddrinfo's stand-in: 0..3 addresses made from the name, so the same input resolves the
 * same way every run. */
static int config_resolve(void *ctx, const char *host, uint8_t *families, uint8_t (*ips)[16], int max)
{
    (void)ctx;
    uint32_t h = 2166136261u;
    for (const char *p = host; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    int n = (int)(h % 4) < max ? (int)(h % 4) : max;
    for (int i = 0; i < n; i++) {
        memset(ips[i], 0, 16);
        families[i] = (h >> (8 + i)) & 1 ? AF_INET6 : AF_INET;
        ips[i][0] = 10;
        ips[i][1] = (uint8_t)(h >> 16);
        ips[i][2] = (uint8_t)i;
        ips[i][3] = (uint8_t)(h >> 24);
        if (families[i] == AF_INET6)
            ips[i][0] = 0xfd;
    }
    return n;
}

/* One printable line: no control bytes (newline, CR, escape...), not empty. */
static void config_check_line(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

static void config_match(const struct shim_config *cfg, const struct sockaddr_storage *ss)
{
    socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    const struct sockaddr *sa = (const struct sockaddr *)ss;
    bool fast = shim_config_match(cfg, sa, len), slow = shim_config_match_slow(cfg, sa, len);
    if (fast != slow)
        abort();
    config_matched += fast;
}

static void config_probe(struct sockaddr_storage *ss, const uint8_t *d, size_t n)
{
    memset(ss, 0, sizeof *ss);
    uint8_t b[18] = { 0 };
    memcpy(b, d, n < sizeof b ? n : sizeof b);
    if (n >= 18) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, b, 16);
        memcpy(&s6->sin6_port, b + 16, 2);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, b, 4);
        memcpy(&s4->sin_port, b + 4, 2);
    }
}

int fuzz_config_one(const uint8_t *in, size_t size)
{
    static struct config_env env;
    static struct sockaddr_storage probes[CONFIG_PROBES + 3];
    static struct shim_config cfg;
    char err[256], banner[512];
    unsigned nprobes = 0;
    size_t pos = 0;
    struct fuzz_rec r;
    memset(&env, 0, sizeof env);
    while (fuzz_next(in, size, &pos, &r)) {
        if (r.op >= 0xf0) {
            if (nprobes < CONFIG_PROBES)
                config_probe(&probes[nprobes++], r.data, r.len);
            continue;
        }
        unsigned i = r.op % CONFIG_VARS;
        free(env.val[i]);
        env.val[i] = strndup((const char *)r.data, r.len);
        if (!env.val[i])
            abort();
    }
    /* Destinations every configuration is asked about: a peer, loopback, mapped IPv4, ::1. */
    static const uint8_t fixed[3][18] = {
        { 10, 0, 0, 2, 0x14, 0x51 },
        { 127, 0, 0, 1, 0, 80 },
        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2, 0x14, 0x51 },
    };
    for (int i = 0; i < 3; i++)
        config_probe(&probes[nprobes++], fixed[i], i == 2 ? 18 : 6);
    memset(err, 0x55, sizeof err);
    if (shim_config_parse(&cfg, config_get, &env, err, sizeof err) < 0) {
        if (err[0] == '\0')
            abort();
        config_check_line(err, sizeof err);
        config_failed++;
    } else {
        if (err[0] != '\0')
            abort();
        config_ok++;
        shim_config_banner(&cfg, banner, sizeof banner);
        config_check_line(banner, sizeof banner);
        for (unsigned i = 0; i < nprobes; i++)
            config_match(&cfg, &probes[i]);
        if (shim_config_has_names(&cfg)) {
            int dropped = shim_config_resolve(&cfg, config_resolve, NULL, err, sizeof err);
            if (dropped < 0 || (dropped > 0) != (err[0] != '\0') || shim_config_has_names(&cfg))
                abort();
            if (dropped)
                config_check_line(err, sizeof err);
            config_resolved++;
            for (unsigned i = 0; i < nprobes; i++)
                config_match(&cfg, &probes[i]);
        }
    }
    for (int i = 0; i < CONFIG_VARS; i++)
        free(env.val[i]);
    return 0;
}

/* ---- seeds: the settings of docs/shim.md's examples and the integration tests ---- */

void fuzz_config_seeds(fuzz_emit_fn emit, void *arg)
{
    static const char *const sets[][CONFIG_VARS] = {
        { "10.0.0.0/24,[fd00::1]:8080,peer.example:443", "9000", "5201,8080", "auto", "off", "debug",
          NULL, "strong", "bbr", "30", "60", "/tmp/keys" },
        { "*", NULL, "1", "strict", "/tmp/sst-1000/sstd.sock", "info", "/tmp/shim.log", "light",
          "cubic", "0", "0", NULL },
        { "10.0.0.2:5201,10.0.0.3,fe80::/10,localhost", "8661", "0", "off", "auto", "warn", NULL,
          NULL, "newreno", NULL, NULL, NULL },
        { "10.1.2.3/33", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL },
        /* Found by this target: control bytes of a value went raw into the one-line error
         * message and the banner (shim/config.c one_line). */
        { "*", NULL, "1\x03\x06", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL },
        { "*", "5000\nshim: forged", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL },
        { "*", NULL, "1", "strict", "/tmp\x01s", NULL, "/tmp/a\x1b[2Jb.log", NULL, NULL, NULL, NULL,
          "/tmp/k\ney" },
    };
    static const uint8_t dest4[] = { 10, 0, 0, 2, 0x14, 0x51 };
    static const uint8_t dest6[] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1f, 0x90 };
    uint8_t buf[1024];
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        size_t len = 0;
        for (int i = 0; i < CONFIG_VARS; i++)
            if (sets[s][i])
                fuzz_put(buf, sizeof buf, &len, (uint8_t)i, sets[s][i], strlen(sets[s][i]));
        fuzz_put(buf, sizeof buf, &len, 0xf0, dest4, sizeof dest4);
        fuzz_put(buf, sizeof buf, &len, 0xf1, dest6, sizeof dest6);
        emit(arg, buf, len);
    }
}
