/* HELLO and WELCOME: the handshake. */
#include <math.h>
#include <string.h>

#include "core/err.h"
#include "proto/proto.h"

static void put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    proto_put_u32(p, u);
}

static float get_f32(const uint8_t *p)
{
    uint32_t u = proto_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int proto_hello_encode(uint8_t *dst, size_t cap, const proto_hello_t *h, size_t *n_out)
{
    size_t nlen = strnlen(h->name, PROTO_MAX_NAME);
    size_t length = PROTO_HELLO_FIXED + 2 + nlen;
    if (cap < PROTO_HEADER_SIZE || cap - PROTO_HEADER_SIZE < length) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *p = dst + PROTO_HEADER_SIZE;
    memset(p, 0, PROTO_HELLO_FIXED);
    proto_put_u32(p + 0, h->rank);
    proto_put_u32(p + 4, h->world);
    proto_put_u32(p + 8, h->batch_size);
    proto_put_u32(p + 12, h->out_h);
    proto_put_u32(p + 16, h->out_w);
    put_f32(p + 20, h->scale_min);
    put_f32(p + 24, h->scale_max);
    put_f32(p + 28, h->ratio_min);
    put_f32(p + 32, h->ratio_max);
    p[36] = h->flip;
    p[37] = h->interpolation;
    p[38] = h->mode;
    proto_put_u64(p + 40, h->seed);
    proto_put_u64(p + 48, h->epoch);
    proto_put_u64(p + 56, h->position);
    proto_put_u32(p + 64, h->initial_credits);
    proto_put_u32(p + 68, h->flags);
    proto_put_u16(p + PROTO_HELLO_FIXED, (uint16_t)nlen);
    memcpy(p + PROTO_HELLO_FIXED + 2, h->name, nlen);
    int rc = proto_frame_finish(dst, cap, PROTO_HELLO, (uint32_t)length);
    if (rc == 0) {
        *n_out = PROTO_HEADER_SIZE + length;
    }
    return rc;
}

int proto_hello_parse(const proto_frame_t *f, proto_hello_t *out)
{
    if (f->type != PROTO_HELLO || f->length < PROTO_HELLO_FIXED + 2) {
        return CORE_ECORRUPT;
    }
    const uint8_t *p = f->payload;
    size_t nlen = proto_get_u16(p + PROTO_HELLO_FIXED);
    if (nlen > PROTO_MAX_NAME || f->length != PROTO_HELLO_FIXED + 2 + nlen) {
        return CORE_ECORRUPT;
    }
    memset(out, 0, sizeof *out);
    out->rank = proto_get_u32(p + 0);
    out->world = proto_get_u32(p + 4);
    out->batch_size = proto_get_u32(p + 8);
    out->out_h = proto_get_u32(p + 12);
    out->out_w = proto_get_u32(p + 16);
    out->scale_min = get_f32(p + 20);
    out->scale_max = get_f32(p + 24);
    out->ratio_min = get_f32(p + 28);
    out->ratio_max = get_f32(p + 32);
    out->flip = p[36];
    out->interpolation = p[37];
    out->mode = p[38];
    out->seed = proto_get_u64(p + 40);
    out->epoch = proto_get_u64(p + 48);
    out->position = proto_get_u64(p + 56);
    out->initial_credits = proto_get_u32(p + 64);
    out->flags = proto_get_u32(p + 68);
    memcpy(out->name, p + PROTO_HELLO_FIXED + 2, nlen);
    out->name[nlen] = '\0';
    if (strlen(out->name) != nlen) {
        return CORE_ECORRUPT;
    }
    return 0;
}

int proto_hello_validate(const proto_hello_t *h, const char **bad_param)
{
#define CHECK(cond, name)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            *bad_param = (name);                                                                   \
            return CORE_ECONFIG;                                                                   \
        }                                                                                          \
    } while (0)
    CHECK(h->world >= 1 && h->world <= 65536, "world");
    CHECK(h->rank < h->world, "rank");
    CHECK(h->batch_size >= 1 && h->batch_size <= PROTO_MAX_BATCH_N, "batch_size");
    CHECK(h->out_h >= PROTO_MIN_SIDE && h->out_h <= PROTO_MAX_SIDE, "out_h");
    CHECK(h->out_w >= PROTO_MIN_SIDE && h->out_w <= PROTO_MAX_SIDE, "out_w");
    CHECK(isfinite(h->scale_min) && h->scale_min > 0 && h->scale_min <= 1, "scale_min");
    CHECK(isfinite(h->scale_max) && h->scale_max >= h->scale_min && h->scale_max <= 1,
          "scale_max");
    CHECK(isfinite(h->ratio_min) && h->ratio_min > 0 && h->ratio_min <= 10, "ratio_min");
    CHECK(isfinite(h->ratio_max) && h->ratio_max >= h->ratio_min && h->ratio_max <= 10,
          "ratio_max");
    CHECK(h->flip <= 1, "flip");
    CHECK(h->interpolation <= PROTO_INTERP_BILINEAR, "interpolation");
    CHECK(h->mode <= PROTO_MODE_EVAL, "mode");
    CHECK(h->initial_credits <= PROTO_MAX_CREDITS, "initial_credits");
    CHECK((h->flags & ~PROTO_HELLO_WANT_KEYS) == 0, "flags");
    size_t batch_bytes = 0;
    CHECK(proto_batch_payload_size(h->batch_size, h->out_h, h->out_w,
                                   h->batch_size * PROTO_MAX_LABEL_PER_SAMPLE, 1,
                                   &batch_bytes) == 0,
          "batch_size");
#undef CHECK
    return 0;
}

int proto_welcome_encode(uint8_t *dst, size_t cap, const proto_welcome_t *w, size_t *n_out)
{
    if (cap < PROTO_HEADER_SIZE + PROTO_WELCOME_SIZE) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *p = dst + PROTO_HEADER_SIZE;
    memset(p, 0, PROTO_WELCOME_SIZE);
    proto_put_u64(p, w->records);
    proto_put_u64(p + 8, w->epoch_batches);
    proto_put_u32(p + 16, w->vocab_size);
    memcpy(p + 20, w->vocab_hash, 32);
    int rc = proto_frame_finish(dst, cap, PROTO_WELCOME, PROTO_WELCOME_SIZE);
    if (rc == 0) {
        *n_out = PROTO_HEADER_SIZE + PROTO_WELCOME_SIZE;
    }
    return rc;
}

int proto_welcome_parse(const proto_frame_t *f, proto_welcome_t *out)
{
    if (f->type != PROTO_WELCOME || f->length != PROTO_WELCOME_SIZE) {
        return CORE_ECORRUPT;
    }
    const uint8_t *p = f->payload;
    out->records = proto_get_u64(p);
    out->epoch_batches = proto_get_u64(p + 8);
    out->vocab_size = proto_get_u32(p + 16);
    memcpy(out->vocab_hash, p + 20, 32);
    return 0;
}
