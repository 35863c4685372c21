/* Shim start-up: resolves libc, reads the configuration, and decides whether the shim is
 * active; also holds the process-wide state the hooks share. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include "epollrec.h"
#include "evthread.h"
#include "fdtable.h"
#include "log.h"
#include "negcache.h"
#include "real.h"
#include "server.h"
#include "shim.h"

struct shim_config shim_cfg;
bool shim_active;
SHIM_TLS int shim_tls_guard;
SHIM_TLS int shim_tls_hide_new;

static pthread_mutex_t nc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_negcache *negcache;

uint64_t shim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Extracts (family, ip, port) with IPv4-mapped IPv6 folded to IPv4. */
static bool dest_key(const struct sockaddr *sa, socklen_t len, int *family, uint8_t ip[16], uint16_t *port)
{
    memset(ip, 0, 16);
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        *family = AF_INET;
        memcpy(ip, &s4->sin_addr, 4);
        *port = ntohs(s4->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        *port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            *family = AF_INET;
            memcpy(ip, &s6->sin6_addr.s6_addr[12], 4);
        } else {
            *family = AF_INET6;
            memcpy(ip, &s6->sin6_addr, 16);
        }
        return true;
    }
    return false;
}

bool shim_nosst_has(const struct sockaddr *sa, socklen_t len)
{
    int family;
    uint8_t ip[16];
    uint16_t port;
    bool has = false;
    if (!negcache || !dest_key(sa, len, &family, ip, &port))
        return false;
    /* Port 0 stands for the whole host (its SST endpoint did not answer at all). */
    pthread_mutex_lock(&nc_lock);
    has = shim_negcache_has(negcache, family, ip, port, shim_now_ns()) ||
          shim_negcache_has(negcache, family, ip, 0, shim_now_ns());
    pthread_mutex_unlock(&nc_lock);
    return has;
}

void shim_nosst_put(const struct sockaddr *sa, socklen_t len)
{
    int family;
    uint8_t ip[16];
    uint16_t port;
    if (!negcache || !dest_key(sa, len, &family, ip, &port))
        return;
    pthread_mutex_lock(&nc_lock);
    shim_negcache_put(negcache, family, ip, port, shim_now_ns(), SHIM_NEGCACHE_TTL_NS);
    pthread_mutex_unlock(&nc_lock);
}

void shim_tcponly_put(const struct sockaddr *sa, socklen_t len, uint64_t ttl_ns)
{
    int family;
    uint8_t ip[16];
    uint16_t port;
    if (!negcache || ttl_ns == 0 || !dest_key(sa, len, &family, ip, &port) || port == 0)
        return;
    pthread_mutex_lock(&nc_lock);
    uint64_t now = shim_now_ns();
    if (!shim_negcache_has(negcache, family, ip, port, now))
        shim_negcache_put(negcache, family, ip, port, now, ttl_ns);
    pthread_mutex_unlock(&nc_lock);
}

/* The shim's other locks are held across fork so a child never inherits one mid-update. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&nc_lock);
    shim_epollrec_lock();
}

static void fork_after(void)
{
    shim_epollrec_unlock();
    pthread_mutex_unlock(&nc_lock);
}

bool shim_peers_unresolved;
static pthread_once_t peers_once = PTHREAD_ONCE_INIT;

static int resolve_host(void *ctx, const char *host, uint8_t *families, uint8_t (*ips)[16], int max);

static void peers_resolve_once(void)
{
    char err[256];
    int saved = errno;
    shim_tls_guard++;
    if (shim_config_resolve(&shim_cfg, resolve_host, NULL, err, sizeof(err)) > 0)
        SHIM_WARN("%s", err);
    shim_tls_guard--;
    errno = saved;
    __atomic_store_n(&shim_peers_unresolved, false, __ATOMIC_RELEASE);
}

/* pthread_once: threads that connect meanwhile wait for the answer; glibc's once also
 * recovers in a child forked while another thread was resolving. */
void shim_peers_resolve_slow(void)
{
    pthread_once(&peers_once, peers_resolve_once);
}

static const char *env_get(void *ctx, const char *name)
{
    return getenv(name);
}

/* getaddrinfo's own sockets pass through the hooks untouched: the caller holds shim_tls_guard. */
static int resolve_host(void *ctx, const char *host, uint8_t *families, uint8_t (*ips)[16], int max)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res, *ai;
    int n = 0;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    for (ai = res; ai && n < max; ai = ai->ai_next) {
        memset(ips[n], 0, 16);
        if (ai->ai_family == AF_INET) {
            memcpy(ips[n], &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
        } else if (ai->ai_family == AF_INET6) {
            memcpy(ips[n], &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
        } else {
            continue;
        }
        families[n++] = (uint8_t)ai->ai_family;
    }
    freeaddrinfo(res);
    return n;
}

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        char msg[SHIM_PATH_MAX + 96];
        int n = snprintf(msg, sizeof(msg), "sstshim[%d] error: SST_LOG_FILE: cannot open '%s': %s; "
                         "the shim stays inactive\n", (int)getpid(), path, strerror(errno));
        ssize_t w = write(2, msg, (size_t)n);
        (void)w;
    }
    return fd;
}

__attribute__((constructor)) static void shim_init(void)
{
    char err[256];
    int log_fd = -1;

    shim_tls_guard++;
    if (shim_real_init() < 0) {
        SHIM_ERROR("cannot resolve libc's socket functions; the shim stays inactive");
        goto out;
    }
    int rc = shim_config_parse(&shim_cfg, env_get, NULL, err, sizeof(err));
    if (shim_cfg.log_file[0]) {
        log_fd = open_log(shim_cfg.log_file);
        if (log_fd < 0)
            goto out;
    }
    shim_log_setup(rc == 0 ? shim_cfg.log : SHIM_LOG_WARN, log_fd);
    if (rc < 0) {
        SHIM_ERROR("%s; the shim stays inactive", err);
        goto inert;
    }
    if (!shim_cfg.peers_set && !shim_cfg.listen_all && shim_cfg.n_listen == 0) {
        SHIM_DEBUG("SST_PEERS and SST_LISTEN unset: inactive");
        goto inert;
    }
    if (shim_cfg.mode == SHIM_MODE_OFF) {
        SHIM_INFO("SST_MODE=off: inactive");
        goto inert;
    }
    /* setuid/setgid programs: the loader already ignores LD_PRELOAD outside the system path;
     * if we got here anyway, trusting the caller's environment would be wrong. */
    if (getauxval(AT_SECURE)) {
        SHIM_WARN("setuid/setgid program: SST_* settings ignored, inactive");
        goto inert;
    }
    if (shim_fd_init() < 0) {
        SHIM_ERROR("cannot allocate the fd table; inactive");
        goto inert;
    }
    if (log_fd >= 0)
        shim_log_setup(shim_cfg.log, shim_fd_hide(log_fd, SHIM_FD_LOG));
    /* Names are resolved at the first connect() that needs them, not here: under `sstshim
     * bash` every ls and grep would otherwise ask DNS (or wait for it) at start. */
    shim_peers_unresolved = shim_config_has_names(&shim_cfg);
    negcache = shim_negcache_new();
    pthread_atfork(fork_prepare, fork_after, fork_after);
    shim_ev_install_atfork();
    shim_active = true;
    /* Accepted SST connections an exec'ing image passed on (server.c): their peers answer
     * here too.  Removed from the environment: the next exec passes on what survives it. */
    const char *acc = getenv(SHIM_SERVER_ENV);
    if (acc) {
        shim_server_inherit(acc);
        unsetenv(SHIM_SERVER_ENV);
    }
    if (shim_log_enabled(SHIM_LOG_INFO)) {
        char banner[1024];
        shim_config_banner(&shim_cfg, banner, sizeof(banner));
        SHIM_INFO("active: %s", banner);
    }
    goto out;
inert:
    if (log_fd >= 0) {
        shim_log_setup(SHIM_LOG_ERROR, -1);
        close(log_fd);
    }
out:
    shim_tls_guard--;
}

/* exit(): let the pumps send what the program wrote before the process goes (§2 of
 * docs/shim.md).  _exit() and fatal signals skip this, and lose unsent bytes. */
__attribute__((destructor)) static void shim_fini(void)
{
    if (!shim_active)
        return;
    shim_tls_guard++;
    shim_ev_flush_at_exit();
    shim_tls_guard--;
}
