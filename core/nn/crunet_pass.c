/* CRU-Net forward, loss and backward (contract in nn/crunet.h, model in crunet_internal.h).
 *
 * Hand-written passes (STYLE.md 2.5 option A): each unit's backward mirrors its forward in reverse
 * order. Weight gradients accumulate, which is all weight sharing needs: a shared W_a / W_dw has
 * the same gradient view in every unit of its set, and the down unit's P receives its stride-1
 * and stride-2 contributions (spec 6). Activation gradients use five reusable buffers: g0/g1 for
 * the unit boundaries (ping-pong) and t0/t1/t2 inside a unit. */
#include <string.h>

#include "core/err.h"
#include "crunet_internal.h"
#include "internal.h"
#include "nn/crunet.h"
#include "nn/kernels.h"
#include "nn/loss.h"

/* ---- forward ------------------------------------------------------------------------------ */

static void bnr(const nn__cru_bn_t *bn, float *y, const float *x, size_t n, int train)
{
    nn__cru_bnrelu_fwd(y, bn->mean, bn->rstd, x, bn->g, bn->b, bn->rm, bn->rv, bn->C, n,
                       NN_CRUNET_BN_MOMENTUM, NN_CRUNET_BN_EPS, train);
}

/* The projection shortcut into y: P * ReLU(BN(x)) at the unit's stride. */
static void shortcut_fwd(nn_crunet_t *m, nn__cru_unit_t *U, int train)
{
    bnr(&U->bnp2, U->asc, U->x, U->nin, train);
    const float *src = U->asc;
    if (U->stride > 1) {
        nn__cru_subsample(U->ascs, U->asc, (size_t)U->cin * (size_t)m->cfg.batch, U->hin, U->win,
                          U->stride);
        src = U->ascs;
    }
    nn__cru_conv1x1_fwd(U->y, src, U->wp.w, U->cin, U->c, U->nout, 0);
}

static void rx_fwd(nn_crunet_t *m, nn__cru_unit_t *U, int train)
{
    int D = U->inner;
    bnr(&U->bn1, U->a1, U->x, U->nin, train);
    nn__cru_conv1x1_fwd(U->h1, U->a1, U->wa.w, U->cin, D, U->nin, 0);
    bnr(&U->bn2, U->a2, U->h1, U->nin, train);
    nn__cru_gconv_fwd(U->h2, m->scratch, U->a2, U->wk.w, &U->kd);
    bnr(&U->bn3, U->a3, U->h2, U->nout, train);
    if (U->proj) {
        shortcut_fwd(m, U, train);
    } else {
        memcpy(U->y, U->x, (size_t)U->c * U->nout * sizeof(float));
    }
    nn__cru_conv1x1_fwd(U->y, U->a3, U->wc.w, D, U->c, U->nout, 1);
}

static void cru_fwd(nn_crunet_t *m, nn__cru_unit_t *U, int train)
{
    int D = U->inner, C = U->c;
    const float *bin = U->x;
    if (U->proj) {
        /* P used twice: at stride 1 as the branch input, at the stride as the shortcut */
        bnr(&U->bnp1, U->ap1, U->x, U->nin, train);
        nn__cru_conv1x1_fwd(U->p, U->ap1, U->wp.w, U->cin, C, U->nin, 0);
        bin = U->p;
        shortcut_fwd(m, U, train);
    } else {
        memcpy(U->y, U->x, (size_t)C * U->nout * sizeof(float));
    }
    bnr(&U->bn1, U->a1, bin, U->nin, train);
    nn__cru_conv1x1_fwd(U->h1, U->a1, U->wa.w, C, D, U->nin, 0);   /* shared W_a */
    nn__cru_gconv_fwd(U->h2, m->scratch, U->h1, U->wk.w, &U->kd); /* shared W_dw, no BN between */
    bnr(&U->bn2, U->a2, U->h2, U->nout, train);
    nn__cru_conv1x1_fwd(U->h3, U->a2, U->wb.w, D, D, U->nout, 0);
    bnr(&U->bn3, U->a3, U->h3, U->nout, train);
    nn__cru_conv1x1_fwd(U->y, U->a3, U->wc.w, D, C, U->nout, 1);
}

void nn_crunet_forward(nn_crunet_t *m, const float *images, int train)
{
    const nn_crunet_cfg_t *c = &m->cfg;
    NN_ASSERT(images);
    int B = c->batch, H = c->image_size, k = c->stem_k, S = c->stem_ch;
    size_t N1 = (size_t)B * (size_t)m->H1 * (size_t)m->W1;
    nn__cru_nchw_to_cnhw(m->x0, images, B, 3, (size_t)H * (size_t)H);
    nn__cru_im2col(m->col, m->x0, 3, B, H, H, k, c->stem_stride, k / 2);
    nn__cru_conv1x1_fwd(m->hs, m->col, m->stem_w.w, 3 * k * k, S, N1, 0);
    bnr(&m->stem_bn, m->as, m->hs, N1, train);
    if (c->stem_pool) {
        /* the NCHW kernel works plane by plane, so [C, B] planes are just C*B planes */
        nn_maxpool2d_forward(m->pooled, m->pool_idx, m->as, 1, S * B, m->H1, m->W1, 3, 2, 1);
    }
    for (int i = 0; i < m->nunits; i++) {
        nn__cru_unit_t *U = &m->units[i];
        if (U->kind == NN__CRU_UNIT_RX) {
            rx_fwd(m, U, train);
        } else {
            cru_fwd(m, U, train);
        }
    }
    const float *xl = m->units[m->nunits - 1].y;
    size_t HWl = (size_t)m->H_last * (size_t)m->W_last;
    int CL = m->C_last, K = c->classes;
    bnr(&m->head_bn, m->af, xl, (size_t)B * HWl, train);
    nn__cru_gap_fwd(m->feat, m->af, B, CL, HWl);
    if (c->head == NN_CRUNET_HEAD_FC) {
        nn_linear_forward(m->logits, m->feat, m->fc_w, m->fc_b, B, CL, K);
    } else {
        nn_layernorm_forward(m->hln, m->hmean, m->hrstd, m->feat, m->ln_w, m->ln_b, B, CL,
                             NN__CRU_LN_EPS);
        nn_linear_forward(m->logits, m->hln, m->fc_w, m->fc_b, B, CL, K);
    }
    m->last_train = train;
}

const float *nn_crunet_features(const nn_crunet_t *m)
{
    return m->feat;
}

const float *nn_crunet_logits(const nn_crunet_t *m)
{
    return m->logits;
}

float *nn_crunet_dlogits(nn_crunet_t *m)
{
    return m->dlogits;
}

/* ---- loss ---------------------------------------------------------------------------------- */

int nn_crunet_loss_labels(nn_crunet_t *m, const int32_t *labels, float *loss_out)
{
    int B = m->cfg.batch, K = m->cfg.classes;
    for (int i = 0; i < B; i++) {
        if (labels[i] < 0 || labels[i] >= K) {
            return CORE_ECORRUPT;
        }
    }
    /* one-hot targets in the sparse form of nn_soft_xent_sparse */
    float *w = m->tw, *row_loss = m->tw + B; /* tw holds 128 B floats */
    for (int i = 0; i < B; i++) {
        m->lab_off[i] = (uint32_t)i;
        m->lab_ids[i] = (uint32_t)labels[i];
        w[i] = 1.0f;
    }
    m->lab_off[B] = (uint32_t)B;
    memset(m->dlogits, 0, (size_t)B * (size_t)K * sizeof(float));
    nn_soft_xent_sparse(row_loss, m->dlogits, m->logits, m->lab_off, m->lab_ids, w, B, K,
                        1.0f / (float)B);
    double s = 0.0;
    for (int i = 0; i < B; i++) {
        s += row_loss[i];
    }
    if (loss_out) {
        *loss_out = (float)(s / B);
    }
    return 0;
}

int nn_crunet_loss_sc(nn_crunet_t *m, const uint32_t *off, const uint32_t *ids, int use_idf,
                      float *loss_out)
{
    const nn_crunet_cfg_t *c = &m->cfg;
    if (c->head != NN_CRUNET_HEAD_SC) {
        return CORE_ECONFIG;
    }
    int rc = nn_labels_check(off, ids, c->batch, c->classes);
    if (rc < 0) {
        return rc;
    }
    if (off[c->batch] > m->tw_cap) {
        return CORE_ECORRUPT;
    }
    nn_idf_t idf = {.cap_fq = m->cap_fq, .num_samples = &m->num_samples, .V = c->classes};
    float loss = 0.0f;
    nn_sc_loss(&loss, m->dlogits, m->logits, off, ids, c->batch, c->classes, &idf, use_idf,
               m->counts, m->tw);
    if (loss_out) {
        *loss_out = loss;
    }
    return 0;
}

/* ---- backward ------------------------------------------------------------------------------ */

void nn_crunet_zero_grad(nn_crunet_t *m)
{
    memset(m->grads, 0, m->nparams * sizeof(float));
    m->grads_zeroed = 1;
}

static void bnrb(const nn__cru_bn_t *bn, float *dx, const float *dy, const float *x, size_t n,
                 int accumulate)
{
    nn__cru_bnrelu_bwd(dx, bn->gg, bn->gb, dy, x, bn->mean, bn->rstd, bn->g, bn->b, bn->C, n, 1,
                       accumulate);
}

/* Projection shortcut backward: P's gradient +=, gx = / += the gradient through BN_p2. */
static void shortcut_bwd(nn_crunet_t *m, const nn__cru_unit_t *U, const float *gy, float *gx,
                         int accumulate)
{
    const float *src = U->stride > 1 ? U->ascs : U->asc;
    nn__cru_conv1x1_bwd(m->t0, U->wp.g, gy, src, U->wp.w, U->cin, U->c, U->nout, 0);
    const float *dasc = m->t0;
    if (U->stride > 1) {
        nn__cru_subsample_bwd(m->t1, m->t0, (size_t)U->cin * (size_t)m->cfg.batch, U->hin,
                              U->win, U->stride);
        dasc = m->t1;
    }
    bnrb(&U->bnp2, gx, dasc, U->x, U->nin, accumulate);
}

static void add_into(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] += x[i];
    }
}

static void rx_bwd(nn_crunet_t *m, const nn__cru_unit_t *U, const float *gy, float *gx)
{
    int D = U->inner;
    nn__cru_conv1x1_bwd(m->t0, U->wc.g, gy, U->a3, U->wc.w, D, U->c, U->nout, 0);
    bnrb(&U->bn3, m->t1, m->t0, U->h2, U->nout, 0);
    nn__cru_gconv_bwd(m->t0, U->wk.g, m->scratch, m->t1, U->a2, U->wk.w, &U->kd);
    bnrb(&U->bn2, m->t1, m->t0, U->h1, U->nin, 0);
    nn__cru_conv1x1_bwd(m->t0, U->wa.g, m->t1, U->a1, U->wa.w, U->cin, D, U->nin, 0);
    bnrb(&U->bn1, gx, m->t0, U->x, U->nin, 0);
    if (U->proj) {
        shortcut_bwd(m, U, gy, gx, 1);
    } else {
        add_into(gx, gy, (size_t)U->c * U->nout);
    }
}

static void cru_bwd(nn_crunet_t *m, const nn__cru_unit_t *U, const float *gy, float *gx)
{
    int D = U->inner, C = U->c;
    nn__cru_conv1x1_bwd(m->t0, U->wc.g, gy, U->a3, U->wc.w, D, C, U->nout, 0);
    bnrb(&U->bn3, m->t1, m->t0, U->h3, U->nout, 0);
    nn__cru_conv1x1_bwd(m->t0, U->wb.g, m->t1, U->a2, U->wb.w, D, D, U->nout, 0);
    bnrb(&U->bn2, m->t1, m->t0, U->h2, U->nout, 0);
    nn__cru_gconv_bwd(m->t0, U->wk.g, m->scratch, m->t1, U->h1, U->wk.w, &U->kd);
    nn__cru_conv1x1_bwd(m->t1, U->wa.g, m->t0, U->a1, U->wa.w, C, D, U->nin, 0);
    if (!U->proj) {
        bnrb(&U->bn1, gx, m->t1, U->x, U->nin, 0);
        add_into(gx, gy, (size_t)C * U->nout);
        return;
    }
    bnrb(&U->bn1, m->t2, m->t1, U->p, U->nin, 0); /* d p */
    shortcut_bwd(m, U, gy, gx, 0);                /* P's stride-s use */
    nn__cru_conv1x1_bwd(m->t0, U->wp.g, m->t2, U->ap1, U->wp.w, U->cin, C, U->nin, 0);
    bnrb(&U->bnp1, gx, m->t0, U->x, U->nin, 1);   /* P's stride-1 use */
}

void nn_crunet_backward(nn_crunet_t *m)
{
    const nn_crunet_cfg_t *c = &m->cfg;
    /* gradients accumulate, so a backward without zero_grad would silently add two steps; the
     * cached statistics must be batch statistics */
    NN_ASSERT(m->grads_zeroed && m->last_train);
    m->grads_zeroed = 0;
    int B = c->batch, CL = m->C_last, K = c->classes, S = c->stem_ch, k = c->stem_k;
    size_t HWl = (size_t)m->H_last * (size_t)m->W_last;

    if (c->head == NN_CRUNET_HEAD_FC) {
        memset(m->dfeat, 0, (size_t)B * (size_t)CL * sizeof(float));
        nn_linear_backward(m->dfeat, m->fc_gw, m->fc_gb, m->dlogits, m->feat, m->fc_w, B, CL, K);
    } else {
        memset(m->dhln, 0, (size_t)B * (size_t)CL * sizeof(float));
        nn_linear_backward(m->dhln, m->fc_gw, m->fc_gb, m->dlogits, m->hln, m->fc_w, B, CL, K);
        memset(m->dfeat, 0, (size_t)B * (size_t)CL * sizeof(float));
        nn_layernorm_backward(m->dfeat, m->ln_gw, m->ln_gb, m->dhln, m->feat, m->hmean, m->hrstd,
                              m->ln_w, B, CL);
    }
    nn__cru_gap_bwd(m->t0, m->dfeat, B, CL, HWl);
    float *gy = m->g0, *gx = m->g1;
    bnrb(&m->head_bn, gy, m->t0, m->units[m->nunits - 1].y, (size_t)B * HWl, 0);

    for (int i = m->nunits - 1; i >= 0; i--) {
        const nn__cru_unit_t *U = &m->units[i];
        if (U->kind == NN__CRU_UNIT_RX) {
            rx_bwd(m, U, gy, gx);
        } else {
            cru_bwd(m, U, gy, gx);
        }
        float *t = gy;
        gy = gx;
        gx = t;
    }

    /* stem: the image needs no gradient, only the stem weight */
    size_t N1 = (size_t)B * (size_t)m->H1 * (size_t)m->W1;
    const float *das = gy;
    if (c->stem_pool) {
        memset(m->t0, 0, (size_t)S * N1 * sizeof(float));
        nn_maxpool2d_backward(m->t0, gy, m->pool_idx, 1, S * B, m->H1, m->W1, 3, 2, 1);
        das = m->t0;
    }
    bnrb(&m->stem_bn, m->t1, das, m->hs, N1, 0);
    nn__cru_conv1x1_bwd(NULL, m->stem_w.g, m->t1, m->col, m->stem_w.w, 3 * k * k, S, N1, 0);
}
