/* The sc-traind config table. Every key is declared once with its type, range, default and help;
 * the same table parses traind.conf, applies --set overrides and prints the documented example
 * (`sc-traind --print-config > etc/superclass/traind.conf`). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "traind.h"

static const char *const level_choices[] = {"err", "warning", "notice", "info", "debug", NULL};
static const char *const split_choices[] = {"node", "global", NULL};

#define K(sec, name, type, field, mn, mx, def, ch, help)                                           \
    {sec, name, type, offsetof(traind_cfg_t, field), mn, mx, def, ch, help}

static const core_cfg_key_t keys[] = {
    K("data", "socket", CORE_CFG_STRING, data_socket, 0, 107, "/run/superclass/datad.sock", NULL,
      "sc-datad's data socket (batches stream from the data service; the client reconnects on "
      "its own). Ignored when data.store is set. Under mpirun the placeholders {local_rank}, "
      "{rank}, {node} (node index) and {host} (short host name) are replaced per rank, e.g. "
      "/run/superclass/datad-{node}.sock; without them every rank of a node uses the same path "
      "(one sc-datad per node)."),
    K("data", "store", CORE_CFG_STRING, data_store, 0, 4095, "", NULL,
      "Read a shard store directly in-process instead of the socket (tests, single-box runs, "
      "the memory-fed benchmark). Batches are bit-identical to the ones sc-datad would send. "
      "Under mpirun, {local_rank}, {rank}, {node} and {host} are replaced as in data.socket."),
    K("data", "vocab", CORE_CFG_STRING, data_vocab, 0, 4095, "", NULL,
      "Vocabulary file recorded in the checkpoint for decoding (sc-eval). Empty: the path the "
      "store recorded (local store) or none."),
    K("data", "prefetch", CORE_CFG_UINT, data_prefetch, 1, 64, "3", NULL,
      "Batches buffered ahead of the training step (ring slots; also the socket credit window)."),
    K("data", "scale_min", CORE_CFG_DOUBLE, data_scale_min, 0.01, 1, "0.9", NULL,
      "RandomResizedCrop smallest area fraction (spec 4.5: 0.9)."),
    K("data", "scale_max", CORE_CFG_DOUBLE, data_scale_max, 0.01, 1, "1.0", NULL,
      "RandomResizedCrop largest area fraction."),
    K("data", "flip", CORE_CFG_BOOL, data_flip, 0, 0, "false", NULL,
      "Random horizontal flips (off in the spec: captions say left/right)."),

    K("model", "backbone", CORE_CFG_STRING, model_backbone, 1, 63, "ViT-Ti/16", NULL,
      "Backbone preset: ViT-Ti/16, ViT-S/16, ViT-B/16, ViT-L/16 (patch 16, 14 or 8, e.g. "
      "ViT-Ti/8), or the small ones for tests and quick starts: ViT-Micro/P (width 64, depth 2, "
      "2 heads), ViT-Mini/P (width 128, depth 4, 2 heads), P = 4, 8, 14 or 16; or a CRU-Net "
      "preset (docs/CRUNET.md): crunet56, crunet116, crunet56-136x1d, crunet35c (for 32x32), "
      "crunet35c-s2 (for 64x64), crunet24-mini, resnext50-32x4d, resnet50, any of them with "
      "-noshare. The SuperClass head spans the data's vocabulary."),
    K("model", "image_size", CORE_CFG_UINT, model_image_size, 8, 1024, "224", NULL,
      "Input side in pixels (a multiple of the patch size)."),

    K("train", "batch", CORE_CFG_UINT, batch, 1, 4096, "64", NULL, "Images per step."),
    K("train", "steps", CORE_CFG_UINT, steps, 0, 1e15, "10000", NULL,
      "Total optimisation steps (the schedule's length); ignored when train.samples > 0."),
    K("train", "samples", CORE_CFG_UINT, samples, 0, 1e18, "0", NULL,
      "Total samples seen; steps = ceil(samples / batch). 0: use train.steps."),
    K("train", "lr", CORE_CFG_DOUBLE, lr, 0, 10, "0.0005", NULL, "Peak learning rate."),
    K("train", "warmup", CORE_CFG_UINT, warmup, 0, 1e15, "500", NULL,
      "Linear warm-up steps, then cosine decay to 0 at the last step (spec 4.3)."),
    K("train", "beta1", CORE_CFG_DOUBLE, beta1, 0, 0.999999, "0.9", NULL, "AdamW beta1."),
    K("train", "beta2", CORE_CFG_DOUBLE, beta2, 0, 0.999999, "0.98", NULL, "AdamW beta2."),
    K("train", "eps", CORE_CFG_DOUBLE, eps, 1e-12, 1, "1e-6", NULL, "AdamW epsilon."),
    K("train", "weight_decay", CORE_CFG_DOUBLE, wd, 0, 10, "0.2", NULL,
      "Decoupled weight decay (not applied to gains, biases and embeddings)."),
    K("train", "clip_norm", CORE_CFG_DOUBLE, clip, 0, 1e9, "0", NULL,
      "Global gradient-norm clip; 0 disables."),
    K("train", "idf", CORE_CFG_BOOL, idf, 0, 0, "true", NULL,
      "Online IDF weighting of the label tokens (spec 2.3); off: plain soft-target CE."),
    K("train", "seed", CORE_CFG_UINT, seed, 0, 1.8e19, "0", NULL,
      "Seed of the initialisation and of the data order/augmentation."),
    K("train", "threads", CORE_CFG_UINT, threads, 0, 1024, "0", NULL,
      "Compute threads (OpenBLAS and the kernels' pool); 0: one per core. Fix it for bit-exact "
      "resume: results depend on the thread count."),
    K("train", "max_nonfinite", CORE_CFG_UINT, max_nonfinite, 1, 1000000, "5", NULL,
      "A step with a non-finite loss or gradient is skipped and counted; this many in a row "
      "stop the run with an error (the last good checkpoint stays)."),

    K("checkpoint", "dir", CORE_CFG_STRING, ckpt_dir, 1, 4000, "/var/lib/superclass/traind", NULL,
      "Checkpoint directory: ckpt-<step>-<seq>.safetensors, written atomically."),
    K("checkpoint", "every_steps", CORE_CFG_UINT, ckpt_every_steps, 0, 1e15, "1000", NULL,
      "Checkpoint every this many steps (0: off)."),
    K("checkpoint", "every_minutes", CORE_CFG_DOUBLE, ckpt_every_minutes, 0, 1e6, "30", NULL,
      "... and/or when this many minutes passed since the last one (0: off)."),
    K("checkpoint", "keep_last", CORE_CFG_UINT, ckpt_keep_last, 1, 1000000, "3", NULL,
      "Keep the newest K checkpoints ..."),
    K("checkpoint", "milestone_every", CORE_CFG_UINT, ckpt_milestone_every, 0, 1000000, "10",
      NULL, "... plus every M-th checkpoint of the run forever (0: none)."),
    K("checkpoint", "resume", CORE_CFG_BOOL, ckpt_resume, 0, 0, "true", NULL,
      "Resume from the newest valid checkpoint in the directory (damaged ones are skipped)."),

    K("log", "metrics", CORE_CFG_STRING, metrics_path, 0, 4095, "", NULL,
      "JSONL metrics log (step, loss, lr, images/s, data-wait fraction, gradient norm); empty: "
      "none."),
    K("log", "prometheus", CORE_CFG_STRING, prom_path, 0, 4095, "", NULL,
      "Prometheus textfile (node_exporter textfile collector), replaced atomically; empty: none."),
    K("log", "control", CORE_CFG_STRING, control_socket, 0, 107,
      "/run/superclass/traind-ctl.sock", NULL,
      "Control socket (JSON lines, as sc-datad's): `sc-ctl --socket PATH status`; empty: none."),
    K("log", "every", CORE_CFG_UINT, log_every, 1, 1000000, "20", NULL,
      "Log, metrics, textfile and systemd STATUS every this many steps."),
    K("log", "level", CORE_CFG_ENUM, log_level, 0, 0, "info", level_choices, "Log level."),

    K("debug", "nonfinite_at", CORE_CFG_STRING, debug_nonfinite, 0, 255, "", NULL,
      "Test hook: 'STEP:COUNT' poisons the inputs of COUNT steps from STEP with NaN."),
    K("debug", "step_sleep_ms", CORE_CFG_DOUBLE, debug_step_sleep_ms, 0, 1e6, "0", NULL,
      "Test hook: sleep this long after each step (to kill a run mid-way)."),
    K("debug", "memory_fed", CORE_CFG_BOOL, debug_memory_fed, 0, 0, "false", NULL,
      "Benchmark: fill the batch ring once, then replay those batches from memory forever (the "
      "trainer's speed without any data path; the cursor stops advancing)."),

    K("dist", "bucket_mb", CORE_CFG_DOUBLE, dist_bucket_mb, 0.001, 4096, "25", NULL,
      "mpirun only: gradient all-reduce bucket size in MB (buckets of whole tensors, last layers "
      "first)."),
    K("dist", "overlap", CORE_CFG_BOOL, dist_overlap, 0, 0, "true", NULL,
      "mpirun only: start each bucket's MPI_Iallreduce as soon as the backward pass has finished "
      "its layers (ViT; a CRU-Net reduces after the backward). Off: all buckets after it."),
    K("dist", "data_split", CORE_CFG_ENUM, dist_data_split, 0, 0, "node", split_choices,
      "mpirun only: how the ranks split an epoch. node: each node's ranks split their own "
      "sc-datad's (or store's) epoch, HELLO rank/world = local rank/ranks on the node (one "
      "sc-datad per node with its own shards); global: HELLO rank/world = MPI rank/size (every "
      "rank reads the same store or service). Identical on one node."),
};

const core_cfg_table_t traind_cfg_table = {keys, sizeof keys / sizeof keys[0]};

int traind__cfg_init(traind_cfg_t *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    return core_cfg_defaults(&traind_cfg_table, c, err, errlen);
}

int traind__cfg_finish(traind_cfg_t *c, char *err, size_t errlen)
{
    if (c->data_store[0] == '\0' && c->data_socket[0] == '\0') {
        snprintf(err, errlen, "set data.socket or data.store");
        return CORE_ECONFIG;
    }
    if (c->data_scale_min > c->data_scale_max) {
        snprintf(err, errlen, "data.scale_min > data.scale_max");
        return CORE_ECONFIG;
    }
    if (traind__cfg_total_steps(c) == 0) {
        snprintf(err, errlen, "train.steps (or train.samples) must be > 0");
        return CORE_ECONFIG;
    }
    nn_vit_cfg_t vc;
    nn_crunet_cfg_t cc;
    int is_cru = 0;
    int rc = traind__model_cfg(c->model_backbone, (int)c->model_image_size, 512, (int)c->batch,
                               &is_cru, &vc, &cc);
    if (rc < 0) {
        snprintf(err, errlen, "model.backbone '%s' / image_size %llu: %s", c->model_backbone,
                 (unsigned long long)c->model_image_size,
                 rc == CORE_ENOT_FOUND ? "unknown preset"
                 : is_cru              ? "image size too small for this CRU-Net"
                                       : "image size not a multiple of the patch");
        return CORE_ECONFIG;
    }
    if (c->debug_nonfinite[0] != '\0') {
        unsigned long long a, b;
        if (sscanf(c->debug_nonfinite, "%llu:%llu", &a, &b) != 2) {
            snprintf(err, errlen, "debug.nonfinite_at: '%s' is not STEP:COUNT", c->debug_nonfinite);
            return CORE_ECONFIG;
        }
    }
    return 0;
}

void traind__cfg_free(traind_cfg_t *c)
{
    core_cfg_free(&traind_cfg_table, c);
}

uint64_t traind__cfg_total_steps(const traind_cfg_t *c)
{
    if (c->samples > 0) {
        return (c->samples + c->batch - 1) / c->batch;
    }
    return c->steps;
}

int traind__backbone(const char *name, int image_size, int vocab, int batch, nn_vit_cfg_t *out)
{
    static const struct {
        const char *prefix;
        int width, depth, heads;
    } small[] = {{"ViT-Micro/", 64, 2, 2}, {"ViT-Mini/", 128, 4, 2}};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        size_t n = strlen(small[i].prefix);
        if (strncmp(name, small[i].prefix, n) == 0) {
            int p = 0;
            char tail = 0;
            if (sscanf(name + n, "%d%c", &p, &tail) != 1 || (p != 4 && p != 8 && p != 14 && p != 16)) {
                return CORE_ENOT_FOUND;
            }
            nn_vit_cfg_t c = {image_size, p, small[i].width, small[i].depth, small[i].heads,
                              4 * small[i].width, vocab, batch};
            if (nn_vit_cfg_check(&c) < 0) {
                return CORE_ECONFIG;
            }
            *out = c;
            return 0;
        }
    }
    return nn_vit_preset(name, image_size, vocab, batch, out);
}
