/* Decode + augment benchmark (issue 4): images/s on one thread for pl_img_decode_augment
 * (RandomResizedCrop + flip, bicubic) and, as the yardstick, TurboJPEG's plain DCT-scaled decode
 * of the whole image at the scale the pipeline's rule would pick for it. bench/decode.sh runs it
 * beside bench/decode_peer.py (PIL + torchvision) on the same files.
 *
 *   bench_decode [-t SEC_PER_REP] [-r REPS] [-s 64,224] [-m pipe_tv,pipe_spec,raw] DIR...
 *
 * Modes: pipe_tv   = RandomResizedCrop scale (0.08, 1) (torchvision's default) + flip p=0.5;
 *        pipe_spec = scale (0.9, 1) (spec/superclass.md 4.5's default) + flip;
 *        pipe_full = pipe_tv without DCT scaling (full-resolution crop decode);
 *        eval      = resize shorter side + centre crop;
 *        raw       = tjDecompress2 of the whole JPEG at M/8, the smallest M keeping it >= SIZE
 *                    (JPEG files only).
 * Each line: set, mode, size, files, median images per CPU-second over REPS (each rep runs whole
 * passes over the files for at least SEC_PER_REP CPU-seconds), the spread (min..max), and the
 * wall-clock rate. CPU time is the per-core figure that stays meaningful on a loaded machine. */
#include <dirent.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/timing.h"
#include "pipeline/augment.h"
#include "pipeline/image.h"

typedef struct file_s {
    uint8_t *data;
    size_t len;
    pl_img_info_t info;
} file_t;

typedef struct set_s {
    file_t *f;
    size_t n, cap;
} set_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_dir(const char *dir, set_t *s)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        exit(2);
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (nn == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
        }
        names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    for (size_t i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        FILE *fp = fopen(path, "rb");
        if (fp == NULL) {
            continue;
        }
        if (fseek(fp, 0, SEEK_END) != 0) {
            fclose(fp);
            continue;
        }
        long sz = ftell(fp);
        rewind(fp);
        uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
        if (sz <= 0 || fread(buf, 1, (size_t)sz, fp) != (size_t)sz) {
            free(buf);
            fclose(fp);
            continue;
        }
        fclose(fp);
        pl_img_info_t info;
        if (pl_img_probe(buf, (size_t)sz, NULL, &info, NULL) != 0) {
            free(buf);
            continue;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 256;
            s->f = realloc(s->f, s->cap * sizeof *s->f);
        }
        s->f[s->n++] = (file_t){buf, (size_t)sz, info};
    }
    free(names);
}

/* CPU seconds of this process: on a shared, oversubscribed machine images per CPU-second is the
 * per-core rate that wall-clock time cannot give. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct run_s {
    const char *mode;
    uint32_t size;
    pl_img_ctx_t *ctx;
    tjhandle tj;
    uint8_t *out;
    size_t out_cap;
    uint64_t sample; /* per-sample RNG stream index */
    int errors;
} run_t;

/* One image through the selected mode; returns 1 if it counted. */
static int one(run_t *r, const file_t *f)
{
    if (strcmp(r->mode, "raw") == 0) {
        if (f->info.format != PL_IMG_JPEG) {
            return 0;
        }
        int m = pl_jpeg_pick_scale(f->info.width, f->info.height, r->size, r->size);
        tjscalingfactor sf = {m, 8};
        int sw = TJSCALED((int)f->info.width, sf), sh = TJSCALED((int)f->info.height, sf);
        if ((size_t)sw * (size_t)sh * 3u > r->out_cap) {
            r->errors++;
            return 0;
        }
        if (tjDecompress2(r->tj, f->data, (unsigned long)f->len, r->out, sw, 0, sh, TJPF_RGB, 0) !=
            0) {
            r->errors++;
            return 0;
        }
        return 1;
    }
    pl_aug_t aug;
    pl_aug_defaults(&aug);
    aug.out_w = aug.out_h = r->size;
    aug.flip = 1;
    if (strcmp(r->mode, "pipe_tv") == 0 || strcmp(r->mode, "pipe_full") == 0) {
        aug.scale_min = 0.08;
        aug.dct_scaling = strcmp(r->mode, "pipe_tv") == 0;
    } else if (strcmp(r->mode, "pipe_spec") == 0) {
        aug.scale_min = 0.9;
    } else if (strcmp(r->mode, "eval") == 0) {
        aug.train = 0;
    } else {
        fprintf(stderr, "unknown mode %s\n", r->mode);
        exit(2);
    }
    core_rng_t rng;
    core_rng_init(&rng, 1234, r->sample++);
    if (pl_img_decode_augment(r->ctx, f->data, f->len, NULL, &aug, &rng, r->out, r->out_cap, NULL,
                              NULL) != 0) {
        r->errors++;
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    double sec = 1.0;
    int reps = 5;
    char sizes_arg[64] = "64,224", modes_arg[128] = "pipe_tv,pipe_spec,raw";
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a += 2) {
        if (a + 1 >= argc) {
            fprintf(stderr, "missing value for %s\n", argv[a]);
            return 2;
        }
        if (strcmp(argv[a], "-t") == 0) {
            sec = atof(argv[a + 1]);
        } else if (strcmp(argv[a], "-r") == 0) {
            reps = atoi(argv[a + 1]);
        } else if (strcmp(argv[a], "-s") == 0) {
            snprintf(sizes_arg, sizeof sizes_arg, "%s", argv[a + 1]);
        } else if (strcmp(argv[a], "-m") == 0) {
            snprintf(modes_arg, sizeof modes_arg, "%s", argv[a + 1]);
        } else {
            fprintf(stderr, "usage: %s [-t SEC] [-r REPS] [-s 64,224] [-m MODES] DIR...\n",
                    argv[0]);
            return 2;
        }
    }
    if (a >= argc || reps < 1 || reps > 99) {
        fprintf(stderr, "usage: %s [-t SEC] [-r REPS] [-s 64,224] [-m MODES] DIR...\n", argv[0]);
        return 2;
    }
    run_t r = {0};
    if (pl_img_ctx_new(&r.ctx) != 0 || (r.tj = tjInitDecompress()) == NULL) {
        return 1;
    }
    r.out_cap = (size_t)16384 * 16384 * 3u / 4u;
    r.out = malloc(r.out_cap);
    printf("# bench_decode: 1 thread, libjpeg-turbo %s, ISLOW IDCT, bicubic (PIL a=-0.5), "
           "flip p=0.5, ratio (3/4, 4/3)\n",
           "2.1");
    for (; a < argc; a++) {
        set_t s = {0};
        load_dir(argv[a], &s);
        const char *set = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
        char sizes[64];
        snprintf(sizes, sizeof sizes, "%s", sizes_arg);
        for (char *sp, *st = strtok_r(sizes, ",", &sp); st; st = strtok_r(NULL, ",", &sp)) {
            r.size = (uint32_t)atoi(st);
            char modes[128];
            snprintf(modes, sizeof modes, "%s", modes_arg);
            for (char *mp, *mt = strtok_r(modes, ",", &mp); mt; mt = strtok_r(NULL, ",", &mp)) {
                r.mode = mt;
                double rate[100], wrate[100];
                size_t counted = 0;
                r.errors = 0;
                /* warm-up pass: grows the context's buffers */
                for (size_t i = 0; i < s.n; i++) {
                    (void)one(&r, &s.f[i]);
                }
                for (int k = 0; k < reps; k++) {
                    double t0 = cpu_s(), w0 = core_now_s(), el;
                    counted = 0;
                    do {
                        for (size_t i = 0; i < s.n; i++) {
                            counted += (size_t)one(&r, &s.f[i]);
                        }
                        el = cpu_s() - t0;
                    } while (el < sec && counted > 0);
                    rate[k] = counted / el;
                    wrate[k] = counted / (core_now_s() - w0);
                }
                if (counted == 0) {
                    continue;
                }
                qsort(rate, (size_t)reps, sizeof rate[0], cmp_dbl);
                qsort(wrate, (size_t)reps, sizeof wrate[0], cmp_dbl);
                printf("set=%s mode=%s size=%u files=%zu img_s=%.1f min=%.1f max=%.1f "
                       "wall_img_s=%.1f errors=%d\n",
                       set, mt, r.size, s.n, rate[reps / 2], rate[0], rate[reps - 1],
                       wrate[reps / 2], r.errors);
                fflush(stdout);
            }
        }
        for (size_t i = 0; i < s.n; i++) {
            free(s.f[i].data);
        }
        free(s.f);
    }
    free(r.out);
    tjDestroy(r.tj);
    pl_img_ctx_free(r.ctx);
    return 0;
}
