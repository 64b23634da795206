/* Full decode to RGB (verify=full) and the max_side re-encode used by ingest, on top of the
 * per-format decoders; plus the scratch context's lifetime. */
#include <string.h>

#include <turbojpeg.h>

#include "core/alloc.h"
#include "internal.h"

int pl_img_ctx_new(pl_img_ctx_t **out)
{
    pl_img_ctx_t *ctx = core_calloc(1, sizeof *ctx);
    *out = NULL;
    if (ctx == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int rc = pl__jpeg_ctx_init(ctx);
    if (rc < 0) {
        core_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

void pl_img_ctx_free(pl_img_ctx_t *ctx)
{
    if (ctx == NULL) {
        return;
    }
    pl__jpeg_ctx_close(ctx);
    if (ctx->tj_compress != NULL) {
        (void)tjDestroy(ctx->tj_compress);
    }
    core_free(ctx->pix.p);
    core_free(ctx->rows.p);
    core_free(ctx->scratch.p);
    core_free(ctx->resized.p);
    core_free(ctx);
}

/* Full decode at DCT scale num/8 (8 = full size) into ctx->pix. */
static int decode_full(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                       const pl_img_info_t *info, int num, pl__region_t *reg, pl_img_err_t *err)
{
    switch (info->format) {
    case PL_IMG_JPEG:
        return pl__jpeg_decode(ctx, data, len, info, num, 0, 0, 0, 0, 1, reg, err);
    case PL_IMG_PNG:
        return pl__png_decode(ctx, data, len, info, reg, err);
    case PL_IMG_WEBP:
        return pl__webp_decode(ctx, data, len, info, 0, 0, 0, 0, reg, err);
    default:
        return pl__fail(err, PL_IMG_R_UNKNOWN_FORMAT, "image: unknown format");
    }
}

int pl_img_decode_rgb(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                      const pl_img_limits_t *lim, pl_img_info_t *info, const uint8_t **rgb,
                      pl_img_err_t *err)
{
    pl__region_t reg;
    *rgb = NULL;
    int rc = pl_img_probe(data, len, lim, info, err);
    if (rc < 0) {
        return rc;
    }
    rc = decode_full(ctx, data, len, info, 8, &reg, err);
    if (rc < 0) {
        return rc;
    }
    *rgb = reg.px;
    return 0;
}

int pl_img_verify(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_limits_t *lim,
                  pl_img_info_t *info, pl_img_err_t *err)
{
    const uint8_t *rgb;
    return pl_img_decode_rgb(ctx, data, len, lim, info, &rgb, err);
}

int pl_img_reencode_max_side(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                             const pl_img_limits_t *lim, uint32_t max_side, int quality,
                             uint8_t **out, size_t *out_len, pl_img_info_t *out_info,
                             pl_img_err_t *err)
{
    pl_img_info_t info;
    pl__region_t reg;
    unsigned char *jpg = NULL;
    unsigned long jpg_len = 0;
    int rc;
    *out = NULL;
    *out_len = 0;
    if (quality == 0) {
        quality = 90;
    }
    if (max_side == 0 || quality < 1 || quality > 100) {
        return CORE_ECONFIG;
    }
    rc = pl_img_probe(data, len, lim, &info, err);
    if (rc < 0) {
        return rc;
    }
    if (out_info != NULL) {
        *out_info = info;
    }
    uint32_t lng = info.width > info.height ? info.width : info.height;
    uint32_t sht = info.width > info.height ? info.height : info.width;
    if (lng <= max_side) {
        return 0; /* resize_only_if_bigger: keep the original bytes */
    }
    /* Target: longer side = max_side, shorter rounded to nearest (at least 1). */
    uint32_t new_short = (uint32_t)(((uint64_t)sht * max_side * 2u + lng) / (2u * lng));
    if (new_short == 0) {
        new_short = 1;
    }
    uint32_t nw = info.width >= info.height ? max_side : new_short;
    uint32_t nh = info.width >= info.height ? new_short : max_side;
    /* A JPEG may be decoded DCT-scaled as long as the scaled image still covers the target: the
     * antialiased resample that follows does the rest. */
    int num = info.format == PL_IMG_JPEG ? pl_jpeg_pick_scale(info.width, info.height, nw, nh) : 8;
    rc = decode_full(ctx, data, len, &info, num, &reg, err);
    if (rc < 0) {
        return rc;
    }
    double box[4] = {0.0, 0.0, (double)reg.w, (double)reg.h};
    size_t scratch = pl_resample_scratch_size(reg.w, reg.h, box, nw, nh, PL_INTERP_BICUBIC);
    if (pl__buf_reserve(&ctx->scratch, scratch) < 0 ||
        pl__buf_reserve(&ctx->resized, (size_t)nw * nh * 3u) < 0) {
        return pl__fail(err, PL_IMG_R_NO_MEMORY, "resize: out of memory");
    }
    rc = pl_resample(reg.px, reg.w, reg.h, reg.stride, box, ctx->resized.p, nw, nh,
                     PL_INTERP_BICUBIC, ctx->scratch.p, ctx->scratch.cap);
    if (rc < 0) {
        return rc;
    }
    if (ctx->tj_compress == NULL) {
        ctx->tj_compress = tjInitCompress();
        if (ctx->tj_compress == NULL) {
            return pl__fail(err, PL_IMG_R_NO_MEMORY, "jpeg encode: %s", tjGetErrorStr2(NULL));
        }
    }
    if (tjCompress2(ctx->tj_compress, ctx->resized.p, (int)nw, 0, (int)nh, TJPF_RGB, &jpg, &jpg_len,
                    TJSAMP_420, quality, TJFLAG_ACCURATEDCT) != 0) {
        rc = pl__fail(err, PL_IMG_R_UNSUPPORTED, "jpeg encode: %s",
                      tjGetErrorStr2(ctx->tj_compress));
        tjFree(jpg);
        return rc;
    }
    *out = core_malloc(jpg_len);
    if (*out == NULL) {
        tjFree(jpg);
        return CORE_ERR(ENOMEM);
    }
    memcpy(*out, jpg, jpg_len);
    *out_len = jpg_len;
    tjFree(jpg);
    if (out_info != NULL) {
        memset(out_info, 0, sizeof *out_info);
        out_info->format = PL_IMG_JPEG;
        out_info->components = 3;
        out_info->bit_depth = 8;
        out_info->width = nw;
        out_info->height = nh;
    }
    return 0;
}
