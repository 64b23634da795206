/* Tokenizer benchmark: the 77-token row (pl_tok_row) of every text in golden.tsv, on the calling
 * thread only. Each repetition loads a fresh tokenizer (not timed), runs one pass with its word
 * cache empty ("cold") and then a second pass over the same texts ("warm"); the figures are medians
 * over the repetitions. Every row is also compared with the golden ids, outside the timed passes,
 * so a fast but wrong tokenizer does not go unnoticed.
 *
 *   bench_tok [-r REPS] [-v VOCAB] GOLDEN.TSV
 *
 * Each figure comes twice: by the wall clock ("cold", "warm") and by this thread's CPU time
 * ("cold-cpu", "warm-cpu"), which stays meaningful on a machine shared with other work.
 *
 * MB/s counts the UTF-8 bytes of the texts (after the file's escapes are undone), the same
 * definition the Python peer (bench/tok_peer.py) uses. bench/tok.sh runs both side by side. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/timing.h"
#include "pipeline/tok.h"

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

typedef struct {
    char *buf;       /* all texts, unescaped, back to back */
    size_t *off;     /* text i is buf[off[i] .. off[i+1]) */
    uint32_t *ids;   /* golden ids (row up to the last non-pad id), back to back */
    size_t *ids_off; /* text i's ids are ids[ids_off[i] .. ids_off[i+1]) */
    size_t n;
    size_t bytes;
} golden_t;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_tok: %s: %s\n", what, core_strerror(rc));
    exit(1);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        die(path, CORE_ERR(errno));
    }
    size_t cap = 1 << 20, n = 0;
    char *b = core_malloc_or_die(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            b = core_realloc_or_die(b, cap);
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        die(path, CORE_ERR(EIO));
    }
    fclose(f);
    *len = n;
    return b;
}

/* Parses golden.tsv: `text<TAB>ids`, escapes \\ \t \n \r in the text, '#' lines skipped. */
static void golden_read(const char *path, golden_t *g)
{
    size_t len;
    char *src = read_all(path, &len);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        lines += src[i] == '\n';
    }
    memset(g, 0, sizeof(*g));
    g->buf = core_malloc_or_die(len + 1);
    g->off = core_malloc_or_die((lines + 1) * sizeof(size_t));
    g->ids = core_malloc_or_die((len / 2 + 1) * sizeof(uint32_t));
    g->ids_off = core_malloc_or_die((lines + 1) * sizeof(size_t));
    size_t bo = 0, io = 0;
    g->off[0] = 0;
    g->ids_off[0] = 0;
    for (size_t p = 0; p < len;) {
        size_t e = p;
        while (e < len && src[e] != '\n') {
            e++;
        }
        size_t tab = e;
        while (tab > p && src[tab - 1] != '\t') {
            tab--;
        }
        if (e > p && src[p] != '#' && tab > p) {
            for (size_t i = p; i < tab - 1; i++) {
                char c = src[i];
                if (c == '\\' && i + 1 < tab - 1) {
                    char d = src[++i];
                    c = d == 't' ? '\t' : d == 'n' ? '\n' : d == 'r' ? '\r' : d;
                }
                g->buf[bo++] = c;
            }
            const char *s = src + tab;
            const char *end = src + e;
            while (s < end) {
                char *q;
                unsigned long v = strtoul(s, &q, 10);
                if (q == s) {
                    break;
                }
                g->ids[io++] = (uint32_t)v;
                s = q;
            }
            g->n++;
            g->off[g->n] = bo;
            g->ids_off[g->n] = io;
        }
        p = e + 1;
    }
    g->bytes = bo;
    core_free(src);
}

static void golden_free(golden_t *g)
{
    core_free(g->buf);
    core_free(g->off);
    core_free(g->ids);
    core_free(g->ids_off);
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
        die("clock_gettime", CORE_ERR(errno));
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One timed pass: wall seconds into *wall, this thread's CPU seconds into *cpu (the CPU figure
 * holds up on a loaded machine, where the wall clock also counts time spent descheduled). `sink`
 * keeps the rows observable. */
static void pass(const pl_tok_t *tok, const golden_t *g, uint64_t *sink, double *wall, double *cpu)
{
    uint32_t row[PL_TOK_CONTEXT];
    double c0 = thread_cpu_s();
    uint64_t t0 = core_now_ns();
    for (size_t i = 0; i < g->n; i++) {
        int rc = pl_tok_row(tok, g->buf + g->off[i], g->off[i + 1] - g->off[i], row, NULL, NULL);
        if (rc < 0) {
            die("pl_tok_row", rc);
        }
        *sink += row[1] + row[PL_TOK_CONTEXT - 1];
    }
    *wall = (double)(core_now_ns() - t0) / 1e9;
    *cpu = thread_cpu_s() - c0;
}

static size_t verify(const pl_tok_t *tok, const golden_t *g)
{
    size_t bad = 0;
    uint32_t row[PL_TOK_CONTEXT];
    for (size_t i = 0; i < g->n; i++) {
        size_t used = 0;
        int rc = pl_tok_row(tok, g->buf + g->off[i], g->off[i + 1] - g->off[i], row, NULL, &used);
        size_t want = g->ids_off[i + 1] - g->ids_off[i];
        if (rc < 0 || used != want || memcmp(row, g->ids + g->ids_off[i], want * 4) != 0) {
            bad++;
        }
    }
    return bad;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int reps = 5;
    const char *vocab = NULL;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-v") == 0 && i + 1 < argc) {
            vocab = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_tok [-r REPS] [-v VOCAB] GOLDEN.TSV\n");
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: bench_tok [-r REPS] [-v VOCAB] GOLDEN.TSV\n");
        return 2;
    }
    static char vbuf[4096];
    if (!vocab) {
        /* The merges file sits next to golden.tsv in ../shared/data/tokenizer/. */
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path + 1) : 0;
        snprintf(vbuf, sizeof(vbuf), "%.*sbpe_simple_vocab_16e6.txt.gz", dl, path);
        vocab = vbuf;
    }

    golden_t g;
    golden_read(path, &g);
    /* v[0..3]: cold wall, warm wall, cold CPU, warm CPU seconds per repetition */
    double *v[4];
    for (int k = 0; k < 4; k++) {
        v[k] = core_malloc_or_die((size_t)reps * sizeof(double));
    }
    uint64_t sink = 0;
    double load_s = 0;
    for (int r = 0; r < reps; r++) {
        pl_tok_t *tok;
        double t0 = core_now_s();
        int rc = pl_tok_load(vocab, &tok);
        load_s += core_now_s() - t0;
        if (rc < 0) {
            die(vocab, rc);
        }
        pass(tok, &g, &sink, &v[0][r], &v[2][r]);
        pass(tok, &g, &sink, &v[1][r], &v[3][r]);
        if (r == 0) {
            size_t bad = verify(tok, &g);
            if (bad) {
                fprintf(stderr, "bench_tok: %zu/%zu rows differ from %s\n", bad, g.n, path);
                return 1;
            }
        }
        pl_tok_free(tok);
    }
    printf("c: %s, build %s, %zu texts, %zu bytes, %d reps, load %.1f ms, sink %llu\n", __VERSION__,
           BENCH_BUILDTYPE, g.n, g.bytes, reps, load_s / reps * 1e3,
           (unsigned long long)(sink % 1000));
    const char *names[4] = {"cold", "warm", "cold-cpu", "warm-cpu"};
    for (int k = 0; k < 4; k++) {
        double mn = v[k][0];
        for (int r = 1; r < reps; r++) {
            mn = v[k][r] < mn ? v[k][r] : mn;
        }
        double med = median(v[k], reps);
        printf("c %s: %.0f texts/s %.3f MB/s (median %.4f s, min %.4f s)\n", names[k],
               (double)g.n / med, (double)g.bytes / med / 1e6, med, mn);
    }
    for (int k = 0; k < 4; k++) {
        core_free(v[k]);
    }
    golden_free(&g);
    return 0;
}
