/* PNG decoding with libspng: limits set before decoding, every colour type and bit depth expanded
 * to 8-bit RGB, transparency (alpha channel or tRNS) composited on white. */
#include <spng.h>

#include "core/alloc.h"
#include "internal.h"

/* Ancillary chunks (text, ICC, EXIF) are capped so a hostile file cannot make spng buffer
 * megabytes of metadata we never use; IDAT is streamed and not subject to the cache cap. */
#define PNG_CHUNK_MAX (8u << 20)
#define PNG_CACHE_MAX (16u << 20)

void pl__rgba_to_rgb_white(uint8_t *px, size_t n)
{
    const uint8_t *in = px;
    uint8_t *out = px;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = in[3], na = 255u - a;
        out[0] = (uint8_t)((in[0] * a + 255u * na + 127u) / 255u);
        out[1] = (uint8_t)((in[1] * a + 255u * na + 127u) / 255u);
        out[2] = (uint8_t)((in[2] * a + 255u * na + 127u) / 255u);
        in += 4;
        out += 3;
    }
}

static int spng_reason(int e)
{
    if (e == SPNG_EMEM) {
        return PL_IMG_R_NO_MEMORY;
    }
    if (e == SPNG_EUSER_WIDTH || e == SPNG_EUSER_HEIGHT || e == SPNG_ECHUNK_LIMITS) {
        return PL_IMG_R_TOO_LARGE;
    }
    if (e == SPNG_IO_EOF) {
        return PL_IMG_R_TRUNCATED;
    }
    return PL_IMG_R_CORRUPT;
}

int pl__png_decode(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_info_t *info,
                   pl__region_t *reg, pl_img_err_t *err)
{
    int rc, e;
    spng_ctx *sp = spng_ctx_new(0);
    if (sp == NULL) {
        return pl__fail(err, PL_IMG_R_NO_MEMORY, "png: out of memory");
    }
    int alpha = (info->flags & PL_IMG_F_ALPHA) != 0;
    int fmt = alpha ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
    size_t need = 0;
    if ((e = spng_set_png_buffer(sp, data, len)) != 0 ||
        (e = spng_set_image_limits(sp, info->width, info->height)) != 0 ||
        (e = spng_set_chunk_limits(sp, PNG_CHUNK_MAX, PNG_CACHE_MAX)) != 0 ||
        (e = spng_decoded_image_size(sp, fmt, &need)) != 0) {
        rc = pl__fail(err, spng_reason(e), "png: %s", spng_strerror(e));
        goto out;
    }
    if (need != (size_t)info->width * info->height * (alpha ? 4u : 3u)) {
        rc =
            pl__fail(err, PL_IMG_R_BAD_HEADER, "png: decoder size %zu disagrees with header", need);
        goto out;
    }
    rc = pl__buf_reserve(&ctx->pix, need);
    if (rc < 0) {
        rc = pl__fail(err, PL_IMG_R_NO_MEMORY, "png: out of memory (%zu bytes)", need);
        goto out;
    }
    e = spng_decode_image(sp, ctx->pix.p, need, fmt, alpha ? SPNG_DECODE_TRNS : 0);
    if (e != 0) {
        rc = pl__fail(err, spng_reason(e), "png: %s", spng_strerror(e));
        goto out;
    }
    if (alpha) {
        pl__rgba_to_rgb_white(ctx->pix.p, (size_t)info->width * info->height);
    }
    reg->px = ctx->pix.p;
    reg->x0 = 0;
    reg->y0 = 0;
    reg->w = info->width;
    reg->h = info->height;
    reg->full_w = info->width;
    reg->full_h = info->height;
    reg->stride = (size_t)info->width * 3u;
    rc = 0;
out:
    spng_ctx_free(sp);
    return rc;
}
