/* Checkpoint I/O on top of safetensors (nn/ckpt.h): weights, AdamW moments under
 * optimizer.exp_avg[_sq].<name>, IDF buffers as F64, caller metadata. Loading validates the whole
 * file against the model's tensor table before it copies a single byte, so a mismatched file never
 * leaves a half-loaded model. */
#include "nn/ckpt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

/* "prefix" + "name" into a fresh core_malloc'd string. */
static char *ck_cat(const char *prefix, const char *name)
{
    size_t a = strlen(prefix), b = strlen(name);
    char *s = core_malloc(a + b + 1);
    if (s != NULL) {
        memcpy(s, prefix, a);
        memcpy(s + a, name, b + 1);
    }
    return s;
}

int nn_ckpt_save(const char *path, const nn_ckpt_entry_t *entries, size_t n,
                 const nn_st_meta_t *meta, size_t n_meta, char *err, size_t errlen)
{
    int rc = 0;
    nn_st_desc_t *d = NULL;
    char **names = NULL;
    size_t nd = 0, nnames = 0;
    nn_st_meta_t *m = core_calloc(n_meta + 2, sizeof *m);
    char ver[16];
    size_t cap;
    CORE_FAIL_IF(m == NULL, CORE_ERR(ENOMEM));
    CORE_FAIL_IF(core_size_mul(n ? n : 1, 3, &cap) != 0, CORE_ETOO_LARGE);
    d = core_calloc(cap, sizeof *d);
    names = core_calloc(cap, sizeof *names);
    CORE_FAIL_IF(d == NULL || names == NULL, CORE_ERR(ENOMEM));
    for (size_t i = 0; i < n_meta; i++) {
        if (meta[i].key == NULL || strcmp(meta[i].key, "format") == 0 ||
            strcmp(meta[i].key, "format_version") == 0) {
            if (err != NULL && errlen > 0) {
                snprintf(err, errlen, "metadata key \"%.200s\" is reserved",
                         meta[i].key ? meta[i].key : "(null)");
            }
            CORE_FAIL_IF(1, CORE_ECONFIG);
        }
        m[i] = meta[i];
    }
    snprintf(ver, sizeof ver, "%d", NN_CKPT_VERSION);
    m[n_meta] = (nn_st_meta_t){"format", NN_CKPT_FORMAT};
    m[n_meta + 1] = (nn_st_meta_t){"format_version", ver};
    for (size_t i = 0; i < n; i++) {
        const nn_ckpt_entry_t *e = &entries[i];
        size_t base = nd;
        d[nd++] =
            (nn_st_desc_t){.name = e->name, .dtype = e->dtype, .rank = e->rank, .data = e->data};
        memcpy(d[base].shape, e->shape, sizeof e->shape);
        const void *mom[2] = {e->exp_avg, e->exp_avg_sq};
        const char *pre[2] = {NN_CKPT_PREFIX_M, NN_CKPT_PREFIX_V};
        for (int k = 0; k < 2; k++) {
            if (mom[k] == NULL) {
                continue;
            }
            CORE_FAIL_IF(e->name == NULL, CORE_ECONFIG);
            names[nnames] = ck_cat(pre[k], e->name);
            CORE_FAIL_IF(names[nnames] == NULL, CORE_ERR(ENOMEM));
            d[nd] = d[base];
            d[nd].name = names[nnames++];
            d[nd].data = mom[k];
            nd++;
        }
    }
    rc = nn_st_write_file(path, d, nd, m, n_meta + 2, err, errlen);
fail:
    for (size_t i = 0; i < nnames; i++) {
        core_free(names[i]);
    }
    core_free(names);
    core_free(d);
    core_free(m);
    return rc;
}

/* The file's tensor for `name`: as is, else under DDP's "module." prefix. */
static const nn_st_tensor_t *ck_find(const nn_st_file_t *f, const char *name, char *tmp,
                                     size_t tmpcap)
{
    const nn_st_tensor_t *t = nn_st_find(f, name);
    if (t == NULL && (size_t)snprintf(tmp, tmpcap, "module.%s", name) < tmpcap) {
        t = nn_st_find(f, tmp);
    }
    return t;
}

static int ck_expect(const nn_st_file_t *f, const char *name, const nn_ckpt_entry_t *e,
                     const nn_st_tensor_t **out, char *err, size_t errlen)
{
    char tmp[NN_ST_MAX_NAME + 16];
    const nn_st_tensor_t *t = ck_find(f, name, tmp, sizeof tmp);
    return nn_st_expect(f, t != NULL ? t->name : name, e->dtype, e->rank, e->shape, out, err,
                        errlen);
}

static int ck_is_optimizer(const char *name)
{
    const char *s = strncmp(name, "module.", 7) == 0 ? name + 7 : name;
    return strncmp(s, "optimizer.", 10) == 0;
}

/* Whether the file tensor `fname` is asked for by some entry (or its moments). */
static int ck_wanted(const char *fname, const nn_ckpt_entry_t *entries, size_t n, unsigned flags)
{
    const char *s = strncmp(fname, "module.", 7) == 0 ? fname + 7 : fname;
    size_t lm = strlen(NN_CKPT_PREFIX_M), lv = strlen(NN_CKPT_PREFIX_V);
    int which = 0;
    if (strncmp(s, NN_CKPT_PREFIX_V, lv) == 0) {
        s += lv;
        which = 2;
    } else if (strncmp(s, NN_CKPT_PREFIX_M, lm) == 0) {
        s += lm;
        which = 1;
    }
    if (which != 0 && (flags & NN_CKPT_WEIGHTS_ONLY)) {
        return 1; /* ignored, not extra */
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(entries[i].name, s) == 0) {
            return which == 0 ||
                   (which == 1 ? entries[i].exp_avg != NULL : entries[i].exp_avg_sq != NULL);
        }
    }
    return 0;
}

int nn_ckpt_check(const nn_st_file_t *f, const nn_ckpt_entry_t *entries, size_t n, unsigned flags,
                  char *err, size_t errlen)
{
    int rc;
    const char *fmt = nn_st_meta_get(f, "format");
    if (fmt != NULL && strcmp(fmt, NN_CKPT_FORMAT) != 0) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "file format \"%.100s\", expected \"%s\"", fmt, NN_CKPT_FORMAT);
        }
        return CORE_EBAD_MAGIC;
    }
    const char *ver = nn_st_meta_get(f, "format_version");
    if (ver != NULL && atoi(ver) > NN_CKPT_VERSION) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "format version %.20s is newer than %d", ver, NN_CKPT_VERSION);
        }
        return CORE_EBAD_VERSION;
    }
    for (size_t i = 0; i < n; i++) {
        const nn_ckpt_entry_t *e = &entries[i];
        rc = ck_expect(f, e->name, e, NULL, err, errlen);
        if (rc != 0) {
            return rc;
        }
        if (flags & NN_CKPT_WEIGHTS_ONLY) {
            continue;
        }
        const void *mom[2] = {e->exp_avg, e->exp_avg_sq};
        const char *pre[2] = {NN_CKPT_PREFIX_M, NN_CKPT_PREFIX_V};
        for (int k = 0; k < 2; k++) {
            if (mom[k] == NULL) {
                continue;
            }
            char name[NN_ST_MAX_NAME + 32];
            if ((size_t)snprintf(name, sizeof name, "%s%s", pre[k], e->name) >= sizeof name) {
                name[0] = '\0'; /* too long to be in any file: reported as not found */
            }
            rc = ck_expect(f, name, e, NULL, err, errlen);
            if (rc != 0) {
                return rc;
            }
        }
    }
    if (!(flags & NN_CKPT_ALLOW_EXTRA)) {
        for (size_t i = 0; i < nn_st_count(f); i++) {
            const char *fname = nn_st_at(f, i)->name;
            if (!ck_wanted(fname, entries, n, flags) &&
                !(ck_is_optimizer(fname) && (flags & NN_CKPT_WEIGHTS_ONLY))) {
                if (err != NULL && errlen > 0) {
                    snprintf(err, errlen, "tensor \"%.300s\" in the file is not part of the model",
                             fname);
                }
                return CORE_EMISMATCH;
            }
        }
    }
    return 0;
}

int nn_ckpt_load(const char *path, const nn_ckpt_entry_t *entries, size_t n, unsigned flags,
                 nn_st_file_t **file_out, char *err, size_t errlen)
{
    nn_st_file_t *f = NULL;
    if (file_out != NULL) {
        *file_out = NULL;
    }
    int rc = nn_st_open(path, NULL, &f, err, errlen);
    if (rc != 0) {
        return rc;
    }
    rc = nn_ckpt_check(f, entries, n, flags, err, errlen);
    if (rc != 0) {
        nn_st_close(f);
        return rc;
    }
    /* Everything matched: copy. */
    char tmp[NN_ST_MAX_NAME + 16];
    for (size_t i = 0; i < n; i++) {
        const nn_ckpt_entry_t *e = &entries[i];
        const nn_st_tensor_t *t = ck_find(f, e->name, tmp, sizeof tmp);
        if (t->nbytes > 0) {
            memcpy(e->data, t->data, t->nbytes);
        }
        if (flags & NN_CKPT_WEIGHTS_ONLY) {
            continue;
        }
        void *mom[2] = {e->exp_avg, e->exp_avg_sq};
        const char *pre[2] = {NN_CKPT_PREFIX_M, NN_CKPT_PREFIX_V};
        for (int k = 0; k < 2; k++) {
            if (mom[k] == NULL) {
                continue;
            }
            char name[NN_ST_MAX_NAME + 32];
            snprintf(name, sizeof name, "%s%s", pre[k], e->name); /* fits: checked above */
            t = ck_find(f, name, tmp, sizeof tmp);
            if (t->nbytes > 0) {
                memcpy(mom[k], t->data, t->nbytes);
            }
        }
    }
    if (file_out != NULL) {
        *file_out = f;
    } else {
        nn_st_close(f);
    }
    return 0;
}

/* ---- the ViT ------------------------------------------------------------------------------- */

int nn_ckpt_vit_entries(const nn_vit_t *m, nn_ckpt_entry_t **out, size_t *n_out)
{
    size_t n = nn_vit_num_tensors(m);
    nn_ckpt_entry_t *e = core_calloc(n ? n : 1, sizeof *e);
    *out = NULL;
    *n_out = 0;
    if (e == NULL) {
        return CORE_ERR(ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        int rc = nn_vit_tensor(m, i, &t);
        if (rc != 0) {
            core_free(e);
            return rc;
        }
        e[i].name = t.name;
        e[i].dtype = t.dtype == NN_DTYPE_F64 ? NN_ST_F64 : NN_ST_F32;
        e[i].rank = t.ndim;
        for (int d = 0; d < t.ndim && d < NN_ST_MAX_RANK; d++) {
            e[i].shape[d] = t.shape[d];
        }
        e[i].data = t.data;
        e[i].exp_avg = t.is_buffer ? NULL : t.m;
        e[i].exp_avg_sq = t.is_buffer ? NULL : t.v;
    }
    *out = e;
    *n_out = n;
    return 0;
}

int nn_ckpt_save_with_step(const char *path, const nn_ckpt_entry_t *e, size_t n,
                           int64_t opt_step, const nn_st_meta_t *meta, size_t n_meta, char *err,
                           size_t errlen)
{
    int rc = 0;
    char step[32];
    nn_st_meta_t *all = core_calloc(n_meta + 1, sizeof *all);
    CORE_FAIL_IF(all == NULL, CORE_ERR(ENOMEM));
    for (size_t i = 0; i < n_meta; i++) {
        if (meta[i].key != NULL && strcmp(meta[i].key, NN_CKPT_META_OPT_STEP) == 0) {
            if (err != NULL && errlen > 0) {
                snprintf(err, errlen, "metadata key \"%s\" is reserved", NN_CKPT_META_OPT_STEP);
            }
            CORE_FAIL_IF(1, CORE_ECONFIG);
        }
        all[i] = meta[i];
    }
    snprintf(step, sizeof step, "%" PRId64, opt_step);
    all[n_meta] = (nn_st_meta_t){NN_CKPT_META_OPT_STEP, step};
    rc = nn_ckpt_save(path, e, n, all, n_meta + 1, err, errlen);
fail:
    core_free(all);
    return rc;
}

int nn_ckpt_load_with_step(const char *path, const nn_ckpt_entry_t *e, size_t n, unsigned flags,
                           int64_t *opt_step, nn_st_file_t **file_out, char *err, size_t errlen)
{
    int rc = 0;
    nn_st_file_t *f = NULL;
    if (file_out != NULL) {
        *file_out = NULL;
    }
    /* Check everything, the step included, before the model is touched. */
    CORE_TRY(nn_st_open(path, NULL, &f, err, errlen));
    CORE_TRY(nn_ckpt_check(f, e, n, flags, err, errlen));
    int64_t step = 0;
    if (!(flags & NN_CKPT_WEIGHTS_ONLY)) {
        const char *s = nn_st_meta_get(f, NN_CKPT_META_OPT_STEP);
        char *end = NULL;
        long long v = s != NULL ? strtoll(s, &end, 10) : -1;
        if (s == NULL || end == s || *end != '\0' || v < 0) {
            if (err != NULL && errlen > 0) {
                snprintf(err, errlen, "metadata \"%s\" missing or invalid: cannot resume AdamW",
                         NN_CKPT_META_OPT_STEP);
            }
            CORE_FAIL_IF(1, s == NULL ? CORE_ENOT_FOUND : CORE_ECORRUPT);
        }
        step = (int64_t)v;
    }
    nn_st_close(f);
    f = NULL;
    CORE_TRY(nn_ckpt_load(path, e, n, flags, file_out, err, errlen));
    if (!(flags & NN_CKPT_WEIGHTS_ONLY)) {
        *opt_step = step;
    }
fail:
    nn_st_close(f);
    return rc;
}

int nn_ckpt_vit_save(const char *path, const nn_vit_t *m, const nn_st_meta_t *meta, size_t n_meta,
                     char *err, size_t errlen)
{
    int rc = 0;
    nn_ckpt_entry_t *e = NULL;
    size_t n = 0;
    CORE_TRY(nn_ckpt_vit_entries(m, &e, &n));
    rc = nn_ckpt_save_with_step(path, e, n, nn_vit_opt_step(m), meta, n_meta, err, errlen);
fail:
    core_free(e);
    return rc;
}

int nn_ckpt_vit_load(const char *path, nn_vit_t *m, unsigned flags, nn_st_file_t **file_out,
                     char *err, size_t errlen)
{
    int rc = 0;
    nn_ckpt_entry_t *e = NULL;
    size_t n = 0;
    int64_t step = nn_vit_opt_step(m);
    CORE_TRY(nn_ckpt_vit_entries(m, &e, &n));
    CORE_TRY(nn_ckpt_load_with_step(path, e, n, flags, &step, file_out, err, errlen));
    nn_vit_set_opt_step(m, step);
fail:
    core_free(e);
    return rc;
}
