/* WebP decoding with libwebp's advanced API: optional cropped decoding straight into the context's
 * buffer (no libwebp-owned output), alpha composited on white. */
#include <string.h>

#include <webp/decode.h>

#include "core/alloc.h"
#include "internal.h"

static int webp_reason(VP8StatusCode st)
{
    switch (st) {
    case VP8_STATUS_OUT_OF_MEMORY:
        return PL_IMG_R_NO_MEMORY;
    case VP8_STATUS_NOT_ENOUGH_DATA:
        return PL_IMG_R_TRUNCATED;
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return PL_IMG_R_UNSUPPORTED;
    default:
        return PL_IMG_R_CORRUPT;
    }
}

int pl__webp_decode(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_info_t *info,
                    uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1, pl__region_t *reg,
                    pl_img_err_t *err)
{
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) {
        return pl__fail(err, PL_IMG_R_UNSUPPORTED, "webp: library version mismatch");
    }
    if (x1 == 0 || x1 > info->width) {
        x1 = info->width;
    }
    if (y1 == 0 || y1 > info->height) {
        y1 = info->height;
    }
    /* libwebp snaps the crop origin down to even coordinates (WebPIoInitFromOptions); do it
     * here so that the origin of what comes back is known exactly. */
    x0 &= ~1u;
    y0 &= ~1u;
    if (x0 >= x1 || y0 >= y1) {
        return pl__fail(err, PL_IMG_R_CORRUPT, "webp: empty decode window");
    }
    uint32_t w = x1 - x0, h = y1 - y0;
    int alpha = (info->flags & PL_IMG_F_ALPHA) != 0;
    size_t bpp = alpha ? 4u : 3u;
    size_t need = (size_t)w * h * bpp;
    if (pl__buf_reserve(&ctx->pix, need) < 0) {
        return pl__fail(err, PL_IMG_R_NO_MEMORY, "webp: out of memory (%zu bytes)", need);
    }
    if (x0 != 0 || y0 != 0 || w != info->width || h != info->height) {
        cfg.options.use_cropping = 1;
        cfg.options.crop_left = (int)x0;
        cfg.options.crop_top = (int)y0;
        cfg.options.crop_width = (int)w;
        cfg.options.crop_height = (int)h;
    }
    cfg.output.colorspace = alpha ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = ctx->pix.p;
    cfg.output.u.RGBA.stride = (int)((size_t)w * bpp);
    cfg.output.u.RGBA.size = need;
    VP8StatusCode st = WebPDecode(data, len, &cfg);
    WebPFreeDecBuffer(&cfg.output); /* no-op for external memory, kept for symmetry */
    if (st != VP8_STATUS_OK) {
        return pl__fail(err, webp_reason(st), "webp: decode failed (status %d)", (int)st);
    }
    if (alpha) {
        pl__rgba_to_rgb_white(ctx->pix.p, (size_t)w * h);
    }
    reg->px = ctx->pix.p;
    reg->x0 = x0;
    reg->y0 = y0;
    reg->w = w;
    reg->h = h;
    reg->full_w = info->width;
    reg->full_h = info->height;
    reg->stride = (size_t)w * 3u;
    return 0;
}
