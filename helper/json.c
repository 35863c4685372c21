/* Small JSON helpers for the control protocol replies (strings escaped per RFC 8259 §7). */
#include "sstd.h"

#include <stdio.h>
#include <event2/buffer.h>

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xe0 && p[0] <= 0xef) {
        unsigned lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        unsigned lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* JSON text is UTF-8 (RFC 8259 §8.1): a byte that is not part of a well-formed sequence (a
 * client's own FORGET name or unknown command, echoed back) is written as U+FFFD, so strict
 * readers (python's json, jq) take every reply; the control fuzz target checks it. */
void sstd_json_str(struct evbuffer *out, const char *s)
{
    evbuffer_add(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (*p == '"' || *p == '\\')
            evbuffer_add_printf(out, "\\%c", *p);
        else if (*p < 0x20)
            evbuffer_add_printf(out, "\\u%04x", *p);
        else if (n == 0)
            evbuffer_add(out, "\\ufffd", 6);
        else
            evbuffer_add(out, p, n);
        p += n ? n : 1;
    }
    evbuffer_add(out, "\"", 1);
}

double sstd_ms(sst_time_t t)
{
    return t == SST_TIME_NEVER ? -1.0 : (double)t / 1e6;
}
