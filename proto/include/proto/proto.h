/* The batch protocol (proto/PROTOCOL.md): pure encode/decode over byte buffers, no I/O.
 *
 * Decoders are tri-state: 0 with *consumed set (a whole frame was decoded), CORE_ENEED_MORE (the
 * buffer holds a valid but incomplete frame: read more and call again), or another negative code
 * (close the connection). Every length is checked against a limit before it is trusted.
 * Decoded payload views point into the caller's buffer and are valid while it is unchanged.
 * Encoders write into caller-provided buffers (dst, cap) and return CORE_ETOO_LARGE when cap is too
 * small; proto_*_size() tell the size in advance. All functions are thread-safe (no state). */
#ifndef PROTO_PROTO_H
#define PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC 0x31424353u /* "SCB1" little-endian */
#define PROTO_VERSION 1
#define PROTO_HEADER_SIZE 20
#define PROTO_MAX_SMALL_PAYLOAD 4096u
#define PROTO_MAX_BATCH_BYTES (1u << 30)
#define PROTO_MAX_BATCH_N 4096u
#define PROTO_MIN_SIDE 8u
#define PROTO_MAX_SIDE 1024u
#define PROTO_MAX_LABEL_PER_SAMPLE 77u
#define PROTO_MAX_NAME 64u
#define PROTO_MAX_ERROR_TEXT 1024u
#define PROTO_MAX_CREDITS 1024u
#define PROTO_HELLO_FIXED 96u
#define PROTO_WELCOME_SIZE 64u
#define PROTO_BATCH_FIXED 44u

typedef enum {
    PROTO_HELLO = 1,
    PROTO_WELCOME = 2,
    PROTO_CREDIT = 3,
    PROTO_BATCH = 4,
    PROTO_ERROR = 5,
    PROTO_BYE = 6,
    PROTO_PING = 7,
    PROTO_PONG = 8,
} proto_type_t;

typedef struct proto_frame_s {
    uint16_t type;
    uint32_t length;
    const uint8_t *payload; /* view into the decoded buffer */
} proto_frame_t;

/* Decodes one frame at the start of buf. `max_payload` is the receiver's own limit (0 = the
 * protocol's limits only). Errors: CORE_EBAD_MAGIC, CORE_ECORRUPT (CRC), CORE_EBAD_VERSION,
 * CORE_EUNSUPPORTED (type), CORE_ETOO_LARGE (length). */
int proto_frame_decode(const uint8_t *buf, size_t len, size_t max_payload, proto_frame_t *out,
                       size_t *consumed);

/* Writes a header for a payload already placed at dst + PROTO_HEADER_SIZE (so large payloads are
 * built in place, never copied). */
int proto_frame_finish(uint8_t *dst, size_t cap, uint16_t type, uint32_t length);
/* Header + copy of payload. *n_out = total bytes written. */
int proto_frame_encode(uint8_t *dst, size_t cap, uint16_t type, const void *payload,
                       uint32_t length, size_t *n_out);

/* --- HELLO --- */
typedef struct proto_hello_s {
    uint32_t rank, world, batch_size, out_h, out_w;
    float scale_min, scale_max, ratio_min, ratio_max;
    uint8_t flip, interpolation, mode;
    uint64_t seed, epoch, position;
    uint32_t initial_credits, flags;
    char name[PROTO_MAX_NAME + 1];
} proto_hello_t;

#define PROTO_INTERP_BICUBIC 0
#define PROTO_INTERP_BILINEAR 1
#define PROTO_MODE_TRAIN 0
#define PROTO_MODE_EVAL 1
#define PROTO_HELLO_WANT_KEYS 1u

int proto_hello_encode(uint8_t *dst, size_t cap, const proto_hello_t *h, size_t *n_out);
/* Parses a HELLO payload. Layout errors: CORE_ECORRUPT. */
int proto_hello_parse(const proto_frame_t *f, proto_hello_t *out);
/* Range check of every parameter: returns 0, or CORE_ECONFIG with *bad_param naming the first
 * parameter out of range (a static string). */
int proto_hello_validate(const proto_hello_t *h, const char **bad_param);

/* --- WELCOME --- */
typedef struct proto_welcome_s {
    uint64_t records, epoch_batches;
    uint32_t vocab_size;
    uint8_t vocab_hash[32];
} proto_welcome_t;

int proto_welcome_encode(uint8_t *dst, size_t cap, const proto_welcome_t *w, size_t *n_out);
int proto_welcome_parse(const proto_frame_t *f, proto_welcome_t *out);

/* --- small frames --- */
int proto_u32_encode(uint8_t *dst, size_t cap, uint16_t type, uint32_t v, size_t *n_out);
int proto_u64_encode(uint8_t *dst, size_t cap, uint16_t type, uint64_t v, size_t *n_out);
/* CREDIT: 1..PROTO_MAX_CREDITS. */
int proto_credit_parse(const proto_frame_t *f, uint32_t *credits);
/* BYE: i32 reason. */
int proto_bye_parse(const proto_frame_t *f, int32_t *reason);
/* PING/PONG: u64 token. */
int proto_ping_parse(const proto_frame_t *f, uint64_t *token);

/* ERROR: code, optional parameter name, text (truncated to the limits). */
int proto_error_encode(uint8_t *dst, size_t cap, int32_t code, const char *param, const char *text,
                       size_t *n_out);
typedef struct proto_error_s {
    int32_t code;
    char param[PROTO_MAX_NAME + 1];
    char text[PROTO_MAX_ERROR_TEXT + 1];
} proto_error_t;
int proto_error_parse(const proto_frame_t *f, proto_error_t *out);

/* --- BATCH --- */
typedef struct proto_batch_s {
    uint64_t batch_index, cursor_epoch, cursor_position;
    uint32_t n, h, w, nnz, flags;
    const uint8_t *images;        /* n*h*w*3 bytes */
    const uint8_t *label_offsets; /* n+1 little-endian u32 (use proto_batch_offset) */
    const uint8_t *label_ids;     /* nnz little-endian u32 (use proto_batch_label) */
    const uint8_t *keys;          /* n little-endian u64, or NULL */
} proto_batch_t;

#define PROTO_BATCH_HAS_KEYS 1u

/* Payload size of a batch; CORE_ETOO_LARGE when over the limits. */
int proto_batch_payload_size(uint32_t n, uint32_t h, uint32_t w, uint32_t nnz, int with_keys,
                             size_t *size);

/* Builds a BATCH frame in place: writes the fixed fields and returns pointers where the caller
 * copies images, offsets, ids and keys (`*_out` point into dst), then call proto_frame_finish via
 * proto_batch_seal. This avoids a second copy of the pixels. */
typedef struct proto_batch_writer_s {
    uint8_t *frame;
    size_t frame_size;
    uint8_t *images;
    uint8_t *label_offsets;
    uint8_t *label_ids;
    uint8_t *keys;
} proto_batch_writer_t;

int proto_batch_begin(uint8_t *dst, size_t cap, const proto_batch_t *hdr,
                      proto_batch_writer_t *wr);
/* Computes CRCs and the header once the arrays are filled. */
int proto_batch_seal(proto_batch_writer_t *wr);

/* Parses and checks a BATCH payload: sizes, CSR monotonicity, ids sorted unique and below
 * `vocab_size` (0 = unchecked), per-sample label count limit. */
int proto_batch_parse(const proto_frame_t *f, uint32_t vocab_size, proto_batch_t *out);

uint32_t proto_batch_offset(const proto_batch_t *b, uint32_t i);
uint32_t proto_batch_label(const proto_batch_t *b, uint32_t j);
uint64_t proto_batch_key(const proto_batch_t *b, uint32_t i);

/* Little-endian helpers shared with callers that build payloads. */
static inline void proto_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void proto_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
static inline void proto_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
static inline uint16_t proto_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)(p[1] << 8));
}
static inline uint32_t proto_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t proto_get_u64(const uint8_t *p)
{
    return (uint64_t)proto_get_u32(p) | ((uint64_t)proto_get_u32(p + 4) << 32);
}

#endif
