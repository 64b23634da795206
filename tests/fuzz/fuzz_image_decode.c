/* Fuzz target: full verify-decode and decode+augment (train and eval) over arbitrary bytes with
 * small limits, so hostile headers cannot make a run allocate much. */
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "pipeline/augment.h"
#include "pipeline/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_img_ctx_t *ctx;
    if (pl_img_ctx_new(&ctx) < 0) {
        return 0;
    }
    pl_img_limits_t lim = {.max_side = 4096, .max_pixels = 1u << 20};
    pl_img_info_t info;
    pl_img_err_t err;
    const uint8_t *rgb;
    int rc = pl_img_decode_rgb(ctx, data, size, &lim, &info, &rgb, &err);
    if (rc == 0) {
        /* Touch every pixel: a short buffer shows up under ASan. */
        volatile uint32_t acc = 0;
        for (size_t i = 0; i < (size_t)info.width * info.height * 3u; i++) {
            acc += rgb[i];
        }
        (void)acc;
    }
    core_rng_t rng;
    core_rng_init(&rng, size, 0);
    static uint8_t out[24 * 24 * 3];
    pl_aug_t aug;
    pl_aug_defaults(&aug);
    aug.out_w = aug.out_h = 24;
    aug.scale_min = 0.08;
    aug.flip = 1;
    (void)pl_img_decode_augment(ctx, data, size, &lim, &aug, &rng, out, sizeof out, NULL, &err);
    aug.train = 0;
    aug.interp = PL_INTERP_BILINEAR;
    (void)pl_img_decode_augment(ctx, data, size, &lim, &aug, &rng, out, sizeof out, NULL, &err);
    pl_img_ctx_free(ctx);
    return 0;
}
