/* Batch assembly for the data service: sampler -> store read -> decode + augment -> a batch laid
 * out as the wire protocol's BATCH arrays (uint8 RGB NHWC images, u32 LE CSR label offsets and
 * ids, optional u64 LE record keys), written into caller-provided memory.
 *
 * A batch is a pure function of (spec, store contents): the records are chosen by the epoch
 * permutation (pipeline/sampler.h) and every sample draws its augmentation from its own counter-
 * based RNG stream, core_rng_init(seed, pl_batch_sample_stream(epoch, record)), never from a
 * shared generator. So the same spec gives bit-identical bytes on any thread, in any order, with
 * any number of workers.
 *
 * Record ids are store sequence numbers: the store numbers records 0, 1, 2, ... in commit order,
 * so the epoch snapshot of n records is exactly sequences [0, n).
 *
 * Two phases, because the frame size depends on the label count: pl_batcher_gather reads the
 * batch's records in one read snapshot, copies what it needs (image bytes, labels, keys) into the
 * batcher's scratch and ends the read transactions before returning (LMDB views never outlive
 * it); the caller then sizes its output from n and nnz and calls pl_batcher_render, which decodes
 * without holding any transaction.
 *
 * Threads: a pl_batcher_t belongs to one thread at a time (it owns a store reader and a decode
 * context); any number of batchers may work on one store concurrently.
 * Errors: 0 or a negative code from core/err.h. */
#ifndef PL_BATCHER_H
#define PL_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/augment.h"
#include "pipeline/store.h"

typedef struct pl_batch_spec_s {
    uint64_t seed;
    uint64_t epoch;
    uint64_t n_records; /* the epoch's snapshot size */
    uint32_t rank, world, batch;
    uint64_t position; /* first sample in this rank's slice; position + batch <= per-rank size */
    pl_aug_t aug;      /* output size, crop, flip, interpolation, train/eval */
} pl_batch_spec_t;

/* Where render writes. Arrays are little-endian, unaligned access is fine. */
typedef struct pl_batch_out_s {
    uint8_t *images; /* batch * out_h * out_w * 3 bytes */
    size_t images_cap;
    uint8_t *label_offsets; /* (n + 1) u32 */
    uint8_t *label_ids;     /* nnz u32 */
    uint8_t *keys;          /* n u64 (store sequence numbers), or NULL */
} pl_batch_out_t;

typedef struct pl_batcher_s pl_batcher_t;

/* Counters of one batcher (summed over its calls). */
typedef struct pl_batcher_stats_s {
    uint64_t batches, samples;
    uint64_t bad_records; /* record failed to decode: sample is grey with no labels */
    uint64_t bad_images;  /* image failed to decode: sample is grey, labels kept */
    uint64_t image_bytes; /* encoded bytes read */
} pl_batcher_stats_t;

/* Creates a batcher reading `st` (borrowed; must outlive the batcher). Errors: -ENOMEM. */
int pl_batcher_new(pl_store_t *st, pl_batcher_t **out);
/* Frees it; NULL is a no-op. */
void pl_batcher_free(pl_batcher_t *b);

/* Phase 1: selects and reads the batch's records. On success *nnz_out is the total label count
 * (the batch has spec->batch samples). Errors: CORE_ECONFIG (spec out of range: bad rank/world,
 * position + batch beyond the rank's slice, bad aug), CORE_ENOT_FOUND (a record of the snapshot
 * is missing: the snapshot exceeds the store), store read errors, -ENOMEM. */
int pl_batcher_gather(pl_batcher_t *b, const pl_batch_spec_t *spec, uint32_t *nnz_out);

/* Phase 2: decodes and augments the gathered samples into `out`. A sample whose record or image
 * cannot be decoded (which a verified store never holds) becomes a mid-grey (128) image, logged
 * and counted, so a batch is always complete and deterministic. Errors: CORE_ESTATE (no gather
 * before), CORE_ETOO_LARGE (images_cap too small). */
int pl_batcher_render(pl_batcher_t *b, const pl_batch_out_t *out);

/* Counters; borrowed, valid until the next call on b. */
const pl_batcher_stats_t *pl_batcher_stats(const pl_batcher_t *b);

/* The RNG stream of record `record` in `epoch` (a keyed mix of both). Pure. */
uint64_t pl_batch_sample_stream(uint64_t epoch, uint64_t record);

#endif
