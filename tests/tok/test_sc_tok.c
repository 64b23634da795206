/* Integration tests of the sc-tok tool (tools/sc_tok.c): the golden file through
 * `encode --row --tsv` byte for byte, the other commands' outputs, exit codes, and training a
 * vocabulary that encodes afterwards. SC_TOK_EXE is the built binary (tests/tok/meson.build). */
#include <stdarg.h>
#include <sys/wait.h>

#include "tok_util.h"

#ifndef SC_TOK_EXE
#error "SC_TOK_EXE must name the sc-tok binary"
#endif

/* Runs a shell command; returns its exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    T_ASSERT(n > 0 && (size_t)n < sizeof cmd);
    int st = system(cmd);
    T_ASSERT(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

static char *tmp_path(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", t_tmpdir(), name);
    return b;
}

static char *slurp(const char *path, size_t *len)
{
    return t_read_file(path, len);
}

static void assert_file_eq(const char *path, const char *want)
{
    size_t len;
    char *got = slurp(path, &len);
    if (len != strlen(want) || memcmp(got, want, len) != 0) {
        T_FAIL("%s holds \"%s\", want \"%s\"", path, got, want);
    }
    core_free(got);
}

T_CASE(golden_tsv_round_trip)
{
    const char *vocab = t_shared(TOK_CLIP_PATH);
    char v[1024];
    snprintf(v, sizeof v, "%s", vocab);
    const char *golden = t_shared(TOK_GOLDEN_PATH);
    const char *out = tmp_path("out.tsv");
    T_ASSERT_EQ(run("'%s' --vocab '%s' encode --row --tsv < '%s' > '%s'", SC_TOK_EXE, v, golden,
                    out),
                0);
    size_t la, lb;
    char *a = slurp(out, &la), *b = slurp(golden, &lb);
    if (la != lb || memcmp(a, b, la) != 0) {
        size_t i = 0;
        while (i < la && i < lb && a[i] == b[i]) {
            i++;
        }
        size_t line = 1;
        for (size_t k = 0; k < i; k++) {
            line += a[k] == '\n';
        }
        T_FAIL("sc-tok output differs from golden.tsv at line %zu (sizes %zu / %zu)", line, la,
               lb);
    }
    core_free(a);
    core_free(b);
}

T_CASE(commands_and_exit_codes)
{
    char v[1024];
    snprintf(v, sizeof v, "%s", t_shared(TOK_CLIP_PATH));
    const char *out = tmp_path("o.txt"), *err = tmp_path("e.txt");
    /* usage errors: 2 */
    T_ASSERT_EQ(run("'%s' > /dev/null 2>&1", SC_TOK_EXE), 2);
    T_ASSERT_EQ(run("'%s' frobnicate > /dev/null 2>&1", SC_TOK_EXE), 2);
    T_ASSERT_EQ(run("'%s' --bogus info > /dev/null 2>&1", SC_TOK_EXE), 2);
    T_ASSERT_EQ(run("'%s' --vocab '%s' encode --row --label x > /dev/null 2>&1", SC_TOK_EXE, v), 2);
    T_ASSERT_EQ(run("'%s' --vocab '%s' encode --tsv x > /dev/null 2>&1", SC_TOK_EXE, v), 2);
    T_ASSERT_EQ(run("'%s' train --vocab-size 10 x > /dev/null 2>&1", SC_TOK_EXE), 2);
    T_ASSERT_EQ(run("'%s' --vocab '%s' decode 12 x7 > /dev/null 2>&1", SC_TOK_EXE, v), 2);
    /* no vocabulary anywhere: 2 with a hint to pass --vocab */
    T_ASSERT_EQ(run("env -u SC_VOCAB '%s' info > /dev/null 2> '%s'", SC_TOK_EXE, err), 2);
    size_t len;
    char *e = slurp(err, &len);
    T_ASSERT(strstr(e, "--vocab") != NULL);
    core_free(e);
    /* help on the tool and every command: 0 */
    T_ASSERT_EQ(run("'%s' --help > '%s'", SC_TOK_EXE, out), 0);
    e = slurp(out, &len);
    T_ASSERT(strstr(e, "Exit status") != NULL);
    core_free(e);
    static const char *const cmds[] = {"encode", "decode", "info", "train"};
    for (size_t i = 0; i < 4; i++) {
        T_ASSERT_EQ(run("'%s' %s --help > '%s'", SC_TOK_EXE, cmds[i], out), 0);
        e = slurp(out, &len);
        T_ASSERT(strncmp(e, "usage: sc-tok", 13) == 0);
        core_free(e);
    }
    /* runtime errors: 1 */
    T_ASSERT_EQ(run("'%s' --vocab /nonexistent.gz info > /dev/null 2>&1", SC_TOK_EXE), 1);
    T_ASSERT_EQ(run("printf 'ok\\n\\377\\n' | '%s' --vocab '%s' encode > '%s' 2>/dev/null",
                    SC_TOK_EXE, v, out),
                1);
    assert_file_eq(out, "2481\n\n"); /* "ok", then an empty line for the bad one */
    T_ASSERT_EQ(run("'%s' --vocab '%s' decode 49408 > /dev/null 2>&1", SC_TOK_EXE, v), 1);
    /* outputs */
    T_ASSERT_EQ(run("'%s' --vocab '%s' encode 'a photo of a cat' 'a dog' > '%s'", SC_TOK_EXE, v,
                    out),
                0);
    assert_file_eq(out, "320 1125 539 320 2368\n320 1929\n");
    T_ASSERT_EQ(run("printf 'a dog\\n' | SC_VOCAB='%s' '%s' encode --label > '%s'", v,
                    SC_TOK_EXE, out),
                0);
    assert_file_eq(out, "0 320 1929 49406 49407\n");
    T_ASSERT_EQ(run("'%s' encode --vocab '%s' --json --row 'a dog' > '%s'", SC_TOK_EXE, v, out),
                0);
    e = slurp(out, &len);
    T_ASSERT(strncmp(e, "{\"text\":\"a dog\",\"row\":[49406,320,1929,49407,0,", 45) == 0);
    T_ASSERT(strstr(e, "\"truncated\":false}") != NULL);
    core_free(e);
    T_ASSERT_EQ(run("printf '320 1125 539\\n49406,320\\n' | '%s' --vocab '%s' decode > '%s'",
                    SC_TOK_EXE, v, out),
                0);
    assert_file_eq(out, "a photo of\n<start_of_text>a\n");
    T_ASSERT_EQ(run("'%s' --vocab '%s' info > '%s'", SC_TOK_EXE, v, out), 0);
    e = slurp(out, &len);
    T_ASSERT(strstr(e, "vocab_size: 49408\n") != NULL);
    T_ASSERT(strstr(e, "hash:       d308b7377a8ceaa9707a21614fe8c831b9196e197b7aeb69833359362907af02"
                       "\n") != NULL);
    core_free(e);
    T_ASSERT_EQ(run("'%s' --vocab '%s' info --json > '%s'", SC_TOK_EXE, v, out), 0);
    e = slurp(out, &len);
    T_ASSERT(strstr(e, "\"sot\": 49406") != NULL);
    core_free(e);
}

T_CASE(train_then_encode)
{
    /* A small caption file, with one invalid UTF-8 line that is skipped. */
    const char *caps = tmp_path("caps.txt");
    FILE *f = fopen(caps, "wb");
    T_ASSERT(f != NULL);
    static const char *const base[] = {
        "a photo of a cat", "a photo of a dog", "the cat sat on the mat", "a dog and a cat",
        "photos of cats and dogs", "the photographer's cat", "&amp; caf\xc3\xa9 na\xc3\xafve",
    };
    for (int r = 0; r < 20; r++) {
        for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
            fprintf(f, "%s\n", base[i]);
        }
    }
    fprintf(f, "bad \xff line\n");
    fclose(f);
    const char *v1 = tmp_path("v1.txt"), *v2 = tmp_path("v2.txt.gz"), *err = tmp_path("e.txt");
    T_ASSERT_EQ(run("'%s' train --vocab-size 560 -o '%s' '%s' 2> '%s'", SC_TOK_EXE, v1, caps, err),
                0);
    size_t len;
    char *e = slurp(err, &len);
    T_ASSERT(strstr(e, "140 texts (1 skipped: invalid UTF-8)") != NULL);
    core_free(e);
    /* stdin and gzip output give the same vocabulary (deterministic) */
    T_ASSERT_EQ(run("'%s' train --vocab-size 560 -o '%s' - < '%s' 2>/dev/null", SC_TOK_EXE, v2,
                    caps),
                0);
    pl_tok_t *a, *b;
    T_ASSERT_OK(pl_tok_load(v1, &a));
    T_ASSERT_OK(pl_tok_load(v2, &b));
    T_ASSERT_STR_EQ(pl_tok_hash(a), pl_tok_hash(b));
    T_ASSERT(pl_tok_vocab_size(a) <= 560);
    T_ASSERT(pl_tok_n_merges(a) > 10);
    char *txt = slurp(v1, &len);
    T_ASSERT(strncmp(txt, PL_TOK_SCTOK_HEADER, strlen(PL_TOK_SCTOK_HEADER)) == 0);
    core_free(txt);
    /* The learned merges make frequent words single tokens, and decode inverts encode. */
    uint32_t ids[32];
    size_t n;
    T_ASSERT_OK(pl_tok_encode(a, "a photo of a cat", 16, ids, 32, &n));
    T_ASSERT(n == 5);
    char out[64];
    T_ASSERT_OK(pl_tok_decode(a, ids, n, out, sizeof out, &len));
    T_ASSERT_STR_EQ(out, "a photo of a cat");
    T_ASSERT_EQ(ids[0], ids[3]);
    /* and the tool encodes with it exactly as the library does */
    uint32_t row[PL_TOK_CONTEXT];
    size_t used;
    T_ASSERT_OK(pl_tok_row(a, "the cat", 7, row, NULL, &used));
    char want[256];
    size_t w = 0;
    for (size_t i = 0; i < PL_TOK_CONTEXT; i++) {
        w += (size_t)snprintf(want + w, sizeof want - w, i ? " %u" : "%u", row[i]);
    }
    snprintf(want + w, sizeof want - w, "\n");
    pl_tok_free(a);
    pl_tok_free(b);
    const char *o = tmp_path("o.txt");
    T_ASSERT_EQ(run("'%s' --vocab '%s' encode --row 'the cat' > '%s'", SC_TOK_EXE, v1, o), 0);
    assert_file_eq(o, want);
}

T_MAIN()
