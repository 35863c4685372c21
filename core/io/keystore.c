/* Host key files: load or create this host's identity, and pin peers' keys on first use. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "io/keystore.h"

#define MAX_NAME 255
#define HEXLEN 64

struct sst_keystore {
    char dir[4096];
    char last_error[SST_KEYSTORE_ERRLEN];
};

static void errf(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static int path_join(char *out, size_t len, const char *dir, const char *file)
{
    int n = snprintf(out, len, "%s/%s", dir, file);
    return n < 0 || (size_t)n >= len ? SST_ERR_INVAL : 0;
}

int sst_keystore_default_dir(char *buf, size_t len)
{
    const char *v = getenv(SST_KEYSTORE_ENV_DIR);
    int n;
    if (v && *v) {
        n = snprintf(buf, len, "%s", v);
    } else if ((v = getenv("XDG_CONFIG_HOME")) && *v) {
        n = snprintf(buf, len, "%s/sst", v);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : NULL;
        }
        if (!home)
            return SST_ERR_INVAL;
        n = snprintf(buf, len, "%s/.config/sst", home);
    }
    return n < 0 || (size_t)n >= len ? SST_ERR_INVAL : 0;
}

/* mkdir -p; only the last component gets 0700 (parents such as ~/.config keep 0755-style umask). */
static int mkdirs(const char *path, mode_t last_mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, last_mode) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    return stat(tmp, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

struct sst_keystore *sst_keystore_open(const char *dir, char *errbuf, size_t errlen)
{
    if (sodium_init() < 0) {
        errf(errbuf, errlen, "sst: libsodium failed to initialise");
        return NULL;
    }
    struct sst_keystore *ks = calloc(1, sizeof *ks);
    if (!ks) {
        errf(errbuf, errlen, "sst: out of memory");
        return NULL;
    }
    if (dir) {
        if (snprintf(ks->dir, sizeof ks->dir, "%s", dir) >= (int)sizeof ks->dir) {
            errf(errbuf, errlen, "sst: key directory path too long");
            free(ks);
            return NULL;
        }
    } else if (sst_keystore_default_dir(ks->dir, sizeof ks->dir) != 0) {
        errf(errbuf, errlen, "sst: no key directory: set $%s (or $XDG_CONFIG_HOME or $HOME)",
             SST_KEYSTORE_ENV_DIR);
        free(ks);
        return NULL;
    }
    if (mkdirs(ks->dir, 0700) != 0) {
        errf(errbuf, errlen, "sst: cannot create key directory %s: %s", ks->dir, strerror(errno));
        free(ks);
        return NULL;
    }
    return ks;
}

void sst_keystore_close(struct sst_keystore *ks)
{
    free(ks);
}

const char *sst_keystore_dir(const struct sst_keystore *ks)
{
    return ks->dir;
}

const char *sst_keystore_last_error(const struct sst_keystore *ks)
{
    return ks->last_error;
}

/* Parses exactly 64 hex digits (upper or lower case) into 32 bytes. */
static bool parse_hex32(const char *s, size_t len, uint8_t out[32])
{
    size_t bin_len = 0;
    const char *end = NULL;
    if (len != HEXLEN)
        return false;
    return sodium_hex2bin(out, 32, s, len, NULL, &bin_len, &end) == 0 && bin_len == 32 && end == s + len;
}

/* Writes a whole buffer to a new file created with `mode`; the data is on disk before the
 * final name appears (write tmp, fsync, link), so a crash never leaves a half-written key. */
static int write_new_file(const char *path, const char *data, size_t len, mode_t mode, char *errbuf, size_t errlen)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return SST_ERR_INVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        errf(errbuf, errlen, "sst: cannot create %s: %s", tmp, strerror(errno));
        return SST_ERR_IO;
    }
    bool ok = fchmod(fd, mode) == 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok) {
        unlink(tmp);
        errf(errbuf, errlen, "sst: cannot write %s: %s", tmp, strerror(saved));
        return SST_ERR_IO;
    }
    int rc = link(tmp, path);
    saved = errno;
    unlink(tmp);
    if (rc != 0) {
        if (saved == EEXIST)
            return SST_ERR_AGAIN; /* someone else created it first: use theirs */
        errf(errbuf, errlen, "sst: cannot create %s: %s", path, strerror(saved));
        return SST_ERR_IO;
    }
    return 0;
}

/* Reads at most cap-1 bytes of a small file into buf (NUL-terminated).  0, or -errno. */
static int read_small(const char *path, char *buf, size_t cap, size_t *len, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    ssize_t n = read(fd, buf, cap - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    *len = (size_t)n;
    return 0;
}

int sst_keystore_identity(struct sst_keystore *ks, struct sst_identity *out, char *errbuf, size_t errlen)
{
    char path[4200], pub[4200], buf[256];
    if (path_join(path, sizeof path, ks->dir, "host_key") || path_join(pub, sizeof pub, ks->dir, "host_key.pub"))
        return SST_ERR_INVAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t len = 0;
        struct stat st;
        int rc = read_small(path, buf, sizeof buf, &len, &st);
        if (rc == 0) {
            if (st.st_mode & 077) {
                errf(errbuf, errlen,
                     "sst: permissions %04o for %s are too open: the host secret key must not be "
                     "readable by others; run: chmod 600 %s",
                     (unsigned)(st.st_mode & 07777), path, path);
                sodium_memzero(buf, sizeof buf);
                return SST_ERR_IO;
            }
            while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                len--;
            bool ok = parse_hex32(buf, len, out->sk);
            sodium_memzero(buf, sizeof buf);
            if (!ok || crypto_scalarmult_base(out->pk, out->sk) != 0) {
                sodium_memzero(out, sizeof *out);
                errf(errbuf, errlen,
                     "sst: host key file %s is corrupt (expected 64 hex digits and a newline); "
                     "restore it from a backup, or move it away to create a new identity (peers "
                     "that pinned the old key will then refuse this host until they forget it)",
                     path);
                return SST_ERR_IO;
            }
            return 0;
        }
        if (rc != -ENOENT) {
            errf(errbuf, errlen, "sst: cannot read host key %s: %s", path, strerror(-rc));
            return SST_ERR_IO;
        }
        /* First use: create the identity. */
        struct sst_identity id;
        sst_identity_generate(&id, NULL, NULL);
        char line[HEXLEN + 2];
        sodium_bin2hex(line, sizeof line, id.sk, 32);
        line[HEXLEN] = '\n';
        rc = write_new_file(path, line, HEXLEN + 1, 0600, errbuf, errlen);
        sodium_memzero(line, sizeof line);
        if (rc == 0) {
            sodium_bin2hex(line, sizeof line, id.pk, 32);
            line[HEXLEN] = '\n';
            /* The .pub copy is a convenience; failing to write it does not fail the identity. */
            unlink(pub);
            (void)write_new_file(pub, line, HEXLEN + 1, 0644, NULL, 0);
            *out = id;
            sodium_memzero(&id, sizeof id);
            return 0;
        }
        sodium_memzero(&id, sizeof id);
        if (rc != SST_ERR_AGAIN)
            return rc;
        /* Lost a creation race: loop once to read the winner's key. */
    }
    errf(errbuf, errlen, "sst: cannot create or read host key %s", path);
    return SST_ERR_IO;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME || name[0] == '#')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
            return false;
    return true;
}

/* One parsed known_hosts line. */
struct pin_line {
    const char *name;
    size_t name_len;
    uint8_t pk[32];
    bool blank;   /* comment or empty */
};

/* Splits "name hex" (one space or tab run between, trailing whitespace allowed). */
static bool parse_line(const char *line, size_t len, struct pin_line *pl)
{
    memset(pl, 0, sizeof *pl);
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len || line[i] == '#') {
        pl->blank = true;
        return true;
    }
    size_t start = i;
    while (i < len && line[i] != ' ' && line[i] != '\t')
        i++;
    pl->name = line + start;
    pl->name_len = i - start;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    return pl->name_len <= MAX_NAME && parse_hex32(line + i, len - i, pl->pk);
}

/* Reads the whole known_hosts (missing file = empty).  *data is malloc'ed; 0 or SST_ERR_IO. */
static int load_known(const char *path, char **data, size_t *len, char *errbuf, size_t errlen)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        errf(errbuf, errlen, "sst: cannot read %s: %s", path, strerror(errno));
        return SST_ERR_IO;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n < cap - 1)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        errf(errbuf, errlen, "sst: cannot read %s", path);
        return SST_ERR_IO;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        free(buf);
        errf(errbuf, errlen,
             "sst: %s is corrupt (contains NUL bytes); fix or delete it (all pins are then forgotten)", path);
        return SST_ERR_IO;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* Rewrites known_hosts without the lines for `name`, plus an optional new pin; atomic rename. */
static int rewrite_known(const char *path, const char *data, size_t len, const char *name,
                         const uint8_t *new_pk, int *removed, char *errbuf, size_t errlen)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return SST_ERR_INVAL;
    FILE *f = fopen(tmp, "we");
    if (f && fchmod(fileno(f), 0600) != 0) {
        fclose(f);
        f = NULL;
    }
    if (!f) {
        errf(errbuf, errlen, "sst: cannot write %s: %s", tmp, strerror(errno));
        return SST_ERR_IO;
    }
    *removed = 0;
    size_t nlen = strlen(name);
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(data + off, '\n', len - off);
        size_t l = nl ? (size_t)(nl - (data + off)) : len - off;
        struct pin_line pl;
        bool parsed = parse_line(data + off, l, &pl);
        if (parsed && !pl.blank && pl.name_len == nlen && memcmp(pl.name, name, nlen) == 0)
            (*removed)++;
        else
            fprintf(f, "%.*s\n", (int)l, data + off);
        off += l + (nl ? 1 : 0);
    }
    if (new_pk) {
        char hex[HEXLEN + 1];
        sodium_bin2hex(hex, sizeof hex, new_pk, 32);
        fprintf(f, "%s %s\n", name, hex);
    }
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        errf(errbuf, errlen, "sst: cannot update %s: %s", path, strerror(errno));
        unlink(tmp);
        return SST_ERR_IO;
    }
    return 0;
}

/* Validates a peer name and reads known_hosts for a lookup or an edit: its path into path,
 * its contents into *data (NULL if the file does not exist yet). */
static int open_known_for(const struct sst_keystore *ks, const char *name, char *path, size_t pathlen,
                          char **data, size_t *len, char *errbuf, size_t errlen)
{
    if (!name_ok(name)) {
        errf(errbuf, errlen, "sst: invalid peer name for known_hosts (empty, too long, or whitespace)");
        return SST_ERR_INVAL;
    }
    if (path_join(path, pathlen, ks->dir, "known_hosts"))
        return SST_ERR_INVAL;
    return load_known(path, data, len, errbuf, errlen);
}

int sst_keystore_check_peer(struct sst_keystore *ks, const char *name, const uint8_t pk[32], char *errbuf,
                            size_t errlen)
{
    char path[4200];
    char *data;
    size_t len;
    int rc = open_known_for(ks, name, path, sizeof path, &data, &len, errbuf, errlen);
    if (rc)
        return rc;
    size_t nlen = strlen(name);
    int lineno = 0, pinned_line = 0;
    uint8_t pinned[32];
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(data + off, '\n', len - off);
        size_t l = nl ? (size_t)(nl - (data + off)) : len - off;
        lineno++;
        struct pin_line pl;
        if (!parse_line(data + off, l, &pl)) {
            /* A damaged line might be this peer's pin: refusing is the only safe answer. */
            errf(errbuf, errlen,
                 "sst: %s line %d is malformed (expected \"NAME <64 hex digits>\"); fix or delete "
                 "that line",
                 path, lineno);
            free(data);
            return SST_ERR_IO;
        }
        if (!pl.blank && pl.name_len == nlen && memcmp(pl.name, name, nlen) == 0 && !pinned_line) {
            pinned_line = lineno;
            memcpy(pinned, pl.pk, 32);
        }
        off += l + (nl ? 1 : 0);
    }
    if (pinned_line && sodium_memcmp(pinned, pk, 32) == 0) {
        free(data);
        return 0;
    }
    if (pinned_line) {
        const char *accept = getenv(SST_KEYSTORE_ENV_ACCEPT);
        if (accept && strcmp(accept, name) == 0) {
            int removed;
            rc = rewrite_known(path, data, len, name, pk, &removed, errbuf, errlen);
            free(data);
            return rc;
        }
        char old_fp[65], new_fp[65];
        sst_identity_fingerprint(pinned, old_fp);
        sst_identity_fingerprint(pk, new_fp);
        errf(errbuf, errlen,
             "sst: HOST KEY FOR %s HAS CHANGED -- connection refused.\n"
             "  pinned key:    %s (%s line %d)\n"
             "  presented key: %s\n"
             "Someone may be intercepting the connection, or the host got a new identity.  If you\n"
             "trust the new key, remove line %d from %s (or run `sstctl forget %s`), or\n"
             "set %s=%s for one run to re-pin it, then reconnect.",
             name, old_fp, path, pinned_line, new_fp, pinned_line, path, name, SST_KEYSTORE_ENV_ACCEPT, name);
        free(data);
        return SST_ERR_IDENTITY;
    }
    free(data);
    /* First use: append the pin (O_APPEND keeps concurrent writers' lines whole). */
    char line[MAX_NAME + HEXLEN + 3], hex[HEXLEN + 1];
    sodium_bin2hex(hex, sizeof hex, pk, 32);
    int n = snprintf(line, sizeof line, "%s %s\n", name, hex);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, line, (size_t)n) != n) {
        errf(errbuf, errlen, "sst: cannot add %s to %s: %s", name, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SST_ERR_IO;
    }
    close(fd);
    return 0;
}

int sst_keystore_forget(struct sst_keystore *ks, const char *name, char *errbuf, size_t errlen)
{
    char path[4200];
    char *data;
    size_t len;
    int rc = open_known_for(ks, name, path, sizeof path, &data, &len, errbuf, errlen);
    if (rc)
        return rc;
    if (!data)
        return 0;
    int removed = 0;
    rc = rewrite_known(path, data, len, name, NULL, &removed, errbuf, errlen);
    free(data);
    return rc ? rc : removed;
}

int sst_keystore_verify_cb(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated)
{
    struct sst_keystore *ks = ctx;
    /* Only the initiator pins (it chose whom to talk to); a responder accepts any initiator. */
    if (!we_initiated)
        return 0;
    char name[64];
    if (peer->family == SST_AF_INET4)
        inet_ntop(AF_INET, peer->ip, name, sizeof name);
    else if (peer->family == SST_AF_INET6)
        inet_ntop(AF_INET6, peer->ip, name, sizeof name);
    else
        return SST_ERR_IDENTITY;
    int rc = sst_keystore_check_peer(ks, name, pk, ks->last_error, sizeof ks->last_error);
    return rc == 0 ? 0 : SST_ERR_IDENTITY;
}
