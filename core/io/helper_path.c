/* The helper daemon's default control socket path, and its capability file (helper_path.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helper_path.h"

SST_API int sst_helper_default_socket(char *buf, size_t len, uid_t uid, const char *xdg)
{
    int n;
    if (uid == 0)
        n = snprintf(buf, len, "/run/sst/sstd.sock");
    else if (xdg && *xdg == '/')
        n = snprintf(buf, len, "%s/sst/sstd.sock", xdg);
    else
        n = snprintf(buf, len, "/tmp/sst-%u/sstd.sock", (unsigned)uid);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

SST_API int sst_helper_caps_path(char *buf, size_t len, const char *socket_path)
{
    size_t n = strlen(socket_path);
    if (n > 5 && strcmp(socket_path + n - 5, ".sock") == 0)
        n -= 5;
    int r = snprintf(buf, len, "%.*s.caps", (int)n, socket_path);
    return r > 0 && (size_t)r < len ? 0 : -1;
}

SST_API bool sst_helper_caps_lookup(const char *text, const char *key, uint64_t now, uint64_t *expires)
{
    static const char magic[] = "sstd-caps 1\n";
    size_t klen = strlen(key);
    if (strncmp(text, magic, sizeof magic - 1) != 0 || klen == 0)
        return false;
    for (const char *l = text + sizeof magic - 1; *l; ) {
        const char *eol = strchr(l, '\n');
        if (!eol)
            return false;   /* a torn last line is not trusted (the writer renames whole files) */
        if ((size_t)(eol - l) > klen && strncmp(l, key, klen) == 0 && l[klen] == ' ') {
            char *end;
            unsigned long long t = strtoull(l + klen + 1, &end, 10);
            if (end != eol || t <= now)
                return false;
            *expires = t;
            return true;
        }
        l = eol + 1;
    }
    return false;
}
