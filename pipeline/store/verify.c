/* verify=full for ingest: prove that every byte of an image decodes, as cheaply as possible.
 *
 * JPEG: the entropy-coded data is where corruption and truncation live, and libjpeg parses every
 * Huffman symbol of every block whatever the output scale (jdhuff.c decodes and discards the AC
 * coefficients a scaled IDCT does not need). So the image is decoded at 1/8 scale with the fast
 * integer IDCT and no fancy upsampling or block smoothing: the same scans, markers and warnings
 * as a full decode, at a fraction of the IDCT/upsampling/colour-conversion cost (the bulk of the
 * time for large photos). libjpeg's corrupt-data warnings are errors, except the same benign ones
 * pl_img_verify ignores (pipeline/image/jpeg.c).
 * WebP: decoded in the codec's native colour space (YUV for lossy VP8, RGBA for lossless VP8L)
 * into a reused buffer, without VP8's in-loop deblocking filter: the whole bitstream is parsed and
 * every macroblock reconstructed; only the smoothing, the RGB conversion and the alpha compositing
 * are skipped.
 * PNG (and anything else): pl_img_verify.
 *
 * Limits always come first: pl_img_probe refuses decompression bombs before any decoder runs. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <webp/decode.h>

#include "core/alloc.h"
#include "core/err.h"
#include "ingest_internal.h"

typedef struct verr_s {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int reason;
    char text[160];
} verr_t;

struct pl__verifier_s {
    pl_img_ctx_t *img; /* for PNG, borrowed */
    struct jpeg_decompress_struct dj;
    verr_t jerr;
    int dj_ready;
    uint8_t *buf; /* JPEG scanline / WebP output buffer */
    size_t cap;
};

static int benign(int code)
{
    return code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC ||
           code == JWRN_EXTRANEOUS_DATA;
}

static void set_text(j_common_ptr c, verr_t *e)
{
    char msg[JMSG_LENGTH_MAX];
    (*c->err->format_message)(c, msg);
    (void)snprintf(e->text, sizeof e->text, "jpeg: %.150s", msg);
}

static void on_error_exit(j_common_ptr c)
{
    verr_t *e = (verr_t *)(void *)c->err;
    int code = e->pub.msg_code;
    set_text(c, e);
    if (code == JERR_OUT_OF_MEMORY) {
        e->reason = PL_IMG_R_NO_MEMORY;
    } else if (code == JERR_INPUT_EMPTY || code == JERR_INPUT_EOF) {
        e->reason = PL_IMG_R_TRUNCATED;
    } else if (code == JERR_BAD_PRECISION || code == JERR_NOT_COMPILED ||
               code == JERR_CONVERSION_NOTIMPL) {
        e->reason = PL_IMG_R_UNSUPPORTED;
    } else {
        e->reason = PL_IMG_R_CORRUPT;
    }
    longjmp(e->jmp, 1);
}

static void on_emit_message(j_common_ptr c, int level)
{
    verr_t *e = (verr_t *)(void *)c->err;
    if (level != -1) {
        return;
    }
    e->pub.num_warnings++;
    if (benign(e->pub.msg_code)) {
        return;
    }
    set_text(c, e);
    e->reason = e->pub.msg_code == JWRN_JPEG_EOF ? PL_IMG_R_TRUNCATED : PL_IMG_R_CORRUPT;
    longjmp(e->jmp, 1);
}

int pl__verifier_new(pl_img_ctx_t *img, pl__verifier_t **out)
{
    pl__verifier_t *v = core_calloc(1, sizeof(*v));
    if (v == NULL) {
        return CORE_ERR(ENOMEM);
    }
    v->img = img;
    v->dj.err = jpeg_std_error(&v->jerr.pub);
    v->jerr.pub.error_exit = on_error_exit;
    v->jerr.pub.emit_message = on_emit_message;
    if (setjmp(v->jerr.jmp)) {
        core_free(v);
        return CORE_ERR(ENOMEM);
    }
    jpeg_create_decompress(&v->dj);
    v->dj_ready = 1;
    *out = v;
    return 0;
}

void pl__verifier_free(pl__verifier_t *v)
{
    if (v == NULL) {
        return;
    }
    if (v->dj_ready) {
        jpeg_destroy_decompress(&v->dj);
    }
    core_free(v->buf);
    core_free(v);
}

static int reserve(pl__verifier_t *v, size_t n)
{
    if (n <= v->cap) {
        return 0;
    }
    uint8_t *p = core_realloc(v->buf, n);
    if (p == NULL) {
        return CORE_ERR(ENOMEM);
    }
    v->buf = p;
    v->cap = n;
    return 0;
}

static int fail(pl_img_err_t *err, int reason, int code, const char *text)
{
    if (err) {
        err->reason = reason;
        (void)snprintf(err->text, sizeof err->text, "%s", text);
    }
    return code;
}

static int verify_jpeg(pl__verifier_t *v, const uint8_t *data, size_t len, pl_img_err_t *err)
{
    struct jpeg_decompress_struct *dj = &v->dj;
    v->jerr.pub.num_warnings = 0;
    if (setjmp(v->jerr.jmp)) {
        jpeg_abort_decompress(dj);
        int r = v->jerr.reason;
        int code = r == PL_IMG_R_NO_MEMORY     ? CORE_ERR(ENOMEM)
                   : r == PL_IMG_R_UNSUPPORTED ? CORE_EUNSUPPORTED
                                               : CORE_ECORRUPT;
        return fail(err, r, code, v->jerr.text);
    }
    jpeg_mem_src(dj, data, (unsigned long)len);
    (void)jpeg_read_header(dj, TRUE);
    dj->scale_num = 1;
    dj->scale_denom = 8;
    dj->dct_method = JDCT_IFAST;
    dj->do_fancy_upsampling = FALSE;
    dj->do_block_smoothing = FALSE;
    dj->two_pass_quantize = FALSE;
    (void)jpeg_start_decompress(dj);
    size_t row = (size_t)dj->output_width * (size_t)dj->output_components;
    if (reserve(v, row) < 0) {
        jpeg_abort_decompress(dj);
        return fail(err, PL_IMG_R_NO_MEMORY, CORE_ERR(ENOMEM), "jpeg: out of memory");
    }
    JSAMPROW rows[1] = {v->buf};
    while (dj->output_scanline < dj->output_height) {
        (void)jpeg_read_scanlines(dj, rows, 1);
    }
    /* Reading to EOI surfaces a truncated or corrupt tail as a warning (= error). */
    (void)jpeg_finish_decompress(dj);
    return 0;
}

static int verify_webp(pl__verifier_t *v, const uint8_t *data, size_t len,
                       const pl_img_info_t *info, pl_img_err_t *err)
{
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) {
        return fail(err, PL_IMG_R_UNSUPPORTED, CORE_EUNSUPPORTED, "webp: library mismatch");
    }
    size_t w = info->width, h = info->height;
    int lossless = (info->flags & PL_IMG_F_LOSSLESS) != 0;
    int alpha = (info->flags & PL_IMG_F_ALPHA) != 0;
    size_t need;
    if (lossless) {
        need = w * h * 4;
    } else {
        need = w * h + 2 * (((w + 1) / 2) * ((h + 1) / 2)) + (alpha ? w * h : 0);
    }
    if (reserve(v, need) < 0) {
        return fail(err, PL_IMG_R_NO_MEMORY, CORE_ERR(ENOMEM), "webp: out of memory");
    }
    /* The in-loop deblocking filter only smooths reconstructed pixels; skipping it leaves the
     * bitstream parse (where corruption shows) complete. */
    cfg.options.bypass_filtering = 1;
    cfg.output.is_external_memory = 1;
    if (lossless) {
        cfg.output.colorspace = MODE_RGBA;
        cfg.output.u.RGBA.rgba = v->buf;
        cfg.output.u.RGBA.stride = (int)(w * 4);
        cfg.output.u.RGBA.size = need;
    } else {
        size_t uvw = (w + 1) / 2, uvh = (h + 1) / 2;
        WebPYUVABuffer *b = &cfg.output.u.YUVA;
        cfg.output.colorspace = alpha ? MODE_YUVA : MODE_YUV;
        b->y = v->buf;
        b->y_stride = (int)w;
        b->y_size = w * h;
        b->u = v->buf + w * h;
        b->u_stride = (int)uvw;
        b->u_size = uvw * uvh;
        b->v = b->u + uvw * uvh;
        b->v_stride = (int)uvw;
        b->v_size = uvw * uvh;
        if (alpha) {
            b->a = b->v + uvw * uvh;
            b->a_stride = (int)w;
            b->a_size = w * h;
        }
    }
    VP8StatusCode st = WebPDecode(data, len, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if (st != VP8_STATUS_OK) {
        char text[64];
        (void)snprintf(text, sizeof text, "webp: decode failed (status %d)", (int)st);
        int r = st == VP8_STATUS_OUT_OF_MEMORY         ? PL_IMG_R_NO_MEMORY
                : st == VP8_STATUS_NOT_ENOUGH_DATA     ? PL_IMG_R_TRUNCATED
                : st == VP8_STATUS_UNSUPPORTED_FEATURE ? PL_IMG_R_UNSUPPORTED
                                                       : PL_IMG_R_CORRUPT;
        int code = r == PL_IMG_R_NO_MEMORY     ? CORE_ERR(ENOMEM)
                   : r == PL_IMG_R_UNSUPPORTED ? CORE_EUNSUPPORTED
                                               : CORE_ECORRUPT;
        return fail(err, r, code, text);
    }
    return 0;
}

int pl__verify_image(pl__verifier_t *v, const uint8_t *data, size_t len, const pl_img_limits_t *lim,
                     pl_img_info_t *info, pl_img_err_t *err)
{
    int rc = pl_img_probe(data, len, lim, info, err);
    if (rc < 0) {
        return rc;
    }
    if (info->format == PL_IMG_JPEG) {
        return verify_jpeg(v, data, len, err);
    }
    if (info->format == PL_IMG_WEBP && !(info->flags & PL_IMG_F_ANIMATED)) {
        return verify_webp(v, data, len, info, err);
    }
    pl_img_info_t full;
    rc = pl_img_verify(v->img, data, len, lim, &full, err);
    if (rc == 0) {
        *info = full;
    }
    return rc;
}
