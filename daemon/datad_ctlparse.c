/* Control request parsing (datad_ctlparse.h): jansson over one bounded line. */
#include "datad_ctlparse.h"

#include <jansson.h>
#include <string.h>

#include "core/err.h"

static const struct {
    const char *name;
    datad_cmd_t cmd;
} cmds[] = {
    {"status", DATAD_CMD_STATUS}, {"ingest", DATAD_CMD_INGEST}, {"pause", DATAD_CMD_PAUSE},
    {"resume", DATAD_CMD_RESUME}, {"stop", DATAD_CMD_STOP},
};

static int set_why(const char **why, const char *text, int rc)
{
    if (why != NULL) {
        *why = text;
    }
    return rc;
}

static int lookup(const char *name, size_t len, datad_cmd_t *out)
{
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strlen(cmds[i].name) == len && memcmp(cmds[i].name, name, len) == 0) {
            *out = cmds[i].cmd;
            return 0;
        }
    }
    return CORE_EUNSUPPORTED;
}

int datad_ctl_parse(const char *line, size_t len, datad_ctl_req_t *req, const char **why)
{
    memset(req, 0, sizeof(*req));
    if (len > DATAD_CTL_MAX_LINE) {
        return set_why(why, "line too long", CORE_ETOO_LARGE);
    }
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ')) {
        len--;
    }
    while (len > 0 && line[0] == ' ') {
        line++;
        len--;
    }
    if (len == 0) {
        return set_why(why, "empty request", CORE_ECORRUPT);
    }
    if (line[0] != '{') {
        /* Bare word form, for humans with socat. */
        if (lookup(line, len, &req->cmd) < 0) {
            return set_why(why, "unknown command", CORE_EUNSUPPORTED);
        }
        if (req->cmd == DATAD_CMD_INGEST) {
            return set_why(why, "ingest needs the JSON form with a path", CORE_ECONFIG);
        }
        return 0;
    }
    json_error_t jerr;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return set_why(why, "not a JSON object", CORE_ECORRUPT);
    }
    int rc = 0;
    json_t *cmd = json_object_get(root, "cmd");
    if (!json_is_string(cmd)) {
        rc = set_why(why, "\"cmd\" must be a string", CORE_ECORRUPT);
        goto out;
    }
    if (lookup(json_string_value(cmd), json_string_length(cmd), &req->cmd) < 0) {
        rc = set_why(why, "unknown command", CORE_EUNSUPPORTED);
        goto out;
    }
    if (req->cmd == DATAD_CMD_INGEST) {
        json_t *path = json_object_get(root, "path");
        if (!json_is_string(path)) {
            rc = set_why(why, "ingest needs \"path\"", CORE_ECONFIG);
            goto out;
        }
        const char *p = json_string_value(path);
        size_t pl = json_string_length(path);
        if (pl == 0 || p[0] != '/' || pl > DATAD_CTL_MAX_PATH || memchr(p, '\0', pl) != NULL) {
            rc = set_why(why, "path must be absolute, without NUL, at most 4095 bytes",
                         CORE_ECONFIG);
            goto out;
        }
        memcpy(req->path, p, pl);
        req->path[pl] = '\0';
    }
out:
    json_decref(root);
    if (rc < 0) {
        req->cmd = 0;
    }
    return rc;
}
