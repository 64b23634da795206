/* nn_gemm against nn_gemm_naive on odd shapes, strides and every transpose; the OpenBLAS
 * core-type decision and the sgemm verification. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "nn/blas.h"
#include "nn/gemm.h"
#include "t.h"

static float *rnd(size_t n, core_rng_t *r)
{
    float *p = core_malloc(n * sizeof(float));
    T_ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++) {
        p[i] = core_rng_uniform(r) * 2.0f - 1.0f;
    }
    return p;
}

T_CASE(gemm_matches_naive)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 1, 9}, {1, 31, 4}, {65, 65, 64},
                                    {129, 33, 250}, {64, 192, 576}};
    core_rng_t r;
    core_rng_init(&r, 1, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            /* padded leading dimensions exercise the stride arguments */
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
            float *a = rnd((size_t)(ta ? K : M) * (size_t)lda, &r);
            float *b = rnd((size_t)(tb ? N : K) * (size_t)ldb, &r);
            float *c1 = rnd((size_t)M * (size_t)ldc, &r);
            float *c2 = core_malloc((size_t)M * (size_t)ldc * sizeof(float));
            memcpy(c2, c1, (size_t)M * (size_t)ldc * sizeof(float));
            float beta = (t == 2) ? 0.0f : 0.3f;
            nn_gemm(ta, tb, M, N, K, 1.25f, a, lda, b, ldb, beta, c1, ldc);
            nn_gemm_naive(ta, tb, M, N, K, 1.25f, a, lda, b, ldb, beta, c2, ldc);
            for (int i = 0; i < M; i++) {
                for (int j = 0; j < ldc; j++) {
                    size_t k = (size_t)i * (size_t)ldc + (size_t)j;
                    if (j >= N) {
                        T_ASSERT(c1[k] == c2[k]); /* padding untouched by both */
                    } else {
                        T_ASSERT_NEAR(c1[k], c2[k], 2e-6 * (double)K + 1e-6);
                    }
                }
            }
            core_free(a);
            core_free(b);
            core_free(c1);
            core_free(c2);
        }
    }
}

T_CASE(gemm_split_over_threads)
{
    /* large GEMMs are split into row or column blocks over the pool; 1 and 3 threads agree to
     * rounding (OpenBLAS may pick its small-matrix kernels for the blocks, which sum in another
     * order), and both match the reference */
    static const int shapes[][3] = {{261, 70, 300}, {70, 261, 300}, {1000, 17, 400}};
    core_rng_t r;
    core_rng_init(&r, 2, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = t >> 1;
            float *a = rnd((size_t)M * (size_t)K, &r), *b = rnd((size_t)K * (size_t)N, &r);
            float *c[3];
            for (int k = 0; k < 3; k++) {
                c[k] = core_calloc((size_t)M * (size_t)N, sizeof(float));
            }
            T_ASSERT_EQ(nn_blas_set_threads(1), 1);
            nn_gemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c[0], N);
            T_ASSERT_EQ(nn_blas_set_threads(3), 3);
            nn_gemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c[1], N);
            nn_gemm_naive(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c[2], N);
            for (size_t i = 0; i < (size_t)M * (size_t)N; i++) {
                T_ASSERT_NEAR(c[1][i], c[2][i], 1e-4);
                T_ASSERT_NEAR(c[0][i], c[1][i], 1e-4);
            }
            for (int k = 0; k < 3; k++) {
                core_free(c[k]);
            }
            core_free(a);
            core_free(b);
        }
    }
    nn_blas_set_threads(1);
}

T_CASE(gemm_naive_known_values)
{
    /* [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50]; with A^T: [1 3; 2 4] * B = [26 30; 38 44] */
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    float c[4] = {1, 1, 1, 1};
    nn_gemm_naive(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 2.0f, c, 2);
    T_ASSERT(c[0] == 21 && c[1] == 24 && c[2] == 45 && c[3] == 52);
    nn_gemm(1, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    T_ASSERT(c[0] == 26 && c[1] == 30 && c[2] == 38 && c[3] == 44);
    nn_gemm(0, 1, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2); /* B^T = [5 7; 6 8] */
    T_ASSERT(c[0] == 17 && c[1] == 23 && c[2] == 39 && c[3] == 53);
}

T_CASE(blas_pick_coretype)
{
    /* AVX-512 CPU: generic and AVX2 kernels are fallbacks; AVX-512 kernels are kept. */
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(1, 1, "Prescott"), "SkylakeX");
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(1, 1, "Core2"), "SkylakeX");
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(1, 1, "Nehalem"), "SkylakeX");
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(1, 1, "Sandybridge"), "SkylakeX");
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(1, 1, "Haswell"), "SkylakeX");
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(1, 1, NULL), "SkylakeX");
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(1, 1, ""), "SkylakeX");
    T_ASSERT(nn_blas_pick_coretype(1, 1, "SkylakeX") == NULL);
    T_ASSERT(nn_blas_pick_coretype(1, 1, "cooperlake") == NULL);
    T_ASSERT(nn_blas_pick_coretype(1, 1, "SapphireRapids") == NULL);
    /* AVX2-only CPU */
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(0, 1, "Prescott"), "Haswell");
    T_ASSERT_STR_EQ(nn_blas_pick_coretype(0, 1, "Sandybridge"), "Haswell");
    T_ASSERT(nn_blas_pick_coretype(0, 1, "Haswell") == NULL);
    T_ASSERT(nn_blas_pick_coretype(0, 1, "Zen") == NULL);
    /* Neither: nothing better to pick. */
    T_ASSERT(nn_blas_pick_coretype(0, 0, "Prescott") == NULL);
    T_ASSERT(nn_blas_pick_coretype(0, 0, "Nehalem") == NULL);
}

T_CASE(blas_verify_and_init)
{
    double err = -1.0;
    T_ASSERT_OK(nn_blas_verify(&err));
    T_ASSERT(err >= 0.0 && err < 1e-5);
    /* argv NULL: never re-executes inside the test runner. */
    nn_blas_info_t info;
    T_ASSERT_OK(nn_blas_init(1, NULL, &info));
    T_ASSERT_EQ(info.threads, 1);
    T_ASSERT(info.corename[0] != '\0');
    T_ASSERT(strstr(info.config, "OpenBLAS") != NULL);
    T_ASSERT(nn_blas_set_threads(2) == 2);
    T_ASSERT(nn_threads() == 2);
    T_ASSERT(nn_blas_set_threads(0) == 2);
    T_ASSERT(nn_blas_set_threads(1) == 1);
    T_ASSERT(nn_threads() == 1);
}

T_MAIN()
