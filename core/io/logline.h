/* One printable log line from any text: shared by the shim's log (shim/log.c) and sstd's
 * (helper/log.c), whose messages quote what neither controls -- environment values, requests of
 * local clients, a peer's strings, sstd's replies -- and whose newline or terminal escape must
 * not forge log lines or reach the terminal of whoever reads the log. */
#ifndef SST_IO_LOGLINE_H
#define SST_IO_LOGLINE_H

#include <stddef.h>

#include "types.h"

/* Copies text into out (len bytes with its NUL, cut short if need be, never inside an escape)
 * as one printable line: control bytes and DEL become \n, \r, \t or \xHH, so the escape also
 * shows what the text really was.  Bytes from 0x80 up (UTF-8) are kept. */
SST_API void sst_log_one_line(char *out, size_t len, const char *text);

#endif
