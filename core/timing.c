/* Monotonic clock. */
#include "core/timing.h"

#include <time.h>

uint64_t core_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double core_now_s(void) { return (double)core_now_ns() * 1e-9; }
