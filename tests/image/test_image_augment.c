/* Decode + augment: resampler vs PIL (golden), RandomResizedCrop boxes vs torchvision's get_params
 * fed the same uniforms (golden), eval resize + centre crop vs torchvision end to end, DCT scale
 * choice, crop-window decoding equal to full decoding, flip, and every edge image through the
 * pipeline. Goldens: tests/ref/gen_image_golden.py. */
#include "../../pipeline/image/internal.h"
#include "core/alloc.h"
#include "pipeline/augment.h"
#include "pipeline/image.h"
#include "t.h"
#include "t_tar.h"

/* Little-endian reader over a golden file. */
typedef struct rd_s {
    const uint8_t *p, *end;
} rd_t;

static const uint8_t *rd_take(rd_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        T_FAIL("golden file truncated");
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static uint32_t rd_u32(rd_t *r)
{
    const uint8_t *q = rd_take(r, 4);
    return (uint32_t)q[0] | ((uint32_t)q[1] << 8) | ((uint32_t)q[2] << 16) | ((uint32_t)q[3] << 24);
}

static double rd_f64(rd_t *r)
{
    const uint8_t *q = rd_take(r, 8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | q[i];
    }
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static char *open_golden(const char *name, const char *magic, rd_t *r, uint32_t *n)
{
    char rel[128];
    size_t len;
    snprintf(rel, sizeof rel, "tests/data/golden/%s", name);
    char *buf = t_read_file(t_source(rel), &len);
    r->p = (const uint8_t *)buf;
    r->end = r->p + len;
    T_ASSERT(memcmp(rd_take(r, 4), magic, 4) == 0);
    T_ASSERT_EQ(rd_u32(r), 1);
    *n = rd_u32(r);
    return buf;
}

T_CASE(resample_matches_pil)
{
    rd_t r;
    uint32_t n;
    char *buf = open_golden("image_resample.bin", "SCRS", &r, &n);
    T_ASSERT(n >= 10);
    const uint8_t *start = r.p;
    /* Twice: the SIMD kernels (where the CPU has them), then the portable ones. */
    for (int portable = 0; portable < 2; portable++) {
        pl__resample_force_portable(portable);
        r.p = start;
        for (uint32_t c = 0; c < n; c++) {
            uint32_t sw = rd_u32(&r), sh = rd_u32(&r), ow = rd_u32(&r), oh = rd_u32(&r);
            uint32_t interp = rd_u32(&r);
            double box[4];
            for (int i = 0; i < 4; i++) {
                box[i] = rd_f64(&r);
            }
            const uint8_t *src = rd_take(&r, (size_t)sw * sh * 3u);
            const uint8_t *want = rd_take(&r, (size_t)ow * oh * 3u);
            size_t ss = pl_resample_scratch_size(sw, sh, box, ow, oh, (int)interp);
            T_ASSERT(ss > 0);
            void *scratch = core_malloc(ss);
            uint8_t *out = core_malloc((size_t)ow * oh * 3u);
            T_ASSERT_OK(pl_resample(src, sw, sh, (size_t)sw * 3u, box, out, ow, oh, (int)interp,
                                    scratch, ss));
            size_t bad = 0;
            int maxd = 0;
            for (size_t i = 0; i < (size_t)ow * oh * 3u; i++) {
                int d = abs((int)out[i] - (int)want[i]);
                bad += d != 0;
                maxd = d > maxd ? d : maxd;
            }
            if (bad != 0) {
                T_FAIL("case %u (%ux%u -> %ux%u interp %u, portable %d): %zu values differ, max %d",
                       c, sw, sh, ow, oh, interp, portable, bad, maxd);
            }
            /* Too little scratch is refused, not overrun. */
            T_ASSERT_ERR(pl_resample(src, sw, sh, (size_t)sw * 3u, box, out, ow, oh, (int)interp,
                                     scratch, ss - 1),
                         CORE_ETOO_LARGE);
            core_free(scratch);
            core_free(out);
        }
    }
    pl__resample_force_portable(0);
    double bad_box[4] = {0, 0, 0, 5};
    uint8_t px[3] = {0}, o[3];
    T_ASSERT_EQ(pl_resample_scratch_size(1, 5, bad_box, 1, 1, 0), 0);
    T_ASSERT_ERR(pl_resample(px, 1, 5, 3, bad_box, o, 1, 1, 0, o, 3), CORE_ECONFIG);
    core_free(buf);
}

typedef struct ustream_s {
    const double *u;
    uint32_t n, used;
} ustream_t;

static double us_next(void *arg)
{
    ustream_t *s = arg;
    if (s->used >= s->n) {
        T_FAIL("uniform stream exhausted");
    }
    return s->u[s->used++];
}

T_CASE(rrc_matches_torchvision)
{
    rd_t r;
    uint32_t n;
    char *buf = open_golden("image_rrc.bin", "SCRR", &r, &n);
    T_ASSERT(n >= 200);
    uint32_t fallbacks = 0;
    for (uint32_t c = 0; c < n; c++) {
        uint32_t w = rd_u32(&r), h = rd_u32(&r);
        double s0 = rd_f64(&r), s1 = rd_f64(&r), r0 = rd_f64(&r), r1 = rd_f64(&r);
        uint32_t nu = rd_u32(&r);
        double us[64];
        T_ASSERT(nu <= 64);
        for (uint32_t i = 0; i < nu; i++) {
            us[i] = rd_f64(&r);
        }
        uint32_t used = rd_u32(&r);
        int32_t ti = (int32_t)rd_u32(&r), tj = (int32_t)rd_u32(&r), th = (int32_t)rd_u32(&r),
                tw = (int32_t)rd_u32(&r);
        ustream_t st = {us, nu, 0};
        pl_box_t b;
        int accepted = pl__rrc_box_draw(w, h, s0, s1, r0, r1, us_next, &st, &b);
        fallbacks += !accepted;
        if (b.y != ti || b.x != tj || b.h != th || b.w != tw || st.used != used) {
            T_FAIL("case %u %ux%u scale (%g,%g) ratio (%g,%g): got y%d x%d h%d w%d (%u draws), "
                   "torchvision i%d j%d h%d w%d (%u draws)",
                   c, w, h, s0, s1, r0, r1, b.y, b.x, b.h, b.w, st.used, ti, tj, th, tw, used);
        }
    }
    T_ASSERT(fallbacks > 0); /* the golden exercises the centre-crop fallback too */
    core_free(buf);
}

T_CASE(rrc_statistics)
{
    core_rng_t rng;
    core_rng_init(&rng, 7, 0);
    const uint32_t W = 640, H = 480, N = 20000;
    double area_sum = 0, lr_sum = 0;
    for (uint32_t k = 0; k < N; k++) {
        pl_box_t b;
        int acc = pl_rrc_box(W, H, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0, &rng, &b);
        T_ASSERT(b.x >= 0 && b.y >= 0 && b.w > 0 && b.h > 0);
        T_ASSERT((uint32_t)(b.x + b.w) <= W && (uint32_t)(b.y + b.h) <= H);
        if (acc) {
            double ar = (double)b.w / b.h;
            T_ASSERT(ar > 0.70 && ar < 1.45); /* 3/4..4/3 up to rounding of small boxes */
            lr_sum += log(ar);
        }
        area_sum += (double)b.w * b.h / (W * H);
    }
    /* scale ~ U(0.08, 1) has mean 0.54, but on a 4:3 image most large tries do not fit and are
     * redrawn: a plain-Python simulation of the same formula (2e5 samples) gives 0.4326. */
    T_ASSERT_NEAR(area_sum / N, 0.4326, 0.01);
    (void)lr_sum;
    /* On a square image the accepted log-ratios are symmetric around 0. */
    lr_sum = 0;
    for (uint32_t k = 0; k < N; k++) {
        pl_box_t b;
        if (pl_rrc_box(500, 500, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0, &rng, &b)) {
            lr_sum += log((double)b.w / b.h);
        }
    }
    T_ASSERT_NEAR(lr_sum / N, 0.0, 0.005);
    /* Determinism: same (seed, stream) -> same boxes. */
    core_rng_t a, b2;
    core_rng_init(&a, 42, 3);
    core_rng_init(&b2, 42, 3);
    for (int k = 0; k < 100; k++) {
        pl_box_t x, y;
        pl_rrc_box(333, 777, 0.9, 1.0, 0.75, 4.0 / 3.0, &a, &x);
        pl_rrc_box(333, 777, 0.9, 1.0, 0.75, 4.0 / 3.0, &b2, &y);
        T_ASSERT(memcmp(&x, &y, sizeof x) == 0);
    }
}

T_CASE(dct_scale_selection)
{
    T_ASSERT_EQ(pl_jpeg_pick_scale(512, 512, 64, 64), 1);
    T_ASSERT_EQ(pl_jpeg_pick_scale(511, 512, 64, 64), 2);
    T_ASSERT_EQ(pl_jpeg_pick_scale(512, 384, 64, 64), 2);    /* 384/8 = 48 < 64 */
    T_ASSERT_EQ(pl_jpeg_pick_scale(1024, 768, 224, 224), 4); /* 3/8 would do; not a power of 2 */
    T_ASSERT_EQ(pl_jpeg_pick_scale(448, 448, 224, 224), 4);
    T_ASSERT_EQ(pl_jpeg_pick_scale(449, 449, 224, 224), 4);
    T_ASSERT_EQ(pl_jpeg_pick_scale(447, 447, 224, 224), 8);
    T_ASSERT_EQ(pl_jpeg_pick_scale(1024, 1024, 224, 224), 2);
    T_ASSERT_EQ(pl_jpeg_pick_scale(224, 224, 224, 224), 8);
    T_ASSERT_EQ(pl_jpeg_pick_scale(100, 100, 224, 224), 8); /* upscale: full resolution */
}

T_CASE(eval_box_geometry)
{
    double b[4];
    /* 640x480 -> shorter 224, longer int(224*640/480) = 298; left = round(74/2) = 37. */
    pl_eval_box(640, 480, 224, b);
    T_ASSERT_NEAR(b[0], 37.0 * 640.0 / 298.0, 1e-9);
    T_ASSERT_NEAR(b[1], 0.0, 1e-12);
    T_ASSERT_NEAR(b[2], 261.0 * 640.0 / 298.0, 1e-9);
    T_ASSERT_NEAR(b[3], 480.0, 1e-9);
    /* Portrait 31x45 with S=16: new 16x23, top = round(3.5) = 4 (half to even). */
    pl_eval_box(31, 45, 16, b);
    T_ASSERT_NEAR(b[1], 4.0 * 45.0 / 23.0, 1e-9);
    T_ASSERT_NEAR(b[0], 0.0, 1e-12);
}

static uint8_t *load_member(const char *tar_rel, const char *name, size_t *n, uint8_t **tar_out)
{
    size_t tl;
    uint8_t *tar = (uint8_t *)t_read_file(t_shared(tar_rel), &tl);
    const uint8_t *d;
    if (!t_tar_find(tar, tl, name, &d, n)) {
        T_FAIL("%s not in %s", name, tar_rel);
    }
    *tar_out = tar;
    return (uint8_t *)d;
}

T_CASE(eval_matches_torchvision)
{
    rd_t r;
    uint32_t n;
    size_t plen;
    char *png = t_read_file(t_source("tests/data/golden/image_eval.png"), &plen);
    char *buf = open_golden("image_eval.bin", "SCEV", &r, &n);
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    for (uint32_t c = 0; c < n; c++) {
        uint32_t S = rd_u32(&r), interp = rd_u32(&r);
        const uint8_t *want = rd_take(&r, (size_t)S * S * 3u);
        pl_aug_t aug;
        pl_aug_defaults(&aug);
        aug.train = 0;
        aug.out_w = aug.out_h = S;
        aug.interp = (int)interp;
        uint8_t out[31 * 31 * 3];
        pl_aug_result_t res;
        pl_img_err_t err;
        T_ASSERT_OK(pl_img_decode_augment(ctx, (const uint8_t *)png, plen, NULL, &aug, NULL, out,
                                          sizeof out, &res, &err));
        /* One resample of the equivalent box versus PIL's resize-then-crop: the taps are the
         * same; only float rounding of the box may move a value by one. */
        int maxd = 0;
        for (size_t i = 0; i < (size_t)S * S * 3u; i++) {
            int d = abs((int)out[i] - (int)want[i]);
            maxd = d > maxd ? d : maxd;
        }
        if (maxd > 1) {
            T_FAIL("eval S=%u interp %u: max difference %d", S, interp, maxd);
        }
    }
    pl_img_ctx_free(ctx);
    core_free(buf);
    core_free(png);
}

/* Reference for one train sample: full-resolution decode, crop, PIL resample. */
static void reference_crop(pl_img_ctx_t *ctx, const uint8_t *d, size_t n, const pl_box_t *b,
                           uint32_t ow, uint32_t oh, int interp, uint8_t *out)
{
    pl_img_info_t info;
    const uint8_t *rgb;
    T_ASSERT_OK(pl_img_decode_rgb(ctx, d, n, NULL, &info, &rgb, NULL));
    double box[4] = {0, 0, b->w, b->h};
    size_t ss = pl_resample_scratch_size((uint32_t)b->w, (uint32_t)b->h, box, ow, oh, interp);
    void *scratch = core_malloc(ss);
    const uint8_t *src = rgb + ((size_t)b->y * info.width + (size_t)b->x) * 3u;
    T_ASSERT_OK(pl_resample(src, (uint32_t)b->w, (uint32_t)b->h, (size_t)info.width * 3u, box, out,
                            ow, oh, interp, scratch, ss));
    core_free(scratch);
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        s += abs((int)a[i] - (int)b[i]);
    }
    return s / (double)n;
}

T_CASE(crop_decode_equals_full_decode)
{
    static const char *names[] = {"edge_03_progressive_jpeg.jpg",    "edge_07_444_jpeg.jpg",
                                  "edge_04_exif_rotated_jpeg.jpg",   "edge_02_cmyk_jpeg.jpg",
                                  "edge_11_rgba_webp_lossless.webp", "edge_09_palette_png.png",
                                  "edge_06_extreme_aspect_jpeg.jpg"};
    pl_img_ctx_t *ctx, *ref;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    T_ASSERT_OK(pl_img_ctx_new(&ref));
    uint8_t *out = core_malloc(64 * 64 * 3), *want = core_malloc(64 * 64 * 3);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        uint8_t *tar;
        size_t n;
        const uint8_t *d = load_member("bad/edge.tar", names[k], &n, &tar);
        for (int seed = 0; seed < 12; seed++) {
            core_rng_t rng;
            core_rng_init(&rng, (uint64_t)seed, 1);
            pl_aug_t aug;
            pl_aug_defaults(&aug);
            aug.out_w = aug.out_h = 48;
            aug.scale_min = 0.08;
            aug.dct_scaling = 0;
            aug.interp = seed % 3 == 2 ? PL_INTERP_BILINEAR : PL_INTERP_BICUBIC;
            pl_aug_result_t res;
            pl_img_err_t err;
            int rc =
                pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, 64 * 64 * 3, &res, &err);
            if (rc != 0) {
                T_FAIL("%s: %s", names[k], err.text);
            }
            T_ASSERT(res.dct_num == 8 || res.dct_num == 0);
            reference_crop(ref, d, n, &res.box, 48, 48, aug.interp, want);
            /* Crop-window decoding must give exactly the pixels of a full decode. */
            double mad = mean_abs_diff(out, want, 48 * 48 * 3);
            if (mad != 0.0) {
                T_FAIL("%s seed %d box (%d,%d %dx%d): mean abs diff %.4f", names[k], seed,
                       res.box.x, res.box.y, res.box.w, res.box.h, mad);
            }
            /* DCT-scaled decode: close to the full-resolution result. */
            core_rng_init(&rng, (uint64_t)seed, 1);
            aug.dct_scaling = 1;
            T_ASSERT_OK(
                pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, 64 * 64 * 3, &res, &err));
            mad = mean_abs_diff(out, want, 48 * 48 * 3);
            if (mad > 4.0) {
                T_FAIL("%s seed %d dct %d/8: mean abs diff %.3f", names[k], seed, res.dct_num, mad);
            }
        }
        core_free(tar);
    }
    /* Lossy WebP (4:2:0 chroma), from the goldens. */
    size_t wn;
    char *webp = t_read_file(t_source("tests/data/golden/image_lossy.webp"), &wn);
    for (int seed = 0; seed < 16; seed++) {
        core_rng_t rng;
        core_rng_init(&rng, (uint64_t)seed, 2);
        pl_aug_t aug;
        pl_aug_defaults(&aug);
        aug.out_w = aug.out_h = 24;
        aug.scale_min = 0.08;
        pl_aug_result_t res;
        T_ASSERT_OK(pl_img_decode_augment(ctx, (const uint8_t *)webp, wn, NULL, &aug, &rng, out,
                                          64 * 64 * 3, &res, NULL));
        reference_crop(ref, (const uint8_t *)webp, wn, &res.box, 24, 24, aug.interp, want);
        double mad = mean_abs_diff(out, want, 24 * 24 * 3);
        if (mad != 0.0) {
            T_FAIL("lossy webp seed %d box (%d,%d %dx%d): mean abs diff %.4f", seed, res.box.x,
                   res.box.y, res.box.w, res.box.h, mad);
        }
    }
    core_free(webp);
    core_free(out);
    core_free(want);
    pl_img_ctx_free(ctx);
    pl_img_ctx_free(ref);
}

T_CASE(dct_scale_used_for_small_output)
{
    uint8_t *tar;
    size_t n;
    const uint8_t *d = load_member("bad/edge.tar", "edge_07_444_jpeg.jpg", &n, &tar);
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    pl_aug_t aug;
    pl_aug_defaults(&aug);
    aug.out_w = aug.out_h = 64; /* scale (0.9, 1) of 640x480: crops >= ~415 px -> 2/8 */
    uint8_t out[64 * 64 * 3];
    pl_aug_result_t res;
    core_rng_t rng;
    core_rng_init(&rng, 5, 0);
    for (int k = 0; k < 20; k++) {
        T_ASSERT_OK(
            pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, sizeof out, &res, NULL));
        int want = pl_jpeg_pick_scale((uint32_t)res.box.w, (uint32_t)res.box.h, 64, 64);
        T_ASSERT_EQ(res.dct_num, want);
        T_ASSERT(res.dct_num <= 2);
    }
    aug.train = 0;
    T_ASSERT_OK(pl_img_decode_augment(ctx, d, n, NULL, &aug, NULL, out, sizeof out, &res, NULL));
    T_ASSERT_EQ(res.dct_num, 2); /* eval box 480x480 -> 64: 480/8 = 60 < 64, so 2/8 */
    pl_img_ctx_free(ctx);
    core_free(tar);
}

T_CASE(flip_mirrors_output)
{
    uint8_t *tar;
    size_t n;
    const uint8_t *d = load_member("bad/edge.tar", "edge_03_progressive_jpeg.jpg", &n, &tar);
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    pl_aug_t aug;
    pl_aug_defaults(&aug);
    aug.out_w = 40;
    aug.out_h = 30;
    uint8_t a[40 * 30 * 3], b[40 * 30 * 3];
    int flips = 0;
    for (int seed = 0; seed < 40; seed++) {
        core_rng_t r1, r2;
        pl_aug_result_t ra, rb;
        core_rng_init(&r1, (uint64_t)seed, 9);
        core_rng_init(&r2, (uint64_t)seed, 9);
        aug.flip = 0;
        T_ASSERT_OK(pl_img_decode_augment(ctx, d, n, NULL, &aug, &r1, a, sizeof a, &ra, NULL));
        aug.flip = 1;
        T_ASSERT_OK(pl_img_decode_augment(ctx, d, n, NULL, &aug, &r2, b, sizeof b, &rb, NULL));
        T_ASSERT(memcmp(&ra.box, &rb.box, sizeof ra.box) == 0); /* flip draw comes after */
        flips += rb.flipped;
        for (uint32_t y = 0; y < 30; y++) {
            for (uint32_t x = 0; x < 40; x++) {
                uint32_t sx = rb.flipped ? 39 - x : x;
                for (int c = 0; c < 3; c++) {
                    T_ASSERT_EQ(b[(y * 40 + x) * 3 + (uint32_t)c],
                                a[(y * 40 + sx) * 3 + (uint32_t)c]);
                }
            }
        }
    }
    T_ASSERT(flips > 8 && flips < 32); /* p = 0.5 */
    pl_img_ctx_free(ctx);
    core_free(tar);
}

T_CASE(every_edge_image_augments)
{
    static const char *names[] = {"edge_01_grayscale_jpeg.jpg",
                                  "edge_02_cmyk_jpeg.jpg",
                                  "edge_03_progressive_jpeg.jpg",
                                  "edge_04_exif_rotated_jpeg.jpg",
                                  "edge_05_1x1_jpeg.jpg",
                                  "edge_06_extreme_aspect_jpeg.jpg",
                                  "edge_07_444_jpeg.jpg",
                                  "edge_08_rgba_png.png",
                                  "edge_09_palette_png.png",
                                  "edge_10_16bit_gray_png.png",
                                  "edge_11_rgba_webp_lossless.webp",
                                  "edge_12_utf8_caption.jpg"};
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    uint8_t *out = core_malloc(224 * 224 * 3);
    core_rng_t rng;
    core_rng_init(&rng, 11, 0);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        uint8_t *tar;
        size_t n;
        const uint8_t *d = load_member("bad/edge.tar", names[k], &n, &tar);
        static const uint32_t sizes[] = {64, 224};
        for (int si = 0; si < 2; si++) {
            for (int train = 0; train < 2; train++) {
                pl_aug_t aug;
                pl_aug_defaults(&aug);
                aug.out_w = aug.out_h = sizes[si];
                aug.train = train;
                aug.flip = 1;
                pl_aug_result_t res;
                pl_img_err_t err;
                memset(out, 0x55, 224 * 224 * 3);
                int rc = pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, 224 * 224 * 3,
                                               &res, &err);
                if (rc != 0) {
                    T_FAIL("%s size %u train %d: %s", names[k], sizes[si], train, err.text);
                }
                /* Plausible pixels: the emoji-like images are bright on average (the 16-bit one
                 * is near-black by design, see test_image_decode.c). */
                double m = 0;
                size_t np = (size_t)sizes[si] * sizes[si] * 3u;
                for (size_t i = 0; i < np; i++) {
                    m += out[i];
                }
                m /= (double)np;
                if (k == 9) {
                    T_ASSERT(m < 5.0);
                } else if (m < 60.0 || m > 250.0) {
                    T_FAIL("%s size %u train %d: mean %.1f", names[k], sizes[si], train, m);
                }
            }
        }
        core_free(tar);
    }
    core_free(out);
    pl_img_ctx_free(ctx);
}

T_CASE(augment_errors)
{
    uint8_t *tar;
    size_t n;
    const uint8_t *d = load_member("bad/bad.tar", "bad_04_huge_dims_jpeg.jpg", &n, &tar);
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    pl_aug_t aug;
    pl_aug_defaults(&aug);
    uint8_t *out = core_malloc(224 * 224 * 3);
    core_rng_t rng;
    core_rng_init(&rng, 1, 0);
    pl_img_err_t err;
    T_ASSERT_ERR(pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, 224 * 224 * 3, NULL, &err),
                 CORE_ETOO_LARGE);
    T_ASSERT_EQ(err.reason, PL_IMG_R_TOO_LARGE);
    T_ASSERT_ERR(pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, 100, NULL, &err),
                 CORE_ETOO_LARGE);
    aug.scale_min = 0.0;
    T_ASSERT_ERR(pl_aug_check(&aug), CORE_ECONFIG);
    pl_aug_defaults(&aug);
    aug.train = 0;
    aug.out_w = 100;
    T_ASSERT_ERR(pl_aug_check(&aug), CORE_ECONFIG);
    pl_aug_defaults(&aug);
    aug.ratio_min = 2.0;
    aug.ratio_max = 1.0;
    T_ASSERT_ERR(pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, 224 * 224 * 3, NULL, &err),
                 CORE_ECONFIG);
    core_free(tar);
    d = load_member("bad/bad.tar", "bad_11_garbage_image.jpg", &n, &tar);
    pl_aug_defaults(&aug);
    T_ASSERT_ERR(pl_img_decode_augment(ctx, d, n, NULL, &aug, &rng, out, 224 * 224 * 3, NULL, &err),
                 CORE_EBAD_MAGIC);
    core_free(tar);
    core_free(out);
    pl_img_ctx_free(ctx);
}

T_MAIN()
