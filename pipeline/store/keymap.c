/* The per-archive key map of ingest (split-key detection): open addressing, FNV-1a. */
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "ingest_internal.h"

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

static pl__keymap_entry_t *find(const pl__keymap_t *m, const char *key)
{
    if (m->cap == 0) {
        return NULL;
    }
    size_t i = (size_t)fnv(key) & (m->cap - 1);
    while (m->slots[i].key) {
        if (strcmp(m->slots[i].key, key) == 0) {
            return &m->slots[i];
        }
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

int pl__keymap_lookup(const pl__keymap_t *m, const char *key, uint64_t *index, int *incomplete)
{
    const pl__keymap_entry_t *e = find(m, key);
    if (e == NULL) {
        return 0;
    }
    *index = e->index;
    *incomplete = e->incomplete;
    return 1;
}

static void put(pl__keymap_entry_t *slots, size_t cap, pl__keymap_entry_t e)
{
    size_t i = (size_t)fnv(e.key) & (cap - 1);
    while (slots[i].key) {
        i = (i + 1) & (cap - 1);
    }
    slots[i] = e;
}

int pl__keymap_insert(pl__keymap_t *m, const char *key, uint64_t index, int incomplete)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        pl__keymap_entry_t *ns = core_calloc(nc, sizeof(*ns));
        if (ns == NULL) {
            return CORE_ERR(ENOMEM);
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].key) {
                put(ns, nc, m->slots[i]);
            }
        }
        core_free(m->slots);
        m->slots = ns;
        m->cap = nc;
    }
    char *k = core_strdup(key);
    if (k == NULL) {
        return CORE_ERR(ENOMEM);
    }
    put(m->slots, m->cap, (pl__keymap_entry_t){k, index, incomplete, UINT32_MAX});
    m->n++;
    return 0;
}

void pl__keymap_set_pending(pl__keymap_t *m, const char *key, uint32_t reason)
{
    pl__keymap_entry_t *e = find(m, key);
    if (e) {
        e->pending = reason;
    }
}

uint32_t pl__keymap_take_pending(pl__keymap_t *m, const char *key)
{
    pl__keymap_entry_t *e = find(m, key);
    if (e == NULL) {
        return UINT32_MAX;
    }
    uint32_t r = e->pending;
    e->pending = UINT32_MAX;
    return r;
}

void pl__keymap_each_pending(const pl__keymap_t *m, int (*cb)(void *, const char *, uint32_t),
                             void *ud)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key && m->slots[i].pending != UINT32_MAX) {
            cb(ud, m->slots[i].key, m->slots[i].pending);
        }
    }
}

void pl__keymap_clear(pl__keymap_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        core_free(m->slots[i].key);
        m->slots[i].key = NULL;
    }
    m->n = 0;
}

void pl__keymap_free(pl__keymap_t *m)
{
    pl__keymap_clear(m);
    core_free(m->slots);
    m->slots = NULL;
    m->cap = 0;
}
