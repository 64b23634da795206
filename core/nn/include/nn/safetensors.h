/* safetensors files: a pure parser over bytes, a file loader (mmap, or read as a fallback) and an
 * atomic writer.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes
 * of UTF-8 JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value", ...}}, then the byte buffer; offsets are relative to the start
 * of the buffer. Like the reference implementation, the parser requires the tensors to tile the
 * buffer exactly (sorted by offset, no gaps, no overlaps, the last one ending at the end of the
 * file), and every span to equal product(shape) x itemsize. Tensor data is little-endian.
 *
 * Thread safety: a parsed nn_st_file_t is immutable and may be read from any number of threads;
 * the functions themselves keep no global state. */
#ifndef NN_SAFETENSORS_H
#define NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* Element types of the format (names as in the JSON: "F32", "F64", ...). */
typedef enum {
    NN_ST_BOOL,
    NN_ST_U8,
    NN_ST_I8,
    NN_ST_F8_E5M2,
    NN_ST_F8_E4M3,
    NN_ST_I16,
    NN_ST_U16,
    NN_ST_F16,
    NN_ST_BF16,
    NN_ST_I32,
    NN_ST_U32,
    NN_ST_F32,
    NN_ST_F64,
    NN_ST_I64,
    NN_ST_U64,
    NN_ST_DTYPE_COUNT
} nn_st_dtype_t;

#define NN_ST_MAX_RANK 8

/* Default limits (nn_st_limits_t fields left 0 take these). */
#define NN_ST_DEFAULT_MAX_HEADER ((size_t)64 << 20) /* bytes of JSON */
#define NN_ST_DEFAULT_MAX_TENSORS ((size_t)1 << 20)
#define NN_ST_MAX_NAME 4096 /* bytes in a tensor name or metadata key */

/* Length of the error-message buffers taken by the functions below (enough for any message). */
#define NN_ST_ERRLEN 512

typedef struct {
    size_t max_header;  /* largest accepted JSON header; 0 = NN_ST_DEFAULT_MAX_HEADER */
    size_t max_tensors; /* most tensors accepted; 0 = NN_ST_DEFAULT_MAX_TENSORS */
} nn_st_limits_t;

/* One tensor of a parsed file. Every pointer is borrowed from the nn_st_file_t and valid until
 * nn_st_close(); `data` points into the file's bytes and is NOT necessarily aligned for its type
 * (copy with memcpy). */
typedef struct {
    const char *name;
    nn_st_dtype_t dtype;
    int rank;
    int64_t shape[NN_ST_MAX_RANK];
    size_t numel;
    const uint8_t *data;
    size_t nbytes;
    size_t offset; /* begin offset in the data buffer */
} nn_st_tensor_t;

typedef struct nn_st_file_s nn_st_file_t;

/* Bytes per element; "F32" style name; parse a name (returns 0 or CORE_ENOT_FOUND). */
size_t nn_st_dtype_size(nn_st_dtype_t dt);
const char *nn_st_dtype_name(nn_st_dtype_t dt);
int nn_st_dtype_parse(const char *s, nn_st_dtype_t *out);

/* Parses `len` bytes at `buf`. The result BORROWS `buf`: it must stay valid and unchanged until
 * nn_st_close(). `lim` may be NULL (defaults). Returns 0 and *out, or:
 *   CORE_ECORRUPT   shorter than the 8-byte prefix, header past the end, invalid JSON, a missing
 *                   or ill-typed field, an unknown dtype, a rank over NN_ST_MAX_RANK, a negative
 *                   dimension, a span that is not numel x itemsize, offsets outside the buffer,
 *                   overlapping or not tiling it, duplicate names, non-string metadata;
 *   CORE_EBAD_MAGIC the header does not start with '{' (not a safetensors file);
 *   CORE_ETOO_LARGE header over max_header, more than max_tensors tensors, a shape whose byte size
 *                   overflows size_t;
 *   CORE_ERR(ENOMEM).
 * If `err` is not NULL a message of at most errlen bytes (naming the offending tensor) is written
 * on failure. Never reads outside [buf, buf+len). */
int nn_st_parse(const uint8_t *buf, size_t len, const nn_st_limits_t *lim, nn_st_file_t **out,
                char *err, size_t errlen);

/* Opens and parses a file: mmap (read-only, private) when possible, else reads it into memory.
 * The mapping lives until nn_st_close(). Errors as nn_st_parse plus -errno from open/read/mmap. */
int nn_st_open(const char *path, const nn_st_limits_t *lim, nn_st_file_t **out, char *err,
               size_t errlen);

/* Releases everything (mapping, buffer, tables). Accepts NULL. */
void nn_st_close(nn_st_file_t *f);

/* Tensors in name order (strcmp); i < nn_st_count(f). Borrowed. */
size_t nn_st_count(const nn_st_file_t *f);
const nn_st_tensor_t *nn_st_at(const nn_st_file_t *f, size_t i);
/* Lookup by exact name (binary search); NULL when absent. */
const nn_st_tensor_t *nn_st_find(const nn_st_file_t *f, const char *name);

/* Looks `name` up and checks its dtype and shape. Returns 0 and *out (borrowed), or
 * CORE_ENOT_FOUND / CORE_EDTYPE_MISMATCH / CORE_ESHAPE_MISMATCH with a message in `err` that names
 * the tensor and shows expected and found values. `out` may be NULL. */
int nn_st_expect(const nn_st_file_t *f, const char *name, nn_st_dtype_t dtype, int rank,
                 const int64_t *shape, const nn_st_tensor_t **out, char *err, size_t errlen);

/* "__metadata__" entries in key order; borrowed strings. nn_st_meta_get returns NULL if absent. */
size_t nn_st_meta_count(const nn_st_file_t *f);
void nn_st_meta_at(const nn_st_file_t *f, size_t i, const char **key, const char **value);
const char *nn_st_meta_get(const nn_st_file_t *f, const char *key);

/* Total bytes of the whole file / of the JSON header. */
size_t nn_st_file_size(const nn_st_file_t *f);
size_t nn_st_header_size(const nn_st_file_t *f);

/* ------------------------------------------------------------------------------------------ */
/* Writing */

/* A tensor to write. All pointers are borrowed for the duration of the call. `data` holds
 * numel x itemsize bytes in native (little-endian) order; it may be NULL only when numel is 0. */
typedef struct {
    const char *name;
    nn_st_dtype_t dtype;
    int rank;
    int64_t shape[NN_ST_MAX_RANK];
    const void *data;
} nn_st_desc_t;

/* A metadata entry; both strings borrowed. */
typedef struct {
    const char *key;
    const char *value;
} nn_st_meta_t;

/* Writes a safetensors file atomically: a temporary file in the same directory, every byte
 * written, fsync, rename over `path`, fsync of the directory. On failure the temporary file is
 * removed and `path` is untouched. Tensors are laid out by decreasing itemsize and then name, so
 * every tensor is aligned to its itemsize in the file (the header is padded with spaces to a
 * multiple of 8, as the reference writer does). Returns 0, CORE_ECONFIG (duplicate/empty name,
 * "__metadata__" as a name, bad rank or dimension, NULL data with numel > 0, duplicate metadata
 * key) with a message in `err`, CORE_ETOO_LARGE, or -errno. Thread-safe for distinct paths. */
int nn_st_write_file(const char *path, const nn_st_desc_t *tensors, size_t n_tensors,
                     const nn_st_meta_t *meta, size_t n_meta, char *err, size_t errlen);

/* Same layout into one core_malloc'd buffer (*out, *out_len; free with core_free). For tests,
 * fuzz round trips and small files. */
int nn_st_write_buffer(const nn_st_desc_t *tensors, size_t n_tensors, const nn_st_meta_t *meta,
                       size_t n_meta, uint8_t **out, size_t *out_len, char *err, size_t errlen);

#endif
