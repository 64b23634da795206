/* Record codec: round trip, every-byte corruption detection, limits, version and magic checks. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "pipeline/record.h"
#include "t.h"

static const uint32_t toks[] = {49406, 320, 1125, 539, 320, 2368, 49407};
static const uint8_t img[] = {0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5, 0xFF, 0xD9};

static void sample_in(pl_record_in_t *in)
{
    memset(in, 0, sizeof(*in));
    in->tokens = toks;
    in->n_tokens = sizeof(toks) / sizeof(toks[0]);
    in->caption = "a photo of a cat";
    in->caption_len = strlen(in->caption);
    in->image = img;
    in->image_len = sizeof(img);
    in->format = PL_IMG_JPEG;
    in->width = 64;
    in->height = 48;
    in->source_file = "google-000000.tar";
    in->member_key = "000123";
    in->sample_index = 123;
    in->flags = PL_REC_CAPTION_TRUNCATED;
}

static uint8_t *encode(const pl_record_in_t *in, size_t *n)
{
    size_t bound = 0;
    T_ASSERT_OK(pl_record_bound(in, &bound));
    uint8_t *buf = core_malloc(bound);
    T_ASSERT(buf != NULL);
    T_ASSERT_OK(pl_record_encode(in, buf, bound, n));
    T_ASSERT(*n <= bound);
    return buf;
}

T_CASE(record_round_trip)
{
    pl_record_in_t in;
    sample_in(&in);
    size_t n = 0;
    uint8_t *buf = encode(&in, &n);
    pl_record_t r;
    T_ASSERT_OK(pl_record_decode(buf, n, &r));
    T_ASSERT_EQ(r.version, PL_RECORD_VERSION);
    T_ASSERT_EQ(r.flags, PL_REC_CAPTION_TRUNCATED);
    T_ASSERT_EQ(r.format, PL_IMG_JPEG);
    T_ASSERT_EQ(r.width, 64);
    T_ASSERT_EQ(r.height, 48);
    T_ASSERT_U64_EQ(r.sample_index, 123);
    T_ASSERT_EQ(r.n_tokens, 7);
    T_ASSERT(memcmp(r.tokens, toks, sizeof(toks)) == 0);
    /* label: sorted unique ids of the padded row, with pad 0 */
    static const uint32_t want[] = {0, 320, 539, 1125, 2368, 49406, 49407};
    T_ASSERT_EQ(r.n_label, 7);
    T_ASSERT(memcmp(r.label, want, sizeof(want)) == 0);
    T_ASSERT_EQ(r.image_len, sizeof(img));
    T_ASSERT(memcmp(r.image, img, sizeof(img)) == 0);
    T_ASSERT_EQ(r.source_file_len, strlen("google-000000.tar"));
    T_ASSERT(memcmp(r.source_file, "google-000000.tar", r.source_file_len) == 0);
    T_ASSERT(memcmp(r.member_key, "000123", 6) == 0 && r.member_key_len == 6);
    char cap[64];
    T_ASSERT_OK(pl_record_caption(&r, cap, sizeof(cap)));
    T_ASSERT_STR_EQ(cap, "a photo of a cat");
    T_ASSERT_ERR(pl_record_caption(&r, cap, 5), CORE_ETOO_LARGE);
    uint32_t row[PL_TOK_CONTEXT];
    pl_record_row(&r, row);
    T_ASSERT_EQ(row[6], 49407);
    T_ASSERT_EQ(row[7], 0);
    T_ASSERT_EQ(row[76], 0);
    core_free(buf);
    pl_record_thread_cleanup();
}

T_CASE(record_full_row_no_pad)
{
    uint32_t row[PL_TOK_CONTEXT];
    row[0] = 49406;
    for (int i = 1; i < 76; i++) {
        row[i] = (uint32_t)(1000 + i % 5);
    }
    row[76] = 49407;
    pl_record_in_t in;
    sample_in(&in);
    in.tokens = row;
    in.n_tokens = PL_TOK_CONTEXT;
    in.flags = PL_REC_TOKENS_TRUNCATED;
    size_t n;
    uint8_t *buf = encode(&in, &n);
    pl_record_t r;
    T_ASSERT_OK(pl_record_decode(buf, n, &r));
    T_ASSERT_EQ(r.n_tokens, 77);
    T_ASSERT_EQ(r.n_label, 7); /* 1000..1004, SOT, EOT; no pad */
    T_ASSERT_EQ(r.label[0], 1000);
    core_free(buf);
    pl_record_thread_cleanup();
}

T_CASE(record_every_byte_flip_detected)
{
    pl_record_in_t in;
    sample_in(&in);
    size_t n;
    uint8_t *buf = encode(&in, &n);
    pl_record_t r;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            buf[i] ^= (uint8_t)(1u << bit);
            int rc = pl_record_decode(buf, n, &r);
            if (rc >= 0) {
                T_FAIL("flip of byte %zu bit %d not detected", i, bit);
            }
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (size_t len = 0; len < n; len++) {
        T_ASSERT(pl_record_decode(buf, len, &r) < 0);
    }
    T_ASSERT_OK(pl_record_decode(buf, n, &r));
    core_free(buf);
    pl_record_thread_cleanup();
}

T_CASE(record_magic_version)
{
    pl_record_in_t in;
    sample_in(&in);
    size_t n;
    uint8_t *buf = encode(&in, &n);
    pl_record_t r;
    buf[0] ^= 1;
    T_ASSERT_ERR(pl_record_decode(buf, n, &r), CORE_EBAD_MAGIC);
    buf[0] ^= 1;
    buf[4] = 2;
    T_ASSERT_ERR(pl_record_decode(buf, n, &r), CORE_EBAD_VERSION);
    core_free(buf);
    pl_record_thread_cleanup();
}

T_CASE(record_encode_limits)
{
    pl_record_in_t in;
    sample_in(&in);
    uint8_t small[32];
    size_t n;
    T_ASSERT_ERR(pl_record_encode(&in, small, sizeof(small), &n), CORE_ETOO_LARGE);
    in.n_tokens = 1;
    uint8_t big[4096];
    T_ASSERT_ERR(pl_record_encode(&in, big, sizeof(big), &n), CORE_ECONFIG);
    sample_in(&in);
    in.format = PL_IMG_UNKNOWN;
    T_ASSERT_ERR(pl_record_encode(&in, big, sizeof(big), &n), CORE_ECONFIG);
    sample_in(&in);
    in.flags = 0x100;
    T_ASSERT_ERR(pl_record_encode(&in, big, sizeof(big), &n), CORE_ECONFIG);
    sample_in(&in);
    in.caption_len = PL_RECORD_MAX_CAPTION + 1;
    size_t bound;
    T_ASSERT_ERR(pl_record_bound(&in, &bound), CORE_ETOO_LARGE);
    pl_record_thread_cleanup();
}

T_CASE(record_inconsistent_label_rejected)
{
    /* A record whose label does not match its tokens is corrupt even with a valid CRC. */
    pl_record_in_t in;
    sample_in(&in);
    size_t n;
    uint8_t *buf = encode(&in, &n);
    /* label[1] (320) -> 321, then fix the CRC */
    buf[PL_RECORD_HEADER + 4] = 0x41;
    uint32_t crc = core_crc32c(0, buf, n - 4);
    memcpy(buf + n - 4, &crc, 4); /* little-endian host */
    pl_record_t r;
    T_ASSERT_ERR(pl_record_decode(buf, n, &r), CORE_ECORRUPT);
    core_free(buf);
    pl_record_thread_cleanup();
}

T_MAIN()
