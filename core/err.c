/* Error names and messages generated from CORE_ERRNO_MAP. */
#include "core/err.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

const char *core_strerror(int err)
{
    switch (err) {
#define CORE__ERR_MSG(name, val, msg)                                                              \
    case (val):                                                                                    \
        return (msg);
        CORE_ERRNO_MAP(CORE__ERR_MSG)
#undef CORE__ERR_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerrordesc_np is thread-safe and does not depend on the locale. */
        const char *s = strerrordesc_np(-err);
        if (s != NULL) {
            return s;
        }
    }
    return "unknown error";
}

const char *core_err_name(int err)
{
    switch (err) {
#define CORE__ERR_NAME(name, val, msg)                                                             \
    case (val):                                                                                    \
        return #name;
        CORE_ERRNO_MAP(CORE__ERR_NAME)
#undef CORE__ERR_NAME
    case 0:
        return "OK";
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        const char *s = strerrorname_np(-err);
        if (s != NULL) {
            return s;
        }
    }
    return "UNKNOWN";
}

void core__err_trace(const char *file, int line, const char *what, int rc)
{
    core_log(CORE_LOG_DEBUG, "%s:%d: %s failed: %s (%s)", file, line, what, core_err_name(rc),
             core_strerror(rc));
}
