/* The sc-datad config table. Every key is declared once here with its type, range, default and
 * help; the same table parses datad.conf, applies --set overrides and prints the documented file
 * (`sc-datad --print-config > etc/superclass/datad.conf`). */
#include "datad_cfg.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

static const char *const verify_choices[] = {"full", "header", NULL};
static const char *const overflow_choices[] = {"truncate", "reject", NULL};
static const char *const level_choices[] = {"err", "warning", "notice", "info", "debug", NULL};

#define K(sec, name, type, field, mn, mx, def, ch, help)                                           \
    {sec, name, type, offsetof(datad_cfg_t, field), mn, mx, def, ch, help}

static const core_cfg_key_t keys[] = {
    K("store", "dir", CORE_CFG_STRING, store_dir, 1, 4095, "/var/lib/superclass/store", NULL,
      "Shard store directory (meta.lmdb + shard-*.lmdb). sc-datad is its only writer."),
    K("store", "vocab", CORE_CFG_STRING, store_vocab, 0, 4095, "", NULL,
      "Vocabulary (CLIP merges file, .txt or .txt.gz) used to tokenize captions at ingest. Empty: "
      "the path recorded in the store when it was created."),
    K("store", "create", CORE_CFG_BOOL, store_create, 0, 0, "false", NULL,
      "Create the store at start if the directory holds none (needs store.vocab). The [ingest] "
      "policy keys are recorded in a new store and apply to every later ingest."),
    K("store", "epoch_log", CORE_CFG_STRING, store_epoch_log, 0, 4095, "", NULL,
      "Append-only log of epoch snapshot sizes (seed, epoch, records), so a restarted daemon "
      "serves an epoch in progress with the same size. Empty: <store.dir>/datad-epochs.log."),

    K("spool", "dir", CORE_CFG_STRING, spool_dir, 1, 4095, "/var/lib/superclass/spool", NULL,
      "Spool directory watched for webdataset shards (.tar, .tar.gz, .tgz, .tar.zst). Finished "
      "files move to <dir>/done/, failed ones to <dir>/failed/ with a .reason file. Names "
      "starting with '.' or ending in .part/.tmp are ignored: write there, then rename."),
    K("spool", "enabled", CORE_CFG_BOOL, spool_enabled, 0, 0, "true", NULL,
      "Watch the spool directory (sc-ctl ingest PATH works either way)."),
    K("spool", "settle_ms", CORE_CFG_UINT, spool_settle_ms, 0, 86400000, "5000", NULL,
      "A spool file is taken once its size and mtime stayed unchanged this long (ms)."),
    K("spool", "rescan_s", CORE_CFG_UINT, spool_rescan_s, 1, 86400, "30", NULL,
      "Periodic full rescan of the spool (s), in addition to inotify, so nothing is missed."),

    K("ingest", "verify", CORE_CFG_ENUM, ingest_verify, 0, 0, "full", verify_choices,
      "New stores: full decodes every image at ingest (libjpeg warnings are errors); header "
      "trusts the header probe."),
    K("ingest", "max_side", CORE_CFG_UINT, ingest_max_side, 0, 65535, "0", NULL,
      "New stores: re-encode images whose longer side exceeds this (JPEG q90); 0 keeps them."),
    K("ingest", "caption_max_bytes", CORE_CFG_UINT, ingest_caption_max_bytes, 16, 1048576, "4096",
      NULL, "New stores: byte cap of a stored caption."),
    K("ingest", "caption_overflow", CORE_CFG_ENUM, ingest_caption_overflow, 0, 0, "truncate",
      overflow_choices, "New stores: what to do with a caption over the cap."),
    K("ingest", "batch_records", CORE_CFG_UINT, ingest_batch_records, 1, 1000000, "512", NULL,
      "Writer batching: commit one LMDB transaction every this many samples ..."),
    K("ingest", "batch_bytes", CORE_CFG_SIZE, ingest_batch_bytes, 4096, 4294967296.0, "32M", NULL,
      "... or every this many record bytes, whichever comes first."),
    K("ingest", "threads", CORE_CFG_UINT, ingest_threads, 0, 256, "1", NULL,
      "Threads that check, tokenize and encode samples of the file being ingested (0 or 1: the "
      "writer thread alone). Reading and committing stay on the writer thread, so the store's "
      "content does not depend on it. They compete with the batch workers for CPU."),
    K("ingest", "stop_timeout_s", CORE_CFG_UINT, ingest_stop_timeout_s, 0, 3600, "30", NULL,
      "On SIGTERM the writer commits the samples done so far and stops (the file stays in the "
      "spool and resumes after them at the next start). If that takes longer than this, "
      "sc-datad exits anyway: committed transactions are durable, the open one is discarded, "
      "and nothing is lost or duplicated."),

    K("socket", "data", CORE_CFG_STRING, sock_data, 1, 107, "/run/superclass/datad.sock", NULL,
      "Unix socket for batch streaming (proto/PROTOCOL.md)."),
    K("socket", "control", CORE_CFG_STRING, sock_control, 1, 107,
      "/run/superclass/datad-ctl.sock", NULL, "Unix socket for sc-ctl (JSON lines)."),
    K("socket", "mode", CORE_CFG_STRING, sock_mode, 3, 4, "0660", NULL,
      "Permission bits (octal) of both sockets, set right after bind."),
    K("socket", "group", CORE_CFG_STRING, sock_group, 0, 255, "", NULL,
      "Group (name or number) given to both sockets after bind; empty keeps the daemon's group."),
    K("socket", "allow_uids", CORE_CFG_STRING, sock_allow_uids, 0, 1024, "", NULL,
      "Comma-separated uids allowed to connect (checked with SO_PEERCRED). A peer passes if its "
      "uid is in allow_uids or its gid in allow_gids; both empty: anyone the socket mode admits. "
      "The daemon's own uid is always allowed."),
    K("socket", "allow_gids", CORE_CFG_STRING, sock_allow_gids, 0, 1024, "", NULL,
      "Comma-separated gids allowed to connect (see allow_uids): the peer's primary group or "
      "any of its supplementary groups (SO_PEERGROUPS)."),

    K("server", "workers", CORE_CFG_UINT, workers, 0, 1024, "0", NULL,
      "Batch assembly threads (decode + augment); 0 = number of CPUs."),
    K("server", "max_clients", CORE_CFG_UINT, max_clients, 1, 65536, "256", NULL,
      "Connections beyond this are refused with an ERROR frame."),
    K("server", "max_inflight", CORE_CFG_UINT, max_inflight, 0, 1024, "0", NULL,
      "Batches one client may have in assembly at once (also bounded by its credits); 0 = the "
      "number of workers. Lower it to keep one client from occupying every worker."),
    K("server", "max_frame", CORE_CFG_SIZE, max_frame, 65536, 1073741824.0, "1G", NULL,
      "Largest BATCH frame a client may ask for (batch_size x out_h x out_w x 3 + labels)."),
    K("server", "max_client_bytes", CORE_CFG_SIZE, max_client_bytes, 65536, 1099511627776.0, "4G",
      NULL, "Server memory one client may hold: outstanding credits x frame size."),
    K("server", "handshake_timeout_ms", CORE_CFG_UINT, handshake_timeout_ms, 100, 3600000, "5000",
      NULL, "A connection must complete HELLO within this time (control: send a line)."),
    K("server", "idle_timeout_ms", CORE_CFG_UINT, idle_timeout_ms, 0, 86400000, "600000", NULL,
      "Close a connection that sent nothing for this long; 0 disables. The client library "
      "reconnects on its own and resumes at its cursor."),

    K("log", "level", CORE_CFG_ENUM, log_level, 0, 0, "info", level_choices,
      "Log level: err, warning, notice, info, debug."),
    K("log", "stats_interval_s", CORE_CFG_UINT, stats_interval_s, 0, 86400, "60", NULL,
      "Log a stats line this often (s); 0 disables. systemd STATUS= is updated every 2 s."),
};

const core_cfg_table_t datad_cfg_table = {keys, sizeof keys / sizeof keys[0]};

int datad_cfg_init(datad_cfg_t *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    return core_cfg_defaults(&datad_cfg_table, c, err, errlen);
}

void datad_cfg_free(datad_cfg_t *c)
{
    core_cfg_free(&datad_cfg_table, c);
    core_free(c->epoch_log);
    c->epoch_log = NULL;
}

int datad_parse_id_list(const char *s, uint32_t *ids, unsigned max, unsigned *n_out)
{
    unsigned n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        if (!isdigit((unsigned char)*p)) {
            return CORE_ECONFIG;
        }
        uint64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (uint64_t)(*p - '0');
            if (v > 0xfffffffeu) {
                return CORE_ECONFIG;
            }
            p++;
        }
        if (n >= max) {
            return CORE_ECONFIG;
        }
        ids[n++] = (uint32_t)v;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p != '\0') {
            return CORE_ECONFIG;
        }
    }
    *n_out = n;
    return 0;
}

static int cfg_err(char *err, size_t errlen, const char *fmt, const char *a)
{
    snprintf(err, errlen, fmt, a);
    return CORE_ECONFIG;
}

int datad_cfg_finish(datad_cfg_t *c, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    unsigned long mode = strtoul(c->sock_mode, &end, 8);
    if (errno != 0 || *end != '\0' || mode > 0777 || c->sock_mode[0] == '-') {
        return cfg_err(err, errlen, "socket.mode: '%s' is not an octal mode like 0660",
                       c->sock_mode);
    }
    c->mode = (unsigned)mode;
    c->gid = (gid_t)-1;
    if (c->sock_group[0] != '\0') {
        uint32_t g = 0;
        unsigned n = 0;
        if (datad_parse_id_list(c->sock_group, &g, 1, &n) == 0 && n == 1) {
            c->gid = (gid_t)g;
        } else {
            struct group *gr = getgrnam(c->sock_group);
            if (gr == NULL) {
                return cfg_err(err, errlen, "socket.group: no group named '%s'", c->sock_group);
            }
            c->gid = gr->gr_gid;
        }
    }
    uint32_t ids[DATAD_MAX_ALLOW];
    unsigned n = 0;
    if (datad_parse_id_list(c->sock_allow_uids, ids, DATAD_MAX_ALLOW, &n) != 0) {
        return cfg_err(err, errlen, "socket.allow_uids: '%s' is not a list of up to 64 uids",
                       c->sock_allow_uids);
    }
    for (unsigned i = 0; i < n; i++) {
        c->allow_uid[i] = (uid_t)ids[i];
    }
    c->n_allow_uid = n;
    if (datad_parse_id_list(c->sock_allow_gids, ids, DATAD_MAX_ALLOW, &n) != 0) {
        return cfg_err(err, errlen, "socket.allow_gids: '%s' is not a list of up to 64 gids",
                       c->sock_allow_gids);
    }
    for (unsigned i = 0; i < n; i++) {
        c->allow_gid[i] = (gid_t)ids[i];
    }
    c->n_allow_gid = n;
    if (strcmp(c->sock_data, c->sock_control) == 0) {
        return cfg_err(err, errlen, "socket.data and socket.control are the same path '%s'",
                       c->sock_data);
    }
    if (c->store_create && c->store_vocab[0] == '\0') {
        return cfg_err(err, errlen, "store.create = true needs store.vocab%s", "");
    }
    core_free(c->epoch_log);
    if (c->store_epoch_log[0] != '\0') {
        c->epoch_log = core_strdup(c->store_epoch_log);
    } else {
        size_t len = strlen(c->store_dir) + 32;
        c->epoch_log = core_malloc(len);
        if (c->epoch_log != NULL) {
            snprintf(c->epoch_log, len, "%s/datad-epochs.log", c->store_dir);
        }
    }
    if (c->epoch_log == NULL) {
        return CORE_ERR(ENOMEM);
    }
    return 0;
}

int datad_cfg_log_level(const datad_cfg_t *c)
{
    static const int levels[] = {CORE_LOG_ERR, CORE_LOG_WARNING, CORE_LOG_NOTICE, CORE_LOG_INFO,
                                 CORE_LOG_DEBUG};
    return levels[c->log_level];
}
