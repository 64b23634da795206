/* Decode + augment for the data service: torchvision RandomResizedCrop geometry (and the eval
 * resize-shorter-side + centre crop), decode of only the window the crop needs (JPEG DCT scaling +
 * crop-window decode, WebP cropped decode), one PIL-convention resample, optional flip. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "internal.h"

void pl_aug_defaults(pl_aug_t *aug)
{
    memset(aug, 0, sizeof *aug);
    aug->out_w = 224;
    aug->out_h = 224;
    aug->train = 1;
    aug->scale_min = 0.9;
    aug->scale_max = 1.0;
    aug->ratio_min = 3.0 / 4.0;
    aug->ratio_max = 4.0 / 3.0;
    aug->flip = 0;
    aug->interp = PL_INTERP_BICUBIC;
    aug->dct_scaling = 1;
}

int pl_aug_check(const pl_aug_t *a)
{
    if (a->out_w == 0 || a->out_h == 0 || a->out_w > 8192 || a->out_h > 8192) {
        return CORE_ECONFIG;
    }
    if (a->interp != PL_INTERP_BICUBIC && a->interp != PL_INTERP_BILINEAR) {
        return CORE_ECONFIG;
    }
    if (!a->train) {
        return a->out_w == a->out_h ? 0 : CORE_ECONFIG;
    }
    if (!(a->scale_min > 0.0 && a->scale_min <= a->scale_max && a->scale_max <= 1.0)) {
        return CORE_ECONFIG;
    }
    if (!(a->ratio_min > 0.0 && a->ratio_min <= a->ratio_max && isfinite(a->ratio_max))) {
        return CORE_ECONFIG;
    }
    return 0;
}

/* torchvision 0.14 RandomResizedCrop.get_params, including its float32 steps: the scale and
 * log-ratio draws are float32 tensors (torch.empty(1).uniform_), the log of the ratio bounds and
 * the exp are float32 ops, the rest is Python double arithmetic; round() is half-to-even, which is
 * nearbyint() in the default rounding mode. torch.randint(0, n) becomes floor(u * n). */
int pl__rrc_box_draw(uint32_t width, uint32_t height, double scale_min, double scale_max,
                     double ratio_min, double ratio_max, double (*next)(void *), void *arg,
                     pl_box_t *box)
{
    double area = (double)height * (double)width;
    double lr0 = (double)logf((float)ratio_min), lr1 = (double)logf((float)ratio_max);
    for (int t = 0; t < 10; t++) {
        double u1 = next(arg);
        float s = (float)(scale_min + (scale_max - scale_min) * u1);
        double target_area = area * (double)s;
        double u2 = next(arg);
        float lr = (float)(lr0 + (lr1 - lr0) * u2);
        double aspect = (double)expf(lr);
        double w = nearbyint(sqrt(target_area * aspect));
        double h = nearbyint(sqrt(target_area / aspect));
        if (w > 0 && w <= (double)width && h > 0 && h <= (double)height) {
            double u3 = next(arg);
            double u4 = next(arg);
            box->h = (int32_t)h;
            box->w = (int32_t)w;
            box->y = (int32_t)floor(u3 * ((double)height - h + 1.0));
            box->x = (int32_t)floor(u4 * ((double)width - w + 1.0));
            return 1;
        }
    }
    double in_ratio = (double)width / (double)height;
    double w, h;
    if (in_ratio < ratio_min) {
        w = width;
        h = nearbyint(w / ratio_min);
    } else if (in_ratio > ratio_max) {
        h = height;
        w = nearbyint(h * ratio_max);
    } else {
        w = width;
        h = height;
    }
    box->w = (int32_t)w;
    box->h = (int32_t)h;
    box->y = (int32_t)((height - (uint32_t)box->h) / 2u);
    box->x = (int32_t)((width - (uint32_t)box->w) / 2u);
    return 0;
}

static double rng_next(void *arg)
{
    return core_rng_uniform_f64(arg);
}

int pl_rrc_box(uint32_t width, uint32_t height, double scale_min, double scale_max,
               double ratio_min, double ratio_max, core_rng_t *rng, pl_box_t *box)
{
    return pl__rrc_box_draw(width, height, scale_min, scale_max, ratio_min, ratio_max, rng_next,
                            rng, box);
}

void pl_eval_box(uint32_t width, uint32_t height, uint32_t size, double box[4])
{
    /* torchvision _compute_resized_output_size + CenterCrop's round((H' - S) / 2). */
    uint32_t sht = width <= height ? width : height;
    uint32_t lng = width <= height ? height : width;
    uint32_t new_long = (uint32_t)((double)size * (double)lng / (double)sht);
    uint32_t nw = width <= height ? size : new_long;
    uint32_t nh = width <= height ? new_long : size;
    double top = nearbyint(((double)nh - size) / 2.0);
    double left = nearbyint(((double)nw - size) / 2.0);
    double sx = (double)width / nw, sy = (double)height / nh;
    box[0] = left * sx;
    box[1] = top * sy;
    box[2] = (left + size) * sx;
    box[3] = (top + size) * sy;
    if (box[2] > width) {
        box[2] = width;
    }
    if (box[3] > height) {
        box[3] = height;
    }
}

int pl_jpeg_pick_scale(uint32_t crop_w, uint32_t crop_h, uint32_t out_w, uint32_t out_h)
{
    /* Only 1/8, 2/8, 4/8 and 8/8: libjpeg-turbo has SIMD IDCTs (and merged chroma handling) for
     * those; 3/8, 5/8, 6/8 and 7/8 run plain-C IDCTs that are slower than a full-size decode. */
    for (int m = 1; m < 8; m *= 2) {
        if ((uint64_t)crop_w * (uint64_t)m >= (uint64_t)out_w * 8u &&
            (uint64_t)crop_h * (uint64_t)m >= (uint64_t)out_h * 8u) {
            return m;
        }
    }
    return 8;
}

static void flip_rows(uint8_t *px, uint32_t w, uint32_t h)
{
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *a = px + (size_t)y * w * 3u;
        uint8_t *b = a + (size_t)(w - 1) * 3u;
        while (a < b) {
            uint8_t t0 = a[0], t1 = a[1], t2 = a[2];
            a[0] = b[0];
            a[1] = b[1];
            a[2] = b[2];
            b[0] = t0;
            b[1] = t1;
            b[2] = t2;
            a += 3;
            b -= 3;
        }
    }
}

/* Support (in input pixels at the decode scale) of the filter for this box, plus one pixel of
 * PIL's +0.5 rounding: decoding this much beyond the box makes window clipping a no-op. */
static uint32_t margin_of(double span, uint32_t out, int interp)
{
    double fs = span / out;
    if (fs < 1.0) {
        fs = 1.0;
    }
    double support = (interp == PL_INTERP_BICUBIC ? 2.0 : 1.0) * fs;
    return (uint32_t)ceil(support) + 1u;
}

int pl_img_decode_augment(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                          const pl_img_limits_t *lim, const pl_aug_t *aug, core_rng_t *rng,
                          uint8_t *out, size_t out_cap, pl_aug_result_t *res, pl_img_err_t *err)
{
    pl_aug_result_t r;
    pl__region_t reg;
    double box[4];
    int rc;
    memset(&r, 0, sizeof r);
    if (pl_aug_check(aug) < 0) {
        return CORE_ECONFIG;
    }
    if (out_cap / 3u / aug->out_w < aug->out_h) {
        return CORE_ETOO_LARGE;
    }
    rc = pl_img_probe(data, len, lim, &r.info, err);
    if (rc < 0) {
        return rc;
    }
    uint32_t W = r.info.width, H = r.info.height;

    /* Geometry in source pixels. clip = the image the resample may read (the crop itself in train
     * mode, since torchvision crops before resizing; the whole image in eval mode). */
    double clip[4];
    if (aug->train) {
        r.fallback = !pl_rrc_box(W, H, aug->scale_min, aug->scale_max, aug->ratio_min,
                                 aug->ratio_max, rng, &r.box);
        box[0] = r.box.x;
        box[1] = r.box.y;
        box[2] = (double)r.box.x + r.box.w;
        box[3] = (double)r.box.y + r.box.h;
        memcpy(clip, box, sizeof clip);
        if (aug->flip) {
            r.flipped = core_rng_uniform_f64(rng) < 0.5;
        }
    } else {
        pl_eval_box(W, H, aug->out_w, box);
        r.box.x = (int32_t)floor(box[0]);
        r.box.y = (int32_t)floor(box[1]);
        r.box.w = (int32_t)ceil(box[2]) - r.box.x;
        r.box.h = (int32_t)ceil(box[3]) - r.box.y;
        clip[0] = 0.0;
        clip[1] = 0.0;
        clip[2] = W;
        clip[3] = H;
    }

    /* Decode scale: JPEG only. */
    int num = 8;
    if (r.info.format == PL_IMG_JPEG && aug->dct_scaling) {
        num = pl_jpeg_pick_scale((uint32_t)floor(box[2] - box[0]), (uint32_t)floor(box[3] - box[1]),
                                 aug->out_w, aug->out_h);
    }
    double s = num / 8.0;
    uint32_t sw = (uint32_t)(((uint64_t)W * (uint32_t)num + 7u) / 8u);
    uint32_t sh = (uint32_t)(((uint64_t)H * (uint32_t)num + 7u) / 8u);
    double sb[4] = {box[0] * s, box[1] * s, box[2] * s, box[3] * s};

    /* The window to decode, in scaled pixels: the clip region, narrowed in eval mode to the box
     * plus the filter's reach. */
    double wx0 = floor(clip[0] * s), wy0 = floor(clip[1] * s);
    double wx1 = ceil(clip[2] * s), wy1 = ceil(clip[3] * s);
    if (!aug->train) {
        double mx = margin_of(sb[2] - sb[0], aug->out_w, aug->interp);
        double my = margin_of(sb[3] - sb[1], aug->out_h, aug->interp);
        wx0 = fmax(wx0, floor(sb[0]) - mx);
        wy0 = fmax(wy0, floor(sb[1]) - my);
        wx1 = fmin(wx1, ceil(sb[2]) + mx);
        wy1 = fmin(wy1, ceil(sb[3]) + my);
    }
    wx1 = fmin(wx1, sw);
    wy1 = fmin(wy1, sh);
    uint32_t cx0 = (uint32_t)wx0, cy0 = (uint32_t)wy0, cx1 = (uint32_t)wx1, cy1 = (uint32_t)wy1;

    switch (r.info.format) {
    case PL_IMG_JPEG:
        /* Two extra pixels around the window: chroma upsampling at a window edge replicates the
         * edge instead of reading its neighbour, so the pixels we use must not be on the edge. */
        rc = pl__jpeg_decode(ctx, data, len, &r.info, num, cx0 >= 2 ? cx0 - 2 : 0,
                             cy0 >= 2 ? cy0 - 2 : 0, cx1 + 2, cy1 + 2, 0, &reg, err);
        r.dct_num = num;
        break;
    case PL_IMG_PNG:
        rc = pl__png_decode(ctx, data, len, &r.info, &reg, err);
        break;
    case PL_IMG_WEBP:
        /* The same two-pixel margin as JPEG: lossy WebP upsamples chroma too. */
        rc =
            pl__webp_decode(ctx, data, len, &r.info, cx0 >= 2 ? cx0 - 2 : 0, cy0 >= 2 ? cy0 - 2 : 0,
                            cx1 + 2 < W ? cx1 + 2 : W, cy1 + 2 < H ? cy1 + 2 : H, &reg, err);
        break;
    default:
        rc = pl__fail(err, PL_IMG_R_UNKNOWN_FORMAT, "image: unknown format");
        break;
    }
    if (rc < 0) {
        return rc;
    }
    if (reg.x0 > cx0 || reg.y0 > cy0 || reg.x0 + reg.w < cx1 || reg.y0 + reg.h < cy1) {
        return pl__fail(err, PL_IMG_R_CORRUPT, "image: decoded window misses the crop");
    }
    const uint8_t *src = reg.px + (size_t)(cy0 - reg.y0) * reg.stride + (size_t)(cx0 - reg.x0) * 3u;
    uint32_t src_w = cx1 - cx0, src_h = cy1 - cy0;
    double rb[4] = {sb[0] - cx0, sb[1] - cy0, sb[2] - cx0, sb[3] - cy0};
    if (rb[2] > src_w) {
        rb[2] = src_w;
    }
    if (rb[3] > src_h) {
        rb[3] = src_h;
    }
    size_t need = pl_resample_scratch_size(src_w, src_h, rb, aug->out_w, aug->out_h, aug->interp);
    if (need == 0) {
        return pl__fail(err, PL_IMG_R_CORRUPT, "image: degenerate crop");
    }
    if (pl__buf_reserve(&ctx->scratch, need) < 0) {
        return pl__fail(err, PL_IMG_R_NO_MEMORY, "resample: out of memory");
    }
    rc = pl_resample(src, src_w, src_h, reg.stride, rb, out, aug->out_w, aug->out_h, aug->interp,
                     ctx->scratch.p, ctx->scratch.cap);
    if (rc < 0) {
        return rc;
    }
    if (r.flipped) {
        flip_rows(out, aug->out_w, aug->out_h);
    }
    if (res != NULL) {
        *res = r;
    }
    return 0;
}
