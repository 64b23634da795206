/* Batch streaming: the HELLO handshake, credits, epoch snapshots and the scheduling of batch jobs.
 * Loop thread, except datad__job_run (a worker). A client's memory in the daemon is bounded by its
 * credits: a batch is only scheduled against a credit, and at most max_inflight are assembled at
 * once, so a slow client holds its own frames and never delays another client's. */
#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "datad.h"
#include "pipeline/sampler.h"

/* ---- worker side ---- */

void datad__job_run(pl_batcher_t *b, datad_job_t *job)
{
    uint32_t nnz = 0;
    int rc = pl_batcher_gather(b, &job->spec, &nnz);
    if (rc < 0) {
        job->rc = rc;
        return;
    }
    proto_batch_t hdr;
    memset(&hdr, 0, sizeof(hdr));
    hdr.batch_index = job->batch_index;
    hdr.cursor_epoch = job->cursor_epoch;
    hdr.cursor_position = job->cursor_position;
    hdr.n = job->spec.batch;
    hdr.h = job->spec.aug.out_h;
    hdr.w = job->spec.aug.out_w;
    hdr.nnz = nnz;
    hdr.flags = job->want_keys ? PROTO_BATCH_HAS_KEYS : 0;
    size_t size = 0;
    rc = proto_batch_payload_size(hdr.n, hdr.h, hdr.w, nnz, job->want_keys, &size);
    if (rc < 0) {
        job->rc = rc;
        return;
    }
    size_t cap = PROTO_HEADER_SIZE + size;
    uint8_t *frame = core_malloc(cap);
    if (frame == NULL) {
        job->rc = CORE_ERR(ENOMEM);
        return;
    }
    proto_batch_writer_t wr;
    rc = proto_batch_begin(frame, cap, &hdr, &wr);
    if (rc == 0) {
        pl_batch_out_t out = {wr.images, (size_t)hdr.n * hdr.h * hdr.w * 3, wr.label_offsets,
                              wr.label_ids, wr.keys};
        rc = pl_batcher_render(b, &out);
    }
    if (rc == 0) {
        rc = proto_batch_seal(&wr);
    }
    if (rc < 0) {
        core_free(frame);
        job->rc = rc;
        return;
    }
    job->rc = 0;
    job->frame = frame;
    job->frame_len = wr.frame_size;
}

/* ---- epochs ---- */

/* The snapshot size of (seed, epoch): 1 with *n when known or fixable now, 0 when the store does
 * not yet hold one batch for every rank of this client (the caller waits for ingest), or a
 * negative error. An unknown epoch is fixed at the number of records committed now: records that
 * arrive during an epoch join the next one. */
static int epoch_records(datad_t *d, uint64_t seed, uint64_t epoch, uint64_t per_step, uint64_t *n)
{
    if (datad__epochs_get(&d->epochs, seed, epoch, n) == 0) {
        return 1;
    }
    uint64_t committed = atomic_load(&d->committed);
    if (committed < per_step) {
        return 0;
    }
    int rc = datad__epochs_fix(&d->epochs, seed, epoch, committed);
    if (rc < 0) {
        return rc;
    }
    *n = committed;
    return 1;
}

static uint64_t per_rank_of(uint64_t n, uint32_t world, uint32_t batch)
{
    return n / ((uint64_t)world * batch) * batch;
}

static void job_free(datad_job_t *job)
{
    core_free(job->frame);
    core_free(job);
}

static void pump(datad_conn_t *c)
{
    datad_t *d = c->d;
    const proto_hello_t *h = &c->hello;
    uint64_t step = (uint64_t)h->world * h->batch_size;
    uint64_t max_inflight = d->cfg->max_inflight ? d->cfg->max_inflight : d->pool.n_threads;
    while (c->state == DATAD_ST_STREAM && !d->stopping && c->credits > 0 &&
           c->inflight < max_inflight) {
        uint64_t n = 0;
        int r = epoch_records(d, h->seed, c->sched_epoch, step, &n);
        if (r < 0) {
            datad__conn_fail(c, r, NULL, "cannot record the epoch snapshot");
            return;
        }
        if (r == 0) {
            c->waiting_data = 1;
            return;
        }
        uint64_t per_rank = per_rank_of(n, h->world, h->batch_size);
        if (c->sched_position + h->batch_size > per_rank) {
            /* No full batch left in this epoch for this rank: the rest is dropped (as every rank
             * drops it), and the next epoch starts. */
            c->sched_epoch++;
            c->sched_position = 0;
            continue;
        }
        datad_job_t *job = core_calloc(1, sizeof(*job));
        if (job == NULL) {
            datad__conn_fail(c, CORE_ERR(ENOMEM), NULL, "out of memory");
            return;
        }
        job->conn = c;
        job->batch_index = c->next_index++;
        job->want_keys = (h->flags & PROTO_HELLO_WANT_KEYS) != 0;
        pl_batch_spec_t *s = &job->spec;
        s->seed = h->seed;
        s->epoch = c->sched_epoch;
        s->n_records = n;
        s->rank = h->rank;
        s->world = h->world;
        s->batch = h->batch_size;
        s->position = c->sched_position;
        s->aug = c->aug;
        uint64_t next = c->sched_position + h->batch_size;
        if (next + h->batch_size > per_rank) {
            c->sched_epoch++;
            c->sched_position = 0;
        } else {
            c->sched_position = next;
        }
        job->cursor_epoch = c->sched_epoch;
        job->cursor_position = c->sched_position;
        c->credits--;
        c->inflight++;
        c->refs++;
        datad__pool_submit(&d->pool, job);
    }
}

void datad__stream_kick(datad_t *d)
{
    for (datad_conn_t *c = d->conns; c != NULL; c = c->next) {
        if (c->kind == DATAD_CONN_DATA && c->waiting_data && c->state == DATAD_ST_STREAM) {
            c->waiting_data = 0;
            pump(c);
        }
    }
}

void datad__stream_release(datad_conn_t *c)
{
    while (c->ready != NULL) {
        datad_job_t *j = c->ready;
        c->ready = j->next;
        job_free(j);
    }
}

static unsigned ready_count(const datad_conn_t *c)
{
    unsigned n = 0;
    for (const datad_job_t *j = c->ready; j != NULL; j = j->next) {
        n++;
    }
    return n;
}

void datad__stream_job_done(datad_t *d, datad_job_t *job)
{
    datad_conn_t *c = job->conn;
    c->inflight--;
    if (c->state == DATAD_ST_CLOSING || job->rc == CORE_ECLOSED) {
        job_free(job);
        datad__conn_unref(c);
        return;
    }
    if (job->rc < 0) {
        core_log_err("conn %llu: batch %llu (epoch %llu position %llu): %s",
                     (unsigned long long)c->id, (unsigned long long)job->batch_index,
                     (unsigned long long)job->spec.epoch, (unsigned long long)job->spec.position,
                     core_strerror(job->rc));
        datad__conn_fail(c, job->rc, NULL, "batch assembly failed");
        job_free(job);
        datad__conn_unref(c);
        return;
    }
    /* Keep order: workers finish out of order, frames leave in batch_index order. */
    datad_job_t **pp = &c->ready;
    while (*pp != NULL && (*pp)->batch_index < job->batch_index) {
        pp = &(*pp)->next;
    }
    job->next = *pp;
    *pp = job;
    while (c->ready != NULL && c->ready->batch_index == c->send_index &&
           c->state == DATAD_ST_STREAM) {
        datad_job_t *j = c->ready;
        c->ready = j->next;
        c->send_index++;
        c->cur_epoch = j->cursor_epoch;
        c->cur_position = j->cursor_position;
        c->batches_sent++;
        c->bytes_sent += j->frame_len;
        d->batches_sent++;
        d->bytes_sent += j->frame_len;
        uint8_t *frame = j->frame;
        size_t len = j->frame_len;
        j->frame = NULL;
        job_free(j);
        if (datad__conn_write(c, frame, len) < 0) {
            break;
        }
    }
    datad__conn_unref(c);
    if (c->state == DATAD_ST_STREAM) {
        pump(c);
    }
}

/* ---- frames from the client ---- */

static int send_small(datad_conn_t *c, uint16_t type, uint64_t v, int is64)
{
    size_t cap = PROTO_HEADER_SIZE + 16, n = 0;
    uint8_t *buf = core_malloc(cap);
    if (buf == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int rc = is64 ? proto_u64_encode(buf, cap, type, v, &n)
                  : proto_u32_encode(buf, cap, type, (uint32_t)v, &n);
    if (rc < 0) {
        core_free(buf);
        return rc;
    }
    return datad__conn_write(c, buf, n);
}

static void on_hello(datad_conn_t *c, const proto_frame_t *f)
{
    datad_t *d = c->d;
    proto_hello_t *h = &c->hello;
    int rc = proto_hello_parse(f, h);
    if (rc < 0) {
        datad__conn_fail(c, rc, NULL, "malformed HELLO");
        return;
    }
    const char *bad = NULL;
    rc = proto_hello_validate(h, &bad);
    if (rc < 0) {
        datad__conn_fail(c, rc, bad, "parameter out of range");
        return;
    }
    if (h->mode == PROTO_MODE_EVAL && h->out_h != h->out_w) {
        datad__conn_fail(c, CORE_ECONFIG, "out_w", "eval mode needs out_h == out_w");
        return;
    }
    pl_aug_defaults(&c->aug);
    c->aug.out_h = h->out_h;
    c->aug.out_w = h->out_w;
    c->aug.train = h->mode == PROTO_MODE_TRAIN;
    c->aug.scale_min = h->scale_min;
    c->aug.scale_max = h->scale_max;
    c->aug.ratio_min = h->ratio_min;
    c->aug.ratio_max = h->ratio_max;
    c->aug.flip = h->flip;
    c->aug.interp = h->interpolation == PROTO_INTERP_BILINEAR ? PL_INTERP_BILINEAR
                                                              : PL_INTERP_BICUBIC;
    if (pl_aug_check(&c->aug) < 0) {
        datad__conn_fail(c, CORE_ECONFIG, "scale_min", "augmentation parameters rejected");
        return;
    }
    size_t payload = 0;
    rc = proto_batch_payload_size(h->batch_size, h->out_h, h->out_w,
                                  h->batch_size * PROTO_MAX_LABEL_PER_SAMPLE,
                                  (h->flags & PROTO_HELLO_WANT_KEYS) != 0, &payload);
    if (rc < 0 || PROTO_HEADER_SIZE + payload > d->cfg->max_frame) {
        datad__conn_fail(c, CORE_ETOO_LARGE, "batch_size",
                         "batch frame would exceed the server's max_frame");
        return;
    }
    c->frame_bytes = PROTO_HEADER_SIZE + payload;
    if ((uint64_t)h->initial_credits * c->frame_bytes > d->cfg->max_client_bytes) {
        datad__conn_fail(c, CORE_ETOO_LARGE, "initial_credits",
                         "credits x frame size exceed the server's max_client_bytes");
        return;
    }
    uint64_t step = (uint64_t)h->world * h->batch_size;
    uint64_t n = 0;
    int known = epoch_records(d, h->seed, h->epoch, step, &n);
    if (known < 0) {
        datad__conn_fail(c, known, NULL, "cannot record the epoch snapshot");
        return;
    }
    if (known) {
        uint64_t per_rank = per_rank_of(n, h->world, h->batch_size);
        if (h->position > per_rank) {
            datad__conn_fail(c, CORE_ECONFIG, "position",
                             "cursor position is past the end of this rank's epoch");
            return;
        }
    } else {
        n = atomic_load(&d->committed);
    }
    proto_welcome_t w;
    memset(&w, 0, sizeof(w));
    w.records = n;
    w.epoch_batches = per_rank_of(n, h->world, h->batch_size) / h->batch_size;
    w.vocab_size = d->vocab_size;
    memcpy(w.vocab_hash, d->vocab_hash_raw, 32);
    size_t cap = PROTO_HEADER_SIZE + PROTO_WELCOME_SIZE, len = 0;
    uint8_t *buf = core_malloc(cap);
    if (buf == NULL || proto_welcome_encode(buf, cap, &w, &len) < 0) {
        core_free(buf);
        datad__conn_fail(c, CORE_ERR(ENOMEM), NULL, "out of memory");
        return;
    }
    if (datad__conn_write(c, buf, len) < 0) {
        return;
    }
    core_log_info("conn %llu: HELLO '%s' rank %u/%u batch %u %ux%u %s seed %llu cursor %llu:%llu "
                  "credits %u",
                  (unsigned long long)c->id, h->name, h->rank, h->world, h->batch_size, h->out_h,
                  h->out_w, h->mode == PROTO_MODE_TRAIN ? "train" : "eval",
                  (unsigned long long)h->seed, (unsigned long long)h->epoch,
                  (unsigned long long)h->position, h->initial_credits);
    c->state = DATAD_ST_STREAM;
    c->sched_epoch = c->cur_epoch = h->epoch;
    c->sched_position = c->cur_position = h->position;
    c->credits = h->initial_credits;
    c->rate_mark_s = core_now_s();
    pump(c);
}

void datad__stream_frame(datad_conn_t *c, const proto_frame_t *f)
{
    if (c->state == DATAD_ST_HANDSHAKE) {
        if (f->type != PROTO_HELLO) {
            datad__conn_fail(c, CORE_ESTATE, NULL, "expected HELLO");
            return;
        }
        on_hello(c, f);
        return;
    }
    switch (f->type) {
    case PROTO_CREDIT: {
        uint32_t n = 0;
        int rc = proto_credit_parse(f, &n);
        if (rc < 0) {
            datad__conn_fail(c, rc, "credits", "malformed CREDIT");
            return;
        }
        uint64_t held = c->credits + n + c->inflight + ready_count(c);
        if (held * c->frame_bytes > c->d->cfg->max_client_bytes) {
            datad__conn_fail(c, CORE_ETOO_LARGE, "credits",
                             "credits x frame size exceed the server's max_client_bytes");
            return;
        }
        c->credits += n;
        pump(c);
        return;
    }
    case PROTO_PING: {
        uint64_t token = 0;
        int rc = proto_ping_parse(f, &token);
        if (rc < 0) {
            datad__conn_fail(c, rc, NULL, "malformed PING");
            return;
        }
        if (c->wq_bytes > c->d->cfg->max_client_bytes) {
            datad__conn_fail(c, CORE_EFULL, NULL, "client does not read its socket");
            return;
        }
        send_small(c, PROTO_PONG, token, 1);
        return;
    }
    case PROTO_PONG:
        return;
    case PROTO_BYE:
        core_log_info("conn %llu: BYE from client", (unsigned long long)c->id);
        c->state = DATAD_ST_CLOSING;
        uv_read_stop((uv_stream_t *)&c->pipe);
        datad__conn_close(c);
        return;
    default:
        datad__conn_fail(c, CORE_EUNSUPPORTED, NULL, "unexpected frame type");
        return;
    }
}
