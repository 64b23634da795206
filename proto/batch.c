/* BATCH frames: built in place (no second copy of the pixels) and checked on receipt. */
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "proto/proto.h"

int proto_batch_payload_size(uint32_t n, uint32_t h, uint32_t w, uint32_t nnz, int with_keys,
                             size_t *size)
{
    if (n > PROTO_MAX_BATCH_N || h > PROTO_MAX_SIDE || w > PROTO_MAX_SIDE ||
        (uint64_t)nnz > (uint64_t)n * PROTO_MAX_LABEL_PER_SAMPLE) {
        return CORE_ETOO_LARGE;
    }
    /* With the caps above every product fits in 64 bits. */
    uint64_t total = PROTO_BATCH_FIXED + (uint64_t)n * h * w * 3 + 4 * ((uint64_t)n + 1) +
                     4 * (uint64_t)nnz + (with_keys ? 8 * (uint64_t)n : 0);
    if (total > PROTO_MAX_BATCH_BYTES) {
        return CORE_ETOO_LARGE;
    }
    *size = (size_t)total;
    return 0;
}

static void layout(uint8_t *payload, const proto_batch_t *b, uint8_t **images, uint8_t **offs,
                   uint8_t **ids, uint8_t **keys)
{
    size_t img = (size_t)b->n * b->h * b->w * 3;
    *images = payload + PROTO_BATCH_FIXED;
    *offs = *images + img;
    *ids = *offs + 4 * ((size_t)b->n + 1);
    *keys = (b->flags & PROTO_BATCH_HAS_KEYS) ? *ids + 4 * (size_t)b->nnz : NULL;
}

int proto_batch_begin(uint8_t *dst, size_t cap, const proto_batch_t *hdr,
                      proto_batch_writer_t *wr)
{
    size_t size = 0;
    int rc = proto_batch_payload_size(hdr->n, hdr->h, hdr->w, hdr->nnz,
                                      (hdr->flags & PROTO_BATCH_HAS_KEYS) != 0, &size);
    if (rc < 0) {
        return rc;
    }
    if (cap < PROTO_HEADER_SIZE || cap - PROTO_HEADER_SIZE < size) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *p = dst + PROTO_HEADER_SIZE;
    proto_put_u64(p, hdr->batch_index);
    proto_put_u64(p + 8, hdr->cursor_epoch);
    proto_put_u64(p + 16, hdr->cursor_position);
    proto_put_u32(p + 24, hdr->n);
    proto_put_u32(p + 28, hdr->h);
    proto_put_u32(p + 32, hdr->w);
    proto_put_u32(p + 36, hdr->nnz);
    proto_put_u32(p + 40, hdr->flags);
    wr->frame = dst;
    wr->frame_size = PROTO_HEADER_SIZE + size;
    layout(p, hdr, &wr->images, &wr->label_offsets, &wr->label_ids, &wr->keys);
    return 0;
}

int proto_batch_seal(proto_batch_writer_t *wr)
{
    return proto_frame_finish(wr->frame, wr->frame_size, PROTO_BATCH,
                              (uint32_t)(wr->frame_size - PROTO_HEADER_SIZE));
}

int proto_batch_parse(const proto_frame_t *f, uint32_t vocab_size, proto_batch_t *out)
{
    if (f->type != PROTO_BATCH || f->length < PROTO_BATCH_FIXED) {
        return CORE_ECORRUPT;
    }
    const uint8_t *p = f->payload;
    proto_batch_t b;
    memset(&b, 0, sizeof b);
    b.batch_index = proto_get_u64(p);
    b.cursor_epoch = proto_get_u64(p + 8);
    b.cursor_position = proto_get_u64(p + 16);
    b.n = proto_get_u32(p + 24);
    b.h = proto_get_u32(p + 28);
    b.w = proto_get_u32(p + 32);
    b.nnz = proto_get_u32(p + 36);
    b.flags = proto_get_u32(p + 40);
    if ((b.flags & ~PROTO_BATCH_HAS_KEYS) != 0) {
        return CORE_ECORRUPT;
    }
    size_t size = 0;
    int rc = proto_batch_payload_size(b.n, b.h, b.w, b.nnz, (b.flags & PROTO_BATCH_HAS_KEYS) != 0,
                                      &size);
    if (rc < 0) {
        return rc;
    }
    if (size != f->length) {
        return CORE_ECORRUPT;
    }
    uint8_t *images, *offs, *ids, *keys;
    layout((uint8_t *)(uintptr_t)p, &b, &images, &offs, &ids, &keys);
    b.images = images;
    b.label_offsets = offs;
    b.label_ids = ids;
    b.keys = keys;
    if (proto_batch_offset(&b, 0) != 0 || proto_batch_offset(&b, b.n) != b.nnz) {
        return CORE_ECORRUPT;
    }
    for (uint32_t i = 0; i < b.n; i++) {
        uint32_t lo = proto_batch_offset(&b, i), hi = proto_batch_offset(&b, i + 1);
        if (hi < lo || hi > b.nnz || hi - lo > PROTO_MAX_LABEL_PER_SAMPLE) {
            return CORE_ECORRUPT;
        }
        for (uint32_t j = lo; j < hi; j++) {
            uint32_t id = proto_batch_label(&b, j);
            if ((vocab_size != 0 && id >= vocab_size) ||
                (j > lo && id <= proto_batch_label(&b, j - 1))) {
                return CORE_ECORRUPT;
            }
        }
    }
    *out = b;
    return 0;
}

uint32_t proto_batch_offset(const proto_batch_t *b, uint32_t i)
{
    return proto_get_u32(b->label_offsets + 4 * (size_t)i);
}

uint32_t proto_batch_label(const proto_batch_t *b, uint32_t j)
{
    return proto_get_u32(b->label_ids + 4 * (size_t)j);
}

uint64_t proto_batch_key(const proto_batch_t *b, uint32_t i)
{
    return proto_get_u64(b->keys + 8 * (size_t)i);
}
