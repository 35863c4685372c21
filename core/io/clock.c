/* sst_clock_now: the monotonic clock in nanoseconds for drivers (see clock.h). */
#include <time.h>

#include "clock.h"

SST_API sst_time_t sst_clock_now(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail for a valid clock id and pointer (clock_gettime(2)). */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (sst_time_t)ts.tv_sec * 1000000000ull + (sst_time_t)ts.tv_nsec;
}
