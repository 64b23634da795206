/* Continuous ingest: the spool watch (inotify through uv_fs_event plus a periodic rescan, on the
 * loop thread; directory listing runs on libuv's threadpool) and the single writer thread that owns
 * every LMDB write (pl_ingest_file). A spool file is taken once its size and mtime stayed
 * unchanged for spool.settle_ms, ingested exactly once (the store's per-file progress makes a
 * repeat a no-op), then moved to done/ or failed/ (+ NAME.reason). Serving never waits for it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "datad.h"
#include "pipeline/record.h"

typedef struct datad_done_name_s {
    struct datad_done_name_s *next;
    char name[];
} done_name_t;

/* ---- writer thread ---- */

static void progress_cb(void *ud, const pl_ingest_stats_t *stats)
{
    datad_ingest_t *g = ud;
    atomic_store(&g->d->committed, pl_store_count(g->d->store));
    pthread_mutex_lock(&g->mu);
    g->stats = *stats;
    pthread_mutex_unlock(&g->mu);
    uv_async_send(&g->async);
}

static int is_store_failure(int rc)
{
    return rc == CORE_ESTATE || rc == CORE_EFULL || rc == CORE_ERR(ENOSPC) ||
           rc == CORE_ERR(EFBIG) || rc == CORE_ERR(EIO) || rc == CORE_ECORRUPT;
}

static void move_out(datad_ingest_t *g, const char *path, int rc)
{
    const char *spool = g->d->cfg->spool_dir;
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    char dst[4096 + 64];
    snprintf(dst, sizeof dst, "%s/%s/%s", spool, rc == 0 ? "done" : "failed", base);
    if (rename(path, dst) != 0) {
        core_log_err("spool: cannot move %s to %s: %s", path, dst, strerror(errno));
        return;
    }
    if (rc != 0) {
        char rpath[4096 + 80];
        snprintf(rpath, sizeof rpath, "%s.reason", dst);
        FILE *f = fopen(rpath, "w");
        if (f != NULL) {
            fprintf(f, "%s: %s\n", core_err_name(rc), core_strerror(rc));
            if (fclose(f) != 0) {
                core_log_err("spool: writing %s failed", rpath);
            }
        }
    }
}

static void *writer_main(void *arg)
{
    datad_ingest_t *g = arg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->stop && (g->paused || g->q_head == NULL)) {
            pthread_cond_wait(&g->cv, &g->mu);
        }
        if (g->stop) {
            break;
        }
        datad_ingest_item_t *it = g->q_head;
        g->q_head = it->next;
        if (g->q_head == NULL) {
            g->q_tail = NULL;
        }
        g->q_len--;
        snprintf(g->current, sizeof g->current, "%s", it->path);
        atomic_store(&g->busy, 1);
        pthread_mutex_unlock(&g->mu);

        int rc;
        if (it->from_spool && access(it->path, F_OK) != 0) {
            /* Moved away by someone else (or listed twice by racing scans): nothing to do. */
            core_log_debug("spool: %s is gone", it->path);
            rc = 1;
        } else {
            core_log_info("ingest: %s", it->path);
            rc = g->ing != NULL ? pl_ingest_file(g->ing, it->path) : CORE_ESTATE;
        }
        atomic_store(&g->d->committed, pl_store_count(g->d->store));
        if (rc < 0 && rc != CORE_ECLOSED) {
            core_log_err("ingest: %s: %s", it->path, core_strerror(rc));
        }
        int store_broken = rc < 0 && is_store_failure(rc);
        /* CORE_ECLOSED: stopped by shutdown after committing what was done; the file stays in
         * the spool and continues after those samples at the next start. */
        int interrupted = rc == CORE_ECLOSED;
        if (interrupted) {
            core_log_notice("ingest: %s interrupted by shutdown; committed samples are kept",
                            it->path);
        }
        if (it->from_spool && !store_broken && !interrupted && rc != 1) {
            move_out(g, it->path, rc);
        }
        if (!it->from_spool && !store_broken && !interrupted) {
            /* Finished for good (ingested, or failed in a way a retry would repeat): forget it.
             * Otherwise it stays in the journal and the next start takes it again. */
            (void)datad__ctlq_done(&g->ctlq, it->path);
        }

        pthread_mutex_lock(&g->mu);
        if (g->ing != NULL) {
            g->stats = *pl_ingest_stats(g->ing);
        }
        g->current[0] = '\0';
        if (rc == 0) {
            g->files_done++;
        } else if (rc < 0 && !interrupted) {
            g->files_failed++;
            snprintf(g->last_error, sizeof g->last_error, "%s: %s", it->path,
                     core_strerror(rc));
        }
        if (store_broken) {
            /* The store is in its sticky error state: stop taking files until an operator has
             * looked (disk full ...). The spool keeps the file for the next start. */
            core_log_err("ingest: paused after a store failure; fix the cause and restart");
            g->paused = 1;
        }
        if (it->from_spool && !interrupted) {
            size_t nl = strlen(it->path);
            done_name_t *dn = core_malloc(sizeof(*dn) + nl + 1);
            if (dn != NULL) {
                memcpy(dn->name, it->path, nl + 1);
                dn->next = g->done_names;
                g->done_names = dn;
            }
        }
        atomic_store(&g->busy, 0);
        core_free(it->path);
        core_free(it);
        pthread_mutex_unlock(&g->mu);
        uv_async_send(&g->async);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    pl_record_thread_cleanup();
    atomic_store(&g->finished, 1);
    uv_async_send(&g->async);
    return NULL;
}

/* ---- loop side ---- */

static void forget_file(datad_ingest_t *g, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    for (datad_spool_file_t **pp = &g->files; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->name, base) == 0) {
            datad_spool_file_t *f = *pp;
            *pp = f->next;
            core_free(f->name);
            core_free(f);
            return;
        }
    }
}

static void async_cb(uv_async_t *a)
{
    datad_ingest_t *g = a->data;
    pthread_mutex_lock(&g->mu);
    done_name_t *list = g->done_names;
    g->done_names = NULL;
    pthread_mutex_unlock(&g->mu);
    while (list != NULL) {
        done_name_t *dn = list;
        list = dn->next;
        forget_file(g, dn->name);
        core_free(dn);
    }
    datad__stream_kick(g->d);
}

static int enqueue(datad_ingest_t *g, const char *path, int from_spool);

int datad__ingest_enqueue(datad_ingest_t *g, const char *path, int from_spool)
{
    if (g->d->stopping) {
        return CORE_ECLOSED;
    }
    if (!from_spool) {
        int rc = datad__ctlq_add(&g->ctlq, path);
        if (rc < 0) {
            return rc;
        }
    }
    return enqueue(g, path, from_spool);
}

static int enqueue(datad_ingest_t *g, const char *path, int from_spool)
{
    datad_ingest_item_t *it = core_calloc(1, sizeof(*it));
    if (it == NULL) {
        return CORE_ERR(ENOMEM);
    }
    it->path = core_strdup(path);
    if (it->path == NULL) {
        core_free(it);
        return CORE_ERR(ENOMEM);
    }
    it->from_spool = from_spool;
    pthread_mutex_lock(&g->mu);
    if (g->q_tail != NULL) {
        g->q_tail->next = it;
    } else {
        g->q_head = it;
    }
    g->q_tail = it;
    g->q_len++;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

void datad__ingest_pause(datad_ingest_t *g, int paused)
{
    pthread_mutex_lock(&g->mu);
    g->paused = paused;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A spool candidate: a regular file with a shard extension, not hidden, not a partial write. */
static int spool_name_ok(const char *n)
{
    if (n[0] == '.') {
        return 0;
    }
    static const char *const ext[] = {".tar", ".tar.gz", ".tgz", ".tar.zst"};
    size_t len = strlen(n);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t el = strlen(ext[i]);
        if (len > el && strcmp(n + len - el, ext[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

typedef struct scan_res_s {
    char **names;
    int64_t *sizes, *mtimes;
    size_t n, cap;
} scan_res_t;

static void scan_work(uv_work_t *req)
{
    datad_ingest_t *g = req->data;
    scan_res_t r;
    memset(&r, 0, sizeof(r));
    DIR *dir = opendir(g->d->cfg->spool_dir);
    if (dir != NULL) {
        int dfd = dirfd(dir);
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (!spool_name_ok(de->d_name)) {
                continue;
            }
            struct stat st;
            if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
                continue;
            }
            if (r.n == r.cap) {
                size_t cap = r.cap ? r.cap * 2 : 32;
                char **nn = core_realloc(r.names, cap * sizeof(char *));
                if (nn == NULL) {
                    break;
                }
                r.names = nn;
                int64_t *ns = core_realloc(r.sizes, cap * sizeof(int64_t));
                if (ns == NULL) {
                    break;
                }
                r.sizes = ns;
                int64_t *nm = core_realloc(r.mtimes, cap * sizeof(int64_t));
                if (nm == NULL) {
                    break;
                }
                r.mtimes = nm;
                r.cap = cap;
            }
            char *name = core_strdup(de->d_name);
            if (name == NULL) {
                break;
            }
            r.names[r.n] = name;
            r.sizes[r.n] = (int64_t)st.st_size;
            r.mtimes[r.n] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
            r.n++;
        }
        closedir(dir);
    }
    /* Handed to scan_after, which runs on the loop thread after this returns. */
    g->scan_names = r.names;
    g->scan_sizes = r.sizes;
    g->scan_mtimes = r.mtimes;
    g->scan_n = r.n;
}

static void scan_after(uv_work_t *req, int status)
{
    datad_ingest_t *g = req->data;
    char **names = g->scan_names;
    size_t n = g->scan_n;
    g->scan_names = NULL;
    g->scanning = 0;
    uint64_t now = datad__now_ms();
    for (datad_spool_file_t *f = g->files; f != NULL; f = f->next) {
        f->seen = 0;
    }
    for (size_t i = 0; i < n && status == 0; i++) {
        datad_spool_file_t *f = g->files;
        while (f != NULL && strcmp(f->name, names[i]) != 0) {
            f = f->next;
        }
        if (f == NULL) {
            f = core_calloc(1, sizeof(*f));
            if (f == NULL) {
                continue;
            }
            f->name = names[i];
            names[i] = NULL;
            f->size = g->scan_sizes[i];
            f->mtime_ns = g->scan_mtimes[i];
            f->stable_since_ms = now;
            f->next = g->files;
            g->files = f;
            core_log_debug("spool: new file %s", f->name);
        } else if (f->size != g->scan_sizes[i] || f->mtime_ns != g->scan_mtimes[i]) {
            f->size = g->scan_sizes[i];
            f->mtime_ns = g->scan_mtimes[i];
            f->stable_since_ms = now;
        }
        f->seen = 1;
    }
    for (size_t i = 0; i < n; i++) {
        core_free(names[i]);
    }
    core_free(names);
    core_free(g->scan_sizes);
    core_free(g->scan_mtimes);
    g->scan_sizes = g->scan_mtimes = NULL;
    g->scan_n = 0;
    uint64_t next = now + g->d->cfg->spool_rescan_s * 1000;
    for (datad_spool_file_t **pp = &g->files; *pp != NULL;) {
        datad_spool_file_t *f = *pp;
        if (!f->seen && !f->queued) {
            *pp = f->next;
            core_free(f->name);
            core_free(f);
            continue;
        }
        if (!f->queued && f->seen) {
            if (now - f->stable_since_ms >= g->d->cfg->spool_settle_ms) {
                char path[4096 + 260];
                snprintf(path, sizeof path, "%s/%s", g->d->cfg->spool_dir, f->name);
                if (datad__ingest_enqueue(g, path, 1) == 0) {
                    f->queued = 1;
                    core_log_info("spool: %s is complete (%lld bytes); queued", f->name,
                                  (long long)f->size);
                }
            } else {
                /* Look again when it may have settled. */
                uint64_t due = f->stable_since_ms + g->d->cfg->spool_settle_ms + 50;
                if (due < next) {
                    next = due;
                }
            }
        }
        pp = &(*pp)->next;
    }
    g->next_scan_ms = next;
    if (g->rescan_wanted && !g->d->stopping) {
        g->rescan_wanted = 0;
        g->next_scan_ms = now;
    }
}

static void request_scan(datad_ingest_t *g)
{
    if (!g->d->cfg->spool_enabled || g->d->stopping) {
        return;
    }
    if (g->scanning) {
        g->rescan_wanted = 1;
        return;
    }
    g->scanning = 1;
    g->scan_req.data = g;
    int rc = uv_queue_work(g->d->loop, &g->scan_req, scan_work, scan_after);
    if (rc < 0) {
        g->scanning = 0;
        core_log_err("spool: cannot queue a scan: %s", uv_strerror(rc));
    }
}

static void fs_event_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    datad_ingest_t *g = h->data;
    if (status < 0) {
        core_log_warn("spool: watch error: %s (periodic rescans continue)", uv_strerror(status));
        return;
    }
    request_scan(g);
}

void datad__ingest_cron(datad_ingest_t *g, uint64_t now_ms)
{
    if (now_ms >= g->next_scan_ms) {
        g->next_scan_ms = now_ms + g->d->cfg->spool_rescan_s * 1000;
        request_scan(g);
    }
}

static int mkdir_p1(const char *path)
{
    if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        int e = errno;
        core_log_err("spool: mkdir %s: %s", path, strerror(e));
        return CORE_ERR(e);
    }
    return 0;
}

int datad__ingest_start(datad_ingest_t *g, datad_t *d)
{
    g->d = d;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    int rc = uv_async_init(d->loop, &g->async, async_cb);
    if (rc < 0) {
        return rc;
    }
    g->async.data = g;
    if (g->tok != NULL) {
        pl_ingest_opts_t o;
        pl_ingest_opts_default(&o);
        o.batch_records = d->cfg->ingest_batch_records;
        o.batch_bytes = d->cfg->ingest_batch_bytes;
        o.progress = progress_cb;
        o.progress_ud = g;
        o.stop = &g->ingest_stop;
        o.threads = (int)d->cfg->ingest_threads;
        rc = pl_ingest_new(d->store, g->tok, &o, &g->ing);
        if (rc < 0) {
            core_log_err("ingest: %s (serving continues; ingest is off)", core_strerror(rc));
            g->ing = NULL;
        }
    }
    if (g->ing != NULL) {
        char qpath[4096 + 32];
        snprintf(qpath, sizeof qpath, "%s/ingest-queue.log", d->cfg->store_dir);
        CORE_TRY(datad__ctlq_open(&g->ctlq, qpath));
        for (size_t i = 0; i < g->ctlq.n; i++) {
            CORE_TRY(enqueue(g, g->ctlq.paths[i], 0));
        }
        if (g->ctlq.n > 0) {
            core_log_notice("ingest: %zu file(s) queued with sc-ctl before the restart are queued "
                            "again",
                            g->ctlq.n);
        }
    }
    if (d->cfg->spool_enabled) {
        char sub[4096 + 16];
        CORE_TRY(mkdir_p1(d->cfg->spool_dir));
        snprintf(sub, sizeof sub, "%s/done", d->cfg->spool_dir);
        CORE_TRY(mkdir_p1(sub));
        snprintf(sub, sizeof sub, "%s/failed", d->cfg->spool_dir);
        CORE_TRY(mkdir_p1(sub));
        uv_fs_event_init(d->loop, &g->fs_event);
        g->fs_event.data = g;
        g->fs_event_on = 1;
        rc = uv_fs_event_start(&g->fs_event, fs_event_cb, d->cfg->spool_dir, 0);
        if (rc < 0) {
            core_log_warn("spool: inotify watch failed (%s); relying on rescans", uv_strerror(rc));
        }
        g->next_scan_ms = 0; /* first scan at the first cron tick */
    }
    int e = pthread_create(&g->thread, NULL, writer_main, g);
    if (e != 0) {
        return CORE_ERR(e);
    }
    g->started = 1;
    return 0;
fail:
    return rc;
}

static void noop_close(uv_handle_t *h) { (void)h; }

void datad__ingest_stop(datad_ingest_t *g)
{
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    __atomic_store_n(&g->ingest_stop, 1, __ATOMIC_SEQ_CST);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->fs_event_on) {
        g->fs_event_on = 0;
        uv_close((uv_handle_t *)&g->fs_event, noop_close);
    }
}

int datad__ingest_join(datad_ingest_t *g, int force)
{
    if (!g->started) {
        return 1;
    }
    if (!atomic_load(&g->finished) && !force) {
        return 0;
    }
    if (!atomic_load(&g->finished)) {
        return 0;
    }
    pthread_join(g->thread, NULL);
    g->started = 0;
    return 1;
}

void datad__ingest_free(datad_ingest_t *g)
{
    datad__ctlq_close(&g->ctlq);
    if (!uv_is_closing((uv_handle_t *)&g->async)) {
        uv_close((uv_handle_t *)&g->async, noop_close);
    }
    while (g->q_head != NULL) {
        datad_ingest_item_t *it = g->q_head;
        g->q_head = it->next;
        core_free(it->path);
        core_free(it);
    }
    g->q_tail = NULL;
    done_name_t *list = g->done_names;
    while (list != NULL) {
        done_name_t *dn = list;
        list = dn->next;
        core_free(dn);
    }
    g->done_names = NULL;
    while (g->files != NULL) {
        datad_spool_file_t *f = g->files;
        g->files = f->next;
        core_free(f->name);
        core_free(f);
    }
}
