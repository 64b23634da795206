/* The shard store (docs/FORMAT.md §3): a directory holding meta.lmdb (format version, vocabulary
 * hash and path, ingest policy, shard caps) and shard-NNNNNN.lmdb files (MDB_NOSUBDIR, one LMDB
 * env per shard). Each shard holds the records under fixed-width big-endian u64 sequence numbers
 * (global across shards, written with MDB_APPEND), and, in the same env, the per-source-file
 * progress and the reject log, so a batch of records and the progress that covers it commit in ONE
 * transaction: a crash never loses or duplicates a sample.
 *
 * Threads: one writer thread per store (pl_store_commit); any number of reader threads, each with
 * its own pl_store_reader_t (envs are opened with MDB_NOTLS, so read transactions belong to the
 * reader object, not to the thread). A reader sees the shards that existed when the store was
 * opened (or last refreshed with pl_store_refresh, writer-quiet moments only).
 *
 * Errors: 0 or a negative code from core/err.h. LMDB errors are logged with mdb_strerror's text and
 * mapped: MDB_NOTFOUND -> CORE_ENOT_FOUND, MDB_CORRUPTED/MDB_PAGE_NOTFOUND/MDB_INVALID ->
 * CORE_ECORRUPT, MDB_VERSION_MISMATCH -> CORE_EBAD_VERSION, MDB_MAP_FULL (after the map can no
 * longer grow) and MDB_READERS_FULL -> CORE_EFULL, system errors -> -errno (-ENOSPC, -EFBIG on a
 * full disk). */
#ifndef PL_STORE_H
#define PL_STORE_H

#include <stddef.h>
#include <stdint.h>

#define PL_STORE_FORMAT_VERSION 1
#define PL_STORE_FILE_ID_LEN 32

typedef enum {
    PL_VERIFY_FULL = 0,   /* decode every image; libjpeg warnings are errors (default) */
    PL_VERIFY_HEADER = 1, /* trust the header probe */
} pl_verify_t;

typedef enum {
    PL_CAPTION_TRUNCATE = 0, /* cut over-long captions at a character boundary and flag them */
    PL_CAPTION_REJECT = 1,   /* reject them (reason caption_too_long) */
} pl_caption_overflow_t;

/* Ingest policy, recorded in the store at create and applied by every ingest. */
typedef struct pl_store_policy_s {
    pl_verify_t verify;
    uint32_t max_side;          /* 0: keep images as they are; else re-encode larger ones */
    uint32_t caption_max_bytes; /* byte cap of a stored caption (default 4096) */
    pl_caption_overflow_t caption_overflow;
    uint32_t max_dim;          /* bomb limit: width and height (default 16384) */
    uint64_t max_pixels;       /* bomb limit: width*height (default 64 Mi) */
    uint64_t max_member_bytes; /* largest archive member read into memory (default 64 MiB) */
} pl_store_policy_t;

typedef struct pl_store_caps_s {
    uint64_t shard_max_bytes;   /* a shard closes at the first commit that reaches it (1 GiB) */
    uint64_t shard_max_records; /* ... or this many records (0: no record cap) */
    uint64_t
        map_initial_bytes; /* initial LMDB map size of a shard (64 MiB); grows x2 on MAP_FULL */
} pl_store_caps_t;

void pl_store_policy_default(pl_store_policy_t *p);
void pl_store_caps_default(pl_store_caps_t *c);

typedef struct pl_store_s pl_store_t;
typedef struct pl_store_reader_s pl_store_reader_t;

/* Creates a new store in `dir` (created if missing; must not already hold a store: -EEXIST).
 * `vocab_hash` is pl_tok_hash of the vocabulary, `vocab_path` its file (recorded for later
 * ingests; may be NULL). Caps may be NULL for defaults. */
int pl_store_create(const char *dir, const char *vocab_hash, const char *vocab_path,
                    const pl_store_policy_t *policy, const pl_store_caps_t *caps);

#define PL_STORE_RDONLY 0
#define PL_STORE_RDWR 1
/* Opens a store. Runs mdb_reader_check on every env (clears stale readers of dead processes).
 * A writer (PL_STORE_RDWR) takes an exclusive flock on the directory's lock file: a second writer
 * gets -EWOULDBLOCK. Errors: CORE_ENOT_FOUND (no store), CORE_EBAD_VERSION, LMDB errors.
 * `*out` is owned by the caller; pl_store_close frees it. */
int pl_store_open(const char *dir, int mode, pl_store_t **out);
void pl_store_close(pl_store_t *st);

/* Metadata, borrowed for the life of the store. */
const char *pl_store_vocab_hash(const pl_store_t *st);
const char *pl_store_vocab_path(const pl_store_t *st); /* "" when not recorded */
const pl_store_policy_t *pl_store_policy(const pl_store_t *st);
const pl_store_caps_t *pl_store_caps(const pl_store_t *st);
const char *pl_store_dir(const pl_store_t *st);

/* CORE_EMISMATCH (with a logged message naming both hashes) unless `vocab_hash` is the store's. */
int pl_store_check_vocab(const pl_store_t *st, const char *vocab_hash);

/* Counts and the sequence range [first, next) of every record. */
uint64_t pl_store_count(const pl_store_t *st);
uint32_t pl_store_n_shards(const pl_store_t *st);
/* Per shard: file name (borrowed), first seq, next seq, file bytes. CORE_ENOT_FOUND past the end.
 */
int pl_store_shard_info(const pl_store_t *st, uint32_t i, const char **name, uint64_t *first_seq,
                        uint64_t *next_seq, uint64_t *file_bytes);

/* ---- source-file progress (exactly-once) ---- */

typedef enum {
    PL_FILE_PARTIAL = 0, /* interrupted: continue at next_sample */
    PL_FILE_DONE = 1,    /* finished: re-ingest adds nothing */
    PL_FILE_DAMAGED = 2, /* finished, but the archive was damaged at next_sample */
} pl_file_state_t;

typedef struct pl_file_progress_s {
    uint8_t id[PL_STORE_FILE_ID_LEN]; /* identity (see pl_store_file_identity) */
    pl_file_state_t state;
    uint64_t next_sample; /* samples (key groups) consumed and committed */
    uint64_t n_kept, n_rejected;
    uint64_t size;  /* file bytes */
    char name[256]; /* basename when last ingested, NUL-terminated (cut if longer) */
} pl_file_progress_t;

/* The identity of a source file: sha256 over (u64 LE size || first 1 MiB || last 64 KiB). Reading
 * is bounded whatever the file size; renaming a file keeps its identity. Errors: -errno. */
int pl_store_file_identity(const char *path, uint8_t id[PL_STORE_FILE_ID_LEN], uint64_t *size_out);

/* The newest committed progress of file `id`, or CORE_ENOT_FOUND. Writer or reader stores. */
int pl_store_file_progress(pl_store_t *st, const uint8_t id[PL_STORE_FILE_ID_LEN],
                           pl_file_progress_t *out);

/* Calls cb for every file's newest progress (order unspecified). A non-zero cb return stops. */
typedef int (*pl_store_file_cb)(void *ud, const pl_file_progress_t *p);
int pl_store_files(pl_store_t *st, pl_store_file_cb cb, void *ud);

/* ---- commits ---- */

typedef struct pl_store_reject_s {
    uint64_t sample_index; /* group ordinal in the file */
    uint32_t reason;       /* pl_reject_t (pipeline/ingest.h) */
    const char *key;       /* member key (borrowed) */
} pl_store_reject_t;

/* One transaction's worth of work for one source file. Everything borrowed for the call. */
typedef struct pl_store_batch_s {
    const uint8_t *const *recs; /* encoded records (pipeline/record.h) */
    const size_t *rec_lens;
    size_t n_recs;
    const pl_store_reject_t *rejects;
    size_t n_rejects;
    const pl_file_progress_t *progress; /* required: the file's state after this batch */
} pl_store_batch_t;

/* Appends the batch's records under the next sequence numbers, records its rejects (keyed by file
 * id + sample index, so a replay overwrites rather than duplicates) and its progress, all in one
 * transaction. MDB_MAP_FULL grows the map and retries; afterwards the shard is closed and a new one
 * opened if it reached a cap. *first_seq_out (may be NULL) gets the first record's sequence.
 * On any other failure nothing of the batch is stored, the store enters a sticky error state
 * (further commits return CORE_ESTATE; close and reopen to continue) and the error is returned:
 * -ENOSPC/-EFBIG on a full disk. Writer only (CORE_ESTATE on a read-only store). */
int pl_store_commit(pl_store_t *st, const pl_store_batch_t *batch, uint64_t *first_seq_out);

/* Calls cb for every stored reject, newest version of each (file id, sample index). */
typedef int (*pl_store_reject_cb)(void *ud, const char *file_name, uint64_t sample_index,
                                  uint32_t reason, const char *key);
int pl_store_rejects(pl_store_t *st, pl_store_reject_cb cb, void *ud);

/* ---- reads ---- */

/* A reader owns one read transaction per shard it touched; views it returns stay valid until
 * pl_store_reader_reset or _close. Use one reader per thread. */
int pl_store_reader_open(pl_store_t *st, pl_store_reader_t **out);
void pl_store_reader_reset(pl_store_reader_t *rd); /* releases snapshots (views become invalid) */
void pl_store_reader_close(pl_store_reader_t *rd);

/* The encoded record with sequence `seq` (borrowed, see above). CORE_ENOT_FOUND if absent. */
int pl_store_get(pl_store_reader_t *rd, uint64_t seq, const uint8_t **val, size_t *len);

/* The sequence number of the first record (in sequence order) whose member key is key[0..len):
 * an index lookup (FNV-1a of the key -> seqs; the hits' real keys are compared), plus a scan of
 * any records a shard holds from before the index existed. Errors: CORE_ENOT_FOUND, LMDB errors,
 * CORE_ECORRUPT. Thread-safe with other readers. */
int pl_store_find_key(pl_store_t *st, const char *key, size_t len, uint64_t *seq);

/* Calls cb(ud, seq, val, len) for every record in sequence order; the views are valid during the
 * call only. A non-zero cb return stops the walk and is returned. */
typedef int (*pl_store_record_cb)(void *ud, uint64_t seq, const uint8_t *val, size_t len);
int pl_store_foreach(pl_store_t *st, pl_store_record_cb cb, void *ud);

/* ---- content digest ---- */

/* The order-independent content digest of the store: the sum (mod 2^256) of per-record sha256 over
 * the record's content (member key, caption, tokens, label, format, width, height, image bytes; not
 * the source file name, sample index, flags or sequence number), printed as 64 hex digits.
 * `hex` needs 65 bytes. Duplicates change the sum. Errors: decode errors (CORE_ECORRUPT ...). */
int pl_store_digest(pl_store_t *st, char hex[65], uint64_t *n_records);

#endif
