/* Separable resampling in PIL's convention (Pillow src/libImaging/Resample.c, ImagingResample):
 * the filter support is scaled by the downscale factor (antialiasing), output pixel xx samples
 * around centre in0 + (xx + 0.5) * scale, taps are clipped to the source image and renormalised,
 * coefficients are converted to 22-bit fixed point, and the horizontal pass (rounded to uint8) runs
 * before the vertical one. Following those steps exactly is what makes the output equal PIL's
 * bit for bit (checked against a PIL-made golden in tests/image). */
#include <math.h>
#include <string.h>

#include "internal.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct filter_s {
    double (*fn)(double x);
    double support;
} filter_t;

static double bicubic_filter(double x)
{
    /* Keys' cubic with a = -0.5, as PIL. */
    const double a = -0.5;
    if (x < 0.0) {
        x = -x;
    }
    if (x < 1.0) {
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    }
    if (x < 2.0) {
        return (((x - 5) * x + 8) * x - 4) * a;
    }
    return 0.0;
}

static double bilinear_filter(double x)
{
    if (x < 0.0) {
        x = -x;
    }
    if (x < 1.0) {
        return 1.0 - x;
    }
    return 0.0;
}

static const filter_t filters[2] = {
    {bicubic_filter, 2.0},
    {bilinear_filter, 1.0},
};

/* PIL takes the box as C floats; the span in1 - in0 is a float subtraction. */
static int ksize_of(const filter_t *f, float in0, float in1, uint32_t out_size)
{
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    return (int)ceil(support) * 2 + 1;
}

/* PIL's precompute_coeffs + normalize_coeffs_8bpc. bounds: 2 per output (xmin, count); kk: ksize
 * per output. tmp: ksize doubles. */
static void precompute(const filter_t *f, uint32_t in_size, float in0, float in1,
                       uint32_t out_size, int ksize, int32_t *bounds, int32_t *kk, double *tmp)
{
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    double ss = 1.0 / filterscale;
    for (uint32_t xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) {
            xmin = 0;
        }
        int xmax = (int)(center + support + 0.5);
        if (xmax > (int)in_size) {
            xmax = (int)in_size;
        }
        xmax -= xmin;
        if (xmax < 0) {
            xmax = 0;
        }
        if (xmax > ksize) {
            xmax = ksize; /* cannot happen with PIL's ksize; guards the buffer */
        }
        for (int x = 0; x < xmax; x++) {
            double w = f->fn((x + xmin - center + 0.5) * ss);
            tmp[x] = w;
            ww += w;
        }
        int32_t *k = kk + (size_t)xx * (size_t)ksize;
        for (int x = 0; x < ksize; x++) {
            double v = 0.0;
            if (x < xmax) {
                v = ww != 0.0 ? tmp[x] / ww : tmp[x];
            }
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

static inline uint8_t clip8(int32_t in)
{
    if (in >= (1 << PRECISION_BITS << 8)) {
        return 255;
    }
    if (in <= 0) {
        return 0;
    }
    return (uint8_t)(in >> PRECISION_BITS);
}

static void resample_h(uint8_t *out, size_t out_stride, uint32_t out_w, const uint8_t *in,
                       size_t in_stride, uint32_t rows, int ksize, const int32_t *bounds,
                       const int32_t *kk)
{
    for (uint32_t yy = 0; yy < rows; yy++) {
        const uint8_t *row = in + (size_t)yy * in_stride;
        uint8_t *o = out + (size_t)yy * out_stride;
        for (uint32_t xx = 0; xx < out_w; xx++) {
            int32_t xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * (size_t)ksize;
            const uint8_t *p = row + (size_t)xmin * 3u;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int32_t x = 0; x < xmax; x++) {
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
                p += 3;
            }
            o[0] = clip8(s0);
            o[1] = clip8(s1);
            o[2] = clip8(s2);
            o += 3;
        }
    }
}

/* Vertical pass, row-at-a-time: integer sums are exact, so accumulating a whole output row tap by
 * tap gives PIL's result while letting the compiler vectorise. acc: out_w*3 int32. */
static void resample_v(uint8_t *out, uint32_t out_w, uint32_t out_h, const uint8_t *in,
                       size_t in_stride, int ksize, const int32_t *bounds, const int32_t *kk,
                       int32_t *acc)
{
    size_t n = (size_t)out_w * 3u;
    for (uint32_t yy = 0; yy < out_h; yy++) {
        int32_t ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        const int32_t *k = kk + (size_t)yy * (size_t)ksize;
        for (size_t i = 0; i < n; i++) {
            acc[i] = 1 << (PRECISION_BITS - 1);
        }
        for (int32_t y = 0; y < ymax; y++) {
            const uint8_t *row = in + (size_t)(ymin + y) * in_stride;
            int32_t ky = k[y];
            for (size_t i = 0; i < n; i++) {
                acc[i] += row[i] * ky;
            }
        }
        uint8_t *o = out + (size_t)yy * n;
        for (size_t i = 0; i < n; i++) {
            o[i] = clip8(acc[i]);
        }
    }
}

/* Scratch layout: [bounds_h][bounds_v][kk_h][kk_v][acc][tmp doubles][temp image]. */
typedef struct layout_s {
    int ksize_h, ksize_v;
    size_t off_bv, off_kh, off_kv, off_acc, off_tmp, off_img, total;
} layout_t;

static size_t align16(size_t n)
{
    return (n + 15u) & ~(size_t)15u;
}

static void plan(uint32_t src_h, const float b[4], uint32_t out_w, uint32_t out_h,
                 const filter_t *f, layout_t *l)
{
    l->ksize_h = ksize_of(f, b[0], b[2], out_w);
    l->ksize_v = ksize_of(f, b[1], b[3], out_h);
    size_t kmax = (size_t)(l->ksize_h > l->ksize_v ? l->ksize_h : l->ksize_v);
    size_t off = align16((size_t)out_w * 2u * sizeof(int32_t));
    l->off_bv = off;
    off += align16((size_t)out_h * 2u * sizeof(int32_t));
    l->off_kh = off;
    off += align16((size_t)out_w * (size_t)l->ksize_h * sizeof(int32_t));
    l->off_kv = off;
    off += align16((size_t)out_h * (size_t)l->ksize_v * sizeof(int32_t));
    l->off_acc = off;
    off += align16((size_t)out_w * 3u * sizeof(int32_t));
    l->off_tmp = off;
    off += align16(kmax * sizeof(double));
    l->off_img = off;
    off += align16((size_t)out_w * src_h * 3u);
    l->total = off;
}

static int check_args(uint32_t src_w, uint32_t src_h, const double box[4], uint32_t out_w,
                      uint32_t out_h, int interp, float b[4])
{
    if (src_w == 0 || src_h == 0 || out_w == 0 || out_h == 0 || interp < 0 || interp > 1) {
        return CORE_ECONFIG;
    }
    for (int i = 0; i < 4; i++) {
        if (!isfinite(box[i])) {
            return CORE_ECONFIG;
        }
        b[i] = (float)box[i];
    }
    if (!(b[0] >= 0.0f && b[1] >= 0.0f && b[2] <= (float)src_w && b[3] <= (float)src_h &&
          b[2] - b[0] > 0.0f && b[3] - b[1] > 0.0f)) {
        return CORE_ECONFIG;
    }
    return 0;
}

size_t pl_resample_scratch_size(uint32_t src_w, uint32_t src_h, const double box[4], uint32_t out_w,
                                uint32_t out_h, int interp)
{
    float b[4];
    layout_t l;
    if (check_args(src_w, src_h, box, out_w, out_h, interp, b) < 0) {
        return 0;
    }
    plan(src_h, b, out_w, out_h, &filters[interp], &l);
    return l.total;
}

int pl_resample(const uint8_t *src, uint32_t src_w, uint32_t src_h, size_t src_stride,
                const double box[4], uint8_t *out, uint32_t out_w, uint32_t out_h, int interp,
                void *scratch, size_t scratch_cap)
{
    float b[4];
    layout_t l;
    int rc = check_args(src_w, src_h, box, out_w, out_h, interp, b);
    if (rc < 0) {
        return rc;
    }
    const filter_t *f = &filters[interp];
    plan(src_h, b, out_w, out_h, f, &l);
    if (scratch == NULL || scratch_cap < l.total) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *s = scratch;
    int32_t *bh = (int32_t *)(void *)s;
    int32_t *bv = (int32_t *)(void *)(s + l.off_bv);
    int32_t *kh = (int32_t *)(void *)(s + l.off_kh);
    int32_t *kv = (int32_t *)(void *)(s + l.off_kv);
    int32_t *acc = (int32_t *)(void *)(s + l.off_acc);
    double *tmp = (double *)(void *)(s + l.off_tmp);
    uint8_t *img = s + l.off_img;

    int need_h = out_w != src_w || b[0] != 0.0f || b[2] != (float)src_w;
    int need_v = out_h != src_h || b[1] != 0.0f || b[3] != (float)src_h;
    precompute(f, src_w, b[0], b[2], out_w, l.ksize_h, bh, kh, tmp);
    precompute(f, src_h, b[1], b[3], out_h, l.ksize_v, bv, kv, tmp);
    int32_t yfirst = bv[0];
    int32_t ylast = bv[2 * (out_h - 1)] + bv[2 * (out_h - 1) + 1];
    size_t row_bytes = (size_t)out_w * 3u;

    if (need_h && need_v) {
        for (uint32_t i = 0; i < out_h; i++) {
            bv[2 * i] -= yfirst;
        }
        resample_h(img, row_bytes, out_w, src + (size_t)yfirst * src_stride, src_stride,
                   (uint32_t)(ylast - yfirst), l.ksize_h, bh, kh);
        resample_v(out, out_w, out_h, img, row_bytes, l.ksize_v, bv, kv, acc);
    } else if (need_h) {
        resample_h(out, row_bytes, out_w, src, src_stride, src_h, l.ksize_h, bh, kh);
    } else if (need_v) {
        resample_v(out, out_w, out_h, src, src_stride, l.ksize_v, bv, kv, acc);
    } else {
        for (uint32_t y = 0; y < out_h; y++) {
            memcpy(out + (size_t)y * row_bytes, src + (size_t)y * src_stride, row_bytes);
        }
    }
    return 0;
}
