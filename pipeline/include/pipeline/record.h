/* The sample record: one LMDB value of the shard store (docs/FORMAT.md §2), encoded and decoded
 * as pure functions over bytes.
 *
 * A record holds the label vector (sorted unique ids of the 77-token row, spec §1.9), the row's
 * ordered tokens up to its last non-pad id (SOT ... EOT), the caption (zstd), the encoded image
 * bytes with format/width/height, the source (file name, member key, sample index), flags and a
 * CRC32C. Decoding checks magic, version, every length and the CRC before anything is trusted, and
 * returns views that borrow from the input buffer.
 *
 * Thread safety: all functions are reentrant; pl_record_encode and pl_record_caption use a
 * per-thread zstd context (freed by pl_record_thread_cleanup, optional).
 * Errors: 0 or a negative code from core/err.h. */
#ifndef PL_RECORD_H
#define PL_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/image.h" /* pl_img_format_t: formats by magic bytes */
#include "pipeline/tok.h"

#define PL_RECORD_VERSION 1
#define PL_RECORD_MAGIC 0x31524353u      /* "SCR1" read as little-endian u32 */
#define PL_RECORD_HEADER 48              /* fixed header bytes before the variable part */
#define PL_RECORD_MAX_CAPTION (1u << 20) /* decoded caption bytes */
#define PL_RECORD_MAX_IMAGE (256u << 20)
#define PL_RECORD_MAX_NAME 4096 /* source file name and member key */

/* Record flags. */
#define PL_REC_CAPTION_TRUNCATED 0x1u /* caption cut at the store's byte cap */
#define PL_REC_REENCODED 0x2u         /* image re-encoded (JPEG q90) to the store's max_side */
#define PL_REC_TOKENS_TRUNCATED 0x4u  /* the caption had more than 75 BPE ids (row cut at 77) */
#define PL_REC_FLAGS_KNOWN 0x7u

/* What goes into a record. All pointers are borrowed for the call only. */
typedef struct pl_record_in_s {
    const uint32_t *tokens; /* the row up to its last non-pad id: SOT ... EOT, 2..77 ids */
    size_t n_tokens;
    const char *caption; /* UTF-8 caption as stored (after the byte cap), not NUL-terminated */
    size_t caption_len;
    const uint8_t *image;
    size_t image_len;
    pl_img_format_t format; /* PL_IMG_JPEG/PNG/WEBP */
    uint32_t width, height;
    const char *source_file; /* file name (basename) */
    const char *member_key;  /* webdataset key */
    uint64_t sample_index;   /* 0-based group ordinal inside the source file */
    uint32_t flags;          /* PL_REC_* */
    int zstd_level;          /* 0 = default (3) */
} pl_record_in_t;

/* A decoded record: views into the encoded buffer (borrowed: valid while that buffer is valid and
 * unchanged; for LMDB values, until the end of the read transaction), plus copied small arrays. */
typedef struct pl_record_s {
    uint32_t version;
    uint32_t flags;
    pl_img_format_t format; /* PL_IMG_JPEG/PNG/WEBP */
    uint32_t width, height;
    uint32_t n_label, n_tokens;
    uint32_t label[PL_TOK_CONTEXT];  /* sorted unique ids */
    uint32_t tokens[PL_TOK_CONTEXT]; /* SOT ... EOT */
    uint64_t sample_index;
    const uint8_t *caption_z; /* zstd frame */
    size_t caption_z_len;
    size_t caption_len; /* decompressed length */
    const uint8_t *image;
    size_t image_len;
    const char *source_file; /* not NUL-terminated */
    size_t source_file_len;
    const char *member_key; /* not NUL-terminated */
    size_t member_key_len;
} pl_record_t;

/* Upper bound of the encoded size for `in` (for sizing the output buffer). Returns 0 and stores
 * it, or CORE_ETOO_LARGE when a field exceeds its PL_RECORD_MAX_* limit. */
int pl_record_bound(const pl_record_in_t *in, size_t *bound_out);

/* Encodes `in` into out[0..cap). The label vector is computed from the tokens (pl_tok_label of the
 * padded row). *n_out gets the encoded size. Errors: CORE_ETOO_LARGE (field limits, or cap too
 * small: ask pl_record_bound), CORE_ECONFIG (n_tokens outside 2..77, bad format, unknown flags),
 * -ENOMEM. */
int pl_record_encode(const pl_record_in_t *in, uint8_t *out, size_t cap, size_t *n_out);

/* Decodes and validates `len` bytes: magic (CORE_EBAD_MAGIC), version (CORE_EBAD_VERSION), lengths
 * and structure (CORE_ECORRUPT), CRC32C (CORE_ECORRUPT), label = label of tokens (CORE_ECORRUPT).
 * The caption frame is not decompressed here (see pl_record_caption). `rec` borrows from `buf`. */
int pl_record_decode(const uint8_t *buf, size_t len, pl_record_t *rec);

/* The member key of an encoded record, from its header alone (no CRC check: for the writer's own
 * records and for index lookups, which compare keys of records they then decode in full).
 * *key borrows from buf. Errors: CORE_ECORRUPT when the header does not place the key inside
 * the buffer. */
int pl_record_member_key(const uint8_t *buf, size_t len, const char **key, size_t *key_len);

/* Decompresses the caption into out[0..cap) and NUL-terminates it (cap >= caption_len + 1).
 * Errors: CORE_ETOO_LARGE (cap too small), CORE_ECORRUPT (zstd error or length mismatch). */
int pl_record_caption(const pl_record_t *rec, char *out, size_t cap);

/* The full 77-id row (tokens followed by zero padding). */
void pl_record_row(const pl_record_t *rec, uint32_t row[PL_TOK_CONTEXT]);

/* Frees this thread's zstd contexts (call before a thread exits; tests call it to end with zero
 * live allocations). Safe to call when none exist. */
void pl_record_thread_cleanup(void);

#endif
