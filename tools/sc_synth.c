/* sc-synth: a deterministic synthetic image-text corpus as webdataset .tar shards (plain USTAR,
 * written here): coloured shapes, digits and short words drawn into small JPEGs (TurboJPEG) with
 * varied natural captions ("a red circle on a white background", "the digit seven drawn in
 * blue"), so that SuperClass learning is visible within minutes. Sample i is a pure function of
 * (seed, i): the same arguments give byte-identical shards.
 *
 *   sc-synth --out DIR [--count N] [--size S] [--seed X] [--per-shard N] [--quality Q] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "core/rng.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sc-synth --out DIR [--count N] [--size S] [--seed X] [--per-shard N]\n"
            "                [--quality Q]\n"
            "\n"
            "Writes DIR/synth-000000.tar, ... : webdataset shards of KEY.jpg + KEY.txt pairs showing\n"
            "coloured circles, squares, triangles, stars, digits and words, with natural captions.\n"
            "Deterministic: sample i depends only on (seed, i).\n"
            "\n"
            "  --out DIR        output directory (created)\n"
            "  --count N        samples (default 4000)\n"
            "  --size S         image side in pixels, 16..1024 (default 64)\n"
            "  --seed X         seed (default 1)\n"
            "  --per-shard N    samples per .tar (default 1000)\n"
            "  --quality Q      JPEG quality 1..100 (default 90)\n"
            "exit status: 0 ok, 1 error, 2 usage\n");
}

/* ---- drawing ---------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    uint8_t r, g, b;
} color_t;

static const color_t colors[] = {
    {"red", 220, 30, 30},     {"green", 30, 170, 50},   {"blue", 30, 60, 220},
    {"yellow", 240, 220, 30}, {"orange", 250, 140, 20}, {"purple", 140, 40, 180},
    {"pink", 250, 130, 190},  {"brown", 130, 80, 30},   {"black", 15, 15, 15},
    {"white", 250, 250, 250}, {"gray", 128, 128, 128},  {"cyan", 40, 210, 220},
};
#define N_COLORS (sizeof colors / sizeof colors[0])

typedef struct {
    uint8_t *p;
    int s;
} img_t;

static void put(img_t *im, int x, int y, const color_t *c)
{
    if (x < 0 || y < 0 || x >= im->s || y >= im->s) {
        return;
    }
    uint8_t *q = im->p + ((size_t)y * (size_t)im->s + (size_t)x) * 3;
    q[0] = c->r;
    q[1] = c->g;
    q[2] = c->b;
}

/* Point-in-polygon (even-odd) for the triangle and the star. */
static int inside(const double *px, const double *py, int n, double x, double y)
{
    int in = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        if (((py[i] > y) != (py[j] > y)) &&
            (x < (px[j] - px[i]) * (y - py[i]) / (py[j] - py[i]) + px[i])) {
            in = !in;
        }
    }
    return in;
}

enum { SH_CIRCLE, SH_SQUARE, SH_TRIANGLE, SH_STAR, N_SHAPES };
static const char *const shape_names[] = {"circle", "square", "triangle", "star"};

static void draw_shape(img_t *im, int shape, double cx, double cy, double r, const color_t *c)
{
    double px[10], py[10];
    int n = 0;
    if (shape == SH_TRIANGLE) {
        for (int k = 0; k < 3; k++) {
            double a = -M_PI / 2 + k * 2 * M_PI / 3;
            px[n] = cx + r * cos(a);
            py[n++] = cy + r * sin(a) + r * 0.2;
        }
    } else if (shape == SH_STAR) {
        for (int k = 0; k < 10; k++) {
            double a = -M_PI / 2 + k * M_PI / 5, rr = (k % 2) ? r * 0.42 : r;
            px[n] = cx + rr * cos(a);
            py[n++] = cy + rr * sin(a);
        }
    }
    for (int y = (int)(cy - r - 2); y <= (int)(cy + r + 2); y++) {
        for (int x = (int)(cx - r - 2); x <= (int)(cx + r + 2); x++) {
            double fx = x + 0.5, fy = y + 0.5;
            int on = 0;
            if (shape == SH_CIRCLE) {
                on = (fx - cx) * (fx - cx) + (fy - cy) * (fy - cy) <= r * r;
            } else if (shape == SH_SQUARE) {
                on = fabs(fx - cx) <= r * 0.85 && fabs(fy - cy) <= r * 0.85;
            } else {
                on = inside(px, py, n, fx, fy);
            }
            if (on) {
                put(im, x, y, c);
            }
        }
    }
}

/* 5x7 glyphs, rows top to bottom, bit 4 = leftmost column. Digits 0-9, then A-Z. */
static const uint8_t font[36][7] = {
    {14, 17, 19, 21, 25, 17, 14}, {4, 12, 4, 4, 4, 4, 14},      {14, 17, 1, 2, 4, 8, 31},
    {31, 2, 4, 2, 1, 17, 14},     {2, 6, 10, 18, 31, 2, 2},     {31, 16, 30, 1, 1, 17, 14},
    {6, 8, 16, 30, 17, 17, 14},   {31, 1, 2, 4, 8, 8, 8},       {14, 17, 17, 14, 17, 17, 14},
    {14, 17, 17, 15, 1, 2, 12},   {14, 17, 17, 31, 17, 17, 17}, {30, 17, 17, 30, 17, 17, 30},
    {14, 17, 16, 16, 16, 17, 14}, {28, 18, 17, 17, 17, 18, 28}, {31, 16, 16, 30, 16, 16, 31},
    {31, 16, 16, 30, 16, 16, 16}, {14, 17, 16, 23, 17, 17, 15}, {17, 17, 17, 31, 17, 17, 17},
    {14, 4, 4, 4, 4, 4, 14},      {7, 2, 2, 2, 2, 18, 12},      {17, 18, 20, 24, 20, 18, 17},
    {16, 16, 16, 16, 16, 16, 31}, {17, 27, 21, 21, 17, 17, 17}, {17, 17, 25, 21, 19, 17, 17},
    {14, 17, 17, 17, 17, 17, 14}, {30, 17, 17, 30, 16, 16, 16}, {14, 17, 17, 17, 21, 18, 13},
    {30, 17, 17, 30, 20, 18, 17}, {15, 16, 16, 14, 1, 1, 30},   {31, 4, 4, 4, 4, 4, 4},
    {17, 17, 17, 17, 17, 17, 14}, {17, 17, 17, 17, 17, 10, 4},  {17, 17, 17, 21, 21, 21, 10},
    {17, 17, 10, 4, 10, 17, 17},  {17, 17, 10, 4, 4, 4, 4},     {31, 1, 2, 4, 8, 16, 31},
};

static void draw_glyph(img_t *im, int g, int x0, int y0, int scale, const color_t *c)
{
    for (int row = 0; row < 7; row++) {
        for (int col = 0; col < 5; col++) {
            if (font[g][row] & (16 >> col)) {
                for (int dy = 0; dy < scale; dy++) {
                    for (int dx = 0; dx < scale; dx++) {
                        put(im, x0 + col * scale + dx, y0 + row * scale + dy, c);
                    }
                }
            }
        }
    }
}

static const char *const digit_words[] = {"zero", "one", "two",   "three", "four",
                                          "five", "six", "seven", "eight", "nine"};
static const char *const words[] = {"cat", "dog",  "sun", "sky", "tree", "fish", "bird",
                                    "car", "boat", "map", "key", "moon", "star", "rain"};
#define N_WORDS (sizeof words / sizeof words[0])
static const char *const backgrounds[] = {"white", "black", "gray", "yellow", "blue", "pink"};

static const color_t *color_named(const char *name)
{
    for (size_t i = 0; i < N_COLORS; i++) {
        if (strcmp(colors[i].name, name) == 0) {
            return &colors[i];
        }
    }
    return &colors[0];
}

/* Draws sample (seed, i) into im and writes its caption. */
static void make_sample(uint64_t seed, uint64_t i, img_t *im, char *cap, size_t capn)
{
    core_rng_t rng;
    core_rng_init(&rng, seed, i);
    const char *bgname = backgrounds[core_rng_below(&rng, sizeof backgrounds / sizeof backgrounds[0])];
    const color_t *bg = color_named(bgname);
    const color_t *fg;
    do {
        fg = &colors[core_rng_below(&rng, N_COLORS)];
    } while (strcmp(fg->name, bgname) == 0);
    int s = im->s;
    for (int p = 0; p < s * s; p++) {
        im->p[3 * p] = bg->r;
        im->p[3 * p + 1] = bg->g;
        im->p[3 * p + 2] = bg->b;
    }
    /* light noise so JPEGs are not trivially flat */
    for (int p = 0; p < s * s; p++) {
        int d = (int)core_rng_below(&rng, 9) - 4;
        for (int k = 0; k < 3; k++) {
            int v = im->p[3 * p + k] + d;
            im->p[3 * p + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    int kind = (int)core_rng_below(&rng, 10); /* 0-4 shape, 5-7 digit, 8-9 word */
    int large = (int)core_rng_below(&rng, 2);
    int tmpl = (int)core_rng_below(&rng, 4);
    double r = s * (large ? 0.36 : 0.22);
    double cx = s / 2.0, cy = s / 2.0;
    const char *pos = "middle";
    if (!large) {
        int where = (int)core_rng_below(&rng, 5);
        static const char *const pos_names[] = {"middle", "left", "right", "top", "bottom"};
        pos = pos_names[where];
        cx += where == 1 ? -s * 0.25 : where == 2 ? s * 0.25 : 0;
        cy += where == 3 ? -s * 0.25 : where == 4 ? s * 0.25 : 0;
    }
    if (kind < 5) {
        int sh = (int)core_rng_below(&rng, N_SHAPES);
        int two = kind == 4; /* two shapes */
        if (two) {
            int sh2 = (int)core_rng_below(&rng, N_SHAPES);
            const color_t *fg2;
            do {
                fg2 = &colors[core_rng_below(&rng, N_COLORS)];
            } while (strcmp(fg2->name, bgname) == 0);
            draw_shape(im, sh, s * 0.28, s * 0.5, s * 0.2, fg);
            draw_shape(im, sh2, s * 0.72, s * 0.5, s * 0.2, fg2);
            snprintf(cap, capn, "a %s %s next to a %s %s", fg->name, shape_names[sh], fg2->name,
                     shape_names[sh2]);
            return;
        }
        draw_shape(im, sh, cx, cy, r, fg);
        switch (tmpl) {
        case 0:
            snprintf(cap, capn, "a %s %s on a %s background", fg->name, shape_names[sh], bgname);
            break;
        case 1:
            snprintf(cap, capn, "a %s %s %s", large ? "large" : "small", fg->name, shape_names[sh]);
            break;
        case 2:
            snprintf(cap, capn, "a %s %s in the %s of the picture", fg->name, shape_names[sh], pos);
            break;
        default:
            snprintf(cap, capn, "a picture of a %s %s", fg->name, shape_names[sh]);
            break;
        }
    } else if (kind < 8) {
        int dgt = (int)core_rng_below(&rng, 10);
        int scale = large ? s / 10 : s / 16;
        if (scale < 1) {
            scale = 1;
        }
        draw_glyph(im, dgt, (int)(cx - 2.5 * scale), (int)(cy - 3.5 * scale), scale, fg);
        switch (tmpl) {
        case 0:
            snprintf(cap, capn, "the digit %s drawn in %s", digit_words[dgt], fg->name);
            break;
        case 1:
            snprintf(cap, capn, "the number %s in %s on a %s background", digit_words[dgt],
                     fg->name, bgname);
            break;
        case 2:
            snprintf(cap, capn, "a %s number %d", fg->name, dgt);
            break;
        default:
            snprintf(cap, capn, "a %s %s written in %s", large ? "big" : "small", digit_words[dgt],
                     fg->name);
            break;
        }
    } else {
        const char *w = words[core_rng_below(&rng, N_WORDS)];
        int len = (int)strlen(w);
        int scale = s / (6 * len + 2);
        if (scale < 1) {
            scale = 1;
        }
        int x0 = (int)(s / 2.0 - len * 6 * scale / 2.0);
        for (int k = 0; k < len; k++) {
            draw_glyph(im, 10 + (w[k] - 'a'), x0 + k * 6 * scale, (int)(s / 2.0 - 3.5 * scale),
                       scale, fg);
        }
        if (tmpl < 2) {
            snprintf(cap, capn, "the word %s written in %s letters", w, fg->name);
        } else {
            snprintf(cap, capn, "%s text on a %s background that says %s", fg->name, bgname, w);
        }
    }
}

/* ---- tar ---------------------------------------------------------------------------------- */
static int tar_member(FILE *f, const char *name, const void *data, size_t len)
{
    uint8_t h[512];
    memset(h, 0, sizeof h);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 108, 8, "%07o", 0);
    snprintf((char *)h + 116, 8, "%07o", 0);
    snprintf((char *)h + 124, 12, "%011lo", (unsigned long)len);
    snprintf((char *)h + 136, 12, "%011o", 0); /* mtime 0: reproducible */
    memset(h + 148, ' ', 8);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) {
        sum += h[i];
    }
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    static const uint8_t zero[512];
    size_t pad = (512 - len % 512) % 512;
    if (fwrite(h, 1, 512, f) != 512 || fwrite(data, 1, len, f) != len ||
        fwrite(zero, 1, pad, f) != pad) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    unsigned long long count = 4000, seed = 1, per = 1000;
    int size = 64, quality = 90;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (v == NULL) {
            fprintf(stderr, "sc-synth: '%s' needs a value or is unknown\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--count") == 0) {
            count = strtoull(v, &end, 10);
        } else if (strcmp(a, "--seed") == 0) {
            seed = strtoull(v, &end, 10);
        } else if (strcmp(a, "--per-shard") == 0) {
            per = strtoull(v, &end, 10);
        } else if (strcmp(a, "--size") == 0) {
            size = (int)strtol(v, &end, 10);
        } else if (strcmp(a, "--quality") == 0) {
            quality = (int)strtol(v, &end, 10);
        } else {
            fprintf(stderr, "sc-synth: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (end != NULL && (*end != '\0' || end == v)) {
            fprintf(stderr, "sc-synth: %s: '%s' is not a number\n", a, v);
            return 2;
        }
        i++;
    }
    if (out == NULL || size < 16 || size > 1024 || per == 0 || quality < 1 || quality > 100) {
        usage(stderr);
        return 2;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "sc-synth: %s: %s\n", out, strerror(errno));
        return 1;
    }
    tjhandle tj = tjInitCompress();
    img_t im = {malloc((size_t)size * (size_t)size * 3), size};
    if (tj == NULL || im.p == NULL) {
        fprintf(stderr, "sc-synth: out of memory\n");
        return 1;
    }
    FILE *f = NULL;
    char path[4200], name[64], cap[256];
    int rc = 0;
    for (unsigned long long i = 0; i < count && rc == 0; i++) {
        if (i % per == 0) {
            if (f != NULL) {
                static const uint8_t end2[1024];
                if (fwrite(end2, 1, sizeof end2, f) != sizeof end2 || fclose(f) != 0) {
                    rc = 1;
                }
                f = NULL;
            }
            snprintf(path, sizeof path, "%s/synth-%06llu.tar", out, i / per);
            f = fopen(path, "wb");
            if (f == NULL) {
                fprintf(stderr, "sc-synth: %s: %s\n", path, strerror(errno));
                rc = 1;
                break;
            }
        }
        make_sample(seed, i, &im, cap, sizeof cap);
        unsigned char *jpg = NULL;
        unsigned long jlen = 0;
        if (tjCompress2(tj, im.p, size, 0, size, TJPF_RGB, &jpg, &jlen, TJSAMP_420, quality,
                        TJFLAG_ACCURATEDCT) != 0) {
            fprintf(stderr, "sc-synth: JPEG: %s\n", tjGetErrorStr2(tj));
            rc = 1;
            break;
        }
        snprintf(name, sizeof name, "%09llu.jpg", i);
        if (tar_member(f, name, jpg, jlen) != 0) {
            rc = 1;
        }
        tjFree(jpg);
        snprintf(name, sizeof name, "%09llu.txt", i);
        if (rc == 0 && tar_member(f, name, cap, strlen(cap)) != 0) {
            rc = 1;
        }
    }
    if (f != NULL) {
        static const uint8_t end2[1024];
        if (fwrite(end2, 1, sizeof end2, f) != sizeof end2 || fclose(f) != 0) {
            rc = 1;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "sc-synth: write failed: %s\n", strerror(errno));
    } else {
        fprintf(stderr, "sc-synth: %llu samples (%dx%d JPEG) in %s\n", count, size, size, out);
    }
    tjDestroy(tj);
    free(im.p);
    return rc;
}
