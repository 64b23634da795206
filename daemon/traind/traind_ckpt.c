/* Checkpoint policy of sc-traind: file names, the run state in the metadata, an integrity CRC,
 * retention (last K + every M-th), and resuming from the newest VALID checkpoint.
 *
 * File: <dir>/ckpt-<step, 12 digits>-<seq, 8 digits>.safetensors, written by traind__model_save
 * (temporary file, fsync, rename, directory fsync). safetensors has no checksum of its own, so the
 * metadata carries traind.crc32c over every tensor's bytes (data, then moments) in table order; a
 * file that fails to open, to match the model, or this CRC is reported and the next older one is
 * tried. Metadata keys (all decimal strings unless said):
 *   traind.step, traind.seq, traind.epoch, traind.position, traind.skipped, traind.samples,
 *   traind.seed, traind.total_steps, traind.backbone, traind.image_size, traind.vocab_size,
 *   traind.vocab_hash (hex), traind.vocab_path, traind.crc32c (8 hex digits),
 *   traind.lr_position (the schedule's step index: equal to traind.step), traind.backbone_kind
 *   ("vit" or "crunet"), and for a ViT its shape traind.width, traind.depth, traind.heads,
 *   traind.mlp_hidden, traind.patch (sc-eval builds the ViT from these, a CRU-Net from the preset
 *   name traind.backbone). A data-parallel job (mpirun) adds traind.world (ranks) and
 *   traind.cursors ("e:p,e:p,...", every rank's data cursor in rank order; traind.epoch/position
 *   are rank 0's); a checkpoint without traind.world was written by one process. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/log.h"
#include "nn/ckpt.h"
#include "traind.h"

uint32_t traind__ckpt_crc(const traind_model_t *m)
{
    uint32_t crc = 0;
    size_t n = traind__model_num_tensors(m);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        if (traind__model_tensor(m, i, &t) < 0) {
            continue;
        }
        size_t bytes = t.numel * (t.dtype == NN_DTYPE_F64 ? 8 : 4);
        crc = core_crc32c(crc, t.data, bytes);
        if (t.m != NULL) {
            crc = core_crc32c(crc, t.m, bytes);
            crc = core_crc32c(crc, t.v, bytes);
        }
    }
    return crc;
}

typedef struct ck_s {
    uint64_t step, seq;
    char name[96];
} ck_t;

static int ck_cmp_desc(const void *a, const void *b)
{
    const ck_t *x = a, *y = b;
    if (x->step != y->step) {
        return x->step < y->step ? 1 : -1;
    }
    return x->seq < y->seq ? 1 : (x->seq > y->seq ? -1 : 0);
}

/* Lists ckpt-*.safetensors newest first. *out core_malloc'd. */
static int list_ckpts(const char *dir, ck_t **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    DIR *dp = opendir(dir);
    if (dp == NULL) {
        return errno == ENOENT ? 0 : CORE_ERR(errno);
    }
    size_t n = 0, cap = 0;
    ck_t *v = NULL;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        unsigned long long step, seq;
        char tail[32];
        if (sscanf(e->d_name, "ckpt-%12llu-%8llu%31s", &step, &seq, tail) != 3 ||
            strcmp(tail, ".safetensors") != 0 || strlen(e->d_name) >= sizeof v[0].name) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ck_t *nv = core_realloc(v, cap * sizeof *v);
            if (nv == NULL) {
                core_free(v);
                closedir(dp);
                return CORE_ERR(ENOMEM);
            }
            v = nv;
        }
        v[n].step = step;
        v[n].seq = seq;
        snprintf(v[n].name, sizeof v[n].name, "%s", e->d_name);
        n++;
    }
    closedir(dp);
    if (n > 1) {
        qsort(v, n, sizeof *v, ck_cmp_desc);
    }
    *out = v;
    *n_out = n;
    return 0;
}

static void retention(const traind_cfg_t *cfg)
{
    ck_t *v;
    size_t n;
    if (list_ckpts(cfg->ckpt_dir, &v, &n) < 0) {
        return;
    }
    for (size_t i = (size_t)cfg->ckpt_keep_last; i < n; i++) {
        if (cfg->ckpt_milestone_every > 0 && v[i].seq % cfg->ckpt_milestone_every == 0) {
            continue;
        }
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", cfg->ckpt_dir, v[i].name);
        if (unlink(p) == 0) {
            core_log_info("checkpoint %s removed (keep_last %llu)", v[i].name,
                          (unsigned long long)cfg->ckpt_keep_last);
        }
    }
    core_free(v);
}

int traind__ckpt_save(const traind_cfg_t *cfg, const traind_model_t *m,
                      const traind_meta_t *meta, const traind_state_t *st, char *path_out,
                      size_t path_cap)
{
    if (mkdir(cfg->ckpt_dir, 0750) != 0 && errno != EEXIST) {
        int e = errno;
        core_log_err("checkpoint.dir %s: %s", cfg->ckpt_dir, strerror(e));
        return CORE_ERR(e);
    }
    char v[24][80];
    nn_st_meta_t kv[24];
    size_t k = 0;
#define KV(k_, ...)                                                                               \
    do {                                                                                           \
        snprintf(v[k], sizeof v[k], __VA_ARGS__);                                                  \
        kv[k].key = k_;                                                                            \
        kv[k].value = v[k];                                                                        \
        k++;                                                                                       \
    } while (0)
    KV("traind.step", "%" PRIu64, st->step);
    KV("traind.seq", "%" PRIu64, st->seq);
    KV("traind.epoch", "%" PRIu64, st->epoch);
    KV("traind.position", "%" PRIu64, st->position);
    KV("traind.skipped", "%" PRIu64, st->skipped);
    KV("traind.samples", "%" PRIu64, st->samples);
    KV("traind.lr_position", "%" PRIu64, st->step);
    KV("traind.seed", "%" PRIu64, meta->seed);
    KV("traind.total_steps", "%" PRIu64, meta->total_steps);
    KV("traind.backbone", "%s", meta->backbone);
    KV("traind.image_size", "%d", meta->image_size);
    KV("traind.vocab_size", "%d", meta->vocab_size);
    KV("traind.vocab_hash", "%s", meta->vocab_hash);
    KV("traind.backbone_kind", "%s", meta->is_cru ? "crunet" : "vit");
    if (!meta->is_cru) { /* a CRU-Net is rebuilt from its preset name */
        KV("traind.width", "%d", meta->vit.width);
        KV("traind.depth", "%d", meta->vit.depth);
        KV("traind.heads", "%d", meta->vit.heads);
        KV("traind.mlp_hidden", "%d", meta->vit.mlp_hidden);
        KV("traind.patch", "%d", meta->vit.patch);
    }
    KV("traind.crc32c", "%08x", traind__ckpt_crc(m));
    char *cursors = NULL;
    if (st->world > 1 && st->cursors != NULL) {
        KV("traind.world", "%" PRIu64, st->world);
        size_t cap = (size_t)st->world * 42 + 1, o = 0;
        cursors = core_malloc(cap);
        if (cursors == NULL) {
            return CORE_ERR(ENOMEM);
        }
        cursors[0] = '\0';
        for (uint64_t r = 0; r < st->world; r++) {
            o += (size_t)snprintf(cursors + o, cap - o, "%s%" PRIu64 ":%" PRIu64, r ? "," : "",
                                  st->cursors[2 * r], st->cursors[2 * r + 1]);
        }
        kv[k].key = "traind.cursors";
        kv[k].value = cursors;
        k++;
    }
#undef KV
    kv[k].key = "traind.vocab_path";
    kv[k].value = meta->vocab_path;
    k++;
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt-%012" PRIu64 "-%08" PRIu64 ".safetensors", cfg->ckpt_dir,
             st->step, st->seq);
    char err[512] = "";
    int rc = traind__model_save(path, m, kv, k, err, sizeof err);
    core_free(cursors);
    if (rc < 0) {
        core_log_err("checkpoint %s: %s (%s)", path, core_strerror(rc), err);
        return rc;
    }
    snprintf(path_out, path_cap, "%s", path);
    retention(cfg);
    return 0;
}

static int meta_u64(nn_st_file_t *f, const char *key, uint64_t *out)
{
    const char *s = nn_st_meta_get(f, key);
    if (s == NULL) {
        return CORE_ENOT_FOUND;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s) {
        return CORE_ECORRUPT;
    }
    *out = v;
    return 0;
}

/* "e:p,e:p,..." with exactly `world` pairs -> core_malloc'd [2 * world]. */
static int parse_cursors(const char *s, uint64_t world, uint64_t **out)
{
    if (s == NULL || world > (1u << 24)) {
        return CORE_ECORRUPT;
    }
    uint64_t *c = core_calloc((size_t)world * 2, sizeof *c);
    if (c == NULL) {
        return CORE_ERR(ENOMEM);
    }
    const char *p = s;
    for (uint64_t r = 0; r < world; r++) {
        char *end;
        errno = 0;
        unsigned long long e = strtoull(p, &end, 10);
        if (errno != 0 || end == p || *end != ':') {
            core_free(c);
            return CORE_ECORRUPT;
        }
        p = end + 1;
        unsigned long long pos = strtoull(p, &end, 10);
        if (errno != 0 || end == p || *end != (r + 1 < world ? ',' : '\0')) {
            core_free(c);
            return CORE_ECORRUPT;
        }
        p = end + (r + 1 < world);
        c[2 * r] = e;
        c[2 * r + 1] = pos;
    }
    *out = c;
    return 0;
}

int traind__ckpt_resume(const traind_cfg_t *cfg, traind_model_t *m, const traind_meta_t *meta,
                        traind_state_t *st, char *path_out, size_t path_cap)
{
    ck_t *v;
    size_t n;
    int rc = list_ckpts(cfg->ckpt_dir, &v, &n);
    if (rc < 0) {
        core_log_err("checkpoint.dir %s: %s", cfg->ckpt_dir, core_strerror(rc));
        return rc;
    }
    int found = 0;
    for (size_t i = 0; i < n && !found && rc == 0; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", cfg->ckpt_dir, v[i].name);
        char err[512] = "";
        nn_st_file_t *f = NULL;
        int lr = traind__model_load(path, m, 0, &f, err, sizeof err);
        if (lr < 0) {
            core_log_warn("checkpoint %s is damaged or does not fit this model (%s: %s); "
                          "skipping it",
                          path, core_err_name(lr), err);
            continue;
        }
        const char *hash = nn_st_meta_get(f, "traind.vocab_hash");
        const char *crc = nn_st_meta_get(f, "traind.crc32c");
        char mine[16];
        snprintf(mine, sizeof mine, "%08x", traind__ckpt_crc(m));
        traind_state_t s;
        memset(&s, 0, sizeof s);
        if (crc == NULL || strcmp(crc, mine) != 0 || meta_u64(f, "traind.step", &s.step) < 0 ||
            meta_u64(f, "traind.seq", &s.seq) < 0 || meta_u64(f, "traind.epoch", &s.epoch) < 0 ||
            meta_u64(f, "traind.position", &s.position) < 0 ||
            meta_u64(f, "traind.skipped", &s.skipped) < 0 ||
            meta_u64(f, "traind.samples", &s.samples) < 0) {
            core_log_warn("checkpoint %s is damaged (CRC %s, computed %s, or run state missing); "
                          "skipping it",
                          path, crc != NULL ? crc : "absent", mine);
            nn_st_close(f);
            continue;
        }
        uint64_t seed = 0;
        if (meta_u64(f, "traind.seed", &seed) == 0 && seed != meta->seed) {
            core_log_warn("checkpoint %s: seed %llu, config says %llu; continuing with the "
                          "config's (the data order changes)",
                          path, (unsigned long long)seed, (unsigned long long)meta->seed);
        }
        snprintf(s.vocab_hash, sizeof s.vocab_hash, "%s", hash != NULL ? hash : "");
        s.world = 1;
        if (meta_u64(f, "traind.world", &s.world) == 0 && s.world > 1) {
            if (parse_cursors(nn_st_meta_get(f, "traind.cursors"), s.world, &s.cursors) < 0) {
                core_log_warn("checkpoint %s is damaged (traind.cursors does not list %llu "
                              "cursors); skipping it",
                              path, (unsigned long long)s.world);
                nn_st_close(f);
                continue;
            }
        } else {
            s.world = 1;
        }
        *st = s;
        snprintf(path_out, path_cap, "%s", path);
        found = 1;
        nn_st_close(f);
    }
    core_free(v);
    return rc < 0 ? rc : found;
}

int traind__ckpt_peek_vocab(const traind_cfg_t *cfg, int *vocab_size)
{
    ck_t *v;
    size_t n;
    if (list_ckpts(cfg->ckpt_dir, &v, &n) < 0) {
        return 0;
    }
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", cfg->ckpt_dir, v[i].name);
        nn_st_file_t *f = NULL;
        if (nn_st_open(path, NULL, &f, NULL, 0) < 0) {
            continue;
        }
        uint64_t vs = 0;
        if (meta_u64(f, "traind.vocab_size", &vs) == 0 && vs > 0 && vs < (1u << 24)) {
            *vocab_size = (int)vs;
            found = 1;
        }
        nn_st_close(f);
    }
    core_free(v);
    return found;
}

int traind__ckpt_lock(const traind_cfg_t *cfg, int *fd_out)
{
    if (mkdir(cfg->ckpt_dir, 0750) != 0 && errno != EEXIST) {
        int e = errno;
        core_log_err("checkpoint.dir %s: %s", cfg->ckpt_dir, strerror(e));
        return CORE_ERR(e);
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/.lock", cfg->ckpt_dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        int e = errno;
        core_log_err("%s: %s", p, strerror(e));
        return CORE_ERR(e);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        core_log_err("checkpoint.dir %s is in use by another sc-traind (%s)", cfg->ckpt_dir,
                     strerror(e));
        close(fd);
        return CORE_ERR(e);
    }
    /* Temporary files of a save that a crash interrupted (nn_st_write's "<path>.tmp.XXXXXX"). */
    DIR *dp = opendir(cfg->ckpt_dir);
    if (dp != NULL) {
        struct dirent *e;
        while ((e = readdir(dp)) != NULL) {
            if (strncmp(e->d_name, "ckpt-", 5) == 0 && strstr(e->d_name, ".safetensors.tmp.")) {
                snprintf(p, sizeof p, "%s/%s", cfg->ckpt_dir, e->d_name);
                if (unlink(p) == 0) {
                    core_log_info("removed %s (an interrupted checkpoint write)", p);
                }
            }
        }
        closedir(dp);
    }
    *fd_out = fd;
    return 0;
}
