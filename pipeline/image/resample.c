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
static void precompute(const filter_t *f, uint32_t in_size, float in0, float in1, uint32_t out_size,
                       int ksize, int32_t *bounds, int32_t *kk, double *tmp)
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

static inline uint8_t clamp8(int32_t v)
{
    v >>= PRECISION_BITS; /* equals PIL's clip8 for every int32 */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Interleaves 8 rows (rows past `nr` repeat row 0) into blk: x-major, 24 bytes per column (8 rows x
 * RGB), so that a horizontal tap becomes three 8-lane multiply-adds in the AVX2 kernel. Pixels move
 * as 4-byte words: the extra byte lands in the slot written next (blk has 8 bytes of slack), and
 * the last pixel of a row is read bytewise so that nothing past the row is read. */
static void interleave8(uint8_t *blk, const uint8_t *in, size_t in_stride, uint32_t in_w,
                        uint32_t nr)
{
    const uint8_t *rows[8];
    for (uint32_t r = 0; r < 8; r++) {
        rows[r] = in + (size_t)(r < nr ? r : 0) * in_stride;
    }
    uint8_t *d = blk;
    for (uint32_t x = 0; x + 1 < in_w; x++) {
        for (uint32_t r = 0; r < 8; r++) {
            uint32_t v;
            memcpy(&v, rows[r] + (size_t)x * 3u, 4);
            memcpy(d + r * 3u, &v, 4);
        }
        d += 24;
    }
    for (uint32_t r = 0; r < 8; r++) {
        const uint8_t *q = rows[r] + (size_t)(in_w - 1) * 3u;
        d[r * 3u] = q[0];
        d[r * 3u + 1] = q[1];
        d[r * 3u + 2] = q[2];
    }
}

/* Portable kernels: PIL's loops (integer sums are exact in any order). */
static void resample_h_c(uint8_t *out, size_t out_stride, uint32_t out_w, const uint8_t *in,
                         uint32_t in_w, size_t in_stride, uint32_t rows, int ksize,
                         const int32_t *bounds, const int32_t *kk, uint8_t *blk)
{
    (void)in_w;
    (void)blk;
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
            o[0] = clamp8(s0);
            o[1] = clamp8(s1);
            o[2] = clamp8(s2);
            o += 3;
        }
    }
}

static void resample_v_c(uint8_t *out, uint32_t out_w, uint32_t out_h, const uint8_t *in,
                         size_t in_stride, int ksize, const int32_t *bounds, const int32_t *kk)
{
    size_t n = (size_t)out_w * 3u;
    for (uint32_t yy = 0; yy < out_h; yy++) {
        int32_t ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        const int32_t *k = kk + (size_t)yy * (size_t)ksize;
        uint8_t *o = out + (size_t)yy * n;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = in + (size_t)ymin * in_stride + i;
            int32_t acc = 1 << (PRECISION_BITS - 1);
            for (int32_t y = 0; y < ymax; y++) {
                acc += p[0] * k[y];
                p += in_stride;
            }
            o[i] = clamp8(acc);
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PL__HAVE_AVX2_KERNELS 1

#define PL__AVX2 __attribute__((target("avx2")))

PL__AVX2 static inline __m256i ld8(const uint8_t *p)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
}

/* 8 int32 sums -> 8 bytes, with clamp8's semantics (shift, then saturate to 0..255). */
PL__AVX2 static inline void st8(uint8_t *o, __m256i v)
{
    v = _mm256_srai_epi32(v, PRECISION_BITS);
    __m256i w = _mm256_packus_epi32(v, v); /* per 128-bit lane: 4 x u16, twice */
    w = _mm256_packus_epi16(w, w);         /* per lane: 4 bytes, four times */
    uint32_t lo = (uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(w));
    uint32_t hi = (uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(w, 1));
    memcpy(o, &lo, 4);
    memcpy(o + 4, &hi, 4);
}

PL__AVX2 static void resample_h_avx2(uint8_t *out, size_t out_stride, uint32_t out_w,
                                     const uint8_t *in, uint32_t in_w, size_t in_stride,
                                     uint32_t rows, int ksize, const int32_t *bounds,
                                     const int32_t *kk, uint8_t *blk)
{
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    for (uint32_t y0 = 0; y0 < rows; y0 += 8) {
        uint32_t nr = rows - y0 < 8 ? rows - y0 : 8;
        interleave8(blk, in + (size_t)y0 * in_stride, in_stride, in_w, nr);
        for (uint32_t xx = 0; xx < out_w; xx++) {
            int32_t xmin = bounds[2 * xx], xmax = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * (size_t)ksize;
            __m256i a0 = half, a1 = half, a2 = half;
            const uint8_t *p = blk + (size_t)xmin * 24u;
            for (int32_t x = 0; x < xmax; x++) {
                __m256i kv = _mm256_set1_epi32(k[x]);
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(ld8(p), kv));
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(ld8(p + 8), kv));
                a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(ld8(p + 16), kv));
                p += 24;
            }
            /* Pack the 24 sums to bytes with one 32-byte store, so the row copies below load
             * from a single store (store-to-load forwarding; three 8-byte stores stalled). */
            __m256i v01 = _mm256_packus_epi32(_mm256_srai_epi32(a0, PRECISION_BITS),
                                              _mm256_srai_epi32(a1, PRECISION_BITS));
            __m256i v22 = _mm256_srai_epi32(a2, PRECISION_BITS);
            v22 = _mm256_packus_epi32(v22, v22);
            __m256i b8 = _mm256_packus_epi16(v01, v22);
            b8 = _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            uint8_t px[32];
            _mm256_storeu_si256((__m256i *)(void *)px, b8);
            uint8_t *o = out + (size_t)y0 * out_stride + (size_t)xx * 3u;
            if (xx + 1 < out_w) {
                /* 4-byte stores: the 4th byte is the next pixel's, written on the next xx. */
                for (uint32_t r = 0; r < nr; r++) {
                    memcpy(o + (size_t)r * out_stride, px + r * 3u, 4);
                }
            } else {
                for (uint32_t r = 0; r < nr; r++) {
                    memcpy(o + (size_t)r * out_stride, px + r * 3u, 3);
                }
            }
        }
    }
}

PL__AVX2 static void resample_v_avx2(uint8_t *out, uint32_t out_w, uint32_t out_h,
                                     const uint8_t *in, size_t in_stride, int ksize,
                                     const int32_t *bounds, const int32_t *kk)
{
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    size_t n = (size_t)out_w * 3u, n32 = n & ~(size_t)31u, n8 = n & ~(size_t)7u;
    for (uint32_t yy = 0; yy < out_h; yy++) {
        int32_t ymin = bounds[2 * yy], ymax = bounds[2 * yy + 1];
        const int32_t *k = kk + (size_t)yy * (size_t)ksize;
        const uint8_t *base = in + (size_t)ymin * in_stride;
        uint8_t *o = out + (size_t)yy * n;
        size_t i = 0;
        for (; i < n32; i += 32) {
            __m256i a0 = half, a1 = half, a2 = half, a3 = half;
            const uint8_t *p = base + i;
            for (int32_t y = 0; y < ymax; y++) {
                __m256i kv = _mm256_set1_epi32(k[y]);
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(ld8(p), kv));
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(ld8(p + 8), kv));
                a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(ld8(p + 16), kv));
                a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(ld8(p + 24), kv));
                p += in_stride;
            }
            st8(o + i, a0);
            st8(o + i + 8, a1);
            st8(o + i + 16, a2);
            st8(o + i + 24, a3);
        }
        for (; i < n8; i += 8) {
            __m256i a0 = half;
            const uint8_t *p = base + i;
            for (int32_t y = 0; y < ymax; y++) {
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(ld8(p), _mm256_set1_epi32(k[y])));
                p += in_stride;
            }
            st8(o + i, a0);
        }
        for (; i < n; i++) {
            const uint8_t *p = base + i;
            int32_t acc = 1 << (PRECISION_BITS - 1);
            for (int32_t y = 0; y < ymax; y++) {
                acc += p[0] * k[y];
                p += in_stride;
            }
            o[i] = clamp8(acc);
        }
    }
}
#endif

/* Kernel choice: AVX2 where the CPU has it, unless a test forces the portable path. */
static int force_portable = 0;

void pl__resample_force_portable(int on)
{
    force_portable = on;
}

static int use_avx2(void)
{
#ifdef PL__HAVE_AVX2_KERNELS
    return !force_portable && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static void resample_h(uint8_t *out, size_t out_stride, uint32_t out_w, const uint8_t *in,
                       uint32_t in_w, size_t in_stride, uint32_t rows, int ksize,
                       const int32_t *bounds, const int32_t *kk, uint8_t *blk)
{
#ifdef PL__HAVE_AVX2_KERNELS
    if (use_avx2()) {
        resample_h_avx2(out, out_stride, out_w, in, in_w, in_stride, rows, ksize, bounds, kk, blk);
        return;
    }
#endif
    resample_h_c(out, out_stride, out_w, in, in_w, in_stride, rows, ksize, bounds, kk, blk);
}

static void resample_v(uint8_t *out, uint32_t out_w, uint32_t out_h, const uint8_t *in,
                       size_t in_stride, int ksize, const int32_t *bounds, const int32_t *kk)
{
#ifdef PL__HAVE_AVX2_KERNELS
    if (use_avx2()) {
        resample_v_avx2(out, out_w, out_h, in, in_stride, ksize, bounds, kk);
        return;
    }
#endif
    resample_v_c(out, out_w, out_h, in, in_stride, ksize, bounds, kk);
}

/* Scratch layout: [bounds_h][bounds_v][kk_h][kk_v][tmp doubles][8-row block][temp image]. */
typedef struct layout_s {
    int ksize_h, ksize_v;
    size_t off_bv, off_kh, off_kv, off_tmp, off_blk, off_img, total;
} layout_t;

static size_t align16(size_t n)
{
    return (n + 15u) & ~(size_t)15u;
}

static void plan(uint32_t src_w, uint32_t src_h, const float b[4], uint32_t out_w, uint32_t out_h,
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
    l->off_tmp = off;
    off += align16(kmax * sizeof(double));
    l->off_blk = off;
    off += align16((size_t)src_w * 24u + 8u);
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
    plan(src_w, src_h, b, out_w, out_h, &filters[interp], &l);
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
    plan(src_w, src_h, b, out_w, out_h, f, &l);
    if (scratch == NULL || scratch_cap < l.total) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *s = scratch;
    int32_t *bh = (int32_t *)(void *)s;
    int32_t *bv = (int32_t *)(void *)(s + l.off_bv);
    int32_t *kh = (int32_t *)(void *)(s + l.off_kh);
    int32_t *kv = (int32_t *)(void *)(s + l.off_kv);
    double *tmp = (double *)(void *)(s + l.off_tmp);
    uint8_t *blk = s + l.off_blk;
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
        resample_h(img, row_bytes, out_w, src + (size_t)yfirst * src_stride, src_w, src_stride,
                   (uint32_t)(ylast - yfirst), l.ksize_h, bh, kh, blk);
        resample_v(out, out_w, out_h, img, row_bytes, l.ksize_v, bv, kv);
    } else if (need_h) {
        resample_h(out, row_bytes, out_w, src, src_w, src_stride, src_h, l.ksize_h, bh, kh, blk);
    } else if (need_v) {
        resample_v(out, out_w, out_h, src, src_stride, l.ksize_v, bv, kv);
    } else {
        for (uint32_t y = 0; y < out_h; y++) {
            memcpy(out + (size_t)y * row_bytes, src + (size_t)y * src_stride, row_bytes);
        }
    }
    return 0;
}
