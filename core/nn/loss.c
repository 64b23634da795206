/* The SuperClass loss: online IDF over sparse label sets, L1-normalised soft targets, softmax
 * cross-entropy (spec/superclass.md section 2; contract in nn/loss.h). */
#include "nn/loss.h"

#include <math.h>
#include <string.h>

#include "core/err.h"
#include "internal.h"
#include "nn/kernels.h"

int nn_labels_check(const uint32_t *off, const uint32_t *ids, int B, int V)
{
    if (!off || B < 0 || V <= 0 || off[0] != 0) {
        return CORE_ECORRUPT;
    }
    for (int i = 0; i < B; i++) {
        if (off[i + 1] < off[i]) {
            return CORE_ECORRUPT;
        }
        for (uint32_t j = off[i]; j < off[i + 1]; j++) {
            if (ids[j] >= (uint32_t)V || (j > off[i] && ids[j] <= ids[j - 1])) {
                return CORE_ECORRUPT;
            }
        }
    }
    return 0;
}

void nn_sc_loss(float *loss_out, float *dlogits, const float *logits, const uint32_t *off,
                const uint32_t *ids, int B, int V, nn_idf_t *idf, int use_idf, uint32_t *counts,
                float *tw)
{
    NN_ASSERT(loss_out && logits && off && B > 0 && V > 0 && tw);
    NN_ASSERT(!use_idf || (idf && idf->V == V && idf->cap_fq && idf->num_samples && counts));
    uint32_t nnz = off[B];
    if (use_idf) {
        /* 1. statistics first, with this batch: cap_fq += DF_batch / B (the fraction is formed
         *    in fp32 as PyTorch's labels.sum(0) / b is, then accumulated in fp64) */
        for (uint32_t j = 0; j < nnz; j++) {
            NN_ASSERT(ids[j] < (uint32_t)V);
            counts[ids[j]]++;
        }
        for (uint32_t j = 0; j < nnz; j++) {
            uint32_t c = ids[j];
            if (counts[c]) {
                idf->cap_fq[c] += (double)((float)counts[c] / (float)B);
                counts[c] = 0; /* once per distinct id; also leaves the scratch zeroed */
            }
        }
        *idf->num_samples += 1.0;
    }
    nn_sc_loss_targets(loss_out, dlogits, logits, off, ids, B, V, idf, use_idf, B, tw);
}

void nn_sc_loss_targets(float *loss_out, float *dlogits, const float *logits, const uint32_t *off,
                        const uint32_t *ids, int B, int V, const nn_idf_t *idf, int use_idf,
                        int b_global, float *tw)
{
    NN_ASSERT(loss_out && logits && off && B > 0 && V > 0 && tw && b_global > 0);
    NN_ASSERT(!use_idf || (idf && idf->V == V && idf->cap_fq && idf->num_samples));
    /* 2.-3. weights of the present ids, then L1 normalisation per row */
    double inv_b = 1.0 / (double)b_global;
    for (int i = 0; i < B; i++) {
        float s = 0.0f;
        for (uint32_t j = off[i]; j < off[i + 1]; j++) {
            float w = 1.0f;
            if (use_idf) {
                w = (float)log((*idf->num_samples + inv_b) / (idf->cap_fq[ids[j]] + inv_b));
            }
            tw[j] = w;
            s += w;
        }
        float den = s > 1e-12f ? s : 1e-12f;
        for (uint32_t j = off[i]; j < off[i + 1]; j++) {
            tw[j] = tw[j] / den;
        }
    }
    /* 4.-5. cross-entropy rows (in parallel), mean over the batch, gradient scaled by 1/B */
    if (dlogits) {
        memset(dlogits, 0, sizeof(float) * (size_t)B * (size_t)V);
    }
    double total = nn__soft_xent_sparse_sum(dlogits, logits, off, ids, tw, B, V, 1.0f / (float)B);
    *loss_out = (float)(total / (double)B);
}
