/* Ingest benchmark: webdataset tars into a fresh shard store on the calling thread, with the
 * library's time split (read, decode, tokenize, compress, LMDB). Store creation and vocabulary
 * loading are not timed. Prints one RESULT line that bench/ingest.sh compares with the Python peer
 * (bench/ingest_peer.py), which prints the same fields.
 *
 *   bench_ingest [--verify full|header] [-v VOCAB] [-d TMPDIR] [-r REPS] [-t THREADS] PATH...
 *
 * With -r REPS the whole ingest is repeated into REPS fresh stores (the vocabulary is loaded once)
 * and the figures are totals over the repetitions (each sample counted once per repetition).
 * -t THREADS gives the ingest that many sample workers (default 0: everything on this thread, the
 * per-core figure); cpu_s then sums all threads, wall_s shows the speed-up.
 * PATHs are tar files or directories (walked, sorted, like sc-shard ingest). cpu_s is this
 * process's user+sys time over the ingest (getrusage), the per-core figure. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "pipeline/ingest.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, core_strerror(rc));
    exit(1);
}

static char **g_files;
static size_t g_n, g_cap;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        die(path, CORE_ERR(errno));
    }
    if (!S_ISDIR(sb.st_mode)) {
        if (g_n == g_cap) {
            g_cap = g_cap ? g_cap * 2 : 64;
            g_files = core_realloc_or_die(g_files, g_cap * sizeof(char *));
        }
        g_files[g_n++] = core_strdup(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        die(path, CORE_ERR(errno));
    }
    char **sub = NULL;
    size_t ns = 0, cs = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        struct stat s2;
        if (stat(p, &s2) != 0) {
            continue;
        }
        if (!S_ISDIR(s2.st_mode) && !(l > 4 && strstr(e->d_name, ".tar") != NULL)) {
            continue;
        }
        if (ns == cs) {
            cs = cs ? cs * 2 : 32;
            sub = core_realloc_or_die(sub, cs * sizeof(char *));
        }
        sub[ns++] = core_strdup(p);
    }
    closedir(d);
    qsort(sub, ns, sizeof(char *), cmp_str);
    for (size_t i = 0; i < ns; i++) {
        walk(sub[i]);
        core_free(sub[i]);
    }
    core_free(sub);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void add_stats(pl_ingest_stats_t *a, const pl_ingest_stats_t *b)
{
    a->samples += b->samples;
    a->kept += b->kept;
    a->rejected += b->rejected;
    a->t_read += b->t_read;
    a->t_decode += b->t_decode;
    a->t_tokenize += b->t_tokenize;
    a->t_compress += b->t_compress;
    a->t_lmdb += b->t_lmdb;
}

int main(int argc, char **argv)
{
    core_log_init("bench_ingest");
    core_log_set_level(CORE_LOG_ERR); /* rejects are counted, not printed */
    const char *vocab = "../shared/data/tokenizer/bpe_simple_vocab_16e6.txt.gz";
    const char *tmp = "/tmp";
    int reps = 1;
    int threads = 0;
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verify") == 0 && i + 1 < argc) {
            pol.verify = strcmp(argv[++i], "header") == 0 ? PL_VERIFY_HEADER : PL_VERIFY_FULL;
        } else if (strcmp(argv[i], "-v") == 0 && i + 1 < argc) {
            vocab = argv[++i];
        } else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
            tmp = argv[++i];
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
            walk(argv[i]);
        }
    }
    if (g_n == 0 || reps < 1) {
        fprintf(stderr, "usage: bench_ingest [--verify full|header] [-v VOCAB] [-d TMPDIR] "
                        "[-r REPS] [-t THREADS] PATH...\n");
        return 2;
    }
    uint64_t in_bytes = 0;
    for (size_t i = 0; i < g_n; i++) {
        struct stat sb;
        if (stat(g_files[i], &sb) == 0) {
            in_bytes += (uint64_t)sb.st_size;
        }
    }
    pl_tok_t *tok = NULL;
    int rc = pl_tok_load(vocab, &tok);
    if (rc < 0) {
        die(vocab, rc);
    }
    pl_ingest_stats_t tot;
    memset(&tot, 0, sizeof(tot));
    double wall = 0, cpu = 0;
    for (int r = 0; r < reps; r++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/bench_ingest.XXXXXX", tmp);
        if (mkdtemp(dir) == NULL) {
            die(dir, CORE_ERR(errno));
        }
        char sdir[PATH_MAX + 8];
        snprintf(sdir, sizeof(sdir), "%s/store", dir);
        rc = pl_store_create(sdir, pl_tok_hash(tok), vocab, &pol, NULL);
        if (rc < 0) {
            die("create", rc);
        }
        pl_store_t *st = NULL;
        rc = pl_store_open(sdir, PL_STORE_RDWR, &st);
        if (rc < 0) {
            die("open", rc);
        }
        pl_ingest_opts_t o;
        pl_ingest_opts_default(&o);
        o.log_rejects = 0;
        o.threads = threads;
        pl_ingest_t *ing = NULL;
        rc = pl_ingest_new(st, tok, &o, &ing);
        if (rc < 0) {
            die("ingest", rc);
        }
        double c0 = cpu_s(), w0 = core_now_s();
        for (size_t i = 0; i < g_n && rc == 0; i++) {
            rc = pl_ingest_file(ing, g_files[i]);
        }
        wall += core_now_s() - w0;
        cpu += cpu_s() - c0;
        if (rc < 0) {
            die("ingest", rc);
        }
        add_stats(&tot, pl_ingest_stats(ing));
        pl_ingest_free(ing);
        pl_store_close(st);
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    const pl_ingest_stats_t *s = &tot;
    double mb = (double)in_bytes * reps / 1e6;
    printf("RESULT impl=c threads=%d verify=%s samples=%" PRIu64 " kept=%" PRIu64
           " rejected=%" PRIu64
           " mb=%.2f wall_s=%.3f cpu_s=%.3f samples_per_cpu_s=%.1f mb_per_cpu_s=%.2f "
           "read_s=%.3f decode_s=%.3f tokenize_s=%.3f compress_s=%.3f lmdb_s=%.3f\n",
           threads, pol.verify == PL_VERIFY_FULL ? "full" : "header", s->samples, s->kept,
           s->rejected, mb, wall, cpu, (double)s->samples / cpu, mb / cpu, s->t_read, s->t_decode,
           s->t_tokenize, s->t_compress, s->t_lmdb);
    pl_tok_free(tok);
    for (size_t i = 0; i < g_n; i++) {
        core_free(g_files[i]);
    }
    core_free(g_files);
    return 0;
}
