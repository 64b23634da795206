/* Own-vocabulary training (tok_train.h): byte-level BPE learned the way CLIP's merges work.
 *
 * Words are the pre-tokens of the cleaned texts (pl_tok_clean + pl_tok_pretokenize, exactly what
 * the encoder sees), counted by frequency. A word starts as its bytes mapped to the 256 base
 * symbols (spec §1.3), with the last one replaced by its "</w>" twin, so the base vocabulary is the
 * same 512 symbols (and the same ids) as CLIP's. Each step merges the most frequent adjacent pair:
 *
 * - A pair's count is the sum over words of (occurrences in the word) x (word frequency), where
 *   occurrences are counted the way the apply step (§1.6) merges them: left to right and not
 *   overlapping, so a run "a a a" holds one (a, a), not two. Pairs of distinct symbols never
 *   overlap with themselves, so only runs of one symbol need that care.
 * - Ties go to the pair whose (left string, right string) is smallest, comparing the symbols' byte
 *   strings (the mapped UTF-8 text as it appears in the merges file, "</w>" included) with memcmp
 *   order, a shorter prefix first. Distinct pairs never tie on that, so the order of merges is a
 *   function of the word counts alone, independent of hashing or insertion order.
 * - A pair whose concatenation is already a vocabulary string (e.g. "ab"+"c" after "a"+"bc") is
 *   never merged: every vocabulary string stays unique, as in CLIP's file (§1.2).
 * - Training stops after vocab_size - 514 merges, or when the best count is below 2.
 *
 * Updates are incremental: every pair keeps a list of the words that contain (or once contained)
 * it, and a merge revisits only those words, and in each only the stretches around the merged
 * occurrences (word_apply): their pair counts are taken out, the word is rewritten, and the new
 * counts put back. A 100 KiB word of random letters thus trains in under a second, not minutes. The
 * best pair comes from a lazy max-heap: a pair is pushed whenever its count changes, and an entry
 * whose count is no longer the pair's count is dropped when it surfaces. Because each learned merge
 * is applied to every word at the time it is learned, and all lower-ranked merges were applied
 * before it, the words' final segmentation is exactly what the rank-ordered apply step produces for
 * them.
 *
 * Output: the header PL_TOK_SCTOK_HEADER with the merge count ("#version: 0.2 sc-tok merges=N"),
 * then one "left right" line per merge in rank order, each ending in '\n' (tok_load.c reads it). */
#include "pipeline/tok_train.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/err.h"
#include "pipeline/tok.h"
#include "tok_internal.h"

#define N_BASE 512u /* 256 byte symbols + their "</w>" twins */

typedef struct {
    uint32_t *v;
    uint32_t n, cap;
} u32vec_t;

/* A distinct pre-token while counting: bytes in `text` at [off, off+len). */
typedef struct {
    uint64_t hash;
    size_t off;
    uint32_t len;
    uint64_t freq;
} word_t;

typedef struct {
    int64_t count;
    uint32_t pair;
} heap_ent_t;

struct pl_tok_trainer_s {
    /* counting */
    char *text; /* bytes of all distinct words */
    size_t text_len, text_cap;
    word_t *words;
    size_t n_words, words_cap;
    uint32_t *wmap; /* open addressing: word index + 1, 0 = empty */
    size_t wmap_cap;
    uint64_t n_texts;
    int failed; /* sticky: an allocation failed mid-count */
    int trained;

    /* symbols: strings of the vocabulary, 512 base then one per merge */
    char *sym_text;
    size_t sym_text_len, sym_text_cap;
    size_t *sym_off; /* symbol s is sym_text[sym_off[s] .. sym_off[s+1]) */
    size_t n_syms, sym_cap;
    uint32_t *smap; /* string set of symbols: id + 1 */
    size_t smap_cap;

    /* training state */
    uint32_t *seq;     /* all words' symbols, back to back */
    size_t *seq_off;   /* word w's symbols start at seq[seq_off[w]] */
    uint32_t *seq_len; /* and there are seq_len[w] of them (shrinks as merges apply) */
    uint32_t *wstamp;  /* per word: last merge step that visited it */
    uint32_t *pa, *pb; /* pair p = (pa[p], pb[p]) */
    int64_t *pcount;   /* current count */
    int64_t *ppushed;  /* count of the newest heap entry (-1: none) */
    uint8_t *pdead;    /* merged or refused: never a candidate again */
    uint32_t *pstamp;  /* per pair: last merge step that touched its count */
    u32vec_t *pwords;  /* words containing the pair (may hold stale entries) */
    size_t n_pairs, pairs_cap;
    uint32_t *pmap; /* (a, b) -> pair index + 1 */
    size_t pmap_cap;
    heap_ent_t *heap;
    size_t heap_n, heap_cap;
    uint32_t *touched; /* pairs whose count changed during the current merge */
    size_t touched_n, touched_cap;
    uint32_t *win; /* scratch for word_apply: windows as (lo, hi) symbol positions */
    size_t win_cap;

    uint32_t *merges; /* learned merges: left, right symbol ids */
    uint32_t n_merges;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n)
{
    /* FNV-1a, then a final mix so the low bits used for the table index are well spread. */
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static uint64_t hash_pair(uint32_t a, uint32_t b)
{
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
}

/* Grows *p (of `elem`-byte items) to hold at least `need` items. */
static int grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        nc *= 2;
    }
    size_t bytes;
    if (core_size_mul(nc, elem, &bytes) < 0) {
        return CORE_ETOO_LARGE;
    }
    void *q = core_realloc(*(void **)p, bytes);
    if (!q) {
        return CORE_ERR(ENOMEM);
    }
    *(void **)p = q;
    *cap = nc;
    return 0;
}

static int vec_push(u32vec_t *v, uint32_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap;
        int rc = grow(&v->v, &cap, (size_t)v->n + 1, sizeof(uint32_t));
        if (rc < 0) {
            return rc;
        }
        if (cap > UINT32_MAX) {
            return CORE_ETOO_LARGE;
        }
        v->cap = (uint32_t)cap;
    }
    v->v[v->n++] = x;
    return 0;
}

/* ---- counting words ----------------------------------------------------------------------- */

static int wmap_rehash(pl_tok_trainer_t *t, size_t cap)
{
    uint32_t *m = core_calloc(cap, sizeof(uint32_t));
    if (!m) {
        return CORE_ERR(ENOMEM);
    }
    for (size_t w = 0; w < t->n_words; w++) {
        size_t i = (size_t)t->words[w].hash & (cap - 1);
        while (m[i]) {
            i = (i + 1) & (cap - 1);
        }
        m[i] = (uint32_t)(w + 1);
    }
    core_free(t->wmap);
    t->wmap = m;
    t->wmap_cap = cap;
    return 0;
}

static int count_piece(void *ud, const char *piece, size_t len)
{
    pl_tok_trainer_t *t = ud;
    /* The special-token texts are encoded as SOT/EOT, never through BPE: not words. */
    if ((len == 15 && memcmp(piece, "<start_of_text>", 15) == 0) ||
        (len == 13 && memcmp(piece, "<end_of_text>", 13) == 0)) {
        return 0;
    }
    if (len == 0) {
        return 0;
    }
    if (len > UINT32_MAX) {
        return CORE_ETOO_LARGE;
    }
    uint64_t h = hash_bytes(piece, len);
    size_t i = (size_t)h & (t->wmap_cap - 1);
    for (uint32_t e; (e = t->wmap[i]) != 0; i = (i + 1) & (t->wmap_cap - 1)) {
        word_t *w = &t->words[e - 1];
        if (w->hash == h && w->len == len && memcmp(t->text + w->off, piece, len) == 0) {
            w->freq++;
            return 0;
        }
    }
    if (t->n_words >= UINT32_MAX - 1) {
        return CORE_ETOO_LARGE;
    }
    int rc = grow(&t->text, &t->text_cap, t->text_len + len, 1);
    if (rc == 0) {
        rc = grow(&t->words, &t->words_cap, t->n_words + 1, sizeof(word_t));
    }
    if (rc < 0) {
        return rc;
    }
    memcpy(t->text + t->text_len, piece, len);
    t->words[t->n_words] = (word_t){.hash = h, .off = t->text_len, .len = (uint32_t)len, .freq = 1};
    t->text_len += len;
    t->wmap[i] = (uint32_t)(++t->n_words);
    if (t->n_words * 2 > t->wmap_cap) {
        return wmap_rehash(t, t->wmap_cap * 2);
    }
    return 0;
}

int pl_tok_trainer_new(pl_tok_trainer_t **out)
{
    *out = NULL;
    pl_tok_trainer_t *t = core_calloc(1, sizeof(*t));
    if (!t) {
        return CORE_ERR(ENOMEM);
    }
    if (wmap_rehash(t, 1024) < 0) {
        core_free(t);
        return CORE_ERR(ENOMEM);
    }
    *out = t;
    return 0;
}

static void free_training(pl_tok_trainer_t *t)
{
    for (size_t p = 0; p < t->n_pairs; p++) {
        core_free(t->pwords[p].v);
    }
    core_free(t->seq);
    core_free(t->seq_off);
    core_free(t->seq_len);
    core_free(t->wstamp);
    core_free(t->pa);
    core_free(t->pb);
    core_free(t->pcount);
    core_free(t->ppushed);
    core_free(t->pdead);
    core_free(t->pstamp);
    core_free(t->pwords);
    core_free(t->pmap);
    core_free(t->heap);
    core_free(t->touched);
    core_free(t->win);
    t->win = NULL;
    t->win_cap = 0;
    t->seq = NULL;
    t->seq_off = NULL;
    t->seq_len = NULL;
    t->wstamp = NULL;
    t->pa = t->pb = NULL;
    t->pcount = t->ppushed = NULL;
    t->pdead = NULL;
    t->pstamp = NULL;
    t->pwords = NULL;
    t->pmap = NULL;
    t->heap = NULL;
    t->touched = NULL;
    t->n_pairs = t->pairs_cap = t->pmap_cap = t->heap_n = t->heap_cap = 0;
    t->touched_n = t->touched_cap = 0;
}

void pl_tok_trainer_free(pl_tok_trainer_t *t)
{
    if (!t) {
        return;
    }
    free_training(t);
    core_free(t->text);
    core_free(t->words);
    core_free(t->wmap);
    core_free(t->sym_text);
    core_free(t->sym_off);
    core_free(t->smap);
    core_free(t->merges);
    core_free(t);
}

int pl_tok_trainer_add_text(pl_tok_trainer_t *t, const char *text, size_t len)
{
    if (t->failed || t->trained) {
        return CORE_ESTATE;
    }
    char *clean = NULL;
    size_t clen = 0;
    int rc = pl_tok_clean(text, len, &clean, &clen);
    if (rc < 0) {
        /* Invalid UTF-8 (or no memory) leaves the counts untouched: not sticky. */
        return rc;
    }
    rc = pl_tok_pretokenize(clean, clen, count_piece, t);
    core_free(clean);
    if (rc < 0) {
        /* Some of this text's words may have been counted: the counts are no longer a function
         * of whole texts, so the trainer refuses to go on. */
        t->failed = 1;
        return rc;
    }
    t->n_texts++;
    return 0;
}

uint64_t pl_tok_trainer_texts(const pl_tok_trainer_t *t)
{
    return t->n_texts;
}

uint64_t pl_tok_trainer_words(const pl_tok_trainer_t *t)
{
    return t->n_words;
}

/* ---- symbols ------------------------------------------------------------------------------ */

static size_t sym_len(const pl_tok_trainer_t *t, uint32_t s)
{
    return t->sym_off[s + 1] - t->sym_off[s];
}

static const char *sym_str(const pl_tok_trainer_t *t, uint32_t s)
{
    return t->sym_text + t->sym_off[s];
}

static int smap_find(const pl_tok_trainer_t *t, const char *s, size_t n, size_t *slot)
{
    size_t i = (size_t)hash_bytes(s, n) & (t->smap_cap - 1);
    for (uint32_t e; (e = t->smap[i]) != 0; i = (i + 1) & (t->smap_cap - 1)) {
        if (sym_len(t, e - 1) == n && memcmp(sym_str(t, e - 1), s, n) == 0) {
            *slot = i;
            return 1;
        }
    }
    *slot = i;
    return 0;
}

static int smap_rehash(pl_tok_trainer_t *t, size_t cap)
{
    uint32_t *old = t->smap;
    t->smap = core_calloc(cap, sizeof(uint32_t));
    if (!t->smap) {
        t->smap = old;
        return CORE_ERR(ENOMEM);
    }
    t->smap_cap = cap;
    core_free(old);
    for (uint32_t s = 0; s < t->n_syms; s++) {
        size_t slot;
        (void)smap_find(t, sym_str(t, s), sym_len(t, s), &slot);
        t->smap[slot] = s + 1;
    }
    return 0;
}

/* Appends a symbol to the vocabulary: the string s (n bytes) followed by s2 (n2 bytes), or, when
 * s is NULL, the concatenation of symbols n and n2 (ids). Ids rather than pointers for a merge,
 * because growing sym_text moves the strings they would point into. */
static int sym_add(pl_tok_trainer_t *t, const char *s, size_t n, const char *s2, size_t n2)
{
    uint32_t ia = 0, ib = 0;
    if (s == NULL) {
        ia = (uint32_t)n;
        ib = (uint32_t)n2;
        n = sym_len(t, ia);
        n2 = sym_len(t, ib);
    }
    int rc = grow(&t->sym_text, &t->sym_text_cap, t->sym_text_len + n + n2, 1);
    if (rc == 0) {
        rc = grow(&t->sym_off, &t->sym_cap, t->n_syms + 2, sizeof(size_t));
    }
    if (rc < 0) {
        return rc;
    }
    if (s == NULL) {
        s = sym_str(t, ia);
        s2 = sym_str(t, ib);
    }
    memcpy(t->sym_text + t->sym_text_len, s, n); /* sources lie below sym_text_len */
    if (n2) {
        memcpy(t->sym_text + t->sym_text_len + n, s2, n2);
    }
    t->sym_text_len += n + n2;
    t->sym_off[t->n_syms + 1] = t->sym_text_len;
    t->n_syms++;
    if (t->n_syms * 2 > t->smap_cap) {
        return smap_rehash(t, t->smap_cap ? t->smap_cap * 2 : 2048);
    }
    size_t slot;
    (void)smap_find(t, sym_str(t, (uint32_t)t->n_syms - 1), n + n2, &slot);
    t->smap[slot] = (uint32_t)t->n_syms;
    return 0;
}

/* The 512 base symbols in CLIP's id order (spec §1.3); byte_id[b] is byte b's id. */
static int base_symbols(pl_tok_trainer_t *t, uint32_t byte_id[256])
{
    uint32_t cps[256];
    uint32_t n = 0;
    for (uint32_t b = 0; b < 256; b++) {
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) {
            byte_id[b] = n;
            cps[n++] = b;
        }
    }
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; b++) {
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
            byte_id[b] = n;
            cps[n++] = 256 + extra++;
        }
    }
    t->sym_off = core_malloc(2 * sizeof(size_t));
    if (!t->sym_off) {
        return CORE_ERR(ENOMEM);
    }
    t->sym_cap = 2;
    t->sym_off[0] = 0;
    for (int eow = 0; eow < 2; eow++) {
        for (uint32_t i = 0; i < 256; i++) {
            /* Every mapped code point is below U+0800: one or two UTF-8 bytes. */
            char u[2];
            size_t ul;
            if (cps[i] < 0x80) {
                u[0] = (char)cps[i];
                ul = 1;
            } else {
                u[0] = (char)(0xC0 | (cps[i] >> 6));
                u[1] = (char)(0x80 | (cps[i] & 0x3F));
                ul = 2;
            }
            int rc = sym_add(t, u, ul, "</w>", eow ? 4 : 0);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* ---- pairs -------------------------------------------------------------------------------- */

static int pmap_rehash(pl_tok_trainer_t *t, size_t cap)
{
    uint32_t *m = core_calloc(cap, sizeof(uint32_t));
    if (!m) {
        return CORE_ERR(ENOMEM);
    }
    for (size_t p = 0; p < t->n_pairs; p++) {
        size_t i = (size_t)hash_pair(t->pa[p], t->pb[p]) & (cap - 1);
        while (m[i]) {
            i = (i + 1) & (cap - 1);
        }
        m[i] = (uint32_t)(p + 1);
    }
    core_free(t->pmap);
    t->pmap = m;
    t->pmap_cap = cap;
    return 0;
}

/* The index of pair (a, b), created (count 0) when new. */
static int pair_get(pl_tok_trainer_t *t, uint32_t a, uint32_t b, uint32_t *out)
{
    size_t i = (size_t)hash_pair(a, b) & (t->pmap_cap - 1);
    for (uint32_t e; (e = t->pmap[i]) != 0; i = (i + 1) & (t->pmap_cap - 1)) {
        if (t->pa[e - 1] == a && t->pb[e - 1] == b) {
            *out = e - 1;
            return 0;
        }
    }
    size_t p = t->n_pairs;
    if (p >= UINT32_MAX - 1) {
        return CORE_ETOO_LARGE;
    }
    if (p + 1 > t->pairs_cap) {
        size_t nc = t->pairs_cap ? t->pairs_cap * 2 : 4096;
        size_t c;
#define GROW_ARR(arr, T)                                                                           \
    c = t->pairs_cap;                                                                              \
    if (grow(&t->arr, &c, nc, sizeof(T)) < 0) {                                                    \
        return CORE_ERR(ENOMEM);                                                                   \
    }
        GROW_ARR(pa, uint32_t)
        GROW_ARR(pb, uint32_t)
        GROW_ARR(pcount, int64_t)
        GROW_ARR(ppushed, int64_t)
        GROW_ARR(pdead, uint8_t)
        GROW_ARR(pstamp, uint32_t)
        GROW_ARR(pwords, u32vec_t)
#undef GROW_ARR
        t->pairs_cap = nc;
    }
    t->pa[p] = a;
    t->pb[p] = b;
    t->pcount[p] = 0;
    t->ppushed[p] = -1;
    t->pdead[p] = 0;
    t->pstamp[p] = 0;
    t->pwords[p] = (u32vec_t){0};
    t->pmap[i] = (uint32_t)(p + 1);
    t->n_pairs++;
    *out = (uint32_t)p;
    if (t->n_pairs * 2 > t->pmap_cap) {
        return pmap_rehash(t, t->pmap_cap * 2);
    }
    return 0;
}

/* Adds delta (+-freq) for every pair occurrence of word w at positions from..to (pair i is
 * (s[i], s[i+1])), non-overlapping within runs of one symbol as the apply step merges them. With
 * `index`, also records w in each pair's word list. `step` marks touched pairs for the heap
 * refresh. */
static int word_pairs(pl_tok_trainer_t *t, uint32_t w, uint32_t from, uint32_t to, int64_t delta,
                      int index, uint32_t step)
{
    const uint32_t *s = t->seq + t->seq_off[w];
    uint32_t n = t->seq_len[w];
    /* Callers start at 0 or just before a run boundary (s[from] != s[from + 1]), so the pair at
     * `from` never needs the run parity and run_start is exact from from + 1 on. */
    uint32_t run_start = from;
    for (uint32_t i = from; i <= to && i + 1 < n; i++) {
        if (i > from && s[i] != s[i - 1]) {
            run_start = i;
        }
        if (s[i] == s[i + 1] && ((i - run_start) & 1u)) {
            continue; /* the previous position already took this symbol into an (x, x) pair */
        }
        uint32_t p;
        int rc = pair_get(t, s[i], s[i + 1], &p);
        if (rc < 0) {
            return rc;
        }
        t->pcount[p] += delta;
        if (index) {
            u32vec_t *v = &t->pwords[p];
            if (v->n == 0 || v->v[v->n - 1] != w) {
                rc = vec_push(v, w);
                if (rc < 0) {
                    return rc;
                }
            }
        }
        if (t->pstamp[p] != step) {
            t->pstamp[p] = step;
            rc = grow(&t->touched, &t->touched_cap, t->touched_n + 1, sizeof(uint32_t));
            if (rc < 0) {
                return rc;
            }
            t->touched[t->touched_n++] = p;
        }
    }
    return 0;
}

/* ---- heap --------------------------------------------------------------------------------- */

static int bytes_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

/* Does heap entry x come before y: higher count, then smaller (left, right) strings. */
static int ent_before(const pl_tok_trainer_t *t, const heap_ent_t *x, const heap_ent_t *y)
{
    if (x->count != y->count) {
        return x->count > y->count;
    }
    uint32_t a1 = t->pa[x->pair], a2 = t->pa[y->pair];
    int c = bytes_cmp(sym_str(t, a1), sym_len(t, a1), sym_str(t, a2), sym_len(t, a2));
    if (c == 0) {
        uint32_t b1 = t->pb[x->pair], b2 = t->pb[y->pair];
        c = bytes_cmp(sym_str(t, b1), sym_len(t, b1), sym_str(t, b2), sym_len(t, b2));
    }
    return c < 0;
}

static int heap_push(pl_tok_trainer_t *t, uint32_t p)
{
    int rc = grow(&t->heap, &t->heap_cap, t->heap_n + 1, sizeof(heap_ent_t));
    if (rc < 0) {
        return rc;
    }
    heap_ent_t e = {.count = t->pcount[p], .pair = p};
    size_t i = t->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!ent_before(t, &e, &t->heap[up])) {
            break;
        }
        t->heap[i] = t->heap[up];
        i = up;
    }
    t->heap[i] = e;
    t->ppushed[p] = e.count;
    return 0;
}

static heap_ent_t heap_pop(pl_tok_trainer_t *t)
{
    heap_ent_t top = t->heap[0];
    heap_ent_t e = t->heap[--t->heap_n];
    size_t i = 0, n = t->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && ent_before(t, &t->heap[c + 1], &t->heap[c])) {
            c++;
        }
        if (!ent_before(t, &t->heap[c], &e)) {
            break;
        }
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) {
        t->heap[i] = e;
    }
    return top;
}

/* Pushes every touched pair whose count differs from its newest heap entry. */
static int heap_refresh(pl_tok_trainer_t *t)
{
    for (size_t k = 0; k < t->touched_n; k++) {
        uint32_t p = t->touched[k];
        if (!t->pdead[p] && t->pcount[p] >= 2 && t->pcount[p] != t->ppushed[p]) {
            int rc = heap_push(t, p);
            if (rc < 0) {
                return rc;
            }
        }
    }
    t->touched_n = 0;
    return 0;
}

/* ---- training ----------------------------------------------------------------------------- */

static int build_words(pl_tok_trainer_t *t)
{
    uint32_t byte_id[256];
    int rc = base_symbols(t, byte_id);
    if (rc < 0) {
        return rc;
    }
    size_t nw = t->n_words ? t->n_words : 1;
    t->seq = core_malloc((t->text_len ? t->text_len : 1) * sizeof(uint32_t));
    t->seq_off = core_malloc(nw * sizeof(size_t));
    t->seq_len = core_malloc(nw * sizeof(uint32_t));
    t->wstamp = core_calloc(nw, sizeof(uint32_t));
    if (!t->seq || !t->seq_off || !t->seq_len || !t->wstamp || pmap_rehash(t, 8192) < 0) {
        return CORE_ERR(ENOMEM);
    }
    /* Words' bytes are back to back in t->text in word order, so offsets carry over. */
    for (uint32_t w = 0; w < t->n_words; w++) {
        const word_t *wd = &t->words[w];
        const unsigned char *src = (const unsigned char *)t->text + wd->off;
        uint32_t *dst = t->seq + wd->off;
        for (uint32_t i = 0; i < wd->len; i++) {
            dst[i] = byte_id[src[i]];
        }
        dst[wd->len - 1] += 256; /* the "</w>" twin */
        t->seq_off[w] = wd->off;
        t->seq_len[w] = wd->len;
        rc = word_pairs(t, w, 0, UINT32_MAX, (int64_t)wd->freq, 1, 1);
        if (rc < 0) {
            return rc;
        }
    }
    return heap_refresh(t);
}

/* Merges (a, b) -> c in word w, updating the pair counts only around the occurrences, so a long
 * word costs a linear scan per merge rather than a hash update per symbol.
 *
 * A pair's count in a word is the number of adjacent (x, y), x != y, plus floor(L / 2) for every
 * maximal run of L symbols x. A merge changes the symbols at its occurrences only, so the runs it
 * can change are those holding an occurrence or touching one. Each occurrence at i gets a window
 * from the run containing i - 1 to the run containing i + 2; overlapping or touching windows are
 * joined. A window starts and ends on run boundaries, and those boundaries stay boundaries after
 * the merge (the symbols beyond a window are unchanged, and c is a new symbol, so it equals
 * none of them). The word's count is therefore the sum, over windows, of the pairs from the one
 * entering the window to the one leaving it, plus pairs that no window touches: only the former
 * are taken out before the rewrite and put back after it. A word that no longer holds the pair
 * (a stale list entry) is left as it is. */
static int word_apply(pl_tok_trainer_t *t, uint32_t w, uint32_t a, uint32_t b, uint32_t c,
                      uint32_t step)
{
    uint32_t *s = t->seq + t->seq_off[w];
    uint32_t n = t->seq_len[w];
    size_t nwin = 0;
    for (uint32_t i = 0; i + 1 < n;) {
        if (s[i] != a || s[i + 1] != b) {
            i++;
            continue;
        }
        uint32_t lo = i > 0 ? i - 1 : 0, hi = i + 2 < n ? i + 2 : i + 1;
        while (lo > 0 && s[lo - 1] == s[lo]) {
            lo--;
        }
        while (hi + 1 < n && s[hi + 1] == s[hi]) {
            hi++;
        }
        if (nwin > 0 && lo <= t->win[2 * nwin - 1] + 1) {
            t->win[2 * nwin - 1] = hi > t->win[2 * nwin - 1] ? hi : t->win[2 * nwin - 1];
        } else {
            int rc = grow(&t->win, &t->win_cap, 2 * nwin + 2, sizeof(uint32_t));
            if (rc < 0) {
                return rc;
            }
            t->win[2 * nwin] = lo;
            t->win[2 * nwin + 1] = hi;
            nwin++;
        }
        i += 2;
    }
    if (nwin == 0) {
        return 0;
    }
    int64_t f = (int64_t)t->words[w].freq;
    for (size_t k = 0; k < nwin; k++) {
        uint32_t lo = t->win[2 * k], hi = t->win[2 * k + 1];
        int rc = word_pairs(t, w, lo > 0 ? lo - 1 : 0, hi, -f, 0, step);
        if (rc < 0) {
            return rc;
        }
    }
    /* Rewrite left to right, every non-overlapping (a, b) becoming c, and move each window to
     * its new coordinates. Occurrences lie inside windows, so a window's ends map exactly. */
    uint32_t j = 0;
    size_t k = 0;
    for (uint32_t i = 0; i < n;) {
        int at_lo = k < nwin && i == t->win[2 * k];
        uint32_t first = j;
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            s[j++] = c;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
        if (at_lo) {
            t->win[2 * k] = first;
        }
        if (k < nwin && i > t->win[2 * k + 1]) {
            t->win[2 * k + 1] = j - 1;
            k++;
        }
    }
    t->seq_len[w] = j;
    for (k = 0; k < nwin; k++) {
        uint32_t lo = t->win[2 * k], hi = t->win[2 * k + 1];
        int rc = word_pairs(t, w, lo > 0 ? lo - 1 : 0, hi, f, 1, step);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Applies merge (a, b) -> c to every word holding the pair, keeping counts and lists exact. */
static int apply_merge(pl_tok_trainer_t *t, uint32_t p, uint32_t c, uint32_t step)
{
    uint32_t a = t->pa[p], b = t->pb[p];
    /* The list is re-read through t->pwords on every iteration: word_pairs may create pairs and
     * so move the pwords array. It never appends to this pair's own list, because a rewritten
     * word no longer holds (a, b). */
    for (uint32_t k = 0; k < t->pwords[p].n; k++) {
        uint32_t w = t->pwords[p].v[k];
        if (t->wstamp[w] == step) {
            continue; /* a duplicate entry */
        }
        t->wstamp[w] = step;
        int rc = word_apply(t, w, a, b, c, step);
        if (rc < 0) {
            return rc;
        }
    }
    return heap_refresh(t);
}

int pl_tok_trainer_train(pl_tok_trainer_t *t, uint32_t vocab_size, uint32_t *n_merges,
                         pl_tok_train_progress_cb cb, void *ud)
{
    int rc = 0;
    *n_merges = 0;
    /* The loader refuses files with more than PL__TOK_MAX_MERGES merges: never write one. */
    if (vocab_size < N_BASE + 2 || vocab_size - N_BASE - 2 > PL__TOK_MAX_MERGES) {
        return CORE_ECONFIG;
    }
    if (t->failed || t->trained) {
        return CORE_ESTATE;
    }
    uint32_t target = vocab_size - N_BASE - 2;
    CORE_TRY(build_words(t));
    size_t merges_cap = 0;
    uint32_t step = 1;
    while (t->n_merges < target && t->heap_n > 0) {
        heap_ent_t top = heap_pop(t);
        uint32_t p = top.pair;
        if (t->pdead[p] || top.count != t->pcount[p]) {
            continue; /* stale: a newer entry carries the pair's current count */
        }
        if (top.count < 2) {
            break;
        }
        uint32_t a = t->pa[p], b = t->pb[p];
        size_t slot;
        /* Merged or refused, the pair is never a candidate again. */
        t->pdead[p] = 1;
        /* The concatenation must not repeat a vocabulary string (file-format uniqueness). */
        {
            size_t la = sym_len(t, a), lb = sym_len(t, b);
            char tmp[256];
            char *cat = la + lb <= sizeof(tmp) ? tmp : core_malloc(la + lb);
            CORE_FAIL_IF(!cat, CORE_ERR(ENOMEM));
            memcpy(cat, sym_str(t, a), la);
            memcpy(cat + la, sym_str(t, b), lb);
            int dup = smap_find(t, cat, la + lb, &slot);
            if (cat != tmp) {
                core_free(cat);
            }
            if (dup) {
                continue;
            }
        }
        uint32_t c = (uint32_t)t->n_syms;
        CORE_TRY(sym_add(t, NULL, a, NULL, b));
        step++;
        CORE_TRY(apply_merge(t, p, c, step));
        CORE_TRY(grow(&t->merges, &merges_cap, 2 * ((size_t)t->n_merges + 1), sizeof(uint32_t)));
        t->merges[2 * t->n_merges] = a;
        t->merges[2 * t->n_merges + 1] = b;
        t->n_merges++;
        if (cb && t->n_merges % 64 == 0) {
            cb(ud, t->n_merges, target);
        }
    }
    if (cb) {
        cb(ud, t->n_merges, target);
    }
    t->trained = 1;
    *n_merges = t->n_merges;
    free_training(t);
    return 0;
fail:
    t->failed = 1;
    free_training(t);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

int pl_tok_trainer_write(const pl_tok_trainer_t *t, const char *path)
{
    if (!t->trained) {
        return CORE_ESTATE;
    }
    /* The whole file in memory first: a few hundred KiB even for large vocabularies. */
    size_t cap = 64;
    for (uint32_t m = 0; m < t->n_merges; m++) {
        cap += sym_len(t, t->merges[2 * m]) + sym_len(t, t->merges[2 * m + 1]) + 2;
    }
    char *buf = core_malloc(cap);
    if (!buf) {
        return CORE_ERR(ENOMEM);
    }
    int hl = snprintf(buf, cap, PL_TOK_SCTOK_HEADER "%u\n", t->n_merges);
    size_t n = (size_t)hl;
    for (uint32_t m = 0; m < t->n_merges; m++) {
        uint32_t a = t->merges[2 * m], b = t->merges[2 * m + 1];
        memcpy(buf + n, sym_str(t, a), sym_len(t, a));
        n += sym_len(t, a);
        buf[n++] = ' ';
        memcpy(buf + n, sym_str(t, b), sym_len(t, b));
        n += sym_len(t, b);
        buf[n++] = '\n';
    }

    int rc = 0;
    if (ends_with(path, ".gz")) {
        gzFile gz = gzopen(path, "wb9");
        if (!gz) {
            rc = CORE_ERR(errno ? errno : ENOMEM);
        } else {
            size_t done = 0;
            while (rc == 0 && done < n) {
                unsigned chunk = n - done > (1u << 30) ? (1u << 30) : (unsigned)(n - done);
                int w = gzwrite(gz, buf + done, chunk);
                if (w <= 0) {
                    rc = CORE_ERR(EIO);
                } else {
                    done += (size_t)w;
                }
            }
            if (gzclose(gz) != Z_OK && rc == 0) {
                rc = CORE_ERR(EIO);
            }
        }
    } else {
        FILE *f = fopen(path, "wb");
        if (!f) {
            rc = CORE_ERR(errno);
        } else {
            if (fwrite(buf, 1, n, f) != n) {
                rc = CORE_ERR(EIO);
            }
            if (fclose(f) != 0 && rc == 0) {
                rc = CORE_ERR(errno);
            }
        }
    }
    core_free(buf);
    return rc;
}
