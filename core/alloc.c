/* Counting allocator wrappers with a replaceable backend and an OOM hook. */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static core_malloc_fn a_malloc = malloc;
static core_realloc_fn a_realloc = realloc;
static core_calloc_fn a_calloc = calloc;
static core_free_fn a_free = free;
static core_oom_cb a_oom;
static atomic_llong a_live;

static void oom(size_t size)
{
    if (a_oom != NULL) {
        a_oom(size);
    }
    fprintf(stderr, "superclass: out of memory allocating %zu bytes\n", size);
    abort();
}

void *core_malloc(size_t size)
{
    void *p = a_malloc(size != 0 ? size : 1);
    if (p != NULL) {
        atomic_fetch_add(&a_live, 1);
    }
    return p;
}

void *core_calloc(size_t count, size_t size)
{
    void *p = a_calloc(count != 0 ? count : 1, size != 0 ? size : 1);
    if (p != NULL) {
        atomic_fetch_add(&a_live, 1);
    }
    return p;
}

void *core_realloc(void *ptr, size_t size)
{
    if (ptr == NULL) {
        return core_malloc(size);
    }
    return a_realloc(ptr, size != 0 ? size : 1);
}

void core_free(void *ptr)
{
    if (ptr == NULL) {
        return;
    }
    atomic_fetch_sub(&a_live, 1);
    a_free(ptr);
}

char *core_strdup(const char *s) { return core_strndup(s, strlen(s)); }

char *core_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = core_malloc(len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

void *core_malloc_aligned(size_t alignment, size_t size)
{
    void *p = NULL;
    if (alignment < sizeof(void *)) {
        alignment = sizeof(void *);
    }
    if (posix_memalign(&p, alignment, size != 0 ? size : 1) != 0) {
        return NULL;
    }
    atomic_fetch_add(&a_live, 1);
    return p;
}

void core_free_aligned(void *ptr)
{
    if (ptr == NULL) {
        return;
    }
    atomic_fetch_sub(&a_live, 1);
    free(ptr);
}

void *core_malloc_or_die(size_t size)
{
    void *p = core_malloc(size);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

void *core_calloc_or_die(size_t count, size_t size)
{
    void *p = core_calloc(count, size);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *core_realloc_or_die(void *ptr, size_t size)
{
    void *p = core_realloc(ptr, size);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

int core_alloc_replace(core_malloc_fn m, core_realloc_fn r, core_calloc_fn c, core_free_fn f)
{
    if (atomic_load(&a_live) != 0) {
        return CORE_ESTATE;
    }
    a_malloc = m != NULL ? m : malloc;
    a_realloc = r != NULL ? r : realloc;
    a_calloc = c != NULL ? c : calloc;
    a_free = f != NULL ? f : free;
    return 0;
}

void core_alloc_set_oom_handler(core_oom_cb cb) { a_oom = cb; }

int64_t core_alloc_live(void) { return (int64_t)atomic_load(&a_live); }

int core_size_mul(size_t a, size_t b, size_t *out)
{
    if (__builtin_mul_overflow(a, b, out)) {
        return CORE_ETOO_LARGE;
    }
    return 0;
}

int core_size_add(size_t a, size_t b, size_t *out)
{
    if (__builtin_add_overflow(a, b, out)) {
        return CORE_ETOO_LARGE;
    }
    return 0;
}
