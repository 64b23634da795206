/* Crash test with the real binary: ingest all of ../shared/data/corpus with sc-shard, kill -9 it at
 * random moments five times, restart it each time; the final store must equal a clean ingest (same
 * content digest, same record count), hold no duplicate (source file, sample) and verify clean.
 * The kill moments come from a seed printed in the log (SC_CRASH_SEED reproduces a run). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/timing.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "t.h"

static char g_bin[4096];

static const char *bin(void)
{
    const char *b = getenv("SC_BUILD_ROOT");
    if (b == NULL) {
        T_SKIP("SC_BUILD_ROOT not set");
    }
    snprintf(g_bin, sizeof(g_bin), "%s/tools/sc-shard", b);
    if (access(g_bin, X_OK) != 0) {
        T_SKIP("%s not built", g_bin);
    }
    return g_bin;
}

/* Runs sc-shard with args (NULL-terminated); returns the pid. stdout/stderr go to /dev/null. */
static pid_t spawn(const char *const *args)
{
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        FILE *n1 = freopen("/dev/null", "w", stdout);
        FILE *n2 = freopen("/dev/null", "w", stderr);
        (void)n1;
        (void)n2;
        execv(args[0], (char *const *)args);
        _exit(127);
    }
    return pid;
}

static int run(const char *const *args)
{
    pid_t pid = spawn(args);
    int status = 0;
    T_ASSERT(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void digest(const char *dir, char hex[65], uint64_t *n)
{
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    T_ASSERT_OK(pl_store_digest(st, hex, n));
    pl_store_close(st);
}

typedef struct {
    uint64_t *keys;
    size_t n, cap;
} keys_t;

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    }
    return h;
}

static int key_cb(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    keys_t *k = ud;
    pl_record_t r;
    T_ASSERT_OK(pl_record_decode(v, len, &r));
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 4096;
        k->keys = core_realloc(k->keys, k->cap * sizeof(uint64_t));
        T_ASSERT(k->keys != NULL);
    }
    /* (file, sample index) folded into one u64: collisions would only hide a duplicate, never
     * invent one; sample indexes are < 2^20 here */
    k->keys[k->n++] = (fnv(r.source_file, r.source_file_len) << 20) ^ r.sample_index;
    (void)seq;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : (x > y);
}

T_CASE(crash_kill9_corpus_equals_clean)
{
    const char *sc = bin();
    char corpus[4096], vocab[4096];
    snprintf(corpus, sizeof(corpus), "%s", t_shared("corpus"));
    snprintf(vocab, sizeof(vocab), "%s", t_shared("tokenizer/bpe_simple_vocab_16e6.txt.gz"));
    char clean[512], dir[512];
    snprintf(clean, sizeof(clean), "%s/clean", t_tmpdir());
    snprintf(dir, sizeof(dir), "%s/crash", t_tmpdir());
    /* small shards so the kills also land around shard rotation */
    const char *c1[] = {sc, "create", clean, "--vocab", vocab, "--shard-max-bytes", "16M", NULL};
    const char *c2[] = {sc, "create", dir, "--vocab", vocab, "--shard-max-bytes", "16M", NULL};
    T_ASSERT_EQ(run(c1), 0);
    T_ASSERT_EQ(run(c2), 0);
    const char *ic[] = {sc,        "ingest", clean, corpus, "--quiet", "--no-progress",
                        "--batch", "200",    NULL};
    double t0 = core_now_s();
    T_ASSERT_EQ(run(ic), 0);
    double clean_s = core_now_s() - t0;
    char h0[65];
    uint64_t n_clean = 0;
    digest(clean, h0, &n_clean);
    T_ASSERT(n_clean > 0);
    uint64_t seed = getenv("SC_CRASH_SEED") ? strtoull(getenv("SC_CRASH_SEED"), NULL, 10)
                                            : (uint64_t)time(NULL);
    fprintf(stderr, "crash test: seed %llu, clean ingest %.1f s\n", (unsigned long long)seed,
            clean_s);
    core_rng_t rng;
    core_rng_init(&rng, seed, 3);
    const char *id[] = {sc,        "ingest", dir, corpus, "--quiet", "--no-progress",
                        "--batch", "200",    NULL};
    int killed = 0;
    for (int k = 0; k < 5; k++) {
        /* a moment within what the remaining work should take (kills after completion would
         * test nothing) */
        pl_store_t *st = NULL;
        T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
        double left = 1.0 - (double)pl_store_count(st) / (double)n_clean;
        pl_store_close(st);
        double at = 0.1 + core_rng_uniform_f64(&rng) * clean_s * left * 0.8;
        pid_t pid = spawn(id);
        struct timespec ts = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        T_ASSERT(waitpid(pid, &status, 0) == pid);
        if (WIFSIGNALED(status)) {
            killed++;
        } else {
            T_ASSERT_EQ(WEXITSTATUS(status), 0); /* it finished first: fine */
        }
        fprintf(stderr, "crash test: run %d killed at %.2f s (%s)\n", k, at,
                WIFSIGNALED(status) ? "killed" : "had finished");
    }
    T_ASSERT(killed >= 1);
    T_ASSERT_EQ(run(id), 0);
    char h1[65], h2[65];
    uint64_t n1, n2;
    digest(clean, h1, &n1);
    digest(dir, h2, &n2);
    T_ASSERT_U64_EQ(n2, n1);
    T_ASSERT_STR_EQ(h2, h1);
    /* no (file, sample) twice */
    keys_t keys = {0};
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    T_ASSERT_OK(pl_store_foreach(st, key_cb, &keys));
    pl_store_close(st);
    T_ASSERT_U64_EQ(keys.n, n1);
    qsort(keys.keys, keys.n, sizeof(uint64_t), cmp_u64);
    for (size_t i = 1; i < keys.n; i++) {
        T_ASSERT(keys.keys[i] != keys.keys[i - 1]);
    }
    core_free(keys.keys);
    const char *vf[] = {sc, "verify", dir, "--no-progress", NULL};
    T_ASSERT_EQ(run(vf), 0);
    pl_record_thread_cleanup();
}

T_MAIN()
