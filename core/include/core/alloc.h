/* All allocation goes through these wrappers: a replaceable backend (like uv_replace_allocator)
 * and live-allocation counters, so tests can assert that nothing leaked. Thread-safe.
 *
 * core_malloc/core_calloc/core_realloc return NULL on failure (callers driven by outside input
 * must handle it); the *_or_die variants call the OOM handler, which aborts by default. */
#ifndef CORE_ALLOC_H
#define CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

typedef void *(*core_malloc_fn)(size_t);
typedef void *(*core_realloc_fn)(void *, size_t);
typedef void *(*core_calloc_fn)(size_t, size_t);
typedef void (*core_free_fn)(void *);
typedef void (*core_oom_cb)(size_t size);

void *core_malloc(size_t size);
void *core_calloc(size_t count, size_t size);
void *core_realloc(void *ptr, size_t size);
void core_free(void *ptr);
char *core_strdup(const char *s);
char *core_strndup(const char *s, size_t n);

/* Page-aligned (64-byte at least) allocation for arenas; free with core_free_aligned. */
void *core_malloc_aligned(size_t alignment, size_t size);
void core_free_aligned(void *ptr);

void *core_malloc_or_die(size_t size);
void *core_calloc_or_die(size_t count, size_t size);
void *core_realloc_or_die(void *ptr, size_t size);

/* Replaces the backend. Call before any allocation; returns CORE_ESTATE if allocations are live. */
int core_alloc_replace(core_malloc_fn m, core_realloc_fn r, core_calloc_fn c, core_free_fn f);
void core_alloc_set_oom_handler(core_oom_cb cb);

/* Number of allocations not yet freed (NULL-result and NULL-free calls don't count). */
int64_t core_alloc_live(void);

/* Overflow-checked size arithmetic: returns 0 and stores the product, or CORE_ETOO_LARGE. */
int core_size_mul(size_t a, size_t b, size_t *out);
int core_size_add(size_t a, size_t b, size_t *out);

#endif
