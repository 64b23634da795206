/* The control socket: one JSON request per line (datad_ctlparse.h), one JSON reply per line.
 * Loop thread. `status` reports ingest (queue, rates, rejects by reason), the store, and every
 * connected trainer with its cursor and rate. */
#include <jansson.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "datad.h"
#include "datad_ctlparse.h"

static void reply(datad_conn_t *c, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        datad__conn_fail(c, CORE_ERR(ENOMEM), NULL, "out of memory");
        return;
    }
    size_t n = strlen(text);
    uint8_t *buf = core_malloc(n + 1);
    if (buf != NULL) {
        memcpy(buf, text, n);
        buf[n] = '\n';
        datad__conn_write(c, buf, n + 1);
    }
    core_free(text); /* jansson allocates through core_malloc (set in main) */
}

static json_t *ingest_json(datad_t *d)
{
    datad_ingest_t *g = &d->ingest;
    json_t *o = json_object();
    json_t *rej = json_object();
    pthread_mutex_lock(&g->mu);
    json_object_set_new(o, "enabled", json_boolean(g->ing != NULL));
    json_object_set_new(o, "paused", json_boolean(g->paused));
    json_object_set_new(o, "queue", json_integer((json_int_t)g->q_len));
    json_object_set_new(o, "current", json_string(g->current));
    json_object_set_new(o, "files_done", json_integer((json_int_t)g->files_done));
    json_object_set_new(o, "files_failed", json_integer((json_int_t)g->files_failed));
    json_object_set_new(o, "files_skipped", json_integer((json_int_t)g->stats.files_skipped));
    json_object_set_new(o, "kept", json_integer((json_int_t)g->stats.kept));
    json_object_set_new(o, "rejected", json_integer((json_int_t)g->stats.rejected));
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)g->stats.bytes_in));
    for (uint32_t r = 1; r < PL_REJECT__COUNT; r++) {
        if (g->stats.rejects[r] != 0) {
            json_object_set_new(rej, pl_reject_name(r), json_integer((json_int_t)g->stats.rejects[r]));
        }
    }
    json_object_set_new(o, "last_error", json_string(g->last_error));
    pthread_mutex_unlock(&g->mu);
    json_object_set_new(o, "rejects", rej);
    json_object_set_new(o, "records_per_s", json_real(d->rate_records));
    return o;
}

static json_t *trainers_json(datad_t *d)
{
    json_t *arr = json_array();
    for (datad_conn_t *c = d->conns; c != NULL; c = c->next) {
        if (c->kind != DATAD_CONN_DATA) {
            continue;
        }
        json_t *t = json_object();
        json_object_set_new(t, "id", json_integer((json_int_t)c->id));
        json_object_set_new(t, "pid", json_integer(c->pid));
        json_object_set_new(t, "uid", json_integer(c->uid));
        json_object_set_new(t, "state", json_string(c->state == DATAD_ST_HANDSHAKE ? "handshake"
                                                    : c->waiting_data         ? "waiting_data"
                                                                              : "streaming"));
        if (c->state != DATAD_ST_HANDSHAKE) {
            json_object_set_new(t, "name", json_string(c->hello.name));
            json_object_set_new(t, "rank", json_integer(c->hello.rank));
            json_object_set_new(t, "world", json_integer(c->hello.world));
            json_object_set_new(t, "batch_size", json_integer(c->hello.batch_size));
            json_object_set_new(t, "seed", json_integer((json_int_t)c->hello.seed));
            json_t *cur = json_object();
            json_object_set_new(cur, "epoch", json_integer((json_int_t)c->cur_epoch));
            json_object_set_new(cur, "position", json_integer((json_int_t)c->cur_position));
            json_object_set_new(t, "cursor", cur);
        }
        json_object_set_new(t, "batches_sent", json_integer((json_int_t)c->batches_sent));
        json_object_set_new(t, "bytes_sent", json_integer((json_int_t)c->bytes_sent));
        json_object_set_new(t, "batches_per_s", json_real(c->rate_bps));
        json_object_set_new(t, "credits", json_integer((json_int_t)c->credits));
        json_object_set_new(t, "inflight", json_integer(c->inflight));
        json_array_append_new(arr, t);
    }
    return arr;
}

char *datad__status_json(datad_t *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    json_t *st = json_object();
    json_object_set_new(st, "dir", json_string(d->cfg->store_dir));
    json_object_set_new(st, "records", json_integer((json_int_t)atomic_load(&d->committed)));
    json_object_set_new(st, "vocab_hash", json_string(d->vocab_hash));
    json_object_set_new(o, "store", st);
    json_object_set_new(o, "ingest", ingest_json(d));
    json_t *sv = json_object();
    pthread_mutex_lock(&d->pool.mu);
    json_object_set_new(sv, "workers", json_integer(d->pool.n_threads));
    json_object_set_new(sv, "jobs_queued", json_integer(d->pool.queued));
    json_object_set_new(sv, "jobs_running", json_integer(d->pool.running));
    json_object_set_new(sv, "bad_records", json_integer((json_int_t)d->pool.stats.bad_records));
    json_object_set_new(sv, "bad_images", json_integer((json_int_t)d->pool.stats.bad_images));
    pthread_mutex_unlock(&d->pool.mu);
    unsigned trainers = 0;
    for (const datad_conn_t *c = d->conns; c != NULL; c = c->next) {
        trainers += c->kind == DATAD_CONN_DATA;
    }
    json_object_set_new(sv, "clients", json_integer(trainers)); /* data connections */
    json_object_set_new(sv, "connections_total", json_integer((json_int_t)d->conns_total));
    json_object_set_new(sv, "connections_refused", json_integer((json_int_t)d->conns_refused));
    json_object_set_new(sv, "bad_frames", json_integer((json_int_t)d->frames_bad));
    json_object_set_new(sv, "batches_sent", json_integer((json_int_t)d->batches_sent));
    json_object_set_new(sv, "bytes_sent", json_integer((json_int_t)d->bytes_sent));
    json_object_set_new(sv, "batches_per_s", json_real(d->rate_batches));
    json_object_set_new(sv, "bytes_per_s", json_real(d->rate_bytes));
    json_object_set_new(o, "serve", sv);
    json_object_set_new(o, "trainers", trainers_json(d));
    json_object_set_new(o, "stopping", json_boolean(d->stopping));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static json_t *ok_reply(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    return o;
}

static json_t *err_reply(const char *why, int code)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, "error", json_string(why));
    json_object_set_new(o, "code", json_string(core_err_name(code)));
    return o;
}

void datad__ctl_line(datad_conn_t *c, const char *line, size_t len)
{
    datad_t *d = c->d;
    datad_ctl_req_t req;
    const char *why = NULL;
    int rc = datad_ctl_parse(line, len, &req, &why);
    if (rc < 0) {
        d->frames_bad++;
        reply(c, err_reply(why, rc));
        return;
    }
    switch (req.cmd) {
    case DATAD_CMD_STATUS: {
        char *text = datad__status_json(d);
        if (text == NULL) {
            reply(c, err_reply("out of memory", CORE_ERR(ENOMEM)));
            return;
        }
        size_t n = strlen(text);
        uint8_t *buf = core_malloc(n + 1);
        if (buf != NULL) {
            memcpy(buf, text, n);
            buf[n] = '\n';
            datad__conn_write(c, buf, n + 1);
        }
        core_free(text);
        return;
    }
    case DATAD_CMD_INGEST:
        if (d->ingest.ing == NULL) {
            reply(c, err_reply("ingest is off (no vocabulary or the store is read-only)",
                               CORE_ESTATE));
            return;
        }
        rc = datad__ingest_enqueue(&d->ingest, req.path, 0);
        core_log_info("control: ingest %s: %s", req.path, rc == 0 ? "queued" : core_strerror(rc));
        if (rc == CORE_ECONFIG) {
            reply(c, err_reply("the path must be absolute, at most 4096 bytes, without newlines",
                               rc));
        } else {
            reply(c, rc == 0 ? ok_reply() : err_reply(core_strerror(rc), rc));
        }
        return;
    case DATAD_CMD_PAUSE:
    case DATAD_CMD_RESUME:
        datad__ingest_pause(&d->ingest, req.cmd == DATAD_CMD_PAUSE);
        core_log_info("control: ingest %s", req.cmd == DATAD_CMD_PAUSE ? "paused" : "resumed");
        reply(c, ok_reply());
        return;
    case DATAD_CMD_STOP:
        reply(c, ok_reply());
        datad__shutdown(d, "stop requested on the control socket");
        return;
    }
}
