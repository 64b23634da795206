/* sc-shard: create, fill and inspect shard stores (docs/FORMAT.md). Thin over pipeline/store,
 * pipeline/ingest and pipeline/record. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/timing.h"
#include "pipeline/image.h"
#include "pipeline/ingest.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"

enum {
    EXIT_OK = 0,
    EXIT_ERR = 1,       /* runtime error (I/O, store, decode) */
    EXIT_USAGE = 2,     /* bad command line */
    EXIT_CORRUPT = 3,   /* verify found corrupt records */
    EXIT_VOCAB = 4,     /* vocabulary does not match the store */
    EXIT_FULL = 5,      /* the disk filled up during ingest (the store is consistent) */
    EXIT_NOTFOUND = 6,  /* get/cat: no such record */
    EXIT_STOPPED = 130, /* ingest stopped by SIGINT/SIGTERM after committing its work */
};

static volatile int g_stop;
static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static const char usage_text[] =
    "usage: sc-shard [--json] COMMAND STORE [options]\n"
    "\n"
    "Shard stores of image-text samples (docs/FORMAT.md).\n"
    "\n"
    "commands:\n"
    "  create STORE --vocab FILE [--verify full|header] [--max-side N]\n"
    "         [--caption-max-bytes N] [--caption-overflow truncate|reject]\n"
    "         [--max-dim N] [--max-pixels N] [--shard-max-bytes N] [--shard-max-records N]\n"
    "                       create an empty store recording the vocabulary hash and policy\n"
    "  ingest STORE [--vocab FILE] [--threads N] [--batch N] [--no-progress] [--quiet] PATH...\n"
    "                       add webdataset .tar/.tar.gz/.tgz/.tar.zst files (directories are\n"
    "                       walked, sorted); finished files add nothing, interrupted ones resume;\n"
    "                       --threads: sample workers (default: the CPUs, at most 16; 0 = none)\n"
    "  ls STORE             shards: sequence range, records, bytes; and source files\n"
    "  stat STORE [--vocab FILE]\n"
    "                       totals, rejects by reason, image formats and sizes, caption bytes,\n"
    "                       tokens per caption, flags, vocabulary\n"
    "  get STORE KEY [--vocab FILE]\n"
    "                       one record: caption, tokens decoded, label ids, image, source.\n"
    "                       KEY: a sequence number (#N, or digits without a leading zero) or a\n"
    "                       member key (key:NAME, or anything else, e.g. 000123)\n"
    "  cat STORE KEY        the raw image bytes to stdout\n"
    "  verify STORE         CRC + decode every record and image; names the bad ones\n"
    "  top-tokens STORE [-n N] [--vocab FILE]\n"
    "                       document frequency of label tokens (the corpus' IDF view)\n"
    "  export STORE OUTDIR  write the records back as webdataset tars, one per source file\n"
    "                       (never overwrites; same-named sources go to OUTDIR/dup-K/)\n"
    "  digest STORE         order-independent content digest (FORMAT.md §3)\n"
    "\n"
    "global options: --json (machine-readable output), --help\n"
    "exit codes: 0 ok, 1 error, 2 usage, 3 verify found corruption, 4 vocabulary mismatch,\n"
    "            5 disk full during ingest (store consistent; run ingest again),\n"
    "            6 no such record, 130 ingest stopped by SIGINT/SIGTERM (work so far\n"
    "            committed; run it again)\n";

static int g_json;

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sc-shard: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see sc-shard --help)\n");
    va_end(ap);
    exit(EXIT_USAGE);
}

static int exit_of(int rc)
{
    if (rc == CORE_EMISMATCH) {
        return EXIT_VOCAB;
    }
    if (rc == CORE_ERR(ENOSPC) || rc == CORE_ERR(EFBIG) || rc == CORE_EFULL) {
        return EXIT_FULL;
    }
    if (rc == CORE_ENOT_FOUND) {
        return EXIT_NOTFOUND;
    }
    if (rc == CORE_ECLOSED) {
        return EXIT_STOPPED;
    }
    return rc < 0 ? EXIT_ERR : EXIT_OK;
}

static void json_out(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    json_decref(j);
}

/* ---- option parsing: options may appear anywhere after the command ---- */

typedef struct opts_s {
    const char *pos[4096];
    int n_pos;
    const char *vocab;
    pl_store_policy_t pol;
    pl_store_caps_t caps;
    long batch;
    long top_n;
    int threads; /* -1: not given */
    int no_progress;
    int quiet;
} opts_t;

static uint64_t parse_u64(const char *name, const char *v)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    uint64_t mul = 1;
    if (end && *end) {
        if (strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0) {
            mul = 1024;
        } else if (strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0) {
            mul = 1024 * 1024;
        } else if (strcmp(end, "G") == 0 || strcmp(end, "GiB") == 0) {
            mul = 1024ull * 1024 * 1024;
        } else {
            die_usage("%s: not a number: %s", name, v);
        }
    }
    if (errno || end == v || v[0] == '-') {
        die_usage("%s: not a number: %s", name, v);
    }
    return (uint64_t)x * mul;
}

static uint32_t parse_u32(const char *name, const char *v)
{
    uint64_t x = parse_u64(name, v);
    if (x > UINT32_MAX) {
        die_usage("%s: out of range: %s", name, v);
    }
    return (uint32_t)x;
}

static void parse_opts(int argc, char **argv, int start, opts_t *o)
{
    memset(o, 0, sizeof(*o));
    pl_store_policy_default(&o->pol);
    pl_store_caps_default(&o->caps);
    o->top_n = 50;
    o->threads = -1;
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (die_usage("%s needs a value", a), ""))
        if (strcmp(a, "--json") == 0) {
            g_json = 1;
        } else if (strcmp(a, "--vocab") == 0) {
            o->vocab = NEXT();
        } else if (strcmp(a, "--verify") == 0) {
            const char *v = NEXT();
            if (strcmp(v, "full") == 0) {
                o->pol.verify = PL_VERIFY_FULL;
            } else if (strcmp(v, "header") == 0) {
                o->pol.verify = PL_VERIFY_HEADER;
            } else {
                die_usage("--verify: full or header");
            }
        } else if (strcmp(a, "--max-side") == 0) {
            o->pol.max_side = parse_u32(a, NEXT());
        } else if (strcmp(a, "--caption-max-bytes") == 0) {
            o->pol.caption_max_bytes = parse_u32(a, NEXT());
        } else if (strcmp(a, "--caption-overflow") == 0) {
            const char *v = NEXT();
            if (strcmp(v, "truncate") == 0) {
                o->pol.caption_overflow = PL_CAPTION_TRUNCATE;
            } else if (strcmp(v, "reject") == 0) {
                o->pol.caption_overflow = PL_CAPTION_REJECT;
            } else {
                die_usage("--caption-overflow: truncate or reject");
            }
        } else if (strcmp(a, "--max-dim") == 0) {
            o->pol.max_dim = parse_u32(a, NEXT());
        } else if (strcmp(a, "--max-pixels") == 0) {
            o->pol.max_pixels = parse_u64(a, NEXT());
        } else if (strcmp(a, "--shard-max-bytes") == 0) {
            o->caps.shard_max_bytes = parse_u64(a, NEXT());
        } else if (strcmp(a, "--shard-max-records") == 0) {
            o->caps.shard_max_records = parse_u64(a, NEXT());
        } else if (strcmp(a, "--threads") == 0 || strcmp(a, "-j") == 0) {
            o->threads = (int)parse_u32(a, NEXT());
        } else if (strcmp(a, "--batch") == 0) {
            o->batch = (long)parse_u32(a, NEXT());
        } else if (strcmp(a, "-n") == 0) {
            o->top_n = (long)parse_u32(a, NEXT());
        } else if (strcmp(a, "--no-progress") == 0) {
            o->no_progress = 1;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            exit(EXIT_OK);
        } else if (a[0] == '-' && a[1] == '-') {
            die_usage("unknown option %s", a);
        } else {
            if (o->n_pos == (int)(sizeof(o->pos) / sizeof(o->pos[0]))) {
                die_usage("too many arguments");
            }
            o->pos[o->n_pos++] = a;
        }
#undef NEXT
    }
}

static pl_store_t *open_store(const char *dir, int mode)
{
    pl_store_t *st = NULL;
    int rc = pl_store_open(dir, mode, &st);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: %s: cannot open store: %s\n", dir, core_strerror(rc));
        exit(exit_of(rc) == EXIT_NOTFOUND ? EXIT_ERR : exit_of(rc));
    }
    return st;
}

/* Loads the vocabulary (--vocab, else the store's recorded path) and checks it against the
 * store. `required` 0: returns NULL when none is available. */
static pl_tok_t *load_vocab(const pl_store_t *st, const char *given, int required)
{
    const char *path = given ? given : pl_store_vocab_path(st);
    if (path == NULL || path[0] == '\0') {
        if (required) {
            fprintf(stderr, "sc-shard: the store records no vocabulary path: pass --vocab FILE\n");
            exit(EXIT_USAGE);
        }
        return NULL;
    }
    pl_tok_t *tok = NULL;
    int rc = pl_tok_load(path, &tok);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: vocabulary %s: %s\n", path, core_strerror(rc));
        if (required) {
            exit(EXIT_ERR);
        }
        return NULL;
    }
    rc = pl_store_check_vocab(st, pl_tok_hash(tok));
    if (rc < 0) {
        fprintf(stderr,
                "sc-shard: vocabulary %s (hash %.16s...) is not the store's (hash %.16s...)\n",
                path, pl_tok_hash(tok), pl_store_vocab_hash(st));
        pl_tok_free(tok);
        exit(EXIT_VOCAB);
    }
    return tok;
}

/* ---- create ---- */

static int cmd_create(opts_t *o)
{
    if (o->n_pos != 1) {
        die_usage("create STORE --vocab FILE");
    }
    if (o->vocab == NULL) {
        die_usage("create needs --vocab FILE");
    }
    pl_tok_t *tok = NULL;
    int rc = pl_tok_load(o->vocab, &tok);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: vocabulary %s: %s\n", o->vocab, core_strerror(rc));
        return EXIT_ERR;
    }
    char abs[PATH_MAX];
    const char *vp = realpath(o->vocab, abs) ? abs : o->vocab;
    rc = pl_store_create(o->pos[0], pl_tok_hash(tok), vp, &o->pol, &o->caps);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: create %s: %s\n", o->pos[0], core_strerror(rc));
    } else if (g_json) {
        json_out(json_pack("{s:s,s:s,s:s}", "store", o->pos[0], "vocab_hash", pl_tok_hash(tok),
                           "vocab_path", vp));
    } else {
        printf("created %s (vocabulary %s, %u ids, hash %.16s...)\n", o->pos[0], vp,
               pl_tok_vocab_size(tok), pl_tok_hash(tok));
    }
    pl_tok_free(tok);
    return exit_of(rc);
}

/* ---- ingest ---- */

typedef struct files_s {
    char **v;
    size_t n, cap;
} files_t;

static int is_shard_name(const char *name)
{
    static const char *const sfx[] = {".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        size_t k = strlen(sfx[i]);
        if (n > k && strcmp(name + n - k, sfx[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void files_add(files_t *f, const char *p)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = core_realloc_or_die(f->v, f->cap * sizeof(char *));
    }
    f->v[f->n++] = core_strdup(p);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(files_t *f, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "sc-shard: %s: %s\n", path, strerror(errno));
        exit(EXIT_ERR);
    }
    if (!S_ISDIR(sb.st_mode)) {
        files_add(f, path);
        return;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "sc-shard: %s: %s\n", path, strerror(errno));
        exit(EXIT_ERR);
    }
    files_t sub = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        struct stat s2;
        if (stat(p, &s2) == 0 && (S_ISDIR(s2.st_mode) || is_shard_name(e->d_name))) {
            files_add(&sub, p);
        }
    }
    closedir(d);
    qsort(sub.v, sub.n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < sub.n; i++) {
        walk(f, sub.v[i]);
        core_free(sub.v[i]);
    }
    core_free(sub.v);
}

typedef struct ingest_ui_s {
    core_progress_t bar;
    double t0;
} ingest_ui_t;

static void ingest_progress(void *ud, const pl_ingest_stats_t *s)
{
    ingest_ui_t *ui = ud;
    double dt = core_now_s() - ui->t0;
    char extra[160];
    snprintf(extra, sizeof(extra),
             "%.0f samples/s, %.1f MB/s, %" PRIu64 " kept, %" PRIu64 " rejected",
             dt > 0 ? (double)s->samples / dt : 0.0, dt > 0 ? (double)s->bytes_in / dt / 1e6 : 0.0,
             s->kept, s->rejected);
    core_progress_update(&ui->bar, s->bytes_in, extra);
}

static int cmd_ingest(opts_t *o)
{
    if (o->n_pos < 2) {
        die_usage("ingest STORE PATH...");
    }
    /* Ctrl-C / SIGTERM: finish the sample at hand, commit, exit 130. A second signal kills (the
     * store is crash-safe either way). */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = (int)SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    files_t f = {0};
    for (int i = 1; i < o->n_pos; i++) {
        walk(&f, o->pos[i]);
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDWR);
    pl_tok_t *tok = load_vocab(st, o->vocab, 1);
    uint64_t total = 0;
    for (size_t i = 0; i < f.n; i++) {
        struct stat sb;
        if (stat(f.v[i], &sb) == 0) {
            total += (uint64_t)sb.st_size;
        }
    }
    ingest_ui_t ui;
    core_progress_init(&ui.bar, "ingest", total, o->no_progress || g_json ? -1 : 0);
    ui.t0 = core_now_s();
    pl_ingest_opts_t io;
    pl_ingest_opts_default(&io);
    if (o->batch > 0) {
        io.batch_records = (size_t)o->batch;
    }
    io.log_rejects = !o->quiet;
    if (o->threads >= 0) {
        io.threads = o->threads;
    } else {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        io.threads = n > 1 ? (int)(n > 16 ? 16 : n) : 0;
    }
    io.progress = ingest_progress;
    io.progress_ud = &ui;
    io.stop = &g_stop;
    pl_ingest_t *ing = NULL;
    int rc = pl_ingest_new(st, tok, &io, &ing);
    int file_err = 0;
    for (size_t i = 0; i < f.n && rc == 0; i++) {
        rc = pl_ingest_file(ing, f.v[i]);
        if (rc == CORE_ERR(ENOENT) || rc == CORE_ERR(EACCES) || rc == CORE_ERR(EISDIR)) {
            /* an unreadable input file: reported by the ingest, the other files go on */
            file_err = rc;
            rc = 0;
        }
    }
    if (rc == 0) {
        rc = file_err;
    }
    const pl_ingest_stats_t *s = ing ? pl_ingest_stats(ing) : NULL;
    if (s) {
        ingest_progress(&ui, s);
        core_progress_finish(&ui.bar, NULL);
        double dt = core_now_s() - ui.t0;
        if (g_json) {
            json_t *rj = json_object();
            for (uint32_t r = 1; r < PL_REJECT__COUNT; r++) {
                if (s->rejects[r]) {
                    json_object_set_new(rj, pl_reject_name(r),
                                        json_integer((json_int_t)s->rejects[r]));
                }
            }
            json_out(json_pack(
                "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:f,s:f,s:f,s:{s:f,s:f,s:f,s:f,s:f},s:i,s:s}",
                "files", (json_int_t)s->files, "files_skipped", (json_int_t)s->files_skipped,
                "files_resumed", (json_int_t)s->files_resumed, "files_damaged",
                (json_int_t)s->files_damaged, "samples", (json_int_t)s->samples, "kept",
                (json_int_t)s->kept, "rejected", (json_int_t)s->rejected, "rejects", rj, "bytes_in",
                (json_int_t)s->bytes_in, "seconds", dt, "samples_per_s",
                dt > 0 ? (double)s->samples / dt : 0.0, "mb_per_s",
                dt > 0 ? (double)s->bytes_in / dt / 1e6 : 0.0, "time_split", "read", s->t_read,
                "decode", s->t_decode, "tokenize", s->t_tokenize, "compress", s->t_compress, "lmdb",
                s->t_lmdb, "status", rc, "error", rc < 0 ? core_strerror(rc) : ""));
        } else {
            printf("files: %" PRIu64 " (%" PRIu64 " already done, %" PRIu64 " resumed, %" PRIu64
                   " damaged)\n",
                   s->files, s->files_skipped, s->files_resumed, s->files_damaged);
            printf("samples: %" PRIu64 " kept, %" PRIu64 " rejected\n", s->kept, s->rejected);
            for (uint32_t r = 1; r < PL_REJECT__COUNT; r++) {
                if (s->rejects[r]) {
                    printf("  %-24s %" PRIu64 "\n", pl_reject_name(r), s->rejects[r]);
                }
            }
            printf("time: %.2f s, %.0f samples/s, %.1f MB/s (read %.2f, decode %.2f, tokenize "
                   "%.2f, compress %.2f, lmdb %.2f s)\n",
                   dt, dt > 0 ? (double)s->samples / dt : 0.0,
                   dt > 0 ? (double)s->bytes_in / dt / 1e6 : 0.0, s->t_read, s->t_decode,
                   s->t_tokenize, s->t_compress, s->t_lmdb);
            printf("store: %" PRIu64 " records in %u shard(s)\n", pl_store_count(st),
                   pl_store_n_shards(st));
        }
    }
    if (rc == CORE_ECLOSED) {
        fprintf(stderr, "sc-shard: ingest interrupted; what was done is committed, run it again "
                        "to continue\n");
    } else if (rc < 0) {
        fprintf(stderr, "sc-shard: ingest stopped: %s\n", core_strerror(rc));
    }
    pl_ingest_free(ing);
    pl_tok_free(tok);
    pl_store_close(st);
    for (size_t i = 0; i < f.n; i++) {
        core_free(f.v[i]);
    }
    core_free(f.v);
    return exit_of(rc);
}

/* ---- ls ---- */

typedef struct ls_files_s {
    pl_file_progress_t *v;
    size_t n, cap;
} ls_files_t;

static int ls_collect(void *ud, const pl_file_progress_t *p)
{
    ls_files_t *f = ud;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = core_realloc_or_die(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->n++] = *p;
    return 0;
}

static int cmp_progress(const void *a, const void *b)
{
    return strcmp(((const pl_file_progress_t *)a)->name, ((const pl_file_progress_t *)b)->name);
}

static void ls_file(json_t *arr, const pl_file_progress_t *p)
{
    static const char *const states[] = {"partial", "done", "damaged"};
    if (g_json) {
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "name", p->name, "state", states[p->state],
                           "samples", (json_int_t)p->next_sample, "kept", (json_int_t)p->n_kept,
                           "rejected", (json_int_t)p->n_rejected, "bytes", (json_int_t)p->size));
    } else {
        printf("  %-32s %-8s %8" PRIu64 " samples %8" PRIu64 " kept %6" PRIu64 " rejected\n",
               p->name, states[p->state], p->next_sample, p->n_kept, p->n_rejected);
    }
}

static int cmd_ls(opts_t *o)
{
    if (o->n_pos != 1) {
        die_usage("ls STORE");
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDONLY);
    json_t *shards = json_array(), *files = json_array();
    uint64_t total_bytes = 0;
    if (!g_json) {
        printf("%-20s %12s %12s %10s %12s\n", "shard", "first", "next", "records", "bytes");
    }
    for (uint32_t i = 0; i < pl_store_n_shards(st); i++) {
        const char *name;
        uint64_t f0, f1, b;
        pl_store_shard_info(st, i, &name, &f0, &f1, &b);
        total_bytes += b;
        if (g_json) {
            json_array_append_new(shards,
                                  json_pack("{s:s,s:I,s:I,s:I,s:I}", "name", name, "first_seq",
                                            (json_int_t)f0, "next_seq", (json_int_t)f1, "records",
                                            (json_int_t)(f1 - f0), "bytes", (json_int_t)b));
        } else {
            printf("%-20s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %12" PRIu64 "\n", name, f0, f1,
                   f1 - f0, b);
        }
    }
    if (!g_json) {
        printf("total: %" PRIu64 " records, %" PRIu64 " bytes\nsource files:\n", pl_store_count(st),
               total_bytes);
    }
    ls_files_t lf = {0};
    int rc = pl_store_files(st, ls_collect, &lf);
    if (lf.n) {
        qsort(lf.v, lf.n, sizeof(*lf.v), cmp_progress); /* by name, for people */
    }
    for (size_t i = 0; i < lf.n; i++) {
        ls_file(files, &lf.v[i]);
    }
    core_free(lf.v);
    if (g_json) {
        json_out(json_pack("{s:o,s:o,s:I,s:I}", "shards", shards, "files", files, "records",
                           (json_int_t)pl_store_count(st), "bytes", (json_int_t)total_bytes));
    } else {
        json_decref(shards);
        json_decref(files);
    }
    pl_store_close(st);
    return exit_of(rc);
}

/* ---- stat ---- */

#define HIST 24
typedef struct stat_s {
    uint64_t n, img_bytes, rec_bytes, cap_bytes, tokens;
    uint64_t fmt[4], flag_trunc, flag_reenc, flag_toktrunc;
    uint64_t size_hist[HIST]; /* image bytes, log2 buckets */
    uint64_t tok_hist[8];     /* BPE ids per caption: 0-4,5-9,10-19,20-39,40-75,>75 */
    uint64_t cap_min, cap_max, tok_min, tok_max;
    uint64_t rejects[PL_REJECT__COUNT];
    uint64_t n_rejects;
    uint64_t max_w, max_h;
    int bad;
} stat_t;

static int stat_rec(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    stat_t *s = ud;
    pl_record_t r;
    if (pl_record_decode(v, len, &r) < 0) {
        s->bad++;
        return 0;
    }
    (void)seq;
    s->n++;
    s->rec_bytes += len;
    s->img_bytes += r.image_len;
    s->cap_bytes += r.caption_len;
    uint64_t bpe = r.n_tokens - 2;
    s->tokens += bpe;
    if (s->n == 1 || r.caption_len < s->cap_min) {
        s->cap_min = r.caption_len;
    }
    if (r.caption_len > s->cap_max) {
        s->cap_max = r.caption_len;
    }
    if (s->n == 1 || bpe < s->tok_min) {
        s->tok_min = bpe;
    }
    if (bpe > s->tok_max) {
        s->tok_max = bpe;
    }
    s->fmt[r.format & 3]++;
    s->flag_trunc += (r.flags & PL_REC_CAPTION_TRUNCATED) != 0;
    s->flag_reenc += (r.flags & PL_REC_REENCODED) != 0;
    s->flag_toktrunc += (r.flags & PL_REC_TOKENS_TRUNCATED) != 0;
    int b = 0;
    while (b < HIST - 1 && (1ull << (b + 1)) <= r.image_len) {
        b++;
    }
    s->size_hist[b]++;
    int t = bpe < 5 ? 0 : bpe < 10 ? 1 : bpe < 20 ? 2 : bpe < 40 ? 3 : bpe < 76 ? 4 : 5;
    if (r.flags & PL_REC_TOKENS_TRUNCATED) {
        t = 5;
    }
    s->tok_hist[t]++;
    if (r.width > s->max_w) {
        s->max_w = r.width;
    }
    if (r.height > s->max_h) {
        s->max_h = r.height;
    }
    return 0;
}

static int stat_rej(void *ud, const char *file, uint64_t idx, uint32_t reason, const char *key)
{
    stat_t *s = ud;
    (void)file;
    (void)idx;
    (void)key;
    if (reason < PL_REJECT__COUNT) {
        s->rejects[reason]++;
    }
    s->n_rejects++;
    return 0;
}

static int cmd_stat(opts_t *o)
{
    if (o->n_pos != 1) {
        die_usage("stat STORE");
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDONLY);
    stat_t *s = core_calloc_or_die(1, sizeof(*s));
    int rc = pl_store_foreach(st, stat_rec, s);
    if (rc == 0) {
        rc = pl_store_rejects(st, stat_rej, s);
    }
    static const char *const tok_lbl[6] = {"0-4", "5-9", "10-19", "20-39", "40-75", ">75 (cut)"};
    const pl_store_policy_t *pol = pl_store_policy(st);
    double n = s->n ? (double)s->n : 1.0;
    if (g_json) {
        json_t *rj = json_object(), *fm = json_object(), *sh = json_object(), *th = json_object();
        for (uint32_t r = 1; r < PL_REJECT__COUNT; r++) {
            if (s->rejects[r]) {
                json_object_set_new(rj, pl_reject_name(r), json_integer((json_int_t)s->rejects[r]));
            }
        }
        for (int f = 1; f < 4; f++) {
            json_object_set_new(fm, pl_img_format_name(f), json_integer((json_int_t)s->fmt[f]));
        }
        for (int b = 0; b < HIST; b++) {
            if (s->size_hist[b]) {
                char k[32];
                snprintf(k, sizeof(k), "%llu", 1ull << b);
                json_object_set_new(sh, k, json_integer((json_int_t)s->size_hist[b]));
            }
        }
        for (int t = 0; t < 6; t++) {
            json_object_set_new(th, tok_lbl[t], json_integer((json_int_t)s->tok_hist[t]));
        }
        json_out(json_pack(
            "{s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:{s:I,s:I,s:f},s:{s:I,s:I,s:f,s:o},s:{s:I,s:I,s:I},"
            "s:{s:s,s:s},s:{s:s,s:i,s:i,s:s},s:i}",
            "records", (json_int_t)s->n, "rejected", (json_int_t)s->n_rejects, "record_bytes",
            (json_int_t)s->rec_bytes, "image_bytes", (json_int_t)s->img_bytes, "rejects", rj,
            "image_formats", fm, "image_size_hist_log2", sh, "caption_bytes", "min",
            (json_int_t)s->cap_min, "max", (json_int_t)s->cap_max, "mean", (double)s->cap_bytes / n,
            "tokens_per_caption", "min", (json_int_t)s->tok_min, "max", (json_int_t)s->tok_max,
            "mean", (double)s->tokens / n, "hist", th, "flags", "caption_truncated",
            (json_int_t)s->flag_trunc, "reencoded", (json_int_t)s->flag_reenc, "tokens_truncated",
            (json_int_t)s->flag_toktrunc, "vocabulary", "hash", pl_store_vocab_hash(st), "path",
            pl_store_vocab_path(st), "policy", "verify",
            pol->verify == PL_VERIFY_FULL ? "full" : "header", "max_side", (int)pol->max_side,
            "caption_max_bytes", (int)pol->caption_max_bytes, "caption_overflow",
            pol->caption_overflow == PL_CAPTION_REJECT ? "reject" : "truncate", "corrupt", s->bad));
    } else {
        printf("records:   %" PRIu64 " (%" PRIu64 " record bytes, %" PRIu64 " image bytes)\n", s->n,
               s->rec_bytes, s->img_bytes);
        printf("rejected:  %" PRIu64 "\n", s->n_rejects);
        for (uint32_t r = 1; r < PL_REJECT__COUNT; r++) {
            if (s->rejects[r]) {
                printf("  %-24s %" PRIu64 "\n", pl_reject_name(r), s->rejects[r]);
            }
        }
        printf("image formats: jpeg %" PRIu64 ", png %" PRIu64 ", webp %" PRIu64
               " (largest %" PRIu64 "x%" PRIu64 ")\n",
               s->fmt[1], s->fmt[2], s->fmt[3], s->max_w, s->max_h);
        printf("image bytes (log2 histogram):\n");
        for (int b = 0; b < HIST; b++) {
            if (s->size_hist[b]) {
                printf("  >= %-10llu %8" PRIu64 "\n", 1ull << b, s->size_hist[b]);
            }
        }
        printf("caption bytes: min %" PRIu64 ", mean %.1f, max %" PRIu64 "\n", s->cap_min,
               (double)s->cap_bytes / n, s->cap_max);
        printf("BPE tokens per caption: min %" PRIu64 ", mean %.1f, max %" PRIu64 "\n", s->tok_min,
               (double)s->tokens / n, s->tok_max);
        for (int t = 0; t < 6; t++) {
            printf("  %-10s %8" PRIu64 "\n", tok_lbl[t], s->tok_hist[t]);
        }
        printf("flags: %" PRIu64 " captions truncated, %" PRIu64 " images re-encoded, %" PRIu64
               " token rows cut at 77\n",
               s->flag_trunc, s->flag_reenc, s->flag_toktrunc);
        pl_tok_t *tok = load_vocab(st, o->vocab, 0);
        char ids[48] = "";
        if (tok) {
            snprintf(ids, sizeof(ids), ", %u ids", pl_tok_vocab_size(tok));
        }
        printf("vocabulary: %s (%s%s)\n", pl_store_vocab_hash(st),
               pl_store_vocab_path(st)[0] ? pl_store_vocab_path(st) : "path not recorded", ids);
        pl_tok_free(tok);
        printf("policy: verify=%s max_side=%u caption_max_bytes=%u caption_overflow=%s\n",
               pol->verify == PL_VERIFY_FULL ? "full" : "header", pol->max_side,
               pol->caption_max_bytes,
               pol->caption_overflow == PL_CAPTION_REJECT ? "reject" : "truncate");
        if (s->bad) {
            printf("CORRUPT records: %d (run sc-shard verify)\n", s->bad);
        }
    }
    core_free(s);
    pl_store_close(st);
    return exit_of(rc);
}

/* ---- get / cat ---- */

/* KEY: "#N" or digits without a leading zero are a sequence number; "key:NAME" or anything else is
 * a member key (first match in sequence order). Webdataset keys are usually zero-padded digits
 * ("000123"), which therefore read as keys. */
static int resolve_key(pl_store_t *st, const char *key, uint64_t *seq)
{
    const char *num = key[0] == '#' ? key + 1 : (key[0] != '0' || key[1] == '\0' ? key : NULL);
    if (num && num[0] >= '0' && num[0] <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(num, &end, 10);
        if (*end == '\0' && errno == 0) {
            *seq = v;
            return 0;
        }
    }
    if (strncmp(key, "key:", 4) == 0) {
        key += 4;
    }
    return pl_store_find_key(st, key, strlen(key), seq);
}

static int cmd_get(opts_t *o, int cat)
{
    if (o->n_pos != 2) {
        die_usage(cat ? "cat STORE KEY" : "get STORE KEY");
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDONLY);
    pl_tok_t *tok = cat ? NULL : load_vocab(st, o->vocab, 0);
    pl_store_reader_t *rd = NULL;
    uint64_t seq = 0;
    const uint8_t *v;
    size_t len;
    pl_record_t r;
    char *caption = NULL, *text = NULL;
    int rc = resolve_key(st, o->pos[1], &seq);
    if (rc == 0) {
        rc = pl_store_reader_open(st, &rd);
    }
    if (rc == 0) {
        rc = pl_store_get(rd, seq, &v, &len);
    }
    if (rc == 0) {
        rc = pl_record_decode(v, len, &r);
    }
    if (rc < 0) {
        fprintf(stderr, "sc-shard: %s: %s\n", o->pos[1], core_strerror(rc));
        goto out;
    }
    if (cat) {
        if (fwrite(r.image, 1, r.image_len, stdout) != r.image_len || fflush(stdout) != 0) {
            rc = CORE_ERR(EIO);
        }
        goto out;
    }
    caption = core_malloc_or_die(r.caption_len + 1);
    rc = pl_record_caption(&r, caption, r.caption_len + 1);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: %s: caption: %s\n", o->pos[1], core_strerror(rc));
        goto out;
    }
    size_t tl = 0;
    if (tok) {
        /* decode the BPE ids between SOT and EOT */
        size_t cap = 16 * PL_TOK_CONTEXT + 64;
        text = core_malloc_or_die(cap);
        if (pl_tok_decode(tok, r.tokens + 1, r.n_tokens - 2, text, cap, &tl) < 0) {
            text[0] = '\0';
        }
    }
    if (g_json) {
        json_t *toks = json_array(), *lab = json_array();
        for (uint32_t i = 0; i < r.n_tokens; i++) {
            json_array_append_new(toks, json_integer(r.tokens[i]));
        }
        for (uint32_t i = 0; i < r.n_label; i++) {
            json_array_append_new(lab, json_integer(r.label[i]));
        }
        json_out(json_pack("{s:I,s:s%,s:s,s:o,s:o,s:{s:s,s:i,s:i,s:I},s:{s:s%,s:s%,s:I},"
                           "s:{s:b,s:b,s:b}}",
                           "seq", (json_int_t)seq, "key", r.member_key, r.member_key_len, "caption",
                           caption, "tokens", toks, "label", lab, "image", "format",
                           pl_img_format_name(r.format), "width", (int)r.width, "height",
                           (int)r.height, "bytes", (json_int_t)r.image_len, "source", "file",
                           r.source_file, r.source_file_len, "key", r.member_key, r.member_key_len,
                           "sample_index", (json_int_t)r.sample_index, "flags", "caption_truncated",
                           (r.flags & PL_REC_CAPTION_TRUNCATED) != 0, "reencoded",
                           (r.flags & PL_REC_REENCODED) != 0, "tokens_truncated",
                           (r.flags & PL_REC_TOKENS_TRUNCATED) != 0));
        if (text) {
            /* the decoded text is in the human output; JSON users have the ids */
        }
    } else {
        printf("seq:      %" PRIu64 "\n", seq);
        printf("source:   %.*s, key %.*s, sample #%" PRIu64 "\n", (int)r.source_file_len,
               r.source_file, (int)r.member_key_len, r.member_key, r.sample_index);
        printf("caption:  %s%s\n", caption,
               r.flags & PL_REC_CAPTION_TRUNCATED ? "  [truncated at the byte cap]" : "");
        printf("tokens:   %u ids (SOT..EOT)%s:", r.n_tokens,
               r.flags & PL_REC_TOKENS_TRUNCATED ? ", cut at 77" : "");
        for (uint32_t i = 0; i < r.n_tokens; i++) {
            printf(" %u", r.tokens[i]);
        }
        printf("\n");
        if (text) {
            printf("decoded:  %s\n", text);
        } else {
            printf("decoded:  (no vocabulary available: pass --vocab FILE)\n");
        }
        printf("label:    %u ids:", r.n_label);
        for (uint32_t i = 0; i < r.n_label; i++) {
            printf(" %u", r.label[i]);
        }
        printf("\n");
        printf("image:    %s %ux%u, %zu bytes%s\n", pl_img_format_name(r.format), r.width, r.height,
               r.image_len, r.flags & PL_REC_REENCODED ? " (re-encoded)" : "");
    }
out:
    core_free(caption);
    core_free(text);
    pl_store_reader_close(rd);
    pl_tok_free(tok);
    pl_store_close(st);
    return exit_of(rc);
}

/* ---- verify ---- */

typedef struct verify_s {
    pl_img_ctx_t *img;
    core_progress_t bar;
    uint64_t n, bad;
    json_t *bad_list;
    char *cap;
    size_t cap_len;
} verify_t;

static void verify_bad(verify_t *v, uint64_t seq, const pl_record_t *r, const char *what)
{
    v->bad++;
    char key[256] = "?";
    if (r && r->member_key_len) {
        snprintf(key, sizeof(key), "%.*s", (int)r->member_key_len, r->member_key);
    }
    if (g_json) {
        json_array_append_new(v->bad_list, json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)seq, "key",
                                                     key, "error", what));
    } else {
        fprintf(stderr, "sc-shard: record %" PRIu64 " (key %s): %s\n", seq, key, what);
    }
}

static int verify_cb(void *ud, uint64_t seq, const uint8_t *val, size_t len)
{
    verify_t *v = ud;
    pl_record_t r;
    int rc = pl_record_decode(val, len, &r);
    v->n++;
    if (v->n % 256 == 0) {
        core_progress_update(&v->bar, v->n, NULL);
    }
    if (rc < 0) {
        verify_bad(v, seq, NULL, core_strerror(rc));
        return 0;
    }
    if (r.caption_len + 1 > v->cap_len) {
        v->cap = core_realloc_or_die(v->cap, r.caption_len + 1);
        v->cap_len = r.caption_len + 1;
    }
    rc = pl_record_caption(&r, v->cap, v->cap_len);
    if (rc < 0) {
        verify_bad(v, seq, &r, "caption does not decompress");
        return 0;
    }
    pl_img_info_t info;
    pl_img_err_t err;
    rc = pl_img_verify(v->img, r.image, r.image_len, NULL, &info, &err);
    if (rc < 0) {
        char what[200];
        snprintf(what, sizeof(what), "image: %s", err.text);
        verify_bad(v, seq, &r, what);
    } else if (info.width != r.width || info.height != r.height || info.format != r.format) {
        verify_bad(v, seq, &r, "image size/format differs from the record header");
    }
    return 0;
}

static int cmd_verify(opts_t *o)
{
    if (o->n_pos != 1) {
        die_usage("verify STORE");
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDONLY);
    verify_t v;
    memset(&v, 0, sizeof(v));
    v.bad_list = json_array();
    if (pl_img_ctx_new(&v.img) < 0) {
        return EXIT_ERR;
    }
    core_progress_init(&v.bar, "verify", pl_store_count(st), o->no_progress || g_json ? -1 : 0);
    int rc = pl_store_foreach(st, verify_cb, &v);
    core_progress_finish(&v.bar, NULL);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: verify: store error: %s\n", core_strerror(rc));
        v.bad++;
    }
    if (g_json) {
        json_out(json_pack("{s:I,s:I,s:o}", "records", (json_int_t)v.n, "bad", (json_int_t)v.bad,
                           "bad_records", v.bad_list));
    } else {
        json_decref(v.bad_list);
        printf("%" PRIu64 " records checked, %" PRIu64 " bad\n", v.n, v.bad);
    }
    pl_img_ctx_free(v.img);
    core_free(v.cap);
    pl_store_close(st);
    return v.bad ? EXIT_CORRUPT : EXIT_OK;
}

/* ---- top-tokens ---- */

typedef struct df_s {
    uint64_t *df;
    uint32_t vocab;
    uint64_t n;
} df_t;

static int df_cb(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    df_t *d = ud;
    pl_record_t r;
    int rc = pl_record_decode(v, len, &r);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: record %" PRIu64 ": %s\n", seq, core_strerror(rc));
        return rc;
    }
    d->n++;
    for (uint32_t i = 0; i < r.n_label; i++) {
        if (r.label[i] < d->vocab) {
            d->df[r.label[i]]++;
        }
    }
    return 0;
}

static const uint64_t *g_df;
static int cmp_df(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (g_df[x] != g_df[y]) {
        return g_df[x] > g_df[y] ? -1 : 1;
    }
    return x < y ? -1 : (x > y);
}

static int cmd_top_tokens(opts_t *o)
{
    if (o->n_pos != 1) {
        die_usage("top-tokens STORE [-n N]");
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDONLY);
    pl_tok_t *tok = load_vocab(st, o->vocab, 1);
    df_t d = {NULL, pl_tok_vocab_size(tok), 0};
    d.df = core_calloc_or_die(d.vocab, sizeof(uint64_t));
    int rc = pl_store_foreach(st, df_cb, &d);
    uint32_t *ids = core_malloc_or_die(d.vocab * sizeof(uint32_t));
    for (uint32_t i = 0; i < d.vocab; i++) {
        ids[i] = i;
    }
    g_df = d.df;
    qsort(ids, d.vocab, sizeof(uint32_t), cmp_df);
    json_t *arr = json_array();
    if (!g_json) {
        printf("%" PRIu64 " records; document frequency of label ids (idf = ln((N+1)/(df+1)))\n",
               d.n);
        printf("%8s %10s %7s %7s  %s\n", "id", "df", "frac", "idf", "token");
    }
    for (long k = 0; k < o->top_n && (uint32_t)k < d.vocab && d.df[ids[k]] > 0; k++) {
        uint32_t id = ids[k];
        char text[256];
        size_t tl = 0;
        if (pl_tok_decode(tok, &id, 1, text, sizeof(text), &tl) < 0) {
            snprintf(text, sizeof(text), "?");
        }
        const char *note = id == 0 ? " (also the pad id)" : "";
        double frac = (double)d.df[id] / (double)(d.n ? d.n : 1);
        double idf = log((double)(d.n + 1) / (double)(d.df[id] + 1));
        if (g_json) {
            json_array_append_new(
                arr, json_pack("{s:i,s:I,s:f,s:f,s:s,s:s}", "id", (int)id, "df",
                               (json_int_t)d.df[id], "frac", frac, "idf", idf, "text", text,
                               "symbol", pl_tok_symbol(tok, id) ? pl_tok_symbol(tok, id) : ""));
        } else {
            printf("%8u %10" PRIu64 " %7.4f %7.3f  %s%s\n", id, d.df[id], frac, idf, text, note);
        }
    }
    if (g_json) {
        json_out(json_pack("{s:I,s:o}", "records", (json_int_t)d.n, "tokens", arr));
    } else {
        json_decref(arr);
    }
    core_free(ids);
    core_free(d.df);
    pl_tok_free(tok);
    pl_store_close(st);
    return exit_of(rc);
}

/* ---- export ---- */

typedef struct exp_item_s {
    uint32_t src;  /* index into names */
    uint32_t copy; /* 0, or k for the k-th other source file with the same name (see below) */
    uint64_t sample_index;
    uint64_t seq;
} exp_item_t;

typedef struct exp_s {
    exp_item_t *items;
    size_t n, cap;
    char **names;
    size_t n_names, cap_names;
} exp_t;

static int exp_collect(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    exp_t *e = ud;
    pl_record_t r;
    int rc = pl_record_decode(v, len, &r);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: record %" PRIu64 ": %s\n", seq, core_strerror(rc));
        return rc;
    }
    uint32_t src = UINT32_MAX;
    for (size_t i = e->n_names; i-- > 0;) {
        if (strlen(e->names[i]) == r.source_file_len &&
            memcmp(e->names[i], r.source_file, r.source_file_len) == 0) {
            src = (uint32_t)i;
            break;
        }
    }
    if (src == UINT32_MAX) {
        if (e->n_names == e->cap_names) {
            e->cap_names = e->cap_names ? e->cap_names * 2 : 16;
            e->names = core_realloc_or_die(e->names, e->cap_names * sizeof(char *));
        }
        e->names[e->n_names] = core_strndup(r.source_file, r.source_file_len);
        src = (uint32_t)e->n_names++;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1024;
        e->items = core_realloc_or_die(e->items, e->cap * sizeof(exp_item_t));
    }
    e->items[e->n++] = (exp_item_t){src, 0, r.sample_index, seq};
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const exp_item_t *x = a, *y = b;
    if (x->src != y->src) {
        return x->src < y->src ? -1 : 1;
    }
    if (x->copy != y->copy) {
        return x->copy < y->copy ? -1 : 1;
    }
    if (x->sample_index != y->sample_index) {
        return x->sample_index < y->sample_index ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static int tar_add(struct archive *a, const char *name, const void *data, size_t len)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    int rc = archive_write_header(a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) {
        return -1;
    }
    if (len && archive_write_data(a, data, len) != (la_ssize_t)len) {
        return -1;
    }
    return 0;
}

/* Records keep only their source's base name, so two archives with the same name in different
 * directories share it. A file has one record per sample index, so among the records of one name
 * with the same sample index the k-th by sequence number (ingest is file by file) comes from the
 * k-th such file: it goes to OUTDIR/dup-k/NAME, keeping the name, so re-ingesting OUTDIR
 * reproduces the store. Needs items sorted by cmp_item with every copy 0; re-sorts them. */
static uint32_t exp_split_same_names(exp_t *e)
{
    uint32_t max_copy = 0;
    for (size_t i = 1; i < e->n; i++) {
        exp_item_t *p = &e->items[i - 1], *it = &e->items[i];
        if (it->src == p->src && it->sample_index == p->sample_index) {
            it->copy = p->copy + 1;
            max_copy = it->copy > max_copy ? it->copy : max_copy;
        }
    }
    if (max_copy > 0) {
        qsort(e->items, e->n, sizeof(exp_item_t), cmp_item);
    }
    return max_copy;
}

/* The tar of item `it` (part: its temporary name). Returns 0, or CORE_ETOO_LARGE (message
 * printed) when the path does not fit. */
static int exp_path(char *path, size_t cap, const char *out, const exp_t *e,
                    const exp_item_t *it, int part)
{
    const char *nm = e->names[it->src];
    char dup[32] = "";
    if (it->copy != 0) {
        snprintf(dup, sizeof dup, "/dup-%u", it->copy);
    }
    int n = snprintf(path, cap, "%s%s/%s%s%s%s", out, dup, part ? "." : "",
                     nm[0] ? nm : "unnamed", is_shard_name(nm) ? "" : ".tar", part ? ".part" : "");
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "sc-shard: export: the path for %s under %s is too long\n", nm, out);
        return CORE_ETOO_LARGE;
    }
    return 0;
}

/* Before anything is written: no tar of this export may exist already (an export into the
 * directory the shards came from must not overwrite them). */
static int exp_check_free(const char *out, const exp_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        if (i > 0 && e->items[i].src == e->items[i - 1].src &&
            e->items[i].copy == e->items[i - 1].copy) {
            continue;
        }
        char path[PATH_MAX];
        int rc = exp_path(path, sizeof path, out, e, &e->items[i], 0);
        if (rc < 0) {
            return rc;
        }
        if (access(path, F_OK) == 0) {
            fprintf(stderr,
                    "sc-shard: export: %s exists; export into an empty directory (nothing was "
                    "written)\n",
                    path);
            return CORE_ERR(EEXIST);
        }
    }
    return 0;
}

/* Finishes the tar being written: close, then move .NAME.part to NAME without replacing. */
static int exp_finish(struct archive *a, const char *part, const char *final, int ok)
{
    int rc = archive_write_close(a) == ARCHIVE_OK ? 0 : CORE_ERR(EIO);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: export: %s: %s\n", part, archive_error_string(a));
    }
    archive_write_free(a);
    if (ok && rc == 0) {
        /* link + unlink: fails with EEXIST instead of replacing a file that appeared meanwhile */
        if (link(part, final) != 0) {
            rc = CORE_ERR(errno);
            fprintf(stderr, "sc-shard: export: %s: %s\n", final, strerror(errno));
        }
    }
    unlink(part);
    return ok ? rc : 0;
}

static int cmd_export(opts_t *o)
{
    if (o->n_pos != 2) {
        die_usage("export STORE OUTDIR");
    }
    const char *out = o->pos[1];
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "sc-shard: %s: %s\n", out, strerror(errno));
        return EXIT_ERR;
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDONLY);
    exp_t e;
    memset(&e, 0, sizeof(e));
    int rc = pl_store_foreach(st, exp_collect, &e);
    uint32_t dups = 0;
    if (rc == 0 && e.n) {
        qsort(e.items, e.n, sizeof(exp_item_t), cmp_item);
        dups = exp_split_same_names(&e);
        rc = exp_check_free(out, &e);
    }
    for (uint32_t k = 1; k <= dups && rc == 0; k++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/dup-%u", out, k);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "sc-shard: %s: %s\n", dir, strerror(errno));
            rc = CORE_ERR(errno);
        }
    }
    if (rc == 0 && dups > 0) {
        fprintf(stderr,
                "sc-shard: export: several source files share a name; the extra ones go to "
                "%s/dup-1 .. dup-%u (names kept)\n",
                out, dups);
    }
    pl_store_reader_t *rd = NULL;
    if (rc == 0) {
        rc = pl_store_reader_open(st, &rd);
    }
    struct archive *a = NULL;
    char part[PATH_MAX], final[PATH_MAX];
    uint32_t cur = UINT32_MAX, cur_copy = 0;
    size_t n_tars = 0;
    char *cap = NULL;
    size_t cap_len = 0;
    core_progress_t bar;
    core_progress_init(&bar, "export", e.n, o->no_progress || g_json ? -1 : 0);
    for (size_t i = 0; i < e.n && rc == 0; i++) {
        exp_item_t *it = &e.items[i];
        if (it->src != cur || it->copy != cur_copy) {
            if (a) {
                rc = exp_finish(a, part, final, 1);
                a = NULL;
                if (rc < 0) {
                    break;
                }
            }
            /* Written under a hidden name (skipped by ingest and the daemon's spool) and moved
             * into place when complete: a killed export leaves no half tar under a real name. */
            rc = exp_path(part, sizeof part, out, &e, it, 1);
            if (rc == 0) {
                rc = exp_path(final, sizeof final, out, &e, it, 0);
            }
            if (rc < 0) {
                break;
            }
            a = archive_write_new();
            archive_write_set_format_ustar(a);
            if (strstr(final, ".gz")) {
                archive_write_add_filter_gzip(a);
            } else if (strstr(final, ".zst") || strstr(final, ".tzst")) {
                archive_write_add_filter_zstd(a);
            }
            int fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd < 0 || archive_write_open_fd(a, fd) != ARCHIVE_OK) {
                fprintf(stderr, "sc-shard: %s: %s\n", part,
                        fd < 0 ? strerror(errno) : archive_error_string(a));
                rc = CORE_ERR(fd < 0 ? errno : EIO);
                if (fd >= 0) {
                    close(fd);
                    unlink(part);
                }
                archive_write_free(a);
                a = NULL;
                break;
            }
            cur = it->src;
            cur_copy = it->copy;
            n_tars++;
        }
        const uint8_t *v;
        size_t len;
        pl_record_t r;
        rc = pl_store_get(rd, it->seq, &v, &len);
        if (rc == 0) {
            rc = pl_record_decode(v, len, &r);
        }
        if (rc < 0) {
            break;
        }
        if (r.caption_len + 1 > cap_len) {
            cap = core_realloc_or_die(cap, r.caption_len + 1);
            cap_len = r.caption_len + 1;
        }
        rc = pl_record_caption(&r, cap, cap_len);
        if (rc < 0) {
            break;
        }
        static const char *const ext[4] = {"bin", "jpg", "png", "webp"};
        char name[PL_RECORD_MAX_NAME + 16];
        char key[PL_RECORD_MAX_NAME + 1];
        snprintf(key, sizeof(key), "%.*s", (int)r.member_key_len, r.member_key);
        snprintf(name, sizeof(name), "%s.%s", key, ext[r.format & 3]);
        int w = tar_add(a, name, r.image, r.image_len);
        snprintf(name, sizeof(name), "%s.txt", key);
        w |= tar_add(a, name, cap, r.caption_len);
        char js[256];
        int jn = snprintf(js, sizeof(js),
                          "{\"sample_index\": %" PRIu64 ", \"width\": %u, \"height\": %u, "
                          "\"caption_truncated\": %s, \"reencoded\": %s}",
                          r.sample_index, r.width, r.height,
                          r.flags & PL_REC_CAPTION_TRUNCATED ? "true" : "false",
                          r.flags & PL_REC_REENCODED ? "true" : "false");
        snprintf(name, sizeof(name), "%s.json", key);
        w |= tar_add(a, name, js, (size_t)jn);
        if (w) {
            fprintf(stderr, "sc-shard: export: %s\n", archive_error_string(a));
            rc = CORE_ERR(EIO);
        }
        pl_store_reader_reset(rd);
        if (i % 256 == 0) {
            core_progress_update(&bar, i, NULL);
        }
    }
    core_progress_finish(&bar, NULL);
    if (a) {
        int frc = exp_finish(a, part, final, rc == 0);
        rc = rc < 0 ? rc : frc;
    }
    if (rc < 0) {
        fprintf(stderr, "sc-shard: export: %s\n", core_strerror(rc));
    } else if (g_json) {
        json_out(json_pack("{s:I,s:I,s:s}", "records", (json_int_t)e.n, "tars", (json_int_t)n_tars,
                           "dir", out));
    } else {
        printf("exported %zu records into %zu tar(s) in %s\n", e.n, n_tars, out);
    }
    core_free(cap);
    for (size_t i = 0; i < e.n_names; i++) {
        core_free(e.names[i]);
    }
    core_free(e.names);
    core_free(e.items);
    pl_store_reader_close(rd);
    pl_store_close(st);
    return exit_of(rc);
}

/* ---- digest ---- */

static int cmd_digest(opts_t *o)
{
    if (o->n_pos != 1) {
        die_usage("digest STORE");
    }
    pl_store_t *st = open_store(o->pos[0], PL_STORE_RDONLY);
    char hex[65];
    uint64_t n = 0;
    int rc = pl_store_digest(st, hex, &n);
    if (rc < 0) {
        fprintf(stderr, "sc-shard: digest: %s\n", core_strerror(rc));
    } else if (g_json) {
        json_out(json_pack("{s:s,s:I}", "digest", hex, "records", (json_int_t)n));
    } else {
        printf("%s %" PRIu64 "\n", hex, n);
    }
    pl_store_close(st);
    return exit_of(rc);
}

int main(int argc, char **argv)
{
    core_log_init("sc-shard");
    int ci = 1;
    while (ci < argc && argv[ci][0] == '-') {
        if (strcmp(argv[ci], "--json") == 0) {
            g_json = 1;
        } else if (strcmp(argv[ci], "--help") == 0 || strcmp(argv[ci], "-h") == 0) {
            fputs(usage_text, stdout);
            return EXIT_OK;
        } else {
            die_usage("unknown option %s", argv[ci]);
        }
        ci++;
    }
    if (ci >= argc) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[ci];
    opts_t *o = core_calloc_or_die(1, sizeof(*o));
    parse_opts(argc, argv, ci + 1, o);
    int rc;
    if (strcmp(cmd, "create") == 0) {
        rc = cmd_create(o);
    } else if (strcmp(cmd, "ingest") == 0) {
        rc = cmd_ingest(o);
    } else if (strcmp(cmd, "ls") == 0) {
        rc = cmd_ls(o);
    } else if (strcmp(cmd, "stat") == 0) {
        rc = cmd_stat(o);
    } else if (strcmp(cmd, "get") == 0) {
        rc = cmd_get(o, 0);
    } else if (strcmp(cmd, "cat") == 0) {
        rc = cmd_get(o, 1);
    } else if (strcmp(cmd, "verify") == 0) {
        rc = cmd_verify(o);
    } else if (strcmp(cmd, "top-tokens") == 0) {
        rc = cmd_top_tokens(o);
    } else if (strcmp(cmd, "export") == 0) {
        rc = cmd_export(o);
    } else if (strcmp(cmd, "digest") == 0) {
        rc = cmd_digest(o);
    } else {
        die_usage("unknown command %s", cmd);
        rc = EXIT_USAGE;
    }
    core_free(o);
    return rc;
}
