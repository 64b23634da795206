/* Internal kernels of the CRU-Net (crunet_kernels.c), on channel-major activations [C, B, H, W]
 * ("CNHW": each channel's B*H*W values are contiguous). Why not nn/kernels.h's NCHW kernels:
 * in CNHW a 1x1 conv over the whole batch is one GEMM and BN statistics are one contiguous run per
 * channel; the kernels here are also fused (BN+ReLU) and written so GCC vectorises them. The tests
 * check each against nn/kernels.h's references after a layout transpose.
 *
 * Conventions as nn/kernels.h: outputs first; no allocation, no failure (NN_ASSERT); backward
 * functions ACCUMULATE into weight gradients; input gradients as documented per function. */
#ifndef NN_CRUNET_INTERNAL_H
#define NN_CRUNET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nn/crunet.h"

/* ---- BatchNorm + ReLU, fused: y = max(0, (x - mean) * rstd * gamma + beta) on x[C, n] ----------
 * train: batch statistics (biased variance for normalising AND for the running variance, the MXNet
 * convention), run = momentum * run + (1 - momentum) * batch (momentum 0.9 keeps 90 %);
 * eval: run_mean/run_var. Caches mean[C], rstd[C]. run_* may be NULL in train mode. */
void nn__cru_bnrelu_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, float *run_mean, float *run_var, int C, size_t n,
                        float momentum, float eps, int train);
/* From the BN input x (the output is recomputed for the ReLU mask): dgamma/dbeta +=, and
 * dx = (accumulate ? dx + : ) the input gradient. train selects batch-statistics backward. */
void nn__cru_bnrelu_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *gamma,
                        const float *beta, int C, size_t n, int train, int accumulate);

/* ---- 1x1 conv on [C, n]: y[O, n] = W[O, C] . x (+ y when accumulate) ------------------------- */
void nn__cru_conv1x1_fwd(float *y, const float *x, const float *w, int C, int O, size_t n,
                         int accumulate);
/* dw[O,C] += dy . x^T; dx[C,n] = (accumulate ? dx + : ) W^T . dy (dx may be NULL). */
void nn__cru_conv1x1_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         int C, int O, size_t n, int accumulate);

/* ---- stride-s subsampling of planes: y[P, Ho, Wo] = x[P, oh*s, ow*s] (P = C*B planes) ------- */
void nn__cru_subsample(float *y, const float *x, size_t P, int H, int W, int s);
/* dx[P, H, W] = scatter of dy at the sampled positions, zero elsewhere (overwrites dx). */
void nn__cru_subsample_bwd(float *dx, const float *dy, size_t P, int H, int W, int s);

/* ---- direct grouped kxk conv (depthwise and ResNeXt 3x3), zero padding ----------------------
 * y[O, B, Ho, Wo] = sum over the group's C/groups input channels of x[C, B, H, W] * w[O, C/g, k, k].
 * scratch: nn__cru_gconv_scratch() floats (zero-padded stride-phase copies of the input planes, so
 * each tap is one long contiguous axpy over a whole output plane, plus per-thread planes).
 * Threads: the forward splits output channels, the backward groups, over the nn pool. */
typedef struct {
    int C, O, groups, B, H, W, k, stride, pad;
} nn__cru_gconv_t;
int nn__cru_gconv_ho(const nn__cru_gconv_t *d);
int nn__cru_gconv_wo(const nn__cru_gconv_t *d);
size_t nn__cru_gconv_scratch(const nn__cru_gconv_t *d);
void nn__cru_gconv_fwd(float *y, float *scratch, const float *x, const float *w,
                       const nn__cru_gconv_t *d);
/* dw +=; dx (may be NULL) is OVERWRITTEN with the input gradient. scratch holds
 * 2 * nn__cru_gconv_scratch() floats. */
void nn__cru_gconv_bwd(float *dx, float *dw, float *scratch, const float *dy, const float *x,
                       const float *w, const nn__cru_gconv_t *d);

/* ---- im2col for a dense kxk conv on [C, B, H, W]: col[C*k*k, B*Ho*Wo] ------------------------ */
void nn__cru_im2col(float *col, const float *x, int C, int B, int H, int W, int k, int s, int pad);

/* ---- layout and pooling -------------------------------------------------------------------- */
/* NCHW [B, C, HW] <-> CNHW [C, B, HW] */
void nn__cru_nchw_to_cnhw(float *y, const float *x, int B, int C, size_t HW);
/* y[B, C] = mean over HW of x[C, B, HW] */
void nn__cru_gap_fwd(float *y, const float *x, int B, int C, size_t HW);
/* dx[C, B, HW] = dy[b, c] / HW (overwrites) */
void nn__cru_gap_bwd(float *dx, const float *dy, int B, int C, size_t HW);

/* ---- the model (crunet.c builds it, crunet_pass.c runs it) --------------------------------- */

/* A BatchNorm layer: parameter/gradient views, running statistics, and the cached statistics of
 * the last forward (mean, rstd: [C], in the activation arena). */
typedef struct {
    int C;
    float *g, *b, *gg, *gb; /* gamma, beta; their gradients */
    float *rm, *rv;         /* running mean / var (buffer arena) */
    float *mean, *rstd;
} nn__cru_bn_t;

/* A conv weight: parameter and gradient views (shared tensors: the same views in every unit). */
typedef struct {
    float *w, *g;
} nn__cru_w_t;

enum { NN__CRU_UNIT_RX = 0, NN__CRU_UNIT_CRU = 1 };

/* One residual unit. Roles by kind:
 *   RX  (spec 2.2): bn1(x)->a1 -wa(1x1)-> h1 -bn2-> a2 -wk(3x3 g, /s)-> h2 -bn3-> a3 -wc(1x1)-> +sc
 *       sc = x, or (proj) bnp2(x)->asc [-subsample-> ascs] -wp(1x1)->
 *   CRU (spec 2.3): [down: bnp1(x)->ap1 -wp-> p; bnp2(x)->asc [-> ascs] -wp-> sc]
 *       bn1(p or x)->a1 -wa(shared 1x1)-> h1 -wk(shared dw 3x3, /s)-> h2 -bn2-> a2 -wb(1x1)-> h3
 *       -bn3-> a3 -wc(1x1)-> + (sc or x)
 * Activations are [channels, B, H, W] views into the activation arena. */
typedef struct {
    int kind, proj; /* proj: RX projection shortcut / CRU down unit */
    int cin, c, inner, groups, stride;
    int hin, win, hout, wout;
    size_t nin, nout; /* B*hin*win, B*hout*wout */
    nn__cru_bn_t bn1, bn2, bn3, bnp1, bnp2;
    nn__cru_w_t wa, wk, wb, wc, wp;
    nn__cru_gconv_t kd; /* the 3x3 geometry */
    const float *x;     /* input (previous output), not owned */
    float *a1, *h1, *a2, *h2, *a3, *h3, *ap1, *p, *asc, *ascs, *y;
} nn__cru_unit_t;

typedef struct {
    nn_tensor_t t;
    int init;      /* NN__CRU_I_* */
    double fan_in; /* He-normal / uniform bound */
    int arena;     /* 0 params, 1 F32 buffers, 2 F64 buffers */
    size_t off;
} nn__cru_slot_t;

enum { NN__CRU_I_HE, NN__CRU_I_ONE, NN__CRU_I_ZERO, NN__CRU_I_UNIFORM, NN__CRU_I_NORMAL_D };

struct nn_crunet_s {
    nn_crunet_cfg_t cfg;
    int nunits;
    nn__cru_unit_t *units;
    /* tensor table: slots in walk order; order[] lists parameters first, then buffers */
    size_t nslots, slot_cap;
    nn__cru_slot_t *slots;
    size_t *order;
    char *names;
    size_t names_cap, names_used;
    size_t nparams, nbufs;
    float *params, *grads, *m, *v, *bufs;
    double *cap_fq, num_samples; /* SuperClass head IDF buffers */
    int64_t opt_step;
    double macs;
    /* stem */
    int H1, W1, Hp, Wp;     /* stem conv output, after pool */
    nn__cru_w_t stem_w;
    nn__cru_bn_t stem_bn;
    /* head */
    nn__cru_bn_t head_bn;
    float *fc_w, *fc_b, *fc_gw, *fc_gb;    /* FC / text_projection [K, C], [K] */
    float *ln_w, *ln_b, *ln_gw, *ln_gb;    /* SuperClass LN [C] */
    int C_last, H_last, W_last;
    /* activations */
    float *acts;
    float *x0, *col, *hs, *as, *pooled, *af, *feat, *hln, *hmean, *hrstd, *logits;
    int32_t *pool_idx;
    size_t max_act, gconv_scratch;
    /* activation gradients and scratch */
    float *dacts;
    float *g0, *g1, *t0, *t1, *t2, *scratch, *dfeat, *dhln, *dlogits;
    /* loss scratch */
    uint32_t *counts, *lab_off, *lab_ids;
    float *tw;
    size_t tw_cap;
    int grads_zeroed, last_train;
};

#define NN__CRU_LN_EPS 1e-5f

#endif
