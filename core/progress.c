/* Terminal progress bar. */
#include "core/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "core/timing.h"

void core_progress_init(core_progress_t *p, const char *label, uint64_t total, int force)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start_s = core_now_s();
    p->last_draw_s = 0;
    p->enabled = force > 0 || (force == 0 && isatty(STDERR_FILENO));
    p->drawn = 0;
}

static void draw(core_progress_t *p, const char *extra)
{
    double elapsed = core_now_s() - p->start_s;
    char bar[33];
    if (p->total > 0) {
        double frac = (double)p->done / (double)p->total;
        if (frac > 1) {
            frac = 1;
        }
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) {
            bar[i] = i < fill ? '#' : '.';
        }
        bar[30] = '\0';
        double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
        fprintf(stderr, "\r%s [%s] %3.0f%% %llu/%llu %s eta %.0fs\033[K", p->label, bar,
                frac * 100, (unsigned long long)p->done, (unsigned long long)p->total,
                extra != NULL ? extra : "", eta);
    } else {
        fprintf(stderr, "\r%s %llu %s %.0fs\033[K", p->label, (unsigned long long)p->done,
                extra != NULL ? extra : "", elapsed);
    }
    fflush(stderr);
    p->drawn = 1;
}

void core_progress_update(core_progress_t *p, uint64_t done, const char *extra)
{
    p->done = done;
    if (!p->enabled) {
        return;
    }
    double now = core_now_s();
    if (now - p->last_draw_s < 0.1) {
        return;
    }
    p->last_draw_s = now;
    draw(p, extra);
}

void core_progress_finish(core_progress_t *p, const char *extra)
{
    if (!p->enabled) {
        return;
    }
    draw(p, extra);
    fputc('\n', stderr);
}
