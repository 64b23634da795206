/* OpenBLAS set-up: core-type selection, thread count, and a correctness check.
 *
 * OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernel once, when the library loads, from
 * OPENBLAS_CORETYPE or its own cpuid table. On CPUs newer than that table it falls back to a
 * generic kernel (Prescott/Nehalem/Sandybridge, or Haswell on an AVX-512 CPU) that is 2-5x
 * slower. nn_blas_init() detects that case and, unless the user set OPENBLAS_CORETYPE (which is
 * never overridden), re-executes the process with OPENBLAS_CORETYPE set to the right kernel:
 * the core type cannot be changed after load, hence the exec. Then it sets the thread count,
 * checks sgemm against the naive GEMM (some builds compute wrong results on some CPUs) and logs
 * what was chosen. */
#ifndef NN_BLAS_H
#define NN_BLAS_H

/* Environment variable that marks a process as already re-executed (loop guard). */
#define NN_BLAS_REEXEC_ENV "SC_BLAS_REEXECED"

typedef struct nn_blas_info_s {
    char corename[32];  /* openblas_get_corename() after set-up */
    char config[128];   /* openblas_get_config() */
    int threads;        /* threads of the nn pool after set-up (OpenBLAS runs single-threaded) */
    int user_coretype;  /* OPENBLAS_CORETYPE was set by the user (or by our re-exec) */
    int fallback;       /* the kernel in use is a fallback for this CPU (warned) */
    double max_rel_err; /* worst relative error seen by the sgemm check */
} nn_blas_info_t;

/* The pure decision: given the CPU's features and OpenBLAS's chosen core name, the core type to
 * select, or NULL when the current one is right for the CPU (or the CPU has neither AVX2 nor
 * AVX-512). AVX-512 CPU: anything but SkylakeX/Cooperlake/SapphireRapids -> "SkylakeX". AVX2 CPU:
 * anything but those and Haswell/Zen/Excavator -> "Haswell". Case-insensitive; a NULL or empty
 * name counts as generic. Returns a static string. Thread-safe. */
const char *nn_blas_pick_coretype(int has_avx512f, int has_avx2, const char *corename);

/* Call first thing in main (before threads exist; it may execv). `argv` is main's argv (NULL
 * disables the re-exec). `threads` > 0 sets the thread count (nn_blas_set_threads), 0 takes
 * OpenBLAS's choice (OPENBLAS_NUM_THREADS or the core count). On success fills *info (may be
 * NULL).
 * Returns 0, or CORE_EMISMATCH when sgemm disagrees with the reference (do not train then). Does
 * not return when it re-executes; a failed execv is logged and set-up continues. */
int nn_blas_init(int threads, char *const *argv, nn_blas_info_t *info);

/* sgemm against nn_gemm_naive on a few odd shapes and every transpose combination. Returns 0 or
 * CORE_EMISMATCH; *max_rel_err (may be NULL) gets the worst error relative to the product scale.
 * Allocates scratch with core_malloc (CORE_ERR(ENOMEM) if that fails). Thread-safe. */
int nn_blas_verify(double *max_rel_err);

/* Sets the thread count of the nn kernels' pool (at most NN_MAX_THREADS), which runs the large
 * GEMMs (nn_gemm splits C into blocks, one single-threaded sgemm each) and the other loops
 * (LayerNorm, GELU, attention per head, loss rows, AdamW). OpenBLAS itself is set to one thread
 * so that no second set of workers spins between GEMMs. threads <= 0 changes nothing. Returns the
 * pool's count. Call from the training thread, not while a kernel runs. */
int nn_blas_set_threads(int threads);

/* Threads the nn kernels' pool uses (1 until nn_blas_set_threads/nn_blas_init). */
int nn_threads(void);

#endif
