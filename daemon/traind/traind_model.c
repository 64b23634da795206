/* sc-traind's backbone interface: one struct that holds either a ViT (nn/vit.h) or a CRU-Net
 * (nn/crunet.h, SuperClass head), so the training loop, the buffer backup of skipped steps and the
 * checkpoint code do not care which. A name is a CRU-Net preset when nn_crunet_preset knows it
 * (crunet35c, crunet24-mini, ...); otherwise it goes to traind__backbone (the ViT presets).
 *
 * Checkpoints of both kinds have the same layout (nn/ckpt.h: tensors, optimizer.exp_avg.*,
 * optimizer.exp_avg_sq.*, NN_CKPT_META_OPT_STEP); the CRU-Net's BN running statistics are buffers
 * (no moments), saved and restored like the IDF buffers, so resuming is exact. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/ckpt.h"
#include "traind.h"

int traind__model_cfg(const char *name, int image_size, int vocab, int batch, int *is_cru,
                      nn_vit_cfg_t *vc, nn_crunet_cfg_t *cc)
{
    int rc = nn_crunet_preset(name, image_size, NN_CRUNET_HEAD_SC, vocab, batch, cc);
    if (rc != CORE_ENOT_FOUND) {
        *is_cru = 1;
        return rc;
    }
    *is_cru = 0;
    return traind__backbone(name, image_size, vocab, batch, vc);
}

int traind__model_new(const char *name, int image_size, int vocab, int batch, traind_model_t *out)
{
    memset(out, 0, sizeof *out);
    nn_crunet_cfg_t cc;
    int rc = traind__model_cfg(name, image_size, vocab, batch, &out->is_cru, &out->vc, &cc);
    if (rc < 0) {
        return rc;
    }
    out->batch = batch;
    out->vocab = vocab;
    return out->is_cru ? nn_crunet_new(&cc, &out->cru) : nn_vit_new(&out->vc, &out->vit);
}

void traind__model_free(traind_model_t *m)
{
    nn_vit_free(m->vit);
    nn_crunet_free(m->cru);
    m->vit = NULL;
    m->cru = NULL;
}

int traind__model_ok(const traind_model_t *m)
{
    return m->vit != NULL || m->cru != NULL;
}

void traind__model_init(traind_model_t *m, uint64_t seed)
{
    if (m->is_cru) {
        nn_crunet_init(m->cru, seed);
    } else {
        nn_vit_init(m->vit, seed);
    }
}

size_t traind__model_num_tensors(const traind_model_t *m)
{
    return m->is_cru ? nn_crunet_num_tensors(m->cru) : nn_vit_num_tensors(m->vit);
}

int traind__model_tensor(const traind_model_t *m, size_t i, nn_tensor_t *t)
{
    return m->is_cru ? nn_crunet_tensor(m->cru, i, t) : nn_vit_tensor(m->vit, i, t);
}

size_t traind__model_num_params(const traind_model_t *m)
{
    return m->is_cru ? nn_crunet_num_params(m->cru) : nn_vit_num_params(m->vit);
}

int traind__model_forward_loss(traind_model_t *m, const float *images, const uint32_t *off,
                               const uint32_t *ids, int use_idf, float *loss)
{
    if (m->is_cru) {
        nn_crunet_zero_grad(m->cru);
        nn_crunet_forward(m->cru, images, 1);
        return nn_crunet_loss_sc(m->cru, off, ids, use_idf, loss);
    }
    nn_vit_zero_grad(m->vit);
    nn_vit_forward(m->vit, images);
    return nn_vit_loss(m->vit, off, ids, use_idf, loss);
}

void traind__model_forward(traind_model_t *m, const float *images)
{
    if (m->is_cru) {
        nn_crunet_zero_grad(m->cru);
        nn_crunet_forward(m->cru, images, 1);
    } else {
        nn_vit_zero_grad(m->vit);
        nn_vit_forward(m->vit, images);
    }
}

const float *traind__model_logits(const traind_model_t *m)
{
    return m->is_cru ? nn_crunet_logits(m->cru) : nn_vit_logits(m->vit);
}

float *traind__model_dlogits(traind_model_t *m)
{
    return m->is_cru ? nn_crunet_dlogits(m->cru) : nn_vit_dlogits(m->vit);
}

int traind__model_idf(const traind_model_t *m, nn_idf_t *idf)
{
    nn_tensor_t a, b;
    int rc = m->is_cru ? nn_crunet_find(m->cru, "cap_fq", &a) : nn_vit_find(m->vit, "cap_fq", &a);
    if (rc == 0) {
        rc = m->is_cru ? nn_crunet_find(m->cru, "num_samples", &b)
                       : nn_vit_find(m->vit, "num_samples", &b);
    }
    if (rc < 0 || a.dtype != NN_DTYPE_F64 || b.dtype != NN_DTYPE_F64) {
        return CORE_ENOT_FOUND;
    }
    idf->cap_fq = a.data;
    idf->num_samples = b.data;
    idf->V = (int)a.numel;
    return 0;
}

int64_t traind__model_opt_step(const traind_model_t *m)
{
    return m->is_cru ? nn_crunet_opt_step(m->cru) : nn_vit_opt_step(m->vit);
}

void traind__model_set_opt_step(traind_model_t *m, int64_t step)
{
    if (m->is_cru) {
        nn_crunet_set_opt_step(m->cru, step);
    } else {
        nn_vit_set_opt_step(m->vit, step);
    }
}

void traind__model_set_backward_hook(traind_model_t *m, nn_vit_backward_hook_fn fn, void *ctx)
{
    if (!m->is_cru && m->vit != NULL) {
        nn_vit_set_backward_hook(m->vit, fn, ctx);
    }
}

void traind__model_backward(traind_model_t *m)
{
    if (m->is_cru) {
        nn_crunet_backward(m->cru);
    } else {
        nn_vit_backward(m->vit);
    }
}

void traind__model_step(traind_model_t *m, const nn_adamw_cfg_t *opt, float lr)
{
    if (!m->is_cru) {
        nn_vit_adamw_step(m->vit, opt, lr, NULL);
        return;
    }
    /* nn_crunet_adamw_step has no clipping: the same update with the ViT's global-norm clip
     * (torch.nn.utils.clip_grad_norm_: g *= max_norm / (norm + 1e-6)). */
    size_t n = nn_crunet_num_tensors(m->cru);
    float scale = 1.0f;
    if (opt->clip_norm > 0.0f) {
        double s = 0;
        for (size_t i = 0; i < n; i++) {
            nn_tensor_t t;
            if (nn_crunet_tensor(m->cru, i, &t) == 0 && !t.is_buffer) {
                s += nn_sumsq(t.grad, t.numel);
            }
        }
        double norm = sqrt(s);
        if (norm > (double)opt->clip_norm) {
            scale = (float)((double)opt->clip_norm / (norm + 1e-6));
        }
    }
    int64_t step = nn_crunet_opt_step(m->cru) + 1;
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        if (nn_crunet_tensor(m->cru, i, &t) < 0 || t.is_buffer) {
            continue;
        }
        nn_adamw_update(t.data, t.m, t.v, t.grad, t.numel, lr, t.decay ? opt->weight_decay : 0.0f,
                        opt->beta1, opt->beta2, opt->eps, step, scale);
    }
    nn_crunet_set_opt_step(m->cru, step);
}

/* nn_ckpt entries from the model's tensor table (the same as nn_ckpt_vit_entries). */
static int entries(const traind_model_t *m, nn_ckpt_entry_t **out, size_t *n_out)
{
    size_t n = traind__model_num_tensors(m);
    nn_ckpt_entry_t *e = core_calloc(n ? n : 1, sizeof *e);
    if (e == NULL) {
        return CORE_ERR(ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        int rc = traind__model_tensor(m, i, &t);
        if (rc < 0) {
            core_free(e);
            return rc;
        }
        e[i].name = t.name;
        e[i].dtype = t.dtype == NN_DTYPE_F64 ? NN_ST_F64 : NN_ST_F32;
        e[i].rank = t.ndim;
        for (int d = 0; d < t.ndim && d < NN_ST_MAX_RANK; d++) {
            e[i].shape[d] = t.shape[d];
        }
        e[i].data = t.data;
        e[i].exp_avg = t.is_buffer ? NULL : t.m;
        e[i].exp_avg_sq = t.is_buffer ? NULL : t.v;
    }
    *out = e;
    *n_out = n;
    return 0;
}

int traind__model_save(const char *path, const traind_model_t *m, const nn_st_meta_t *meta,
                       size_t n_meta, char *err, size_t errlen)
{
    if (!m->is_cru) {
        return nn_ckpt_vit_save(path, m->vit, meta, n_meta, err, errlen);
    }
    int rc = 0;
    nn_ckpt_entry_t *e = NULL;
    size_t n = 0;
    CORE_TRY(entries(m, &e, &n));
    rc = nn_ckpt_save_with_step(path, e, n, nn_crunet_opt_step(m->cru), meta, n_meta, err,
                                errlen);
fail:
    core_free(e);
    return rc;
}

int traind__model_load(const char *path, traind_model_t *m, unsigned flags, nn_st_file_t **file_out,
                       char *err, size_t errlen)
{
    if (!m->is_cru) {
        return nn_ckpt_vit_load(path, m->vit, flags, file_out, err, errlen);
    }
    int rc = 0;
    nn_ckpt_entry_t *e = NULL;
    size_t n = 0;
    int64_t step = nn_crunet_opt_step(m->cru);
    CORE_TRY(entries(m, &e, &n));
    CORE_TRY(nn_ckpt_load_with_step(path, e, n, flags, &step, file_out, err, errlen));
    nn_crunet_set_opt_step(m->cru, step);
fail:
    core_free(e);
    return rc;
}
