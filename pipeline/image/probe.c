/* Image header probe: format by magic bytes, then width/height/flags read from the header alone
 * (JPEG SOF marker, PNG IHDR + tRNS scan, WebP via WebPGetFeatures). Pure over the input bytes: no
 * allocation, no pixel data touched, safe on arbitrary (fuzzed) input. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <webp/decode.h>
#include <zlib.h>

#include "core/alloc.h"
#include "internal.h"

static const char *const reason_names[] = {
#define PL__IMG_REASON_STR(name, str, code) str,
    PL_IMG_REASON_MAP(PL__IMG_REASON_STR)
#undef PL__IMG_REASON_STR
};

static const int reason_codes[] = {
#define PL__IMG_REASON_CODE(name, str, code) code,
    PL_IMG_REASON_MAP(PL__IMG_REASON_CODE)
#undef PL__IMG_REASON_CODE
};

const char *pl_img_reason_name(int reason)
{
    if (reason < 0 || reason >= PL_IMG_R__COUNT) {
        return "?";
    }
    return reason_names[reason];
}

const char *pl_img_format_name(int format)
{
    switch (format) {
    case PL_IMG_JPEG:
        return "jpeg";
    case PL_IMG_PNG:
        return "png";
    case PL_IMG_WEBP:
        return "webp";
    default:
        return "unknown";
    }
}

int pl__fail(pl_img_err_t *err, int reason, const char *fmt, ...)
{
    if (reason < 0 || reason >= PL_IMG_R__COUNT) {
        reason = PL_IMG_R_CORRUPT;
    }
    if (err != NULL) {
        va_list ap;
        err->reason = reason;
        va_start(ap, fmt);
        (void)vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return reason_codes[reason];
}

void pl__limits(const pl_img_limits_t *lim, uint32_t *max_side, uint64_t *max_pixels)
{
    *max_side = PL_IMG_DEFAULT_MAX_SIDE;
    *max_pixels = PL_IMG_DEFAULT_MAX_PIXELS;
    if (lim != NULL && lim->max_side != 0) {
        *max_side = lim->max_side;
    }
    if (lim != NULL && lim->max_pixels != 0) {
        *max_pixels = lim->max_pixels;
    }
}

int pl__buf_reserve(pl__buf_t *b, size_t n)
{
    if (b->cap >= n) {
        return 0;
    }
    core_free(b->p);
    b->p = core_malloc(n);
    if (b->p == NULL) {
        b->cap = 0;
        return CORE_ERR(ENOMEM);
    }
    b->cap = n;
    return 0;
}

static uint32_t be16(const uint8_t *p)
{
    return ((uint32_t)p[0] << 8) | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* JPEG: walk the marker segments up to the first SOFn. */
static int probe_jpeg(const uint8_t *d, size_t len, pl_img_info_t *info, pl_img_err_t *err)
{
    size_t pos = 2; /* after SOI */
    for (;;) {
        /* A marker is one or more 0xFF fill bytes followed by the code. */
        if (pos >= len) {
            return pl__fail(err, PL_IMG_R_TRUNCATED_HEADER, "jpeg: header ends before SOF");
        }
        if (d[pos] != 0xFF) {
            return pl__fail(err, PL_IMG_R_BAD_HEADER, "jpeg: expected a marker at byte %zu", pos);
        }
        while (pos < len && d[pos] == 0xFF) {
            pos++;
        }
        if (pos >= len) {
            return pl__fail(err, PL_IMG_R_TRUNCATED_HEADER, "jpeg: header ends before SOF");
        }
        uint8_t m = d[pos++];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            continue; /* standalone markers (TEM, RSTn) carry no length */
        }
        if (m == 0xD8 || m == 0xD9 || m == 0xDA || m == 0x00) {
            return pl__fail(err, PL_IMG_R_BAD_HEADER, "jpeg: marker 0x%02X before any SOF", m);
        }
        if (len - pos < 2) {
            return pl__fail(err, PL_IMG_R_TRUNCATED_HEADER, "jpeg: header ends inside a marker");
        }
        uint32_t seglen = be16(d + pos);
        if (seglen < 2) {
            return pl__fail(err, PL_IMG_R_BAD_HEADER, "jpeg: marker 0x%02X length %u", m, seglen);
        }
        int is_sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (!is_sof) {
            if (len - pos < seglen) {
                return pl__fail(err, PL_IMG_R_TRUNCATED_HEADER,
                                "jpeg: header ends inside marker 0x%02X", m);
            }
            pos += seglen;
            continue;
        }
        if (seglen < 8 || len - pos < 8) {
            return pl__fail(err, seglen < 8 ? PL_IMG_R_BAD_HEADER : PL_IMG_R_TRUNCATED_HEADER,
                            "jpeg: short SOF segment");
        }
        const uint8_t *s = d + pos + 2;
        uint32_t prec = s[0], h = be16(s + 1), w = be16(s + 3), nc = s[5];
        info->format = PL_IMG_JPEG;
        info->width = w;
        info->height = h;
        info->bit_depth = (uint8_t)prec;
        info->components = (uint8_t)(nc > 255 ? 0 : nc);
        info->flags = 0;
        if (m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE) {
            info->flags |= PL_IMG_F_PROGRESSIVE;
        }
        if (nc == 1) {
            info->flags |= PL_IMG_F_GRAY;
        } else if (nc == 4) {
            info->flags |= PL_IMG_F_CMYK;
        }
        if (w == 0 || h == 0) {
            return pl__fail(err, PL_IMG_R_BAD_HEADER, "jpeg: SOF says %ux%u", w, h);
        }
        if (nc != 1 && nc != 3 && nc != 4) {
            return pl__fail(err, PL_IMG_R_BAD_HEADER, "jpeg: %u components", nc);
        }
        if (seglen < 8 + 3 * nc) {
            return pl__fail(err, PL_IMG_R_BAD_HEADER, "jpeg: SOF too short for %u components", nc);
        }
        /* libjpeg-turbo 2.1 decodes 8-bit DCT JPEGs: baseline, extended, progressive, with
         * Huffman or arithmetic coding. Lossless (SOF3/7/11/15) and 12-bit are not built in. */
        if (m == 0xC3 || m == 0xC7 || m == 0xCB || m == 0xCF) {
            return pl__fail(err, PL_IMG_R_UNSUPPORTED, "jpeg: lossless JPEG (SOF%d)", m - 0xC0);
        }
        if (prec != 8) {
            return pl__fail(err, PL_IMG_R_UNSUPPORTED, "jpeg: %u-bit samples", prec);
        }
        return 0;
    }
}

static int png_color_ok(uint32_t ct, uint32_t depth)
{
    switch (ct) {
    case 0:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:
        return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:
    case 4:
    case 6:
        return depth == 8 || depth == 16;
    default:
        return 0;
    }
}

static int probe_png(const uint8_t *d, size_t len, pl_img_info_t *info, pl_img_err_t *err)
{
    if (len < 33) {
        return pl__fail(err, PL_IMG_R_TRUNCATED_HEADER, "png: %zu bytes, IHDR needs 33", len);
    }
    if (be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0) {
        return pl__fail(err, PL_IMG_R_BAD_HEADER, "png: first chunk is not a 13-byte IHDR");
    }
    uint32_t crc = (uint32_t)crc32(0L, d + 12, 17);
    if (crc != be32(d + 29)) {
        return pl__fail(err, PL_IMG_R_BAD_HEADER, "png: IHDR CRC mismatch");
    }
    uint32_t w = be32(d + 16), h = be32(d + 20), depth = d[24], ct = d[25];
    info->format = PL_IMG_PNG;
    info->width = w;
    info->height = h;
    info->bit_depth = (uint8_t)depth;
    info->flags = 0;
    static const uint8_t comps[7] = {1, 0, 3, 1, 2, 0, 4};
    info->components = ct <= 6 ? comps[ct] : 0;
    if (w == 0 || h == 0 || w > 0x7FFFFFFFu || h > 0x7FFFFFFFu) {
        return pl__fail(err, PL_IMG_R_BAD_HEADER, "png: IHDR says %ux%u", w, h);
    }
    if (!png_color_ok(ct, depth) || d[26] != 0 || d[27] != 0 || d[28] > 1) {
        return pl__fail(err, PL_IMG_R_BAD_HEADER, "png: invalid IHDR (color type %u, depth %u)", ct,
                        depth);
    }
    if (ct == 0 || ct == 4) {
        info->flags |= PL_IMG_F_GRAY;
    }
    if (ct == 3) {
        info->flags |= PL_IMG_F_PALETTE;
    }
    if (ct == 4 || ct == 6) {
        info->flags |= PL_IMG_F_ALPHA;
    }
    if (depth == 16) {
        info->flags |= PL_IMG_F_16BIT;
    }
    if (d[28] == 1) {
        info->flags |= PL_IMG_F_PROGRESSIVE;
    }
    /* tRNS (transparency for palette/gray/RGB) must come before IDAT: scan the chunk headers.
     * A header cut short here is left to the decoder; the probe only reports what it saw. */
    size_t pos = 33;
    while (len - pos >= 8) {
        uint32_t clen = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (memcmp(type, "IDAT", 4) == 0 || memcmp(type, "IEND", 4) == 0) {
            break;
        }
        if (memcmp(type, "tRNS", 4) == 0) {
            info->flags |= PL_IMG_F_ALPHA;
            break;
        }
        if (clen > len - pos - 8 || len - pos - 8 - clen < 4) {
            break;
        }
        pos += 12 + (size_t)clen;
    }
    return 0;
}

static int probe_webp(const uint8_t *d, size_t len, pl_img_info_t *info, pl_img_err_t *err)
{
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(d, len, &f);
    info->format = PL_IMG_WEBP;
    info->bit_depth = 8;
    if (st == VP8_STATUS_NOT_ENOUGH_DATA) {
        return pl__fail(err, PL_IMG_R_TRUNCATED_HEADER, "webp: header truncated");
    }
    if (st == VP8_STATUS_UNSUPPORTED_FEATURE) {
        return pl__fail(err, PL_IMG_R_UNSUPPORTED, "webp: unsupported feature");
    }
    if (st != VP8_STATUS_OK) {
        return pl__fail(err, PL_IMG_R_BAD_HEADER, "webp: invalid header (status %d)", (int)st);
    }
    if (f.width <= 0 || f.height <= 0) {
        return pl__fail(err, PL_IMG_R_BAD_HEADER, "webp: %dx%d", f.width, f.height);
    }
    info->width = (uint32_t)f.width;
    info->height = (uint32_t)f.height;
    info->flags = 0;
    info->components = f.has_alpha ? 4 : 3;
    if (f.has_alpha) {
        info->flags |= PL_IMG_F_ALPHA;
    }
    if (f.format == 2) {
        info->flags |= PL_IMG_F_LOSSLESS;
    }
    if (f.has_animation) {
        info->flags |= PL_IMG_F_ANIMATED;
        return pl__fail(err, PL_IMG_R_UNSUPPORTED, "webp: animated");
    }
    return 0;
}

int pl_img_probe(const uint8_t *data, size_t len, const pl_img_limits_t *lim, pl_img_info_t *info,
                 pl_img_err_t *err)
{
    static const char png_sig[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
    int rc;
    memset(info, 0, sizeof *info);
    if (err != NULL) {
        err->reason = PL_IMG_R_NONE;
        err->text[0] = '\0';
    }
    if (len == 0 || data == NULL) {
        return pl__fail(err, PL_IMG_R_EMPTY, "image: 0 bytes");
    }
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        rc = probe_jpeg(data, len, info, err);
    } else if (len >= 8 && memcmp(data, png_sig, 8) == 0) {
        rc = probe_png(data, len, info, err);
    } else if (len >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0) {
        rc = probe_webp(data, len, info, err);
    } else if ((len < 3 && memcmp(data, "\xFF\xD8\xFF", len) == 0) ||
               (len < 8 && memcmp(data, png_sig, len) == 0) ||
               (len < 12 && memcmp(data, "RIFF", len < 4 ? len : 4) == 0)) {
        return pl__fail(err, PL_IMG_R_TRUNCATED_HEADER, "image: %zu bytes, magic cut short", len);
    } else {
        return pl__fail(err, PL_IMG_R_UNKNOWN_FORMAT,
                        "image: unknown format (first bytes %02X %02X %02X %02X)", data[0],
                        len > 1 ? data[1] : 0, len > 2 ? data[2] : 0, len > 3 ? data[3] : 0);
    }
    if (rc < 0) {
        return rc;
    }
    uint32_t max_side;
    uint64_t max_pixels;
    pl__limits(lim, &max_side, &max_pixels);
    uint64_t pixels = (uint64_t)info->width * info->height;
    if (info->width > max_side || info->height > max_side || pixels > max_pixels) {
        return pl__fail(err, PL_IMG_R_TOO_LARGE,
                        "%s: %ux%u exceeds the limits (side %u, %llu pixels)",
                        pl_img_format_name(info->format), info->width, info->height, max_side,
                        (unsigned long long)max_pixels);
    }
    return 0;
}
