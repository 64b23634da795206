/* Finite-difference gradient checks for every kernel pair (STYLE.md 2.8): random small inputs
 * from core_rng, a random upstream gradient g, the scalar L = <out, g> accumulated in double,
 * central differences per input element against the analytic backward. Each check prints its
 * NMSE and max error; kinks (ReLU at 0, max-pool near-ties) are exempt by construction. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "nn/kernels.h"
#include "t.h"

#define GC_MAXIN 4

typedef void (*gc_fwd_fn)(void *ctx, float *out);
typedef void (*gc_bwd_fn)(void *ctx, const float *g); /* accumulates into the ctx's grads */

typedef struct {
    const char *name;
    gc_fwd_fn fwd;
    gc_bwd_fn bwd;
    void *ctx;
    size_t nout;
    int nin;
    float *in[GC_MAXIN];
    float *din[GC_MAXIN];
    size_t n[GC_MAXIN];
    float eps;
    double nmse_tol;  /* on sum (a - fd)^2 / sum fd^2 */
    double abs_tol;   /* on max |a - fd| / max(1, max |fd|) */
    float kink;       /* skip elements with |x| < kink (ReLU) */
} gc_t;

static core_rng_t g_rng;

static float *gc_rand(size_t n, float lo, float hi)
{
    float *p = core_malloc((n ? n : 1) * sizeof(float));
    T_ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++) {
        p[i] = lo + (hi - lo) * core_rng_uniform(&g_rng);
    }
    return p;
}

static float *gc_zeros(size_t n)
{
    float *p = core_calloc(n ? n : 1, sizeof(float));
    T_ASSERT(p != NULL);
    return p;
}

static double gc_loss(const gc_t *c, float *out, const float *g)
{
    c->fwd(c->ctx, out);
    double l = 0.0;
    for (size_t i = 0; i < c->nout; i++) {
        l += (double)out[i] * (double)g[i];
    }
    return l;
}

static void gc_run(gc_t *c)
{
    float *out = gc_zeros(c->nout);
    float *g = gc_rand(c->nout, -1.0f, 1.0f);
    for (int k = 0; k < c->nin; k++) {
        memset(c->din[k], 0, c->n[k] * sizeof(float));
    }
    c->fwd(c->ctx, out);
    c->bwd(c->ctx, g);
    /* backward accumulates: a second call must double every gradient */
    float *first[GC_MAXIN];
    for (int k = 0; k < c->nin; k++) {
        first[k] = core_malloc(c->n[k] * sizeof(float));
        memcpy(first[k], c->din[k], c->n[k] * sizeof(float));
    }
    c->bwd(c->ctx, g);
    for (int k = 0; k < c->nin; k++) {
        for (size_t i = 0; i < c->n[k]; i++) {
            T_ASSERT_NEAR(c->din[k][i], 2.0f * first[k][i], 1e-5 + 1e-5 * fabs(first[k][i]));
        }
        core_free(first[k]);
    }
    for (int k = 0; k < c->nin; k++) {
        double se = 0.0, sf = 0.0, maxe = 0.0, maxf = 0.0;
        size_t checked = 0;
        for (size_t i = 0; i < c->n[k]; i++) {
            float x0 = c->in[k][i];
            if (c->kink > 0.0f && fabsf(x0) < c->kink) {
                continue;
            }
            c->in[k][i] = x0 + c->eps;
            double lp = gc_loss(c, out, g);
            c->in[k][i] = x0 - c->eps;
            double lm = gc_loss(c, out, g);
            c->in[k][i] = x0;
            /* the perturbation actually applied, after float rounding */
            double h = ((double)(x0 + c->eps) - (double)(x0 - c->eps));
            double fd = (lp - lm) / h;
            double a = 0.5 * (double)c->din[k][i];
            double e = fabs(a - fd);
            se += e * e;
            sf += fd * fd;
            maxe = e > maxe ? e : maxe;
            maxf = fabs(fd) > maxf ? fabs(fd) : maxf;
            checked++;
        }
        double nmse = sf > 0.0 ? se / sf : se;
        double rel = maxe / (maxf > 1.0 ? maxf : 1.0);
        printf("gradcheck %-22s input %d: n=%zu nmse=%.3e max_err=%.3e (max |fd| %.3g)\n",
               c->name, k, checked, nmse, maxe, maxf);
        T_ASSERT(checked > 0);
        if (!(nmse <= c->nmse_tol) || !(rel <= c->abs_tol)) {
            T_FAIL("%s input %d: nmse %.3e (tol %.1e), max err %.3e (tol %.1e)", c->name, k, nmse,
                   c->nmse_tol, rel, c->abs_tol);
        }
    }
    core_free(out);
    core_free(g);
}

static void gc_free(gc_t *c)
{
    for (int k = 0; k < c->nin; k++) {
        core_free(c->in[k]);
        core_free(c->din[k]);
    }
}

static void gc_input(gc_t *c, size_t n, float lo, float hi)
{
    c->in[c->nin] = gc_rand(n, lo, hi);
    c->din[c->nin] = gc_zeros(n);
    c->n[c->nin] = n;
    c->nin++;
}

static void gc_setup(gc_t *c, const char *name, gc_fwd_fn f, gc_bwd_fn b, void *ctx, size_t nout)
{
    memset(c, 0, sizeof *c);
    core_rng_init(&g_rng, 0x9c, 1);
    c->name = name;
    c->fwd = f;
    c->bwd = b;
    c->ctx = ctx;
    c->nout = nout;
    c->eps = 1e-2f;
    c->nmse_tol = 1e-5;
    c->abs_tol = 5e-3;
}

/* ---- linear ---------------------------------------------------------------------------------- */
typedef struct {
    gc_t *c;
    int M, I, O;
} lin_ctx;
static void lin_f(void *p, float *y)
{
    lin_ctx *x = p;
    nn_linear_forward(y, x->c->in[0], x->c->in[1], x->c->in[2], x->M, x->I, x->O);
}
static void lin_b(void *p, const float *g)
{
    lin_ctx *x = p;
    nn_linear_backward(x->c->din[0], x->c->din[1], x->c->din[2], g, x->c->in[0], x->c->in[1], x->M,
                       x->I, x->O);
}
T_CASE(gc_linear)
{
    gc_t c;
    lin_ctx x = {&c, 5, 7, 3};
    gc_setup(&c, "linear", lin_f, lin_b, &x, 15);
    gc_input(&c, 35, -1, 1);
    gc_input(&c, 21, -1, 1);
    gc_input(&c, 3, -1, 1);
    gc_run(&c);
    gc_free(&c);
}

/* ---- elementwise -------------------------------------------------------------------------- */
typedef struct {
    gc_t *c;
    size_t n;
    int which;
} ew_ctx;
static void ew_f(void *p, float *y)
{
    ew_ctx *x = p;
    if (x->which == 0) {
        nn_gelu_forward(y, x->c->in[0], x->n);
    } else if (x->which == 1) {
        nn_relu_forward(y, x->c->in[0], x->n);
    } else {
        nn_add_forward(y, x->c->in[0], x->c->in[1], x->n);
    }
}
static void ew_b(void *p, const float *g)
{
    ew_ctx *x = p;
    if (x->which == 0) {
        nn_gelu_backward(x->c->din[0], g, x->c->in[0], x->n);
    } else if (x->which == 1) {
        nn_relu_backward(x->c->din[0], g, x->c->in[0], x->n);
    } else {
        nn_add_backward(x->c->din[0], x->c->din[1], g, x->n);
    }
}
T_CASE(gc_gelu)
{
    gc_t c;
    ew_ctx x = {&c, 64, 0};
    gc_setup(&c, "gelu", ew_f, ew_b, &x, 64);
    gc_input(&c, 64, -4, 4);
    gc_run(&c);
    gc_free(&c);
}
T_CASE(gc_relu)
{
    gc_t c;
    ew_ctx x = {&c, 64, 1};
    gc_setup(&c, "relu", ew_f, ew_b, &x, 64);
    gc_input(&c, 64, -2, 2);
    c.kink = 2.0f * c.eps; /* the kink at 0 is exempt */
    gc_run(&c);
    gc_free(&c);
}
T_CASE(gc_add)
{
    gc_t c;
    ew_ctx x = {&c, 20, 2};
    gc_setup(&c, "residual_add", ew_f, ew_b, &x, 20);
    gc_input(&c, 20, -1, 1);
    gc_input(&c, 20, -1, 1);
    gc_run(&c);
    gc_free(&c);
}

/* ---- softmax, layernorm, attention, token mean ---------------------------------------------- */
typedef struct {
    gc_t *c;
    int M, N, D, H, start;
    float *mean, *rstd, *att, *scratch;
} row_ctx;
static void sm_f(void *p, float *y)
{
    row_ctx *x = p;
    nn_softmax_forward(y, x->c->in[0], x->M, x->N);
}
static void sm_b(void *p, const float *g)
{
    row_ctx *x = p;
    float *y = gc_zeros((size_t)x->M * (size_t)x->N);
    nn_softmax_forward(y, x->c->in[0], x->M, x->N);
    nn_softmax_backward(x->c->din[0], g, y, x->M, x->N);
    core_free(y);
}
T_CASE(gc_softmax)
{
    gc_t c;
    row_ctx x = {.c = &c, .M = 3, .N = 21};
    gc_setup(&c, "softmax", sm_f, sm_b, &x, 63);
    gc_input(&c, 63, -3, 3);
    gc_run(&c);
    gc_free(&c);
}
static void ln_f(void *p, float *y)
{
    row_ctx *x = p;
    nn_layernorm_forward(y, x->mean, x->rstd, x->c->in[0], x->c->in[1], x->c->in[2], x->M, x->D,
                         1e-5f);
}
static void ln_b(void *p, const float *g)
{
    row_ctx *x = p;
    float *y = gc_zeros((size_t)x->M * (size_t)x->D);
    ln_f(p, y); /* refresh the caches for the unperturbed input */
    nn_layernorm_backward(x->c->din[0], x->c->din[1], x->c->din[2], g, x->c->in[0], x->mean,
                          x->rstd, x->c->in[1], x->M, x->D);
    core_free(y);
}
T_CASE(gc_layernorm)
{
    gc_t c;
    row_ctx x = {.c = &c, .M = 4, .D = 37};
    x.mean = gc_zeros(4);
    x.rstd = gc_zeros(4);
    gc_setup(&c, "layernorm", ln_f, ln_b, &x, 4 * 37);
    gc_input(&c, 4 * 37, -2, 3);
    gc_input(&c, 37, 0.5f, 1.5f);
    gc_input(&c, 37, -1, 1);
    gc_run(&c);
    gc_free(&c);
    core_free(x.mean);
    core_free(x.rstd);
}
static void at_f(void *p, float *y)
{
    row_ctx *x = p;
    nn_attention_forward(y, x->att, x->c->in[0], x->M, x->N, x->D, x->H);
}
static void at_b(void *p, const float *g)
{
    row_ctx *x = p;
    float *y = gc_zeros((size_t)x->M * (size_t)x->N * (size_t)x->D);
    at_f(p, y);
    nn_attention_backward(x->c->din[0], x->scratch, g, x->c->in[0], x->att, x->M, x->N, x->D,
                          x->H);
    core_free(y);
}
T_CASE(gc_attention)
{
    gc_t c;
    row_ctx x = {.c = &c, .M = 2, .N = 5, .D = 12, .H = 3};
    x.att = gc_zeros(2 * 3 * 25);
    x.scratch = gc_zeros(NN_MAX_THREADS * 25);
    gc_setup(&c, "attention", at_f, at_b, &x, 2 * 5 * 12);
    gc_input(&c, 2 * 5 * 36, -1.5f, 1.5f);
    gc_run(&c);
    gc_free(&c);
    core_free(x.att);
    core_free(x.scratch);
}
static void mt_f(void *p, float *y)
{
    row_ctx *x = p;
    nn_mean_tokens_forward(y, x->c->in[0], x->M, x->N, x->D, x->start);
}
static void mt_b(void *p, const float *g)
{
    row_ctx *x = p;
    nn_mean_tokens_backward(x->c->din[0], g, x->M, x->N, x->D, x->start);
}
T_CASE(gc_mean_tokens)
{
    gc_t c;
    row_ctx x = {.c = &c, .M = 2, .N = 5, .D = 3, .start = 1};
    gc_setup(&c, "mean_tokens", mt_f, mt_b, &x, 6);
    gc_input(&c, 30, -1, 1);
    gc_run(&c);
    gc_free(&c);
}

/* ---- conv family ------------------------------------------------------------------------------ */
typedef struct {
    gc_t *c;
    nn_conv2d_dims_t d;
    float *scratch;
    int bias;
} conv_ctx;
static void cv_f(void *p, float *y)
{
    conv_ctx *x = p;
    nn_conv2d_forward(y, x->scratch, x->c->in[0], x->c->in[1], x->bias ? x->c->in[2] : NULL, &x->d);
}
static void cv_b(void *p, const float *g)
{
    conv_ctx *x = p;
    nn_conv2d_backward(x->c->din[0], x->c->din[1], x->bias ? x->c->din[2] : NULL, x->scratch, g,
                       x->c->in[0], x->c->in[1], &x->d);
}
static void conv_case(const char *name, nn_conv2d_dims_t d, int bias)
{
    gc_t c;
    conv_ctx x = {&c, d, NULL, bias};
    x.scratch = gc_zeros(nn_conv2d_scratch(&d));
    int Ho = nn_conv2d_out_h(&d), Wo = nn_conv2d_out_w(&d);
    gc_setup(&c, name, cv_f, cv_b, &x, (size_t)d.B * (size_t)d.O * (size_t)Ho * (size_t)Wo);
    gc_input(&c, (size_t)d.B * (size_t)d.C * (size_t)d.H * (size_t)d.W, -1, 1);
    gc_input(&c, (size_t)d.O * (size_t)(d.C / d.groups) * (size_t)d.KH * (size_t)d.KW, -1, 1);
    if (bias) {
        gc_input(&c, (size_t)d.O, -1, 1);
    }
    gc_run(&c);
    /* and the forward against the direct reference */
    float *y = gc_zeros(c.nout), *r = gc_zeros(c.nout);
    cv_f(&x, y);
    nn_conv2d_forward_ref(r, c.in[0], c.in[1], bias ? c.in[2] : NULL, &d);
    for (size_t i = 0; i < c.nout; i++) {
        T_ASSERT_NEAR(y[i], r[i], 1e-5);
    }
    core_free(y);
    core_free(r);
    gc_free(&c);
    core_free(x.scratch);
}
T_CASE(gc_conv2d_general)
{
    nn_conv2d_dims_t d = {.B = 2, .C = 3, .H = 7, .W = 6, .O = 4, .KH = 3, .KW = 3, .stride = 2,
                          .pad = 1, .groups = 1};
    conv_case("conv2d_3x3_s2_p1", d, 1);
}
T_CASE(gc_conv2d_grouped)
{
    nn_conv2d_dims_t d = {.B = 2, .C = 4, .H = 5, .W = 5, .O = 6, .KH = 3, .KW = 2, .stride = 1,
                          .pad = 1, .groups = 2};
    conv_case("conv2d_grouped", d, 1);
}
T_CASE(gc_conv2d_1x1)
{
    nn_conv2d_dims_t d = {.B = 2, .C = 5, .H = 4, .W = 3, .O = 3, .KH = 1, .KW = 1, .stride = 1,
                          .pad = 0, .groups = 1};
    conv_case("conv2d_1x1", d, 0);
}
T_CASE(gc_conv2d_depthwise)
{
    nn_conv2d_dims_t d = {.B = 2, .C = 3, .H = 6, .W = 5, .O = 3, .KH = 3, .KW = 3, .stride = 2,
                          .pad = 1, .groups = 3};
    conv_case("conv2d_depthwise", d, 1);
}

typedef struct {
    gc_t *c;
    int B, C, H, p, D;
    float *patches;
} pe_ctx;
static void pe_f(void *q, float *y)
{
    pe_ctx *x = q;
    nn_patch_embed_forward(y, x->patches, x->c->in[0], x->c->in[1], x->B, x->C, x->H, x->p, x->D);
}
static void pe_b(void *q, const float *g)
{
    pe_ctx *x = q;
    float *y = gc_zeros(x->c->nout);
    pe_f(q, y);
    nn_patch_embed_backward(x->c->din[0], x->c->din[1], g, x->patches, x->c->in[1], x->B, x->C,
                            x->H, x->p, x->D);
    core_free(y);
}
T_CASE(gc_patch_embed)
{
    gc_t c;
    pe_ctx x = {&c, 2, 3, 6, 3, 5, NULL};
    x.patches = gc_zeros(2 * 4 * 27);
    gc_setup(&c, "patch_embed", pe_f, pe_b, &x, 2 * 4 * 5);
    gc_input(&c, 2 * 3 * 36, -1, 1);
    gc_input(&c, 5 * 27, -1, 1);
    gc_run(&c);
    /* equals a conv with kernel = stride = patch, re-laid out as tokens */
    nn_conv2d_dims_t d = {.B = 2, .C = 3, .H = 6, .W = 6, .O = 5, .KH = 3, .KW = 3, .stride = 3,
                          .pad = 0, .groups = 1};
    float *y = gc_zeros(40), *r = gc_zeros(40);
    pe_f(&x, y);
    nn_conv2d_forward_ref(r, c.in[0], c.in[1], NULL, &d);
    for (int n = 0; n < 2; n++) {
        for (int t = 0; t < 4; t++) {
            for (int o = 0; o < 5; o++) {
                T_ASSERT_NEAR(y[(n * 4 + t) * 5 + o], r[(n * 5 + o) * 4 + t], 1e-5);
            }
        }
    }
    core_free(y);
    core_free(r);
    core_free(x.patches);
    gc_free(&c);
}

typedef struct {
    gc_t *c;
    int B, C, HW, train;
    float *mean, *rstd, *rm, *rv;
} bn_ctx;
static void bn_f(void *q, float *y)
{
    bn_ctx *x = q;
    nn_bn2d_forward(y, x->mean, x->rstd, x->c->in[0], x->c->in[1], x->c->in[2],
                    x->train ? NULL : x->rm, x->train ? NULL : x->rv, x->B, x->C, x->HW, 0.1f,
                    1e-3f, x->train);
}
static void bn_b(void *q, const float *g)
{
    bn_ctx *x = q;
    float *y = gc_zeros(x->c->nout);
    bn_f(q, y);
    nn_bn2d_backward(x->c->din[0], x->c->din[1], x->c->din[2], g, x->c->in[0], x->mean, x->rstd,
                     x->c->in[1], x->B, x->C, x->HW, x->train);
    core_free(y);
}
static void bn_case(int train)
{
    gc_t c;
    bn_ctx x = {&c, 3, 2, 5, train, NULL, NULL, NULL, NULL};
    x.mean = gc_zeros(2);
    x.rstd = gc_zeros(2);
    x.rm = gc_rand(2, -0.5f, 0.5f);
    x.rv = gc_rand(2, 0.5f, 2.0f);
    gc_setup(&c, train ? "bn2d_train" : "bn2d_eval", bn_f, bn_b, &x, 30);
    gc_input(&c, 30, -2, 2);
    gc_input(&c, 2, 0.5f, 1.5f);
    gc_input(&c, 2, -1, 1);
    gc_run(&c);
    gc_free(&c);
    core_free(x.mean);
    core_free(x.rstd);
    core_free(x.rm);
    core_free(x.rv);
}
T_CASE(gc_bn2d_train)
{
    bn_case(1);
}
T_CASE(gc_bn2d_eval)
{
    bn_case(0);
}

typedef struct {
    gc_t *c;
    int B, C, H, W, k, s, pad, which;
    int32_t *idx;
} pool_ctx;
static void pl_f(void *q, float *y)
{
    pool_ctx *x = q;
    if (x->which == 0) {
        nn_avgpool2d_forward(y, x->c->in[0], x->B, x->C, x->H, x->W, x->k, x->s, x->pad);
    } else if (x->which == 1) {
        nn_maxpool2d_forward(y, x->idx, x->c->in[0], x->B, x->C, x->H, x->W, x->k, x->s, x->pad);
    } else {
        nn_gap_forward(y, x->c->in[0], x->B, x->C, x->H * x->W);
    }
}
static void pl_b(void *q, const float *g)
{
    pool_ctx *x = q;
    if (x->which == 0) {
        nn_avgpool2d_backward(x->c->din[0], g, x->B, x->C, x->H, x->W, x->k, x->s, x->pad);
    } else if (x->which == 1) {
        float *y = gc_zeros(x->c->nout);
        pl_f(q, y);
        nn_maxpool2d_backward(x->c->din[0], g, x->idx, x->B, x->C, x->H, x->W, x->k, x->s, x->pad);
        core_free(y);
    } else {
        nn_gap_backward(x->c->din[0], g, x->B, x->C, x->H * x->W);
    }
}
static void pool_case(const char *name, int which)
{
    gc_t c;
    pool_ctx x = {&c, 2, 2, 5, 6, 3, 2, 1, which, NULL};
    int Ho = nn_pool_out(5, 3, 2, 1), Wo = nn_pool_out(6, 3, 2, 1);
    size_t nout = which == 2 ? 4 : (size_t)(4 * Ho * Wo);
    x.idx = core_malloc(nout * sizeof(int32_t));
    gc_setup(&c, name, pl_f, pl_b, &x, nout);
    gc_input(&c, 120, -1, 1);
    if (which == 1) {
        /* max-pool: distinct values spaced 4 eps apart, so no perturbation changes an argmax
         * (ties are the exempt kink) */
        for (int i = 0; i < 120; i++) {
            c.in[0][i] = (float)((i * 37) % 120) * 4.0f * c.eps - 1.0f;
        }
    }
    gc_run(&c);
    gc_free(&c);
    core_free(x.idx);
}
T_CASE(gc_avgpool)
{
    pool_case("avgpool2d", 0);
}
T_CASE(gc_maxpool)
{
    pool_case("maxpool2d", 1);
}
T_CASE(gc_global_avgpool)
{
    pool_case("global_avgpool", 2);
}

/* ---- soft-target cross-entropy ------------------------------------------------------------- */
typedef struct {
    gc_t *c;
    int B, V;
    const uint32_t *off, *ids;
    const float *tw;
} xe_ctx;
static void xe_f(void *q, float *y)
{
    xe_ctx *x = q;
    nn_soft_xent_sparse(y, NULL, x->c->in[0], x->off, x->ids, x->tw, x->B, x->V, 1.0f);
}
static void xe_b(void *q, const float *g)
{
    xe_ctx *x = q;
    /* the fused gradient is for sum_i loss_i * scale: apply g row by row */
    for (int i = 0; i < x->B; i++) {
        nn_soft_xent_sparse(NULL, x->c->din[0] + (size_t)i * (size_t)x->V,
                            x->c->in[0] + (size_t)i * (size_t)x->V, x->off + i, x->ids, x->tw, 1,
                            x->V, g[i]);
    }
}
T_CASE(gc_soft_xent)
{
    gc_t c;
    /* row 0: a normalised target; row 1: unnormalised (sum 0.7); row 2: empty target */
    static const uint32_t off[4] = {0, 3, 5, 5};
    static const uint32_t ids[5] = {1, 4, 9, 0, 7};
    static const float tw[5] = {0.5f, 0.25f, 0.25f, 0.3f, 0.4f};
    xe_ctx x = {&c, 3, 11, off, ids, tw};
    gc_setup(&c, "soft_xent", xe_f, xe_b, &x, 3);
    gc_input(&c, 33, -3, 3);
    gc_run(&c);
    /* against the dense reference */
    float dense[33] = {0}, l1[3], l2[3];
    float *d1 = gc_zeros(33), *d2 = gc_zeros(33);
    for (int i = 0; i < 3; i++) {
        for (uint32_t j = off[i]; j < off[i + 1]; j++) {
            dense[i * 11 + (int)ids[j]] = tw[j];
        }
    }
    nn_soft_xent_sparse(l1, d1, c.in[0], off, ids, tw, 3, 11, 0.5f);
    nn_soft_xent_dense_ref(l2, d2, c.in[0], dense, 3, 11, 0.5f);
    for (int i = 0; i < 3; i++) {
        T_ASSERT_NEAR(l1[i], l2[i], 1e-5);
    }
    T_ASSERT(l1[2] == 0.0f);
    for (int i = 0; i < 33; i++) {
        T_ASSERT_NEAR(d1[i], d2[i], 1e-6);
    }
    core_free(d1);
    core_free(d2);
    gc_free(&c);
}

T_MAIN()
