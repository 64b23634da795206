/* Logging to stderr. Under systemd (JOURNAL_STREAM names our stderr) each line starts with the
 * journal's "<N>" priority prefix; otherwise lines read "prog: level: message". Thread-safe: each
 * message is written with one write(2). */
#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <stdarg.h>

/* syslog priorities, as the journal reads them */
typedef enum {
    CORE_LOG_ERR = 3,
    CORE_LOG_WARNING = 4,
    CORE_LOG_NOTICE = 5,
    CORE_LOG_INFO = 6,
    CORE_LOG_DEBUG = 7,
} core_log_level_t;

typedef void (*core_log_sink_cb)(void *ud, core_log_level_t level, const char *line);

/* Sets the program name shown in plain lines and detects the journal. `prog` is borrowed and must
 * outlive logging (pass argv[0] or a literal). Call once from main before other threads start. */
void core_log_init(const char *prog);

/* Messages above `max_level` are dropped. Default CORE_LOG_INFO; SC_LOG_LEVEL=debug raises it. */
void core_log_set_level(core_log_level_t max_level);
core_log_level_t core_log_get_level(void);

/* Parses "err", "warning", "notice", "info", "debug". Returns 0 or CORE_ECONFIG. */
int core_log_level_parse(const char *s, core_log_level_t *out);

/* Redirects messages to `sink` (tests); NULL restores stderr. */
void core_log_set_sink(core_log_sink_cb sink, void *ud);

/* True when stderr is connected to the journal. */
int core_log_is_journal(void);

#if defined(__GNUC__)
#define CORE__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CORE__PRINTF(a, b)
#endif

void core_log(core_log_level_t level, const char *fmt, ...) CORE__PRINTF(2, 3);
void core_logv(core_log_level_t level, const char *fmt, va_list ap);

#define core_log_err(...) core_log(CORE_LOG_ERR, __VA_ARGS__)
#define core_log_warn(...) core_log(CORE_LOG_WARNING, __VA_ARGS__)
#define core_log_notice(...) core_log(CORE_LOG_NOTICE, __VA_ARGS__)
#define core_log_info(...) core_log(CORE_LOG_INFO, __VA_ARGS__)
#define core_log_debug(...) core_log(CORE_LOG_DEBUG, __VA_ARGS__)

#endif
