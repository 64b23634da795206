/* Batch assembly (pipeline/batcher.h): gather records under one read snapshot, copy what the
 * batch needs, end the snapshot, then decode + augment each sample with its own RNG stream. */
#include "pipeline/batcher.h"

#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "pipeline/record.h"
#include "pipeline/sampler.h"

typedef struct sample_s {
    uint64_t record;  /* store sequence number */
    size_t img_off;   /* into scratch */
    size_t img_len;
    uint32_t lab_off; /* into labels */
    uint32_t n_label;
    int bad_record;
} sample_t;

struct pl_batcher_s {
    pl_store_t *st;
    pl_store_reader_t *rd;
    pl_img_ctx_t *img;
    sample_t *samples;
    uint32_t samples_cap;
    uint8_t *scratch; /* copied image bytes */
    size_t scratch_len, scratch_cap;
    uint32_t *labels;
    uint32_t labels_cap;
    uint32_t n, nnz;
    int gathered;
    pl_batch_spec_t spec;
    pl_batcher_stats_t stats;
};

uint64_t pl_batch_sample_stream(uint64_t epoch, uint64_t record)
{
    /* A Philox output keyed by the pair: distinct (epoch, record) pairs get unrelated streams. */
    return core_rng_at(0x5343424154434821ull, epoch, record);
}

int pl_batcher_new(pl_store_t *st, pl_batcher_t **out)
{
    pl_batcher_t *b = core_calloc(1, sizeof(*b));
    if (b == NULL) {
        return CORE_ERR(ENOMEM);
    }
    b->st = st;
    int rc = pl_store_reader_open(st, &b->rd);
    if (rc == 0) {
        rc = pl_img_ctx_new(&b->img);
    }
    if (rc < 0) {
        pl_batcher_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void pl_batcher_free(pl_batcher_t *b)
{
    if (b == NULL) {
        return;
    }
    pl_store_reader_close(b->rd);
    pl_img_ctx_free(b->img);
    core_free(b->samples);
    core_free(b->scratch);
    core_free(b->labels);
    core_free(b);
}

const pl_batcher_stats_t *pl_batcher_stats(const pl_batcher_t *b) { return &b->stats; }

static int grow(void **p, size_t need, size_t elem, size_t *cap)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        n *= 2;
    }
    size_t bytes = 0;
    if (core_size_mul(n, elem, &bytes) < 0) {
        return CORE_ETOO_LARGE;
    }
    void *q = core_realloc(*p, bytes);
    if (q == NULL) {
        return CORE_ERR(ENOMEM);
    }
    *p = q;
    *cap = n;
    return 0;
}

static int gather_one(pl_batcher_t *b, sample_t *s)
{
    const uint8_t *val = NULL;
    size_t len = 0;
    int rc = pl_store_get(b->rd, s->record, &val, &len);
    if (rc < 0) {
        return rc;
    }
    pl_record_t rec;
    s->lab_off = b->nnz;
    if (pl_record_decode(val, len, &rec) < 0) {
        /* Deterministic stand-in: the batch stays complete; counted and logged at render. */
        s->bad_record = 1;
        s->n_label = 0;
        s->img_len = 0;
        return 0;
    }
    s->bad_record = 0;
    size_t cap = b->labels_cap;
    rc = grow((void **)&b->labels, (size_t)b->nnz + rec.n_label, sizeof(uint32_t), &cap);
    if (rc < 0) {
        return rc;
    }
    b->labels_cap = (uint32_t)cap;
    memcpy(b->labels + b->nnz, rec.label, rec.n_label * sizeof(uint32_t));
    s->n_label = rec.n_label;
    b->nnz += rec.n_label;
    rc = grow((void **)&b->scratch, b->scratch_len + rec.image_len, 1, &b->scratch_cap);
    if (rc < 0) {
        return rc;
    }
    /* Copy out of the LMDB page: the view dies with the read transaction. */
    memcpy(b->scratch + b->scratch_len, rec.image, rec.image_len);
    s->img_off = b->scratch_len;
    s->img_len = rec.image_len;
    b->scratch_len += rec.image_len;
    b->stats.image_bytes += rec.image_len;
    return 0;
}

int pl_batcher_gather(pl_batcher_t *b, const pl_batch_spec_t *spec, uint32_t *nnz_out)
{
    b->gathered = 0;
    b->n = 0;
    b->nnz = 0;
    b->scratch_len = 0;
    pl_sampler_t smp;
    int rc = pl_sampler_init(&smp, spec->seed, spec->epoch, spec->n_records, spec->rank,
                             spec->world, spec->batch);
    if (rc < 0) {
        return rc;
    }
    if (spec->position > smp.per_rank || smp.per_rank - spec->position < spec->batch) {
        return CORE_ECONFIG;
    }
    rc = pl_aug_check(&spec->aug);
    if (rc < 0) {
        return rc;
    }
    size_t cap = b->samples_cap;
    rc = grow((void **)&b->samples, spec->batch, sizeof(sample_t), &cap);
    if (rc < 0) {
        return rc;
    }
    b->samples_cap = (uint32_t)cap;
    for (uint32_t i = 0; i < spec->batch; i++) {
        sample_t *s = &b->samples[i];
        memset(s, 0, sizeof(*s));
        s->record = pl_sampler_record(&smp, spec->position + i);
        rc = gather_one(b, s);
        if (rc < 0) {
            break;
        }
    }
    /* End the read snapshot before any decoding: nothing points into LMDB pages any more. */
    pl_store_reader_reset(b->rd);
    if (rc < 0) {
        return rc;
    }
    b->n = spec->batch;
    b->spec = *spec;
    b->gathered = 1;
    *nnz_out = b->nnz;
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

int pl_batcher_render(pl_batcher_t *b, const pl_batch_out_t *out)
{
    if (!b->gathered) {
        return CORE_ESTATE;
    }
    const pl_aug_t *aug = &b->spec.aug;
    size_t per = (size_t)aug->out_w * aug->out_h * 3;
    size_t need = 0;
    if (core_size_mul(per, b->n, &need) < 0 || need > out->images_cap) {
        return CORE_ETOO_LARGE;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        const sample_t *s = &b->samples[i];
        uint8_t *img = out->images + (size_t)i * per;
        if (s->bad_record) {
            memset(img, 128, per);
            b->stats.bad_records++;
            core_log_warn("batcher: record %llu does not decode; sent as a grey sample",
                          (unsigned long long)s->record);
        } else {
            core_rng_t rng;
            core_rng_init(&rng, b->spec.seed, pl_batch_sample_stream(b->spec.epoch, s->record));
            pl_img_err_t ierr;
            memset(&ierr, 0, sizeof(ierr));
            int rc = pl_img_decode_augment(b->img, b->scratch + s->img_off, s->img_len, NULL,
                                           aug, &rng, img, per, NULL, &ierr);
            if (rc < 0) {
                memset(img, 128, per);
                b->stats.bad_images++;
                core_log_warn("batcher: record %llu image does not decode (%s: %s); sent grey",
                              (unsigned long long)s->record, core_err_name(rc), ierr.text);
            }
        }
        put_u32(out->label_offsets + 4 * (size_t)i, s->lab_off);
        for (uint32_t j = 0; j < s->n_label; j++) {
            put_u32(out->label_ids + 4 * ((size_t)s->lab_off + j), b->labels[s->lab_off + j]);
        }
        if (out->keys != NULL) {
            put_u64(out->keys + 8 * (size_t)i, s->record);
        }
    }
    put_u32(out->label_offsets + 4 * (size_t)b->n, b->nnz);
    b->stats.batches++;
    b->stats.samples += b->n;
    b->gathered = 0;
    return 0;
}
