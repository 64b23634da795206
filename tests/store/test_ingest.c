/* Ingest acceptance on the shared bad inputs (data/README.md): bad.tar keeps exactly the valid
 * samples and rejects each other key with its own reason; the truncated archive keeps what came
 * before the damage; edge.tar keeps all 12; realbomb.tar is refused without a big allocation;
 * re-ingest adds nothing; an interrupted ingest resumes exactly once; a full disk stops the ingest
 * cleanly and a later ingest completes it. */
#include <archive.h>
#include <archive_entry.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "pipeline/image.h"
#include "pipeline/ingest.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"
#include "t.h"

static pl_tok_t *load_tok(void)
{
    pl_tok_t *tok = NULL;
    T_ASSERT_OK(pl_tok_load(t_shared("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &tok));
    return tok;
}

static void mkstore(const char *dir, const pl_tok_t *tok, const pl_store_policy_t *pol)
{
    pl_store_policy_t def;
    pl_store_policy_default(&def);
    T_ASSERT_OK(pl_store_create(dir, pl_tok_hash(tok), NULL, pol ? pol : &def, NULL));
}

/* Worker threads for every ingest of a test (the *_threads cases set it). */
static int g_threads;

/* Ingests `files` into store `dir`; returns the first error; *stats_out gets the counters. */
static int ingest(const char *dir, const pl_tok_t *tok, const char *const *files, size_t n,
                  const pl_ingest_opts_t *opts, pl_ingest_stats_t *stats_out)
{
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDWR, &st));
    pl_ingest_t *ing = NULL;
    pl_ingest_opts_t o;
    if (opts) {
        o = *opts;
    } else {
        pl_ingest_opts_default(&o);
    }
    o.threads = g_threads;
    T_ASSERT_OK(pl_ingest_new(st, tok, &o, &ing));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = pl_ingest_file(ing, files[i]);
    }
    if (stats_out) {
        *stats_out = *pl_ingest_stats(ing);
    }
    pl_ingest_free(ing);
    pl_store_close(st);
    return rc;
}

/* ---- what the store holds ---- */

#define MAXK 64
typedef struct {
    int n;
    char key[MAXK][96];
    uint32_t val[MAXK]; /* reason, or flags|format<<8 for records */
} kmap_t;

static int rej_cb(void *ud, const char *file, uint64_t idx, uint32_t reason, const char *key)
{
    kmap_t *m = ud;
    T_ASSERT(m->n < MAXK);
    snprintf(m->key[m->n], sizeof(m->key[0]), "%s", key);
    m->val[m->n++] = reason;
    (void)file;
    (void)idx;
    return 0;
}

static int rec_cb(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    kmap_t *m = ud;
    pl_record_t r;
    T_ASSERT_OK(pl_record_decode(v, len, &r));
    T_ASSERT(m->n < MAXK);
    snprintf(m->key[m->n], sizeof(m->key[0]), "%.*s", (int)r.member_key_len, r.member_key);
    m->val[m->n++] = r.flags | ((uint32_t)r.format << 8);
    (void)seq;
    return 0;
}

static int kfind(const kmap_t *m, const char *key)
{
    int hits = 0, at = -1;
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->key[i], key) == 0) {
            hits++;
            at = i;
        }
    }
    return hits == 1 ? at : (hits == 0 ? -1 : -2);
}

static void contents(const char *dir, kmap_t *recs, kmap_t *rejs)
{
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    memset(recs, 0, sizeof(*recs));
    memset(rejs, 0, sizeof(*rejs));
    T_ASSERT_OK(pl_store_foreach(st, rec_cb, recs));
    T_ASSERT_OK(pl_store_rejects(st, rej_cb, rejs));
    pl_store_close(st);
}

static void want_reject(const kmap_t *rejs, const char *key, pl_reject_t reason)
{
    int i = kfind(rejs, key);
    if (i < 0) {
        T_FAIL("%s: expected one reject %s, found %s", key, pl_reject_name(reason),
               i == -1 ? "none" : "several");
    }
    if (rejs->val[i] != (uint32_t)reason) {
        T_FAIL("%s: rejected as %s, expected %s", key, pl_reject_name(rejs->val[i]),
               pl_reject_name(reason));
    }
}

static void bad_tar_run(int verify_header, int reject_long)
{
    pl_tok_t *tok = load_tok();
    const char *bad = t_shared("bad/bad.tar");
    char path[1024];
    snprintf(path, sizeof(path), "%s", bad);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    pol.verify = verify_header ? PL_VERIFY_HEADER : PL_VERIFY_FULL;
    pol.caption_overflow = reject_long ? PL_CAPTION_REJECT : PL_CAPTION_TRUNCATE;
    mkstore(dir, tok, &pol);
    const char *files[1] = {path};
    pl_ingest_stats_t s;
    T_ASSERT_OK(ingest(dir, tok, files, 1, NULL, &s));
    kmap_t recs, rejs;
    contents(dir, &recs, &rejs);
    /* kept: 03 (a PNG under .jpg: decoded by magic), 07 (cut at the cap, flagged), 13b */
    int i = kfind(&recs, "bad_03_png_named_jpg");
    T_ASSERT(i >= 0);
    T_ASSERT_EQ(recs.val[i] >> 8, PL_IMG_PNG);
    T_ASSERT(kfind(&recs, "bad_13b_between") >= 0);
    int n_kept = 2;
    if (reject_long) {
        want_reject(&rejs, "bad_07_100kb_caption", PL_REJECT_CAPTION_TOO_LONG);
    } else {
        i = kfind(&recs, "bad_07_100kb_caption");
        T_ASSERT(i >= 0);
        T_ASSERT(recs.val[i] & PL_REC_CAPTION_TRUNCATED);
        T_ASSERT(recs.val[i] & PL_REC_TOKENS_TRUNCATED);
        n_kept++;
    }
    if (verify_header) {
        T_ASSERT(kfind(&recs, "bad_01_truncated_jpeg") >= 0); /* the header is intact */
        n_kept++;
    } else {
        want_reject(&rejs, "bad_01_truncated_jpeg", PL_REJECT_IMAGE_TRUNCATED);
    }
    T_ASSERT_EQ(recs.n, n_kept);
    want_reject(&rejs, "bad_02_zero_byte_image", PL_REJECT_IMAGE_EMPTY);
    want_reject(&rejs, "bad_04_huge_dims_jpeg", PL_REJECT_IMAGE_TOO_LARGE);
    want_reject(&rejs, "bad_05_invalid_utf8_caption", PL_REJECT_CAPTION_UTF8);
    want_reject(&rejs, "bad_06_empty_caption", PL_REJECT_CAPTION_EMPTY);
    want_reject(&rejs, "bad_08_txt_without_image", PL_REJECT_NO_IMAGE);
    want_reject(&rejs, "bad_09_image_without_txt", PL_REJECT_NO_CAPTION);
    want_reject(&rejs, "bad_10_whitespace_caption", PL_REJECT_CAPTION_BLANK);
    want_reject(&rejs, "bad_11_garbage_image", PL_REJECT_IMAGE_UNKNOWN_FORMAT);
    want_reject(&rejs, "bad_12_nul_in_caption", PL_REJECT_CAPTION_NUL);
    /* key 13: both fragments split_key */
    int n13 = 0;
    for (int k = 0; k < rejs.n; k++) {
        if (strcmp(rejs.key[k], "bad_13_split_key") == 0) {
            T_ASSERT_EQ(rejs.val[k], PL_REJECT_SPLIT_KEY);
            n13++;
        }
    }
    T_ASSERT_EQ(n13, 2);
    T_ASSERT_EQ(recs.n + rejs.n, 15); /* 12 keys, 13, 13b, 13 again */
    T_ASSERT_EQ(s.kept, (uint64_t)recs.n);
    T_ASSERT_EQ(s.rejected, (uint64_t)rejs.n);
    T_ASSERT_EQ(s.rejects[PL_REJECT_SPLIT_KEY], 2);
    /* re-ingest adds nothing */
    T_ASSERT_OK(ingest(dir, tok, files, 1, NULL, &s));
    T_ASSERT_EQ(s.files_skipped, 1);
    T_ASSERT_EQ(s.samples, 0);
    kmap_t recs2, rejs2;
    contents(dir, &recs2, &rejs2);
    T_ASSERT_EQ(recs2.n, recs.n);
    T_ASSERT_EQ(rejs2.n, rejs.n);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
}

T_CASE(ingest_bad_tar_verify_full)
{
    bad_tar_run(0, 0);
}

T_CASE(ingest_bad_tar_verify_header)
{
    bad_tar_run(1, 0);
}

T_CASE(ingest_bad_tar_caption_reject)
{
    bad_tar_run(0, 1);
}

T_CASE(ingest_truncated_archive)
{
    pl_tok_t *tok = load_tok();
    char path[1024];
    snprintf(path, sizeof(path), "%s", t_shared("bad/bad_truncated_archive.tar"));
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    mkstore(dir, tok, NULL);
    const char *files[1] = {path};
    pl_ingest_stats_t s;
    T_ASSERT_OK(ingest(dir, tok, files, 1, NULL, &s));
    T_ASSERT_EQ(s.files_damaged, 1);
    kmap_t recs, rejs;
    contents(dir, &recs, &rejs);
    /* the archive ends inside key 01's .txt block (its 48 data bytes are there, the block padding
     * is not, and libarchive refuses the member): sample 01 is cut by the damage, nothing after it
     * exists */
    T_ASSERT_EQ(recs.n, 0);
    T_ASSERT_EQ(rejs.n, 1);
    want_reject(&rejs, "bad_01_truncated_jpeg", PL_REJECT_ARCHIVE_DAMAGED);
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    uint8_t id[32];
    T_ASSERT_OK(pl_store_file_identity(path, id, NULL));
    pl_file_progress_t p;
    T_ASSERT_OK(pl_store_file_progress(st, id, &p));
    T_ASSERT_EQ(p.state, PL_FILE_DAMAGED);
    T_ASSERT_U64_EQ(p.next_sample, 1);
    pl_store_close(st);
    T_ASSERT_OK(ingest(dir, tok, files, 1, NULL, &s));
    T_ASSERT_EQ(s.files_skipped, 1);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
}

typedef struct {
    pl_img_ctx_t *ctx;
    int n, bad;
    char utf8[256];
} edge_t;

static int edge_cb(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    edge_t *e = ud;
    pl_record_t r;
    T_ASSERT_OK(pl_record_decode(v, len, &r));
    pl_img_info_t info;
    const uint8_t *rgb = NULL;
    pl_img_err_t err;
    int rc = pl_img_decode_rgb(e->ctx, r.image, r.image_len, NULL, &info, &rgb, &err);
    if (rc < 0 || info.width != r.width || info.height != r.height || info.format != r.format) {
        e->bad++;
        core_log_err("edge %.*s: %s %s", (int)r.member_key_len, r.member_key, core_strerror(rc),
                     err.text);
    }
    if (r.member_key_len == strlen("edge_12_utf8_caption") &&
        memcmp(r.member_key, "edge_12_utf8_caption", r.member_key_len) == 0) {
        T_ASSERT(r.caption_len < sizeof(e->utf8));
        T_ASSERT_OK(pl_record_caption(&r, e->utf8, sizeof(e->utf8)));
    }
    e->n++;
    (void)seq;
    return 0;
}

T_CASE(ingest_edge_all_kept)
{
    pl_tok_t *tok = load_tok();
    char path[1024];
    snprintf(path, sizeof(path), "%s", t_shared("bad/edge.tar"));
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    mkstore(dir, tok, NULL);
    const char *files[1] = {path};
    pl_ingest_stats_t s;
    T_ASSERT_OK(ingest(dir, tok, files, 1, NULL, &s));
    T_ASSERT_EQ(s.kept, 12);
    T_ASSERT_EQ(s.rejected, 0);
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    edge_t e;
    memset(&e, 0, sizeof(e));
    T_ASSERT_OK(pl_img_ctx_new(&e.ctx));
    T_ASSERT_OK(pl_store_foreach(st, edge_cb, &e));
    pl_img_ctx_free(e.ctx);
    T_ASSERT_EQ(e.n, 12);
    T_ASSERT_EQ(e.bad, 0);
    T_ASSERT_STR_EQ(e.utf8, "visage souriant 😀 – café, naïve, 笑脸, Ωμέγα");
    pl_store_close(st);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
}

T_CASE(ingest_realbomb_low_rss)
{
    pl_tok_t *tok = load_tok();
    char path[1024];
    snprintf(path, sizeof(path), "%s", t_shared("bad/realbomb.tar"));
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    mkstore(dir, tok, NULL);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        const char *files[1] = {path};
        pl_ingest_stats_t s;
        int rc = ingest(dir, tok, files, 1, NULL, &s);
        _exit(rc == 0 && s.kept == 0 && s.rejects[PL_REJECT_IMAGE_TOO_LARGE] == 1 ? 0 : 1);
    }
    int status = 0;
    T_ASSERT(waitpid(pid, &status, 0) == pid);
    T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct rusage ru;
    T_ASSERT(getrusage(RUSAGE_CHILDREN, &ru) == 0);
    /* ru_maxrss is in KiB: the decoded image would be 2.5 GB; the child must stay near its
     * baseline (tokenizer + one 2.8 MB member). */
    if (ru.ru_maxrss > 300 * 1024) {
        T_FAIL("peak RSS %ld KiB", ru.ru_maxrss);
    }
    pl_tok_free(tok);
}

/* ---- exactly once: kill -9 mid-ingest, full disk ---- */

static int kill_after;
static void kill_cb(void *ud, const pl_ingest_stats_t *s)
{
    (void)ud;
    if (s->commits >= (uint64_t)kill_after) {
        kill(getpid(), SIGKILL);
    }
}

static void digest_of(const char *dir, char hex[65], uint64_t *n)
{
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    T_ASSERT_OK(pl_store_digest(st, hex, n));
    pl_store_close(st);
}

/* Every (source file, sample index) appears once among records and rejects together. */
typedef struct {
    uint8_t seen[4][8192];
    int dups;
    char names[4][64];
    int n_names;
} uniq_t;

static int uniq_mark(uniq_t *u, const char *file, size_t flen, uint64_t idx)
{
    int f = -1;
    for (int i = 0; i < u->n_names; i++) {
        if (strlen(u->names[i]) == flen && memcmp(u->names[i], file, flen) == 0) {
            f = i;
        }
    }
    if (f < 0) {
        T_ASSERT(u->n_names < 4 && flen < 64);
        f = u->n_names++;
        memcpy(u->names[f], file, flen);
        u->names[f][flen] = '\0';
    }
    T_ASSERT(idx < 8192);
    if (u->seen[f][idx]++) {
        u->dups++;
    }
    return 0;
}

static int uniq_rec(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    pl_record_t r;
    T_ASSERT_OK(pl_record_decode(v, len, &r));
    (void)seq;
    return uniq_mark(ud, r.source_file, r.source_file_len, r.sample_index);
}

static int uniq_rej(void *ud, const char *file, uint64_t idx, uint32_t reason, const char *key)
{
    (void)reason;
    (void)key;
    return uniq_mark(ud, file, strlen(file), idx);
}

static uint64_t check_unique(const char *dir)
{
    static uniq_t u;
    memset(&u, 0, sizeof(u));
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    T_ASSERT_OK(pl_store_foreach(st, uniq_rec, &u));
    T_ASSERT_OK(pl_store_rejects(st, uniq_rej, &u));
    uint64_t n = pl_store_count(st);
    pl_store_close(st);
    T_ASSERT_EQ(u.dups, 0);
    return n;
}

T_CASE(ingest_kill9_resume_exactly_once)
{
    pl_tok_t *tok = load_tok();
    char f1[1024], f2[1024];
    snprintf(f1, sizeof(f1), "%s", t_shared("corpus/digits/digits-000000.tar"));
    snprintf(f2, sizeof(f2), "%s", t_shared("bad/bad.tar"));
    const char *files[2] = {f1, f2};
    char clean[512], dir[512];
    snprintf(clean, sizeof(clean), "%s/clean", t_tmpdir());
    snprintf(dir, sizeof(dir), "%s/crash", t_tmpdir());
    mkstore(clean, tok, NULL);
    mkstore(dir, tok, NULL);
    pl_ingest_opts_t o;
    pl_ingest_opts_default(&o);
    o.batch_records = 64;
    o.log_rejects = 0;
    T_ASSERT_OK(ingest(clean, tok, files, 2, &o, NULL));
    /* kill after 2, 5 and 9 commits (the third run finishes the first file and dies in the
     * second), then a final uninterrupted run */
    const int kills[3] = {2, 5, 9};
    for (int k = 0; k < 3; k++) {
        fflush(NULL);
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            kill_after = kills[k];
            pl_ingest_opts_t ko = o;
            ko.progress = kill_cb;
            (void)ingest(dir, tok, files, 2, &ko, NULL);
            _exit(3); /* finished without being killed */
        }
        int status = 0;
        T_ASSERT(waitpid(pid, &status, 0) == pid);
        T_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        check_unique(dir);
    }
    pl_ingest_stats_t s;
    T_ASSERT_OK(ingest(dir, tok, files, 2, &o, &s));
    T_ASSERT(s.files_resumed + s.files_skipped >= 1);
    char h1[65], h2[65];
    uint64_t n1, n2;
    digest_of(clean, h1, &n1);
    digest_of(dir, h2, &n2);
    T_ASSERT_U64_EQ(n1, n2);
    T_ASSERT_STR_EQ(h1, h2);
    check_unique(dir);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
}

T_CASE(ingest_full_disk_then_continue)
{
    pl_tok_t *tok = load_tok();
    char f1[1024];
    snprintf(f1, sizeof(f1), "%s", t_shared("corpus/digits/digits-000000.tar"));
    const char *files[1] = {f1};
    char clean[512], dir[512];
    snprintf(clean, sizeof(clean), "%s/clean", t_tmpdir());
    snprintf(dir, sizeof(dir), "%s/full", t_tmpdir());
    mkstore(clean, tok, NULL);
    mkstore(dir, tok, NULL);
    pl_ingest_opts_t o;
    pl_ingest_opts_default(&o);
    o.batch_records = 50;
    o.log_rejects = 0;
    T_ASSERT_OK(ingest(clean, tok, files, 1, &o, NULL));
    /* the limit: half of what the clean store's shard needs */
    pl_store_t *cs = NULL;
    T_ASSERT_OK(pl_store_open(clean, PL_STORE_RDONLY, &cs));
    uint64_t shard_bytes = 0;
    T_ASSERT_OK(pl_store_shard_info(cs, 0, NULL, NULL, NULL, &shard_bytes));
    pl_store_close(cs);
    T_ASSERT(shard_bytes > 64 * 1024);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        /* The file size limit stands in for a full disk: writes past it fail with EFBIG once
         * SIGXFSZ is ignored. */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {shard_bytes / 2, shard_bytes / 2};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            _exit(4);
        }
        int rc = ingest(dir, tok, files, 1, &o, NULL);
        if (!(rc == CORE_ERR(EFBIG) || rc == CORE_ERR(ENOSPC) || rc == CORE_EFULL)) {
            fprintf(stderr, "full-disk child: ingest returned %d (%s)\n", rc, core_strerror(rc));
        }
        _exit(rc == CORE_ERR(EFBIG) || rc == CORE_ERR(ENOSPC) || rc == CORE_EFULL ? 0 : 5);
    }
    int status = 0;
    T_ASSERT(waitpid(pid, &status, 0) == pid);
    T_ASSERT(WIFEXITED(status));
    T_ASSERT_EQ(WEXITSTATUS(status), 0);
    /* the store is readable and consistent: every record decodes, progress matches */
    uint64_t n_partial = check_unique(dir);
    T_ASSERT(n_partial > 0);
    char h[65];
    uint64_t n;
    digest_of(dir, h, &n);
    T_ASSERT_U64_EQ(n, n_partial);
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    uint8_t id[32];
    T_ASSERT_OK(pl_store_file_identity(f1, id, NULL));
    pl_file_progress_t p;
    T_ASSERT_OK(pl_store_file_progress(st, id, &p));
    T_ASSERT_EQ(p.state, PL_FILE_PARTIAL);
    T_ASSERT_U64_EQ(p.n_kept, n_partial);
    pl_store_close(st);
    /* space again: the ingest continues exactly once */
    pl_ingest_stats_t s;
    T_ASSERT_OK(ingest(dir, tok, files, 1, &o, &s));
    T_ASSERT_EQ(s.files_resumed, 1);
    char h1[65], h2[65];
    uint64_t n1, n2;
    digest_of(clean, h1, &n1);
    digest_of(dir, h2, &n2);
    T_ASSERT_U64_EQ(n1, n2);
    T_ASSERT_STR_EQ(h1, h2);
    check_unique(dir);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
}

/* ---- compressed shards and max_side ---- */

/* Rewrites tar `src` to `dst` through libarchive with `filter` ("gzip" or "zstd"). */
static void recompress(const char *src, const char *dst, const char *filter)
{
    struct archive *in = archive_read_new(), *out = archive_write_new();
    archive_read_support_format_tar(in);
    T_ASSERT(archive_read_open_filename(in, src, 1 << 16) == ARCHIVE_OK);
    archive_write_set_format_ustar(out);
    T_ASSERT(archive_write_add_filter_by_name(out, filter) == ARCHIVE_OK);
    T_ASSERT(archive_write_open_filename(out, dst) == ARCHIVE_OK);
    struct archive_entry *e;
    static char buf[1 << 16];
    while (archive_read_next_header(in, &e) == ARCHIVE_OK) {
        T_ASSERT(archive_write_header(out, e) == ARCHIVE_OK);
        la_ssize_t n;
        while ((n = archive_read_data(in, buf, sizeof(buf))) > 0) {
            T_ASSERT(archive_write_data(out, buf, (size_t)n) == n);
        }
    }
    T_ASSERT(archive_write_close(out) == ARCHIVE_OK);
    archive_write_free(out);
    archive_read_free(in);
}

T_CASE(ingest_gz_zst_same_digest)
{
    pl_tok_t *tok = load_tok();
    char edge[1024], gz[600], zst[600];
    snprintf(edge, sizeof(edge), "%s", t_shared("bad/edge.tar"));
    snprintf(gz, sizeof(gz), "%s/edge.tar.gz", t_tmpdir());
    snprintf(zst, sizeof(zst), "%s/edge.tar.zst", t_tmpdir());
    recompress(edge, gz, "gzip");
    recompress(edge, zst, "zstd");
    const char *srcs[3] = {edge, gz, zst};
    char hex[3][65];
    for (int i = 0; i < 3; i++) {
        char dir[600];
        snprintf(dir, sizeof(dir), "%s/s%d", t_tmpdir(), i);
        mkstore(dir, tok, NULL);
        pl_ingest_stats_t s;
        T_ASSERT_OK(ingest(dir, tok, &srcs[i], 1, NULL, &s));
        T_ASSERT_EQ(s.kept, 12);
        uint64_t n;
        digest_of(dir, hex[i], &n);
        T_ASSERT_EQ(n, 12);
    }
    T_ASSERT_STR_EQ(hex[1], hex[0]);
    T_ASSERT_STR_EQ(hex[2], hex[0]);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
}

typedef struct {
    uint32_t max_side;
    int n, reenc, bad;
    pl_img_ctx_t *ctx;
} side_t;

static int side_cb(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    side_t *c = ud;
    pl_record_t r;
    T_ASSERT_OK(pl_record_decode(v, len, &r));
    c->n++;
    if (r.width > c->max_side || r.height > c->max_side) {
        c->bad++;
    }
    if (r.flags & PL_REC_REENCODED) {
        c->reenc++;
        pl_img_info_t info;
        const uint8_t *rgb;
        pl_img_err_t err;
        T_ASSERT_OK(pl_img_decode_rgb(c->ctx, r.image, r.image_len, NULL, &info, &rgb, &err));
        T_ASSERT_EQ(info.format, PL_IMG_JPEG);
        T_ASSERT_EQ(r.format, PL_IMG_JPEG);
        T_ASSERT_EQ(info.width, r.width);
        T_ASSERT_EQ(info.height, r.height);
        T_ASSERT(r.width == c->max_side || r.height == c->max_side);
    }
    (void)seq;
    return 0;
}

T_CASE(ingest_max_side_reencodes)
{
    pl_tok_t *tok = load_tok();
    char edge[1024], dir[600];
    snprintf(edge, sizeof(edge), "%s", t_shared("bad/edge.tar"));
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    pol.max_side = 256;
    mkstore(dir, tok, &pol);
    const char *files[1] = {edge};
    pl_ingest_stats_t s;
    T_ASSERT_OK(ingest(dir, tok, files, 1, NULL, &s));
    T_ASSERT_EQ(s.kept, 12);
    side_t c;
    memset(&c, 0, sizeof(c));
    c.max_side = 256;
    T_ASSERT_OK(pl_img_ctx_new(&c.ctx));
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    T_ASSERT_OK(pl_store_foreach(st, side_cb, &c));
    pl_store_close(st);
    pl_img_ctx_free(c.ctx);
    T_ASSERT_EQ(c.n, 12);
    T_ASSERT_EQ(c.bad, 0);
    /* the 640x480 progressive, the EXIF one, the 4000x16 and the 4:4:4 one are larger than 256 */
    T_ASSERT_EQ(c.reenc, 4);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
}

/* The same acceptance with three worker threads: results must not depend on the thread count. */
T_CASE(ingest_bad_tar_threads)
{
    g_threads = 3;
    bad_tar_run(0, 0);
}

T_CASE(ingest_kill9_resume_threads)
{
    g_threads = 3;
    t_case_ingest_kill9_resume_exactly_once();
}

T_CASE(ingest_full_disk_threads)
{
    g_threads = 3;
    t_case_ingest_full_disk_then_continue();
}

T_CASE(ingest_edge_threads)
{
    g_threads = 4;
    t_case_ingest_edge_all_kept();
}

T_MAIN()
