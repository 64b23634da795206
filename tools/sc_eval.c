/* sc-eval: evaluates a SuperClass checkpoint written by sc-traind.
 *   predict  --ckpt C [--vocab V] [-k K] IMAGE...          top-k tokens per image, with scores
 *   zeroshot --ckpt C --store S [--candidates K] [--show N] rank each sample's own caption among
 *            K-1 distractor captions of the store by the mean log-softmax of each caption's label
 *            tokens (SOT, EOT and pad 0 excluded); top-1/top-5 accuracy against chance
 *   tokens   --ckpt C --store S [-k K]                    precision@k and mAP of the predicted
 *            tokens against each sample's label tokens
 * Common: --json, --limit N (samples from the store, default all), --seed X (distractors),
 * --threads N. The model shape comes from the checkpoint's traind.* metadata (a ViT from its
 * width/depth/heads/..., a CRU-Net from its preset name, run with the BN running statistics);
 * images go through the eval transform (shorter side to the model's size, centre crop), as in
 * training's data path. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "nn/blas.h"
#include "nn/ckpt.h"
#include "nn/crunet.h"
#include "nn/vit.h"
#include "pipeline/augment.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"

#define EVAL_BATCH 32

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sc-eval predict  --ckpt C [--vocab V] [-k K] IMAGE...\n"
            "       sc-eval zeroshot --ckpt C --store S [--candidates K] [--show N]\n"
            "       sc-eval tokens   --ckpt C --store S [-k K] [--show N]\n"
            "\n"
            "predict   top-k tokens of each image, decoded, with softmax scores\n"
            "zeroshot  for every sample, rank its own caption among K-1 captions of other\n"
            "          samples by the mean log-softmax of each caption's label tokens (SOT, EOT\n"
            "          and pad excluded); top-1/top-5 accuracy against chance 1/K and 5/K\n"
            "tokens    precision@k and mean average precision of the predicted tokens against\n"
            "          each sample's label tokens\n"
            "\n"
            "options:\n"
            "  --ckpt FILE      checkpoint from sc-traind, ViT or CRU-Net (model from its metadata)\n"
            "  --store DIR      shard store to evaluate on (sc-shard)\n"
            "  --vocab FILE     vocabulary for decoding (default: the one the checkpoint names)\n"
            "  -k K             tokens per image (predict, default 5) / k of precision@k (10)\n"
            "  --candidates K   captions per sample in zeroshot (default 10)\n"
            "  --show N         print N samples: caption next to the predicted tokens\n"
            "  --limit N        evaluate the first N samples of the store (default all)\n"
            "  --seed X         distractor choice (default 0)\n"
            "  --threads N      compute threads (default 0: all cores)\n"
            "  --json           one JSON object on stdout\n"
            "exit status: 0 ok, 1 error, 2 usage\n");
}

typedef struct opts_s {
    const char *cmd, *ckpt, *store, *vocab;
    int k, candidates, show, json, threads;
    unsigned long long limit, seed;
} opts_t;

typedef struct model_s {
    nn_vit_t *m;       /* a ViT checkpoint, or */
    nn_crunet_t *cru;  /* a CRU-Net one (inference with the BN running statistics) */
    int S, V;
    float *images;
    pl_tok_t *tok;
} model_t;

static const char *meta(nn_st_file_t *f, const char *k)
{
    const char *v = nn_st_meta_get(f, k);
    return v != NULL ? v : "";
}

/* A CRU-Net checkpoint of sc-traind: rebuilt from its preset name with the SuperClass head; the
 * weights and buffers (BN running statistics, IDF) are loaded by the model's tensor table. */
static int load_crunet(const opts_t *o, const char *backbone, int S, int V, model_t *md)
{
    nn_crunet_cfg_t cc;
    char err[512] = "";
    nn_ckpt_entry_t *e = NULL;
    int rc = nn_crunet_preset(backbone, S, NN_CRUNET_HEAD_SC, V, EVAL_BATCH, &cc);
    if (rc < 0) {
        fprintf(stderr, "sc-eval: %s: CRU-Net backbone '%s' (image %d, vocab %d): %s\n", o->ckpt,
                backbone, S, V, core_strerror(rc));
        return rc;
    }
    md->S = S;
    md->V = V;
    CORE_TRY(nn_crunet_new(&cc, &md->cru));
    size_t n = nn_crunet_num_tensors(md->cru);
    e = core_calloc(n ? n : 1, sizeof *e);
    CORE_FAIL_IF(e == NULL, CORE_ERR(ENOMEM));
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        CORE_TRY(nn_crunet_tensor(md->cru, i, &t));
        e[i].name = t.name;
        e[i].dtype = t.dtype == NN_DTYPE_F64 ? NN_ST_F64 : NN_ST_F32;
        e[i].rank = t.ndim;
        for (int d = 0; d < t.ndim && d < NN_ST_MAX_RANK; d++) {
            e[i].shape[d] = t.shape[d];
        }
        e[i].data = t.data;
    }
    rc = nn_ckpt_load(o->ckpt, e, n, NN_CKPT_WEIGHTS_ONLY | NN_CKPT_ALLOW_EXTRA, NULL, err,
                      sizeof err);
    if (rc < 0) {
        fprintf(stderr, "sc-eval: %s: %s %s\n", o->ckpt, core_strerror(rc), err);
    }
fail:
    core_free(e);
    return rc;
}

/* Inference on md->images: the logits [EVAL_BATCH, V]. */
static const float *forward(model_t *md)
{
    if (md->cru != NULL) {
        nn_crunet_forward(md->cru, md->images, 0);
        return nn_crunet_logits(md->cru);
    }
    nn_vit_forward(md->m, md->images);
    return nn_vit_logits(md->m);
}

static int load_model(const opts_t *o, model_t *md)
{
    nn_st_file_t *f = NULL;
    char err[512] = "";
    int rc = nn_st_open(o->ckpt, NULL, &f, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "sc-eval: %s: %s %s\n", o->ckpt, core_strerror(rc), err);
        return rc;
    }
    char backbone[128];
    snprintf(backbone, sizeof backbone, "%s", meta(f, "traind.backbone"));
    int is_cru = strcmp(meta(f, "traind.backbone_kind"), "crunet") == 0;
    nn_vit_cfg_t c = {atoi(meta(f, "traind.image_size")), atoi(meta(f, "traind.patch")),
                      atoi(meta(f, "traind.width")),      atoi(meta(f, "traind.depth")),
                      atoi(meta(f, "traind.heads")),      atoi(meta(f, "traind.mlp_hidden")),
                      atoi(meta(f, "traind.vocab_size")), EVAL_BATCH};
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s", o->vocab != NULL ? o->vocab : meta(f, "traind.vocab_path"));
    char vhash[80];
    snprintf(vhash, sizeof vhash, "%s", meta(f, "traind.vocab_hash"));
    nn_st_close(f);
    if (is_cru) {
        CORE_TRY(load_crunet(o, backbone, c.image_size, c.vocab, md));
    } else if (nn_vit_cfg_check(&c) < 0) {
        fprintf(stderr, "sc-eval: %s has no sc-traind model metadata (traind.width ...)\n",
                o->ckpt);
        return CORE_ECONFIG;
    } else {
        md->S = c.image_size;
        md->V = c.vocab;
        CORE_TRY(nn_vit_new(&c, &md->m));
        rc = nn_ckpt_vit_load(o->ckpt, md->m, NN_CKPT_WEIGHTS_ONLY | NN_CKPT_ALLOW_EXTRA, NULL,
                              err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "sc-eval: %s: %s %s\n", o->ckpt, core_strerror(rc), err);
            return rc;
        }
    }
    md->images = core_malloc_aligned(64, (size_t)EVAL_BATCH * 3 * (size_t)md->S * (size_t)md->S *
                                             sizeof(float));
    if (md->images == NULL) {
        return CORE_ERR(ENOMEM);
    }
    if (vpath[0] != '\0') {
        rc = pl_tok_load(vpath, &md->tok);
        if (rc < 0) {
            fprintf(stderr, "sc-eval: vocabulary %s: %s (tokens are shown as ids)\n", vpath,
                    core_strerror(rc));
            md->tok = NULL;
        } else if (vhash[0] != '\0' && strcmp(pl_tok_hash(md->tok), vhash) != 0) {
            fprintf(stderr, "sc-eval: vocabulary %s is not the checkpoint's (hash differs)\n",
                    vpath);
            return CORE_EMISMATCH;
        }
    }
    return 0;
fail:
    return rc;
}

static void free_model(model_t *md)
{
    nn_vit_free(md->m);
    nn_crunet_free(md->cru);
    core_free_aligned(md->images);
    pl_tok_free(md->tok);
}

static int special(const model_t *md, uint32_t t)
{
    return t == 0 || t >= (uint32_t)md->V - 2;
}

/* log-softmax normaliser of one logit row. */
static double lse(const float *z, int V)
{
    float mx = z[0];
    for (int i = 1; i < V; i++) {
        mx = z[i] > mx ? z[i] : mx;
    }
    double s = 0;
    for (int i = 0; i < V; i++) {
        s += exp((double)(z[i] - mx));
    }
    return mx + log(s);
}

static void topk(const model_t *md, const float *z, int k, uint32_t *ids)
{
    for (int j = 0; j < k; j++) {
        ids[j] = UINT32_MAX;
    }
    for (int i = 0; i < md->V; i++) {
        if (special(md, (uint32_t)i)) {
            continue;
        }
        int p = k;
        while (p > 0 && (ids[p - 1] == UINT32_MAX || z[ids[p - 1]] < z[i])) {
            p--;
        }
        if (p < k) {
            memmove(ids + p + 1, ids + p, (size_t)(k - p - 1) * sizeof *ids);
            ids[p] = (uint32_t)i;
        }
    }
}

static void token_text(const model_t *md, uint32_t id, char *out, size_t cap)
{
    size_t n = 0;
    if (md->tok == NULL || pl_tok_decode(md->tok, &id, 1, out, cap, &n) < 0) {
        snprintf(out, cap, "#%u", id);
    }
}

/* ---- samples from a store -------------------------------------------------------------------- */
typedef struct sample_s {
    uint32_t label[PL_TOK_CONTEXT];
    uint32_t n_label;
    char caption[160];
} sample_t;

typedef struct data_s {
    sample_t *s;
    float *logits; /* n x V */
    size_t n;
} data_t;

static int run_store(const opts_t *o, model_t *md, data_t *d)
{
    pl_store_t *st = NULL;
    pl_store_reader_t *rd = NULL;
    pl_img_ctx_t *ctx = NULL;
    uint8_t *u8 = NULL;
    int rc = pl_store_open(o->store, PL_STORE_RDONLY, &st);
    if (rc < 0) {
        fprintf(stderr, "sc-eval: store %s: %s\n", o->store, core_strerror(rc));
        return rc;
    }
    size_t n = (size_t)pl_store_count(st);
    if (o->limit > 0 && o->limit < n) {
        n = (size_t)o->limit;
    }
    d->n = n;
    d->s = core_calloc(n ? n : 1, sizeof *d->s);
    d->logits = core_malloc((n ? n : 1) * (size_t)md->V * sizeof(float));
    u8 = core_malloc((size_t)EVAL_BATCH * (size_t)md->S * (size_t)md->S * 3);
    if (d->s == NULL || d->logits == NULL || u8 == NULL) {
        rc = CORE_ERR(ENOMEM);
        goto fail;
    }
    CORE_TRY(pl_store_reader_open(st, &rd));
    CORE_TRY(pl_img_ctx_new(&ctx));
    pl_aug_t aug;
    pl_aug_defaults(&aug);
    aug.train = 0;
    aug.out_w = aug.out_h = (uint32_t)md->S;
    size_t img = (size_t)md->S * (size_t)md->S * 3;
    for (size_t b0 = 0; b0 < n; b0 += EVAL_BATCH) {
        size_t nb = n - b0 < EVAL_BATCH ? n - b0 : EVAL_BATCH;
        for (size_t j = 0; j < nb; j++) {
            const uint8_t *val;
            size_t len;
            pl_record_t rec;
            sample_t *s = &d->s[b0 + j];
            rc = pl_store_get(rd, b0 + j, &val, &len);
            if (rc == 0) {
                rc = pl_record_decode(val, len, &rec);
            }
            if (rc < 0) {
                fprintf(stderr, "sc-eval: record %zu: %s\n", b0 + j, core_strerror(rc));
                goto fail;
            }
            s->n_label = 0;
            for (uint32_t t = 0; t < rec.n_label; t++) {
                if (!special(md, rec.label[t])) {
                    s->label[s->n_label++] = rec.label[t];
                }
            }
            if (pl_record_caption(&rec, s->caption, sizeof s->caption) < 0) {
                s->caption[0] = '\0';
            }
            pl_img_err_t ie;
            if (pl_img_decode_augment(ctx, rec.image, rec.image_len, NULL, &aug, NULL, u8 + j * img,
                                      img, NULL, &ie) < 0) {
                memset(u8 + j * img, 128, img);
            }
        }
        pl_store_reader_reset(rd);
        for (size_t j = nb; j < EVAL_BATCH; j++) {
            memcpy(u8 + j * img, u8, img); /* pad the last batch */
        }
        nn_vit_images_from_u8(md->images, u8, EVAL_BATCH, md->S, md->S);
        memcpy(d->logits + b0 * (size_t)md->V, forward(md),
               nb * (size_t)md->V * sizeof(float));
    }
    rc = 0;
fail:
    pl_img_ctx_free(ctx);
    pl_store_reader_close(rd);
    pl_store_close(st);
    core_free(u8);
    return rc;
}

static int same_label(const sample_t *a, const sample_t *b)
{
    return a->n_label == b->n_label &&
           memcmp(a->label, b->label, a->n_label * sizeof a->label[0]) == 0;
}

static double caption_score(const float *z, double norm, const sample_t *c)
{
    if (c->n_label == 0) {
        return -INFINITY;
    }
    double s = 0;
    for (uint32_t t = 0; t < c->n_label; t++) {
        s += z[c->label[t]] - norm;
    }
    return s / c->n_label;
}

static void show_samples(const opts_t *o, const model_t *md, const data_t *d, json_t *arr)
{
    for (size_t i = 0; i < d->n && (int)i < o->show; i++) {
        uint32_t ids[5];
        topk(md, d->logits + i * (size_t)md->V, 5, ids);
        char line[512] = "", tt[64];
        json_t *toks = json_array();
        for (int j = 0; j < 5 && ids[j] != UINT32_MAX; j++) {
            token_text(md, ids[j], tt, sizeof tt);
            json_array_append_new(toks, json_string(tt));
            strncat(line, tt, sizeof line - strlen(line) - 3);
            strncat(line, j < 4 ? " | " : "", sizeof line - strlen(line) - 1);
        }
        if (o->json) {
            json_array_append_new(arr, json_pack("{s:s,s:o}", "caption", d->s[i].caption,
                                                 "predicted", toks));
        } else {
            json_decref(toks);
            printf("  %-48.48s -> %s\n", d->s[i].caption, line);
        }
    }
}

static int cmd_zeroshot(const opts_t *o, model_t *md)
{
    data_t d = {0};
    int rc = run_store(o, md, &d);
    if (rc < 0) {
        core_free(d.s);
        core_free(d.logits);
        return rc;
    }
    size_t K = (size_t)o->candidates, eval = 0, top1 = 0, top5 = 0;
    size_t *pick = core_malloc(K * sizeof *pick);
    for (size_t i = 0; i < d.n && pick != NULL; i++) {
        if (d.s[i].n_label == 0) {
            continue;
        }
        /* K-1 distractors: other samples with a different label set, drawn from the sample's own
         * RNG stream (deterministic, independent of the order of evaluation). */
        core_rng_t r;
        core_rng_init(&r, o->seed, i);
        size_t got = 0;
        for (size_t tries = 0; got < K - 1 && tries < 50 * K; tries++) {
            size_t j = (size_t)core_rng_below(&r, d.n);
            int dup = j == i || d.s[j].n_label == 0 || same_label(&d.s[i], &d.s[j]);
            for (size_t q = 0; q < got && !dup; q++) {
                dup = pick[q] == j || same_label(&d.s[pick[q]], &d.s[j]);
            }
            if (!dup) {
                pick[got++] = j;
            }
        }
        if (got < K - 1) {
            continue; /* too few distinct captions in the store */
        }
        const float *z = d.logits + i * (size_t)md->V;
        double norm = lse(z, md->V);
        double own = caption_score(z, norm, &d.s[i]);
        size_t rank = 1;
        for (size_t q = 0; q < got; q++) {
            if (caption_score(z, norm, &d.s[pick[q]]) >= own) {
                rank++; /* ties count against the sample */
            }
        }
        eval++;
        top1 += rank == 1;
        top5 += rank <= 5;
    }
    core_free(pick);
    double a1 = eval ? (double)top1 / (double)eval : 0, a5 = eval ? (double)top5 / (double)eval : 0;
    double c1 = 1.0 / (double)K, c5 = K < 5 ? 1.0 : 5.0 / (double)K;
    json_t *shown = json_array();
    if (!o->json) {
        if (o->show > 0) {
            printf("caption                                          -> predicted tokens\n");
        }
        show_samples(o, md, &d, shown);
        printf("zero-shot over %zu samples, %zu candidates each: top-1 %.1f%% (chance %.1f%%), "
               "top-5 %.1f%% (chance %.1f%%)\n",
               eval, K, 100 * a1, 100 * c1, 100 * a5, 100 * c5);
    } else {
        show_samples(o, md, &d, shown);
        json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:f,s:f,s:f,s:f,s:o}", "command", "zeroshot",
                              "checkpoint", o->ckpt, "store", o->store, "samples", (json_int_t)eval,
                              "candidates", (json_int_t)K, "top1", a1, "top5", a5, "chance_top1",
                              c1, "chance_top5", c5, "shown", shown);
        char *t = json_dumps(j, JSON_COMPACT);
        printf("%s\n", t);
        core_free(t);
        json_decref(j);
        shown = NULL;
    }
    json_decref(shown);
    core_free(d.s);
    core_free(d.logits);
    return 0;
}

static int cmd_tokens(const opts_t *o, model_t *md)
{
    data_t d = {0};
    int rc = run_store(o, md, &d);
    if (rc < 0) {
        core_free(d.s);
        core_free(d.logits);
        return rc;
    }
    int k = o->k > 0 ? o->k : 10;
    uint32_t *ids = core_malloc((size_t)k * sizeof *ids);
    double sum_p = 0, sum_ap = 0;
    size_t eval = 0;
    for (size_t i = 0; i < d.n && ids != NULL; i++) {
        const sample_t *s = &d.s[i];
        if (s->n_label == 0) {
            continue;
        }
        const float *z = d.logits + i * (size_t)md->V;
        topk(md, z, k, ids);
        size_t hit = 0;
        for (int j = 0; j < k; j++) {
            for (uint32_t t = 0; t < s->n_label; t++) {
                hit += ids[j] == s->label[t];
            }
        }
        /* AP: rank of every label token among the non-special vocabulary. */
        double ranks[PL_TOK_CONTEXT];
        for (uint32_t t = 0; t < s->n_label; t++) {
            size_t above = 0;
            float v = z[s->label[t]];
            for (int q = 0; q < md->V; q++) {
                above += !special(md, (uint32_t)q) && z[q] > v;
            }
            ranks[t] = (double)above + 1;
        }
        /* sort ranks ascending (tiny) */
        for (uint32_t a = 1; a < s->n_label; a++) {
            for (uint32_t b = a; b > 0 && ranks[b - 1] > ranks[b]; b--) {
                double tmp = ranks[b];
                ranks[b] = ranks[b - 1];
                ranks[b - 1] = tmp;
            }
        }
        double ap = 0;
        for (uint32_t t = 0; t < s->n_label; t++) {
            ap += (double)(t + 1) / ranks[t];
        }
        sum_ap += ap / s->n_label;
        sum_p += (double)hit / k;
        eval++;
    }
    core_free(ids);
    double p = eval ? sum_p / (double)eval : 0, map = eval ? sum_ap / (double)eval : 0;
    json_t *shown = json_array();
    if (!o->json) {
        show_samples(o, md, &d, shown);
        printf("tokens over %zu samples: precision@%d %.4f, mAP %.4f\n", eval, k, p, map);
    } else {
        show_samples(o, md, &d, shown);
        json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:i,s:f,s:f,s:o}", "command", "tokens",
                              "checkpoint", o->ckpt, "store", o->store, "samples",
                              (json_int_t)eval, "k", k, "precision_at_k", p, "map", map, "shown",
                              shown);
        char *t = json_dumps(j, JSON_COMPACT);
        printf("%s\n", t);
        core_free(t);
        json_decref(j);
        shown = NULL;
    }
    json_decref(shown);
    core_free(d.s);
    core_free(d.logits);
    return 0;
}

static int cmd_predict(const opts_t *o, model_t *md, int n, char **files)
{
    pl_img_ctx_t *ctx = NULL;
    int rc = pl_img_ctx_new(&ctx);
    if (rc < 0) {
        return rc;
    }
    size_t img = (size_t)md->S * (size_t)md->S * 3;
    uint8_t *u8 = core_calloc(EVAL_BATCH, img);
    int k = o->k > 0 ? o->k : 5;
    uint32_t *ids = core_malloc((size_t)k * sizeof *ids);
    json_t *arr = json_array();
    pl_aug_t aug;
    pl_aug_defaults(&aug);
    aug.train = 0;
    aug.out_w = aug.out_h = (uint32_t)md->S;
    for (int i = 0; i < n && u8 != NULL && ids != NULL; i++) {
        FILE *f = fopen(files[i], "rb");
        uint8_t *buf = NULL;
        long len = 0;
        if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 &&
            fseek(f, 0, SEEK_SET) == 0 && (buf = core_malloc((size_t)len)) != NULL &&
            fread(buf, 1, (size_t)len, f) == (size_t)len) {
            pl_img_err_t ie;
            rc = pl_img_decode_augment(ctx, buf, (size_t)len, NULL, &aug, NULL, u8, img, NULL, &ie);
            if (rc < 0) {
                fprintf(stderr, "sc-eval: %s: %s\n", files[i], ie.text);
            }
        } else {
            fprintf(stderr, "sc-eval: %s: cannot read\n", files[i]);
            rc = CORE_ERR(EIO);
        }
        if (f != NULL) {
            fclose(f);
        }
        core_free(buf);
        if (rc < 0) {
            break;
        }
        nn_vit_images_from_u8(md->images, u8, EVAL_BATCH, md->S, md->S);
        const float *z = forward(md);
        double norm = lse(z, md->V);
        topk(md, z, k, ids);
        json_t *toks = json_array();
        if (!o->json) {
            printf("%s:", files[i]);
        }
        for (int j = 0; j < k && ids[j] != UINT32_MAX; j++) {
            char tt[64];
            token_text(md, ids[j], tt, sizeof tt);
            double p = exp((double)z[ids[j]] - norm);
            if (o->json) {
                json_array_append_new(toks, json_pack("{s:i,s:s,s:f}", "id", (int)ids[j], "token",
                                                      tt, "p", p));
            } else {
                printf(" %s (%.3f)", tt, p);
            }
        }
        if (o->json) {
            json_array_append_new(arr, json_pack("{s:s,s:o}", "image", files[i], "tokens", toks));
        } else {
            json_decref(toks);
            printf("\n");
        }
    }
    if (rc == 0 && o->json) {
        char *t = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", t);
        core_free(t);
    }
    json_decref(arr);
    core_free(ids);
    core_free(u8);
    pl_img_ctx_free(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    core_log_init("sc-eval");
    json_set_alloc_funcs(core_malloc, core_free);
    opts_t o = {0};
    o.candidates = 10;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    o.cmd = argv[1];
    char **files = core_calloc((size_t)argc, sizeof *files);
    int nfiles = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            core_free(files);
            return 0;
        } else if (a[0] == '-' && v == NULL) {
            fprintf(stderr, "sc-eval: %s needs a value\n", a);
            core_free(files);
            return 2;
        } else if (strcmp(a, "--ckpt") == 0) {
            o.ckpt = argv[++i];
        } else if (strcmp(a, "--store") == 0) {
            o.store = argv[++i];
        } else if (strcmp(a, "--vocab") == 0) {
            o.vocab = argv[++i];
        } else if (strcmp(a, "-k") == 0) {
            o.k = atoi(argv[++i]);
        } else if (strcmp(a, "--candidates") == 0) {
            o.candidates = atoi(argv[++i]);
        } else if (strcmp(a, "--show") == 0) {
            o.show = atoi(argv[++i]);
        } else if (strcmp(a, "--limit") == 0) {
            o.limit = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--seed") == 0) {
            o.seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--threads") == 0) {
            o.threads = atoi(argv[++i]);
        } else if (a[0] == '-') {
            fprintf(stderr, "sc-eval: unknown option '%s'\n", a);
            core_free(files);
            return 2;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    int is_pred = strcmp(o.cmd, "predict") == 0, is_zs = strcmp(o.cmd, "zeroshot") == 0,
        is_tok = strcmp(o.cmd, "tokens") == 0;
    if ((!is_pred && !is_zs && !is_tok) || o.ckpt == NULL || (is_pred && nfiles == 0) ||
        (!is_pred && (o.store == NULL || nfiles > 0)) || o.candidates < 2 || o.k < 0 ||
        o.k > 1000) {
        usage(stderr);
        core_free(files);
        return 2;
    }
    if (nn_blas_init(o.threads, argv, NULL) < 0) {
        fprintf(stderr, "sc-eval: OpenBLAS sgemm check failed\n");
        core_free(files);
        return 1;
    }
    model_t md = {0};
    int rc = load_model(&o, &md);
    if (rc == 0) {
        rc = is_pred ? cmd_predict(&o, &md, nfiles, files)
             : is_zs ? cmd_zeroshot(&o, &md)
                     : cmd_tokens(&o, &md);
    }
    free_model(&md);
    core_free(files);
    pl_record_thread_cleanup();
    return rc < 0 ? 1 : 0;
}
