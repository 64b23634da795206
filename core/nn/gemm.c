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

void nn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_check(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
    if (M == 0 || N == 0) {
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
