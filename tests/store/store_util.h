/* Helpers shared by the store tests: synthetic records and batches. */
#ifndef T_STORE_UTIL_H
#define T_STORE_UTIL_H

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "t.h"

/* Encodes a small synthetic record whose content depends on `i` (caller frees). */
static inline uint8_t *tst_record(uint64_t i, size_t img_len, size_t *n)
{
    uint32_t toks[4] = {49406, (uint32_t)(100 + i % 1000), (uint32_t)(2000 + i % 7), 49407};
    char cap[64], key[32];
    snprintf(cap, sizeof(cap), "caption number %llu", (unsigned long long)i);
    snprintf(key, sizeof(key), "%06llu", (unsigned long long)i);
    uint8_t *img = core_malloc(img_len);
    T_ASSERT(img != NULL);
    for (size_t k = 0; k < img_len; k++) {
        img[k] = (uint8_t)(i * 31 + k * 7);
    }
    img[0] = 0xFF;
    pl_record_in_t in = {
        .tokens = toks,
        .n_tokens = 4,
        .caption = cap,
        .caption_len = strlen(cap),
        .image = img,
        .image_len = img_len,
        .format = PL_IMG_JPEG,
        .width = 8,
        .height = 8,
        .source_file = "synthetic.tar",
        .member_key = key,
        .sample_index = i,
    };
    size_t bound = 0;
    T_ASSERT_OK(pl_record_bound(&in, &bound));
    uint8_t *buf = core_malloc(bound);
    T_ASSERT(buf != NULL);
    T_ASSERT_OK(pl_record_encode(&in, buf, bound, n));
    core_free(img);
    return buf;
}

/* Commits records [from, to) of a synthetic file with identity byte `fid` and progress `to`. */
static inline int tst_commit(pl_store_t *st, uint8_t fid, uint64_t from, uint64_t to,
                             size_t img_len, int done)
{
    size_t n = (size_t)(to - from);
    uint8_t **recs = core_calloc(n ? n : 1, sizeof(*recs));
    size_t *lens = core_calloc(n ? n : 1, sizeof(*lens));
    for (size_t i = 0; i < n; i++) {
        recs[i] = tst_record(from + i, img_len, &lens[i]);
    }
    pl_file_progress_t p;
    memset(&p, 0, sizeof(p));
    memset(p.id, fid, sizeof(p.id));
    p.next_sample = to;
    p.n_kept = to;
    p.state = done ? PL_FILE_DONE : PL_FILE_PARTIAL;
    snprintf(p.name, sizeof(p.name), "file-%u.tar", fid);
    pl_store_batch_t b = {(const uint8_t *const *)recs, lens, n, NULL, 0, &p};
    int rc = pl_store_commit(st, &b, NULL);
    for (size_t i = 0; i < n; i++) {
        core_free(recs[i]);
    }
    core_free(recs);
    core_free(lens);
    return rc;
}

#endif
