/* One GEMM entry point for the whole nn library, over OpenBLAS cblas_sgemm, plus a naive
 * reference with the same contract (tests compare the two).
 *
 * Row-major throughout: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
 * op(A) = A ([M,K], lda >= K) or A^T (A stored [K,M], lda >= M); likewise B ([K,N] or [N,K]).
 * Pointers are borrowed for the call; C must not alias A or B. Thread-safe (OpenBLAS's own
 * threads are set with nn_blas_init). Never fails: shape violations abort (NN_ASSERT). */
#ifndef NN_GEMM_H
#define NN_GEMM_H

enum { NN_NOTRANS = 0, NN_TRANS = 1 };

void nn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* Triple loop with double accumulation: slow, obviously correct. */
void nn_gemm_naive(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
