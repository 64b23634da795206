/* Minimal test runner (libuv task.h style). A test file defines cases with T_CASE and ends with
 * T_MAIN(). meson registers every case as its own test by reading the T_CASE lines, so each case
 * runs in its own process with its own timeout. Assertions print both values and file:line and
 * exit non-zero; T_SKIP exits 77, which meson reports as skipped.
 *
 *   T_CASE(crc_known_vectors) { T_ASSERT_EQ(core_crc32c(0, "", 0), 0); }
 *   T_MAIN()
 *
 * Each case must start at the beginning of a line with "T_CASE(" for meson to find it. */
#ifndef T_H
#define T_H

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef void (*t_case_fn)(void);

void t_register(const char *name, t_case_fn fn);
int t_main(int argc, char **argv);
void t_fail(const char *file, int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
void t_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Path of a file under ../shared/data (SC_SHARED_DATA); skips the test when it is absent. The
 * result is a static buffer valid until the next call. */
const char *t_shared(const char *rel);
/* Path of a file in the source tree (SC_SOURCE_ROOT). Static buffer, as above. */
const char *t_source(const char *rel);
/* A fresh empty temporary directory, removed with everything in it at exit. */
const char *t_tmpdir(void);
/* Reads a whole file into a core_malloc'd buffer (NUL-terminated); fails the test on error. */
char *t_read_file(const char *path, size_t *len);

#define T_CASE(name)                                                                               \
    static void t_case_##name(void);                                                               \
    __attribute__((constructor)) static void t_reg_##name(void)                                    \
    {                                                                                              \
        t_register(#name, t_case_##name);                                                          \
    }                                                                                              \
    static void t_case_##name(void)

#define T_MAIN()                                                                                   \
    int main(int argc, char **argv) { return t_main(argc, argv); }

#define T_FAIL(...) t_fail(__FILE__, __LINE__, __VA_ARGS__)
#define T_SKIP(...) t_skip(__VA_ARGS__)

#define T_ASSERT(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            T_FAIL("assertion failed: %s", #cond);                                                 \
        }                                                                                          \
    } while (0)

#define T_ASSERT_EQ(a, b)                                                                          \
    do {                                                                                           \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                                    \
        if (t_a_ != t_b_) {                                                                        \
            T_FAIL("%s == %s: %lld != %lld", #a, #b, t_a_, t_b_);                                  \
        }                                                                                          \
    } while (0)

#define T_ASSERT_U64_EQ(a, b)                                                                      \
    do {                                                                                           \
        unsigned long long t_a_ = (unsigned long long)(a), t_b_ = (unsigned long long)(b);         \
        if (t_a_ != t_b_) {                                                                        \
            T_FAIL("%s == %s: %llu (0x%llx) != %llu (0x%llx)", #a, #b, t_a_, t_a_, t_b_, t_b_);    \
        }                                                                                          \
    } while (0)

#define T_ASSERT_OK(expr)                                                                          \
    do {                                                                                           \
        int t_rc_ = (expr);                                                                        \
        if (t_rc_ < 0) {                                                                           \
            T_FAIL("%s returned %d %s (%s)", #expr, t_rc_, core_err_name(t_rc_),                   \
                   core_strerror(t_rc_));                                                          \
        }                                                                                          \
    } while (0)

#define T_ASSERT_ERR(expr, code)                                                                   \
    do {                                                                                           \
        int t_rc_ = (expr), t_want_ = (code);                                                      \
        if (t_rc_ != t_want_) {                                                                    \
            T_FAIL("%s returned %d %s, expected %d %s", #expr, t_rc_, core_err_name(t_rc_),        \
                   t_want_, core_err_name(t_want_));                                               \
        }                                                                                          \
    } while (0)

#define T_ASSERT_STR_EQ(a, b)                                                                      \
    do {                                                                                           \
        const char *t_a_ = (a), *t_b_ = (b);                                                       \
        if (t_a_ == NULL || t_b_ == NULL || strcmp(t_a_, t_b_) != 0) {                             \
            T_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, t_a_ ? t_a_ : "(null)",                   \
                   t_b_ ? t_b_ : "(null)");                                                        \
        }                                                                                          \
    } while (0)

#define T_ASSERT_NEAR(a, b, tol)                                                                   \
    do {                                                                                           \
        double t_a_ = (double)(a), t_b_ = (double)(b), t_t_ = (double)(tol);                       \
        if (!(fabs(t_a_ - t_b_) <= t_t_)) {                                                        \
            T_FAIL("%s ~= %s: %.9g vs %.9g (diff %.3g > tol %.3g)", #a, #b, t_a_, t_b_,            \
                   fabs(t_a_ - t_b_), t_t_);                                                       \
        }                                                                                          \
    } while (0)

#endif
