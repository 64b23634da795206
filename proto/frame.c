/* Frame header encode/decode and the small control frames (CREDIT, BYE, PING, ERROR). */
#include <string.h>

#include "core/crc32c.h"
#include "core/err.h"
#include "proto/proto.h"

static size_t type_limit(uint16_t type)
{
    switch (type) {
    case PROTO_BATCH:
        return PROTO_MAX_BATCH_BYTES;
    case PROTO_HELLO:
    case PROTO_WELCOME:
    case PROTO_CREDIT:
    case PROTO_ERROR:
    case PROTO_BYE:
    case PROTO_PING:
    case PROTO_PONG:
        return PROTO_MAX_SMALL_PAYLOAD;
    default:
        return 0;
    }
}

int proto_frame_decode(const uint8_t *buf, size_t len, size_t max_payload, proto_frame_t *out,
                       size_t *consumed)
{
    static const uint8_t magic[4] = {'S', 'C', 'B', '1'};
    /* Reject garbage as soon as a byte contradicts the magic, without waiting for a header. */
    size_t seen = len < 4 ? len : 4;
    if (memcmp(buf, magic, seen) != 0) {
        return CORE_EBAD_MAGIC;
    }
    if (len < PROTO_HEADER_SIZE) {
        return CORE_ENEED_MORE;
    }
    if (core_crc32c(0, buf, 16) != proto_get_u32(buf + 16)) {
        return CORE_ECORRUPT;
    }
    if (proto_get_u16(buf + 4) != PROTO_VERSION) {
        return CORE_EBAD_VERSION;
    }
    uint16_t type = proto_get_u16(buf + 6);
    size_t limit = type_limit(type);
    if (limit == 0) {
        return CORE_EUNSUPPORTED;
    }
    uint32_t length = proto_get_u32(buf + 8);
    if (length > limit || (max_payload != 0 && length > max_payload)) {
        return CORE_ETOO_LARGE;
    }
    if (len - PROTO_HEADER_SIZE < length) {
        return CORE_ENEED_MORE;
    }
    const uint8_t *payload = buf + PROTO_HEADER_SIZE;
    if (core_crc32c(0, payload, length) != proto_get_u32(buf + 12)) {
        return CORE_ECORRUPT;
    }
    out->type = type;
    out->length = length;
    out->payload = payload;
    *consumed = PROTO_HEADER_SIZE + (size_t)length;
    return 0;
}

int proto_frame_finish(uint8_t *dst, size_t cap, uint16_t type, uint32_t length)
{
    if (cap < PROTO_HEADER_SIZE || cap - PROTO_HEADER_SIZE < length) {
        return CORE_ETOO_LARGE;
    }
    if (type_limit(type) == 0) {
        return CORE_EUNSUPPORTED;
    }
    if (length > type_limit(type)) {
        return CORE_ETOO_LARGE;
    }
    dst[0] = 'S';
    dst[1] = 'C';
    dst[2] = 'B';
    dst[3] = '1';
    proto_put_u16(dst + 4, PROTO_VERSION);
    proto_put_u16(dst + 6, type);
    proto_put_u32(dst + 8, length);
    proto_put_u32(dst + 12, core_crc32c(0, dst + PROTO_HEADER_SIZE, length));
    proto_put_u32(dst + 16, core_crc32c(0, dst, 16));
    return 0;
}

int proto_frame_encode(uint8_t *dst, size_t cap, uint16_t type, const void *payload,
                       uint32_t length, size_t *n_out)
{
    if (cap < PROTO_HEADER_SIZE || cap - PROTO_HEADER_SIZE < length) {
        return CORE_ETOO_LARGE;
    }
    if (length > 0) {
        memmove(dst + PROTO_HEADER_SIZE, payload, length);
    }
    int rc = proto_frame_finish(dst, cap, type, length);
    if (rc == 0) {
        *n_out = PROTO_HEADER_SIZE + (size_t)length;
    }
    return rc;
}

int proto_u32_encode(uint8_t *dst, size_t cap, uint16_t type, uint32_t v, size_t *n_out)
{
    uint8_t p[4];
    proto_put_u32(p, v);
    return proto_frame_encode(dst, cap, type, p, 4, n_out);
}

int proto_u64_encode(uint8_t *dst, size_t cap, uint16_t type, uint64_t v, size_t *n_out)
{
    uint8_t p[8];
    proto_put_u64(p, v);
    return proto_frame_encode(dst, cap, type, p, 8, n_out);
}

int proto_credit_parse(const proto_frame_t *f, uint32_t *credits)
{
    if (f->type != PROTO_CREDIT || f->length != 4) {
        return CORE_ECORRUPT;
    }
    uint32_t c = proto_get_u32(f->payload);
    if (c == 0 || c > PROTO_MAX_CREDITS) {
        return CORE_ETOO_LARGE;
    }
    *credits = c;
    return 0;
}

int proto_bye_parse(const proto_frame_t *f, int32_t *reason)
{
    if (f->type != PROTO_BYE || f->length != 4) {
        return CORE_ECORRUPT;
    }
    *reason = (int32_t)proto_get_u32(f->payload);
    return 0;
}

int proto_ping_parse(const proto_frame_t *f, uint64_t *token)
{
    if ((f->type != PROTO_PING && f->type != PROTO_PONG) || f->length != 8) {
        return CORE_ECORRUPT;
    }
    *token = proto_get_u64(f->payload);
    return 0;
}

int proto_error_encode(uint8_t *dst, size_t cap, int32_t code, const char *param, const char *text,
                       size_t *n_out)
{
    size_t plen = param != NULL ? strnlen(param, PROTO_MAX_NAME) : 0;
    size_t tlen = text != NULL ? strnlen(text, PROTO_MAX_ERROR_TEXT) : 0;
    size_t length = 4 + 2 + plen + 2 + tlen;
    if (cap < PROTO_HEADER_SIZE || cap - PROTO_HEADER_SIZE < length) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *p = dst + PROTO_HEADER_SIZE;
    proto_put_u32(p, (uint32_t)code);
    proto_put_u16(p + 4, (uint16_t)plen);
    if (plen > 0) {
        memcpy(p + 6, param, plen);
    }
    proto_put_u16(p + 6 + plen, (uint16_t)tlen);
    if (tlen > 0) {
        memcpy(p + 8 + plen, text, tlen);
    }
    int rc = proto_frame_finish(dst, cap, PROTO_ERROR, (uint32_t)length);
    if (rc == 0) {
        *n_out = PROTO_HEADER_SIZE + length;
    }
    return rc;
}

int proto_error_parse(const proto_frame_t *f, proto_error_t *out)
{
    if (f->type != PROTO_ERROR || f->length < 8) {
        return CORE_ECORRUPT;
    }
    const uint8_t *p = f->payload;
    size_t left = f->length;
    out->code = (int32_t)proto_get_u32(p);
    size_t plen = proto_get_u16(p + 4);
    if (plen > PROTO_MAX_NAME || plen > left - 8) {
        return CORE_ECORRUPT;
    }
    memcpy(out->param, p + 6, plen);
    out->param[plen] = '\0';
    size_t tlen = proto_get_u16(p + 6 + plen);
    if (tlen > PROTO_MAX_ERROR_TEXT || 8 + plen + tlen != left) {
        return CORE_ECORRUPT;
    }
    memcpy(out->text, p + 8 + plen, tlen);
    out->text[tlen] = '\0';
    /* Embedded NULs would silently shorten the strings: refuse them. */
    if (strlen(out->param) != plen || strlen(out->text) != tlen) {
        return CORE_ECORRUPT;
    }
    return 0;
}
