/* OpenBLAS core-type detection, re-exec, thread count and sgemm verification (see nn/blas.h). */
#include "nn/blas.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rng.h"
#include "internal.h"
#include "nn/gemm.h"

static int name_in(const char *name, const char *const *list)
{
    for (; *list; list++) {
        if (strcasecmp(name, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

const char *nn_blas_pick_coretype(int has_avx512f, int has_avx2, const char *corename)
{
    static const char *const k512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const k256[] = {"Haswell", "Zen", "Excavator", "SkylakeX", "Cooperlake",
                                       "SapphireRapids", NULL};
    const char *name = corename ? corename : "";
    if (has_avx512f) {
        return name_in(name, k512) ? NULL : "SkylakeX";
    }
    if (has_avx2) {
        return name_in(name, k256) ? NULL : "Haswell";
    }
    return NULL;
}

int nn_blas_set_threads(int threads)
{
    if (threads > 0) {
        /* nn_gemm splits large GEMMs over the pool; OpenBLAS itself runs single-threaded */
        openblas_set_num_threads(1);
        nn__pool_set_threads(threads);
    }
    return nn__pool_threads();
}

int nn_threads(void)
{
    return nn__pool_threads();
}

void nn__blas_single_thread(int on, int *saved)
{
    /* OpenBLAS's thread count is read per call, so a job whose threads each run small GEMMs
     * (attention per head) turns its threading off for the duration */
    if (on) {
        *saved = openblas_get_num_threads();
        if (*saved > 1) {
            openblas_set_num_threads(1);
        }
    } else if (*saved > 1) {
        openblas_set_num_threads(*saved);
    }
}

static void fill(float *p, size_t n, core_rng_t *r)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = core_rng_uniform(r) * 2.0f - 1.0f;
    }
}

int nn_blas_verify(double *max_rel_err)
{
    /* Odd sizes hit the kernels' edge paths; 192x256x384 is large enough for the threaded path. */
    static const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {65, 64, 192},
                                    {192, 256, 384}};
    double worst = 0.0;
    int rc = 0;
    core_rng_t r;
    core_rng_init(&r, 0x5eed, 7);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && rc == 0; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = core_malloc(sizeof(float) * (size_t)M * (size_t)K);
        float *b = core_malloc(sizeof(float) * (size_t)K * (size_t)N);
        float *c = core_malloc(sizeof(float) * (size_t)M * (size_t)N);
        float *ref = core_malloc(sizeof(float) * (size_t)M * (size_t)N);
        if (!a || !b || !c || !ref) {
            rc = CORE_ERR(ENOMEM);
        } else {
            fill(a, (size_t)M * (size_t)K, &r);
            fill(b, (size_t)K * (size_t)N, &r);
            for (int t = 0; t < 4; t++) {
                int ta = t & 1, tb = t >> 1;
                fill(c, (size_t)M * (size_t)N, &r);
                memcpy(ref, c, sizeof(float) * (size_t)M * (size_t)N);
                nn_gemm(ta, tb, M, N, K, 0.75f, a, ta ? M : K, b, tb ? K : N, 0.5f, c, N);
                nn_gemm_naive(ta, tb, M, N, K, 0.75f, a, ta ? M : K, b, tb ? K : N, 0.5f, ref, N);
                /* Entries are sums of K products of magnitude <= 1: scale errors by sqrt(K). */
                double scale = sqrt((double)K) + 1.0;
                for (size_t i = 0; i < (size_t)M * (size_t)N; i++) {
                    double e = fabs((double)c[i] - (double)ref[i]) / scale;
                    if (!(e <= worst)) {
                        worst = isnan(e) ? INFINITY : e;
                    }
                }
            }
            if (worst > 1e-5) {
                rc = CORE_EMISMATCH;
            }
        }
        core_free(a);
        core_free(b);
        core_free(c);
        core_free(ref);
    }
    if (max_rel_err) {
        *max_rel_err = worst;
    }
    return rc;
}

int nn_blas_init(int threads, char *const *argv, nn_blas_info_t *info)
{
    nn_blas_info_t tmp;
    nn_blas_info_t *inf = info ? info : &tmp;
    memset(inf, 0, sizeof *inf);

    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f") != 0;
    int has2 = __builtin_cpu_supports("avx2") != 0;
    const char *user = getenv("OPENBLAS_CORETYPE");
    int reexeced = getenv(NN_BLAS_REEXEC_ENV) != NULL;
    const char *core = openblas_get_corename();
    const char *want = nn_blas_pick_coretype(has512, has2, core);

    inf->user_coretype = user != NULL && user[0] != '\0' && !reexeced;
    if (want && !inf->user_coretype && !reexeced && argv && argv[0]) {
        core_log_info("OpenBLAS chose the %s kernel on a CPU with %s; re-executing with "
                      "OPENBLAS_CORETYPE=%s",
                      core, has512 ? "AVX-512" : "AVX2", want);
        if (setenv("OPENBLAS_CORETYPE", want, 1) == 0 && setenv(NN_BLAS_REEXEC_ENV, "1", 1) == 0) {
            execv("/proc/self/exe", argv);
        }
        core_log_warn("re-exec for OPENBLAS_CORETYPE failed: %s; keeping %s", strerror(errno),
                      core);
        unsetenv("OPENBLAS_CORETYPE");
    }
    /* The marker has done its job; children of this process decide for themselves (they inherit
     * OPENBLAS_CORETYPE, which they then treat as set by the user). */
    unsetenv(NN_BLAS_REEXEC_ENV);
    if (want) {
        inf->fallback = 1;
        core_log_warn("OpenBLAS uses the %s kernel on a CPU with %s (%s would be faster)%s", core,
                      has512 ? "AVX-512" : "AVX2", want,
                      inf->user_coretype ? "; OPENBLAS_CORETYPE is set, so it is kept" : "");
    }
    if (threads <= 0) {
        /* keep the count OpenBLAS chose (OPENBLAS_NUM_THREADS or the cores), but run it through
         * the pool */
        threads = openblas_get_num_threads();
    }
    inf->threads = nn_blas_set_threads(threads);
    snprintf(inf->corename, sizeof inf->corename, "%s", core ? core : "?");
    snprintf(inf->config, sizeof inf->config, "%s", openblas_get_config());
    int rc = nn_blas_verify(&inf->max_rel_err);
    if (rc == CORE_EMISMATCH) {
        core_log_err("OpenBLAS sgemm (%s kernel) disagrees with the reference GEMM "
                     "(relative error %.3g); set OPENBLAS_CORETYPE to another kernel",
                     inf->corename, inf->max_rel_err);
        return rc;
    }
    if (rc < 0) {
        return rc;
    }
    core_log_info("OpenBLAS: kernel %s%s, %d thread%s (nn pool; OpenBLAS single-threaded), sgemm "
                  "verified (max rel err %.2g)",
                  inf->corename, inf->user_coretype ? " (OPENBLAS_CORETYPE)" : "", inf->threads,
                  inf->threads == 1 ? "" : "s", inf->max_rel_err);
    return 0;
}
