/* Learning check (suite slow): crunet24-mini as a SuperClass backbone (LayerNorm + Linear head,
 * online-IDF SuperClass loss) learns ../shared/data/corpus/digits, 8x8 grayscale PNG digits whose
 * captions name the digit ("handwritten digit three (3)"). The caption's digit is the label (a
 * one-token caption over a 10-word vocabulary, so SuperClass reduces to classification, as the
 * paper trained it). Every 5th sample is held out; the test asserts held-out accuracy well above
 * chance (10 %) and prints it.
 *
 * Data: the shard tars read with libarchive, PNGs decoded with libspng, upsampled 2x (nearest) to
 * 16x16, replicated to 3 channels, scaled to [-1, 1]. Training: batch 32, SGD momentum 0.9,
 * weight decay 5e-4, lr 0.05 with cosine decay, 12 epochs, samples shuffled per epoch. */
#include <archive.h>
#include <archive_entry.h>
#include <math.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/timing.h"
#include "nn/crunet.h"
#include "t.h"

#define IMG 16
#define MAXN 4096

typedef struct {
    int n;
    float *img;  /* [n, 3, IMG, IMG] */
    int32_t lab[MAXN];
    /* a sample's PNG and caption arrive as separate tar members: pair them by stem */
    char stem[MAXN][32];
    int have_img[MAXN], have_lab[MAXN];
} digits_t;

static int find_or_add(digits_t *d, const char *stem)
{
    for (int i = d->n - 1; i >= 0 && i >= d->n - 8; i--) {
        if (strcmp(d->stem[i], stem) == 0) {
            return i;
        }
    }
    T_ASSERT(d->n < MAXN);
    snprintf(d->stem[d->n], sizeof d->stem[0], "%s", stem);
    d->have_img[d->n] = d->have_lab[d->n] = 0;
    return d->n++;
}

static void decode_png(digits_t *d, int i, const uint8_t *buf, size_t len)
{
    spng_ctx *ctx = spng_ctx_new(0);
    T_ASSERT(ctx != NULL);
    T_ASSERT_EQ(spng_set_png_buffer(ctx, buf, len), 0);
    struct spng_ihdr ih;
    T_ASSERT_EQ(spng_get_ihdr(ctx, &ih), 0);
    T_ASSERT(ih.width == 8 && ih.height == 8);
    size_t sz = 0;
    T_ASSERT_EQ(spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &sz), 0);
    T_ASSERT_EQ(sz, 8 * 8 * 3);
    uint8_t px[8 * 8 * 3];
    T_ASSERT_EQ(spng_decode_image(ctx, px, sz, SPNG_FMT_RGB8, 0), 0);
    spng_ctx_free(ctx);
    float *dst = d->img + (size_t)i * 3 * IMG * IMG;
    for (int c = 0; c < 3; c++) {
        for (int y = 0; y < IMG; y++) {
            for (int x = 0; x < IMG; x++) {
                uint8_t v = px[((y / 2) * 8 + x / 2) * 3 + c];
                dst[(c * IMG + y) * IMG + x] = (float)v / 127.5f - 1.0f;
            }
        }
    }
    d->have_img[i] = 1;
}

static void load_tar(digits_t *d, const char *path)
{
    struct archive *a = archive_read_new();
    T_ASSERT(a != NULL);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        T_FAIL("open %s: %s", path, archive_error_string(a));
    }
    struct archive_entry *e;
    uint8_t *buf = NULL;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        const char *dot = strrchr(name, '.');
        la_int64_t size = archive_entry_size(e);
        if (!dot || size <= 0 || size > (1 << 20) ||
            (strcmp(dot, ".png") != 0 && strcmp(dot, ".txt") != 0)) {
            continue;
        }
        buf = core_malloc((size_t)size + 1);
        T_ASSERT(buf != NULL);
        T_ASSERT_EQ(archive_read_data(a, buf, (size_t)size), size);
        buf[size] = 0;
        char stem[32];
        size_t sl = (size_t)(dot - name);
        T_ASSERT(sl < sizeof stem);
        memcpy(stem, name, sl);
        stem[sl] = 0;
        int i = find_or_add(d, stem);
        if (strcmp(dot, ".png") == 0) {
            decode_png(d, i, buf, (size_t)size);
        } else {
            /* the caption names the digit: "... (7)" */
            const char *p = strrchr((const char *)buf, '(');
            T_ASSERT(p && p[1] >= '0' && p[1] <= '9');
            d->lab[i] = p[1] - '0';
            d->have_lab[i] = 1;
        }
        core_free(buf);
        buf = NULL;
    }
    archive_read_free(a);
}

T_CASE(digits_learn)
{
    const char *t0 = t_shared("corpus/digits/digits-000000.tar");
    char p0[1024], p1[1024];
    snprintf(p0, sizeof p0, "%s", t0);
    snprintf(p1, sizeof p1, "%s", t_shared("corpus/digits/digits-000001.tar"));
    digits_t *d = core_calloc(1, sizeof *d);
    T_ASSERT(d != NULL);
    d->img = core_malloc((size_t)MAXN * 3 * IMG * IMG * sizeof(float));
    T_ASSERT(d->img != NULL);
    load_tar(d, p0);
    load_tar(d, p1);
    int ntr = 0, nte = 0;
    int *tr = core_malloc(sizeof(int) * (size_t)d->n), *te = core_malloc(sizeof(int) * (size_t)d->n);
    T_ASSERT(tr && te);
    for (int i = 0; i < d->n; i++) {
        T_ASSERT(d->have_img[i] && d->have_lab[i]);
        if (i % 5 == 4) {
            te[nte++] = i;
        } else {
            tr[ntr++] = i;
        }
    }
    printf("digits: %d samples, %d train, %d held out\n", d->n, ntr, nte);
    T_ASSERT(nte >= 100);

    const int B = 32, V = 10, epochs = 12;
    nn_crunet_cfg_t c;
    T_ASSERT_OK(nn_crunet_preset("crunet24-mini", IMG, NN_CRUNET_HEAD_SC, V, B, &c));
    nn_crunet_t *m = NULL;
    T_ASSERT_OK(nn_crunet_new(&c, &m));
    nn_crunet_init(m, 1);
    float *bx = core_malloc((size_t)B * 3 * IMG * IMG * sizeof(float));
    T_ASSERT(bx != NULL);
    uint32_t off[33], ids[32];
    core_rng_t rng;
    core_rng_init(&rng, 2, 0);
    int steps_per_epoch = ntr / B, total = epochs * steps_per_epoch, step = 0;
    double tstart = core_now_s();
    for (int ep = 0; ep < epochs; ep++) {
        for (int i = ntr - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)core_rng_below(&rng, (uint64_t)(i + 1)), t = tr[i];
            tr[i] = tr[j];
            tr[j] = t;
        }
        double lsum = 0.0;
        for (int s = 0; s < steps_per_epoch; s++, step++) {
            off[0] = 0;
            for (int b = 0; b < B; b++) {
                int idx = tr[s * B + b];
                memcpy(bx + (size_t)b * 3 * IMG * IMG, d->img + (size_t)idx * 3 * IMG * IMG,
                       sizeof(float) * 3 * IMG * IMG);
                ids[b] = (uint32_t)d->lab[idx];
                off[b + 1] = (uint32_t)(b + 1);
            }
            float lr = 0.05f * 0.5f * (1.0f + cosf(3.14159265f * (float)step / (float)total));
            float loss;
            nn_crunet_zero_grad(m);
            nn_crunet_forward(m, bx, 1);
            T_ASSERT_OK(nn_crunet_loss_sc(m, off, ids, 1, &loss));
            nn_crunet_backward(m);
            nn_crunet_sgd_step(m, lr, 0.9f, 5e-4f);
            lsum += loss;
        }
        printf("epoch %2d: mean loss %.4f (%.0f s)\n", ep, lsum / steps_per_epoch,
               core_now_s() - tstart);
    }
    /* held-out accuracy in eval mode (running statistics); the last partial batch is padded */
    int correct = 0, counted = 0;
    for (int s = 0; s < nte; s += B) {
        for (int b = 0; b < B; b++) {
            int idx = te[s + b < nte ? s + b : nte - 1];
            memcpy(bx + (size_t)b * 3 * IMG * IMG, d->img + (size_t)idx * 3 * IMG * IMG,
                   sizeof(float) * 3 * IMG * IMG);
        }
        nn_crunet_forward(m, bx, 0);
        const float *z = nn_crunet_logits(m);
        for (int b = 0; b < B && s + b < nte; b++) {
            int best = 0;
            for (int k = 1; k < V; k++) {
                if (z[b * V + k] > z[b * V + best]) {
                    best = k;
                }
            }
            correct += best == d->lab[te[s + b]];
            counted++;
        }
    }
    double acc = (double)correct / counted;
    printf("held-out accuracy: %d / %d = %.1f %% (chance 10 %%), %.0f s\n", correct, counted,
           100.0 * acc, core_now_s() - tstart);
    T_ASSERT(acc > 0.85);
    core_free(bx);
    core_free(tr);
    core_free(te);
    core_free(d->img);
    core_free(d);
    nn_crunet_free(m);
}

T_MAIN()
