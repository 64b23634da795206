/* The bounded word cache: pre-token bytes -> BPE ids, shared by all threads using one pl_tok_t.
 *
 * 64 shards, each a two-way set-associative table of fixed-size entries behind its own mutex, so
 * threads rarely contend and memory is fixed at creation (about 112 bytes per entry). A miss that
 * finds both ways of its set taken evicts the less recently used one. Keys over 32 bytes and
 * results over 16 ids are not cached: such words are rare in captions, and a cap keeps an
 * adversarial 100 KiB word from pinning memory. The cache is a pure speed-up; results never
 * depend on it. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "tok_internal.h"

#define N_SHARDS 64

typedef struct {
    uint64_t hash; /* 0: empty (a real hash of 0 is stored as 1) */
    uint32_t used; /* shard clock at the last hit, for the LRU choice between two ways */
    uint8_t klen;
    uint8_t nids;
    uint8_t key[PL__CACHE_KEY_MAX];
    uint32_t ids[PL__CACHE_IDS_MAX];
} entry_t;

typedef struct {
    pthread_mutex_t mu;
    entry_t *e;
    uint32_t clock;
    uint64_t hits, misses;
    size_t filled;
} shard_t;

struct pl__tok_cache_s {
    size_t sets_per_shard; /* power of two; two entries per set */
    shard_t shards[N_SHARDS];
};

uint64_t pl__tok_hash_bytes(const void *p, size_t n)
{
    /* FNV-1a over the bytes, then a murmur3 finaliser so that both the shard (top bits) and the
     * set (low bits) are well mixed. */
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
    return h != 0 ? h : 1;
}

int pl__tok_cache_new(size_t max_entries, pl__tok_cache_t **out)
{
    *out = NULL;
    if (max_entries == 0) {
        return 0;
    }
    size_t sets = 1;
    while (sets * 2 * N_SHARDS * 2 <= max_entries && sets < ((size_t)1 << 24)) {
        sets *= 2;
    }
    pl__tok_cache_t *c = core_calloc(1, sizeof *c);
    if (c == NULL) {
        return CORE_ERR(ENOMEM);
    }
    c->sets_per_shard = sets;
    for (size_t s = 0; s < N_SHARDS; s++) {
        shard_t *sh = &c->shards[s];
        sh->e = core_calloc(sets * 2, sizeof *sh->e);
        if (sh->e == NULL || pthread_mutex_init(&sh->mu, NULL) != 0) {
            core_free(sh->e);
            sh->e = NULL;
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
        if (c->shards[s].e != NULL) {
            pthread_mutex_destroy(&c->shards[s].mu);
            core_free(c->shards[s].e);
        }
    }
    core_free(c);
}

static entry_t *set_of(pl__tok_cache_t *c, uint64_t h, shard_t **sh)
{
    *sh = &c->shards[h >> 58];
    return &(*sh)->e[(h & (c->sets_per_shard - 1)) * 2];
}

int pl__tok_cache_get(pl__tok_cache_t *c, uint64_t h, const uint8_t *key, size_t klen,
                      uint32_t *ids)
{
    if (klen > PL__CACHE_KEY_MAX) {
        return -1;
    }
    shard_t *sh;
    entry_t *set = set_of(c, h, &sh);
    int n = -1;
    pthread_mutex_lock(&sh->mu);
    for (int w = 0; w < 2; w++) {
        entry_t *e = &set[w];
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0) {
            memcpy(ids, e->ids, e->nids * sizeof *ids);
            n = e->nids;
            e->used = ++sh->clock;
            break;
        }
    }
    if (n >= 0) {
        sh->hits++;
    } else {
        sh->misses++;
    }
    pthread_mutex_unlock(&sh->mu);
    return n;
}

void pl__tok_cache_put(pl__tok_cache_t *c, uint64_t h, const uint8_t *key, size_t klen,
                       const uint32_t *ids, size_t n)
{
    if (klen > PL__CACHE_KEY_MAX || n > PL__CACHE_IDS_MAX) {
        return;
    }
    shard_t *sh;
    entry_t *set = set_of(c, h, &sh);
    pthread_mutex_lock(&sh->mu);
    entry_t *e = NULL;
    for (int w = 0; w < 2 && e == NULL; w++) {
        if (set[w].hash == h && set[w].klen == klen && memcmp(set[w].key, key, klen) == 0) {
            e = &set[w]; /* another thread stored it meanwhile */
        }
    }
    if (e == NULL) {
        if (set[0].hash == 0 || set[1].hash == 0) {
            e = set[0].hash == 0 ? &set[0] : &set[1];
            sh->filled++;
        } else {
            /* Wrap-safe "older" test on the 32-bit clock. */
            e = (int32_t)(set[0].used - set[1].used) <= 0 ? &set[0] : &set[1];
        }
    }
    e->hash = h;
    e->klen = (uint8_t)klen;
    e->nids = (uint8_t)n;
    memcpy(e->key, key, klen);
    memcpy(e->ids, ids, n * sizeof *ids);
    e->used = ++sh->clock;
    pthread_mutex_unlock(&sh->mu);
}

void pl__tok_cache_stats(pl__tok_cache_t *c, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    uint64_t h = 0, m = 0;
    size_t f = 0;
    for (size_t s = 0; s < N_SHARDS; s++) {
        shard_t *sh = &c->shards[s];
        pthread_mutex_lock(&sh->mu);
        h += sh->hits;
        m += sh->misses;
        f += sh->filled;
        pthread_mutex_unlock(&sh->mu);
    }
    *hits = h;
    *misses = m;
    *entries = f;
}

void pl__tok_cache_clear(pl__tok_cache_t *c)
{
    for (size_t s = 0; s < N_SHARDS; s++) {
        shard_t *sh = &c->shards[s];
        pthread_mutex_lock(&sh->mu);
        memset(sh->e, 0, c->sets_per_shard * 2 * sizeof *sh->e);
        sh->filled = 0;
        sh->hits = 0;
        sh->misses = 0;
        sh->clock = 0;
        pthread_mutex_unlock(&sh->mu);
    }
}
