/* Fuzz target: the image header probe (format by magic, JPEG SOF walk, PNG IHDR/tRNS scan, WebP
 * features) over arbitrary bytes, with default and with tiny limits. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pipeline/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_img_info_t info;
    pl_img_err_t err;
    int rc = pl_img_probe(data, size, NULL, &info, &err);
    if (rc < 0 && (err.reason <= 0 || err.reason >= PL_IMG_R__COUNT || err.text[0] == '\0' ||
                   memchr(err.text, '\0', sizeof err.text) == NULL)) {
        __builtin_trap(); /* every failure names its reason */
    }
    if (rc == 0 && (info.width == 0 || info.height == 0 || info.format == PL_IMG_UNKNOWN)) {
        __builtin_trap();
    }
    pl_img_limits_t lim = {.max_side = 64, .max_pixels = 1024};
    rc = pl_img_probe(data, size, &lim, &info, NULL);
    if (rc == 0 && (info.width > 64 || info.height > 64 || info.width * info.height > 1024)) {
        __builtin_trap();
    }
    return 0;
}
