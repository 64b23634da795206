/* AdamW update (torch.optim.AdamW, decoupled decay), warmup + cosine schedule, squared norms. */
#include "nn/adamw.h"

#include <math.h>

#include "internal.h"

nn_adamw_cfg_t nn_adamw_defaults(void)
{
    nn_adamw_cfg_t c = {.beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.2f,
                        .clip_norm = 0.0f};
    return c;
}

typedef struct {
    float *p, *m, *v;
    const float *g;
    float step_size, bc2_sqrt, decay, beta1, beta2, ob1, ob2, eps, grad_scale;
} adamw_job_t;

NN__HOT static void adamw_range(void *ctx, int chunk, int lo, int hi)
{
    const adamw_job_t *j = ctx;
    float *p = j->p, *m = j->m, *v = j->v;
    const float *g = j->g;
    (void)chunk;
    for (int i = lo; i < hi; i++) {
        float gi = g[i] * j->grad_scale;
        float pi = p[i] * j->decay;
        float mi = m[i] * j->beta1 + gi * j->ob1;
        float vi = v[i] * j->beta2 + gi * gi * j->ob2;
        float denom = sqrtf(vi) / j->bc2_sqrt + j->eps;
        p[i] = pi - j->step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

void nn_adamw_update(float *p, float *m, float *v, const float *g, size_t n, float lr, float wd,
                     float beta1, float beta2, float eps, int64_t t, float grad_scale)
{
    NN_ASSERT(t >= 1 && p && m && v && g);
    /* torch computes the corrections in Python doubles and passes float scalars */
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    adamw_job_t j = {.step_size = (float)((double)lr / bc1),
                     .bc2_sqrt = (float)sqrt(bc2),
                     .decay = (float)(1.0 - (double)lr * (double)wd),
                     .beta1 = beta1,
                     .beta2 = beta2,
                     .ob1 = 1.0f - beta1,
                     .ob2 = 1.0f - beta2,
                     .eps = eps,
                     .grad_scale = grad_scale};
    for (size_t off = 0; off < n; off += (size_t)1 << 30) {
        size_t len = n - off < ((size_t)1 << 30) ? n - off : (size_t)1 << 30;
        j.p = p + off;
        j.m = m + off;
        j.v = v + off;
        j.g = g + off;
        nn__parallel_for((int)len, 32768, adamw_range, &j);
    }
}

float nn_lr_schedule(float base_lr, int64_t warmup, int64_t total, int64_t s)
{
    if (s < warmup) {
        return base_lr * (float)(s + 1) / (float)warmup;
    }
    if (s >= total || total <= warmup) {
        return 0.0f;
    }
    double e = (double)(s - warmup), es = (double)(total - warmup);
    return (float)(0.5 * (1.0 + cos(M_PI * e / es)) * (double)base_lr);
}

NN__HOT double nn_sumsq(const float *g, size_t n)
{
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            acc[j] += (double)g[i + (size_t)j] * (double)g[i + (size_t)j];
        }
    }
    for (; i < n; i++) {
        acc[0] += (double)g[i] * (double)g[i];
    }
    double s = 0.0;
    for (int j = 0; j < 8; j++) {
        s += acc[j];
    }
    return s;
}
