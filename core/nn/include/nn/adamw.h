/* AdamW (spec 4.2), the warmup + cosine schedule (spec 4.3) and global-norm clipping. */
#ifndef NN_ADAMW_H
#define NN_ADAMW_H

#include <stddef.h>
#include <stdint.h>

typedef struct nn_adamw_cfg_s {
    float beta1, beta2;  /* 0.9, 0.98 in the released configs */
    float eps;           /* 1e-6 */
    float weight_decay;  /* 0.2 */
    float clip_norm;     /* global gradient-norm clip; <= 0 disables (the default) */
} nn_adamw_cfg_t;

/* beta1 0.9, beta2 0.98, eps 1e-6, weight_decay 0.2, no clipping. */
nn_adamw_cfg_t nn_adamw_defaults(void);

/* One AdamW update of n parameters at step t (1-based, after incrementing), torch.optim.AdamW:
 * p -= lr*wd*p (wd = 0 for no-decay tensors); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). g is multiplied by grad_scale first
 * (1 normally, the clip factor when clipping). */
void nn_adamw_update(float *p, float *m, float *v, const float *g, size_t n, float lr, float wd,
                     float beta1, float beta2, float eps, int64_t t, float grad_scale);

/* lr at optimiser step s (0-based): warmup base*(s+1)/warmup for s < warmup, then
 * 0.5 (1 + cos(pi (s - warmup) / (total - warmup))) base, 0 at and after total. */
float nn_lr_schedule(float base_lr, int64_t warmup, int64_t total, int64_t s);

/* Sum of squares of g[n] in double (for the global norm). */
double nn_sumsq(const float *g, size_t n);

#endif
