/* The driver's clock: CLOCK_MONOTONIC in nanoseconds, the time base every sst_time_t the real
 * drivers pass into the engine uses (the engine never reads a clock itself). */
#ifndef SST_IO_CLOCK_H
#define SST_IO_CLOCK_H

#include "types.h"

/* Nanoseconds since an arbitrary fixed point (CLOCK_MONOTONIC); never goes backwards. */
SST_API sst_time_t sst_clock_now(void);

#endif
