/* sc-traind internals: the config struct, the data source, checkpoint policy, observability.
 * One process trains one model; the training thread owns the model; a data thread fills a small
 * ring of batch slots; a control thread answers the control socket. Cross-file symbols carry the
 * traind__ prefix. */
#ifndef TRAIND_H
#define TRAIND_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cfg.h"
#include "nn/ckpt.h"
#include "nn/crunet.h"
#include "nn/vit.h"

/* ---- config (traind_cfg.c) ------------------------------------------------------------------ */
typedef struct traind_cfg_s {
    /* [data] */
    char *data_socket;
    char *data_store;
    char *data_vocab;
    uint64_t data_prefetch;
    double data_scale_min, data_scale_max;
    int data_flip;
    /* [model] */
    char *model_backbone;
    uint64_t model_image_size;
    /* [train] */
    uint64_t batch;
    uint64_t steps;
    uint64_t samples;
    double lr;
    uint64_t warmup;
    double beta1, beta2, eps, wd, clip;
    int idf;
    uint64_t seed;
    uint64_t threads;
    uint64_t max_nonfinite;
    /* [checkpoint] */
    char *ckpt_dir;
    uint64_t ckpt_every_steps;
    double ckpt_every_minutes;
    uint64_t ckpt_keep_last;
    uint64_t ckpt_milestone_every;
    int ckpt_resume;
    /* [log] */
    char *metrics_path;
    char *prom_path;
    char *control_socket;
    uint64_t log_every;
    int log_level;
    /* [debug] */
    char *debug_nonfinite;
    double debug_step_sleep_ms;
    int debug_memory_fed;
} traind_cfg_t;

extern const core_cfg_table_t traind_cfg_table;
int traind__cfg_init(traind_cfg_t *c, char *err, size_t errlen);
/* Cross-key checks after loading (exactly one data source, ...). */
int traind__cfg_finish(traind_cfg_t *c, char *err, size_t errlen);
void traind__cfg_free(traind_cfg_t *c);
/* The model config of a backbone name: nn_vit_preset's ViT presets plus ViT-Micro/P and
 * ViT-Mini/P. Returns 0, CORE_ENOT_FOUND or CORE_ECONFIG. */
int traind__backbone(const char *name, int image_size, int vocab, int batch, nn_vit_cfg_t *out);
/* Total optimisation steps from steps/samples. */
uint64_t traind__cfg_total_steps(const traind_cfg_t *c);

/* ---- backbone (traind_model.c) --------------------------------------------------------------- */
/* A ViT or a CRU-Net (SuperClass head); exactly one pointer is set once built. Used by the
 * training thread only. */
typedef struct traind_model_s {
    int is_cru;
    nn_vit_t *vit;
    nn_crunet_t *cru;
    nn_vit_cfg_t vc; /* ViT only (its shape goes into the checkpoint metadata) */
} traind_model_t;

/* The config of a backbone name: a CRU-Net preset (nn_crunet_preset, *is_cru = 1, *cc) or a ViT
 * (traind__backbone, *is_cru = 0, *vc). Returns 0, CORE_ENOT_FOUND or CORE_ECONFIG. */
int traind__model_cfg(const char *name, int image_size, int vocab, int batch, int *is_cru,
                      nn_vit_cfg_t *vc, nn_crunet_cfg_t *cc);
/* Builds the model (parameters zero). Errors as traind__model_cfg plus CORE_ERR(ENOMEM); on
 * error nothing is held. */
int traind__model_new(const char *name, int image_size, int vocab, int batch, traind_model_t *out);
void traind__model_free(traind_model_t *m); /* idempotent */
int traind__model_ok(const traind_model_t *m); /* 1 when built */
void traind__model_init(traind_model_t *m, uint64_t seed);
size_t traind__model_num_tensors(const traind_model_t *m);
int traind__model_tensor(const traind_model_t *m, size_t i, nn_tensor_t *t);
size_t traind__model_num_params(const traind_model_t *m);
/* Zeroes the gradients, runs the training forward (CRU-Net: batch statistics, running statistics
 * updated) and the SuperClass loss (writes dlogits, updates the IDF buffers). Returns the loss
 * function's code (CORE_ECORRUPT: bad labels). */
int traind__model_forward_loss(traind_model_t *m, const float *images, const uint32_t *off,
                               const uint32_t *ids, int use_idf, float *loss);
void traind__model_backward(traind_model_t *m);
/* AdamW step (clip_norm honoured for both kinds); increments the optimiser step. */
void traind__model_step(traind_model_t *m, const nn_adamw_cfg_t *opt, float lr);
/* nn_ckpt_vit_save / nn_ckpt_vit_load for either kind (same file layout, the optimiser step under
 * NN_CKPT_META_OPT_STEP). */
int traind__model_save(const char *path, const traind_model_t *m, const nn_st_meta_t *meta,
                       size_t n_meta, char *err, size_t errlen);
int traind__model_load(const char *path, traind_model_t *m, unsigned flags, nn_st_file_t **file_out,
                       char *err, size_t errlen);

/* ---- data source (traind_data.c) ------------------------------------------------------------ */
typedef struct traind_slot_s {
    uint8_t *images; /* B*H*W*3 */
    uint32_t *off;   /* B+1 */
    uint32_t *ids;   /* nnz, capacity B*77 */
    uint32_t nnz;
    uint64_t epoch, position; /* cursor AFTER this batch */
} traind_slot_t;

typedef struct traind_data_s traind_data_t;

typedef struct traind_data_info_s {
    char vocab_hash[65];
    uint32_t vocab_size;
    uint64_t records;
    char vocab_path[4096]; /* data.vocab or the store's recorded path; "" unknown */
} traind_data_info_t;

/* Opens the source (socket or local store) starting at cursor (epoch, position) and starts the
 * data thread. Fills *info. */
int traind__data_open(const traind_cfg_t *cfg, uint64_t epoch, uint64_t position,
                      traind_data_info_t *info, traind_data_t **out);
/* Peeks at the vocabulary without starting anything (local store only; socket: handshake). */
/* Blocks for the next batch; *slot is valid until traind__data_release. Returns 0, CORE_ECLOSED
 * after traind__data_stop, or the data thread's error. */
int traind__data_next(traind_data_t *d, traind_slot_t **slot);
void traind__data_release(traind_data_t *d);
/* Makes traind__data_next return CORE_ECLOSED (any thread, not a signal handler). */
void traind__data_stop(traind_data_t *d);
void traind__data_close(traind_data_t *d);
uint64_t traind__data_reconnects(traind_data_t *d);

/* ---- checkpoints (traind_ckpt.c) ------------------------------------------------------------ */
typedef struct traind_state_s {
    uint64_t step;     /* training iterations done (batches consumed) */
    uint64_t seq;      /* checkpoints written by the run so far */
    uint64_t epoch, position;
    uint64_t skipped;  /* non-finite steps skipped in total */
    uint64_t samples;
    char vocab_hash[65]; /* resume: the checkpoint's */
} traind_state_t;

typedef struct traind_meta_s {
    const char *backbone;
    int is_cru;       /* recorded as traind.backbone_kind = "crunet" or "vit" */
    nn_vit_cfg_t vit; /* ViT: recorded as traind.width/depth/heads/mlp_hidden/patch for sc-eval */
    int image_size;
    int vocab_size;
    const char *vocab_hash;
    const char *vocab_path;
    uint64_t seed;
    uint64_t total_steps;
} traind_meta_t;

/* Creates the directory, takes an exclusive flock on <dir>/.lock (one trainer per directory:
 * -EWOULDBLOCK otherwise) and removes temporary files of interrupted saves. *fd_out holds the
 * lock until closed. */
int traind__ckpt_lock(const traind_cfg_t *cfg, int *fd_out);
/* Writes <dir>/ckpt-<step>-<seq>.safetensors atomically, then applies retention. */
int traind__ckpt_save(const traind_cfg_t *cfg, const traind_model_t *m,
                      const traind_meta_t *meta, const traind_state_t *st, char *path_out, size_t path_cap);
/* Loads the newest valid checkpoint of the directory into m (damaged ones, and ones that do not
 * fit the model, are reported and skipped). Returns 1 when one was loaded (st filled, including the
 * checkpoint's vocabulary hash for the caller to check), 0 when none is valid, <0 on I/O errors.
 * After 0 the model's contents are unspecified (re-initialise it). */
int traind__ckpt_resume(const traind_cfg_t *cfg, traind_model_t *m, const traind_meta_t *meta,
                        traind_state_t *st, char *path_out, size_t path_cap);
/* CRC32C over every tensor's data and moments (the integrity check stored in the metadata). */
uint32_t traind__ckpt_crc(const traind_model_t *m);
/* The vocabulary size recorded in the newest readable checkpoint (to build the model before the
 * data source is opened at the checkpoint's cursor). Returns 1 and *vocab_size, or 0. */
int traind__ckpt_peek_vocab(const traind_cfg_t *cfg, int *vocab_size);

/* ---- observability (traind_obs.c) ----------------------------------------------------------- */
typedef struct traind_status_s {
    pthread_mutex_t mu;
    uint64_t step, total_steps, skipped, epoch, position, ckpts_written, reconnects;
    double loss, lr, img_s, data_wait, grad_norm, started_s;
    char last_ckpt[4224];
    char state[32];
    char backbone[64];
} traind_status_t;

typedef struct traind_ctl_s traind_ctl_t;
/* Control socket thread: answers {"cmd":"status"}, {"cmd":"checkpoint"}, {"cmd":"stop"}. */
int traind__ctl_start(const char *path, traind_status_t *st, volatile sig_atomic_t *ckpt_flag,
                      volatile sig_atomic_t *stop_flag, traind_ctl_t **out);
void traind__ctl_stop(traind_ctl_t *c);

int traind__metrics_line(const char *path, const traind_status_t *st, double t);
int traind__prom_write(const char *path, const traind_status_t *st);

#endif
