/* Internal pieces of the tokenizer shared between the files of pipeline/tok (never included by a
 * public header). The split: tok_load.c (merges file -> tables), tok_unicode.c (character
 * classes, NFC, Python lower), tok_html.c (Python html.unescape), tok_clean.c (the cleaning
 * chain), tok_pretok.c (the pre-tokenizer), tok_bpe.c (merging), tok_cache.c (the word cache),
 * tok.c (encode / row / label / decode). */
#ifndef PL_TOK_INTERNAL_H
#define PL_TOK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pipeline/tok.h"

#define PL__TOK_NONE UINT32_MAX /* "no merge" rank */
#define PL__TOK_CLIP_MERGES 48894u
#define PL__TOK_MAX_MERGES (1u << 22)
#define PL__TOK_MAX_FILE (64u << 20) /* decompressed merges file */
#define PL__TOK_SHORT_WORD 48 /* words up to this many symbols use the simple O(n^2) merge loop */

typedef struct pl__tok_cache_s pl__tok_cache_t;

typedef struct {
    uint64_t key; /* UINT64_MAX: empty */
    uint32_t rank;
    uint32_t new_id;
} pl__merge_slot_t;

struct pl_tok_s {
    uint32_t n_merges;
    uint32_t vocab_size;
    /* Symbol strings as the merges file spells them (UTF-8 of the byte-to-unicode characters,
     * e.g. "Ġcat</w>"), NUL-terminated, id i at sym_bytes + sym_off[i]. */
    uint32_t *sym_off;
    char *sym_bytes;
    /* The same strings mapped back to bytes (what decode concatenates; "</w>" stays literal). */
    uint32_t *raw_off;
    uint8_t *raw_bytes;
    /* Initial BPE symbols: canonical id of byte b as a non-final / final ("</w>") symbol. */
    uint32_t byte_id[256];
    uint32_t byte_id_w[256];
    /* Merge table, open addressing: key (a << 32 | b) of canonical ids -> rank and result id,
     * one 16-byte slot each so a probe touches one cache line. */
    pl__merge_slot_t *mtab;
    uint64_t mmask;
    /* The same table in 64-byte buckets when every id and rank fits 16 bits (CLIP): eight keys
     * a << 16 | b (UINT32_MAX: empty), then their eight values rank << 16 | result id. A key
     * lives in its hash's bucket or, when that bucket overflowed (bit set in mbovf), in a later
     * one; a lookup compares a whole bucket without a branch per slot, so its cost does not
     * depend on where the key sits (the probe loop's exit was a mispredicted branch per lookup).
     * NULL otherwise. */
    uint32_t *mbk;
    uint64_t *mbovf;
    uint64_t mbmask; /* buckets - 1 */
    /* Smaller tables for a merges file of a trained file's shape (merge i makes id 512 + i, every
     * pair once, ids below 0xffff: CLIP's and sc-tok train's): `trained` is 1 and the short-word
     * BPE looks pairs of two base symbols up in brank ([a << 9 | b]: rank, 0xffff if none) and
     * the others in rtab, 64-byte buckets of ten keys and their 16-bit ranks, so that more of them
     * stays in the CPU caches beside the word cache (tok_bpe.c). NULL / 0 otherwise. */
    int trained;
    uint16_t *brank;
    struct pl__tok_rbucket_s *rtab;
    uint64_t rbuckets;
    unsigned mbshift; /* 64 - log2(buckets): a key's bucket is pl__tok_mbucket */
    char hash[PL_TOK_HASH_HEX];
    pl__tok_cache_t *cache;      /* words up to PL__CACHE_SHORT_KEY bytes; NULL when disabled */
    pl__tok_cache_t *cache_long; /* words up to PL__CACHE_LONG_KEY bytes; NULL when disabled */
};

/* Work counter (merge-table probes, heap steps, entity lookups, code points cleaned) of the
 * calling thread. Tests use it to check that cost grows linearly with the input. */
extern _Thread_local uint64_t pl__tok_work;

/* --- tok_unicode.c --- */
enum {
    PL__CLS_NONE = 0, /* matched by no alternative of the pattern (U+0345 under IGNORECASE) */
    PL__CLS_SPACE = 1,
    PL__CLS_LETTER = 2,
    PL__CLS_NUMBER = 3,
    PL__CLS_OTHER = 4,
};
/* Strict UTF-8 decoding of one code point at s[*i] (advances *i). Returns 0, or -1 for invalid
 * input (overlong, surrogate, > U+10FFFF, truncated). */
int pl__utf8_next(const uint8_t *s, size_t len, size_t *i, uint32_t *cp);
/* The same, inlined for the inner loops. */
static inline int pl__utf8_next_inl(const uint8_t *s, size_t len, size_t *i, uint32_t *cp)
{
    size_t p = *i;
    uint32_t c = s[p];
    if (c < 0x80) {
        *cp = c;
        *i = p + 1;
        return 0;
    }
    if (c >= 0xC2 && c <= 0xDF && len - p > 1 && (s[p + 1] & 0xC0) == 0x80) {
        /* two bytes: Latin accents, Greek, Cyrillic, ... (0xC2 and up: never overlong) */
        *cp = (c & 0x1F) << 6 | (s[p + 1] & 0x3Fu);
        *i = p + 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF && len - p > 2 && (s[p + 1] & 0xC0) == 0x80 &&
        (s[p + 2] & 0xC0) == 0x80) {
        /* three bytes: most non-Latin scripts */
        c = (c & 0x0F) << 12 | (uint32_t)(s[p + 1] & 0x3F) << 6 | (s[p + 2] & 0x3Fu);
        if (c >= 0x800 && (c < 0xD800 || c > 0xDFFF)) {
            *cp = c;
            *i = p + 3;
            return 0;
        }
        return -1;
    }
    return pl__utf8_next(s, len, i, cp);
}
/* Appends the UTF-8 of cp to out (room for 4 bytes); returns the byte count. */
size_t pl__utf8_put(uint8_t *out, uint32_t cp);
int pl__uni_class(uint32_t cp);
/* A byte per BMP code point: its class (low 3 bits) and the flags below, filled by
 * pl__uni_init() (once per process, thread-safe); read it only after that call. */
enum {
    PL__BMP_CLASS = 7,
    PL__BMP_NFC_UNSAFE = 8,  /* !pl__uni_nfc_quick_yes */
    PL__BMP_PYSPACE = 16,    /* pl__uni_is_pyspace */
    PL__BMP_LOWER_SAME = 32, /* str.lower maps it to itself (never U+03A3) */
    PL__BMP_NFC_QC = 64,     /* NFC_Quick_Check No or Maybe (the rest of NFC_UNSAFE: marks) */
};
extern uint8_t pl__uni_bmp[0x10000];
/* The same for plane 1 (U+10000..U+1FFFF: emoji, historic scripts), filled by the same call. */
extern uint8_t pl__uni_smp[0x10000];
void pl__uni_init(void);
/* The table byte of any code point, computed (slowly) from the functions below. */
uint8_t pl__uni_props_of(uint32_t cp);
/* The table byte of cp (after pl__uni_init): planes 0 and 1 from the tables, the rest (CJK
 * extensions, tags, private use) computed. */
static inline uint8_t pl__uni_props(uint32_t cp)
{
    if (cp < 0x10000) {
        return pl__uni_bmp[cp];
    }
    return cp < 0x20000 ? pl__uni_smp[cp - 0x10000] : pl__uni_props_of(cp);
}
extern const uint8_t pl__uni_ascii_class[128]; /* pl__uni_class of ASCII, for inner loops */
int pl__uni_is_pyspace(uint32_t cp); /* Python str.isspace */
/* Python str.lower of one code point other than U+03A3: writes 1..3 code points, returns n. */
int pl__uni_lower(uint32_t cp, uint32_t out[3]);
int pl__uni_is_cased(uint32_t cp);     /* Cased and not Case_Ignorable */
int pl__uni_is_ignorable(uint32_t cp); /* Case_Ignorable */
/* Most code points a str.lower mapping gives (2: U+0130). */
size_t pl__uni_lower_max(void);
/* 1 when cp has combining class 0 and NFC_Quick_Check=Yes for the reference: text made only of
 * such code points is already NFC. */
int pl__uni_nfc_quick_yes(uint32_t cp);
/* Canonical combining class of cp as the reference sees it, for code points that are not
 * nfc_quick_yes (utf8proc's, which only differs on code points the reference does not know). */
int pl__uni_ccc(uint32_t cp);
/* NFC of valid UTF-8 as the reference Python sees it. *out is core_malloc'd. */
int pl__uni_nfc(const uint8_t *s, size_t len, uint32_t **out, size_t *n_out);
/* 0 when the linked utf8proc has the Unicode version the tables were generated against. */
int pl__uni_check_version(void);
const char *pl__uni_utf8proc_version(void);
const char *pl__uni_expected_version(void); /* utf8proc's Unicode when the tables were made */

/* --- tok_clean.c --- */
/* pl_tok_clean, writing into buf (cap bytes) when the result fits, else into a core_malloc'd
 * buffer: the caller frees *out when *out != buf. */
int pl__tok_clean_into(const char *text, size_t len, char *buf, size_t cap, char **out,
                       size_t *out_len);

/* --- tok_fused.c --- */
/* When cleaning `s` needs only str.lower and whitespace collapse (no '&', no NFC change, no
 * U+03A3; valid UTF-8), writes its lowercase, uncollapsed, to out, then PL__TOK_FAST_PAD zero
 * bytes, and returns 1 with *out_len set; otherwise (or when the result would pass `cap` bytes)
 * returns 0 and the caller runs pl__tok_clean_into. `out` has room for cap + PL__TOK_FAST_PAD. */
/* It also writes a class byte for each byte of out, so that splitting the lowercase decodes
 * nothing: 0 for ASCII; at the first byte of a non-ASCII code point its pre-tokeniser class
 * (PL__CLS_*, str.isspace as PL__CLS_SPACE) | its UTF-8 length << 4; and PL__TOK_CLS_LETTER_BYTE
 * on every byte of a non-ASCII letter, so letter runs can be found eight bytes at a time across
 * scripts. cls has room for cap + PL__TOK_FAST_PAD bytes (the padding is zero too). */
int pl__tok_fast_lower(const uint8_t *s, size_t len, uint8_t *out, uint8_t *cls, size_t cap,
                       size_t *out_len);
#define PL__TOK_CLS_LETTER_BYTE 0x80
#define PL__TOK_FAST_PAD 24 /* zero bytes after the text: a short key's three words may read them */

/* --- tok_html.c --- */
/* Python html.unescape over code points. Output is never longer than the input, so `out` needs
 * room for n code points; *n_out gets the count. `out` must not alias `in`. */
void pl__html_unescape(const uint32_t *in, size_t n, uint32_t *out, size_t *n_out);

/* --- tok_bpe.c --- */
/* Merges the n >= 1 initial symbols in `syms` (canonical ids) in place; *n_out gets the final
 * count. mode: PL__TOK_BPE_AUTO, or one implementation forced (tests compare them).
 * Errors: -ENOMEM. */
enum {
    PL__TOK_BPE_AUTO = 0,    /* what encode uses */
    PL__TOK_BPE_HEAP = 1,    /* the O(n log n) rounds at any length: the tests' reference */
    PL__TOK_BPE_GENERAL = 2, /* the short-word loop on the general table (mbk / mtab) */
};
int pl__tok_bpe(const pl_tok_t *tok, uint32_t *syms, size_t n, size_t *n_out, int mode);
#define PL__TOK_RANK16_NONE 0xffffu
typedef struct pl__tok_rbucket_s {
    uint32_t key[10];  /* a << 16 | b; UINT32_MAX: empty */
    uint16_t rank[11]; /* rank[10] = 0xffff: what a lookup that matched no key reads */
    uint16_t overflow; /* 1: a key whose home is this bucket lives in a later one */
} pl__tok_rbucket_t;
_Static_assert(sizeof(pl__tok_rbucket_t) == 64, "one cache line a bucket");
/* Builds tok->brank and tok->rtab and sets tok->trained when the merge table has a trained file's
 * shape (tok_bpe.c). Errors: -ENOMEM. */
int pl__tok_bpe_prepare(pl_tok_t *tok);
/* Slot hash of a merge-table key. */
static inline uint64_t pl__tok_mix(uint64_t k)
{
    k ^= k >> 31;
    k *= 0x9e3779b97f4a7c15ull;
    k ^= k >> 29;
    return k;
}
/* Home bucket of the key a << 16 | b: multiplicative hashing (one multiply, the top bits), as a
 * BPE's lookups depend on each other and the hash is on that path. */
static inline uint64_t pl__tok_mbucket(const pl_tok_t *tok, uint32_t key)
{
    return ((uint64_t)key * 0x9e3779b97f4a7c15ull) >> tok->mbshift;
}
/* Rank and result id of the merge (a, b), or PL__TOK_NONE. */
uint32_t pl__tok_merge_find(const pl_tok_t *tok, uint32_t a, uint32_t b, uint32_t *new_id);
/* The same from the trained tables (tok->trained only; a, b below 0xffff). */
uint32_t pl__tok_merge_find_trained(const pl_tok_t *tok, uint32_t a, uint32_t b, uint32_t *new_id);

/* --- tok_cache.c --- */
/* Two caches per tokenizer: short words in 64-byte entries, longer ones in 256-byte entries.
 * Keys are passed as zero-padded 64-bit words ((klen + 7) / 8 of them). */
#define PL__CACHE_SHORT_KEY 24
#define PL__CACHE_SHORT_IDS 8
#define PL__CACHE_LONG_KEY 88
#define PL__CACHE_LONG_IDS 40
#define PL__CACHE_LONG_SHARE 16 /* the long-word cache has 1/16 of the entries */
/* About max_entries entries (a power of two, at least 256) for keys up to key_max bytes with up
 * to ids_max ids; 0 entries gives *out = NULL (no cache). */
int pl__tok_cache_new(size_t max_entries, size_t key_max, size_t ids_max, pl__tok_cache_t **out);
void pl__tok_cache_free(pl__tok_cache_t *c);
uint64_t pl__tok_hash_bytes(const void *p, size_t n);
/* Hash of a key of up to PL__CACHE_SHORT_KEY bytes given as three zero-padded words: no loop,
 * the three products independent (it runs once per pre-token). */
static inline uint64_t pl__tok_hash_short(const uint64_t kw[3], size_t klen)
{
    uint64_t a = kw[0] * 0x9e3779b97f4a7c15ull, b = kw[1] * 0xff51afd7ed558ccdull;
    uint64_t c = kw[2] * 0xc4ceb9fe1a85ec53ull;
    uint64_t h = a ^ (b << 23 | b >> 41) ^ (c << 47 | c >> 17) ^ (klen * 0xd6e8feb86659fd93ull);
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}
/* Hash of a key given as zero-padded words (the long-word cache's index). */
static inline uint64_t pl__tok_hash_words(const uint64_t *kw, size_t klen)
{
    uint64_t h = 0x9e3779b97f4a7c15ull * (klen + 1);
    for (size_t k = 0; k < (klen + 7) / 8; k++) {
        h = (h ^ kw[k]) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}
/* Alignment for a randomly probed table of `bytes` (2 MiB from 1 MiB up), and the hint that asks
 * for transparent huge pages for it. */
size_t pl__tok_table_align(size_t bytes);
void pl__tok_advise_huge(void *p, size_t bytes);
/* A short word whose result has more than PL__CACHE_SHORT_IDS ids lives in the long-word cache;
 * the short cache then holds this count (and no ids) for it, so that a miss in the short cache
 * is final and costs no second lookup. */
#define PL__CACHE_REDIRECT 255
/* Stores a result (n = PL__CACHE_REDIRECT: the marker, ids unused); keys or results over the
 * limits are ignored. Thread-safe. */
void pl__tok_cache_put(pl__tok_cache_t *c, uint64_t h, const uint64_t *kw, size_t klen,
                       const uint32_t *ids, size_t n);
/* Adds to the hit/miss counters (callers sum them per call). Thread-safe. */
void pl__tok_cache_count(pl__tok_cache_t *c, uint64_t hits, uint64_t misses);
/* Adds this cache's counters to *hits, *misses, *entries. */
void pl__tok_cache_stats(pl__tok_cache_t *c, uint64_t *hits, uint64_t *misses, size_t *entries);
/* Empties the cache and zeroes its counters. Thread-safe (lookups meanwhile may miss). */
void pl__tok_cache_clear(pl__tok_cache_t *c);


/* The cache's layout and its lookups, inline: they run once per pre-token. tok_cache.c has the
 * writers and the layout's description. */
#define PL__CACHE_LOCKS 64
#define PL__CACHE_WAYS 8
struct pl__tok_cache_s {
    _Atomic uint64_t *w;   /* entries, stride/8 words each; huge pages where possible */
    uint8_t *victim;       /* per set: next way to replace (writers only) */
    size_t sets;           /* power of two */
    size_t key_max, ids_max, key_words, stride, words;
    pthread_mutex_t mu[PL__CACHE_LOCKS];
    int n_mu;
    _Atomic uint64_t hits, misses, filled;
};

static inline uint64_t pl__cache_head(uint64_t h, size_t klen)
{
    /* tag and key length: the part of word 0 a lookup must find (the tag is never 0, so an empty
     * entry, word 0 == 0 apart from its sequence, never matches) */
    return (((h >> 20) & 0xffffff) | 1u) << 8 | klen;
}

static inline _Atomic uint64_t *pl__cache_set(const pl__tok_cache_t *c, uint64_t h)
{
    return c->w + ((size_t)h & (c->sets - 1)) * PL__CACHE_WAYS * c->words;
}

/* A key's home way in its set: lookups and stores walk the set from there (wrapping around), so
 * most words sit in the way their hash names and the one line prefetched for them is the right
 * one (with ways filled from way 0, most words of a set with a few entries sat further in). The
 * bits are apart from the set index (low bits) and the tag (bits 20-43). */
static inline unsigned pl__cache_home(uint64_t h)
{
    return (unsigned)(h >> 44) & (PL__CACHE_WAYS - 1);
}

/* Hints the memory of key's set into the CPU cache (no effect on results). */
static inline void pl__tok_cache_prefetch(const pl__tok_cache_t *c, uint64_t h)
{
    /* The home way only: a word usually sits there, and prefetching more lines per word just
     * fills the CPU's miss buffers. */
    __builtin_prefetch((const void *)(pl__cache_set(c, h) + pl__cache_home(h) * c->words));
}

/* Copies the cached ids of key into ids (room for ids_max rounded up to even; on a miss it may
 * have been written to) and returns their count, -2 for a PL__CACHE_REDIRECT entry, or -1 on a
 * miss. Lock-free; thread-safe. */
static inline int pl__tok_cache_get(pl__tok_cache_t *c, uint64_t h, const uint64_t *kw,
                                    size_t klen, uint32_t *ids)
{
    if (klen > c->key_max) {
        return -1;
    }
    uint64_t want = pl__cache_head(h, klen);
    _Atomic uint64_t *set = pl__cache_set(c, h);
    size_t nkw = (klen + 7) / 8;
    for (unsigned j = 0, way = pl__cache_home(h); j < PL__CACHE_WAYS;
         j++, way = (way + 1) & (PL__CACHE_WAYS - 1)) {
        _Atomic uint64_t *e = set + (size_t)way * c->words;
        uint64_t s1 = atomic_load_explicit(&e[0], memory_order_acquire);
        if ((s1 >> 32) == 0) {
            return -1; /* stores take the first empty way from home: the key is not further */
        }
        if ((s1 >> 32) != want || (s1 & 1) != 0) {
            continue;
        }
        uint64_t diff = 0;
        for (size_t k = 0; k < nkw; k++) {
            diff |= atomic_load_explicit(&e[1 + k], memory_order_relaxed) ^ kw[k];
        }
        size_t n = (size_t)(s1 >> 24) & 0xff;
        int redirect = n == PL__CACHE_REDIRECT;
        if (redirect) {
            n = 0;
        }
        if (diff != 0 || n > c->ids_max) {
            continue; /* another key with this tag, or a torn read */
        }
        _Atomic uint64_t *iw = e + 1 + c->key_words;
        for (size_t k = 0; k < (n + 1) / 2; k++) {
            uint64_t v = atomic_load_explicit(&iw[k], memory_order_relaxed);
            memcpy(ids + 2 * k, &v, sizeof v); /* ids has room for an even count */
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e[0], memory_order_relaxed) != s1) {
            continue; /* a writer changed the entry while we read it */
        }
        return redirect ? -2 : (int)n;
    }
    return -1;
}

/* pl__tok_cache_get for the short-word cache (entries of 8 words: head, 3 key words, 8 ids),
 * with the key as three zero-padded words: the key compare and the copy of the ids are fixed-size,
 * so they need no loops. ids has room for PL__CACHE_SHORT_IDS. This form takes the key's set
 * (pl__cache_set), which encode computes when it prefetches the line. */
static inline int pl__tok_cache_get_short_in(_Atomic uint64_t *set, uint64_t h,
                                             const uint64_t kw[3], size_t klen, uint32_t *ids)
{
    uint64_t want = pl__cache_head(h, klen);
    for (unsigned j = 0, way = pl__cache_home(h); j < PL__CACHE_WAYS;
         j++, way = (way + 1) & (PL__CACHE_WAYS - 1)) {
        _Atomic uint64_t *e = set + (size_t)way * 8;
        uint64_t s1 = atomic_load_explicit(&e[0], memory_order_acquire);
        if ((s1 >> 32) == 0) {
            return -1; /* stores take the first empty way from home: the key is not further */
        }
        if ((s1 >> 32) != want || (s1 & 1) != 0) {
            continue;
        }
        uint64_t diff = (atomic_load_explicit(&e[1], memory_order_relaxed) ^ kw[0]) |
                        (atomic_load_explicit(&e[2], memory_order_relaxed) ^ kw[1]) |
                        (atomic_load_explicit(&e[3], memory_order_relaxed) ^ kw[2]);
        if (diff != 0) {
            continue; /* another key with this tag */
        }
        /* four loads and stores, written out: GCC keeps a loop of atomic loads a loop */
        uint64_t v0 = atomic_load_explicit(&e[4], memory_order_relaxed);
        uint64_t v1 = atomic_load_explicit(&e[5], memory_order_relaxed);
        uint64_t v2 = atomic_load_explicit(&e[6], memory_order_relaxed);
        uint64_t v3 = atomic_load_explicit(&e[7], memory_order_relaxed);
        _Static_assert(PL__CACHE_SHORT_IDS == 8, "eight ids: four words");
        memcpy(ids, &v0, 8);
        memcpy(ids + 2, &v1, 8);
        memcpy(ids + 4, &v2, 8);
        memcpy(ids + 6, &v3, 8);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e[0], memory_order_relaxed) != s1) {
            continue; /* a writer changed the entry while we read it */
        }
        size_t n = (size_t)(s1 >> 24) & 0xff;
        return n == PL__CACHE_REDIRECT ? -2 : n > PL__CACHE_SHORT_IDS ? -1 : (int)n;
    }
    return -1;
}
/* The same, finding the set from h. */
static inline int pl__tok_cache_get_short(pl__tok_cache_t *c, uint64_t h, const uint64_t kw[3],
                                          size_t klen, uint32_t *ids)
{
    return pl__tok_cache_get_short_in(c->w + ((size_t)h & (c->sets - 1)) * PL__CACHE_WAYS * 8, h,
                                      kw, klen, ids);
}


#endif
