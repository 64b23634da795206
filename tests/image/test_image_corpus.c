/* Slow: every image of ../shared/data/corpus must pass verify=full (no false rejections from the
 * warnings-as-errors rule or the limits), and decode+augment must accept it in train and eval. */
#include <dirent.h>

#include "core/alloc.h"
#include "pipeline/augment.h"
#include "pipeline/image.h"
#include "t.h"

static int is_image(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot != NULL &&
           (strcmp(dot, ".jpg") == 0 || strcmp(dot, ".png") == 0 || strcmp(dot, ".webp") == 0);
}

static size_t check_tar(pl_img_ctx_t *ctx, const char *path, size_t *formats)
{
    size_t tl, n = 0;
    uint8_t *tar = (uint8_t *)t_read_file(path, &tl);
    uint8_t *out = core_malloc(64 * 64 * 3);
    core_rng_t rng;
    core_rng_init(&rng, 3, 0);
    for (size_t pos = 0; pos + 512 <= tl;) {
        const uint8_t *h = tar + pos;
        if (h[0] == 0) {
            break;
        }
        char name[101];
        memcpy(name, h, 100);
        name[100] = 0;
        size_t size = 0;
        for (int i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++) {
            size = size * 8 + (size_t)(h[i] - '0');
        }
        const uint8_t *d = h + 512;
        T_ASSERT(pos + 512 + size <= tl);
        if (is_image(name)) {
            pl_img_info_t info;
            pl_img_err_t err;
            if (pl_img_verify(ctx, d, size, NULL, &info, &err) != 0) {
                T_FAIL("%s: %s: %s", path, name, err.text);
            }
            formats[info.format]++;
            pl_aug_t aug;
            pl_aug_defaults(&aug);
            aug.out_w = aug.out_h = 64;
            aug.flip = 1;
            for (int train = 0; train < 2; train++) {
                aug.train = train;
                if (pl_img_decode_augment(ctx, d, size, NULL, &aug, &rng, out, 64 * 64 * 3, NULL,
                                          &err) != 0) {
                    T_FAIL("%s: %s (augment, train %d): %s", path, name, train, err.text);
                }
            }
            n++;
        }
        pos += 512 + (size + 511) / 512 * 512;
    }
    core_free(out);
    core_free(tar);
    return n;
}

T_CASE(corpus_all_verify)
{
    const char *root = t_shared("corpus");
    char rootbuf[4096];
    snprintf(rootbuf, sizeof rootbuf, "%s", root);
    DIR *d = opendir(rootbuf);
    T_ASSERT(d != NULL);
    pl_img_ctx_t *ctx;
    T_ASSERT_OK(pl_img_ctx_new(&ctx));
    size_t total = 0, formats[4] = {0, 0, 0, 0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char sub[4352];
        snprintf(sub, sizeof sub, "%s/%s", rootbuf, e->d_name);
        DIR *s = opendir(sub);
        if (s == NULL) {
            continue;
        }
        struct dirent *f;
        while ((f = readdir(s)) != NULL) {
            size_t l = strlen(f->d_name);
            if (l > 4 && strcmp(f->d_name + l - 4, ".tar") == 0) {
                char path[4608];
                snprintf(path, sizeof path, "%s/%s", sub, f->d_name);
                total += check_tar(ctx, path, formats);
            }
        }
        closedir(s);
    }
    closedir(d);
    pl_img_ctx_free(ctx);
    printf("verified %zu images: %zu jpeg, %zu png, %zu webp\n", total, formats[PL_IMG_JPEG],
           formats[PL_IMG_PNG], formats[PL_IMG_WEBP]);
    T_ASSERT(total > 15000);
    T_ASSERT(formats[PL_IMG_JPEG] > 0 && formats[PL_IMG_PNG] > 0 && formats[PL_IMG_WEBP] > 0);
}

T_MAIN()
