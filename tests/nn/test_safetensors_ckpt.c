/* Checkpoint I/O (nn/ckpt.h): round trip of weights, AdamW moments, F64 buffers and metadata;
 * every mismatch class rejected with the offending tensor named and the destination untouched;
 * weights-only and DDP "module." loads; reserved metadata; format/version checks. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/ckpt.h"
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
    e[0] = (nn_ckpt_entry_t){.name = "visual.w", .dtype = NN_ST_F32, .rank = 2, .shape = {2, 3},
                             .data = m->w, .exp_avg = m->wm, .exp_avg_sq = m->wv};
    e[1] = (nn_ckpt_entry_t){.name = "visual.ln.bias", .dtype = NN_ST_F32, .rank = 1,
                             .shape = {4}, .data = m->b, .exp_avg = m->bm, .exp_avg_sq = m->bv};
    e[2] = (nn_ckpt_entry_t){.name = "cap_fq", .dtype = NN_ST_F64, .rank = 2, .shape = {1, 5},
                             .data = m->fq};
    e[3] = (nn_ckpt_entry_t){.name = "num_samples", .dtype = NN_ST_F64, .rank = 2,
                             .shape = {1, 1}, .data = m->ns};
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

static const nn_st_meta_t k_meta[3] = {
    {"config", "{\"width\":64,\"depth\":2}"}, {"step", "17"}, {"cursor", "{\"epoch\":1,\"pos\":99}"}};

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
    nn_st_desc_t d[1] = {{.name = "module.visual.w", .dtype = NN_ST_F32, .rank = 2,
                          .shape = {2, 3}, .data = a.w}};
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
    T_ASSERT_ERR(nn_ckpt_load(tmp_path("none"), eb, 1, 0, NULL, err, sizeof err),
                 CORE_ERR(ENOENT));
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
    T_ASSERT_OK(nn_st_expect(f, "visual.transformer.resblocks.1.attn.in_proj_weight", NN_ST_F32,
                             2, qkv, NULL, err, sizeof err));
    T_ASSERT(strstr(nn_st_meta_get(f, "config"), "\"width\": 64") != NULL);
    /* Load everything through nn_ckpt_load with a table built from the file itself. */
    size_t n = nn_st_count(f);
    nn_ckpt_entry_t *e = core_calloc(n, sizeof *e);
    void **bufs = core_calloc(n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        const nn_st_tensor_t *t = nn_st_at(f, i);
        bufs[i] = core_calloc(1, t->nbytes);
        e[i] = (nn_ckpt_entry_t){.name = t->name, .dtype = t->dtype, .rank = t->rank,
                                 .data = bufs[i]};
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

T_MAIN()
