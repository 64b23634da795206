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
#include "nn/loss.h"
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
    /* [dist] (only under mpirun) */
    double dist_bucket_mb;
    int dist_overlap;
    int dist_data_split; /* 0 node: local rank/size in HELLO; 1 global: rank/world */
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
    int batch, vocab;
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
/* Pieces of traind__model_forward_loss for the data-parallel loss (traind_dist.c): zero_grad +
 * training forward; the logits [batch, vocab] and their gradient; the IDF buffers. */
void traind__model_forward(traind_model_t *m, const float *images);
const float *traind__model_logits(const traind_model_t *m);
float *traind__model_dlogits(traind_model_t *m);
int traind__model_idf(const traind_model_t *m, nn_idf_t *idf); /* 0 or CORE_ENOT_FOUND */
int64_t traind__model_opt_step(const traind_model_t *m);
void traind__model_set_opt_step(traind_model_t *m, int64_t step);
/* ViT: nn_vit_set_backward_hook; CRU-Net: no hook (ignored). */
void traind__model_set_backward_hook(traind_model_t *m, nn_vit_backward_hook_fn fn, void *ctx);
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
 * data thread. rank/world: this trainer's slice of every epoch (HELLO rank/world; 0/1 for one
 * process). Fills *info. */
int traind__data_open(const traind_cfg_t *cfg, uint32_t rank, uint32_t world, uint64_t epoch,
                      uint64_t position, traind_data_info_t *info, traind_data_t **out);
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
    /* Data-parallel jobs: the number of ranks and every rank's cursor (epoch, position) pairs,
     * world * 2 values, core_malloc'd (NULL: one process, the cursor above). Checkpoint metadata
     * traind.world and traind.cursors ("e:p,e:p,..."); a checkpoint without them has world 1. */
    uint64_t world;
    uint64_t *cursors;
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

/* ---- data-parallel training over MPI (traind_dist.c) ----------------------------------------- */
enum { TRAIND_DIST_BAD = 0, TRAIND_DIST_STOP, TRAIND_DIST_CKPT, TRAIND_DIST_DUE, TRAIND_DIST_NFLAGS };

typedef struct traind_dist_s {
    int on;                        /* MPI initialised (started by mpirun) */
    int rank, world;               /* MPI_COMM_WORLD; 0 and 1 without MPI */
    int local_rank, local_world;   /* ranks on this node (MPI_COMM_TYPE_SHARED) */
    int node, nodes;               /* this node's index, node count */
    char host[64];
    int failed;                    /* an MPI call in the backward hook failed */
    uint32_t *counts;              /* [vocab + NFLAGS] loss scratch */
    float *tw;
    double t_idf, t_hook, t_wait;  /* seconds in the IDF/flags reduce, the hook, the final wait */
} traind_dist_t;

typedef struct traind_reducer_s traind_reducer_t;

/* 1 when started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK set). */
int traind__dist_launched(void);
/* MPI_Init_thread (FUNNELED) only when launched by mpirun; fills rank, world, local rank, node.
 * Without a launcher: rank 0 of 1, nothing initialised. Returns 0 or CORE_ESTATE. */
int traind__dist_init(int *argc, char ***argv, traind_dist_t *d);
void traind__dist_finalize(traind_dist_t *d);
void traind__dist_abort(traind_dist_t *d, int code); /* MPI_Abort when on; else returns */
/* Replaces {local_rank}, {rank}, {node} and {host} in tmpl. 0 or CORE_ETOO_LARGE. */
int traind__dist_expand(const traind_dist_t *d, const char *tmpl, char *out, size_t cap);
/* Collectives on MPI_COMM_WORLD (no-ops for one process). 0 or CORE_ESTATE (logged). */
int traind__dist_bcast(const traind_dist_t *d, void *buf, size_t bytes); /* from rank 0 */
int traind__dist_sum_u32(const traind_dist_t *d, uint32_t *buf, size_t n);
int traind__dist_sum_f64(const traind_dist_t *d, double *buf, size_t n);
int traind__dist_any(const traind_dist_t *d, int flag, int *any);
int traind__dist_gather_u64(const traind_dist_t *d, const uint64_t *mine, size_t n, uint64_t *all);
int traind__dist_allgather_u32(const traind_dist_t *d, uint32_t mine, uint32_t *all);
/* Rank 0's tensors, moments, buffers and AdamW step to every rank, then traind__dist_check_same. */
int traind__dist_bcast_model(const traind_dist_t *d, traind_model_t *m);
/* Every rank's traind__ckpt_crc must equal rank 0's: CORE_EMISMATCH (logged) otherwise. */
int traind__dist_check_same(const traind_dist_t *d, const traind_model_t *m, const char *when);
/* The loss step of one rank after traind__model_forward: checks the labels, all-reduces the
 * batch's label counts with flags_in (summed in place: a flag is set when any rank set it), adds
 * the global fraction to the IDF statistics, writes dlogits and *loss_out (this rank's mean).
 * Returns 0, CORE_ECORRUPT (some rank had bad labels; nothing changed anywhere) or an MPI error. */
int traind__dist_loss(traind_dist_t *d, traind_model_t *m, const uint32_t *off,
                      const uint32_t *ids, int use_idf, uint32_t flags_in[TRAIND_DIST_NFLAGS],
                      float *loss_out);
void traind__dist_free_scratch(traind_dist_t *d);
/* Gradient buckets of about bucket_mb MB (NULL *out for one rank). overlap: ViT buckets start
 * from the backward hook as soon as their layers are done. */
int traind__dist_reducer_new(traind_dist_t *d, traind_model_t *m, double bucket_mb, int overlap,
                             traind_reducer_t **out);
void traind__dist_reducer_begin(traind_reducer_t *r);  /* before each backward */
int traind__dist_reducer_finish(traind_reducer_t *r);  /* after it: waits, averages */
void traind__dist_reducer_free(traind_reducer_t *r);

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
