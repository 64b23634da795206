/* A one-line progress bar for long CLI work, drawn on stderr only when stderr is a terminal
 * (redrawn at most 10 times a second). Not thread-safe: update it from one thread. */
#ifndef CORE_PROGRESS_H
#define CORE_PROGRESS_H

#include <stdint.h>

typedef struct core_progress_s {
    const char *label; /* borrowed */
    uint64_t total;    /* 0 when unknown: shows a count instead of a bar */
    uint64_t done;
    double start_s;
    double last_draw_s;
    int enabled;
    int drawn;
} core_progress_t;

/* `force` = 1 draws even when stderr is not a TTY (tests); -1 never draws. */
void core_progress_init(core_progress_t *p, const char *label, uint64_t total, int force);

/* Sets the count done and an optional extra text (e.g. "1234 samples/s, 3 rejected"). */
void core_progress_update(core_progress_t *p, uint64_t done, const char *extra);

/* Draws the final state and ends the line. */
void core_progress_finish(core_progress_t *p, const char *extra);

#endif
