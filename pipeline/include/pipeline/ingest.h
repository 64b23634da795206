/* Webdataset ingest (docs/FORMAT.md §4): .tar, .tar.gz, .tar.zst shards (libarchive) into a shard
 * store, exactly once.
 *
 * Members group into samples by key (the member path up to the first dot of its basename) over
 * ADJACENT members only; a key that reappears later in the same archive is rejected (split_key),
 * together with its earlier fragment when that fragment lacked an image or caption member. The
 * image is the first present of .jpg, .jpeg, .png, .webp, identified by its magic bytes (a PNG
 * named .jpg is a valid PNG sample); the caption is the .txt member, else the "caption" string of
 * the .json member. Each sample is checked (caption: UTF-8, no NUL, not empty or blank, byte cap;
 * image: probe with bomb limits, and under verify=full a decode of all the compressed data where
 * libjpeg's corrupt-data warnings are errors — JPEG at 1/8 scale, which still parses every
 * Huffman symbol, see docs/FORMAT.md §4), tokenized, encoded as a record and committed in batches
 * whose transaction also carries the file's progress and the batch's rejects.
 *
 * Threads: a pl_ingest_t is used from one thread (it is the store's single writer); with
 * opts.threads > 1 it runs that many workers of its own for the per-sample work.
 * Errors: 0 or a negative code from core/err.h. */
#ifndef PL_INGEST_H
#define PL_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/store.h"
#include "pipeline/tok.h"

/* Reject reasons: X(NAME, "short_name"). Short names are stable (stored counts, logs, --json). */
#define PL_REJECT_REASON_MAP(X)                                                                    \
    X(NONE, "ok")                                                                                  \
    X(NO_IMAGE, "no_image")                   /* no .jpg/.jpeg/.png/.webp member */                \
    X(NO_CAPTION, "no_caption")               /* no .txt and no "caption" in .json */              \
    X(SPLIT_KEY, "split_key")                 /* the key's members are not adjacent */             \
    X(DUPLICATE_MEMBER, "duplicate_member")   /* two members with the same extension */            \
    X(MEMBER_TOO_LARGE, "member_too_large")   /* over policy max_member_bytes */                   \
    X(ARCHIVE_DAMAGED, "archive_damaged")     /* member data cut by a damaged archive */           \
    X(JSON_BAD, "json_bad")                   /* .json needed for the caption is not JSON */       \
    X(CAPTION_EMPTY, "caption_empty")         /* 0 bytes */                                        \
    X(CAPTION_BLANK, "caption_blank")         /* only whitespace */                                \
    X(CAPTION_NUL, "caption_nul")             /* contains a NUL byte */                            \
    X(CAPTION_UTF8, "caption_bad_utf8")       /* not valid UTF-8 */                                \
    X(CAPTION_TOO_LONG, "caption_too_long")   /* over the cap with caption_overflow=reject */      \
    X(CAPTION_NO_TOKENS, "caption_no_tokens") /* cleans to zero BPE tokens */                      \
    X(IMAGE_EMPTY, "image_empty")                                                                  \
    X(IMAGE_UNKNOWN_FORMAT, "image_unknown_format")                                                \
    X(IMAGE_TRUNCATED_HEADER, "image_truncated_header")                                            \
    X(IMAGE_BAD_HEADER, "image_bad_header")                                                        \
    X(IMAGE_TOO_LARGE, "image_too_large") /* over the bomb limits: nothing decoded */              \
    X(IMAGE_TRUNCATED, "image_truncated")                                                          \
    X(IMAGE_CORRUPT, "image_corrupt")                                                              \
    X(IMAGE_UNSUPPORTED, "image_unsupported")                                                      \
    X(RECORD_TOO_LARGE, "record_too_large")

typedef enum {
#define PL__REJECT_ENUM(name, str) PL_REJECT_##name,
    PL_REJECT_REASON_MAP(PL__REJECT_ENUM)
#undef PL__REJECT_ENUM
        PL_REJECT__COUNT
} pl_reject_t;

/* Stable short name of a reason; "?" out of range. */
const char *pl_reject_name(uint32_t reason);
/* Reason from its short name, or -1. */
int pl_reject_from_name(const char *name);

/* Counters and time split of one pl_ingest_t (all runs of pl_ingest_file summed). */
typedef struct pl_ingest_stats_s {
    uint64_t files;         /* files given */
    uint64_t files_skipped; /* already finished in the store (identity match) */
    uint64_t files_resumed; /* continued after an interruption */
    uint64_t files_damaged; /* archives that ended in damage (what came before is kept) */
    uint64_t samples;       /* samples processed in this run (kept + rejected) */
    uint64_t kept, rejected;
    uint64_t rejects[PL_REJECT__COUNT];
    uint64_t bytes_in;    /* archive bytes read (compressed size) */
    uint64_t bytes_image; /* image bytes stored */
    uint64_t bytes_total; /* sum of the sizes of the files given (for progress) */
    uint64_t commits;
    /* time split in seconds */
    double t_read, t_decode, t_tokenize, t_compress, t_lmdb, t_total;
} pl_ingest_stats_t;

typedef struct pl_ingest_s pl_ingest_t;

/* Called after every commit and at the end of each file, from the ingest thread. */
typedef void (*pl_ingest_progress_cb)(void *ud, const pl_ingest_stats_t *stats);

typedef struct pl_ingest_opts_s {
    size_t batch_records; /* commit after this many samples (default 512) */
    size_t batch_bytes;   /* ... or this many record bytes (default 32 MiB) */
    int log_rejects;      /* log each rejected sample once (default 1) */
    pl_ingest_progress_cb progress;
    void *progress_ud;
    /* When non-NULL and *stop becomes non-zero (from a signal handler, or another thread that
     * stores it with __atomic_store_n; it is read atomically), the ingest commits the samples
     * done so far and pl_ingest_file returns CORE_ECLOSED; a later ingest continues after them. */
    const volatile int *stop;
    /* Worker threads that check, tokenize and encode samples (0 or 1: all on the calling
     * thread; at most 256). Reading the archive and committing stay on the calling thread, in
     * archive order, so the store's content and the exactly-once bookkeeping do not depend on
     * the thread count. */
    int threads;
} pl_ingest_opts_t;

void pl_ingest_opts_default(pl_ingest_opts_t *o);

/* Prepares ingest into writable store `st` with vocabulary `tok` (borrowed; both must outlive the
 * ingest). Errors: CORE_EMISMATCH when tok's hash is not the store's, CORE_ESTATE for a read-only
 * store, -ENOMEM. opts may be NULL. */
int pl_ingest_new(pl_store_t *st, const pl_tok_t *tok, const pl_ingest_opts_t *opts,
                  pl_ingest_t **out);
void pl_ingest_free(pl_ingest_t *ing);

/* Ingests one archive. A file already finished in the store adds nothing; an interrupted one
 * continues after its last committed sample. A damaged archive keeps what was read before the
 * damage, records the file as damaged and returns 0 (counted in files_damaged, logged).
 * Errors: CORE_ECLOSED when opts.stop was raised (what was done is committed); -errno opening
 * the file; store errors from a commit (-ENOSPC/-EFBIG/CORE_EFULL on a
 * full disk, logged with what to do): then the store is in a sticky error state, committed data
 * stays consistent and a later ingest continues exactly once. */
int pl_ingest_file(pl_ingest_t *ing, const char *path);

const pl_ingest_stats_t *pl_ingest_stats(const pl_ingest_t *ing);

#endif
