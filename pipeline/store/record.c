/* Record codec (docs/FORMAT.md §2): pure encode/decode of one sample record over bytes.
 *
 * Layout, little-endian, version 1:
 *   0 u32 magic "SCR1"   4 u16 version   6 u16 flags   8 u32 total length (incl. CRC)
 *  12 u8 format  13 u8 reserved (0)  14 u8 n_label  15 u8 n_tokens
 *  16 u32 width  20 u32 height  24 u64 sample index
 *  32 u32 caption length  36 u32 caption zstd length  40 u32 image length
 *  44 u16 source file length  46 u16 member key length
 *  48 label u32[n_label], tokens u32[n_tokens], caption zstd frame, source file, member key,
 *     image bytes, u32 CRC32C of every byte before it.
 * Every length is checked against the total before any view is formed. */
#include "pipeline/record.h"

#include <string.h>
#include <zstd.h>

#include "core/crc32c.h"
#include "core/err.h"

/* Per-thread zstd contexts: creating one per record costs more than compressing a caption. They
 * use zstd's own malloc, so they do not show in core_alloc_live. */
static _Thread_local ZSTD_CCtx *tl_cctx;
static _Thread_local ZSTD_DCtx *tl_dctx;

void pl_record_thread_cleanup(void)
{
    ZSTD_freeCCtx(tl_cctx);
    ZSTD_freeDCtx(tl_dctx);
    tl_cctx = NULL;
    tl_dctx = NULL;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
static uint32_t get16(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

/* The label of a row (spec §1.9): its sorted unique ids. The same definition as pl_tok_label, kept
 * here so the codec depends on no tokenizer state (77 ids: insertion sort is plenty). */
static void row_label(const uint32_t row[PL_TOK_CONTEXT], uint32_t label[PL_TOK_CONTEXT],
                      size_t *n_out)
{
    size_t n = 0;
    for (size_t i = 0; i < PL_TOK_CONTEXT; i++) {
        uint32_t v = row[i];
        size_t j = n;
        while (j > 0 && label[j - 1] > v) {
            j--;
        }
        if (j > 0 && label[j - 1] == v) {
            continue;
        }
        memmove(label + j + 1, label + j, (n - j) * sizeof(uint32_t));
        label[j] = v;
        n++;
    }
    *n_out = n;
}

int pl_record_bound(const pl_record_in_t *in, size_t *bound_out)
{
    if (in->caption_len > PL_RECORD_MAX_CAPTION || in->image_len > PL_RECORD_MAX_IMAGE) {
        return CORE_ETOO_LARGE;
    }
    size_t sf = in->source_file ? strlen(in->source_file) : 0;
    size_t mk = in->member_key ? strlen(in->member_key) : 0;
    if (sf > PL_RECORD_MAX_NAME || mk > PL_RECORD_MAX_NAME) {
        return CORE_ETOO_LARGE;
    }
    *bound_out = PL_RECORD_HEADER + 2 * PL_TOK_CONTEXT * 4 + ZSTD_compressBound(in->caption_len) +
                 sf + mk + in->image_len + 4;
    return 0;
}

int pl_record_encode(const pl_record_in_t *in, uint8_t *out, size_t cap, size_t *n_out)
{
    size_t bound;
    int rc = pl_record_bound(in, &bound);
    if (rc < 0) {
        return rc;
    }
    if (in->n_tokens < 2 || in->n_tokens > PL_TOK_CONTEXT || in->tokens == NULL ||
        (in->flags & ~PL_REC_FLAGS_KNOWN) != 0 || in->format < PL_IMG_JPEG ||
        in->format > PL_IMG_WEBP) {
        return CORE_ECONFIG;
    }
    uint32_t row[PL_TOK_CONTEXT] = {0};
    memcpy(row, in->tokens, in->n_tokens * sizeof(uint32_t));
    uint32_t label[PL_TOK_CONTEXT];
    size_t n_label = 0;
    row_label(row, label, &n_label);

    size_t sf = in->source_file ? strlen(in->source_file) : 0;
    size_t mk = in->member_key ? strlen(in->member_key) : 0;
    size_t fixed = PL_RECORD_HEADER + 4 * (n_label + in->n_tokens);
    if (cap < fixed + sf + mk + in->image_len + 4 + 16) {
        return CORE_ETOO_LARGE;
    }
    if (tl_cctx == NULL) {
        tl_cctx = ZSTD_createCCtx();
        if (tl_cctx == NULL) {
            return CORE_ERR(ENOMEM);
        }
    }
    size_t zcap = cap - (fixed + sf + mk + in->image_len + 4);
    size_t zlen = ZSTD_compressCCtx(tl_cctx, out + fixed, zcap, in->caption, in->caption_len,
                                    in->zstd_level > 0 ? in->zstd_level : 3);
    if (ZSTD_isError(zlen)) {
        return CORE_ETOO_LARGE;
    }
    size_t total = fixed + zlen + sf + mk + in->image_len + 4;
    if (total > UINT32_MAX) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *h = out;
    put32(h + 0, PL_RECORD_MAGIC);
    put16(h + 4, PL_RECORD_VERSION);
    put16(h + 6, in->flags);
    put32(h + 8, (uint32_t)total);
    h[12] = (uint8_t)in->format;
    h[13] = 0;
    h[14] = (uint8_t)n_label;
    h[15] = (uint8_t)in->n_tokens;
    put32(h + 16, in->width);
    put32(h + 20, in->height);
    put64(h + 24, in->sample_index);
    put32(h + 32, (uint32_t)in->caption_len);
    put32(h + 36, (uint32_t)zlen);
    put32(h + 40, (uint32_t)in->image_len);
    put16(h + 44, (uint32_t)sf);
    put16(h + 46, (uint32_t)mk);
    uint8_t *p = out + PL_RECORD_HEADER;
    for (size_t i = 0; i < n_label; i++, p += 4) {
        put32(p, label[i]);
    }
    for (size_t i = 0; i < in->n_tokens; i++, p += 4) {
        put32(p, in->tokens[i]);
    }
    p += zlen;
    if (sf) {
        memcpy(p, in->source_file, sf);
    }
    p += sf;
    if (mk) {
        memcpy(p, in->member_key, mk);
    }
    p += mk;
    if (in->image_len) {
        memcpy(p, in->image, in->image_len);
    }
    p += in->image_len;
    put32(p, core_crc32c(0, out, total - 4));
    *n_out = total;
    return 0;
}

int pl_record_member_key(const uint8_t *buf, size_t len, const char **key, size_t *key_len)
{
    if (len < PL_RECORD_HEADER + 4 || get32(buf) != PL_RECORD_MAGIC ||
        get16(buf + 4) != PL_RECORD_VERSION) {
        return CORE_ECORRUPT;
    }
    size_t off = (size_t)PL_RECORD_HEADER + 4u * ((size_t)buf[14] + buf[15]) + get32(buf + 36) +
                 get16(buf + 44);
    size_t kl = get16(buf + 46);
    if (off > len - 4 || kl > len - 4 - off) {
        return CORE_ECORRUPT;
    }
    *key = (const char *)buf + off;
    *key_len = kl;
    return 0;
}

int pl_record_decode(const uint8_t *buf, size_t len, pl_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    if (len < 4 || get32(buf) != PL_RECORD_MAGIC) {
        return CORE_EBAD_MAGIC;
    }
    if (len < PL_RECORD_HEADER + 4) {
        return CORE_ECORRUPT;
    }
    uint32_t version = get16(buf + 4);
    if (version != PL_RECORD_VERSION) {
        return CORE_EBAD_VERSION;
    }
    uint32_t total = get32(buf + 8);
    if (total != len) {
        return CORE_ECORRUPT;
    }
    if (core_crc32c(0, buf, len - 4) != get32(buf + len - 4)) {
        return CORE_ECORRUPT;
    }
    rec->version = version;
    rec->flags = get16(buf + 6);
    uint32_t fmt = buf[12];
    rec->n_label = buf[14];
    rec->n_tokens = buf[15];
    if ((rec->flags & ~PL_REC_FLAGS_KNOWN) != 0 || fmt < PL_IMG_JPEG || fmt > PL_IMG_WEBP ||
        buf[13] != 0 || rec->n_label < 1 || rec->n_label > PL_TOK_CONTEXT || rec->n_tokens < 2 ||
        rec->n_tokens > PL_TOK_CONTEXT) {
        return CORE_ECORRUPT;
    }
    rec->format = (pl_img_format_t)fmt;
    rec->width = get32(buf + 16);
    rec->height = get32(buf + 20);
    rec->sample_index = get64(buf + 24);
    rec->caption_len = get32(buf + 32);
    rec->caption_z_len = get32(buf + 36);
    rec->image_len = get32(buf + 40);
    rec->source_file_len = get16(buf + 44);
    rec->member_key_len = get16(buf + 46);
    if (rec->caption_len > PL_RECORD_MAX_CAPTION || rec->image_len > PL_RECORD_MAX_IMAGE ||
        rec->source_file_len > PL_RECORD_MAX_NAME || rec->member_key_len > PL_RECORD_MAX_NAME) {
        return CORE_ECORRUPT;
    }
    /* All terms are bounded (< 2^29 each), so the sum cannot overflow size_t. */
    size_t need = (size_t)PL_RECORD_HEADER + 4u * ((size_t)rec->n_label + rec->n_tokens) +
                  rec->caption_z_len + rec->source_file_len + rec->member_key_len + rec->image_len +
                  4;
    if (need != len) {
        return CORE_ECORRUPT;
    }
    const uint8_t *p = buf + PL_RECORD_HEADER;
    for (uint32_t i = 0; i < rec->n_label; i++, p += 4) {
        rec->label[i] = get32(p);
    }
    for (uint32_t i = 0; i < rec->n_tokens; i++, p += 4) {
        rec->tokens[i] = get32(p);
    }
    rec->caption_z = p;
    p += rec->caption_z_len;
    rec->source_file = (const char *)p;
    p += rec->source_file_len;
    rec->member_key = (const char *)p;
    p += rec->member_key_len;
    rec->image = p;
    /* The label must be exactly the label of the row: a record cannot carry inconsistent
     * supervision even with a valid CRC (e.g. written by a buggy encoder). */
    uint32_t row[PL_TOK_CONTEXT];
    pl_record_row(rec, row);
    uint32_t label[PL_TOK_CONTEXT];
    size_t n_label = 0;
    row_label(row, label, &n_label);
    if (n_label != rec->n_label || memcmp(label, rec->label, n_label * sizeof(uint32_t)) != 0) {
        return CORE_ECORRUPT;
    }
    return 0;
}

void pl_record_row(const pl_record_t *rec, uint32_t row[PL_TOK_CONTEXT])
{
    memset(row, 0, PL_TOK_CONTEXT * sizeof(uint32_t));
    uint32_t n = rec->n_tokens <= PL_TOK_CONTEXT ? rec->n_tokens : PL_TOK_CONTEXT;
    memcpy(row, rec->tokens, n * sizeof(uint32_t));
}

int pl_record_caption(const pl_record_t *rec, char *out, size_t cap)
{
    if (cap < rec->caption_len + 1) {
        return CORE_ETOO_LARGE;
    }
    if (tl_dctx == NULL) {
        tl_dctx = ZSTD_createDCtx();
        if (tl_dctx == NULL) {
            return CORE_ERR(ENOMEM);
        }
    }
    unsigned long long fcs = ZSTD_getFrameContentSize(rec->caption_z, rec->caption_z_len);
    if (fcs != rec->caption_len) {
        return CORE_ECORRUPT;
    }
    size_t n =
        ZSTD_decompressDCtx(tl_dctx, out, rec->caption_len, rec->caption_z, rec->caption_z_len);
    if (ZSTD_isError(n) || n != rec->caption_len) {
        return CORE_ECORRUPT;
    }
    out[n] = '\0';
    return 0;
}
