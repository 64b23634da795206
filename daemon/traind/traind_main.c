/* sc-traind: the SuperClass trainer daemon. Pulls batches from sc-datad (or a local store), trains
 * a ViT or a CRU-Net (traind_model.c) with the SuperClass head (online-IDF loss, AdamW, warm-up + cosine schedule), checkpoints
 * on a schedule and resumes exactly (weights, moments, IDF statistics, step, schedule position,
 * data cursor; the data order and augmentation are pure functions of seed and cursor, so no other
 * RNG state exists). See docs/TRAIND.md.
 *
 * Signals: SIGTERM/SIGINT finish the step, checkpoint, exit 0; a second SIGINT exits at once
 * (130); SIGUSR1 checkpoints after the current step. systemd Type=notify: READY after the first
 * batch, STATUS every log interval, WATCHDOG from the training loop. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "nn/adamw.h"
#include "nn/blas.h"
#include "nn/vit.h"
#include "traind.h"

static volatile sig_atomic_t g_stop;     /* SIGTERM/SIGINT/control "stop" */
static volatile sig_atomic_t g_ckpt_now; /* SIGUSR1/control "checkpoint" */

static void on_signal(int sig)
{
    if (sig == SIGUSR1) {
        g_ckpt_now = 1;
        return;
    }
    if (sig == SIGINT && g_stop) {
        static const char msg[] = "sc-traind: second SIGINT, exiting without a checkpoint\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(130);
    }
    g_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sc-traind [--config FILE] [--set section.key=value]... [--store DIR]\n"
            "                 [--print-config] [--check-config] [--help]\n"
            "\n"
            "Trains a SuperClass model on batches from sc-datad (data.socket) or from a shard\n"
            "store read in-process (--store DIR = --set data.store=DIR). Checkpoints go to\n"
            "checkpoint.dir; on start the newest valid one is resumed.\n"
            "\n"
            "Backbones (model.backbone): ViT-Ti/16, ViT-S/16, ViT-B/16, ViT-L/16 (patch 16, 14\n"
            "or 8), ViT-Micro/P, ViT-Mini/P; CRU-Net presets crunet56, crunet116,\n"
            "crunet56-136x1d, crunet35c (32x32), crunet35c-s2 (64x64), crunet24-mini,\n"
            "resnext50-32x4d, resnet50 (each also as NAME-noshare). All with the SuperClass head.\n"
            "\n"
            "  --config FILE    INI config (default /etc/superclass/traind.conf if present)\n"
            "  --set K=V        override one key, e.g. --set train.steps=500 (repeatable)\n"
            "  --store DIR      read this shard store directly instead of the data socket\n"
            "  --print-config   print every key with its help, range and value, then exit\n"
            "  --check-config   validate the configuration and exit\n"
            "\n"
            "signals: TERM/INT finish the step, checkpoint, exit 0; a second INT exits at once;\n"
            "USR1 checkpoints now. Control: sc-ctl --socket <log.control> status|checkpoint|stop\n"
            "exit status: 0 done or stopped, 1 error, 2 usage\n");
}

typedef struct run_s {
    traind_cfg_t *cfg;
    traind_model_t m;
    traind_data_t *data;
    traind_ctl_t *ctl;
    traind_status_t status;
    traind_state_t st;
    traind_meta_t meta;
    char vocab_hash[65];
    char vocab_path[4096];
    float *images;
    /* Copies of every buffer (IDF statistics; a CRU-Net's BN running statistics) taken before each
     * forward, so a skipped step leaves no trace. */
    uint8_t *buf_backup;
    void **buf_ptr;
    size_t *buf_bytes;
    size_t n_buf;
    uint64_t ckpts;
    /* mpirun (traind_dist.c): world 1 and everything below unused for one process */
    traind_dist_t *dist;
    traind_reducer_t *red;
    uint64_t *cursors; /* [2 * world]: every rank's cursor, gathered to rank 0 at each save */
    int stop, ckpt_now; /* the job's decisions (any rank's signal), agreed every step */
    int fatal;          /* a collective failed or the ranks diverged: end the job */
} run_t;

static int save(run_t *r)
{
    char path[4200];
    if (r->dist->on) {
        /* collective: every rank's cursor to rank 0, and a check that no rank drifted */
        uint64_t mine[2] = {r->st.epoch, r->st.position};
        int crc = traind__dist_gather_u64(r->dist, mine, 2, r->cursors);
        if (crc == 0) {
            crc = traind__dist_check_same(r->dist, &r->m, "at the checkpoint");
        }
        if (crc < 0) {
            r->fatal = crc;
            return crc;
        }
        r->st.world = (uint64_t)r->dist->world;
        r->st.cursors = r->cursors;
        if (r->dist->rank != 0) {
            r->st.seq++; /* only rank 0 writes; the sequence stays in step */
            return 0;
        }
    }
    r->st.seq++;
    int rc = traind__ckpt_save(r->cfg, &r->m, &r->meta, &r->st, path, sizeof path);
    r->st.cursors = NULL;
    if (rc < 0) {
        r->st.seq--;
        return rc;
    }
    r->ckpts++;
    pthread_mutex_lock(&r->status.mu);
    snprintf(r->status.last_ckpt, sizeof r->status.last_ckpt, "%s", path);
    r->status.ckpts_written = r->ckpts;
    pthread_mutex_unlock(&r->status.mu);
    core_log_info("checkpoint %s (step %" PRIu64 ", cursor %" PRIu64 ":%" PRIu64 ")", path,
                  r->st.step, r->st.epoch, r->st.position);
    return 0;
}

static void set_state(run_t *r, const char *s)
{
    pthread_mutex_lock(&r->status.mu);
    snprintf(r->status.state, sizeof r->status.state, "%s", s);
    pthread_mutex_unlock(&r->status.mu);
}

static void free_buffers(run_t *r)
{
    core_free(r->buf_backup);
    core_free(r->buf_ptr);
    core_free(r->buf_bytes);
    r->buf_backup = NULL;
    r->buf_ptr = NULL;
    r->buf_bytes = NULL;
    r->n_buf = 0;
}

static int find_buffers(run_t *r)
{
    size_t n = traind__model_num_tensors(&r->m), k = 0, total = 0;
    r->buf_ptr = core_calloc(n + 1, sizeof *r->buf_ptr);
    r->buf_bytes = core_calloc(n + 1, sizeof *r->buf_bytes);
    if (r->buf_ptr == NULL || r->buf_bytes == NULL) {
        return CORE_ERR(ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        if (traind__model_tensor(&r->m, i, &t) == 0 && t.is_buffer) {
            r->buf_ptr[k] = t.data;
            r->buf_bytes[k] = t.numel * (t.dtype == NN_DTYPE_F64 ? sizeof(double) : sizeof(float));
            total += r->buf_bytes[k];
            k++;
        }
    }
    r->n_buf = k;
    r->buf_backup = core_malloc(total > 0 ? total : 1);
    return r->buf_backup != NULL ? 0 : CORE_ERR(ENOMEM);
}

static void buffers_copy(run_t *r, int restore)
{
    uint8_t *p = r->buf_backup;
    for (size_t k = 0; k < r->n_buf; k++) {
        if (restore) {
            memcpy(r->buf_ptr[k], p, r->buf_bytes[k]);
        } else {
            memcpy(p, r->buf_ptr[k], r->buf_bytes[k]);
        }
        p += r->buf_bytes[k];
    }
}

static double grad_sumsq(const traind_model_t *m)
{
    double s = 0;
    size_t n = traind__model_num_tensors(m);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        if (traind__model_tensor(m, i, &t) == 0 && t.grad != NULL) {
            s += nn_sumsq(t.grad, t.numel);
        }
    }
    return s;
}

static int build_model(run_t *r, int vocab)
{
    int rc = traind__model_new(r->cfg->model_backbone, (int)r->cfg->model_image_size, vocab,
                               (int)r->cfg->batch, &r->m);
    if (rc < 0) {
        core_log_err("model %s (image %llu, vocab %d, batch %llu): %s", r->cfg->model_backbone,
                     (unsigned long long)r->cfg->model_image_size, vocab,
                     (unsigned long long)r->cfg->batch, core_strerror(rc));
        return rc;
    }
    r->meta.is_cru = r->m.is_cru;
    r->meta.vit = r->m.vc;
    core_log_info("model %s (%s): %zu parameters, image %d, vocab %d, batch %d",
                  r->cfg->model_backbone, r->m.is_cru ? "CRU-Net" : "ViT",
                  traind__model_num_params(&r->m), (int)r->cfg->model_image_size, vocab,
                  (int)r->cfg->batch);
    return find_buffers(r);
}

/* CRU-Net under mpirun: BN running statistics come from each rank's own batch statistics; as
 * PyTorch DDP does (broadcast_buffers), rank 0's are copied to every rank after each step so the
 * checkpoint and the cross-rank check see one model. The IDF buffers are already identical. */
static int bcast_running_stats(run_t *r)
{
    size_t n = traind__model_num_tensors(&r->m);
    for (size_t i = 0; i < n; i++) {
        nn_tensor_t t;
        if (traind__model_tensor(&r->m, i, &t) < 0 || !t.is_buffer || t.dtype != NN_DTYPE_F32) {
            continue;
        }
        int rc = traind__dist_bcast(r->dist, t.data, t.numel * sizeof(float));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* CPU seconds of the whole process (every thread), for the benchmarks' per-CPU-second figures. */
static double cpu_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) {
        return 0;
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int train(run_t *r)
{
    traind_cfg_t *cfg = r->cfg;
    const uint64_t total = traind__cfg_total_steps(cfg);
    const int B = (int)cfg->batch, S = (int)cfg->model_image_size;
    nn_adamw_cfg_t opt = nn_adamw_defaults();
    opt.beta1 = (float)cfg->beta1;
    opt.beta2 = (float)cfg->beta2;
    opt.eps = (float)cfg->eps;
    opt.weight_decay = (float)cfg->wd;
    opt.clip_norm = (float)cfg->clip;
    unsigned long long nf_from = 0, nf_count = 0;
    if (cfg->debug_nonfinite[0] != '\0') {
        (void)sscanf(cfg->debug_nonfinite, "%llu:%llu", &nf_from, &nf_count);
    }
    r->images = core_malloc_aligned(64, (size_t)B * 3 * (size_t)S * (size_t)S * sizeof(float));
    if (r->images == NULL) {
        return CORE_ERR(ENOMEM);
    }
    uint64_t wd_usec = 0;
    int wd_on = sd_watchdog_enabled(0, &wd_usec) > 0;
    double last_wd = core_now_s(), last_ckpt_t = core_now_s();
    double cpu_t0 = cpu_now();
    double iv_t0 = core_now_s(), iv_wait = 0, iv_loss = 0, run_t0 = core_now_s(), run_wait = 0;
    uint64_t iv_steps = 0, iv_loss_n = 0, run_steps = 0, in_row = 0;
    int ready = 0, rc = 0;
    set_state(r, "training");
    const int dist = r->dist->on, is0 = r->dist->rank == 0;
    const uint64_t W = (uint64_t)r->dist->world;
    while (r->st.step < total && r->fatal == 0) {
        if (dist ? r->stop : g_stop) {
            break;
        }
        if (dist ? r->ckpt_now : g_ckpt_now) {
            g_ckpt_now = 0;
            r->ckpt_now = 0;
            if (save(r) == 0) {
                last_ckpt_t = core_now_s();
            }
            if (r->fatal < 0) {
                break;
            }
        }
        double tw = core_now_s();
        traind_slot_t *slot = NULL;
        rc = traind__data_next(r->data, &slot);
        double waited = core_now_s() - tw;
        if (rc < 0) {
            core_log_err("no data: %s", core_strerror(rc));
            break;
        }
        if (ready) {
            iv_wait += waited; /* the first batch's latency is start-up, not steady state */
            run_wait += waited;
        } else {
            ready = 1;
            iv_t0 = run_t0 = core_now_s();
            cpu_t0 = cpu_now();
            sd_notify(0, "READY=1\nSTATUS=first batch received, training");
            core_log_info("first batch after %.2f s; training %" PRIu64 " -> %" PRIu64 " steps",
                          waited, r->st.step, total);
        }
        nn_vit_images_from_u8(r->images, slot->images, B, S, S);
        if (nf_count > 0 && r->st.step >= nf_from && r->st.step < nf_from + nf_count) {
            r->images[0] = NAN; /* test hook: a NaN input poisons the loss and every gradient */
        }
        buffers_copy(r, 0);
        float loss = 0;
        int lrc = 0, time_due = 0;
        if (dist) {
            /* The flags travel with the IDF counts: the whole job stops, checkpoints or skips the
             * step together. Wall-clock checkpoints follow rank 0's clock. */
            time_due = is0 && cfg->ckpt_every_minutes > 0 &&
                       core_now_s() - last_ckpt_t >= cfg->ckpt_every_minutes * 60;
            uint32_t fl[TRAIND_DIST_NFLAGS] = {0, (uint32_t)(g_stop != 0),
                                                (uint32_t)(g_ckpt_now != 0), (uint32_t)time_due};
            traind__model_forward(&r->m, r->images);
            lrc = traind__dist_loss(r->dist, &r->m, slot->off, slot->ids, cfg->idf, fl, &loss);
            if (lrc < 0 && lrc != CORE_ECORRUPT) {
                traind__data_release(r->data);
                rc = lrc;
                break;
            }
            r->stop = fl[TRAIND_DIST_STOP] != 0;
            r->ckpt_now = fl[TRAIND_DIST_CKPT] != 0;
            time_due = fl[TRAIND_DIST_DUE] != 0;
        } else {
            lrc = traind__model_forward_loss(&r->m, r->images, slot->off, slot->ids, cfg->idf,
                                             &loss);
        }
        uint64_t cur_e = slot->epoch, cur_p = slot->position;
        traind__data_release(r->data);
        int finite = lrc == 0 && isfinite(loss);
        double gss = 0;
        if (dist && lrc == 0) {
            /* Every rank runs the backward and the reduce even with a non-finite local loss (the
             * others wait in the collective); NaNs then reach every rank's reduced gradient and
             * the job skips the step as one. */
            traind__dist_reducer_begin(r->red);
            traind__model_backward(&r->m);
            rc = traind__dist_reducer_finish(r->red);
            double lsum = (double)loss;
            if (rc == 0) {
                double t0 = core_now_s();
                rc = traind__dist_sum_f64(r->dist, &lsum, 1);
                r->dist->t_idf += core_now_s() - t0;
            }
            if (rc < 0) {
                break;
            }
            loss = (float)(lsum / (double)W); /* the global batch's mean */
            gss = grad_sumsq(&r->m);
            finite = isfinite(loss) && isfinite(gss);
        } else if (finite) {
            traind__model_backward(&r->m);
            gss = grad_sumsq(&r->m);
            finite = isfinite(gss);
        }
        float lr = nn_lr_schedule((float)cfg->lr, (int64_t)cfg->warmup, (int64_t)total,
                                  (int64_t)r->st.step);
        double gnorm = sqrt(gss);
        if (!finite) {
            buffers_copy(r, 1); /* a skipped step leaves no trace: IDF counts, BN statistics */
            r->st.skipped++;
            in_row++;
            core_log_warn("step %" PRIu64 ": %s (loss %g, gradient sum of squares %g); step "
                          "skipped (%" PRIu64 " in a row, %" PRIu64 " in total)",
                          r->st.step, lrc < 0 ? "bad labels" : "non-finite values", (double)loss,
                          gss, in_row, r->st.skipped);
            if (in_row >= cfg->max_nonfinite) {
                core_log_err("%" PRIu64 " non-finite steps in a row (train.max_nonfinite): "
                             "stopping without a checkpoint; the last good one is %s",
                             in_row, r->status.last_ckpt[0] ? r->status.last_ckpt : "(none)");
                rc = CORE_ESTATE;
                set_state(r, "failed");
                return rc;
            }
        } else {
            in_row = 0;
            traind__model_step(&r->m, &opt, lr);
            iv_loss += loss;
            iv_loss_n++;
        }
        if (dist && r->m.is_cru && bcast_running_stats(r) < 0) {
            rc = CORE_ESTATE;
            break;
        }
        r->st.step++;
        r->st.samples += (uint64_t)B * W;
        r->st.epoch = cur_e;
        r->st.position = cur_p;
        iv_steps++;
        run_steps++;
        if (cfg->debug_step_sleep_ms > 0) {
            struct timespec ts = {(time_t)(cfg->debug_step_sleep_ms / 1000),
                                  (long)(fmod(cfg->debug_step_sleep_ms, 1000) * 1e6)};
            nanosleep(&ts, NULL);
        }
        double now = core_now_s();
        pthread_mutex_lock(&r->status.mu); /* live step and cursor for the control socket */
        r->status.step = r->st.step;
        r->status.epoch = r->st.epoch;
        r->status.position = r->st.position;
        r->status.skipped = r->st.skipped;
        pthread_mutex_unlock(&r->status.mu);
        if (r->st.step % cfg->log_every == 0 || r->st.step == total) {
            double el = now - iv_t0;
            pthread_mutex_lock(&r->status.mu);
            r->status.step = r->st.step;
            r->status.skipped = r->st.skipped;
            r->status.epoch = r->st.epoch;
            r->status.position = r->st.position;
            r->status.loss = iv_loss_n ? iv_loss / (double)iv_loss_n : NAN;
            r->status.lr = lr;
            r->status.img_s = el > 0 ? (double)iv_steps * B / el : 0;
            r->status.data_wait = el > 0 ? iv_wait / el : 0;
            r->status.grad_norm = gnorm;
            r->status.reconnects = traind__data_reconnects(r->data);
            traind_status_t snap = r->status;
            pthread_mutex_unlock(&r->status.mu);
            core_log_info("step %" PRIu64 "/%" PRIu64 " loss %.4f lr %.3g %.1f img/s data wait "
                          "%.1f%% grad %.3g%s",
                          snap.step, total, snap.loss, snap.lr, snap.img_s, 100 * snap.data_wait,
                          snap.grad_norm, snap.skipped ? " (some steps skipped)" : "");
            sd_notifyf(0, "STATUS=step %" PRIu64 " loss %.2f %.0f img/s", snap.step, snap.loss,
                       snap.img_s);
            if (cfg->metrics_path[0] != '\0') {
                int mrc = traind__metrics_line(cfg->metrics_path, &snap, (double)time(NULL));
                if (mrc < 0) {
                    core_log_warn("log.metrics %s: %s", cfg->metrics_path, core_strerror(mrc));
                }
            }
            if (cfg->prom_path[0] != '\0') {
                int prc = traind__prom_write(cfg->prom_path, &snap);
                if (prc < 0) {
                    core_log_warn("log.prometheus %s: %s", cfg->prom_path, core_strerror(prc));
                }
            }
            iv_t0 = now;
            iv_wait = iv_loss = 0;
            iv_steps = iv_loss_n = 0;
        }
        if (wd_on && now - last_wd > (double)wd_usec / 2e6) {
            sd_notify(0, "WATCHDOG=1");
            last_wd = now;
        }
        int due = (cfg->ckpt_every_steps > 0 && r->st.step % cfg->ckpt_every_steps == 0) ||
                  (dist ? time_due
                        : cfg->ckpt_every_minutes > 0 &&
                              now - last_ckpt_t >= cfg->ckpt_every_minutes * 60);
        if (due && r->st.step < total && !(dist ? r->stop : g_stop)) {
            if (save(r) == 0) {
                last_ckpt_t = core_now_s();
            }
        }
    }
    double run_el = core_now_s() - run_t0, run_cpu = cpu_now() - cpu_t0;
    if (run_steps > 1 && run_el > 0) {
        /* One machine-readable line for bench/bench_e2e.sh (img_s: this rank's). Under mpirun
         * also the seconds spent in the collectives: the IDF counts + flags and the loss
         * (small), the backward hook (starting and progressing buckets), and the wait for the
         * gradient all-reduce after the backward. */
        if (dist) {
            core_log_info("RESULT steps=%" PRIu64 " img_s=%.2f data_wait=%.5f skipped=%" PRIu64
                          " world=%d rank=%d run_s=%.4f cpu_s=%.4f small_s=%.4f hook_s=%.4f"
                          " wait_s=%.4f",
                          run_steps, (double)(run_steps - 1) * B / run_el, run_wait / run_el,
                          r->st.skipped, r->dist->world, r->dist->rank, run_el, run_cpu, r->dist->t_idf,
                          r->dist->t_hook, r->dist->t_wait);
        } else {
            core_log_info("RESULT steps=%" PRIu64 " img_s=%.2f data_wait=%.5f skipped=%" PRIu64,
                          run_steps, (double)(run_steps - 1) * B / run_el, run_wait / run_el,
                          r->st.skipped);
        }
    }
    if (rc == 0 && r->fatal < 0) {
        rc = r->fatal;
    }
    if (rc < 0) {
        return rc;
    }
    set_state(r, "checkpointing");
    sd_notify(0, "STOPPING=1\nSTATUS=final checkpoint");
    if (run_steps > 0 || (dist ? r->ckpt_now : g_ckpt_now)) {
        rc = save(r);
        if (dist && r->fatal == 0) {
            /* every rank waits for rank 0's write, so the job ends only once it is on disk */
            int any = 0;
            int arc = traind__dist_any(r->dist, rc < 0, &any);
            rc = rc < 0 ? rc : (arc < 0 ? arc : (any ? CORE_ESTATE : 0));
        }
    }
    if (rc == 0) {
        core_log_info("%s at step %" PRIu64 "/%" PRIu64,
                      r->st.step >= total ? "training complete" : "stopped", r->st.step, total);
    }
    set_state(r, r->st.step >= total ? "complete" : "stopped");
    return rc;
}

/* Makes a rank's local failure the job's: every rank learns whether any failed (one rank alone
 * returning would leave the others blocked in the next collective). */
static int agree(const run_t *r, int rc)
{
    int any = 0;
    if (traind__dist_any(r->dist, rc < 0, &any) < 0) {
        return CORE_ESTATE;
    }
    return rc < 0 ? rc : (any ? CORE_ESTATE : 0);
}

/* What rank 0 found in checkpoint.dir, sent to every rank. */
typedef struct start_s {
    int64_t rc, resumed, vocab, done;
    uint64_t step, seq, skipped, samples, world;
    char vocab_hash[65];
} start_t;

static int run(traind_cfg_t *cfg, traind_dist_t *dist)
{
    run_t r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.dist = dist;
    pthread_mutex_init(&r.status.mu, NULL);
    r.status.started_s = core_now_s();
    r.status.total_steps = traind__cfg_total_steps(cfg);
    snprintf(r.status.backbone, sizeof r.status.backbone, "%s", cfg->model_backbone);
    snprintf(r.status.state, sizeof r.status.state, "starting");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const int is0 = dist->rank == 0;
    const uint64_t W = (uint64_t)dist->world;
    int rc = 0, resumed = 0;
    traind_data_info_t info;
    memset(&info, 0, sizeof info);
    r.meta.backbone = cfg->model_backbone;
    r.meta.image_size = (int)cfg->model_image_size;
    r.meta.seed = cfg->seed;
    r.meta.total_steps = r.status.total_steps;
    r.meta.vocab_hash = r.vocab_hash;
    r.meta.vocab_path = r.vocab_path;
    int vocab = 0, lock_fd = -1;
    char ck_path[4200] = "";
    r.cursors = core_calloc(2 * W, sizeof *r.cursors);
    if (r.cursors == NULL) {
        rc = CORE_ERR(ENOMEM);
    }
    /* Only rank 0 touches checkpoint.dir (it may be on rank 0's node only). */
    start_t h;
    memset(&h, 0, sizeof h);
    if (is0 && rc == 0) {
        rc = traind__ckpt_lock(cfg, &lock_fd);
    }
    if (is0 && rc == 0 && cfg->ckpt_resume && traind__ckpt_peek_vocab(cfg, &vocab)) {
        rc = build_model(&r, vocab);
        if (rc == 0) {
            rc = traind__ckpt_resume(cfg, &r.m, &r.meta, &r.st, ck_path, sizeof ck_path);
        }
        if (rc >= 0) {
            resumed = rc;
            rc = 0;
            if (resumed) {
                core_log_info("resuming from %s: step %" PRIu64 ", cursor %" PRIu64 ":%" PRIu64
                              ", %" PRIu64 " skipped steps",
                              ck_path, r.st.step, r.st.epoch, r.st.position, r.st.skipped);
                snprintf(r.status.last_ckpt, sizeof r.status.last_ckpt, "%s", ck_path);
            } else {
                core_log_warn("no valid checkpoint in %s: starting a new run", cfg->ckpt_dir);
                memset(&r.st, 0, sizeof r.st);
            }
        }
    }
    if (is0) {
        h.rc = rc;
        h.resumed = resumed;
        h.vocab = vocab;
        h.step = r.st.step;
        h.seq = r.st.seq;
        h.skipped = r.st.skipped;
        h.samples = r.st.samples;
        h.world = resumed ? (r.st.world ? r.st.world : 1) : W;
        snprintf(h.vocab_hash, sizeof h.vocab_hash, "%s", r.st.vocab_hash);
        if (rc == 0 && resumed && h.world != W) {
            core_log_err("checkpoint %s was written by a job of %" PRIu64 " rank%s; this job has "
                         "%" PRIu64 ": refusing to resume (every rank's data cursor belongs to "
                         "that split of the epochs). Restart with mpirun -np %" PRIu64 ", or point "
                         "checkpoint.dir elsewhere for a new run",
                         ck_path, h.world, h.world == 1 ? "" : "s", W, h.world);
            h.rc = CORE_EMISMATCH;
        }
        h.done = h.rc == 0 && resumed && r.st.step >= r.status.total_steps;
        if (h.done) {
            core_log_info("the run is complete (step %" PRIu64 " of %" PRIu64 "): nothing to do",
                          r.st.step, r.status.total_steps);
        }
        if (resumed && h.rc == 0) {
            if (r.st.cursors != NULL) {
                memcpy(r.cursors, r.st.cursors, 2 * W * sizeof *r.cursors);
            } else {
                r.cursors[0] = r.st.epoch;
                r.cursors[1] = r.st.position;
            }
        }
        core_free(r.st.cursors);
        r.st.cursors = NULL;
    }
    /* Every rank learns the outcome, its own cursor and the run state. */
    rc = traind__dist_bcast(dist, &h, sizeof h);
    if (rc == 0) {
        rc = traind__dist_bcast(dist, r.cursors, 2 * W * sizeof *r.cursors);
    }
    if (rc < 0 || h.rc < 0 || h.done) {
        rc = rc < 0 ? rc : (int)h.rc; /* done: 0, a clean exit on every rank */
        goto fail;
    }
    resumed = (int)h.resumed;
    vocab = (int)h.vocab;
    r.st.step = h.step;
    r.st.seq = h.seq;
    r.st.skipped = h.skipped;
    r.st.samples = h.samples;
    r.st.epoch = r.cursors[2 * dist->rank];
    r.st.position = r.cursors[2 * dist->rank + 1];
    snprintf(r.st.vocab_hash, sizeof r.st.vocab_hash, "%s", h.vocab_hash);
    if (dist->on && resumed && is0) {
        core_log_info("resuming %d ranks, each at its own cursor", dist->world);
    }
    /* The data split: the node's ranks share its sc-datad (or store), or all ranks one. */
    uint32_t drank = (uint32_t)(cfg->dist_data_split ? dist->rank : dist->local_rank);
    uint32_t dworld = (uint32_t)(cfg->dist_data_split ? dist->world : dist->local_world);
    rc = traind__data_open(cfg, drank, dworld, r.st.epoch, r.st.position, &info, &r.data);
    if (rc < 0) {
        core_log_err("cannot open the data source: %s", core_strerror(rc));
    }
    CORE_TRY(agree(&r, rc));
    snprintf(r.vocab_hash, sizeof r.vocab_hash, "%s", info.vocab_hash);
    snprintf(r.vocab_path, sizeof r.vocab_path, "%s", info.vocab_path);
    if (dist->on) {
        /* The label ids must mean the same tokens on every rank. */
        char h0[65];
        memcpy(h0, info.vocab_hash, sizeof h0);
        rc = traind__dist_bcast(dist, h0, sizeof h0);
        if (rc == 0 && strcmp(h0, info.vocab_hash) != 0) {
            core_log_err("rank %d (%s): the data's vocabulary %s differs from rank 0's %s: every "
                         "node's store must be built with the same vocabulary",
                         dist->rank, dist->host, info.vocab_hash, h0);
            rc = CORE_EMISMATCH;
        }
        CORE_TRY(agree(&r, rc));
    }
    if (is0 || !dist->on) {
        core_log_info("data: %s, %" PRIu64 " records, vocabulary %u ids (hash %.16s...)",
                      cfg->data_store[0] ? cfg->data_store : cfg->data_socket, info.records,
                      info.vocab_size, info.vocab_hash);
    }
    if (dist->on) {
        core_log_info("rank %d of %d (node %d '%s', local rank %d of %d): data slice %u of %u "
                      "from %s, cursor %" PRIu64 ":%" PRIu64,
                      dist->rank, dist->world, dist->node, dist->host, dist->local_rank,
                      dist->local_world, drank, dworld,
                      cfg->data_store[0] ? cfg->data_store : cfg->data_socket, r.st.epoch,
                      r.st.position);
    }
    if (traind__model_ok(&r.m) && (int)info.vocab_size != vocab) {
        if (resumed) {
            core_log_err("the checkpoint's vocabulary has %d ids, the data's %u: refusing to "
                         "resume (point checkpoint.dir elsewhere for a new run)",
                         vocab, info.vocab_size);
            rc = CORE_EMISMATCH;
        } else {
            traind__model_free(&r.m);
            free_buffers(&r);
        }
    }
    if (rc == 0 && resumed && strcmp(r.st.vocab_hash, info.vocab_hash) != 0) {
        core_log_err("checkpoint %s was trained with vocabulary %s but the data has %s: "
                     "refusing to resume (point checkpoint.dir elsewhere for a new run)",
                     ck_path, r.st.vocab_hash, info.vocab_hash);
        rc = CORE_EMISMATCH;
    }
    CORE_TRY(agree(&r, rc));
    r.meta.vocab_size = (int)info.vocab_size;
    if (!traind__model_ok(&r.m)) {
        rc = build_model(&r, (int)info.vocab_size);
    }
    CORE_TRY(agree(&r, rc)); /* on every rank: collectives must pair up */
    if (!resumed) {
        traind__model_init(&r.m, cfg->seed);
        if (is0) {
            core_log_info("new run: initialised from seed %llu", (unsigned long long)cfg->seed);
        }
    }
    if (dist->on) {
        /* Rank 0's weights (fresh or resumed) on every rank, verified by CRC on every rank. */
        CORE_TRY(traind__dist_bcast_model(dist, &r.m));
        rc = traind__dist_reducer_new(dist, &r.m, cfg->dist_bucket_mb, cfg->dist_overlap, &r.red);
        CORE_TRY(agree(&r, rc));
    }
    if (is0 && cfg->control_socket[0] != '\0') {
        rc = traind__ctl_start(cfg->control_socket, &r.status, &g_ckpt_now, &g_stop, &r.ctl);
        if (rc < 0) {
            core_log_err("log.control %s: %s", cfg->control_socket, core_strerror(rc));
        }
    }
    CORE_TRY(agree(&r, rc));
    rc = train(&r);
    if (rc < 0 && dist->on) {
        /* Failures inside the loop are not agreed: the other ranks may already wait in a
         * collective. mpirun ends them all (the last checkpoint stays as it was). */
        core_log_err("rank %d: %s; ending the MPI job", dist->rank, core_strerror(rc));
        traind__dist_abort(dist, 1);
    }
fail:
    traind__ctl_stop(r.ctl);
    traind__data_close(r.data);
    traind__dist_reducer_free(r.red);
    traind__dist_free_scratch(dist);
    traind__model_free(&r.m);
    free_buffers(&r);
    core_free_aligned(r.images);
    core_free(r.cursors);
    pthread_mutex_destroy(&r.status.mu);
    if (lock_fd >= 0) {
        close(lock_fd);
    }
    return rc;
}

/* Under mpirun: per-rank log name, placeholders in the data paths, and one writer of the shared
 * outputs (rank 0 owns checkpoints, the control socket, metrics and the Prometheus file). */
static int dist_setup(traind_cfg_t *cfg, const traind_dist_t *d)
{
    static char name[48];
    snprintf(name, sizeof name, "sc-traind[rank %d of %d]", d->rank, d->world);
    core_log_init(name);
    char err[CORE_CFG_ERRLEN], buf[4096];
    static const char *const keys[] = {"data.socket", "data.store"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = i == 0 ? cfg->data_socket : cfg->data_store;
        if (strchr(v, '{') == NULL) {
            continue;
        }
        int rc = traind__dist_expand(d, v, buf, sizeof buf);
        if (rc == 0) {
            rc = core_cfg_set(&traind_cfg_table, cfg, keys[i], buf, "mpirun", err, sizeof err);
        }
        if (rc < 0) {
            core_log_err("%s '%s': cannot expand the placeholders (%s)", keys[i], v,
                         rc == CORE_ETOO_LARGE ? "too long" : err);
            return rc;
        }
    }
    if (d->rank != 0) {
        static const char *const off[] = {"log.control", "log.metrics", "log.prometheus"};
        for (size_t i = 0; i < 3; i++) {
            int rc = core_cfg_set(&traind_cfg_table, cfg, off[i], "", "mpirun", err, sizeof err);
            if (rc < 0) {
                core_log_err("%s", err);
                return rc;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    core_log_init("sc-traind");
    json_set_alloc_funcs(core_malloc, core_free);
    traind_cfg_t cfg;
    char err[CORE_CFG_ERRLEN];
    if (traind__cfg_init(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sc-traind: %s\n", err);
        return 1;
    }
    static const core_cfg_flag_t flags[] = {{"--store", "data.store"}};
    core_cfg_action_t action;
    int rc = core_cfg_cli(&traind_cfg_table, &cfg, argc, argv, "/etc/superclass/traind.conf",
                          flags, 1, &action, err, sizeof err);
    if (rc == CORE_ERR(EINVAL) || action == CORE_CFG_HELP) {
        if (rc < 0) {
            fprintf(stderr, "sc-traind: %s\n", err);
        }
        usage(rc < 0 ? stderr : stdout);
        traind__cfg_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    /* --print-config shows the values as given, before finish derives anything from them. */
    if (rc == 0 && action != CORE_CFG_PRINT) {
        rc = traind__cfg_finish(&cfg, err, sizeof err);
    }
    if (rc < 0) {
        fprintf(stderr, "sc-traind: %s\n", err);
        traind__cfg_free(&cfg);
        return 1;
    }
    if (action != CORE_CFG_RUN) {
        if (action == CORE_CFG_PRINT) {
            core_cfg_print_generated(&traind_cfg_table, &cfg, "sc-traind", "docs/TRAIND.md",
                                     stdout);
        } else {
            printf("configuration ok\n");
        }
        traind__cfg_free(&cfg);
        return 0;
    }
    static const char *const levels[] = {"err", "warning", "notice", "info", "debug"};
    core_log_level_t lvl = CORE_LOG_INFO;
    (void)core_log_level_parse(levels[cfg.log_level], &lvl);
    core_log_set_level(lvl);
    nn_blas_info_t bi;
    /* May re-execute the process with OPENBLAS_CORETYPE set (before any thread exists). */
    rc = nn_blas_init((int)cfg.threads, argv, &bi);
    if (rc < 0) {
        core_log_err("OpenBLAS sgemm check failed (%s, core %s): refusing to train",
                     core_strerror(rc), bi.corename);
        traind__cfg_free(&cfg);
        return 1;
    }
    traind_dist_t dist;
    rc = traind__dist_init(&argc, &argv, &dist);
    if (rc == 0 && dist.on) {
        rc = dist_setup(&cfg, &dist);
    }
    if (rc == 0) {
        rc = run(&cfg, &dist);
    }
    traind__cfg_free(&cfg);
    traind__dist_finalize(&dist);
    return rc < 0 ? 1 : 0;
}
