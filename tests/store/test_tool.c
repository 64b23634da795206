/* sc-shard end to end: create/ingest/ls/stat/get/cat/top-tokens/digest/export round trip, --json,
 * --help, exit codes (vocabulary mismatch, not found, usage), and verify naming a corrupted
 * record. Reads ../shared/data (skips if absent). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "t.h"

static char g_bin[4096];

static const char *bin(void)
{
    const char *b = getenv("SC_BUILD_ROOT");
    if (b == NULL) {
        T_SKIP("SC_BUILD_ROOT not set");
    }
    snprintf(g_bin, sizeof(g_bin), "%s/tools/sc-shard", b);
    if (access(g_bin, X_OK) != 0) {
        T_SKIP("%s not built", g_bin);
    }
    return g_bin;
}

/* Runs argv, captures stdout into a core_malloc'd string (*out, may be NULL). Returns the exit
 * code. */
static int run(const char *const *argv, char **out, size_t *out_len)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/stdout.XXXXXX", t_tmpdir());
    int fd = mkstemp(path);
    T_ASSERT(fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(fd, 1);
        int dn = open("/dev/null", O_WRONLY);
        dup2(dn, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    int status = 0;
    T_ASSERT(waitpid(pid, &status, 0) == pid);
    if (out) {
        *out = t_read_file(path, out_len);
    }
    unlink(path);
    T_ASSERT(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static json_t *run_json(const char *const *argv, int want_rc)
{
    char *out = NULL;
    size_t len = 0;
    int rc = run(argv, &out, &len);
    T_ASSERT_EQ(rc, want_rc);
    json_error_t err;
    json_t *j = json_loadb(out, len, 0, &err);
    if (j == NULL) {
        T_FAIL("not JSON: %s (%s)", out, err.text);
    }
    core_free(out);
    return j;
}

static void setup(char *store, size_t n, char *vocab, size_t vn)
{
    snprintf(vocab, vn, "%s", t_shared("tokenizer/bpe_simple_vocab_16e6.txt.gz"));
    snprintf(store, n, "%s/store", t_tmpdir());
    const char *c[] = {bin(), "create", store, "--vocab", vocab, NULL};
    T_ASSERT_EQ(run(c, NULL, NULL), 0);
}

T_CASE(tool_ingest_inspect_export_round_trip)
{
    char store[512], vocab[4096], bad[4096], edge[4096], emo[4096];
    setup(store, sizeof(store), vocab, sizeof(vocab));
    snprintf(bad, sizeof(bad), "%s", t_shared("bad/bad.tar"));
    snprintf(edge, sizeof(edge), "%s", t_shared("bad/edge.tar"));
    snprintf(emo, sizeof(emo), "%s", t_shared("corpus/emoji-twitter-webp/twitter-webp-000000.tar"));
    const char *sc = bin();
    const char *ing[] = {sc, "--json", "ingest", store, bad, edge, emo, "--quiet", NULL};
    json_t *j = run_json(ing, 0);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "kept")), 3 + 12 + 1000);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "rejected")), 12);
    T_ASSERT_EQ(json_integer_value(json_object_get(json_object_get(j, "rejects"), "split_key")), 2);
    json_decref(j);
    /* again: nothing added */
    j = run_json(ing, 0);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "files_skipped")), 3);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "samples")), 0);
    json_decref(j);

    const char *st[] = {sc, "stat", store, "--json", NULL};
    j = run_json(st, 0);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "records")), 1015);
    json_t *fm = json_object_get(j, "image_formats");
    T_ASSERT_EQ(json_integer_value(json_object_get(fm, "webp")), 1001);
    T_ASSERT_EQ(json_integer_value(json_object_get(fm, "png")), 4); /* 03 + 3 edge PNGs */
    T_ASSERT_EQ(json_integer_value(json_object_get(json_object_get(j, "rejects"), "caption_nul")),
                1);
    json_decref(j);

    const char *ls[] = {sc, "ls", store, "--json", NULL};
    j = run_json(ls, 0);
    T_ASSERT_EQ(json_array_size(json_object_get(j, "files")), 3);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "records")), 1015);
    json_decref(j);

    const char *get[] = {sc, "get", store, "edge_12_utf8_caption", "--json", NULL};
    j = run_json(get, 0);
    T_ASSERT_STR_EQ(json_string_value(json_object_get(j, "caption")),
                    "visage souriant 😀 – café, naïve, 笑脸, Ωμέγα");
    T_ASSERT_STR_EQ(json_string_value(json_object_get(json_object_get(j, "image"), "format")),
                    "jpeg");
    json_t *toks = json_object_get(j, "tokens");
    T_ASSERT_EQ(json_integer_value(json_array_get(toks, 0)), 49406);
    json_decref(j);
    char *out = NULL;
    size_t len = 0;
    const char *geth[] = {sc, "get", store, "bad_13b_between", NULL};
    T_ASSERT_EQ(run(geth, &out, &len), 0);
    T_ASSERT(strstr(out, "decoded:  grinning face , smile , happy , cheerful and cheery") != NULL);
    core_free(out);

    /* KEY forms: #N and plain N are sequence numbers, zero-padded digits and key:NAME are keys */
    const char *g1[] = {sc, "get", store, "#0", "--json", NULL};
    j = run_json(g1, 0);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "seq")), 0);
    json_decref(j);
    const char *g2[] = {sc, "get", store, "key:edge_05_1x1_jpeg", "--json", NULL};
    j = run_json(g2, 0);
    T_ASSERT_EQ(json_integer_value(json_object_get(json_object_get(j, "image"), "width")), 1);
    json_decref(j);
    const char *g3[] = {sc, "get", store, "0999", NULL};
    T_ASSERT_EQ(run(g3, NULL, NULL), 6); /* a key, and no record has it */

    /* cat: the exact bytes of the member (03 is the PNG stored as .jpg) */
    const char *cat[] = {sc, "cat", store, "bad_03_png_named_jpg", NULL};
    T_ASSERT_EQ(run(cat, &out, &len), 0);
    T_ASSERT_EQ(len, 4539);
    T_ASSERT(memcmp(out, "\x89PNG", 4) == 0);
    core_free(out);

    const char *top[] = {sc, "top-tokens", store, "-n", "5", "--json", NULL};
    j = run_json(top, 0);
    json_t *tt = json_object_get(j, "tokens");
    T_ASSERT_EQ(json_array_size(tt), 5);
    T_ASSERT_EQ(json_integer_value(json_object_get(json_array_get(tt, 0), "df")), 1015);
    json_decref(j);

    /* export -> ingest into a new store -> same digest */
    const char *dg[] = {sc, "digest", store, "--json", NULL};
    j = run_json(dg, 0);
    char d1[65];
    snprintf(d1, sizeof(d1), "%s", json_string_value(json_object_get(j, "digest")));
    json_decref(j);
    char exp[600], store2[600];
    snprintf(exp, sizeof(exp), "%s/export", t_tmpdir());
    snprintf(store2, sizeof(store2), "%s/store2", t_tmpdir());
    const char *ex[] = {sc, "export", store, exp, NULL};
    T_ASSERT_EQ(run(ex, NULL, NULL), 0);
    const char *c2[] = {sc, "create", store2, "--vocab", vocab, NULL};
    T_ASSERT_EQ(run(c2, NULL, NULL), 0);
    const char *in2[] = {sc, "ingest", store2, exp, "--quiet", NULL};
    T_ASSERT_EQ(run(in2, NULL, NULL), 0);
    const char *dg2[] = {sc, "digest", store2, "--json", NULL};
    j = run_json(dg2, 0);
    T_ASSERT_STR_EQ(json_string_value(json_object_get(j, "digest")), d1);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "records")), 1015);
    json_decref(j);

    const char *vf[] = {sc, "verify", store, "--json", NULL};
    j = run_json(vf, 0);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "bad")), 0);
    json_decref(j);
}

static void copy_to(const char *src, const char *dir, const char *name)
{
    T_ASSERT(mkdir(dir, 0755) == 0 || errno == EEXIST);
    char dst[1200];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    size_t len = 0;
    char *data = t_read_file(src, &len);
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    T_ASSERT(fd >= 0);
    T_ASSERT(write(fd, data, len) == (ssize_t)len);
    T_ASSERT(close(fd) == 0);
    core_free(data);
}

static void digest_of(const char *sc, const char *store, char out[65], long long *records)
{
    const char *dg[] = {sc, "digest", store, "--json", NULL};
    json_t *j = run_json(dg, 0);
    snprintf(out, 65, "%s", json_string_value(json_object_get(j, "digest")));
    *records = (long long)json_integer_value(json_object_get(j, "records"));
    json_decref(j);
}

T_CASE(tool_export_same_names_and_no_overwrite)
{
    /* Two archives named shard.tar from different directories: export keeps them apart
     * (shard.tar and dup-1/shard.tar) so re-ingesting the export reproduces the store. A second
     * export into the same directory refuses to overwrite anything and leaves no temporary files. */
    char store[512], vocab[4096];
    setup(store, sizeof(store), vocab, sizeof(vocab));
    const char *sc = bin();
    char a[600], b[600], exp[600], store2[600];
    snprintf(a, sizeof a, "%s/a", t_tmpdir());
    snprintf(b, sizeof b, "%s/b", t_tmpdir());
    copy_to(t_shared("corpus/digits/digits-000000.tar"), a, "shard.tar");
    copy_to(t_shared("corpus/digits/digits-000001.tar"), b, "shard.tar");
    const char *in[] = {sc, "ingest", store, a, b, "--quiet", NULL};
    T_ASSERT_EQ(run(in, NULL, NULL), 0);
    char d1[65];
    long long n1 = 0;
    digest_of(sc, store, d1, &n1);
    T_ASSERT(n1 > 0);

    snprintf(exp, sizeof exp, "%s/export", t_tmpdir());
    const char *ex[] = {sc, "export", store, exp, NULL};
    T_ASSERT_EQ(run(ex, NULL, NULL), 0);
    char p1[700], p2[700];
    snprintf(p1, sizeof p1, "%s/shard.tar", exp);
    snprintf(p2, sizeof p2, "%s/dup-1/shard.tar", exp);
    struct stat s1, s2;
    T_ASSERT(stat(p1, &s1) == 0);
    T_ASSERT(stat(p2, &s2) == 0);

    snprintf(store2, sizeof store2, "%s/store2", t_tmpdir());
    const char *c2[] = {sc, "create", store2, "--vocab", vocab, NULL};
    T_ASSERT_EQ(run(c2, NULL, NULL), 0);
    const char *in2[] = {sc, "ingest", store2, exp, "--quiet", NULL};
    T_ASSERT_EQ(run(in2, NULL, NULL), 0);
    char d2[65];
    long long n2 = 0;
    digest_of(sc, store2, d2, &n2);
    T_ASSERT_EQ(n2, n1);
    T_ASSERT_STR_EQ(d2, d1);

    /* Again into the same directory: refused, nothing touched, no .part files. */
    T_ASSERT(run(ex, NULL, NULL) != 0);
    struct stat t1, t2;
    T_ASSERT(stat(p1, &t1) == 0 && stat(p2, &t2) == 0);
    T_ASSERT(t1.st_size == s1.st_size && t1.st_mtim.tv_sec == s1.st_mtim.tv_sec &&
             t1.st_mtim.tv_nsec == s1.st_mtim.tv_nsec && t1.st_ino == s1.st_ino);
    T_ASSERT(t2.st_size == s2.st_size && t2.st_ino == s2.st_ino);
    char part[700];
    snprintf(part, sizeof part, "%s/.shard.tar.part", exp);
    T_ASSERT(access(part, F_OK) != 0);
}

T_CASE(tool_exit_codes_help_vocab)
{
    char store[512], vocab[4096];
    setup(store, sizeof(store), vocab, sizeof(vocab));
    const char *sc = bin();
    char *out = NULL;
    size_t len;
    const char *h[] = {sc, "--help", NULL};
    T_ASSERT_EQ(run(h, &out, &len), 0);
    T_ASSERT(strstr(out, "exit codes") != NULL);
    core_free(out);
    const char *h2[] = {sc, "ingest", "--help", NULL};
    T_ASSERT_EQ(run(h2, NULL, NULL), 0);
    const char *u[] = {sc, "frobnicate", NULL};
    T_ASSERT_EQ(run(u, NULL, NULL), 2);
    const char *u2[] = {sc, "ls", store, "--bogus", NULL};
    T_ASSERT_EQ(run(u2, NULL, NULL), 2);
    const char *nf[] = {sc, "get", store, "12345", NULL};
    T_ASSERT_EQ(run(nf, NULL, NULL), 6);
    /* another vocabulary: a small merges file whose hash differs */
    char v2[600];
    snprintf(v2, sizeof(v2), "%s/other_vocab.txt", t_tmpdir());
    FILE *f = fopen(v2, "w");
    T_ASSERT(f != NULL);
    fputs("#version: 0.2\ni n\nt h\n", f);
    fclose(f);
    char edge[4096];
    snprintf(edge, sizeof(edge), "%s", t_shared("bad/edge.tar"));
    const char *vm[] = {sc, "ingest", store, "--vocab", v2, edge, NULL};
    T_ASSERT_EQ(run(vm, NULL, NULL), 4);
    const char *nostore[] = {sc, "stat", "/nonexistent/store", NULL};
    T_ASSERT_EQ(run(nostore, NULL, NULL), 1);
}

T_CASE(tool_verify_names_corrupt_record)
{
    char store[512], vocab[4096], edge[4096];
    setup(store, sizeof(store), vocab, sizeof(vocab));
    snprintf(edge, sizeof(edge), "%s", t_shared("bad/edge.tar"));
    const char *sc = bin();
    const char *ing[] = {sc, "ingest", store, edge, "--quiet", NULL};
    T_ASSERT_EQ(run(ing, NULL, NULL), 0);
    /* find 32 bytes from the middle of record 7's image in the shard file and flip one */
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(store, PL_STORE_RDONLY, &st));
    pl_store_reader_t *rd = NULL;
    T_ASSERT_OK(pl_store_reader_open(st, &rd));
    const uint8_t *v;
    size_t vlen;
    pl_record_t r;
    T_ASSERT_OK(pl_store_get(rd, 7, &v, &vlen));
    T_ASSERT_OK(pl_record_decode(v, vlen, &r));
    uint8_t needle[32];
    T_ASSERT(r.image_len > 200);
    memcpy(needle, r.image + r.image_len / 2, sizeof(needle));
    char key[128];
    snprintf(key, sizeof(key), "%.*s", (int)r.member_key_len, r.member_key);
    pl_store_reader_close(rd);
    pl_store_close(st);
    char shard[700];
    snprintf(shard, sizeof(shard), "%s/shard-000000.lmdb", store);
    size_t n;
    char *data = t_read_file(shard, &n);
    uint8_t *hit = memmem(data, n, needle, sizeof(needle));
    T_ASSERT(hit != NULL);
    long off = (long)(hit - (uint8_t *)data) + 5;
    core_free(data);
    FILE *f = fopen(shard, "r+b");
    T_ASSERT(f != NULL);
    T_ASSERT(fseek(f, off, SEEK_SET) == 0);
    int c = fgetc(f);
    T_ASSERT(fseek(f, off, SEEK_SET) == 0);
    fputc(c ^ 0x40, f);
    fclose(f);
    const char *vf[] = {sc, "verify", store, "--json", NULL};
    json_t *j = NULL;
    {
        char *out = NULL;
        size_t len;
        T_ASSERT_EQ(run(vf, &out, &len), 3);
        json_error_t err;
        j = json_loadb(out, len, 0, &err);
        core_free(out);
    }
    T_ASSERT(j != NULL);
    T_ASSERT_EQ(json_integer_value(json_object_get(j, "bad")), 1);
    json_t *b0 = json_array_get(json_object_get(j, "bad_records"), 0);
    T_ASSERT_EQ(json_integer_value(json_object_get(b0, "seq")), 7);
    (void)key; /* a CRC failure cannot trust the key inside the record: the seq names it */
    json_decref(j);
}

T_CASE(tool_sigint_commits_and_resumes)
{
    char store[512], vocab[4096], dir[4096];
    setup(store, sizeof(store), vocab, sizeof(vocab));
    snprintf(dir, sizeof(dir), "%s", t_shared("corpus/emoji-google"));
    const char *sc = bin();
    const char *ing[] = {sc, "ingest", store, dir, "--quiet", "--batch", "100", NULL};
    int stopped = 0;
    for (int k = 0; k < 3; k++) {
        fflush(NULL);
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            int dn = open("/dev/null", O_WRONLY);
            dup2(dn, 1);
            dup2(dn, 2);
            execv(ing[0], (char *const *)ing);
            _exit(127);
        }
        /* wait until this run has committed something (so it is past its setup), then stop it */
        uint64_t before = 0;
        {
            pl_store_t *st = NULL;
            T_ASSERT_OK(pl_store_open(store, PL_STORE_RDONLY, &st));
            before = pl_store_count(st);
            pl_store_close(st);
        }
        for (int w = 0; w < 400; w++) {
            usleep(25000);
            pl_store_t *st = NULL;
            T_ASSERT_OK(pl_store_open(store, PL_STORE_RDONLY, &st));
            uint64_t now = pl_store_count(st);
            pl_store_close(st);
            siginfo_t si;
            memset(&si, 0, sizeof(si));
            if (now > before ||
                (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)) {
                break; /* progress made, or the run already ended (not reaped: WNOWAIT) */
            }
        }
        kill(pid, SIGINT);
        int status = 0;
        T_ASSERT(waitpid(pid, &status, 0) == pid);
        /* exit 130 after committing; 0 if it had finished; killed by the signal if it came
         * before sc-shard installed its handler (also safe: nothing was half-written) */
        T_ASSERT((WIFEXITED(status) && (WEXITSTATUS(status) == 130 || WEXITSTATUS(status) == 0)) ||
                 (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT));
        stopped += WIFEXITED(status) && WEXITSTATUS(status) == 130;
    }
    T_ASSERT_EQ(run(ing, NULL, NULL), 0);
    char store2[600];
    snprintf(store2, sizeof(store2), "%s/clean", t_tmpdir());
    const char *c2[] = {sc, "create", store2, "--vocab", vocab, NULL};
    T_ASSERT_EQ(run(c2, NULL, NULL), 0);
    const char *ing2[] = {sc, "ingest", store2, dir, "--quiet", NULL};
    T_ASSERT_EQ(run(ing2, NULL, NULL), 0);
    const char *d1[] = {sc, "digest", store, "--json", NULL};
    const char *d2[] = {sc, "digest", store2, "--json", NULL};
    json_t *a = run_json(d1, 0), *b = run_json(d2, 0);
    T_ASSERT_STR_EQ(json_string_value(json_object_get(a, "digest")),
                    json_string_value(json_object_get(b, "digest")));
    T_ASSERT_EQ(json_integer_value(json_object_get(a, "records")), 3786);
    json_decref(a);
    json_decref(b);
    fprintf(stderr, "sigint test: %d of 3 runs stopped cleanly by SIGINT\n", stopped);
    T_ASSERT(stopped >= 1);
}

T_MAIN()
