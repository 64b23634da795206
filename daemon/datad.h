/* sc-datad internals shared by the daemon's files (not a public API). One libuv loop thread owns
 * every socket and all of this state except where a field says otherwise; worker threads
 * (datad_pool.c) assemble batches, one writer thread (datad_ingest.c) owns LMDB writes. */
#ifndef DATAD_H
#define DATAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "datad_cfg.h"
#include "pipeline/batcher.h"
#include "pipeline/ingest.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"
#include "proto/proto.h"

typedef struct datad_s datad_t;
typedef struct datad_conn_s datad_conn_t;
typedef struct datad_job_s datad_job_t;

/* ---- worker pool (datad_pool.c) ---- */

/* One batch to assemble. Created on the loop thread, run on a worker, handed back to the loop. */
struct datad_job_s {
    datad_job_t *next;
    datad_conn_t *conn; /* holds a reference (conn->refs) until the loop takes the job back */
    uint64_t batch_index;
    uint64_t cursor_epoch, cursor_position; /* after this batch */
    int want_keys;
    pl_batch_spec_t spec;
    /* result */
    int rc;
    uint8_t *frame; /* core_malloc'd BATCH frame */
    size_t frame_len;
    double t_work;
};

typedef struct datad_pool_s {
    datad_t *d;
    pthread_t *threads;
    unsigned n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    datad_job_t *q_head, *q_tail; /* queued (mu) */
    datad_job_t *d_head, *d_tail; /* done, waiting for the loop (mu) */
    unsigned queued, running;
    int stop;
    uv_async_t async;
    pl_batcher_stats_t stats; /* summed at job end (mu) */
} datad_pool_t;

int datad__pool_start(datad_pool_t *p, datad_t *d, unsigned n_threads);
void datad__pool_submit(datad_pool_t *p, datad_job_t *job);
/* Drops queued jobs (handing them back as cancelled), joins the threads. Loop thread. */
void datad__pool_stop(datad_pool_t *p);
void datad__pool_close_handles(datad_pool_t *p);

/* ---- epochs (datad_epochs.c) ---- */

typedef struct datad_epoch_s {
    uint64_t seed, epoch, records;
} datad_epoch_t;

typedef struct datad_epochs_s {
    char *path;
    int fd;
    datad_epoch_t *v;
    size_t n, cap;
} datad_epochs_t;

/* Opens (creating) the log and loads its entries. Errors: -errno, CORE_ECORRUPT (bad line). */
int datad__epochs_open(datad_epochs_t *e, const char *path);
void datad__epochs_close(datad_epochs_t *e);
/* Snapshot size of (seed, epoch): 0 and *records, or CORE_ENOT_FOUND. */
int datad__epochs_get(const datad_epochs_t *e, uint64_t seed, uint64_t epoch, uint64_t *records);
/* Fixes (seed, epoch) at `records`, durably (write + fdatasync) before returning. */
int datad__epochs_fix(datad_epochs_t *e, uint64_t seed, uint64_t epoch, uint64_t records);

/* ---- connections (datad_server.c, datad_stream.c, datad_ctl.c) ---- */

enum { DATAD_CONN_DATA = 0, DATAD_CONN_CTL = 1 };
enum { DATAD_ST_HANDSHAKE = 0, DATAD_ST_STREAM = 1, DATAD_ST_CLOSING = 2 };

#define DATAD_RBUF (2 * (PROTO_HEADER_SIZE + PROTO_MAX_SMALL_PAYLOAD))

struct datad_conn_s {
    datad_t *d;
    datad_conn_t *prev, *next; /* d->conns */
    uint64_t id;
    int kind;
    int state;
    uv_pipe_t pipe;
    uv_timer_t timer; /* handshake / idle */
    int handles_open; /* handles not yet closed */
    int refs;         /* jobs in flight */
    pid_t pid;
    uid_t uid;
    gid_t gid;
    uint8_t rbuf[DATAD_RBUF]; /* fixed: clients only send small frames, so nothing is allocated
                                 from a length they choose */
    size_t rlen;
    uint64_t last_rx_ms;
    uint64_t accepted_ms;
    size_t wq_bytes; /* bytes queued in uv_write requests */
    /* stream state */
    proto_hello_t hello;
    pl_aug_t aug;
    uint64_t frame_bytes;   /* size of one BATCH frame of this client (upper bound) */
    uint64_t sched_epoch;   /* cursor of the next batch to schedule */
    uint64_t sched_position;
    uint64_t cur_epoch, cur_position; /* cursor after the last batch sent */
    uint64_t credits;       /* granted, not yet used by a scheduled batch */
    unsigned inflight;      /* jobs submitted, not yet back */
    uint64_t next_index;    /* batch_index of the next job */
    uint64_t send_index;    /* batch_index of the next frame to send */
    datad_job_t *ready;     /* finished jobs waiting for their turn, sorted by batch_index */
    int waiting_data;       /* the next epoch needs more records than the store has */
    uint64_t batches_sent, bytes_sent;
    double connected_s;
    /* rate: batches in the last stats window */
    uint64_t rate_mark_batches;
    double rate_mark_s, rate_bps;
};

/* ---- spool / ingest (datad_ingest.c) ---- */

typedef struct datad_spool_file_s {
    struct datad_spool_file_s *next;
    char *name;
    int64_t size;
    int64_t mtime_ns;
    uint64_t stable_since_ms;
    int queued;
    int seen; /* mark for the current scan */
} datad_spool_file_t;

/* The journal of `sc-ctl ingest` requests (datad_ctlqueue.c). add/done are thread-safe. */
typedef struct datad_ctlq_s {
    pthread_mutex_t mu;
    int inited;
    int fd;       /* the journal, O_APPEND; -1 when not open */
    char *path;
    char **paths; /* pending files, oldest first */
    size_t n, cap;
} datad_ctlq_t;

/* Replays the journal at `path` (created if absent) into q->paths and rewrites it compacted.
 * Errors: -errno, CORE_ECORRUPT (over 16 MiB), -ENOMEM; call datad__ctlq_close either way. */
int datad__ctlq_open(datad_ctlq_t *q, const char *path);
/* Replays journal bytes into q (pure; the fuzz target's entry point). *bad_lines counts lines
 * skipped for a wrong CRC or shape. Errors: -ENOMEM. */
int datad__ctlq_parse(datad_ctlq_t *q, const char *buf, size_t len, unsigned *bad_lines);
/* Records that `path` is queued, durably (fdatasync) before returning. CORE_ECONFIG for a path
 * that is not absolute, longer than 4096 bytes or holds a newline; -errno on I/O errors. */
int datad__ctlq_add(datad_ctlq_t *q, const char *path);
/* Records that one queued `path` is finished (no-op if it is not pending). */
int datad__ctlq_done(datad_ctlq_t *q, const char *path);
void datad__ctlq_close(datad_ctlq_t *q);

typedef struct datad_ingest_item_s {
    struct datad_ingest_item_s *next;
    char *path;
    int from_spool;
} datad_ingest_item_t;

typedef struct datad_ingest_s {
    datad_t *d;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    datad_ingest_item_t *q_head, *q_tail; /* mu */
    unsigned q_len;                       /* mu */
    int paused, stop;                     /* mu */
    volatile int ingest_stop; /* pl_ingest_opts_t.stop: set (atomically) on shutdown */
    char current[512];                    /* mu: file being ingested, "" when idle */
    pl_ingest_stats_t stats;              /* mu: copy after every commit */
    uint64_t files_done, files_failed;    /* mu */
    char last_error[640];                 /* mu */
    atomic_int busy;
    atomic_int finished; /* thread has returned */
    uv_async_t async;    /* writer -> loop: records committed / file finished */
    pl_ingest_t *ing;
    pl_tok_t *tok;
    datad_ctlq_t ctlq; /* open while ingest is on */
    /* loop-thread spool watch */
    uv_fs_event_t fs_event;
    int fs_event_on;
    uv_work_t scan_req;
    int scanning, rescan_wanted;
    uint64_t next_scan_ms;
    datad_spool_file_t *files;
    struct datad_done_name_s *done_names; /* mu: spool files the writer finished */
    char **scan_names; /* scan result (threadpool -> after_work) */
    int64_t *scan_sizes, *scan_mtimes;
    size_t scan_n;
} datad_ingest_t;

int datad__ingest_start(datad_ingest_t *g, datad_t *d);
/* Queues a path (from sc-ctl or the spool). A path from sc-ctl is journaled first (fdatasync on
 * the loop thread: a rare control request, and its reply must mean "will survive a restart").
 * Loop thread. Errors: -ENOMEM, CORE_ECLOSED, datad__ctlq_add's. */
int datad__ingest_enqueue(datad_ingest_t *g, const char *path, int from_spool);
void datad__ingest_pause(datad_ingest_t *g, int paused);
/* Cron hook: spool rescans and settle checks. */
void datad__ingest_cron(datad_ingest_t *g, uint64_t now_ms);
/* Asks the writer to stop after the current file; closes the spool watch. */
void datad__ingest_stop(datad_ingest_t *g);
/* Joins the writer if it has finished (1) or returns 0 if it is still busy. */
int datad__ingest_join(datad_ingest_t *g, int force);
void datad__ingest_free(datad_ingest_t *g);

/* ---- the daemon ---- */

struct datad_s {
    uv_loop_t *loop;
    datad_cfg_t *cfg;
    pl_store_t *store;
    char vocab_hash[65];
    uint32_t vocab_size;
    uint8_t vocab_hash_raw[32];
    atomic_uint_fast64_t committed; /* records committed (writer thread stores, loop loads) */
    datad_epochs_t epochs;
    datad_pool_t pool;
    datad_ingest_t ingest;
    uv_pipe_t data_srv, ctl_srv;
    int data_srv_open, ctl_srv_open;
    uv_timer_t cron;
    uv_signal_t sig_term, sig_int;
    uv_timer_t stop_timer;
    datad_conn_t *conns;
    unsigned n_conns;
    uint64_t next_conn_id;
    int stopping;
    uint64_t stop_start_ms;
    int exit_code;
    uid_t self_uid;
    /* counters */
    uint64_t batches_sent, bytes_sent, conns_total, conns_refused, frames_bad;
    uint64_t last_notify_ms, last_stats_ms, last_watchdog_ms, watchdog_usec;
    uint64_t rate_mark_batches, rate_mark_bytes, rate_mark_records;
    double rate_mark_s, rate_batches, rate_bytes, rate_records;
};

uint64_t datad__now_ms(void);

/* datad_server.c */
int datad__server_listen(datad_t *d);
void datad__server_stop_accepting(datad_t *d);
void datad__conn_close(datad_conn_t *c);
/* Queues a frame; the buffer is core_malloc'd and freed after the write. Closes on failure. */
int datad__conn_write(datad_conn_t *c, uint8_t *buf, size_t len);
/* Sends ERROR (code, param, text) and closes after it is written. */
void datad__conn_fail(datad_conn_t *c, int code, const char *param, const char *text);
void datad__conn_unref(datad_conn_t *c);
void datad__shutdown(datad_t *d, const char *why);

/* datad_stream.c */
void datad__stream_frame(datad_conn_t *c, const proto_frame_t *f);
void datad__stream_job_done(datad_t *d, datad_job_t *job);
/* Re-tries connections waiting for records (after a commit). */
void datad__stream_kick(datad_t *d);
void datad__stream_release(datad_conn_t *c);
void datad__job_run(pl_batcher_t *b, datad_job_t *job);

/* datad_ctl.c */
void datad__ctl_line(datad_conn_t *c, const char *line, size_t len);
/* Status JSON (json_t *) as a string owned by the caller (core_free). */
char *datad__status_json(datad_t *d);

#endif
