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

NN__HOT void nn_adamw_update(float *p, float *m, float *v, const float *g, size_t n, float lr,
                             float wd, float beta1, float beta2, float eps, int64_t t,
                             float grad_scale)
{
    NN_ASSERT(t >= 1);
    /* torch computes the corrections in Python doubles and passes float scalars */
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - (double)lr * (double)wd);
    float ob1 = 1.0f - beta1, ob2 = 1.0f - beta2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        float pi = p[i] * decay;
        float mi = m[i] * beta1 + gi * ob1;
        float vi = v[i] * beta2 + gi * gi * ob2;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
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
