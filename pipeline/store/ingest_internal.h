/* Internal helpers of the ingest (pipeline/store): caption checks and the per-archive key map. */
#ifndef PL_INGEST_INTERNAL_H
#define PL_INGEST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/image.h"

/* Checks a caption and narrows it in place: rejects empty (caption_empty), NUL bytes
 * (caption_nul), invalid UTF-8 (caption_bad_utf8: overlongs, surrogates, > U+10FFFF, truncated
 * sequences) and whitespace-only (caption_blank, Python str.isspace set); strips leading and
 * trailing whitespace; over `max_bytes` it either rejects (caption_too_long, when reject_over) or
 * cuts at the last character boundary <= max_bytes, strips again and sets
 * PL_REC_CAPTION_TRUNCATED in *flags. Returns PL_REJECT_NONE or the reason. Pure. */
uint32_t pl__caption_check(const char **cap, size_t *len, uint32_t max_bytes, int reject_over,
                           uint32_t *flags);

/* 1 if s[0..len) is valid UTF-8 (RFC 3629). */
int pl__utf8_valid(const uint8_t *s, size_t len);

/* Keys seen in the current archive: key -> (first sample index, incomplete by member names),
 * plus a pending reject reason logged at the end of the file. Single-threaded. */
typedef struct pl__keymap_entry_s {
    char *key;
    uint64_t index;
    int incomplete;
    uint32_t pending; /* reject reason awaiting its log line, or UINT32_MAX */
} pl__keymap_entry_t;

typedef struct pl__keymap_s {
    pl__keymap_entry_t *slots;
    size_t cap, n;
} pl__keymap_t;

int pl__keymap_lookup(const pl__keymap_t *m, const char *key, uint64_t *index, int *incomplete);
int pl__keymap_insert(pl__keymap_t *m, const char *key, uint64_t index, int incomplete);
void pl__keymap_set_pending(pl__keymap_t *m, const char *key, uint32_t reason);
/* Returns the pending reason (UINT32_MAX if none) and clears it. */
uint32_t pl__keymap_take_pending(pl__keymap_t *m, const char *key);
/* Calls cb for every pending entry (in no particular order). */
void pl__keymap_each_pending(const pl__keymap_t *m, int (*cb)(void *, const char *, uint32_t),
                             void *ud);
void pl__keymap_clear(pl__keymap_t *m);
void pl__keymap_free(pl__keymap_t *m);

/* verify=full (verify.c): probe with limits, then JPEG decoded at 1/8 scale (every Huffman symbol
 * still parsed; corrupt-data warnings are errors), WebP decoded in its native colour space, PNG via
 * pl_img_verify on `img` (borrowed). Same return codes and reasons as pl_img_verify. One verifier
 * per thread. */
typedef struct pl__verifier_s pl__verifier_t;
int pl__verifier_new(pl_img_ctx_t *img, pl__verifier_t **out);
void pl__verifier_free(pl__verifier_t *v);
int pl__verify_image(pl__verifier_t *v, const uint8_t *data, size_t len, const pl_img_limits_t *lim,
                     pl_img_info_t *info, pl_img_err_t *err);

#endif
