/* The systemd units in etc/ pass `systemd-analyze verify` with no warning (skipped when
 * systemd-analyze is missing), and sc-ctl's command line behaves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "t.h"

static int run_capture(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    T_ASSERT(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

T_CASE(datad_systemd_analyze_verify)
{
    if (system("command -v systemd-analyze >/dev/null 2>&1") != 0) {
        T_SKIP("systemd-analyze is not installed");
    }
    /* Verify a copy whose ExecStart points at the binary we built (verify checks it exists). */
    const char *root = getenv("SC_BUILD_ROOT");
    size_t len = 0;
    char *unit = t_read_file(t_source("etc/systemd/sc-datad.service"), &len);
    char path[2048];
    snprintf(path, sizeof path, "%s/sc-datad.service", t_tmpdir());
    FILE *f = fopen(path, "w");
    T_ASSERT(f != NULL);
    const char *key = "/usr/sbin/sc-datad";
    char *at = strstr(unit, key);
    T_ASSERT(at != NULL);
    fwrite(unit, 1, (size_t)(at - unit), f);
    fprintf(f, "%s/daemon/sc-datad", root != NULL ? root : ".");
    fputs(at + strlen(key), f);
    T_ASSERT(fclose(f) == 0);
    core_free(unit);
    char cmd[4200], out[16384];
    snprintf(cmd, sizeof cmd, "systemd-analyze verify '%s' 2>&1", path);
    int rc = run_capture(cmd, out, sizeof out);
    if (rc != 0 || strstr(out, "sc-datad.service") != NULL) {
        T_FAIL("systemd-analyze verify (rc %d):\n%s", rc, out);
    }
    /* Hardening: the offline security score stays in the "OK"/"SAFE" range (<= 2.0). */
    snprintf(cmd, sizeof cmd, "systemd-analyze security --offline=true '%s' 2>&1", path);
    rc = run_capture(cmd, out, sizeof out);
    char *lvl = strstr(out, "Overall exposure level for sc-datad.service: ");
    if (rc == 0 && lvl != NULL) {
        double score = atof(lvl + strlen("Overall exposure level for sc-datad.service: "));
        if (score > 2.0) {
            T_FAIL("exposure %.1f > 2.0:\n%s", score, out);
        }
    }
}

T_CASE(sc_ctl_usage)
{
    const char *root = getenv("SC_BUILD_ROOT");
    char cmd[4200], out[8192];
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --help", root);
    T_ASSERT_EQ(run_capture(cmd, out, sizeof out), 0);
    T_ASSERT(strstr(out, "status") != NULL && strstr(out, "ingest PATH") != NULL);
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl frobnicate 2>&1", root);
    T_ASSERT_EQ(run_capture(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s/none.sock status 2>&1", root,
             t_tmpdir());
    T_ASSERT_EQ(run_capture(cmd, out, sizeof out), 3);
    T_ASSERT(strstr(out, "No such file") != NULL);
}

T_MAIN()
