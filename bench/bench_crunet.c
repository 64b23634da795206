/* CRU-Net train-step benchmark, C side: crunet35c with the stride-2 stem ("crunet35c-s2") at
 * 64x64, batch 64, 200 classes (Tiny-ImageNet shape), cross-entropy, SGD with momentum 0.9 and
 * weight decay 5e-4. The PyTorch peer is bench/crunet_peer.py; bench/crunet.sh runs both,
 * alternating.
 *
 *   bench_crunet [threads] [steps] [preset]      (defaults 1, 10, crunet35c-s2)
 *
 * OpenBLAS set-up goes through nn_blas_init (core-type check, may re-exec; OPENBLAS_CORETYPE in
 * the environment is respected). Output: a per-phase breakdown, then one machine-readable line:
 *
 *   RESULT threads=N img_s=... img_cpu_s=... step_ms=... gmacs=... core=...
 *
 * img_s uses the median step time, img_cpu_s the median process CPU time per step (all threads;
 * robust to neighbours on a shared machine); gmacs is 3x the analytic forward MACs (forward, input
 * gradient, weight gradient) per second. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timing.h"
#include "nn/blas.h"
#include "nn/crunet.h"

/* CPU seconds of the whole process (all threads): a rate per CPU second is far less sensitive to
 * neighbours on a shared machine than wall time. */
static double cpu_s(void)
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

int main(int argc, char **argv)
{
    core_log_init("bench_crunet");
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int steps = argc > 2 ? atoi(argv[2]) : 10;
    const char *preset = argc > 3 ? argv[3] : "crunet35c-s2";
    if (threads < 1 || steps < 1) {
        fprintf(stderr, "usage: bench_crunet [threads] [steps] [preset]\n");
        return 2;
    }
    nn_blas_info_t info;
    if (nn_blas_init(threads, argv, &info) < 0) {
        return 1;
    }
    const int B = 64, H = 64, K = 200;
    nn_crunet_cfg_t cfg;
    if (nn_crunet_preset(preset, H, NN_CRUNET_HEAD_FC, K, B, &cfg) < 0) {
        fprintf(stderr, "unknown preset %s\n", preset);
        return 1;
    }
    nn_crunet_t *m = NULL;
    if (nn_crunet_new(&cfg, &m) < 0) {
        return 1;
    }
    nn_crunet_init(m, 0);
    size_t npix = (size_t)B * 3 * (size_t)H * (size_t)H;
    float *img = core_malloc_or_die(npix * sizeof(float));
    int32_t *labels = core_malloc_or_die(sizeof(int32_t) * (size_t)B);
    core_rng_t r;
    core_rng_init(&r, 1, 0);
    for (size_t i = 0; i < npix; i++) {
        img[i] = (float)core_rng_normal(&r);
    }
    for (int i = 0; i < B; i++) {
        labels[i] = (int32_t)core_rng_below(&r, (uint64_t)K);
    }
    float loss = 0.0f;
    double *st = core_malloc_or_die(sizeof(double) * (size_t)steps);
    double *ct = core_malloc_or_die(sizeof(double) * (size_t)steps);
    double ph[4] = {0};
    for (int s = -2; s < steps; s++) { /* two warm-up steps: page in the arenas, start threads */
        double t0 = core_now_s(), c0 = cpu_s();
        nn_crunet_zero_grad(m);
        nn_crunet_forward(m, img, 1);
        double t1 = core_now_s();
        if (nn_crunet_loss_labels(m, labels, &loss) < 0) {
            return 1;
        }
        double t2 = core_now_s();
        nn_crunet_backward(m);
        double t3 = core_now_s();
        nn_crunet_sgd_step(m, 0.01f, 0.9f, 5e-4f);
        double t4 = core_now_s();
        if (s < 0) {
            continue;
        }
        st[s] = t4 - t0;
        ct[s] = cpu_s() - c0;
        ph[0] += t1 - t0;
        ph[1] += t2 - t1;
        ph[2] += t3 - t2;
        ph[3] += t4 - t3;
    }
    qsort(st, (size_t)steps, sizeof(double), cmp_double);
    qsort(ct, (size_t)steps, sizeof(double), cmp_double);
    double med = st[steps / 2], cmed = ct[steps / 2];
    double macs = 3.0 * nn_crunet_forward_macs(m);
    printf("config: %s %dx%d batch %d classes %d, %zu params, OpenBLAS %s, %d thread(s)\n",
           preset, H, H, B, K, nn_crunet_num_params(m), info.corename, info.threads);
    printf("phases (mean ms): zero+forward %.1f, loss %.1f, backward %.1f, sgd %.1f; loss %.4f\n",
           1e3 * ph[0] / steps, 1e3 * ph[1] / steps, 1e3 * ph[2] / steps, 1e3 * ph[3] / steps,
           loss);
    printf("step: median %.1f ms, min %.1f, max %.1f; %.2f GMAC/step (3x forward)\n", 1e3 * med,
           1e3 * st[0], 1e3 * st[steps - 1], macs / 1e9);
    printf("RESULT threads=%d img_s=%.2f img_cpu_s=%.2f step_ms=%.1f gmacs=%.1f core=%s\n",
           info.threads, B / med, B / cmed, 1e3 * med, macs / med / 1e9, info.corename);
    core_free(st);
    core_free(ct);
    core_free(img);
    core_free(labels);
    nn_crunet_free(m);
    return 0;
}
