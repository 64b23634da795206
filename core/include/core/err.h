/* Error codes shared by every library: 0 is success, negative is failure.
 *
 * System errors are -errno (CORE_ERR(EIO)). Project codes live below -4096 and are defined once in
 * CORE_ERRNO_MAP, which generates the enum, core_strerror() and core_err_name(). All functions here
 * are thread-safe and return pointers to static strings (never free them). */
#ifndef CORE_ERR_H
#define CORE_ERR_H

#include <errno.h>

#define CORE_ERR(e) (-(e))

/* X(NAME, value, message) */
#define CORE_ERRNO_MAP(X)                                                                          \
    X(NEED_MORE, -4097, "more input is needed")                                                    \
    X(BAD_MAGIC, -4098, "bad magic number")                                                        \
    X(BAD_VERSION, -4099, "unsupported format version")                                            \
    X(CORRUPT, -4100, "data is corrupt")                                                           \
    X(TOO_LARGE, -4101, "size exceeds a limit")                                                    \
    X(SHAPE_MISMATCH, -4102, "tensor shape mismatch")                                              \
    X(NOT_FOUND, -4103, "not found")                                                               \
    X(CLOSED, -4104, "closed")                                                                     \
    X(FULL, -4105, "no space left")                                                                \
    X(BAD_UTF8, -4106, "invalid UTF-8")                                                            \
    X(CONFIG, -4107, "invalid configuration")                                                      \
    X(MISMATCH, -4108, "identity mismatch")                                                        \
    X(UNSUPPORTED, -4109, "unsupported")                                                           \
    X(STATE, -4110, "object is in an error state")                                                 \
    X(DTYPE_MISMATCH, -4111, "tensor dtype mismatch")

typedef enum {
#define CORE__ERR_ENUM(name, val, msg) CORE_E##name = (val),
    CORE_ERRNO_MAP(CORE__ERR_ENUM)
#undef CORE__ERR_ENUM
} core_errno_t;

/* Human-readable message for a negative code (or -errno). Never NULL. */
const char *core_strerror(int err);

/* Symbolic name ("CORRUPT", "ENOENT"). Never NULL. */
const char *core_err_name(int err);

/* Propagation helpers in the style of zstd's FORWARD_IF_ERROR: they jump to a local `fail:` label
 * with `rc` set, logging file:line and the condition in debug builds. */
void core__err_trace(const char *file, int line, const char *what, int rc);

#ifndef NDEBUG
#define CORE__TRACE_ERR(what, rc) core__err_trace(__FILE__, __LINE__, (what), (rc))
#else
#define CORE__TRACE_ERR(what, rc) ((void)0)
#endif

/* if (cond) { rc = err; goto fail; } */
#define CORE_FAIL_IF(cond, err)                                                                    \
    do {                                                                                           \
        if (cond) {                                                                                \
            rc = (err);                                                                            \
            CORE__TRACE_ERR(#cond, rc);                                                            \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* rc = expr; if (rc < 0) goto fail; */
#define CORE_TRY(expr)                                                                             \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc < 0) {                                                                              \
            CORE__TRACE_ERR(#expr, rc);                                                            \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

#endif
