/* Golden tests against PyTorch (tests/ref/gen_vit_golden.py, files in tests/data/golden/): the
 * tiny ViT (32x32, patch 8, width 64, 2 layers, 2 heads, MLP 256, vocabulary 1000, batch 4) loaded
 * by OpenCLIP name through the checkpoint API, then
 *   - uint8 NHWC -> normalised float NCHW conversion,
 *   - forward: activations are internal, so pooled features and logits,
 *   - SuperClass loss: loss, cap_fq, num_samples,
 *   - backward: every parameter gradient,
 *   - 5 AdamW steps with warmup + cosine: lr and loss per step, every parameter and the buffers,
 * and the pure loss on the spec 2.5 worked example (V 49,408, B 2, two steps; float64 reference).
 *
 * Each tensor is compared elementwise with |a - ref| <= atol + rtol |ref| and by NMSE
 * (sum (a-ref)^2 / sum ref^2); a failure prints a per-tensor report of every tensor compared. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/adamw.h"
#include "nn/ckpt.h"
#include "nn/loss.h"
#include "nn/safetensors.h"
#include "nn/vit.h"
#include "t.h"

/* ---- comparison report --------------------------------------------------------------------- */

#define REPORT_MAX 128

typedef struct {
    char name[96];
    double max_abs, max_rel, nmse;
    size_t n_bad, worst;
    double worst_got, worst_ref;
    int ok;
} cmp_row_t;

typedef struct {
    cmp_row_t rows[REPORT_MAX];
    int n;
    int failed;
} report_t;

/* Compares got[n] (float or double) to the golden tensor `ref` (F32 or F64, numel n). */
static void cmp_any(report_t *r, const char *name, const void *got, int got_f64,
                    const nn_st_tensor_t *ref, size_t n, double atol, double rtol, double max_nmse)
{
    T_ASSERT(r->n < REPORT_MAX);
    if (ref->numel != n) {
        T_FAIL("%s: golden has %zu elements, model %zu", name, ref->numel, n);
    }
    cmp_row_t *c = &r->rows[r->n++];
    memset(c, 0, sizeof *c);
    int name_len = snprintf(c->name, sizeof c->name, "%s", name);
    T_ASSERT(name_len >= 0 && (size_t)name_len < sizeof c->name);
    double se = 0, sr = 0, worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double a, b;
        if (got_f64) {
            memcpy(&a, (const char *)got + 8 * i, 8);
        } else {
            float f;
            memcpy(&f, (const char *)got + 4 * i, 4);
            a = f;
        }
        if (ref->dtype == NN_ST_F64) {
            memcpy(&b, ref->data + 8 * i, 8);
        } else {
            float f;
            memcpy(&f, ref->data + 4 * i, 4);
            b = f;
        }
        double d = fabs(a - b);
        if (!(d == d)) {
            d = INFINITY;
        }
        se += d * d;
        sr += b * b;
        if (d > c->max_abs) {
            c->max_abs = d;
        }
        double rel = d / (fabs(b) > 1e-30 ? fabs(b) : 1e-30);
        if (rel > c->max_rel && fabs(b) > atol) {
            c->max_rel = rel;
        }
        double excess = d - (atol + rtol * fabs(b));
        if (excess > 0) {
            c->n_bad++;
        }
        if (excess > worst_excess) {
            worst_excess = excess;
            c->worst = i;
            c->worst_got = a;
            c->worst_ref = b;
        }
    }
    c->nmse = sr > 0 ? se / sr : se;
    c->ok = c->n_bad == 0 && c->nmse <= max_nmse;
    r->failed |= !c->ok;
}

static void report_finish(const report_t *r, const char *what)
{
    if (!r->failed && getenv("SC_GOLDEN_VERBOSE") == NULL) {
        return;
    }
    fprintf(stderr, "%s: per-tensor comparison against PyTorch\n", what);
    fprintf(stderr, "%-58s %4s %10s %10s %10s %8s  worst (index: got / ref)\n", "tensor", "ok",
            "max_abs", "max_rel", "nmse", "n_bad");
    for (int i = 0; i < r->n; i++) {
        const cmp_row_t *c = &r->rows[i];
        fprintf(stderr, "%-58s %4s %10.3g %10.3g %10.3g %8zu  %zu: %.9g / %.9g\n", c->name,
                c->ok ? "ok" : "FAIL", c->max_abs, c->max_rel, c->nmse, c->n_bad, c->worst,
                c->worst_got, c->worst_ref);
    }
    if (r->failed) {
        T_FAIL("%s: tensors differ from the PyTorch golden values (report above)", what);
    }
}

/* ---- golden files and the model ------------------------------------------------------------ */

static nn_st_file_t *golden(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/golden/%s", name);
    nn_st_file_t *f = NULL;
    char err[NN_ST_ERRLEN];
    int rc = nn_st_open(t_source(rel), NULL, &f, err, sizeof err);
    if (rc != 0) {
        T_FAIL("%s: %s", rel, err);
    }
    return f;
}

static const nn_st_tensor_t *get(const nn_st_file_t *f, const char *name)
{
    const nn_st_tensor_t *t = nn_st_find(f, name);
    if (t == NULL) {
        T_FAIL("golden tensor %s missing", name);
    }
    return t;
}

static const nn_vit_cfg_t k_cfg = {.image_size = 32,
                                   .patch = 8,
                                   .width = 64,
                                   .depth = 2,
                                   .heads = 2,
                                   .mlp_hidden = 256,
                                   .vocab = 1000,
                                   .batch = 4};

/* Checkpoint entries for every model tensor (moments included for parameters). */
static nn_ckpt_entry_t *vit_entries(const nn_vit_t *m, size_t *n_out)
{
    size_t n = nn_vit_num_tensors(m);
    nn_ckpt_entry_t *e = core_calloc(n, sizeof *e);
    T_ASSERT(e != NULL);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        T_ASSERT_OK(nn_vit_tensor(m, i, &t));
        T_ASSERT(t.ndim <= 4);
        e[i].name = t.name;
        e[i].dtype = t.dtype == NN_DTYPE_F64 ? NN_ST_F64 : NN_ST_F32;
        e[i].rank = t.ndim;
        for (int d = 0; d < t.ndim; d++) {
            e[i].shape[d] = t.shape[d];
        }
        e[i].data = t.data;
        e[i].exp_avg = t.m;
        e[i].exp_avg_sq = t.v;
    }
    *n_out = n;
    return e;
}

/* A model with the golden initial weights, loaded by name (weights only: the golden file has no
 * optimizer state, and a fresh model's moments are zero). */
static nn_vit_t *load_model(void)
{
    nn_vit_t *m;
    T_ASSERT_OK(nn_vit_new(&k_cfg, &m));
    nn_vit_init(m, 1); /* moments, step and buffers zeroed; the weights are overwritten below */
    size_t n;
    nn_ckpt_entry_t *e = vit_entries(m, &n);
    T_ASSERT_EQ(n, 37);
    char err[NN_ST_ERRLEN];
    int rc = nn_ckpt_load(t_source("tests/data/golden/vit_tiny_weights.safetensors"), e, n,
                          NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err);
    if (rc != 0) {
        T_FAIL("loading the golden weights: %s (%s)", err, core_err_name(rc));
    }
    core_free(e);
    return m;
}

/* Label CSR (I64 in the file) as the uint32 arrays the model takes; core_malloc'd. */
static void labels(const nn_st_file_t *io, uint32_t **off, uint32_t **ids, int *B)
{
    const nn_st_tensor_t *to = get(io, "input.label_offsets"), *ti = get(io, "input.label_ids");
    *B = (int)to->numel - 1;
    *off = core_malloc(to->numel * sizeof **off);
    *ids = core_malloc((ti->numel ? ti->numel : 1) * sizeof **ids);
    for (size_t i = 0; i < to->numel; i++) {
        int64_t v;
        memcpy(&v, to->data + 8 * i, 8);
        (*off)[i] = (uint32_t)v;
    }
    for (size_t i = 0; i < ti->numel; i++) {
        int64_t v;
        memcpy(&v, ti->data + 8 * i, 8);
        (*ids)[i] = (uint32_t)v;
    }
}

/* Copy of a golden F32 tensor (the file data is not necessarily aligned). */
static float *copy_f32(const nn_st_tensor_t *t)
{
    T_ASSERT(t->dtype == NN_ST_F32);
    float *p = core_malloc(t->nbytes ? t->nbytes : 4);
    memcpy(p, t->data, t->nbytes);
    return p;
}

/* ---- cases --------------------------------------------------------------------------------- */

T_CASE(golden_images_u8)
{
    nn_st_file_t *io = golden("vit_tiny_io.safetensors");
    const nn_st_tensor_t *u8 = get(io, "input.images_u8"), *ref = get(io, "input.images");
    T_ASSERT(u8->dtype == NN_ST_U8 && u8->rank == 4 && u8->shape[3] == 3);
    float *got = core_malloc(ref->nbytes);
    nn_vit_images_from_u8(got, u8->data, (int)u8->shape[0], (int)u8->shape[1], (int)u8->shape[2]);
    report_t r = {0};
    cmp_any(&r, "images (u8 NHWC -> normalised NCHW)", got, 0, ref, ref->numel, 2e-6, 1e-6, 1e-12);
    report_finish(&r, "golden_images_u8");
    core_free(got);
    nn_st_close(io);
}

T_CASE(golden_vit_forward_backward)
{
    nn_st_file_t *io = golden("vit_tiny_io.safetensors");
    nn_vit_t *m = load_model();
    uint32_t *off, *ids;
    int B;
    labels(io, &off, &ids, &B);
    T_ASSERT_EQ(B, k_cfg.batch);
    float *images = copy_f32(get(io, "input.images"));

    nn_vit_zero_grad(m);
    nn_vit_forward(m, images);
    float loss = 0;
    T_ASSERT_OK(nn_vit_loss(m, off, ids, 1, &loss));
    nn_vit_backward(m);

    report_t r = {0};
    const int D = k_cfg.width, V = k_cfg.vocab;
    cmp_any(&r, "pooled", nn_vit_features(m), 0, get(io, "expect.pooled"), (size_t)(B * D), 1e-5,
            1e-4, 1e-10);
    cmp_any(&r, "logits", nn_vit_logits(m), 0, get(io, "expect.logits"), (size_t)(B * V), 1e-5,
            1e-4, 1e-10);
    cmp_any(&r, "loss", &loss, 0, get(io, "expect.loss"), 1, 1e-6, 1e-6, 1e-12);
    nn_tensor_t t;
    T_ASSERT_OK(nn_vit_find(m, "cap_fq", &t));
    cmp_any(&r, "cap_fq (after the update)", t.data, 1, get(io, "expect.cap_fq"), t.numel, 0, 0, 0);
    T_ASSERT_OK(nn_vit_find(m, "num_samples", &t));
    cmp_any(&r, "num_samples", t.data, 1, get(io, "expect.num_samples"), t.numel, 0, 0, 0);
    for (size_t i = 0; i < nn_vit_num_tensors(m); i++) {
        T_ASSERT_OK(nn_vit_tensor(m, i, &t));
        if (t.is_buffer) {
            continue;
        }
        char name[300];
        snprintf(name, sizeof name, "grad.%s", t.name);
        cmp_any(&r, name, t.grad, 0, get(io, name), t.numel, 1e-6, 1e-4, 1e-9);
    }
    report_finish(&r, "golden_vit_forward_backward");
    core_free(images);
    core_free(off);
    core_free(ids);
    nn_vit_free(m);
    nn_st_close(io);
}

T_CASE(golden_vit_adamw_steps)
{
    nn_st_file_t *io = golden("vit_tiny_io.safetensors");
    nn_st_file_t *st = golden("vit_tiny_steps.safetensors");
    nn_vit_t *m = load_model();
    uint32_t *off, *ids;
    int B;
    labels(io, &off, &ids, &B);
    float *images = copy_f32(get(io, "input.images"));
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    T_ASSERT(opt.beta1 == 0.9f && opt.beta2 == 0.98f && opt.eps == 1e-6f &&
             opt.weight_decay == 0.2f && opt.clip_norm <= 0);
    const nn_st_tensor_t *lr_ref = get(st, "steps.lr");
    enum { STEPS = 5 };
    T_ASSERT_EQ(lr_ref->numel, STEPS);
    float losses[STEPS];
    double lrs[STEPS];
    for (int s = 0; s < STEPS; s++) {
        float lr = nn_lr_schedule(1e-3f, 2, 5, s);
        lrs[s] = lr;
        T_ASSERT_OK(nn_vit_train_step(m, images, off, ids, 1, &opt, lr, &losses[s]));
    }
    T_ASSERT_EQ(nn_vit_opt_step(m), STEPS);
    report_t r = {0};
    cmp_any(&r, "steps.lr", lrs, 1, lr_ref, STEPS, 0, 1e-7, 1e-14);
    cmp_any(&r, "steps.loss", losses, 0, get(st, "steps.loss"), STEPS, 1e-5, 1e-5, 1e-11);
    nn_tensor_t t;
    for (size_t i = 0; i < nn_vit_num_tensors(m); i++) {
        T_ASSERT_OK(nn_vit_tensor(m, i, &t));
        char name[300];
        snprintf(name, sizeof name, "%s (after %d steps)", t.name, STEPS);
        if (t.is_buffer) {
            cmp_any(&r, name, t.data, 1, get(st, t.name), t.numel, 0, 0, 0);
        } else {
            cmp_any(&r, name, t.data, 0, get(st, t.name), t.numel, 2e-5, 1e-4, 1e-9);
        }
    }
    report_finish(&r, "golden_vit_adamw_steps");
    core_free(images);
    core_free(off);
    core_free(ids);
    nn_vit_free(m);
    nn_st_close(st);
    nn_st_close(io);
}

/* The pure loss on the spec 2.5 example: V 49,408, B 2, logits zero except a few entries. */
T_CASE(golden_loss_worked_example)
{
    nn_st_file_t *f = golden("loss_worked.safetensors");
    const int V = 49408;
    uint32_t *off, *ids;
    int B;
    labels(f, &off, &ids, &B);
    T_ASSERT_EQ(B, 2);
    T_ASSERT_OK(nn_labels_check(off, ids, B, V));
    float *logits = core_calloc((size_t)B * V, sizeof *logits);
    float *dlogits = core_calloc((size_t)B * V, sizeof *dlogits);
    const nn_st_tensor_t *rr = get(f, "input.logit_rows"), *cc = get(f, "input.logit_cols");
    const nn_st_tensor_t *vv = get(f, "input.logit_vals");
    for (size_t i = 0; i < rr->numel; i++) {
        int64_t row, col;
        float v;
        memcpy(&row, rr->data + 8 * i, 8);
        memcpy(&col, cc->data + 8 * i, 8);
        memcpy(&v, vv->data + 4 * i, 4);
        logits[row * V + col] = v;
    }
    double *cap_fq = core_calloc((size_t)V, sizeof *cap_fq);
    double num_samples = 0;
    nn_idf_t idf = {.cap_fq = cap_fq, .num_samples = &num_samples, .V = V};
    uint32_t *counts = core_calloc((size_t)V, sizeof *counts);
    float *tw = core_calloc(off[B] + 1, sizeof *tw);
    const nn_st_tensor_t *probe = get(f, "probe.cols");
    size_t np = probe->numel;
    report_t r = {0};
    for (int step = 1; step <= 2; step++) {
        float loss;
        nn_sc_loss(&loss, dlogits, logits, off, ids, B, V, &idf, 1, counts, tw);
        float dl[2 * 16];
        double fq[16];
        T_ASSERT(np <= 16);
        for (size_t k = 0; k < np; k++) {
            int64_t col;
            memcpy(&col, probe->data + 8 * k, 8);
            fq[k] = cap_fq[col];
            for (int b = 0; b < B; b++) {
                dl[(size_t)b * np + k] = dlogits[(size_t)b * V + (size_t)col];
            }
        }
        char name[64], gname[64];
        snprintf(name, sizeof name, "step%d.loss", step);
        /* The reference is exact (float64); an fp32 log-sum-exp over 49,408 logits is good to a
         * few 1e-6 relative (PyTorch's own fp32 loss is 1.9e-6 relative off here). */
        cmp_any(&r, name, &loss, 0, get(f, name), 1, 0, 5e-6, 1e-10);
        snprintf(name, sizeof name, "step%d dlogits (probe columns)", step);
        snprintf(gname, sizeof gname, "step%d.dlogits", step);
        cmp_any(&r, name, dl, 0, get(f, gname), (size_t)B * np, 1e-9, 1e-4, 1e-8);
        snprintf(name, sizeof name, "step%d cap_fq (probe columns)", step);
        snprintf(gname, sizeof gname, "step%d.cap_fq", step);
        cmp_any(&r, name, fq, 1, get(f, gname), np, 0, 0, 0);
        snprintf(name, sizeof name, "step%d.num_samples", step);
        cmp_any(&r, name, &num_samples, 1, get(f, name), 1, 0, 0, 0);
    }
    report_finish(&r, "golden_loss_worked_example");
    core_free(tw);
    core_free(counts);
    core_free(cap_fq);
    core_free(dlogits);
    core_free(logits);
    core_free(off);
    core_free(ids);
    nn_st_close(f);
}

T_MAIN()
