/* Training checkpoints as safetensors files (readable by PyTorch / Hugging Face tooling).
 *
 * A checkpoint holds, under OpenCLIP's state_dict names:
 *   <name>                        every parameter (F32) and buffer (cap_fq, num_samples: F64)
 *   optimizer.exp_avg.<name>      AdamW first moment of each parameter (same dtype and shape)
 *   optimizer.exp_avg_sq.<name>   AdamW second moment
 * and in "__metadata__" the key "format" = NN_CKPT_FORMAT, "format_version" = NN_CKPT_VERSION,
 * plus whatever opaque key/value strings the caller passes (config JSON, step, schedule position,
 * RNG state, data cursor ...). Files are written atomically (temp file, fsync, rename, directory
 * fsync), so a crash leaves either the old or the new file, never a torn one.
 *
 * The model side is described by an array of entries, one per tensor, which the model produces
 * from its tensor table (for the ViT: nn_ckpt_vit_entries below, built on nn_vit_tensor()).
 *
 * Thread safety: no shared state; a save must not run concurrently with writes to the tensors it
 * reads, nor a load with any use of the tensors it fills. */
#ifndef NN_CKPT_H
#define NN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "nn/safetensors.h"
#include "nn/vit.h"

#define NN_CKPT_FORMAT "superclass-ckpt"
#define NN_CKPT_VERSION 1
#define NN_CKPT_PREFIX_M "optimizer.exp_avg."
#define NN_CKPT_PREFIX_V "optimizer.exp_avg_sq."

/* One model tensor. All pointers are borrowed for the duration of a call. `data`, `exp_avg` and
 * `exp_avg_sq` each hold numel(shape) elements of `dtype`; the moments are NULL for tensors
 * without optimizer state (buffers). */
typedef struct {
    const char *name;
    nn_st_dtype_t dtype;
    int rank;
    int64_t shape[NN_ST_MAX_RANK];
    void *data;
    void *exp_avg;
    void *exp_avg_sq;
} nn_ckpt_entry_t;

/* Writes `path` atomically with every entry, its moments (where non-NULL) and the metadata.
 * `meta` keys must not be "format" or "format_version" (reserved) and must be unique. Returns 0,
 * CORE_ECONFIG (a bad entry or metadata key, message in err), CORE_ETOO_LARGE or -errno. */
int nn_ckpt_save(const char *path, const nn_ckpt_entry_t *entries, size_t n,
                 const nn_st_meta_t *meta, size_t n_meta, char *err, size_t errlen);

/* Load flags. */
#define NN_CKPT_WEIGHTS_ONLY 1u /* ignore optimizer.* (a file from `sc-ckpt export` or PyTorch) */
#define NN_CKPT_ALLOW_EXTRA 2u  /* tensors in the file that no entry asks for are not an error */

/* Opens `path` and fills every entry (and its moments unless NN_CKPT_WEIGHTS_ONLY) from it. A
 * name is looked up as is and then, for checkpoints of a DDP-wrapped PyTorch model, with a
 * "module." prefix. EVERY name, dtype and shape is checked before anything is copied, so on
 * failure the entries are untouched. Returns 0 or
 *   CORE_ENOT_FOUND       a tensor (or a moment of a parameter) is missing,
 *   CORE_EDTYPE_MISMATCH  a tensor has another dtype,
 *   CORE_ESHAPE_MISMATCH  a tensor has another shape,
 *   CORE_EMISMATCH        the file holds a tensor no entry asks for (unless NN_CKPT_ALLOW_EXTRA),
 *   CORE_EBAD_MAGIC       the metadata names another format,
 *   CORE_EBAD_VERSION     a newer format version,
 *   or any nn_st_open error;
 * the message in `err` names the offending tensor. If `file_out` is not NULL it receives the open
 * file on success (read the metadata with nn_st_meta_get; release with nn_st_close), else the file
 * is closed before returning. */
int nn_ckpt_load(const char *path, const nn_ckpt_entry_t *entries, size_t n, unsigned flags,
                 nn_st_file_t **file_out, char *err, size_t errlen);

/* Checks `f` (already open) against the entries with the same rules as nn_ckpt_load, without
 * copying anything. */
int nn_ckpt_check(const nn_st_file_t *f, const nn_ckpt_entry_t *entries, size_t n, unsigned flags,
                  char *err, size_t errlen);

/* ---- the ViT (nn/vit.h) ---------------------------------------------------------------------- */

/* Metadata key holding the AdamW step counter (decimal), written and restored by the ViT helpers:
 * AdamW's bias correction depends on it, so a resumed run needs it to continue exactly. */
#define NN_CKPT_META_OPT_STEP "optimizer.step"

/* Entries for every tensor of `m` (parameters with their moments, then cap_fq and num_samples as
 * F64), pointing into the model's arenas. *out is core_malloc'd (free with core_free); the names
 * and pointers are borrowed from the model. Returns 0 or CORE_ERR(ENOMEM). */
int nn_ckpt_vit_entries(const nn_vit_t *m, nn_ckpt_entry_t **out, size_t *n_out);

/* Saves entries plus the caller's metadata, with the AdamW step counter under
 * NN_CKPT_META_OPT_STEP (a reserved key: CORE_ECONFIG when the caller passes it). Works for any
 * model that can list its entries. Errors as nn_ckpt_save. */
int nn_ckpt_save_with_step(const char *path, const nn_ckpt_entry_t *e, size_t n,
                           int64_t opt_step, const nn_st_meta_t *meta, size_t n_meta, char *err,
                           size_t errlen);

/* Loads `path` into the entries with nn_ckpt_load's checks and flags. Unless
 * NN_CKPT_WEIGHTS_ONLY, the file must hold NN_CKPT_META_OPT_STEP (else CORE_ENOT_FOUND or
 * CORE_ECORRUPT, nothing touched) and *opt_step receives it; with NN_CKPT_WEIGHTS_ONLY *opt_step
 * is left as it is. file_out as in nn_ckpt_load. */
int nn_ckpt_load_with_step(const char *path, const nn_ckpt_entry_t *e, size_t n, unsigned flags,
                           int64_t *opt_step, nn_st_file_t **file_out, char *err, size_t errlen);

/* Saves the whole training state of `m` (weights, moments, IDF buffers, the AdamW step under
 * NN_CKPT_META_OPT_STEP) plus the caller's metadata (config, schedule position, RNG state, data
 * cursor ...; the key NN_CKPT_META_OPT_STEP is reserved as well). Errors as nn_ckpt_save. */
int nn_ckpt_vit_save(const char *path, const nn_vit_t *m, const nn_st_meta_t *meta, size_t n_meta,
                     char *err, size_t errlen);

/* Loads `path` into `m` with nn_ckpt_load's checks and flags. Unless NN_CKPT_WEIGHTS_ONLY, the
 * file must hold NN_CKPT_META_OPT_STEP (else CORE_ENOT_FOUND, model untouched) and the AdamW step
 * is restored; with NN_CKPT_WEIGHTS_ONLY the moments and the step are left as they are. file_out
 * as in nn_ckpt_load. */
int nn_ckpt_vit_load(const char *path, nn_vit_t *m, unsigned flags, nn_st_file_t **file_out,
                     char *err, size_t errlen);

#endif
