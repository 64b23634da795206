/* The ViT model (names, shapes, init, whole-model gradient check, training reduces the loss),
 * the SuperClass loss on the spec's worked example, AdamW and the LR schedule. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/rng.h"
#include "nn/adamw.h"
#include "nn/blas.h"
#include "nn/kernels.h"
#include "nn/loss.h"
#include "nn/vit.h"
#include "t.h"

static nn_vit_cfg_t tiny_cfg(void)
{
    nn_vit_cfg_t c = {.image_size = 8, .patch = 4, .width = 8, .depth = 2, .heads = 2,
                      .mlp_hidden = 16, .vocab = 11, .batch = 2};
    return c;
}

static void rand_images(float *x, size_t n, uint64_t seed)
{
    core_rng_t r;
    core_rng_init(&r, seed, 3);
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)core_rng_normal(&r);
    }
}

T_CASE(vit_presets)
{
    nn_vit_cfg_t c;
    T_ASSERT_OK(nn_vit_preset("ViT-Ti/8", 64, 49408, 64, &c));
    T_ASSERT(c.width == 192 && c.depth == 12 && c.heads == 3 && c.mlp_hidden == 768);
    T_ASSERT(c.patch == 8 && c.image_size == 64 && c.batch == 64 && c.vocab == 49408);
    T_ASSERT_OK(nn_vit_preset("ViT-B/16", 224, 49408, 1, &c));
    T_ASSERT(c.width == 768 && c.depth == 12 && c.heads == 12);
    T_ASSERT_OK(nn_vit_preset("ViT-L/14", 224, 49408, 1, &c));
    T_ASSERT(c.width == 1024 && c.depth == 24 && c.heads == 16 && c.patch == 14);
    T_ASSERT_OK(nn_vit_preset("ViT-S/16", 224, 1000, 1, &c));
    T_ASSERT(c.width == 384 && c.heads == 6);
    T_ASSERT_ERR(nn_vit_preset("ViT-X/16", 224, 1000, 1, &c), CORE_ENOT_FOUND);
    T_ASSERT_ERR(nn_vit_preset("ViT-B/15", 224, 1000, 1, &c), CORE_ENOT_FOUND);
    T_ASSERT_ERR(nn_vit_preset("ViT-B/16x", 224, 1000, 1, &c), CORE_ENOT_FOUND);
    T_ASSERT_ERR(nn_vit_preset("ViT-B/16", 100, 1000, 1, &c), CORE_ECONFIG);
}

T_CASE(vit_tensor_table)
{
    nn_vit_cfg_t c;
    T_ASSERT_OK(nn_vit_preset("ViT-Ti/16", 224, 1000, 1, &c));
    nn_vit_t *m = NULL;
    T_ASSERT_OK(nn_vit_new(&c, &m));
    T_ASSERT_EQ(nn_vit_num_tensors(m), 5 + 12 * 12 + 6 + 2);
    nn_tensor_t t;
    T_ASSERT_OK(nn_vit_tensor(m, 0, &t));
    T_ASSERT_STR_EQ(t.name, "visual.class_embedding");
    T_ASSERT(t.ndim == 1 && t.shape[0] == 192 && !t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.positional_embedding", &t));
    T_ASSERT(t.ndim == 2 && t.shape[0] == 197 && t.shape[1] == 192 && t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.conv1.weight", &t));
    T_ASSERT(t.ndim == 4 && t.shape[0] == 192 && t.shape[1] == 3 && t.shape[2] == 16 &&
             t.shape[3] == 16 && t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.11.attn.in_proj_weight", &t));
    T_ASSERT(t.shape[0] == 576 && t.shape[1] == 192 && t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.0.attn.in_proj_bias", &t));
    T_ASSERT(t.shape[0] == 576 && !t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.3.mlp.c_fc.weight", &t));
    T_ASSERT(t.shape[0] == 768 && t.shape[1] == 192 && t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.3.mlp.c_proj.bias", &t));
    T_ASSERT(t.shape[0] == 192 && !t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.5.ln_2.weight", &t));
    T_ASSERT(!t.decay);
    T_ASSERT_OK(nn_vit_find(m, "visual.ln_post.bias", &t));
    T_ASSERT_OK(nn_vit_find(m, "text_decoder.ln_mlp.weight", &t));
    T_ASSERT_OK(nn_vit_find(m, "text_decoder.text_projection.weight", &t));
    T_ASSERT(t.shape[0] == 1000 && t.shape[1] == 192 && t.decay && t.grad && t.m && t.v);
    T_ASSERT_OK(nn_vit_find(m, "text_decoder.text_projection.bias", &t));
    T_ASSERT(!t.decay);
    T_ASSERT_OK(nn_vit_find(m, "cap_fq", &t));
    T_ASSERT(t.is_buffer && t.dtype == NN_DTYPE_F64 && t.ndim == 2 && t.shape[0] == 1 &&
             t.shape[1] == 1000 && t.grad == NULL);
    T_ASSERT_OK(nn_vit_find(m, "num_samples", &t));
    T_ASSERT(t.is_buffer && t.dtype == NN_DTYPE_F64 && t.numel == 1);
    T_ASSERT_ERR(nn_vit_find(m, "visual.proj", &t), CORE_ENOT_FOUND);
    T_ASSERT_ERR(nn_vit_tensor(m, nn_vit_num_tensors(m), &t), CORE_ENOT_FOUND);
    /* the spec's count formula (3.1): conv D*3p^2, cls D, pos N*D, 2 LN per block + ln_pre +
     * ln_post, 12 D^2 + 13 D per block; head LN 2D + V*D + V */
    size_t D = 192, N = 197, V = 1000;
    size_t expect = D * 768 + D + N * D + 2 * D + 12 * (12 * D * D + 13 * D) + 2 * D + 2 * D +
                    V * D + V;
    T_ASSERT_EQ(nn_vit_num_params(m), expect);
    /* every name unique */
    for (size_t i = 0; i < nn_vit_num_tensors(m); i++) {
        nn_tensor_t a, b;
        T_ASSERT_OK(nn_vit_tensor(m, i, &a));
        for (size_t j = i + 1; j < nn_vit_num_tensors(m); j++) {
            T_ASSERT_OK(nn_vit_tensor(m, j, &b));
            T_ASSERT(strcmp(a.name, b.name) != 0);
        }
    }
    nn_vit_free(m);
}

static double mean_of(const float *p, size_t n, double *sd)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        s += p[i];
        ss += (double)p[i] * p[i];
    }
    *sd = sqrt(ss / (double)n - (s / (double)n) * (s / (double)n));
    return s / (double)n;
}

static float absmax(const float *p, size_t n)
{
    float mx = 0;
    for (size_t i = 0; i < n; i++) {
        mx = fabsf(p[i]) > mx ? fabsf(p[i]) : mx;
    }
    return mx;
}

T_CASE(vit_init_distributions)
{
    nn_vit_cfg_t c;
    T_ASSERT_OK(nn_vit_preset("ViT-Ti/16", 64, 2000, 1, &c));
    nn_vit_t *m = NULL;
    T_ASSERT_OK(nn_vit_new(&c, &m));
    nn_vit_init(m, 0);
    nn_tensor_t t;
    double sd;
    T_ASSERT_OK(nn_vit_find(m, "text_decoder.text_projection.weight", &t));
    T_ASSERT_NEAR(mean_of(t.data, t.numel, &sd), 0.0, 1e-3);
    T_ASSERT_NEAR(sd, 1.0 / sqrt(192.0), 1e-3);
    T_ASSERT_OK(nn_vit_find(m, "visual.positional_embedding", &t));
    mean_of(t.data, t.numel, &sd);
    T_ASSERT_NEAR(sd, 1.0 / sqrt(192.0), 4e-3);
    T_ASSERT_OK(nn_vit_find(m, "visual.conv1.weight", &t));
    T_ASSERT(absmax(t.data, t.numel) <= 1.0f / sqrtf(768.0f));
    T_ASSERT(absmax(t.data, t.numel) > 0.99f / sqrtf(768.0f));
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.0.attn.in_proj_weight", &t));
    T_ASSERT(absmax(t.data, t.numel) <= sqrtf(6.0f / 768.0f));
    T_ASSERT(absmax(t.data, t.numel) > 0.99f * sqrtf(6.0f / 768.0f));
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.0.mlp.c_proj.bias", &t));
    T_ASSERT(absmax(t.data, t.numel) <= 1.0f / sqrtf(768.0f));
    T_ASSERT(absmax(t.data, t.numel) > 0.9f / sqrtf(768.0f));
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.0.attn.in_proj_bias", &t));
    T_ASSERT(absmax(t.data, t.numel) == 0.0f);
    T_ASSERT_OK(nn_vit_find(m, "visual.ln_pre.weight", &t));
    T_ASSERT(((float *)t.data)[0] == 1.0f && ((float *)t.data)[191] == 1.0f);
    T_ASSERT_OK(nn_vit_find(m, "text_decoder.text_projection.bias", &t));
    T_ASSERT(absmax(t.data, t.numel) == 0.0f);
    /* different tensors get different streams */
    nn_tensor_t a, b;
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.0.mlp.c_fc.weight", &a));
    T_ASSERT_OK(nn_vit_find(m, "visual.transformer.resblocks.1.mlp.c_fc.weight", &b));
    T_ASSERT(memcmp(a.data, b.data, a.numel * sizeof(float)) != 0);
    nn_vit_free(m);
}

T_CASE(vit_images_from_u8)
{
    uint8_t src[2 * 1 * 2 * 3] = {0, 128, 255, 10, 20, 30, 255, 255, 255, 1, 2, 3};
    float dst[12];
    nn_vit_images_from_u8(dst, src, 2, 1, 2);
    /* sample 0, channel 1, pixel 1 is src[1*3+1] = 20 */
    T_ASSERT_NEAR(dst[1 * 2 + 1], (20.0 / 255.0 - 0.4578275) / 0.26130258, 1e-5);
    T_ASSERT_NEAR(dst[0], (0.0 - 0.48145466) / 0.26862954, 1e-5);
    T_ASSERT_NEAR(dst[6 + 2 * 2 + 0], (1.0 - 0.40821073) / 0.27577711, 1e-5);
}

/* Loss as a function of the parameters, for the whole-model finite differences. */
static double model_loss(nn_vit_t *m, const float *img, const uint32_t *off, const uint32_t *ids)
{
    float loss;
    nn_vit_forward(m, img);
    T_ASSERT_OK(nn_vit_loss(m, off, ids, 0, &loss));
    return loss;
}

T_CASE(vit_whole_model_gradcheck)
{
    nn_vit_cfg_t c = tiny_cfg();
    nn_vit_t *m = NULL;
    T_ASSERT_OK(nn_vit_new(&c, &m));
    nn_vit_init(m, 42);
    /* LayerNorm affine and biases are 1/0 at init: randomise everything so every path of the
     * backward carries a gradient that a bug would change */
    core_rng_t r;
    core_rng_init(&r, 5, 5);
    for (size_t i = 0; i < nn_vit_num_tensors(m); i++) {
        nn_tensor_t t;
        T_ASSERT_OK(nn_vit_tensor(m, i, &t));
        if (t.is_buffer) {
            continue;
        }
        for (size_t k = 0; k < t.numel; k++) {
            ((float *)t.data)[k] += 0.3f * (float)core_rng_normal(&r);
        }
    }
    float img[2 * 3 * 8 * 8];
    rand_images(img, sizeof img / sizeof img[0], 9);
    static const uint32_t off[3] = {0, 3, 5};
    static const uint32_t ids[5] = {1, 4, 9, 0, 10};
    nn_vit_zero_grad(m);
    model_loss(m, img, off, ids);
    nn_vit_backward(m);
    double se_all = 0, sf_all = 0;
    for (size_t i = 0; i < nn_vit_num_tensors(m); i++) {
        nn_tensor_t t;
        T_ASSERT_OK(nn_vit_tensor(m, i, &t));
        if (t.is_buffer) {
            continue;
        }
        float *p = t.data;
        double se = 0, sf = 0, maxe = 0;
        size_t step = t.numel > 40 ? t.numel / 40 : 1;
        for (size_t k = 0; k < t.numel; k += step) {
            float x0 = p[k], eps = 1e-2f;
            p[k] = x0 + eps;
            double lp = model_loss(m, img, off, ids);
            p[k] = x0 - eps;
            double lm = model_loss(m, img, off, ids);
            p[k] = x0;
            double fd = (lp - lm) / ((double)(x0 + eps) - (double)(x0 - eps));
            double e = fabs(fd - (double)t.grad[k]);
            se += e * e;
            sf += fd * fd;
            maxe = e > maxe ? e : maxe;
        }
        printf("model gradcheck %-52s nmse=%.2e max_err=%.2e\n", t.name, sf > 0 ? se / sf : se,
               maxe);
        T_ASSERT(maxe < 2e-3);
        se_all += se;
        sf_all += sf;
    }
    T_ASSERT(sf_all > 0);
    T_ASSERT(se_all / sf_all < 1e-4);
    nn_vit_free(m);
}

T_CASE(vit_training_reduces_loss)
{
    nn_vit_cfg_t c = tiny_cfg();
    c.batch = 4;
    nn_vit_t *m = NULL;
    T_ASSERT_OK(nn_vit_new(&c, &m));
    nn_vit_init(m, 1);
    float img[4 * 3 * 8 * 8];
    rand_images(img, sizeof img / sizeof img[0], 2);
    static const uint32_t off[5] = {0, 3, 5, 7, 8};
    static const uint32_t ids[8] = {0, 2, 9, 0, 5, 0, 7, 3};
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    float first = 0, loss = 0;
    for (int s = 0; s < 60; s++) {
        T_ASSERT_OK(nn_vit_train_step(m, img, off, ids, 1, &opt, 3e-3f, &loss));
        if (s == 0) {
            first = loss;
        }
    }
    printf("loss %.4f -> %.4f\n", first, loss);
    T_ASSERT(isfinite(loss) && loss < 0.5f * first);
    T_ASSERT_EQ(nn_vit_opt_step(m), 60);
    nn_tensor_t t;
    T_ASSERT_OK(nn_vit_find(m, "num_samples", &t));
    T_ASSERT(*(double *)t.data == 60.0);
    T_ASSERT_OK(nn_vit_find(m, "cap_fq", &t));
    T_ASSERT(((double *)t.data)[0] == 60.0 * 0.75); /* id 0 in 3 of 4 samples each step */
    T_ASSERT(((double *)t.data)[1] == 0.0);
    /* bad labels are refused and change nothing */
    static const uint32_t bad_ids[8] = {0, 9, 2, 0, 5, 0, 7, 3}; /* row 0 unsorted */
    T_ASSERT_ERR(nn_vit_train_step(m, img, off, bad_ids, 1, &opt, 3e-3f, &loss), CORE_ECORRUPT);
    static const uint32_t big_ids[8] = {0, 2, 11, 0, 5, 0, 7, 3}; /* id >= V */
    T_ASSERT_ERR(nn_vit_train_step(m, img, off, big_ids, 1, &opt, 3e-3f, &loss), CORE_ECORRUPT);
    T_ASSERT_EQ(nn_vit_opt_step(m), 60);
    nn_vit_free(m);
}

T_CASE(vit_forward_deterministic)
{
    nn_vit_cfg_t c = tiny_cfg();
    nn_vit_t *a = NULL, *b = NULL;
    T_ASSERT_OK(nn_vit_new(&c, &a));
    T_ASSERT_OK(nn_vit_new(&c, &b));
    nn_vit_init(a, 7);
    nn_vit_init(b, 7);
    float img[2 * 3 * 8 * 8];
    rand_images(img, sizeof img / sizeof img[0], 4);
    nn_vit_forward(a, img);
    nn_vit_forward(b, img);
    T_ASSERT(memcmp(nn_vit_logits(a), nn_vit_logits(b), 2 * 11 * sizeof(float)) == 0);
    nn_vit_init(b, 8);
    nn_vit_forward(b, img);
    T_ASSERT(memcmp(nn_vit_logits(a), nn_vit_logits(b), 2 * 11 * sizeof(float)) != 0);
    nn_vit_free(a);
    nn_vit_free(b);
    nn_vit_free(NULL);
}

T_CASE(vit_threads_match)
{
    /* the same two training steps with 1 and 2 threads (pool + OpenBLAS) agree; only the
     * GEMMs' summation order may differ */
    nn_vit_cfg_t c = {.image_size = 32, .patch = 4, .width = 64, .depth = 2, .heads = 2,
                      .mlp_hidden = 256, .vocab = 1000, .batch = 8};
    nn_vit_t *m[2] = {NULL, NULL};
    float *img = core_malloc(8 * 3 * 32 * 32 * sizeof(float));
    rand_images(img, 8 * 3 * 32 * 32, 11);
    uint32_t off[9], ids[8 * 5];
    for (int i = 0; i <= 8; i++) {
        off[i] = (uint32_t)(5 * i);
    }
    for (int i = 0; i < 40; i++) {
        ids[i] = (uint32_t)((i % 5) * 150 + i / 5);
    }
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    float loss[2];
    for (int k = 0; k < 2; k++) {
        nn_blas_set_threads(k + 1);
        T_ASSERT_EQ(nn_threads(), k + 1);
        T_ASSERT_OK(nn_vit_new(&c, &m[k]));
        nn_vit_init(m[k], 3);
        for (int s = 0; s < 2; s++) {
            T_ASSERT_OK(nn_vit_train_step(m[k], img, off, ids, 1, &opt, 1e-3f, &loss[k]));
        }
    }
    nn_blas_set_threads(1);
    T_ASSERT_NEAR(loss[0], loss[1], 1e-5);
    for (size_t i = 0; i < nn_vit_num_tensors(m[0]); i++) {
        nn_tensor_t a, b;
        T_ASSERT_OK(nn_vit_tensor(m[0], i, &a));
        T_ASSERT_OK(nn_vit_tensor(m[1], i, &b));
        if (a.is_buffer) {
            T_ASSERT(memcmp(a.data, b.data, a.numel * sizeof(double)) == 0);
            continue;
        }
        for (size_t e = 0; e < a.numel; e++) {
            float x = ((float *)a.data)[e], y = ((float *)b.data)[e];
            if (!(fabsf(x - y) <= 1e-5f + 1e-4f * fabsf(x))) {
                T_FAIL("%s[%zu]: %g vs %g", a.name, e, x, y);
            }
        }
    }
    nn_vit_free(m[0]);
    nn_vit_free(m[1]);
    core_free(img);
}

/* ---- loss --------------------------------------------------------------------------------- */

T_CASE(loss_worked_example)
{
    /* spec 2.5: W=1, B=2, t=1; "a photo of a cat" and "a dog" */
    enum { V = 49408 };
    static const uint32_t off[3] = {0, 7, 12};
    static const uint32_t ids[12] = {0, 320, 539, 1125, 2368, 49406, 49407,
                                     0, 320, 1929, 49406, 49407};
    double *cap = core_calloc(V, sizeof(double));
    double ns = 0.0;
    uint32_t *counts = core_calloc(V, sizeof(uint32_t));
    float *logits = core_calloc(2 * (size_t)V, sizeof(float));
    float *dl = core_malloc(2 * (size_t)V * sizeof(float));
    float tw[12], loss;
    nn_idf_t idf = {cap, &ns, V};
    T_ASSERT_OK(nn_labels_check(off, ids, 2, V));
    nn_sc_loss(&loss, dl, logits, off, ids, 2, V, &idf, 1, counts, tw);
    T_ASSERT(ns == 1.0);
    T_ASSERT(cap[0] == 1.0 && cap[320] == 1.0 && cap[49406] == 1.0 && cap[49407] == 1.0);
    T_ASSERT(cap[539] == 0.5 && cap[1929] == 0.5 && cap[1] == 0.0);
    /* weights 0 for DF=2 ids, ln(3/2) for the others; L1-normalised */
    const float third = 1.0f / 3.0f;
    const float expect[12] = {0, 0, third, third, third, 0, 0, 0, 0, 1, 0, 0};
    for (int j = 0; j < 12; j++) {
        T_ASSERT_NEAR(tw[j], expect[j], 1e-7);
    }
    for (uint32_t c = 0; c < V; c++) {
        T_ASSERT(counts[c] == 0); /* scratch left zeroed */
    }
    /* zero logits: log softmax = -ln V everywhere, so each loss is ln V */
    T_ASSERT_NEAR(loss, log((double)V), 1e-5);
    /* dlogits = (softmax - target) / B */
    T_ASSERT_NEAR(dl[539], (1.0 / V - 1.0 / 3.0) / 2.0, 1e-8);
    T_ASSERT_NEAR(dl[0], (1.0 / V) / 2.0, 1e-9);
    T_ASSERT_NEAR(dl[(size_t)V + 1929], (1.0 / V - 1.0) / 2.0, 1e-7);
    /* step 2 with the same batch: DF doubles; weights ln((2*2+1)/(DF+1)) */
    nn_sc_loss(&loss, dl, logits, off, ids, 2, V, &idf, 1, counts, tw);
    T_ASSERT(ns == 2.0 && cap[539] == 1.0 && cap[0] == 2.0);
    T_ASSERT_NEAR(tw[2], third, 1e-7);
    /* IDF off: uniform over the set, statistics untouched */
    nn_sc_loss(&loss, dl, logits, off, ids, 2, V, &idf, 0, counts, tw);
    T_ASSERT(ns == 2.0 && cap[539] == 1.0);
    T_ASSERT_NEAR(tw[0], 1.0 / 7.0, 1e-7);
    T_ASSERT_NEAR(tw[9], 1.0 / 5.0, 1e-7);
    core_free(cap);
    core_free(counts);
    core_free(logits);
    core_free(dl);
}

T_CASE(loss_all_common_tokens_row)
{
    /* a row whose every id is in every sample has all weights 0: target 0, loss 0, grad 0 */
    enum { V = 50 };
    static const uint32_t off[3] = {0, 2, 5};
    static const uint32_t ids[5] = {3, 7, 3, 7, 9};
    double cap[V] = {0}, ns = 0;
    uint32_t counts[V] = {0};
    float logits[2 * V], dl[2 * V], tw[5], loss;
    for (int i = 0; i < 2 * V; i++) {
        logits[i] = (float)(i % 7) * 0.3f;
    }
    nn_idf_t idf = {cap, &ns, V};
    nn_sc_loss(&loss, dl, logits, off, ids, 2, V, &idf, 1, counts, tw);
    T_ASSERT(tw[0] == 0.0f && tw[1] == 0.0f);
    T_ASSERT_NEAR(tw[4], 1.0, 1e-7);
    for (int c = 0; c < V; c++) {
        T_ASSERT(dl[c] == 0.0f);
    }
    /* the batch loss is row 1's loss / 2: -log softmax(z_1)[9] / 2 */
    double mx = 0, s = 0;
    for (int c = 0; c < V; c++) {
        mx = fmax(mx, logits[V + c]);
    }
    for (int c = 0; c < V; c++) {
        s += exp(logits[V + c] - mx);
    }
    T_ASSERT_NEAR(loss, 0.5 * (mx + log(s) - logits[V + 9]), 1e-5);
}

T_CASE(labels_check)
{
    static const uint32_t off[3] = {0, 2, 3};
    static const uint32_t good[3] = {1, 4, 0};
    static const uint32_t dup[3] = {4, 4, 0};
    static const uint32_t big[3] = {1, 10, 0};
    static const uint32_t off_bad[3] = {1, 2, 3};
    static const uint32_t off_dec[3] = {0, 3, 2};
    T_ASSERT_OK(nn_labels_check(off, good, 2, 10));
    T_ASSERT_ERR(nn_labels_check(off, dup, 2, 10), CORE_ECORRUPT);
    T_ASSERT_ERR(nn_labels_check(off, big, 2, 10), CORE_ECORRUPT);
    T_ASSERT_ERR(nn_labels_check(off_bad, good, 2, 10), CORE_ECORRUPT);
    T_ASSERT_ERR(nn_labels_check(off_dec, good, 2, 10), CORE_ECORRUPT);
}

/* ---- AdamW and schedule ------------------------------------------------------------------- */

T_CASE(adamw_matches_formula)
{
    float p[2] = {1.0f, -0.5f}, m[2] = {0}, v[2] = {0};
    double P[2] = {1.0, -0.5}, M[2] = {0}, Vv[2] = {0};
    const float g[3][2] = {{0.1f, -0.2f}, {0.3f, 0.05f}, {-0.4f, 0.0f}};
    double lr = 1e-2, wd = 0.2, b1 = 0.9, b2 = 0.98, eps = 1e-6;
    for (int t = 1; t <= 3; t++) {
        nn_adamw_update(p, m, v, g[t - 1], 2, (float)lr, (float)wd, (float)b1, (float)b2,
                        (float)eps, t, 1.0f);
        for (int i = 0; i < 2; i++) {
            double gi = g[t - 1][i];
            P[i] *= 1.0 - lr * wd;
            M[i] = b1 * M[i] + (1 - b1) * gi;
            Vv[i] = b2 * Vv[i] + (1 - b2) * gi * gi;
            double mh = M[i] / (1 - pow(b1, t)), vh = Vv[i] / (1 - pow(b2, t));
            P[i] -= lr * mh / (sqrt(vh) + eps);
            T_ASSERT_NEAR(p[i], P[i], 2e-6);
        }
    }
    /* no decay (wd 0) and zero gradient: the parameter moves only by momentum */
    float q[1] = {2.0f}, qm[1] = {0}, qv[1] = {0}, z[1] = {0};
    nn_adamw_update(q, qm, qv, z, 1, 0.1f, 0.0f, 0.9f, 0.98f, 1e-6f, 1, 1.0f);
    T_ASSERT(q[0] == 2.0f);
    nn_adamw_update(q, qm, qv, z, 1, 0.1f, 0.5f, 0.9f, 0.98f, 1e-6f, 2, 1.0f);
    T_ASSERT_NEAR(q[0], 2.0 * 0.95, 1e-6);
}

T_CASE(lr_schedule)
{
    T_ASSERT_NEAR(nn_lr_schedule(5e-4f, 500, 31254, 0), 5e-4 / 500, 1e-12);
    T_ASSERT_NEAR(nn_lr_schedule(5e-4f, 500, 31254, 499), 5e-4, 1e-10);
    T_ASSERT_NEAR(nn_lr_schedule(5e-4f, 500, 31254, 500), 5e-4, 1e-10);
    T_ASSERT_NEAR(nn_lr_schedule(1.0f, 10, 110, 60), 0.5, 1e-6);
    T_ASSERT_NEAR(nn_lr_schedule(1.0f, 10, 110, 35), 0.5 * (1 + cos(M_PI * 0.25)), 1e-6);
    T_ASSERT(nn_lr_schedule(1.0f, 10, 110, 110) == 0.0f);
    T_ASSERT(nn_lr_schedule(1.0f, 10, 110, 500) == 0.0f);
}

T_CASE(adamw_decay_flags_and_clipping)
{
    nn_vit_cfg_t c = tiny_cfg();
    nn_vit_t *m = NULL;
    T_ASSERT_OK(nn_vit_new(&c, &m));
    nn_vit_init(m, 3);
    /* zero gradients: only decoupled decay moves parameters, and only the decayed ones */
    nn_tensor_t pos, cls, lnw, hw;
    T_ASSERT_OK(nn_vit_find(m, "visual.positional_embedding", &pos));
    T_ASSERT_OK(nn_vit_find(m, "visual.class_embedding", &cls));
    T_ASSERT_OK(nn_vit_find(m, "visual.ln_pre.weight", &lnw));
    T_ASSERT_OK(nn_vit_find(m, "text_decoder.text_projection.weight", &hw));
    float pos0 = ((float *)pos.data)[3], cls0 = ((float *)cls.data)[3];
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    T_ASSERT(opt.weight_decay == 0.2f && opt.eps == 1e-6f && opt.clip_norm == 0.0f);
    nn_vit_zero_grad(m);
    double norm = -1;
    nn_vit_adamw_step(m, &opt, 0.1f, &norm);
    T_ASSERT(norm == 0.0);
    T_ASSERT_NEAR(((float *)pos.data)[3], pos0 * (1.0f - 0.1f * 0.2f), 1e-7);
    T_ASSERT(((float *)cls.data)[3] == cls0);
    T_ASSERT(((float *)lnw.data)[0] == 1.0f);
    /* clipping: gradient norm 10 clipped to 1 gives the same Adam step direction but moments
     * built from the clipped gradient */
    nn_vit_zero_grad(m);
    hw.grad[0] = 6.0f;
    hw.grad[1] = 8.0f;
    opt.clip_norm = 1.0f;
    nn_vit_adamw_step(m, &opt, 0.1f, &norm);
    T_ASSERT_NEAR(norm, 10.0, 1e-9);
    T_ASSERT_NEAR(hw.m[0], 0.1 * 0.6, 1e-6);
    T_ASSERT_NEAR(hw.m[1], 0.1 * 0.8, 1e-6);
    nn_vit_free(m);
}

T_MAIN()
