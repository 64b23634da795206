/* Round-trip target: HELLO and BATCH built from fuzzer-chosen fields must decode to the same
 * values (zstd simple_round_trip style). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t take_u32(const uint8_t **p, size_t *left)
{
    uint32_t v = 0;
    for (int i = 0; i < 4 && *left > 0; i++) {
        v |= (uint32_t)**p << (8 * i);
        (*p)++;
        (*left)--;
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t left = size;
    proto_hello_t h;
    memset(&h, 0, sizeof h);
    h.rank = take_u32(&p, &left);
    h.world = take_u32(&p, &left);
    h.batch_size = take_u32(&p, &left);
    h.seed = ((uint64_t)take_u32(&p, &left) << 32) | take_u32(&p, &left);
    h.position = take_u32(&p, &left);
    size_t nlen = left < PROTO_MAX_NAME ? left : PROTO_MAX_NAME;
    for (size_t i = 0; i < nlen; i++) {
        h.name[i] = (char)(p[i] != 0 ? p[i] : 'x');
    }
    uint8_t buf[512];
    size_t n = 0, used = 0;
    if (proto_hello_encode(buf, sizeof buf, &h, &n) != 0) {
        __builtin_trap();
    }
    proto_frame_t f;
    proto_hello_t back;
    if (proto_frame_decode(buf, n, 0, &f, &used) != 0 || proto_hello_parse(&f, &back) != 0 ||
        back.rank != h.rank || back.world != h.world || back.seed != h.seed ||
        back.position != h.position || strcmp(back.name, h.name) != 0) {
        __builtin_trap();
    }

    /* A small batch whose labels come from the input. */
    uint32_t nsamp = 1 + (size > 0 ? data[0] % 4 : 0);
    uint32_t per = size > 1 ? data[1] % 8 : 0;
    proto_batch_t hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.n = nsamp;
    hdr.h = hdr.w = 8;
    hdr.nnz = nsamp * per;
    hdr.cursor_position = h.position;
    size_t psize = 0;
    if (proto_batch_payload_size(hdr.n, 8, 8, hdr.nnz, 0, &psize) != 0) {
        __builtin_trap();
    }
    uint8_t *frame = malloc(PROTO_HEADER_SIZE + psize);
    proto_batch_writer_t wr;
    if (frame == NULL || proto_batch_begin(frame, PROTO_HEADER_SIZE + psize, &hdr, &wr) != 0) {
        __builtin_trap();
    }
    memset(wr.images, 7, (size_t)nsamp * 8 * 8 * 3);
    for (uint32_t i = 0; i <= nsamp; i++) {
        proto_put_u32(wr.label_offsets + 4 * i, i * per);
    }
    for (uint32_t i = 0; i < nsamp; i++) {
        for (uint32_t j = 0; j < per; j++) {
            proto_put_u32(wr.label_ids + 4 * (i * per + j), j * 3 + (size > 2 ? data[2] : 0));
        }
    }
    proto_batch_t b;
    if (proto_batch_seal(&wr) != 0 ||
        proto_frame_decode(frame, wr.frame_size, 0, &f, &used) != 0 ||
        proto_batch_parse(&f, 0, &b) != 0 || b.n != nsamp || b.nnz != nsamp * per ||
        b.cursor_position != h.position) {
        __builtin_trap();
    }
    free(frame);
    return 0;
}
