/* Batch assembly threads. Jobs come from the loop thread in a FIFO; each thread owns a batcher
 * (a store reader and a decode context) and hands finished jobs back through a uv_async_t, so
 * only the loop thread ever touches connections and sockets. */
#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "datad.h"
#include "pipeline/record.h"

static void *pool_main(void *arg)
{
    datad_pool_t *p = arg;
    pl_batcher_t *b = NULL;
    int brc = pl_batcher_new(p->d->store, &b);
    if (brc < 0) {
        core_log_err("worker: cannot create a batcher: %s", core_strerror(brc));
    }
    pl_batcher_stats_t last;
    memset(&last, 0, sizeof(last));
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->q_head == NULL) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->stop) {
            break;
        }
        datad_job_t *job = p->q_head;
        p->q_head = job->next;
        if (p->q_head == NULL) {
            p->q_tail = NULL;
        }
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->mu);

        double t0 = core_now_s();
        if (b == NULL) {
            job->rc = brc;
        } else {
            datad__job_run(b, job);
        }
        job->t_work = core_now_s() - t0;

        pthread_mutex_lock(&p->mu);
        if (b != NULL) {
            const pl_batcher_stats_t *s = pl_batcher_stats(b);
            p->stats.batches += s->batches - last.batches;
            p->stats.samples += s->samples - last.samples;
            p->stats.bad_records += s->bad_records - last.bad_records;
            p->stats.bad_images += s->bad_images - last.bad_images;
            p->stats.image_bytes += s->image_bytes - last.image_bytes;
            last = *s;
        }
        p->running--;
        job->next = NULL;
        if (p->d_tail != NULL) {
            p->d_tail->next = job;
        } else {
            p->d_head = job;
        }
        p->d_tail = job;
        pthread_mutex_unlock(&p->mu);
        uv_async_send(&p->async);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    pl_batcher_free(b);
    pl_record_thread_cleanup();
    return NULL;
}

/* Loop thread: take every finished job back. */
static void pool_drain(datad_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    datad_job_t *list = p->d_head;
    p->d_head = p->d_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (list != NULL) {
        datad_job_t *job = list;
        list = job->next;
        job->next = NULL;
        datad__stream_job_done(p->d, job);
    }
}

static void pool_async_cb(uv_async_t *a) { pool_drain(a->data); }

int datad__pool_start(datad_pool_t *p, datad_t *d, unsigned n_threads)
{
    memset(p, 0, sizeof(*p));
    p->d = d;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    int rc = uv_async_init(d->loop, &p->async, pool_async_cb);
    if (rc < 0) {
        return rc;
    }
    p->async.data = p;
    p->threads = core_calloc(n_threads, sizeof(pthread_t));
    if (p->threads == NULL) {
        return CORE_ERR(ENOMEM);
    }
    for (unsigned i = 0; i < n_threads; i++) {
        int e = pthread_create(&p->threads[i], NULL, pool_main, p);
        if (e != 0) {
            core_log_err("worker: pthread_create: %s", strerror(e));
            return CORE_ERR(e);
        }
        p->n_threads++;
    }
    return 0;
}

void datad__pool_submit(datad_pool_t *p, datad_job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->q_tail != NULL) {
        p->q_tail->next = job;
    } else {
        p->q_head = job;
    }
    p->q_tail = job;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void datad__pool_stop(datad_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    /* Queued jobs are handed back cancelled. */
    datad_job_t *q = p->q_head;
    p->q_head = p->q_tail = NULL;
    p->queued = 0;
    while (q != NULL) {
        datad_job_t *job = q;
        q = q->next;
        job->rc = CORE_ECLOSED;
        job->next = NULL;
        if (p->d_tail != NULL) {
            p->d_tail->next = job;
        } else {
            p->d_head = job;
        }
        p->d_tail = job;
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    p->n_threads = 0;
    pool_drain(p);
}

static void noop_close(uv_handle_t *h) { (void)h; }

void datad__pool_close_handles(datad_pool_t *p)
{
    if (!uv_is_closing((uv_handle_t *)&p->async)) {
        uv_close((uv_handle_t *)&p->async, noop_close);
    }
    core_free(p->threads);
    p->threads = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}
