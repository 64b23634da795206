/* Byte-level BPE of one pre-token (spec §1.6), on canonical symbol ids.
 *
 * The reference repeats: take the adjacent pair with the lowest merge rank, merge every
 * non-overlapping occurrence of it left to right, until no pair is a merge. Two implementations
 * give that same result:
 *  - short words (the usual case): the loop as written, over an array, O(n^2) for n symbols;
 *  - long words: a doubly linked list of symbols and a min-heap of (rank, position) pairs, so a
 *    100 KiB word costs O(n log n) instead of O(n^2). The heap is drained one rank at a time and
 *    the pairs a merge creates are pushed only when that rank is done: within a round the heap
 *    yields the occurrences of the round's pair in left-to-right order and skips those a previous
 *    merge consumed, which is the reference's rebuild; deferring the new pairs keeps the rounds
 *    apart even for a merges file whose ranks are not increasing along derivations.
 * Both look pairs up in the general merge table (mbk, or mtab), except that the short-word loop
 * uses two smaller tables when the merges file has a trained file's shape (tok->trained): brank
 * for pairs of two base symbols, rtab for the rest. In a cold pass over captions the merge table
 * competes for the CPU caches with the word cache the pass fills; mbk (1 MiB for CLIP) mostly
 * lost, and a short word's few dependent lookups waited on memory. brank is read only in the rows
 * of the few dozen bytes captions use, rtab is half of mbk (ids are implied, ranks take 16 bits).
 * bench/tok.sh, cold pass: about a tenth less time. */
#include <errno.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/alloc.h"
#include "core/err.h"
#include "tok_internal.h"

_Thread_local uint64_t pl__tok_work;

static inline uint32_t merge_find(const pl_tok_t *tok, uint32_t a, uint32_t b, uint32_t *new_id)
{
    if (tok->mbk != NULL) {
        uint32_t key = a << 16 | b;
        uint64_t bk = pl__tok_mbucket(tok, key);
        for (;;) {
            pl__tok_work++;
            const uint32_t *keys = tok->mbk + bk * 16;
            /* At most one slot matches and no value is 0 (result ids follow the 512 base ids), so
             * OR-ing the matching values gives the value or 0, without a branch per slot. */
            uint32_t v = 0;
#if defined(__GNUC__)
            /* Four slots per vector (GCC/Clang vector extension; SSE2 on x86-64): compare,
             * mask the values, OR; the scalar loop below compiles to five instructions a slot. */
            typedef uint32_t v4u __attribute__((vector_size(16)));
            v4u k0, k1, v0, v1;
            memcpy(&k0, keys, 16);
            memcpy(&k1, keys + 4, 16);
            memcpy(&v0, keys + 8, 16);
            memcpy(&v1, keys + 12, 16);
            v4u kk = {key, key, key, key};
            v4u m = (v0 & (v4u)(k0 == kk)) | (v1 & (v4u)(k1 == kk));
            v = m[0] | m[1] | m[2] | m[3];
#else
            for (int j = 0; j < 8; j++) {
                /* a mask, not `?:`, which compilers turn back into a branch per slot */
                v |= keys[8 + j] & ((uint32_t)0 - (uint32_t)(keys[j] == key));
            }
#endif
            /* Found or not is a coin toss for the branch predictor (four lookups in ten are for
             * pairs that are not merges), so the answer is selected, not branched on, unless
             * the bucket overflowed (rare). */
            if (((tok->mbovf[bk / 64] >> (bk % 64)) & 1) == 0 || v != 0) {
                *new_id = v & 0xffff;
                return (v >> 16) | ((uint32_t)0 - (uint32_t)(v == 0)); /* 0: PL__TOK_NONE */
            }
            bk = (bk + 1) & tok->mbmask;
        }
    }
    uint64_t key = (uint64_t)a << 32 | b;
    uint64_t i = pl__tok_mix(key) & tok->mmask;
    for (;;) {
        pl__tok_work++;
        const pl__merge_slot_t *sl = &tok->mtab[i];
        if (sl->key == key) {
            *new_id = sl->new_id;
            return sl->rank;
        }
        uint64_t k = sl->key;
        if (k == UINT64_MAX) {
            return PL__TOK_NONE;
        }
        i = (i + 1) & tok->mmask;
    }
}

uint32_t pl__tok_merge_find(const pl_tok_t *tok, uint32_t a, uint32_t b, uint32_t *new_id)
{
    return merge_find(tok, a, b, new_id);
}

/* Home bucket of key in rtab: multiplicative hash, then the range reduction of the top 32 bits
 * to the bucket count (not a power of two: the count is set by the fill). */
static inline size_t rbucket_of(const pl_tok_t *tok, uint32_t key)
{
    uint64_t h = ((uint64_t)key * 0x9e3779b97f4a7c15ull) >> 32;
    return (size_t)((h * tok->rbuckets) >> 32);
}

/* Rank of the merge (a, b), not both base symbols, from rtab; 0xffff if none. */
static inline uint32_t rank16(const pl_tok_t *tok, uint32_t a, uint32_t b)
{
    uint32_t key = a << 16 | b;
    size_t bi = rbucket_of(tok, key);
    for (;;) {
        const pl__tok_rbucket_t *bk = &tok->rtab[bi];
        unsigned hit = 0;
#if defined(__SSE2__)
        /* Ten keys: two full vectors and a half one (its upper lanes load as 0, never a key
         * here: rtab holds no pair of two base symbols). */
        __m128i kk = _mm_set1_epi32((int)key);
        __m128i m0 = _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)bk->key), kk);
        __m128i m1 = _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)(bk->key + 4)), kk);
        __m128i m2 = _mm_cmpeq_epi32(_mm_loadl_epi64((const __m128i *)(bk->key + 8)), kk);
        __m128i m = _mm_packs_epi16(_mm_packs_epi32(m0, m1), _mm_packs_epi32(m2, m2));
        hit = (unsigned)_mm_movemask_epi8(m) & 0x3ff;
#else
        for (unsigned j = 0; j < 10; j++) {
            hit |= (unsigned)(bk->key[j] == key) << j;
        }
#endif
        /* at most one key matches; none: rank[10], the 0xffff sentinel */
        if (hit != 0 || bk->overflow == 0) {
            return bk->rank[__builtin_ctz(hit | 1u << 10)];
        }
        bi = bi + 1 == tok->rbuckets ? 0 : bi + 1;
    }
}

/* merge_find on the trained tables (tok->trained): the result id of rank r is 512 + r. */
static inline uint32_t find_trained(const pl_tok_t *tok, uint32_t a, uint32_t b, uint32_t *new_id)
{
    pl__tok_work++;
    uint32_t r = (a | b) < 512 ? tok->brank[a << 9 | b] : rank16(tok, a, b);
    *new_id = 512 + r;
    return r == PL__TOK_RANK16_NONE ? PL__TOK_NONE : r;
}

uint32_t pl__tok_merge_find_trained(const pl_tok_t *tok, uint32_t a, uint32_t b, uint32_t *new_id)
{
    return find_trained(tok, a, b, new_id);
}

/* The short-word loop, on the trained tables (trained = 1) or the general one. */
static inline uint32_t find_short(const pl_tok_t *tok, int trained, uint32_t a, uint32_t b,
                                  uint32_t *new_id)
{
    return trained ? find_trained(tok, a, b, new_id) : merge_find(tok, a, b, new_id);
}

static size_t bpe_short(const pl_tok_t *tok, uint32_t *w, size_t n, int trained)
{
    uint32_t rank[PL__TOK_SHORT_WORD], nid[PL__TOK_SHORT_WORD];
    uint8_t src[PL__TOK_SHORT_WORD]; /* old index of a copied symbol, NEW for a merged one */
    enum { NEW = 0xff };
    /* The first lookups are independent: start all their memory loads before using any (brank's
     * few rows in use stay cached). */
    for (size_t i = 0; i + 1 < n && !trained; i++) {
        if (tok->mbk != NULL) {
            __builtin_prefetch(&tok->mbk[pl__tok_mbucket(tok, w[i] << 16 | w[i + 1]) * 16]);
        } else {
            uint64_t key = (uint64_t)w[i] << 32 | w[i + 1];
            __builtin_prefetch(&tok->mtab[pl__tok_mix(key) & tok->mmask]);
        }
    }
    for (size_t i = 0; i + 1 < n; i++) {
        rank[i] = find_short(tok, trained, w[i], w[i + 1], &nid[i]);
    }
    while (n > 1) {
        /* The lowest rank, first position on ties, without a branch per pair (the comparisons
         * are unpredictable): rank and position packed in one word, min by conditional move. */
        uint64_t best = UINT64_MAX;
        for (size_t i = 0; i + 1 < n; i++) {
            uint64_t v = (uint64_t)rank[i] << 32 | i;
            best = v < best ? v : best;
        }
        if ((best >> 32) == PL__TOK_NONE) {
            break;
        }
        size_t at = (uint32_t)best;
        /* No occurrence of the pair lies before `at` (it would have the same rank and an
         * earlier index), so rebuild from there. */
        uint32_t a = w[at], b = w[at + 1], ab = nid[at];
        size_t o = at, i = at;
        while (i < n) {
            if (i + 1 < n && w[i] == a && w[i + 1] == b) {
                src[o] = NEW;
                w[o++] = ab;
                i += 2;
            } else {
                src[o] = (uint8_t)i;
                w[o++] = w[i++];
            }
        }
        n = o;
        /* Pairs of two symbols copied from adjacent places keep their rank; only pairs touching
         * a new symbol are looked up. Reading rank[src[k]] in place is safe: src[k] >= k. */
        if (at > 0) {
            rank[at - 1] = find_short(tok, trained, w[at - 1], w[at], &nid[at - 1]);
        }
        for (size_t k = at; k + 1 < n; k++) {
            if (src[k] != NEW && src[k + 1] == src[k] + 1) {
                rank[k] = rank[src[k]];
                nid[k] = nid[src[k]];
            } else {
                rank[k] = find_short(tok, trained, w[k], w[k + 1], &nid[k]);
            }
        }
    }
    return n;
}

typedef struct {
    uint32_t rank;
    uint32_t pos; /* index of the pair's left symbol */
} hent_t;

static inline int hless(hent_t x, hent_t y)
{
    return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos);
}

static void heap_push(hent_t *h, size_t *n, hent_t e)
{
    size_t i = (*n)++;
    while (i > 0) {
        pl__tok_work++;
        size_t p = (i - 1) / 2;
        if (!hless(e, h[p])) {
            break;
        }
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static hent_t heap_pop(hent_t *h, size_t *n)
{
    hent_t top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        pl__tok_work++;
        size_t c = 2 * i + 1;
        if (c >= m) {
            break;
        }
        if (c + 1 < m && hless(h[c + 1], h[c])) {
            c++;
        }
        if (!hless(h[c], last)) {
            break;
        }
        h[i] = h[c];
        i = c;
    }
    if (m > 0) {
        h[i] = last;
    }
    return top;
}

#define DEAD UINT32_MAX
#define NIL UINT32_MAX

static int bpe_long(const pl_tok_t *tok, uint32_t *w, size_t n, size_t *n_out)
{
    int rc = 0;
    /* Each merge adds at most two pairs, so the heap never holds more than 3n entries; pairs
     * created in a round wait in `stash` (at most 2 per merge). */
    uint32_t *next = core_malloc(n * sizeof *next);
    uint32_t *prev = core_malloc(n * sizeof *prev);
    hent_t *heap = core_malloc(3 * n * sizeof *heap);
    uint32_t *stash = core_malloc(2 * n * sizeof *stash);
    CORE_FAIL_IF(next == NULL || prev == NULL || heap == NULL || stash == NULL,
                 CORE_ERR(ENOMEM));
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (uint32_t)(i + 1) : NIL;
        prev[i] = i > 0 ? (uint32_t)(i - 1) : NIL;
        if (i + 1 < n) {
            uint32_t nid;
            uint32_t r = merge_find(tok, w[i], w[i + 1], &nid);
            if (r != PL__TOK_NONE) {
                heap_push(heap, &hn, (hent_t){r, (uint32_t)i});
            }
        }
    }
    while (hn > 0) {
        uint32_t round = heap[0].rank;
        size_t sn = 0;
        while (hn > 0 && heap[0].rank == round) {
            hent_t e = heap_pop(heap, &hn);
            uint32_t p = e.pos, q = next[p], nid = 0;
            if (w[p] == DEAD || q == NIL ||
                merge_find(tok, w[p], w[q], &nid) != e.rank) {
                continue; /* consumed or changed by an earlier merge */
            }
            w[p] = nid;
            w[q] = DEAD;
            next[p] = next[q];
            if (next[q] != NIL) {
                prev[next[q]] = p;
            }
            if (prev[p] != NIL) {
                stash[sn++] = prev[p];
            }
            if (next[p] != NIL) {
                stash[sn++] = p;
            }
        }
        for (size_t s = 0; s < sn; s++) {
            uint32_t p = stash[s], q = next[p], nid = 0;
            if (w[p] == DEAD || q == NIL) {
                continue;
            }
            uint32_t r = merge_find(tok, w[p], w[q], &nid);
            if (r != PL__TOK_NONE) {
                heap_push(heap, &hn, (hent_t){r, p});
            }
        }
    }
    size_t o = 0;
    for (uint32_t p = 0; p != NIL; p = next[p]) {
        w[o++] = w[p];
    }
    *n_out = o;
fail:
    core_free(next);
    core_free(prev);
    core_free(heap);
    core_free(stash);
    return rc;
}

int pl__tok_bpe(const pl_tok_t *tok, uint32_t *syms, size_t n, size_t *n_out, int mode)
{
    if (n <= 1) {
        *n_out = n;
        return 0;
    }
    if (n <= PL__TOK_SHORT_WORD && mode != PL__TOK_BPE_HEAP) {
        *n_out = bpe_short(tok, syms, n, tok->trained && mode == PL__TOK_BPE_AUTO);
        return 0;
    }
    return bpe_long(tok, syms, n, n_out);
}

int pl__tok_bpe_prepare(pl_tok_t *tok)
{
    tok->trained = 0;
    if ((uint64_t)tok->n_merges + 512 >= PL__TOK_RANK16_NONE) {
        return 0;
    }
    for (unsigned b = 0; b < 256; b++) {
        if (tok->byte_id[b] >= 512 || tok->byte_id_w[b] >= 512) {
            return 0;
        }
    }
    size_t entries = 0;
    for (uint64_t i = 0; i <= tok->mmask; i++) {
        const pl__merge_slot_t *sl = &tok->mtab[i];
        if (sl->key != UINT64_MAX) {
            entries++;
            if (sl->new_id != 512 + sl->rank) {
                return 0;
            }
        }
    }
    if (entries != tok->n_merges) {
        return 0; /* a repeated pair: its first rank makes no id */
    }
    /* About six keys a bucket: few buckets overflow (5% for a Poisson load of 6 into 10 slots).
     * Measured in a cold pass of golden.tsv: 6 a bucket (512 KiB) beat 3, 4 and 8. */
    size_t nb = entries / 6 + 1;
    size_t rbytes = nb * sizeof *tok->rtab;
    tok->brank = core_malloc((size_t)512 * 512 * sizeof *tok->brank);
    tok->rtab = core_malloc_aligned(pl__tok_table_align(rbytes), rbytes);
    if (tok->brank == NULL || tok->rtab == NULL) {
        return CORE_ERR(ENOMEM);
    }
    pl__tok_advise_huge(tok->rtab, rbytes);
    memset(tok->brank, 0xff, (size_t)512 * 512 * sizeof *tok->brank);
    memset(tok->rtab, 0xff, rbytes); /* empty keys, and rank[10] = 0xffff */
    for (size_t i = 0; i < nb; i++) {
        tok->rtab[i].overflow = 0;
    }
    tok->rbuckets = nb;
    for (uint64_t i = 0; i <= tok->mmask; i++) {
        const pl__merge_slot_t *sl = &tok->mtab[i];
        uint64_t a = sl->key >> 32, b = sl->key & UINT32_MAX;
        if (sl->key == UINT64_MAX) {
            continue;
        }
        if (a < 512 && b < 512) {
            tok->brank[a << 9 | b] = (uint16_t)sl->rank;
            continue;
        }
        uint32_t key = (uint32_t)(a << 16 | b);
        size_t bi = rbucket_of(tok, key);
        for (;;) {
            pl__tok_rbucket_t *bk = &tok->rtab[bi];
            size_t j = 0;
            while (j < 10 && bk->key[j] != UINT32_MAX) {
                j++;
            }
            if (j < 10) {
                bk->key[j] = key;
                bk->rank[j] = (uint16_t)sl->rank;
                break;
            }
            bk->overflow = 1;
            bi = bi + 1 == nb ? 0 : bi + 1;
        }
    }
    tok->trained = 1;
    return 0;
}
