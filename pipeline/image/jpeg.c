/* JPEG decoding through the libjpeg API of libjpeg-turbo: DCT-scaled (M/8) decoding of a crop
 * window (jpeg_crop_scanline + jpeg_skip_scanlines), CMYK/YCCK -> RGB as PIL converts it, and
 * libjpeg's corrupt-data warnings turned into errors. TurboJPEG 2.1 has neither crop decoding nor a
 * way to stop at the first warning, hence the lower-level API here. */
#include <string.h>

#include <jerror.h>

#include "core/alloc.h"
#include "internal.h"

/* Warnings that do not mean lost or corrupt pixels: they are counted and ignored.
 * JWRN_EXTRANEOUS_DATA ("N extraneous bytes before marker") is common in camera files that PIL and
 * every viewer decode fine: the bytes are skipped and no pixel is lost. */
static int warning_is_benign(int code)
{
    return code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC ||
           code == JWRN_EXTRANEOUS_DATA;
}

static void set_text(j_common_ptr cinfo, pl__jerr_t *je)
{
    char msg[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, msg);
    (void)snprintf(je->text, sizeof je->text, "jpeg: %s", msg);
}

static void on_error_exit(j_common_ptr cinfo)
{
    pl__jerr_t *je = (pl__jerr_t *)(void *)cinfo->err;
    int code = je->pub.msg_code;
    set_text(cinfo, je);
    if (code == JERR_OUT_OF_MEMORY) {
        je->reason = PL_IMG_R_NO_MEMORY;
    } else if (code == JERR_INPUT_EMPTY || code == JERR_INPUT_EOF) {
        je->reason = PL_IMG_R_TRUNCATED;
    } else if (code == JERR_BAD_PRECISION || code == JERR_NOT_COMPILED ||
               code == JERR_CONVERSION_NOTIMPL) {
        je->reason = PL_IMG_R_UNSUPPORTED;
    } else {
        je->reason = PL_IMG_R_CORRUPT;
    }
    longjmp(je->jmp, 1);
}

static void on_emit_message(j_common_ptr cinfo, int msg_level)
{
    pl__jerr_t *je = (pl__jerr_t *)(void *)cinfo->err;
    if (msg_level != -1) {
        return; /* trace messages */
    }
    je->pub.num_warnings++;
    if (warning_is_benign(je->pub.msg_code)) {
        return;
    }
    set_text(cinfo, je);
    je->reason = je->pub.msg_code == JWRN_JPEG_EOF ? PL_IMG_R_TRUNCATED : PL_IMG_R_CORRUPT;
    longjmp(je->jmp, 1);
}

/* PIL's cmyk2rgb on un-inverted CMYK: R = (255-K) - C*(255-K)/255 with PIL's MULDIV255 rounding. */
static void cmyk_to_rgb(uint8_t *out, const uint8_t *in, uint32_t n, int inverted)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = in[0], m = in[1], y = in[2], k = in[3];
        if (inverted) {
            c = 255u - c;
            m = 255u - m;
            y = 255u - y;
            k = 255u - k;
        }
        uint32_t nk = 255u - k;
        uint32_t t;
        t = c * nk + 128u;
        out[0] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        t = m * nk + 128u;
        out[1] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        t = y * nk + 128u;
        out[2] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        out += 3;
        in += 4;
    }
}

/* The part of pl__jpeg_decode that runs under setjmp. Everything it changes that the error path
 * needs lives in ctx (not in locals), so longjmp cannot leave stale register copies behind. */
static int decode_under_jmp(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                            const pl_img_info_t *info, int num, uint32_t x0, uint32_t y0,
                            uint32_t x1, uint32_t y1, int full, pl__region_t *reg,
                            pl_img_err_t *err)
{
    struct jpeg_decompress_struct *di = &ctx->dinfo;
    int rc;

    jpeg_mem_src(di, data, (unsigned long)len);
    if (jpeg_read_header(di, TRUE) != JPEG_HEADER_OK) {
        return pl__fail(err, PL_IMG_R_TRUNCATED, "jpeg: no image in the stream");
    }
    if (di->image_width != info->width || di->image_height != info->height) {
        return pl__fail(err, PL_IMG_R_BAD_HEADER, "jpeg: decoder sees %ux%u, header said %ux%u",
                        di->image_width, di->image_height, info->width, info->height);
    }
    int cmyk = di->num_components == 4;
    int inverted = cmyk && di->saw_Adobe_marker;
    di->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    di->scale_num = (unsigned int)num;
    di->scale_denom = 8;
    di->dct_method = JDCT_ISLOW;
    jpeg_calc_output_dimensions(di);
    uint32_t sw = di->output_width, sh = di->output_height;
    if (full) {
        x0 = 0;
        y0 = 0;
        x1 = sw;
        y1 = sh;
    }
    if (x1 > sw) {
        x1 = sw;
    }
    if (y1 > sh) {
        y1 = sh;
    }
    if (x0 >= x1 || y0 >= y1) {
        return pl__fail(err, PL_IMG_R_CORRUPT, "jpeg: empty decode window");
    }
    if (!jpeg_start_decompress(di)) {
        return pl__fail(err, PL_IMG_R_CORRUPT, "jpeg: start_decompress suspended");
    }
    JDIMENSION xoff = x0, cw = x1 - x0;
    if (xoff != 0 || cw != sw) {
        jpeg_crop_scanline(di, &xoff, &cw); /* widens to iMCU boundaries */
    }
    size_t stride = (size_t)cw * 3u;
    uint32_t rows = y1 - y0;
    size_t need;
    if (core_size_mul(stride, rows, &need) < 0) {
        return pl__fail(err, PL_IMG_R_TOO_LARGE, "jpeg: decode window too large");
    }
    rc = pl__buf_reserve(&ctx->pix, need);
    if (rc < 0) {
        return pl__fail(err, PL_IMG_R_NO_MEMORY, "jpeg: out of memory (%zu bytes)", need);
    }
    if (cmyk) {
        rc = pl__buf_reserve(&ctx->rows, (size_t)cw * 4u);
        if (rc < 0) {
            return pl__fail(err, PL_IMG_R_NO_MEMORY, "jpeg: out of memory");
        }
    }
    if (y0 > 0) {
        JDIMENSION skipped = jpeg_skip_scanlines(di, y0);
        if (skipped != y0) {
            return pl__fail(err, PL_IMG_R_TRUNCATED, "jpeg: could not skip to row %u", y0);
        }
    }
    uint8_t *pix = ctx->pix.p;
    for (uint32_t r = 0; r < rows;) {
        JSAMPROW ptrs[16];
        JDIMENSION want = rows - r < 16 ? rows - r : 16, got;
        if (cmyk) {
            ptrs[0] = ctx->rows.p;
            got = jpeg_read_scanlines(di, ptrs, 1);
            if (got == 1) {
                cmyk_to_rgb(pix + (size_t)r * stride, ctx->rows.p, cw, inverted);
            }
        } else {
            for (JDIMENSION i = 0; i < want; i++) {
                ptrs[i] = pix + (size_t)(r + i) * stride;
            }
            got = jpeg_read_scanlines(di, ptrs, want);
        }
        if (got == 0) {
            return pl__fail(err, PL_IMG_R_TRUNCATED, "jpeg: no more rows at %u", y0 + r);
        }
        r += got;
    }
    if (full) {
        /* Reading to EOI also surfaces a truncated or corrupt tail as a warning (=error). */
        (void)jpeg_finish_decompress(di);
    } else {
        jpeg_abort_decompress(di);
    }
    reg->px = pix;
    reg->x0 = xoff;
    reg->y0 = y0;
    reg->w = cw;
    reg->h = rows;
    reg->full_w = sw;
    reg->full_h = sh;
    reg->stride = stride;
    return 0;
}

int pl__jpeg_decode(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_info_t *info,
                    int num, uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1, int full,
                    pl__region_t *reg, pl_img_err_t *err)
{
    int rc;
    ctx->jerr.pub.num_warnings = 0;
    ctx->jerr.reason = PL_IMG_R_NONE;
    if (setjmp(ctx->jerr.jmp) != 0) {
        /* libjpeg failed inside a call: reset the object for the next image. */
        jpeg_abort_decompress(&ctx->dinfo);
        return pl__fail(err, ctx->jerr.reason, "%s", ctx->jerr.text);
    }
    rc = decode_under_jmp(ctx, data, len, info, num, x0, y0, x1, y1, full, reg, err);
    if (rc < 0) {
        jpeg_abort_decompress(&ctx->dinfo);
    }
    return rc;
}

/* jpeg_create_decompress allocates through libjpeg's own allocator and reports failure via
 * error_exit, hence the setjmp. */
int pl__jpeg_ctx_init(pl_img_ctx_t *ctx)
{
    ctx->dinfo.err = jpeg_std_error(&ctx->jerr.pub);
    ctx->jerr.pub.error_exit = on_error_exit;
    ctx->jerr.pub.emit_message = on_emit_message;
    if (setjmp(ctx->jerr.jmp) != 0) {
        return CORE_ERR(ENOMEM);
    }
    jpeg_create_decompress(&ctx->dinfo);
    return 0;
}

void pl__jpeg_ctx_close(pl_img_ctx_t *ctx)
{
    jpeg_destroy_decompress(&ctx->dinfo);
}
