/* Logging: journal prefix under systemd, plain lines otherwise, level filtering. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "t.h"

static char captured[4096];

static void capture_stderr_run(const char *journal_stream)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/err.txt", t_tmpdir());
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    T_ASSERT(fd >= 0);
    dup2(fd, STDERR_FILENO);
    if (journal_stream != NULL) {
        struct stat st;
        fstat(fd, &st);
        char js[64];
        snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino);
        setenv("JOURNAL_STREAM", strcmp(journal_stream, "match") == 0 ? js : journal_stream, 1);
    } else {
        unsetenv("JOURNAL_STREAM");
    }
    core_log_init("sc-test");
    core_log_set_level(CORE_LOG_INFO);
    core_log_warn("disk %d%% full", 93);
    core_log_debug("hidden");
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    size_t n = 0;
    char *txt = t_read_file(path, &n);
    snprintf(captured, sizeof captured, "%s", txt);
    core_free(txt);
}

T_CASE(log_journal_prefix)
{
    capture_stderr_run("match");
    T_ASSERT_STR_EQ(captured, "<4>disk 93% full\n");
}

T_CASE(log_plain_lines)
{
    capture_stderr_run(NULL);
    T_ASSERT_STR_EQ(captured, "sc-test: warning: disk 93% full\n");
    /* A JOURNAL_STREAM that names another stream (stderr redirected) is ignored. */
    capture_stderr_run("1:2");
    T_ASSERT_STR_EQ(captured, "sc-test: warning: disk 93% full\n");
}

T_CASE(log_level_parse)
{
    core_log_level_t l;
    T_ASSERT_OK(core_log_level_parse("debug", &l));
    T_ASSERT_EQ(l, CORE_LOG_DEBUG);
    T_ASSERT_ERR(core_log_level_parse("loud", &l), CORE_ECONFIG);
}

T_MAIN()
