/* Dense kernels: linear, GELU, ReLU, residual add, softmax, LayerNorm, token mean pooling and
 * the sparse soft-target cross-entropy (contracts in nn/kernels.h; derivations in README.md). */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "nn/gemm.h"
#include "nn/kernels.h"

/* ---- linear ------------------------------------------------------------------------------- */

static void bias_rows_parallel(float *y, const float *r, const float *b, int M, int O);

void nn_linear_forward(float *y, const float *x, const float *w, const float *b, int M, int I,
                       int O)
{
    NN_ASSERT(y && x && w && M >= 0 && I > 0 && O > 0);
    float beta = 0.0f;
    if (b) {
        /* y = b broadcast, then y += x W^T in the same GEMM (beta = 1) */
        bias_rows_parallel(y, NULL, b, M, O);
        beta = 1.0f;
    }
    nn_gemm(NN_NOTRANS, NN_TRANS, M, O, I, 1.0f, x, I, w, I, beta, y, O);
}

typedef struct {
    float *y;
    const float *r, *b, *x;
    int O, D;
    float eps;
    float *dw, *db;
    const float *dy, *w, *mean, *rstd;
    float *mean_out, *rstd_out;
    size_t n;
} rows_job_t;

NN__HOT static void residual_bias_rows(void *ctx, int chunk, int lo, int hi)
{
    const rows_job_t *j = ctx;
    (void)chunk;
    int O = j->O;
    for (int m = lo; m < hi; m++) {
        float *yr = j->y + (size_t)m * (size_t)O;
        if (!j->r) {
            memcpy(yr, j->b, sizeof(float) * (size_t)O);
            continue;
        }
        const float *rr = j->r + (size_t)m * (size_t)O;
        for (int o = 0; o < O; o++) {
            yr[o] = rr[o] + j->b[o];
        }
    }
}

/* y[m,:] = r[m,:] + b (r NULL: y[m,:] = b), rows split over the pool */
static void bias_rows_parallel(float *y, const float *r, const float *b, int M, int O)
{
    rows_job_t j = {.y = y, .r = r, .b = b, .O = O};
    nn__parallel_for(M, 64, residual_bias_rows, &j);
}

void nn__linear_forward_residual(float *y, const float *r, const float *x, const float *w,
                                 const float *b, int M, int I, int O)
{
    NN_ASSERT(y && r && x && w && b && M >= 0 && I > 0 && O > 0);
    bias_rows_parallel(y, r, b, M, O);
    nn_gemm(NN_NOTRANS, NN_TRANS, M, O, I, 1.0f, x, I, w, I, 1.0f, y, O);
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

typedef struct {
    float *db;
    const float *dy;
    int M, O;
} colsum_job_t;

NN__HOT static void colsum_cols(void *ctx, int chunk, int lo, int hi)
{
    const colsum_job_t *j = ctx;
    (void)chunk;
    for (int m = 0; m < j->M; m++) {
        const float *row = j->dy + (size_t)m * (size_t)j->O;
        for (int o = lo; o < hi; o++) {
            j->db[o] += row[o];
        }
    }
}

/* db[o] += sum_m dy[m,o]; threads split the columns, so no reduction is needed */
static void colsum_acc(float *db, const float *dy, int M, int O)
{
    colsum_job_t j = {db, dy, M, O};
    nn__parallel_for(O, (int)(16384 / (M > 0 ? M : 1)) + 16, colsum_cols, &j);
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

typedef struct {
    float *y;
    const float *x, *dy;
    int mode; /* 0 forward, 1 backward accumulate, 2 backward overwrite */
} gelu_job_t;

NN__HOT static void gelu_range(void *ctx, int chunk, int lo, int hi)
{
    const gelu_job_t *j = ctx;
    const float *x = j->x, *dy = j->dy;
    float *y = j->y;
    (void)chunk;
    if (j->mode == 0) {
        for (int i = lo; i < hi; i++) {
            float pdf;
            y[i] = x[i] * nn__gelu_cdf_pdf(x[i], &pdf);
        }
        return;
    }
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    for (int i = lo; i < hi; i++) {
        float v = x[i], pdf;
        float cdf = nn__gelu_cdf_pdf(v, &pdf);
        float d = dy[i] * (cdf + v * pdf);
        y[i] = j->mode == 1 ? y[i] + d : d;
    }
}

static void gelu_run(float *y, const float *x, const float *dy, size_t n, int mode)
{
    /* chunks of 2^30 keep int ranges; a model never gets near that per call */
    for (size_t off = 0; off < n; off += (size_t)1 << 30) {
        size_t len = n - off < ((size_t)1 << 30) ? n - off : (size_t)1 << 30;
        gelu_job_t j = {y + off, x + off, dy ? dy + off : NULL, mode};
        nn__parallel_for((int)len, 16384, gelu_range, &j);
    }
}

void nn_gelu_forward(float *y, const float *x, size_t n)
{
    NN_ASSERT(y && x);
    gelu_run(y, x, NULL, n, 0);
}

void nn_gelu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    NN_ASSERT(dx && dy && x && dx != dy);
    gelu_run(dx, x, dy, n, 1);
}

void nn__gelu_backward_set(float *dx, const float *dy, const float *x, size_t n)
{
    NN_ASSERT(dx && dy && x);
    gelu_run(dx, x, dy, n, 2);
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

typedef struct {
    float *y;
    const float *x;
    int N;
} softmax_job_t;

NN__HOT static void softmax_rows(void *ctx, int chunk, int lo, int hi)
{
    const softmax_job_t *j = ctx;
    int N = j->N;
    (void)chunk;
    for (int r = lo; r < hi; r++) {
        const float *xr = j->x + (size_t)r * (size_t)N;
        float *yr = j->y + (size_t)r * (size_t)N;
        float mx = row_max(xr, N);
        float acc[LANES] = {0};
        int i = 0;
        for (; i + LANES <= N; i += LANES) {
            for (int k = 0; k < LANES; k++) {
                float e = nn__expf(xr[i + k] - mx);
                yr[i + k] = e;
                acc[k] += e;
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

void nn_softmax_forward(float *y, const float *x, int M, int N)
{
    NN_ASSERT(y && x && M >= 0 && N > 0);
    softmax_job_t j = {y, x, N};
    nn__parallel_for(M, 1 + 16384 / N, softmax_rows, &j);
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

NN__HOT static void ln_fwd_rows(void *ctx, int chunk, int lo, int hi)
{
    const rows_job_t *j = ctx;
    int D = j->D;
    const float *w = j->w, *b = j->b;
    (void)chunk;
    for (int r = lo; r < hi; r++) {
        const float *xr = j->x + (size_t)r * (size_t)D;
        float *yr = j->y + (size_t)r * (size_t)D;
        float acc[LANES] = {0};
        int i = 0;
        for (; i + LANES <= D; i += LANES) {
            for (int k = 0; k < LANES; k++) {
                acc[k] += xr[i + k];
            }
        }
        for (; i < D; i++) {
            acc[0] += xr[i];
        }
        float mu = lane_sum(acc) / (float)D;
        /* second pass on centred values: no cancellation for large means */
        float acc2[LANES] = {0};
        for (i = 0; i + LANES <= D; i += LANES) {
            for (int k = 0; k < LANES; k++) {
                float d = xr[i + k] - mu;
                acc2[k] += d * d;
            }
        }
        for (; i < D; i++) {
            float d = xr[i] - mu;
            acc2[0] += d * d;
        }
        float rs = 1.0f / sqrtf(lane_sum(acc2) / (float)D + j->eps);
        for (i = 0; i < D; i++) {
            yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
        }
        j->mean_out[r] = mu;
        j->rstd_out[r] = rs;
    }
}

void nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int M, int D, float eps)
{
    NN_ASSERT(y && mean && rstd && x && w && b && M >= 0 && D > 0);
    rows_job_t j = {.y = y, .x = x, .w = w, .b = b, .D = D, .eps = eps, .mean_out = mean,
                    .rstd_out = rstd};
    nn__parallel_for(M, 1 + 8192 / D, ln_fwd_rows, &j);
}

/* dx rows: dxhat = dy * w; dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
NN__HOT static void ln_bwd_rows(void *ctx, int chunk, int lo, int hi)
{
    const rows_job_t *j = ctx;
    int D = j->D;
    const float *w = j->w;
    (void)chunk;
    for (int r = lo; r < hi; r++) {
        const float *xr = j->x + (size_t)r * (size_t)D, *gr = j->dy + (size_t)r * (size_t)D;
        float *dr = j->y + (size_t)r * (size_t)D;
        float mu = j->mean[r], rs = j->rstd[r];
        float a1[LANES] = {0}, a2[LANES] = {0};
        int i = 0;
        for (; i + LANES <= D; i += LANES) {
            for (int k = 0; k < LANES; k++) {
                float xh = (xr[i + k] - mu) * rs;
                float g = gr[i + k] * w[i + k];
                a1[k] += g;
                a2[k] += g * xh;
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
    }
}

/* dw, db columns: threads split the features, each sums over all rows (no reduction step) */
NN__HOT static void ln_bwd_cols(void *ctx, int chunk, int lo, int hi)
{
    const rows_job_t *j = ctx;
    int D = j->D;
    (void)chunk;
    for (size_t r = 0; r < j->n; r++) {
        const float *xr = j->x + r * (size_t)D, *gr = j->dy + r * (size_t)D;
        float mu = j->mean[r], rs = j->rstd[r];
        if (j->dw) {
            for (int i = lo; i < hi; i++) {
                j->dw[i] += gr[i] * (xr[i] - mu) * rs;
            }
        }
        if (j->db) {
            for (int i = lo; i < hi; i++) {
                j->db[i] += gr[i];
            }
        }
    }
}

void nn_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *w, int M, int D)
{
    NN_ASSERT(dx && dy && x && mean && rstd && w && M >= 0 && D > 0);
    rows_job_t j = {.y = dx, .x = x, .w = w, .dy = dy, .D = D, .mean = mean, .rstd = rstd,
                    .dw = dw, .db = db, .n = (size_t)M};
    nn__parallel_for(M, 1 + 8192 / D, ln_bwd_rows, &j);
    if (dw || db) {
        nn__parallel_for(D, 16, ln_bwd_cols, &j);
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

typedef struct {
    float *loss, *dlogits;
    const float *logits, *tw;
    const uint32_t *off, *ids;
    int V;
    float scale;
    double partial[NN_MAX_THREADS]; /* per-chunk loss sums (nn__soft_xent_sparse_sum) */
} xent_job_t;

static void xent_rows(void *ctx, int chunk, int lo, int hi)
{
    const xent_job_t *j = ctx;
    const uint32_t *off = j->off, *ids = j->ids;
    const float *tw = j->tw;
    int V = j->V;
    (void)chunk;
    for (int i = lo; i < hi; i++) {
        const float *z = j->logits + (size_t)i * (size_t)V;
        float lse = row_lse(z, V);
        /* loss_i = sum_c t_c (lse - z_c); only the target's nonzeros contribute */
        double tsum = 0.0, l = 0.0;
        for (uint32_t k = off[i]; k < off[i + 1]; k++) {
            NN_ASSERT(ids[k] < (uint32_t)V);
            tsum += tw[k];
            l += (double)tw[k] * ((double)lse - (double)z[ids[k]]);
        }
        if (j->loss) {
            j->loss[i] = (float)l;
        }
        ((xent_job_t *)ctx)->partial[chunk] += (double)(float)l;
        if (j->dlogits) {
            float *d = j->dlogits + (size_t)i * (size_t)V;
            row_softmax_grad(d, z, lse, j->scale * (float)tsum, V);
            for (uint32_t k = off[i]; k < off[i + 1]; k++) {
                d[ids[k]] -= j->scale * tw[k];
            }
        }
    }
}

void nn_soft_xent_sparse(float *loss, float *dlogits, const float *logits, const uint32_t *off,
                         const uint32_t *ids, const float *tw, int B, int V, float scale)
{
    NN_ASSERT(logits && off && (ids || off[B] == off[0]) && B >= 0 && V > 0);
    xent_job_t j = {loss, dlogits, logits, tw, off, ids, V, scale, {0}};
    nn__parallel_for(B, 1, xent_rows, &j);
}

double nn__soft_xent_sparse_sum(float *dlogits, const float *logits, const uint32_t *off,
                                const uint32_t *ids, const float *tw, int B, int V, float scale)
{
    NN_ASSERT(logits && off && (ids || off[B] == off[0]) && B >= 0 && V > 0);
    xent_job_t j = {NULL, dlogits, logits, tw, off, ids, V, scale, {0}};
    nn__parallel_for(B, 1, xent_rows, &j);
    double total = 0.0;
    for (int c = 0; c < NN_MAX_THREADS; c++) {
        total += j.partial[c];
    }
    return total;
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
