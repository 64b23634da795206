/* Checkpoint I/O (nn/ckpt.h): round trip of weights, AdamW moments, F64 buffers and metadata;
 * every mismatch class rejected with the offending tensor named and the destination untouched;
 * weights-only and DDP "module." loads; reserved metadata; format/version checks. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/adamw.h"
#include "nn/ckpt.h"
#include "nn/vit.h"
#include "t.h"

typedef struct {
    float w[6], wm[6], wv[6];
    float b[4], bm[4], bv[4];
    double fq[5];
    double ns[1];
} model_t;

static size_t entries(model_t *m, nn_ckpt_entry_t *e)
{
    memset(e, 0, 4 * sizeof *e);
    e[0] = (nn_ckpt_entry_t){.name = "visual.w",
                             .dtype = NN_ST_F32,
                             .rank = 2,
                             .shape = {2, 3},
                             .data = m->w,
                             .exp_avg = m->wm,
                             .exp_avg_sq = m->wv};
    e[1] = (nn_ckpt_entry_t){.name = "visual.ln.bias",
                             .dtype = NN_ST_F32,
                             .rank = 1,
                             .shape = {4},
                             .data = m->b,
                             .exp_avg = m->bm,
                             .exp_avg_sq = m->bv};
    e[2] = (nn_ckpt_entry_t){
        .name = "cap_fq", .dtype = NN_ST_F64, .rank = 2, .shape = {1, 5}, .data = m->fq};
    e[3] = (nn_ckpt_entry_t){
        .name = "num_samples", .dtype = NN_ST_F64, .rank = 2, .shape = {1, 1}, .data = m->ns};
    return 4;
}

static void fill(model_t *m, float base)
{
    float *f = (float *)m;
    for (size_t i = 0; i < 30; i++) {
        f[i] = base + (float)i * 0.25f;
    }
    for (int i = 0; i < 5; i++) {
        m->fq[i] = base / 3.0 + i;
    }
    m->ns[0] = 17;
}

static const nn_st_meta_t k_meta[3] = {{"config", "{\"width\":64,\"depth\":2}"},
                                       {"step", "17"},
                                       {"cursor", "{\"epoch\":1,\"pos\":99}"}};

/* A path in the test's temporary directory, in a slot of a small static ring so that a few
 * paths can be alive at once. */
static const char *tmp_path(const char *name)
{
    static char p[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", t_tmpdir(), name);
    return p[k];
}

T_CASE(ckpt_roundtrip)
{
    model_t a, b;
    nn_ckpt_entry_t ea[4], eb[4];
    fill(&a, 1.0f);
    memset(&b, 0, sizeof b);
    size_t n = entries(&a, ea);
    entries(&b, eb);
    char err[NN_ST_ERRLEN];
    const char *p = tmp_path("c.safetensors");
    T_ASSERT_OK(nn_ckpt_save(p, ea, n, k_meta, 3, err, sizeof err));
    nn_st_file_t *f;
    T_ASSERT_OK(nn_ckpt_load(p, eb, n, 0, &f, err, sizeof err));
    T_ASSERT(memcmp(&a, &b, sizeof a) == 0);
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "format"), NN_CKPT_FORMAT);
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "format_version"), "1");
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "step"), "17");
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "cursor"), "{\"epoch\":1,\"pos\":99}");
    T_ASSERT_EQ(nn_st_count(f), 8); /* 4 tensors + 2 x 2 moments */
    const nn_st_tensor_t *t = nn_st_find(f, "optimizer.exp_avg_sq.visual.w");
    T_ASSERT(t != NULL && t->dtype == NN_ST_F32 && t->rank == 2 && t->shape[1] == 3);
    T_ASSERT(memcmp(t->data, a.wv, sizeof a.wv) == 0);
    T_ASSERT(nn_st_find(f, "optimizer.exp_avg.cap_fq") == NULL);
    T_ASSERT_EQ(nn_st_find(f, "cap_fq")->dtype, NN_ST_F64);
    nn_st_close(f);
    /* weights only: moments untouched */
    memset(&b, 0, sizeof b);
    T_ASSERT_OK(nn_ckpt_load(p, eb, n, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err));
    T_ASSERT(memcmp(b.w, a.w, sizeof a.w) == 0 && memcmp(b.fq, a.fq, sizeof a.fq) == 0);
    T_ASSERT(b.wm[3] == 0 && b.bv[2] == 0);
    /* Overwriting an existing checkpoint */
    fill(&a, 5.0f);
    T_ASSERT_OK(nn_ckpt_save(p, ea, n, NULL, 0, err, sizeof err));
    T_ASSERT_OK(nn_ckpt_load(p, eb, n, 0, &f, err, sizeof err));
    T_ASSERT(memcmp(&a, &b, sizeof a) == 0);
    T_ASSERT(nn_st_meta_get(f, "step") == NULL);
    nn_st_close(f);
}

/* Loads `p` into a sentinel-filled model with a modified table; checks rc, the message and that
 * nothing was written. */
static void expect_fail(const char *p, nn_ckpt_entry_t *e, size_t n, unsigned flags, int want,
                        const char *needle, model_t *dst)
{
    model_t before;
    memcpy(&before, dst, sizeof before);
    char err[NN_ST_ERRLEN] = "";
    int rc = nn_ckpt_load(p, e, n, flags, NULL, err, sizeof err);
    if (rc != want) {
        T_FAIL("%s: got %s, expected %s (%s)", needle, core_err_name(rc), core_err_name(want), err);
    }
    if (strstr(err, needle) == NULL) {
        T_FAIL("message \"%s\" does not name \"%s\"", err, needle);
    }
    T_ASSERT(memcmp(&before, dst, sizeof before) == 0);
}

T_CASE(ckpt_mismatch_names_offender)
{
    model_t a, b;
    nn_ckpt_entry_t ea[4], eb[4];
    fill(&a, 1.0f);
    fill(&b, -7.0f);
    size_t n = entries(&a, ea);
    char err[NN_ST_ERRLEN];
    const char *p = tmp_path("m.safetensors");
    T_ASSERT_OK(nn_ckpt_save(p, ea, n, k_meta, 3, err, sizeof err));

    entries(&b, eb);
    eb[1].shape[0] = 2;
    eb[1].rank = 2; /* [2] vs [4]: same numel would not matter, the shape must match */
    eb[1].shape[1] = 2;
    expect_fail(p, eb, n, 0, CORE_ESHAPE_MISMATCH, "\"visual.ln.bias\"", &b);
    entries(&b, eb);
    eb[2].dtype = NN_ST_F32;
    expect_fail(p, eb, n, 0, CORE_EDTYPE_MISMATCH, "\"cap_fq\"", &b);
    entries(&b, eb);
    eb[3].name = "num_samples2";
    expect_fail(p, eb, n, 0, CORE_ENOT_FOUND, "\"num_samples2\"", &b);
    /* a model with one tensor less: the file has an extra one */
    entries(&b, eb);
    expect_fail(p, eb, 3, 0, CORE_EMISMATCH, "\"num_samples\"", &b);
    T_ASSERT_OK(nn_ckpt_load(p, eb, 3, NN_CKPT_ALLOW_EXTRA, NULL, err, sizeof err));
    T_ASSERT(memcmp(b.w, a.w, sizeof a.w) == 0);

    /* a weights-only file (no moments) cannot resume training but loads weights-only */
    const char *q = tmp_path("w.safetensors");
    entries(&a, ea);
    ea[0].exp_avg = ea[0].exp_avg_sq = NULL;
    ea[1].exp_avg = ea[1].exp_avg_sq = NULL;
    T_ASSERT_OK(nn_ckpt_save(q, ea, n, NULL, 0, err, sizeof err));
    fill(&b, -7.0f);
    entries(&b, eb);
    expect_fail(q, eb, n, 0, CORE_ENOT_FOUND, "\"optimizer.exp_avg.visual.w\"", &b);
    T_ASSERT_OK(nn_ckpt_load(q, eb, n, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err));
    T_ASSERT(memcmp(b.b, a.b, sizeof a.b) == 0);
    /* a full checkpoint loaded into a model without moments: the moments are extra */
    entries(&b, eb);
    eb[0].exp_avg = NULL;
    expect_fail(p, eb, n, 0, CORE_EMISMATCH, "\"optimizer.exp_avg.visual.w\"", &b);
}

T_CASE(ckpt_format_and_meta)
{
    model_t a;
    nn_ckpt_entry_t ea[4];
    fill(&a, 1.0f);
    size_t n = entries(&a, ea);
    char err[NN_ST_ERRLEN];
    const char *p = tmp_path("f.safetensors");
    nn_st_meta_t bad[1] = {{"format", "x"}};
    T_ASSERT_ERR(nn_ckpt_save(p, ea, n, bad, 1, err, sizeof err), CORE_ECONFIG);
    T_ASSERT(strstr(err, "format") != NULL);
    nn_st_meta_t dup[2] = {{"a", "1"}, {"a", "2"}};
    T_ASSERT_ERR(nn_ckpt_save(p, ea, n, dup, 2, err, sizeof err), CORE_ECONFIG);

    /* foreign files: other format, newer version, DDP prefix, PyTorch-style (no format key) */
    nn_st_desc_t d[1] = {
        {.name = "module.visual.w", .dtype = NN_ST_F32, .rank = 2, .shape = {2, 3}, .data = a.w}};
    nn_st_meta_t other[1] = {{"format", "pt"}};
    T_ASSERT_OK(nn_st_write_file(p, d, 1, other, 1, err, sizeof err));
    T_ASSERT_ERR(nn_ckpt_load(p, ea, 1, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err),
                 CORE_EBAD_MAGIC);
    nn_st_meta_t newer[2] = {{"format", NN_CKPT_FORMAT}, {"format_version", "99"}};
    T_ASSERT_OK(nn_st_write_file(p, d, 1, newer, 2, err, sizeof err));
    T_ASSERT_ERR(nn_ckpt_load(p, ea, 1, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err),
                 CORE_EBAD_VERSION);
    T_ASSERT_OK(nn_st_write_file(p, d, 1, NULL, 0, err, sizeof err));
    model_t b;
    memset(&b, 0, sizeof b);
    nn_ckpt_entry_t eb[4];
    entries(&b, eb);
    T_ASSERT_OK(nn_ckpt_load(p, eb, 1, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err));
    T_ASSERT(memcmp(b.w, a.w, sizeof a.w) == 0);
    /* missing file */
    T_ASSERT_ERR(nn_ckpt_load(tmp_path("none"), eb, 1, 0, NULL, err, sizeof err), CORE_ERR(ENOENT));
}

/* The PyTorch-written golden weights load by name into a table built from OpenCLIP names. */
T_CASE(ckpt_golden_weights_load)
{
    const char *p = t_source("tests/data/golden/vit_tiny_weights.safetensors");
    nn_st_file_t *f;
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_st_open(p, NULL, &f, err, sizeof err));
    T_ASSERT_EQ(nn_st_count(f), 37); /* 35 parameters, 2 buffers */
    int64_t conv[4] = {64, 3, 8, 8}, fq[2] = {1, 1000}, qkv[2] = {192, 64};
    T_ASSERT_OK(nn_st_expect(f, "visual.conv1.weight", NN_ST_F32, 4, conv, NULL, err, sizeof err));
    T_ASSERT_OK(nn_st_expect(f, "cap_fq", NN_ST_F64, 2, fq, NULL, err, sizeof err));
    T_ASSERT_OK(nn_st_expect(f, "visual.transformer.resblocks.1.attn.in_proj_weight", NN_ST_F32, 2,
                             qkv, NULL, err, sizeof err));
    T_ASSERT(strstr(nn_st_meta_get(f, "config"), "\"width\": 64") != NULL);
    /* Load everything through nn_ckpt_load with a table built from the file itself. */
    size_t n = nn_st_count(f);
    nn_ckpt_entry_t *e = core_calloc(n, sizeof *e);
    void **bufs = core_calloc(n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        const nn_st_tensor_t *t = nn_st_at(f, i);
        bufs[i] = core_calloc(1, t->nbytes);
        e[i] =
            (nn_ckpt_entry_t){.name = t->name, .dtype = t->dtype, .rank = t->rank, .data = bufs[i]};
        memcpy(e[i].shape, t->shape, sizeof t->shape);
    }
    T_ASSERT_OK(nn_ckpt_load(p, e, n, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err));
    for (size_t i = 0; i < n; i++) {
        T_ASSERT(memcmp(bufs[i], nn_st_at(f, i)->data, nn_st_at(f, i)->nbytes) == 0);
        core_free(bufs[i]);
    }
    core_free(bufs);
    core_free(e);
    nn_st_close(f);
}

/* ---- the ViT helpers ------------------------------------------------------------------------ */

static const nn_vit_cfg_t k_tiny = {.image_size = 32,
                                    .patch = 8,
                                    .width = 64,
                                    .depth = 2,
                                    .heads = 2,
                                    .mlp_hidden = 256,
                                    .vocab = 1000,
                                    .batch = 4};

typedef struct {
    float *images;
    uint32_t *off, *ids;
} batch_t;

/* The golden batch (images and label CSR) of tests/data/golden/vit_tiny_io.safetensors. */
static void golden_batch(batch_t *b)
{
    nn_st_file_t *f;
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_st_open(t_source("tests/data/golden/vit_tiny_io.safetensors"), NULL, &f, err,
                           sizeof err));
    const nn_st_tensor_t *im = nn_st_find(f, "input.images");
    const nn_st_tensor_t *to = nn_st_find(f, "input.label_offsets");
    const nn_st_tensor_t *ti = nn_st_find(f, "input.label_ids");
    T_ASSERT(im != NULL && to != NULL && ti != NULL && to->numel == 5);
    b->images = core_malloc(im->nbytes);
    memcpy(b->images, im->data, im->nbytes);
    b->off = core_malloc(to->numel * sizeof *b->off);
    b->ids = core_malloc(ti->numel * sizeof *b->ids);
    for (size_t i = 0; i < to->numel; i++) {
        int64_t v;
        memcpy(&v, to->data + 8 * i, 8);
        b->off[i] = (uint32_t)v;
    }
    for (size_t i = 0; i < ti->numel; i++) {
        int64_t v;
        memcpy(&v, ti->data + 8 * i, 8);
        b->ids[i] = (uint32_t)v;
    }
    nn_st_close(f);
}

static void batch_free(batch_t *b)
{
    core_free(b->images);
    core_free(b->off);
    core_free(b->ids);
}

static nn_vit_t *golden_model(const nn_vit_cfg_t *cfg, uint64_t seed)
{
    nn_vit_t *m;
    T_ASSERT_OK(nn_vit_new(cfg, &m));
    nn_vit_init(m, seed);
    char err[NN_ST_ERRLEN];
    int rc = nn_ckpt_vit_load(t_source("tests/data/golden/vit_tiny_weights.safetensors"), m,
                              NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err);
    if (rc != 0) {
        T_FAIL("%s (%s)", err, core_err_name(rc));
    }
    return m;
}

static void train(nn_vit_t *m, const batch_t *b, int from, int to)
{
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    for (int s = from; s < to; s++) {
        float loss;
        T_ASSERT_OK(nn_vit_train_step(m, b->images, b->off, b->ids, 1, &opt,
                                      nn_lr_schedule(1e-3f, 2, 6, s), &loss));
    }
}

/* Every tensor, moment and the step counter bitwise equal. */
static void assert_same_state(const nn_vit_t *a, const nn_vit_t *b)
{
    T_ASSERT_EQ(nn_vit_opt_step(a), nn_vit_opt_step(b));
    for (size_t i = 0; i < nn_vit_num_tensors(a); i++) {
        nn_tensor_t x, y;
        T_ASSERT_OK(nn_vit_tensor(a, i, &x));
        T_ASSERT_OK(nn_vit_tensor(b, i, &y));
        size_t sz = x.dtype == NN_DTYPE_F64 ? 8 : 4;
        if (memcmp(x.data, y.data, x.numel * sz) != 0 ||
            (x.m != NULL && memcmp(x.m, y.m, x.numel * sz) != 0) ||
            (x.v != NULL && memcmp(x.v, y.v, x.numel * sz) != 0)) {
            T_FAIL("tensor %s differs after resume", x.name);
        }
    }
}

/* Train 4 steps in one go == 2 steps, save, load into a fresh model, 2 more steps (bitwise). */
T_CASE(ckpt_vit_resume_is_exact)
{
    batch_t b;
    golden_batch(&b);
    nn_vit_t *a = golden_model(&k_tiny, 1);
    train(a, &b, 0, 4);

    nn_vit_t *h = golden_model(&k_tiny, 1);
    train(h, &b, 0, 2);
    const char *p = tmp_path("vit.safetensors");
    char err[NN_ST_ERRLEN];
    nn_st_meta_t meta[1] = {{"cursor", "{\"epoch\":0,\"pos\":8}"}};
    T_ASSERT_OK(nn_ckpt_vit_save(p, h, meta, 1, err, sizeof err));
    nn_vit_free(h);

    nn_vit_t *r;
    T_ASSERT_OK(nn_vit_new(&k_tiny, &r));
    nn_vit_init(r, 99); /* different weights: all of them must be replaced */
    nn_st_file_t *f;
    T_ASSERT_OK(nn_ckpt_vit_load(p, r, 0, &f, err, sizeof err));
    T_ASSERT_EQ(nn_vit_opt_step(r), 2);
    T_ASSERT_STR_EQ(nn_st_meta_get(f, NN_CKPT_META_OPT_STEP), "2");
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "cursor"), "{\"epoch\":0,\"pos\":8}");
    T_ASSERT_EQ(nn_st_count(f), 35 * 3 + 2);
    nn_st_close(f);
    train(r, &b, 2, 4);
    assert_same_state(a, r);

    /* the reserved key */
    nn_st_meta_t bad[1] = {{NN_CKPT_META_OPT_STEP, "5"}};
    T_ASSERT_ERR(nn_ckpt_vit_save(p, r, bad, 1, err, sizeof err), CORE_ECONFIG);
    nn_vit_free(r);
    nn_vit_free(a);
    batch_free(&b);
}

/* Loading into a model of another shape fails, names the tensor, and changes nothing. */
T_CASE(ckpt_vit_mismatch_untouched)
{
    char err[NN_ST_ERRLEN];
    const char *golden = t_source("tests/data/golden/vit_tiny_weights.safetensors");
    nn_vit_t *m;
    T_ASSERT_OK(nn_vit_new(&k_tiny, &m));
    nn_vit_init(m, 5);
    nn_tensor_t t;
    T_ASSERT_OK(nn_vit_find(m, "visual.conv1.weight", &t));
    float before = ((float *)t.data)[7];
    /* the golden weights have no optimizer state and no step */
    T_ASSERT_ERR(nn_ckpt_vit_load(golden, m, 0, NULL, err, sizeof err), CORE_ENOT_FOUND);
    T_ASSERT(strstr(err, "optimizer.exp_avg.") != NULL);
    T_ASSERT(((float *)t.data)[7] == before);
    nn_vit_free(m);

    nn_vit_cfg_t c = k_tiny;
    c.vocab = 999;
    T_ASSERT_OK(nn_vit_new(&c, &m));
    nn_vit_init(m, 5);
    T_ASSERT_OK(nn_vit_find(m, "visual.conv1.weight", &t));
    before = ((float *)t.data)[7];
    T_ASSERT_ERR(nn_ckpt_vit_load(golden, m, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err),
                 CORE_ESHAPE_MISMATCH);
    T_ASSERT(strstr(err, "cap_fq") != NULL || strstr(err, "text_projection") != NULL);
    T_ASSERT(((float *)t.data)[7] == before);
    nn_vit_free(m);

    c = k_tiny;
    c.depth = 1;
    T_ASSERT_OK(nn_vit_new(&c, &m));
    nn_vit_init(m, 5);
    T_ASSERT_ERR(nn_ckpt_vit_load(golden, m, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err),
                 CORE_EMISMATCH);
    T_ASSERT(strstr(err, "resblocks.1.") != NULL);
    nn_vit_free(m);
}

T_MAIN()
