/* The control protocol's request parser: one JSON object per line, e.g. {"cmd":"status"},
 * {"cmd":"ingest","path":"/abs/file.tar"}, {"cmd":"pause"}, {"cmd":"resume"}, {"cmd":"stop"}.
 * A bare word line ("status") is accepted too. Pure function over bytes (fuzzed). */
#ifndef DATAD_CTLPARSE_H
#define DATAD_CTLPARSE_H

#include <stddef.h>

#define DATAD_CTL_MAX_LINE 8000
#define DATAD_CTL_MAX_PATH 4095

typedef enum {
    DATAD_CMD_STATUS = 1,
    DATAD_CMD_INGEST,
    DATAD_CMD_PAUSE,
    DATAD_CMD_RESUME,
    DATAD_CMD_STOP,
} datad_cmd_t;

typedef struct datad_ctl_req_s {
    datad_cmd_t cmd;
    char path[DATAD_CTL_MAX_PATH + 1]; /* ingest: absolute path */
} datad_ctl_req_t;

/* Parses one line (without its newline). Returns 0, or CORE_ECORRUPT (not JSON / not an object /
 * bad field types), CORE_EUNSUPPORTED (unknown command), CORE_ECONFIG (ingest path missing, not
 * absolute or too long), CORE_ETOO_LARGE (line too long); `why` (may be NULL) gets a static text. */
int datad_ctl_parse(const char *line, size_t len, datad_ctl_req_t *req, const char **why);

#endif
