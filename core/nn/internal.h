/* Internal helpers shared by the nn library's .c files (never included by public headers). */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn/kernels.h"

/* Kernel preconditions (shapes, NULL pointers): a violated one is a programmer error, so it
 * prints file:line and aborts, in every build type (ggml's GGML_ASSERT). */
#define NN_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: NN_ASSERT(%s) failed\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Hot loops get clones for AVX-512 and AVX2 chosen at load time (glibc ifunc), so a portable
 * build still runs wide vectors. ISO C mode keeps -ffp-contract=off, so every clone computes the
 * same rounding as the scalar code (vectorising element-wise loops does not reorder sums). */
/* Not under the sanitizers: their instrumented ifunc resolvers run before the runtime exists
 * (ThreadSanitizer crashes there at load). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) &&      \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define NN__HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN__HOT
#endif

/* Branch-free float exp and erf that GCC can vectorise inside the callers' loops (glibc's
 * expf/erff are scalar calls unless -ffast-math, which STYLE.md forbids). */

/* exp(x): Cephes expf range reduction (x = n ln2 + r, |r| <= ln2/2) and its degree-6
 * polynomial; about 1 ulp. Returns 0 below -87.3 (where the true value is denormal) and clamps
 * above 88.7. */
static inline float nn__expf(float x)
{
    float xc = x > 88.7f ? 88.7f : x;
    xc = xc < -87.3f ? -87.3f : xc;
    /* round to nearest with the 1.5*2^23 trick (no floorf call, vectorises without SSE4.1) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    int32_t e = (int32_t)n + 127;
    union {
        uint32_t u;
        float f;
    } s;
    s.u = (uint32_t)e << 23;
    float y = p * s.f;
    return x < -87.3f ? 0.0f : y;
}

/* GELU's Phi(x) = (1 + erf(x / sqrt 2)) / 2 and phi(x) = exp(-x^2/2) / sqrt(2 pi) sharing one
 * exp: Abramowitz & Stegun 7.1.26 for erf(|z|) = 1 - t q(t) exp(-z^2), t = 1/(1 + 0.3275911 |z|),
 * |error| < 1.5e-7 (PyTorch's vectorised CPU erf is the same formula). Phi is close to 1/2 for
 * small x, so the absolute bound is also a relative one for x Phi(x). */
static inline float nn__gelu_cdf_pdf(float x, float *pdf)
{
    float z = x * 0.70710678118654752f;
    float az = z < 0.0f ? -z : z;
    float e = nn__expf(-z * z);
    float t = 1.0f / (1.0f + 0.3275911f * az);
    float q = 1.061405429f;
    q = q * t + -1.453152027f;
    q = q * t + 1.421413741f;
    q = q * t + -0.284496736f;
    q = q * t + 0.254829592f;
    float tail = 0.5f * q * t * e; /* = (1 - erf(|z|)) / 2 */
    *pdf = 0.39894228040143268f * e;
    return x < 0.0f ? tail : 1.0f - tail;
}

/* erf(x): Taylor series for |x| < 0.5 (relative error < 1e-8), Abramowitz & Stegun 7.1.26
 * above (absolute error < 1.5e-7, the formula PyTorch's vectorised CPU erf uses). */
static inline float nn__erff(float x)
{
    float ax = x < 0.0f ? -x : x;
    float x2 = x * x;
    /* 2/sqrt(pi) * (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320 + x^13/9360) */
    float s = 1.0f / 9360.0f;
    s = s * -x2 + 1.0f / 1320.0f;
    s = s * -x2 + 1.0f / 216.0f;
    s = s * -x2 + 1.0f / 42.0f;
    s = s * -x2 + 1.0f / 10.0f;
    s = s * -x2 + 1.0f / 3.0f;
    s = s * -x2 + 1.0f;
    float small = 1.12837916709551257f * x * s;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float q = 1.061405429f;
    q = q * t + -1.453152027f;
    q = q * t + 1.421413741f;
    q = q * t + -0.284496736f;
    q = q * t + 0.254829592f;
    float big = 1.0f - q * t * nn__expf(-x2);
    big = x < 0.0f ? -big : big;
    return ax < 0.5f ? small : big;
}

/* Overwriting variants the model uses where a buffer is produced fresh (saves a memset and a
 * pass per use; the public kernels keep the accumulate contract). */
/* y[M,O] = r[M,O] + x[M,I] W[O,I]^T + b[O]: linear layer fused with its residual add. */
void nn__linear_forward_residual(float *y, const float *r, const float *x, const float *w,
                                 const float *b, int M, int In, int O);
/* dx = dy * gelu'(x) (overwrites; dx may alias dy). */
void nn__gelu_backward_set(float *dx, const float *dy, const float *x, size_t n);
/* nn_attention_backward that overwrites dqkv instead of accumulating. */
void nn__attention_backward_set(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                const float *att, int B, int N, int D, int H);

/* nn_soft_xent_sparse returning the sum of the row losses instead of storing them. */
double nn__soft_xent_sparse_sum(float *dlogits, const float *logits, const uint32_t *off,
                                const uint32_t *ids, const float *tw, int B, int V, float scale);

/* Fork-join over [0, n): fn(ctx, chunk, lo, hi) runs on up to nn__pool_threads() threads (the
 * caller included), in chunks of at least min_per_chunk items; chunk < nn__pool_threads(), so it
 * can index per-thread scratch. Returns when all chunks are done. One submitter at a time. */
typedef void (*nn__task_fn)(void *ctx, int chunk, int lo, int hi);
void nn__parallel_for(int n, int min_per_chunk, nn__task_fn fn, void *ctx);
int nn__pool_threads(void);
/* Called by nn_blas_set_threads. */
void nn__pool_set_threads(int threads);
#define NN__POOL_MAX NN_MAX_THREADS
/* on = 1: remember OpenBLAS's thread count in *saved and set it to 1; on = 0: restore it. */
void nn__blas_single_thread(int on, int *saved);


#endif
