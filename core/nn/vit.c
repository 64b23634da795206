/* The SuperClass ViT: parameter table, arenas, init, forward, backward, loss and AdamW step
 * (contract in nn/vit.h; math in spec/superclass.md 3.2-3.4 and README.md).
 *
 * Memory, llm.c style: one arena each for parameters, gradients, AdamW m and v (same layout,
 * so the optimiser, zero_grad and clipping are flat loops), one for the activations the backward
 * needs (per layer), and one for activation gradients (a handful of buffers reused by every
 * layer, since the backward visits the layers one at a time). */
#include "nn/vit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/rng.h"
#include "internal.h"
#include "nn/gemm.h"
#include "nn/kernels.h"
#include "nn/loss.h"

#define LN_EPS 1e-5f

enum { I_ZERO, I_ONE, I_NORMAL, I_UNIFORM, I_XAVIER };

/* Parameter tables: X(field, name, ndim, s0, s1, s2, s3, init, fan_in, decay).
 * Shape expressions use D (width), N (tokens), p (patch), F (mlp hidden), V (vocab).
 * init: I_NORMAL = N(0,1) * D^-0.5; I_UNIFORM = U(+-1/sqrt(fan_in)) (PyTorch Linear/Conv
 * default, kaiming_uniform a=sqrt 5, and its bias); I_XAVIER = U(+-sqrt(6/(fan_in+fan_out))).
 * decay follows spec 4.2: 1-D tensors, LayerNorms and biases are not decayed; the class token
 * is 1-D; the 2-D positional embedding is decayed. */
#define VIT_PRE_PARAMS(X)                                                                          \
    X(class_embedding, "visual.class_embedding", 1, D, 0, 0, 0, I_NORMAL, 0, 0)                     \
    X(positional_embedding, "visual.positional_embedding", 2, N, D, 0, 0, I_NORMAL, 0, 1)          \
    X(conv1_w, "visual.conv1.weight", 4, D, 3, p, p, I_UNIFORM, 3 * p * p, 1)                      \
    X(ln_pre_w, "visual.ln_pre.weight", 1, D, 0, 0, 0, I_ONE, 0, 0)                                \
    X(ln_pre_b, "visual.ln_pre.bias", 1, D, 0, 0, 0, I_ZERO, 0, 0)

#define VIT_BLOCK_PARAMS(X)                                                                        \
    X(ln1_w, "ln_1.weight", 1, D, 0, 0, 0, I_ONE, 0, 0)                                            \
    X(ln1_b, "ln_1.bias", 1, D, 0, 0, 0, I_ZERO, 0, 0)                                             \
    X(in_w, "attn.in_proj_weight", 2, 3 * D, D, 0, 0, I_XAVIER, D, 1)                              \
    X(in_b, "attn.in_proj_bias", 1, 3 * D, 0, 0, 0, I_ZERO, 0, 0)                                  \
    X(out_w, "attn.out_proj.weight", 2, D, D, 0, 0, I_UNIFORM, D, 1)                               \
    X(out_b, "attn.out_proj.bias", 1, D, 0, 0, 0, I_ZERO, 0, 0)                                    \
    X(ln2_w, "ln_2.weight", 1, D, 0, 0, 0, I_ONE, 0, 0)                                            \
    X(ln2_b, "ln_2.bias", 1, D, 0, 0, 0, I_ZERO, 0, 0)                                             \
    X(fc_w, "mlp.c_fc.weight", 2, F, D, 0, 0, I_UNIFORM, D, 1)                                     \
    X(fc_b, "mlp.c_fc.bias", 1, F, 0, 0, 0, I_UNIFORM, D, 0)                                       \
    X(proj_w, "mlp.c_proj.weight", 2, D, F, 0, 0, I_UNIFORM, F, 1)                                 \
    X(proj_b, "mlp.c_proj.bias", 1, D, 0, 0, 0, I_UNIFORM, F, 0)

#define VIT_POST_PARAMS(X)                                                                         \
    X(ln_post_w, "visual.ln_post.weight", 1, D, 0, 0, 0, I_ONE, 0, 0)                              \
    X(ln_post_b, "visual.ln_post.bias", 1, D, 0, 0, 0, I_ZERO, 0, 0)                               \
    X(ln_mlp_w, "text_decoder.ln_mlp.weight", 1, D, 0, 0, 0, I_ONE, 0, 0)                          \
    X(ln_mlp_b, "text_decoder.ln_mlp.bias", 1, D, 0, 0, 0, I_ZERO, 0, 0)                           \
    X(head_w, "text_decoder.text_projection.weight", 2, V, D, 0, 0, I_NORMAL, 0, 1)                \
    X(head_b, "text_decoder.text_projection.bias", 1, V, 0, 0, 0, I_ZERO, 0, 0)

#define FIELD(f, ...) float *f;
typedef struct {
    VIT_PRE_PARAMS(FIELD)
    VIT_POST_PARAMS(FIELD)
} vit_globals_t;
typedef struct {
    VIT_BLOCK_PARAMS(FIELD)
} vit_block_t;
#undef FIELD

#define COUNT(...) +1
enum { N_PRE = 0 VIT_PRE_PARAMS(COUNT), N_BLOCK = 0 VIT_BLOCK_PARAMS(COUNT),
       N_POST = 0 VIT_POST_PARAMS(COUNT) };
#undef COUNT

/* Per-layer activations saved for the backward. */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* [B,N,D], [B*N] x2 */
    float *qkv;                       /* [B,N,3D] */
    float *att;                       /* [B,H,N,N] softmax probabilities */
    float *atty;                      /* [B,N,D] attention output (out_proj input) */
    float *res_mid;                   /* [B,N,D] residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* [B,N,D], [B*N] x2 */
    float *fch;                       /* [B,N,F] c_fc output (GELU input) */
    float *fcg;                       /* [B,N,F] GELU output */
    float *res_out;                   /* [B,N,D] block output */
} vit_layer_acts_t;

typedef struct {
    int alive;
    nn_tensor_t t;
    size_t off; /* float offset in the parameter arenas (params only) */
} vit_tensor_slot_t;

struct nn_vit_s {
    nn_vit_cfg_t cfg;
    int G, N, P; /* grid, tokens, patch dim 3 p^2 */
    /* parameter arenas */
    size_t nparams;
    float *params, *grads, *m, *v;
    vit_globals_t gp, gg;     /* views: params, grads */
    vit_block_t *bp, *bg;     /* [depth] */
    size_t ntensors;
    vit_tensor_slot_t *tensors;
    char *names;
    double *cap_fq;       /* [V] */
    double num_samples;   /* [1] */
    int64_t opt_step;
    /* activations */
    float *acts;
    float *patches, *emb, *x0, *pre_mean, *pre_rstd, *res0;
    vit_layer_acts_t *layers;
    float *lnp, *lnp_mean, *lnp_rstd, *pooled, *hln, *hln_mean, *hln_rstd, *logits;
    /* activation gradients (reused across layers) */
    float *dacts;
    float *dres, *dtmp, *dqkv, *datty, *dfcg, *datt_scratch, *dpooled, *dhln, *dlogits;
    /* loss scratch */
    uint32_t *counts;
    float *tw;
    size_t tw_cap;
    int grads_zeroed;
    /* backward progress hook (nn_vit_set_backward_hook) and the tensor indices it reports */
    nn_vit_backward_hook_fn hook;
    void *hook_ctx;
    size_t t_block0, t_post; /* first tensor of block 0, first tensor after the blocks */
};

/* ---- config ---------------------------------------------------------------------------------- */

int nn_vit_cfg_check(const nn_vit_cfg_t *c)
{
    if (!c || c->image_size <= 0 || c->patch <= 0 || c->width <= 0 || c->depth < 0 ||
        c->heads <= 0 || c->mlp_hidden <= 0 || c->vocab <= 0 || c->batch <= 0) {
        return CORE_ECONFIG;
    }
    if (c->image_size % c->patch != 0 || c->width % c->heads != 0) {
        return CORE_ECONFIG;
    }
    /* keep every index in int range (kernels take int dims) */
    double big = (double)c->batch * (double)c->heads * pow((double)(c->image_size / c->patch), 4.0);
    if (big > 2e9 || (double)c->batch * (double)c->vocab > 2e9) {
        return CORE_ECONFIG;
    }
    return 0;
}

int nn_vit_preset(const char *name, int image_size, int vocab, int batch, nn_vit_cfg_t *out)
{
    static const struct {
        const char *size;
        int width, depth, heads;
    } sizes[] = {{"Ti", 192, 12, 3}, {"S", 384, 12, 6}, {"B", 768, 12, 12}, {"L", 1024, 24, 16}};
    if (!name || !out || strncmp(name, "ViT-", 4) != 0) {
        return CORE_ENOT_FOUND;
    }
    const char *slash = strchr(name + 4, '/');
    if (!slash) {
        return CORE_ENOT_FOUND;
    }
    int patch = atoi(slash + 1);
    if (patch != 16 && patch != 14 && patch != 8) {
        return CORE_ENOT_FOUND;
    }
    char tmp[8];
    char num[8];
    size_t len = (size_t)(slash - (name + 4));
    snprintf(num, sizeof num, "%d", patch);
    if (len >= sizeof tmp || strcmp(slash + 1, num) != 0) {
        return CORE_ENOT_FOUND;
    }
    memcpy(tmp, name + 4, len);
    tmp[len] = '\0';
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (strcmp(tmp, sizes[i].size) == 0) {
            nn_vit_cfg_t c = {.image_size = image_size, .patch = patch, .width = sizes[i].width,
                              .depth = sizes[i].depth, .heads = sizes[i].heads,
                              .mlp_hidden = 4 * sizes[i].width, .vocab = vocab, .batch = batch};
            int rc = nn_vit_cfg_check(&c);
            if (rc == 0) {
                *out = c;
            }
            return rc;
        }
    }
    return CORE_ENOT_FOUND;
}

const nn_vit_cfg_t *nn_vit_cfg(const nn_vit_t *m)
{
    return &m->cfg;
}

/* ---- construction -------------------------------------------------------------------------- */

static size_t take(float **base, size_t *used, size_t n, float **out)
{
    /* 16-float (64-byte) alignment for every view */
    size_t start = (*used + 15) & ~(size_t)15;
    *used = start + n;
    if (base && *base) {
        *out = *base + start;
    }
    return start;
}

/* Assigns the activation views (when *base is set) and returns the float count. */
static size_t layout_acts(nn_vit_t *m, float **base)
{
    const nn_vit_cfg_t *c = &m->cfg;
    size_t B = (size_t)c->batch, N = (size_t)m->N, D = (size_t)c->width, F = (size_t)c->mlp_hidden;
    size_t H = (size_t)c->heads, G2 = (size_t)m->G * (size_t)m->G, V = (size_t)c->vocab;
    size_t used = 0;
    float *dummy = NULL;
#define TAKE(ptr, n) take(base, &used, (n), (base && *base) ? &(ptr) : &dummy)
    TAKE(m->patches, B * G2 * (size_t)m->P);
    TAKE(m->emb, B * G2 * D);
    TAKE(m->x0, B * N * D);
    TAKE(m->pre_mean, B * N);
    TAKE(m->pre_rstd, B * N);
    TAKE(m->res0, B * N * D);
    for (int l = 0; l < c->depth; l++) {
        vit_layer_acts_t *a = &m->layers[l];
        TAKE(a->ln1, B * N * D);
        TAKE(a->ln1_mean, B * N);
        TAKE(a->ln1_rstd, B * N);
        TAKE(a->qkv, B * N * 3 * D);
        TAKE(a->att, B * H * N * N);
        TAKE(a->atty, B * N * D);
        TAKE(a->res_mid, B * N * D);
        TAKE(a->ln2, B * N * D);
        TAKE(a->ln2_mean, B * N);
        TAKE(a->ln2_rstd, B * N);
        TAKE(a->fch, B * N * F);
        TAKE(a->fcg, B * N * F);
        TAKE(a->res_out, B * N * D);
    }
    TAKE(m->lnp, B * N * D);
    TAKE(m->lnp_mean, B * N);
    TAKE(m->lnp_rstd, B * N);
    TAKE(m->pooled, B * D);
    TAKE(m->hln, B * D);
    TAKE(m->hln_mean, B);
    TAKE(m->hln_rstd, B);
    TAKE(m->logits, B * V);
    return used;
}

static size_t layout_dacts(nn_vit_t *m, float **base)
{
    const nn_vit_cfg_t *c = &m->cfg;
    size_t B = (size_t)c->batch, N = (size_t)m->N, D = (size_t)c->width, F = (size_t)c->mlp_hidden;
    size_t V = (size_t)c->vocab;
    size_t used = 0;
    float *dummy = NULL;
    TAKE(m->dres, B * N * D);
    TAKE(m->dtmp, B * N * D);
    TAKE(m->dqkv, B * N * 3 * D);
    TAKE(m->datty, B * N * D);
    TAKE(m->dfcg, B * N * F);
    TAKE(m->datt_scratch, (size_t)NN_MAX_THREADS * N * N);
    TAKE(m->dpooled, B * D);
    TAKE(m->dhln, B * D);
    TAKE(m->dlogits, B * V);
#undef TAKE
    return used;
}

static void set_tensor(nn_vit_t *m, size_t *ti, size_t *off, char **names, const char *prefix,
                       const char *name, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3,
                       int decay, float **pview, float **gview)
{
    vit_tensor_slot_t *s = &m->tensors[(*ti)++];
    int64_t sh[4] = {s0, s1, s2, s3};
    size_t numel = 1;
    for (int k = 0; k < ndim; k++) {
        s->t.shape[k] = sh[k];
        numel *= (size_t)sh[k];
    }
    int len = sprintf(*names, "%s%s", prefix, name);
    s->t.name = *names;
    *names += len + 1;
    s->t.dtype = NN_DTYPE_F32;
    s->t.ndim = ndim;
    s->t.numel = numel;
    s->t.decay = decay;
    s->t.is_buffer = 0;
    s->alive = 1;
    s->off = (*off + 15) & ~(size_t)15;
    *off = s->off + numel;
    if (m->params) {
        s->t.data = m->params + s->off;
        s->t.grad = m->grads + s->off;
        s->t.m = m->m + s->off;
        s->t.v = m->v + s->off;
        *pview = m->params + s->off;
        *gview = m->grads + s->off;
    }
}

/* Walks the parameter table: counts (m->params NULL) or assigns views. Returns the arena size. */
static size_t layout_params(nn_vit_t *m, char *names)
{
    const nn_vit_cfg_t *c = &m->cfg;
    int64_t D = c->width, N = m->N, p = c->patch, F = c->mlp_hidden, V = c->vocab;
    size_t ti = 0, off = 0;
    char prefix[64];
    float *dp = NULL, *dg = NULL;
#define SET(field, name, ndim, s0, s1, s2, s3, init, fan, decay)                                   \
    set_tensor(m, &ti, &off, &names, prefix, name, ndim, s0, s1, s2, s3, decay,                    \
               P_ ? &P_->field : &dp, G_ ? &G_->field : &dg);
    prefix[0] = '\0';
    {
        vit_globals_t *P_ = &m->gp, *G_ = &m->gg;
        VIT_PRE_PARAMS(SET)
    }
    m->t_block0 = ti;
    for (int l = 0; l < c->depth; l++) {
        snprintf(prefix, sizeof prefix, "visual.transformer.resblocks.%d.", l);
        vit_block_t *P_ = &m->bp[l], *G_ = &m->bg[l];
        VIT_BLOCK_PARAMS(SET)
    }
    prefix[0] = '\0';
    m->t_post = ti;
    {
        vit_globals_t *P_ = &m->gp, *G_ = &m->gg;
        VIT_POST_PARAMS(SET)
    }
#undef SET
    (void)D;
    (void)N;
    (void)p;
    (void)F;
    (void)V;
    /* buffers */
    vit_tensor_slot_t *s = &m->tensors[ti++];
    s->alive = 1;
    s->t = (nn_tensor_t){.name = "cap_fq", .dtype = NN_DTYPE_F64, .ndim = 2, .shape = {1, V},
                         .numel = (size_t)V, .data = m->cap_fq, .is_buffer = 1};
    s = &m->tensors[ti++];
    s->alive = 1;
    s->t = (nn_tensor_t){.name = "num_samples", .dtype = NN_DTYPE_F64, .ndim = 2, .shape = {1, 1},
                         .numel = 1, .data = &m->num_samples, .is_buffer = 1};
    return off;
}

void nn_vit_free(nn_vit_t *m)
{
    if (!m) {
        return;
    }
    core_free_aligned(m->params);
    core_free_aligned(m->grads);
    core_free_aligned(m->m);
    core_free_aligned(m->v);
    core_free_aligned(m->acts);
    core_free_aligned(m->dacts);
    core_free(m->bp);
    core_free(m->bg);
    core_free(m->layers);
    core_free(m->tensors);
    core_free(m->names);
    core_free(m->cap_fq);
    core_free(m->counts);
    core_free(m->tw);
    core_free(m);
}

static float *arena(size_t n)
{
    size_t bytes;
    if (core_size_mul(n ? n : 1, sizeof(float), &bytes) < 0) {
        return NULL;
    }
    float *p = core_malloc_aligned(64, bytes);
    if (p) {
        memset(p, 0, bytes);
    }
    return p;
}

int nn_vit_new(const nn_vit_cfg_t *cfg, nn_vit_t **out)
{
    int rc = nn_vit_cfg_check(cfg);
    if (rc < 0) {
        return rc;
    }
    nn_vit_t *m = core_calloc(1, sizeof *m);
    if (!m) {
        return CORE_ERR(ENOMEM);
    }
    m->cfg = *cfg;
    m->G = cfg->image_size / cfg->patch;
    m->N = m->G * m->G + 1;
    m->P = 3 * cfg->patch * cfg->patch;
    size_t L = (size_t)(cfg->depth > 0 ? cfg->depth : 1);
    m->ntensors = (size_t)(N_PRE + N_POST) + (size_t)cfg->depth * N_BLOCK + 2;
    m->bp = core_calloc(L, sizeof *m->bp);
    m->bg = core_calloc(L, sizeof *m->bg);
    m->layers = core_calloc(L, sizeof *m->layers);
    m->tensors = core_calloc(m->ntensors, sizeof *m->tensors);
    m->names = core_malloc(m->ntensors * 64);
    m->cap_fq = core_calloc((size_t)cfg->vocab, sizeof(double));
    m->counts = core_calloc((size_t)cfg->vocab, sizeof(uint32_t));
    /* 128 label ids per sample (a 77-token row has at most 77 distinct ids) */
    m->tw_cap = (size_t)cfg->batch * 128;
    m->tw = core_malloc(m->tw_cap * sizeof(float));
    if (!m->bp || !m->bg || !m->layers || !m->tensors || !m->names || !m->cap_fq ||
        !m->counts || !m->tw) {
        nn_vit_free(m);
        return CORE_ERR(ENOMEM);
    }
    m->nparams = layout_params(m, m->names);
    m->params = arena(m->nparams);
    m->grads = arena(m->nparams);
    m->m = arena(m->nparams);
    m->v = arena(m->nparams);
    float *none = NULL;
    size_t na = layout_acts(m, &none), nd = layout_dacts(m, &none);
    m->acts = arena(na);
    m->dacts = arena(nd);
    if (!m->params || !m->grads || !m->m || !m->v || !m->acts || !m->dacts) {
        nn_vit_free(m);
        return CORE_ERR(ENOMEM);
    }
    layout_params(m, m->names);
    layout_acts(m, &m->acts);
    layout_dacts(m, &m->dacts);
    *out = m;
    return 0;
}

/* ---- tensors --------------------------------------------------------------------------------- */

size_t nn_vit_num_tensors(const nn_vit_t *m)
{
    return m->ntensors;
}

int nn_vit_tensor(const nn_vit_t *m, size_t i, nn_tensor_t *out)
{
    if (i >= m->ntensors) {
        return CORE_ENOT_FOUND;
    }
    *out = m->tensors[i].t;
    return 0;
}

int nn_vit_find(const nn_vit_t *m, const char *name, nn_tensor_t *out)
{
    for (size_t i = 0; i < m->ntensors; i++) {
        if (strcmp(m->tensors[i].t.name, name) == 0) {
            *out = m->tensors[i].t;
            return 0;
        }
    }
    return CORE_ENOT_FOUND;
}

size_t nn_vit_num_params(const nn_vit_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->ntensors; i++) {
        if (!m->tensors[i].t.is_buffer) {
            n += m->tensors[i].t.numel;
        }
    }
    return n;
}

int64_t nn_vit_opt_step(const nn_vit_t *m)
{
    return m->opt_step;
}

void nn_vit_set_opt_step(nn_vit_t *m, int64_t step)
{
    m->opt_step = step;
}

/* ---- init ------------------------------------------------------------------------------------ */

static void init_tensor(float *p, size_t n, int kind, double fan_in, double fan_out, double D,
                        core_rng_t *r)
{
    double bound = 0.0;
    switch (kind) {
    case I_ZERO:
        memset(p, 0, n * sizeof(float));
        return;
    case I_ONE:
        for (size_t i = 0; i < n; i++) {
            p[i] = 1.0f;
        }
        return;
    case I_NORMAL:
        for (size_t i = 0; i < n; i++) {
            p[i] = (float)(core_rng_normal(r) / sqrt(D));
        }
        return;
    case I_UNIFORM:
        bound = 1.0 / sqrt(fan_in);
        break;
    case I_XAVIER:
        bound = sqrt(6.0 / (fan_in + fan_out));
        break;
    default:
        NN_ASSERT(0);
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (float)((2.0 * core_rng_uniform_f64(r) - 1.0) * bound);
    }
}

void nn_vit_init(nn_vit_t *m, uint64_t seed)
{
    const nn_vit_cfg_t *c = &m->cfg;
    int D = c->width, p = c->patch, F = c->mlp_hidden;
    size_t ti = 0;
    core_rng_t r;
#define INIT(field, name, ndim, s0, s1, s2, s3, init, fan, decay)                                  \
    do {                                                                                           \
        nn_tensor_t *t = &m->tensors[ti].t;                                                        \
        core_rng_init(&r, seed, (uint64_t)ti);                                                     \
        init_tensor((float *)t->data, t->numel, init, (double)(fan), (double)t->shape[0], D, &r);  \
        ti++;                                                                                      \
    } while (0);
    VIT_PRE_PARAMS(INIT)
    for (int l = 0; l < c->depth; l++) {
        VIT_BLOCK_PARAMS(INIT)
    }
    VIT_POST_PARAMS(INIT)
#undef INIT
    (void)p;
    (void)F;
    memset(m->grads, 0, m->nparams * sizeof(float));
    memset(m->m, 0, m->nparams * sizeof(float));
    memset(m->v, 0, m->nparams * sizeof(float));
    memset(m->cap_fq, 0, (size_t)c->vocab * sizeof(double));
    m->num_samples = 0.0;
    m->opt_step = 0;
}

/* ---- forward ------------------------------------------------------------------------------- */

void nn_vit_images_from_u8(float *dst, const uint8_t *src, int B, int H, int W)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    size_t HW = (size_t)H * (size_t)W;
    for (int b = 0; b < B; b++) {
        const uint8_t *s = src + (size_t)b * HW * 3;
        for (int ch = 0; ch < 3; ch++) {
            float *d = dst + ((size_t)b * 3 + (size_t)ch) * HW;
            for (size_t i = 0; i < HW; i++) {
                /* ToTensor divides by 255, Normalize subtracts and divides, in that order */
                d[i] = ((float)s[i * 3 + (size_t)ch] / 255.0f - mean[ch]) / std[ch];
            }
        }
    }
}

void nn_vit_forward(nn_vit_t *m, const float *images)
{
    const nn_vit_cfg_t *c = &m->cfg;
    int B = c->batch, N = m->N, D = c->width, F = c->mlp_hidden, H = c->heads, V = c->vocab;
    int G2 = m->G * m->G, BN = B * N;
        NN_ASSERT(images);

    nn_patch_embed_forward(m->emb, m->patches, images, m->gp.conv1_w, B, 3, c->image_size, c->patch,
                           D);
    /* tokens: [class ; patches] + positional embedding */
    for (int b = 0; b < B; b++) {
        float *xb = m->x0 + (size_t)b * (size_t)N * (size_t)D;
        nn_add_forward(xb, m->gp.class_embedding, m->gp.positional_embedding, (size_t)D);
        nn_add_forward(xb + D, m->emb + (size_t)b * (size_t)G2 * (size_t)D,
                       m->gp.positional_embedding + D, (size_t)G2 * (size_t)D);
    }
    nn_layernorm_forward(m->res0, m->pre_mean, m->pre_rstd, m->x0, m->gp.ln_pre_w, m->gp.ln_pre_b,
                         BN, D, LN_EPS);
    const float *x = m->res0;
    for (int l = 0; l < c->depth; l++) {
        vit_layer_acts_t *a = &m->layers[l];
        const vit_block_t *w = &m->bp[l];
        nn_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, BN, D,
                             LN_EPS);
        nn_linear_forward(a->qkv, a->ln1, w->in_w, w->in_b, BN, D, 3 * D);
        nn_attention_forward(a->atty, a->att, a->qkv, B, N, D, H);
        nn__linear_forward_residual(a->res_mid, x, a->atty, w->out_w, w->out_b, BN, D, D);
        nn_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res_mid, w->ln2_w, w->ln2_b, BN,
                             D, LN_EPS);
        nn_linear_forward(a->fch, a->ln2, w->fc_w, w->fc_b, BN, D, F);
        nn_gelu_forward(a->fcg, a->fch, (size_t)BN * (size_t)F);
        nn__linear_forward_residual(a->res_out, a->res_mid, a->fcg, w->proj_w, w->proj_b, BN, F, D);
        x = a->res_out;
    }
    nn_layernorm_forward(m->lnp, m->lnp_mean, m->lnp_rstd, x, m->gp.ln_post_w, m->gp.ln_post_b,
                         BN, D, LN_EPS);
    nn_mean_tokens_forward(m->pooled, m->lnp, B, N, D, 1);
    nn_layernorm_forward(m->hln, m->hln_mean, m->hln_rstd, m->pooled, m->gp.ln_mlp_w,
                         m->gp.ln_mlp_b, B, D, LN_EPS);
    nn_linear_forward(m->logits, m->hln, m->gp.head_w, m->gp.head_b, B, D, V);
}

const float *nn_vit_features(const nn_vit_t *m)
{
    return m->pooled;
}

const float *nn_vit_logits(const nn_vit_t *m)
{
    return m->logits;
}

float *nn_vit_dlogits(nn_vit_t *m)
{
    return m->dlogits;
}

/* ---- loss --------------------------------------------------------------------------------- */

int nn_vit_loss(nn_vit_t *m, const uint32_t *off, const uint32_t *ids, int use_idf,
                float *loss_out)
{
    const nn_vit_cfg_t *c = &m->cfg;
    int rc = nn_labels_check(off, ids, c->batch, c->vocab);
    if (rc < 0) {
        return rc;
    }
    if (off[c->batch] > m->tw_cap) {
        /* sized at build for 128 ids per sample (a 77-token row has at most 77) */
        return CORE_ECORRUPT;
    }
    nn_idf_t idf = {.cap_fq = m->cap_fq, .num_samples = &m->num_samples, .V = c->vocab};
    float loss = 0.0f;
    nn_sc_loss(&loss, m->dlogits, m->logits, off, ids, c->batch, c->vocab, &idf, use_idf,
               m->counts, m->tw);
    if (loss_out) {
        *loss_out = loss;
    }
    return 0;
}

/* ---- backward ------------------------------------------------------------------------------ */

void nn_vit_zero_grad(nn_vit_t *m)
{
    memset(m->grads, 0, m->nparams * sizeof(float));
    m->grads_zeroed = 1;
}

static void zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
}

void nn_vit_backward(nn_vit_t *m)
{
    const nn_vit_cfg_t *c = &m->cfg;
    int B = c->batch, N = m->N, D = c->width, F = c->mlp_hidden, H = c->heads, V = c->vocab;
    int G2 = m->G * m->G, BN = B * N;
    size_t BND = (size_t)BN * (size_t)D;
    /* gradients accumulate, so a backward without zero_grad would silently add two steps */
    NN_ASSERT(m->grads_zeroed);
    m->grads_zeroed = 0;

    /* head: logits = hln W^T + b; hln = LN(pooled); pooled = mean_{n>=1} lnp */
    nn_gemm(NN_NOTRANS, NN_NOTRANS, B, D, V, 1.0f, m->dlogits, V, m->gp.head_w, D, 0.0f, m->dhln,
            D);
    nn_linear_backward(NULL, m->gg.head_w, m->gg.head_b, m->dlogits, m->hln, m->gp.head_w, B, D,
                       V);
    zero(m->dpooled, (size_t)B * (size_t)D);
    nn_layernorm_backward(m->dpooled, m->gg.ln_mlp_w, m->gg.ln_mlp_b, m->dhln, m->pooled,
                          m->hln_mean, m->hln_rstd, m->gp.ln_mlp_w, B, D);
    zero(m->dtmp, BND);
    nn_mean_tokens_backward(m->dtmp, m->dpooled, B, N, D, 1);
    const float *xL = c->depth > 0 ? m->layers[c->depth - 1].res_out : m->res0;
    zero(m->dres, BND);
    nn_layernorm_backward(m->dres, m->gg.ln_post_w, m->gg.ln_post_b, m->dtmp, xL, m->lnp_mean,
                          m->lnp_rstd, m->gp.ln_post_w, BN, D);
    if (m->hook) {
        m->hook(m->hook_ctx, m->t_post);
    }

    /* blocks in reverse; dres holds d(block output) on entry, d(block input) on exit */
    for (int l = c->depth - 1; l >= 0; l--) {
        vit_layer_acts_t *a = &m->layers[l];
        const vit_block_t *w = &m->bp[l];
        vit_block_t *g = &m->bg[l];
        const float *xin = l > 0 ? m->layers[l - 1].res_out : m->res0;
        /* MLP branch: res_out = res_mid + c_proj(gelu(c_fc(ln_2(res_mid)))). Fresh buffers are
         * written by beta = 0 GEMMs (no memset); weight gradients accumulate. */
        nn_gemm(NN_NOTRANS, NN_NOTRANS, BN, F, D, 1.0f, m->dres, D, w->proj_w, F, 0.0f, m->dfcg, F);
        nn_linear_backward(NULL, g->proj_w, g->proj_b, m->dres, a->fcg, w->proj_w, BN, F, D);
        nn__gelu_backward_set(m->dfcg, m->dfcg, a->fch, (size_t)BN * (size_t)F);
        nn_gemm(NN_NOTRANS, NN_NOTRANS, BN, D, F, 1.0f, m->dfcg, F, w->fc_w, D, 0.0f, m->dtmp, D);
        nn_linear_backward(NULL, g->fc_w, g->fc_b, m->dfcg, a->ln2, w->fc_w, BN, D, F);
        nn_layernorm_backward(m->dres, g->ln2_w, g->ln2_b, m->dtmp, a->res_mid, a->ln2_mean,
                              a->ln2_rstd, w->ln2_w, BN, D);
        /* attention branch: res_mid = x + out_proj(attn(in_proj(ln_1(x)))) */
        nn_gemm(NN_NOTRANS, NN_NOTRANS, BN, D, D, 1.0f, m->dres, D, w->out_w, D, 0.0f, m->datty, D);
        nn_linear_backward(NULL, g->out_w, g->out_b, m->dres, a->atty, w->out_w, BN, D, D);
        nn__attention_backward_set(m->dqkv, m->datt_scratch, m->datty, a->qkv, a->att, B, N, D, H);
        nn_gemm(NN_NOTRANS, NN_NOTRANS, BN, D, 3 * D, 1.0f, m->dqkv, 3 * D, w->in_w, D, 0.0f,
                m->dtmp, D);
        nn_linear_backward(NULL, g->in_w, g->in_b, m->dqkv, a->ln1, w->in_w, BN, D, 3 * D);
        nn_layernorm_backward(m->dres, g->ln1_w, g->ln1_b, m->dtmp, xin, a->ln1_mean, a->ln1_rstd,
                              w->ln1_w, BN, D);
        if (m->hook) {
            m->hook(m->hook_ctx, m->t_block0 + (m->t_post - m->t_block0) / (size_t)c->depth *
                                                   (size_t)l);
        }
    }

    /* ln_pre, then the token assembly: x0[b,0] = cls + pos[0], x0[b,1+k] = emb[b,k] + pos[1+k] */
    zero(m->dtmp, BND);
    nn_layernorm_backward(m->dtmp, m->gg.ln_pre_w, m->gg.ln_pre_b, m->dres, m->x0, m->pre_mean,
                          m->pre_rstd, m->gp.ln_pre_w, BN, D);
    for (int b = 0; b < B; b++) {
        const float *gb = m->dtmp + (size_t)b * (size_t)N * (size_t)D;
        nn_add_backward(m->gg.class_embedding, m->gg.positional_embedding, gb, (size_t)D);
        nn_add_backward(NULL, m->gg.positional_embedding + D, gb + D, (size_t)G2 * (size_t)D);
        /* gather the patch-token gradients contiguously for the patch-embed GEMM */
        memcpy(m->dres + (size_t)b * (size_t)G2 * (size_t)D, gb + D,
               (size_t)G2 * (size_t)D * sizeof(float));
    }
    nn_patch_embed_backward(NULL, m->gg.conv1_w, m->dres, m->patches, m->gp.conv1_w, B, 3,
                            c->image_size, c->patch, D);
    if (m->hook) {
        m->hook(m->hook_ctx, 0);
    }
}

void nn_vit_set_backward_hook(nn_vit_t *m, nn_vit_backward_hook_fn fn, void *ctx)
{
    m->hook = fn;
    m->hook_ctx = ctx;
}

/* ---- optimiser ----------------------------------------------------------------------------- */

void nn_vit_adamw_step(nn_vit_t *m, const nn_adamw_cfg_t *cfg, float lr, double *grad_norm_out)
{
    float scale = 1.0f;
    double norm = 0.0;
    if (grad_norm_out || cfg->clip_norm > 0.0f) {
        norm = sqrt(nn_sumsq(m->grads, m->nparams)); /* arena padding is zero */
        if (cfg->clip_norm > 0.0f && norm > (double)cfg->clip_norm) {
            /* torch.nn.utils.clip_grad_norm_: g *= max_norm / (norm + 1e-6) */
            scale = (float)((double)cfg->clip_norm / (norm + 1e-6));
        }
    }
    if (grad_norm_out) {
        *grad_norm_out = norm;
    }
    m->opt_step++;
    for (size_t i = 0; i < m->ntensors; i++) {
        const vit_tensor_slot_t *s = &m->tensors[i];
        if (s->t.is_buffer) {
            continue;
        }
        nn_adamw_update(s->t.data, s->t.m, s->t.v, s->t.grad, s->t.numel, lr,
                        s->t.decay ? cfg->weight_decay : 0.0f, cfg->beta1, cfg->beta2, cfg->eps,
                        m->opt_step, scale);
    }
}

int nn_vit_train_step(nn_vit_t *m, const float *images, const uint32_t *off, const uint32_t *ids,
                      int use_idf, const nn_adamw_cfg_t *opt, float lr, float *loss_out)
{
    int rc = nn_labels_check(off, ids, m->cfg.batch, m->cfg.vocab);
    if (rc < 0) {
        return rc;
    }
    nn_vit_zero_grad(m);
    nn_vit_forward(m, images);
    rc = nn_vit_loss(m, off, ids, use_idf, loss_out);
    if (rc < 0) {
        return rc;
    }
    nn_vit_backward(m);
    nn_vit_adamw_step(m, opt, lr, NULL);
    return 0;
}

double nn_vit_train_gemm_flops(const nn_vit_cfg_t *c)
{
    double B = c->batch, D = c->width, F = c->mlp_hidden, V = c->vocab;
    double G = (double)(c->image_size / c->patch), N = G * G + 1, P = 3.0 * c->patch * c->patch;
    double patch = 2.0 * B * G * G * P * D;
    double layer = 2.0 * B * N * D * (3 * D + D + 2 * F) + 2.0 * 2.0 * B * N * N * D;
    double head = 2.0 * B * D * V;
    double fwd = patch + c->depth * layer + head;
    /* backward: two GEMMs (input and weight gradients) per forward GEMM, four for the two
     * attention products; the patch embedding needs only its weight gradient */
    return fwd + 2.0 * (fwd - patch) + patch;
}
