/* The CLIP BPE tokenizer (spec/superclass.md §1), exact to the reference with Unicode NFC in place
 * of ftfy, and the labels SuperClass derives from it.
 *
 * A pl_tok_t is immutable after loading: every function taking a const pl_tok_t * may be called
 * from any number of threads at once (the internal word cache is bounded and thread-safe).
 * Errors: 0 or a negative code from core/err.h. */
#ifndef PL_TOK_H
#define PL_TOK_H

#include <stddef.h>
#include <stdint.h>

#define PL_TOK_CONTEXT 77 /* the context row length */
#define PL_TOK_HASH_HEX 65
/* First line of a merges file written by sc-tok train, followed by the decimal merge count N
 * (optionally then a space and anything, reserved): "#version: 0.2 sc-tok merges=N". The loader
 * then requires exactly N merge lines and uses them all. docs/TOKENIZER.md has the format. */
#define PL_TOK_SCTOK_HEADER "#version: 0.2 sc-tok merges="
/* Word-cache entries a loaded tokenizer starts with: 65,536 for words up to 24 bytes (64 bytes
 * each) plus 1/16 of that for words up to 88 bytes (256 bytes each): 5 MiB in all. */
#define PL_TOK_CACHE_DEFAULT 65536

typedef struct pl_tok_s pl_tok_t;

/* Loads a merges file: gzip-compressed (bpe_simple_vocab_16e6.txt.gz) or plain text, in the CLIP
 * format (header line, then "a b" merge lines). For the CLIP file exactly 48,894 merges are used
 * (spec §1.2; fewer if the file has fewer lines); a file written by sc-tok train carries its own
 * merge count in its header (PL_TOK_SCTOK_HEADER) and all of its merges are used. Errors: -errno,
 * CORE_ECORRUPT (bad gzip, malformed merge line, unknown symbol, wrong count; the reason goes to
 * core_log), CORE_ETOO_LARGE (over 64 MiB decompressed or 4M merges), -ENOMEM. A warning is
 * logged when utf8proc's Unicode version is not the one the generated tables expect. `*out` is
 * owned by the caller; free with pl_tok_free (NULL is fine). */
int pl_tok_load(const char *path, pl_tok_t **out);
/* The same from bytes in memory (gzip or plain). `data` is only read during the call. */
int pl_tok_load_buffer(const void *data, size_t len, pl_tok_t **out);
void pl_tok_free(pl_tok_t *tok);

uint32_t pl_tok_vocab_size(const pl_tok_t *tok); /* 512 + merges + 2 (49,408 for CLIP) */
uint32_t pl_tok_n_merges(const pl_tok_t *tok);
uint32_t pl_tok_sot(const pl_tok_t *tok); /* vocab_size - 2 (49406 for CLIP) */
uint32_t pl_tok_eot(const pl_tok_t *tok); /* vocab_size - 1 (49407 for CLIP) */
/* The vocabulary's identity: sha256 (lowercase hex, NUL-terminated) of the merges it uses, one
 * "a b\n" line each, in rank order. Borrowed; valid while tok lives. */
const char *pl_tok_hash(const pl_tok_t *tok);

/* Text -> BPE ids of the cleaned text, without SOT/EOT (the reference's encode()). Writes up to
 * `cap` ids and stores the full count in *n_out (like snprintf: call again with a larger buffer
 * when *n_out > cap). NUL bytes in `text` are data (length-delimited). Time is linear in len.
 * Errors: CORE_EBAD_UTF8 for invalid UTF-8 (nothing is written), -ENOMEM. */
int pl_tok_encode(const pl_tok_t *tok, const char *text, size_t len, uint32_t *ids, size_t cap,
                  size_t *n_out);

/* The 77-token context row: SOT, ids, EOT, zero padding; longer texts keep 77 with EOT last.
 * *truncated (may be NULL) is set to 1 when ids were cut. *n_used (may be NULL) gets the number of
 * non-pad positions (2..77). Errors as pl_tok_encode. */
int pl_tok_row(const pl_tok_t *tok, const char *text, size_t len, uint32_t row[PL_TOK_CONTEXT],
               int *truncated, size_t *n_used);

/* The label vector of a row (spec §1.9): its sorted unique ids, including SOT, EOT and 0 when the
 * row is padded. `label` has room for PL_TOK_CONTEXT ids; *n_out gets the count. Pure; no tok. */
void pl_tok_label(const uint32_t row[PL_TOK_CONTEXT], uint32_t label[PL_TOK_CONTEXT],
                  size_t *n_out);

/* Ids -> text as the reference decode(): the symbols' bytes concatenated, decoded as UTF-8 with
 * Python's errors="replace" (each maximal invalid subsequence becomes U+FFFD), every "</w>" turned
 * into a space; unlike the reference, one trailing space is removed, so decoding encode(t) gives
 * the cleaned t. SOT/EOT decode to "<start_of_text>"/"<end_of_text>". Writes up to cap-1 bytes
 * plus NUL (when cap > 0); *len_out gets the full length (call again with more room when
 * *len_out >= cap). Errors: CORE_ENOT_FOUND for an id >= vocab size, -ENOMEM. */
int pl_tok_decode(const pl_tok_t *tok, const uint32_t *ids, size_t n, char *out, size_t cap,
                  size_t *len_out);

/* The string of one vocabulary entry (e.g. "cat</w>"), borrowed, NULL for an unknown id. */
const char *pl_tok_symbol(const pl_tok_t *tok, uint32_t id);

/* --- the word cache (a pure speed-up; results never depend on it) --- */

/* Replaces the cache with an empty one of about max_entries short-word entries (rounded down to a
 * power of two, at least 256) and max_entries/16 long-word entries (at least 256); 0 disables
 * caching. Longer pre-tokens (over 88 bytes) are never cached. Not thread-safe: call before
 * sharing tok. -ENOMEM. */
int pl_tok_set_cache(pl_tok_t *tok, size_t max_entries);
/* Empties the cache and zeroes its counters (a "cold" start for benchmarks). Thread-safe. */
void pl_tok_cache_clear(const pl_tok_t *tok);
/* Lookups that hit / missed since load or the last clear, and entries in use. All 0 without a
 * cache. Thread-safe. */
void pl_tok_cache_stats(const pl_tok_t *tok, uint64_t *hits, uint64_t *misses, size_t *entries);

/* --- the pieces, exposed for sc-tok train and tests --- */

/* Cleaning (spec §1.4 with NFC): NFC, html unescape twice, strip, whitespace collapse, Python
 * str.lower. *out is core_malloc'd (free with core_free), NUL-terminated, *out_len bytes.
 * Errors: CORE_EBAD_UTF8, -ENOMEM. */
int pl_tok_clean(const char *text, size_t len, char **out, size_t *out_len);

/* Pre-tokenisation (spec §1.5) of already-cleaned text: calls cb for every piece in order, with a
 * pointer into `clean`. A non-zero return from cb stops the walk and is returned. Invalid UTF-8
 * stops the walk with CORE_EBAD_UTF8 (pieces before it have been reported). */
typedef int (*pl_tok_piece_cb)(void *ud, const char *piece, size_t len);
int pl_tok_pretokenize(const char *clean, size_t len, pl_tok_piece_cb cb, void *ud);

#endif
