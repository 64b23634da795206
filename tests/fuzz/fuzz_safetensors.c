/* Fuzz target: the safetensors parser over arbitrary bytes. Every accepted file is walked (each
 * tensor's bytes read, so a bad pointer shows under ASan), checked against its own shape, and
 * round-tripped: re-serialised by the writer and re-parsed, and the tensors must come back equal.
 */
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nn_st_file_t *f = NULL;
    char err[NN_ST_ERRLEN];
    nn_st_limits_t lim = {.max_header = 1 << 20, .max_tensors = 4096};
    if (nn_st_parse(data, size, &lim, &f, err, sizeof err) != 0) {
        return 0;
    }
    size_t n = nn_st_count(f);
    nn_st_desc_t *d = core_calloc(n ? n : 1, sizeof *d);
    nn_st_meta_t *m = core_calloc(nn_st_meta_count(f) + 1, sizeof *m);
    if (d == NULL || m == NULL) {
        __builtin_trap();
    }
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        const nn_st_tensor_t *t = nn_st_at(f, i);
        for (size_t b = 0; b < t->nbytes; b++) {
            sum += t->data[b];
        }
        if (nn_st_find(f, t->name) != t ||
            nn_st_expect(f, t->name, t->dtype, t->rank, t->shape, NULL, err, sizeof err) != 0 ||
            t->nbytes != t->numel * nn_st_dtype_size(t->dtype)) {
            __builtin_trap();
        }
        d[i].name = t->name;
        d[i].dtype = t->dtype;
        d[i].rank = t->rank;
        memcpy(d[i].shape, t->shape, sizeof d[i].shape);
        d[i].data = t->data;
    }
    for (size_t i = 0; i < nn_st_meta_count(f); i++) {
        nn_st_meta_at(f, i, &m[i].key, &m[i].value);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nn_st_write_buffer(d, n, m, nn_st_meta_count(f), &buf, &len, err, sizeof err);
    if (rc == 0) {
        nn_st_file_t *g = NULL;
        nn_st_limits_t big = {.max_header = (size_t)64 << 20, .max_tensors = 4096};
        if (nn_st_parse(buf, len, &big, &g, err, sizeof err) != 0 || nn_st_count(g) != n ||
            nn_st_meta_count(g) != nn_st_meta_count(f)) {
            __builtin_trap();
        }
        for (size_t i = 0; i < n; i++) {
            const nn_st_tensor_t *a = nn_st_at(f, i), *b = nn_st_at(g, i);
            if (strcmp(a->name, b->name) != 0 || a->dtype != b->dtype || a->rank != b->rank ||
                a->nbytes != b->nbytes || memcmp(a->data, b->data, a->nbytes) != 0) {
                __builtin_trap();
            }
        }
        nn_st_close(g);
        core_free(buf);
    } else if (rc != CORE_ERR(ENOMEM)) {
        /* Whatever parses must be writable again: names, shapes and metadata are all valid. */
        __builtin_trap();
    }
    core_free(m);
    core_free(d);
    nn_st_close(f);
    (void)sum;
    return 0;
}
