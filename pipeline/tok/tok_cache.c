/* The bounded word cache: pre-token bytes -> BPE ids, shared by all threads using one pl_tok_t.
 *
 * 64 shards, each a table of four-way sets behind its own mutex, so threads rarely contend and
 * memory is fixed at creation. An entry holds its tag (32 hash bits), key and ids in a fixed
 * stride (a multiple of 64 bytes), and a set's four entries are adjacent, so a lookup reads one
 * block that encode() prefetches for all pre-tokens of a caption before looking any of them up. A
 * miss that finds the set full evicts its least recently used entry.
 *
 * A tokenizer has two such caches (tok.c): one with 64-byte entries for short words (keys up to
 * 24 bytes, up to 8 ids: 99% of the pre-tokens of real captions) and a smaller one with 256-byte
 * entries for longer ones (up to 88 bytes, 40 ids). Longer pre-tokens are never cached, so an
 * adversarial 100 KiB word cannot pin memory. The cache is a pure speed-up; results never depend
 * on it. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "core/err.h"
#include "tok_internal.h"

#define N_SHARDS 64
#define WAYS 4

/* Entry layout at stride s: header, then key bytes, then ids (4-byte aligned). */
typedef struct {
    uint32_t tag; /* 0: empty */
    uint16_t klen;
    uint8_t nids;
    uint8_t age; /* set clock at the last use */
} head_t;

typedef struct {
    pthread_mutex_t mu;
    uint8_t *e;     /* sets_per_shard * WAYS entries, 64-byte aligned */
    uint8_t *clock; /* per set */
    uint64_t hits, misses;
    size_t filled;
} shard_t;

struct pl__tok_cache_s {
    uint8_t *block;        /* every shard's entries, one allocation (huge pages where possible) */
    size_t sets_per_shard; /* power of two */
    size_t key_max, ids_max, ids_off, stride;
    shard_t shards[N_SHARDS];
};

uint64_t pl__tok_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a over the bytes, then a murmur3 finaliser so that the shard (top bits), the set (low
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
    if (key_max > UINT16_MAX || ids_max > UINT8_MAX) {
        return CORE_ECONFIG;
    }
    size_t sets = 1;
    while (sets * 2 * N_SHARDS * WAYS <= max_entries && sets < ((size_t)1 << 24)) {
        sets *= 2;
    }
    pl__tok_cache_t *c = core_calloc(1, sizeof *c);
    if (c == NULL) {
        return CORE_ERR(ENOMEM);
    }
    c->sets_per_shard = sets;
    c->key_max = key_max;
    c->ids_max = ids_max;
    c->ids_off = (sizeof(head_t) + key_max + 3) & ~(size_t)3;
    c->stride = (c->ids_off + ids_max * sizeof(uint32_t) + 63) & ~(size_t)63;
    size_t bytes = sets * WAYS * c->stride, total = bytes * N_SHARDS;
    c->block = core_malloc_aligned(pl__tok_table_align(total), total);
    if (c->block == NULL) {
        core_free(c);
        return CORE_ERR(ENOMEM);
    }
    pl__tok_advise_huge(c->block, total);
    memset(c->block, 0, total);
    for (size_t s = 0; s < N_SHARDS; s++) {
        shard_t *sh = &c->shards[s];
        sh->e = c->block + s * bytes;
        sh->clock = core_calloc(sets, 1);
        if (sh->clock == NULL || pthread_mutex_init(&sh->mu, NULL) != 0) {
            core_free(sh->clock);
            sh->clock = NULL;
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
    for (size_t s = 0; s < N_SHARDS; s++) {
        if (c->shards[s].clock != NULL) {
            pthread_mutex_destroy(&c->shards[s].mu);
            core_free(c->shards[s].clock);
        }
    }
    core_free_aligned(c->block);
    core_free(c);
}

size_t pl__tok_cache_key_max(const pl__tok_cache_t *c)
{
    return c->key_max;
}

static inline uint32_t tag_of(uint64_t h)
{
    return (uint32_t)(h >> 20) | 1u;
}

static inline size_t set_index(const pl__tok_cache_t *c, uint64_t h)
{
    return (size_t)h & (c->sets_per_shard - 1);
}

static inline uint8_t *set_at(const pl__tok_cache_t *c, const shard_t *sh, size_t si)
{
    return sh->e + si * WAYS * c->stride;
}

static inline head_t *head(uint8_t *e)
{
    return (head_t *)(void *)e;
}

static inline uint8_t *key_of(uint8_t *e)
{
    return e + sizeof(head_t);
}

static inline uint32_t *ids_of(const pl__tok_cache_t *c, uint8_t *e)
{
    return (uint32_t *)(void *)(e + c->ids_off);
}

void pl__tok_cache_prefetch(const pl__tok_cache_t *c, uint64_t h)
{
    const shard_t *sh = &c->shards[h >> 58];
    const uint8_t *set = set_at(c, sh, set_index(c, h));
    for (size_t off = 0; off < WAYS * c->stride; off += 64) {
        __builtin_prefetch(set + off);
    }
}

int pl__tok_cache_get(pl__tok_cache_t *c, uint64_t h, const uint8_t *key, size_t klen,
                      uint32_t *ids, int count_miss)
{
    if (klen > c->key_max) {
        return -1;
    }
    shard_t *sh = &c->shards[h >> 58];
    size_t si = set_index(c, h);
    uint32_t tag = tag_of(h);
    int n = -1;
    pthread_mutex_lock(&sh->mu);
    uint8_t *set = set_at(c, sh, si);
    for (int w = 0; w < WAYS; w++) {
        uint8_t *e = set + (size_t)w * c->stride;
        head_t *hd = head(e);
        if (hd->tag == tag && hd->klen == klen && memcmp(key_of(e), key, klen) == 0) {
            memcpy(ids, ids_of(c, e), hd->nids * sizeof *ids);
            n = hd->nids;
            hd->age = ++sh->clock[si];
            break;
        }
    }
    if (n >= 0) {
        sh->hits++;
    } else if (count_miss) {
        sh->misses++;
    }
    pthread_mutex_unlock(&sh->mu);
    return n;
}

void pl__tok_cache_put(pl__tok_cache_t *c, uint64_t h, const uint8_t *key, size_t klen,
                       const uint32_t *ids, size_t n)
{
    if (klen > c->key_max || n > c->ids_max) {
        return;
    }
    shard_t *sh = &c->shards[h >> 58];
    size_t si = set_index(c, h);
    uint32_t tag = tag_of(h);
    pthread_mutex_lock(&sh->mu);
    uint8_t *set = set_at(c, sh, si);
    uint8_t *e = NULL;
    for (int w = 0; w < WAYS && e == NULL; w++) {
        uint8_t *x = set + (size_t)w * c->stride;
        if (head(x)->tag == tag && head(x)->klen == klen && memcmp(key_of(x), key, klen) == 0) {
            e = x; /* another thread stored it meanwhile */
        }
    }
    for (int w = 0; w < WAYS && e == NULL; w++) {
        uint8_t *x = set + (size_t)w * c->stride;
        if (head(x)->tag == 0) {
            e = x;
            sh->filled++;
        }
    }
    if (e == NULL) {
        /* Least recently used: the largest age behind the set clock (wraps every 256 uses). */
        uint8_t now = sh->clock[si];
        e = set;
        for (int w = 1; w < WAYS; w++) {
            uint8_t *x = set + (size_t)w * c->stride;
            if ((uint8_t)(now - head(x)->age) > (uint8_t)(now - head(e)->age)) {
                e = x;
            }
        }
    }
    head_t *hd = head(e);
    hd->tag = tag;
    hd->age = ++sh->clock[si];
    hd->klen = (uint16_t)klen;
    hd->nids = (uint8_t)n;
    memcpy(key_of(e), key, klen);
    memcpy(ids_of(c, e), ids, n * sizeof *ids);
    pthread_mutex_unlock(&sh->mu);
}

void pl__tok_cache_stats(pl__tok_cache_t *c, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    for (size_t s = 0; s < N_SHARDS; s++) {
        shard_t *sh = &c->shards[s];
        pthread_mutex_lock(&sh->mu);
        *hits += sh->hits;
        *misses += sh->misses;
        *entries += sh->filled;
        pthread_mutex_unlock(&sh->mu);
    }
}

void pl__tok_cache_clear(pl__tok_cache_t *c)
{
    for (size_t s = 0; s < N_SHARDS; s++) {
        shard_t *sh = &c->shards[s];
        pthread_mutex_lock(&sh->mu);
        memset(sh->e, 0, c->sets_per_shard * WAYS * c->stride);
        memset(sh->clock, 0, c->sets_per_shard);
        sh->filled = 0;
        sh->hits = 0;
        sh->misses = 0;
        pthread_mutex_unlock(&sh->mu);
    }
}
