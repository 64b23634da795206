/* The bounded word cache: pre-token bytes -> BPE ids, shared by all threads using one pl_tok_t.
 *
 * A table of eight-way sets with a fixed stride per entry (a multiple of 64 bytes), fixed at
 * creation. A key has a home way in its set (pl__cache_home); a store takes the first empty way
 * from there, wrapping around (an entry is only ever emptied by a clear of its whole set), so a
 * lookup reads from the home way up to the key or the first empty way. encode() prefetches the
 * home way's line for all pre-tokens of a caption before looking any of them up. Eight ways
 * rather than four: with golden.tsv's 20,000 distinct words in the default 65,536 entries, about
 * 150 four-way sets overflowed and their ~800 words missed on every pass; with eight ways about
 * 45 do.
 *
 * Readers take no lock. Each entry is a sequence lock: its first word holds a sequence number
 * (odd while a writer is inside), the key's 24-bit tag, its length and the id count; keys are
 * stored zero-padded to whole words, so a lookup compares 1-3 words. A reader (the inline
 * pl__tok_cache_get in tok_internal.h) loads that word (acquire), copies the entry with relaxed
 * atomic loads, fences (acquire) and reloads the word: if it changed, the copy may be torn and
 * counts as a miss (Boehm's C11 seqlock). Writers are rare (one
 * per distinct word) and serialise on one of 64 mutexes chosen by the hash; a full set replaces
 * its entries round-robin. Hit and miss counts are summed per encode() call by the caller.
 *
 * A tokenizer has two caches (tok.c): 64-byte entries for words up to 24 bytes with up to 8 ids
 * (99% of caption pre-tokens, one-byte words included) and 256-byte entries for words up to 88
 * bytes with up to 40 ids. A short word
 * with more than 8 ids leaves a PL__CACHE_REDIRECT entry in the short cache, so a short-cache miss
 * needs no second lookup.
 * Longer pre-tokens are never cached, so an adversarial 100 KiB word cannot pin memory. The cache
 * is a pure speed-up; results never depend on it. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "core/err.h"
#include "tok_internal.h"


/* Entry word 0: tag (24 bits) | key length (8) | id count (8) | sequence (24, odd while a writer
 * is inside). Then the key, zero-padded to key_max bytes (whole words, so a lookup compares words
 * with the caller's zero-padded key), then up to ids_max uint32 ids. Short cache: 8 + 24 + 8 * 4
 * = 64 bytes, one cache line; long cache: 8 + 88 + 40 * 4 = 256 bytes. A sequence of 24 bits only
 * repeats after 8M rewrites of one entry, far beyond what can happen during one lookup. */
#define SEQ_MASK ((uint64_t)0xffffff)


uint64_t pl__tok_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a over the bytes, then a murmur3 finaliser so that the set (low bits), the lock (top
     * bits) and the tag (middle bits) are all well mixed. */
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

size_t pl__tok_table_align(size_t bytes)
{
    /* Tables of a megabyte or more start on a 2 MiB boundary so the kernel can back them with
     * transparent huge pages: random probes then cost no TLB misses. */
    return bytes >= (1u << 20) ? (2u << 20) : 64;
}

void pl__tok_advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (bytes >= (1u << 20)) {
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: failure only costs speed */
    }
#else
    (void)p;
    (void)bytes;
#endif
}

int pl__tok_cache_new(size_t max_entries, size_t key_max, size_t ids_max, pl__tok_cache_t **out)
{
    *out = NULL;
    if (max_entries == 0) {
        return 0;
    }
    if (key_max > UINT8_MAX || ids_max >= PL__CACHE_REDIRECT || key_max % 8 != 0 ||
        ids_max % 2 != 0) {
        return CORE_ECONFIG;
    }
    size_t sets = 256 / PL__CACHE_WAYS; /* at least 256 entries */
    while (sets * 2 * PL__CACHE_WAYS <= max_entries && sets < ((size_t)1 << 30)) {
        sets *= 2;
    }
    pl__tok_cache_t *c = core_calloc(1, sizeof *c);
    if (c == NULL) {
        return CORE_ERR(ENOMEM);
    }
    c->sets = sets;
    c->key_max = key_max;
    c->ids_max = ids_max;
    c->key_words = key_max / 8;
    c->stride = (8 + key_max + ids_max * sizeof(uint32_t) + 63) & ~(size_t)63;
    c->words = c->stride / 8;
    size_t total = sets * PL__CACHE_WAYS * c->stride;
    c->w = core_malloc_aligned(pl__tok_table_align(total), total);
    c->victim = core_calloc(sets, 1);
    if (c->w == NULL || c->victim == NULL) {
        pl__tok_cache_free(c);
        return CORE_ERR(ENOMEM);
    }
    pl__tok_advise_huge(c->w, total);
    for (size_t i = 0; i < total / 8; i++) {
        atomic_init(&c->w[i], 0);
    }
    for (; c->n_mu < PL__CACHE_LOCKS; c->n_mu++) {
        if (pthread_mutex_init(&c->mu[c->n_mu], NULL) != 0) {
            pl__tok_cache_free(c);
            return CORE_ERR(ENOMEM);
        }
    }
    *out = c;
    return 0;
}

void pl__tok_cache_free(pl__tok_cache_t *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < c->n_mu; i++) {
        pthread_mutex_destroy(&c->mu[i]);
    }
    core_free_aligned((void *)c->w);
    core_free(c->victim);
    core_free(c);
}

/* Rewrites entry e under the writer lock: odd sequence, data, even sequence with the new head. */
static void entry_write(pl__tok_cache_t *c, _Atomic uint64_t *e, uint64_t head, const uint64_t *kw,
                        size_t klen, const uint32_t *ids, size_t n)
{
    uint64_t s = atomic_load_explicit(&e[0], memory_order_relaxed);
    uint64_t seq = s & SEQ_MASK;
    atomic_store_explicit(&e[0], (s & ~SEQ_MASK) | ((seq + 1) & SEQ_MASK), memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    if (head != 0) {
        size_t nkw = (klen + 7) / 8;
        size_t nids = n == PL__CACHE_REDIRECT ? 0 : n;
        for (size_t k = 0; k < c->key_words; k++) {
            atomic_store_explicit(&e[1 + k], k < nkw ? kw[k] : 0, memory_order_relaxed);
        }
        _Atomic uint64_t *iw = e + 1 + c->key_words;
        for (size_t k = 0; k < (nids + 1) / 2; k++) {
            uint64_t v = ids[2 * k];
            if (2 * k + 1 < nids) {
                v |= (uint64_t)ids[2 * k + 1] << 32;
            }
            atomic_store_explicit(&iw[k], v, memory_order_relaxed);
        }
    }
    uint64_t w0 = head == 0 ? 0 : head << 32 | (uint64_t)n << 24;
    atomic_store_explicit(&e[0], w0 | ((seq + 2) & SEQ_MASK), memory_order_release);
}

void pl__tok_cache_put(pl__tok_cache_t *c, uint64_t h, const uint64_t *kw, size_t klen,
                       const uint32_t *ids, size_t n)
{
    if (klen > c->key_max || (n > c->ids_max && n != PL__CACHE_REDIRECT)) {
        return;
    }
    uint64_t head = pl__cache_head(h, klen);
    size_t si = (size_t)h & (c->sets - 1);
    _Atomic uint64_t *set = pl__cache_set(c, h);
    size_t nkw = (klen + 7) / 8;
    pthread_mutex_t *mu = &c->mu[si % PL__CACHE_LOCKS]; /* one lock per set, as in clear */
    pthread_mutex_lock(mu);
    int way = -1;
    for (unsigned j = 0, w = pl__cache_home(h); j < PL__CACHE_WAYS;
         j++, w = (w + 1) & (PL__CACHE_WAYS - 1)) {
        /* Relaxed reads are fine here: entries change only under this lock. */
        _Atomic uint64_t *e = set + (size_t)w * c->words;
        uint64_t s = atomic_load_explicit(&e[0], memory_order_relaxed);
        if ((s >> 32) == head) {
            uint64_t diff = 0;
            for (size_t k = 0; k < nkw; k++) {
                diff |= atomic_load_explicit(&e[1 + k], memory_order_relaxed) ^ kw[k];
            }
            if (diff == 0) {
                pthread_mutex_unlock(mu); /* another thread stored it meanwhile */
                return;
            }
        }
        if ((s >> 32) == 0) {
            way = (int)w; /* the first empty way from home: lookups stop here */
            break;
        }
    }
    if (way >= 0) {
        atomic_fetch_add_explicit(&c->filled, 1, memory_order_relaxed);
    } else {
        way = c->victim[si] % PL__CACHE_WAYS;
        c->victim[si] = (uint8_t)(way + 1);
    }
    entry_write(c, set + (size_t)way * c->words, head, kw, klen, ids, n);
    pthread_mutex_unlock(mu);
}

void pl__tok_cache_count(pl__tok_cache_t *c, uint64_t hits, uint64_t misses)
{
    if (hits != 0) {
        atomic_fetch_add_explicit(&c->hits, hits, memory_order_relaxed);
    }
    if (misses != 0) {
        atomic_fetch_add_explicit(&c->misses, misses, memory_order_relaxed);
    }
}

void pl__tok_cache_stats(pl__tok_cache_t *c, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    *hits += atomic_load_explicit(&c->hits, memory_order_relaxed);
    *misses += atomic_load_explicit(&c->misses, memory_order_relaxed);
    *entries += (size_t)atomic_load_explicit(&c->filled, memory_order_relaxed);
}

void pl__tok_cache_clear(pl__tok_cache_t *c)
{
    for (size_t si = 0; si < c->sets; si++) {
        pthread_mutex_t *mu = &c->mu[si % PL__CACHE_LOCKS];
        pthread_mutex_lock(mu);
        for (int w = 0; w < PL__CACHE_WAYS; w++) {
            _Atomic uint64_t *e = c->w + (si * PL__CACHE_WAYS + (size_t)w) * c->words;
            if ((atomic_load_explicit(&e[0], memory_order_relaxed) >> 32) != 0) {
                entry_write(c, e, 0, NULL, 0, NULL, 0);
            }
        }
        c->victim[si] = 0;
        pthread_mutex_unlock(mu);
    }
    atomic_store_explicit(&c->filled, 0, memory_order_relaxed);
    atomic_store_explicit(&c->hits, 0, memory_order_relaxed);
    atomic_store_explicit(&c->misses, 0, memory_order_relaxed);
}
