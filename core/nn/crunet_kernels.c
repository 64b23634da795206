/* CRU-Net kernels on channel-major activations [C, B, H, W] (contracts in crunet_internal.h).
 *
 * Depthwise/grouped 3x3 and BatchNorm are memory-bound, so they are written as direct loops over
 * contiguous rows that GCC vectorises (NN__HOT clones them for AVX-512/AVX2): reductions use
 * explicit lane arrays (ISO C forbids the compiler from reassociating a scalar sum), strided
 * convolutions read a de-interleaved copy of the input so every tap is a unit-stride row, and
 * BN is fused with the ReLU that always follows it in a pre-activation network. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "crunet_internal.h"
#include "internal.h"
#include "nn/gemm.h"

/* ---- BatchNorm + ReLU ----------------------------------------------------------------------
 * Sums run in 16 float lanes over blocks of BLK values (GCC vectorises the lane arrays; a scalar
 * sum could not be reordered), each block's total is added in double. Channels are independent,
 * so the pool splits them across threads. */

#define BLK 2048
#define NL 16

/* NL float lanes as one GCC vector (split into narrower registers where the CPU has them). */
typedef float lanes_t __attribute__((vector_size(NL * sizeof(float))));
typedef int32_t lane_mask_t __attribute__((vector_size(NL * sizeof(int32_t))));

typedef struct {
    float *y, *mean, *rstd, *run_mean, *run_var, *dx, *dgamma, *dbeta;
    const float *x, *dy, *gamma, *beta;
    const float *cmean, *crstd;
    size_t n;
    float momentum, eps;
    int train, accumulate;
} bn_job_t;

/* sum of (x - k) and (x - k)^2 over one channel */
NN__HOT static void shifted_sums(const float *xc, size_t n, float k, double *S, double *SS)
{
    double s_ = 0.0, ss_ = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += BLK) {
        size_t i1 = i0 + BLK < n ? i0 + BLK : n, i = i0;
        float s[NL] = {0}, ss[NL] = {0};
        for (; i + NL <= i1; i += NL) {
            for (int j = 0; j < NL; j++) {
                float d = xc[i + (size_t)j] - k;
                s[j] += d;
                ss[j] += d * d;
            }
        }
        for (; i < i1; i++) {
            float d = xc[i] - k;
            s[0] += d;
            ss[0] += d * d;
        }
        for (int j = 0; j < NL; j++) {
            s_ += (double)s[j];
            ss_ += (double)ss[j];
        }
    }
    *S = s_;
    *SS = ss_;
}

NN__HOT static void bn_fwd_channels(void *ctx, int chunk, int lo, int hi)
{
    const bn_job_t *j = ctx;
    (void)chunk;
    size_t n = j->n;
    for (int c = lo; c < hi; c++) {
        const float *xc = j->x + (size_t)c * n;
        float *yc = j->y + (size_t)c * n;
        float mu, rs;
        if (j->train) {
            /* shifted by the first value: stable for data far from zero */
            double S, SS;
            shifted_sums(xc, n, xc[0], &S, &SS);
            double m = S / (double)n;
            double var = SS / (double)n - m * m; /* biased */
            var = var < 0.0 ? 0.0 : var;
            mu = (float)((double)xc[0] + m);
            rs = (float)(1.0 / sqrt(var + (double)j->eps));
            if (j->run_mean) {
                j->run_mean[c] = j->momentum * j->run_mean[c] + (1.0f - j->momentum) * mu;
            }
            if (j->run_var) {
                j->run_var[c] = j->momentum * j->run_var[c] + (1.0f - j->momentum) * (float)var;
            }
        } else {
            mu = j->run_mean[c];
            rs = 1.0f / sqrtf(j->run_var[c] + j->eps);
        }
        j->mean[c] = mu;
        j->rstd[c] = rs;
        float a = rs * j->gamma[c], b = j->beta[c] - mu * a;
        for (size_t i = 0; i < n; i++) {
            float v = xc[i] * a + b;
            yc[i] = v > 0.0f ? v : 0.0f;
        }
    }
}

void nn__cru_bnrelu_fwd(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, float *run_mean, float *run_var, int C, size_t n,
                        float momentum, float eps, int train)
{
    NN_ASSERT(y && mean && rstd && x && gamma && beta && C > 0 && n > 0);
    NN_ASSERT(train || (run_mean && run_var));
    bn_job_t j = {.y = y, .mean = mean, .rstd = rstd, .run_mean = run_mean, .run_var = run_var,
                  .x = x, .gamma = gamma, .beta = beta, .n = n, .momentum = momentum, .eps = eps,
                  .train = train};
    nn__parallel_for(C, 1 + (int)(32768 / n), bn_fwd_channels, &j);
}

NN__HOT static void bn_bwd_channels(void *ctx, int chunk, int lo, int hi)
{
    const bn_job_t *j = ctx;
    (void)chunk;
    size_t n = j->n;
    for (int c = lo; c < hi; c++) {
        const float *xc = j->x + (size_t)c * n, *gc = j->dy + (size_t)c * n;
        float *dc = j->dx + (size_t)c * n;
        float mu = j->cmean[c], rs = j->crstd[c];
        float a = rs * j->gamma[c], b = j->beta[c] - mu * a;
        double SG = 0.0, SGX = 0.0;
        /* Explicit vectors: written as a lane-array loop like shifted_sums, GCC 12 at -O3 unrolls
         * the lanes and then fails to vectorise the ReLU mask (the whole CRU-Net backward ran
         * 1.6x slower than at -O2). Same lane sums, same rounding. */
        lanes_t va = {0}, vb = {0}, vmu = {0}, zero = {0};
        va += a;
        vb += b;
        vmu += mu;
        for (size_t i0 = 0; i0 < n; i0 += BLK) {
            size_t i1 = i0 + BLK < n ? i0 + BLK : n, i = i0;
            lanes_t sg = {0}, sgx = {0};
            for (; i + NL <= i1; i += NL) {
                lanes_t xv, g;
                memcpy(&xv, xc + i, sizeof xv);
                memcpy(&g, gc + i, sizeof g);
                lane_mask_t pass = xv * va + vb > zero;
                lanes_t gm = (lanes_t)((lane_mask_t)g & pass);
                sg += gm;
                sgx += gm * (xv - vmu);
            }
            for (; i < i1; i++) {
                float xv = xc[i];
                float gm = xv * a + b > 0.0f ? gc[i] : 0.0f;
                sg[0] += gm;
                sgx[0] += gm * (xv - mu);
            }
            for (int k = 0; k < NL; k++) {
                SG += (double)sg[k];
                SGX += (double)sgx[k];
            }
        }
        SGX *= (double)rs; /* sum of dy * xhat over the ReLU's pass-through */
        j->dgamma[c] += (float)SGX;
        j->dbeta[c] += (float)SG;
        /* dx = a (g - mean(g) - xhat mean(g xhat)) = a g + c1 + c2 x */
        float m1 = j->train ? (float)(SG / (double)n) : 0.0f;
        float m2 = j->train ? (float)(SGX / (double)n) : 0.0f;
        float c2 = -a * rs * m2;
        float c1 = -a * m1 - c2 * mu;
        if (j->accumulate) {
            for (size_t k = 0; k < n; k++) {
                float xv = xc[k];
                float gm = xv * a + b > 0.0f ? gc[k] : 0.0f;
                dc[k] += a * gm + c1 + c2 * xv;
            }
        } else {
            for (size_t k = 0; k < n; k++) {
                float xv = xc[k];
                float gm = xv * a + b > 0.0f ? gc[k] : 0.0f;
                dc[k] = a * gm + c1 + c2 * xv;
            }
        }
    }
}

void nn__cru_bnrelu_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *rstd, const float *gamma,
                        const float *beta, int C, size_t n, int train, int accumulate)
{
    NN_ASSERT(dx && dgamma && dbeta && dy && x && mean && rstd && gamma && beta && n > 0);
    bn_job_t j = {.dx = dx, .dgamma = dgamma, .dbeta = dbeta, .x = x, .dy = dy, .gamma = gamma,
                  .beta = beta, .cmean = mean, .crstd = rstd, .n = n, .train = train,
                  .accumulate = accumulate};
    nn__parallel_for(C, 1 + (int)(32768 / n), bn_bwd_channels, &j);
}

/* ---- 1x1 conv ---------------------------------------------------------------------------------
 * With more than one thread the GEMM is split by the nn pool into column (or row) slabs, each a
 * single-threaded sgemm: one fork-join per conv instead of OpenBLAS's several per call, which
 * matters on a busy machine where every join waits for a descheduled thread. */

#define SLAB 64

typedef struct {
    int ta, tb, M, N, K, split_rows;
    float beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} gemm_job_t;

static void gemm_slab(void *ctx, int chunk, int lo, int hi)
{
    const gemm_job_t *j = ctx;
    (void)chunk;
    if (j->split_rows) {
        int r0 = lo * SLAB, r1 = hi * SLAB < j->M ? hi * SLAB : j->M;
        const float *A = j->ta ? j->A + r0 : j->A + (size_t)r0 * (size_t)j->lda;
        nn_gemm(j->ta, j->tb, r1 - r0, j->N, j->K, 1.0f, A, j->lda, j->B, j->ldb, j->beta,
                j->C + (size_t)r0 * (size_t)j->ldc, j->ldc);
    } else {
        int c0 = lo * SLAB, c1 = hi * SLAB < j->N ? hi * SLAB : j->N;
        const float *Bp = j->tb ? j->B + (size_t)c0 * (size_t)j->ldb : j->B + c0;
        nn_gemm(j->ta, j->tb, j->M, c1 - c0, j->K, 1.0f, j->A, j->lda, Bp, j->ldb, j->beta,
                j->C + c0, j->ldc);
    }
}

static void pgemm(gemm_job_t *j)
{
    int units = ((j->split_rows ? j->M : j->N) + SLAB - 1) / SLAB;
    if (nn__pool_threads() <= 1 || units < 2) {
        nn_gemm(j->ta, j->tb, j->M, j->N, j->K, 1.0f, j->A, j->lda, j->B, j->ldb, j->beta, j->C,
                j->ldc);
        return;
    }
    int saved;
    nn__blas_single_thread(1, &saved);
    nn__parallel_for(units, 1, gemm_slab, j);
    nn__blas_single_thread(0, &saved);
}

void nn__cru_conv1x1_fwd(float *y, const float *x, const float *w, int C, int O, size_t n,
                         int accumulate)
{
    NN_ASSERT(y && x && w && n <= 0x7fffffff);
    gemm_job_t j = {.ta = NN_NOTRANS, .tb = NN_NOTRANS, .M = O, .N = (int)n, .K = C,
                    .beta = accumulate ? 1.0f : 0.0f, .A = w, .lda = C, .B = x, .ldb = (int)n,
                    .C = y, .ldc = (int)n};
    pgemm(&j);
}

void nn__cru_conv1x1_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         int C, int O, size_t n, int accumulate)
{
    NN_ASSERT(dw && dy && x && w && n <= 0x7fffffff);
    gemm_job_t jw = {.ta = NN_NOTRANS, .tb = NN_TRANS, .M = O, .N = C, .K = (int)n,
                     .split_rows = 1, .beta = 1.0f, .A = dy, .lda = (int)n, .B = x,
                     .ldb = (int)n, .C = dw, .ldc = C};
    pgemm(&jw);
    if (dx) {
        gemm_job_t jx = {.ta = NN_TRANS, .tb = NN_NOTRANS, .M = C, .N = (int)n, .K = O,
                         .beta = accumulate ? 1.0f : 0.0f, .A = w, .lda = C, .B = dy,
                         .ldb = (int)n, .C = dx, .ldc = (int)n};
        pgemm(&jx);
    }
}

/* ---- subsampling ---------------------------------------------------------------------------- */

typedef struct {
    float *out;
    const float *in;
    int H, W, s;
} sub_job_t;

static void subsample_planes(void *ctx, int chunk, int lo, int hi)
{
    const sub_job_t *j = ctx;
    int H = j->H, W = j->W, s = j->s, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    (void)chunk;
    for (int p = lo; p < hi; p++) {
        const float *xp = j->in + (size_t)p * (size_t)H * (size_t)W;
        float *yp = j->out + (size_t)p * (size_t)Ho * (size_t)Wo;
        for (int oh = 0; oh < Ho; oh++) {
            const float *xr = xp + (size_t)(oh * s) * (size_t)W;
            for (int ow = 0; ow < Wo; ow++) {
                yp[oh * Wo + ow] = xr[ow * s];
            }
        }
    }
}

static void subsample_bwd_planes(void *ctx, int chunk, int lo, int hi)
{
    const sub_job_t *j = ctx;
    int H = j->H, W = j->W, s = j->s, Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    (void)chunk;
    for (int p = lo; p < hi; p++) {
        float *xp = j->out + (size_t)p * (size_t)H * (size_t)W;
        const float *yp = j->in + (size_t)p * (size_t)Ho * (size_t)Wo;
        memset(xp, 0, (size_t)H * (size_t)W * sizeof(float));
        for (int oh = 0; oh < Ho; oh++) {
            float *xr = xp + (size_t)(oh * s) * (size_t)W;
            for (int ow = 0; ow < Wo; ow++) {
                xr[ow * s] = yp[oh * Wo + ow];
            }
        }
    }
}

void nn__cru_subsample(float *y, const float *x, size_t P, int H, int W, int s)
{
    sub_job_t j = {.out = y, .in = x, .H = H, .W = W, .s = s};
    nn__parallel_for((int)P, 64, subsample_planes, &j);
}

void nn__cru_subsample_bwd(float *dx, const float *dy, size_t P, int H, int W, int s)
{
    sub_job_t j = {.out = dx, .in = dy, .H = H, .W = W, .s = s};
    nn__parallel_for((int)P, 64, subsample_bwd_planes, &j);
}

/* ---- direct grouped conv ---------------------------------------------------------------------
 * Each input plane is copied once into zero-padded phase planes: for stride s, phase (a, b) holds
 * xpad[u*s + a][v*s + b] as a Hq x Wq row-major block (Hq = ceil(Hp/s), Wq = ceil(Wp/s), Hp, Wp the
 * padded sizes). Tap (i, j) = (qi*s + a, qj*s + b) then reads phase (a, b) at (oh + qi, ow + qj),
 * so over an output plane laid out with row width Wq it is ONE contiguous shifted axpy of length
 * Ho*Wq (the Wq - Wo extra columns are scratch and dropped): long vectorisable loops instead of
 * one short loop per output row. The backward uses the same geometry with a zero-extended dy. */

int nn__cru_gconv_ho(const nn__cru_gconv_t *d)
{
    return (d->H + 2 * d->pad - d->k) / d->stride + 1;
}

int nn__cru_gconv_wo(const nn__cru_gconv_t *d)
{
    return (d->W + 2 * d->pad - d->k) / d->stride + 1;
}

static void gconv_check(const nn__cru_gconv_t *d)
{
    NN_ASSERT(d->C > 0 && d->O > 0 && d->groups > 0 && d->B > 0 && d->H > 0 && d->W > 0);
    NN_ASSERT(d->k > 0 && d->k <= 16 && d->stride > 0 && d->pad >= 0 && d->pad < d->k);
    NN_ASSERT(d->C % d->groups == 0 && d->O % d->groups == 0);
    NN_ASSERT(d->H + 2 * d->pad >= d->k && d->W + 2 * d->pad >= d->k);
}

static int wp_of(const nn__cru_gconv_t *d)
{
    return (d->W + d->stride - 1) / d->stride;
}

static size_t plane_d(const nn__cru_gconv_t *d)
{
    return (size_t)d->H * (size_t)d->stride * (size_t)wp_of(d);
}

typedef struct {
    int Hq, Wq, Ho, Wo;
    size_t phase;  /* floats per phase plane, with a zero tail for the last taps' overrun */
    size_t plane;  /* s*s phases */
    size_t oplane; /* Ho*Wq output plane in the wide layout (+ tail) */
} geo_t;

static geo_t geo_of(const nn__cru_gconv_t *d)
{
    geo_t g;
    int s = d->stride;
    g.Hq = (d->H + 2 * d->pad + s - 1) / s;
    g.Wq = (d->W + 2 * d->pad + s - 1) / s;
    g.Ho = nn__cru_gconv_ho(d);
    g.Wo = nn__cru_gconv_wo(d);
    g.phase = ((size_t)g.Hq * (size_t)g.Wq + (size_t)d->k + 15) & ~(size_t)15;
    g.plane = (size_t)s * (size_t)s * g.phase;
    g.oplane = ((size_t)g.Ho * (size_t)g.Wq + 15) & ~(size_t)15;
    return g;
}

size_t nn__cru_gconv_scratch(const nn__cru_gconv_t *d)
{
    gconv_check(d);
    geo_t g = geo_of(d);
    size_t phases = (size_t)d->C * (size_t)d->B * g.plane + (size_t)NN__POOL_MAX * 2 * g.oplane;
    size_t rows = (size_t)d->C * (size_t)d->B * plane_d(d) + (size_t)d->k * (size_t)d->k * (size_t)g.Wo;
    return (phases > rows ? phases : rows) + 16;
}

typedef struct {
    float *y, *dx, *dw, *xq, *dxq, *tls;
    const float *x, *dy, *w;
    const nn__cru_gconv_t *d;
    geo_t g;
} gconv_job_t;

/* planes [lo, hi) of x -> padded phase planes */
static void to_phases(void *ctx, int chunk, int lo, int hi)
{
    const gconv_job_t *jb = ctx;
    const nn__cru_gconv_t *d = jb->d;
    const geo_t *g = &jb->g;
    int s = d->stride;
    (void)chunk;
    for (int p = lo; p < hi; p++) {
        const float *xp = jb->x + (size_t)p * (size_t)d->H * (size_t)d->W;
        float *qp = jb->xq + (size_t)p * g->plane;
        memset(qp, 0, g->plane * sizeof(float));
        for (int h = 0; h < d->H; h++) {
            int hp = h + d->pad;
            const float *xr = xp + (size_t)h * (size_t)d->W;
            for (int b = 0; b < s; b++) {
                float *dst = qp + (size_t)((hp % s) * s + b) * g->phase +
                             (size_t)(hp / s) * (size_t)g->Wq;
                int w0 = ((b - d->pad) % s + s) % s; /* first w with (w + pad) % s == b */
                for (int w = w0, v = (w0 + d->pad) / s; w < d->W; w += s, v++) {
                    dst[v] = xr[w];
                }
            }
        }
    }
}

/* padded phase-plane gradients [lo, hi) -> dx (overwrites) */
static void from_phases(void *ctx, int chunk, int lo, int hi)
{
    const gconv_job_t *jb = ctx;
    const nn__cru_gconv_t *d = jb->d;
    const geo_t *g = &jb->g;
    int s = d->stride;
    (void)chunk;
    for (int p = lo; p < hi; p++) {
        float *xp = jb->dx + (size_t)p * (size_t)d->H * (size_t)d->W;
        const float *qp = jb->dxq + (size_t)p * g->plane;
        for (int h = 0; h < d->H; h++) {
            int hp = h + d->pad;
            float *xr = xp + (size_t)h * (size_t)d->W;
            for (int b = 0; b < s; b++) {
                const float *src = qp + (size_t)((hp % s) * s + b) * g->phase +
                                   (size_t)(hp / s) * (size_t)g->Wq;
                int w0 = ((b - d->pad) % s + s) % s;
                for (int w = w0, v = (w0 + d->pad) / s; w < d->W; w += s, v++) {
                    xr[w] = src[v];
                }
            }
        }
    }
}

/* offset of tap (i, j) inside a plane's phase block */
static size_t tap_off(const nn__cru_gconv_t *d, const geo_t *g, int i, int j)
{
    int s = d->stride;
    size_t ph = (size_t)((i % s) * s + j % s);
    return ph * g->phase + (size_t)(i / s) * (size_t)g->Wq + (size_t)(j / s);
}

NN__HOT static void axpy(float *y, const float *x, float a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] += a * x[i];
    }
}

NN__HOT static float dot(const float *a, const float *b, size_t n)
{
    float l[NL] = {0};
    size_t i = 0;
    for (; i + NL <= n; i += NL) {
        for (int j = 0; j < NL; j++) {
            l[j] += a[i + (size_t)j] * b[i + (size_t)j];
        }
    }
    float s = 0.0f;
    for (; i < n; i++) {
        s += a[i] * b[i];
    }
    for (int j = 0; j < NL; j++) {
        s += l[j];
    }
    return s;
}

/* ---- strided convs: row loops over a column-de-interleaved copy ----------------------------
 * For stride > 1 the phase-plane scheme above pays s*s plane copies per input plane, more than
 * the conv itself for a depthwise layer; here only the columns are de-interleaved (row ih, phase
 * r holds x[ih, r + s*u] at [(ih*s + r)*Wp + u]) and each output row is a set of short shifted
 * axpys. Single-threaded (two layers per network use it). */
static void deinterleave(float *xd, const float *x, const nn__cru_gconv_t *d)
{
    int s = d->stride, Wp = wp_of(d);
    size_t P = (size_t)d->C * (size_t)d->B;
    for (size_t p = 0; p < P; p++) {
        const float *xp = x + p * (size_t)d->H * (size_t)d->W;
        float *dp = xd + p * plane_d(d);
        for (int h = 0; h < d->H; h++) {
            for (int r = 0; r < s; r++) {
                float *row = dp + (size_t)(h * s + r) * (size_t)Wp;
                int u = 0;
                for (int w = r; w < d->W; w += s, u++) {
                    row[u] = xp[(size_t)h * (size_t)d->W + (size_t)w];
                }
                for (; u < Wp; u++) {
                    row[u] = 0.0f;
                }
            }
        }
    }
}

static void interleave(float *x, const float *xd, const nn__cru_gconv_t *d)
{
    int s = d->stride, Wp = wp_of(d);
    size_t P = (size_t)d->C * (size_t)d->B;
    for (size_t p = 0; p < P; p++) {
        float *xp = x + p * (size_t)d->H * (size_t)d->W;
        const float *dp = xd + p * plane_d(d);
        for (int h = 0; h < d->H; h++) {
            for (int r = 0; r < s; r++) {
                const float *row = dp + (size_t)(h * s + r) * (size_t)Wp;
                int u = 0;
                for (int w = r; w < d->W; w += s, u++) {
                    xp[(size_t)h * (size_t)d->W + (size_t)w] = row[u];
                }
            }
        }
    }
}

/* Tap geometry: the phase row offset and the valid output range [lo, hi). */
typedef struct {
    size_t row_off; /* from the start of a de-interleaved row block: r * Wp */
    int q, lo, hi;
} tap_t;

static tap_t tap_of(const nn__cru_gconv_t *d, int j, int Wo)
{
    int s = d->stride, Wp = wp_of(d);
    int t = j - d->pad;
    int r = ((t % s) + s) % s;
    int q = (t - r) / s;
    int L = r < d->W ? (d->W - r + s - 1) / s : 0;
    tap_t tp;
    tp.row_off = (size_t)r * (size_t)Wp;
    tp.q = q;
    tp.lo = q < 0 ? -q : 0;
    tp.hi = L - q < Wo ? L - q : Wo;
    return tp;
}

NN__HOT static void rows_gconv_fwd(float *y, float *scratch, const float *x, const float *w,
                               const nn__cru_gconv_t *d)
{
    gconv_check(d);
    NN_ASSERT(y && x && w && (d->stride == 1 || scratch));
    int Ho = nn__cru_gconv_ho(d), Wo = nn__cru_gconv_wo(d);
    int k = d->k, s = d->stride, Wp = wp_of(d);
    int Cg = d->C / d->groups, Og = d->O / d->groups;
    size_t PD = plane_d(d), PO = (size_t)Ho * (size_t)Wo;
    const float *xd = x;
    if (s > 1) {
        deinterleave(scratch, x, d);
        xd = scratch;
    }
    tap_t taps[16];
    NN_ASSERT(k <= 16);
    for (int j = 0; j < k; j++) {
        taps[j] = tap_of(d, j, Wo);
    }
    for (int o = 0; o < d->O; o++) {
        int g = o / Og;
        for (int b = 0; b < d->B; b++) {
            float *yp = y + ((size_t)o * (size_t)d->B + (size_t)b) * PO;
            memset(yp, 0, PO * sizeof(float));
            for (int c = 0; c < Cg; c++) {
                int ci = g * Cg + c;
                const float *xp = xd + ((size_t)ci * (size_t)d->B + (size_t)b) * PD;
                const float *wc = w + ((size_t)o * (size_t)Cg + (size_t)c) * (size_t)(k * k);
                for (int oh = 0; oh < Ho; oh++) {
                    float *yr = yp + (size_t)oh * (size_t)Wo;
                    for (int i = 0; i < k; i++) {
                        int ih = oh * s + i - d->pad;
                        if (ih < 0 || ih >= d->H) {
                            continue;
                        }
                        const float *rowblk = xp + (size_t)ih * (size_t)s * (size_t)Wp;
                        for (int j = 0; j < k; j++) {
                            const tap_t *tp = &taps[j];
                            const float *src = rowblk + tp->row_off;
                            float wv = wc[i * k + j];
                            int q = tp->q;
                            for (int ow = tp->lo; ow < tp->hi; ow++) {
                                yr[ow] += wv * src[ow + q];
                            }
                        }
                    }
                }
            }
        }
    }
}

NN__HOT static void rows_gconv_bwd(float *dx, float *dw, float *scratch, const float *dy,
                               const float *x, const float *w, const nn__cru_gconv_t *d)
{
    gconv_check(d);
    NN_ASSERT(dw && dy && x && w && scratch);
    int Ho = nn__cru_gconv_ho(d), Wo = nn__cru_gconv_wo(d);
    int k = d->k, s = d->stride, Wp = wp_of(d);
    int Cg = d->C / d->groups, Og = d->O / d->groups;
    size_t PD = plane_d(d), PO = (size_t)Ho * (size_t)Wo;
    size_t deint = s > 1 ? (size_t)d->C * (size_t)d->B * PD : 0;
    float *acc = scratch; /* [k*k, Wo] row accumulators for dw */
    float *xd_buf = scratch + (size_t)k * (size_t)k * (size_t)Wo + 16;
    float *dxd_buf = xd_buf + deint;
    const float *xd = x;
    float *dxd = dx;
    if (s > 1) {
        deinterleave(xd_buf, x, d);
        xd = xd_buf;
        dxd = dx ? dxd_buf : NULL;
    }
    if (dxd) {
        memset(dxd, 0, (size_t)d->C * (size_t)d->B * PD * sizeof(float));
    }
    tap_t taps[16];
    NN_ASSERT(k <= 16);
    for (int j = 0; j < k; j++) {
        taps[j] = tap_of(d, j, Wo);
    }
    for (int o = 0; o < d->O; o++) {
        int g = o / Og;
        for (int c = 0; c < Cg; c++) {
            int ci = g * Cg + c;
            const float *wc = w + ((size_t)o * (size_t)Cg + (size_t)c) * (size_t)(k * k);
            memset(acc, 0, (size_t)k * (size_t)k * (size_t)Wo * sizeof(float));
            for (int b = 0; b < d->B; b++) {
                const float *gp = dy + ((size_t)o * (size_t)d->B + (size_t)b) * PO;
                const float *xp = xd + ((size_t)ci * (size_t)d->B + (size_t)b) * PD;
                float *dxp = dxd ? dxd + ((size_t)ci * (size_t)d->B + (size_t)b) * PD : NULL;
                for (int oh = 0; oh < Ho; oh++) {
                    const float *gr = gp + (size_t)oh * (size_t)Wo;
                    for (int i = 0; i < k; i++) {
                        int ih = oh * s + i - d->pad;
                        if (ih < 0 || ih >= d->H) {
                            continue;
                        }
                        size_t roff = (size_t)ih * (size_t)s * (size_t)Wp;
                        for (int j = 0; j < k; j++) {
                            const tap_t *tp = &taps[j];
                            const float *src = xp + roff + tp->row_off;
                            float *ar = acc + (size_t)(i * k + j) * (size_t)Wo;
                            int q = tp->q;
                            for (int ow = tp->lo; ow < tp->hi; ow++) {
                                ar[ow] += gr[ow] * src[ow + q];
                            }
                            if (dxp) {
                                float *dsrc = dxp + roff + tp->row_off;
                                float wv = wc[i * k + j];
                                for (int ow = tp->lo; ow < tp->hi; ow++) {
                                    dsrc[ow + q] += wv * gr[ow];
                                }
                            }
                        }
                    }
                }
            }
            float *dwc = dw + ((size_t)o * (size_t)Cg + (size_t)c) * (size_t)(k * k);
            for (int t = 0; t < k * k; t++) {
                float sum = 0.0f;
                for (int ow = 0; ow < Wo; ow++) {
                    sum += acc[(size_t)t * (size_t)Wo + (size_t)ow];
                }
                dwc[t] += sum;
            }
        }
    }
    if (dx && s > 1) {
        interleave(dx, dxd_buf, d);
    }
}

/* forward for output channels [lo, hi) */
static void gconv_fwd_outs(void *ctx, int chunk, int lo, int hi)
{
    const gconv_job_t *jb = ctx;
    const nn__cru_gconv_t *d = jb->d;
    const geo_t *g = &jb->g;
    int k = d->k, Cg = d->C / d->groups, Og = d->O / d->groups;
    size_t L = (size_t)g->Ho * (size_t)g->Wq, PO = (size_t)g->Ho * (size_t)g->Wo;
    float *acc = jb->tls + (size_t)chunk * 2 * g->oplane;
    size_t offs[256];
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < k; j++) {
            offs[i * k + j] = tap_off(d, g, i, j);
        }
    }
    for (int o = lo; o < hi; o++) {
        int gi = o / Og;
        for (int b = 0; b < d->B; b++) {
            memset(acc, 0, L * sizeof(float));
            for (int c = 0; c < Cg; c++) {
                int ci = gi * Cg + c;
                const float *qp = jb->xq + ((size_t)ci * (size_t)d->B + (size_t)b) * g->plane;
                const float *wc = jb->w + ((size_t)o * (size_t)Cg + (size_t)c) * (size_t)(k * k);
                for (int t = 0; t < k * k; t++) {
                    axpy(acc, qp + offs[t], wc[t], L);
                }
            }
            float *yp = jb->y + ((size_t)o * (size_t)d->B + (size_t)b) * PO;
            for (int oh = 0; oh < g->Ho; oh++) {
                memcpy(yp + (size_t)oh * (size_t)g->Wo, acc + (size_t)oh * (size_t)g->Wq,
                       (size_t)g->Wo * sizeof(float));
            }
        }
    }
}

void nn__cru_gconv_fwd(float *y, float *scratch, const float *x, const float *w,
                       const nn__cru_gconv_t *d)
{
    gconv_check(d);
    NN_ASSERT(y && x && w && scratch);
    if (d->stride > 1) {
        rows_gconv_fwd(y, scratch, x, w, d);
        return;
    }
    gconv_job_t jb = {.y = y, .x = x, .w = w, .d = d, .g = geo_of(d)};
    jb.xq = scratch;
    jb.tls = scratch + (size_t)d->C * (size_t)d->B * jb.g.plane;
    nn__parallel_for(d->C * d->B, 64, to_phases, &jb);
    nn__parallel_for(d->O, 1, gconv_fwd_outs, &jb);
}

/* backward for groups [lo, hi): a group's outputs write only its own input channels' dx */
static void gconv_bwd_groups(void *ctx, int chunk, int lo, int hi)
{
    const gconv_job_t *jb = ctx;
    const nn__cru_gconv_t *d = jb->d;
    const geo_t *g = &jb->g;
    int k = d->k, Cg = d->C / d->groups, Og = d->O / d->groups;
    size_t L = (size_t)g->Ho * (size_t)g->Wq, PO = (size_t)g->Ho * (size_t)g->Wo;
    float *gw = jb->tls + (size_t)chunk * 2 * g->oplane; /* dy in the wide layout */
    size_t offs[256];
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < k; j++) {
            offs[i * k + j] = tap_off(d, g, i, j);
        }
    }
    if (jb->dxq) {
        memset(jb->dxq + (size_t)lo * (size_t)Cg * (size_t)d->B * g->plane, 0,
               (size_t)(hi - lo) * (size_t)Cg * (size_t)d->B * g->plane * sizeof(float));
    }
    memset(gw, 0, g->oplane * sizeof(float));
    for (int o = lo * Og; o < hi * Og; o++) {
        int gi = o / Og;
        for (int b = 0; b < d->B; b++) {
            const float *gp = jb->dy + ((size_t)o * (size_t)d->B + (size_t)b) * PO;
            for (int oh = 0; oh < g->Ho; oh++) {
                /* the extra columns stay zero: they must not reach dx or dw */
                memcpy(gw + (size_t)oh * (size_t)g->Wq, gp + (size_t)oh * (size_t)g->Wo,
                       (size_t)g->Wo * sizeof(float));
            }
            for (int c = 0; c < Cg; c++) {
                int ci = gi * Cg + c;
                size_t po = ((size_t)ci * (size_t)d->B + (size_t)b) * g->plane;
                const float *qp = jb->xq + po;
                const float *wc = jb->w + ((size_t)o * (size_t)Cg + (size_t)c) * (size_t)(k * k);
                float *dwc = jb->dw + ((size_t)o * (size_t)Cg + (size_t)c) * (size_t)(k * k);
                for (int t = 0; t < k * k; t++) {
                    dwc[t] += dot(gw, qp + offs[t], L);
                    if (jb->dxq) {
                        axpy(jb->dxq + po + offs[t], gw, wc[t], L);
                    }
                }
            }
        }
    }
}

void nn__cru_gconv_bwd(float *dx, float *dw, float *scratch, const float *dy, const float *x,
                       const float *w, const nn__cru_gconv_t *d)
{
    gconv_check(d);
    NN_ASSERT(dw && dy && x && w && scratch);
    if (d->stride > 1) {
        rows_gconv_bwd(dx, dw, scratch, dy, x, w, d);
        return;
    }
    gconv_job_t jb = {.dx = dx, .dw = dw, .x = x, .dy = dy, .w = w, .d = d, .g = geo_of(d)};
    size_t planes = (size_t)d->C * (size_t)d->B * jb.g.plane;
    jb.xq = scratch;
    jb.tls = scratch + planes;
    jb.dxq = dx ? jb.tls + (size_t)NN__POOL_MAX * 2 * jb.g.oplane + 16 : NULL;
    nn__parallel_for(d->C * d->B, 64, to_phases, &jb);
    nn__parallel_for(d->groups, 1, gconv_bwd_groups, &jb);
    if (dx) {
        nn__parallel_for(d->C * d->B, 64, from_phases, &jb);
    }
}

/* ---- im2col ------------------------------------------------------------------------------- */

void nn__cru_im2col(float *col, const float *x, int C, int B, int H, int W, int k, int s, int pad)
{
    int Ho = (H + 2 * pad - k) / s + 1, Wo = (W + 2 * pad - k) / s + 1;
    size_t P = (size_t)Ho * (size_t)Wo, N = (size_t)B * P;
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                float *row = col + ((size_t)(c * k + i) * (size_t)k + (size_t)j) * N;
                for (int b = 0; b < B; b++) {
                    const float *xp = x + ((size_t)c * (size_t)B + (size_t)b) * (size_t)H * (size_t)W;
                    float *r = row + (size_t)b * P;
                    for (int oh = 0; oh < Ho; oh++) {
                        int ih = oh * s - pad + i;
                        float *ro = r + (size_t)oh * (size_t)Wo;
                        if (ih < 0 || ih >= H) {
                            memset(ro, 0, (size_t)Wo * sizeof(float));
                            continue;
                        }
                        const float *xr = xp + (size_t)ih * (size_t)W;
                        for (int ow = 0; ow < Wo; ow++) {
                            int iw = ow * s - pad + j;
                            ro[ow] = (iw >= 0 && iw < W) ? xr[iw] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

/* ---- layout and pooling -------------------------------------------------------------------- */

void nn__cru_nchw_to_cnhw(float *y, const float *x, int B, int C, size_t HW)
{
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) {
            memcpy(y + ((size_t)c * (size_t)B + (size_t)b) * HW,
                   x + ((size_t)b * (size_t)C + (size_t)c) * HW, HW * sizeof(float));
        }
    }
}

void nn__cru_gap_fwd(float *y, const float *x, int B, int C, size_t HW)
{
    for (int c = 0; c < C; c++) {
        for (int b = 0; b < B; b++) {
            const float *xp = x + ((size_t)c * (size_t)B + (size_t)b) * HW;
            float s = 0.0f;
            for (size_t i = 0; i < HW; i++) {
                s += xp[i];
            }
            y[(size_t)b * (size_t)C + (size_t)c] = s / (float)HW;
        }
    }
}

void nn__cru_gap_bwd(float *dx, const float *dy, int B, int C, size_t HW)
{
    for (int c = 0; c < C; c++) {
        for (int b = 0; b < B; b++) {
            float g = dy[(size_t)b * (size_t)C + (size_t)c] / (float)HW;
            float *xp = dx + ((size_t)c * (size_t)B + (size_t)b) * HW;
            for (size_t i = 0; i < HW; i++) {
                xp[i] = g;
            }
        }
    }
}
