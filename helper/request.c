/* The words of a control request line (docs/helper.md, "Control protocol"): splitting a line and
 * reading its numeric arguments.  Pure functions, apart from the daemon's state, so the fuzz
 * target tests/fuzz/fuzz_control.c reaches exactly what sstd runs on a client's bytes. */
#include "sstd.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

unsigned sstd_request_split(char *line, char *w[SSTD_REQ_WORDS])
{
    char *save = NULL;
    unsigned n = 0;
    for (unsigned i = 0; i < SSTD_REQ_WORDS; i++) {
        w[i] = strtok_r(i == 0 ? line : NULL, " \t\r", &save);
        n += w[i] != NULL;
    }
    return n;
}

bool sstd_request_long(const char *s, long min, long max, long *out)
{
    char *end;
    if (!s)
        return false;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > max)   /* "": no number (a word's empty tail) */
        return false;
    *out = v;
    return true;
}

int sstd_request_utimeout(const char *w)
{
    long ms;
    if (strncmp(w, "UTIMEOUT=", 9) != 0 || !sstd_request_long(w + 9, 0, INT_MAX, &ms))
        return -1;
    return (int)ms;
}

bool sstd_request_keepalive(const char *w, int ka[3])
{
    if (strncmp(w, "KEEPALIVE=", 10) != 0)
        return false;
    /* Exactly three decimal numbers and two commas, read in place: a copy cut to a buffer, or
     * a tokenizer that skips empty fields, took ",10,2,3" or a long word with a fourth field. */
    const char *p = w + 10;
    long v[3];
    for (int i = 0; i < 3; i++) {
        char *end;
        if (*p < '0' || *p > '9')
            return false;
        errno = 0;
        v[i] = strtol(p, &end, 10);
        if (errno != 0 || v[i] > INT_MAX || *end != (i < 2 ? ',' : '\0'))
            return false;
        p = end + 1;
    }
    if (v[0] != 0 && (v[1] == 0 || v[2] == 0))
        return false;
    for (int i = 0; i < 3; i++)
        ka[i] = (int)v[i];
    return true;
}

bool sstd_request_devino(const char *a, const char *b, unsigned long long *dev, unsigned long long *ino)
{
    char *e1, *e2;
    if (!a || !b)
        return false;
    errno = 0;
    *dev = strtoull(a, &e1, 10);
    *ino = strtoull(b, &e2, 10);
    return !errno && !*e1 && !*e2;
}

bool sstd_request_notify(char *const w[4], int *fd, unsigned long long *dev, unsigned long long *ino)
{
    long f;
    if (!w[0] || strcmp(w[0], "RESET") != 0 || !sstd_request_long(w[1], 0, INT_MAX, &f) ||
        !sstd_request_devino(w[2], w[3], dev, ino))
        return false;
    *fd = (int)f;
    return true;
}
