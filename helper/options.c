/* sstd command-line options: parsing, defaults and the default control socket path. */
#define _GNU_SOURCE
#include "err.h"
#include "io/helper_path.h"
#include "sstd.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void sstd_options_usage(FILE *f)
{
    fputs("usage: sstd [options]\n"
          "  --socket PATH       control socket (default $XDG_RUNTIME_DIR/sst/sstd.sock,\n"
          "                      /run/sst/sstd.sock for root)\n"
          "  --port N            UDP port for SST (default 8661)\n"
          "  --bind ADDR         UDP bind address (default :: , dual-stack)\n"
          "  --forward PORTS     gateway: deliver incoming SST streams for these TCP ports\n"
          "                      (comma list, ranges a-b) to the local service\n"
          "  --proxy-protocol    prefix forwarded connections with a PROXY v2 header\n"
          "  --foreground        do not daemonize\n"
          "  --keydir DIR        host key and known_hosts directory (default: keystore default)\n"
          "  --log LEVEL         error|warn|info|debug (default $SST_LOG or warn)\n"
          "  --log-file PATH     log here (default $SST_LOG_FILE) instead of stderr/syslog\n"
          "  --pidfile PATH      pid file (default: the socket path with .pid for .sock)\n"
          "  --idle SECONDS      keep a warm channel this long after its last use (default 300)\n"
          "  --allow-uid LIST    also accept control clients with these uids/user names\n"
          "  --handshake-timeout SECONDS  give up on a host that does not answer (default 10)\n"
          "  --cc NAME           congestion control: cubic|newreno|bbr (default: the engine's, bbr)\n"
          "  --security LEVEL    strong|light (default strong); a channel is light only when\n"
          "                      both ends ask for light\n"
          "  --migrate-timeout SECONDS  how long connections wait for a lost channel to come\n"
          "                      back before failing with ETIMEDOUT (default 30; 0: at once)\n"
          "  --liveness SECONDS  probe the peer of a connection idle this long, so that one whose\n"
          "                      process died is found (default 60; 0: never)\n",
          f);
}

int sstd_default_socket_path(char *buf, size_t len, uid_t uid, const char *xdg)
{
    return sst_helper_default_socket(buf, len, uid, xdg);
}

bool sstd_forwarded(const struct sstd_opts *o, uint16_t port)
{
    for (unsigned i = 0; i < o->nforward; i++)
        if (o->forward[i] == port)
            return true;
    return false;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_ports(struct sstd_opts *o, const char *text, char *err, size_t errlen)
{
    char copy[512];
    if (snprintf(copy, sizeof copy, "%s", text) >= (int)sizeof copy)
        return fail(err, errlen, "--forward: list too long");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned long lo, hi;
        char *dash = strchr(tok, '-');
        if (dash)
            *dash = '\0';
        if (parse_uint(tok, 65535, &lo) < 0 || lo == 0 ||
            (dash ? parse_uint(dash + 1, 65535, &hi) < 0 || hi < lo : (hi = lo, 0)))
            return fail(err, errlen, "--forward: '%s' is not a port or range (1-65535)", text);
        for (unsigned long p = lo; p <= hi; p++) {
            if (sstd_forwarded(o, (uint16_t)p))
                continue;
            if (o->nforward == SSTD_MAX_FORWARD)
                return fail(err, errlen, "--forward: at most %d ports", SSTD_MAX_FORWARD);
            o->forward[o->nforward++] = (uint16_t)p;
        }
    }
    if (o->nforward == 0)
        return fail(err, errlen, "--forward: empty port list");
    return 0;
}

static int parse_uids(struct sstd_opts *o, const char *text, char *err, size_t errlen)
{
    char copy[512];
    if (snprintf(copy, sizeof copy, "%s", text) >= (int)sizeof copy)
        return fail(err, errlen, "--allow-uid: list too long");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned long v;
        uid_t uid;
        if (parse_uint(tok, 0xfffffffeul, &v) == 0) {
            uid = (uid_t)v;
        } else {
            struct passwd *pw = getpwnam(tok);
            if (!pw)
                return fail(err, errlen, "--allow-uid: no user '%s'", tok);
            uid = pw->pw_uid;
        }
        if (o->nallow == SSTD_MAX_ALLOW)
            return fail(err, errlen, "--allow-uid: at most %d users", SSTD_MAX_ALLOW);
        o->allow_uid[o->nallow++] = uid;
    }
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src, const char *what, char *err, size_t errlen)
{
    if (!*src || strlen(src) >= cap)
        return fail(err, errlen, "%s: empty or longer than %zu bytes", what, cap - 1);
    strcpy(dst, src);
    return 0;
}

int sstd_options_parse(struct sstd_opts *o, int argc, char **argv, char *err, size_t errlen)
{
    enum { O_SOCKET = 256, O_PORT, O_BIND, O_FORWARD, O_PROXY, O_FG, O_KEYDIR, O_LOG, O_LOGFILE,
           O_PIDFILE, O_IDLE, O_ALLOW, O_HSTO, O_CC, O_SECURITY, O_MIGRATE, O_LIVENESS, O_HELP };
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "port", required_argument, NULL, O_PORT },
        { "bind", required_argument, NULL, O_BIND },
        { "forward", required_argument, NULL, O_FORWARD },
        { "proxy-protocol", no_argument, NULL, O_PROXY },
        { "foreground", no_argument, NULL, O_FG },
        { "keydir", required_argument, NULL, O_KEYDIR },
        { "log", required_argument, NULL, O_LOG },
        { "log-file", required_argument, NULL, O_LOGFILE },
        { "pidfile", required_argument, NULL, O_PIDFILE },
        { "idle", required_argument, NULL, O_IDLE },
        { "allow-uid", required_argument, NULL, O_ALLOW },
        { "handshake-timeout", required_argument, NULL, O_HSTO },
        { "cc", required_argument, NULL, O_CC },
        { "security", required_argument, NULL, O_SECURITY },
        { "migrate-timeout", required_argument, NULL, O_MIGRATE },
        { "liveness", required_argument, NULL, O_LIVENESS },
        { "help", no_argument, NULL, O_HELP },
        { NULL, 0, NULL, 0 },
    };
    unsigned long v;
    int c, lvl;
    const char *env_log = getenv("SST_LOG");

    *o = (struct sstd_opts){ .port = SSTD_DEFAULT_PORT, .log_level = SSTD_LOG_WARN, .idle_sec = 300,
                          .handshake_timeout_sec = 10 };
    if (env_log && (lvl = sstd_log_level_parse(env_log)) >= 0)
        o->log_level = (enum sstd_loglevel)lvl;
    /* Like the shim: SST_LOG_FILE is the default destination. */
    const char *env_file = getenv("SST_LOG_FILE");
    if (env_file && *env_file && strlen(env_file) < sizeof o->log_file)
        strcpy(o->log_file, env_file);

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            if (copy_str(o->socket_path, sizeof o->socket_path, optarg, "--socket", err, errlen) < 0)
                return -1;
            break;
        case O_PORT:
            if (parse_uint(optarg, 65535, &v) < 0)
                return fail(err, errlen, "--port: '%s' is not a port (0-65535)", optarg);
            o->port = (uint16_t)v;
            break;
        case O_BIND:
            if (copy_str(o->bind, sizeof o->bind, optarg, "--bind", err, errlen) < 0)
                return -1;
            break;
        case O_FORWARD:
            if (parse_ports(o, optarg, err, errlen) < 0)
                return -1;
            break;
        case O_PROXY:
            o->proxy_protocol = true;
            break;
        case O_FG:
            o->foreground = true;
            break;
        case O_KEYDIR:
            if (copy_str(o->keydir, sizeof o->keydir, optarg, "--keydir", err, errlen) < 0)
                return -1;
            break;
        case O_LOG:
            if ((lvl = sstd_log_level_parse(optarg)) < 0)
                return fail(err, errlen, "--log: '%s' is not one of error|warn|info|debug", optarg);
            o->log_level = (enum sstd_loglevel)lvl;
            break;
        case O_LOGFILE:
            if (copy_str(o->log_file, sizeof o->log_file, optarg, "--log-file", err, errlen) < 0)
                return -1;
            break;
        case O_PIDFILE:
            if (copy_str(o->pid_file, sizeof o->pid_file, optarg, "--pidfile", err, errlen) < 0)
                return -1;
            break;
        case O_IDLE:
            if (parse_uint(optarg, 86400 * 7, &v) < 0)
                return fail(err, errlen, "--idle: '%s' is not a number of seconds", optarg);
            o->idle_sec = (unsigned)v;
            break;
        case O_ALLOW:
            if (parse_uids(o, optarg, err, errlen) < 0)
                return -1;
            break;
        case O_HSTO:
            if (parse_uint(optarg, 3600, &v) < 0 || v == 0)
                return fail(err, errlen, "--handshake-timeout: '%s' is not 1..3600 seconds", optarg);
            o->handshake_timeout_sec = (unsigned)v;
            break;
        case O_CC:
            /* Exact names only, like the shim's SST_CC ("reno" is core's alias, not ours). */
            if (strcmp(optarg, "reno") == 0 || sst_cc_algo_parse(optarg, &o->cc) != SST_OK)
                return fail(err, errlen, "--cc: '%s' is not one of cubic|newreno|bbr", optarg);
            o->cc_set = true;
            break;
        case O_MIGRATE:
            if (parse_uint(optarg, 3600, &v) < 0)
                return fail(err, errlen, "--migrate-timeout: '%s' is not 0..3600 seconds", optarg);
            o->migrate_sec = (unsigned)v;
            o->migrate_set = true;
            break;
        case O_LIVENESS:
            if (parse_uint(optarg, 86400, &v) < 0)
                return fail(err, errlen, "--liveness: '%s' is not 0..86400 seconds", optarg);
            o->liveness_sec = (unsigned)v;
            o->liveness_set = true;
            break;
        case O_SECURITY:
            if (sst_security_parse(optarg, &o->security) != SST_OK)
                return fail(err, errlen, "--security: '%s' is not strong or light", optarg);
            o->security_set = true;
            break;
        case O_HELP:
            return 1;
        default:
            return fail(err, errlen, "unknown or incomplete option '%s' (--help lists them)",
                        argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    if (!o->socket_path[0] &&
        sstd_default_socket_path(o->socket_path, sizeof o->socket_path, geteuid(), getenv("XDG_RUNTIME_DIR")) < 0)
        return fail(err, errlen, "default socket path too long; use --socket");
    if (!o->pid_file[0]) {
        /* Next to the socket, named after it, so daemons with sockets in one directory differ. */
        size_t n = strlen(o->socket_path);
        if (n > 5 && strcmp(o->socket_path + n - 5, ".sock") == 0)
            n -= 5;
        snprintf(o->pid_file, sizeof o->pid_file, "%.*s.pid", (int)n, o->socket_path);
    }
    /* The capability file: no option, the shim derives it from SST_HELPER the same way. */
    if (sst_helper_caps_path(o->caps_file, sizeof o->caps_file, o->socket_path) < 0)
        o->caps_file[0] = '\0';
    return 0;
}
