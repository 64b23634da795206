/* Train-step benchmark, C side: ViT-Ti/8 at 64x64 (width 192, depth 12, heads 3, MLP 768),
 * batch 64, vocabulary 49,408, online-IDF loss, AdamW. The PyTorch peer is bench/train_peer.py;
 * bench/train.sh runs both, alternating.
 *
 *   bench_train [threads] [steps]        (defaults 1 and 10)
 *
 * OpenBLAS set-up goes through nn_blas_init (core-type check, may re-exec; OPENBLAS_CORETYPE in
 * the environment is respected). The sgemm peak is measured in the same run on training-sized
 * shapes. Output: a per-phase breakdown, then one machine-readable line:
 *
 *   RESULT threads=2 img_s=... step_ms=... gflops=... peak_gflops=... peak_frac=... core=...
 *
 * img_s uses the median step time; gflops counts the forward + backward GEMM FLOPs
 * analytically (nn_vit_train_gemm_flops) over the median step time; cpu_ms is the process CPU
 * time per step (all threads), which is steadier than wall time on a shared machine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timing.h"
#include "nn/blas.h"
#include "nn/gemm.h"
#include "nn/vit.h"

static double cpu_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sgemm GFLOP/s on one row-major shape C[M,N] = A[M,K] B[N,K]^T, best of a few timed runs. */
static double sgemm_gflops(int M, int N, int K, int ta, int tb)
{
    float *a = core_malloc_or_die(sizeof(float) * (size_t)M * (size_t)K);
    float *b = core_malloc_or_die(sizeof(float) * (size_t)N * (size_t)K);
    float *c = core_malloc_or_die(sizeof(float) * (size_t)M * (size_t)N);
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++) {
        a[i] = (float)(i % 13) * 0.01f;
    }
    for (size_t i = 0; i < (size_t)N * (size_t)K; i++) {
        b[i] = (float)(i % 7) * 0.01f;
    }
    double best = 0.0;
    for (int rep = 0; rep < 5; rep++) {
        int iters = 0;
        double t0 = core_now_s(), t;
        do {
            nn_gemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c, N);
            iters++;
            t = core_now_s() - t0;
        } while (t < 0.1);
        double g = 2.0 * M * N * K * iters / t / 1e9;
        best = g > best ? g : best;
    }
    core_free(a);
    core_free(b);
    core_free(c);
    return best;
}

int main(int argc, char **argv)
{
    core_log_init("bench_train");
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    if (threads < 1 || steps < 1) {
        fprintf(stderr, "usage: bench_train [threads] [steps]\n");
        return 2;
    }
    nn_blas_info_t info;
    if (nn_blas_init(threads, argv, &info) < 0) {
        return 1;
    }
    nn_vit_cfg_t cfg;
    if (nn_vit_preset("ViT-Ti/8", 64, 49408, 64, &cfg) < 0) {
        return 1;
    }
    int B = cfg.batch, BN = B * 65;
    /* the step's dominant GEMM shapes: c_fc forward, its weight gradient, qkv forward */
    double peak = 0.0;
    double p1 = sgemm_gflops(BN, 768, 192, 0, 1);
    double p2 = sgemm_gflops(768, 192, BN, 1, 0);
    double p3 = sgemm_gflops(BN, 576, 192, 0, 1);
    peak = fmax(p1, fmax(p2, p3));
    printf("sgemm peak: %.1f GFLOP/s (fc fwd %.1f, fc dW %.1f, qkv fwd %.1f)\n", peak, p1, p2, p3);

    nn_vit_t *m = NULL;
    if (nn_vit_new(&cfg, &m) < 0) {
        return 1;
    }
    nn_vit_init(m, 0);
    size_t npix = (size_t)B * 64 * 64 * 3;
    uint8_t *u8 = core_malloc_or_die(npix);
    float *img = core_malloc_or_die(npix * sizeof(float));
    core_rng_t r;
    core_rng_init(&r, 1, 0);
    for (size_t i = 0; i < npix; i++) {
        u8[i] = (uint8_t)core_rng_below(&r, 256);
    }
    nn_vit_images_from_u8(img, u8, B, 64, 64);
    /* labels: SOT, EOT, pad 0 and ~20 random token ids per sample (sorted, unique) */
    uint32_t *off = core_malloc_or_die(sizeof(uint32_t) * (size_t)(B + 1));
    uint32_t *ids = core_malloc_or_die(sizeof(uint32_t) * (size_t)B * 32);
    off[0] = 0;
    for (int i = 0; i < B; i++) {
        uint32_t n = off[i];
        ids[n++] = 0;
        uint32_t prev = 0;
        for (int k = 0; k < 20; k++) {
            prev += 1 + (uint32_t)core_rng_below(&r, 2400);
            ids[n++] = prev;
        }
        ids[n++] = 49406;
        ids[n++] = 49407;
        off[i + 1] = n;
    }
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    float loss = 0.0f;
    for (int s = 0; s < 2; s++) { /* warm-up: page in the arenas, start OpenBLAS threads */
        if (nn_vit_train_step(m, img, off, ids, 1, &opt, 1e-4f, &loss) < 0) {
            return 1;
        }
    }
    double *st = core_malloc_or_die(sizeof(double) * (size_t)steps);
    double ph[4] = {0};
    double cpu0 = cpu_now_s();
    for (int s = 0; s < steps; s++) {
        double t0 = core_now_s();
        nn_vit_zero_grad(m);
        nn_vit_forward(m, img);
        double t1 = core_now_s();
        if (nn_vit_loss(m, off, ids, 1, &loss) < 0) {
            return 1;
        }
        double t2 = core_now_s();
        nn_vit_backward(m);
        double t3 = core_now_s();
        nn_vit_adamw_step(m, &opt, 1e-4f, NULL);
        double t4 = core_now_s();
        st[s] = t4 - t0;
        ph[0] += t1 - t0;
        ph[1] += t2 - t1;
        ph[2] += t3 - t2;
        ph[3] += t4 - t3;
    }
    double cpu_step = (cpu_now_s() - cpu0) / steps;
    qsort(st, (size_t)steps, sizeof(double), cmp_double);
    double med = st[steps / 2];
    double flops = nn_vit_train_gemm_flops(&cfg);
    printf("config: ViT-Ti/8 64x64 width %d depth %d heads %d batch %d vocab %d, %zu params, "
           "OpenBLAS %s, %d thread(s)\n",
           cfg.width, cfg.depth, cfg.heads, B, cfg.vocab, nn_vit_num_params(m), info.corename,
           info.threads);
    printf("phases (mean ms): zero+forward %.1f, loss %.1f, backward %.1f, adamw %.1f; "
           "loss %.4f\n",
           1e3 * ph[0] / steps, 1e3 * ph[1] / steps, 1e3 * ph[2] / steps, 1e3 * ph[3] / steps,
           loss);
    printf("step: median %.1f ms, min %.1f, max %.1f; GEMM work %.2f GFLOP/step\n", 1e3 * med,
           1e3 * st[0], 1e3 * st[steps - 1], flops / 1e9);
    printf("RESULT threads=%d img_s=%.2f step_ms=%.1f gflops=%.1f peak_gflops=%.1f "
           "peak_frac=%.3f cpu_ms=%.1f core=%s\n",
           info.threads, B / med, 1e3 * med, flops / med / 1e9, peak, flops / med / 1e9 / peak,
           1e3 * cpu_step, info.corename);
    core_free(st);
    core_free(u8);
    core_free(img);
    core_free(off);
    core_free(ids);
    nn_vit_free(m);
    return 0;
}
