/* CRU-Net / pre-activation ResNeXt construction: config and presets (spec/crunet.md 2.6-2.7, 5),
 * the parameter table with generated checkpoint names (docs/CRUNET.md), the arenas, counting
 * without allocation, init and the optimiser steps. The passes are in crunet_pass.c.
 *
 * One walk over the architecture (walk_model) serves three purposes: counting (no arenas),
 * laying out the parameter/buffer arenas, and assigning each unit's views. A shared tensor is
 * created once, at the first unit of its share set, and later units of the set receive the same
 * views, so its gradient buffer collects every use (spec 6). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/rng.h"
#include "crunet_internal.h"
#include "internal.h"
#include "nn/adamw.h"
#include "nn/crunet.h"

/* ---- config ------------------------------------------------------------------------------- */

static int out_dim(int n, int k, int s, int pad)
{
    return (n + 2 * pad - k) / s + 1;
}

int nn_crunet_cfg_check(const nn_crunet_cfg_t *c)
{
    if (!c || c->image_size <= 0 || c->batch <= 0 || c->stem_ch <= 0 ||
        (c->stem_k != 3 && c->stem_k != 7 && c->stem_k != 1) ||
        (c->stem_stride != 1 && c->stem_stride != 2) || c->n_stages < 1 ||
        c->n_stages > NN_CRUNET_MAX_STAGES || (c->head != NN_CRUNET_HEAD_FC &&
                                               c->head != NN_CRUNET_HEAD_SC) ||
        c->classes <= 0) {
        return CORE_ECONFIG;
    }
    if (c->image_size + 2 * (c->stem_k / 2) < c->stem_k) {
        return CORE_ECONFIG;
    }
    int h = out_dim(c->image_size, c->stem_k, c->stem_stride, c->stem_k / 2);
    double big = (double)c->batch * (double)h * (double)h * (double)c->stem_k * c->stem_k * 3.0;
    if (c->stem_pool) {
        h = out_dim(h, 3, 2, 1);
    }
    int cin = c->stem_ch;
    for (int s = 0; s < c->n_stages; s++) {
        const nn_crunet_stage_t *st = &c->stage[s];
        if ((st->kind != NN_CRUNET_RESNEXT && st->kind != NN_CRUNET_CRU) || st->units < 1 ||
            st->width <= 0 || st->inner <= 0 || (st->stride != 1 && st->stride != 2) ||
            st->share_every < 0 || h < 1) {
            return CORE_ECONFIG;
        }
        if (st->kind == NN_CRUNET_RESNEXT && (st->groups <= 0 || st->inner % st->groups != 0)) {
            return CORE_ECONFIG;
        }
        int mx = cin > st->width ? cin : st->width;
        mx = mx > st->inner ? mx : st->inner;
        double a = (double)c->batch * (double)h * (double)h * (double)mx;
        big = a > big ? a : big;
        h = (h - 1) / st->stride + 1;
        cin = st->width;
    }
    /* every activation is indexed with int dimensions in the GEMMs */
    if (big > 2e9 || (double)c->batch * (double)c->classes > 2e9) {
        return CORE_ECONFIG;
    }
    return 0;
}

typedef struct {
    const char *name;
    int stem_ch, stem_k, stem_stride, stem_pool;
    int n_stages;
    nn_crunet_stage_t stage[NN_CRUNET_MAX_STAGES];
} preset_t;

#define RX(u, c, d, g, s) {NN_CRUNET_RESNEXT, u, c, d, g, s, 0}
#define CRU(u, c, m, s, e) {NN_CRUNET_CRU, u, c, m, 1, s, e}

static const preset_t presets[] = {
    {"crunet56", 64, 7, 2, 1, 4,
     {RX(3, 256, 128, 32, 1), RX(4, 512, 256, 32, 2), CRU(6, 1024, 640, 2, 0),
      RX(3, 2048, 1024, 32, 2)}},
    {"crunet116", 64, 7, 2, 1, 4,
     {RX(3, 256, 128, 32, 1), CRU(6, 512, 352, 2, 0), CRU(18, 1024, 704, 2, 6),
      RX(3, 2048, 1024, 32, 2)}},
    {"crunet56-136x1d", 64, 7, 2, 1, 4,
     {RX(3, 256, 136, 136, 1), RX(4, 512, 272, 272, 2), CRU(6, 1024, 640, 2, 0),
      RX(3, 2048, 1088, 1088, 2)}},
    {"crunet35c", 32, 3, 1, 0, 3,
     {RX(3, 64, 32, 8, 1), CRU(3, 128, 96, 2, 0), CRU(3, 256, 192, 2, 0)}},
    {"crunet35c-s2", 32, 3, 2, 0, 3,
     {RX(3, 64, 32, 8, 1), CRU(3, 128, 96, 2, 0), CRU(3, 256, 192, 2, 0)}},
    {"crunet24-mini", 16, 3, 1, 0, 3,
     {RX(2, 32, 16, 4, 1), CRU(2, 64, 48, 2, 0), CRU(2, 128, 96, 2, 0)}},
    {"resnext50-32x4d", 64, 7, 2, 1, 4,
     {RX(3, 256, 128, 32, 1), RX(4, 512, 256, 32, 2), RX(6, 1024, 512, 32, 2),
      RX(3, 2048, 1024, 32, 2)}},
    {"resnet50", 64, 7, 2, 1, 4,
     {RX(3, 256, 64, 1, 1), RX(4, 512, 128, 1, 2), RX(6, 1024, 256, 1, 2),
      RX(3, 2048, 512, 1, 2)}},
};
#undef RX
#undef CRU

int nn_crunet_preset(const char *name, int image_size, int head, int classes, int batch,
                     nn_crunet_cfg_t *out)
{
    if (!name || !out) {
        return CORE_ENOT_FOUND;
    }
    static const char suffix[] = "-noshare";
    size_t len = strlen(name), sl = sizeof suffix - 1;
    int no_share = 0;
    if (len > sl && strcmp(name + len - sl, suffix) == 0) {
        no_share = 1;
        len -= sl;
    }
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        const preset_t *p = &presets[i];
        if (strlen(p->name) != len || strncmp(p->name, name, len) != 0) {
            continue;
        }
        nn_crunet_cfg_t c;
        memset(&c, 0, sizeof c);
        c.image_size = image_size;
        c.batch = batch;
        c.stem_ch = p->stem_ch;
        c.stem_k = p->stem_k;
        c.stem_stride = p->stem_stride;
        c.stem_pool = p->stem_pool;
        c.n_stages = p->n_stages;
        memcpy(c.stage, p->stage, sizeof c.stage);
        c.head = head;
        c.classes = classes;
        c.no_share = no_share;
        int rc = nn_crunet_cfg_check(&c);
        if (rc == 0) {
            *out = c;
        }
        return rc;
    }
    return CORE_ENOT_FOUND;
}

const nn_crunet_cfg_t *nn_crunet_cfg(const nn_crunet_t *m)
{
    return &m->cfg;
}

/* ---- the architecture walk ------------------------------------------------------------------ */

typedef struct {
    nn_crunet_t *m;
    char prefix[64];
    size_t poff, boff;
    nn_crunet_counts_t n;
} walk_t;

static size_t align16(size_t x)
{
    return (x + 15) & ~(size_t)15;
}

static nn__cru_slot_t *add_tensor(walk_t *w, const char *name, int ndim, int64_t s0, int64_t s1,
                                  int64_t s2, int64_t s3, int arena, int init, double fan,
                                  int decay)
{
    nn_crunet_t *m = w->m;
    NN_ASSERT(m->nslots < m->slot_cap);
    nn__cru_slot_t *s = &m->slots[m->nslots++];
    memset(s, 0, sizeof *s);
    int64_t sh[4] = {s0, s1, s2, s3};
    size_t numel = 1;
    for (int k = 0; k < ndim; k++) {
        s->t.shape[k] = sh[k];
        numel *= (size_t)sh[k];
    }
    char *dst = m->names + m->names_used;
    int len = snprintf(dst, m->names_cap - m->names_used, "%s%s", w->prefix, name);
    NN_ASSERT(len > 0 && (size_t)len < m->names_cap - m->names_used);
    m->names_used += (size_t)len + 1;
    s->t.name = dst;
    s->t.ndim = ndim;
    s->t.numel = numel;
    s->t.decay = decay;
    s->t.dtype = arena == 2 ? NN_DTYPE_F64 : NN_DTYPE_F32;
    s->t.is_buffer = arena != 0;
    s->init = init;
    s->fan_in = fan;
    s->arena = arena;
    if (arena == 0) {
        s->off = w->poff = align16(w->poff);
        w->poff += numel;
        w->n.params += numel;
        if (m->params) {
            s->t.data = m->params + s->off;
            s->t.grad = m->grads + s->off;
            s->t.m = m->m + s->off;
            s->t.v = m->v + s->off;
        }
    } else if (arena == 1) {
        s->off = w->boff = align16(w->boff);
        w->boff += numel;
        w->n.buffers += numel;
        if (m->bufs) {
            s->t.data = m->bufs + s->off;
        }
    } else {
        w->n.buffers += numel;
    }
    return s;
}

static void add_conv(walk_t *w, const char *name, int O, int Cg, int k, nn__cru_w_t *out)
{
    char full[64];
    snprintf(full, sizeof full, "%s.weight", name);
    nn__cru_slot_t *s = add_tensor(w, full, 4, O, Cg, k, k, 0, NN__CRU_I_HE,
                                   (double)Cg * k * k, 1);
    w->n.conv_tensors++;
    w->n.conv_params += s->t.numel;
    out->w = s->t.data;
    out->g = s->t.grad;
}

static void add_bn(walk_t *w, const char *name, int C, nn__cru_bn_t *bn)
{
    char full[64];
    bn->C = C;
    snprintf(full, sizeof full, "%s.weight", name);
    nn__cru_slot_t *s = add_tensor(w, full, 1, C, 0, 0, 0, 0, NN__CRU_I_ONE, 0, 0);
    bn->g = s->t.data;
    bn->gg = s->t.grad;
    snprintf(full, sizeof full, "%s.bias", name);
    s = add_tensor(w, full, 1, C, 0, 0, 0, 0, NN__CRU_I_ZERO, 0, 0);
    bn->b = s->t.data;
    bn->gb = s->t.grad;
    snprintf(full, sizeof full, "%s.running_mean", name);
    s = add_tensor(w, full, 1, C, 0, 0, 0, 1, NN__CRU_I_ZERO, 0, 0);
    bn->rm = s->t.data;
    snprintf(full, sizeof full, "%s.running_var", name);
    s = add_tensor(w, full, 1, C, 0, 0, 0, 1, NN__CRU_I_ONE, 0, 0);
    bn->rv = s->t.data;
    w->n.bn_layers++;
    w->n.bn_channels += (size_t)C;
}

static double conv_macs(int O, int Cg, int k, size_t n_out)
{
    return (double)O * Cg * k * k * (double)n_out;
}

/* Walks the network: creates the tensor table (views when the arenas exist), fills the units'
 * shapes and weight views, counts, and sums the forward MACs. */
static void walk_model(nn_crunet_t *m, nn_crunet_counts_t *counts)
{
    const nn_crunet_cfg_t *c = &m->cfg;
    walk_t w;
    memset(&w, 0, sizeof w);
    w.m = m;
    m->nslots = 0;
    m->names_used = 0;
    m->macs = 0.0;
    size_t B = (size_t)c->batch;

    snprintf(w.prefix, sizeof w.prefix, "stem.");
    add_conv(&w, "conv", c->stem_ch, 3, c->stem_k, &m->stem_w);
    add_bn(&w, "bn", c->stem_ch, &m->stem_bn);
    m->H1 = out_dim(c->image_size, c->stem_k, c->stem_stride, c->stem_k / 2);
    m->W1 = m->H1;
    m->macs += conv_macs(c->stem_ch, 3, c->stem_k, B * (size_t)m->H1 * (size_t)m->W1);
    m->Hp = c->stem_pool ? out_dim(m->H1, 3, 2, 1) : m->H1;
    m->Wp = m->Hp;

    int cin = c->stem_ch, h = m->Hp, ui = 0;
    for (int si = 0; si < c->n_stages; si++) {
        const nn_crunet_stage_t *st = &c->stage[si];
        nn__cru_w_t sa = {0}, sk = {0};
        for (int u = 0; u < st->units; u++) {
            nn__cru_unit_t *U = &m->units[ui++];
            memset(U, 0, sizeof *U);
            U->kind = st->kind == NN_CRUNET_CRU ? NN__CRU_UNIT_CRU : NN__CRU_UNIT_RX;
            U->stride = u == 0 ? st->stride : 1;
            U->cin = cin;
            U->c = st->width;
            U->inner = st->inner;
            U->hin = U->win = h;
            U->hout = U->wout = (h - 1) / U->stride + 1;
            U->nin = B * (size_t)h * (size_t)h;
            U->nout = B * (size_t)U->hout * (size_t)U->wout;
            int D = st->inner, C = st->width;
            snprintf(w.prefix, sizeof w.prefix, "stage%d.unit%d.", si, u);
            if (U->kind == NN__CRU_UNIT_RX) {
                U->groups = st->groups;
                U->proj = u == 0 && (cin != C || U->stride != 1);
                add_bn(&w, "bn1", cin, &U->bn1);
                add_conv(&w, "conv1", D, cin, 1, &U->wa);
                add_bn(&w, "bn2", D, &U->bn2);
                add_conv(&w, "conv2", D, D / st->groups, 3, &U->wk);
                add_bn(&w, "bn3", D, &U->bn3);
                add_conv(&w, "conv3", C, D, 1, &U->wc);
                if (U->proj) {
                    add_bn(&w, "sc_bn", cin, &U->bnp2);
                    add_conv(&w, "sc_conv", C, cin, 1, &U->wp);
                }
                m->macs += conv_macs(D, cin, 1, U->nin) + conv_macs(D, D / st->groups, 3, U->nout) +
                           conv_macs(C, D, 1, U->nout) +
                           (U->proj ? conv_macs(C, cin, 1, U->nout) : 0.0);
            } else {
                U->groups = D;
                U->proj = u == 0;
                if (U->proj) {
                    add_bn(&w, "proj_bn1", cin, &U->bnp1);
                    add_bn(&w, "proj_bn2", cin, &U->bnp2);
                    add_conv(&w, "proj", C, cin, 1, &U->wp);
                }
                add_bn(&w, "bn1", C, &U->bn1);
                int new_set = st->share_every > 0 ? u % st->share_every == 0 : u == 0;
                if (c->no_share) {
                    add_conv(&w, "conv_a", D, C, 1, &U->wa);
                    add_conv(&w, "conv_dw", D, 1, 3, &U->wk);
                } else {
                    if (new_set) {
                        int set = st->share_every > 0 ? u / st->share_every : 0;
                        snprintf(w.prefix, sizeof w.prefix, "stage%d.share%d.", si, set);
                        add_conv(&w, "conv_a", D, C, 1, &sa);
                        add_conv(&w, "conv_dw", D, 1, 3, &sk);
                        snprintf(w.prefix, sizeof w.prefix, "stage%d.unit%d.", si, u);
                    }
                    U->wa = sa;
                    U->wk = sk;
                }
                add_bn(&w, "bn2", D, &U->bn2);
                add_conv(&w, "conv_b", D, D, 1, &U->wb);
                add_bn(&w, "bn3", D, &U->bn3);
                add_conv(&w, "conv_c", C, D, 1, &U->wc);
                m->macs += (U->proj ? conv_macs(C, cin, 1, U->nin) + conv_macs(C, cin, 1, U->nout)
                                    : 0.0) +
                           conv_macs(D, C, 1, U->nin) + conv_macs(D, 1, 3, U->nout) +
                           conv_macs(D, D, 1, U->nout) + conv_macs(C, D, 1, U->nout);
            }
            U->kd = (nn__cru_gconv_t){.C = D, .O = D, .groups = U->groups, .B = c->batch,
                                      .H = h, .W = h, .k = 3, .stride = U->stride, .pad = 1};
            cin = C;
            h = U->hout;
        }
    }
    m->C_last = cin;
    m->H_last = m->W_last = h;

    snprintf(w.prefix, sizeof w.prefix, "head.");
    add_bn(&w, "bn", cin, &m->head_bn);
    int K = c->classes;
    nn__cru_slot_t *s;
    if (c->head == NN_CRUNET_HEAD_FC) {
        s = add_tensor(&w, "fc.weight", 2, K, cin, 0, 0, 0, NN__CRU_I_UNIFORM, cin, 1);
        m->fc_w = s->t.data;
        m->fc_gw = s->t.grad;
        s = add_tensor(&w, "fc.bias", 1, K, 0, 0, 0, 0, NN__CRU_I_UNIFORM, cin, 0);
        m->fc_b = s->t.data;
        m->fc_gb = s->t.grad;
    } else {
        /* the ViT's head names, so a SuperClass checkpoint reads the same for both backbones */
        w.prefix[0] = '\0';
        s = add_tensor(&w, "text_decoder.ln_mlp.weight", 1, cin, 0, 0, 0, 0, NN__CRU_I_ONE, 0, 0);
        m->ln_w = s->t.data;
        m->ln_gw = s->t.grad;
        s = add_tensor(&w, "text_decoder.ln_mlp.bias", 1, cin, 0, 0, 0, 0, NN__CRU_I_ZERO, 0, 0);
        m->ln_b = s->t.data;
        m->ln_gb = s->t.grad;
        s = add_tensor(&w, "text_decoder.text_projection.weight", 2, K, cin, 0, 0, 0,
                       NN__CRU_I_NORMAL_D, cin, 1);
        m->fc_w = s->t.data;
        m->fc_gw = s->t.grad;
        s = add_tensor(&w, "text_decoder.text_projection.bias", 1, K, 0, 0, 0, 0, NN__CRU_I_ZERO,
                       0, 0);
        m->fc_b = s->t.data;
        m->fc_gb = s->t.grad;
        s = add_tensor(&w, "cap_fq", 2, 1, K, 0, 0, 2, NN__CRU_I_ZERO, 0, 0);
        s->t.data = m->cap_fq;
        s = add_tensor(&w, "num_samples", 2, 1, 1, 0, 0, 2, NN__CRU_I_ZERO, 0, 0);
        s->t.data = &m->num_samples;
    }
    m->macs += (double)K * cin * (double)B;
    m->nparams = w.poff;
    m->nbufs = w.boff;
    if (counts) {
        *counts = w.n;
    }
}

/* Activation views (when *base is set); returns the arena size in floats and the largest single
 * activation (for the gradient buffers). */
#define TAKE(ptr, cnt)                                                                             \
    do {                                                                                           \
        size_t n_ = (cnt);                                                                         \
        used = align16(used);                                                                      \
        if (base) {                                                                                \
            (ptr) = base + used;                                                                   \
        }                                                                                          \
        used += n_;                                                                                \
        mx = n_ > mx ? n_ : mx;                                                                    \
    } while (0)

static size_t layout_bn_stats(nn__cru_bn_t *bn, float *base, size_t used)
{
    used = align16(used);
    if (base) {
        bn->mean = base + used;
        bn->rstd = base + used + (size_t)bn->C;
    }
    return used + 2 * (size_t)bn->C;
}

static size_t layout_acts(nn_crunet_t *m, float *base, size_t *max_act)
{
    const nn_crunet_cfg_t *c = &m->cfg;
    size_t B = (size_t)c->batch, used = 0, mx = 0;
    size_t HW = (size_t)c->image_size * (size_t)c->image_size;
    size_t N1 = B * (size_t)m->H1 * (size_t)m->W1, Np = B * (size_t)m->Hp * (size_t)m->Wp;
    size_t k2 = (size_t)c->stem_k * (size_t)c->stem_k, S = (size_t)c->stem_ch;
    TAKE(m->x0, 3 * B * HW);
    TAKE(m->col, 3 * k2 * N1);
    TAKE(m->hs, S * N1);
    TAKE(m->as, S * N1);
    if (c->stem_pool) {
        TAKE(m->pooled, S * Np);
    }
    used = layout_bn_stats(&m->stem_bn, base, used);
    const float *x = c->stem_pool ? m->pooled : m->as;
    for (int i = 0; i < m->nunits; i++) {
        nn__cru_unit_t *U = &m->units[i];
        size_t ci = (size_t)U->cin, C = (size_t)U->c, D = (size_t)U->inner;
        U->x = x;
        if (U->kind == NN__CRU_UNIT_RX) {
            TAKE(U->a1, ci * U->nin);
            TAKE(U->h1, D * U->nin);
            TAKE(U->a2, D * U->nin);
            TAKE(U->h2, D * U->nout);
            TAKE(U->a3, D * U->nout);
            if (U->proj) {
                TAKE(U->asc, ci * U->nin);
                if (U->stride > 1) {
                    TAKE(U->ascs, ci * U->nout);
                }
            }
        } else {
            if (U->proj) {
                TAKE(U->ap1, ci * U->nin);
                TAKE(U->p, C * U->nin);
                TAKE(U->asc, ci * U->nin);
                if (U->stride > 1) {
                    TAKE(U->ascs, ci * U->nout);
                }
                used = layout_bn_stats(&U->bnp1, base, used);
            }
            TAKE(U->a1, C * U->nin);
            TAKE(U->h1, D * U->nin);
            TAKE(U->h2, D * U->nout);
            TAKE(U->a2, D * U->nout);
            TAKE(U->h3, D * U->nout);
            TAKE(U->a3, D * U->nout);
        }
        TAKE(U->y, C * U->nout);
        used = layout_bn_stats(&U->bn1, base, used);
        used = layout_bn_stats(&U->bn2, base, used);
        used = layout_bn_stats(&U->bn3, base, used);
        if (U->proj) {
            used = layout_bn_stats(&U->bnp2, base, used);
        }
        x = U->y;
    }
    size_t CL = (size_t)m->C_last, K = (size_t)c->classes;
    TAKE(m->af, CL * B * (size_t)m->H_last * (size_t)m->W_last);
    used = layout_bn_stats(&m->head_bn, base, used);
    TAKE(m->feat, B * CL);
    TAKE(m->hln, B * CL);
    TAKE(m->hmean, B);
    TAKE(m->hrstd, B);
    TAKE(m->logits, B * K);
    if (max_act) {
        *max_act = mx;
    }
    return used;
}

static size_t layout_dacts(nn_crunet_t *m, float *base)
{
    size_t used = 0, mx = 0, B = (size_t)m->cfg.batch;
    TAKE(m->g0, m->max_act);
    TAKE(m->g1, m->max_act);
    TAKE(m->t0, m->max_act);
    TAKE(m->t1, m->max_act);
    TAKE(m->t2, m->max_act);
    TAKE(m->scratch, m->gconv_scratch);
    TAKE(m->dfeat, B * (size_t)m->C_last);
    TAKE(m->dhln, B * (size_t)m->C_last);
    TAKE(m->dlogits, B * (size_t)m->cfg.classes);
    (void)mx;
    return used;
}
#undef TAKE

/* ---- construction -------------------------------------------------------------------------- */

static int total_units(const nn_crunet_cfg_t *c)
{
    int n = 0;
    for (int s = 0; s < c->n_stages; s++) {
        n += c->stage[s].units;
    }
    return n;
}

void nn_crunet_free(nn_crunet_t *m)
{
    if (!m) {
        return;
    }
    core_free_aligned(m->params);
    core_free_aligned(m->grads);
    core_free_aligned(m->m);
    core_free_aligned(m->v);
    core_free_aligned(m->bufs);
    core_free_aligned(m->acts);
    core_free_aligned(m->dacts);
    core_free(m->units);
    core_free(m->slots);
    core_free(m->order);
    core_free(m->names);
    core_free(m->cap_fq);
    core_free(m->pool_idx);
    core_free(m->counts);
    core_free(m->lab_off);
    core_free(m->lab_ids);
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

/* The model struct with its unit and slot tables, no arenas. */
static int new_shell(const nn_crunet_cfg_t *cfg, nn_crunet_t **out)
{
    int rc = nn_crunet_cfg_check(cfg);
    if (rc < 0) {
        return rc;
    }
    nn_crunet_t *m = core_calloc(1, sizeof *m);
    if (!m) {
        return CORE_ERR(ENOMEM);
    }
    m->cfg = *cfg;
    m->nunits = total_units(cfg);
    /* per unit at most 5 BNs (4 tensors each) and 6 convs; stem, head and buffers: 16 */
    m->slot_cap = (size_t)m->nunits * 26 + 16;
    m->names_cap = m->slot_cap * 48;
    m->units = core_calloc((size_t)m->nunits, sizeof *m->units);
    m->slots = core_calloc(m->slot_cap, sizeof *m->slots);
    m->names = core_malloc(m->names_cap);
    if (!m->units || !m->slots || !m->names) {
        nn_crunet_free(m);
        return CORE_ERR(ENOMEM);
    }
    *out = m;
    return 0;
}

int nn_crunet_count(const nn_crunet_cfg_t *cfg, nn_crunet_counts_t *out)
{
    nn_crunet_t *m = NULL;
    int rc = new_shell(cfg, &m);
    if (rc < 0) {
        return rc;
    }
    walk_model(m, out);
    size_t mx = 0;
    out->acts_floats = layout_acts(m, NULL, &mx);
    nn_crunet_free(m);
    return 0;
}

int nn_crunet_new(const nn_crunet_cfg_t *cfg, nn_crunet_t **out)
{
    nn_crunet_t *m = NULL;
    int rc = new_shell(cfg, &m);
    if (rc < 0) {
        return rc;
    }
    walk_model(m, NULL); /* sizes */
    size_t na = layout_acts(m, NULL, &m->max_act);
    m->gconv_scratch = 16;
    for (int i = 0; i < m->nunits; i++) {
        size_t s = 2 * nn__cru_gconv_scratch(&m->units[i].kd);
        m->gconv_scratch = s > m->gconv_scratch ? s : m->gconv_scratch;
    }
    size_t nd = layout_dacts(m, NULL);
    size_t B = (size_t)cfg->batch, K = (size_t)cfg->classes;
    m->params = arena(m->nparams);
    m->grads = arena(m->nparams);
    m->m = arena(m->nparams);
    m->v = arena(m->nparams);
    m->bufs = arena(m->nbufs);
    m->acts = arena(na);
    m->dacts = arena(nd);
    m->order = core_calloc(m->slot_cap, sizeof *m->order);
    m->lab_off = core_calloc(B + 1, sizeof *m->lab_off);
    m->lab_ids = core_calloc(B, sizeof *m->lab_ids);
    m->tw_cap = B * 128; /* SuperClass labels: at most 77 ids per sample */
    m->tw = core_calloc(m->tw_cap, sizeof *m->tw);
    if (cfg->head == NN_CRUNET_HEAD_SC) {
        m->cap_fq = core_calloc(K, sizeof *m->cap_fq);
        m->counts = core_calloc(K, sizeof *m->counts);
    }
    if (cfg->stem_pool) {
        m->pool_idx = core_calloc((size_t)cfg->stem_ch * B * (size_t)m->Hp * (size_t)m->Wp,
                                  sizeof *m->pool_idx);
    }
    if (!m->params || !m->grads || !m->m || !m->v || !m->bufs || !m->acts || !m->dacts ||
        !m->order || !m->lab_off || !m->lab_ids || !m->tw ||
        (cfg->head == NN_CRUNET_HEAD_SC && (!m->cap_fq || !m->counts)) ||
        (cfg->stem_pool && !m->pool_idx)) {
        nn_crunet_free(m);
        return CORE_ERR(ENOMEM);
    }
    walk_model(m, NULL); /* views */
    layout_acts(m, m->acts, NULL);
    layout_dacts(m, m->dacts);
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < m->nslots; i++) {
            if ((m->slots[i].arena != 0) == pass) {
                m->order[k++] = i;
            }
        }
    }
    *out = m;
    return 0;
}

/* ---- tensors ------------------------------------------------------------------------------- */

size_t nn_crunet_num_tensors(const nn_crunet_t *m)
{
    return m->nslots;
}

int nn_crunet_tensor(const nn_crunet_t *m, size_t i, nn_tensor_t *out)
{
    if (i >= m->nslots) {
        return CORE_ENOT_FOUND;
    }
    *out = m->slots[m->order[i]].t;
    return 0;
}

int nn_crunet_find(const nn_crunet_t *m, const char *name, nn_tensor_t *out)
{
    for (size_t i = 0; i < m->nslots; i++) {
        if (strcmp(m->slots[i].t.name, name) == 0) {
            *out = m->slots[i].t;
            return 0;
        }
    }
    return CORE_ENOT_FOUND;
}

size_t nn_crunet_num_params(const nn_crunet_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nslots; i++) {
        if (!m->slots[i].t.is_buffer) {
            n += m->slots[i].t.numel;
        }
    }
    return n;
}

double nn_crunet_forward_macs(const nn_crunet_t *m)
{
    return m->macs;
}

int64_t nn_crunet_opt_step(const nn_crunet_t *m)
{
    return m->opt_step;
}

void nn_crunet_set_opt_step(nn_crunet_t *m, int64_t step)
{
    m->opt_step = step;
}

/* ---- init ---------------------------------------------------------------------------------- */

void nn_crunet_init(nn_crunet_t *m, uint64_t seed)
{
    for (size_t i = 0; i < m->nslots; i++) {
        nn__cru_slot_t *s = &m->slots[i];
        if (s->arena == 2) {
            memset(s->t.data, 0, s->t.numel * sizeof(double));
            continue;
        }
        float *p = s->t.data;
        core_rng_t r;
        core_rng_init(&r, seed, (uint64_t)i);
        switch (s->init) {
        case NN__CRU_I_HE: {
            double sd = sqrt(2.0 / s->fan_in); /* He et al. 2015, fan-in mode */
            for (size_t k = 0; k < s->t.numel; k++) {
                p[k] = (float)(core_rng_normal(&r) * sd);
            }
            break;
        }
        case NN__CRU_I_ONE:
            for (size_t k = 0; k < s->t.numel; k++) {
                p[k] = 1.0f;
            }
            break;
        case NN__CRU_I_ZERO:
            memset(p, 0, s->t.numel * sizeof(float));
            break;
        case NN__CRU_I_UNIFORM: {
            double bound = 1.0 / sqrt(s->fan_in); /* PyTorch Linear default */
            for (size_t k = 0; k < s->t.numel; k++) {
                p[k] = (float)((2.0 * core_rng_uniform_f64(&r) - 1.0) * bound);
            }
            break;
        }
        case NN__CRU_I_NORMAL_D:
            for (size_t k = 0; k < s->t.numel; k++) {
                p[k] = (float)(core_rng_normal(&r) / sqrt(s->fan_in));
            }
            break;
        default:
            NN_ASSERT(0);
        }
    }
    memset(m->grads, 0, m->nparams * sizeof(float));
    memset(m->m, 0, m->nparams * sizeof(float));
    memset(m->v, 0, m->nparams * sizeof(float));
    m->num_samples = 0.0;
    m->opt_step = 0;
}

/* ---- optimisers ---------------------------------------------------------------------------- */

void nn_crunet_sgd_step(nn_crunet_t *m, float lr, float momentum, float weight_decay)
{
    int first = m->opt_step == 0;
    m->opt_step++;
    for (size_t i = 0; i < m->nslots; i++) {
        const nn_tensor_t *t = &m->slots[i].t;
        if (t->is_buffer) {
            continue;
        }
        float *p = t->data, *buf = t->m;
        const float *g = t->grad;
        float wd = t->decay ? weight_decay : 0.0f;
        for (size_t k = 0; k < t->numel; k++) {
            float d = g[k] + wd * p[k];
            buf[k] = first ? d : momentum * buf[k] + d;
            p[k] -= lr * buf[k];
        }
    }
}

void nn_crunet_adamw_step(nn_crunet_t *m, const nn_adamw_cfg_t *cfg, float lr)
{
    m->opt_step++;
    for (size_t i = 0; i < m->nslots; i++) {
        const nn_tensor_t *t = &m->slots[i].t;
        if (t->is_buffer) {
            continue;
        }
        nn_adamw_update(t->data, t->m, t->v, t->grad, t->numel, lr,
                        t->decay ? cfg->weight_decay : 0.0f, cfg->beta1, cfg->beta2, cfg->eps,
                        m->opt_step, 1.0f);
    }
}
