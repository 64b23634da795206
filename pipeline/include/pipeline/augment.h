/* Decode + augment for the data service: RandomResizedCrop / eval resize-and-centre-crop, optional
 * horizontal flip, one high-quality resample, uint8 RGB HWC into the caller's buffer.
 *
 * Semantics follow torchvision on PIL images (spec/superclass.md 4.5):
 *   train: RandomResizedCrop(size, scale, ratio) with torchvision's get_params (10 tries, area
 *          H*W*U(scale), log-uniform ratio, w = round(sqrt(A*r)), h = round(sqrt(A/r)) with
 * Python's round-half-even, offsets uniform; fallback centre crop with the ratio clamped), then
 *          resize with PIL's antialiased bicubic (a = -0.5; support scaled by the downscale factor)
 *          or bilinear; then, if enabled, a horizontal flip with probability 0.5.
 *   eval:  resize the shorter side to S (the longer becomes int(S*long/short)), centre crop SxS at
 *          offsets round((H'-S)/2), round((W'-S)/2). Done here as ONE resample of the equivalent
 *          source box, which gives the same filter taps as PIL's resize followed by crop.
 * Random draws come from the core_rng_t passed in, in a fixed order (per try: scale, ratio; on
 * accept: row offset, column offset; then the flip), so a sample's output is a pure function of
 * (bytes, parameters, rng state) and independent of threads.
 *
 * Speed: only what the crop needs is decoded. JPEG: libjpeg DCT scaling by M/8 with the smallest M
 * that keeps the crop at least the output size, plus crop-window decoding (jpeg_crop_scanline,
 * jpeg_skip_scanlines). WebP: libwebp's cropped decoding. PNG: full decode, then crop. When a DCT
 * scale below 1 is used, the result differs from PIL's (which resamples the full-resolution crop)
 * by the DCT's own low-pass; PIL's draft() mode makes the same trade. */
#ifndef PIPELINE_AUGMENT_H
#define PIPELINE_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "pipeline/image.h"

typedef enum {
    PL_INTERP_BICUBIC = 0, /* PIL Image.BICUBIC, antialiased on downscale (default) */
    PL_INTERP_BILINEAR = 1,
} pl_interp_t;

typedef struct pl_aug_s {
    uint32_t out_w, out_h;       /* output size; eval mode requires out_w == out_h */
    int train;                   /* 1 RandomResizedCrop, 0 eval (shorter side + centre crop) */
    double scale_min, scale_max; /* RandomResizedCrop scale, 0 < min <= max <= 1 */
    double ratio_min, ratio_max; /* aspect ratio w/h range, 0 < min <= max */
    int flip;                    /* 1: horizontal flip with p = 0.5 (train only) */
    int interp;                  /* pl_interp_t */
    int dct_scaling;             /* 1 (default): allow JPEG DCT-scaled decode; 0: full resolution */
} pl_aug_t;

/* Spec defaults: train, 224x224, scale (0.9, 1.0), ratio (3/4, 4/3), no flip, bicubic, DCT scaling
 * on. (torchvision's own RandomResizedCrop default scale is (0.08, 1.0).) */
void pl_aug_defaults(pl_aug_t *aug);

/* Checks an augmentation's parameters. Returns 0 or CORE_ECONFIG. */
int pl_aug_check(const pl_aug_t *aug);

/* A crop rectangle in source pixels: rows [y, y+h), columns [x, x+w). */
typedef struct pl_box_s {
    int32_t x, y, w, h;
} pl_box_t;

/* torchvision RandomResizedCrop.get_params for a width x height image, drawing from rng. Returns 1
 * if a try was accepted, 0 if the centre-crop fallback was used. Pure; never fails. */
int pl_rrc_box(uint32_t width, uint32_t height, double scale_min, double scale_max,
               double ratio_min, double ratio_max, core_rng_t *rng, pl_box_t *box);

/* Eval geometry: the source-coordinate box (x0, y0, x1, y1), in floating point, that resizing the
 * shorter side to `size` and centre-cropping size x size selects. */
void pl_eval_box(uint32_t width, uint32_t height, uint32_t size, double box[4]);

/* libjpeg DCT scale numerator M (scale M/8) for decoding a crop of crop_w x crop_h to an output of
 * out_w x out_h: the smallest M in {1, 2, 4, 8} with crop*M/8 >= out in both dimensions (8 when
 * the crop is smaller than the output). Only the power-of-two scales have SIMD IDCTs in
 * libjpeg-turbo; the others are slower than decoding at full size. */
int pl_jpeg_pick_scale(uint32_t crop_w, uint32_t crop_h, uint32_t out_w, uint32_t out_h);

/* What one decode_augment call did (for tests, stats and debugging). */
typedef struct pl_aug_result_s {
    pl_img_info_t info; /* the source image's probe info */
    pl_box_t box;       /* the crop in source pixels (eval: the integer hull of the float box) */
    int flipped;        /* 1 if flipped */
    int dct_num;        /* JPEG DCT scale numerator used (M/8), 8 = full; 0 for PNG/WebP */
    int fallback;       /* train: 1 if RandomResizedCrop fell back to the centre crop */
} pl_aug_result_t;

/* Decodes `data` and writes the augmented out_h x out_w x 3 uint8 RGB image into out (out_cap >=
 * out_w*out_h*3). Uses ctx's scratch (see pl_img_ctx_t on allocation). rng is advanced
 * only in train mode. res may be NULL. Errors: as pl_img_decode_rgb (the same limits and JPEG
 * warning rules apply), CORE_ECONFIG for bad aug parameters, CORE_ETOO_LARGE if out_cap is too
 * small. On error `out` is unspecified. Not thread-safe per ctx. */
int pl_img_decode_augment(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                          const pl_img_limits_t *lim, const pl_aug_t *aug, core_rng_t *rng,
                          uint8_t *out, size_t out_cap, pl_aug_result_t *res, pl_img_err_t *err);

/* The resampler on its own (PIL ImagingResample convention, 8-bit fixed point, horizontal pass then
 * vertical): resizes the region box = (x0, y0, x1, y1) of a src_w x src_h RGB image (row stride
 * src_stride bytes) to out_w x out_h RGB into out (stride out_w*3). Filter taps are clipped to the
 * src image, as PIL clips to the image it is given. scratch: see pl_resample_scratch_size; pass a
 * buffer of at least that many bytes, 16-byte aligned. Errors: CORE_ECONFIG for an empty box or
 * size. Thread-safe (all state is in scratch). */
int pl_resample(const uint8_t *src, uint32_t src_w, uint32_t src_h, size_t src_stride,
                const double box[4], uint8_t *out, uint32_t out_w, uint32_t out_h, int interp,
                void *scratch, size_t scratch_cap);

/* Bytes of scratch pl_resample needs for these sizes. */
size_t pl_resample_scratch_size(uint32_t src_w, uint32_t src_h, const double box[4], uint32_t out_w,
                                uint32_t out_h, int interp);

#endif
