/* Image probe, verify-decode and re-encode for ingest (JPEG, PNG, WebP).
 *
 * Formats are identified by their magic bytes, never by a file name: a PNG stored as `x.jpg` is a
 * PNG. Every function here is a pure function of its input bytes (plus, for decoding, a scratch
 * context), so ingest can call it from any worker thread.
 *
 * Limits. Before any pixel buffer is allocated, the header's width and height are checked against
 * pl_img_limits_t (defaults: 16384 per side, 64 Mi pixels, i.e. 192 MiB of RGB). A header over the
 * limits is refused with CORE_ETOO_LARGE and reason PL_IMG_R_TOO_LARGE; a decompression bomb (the
 * shared realbomb.tar's 20990x29700 PNG) never reaches a decoder.
 *
 * Colour. Every decode produces 8-bit RGB, row-major, 3 bytes per pixel, no padding:
 *   - grayscale is replicated to R=G=B; CMYK/YCCK JPEG is converted as PIL does (Adobe-inverted
 *     data is un-inverted, then R = (255-C)(255-K)/255, ...);
 *   - palette, 16-bit (high byte kept) and grayscale PNG are expanded;
 *   - alpha (PNG RGBA/GA/tRNS, WebP alpha) is composited on WHITE, the way the shared emoji corpus
 *     was made (note: PIL's convert("RGB") would drop alpha instead; we prefer white so that a
 *     transparent background does not turn black).
 * EXIF orientation is NOT applied: PIL and torchvision do not rotate by default, and parity with
 * them matters more for training than display orientation. An image with orientation 6 decodes to
 * its stored (unrotated) width x height.
 *
 * JPEG warnings. libjpeg only *warns* on truncated or corrupt entropy data and fills the rest with
 * grey. Here those warnings are errors (reason PL_IMG_R_TRUNCATED or PL_IMG_R_CORRUPT, with
 * libjpeg's text, e.g. "jpeg: Premature end of JPEG file"). Harmless warnings (unknown JFIF
 * revision, unknown Adobe transform, bad ICC profile) are ignored.
 *
 * Errors: every function returns 0 or a negative core code. When it fails on the input bytes it
 * also fills the optional pl_img_err_t with a stable reason code (for counting rejects) and a
 * human-readable text. Codes: CORE_ECORRUPT (empty, truncated, corrupt, bad header),
 * CORE_EBAD_MAGIC (unknown format), CORE_ETOO_LARGE (limits), CORE_EUNSUPPORTED (a valid file this
 * build cannot decode, e.g. animated WebP, 12-bit JPEG), CORE_ERR(ENOMEM). */
#ifndef PIPELINE_IMAGE_H
#define PIPELINE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
    PL_IMG_UNKNOWN = 0,
    PL_IMG_JPEG = 1,
    PL_IMG_PNG = 2,
    PL_IMG_WEBP = 3,
} pl_img_format_t;

/* Rejection reasons: X(NAME, "short_name", core code). The short name is stable; ingest uses it as
 * the reject-counter key ("image_" + short name is a good prefix). */
#define PL_IMG_REASON_MAP(X)                                                                       \
    X(NONE, "ok", 0)                                                                               \
    X(EMPTY, "empty", CORE_ECORRUPT)                       /* 0 bytes */                           \
    X(UNKNOWN_FORMAT, "unknown_format", CORE_EBAD_MAGIC)   /* no JPEG/PNG/WebP magic */            \
    X(TRUNCATED_HEADER, "truncated_header", CORE_ECORRUPT) /* magic ok, header cut short */        \
    X(BAD_HEADER, "bad_header", CORE_ECORRUPT)             /* header fields invalid */             \
    X(TOO_LARGE, "too_large", CORE_ETOO_LARGE)             /* over pl_img_limits_t */              \
    X(TRUNCATED, "truncated", CORE_ECORRUPT)               /* pixel data ends early */             \
    X(CORRUPT, "corrupt", CORE_ECORRUPT)             /* decoder error / corrupt-data warning */    \
    X(UNSUPPORTED, "unsupported", CORE_EUNSUPPORTED) /* valid but not decodable here */            \
    X(NO_MEMORY, "no_memory", CORE_ERR(ENOMEM))

typedef enum {
#define PL__IMG_REASON_ENUM(name, str, code) PL_IMG_R_##name,
    PL_IMG_REASON_MAP(PL__IMG_REASON_ENUM)
#undef PL__IMG_REASON_ENUM
        PL_IMG_R__COUNT
} pl_img_reason_t;

/* Stable short name of a reason ("truncated"); "?" for an out-of-range value. Thread-safe. */
const char *pl_img_reason_name(int reason);

/* Name of a format: "jpeg", "png", "webp", "unknown". */
const char *pl_img_format_name(int format);

/* Filled on failure; `reason` is PL_IMG_R_NONE on success. */
typedef struct pl_img_err_s {
    int reason;     /* pl_img_reason_t */
    char text[160]; /* e.g. "jpeg: Premature end of JPEG file"; NUL-terminated */
} pl_img_err_t;

typedef struct pl_img_limits_s {
    uint32_t max_side;   /* refuse width or height above this; 0 = default */
    uint64_t max_pixels; /* refuse width*height above this; 0 = default */
} pl_img_limits_t;

#define PL_IMG_DEFAULT_MAX_SIDE 16384u
#define PL_IMG_DEFAULT_MAX_PIXELS (64ull << 20)

/* Info flags (pl_img_info_t.flags). */
#define PL_IMG_F_ALPHA 0x01u       /* has an alpha channel or PNG tRNS */
#define PL_IMG_F_GRAY 0x02u        /* JPEG/PNG grayscale */
#define PL_IMG_F_PALETTE 0x04u     /* PNG palette */
#define PL_IMG_F_16BIT 0x08u       /* PNG with 16-bit samples */
#define PL_IMG_F_PROGRESSIVE 0x10u /* progressive JPEG / interlaced PNG */
#define PL_IMG_F_CMYK 0x20u        /* JPEG with 4 components (CMYK or YCCK) */
#define PL_IMG_F_LOSSLESS 0x40u    /* WebP VP8L */
#define PL_IMG_F_ANIMATED 0x80u    /* animated WebP (not decodable here) */

typedef struct pl_img_info_s {
    uint8_t format;     /* pl_img_format_t */
    uint8_t components; /* samples per pixel as stored: 1 gray, 2 gray+alpha, 3, 4 */
    uint8_t bit_depth;  /* 8 or 16 (PNG may also say 1, 2, 4) */
    uint8_t reserved;
    uint32_t flags; /* PL_IMG_F_* */
    uint32_t width;
    uint32_t height;
} pl_img_info_t;

/* Identifies the format from magic bytes and reads width, height and flags from the header only.
 * Allocates nothing and never touches pixel data; `data` may be any bytes (fuzzed). `lim` NULL
 * means defaults. On success fills *info and returns 0. Errors: CORE_ECORRUPT (EMPTY,
 * TRUNCATED_HEADER, BAD_HEADER), CORE_EBAD_MAGIC (UNKNOWN_FORMAT), CORE_ETOO_LARGE (TOO_LARGE, the
 * info is still filled so the caller can log the size), CORE_EUNSUPPORTED. Thread-safe. */
int pl_img_probe(const uint8_t *data, size_t len, const pl_img_limits_t *lim, pl_img_info_t *info,
                 pl_img_err_t *err);

/* A decoding scratch context: the libjpeg decompressor, a TurboJPEG compressor (created on first
 * re-encode) and growable pixel/resample buffers, all reused across calls, so our own buffers stop
 * allocating once they have grown to the largest image seen. (The codecs still make their own
 * per-image allocations: libjpeg's image pool, libwebp's decoder state, libspng's context.)
 * One context per thread; it is not thread-safe. */
typedef struct pl_img_ctx_s pl_img_ctx_t;

/* Creates a context. Errors: CORE_ERR(ENOMEM). */
int pl_img_ctx_new(pl_img_ctx_t **out);
/* Frees a context and its buffers; NULL is a no-op. */
void pl_img_ctx_free(pl_img_ctx_t *ctx);

/* Probes, checks limits, then decodes the whole image to 8-bit RGB (see the colour rules above).
 * On success *rgb points to width*height*3 bytes owned by ctx, valid until the next call on ctx
 * (never free it), and *info is filled. Errors: as pl_img_probe, plus CORE_ECORRUPT with reason
 * TRUNCATED or CORRUPT for bad pixel data, CORE_ERR(ENOMEM). */
int pl_img_decode_rgb(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                      const pl_img_limits_t *lim, pl_img_info_t *info, const uint8_t **rgb,
                      pl_img_err_t *err);

/* verify=full for ingest: pl_img_decode_rgb, discarding the pixels. Same errors. */
int pl_img_verify(pl_img_ctx_t *ctx, const uint8_t *data, size_t len, const pl_img_limits_t *lim,
                  pl_img_info_t *info, pl_img_err_t *err);

/* Ingest's optional max_side (img2dataset's resize_only_if_bigger): if the longer side of the image
 * exceeds max_side, decodes it, resizes so the longer side is exactly max_side (the shorter side
 * rounds to nearest, at least 1) with antialiased bicubic (PIL convention), and encodes a baseline
 * 4:2:0 JPEG at `quality` (1..100; 0 means 90). Then *out is a core_malloc'd buffer the caller owns
 * and frees with core_free, *out_len its size, and *out_info (may be NULL) describes the new JPEG.
 * If the image is not bigger than max_side, nothing is decoded beyond the probe, *out is NULL,
 * *out_len 0 and *out_info the original's probe info (the caller keeps the original bytes; with
 * verify=full it still has to verify them). Errors: as pl_img_decode_rgb, CORE_ECONFIG for max_side
 * 0 or a bad quality, CORE_EUNSUPPORTED/ENOMEM from the encoder. */
int pl_img_reencode_max_side(pl_img_ctx_t *ctx, const uint8_t *data, size_t len,
                             const pl_img_limits_t *lim, uint32_t max_side, int quality,
                             uint8_t **out, size_t *out_len, pl_img_info_t *out_info,
                             pl_img_err_t *err);

#endif
