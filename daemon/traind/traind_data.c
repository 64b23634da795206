/* The trainer's data source: a thread that pulls batches either from sc-datad (pl_client, which
 * reconnects at the cursor on its own) or from a shard store read in-process (pl_batcher with
 * sc-datad's epoch rules), and fills a ring of preallocated slots. The training thread takes a
 * slot, converts it, and releases it; it never allocates and waits only when the ring is empty.
 *
 * Local epochs follow sc-datad exactly: an epoch's snapshot is the record count when the epoch is
 * first needed; each rank takes per_rank = n / (world * batch) * batch samples (rank/world: this
 * trainer's slice under mpirun, 0/1 otherwise); the cursor moves to
 * (epoch + 1, 0) as soon as no full batch is left. So the same (seed, cursor) gives the same
 * batches as the service would send (its augmentation parameters travel as floats in the HELLO,
 * hence the float round trip below). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "pipeline/batcher.h"
#include "pipeline/client.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"
#include "traind.h"

struct traind_data_s {
    const traind_cfg_t *cfg;
    uint32_t B, S;
    uint32_t rank, world; /* this trainer's slice of every epoch */
    /* ring */
    traind_slot_t *slots;
    uint32_t n_slots, head, count; /* head: next slot to consume */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, err, started;
    pthread_t th;
    /* socket */
    pl_client_t *client;
    /* local */
    pl_store_t *store;
    pl_batcher_t *batcher;
    pl_aug_t aug;
    uint64_t epoch, position, epoch_n;
    uint64_t reconnects;
};

static int fill_local(traind_data_t *d, traind_slot_t *s)
{
    uint64_t step = (uint64_t)d->B * d->world;
    for (;;) {
        if (d->epoch_n == UINT64_MAX) {
            d->epoch_n = pl_store_count(d->store);
        }
        uint64_t per_rank = d->epoch_n / step * d->B;
        if (per_rank == 0) {
            return CORE_ENOT_FOUND; /* fewer records than one batch */
        }
        if (d->position + d->B > per_rank) {
            d->epoch++;
            d->position = 0;
            d->epoch_n = UINT64_MAX;
            continue;
        }
        pl_batch_spec_t spec;
        memset(&spec, 0, sizeof spec);
        spec.seed = d->cfg->seed;
        spec.epoch = d->epoch;
        spec.n_records = d->epoch_n;
        spec.rank = d->rank;
        spec.world = d->world;
        spec.batch = d->B;
        spec.position = d->position;
        spec.aug = d->aug;
        uint32_t nnz = 0;
        int rc = pl_batcher_gather(d->batcher, &spec, &nnz);
        if (rc < 0) {
            return rc;
        }
        if (nnz > d->B * PL_TOK_CONTEXT) {
            return CORE_ECORRUPT;
        }
        pl_batch_out_t out = {s->images, (size_t)d->B * d->S * d->S * 3, (uint8_t *)s->off,
                              (uint8_t *)s->ids, NULL};
        rc = pl_batcher_render(d->batcher, &out);
        if (rc < 0) {
            return rc;
        }
        /* The batcher writes little-endian u32; this is a little-endian-only program (x86/arm). */
        s->nnz = nnz;
        uint64_t next = d->position + d->B;
        if (next + d->B > per_rank) {
            d->epoch++;
            d->position = 0;
            d->epoch_n = UINT64_MAX;
        } else {
            d->position = next;
        }
        s->epoch = d->epoch;
        s->position = d->position;
        return 0;
    }
}

static int fill_socket(traind_data_t *d, traind_slot_t *s)
{
    proto_batch_t b;
    int rc = pl_client_next(d->client, &b);
    if (rc < 0) {
        core_log_err("data: %s: %s", core_strerror(rc), pl_client_errmsg(d->client));
        return rc;
    }
    if (b.n != d->B || b.h != d->S || b.w != d->S || b.nnz > d->B * PL_TOK_CONTEXT) {
        core_log_err("data: batch of %u %ux%u, expected %u %ux%u", b.n, b.h, b.w, d->B, d->S, d->S);
        return CORE_ECORRUPT;
    }
    memcpy(s->images, b.images, (size_t)d->B * d->S * d->S * 3);
    for (uint32_t i = 0; i <= d->B; i++) {
        s->off[i] = proto_batch_offset(&b, i);
    }
    for (uint32_t j = 0; j < b.nnz; j++) {
        s->ids[j] = proto_batch_label(&b, j);
    }
    s->nnz = b.nnz;
    s->epoch = b.cursor_epoch;
    s->position = b.cursor_position;
    return 0;
}

static void *data_thread(void *arg)
{
    traind_data_t *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->stop && d->count == d->n_slots) {
            pthread_cond_wait(&d->cv, &d->mu);
        }
        if (d->stop) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        traind_slot_t *s = &d->slots[(d->head + d->count) % d->n_slots];
        pthread_mutex_unlock(&d->mu);
        int rc = d->client != NULL ? fill_socket(d, s) : fill_local(d, s);
        pthread_mutex_lock(&d->mu);
        if (d->client != NULL) {
            d->reconnects = pl_client_reconnects(d->client);
        }
        if (rc < 0) {
            d->err = rc;
            pthread_cond_broadcast(&d->cv);
            pthread_mutex_unlock(&d->mu);
            break;
        }
        d->count++;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
    }
    pl_record_thread_cleanup();
    return NULL;
}

static void hex32(const uint8_t raw[32], char out[65])
{
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
}

static int open_local(traind_data_t *d, traind_data_info_t *info)
{
    int rc = pl_store_open(d->cfg->data_store, PL_STORE_RDONLY, &d->store);
    if (rc < 0) {
        core_log_err("data.store %s: %s", d->cfg->data_store, core_strerror(rc));
        return rc;
    }
    snprintf(info->vocab_hash, sizeof info->vocab_hash, "%s", pl_store_vocab_hash(d->store));
    const char *vp = d->cfg->data_vocab[0] != '\0' ? d->cfg->data_vocab
                                                   : pl_store_vocab_path(d->store);
    pl_tok_t *tok = NULL;
    rc = vp[0] != '\0' ? pl_tok_load(vp, &tok) : CORE_ENOT_FOUND;
    if (rc < 0) {
        core_log_err("vocabulary '%s': %s (set data.vocab)", vp, core_strerror(rc));
        return rc;
    }
    if (strcmp(pl_tok_hash(tok), info->vocab_hash) != 0) {
        core_log_err("vocabulary %s does not match the store's (hash %s vs %s)", vp,
                     pl_tok_hash(tok), info->vocab_hash);
        pl_tok_free(tok);
        return CORE_EMISMATCH;
    }
    info->vocab_size = pl_tok_vocab_size(tok);
    snprintf(info->vocab_path, sizeof info->vocab_path, "%s", vp);
    pl_tok_free(tok);
    info->records = pl_store_count(d->store);
    rc = pl_batcher_new(d->store, &d->batcher);
    if (rc < 0) {
        return rc;
    }
    pl_aug_defaults(&d->aug);
    d->aug.out_w = d->aug.out_h = d->S;
    d->aug.train = 1;
    d->aug.scale_min = (double)(float)d->cfg->data_scale_min;
    d->aug.scale_max = (double)(float)d->cfg->data_scale_max;
    d->aug.ratio_min = (double)(float)d->aug.ratio_min;
    d->aug.ratio_max = (double)(float)d->aug.ratio_max;
    d->aug.flip = d->cfg->data_flip;
    return pl_aug_check(&d->aug);
}

static int open_socket(traind_data_t *d, traind_data_info_t *info)
{
    pl_client_opts_t o;
    pl_client_opts_default(&o);
    o.socket_path = d->cfg->data_socket;
    pl_aug_t a;
    pl_aug_defaults(&a);
    proto_hello_t *h = &o.hello;
    h->rank = d->rank;
    h->world = d->world;
    h->batch_size = d->B;
    h->out_h = h->out_w = d->S;
    h->scale_min = (float)d->cfg->data_scale_min;
    h->scale_max = (float)d->cfg->data_scale_max;
    h->ratio_min = (float)a.ratio_min;
    h->ratio_max = (float)a.ratio_max;
    h->flip = (uint8_t)(d->cfg->data_flip != 0);
    h->interpolation = PROTO_INTERP_BICUBIC;
    h->mode = PROTO_MODE_TRAIN;
    h->seed = d->cfg->seed;
    h->epoch = d->epoch;
    h->position = d->position;
    snprintf(h->name, sizeof h->name, "sc-traind");
    o.window = (uint32_t)d->cfg->data_prefetch;
    int rc = pl_client_open(&o, &d->client);
    if (rc < 0) {
        core_log_err("data.socket %s: %s", d->cfg->data_socket, core_strerror(rc));
        return rc;
    }
    const proto_welcome_t *w = pl_client_welcome(d->client);
    hex32(w->vocab_hash, info->vocab_hash);
    info->vocab_size = w->vocab_size;
    info->records = w->records;
    snprintf(info->vocab_path, sizeof info->vocab_path, "%s", d->cfg->data_vocab);
    return 0;
}

int traind__data_open(const traind_cfg_t *cfg, uint32_t rank, uint32_t world, uint64_t epoch,
                      uint64_t position, traind_data_info_t *info, traind_data_t **out)
{
    traind_data_t *d = core_calloc(1, sizeof *d);
    if (d == NULL) {
        return CORE_ERR(ENOMEM);
    }
    memset(info, 0, sizeof *info);
    d->cfg = cfg;
    d->B = (uint32_t)cfg->batch;
    d->S = (uint32_t)cfg->model_image_size;
    d->rank = rank;
    d->world = world;
    d->epoch = epoch;
    d->position = position;
    d->epoch_n = UINT64_MAX;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->n_slots = (uint32_t)cfg->data_prefetch;
    int rc = 0;
    d->slots = core_calloc(d->n_slots, sizeof *d->slots);
    if (d->slots == NULL) {
        rc = CORE_ERR(ENOMEM);
        goto fail;
    }
    for (uint32_t i = 0; i < d->n_slots; i++) {
        traind_slot_t *s = &d->slots[i];
        s->images = core_malloc((size_t)d->B * d->S * d->S * 3);
        s->off = core_malloc(((size_t)d->B + 1) * sizeof(uint32_t));
        s->ids = core_malloc((size_t)d->B * PL_TOK_CONTEXT * sizeof(uint32_t));
        if (s->images == NULL || s->off == NULL || s->ids == NULL) {
            rc = CORE_ERR(ENOMEM);
            goto fail;
        }
    }
    rc = cfg->data_store[0] != '\0' ? open_local(d, info) : open_socket(d, info);
    if (rc < 0) {
        goto fail;
    }
    if (pthread_create(&d->th, NULL, data_thread, d) != 0) {
        rc = CORE_ERR(EAGAIN);
        goto fail;
    }
    d->started = 1;
    *out = d;
    return 0;
fail:
    traind__data_close(d);
    return rc;
}

int traind__data_next(traind_data_t *d, traind_slot_t **slot)
{
    pthread_mutex_lock(&d->mu);
    while ((d->count == 0 || (d->cfg->debug_memory_fed && d->count < d->n_slots)) && !d->stop &&
           d->err == 0) {
        pthread_cond_wait(&d->cv, &d->mu);
    }
    int rc = 0;
    if (d->count > 0) {
        *slot = &d->slots[d->head];
    } else {
        rc = d->stop ? CORE_ECLOSED : d->err;
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

void traind__data_release(traind_data_t *d)
{
    pthread_mutex_lock(&d->mu);
    d->head = (d->head + 1) % d->n_slots;
    if (d->cfg->debug_memory_fed && d->count == d->n_slots) {
        /* Replay: the ring stays full, so the data thread never runs again. */
        pthread_mutex_unlock(&d->mu);
        return;
    }
    d->count--;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void traind__data_stop(traind_data_t *d)
{
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

uint64_t traind__data_reconnects(traind_data_t *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t r = d->reconnects;
    pthread_mutex_unlock(&d->mu);
    return r;
}

void traind__data_close(traind_data_t *d)
{
    if (d == NULL) {
        return;
    }
    if (d->started) {
        traind__data_stop(d);
        /* A socket read in progress ends within the client's io timeout; a local batch within one
         * batch's decode time. */
        pthread_join(d->th, NULL);
    }
    pl_client_close(d->client);
    pl_batcher_free(d->batcher);
    pl_store_close(d->store);
    if (d->slots != NULL) {
        for (uint32_t i = 0; i < d->n_slots; i++) {
            core_free(d->slots[i].images);
            core_free(d->slots[i].off);
            core_free(d->slots[i].ids);
        }
        core_free(d->slots);
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    core_free(d);
}
