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
} run_t;

static int save(run_t *r)
{
    char path[4200];
    r->st.seq++;
    int rc = traind__ckpt_save(r->cfg, &r->m, &r->meta, &r->st, path, sizeof path);
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
    double iv_t0 = core_now_s(), iv_wait = 0, iv_loss = 0, run_t0 = core_now_s(), run_wait = 0;
    uint64_t iv_steps = 0, iv_loss_n = 0, run_steps = 0, in_row = 0;
    int ready = 0, rc = 0;
    set_state(r, "training");
    while (r->st.step < total) {
        if (g_stop) {
            break;
        }
        if (g_ckpt_now) {
            g_ckpt_now = 0;
            if (save(r) == 0) {
                last_ckpt_t = core_now_s();
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
        int lrc = traind__model_forward_loss(&r->m, r->images, slot->off, slot->ids, cfg->idf,
                                             &loss);
        uint64_t cur_e = slot->epoch, cur_p = slot->position;
        traind__data_release(r->data);
        int finite = lrc == 0 && isfinite(loss);
        double gss = 0;
        if (finite) {
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
        r->st.step++;
        r->st.samples += (uint64_t)B;
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
                  (cfg->ckpt_every_minutes > 0 && now - last_ckpt_t >= cfg->ckpt_every_minutes * 60);
        if (due && r->st.step < total && !g_stop) {
            if (save(r) == 0) {
                last_ckpt_t = core_now_s();
            }
        }
    }
    double run_el = core_now_s() - run_t0;
    if (run_steps > 1 && run_el > 0) {
        /* One machine-readable line for bench/bench_e2e.sh. */
        core_log_info("RESULT steps=%" PRIu64 " img_s=%.2f data_wait=%.5f skipped=%" PRIu64,
                      run_steps, (double)(run_steps - 1) * B / run_el, run_wait / run_el,
                      r->st.skipped);
    }
    if (rc < 0) {
        return rc;
    }
    set_state(r, "checkpointing");
    sd_notify(0, "STOPPING=1\nSTATUS=final checkpoint");
    if (run_steps > 0 || g_ckpt_now) {
        rc = save(r);
    }
    if (rc == 0) {
        core_log_info("%s at step %" PRIu64 "/%" PRIu64,
                      r->st.step >= total ? "training complete" : "stopped", r->st.step, total);
    }
    set_state(r, r->st.step >= total ? "complete" : "stopped");
    return rc;
}

static int run(traind_cfg_t *cfg)
{
    run_t r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
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
    CORE_TRY(traind__ckpt_lock(cfg, &lock_fd));
    if (cfg->ckpt_resume && traind__ckpt_peek_vocab(cfg, &vocab)) {
        CORE_TRY(build_model(&r, vocab));
        rc = traind__ckpt_resume(cfg, &r.m, &r.meta, &r.st, ck_path, sizeof ck_path);
        if (rc < 0) {
            goto fail;
        }
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
        if (r.st.step >= r.status.total_steps) {
            core_log_info("the run is complete (step %" PRIu64 " of %" PRIu64 "): nothing to do",
                          r.st.step, r.status.total_steps);
            goto fail; /* rc == 0: clean exit */
        }
    }
    rc = traind__data_open(cfg, r.st.epoch, r.st.position, &info, &r.data);
    if (rc < 0) {
        core_log_err("cannot open the data source: %s", core_strerror(rc));
        goto fail;
    }
    snprintf(r.vocab_hash, sizeof r.vocab_hash, "%s", info.vocab_hash);
    snprintf(r.vocab_path, sizeof r.vocab_path, "%s", info.vocab_path);
    core_log_info("data: %s, %" PRIu64 " records, vocabulary %u ids (hash %.16s...)",
                  cfg->data_store[0] ? cfg->data_store : cfg->data_socket, info.records,
                  info.vocab_size, info.vocab_hash);
    if (traind__model_ok(&r.m) && (int)info.vocab_size != vocab) {
        if (resumed) {
            core_log_err("the checkpoint's vocabulary has %d ids, the data's %u: refusing to "
                         "resume (point checkpoint.dir elsewhere for a new run)",
                         vocab, info.vocab_size);
            rc = CORE_EMISMATCH;
            goto fail;
        }
        traind__model_free(&r.m);
        free_buffers(&r);
    }
    if (resumed && strcmp(r.st.vocab_hash, info.vocab_hash) != 0) {
        core_log_err("checkpoint %s was trained with vocabulary %s but the data has %s: "
                     "refusing to resume (point checkpoint.dir elsewhere for a new run)",
                     ck_path, r.st.vocab_hash, info.vocab_hash);
        rc = CORE_EMISMATCH;
        goto fail;
    }
    r.meta.vocab_size = (int)info.vocab_size;
    if (!traind__model_ok(&r.m)) {
        CORE_TRY(build_model(&r, (int)info.vocab_size));
    }
    if (!resumed) {
        traind__model_init(&r.m, cfg->seed);
        core_log_info("new run: initialised from seed %llu", (unsigned long long)cfg->seed);
    }
    if (cfg->control_socket[0] != '\0') {
        rc = traind__ctl_start(cfg->control_socket, &r.status, &g_ckpt_now, &g_stop, &r.ctl);
        if (rc < 0) {
            core_log_err("log.control %s: %s", cfg->control_socket, core_strerror(rc));
            goto fail;
        }
    }
    rc = train(&r);
fail:
    traind__ctl_stop(r.ctl);
    traind__data_close(r.data);
    traind__model_free(&r.m);
    free_buffers(&r);
    core_free_aligned(r.images);
    pthread_mutex_destroy(&r.status.mu);
    if (lock_fd >= 0) {
        close(lock_fd);
    }
    return rc;
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
    const char *config = NULL;
    int print = 0, check = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--set") == 0 ||
             strcmp(argv[i], "--store") == 0) &&
            i + 1 < argc) {
            if (argv[i][2] == 'c') {
                config = argv[i + 1];
            }
            i++;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print = 1;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            traind__cfg_free(&cfg);
            return 0;
        } else {
            fprintf(stderr, "sc-traind: unknown or incomplete argument '%s'\n", argv[i]);
            usage(stderr);
            traind__cfg_free(&cfg);
            return 2;
        }
    }
    int rc = 0;
    if (config == NULL && access("/etc/superclass/traind.conf", F_OK) == 0) {
        config = "/etc/superclass/traind.conf";
    }
    if (config != NULL) {
        rc = core_cfg_load_file(&traind_cfg_table, &cfg, config, err, sizeof err);
    }
    /* Overrides in command-line order, after the file. */
    for (int i = 1; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--set") == 0) {
            rc = core_cfg_apply_override(&traind_cfg_table, &cfg, argv[++i], err, sizeof err);
        } else if (strcmp(argv[i], "--store") == 0) {
            rc = core_cfg_set(&traind_cfg_table, &cfg, "data.store", argv[++i], "--store", err,
                              sizeof err);
        } else if (strcmp(argv[i], "--config") == 0) {
            i++;
        }
    }
    if (rc == 0 && !print) {
        rc = traind__cfg_finish(&cfg, err, sizeof err);
    }
    if (rc < 0) {
        fprintf(stderr, "sc-traind: %s\n", err);
        traind__cfg_free(&cfg);
        return 1;
    }
    if (print) {
        printf("# sc-traind configuration (generated by `sc-traind --print-config`).\n"
               "# Every key, its range and default. Override any key on the command line with\n"
               "# --set section.key=value. See docs/TRAIND.md.\n\n");
        core_cfg_print(&traind_cfg_table, &cfg, stdout);
        traind__cfg_free(&cfg);
        return 0;
    }
    if (check) {
        printf("configuration ok\n");
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
    rc = run(&cfg);
    traind__cfg_free(&cfg);
    return rc < 0 ? 1 : 0;
}
