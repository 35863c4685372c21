/* Small JSON helpers for the control protocol replies (strings escaped per RFC 8259 §7). */
#include "sstd.h"

#include <stdio.h>
#include <event2/buffer.h>

void sstd_json_str(struct evbuffer *out, const char *s)
{
    evbuffer_add(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            evbuffer_add_printf(out, "\\%c", *p);
        else if (*p < 0x20)
            evbuffer_add_printf(out, "\\u%04x", *p);
        else
            evbuffer_add(out, p, 1);
    }
    evbuffer_add(out, "\"", 1);
}

double sstd_ms(sst_time_t t)
{
    return t == SST_TIME_NEVER ? -1.0 : (double)t / 1e6;
}
