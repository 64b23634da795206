/* The SuperClass loss (spec/superclass.md section 2): online-IDF-weighted, L1-normalised sparse
 * multi-hot targets and soft-target softmax cross-entropy, never building a dense B x V target.
 *
 * Labels are CSR: sample i owns ids[off[i] .. off[i+1]-1], sorted, unique, each < V (the unique
 * token ids of its 77-token row, SOT/EOT/pad included, spec 1.9). */
#ifndef NN_LOSS_H
#define NN_LOSS_H

#include <stdint.h>

/* IDF statistics, the model buffers `cap_fq` [1,V] and `num_samples` [1,1] (float64). */
typedef struct nn_idf_s {
    double *cap_fq;       /* [V], borrowed (lives in the model) */
    double *num_samples;  /* [1], borrowed */
    int V;
} nn_idf_t;

/* Checks a label batch: off[0] == 0, non-decreasing, ids strictly increasing per row and < V.
 * Returns 0 or CORE_ECORRUPT. */
int nn_labels_check(const uint32_t *off, const uint32_t *ids, int B, int V);

/* The whole loss step for a batch of B samples, in the spec's order:
 * 1. if use_idf: cap_fq[c] += (float)(count_c / B) (fp32 fraction, fp64 accumulation),
 *    num_samples += 1 (the current batch is counted BEFORE the weights are computed);
 * 2. weights w_c = ln((num_samples + 1/B) / (cap_fq[c] + 1/B)) in fp64, cast to fp32
 *    (use_idf == 0: w_c = 1 and the statistics are left alone);
 * 3. target t_ic = y_ic w_c / max(sum_c' y_ic' w_c', 1e-12);
 * 4. loss = (1/B) sum_i -sum_c t_ic log softmax(z_i)_c, returned in *loss_out;
 * 5. dlogits[B,V] is OVERWRITTEN with dloss/dlogits = (softmax(z_i) sum_c t_ic - t_i) / B
 *    (dlogits may be NULL).
 * counts[V] (uint32, zeroed on entry and exit) and tw[off[B]] are caller scratch; on return tw
 * holds the normalised targets t_ij.
 * Labels must pass nn_labels_check (asserted cheaply). Never fails. */
void nn_sc_loss(float *loss_out, float *dlogits, const float *logits, const uint32_t *off,
                const uint32_t *ids, int B, int V, nn_idf_t *idf, int use_idf, uint32_t *counts,
                float *tw);

/* Steps 2.-5. of nn_sc_loss alone, for one rank of a data-parallel job (spec 2.1 with W ranks):
 * the caller has already added the GLOBAL batch's fraction to idf (cap_fq[c] += (float)DF_c /
 * (float)b_global for the ids present anywhere in the global batch, num_samples += 1). Weights use
 * the smoothing term 1/b_global; the loss and dlogits are the mean over this call's B samples (the
 * caller averages the gradients over the ranks). nn_sc_loss(use_idf = 1) is exactly: add this
 * batch's counts, then this function with b_global = B. idf is read only (NULL when !use_idf).
 * tw[off[B]] is caller scratch. Never fails. */
void nn_sc_loss_targets(float *loss_out, float *dlogits, const float *logits, const uint32_t *off,
                        const uint32_t *ids, int B, int V, const nn_idf_t *idf, int use_idf,
                        int b_global, float *tw);

#endif
