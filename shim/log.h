/* Shim logging: one line per message to SST_LOG_FILE or stderr, filtered by SST_LOG. */
#ifndef SHIM_LOG_H
#define SHIM_LOG_H

#include "config.h"

/* Sets the threshold and destination fd (-1 = stderr). */
void shim_log_setup(enum shim_loglevel level, int fd);
bool shim_log_enabled(enum shim_loglevel level);
void shim_log(enum shim_loglevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every line is made one printable line by sst_log_one_line (core/io/logline.h), which
 * config.c also uses for its messages. */

#define SHIM_ERROR(...) shim_log(SHIM_LOG_ERROR, __VA_ARGS__)
#define SHIM_WARN(...) shim_log(SHIM_LOG_WARN, __VA_ARGS__)
#define SHIM_INFO(...) shim_log(SHIM_LOG_INFO, __VA_ARGS__)
#define SHIM_DEBUG(...)                                    \
    do {                                                   \
        if (shim_log_enabled(SHIM_LOG_DEBUG))              \
            shim_log(SHIM_LOG_DEBUG, __VA_ARGS__);         \
    } while (0)

#endif
