/* One printable log line (logline.h). */
#include "logline.h"

#include <stdio.h>
#include <string.h>

SST_API void sst_log_one_line(char *out, size_t len, const char *text)
{
    size_t o = 0;
    if (len == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[5];
        int n = 1;
        if (*p >= 0x20 && *p != 0x7f)
            esc[0] = (char)*p;
        else if (*p == '\n' || *p == '\r' || *p == '\t')
            n = snprintf(esc, sizeof(esc), "\\%c", *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
        else
            n = snprintf(esc, sizeof(esc), "\\x%02x", *p);
        if (o + (size_t)n >= len)
            break;
        memcpy(out + o, esc, (size_t)n);
        o += (size_t)n;
    }
    out[o] = '\0';
}
