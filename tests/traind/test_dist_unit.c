/* sc-traind's MPI layer without mpirun (issue 8): the placeholders of data.socket/data.store, the
 * single-process fallbacks of the collectives, and the per-rank cursors in checkpoint metadata
 * (traind.world / traind.cursors written, read back, a damaged list skipped, a plain checkpoint
 * read as world 1). The multi-rank behaviour is tested by test_mpi.sh under mpirun. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "t.h"
#include "traind.h"

static traind_dist_t fake(int rank, int local_rank, int node)
{
    traind_dist_t d;
    memset(&d, 0, sizeof d);
    d.rank = rank;
    d.world = 4;
    d.local_rank = local_rank;
    d.local_world = 2;
    d.node = node;
    d.nodes = 2;
    snprintf(d.host, sizeof d.host, "gpu7");
    return d;
}

T_CASE(expand_placeholders)
{
    traind_dist_t d = fake(3, 1, 1);
    char out[128];
    T_ASSERT_OK(traind__dist_expand(&d, "/run/sc/datad-{node}.sock", out, sizeof out));
    T_ASSERT_STR_EQ(out, "/run/sc/datad-1.sock");
    T_ASSERT_OK(traind__dist_expand(&d, "{host}/{rank}/{local_rank}/{x}", out, sizeof out));
    T_ASSERT_STR_EQ(out, "gpu7/3/1/{x}");
    T_ASSERT_OK(traind__dist_expand(&d, "/plain/path.sock", out, sizeof out));
    T_ASSERT_STR_EQ(out, "/plain/path.sock");
    T_ASSERT_ERR(traind__dist_expand(&d, "0123456789{host}", out, 12), CORE_ETOO_LARGE);
    T_ASSERT_ERR(traind__dist_expand(&d, "0123456789ab", out, 12), CORE_ETOO_LARGE);
}

T_CASE(single_process_fallbacks)
{
    /* Without a launcher nothing is initialised and the collectives are identities. */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_RANK");
    T_ASSERT_EQ(traind__dist_launched(), 0);
    traind_dist_t d;
    T_ASSERT_OK(traind__dist_init(NULL, NULL, &d));
    T_ASSERT_EQ(d.on, 0);
    T_ASSERT_EQ(d.rank, 0);
    T_ASSERT_EQ(d.world, 1);
    T_ASSERT_EQ(d.local_world, 1);
    int any = -1;
    T_ASSERT_OK(traind__dist_any(&d, 1, &any));
    T_ASSERT_EQ(any, 1);
    T_ASSERT_OK(traind__dist_any(&d, 0, &any));
    T_ASSERT_EQ(any, 0);
    uint64_t mine[2] = {3, 40}, all[2] = {0, 0};
    T_ASSERT_OK(traind__dist_gather_u64(&d, mine, 2, all));
    T_ASSERT_U64_EQ(all[1], 40);
    uint32_t c[3] = {1, 2, 3};
    T_ASSERT_OK(traind__dist_sum_u32(&d, c, 3));
    T_ASSERT_EQ(c[2], 3);
    traind_reducer_t *r = NULL;
    T_ASSERT_OK(traind__dist_reducer_new(&d, NULL, 25, 1, &r));
    T_ASSERT(r == NULL); /* no reducer for one process */
    traind__dist_finalize(&d);
}

/* A tiny ViT, a config pointing at dir, a checkpoint saved with the given state. */
static void setup(const char *dir, traind_cfg_t *cfg, traind_model_t *m)
{
    char err[CORE_CFG_ERRLEN];
    T_ASSERT_OK(traind__cfg_init(cfg, err, sizeof err));
    T_ASSERT_OK(core_cfg_set(&traind_cfg_table, cfg, "checkpoint.dir", dir, "test", err,
                             sizeof err));
    T_ASSERT_OK(traind__model_new("ViT-Micro/8", 16, 32, 2, m));
    traind__model_init(m, 7);
}

static traind_meta_t meta_of(const traind_model_t *m)
{
    traind_meta_t meta;
    memset(&meta, 0, sizeof meta);
    meta.backbone = "ViT-Micro/8";
    meta.vit = m->vc;
    meta.image_size = 16;
    meta.vocab_size = 32;
    meta.vocab_hash = "ab";
    meta.vocab_path = "";
    meta.seed = 7;
    meta.total_steps = 100;
    return meta;
}

T_CASE(ckpt_cursors_roundtrip)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ck", t_tmpdir());
    traind_cfg_t cfg;
    traind_model_t m;
    setup(dir, &cfg, &m);
    traind_meta_t meta = meta_of(&m);
    uint64_t cursors[6] = {0, 80, 1, 8, 0, 96};
    traind_state_t st;
    memset(&st, 0, sizeof st);
    st.step = 10;
    st.seq = 1;
    st.epoch = 0;
    st.position = 80;
    st.world = 3;
    st.cursors = cursors;
    char path[4200];
    T_ASSERT_OK(traind__ckpt_save(&cfg, &m, &meta, &st, path, sizeof path));
    traind_state_t back;
    memset(&back, 0, sizeof back);
    T_ASSERT_EQ(traind__ckpt_resume(&cfg, &m, &meta, &back, path, sizeof path), 1);
    T_ASSERT_U64_EQ(back.world, 3);
    T_ASSERT(back.cursors != NULL);
    for (int i = 0; i < 6; i++) {
        T_ASSERT_U64_EQ(back.cursors[i], cursors[i]);
    }
    core_free(back.cursors);
    /* A newer plain (one-process) checkpoint: world 1, no cursor list. */
    st.step = 11;
    st.seq = 2;
    st.world = 0;
    st.cursors = NULL;
    T_ASSERT_OK(traind__ckpt_save(&cfg, &m, &meta, &st, path, sizeof path));
    memset(&back, 0, sizeof back);
    T_ASSERT_EQ(traind__ckpt_resume(&cfg, &m, &meta, &back, path, sizeof path), 1);
    T_ASSERT_U64_EQ(back.step, 11);
    T_ASSERT_U64_EQ(back.world, 1);
    T_ASSERT(back.cursors == NULL);
    traind__model_free(&m);
    traind__cfg_free(&cfg);
}

T_CASE(ckpt_bad_cursor_list_skipped)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ck", t_tmpdir());
    traind_cfg_t cfg;
    traind_model_t m;
    setup(dir, &cfg, &m);
    traind_meta_t meta = meta_of(&m);
    traind_state_t st;
    memset(&st, 0, sizeof st);
    uint64_t two[4] = {0, 8, 0, 8};
    st.step = 5;
    st.seq = 1;
    st.world = 2;
    st.cursors = two;
    char path[4200];
    T_ASSERT_OK(traind__ckpt_save(&cfg, &m, &meta, &st, path, sizeof path));
    /* A newer checkpoint that claims 3 ranks but lists 2 cursors (world bumped after the list was
     * formatted): must be reported and skipped in favour of the older valid one. */
    uint64_t three[6] = {0, 16, 0, 16, 0, 16};
    st.step = 6;
    st.seq = 2;
    st.world = 3;
    st.cursors = three;
    T_ASSERT_OK(traind__ckpt_save(&cfg, &m, &meta, &st, path, sizeof path));
    /* Rewrite the newest file's cursor list in place: "0:16,0:16,0:16" -> "0:16,0:16;0:16". */
    FILE *f = fopen(path, "r+b");
    T_ASSERT(f != NULL);
    char head[8192];
    size_t n = fread(head, 1, sizeof head - 1, f);
    head[n] = '\0';
    char *p = NULL;
    for (size_t i = 0; i + 14 <= n && p == NULL; i++) {
        if (memcmp(head + i, "0:16,0:16,0:16", 14) == 0) {
            p = head + i;
        }
    }
    T_ASSERT(p != NULL);
    T_ASSERT_EQ(fseek(f, (long)(p - head) + 9, SEEK_SET), 0);
    T_ASSERT_EQ(fputc(';', f), ';');
    T_ASSERT_EQ(fclose(f), 0);
    traind_state_t back;
    memset(&back, 0, sizeof back);
    T_ASSERT_EQ(traind__ckpt_resume(&cfg, &m, &meta, &back, path, sizeof path), 1);
    T_ASSERT_U64_EQ(back.step, 5);
    T_ASSERT_U64_EQ(back.world, 2);
    T_ASSERT(back.cursors != NULL);
    T_ASSERT_U64_EQ(back.cursors[3], 8);
    core_free(back.cursors);
    traind__model_free(&m);
    traind__cfg_free(&cfg);
}

T_MAIN()
