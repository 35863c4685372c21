/* sstctl: asks a running sstd over its control socket (status, ping, warm, caps, forget) and
 * prints the answer for humans, or the raw JSON line with --json. */
#define _GNU_SOURCE
#include "sstd.h"
#include "jsonv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char *socket_path;

static void usage(FILE *f)
{
    fputs("usage: sstctl [--socket PATH] COMMAND\n"
          "  status [--json]     channels, streams, listeners (--forward, LISTEN) and the capability cache\n"
          "  ping HOST [COUNT]   round-trip time over SST (opens the channel if needed)\n"
          "  warm HOST           open a channel now and keep it warm for the idle period\n"
          "  caps HOST [PORT]    what the capability cache knows about HOST (and whether PORT answered)\n"
          "  forget HOST         remove HOST's pinned key from known_hosts\n"
          "HOST is an address or a host name, optionally with :port (default: the daemon's UDP\n"
          "port); a name is resolved here, and its first address is asked about.\n"
          "Add --json to any command for the daemon's JSON reply.\n",
          f);
}

/* The daemon takes numeric addresses only (its event loop must not block on a resolver), so a
 * host name is resolved here, where waiting is the user's: NAME or NAME:PORT becomes the first
 * address getaddrinfo gives (the system's preference order, RFC 6724), in the daemon's syntax.
 * Numeric text is passed through as it is.  Exits with a clear error if the name does not
 * resolve. */
static const char *host_arg(const char *text, char *out, size_t len)
{
    struct sst_addr probe;
    if (sst_addr_parse(&probe, text, 1) == 0 || text[0] == '[')
        return text;   /* numeric (bracketed text is never a name: the daemon reports it) */
    char name[256];
    const char *port = NULL;
    const char *colon = strrchr(text, ':');
    size_t n = colon && strchr(text, ':') == colon ? (size_t)(colon - text) : strlen(text);
    if (n >= sizeof name || n == 0) {
        fprintf(stderr, "sstctl: bad host '%s'\n", text);
        exit(2);
    }
    memcpy(name, text, n);
    name[n] = '\0';
    if (n < strlen(text))
        port = colon + 1;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM }, *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "sstctl: cannot resolve '%s': %s\n", name, rc ? gai_strerror(rc) : "no address");
        exit(2);
    }
    char ip[INET6_ADDRSTRLEN + 16];
    bool v6 = res->ai_family == AF_INET6;
    if (v6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)res->ai_addr;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        if (s6->sin6_scope_id)
            snprintf(ip + strlen(ip), sizeof ip - strlen(ip), "%%%u", (unsigned)s6->sin6_scope_id);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
    }
    freeaddrinfo(res);
    if (port)
        snprintf(out, len, v6 ? "[%s]:%s" : "%s:%s", ip, port);
    else
        snprintf(out, len, "%s", ip);
    return out;
}

/* Sends one request line and returns the reply line (malloc'ed) or exits with a clear error. */
static char *request(const char *line)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(socket_path) >= sizeof sun.sun_path) {
        fprintf(stderr, "sstctl: socket path too long: %s\n", socket_path);
        exit(2);
    }
    strcpy(sun.sun_path, socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int e = errno;
        fprintf(stderr, "sstctl: cannot reach sstd at %s: %s\n", socket_path, strerror(e));
        if (e == EACCES || e == EPERM)
            fprintf(stderr, "sstctl: this user may not use that socket (the daemon's --allow-uid)\n");
        else
            fprintf(stderr, "sstctl: is sstd running? start it with `sstd` (or pass --socket PATH)\n");
        exit(3);
    }
    char req[SSTD_LINE_MAX + 2];
    int len = snprintf(req, sizeof req, "%s\n", line);
    /* MSG_NOSIGNAL: a daemon that refuses us (SO_PEERCRED) answers and closes at once, maybe
     * before our write; its answer is still there to read, so a failed write is not fatal. */
    int werr = send(fd, req, (size_t)len, MSG_NOSIGNAL) == len ? 0 : errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "sstctl: out of memory\n");
            exit(1);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(buf + n - (size_t)r, '\n', (size_t)r))
            break;
        if (cap - n < 1024)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    if (n == 0 || !memchr(buf, '\n', n)) {
        if (werr)
            fprintf(stderr, "sstctl: writing to %s: %s\n", socket_path, strerror(werr));
        else
            fprintf(stderr, "sstctl: sstd at %s closed the connection without a reply\n", socket_path);
        exit(3);
    }
    buf[n] = '\0';
    *strchr(buf, '\n') = '\0';
    return buf;
}

static void print_status(const struct jv *r)
{
    printf("sstd pid %.0f, UDP port %.0f, up %.0f s, idle period %.0f s\n", jv_num(r, "pid", 0),
           jv_num(r, "port", 0), jv_num(r, "uptime_s", 0), jv_num(r, "idle_s", 0));
    const struct jv *h = jv_get(r, "host");
    printf("host: %.0f channel(s), handshakes %.0f initiated / %.0f completed (%.0f resumed) / %.0f failed\n",
           jv_num(h, "channels", 0), jv_num(h, "handshakes_initiated", 0), jv_num(h, "handshakes_completed", 0),
           jv_num(h, "handshakes_resumed", 0), jv_num(h, "handshakes_failed", 0));
    const struct jv *chans = jv_get(r, "channels");
    printf("channels:\n");
    if (!chans || !chans->child)
        printf("  (none)\n");
    for (const struct jv *c = chans ? chans->child : NULL; c; c = c->next) {
        printf("  %-24s %-11s %s %s rtt %.1f ms (min %.1f) cwnd %.0f loss %.2f%% tx %.0f B rx %.0f B"
               " age %.0f s streams %.0f%s\n",
               jv_str(c, "peer", "?"), jv_str(c, "state", "?"), jv_str(c, "security", "?"),
               jv_bool(c, "initiator") ? "out" : "in", jv_num(c, "rtt_ms", -1), jv_num(c, "min_rtt_ms", -1),
               jv_num(c, "cwnd", 0), 100.0 * jv_num(c, "loss", 0), jv_num(c, "tx_bytes", 0),
               jv_num(c, "rx_bytes", 0), jv_num(c, "age_s", 0), jv_num(c, "streams", 0),
               jv_bool(c, "warm") ? " warm" : "");
    }
    const struct jv *streams = jv_get(r, "streams");
    printf("streams:\n");
    if (!streams || !streams->child)
        printf("  (none)\n");
    for (const struct jv *c = streams ? streams->child : NULL; c; c = c->next)
        printf("  %-8s pid %-7.0f %-28s %-11s up %.0f B down %.0f B age %.0f s\n", jv_str(c, "kind", "?"),
               jv_num(c, "owner_pid", 0), jv_str(c, "stream", "?"), jv_str(c, "state", "?"),
               jv_num(c, "bytes_up", 0), jv_num(c, "bytes_down", 0), jv_num(c, "age_s", 0));
    /* Ports served to SST peers: --forward, and servers under SST_LISTEN that registered. */
    const struct jv *fwd = jv_get(r, "forward");
    const struct jv *regs = jv_get(r, "listeners");
    printf("listeners:\n");
    if ((!fwd || !fwd->child) && (!regs || !regs->child))
        printf("  (none)\n");
    for (const struct jv *c = fwd ? fwd->child : NULL; c; c = c->next)
        printf("  %-5.0f forward -> 127.0.0.1:%.0f\n", c->num, c->num);
    for (const struct jv *c = regs ? regs->child : NULL; c; c = c->next)
        printf("  %-5.0f LISTEN  -> %s (pid %.0f)\n", jv_num(c, "port", 0), jv_str(c, "to", "?"),
               jv_num(c, "pid", 0));
    const struct jv *caps = jv_get(r, "caps");
    printf("capability cache:\n");
    if (!caps || !caps->child)
        printf("  (empty)\n");
    for (const struct jv *c = caps ? caps->child : NULL; c; c = c->next)
        printf("  %-24s %-8s expires in %.0f s (%s)\n", jv_str(c, "host", "?"), jv_str(c, "sst", "?"),
               jv_num(c, "expires_in_s", 0), jv_str(c, "reason", ""));
}

static void print_reply(const char *cmd, const struct jv *r)
{
    if (strcmp(cmd, "status") == 0) {
        print_status(r);
    } else if (strcmp(cmd, "ping") == 0) {
        printf("%s: rtt", jv_str(r, "peer", "?"));
        const struct jv *a = jv_get(r, "rtt_ms");
        for (const struct jv *v = a ? a->child : NULL; v; v = v->next)
            printf(" %.3f", v->num);
        printf(" ms; min %.3f avg %.3f srtt %.3f ms", jv_num(r, "min_ms", 0), jv_num(r, "avg_ms", 0),
               jv_num(r, "srtt_ms", 0));
        if (jv_num(r, "handshake_ms", -1) > 0)
            printf(" (channel opened, handshake %.3f ms)", jv_num(r, "handshake_ms", 0));
        printf("\n");
    } else if (strcmp(cmd, "warm") == 0) {
        printf("%s: channel up, rtt %.3f ms, kept warm for %.0f s\n", jv_str(r, "peer", "?"),
               jv_num(r, "rtt_ms", 0), jv_num(r, "warm_s", 0));
    } else if (strcmp(cmd, "caps") == 0) {
        printf("%s: %s", jv_str(r, "host", "?"), jv_str(r, "sst", "?"));
        if (strcmp(jv_str(r, "sst", ""), "unknown") != 0)
            printf(" (%s; expires in %.0f s)", jv_str(r, "reason", ""), jv_num(r, "expires_in_s", 0));
        const struct jv *pa = jv_get(r, "port_answered");
        if (pa && jv_bool(r, "port_answered"))
            printf("; port %.0f answered (0-RTT for %.0f s)", jv_num(r, "port", 0), jv_num(r, "port_expires_in_s", 0));
        else if (pa && jv_bool(r, "port_tcp_only"))
            printf("; port %.0f refused over SST, served by TCP (auto mode: kernel TCP for %.0f s)",
                   jv_num(r, "port", 0), jv_num(r, "port_expires_in_s", 0));
        else if (pa)
            printf("; port %.0f has not answered lately (connections wait for the answer)", jv_num(r, "port", 0));
        printf("\n");
    } else if (strcmp(cmd, "forget") == 0) {
        printf("%s: removed %.0f pin(s)\n", jv_str(r, "host", "?"), jv_num(r, "removed", 0));
    }
}

int main(int argc, char **argv)
{
    static char default_path[SSTD_PATH_MAX];
    bool json = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "sstctl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i++];
    const char *args[2] = { NULL, NULL };
    unsigned nargs = 0;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (nargs < 2)
            args[nargs++] = argv[i];
        else {
            fprintf(stderr, "sstctl: too many arguments\n");
            return 2;
        }
    }
    static const struct { const char *name, *req; unsigned min, max; } cmds[] = {
        { "status", "STATUS", 0, 0 }, { "ping", "PING", 1, 2 }, { "warm", "WARM", 1, 1 },
        { "caps", "CAPS", 1, 2 },     { "forget", "FORGET", 1, 1 },
    };
    size_t k = 0;
    while (k < SST_ARRAY_LEN(cmds) && strcmp(cmds[k].name, cmd) != 0)
        k++;
    if (k == SST_ARRAY_LEN(cmds)) {
        fprintf(stderr, "sstctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if (nargs < cmds[k].min || nargs > cmds[k].max) {
        fprintf(stderr, "sstctl: %s takes %u..%u argument(s)\n", cmd, cmds[k].min, cmds[k].max);
        return 2;
    }
    for (unsigned a = 0; a < nargs; a++) {
        if (strpbrk(args[a], " \t\r\n")) {
            fprintf(stderr, "sstctl: argument '%s' contains whitespace\n", args[a]);
            return 2;
        }
    }
    /* Every command's first argument, when there is one, is a HOST. */
    static char host_buf[SSTD_LINE_MAX / 2];
    if (nargs > 0)
        args[0] = host_arg(args[0], host_buf, sizeof host_buf);
    if (!socket_path) {
        if (sstd_default_socket_path(default_path, sizeof default_path, geteuid(), getenv("XDG_RUNTIME_DIR")) < 0) {
            fprintf(stderr, "sstctl: default socket path too long; use --socket\n");
            return 2;
        }
        socket_path = default_path;
    }
    char line[SSTD_LINE_MAX];
    snprintf(line, sizeof line, "%s%s%s%s%s", cmds[k].req, nargs > 0 ? " " : "", nargs > 0 ? args[0] : "",
             nargs > 1 ? " " : "", nargs > 1 ? args[1] : "");
    char *reply = request(line);
    struct jv *r = jv_parse(reply, strlen(reply));
    if (!r) {
        fprintf(stderr, "sstctl: malformed reply from sstd: %s\n", reply);
        free(reply);
        return 1;
    }
    int rc = 0;
    if (!jv_bool(r, "ok")) {
        fprintf(stderr, "sstctl: %s: %s\n", jv_str(r, "error", "error"), jv_str(r, "message", ""));
        rc = 1;
        if (json)
            printf("%s\n", reply);
    } else if (json) {
        printf("%s\n", reply);
    } else {
        print_reply(cmd, r);
    }
    jv_free(r);
    free(reply);
    return rc;
}
