/* Multi-head self-attention core on a fused q|k|v tensor, one (batch, head) pair at a time with
 * GEMMs whose strides read q, k, v and write the output in place (no transposes or copies).
 * Contract in nn/kernels.h; derivation in README.md. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "nn/gemm.h"
#include "nn/kernels.h"

/* dS = P * (dP - rowsum(dP * P)), in place over dP (softmax backward on one [N,N] block). */
NN__HOT static void softmax_bwd_inplace(float *dp, const float *p, int N)
{
    for (int r = 0; r < N; r++) {
        float *g = dp + (size_t)r * (size_t)N;
        const float *pr = p + (size_t)r * (size_t)N;
        float acc[16] = {0};
        int i = 0;
        for (; i + 16 <= N; i += 16) {
            for (int j = 0; j < 16; j++) {
                acc[j] += g[i + j] * pr[i + j];
            }
        }
        for (; i < N; i++) {
            acc[0] += g[i] * pr[i];
        }
        float dot = 0.0f;
        for (int j = 0; j < 16; j++) {
            dot += acc[j];
        }
        for (i = 0; i < N; i++) {
            g[i] = pr[i] * (g[i] - dot);
        }
    }
}

typedef struct {
    float *out, *att, *dqkv, *scratch;
    const float *qkv, *dout, *patt;
    int N, D, H;
    float beta;
} attn_job_t;

/* one job item per (batch, head) pair; the GEMMs read q, k, v and write the output through
 * strides (no copies) */
static void attn_fwd_items(void *ctx, int chunk, int lo, int hi)
{
    const attn_job_t *j = ctx;
    int N = j->N, D = j->D, H = j->H, hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    (void)chunk;
    for (int it = lo; it < hi; it++) {
        int b = it / H, h = it % H;
        const float *q = j->qkv + (size_t)b * (size_t)N * (size_t)ld + (size_t)h * (size_t)hd;
        const float *k = q + D, *v = q + 2 * D;
        float *p = j->att + (size_t)it * (size_t)N * (size_t)N;
        float *o = j->out + (size_t)b * (size_t)N * (size_t)D + (size_t)h * (size_t)hd;
        nn_gemm(NN_NOTRANS, NN_TRANS, N, N, hd, scale, q, ld, k, ld, 0.0f, p, N);
        nn_softmax_forward(p, p, N, N); /* inline inside a job */
        nn_gemm(NN_NOTRANS, NN_NOTRANS, N, hd, N, 1.0f, p, N, v, ld, 0.0f, o, D);
    }
}

static void attn_bwd_items(void *ctx, int chunk, int lo, int hi)
{
    const attn_job_t *j = ctx;
    int N = j->N, D = j->D, H = j->H, hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd), beta = j->beta;
    float *scratch = j->scratch + (size_t)chunk * (size_t)N * (size_t)N;
    for (int it = lo; it < hi; it++) {
        int b = it / H, h = it % H;
        size_t col = (size_t)h * (size_t)hd;
        const float *q = j->qkv + (size_t)b * (size_t)N * (size_t)ld + col, *k = q + D, *v = q + 2 * D;
        float *dq = j->dqkv + (size_t)b * (size_t)N * (size_t)ld + col, *dk = dq + D, *dv = dq + 2 * D;
        const float *p = j->patt + (size_t)it * (size_t)N * (size_t)N;
        const float *dout_bh = j->dout + (size_t)b * (size_t)N * (size_t)D + col;
        /* dP = dO V^T; dV += P^T dO */
        nn_gemm(NN_NOTRANS, NN_TRANS, N, N, hd, 1.0f, dout_bh, D, v, ld, 0.0f, scratch, N);
        nn_gemm(NN_TRANS, NN_NOTRANS, N, hd, N, 1.0f, p, N, dout_bh, D, beta, dv, ld);
        softmax_bwd_inplace(scratch, p, N);
        /* S = scale Q K^T: dQ += scale dS K; dK += scale dS^T Q */
        nn_gemm(NN_NOTRANS, NN_NOTRANS, N, hd, N, scale, scratch, N, k, ld, beta, dq, ld);
        nn_gemm(NN_TRANS, NN_NOTRANS, N, hd, N, scale, scratch, N, q, ld, beta, dk, ld);
    }
}

/* The per-head GEMMs are tiny (65 x 65 x 64 for ViT-Ti/8 at 64 px): our threads take whole
 * (batch, head) pairs and OpenBLAS runs single-threaded meanwhile, instead of OpenBLAS
 * splitting each tiny GEMM. */
static void attn_run(nn__task_fn fn, attn_job_t *j, int items)
{
    int saved = 1;
    int par = nn__pool_threads() > 1;
    if (par) {
        nn__blas_single_thread(1, &saved);
    }
    nn__parallel_for(items, 1, fn, j);
    if (par) {
        nn__blas_single_thread(0, &saved);
    }
}

void nn_attention_forward(float *out, float *att, const float *qkv, int B, int N, int D, int H)
{
    NN_ASSERT(out && att && qkv && B >= 0 && N > 0 && H > 0 && D % H == 0);
    attn_job_t j = {.out = out, .att = att, .qkv = qkv, .N = N, .D = D, .H = H};
    attn_run(attn_fwd_items, &j, B * H);
}

static void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *att, int B, int N, int D, int H, float beta)
{
    NN_ASSERT(dqkv && scratch && dout && qkv && att && B >= 0 && N > 0 && H > 0 && D % H == 0);
    attn_job_t j = {.dqkv = dqkv, .scratch = scratch, .dout = dout, .qkv = qkv, .patt = att,
                    .N = N, .D = D, .H = H, .beta = beta};
    attn_run(attn_bwd_items, &j, B * H);
}

void nn_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int N, int D, int H)
{
    attention_backward(dqkv, scratch, dout, qkv, att, B, N, D, H, 1.0f);
}

void nn__attention_backward_set(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                const float *att, int B, int N, int D, int H)
{
    /* every (b, h) block of dq, dk, dv is written by exactly one GEMM: beta = 0 overwrites */
    attention_backward(dqkv, scratch, dout, qkv, att, B, N, D, H, 0.0f);
}

void nn_attention_forward_ref(float *out, float *att, const float *qkv, int B, int N, int D,
                              int H)
{
    int hd = D / H;
    size_t ld = (size_t)(3 * D);
    double scale = 1.0 / sqrt((double)hd);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            float *p = att + ((size_t)b * (size_t)H + (size_t)h) * (size_t)N * (size_t)N;
            for (int i = 0; i < N; i++) {
                const float *q = qkv + ((size_t)b * (size_t)N + (size_t)i) * ld + (size_t)h * (size_t)hd;
                double mx = -INFINITY, s = 0.0;
                for (int j = 0; j < N; j++) {
                    const float *k = qkv + ((size_t)b * (size_t)N + (size_t)j) * ld + (size_t)D +
                                     (size_t)h * (size_t)hd;
                    double dot = 0.0;
                    for (int c = 0; c < hd; c++) {
                        dot += (double)q[c] * (double)k[c];
                    }
                    p[(size_t)i * (size_t)N + (size_t)j] = (float)(dot * scale);
                    mx = fmax(mx, dot * scale);
                }
                for (int j = 0; j < N; j++) {
                    s += exp((double)p[(size_t)i * (size_t)N + (size_t)j] - mx);
                }
                for (int j = 0; j < N; j++) {
                    float *pij = &p[(size_t)i * (size_t)N + (size_t)j];
                    *pij = (float)(exp((double)*pij - mx) / s);
                }
                for (int c = 0; c < hd; c++) {
                    double acc = 0.0;
                    for (int j = 0; j < N; j++) {
                        acc += (double)p[(size_t)i * (size_t)N + (size_t)j] *
                               (double)qkv[((size_t)b * (size_t)N + (size_t)j) * ld +
                                           (size_t)(2 * D) + (size_t)h * (size_t)hd + (size_t)c];
                    }
                    out[((size_t)b * (size_t)N + (size_t)i) * (size_t)D + (size_t)h * (size_t)hd +
                        (size_t)c] = (float)acc;
                }
            }
        }
    }
}
