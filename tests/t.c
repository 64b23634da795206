/* Test runner: case registry, assertions, shared-data lookup, temporary directories. */
#include "t.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"

#define T_MAX_CASES 512

static struct {
    const char *name;
    t_case_fn fn;
} t_cases[T_MAX_CASES];
static int t_ncases;
static const char *t_current = "?";
static char t_tmp[4096];

void t_register(const char *name, t_case_fn fn)
{
    if (t_ncases >= T_MAX_CASES) {
        fprintf(stderr, "t: too many cases\n");
        abort();
    }
    t_cases[t_ncases].name = name;
    t_cases[t_ncases].fn = fn;
    t_ncases++;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void t_cleanup(void)
{
    if (t_tmp[0] != '\0' && getenv("T_KEEP_TMP") == NULL) {
        nftw(t_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        t_tmp[0] = '\0';
    }
}

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: %s:%d: ", t_current, file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    t_cleanup();
    exit(1);
}

void t_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "SKIP %s: ", t_current);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    t_cleanup();
    exit(77);
}

const char *t_shared(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("SC_SHARED_DATA");
    if (root == NULL) {
        root = "../shared/data";
    }
    snprintf(buf, sizeof buf, "%s/%s", root, rel);
    if (access(buf, R_OK) != 0) {
        t_skip("shared test data %s is absent (expected ../shared/data beside the project)", buf);
    }
    return buf;
}

const char *t_source(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("SC_SOURCE_ROOT");
    snprintf(buf, sizeof buf, "%s/%s", root != NULL ? root : ".", rel);
    return buf;
}

const char *t_tmpdir(void)
{
    if (t_tmp[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(t_tmp, sizeof t_tmp, "%s/sc-test-XXXXXX", base != NULL ? base : "/tmp");
        if (mkdtemp(t_tmp) == NULL) {
            t_tmp[0] = '\0';
            T_FAIL("mkdtemp: %s", strerror(errno));
        }
    }
    return t_tmp;
}

char *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        T_FAIL("cannot open %s: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = core_malloc(cap);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) {
            if (ferror(f)) {
                T_FAIL("read error on %s", path);
            }
            break;
        }
        cap *= 2;
        buf = core_realloc_or_die(buf, cap);
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

static int run_case(int i)
{
    t_current = t_cases[i].name;
    int64_t live_before = core_alloc_live();
    t_cases[i].fn();
    int64_t leaked = core_alloc_live() - live_before;
    if (leaked != 0) {
        fprintf(stderr, "FAIL %s: %lld allocation(s) not freed\n", t_current, (long long)leaked);
        return 1;
    }
    fprintf(stderr, "ok %s\n", t_current);
    return 0;
}

int t_main(int argc, char **argv)
{
    core_log_init(argv[0]);
    atexit(t_cleanup);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < t_ncases; i++) {
            printf("%s\n", t_cases[i].name);
        }
        return 0;
    }
    int failed = 0, ran = 0;
    for (int i = 0; i < t_ncases; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc && !wanted; a++) {
            wanted = strcmp(argv[a], t_cases[i].name) == 0;
        }
        if (wanted) {
            failed += run_case(i);
            ran++;
        }
    }
    if (ran == 0) {
        fprintf(stderr, "no such case: %s\n", argc > 1 ? argv[1] : "(none registered)");
        return 1;
    }
    return failed ? 1 : 0;
}
