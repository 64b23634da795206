/* sc-ckpt: look inside, compare and export checkpoints (safetensors files, nn/ckpt.h).
 *
 *   sc-ckpt ls FILE [--json]                     tensors: name, dtype, shape, bytes
 *   sc-ckpt info FILE [--json]                   metadata, totals, parameter count
 *   sc-ckpt diff A B [--atol X] [--rtol Y] [--json]
 *                                                max abs / rel difference per tensor; exit 1 when
 *                                                names, dtypes or shapes differ or a value differs
 *                                                by more than atol + rtol*|B|
 *   sc-ckpt export IN OUT [--visual-only]         weights only (drops optimizer.*), optionally only
 *                                                visual.*; metadata kept; written atomically
 *
 * Exit status: 0 success (no difference), 1 difference (diff), 2 usage or I/O error. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "nn/ckpt.h"
#include "nn/safetensors.h"

#define EXIT_DIFF 1
#define EXIT_ERR 2

static const char *k_usage =
    "usage: sc-ckpt <command> [options]\n"
    "\n"
    "Commands (each takes --help):\n"
    "  ls FILE [--json]                            list tensors: name, dtype, shape, bytes\n"
    "  info FILE [--json]                          metadata, totals, parameter count\n"
    "  diff A B [--atol X] [--rtol Y] [--json]     per-tensor max abs/rel difference; exit 1 if\n"
    "                                              different beyond atol + rtol*|B| (default 0)\n"
    "  export IN OUT [--visual-only]               weights only (drop optimizer.*), optionally\n"
    "                                              only visual.*; written atomically\n"
    "\n"
    "Exit status: 0 ok / no difference, 1 difference, 2 usage or I/O error.\n";

static const char *k_usage_ls = "usage: sc-ckpt ls FILE [--json]\n"
                                "Lists every tensor (name order): name, dtype, shape, bytes.\n";
static const char *k_usage_info =
    "usage: sc-ckpt info FILE [--json]\n"
    "Prints file and header size, tensor counts, parameter count (elements of the tensors that\n"
    "are neither optimizer.* nor the buffers cap_fq/num_samples), optimizer state size, and the\n"
    "metadata (values that are JSON objects are pretty-printed).\n";
static const char *k_usage_diff =
    "usage: sc-ckpt diff A B [--atol X] [--rtol Y] [--json]\n"
    "Compares every tensor of A and B by name: missing/extra names, dtype and shape mismatches,\n"
    "and for matching tensors the max |a-b| and max |a-b|/|b|. A tensor differs when some\n"
    "element has |a-b| > atol + rtol*|b| (defaults 0: exact). Exit 1 if anything differs.\n";
static const char *k_usage_export =
    "usage: sc-ckpt export IN OUT [--visual-only]\n"
    "Writes the weights of IN to OUT: drops optimizer.* tensors (and with --visual-only every\n"
    "tensor whose name does not start with visual.), keeps the metadata, adds \"export\".\n"
    "OUT is written atomically (temporary file, fsync, rename).\n";

static int has_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
    }
    return 0;
}

static nn_st_file_t *open_or_report(const char *path)
{
    nn_st_file_t *f = NULL;
    char err[NN_ST_ERRLEN] = "";
    int rc = nn_st_open(path, NULL, &f, err, sizeof err);
    if (rc != 0) {
        /* The loader names the file itself in I/O errors; don't print the path twice. */
        int named = err[0] != '\0' && strncmp(err, path, strlen(path)) == 0;
        fprintf(stderr, "sc-ckpt: %s%s%s (%s)\n", named ? "" : path, named ? "" : ": ",
                err[0] ? err : core_strerror(rc), core_err_name(rc));
        return NULL;
    }
    return f;
}

static void shape_str(char *buf, size_t cap, const nn_st_tensor_t *t)
{
    size_t pos = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->rank && pos < cap; i++) {
        pos +=
            (size_t)snprintf(buf + pos, cap - pos, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    }
    if (pos < cap) {
        snprintf(buf + pos, cap - pos, "]");
    }
}

static json_t *shape_json(const nn_st_tensor_t *t)
{
    json_t *a = json_array();
    for (int i = 0; i < t->rank; i++) {
        json_array_append_new(a, json_integer((json_int_t)t->shape[i]));
    }
    return a;
}

static int print_json(json_t *j)
{
    if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        json_decref(j);
        fprintf(stderr, "sc-ckpt: out of memory\n");
        return EXIT_ERR;
    }
    fputc('\n', stdout);
    json_decref(j);
    return 0;
}

/* The arguments of a one-file command ("FILE [--json]"): opens FILE, or prints `usage` or the
 * open error and returns NULL. *path gets FILE (for messages). */
static nn_st_file_t *open_file_arg(int argc, char **argv, const char *usage, const char **path,
                                   int *as_json)
{
    *path = NULL;
    *as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            *as_json = 1;
        } else if (argv[i][0] == '-' || *path != NULL) {
            fputs(usage, stderr);
            return NULL;
        } else {
            *path = argv[i];
        }
    }
    if (*path == NULL) {
        fputs(usage, stderr);
        return NULL;
    }
    return open_or_report(*path);
}

static int cmd_ls(int argc, char **argv)
{
    const char *path;
    int as_json;
    nn_st_file_t *f = open_file_arg(argc, argv, k_usage_ls, &path, &as_json);
    if (f == NULL) {
        return EXIT_ERR;
    }
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < nn_st_count(f); i++) {
            const nn_st_tensor_t *t = nn_st_at(f, i);
            json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:I}", "name", t->name, "dtype",
                                                 nn_st_dtype_name(t->dtype), "shape", shape_json(t),
                                                 "bytes", (json_int_t)t->nbytes));
        }
        nn_st_close(f);
        return print_json(arr);
    }
    for (size_t i = 0; i < nn_st_count(f); i++) {
        const nn_st_tensor_t *t = nn_st_at(f, i);
        char s[256];
        shape_str(s, sizeof s, t);
        printf("%-60s %-5s %-20s %12zu\n", t->name, nn_st_dtype_name(t->dtype), s, t->nbytes);
    }
    nn_st_close(f);
    return 0;
}

static int is_optimizer(const char *name)
{
    return strncmp(name, "optimizer.", 10) == 0;
}

static int is_buffer(const char *name)
{
    const char *s = strncmp(name, "module.", 7) == 0 ? name + 7 : name;
    return strcmp(s, "cap_fq") == 0 || strcmp(s, "num_samples") == 0;
}

static int cmd_info(int argc, char **argv)
{
    const char *path;
    int as_json;
    nn_st_file_t *f = open_file_arg(argc, argv, k_usage_info, &path, &as_json);
    if (f == NULL) {
        return EXIT_ERR;
    }
    size_t n_param_t = 0, n_opt_t = 0, n_buf_t = 0;
    uint64_t params = 0, param_bytes = 0, opt_bytes = 0, buf_bytes = 0, total = 0;
    for (size_t i = 0; i < nn_st_count(f); i++) {
        const nn_st_tensor_t *t = nn_st_at(f, i);
        total += t->nbytes;
        if (is_optimizer(t->name)) {
            n_opt_t++;
            opt_bytes += t->nbytes;
        } else if (is_buffer(t->name)) {
            n_buf_t++;
            buf_bytes += t->nbytes;
        } else {
            n_param_t++;
            params += t->numel;
            param_bytes += t->nbytes;
        }
    }
    json_t *meta = json_object();
    for (size_t i = 0; i < nn_st_meta_count(f); i++) {
        const char *k, *v;
        nn_st_meta_at(f, i, &k, &v);
        /* Values holding JSON objects/arrays (config, cursor) are shown as JSON. */
        json_t *parsed = json_loads(v, JSON_DECODE_ANY, NULL);
        if (parsed != NULL && (json_is_object(parsed) || json_is_array(parsed))) {
            json_object_set_new(meta, k, parsed);
        } else {
            json_decref(parsed);
            json_object_set_new(meta, k, json_string(v));
        }
    }
    json_t *j = json_pack(
        "{s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:o}", "file", path,
        "file_bytes", (json_int_t)nn_st_file_size(f), "header_bytes",
        (json_int_t)nn_st_header_size(f), "tensors", (json_int_t)nn_st_count(f), "tensor_counts",
        "parameters", (json_int_t)n_param_t, "optimizer", (json_int_t)n_opt_t, "buffers",
        (json_int_t)n_buf_t, "parameter_count", (json_int_t)params, "parameter_bytes",
        (json_int_t)param_bytes, "optimizer_bytes", (json_int_t)opt_bytes, "buffer_bytes",
        (json_int_t)buf_bytes, "data_bytes", (json_int_t)total, "metadata", meta);
    nn_st_close(f);
    if (as_json) {
        return print_json(j);
    }
    printf("file:            %s\n", path);
    printf("size:            %lld bytes (header %lld)\n",
           (long long)json_integer_value(json_object_get(j, "file_bytes")),
           (long long)json_integer_value(json_object_get(j, "header_bytes")));
    printf("tensors:         %zu (%zu parameters, %zu optimizer, %zu buffers)\n",
           n_param_t + n_opt_t + n_buf_t, n_param_t, n_opt_t, n_buf_t);
    printf("parameter count: %llu (%.2fM, %llu bytes)\n", (unsigned long long)params,
           (double)params / 1e6, (unsigned long long)param_bytes);
    printf("optimizer state: %llu bytes\n", (unsigned long long)opt_bytes);
    printf("buffers:         %llu bytes\n", (unsigned long long)buf_bytes);
    printf("metadata:%s\n", json_object_size(meta) ? "" : " (none)");
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        if (json_is_string(v)) {
            printf("  %s: %s\n", k, json_string_value(v));
        } else {
            char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
            printf("  %s: ", k);
            /* indent continuation lines under the key */
            for (const char *c = s; c != NULL && *c; c++) {
                fputc(*c, stdout);
                if (*c == '\n') {
                    fputs("  ", stdout);
                }
            }
            fputc('\n', stdout);
            free(s);
        }
    }
    json_decref(j);
    return 0;
}

/* ---- diff ---------------------------------------------------------------------------------- */

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0) {
        return s * ldexp(m, -24);
    }
    if (e == 31) {
        return m ? NAN : s * INFINITY;
    }
    return s * ldexp(m + 1024, e - 25);
}

/* Element i of t as a double (integers exactly up to 2^53). Returns 0, or -1 for dtypes that
 * have no numeric reading here (the F8 types are compared bytewise). */
static int elem(const nn_st_tensor_t *t, size_t i, double *out)
{
    const uint8_t *p = t->data + i * nn_st_dtype_size(t->dtype);
    union {
        float f;
        double d;
        int64_t i64;
        uint64_t u64;
        int32_t i32;
        uint32_t u32;
        int16_t i16;
        uint16_t u16;
    } u;
    memcpy(&u, p, nn_st_dtype_size(t->dtype));
    switch (t->dtype) {
    case NN_ST_F32:
        *out = u.f;
        return 0;
    case NN_ST_F64:
        *out = u.d;
        return 0;
    case NN_ST_I64:
        *out = (double)u.i64;
        return 0;
    case NN_ST_U64:
        *out = (double)u.u64;
        return 0;
    case NN_ST_I32:
        *out = u.i32;
        return 0;
    case NN_ST_U32:
        *out = u.u32;
        return 0;
    case NN_ST_I16:
        *out = u.i16;
        return 0;
    case NN_ST_U16:
        *out = u.u16;
        return 0;
    case NN_ST_I8:
        *out = (int8_t)p[0];
        return 0;
    case NN_ST_U8:
    case NN_ST_BOOL:
        *out = p[0];
        return 0;
    case NN_ST_F16:
        *out = half_to_double(u.u16);
        return 0;
    case NN_ST_BF16: {
        uint32_t b = (uint32_t)u.u16 << 16;
        float f;
        memcpy(&f, &b, 4);
        *out = f;
        return 0;
    }
    default:
        return -1;
    }
}

typedef struct {
    double max_abs, max_rel;
    size_t n_bad; /* elements beyond atol + rtol*|b| */
    size_t first_bad;
} tdiff_t;

static void diff_tensor(const nn_st_tensor_t *a, const nn_st_tensor_t *b, double atol, double rtol,
                        tdiff_t *d)
{
    memset(d, 0, sizeof *d);
    for (size_t i = 0; i < a->numel; i++) {
        double x, y;
        if (elem(a, i, &x) != 0 || elem(b, i, &y) != 0) {
            size_t sz = nn_st_dtype_size(a->dtype);
            if (memcmp(a->data + i * sz, b->data + i * sz, sz) != 0) {
                if (d->n_bad++ == 0) {
                    d->first_bad = i;
                }
                d->max_abs = d->max_rel = INFINITY;
            }
            continue;
        }
        double ad;
        if (isnan(x) || isnan(y)) {
            ad = (isnan(x) && isnan(y)) ? 0.0 : INFINITY; /* NaN == NaN for a checkpoint diff */
        } else if (x == y) {
            ad = 0.0; /* also inf == inf */
        } else {
            ad = fabs(x - y);
        }
        double rd = ad == 0.0 ? 0.0 : y != 0.0 ? ad / fabs(y) : INFINITY;
        if (ad > d->max_abs) {
            d->max_abs = ad;
        }
        if (rd > d->max_rel) {
            d->max_rel = rd;
        }
        if (!(ad <= atol + rtol * fabs(y))) {
            if (d->n_bad++ == 0) {
                d->first_bad = i;
            }
        }
    }
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0)) {
        return -1;
    }
    *out = v;
    return 0;
}

static int cmd_diff(int argc, char **argv)
{
    const char *pa = NULL, *pb = NULL;
    int as_json = 0;
    double atol = 0, rtol = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if ((strcmp(argv[i], "--atol") == 0 || strcmp(argv[i], "--rtol") == 0) &&
                   i + 1 < argc) {
            if (parse_double(argv[i + 1], argv[i][2] == 'a' ? &atol : &rtol) != 0) {
                fprintf(stderr, "sc-ckpt: %s needs a non-negative number, got \"%s\"\n", argv[i],
                        argv[i + 1]);
                return EXIT_ERR;
            }
            i++;
        } else if (argv[i][0] == '-') {
            fputs(k_usage_diff, stderr);
            return EXIT_ERR;
        } else if (pa == NULL) {
            pa = argv[i];
        } else if (pb == NULL) {
            pb = argv[i];
        } else {
            fputs(k_usage_diff, stderr);
            return EXIT_ERR;
        }
    }
    if (pb == NULL) {
        fputs(k_usage_diff, stderr);
        return EXIT_ERR;
    }
    nn_st_file_t *fa = open_or_report(pa);
    nn_st_file_t *fb = fa ? open_or_report(pb) : NULL;
    if (fb == NULL) {
        nn_st_close(fa);
        return EXIT_ERR;
    }
    json_t *rows = json_array();
    size_t n_diff = 0, n_same = 0;
    /* merge walk over the two name-sorted tables */
    size_t i = 0, k = 0;
    while (i < nn_st_count(fa) || k < nn_st_count(fb)) {
        const nn_st_tensor_t *a = i < nn_st_count(fa) ? nn_st_at(fa, i) : NULL;
        const nn_st_tensor_t *b = k < nn_st_count(fb) ? nn_st_at(fb, k) : NULL;
        int c = a == NULL ? 1 : b == NULL ? -1 : strcmp(a->name, b->name);
        json_t *row;
        if (c < 0) {
            row = json_pack("{s:s, s:s}", "name", a->name, "status", "only_in_a");
            i++;
            n_diff++;
        } else if (c > 0) {
            row = json_pack("{s:s, s:s}", "name", b->name, "status", "only_in_b");
            k++;
            n_diff++;
        } else {
            i++;
            k++;
            int same_shape = a->rank == b->rank;
            for (int r = 0; same_shape && r < a->rank; r++) {
                same_shape = a->shape[r] == b->shape[r];
            }
            if (a->dtype != b->dtype) {
                row = json_pack("{s:s, s:s, s:s, s:s}", "name", a->name, "status", "dtype_mismatch",
                                "dtype_a", nn_st_dtype_name(a->dtype), "dtype_b",
                                nn_st_dtype_name(b->dtype));
                n_diff++;
            } else if (!same_shape) {
                row = json_pack("{s:s, s:s, s:o, s:o}", "name", a->name, "status", "shape_mismatch",
                                "shape_a", shape_json(a), "shape_b", shape_json(b));
                n_diff++;
            } else {
                tdiff_t d;
                diff_tensor(a, b, atol, rtol, &d);
                int bad = d.n_bad > 0;
                n_diff += bad;
                n_same += !bad;
                row = json_pack("{s:s, s:s, s:f, s:f, s:I}", "name", a->name, "status",
                                bad ? "different" : "same", "max_abs", d.max_abs, "max_rel",
                                d.max_rel, "n_beyond_tol", (json_int_t)d.n_bad);
                if (bad) {
                    json_object_set_new(row, "first_index", json_integer((json_int_t)d.first_bad));
                }
            }
        }
        json_array_append_new(rows, row);
    }
    nn_st_close(fa);
    nn_st_close(fb);
    int rc = n_diff ? EXIT_DIFF : 0;
    if (as_json) {
        json_t *j = json_pack("{s:s, s:s, s:f, s:f, s:b, s:I, s:I, s:o}", "a", pa, "b", pb, "atol",
                              atol, "rtol", rtol, "equal", n_diff == 0, "n_different",
                              (json_int_t)n_diff, "n_same", (json_int_t)n_same, "tensors", rows);
        return print_json(j) ? EXIT_ERR : rc;
    }
    printf("%-60s %-10s %12s %12s\n", "tensor", "status", "max_abs", "max_rel");
    size_t idx;
    json_t *row;
    json_array_foreach(rows, idx, row)
    {
        const char *st = json_string_value(json_object_get(row, "status"));
        const char *name = json_string_value(json_object_get(row, "name"));
        if (json_object_get(row, "max_abs") != NULL) {
            printf("%-60s %-10s %12.4g %12.4g\n", name, st,
                   json_real_value(json_object_get(row, "max_abs")),
                   json_real_value(json_object_get(row, "max_rel")));
        } else if (strcmp(st, "dtype_mismatch") == 0) {
            printf("%-60s %-10s %s vs %s\n", name, "dtype",
                   json_string_value(json_object_get(row, "dtype_a")),
                   json_string_value(json_object_get(row, "dtype_b")));
        } else if (strcmp(st, "shape_mismatch") == 0) {
            char *sa = json_dumps(json_object_get(row, "shape_a"), JSON_COMPACT);
            char *sb = json_dumps(json_object_get(row, "shape_b"), JSON_COMPACT);
            printf("%-60s %-10s %s vs %s\n", name, "shape", sa ? sa : "?", sb ? sb : "?");
            free(sa);
            free(sb);
        } else {
            printf("%-60s %s\n", name, strcmp(st, "only_in_a") == 0 ? "only in A" : "only in B");
        }
    }
    printf("%zu tensor(s) differ, %zu equal (atol %g, rtol %g)\n", n_diff, n_same, atol, rtol);
    json_decref(rows);
    return rc;
}

/* ---- export -------------------------------------------------------------------------------- */

static int cmd_export(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int visual_only = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--visual-only") == 0) {
            visual_only = 1;
        } else if (argv[i][0] == '-') {
            fputs(k_usage_export, stderr);
            return EXIT_ERR;
        } else if (in == NULL) {
            in = argv[i];
        } else if (out == NULL) {
            out = argv[i];
        } else {
            fputs(k_usage_export, stderr);
            return EXIT_ERR;
        }
    }
    if (out == NULL) {
        fputs(k_usage_export, stderr);
        return EXIT_ERR;
    }
    nn_st_file_t *f = open_or_report(in);
    if (f == NULL) {
        return EXIT_ERR;
    }
    size_t n = nn_st_count(f), nm = nn_st_meta_count(f), nd = 0, nmeta = 0;
    nn_st_desc_t *d = core_calloc(n ? n : 1, sizeof *d);
    nn_st_meta_t *m = core_calloc(nm + 1, sizeof *m);
    if (d == NULL || m == NULL) {
        fprintf(stderr, "sc-ckpt: out of memory\n");
        core_free(d);
        core_free(m);
        nn_st_close(f);
        return EXIT_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        const nn_st_tensor_t *t = nn_st_at(f, i);
        const char *s = strncmp(t->name, "module.", 7) == 0 ? t->name + 7 : t->name;
        if (is_optimizer(s) || (visual_only && strncmp(s, "visual.", 7) != 0)) {
            continue;
        }
        d[nd] =
            (nn_st_desc_t){.name = t->name, .dtype = t->dtype, .rank = t->rank, .data = t->data};
        memcpy(d[nd].shape, t->shape, sizeof t->shape);
        nd++;
    }
    for (size_t i = 0; i < nm; i++) {
        nn_st_meta_at(f, i, &m[nmeta].key, &m[nmeta].value);
        nmeta += strcmp(m[nmeta].key, "export") != 0;
    }
    m[nmeta++] = (nn_st_meta_t){"export", visual_only ? "visual-only" : "weights-only"};
    char err[NN_ST_ERRLEN] = "";
    int rc = nn_st_write_file(out, d, nd, m, nmeta, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "sc-ckpt: %s: %s\n", out, err[0] ? err : core_strerror(rc));
    } else {
        fprintf(stderr, "sc-ckpt: wrote %zu of %zu tensors to %s\n", nd, n, out);
    }
    core_free(d);
    core_free(m);
    nn_st_close(f);
    return rc ? EXIT_ERR : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(k_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_ERR : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
        const char **usage;
    } cmds[] = {{"ls", cmd_ls, &k_usage_ls},
                {"info", cmd_info, &k_usage_info},
                {"diff", cmd_diff, &k_usage_diff},
                {"export", cmd_export, &k_usage_export}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(argv[1], cmds[i].name) == 0) {
            if (has_help(argc - 2, argv + 2)) {
                fputs(*cmds[i].usage, stdout);
                return 0;
            }
            return cmds[i].fn(argc - 2, argv + 2);
        }
    }
    fprintf(stderr, "sc-ckpt: unknown command \"%s\"\n\n%s", argv[1], k_usage);
    return EXIT_ERR;
}
