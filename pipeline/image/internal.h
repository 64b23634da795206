/* Internal interfaces of pipeline/image: the shared scratch context and the per-format decoders.
 * Not part of the public API (pl__ prefix). */
#ifndef PIPELINE_IMAGE_INTERNAL_H
#define PIPELINE_IMAGE_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE */

#include <jpeglib.h>

#include "pipeline/augment.h"
#include "pipeline/image.h"

/* libjpeg error manager that turns errors and corrupt-data warnings into a longjmp. */
typedef struct pl__jerr_s {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int reason; /* pl_img_reason_t of the failure */
    char text[JMSG_LENGTH_MAX + 16];
} pl__jerr_t;

/* One growable byte buffer. */
typedef struct pl__buf_s {
    uint8_t *p;
    size_t cap;
} pl__buf_t;

struct pl_img_ctx_s {
    struct jpeg_decompress_struct dinfo; /* created once, reused per image */
    pl__jerr_t jerr;
    void *tj_compress; /* tjhandle, created on first re-encode */
    pl__buf_t pix;     /* decoded pixels (RGB, or RGBA before compositing) */
    pl__buf_t rows;    /* JPEG CMYK row staging */
    pl__buf_t scratch; /* resampler scratch (16-byte aligned via core_malloc) */
    pl__buf_t resized; /* re-encode: resized RGB */
};

/* A decoded region: rows [y0, y0+h) and columns [x0, x0+w) of an image that, at the decode
 * scale, is full_w x full_h. Pixels are RGB with row stride `stride`. */
typedef struct pl__region_s {
    const uint8_t *px;
    uint32_t x0, y0, w, h;
    uint32_t full_w, full_h;
    size_t stride;
} pl__region_t;

/* Grows b to at least n bytes (contents not kept). 0 or CORE_ERR(ENOMEM). */
int pl__buf_reserve(pl__buf_t *b, size_t n);

/* Sets err (may be NULL) and returns the reason's core code. printf-style text. */
int pl__fail(pl_img_err_t *err, int reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Resolves NULL/zero limits to defaults. */
void pl__limits(const pl_img_limits_t *lim, uint32_t *max_side, uint64_t *max_pixels);

/* JPEG: decodes at scale num/8 the region [x0,x1) x [y0,y1) given in SCALED pixel coordinates
 * (clamped to the scaled image). The region returned may start left of x0 (iMCU alignment) but
 * covers the request. full=1 decodes the whole image and reads to EOI (verify mode: trailing
 * corruption is detected). */
int pl__jpeg_decode(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_info_t *info,
                    int num, uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1, int full,
                    pl__region_t *reg, pl_img_err_t *err);

/* Creates / destroys ctx's reusable libjpeg decompressor. */
int pl__jpeg_ctx_init(pl_img_ctx_t *ctx);
void pl__jpeg_ctx_close(pl_img_ctx_t *ctx);

/* PNG: full decode to RGB (alpha composited on white). */
int pl__png_decode(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_info_t *info,
                   pl__region_t *reg, pl_img_err_t *err);

/* WebP: decodes the region [x0,x1) x [y0,y1) (full image when x1 == 0), alpha on white. The
 * returned region may start one pixel left/up of the request (libwebp snaps to even offsets). */
int pl__webp_decode(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_info_t *info,
                    uint32_t x0, uint32_t y0, uint32_t x1, uint32_t y1, pl__region_t *reg,
                    pl_img_err_t *err);

/* pl_rrc_box with the uniforms in [0, 1) taken from next(arg) (tests feed torchvision's stream). */
int pl__rrc_box_draw(uint32_t width, uint32_t height, double scale_min, double scale_max,
                     double ratio_min, double ratio_max, double (*next)(void *), void *arg,
                     pl_box_t *box);

/* Tests: 1 makes pl_resample use its portable kernels even where AVX2 is available. */
void pl__resample_force_portable(int on);

/* In place RGBA -> RGB over n pixels, compositing on white. */
void pl__rgba_to_rgb_white(uint8_t *px, size_t n);

#endif
