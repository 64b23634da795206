/* CRU-Net unit tests: parameter counts against spec/crunet.md 3 and 5, the channel-major kernels
 * against nn/kernels.h's NCHW references, sharing equivalence with the no-sharing twin (spec 6
 * check 3), and a checkpoint round trip through the tensor table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/rng.h"
#include "crunet_internal.h"
#include "nn/blas.h"
#include "nn/ckpt.h"
#include "nn/crunet.h"
#include "nn/kernels.h"
#include "t.h"

static void count_preset(const char *name, int classes, nn_crunet_counts_t *n)
{
    nn_crunet_cfg_t c;
    int image = 224;
    if (strncmp(name, "crunet35c", 9) == 0 || strncmp(name, "crunet24", 8) == 0) {
        image = 32;
    }
    T_ASSERT_OK(nn_crunet_preset(name, image, NN_CRUNET_HEAD_FC, classes, 1, &c));
    T_ASSERT_OK(nn_crunet_count(&c, n));
    printf("%-22s params %zu conv tensors %zu bn layers %zu conv %zu bn_c %zu buffers %zu\n", name,
           n->params, n->conv_tensors, n->bn_layers, n->conv_params, n->bn_channels, n->buffers);
}

T_CASE(params_crunet56)
{
    nn_crunet_counts_t n;
    count_preset("crunet56", 1000, &n);
    T_ASSERT_U64_EQ(n.params, 25609384);
    T_ASSERT_U64_EQ(n.conv_tensors, 49);
    T_ASSERT_U64_EQ(n.bn_layers, 55);
    T_ASSERT_U64_EQ(n.conv_params, 23490880);
    T_ASSERT_U64_EQ(n.bn_channels, 34752);
    T_ASSERT_U64_EQ(n.params + n.buffers, 25678888); /* with running stats (98MB) */
    count_preset("crunet56-noshare", 1000, &n);
    T_ASSERT_U64_EQ(n.params, 25609384 + 5 * 661120); /* spec 3: sharing saves 5 x 661,120 */
}

T_CASE(params_crunet116)
{
    nn_crunet_counts_t n;
    count_preset("crunet116", 1000, &n);
    T_ASSERT_U64_EQ(n.params, 43656136);
    T_ASSERT_U64_EQ(n.conv_tensors, 79);
    T_ASSERT_U64_EQ(n.bn_layers, 98);
    T_ASSERT_U64_EQ(n.conv_params, 41470304);
    T_ASSERT_U64_EQ(n.bn_channels, 68416);
    T_ASSERT_U64_EQ(n.params + n.buffers, 43792968);
    count_preset("crunet116", 365, &n);
    T_ASSERT_U64_EQ(n.params, 42355021); /* Places365 */
    count_preset("crunet116-noshare", 1000, &n);
    T_ASSERT_U64_EQ(n.params, 43656136 + 5 * 183392 + 15 * 727232);
}

T_CASE(params_baselines)
{
    nn_crunet_counts_t n;
    count_preset("crunet56-136x1d", 1000, &n);
    T_ASSERT_U64_EQ(n.params, 25474144);
    T_ASSERT_U64_EQ(n.conv_params, 23354520);
    count_preset("resnext50-32x4d", 1000, &n);
    T_ASSERT_U64_EQ(n.params, 25025064);
    T_ASSERT_U64_EQ(n.conv_params, 22911680);
    T_ASSERT_U64_EQ(n.bn_channels, 32192);
    count_preset("resnet50", 1000, &n);
    T_ASSERT_U64_EQ(n.params, 25553192);
    T_ASSERT_U64_EQ(n.bn_channels, 24640);
}

T_CASE(params_small)
{
    nn_crunet_counts_t n;
    count_preset("crunet35c", 10, &n);
    T_ASSERT_U64_EQ(n.params, 455626);
    T_ASSERT_U64_EQ(n.conv_params, 445184);
    T_ASSERT_U64_EQ(n.bn_channels, 3936);
    count_preset("crunet35c", 100, &n);
    T_ASSERT_U64_EQ(n.params, 478756);
    count_preset("crunet35c-noshare", 10, &n);
    T_ASSERT_U64_EQ(n.params, 583690);
    count_preset("crunet35c-s2", 200, &n);
    T_ASSERT_U64_EQ(n.params, 504456);
    count_preset("crunet24-mini", 10, &n);
    T_ASSERT_U64_EQ(n.params, 88682);
    T_ASSERT_U64_EQ(n.conv_params, 84544);
    T_ASSERT_U64_EQ(n.bn_channels, 1424);
}

T_CASE(presets_reject)
{
    nn_crunet_cfg_t c;
    T_ASSERT_ERR(nn_crunet_preset("crunet57", 32, 0, 10, 1, &c), CORE_ENOT_FOUND);
    T_ASSERT_ERR(nn_crunet_preset("crunet56-noshare-noshare", 32, 0, 10, 1, &c), CORE_ENOT_FOUND);
    T_ASSERT_ERR(nn_crunet_preset("crunet35c", 32, 0, 0, 1, &c), CORE_ECONFIG);
    T_ASSERT_ERR(nn_crunet_preset("crunet35c", 32, 0, 10, 0, &c), CORE_ECONFIG);
    T_ASSERT_OK(nn_crunet_preset("crunet35c", 32, 0, 10, 2, &c));
    c.stage[0].groups = 5; /* 32 % 5 != 0 */
    T_ASSERT_ERR(nn_crunet_cfg_check(&c), CORE_ECONFIG);
}

/* The built table agrees with the count; names are unique; shared tensors appear once; buffers
 * come last. */
T_CASE(tensor_table)
{
    nn_crunet_cfg_t c;
    T_ASSERT_OK(nn_crunet_preset("crunet35c", 32, NN_CRUNET_HEAD_FC, 10, 2, &c));
    nn_crunet_t *m = NULL;
    T_ASSERT_OK(nn_crunet_new(&c, &m));
    T_ASSERT_U64_EQ(nn_crunet_num_params(m), 455626);
    size_t n = nn_crunet_num_tensors(m), nbuf = 0;
    int seen_buffer = 0;
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t, u;
        T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
        T_ASSERT_OK(nn_crunet_find(m, t.name, &u));
        T_ASSERT(u.data == t.data);
        if (t.is_buffer) {
            seen_buffer = 1;
            nbuf++;
            T_ASSERT(t.grad == NULL);
        } else {
            T_ASSERT(!seen_buffer);
        }
        for (size_t j = 0; j < i; j++) {
            nn_tensor_t v;
            T_ASSERT_OK(nn_crunet_tensor(m, j, &v));
            T_ASSERT(strcmp(v.name, t.name) != 0);
        }
    }
    T_ASSERT_EQ(nbuf, 2 * 34); /* running mean + var of each of the 34 BN layers */
    nn_tensor_t t;
    T_ASSERT_OK(nn_crunet_find(m, "stage1.share0.conv_a.weight", &t));
    T_ASSERT_EQ(t.shape[0], 96);
    T_ASSERT_EQ(t.shape[1], 128);
    T_ASSERT_OK(nn_crunet_find(m, "stage2.share0.conv_dw.weight", &t));
    T_ASSERT_EQ(t.shape[1], 1);
    T_ASSERT_EQ(t.shape[2], 3);
    T_ASSERT_OK(nn_crunet_find(m, "stage2.unit0.proj.weight", &t));
    T_ASSERT_ERR(nn_crunet_find(m, "stage2.unit1.conv_a.weight", &t), CORE_ENOT_FOUND);
    T_ASSERT_OK(nn_crunet_find(m, "stage2.unit0.proj_bn2.running_var", &t));
    T_ASSERT(t.is_buffer);
    nn_crunet_free(m);
}

/* ---- kernels against the NCHW references ---------------------------------------------------- */

static core_rng_t g_rng;

static float *rnd(size_t n)
{
    float *p = core_malloc(n * sizeof(float));
    T_ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++) {
        p[i] = 2.0f * core_rng_uniform(&g_rng) - 1.0f;
    }
    return p;
}

static float *zeros(size_t n)
{
    float *p = core_calloc(n, sizeof(float));
    T_ASSERT(p != NULL);
    return p;
}

/* NCHW [B, C, HW] -> CNHW and back */
static void to_cnhw(float *y, const float *x, int B, int C, size_t HW)
{
    nn__cru_nchw_to_cnhw(y, x, B, C, HW);
}

static void to_nchw(float *y, const float *x, int B, int C, size_t HW)
{
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) {
            memcpy(y + ((size_t)b * (size_t)C + (size_t)c) * HW,
                   x + ((size_t)c * (size_t)B + (size_t)b) * HW, HW * sizeof(float));
        }
    }
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double mx = 0.0, scale = 1e-6;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs((double)b[i]));
    }
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)a[i] - (double)b[i]));
    }
    return mx / scale;
}

static void gconv_case(int B, int C, int O, int groups, int H, int W, int k, int s, int pad)
{
    nn__cru_gconv_t d = {.C = C, .O = O, .groups = groups, .B = B, .H = H, .W = W, .k = k,
                         .stride = s, .pad = pad};
    nn_conv2d_dims_t r = {.B = B, .C = C, .H = H, .W = W, .O = O, .KH = k, .KW = k, .stride = s,
                          .pad = pad, .groups = groups};
    int Ho = nn__cru_gconv_ho(&d), Wo = nn__cru_gconv_wo(&d);
    T_ASSERT_EQ(Ho, nn_conv2d_out_h(&r));
    T_ASSERT_EQ(Wo, nn_conv2d_out_w(&r));
    size_t nx = (size_t)B * (size_t)C * (size_t)H * (size_t)W;
    size_t ny = (size_t)B * (size_t)O * (size_t)Ho * (size_t)Wo;
    size_t nw = (size_t)O * (size_t)(C / groups) * (size_t)(k * k);
    float *x = rnd(nx), *w = rnd(nw), *dy = rnd(ny);
    float *xc = zeros(nx), *yc = zeros(ny), *y = zeros(ny), *yref = zeros(ny);
    float *dyc = zeros(ny), *dxc = zeros(nx), *dx = zeros(nx), *dxref = zeros(nx);
    float *dw = zeros(nw), *dwref = zeros(nw);
    float *scr = zeros(2 * nn__cru_gconv_scratch(&d));
    float *rscr = zeros(nn_conv2d_scratch(&r) + 1);
    to_cnhw(xc, x, B, C, (size_t)H * (size_t)W);
    nn__cru_gconv_fwd(yc, scr, xc, w, &d);
    to_nchw(y, yc, B, O, (size_t)Ho * (size_t)Wo);
    nn_conv2d_forward_ref(yref, x, w, NULL, &r);
    double ef = max_rel(y, yref, ny);
    to_cnhw(dyc, dy, B, O, (size_t)Ho * (size_t)Wo);
    nn__cru_gconv_bwd(dxc, dw, scr, dyc, xc, w, &d);
    to_nchw(dx, dxc, B, C, (size_t)H * (size_t)W);
    nn_conv2d_backward(dxref, dwref, NULL, rscr, dy, x, w, &r);
    double ex = max_rel(dx, dxref, nx), ew = max_rel(dw, dwref, nw);
    printf("gconv B%d C%d O%d g%d %dx%d k%d s%d p%d: fwd %.2e dx %.2e dw %.2e\n", B, C, O, groups,
           H, W, k, s, pad, ef, ex, ew);
    T_ASSERT(ef < 1e-5 && ex < 1e-5 && ew < 1e-5);
    float *all[] = {x, w, dy, xc, yc, y, yref, dyc, dxc, dx, dxref, dw, dwref, scr, rscr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        core_free(all[i]);
    }
}

T_CASE(kernel_gconv)
{
    core_rng_init(&g_rng, 1, 0);
    gconv_case(2, 6, 6, 6, 7, 5, 3, 1, 1);   /* depthwise */
    gconv_case(2, 6, 6, 6, 7, 5, 3, 2, 1);   /* depthwise, stride 2, odd sizes */
    gconv_case(3, 8, 8, 8, 8, 8, 3, 2, 1);
    gconv_case(2, 8, 12, 2, 6, 9, 3, 1, 1);  /* grouped 4 -> 6 per group */
    gconv_case(2, 8, 8, 2, 9, 6, 3, 2, 1);
    gconv_case(2, 3, 5, 1, 9, 9, 7, 2, 3);   /* dense 7x7/2 */
    gconv_case(1, 4, 4, 4, 3, 3, 3, 3, 1);   /* stride 3 */
}

T_CASE(kernel_bnrelu)
{
    core_rng_init(&g_rng, 2, 0);
    int B = 3, C = 5, HW = 7 * 6;
    size_t n = (size_t)B * (size_t)C * (size_t)HW, per = (size_t)B * (size_t)HW;
    float *x = rnd(n), *g = rnd((size_t)C), *bt = rnd((size_t)C), *dy = rnd(n);
    for (size_t i = 0; i < n; i++) {
        x[i] = 3.0f * x[i] + 100.0f; /* a large offset: the shifted sums must stay accurate */
    }
    float *xc = zeros(n), *yc = zeros(n), *y = zeros(n), *yref = zeros(n), *tmp = zeros(n);
    float *mean = zeros((size_t)C), *rstd = zeros((size_t)C), *rm = zeros((size_t)C);
    float *rv = zeros((size_t)C), *mref = zeros((size_t)C), *rref = zeros((size_t)C);
    float *dyc = zeros(n), *dxc = zeros(n), *dx = zeros(n), *dxref = zeros(n), *dmask = zeros(n);
    float dg[5] = {0}, db[5] = {0}, dgr[5] = {0}, dbr[5] = {0};
    for (int c = 0; c < C; c++) {
        rv[c] = 1.0f;
    }
    to_cnhw(xc, x, B, C, (size_t)HW);
    nn__cru_bnrelu_fwd(yc, mean, rstd, xc, g, bt, rm, rv, C, per, 0.9f, 1e-3f, 1);
    to_nchw(y, yc, B, C, (size_t)HW);
    nn_bn2d_forward(tmp, mref, rref, x, g, bt, NULL, NULL, B, C, HW, 0.1f, 1e-3f, 1);
    nn_relu_forward(yref, tmp, n);
    T_ASSERT(max_rel(y, yref, n) < 1e-5);
    /* running stats: 0.9 * init + 0.1 * batch, biased variance */
    for (int c = 0; c < C; c++) {
        double s = 0.0, ss = 0.0;
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < HW; i++) {
                s += x[((size_t)b * (size_t)C + (size_t)c) * (size_t)HW + (size_t)i];
            }
        }
        double mu = s / (double)per;
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < HW; i++) {
                double d = x[((size_t)b * (size_t)C + (size_t)c) * (size_t)HW + (size_t)i] - mu;
                ss += d * d;
            }
        }
        T_ASSERT_NEAR(rm[c], 0.1 * mu, 1e-4);
        T_ASSERT_NEAR(rv[c], 0.9 + 0.1 * ss / (double)per, 1e-5);
    }
    to_cnhw(dyc, dy, B, C, (size_t)HW);
    nn__cru_bnrelu_bwd(dxc, dg, db, dyc, xc, mean, rstd, g, bt, C, per, 1, 0);
    to_nchw(dx, dxc, B, C, (size_t)HW);
    nn_relu_backward(dmask, dy, tmp, n);
    nn_bn2d_backward(dxref, dgr, dbr, dmask, x, mref, rref, g, B, C, HW, 1);
    T_ASSERT(max_rel(dx, dxref, n) < 1e-4);
    T_ASSERT(max_rel(dg, dgr, 5) < 1e-4 && max_rel(db, dbr, 5) < 1e-5);
    float *all[] = {x, g, bt, dy, xc, yc, y, yref, tmp, mean, rstd, rm, rv, mref, rref, dyc, dxc,
                    dx, dxref, dmask};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        core_free(all[i]);
    }
}

/* ---- sharing equivalence (spec 6, check 3) ------------------------------------------------- */

/* A small CRU configuration with two share sets in the last stage. */
static nn_crunet_cfg_t small_cfg(int no_share, int head, int classes)
{
    nn_crunet_cfg_t c;
    memset(&c, 0, sizeof c);
    c.image_size = 8;
    c.batch = 4;
    c.stem_ch = 8;
    c.stem_k = 3;
    c.stem_stride = 1;
    c.n_stages = 3;
    c.stage[0] = (nn_crunet_stage_t){NN_CRUNET_RESNEXT, 2, 12, 8, 2, 1, 0};
    c.stage[1] = (nn_crunet_stage_t){NN_CRUNET_CRU, 2, 16, 12, 1, 2, 0};
    c.stage[2] = (nn_crunet_stage_t){NN_CRUNET_CRU, 4, 20, 10, 1, 2, 2};
    c.head = head;
    c.classes = classes;
    c.no_share = no_share;
    return c;
}

/* The shared model's name for a twin tensor: stageS.unitU.conv_{a,dw} -> stageS.share<set>. */
static void shared_name(const nn_crunet_cfg_t *c, const char *twin, char *out, size_t cap)
{
    int s, u;
    char rest[64];
    if (sscanf(twin, "stage%d.unit%d.%63s", &s, &u, rest) == 3 &&
        (strcmp(rest, "conv_a.weight") == 0 || strcmp(rest, "conv_dw.weight") == 0)) {
        int every = c->stage[s].share_every;
        snprintf(out, cap, "stage%d.share%d.%s", s, every ? u / every : 0, rest);
        return;
    }
    snprintf(out, cap, "%s", twin);
}

T_CASE(sharing_equivalence)
{
    nn_crunet_cfg_t cs = small_cfg(0, NN_CRUNET_HEAD_FC, 5), ct = small_cfg(1, NN_CRUNET_HEAD_FC, 5);
    nn_crunet_t *a = NULL, *b = NULL;
    T_ASSERT_OK(nn_crunet_new(&cs, &a));
    T_ASSERT_OK(nn_crunet_new(&ct, &b));
    nn_crunet_init(a, 7);
    nn_crunet_init(b, 99);
    /* copy every tensor of the shared model into the twin */
    size_t nt = nn_crunet_num_tensors(b);
    for (size_t i = 0; i < nt; i++) {
        nn_tensor_t tb, ta;
        char name[128];
        T_ASSERT_OK(nn_crunet_tensor(b, i, &tb));
        shared_name(&cs, tb.name, name, sizeof name);
        T_ASSERT_OK(nn_crunet_find(a, name, &ta));
        T_ASSERT_EQ(ta.numel, tb.numel);
        memcpy(tb.data, ta.data, ta.numel * (ta.dtype == NN_DTYPE_F64 ? 8 : 4));
    }
    core_rng_init(&g_rng, 3, 0);
    float *img = rnd(4 * 3 * 8 * 8);
    int32_t labels[4] = {0, 3, 4, 1};
    float la, lb;
    nn_crunet_t *ms[2] = {a, b};
    float *loss[2] = {&la, &lb};
    for (int k = 0; k < 2; k++) {
        nn_crunet_zero_grad(ms[k]);
        nn_crunet_forward(ms[k], img, 1);
        T_ASSERT_OK(nn_crunet_loss_labels(ms[k], labels, loss[k]));
        nn_crunet_backward(ms[k]);
    }
    /* identical outputs: the same ops on the same values */
    T_ASSERT(memcmp(nn_crunet_logits(a), nn_crunet_logits(b), 4 * 5 * sizeof(float)) == 0);
    T_ASSERT(la == lb);
    /* gradients: a shared tensor's gradient is the sum of the copies' gradients */
    size_t na = nn_crunet_num_tensors(a);
    int shared_checked = 0;
    for (size_t i = 0; i < na; i++) {
        nn_tensor_t ta;
        T_ASSERT_OK(nn_crunet_tensor(a, i, &ta));
        if (ta.is_buffer) {
            nn_tensor_t tb;
            T_ASSERT_OK(nn_crunet_find(b, ta.name, &tb));
            T_ASSERT(memcmp(ta.data, tb.data, ta.numel * 4) == 0); /* running stats */
            continue;
        }
        double *sum = core_calloc(ta.numel, sizeof(double));
        T_ASSERT(sum != NULL);
        int copies = 0;
        for (size_t j = 0; j < nt; j++) {
            nn_tensor_t tb;
            char name[128];
            T_ASSERT_OK(nn_crunet_tensor(b, j, &tb));
            shared_name(&cs, tb.name, name, sizeof name);
            if (strcmp(name, ta.name) != 0) {
                continue;
            }
            copies++;
            for (size_t e = 0; e < tb.numel; e++) {
                sum[e] += tb.grad[e];
            }
        }
        T_ASSERT(copies >= 1);
        double mx = 0.0, sc = 1e-12;
        for (size_t e = 0; e < ta.numel; e++) {
            mx = fmax(mx, fabs(sum[e] - (double)ta.grad[e]));
            sc = fmax(sc, fabs(sum[e]));
        }
        if (copies > 1) {
            shared_checked++;
            printf("%-32s %d copies, max |shared - sum| / max = %.2e\n", ta.name, copies, mx / sc);
            T_ASSERT(mx / sc < 1e-5);
        } else {
            T_ASSERT(mx == 0.0); /* unshared tensors: the same computation */
        }
        core_free(sum);
    }
    T_ASSERT_EQ(shared_checked, 6); /* conv_a + conv_dw of stage 1 and of stage 2's two sets */
    core_free(img);
    nn_crunet_free(a);
    nn_crunet_free(b);
}

/* ---- checkpoint round trip via the tensor table ------------------------------------------- */

static nn_ckpt_entry_t *entries_of(nn_crunet_t *m, size_t *n)
{
    *n = nn_crunet_num_tensors(m);
    nn_ckpt_entry_t *e = core_calloc(*n, sizeof *e);
    T_ASSERT(e != NULL);
    for (size_t i = 0; i < *n; i++) {
        nn_tensor_t t;
        T_ASSERT_OK(nn_crunet_tensor(m, i, &t));
        e[i].name = t.name;
        e[i].dtype = t.dtype == NN_DTYPE_F64 ? NN_ST_F64 : NN_ST_F32;
        e[i].rank = t.ndim;
        for (int k = 0; k < t.ndim; k++) {
            e[i].shape[k] = t.shape[k];
        }
        e[i].data = t.data;
        e[i].exp_avg = t.m;
        e[i].exp_avg_sq = t.v;
    }
    return e;
}

T_CASE(ckpt_roundtrip)
{
    nn_crunet_cfg_t c = small_cfg(0, NN_CRUNET_HEAD_SC, 30);
    nn_crunet_t *a = NULL, *b = NULL;
    T_ASSERT_OK(nn_crunet_new(&c, &a));
    T_ASSERT_OK(nn_crunet_new(&c, &b));
    nn_crunet_init(a, 1);
    nn_crunet_init(b, 2);
    core_rng_init(&g_rng, 4, 0);
    float *img = rnd(4 * 3 * 8 * 8);
    uint32_t off[5] = {0, 2, 3, 5, 6}, ids[6] = {1, 7, 4, 0, 29, 12};
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    nn_crunet_zero_grad(a);
    nn_crunet_forward(a, img, 1);
    float l0;
    T_ASSERT_OK(nn_crunet_loss_sc(a, off, ids, 1, &l0));
    nn_crunet_backward(a);
    nn_crunet_adamw_step(a, &opt, 1e-3f);
    size_t n;
    nn_ckpt_entry_t *ea = entries_of(a, &n), *eb = entries_of(b, &n);
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/cru.safetensors", t_tmpdir());
    T_ASSERT_OK(nn_ckpt_save(path, ea, n, NULL, 0, err, sizeof err));
    T_ASSERT_OK(nn_ckpt_load(path, eb, n, 0, NULL, err, sizeof err));
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t ta, tb;
        T_ASSERT_OK(nn_crunet_tensor(a, i, &ta));
        T_ASSERT_OK(nn_crunet_tensor(b, i, &tb));
        size_t bytes = ta.numel * (ta.dtype == NN_DTYPE_F64 ? 8 : 4);
        T_ASSERT(memcmp(ta.data, tb.data, bytes) == 0);
        if (!ta.is_buffer) {
            T_ASSERT(memcmp(ta.m, tb.m, bytes) == 0 && memcmp(ta.v, tb.v, bytes) == 0);
        }
    }
    /* the loaded model computes the same eval-mode logits (running statistics included) */
    nn_crunet_forward(a, img, 0);
    nn_crunet_forward(b, img, 0);
    T_ASSERT(memcmp(nn_crunet_logits(a), nn_crunet_logits(b), 4 * 30 * sizeof(float)) == 0);
    core_free(ea);
    core_free(eb);
    core_free(img);
    nn_crunet_free(a);
    nn_crunet_free(b);
}

static void sc_train_step(nn_crunet_t *m, const float *img, const uint32_t *off,
                          const uint32_t *ids, const nn_adamw_cfg_t *opt)
{
    float loss;
    nn_crunet_zero_grad(m);
    nn_crunet_forward(m, img, 1);
    T_ASSERT_OK(nn_crunet_loss_sc(m, off, ids, 1, &loss));
    nn_crunet_backward(m);
    nn_crunet_adamw_step(m, opt, 1e-3f);
}

/* Resume: a model loaded from a checkpoint with its AdamW step counter restored takes the same
 * next step as the model that kept running (bias correction depends on the counter). */
T_CASE(resume_continues_adamw_exactly)
{
    nn_crunet_cfg_t c = small_cfg(0, NN_CRUNET_HEAD_SC, 30);
    nn_crunet_t *a = NULL, *b = NULL;
    T_ASSERT_OK(nn_crunet_new(&c, &a));
    T_ASSERT_OK(nn_crunet_new(&c, &b));
    nn_crunet_init(a, 1);
    nn_crunet_init(b, 2);
    core_rng_init(&g_rng, 5, 0);
    float *img = rnd(4 * 3 * 8 * 8);
    uint32_t off[5] = {0, 2, 3, 5, 6}, ids[6] = {1, 7, 4, 0, 29, 12};
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    sc_train_step(a, img, off, ids, &opt);
    sc_train_step(a, img, off, ids, &opt);
    size_t n;
    nn_ckpt_entry_t *ea = entries_of(a, &n), *eb = entries_of(b, &n);
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/cru_resume.safetensors", t_tmpdir());
    T_ASSERT_OK(nn_ckpt_save(path, ea, n, NULL, 0, err, sizeof err));
    T_ASSERT_OK(nn_ckpt_load(path, eb, n, 0, NULL, err, sizeof err));
    nn_crunet_set_opt_step(b, nn_crunet_opt_step(a));
    T_ASSERT_EQ(nn_crunet_opt_step(b), 2);
    sc_train_step(a, img, off, ids, &opt);
    sc_train_step(b, img, off, ids, &opt);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t ta, tb;
        T_ASSERT_OK(nn_crunet_tensor(a, i, &ta));
        T_ASSERT_OK(nn_crunet_tensor(b, i, &tb));
        size_t bytes = ta.numel * (ta.dtype == NN_DTYPE_F64 ? 8 : 4);
        if (memcmp(ta.data, tb.data, bytes) != 0) {
            T_FAIL("tensor %s differs after the resumed step", ta.name);
        }
    }
    core_free(ea);
    core_free(eb);
    core_free(img);
    nn_crunet_free(a);
    nn_crunet_free(b);
}

/* The pool splits BN channels, conv output channels/groups, planes and GEMM slabs across
 * threads. Everything but the GEMMs computes each output in one thread in the same order; a GEMM
 * slab may take another OpenBLAS kernel path (another summation order), so results agree to float
 * rounding, not bitwise. */
T_CASE(threads_equivalence)
{
    nn_crunet_cfg_t c = small_cfg(0, NN_CRUNET_HEAD_FC, 5);
    c.image_size = 32;
    nn_crunet_t *m[2] = {NULL, NULL};
    core_rng_init(&g_rng, 8, 0);
    float *img = rnd(4 * 3 * 32 * 32);
    int32_t labels[4] = {1, 2, 3, 4};
    for (int k = 0; k < 2; k++) {
        T_ASSERT_OK(nn_crunet_new(&c, &m[k]));
        nn_crunet_init(m[k], 3);
        nn_blas_set_threads(k + 1);
        float loss;
        nn_crunet_zero_grad(m[k]);
        nn_crunet_forward(m[k], img, 1);
        T_ASSERT_OK(nn_crunet_loss_labels(m[k], labels, &loss));
        nn_crunet_backward(m[k]);
    }
    nn_blas_set_threads(1);
    double worst = max_rel(nn_crunet_logits(m[1]), nn_crunet_logits(m[0]), 20);
    T_ASSERT(worst < 5e-4); /* rounding differences grow through the BN layers */
    size_t n = nn_crunet_num_tensors(m[0]);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t a, b;
        T_ASSERT_OK(nn_crunet_tensor(m[0], i, &a));
        T_ASSERT_OK(nn_crunet_tensor(m[1], i, &b));
        double e = 0.0;
        if (!a.is_buffer) {
            e = max_rel(b.grad, a.grad, a.numel);
        } else if (a.dtype == NN_DTYPE_F32) {
            e = max_rel(b.data, a.data, a.numel);
        }
        worst = e > worst ? e : worst;
    }
    printf("1 vs 2 threads: worst relative difference %.2e\n", worst);
    T_ASSERT(worst < 5e-4); /* rounding differences grow through the BN layers */
    core_free(img);
    nn_crunet_free(m[0]);
    nn_crunet_free(m[1]);
}

T_MAIN()
