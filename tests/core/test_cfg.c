/* Table-driven config: defaults, files, overrides, and errors that name file and line. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/cfg.h"
#include "t.h"

typedef struct {
    int64_t workers;
    uint64_t map_size;
    double lr;
    int verify;
    int flip;
    char *path;
} demo_cfg_t;

static const char *const verify_modes[] = {"header", "full", NULL};

static const core_cfg_key_t demo_keys[] = {
    {"", "workers", CORE_CFG_INT, offsetof(demo_cfg_t, workers), 1, 64, "2", NULL, "threads"},
    {"store", "map_size", CORE_CFG_SIZE, offsetof(demo_cfg_t, map_size), 1 << 20, 1e15, "64M",
     NULL, "LMDB map size"},
    {"store", "verify", CORE_CFG_ENUM, offsetof(demo_cfg_t, verify), 0, 0, "full", verify_modes,
     "image verification"},
    {"train", "lr", CORE_CFG_DOUBLE, offsetof(demo_cfg_t, lr), 0, 1, "5e-4", NULL, "base lr"},
    {"train", "flip", CORE_CFG_BOOL, offsetof(demo_cfg_t, flip), 0, 0, "false", NULL, "flip"},
    {"train", "path", CORE_CFG_STRING, offsetof(demo_cfg_t, path), 0, 4096, "/var/lib/sc", NULL,
     "state dir"},
};
static const core_cfg_table_t demo = {demo_keys, sizeof demo_keys / sizeof demo_keys[0]};

T_CASE(cfg_defaults_and_file)
{
    demo_cfg_t c;
    char err[CORE_CFG_ERRLEN];
    T_ASSERT_OK(core_cfg_defaults(&demo, &c, err, sizeof err));
    T_ASSERT_EQ(c.workers, 2);
    T_ASSERT_U64_EQ(c.map_size, 64u << 20);
    T_ASSERT_EQ(c.verify, 1);
    T_ASSERT_NEAR(c.lr, 5e-4, 0);
    T_ASSERT_STR_EQ(c.path, "/var/lib/sc");
    const char *text = "# comment\nworkers = 8\n\n[store]\nmap_size=1G\nverify = header\n"
                       "[train]\r\nlr = 0.001 \nflip = yes\npath = \"/tmp/a b\"\n; end\n";
    T_ASSERT_OK(core_cfg_load_buffer(&demo, &c, text, strlen(text), "demo.conf", err, sizeof err));
    T_ASSERT_EQ(c.workers, 8);
    T_ASSERT_U64_EQ(c.map_size, 1ull << 30);
    T_ASSERT_EQ(c.verify, 0);
    T_ASSERT_NEAR(c.lr, 0.001, 0);
    T_ASSERT_EQ(c.flip, 1);
    T_ASSERT_STR_EQ(c.path, "/tmp/a b");
    T_ASSERT_OK(core_cfg_apply_override(&demo, &c, "train.lr=0.5", err, sizeof err));
    T_ASSERT_NEAR(c.lr, 0.5, 0);
    core_cfg_free(&demo, &c);
}

static void expect_error(const char *text, const char *want)
{
    demo_cfg_t c;
    char err[CORE_CFG_ERRLEN] = "";
    T_ASSERT_OK(core_cfg_defaults(&demo, &c, err, sizeof err));
    T_ASSERT_ERR(core_cfg_load_buffer(&demo, &c, text, strlen(text), "x.conf", err, sizeof err),
                 CORE_ECONFIG);
    if (strstr(err, want) == NULL) {
        T_FAIL("error '%s' does not contain '%s'", err, want);
    }
    core_cfg_free(&demo, &c);
}

T_CASE(cfg_errors_name_file_and_line)
{
    expect_error("workers = 2\nbogus = 1\n", "x.conf:2: unknown key 'bogus'");
    expect_error("\n\nworkers = 65\n", "x.conf:3: workers = 65 is out of range");
    expect_error("workers = 1x\n", "x.conf:1: workers: '1x' is not an integer");
    expect_error("[store]\nverify = maybe\n", "x.conf:2: store.verify: 'maybe' is not one of: header, full");
    expect_error("[nosuch]\n", "x.conf:1: unknown section [nosuch]");
    expect_error("[store\n", "x.conf:1: malformed section header");
    expect_error("just words\n", "x.conf:1: expected 'key = value'");
    expect_error("[train]\nlr = nan\n", "x.conf:2: train.lr: 'nan' is not a finite number");
    expect_error("[train]\nlr = 2\n", "x.conf:2: train.lr = 2 is out of range");
    expect_error("[store]\nmap_size = -5\n", "is not a size");
    expect_error("[store]\nmap_size = 1k\n", "out of range");
    expect_error("[train]\nflip = perhaps\n", "is not a boolean");
    expect_error("[store]\nlr = 1\n", "unknown key 'lr' in section [store]");
}

T_CASE(cfg_override_errors)
{
    demo_cfg_t c;
    char err[CORE_CFG_ERRLEN];
    T_ASSERT_OK(core_cfg_defaults(&demo, &c, err, sizeof err));
    T_ASSERT_ERR(core_cfg_apply_override(&demo, &c, "train.nope=1", err, sizeof err),
                 CORE_ECONFIG);
    T_ASSERT(strstr(err, "unknown key 'train.nope'") != NULL);
    T_ASSERT_ERR(core_cfg_apply_override(&demo, &c, "novalue", err, sizeof err), CORE_ECONFIG);
    core_cfg_free(&demo, &c);
}

T_CASE(cfg_missing_file)
{
    demo_cfg_t c;
    char err[CORE_CFG_ERRLEN];
    T_ASSERT_OK(core_cfg_defaults(&demo, &c, err, sizeof err));
    T_ASSERT_ERR(core_cfg_load_file(&demo, &c, "/nonexistent/x.conf", err, sizeof err),
                 CORE_ERR(ENOENT));
    T_ASSERT(strstr(err, "/nonexistent/x.conf: cannot open") != NULL);
    core_cfg_free(&demo, &c);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    T_ASSERT(f != NULL);
    T_ASSERT(fputs(text, f) >= 0);
    T_ASSERT(fclose(f) == 0);
}

/* core_cfg_cli on a command line given as one string of space-separated words. */
static int cli(demo_cfg_t *c, const char *line, const char *default_path, core_cfg_action_t *act,
               char *err)
{
    static const core_cfg_flag_t flags[] = {{"--dir", "train.path"}};
    char buf[1024];
    snprintf(buf, sizeof buf, "prog %s", line);
    char *argv[32];
    int argc = 0;
    for (char *tok = strtok(buf, " "); tok != NULL && argc < 31; tok = strtok(NULL, " ")) {
        argv[argc++] = tok;
    }
    argv[argc] = NULL;
    T_ASSERT_OK(core_cfg_defaults(&demo, c, err, CORE_CFG_ERRLEN));
    return core_cfg_cli(&demo, c, argc, argv, default_path, flags, 1, act, err, CORE_CFG_ERRLEN);
}

T_CASE(cfg_command_line)
{
    char file[600], dflt[600], bad[600];
    snprintf(file, sizeof file, "%s/a.conf", t_tmpdir());
    snprintf(dflt, sizeof dflt, "%s/default.conf", t_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.conf", t_tmpdir());
    write_text(file, "workers = 8\n[train]\nlr = 0.25\n");
    write_text(dflt, "workers = 3\n");
    write_text(bad, "nonsense = 1\n");
    demo_cfg_t c;
    char err[CORE_CFG_ERRLEN];
    core_cfg_action_t act;
    char line[2048];

    /* the file first, then --set and flags in command-line order, whatever their position */
    snprintf(line, sizeof line, "--set train.lr=0.5 --config %s --dir /x --set train.lr=0.75",
             file);
    T_ASSERT_OK(cli(&c, line, dflt, &act, err));
    T_ASSERT_EQ(act, CORE_CFG_RUN);
    T_ASSERT_EQ(c.workers, 8);
    T_ASSERT_NEAR(c.lr, 0.75, 0);
    T_ASSERT_STR_EQ(c.path, "/x");
    core_cfg_free(&demo, &c);

    /* no --config: the default file when it exists, else the table's defaults */
    T_ASSERT_OK(cli(&c, "--check-config", dflt, &act, err));
    T_ASSERT_EQ(act, CORE_CFG_CHECK);
    T_ASSERT_EQ(c.workers, 3);
    core_cfg_free(&demo, &c);
    T_ASSERT_OK(cli(&c, "--print-config", "/nonexistent/x.conf", &act, err));
    T_ASSERT_EQ(act, CORE_CFG_PRINT);
    T_ASSERT_EQ(c.workers, 2);
    core_cfg_free(&demo, &c);

    /* usage errors name the argument; --help loads nothing (a bad file does not matter) */
    T_ASSERT_ERR(cli(&c, "--bogus", NULL, &act, err), CORE_ERR(EINVAL));
    T_ASSERT(strstr(err, "'--bogus'") != NULL);
    core_cfg_free(&demo, &c);
    T_ASSERT_ERR(cli(&c, "--set", NULL, &act, err), CORE_ERR(EINVAL));
    core_cfg_free(&demo, &c);
    snprintf(line, sizeof line, "--config %s --help", bad);
    T_ASSERT_OK(cli(&c, line, NULL, &act, err));
    T_ASSERT_EQ(act, CORE_CFG_HELP);
    core_cfg_free(&demo, &c);

    /* configuration errors say where */
    snprintf(line, sizeof line, "--config %s", bad);
    T_ASSERT_ERR(cli(&c, line, NULL, &act, err), CORE_ECONFIG);
    T_ASSERT(strstr(err, "bad.conf:1") != NULL);
    core_cfg_free(&demo, &c);
    T_ASSERT_ERR(cli(&c, "--dir", NULL, &act, err), CORE_ERR(EINVAL));
    core_cfg_free(&demo, &c);
    T_ASSERT_ERR(cli(&c, "--set train.lr=7", NULL, &act, err), CORE_ECONFIG);
    core_cfg_free(&demo, &c);
}

T_CASE(cfg_print_roundtrip)
{
    demo_cfg_t c, d;
    char err[CORE_CFG_ERRLEN];
    T_ASSERT_OK(core_cfg_defaults(&demo, &c, err, sizeof err));
    T_ASSERT_OK(core_cfg_apply_override(&demo, &c, "workers=5", err, sizeof err));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    core_cfg_print(&demo, &c, f);
    fclose(f);
    T_ASSERT_OK(core_cfg_defaults(&demo, &d, err, sizeof err));
    T_ASSERT_OK(core_cfg_load_buffer(&demo, &d, buf, len, "printed", err, sizeof err));
    T_ASSERT_EQ(d.workers, 5);
    T_ASSERT_STR_EQ(d.path, c.path);
    free(buf);
    core_cfg_free(&demo, &c);
    core_cfg_free(&demo, &d);
}

T_MAIN()
