/* safetensors reader/writer: round trips (buffer and file), layout and alignment, a file in the
 * reference writer's exact layout, name/dtype/shape checks that name the offender, and one case
 * per class of malformed input with its expected error code. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/safetensors.h"
#include "t.h"

static const float k_a[6] = {1, 2, 3, 4, 5, 6};
static const double k_b[5] = {0.5, -1.25, 3e100, 0, -0.0};
static const int64_t k_c[4] = {-1, 0, 1, INT64_MAX};
static const float k_s[1] = {42.0f};
static const uint8_t k_u[3] = {7, 8, 9};

/* Five tensors of different dtypes, including a scalar and an empty one. */
static size_t fill_descs(nn_st_desc_t *d)
{
    memset(d, 0, 6 * sizeof *d);
    d[0] = (nn_st_desc_t){
        .name = "visual.a", .dtype = NN_ST_F32, .rank = 2, .shape = {2, 3}, .data = k_a};
    d[1] = (nn_st_desc_t){
        .name = "cap_fq", .dtype = NN_ST_F64, .rank = 2, .shape = {1, 5}, .data = k_b};
    d[2] = (nn_st_desc_t){.name = "ids", .dtype = NN_ST_I64, .rank = 1, .shape = {4}, .data = k_c};
    d[3] = (nn_st_desc_t){.name = "scalar", .dtype = NN_ST_F32, .rank = 0, .data = k_s};
    d[4] = (nn_st_desc_t){
        .name = "empty", .dtype = NN_ST_F32, .rank = 2, .shape = {0, 3}, .data = NULL};
    d[5] = (nn_st_desc_t){.name = "bytes", .dtype = NN_ST_U8, .rank = 1, .shape = {3}, .data = k_u};
    return 6;
}

static void check_contents(const nn_st_file_t *f)
{
    T_ASSERT_EQ(nn_st_count(f), 6);
    /* name order */
    const char *want[] = {"bytes", "cap_fq", "empty", "ids", "scalar", "visual.a"};
    for (size_t i = 0; i < 6; i++) {
        T_ASSERT_STR_EQ(nn_st_at(f, i)->name, want[i]);
    }
    T_ASSERT(nn_st_at(f, 6) == NULL);
    const nn_st_tensor_t *t;
    int64_t sa[2] = {2, 3};
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_st_expect(f, "visual.a", NN_ST_F32, 2, sa, &t, err, sizeof err));
    T_ASSERT_EQ(t->numel, 6);
    T_ASSERT_EQ(t->nbytes, 24);
    T_ASSERT(memcmp(t->data, k_a, sizeof k_a) == 0);
    t = nn_st_find(f, "cap_fq");
    T_ASSERT(t != NULL && t->dtype == NN_ST_F64 && t->rank == 2 && t->shape[1] == 5);
    T_ASSERT(memcmp(t->data, k_b, sizeof k_b) == 0);
    t = nn_st_find(f, "ids");
    T_ASSERT(t != NULL && t->dtype == NN_ST_I64 && memcmp(t->data, k_c, sizeof k_c) == 0);
    t = nn_st_find(f, "scalar");
    T_ASSERT(t != NULL && t->rank == 0 && t->numel == 1 && t->nbytes == 4);
    T_ASSERT(memcmp(t->data, k_s, 4) == 0);
    t = nn_st_find(f, "empty");
    T_ASSERT(t != NULL && t->numel == 0 && t->nbytes == 0 && t->shape[0] == 0);
    t = nn_st_find(f, "bytes");
    T_ASSERT(t != NULL && t->dtype == NN_ST_U8 && memcmp(t->data, k_u, 3) == 0);
    T_ASSERT(nn_st_find(f, "nope") == NULL);
    T_ASSERT(nn_st_find(f, "visual.") == NULL);
    /* Each tensor is aligned to its itemsize relative to the start of the file. */
    const uint8_t *base =
        nn_st_find(f, "bytes")->data - nn_st_find(f, "bytes")->offset - 8 - nn_st_header_size(f);
    for (size_t i = 0; i < nn_st_count(f); i++) {
        t = nn_st_at(f, i);
        T_ASSERT_EQ((size_t)(t->data - base) % nn_st_dtype_size(t->dtype), 0);
    }
    T_ASSERT_EQ(nn_st_header_size(f) % 8, 0);
    T_ASSERT_EQ(nn_st_meta_count(f), 2);
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "format"), "pt");
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "config"), "{\"width\": 64, \"name\": \"ü\"}");
    T_ASSERT(nn_st_meta_get(f, "nope") == NULL);
    const char *k, *v;
    nn_st_meta_at(f, 0, &k, &v);
    T_ASSERT_STR_EQ(k, "config");
}

static const nn_st_meta_t k_meta[2] = {{"format", "pt"},
                                       {"config", "{\"width\": 64, \"name\": \"ü\"}"}};

T_CASE(st_roundtrip_buffer)
{
    nn_st_desc_t d[6];
    size_t n = fill_descs(d);
    uint8_t *buf;
    size_t len;
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_st_write_buffer(d, n, k_meta, 2, &buf, &len, err, sizeof err));
    nn_st_file_t *f;
    T_ASSERT_OK(nn_st_parse(buf, len, NULL, &f, err, sizeof err));
    T_ASSERT_EQ(nn_st_file_size(f), len);
    check_contents(f);
    nn_st_close(f);
    /* Deterministic: the same input gives the same bytes. */
    uint8_t *buf2;
    size_t len2;
    T_ASSERT_OK(nn_st_write_buffer(d, n, k_meta, 2, &buf2, &len2, err, sizeof err));
    T_ASSERT(len == len2 && memcmp(buf, buf2, len) == 0);
    core_free(buf2);
    /* Every truncation fails cleanly with CORRUPT (the parser never reads past len). */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = core_malloc(cut ? cut : 1);
        memcpy(c, buf, cut);
        int rc = nn_st_parse(c, cut, NULL, &f, err, sizeof err);
        T_ASSERT(f == NULL);
        if (rc != CORE_ECORRUPT) {
            T_FAIL("truncation to %zu: %s", cut, core_err_name(rc));
        }
        core_free(c);
    }
    core_free(buf);
}

static int count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    T_ASSERT(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

T_CASE(st_roundtrip_file)
{
    nn_st_desc_t d[6];
    size_t n = fill_descs(d);
    char path[4096], err[NN_ST_ERRLEN];
    snprintf(path, sizeof path, "%s/x.safetensors", t_tmpdir());
    /* Write an unrelated file first: the writer replaces it atomically. */
    T_ASSERT_OK(nn_st_write_file(path, d, 1, NULL, 0, err, sizeof err));
    T_ASSERT_OK(nn_st_write_file(path, d, n, k_meta, 2, err, sizeof err));
    T_ASSERT_EQ(count_dir_entries(t_tmpdir()), 1); /* no temporary left behind */
    nn_st_file_t *f;
    T_ASSERT_OK(nn_st_open(path, NULL, &f, err, sizeof err));
    check_contents(f);
    nn_st_close(f);
    /* Byte-identical to the buffer writer. */
    uint8_t *buf;
    size_t len, flen;
    T_ASSERT_OK(nn_st_write_buffer(d, n, k_meta, 2, &buf, &len, err, sizeof err));
    char *file = t_read_file(path, &flen);
    T_ASSERT(flen == len && memcmp(file, buf, len) == 0);
    core_free(file);
    core_free(buf);
    /* Missing file and a directory. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/none.safetensors", t_tmpdir());
    T_ASSERT_ERR(nn_st_open(missing, NULL, &f, err, sizeof err), CORE_ERR(ENOENT));
    T_ASSERT(strstr(err, "none.safetensors") != NULL);
    T_ASSERT_ERR(nn_st_open(t_tmpdir(), NULL, &f, err, sizeof err), CORE_ECORRUPT);
    /* Writing into a directory that does not exist fails and leaves nothing. */
    snprintf(missing, sizeof missing, "%s/no/such/dir.safetensors", t_tmpdir());
    T_ASSERT_ERR(nn_st_write_file(missing, d, n, NULL, 0, err, sizeof err), CORE_ERR(ENOENT));
    T_ASSERT_EQ(count_dir_entries(t_tmpdir()), 1);
}

/* A file in the exact layout of the reference Python writer (header padded with spaces). */
T_CASE(st_reference_layout)
{
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
        "\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"BF16\",\"shape\":[1,1],"
        "\"data_offsets\":[8,10]}}";
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    uint8_t buf[512];
    memset(buf, 0, sizeof buf);
    for (int i = 0; i < 8; i++) {
        buf[i] = (uint8_t)(padded >> (8 * i));
    }
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    float a[2] = {1.5f, -2.0f};
    memcpy(buf + 8 + padded, a, 8);
    buf[8 + padded + 8] = 0x80;
    buf[8 + padded + 9] = 0x3f; /* bf16 1.0 */
    nn_st_file_t *f;
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_st_parse(buf, 8 + padded + 10, NULL, &f, err, sizeof err));
    const nn_st_tensor_t *t = nn_st_find(f, "a");
    float got[2];
    memcpy(got, t->data, 8);
    T_ASSERT(got[0] == 1.5f && got[1] == -2.0f);
    T_ASSERT_EQ(nn_st_find(f, "b")->dtype, NN_ST_BF16);
    T_ASSERT_STR_EQ(nn_st_meta_get(f, "format"), "pt");
    nn_st_close(f);
}

T_CASE(st_expect_names_offender)
{
    nn_st_desc_t d[6];
    size_t n = fill_descs(d);
    uint8_t *buf;
    size_t len;
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(nn_st_write_buffer(d, n, NULL, 0, &buf, &len, err, sizeof err));
    nn_st_file_t *f;
    T_ASSERT_OK(nn_st_parse(buf, len, NULL, &f, err, sizeof err));
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    T_ASSERT_ERR(nn_st_expect(f, "visual.b", NN_ST_F32, 2, s23, NULL, err, sizeof err),
                 CORE_ENOT_FOUND);
    T_ASSERT(strstr(err, "\"visual.b\"") != NULL);
    T_ASSERT_ERR(nn_st_expect(f, "visual.a", NN_ST_F64, 2, s23, NULL, err, sizeof err),
                 CORE_EDTYPE_MISMATCH);
    T_ASSERT(strstr(err, "\"visual.a\"") != NULL && strstr(err, "F32") && strstr(err, "F64"));
    T_ASSERT_ERR(nn_st_expect(f, "visual.a", NN_ST_F32, 2, s32, NULL, err, sizeof err),
                 CORE_ESHAPE_MISMATCH);
    T_ASSERT(strstr(err, "\"visual.a\"") != NULL && strstr(err, "[2, 3]") && strstr(err, "[3, 2]"));
    T_ASSERT_ERR(nn_st_expect(f, "visual.a", NN_ST_F32, 1, s23, NULL, err, sizeof err),
                 CORE_ESHAPE_MISMATCH);
    T_ASSERT_ERR(nn_st_expect(f, "scalar", NN_ST_F32, 1, s23, NULL, err, sizeof err),
                 CORE_ESHAPE_MISMATCH);
    T_ASSERT_OK(nn_st_expect(f, "scalar", NN_ST_F32, 0, NULL, NULL, err, sizeof err));
    nn_st_close(f);
    core_free(buf);
}

/* Builds prefix + header + `data_len` zero bytes and parses it. */
static int parse_hdr(const char *hdr, size_t data_len, const nn_st_limits_t *lim, char *err)
{
    size_t hl = strlen(hdr);
    size_t len = 8 + hl + data_len;
    uint8_t *buf = core_calloc(1, len);
    for (int i = 0; i < 8; i++) {
        buf[i] = (uint8_t)(hl >> (8 * i));
    }
    memcpy(buf + 8, hdr, hl);
    nn_st_file_t *f = NULL;
    err[0] = '\0';
    int rc = nn_st_parse(buf, len, lim, &f, err, NN_ST_ERRLEN);
    T_ASSERT((rc == 0) == (f != NULL));
    nn_st_close(f);
    core_free(buf);
    return rc;
}

#define T1(dt, shape, off)                                                                         \
    "{\"w\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}}"

T_CASE(st_malformed)
{
    char err[NN_ST_ERRLEN];
    T_ASSERT_OK(parse_hdr(T1("F32", "[2]", "[0,8]"), 8, NULL, err));
    T_ASSERT_OK(parse_hdr("{}", 0, NULL, err));
    T_ASSERT_OK(parse_hdr("{\"__metadata__\":{}}  ", 0, NULL, err));
    /* not JSON-object headers */
    T_ASSERT_ERR(parse_hdr("[1,2]", 0, NULL, err), CORE_EBAD_MAGIC);
    T_ASSERT_ERR(parse_hdr("", 0, NULL, err), CORE_EBAD_MAGIC);
    T_ASSERT_ERR(parse_hdr("{\"w\":", 0, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr("{} x", 0, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr("{\"a\x01\":1}", 0, NULL, err), CORE_ECORRUPT);
    /* fields */
    T_ASSERT_ERR(parse_hdr(T1("F31", "[2]", "[0,8]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT(strstr(err, "\"w\"") && strstr(err, "F31"));
    T_ASSERT_ERR(parse_hdr("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, NULL, err),
                 CORE_ECORRUPT);
    T_ASSERT_ERR(
        parse_hdr("{\"w\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL, err),
        CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr("{\"w\":[]}", 0, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2]", "[0,8,9]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[-2]", "[0,8]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2.0]", "[0,8]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[1,1,1,1,1,1,1,1,2]", "[0,8]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT_OK(parse_hdr(T1("F32", "[1,1,1,1,1,1,1,2]", "[0,8]"), 8, NULL, err));
    T_ASSERT_ERR(parse_hdr(T1("F32", "[4294967296,4294967296]", "[0,8]"), 8, NULL, err),
                 CORE_ETOO_LARGE);
    T_ASSERT_ERR(parse_hdr(T1("F64", "[2305843009213693952]", "[0,8]"), 8, NULL, err),
                 CORE_ETOO_LARGE);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[99999999999999999999]", "[0,8]"), 8, NULL, err),
                 CORE_ECORRUPT);
    /* spans and offsets */
    T_ASSERT_ERR(parse_hdr(T1("F32", "[3]", "[0,8]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT(strstr(err, "\"w\"") != NULL);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2]", "[0,8]"), 7, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2]", "[0,8]"), 9, NULL, err), CORE_ECORRUPT); /* trailing */
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2]", "[8,0]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2]", "[-8,0]"), 8, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2]", "[4,12]"), 12, NULL, err), CORE_ECORRUPT); /* gap */
    T_ASSERT_ERR(parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                           12, NULL, err),
                 CORE_ECORRUPT); /* overlap */
    T_ASSERT(strstr(err, "overlaps") != NULL);
    T_ASSERT_OK(parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                          12, NULL, err));
    /* duplicate names, bad metadata, empty name */
    T_ASSERT_ERR(parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                           16, NULL, err),
                 CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr("{\"__metadata__\":{\"k\":1}}", 0, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(parse_hdr("{\"__metadata__\":[]}", 0, NULL, err), CORE_ECORRUPT);
    T_ASSERT_ERR(
        parse_hdr("{\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, NULL, err),
        CORE_ECORRUPT);
    /* limits */
    nn_st_limits_t lim = {.max_header = 16, .max_tensors = 1};
    T_ASSERT_ERR(parse_hdr(T1("F32", "[2]", "[0,8]"), 8, &lim, err), CORE_ETOO_LARGE);
    lim.max_header = 0;
    T_ASSERT_OK(parse_hdr(T1("F32", "[2]", "[0,8]"), 8, &lim, err));
    T_ASSERT_ERR(parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                           16, &lim, err),
                 CORE_ETOO_LARGE);
    /* header length field larger than the file / than the default cap */
    uint8_t raw[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    nn_st_file_t *f;
    T_ASSERT_ERR(nn_st_parse(raw, sizeof raw, NULL, &f, err, sizeof err), CORE_ETOO_LARGE);
    raw[0] = 9;
    memset(raw + 1, 0, 7);
    T_ASSERT_ERR(nn_st_parse(raw, 10, NULL, &f, err, sizeof err), CORE_ECORRUPT);
    T_ASSERT_ERR(nn_st_parse(raw, 3, NULL, &f, err, sizeof err), CORE_ECORRUPT);
    T_ASSERT_ERR(nn_st_parse(NULL, 0, NULL, &f, err, sizeof err), CORE_ECORRUPT);
    /* err may be NULL */
    T_ASSERT_ERR(nn_st_parse(raw, 3, NULL, &f, NULL, 0), CORE_ECORRUPT);
}

T_CASE(st_writer_rejects)
{
    nn_st_desc_t d[6];
    size_t n = fill_descs(d);
    uint8_t *buf;
    size_t len;
    char err[NN_ST_ERRLEN];
    d[1].name = "ids"; /* duplicate */
    T_ASSERT_ERR(nn_st_write_buffer(d, n, NULL, 0, &buf, &len, err, sizeof err), CORE_ECONFIG);
    T_ASSERT(strstr(err, "ids") != NULL);
    n = fill_descs(d);
    d[0].name = "__metadata__";
    T_ASSERT_ERR(nn_st_write_buffer(d, n, NULL, 0, &buf, &len, err, sizeof err), CORE_ECONFIG);
    n = fill_descs(d);
    d[0].data = NULL;
    T_ASSERT_ERR(nn_st_write_buffer(d, n, NULL, 0, &buf, &len, err, sizeof err), CORE_ECONFIG);
    T_ASSERT(strstr(err, "visual.a") != NULL);
    n = fill_descs(d);
    d[0].shape[0] = -1;
    T_ASSERT_ERR(nn_st_write_buffer(d, n, NULL, 0, &buf, &len, err, sizeof err), CORE_ECONFIG);
    n = fill_descs(d);
    d[0].rank = NN_ST_MAX_RANK + 1;
    T_ASSERT_ERR(nn_st_write_buffer(d, n, NULL, 0, &buf, &len, err, sizeof err), CORE_ECONFIG);
    n = fill_descs(d);
    d[0].name = "bad\xff";
    T_ASSERT_ERR(nn_st_write_buffer(d, n, NULL, 0, &buf, &len, err, sizeof err), CORE_ECONFIG);
    n = fill_descs(d);
    nn_st_meta_t dup[2] = {{"k", "1"}, {"k", "2"}};
    T_ASSERT_ERR(nn_st_write_buffer(d, n, dup, 2, &buf, &len, err, sizeof err), CORE_ECONFIG);
    /* zero tensors is a valid file */
    T_ASSERT_OK(nn_st_write_buffer(d, 0, NULL, 0, &buf, &len, err, sizeof err));
    nn_st_file_t *f;
    T_ASSERT_OK(nn_st_parse(buf, len, NULL, &f, err, sizeof err));
    T_ASSERT_EQ(nn_st_count(f), 0);
    nn_st_close(f);
    core_free(buf);
}

T_CASE(st_dtype_names)
{
    for (int i = 0; i < NN_ST_DTYPE_COUNT; i++) {
        nn_st_dtype_t dt;
        T_ASSERT_OK(nn_st_dtype_parse(nn_st_dtype_name((nn_st_dtype_t)i), &dt));
        T_ASSERT_EQ(dt, i);
        T_ASSERT(nn_st_dtype_size(dt) >= 1 && nn_st_dtype_size(dt) <= 8);
    }
    nn_st_dtype_t dt;
    T_ASSERT_ERR(nn_st_dtype_parse("f32", &dt), CORE_ENOT_FOUND);
    T_ASSERT_EQ(nn_st_dtype_size(NN_ST_F64), 8);
    T_ASSERT_EQ(nn_st_dtype_size(NN_ST_BF16), 2);
}

T_MAIN()
