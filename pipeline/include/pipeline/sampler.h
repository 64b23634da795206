/* The epoch sampler: a keyed pseudo-random permutation of an epoch's record ids in O(1) memory
 * (a Feistel network over the next power-of-four domain with cycle-walking), split between ranks.
 *
 * Epoch e of a run with seed s visits record ids 0..n-1 (the epoch's snapshot) in the order
 * perm_{s,e}. Rank r of W takes global positions r, r+W, r+2W, ... so ranks are disjoint and
 * together cover the epoch; every rank gets the same number of full batches,
 * floor(n / (W*B)), and the remainder of the epoch is dropped (as DDP loaders do with
 * partial=False). The cursor (epoch, position) counts samples taken by this rank in its slice.
 * Everything is a pure function of its inputs: thread-safe, and the same (seed, epoch, n, rank,
 * world, position) always gives the same record. */
#ifndef PL_SAMPLER_H
#define PL_SAMPLER_H

#include <stdint.h>

typedef struct pl_perm_s {
    uint64_t n;         /* domain size */
    uint64_t half_bits; /* bits per Feistel half */
    uint64_t half_mask;
    uint64_t key;
} pl_perm_t;

/* A bijection of [0, n) keyed by (seed, epoch). n may be 0 (no elements). */
void pl_perm_init(pl_perm_t *p, uint64_t n, uint64_t seed, uint64_t epoch);
/* The image of i < n. Expected O(1) (cycle-walking over a domain at most 4x n). */
uint64_t pl_perm_apply(const pl_perm_t *p, uint64_t i);

typedef struct pl_sampler_s {
    pl_perm_t perm;
    uint64_t n_records;
    uint32_t rank, world, batch;
    uint64_t per_rank;      /* samples this rank takes in the epoch (full batches only) */
    uint64_t epoch_batches; /* per_rank / batch */
} pl_sampler_t;

/* Returns 0, or CORE_ECONFIG for world == 0, rank >= world or batch == 0. */
int pl_sampler_init(pl_sampler_t *s, uint64_t seed, uint64_t epoch, uint64_t n_records,
                    uint32_t rank, uint32_t world, uint32_t batch);
/* The record id at this rank's `position` (< per_rank). */
uint64_t pl_sampler_record(const pl_sampler_t *s, uint64_t position);

#endif
