/* safetensors reader and writer (see nn/safetensors.h for the format and the contract).
 *
 * The reader is a parser of outside bytes: every length is bounded before anything is allocated,
 * every size product is overflow-checked, and every offset is validated against the buffer before
 * a pointer into it is formed. The JSON itself is parsed by jansson (depth-limited, rejects
 * duplicate keys and embedded NULs). The writer lays tensors out by decreasing itemsize so that
 * each one is aligned to its element size, pads the header to 8 bytes like the reference writer,
 * and replaces the destination atomically (temp file, fsync, rename, fsync of the directory). */
#include "nn/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"

static const struct {
    const char *name;
    size_t size;
} st_dtypes[NN_ST_DTYPE_COUNT] = {
    [NN_ST_BOOL] = {"BOOL", 1},       [NN_ST_U8] = {"U8", 1},           [NN_ST_I8] = {"I8", 1},
    [NN_ST_F8_E5M2] = {"F8_E5M2", 1}, [NN_ST_F8_E4M3] = {"F8_E4M3", 1}, [NN_ST_I16] = {"I16", 2},
    [NN_ST_U16] = {"U16", 2},         [NN_ST_F16] = {"F16", 2},         [NN_ST_BF16] = {"BF16", 2},
    [NN_ST_I32] = {"I32", 4},         [NN_ST_U32] = {"U32", 4},         [NN_ST_F32] = {"F32", 4},
    [NN_ST_F64] = {"F64", 8},         [NN_ST_I64] = {"I64", 8},         [NN_ST_U64] = {"U64", 8},
};

struct nn_st_file_s {
    const uint8_t *bytes; /* whole file */
    size_t len;
    size_t header_len;
    void *map;               /* mmap'd region (munmap on close) or NULL */
    uint8_t *heap;           /* core_malloc'd copy (read fallback) or NULL */
    nn_st_tensor_t *tensors; /* sorted by name; names owned (core_strdup) */
    size_t n_tensors;
    nn_st_meta_t *meta; /* sorted by key; strings owned */
    size_t n_meta;
};

size_t nn_st_dtype_size(nn_st_dtype_t dt)
{
    return (unsigned)dt < NN_ST_DTYPE_COUNT ? st_dtypes[dt].size : 0;
}

const char *nn_st_dtype_name(nn_st_dtype_t dt)
{
    return (unsigned)dt < NN_ST_DTYPE_COUNT ? st_dtypes[dt].name : "?";
}

int nn_st_dtype_parse(const char *s, nn_st_dtype_t *out)
{
    for (int i = 0; i < NN_ST_DTYPE_COUNT; i++) {
        if (strcmp(s, st_dtypes[i].name) == 0) {
            *out = (nn_st_dtype_t)i;
            return 0;
        }
    }
    return CORE_ENOT_FOUND;
}

__attribute__((format(printf, 3, 4))) static void st_err(char *err, size_t errlen, const char *fmt,
                                                         ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "[2, 3, 4]" into buf (for messages). */
static const char *st_shape_str(char *buf, size_t cap, int rank, const int64_t *shape)
{
    size_t pos = 0;
    buf[0] = '\0';
    pos += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && pos < cap; i++) {
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (pos < cap) {
        snprintf(buf + pos, cap - pos, "]");
    }
    return buf;
}

/* numel and byte size of a shape, overflow-checked. */
static int st_sizes(nn_st_dtype_t dt, int rank, const int64_t *shape, size_t *numel, size_t *nbytes)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0) {
            return CORE_ECORRUPT;
        }
        if ((uint64_t)shape[i] > SIZE_MAX || core_size_mul(n, (size_t)shape[i], &n) != 0) {
            return CORE_ETOO_LARGE;
        }
    }
    size_t b;
    if (core_size_mul(n, nn_st_dtype_size(dt), &b) != 0) {
        return CORE_ETOO_LARGE;
    }
    *numel = n;
    *nbytes = b;
    return 0;
}

static int st_cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const nn_st_tensor_t *)a)->name, ((const nn_st_tensor_t *)b)->name);
}

static int st_cmp_meta_key(const void *a, const void *b)
{
    return strcmp(((const nn_st_meta_t *)a)->key, ((const nn_st_meta_t *)b)->key);
}

/* Order by (offset, nbytes): zero-size tensors sit at their offset before the tensor there. */
static int st_cmp_tensor_ptr_offset(const void *a, const void *b)
{
    const nn_st_tensor_t *x = *(const nn_st_tensor_t *const *)a;
    const nn_st_tensor_t *y = *(const nn_st_tensor_t *const *)b;
    if (x->offset != y->offset) {
        return x->offset < y->offset ? -1 : 1;
    }
    if (x->nbytes != y->nbytes) {
        return x->nbytes < y->nbytes ? -1 : 1;
    }
    return 0;
}

static void st_free_tables(nn_st_file_t *f)
{
    for (size_t i = 0; i < f->n_tensors; i++) {
        core_free((void *)f->tensors[i].name);
    }
    core_free(f->tensors);
    for (size_t i = 0; i < f->n_meta; i++) {
        core_free((void *)f->meta[i].key);
        core_free((void *)f->meta[i].value);
    }
    core_free(f->meta);
    f->tensors = NULL;
    f->meta = NULL;
    f->n_tensors = f->n_meta = 0;
}

/* A non-negative JSON integer. */
static int st_json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) {
        return CORE_ECORRUPT;
    }
    json_int_t x = json_integer_value(v);
    if (x < 0) {
        return CORE_ECORRUPT;
    }
    *out = (uint64_t)x;
    return 0;
}

static int st_parse_meta(nn_st_file_t *f, json_t *obj, char *err, size_t errlen)
{
    if (!json_is_object(obj)) {
        st_err(err, errlen, "__metadata__ is not an object");
        return CORE_ECORRUPT;
    }
    size_t n = json_object_size(obj);
    if (n == 0) {
        return 0;
    }
    f->meta = core_calloc(n, sizeof *f->meta);
    if (f->meta == NULL) {
        return CORE_ERR(ENOMEM);
    }
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        if (!json_is_string(val)) {
            st_err(err, errlen, "__metadata__[\"%.200s\"] is not a string", key);
            return CORE_ECORRUPT;
        }
        if (strlen(key) > NN_ST_MAX_NAME) {
            st_err(err, errlen, "__metadata__ key longer than %d bytes", NN_ST_MAX_NAME);
            return CORE_ETOO_LARGE;
        }
        nn_st_meta_t *m = &f->meta[f->n_meta];
        m->key = core_strdup(key);
        m->value = core_strdup(json_string_value(val));
        f->n_meta++;
        if (m->key == NULL || m->value == NULL) {
            return CORE_ERR(ENOMEM);
        }
    }
    qsort(f->meta, f->n_meta, sizeof *f->meta, st_cmp_meta_key);
    return 0;
}

/* One tensor entry; validates everything about it except its neighbours. */
static int st_parse_tensor(nn_st_file_t *f, const char *key, json_t *val, size_t data_len,
                           nn_st_tensor_t *t, char *err, size_t errlen)
{
    int rc;
    if (key[0] == '\0') {
        st_err(err, errlen, "empty tensor name");
        return CORE_ECORRUPT;
    }
    if (strlen(key) > NN_ST_MAX_NAME) {
        st_err(err, errlen, "tensor name longer than %d bytes", NN_ST_MAX_NAME);
        return CORE_ETOO_LARGE;
    }
    if (!json_is_object(val)) {
        st_err(err, errlen, "tensor \"%.200s\": entry is not an object", key);
        return CORE_ECORRUPT;
    }
    json_t *jd = json_object_get(val, "dtype");
    json_t *js = json_object_get(val, "shape");
    json_t *jo = json_object_get(val, "data_offsets");
    if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) ||
        json_array_size(jo) != 2) {
        st_err(err, errlen, "tensor \"%.200s\": missing or ill-typed dtype/shape/data_offsets",
               key);
        return CORE_ECORRUPT;
    }
    if (nn_st_dtype_parse(json_string_value(jd), &t->dtype) != 0) {
        st_err(err, errlen, "tensor \"%.200s\": unknown dtype \"%.32s\"", key,
               json_string_value(jd));
        return CORE_ECORRUPT;
    }
    size_t rank = json_array_size(js);
    if (rank > NN_ST_MAX_RANK) {
        st_err(err, errlen, "tensor \"%.200s\": rank %zu over the maximum %d", key, rank,
               NN_ST_MAX_RANK);
        return CORE_ECORRUPT;
    }
    t->rank = (int)rank;
    for (size_t i = 0; i < rank; i++) {
        uint64_t d;
        if (st_json_u64(json_array_get(js, i), &d) != 0) {
            st_err(err, errlen, "tensor \"%.200s\": shape[%zu] is not a non-negative integer", key,
                   i);
            return CORE_ECORRUPT;
        }
        t->shape[i] = (int64_t)d;
    }
    rc = st_sizes(t->dtype, t->rank, t->shape, &t->numel, &t->nbytes);
    if (rc != 0) {
        st_err(err, errlen, "tensor \"%.200s\": shape size overflows", key);
        return rc;
    }
    uint64_t b, e;
    if (st_json_u64(json_array_get(jo, 0), &b) != 0 ||
        st_json_u64(json_array_get(jo, 1), &e) != 0 || b > e || e > data_len) {
        st_err(err, errlen, "tensor \"%.200s\": data_offsets outside the %zu-byte buffer", key,
               data_len);
        return CORE_ECORRUPT;
    }
    if (e - b != t->nbytes) {
        st_err(err, errlen, "tensor \"%.200s\": span of %llu bytes but %s x %zu elements needs %zu",
               key, (unsigned long long)(e - b), nn_st_dtype_name(t->dtype), t->numel, t->nbytes);
        return CORE_ECORRUPT;
    }
    t->offset = (size_t)b;
    t->data = f->bytes + 8 + f->header_len + t->offset;
    t->name = core_strdup(key);
    return t->name != NULL ? 0 : CORE_ERR(ENOMEM);
}

/* Parses the header of f->bytes/f->len into f's tables. */
static int st_parse_into(nn_st_file_t *f, const nn_st_limits_t *lim, char *err, size_t errlen)
{
    int rc = 0;
    json_t *root = NULL;
    nn_st_tensor_t **by_off = NULL;
    size_t max_header = lim && lim->max_header ? lim->max_header : NN_ST_DEFAULT_MAX_HEADER;
    size_t max_tensors = lim && lim->max_tensors ? lim->max_tensors : NN_ST_DEFAULT_MAX_TENSORS;

    if (f->len < 8) {
        st_err(err, errlen, "file of %zu bytes is shorter than the 8-byte header length", f->len);
        return CORE_ECORRUPT;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) {
        n = (n << 8) | f->bytes[i];
    }
    if (n > max_header) {
        st_err(err, errlen, "header of %llu bytes over the limit of %zu", (unsigned long long)n,
               max_header);
        return CORE_ETOO_LARGE;
    }
    if (n > f->len - 8) {
        st_err(err, errlen, "header of %llu bytes runs past the end of the %zu-byte file",
               (unsigned long long)n, f->len);
        return CORE_ECORRUPT;
    }
    f->header_len = (size_t)n;
    if (n < 2 || f->bytes[8] != '{') {
        st_err(err, errlen, "header does not start with '{': not a safetensors file");
        return CORE_EBAD_MAGIC;
    }
    size_t data_len = f->len - 8 - f->header_len;

    json_error_t jerr;
    root = json_loadb((const char *)f->bytes + 8, f->header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        st_err(err, errlen, "header JSON: %.200s", root ? "not an object" : jerr.text);
        CORE_FAIL_IF(1, CORE_ECORRUPT);
    }
    json_t *jmeta = json_object_get(root, "__metadata__");
    size_t n_t = json_object_size(root) - (jmeta != NULL);
    if (n_t > max_tensors) {
        st_err(err, errlen, "%zu tensors over the limit of %zu", n_t, max_tensors);
        CORE_FAIL_IF(1, CORE_ETOO_LARGE);
    }
    if (jmeta != NULL) {
        CORE_TRY(st_parse_meta(f, jmeta, err, errlen));
    }
    if (n_t > 0) {
        f->tensors = core_calloc(n_t, sizeof *f->tensors);
        by_off = core_calloc(n_t, sizeof *by_off);
        CORE_FAIL_IF(f->tensors == NULL || by_off == NULL, CORE_ERR(ENOMEM));
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (val == jmeta) {
            continue;
        }
        nn_st_tensor_t *t = &f->tensors[f->n_tensors];
        rc = st_parse_tensor(f, key, val, data_len, t, err, errlen);
        if (t->name != NULL) {
            f->n_tensors++;
        }
        CORE_TRY(rc);
    }
    /* The tensors must tile the buffer: sorted by offset, each starts where the previous ends. */
    for (size_t i = 0; i < f->n_tensors; i++) {
        by_off[i] = &f->tensors[i];
    }
    if (f->n_tensors > 0) {
        qsort(by_off, f->n_tensors, sizeof *by_off, st_cmp_tensor_ptr_offset);
    }
    size_t pos = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        if (by_off[i]->offset != pos) {
            st_err(err, errlen, "tensor \"%.200s\": data at offset %zu %s the previous end %zu",
                   by_off[i]->name, by_off[i]->offset,
                   by_off[i]->offset < pos ? "overlaps" : "leaves a gap after", pos);
            CORE_FAIL_IF(1, CORE_ECORRUPT);
        }
        pos += by_off[i]->nbytes;
    }
    if (pos != data_len) {
        st_err(err, errlen, "tensors cover %zu bytes of a %zu-byte data buffer", pos, data_len);
        CORE_FAIL_IF(1, CORE_ECORRUPT);
    }
    if (f->n_tensors > 0) {
        qsort(f->tensors, f->n_tensors, sizeof *f->tensors, st_cmp_tensor_name);
    }
    rc = 0;
fail:
    core_free(by_off);
    json_decref(root);
    return rc;
}

int nn_st_parse(const uint8_t *buf, size_t len, const nn_st_limits_t *lim, nn_st_file_t **out,
                char *err, size_t errlen)
{
    *out = NULL;
    nn_st_file_t *f = core_calloc(1, sizeof *f);
    if (f == NULL) {
        return CORE_ERR(ENOMEM);
    }
    f->bytes = buf;
    f->len = len;
    int rc = st_parse_into(f, lim, err, errlen);
    if (rc != 0) {
        nn_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

static int st_read_all(int fd, uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = read(fd, buf + done, len - done);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return CORE_ERR(errno);
        }
        if (r == 0) {
            return CORE_ECORRUPT; /* file shrank under us */
        }
        done += (size_t)r;
    }
    return 0;
}

int nn_st_open(const char *path, const nn_st_limits_t *lim, nn_st_file_t **out, char *err,
               size_t errlen)
{
    int rc = 0;
    *out = NULL;
    nn_st_file_t *f = core_calloc(1, sizeof *f);
    if (f == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = CORE_ERR(errno);
        st_err(err, errlen, "%.300s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = CORE_ERR(errno);
        st_err(err, errlen, "%.300s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > SIZE_MAX) {
        st_err(err, errlen, "%.300s: not a regular file", path);
        CORE_FAIL_IF(1, CORE_ECORRUPT);
    }
    f->len = (size_t)st.st_size;
    if (f->len > 0) {
        void *m = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            f->map = m;
            f->bytes = m;
        } else {
            /* Some file systems cannot map; read the file instead. */
            f->heap = core_malloc(f->len);
            CORE_FAIL_IF(f->heap == NULL, CORE_ERR(ENOMEM));
            rc = st_read_all(fd, f->heap, f->len);
            if (rc != 0) {
                st_err(err, errlen, "%.300s: read failed", path);
                goto fail;
            }
            f->bytes = f->heap;
        }
    }
    close(fd);
    fd = -1;
    rc = st_parse_into(f, lim, err, errlen);
    if (rc != 0) {
        goto fail;
    }
    *out = f;
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
    }
    nn_st_close(f);
    return rc;
}

void nn_st_close(nn_st_file_t *f)
{
    if (f == NULL) {
        return;
    }
    st_free_tables(f);
    if (f->map != NULL) {
        munmap(f->map, f->len);
    }
    core_free(f->heap);
    core_free(f);
}

size_t nn_st_count(const nn_st_file_t *f)
{
    return f->n_tensors;
}

const nn_st_tensor_t *nn_st_at(const nn_st_file_t *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const nn_st_tensor_t *nn_st_find(const nn_st_file_t *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (c == 0) {
            return &f->tensors[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

int nn_st_expect(const nn_st_file_t *f, const char *name, nn_st_dtype_t dtype, int rank,
                 const int64_t *shape, const nn_st_tensor_t **out, char *err, size_t errlen)
{
    const nn_st_tensor_t *t = nn_st_find(f, name);
    if (t == NULL) {
        st_err(err, errlen, "tensor \"%.300s\" not found", name);
        return CORE_ENOT_FOUND;
    }
    if (t->dtype != dtype) {
        st_err(err, errlen, "tensor \"%.300s\": dtype %s, expected %s", name,
               nn_st_dtype_name(t->dtype), nn_st_dtype_name(dtype));
        return CORE_EDTYPE_MISMATCH;
    }
    int same = t->rank == rank;
    for (int i = 0; same && i < rank; i++) {
        same = t->shape[i] == shape[i];
    }
    if (!same) {
        char a[96], b[96];
        st_err(err, errlen, "tensor \"%.300s\": shape %s, expected %s", name,
               st_shape_str(a, sizeof a, t->rank, t->shape),
               st_shape_str(b, sizeof b,
                            rank < 0                ? 0
                            : rank > NN_ST_MAX_RANK ? NN_ST_MAX_RANK
                                                    : rank,
                            shape));
        return CORE_ESHAPE_MISMATCH;
    }
    if (out != NULL) {
        *out = t;
    }
    return 0;
}

size_t nn_st_meta_count(const nn_st_file_t *f)
{
    return f->n_meta;
}

void nn_st_meta_at(const nn_st_file_t *f, size_t i, const char **key, const char **value)
{
    *key = i < f->n_meta ? f->meta[i].key : NULL;
    *value = i < f->n_meta ? f->meta[i].value : NULL;
}

const char *nn_st_meta_get(const nn_st_file_t *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++) {
        if (strcmp(f->meta[i].key, key) == 0) {
            return f->meta[i].value;
        }
    }
    return NULL;
}

size_t nn_st_file_size(const nn_st_file_t *f)
{
    return f->len;
}

size_t nn_st_header_size(const nn_st_file_t *f)
{
    return f->header_len;
}

/* ------------------------------------------------------------------------------------------ */
/* Writer */

typedef struct {
    const nn_st_desc_t *descs;
    size_t *order;  /* layout order: itemsize desc, then name */
    size_t *nbytes; /* per desc */
    char *header;   /* core_malloc'd: 8-byte length + padded JSON */
    size_t header_total;
    size_t data_len;
} st_plan_t;

static int st_cmp_layout(const void *a, const void *b, void *ctx)
{
    const nn_st_desc_t *d = ctx;
    const nn_st_desc_t *x = &d[*(const size_t *)a];
    const nn_st_desc_t *y = &d[*(const size_t *)b];
    size_t sx = nn_st_dtype_size(x->dtype), sy = nn_st_dtype_size(y->dtype);
    if (sx != sy) {
        return sx > sy ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

static void st_plan_free(st_plan_t *p)
{
    core_free(p->order);
    core_free(p->nbytes);
    core_free(p->header);
    memset(p, 0, sizeof *p);
}

/* Validates the descriptors and builds the header. */
static int st_plan(st_plan_t *p, const nn_st_desc_t *d, size_t n, const nn_st_meta_t *meta,
                   size_t n_meta, char *err, size_t errlen)
{
    int rc = 0;
    json_t *root = NULL, *jmeta = NULL;
    memset(p, 0, sizeof *p);
    p->descs = d;
    p->order = core_calloc(n ? n : 1, sizeof *p->order);
    p->nbytes = core_calloc(n ? n : 1, sizeof *p->nbytes);
    CORE_FAIL_IF(p->order == NULL || p->nbytes == NULL, CORE_ERR(ENOMEM));
    for (size_t i = 0; i < n; i++) {
        const char *name = d[i].name;
        if (name == NULL || name[0] == '\0' || strcmp(name, "__metadata__") == 0 ||
            strlen(name) > NN_ST_MAX_NAME) {
            st_err(err, errlen, "tensor %zu: invalid name \"%.200s\"", i, name ? name : "(null)");
            CORE_FAIL_IF(1, CORE_ECONFIG);
        }
        if ((unsigned)d[i].dtype >= NN_ST_DTYPE_COUNT || d[i].rank < 0 ||
            d[i].rank > NN_ST_MAX_RANK) {
            st_err(err, errlen, "tensor \"%.200s\": invalid dtype or rank", name);
            CORE_FAIL_IF(1, CORE_ECONFIG);
        }
        size_t numel;
        rc = st_sizes(d[i].dtype, d[i].rank, d[i].shape, &numel, &p->nbytes[i]);
        if (rc != 0) {
            st_err(err, errlen, "tensor \"%.200s\": invalid or overflowing shape", name);
            CORE_FAIL_IF(1, rc == CORE_ECORRUPT ? CORE_ECONFIG : rc);
        }
        if (d[i].data == NULL && p->nbytes[i] != 0) {
            st_err(err, errlen, "tensor \"%.200s\": NULL data", name);
            CORE_FAIL_IF(1, CORE_ECONFIG);
        }
        p->order[i] = i;
    }
    if (n > 0) {
        qsort_r(p->order, n, sizeof *p->order, st_cmp_layout, (void *)d);
    }
    root = json_object();
    CORE_FAIL_IF(root == NULL, CORE_ERR(ENOMEM));
    if (n_meta > 0) {
        jmeta = json_object();
        CORE_FAIL_IF(jmeta == NULL, CORE_ERR(ENOMEM));
        for (size_t i = 0; i < n_meta; i++) {
            json_t *s = json_string(meta[i].value ? meta[i].value : "");
            if (meta[i].key == NULL || s == NULL || json_object_get(jmeta, meta[i].key) != NULL) {
                json_decref(s);
                st_err(err, errlen,
                       "metadata %zu: invalid (not UTF-8) or duplicate entry \"%.200s\"", i,
                       meta[i].key ? meta[i].key : "(null)");
                CORE_FAIL_IF(1, CORE_ECONFIG);
            }
            CORE_FAIL_IF(json_object_set_new(jmeta, meta[i].key, s) != 0, CORE_ECONFIG);
        }
        CORE_FAIL_IF(json_object_set_new(root, "__metadata__", jmeta) != 0, CORE_ERR(ENOMEM));
        jmeta = NULL;
    }
    size_t off = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = p->order[k];
        if (json_object_get(root, d[i].name) != NULL) {
            st_err(err, errlen, "tensor \"%.200s\": duplicate name or not UTF-8", d[i].name);
            CORE_FAIL_IF(1, CORE_ECONFIG);
        }
        json_t *shape = json_array();
        json_t *t =
            json_pack("{s:s, s:o, s:[I,I]}", "dtype", nn_st_dtype_name(d[i].dtype), "shape", shape,
                      "data_offsets", (json_int_t)off, (json_int_t)(off + p->nbytes[i]));
        CORE_FAIL_IF(t == NULL, CORE_ERR(ENOMEM));
        for (int r = 0; r < d[i].rank; r++) {
            json_array_append_new(shape, json_integer((json_int_t)d[i].shape[r]));
        }
        if (json_object_set_new(root, d[i].name, t) != 0) {
            st_err(err, errlen, "tensor \"%.200s\": name is not valid UTF-8", d[i].name);
            CORE_FAIL_IF(1, CORE_ECONFIG);
        }
        CORE_FAIL_IF(core_size_add(off, p->nbytes[i], &off) != 0, CORE_ETOO_LARGE);
    }
    p->data_len = off;
    size_t jlen = json_dumpb(root, NULL, 0, JSON_COMPACT);
    CORE_FAIL_IF(jlen == 0, CORE_ERR(ENOMEM));
    size_t padded = (jlen + 7) & ~(size_t)7;
    p->header_total = 8 + padded;
    p->header = core_malloc(p->header_total);
    CORE_FAIL_IF(p->header == NULL, CORE_ERR(ENOMEM));
    CORE_FAIL_IF(json_dumpb(root, p->header + 8, jlen, JSON_COMPACT) != jlen, CORE_ERR(EIO));
    memset(p->header + 8 + jlen, ' ', padded - jlen);
    for (int b = 0; b < 8; b++) {
        p->header[b] = (char)(uint8_t)((uint64_t)padded >> (8 * b));
    }
    rc = 0;
fail:
    json_decref(jmeta);
    json_decref(root);
    if (rc != 0) {
        st_plan_free(p);
    }
    return rc;
}

int nn_st_write_buffer(const nn_st_desc_t *tensors, size_t n_tensors, const nn_st_meta_t *meta,
                       size_t n_meta, uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    st_plan_t p;
    *out = NULL;
    *out_len = 0;
    int rc = st_plan(&p, tensors, n_tensors, meta, n_meta, err, errlen);
    if (rc != 0) {
        return rc;
    }
    size_t total;
    if (core_size_add(p.header_total, p.data_len, &total) != 0) {
        st_plan_free(&p);
        return CORE_ETOO_LARGE;
    }
    uint8_t *buf = core_malloc(total);
    if (buf == NULL) {
        st_plan_free(&p);
        return CORE_ERR(ENOMEM);
    }
    memcpy(buf, p.header, p.header_total);
    size_t pos = p.header_total;
    for (size_t k = 0; k < n_tensors; k++) {
        size_t i = p.order[k];
        if (p.nbytes[i] > 0) {
            memcpy(buf + pos, tensors[i].data, p.nbytes[i]);
        }
        pos += p.nbytes[i];
    }
    st_plan_free(&p);
    *out = buf;
    *out_len = total;
    return 0;
}

static int st_write_all(int fd, const void *data, size_t len)
{
    const uint8_t *b = data;
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? (size_t)1 << 30 : len;
        ssize_t w = write(fd, b, chunk);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return CORE_ERR(errno);
        }
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding `path`, so the rename itself is durable. */
static int st_fsync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL   ? core_strdup(".")
                : slash == path ? core_strdup("/")
                                : core_strndup(path, (size_t)(slash - path));
    if (dir == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    core_free(dir);
    if (fd < 0) {
        return CORE_ERR(errno);
    }
    int rc = fsync(fd) != 0 ? CORE_ERR(errno) : 0;
    close(fd);
    return rc;
}

int nn_st_write_file(const char *path, const nn_st_desc_t *tensors, size_t n_tensors,
                     const nn_st_meta_t *meta, size_t n_meta, char *err, size_t errlen)
{
    st_plan_t p;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    int rc = st_plan(&p, tensors, n_tensors, meta, n_meta, err, errlen);
    if (rc != 0) {
        return rc;
    }
    int fd = -1;
    size_t plen = strlen(path);
    char *tmp = core_malloc(plen + 16);
    CORE_FAIL_IF(tmp == NULL, CORE_ERR(ENOMEM));
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = CORE_ERR(errno);
        st_err(err, errlen, "%.300s: cannot create a temporary file: %s", path, strerror(errno));
        core_free(tmp);
        tmp = NULL;
        goto fail;
    }
    /* mkstemp creates 0600; a checkpoint is an ordinary data file. */
    CORE_FAIL_IF(fchmod(fd, 0644) != 0, CORE_ERR(errno));
    CORE_TRY(st_write_all(fd, p.header, p.header_total));
    for (size_t k = 0; k < n_tensors; k++) {
        size_t i = p.order[k];
        if (p.nbytes[i] > 0) {
            CORE_TRY(st_write_all(fd, tensors[i].data, p.nbytes[i]));
        }
    }
    CORE_FAIL_IF(fsync(fd) != 0, CORE_ERR(errno));
    CORE_FAIL_IF(close(fd) != 0, CORE_ERR(errno));
    fd = -1;
    CORE_FAIL_IF(rename(tmp, path) != 0, CORE_ERR(errno));
    core_free(tmp);
    tmp = NULL;
    CORE_TRY(st_fsync_dir(path));
    st_plan_free(&p);
    return 0;
fail:
    if (err != NULL && errlen > 0 && err[0] == '\0') {
        st_err(err, errlen, "%.300s: write failed: %s", path, core_strerror(rc));
    }
    if (fd >= 0) {
        close(fd);
    }
    if (tmp != NULL) {
        unlink(tmp);
        core_free(tmp);
    }
    st_plan_free(&p);
    return rc;
}
