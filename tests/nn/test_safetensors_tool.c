/* Integration tests for the sc-ckpt CLI (tools/sc_ckpt.c) on small checkpoints written here with
 * nn_ckpt_save: --help everywhere, ls, info, diff (exit codes, tolerances, mismatch kinds, --json)
 * and export (weights only, visual only), plus error exits. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/ckpt.h"
#include "t.h"

static const char *tool(void)
{
    static char p[4096];
    const char *b = getenv("SC_BUILD_ROOT");
    if (b == NULL) {
        T_SKIP("SC_BUILD_ROOT not set");
    }
    snprintf(p, sizeof p, "%s/tools/sc-ckpt", b);
    FILE *f = fopen(p, "rb");
    if (f == NULL) {
        T_SKIP("%s not built", p);
    }
    fclose(f);
    return p;
}

/* Runs `sc-ckpt <args>` (stdout captured into a core_malloc'd string, stderr discarded) and
 * returns the exit status. */
static int run(const char *args, char **out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>/dev/null", tool(), args);
    FILE *p = popen(cmd, "r");
    T_ASSERT(p != NULL);
    size_t cap = 1 << 16, len = 0;
    char *buf = core_malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - 1 - len, p)) > 0) {
        len += r;
        if (len + 1 == cap) {
            cap *= 2;
            buf = core_realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    int st = pclose(p);
    T_ASSERT(WIFEXITED(st));
    if (out != NULL) {
        *out = buf;
    } else {
        core_free(buf);
    }
    return WEXITSTATUS(st);
}

typedef struct {
    float conv[2 * 3], m1[6], v1[6];
    float head[4], m2[4], v2[4];
    double fq[3];
    double ns[1];
} tiny_t;

static char g_paths[4][4096];

/* Writes a checkpoint with 2 parameters (with moments) and 2 buffers to slot k; returns its path.
 */
static const char *write_ckpt(int k, const tiny_t *m, int head_rank2)
{
    snprintf(g_paths[k], sizeof g_paths[k], "%s/c%d.safetensors", t_tmpdir(), k);
    nn_ckpt_entry_t e[4] = {
        {.name = "visual.conv1.weight",
         .dtype = NN_ST_F32,
         .rank = 2,
         .shape = {2, 3},
         .data = (void *)m->conv,
         .exp_avg = (void *)m->m1,
         .exp_avg_sq = (void *)m->v1},
        {.name = "text_decoder.text_projection.bias",
         .dtype = NN_ST_F32,
         .rank = 1,
         .shape = {4},
         .data = (void *)m->head,
         .exp_avg = (void *)m->m2,
         .exp_avg_sq = (void *)m->v2},
        {.name = "cap_fq", .dtype = NN_ST_F64, .rank = 2, .shape = {1, 3}, .data = (void *)m->fq},
        {.name = "num_samples",
         .dtype = NN_ST_F64,
         .rank = 2,
         .shape = {1, 1},
         .data = (void *)m->ns},
    };
    if (head_rank2) {
        e[1].rank = 2;
        e[1].shape[0] = 2;
        e[1].shape[1] = 2;
    }
    nn_st_meta_t meta[2] = {{"config", "{\"width\":64,\"depth\":2}"}, {"step", "12"}};
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_ckpt_save(g_paths[k], e, 4, meta, 2, err, sizeof err));
    return g_paths[k];
}

static void fill(tiny_t *m)
{
    float *f = (float *)m;
    for (int i = 0; i < 30; i++) {
        f[i] = (float)i * 0.5f - 3.0f;
    }
    m->fq[0] = 1;
    m->fq[1] = 0.25;
    m->fq[2] = 0;
    m->ns[0] = 4;
}

T_CASE(tool_help)
{
    char *out;
    T_ASSERT_EQ(run("--help", &out), 0);
    T_ASSERT(strstr(out, "usage: sc-ckpt") && strstr(out, "export"));
    core_free(out);
    const char *cmds[] = {"ls", "info", "diff", "export"};
    for (int i = 0; i < 4; i++) {
        char a[64], want[64];
        snprintf(a, sizeof a, "%s --help", cmds[i]);
        snprintf(want, sizeof want, "usage: sc-ckpt %s", cmds[i]);
        T_ASSERT_EQ(run(a, &out), 0);
        if (strstr(out, want) == NULL) {
            T_FAIL("%s: %s", a, out);
        }
        core_free(out);
    }
    T_ASSERT_EQ(run("", NULL), 2);
    T_ASSERT_EQ(run("frobnicate x", NULL), 2);
    T_ASSERT_EQ(run("ls", NULL), 2);
    T_ASSERT_EQ(run("diff onlyone", NULL), 2);
    T_ASSERT_EQ(run("ls /nonexistent/file", NULL), 2);
}

T_CASE(tool_ls_info)
{
    tiny_t m;
    fill(&m);
    const char *p = write_ckpt(0, &m, 0);
    char args[4200], *out;
    snprintf(args, sizeof args, "ls '%s'", p);
    T_ASSERT_EQ(run(args, &out), 0);
    T_ASSERT(strstr(out, "visual.conv1.weight") && strstr(out, "[2, 3]"));
    T_ASSERT(strstr(out, "optimizer.exp_avg_sq.text_decoder.text_projection.bias"));
    T_ASSERT(strstr(out, "F64"));
    core_free(out);

    snprintf(args, sizeof args, "ls '%s' --json", p);
    T_ASSERT_EQ(run(args, &out), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    core_free(out);
    T_ASSERT(json_is_array(j));
    T_ASSERT_EQ(json_array_size(j), 8);
    json_t *t0 = json_array_get(j, 0); /* name order: cap_fq first */
    T_ASSERT_STR_EQ(json_string_value(json_object_get(t0, "name")), "cap_fq");
    T_ASSERT_STR_EQ(json_string_value(json_object_get(t0, "dtype")), "F64");
    T_ASSERT_EQ(json_integer_value(json_object_get(t0, "bytes")), 24);
    T_ASSERT_EQ(json_integer_value(json_array_get(json_object_get(t0, "shape"), 1)), 3);
    json_decref(j);

    snprintf(args, sizeof args, "info '%s' --json", p);
    T_ASSERT_EQ(run(args, &out), 0);
    j = json_loads(out, 0, &je);
    core_free(out);
    T_ASSERT(json_is_object(j));
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "parameter_count")), 10);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "optimizer_bytes")), 80);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "buffer_bytes")), 32);
    json_t *meta = json_object_get(j, "metadata");
    T_ASSERT_EQ(json_integer_value(json_object_get(json_object_get(meta, "config"), "width")), 64);
    T_ASSERT_STR_EQ(json_string_value(json_object_get(meta, "step")), "12");
    T_ASSERT_STR_EQ(json_string_value(json_object_get(meta, "format")), NN_CKPT_FORMAT);
    json_decref(j);

    snprintf(args, sizeof args, "info '%s'", p);
    T_ASSERT_EQ(run(args, &out), 0);
    T_ASSERT(strstr(out, "parameter count: 10") && strstr(out, "\"width\": 64"));
    core_free(out);
}

T_CASE(tool_diff)
{
    tiny_t a, b;
    fill(&a);
    fill(&b);
    const char *pa = write_ckpt(0, &a, 0);
    const char *pb = write_ckpt(1, &b, 0);
    char args[9000], *out;
    snprintf(args, sizeof args, "diff '%s' '%s'", pa, pb);
    T_ASSERT_EQ(run(args, &out), 0);
    T_ASSERT(strstr(out, "0 tensor(s) differ, 8 equal"));
    core_free(out);

    b.head[2] += 1e-3f; /* b = 7.001: rel 1.43e-4 */
    write_ckpt(1, &b, 0);
    T_ASSERT_EQ(run(args, NULL), 1);
    snprintf(args, sizeof args, "diff '%s' '%s' --atol 2e-3", pa, pb);
    T_ASSERT_EQ(run(args, NULL), 0);
    snprintf(args, sizeof args, "diff '%s' '%s' --rtol 1e-3", pa, pb);
    T_ASSERT_EQ(run(args, NULL), 0);
    snprintf(args, sizeof args, "diff '%s' '%s' --rtol 1e-5 --json", pa, pb);
    T_ASSERT_EQ(run(args, &out), 1);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    core_free(out);
    T_ASSERT(json_is_object(j));
    T_ASSERT(json_is_false(json_object_get(j, "equal")));
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "n_different")), 1);
    size_t i;
    json_t *row;
    int seen = 0;
    json_array_foreach(json_object_get(j, "tensors"), i, row)
    {
        if (strcmp(json_string_value(json_object_get(row, "name")),
                   "text_decoder.text_projection.bias") == 0) {
            seen = 1;
            T_ASSERT_STR_EQ(json_string_value(json_object_get(row, "status")), "different");
            T_ASSERT_NEAR(json_real_value(json_object_get(row, "max_abs")), 1e-3, 1e-6);
            T_ASSERT_NEAR(json_real_value(json_object_get(row, "max_rel")), 1e-3 / 7.001, 1e-6);
            T_ASSERT_EQ(json_integer_value(json_object_get(row, "first_index")), 2);
        }
    }
    T_ASSERT(seen);
    json_decref(j);

    /* shape mismatch and missing names */
    fill(&b);
    write_ckpt(1, &b, 1);
    snprintf(args, sizeof args, "diff '%s' '%s'", pa, pb);
    T_ASSERT_EQ(run(args, &out), 1);
    T_ASSERT(strstr(out, "shape") && strstr(out, "[4] vs [2,2]"));
    core_free(out);
    snprintf(g_paths[2], sizeof g_paths[2], "%s/w.safetensors", t_tmpdir());
    snprintf(args, sizeof args, "export '%s' '%s'", pa, g_paths[2]);
    T_ASSERT_EQ(run(args, NULL), 0);
    snprintf(args, sizeof args, "diff '%s' '%s' --json", pa, g_paths[2]);
    T_ASSERT_EQ(run(args, &out), 1);
    j = json_loads(out, 0, &je);
    core_free(out);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "n_different")), 4); /* 4 moments only in A */
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "n_same")), 4);
    json_decref(j);
    /* bad option value */
    snprintf(args, sizeof args, "diff '%s' '%s' --atol x", pa, pb);
    T_ASSERT_EQ(run(args, NULL), 2);
}

T_CASE(tool_export)
{
    tiny_t a;
    fill(&a);
    const char *pa = write_ckpt(0, &a, 0);
    char w[4200], v[4200], args[9000];
    snprintf(w, sizeof w, "%s/weights.safetensors", t_tmpdir());
    snprintf(v, sizeof v, "%s/visual.safetensors", t_tmpdir());
    snprintf(args, sizeof args, "export '%s' '%s'", pa, w);
    T_ASSERT_EQ(run(args, NULL), 0);
    snprintf(args, sizeof args, "export '%s' '%s' --visual-only", pa, v);
    T_ASSERT_EQ(run(args, NULL), 0);

    nn_st_file_t *f;
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_st_open(w, NULL, &f, err, sizeof err));
    T_ASSERT_EQ(nn_st_count(f), 4);
    T_ASSERT(nn_st_find(f, "cap_fq") != NULL && nn_st_find(f, "optimizer.exp_avg.cap_fq") == NULL);
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "export"), "weights-only");
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "step"), "12");
    T_ASSERT(memcmp(nn_st_find(f, "visual.conv1.weight")->data, a.conv, sizeof a.conv) == 0);
    nn_st_close(f);
    T_ASSERT_OK(nn_st_open(v, NULL, &f, err, sizeof err));
    T_ASSERT_EQ(nn_st_count(f), 1);
    T_ASSERT_STR_EQ(nn_st_at(f, 0)->name, "visual.conv1.weight");
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "export"), "visual-only");
    nn_st_close(f);

    /* the exported weights load back weights-only into the model table */
    tiny_t b;
    memset(&b, 0, sizeof b);
    nn_ckpt_entry_t e[4] = {
        {.name = "visual.conv1.weight",
         .dtype = NN_ST_F32,
         .rank = 2,
         .shape = {2, 3},
         .data = b.conv,
         .exp_avg = b.m1,
         .exp_avg_sq = b.v1},
        {.name = "text_decoder.text_projection.bias",
         .dtype = NN_ST_F32,
         .rank = 1,
         .shape = {4},
         .data = b.head,
         .exp_avg = b.m2,
         .exp_avg_sq = b.v2},
        {.name = "cap_fq", .dtype = NN_ST_F64, .rank = 2, .shape = {1, 3}, .data = b.fq},
        {.name = "num_samples", .dtype = NN_ST_F64, .rank = 2, .shape = {1, 1}, .data = b.ns},
    };
    T_ASSERT_ERR(nn_ckpt_load(w, e, 4, 0, NULL, err, sizeof err), CORE_ENOT_FOUND);
    T_ASSERT_OK(nn_ckpt_load(w, e, 4, NN_CKPT_WEIGHTS_ONLY, NULL, err, sizeof err));
    T_ASSERT(memcmp(b.head, a.head, sizeof a.head) == 0 && b.ns[0] == 4);

    /* a corrupt input and an unwritable output */
    FILE *c = fopen(w, "wb");
    T_ASSERT(c != NULL);
    fputs("garbage!garbage!", c);
    fclose(c);
    snprintf(args, sizeof args, "export '%s' '%s'", w, v);
    T_ASSERT_EQ(run(args, NULL), 2);
    snprintf(args, sizeof args, "info '%s'", w);
    T_ASSERT_EQ(run(args, NULL), 2);
    snprintf(args, sizeof args, "export '%s' '%s/no/dir/x'", pa, t_tmpdir());
    T_ASSERT_EQ(run(args, NULL), 2);
}

T_MAIN()
