/* sc-datad configuration: one table (datad_cfg.c) drives the INI reader, --set overrides,
 * --print-config (which generates etc/superclass/datad.conf) and --check-config. */
#ifndef DATAD_CFG_H
#define DATAD_CFG_H

#include <stdint.h>
#include <sys/types.h>

#include "core/cfg.h"

#define DATAD_MAX_ALLOW 64

typedef struct datad_cfg_s {
    /* [store] */
    char *store_dir;
    char *store_vocab;
    int store_create;
    char *store_epoch_log;
    /* [spool] */
    char *spool_dir;
    int spool_enabled;
    uint64_t spool_settle_ms;
    uint64_t spool_rescan_s;
    /* [ingest] */
    int ingest_verify; /* pl_verify_t */
    uint64_t ingest_max_side;
    uint64_t ingest_caption_max_bytes;
    int ingest_caption_overflow; /* pl_caption_overflow_t */
    uint64_t ingest_batch_records;
    uint64_t ingest_batch_bytes;
    uint64_t ingest_stop_timeout_s;
    uint64_t ingest_threads;
    /* [socket] */
    char *sock_data;
    char *sock_control;
    char *sock_mode;
    char *sock_group;
    char *sock_allow_uids;
    char *sock_allow_gids;
    /* [server] */
    uint64_t workers;
    uint64_t max_clients;
    uint64_t max_inflight;
    uint64_t max_frame;
    uint64_t max_client_bytes;
    uint64_t handshake_timeout_ms;
    uint64_t idle_timeout_ms;
    /* [log] */
    int log_level; /* index into the level names: err, warning, notice, info, debug */
    uint64_t stats_interval_s;

    /* Derived by datad_cfg_finish (not in the table). */
    unsigned mode;  /* socket permission bits */
    gid_t gid;      /* (gid_t)-1: keep */
    uid_t allow_uid[DATAD_MAX_ALLOW];
    gid_t allow_gid[DATAD_MAX_ALLOW];
    unsigned n_allow_uid, n_allow_gid;
    char *epoch_log; /* resolved path (owned) */
} datad_cfg_t;

extern const core_cfg_table_t datad_cfg_table;

/* Defaults for every key. 0 or a negative code with the message in err. */
int datad_cfg_init(datad_cfg_t *c, char *err, size_t errlen);
/* Checks cross-key rules and derives mode, gid and the allow-lists (names resolved through NSS
 * for the group only). Returns 0 or CORE_ECONFIG with the message in err. */
int datad_cfg_finish(datad_cfg_t *c, char *err, size_t errlen);
/* Log level as core_log_level_t. */
int datad_cfg_log_level(const datad_cfg_t *c);
void datad_cfg_free(datad_cfg_t *c);

/* Parses a comma-separated list of decimal ids ("0, 1000,1001"); pure (fuzzed). Returns 0 or
 * CORE_ECONFIG (bad number, more than `max` ids). */
int datad_parse_id_list(const char *s, uint32_t *ids, unsigned max, unsigned *n_out);

#endif
