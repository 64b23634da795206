/* sc-datad: the data service. Reads its config (table in datad_cfg.c), opens the shard store,
 * listens on the data and control sockets, serves batches and ingests the spool until SIGTERM.
 *
 * Threads: the libuv loop (this file, datad_server/stream/ctl/ingest's loop side) owns every
 * socket and connection; N workers assemble batches; one writer thread owns LMDB writes.
 * systemd: READY=1 once the store is open and both sockets listen, STATUS= with rates every 2 s,
 * WATCHDOG=1 from the cron timer when WatchdogSec is set, STOPPING=1 on SIGTERM. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "datad.h"
#include "pipeline/record.h"

#define CRON_MS 250

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sc-datad [--config FILE] [--set section.key=value ...] [--print-config]\n"
            "                [--check-config] [--help]\n"
            "\n"
            "The superclass data service: continuous ingest of webdataset shards from a spool\n"
            "directory into an LMDB shard store, and batch streaming to trainers over a Unix\n"
            "socket (proto/PROTOCOL.md). Controlled with sc-ctl. See docs/DATAD.md.\n"
            "\n"
            "  --config FILE     read FILE (default /etc/superclass/datad.conf when it exists)\n"
            "  --set K=V         override one key, e.g. --set server.workers=4 (repeatable)\n"
            "  --print-config    print the effective configuration, every key documented\n"
            "  --check-config    validate the configuration and exit (0 ok, 1 error)\n"
            "  --help            this text\n");
}

static void hex_to_raw(const char *hex, uint8_t out[32])
{
    memset(out, 0, 32);
    for (int i = 0; i < 32 && hex[2 * i] && hex[2 * i + 1]; i++) {
        unsigned v = 0;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return;
        }
        out[i] = (uint8_t)v;
    }
}

/* ---- cron: timeouts, rates, STATUS, WATCHDOG, spool rescans ---- */

static void update_rates(datad_t *d, double now)
{
    double dt = now - d->rate_mark_s;
    if (dt < 1.0) {
        return;
    }
    uint64_t rec = atomic_load(&d->committed);
    d->rate_batches = (double)(d->batches_sent - d->rate_mark_batches) / dt;
    d->rate_bytes = (double)(d->bytes_sent - d->rate_mark_bytes) / dt;
    d->rate_records = (double)(rec - d->rate_mark_records) / dt;
    d->rate_mark_batches = d->batches_sent;
    d->rate_mark_bytes = d->bytes_sent;
    d->rate_mark_records = rec;
    d->rate_mark_s = now;
    for (datad_conn_t *c = d->conns; c != NULL; c = c->next) {
        double cdt = now - c->rate_mark_s;
        if (cdt >= 1.0) {
            c->rate_bps = (double)(c->batches_sent - c->rate_mark_batches) / cdt;
            c->rate_mark_batches = c->batches_sent;
            c->rate_mark_s = now;
        }
    }
}

static void check_timeouts(datad_t *d, uint64_t now_ms)
{
    datad_conn_t *next = NULL;
    for (datad_conn_t *c = d->conns; c != NULL; c = next) {
        next = c->next; /* fail may unlink c */
        if (c->state == DATAD_ST_HANDSHAKE && c->kind == DATAD_CONN_DATA) {
            /* Counted from accept, so a client trickling bytes cannot hold the slot. */
            if (now_ms - c->accepted_ms > d->cfg->handshake_timeout_ms) {
                datad__conn_fail(c, CORE_ECLOSED, NULL, "handshake timeout");
            }
        } else if (c->kind == DATAD_CONN_CTL && c->state != DATAD_ST_CLOSING &&
                   now_ms - c->last_rx_ms > d->cfg->handshake_timeout_ms && c->wq_bytes == 0 &&
                   now_ms - c->accepted_ms > d->cfg->handshake_timeout_ms) {
            /* A control connection must keep sending requests. */
            datad__conn_fail(c, CORE_ECLOSED, NULL, "control connection idle");
        } else if (c->state == DATAD_ST_STREAM && d->cfg->idle_timeout_ms > 0 &&
                   now_ms - c->last_rx_ms > d->cfg->idle_timeout_ms) {
            datad__conn_fail(c, CORE_ECLOSED, NULL, "idle timeout");
        }
    }
}

static void cron_cb(uv_timer_t *t)
{
    datad_t *d = t->data;
    uint64_t now_ms = datad__now_ms();
    double now = core_now_s();
    check_timeouts(d, now_ms);
    update_rates(d, now);
    if (!d->stopping) {
        datad__ingest_cron(&d->ingest, now_ms);
    }
    if (now_ms - d->last_notify_ms >= 2000) {
        d->last_notify_ms = now_ms;
        unsigned trainers = 0;
        for (const datad_conn_t *c = d->conns; c != NULL; c = c->next) {
            trainers += c->kind == DATAD_CONN_DATA;
        }
        sd_notifyf(0,
                   "STATUS=%llu records, %.1f records/s ingested; %u clients, %.1f batches/s, "
                   "%.1f MB/s",
                   (unsigned long long)atomic_load(&d->committed), d->rate_records, trainers,
                   d->rate_batches, d->rate_bytes / 1e6);
    }
    if (d->watchdog_usec > 0 && (now_ms - d->last_watchdog_ms) * 1000 >= d->watchdog_usec / 2) {
        d->last_watchdog_ms = now_ms;
        sd_notify(0, "WATCHDOG=1");
    }
    if (d->cfg->stats_interval_s > 0 &&
        now_ms - d->last_stats_ms >= d->cfg->stats_interval_s * 1000) {
        d->last_stats_ms = now_ms;
        core_log_info("stats: %llu records (%.1f/s), %u clients, %llu batches sent (%.1f/s, "
                      "%.1f MB/s), %llu bad frames",
                      (unsigned long long)atomic_load(&d->committed), d->rate_records, d->n_conns,
                      (unsigned long long)d->batches_sent, d->rate_batches, d->rate_bytes / 1e6,
                      (unsigned long long)d->frames_bad);
    }
    /* Connections waiting for records also retry here, in case a commit notification raced. */
    datad__stream_kick(d);
}

/* ---- shutdown ---- */

static void noop_close(uv_handle_t *h) { (void)h; }

static void finish_close(datad_t *d)
{
    while (d->conns != NULL) {
        datad__conn_close(d->conns);
    }
    uv_close((uv_handle_t *)&d->cron, noop_close);
    uv_close((uv_handle_t *)&d->stop_timer, noop_close);
    uv_close((uv_handle_t *)&d->sig_term, noop_close);
    uv_close((uv_handle_t *)&d->sig_int, noop_close);
    datad__pool_close_handles(&d->pool);
    datad__ingest_free(&d->ingest);
}

/* Polls (50 ms) until the writer has finished its file and the BYEs are out (at most 2 s for
 * clients that do not read), or until ingest.stop_timeout_s. */
static void stop_timer_cb(uv_timer_t *t)
{
    datad_t *d = t->data;
    uint64_t now = datad__now_ms();
    int joined = datad__ingest_join(&d->ingest, 0);
    if (joined && (d->conns == NULL || now >= d->stop_start_ms + 2000)) {
        uv_timer_stop(t);
        finish_close(d);
        return;
    }
    if (!joined && now >= d->stop_start_ms + d->cfg->ingest_stop_timeout_s * 1000) {
        core_log_warn("ingest still busy after %llu s; exiting anyway (committed data is safe, the "
                      "file resumes after its last commit at the next start)",
                      (unsigned long long)d->cfg->ingest_stop_timeout_s);
        d->exit_code = 0;
        uv_timer_stop(t);
        finish_close(d);
    }
}

void datad__shutdown(datad_t *d, const char *why)
{
    if (d->stopping) {
        return;
    }
    d->stopping = 1;
    core_log_notice("shutting down: %s", why);
    sd_notify(0, "STOPPING=1");
    datad__server_stop_accepting(d);
    /* Say BYE to every client; each closes once its queued bytes are out. */
    datad_conn_t *next = NULL;
    for (datad_conn_t *c = d->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == DATAD_ST_CLOSING) {
            continue;
        }
        uv_read_stop((uv_stream_t *)&c->pipe);
        if (c->kind == DATAD_CONN_DATA) {
            size_t cap = PROTO_HEADER_SIZE + 8, n = 0;
            uint8_t *buf = core_malloc(cap);
            if (buf != NULL && proto_u32_encode(buf, cap, PROTO_BYE, 0, &n) == 0) {
                datad__conn_write(c, buf, n);
            } else {
                core_free(buf);
            }
        }
        c->state = DATAD_ST_CLOSING;
        if (c->wq_bytes == 0) {
            datad__conn_close(c);
        }
    }
    datad__pool_stop(&d->pool);
    datad__ingest_stop(&d->ingest);
    d->stop_start_ms = datad__now_ms();
    uv_timer_start(&d->stop_timer, stop_timer_cb, 0, 50);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    datad__shutdown(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- setup ---- */

static int open_store(datad_t *d, pl_tok_t **tok_out)
{
    const datad_cfg_t *cfg = d->cfg;
    pl_tok_t *tok = NULL;
    char meta[4200];
    snprintf(meta, sizeof meta, "%s/meta.lmdb", cfg->store_dir);
    int rc = CORE_ENOT_FOUND;
    if (!cfg->store_create || access(meta, F_OK) == 0) {
        rc = pl_store_open(cfg->store_dir, PL_STORE_RDWR, &d->store);
    }
    if (rc == CORE_ENOT_FOUND && cfg->store_create) {
        rc = pl_tok_load(cfg->store_vocab, &tok);
        if (rc < 0) {
            core_log_err("vocabulary %s: %s", cfg->store_vocab, core_strerror(rc));
            return rc;
        }
        pl_store_policy_t pol;
        pl_store_policy_default(&pol);
        pol.verify = cfg->ingest_verify == 0 ? PL_VERIFY_FULL : PL_VERIFY_HEADER;
        pol.max_side = (uint32_t)cfg->ingest_max_side;
        pol.caption_max_bytes = (uint32_t)cfg->ingest_caption_max_bytes;
        pol.caption_overflow =
            cfg->ingest_caption_overflow == 0 ? PL_CAPTION_TRUNCATE : PL_CAPTION_REJECT;
        rc = pl_store_create(cfg->store_dir, pl_tok_hash(tok), cfg->store_vocab, &pol, NULL);
        if (rc < 0) {
            core_log_err("cannot create the store in %s: %s", cfg->store_dir, core_strerror(rc));
            pl_tok_free(tok);
            return rc;
        }
        core_log_notice("created a new store in %s", cfg->store_dir);
        rc = pl_store_open(cfg->store_dir, PL_STORE_RDWR, &d->store);
    }
    if (rc < 0) {
        core_log_err("cannot open the store in %s: %s", cfg->store_dir, core_strerror(rc));
        pl_tok_free(tok);
        return rc;
    }
    if (tok == NULL) {
        const char *vp = cfg->store_vocab[0] ? cfg->store_vocab : pl_store_vocab_path(d->store);
        if (vp[0] == '\0') {
            core_log_warn("no vocabulary configured or recorded: ingest is off, serving only");
        } else if ((rc = pl_tok_load(vp, &tok)) < 0) {
            core_log_warn("vocabulary %s: %s: ingest is off, serving only", vp, core_strerror(rc));
            tok = NULL;
        }
    }
    snprintf(d->vocab_hash, sizeof d->vocab_hash, "%s", pl_store_vocab_hash(d->store));
    hex_to_raw(d->vocab_hash, d->vocab_hash_raw);
    d->vocab_size = tok != NULL ? pl_tok_vocab_size(tok) : 0;
    atomic_store(&d->committed, pl_store_count(d->store));
    *tok_out = tok;
    return 0;
}

static unsigned n_workers(const datad_cfg_t *cfg)
{
    if (cfg->workers > 0) {
        return (unsigned)cfg->workers;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static int run(datad_cfg_t *cfg)
{
    datad_t *d = core_calloc(1, sizeof(*d));
    if (d == NULL) {
        return 1;
    }
    d->cfg = cfg;
    d->self_uid = getuid();
    d->exit_code = 0;
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc < 0) {
        core_log_err("uv_loop_init: %s", uv_strerror(rc));
        core_free(d);
        return 1;
    }
    d->loop = &loop;
    pl_tok_t *tok = NULL;
    int exit_code = 1;
    rc = open_store(d, &tok);
    if (rc < 0) {
        goto out_loop;
    }
    rc = datad__epochs_open(&d->epochs, cfg->epoch_log);
    if (rc < 0) {
        goto out_store;
    }
    uv_timer_init(&loop, &d->cron);
    d->cron.data = d;
    uv_timer_init(&loop, &d->stop_timer);
    d->stop_timer.data = d;
    uv_signal_init(&loop, &d->sig_term);
    d->sig_term.data = d;
    uv_signal_init(&loop, &d->sig_int);
    d->sig_int.data = d;
    uv_signal_start(&d->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&d->sig_int, signal_cb, SIGINT);

    /* Sockets first (the umask dance needs no other threads), then the threads. */
    rc = datad__server_listen(d);
    if (rc == 0) {
        rc = datad__pool_start(&d->pool, d, n_workers(cfg));
    }
    if (rc == 0) {
        d->ingest.tok = tok;
        rc = datad__ingest_start(&d->ingest, d);
    }
    if (rc < 0) {
        core_log_err("startup failed: %s", core_strerror(rc));
        d->stopping = 1;
        datad__server_stop_accepting(d);
        if (d->pool.threads != NULL) {
            datad__pool_stop(&d->pool);
        }
        datad__ingest_stop(&d->ingest);
        while (!datad__ingest_join(&d->ingest, 0)) {
            usleep(10000);
        }
        finish_close(d);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto out_epochs;
    }
    uint64_t wd = 0;
    if (sd_watchdog_enabled(0, &wd) > 0) {
        d->watchdog_usec = wd;
    }
    d->rate_mark_s = core_now_s();
    d->rate_mark_records = atomic_load(&d->committed);
    uv_timer_start(&d->cron, cron_cb, CRON_MS, CRON_MS);
    core_log_notice("ready: store %s (%llu records), %u workers, spool %s", cfg->store_dir,
                    (unsigned long long)atomic_load(&d->committed), d->pool.n_threads,
                    cfg->spool_enabled ? cfg->spool_dir : "off");
    sd_notify(0, "READY=1\nSTATUS=ready");

    uv_run(&loop, UV_RUN_DEFAULT);
    exit_code = d->exit_code;

    if (d->ingest.started) {
        /* The writer outlived the stop timeout: leave without tearing down what it uses.
         * Committed transactions are durable; the open one is discarded with the process. */
        core_log_notice("exiting with ingest in progress");
        pthread_detach(d->ingest.thread); /* abandoned on purpose; not a leak */
        fflush(NULL);
        _exit(exit_code);
    }
out_epochs:
    datad__epochs_close(&d->epochs);
out_store:
    pl_ingest_free(d->ingest.ing);
    pl_store_close(d->store);
    pl_tok_free(tok);
out_loop:
    if (uv_loop_close(&loop) != 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    core_free(d);
    pl_record_thread_cleanup();
    return exit_code;
}

int main(int argc, char **argv)
{
    core_log_init("sc-datad");
    json_set_alloc_funcs(core_malloc, core_free);
    signal(SIGPIPE, SIG_IGN);
    datad_cfg_t cfg;
    char err[CORE_CFG_ERRLEN];
    if (datad_cfg_init(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sc-datad: %s\n", err);
        return 1;
    }
    core_cfg_action_t action;
    int rc = core_cfg_cli(&datad_cfg_table, &cfg, argc, argv, "/etc/superclass/datad.conf", NULL,
                          0, &action, err, sizeof err);
    if (rc == CORE_ERR(EINVAL) || action == CORE_CFG_HELP) {
        if (rc < 0) {
            fprintf(stderr, "sc-datad: %s\n", err);
        }
        usage(rc < 0 ? stderr : stdout);
        datad_cfg_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    if (rc == 0) {
        rc = datad_cfg_finish(&cfg, err, sizeof err);
    }
    if (rc < 0) {
        fprintf(stderr, "sc-datad: %s\n", err);
        datad_cfg_free(&cfg);
        return 1;
    }
    if (action != CORE_CFG_RUN) {
        if (action == CORE_CFG_PRINT) {
            core_cfg_print_generated(&datad_cfg_table, &cfg, "sc-datad", "docs/DATAD.md", stdout);
        } else {
            printf("configuration ok\n");
        }
        datad_cfg_free(&cfg);
        return 0;
    }
    core_log_set_level((core_log_level_t)datad_cfg_log_level(&cfg));
    int code = run(&cfg);
    datad_cfg_free(&cfg);
    return code;
}
