/* The SuperClass image model: a CLIP-style ViT (spec/superclass.md 3.2) with the classification
 * head (3.3), trained with the online-IDF loss (section 2) and AdamW (4.2).
 *
 *   tokens = [class_embedding ; conv1(image) patches] + positional_embedding      [B, N, D]
 *   x = ln_pre(tokens); x = block_l(x) for l < depth     (pre-norm: x += attn(ln_1 x);
 *                                                         x += c_proj(gelu(c_fc(ln_2 x))))
 *   feat = mean over patch tokens 1..N-1 of ln_post(x)                                [B, D]
 *   logits = text_projection(ln_mlp(feat))                                            [B, V]
 *
 * N = G*G + 1 tokens with G = image_size / patch. Everything (parameters, gradients, AdamW m and
 * v, activations, activation gradients, loss scratch) is allocated once in nn_vit_new for a fixed
 * batch size; forward/backward/step allocate nothing.
 *
 * Input layout: float NCHW [B, 3, H, W], already normalised (PyTorch's layout, so golden tensors
 * need no transpose). nn_vit_images_from_u8() converts the data service's uint8 NHWC batches.
 *
 * Threads: a model is used by one thread at a time; OpenBLAS's threads work inside nn_gemm.
 * Pointers returned by accessors are owned by the model and valid until nn_vit_free. */
#ifndef NN_VIT_H
#define NN_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "nn/adamw.h"

typedef struct nn_vit_cfg_s {
    int image_size; /* H == W */
    int patch;      /* image_size % patch == 0 */
    int width;      /* D */
    int depth;      /* number of residual blocks */
    int heads;      /* width % heads == 0 (heads = width / 64 in the presets) */
    int mlp_hidden; /* F (4 * width in the presets) */
    int vocab;      /* V (49,408 for the CLIP tokenizer) */
    int batch;      /* B, fixed for the model's lifetime */
} nn_vit_cfg_t;

/* Fills *out from a preset name "ViT-Ti/16", "ViT-S/14", "ViT-B/8", "ViT-L/16" (Ti: 192/12/3,
 * S: 384/12/6, B: 768/12/12, L: 1024/24/16; patch 16, 14 or 8) with the given image size, vocab
 * and batch. Returns 0, CORE_ENOT_FOUND for an unknown name, CORE_ECONFIG for an image size the
 * patch does not divide. */
int nn_vit_preset(const char *name, int image_size, int vocab, int batch, nn_vit_cfg_t *out);

/* Checks a config (positive sizes, divisibility). Returns 0 or CORE_ECONFIG. */
int nn_vit_cfg_check(const nn_vit_cfg_t *cfg);

typedef struct nn_vit_s nn_vit_t;

/* Allocates a model (contents: parameters zero; call nn_vit_init or load a checkpoint).
 * Returns 0, CORE_ECONFIG, CORE_ETOO_LARGE or CORE_ERR(ENOMEM). *out owned by the caller. */
int nn_vit_new(const nn_vit_cfg_t *cfg, nn_vit_t **out);
/* Frees everything; NULL is fine. */
void nn_vit_free(nn_vit_t *m);
/* The config the model was built with (borrowed). */
const nn_vit_cfg_t *nn_vit_cfg(const nn_vit_t *m);

/* PyTorch-default initialisation (spec 3.4) from the Philox stream (seed, tensor index): each
 * tensor has its own stream, so inits do not depend on the order of the table. Zeroes the AdamW
 * moments, the step counter and the IDF buffers. */
void nn_vit_init(nn_vit_t *m, uint64_t seed);

/* ---- tensors, for checkpoint I/O, tests and the optimiser ---------------------------------- */
typedef enum { NN_DTYPE_F32 = 0, NN_DTYPE_F64 = 1 } nn_dtype_t;

typedef struct nn_tensor_s {
    const char *name;  /* OpenCLIP state_dict name, e.g. "visual.transformer.resblocks.3.ln_1.weight" */
    nn_dtype_t dtype;  /* F32 parameters; F64 for the buffers cap_fq and num_samples */
    int ndim;
    int64_t shape[4];  /* PyTorch shape, e.g. conv1.weight [D,3,p,p] */
    size_t numel;
    void *data;        /* float* (params) or double* (buffers) */
    float *grad;       /* gradient; NULL for buffers */
    float *m, *v;      /* AdamW moments; NULL for buffers */
    int decay;         /* weight decay applies (spec 4.2) */
    int is_buffer;     /* cap_fq / num_samples: not a parameter, no gradient */
} nn_tensor_t;

/* Number of tensors: 4 + 12 * depth + 6 parameters, then the 2 buffers (last). */
size_t nn_vit_num_tensors(const nn_vit_t *m);
/* Tensor i (0 <= i < num_tensors) in state_dict order. The name and pointers are owned by the
 * model (valid until nn_vit_free). Returns 0 or CORE_ENOT_FOUND. */
int nn_vit_tensor(const nn_vit_t *m, size_t i, nn_tensor_t *out);
/* By name. Returns 0 or CORE_ENOT_FOUND. */
int nn_vit_find(const nn_vit_t *m, const char *name, nn_tensor_t *out);
/* Number of float parameters (the sum of numel over non-buffer tensors). */
size_t nn_vit_num_params(const nn_vit_t *m);

/* ---- training and inference ---------------------------------------------------------------- */
/* uint8 NHWC RGB [B,H,W,3] -> float NCHW [B,3,H,W] with (x/255 - mean_c) / std_c, the OpenAI
 * mean (0.48145466, 0.4578275, 0.40821073) and std (0.26862954, 0.26130258, 0.27577711). */
void nn_vit_images_from_u8(float *dst, const uint8_t *src, int B, int H, int W);

/* Forward pass on images[B,3,H,W] (borrowed for the call). Fills the logits and the activations
 * the backward needs. */
void nn_vit_forward(nn_vit_t *m, const float *images);
/* Pooled features after ln_post and mean pooling, [B, D] (valid after a forward). */
const float *nn_vit_features(const nn_vit_t *m);
/* Logits [B, V] (valid after a forward). */
const float *nn_vit_logits(const nn_vit_t *m);
/* Gradient of the loss w.r.t. the logits, [B, V]; nn_vit_loss fills it, or a caller may write
 * its own before nn_vit_backward. */
float *nn_vit_dlogits(nn_vit_t *m);

/* SuperClass loss on the last forward's logits (nn/loss.h: IDF update first when use_idf, then
 * weights, targets, CE); writes dlogits. Labels CSR off[B+1], ids[off[B]] (sorted unique per
 * row, < V). Returns 0 or CORE_ECORRUPT (bad labels; nothing changed). */
int nn_vit_loss(nn_vit_t *m, const uint32_t *off, const uint32_t *ids, int use_idf,
                float *loss_out);

/* Zeroes all parameter gradients (required before nn_vit_backward; checked). */
void nn_vit_zero_grad(nn_vit_t *m);
/* Backward from dlogits through the whole model; gradients ACCUMULATE into the grad arena. */
void nn_vit_backward(nn_vit_t *m);
/* Optional progress callback of nn_vit_backward (data-parallel training starts reducing the
 * gradients that are final while earlier layers' backward still runs): called on the calling
 * thread after the head, after each block (last to first) and at the end, with the tensor index
 * from which on every parameter tensor's gradient is final for this backward (num_tensors - 2
 * buffers excluded; 0 at the end). fn NULL removes it. Not thread-safe with a running backward. */
typedef void (*nn_vit_backward_hook_fn)(void *ctx, size_t first_final_tensor);
void nn_vit_set_backward_hook(nn_vit_t *m, nn_vit_backward_hook_fn fn, void *ctx);

/* One AdamW step over all parameters with learning rate lr (increments the step counter first;
 * clipping by global norm when cfg->clip_norm > 0). *grad_norm_out (may be NULL) receives the
 * global gradient norm before clipping. */
void nn_vit_adamw_step(nn_vit_t *m, const nn_adamw_cfg_t *cfg, float lr, double *grad_norm_out);
/* The AdamW step counter (number of steps taken), for checkpoints. */
int64_t nn_vit_opt_step(const nn_vit_t *m);
void nn_vit_set_opt_step(nn_vit_t *m, int64_t step);

/* zero_grad + forward + loss + backward + AdamW step. Returns 0 or CORE_ECORRUPT (bad labels;
 * no step taken). */
int nn_vit_train_step(nn_vit_t *m, const float *images, const uint32_t *off, const uint32_t *ids,
                      int use_idf, const nn_adamw_cfg_t *opt, float lr, float *loss_out);

/* FLOPs of one training step's GEMMs (forward + backward), counted analytically. */
double nn_vit_train_gemm_flops(const nn_vit_cfg_t *cfg);

#endif
