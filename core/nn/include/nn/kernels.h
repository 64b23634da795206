/* Neural-network kernels: forward/backward pairs on plain float arrays (STYLE.md 2.5).
 *
 * Conventions for every function here:
 * - Argument order: outputs, caches, inputs, weights, dimensions (llm.c).
 * - Shapes in the comments: B batch, N tokens, D features, H heads, C channels, HxW spatial,
 *   all row-major (the last index varies fastest). Images are NCHW.
 * - Backward functions ACCUMULATE (+=) into every gradient output, so a tensor used twice simply
 *   receives both contributions; the caller zeroes gradients before a backward pass. A gradient
 *   output documented as "may be NULL" is skipped.
 * - No allocation and no failure: scratch comes from the caller, preconditions are NN_ASSERTs
 *   that abort. Pointers are borrowed for the call only. Outputs must not alias inputs unless
 *   stated. Thread-safe on disjoint outputs (OpenBLAS threads inside nn_gemm).
 * - Where an optimised path differs from the obvious loop, a *_ref function with the same
 *   contract is the naive reference the tests compare against. */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Most threads the kernels use (nn_blas_set_threads caps its pool here); attention backward
 * scratch is sized with it. */
#define NN_MAX_THREADS 16

/* ---- linear: y[M,O] = x[M,In] . W[O,In]^T + b[O] (b may be NULL) ---------------------------- */
void nn_linear_forward(float *y, const float *x, const float *w, const float *b, int M, int In,
                       int O);
/* dx[M,In] (may be NULL) += dy.W; dw[O,In] += dy^T.x; db[O] (may be NULL) += sum_m dy */
void nn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int M, int In, int O);
void nn_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int M, int In,
                           int O);

/* ---- elementwise --------------------------------------------------------------------------- */
/* Exact GELU, y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (PyTorch approximate='none'). y may
 * alias x. */
void nn_gelu_forward(float *y, const float *x, size_t n);
/* dx += dy * (Phi(x) + x phi(x)); dx must not alias dy. */
void nn_gelu_backward(float *dx, const float *dy, const float *x, size_t n);
void nn_gelu_forward_ref(float *y, const float *x, size_t n); /* libm erff */

/* ReLU, y = max(x, 0); y may alias x. Backward: dx += dy * [x > 0] (the kink at 0 gets 0). */
void nn_relu_forward(float *y, const float *x, size_t n);
void nn_relu_backward(float *dx, const float *dy, const float *x, size_t n);

/* Residual add y = a + b (y may alias a or b). Backward: da += dy, db += dy (either may be NULL). */
void nn_add_forward(float *y, const float *a, const float *b, size_t n);
void nn_add_backward(float *da, float *db, const float *dy, size_t n);

/* ---- softmax over the last axis: y[M,N] = softmax(x[M,N]) rows ------------------------------ */
void nn_softmax_forward(float *y, const float *x, int M, int N);
/* dx[M,N] += y * (dy - sum_j dy_j y_j), from the saved output y. */
void nn_softmax_backward(float *dx, const float *dy, const float *y, int M, int N);
void nn_softmax_forward_ref(float *y, const float *x, int M, int N); /* libm expf, double sums */

/* ---- LayerNorm over the last axis, biased variance (PyTorch nn.LayerNorm) -------------------
 * y[M,D] = (x - mean) * rstd * w + b; caches mean[M], rstd[M] = 1/sqrt(var + eps). */
void nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int M, int D, float eps);
/* dx[M,D] += ..., dw[D] += sum dy*xhat, db[D] += sum dy (dw, db may be NULL). */
void nn_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *w, int M, int D);

/* ---- multi-head self-attention core (PyTorch nn.MultiheadAttention after in_proj) -----------
 * qkv[B,N,3D] holds q | k | v per token (in_proj rows q, k, v); D = H * hd. For each (b, h):
 * att[b,h] = softmax(q k^T / sqrt(hd)) [N,N] (cached for backward), out[b,:,h*hd:(h+1)*hd] =
 * att v. out[B,N,D] is the input of out_proj. No mask. */
void nn_attention_forward(float *out, float *att, const float *qkv, int B, int N, int D, int H);
/* dqkv[B,N,3D] += ...; scratch holds NN_MAX_THREADS*N*N floats (one N x N block per thread). */
void nn_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int N, int D, int H);
void nn_attention_forward_ref(float *out, float *att, const float *qkv, int B, int N, int D,
                              int H);

/* ---- token pooling: y[B,D] = mean over tokens start..N-1 of x[B,N,D] (ViT mean pooling over
 * the patch tokens, start = 1 skips the class token). */
void nn_mean_tokens_forward(float *y, const float *x, int B, int N, int D, int start);
void nn_mean_tokens_backward(float *dx, const float *dy, int B, int N, int D, int start);

/* ---- 2-D convolution, NCHW; w[O, C/groups, KH, KW], b[O] (may be NULL) ----------------------- */
typedef struct nn_conv2d_dims_s {
    int B, C, H, W;   /* input */
    int O, KH, KW;    /* output channels, kernel */
    int stride, pad;  /* same for both axes; zero padding */
    int groups;       /* C % groups == 0, O % groups == 0 */
} nn_conv2d_dims_t;
/* Output size (Ho = (H + 2 pad - KH) / stride + 1, likewise Wo). */
int nn_conv2d_out_h(const nn_conv2d_dims_t *d);
int nn_conv2d_out_w(const nn_conv2d_dims_t *d);
/* Floats of scratch the conv needs (im2col buffer; 0 for 1x1 and depthwise). */
size_t nn_conv2d_scratch(const nn_conv2d_dims_t *d);
/* y[B,O,Ho,Wo]. Paths: 1x1/stride 1/pad 0 -> one GEMM per image; depthwise (groups == C == O)
 * -> direct loop; otherwise im2col + GEMM per image and group. */
void nn_conv2d_forward(float *y, float *scratch, const float *x, const float *w, const float *b,
                       const nn_conv2d_dims_t *d);
/* dx[B,C,H,W] (may be NULL) +=, dw +=, db (may be NULL) +=. */
void nn_conv2d_backward(float *dx, float *dw, float *db, float *scratch, const float *dy,
                        const float *x, const float *w, const nn_conv2d_dims_t *d);
void nn_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
                           const nn_conv2d_dims_t *d);

/* ---- patch embedding: Conv2d(C -> D, kernel = stride = p, no bias) flattened to tokens --------
 * x[B,C,H,W] -> y[B,G*G,D] with G = H/p (H == W, H % p == 0), token k = gh*G + gw (row-major).
 * w[D, C*p*p] (the conv weight [D,C,p,p] flattened). patches[B*G*G, C*p*p] is a cache the
 * forward fills (the im2col of x) and the backward reads. */
void nn_patch_embed_forward(float *y, float *patches, const float *x, const float *w, int B,
                            int C, int H, int p, int D);
/* dw[D,C*p*p] += dy^T . patches; dx (may be NULL) += the col2im of dy . w. */
void nn_patch_embed_backward(float *dx, float *dw, const float *dy, const float *patches,
                             const float *w, int B, int C, int H, int p, int D);

/* ---- BatchNorm2d on x[B,C,H,W] (HW = H*W) ----------------------------------------------------
 * train != 0: batch statistics over (B, H, W), biased variance for normalising; running stats
 * updated as run = (1 - momentum) * run + momentum * batch, with the UNBIASED batch variance for
 * run_var (PyTorch; momentum 0.1 is "0.9 running + 0.1 batch"). run_mean/run_var may be NULL.
 * train == 0: normalises with run_mean/run_var. Caches mean[C] and rstd[C] (the statistics
 * used). gamma/beta may be NULL (no affine). */
void nn_bn2d_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                     const float *beta, float *run_mean, float *run_var, int B, int C, int HW,
                     float momentum, float eps, int train);
/* train != 0: gradient through the batch statistics; train == 0: statistics are constants.
 * dx +=, dgamma/dbeta (may be NULL) +=. */
void nn_bn2d_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                      const float *mean, const float *rstd, const float *gamma, int B, int C,
                      int HW, int train);

/* ---- pooling on x[B,C,H,W] (square kernel k, stride s, zero padding pad) --------------------- */
/* Average pooling, count_include_pad = true (PyTorch default): y = sum / (k*k). */
void nn_avgpool2d_forward(float *y, const float *x, int B, int C, int H, int W, int k, int s,
                          int pad);
void nn_avgpool2d_backward(float *dx, const float *dy, int B, int C, int H, int W, int k, int s,
                           int pad);
/* Max pooling, padding is -inf; idx[B,C,Ho,Wo] caches the argmax's flat h*W+w (first max wins). */
void nn_maxpool2d_forward(float *y, int32_t *idx, const float *x, int B, int C, int H, int W,
                          int k, int s, int pad);
void nn_maxpool2d_backward(float *dx, const float *dy, const int32_t *idx, int B, int C, int H,
                           int W, int k, int s, int pad);
/* Global average pooling y[B,C] = mean over H*W. */
void nn_gap_forward(float *y, const float *x, int B, int C, int HW);
void nn_gap_backward(float *dx, const float *dy, int B, int C, int HW);
int nn_pool_out(int n, int k, int s, int pad); /* (n + 2 pad - k) / s + 1 */

/* ---- soft-target softmax cross-entropy with sparse targets -----------------------------------
 * logits[B,V]; the target of row i is t[ids[j]] = tw[j] for j in off[i]..off[i+1]-1 (ids unique
 * within a row, 0 <= id < V; tw >= 0), zero elsewhere. loss[i] = -sum_c t_c log softmax(z_i)_c.
 * Fused with its backward: dlogits[B,V] += scale * (softmax(z_i) * sum_c t_c - t_i) (which is
 * scale * (p - t) when the target sums to 1). dlogits may be NULL; loss may be NULL. */
void nn_soft_xent_sparse(float *loss, float *dlogits, const float *logits, const uint32_t *off,
                         const uint32_t *ids, const float *tw, int B, int V, float scale);
/* Dense-target reference: target[B,V]; same outputs. */
void nn_soft_xent_dense_ref(float *loss, float *dlogits, const float *logits,
                            const float *target, int B, int V, float scale);

#endif
