/* Philox4x32-10 counter-based generator. */
#include "core/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void core_rng_block(uint64_t seed, uint64_t stream, uint64_t index, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

uint64_t core_rng_at(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint32_t b[4];
    core_rng_block(seed, stream, index, b);
    return ((uint64_t)b[1] << 32) | b[0];
}

void core_rng_init(core_rng_t *r, uint64_t seed, uint64_t stream)
{
    r->seed = seed;
    r->stream = stream;
    r->counter = 0;
    r->used = 4;
}

uint32_t core_rng_u32(core_rng_t *r)
{
    if (r->used >= 4) {
        core_rng_block(r->seed, r->stream, r->counter++, r->buf);
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t core_rng_u64(core_rng_t *r)
{
    uint64_t lo = core_rng_u32(r);
    uint64_t hi = core_rng_u32(r);
    return (hi << 32) | lo;
}

float core_rng_uniform(core_rng_t *r) { return (float)(core_rng_u32(r) >> 8) * 0x1.0p-24f; }

double core_rng_uniform_f64(core_rng_t *r) { return (double)(core_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t core_rng_below(core_rng_t *r, uint64_t n)
{
    /* Rejection keeps the result unbiased for any n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = core_rng_u64(r);
    } while (x >= limit);
    return x % n;
}

double core_rng_normal(core_rng_t *r)
{
    double u1 = core_rng_uniform_f64(r);
    double u2 = core_rng_uniform_f64(r);
    if (u1 < 1e-300) {
        u1 = 1e-300;
    }
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
