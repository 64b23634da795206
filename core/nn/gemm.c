/* nn_gemm: the single OpenBLAS call site of the library, and its naive reference. */
#include "nn/gemm.h"

#include <cblas.h>

#include "internal.h"

static void gemm_check(int ta, int tb, int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb, const float *C, int ldc)
{
    NN_ASSERT(M >= 0 && N >= 0 && K >= 0);
    NN_ASSERT(C != NULL || M == 0 || N == 0);
    NN_ASSERT(lda >= (ta ? (M > 1 ? M : 1) : (K > 1 ? K : 1)));
    NN_ASSERT(ldb >= (tb ? (K > 1 ? K : 1) : (N > 1 ? N : 1)));
    NN_ASSERT(ldc >= (N > 1 ? N : 1));
    (void)A;
    (void)B;
}

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, split_m;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_job_t;

static void sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* One block of 16-row (or 16-column) units: the same GEMM on a slice of C, each element still
 * summed over the full K by one sgemm call. */
static void gemm_chunk(void *ctx, int chunk, int lo, int hi)
{
    const gemm_job_t *j = ctx;
    (void)chunk;
    if (j->split_m) {
        int m0 = lo * 16, m1 = hi * 16 < j->M ? hi * 16 : j->M;
        const float *a = j->ta ? j->A + m0 : j->A + (size_t)m0 * (size_t)j->lda;
        sgemm(j->ta, j->tb, m1 - m0, j->N, j->K, j->alpha, a, j->lda, j->B, j->ldb, j->beta,
              j->C + (size_t)m0 * (size_t)j->ldc, j->ldc);
    } else {
        int n0 = lo * 16, n1 = hi * 16 < j->N ? hi * 16 : j->N;
        const float *b = j->tb ? j->B + (size_t)n0 * (size_t)j->ldb : j->B + n0;
        sgemm(j->ta, j->tb, j->M, n1 - n0, j->K, j->alpha, j->A, j->lda, b, j->ldb, j->beta,
              j->C + n0, j->ldc);
    }
}

void nn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_check(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
    if (M == 0 || N == 0) {
        return;
    }
    /* Threads come from the nn pool, not from OpenBLAS (which nn_blas_set_threads keeps at one
     * thread): the pool splits C into row or column blocks, each an independent single-threaded
     * sgemm. One set of threads for GEMMs and for everything else means no OpenBLAS workers
     * spinning against the pool between GEMMs. Small GEMMs stay whole. */
    double work = (double)M * (double)N * (double)K;
    if (nn__pool_threads() > 1 && work >= 4e6) {
        gemm_job_t j = {trans_a, trans_b, M, N, K, lda, ldb, ldc, M >= N, alpha, beta, A, B, C};
        int units = ((j.split_m ? M : N) + 15) / 16;
        nn__parallel_for(units, 4, gemm_chunk, &j);
        return;
    }
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void nn_gemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_check(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * (size_t)lda + (size_t)i]
                                  : A[(size_t)i * (size_t)lda + (size_t)k];
                float b = trans_b ? B[(size_t)j * (size_t)ldb + (size_t)k]
                                  : B[(size_t)k * (size_t)ldb + (size_t)j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(size_t)i * (size_t)ldc + (size_t)j];
            /* beta == 0 ignores C entirely (it may hold NaN), as BLAS does. */
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * (double)*c));
        }
    }
}
