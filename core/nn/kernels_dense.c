/* Dense kernels: linear, GELU, ReLU, residual add, softmax, LayerNorm, token mean pooling and
 * the sparse soft-target cross-entropy (contracts in nn/kernels.h; derivations in README.md). */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "nn/gemm.h"
#include "nn/kernels.h"

/* ---- linear ------------------------------------------------------------------------------- */

void nn_linear_forward(float *y, const float *x, const float *w, const float *b, int M, int I,
                       int O)
{
    NN_ASSERT(y && x && w && M >= 0 && I > 0 && O > 0);
    float beta = 0.0f;
    if (b) {
        /* y = b broadcast, then y += x W^T in the same GEMM (beta = 1) */
        for (int m = 0; m < M; m++) {
            memcpy(y + (size_t)m * (size_t)O, b, sizeof(float) * (size_t)O);
        }
        beta = 1.0f;
    }
    nn_gemm(NN_NOTRANS, NN_TRANS, M, O, I, 1.0f, x, I, w, I, beta, y, O);
}

void nn_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int M, int I,
                           int O)
{
    for (int m = 0; m < M; m++) {
        for (int o = 0; o < O; o++) {
            double acc = b ? (double)b[o] : 0.0;
            for (int i = 0; i < I; i++) {
                acc += (double)x[(size_t)m * (size_t)I + (size_t)i] *
                       (double)w[(size_t)o * (size_t)I + (size_t)i];
            }
            y[(size_t)m * (size_t)O + (size_t)o] = (float)acc;
        }
    }
}

NN__HOT static void colsum_acc(float *db, const float *dy, int M, int O)
{
    for (int m = 0; m < M; m++) {
        const float *row = dy + (size_t)m * (size_t)O;
        for (int o = 0; o < O; o++) {
            db[o] += row[o];
        }
    }
}

void nn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int M, int I, int O)
{
    NN_ASSERT(dw && dy && x && w && M >= 0 && I > 0 && O > 0);
    if (dx) {
        nn_gemm(NN_NOTRANS, NN_NOTRANS, M, I, O, 1.0f, dy, O, w, I, 1.0f, dx, I);
    }
    nn_gemm(NN_TRANS, NN_NOTRANS, O, I, M, 1.0f, dy, O, x, I, 1.0f, dw, I);
    if (db) {
        colsum_acc(db, dy, M, O);
    }
}

/* ---- GELU (exact erf form) ----------------------------------------------------------------- */

NN__HOT void nn_gelu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + nn__erff(v * 0.70710678118654752f));
    }
}

NN__HOT void nn_gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    /* d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + nn__erff(v * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * nn__expf(-0.5f * v * v);
        dx[i] += dy[i] * (cdf + v * pdf);
    }
}

void nn_gelu_forward_ref(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0))));
    }
}

/* ---- ReLU, add ------------------------------------------------------------------------------ */

NN__HOT void nn_relu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
}

NN__HOT void nn_relu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
    }
}

NN__HOT void nn_add_forward(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = a[i] + b[i];
    }
}

NN__HOT void nn_add_backward(float *da, float *db, const float *dy, size_t n)
{
    if (da) {
        for (size_t i = 0; i < n; i++) {
            da[i] += dy[i];
        }
    }
    if (db) {
        for (size_t i = 0; i < n; i++) {
            db[i] += dy[i];
        }
    }
}

/* ---- reductions with 16 independent lanes: vectorisable without reassociation flags -------- */

#define LANES 16

static inline float lane_sum(const float acc[LANES])
{
    float s = 0.0f;
    for (int j = 0; j < LANES; j++) {
        s += acc[j];
    }
    return s;
}

static inline float row_max(const float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++) {
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

/* ---- softmax --------------------------------------------------------------------------------- */

NN__HOT void nn_softmax_forward(float *y, const float *x, int M, int N)
{
    NN_ASSERT(y && x && M >= 0 && N > 0);
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * (size_t)N;
        float *yr = y + (size_t)r * (size_t)N;
        float mx = row_max(xr, N);
        float acc[LANES] = {0};
        int i = 0;
        for (; i + LANES <= N; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                float e = nn__expf(xr[i + j] - mx);
                yr[i + j] = e;
                acc[j] += e;
            }
        }
        for (; i < N; i++) {
            float e = nn__expf(xr[i] - mx);
            yr[i] = e;
            acc[0] += e;
        }
        float inv = 1.0f / lane_sum(acc);
        for (i = 0; i < N; i++) {
            yr[i] *= inv;
        }
    }
}

void nn_softmax_forward_ref(float *y, const float *x, int M, int N)
{
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * (size_t)N;
        double mx = xr[0], s = 0.0;
        for (int i = 1; i < N; i++) {
            mx = xr[i] > mx ? xr[i] : mx;
        }
        for (int i = 0; i < N; i++) {
            s += exp((double)xr[i] - mx);
        }
        for (int i = 0; i < N; i++) {
            y[(size_t)r * (size_t)N + (size_t)i] = (float)(exp((double)xr[i] - mx) / s);
        }
    }
}

NN__HOT void nn_softmax_backward(float *dx, const float *dy, const float *y, int M, int N)
{
    NN_ASSERT(dx && dy && y && M >= 0 && N > 0);
    for (int r = 0; r < M; r++) {
        const float *yr = y + (size_t)r * (size_t)N, *gr = dy + (size_t)r * (size_t)N;
        float *dr = dx + (size_t)r * (size_t)N;
        float acc[LANES] = {0};
        int i = 0;
        for (; i + LANES <= N; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                acc[j] += gr[i + j] * yr[i + j];
            }
        }
        for (; i < N; i++) {
            acc[0] += gr[i] * yr[i];
        }
        float dot = lane_sum(acc);
        for (i = 0; i < N; i++) {
            dr[i] += yr[i] * (gr[i] - dot);
        }
    }
}

/* ---- LayerNorm ------------------------------------------------------------------------------- */

NN__HOT void nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                  const float *w, const float *b, int M, int D, float eps)
{
    NN_ASSERT(y && mean && rstd && x && w && b && M >= 0 && D > 0);
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * (size_t)D;
        float *yr = y + (size_t)r * (size_t)D;
        float acc[LANES] = {0};
        int i = 0;
        for (; i + LANES <= D; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                acc[j] += xr[i + j];
            }
        }
        for (; i < D; i++) {
            acc[0] += xr[i];
        }
        float mu = lane_sum(acc) / (float)D;
        /* second pass on centred values: no cancellation for large means */
        float acc2[LANES] = {0};
        for (i = 0; i + LANES <= D; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                float d = xr[i + j] - mu;
                acc2[j] += d * d;
            }
        }
        for (; i < D; i++) {
            float d = xr[i] - mu;
            acc2[0] += d * d;
        }
        float rs = 1.0f / sqrtf(lane_sum(acc2) / (float)D + eps);
        for (i = 0; i < D; i++) {
            yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
        }
        mean[r] = mu;
        rstd[r] = rs;
    }
}

NN__HOT void nn_layernorm_backward(float *dx, float *dw, float *db, const float *dy,
                                   const float *x, const float *mean, const float *rstd,
                                   const float *w, int M, int D)
{
    NN_ASSERT(dx && dy && x && mean && rstd && w && M >= 0 && D > 0);
    for (int r = 0; r < M; r++) {
        const float *xr = x + (size_t)r * (size_t)D, *gr = dy + (size_t)r * (size_t)D;
        float *dr = dx + (size_t)r * (size_t)D;
        float mu = mean[r], rs = rstd[r];
        /* dxhat = dy * w; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
        float a1[LANES] = {0}, a2[LANES] = {0};
        int i = 0;
        for (; i + LANES <= D; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                float xh = (xr[i + j] - mu) * rs;
                float g = gr[i + j] * w[i + j];
                a1[j] += g;
                a2[j] += g * xh;
            }
        }
        for (; i < D; i++) {
            float xh = (xr[i] - mu) * rs;
            float g = gr[i] * w[i];
            a1[0] += g;
            a2[0] += g * xh;
        }
        float m1 = lane_sum(a1) / (float)D, m2 = lane_sum(a2) / (float)D;
        for (i = 0; i < D; i++) {
            float xh = (xr[i] - mu) * rs;
            dr[i] += rs * (gr[i] * w[i] - m1 - xh * m2);
        }
        if (dw) {
            for (i = 0; i < D; i++) {
                dw[i] += gr[i] * (xr[i] - mu) * rs;
            }
        }
        if (db) {
            for (i = 0; i < D; i++) {
                db[i] += gr[i];
            }
        }
    }
}

/* ---- mean over tokens ---------------------------------------------------------------------- */

void nn_mean_tokens_forward(float *y, const float *x, int B, int N, int D, int start)
{
    NN_ASSERT(y && x && B >= 0 && D > 0 && start >= 0 && start < N);
    float inv = 1.0f / (float)(N - start);
    for (int b = 0; b < B; b++) {
        float *yb = y + (size_t)b * (size_t)D;
        memset(yb, 0, sizeof(float) * (size_t)D);
        for (int n = start; n < N; n++) {
            const float *xr = x + ((size_t)b * (size_t)N + (size_t)n) * (size_t)D;
            for (int d = 0; d < D; d++) {
                yb[d] += xr[d];
            }
        }
        for (int d = 0; d < D; d++) {
            yb[d] *= inv;
        }
    }
}

void nn_mean_tokens_backward(float *dx, const float *dy, int B, int N, int D, int start)
{
    NN_ASSERT(dx && dy && B >= 0 && D > 0 && start >= 0 && start < N);
    float inv = 1.0f / (float)(N - start);
    for (int b = 0; b < B; b++) {
        const float *gb = dy + (size_t)b * (size_t)D;
        for (int n = start; n < N; n++) {
            float *dr = dx + ((size_t)b * (size_t)N + (size_t)n) * (size_t)D;
            for (int d = 0; d < D; d++) {
                dr[d] += gb[d] * inv;
            }
        }
    }
}

/* ---- soft-target cross-entropy ------------------------------------------------------------- */

/* log-sum-exp of one row, lane-parallel. */
NN__HOT static float row_lse(const float *z, int V)
{
    float mx = row_max(z, V);
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= V; i += LANES) {
        for (int j = 0; j < LANES; j++) {
            acc[j] += nn__expf(z[i + j] - mx);
        }
    }
    for (; i < V; i++) {
        acc[0] += nn__expf(z[i] - mx);
    }
    return mx + logf(lane_sum(acc));
}

NN__HOT static void row_softmax_grad(float *d, const float *z, float lse, float k, int V)
{
    for (int i = 0; i < V; i++) {
        d[i] += k * nn__expf(z[i] - lse);
    }
}

void nn_soft_xent_sparse(float *loss, float *dlogits, const float *logits, const uint32_t *off,
                         const uint32_t *ids, const float *tw, int B, int V, float scale)
{
    NN_ASSERT(logits && off && (ids || off[B] == 0) && B >= 0 && V > 0);
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * (size_t)V;
        float lse = row_lse(z, V);
        /* loss_i = sum_c t_c (lse - z_c); only the target's nonzeros contribute */
        double tsum = 0.0, l = 0.0;
        for (uint32_t j = off[i]; j < off[i + 1]; j++) {
            NN_ASSERT(ids[j] < (uint32_t)V);
            tsum += tw[j];
            l += (double)tw[j] * ((double)lse - (double)z[ids[j]]);
        }
        if (loss) {
            loss[i] = (float)l;
        }
        if (dlogits) {
            float *d = dlogits + (size_t)i * (size_t)V;
            row_softmax_grad(d, z, lse, scale * (float)tsum, V);
            for (uint32_t j = off[i]; j < off[i + 1]; j++) {
                d[ids[j]] -= scale * tw[j];
            }
        }
    }
}

void nn_soft_xent_dense_ref(float *loss, float *dlogits, const float *logits,
                            const float *target, int B, int V, float scale)
{
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * (size_t)V, *t = target + (size_t)i * (size_t)V;
        double mx = z[0], s = 0.0, tsum = 0.0, l = 0.0;
        for (int c = 1; c < V; c++) {
            mx = z[c] > mx ? z[c] : mx;
        }
        for (int c = 0; c < V; c++) {
            s += exp((double)z[c] - mx);
        }
        double lse = mx + log(s);
        for (int c = 0; c < V; c++) {
            tsum += t[c];
            l += (double)t[c] * (lse - (double)z[c]);
        }
        if (loss) {
            loss[i] = (float)l;
        }
        if (dlogits) {
            for (int c = 0; c < V; c++) {
                dlogits[(size_t)i * (size_t)V + (size_t)c] +=
                    (float)((double)scale * (exp((double)z[c] - lse) * tsum - (double)t[c]));
            }
        }
    }
}
