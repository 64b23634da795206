/* A small fork-join thread pool for the non-GEMM loops (LayerNorm, GELU, attention per
 * (batch, head), the loss rows, AdamW). OpenMP is not used: OpenBLAS's pthreads build and a GNU
 * OpenMP runtime would each keep their own spinning workers on the same cores.
 *
 * The pool is process-wide because the OpenBLAS thread count it mirrors is process-wide too
 * (nn_blas_set_threads sets both). Only one thread may submit work at a time (the training
 * thread); workers are started lazily and live until exit. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "internal.h"

#define POOL_MAX NN__POOL_MAX

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;      /* workers created */
    int threads;      /* threads used per parallel_for, including the caller */
    nn__task_fn fn;
    void *ctx;
    atomic_int n, chunks;
    atomic_int next;  /* next chunk to claim */
    atomic_int done;  /* chunks finished */
    unsigned gen;     /* bumped per job, under mu */
} g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .threads = 1};

/* Set while a thread runs a job's chunk: a kernel called from inside a job (softmax inside the
 * per-head attention job) then runs inline instead of submitting a nested job. */
static _Thread_local int t_in_job;

static void run_chunks(void)
{
    t_in_job = 1;
    for (;;) {
        int c = atomic_fetch_add(&g_pool.next, 1);
        int chunks = atomic_load(&g_pool.chunks), n = atomic_load(&g_pool.n);
        if (c >= chunks) {
            break;
        }
        int lo = (int)((long long)n * c / chunks);
        int hi = (int)((long long)n * (c + 1) / chunks);
        g_pool.fn(g_pool.ctx, c, lo, hi);
        atomic_fetch_add(&g_pool.done, 1);
    }
    t_in_job = 0;
}

static void *worker(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    for (;;) {
        pthread_mutex_lock(&g_pool.mu);
        while (g_pool.gen == seen) {
            pthread_cond_wait(&g_pool.cv, &g_pool.mu);
        }
        seen = g_pool.gen;
        pthread_mutex_unlock(&g_pool.mu);
        run_chunks();
    }
    return NULL;
}

int nn__pool_threads(void)
{
    return g_pool.threads;
}

void nn__pool_set_threads(int threads)
{
    if (threads < 1) {
        threads = 1;
    }
    if (threads > POOL_MAX) {
        threads = POOL_MAX;
    }
    pthread_mutex_lock(&g_pool.mu);
    while (g_pool.started < threads - 1) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0) {
            break; /* run with what we have */
        }
        pthread_detach(t);
        g_pool.started++;
    }
    g_pool.threads = g_pool.started + 1 < threads ? g_pool.started + 1 : threads;
    pthread_mutex_unlock(&g_pool.mu);
}

void nn__parallel_for(int n, int min_per_chunk, nn__task_fn fn, void *ctx)
{
    int t = g_pool.threads;
    if (min_per_chunk < 1) {
        min_per_chunk = 1;
    }
    int chunks = n / min_per_chunk;
    chunks = chunks < t ? chunks : t;
    if (chunks <= 1 || t_in_job) {
        if (n > 0) {
            fn(ctx, 0, 0, n);
        }
        return;
    }
    pthread_mutex_lock(&g_pool.mu);
    g_pool.fn = fn;
    g_pool.ctx = ctx;
    atomic_store(&g_pool.n, n);
    atomic_store(&g_pool.chunks, chunks);
    atomic_store(&g_pool.next, 0);
    atomic_store(&g_pool.done, 0);
    g_pool.gen++;
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
    run_chunks();
    /* the caller finished its share; wait for the others (short: chunks are balanced), with a
     * pause loop first so a near-finished worker is not charged a sched_yield round trip */
    for (int spin = 0; atomic_load(&g_pool.done) < chunks; spin++) {
        if (spin < 4096) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}
