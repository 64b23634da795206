/* Counter-based random numbers (Philox4x32-10, Salmon et al. 2011): the value at (seed, stream,
 * index) is a pure function of the three, so any worker can reproduce any draw without shared
 * state, and a saved (seed, stream, counter) resumes a sequence exactly. */
#ifndef CORE_RNG_H
#define CORE_RNG_H

#include <stdint.h>

typedef struct core_rng_s {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter; /* index of the next 128-bit block */
    uint32_t buf[4];  /* the current block */
    uint32_t used;    /* words of buf consumed; 4 means empty */
} core_rng_t;

/* The 128-bit block number `index` of (seed, stream). */
void core_rng_block(uint64_t seed, uint64_t stream, uint64_t index, uint32_t out[4]);

/* One 64-bit value at (seed, stream, index): block `index`'s first two words. */
uint64_t core_rng_at(uint64_t seed, uint64_t stream, uint64_t index);

void core_rng_init(core_rng_t *r, uint64_t seed, uint64_t stream);
uint32_t core_rng_u32(core_rng_t *r);
uint64_t core_rng_u64(core_rng_t *r);
/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
float core_rng_uniform(core_rng_t *r);
double core_rng_uniform_f64(core_rng_t *r);
/* Uniform integer in [0, n), unbiased (n > 0). */
uint64_t core_rng_below(core_rng_t *r, uint64_t n);
/* Standard normal (Box-Muller on two uniforms, no cached second value, so state stays simple). */
double core_rng_normal(core_rng_t *r);

#endif
