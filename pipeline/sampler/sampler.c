/* Keyed permutation (Feistel + cycle-walking) and the per-rank epoch slice. */
#include "pipeline/sampler.h"

#include "core/err.h"
#include "core/rng.h"

#define FEISTEL_ROUNDS 6

void pl_perm_init(pl_perm_t *p, uint64_t n, uint64_t seed, uint64_t epoch)
{
    p->n = n;
    uint64_t bits = 0;
    while (bits < 64 && (n - 1) >> bits != 0 && n > 1) {
        bits++;
    }
    /* An even split; at least one bit per half so tiny domains still mix. */
    uint64_t half = (bits + 1) / 2;
    if (half == 0) {
        half = 1;
    }
    p->half_bits = half;
    p->half_mask = (half >= 64) ? UINT64_MAX : ((uint64_t)1 << half) - 1;
    p->key = core_rng_at(seed, 0x5eed5a4d1e700000ull ^ epoch, 0);
}

static uint64_t feistel(const pl_perm_t *p, uint64_t x)
{
    uint64_t left = (x >> p->half_bits) & p->half_mask;
    uint64_t right = x & p->half_mask;
    for (uint64_t r = 0; r < FEISTEL_ROUNDS; r++) {
        /* Philox as the round function: keyed by the permutation key, counter = (right, r). */
        uint64_t f = core_rng_at(p->key, r, right) & p->half_mask;
        uint64_t next = left ^ f;
        left = right;
        right = next;
    }
    return (left << p->half_bits) | right;
}

uint64_t pl_perm_apply(const pl_perm_t *p, uint64_t i)
{
    /* The Feistel network permutes [0, 4^half); walking the cycle until we land inside [0, n)
     * keeps it a bijection of [0, n). The domain is < 4n, so the expected walk is short. */
    uint64_t x = i;
    do {
        x = feistel(p, x);
    } while (x >= p->n);
    return x;
}

int pl_sampler_init(pl_sampler_t *s, uint64_t seed, uint64_t epoch, uint64_t n_records,
                    uint32_t rank, uint32_t world, uint32_t batch)
{
    if (world == 0 || rank >= world || batch == 0) {
        return CORE_ECONFIG;
    }
    pl_perm_init(&s->perm, n_records, seed, epoch);
    s->n_records = n_records;
    s->rank = rank;
    s->world = world;
    s->batch = batch;
    s->epoch_batches = n_records / ((uint64_t)world * batch);
    s->per_rank = s->epoch_batches * batch;
    return 0;
}

uint64_t pl_sampler_record(const pl_sampler_t *s, uint64_t position)
{
    return pl_perm_apply(&s->perm, position * s->world + s->rank);
}
