/* Monotonic clock helpers. */
#ifndef CORE_TIMING_H
#define CORE_TIMING_H

#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t core_now_ns(void);
/* Seconds (double) on CLOCK_MONOTONIC. */
double core_now_s(void);

#endif
