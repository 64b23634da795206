/* The epoch snapshot log: one line "seed epoch records crc" per fixed epoch, appended and
 * fdatasync'ed before the first batch of that epoch is assembled. A restarted daemon reads it back
 * and serves an epoch in progress with the same size, hence the same permutation. Lines that end
 * early (a crash while appending) are ignored; a line whose CRC does not match is an error. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/log.h"
#include "datad.h"

#define EPOCHS_MAX_FILE (64u << 20)

static int epochs_push(datad_epochs_t *e, uint64_t seed, uint64_t epoch, uint64_t records)
{
    for (size_t i = 0; i < e->n; i++) {
        if (e->v[i].seed == seed && e->v[i].epoch == epoch) {
            e->v[i].records = records; /* the first entry wins at fix time; a replay is equal */
            return 0;
        }
    }
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        datad_epoch_t *v = core_realloc(e->v, cap * sizeof(*v));
        if (v == NULL) {
            return CORE_ERR(ENOMEM);
        }
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n].seed = seed;
    e->v[e->n].epoch = epoch;
    e->v[e->n].records = records;
    e->n++;
    return 0;
}

static int line_crc_ok(const char *line, size_t body_len, uint32_t crc)
{
    return core_crc32c(0, line, body_len) == crc;
}

int datad__epochs_open(datad_epochs_t *e, const char *path)
{
    memset(e, 0, sizeof(*e));
    e->fd = -1;
    e->path = core_strdup(path);
    if (e->path == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        int err = errno;
        core_log_err("epoch log %s: %s", path, strerror(err));
        return CORE_ERR(err);
    }
    e->fd = fd;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0 || size > (off_t)EPOCHS_MAX_FILE) {
        core_log_err("epoch log %s: unreadable or larger than 64 MiB", path);
        return CORE_ECORRUPT;
    }
    char *buf = core_malloc((size_t)size + 1);
    if (buf == NULL) {
        return CORE_ERR(ENOMEM);
    }
    ssize_t got = pread(fd, buf, (size_t)size, 0);
    if (got != (ssize_t)size) {
        core_free(buf);
        return CORE_ERR(EIO);
    }
    buf[size] = '\0';
    int rc = 0;
    unsigned line_no = 0;
    char *p = buf;
    while (*p != '\0') {
        char *nl = strchr(p, '\n');
        line_no++;
        if (nl == NULL) {
            /* An unterminated last line was never fdatasync'ed as a whole: the epoch it would have
             * fixed was never served. Drop it. */
            core_log_warn("epoch log %s:%u: incomplete last line ignored", path, line_no);
            break;
        }
        *nl = '\0';
        unsigned long long seed, epoch, records;
        unsigned crc;
        int body = 0;
        if (sscanf(p, "%llu %llu %llu%n %x", &seed, &epoch, &records, &body, &crc) != 4 ||
            !line_crc_ok(p, (size_t)body, crc)) {
            core_log_err("epoch log %s:%u: corrupt line", path, line_no);
            rc = CORE_ECORRUPT;
            break;
        }
        rc = epochs_push(e, seed, epoch, records);
        if (rc < 0) {
            break;
        }
        p = nl + 1;
    }
    core_free(buf);
    return rc;
}

void datad__epochs_close(datad_epochs_t *e)
{
    if (e->fd >= 0) {
        close(e->fd);
        e->fd = -1;
    }
    core_free(e->v);
    core_free(e->path);
    memset(e, 0, sizeof(*e));
    e->fd = -1;
}

int datad__epochs_get(const datad_epochs_t *e, uint64_t seed, uint64_t epoch, uint64_t *records)
{
    for (size_t i = e->n; i-- > 0;) {
        if (e->v[i].seed == seed && e->v[i].epoch == epoch) {
            *records = e->v[i].records;
            return 0;
        }
    }
    return CORE_ENOT_FOUND;
}

int datad__epochs_fix(datad_epochs_t *e, uint64_t seed, uint64_t epoch, uint64_t records)
{
    char line[128];
    int body = snprintf(line, sizeof line, "%llu %llu %llu", (unsigned long long)seed,
                        (unsigned long long)epoch, (unsigned long long)records);
    uint32_t crc = core_crc32c(0, line, (size_t)body);
    int len = snprintf(line + body, sizeof line - (size_t)body, " %08x\n", crc) + body;
    /* Written and synced from the loop thread: this happens once per (seed, epoch), a few
     * hundred bytes, and the batches of that epoch must not be assembled before it is durable
     * (a restart must see the same size). */
    ssize_t w = write(e->fd, line, (size_t)len);
    if (w != len) {
        int err = w < 0 ? errno : EIO;
        core_log_err("epoch log %s: write: %s", e->path, strerror(err));
        return CORE_ERR(err);
    }
    if (fdatasync(e->fd) != 0) {
        int err = errno;
        core_log_err("epoch log %s: fdatasync: %s", e->path, strerror(err));
        return CORE_ERR(err);
    }
    core_log_info("epoch %llu of seed %llu fixed at %llu records", (unsigned long long)epoch,
                  (unsigned long long)seed, (unsigned long long)records);
    return epochs_push(e, seed, epoch, records);
}
