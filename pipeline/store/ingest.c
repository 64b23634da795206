/* Webdataset ingest: libarchive member walk, adjacent-key grouping, sample validation, record
 * encoding and batched exactly-once commits (pipeline/ingest.h, docs/FORMAT.md §4). */
#include "pipeline/ingest.h"

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "pipeline/image.h"
#include "pipeline/record.h"
#include "ingest_internal.h"

static const char *const reject_names[] = {
#define PL__REJECT_NAME(name, str) str,
    PL_REJECT_REASON_MAP(PL__REJECT_NAME)
#undef PL__REJECT_NAME
};

const char *pl_reject_name(uint32_t reason)
{
    return reason < PL_REJECT__COUNT ? reject_names[reason] : "?";
}

int pl_reject_from_name(const char *name)
{
    for (int i = 0; i < PL_REJECT__COUNT; i++) {
        if (strcmp(reject_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

void pl_ingest_opts_default(pl_ingest_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->batch_records = 512;
    o->batch_bytes = 32u << 20;
    o->log_rejects = 1;
}

/* ---- one member's bytes ---- */

typedef struct buf_s {
    uint8_t *p;
    size_t len, cap;
    int present;
} buf_t;

static int buf_reserve(buf_t *b, size_t n)
{
    if (n <= b->cap) {
        return 0;
    }
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < n) {
        nc *= 2;
    }
    uint8_t *np = core_realloc(b->p, nc);
    if (np == NULL) {
        return CORE_ERR(ENOMEM);
    }
    b->p = np;
    b->cap = nc;
    return 0;
}

/* Image member slots in priority order. */
enum { SLOT_JPG, SLOT_JPEG, SLOT_PNG, SLOT_WEBP, SLOT_TXT, SLOT_JSON, N_SLOTS };
static const char *const slot_ext[N_SLOTS] = {"jpg", "jpeg", "png", "webp", "txt", "json"};

/* The sample being grouped. */
typedef struct group_s {
    char *key; /* core_malloc'd */
    uint64_t index;
    buf_t slot[N_SLOTS];
    uint32_t reject; /* set while reading: duplicate, too large, damaged */
    int has_members;
} group_t;

/* What one processing thread owns: decoders and scratch buffers, reused across samples. */
typedef struct wctx_s {
    pl_img_ctx_t *img;
    pl__verifier_t *verifier;
    uint8_t *enc; /* record encode scratch */
    size_t enc_cap;
    char *caption; /* caption scratch (json captions) */
    size_t caption_cap;
    double t_decode, t_tokenize, t_compress;
} wctx_t;

/* Outcome of one sample: kept, or rejected with reason and a detail text for the log. */
typedef struct verdict_s {
    uint32_t reason;
    char detail[192];
} verdict_t;

enum { JOB_FREE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* A sample in flight between the archive reader and the in-order committer. */
typedef struct job_s {
    group_t g;
    int seen, incomplete, prev_incomplete;
    uint64_t prev_index;
    int state;
    int rc;
    verdict_t v;
    uint8_t *rec; /* the encoded record when kept (core_malloc'd, handed to the batch) */
    size_t rec_len, img_len;
} job_t;

struct pl_ingest_s {
    pl_store_t *st;
    const pl_tok_t *tok;
    pl_ingest_opts_t opts;
    pl_store_policy_t policy;
    pl_img_limits_t lim;
    wctx_t *w; /* w[0] is the calling thread's; w[1..n_threads] the workers' */
    int n_threads;
    /* the window of samples in flight (a ring indexed by submission number) */
    job_t *ring;
    size_t ring_cap;
    uint64_t head, tail; /* next to commit, next to submit */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    pthread_t *th;
    int n_running_threads;
    int quit;
    const char *file_base;
    pl_ingest_stats_t stats;
    /* the batch of the current file */
    uint8_t **recs;
    size_t *rec_lens;
    size_t n_recs, cap_recs, batch_bytes;
    pl_store_reject_t *rejs;
    size_t n_rejs, cap_rejs;
    pl__keymap_t keys;
    group_t g;
};

int pl_ingest_new(pl_store_t *st, const pl_tok_t *tok, const pl_ingest_opts_t *opts,
                  pl_ingest_t **out)
{
    int rc = pl_store_check_vocab(st, pl_tok_hash(tok));
    if (rc < 0) {
        return rc;
    }
    pl_ingest_t *ing = core_calloc(1, sizeof(*ing));
    if (ing == NULL) {
        return CORE_ERR(ENOMEM);
    }
    ing->st = st;
    ing->tok = tok;
    if (opts) {
        ing->opts = *opts;
    } else {
        pl_ingest_opts_default(&ing->opts);
    }
    if (ing->opts.batch_records == 0) {
        ing->opts.batch_records = 512;
    }
    if (ing->opts.batch_bytes == 0) {
        ing->opts.batch_bytes = 32u << 20;
    }
    ing->policy = *pl_store_policy(st);
    ing->lim.max_side = ing->policy.max_dim;
    ing->lim.max_pixels = ing->policy.max_pixels;
    ing->n_threads =
        ing->opts.threads > 1 ? (ing->opts.threads > 256 ? 256 : ing->opts.threads) : 0;
    ing->ring_cap = ing->n_threads ? 2 * (size_t)ing->n_threads + 2 : 1;
    pthread_mutex_init(&ing->mu, NULL);
    pthread_cond_init(&ing->cv_work, NULL);
    pthread_cond_init(&ing->cv_done, NULL);
    ing->w = core_calloc((size_t)ing->n_threads + 1, sizeof(wctx_t));
    ing->ring = core_calloc(ing->ring_cap, sizeof(job_t));
    ing->th = core_calloc((size_t)ing->n_threads + 1, sizeof(pthread_t));
    if (ing->w == NULL || ing->ring == NULL || ing->th == NULL) {
        rc = CORE_ERR(ENOMEM);
    }
    for (int i = 0; rc == 0 && i <= ing->n_threads; i++) {
        rc = pl_img_ctx_new(&ing->w[i].img);
        if (rc == 0) {
            rc = pl__verifier_new(ing->w[i].img, &ing->w[i].verifier);
        }
    }
    if (rc < 0) {
        pl_ingest_free(ing);
        return rc;
    }
    *out = ing;
    return 0;
}

static void batch_clear(pl_ingest_t *ing)
{
    for (size_t i = 0; i < ing->n_recs; i++) {
        core_free(ing->recs[i]);
    }
    for (size_t i = 0; i < ing->n_rejs; i++) {
        core_free((char *)ing->rejs[i].key);
    }
    ing->n_recs = 0;
    ing->n_rejs = 0;
    ing->batch_bytes = 0;
}

static void group_reset(group_t *g)
{
    core_free(g->key);
    g->key = NULL;
    for (int i = 0; i < N_SLOTS; i++) {
        g->slot[i].len = 0;
        g->slot[i].present = 0;
    }
    g->reject = PL_REJECT_NONE;
    g->has_members = 0;
}

static void group_free(group_t *g)
{
    group_reset(g);
    for (int i = 0; i < N_SLOTS; i++) {
        core_free(g->slot[i].p);
        g->slot[i].p = NULL;
        g->slot[i].cap = 0;
    }
}

void pl_ingest_free(pl_ingest_t *ing)
{
    if (ing == NULL) {
        return;
    }
    batch_clear(ing);
    core_free(ing->recs);
    core_free(ing->rec_lens);
    core_free(ing->rejs);
    pl__keymap_free(&ing->keys);
    group_free(&ing->g);
    for (size_t i = 0; ing->ring && i < ing->ring_cap; i++) {
        group_free(&ing->ring[i].g);
        core_free(ing->ring[i].rec);
    }
    for (int i = 0; ing->w && i <= ing->n_threads; i++) {
        core_free(ing->w[i].enc);
        core_free(ing->w[i].caption);
        pl__verifier_free(ing->w[i].verifier);
        pl_img_ctx_free(ing->w[i].img);
    }
    core_free(ing->w);
    core_free(ing->ring);
    core_free(ing->th);
    pthread_mutex_destroy(&ing->mu);
    pthread_cond_destroy(&ing->cv_work);
    pthread_cond_destroy(&ing->cv_done);
    pl_record_thread_cleanup();
    core_free(ing);
}

const pl_ingest_stats_t *pl_ingest_stats(const pl_ingest_t *ing)
{
    return &ing->stats;
}

/* ---- batch ---- */

static int batch_add_reject(pl_ingest_t *ing, uint64_t index, uint32_t reason, const char *key)
{
    if (ing->n_rejs == ing->cap_rejs) {
        size_t nc = ing->cap_rejs ? ing->cap_rejs * 2 : 64;
        pl_store_reject_t *nr = core_realloc(ing->rejs, nc * sizeof(*nr));
        if (nr == NULL) {
            return CORE_ERR(ENOMEM);
        }
        ing->rejs = nr;
        ing->cap_rejs = nc;
    }
    char *k = core_strdup(key);
    if (k == NULL) {
        return CORE_ERR(ENOMEM);
    }
    ing->rejs[ing->n_rejs++] = (pl_store_reject_t){index, reason, k};
    return 0;
}

/* Takes ownership of `rec` (core_malloc'd) on success. */
static int batch_add_record(pl_ingest_t *ing, uint8_t *rec, size_t len)
{
    if (ing->n_recs == ing->cap_recs) {
        size_t nc = ing->cap_recs ? ing->cap_recs * 2 : 256;
        uint8_t **nr = core_realloc(ing->recs, nc * sizeof(*nr));
        if (nr == NULL) {
            return CORE_ERR(ENOMEM);
        }
        ing->recs = nr;
        size_t *nl = core_realloc(ing->rec_lens, nc * sizeof(*nl));
        if (nl == NULL) {
            return CORE_ERR(ENOMEM);
        }
        ing->rec_lens = nl;
        ing->cap_recs = nc;
    }
    ing->recs[ing->n_recs] = rec;
    ing->rec_lens[ing->n_recs++] = len;
    ing->batch_bytes += len;
    return 0;
}

static int batch_commit(pl_ingest_t *ing, const pl_file_progress_t *prog, const char *path)
{
    pl_store_batch_t b = {
        .recs = (const uint8_t *const *)ing->recs,
        .rec_lens = ing->rec_lens,
        .n_recs = ing->n_recs,
        .rejects = ing->rejs,
        .n_rejects = ing->n_rejs,
        .progress = prog,
    };
    uint64_t t0 = core_now_ns();
    int rc = pl_store_commit(ing->st, &b, NULL);
    ing->stats.t_lmdb += (double)(core_now_ns() - t0) * 1e-9;
    if (rc < 0) {
        if (rc == CORE_ERR(ENOSPC) || rc == CORE_ERR(EFBIG) || rc == CORE_EFULL) {
            core_log_err("%s: the store's disk is full (%s) while committing samples up to #%llu "
                         "of %s; the store stays consistent at the last commit. Free space and "
                         "run ingest again: it continues after the last committed sample.",
                         pl_store_dir(ing->st), core_strerror(rc),
                         (unsigned long long)prog->next_sample, path);
        } else {
            core_log_err("%s: commit failed for %s: %s", pl_store_dir(ing->st), path,
                         core_strerror(rc));
        }
        batch_clear(ing);
        return rc;
    }
    ing->stats.commits++;
    batch_clear(ing);
    if (ing->opts.progress) {
        ing->opts.progress(ing->opts.progress_ud, &ing->stats);
    }
    return 0;
}

/* ---- sample processing ---- */

static uint32_t img_reason_to_reject(int r)
{
    switch (r) {
    case PL_IMG_R_EMPTY:
        return PL_REJECT_IMAGE_EMPTY;
    case PL_IMG_R_UNKNOWN_FORMAT:
        return PL_REJECT_IMAGE_UNKNOWN_FORMAT;
    case PL_IMG_R_TRUNCATED_HEADER:
        return PL_REJECT_IMAGE_TRUNCATED_HEADER;
    case PL_IMG_R_BAD_HEADER:
        return PL_REJECT_IMAGE_BAD_HEADER;
    case PL_IMG_R_TOO_LARGE:
        return PL_REJECT_IMAGE_TOO_LARGE;
    case PL_IMG_R_TRUNCATED:
        return PL_REJECT_IMAGE_TRUNCATED;
    case PL_IMG_R_UNSUPPORTED:
        return PL_REJECT_IMAGE_UNSUPPORTED;
    default:
        return PL_REJECT_IMAGE_CORRUPT;
    }
}

static int reject(verdict_t *v, uint32_t reason, const char *detail)
{
    v->reason = reason;
    snprintf(v->detail, sizeof(v->detail), "%s", detail ? detail : "");
    return 0;
}

/* Finds the caption bytes of the group. Returns 0 with cap and len set, or a reject verdict. */
static int group_caption(wctx_t *w, group_t *g, verdict_t *v, const char **cap, size_t *len)
{
    if (g->slot[SLOT_TXT].present) {
        *cap = (const char *)g->slot[SLOT_TXT].p;
        *len = g->slot[SLOT_TXT].len;
        return 0;
    }
    if (!g->slot[SLOT_JSON].present) {
        return reject(v, PL_REJECT_NO_CAPTION, "no .txt or .json member");
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)g->slot[SLOT_JSON].p, g->slot[SLOT_JSON].len,
                              JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return reject(v, PL_REJECT_JSON_BAD, jerr.text);
    }
    json_t *c = json_object_get(root, "caption");
    if (!json_is_string(c)) {
        json_decref(root);
        return reject(v, PL_REJECT_NO_CAPTION, "no .txt and no \"caption\" string in .json");
    }
    size_t n = json_string_length(c);
    if (n + 1 > w->caption_cap) {
        char *np = core_realloc(w->caption, n + 1);
        if (np == NULL) {
            json_decref(root);
            return CORE_ERR(ENOMEM);
        }
        w->caption = np;
        w->caption_cap = n + 1;
    }
    memcpy(w->caption, json_string_value(c), n);
    json_decref(root);
    *cap = w->caption;
    *len = n;
    return 0;
}

/* Checks, tokenizes and encodes one sample on any thread (reads only immutable ingest state and
 * the thread's wctx). A kept sample's record is left in w->enc[0..*rec_len). */
static int process_group(const pl_ingest_t *ing, wctx_t *w, group_t *g, const char *file_base,
                         verdict_t *v, size_t *rec_len, size_t *img_len_out)
{
    int rc = 0;
    uint8_t *reenc = NULL;
    v->reason = PL_REJECT_NONE;
    v->detail[0] = '\0';
    if (g->reject != PL_REJECT_NONE) {
        return reject(v, g->reject, NULL);
    }
    int img_slot = -1;
    for (int i = SLOT_JPG; i <= SLOT_WEBP; i++) {
        if (g->slot[i].present) {
            img_slot = i;
            break;
        }
    }
    if (img_slot < 0) {
        return reject(v, PL_REJECT_NO_IMAGE, "no image member (jpg, jpeg, png, webp)");
    }
    const char *cap = NULL;
    size_t clen = 0;
    uint64_t t0 = core_now_ns();
    rc = group_caption(w, g, v, &cap, &clen);
    if (rc < 0 || v->reason != PL_REJECT_NONE) {
        return rc;
    }
    uint32_t flags = 0;
    uint32_t cr = pl__caption_check(&cap, &clen, ing->policy.caption_max_bytes,
                                    ing->policy.caption_overflow == PL_CAPTION_REJECT, &flags);
    if (cr != PL_REJECT_NONE) {
        return reject(v, cr, NULL);
    }
    uint32_t row[PL_TOK_CONTEXT];
    int tok_trunc = 0;
    size_t n_used = 0;
    rc = pl_tok_row(ing->tok, cap, clen, row, &tok_trunc, &n_used);
    uint64_t t1 = core_now_ns();
    w->t_tokenize += (double)(t1 - t0) * 1e-9;
    if (rc == CORE_EBAD_UTF8) {
        return reject(v, PL_REJECT_CAPTION_UTF8, NULL);
    }
    if (rc < 0) {
        return rc;
    }
    if (n_used <= 2) {
        return reject(v, PL_REJECT_CAPTION_NO_TOKENS, NULL);
    }
    if (tok_trunc) {
        flags |= PL_REC_TOKENS_TRUNCATED;
    }

    const uint8_t *img = g->slot[img_slot].p;
    size_t img_len = g->slot[img_slot].len;
    pl_img_info_t info;
    pl_img_err_t ierr;
    memset(&ierr, 0, sizeof(ierr));
    if (ing->policy.verify == PL_VERIFY_FULL) {
        rc = pl__verify_image(w->verifier, img, img_len, &ing->lim, &info, &ierr);
    } else {
        rc = pl_img_probe(img, img_len, &ing->lim, &info, &ierr);
    }
    if (rc == CORE_ERR(ENOMEM)) {
        return rc; /* not the sample's fault: stop rather than reject nondeterministically */
    }
    if (rc < 0) {
        w->t_decode += (double)(core_now_ns() - t1) * 1e-9;
        return reject(v, img_reason_to_reject(ierr.reason), ierr.text);
    }
    if (ing->policy.max_side &&
        (info.width > ing->policy.max_side || info.height > ing->policy.max_side)) {
        size_t rlen = 0;
        pl_img_info_t oinfo;
        rc = pl_img_reencode_max_side(w->img, img, img_len, &ing->lim, ing->policy.max_side, 90,
                                      &reenc, &rlen, &oinfo, &ierr);
        if (rc == CORE_ERR(ENOMEM)) {
            return rc;
        }
        if (rc < 0) {
            w->t_decode += (double)(core_now_ns() - t1) * 1e-9;
            return reject(v, img_reason_to_reject(ierr.reason), ierr.text);
        }
        if (reenc) {
            img = reenc;
            img_len = rlen;
            info = oinfo;
            flags |= PL_REC_REENCODED;
        }
    }
    uint64_t t2 = core_now_ns();
    w->t_decode += (double)(t2 - t1) * 1e-9;

    pl_record_in_t in = {
        .tokens = row,
        .n_tokens = n_used,
        .caption = cap,
        .caption_len = clen,
        .image = img,
        .image_len = img_len,
        .format = (pl_img_format_t)info.format,
        .width = info.width,
        .height = info.height,
        .source_file = file_base,
        .member_key = g->key,
        .sample_index = g->index,
        .flags = flags,
    };
    size_t bound = 0, n = 0;
    rc = pl_record_bound(&in, &bound);
    if (rc == CORE_ETOO_LARGE) {
        rc = reject(v, PL_REJECT_RECORD_TOO_LARGE, NULL);
        goto out;
    }
    if (bound > w->enc_cap) {
        uint8_t *ne = core_realloc(w->enc, bound);
        if (ne == NULL) {
            rc = CORE_ERR(ENOMEM);
            goto out;
        }
        w->enc = ne;
        w->enc_cap = bound;
    }
    rc = pl_record_encode(&in, w->enc, w->enc_cap, &n);
    if (rc < 0) {
        goto out;
    }
    w->t_compress += (double)(core_now_ns() - t2) * 1e-9;
    *rec_len = n;
    *img_len_out = img_len;
out:
    core_free(reenc);
    return rc;
}

/* ---- the archive walk ---- */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Splits a member path into key (path up to the first dot of the basename) and extension. */
static int split_member(const char *path, size_t *key_len, const char **ext)
{
    const char *b = base_name(path);
    const char *dot = strchr(b, '.');
    if (dot == NULL || dot == b) {
        return -1;
    }
    *key_len = (size_t)(dot - path);
    *ext = dot + 1;
    return 0;
}

static int slot_of(const char *ext)
{
    for (int i = 0; i < N_SLOTS; i++) {
        if (strcasecmp(ext, slot_ext[i]) == 0) {
            return i;
        }
    }
    return -1;
}

typedef struct file_run_s {
    const char *path;
    const char *base;
    pl_file_progress_t prog;
    uint64_t start; /* first sample index to process (resume) */
} file_run_t;

static void log_reject(pl_ingest_t *ing, const file_run_t *fr, const char *key, uint32_t reason,
                       const char *detail)
{
    if (ing->opts.log_rejects) {
        core_log_warn("%s: %s: rejected (%s)%s%s", fr->base, key, pl_reject_name(reason),
                      detail && detail[0] ? ": " : "", detail ? detail : "");
    }
}

/* A group without an image member or without a caption member (by member names only). */
static int group_incomplete(const group_t *g)
{
    int has_img = 0;
    for (int i = SLOT_JPG; i <= SLOT_WEBP; i++) {
        has_img |= g->slot[i].present;
    }
    return !has_img || !(g->slot[SLOT_TXT].present || g->slot[SLOT_JSON].present);
}

/* Runs one job on any thread: the sample's verdict and, when kept, its record. */
static void job_run(const pl_ingest_t *ing, wctx_t *w, job_t *job)
{
    size_t rec_len = 0, img_len = 0;
    job->rc = process_group(ing, w, &job->g, ing->file_base, &job->v, &rec_len, &img_len);
    if (job->rc == 0 && job->v.reason == PL_REJECT_NONE) {
        job->rec = core_malloc(rec_len);
        if (job->rec == NULL) {
            job->rc = CORE_ERR(ENOMEM);
        } else {
            memcpy(job->rec, w->enc, rec_len);
            job->rec_len = rec_len;
            job->img_len = img_len;
        }
    }
}

typedef struct worker_arg_s {
    pl_ingest_t *ing;
    wctx_t *w;
} worker_arg_t;

/* A worker takes queued jobs (any order; the reader commits in order) until told to quit. */
static void *worker_main(void *arg)
{
    worker_arg_t *a = arg;
    pl_ingest_t *ing = a->ing;
    pthread_mutex_lock(&ing->mu);
    for (;;) {
        if (ing->quit) {
            break;
        }
        job_t *job = NULL;
        for (uint64_t k = ing->head; k < ing->tail; k++) {
            job_t *j = &ing->ring[k % ing->ring_cap];
            if (j->state == JOB_QUEUED) {
                job = j;
                break;
            }
        }
        if (job == NULL) {
            pthread_cond_wait(&ing->cv_work, &ing->mu);
            continue;
        }
        job->state = JOB_RUNNING;
        pthread_mutex_unlock(&ing->mu);
        job_run(ing, a->w, job);
        pthread_mutex_lock(&ing->mu);
        job->state = JOB_DONE;
        pthread_cond_broadcast(&ing->cv_done);
    }
    pthread_mutex_unlock(&ing->mu);
    pl_record_thread_cleanup(); /* this thread's zstd contexts */
    return NULL;
}

/* Starts the workers for one file (none when threads <= 1: samples are processed inline). */
static void pool_start(pl_ingest_t *ing, worker_arg_t *args)
{
    ing->quit = 0;
    ing->n_running_threads = 0;
    for (int i = 0; i < ing->n_threads; i++) {
        args[i].ing = ing;
        args[i].w = &ing->w[i + 1];
        if (pthread_create(&ing->th[i], NULL, worker_main, &args[i]) != 0) {
            core_log_warn("ingest: could not start worker %d; continuing with %d", i, i);
            break;
        }
        ing->n_running_threads++;
    }
}

/* Stops the workers (running jobs finish, queued ones are dropped: they were not committed, so
 * a later ingest redoes them) and empties the window. */
/* opts.stop is raised by another thread (sc-datad's loop) or a signal handler: read it
 * atomically, a plain read of it would be a data race. */
static int stop_raised(const pl_ingest_t *ing)
{
    return ing->opts.stop != NULL && __atomic_load_n(ing->opts.stop, __ATOMIC_RELAXED) != 0;
}

static void pool_stop(pl_ingest_t *ing)
{
    pthread_mutex_lock(&ing->mu);
    ing->quit = 1;
    pthread_cond_broadcast(&ing->cv_work);
    pthread_mutex_unlock(&ing->mu);
    for (int i = 0; i < ing->n_running_threads; i++) {
        pthread_join(ing->th[i], NULL);
    }
    ing->n_running_threads = 0;
    for (uint64_t k = ing->head; k < ing->tail; k++) {
        job_t *job = &ing->ring[k % ing->ring_cap];
        core_free(job->rec);
        job->rec = NULL;
        group_reset(&job->g);
        job->state = JOB_FREE;
    }
    ing->head = ing->tail = 0;
    for (int i = 0; i <= ing->n_threads; i++) {
        ing->stats.t_decode += ing->w[i].t_decode;
        ing->stats.t_tokenize += ing->w[i].t_tokenize;
        ing->stats.t_compress += ing->w[i].t_compress;
        ing->w[i].t_decode = ing->w[i].t_tokenize = ing->w[i].t_compress = 0;
    }
}

/* Accounts a finished job in submission order: stats, batch, logs, and the commit that makes the
 * progress cover it. */
static int job_post(pl_ingest_t *ing, file_run_t *fr, job_t *job)
{
    int rc = 0;
    group_t *g = &job->g;
    CORE_TRY(job->rc);
    verdict_t *v = &job->v;
    if (job->seen && job->prev_incomplete) {
        /* The earlier fragment was rejected as incomplete; it is the same defect. */
        CORE_TRY(batch_add_reject(ing, job->prev_index, PL_REJECT_SPLIT_KEY, g->key));
        if (job->prev_index >= fr->start) {
            uint32_t old = pl__keymap_take_pending(&ing->keys, g->key);
            if (old < PL_REJECT__COUNT && ing->stats.rejects[old] > 0) {
                ing->stats.rejects[old]--;
                ing->stats.rejects[PL_REJECT_SPLIT_KEY]++;
            }
        }
    }
    ing->stats.samples++;
    if (v->reason == PL_REJECT_NONE) {
        CORE_TRY(batch_add_record(ing, job->rec, job->rec_len));
        job->rec = NULL; /* the batch owns it now */
        ing->stats.bytes_image += job->img_len;
        ing->stats.kept++;
        fr->prog.n_kept++;
    } else {
        ing->stats.rejected++;
        ing->stats.rejects[v->reason]++;
        fr->prog.n_rejected++;
        CORE_TRY(batch_add_reject(ing, g->index, v->reason, g->key));
        if (!job->seen && job->incomplete) {
            /* Logged at the end of the file, unless it turns out to be a split key. */
            pl__keymap_set_pending(&ing->keys, g->key, v->reason);
        } else {
            log_reject(ing, fr, g->key, v->reason, v->detail);
        }
    }
    fr->prog.next_sample = g->index + 1;
    int stop = stop_raised(ing);
    if (stop || ing->n_recs + ing->n_rejs >= ing->opts.batch_records ||
        ing->batch_bytes >= ing->opts.batch_bytes) {
        CORE_TRY(batch_commit(ing, &fr->prog, fr->path));
    }
    if (stop) {
        core_log_notice("%s: stopped after sample #%llu (committed); ingest again to continue",
                        fr->path, (unsigned long long)g->index);
        CORE_FAIL_IF(1, CORE_ECLOSED);
    }
    rc = 0;
fail:
    return rc;
}

/* Posts finished jobs in order; with `wait`, waits for the oldest one first. */
static int drain(pl_ingest_t *ing, file_run_t *fr, int wait)
{
    int rc = 0;
    while (ing->head < ing->tail) {
        job_t *job = &ing->ring[ing->head % ing->ring_cap];
        pthread_mutex_lock(&ing->mu);
        while (wait && job->state != JOB_DONE) {
            pthread_cond_wait(&ing->cv_done, &ing->mu);
        }
        int done = job->state == JOB_DONE;
        pthread_mutex_unlock(&ing->mu);
        if (!done) {
            break;
        }
        rc = job_post(ing, fr, job);
        core_free(job->rec);
        job->rec = NULL;
        group_reset(&job->g);
        pthread_mutex_lock(&ing->mu);
        job->state = JOB_FREE;
        ing->head++;
        pthread_mutex_unlock(&ing->mu);
        wait = 0;
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Finishes the current group: split-key bookkeeping, then hands it to the workers (or processes
 * it here), then commits whatever is done, in order. */
static int group_finish(pl_ingest_t *ing, file_run_t *fr)
{
    group_t *g = &ing->g;
    if (!g->has_members) {
        return 0;
    }
    int rc = 0;
    int incomplete = group_incomplete(g);
    uint64_t prev_index = 0;
    int prev_incomplete = 0;
    int seen = pl__keymap_lookup(&ing->keys, g->key, &prev_index, &prev_incomplete);
    if (!seen) {
        CORE_TRY(pl__keymap_insert(&ing->keys, g->key, g->index, incomplete));
    }
    if (g->index < fr->start) {
        goto fail; /* resume: already accounted for */
    }
    while (ing->tail - ing->head >= ing->ring_cap) {
        CORE_TRY(drain(ing, fr, 1));
    }
    job_t *job = &ing->ring[ing->tail % ing->ring_cap];
    /* Swap the group into the job: the job's old buffers become the reader's next ones. */
    group_t tmp = job->g;
    job->g = *g;
    *g = tmp;
    job->seen = seen;
    job->incomplete = incomplete;
    job->prev_index = prev_index;
    job->prev_incomplete = prev_incomplete;
    job->rc = 0;
    job->rec = NULL;
    job->v.reason = PL_REJECT_NONE;
    job->v.detail[0] = '\0';
    int state = JOB_DONE;
    if (seen) {
        reject(&job->v, PL_REJECT_SPLIT_KEY, NULL);
        snprintf(job->v.detail, sizeof(job->v.detail),
                 "members not adjacent (first seen as sample #%llu)",
                 (unsigned long long)prev_index);
    } else if (ing->n_running_threads == 0) {
        job_run(ing, &ing->w[0], job);
    } else {
        state = JOB_QUEUED;
    }
    pthread_mutex_lock(&ing->mu);
    job->state = state;
    ing->tail++;
    if (state == JOB_QUEUED) {
        pthread_cond_signal(&ing->cv_work);
    }
    pthread_mutex_unlock(&ing->mu);
    CORE_TRY(drain(ing, fr, 0));
    rc = 0;
fail:
    group_reset(g);
    return rc;
}

static int pending_log_cb(void *ud, const char *key, uint32_t reason)
{
    void **a = ud;
    log_reject(a[0], a[1], key, reason, NULL);
    return 0;
}

/* Reads the current member's data into slot buffer b (bounded by max_member_bytes). Returns 0,
 * or 1 when the archive failed while reading (damage), or a negative error. */
static int read_member(pl_ingest_t *ing, struct archive *a, struct archive_entry *e, buf_t *b,
                       int *too_large)
{
    *too_large = 0;
    b->len = 0;
    int64_t sz = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    if (sz > 0 && (uint64_t)sz > ing->policy.max_member_bytes) {
        *too_large = 1;
        return archive_read_data_skip(a) == ARCHIVE_OK ? 0 : 1;
    }
    if (sz > 0 && buf_reserve(b, (size_t)sz) < 0) {
        return CORE_ERR(ENOMEM);
    }
    for (;;) {
        if (b->cap - b->len < 65536) {
            if (b->len + 65536 > ing->policy.max_member_bytes + 65536) {
                *too_large = 1;
                return archive_read_data_skip(a) == ARCHIVE_OK ? 0 : 1;
            }
            if (buf_reserve(b, b->len + 65536) < 0) {
                return CORE_ERR(ENOMEM);
            }
        }
        la_ssize_t r = archive_read_data(a, b->p + b->len, b->cap - b->len);
        if (r < 0) {
            core_log_debug("read_member: error after %zu of %lld bytes", b->len, (long long)sz);
            return 1;
        }
        if (r == 0) {
            break;
        }
        b->len += (size_t)r;
    }
    b->present = 1;
    return 0;
}

int pl_ingest_file(pl_ingest_t *ing, const char *path)
{
    int rc = 0;
    struct archive *a = NULL;
    file_run_t fr;
    memset(&fr, 0, sizeof(fr));
    fr.path = path;
    fr.base = base_name(path);
    uint64_t t_start = core_now_ns();
    ing->stats.files++;
    if (stop_raised(ing)) {
        return CORE_ECLOSED;
    }
    uint8_t id[PL_STORE_FILE_ID_LEN];
    uint64_t size = 0;
    rc = pl_store_file_identity(path, id, &size);
    if (rc < 0) {
        core_log_err("%s: %s", path, core_strerror(rc));
        return rc;
    }
    pl_file_progress_t prev;
    rc = pl_store_file_progress(ing->st, id, &prev);
    if (rc == 0 && prev.state != PL_FILE_PARTIAL) {
        core_log_info("%s: already ingested (%llu kept, %llu rejected%s); nothing to add", path,
                      (unsigned long long)prev.n_kept, (unsigned long long)prev.n_rejected,
                      prev.state == PL_FILE_DAMAGED ? ", archive damaged" : "");
        ing->stats.files_skipped++;
        ing->stats.bytes_in += size;
        return 0;
    }
    if (rc == 0) {
        fr.prog = prev;
        fr.start = prev.next_sample;
        ing->stats.files_resumed++;
        core_log_info("%s: continuing after sample #%llu", path,
                      (unsigned long long)prev.next_sample);
    } else if (rc == CORE_ENOT_FOUND) {
        memset(&fr.prog, 0, sizeof(fr.prog));
        memcpy(fr.prog.id, id, sizeof(id));
    } else {
        return rc;
    }
    fr.prog.size = size;
    fr.prog.state = PL_FILE_PARTIAL;
    snprintf(fr.prog.name, sizeof(fr.prog.name), "%s", fr.base);
    pl__keymap_clear(&ing->keys);
    group_reset(&ing->g);
    batch_clear(ing);
    ing->file_base = fr.base;
    worker_arg_t args[256];
    pool_start(ing, args);

    a = archive_read_new();
    CORE_FAIL_IF(a == NULL, CORE_ERR(ENOMEM));
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    int damaged = 0;
    const char *damage = NULL;
    uint64_t next_index = 0;
    uint64_t bytes_before = ing->stats.bytes_in;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        damaged = 1;
        damage = archive_error_string(a);
    }
    group_t *g = &ing->g;
    while (!damaged) {
        struct archive_entry *e = NULL;
        uint64_t t0 = core_now_ns();
        int r = archive_read_next_header(a, &e);
        ing->stats.t_read += (double)(core_now_ns() - t0) * 1e-9;
        if (r == ARCHIVE_EOF) {
            break;
        }
        if (r < ARCHIVE_WARN) {
            damaged = 1;
            damage = archive_error_string(a);
            /* A sample that lacks members when the archive breaks was cut by the damage: its
             * missing members may well have followed. */
            if (g->has_members && g->index >= fr.start && group_incomplete(g) &&
                g->reject == PL_REJECT_NONE) {
                g->reject = PL_REJECT_ARCHIVE_DAMAGED;
            }
            break;
        }
        ing->stats.bytes_in = bytes_before + (uint64_t)archive_filter_bytes(a, -1);
        if (archive_entry_filetype(e) != AE_IFREG) {
            continue;
        }
        const char *mpath = archive_entry_pathname(e);
        size_t key_len = 0;
        const char *ext = NULL;
        if (mpath == NULL || split_member(mpath, &key_len, &ext) < 0) {
            continue; /* no key: not part of any sample */
        }
        if (g->has_members && (strlen(g->key) != key_len || memcmp(g->key, mpath, key_len) != 0)) {
            CORE_TRY(group_finish(ing, &fr));
        }
        if (!g->has_members) {
            g->key = core_strndup(mpath, key_len);
            CORE_FAIL_IF(g->key == NULL, CORE_ERR(ENOMEM));
            g->index = next_index++;
            g->has_members = 1;
        }
        int slot = slot_of(ext);
        if (slot < 0) {
            continue; /* other members (.cls, ...) are ignored; their data is skipped */
        }
        if (g->slot[slot].present) {
            g->reject = PL_REJECT_DUPLICATE_MEMBER;
            continue;
        }
        if (g->index < fr.start) {
            g->slot[slot].present = 1; /* resume: headers only, for grouping and split keys */
            continue;
        }
        int too_large = 0;
        t0 = core_now_ns();
        r = read_member(ing, a, e, &g->slot[slot], &too_large);
        ing->stats.t_read += (double)(core_now_ns() - t0) * 1e-9;
        CORE_TRY(r);
        if (r == 1) {
            damaged = 1;
            damage = archive_error_string(a);
            if (g->reject == PL_REJECT_NONE) {
                g->reject = PL_REJECT_ARCHIVE_DAMAGED;
            }
            break;
        }
        if (too_large) {
            g->slot[slot].present = 1;
            g->reject = PL_REJECT_MEMBER_TOO_LARGE;
        }
    }
    /* The last group: complete unless its member data was cut (then rejected as damaged). */
    CORE_TRY(group_finish(ing, &fr));
    while (ing->head < ing->tail) {
        CORE_TRY(drain(ing, &fr, 1));
    }
    {
        void *ud[2] = {ing, &fr};
        pl__keymap_each_pending(&ing->keys, pending_log_cb, ud);
    }
    if (damaged) {
        ing->stats.files_damaged++;
        core_log_err("%s: archive damaged after sample #%llu (%s); the %llu sample(s) before the "
                     "damage are accounted for, the rest of the file is lost",
                     path, (unsigned long long)next_index, damage ? damage : "unreadable",
                     (unsigned long long)next_index);
    }
    fr.prog.state = damaged ? PL_FILE_DAMAGED : PL_FILE_DONE;
    if (next_index > fr.prog.next_sample) {
        fr.prog.next_sample = next_index;
    }
    ing->stats.bytes_in = bytes_before + size;
    CORE_TRY(batch_commit(ing, &fr.prog, path));
    rc = 0;
fail:
    pool_stop(ing);
    if (a) {
        archive_read_free(a);
    }
    group_reset(&ing->g);
    batch_clear(ing);
    ing->stats.t_total += (double)(core_now_ns() - t_start) * 1e-9;
    return rc;
}
