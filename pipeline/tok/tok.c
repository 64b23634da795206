/* The tokenizer's public operations (spec §1.6-§1.9): text -> ids, the 77-token row, the label
 * set, ids -> text, and the word cache controls. Loading lives in tok_load.c. */
#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "tok_internal.h"

#define SMALL_PIECE 256 /* bytes of a pre-token that fit the on-stack symbol buffer */

#define BATCH 32 /* pre-tokens whose cache sets are prefetched together */

#define KEY_WORDS (PL__CACHE_LONG_KEY / 8)

typedef struct {
    const uint8_t *p;
    size_t len;
    uint64_t h;
    uint64_t kw[PL__CACHE_SHORT_KEY / 8]; /* the key, zero-padded, for len <= SHORT_KEY */
    _Atomic uint64_t *set;                /* its short-cache set, for len <= SHORT_KEY */
} piece_t;

typedef struct {
    const pl_tok_t *tok;
    uint32_t *ids;
    size_t cap;
    size_t room; /* ids may be written up to here (>= cap), past cap as scratch */
    size_t n;    /* ids produced so far (may exceed cap) */
    size_t stop; /* stop the walk once n reaches this */
    int padded;  /* pieces may be read 8 bytes at a time past their end (ASCII path buffer) */
    piece_t batch[BATCH];
    size_t nb;
    uint64_t hit_short, hit_long, miss; /* cache counters of this call */
} enc_t;

static inline void emit(enc_t *e, const uint32_t *ids, size_t k)
{
    if (e->n + k <= e->cap) {
        memcpy(e->ids + e->n, ids, k * sizeof *ids);
        e->n += k;
        return;
    }
    for (size_t i = 0; i < k; i++, e->n++) {
        if (e->n < e->cap) {
            e->ids[e->n] = ids[i];
        }
    }
}

static inline void emit1(enc_t *e, uint32_t id)
{
    if (e->n < e->cap) {
        e->ids[e->n] = id;
    }
    e->n++;
}

/* The zero-padded key words of p[0..len) (len <= 8 * KEY_WORDS). With `padded`, p may be read up
 * to the next multiple of 8 bytes. */
static inline void key_words(const uint8_t *p, size_t len, int padded, uint64_t *kw)
{
    size_t nw = (len + 7) / 8;
    if (padded) {
        for (size_t k = 0; k < nw; k++) {
            memcpy(&kw[k], p + 8 * k, 8);
        }
        size_t tail = len & 7;
        if (tail != 0) {
            kw[nw - 1] &= ~(uint64_t)0 >> (64 - 8 * tail); /* little-endian: low bytes first */
        }
    } else {
        if (nw > 0) {
            kw[nw - 1] = 0;
        }
        memcpy(kw, p, len);
    }
}

/* Mask of the bytes of word k (0..2) that belong to a key of len bytes (len <= 24). */
#define KMASK(len, k)                                                                              \
    ((len) >= 8 * (k) + 8 ? ~0ull : (len) <= 8 * (k) ? 0ull : (1ull << (8 * ((len) - 8 * (k)))) - 1)
#define KMASK3(len) {KMASK(len, 0), KMASK(len, 1), KMASK(len, 2)}
static const uint64_t kmask[PL__CACHE_SHORT_KEY + 1][3] = {
    KMASK3(0),  KMASK3(1),  KMASK3(2),  KMASK3(3),  KMASK3(4),  KMASK3(5),  KMASK3(6),
    KMASK3(7),  KMASK3(8),  KMASK3(9),  KMASK3(10), KMASK3(11), KMASK3(12), KMASK3(13),
    KMASK3(14), KMASK3(15), KMASK3(16), KMASK3(17), KMASK3(18), KMASK3(19), KMASK3(20),
    KMASK3(21), KMASK3(22), KMASK3(23), KMASK3(24),
};
#undef KMASK3
#undef KMASK

/* The three zero-padded key words of a short pre-token (len <= PL__CACHE_SHORT_KEY). With
 * `padded`, p may be read 24 bytes on: three masked loads, no branch on the length. */
static inline void short_key(const uint8_t *p, size_t len, int padded, uint64_t kw[3])
{
    if (padded) {
        for (size_t k = 0; k < 3; k++) {
            uint64_t v;
            memcpy(&v, p + 8 * k, 8);
            kw[k] = v & kmask[len][k];
        }
    } else {
        kw[0] = kw[1] = kw[2] = 0;
        memcpy(kw, p, len);
    }
}

/* BPE of one pre-token that missed the cache; stores the result in cache c (may be NULL). */
static int bpe_piece(enc_t *e, const uint8_t *p, size_t len, pl__tok_cache_t *c,
                     const uint64_t *kw, uint64_t h)
{
    const pl_tok_t *tok = e->tok;
    uint32_t small[SMALL_PIECE];
    uint32_t *syms = small;
    if (len > SMALL_PIECE) {
        if (len >= UINT32_MAX / 4) {
            return CORE_ETOO_LARGE;
        }
        syms = core_malloc(len * sizeof *syms);
        if (syms == NULL) {
            return CORE_ERR(ENOMEM);
        }
    }
    /* Bytes -> base symbols, "</w>" on the last one (spec §1.6 steps 1-2). */
    for (size_t i = 0; i + 1 < len; i++) {
        syms[i] = tok->byte_id[p[i]];
    }
    syms[len - 1] = tok->byte_id_w[p[len - 1]];
    size_t n;
    int rc = pl__tok_bpe(tok, syms, len, &n, 0);
    if (rc == 0) {
        emit(e, syms, n);
        if (c != NULL) {
            /* Short words live in the short-word cache unless their result has too many ids (a
             * run of CJK characters, say); those, and longer words, in the long-word cache. */
            if (c == tok->cache && n > PL__CACHE_SHORT_IDS) {
                if (tok->cache_long == NULL) {
                    c = NULL;
                } else {
                    pl__tok_cache_put(c, h, kw, len, NULL, PL__CACHE_REDIRECT);
                    c = tok->cache_long;
                }
            }
            if (c != NULL) {
                pl__tok_cache_put(c, h, kw, len, syms, n);
            }
        }
    }
    if (syms != small) {
        core_free(syms);
    }
    return rc;
}

/* BPE of one pre-token (through the cache); returns 0 or a negative error. `k_short` is what
 * flush's lookup in the short-word cache returned (-1 missed, -2 redirected), or NOT_LOOKED when
 * it did not look. */
#define NOT_LOOKED (-3)
__attribute__((noinline)) static int do_piece(enc_t *e, piece_t *pc, int k_short)
{
    const pl_tok_t *tok = e->tok;
    const uint8_t *p = pc->p;
    size_t len = pc->len;
    /* The reference's cache is seeded with the two special strings, so a pre-token that is exactly
     * one of them (the pattern's first alternative, after lowercasing) is its special id. */
    if (p[0] == '<') {
        if (len == 15 && memcmp(p, "<start_of_text>", 15) == 0) {
            emit1(e, pl_tok_sot(tok));
            return 0;
        }
        if (len == 13 && memcmp(p, "<end_of_text>", 13) == 0) {
            emit1(e, pl_tok_eot(tok));
            return 0;
        }
    }
    if (len > PL__CACHE_LONG_KEY) {
        return bpe_piece(e, p, len, NULL, NULL, 0);
    }
    uint32_t hit[PL__CACHE_LONG_IDS];
    uint64_t kwl[KEY_WORDS];
    const uint64_t *kw = pc->kw;
    if (len > PL__CACHE_SHORT_KEY) {
        key_words(p, len, e->padded, kwl);
        kw = kwl;
    }
    /* Hits go straight to the output when it has room for any result. */
    uint32_t *dst = e->n + PL__CACHE_LONG_IDS <= e->room ? e->ids + e->n : hit;
    int k = -2;
    if (k_short != NOT_LOOKED) {
        k = k_short;
    } else if (len <= PL__CACHE_SHORT_KEY && tok->cache != NULL) {
        k = pl__tok_cache_get_short(tok->cache, pc->h, kw, len, dst);
        e->hit_short += k >= 0;
    }
    /* -2: a long word, or a short one the short cache sends to the long one */
    if (k == -2 && tok->cache_long != NULL) {
        k = pl__tok_cache_get(tok->cache_long, pc->h, kw, len, dst);
        e->hit_long += k >= 0;
    }
    if (k >= 0) {
        if (dst == hit) {
            emit(e, hit, (size_t)k);
        } else {
            e->n += (size_t)k;
        }
        return 0;
    }
    if (tok->cache == NULL && tok->cache_long == NULL) {
        return bpe_piece(e, p, len, NULL, NULL, 0);
    }
    e->miss++;
    pl__tok_cache_t *c = len <= PL__CACHE_SHORT_KEY && tok->cache != NULL ? tok->cache
                                                                          : tok->cache_long;
    return bpe_piece(e, p, len, c, kw, pc->h);
}

/* Runs the batched pre-tokens: first their cache prefetches, so the memory loads of a whole
 * caption overlap, then the lookups. Returns 1 when encoding should stop, or an error. */
static int flush(enc_t *e)
{
    pl__tok_cache_t *c = e->tok->cache;
    size_t nb = e->nb;
    e->nb = 0;
    for (size_t i = 0; i < nb; i++) {
        piece_t *pc = &e->batch[i];
        int k = NOT_LOOKED;
        /* The usual case inline: a word of up to 24 bytes found in the short-word cache, its
         * ids copied straight to the output. Everything else (the special strings, which are
         * never cached, long words, misses) is do_piece's. */
        if (c != NULL && pc->len <= PL__CACHE_SHORT_KEY &&
            e->n + PL__CACHE_SHORT_IDS <= e->room) {
            k = pl__tok_cache_get_short_in(pc->set, pc->h, pc->kw, pc->len, e->ids + e->n);
            if (k >= 0) {
                e->n += (size_t)k;
                e->hit_short++;
            }
        }
        if (k < 0) {
            int rc = do_piece(e, pc, k);
            if (rc < 0) {
                return rc;
            }
        }
        if (e->n >= e->stop) {
            return 1;
        }
    }
    return 0;
}

/* Prefetches every line of the home-way entry of h in cache c (the long cache's entries are four
 * lines: head and key, then the ids). */
static inline void prefetch_entry(const pl__tok_cache_t *c, uint64_t h)
{
    const char *base = (const char *)(pl__cache_set(c, h) + pl__cache_home(h) * c->words);
    for (size_t off = 0; off < c->stride; off += 64) {
        __builtin_prefetch(base + off);
    }
}

/* Queues one pre-token: its key words and hash now, the cache line on its way. */
static inline int add_piece(enc_t *e, const uint8_t *p, size_t len)
{
    piece_t *pc = &e->batch[e->nb++];
    pc->p = p;
    pc->len = len;
    if (len <= PL__CACHE_SHORT_KEY) {
        short_key(p, len, e->padded, pc->kw);
        pc->h = pl__tok_hash_short(pc->kw, len);
        if (e->tok->cache != NULL) {
            /* the set is kept for flush's lookup; its home way's line (eight words an entry in
             * the short cache) is prefetched, as pl__tok_cache_prefetch does */
            pc->set = pl__cache_set(e->tok->cache, pc->h);
            __builtin_prefetch((const void *)(pc->set + pl__cache_home(pc->h) * 8));
        }
        /* A word with more than eight ids (9+ bytes, and in practice not ASCII: CJK or Thai runs,
         * emoji sequences) lives in the long cache: its entry too. */
        if (len > PL__CACHE_SHORT_IDS &&
            ((pc->kw[0] | pc->kw[1] | pc->kw[2]) & 0x8080808080808080ull) != 0 &&
            e->tok->cache_long != NULL) {
            prefetch_entry(e->tok->cache_long, pc->h);
        }
    } else if (len > PL__CACHE_SHORT_KEY && len <= PL__CACHE_LONG_KEY) {
        uint64_t kw[KEY_WORDS];
        key_words(p, len, e->padded, kw);
        pc->h = pl__tok_hash_words(kw, len);
        if (e->tok->cache_long != NULL) {
            prefetch_entry(e->tok->cache_long, pc->h);
        }
    }
    return e->nb == BATCH ? flush(e) : 0;
}

static int piece_cb(void *ud, const char *piece, size_t len)
{
    return add_piece(ud, (const uint8_t *)piece, len);
}

/* --- the fast path: pre-tokenising the lowercase that pl__tok_fast_lower wrote --- */

#define FAST_MAX 4096 /* texts up to this many bytes try the fast path */
/* Room for its lowercase: a mapping at most makes 2 bytes 3 (U+0130 -> "i" U+0307) */
#define FAST_CAP (FAST_MAX / 2 * 3 + 16)

/* Class of a lowercased ASCII byte: Python's str.isspace separators (including U+001C..U+001F,
 * which the full chain turns into spaces), then the pattern's classes. */
static const uint8_t f_cls[128] = {
#define S PL__CLS_SPACE
#define L PL__CLS_LETTER
#define D PL__CLS_NUMBER
#define O PL__CLS_OTHER
    O, O, O, O, O, O, O, O, O, S, S, S, S, S, O, O, /* 0x00 */
    O, O, O, O, O, O, O, O, O, O, O, O, S, S, S, S, /* 0x10 */
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* 0x20 */
    D, D, D, D, D, D, D, D, D, D, O, O, O, O, O, O, /* 0x30 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* 0x40 */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* 0x50 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* 0x60 */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* 0x70 */
#undef S
#undef L
#undef D
#undef O
};

/* Class of the non-ASCII code point at s[*i], advancing *i past it: what pl__tok_fast_lower
 * wrote in cls for it (str.isspace characters count as PL__CLS_SPACE). */
static inline int cp_class(const uint8_t *cls, size_t *i)
{
    uint8_t v = cls[*i];
    *i += (v >> 4) & 7;
    return v & 15;
}

/* Length of the literal `lit` (lowercase ASCII) at s[i] in lowercased text, or 0. Under
 * IGNORECASE the regex module also matches U+017F (long s) for 's' (tok_pretok.c); uppercase
 * cannot occur here. */
static size_t lit_at(const uint8_t *s, size_t len, size_t i, const char *lit)
{
    size_t p = i;
    for (const char *l = lit; *l != '\0'; l++) {
        if (p < len && s[p] == (uint8_t)*l) {
            p++;
        } else if (*l == 's' && len - p >= 2 && s[p] == 0xC5 && s[p + 1] == 0xBF) {
            p += 2;
        } else {
            return 0;
        }
    }
    return p - i;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd) at s[i] == '\'', or 0. */
static inline size_t contraction_at(const uint8_t *s, size_t len, size_t i)
{
    if (len - i < 2) {
        return 0;
    }
    uint8_t d = s[i + 1];
    if (d == 's' || d == 't' || d == 'm' || d == 'd') {
        return 2;
    }
    if (len - i < 3) {
        return 0;
    }
    uint8_t f = s[i + 2];
    if ((d == 'r' && f == 'e') || (d == 'v' && f == 'e') || (d == 'l' && f == 'l') ||
        (d == 0xC5 && f == 0xBF)) {
        return 3;
    }
    return 0;
}

/* End of the letter run that continues at s[i]: ASCII letters from the bytes, other scripts'
 * letters from their class bytes (PL__TOK_CLS_LETTER_BYTE on each of their bytes), eight bytes a
 * step whatever the script, so the loop's exit is the word's end and not every change between
 * ASCII and non-ASCII. The zero padding after the text (bytes and class bytes) ends every run. */
static inline size_t letter_run(const uint8_t *s, const uint8_t *cls, size_t len, size_t i)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (;;) {
        uint64_t w, m;
        memcpy(&w, s + i, 8); /* within the text and its padding (i <= len) */
        memcpy(&m, cls + i, 8);
        /* 'a'..'z' per byte, on the low 7 bits so no sum carries into the next byte */
        uint64_t y = w & ~highs;
        uint64_t ge_a = y + ones * (0x80 - 'a');
        uint64_t gt_z = y + ones * (0x80 - 'z' - 1);
        uint64_t other = ~((ge_a & ~gt_z & ~w) | m) & highs;
        if (other != 0) {
            i += (size_t)__builtin_ctzll(other) >> 3; /* little-endian: first byte lowest */
            return i < len ? i : len;
        }
        i += 8;
    }
}

/* Pre-tokenisation of the lowercase text (what tok_pretok.c does on the cleaned text): every
 * str.isspace character separates, so the uncollapsed text gives the same pieces. At each start
 * the literal alternatives are tried first; letter and "other" runs are greedy, numbers single
 * code points, and a class-less code point (U+0345) is skipped like whitespace. */
static int fast_pieces(enc_t *e, const uint8_t *s, const uint8_t *ocls, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        uint8_t c = s[i];
        int cls;
        if (c < 0x80) {
            cls = f_cls[c];
            i++;
        } else {
            cls = cp_class(ocls, &i);
        }
        if (cls == PL__CLS_SPACE || cls == PL__CLS_NONE) {
            continue;
        }
        size_t m = 0;
        if (c == '\'') {
            m = contraction_at(s, len, start);
        } else if (c == '<') {
            m = lit_at(s, len, start, "<start_of_text>");
            if (m == 0) {
                m = lit_at(s, len, start, "<end_of_text>");
            }
        }
        if (m > 0) {
            i = start + m;
        } else if (cls == PL__CLS_LETTER) {
            i = letter_run(s, ocls, len, i);
        } else if (cls != PL__CLS_NUMBER) {
            while (i < len) {
                uint8_t d = s[i];
                if (d < 0x80) {
                    if (f_cls[d] != cls) {
                        break;
                    }
                    i++;
                } else {
                    size_t q = i;
                    if (cp_class(ocls, &q) != cls) {
                        break;
                    }
                    i = q;
                }
            }
        }
        int rc = add_piece(e, s + start, i - start);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int encode(const pl_tok_t *tok, const char *text, size_t len, enc_t *e)
{
    e->tok = tok;
    e->n = 0;
    e->nb = 0;
    e->hit_short = e->hit_long = e->miss = 0;
    int rc;
    uint8_t low[FAST_CAP + PL__TOK_FAST_PAD];
    uint8_t low_cls[FAST_CAP + PL__TOK_FAST_PAD]; /* pl__tok_fast_lower's class bytes */
    size_t low_len;
    char *clean = NULL;
    char buf[4096]; /* captions up to ~1 KiB clean without allocating */
    if (len <= FAST_MAX &&
        pl__tok_fast_lower((const uint8_t *)text, len, low, low_cls, FAST_CAP, &low_len)) {
        e->padded = 1;
        rc = fast_pieces(e, low, low_cls, low_len);
    } else {
        size_t clen;
        rc = pl__tok_clean_into(text, len, buf, sizeof buf, &clean, &clen);
        if (rc < 0) {
            return rc;
        }
        e->padded = 0;
        rc = clen > 0 ? pl_tok_pretokenize(clean, clen, piece_cb, e) : 0;
    }
    if (rc == 0 && e->nb > 0) {
        rc = flush(e);
    }
    /* One counter update per call, not per word: the counters are shared by all threads. */
    if (tok->cache != NULL) {
        pl__tok_cache_count(tok->cache, e->hit_short, tok->cache_long == NULL ? e->miss : 0);
    }
    if (tok->cache_long != NULL) {
        pl__tok_cache_count(tok->cache_long, e->hit_long, e->miss);
    }
    if (clean != NULL && clean != buf) {
        core_free(clean);
    }
    return rc < 0 ? rc : 0;
}

int pl_tok_encode(const pl_tok_t *tok, const char *text, size_t len, uint32_t *ids, size_t cap,
                  size_t *n_out)
{
    enc_t e; /* no initializer: zeroing the batch costs more than a short caption's encoding */
    e.ids = ids;
    e.cap = cap;
    e.room = ids != NULL ? cap : 0;
    e.stop = SIZE_MAX;
    *n_out = 0;
    int rc = encode(tok, text, len, &e);
    if (rc == 0) {
        *n_out = e.n;
    }
    return rc;
}

int pl_tok_row(const pl_tok_t *tok, const char *text, size_t len, uint32_t row[PL_TOK_CONTEXT],
               int *truncated, size_t *n_used)
{
    /* ids = [SOT] + encode + [EOT]; over 77 keep 77 with EOT last. So at most 75 encoded ids are
     * kept, and one more tells that the text was cut: stop encoding at 76. */
    const size_t keep = PL_TOK_CONTEXT - 2;
    uint32_t buf[PL_TOK_CONTEXT + PL__CACHE_LONG_IDS]; /* slack: cache hits are copied whole */
    enc_t e; /* encode() sets the other fields */
    e.ids = buf;
    e.cap = keep + 1;
    e.room = sizeof buf / sizeof buf[0];
    e.stop = keep + 1;
    int rc = encode(tok, text, len, &e);
    if (rc < 0) {
        return rc;
    }
    size_t k = e.n > keep ? keep : e.n;
    /* Each position written once: the ids, then the padding (not a memset of the whole row
     * first). */
    row[0] = pl_tok_sot(tok);
    memcpy(row + 1, buf, k * sizeof *row);
    row[k + 1] = pl_tok_eot(tok);
    memset(row + k + 2, 0, (PL_TOK_CONTEXT - 2 - k) * sizeof *row);
    if (truncated != NULL) {
        *truncated = e.n > keep;
    }
    if (n_used != NULL) {
        *n_used = k + 2;
    }
    return 0;
}

void pl_tok_label(const uint32_t row[PL_TOK_CONTEXT], uint32_t label[PL_TOK_CONTEXT],
                  size_t *n_out)
{
    uint32_t v[PL_TOK_CONTEXT];
    memcpy(v, row, sizeof v);
    for (size_t i = 1; i < PL_TOK_CONTEXT; i++) {
        uint32_t x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    size_t n = 0;
    for (size_t i = 0; i < PL_TOK_CONTEXT; i++) {
        if (n == 0 || label[n - 1] != v[i]) {
            label[n++] = v[i];
        }
    }
    *n_out = n;
}

/* Python's bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal subpart of an invalid
 * sequence. `out` has room for 3 * len bytes. */
static size_t utf8_replace(const uint8_t *s, size_t len, uint8_t *out)
{
    size_t o = 0, i = 0;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            out[o++] = b;
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            lo = b == 0xE0 ? 0xA0 : 0x80;
            hi = b == 0xED ? 0x9F : 0xBF;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            lo = b == 0xF0 ? 0x90 : 0x80;
            hi = b == 0xF4 ? 0x8F : 0xBF;
        } else {
            need = 0;
        }
        size_t k = 1;
        if (need > 0 && i + 1 < len && s[i + 1] >= lo && s[i + 1] <= hi) {
            k = 2;
            while (k <= need && i + k < len && s[i + k] >= 0x80 && s[i + k] <= 0xBF) {
                k++;
            }
        }
        if (need > 0 && k == need + 1) {
            memcpy(out + o, s + i, k);
            o += k;
        } else {
            out[o++] = 0xEF;
            out[o++] = 0xBF;
            out[o++] = 0xBD;
        }
        i += k;
    }
    return o;
}

int pl_tok_decode(const pl_tok_t *tok, const uint32_t *ids, size_t n, char *out, size_t cap,
                  size_t *len_out)
{
    size_t total = 0;
    *len_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= tok->vocab_size) {
            return CORE_ENOT_FOUND;
        }
        total += tok->raw_off[ids[i] + 1] - tok->raw_off[ids[i]];
    }
    size_t room;
    if (core_size_mul(total, 4, &room) != 0) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *buf = core_malloc(room + 1);
    if (buf == NULL) {
        return CORE_ERR(ENOMEM);
    }
    /* raw bytes in the first quarter, the decoded text after them */
    uint8_t *raw = buf, *txt = buf + total;
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = tok->raw_off[ids[i]], b = tok->raw_off[ids[i] + 1];
        memcpy(raw + r, tok->raw_bytes + a, b - a);
        r += b - a;
    }
    size_t tl = utf8_replace(raw, r, txt);
    /* .replace("</w>", " ") after decoding, like the reference (the marker is ASCII, so doing it
     * on the UTF-8 bytes is the same). */
    size_t o = 0;
    for (size_t i = 0; i < tl;) {
        if (i + 4 <= tl && memcmp(txt + i, "</w>", 4) == 0) {
            txt[o++] = ' ';
            i += 4;
        } else {
            txt[o++] = txt[i++];
        }
    }
    if (o > 0 && txt[o - 1] == ' ') {
        o--;
    }
    if (cap > 0) {
        size_t c = o < cap - 1 ? o : cap - 1;
        memcpy(out, txt, c);
        out[c] = '\0';
    }
    *len_out = o;
    core_free(buf);
    return 0;
}

int pl_tok_set_cache(pl_tok_t *tok, size_t max_entries)
{
    pl__tok_cache_t *c = NULL, *cl = NULL;
    int rc = pl__tok_cache_new(max_entries, PL__CACHE_SHORT_KEY, PL__CACHE_SHORT_IDS, &c);
    if (rc == 0) {
        rc = pl__tok_cache_new(max_entries / PL__CACHE_LONG_SHARE, PL__CACHE_LONG_KEY,
                               PL__CACHE_LONG_IDS, &cl);
    }
    if (rc < 0) {
        pl__tok_cache_free(c);
        return rc;
    }
    pl__tok_cache_free(tok->cache);
    pl__tok_cache_free(tok->cache_long);
    tok->cache = c;
    tok->cache_long = cl;
    return 0;
}

void pl_tok_cache_clear(const pl_tok_t *tok)
{
    if (tok->cache != NULL) {
        pl__tok_cache_clear(tok->cache);
    }
    if (tok->cache_long != NULL) {
        pl__tok_cache_clear(tok->cache_long);
    }
}

void pl_tok_cache_stats(const pl_tok_t *tok, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    *hits = 0;
    *misses = 0;
    *entries = 0;
    if (tok->cache != NULL) {
        pl__tok_cache_stats(tok->cache, hits, misses, entries);
    }
    if (tok->cache_long != NULL) {
        pl__tok_cache_stats(tok->cache_long, hits, misses, entries);
    }
}
