/* Internal helpers shared by the nn library's .c files (never included by public headers). */
#ifndef NN_INTERNAL_H
#define NN_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>

/* Kernel preconditions (shapes, NULL pointers): a violated one is a programmer error, so it
 * prints file:line and aborts, in every build type (ggml's GGML_ASSERT). */
#define NN_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: NN_ASSERT(%s) failed\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Branch-free float exp and erf that GCC can vectorise (glibc's expf/erff are scalar calls
 * unless -ffast-math, which STYLE.md forbids). Both are accurate to a few ulp over the range the
 * kernels use; see fastmath.c. */
float nn__expf(float x);
float nn__erff(float x);

#endif
