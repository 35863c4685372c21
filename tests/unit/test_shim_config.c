/* Unit tests for the shim's configuration parser, SST_PEERS matching and the negative cache. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../shim/config.h"
#include "../../shim/log.h"
#include "../../shim/negcache.h"

/* A fake environment: NULL-terminated name/value pairs. */
struct env {
    const char *kv[24];
};

static const char *env_get(void *ctx, const char *name)
{
    struct env *e = ctx;
    for (int i = 0; e->kv[i]; i += 2)
        if (strcmp(e->kv[i], name) == 0)
            return e->kv[i + 1];
    return NULL;
}

static int parse(struct shim_config *cfg, char *err, struct env e)
{
    return shim_config_parse(cfg, env_get, &e, err, 256);
}

static struct sockaddr_storage sa4(const char *ip, int port, socklen_t *len)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, ip, &s->sin_addr), 1);
    *len = sizeof(*s);
    return ss;
}

static struct sockaddr_storage sa6(const char *ip, int port, socklen_t *len)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
    *len = sizeof(*s);
    return ss;
}

static bool match4(const struct shim_config *cfg, const char *ip, int port)
{
    socklen_t l;
    struct sockaddr_storage ss = sa4(ip, port, &l);
    return shim_config_match(cfg, (struct sockaddr *)&ss, l);
}

static bool match6(const struct shim_config *cfg, const char *ip, int port)
{
    socklen_t l;
    struct sockaddr_storage ss = sa6(ip, port, &l);
    return shim_config_match(cfg, (struct sockaddr *)&ss, l);
}

START_TEST(test_shim_config_defaults)
{
    struct shim_config cfg;
    char err[256];
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { NULL } }), 0);
    ck_assert(!cfg.peers_set);
    ck_assert_int_eq(cfg.mode, SHIM_MODE_AUTO);
    ck_assert_uint_eq(cfg.port, 8661);
    ck_assert_int_eq(cfg.helper, SHIM_HELPER_AUTO);
    ck_assert_int_eq(cfg.security, SHIM_SEC_STRONG);
    ck_assert_int_eq(cfg.cc, SHIM_CC_DEFAULT);
    ck_assert_int_eq(cfg.log, SHIM_LOG_WARN);
    ck_assert(!cfg.listen_all);
    ck_assert_uint_eq(cfg.n_listen, 0);
    /* Unset SST_PEERS selects nothing, whatever the address. */
    ck_assert(!match4(&cfg, "10.0.0.1", 80));
}
END_TEST

START_TEST(test_shim_config_all_values)
{
    struct shim_config cfg;
    char err[256];
    ck_assert_int_eq(parse(&cfg, err, (struct env){ {
        "SST_PEERS", "10.0.0.0/8", "SST_MODE", "strict", "SST_PORT", "9000",
        "SST_HELPER", "/run/sstd.sock", "SST_LISTEN", "80,443", "SST_SECURITY", "light",
        "SST_KEYDIR", "/tmp/k", "SST_LOG", "debug", "SST_LOG_FILE", "/tmp/l", "SST_CC", "bbr",
        "SST_LIVENESS", "20", NULL } }), 0);
    ck_assert(cfg.peers_set);
    ck_assert_int_eq(cfg.mode, SHIM_MODE_STRICT);
    ck_assert_uint_eq(cfg.port, 9000);
    ck_assert_int_eq(cfg.helper, SHIM_HELPER_PATH);
    ck_assert_str_eq(cfg.helper_path, "/run/sstd.sock");
    ck_assert_uint_eq(cfg.n_listen, 2);
    ck_assert_uint_eq(cfg.listen[0], 80);
    ck_assert_uint_eq(cfg.listen[1], 443);
    ck_assert_int_eq(cfg.security, SHIM_SEC_LIGHT);
    ck_assert_int_eq(cfg.cc, SHIM_CC_BBR);
    ck_assert(cfg.liveness_set);
    ck_assert_uint_eq(cfg.liveness, 20);
    ck_assert_str_eq(cfg.keydir, "/tmp/k");
    ck_assert_int_eq(cfg.log, SHIM_LOG_DEBUG);
    ck_assert_str_eq(cfg.log_file, "/tmp/l");

    char banner[512];
    shim_config_banner(&cfg, banner, sizeof(banner));
    ck_assert_str_eq(banner, "SST_PEERS=10.0.0.0/8 SST_MODE=strict SST_PORT=9000 SST_HELPER=/run/sstd.sock "
                             "SST_LISTEN=80,443 SST_SECURITY=light SST_CC=bbr SST_LIVENESS=20 SST_KEYDIR=/tmp/k SST_LOG=debug "
                             "SST_LOG_FILE=/tmp/l");

    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_LISTEN", "1", "SST_HELPER", "off",
                                                      "SST_MODE", "off", NULL } }), 0);
    ck_assert(cfg.listen_all);
    ck_assert_int_eq(cfg.helper, SHIM_HELPER_OFF);
    ck_assert_int_eq(cfg.mode, SHIM_MODE_OFF);
    ck_assert_int_eq(cfg.cc, SHIM_CC_DEFAULT);
    ck_assert(!cfg.liveness_set);
    /* 0 turns the probe off; the maximum is a day. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_LIVENESS", "0", NULL } }), 0);
    ck_assert(cfg.liveness_set);
    ck_assert_uint_eq(cfg.liveness, 0);
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_LIVENESS", "86400", NULL } }), 0);
    ck_assert_uint_eq(cfg.liveness, 86400);
    /* The refusal cache: 60 s unless set (not in the banner then), 0 turns it off, an hour at
     * most. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { NULL } }), 0);
    ck_assert_uint_eq(cfg.refusal_ttl, 60);
    shim_config_banner(&cfg, banner, sizeof(banner));
    ck_assert_ptr_null(strstr(banner, "SST_REFUSAL_CACHE"));
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_REFUSAL_CACHE", "0", NULL } }), 0);
    ck_assert_uint_eq(cfg.refusal_ttl, 0);
    shim_config_banner(&cfg, banner, sizeof(banner));
    ck_assert_ptr_nonnull(strstr(banner, "SST_REFUSAL_CACHE=0"));
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_REFUSAL_CACHE", "3600", NULL } }), 0);
    ck_assert_uint_eq(cfg.refusal_ttl, 3600);
    /* The keeper: on unless SST_KEEPER=0 (then named in the banner). */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { NULL } }), 0);
    ck_assert(cfg.keeper);
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_KEEPER", "1", NULL } }), 0);
    ck_assert(cfg.keeper);
    shim_config_banner(&cfg, banner, sizeof(banner));
    ck_assert_ptr_null(strstr(banner, "SST_KEEPER"));
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_KEEPER", "0", NULL } }), 0);
    ck_assert(!cfg.keeper);
    shim_config_banner(&cfg, banner, sizeof(banner));
    ck_assert_ptr_nonnull(strstr(banner, "SST_KEEPER=0"));

    /* Each algorithm name maps to its own value and back. */
    static const struct {
        const char *name;
        enum shim_cc cc;
    } ccs[] = { { "cubic", SHIM_CC_CUBIC }, { "newreno", SHIM_CC_NEWRENO }, { "bbr", SHIM_CC_BBR } };
    for (size_t i = 0; i < sizeof(ccs) / sizeof(ccs[0]); i++) {
        ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_CC", ccs[i].name, NULL } }), 0);
        ck_assert_int_eq(cfg.cc, ccs[i].cc);
        ck_assert_str_eq(shim_cc_name(cfg.cc), ccs[i].name);
    }
}
END_TEST

/* Every bad value is rejected with a message naming the variable. */
static const struct {
    const char *name, *value;
} bad[] = {
    { "SST_MODE", "fast" },       { "SST_MODE", "" },           { "SST_MODE", "AUTO" },
    { "SST_PORT", "0" },          { "SST_PORT", "65536" },      { "SST_PORT", "80a" },
    { "SST_PORT", "-1" },         { "SST_PORT", "" },           { "SST_HELPER", "relative/path" },
    { "SST_LISTEN", "yes" },      { "SST_LISTEN", "80,,81" },   { "SST_LISTEN", "70000" },
    { "SST_SECURITY", "weak" },   { "SST_CC", "reno" },         { "SST_CC", "BBR" },
    { "SST_CC", "" },             { "SST_LOG", "verbose" },     { "SST_LOG_FILE", "" },
    { "SST_KEYDIR", "" },         { "SST_PEERS", "10.0.0.0/33" }, { "SST_PEERS", "1.2.3" },
    { "SST_PEERS", "1.2.3.4:0" }, { "SST_PEERS", "1.2.3.4:99999" }, { "SST_PEERS", "a,,b" },
    { "SST_PEERS", "[::1" },      { "SST_PEERS", "[::1]x" },    { "SST_PEERS", "::1/129" },
    { "SST_PEERS", "[1.2.3.4]:80" }, { "SST_PEERS", "bad host" }, { "SST_PEERS", "host:port" },
    { "SST_PEERS", "," },         { "SST_PEERS", "300.1.1.1" },
    { "SST_LIVENESS", "" },       { "SST_LIVENESS", "-1" },     { "SST_LIVENESS", "86401" },
    { "SST_LIVENESS", "10s" },    { "SST_LIVENESS", " 5" },
    { "SST_REFUSAL_CACHE", "" },  { "SST_REFUSAL_CACHE", "3601" }, { "SST_REFUSAL_CACHE", "1m" },
    { "SST_REFUSAL_CACHE", "-1" },
    { "SST_KEEPER", "" },         { "SST_KEEPER", "yes" },      { "SST_KEEPER", "01" },
};

START_TEST(test_shim_config_rejects_bad_values)
{
    struct shim_config cfg;
    char err[256];
    struct env e = { { bad[_i].name, bad[_i].value, NULL } };
    ck_assert_msg(shim_config_parse(&cfg, env_get, &e, err, sizeof(err)) == -1, "%s=%s accepted",
                  bad[_i].name, bad[_i].value);
    ck_assert_msg(strncmp(err, bad[_i].name, strlen(bad[_i].name)) == 0, "message '%s' lacks %s", err,
                  bad[_i].name);
}
END_TEST

/* A bad value's control bytes are escaped in the message, and paths' in the banner: the shim
 * logs each as one line (found by the config fuzz target, tests/fuzz/fuzz_config.c: a newline
 * in SST_LISTEN wrote a second line under the shim's name). */
START_TEST(test_shim_config_messages_one_line)
{
    struct shim_config cfg;
    char err[256];
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PORT", "5000\nshim: forged", NULL } }), -1);
    ck_assert_str_eq(err, "SST_PORT: '5000\\nshim: forged' is not a port number (1-65535)");
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_LISTEN", "1\x03\x1b[2J\t", NULL } }), -1);
    ck_assert_str_eq(err, "SST_LISTEN: '1\\x03\\x1b[2J\\t' is not 1, 0 or a comma list of ports");
    /* Escaping never overruns err: a long value is cut, still one terminated line. */
    char longv[600];
    memset(longv, '\r', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_MODE", longv, NULL } }), -1);
    ck_assert_uint_le(strlen(err), 255);
    ck_assert_ptr_null(strchr(err, '\r'));
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "*", "SST_HELPER", "/tmp/a\nb.sock", NULL } }), 0);
    char banner[512];
    shim_config_banner(&cfg, banner, sizeof(banner));
    ck_assert_str_eq(banner, "SST_PEERS=* SST_HELPER=/tmp/a\\nb.sock");
}
END_TEST

/* Every log line is one printable line, whatever a message quotes: sstd's reply (its "error"
 * code went into the log as sstd wrote it), a peer's or the environment's strings.  A long
 * message is cut, still one line ending in its newline. */
START_TEST(test_shim_log_lines_printable)
{
    int p[2];
    char got[2048], want[128];
    ck_assert_int_eq(pipe(p), 0);
    shim_log_setup(SHIM_LOG_DEBUG, p[1]);
    shim_log(SHIM_LOG_INFO, "helper: could not take the connection (%s)", "x\nsstshim[1] error: forged\x1b[2J");
    ssize_t n = read(p[0], got, sizeof got - 1);
    ck_assert_int_gt(n, 0);
    got[n] = '\0';
    snprintf(want, sizeof want, "sstshim[%d] info: helper: could not take the connection "
             "(x\\nsstshim[1] error: forged\\x1b[2J)\n", (int)getpid());
    ck_assert_str_eq(got, want);
    char longv[1500];
    memset(longv, '\n', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    SHIM_DEBUG("%s", longv);
    n = read(p[0], got, sizeof got - 1);
    ck_assert_int_gt(n, 100);
    ck_assert_int_le(n, 1024);
    got[n] = '\0';
    ck_assert_ptr_eq(strchr(got, '\n'), got + n - 1);
    shim_log_setup(SHIM_LOG_WARN, -1);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_shim_config_peers_match)
{
    struct shim_config cfg;
    char err[256];
    ck_assert_int_eq(parse(&cfg, err, (struct env){ {
        "SST_PEERS", " 192.168.1.0/24 , 10.1.2.3:8080,[2001:db8::/32]:443, fe80::1 ,127.0.0.1", NULL } }), 0);
    ck_assert_uint_eq(cfg.n_peers, 5);
    ck_assert(match4(&cfg, "192.168.1.77", 22));
    ck_assert(!match4(&cfg, "192.168.2.1", 22));
    ck_assert(match4(&cfg, "10.1.2.3", 8080));
    ck_assert(!match4(&cfg, "10.1.2.3", 8081));
    ck_assert(match6(&cfg, "2001:db8:ffff::1", 443));
    ck_assert(!match6(&cfg, "2001:db8:ffff::1", 80));
    ck_assert(!match6(&cfg, "2001:db9::1", 443));
    ck_assert(match6(&cfg, "fe80::1", 1));
    ck_assert(!match6(&cfg, "fe80::2", 1));
    /* An IPv4-mapped IPv6 destination matches the IPv4 rule. */
    ck_assert(match6(&cfg, "::ffff:192.168.1.5", 80));
    ck_assert(match4(&cfg, "127.0.0.1", 80));
    ck_assert(!match4(&cfg, "127.0.0.2", 80));
}
END_TEST

START_TEST(test_shim_config_prefix_edges)
{
    struct shim_config cfg;
    char err[256];
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "10.128.0.0/9,0.0.0.0/0:7", NULL } }), 0);
    ck_assert(match4(&cfg, "10.128.0.1", 1));
    ck_assert(match4(&cfg, "10.255.255.255", 1));
    ck_assert(!match4(&cfg, "10.127.255.255", 1));
    /* /0 with a port: every IPv4 address, that port only. */
    ck_assert(match4(&cfg, "8.8.8.8", 7));
    ck_assert(!match4(&cfg, "8.8.8.8", 8));
    ck_assert(!match6(&cfg, "2001:db8::1", 7));
}
END_TEST

START_TEST(test_shim_config_star_and_mode_off)
{
    struct shim_config cfg;
    char err[256];
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "*", NULL } }), 0);
    ck_assert(match4(&cfg, "8.8.8.8", 443));
    ck_assert(match6(&cfg, "2001:db8::1", 443));
    /* "*" leaves loopback and DNS over TCP alone. */
    ck_assert(!match4(&cfg, "127.0.0.1", 443));
    ck_assert(!match6(&cfg, "::1", 443));
    ck_assert(!match4(&cfg, "8.8.8.8", 53));
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "*", "SST_MODE", "off", NULL } }), 0);
    ck_assert(!match4(&cfg, "8.8.8.8", 443));
    /* An empty SST_PEERS is the same as unset. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "", NULL } }), 0);
    ck_assert(!cfg.peers_set);
}
END_TEST

static int fake_resolve(void *ctx, const char *host, uint8_t *families, uint8_t (*ips)[16], int max)
{
    int *calls = ctx;
    (*calls)++;
    if (strcmp(host, "db.example") == 0) {
        families[0] = AF_INET;
        memset(ips[0], 0, 16);
        inet_pton(AF_INET, "10.9.9.9", ips[0]);
        families[1] = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::9", ips[1]);
        return 2;
    }
    return -1;
}

START_TEST(test_shim_config_hostnames_resolve_once)
{
    struct shim_config cfg;
    char err[256];
    int calls = 0;
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "db.example:5432,nowhere.invalid,1.1.1.1", NULL } }), 0);
    ck_assert_uint_eq(cfg.n_peers, 3);
    ck_assert_int_eq(cfg.peers[0].kind, SHIM_PEER_HOST);
    ck_assert_uint_eq(cfg.peers[0].port, 5432);
    /* Before resolution a hostname matches nothing. */
    ck_assert(!match4(&cfg, "10.9.9.9", 5432));
    ck_assert_int_eq(shim_config_resolve(&cfg, fake_resolve, &calls, err, sizeof(err)), 1);
    ck_assert_int_eq(calls, 2);
    ck_assert(strstr(err, "nowhere.invalid") != NULL);
    ck_assert_uint_eq(cfg.n_peers, 3);   /* two addresses for db.example + 1.1.1.1 */
    ck_assert(match4(&cfg, "10.9.9.9", 5432));
    ck_assert(!match4(&cfg, "10.9.9.9", 5433));
    ck_assert(match6(&cfg, "2001:db8::9", 5432));
    ck_assert(match4(&cfg, "1.1.1.1", 1));
}
END_TEST

/* IPv4 destinations are matched against the compiled words of cfg.v4 when every entry is an
 * address or prefix; an IPv4-mapped IPv6 destination still takes the general per-entry path.
 * Both must give the same answer for every address and port. */
static void check_paths_agree(const struct shim_config *cfg)
{
    static const char *const ips[] = { "10.0.0.1", "10.127.255.255", "10.128.0.0", "10.255.255.255",
                                       "11.0.0.1", "192.168.1.5", "192.168.1.6", "127.0.0.1",
                                       "0.0.0.0", "255.255.255.255", "8.8.8.8", "10.1.9.9",
                                       "10.2.9.9", "10.3.9.9", "11.1.9.9", "138.1.9.9" };
    static const int ports[] = { 1, 7, 53, 443, 8080, 65535 };
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        char mapped[64];
        snprintf(mapped, sizeof(mapped), "::ffff:%s", ips[i]);
        for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++)
            ck_assert_msg(match4(cfg, ips[i], ports[k]) == match6(cfg, mapped, ports[k]),
                          "%s port %d: IPv4 and IPv4-mapped answers differ", ips[i], ports[k]);
    }
}

START_TEST(test_shim_config_v4_fast_path)
{
    struct shim_config cfg;
    char err[256];
    ck_assert_int_eq(parse(&cfg, err, (struct env){ {
        "SST_PEERS", "10.128.0.0/9,192.168.1.5:443,0.0.0.0/0:7,[2001:db8::/32]:443", NULL } }), 0);
    ck_assert(cfg.v4_exact);
    ck_assert_uint_eq(cfg.n_v4, 3);
    ck_assert(match4(&cfg, "10.200.1.1", 80));
    ck_assert(!match4(&cfg, "10.127.0.1", 80));
    ck_assert(match4(&cfg, "192.168.1.5", 443));
    ck_assert(!match4(&cfg, "192.168.1.5", 444));
    ck_assert(match4(&cfg, "1.2.3.4", 7));
    check_paths_agree(&cfg);
    /* Host bits beyond the prefix are ignored, as by the per-entry compare. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "10.1.2.3/8", NULL } }), 0);
    ck_assert(match4(&cfg, "10.200.0.1", 1));
    check_paths_agree(&cfg);
    /* Entries sharing only some prefix bits: the quick reject must keep both. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "10.1.0.0/16,10.2.0.0/16:443", NULL } }), 0);
    ck_assert(match4(&cfg, "10.1.9.9", 80));
    ck_assert(match4(&cfg, "10.2.9.9", 443));
    ck_assert(!match4(&cfg, "10.2.9.9", 80));
    ck_assert(!match4(&cfg, "10.3.9.9", 443));
    check_paths_agree(&cfg);
    /* Only IPv6 entries: no IPv4 address matches. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "2001:db8::/32", NULL } }), 0);
    ck_assert(cfg.v4_exact);
    ck_assert(!match4(&cfg, "0.0.0.1", 1));
    check_paths_agree(&cfg);
    /* "*" or an unresolved name: the general path, for IPv4 too. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "10.0.0.0/8,*", NULL } }), 0);
    ck_assert(!cfg.v4_exact);
    ck_assert(match4(&cfg, "8.8.8.8", 443));
    ck_assert(!match4(&cfg, "127.0.0.1", 443));
    check_paths_agree(&cfg);
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "db.example:5432,172.16.0.0/12", NULL } }), 0);
    ck_assert(!cfg.v4_exact);
    int calls = 0;
    ck_assert_int_eq(shim_config_resolve(&cfg, fake_resolve, &calls, err, sizeof(err)), 0);
    ck_assert(cfg.v4_exact);   /* resolved: every entry is an address now */
    ck_assert(match4(&cfg, "10.9.9.9", 5432));
    ck_assert(!match4(&cfg, "10.9.9.9", 5433));
    check_paths_agree(&cfg);
    /* SST_MODE=off: nothing matches, by either path. */
    ck_assert_int_eq(parse(&cfg, err, (struct env){ { "SST_PEERS", "10.0.0.0/8", "SST_MODE", "off", NULL } }), 0);
    ck_assert(!cfg.v4_exact);
    ck_assert(!match4(&cfg, "10.0.0.1", 1));
}
END_TEST

START_TEST(test_shim_negcache_expiry_and_keys)
{
    struct shim_negcache *nc = shim_negcache_new();
    uint8_t a[16] = { 10, 0, 0, 1 }, b[16] = { 10, 0, 0, 2 };
    ck_assert_ptr_nonnull(nc);
    ck_assert(!shim_negcache_has(nc, AF_INET, a, 80, 0));
    ck_assert_int_eq(shim_negcache_put(nc, AF_INET, a, 80, 1000, 500), 0);
    ck_assert(shim_negcache_has(nc, AF_INET, a, 80, 1499));
    ck_assert(!shim_negcache_has(nc, AF_INET, a, 81, 1000));   /* port is part of the key */
    ck_assert(!shim_negcache_has(nc, AF_INET, b, 80, 1000));
    ck_assert(!shim_negcache_has(nc, AF_INET6, a, 80, 1000));
    /* Expired at exactly put + ttl, and dropped. */
    ck_assert(!shim_negcache_has(nc, AF_INET, a, 80, 1500));
    ck_assert_uint_eq(shim_negcache_count(nc), 0);
    /* A refresh extends the expiry. */
    shim_negcache_put(nc, AF_INET, a, 80, 0, 100);
    shim_negcache_put(nc, AF_INET, a, 80, 90, 100);
    ck_assert(shim_negcache_has(nc, AF_INET, a, 80, 150));
    ck_assert_uint_eq(shim_negcache_count(nc), 1);
    shim_negcache_free(nc);
}
END_TEST

START_TEST(test_shim_negcache_bounded)
{
    struct shim_negcache *nc = shim_negcache_new();
    uint8_t ip[16] = { 0 };
    for (unsigned i = 0; i < SHIM_NEGCACHE_MAX + 10; i++) {
        ip[0] = (uint8_t)(i >> 8);
        ip[1] = (uint8_t)i;
        ck_assert_int_eq(shim_negcache_put(nc, AF_INET, ip, 1, i, 1000000), 0);
    }
    ck_assert_uint_eq(shim_negcache_count(nc), SHIM_NEGCACHE_MAX);
    /* The oldest went first; the newest is there. */
    ip[0] = 0;
    ip[1] = 0;
    ck_assert(!shim_negcache_has(nc, AF_INET, ip, 1, 2000));
    unsigned last = SHIM_NEGCACHE_MAX + 9;
    ip[0] = (uint8_t)(last >> 8);
    ip[1] = (uint8_t)last;
    ck_assert(shim_negcache_has(nc, AF_INET, ip, 1, 2000));
    shim_negcache_free(nc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shim_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_shim_config_defaults);
    tcase_add_test(tc, test_shim_config_all_values);
    tcase_add_loop_test(tc, test_shim_config_rejects_bad_values, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, test_shim_config_messages_one_line);
    tcase_add_test(tc, test_shim_log_lines_printable);
    tcase_add_test(tc, test_shim_config_peers_match);
    tcase_add_test(tc, test_shim_config_prefix_edges);
    tcase_add_test(tc, test_shim_config_star_and_mode_off);
    tcase_add_test(tc, test_shim_config_hostnames_resolve_once);
    tcase_add_test(tc, test_shim_config_v4_fast_path);
    tcase_add_test(tc, test_shim_negcache_expiry_and_keys);
    tcase_add_test(tc, test_shim_negcache_bounded);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
