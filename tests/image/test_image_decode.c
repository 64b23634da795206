/* Image probe / verify / re-encode against the shared edge, bad and bomb tars, plus synthetic
 * malformed headers. Expected sizes and mean colours were measured with PIL 9.4 (alpha composited
 * on white as our decoder does). */
#include <sys/resource.h>

#include "core/alloc.h"
#include "pipeline/image.h"
#include "t.h"
#include "t_tar.h"

typedef struct edge_s {
    const char *name;
    int format;
    uint32_t w, h;
    uint32_t flags; /* flags that must be set */
    double mean[3]; /* PIL's mean RGB; < 0: skip the colour check */
} edge_t;

static const edge_t edges[] = {
    {"edge_01_grayscale_jpeg.jpg", PL_IMG_JPEG, 64, 64, PL_IMG_F_GRAY, {203.89, 203.89, 203.89}},
    {"edge_02_cmyk_jpeg.jpg", PL_IMG_JPEG, 64, 64, PL_IMG_F_CMYK, {234.15, 204.38, 121.71}},
    {"edge_03_progressive_jpeg.jpg",
     PL_IMG_JPEG,
     640,
     480,
     PL_IMG_F_PROGRESSIVE,
     {234.25, 204.44, 121.76}},
    /* EXIF orientation 6 is not applied (PIL parity): the stored 640x480 comes back. */
    {"edge_04_exif_rotated_jpeg.jpg", PL_IMG_JPEG, 640, 480, 0, {234.25, 204.44, 121.76}},
    {"edge_05_1x1_jpeg.jpg", PL_IMG_JPEG, 1, 1, 0, {202, 30, 30}},
    {"edge_06_extreme_aspect_jpeg.jpg", PL_IMG_JPEG, 4000, 16, 0, {232.02, 204.27, 122.3}},
    {"edge_07_444_jpeg.jpg", PL_IMG_JPEG, 640, 480, 0, {234.28, 204.45, 121.77}},
    {"edge_08_rgba_png.png", PL_IMG_PNG, 64, 64, PL_IMG_F_ALPHA, {234.28, 204.55, 121.95}},
    {"edge_09_palette_png.png", PL_IMG_PNG, 64, 64, PL_IMG_F_PALETTE, {234.03, 204.24, 121.86}},
    /* 16-bit samples are reduced to their high byte (libpng/spng convention). This file stores
     * 8-bit-range values (43..255) in 16-bit samples, so it is correctly near-black; PIL's
     * convert("RGB") clips instead and shows the values as if they were 8-bit. */
    {"edge_10_16bit_gray_png.png", PL_IMG_PNG, 64, 64, PL_IMG_F_16BIT | PL_IMG_F_GRAY, {0, 0, 0}},
    {"edge_11_rgba_webp_lossless.webp",
     PL_IMG_WEBP,
     64,
     64,
     PL_IMG_F_ALPHA | PL_IMG_F_LOSSLESS,
     {234.28, 204.55, 121.95}},
    {"edge_12_utf8_caption.jpg", PL_IMG_JPEG, 64, 64, 0, {232.81, 204.21, 121.74}},
};

static uint8_t *load_tar(const char *rel, size_t *len)
{
    return (uint8_t *)t_read_file(t_shared(rel), len);
}

static void member(const uint8_t *tar, size_t tar_len, const char *name, const uint8_t **d,
                   size_t *n)
{
    if (!t_tar_find(tar, tar_len, name, d, n)) {
        T_FAIL("member %s not found", name);
    }
}

T_CASE(probe_edge)
{
    size_t tl;
    uint8_t *tar = load_tar("bad/edge.tar", &tl);
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        const uint8_t *d;
        size_t n;
        pl_img_info_t info;
        pl_img_err_t err;
        member(tar, tl, edges[i].name, &d, &n);
        int rc = pl_img_probe(d, n, NULL, &info, &err);
        if (rc != 0) {
            T_FAIL("%s: %s", edges[i].name, err.text);
        }
        T_ASSERT_EQ(info.format, edges[i].format);
        T_ASSERT_EQ(info.width, edges[i].w);
        T_ASSERT_EQ(info.height, edges[i].h);
        T_ASSERT_EQ(info.flags & edges[i].flags, edges[i].flags);
    }
    core_free(tar);
}

T_CASE(decode_edge)
{
    size_t tl;
    uint8_t *tar = load_tar("bad/edge.tar", &tl);
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        const uint8_t *d, *rgb;
        size_t n;
        pl_img_info_t info;
        pl_img_err_t err;
        member(tar, tl, edges[i].name, &d, &n);
        int rc = pl_img_decode_rgb(ctx, d, n, NULL, &info, &rgb, &err);
        if (rc != 0) {
            T_FAIL("%s: %s", edges[i].name, err.text);
        }
        T_ASSERT_EQ(info.width, edges[i].w);
        T_ASSERT_EQ(info.height, edges[i].h);
        double sum[3] = {0, 0, 0};
        size_t np = (size_t)info.width * info.height;
        for (size_t p = 0; p < np; p++) {
            for (int c = 0; c < 3; c++) {
                sum[c] += rgb[p * 3 + (size_t)c];
            }
        }
        for (int c = 0; c < 3; c++) {
            double m = sum[c] / (double)np;
            if (fabs(m - edges[i].mean[c]) > 1.5) {
                T_FAIL("%s: channel %d mean %.2f, PIL %.2f", edges[i].name, c, m, edges[i].mean[c]);
            }
        }
        T_ASSERT_OK(pl_img_verify(ctx, d, n, NULL, &info, &err));
    }
    pl_img_ctx_free(ctx);
    core_free(tar);
}

typedef struct bad_s {
    const char *name;
    int rc;
    int reason;
} bad_t;

T_CASE(bad_tar_reasons)
{
    static const bad_t bads[] = {
        {"bad_01_truncated_jpeg.jpg", CORE_ECORRUPT, PL_IMG_R_TRUNCATED},
        {"bad_02_zero_byte_image.jpg", CORE_ECORRUPT, PL_IMG_R_EMPTY},
        {"bad_03_png_named_jpg.jpg", 0, PL_IMG_R_NONE}, /* a PNG: identified by magic, kept */
        {"bad_04_huge_dims_jpeg.jpg", CORE_ETOO_LARGE, PL_IMG_R_TOO_LARGE},
        {"bad_11_garbage_image.jpg", CORE_EBAD_MAGIC, PL_IMG_R_UNKNOWN_FORMAT},
        {"bad_05_invalid_utf8_caption.jpg", 0, PL_IMG_R_NONE},
        {"bad_13b_between.jpg", 0, PL_IMG_R_NONE},
    };
    size_t tl;
    uint8_t *tar = load_tar("bad/bad.tar", &tl);
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const uint8_t *d;
        size_t n;
        pl_img_info_t info;
        pl_img_err_t err = {0};
        member(tar, tl, bads[i].name, &d, &n);
        int rc = pl_img_verify(ctx, d, n, NULL, &info, &err);
        if (rc != bads[i].rc || err.reason != bads[i].reason) {
            T_FAIL("%s: rc %s reason %s (%s), want %s/%s", bads[i].name, core_err_name(rc),
                   pl_img_reason_name(err.reason), err.text, core_err_name(bads[i].rc),
                   pl_img_reason_name(bads[i].reason));
        }
        if (rc < 0) {
            T_ASSERT(err.text[0] != '\0');
        }
    }
    /* The truncated JPEG's header is intact: verify=header would accept it. */
    {
        const uint8_t *d;
        size_t n;
        pl_img_info_t info;
        member(tar, tl, "bad_01_truncated_jpeg.jpg", &d, &n);
        T_ASSERT_OK(pl_img_probe(d, n, NULL, &info, NULL));
        pl_img_err_t err;
        T_ASSERT_ERR(pl_img_verify(ctx, d, n, NULL, &info, &err), CORE_ECORRUPT);
        T_ASSERT(strstr(err.text, "Premature end") != NULL);
        /* The PNG-as-jpg is a PNG. */
        member(tar, tl, "bad_03_png_named_jpg.jpg", &d, &n);
        T_ASSERT_OK(pl_img_probe(d, n, NULL, &info, NULL));
        T_ASSERT_EQ(info.format, PL_IMG_PNG);
        /* 04 is refused at the probe, with the size in the text. */
        member(tar, tl, "bad_04_huge_dims_jpeg.jpg", &d, &n);
        T_ASSERT_ERR(pl_img_probe(d, n, NULL, &info, &err), CORE_ETOO_LARGE);
        T_ASSERT_EQ(info.width, 60000);
        T_ASSERT(strstr(err.text, "60000x60000") != NULL);
    }
    pl_img_ctx_free(ctx);
    core_free(tar);
}

T_CASE(realbomb_refused_without_allocating)
{
    size_t tl;
    uint8_t *tar = load_tar("bad/realbomb.tar", &tl);
    const uint8_t *d = NULL;
    size_t n = 0;
    /* Find the single .png member whatever its name. */
    for (size_t pos = 0; pos + 512 <= tl;) {
        const uint8_t *h = tar + pos;
        size_t size = 0;
        for (int i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++) {
            size = size * 8 + (size_t)(h[i] - '0');
        }
        if (h[0] == 0) {
            break;
        }
        if (strstr((const char *)h, ".png") != NULL) {
            d = h + 512;
            n = size;
            break;
        }
        pos += 512 + (size + 511) / 512 * 512;
    }
    T_ASSERT(d != NULL);
    pl_img_ctx_t *ctx;
    pl_img_info_t info;
    pl_img_err_t err;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    T_ASSERT_ERR(pl_img_probe(d, n, NULL, &info, &err), CORE_ETOO_LARGE);
    T_ASSERT_EQ(info.width, 20990);
    T_ASSERT_EQ(info.height, 29700);
    T_ASSERT_ERR(pl_img_verify(ctx, d, n, NULL, &info, &err), CORE_ETOO_LARGE);
    T_ASSERT_EQ(err.reason, PL_IMG_R_TOO_LARGE);
    /* Even with the side limit raised, the pixel limit still refuses it. */
    pl_img_limits_t lim = {.max_side = 65535, .max_pixels = 0};
    T_ASSERT_ERR(pl_img_verify(ctx, d, n, &lim, &info, &err), CORE_ETOO_LARGE);
    struct rusage ru;
    T_ASSERT_OK(getrusage(RUSAGE_SELF, &ru));
    /* ru_maxrss is in KiB. The decoded image would be 2.5 GB (RGBA 2.5e9 bytes). */
    if (ru.ru_maxrss > 200 * 1024) {
        T_FAIL("peak RSS %ld KiB", ru.ru_maxrss);
    }
    pl_img_ctx_free(ctx);
    core_free(tar);
}

static void expect_reason(const uint8_t *d, size_t n, int rc_want, int reason)
{
    pl_img_info_t info;
    pl_img_err_t err = {0};
    int rc = pl_img_probe(d, n, NULL, &info, &err);
    if (rc != rc_want || err.reason != reason) {
        T_FAIL("len %zu: rc %s reason %s (%s), want %s/%s", n, core_err_name(rc),
               pl_img_reason_name(err.reason), err.text, core_err_name(rc_want),
               pl_img_reason_name(reason));
    }
}

T_CASE(probe_synthetic_headers)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t b[64] = {0};
    expect_reason(b, 0, CORE_ECORRUPT, PL_IMG_R_EMPTY);
    b[0] = 0xFF;
    expect_reason(b, 1, CORE_ECORRUPT, PL_IMG_R_TRUNCATED_HEADER);
    memcpy(b, png_sig, 8);
    expect_reason(b, 5, CORE_ECORRUPT, PL_IMG_R_TRUNCATED_HEADER);
    expect_reason(b, 8, CORE_ECORRUPT, PL_IMG_R_TRUNCATED_HEADER);
    memcpy(b, "RIFF", 4);
    expect_reason(b, 6, CORE_ECORRUPT, PL_IMG_R_TRUNCATED_HEADER);
    memcpy(b, "GIF89a", 6);
    expect_reason(b, 6, CORE_EBAD_MAGIC, PL_IMG_R_UNKNOWN_FORMAT);
    /* JPEG: SOI + APP0 whose length runs past the end. */
    static const uint8_t j1[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F'};
    expect_reason(j1, sizeof j1, CORE_ECORRUPT, PL_IMG_R_TRUNCATED_HEADER);
    /* JPEG: SOS before SOF. */
    static const uint8_t j2[] = {0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6};
    expect_reason(j2, sizeof j2, CORE_ECORRUPT, PL_IMG_R_BAD_HEADER);
    /* JPEG: SOF0 8-bit, 3 components, 70000 is impossible (16 bits) -> 0x1234 x 0x2345. */
    static const uint8_t j3[] = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 8, 0x23, 0x45, 0x12, 0x34,
                                 3,    1,    0x22, 0,    2,    0x11, 1, 3,    0x11, 1};
    pl_img_info_t info;
    T_ASSERT_OK(pl_img_probe(j3, sizeof j3, NULL, &info, NULL));
    T_ASSERT_EQ(info.width, 0x1234);
    T_ASSERT_EQ(info.height, 0x2345);
    pl_img_limits_t lim = {.max_side = 4096, .max_pixels = 0};
    T_ASSERT_ERR(pl_img_probe(j3, sizeof j3, &lim, &info, NULL), CORE_ETOO_LARGE);
    lim.max_side = 0;
    lim.max_pixels = 1000;
    T_ASSERT_ERR(pl_img_probe(j3, sizeof j3, &lim, &info, NULL), CORE_ETOO_LARGE);
    /* 12-bit and lossless JPEG: valid, but not decodable by this build. */
    uint8_t j4[sizeof j3];
    memcpy(j4, j3, sizeof j3);
    j4[6] = 12;
    T_ASSERT_ERR(pl_img_probe(j4, sizeof j4, NULL, &info, NULL), CORE_EUNSUPPORTED);
    j4[6] = 8;
    j4[3] = 0xC3;
    T_ASSERT_ERR(pl_img_probe(j4, sizeof j4, NULL, &info, NULL), CORE_EUNSUPPORTED);
    /* Zero height (DNL-style) is a bad header. */
    memcpy(j4, j3, sizeof j3);
    j4[7] = 0;
    j4[8] = 0;
    expect_reason(j4, sizeof j4, CORE_ECORRUPT, PL_IMG_R_BAD_HEADER);
    /* PNG IHDR with a broken CRC. */
    static const uint8_t p1[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0,
                                   13,   'I', 'H', 'D', 'R',  0,    0,    1,    0, 0, 0,
                                   1,    0,   8,   2,   0,    0,    0,    1,    2, 3, 4};
    expect_reason(p1, sizeof p1, CORE_ECORRUPT, PL_IMG_R_BAD_HEADER);
    T_ASSERT_STR_EQ(pl_img_reason_name(PL_IMG_R_TRUNCATED), "truncated");
    T_ASSERT_STR_EQ(pl_img_reason_name(99), "?");
    T_ASSERT_STR_EQ(pl_img_format_name(PL_IMG_WEBP), "webp");
}

T_CASE(reencode_max_side)
{
    size_t tl;
    uint8_t *tar = load_tar("bad/edge.tar", &tl);
    const uint8_t *d;
    size_t n;
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    uint8_t *out = NULL;
    size_t out_len = 0;
    pl_img_info_t oi;
    pl_img_err_t err;
    /* 640x480 progressive -> 320x240 baseline q90. */
    member(tar, tl, "edge_03_progressive_jpeg.jpg", &d, &n);
    T_ASSERT_OK(pl_img_reencode_max_side(ctx, d, n, NULL, 320, 90, &out, &out_len, &oi, &err));
    T_ASSERT(out != NULL && out_len > 0);
    T_ASSERT_EQ(oi.width, 320);
    T_ASSERT_EQ(oi.height, 240);
    pl_img_info_t info;
    const uint8_t *rgb;
    T_ASSERT_OK(pl_img_decode_rgb(ctx, out, out_len, NULL, &info, &rgb, &err));
    T_ASSERT_EQ(info.width, 320);
    T_ASSERT_EQ(info.height, 240);
    T_ASSERT_EQ(info.flags & PL_IMG_F_PROGRESSIVE, 0);
    double sum = 0;
    for (size_t i = 0; i < 320u * 240u * 3u; i += 3) {
        sum += rgb[i];
    }
    T_ASSERT_NEAR(sum / (320.0 * 240.0), 234.25, 2.0);
    core_free(out);
    /* 4000x16 -> 512x2 (shorter side rounds to nearest). */
    member(tar, tl, "edge_06_extreme_aspect_jpeg.jpg", &d, &n);
    T_ASSERT_OK(pl_img_reencode_max_side(ctx, d, n, NULL, 512, 0, &out, &out_len, &oi, &err));
    T_ASSERT_EQ(oi.width, 512);
    T_ASSERT_EQ(oi.height, 2);
    core_free(out);
    /* The RGBA PNG (64x64) is not bigger than 64: nothing happens. */
    member(tar, tl, "edge_08_rgba_png.png", &d, &n);
    T_ASSERT_OK(pl_img_reencode_max_side(ctx, d, n, NULL, 64, 90, &out, &out_len, &oi, &err));
    T_ASSERT(out == NULL);
    T_ASSERT_EQ(out_len, 0);
    T_ASSERT_EQ(oi.format, PL_IMG_PNG); /* the original's probe info */
    T_ASSERT_EQ(oi.width, 64);
    /* ...but is at 32, composited on white, as a JPEG. */
    T_ASSERT_OK(pl_img_reencode_max_side(ctx, d, n, NULL, 32, 90, &out, &out_len, &oi, &err));
    T_ASSERT(out != NULL);
    T_ASSERT_OK(pl_img_probe(out, out_len, NULL, &info, NULL));
    T_ASSERT_EQ(info.format, PL_IMG_JPEG);
    T_ASSERT_EQ(info.width, 32);
    core_free(out);
    T_ASSERT_ERR(pl_img_reencode_max_side(ctx, d, n, NULL, 0, 90, &out, &out_len, &oi, &err),
                 CORE_ECONFIG);
    pl_img_ctx_free(ctx);
    core_free(tar);
}

T_MAIN()
