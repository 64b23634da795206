/* CRU-Net (Collective Residual Networks, arXiv 1703.02180; spec/crunet.md) and the pre-activation
 * ResNeXt / ResNet baselines built from the same units, as a classifier (BN-ReLU-GAP-FC, the
 * paper's head) or as a SuperClass backbone (BN-ReLU-GAP, then LayerNorm + Linear to the
 * vocabulary and the SuperClass loss of nn/loss.h).
 *
 *   stem:   conv kxk/s (3 -> stem_ch) - BN - ReLU [- maxpool 3x3/2 pad 1]
 *   stages: pre-activation ResNeXt units (spec 2.2) or CRU units (spec 2.3); the first unit of a
 *           stage carries the stride (on its 3x3 and its 1x1 projection) and the projection
 *   head:   BN - ReLU - global average pool - FC (+bias)  or  LN - Linear (+bias)
 *
 * In a CRU stage one 1x1 W_a (C -> m) and one depthwise 3x3 W_dw (m channels) are shared by every
 * unit of a share set (the whole stage, or runs of `share_every` units); each unit has its own
 * BN1/BN2/BN3 and 1x1s W_b (m -> m) and W_c (m -> C). The first unit uses its projection P
 * (1x1 C_in -> C) twice, behind two BNs: at stride 1 as the branch input and at stride s as the
 * shortcut; the branch's depthwise conv carries the stride. Shared tensors have one gradient
 * buffer that every use accumulates into (spec 6). The "no-sharing twin" (cfg.no_share) has a copy
 * of W_a and W_dw per unit, otherwise the same network.
 *
 * BatchNorm follows the originals (spec 2.1): eps 1e-3; momentum 0.9 in MXNet's sense, running =
 * 0.9 running + 0.1 batch; the running variance takes the BIASED batch variance (the MXNet fork's
 * convention; PyTorch would use the unbiased one). Convs have no bias. He-normal init (fan-in =
 * C_in/groups * k * k), BN gamma 1 beta 0, FC/Linear PyTorch default uniform.
 *
 * Memory (STYLE.md 2.3): parameters, gradients, optimiser moments, BN running statistics,
 * activations and activation gradients are each one arena allocated in nn_crunet_new for a fixed
 * batch and image size; forward, backward and the optimiser steps allocate nothing. Internally
 * activations are stored channel-major, [C, B, H, W], so every 1x1 conv is ONE GEMM over the whole
 * batch and BN statistics are contiguous per channel; the input images and logits keep PyTorch's
 * layouts (NCHW and [B, K]).
 *
 * Threads: a model is used by one thread at a time; OpenBLAS threads work inside the GEMMs.
 * Pointers returned by accessors are owned by the model and valid until nn_crunet_free.
 * Checkpoint tensor names and the preset table: docs/CRUNET.md. */
#ifndef NN_CRUNET_H
#define NN_CRUNET_H

#include <stddef.h>
#include <stdint.h>

#include "nn/adamw.h"
#include "nn/vit.h" /* nn_tensor_t, nn_dtype_t: the tensor-iteration type shared with the ViT */

#define NN_CRUNET_MAX_STAGES 4
#define NN_CRUNET_BN_EPS 1e-3f
#define NN_CRUNET_BN_MOMENTUM 0.9f /* running = 0.9 running + 0.1 batch */

enum { NN_CRUNET_RESNEXT = 0, NN_CRUNET_CRU = 1 };
enum { NN_CRUNET_HEAD_FC = 0, NN_CRUNET_HEAD_SC = 1 };

typedef struct nn_crunet_stage_s {
    int kind;        /* NN_CRUNET_RESNEXT or NN_CRUNET_CRU */
    int units;       /* >= 1 */
    int width;       /* C, the stage's output channels */
    int inner;       /* D (ResNeXt bottleneck) or m (CRU width) */
    int groups;      /* ResNeXt 3x3 groups (D % groups == 0); ignored for CRU (depthwise) */
    int stride;      /* stride of the first unit (1 or 2) */
    int share_every; /* CRU: units per share set; 0 = one set for the whole stage */
} nn_crunet_stage_t;

typedef struct nn_crunet_cfg_s {
    int image_size;  /* H == W of the input */
    int batch;       /* B, fixed for the model's lifetime */
    int stem_ch;     /* stem conv output channels */
    int stem_k;      /* stem kernel (3 or 7), pad k/2 */
    int stem_stride; /* 1 or 2 */
    int stem_pool;   /* 1: max-pool 3x3/2 pad 1 after the stem */
    int n_stages;
    nn_crunet_stage_t stage[NN_CRUNET_MAX_STAGES];
    int head;        /* NN_CRUNET_HEAD_FC or NN_CRUNET_HEAD_SC */
    int classes;     /* FC outputs, or the vocabulary size V for the SuperClass head */
    int no_share;    /* 1: the no-sharing twin (a copy of W_a and W_dw per CRU unit) */
} nn_crunet_cfg_t;

/* Fills *out from a preset (docs/CRUNET.md): "crunet56", "crunet116", "crunet56-136x1d",
 * "crunet35c" (3x3/1 stem, for 32x32), "crunet35c-s2" (3x3/2 stem, for 64x64), "crunet24-mini",
 * "resnext50-32x4d", "resnet50"; any name may end in "-noshare" for the no-sharing twin. head /
 * classes / image_size / batch as given. Returns 0, CORE_ENOT_FOUND (unknown name) or
 * CORE_ECONFIG (nn_crunet_cfg_check fails). */
int nn_crunet_preset(const char *name, int image_size, int head, int classes, int batch,
                     nn_crunet_cfg_t *out);

/* Checks a config: positive sizes, divisibility, every stage's input at least 1x1, int-range
 * tensor sizes. Returns 0 or CORE_ECONFIG. */
int nn_crunet_cfg_check(const nn_crunet_cfg_t *cfg);

/* Counts without allocating any arena (for the big presets). */
typedef struct nn_crunet_counts_s {
    size_t params;       /* trainable floats: unique conv weights, BN gamma/beta, head */
    size_t buffers;      /* BN running mean/var floats (+ the SuperClass IDF buffers) */
    size_t conv_tensors; /* unique conv weight tensors */
    size_t bn_layers;
    size_t conv_params;  /* floats in unique conv weights */
    size_t bn_channels;  /* sum of BN channel counts */
    size_t acts_floats;  /* activation arena size the model would allocate */
} nn_crunet_counts_t;
int nn_crunet_count(const nn_crunet_cfg_t *cfg, nn_crunet_counts_t *out);

typedef struct nn_crunet_s nn_crunet_t;

/* Allocates a model (parameters zero: call nn_crunet_init or load a checkpoint). Returns 0,
 * CORE_ECONFIG or CORE_ERR(ENOMEM). *out owned by the caller, freed with nn_crunet_free. */
int nn_crunet_new(const nn_crunet_cfg_t *cfg, nn_crunet_t **out);
void nn_crunet_free(nn_crunet_t *m); /* NULL is fine */
const nn_crunet_cfg_t *nn_crunet_cfg(const nn_crunet_t *m);

/* He-normal conv init, BN gamma 1 / beta 0 / running mean 0 / running var 1, head PyTorch
 * default, each tensor from its own Philox stream (seed, tensor index). Zeroes gradients, optimiser
 * state, IDF buffers and the step counter. */
void nn_crunet_init(nn_crunet_t *m, uint64_t seed);

/* ---- tensors (checkpoint I/O, tests, optimiser) --------------------------------------------
 * Order: every trainable tensor, then the buffers (BN running_mean/running_var F32, then for the
 * SuperClass head cap_fq [1,V] and num_samples [1,1] F64). A shared tensor appears once. Buffers
 * have grad/m/v NULL and is_buffer 1. Names are owned by the model. */
size_t nn_crunet_num_tensors(const nn_crunet_t *m);
int nn_crunet_tensor(const nn_crunet_t *m, size_t i, nn_tensor_t *out); /* 0 or CORE_ENOT_FOUND */
int nn_crunet_find(const nn_crunet_t *m, const char *name, nn_tensor_t *out);
size_t nn_crunet_num_params(const nn_crunet_t *m);

/* ---- training and inference ---------------------------------------------------------------- */
/* Forward on images[B,3,H,W] (float NCHW, normalised; borrowed for the call). train != 0: batch
 * statistics, running statistics updated, activations kept for the backward; train == 0: running
 * statistics (no backward allowed after it). */
void nn_crunet_forward(nn_crunet_t *m, const float *images, int train);
const float *nn_crunet_features(const nn_crunet_t *m); /* [B, C_last] after GAP */
const float *nn_crunet_logits(const nn_crunet_t *m);   /* [B, classes] */
float *nn_crunet_dlogits(nn_crunet_t *m);              /* [B, classes], input of the backward */

/* Mean softmax cross-entropy against integer labels (each < classes); writes dlogits. Returns 0 or
 * CORE_ECORRUPT (a label out of range; nothing written). */
int nn_crunet_loss_labels(nn_crunet_t *m, const int32_t *labels, float *loss_out);
/* SuperClass loss (nn_sc_loss; SuperClass head only, labels CSR as nn/loss.h). Returns 0,
 * CORE_ECONFIG (FC head) or CORE_ECORRUPT (bad labels). */
int nn_crunet_loss_sc(nn_crunet_t *m, const uint32_t *off, const uint32_t *ids, int use_idf,
                      float *loss_out);

void nn_crunet_zero_grad(nn_crunet_t *m); /* required before each backward (checked) */
/* Backward from dlogits after a train-mode forward; gradients accumulate. */
void nn_crunet_backward(nn_crunet_t *m);

/* SGD with momentum as torch.optim.SGD: g += wd * p (decayed tensors: conv/FC/Linear weights),
 * buf = momentum * buf + g (buf = g on the first step), p -= lr * buf. One buffer per unique
 * tensor, so a shared tensor is decayed once. */
void nn_crunet_sgd_step(nn_crunet_t *m, float lr, float momentum, float weight_decay);
/* AdamW (nn_adamw_update) over every trainable tensor; increments the step counter. */
void nn_crunet_adamw_step(nn_crunet_t *m, const nn_adamw_cfg_t *cfg, float lr);
int64_t nn_crunet_opt_step(const nn_crunet_t *m);
/* Restores the optimiser step counter (from a checkpoint), so a resumed run continues AdamW's
 * bias correction exactly. */
void nn_crunet_set_opt_step(nn_crunet_t *m, int64_t step);

/* Multiply-accumulates of one forward pass (convs + head), counted analytically. */
double nn_crunet_forward_macs(const nn_crunet_t *m);

#endif
