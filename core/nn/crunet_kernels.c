/* CRU-Net kernels on channel-major activations [C, B, H, W] (contracts in crunet_internal.h).
 *
 * Depthwise/grouped 3x3 and BatchNorm are memory-bound, so they are written as direct loops over
 * contiguous rows that GCC vectorises (NN__HOT clones them for AVX-512/AVX2): reductions use
 * explicit lane arrays (ISO C forbids the compiler from reassociating a scalar sum), strided
 * convolutions read a de-interleaved copy of the input so every tap is a unit-stride row, and
 * BN is fused with the ReLU that always follows it in a pre-activation network. */
#include <math.h>
#include <string.h>

#include "crunet_internal.h"
#include "internal.h"
#include "nn/gemm.h"

#define LANES 8

/* ---- BatchNorm + ReLU ---------------------------------------------------------------------- */

NN__HOT void nn__cru_bnrelu_fwd(float *y, float *mean, float *rstd, const float *x,
                                const float *gamma, const float *beta, float *run_mean,
                                float *run_var, int C, size_t n, float momentum, float eps,
                                int train)
{
    NN_ASSERT(y && mean && rstd && x && gamma && beta && C > 0 && n > 0);
    NN_ASSERT(train || (run_mean && run_var));
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * n;
        float *yc = y + (size_t)c * n;
        float mu, rs;
        if (train) {
            /* one pass of shifted sums (shift = the first value) in double lanes: stable and
             * vectorisable; the variance is the biased one */
            double k = (double)xc[0];
            double s[LANES] = {0}, ss[LANES] = {0};
            size_t i = 0;
            for (; i + LANES <= n; i += LANES) {
                for (int j = 0; j < LANES; j++) {
                    double d = (double)xc[i + (size_t)j] - k;
                    s[j] += d;
                    ss[j] += d * d;
                }
            }
            double S = 0.0, SS = 0.0;
            for (; i < n; i++) {
                double d = (double)xc[i] - k;
                S += d;
                SS += d * d;
            }
            for (int j = 0; j < LANES; j++) {
                S += s[j];
                SS += ss[j];
            }
            double m = S / (double)n;
            double var = SS / (double)n - m * m;
            var = var < 0.0 ? 0.0 : var;
            mu = (float)(k + m);
            rs = (float)(1.0 / sqrt(var + (double)eps));
            if (run_mean) {
                run_mean[c] = momentum * run_mean[c] + (1.0f - momentum) * mu;
            }
            if (run_var) {
                run_var[c] = momentum * run_var[c] + (1.0f - momentum) * (float)var;
            }
        } else {
            mu = run_mean[c];
            rs = 1.0f / sqrtf(run_var[c] + eps);
        }
        mean[c] = mu;
        rstd[c] = rs;
        float a = rs * gamma[c], b = beta[c] - mu * a;
        for (size_t i = 0; i < n; i++) {
            float v = xc[i] * a + b;
            yc[i] = v > 0.0f ? v : 0.0f;
        }
    }
}

NN__HOT void nn__cru_bnrelu_bwd(float *dx, float *dgamma, float *dbeta, const float *dy,
                                const float *x, const float *mean, const float *rstd,
                                const float *gamma, const float *beta, int C, size_t n, int train,
                                int accumulate)
{
    NN_ASSERT(dx && dgamma && dbeta && dy && x && mean && rstd && gamma && beta && n > 0);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * n, *gc = dy + (size_t)c * n;
        float *dc = dx + (size_t)c * n;
        float mu = mean[c], rs = rstd[c];
        float a = rs * gamma[c], b = beta[c] - mu * a;
        double sg[LANES] = {0}, sgx[LANES] = {0};
        size_t i = 0;
        for (; i + LANES <= n; i += LANES) {
            for (int j = 0; j < LANES; j++) {
                float xv = xc[i + (size_t)j];
                float gm = xv * a + b > 0.0f ? gc[i + (size_t)j] : 0.0f;
                sg[j] += (double)gm;
                sgx[j] += (double)gm * (double)(xv - mu);
            }
        }
        double SG = 0.0, SGX = 0.0;
        for (; i < n; i++) {
            float xv = xc[i];
            float gm = xv * a + b > 0.0f ? gc[i] : 0.0f;
            SG += (double)gm;
            SGX += (double)gm * (double)(xv - mu);
        }
        for (int j = 0; j < LANES; j++) {
            SG += sg[j];
            SGX += sgx[j];
        }
        SGX *= (double)rs; /* sum of dy * xhat */
        dgamma[c] += (float)SGX;
        dbeta[c] += (float)SG;
        /* dx = a (g - mean(g) - xhat mean(g xhat)) = a g + c1 + c2 x */
        float m1 = train ? (float)(SG / (double)n) : 0.0f;
        float m2 = train ? (float)(SGX / (double)n) : 0.0f;
        float c2 = -a * rs * m2;
        float c1 = -a * m1 - c2 * mu;
        if (accumulate) {
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

/* ---- 1x1 conv ----------------------------------------------------------------------------- */

void nn__cru_conv1x1_fwd(float *y, const float *x, const float *w, int C, int O, size_t n,
                         int accumulate)
{
    NN_ASSERT(y && x && w && n <= 0x7fffffff);
    nn_gemm(NN_NOTRANS, NN_NOTRANS, O, (int)n, C, 1.0f, w, C, x, (int)n, accumulate ? 1.0f : 0.0f,
            y, (int)n);
}

void nn__cru_conv1x1_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w,
                         int C, int O, size_t n, int accumulate)
{
    NN_ASSERT(dw && dy && x && w && n <= 0x7fffffff);
    nn_gemm(NN_NOTRANS, NN_TRANS, O, C, (int)n, 1.0f, dy, (int)n, x, (int)n, 1.0f, dw, C);
    if (dx) {
        nn_gemm(NN_TRANS, NN_NOTRANS, C, (int)n, O, 1.0f, w, C, dy, (int)n,
                accumulate ? 1.0f : 0.0f, dx, (int)n);
    }
}

/* ---- subsampling ---------------------------------------------------------------------------- */

void nn__cru_subsample(float *y, const float *x, size_t P, int H, int W, int s)
{
    int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    for (size_t p = 0; p < P; p++) {
        const float *xp = x + p * (size_t)H * (size_t)W;
        float *yp = y + p * (size_t)Ho * (size_t)Wo;
        for (int oh = 0; oh < Ho; oh++) {
            const float *xr = xp + (size_t)(oh * s) * (size_t)W;
            for (int ow = 0; ow < Wo; ow++) {
                yp[oh * Wo + ow] = xr[ow * s];
            }
        }
    }
}

void nn__cru_subsample_bwd(float *dx, const float *dy, size_t P, int H, int W, int s)
{
    int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    memset(dx, 0, P * (size_t)H * (size_t)W * sizeof(float));
    for (size_t p = 0; p < P; p++) {
        float *xp = dx + p * (size_t)H * (size_t)W;
        const float *yp = dy + p * (size_t)Ho * (size_t)Wo;
        for (int oh = 0; oh < Ho; oh++) {
            float *xr = xp + (size_t)(oh * s) * (size_t)W;
            for (int ow = 0; ow < Wo; ow++) {
                xr[ow * s] = yp[oh * Wo + ow];
            }
        }
    }
}

/* ---- direct grouped conv ---------------------------------------------------------------------
 * De-interleaved plane layout for stride s: row ih, phase r (0 <= r < s) holds x[ih, r + s*u] at
 * [(ih*s + r)*Wp + u], Wp = ceil(W / s). With s == 1 this is the plane itself. Output column ow of
 * tap offset t = j - pad reads input column ow*s + t = (ow + q)*s + r, i.e. phase r, index ow + q. */

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
    NN_ASSERT(d->k > 0 && d->stride > 0 && d->pad >= 0 && d->pad < d->k);
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

size_t nn__cru_gconv_scratch(const nn__cru_gconv_t *d)
{
    gconv_check(d);
    size_t deint = d->stride > 1 ? (size_t)d->C * (size_t)d->B * plane_d(d) : 0;
    size_t acc = (size_t)d->k * (size_t)d->k * (size_t)nn__cru_gconv_wo(d);
    return deint + acc + 16;
}

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

NN__HOT void nn__cru_gconv_fwd(float *y, float *scratch, const float *x, const float *w,
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

NN__HOT void nn__cru_gconv_bwd(float *dx, float *dw, float *scratch, const float *dy,
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
