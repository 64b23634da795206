/* CRU-Net against PyTorch (tests/ref/gen_crunet_golden.py: the model written from the spec and
 * computed in float64): eval and train forward, loss, BN running statistics after a train
 * forward, every gradient, three SGD steps; and the SuperClass head with its loss. Each check
 * prints its worst error relative to the reference tensor's largest magnitude. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "nn/crunet.h"
#include "nn/safetensors.h"
#include "t.h"

/* The generator's configuration. */
static nn_crunet_cfg_t golden_cfg(int head, int classes)
{
    nn_crunet_cfg_t c;
    memset(&c, 0, sizeof c);
    c.image_size = 16;
    c.batch = 4;
    c.stem_ch = 6;
    c.stem_k = 3;
    c.stem_stride = 1;
    c.stem_pool = 1;
    c.n_stages = 4;
    c.stage[0] = (nn_crunet_stage_t){NN_CRUNET_RESNEXT, 1, 8, 8, 2, 1, 0};
    c.stage[1] = (nn_crunet_stage_t){NN_CRUNET_RESNEXT, 1, 12, 8, 4, 2, 0};
    c.stage[2] = (nn_crunet_stage_t){NN_CRUNET_CRU, 2, 16, 12, 1, 2, 0};
    c.stage[3] = (nn_crunet_stage_t){NN_CRUNET_CRU, 4, 20, 10, 1, 1, 2};
    c.head = head;
    c.classes = classes;
    return c;
}

static nn_st_file_t *golden(const char *name)
{
    char rel[256], err[NN_ST_ERRLEN];
    snprintf(rel, sizeof rel, "tests/data/golden/%s", name);
    nn_st_file_t *f = NULL;
    int rc = nn_st_open(t_source(rel), NULL, &f, err, sizeof err);
    if (rc < 0) {
        T_FAIL("open %s: %s", rel, err);
    }
    return f;
}

static const nn_st_tensor_t *get(const nn_st_file_t *f, const char *name)
{
    const nn_st_tensor_t *t = nn_st_find(f, name);
    if (!t) {
        T_FAIL("golden tensor %s missing", name);
    }
    return t;
}

/* max |a - ref| / max(max |ref|, floor) */
static double cmp(const char *what, const float *a, const nn_st_tensor_t *ref, size_t n,
                  double floor_, double tol, int verbose)
{
    T_ASSERT(ref->dtype == NN_ST_F32);
    T_ASSERT_EQ(ref->numel, n);
    double mx = 0.0, sc = floor_;
    for (size_t i = 0; i < n; i++) {
        float r;
        memcpy(&r, ref->data + i * 4, 4);
        mx = fmax(mx, fabs((double)a[i] - (double)r));
        sc = fmax(sc, fabs((double)r));
    }
    double e = mx / sc;
    if (verbose || e > tol) {
        printf("%-44s max err %.2e (scale %.2e)%s\n", what, e, sc, e > tol ? "  FAIL" : "");
    }
    return e;
}

/* Loads w.<name> into every tensor of the model (parameters and running statistics). */
static void load_weights(nn_crunet_t *m, const nn_st_file_t *f)
{
    size_t n = nn_crunet_num_tensors(m);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        char name[160];
        T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
        if (t.dtype == NN_DTYPE_F64) {
            continue; /* IDF buffers: zero */
        }
        snprintf(name, sizeof name, "w.%s", t.name);
        const nn_st_tensor_t *s = get(f, name);
        T_ASSERT_EQ(s->numel, t.numel);
        T_ASSERT_EQ(s->rank, t.ndim);
        for (int k = 0; k < t.ndim; k++) {
            T_ASSERT_EQ(s->shape[k], t.shape[k]);
        }
        memcpy(t.data, s->data, t.numel * 4);
    }
}

static float *images(const nn_st_file_t *f)
{
    const nn_st_tensor_t *t = get(f, "input.images");
    float *p = core_malloc(t->nbytes);
    T_ASSERT(p != NULL);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static int64_t i64_at(const nn_st_tensor_t *t, size_t i)
{
    int64_t v;
    T_ASSERT(t->dtype == NN_ST_I64);
    memcpy(&v, t->data + i * 8, 8);
    return v;
}

/* Every gradient and every running statistic against the reference. Returns the worst errors. */
static void check_grads_and_stats(nn_crunet_t *m, const nn_st_file_t *f, double *wg, double *wb)
{
    size_t n = nn_crunet_num_tensors(m);
    *wg = *wb = 0.0;
    int ng = 0;
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        char name[160];
        T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
        if (t.dtype == NN_DTYPE_F64) {
            continue;
        }
        if (t.is_buffer) {
            snprintf(name, sizeof name, "expect.buf.%s", t.name);
            *wb = fmax(*wb, cmp(name, t.data, get(f, name), t.numel, 1e-3, 1e-5, 0));
        } else {
            snprintf(name, sizeof name, "grad.%s", t.name);
            int show = strstr(t.name, ".share") || strstr(t.name, ".proj.");
            *wg = fmax(*wg, cmp(name, t.grad, get(f, name), t.numel, 1e-4, 2e-3, show));
            ng++;
        }
    }
    printf("%d gradients: worst %.2e; running statistics: worst %.2e\n", ng, *wg, *wb);
}

T_CASE(golden_fc)
{
    nn_st_file_t *f = golden("crunet_fc.safetensors");
    nn_crunet_cfg_t c = golden_cfg(NN_CRUNET_HEAD_FC, 7);
    nn_crunet_t *m = NULL;
    T_ASSERT_OK(nn_crunet_new(&c, &m));
    load_weights(m, f);
    float *img = images(f);
    const nn_st_tensor_t *lt = get(f, "input.labels");
    int32_t labels[4];
    for (int i = 0; i < 4; i++) {
        labels[i] = (int32_t)i64_at(lt, (size_t)i);
    }
    /* eval mode: running statistics (random in the file) */
    nn_crunet_forward(m, img, 0);
    double e_eval = cmp("logits (eval)", nn_crunet_logits(m), get(f, "expect.logits_eval"), 28,
                        1e-3, 1e-4, 1);
    /* train mode */
    nn_crunet_zero_grad(m);
    nn_crunet_forward(m, img, 1);
    double e_feat = cmp("features (train)", nn_crunet_features(m), get(f, "expect.features"),
                        80, 1e-3, 1e-4, 1);
    double e_log = cmp("logits (train)", nn_crunet_logits(m), get(f, "expect.logits"), 28, 1e-3,
                       1e-4, 1);
    float loss;
    T_ASSERT_OK(nn_crunet_loss_labels(m, labels, &loss));
    double e_loss = cmp("loss", &loss, get(f, "expect.loss"), 1, 1e-3, 1e-5, 1);
    nn_crunet_backward(m);
    double wg, wb;
    check_grads_and_stats(m, f, &wg, &wb);
    T_ASSERT(e_eval < 1e-4 && e_feat < 1e-4 && e_log < 1e-4 && e_loss < 1e-5);
    T_ASSERT(wg < 2e-3 && wb < 1e-5);

    /* three SGD steps from the file's weights and running statistics */
    load_weights(m, f);
    const nn_st_tensor_t *sl = get(f, "steps.loss");
    double e_steps = 0.0, e_first = 0.0;
    for (int s = 0; s < 3; s++) {
        nn_crunet_zero_grad(m);
        nn_crunet_forward(m, img, 1);
        T_ASSERT_OK(nn_crunet_loss_labels(m, labels, &loss));
        float ref;
        memcpy(&ref, sl->data + (size_t)s * 4, 4);
        printf("step %d loss %.7f ref %.7f\n", s, (double)loss, (double)ref);
        e_steps = fmax(e_steps, fabs((double)loss - (double)ref));
        nn_crunet_backward(m);
        nn_crunet_sgd_step(m, 0.02f, 0.9f, 5e-4f);
        if (s == 0) {
            double e1 = 0.0;
            size_t nt = nn_crunet_num_tensors(m);
            for (size_t i = 0; i < nt; i++) {
                nn_tensor_t t;
                char name[160];
                T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
                if (t.is_buffer) {
                    continue;
                }
                snprintf(name, sizeof name, "step1.%s", t.name);
                e1 = fmax(e1, cmp(name, t.data, get(f, name), t.numel, 1e-2, 2e-5, 0));
            }
            printf("parameters after the first SGD step: worst %.2e\n", e1);
            e_first = e1;
        }
    }
    double e_after = 0.0;
    size_t n = nn_crunet_num_tensors(m);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        char name[160];
        T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
        snprintf(name, sizeof name, "after.%s", t.name);
        e_after = fmax(e_after, cmp(name, t.data, get(f, name), t.numel, 1e-2, 2e-2, 0));
    }
    printf("after 3 SGD steps: loss max diff %.2e, parameters/statistics worst %.2e\n", e_steps,
           e_after);
    /* Batch-statistics BN on a batch of 4 at 2x2 is badly conditioned: tiny differences grow by
     * about 1000x per step (PyTorch float32 against float64 shows the same growth), so the first
     * step is checked tightly and the end of three steps loosely. */
    T_ASSERT(e_first < 2e-5 && e_steps < 5e-4 && e_after < 2e-2);
    core_free(img);
    nn_crunet_free(m);
    nn_st_close(f);
}

T_CASE(golden_sc)
{
    nn_st_file_t *f = golden("crunet_sc.safetensors");
    nn_crunet_cfg_t c = golden_cfg(NN_CRUNET_HEAD_SC, 9);
    nn_crunet_t *m = NULL;
    T_ASSERT_OK(nn_crunet_new(&c, &m));
    load_weights(m, f);
    float *img = images(f);
    const nn_st_tensor_t *to = get(f, "input.label_offsets"), *ti = get(f, "input.label_ids");
    uint32_t off[5], ids[16];
    T_ASSERT(to->numel == 5 && ti->numel <= 16);
    for (size_t i = 0; i < 5; i++) {
        off[i] = (uint32_t)i64_at(to, i);
    }
    for (size_t i = 0; i < ti->numel; i++) {
        ids[i] = (uint32_t)i64_at(ti, i);
    }
    nn_crunet_zero_grad(m);
    nn_crunet_forward(m, img, 1);
    double e_log = cmp("logits (train)", nn_crunet_logits(m), get(f, "expect.logits"), 36, 1e-3,
                       1e-4, 1);
    float loss;
    T_ASSERT_OK(nn_crunet_loss_sc(m, off, ids, 0, &loss));
    double e_loss = cmp("loss", &loss, get(f, "expect.loss"), 1, 1e-3, 1e-5, 1);
    nn_crunet_backward(m);
    double wg, wb;
    check_grads_and_stats(m, f, &wg, &wb);
    T_ASSERT(e_log < 1e-4 && e_loss < 1e-5 && wg < 2e-3 && wb < 1e-5);
    core_free(img);
    nn_crunet_free(m);
    nn_st_close(f);
}

T_MAIN()
