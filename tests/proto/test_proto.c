/* Protocol frames: round trips, tri-state decoding, and every malformed-header path. */
#include "core/alloc.h"
#include "core/crc32c.h"
#include "proto/proto.h"
#include "t.h"

static proto_hello_t good_hello(void)
{
    proto_hello_t h;
    memset(&h, 0, sizeof h);
    h.rank = 1;
    h.world = 2;
    h.batch_size = 64;
    h.out_h = h.out_w = 64;
    h.scale_min = 0.9f;
    h.scale_max = 1.0f;
    h.ratio_min = 0.75f;
    h.ratio_max = 4.0f / 3.0f;
    h.flip = 1;
    h.seed = 0x1234567890abcdefull;
    h.epoch = 3;
    h.position = 4096;
    h.initial_credits = 4;
    h.flags = PROTO_HELLO_WANT_KEYS;
    strcpy(h.name, "trainer-0");
    return h;
}

T_CASE(hello_round_trip)
{
    uint8_t buf[512];
    size_t n = 0, used = 0;
    proto_hello_t h = good_hello(), back;
    T_ASSERT_OK(proto_hello_encode(buf, sizeof buf, &h, &n));
    proto_frame_t f;
    T_ASSERT_OK(proto_frame_decode(buf, n, 0, &f, &used));
    T_ASSERT_EQ(used, n);
    T_ASSERT_EQ(f.type, PROTO_HELLO);
    T_ASSERT_OK(proto_hello_parse(&f, &back));
    T_ASSERT_EQ(back.rank, 1);
    T_ASSERT_U64_EQ(back.seed, h.seed);
    T_ASSERT_U64_EQ(back.position, 4096);
    T_ASSERT(back.ratio_max == h.ratio_max);
    T_ASSERT_STR_EQ(back.name, "trainer-0");
    const char *bad = NULL;
    T_ASSERT_OK(proto_hello_validate(&back, &bad));
}

T_CASE(hello_validate_names_parameter)
{
    const char *bad = NULL;
    proto_hello_t h = good_hello();
    h.rank = 2;
    T_ASSERT_ERR(proto_hello_validate(&h, &bad), CORE_ECONFIG);
    T_ASSERT_STR_EQ(bad, "rank");
    h = good_hello();
    h.batch_size = 0;
    T_ASSERT_ERR(proto_hello_validate(&h, &bad), CORE_ECONFIG);
    T_ASSERT_STR_EQ(bad, "batch_size");
    h = good_hello();
    h.scale_min = 0.0f;
    T_ASSERT_ERR(proto_hello_validate(&h, &bad), CORE_ECONFIG);
    T_ASSERT_STR_EQ(bad, "scale_min");
    h = good_hello();
    h.ratio_max = NAN;
    T_ASSERT_ERR(proto_hello_validate(&h, &bad), CORE_ECONFIG);
    T_ASSERT_STR_EQ(bad, "ratio_max");
    h = good_hello();
    h.out_w = 4;
    T_ASSERT_ERR(proto_hello_validate(&h, &bad), CORE_ECONFIG);
    T_ASSERT_STR_EQ(bad, "out_w");
    h = good_hello();
    h.batch_size = 4096;
    h.out_h = h.out_w = 1024; /* 12 GiB of pixels: over the batch byte limit */
    T_ASSERT_ERR(proto_hello_validate(&h, &bad), CORE_ECONFIG);
    T_ASSERT_STR_EQ(bad, "batch_size");
}

T_CASE(frame_need_more_at_every_prefix)
{
    uint8_t buf[256];
    size_t n = 0, used = 0;
    T_ASSERT_OK(proto_u64_encode(buf, sizeof buf, PROTO_PING, 99, &n));
    proto_frame_t f;
    for (size_t k = 0; k < n; k++) {
        T_ASSERT_ERR(proto_frame_decode(buf, k, 0, &f, &used), CORE_ENEED_MORE);
    }
    T_ASSERT_OK(proto_frame_decode(buf, n, 0, &f, &used));
    uint64_t tok = 0;
    T_ASSERT_OK(proto_ping_parse(&f, &tok));
    T_ASSERT_U64_EQ(tok, 99);
}

T_CASE(frame_malformed_headers)
{
    uint8_t buf[256];
    size_t n = 0, used = 0;
    proto_frame_t f;
    T_ASSERT_OK(proto_u32_encode(buf, sizeof buf, PROTO_CREDIT, 5, &n));
    /* Garbage is rejected on its first byte, without waiting for a header. */
    uint8_t garbage[1] = {'G'};
    T_ASSERT_ERR(proto_frame_decode(garbage, 1, 0, &f, &used), CORE_EBAD_MAGIC);
    uint8_t c[256];
    memcpy(c, buf, n);
    c[2] = 'X';
    T_ASSERT_ERR(proto_frame_decode(c, n, 0, &f, &used), CORE_EBAD_MAGIC);
    /* Header CRC guards the length before it is trusted. */
    memcpy(c, buf, n);
    c[8] ^= 1;
    T_ASSERT_ERR(proto_frame_decode(c, n, 0, &f, &used), CORE_ECORRUPT);
    /* Wrong version with a valid header CRC. */
    memcpy(c, buf, n);
    proto_put_u16(c + 4, 2);
    proto_put_u32(c + 16, core_crc32c(0, c, 16));
    T_ASSERT_ERR(proto_frame_decode(c, n, 0, &f, &used), CORE_EBAD_VERSION);
    /* Unknown type. */
    memcpy(c, buf, n);
    proto_put_u16(c + 6, 99);
    proto_put_u32(c + 16, core_crc32c(0, c, 16));
    T_ASSERT_ERR(proto_frame_decode(c, n, 0, &f, &used), CORE_EUNSUPPORTED);
    /* Oversized length: refused before the payload arrives. */
    memcpy(c, buf, n);
    proto_put_u32(c + 8, 0xFFFFFFF0u);
    proto_put_u32(c + 16, core_crc32c(0, c, 16));
    T_ASSERT_ERR(proto_frame_decode(c, PROTO_HEADER_SIZE, 0, &f, &used), CORE_ETOO_LARGE);
    /* A receiver limit below the protocol's. */
    T_ASSERT_OK(proto_u64_encode(buf, sizeof buf, PROTO_PING, 1, &n));
    T_ASSERT_ERR(proto_frame_decode(buf, n, 4, &f, &used), CORE_ETOO_LARGE);
    /* Payload CRC. */
    memcpy(c, buf, n);
    c[n - 1] ^= 0x80;
    T_ASSERT_ERR(proto_frame_decode(c, n, 0, &f, &used), CORE_ECORRUPT);
    /* Credit range. */
    T_ASSERT_OK(proto_u32_encode(buf, sizeof buf, PROTO_CREDIT, 0, &n));
    T_ASSERT_OK(proto_frame_decode(buf, n, 0, &f, &used));
    uint32_t cr = 0;
    T_ASSERT_ERR(proto_credit_parse(&f, &cr), CORE_ETOO_LARGE);
}

T_CASE(error_frame_round_trip)
{
    uint8_t buf[2048];
    size_t n = 0, used = 0;
    T_ASSERT_OK(proto_error_encode(buf, sizeof buf, CORE_ECONFIG, "batch_size",
                                   "batch_size must be 1..4096", &n));
    proto_frame_t f;
    T_ASSERT_OK(proto_frame_decode(buf, n, 0, &f, &used));
    proto_error_t e;
    T_ASSERT_OK(proto_error_parse(&f, &e));
    T_ASSERT_EQ(e.code, CORE_ECONFIG);
    T_ASSERT_STR_EQ(e.param, "batch_size");
    T_ASSERT_STR_EQ(e.text, "batch_size must be 1..4096");
}

T_CASE(batch_round_trip_and_checks)
{
    proto_batch_t hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.batch_index = 7;
    hdr.cursor_epoch = 1;
    hdr.cursor_position = 640;
    hdr.n = 3;
    hdr.h = 8;
    hdr.w = 8;
    hdr.nnz = 5;
    hdr.flags = PROTO_BATCH_HAS_KEYS;
    size_t size = 0;
    T_ASSERT_OK(proto_batch_payload_size(3, 8, 8, 5, 1, &size));
    uint8_t *buf = core_malloc(PROTO_HEADER_SIZE + size);
    proto_batch_writer_t wr;
    T_ASSERT_OK(proto_batch_begin(buf, PROTO_HEADER_SIZE + size, &hdr, &wr));
    for (size_t i = 0; i < 3 * 8 * 8 * 3; i++) {
        wr.images[i] = (uint8_t)i;
    }
    static const uint32_t offs[4] = {0, 2, 2, 5};
    static const uint32_t ids[5] = {3, 9, 0, 4, 49407};
    for (int i = 0; i < 4; i++) {
        proto_put_u32(wr.label_offsets + 4 * i, offs[i]);
    }
    for (int i = 0; i < 5; i++) {
        proto_put_u32(wr.label_ids + 4 * i, ids[i]);
    }
    for (int i = 0; i < 3; i++) {
        proto_put_u64(wr.keys + 8 * i, 100u + (uint64_t)i);
    }
    T_ASSERT_OK(proto_batch_seal(&wr));
    proto_frame_t f;
    size_t used = 0;
    T_ASSERT_OK(proto_frame_decode(buf, wr.frame_size, 0, &f, &used));
    proto_batch_t b;
    T_ASSERT_OK(proto_batch_parse(&f, 49408, &b));
    T_ASSERT_U64_EQ(b.cursor_position, 640);
    T_ASSERT_EQ(proto_batch_offset(&b, 3), 5);
    T_ASSERT_EQ(proto_batch_label(&b, 4), 49407);
    T_ASSERT_U64_EQ(proto_batch_key(&b, 2), 102);
    T_ASSERT_EQ(b.images[100], 100);
    /* The vocabulary bound is enforced. */
    T_ASSERT_ERR(proto_batch_parse(&f, 49407, &b), CORE_ECORRUPT);
    /* Unsorted ids are refused. */
    proto_put_u32(wr.label_ids, 10);
    T_ASSERT_OK(proto_batch_seal(&wr));
    T_ASSERT_OK(proto_frame_decode(buf, wr.frame_size, 0, &f, &used));
    T_ASSERT_ERR(proto_batch_parse(&f, 0, &b), CORE_ECORRUPT);
    /* Offsets that do not end at nnz are refused. */
    proto_put_u32(wr.label_ids, 3);
    proto_put_u32(wr.label_offsets + 12, 4);
    T_ASSERT_OK(proto_batch_seal(&wr));
    T_ASSERT_OK(proto_frame_decode(buf, wr.frame_size, 0, &f, &used));
    T_ASSERT_ERR(proto_batch_parse(&f, 0, &b), CORE_ECORRUPT);
    core_free(buf);
}

T_CASE(batch_size_limits)
{
    size_t size = 0;
    T_ASSERT_ERR(proto_batch_payload_size(5000, 8, 8, 0, 0, &size), CORE_ETOO_LARGE);
    T_ASSERT_ERR(proto_batch_payload_size(2, 8, 8, 200, 0, &size), CORE_ETOO_LARGE);
    T_ASSERT_ERR(proto_batch_payload_size(4096, 1024, 1024, 0, 0, &size), CORE_ETOO_LARGE);
    T_ASSERT_OK(proto_batch_payload_size(64, 224, 224, 64 * 77, 1, &size));
}

T_MAIN()
