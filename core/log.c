/* Journal-aware logging to stderr. */
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

static const char *log_prog = "superclass";
static atomic_int log_level = CORE_LOG_INFO;
static int log_journal = -1; /* -1: not yet detected */
static core_log_sink_cb log_sink;
static void *log_sink_ud;

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected; only trust it when our stderr
 * is that very stream, so a child whose stderr was redirected prints plain lines. */
static int detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    if (js == NULL || *js == '\0') {
        return 0;
    }
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (sscanf(js, "%llu:%llu", &dev, &ino) != 2) {
        return 0;
    }
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0) {
        return 0;
    }
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void core_log_init(const char *prog)
{
    if (prog != NULL) {
        const char *slash = strrchr(prog, '/');
        log_prog = slash != NULL ? slash + 1 : prog;
    }
    log_journal = detect_journal();
    const char *lv = getenv("SC_LOG_LEVEL");
    core_log_level_t parsed;
    if (lv != NULL && core_log_level_parse(lv, &parsed) == 0) {
        core_log_set_level(parsed);
    }
}

int core_log_is_journal(void)
{
    if (log_journal < 0) {
        log_journal = detect_journal();
    }
    return log_journal;
}

void core_log_set_level(core_log_level_t max_level) { atomic_store(&log_level, (int)max_level); }

core_log_level_t core_log_get_level(void) { return (core_log_level_t)atomic_load(&log_level); }

int core_log_level_parse(const char *s, core_log_level_t *out)
{
    static const struct {
        const char *name;
        core_log_level_t level;
    } names[] = {
        {"err", CORE_LOG_ERR},     {"error", CORE_LOG_ERR},   {"warning", CORE_LOG_WARNING},
        {"warn", CORE_LOG_WARNING}, {"notice", CORE_LOG_NOTICE}, {"info", CORE_LOG_INFO},
        {"debug", CORE_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return CORE_ECONFIG;
}

void core_log_set_sink(core_log_sink_cb sink, void *ud)
{
    log_sink = sink;
    log_sink_ud = ud;
}

void core_logv(core_log_level_t level, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load(&log_level)) {
        return;
    }
    char msg[2048];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0) {
        return;
    }
    if (log_sink != NULL) {
        log_sink(log_sink_ud, level, msg);
        return;
    }
    char line[2200];
    if (core_log_is_journal()) {
        n = snprintf(line, sizeof line, "<%d>%s\n", (int)level, msg);
    } else {
        n = snprintf(line, sizeof line, "%s: %s: %s\n", log_prog, level_names[level & 7], msg);
    }
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (len == sizeof line - 1) {
        line[len - 1] = '\n';
    }
    /* One write per message keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void core_log(core_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    core_logv(level, fmt, ap);
    va_end(ap);
}
