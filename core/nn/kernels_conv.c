/* Convolution-family kernels on NCHW images: conv2d (1x1 GEMM, depthwise direct loop, im2col +
 * GEMM), patch embedding, BatchNorm2d, pooling. Contracts in nn/kernels.h. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "nn/gemm.h"
#include "nn/kernels.h"

/* ---- conv2d ----------------------------------------------------------------------------------- */

int nn_conv2d_out_h(const nn_conv2d_dims_t *d)
{
    return (d->H + 2 * d->pad - d->KH) / d->stride + 1;
}

int nn_conv2d_out_w(const nn_conv2d_dims_t *d)
{
    return (d->W + 2 * d->pad - d->KW) / d->stride + 1;
}

static void conv_check(const nn_conv2d_dims_t *d)
{
    NN_ASSERT(d && d->B >= 0 && d->C > 0 && d->H > 0 && d->W > 0 && d->O > 0);
    NN_ASSERT(d->KH > 0 && d->KW > 0 && d->stride > 0 && d->pad >= 0 && d->groups > 0);
    NN_ASSERT(d->C % d->groups == 0 && d->O % d->groups == 0);
    NN_ASSERT(d->H + 2 * d->pad >= d->KH && d->W + 2 * d->pad >= d->KW);
}

static int is_1x1(const nn_conv2d_dims_t *d)
{
    return d->KH == 1 && d->KW == 1 && d->stride == 1 && d->pad == 0 && d->groups == 1;
}

static int is_depthwise(const nn_conv2d_dims_t *d)
{
    return d->groups == d->C && d->O == d->C && d->groups > 1;
}

size_t nn_conv2d_scratch(const nn_conv2d_dims_t *d)
{
    conv_check(d);
    if (is_1x1(d) || is_depthwise(d)) {
        return 0;
    }
    size_t k = (size_t)(d->C / d->groups) * (size_t)d->KH * (size_t)d->KW;
    return k * (size_t)nn_conv2d_out_h(d) * (size_t)nn_conv2d_out_w(d);
}

/* col[(c*KH + i)*KW + j, oh*Wo + ow] = x[c, oh*s - pad + i, ow*s - pad + j] (0 outside) for the
 * Cg channels starting at x. */
static void im2col(float *col, const float *x, int Cg, const nn_conv2d_dims_t *d, int Ho, int Wo)
{
    size_t P = (size_t)Ho * (size_t)Wo;
    for (int c = 0; c < Cg; c++) {
        const float *xc = x + (size_t)c * (size_t)d->H * (size_t)d->W;
        for (int i = 0; i < d->KH; i++) {
            for (int j = 0; j < d->KW; j++) {
                float *row = col + ((size_t)(c * d->KH + i) * (size_t)d->KW + (size_t)j) * P;
                for (int oh = 0; oh < Ho; oh++) {
                    int ih = oh * d->stride - d->pad + i;
                    float *r = row + (size_t)oh * (size_t)Wo;
                    if (ih < 0 || ih >= d->H) {
                        memset(r, 0, sizeof(float) * (size_t)Wo);
                        continue;
                    }
                    for (int ow = 0; ow < Wo; ow++) {
                        int iw = ow * d->stride - d->pad + j;
                        r[ow] = (iw >= 0 && iw < d->W) ? xc[(size_t)ih * (size_t)d->W + (size_t)iw]
                                                       : 0.0f;
                    }
                }
            }
        }
    }
}

/* The adjoint of im2col: dx += scatter of dcol. */
static void col2im_acc(float *dx, const float *col, int Cg, const nn_conv2d_dims_t *d, int Ho,
                       int Wo)
{
    size_t P = (size_t)Ho * (size_t)Wo;
    for (int c = 0; c < Cg; c++) {
        float *xc = dx + (size_t)c * (size_t)d->H * (size_t)d->W;
        for (int i = 0; i < d->KH; i++) {
            for (int j = 0; j < d->KW; j++) {
                const float *row = col + ((size_t)(c * d->KH + i) * (size_t)d->KW + (size_t)j) * P;
                for (int oh = 0; oh < Ho; oh++) {
                    int ih = oh * d->stride - d->pad + i;
                    if (ih < 0 || ih >= d->H) {
                        continue;
                    }
                    for (int ow = 0; ow < Wo; ow++) {
                        int iw = ow * d->stride - d->pad + j;
                        if (iw >= 0 && iw < d->W) {
                            xc[(size_t)ih * (size_t)d->W + (size_t)iw] +=
                                row[(size_t)oh * (size_t)Wo + (size_t)ow];
                        }
                    }
                }
            }
        }
    }
}

static void depthwise_forward(float *y, const float *x, const float *w, const float *b,
                              const nn_conv2d_dims_t *d, int Ho, int Wo)
{
    for (int n = 0; n < d->B; n++) {
        for (int c = 0; c < d->C; c++) {
            const float *xc = x + ((size_t)n * (size_t)d->C + (size_t)c) * (size_t)d->H * (size_t)d->W;
            const float *wc = w + (size_t)c * (size_t)d->KH * (size_t)d->KW;
            float *yc = y + ((size_t)n * (size_t)d->O + (size_t)c) * (size_t)Ho * (size_t)Wo;
            for (int oh = 0; oh < Ho; oh++) {
                for (int ow = 0; ow < Wo; ow++) {
                    float acc = b ? b[c] : 0.0f;
                    for (int i = 0; i < d->KH; i++) {
                        int ih = oh * d->stride - d->pad + i;
                        if (ih < 0 || ih >= d->H) {
                            continue;
                        }
                        for (int j = 0; j < d->KW; j++) {
                            int iw = ow * d->stride - d->pad + j;
                            if (iw >= 0 && iw < d->W) {
                                acc += wc[i * d->KW + j] * xc[(size_t)ih * (size_t)d->W + (size_t)iw];
                            }
                        }
                    }
                    yc[(size_t)oh * (size_t)Wo + (size_t)ow] = acc;
                }
            }
        }
    }
}

static void depthwise_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, const nn_conv2d_dims_t *d, int Ho, int Wo)
{
    for (int n = 0; n < d->B; n++) {
        for (int c = 0; c < d->C; c++) {
            size_t xo = ((size_t)n * (size_t)d->C + (size_t)c) * (size_t)d->H * (size_t)d->W;
            const float *wc = w + (size_t)c * (size_t)d->KH * (size_t)d->KW;
            float *dwc = dw + (size_t)c * (size_t)d->KH * (size_t)d->KW;
            const float *gc = dy + ((size_t)n * (size_t)d->O + (size_t)c) * (size_t)Ho * (size_t)Wo;
            for (int oh = 0; oh < Ho; oh++) {
                for (int ow = 0; ow < Wo; ow++) {
                    float g = gc[(size_t)oh * (size_t)Wo + (size_t)ow];
                    if (db) {
                        db[c] += g;
                    }
                    for (int i = 0; i < d->KH; i++) {
                        int ih = oh * d->stride - d->pad + i;
                        if (ih < 0 || ih >= d->H) {
                            continue;
                        }
                        for (int j = 0; j < d->KW; j++) {
                            int iw = ow * d->stride - d->pad + j;
                            if (iw >= 0 && iw < d->W) {
                                size_t xi = xo + (size_t)ih * (size_t)d->W + (size_t)iw;
                                dwc[i * d->KW + j] += g * x[xi];
                                if (dx) {
                                    dx[xi] += g * wc[i * d->KW + j];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

static void add_bias(float *y, const float *b, int O, size_t P)
{
    for (int o = 0; o < O; o++) {
        for (size_t p = 0; p < P; p++) {
            y[(size_t)o * P + p] += b[o];
        }
    }
}

void nn_conv2d_forward(float *y, float *scratch, const float *x, const float *w, const float *b,
                       const nn_conv2d_dims_t *d)
{
    conv_check(d);
    NN_ASSERT(y && x && w);
    int Ho = nn_conv2d_out_h(d), Wo = nn_conv2d_out_w(d);
    size_t P = (size_t)Ho * (size_t)Wo, HW = (size_t)d->H * (size_t)d->W;
    if (is_depthwise(d)) {
        depthwise_forward(y, x, w, b, d, Ho, Wo);
        return;
    }
    int Cg = d->C / d->groups, Og = d->O / d->groups;
    int K = Cg * d->KH * d->KW;
    NN_ASSERT(is_1x1(d) || scratch);
    for (int n = 0; n < d->B; n++) {
        float *yn = y + (size_t)n * (size_t)d->O * P;
        for (int g = 0; g < d->groups; g++) {
            const float *xg = x + ((size_t)n * (size_t)d->C + (size_t)g * (size_t)Cg) * HW;
            const float *col = xg; /* 1x1: the image itself is the [C, HW] matrix */
            if (!is_1x1(d)) {
                im2col(scratch, xg, Cg, d, Ho, Wo);
                col = scratch;
            }
            nn_gemm(NN_NOTRANS, NN_NOTRANS, Og, (int)P, K, 1.0f, w + (size_t)g * (size_t)Og * (size_t)K,
                    K, col, (int)P, 0.0f, yn + (size_t)g * (size_t)Og * P, (int)P);
        }
        if (b) {
            add_bias(yn, b, d->O, P);
        }
    }
}

void nn_conv2d_backward(float *dx, float *dw, float *db, float *scratch, const float *dy,
                        const float *x, const float *w, const nn_conv2d_dims_t *d)
{
    conv_check(d);
    NN_ASSERT(dw && dy && x && w);
    int Ho = nn_conv2d_out_h(d), Wo = nn_conv2d_out_w(d);
    size_t P = (size_t)Ho * (size_t)Wo, HW = (size_t)d->H * (size_t)d->W;
    if (is_depthwise(d)) {
        depthwise_backward(dx, dw, db, dy, x, w, d, Ho, Wo);
        return;
    }
    int Cg = d->C / d->groups, Og = d->O / d->groups;
    int K = Cg * d->KH * d->KW;
    NN_ASSERT(is_1x1(d) || scratch);
    for (int n = 0; n < d->B; n++) {
        const float *gn = dy + (size_t)n * (size_t)d->O * P;
        for (int g = 0; g < d->groups; g++) {
            size_t xoff = ((size_t)n * (size_t)d->C + (size_t)g * (size_t)Cg) * HW;
            const float *wg = w + (size_t)g * (size_t)Og * (size_t)K;
            const float *gg = gn + (size_t)g * (size_t)Og * P;
            if (is_1x1(d)) {
                nn_gemm(NN_NOTRANS, NN_TRANS, Og, K, (int)P, 1.0f, gg, (int)P, x + xoff, (int)P,
                        1.0f, dw, K);
                if (dx) {
                    nn_gemm(NN_TRANS, NN_NOTRANS, K, (int)P, Og, 1.0f, wg, K, gg, (int)P, 1.0f,
                            dx + xoff, (int)P);
                }
                continue;
            }
            im2col(scratch, x + xoff, Cg, d, Ho, Wo);
            nn_gemm(NN_NOTRANS, NN_TRANS, Og, K, (int)P, 1.0f, gg, (int)P, scratch, (int)P, 1.0f,
                    dw + (size_t)g * (size_t)Og * (size_t)K, K);
            if (dx) {
                nn_gemm(NN_TRANS, NN_NOTRANS, K, (int)P, Og, 1.0f, wg, K, gg, (int)P, 0.0f, scratch,
                        (int)P);
                col2im_acc(dx + xoff, scratch, Cg, d, Ho, Wo);
            }
        }
        if (db) {
            for (int o = 0; o < d->O; o++) {
                float s = 0.0f;
                for (size_t p = 0; p < P; p++) {
                    s += gn[(size_t)o * P + p];
                }
                db[o] += s;
            }
        }
    }
}

void nn_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b,
                           const nn_conv2d_dims_t *d)
{
    int Ho = nn_conv2d_out_h(d), Wo = nn_conv2d_out_w(d);
    int Cg = d->C / d->groups, Og = d->O / d->groups;
    for (int n = 0; n < d->B; n++) {
        for (int o = 0; o < d->O; o++) {
            int g = o / Og;
            for (int oh = 0; oh < Ho; oh++) {
                for (int ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < Cg; c++) {
                        for (int i = 0; i < d->KH; i++) {
                            for (int j = 0; j < d->KW; j++) {
                                int ih = oh * d->stride - d->pad + i;
                                int iw = ow * d->stride - d->pad + j;
                                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) {
                                    continue;
                                }
                                size_t xi = (((size_t)n * (size_t)d->C + (size_t)(g * Cg + c)) *
                                                 (size_t)d->H + (size_t)ih) * (size_t)d->W + (size_t)iw;
                                size_t wi = (((size_t)o * (size_t)Cg + (size_t)c) * (size_t)d->KH +
                                             (size_t)i) * (size_t)d->KW + (size_t)j;
                                acc += (double)x[xi] * (double)w[wi];
                            }
                        }
                    }
                    y[(((size_t)n * (size_t)d->O + (size_t)o) * (size_t)Ho + (size_t)oh) *
                          (size_t)Wo + (size_t)ow] = (float)acc;
                }
            }
        }
    }
}

/* ---- patch embedding ------------------------------------------------------------------------ */

void nn_patch_embed_forward(float *y, float *patches, const float *x, const float *w, int B,
                            int C, int H, int p, int D)
{
    NN_ASSERT(y && patches && x && w && B >= 0 && C > 0 && p > 0 && H % p == 0 && D > 0);
    int G = H / p, P = C * p * p;
    for (int n = 0; n < B; n++) {
        for (int gh = 0; gh < G; gh++) {
            for (int gw = 0; gw < G; gw++) {
                float *row = patches + ((size_t)n * (size_t)G * (size_t)G + (size_t)(gh * G + gw)) * (size_t)P;
                for (int c = 0; c < C; c++) {
                    for (int i = 0; i < p; i++) {
                        const float *src = x + (((size_t)n * (size_t)C + (size_t)c) * (size_t)H +
                                                (size_t)(gh * p + i)) * (size_t)H + (size_t)(gw * p);
                        memcpy(row + (size_t)(c * p + i) * (size_t)p, src, sizeof(float) * (size_t)p);
                    }
                }
            }
        }
    }
    nn_gemm(NN_NOTRANS, NN_TRANS, B * G * G, D, P, 1.0f, patches, P, w, P, 0.0f, y, D);
}

void nn_patch_embed_backward(float *dx, float *dw, const float *dy, const float *patches,
                             const float *w, int B, int C, int H, int p, int D)
{
    NN_ASSERT(dw && dy && patches && w && B >= 0 && C > 0 && p > 0 && H % p == 0 && D > 0);
    int G = H / p, P = C * p * p;
    nn_gemm(NN_TRANS, NN_NOTRANS, D, P, B * G * G, 1.0f, dy, D, patches, P, 1.0f, dw, P);
    if (!dx) {
        return;
    }
    /* The image gradient is not needed for training (the input is data); this direct loop
     * exists for the gradient check. */
    for (int n = 0; n < B; n++) {
        for (int t = 0; t < G * G; t++) {
            int gh = t / G, gw = t % G;
            const float *g = dy + ((size_t)n * (size_t)G * (size_t)G + (size_t)t) * (size_t)D;
            for (int k = 0; k < P; k++) {
                int c = k / (p * p), i = (k / p) % p, j = k % p;
                float s = 0.0f;
                for (int d = 0; d < D; d++) {
                    s += g[d] * w[(size_t)d * (size_t)P + (size_t)k];
                }
                dx[(((size_t)n * (size_t)C + (size_t)c) * (size_t)H + (size_t)(gh * p + i)) * (size_t)H +
                   (size_t)(gw * p + j)] += s;
            }
        }
    }
}

/* ---- BatchNorm2d ---------------------------------------------------------------------------- */

void nn_bn2d_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                     const float *beta, float *run_mean, float *run_var, int B, int C, int HW,
                     float momentum, float eps, int train)
{
    NN_ASSERT(y && mean && rstd && x && B > 0 && C > 0 && HW > 0);
    NN_ASSERT(train || (run_mean && run_var));
    size_t n = (size_t)B * (size_t)HW;
    NN_ASSERT(!train || n > 1 || !run_var);
    for (int c = 0; c < C; c++) {
        float mu, rs;
        if (train) {
            double s = 0.0, ss = 0.0;
            for (int b = 0; b < B; b++) {
                const float *xc = x + ((size_t)b * (size_t)C + (size_t)c) * (size_t)HW;
                for (int i = 0; i < HW; i++) {
                    s += xc[i];
                }
            }
            double m = s / (double)n;
            for (int b = 0; b < B; b++) {
                const float *xc = x + ((size_t)b * (size_t)C + (size_t)c) * (size_t)HW;
                for (int i = 0; i < HW; i++) {
                    double dd = (double)xc[i] - m;
                    ss += dd * dd;
                }
            }
            double var = ss / (double)n;
            mu = (float)m;
            rs = (float)(1.0 / sqrt(var + (double)eps));
            if (run_mean) {
                run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * mu;
            }
            if (run_var) {
                float unbiased = (float)(ss / (double)(n - 1));
                run_var[c] = (1.0f - momentum) * run_var[c] + momentum * unbiased;
            }
        } else {
            mu = run_mean[c];
            rs = 1.0f / sqrtf(run_var[c] + eps);
        }
        mean[c] = mu;
        rstd[c] = rs;
        float gm = gamma ? gamma[c] : 1.0f, bt = beta ? beta[c] : 0.0f;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * (size_t)C + (size_t)c) * (size_t)HW;
            for (int i = 0; i < HW; i++) {
                y[o + (size_t)i] = (x[o + (size_t)i] - mu) * rs * gm + bt;
            }
        }
    }
}

void nn_bn2d_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                      const float *mean, const float *rstd, const float *gamma, int B, int C,
                      int HW, int train)
{
    NN_ASSERT(dx && dy && x && mean && rstd && B > 0 && C > 0 && HW > 0);
    size_t n = (size_t)B * (size_t)HW;
    for (int c = 0; c < C; c++) {
        float mu = mean[c], rs = rstd[c], gm = gamma ? gamma[c] : 1.0f;
        double sg = 0.0, sgx = 0.0;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * (size_t)C + (size_t)c) * (size_t)HW;
            for (int i = 0; i < HW; i++) {
                sg += dy[o + (size_t)i];
                sgx += (double)dy[o + (size_t)i] * (double)((x[o + (size_t)i] - mu) * rs);
            }
        }
        if (dgamma) {
            dgamma[c] += (float)sgx;
        }
        if (dbeta) {
            dbeta[c] += (float)sg;
        }
        float k = gm * rs;
        float m1 = train ? (float)(sg / (double)n) : 0.0f;
        float m2 = train ? (float)(sgx / (double)n) : 0.0f;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * (size_t)C + (size_t)c) * (size_t)HW;
            for (int i = 0; i < HW; i++) {
                float xh = (x[o + (size_t)i] - mu) * rs;
                dx[o + (size_t)i] += k * (dy[o + (size_t)i] - m1 - xh * m2);
            }
        }
    }
}

/* ---- pooling ------------------------------------------------------------------------------ */

int nn_pool_out(int n, int k, int s, int pad)
{
    return (n + 2 * pad - k) / s + 1;
}

void nn_avgpool2d_forward(float *y, const float *x, int B, int C, int H, int W, int k, int s,
                          int pad)
{
    NN_ASSERT(y && x && k > 0 && s > 0 && pad >= 0 && pad <= k / 2);
    int Ho = nn_pool_out(H, k, s, pad), Wo = nn_pool_out(W, k, s, pad);
    float inv = 1.0f / (float)(k * k);
    for (size_t bc = 0; bc < (size_t)B * (size_t)C; bc++) {
        const float *xc = x + bc * (size_t)H * (size_t)W;
        float *yc = y + bc * (size_t)Ho * (size_t)Wo;
        for (int oh = 0; oh < Ho; oh++) {
            for (int ow = 0; ow < Wo; ow++) {
                float acc = 0.0f;
                for (int i = 0; i < k; i++) {
                    int ih = oh * s - pad + i;
                    for (int j = 0; j < k; j++) {
                        int iw = ow * s - pad + j;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                            acc += xc[(size_t)ih * (size_t)W + (size_t)iw];
                        }
                    }
                }
                yc[(size_t)oh * (size_t)Wo + (size_t)ow] = acc * inv;
            }
        }
    }
}

void nn_avgpool2d_backward(float *dx, const float *dy, int B, int C, int H, int W, int k, int s,
                           int pad)
{
    NN_ASSERT(dx && dy && k > 0 && s > 0 && pad >= 0 && pad <= k / 2);
    int Ho = nn_pool_out(H, k, s, pad), Wo = nn_pool_out(W, k, s, pad);
    float inv = 1.0f / (float)(k * k);
    for (size_t bc = 0; bc < (size_t)B * (size_t)C; bc++) {
        float *xc = dx + bc * (size_t)H * (size_t)W;
        const float *gc = dy + bc * (size_t)Ho * (size_t)Wo;
        for (int oh = 0; oh < Ho; oh++) {
            for (int ow = 0; ow < Wo; ow++) {
                float g = gc[(size_t)oh * (size_t)Wo + (size_t)ow] * inv;
                for (int i = 0; i < k; i++) {
                    int ih = oh * s - pad + i;
                    for (int j = 0; j < k; j++) {
                        int iw = ow * s - pad + j;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                            xc[(size_t)ih * (size_t)W + (size_t)iw] += g;
                        }
                    }
                }
            }
        }
    }
}

void nn_maxpool2d_forward(float *y, int32_t *idx, const float *x, int B, int C, int H, int W,
                          int k, int s, int pad)
{
    NN_ASSERT(y && idx && x && k > 0 && s > 0 && pad >= 0 && pad <= k / 2);
    int Ho = nn_pool_out(H, k, s, pad), Wo = nn_pool_out(W, k, s, pad);
    for (size_t bc = 0; bc < (size_t)B * (size_t)C; bc++) {
        const float *xc = x + bc * (size_t)H * (size_t)W;
        for (int oh = 0; oh < Ho; oh++) {
            for (int ow = 0; ow < Wo; ow++) {
                float best = -INFINITY;
                int32_t bi = -1;
                for (int i = 0; i < k; i++) {
                    int ih = oh * s - pad + i;
                    for (int j = 0; j < k; j++) {
                        int iw = ow * s - pad + j;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                            float v = xc[(size_t)ih * (size_t)W + (size_t)iw];
                            if (bi < 0 || v > best) {
                                best = v;
                                bi = ih * W + iw;
                            }
                        }
                    }
                }
                size_t o = bc * (size_t)Ho * (size_t)Wo + (size_t)oh * (size_t)Wo + (size_t)ow;
                y[o] = best;
                idx[o] = bi;
            }
        }
    }
}

void nn_maxpool2d_backward(float *dx, const float *dy, const int32_t *idx, int B, int C, int H,
                           int W, int k, int s, int pad)
{
    NN_ASSERT(dx && dy && idx);
    int Ho = nn_pool_out(H, k, s, pad), Wo = nn_pool_out(W, k, s, pad);
    for (size_t bc = 0; bc < (size_t)B * (size_t)C; bc++) {
        float *xc = dx + bc * (size_t)H * (size_t)W;
        for (size_t o = 0; o < (size_t)Ho * (size_t)Wo; o++) {
            size_t oi = bc * (size_t)Ho * (size_t)Wo + o;
            xc[idx[oi]] += dy[oi];
        }
    }
}

void nn_gap_forward(float *y, const float *x, int B, int C, int HW)
{
    NN_ASSERT(y && x && HW > 0);
    for (size_t bc = 0; bc < (size_t)B * (size_t)C; bc++) {
        float s = 0.0f;
        for (int i = 0; i < HW; i++) {
            s += x[bc * (size_t)HW + (size_t)i];
        }
        y[bc] = s / (float)HW;
    }
}

void nn_gap_backward(float *dx, const float *dy, int B, int C, int HW)
{
    NN_ASSERT(dx && dy && HW > 0);
    for (size_t bc = 0; bc < (size_t)B * (size_t)C; bc++) {
        float g = dy[bc] / (float)HW;
        for (int i = 0; i < HW; i++) {
            dx[bc * (size_t)HW + (size_t)i] += g;
        }
    }
}
